/*
 * model.c: building a model (variables, nodes, loss, optimizer) and running it (train, test,
 * gradients, predict). Every run takes the model's lock, checks its arguments before touching
 * any state, finds or builds the plan for its batch size, and releases the lock.
 */
#include <math.h>

#include "internal.h"

int pn_model_create(pn_model **out) {
    pn_model *m = calloc(1, sizeof *m);
    if (!m) return pn_error(PN_ENOMEM, "out of memory creating a model");
    m->input = -1;
    m->output = -1;
    m->refs = 1;
    if (pthread_mutex_init(&m->lock, NULL) != 0) {
        free(m);
        return pn_error(PN_ENOMEM, "could not create the model's lock");
    }
    *out = m;
    return PN_OK;
}

/* Frees the cached plans; one an eager call still holds is freed when that call releases it. */
static void drop_plans(pn_model *m) {
    for (int i = 0; i < PN_PLAN_CACHE; i++) {
        if (m->plans[i] && m->plans[i]->busy)
            m->plans[i]->orphan = 1;
        else
            pn_plan_destroy(m->plans[i]);
        m->plans[i] = NULL;
    }
}

void pn_model_retain(pn_model *m) { m->refs++; }

void pn_model_destroy(pn_model *m) { pn_model_release(m); }

void pn_model_release(pn_model *m) {
    if (!m || --m->refs > 0) return;
    drop_plans(m);
    free(m->vars);
    free(m->params);
    free(m->grads);
    free(m->nodes);
    free(m->opt_state);
    pthread_mutex_destroy(&m->lock);
    free(m);
}

/* ---- variables ----------------------------------------------------------------------------- */

static int check_shape(const char *what, int ndim, const int64_t *shape, int64_t *size) {
    if (ndim < 0 || ndim > PN_MAX_DIMS)
        return pn_error(PN_ESHAPE, "%s: rank %d is outside 0..%d", what, ndim, PN_MAX_DIMS);
    int64_t s = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] <= 0)
            return pn_error(PN_ESHAPE, "%s: dimension %d is %lld, must be positive", what, i,
                            (long long)shape[i]);
        if (s > INT64_MAX / 4 / shape[i]) return pn_error(PN_ESHAPE, "%s: shape is too large", what);
        s *= shape[i];
    }
    *size = s;
    return PN_OK;
}

int pn_model_add_variable(pn_model *m, int ndim, const int64_t *shape, int trainable, int *id) {
    if (m->params) return pn_error(PN_ESTATE, "variables must be added before pn_model_alloc");
    int64_t size = 0;
    int rc = check_shape("variable", ndim, shape, &size);
    if (rc) return rc;
    if (m->n_vars == m->cap_vars) {
        int cap = m->cap_vars ? 2 * m->cap_vars : 16;
        pn_var *v = realloc(m->vars, (size_t)cap * sizeof *v);
        if (!v) return pn_error(PN_ENOMEM, "out of memory adding a variable");
        m->vars = v;
        m->cap_vars = cap;
    }
    pn_var *v = &m->vars[m->n_vars];
    memset(v, 0, sizeof *v);
    v->ndim = ndim;
    memcpy(v->shape, shape, (size_t)ndim * sizeof *shape);
    v->size = size;
    v->trainable = trainable != 0;
    *id = m->n_vars++;
    return PN_OK;
}

/* Every variable starts on a 64-byte boundary, so vector loads of a row never straddle cache
 * lines; the few floats of padding between variables stay zero (zero gradient, no update). */
#define VAR_ALIGN 16

int pn_model_alloc(pn_model *m) {
    if (m->params) return pn_error(PN_ESTATE, "the model's variables are already allocated");
    int64_t off = 0, trainable = 0;
    for (int pass = 1; pass >= 0; pass--) { /* trainable first: one contiguous run */
        for (int i = 0; i < m->n_vars; i++)
            if (m->vars[i].trainable == pass) {
                m->vars[i].offset = off;
                off += (m->vars[i].size + VAR_ALIGN - 1) / VAR_ALIGN * VAR_ALIGN;
            }
        if (pass == 1) trainable = off;
    }
    size_t bytes = (size_t)(off > 0 ? off : VAR_ALIGN) * sizeof(float);
    float *p = aligned_alloc(64, bytes), *g = aligned_alloc(64, bytes);
    if (!p || !g) {
        free(p);
        free(g);
        return pn_error(PN_ENOMEM, "out of memory allocating %lld parameters", (long long)off);
    }
    memset(p, 0, bytes);
    memset(g, 0, bytes);
    m->params = p;
    m->grads = g;
    m->n_params = off;
    m->n_trainable = trainable;
    return PN_OK;
}

