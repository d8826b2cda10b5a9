/*
 * plan.c: a model compiled for one batch size and mode. All activations, activation gradients,
 * scratch and gather buffers live in one arena allocated here, once; forward and backward then
 * only walk the nodes.
 */
#include "internal.h"

#define ALIGN_FLOATS 16 /* 64-byte alignment for every buffer in the arena */

static int64_t round_up(int64_t n) { return (n + ALIGN_FLOATS - 1) / ALIGN_FLOATS * ALIGN_FLOATS; }

void pn_plan_destroy(pn_plan *p) {
    if (!p) return;
    free(p->arena);
    free(p->value);
    free(p->grad);
    free(p->scratch);
    free(p->acc_in);
    free(p->acc_var);
    free(p->fold);
    free(p->swap);
    free(p->var_written);
    free(p->wbuf);
    free(p->needs_y);
    free(p);
}

/* ---- the arena layout ------------------------------------------------------------------------
 * Every buffer of a step (activations, activation gradients, scratch, gathered targets) is a span
 * of the arena that is needed over an interval of the step's timeline:
 *   t = i         node i's forward          t = n        the losses (read outputs and logits)
 *   t = 2n - i    node i's backward
 * A value lives from its forward to its last reader: the forwards of its consumers, and in
 * training the backwards of consumers that read their inputs and its own backward if it reads its
 * output. A gradient lives from its first write (the backward of its last consumer, or the loss)
 * to its node's backward. Scratch lives through its node's forward, and in training until its
 * backward. An output's mask (pn_model_set_output_masks) lives until the losses, as the output
 * does. Each output has its own gathered targets, alive through the whole step. Spans whose
 * intervals overlap get disjoint memory; the others share it.
 * An elementwise op whose input has no other reader runs in place: its output and its input's
 * gradient reuse its input's value and its own gradient (in training only when its backward
 * needs no input: relu, sigmoid, tanh, selu, and the input's backward needs not its own output:
 * a dense or a conv, not a sigmoid), which saves both the memory and its page traffic. The passes
 * (passes.c) mark nodes that change the layout: a folded embedding has no buffers, a skipped relu
 * is in place over its input, a pool with the relu after it keeps its output for its backward.
 */
typedef struct {
    int64_t size, off;  /* floats */
    int start, end;     /* the interval on the timeline */
    float **slot;       /* where the plan keeps the pointer (NULL: none) */
    int alias;          /* >= 0: this span shares span `alias` (in-place), no memory of its own */
} span;

/* qsort's comparisons read the spans here (C11's qsort takes no context) */
static _Thread_local const span *sort_base;

/* order: largest first, ties in span order (the order a stable sort keeps) */
static int by_size(const void *x, const void *y) {
    const int a = *(const int *)x, b = *(const int *)y;
    const int64_t sa = sort_base[a].size, sb = sort_base[b].size;
    return sa != sb ? (sa < sb ? 1 : -1) : (a > b) - (a < b);
}

static int by_offset(const void *x, const void *y) {
    const int64_t a = sort_base[*(const int *)x].off, b = sort_base[*(const int *)y].off;
    return (a > b) - (a < b);
}

/* Places spans, largest first, each at the lowest offset that clashes with no placed span alive
 * at the same time: the placed spans alive then, in order of offset, leave it the first gap it
 * fits in (the lowest such offset, as moving it past each clash until none is left would
 * find, without comparing every pair of spans). order and near hold k ints. Returns the arena's
 * size. */
static int64_t place(span *sp, int k, int *order, int *near) {
    for (int i = 0; i < k; i++) order[i] = i;
    sort_base = sp;
    qsort(order, (size_t)k, sizeof *order, by_size);
    int64_t total = 0;
    int placed = 0; /* order[0 .. placed): spans with memory of their own, placed */
    for (int a = 0; a < k; a++) {
        span *s = &sp[order[a]];
        if (s->alias >= 0 || s->size == 0) continue;
        int c = 0;
        for (int b = 0; b < placed; b++) {
            const span *t = &sp[order[b]];
            if (t->start <= s->end && s->start <= t->end) near[c++] = order[b];
        }
        sort_base = sp;
        qsort(near, (size_t)c, sizeof *near, by_offset);
        s->off = 0;
        for (int b = 0; b < c && sp[near[b]].off < s->off + s->size; b++)
            if (sp[near[b]].off + sp[near[b]].size > s->off)
                s->off = sp[near[b]].off + sp[near[b]].size;
        if (s->off + s->size > total) total = s->off + s->size;
        order[placed++] = order[a];
    }
    return total;
}

static int max_i(int a, int b) { return a > b ? a : b; }

