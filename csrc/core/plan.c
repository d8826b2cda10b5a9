/*
 * plan.c: a model compiled for one batch size and mode. All activations, activation gradients,
 * scratch and gather buffers live in one arena allocated here, once; forward and backward then
 * only walk the nodes.
 */
#include "internal.h"

#define ALIGN_FLOATS 16 /* 64-byte alignment for every buffer in the arena */

static int64_t round_up(int64_t n) { return (n + ALIGN_FLOATS - 1) / ALIGN_FLOATS * ALIGN_FLOATS; }

/* The number of target values per sample: one label per row for the sparse loss. */
static int64_t target_size(const pn_model *m) {
    const pn_node *o = &m->nodes[m->output];
    return m->loss == PN_LOSS_SPARSE_CE ? o->size / o->shape[o->ndim - 1] : o->size;
}

void pn_plan_destroy(pn_plan *p) {
    if (!p) return;
    free(p->arena);
    free(p->value);
    free(p->grad);
    free(p->scratch);
    free(p->acc_in);
    free(p->acc_var);
    free(p->var_written);
    free(p);
}

int pn_plan_create(pn_plan **out, const pn_model *m, int64_t batch, pn_mode mode) {
    int n = m->n_nodes, rc = PN_ENOMEM;
    if (n < 1 || m->output < 0) return pn_error(PN_ESTATE, "the model has no nodes or no output");
    unsigned char *active = NULL, *written = NULL;
    int64_t *voff = NULL, *goff = NULL, *soff = NULL;
    pn_plan *p = calloc(1, sizeof *p);
    if (!p) goto fail;
    p->batch = batch;
    p->mode = mode;
    p->value = calloc((size_t)n, sizeof *p->value);
    p->grad = calloc((size_t)n, sizeof *p->grad);
    p->scratch = calloc((size_t)n, sizeof *p->scratch);
    p->acc_in = calloc((size_t)n * PN_MAX_INPUTS, sizeof *p->acc_in);
    p->acc_var = calloc((size_t)n * PN_MAX_VARS, sizeof *p->acc_var);
    p->var_written = calloc((size_t)m->n_vars + 1, 1);
    active = calloc((size_t)n, 1);
    written = calloc((size_t)n, 1);
    voff = calloc((size_t)n, sizeof *voff);
    goff = calloc((size_t)n, sizeof *goff);
    soff = calloc((size_t)n, sizeof *soff);
    if (!p->value || !p->grad || !p->scratch || !p->acc_in || !p->acc_var || !p->var_written ||
        !active || !written || !voff || !goff || !soff)
        goto fail;

    const pn_node *o = &m->nodes[m->output];
    p->fused = !m->from_logits &&
               (((m->loss == PN_LOSS_CATEGORICAL_CE || m->loss == PN_LOSS_SPARSE_CE) &&
                 o->op == PN_OP_SOFTMAX) ||
                (m->loss == PN_LOSS_BINARY_CE && o->op == PN_OP_SIGMOID));
    p->loss_node = p->fused ? o->in[0] : m->output;

    /* A node runs backward when it leads to the loss and something behind it wants a gradient
     * (a trainable variable, or the input in INPUT_GRAD mode). */
    if (mode != PN_MODE_INFER) {
        unsigned char *reaches = written; /* reused as scratch; cleared below */
        reaches[m->output] = 1;
        for (int i = n - 1; i >= 0; i--)
            if (reaches[i])
                for (int j = 0; j < m->nodes[i].n_in; j++) reaches[m->nodes[i].in[j]] = 1;
        for (int i = 0; i < n; i++) {
            const pn_node *nd = &m->nodes[i];
            int want = nd->op == PN_OP_INPUT && mode == PN_MODE_INPUT_GRAD;
            for (int k = 0; k < nd->n_var; k++) want |= m->vars[nd->var[k]].trainable;
            for (int j = 0; j < nd->n_in; j++) want |= active[nd->in[j]];
            active[i] = want && reaches[i];
        }
        memset(written, 0, (size_t)n);
    }

    /* Lay out the arena: values, then gradients, then scratch, then gather buffers. */
    int64_t total = 0;
    for (int i = 0; i < n; i++) {
        const pn_node *nd = &m->nodes[i];
        int64_t sz = round_up(batch * nd->size);
        voff[i] = -1;
        if (nd->op != PN_OP_INPUT || mode != PN_MODE_INFER) {
            voff[i] = total;
            total += sz;
        }
        goff[i] = -1;
        if (active[i]) {
            goff[i] = total;
            total += sz;
        }
        soff[i] = -1;
        const pn_op_def *def = pn_op_table[nd->op];
        if (def->scratch) {
            soff[i] = total;
            total += round_up(def->scratch(m, nd, batch, mode != PN_MODE_INFER));
        }
    }
    int64_t yoff = -1;
    if (mode != PN_MODE_INFER) {
        yoff = total;
        total += round_up(batch * target_size(m));
    }
    if (total > 0) {
        p->arena = aligned_alloc(ALIGN_FLOATS * sizeof(float), (size_t)total * sizeof(float));
        if (!p->arena) goto fail;
    }
    for (int i = 0; i < n; i++) {
        p->value[i] = voff[i] >= 0 ? p->arena + voff[i] : NULL;
        p->grad[i] = goff[i] >= 0 ? p->arena + goff[i] : NULL;
        p->scratch[i] = soff[i] >= 0 ? p->arena + soff[i] : NULL;
    }
    if (yoff >= 0) p->ybuf = p->arena + yoff;
    p->xbuf = m->input >= 0 ? p->value[m->input] : NULL;

    /* Accumulate or write: the loss writes first, then nodes in reverse order. */
    if (mode != PN_MODE_INFER) {
        written[p->loss_node] = 1;
        for (int i = n - 1; i >= 0; i--) {
            const pn_node *nd = &m->nodes[i];
            if (!active[i] || nd->op == PN_OP_INPUT || (p->fused && i == m->output)) continue;
            for (int j = 0; j < nd->n_in; j++) {
                if (!active[nd->in[j]]) continue;
                p->acc_in[i * PN_MAX_INPUTS + j] = written[nd->in[j]];
                written[nd->in[j]] = 1;
            }
            for (int k = 0; k < nd->n_var; k++) {
                int v = nd->var[k];
                if (!m->vars[v].trainable) continue;
                p->acc_var[i * PN_MAX_VARS + k] = p->var_written[v];
                p->var_written[v] = 1;
            }
        }
    }
    rc = PN_OK;
    *out = p;
    p = NULL;
fail:
    if (rc == PN_ENOMEM) pn_error(PN_ENOMEM, "out of memory building a plan for batch %lld",
                                  (long long)batch);
    pn_plan_destroy(p);
    free(active);
    free(written);
    free(voff);
    free(goff);
    free(soff);
    return rc;
}