int pn_model_variable_count(const pn_model *m) { return m->n_vars; }
float *pn_model_params(pn_model *m) { return m->params; }
float *pn_model_grads(pn_model *m) { return m->grads; }
int64_t pn_model_param_count(const pn_model *m, int trainable_only) {
    int64_t n = 0;
    for (int i = 0; i < m->n_vars; i++)
        if (m->vars[i].trainable || !trainable_only) n += m->vars[i].size;
    return n;
}

int pn_model_variable(const pn_model *m, int id, int64_t *offset, int64_t *size, int *ndim,
                      int64_t *shape) {
    if (id < 0 || id >= m->n_vars) return pn_error(PN_EVALUE, "no variable %d", id);
    if (!m->params) return pn_error(PN_ESTATE, "variables are not allocated yet");
    const pn_var *v = &m->vars[id];
    if (offset) *offset = v->offset;
    if (size) *size = v->size;
    if (ndim) *ndim = v->ndim;
    if (shape) memcpy(shape, v->shape, (size_t)v->ndim * sizeof *shape);
    return PN_OK;
}

int pn_model_set_regularizer(pn_model *m, int var, float l1, float l2) {
    if (var < 0 || var >= m->n_vars) return pn_error(PN_EVALUE, "no variable %d", var);
    if (!(l1 >= 0.0f) || !(l2 >= 0.0f) || isinf(l1) || isinf(l2))
        return pn_error(PN_EVALUE, "regularizer factors must be finite and >= 0, got l1=%g l2=%g",
                        l1, l2);
    m->vars[var].l1 = l1;
    m->vars[var].l2 = l2;
    return PN_OK;
}

/* ---- graph --------------------------------------------------------------------------------- */

static int push_node(pn_model *m, pn_node *nd, int *node) {
    if (m->n_nodes == m->cap_nodes) {
        int cap = m->cap_nodes ? 2 * m->cap_nodes : 16;
        pn_node *p = realloc(m->nodes, (size_t)cap * sizeof *p);
        if (!p) return pn_error(PN_ENOMEM, "out of memory adding a node");
        m->nodes = p;
        m->cap_nodes = cap;
    }
    m->nodes[m->n_nodes] = *nd;
    *node = m->n_nodes++;
    drop_plans(m);
    m->graph_version++;
    m->compiled = 0;
    return PN_OK;
}

int pn_model_add_input(pn_model *m, int ndim, const int64_t *shape, pn_dtype dtype, int *node) {
    if (m->input >= 0) return pn_error(PN_EVALUE, "the model already has an input");
    if (ndim < 1 || ndim > PN_MAX_DIMS - 1)
        return pn_error(PN_ESHAPE, "input: rank %d (batch excluded) is outside 1..%d", ndim,
                        PN_MAX_DIMS - 1);
    if (dtype != PN_F32 && dtype != PN_I32) return pn_error(PN_ETYPE, "input: unknown dtype");
    pn_node nd = {.op = PN_OP_INPUT, .dtype = dtype, .ndim = ndim};
    int rc = check_shape("input", ndim, shape, &nd.size);
    if (rc) return rc;
    memcpy(nd.shape, shape, (size_t)ndim * sizeof *shape);
    rc = push_node(m, &nd, node);
    if (rc == PN_OK) m->input = *node;
    return rc;
}