/* the span that really holds span k's memory, through chains of in-place ops */
static int final_span(const span *sp, int k) {
    while (sp[k].alias >= 0) k = sp[k].alias;
    return k;
}

/* whether node i's backward reads its own output (a pool with the relu after it does: the
 * relu's gradient) */
static int reads_out(const pn_plan *p, const pn_model *m, int i) {
    return !(pn_op_table[m->g->nodes[i].op]->flags & PN_OPF_BWD_NO_OUT) ||
           p->swap[i] == PN_SWAP_RELU_AFTER;
}

static int layout(pn_plan *p, const pn_model *m, const unsigned char *active) {
    const int n = m->g->n_nodes, train = p->mode != PN_MODE_INFER, loss_t = n,
              n_out = m->g->n_outputs;
    const int64_t batch = p->batch;
    const int n_sp = 3 * n + n_out;
    /* spans: value, gradient and scratch of each node, then each output's gathered targets */
    span *sp = pn_calloc((size_t)n_sp, sizeof *sp);
    int *order = pn_calloc((size_t)n_sp, sizeof *order);
    int *near = pn_calloc((size_t)n_sp, sizeof *near); /* place()'s candidates */
    int *readers = pn_calloc((size_t)n, sizeof *readers);
    int *root = pn_calloc((size_t)n, sizeof *root); /* the node whose value a node's value is */
    unsigned char *is_loss = pn_calloc((size_t)n, 1); /* a loss reads it as logits or output */
    if (!sp || !order || !near || !readers || !root || !is_loss) {
        free(sp), free(order), free(near), free(readers), free(root), free(is_loss);
        return PN_ENOMEM;
    }
#define V(i) sp[3 * (i)]
#define G(i) sp[3 * (i) + 1]
#define S(i) sp[3 * (i) + 2]
    for (int i = 0; i < n; i++) {
        const pn_node *nd = &m->g->nodes[i];
        for (int j = 0; j < nd->n_in; j++) readers[nd->in[j]]++;
        root[i] = i;
        const int64_t nb = nd->unbatched ? 1 : batch; /* the batch the node runs with */
        int64_t sz = round_up(nb * nd->size);
        /* inference reads the model input from the caller; training and test steps with batch
         * indices gather it into the arena */
        const int folded = p->fold[i] == PN_FOLDED; /* no value, gradient or scratch */
        V(i) = (span){.size = folded ? 0 : sz, .start = i, .end = i, .slot = &p->value[i],
                      .alias = -1};
        G(i) = (span){.size = active[i] && !folded ? sz : 0, .start = 2 * n - i,
                      .end = 2 * n - i, .slot = active[i] ? &p->grad[i] : NULL, .alias = -1};
        const pn_op_def *def = pn_op_table[nd->op];
        S(i) = (span){.size = def->scratch && !folded ? round_up(def->scratch(m, nd, nb, train))
                                                      : 0,
                      .start = i, .end = train && active[i] ? 2 * n - i : i,
                      .slot = &p->scratch[i], .alias = -1};
    }
    float *ybuf[PN_MAX_OUTPUTS] = {NULL};
    for (int k = 0; k < n_out; k++) {
        int64_t ysize = p->mode < PN_MODE_EAGER ? round_up(batch * pn_loss_target_size(m, k)) : 0;
        sp[3 * n + k] = (span){.size = ysize, .start = 0, .end = 2 * n, .slot = &ybuf[k],
                               .alias = -1};
        readers[m->g->outputs[k]]++; /* the loss and predict read the output */
        if (p->loss_node[k] != m->g->outputs[k]) readers[p->loss_node[k]]++;
        is_loss[p->loss_node[k]] = 1;
        if (p->mode < PN_MODE_EAGER && m->g->masks[k] >= 0) { /* the loss and metrics read it */
            readers[m->g->masks[k]]++;
            is_loss[m->g->masks[k]] = 1;
        }
    }
    for (int k = 0; p->with_added && k < m->g->n_added; k++) {
        readers[m->g->added[k]]++; /* the step's total reads it */
        is_loss[m->g->added[k]] = 1;
    }
    for (int k = 0; k < m->g->n_inputs; k++) V(m->g->inputs[k]).start = 0;

    /* in place: node i over its only input j, when nothing else reads j; in training only when
     * neither backward reads what the other overwrites: i's reads no input (its input's value
     * is gone, and it writes dx over its own dy), j's reads no output (its value became i's),
     * unless j runs no backward. A relu the relu/max-pool swap skips is in place over its input
     * (passes.c checked the rest): it writes nothing, so both values stay. */
    for (int i = 0; i < n; i++) {
        const pn_node *nd = &m->g->nodes[i];
        unsigned f = pn_op_table[nd->op]->flags;
        if (p->swap[i] != PN_SWAP_SKIP) {
            if (!(f & PN_OPF_INPLACE) || nd->n_in != 1) continue;
            int j = nd->in[0];
            if (readers[j] != 1 || m->g->nodes[j].op == PN_OP_INPUT ||
                m->g->nodes[j].op == PN_OP_TARGET || is_loss[j])
                continue; /* an input or target is the caller's data */
            if (train && (!(f & PN_OPF_BWD_NO_IN) || active[i] != active[j] ||
                          (active[j] && reads_out(p, m, j))))
                continue;
        }
        const int j = nd->in[0];
        root[i] = root[j];
        V(i).alias = 3 * root[j];
        if (active[i]) G(j).alias = 3 * i + 1; /* i's backward writes dx over its own dy */
    }

    /* lifetimes (a skipped relu has none of its own: its reader's are its input's) */
    for (int i = 0; i < n; i++) {
        const pn_node *nd = &m->g->nodes[i];
        unsigned f = pn_op_table[nd->op]->flags;
        if (p->swap[i] == PN_SWAP_SKIP) continue;
        int bwd = 2 * n - i, runs_bwd = train && active[i];
        for (int j = 0; j < nd->n_in; j++) {
            span *v = &V(root[nd->in[j]]);
            v->end = max_i(v->end, i);
            if (runs_bwd && !(f & PN_OPF_BWD_NO_IN)) v->end = max_i(v->end, bwd);
            if (active[nd->in[j]] && runs_bwd) { /* i's backward writes the input's gradient */
                span *g = &G(nd->in[j]);
                if (g->alias < 0) g->start = g->start < bwd ? g->start : bwd;
            }
        }
        span *v = &V(root[i]);
        if (runs_bwd && reads_out(p, m, i)) v->end = max_i(v->end, bwd);
        if (p->fold[i] >= 0) { /* i reads the folded embedding's indices, forward and backward */
            span *x = &V(root[m->g->nodes[p->fold[i]].in[0]]);
            x->end = max_i(x->end, runs_bwd ? bwd : i);
        }
    }
    for (int k = 0; k < n_out; k++) {
        int o = m->g->outputs[k], ln = p->loss_node[k];
        V(root[o]).end = max_i(V(root[o]).end, loss_t);
        V(root[ln]).end = max_i(V(root[ln]).end, loss_t);
        if (active[ln]) G(ln).start = loss_t;
        if (p->mode < PN_MODE_EAGER && m->g->masks[k] >= 0)
            V(root[m->g->masks[k]]).end = max_i(V(root[m->g->masks[k]]).end, loss_t);
    }
    for (int k = 0; p->with_added && k < m->g->n_added; k++) {
        int e = m->g->added[k];
        V(root[e]).end = max_i(V(root[e]).end, loss_t);
        if (active[e]) G(e).start = loss_t;
    }
    for (int i = 0; i < n; i++) /* in-place gradients are one buffer from first to last use */
        if (G(i).alias >= 0) {
            span *g = &sp[final_span(sp, 3 * i + 1)];
            g->end = max_i(g->end, G(i).end);
        }

    int64_t total = place(sp, n_sp, order, near);
    int rc = PN_OK;
    if (total > 0) {
        p->arena = pn_aligned_alloc(ALIGN_FLOATS * sizeof(float), (size_t)total * sizeof(float));
        if (!p->arena) rc = PN_ENOMEM;
    }
    if (rc == PN_OK) {
        for (int k = 0; k < n_sp; k++) {
            const span *s = &sp[final_span(sp, k)];
            if (sp[k].slot && s->size > 0) *sp[k].slot = p->arena + s->off;
        }
        for (int k = 0; k < n_out; k++) p->ybuf[k] = ybuf[k];
        p->arena_floats = total;
    }
#undef V
#undef G
#undef S
    free(sp), free(order), free(near), free(readers), free(root), free(is_loss);
    return rc;
}

