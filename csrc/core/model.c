/*
 * model.c: building a model (variables, nodes, loss, optimizer) and running it (train, test,
 * gradients, predict). Every run takes the model's lock, checks its arguments before touching
 * any state, finds or builds the plan for its batch size, and releases the lock.
 */
#define _GNU_SOURCE /* pthread_mutexattr_settype's declaration with -std=c11 */
#include <errno.h>
#include <math.h>

#include "internal.h"

/* Every live model, for the fork handlers: a child of fork() must make each model's lock anew. */
static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static pn_model *registry;

/* Error-checking: a thread that locks a model it is running already (a signal handler that the
 * interrupt hook runs during a predict, calling that model) gets EDEADLK, not a wait for itself. */
static int init_lock(pthread_mutex_t *lock) {
    pthread_mutexattr_t attr;
    int rc = pthread_mutexattr_init(&attr);
    if (rc) return rc;
    pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_ERRORCHECK);
    rc = pthread_mutex_init(lock, &attr);
    pthread_mutexattr_destroy(&attr);
    return rc;
}

int pn_model_create(pn_model **out) {
    pn_process_init();
    pn_model *m = pn_calloc(1, sizeof *m);
    pn_graph *g = pn_calloc(1, sizeof *g);
    if (!m || !g) {
        free(m);
        free(g);
        return pn_error(PN_ENOMEM, "out of memory creating a model");
    }
    m->graphs[0] = m->g = g;
    m->refs = 1;
    if (init_lock(&m->lock) != 0) {
        free(g);
        free(m);
        return pn_error(PN_ENOMEM, "could not create the model's lock");
    }
    pthread_mutex_lock(&registry_lock);
    m->next = registry;
    if (registry) registry->prev = m;
    registry = m;
    pthread_mutex_unlock(&registry_lock);
    *out = m;
    return PN_OK;
}

static pn_wait_begin_fn wait_begin;
static pn_wait_end_fn wait_end;

void pn_set_wait_hooks(pn_wait_begin_fn begin, pn_wait_end_fn end) {
    wait_begin = begin;
    wait_end = end;
}

/* pthread_mutex_lock's result; a wait for another thread's run happens between the wait hooks */
static int lock_waiting(pn_model *m) {
    int rc = pthread_mutex_trylock(&m->lock);
    if (rc != EBUSY) return rc;
    void *token = wait_begin ? wait_begin() : NULL;
    rc = pthread_mutex_lock(&m->lock);
    if (wait_end) wait_end(token);
    return rc;
}

int pn_model_lock(pn_model *m) {
    if (lock_waiting(m) == EDEADLK)
        return pn_error(PN_ESTATE, "the model is running on this thread already: a signal "
                        "handler called it during one of its calls");
    if (m->torn) {
        pthread_mutex_unlock(&m->lock);
        return pn_error(PN_ESTATE, "this process was forked while another thread was updating "
                        "the model's weights, so its weights here may be partly updated: set "
                        "them again (set_weights or load_weights) before using the model");
    }
    return PN_OK;
}

void pn_model_unlock(pn_model *m) { pthread_mutex_unlock(&m->lock); }

/* fork(): no model is created or freed across it; in the child, the thread that held a model's
 * lock does not exist, so every lock is made anew, and a model whose weights that thread was
 * writing (a training step, set_weights) is torn until its weights are set again. */
void pn_models_before_fork(void) { pthread_mutex_lock(&registry_lock); }

void pn_models_after_fork_parent(void) { pthread_mutex_unlock(&registry_lock); }

void pn_models_after_fork_child(void) {
    for (pn_model *m = registry; m; m = m->next) {
        init_lock(&m->lock);
        if (m->writing) m->torn = 1;
        m->writing = 0;
    }
    pthread_mutex_init(&registry_lock, NULL);
}

/* Frees a graph's cached plans; one an eager call still holds is freed when that call releases
 * it. */
static void drop_graph_plans(pn_graph *g) {
    for (int i = 0; i < PN_PLAN_CACHE; i++) {
        int held = PLAN_HELD;
        if (g->plans[i] && !atomic_compare_exchange_strong(&g->plans[i]->held, &held,
                                                           PLAN_HELD_ORPHAN))
            pn_plan_destroy(g->plans[i]); /* not held: nobody else has it */
        g->plans[i] = NULL;
    }
}

static void drop_plans(pn_model *m) { drop_graph_plans(m->g); }

/* The current graph changed: its plans go, and eager calls made before it see a new version. */
static void graph_changed(pn_model *m) {
    drop_plans(m);
    m->g->graph_version = ++m->versions;
    m->g->compiled = 0;
}

static void free_graph(pn_graph *g) {
    if (!g) return;
    drop_graph_plans(g);
    for (int i = 0; i < g->n_nodes; i++) free(g->nodes[i].data);
    free(g->nodes);
    free(g);
}

void pn_model_retain(pn_model *m) { m->refs++; }

void pn_model_destroy(pn_model *m) { pn_model_release(m); }