int pn_model_add_node(pn_model *m, int op, int n_in, const int *inputs, int n_var, const int *vars,
                      const int *iattr, const float *fattr, int *node) {
    if (op <= PN_OP_INPUT || op >= PN_OP_COUNT) return pn_error(PN_EVALUE, "unknown op %d", op);
    const char *name = pn_op_name(op);
    if (n_in < 0 || n_in > PN_MAX_INPUTS || n_var < 0 || n_var > PN_MAX_VARS)
        return pn_error(PN_EVALUE, "%s: too many inputs or variables", name);
    pn_node nd = {.op = op, .n_in = n_in, .n_var = n_var};
    for (int j = 0; j < n_in; j++) {
        if (inputs[j] < 0 || inputs[j] >= m->n_nodes)
            return pn_error(PN_EVALUE, "%s: input %d is not an existing node", name, inputs[j]);
        nd.in[j] = inputs[j];
    }
    for (int k = 0; k < n_var; k++) {
        if (vars[k] < 0 || vars[k] >= m->n_vars)
            return pn_error(PN_EVALUE, "%s: variable %d does not exist", name, vars[k]);
        nd.var[k] = vars[k];
    }
    for (int a = 0; a < PN_MAX_ATTRS; a++) {
        nd.iattr[a] = iattr ? iattr[a] : 0;
        nd.fattr[a] = fattr ? fattr[a] : 0.0f;
    }
    int rc = pn_op_table[op]->shape(m, &nd);
    if (rc) return rc;
    rc = check_shape(name, nd.ndim, nd.shape, &nd.size);
    if (rc) return rc;
    return push_node(m, &nd, node);
}

int pn_model_node_shape(const pn_model *m, int node, int64_t *shape) {
    if (node < 0 || node >= m->n_nodes) return pn_error(PN_EVALUE, "no node %d", node);
    memcpy(shape, m->nodes[node].shape, (size_t)m->nodes[node].ndim * sizeof *shape);
    return m->nodes[node].ndim;
}

/* ---- compile and optimizer ----------------------------------------------------------------- */

int pn_model_set_output(pn_model *m, int node) {
    if (node < 0 || node >= m->n_nodes) return pn_error(PN_EVALUE, "no node %d", node);
    if (m->input < 0) return pn_error(PN_ESTATE, "the model has no input");
    if (m->nodes[node].dtype != PN_F32) return pn_error(PN_ETYPE, "the output must be float32");
    drop_plans(m);
    m->graph_version++;
    m->output = node;
    m->compiled = 0;
    return PN_OK;
}

int pn_model_output_shape(const pn_model *m, int64_t *shape) {
    if (m->output < 0) return pn_error(PN_ESTATE, "the model has no output yet");
    return pn_model_node_shape(m, m->output, shape);
}

int pn_model_compile(pn_model *m, pn_loss_kind loss, int from_logits, int n_metrics,
                     const pn_metric_kind *metrics) {
    if (m->output < 0) return pn_error(PN_ESTATE, "the model has no output");
    if (!m->params) return pn_error(PN_ESTATE, "the model's variables are not allocated");
    if ((int)loss < 0 || loss >= PN_LOSS_COUNT) return pn_error(PN_EVALUE, "unknown loss %d", loss);
    if (n_metrics < 0 || n_metrics > PN_MAX_METRICS)
        return pn_error(PN_EVALUE, "at most %d metrics", PN_MAX_METRICS);
    int sparse = loss == PN_LOSS_SPARSE_CE;
    for (int k = 0; k < n_metrics; k++) {
        if ((int)metrics[k] < 0 || metrics[k] >= PN_METRIC_COUNT)
            return pn_error(PN_EVALUE, "unknown metric %d", metrics[k]);
        if ((metrics[k] == PN_METRIC_SPARSE_ACCURACY) != sparse)
            return pn_error(PN_EVALUE,
                            sparse ? "with integer labels (sparse_categorical_crossentropy) the "
                                     "only accuracy is sparse_categorical_accuracy"
                                   : "sparse_categorical_accuracy needs integer labels "
                                     "(sparse_categorical_crossentropy)");
    }
    drop_plans(m);
    m->loss = loss;
    m->from_logits = from_logits != 0;
    m->n_metrics = n_metrics;
    if (n_metrics > 0) memcpy(m->metrics, metrics, (size_t)n_metrics * sizeof *metrics);
    m->compiled = 1;
    return PN_OK;
}

int pn_model_set_optimizer(pn_model *m, const pn_optim_config *cfg) {
    if (!m->params) return pn_error(PN_ESTATE, "the model's variables are not allocated");
    if ((int)cfg->kind < 0 || cfg->kind >= PN_OPTIM_COUNT)
        return pn_error(PN_EVALUE, "unknown optimizer %d", cfg->kind);
    if (!(cfg->learning_rate >= 0.0f) || isinf(cfg->learning_rate))
        return pn_error(PN_EVALUE, "learning_rate must be finite and >= 0, got %g",
                        cfg->learning_rate);
    int slots = pn_optimizer_slots(cfg);
    float *state = NULL;
    size_t n = (size_t)slots * (size_t)m->n_trainable;
    if (n > 0 && !(state = calloc(n, sizeof *state)))
        return pn_error(PN_ENOMEM, "out of memory for the optimizer's state");
    if (cfg->kind == PN_ADAGRAD)
        for (size_t i = 0; i < n; i++) state[i] = cfg->initial_accumulator_value;
    free(m->opt_state);
    m->opt_state = state;
    m->n_slots = slots;
    m->opt = *cfg;
    m->iterations = 0;
    m->has_optimizer = 1;
    return PN_OK;
}