static void make_ctx(const pn_model *m, const pn_plan *p, int i, pn_ctx *c) {
    const pn_node *nd = &m->nodes[i];
    memset(c, 0, sizeof *c);
    c->batch = p->batch;
    for (int j = 0; j < nd->n_in; j++) {
        c->in_node[j] = &m->nodes[nd->in[j]];
        c->in[j] = p->value[nd->in[j]];
        c->din[j] = p->grad[nd->in[j]];
        c->acc_in[j] = p->acc_in[i * PN_MAX_INPUTS + j];
    }
    c->out = p->value[i];
    c->dout = p->grad[i];
    for (int k = 0; k < nd->n_var; k++) {
        const pn_var *v = &m->vars[nd->var[k]];
        c->var_info[k] = v;
        c->var[k] = m->params + v->offset;
        c->dvar[k] = (p->mode != PN_MODE_INFER && v->trainable && p->grad[i]) ? m->grads + v->offset
                                                                              : NULL;
        c->acc_var[k] = p->acc_var[i * PN_MAX_VARS + k];
    }
    c->scratch = p->scratch[i];
    c->training = p->mode != PN_MODE_INFER;
    c->seed = pn_hash64(p->seed, (uint64_t)i);
}

void pn_plan_forward(const pn_model *m, pn_plan *p) {
    for (int i = 0; i < m->n_nodes; i++) {
        if (m->nodes[i].op == PN_OP_INPUT) continue;
        pn_ctx c;
        make_ctx(m, p, i, &c);
        pn_op_table[m->nodes[i].op]->forward(&m->nodes[i], &c);
    }
}

void pn_plan_backward(const pn_model *m, pn_plan *p) {
    for (int i = m->n_nodes - 1; i >= 0; i--) {
        const pn_node *nd = &m->nodes[i];
        if (!p->grad[i] || nd->op == PN_OP_INPUT || (p->fused && i == m->output)) continue;
        pn_ctx c;
        make_ctx(m, p, i, &c);
        pn_op_table[nd->op]->backward(nd, &c);
    }
}
