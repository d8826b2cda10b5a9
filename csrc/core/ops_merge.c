/*
 * ops_merge.c: the merges of several float32 inputs (Keras's Add, Subtract, Multiply, Average,
 * Maximum, Concatenate). No variables.
 *
 * Attributes (iattr):
 *   add, multiply, average, maximum   none: 2..PN_MAX_INPUTS inputs of one per-sample shape
 *   subtract                          none: exactly 2 inputs of one shape
 *   concatenate                       [0] axis, a per-sample axis in 0..ndim-1 (batch excluded);
 *                                     2..PN_MAX_INPUTS inputs of one rank whose dims agree except
 *                                     on the axis; the output's axis is their sum
 *
 * One node may appear more than once among the inputs (Add()([x, x])): its din[] are then one
 * buffer, and the plan sets acc_in so that the later ones add. So every backward treats the
 * inputs in order j = 0, 1, ... over each range of elements, and reads only values (in[], dout),
 * never a gradient that another input's write may have changed.
 */
#include <stdio.h>

#include "internal.h"

/* "(3, 4)" */
static const char *shape_str(char *buf, size_t cap, const pn_node *x) {
    int len = snprintf(buf, cap, "(");
    for (int i = 0; i < x->ndim && len > 0 && (size_t)len < cap; i++)
        len += snprintf(buf + len, cap - (size_t)len, "%s%lld", i ? ", " : "",
                        (long long)x->shape[i]);
    if (len > 0 && (size_t)len < cap) snprintf(buf + len, cap - (size_t)len, ")");
    return buf;
}

/* 2..hi float32 inputs, no variables. */
static int merge_inputs(const pn_model *m, const pn_node *n, int hi) {
    const char *name = pn_op_name(n->op);
    if (n->n_in < 2 || n->n_in > hi || n->n_var != 0) {
        if (hi == 2)
            return pn_error(PN_EVALUE, "%s: takes exactly 2 inputs and no weights, got %d inputs "
                            "and %d weights", name, n->n_in, n->n_var);
        return pn_error(PN_EVALUE, "%s: takes 2 to %d inputs and no weights, got %d inputs and "
                        "%d weights", name, hi, n->n_in, n->n_var);
    }
    for (int j = 0; j < n->n_in; j++)
        if (pn_input_node(m, n, j)->dtype != PN_F32)
            return pn_error(PN_ETYPE, "%s: input %d must be float32", name, j);
    return PN_OK;
}

/* out (+)= g over len values: acc 1 adds, 0 writes */
static inline void put(float *restrict d, const float *restrict g, int64_t len, int acc) {
    if (acc)
        for (int64_t i = 0; i < len; i++) d[i] += g[i];
    else
        memcpy(d, g, (size_t)len * sizeof(float));
}

/* ---- add, subtract, multiply, average, maximum -----------------------------------------------
 * Over the N = B * size elements, with K inputs x_0..x_{K-1} folded left to right (Keras's order):
 *   add       y = x_0 + x_1 + ...            dx_j = dy
 *   subtract  y = x_0 - x_1                  dx_0 = dy,  dx_1 = -dy
 *   multiply  y = x_0 * x_1 * ...            dx_j = dy * prod_{k != j} x_k
 *   average   y = (x_0 + x_1 + ...) / K      dx_j = dy / K
 *   maximum   y = max(max(x_0, x_1), ...)    dx_j = dy where j is the first input holding the
 *                                            maximum (ties go to the earlier input, as TF's
 *                                            gradient of maximum), 0 elsewhere; a NaN wins.
 * The elements go in blocks of BLK, small enough that a block of every input stays in L1 while
 * the inputs fold into it; the blocks are split over the threads.
 */
#define BLK 1024

static int elementwise_shape(const pn_model *m, pn_node *n) {
    const char *name = pn_op_name(n->op);
    int rc = merge_inputs(m, n, n->op == PN_OP_SUBTRACT ? 2 : PN_MAX_INPUTS);
    if (rc) return rc;
    const pn_node *x0 = pn_input_node(m, n, 0);
    for (int j = 1; j < n->n_in; j++) {
        const pn_node *x = pn_input_node(m, n, j);
        if (x->ndim != x0->ndim ||
            memcmp(x->shape, x0->shape, (size_t)x0->ndim * sizeof *x0->shape) != 0) {
            char a[160], b[160];
            return pn_error(PN_ESHAPE, "%s: inputs must all have the same shape, got %s (input "
                            "0) and %s (input %d)", name, shape_str(a, sizeof a, x0),
                            shape_str(b, sizeof b, x), j);
        }
    }
    n->dtype = PN_F32;
    n->ndim = x0->ndim;
    memcpy(n->shape, x0->shape, sizeof n->shape);
    return PN_OK;
}

