/*
 * ops_embedding.c: the embedding lookup and the learned position embedding.
 *
 * Per sample: int32 indices of any shape (...), a table (V, D), output (..., D) float32.
 *   out[r] = table[idx[r]]            dtable[idx[r]] += dout[r]      (r over the N = B * size
 *                                                                      indices of the batch)
 * Indices are checked before any forward (pn_embedding_check, called by the model on the
 * caller's input), so the kernels never read or write outside the table.
 */
#include "internal.h"

static int embedding_shape(const pn_model *m, pn_node *n) {
    if (n->n_in != 1 || n->n_var != 1)
        return pn_error(PN_EVALUE, "embedding: takes one input and one table, got %d inputs and "
                        "%d variables", n->n_in, n->n_var);
    const pn_node *x = pn_input_node(m, n, 0);
    if (x->dtype != PN_I32)
        return pn_error(PN_ETYPE, "embedding: indices must be int32");
    const pn_var *t0 = &m->vars[n->var[0]];
    if (x->op == PN_OP_ARANGE) { /* positions: in range once, here */
        int64_t first = x->iattr[0], last = first + (x->shape[0] - 1) * x->iattr[1];
        if (t0->ndim == 2 && (first < 0 || last < 0 || first >= t0->shape[0] ||
                              last >= t0->shape[0]))
            return pn_error(PN_EVALUE, "embedding: positions %lld..%lld are outside 0..%lld "
                            "(input_dim %lld)", (long long)first, (long long)last,
                            (long long)t0->shape[0] - 1, (long long)t0->shape[0]);
    } else if (x->op != PN_OP_INPUT &&
               !(x->op == PN_OP_CAST && m->g->nodes[x->in[0]].op == PN_OP_INPUT)) {
        return pn_error(PN_EVALUE, "embedding: indices must come straight from a model input "
                        "(or its cast to int32, or an arange)");
    }
    if (x->ndim + 1 > PN_MAX_DIMS - 1)
        return pn_error(PN_ESHAPE, "embedding: indices of rank %d leave no room for the "
                        "embedding axis", x->ndim);
    const pn_var *t = &m->vars[n->var[0]];
    if (t->ndim != 2)
        return pn_error(PN_ESHAPE, "embedding: the table must be (input_dim, output_dim), got "
                        "rank %d", t->ndim);
    if (t->shape[0] > INT32_MAX)
        return pn_error(PN_ESHAPE, "embedding: input_dim %lld is too large",
                        (long long)t->shape[0]);
    n->dtype = PN_F32;
    n->ndim = x->ndim + 1;
    memcpy(n->shape, x->shape, (size_t)x->ndim * sizeof *n->shape);
    n->shape[x->ndim] = t->shape[1];
    return PN_OK;
}

int pn_embedding_check_rows(const int32_t *idx, int64_t count, int64_t V) {
    for (int64_t k = 0; k < count; k++)
        if (idx[k] < 0 || idx[k] >= V)
            return pn_error(PN_EVALUE, "embedding: index %d (at position %lld of the batch) "
                            "is outside 0..%lld (input_dim %lld)", idx[k], (long long)k,
                            (long long)V - 1, (long long)V);
    return PN_OK;
}

int pn_embedding_check_f32(const pn_model *m, int input, const float *x, int64_t count) {
    for (int i = 0; i < m->g->n_nodes; i++) {
        const pn_node *n = &m->g->nodes[i];
        if (n->op != PN_OP_EMBEDDING) continue;
        const pn_node *c = &m->g->nodes[n->in[0]];
        if (c->op != PN_OP_CAST || c->in[0] != input) continue;
        const int64_t V = m->vars[n->var[0]].shape[0];
        for (int64_t k = 0; k < count; k++)
            if (!(x[k] > -1.0f && x[k] < (float)V)) /* truncates into 0..V-1; NaN fails */
                return pn_error(PN_EVALUE, "embedding: index %g (at position %lld of the batch) "
                                "is outside 0..%lld (input_dim %lld)", (double)x[k],
                                (long long)k, (long long)V - 1, (long long)V);
    }
    return PN_OK;
}

int pn_embedding_check(const pn_model *m, int input, const int32_t *idx, int64_t count) {
    for (int i = 0; i < m->g->n_nodes; i++) {
        const pn_node *n = &m->g->nodes[i];
        if (n->op != PN_OP_EMBEDDING || n->in[0] != input) continue;
        int rc = pn_embedding_check_rows(idx, count, m->vars[n->var[0]].shape[0]);
        if (rc) return rc;
    }
    return PN_OK;
}

static void embedding_forward(const pn_node *n, const pn_ctx *c) {
    const int64_t D = n->shape[n->ndim - 1], N = c->batch * (n->size / D);
    const int32_t *idx = (const int32_t *)(const void *)c->in[0]; /* (N) */
    const float *table = c->var[0];                                /* (V, D) */
    float *out = c->out;                                           /* (N, D) */
#pragma omp parallel for num_threads(pn_threads) if (N * D > PN_PAR_MIN)
    for (int64_t r = 0; r < N; r++)
        memcpy(out + r * D, table + (int64_t)idx[r] * D, (size_t)D * sizeof(float));
}

