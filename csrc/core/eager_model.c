/*
 * eager_model.c: a whole model called on values, as tape entries.
 *
 * The call runs the model's compiled plan, the one a training step runs, in a mode without a
 * loss (PN_MODE_EAGER): the entry holds the plan, and with it every activation, until its
 * backward, which gets the outputs' gradients from the tape instead of from the losses. So an
 * eager training loop does what a fit step does, with the same kernels and buffers, and only the
 * loss and the update in between are the caller's. A plan held by an entry is taken out of
 * sharing (held); a second call of the model before the first one's backward gets its own plan.
 *
 * On the tape a call is a hidden value (one float, never read) made by the "model" entry, whose
 * inputs are the model's inputs; each output value is made by a "model_output" entry reading that
 * hidden value. Backward runs every output's entry first (the tape orders them so), each placing
 * its gradient in the plan where the losses would, then the call's entry runs the plan backward
 * once, for all outputs together.
 *
 * The variables' gradients accumulate into the model's gradient buffer across backwards, as
 * PyTorch's .grad does, until pn_model_zero_grads. A training step writes that buffer whole, so
 * the first eager backward after one starts from zero (m->eager_grads).
 */
#include "internal.h"

typedef struct {
    pn_model *m;
    pn_graph *g;          /* the graph called (counted in g->calls while this entry lives) */
    pn_plan *plan;        /* NULL once backward has run */
    uint64_t version;     /* g's version when called */
    unsigned char got[PN_MAX_OUTPUTS]; /* output k's gradient is in the plan */
} call_saved;

static void call_destroy(pn_fn *f) {
    call_saved *s = f->saved;
    if (!s) return;
    if (s->plan) pn_model_put_plan(s->m, s->plan);
    atomic_fetch_sub(&s->g->calls, 1);
    pn_model_release(s->m);
    free(s);
}

void pn_model_zero_grads(pn_model *m) {
    if (m->grads) memset(m->grads, 0, (size_t)m->n_params * sizeof(float));
    m->eager_grads = 1;
}

static int used_up(const call_saved *s) {
    if (!s->plan)
        return pn_error(PN_ESTATE, "backward through this model call a second time: its "
                        "activations were freed by the first backward; call the model again");
    if (s->version != s->g->graph_version)
        return pn_error(PN_ESTATE, "the model's layers changed between its call and backward");
    return PN_OK;
}

/* Whether another output on output k's node has put its gradient in the plan already. */
static int node_written(const call_saved *s, int k) {
    const pn_graph *g = s->g;
    for (int j = 0; j < g->n_outputs; j++)
        if (j != k && s->got[j] && g->outputs[j] == g->outputs[k]) return 1;
    return 0;
}

/* Output k's gradient into the plan, where output k's loss would put it: written by the first
 * output on its node to arrive, added by the others. */
static int output_backward(pn_fn *f, pn_value *out) {
    pn_value *call = f->in[0];
    call_saved *s = call->fn->saved;
    int rc = used_up(s);
    if (rc) return rc;
    pn_plan *p = s->plan;
    int k = f->iattr[0];
    if (!pn_value_grad_buf(call)) return PN_ENOMEM; /* so the call's entry runs */
    float *g = p->grad[s->g->outputs[k]];
    if (g) {
        if (node_written(s, k))
            for (int64_t i = 0; i < out->size; i++) g[i] += out->grad[i];
        else
            memcpy(g, out->grad, (size_t)out->size * sizeof(float));
    }
    s->got[k] = 1;
    return PN_OK;
}