void pn_model_release(pn_model *m) {
    if (!m || --m->refs > 0) return;
    pthread_mutex_lock(&registry_lock);
    if (m->prev) m->prev->next = m->next;
    else registry = m->next;
    if (m->next) m->next->prev = m->prev;
    pthread_mutex_unlock(&registry_lock);
    for (int i = 0; i < PN_MAX_GRAPHS; i++) free_graph(m->graphs[i]);
    free(m->vars);
    free(m->params);
    free(m->grads);
    free(m->opt_state);
    free(m->opt_scratch);
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
        pn_var *v = pn_realloc(m->vars, (size_t)cap * sizeof *v);
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
    float *p = pn_aligned_alloc(64, bytes), *g = pn_aligned_alloc(64, bytes);
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

/* Both under the model's lock, so that a run on another thread sees every variable old or every
 * one new; ids are checked before the lock. Writing every variable mends a model that a fork tore
 * (its weights are then whole again), which is why the write skips pn_model_lock's check. */
static int check_ids(const pn_model *m, int n, const int *ids) {
    if (!m->params) return pn_error(PN_ESTATE, "variables are not allocated yet");
    for (int i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= m->n_vars) return pn_error(PN_EVALUE, "no variable %d", ids[i]);
    return PN_OK;
}

int pn_model_write_variables(pn_model *m, int n, const int *ids, const float *const *src) {
    int rc = check_ids(m, n, ids);
    if (rc) return rc;
    unsigned char *seen = n > 0 ? pn_calloc((size_t)m->n_vars, 1) : NULL;
    if (n > 0 && !seen) return pn_error(PN_ENOMEM, "out of memory writing variables");
    int distinct = 0;
    if (lock_waiting(m) == EDEADLK) {
        free(seen);
        return pn_error(PN_ESTATE, "the model is running on this thread already: a signal "
                        "handler wrote its weights during one of its calls");
    }
    m->writing = 1;
    for (int i = 0; i < n; i++) {
        const pn_var *v = &m->vars[ids[i]];
        memcpy(m->params + v->offset, src[i], (size_t)v->size * sizeof(float));
        distinct += !seen[ids[i]];
        seen[ids[i]] = 1;
    }
    m->writing = 0;
    if (distinct == m->n_vars) m->torn = 0;
    pthread_mutex_unlock(&m->lock);
    free(seen);
    return PN_OK;
}

int pn_model_read_variables(pn_model *m, int n, const int *ids, float *const *dst) {
    int rc = check_ids(m, n, ids);
    if (rc || (rc = pn_model_lock(m))) return rc;
    for (int i = 0; i < n; i++) {
        const pn_var *v = &m->vars[ids[i]];
        memcpy(dst[i], m->params + v->offset, (size_t)v->size * sizeof(float));
    }
    pn_model_unlock(m);
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

int pn_model_set_bf16(pn_model *m, int on) {
    const int was = m->bf16_nodes;
    m->bf16_nodes = on != 0;
    return was;
}

static int push_node(pn_model *m, pn_node *nd, int *node) {
    if (m->g->n_nodes == m->g->cap_nodes) {
        int cap = m->g->cap_nodes ? 2 * m->g->cap_nodes : 16;
        pn_node *p = pn_realloc(m->g->nodes, (size_t)cap * sizeof *p);
        if (!p) return pn_error(PN_ENOMEM, "out of memory adding a node");
        m->g->nodes = p;
        m->g->cap_nodes = cap;
    }
    m->g->nodes[m->g->n_nodes] = *nd;
    m->g->nodes[m->g->n_nodes].bf16 = m->bf16_nodes;
    *node = m->g->n_nodes++;
    graph_changed(m);
    return PN_OK;
}

int pn_model_add_input(pn_model *m, int ndim, const int64_t *shape, pn_dtype dtype, int *node) {
    if (m->g->n_inputs == PN_MAX_MODEL_INPUTS)
        return pn_error(PN_EVALUE, "a model takes at most %d inputs", PN_MAX_MODEL_INPUTS);
    if (ndim < 1 || ndim > PN_MAX_DIMS - 1)
        return pn_error(PN_ESHAPE, "input: rank %d (batch excluded) is outside 1..%d", ndim,
                        PN_MAX_DIMS - 1);
    if (dtype != PN_F32 && dtype != PN_I32) return pn_error(PN_ETYPE, "input: unknown dtype");
    pn_node nd = {.op = PN_OP_INPUT, .dtype = dtype, .ndim = ndim};
    int rc = check_shape("input", ndim, shape, &nd.size);
    if (rc) return rc;
    memcpy(nd.shape, shape, (size_t)ndim * sizeof *shape);
    rc = push_node(m, &nd, node);
    if (rc == PN_OK) m->g->inputs[m->g->n_inputs++] = *node;
    return rc;
}

int pn_model_add_target(pn_model *m, int k, int kind, int ndim, const int64_t *shape, int *node) {
    if (k < 0 || k >= m->g->n_outputs)
        return pn_error(PN_EVALUE, "target: output %d does not exist (the model has %d)", k,
                        m->g->n_outputs);
    if (kind != 0 && kind != 1)
        return pn_error(PN_EVALUE, "target: kind must be 0 (targets) or 1 (sample weights), "
                        "got %d", kind);
    if (m->g->targets[k][kind])
        return pn_error(PN_EVALUE, "target: output %d already has its %s node", k,
                        kind ? "sample-weight" : "target");
    if (ndim < 0 || ndim > PN_MAX_DIMS - 1)
        return pn_error(PN_ESHAPE, "target: rank %d (batch excluded) is outside 0..%d", ndim,
                        PN_MAX_DIMS - 1);
    if (ndim > 0 && !shape) return pn_error(PN_EVALUE, "target: no shape");
    if (kind == 1 && ndim != 0)
        return pn_error(PN_ESHAPE, "target: sample weights are one value per sample, shape ()");
    pn_node nd = {.op = PN_OP_TARGET, .dtype = PN_F32, .ndim = ndim, .iattr = {k, kind}};
    int rc = check_shape("target", ndim, shape, &nd.size);
    if (rc) return rc;
    if (ndim > 0) memcpy(nd.shape, shape, (size_t)ndim * sizeof *shape);
    rc = push_node(m, &nd, node);
    if (rc == PN_OK) m->g->targets[k][kind] = *node + 1;
    return rc;
}

int pn_model_input_count(const pn_model *m) { return m->g->n_inputs; }
int pn_model_input_node(const pn_model *m, int k) {
    return k >= 0 && k < m->g->n_inputs ? m->g->inputs[k] : -1;
}

/* Fills node nd's dtype, shape, size and batchedness from its inputs in m, or refuses it. */
static int infer(const pn_model *m, pn_node *nd) {
    const char *name = pn_op_name(nd->op);
    /* batched when any input is (an op without inputs makes an unbatched value, unless its
     * shape function says otherwise); only broadcasting ops mix the two kinds */
    int n_batched = 0;
    for (int j = 0; j < nd->n_in; j++) n_batched += !m->g->nodes[nd->in[j]].unbatched;
    nd->unbatched = n_batched == 0;
    if (n_batched > 0 && n_batched < nd->n_in && !(pn_op_table[nd->op]->flags & PN_OPF_MIXED))
        return pn_error(PN_ESHAPE, "%s: takes tensors with a batch axis, or tensors without "
                        "one (made from weights and constants), not both", name);
    int rc = pn_op_table[nd->op]->shape(m, nd);
    if (rc) return rc;
    if (!nd->unbatched && nd->ndim > PN_MAX_DIMS - 1)
        return pn_error(PN_ESHAPE, "%s: its output would have rank %d with the batch axis; at "
                        "most %d", name, nd->ndim + 1, PN_MAX_DIMS);
    return check_shape(name, nd->ndim, nd->shape, &nd->size);
}

int pn_infer_node(int op, int n_in, const pn_shape_desc *in, int n_var, const pn_shape_desc *vars,
                  const int *iattr, const float *fattr, pn_shape_desc *out) {
    if (op <= PN_OP_INPUT || op >= PN_OP_COUNT) return pn_error(PN_EVALUE, "unknown op %d", op);
    if (n_in < 0 || n_in > PN_MAX_INPUTS || n_var < 0 || n_var > PN_MAX_VARS)
        return pn_error(PN_EVALUE, "%s: too many inputs or variables", pn_op_name(op));
    pn_node nodes[PN_MAX_INPUTS];
    pn_var vs[PN_MAX_VARS];
    pn_node nd = {.op = op, .n_in = n_in, .n_var = n_var};
    for (int j = 0; j < n_in; j++) {
        pn_node x = {.op = PN_OP_INPUT, .dtype = in[j].dtype, .ndim = in[j].ndim,
                     .unbatched = in[j].unbatched != 0};
        if (in[j].dtype != PN_F32 && in[j].dtype != PN_I32)
            return pn_error(PN_ETYPE, "%s: unknown dtype", pn_op_name(op));
        memcpy(x.shape, in[j].shape, sizeof x.shape);
        int rc = check_shape(pn_op_name(op), x.ndim, x.shape, &x.size);
        if (rc) return rc;
        nodes[j] = x;
        nd.in[j] = j;
    }
    for (int k = 0; k < n_var; k++) {
        pn_var v = {.ndim = vars[k].ndim};
        memcpy(v.shape, vars[k].shape, sizeof v.shape);
        int rc = check_shape(pn_op_name(op), v.ndim, v.shape, &v.size);
        if (rc) return rc;
        vs[k] = v;
        nd.var[k] = k;
    }
    for (int a = 0; a < PN_MAX_ATTRS; a++) {
        nd.iattr[a] = iattr ? iattr[a] : 0;
        nd.fattr[a] = fattr ? fattr[a] : 0.0f;
    }
    pn_graph g = {.nodes = nodes, .n_nodes = n_in};
    pn_model tmp;
    memset(&tmp, 0, sizeof tmp);
    tmp.g = &g;
    tmp.vars = vs;
    tmp.n_vars = n_var;
    int rc = infer(&tmp, &nd);
    if (rc) return rc;
    out->ndim = nd.ndim;
    memcpy(out->shape, nd.shape, sizeof out->shape);
    out->dtype = nd.dtype;
    out->unbatched = nd.unbatched;
    return PN_OK;
}

int pn_model_add_node(pn_model *m, int op, int n_in, const int *inputs, int n_var, const int *vars,
                      const int *iattr, const float *fattr, int *node) {
    if (op <= PN_OP_INPUT || op >= PN_OP_COUNT) return pn_error(PN_EVALUE, "unknown op %d", op);
    const char *name = pn_op_name(op);
    if (n_in < 0 || n_in > PN_MAX_INPUTS || n_var < 0 || n_var > PN_MAX_VARS)
        return pn_error(PN_EVALUE, "%s: too many inputs or variables", name);
    pn_node nd = {.op = op, .n_in = n_in, .n_var = n_var};
    for (int j = 0; j < n_in; j++) {
        if (inputs[j] < 0 || inputs[j] >= m->g->n_nodes)
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
    int rc = infer(m, &nd);
    if (rc) return rc;
    return push_node(m, &nd, node);
}

int pn_model_add_constant(pn_model *m, int ndim, const int64_t *shape, const float *data,
                          int *node) {
    pn_node nd = {.op = PN_OP_CONSTANT, .dtype = PN_F32, .unbatched = 1, .ndim = ndim};
    int rc = check_shape("constant", ndim, shape, &nd.size);
    if (rc) return rc;
    if (ndim > 0) memcpy(nd.shape, shape, (size_t)ndim * sizeof *shape);
    if (!(nd.data = pn_aligned_alloc(64, (size_t)(nd.size > 0 ? nd.size : 1) * sizeof(float))))
        return pn_error(PN_ENOMEM, "out of memory for a constant of %lld values",
                        (long long)nd.size);
    memcpy(nd.data, data, (size_t)nd.size * sizeof(float));
    if ((rc = push_node(m, &nd, node))) free(nd.data);
    return rc;
}

/* ---- graphs over one set of variables ------------------------------------------------------ */

int pn_model_add_graph(pn_model *m, int *id) {
    int slot = 0;
    while (slot < PN_MAX_GRAPHS && m->graphs[slot]) slot++;
    if (slot == PN_MAX_GRAPHS)
        return pn_error(PN_ESTATE, "a model holds at most %d graphs: drop one first",
                        PN_MAX_GRAPHS);
    pn_graph *g = pn_calloc(1, sizeof *g);
    if (!g) return pn_error(PN_ENOMEM, "out of memory adding a graph");
    int rc = pn_model_lock(m);
    if (rc) {
        free(g);
        return rc;
    }
    g->graph_version = ++m->versions;
    m->graphs[slot] = m->g = g;
    pn_model_unlock(m);
    *id = slot;
    return PN_OK;
}

static int check_graph(const pn_model *m, int id) {
    if (id < 0 || id >= PN_MAX_GRAPHS || !m->graphs[id])
        return pn_error(PN_EVALUE, "the model has no graph %d", id);
    return PN_OK;
}

int pn_model_use_graph(pn_model *m, int id) {
    int rc = check_graph(m, id);
    if (rc || (rc = pn_model_lock(m))) return rc;
    m->g = m->graphs[id];
    pn_model_unlock(m);
    return PN_OK;
}

int pn_model_drop_graph(pn_model *m, int id) {
    int rc = check_graph(m, id);
    if (rc) return rc;
    pn_graph *g = m->graphs[id];
    if (g == m->g) return pn_error(PN_ESTATE, "graph %d is the current one", id);
    if ((rc = pn_model_lock(m))) return rc;
    if (atomic_load(&g->calls) > 0)
        rc = pn_error(PN_ESTATE, "graph %d is held by eager calls still on a tape", id);
    if (rc == PN_OK) {
        m->graphs[id] = NULL;
        free_graph(g);
    }
    pn_model_unlock(m);
    return rc;
}

int pn_model_current_graph(const pn_model *m) {
    for (int i = 0; i < PN_MAX_GRAPHS; i++)
        if (m->graphs[i] == m->g) return i;
    return -1;
}

int pn_model_node_dtype(const pn_model *m, int node) {
    if (node < 0 || node >= m->g->n_nodes) return pn_error(PN_EVALUE, "no node %d", node);
    return (int)m->g->nodes[node].dtype;
}

int pn_model_node_unbatched(const pn_model *m, int node) {
    if (node < 0 || node >= m->g->n_nodes) return pn_error(PN_EVALUE, "no node %d", node);
    return m->g->nodes[node].unbatched;
}

int pn_model_node_shape(const pn_model *m, int node, int64_t *shape) {
    if (node < 0 || node >= m->g->n_nodes) return pn_error(PN_EVALUE, "no node %d", node);
    memcpy(shape, m->g->nodes[node].shape, (size_t)m->g->nodes[node].ndim * sizeof *shape);
    return m->g->nodes[node].ndim;
}

/* ---- compile and optimizer ----------------------------------------------------------------- */

int pn_model_set_outputs(pn_model *m, int n, const int *nodes) {
    if (n < 1 || n > PN_MAX_OUTPUTS)
        return pn_error(PN_EVALUE, "a model has 1..%d outputs, got %d", PN_MAX_OUTPUTS, n);
    if (m->g->n_inputs < 1) return pn_error(PN_ESTATE, "the model has no input");
    for (int k = 0; k < n; k++) {
        if (nodes[k] < 0 || nodes[k] >= m->g->n_nodes)
            return pn_error(PN_EVALUE, "no node %d", nodes[k]);
        if (m->g->nodes[nodes[k]].unbatched)
            return pn_error(PN_ESHAPE, "output %d has no batch axis (it is computed from weights "
                            "and constants only): a model's outputs are per sample", k);
        if (m->g->nodes[nodes[k]].ndim == 0)
            return pn_error(PN_ESHAPE, "output %d holds one value per sample (shape (None,)); "
                            "give it an axis (shape (None, 1)), as the losses read rows", k);
        if (m->g->nodes[nodes[k]].dtype != PN_F32)
            return pn_error(PN_ETYPE, n > 1 ? "output %d must be float32" : "the output must be "
                            "float32", k);
    }
    memcpy(m->g->outputs, nodes, (size_t)n * sizeof *nodes);
    m->g->n_outputs = n;
    for (int k = 0; k < PN_MAX_OUTPUTS; k++) m->g->masks[k] = -1;
    m->g->n_masked = 0;
    graph_changed(m);
    return PN_OK;
}

int pn_model_set_output(pn_model *m, int node) { return pn_model_set_outputs(m, 1, &node); }

int pn_model_set_added_losses(pn_model *m, int n, const int *nodes) {
    if (n < 0 || n > PN_MAX_ADDED_LOSSES)
        return pn_error(PN_EVALUE, "at most %d added losses, got %d", PN_MAX_ADDED_LOSSES, n);
    for (int k = 0; k < n; k++) {
        if (nodes[k] < 0 || nodes[k] >= m->g->n_nodes)
            return pn_error(PN_EVALUE, "added loss %d: node %d does not exist", k, nodes[k]);
        const pn_node *nd = &m->g->nodes[nodes[k]];
        if (nd->dtype != PN_F32 || !nd->unbatched || nd->size != 1)
            return pn_error(PN_ESHAPE, "added loss %d must be a float32 scalar over the batch "
                            "(no batch axis)", k);
    }
    drop_plans(m);
    if (n > 0) memcpy(m->g->added, nodes, (size_t)n * sizeof *nodes);
    m->g->n_added = n;
    m->g->graph_version = ++m->versions;
    return PN_OK;
}
int pn_model_output_count(const pn_model *m) { return m->g->n_outputs; }
int pn_model_output_node(const pn_model *m, int k) {
    return k >= 0 && k < m->g->n_outputs ? m->g->outputs[k] : -1;
}

int pn_model_output_shape(const pn_model *m, int k, int64_t *shape) {
    if (m->g->n_outputs < 1) return pn_error(PN_ESTATE, "the model has no output yet");
    if (k < 0 || k >= m->g->n_outputs)
        return pn_error(PN_EVALUE, "no output %d: the model has %d", k, m->g->n_outputs);
    return pn_model_node_shape(m, m->g->outputs[k], shape);
}

int pn_model_set_output_masks(pn_model *m, int n, const int *nodes) {
    const pn_graph *g = m->g;
    if (g->n_outputs < 1) return pn_error(PN_ESTATE, "the model has no output to mask");
    if (n != g->n_outputs || (n > 0 && !nodes))
        return pn_error(PN_EVALUE, "output masks: one node (or -1) per output: the model has %d "
                        "outputs, got %d", g->n_outputs, n);
    int n_masked = 0;
    for (int k = 0; k < n; k++) {
        const int id = nodes[k];
        if (id == -1) continue;
        if (id < 0 || id >= g->n_nodes)
            return pn_error(PN_EVALUE, "output %d's mask: no node %d in the current graph (it "
                            "has %d)", k, id, g->n_nodes);
        const pn_node *mk = &g->nodes[id], *o = &g->nodes[g->outputs[k]];
        if (mk->dtype != PN_F32)
            return pn_error(PN_ETYPE, "output %d's mask (node %d) must be float32", k, id);
        if (mk->unbatched)
            return pn_error(PN_ESHAPE, "output %d's mask (node %d) has no batch axis: a mask "
                            "holds a value per row of each sample", k, id);
        const int64_t rows = o->size / o->shape[o->ndim - 1];
        if (mk->size != rows)
            return pn_error(PN_ESHAPE, "output %d's mask (node %d) holds %lld values per sample, "
                            "the output has %lld rows per sample (its size over its last axis, "
                            "%lld)", k, id, (long long)mk->size, (long long)rows,
                            (long long)o->shape[o->ndim - 1]);
        n_masked++;
    }
    drop_plans(m);
    memcpy(m->g->masks, nodes, (size_t)n * sizeof *nodes);
    if (m->g->compiled) m->g->n_results += n_masked - m->g->n_masked;
    m->g->n_masked = n_masked;
    return PN_OK;
}

int pn_model_output_mask(const pn_model *m, int k) {
    return k >= 0 && k < m->g->n_outputs ? m->g->masks[k] : -1;
}

int pn_model_compile_outputs(pn_model *m, const pn_loss_config *cfg) {
    if (m->g->n_outputs < 1) return pn_error(PN_ESTATE, "the model has no output");
    if (!m->params) return pn_error(PN_ESTATE, "the model's variables are not allocated");
    int n_results = 1 + (m->g->n_outputs > 1 ? m->g->n_outputs : 0);
    for (int o = 0; o < m->g->n_outputs; o++) {
        const pn_loss_config *c = &cfg[o];
        if ((int)c->loss < 0 || c->loss >= PN_LOSS_COUNT)
            return pn_error(PN_EVALUE, "unknown loss %d", c->loss);
        if (!isfinite(c->weight))
            return pn_error(PN_EVALUE, "loss weight %d must be finite, got %g", o, c->weight);
        if (c->n_metrics < 0 || c->n_metrics > PN_MAX_METRICS)
            return pn_error(PN_EVALUE, "at most %d metrics", PN_MAX_METRICS);
        if (c->loss == PN_LOSS_NONE && c->n_metrics > 0)
            return pn_error(PN_EVALUE, "output %d has no fused loss (none): its metrics are "
                            "computed outside the core", o);
        if (c->loss != PN_LOSS_NONE && m->g->targets[o][0])
            return pn_error(PN_EVALUE, "output %d has a target node: its loss must be none (the "
                            "added losses read the targets)", o);
        int sparse = c->loss == PN_LOSS_SPARSE_CE;
        for (int k = 0; k < c->n_metrics; k++) {
            int size = pn_metric_size(&c->metrics[k]);
            if (size < 0) return size;
            const char *name = pn_metric_name(c->metrics[k].kind);
            if (pn_metric_sparse_targets(c->metrics[k].kind) != sparse)
                return pn_error(PN_EVALUE,
                                sparse ? "%s needs float targets shaped like the output, but "
                                         "sparse_categorical_crossentropy takes integer labels"
                                       : "%s needs integer labels "
                                         "(sparse_categorical_crossentropy)",
                                name);
            n_results += size;
        }
    }
    drop_plans(m);
    for (int o = 0; o < m->g->n_outputs; o++) {
        m->g->out[o] = cfg[o];
        m->g->out[o].from_logits = cfg[o].from_logits != 0;
    }
    m->g->n_results = n_results + m->g->n_masked;
    m->g->compiled = 1;
    return PN_OK;
}

int pn_model_compile(pn_model *m, pn_loss_kind loss, int from_logits, int n_metrics,
                     const pn_metric *metrics) {
    if (n_metrics < 0 || n_metrics > PN_MAX_METRICS)
        return pn_error(PN_EVALUE, "at most %d metrics", PN_MAX_METRICS);
    pn_loss_config cfg[PN_MAX_OUTPUTS];
    for (int o = 0; o < PN_MAX_OUTPUTS; o++) {
        cfg[o] = (pn_loss_config){.loss = loss, .from_logits = from_logits, .weight = 1.0f,
                                  .n_metrics = n_metrics};
        if (n_metrics > 0) memcpy(cfg[o].metrics, metrics, (size_t)n_metrics * sizeof *metrics);
    }
    return pn_model_compile_outputs(m, cfg);
}

int pn_model_result_count(const pn_model *m) { return m->g->compiled ? m->g->n_results : 0; }

int pn_model_set_optimizer(pn_model *m, const pn_optim_config *cfg) {
    if (!m->params) return pn_error(PN_ESTATE, "the model's variables are not allocated");
    return pn_optimizer_create(m, cfg); /* optimizer.c */
}

int pn_model_set_learning_rate(pn_model *m, float lr) {
    if (!(lr >= 0.0f) || isinf(lr))
        return pn_error(PN_EVALUE, "learning_rate must be finite and >= 0, got %g", lr);
    m->opt.learning_rate = lr;
    return PN_OK;
}

float pn_model_learning_rate(const pn_model *m) { return m->opt.learning_rate; }
int64_t pn_model_iterations(const pn_model *m) { return m->iterations; }
int pn_model_set_iterations(pn_model *m, int64_t it) {
    if (it < 0 || it > PN_MAX_ITERATIONS)
        return pn_error(PN_EVALUE, "iterations must be in 0..2^53, got %lld", (long long)it);
    m->iterations = it;
    return PN_OK;
}
void pn_model_set_seed(pn_model *m, uint64_t seed) { pn_model_set_rng_state(m, seed, 0); }

void pn_model_rng_state(const pn_model *m, uint64_t *seed, uint64_t *forwards) {
    *seed = m->seed;
    *forwards = m->forwards;
}

void pn_model_set_rng_state(pn_model *m, uint64_t seed, uint64_t forwards) {
    m->seed = seed;
    m->forwards = forwards;
}

int pn_model_optimizer_state(pn_model *m, float **state, int64_t *n) {
    *state = m->opt_state;
    *n = (int64_t)m->n_slots * m->n_trainable + m->n_opt_scalars;
    return PN_OK;
}

/* ---- running ------------------------------------------------------------------------------- */

/* The cached plan for (batch, mode) that no eager call holds, or a new one in a free slot or in
 * place of the least recently used plan that is not held; when every slot is held, the new plan
 * is an orphan from the start (freed when released). */
int pn_model_get_plan(pn_model *m, int64_t batch, pn_mode mode, pn_plan **out) {
    int free_slot = -1, lru = -1;
    for (int i = 0; i < PN_PLAN_CACHE; i++) {
        pn_plan *p = m->g->plans[i];
        if (!p) {
            if (free_slot < 0) free_slot = i;
            continue;
        }
        if (atomic_load(&p->held)) continue;
        if (p->batch == batch && p->mode == mode) {
            p->last_used = ++m->g->clock;
            p->targets_set = 0; /* until a step points the target nodes at its data */
            *out = p;
            return PN_OK;
        }
        if (lru < 0 || p->last_used < m->g->plans[lru]->last_used) lru = i;
    }
    pn_plan *p = NULL;
    int rc = pn_plan_create(&p, m, batch, mode);
    if (rc) return rc;
    int slot = free_slot >= 0 ? free_slot : lru;
    if (slot >= 0) {
        pn_plan_destroy(m->g->plans[slot]);
        m->g->plans[slot] = p;
    } else {
        p->orphan = 1;
    }
    p->last_used = ++m->g->clock;
    *out = p;
    return PN_OK;
}

/* A step is done with its plan: one made when eager calls held every slot was never cached
 * (an orphan) and is freed now. */
static void plan_done(pn_plan *p) {
    if (p && p->orphan && !atomic_load(&p->held)) pn_plan_destroy(p);
}

void pn_model_put_plan(pn_model *m, pn_plan *p) {
    (void)m;
    int held = PLAN_HELD;
    if (!atomic_compare_exchange_strong(&p->held, &held, PLAN_FREE))
        pn_plan_destroy(p); /* PLAN_HELD_ORPHAN: out of the cache, ours alone */
}

/* xs[k]: (n, input k's shape...) of input k's element type. */
int pn_model_check_input(const pn_model *m, int k, const pn_tensor *x) {
    const pn_node *in = &m->g->nodes[m->g->inputs[k]];
    char what[32] = "input";
    if (m->g->n_inputs > 1) snprintf(what, sizeof what, "input %d", k);
    if (x->dtype != in->dtype) return pn_error(PN_ETYPE, "%s: wrong element type", what);
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
        return pn_error(PN_ESHAPE, "%s: expected shape %s, got %s", what, want, got);
    }
    return PN_OK;
}

/* Every input checked, all with the same number of samples, written to *n. */
static int check_xs(const pn_model *m, const pn_tensor *xs, int64_t *n) {
    if (m->g->n_inputs < 1) return pn_error(PN_ESTATE, "the model has no input");
    for (int k = 0; k < m->g->n_inputs; k++) {
        int rc = pn_model_check_input(m, k, &xs[k]);
        if (rc) return rc;
        if (xs[k].dims[0] != xs[0].dims[0])
            return pn_error(PN_ESHAPE, "input %d has %lld samples but input 0 has %lld: every "
                            "input needs the same number", k, (long long)xs[k].dims[0],
                            (long long)xs[0].dims[0]);
    }
    *n = xs[0].dims[0];
    return PN_OK;
}

/* Embedding indices of every int32 input (rows of it from start, count rows). */
static int check_indices(const pn_model *m, const pn_tensor *xs, const float *const *data,
                         int64_t rows) {
    for (int k = 0; k < m->g->n_inputs; k++) {
        int in = m->g->inputs[k];
        int64_t n = rows * m->g->nodes[in].size;
        int rc = xs[k].dtype == PN_I32
                     ? pn_embedding_check(m, in, (const int32_t *)(const void *)data[k], n)
                     : pn_embedding_check_f32(m, in, data[k], n);
        if (rc) return rc;
    }
    return PN_OK;
}

static int check_y(const pn_model *m, int k, int64_t n, const pn_tensor *y) {
    pn_dtype want = m->g->out[k].loss == PN_LOSS_SPARSE_CE ? PN_I32 : PN_F32;
    char what[32] = "y", msg[32] = "targets";
    if (m->g->n_outputs > 1) {
        snprintf(what, sizeof what, "y[%d]", k);
        snprintf(msg, sizeof msg, "targets of output %d", k);
    }
    if (y->dtype != want)
        return pn_error(PN_ETYPE, "%s must be %s for this loss", msg,
                        want == PN_I32 ? "int32 class indices" : "float32");
    if (y->ndim < 1 || y->dims[0] != n)
        return pn_error(PN_ESHAPE, "x has %lld samples but %s has %lld", (long long)n, what,
                        (long long)(y->ndim ? y->dims[0] : 0));
    int64_t per = 1, ts = pn_loss_target_size(m, k);
    for (int i = 1; i < y->ndim; i++) per *= y->dims[i];
    if (per != ts) {
        if (m->g->n_outputs > 1)
            return pn_error(PN_ESHAPE, "each target of output %d has %lld values, the output "
                            "needs %lld", k, (long long)per, (long long)ts);
        return pn_error(PN_ESHAPE, "each target has %lld values, the model's output needs %lld",
                        (long long)per, (long long)ts);
    }
    return PN_OK;
}

static void gather(void *dst, const void *src, const int64_t *idx, int64_t batch, int64_t row) {
    size_t bytes = (size_t)row * 4;
    for (int64_t b = 0; b < batch; b++)
        memcpy((char *)dst + (size_t)b * bytes, (const char *)src + (size_t)idx[b] * bytes, bytes);
}

/* A fresh random stream for an inference forward (random ops draw new noise each run). */
void pn_model_infer_seed(pn_model *m, pn_plan *p) {
    p->seed = pn_hash64(m->seed ^ UINT64_C(0x9e3779b97f4a7c15), m->infer_forwards++);
}

/* The plan's forward; a fault a node found in its data (an index out of range), with its
 * message, or 0. */
static int plan_forward(const pn_model *m, pn_plan *p) {
    pn_fault_take();
    pn_plan_forward(m, p);
    return pn_fault_take();
}

/* Common entry of train/test/gradients: checks, plan, gathered inputs and targets. */
static int prepare(pn_model *m, const pn_tensor *xs, const pn_tensor *ys,
                   const float *const *sw, const int64_t *idx, int64_t batch, pn_mode mode,
                   pn_plan **out, const void **yd, const float **wd) {
    if (!m->g->compiled) return pn_error(PN_ESTATE, "the model must be compiled before training");
    int64_t n = 0;
    int rc = check_xs(m, xs, &n);
    for (int k = 0; !rc && k < m->g->n_outputs; k++) rc = check_y(m, k, n, &ys[k]);
    if (rc) return rc;
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
    *out = p; /* even when a check below fails: the caller hands it back (plan_done) */
    for (int k = 0; k < m->g->n_inputs; k++) {
        int in = m->g->inputs[k];
        if (idx) {
            gather(p->xbuf[k], xs[k].data, idx, batch, m->g->nodes[in].size);
            p->value[in] = p->xbuf[k];
        } else {
            p->value[in] = xs[k].data;
        }
    }
    const float *xd[PN_MAX_MODEL_INPUTS];
    for (int k = 0; k < m->g->n_inputs; k++) xd[k] = p->value[m->g->inputs[k]];
    rc = check_indices(m, xs, xd, batch);
    if (rc) return rc;
    for (int k = 0; k < m->g->n_outputs; k++) {
        pn_tensor yb = ys[k];
        if (idx) {
            gather(p->ybuf[k], ys[k].data, idx, batch, pn_loss_target_size(m, k));
            yb.data = p->ybuf[k];
        }
        rc = pn_loss_check_targets(m, k, &yb, batch);
        if (rc) return rc;
        yd[k] = yb.data;
        wd[k] = NULL;
        float *w = p->wbuf + k * batch;
        if (m->g->targets[k][0]) p->value[m->g->targets[k][0] - 1] = (float *)(uintptr_t)yb.data;
        if (m->g->targets[k][1]) { /* the weight node reads w: ones unless the step has some */
            p->value[m->g->targets[k][1] - 1] = w;
            if (!sw || !sw[k])
                for (int64_t b = 0; b < batch; b++) w[b] = 1.0f;
        }
        if (!sw || !sw[k]) continue;
        if (idx)
            gather(w, sw[k], idx, batch, 1);
        else
            memcpy(w, sw[k], (size_t)batch * sizeof *w);
        for (int64_t b = 0; b < batch; b++)
            if (!(w[b] >= 0.0f) || isinf(w[b]))
                return pn_error(PN_EVALUE, "sample weights must be finite and >= 0, got %g",
                                (double)w[b]);
        wd[k] = w;
    }
    p->targets_set = 1;
    return PN_OK;
}

/* Forward has run: the losses (total into *total; with several outputs each one's own into
 * losses) and, when sums is non-NULL, every output's metric sums in turn, then the masked
 * outputs' metric weights. */
static void losses_and_metrics(pn_model *m, const pn_plan *p, const void *const *yd,
                               const float *const *wd, float *total, float *losses, float *sums) {
    float t = 0.0f;
    for (int k = 0; p->with_added && k < m->g->n_added; k++) t += p->value[m->g->added[k]][0];
    for (int k = 0; k < m->g->n_outputs; k++) {
        float l = pn_loss_forward(m, p, k, yd[k], wd[k]);
        t += m->g->out[k].weight * l;
        if (m->g->n_outputs > 1 && losses) losses[k] = l;
        if (sums) {
            pn_metrics_sum(m, p, k, yd[k], sums);
            for (int i = 0; i < m->g->out[k].n_metrics; i++)
                sums += pn_metric_size(&m->g->out[k].metrics[i]);
        }
    }
    for (int k = 0; sums && k < m->g->n_outputs; k++)
        if (m->g->masks[k] >= 0) *sums++ = pn_metrics_weight(m, p, k);
    *total = t;
}

static void backward(pn_model *m, pn_plan *p, const void *const *yd, const float *const *wd) {
    m->eager_grads = 0; /* the step overwrites every gradient */
    for (int k = 0; k < m->g->n_outputs; k++) pn_loss_backward(m, p, k, yd[k], wd[k]);
    for (int k = 0; p->with_added && k < m->g->n_added; k++) {
        float *g = p->grad[m->g->added[k]];
        if (g) g[0] = p->added_acc[k] ? g[0] + 1.0f : 1.0f;
    }
    pn_plan_backward(m, p);
    for (int v = 0; v < m->n_vars; v++) /* a variable no node reaches has a zero gradient */
        if (m->vars[v].trainable && !p->var_written[v])
            memset(m->grads + m->vars[v].offset, 0, (size_t)m->vars[v].size * sizeof(float));
}

/* The forward's outputs (and masks) into outs[k] (masks[k]) where non-NULL: what metrics outside
 * the core read. */
static void copy_outputs(const pn_model *m, const pn_plan *p, float *const *outs,
                         float *const *masks) {
    for (int k = 0; k < m->g->n_outputs; k++) {
        const int out = m->g->outputs[k];
        if (outs[k])
            memcpy(outs[k], p->value[out],
                   (size_t)(p->batch * m->g->nodes[out].size) * sizeof(float));
        if (masks && masks[k] && m->g->masks[k] >= 0)
            memcpy(masks[k], p->value[m->g->masks[k]],
                   (size_t)(p->batch * m->g->nodes[m->g->masks[k]].size) * sizeof(float));
    }
}

static int run_step(pn_model *m, const pn_tensor *xs, const pn_tensor *ys,
                    const float *const *sw, const int64_t *idx, int64_t batch, float *results,
                    float *const *outs, float *const *masks, int train) {
    if (train && !m->has_optimizer)
        return pn_error(PN_ESTATE, "the model has no optimizer: compile it first");
    int rc = pn_model_lock(m);
    if (rc) return rc;
    pn_plan *p = NULL;
    const void *yd[PN_MAX_OUTPUTS];
    const float *wd[PN_MAX_OUTPUTS];
    rc = prepare(m, xs, ys, sw, idx, batch, train ? PN_MODE_TRAIN : PN_MODE_INFER, &p, yd, wd);
    if (rc) goto done;
    m->writing = train;
    if (train)
        p->seed = pn_hash64(m->seed, m->forwards++);
    else
        pn_model_infer_seed(m, p);
    if ((rc = plan_forward(m, p))) { /* bad data in a node: no loss, no update */
        m->writing = 0;
        goto done;
    }
    if (outs) copy_outputs(m, p, outs, masks);
    float loss;
    int n_loss = m->g->n_outputs > 1 ? m->g->n_outputs : 0;
    losses_and_metrics(m, p, yd, wd, &loss, results + 1, results + 1 + n_loss);
    if (train) backward(m, p, yd, wd);
    loss += pn_regularizer_apply(m, p, train);
    if (train) pn_optimizer_step(m);
    results[0] = loss;
    m->writing = 0;
done:
    plan_done(p);
    pn_model_unlock(m);
    return rc;
}

int pn_model_train_step(pn_model *m, const pn_tensor *xs, const pn_tensor *ys,
                        const float *const *sw, const int64_t *idx, int64_t batch,
                        float *results) {
    return run_step(m, xs, ys, sw, idx, batch, results, NULL, NULL, 1);
}

int pn_model_test_step(pn_model *m, const pn_tensor *xs, const pn_tensor *ys,
                       const float *const *sw, const int64_t *idx, int64_t batch,
                       float *results) {
    return run_step(m, xs, ys, sw, idx, batch, results, NULL, NULL, 0);
}

int pn_model_train_step_outputs(pn_model *m, const pn_tensor *xs, const pn_tensor *ys,
                                const float *const *sw, const int64_t *idx, int64_t batch,
                                float *results, float *const *outs, float *const *masks) {
    return run_step(m, xs, ys, sw, idx, batch, results, outs, masks, 1);
}

int pn_model_test_step_outputs(pn_model *m, const pn_tensor *xs, const pn_tensor *ys,
                               const float *const *sw, const int64_t *idx, int64_t batch,
                               float *results, float *const *outs, float *const *masks) {
    return run_step(m, xs, ys, sw, idx, batch, results, outs, masks, 0);
}

int pn_model_gradients(pn_model *m, const pn_tensor *xs, const pn_tensor *ys, float *loss,
                       float *const *dx) {
    int want_dx = 0;
    for (int k = 0; dx && k < m->g->n_inputs; k++) want_dx |= dx[k] != NULL;
    int rc = pn_model_lock(m);
    if (rc) return rc;
    pn_plan *p = NULL;
    const void *yd[PN_MAX_OUTPUTS];
    const float *wd[PN_MAX_OUTPUTS];
    rc = prepare(m, xs, ys, NULL, NULL, 0, want_dx ? PN_MODE_INPUT_GRAD : PN_MODE_TRAIN, &p,
                     yd, wd);
    if (rc) goto done;
    p->seed = pn_hash64(m->seed, m->forwards++);
    if ((rc = plan_forward(m, p))) goto done;
    losses_and_metrics(m, p, yd, wd, loss, NULL, NULL);
    backward(m, p, yd, wd);
    *loss += pn_regularizer_apply(m, p, 1);
    for (int k = 0; want_dx && k < m->g->n_inputs; k++) {
        if (!dx[k]) continue;
        int in = m->g->inputs[k];
        size_t bytes = (size_t)(p->batch * m->g->nodes[in].size) * sizeof(float);
        if (p->grad[in])
            memcpy(dx[k], p->grad[in], bytes);
        else
            memset(dx[k], 0, bytes);
    }
done:
    plan_done(p);
    pn_model_unlock(m);
    return rc;
}

int pn_model_plan_bytes(pn_model *m, int64_t batch, int training, int64_t *bytes) {
    if (m->g->n_outputs < 1) return pn_error(PN_ESTATE, "the model has no output");
    if (training && !m->g->compiled) return pn_error(PN_ESTATE, "the model must be compiled first");
    if (batch < 1) return pn_error(PN_EVALUE, "batch must be >= 1, got %lld", (long long)batch);
    int rc = pn_model_lock(m);
    if (rc) return rc;
    pn_plan *p = NULL;
    rc = pn_model_get_plan(m, batch, training ? PN_MODE_TRAIN : PN_MODE_INFER, &p);
    if (rc == PN_OK) *bytes = p->arena_floats * (int64_t)sizeof(float);
    if (rc == PN_OK) plan_done(p);
    pn_model_unlock(m);
    return rc;
}

int pn_model_predict(pn_model *m, const pn_tensor *xs, int64_t batch_size, float *const *outs) {
    if (m->g->n_outputs < 1) return pn_error(PN_ESTATE, "the model has no output");
    int64_t n = 0;
    int rc = check_xs(m, xs, &n);
    if (rc) return rc;
    if (batch_size < 1) return pn_error(PN_EVALUE, "batch_size must be >= 1, got %lld",
                                        (long long)batch_size);
    const float *xd[PN_MAX_MODEL_INPUTS];
    for (int k = 0; k < m->g->n_inputs; k++) xd[k] = xs[k].data;
    rc = check_indices(m, xs, xd, n);
    if (rc) return rc;
    /* first[k]: the first output that is the same node as output k (k itself when none) */
    int first[PN_MAX_OUTPUTS];
    for (int k = 0; k < m->g->n_outputs; k++) {
        first[k] = k;
        for (int j = 0; j < k && first[k] == k; j++)
            if (m->g->outputs[j] == m->g->outputs[k]) first[k] = j;
    }
    if ((rc = pn_model_lock(m))) return rc;
    for (int64_t start = 0; start < n; start += batch_size) {
        int64_t b = n - start < batch_size ? n - start : batch_size;
        pn_plan *p;
        if (start > 0 && (rc = pn_poll_interrupt())) break;
        rc = pn_model_get_plan(m, b, PN_MODE_INFER, &p);
        if (rc) break;
        for (int k = 0; k < m->g->n_inputs; k++) {
            int in = m->g->inputs[k];
            p->value[in] = (float *)xs[k].data + start * m->g->nodes[in].size;
        }
        /* Each output node writes straight into the caller's array: no copy. */
        float *own[PN_MAX_OUTPUTS];
        int computed = 0;
        for (int k = 0; k < m->g->n_outputs; k++) {
            int o = m->g->outputs[k];
            if (first[k] != k || m->g->nodes[o].op == PN_OP_INPUT) continue;
            own[k] = p->value[o];
            p->value[o] = outs[k] + start * m->g->nodes[o].size;
            computed = 1;
        }
        pn_model_infer_seed(m, p);
        if (computed) rc = plan_forward(m, p);
        for (int k = 0; k < m->g->n_outputs; k++) {
            int o = m->g->outputs[k];
            int64_t sz = b * m->g->nodes[o].size;
            float *dst = outs[k] + start * m->g->nodes[o].size;
            if (m->g->nodes[o].op == PN_OP_INPUT)
                memcpy(dst, p->value[o], (size_t)sz * sizeof(float));
            else if (first[k] != k)
                memcpy(dst, outs[first[k]] + start * m->g->nodes[o].size,
                       (size_t)sz * sizeof(float));
            else
                p->value[o] = own[k];
        }
        plan_done(p);
        if (rc) break;
    }
    pn_model_unlock(m);
    return rc;
}