/* Values s .. s + len of the output. */
static void elementwise_forward_block(const pn_node *n, const pn_ctx *c, int64_t s, int64_t len) {
    const int op = n->op, K = n->n_in;
    float *restrict y = c->out + s;
    memcpy(y, c->in[0] + s, (size_t)len * sizeof(float));
    for (int j = 1; j < K; j++) {
        const float *restrict x = c->in[j] + s;
        switch (op) {
        case PN_OP_ADD:
        case PN_OP_AVERAGE:
            for (int64_t i = 0; i < len; i++) y[i] += x[i];
            break;
        case PN_OP_SUBTRACT:
            for (int64_t i = 0; i < len; i++) y[i] -= x[i];
            break;
        case PN_OP_MULTIPLY:
            for (int64_t i = 0; i < len; i++) y[i] *= x[i];
            break;
        default: /* maximum: branch-free, so it vectorizes to blends */
            for (int64_t i = 0; i < len; i++) {
                const float v = x[i];
                y[i] = (v > y[i] || v != v) ? v : y[i];
            }
        }
    }
    if (op == PN_OP_AVERAGE) {
        const float k = (float)K;
        for (int64_t i = 0; i < len; i++) y[i] /= k;
    }
}

static void elementwise_forward(const pn_node *n, const pn_ctx *c) {
    const int64_t N = c->batch * n->size, nblk = (N + BLK - 1) / BLK;
    PN_FOR(N > PN_PAR_MIN, blk, nblk,
           elementwise_forward_block(n, c, blk * BLK, N - blk * BLK < BLK ? N - blk * BLK : BLK););
}

/* Values s .. s + len of the inputs' gradients. */
static void elementwise_backward_block(const pn_node *n, const pn_ctx *c, int64_t s, int64_t len) {
    const int op = n->op, K = n->n_in;
    const float *restrict g = c->dout + s;
    float t[BLK];      /* multiply: one input's gradient; maximum: the running maximum */
    int32_t win[BLK];  /* maximum: the index of the input that holds it */
    if (op == PN_OP_MAXIMUM) {
        const float *restrict x0 = c->in[0] + s;
        for (int64_t i = 0; i < len; i++) {
            t[i] = x0[i];
            win[i] = 0;
        }
        for (int j = 1; j < K; j++) {
            const float *restrict x = c->in[j] + s;
            for (int64_t i = 0; i < len; i++) {
                const float v = x[i];
                const int take = v > t[i] || v != v;
                t[i] = take ? v : t[i];
                win[i] = take ? j : win[i];
            }
        }
    }
    for (int j = 0; j < K; j++) {
        if (!c->din[j]) continue;
        float *restrict d = c->din[j] + s;
        const int acc = c->acc_in[j];
        switch (op) {
        case PN_OP_ADD:
            put(d, g, len, acc);
            break;
        case PN_OP_SUBTRACT:
            if (j == 0)
                put(d, g, len, acc);
            else if (acc)
                for (int64_t i = 0; i < len; i++) d[i] -= g[i];
            else
                for (int64_t i = 0; i < len; i++) d[i] = -g[i];
            break;
        case PN_OP_AVERAGE: {
            const float k = (float)K;
            if (acc)
                for (int64_t i = 0; i < len; i++) d[i] += g[i] / k;
            else
                for (int64_t i = 0; i < len; i++) d[i] = g[i] / k;
            break;
        }
        case PN_OP_MULTIPLY:
            memcpy(t, g, (size_t)len * sizeof(float));
            for (int k = 0; k < K; k++) {
                if (k == j) continue;
                const float *restrict x = c->in[k] + s;
                for (int64_t i = 0; i < len; i++) t[i] *= x[i];
            }
            put(d, t, len, acc);
            break;
        default: /* maximum */
            if (acc)
                for (int64_t i = 0; i < len; i++) d[i] += win[i] == j ? g[i] : 0.0f;
            else
                for (int64_t i = 0; i < len; i++) d[i] = win[i] == j ? g[i] : 0.0f;
        }
    }
}

static void elementwise_backward(const pn_node *n, const pn_ctx *c) {
    const int64_t N = c->batch * n->size, nblk = (N + BLK - 1) / BLK;
    PN_FOR(N > PN_PAR_MIN, blk, nblk,
           elementwise_backward_block(n, c, blk * BLK, N - blk * BLK < BLK ? N - blk * BLK : BLK););
}