static int call_backward(pn_fn *f, pn_value *call) {
    (void)call;
    call_saved *s = f->saved;
    int rc = used_up(s);
    if (rc) return rc;
    pn_model *m = s->m;
    const pn_graph *g = s->g;
    pn_plan *p = s->plan;
    /* the inputs' gradient buffers first: out of memory then leaves the model's gradients and
     * the held plan as they were */
    for (int k = 0; k < g->n_inputs; k++)
        if (f->in[k]->requires_grad && p->grad[g->inputs[k]] && !pn_value_grad_buf(f->in[k]))
            return PN_ENOMEM;
    if ((rc = pn_model_lock(m))) return rc;
    if (!m->eager_grads) pn_model_zero_grads(m);
    /* an output no gradient reached counts as zero, unless another output wrote its node */
    for (int k = 0; k < g->n_outputs; k++) {
        float *d = p->grad[g->outputs[k]];
        if (d && !s->got[k] && !node_written(s, k))
            memset(d, 0, (size_t)(p->batch * g->nodes[g->outputs[k]].size) * sizeof(float));
    }
    for (int k = 0; k < g->n_inputs; k++) p->value[g->inputs[k]] = f->in[k]->data;
    pn_graph *current = m->g; /* the graph called, which another may have replaced since */
    m->g = s->g;
    pn_plan_backward(m, p);
    m->g = current;
    pn_model_unlock(m);
    for (int k = 0; k < g->n_inputs; k++) {
        pn_value *x = f->in[k];
        const float *d = p->grad[g->inputs[k]];
        if (!x->requires_grad || !d) continue;
        float *gx = x->grad;
        for (int64_t i = 0; i < x->size; i++) gx[i] += d[i];
    }
    s->plan = NULL;
    pn_model_put_plan(m, p);
    return rc;
}

/* The input values against the model's inputs; the batch size. */
static int check_inputs(const pn_model *m, pn_value *const *xs, int64_t *batch) {
    for (int k = 0; k < m->g->n_inputs; k++) {
        const pn_value *x = xs[k];
        pn_tensor t = {.ndim = x->ndim, .dtype = x->dtype, .data = x->data};
        memcpy(t.dims, x->dims, (size_t)x->ndim * sizeof(int64_t));
        int rc = pn_model_check_input(m, k, &t);
        if (rc) return rc;
        if (x->dims[0] != xs[0]->dims[0])
            return pn_error(PN_ESHAPE, "input %d has %lld samples but input 0 has %lld", k,
                            (long long)x->dims[0], (long long)xs[0]->dims[0]);
        if (x->dtype == PN_I32 && (rc = pn_embedding_check(m, m->g->inputs[k], x->data, x->size)))
            return rc;
        if (x->dtype == PN_F32 &&
            (rc = pn_embedding_check_f32(m, m->g->inputs[k], x->data, x->size)))
            return rc;
    }
    *batch = xs[0]->dims[0];
    if (*batch < 1) return pn_error(PN_EVALUE, "the input holds no samples");
    return PN_OK;
}

/* The output values, and the forward itself, under the model's lock. */
static int run_forward(pn_model *m, const pn_graph *g, pn_value *const *xs, int64_t batch,
                       pn_mode mode, int training, pn_plan **plan, pn_value **outs) {
    int rc = PN_OK, n_out = 0;
    for (; n_out < g->n_outputs && rc == PN_OK; n_out++) {
        const pn_node *on = &g->nodes[g->outputs[n_out]];
        int64_t dims[PN_MAX_DIMS] = {batch};
        memcpy(dims + 1, on->shape, (size_t)on->ndim * sizeof(int64_t));
        rc = pn_value_new(&outs[n_out], on->ndim + 1, dims, PN_F32);
        if (rc) break; /* outs[n_out] was not made: only the ones before it are released */
    }
    pn_plan *p = NULL;
    if (rc == PN_OK && (rc = pn_model_lock(m)) == PN_OK) {
        if (m->g != g) /* the inputs were checked against another graph */
            rc = pn_error(PN_ESTATE, "the model's graph changed during the call (another "
                          "thread chose another input shape)");
        if (rc == PN_OK) rc = pn_model_get_plan(m, batch, mode, &p);
        if (rc == PN_OK) {
            atomic_store(&p->held, p->orphan ? PLAN_HELD_ORPHAN : PLAN_HELD);
            p->training = training != 0;
            if (training)
                p->seed = pn_hash64(m->seed, m->forwards++);
            else
                pn_model_infer_seed(m, p);
            for (int k = 0; k < g->n_inputs; k++) p->value[g->inputs[k]] = xs[k]->data;
            pn_fault_take();
            pn_plan_forward(m, p);
            rc = pn_fault_take(); /* bad data in a node (an index out of range) */
            for (int k = 0; k < g->n_outputs && rc == PN_OK; k++)
                memcpy(outs[k]->data, p->value[g->outputs[k]],
                       (size_t)outs[k]->size * sizeof(float));
        }
        pn_model_unlock(m);
        if (rc && p) pn_model_put_plan(m, p);
    }
    if (rc) {
        for (int k = 0; k < n_out; k++) pn_value_release(outs[k]);
        return rc;
    }
    *plan = p;
    return PN_OK;
}