/* A scatter-add: rows that repeat an index add into one table row, so it runs on one thread,
 * in index order (the same result at any thread count). */
static void embedding_backward(const pn_node *n, const pn_ctx *c) {
    float *restrict dtable = c->dvar[0];
    if (!dtable) return;
    const int64_t D = n->shape[n->ndim - 1], N = c->batch * (n->size / D);
    const int32_t *idx = (const int32_t *)(const void *)c->in[0];
    const float *restrict dout = c->dout;
    if (!c->acc_var[0]) memset(dtable, 0, (size_t)c->var_info[0]->size * sizeof(float));
    for (int64_t r = 0; r < N; r++) {
        float *restrict row = dtable + (int64_t)idx[r] * D;
        const float *restrict g = dout + r * D;
        for (int64_t j = 0; j < D; j++) row[j] += g[j];
    }
}

const pn_op_def pn_op_embedding_def = {"embedding", embedding_shape, embedding_forward,
                                       embedding_backward, NULL, PN_OPF_BWD_NO_OUT};

/* ---- position_embedding -------------------------------------------------------------------
 * keras_hub's PositionEmbedding: a learned table (L, D) of positions, L >= T; for an input of
 * per-sample shape (..., T, D) the output has the input's shape and holds the table's rows
 * 0..T-1 for every leading index (the input's values are not read, only its shape):
 *   out[o, t] = table[t]          dtable[t] += sum_o dout[o, t],  rows T..L-1 get 0
 * The input gets no gradient (zero).
 */

static int posemb_shape(const pn_model *m, pn_node *n) {
    if (n->n_in != 1 || n->n_var != 1)
        return pn_error(PN_EVALUE, "position_embedding: takes one input and one table, got %d "
                        "inputs and %d variables", n->n_in, n->n_var);
    const pn_node *x = pn_input_node(m, n, 0);
    if (x->dtype != PN_F32) return pn_error(PN_ETYPE, "position_embedding: input must be float32");
    if (x->ndim < 2)
        return pn_error(PN_ESHAPE, "position_embedding: input must be (batch, steps, features) "
                        "or of higher rank, got rank %d", x->ndim + 1);
    const pn_var *t = &m->vars[n->var[0]];
    int64_t T = x->shape[x->ndim - 2], D = x->shape[x->ndim - 1];
    if (t->ndim != 2 || t->shape[1] != D)
        return pn_error(PN_ESHAPE, "position_embedding: the table must be (sequence_length, %lld) "
                        "for %lld features, got rank %d with %lld elements", (long long)D,
                        (long long)D, t->ndim, (long long)t->size);
    if (t->shape[0] < T)
        return pn_error(PN_ESHAPE, "position_embedding: the input has %lld steps but the table "
                        "holds sequence_length=%lld positions", (long long)T,
                        (long long)t->shape[0]);
    n->dtype = PN_F32;
    n->ndim = x->ndim;
    memcpy(n->shape, x->shape, sizeof n->shape);
    return PN_OK;
}

static void posemb_forward(const pn_node *n, const pn_ctx *c) {
    const int64_t D = n->shape[n->ndim - 1], T = n->shape[n->ndim - 2];
    const int64_t outer = c->batch * (n->size / (T * D)), TD = T * D;
    const float *table = c->var[0]; /* (L, D): rows 0..T-1 are one contiguous (T, D) block */
    float *out = c->out;            /* (outer, T, D) */
#pragma omp parallel for num_threads(pn_threads) if (outer * TD > PN_PAR_MIN)
    for (int64_t o = 0; o < outer; o++) memcpy(out + o * TD, table, (size_t)TD * sizeof(float));
}

static void posemb_backward(const pn_node *n, const pn_ctx *c) {
    const int64_t D = n->shape[n->ndim - 1], T = n->shape[n->ndim - 2];
    const int64_t outer = c->batch * (n->size / (T * D)), TD = T * D;
    if (c->din[0] && !c->acc_in[0])
        memset(c->din[0], 0, (size_t)(c->batch * n->size) * sizeof(float));
    float *restrict dtable = c->dvar[0];
    if (!dtable) return;
    const float *restrict dout = c->dout;
    if (!c->acc_var[0]) memset(dtable, 0, (size_t)c->var_info[0]->size * sizeof(float));
    /* columns of (T D) split over threads; each sums over o in order: the same at any count */
#pragma omp parallel for num_threads(pn_threads) if (outer * TD > PN_PAR_MIN)
    for (int64_t j0 = 0; j0 < TD; j0 += 1024) {
        int64_t j1 = j0 + 1024 < TD ? j0 + 1024 : TD;
        for (int64_t o = 0; o < outer; o++) {
            const float *restrict g = dout + o * TD;
#pragma omp simd
            for (int64_t j = j0; j < j1; j++) dtable[j] += g[j];
        }
    }
}

const pn_op_def pn_op_position_embedding_def = {"position_embedding", posemb_shape,
                                                posemb_forward, posemb_backward, NULL,
                                                PN_OPF_BWD_NO_IN | PN_OPF_BWD_NO_OUT};
