/*
 * ops_embedding.c: the embedding lookup.
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
    if (x->op != PN_OP_INPUT)
        return pn_error(PN_EVALUE, "embedding: indices must come straight from a model input");
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

int pn_embedding_check(const pn_model *m, int input, const int32_t *idx, int64_t count) {
    for (int i = 0; i < m->n_nodes; i++) {
        const pn_node *n = &m->nodes[i];
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
