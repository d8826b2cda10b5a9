/*
 * passes.c: the rewrites a plan makes of its model's graph. None changes the graph: each marks
 * nodes in the plan (pn_plan_create runs them, for its batch size and mode), and the plan's
 * layout, forward and backward honour the marks. So every model kind gets them alike (Sequential,
 * functional, subclassed and traced models, eager calls), and a model's nodes, shapes and saved
 * files are what its layers made.
 *
 *   loss fusion      a softmax (sigmoid) output whose loss is a categorical (binary)
 *                    cross-entropy: the loss reads the logits and writes their gradient,
 *                    out - y, exact where the chain rule through the activation loses digits;
 *                    the activation's backward never runs (p->fused, p->loss_node).
 *   embedding fold   a recurrent op reading an embedding: the op multiplies the table by its
 *                    kernel once per batch instead of every step's embedded inputs (p->fold;
 *                    ops_rnn.c and the cells' files take the folded table).
 *   relu/max-pool    relu -> [reshape ...] -> max pool (2-D or global): the relu is skipped and
 *                    applied to the pool's output instead, and to its gradient before the pool's
 *                    backward (p->swap). max(relu(x)) = relu(max(x)), and both route dout to the
 *                    window's maximum where it is positive and give 0 elsewhere, so results and
 *                    gradients are the same while the relu and its backward touch a quarter of
 *                    the values (a 2x2 pool): about 8% of an MNIST CNN's step.
 */
#include <stdatomic.h>

#include "internal.h"

/* ---- loss fusion ------------------------------------------------------------------------- */

void pn_pass_fuse_losses(const pn_model *m, pn_plan *p, const unsigned char *reaches) {
    /* Output k's softmax/sigmoid is folded into its cross-entropy only when nothing else needs
     * that activation's gradient: no other output is the same node, and no node that leads to an
     * output reads it. Eager plans have no loss. */
    const int n = m->g->n_nodes;
    for (int k = 0; k < m->g->n_outputs; k++) {
        const int on = m->g->outputs[k];
        const pn_node *o = &m->g->nodes[on];
        const pn_loss_config *cfg = &m->g->out[k];
        int f = p->mode < PN_MODE_EAGER && !cfg->from_logits &&
                (((cfg->loss == PN_LOSS_CATEGORICAL_CE || cfg->loss == PN_LOSS_SPARSE_CE) &&
                  o->op == PN_OP_SOFTMAX) ||
                 (cfg->loss == PN_LOSS_BINARY_CE && o->op == PN_OP_SIGMOID));
        for (int k2 = 0; f && k2 < m->g->n_outputs; k2++) f = k2 == k || m->g->outputs[k2] != on;
        for (int i = on + 1; f && i < n; i++)
            for (int j = 0; j < m->g->nodes[i].n_in; j++)
                if (m->g->nodes[i].in[j] == on && reaches[i]) f = 0;
        p->fused[k] = f;
        p->loss_node[k] = f ? o->in[0] : on;
    }
}

/* ---- embedding fold ---------------------------------------------------------------------- */

static atomic_int folds = 1; /* pn_debug_folds */

int pn_debug_folds(int on) { return atomic_exchange(&folds, on != 0); }

int pn_plan_fold(const pn_model *m, const pn_node *l, int64_t batch) {
    if (!atomic_load_explicit(&folds, memory_order_relaxed)) return -1;
    if (l->op != PN_OP_LSTM && l->op != PN_OP_GRU && l->op != PN_OP_SIMPLE_RNN) return -1;
    if (l->n_in < 1 || l->fattr[0] != 0.0f) return -1; /* input dropout: x_t is not E's row */
    const int e = l->in[0];
    if (e < 0 || e >= m->g->n_nodes || m->g->nodes[e].op != PN_OP_EMBEDDING) return -1;
    const pn_node *en = &m->g->nodes[e];
    const int table = en->var[0];
    if (m->vars[table].shape[0] > en->shape[0] * batch) return -1; /* rows > steps x batch */
    for (int k = 0; k < m->g->n_outputs; k++) /* an output or a mask: read, so not folded */
        if (m->g->outputs[k] == e || m->g->masks[k] == e) return -1;
    int reads = 0, uses = 0; /* l's input 0 must be the only read, e the only user of the table */
    for (int j = 0; j < m->g->n_nodes; j++) {
        const pn_node *o = &m->g->nodes[j];
        for (int a = 0; a < o->n_in; a++) reads += o->in[a] == e;
        for (int v = 0; v < o->n_var; v++) uses += o->var[v] == table;
    }
    return reads == 1 && uses == 1 ? e : -1;
}

void pn_pass_fold(const pn_model *m, pn_plan *p) {
    for (int i = 0; i < m->g->n_nodes; i++) p->fold[i] = -1;
    for (int i = 0; i < m->g->n_nodes; i++) {
        int e = pn_plan_fold(m, &m->g->nodes[i], p->batch);
        if (e >= 0) p->fold[i] = e, p->fold[e] = PN_FOLDED;
    }
}

/* ---- relu / max-pool swap ------------------------------------------------------------------
 * The skipped relu's value and gradient are its input's (the layout aliases them, as for an
 * in-place op), so the nodes between it and the pool read the input's values unchanged: the
 * relu must be its input's only reader, and that input no model input (whose value is the
 * caller's memory), no output and no loss's. The relu and the reshapes after it must each have
 * one reader and be no output, so no one sees their values before the pool's relu. */

static atomic_int swaps = 1; /* pn_debug_swaps */

int pn_debug_swaps(int on) { return atomic_exchange(&swaps, on != 0); }

int pn_pass_relu_pool(const pn_model *m, pn_plan *p) {
    const int n = m->g->n_nodes;
    memset(p->swap, 0, (size_t)n);
    if (!atomic_load_explicit(&swaps, memory_order_relaxed)) return PN_OK;
    int *readers = pn_calloc((size_t)n, sizeof *readers);
    if (!readers) return PN_ENOMEM;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < m->g->nodes[i].n_in; j++) readers[m->g->nodes[i].in[j]]++;
    for (int k = 0; k < m->g->n_outputs; k++) { /* the losses and predict read these */
        readers[m->g->outputs[k]] += 2;
        readers[p->loss_node[k]] += 2;
        if (m->g->masks[k] >= 0) readers[m->g->masks[k]] += 2;
    }
    for (int q = 0; q < n; q++) {
        const pn_node *pool = &m->g->nodes[q];
        if (pool->op != PN_OP_MAX_POOL2D && pool->op != PN_OP_GLOBAL_MAX_POOL2D) continue;
        int r = pool->in[0];
        while (m->g->nodes[r].op == PN_OP_RESHAPE && readers[r] == 1) r = m->g->nodes[r].in[0];
        if (m->g->nodes[r].op != PN_OP_RELU || readers[r] != 1) continue;
        const int x = m->g->nodes[r].in[0];
        if (m->g->nodes[x].op == PN_OP_INPUT || readers[x] != 1) continue;
        p->swap[r] = PN_SWAP_SKIP;
        p->swap[q] = PN_SWAP_RELU_AFTER;
    }
    free(readers);
    return PN_OK;
}

void pn_plan_relu_after(const pn_node *pool, const pn_ctx *c, int backward) {
    pn_ctx r = {.batch = c->batch, .full_batch = c->full_batch};
    r.in[0] = r.out = c->out; /* relu's kernels run in place */
    if (!backward) {
        pn_op_relu_def.forward(pool, &r);
    } else {
        r.din[0] = r.dout = c->dout; /* dout *= (out > 0) */
        pn_op_relu_def.backward(pool, &r);
    }
}
