/*
 * eager_model.c: a whole model called on values, as one tape entry.
 *
 * The call runs the model's compiled plan, the one a training step runs, in a mode without a
 * loss (PN_MODE_EAGER): the entry holds the plan, and with it every activation, until its
 * backward, which gets the outputs' gradients from the tape instead of from a loss. So an eager
 * training loop does what a fit step does, with the same kernels and buffers, and only the loss
 * and the update in between are the caller's. A plan held by an entry is taken out of sharing
 * (busy); a second call of the model before the first one's backward gets a plan of its own.
 *
 * The variables' gradients accumulate into the model's gradient buffer across backwards, as
 * PyTorch's .grad does, until pn_model_zero_grads. A training step writes that buffer whole, so
 * the first eager backward after one starts from zero (m->eager_grads).
 */
#include "internal.h"

typedef struct {
    pn_model *m;
    pn_plan *plan;        /* NULL once backward has run */
    uint64_t version;     /* the model's graph when called */
} call_saved;

static void call_destroy(pn_fn *f) {
    call_saved *s = f->saved;
    if (!s) return;
    if (s->plan) pn_model_put_plan(s->m, s->plan);
    pn_model_release(s->m);
    free(s);
}

static void zero_grads(pn_model *m) {
    if (m->grads) memset(m->grads, 0, (size_t)m->n_params * sizeof(float));
    m->eager_grads = 1;
}

void pn_model_zero_grads(pn_model *m) { zero_grads(m); }

static int call_backward(pn_fn *f, pn_value *out) {
    call_saved *s = f->saved;
    pn_model *m = s->m;
    pn_plan *p = s->plan;
    if (!p)
        return pn_error(PN_ESTATE, "backward through this model call a second time: its "
                        "activations were freed by the first backward; call the model again");
    if (s->version != m->graph_version)
        return pn_error(PN_ESTATE, "the model's layers changed between its call and backward");
    pn_value *x = f->in[0];
    pthread_mutex_lock(&m->lock);
    if (!m->eager_grads) zero_grads(m);
    int in = m->input, o = m->output;
    p->value[in] = x->data;
    size_t bytes = (size_t)out->size * sizeof(float);
    if (p->grad[o]) {
        memcpy(p->grad[o], out->grad, bytes);
        pn_plan_backward(m, p);
    }
    pthread_mutex_unlock(&m->lock);
    int rc = PN_OK;
    if (x->requires_grad && p->grad[in]) {
        float *g = pn_value_grad_buf(x);
        if (!g) {
            rc = PN_ENOMEM;
        } else {
            const float *d = p->grad[in];
            for (int64_t i = 0; i < x->size; i++) g[i] += d[i];
        }
    }
    s->plan = NULL;
    pn_model_put_plan(m, p);
    return rc;
}

int pn_model_call(pn_model *m, pn_value *const *xs, int training, pn_value **outs) {
    if (m->output < 0 || m->input < 0) return pn_error(PN_ESTATE, "the model has no output");
    pn_value *x = xs[0];
    pn_tensor t = {.ndim = x->ndim, .dtype = x->dtype, .data = x->data};
    if (x->ndim > PN_MAX_DIMS) return pn_error(PN_ESHAPE, "input: rank %d is too high", x->ndim);
    memcpy(t.dims, x->dims, (size_t)x->ndim * sizeof(int64_t));
    int rc = pn_model_check_input(m, &t);
    if (rc) return rc;
    int64_t batch = x->dims[0];
    if (batch < 1) return pn_error(PN_EVALUE, "the input holds no samples");
    if (x->dtype == PN_I32) {
        rc = pn_embedding_check(m, x->data, x->size);
        if (rc) return rc;
    }
    int record = pn_grad_enabled() && (m->n_trainable > 0 || x->requires_grad);
    pn_mode mode = !record ? (training ? PN_MODE_EAGER : PN_MODE_INFER)
                           : x->requires_grad ? PN_MODE_EAGER_DX : PN_MODE_EAGER;
    const pn_node *on = &m->nodes[m->output];
    int64_t dims[PN_MAX_DIMS] = {batch};
    memcpy(dims + 1, on->shape, (size_t)on->ndim * sizeof(int64_t));
    pn_value *o = NULL;
    call_saved *s = record ? calloc(1, sizeof *s) : NULL;
    if (record && !s) return pn_error(PN_ENOMEM, "out of memory calling the model");
    rc = pn_value_new(&o, on->ndim + 1, dims, PN_F32);
    if (rc) {
        free(s);
        return rc;
    }

    pthread_mutex_lock(&m->lock);
    pn_plan *p = NULL;
    rc = pn_model_get_plan(m, batch, mode, &p);
    if (rc == PN_OK) {
        p->busy = 1;
        p->training = training != 0;
        if (training) p->seed = pn_hash64(m->seed, m->forwards++);
        p->value[m->input] = x->data;
        pn_plan_forward(m, p);
        memcpy(o->data, p->value[m->output], (size_t)o->size * sizeof(float));
    }
    pthread_mutex_unlock(&m->lock);
    if (rc) {
        free(s);
        pn_value_release(o);
        return rc;
    }
    if (!record) {
        pn_model_put_plan(m, p);
        *outs = o;
        return PN_OK;
    }
    pn_fn *f = pn_fn_new("model", call_backward, 1, xs);
    if (!f) {
        free(s);
        pn_model_put_plan(m, p);
        pn_value_release(o);
        return PN_ENOMEM;
    }
    pn_model_retain(m);
    *s = (call_saved){.m = m, .plan = p, .version = m->graph_version};
    f->saved = s;
    f->destroy = call_destroy;
    pn_fn_attach(f, o);
    *outs = o;
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