int pn_model_set_learning_rate(pn_model *m, float lr) {
    if (!(lr >= 0.0f) || isinf(lr))
        return pn_error(PN_EVALUE, "learning_rate must be finite and >= 0, got %g", lr);
    m->opt.learning_rate = lr;
    return PN_OK;
}

float pn_model_learning_rate(const pn_model *m) { return m->opt.learning_rate; }
int64_t pn_model_iterations(const pn_model *m) { return m->iterations; }
void pn_model_set_iterations(pn_model *m, int64_t it) { m->iterations = it; }
void pn_model_set_seed(pn_model *m, uint64_t seed) {
    m->seed = seed;
    m->forwards = 0;
}

int pn_model_optimizer_state(pn_model *m, float **state, int64_t *n) {
    *state = m->opt_state;
    *n = (int64_t)m->n_slots * m->n_trainable;
    return PN_OK;
}

/* ---- running ------------------------------------------------------------------------------- */

/* The cached plan for (batch, mode) that no eager call holds, or a new one in a free slot or in
 * place of the least recently used plan that is not held; when every slot is held, the new plan
 * is an orphan from the start (freed when released). */
int pn_model_get_plan(pn_model *m, int64_t batch, pn_mode mode, pn_plan **out) {
    int free_slot = -1, lru = -1;
    for (int i = 0; i < PN_PLAN_CACHE; i++) {
        pn_plan *p = m->plans[i];
        if (!p) {
            if (free_slot < 0) free_slot = i;
            continue;
        }
        if (p->busy) continue;
        if (p->batch == batch && p->mode == mode) {
            p->last_used = ++m->clock;
            *out = p;
            return PN_OK;
        }
        if (lru < 0 || p->last_used < m->plans[lru]->last_used) lru = i;
    }
    pn_plan *p = NULL;
    int rc = pn_plan_create(&p, m, batch, mode);
    if (rc) return rc;
    int slot = free_slot >= 0 ? free_slot : lru;
    if (slot >= 0) {
        pn_plan_destroy(m->plans[slot]);
        m->plans[slot] = p;
    } else {
        p->orphan = 1;
    }
    p->last_used = ++m->clock;
    *out = p;
    return PN_OK;
}

void pn_model_put_plan(pn_model *m, pn_plan *p) {
    pthread_mutex_lock(&m->lock);
    p->busy = 0;
    if (p->orphan) pn_plan_destroy(p);
    pthread_mutex_unlock(&m->lock);
}

/* x: (n, input shape...) float32 matching the input node. */
int pn_model_check_input(const pn_model *m, const pn_tensor *x) {
    const pn_node *in = &m->nodes[m->input];
    if (x->dtype != in->dtype) return pn_error(PN_ETYPE, "input: wrong element type");
    int ok = x->ndim == in->ndim + 1;
    for (int i = 0; ok && i < in->ndim; i++) ok = x->dims[i + 1] == in->shape[i];
    if (!ok || x->dims[0] < 0) {
        char want[128] = "(None", got[128] = "(";
        size_t w = strlen(want), g = strlen(got);
        for (int i = 0; i < in->ndim && w < sizeof want - 24; i++)
            w += (size_t)snprintf(want + w, sizeof want - w, ", %lld", (long long)in->shape[i]);
        for (int i = 0; i < x->ndim && i < PN_MAX_DIMS && g < sizeof got - 24; i++)
            g += (size_t)snprintf(got + g, sizeof got - g, i ? ", %lld" : "%lld",
                                  (long long)x->dims[i]);
        snprintf(want + w, sizeof want - w, ")");
        snprintf(got + g, sizeof got - g, ")");
        return pn_error(PN_ESHAPE, "input: expected shape %s, got %s", want, got);
    }
    return PN_OK;
}