int pn_model_call(pn_model *m, pn_value *const *xs, int training, pn_value **outs) {
    pn_graph *g = m->g; /* run_forward checks it is still the current one */
    if (g->n_outputs < 1 || g->n_inputs < 1) return pn_error(PN_ESTATE, "the model has no output");
    int64_t batch = 0;
    int rc = check_inputs(m, xs, &batch);
    if (rc) return rc;
    int grad_x = 0;
    for (int k = 0; k < g->n_inputs; k++) grad_x |= xs[k]->requires_grad;
    int record = pn_grad_enabled() && (m->n_trainable > 0 || grad_x);
    pn_mode mode = !record ? (training ? PN_MODE_EAGER : PN_MODE_INFER)
                           : grad_x ? PN_MODE_EAGER_DX : PN_MODE_EAGER;
    /* The tape's entries are made before the forward, so running out of memory for them
     * leaves the model as it was (the forward counts toward the random stream): the call's
     * hidden value, its entry, and one entry per output reading it. */
    call_saved *s = NULL;
    pn_value *call = NULL;
    pn_fn *f = NULL, *fo[PN_MAX_OUTPUTS] = {NULL};
    if (record) {
        int64_t one = 1;
        rc = (s = pn_calloc(1, sizeof *s)) ? PN_OK : PN_ENOMEM;
        if (rc == PN_OK) rc = pn_value_new(&call, 1, &one, PN_F32);
        if (rc == PN_OK && !(f = pn_fn_new("model", call_backward, g->n_inputs, xs)))
            rc = PN_ENOMEM;
        for (int k = 0; k < g->n_outputs && rc == PN_OK; k++)
            if (!(fo[k] = pn_fn_new("model", output_backward, 1, &call))) rc = PN_ENOMEM;
        if (rc) pn_error(PN_ENOMEM, "out of memory recording a model call");
    }
    pn_value *o[PN_MAX_OUTPUTS];
    pn_plan *p = NULL;
    if (rc == PN_OK) rc = run_forward(m, g, xs, batch, mode, training, &p, o);
    if (rc) {
        for (int k = 0; k < g->n_outputs; k++) pn_fn_free(fo[k]);
        pn_value_release(call);
        pn_fn_free(f);
        free(s);
        return rc;
    }
    if (!record) {
        pn_model_put_plan(m, p);
        memcpy(outs, o, (size_t)g->n_outputs * sizeof *o);
        return PN_OK;
    }
    pn_model_retain(m);
    s->m = m;
    s->g = g;
    atomic_fetch_add(&g->calls, 1);
    s->plan = p;
    s->version = g->graph_version;
    f->saved = s;
    f->destroy = call_destroy;
    pn_fn_attach(f, call);
    for (int k = 0; k < g->n_outputs; k++) {
        fo[k]->iattr[0] = k;
        pn_fn_attach(fo[k], o[k]);
    }
    pn_value_release(call); /* the outputs' entries hold it now */
    memcpy(outs, o, (size_t)g->n_outputs * sizeof *o);
    return PN_OK;
}

/* ---- the variables as values --------------------------------------------------------------- */

static void release_model(void *ctx) { pn_model_release(ctx); }

int pn_model_variable_value(pn_model *m, int id, pn_value **out) {
    if (id < 0 || id >= m->n_vars) return pn_error(PN_EVALUE, "no variable %d", id);
    if (!m->params) return pn_error(PN_ESTATE, "variables are not allocated yet");
    const pn_var *var = &m->vars[id];
    pn_value *v;
    int rc = pn_value_borrow(&v, var->ndim, var->shape, PN_F32, m->params + var->offset,
                             m->grads + var->offset, release_model, m);
    if (rc) return rc;
    pn_model_retain(m);
    v->model = m;
    v->requires_grad = var->trainable;
    *out = v;
    return PN_OK;
}