int pn_plan_create(pn_plan **out, const pn_model *m, int64_t batch, pn_mode mode) {
    int n = m->g->n_nodes, rc = PN_ENOMEM;
    if (n < 1 || m->g->n_outputs < 1)
        return pn_error(PN_ESTATE, "the model has no nodes or no output");
    /* BLAS takes int sizes: every activation of the batch must count fewer than 2^31 values */
    for (int i = 0; i < n; i++)
        if (m->g->nodes[i].size > INT32_MAX / batch)
            return pn_error(PN_EVALUE, "a batch of %lld is too large for this model: %s's output "
                            "would hold %lld values per sample; use a smaller batch_size",
                            (long long)batch, pn_op_name(m->g->nodes[i].op),
                            (long long)m->g->nodes[i].size);
    for (int i = 0; i < n; i++)
        if ((rc = pn_node_check_batch(m, &m->g->nodes[i], batch))) return rc;
    rc = PN_ENOMEM;
    unsigned char *active = NULL, *written = NULL;
    pn_plan *p = pn_calloc(1, sizeof *p);
    if (!p) goto fail;
    p->batch = batch;
    p->mode = mode;
    p->training = mode != PN_MODE_INFER;
    p->value = pn_calloc((size_t)n, sizeof *p->value);
    p->grad = pn_calloc((size_t)n, sizeof *p->grad);
    p->scratch = pn_calloc((size_t)n, sizeof *p->scratch);
    p->acc_in = pn_calloc((size_t)n * PN_MAX_INPUTS, sizeof *p->acc_in);
    p->acc_var = pn_calloc((size_t)n * PN_MAX_VARS, sizeof *p->acc_var);
    p->var_written = pn_calloc((size_t)m->n_vars + 1, 1);
    p->fold = pn_malloc((size_t)n * sizeof *p->fold);
    p->swap = pn_malloc((size_t)n);
    if (mode < PN_MODE_EAGER &&
        !(p->wbuf = pn_malloc((size_t)(batch * m->g->n_outputs) * sizeof(float))))
        goto fail;
    p->needs_y = pn_calloc((size_t)n, 1);
    active = pn_calloc((size_t)n, 1);
    written = pn_calloc((size_t)n, 1);
    if (!p->value || !p->grad || !p->scratch || !p->acc_in || !p->acc_var || !p->var_written ||
        !p->fold || !p->swap || !p->needs_y || !active || !written)
        goto fail;
    /* needs_y: the nodes that read a step's targets; they may feed added losses, not what
     * predict returns */
    for (int i = 0; i < n; i++) {
        const pn_node *nd = &m->g->nodes[i];
        p->needs_y[i] = nd->op == PN_OP_TARGET;
        for (int j = 0; j < nd->n_in; j++) p->needs_y[i] |= p->needs_y[nd->in[j]];
    }
    for (int k = 0; k < m->g->n_outputs; k++)
        if (p->needs_y[m->g->outputs[k]] ||
            (m->g->masks[k] >= 0 && p->needs_y[m->g->masks[k]])) {
            rc = pn_error(PN_ESHAPE, "output %d (or its mask) depends on the step's targets "
                          "(a target node): only added losses may read them", k);
            goto fail;
        }
    pn_pass_fold(m, p);

    /* reaches[i]: node i leads to some output or added loss (so a loss's gradient flows back
     * through it); eager calls have no losses of their own */
    p->with_added = mode < PN_MODE_EAGER;
    unsigned char *reaches = written; /* reused as scratch; cleared below */
    for (int k = 0; k < m->g->n_outputs; k++) reaches[m->g->outputs[k]] = 1;
    for (int k = 0; p->with_added && k < m->g->n_added; k++) reaches[m->g->added[k]] = 1;
    for (int i = n - 1; i >= 0; i--)
        if (reaches[i])
            for (int j = 0; j < m->g->nodes[i].n_in; j++) reaches[m->g->nodes[i].in[j]] = 1;

    pn_pass_fuse_losses(m, p, reaches);
    if (pn_pass_relu_pool(m, p)) goto fail; /* rc is PN_ENOMEM */

    /* A node runs backward when it leads to a loss and something behind it wants a gradient
     * (a trainable variable, or an input in INPUT_GRAD mode); a fused output's does not. */
    if (mode != PN_MODE_INFER) {
        for (int i = 0; i < n; i++) {
            const pn_node *nd = &m->g->nodes[i];
            int want = nd->op == PN_OP_INPUT && nd->dtype == PN_F32 &&
                       (mode == PN_MODE_INPUT_GRAD || mode == PN_MODE_EAGER_DX);
            for (int k = 0; k < nd->n_var; k++) want |= m->vars[nd->var[k]].trainable;
            for (int j = 0; j < nd->n_in; j++) want |= active[nd->in[j]];
            active[i] = want && reaches[i];
        }
        for (int k = 0; k < m->g->n_outputs; k++)
            if (p->fused[k]) active[m->g->outputs[k]] = 0;
    }
    memset(written, 0, (size_t)n);

    rc = layout(p, m, active);
    if (rc) goto fail;
    for (int k = 0; k < m->g->n_inputs; k++) p->xbuf[k] = p->value[m->g->inputs[k]];

    /* Accumulate or write: the losses write first, in output order, each one a writer (the second
     * loss on a node adds to the first's gradient), then nodes in reverse order. */
    if (mode != PN_MODE_INFER) {
        for (int k = 0; k < m->g->n_outputs; k++) {
            int ln = p->loss_node[k];
            if (!active[ln]) continue;
            p->loss_acc[k] = written[ln];
            written[ln] = 1;
        }
        for (int k = 0; p->with_added && k < m->g->n_added; k++) {
            int e = m->g->added[k];
            if (!active[e]) continue;
            p->added_acc[k] = written[e];
            written[e] = 1;
        }
        for (int i = n - 1; i >= 0; i--) {
            const pn_node *nd = &m->g->nodes[i];
            if (!active[i] || nd->op == PN_OP_INPUT) continue;
            for (int j = 0; j < nd->n_in; j++) {
                if (!active[nd->in[j]]) continue;
                p->acc_in[i * PN_MAX_INPUTS + j] = written[nd->in[j]];
                written[nd->in[j]] = 1;
            }
            for (int k = 0; k < nd->n_var; k++) {
                int v = nd->var[k];
                if (!m->vars[v].trainable) continue;
                /* eager calls add into the gradients, which accumulate until zeroed */
                p->acc_var[i * PN_MAX_VARS + k] = mode >= PN_MODE_EAGER || p->var_written[v];
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
    return rc;
}

static void make_ctx(const pn_model *m, const pn_plan *p, int i, pn_ctx *c) {
    const pn_node *nd = &m->g->nodes[i];
    memset(c, 0, sizeof *c);
    c->batch = nd->unbatched ? 1 : p->batch;
    c->full_batch = p->batch;
    for (int j = 0; j < nd->n_in; j++) {
        c->in_node[j] = &m->g->nodes[nd->in[j]];
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
    c->training = p->training;
    c->eager = p->mode >= PN_MODE_EAGER;
    c->seed = pn_hash64(p->seed, (uint64_t)i);
    if (p->fold[i] >= 0) {
        const int e = p->fold[i];
        const pn_var *t = &m->vars[m->g->nodes[e].var[0]];
        c->fold_idx = (const int32_t *)(const void *)p->value[m->g->nodes[e].in[0]];
        c->fold_table = m->params + t->offset;
        const int wants = p->mode != PN_MODE_INFER && t->trainable && p->grad[i];
        c->fold_dtable = wants ? m->grads + t->offset : NULL;
        c->fold_acc = p->acc_var[e * PN_MAX_VARS];
        c->fold_rows = t->shape[0];
    }
}

/* Nodes in order; a folded embedding and a swapped relu do not run (passes.c), and a pool the
 * relu moved to applies it to its output. Nodes reading the targets run only when the step
 * pointed the target nodes at its data (p->targets_set: train and test steps, not predict). */
void pn_plan_forward(const pn_model *m, pn_plan *p) {
    for (int i = 0; i < m->g->n_nodes; i++) {
        if (m->g->nodes[i].op == PN_OP_INPUT || p->fold[i] == PN_FOLDED ||
            p->swap[i] == PN_SWAP_SKIP)
            continue;
        if (p->needs_y[i] && (m->g->nodes[i].op == PN_OP_TARGET || !p->targets_set))
            continue; /* its value is the step's data, or nothing reads it in this run */
        pn_ctx c;
        make_ctx(m, p, i, &c);
        pn_gemm_bf16 = m->g->nodes[i].bf16;
        pn_op_table[m->g->nodes[i].op]->forward(&m->g->nodes[i], &c);
        pn_gemm_bf16 = 0;
        if (p->swap[i] == PN_SWAP_RELU_AFTER) pn_plan_relu_after(&m->g->nodes[i], &c, 0);
    }
}

/* Nodes in reverse order, those with a gradient; a pool the relu moved to first takes the relu's
 * gradient of its dout. */
void pn_plan_backward(const pn_model *m, pn_plan *p) {
    for (int i = m->g->n_nodes - 1; i >= 0; i--) {
        const pn_node *nd = &m->g->nodes[i];
        if (!p->grad[i] || nd->op == PN_OP_INPUT || p->swap[i] == PN_SWAP_SKIP) continue;
        pn_ctx c;
        make_ctx(m, p, i, &c);
        if (p->swap[i] == PN_SWAP_RELU_AFTER) pn_plan_relu_after(nd, &c, 1);
        pn_gemm_bf16 = nd->bf16;
        pn_op_table[nd->op]->backward(nd, &c);
        pn_gemm_bf16 = 0;
    }
}