static int64_t target_size(const pn_model *m) {
    const pn_node *o = &m->nodes[m->output];
    return m->loss == PN_LOSS_SPARSE_CE ? o->size / o->shape[o->ndim - 1] : o->size;
}

static int check_y(const pn_model *m, const pn_tensor *x, const pn_tensor *y) {
    pn_dtype want = m->loss == PN_LOSS_SPARSE_CE ? PN_I32 : PN_F32;
    if (y->dtype != want)
        return pn_error(PN_ETYPE, "targets must be %s for this loss",
                        want == PN_I32 ? "int32 class indices" : "float32");
    if (y->ndim < 1 || y->dims[0] != x->dims[0])
        return pn_error(PN_ESHAPE, "x has %lld samples but y has %lld", (long long)x->dims[0],
                        (long long)(y->ndim ? y->dims[0] : 0));
    int64_t per = 1;
    for (int i = 1; i < y->ndim; i++) per *= y->dims[i];
    if (per != target_size(m))
        return pn_error(PN_ESHAPE, "each target has %lld values, the model's output needs %lld",
                        (long long)per, (long long)target_size(m));
    return PN_OK;
}

static void gather(void *dst, const void *src, const int64_t *idx, int64_t batch, int64_t row) {
    size_t bytes = (size_t)row * 4;
    for (int64_t b = 0; b < batch; b++)
        memcpy((char *)dst + (size_t)b * bytes, (const char *)src + (size_t)idx[b] * bytes, bytes);
}

/* Common entry of train/test/gradients: checks, plan, gathered inputs and targets. */
static int prepare(pn_model *m, const pn_tensor *x, const pn_tensor *y, const int64_t *idx,
                   int64_t batch, pn_mode mode, pn_plan **out, const void **yd) {
    if (!m->compiled) return pn_error(PN_ESTATE, "the model must be compiled before training");
    int rc = pn_model_check_input(m, x);
    if (!rc) rc = check_y(m, x, y);
    if (rc) return rc;
    int64_t n = x->dims[0];
    if (!idx) batch = n;
    if (batch < 1) return pn_error(PN_EVALUE, "a batch needs at least one sample");
    if (idx)
        for (int64_t b = 0; b < batch; b++)
            if (idx[b] < 0 || idx[b] >= n)
                return pn_error(PN_EVALUE, "batch index %lld is outside 0..%lld",
                                (long long)idx[b], (long long)n - 1);
    pn_plan *p = NULL;
    rc = pn_model_get_plan(m, batch, mode, &p);
    if (rc) return rc;
    int64_t ts = target_size(m);
    pn_tensor yb = *y;
    if (idx) {
        gather(p->xbuf, x->data, idx, batch, m->nodes[m->input].size);
        gather(p->ybuf, y->data, idx, batch, ts);
        p->value[m->input] = p->xbuf;
        yb.data = p->ybuf;
    } else {
        p->value[m->input] = x->data;
    }
    if (x->dtype == PN_I32) {
        rc = pn_embedding_check(m, (const int32_t *)p->value[m->input],
                                batch * m->nodes[m->input].size);
        if (rc) return rc;
    }
    rc = pn_loss_check_targets(m, &yb, batch);
    if (rc) return rc;
    *out = p;
    *yd = yb.data;
    return PN_OK;
}

static int run_step(pn_model *m, const pn_tensor *x, const pn_tensor *y, const int64_t *idx,
                    int64_t batch, float *results, int train) {
    if (train && !m->has_optimizer)
        return pn_error(PN_ESTATE, "the model has no optimizer: compile it first");
    pthread_mutex_lock(&m->lock);
    pn_plan *p = NULL;
    const void *yd = NULL;
    int rc = prepare(m, x, y, idx, batch, train ? PN_MODE_TRAIN : PN_MODE_INFER, &p, &yd);
    if (rc) goto done;
    if (train) p->seed = pn_hash64(m->seed, m->forwards++);
    pn_plan_forward(m, p);
    float loss = pn_loss_forward(m, p, yd);
    pn_metrics_sum(m, p, yd, results + 1);
    if (train) {
        m->eager_grads = 0; /* the step overwrites every gradient */
        pn_loss_backward(m, p, yd);
        pn_plan_backward(m, p);
        for (int v = 0; v < m->n_vars; v++) /* a variable no node reaches has a zero gradient */
            if (m->vars[v].trainable && !p->var_written[v])
                memset(m->grads + m->vars[v].offset, 0, (size_t)m->vars[v].size * sizeof(float));
    }
    loss += pn_regularizer_apply(m, p, train);
    if (train) pn_optimizer_step(m);
    results[0] = loss;
done:
    pthread_mutex_unlock(&m->lock);
    return rc;
}