/* ---- concatenate -------------------------------------------------------------------------------
 * Each sample is (outer, L, inner) around the axis, so the batch is R = B * outer rows; input j's
 * row is its L_j * inner values, the output's row all of them side by side:
 *   out[r, off_j + k] = x_j[r, k]          dx_j[r, k] (+)= dout[r, off_j + k]
 * with off_j = (L_0 + ... + L_{j-1}) * inner, k < L_j * inner.
 */

typedef struct {
    int64_t rows, row;              /* R, and the output's row length */
    int64_t len[PN_MAX_INPUTS];     /* input j's row length */
    int64_t off[PN_MAX_INPUTS];     /* where it starts in the output's row */
} cat_dims;

static cat_dims cat_get(const pn_node *n, const pn_ctx *c) {
    const int axis = n->iattr[0];
    int64_t outer = 1, inner = 1;
    for (int i = 0; i < axis; i++) outer *= n->shape[i];
    for (int i = axis + 1; i < n->ndim; i++) inner *= n->shape[i];
    cat_dims d = {.rows = c->batch * outer, .row = n->shape[axis] * inner};
    int64_t off = 0;
    for (int j = 0; j < n->n_in; j++) {
        d.len[j] = c->in_node[j]->shape[axis] * inner;
        d.off[j] = off;
        off += d.len[j];
    }
    return d;
}

static int concatenate_shape(const pn_model *m, pn_node *n) {
    int rc = merge_inputs(m, n, PN_MAX_INPUTS);
    if (rc) return rc;
    const pn_node *x0 = pn_input_node(m, n, 0);
    const int axis = n->iattr[0], nd = x0->ndim;
    if (axis < 0 || axis >= nd)
        return pn_error(PN_EVALUE, "concatenate: axis %d is outside 0..%d (per-sample axes of the "
                        "rank-%d inputs, batch excluded)", axis, nd - 1, nd);
    int64_t total = 0;
    for (int j = 0; j < n->n_in; j++) {
        const pn_node *x = pn_input_node(m, n, j);
        int same = x->ndim == nd;
        for (int i = 0; same && i < nd; i++) same = i == axis || x->shape[i] == x0->shape[i];
        if (!same) {
            char a[160], b[160];
            return pn_error(PN_ESHAPE, "concatenate: inputs must have the same shape except on "
                            "axis %d, got %s (input 0) and %s (input %d)", axis,
                            shape_str(a, sizeof a, x0), shape_str(b, sizeof b, x), j);
        }
        total += x->shape[axis];
    }
    n->dtype = PN_F32;
    n->ndim = nd;
    memcpy(n->shape, x0->shape, sizeof n->shape);
    n->shape[axis] = total;
    return PN_OK;
}

static void concatenate_forward(const pn_node *n, const pn_ctx *c) {
    const cat_dims d = cat_get(n, c);
    const int K = n->n_in;
    float *out = c->out; /* (R, row) */
    PN_FOR(d.rows * d.row > PN_PAR_MIN, r, d.rows,
        for (int j = 0; j < K; j++)
            memcpy(out + r * d.row + d.off[j], c->in[j] + r * d.len[j],
                   (size_t)d.len[j] * sizeof(float));
    );
}

static void concatenate_backward(const pn_node *n, const pn_ctx *c) {
    const cat_dims d = cat_get(n, c);
    const int K = n->n_in;
    const float *dout = c->dout; /* (R, row) */
    PN_FOR(d.rows * d.row > PN_PAR_MIN, r, d.rows,
        for (int j = 0; j < K; j++)
            if (c->din[j])
                put(c->din[j] + r * d.len[j], dout + r * d.row + d.off[j], d.len[j],
                    c->acc_in[j]);
    );
}

#define NO_IN_OUT (PN_OPF_BWD_NO_IN | PN_OPF_BWD_NO_OUT)
const pn_op_def pn_op_add_def = {"add", elementwise_shape, elementwise_forward,
                                 elementwise_backward, NULL, NO_IN_OUT};
const pn_op_def pn_op_subtract_def = {"subtract", elementwise_shape, elementwise_forward,
                                      elementwise_backward, NULL, NO_IN_OUT};
const pn_op_def pn_op_multiply_def = {"multiply", elementwise_shape, elementwise_forward,
                                      elementwise_backward, NULL, PN_OPF_BWD_NO_OUT};
const pn_op_def pn_op_average_def = {"average", elementwise_shape, elementwise_forward,
                                     elementwise_backward, NULL, NO_IN_OUT};
const pn_op_def pn_op_maximum_def = {"maximum", elementwise_shape, elementwise_forward,
                                     elementwise_backward, NULL, PN_OPF_BWD_NO_OUT};
const pn_op_def pn_op_concatenate_def = {"concatenate", concatenate_shape, concatenate_forward,
                                         concatenate_backward, NULL, NO_IN_OUT};