int pn_model_train_step(pn_model *m, const pn_tensor *x, const pn_tensor *y, const int64_t *idx,
                        int64_t batch, float *results) {
    return run_step(m, x, y, idx, batch, results, 1);
}

int pn_model_test_step(pn_model *m, const pn_tensor *x, const pn_tensor *y, const int64_t *idx,
                       int64_t batch, float *results) {
    return run_step(m, x, y, idx, batch, results, 0);
}

int pn_model_gradients(pn_model *m, const pn_tensor *x, const pn_tensor *y, float *loss, float *dx) {
    pthread_mutex_lock(&m->lock);
    pn_plan *p = NULL;
    const void *yd = NULL;
    int rc = prepare(m, x, y, NULL, 0, dx ? PN_MODE_INPUT_GRAD : PN_MODE_TRAIN, &p, &yd);
    if (rc) goto done;
    p->seed = pn_hash64(m->seed, m->forwards++);
    pn_plan_forward(m, p);
    *loss = pn_loss_forward(m, p, yd);
    m->eager_grads = 0;
    pn_loss_backward(m, p, yd);
    pn_plan_backward(m, p);
    for (int v = 0; v < m->n_vars; v++)
        if (m->vars[v].trainable && !p->var_written[v])
            memset(m->grads + m->vars[v].offset, 0, (size_t)m->vars[v].size * sizeof(float));
    *loss += pn_regularizer_apply(m, p, 1);
    if (dx) {
        size_t bytes = (size_t)(p->batch * m->nodes[m->input].size) * sizeof(float);
        if (p->grad[m->input])
            memcpy(dx, p->grad[m->input], bytes);
        else
            memset(dx, 0, bytes);
    }
done:
    pthread_mutex_unlock(&m->lock);
    return rc;
}

int pn_model_plan_bytes(pn_model *m, int64_t batch, int training, int64_t *bytes) {
    if (m->output < 0) return pn_error(PN_ESTATE, "the model has no output");
    if (training && !m->compiled) return pn_error(PN_ESTATE, "the model must be compiled first");
    if (batch < 1) return pn_error(PN_EVALUE, "batch must be >= 1, got %lld", (long long)batch);
    pthread_mutex_lock(&m->lock);
    pn_plan *p = NULL;
    int rc = pn_model_get_plan(m, batch, training ? PN_MODE_TRAIN : PN_MODE_INFER, &p);
    if (rc == PN_OK) *bytes = p->arena_floats * (int64_t)sizeof(float);
    pthread_mutex_unlock(&m->lock);
    return rc;
}

int pn_model_predict(pn_model *m, const pn_tensor *x, int64_t batch_size, float *out) {
    if (m->output < 0) return pn_error(PN_ESTATE, "the model has no output");
    int rc = pn_model_check_input(m, x);
    if (rc) return rc;
    if (batch_size < 1) return pn_error(PN_EVALUE, "batch_size must be >= 1, got %lld",
                                        (long long)batch_size);
    if (x->dtype == PN_I32) {
        rc = pn_embedding_check(m, x->data, x->dims[0] * m->nodes[m->input].size);
        if (rc) return rc;
    }
    pthread_mutex_lock(&m->lock);
    int64_t n = x->dims[0], in_size = m->nodes[m->input].size, out_size = m->nodes[m->output].size;
    for (int64_t start = 0; start < n; start += batch_size) {
        int64_t b = n - start < batch_size ? n - start : batch_size;
        pn_plan *p;
        rc = pn_model_get_plan(m, b, PN_MODE_INFER, &p);
        if (rc) break;
        float *xin = (float *)x->data + start * in_size, *dst = out + start * out_size;
        if (m->output == m->input) {
            memcpy(dst, xin, (size_t)(b * out_size) * sizeof(float));
            continue;
        }
        /* The output node writes straight into the caller's array: no copy. */
        float *own = p->value[m->output];
        p->value[m->input] = xin;
        p->value[m->output] = dst;
        pn_plan_forward(m, p);
        p->value[m->output] = own;
    }
    pthread_mutex_unlock(&m->lock);
    return rc;
}
