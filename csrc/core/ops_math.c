/*
 * ops_math.c: NumPy-style math as graph nodes: what a traced keras.ops call (a custom layer's
 * call(), a Lambda) adds to a model. The kernels are eager_math.c's, the ones the tape runs:
 * each op here views its node's buffers as tensors (pn_math_view) and calls them.
 *
 * A node's tensor is (batch, *shape) when it is batched and shape when it is not (an unbatched
 * node is computed from variables and constants: a weight read by `variable`, an `arange`).
 * Broadcasting ops (binary, matmul) take both kinds together, as NumPy broadcasts a weight
 * against a batch: the batch axis must stay the result's first axis.
 *
 * Attributes index the node's own axes (per sample for a batched node), except reduce, whose
 * mask includes the batch axis as bit 0 (a reduction over it, such as a mean loss term, gives
 * an unbatched value).
 *
 * Backward: each gradient kernel accumulates, so a node that is its input's first writer
 * (acc_in 0) zeroes that gradient first.
 */
#include <math.h>

#include "internal.h"

/* The whole tensor of node n for this batch: (batch, *shape), or shape when unbatched. */
void pn_node_view(pn_value *v, const pn_node *n, int64_t batch, const void *data) {
    int64_t dims[PN_MAX_DIMS];
    int nd = 0;
    if (!n->unbatched) dims[nd++] = batch;
    for (int i = 0; i < n->ndim; i++) dims[nd++] = n->shape[i];
    pn_math_view(v, nd, dims, data);
}

/* input j's view in a run (batched inputs have the plan's batch, c->full_batch) */
void pn_in_view(pn_value *v, const pn_ctx *c, int j) {
    pn_node_view(v, c->in_node[j], c->in_node[j]->unbatched ? 1 : c->full_batch, c->in[j]);
}

void pn_out_view(pn_value *v, const pn_node *n, const pn_ctx *c) {
    pn_node_view(v, n, c->batch, c->out);
}

/* The gradient buffer of input j, zeroed when this node is its first writer; NULL if none. */
float *pn_din_buf(const pn_ctx *c, int j) {
    float *d = c->din[j];
    if (d && !c->acc_in[j]) {
        const pn_node *x = c->in_node[j];
        memset(d, 0, (size_t)((x->unbatched ? 1 : c->full_batch) * x->size) * sizeof(float));
    }
    return d;
}

/* Sets n's shape from a whole-tensor result (nd, dims) computed with a batch of 1 standing in
 * for the batch: a batched result must keep the batch axis first, where every batched operand
 * has it. `rank_b` is the whole rank of the batched operands (-1: none). */
int pn_set_result_shape(const char *name, pn_node *n, int nd, const int64_t *dims,
                        int rank_b) {
    if (n->unbatched) {
        n->ndim = nd;
        memcpy(n->shape, dims, (size_t)nd * sizeof *dims);
        return PN_OK;
    }
    if (nd != rank_b || nd < 1 || dims[0] != 1)
        return pn_error(PN_ESHAPE, "%s: the batch axis would not stay the first axis of the "
                        "result (operands of rank %d with the batch axis, a result of rank %d): "
                        "give the other operand no more axes than a sample has", name, rank_b,
                        nd);
    n->ndim = nd - 1;
    memcpy(n->shape, dims + 1, (size_t)(nd - 1) * sizeof *dims);
    return PN_OK;
}

/* views of both operands with a stand-in batch of 1; the whole rank of batched ones */
static int operand_views(const pn_model *m, const pn_node *n, pn_value *v, int *rank_b) {
    *rank_b = -1;
    for (int j = 0; j < n->n_in; j++) {
        const pn_node *x = pn_input_node(m, n, j);
        if (x->dtype != PN_F32)
            return pn_error(PN_ETYPE, "%s: operands must be float32 (cast int32 tensors first)",
                            pn_op_name(n->op));
        pn_node_view(&v[j], x, 1, NULL);
        if (!x->unbatched) {
            if (*rank_b >= 0 && *rank_b != v[j].ndim)
                return pn_error(PN_ESHAPE, "%s: tensors with a batch axis must have the same "
                                "rank, got %d and %d", pn_op_name(n->op), *rank_b, v[j].ndim);
            *rank_b = v[j].ndim;
        }
    }
    return PN_OK;
}

/* ---- variable: a weight's values, unbatched       dW (+)= dout --------------------------- */

static int variable_shape(const pn_model *m, pn_node *n) {
    if (n->n_in != 0 || n->n_var != 1)
        return pn_error(PN_EVALUE, "variable: takes no input and one variable");
    const pn_var *v = &m->vars[n->var[0]];
    n->dtype = PN_F32;
    n->unbatched = 1;
    n->ndim = v->ndim;
    memcpy(n->shape, v->shape, (size_t)v->ndim * sizeof *v->shape);
    return PN_OK;
}

static void variable_forward(const pn_node *n, const pn_ctx *c) {
    memcpy(c->out, c->var[0], (size_t)n->size * sizeof(float));
}

static void variable_backward(const pn_node *n, const pn_ctx *c) {
    float *restrict dw = c->dvar[0];
    const float *restrict g = c->dout;
    if (!dw) return;
    if (c->acc_var[0])
        for (int64_t i = 0; i < n->size; i++) dw[i] += g[i];
    else
        memcpy(dw, g, (size_t)n->size * sizeof(float));
}

const pn_op_def pn_op_variable_def = {"variable", variable_shape, variable_forward,
                                      variable_backward, NULL,
                                      PN_OPF_BWD_NO_IN | PN_OPF_BWD_NO_OUT};

/* ---- constant: an array's values (n->data, the graph's), unbatched, no gradient ----------- */

static int constant_shape(const pn_model *m, pn_node *n) {
    (void)m, (void)n;
    return pn_error(PN_EVALUE, "constant: made by pn_model_add_constant, with its values");
}

static void constant_forward(const pn_node *n, const pn_ctx *c) {
    memcpy(c->out, n->data, (size_t)n->size * sizeof(float));
}

static void constant_backward(const pn_node *n, const pn_ctx *c) { (void)n, (void)c; }

const pn_op_def pn_op_constant_def = {"constant", constant_shape, constant_forward,
                                      constant_backward, NULL,
                                      PN_OPF_BWD_NO_IN | PN_OPF_BWD_NO_OUT};

/* ---- binary: z = a (op) b, broadcast (see eager_math.c for each op's derivative) ----------
 * Two inputs; or one input and a scalar fattr[0], which is the left operand when iattr[1] is 1
 * (2 - x) and the right one otherwise (x * 2). */

static int binary_shape(const pn_model *m, pn_node *n) {
    if (n->n_var != 0 || n->n_in < 1 || n->n_in > 2)
        return pn_error(PN_EVALUE, "binary: takes one or two inputs and no variables");
    if (!pn_binop_name(n->iattr[0]))
        return pn_error(PN_EVALUE, "binary: unknown op %d", n->iattr[0]);
    pn_value v[2], s;
    int rank_b, nd;
    int64_t dims[PN_MAX_DIMS];
    int rc = operand_views(m, n, v, &rank_b);
    if (rc) return rc;
    if (n->n_in == 1) {
        pn_math_view(&s, 0, NULL, NULL);
        v[1] = s;
    }
    if ((rc = pn_math_binary_shape((pn_binop)n->iattr[0], &v[0], &v[1], &nd, dims))) return rc;
    n->dtype = PN_F32;
    return pn_set_result_shape(pn_binop_name(n->iattr[0]), n, nd, dims, rank_b);
}

/* the operands in order: input 0 and input 1, or input 0 and the scalar (either side) */
static void binary_operands(const pn_node *n, const pn_ctx *c, pn_value *a, pn_value *b,
                            const float *scalar, int *x_at) {
    pn_value x;
    pn_in_view(&x, c, 0);
    if (n->n_in == 2) {
        *a = x;
        pn_in_view(b, c, 1);
        *x_at = 0;
        return;
    }
    pn_value s;
    pn_math_view(&s, 0, NULL, scalar);
    *x_at = n->iattr[1] ? 1 : 0;
    *a = *x_at ? s : x;
    *b = *x_at ? x : s;
}

static void binary_forward(const pn_node *n, const pn_ctx *c) {
    pn_value a, b, o;
    int x_at;
    binary_operands(n, c, &a, &b, &n->fattr[0], &x_at);
    pn_out_view(&o, n, c);
    pn_math_binary((pn_binop)n->iattr[0], &o, &a, &b);
}

static void binary_backward(const pn_node *n, const pn_ctx *c) {
    pn_value a, b, o;
    int x_at;
    binary_operands(n, c, &a, &b, &n->fattr[0], &x_at);
    pn_out_view(&o, n, c);
    o.grad = c->dout;
    for (int j = 0; j < n->n_in; j++) {
        float *d = pn_din_buf(c, j);
        if (d) pn_math_binary_grad((pn_binop)n->iattr[0], n->n_in == 2 ? j : x_at, d, &o, &a, &b);
    }
}

const pn_op_def pn_op_binary_def = {"binary", binary_shape, binary_forward, binary_backward, NULL,
                                    PN_OPF_MIXED};

/* ---- unary: z = f(x) elementwise ------------------------------------------------------------ */

static int unary_shape(const pn_model *m, pn_node *n) {
    if (n->n_in != 1 || n->n_var != 0)
        return pn_error(PN_EVALUE, "unary: takes one input and no variables");
    if (!pn_unop_name(n->iattr[0])) return pn_error(PN_EVALUE, "unary: unknown op %d", n->iattr[0]);
    const pn_node *x = pn_input_node(m, n, 0);
    if (x->dtype != PN_F32)
        return pn_error(PN_ETYPE, "%s: the input must be float32", pn_unop_name(n->iattr[0]));
    n->dtype = PN_F32;
    n->ndim = x->ndim;
    memcpy(n->shape, x->shape, (size_t)x->ndim * sizeof *x->shape);
    return PN_OK;
}

static void unary_forward(const pn_node *n, const pn_ctx *c) {
    pn_math_unary((pn_unop)n->iattr[0], c->out, c->in[0], c->batch * n->size);
}

static void unary_backward(const pn_node *n, const pn_ctx *c) {
    float *d = pn_din_buf(c, 0);
    if (d) pn_math_unary_grad((pn_unop)n->iattr[0], d, c->dout, c->in[0], c->out,
                              c->batch * n->size);
}

const pn_op_def pn_op_unary_def = {"unary", unary_shape, unary_forward, unary_backward, NULL, 0};

/* ---- reduce: sum, mean, max, min or prod over the axes in iattr[1] (bit 0: the batch axis of a
 * batched input), keeping them as 1s when iattr[2] is 1. Scratch: a double (sum, mean), an
 * index (max, min) or two doubles (prod) per output value; the last two live until backward. */

static int reduce_shape(const pn_model *m, pn_node *n) {
    if (n->n_in != 1 || n->n_var != 0)
        return pn_error(PN_EVALUE, "reduce: takes one input and no variables");
    const char *name = pn_redop_name(n->iattr[0]);
    if (!name) return pn_error(PN_EVALUE, "reduce: unknown op %d", n->iattr[0]);
    const pn_node *x = pn_input_node(m, n, 0);
    if (x->dtype != PN_F32) return pn_error(PN_ETYPE, "%s: the input must be float32", name);
    pn_value v;
    pn_node_view(&v, x, 1, NULL);
    unsigned mask = (unsigned)n->iattr[1];
    int nd;
    int64_t dims[PN_MAX_DIMS];
    int rc = pn_math_reduce_shape((pn_redop)n->iattr[0], &v, mask, n->iattr[2] != 0, &nd, dims);
    if (rc) return rc;
    n->dtype = PN_F32;
    if (!x->unbatched && (mask & 1u)) n->unbatched = 1; /* over the batch: one value per step */
    return pn_set_result_shape(name, n, nd, dims, nd);
}

static int64_t reduce_scratch(const pn_model *m, const pn_node *n, int64_t batch, int training) {
    (void)m, (void)training;
    return pn_math_reduce_buf_bytes((pn_redop)n->iattr[0], batch * n->size) / 4;
}

static void reduce_forward(const pn_node *n, const pn_ctx *c) {
    pn_value x, o;
    pn_in_view(&x, c, 0);
    pn_out_view(&o, n, c);
    pn_math_reduce((pn_redop)n->iattr[0], &o, &x, (unsigned)n->iattr[1], c->scratch);
}

static void reduce_backward(const pn_node *n, const pn_ctx *c) {
    pn_value x;
    pn_in_view(&x, c, 0);
    float *d = pn_din_buf(c, 0);
    if (d) pn_math_reduce_grad((pn_redop)n->iattr[0], d, c->dout, &x, (unsigned)n->iattr[1],
                               c->scratch, c->batch * n->size);
}

const pn_op_def pn_op_reduce_def = {"reduce", reduce_shape, reduce_forward, reduce_backward,
                                    reduce_scratch, PN_OPF_BWD_NO_OUT};

/* ---- matmul: NumPy's rules on the whole tensors     dA += dC B^T,  dB += A^T dC ----------- */

static int matmul_shape(const pn_model *m, pn_node *n) {
    if (n->n_in != 2 || n->n_var != 0)
        return pn_error(PN_EVALUE, "matmul: takes two inputs and no variables");
    pn_value v[2];
    int rank_b, nd;
    int64_t dims[PN_MAX_DIMS];
    int rc = operand_views(m, n, v, &rank_b);
    if (rc || (rc = pn_math_matmul_shape(&v[0], &v[1], &nd, dims))) return rc;
    n->dtype = PN_F32;
    return pn_set_result_shape("matmul", n, nd, dims, rank_b);
}

static void matmul_forward(const pn_node *n, const pn_ctx *c) {
    pn_value a, b, o;
    pn_in_view(&a, c, 0);
    pn_in_view(&b, c, 1);
    pn_out_view(&o, n, c);
    pn_math_matmul(&o, &a, &b, 0);
}

static void matmul_backward(const pn_node *n, const pn_ctx *c) {
    (void)n;
    pn_value a, b;
    pn_in_view(&a, c, 0);
    pn_in_view(&b, c, 1);
    pn_math_matmul_grad(pn_din_buf(c, 0), pn_din_buf(c, 1), c->dout, &a, &b);
}

const pn_op_def pn_op_matmul_def = {"matmul", matmul_shape, matmul_forward, matmul_backward, NULL,
                                    PN_OPF_MIXED | PN_OPF_BWD_NO_OUT};

/* ---- transpose: the node's axes permuted by iattr[0..ndim) (the batch axis stays first) --- */

static void whole_perm(const pn_node *x, const int *perm, int *p) {
    int k = 0, shift = !x->unbatched;
    if (shift) p[k++] = 0;
    for (int j = 0; j < x->ndim; j++) p[k++] = perm[j] + shift;
}

static int transpose_shape(const pn_model *m, pn_node *n) {
    if (n->n_in != 1 || n->n_var != 0)
        return pn_error(PN_EVALUE, "transpose: takes one input and no variables");
    const pn_node *x = pn_input_node(m, n, 0);
    if (x->dtype != PN_F32) return pn_error(PN_ETYPE, "transpose: the input must be float32");
    pn_value v;
    pn_node_view(&v, x, 1, NULL);
    for (int j = 0; j < x->ndim; j++)
        if (n->iattr[j] < 0 || n->iattr[j] >= x->ndim)
            return pn_error(PN_EVALUE, "transpose: axis %d is out of bounds for a tensor of %d "
                            "axes%s", n->iattr[j], x->ndim, x->unbatched ? "" : " per sample");
    int p[PN_MAX_DIMS];
    int64_t dims[PN_MAX_DIMS];
    whole_perm(x, n->iattr, p);
    int rc = pn_math_transpose_shape(&v, p, dims);
    if (rc) return rc;
    n->dtype = PN_F32;
    return pn_set_result_shape("transpose", n, v.ndim, dims, x->unbatched ? -1 : v.ndim);
}

static void transpose_forward(const pn_node *n, const pn_ctx *c) {
    pn_value x, o;
    int p[PN_MAX_DIMS];
    pn_in_view(&x, c, 0);
    pn_out_view(&o, n, c);
    whole_perm(c->in_node[0], n->iattr, p);
    pn_math_transpose(&o, &x, p);
}

static void transpose_backward(const pn_node *n, const pn_ctx *c) {
    pn_value x;
    int p[PN_MAX_DIMS];
    pn_in_view(&x, c, 0);
    whole_perm(c->in_node[0], n->iattr, p);
    float *d = pn_din_buf(c, 0);
    if (d) pn_math_transpose_grad(d, c->dout, &x, p);
}

const pn_op_def pn_op_transpose_def = {"transpose", transpose_shape, transpose_forward,
                                       transpose_backward, NULL,
                                       PN_OPF_BWD_NO_IN | PN_OPF_BWD_NO_OUT};

/* ---- strided_slice: per axis of the node (per sample when batched) start, step, count at
 * iattr[1 + 3 i ..]; the axes in the mask iattr[0] are indexed by one integer and dropped ---- */

static void whole_slice(const pn_node *x, const int *a, int64_t batch, int64_t *start,
                        int64_t *step, int64_t *count) {
    int k = 0;
    if (!x->unbatched) start[k] = 0, step[k] = 1, count[k] = batch, k++;
    for (int i = 0; i < x->ndim; i++, k++) {
        start[k] = a[1 + 3 * i];
        step[k] = a[2 + 3 * i];
        count[k] = a[3 + 3 * i];
    }
}

_Static_assert(PN_MAX_ATTRS >= 1 + 3 * PN_MAX_DIMS, "strided_slice keeps 3 ints per axis");

static int strided_slice_shape(const pn_model *m, pn_node *n) {
    if (n->n_in != 1 || n->n_var != 0)
        return pn_error(PN_EVALUE, "strided_slice: takes one input and no variables");
    const pn_node *x = pn_input_node(m, n, 0);
    if (x->dtype != PN_F32) return pn_error(PN_ETYPE, "slice: the input must be float32");
    pn_value v;
    pn_node_view(&v, x, 1, NULL);
    int64_t start[PN_MAX_DIMS], step[PN_MAX_DIMS], count[PN_MAX_DIMS], dims[PN_MAX_DIMS];
    whole_slice(x, n->iattr, 1, start, step, count);
    unsigned drop = (unsigned)n->iattr[0] << (x->unbatched ? 0 : 1);
    int nd, rc = pn_math_slice_shape(&v, start, step, count, drop, &nd, dims);
    if (rc) return rc;
    n->dtype = PN_F32;
    return pn_set_result_shape("slice", n, nd, dims, x->unbatched ? -1 : nd);
}

static void strided_slice_forward(const pn_node *n, const pn_ctx *c) {
    pn_value x, o;
    int64_t start[PN_MAX_DIMS], step[PN_MAX_DIMS], count[PN_MAX_DIMS];
    pn_in_view(&x, c, 0);
    pn_out_view(&o, n, c);
    whole_slice(c->in_node[0], n->iattr, c->full_batch, start, step, count);
    pn_math_slice(&o, &x, start, step, count);
}

static void strided_slice_backward(const pn_node *n, const pn_ctx *c) {
    pn_value x;
    int64_t start[PN_MAX_DIMS], step[PN_MAX_DIMS], count[PN_MAX_DIMS];
    pn_in_view(&x, c, 0);
    whole_slice(c->in_node[0], n->iattr, c->full_batch, start, step, count);
    float *d = pn_din_buf(c, 0);
    if (d) pn_math_slice_grad(d, c->dout, &x, start, step, count, c->batch * n->size);
}

const pn_op_def pn_op_strided_slice_def = {"strided_slice", strided_slice_shape,
                                           strided_slice_forward, strided_slice_backward, NULL,
                                           PN_OPF_BWD_NO_IN | PN_OPF_BWD_NO_OUT};

/* ---- softmax_axis: softmax (iattr[1] 0) or log_softmax (1) over the node's axis iattr[0] -- */

static int softmax_axis_shape(const pn_model *m, pn_node *n) {
    if (n->n_in != 1 || n->n_var != 0)
        return pn_error(PN_EVALUE, "softmax: takes one input and no variables");
    const pn_node *x = pn_input_node(m, n, 0);
    if (x->dtype != PN_F32) return pn_error(PN_ETYPE, "softmax: the input must be float32");
    if (n->iattr[0] < 0 || n->iattr[0] >= x->ndim)
        return pn_error(PN_EVALUE, "softmax: axis %d is out of bounds for a tensor of %d axes%s",
                        n->iattr[0], x->ndim, x->unbatched ? "" : " per sample");
    n->dtype = PN_F32;
    n->ndim = x->ndim;
    memcpy(n->shape, x->shape, (size_t)x->ndim * sizeof *x->shape);
    return PN_OK;
}

static int64_t softmax_axis_scratch(const pn_model *m, const pn_node *n, int64_t batch,
                                    int training) {
    (void)m, (void)training;
    pn_value v;
    pn_node_view(&v, n, batch, NULL);
    return pn_math_softmax_scratch(&v, n->iattr[0] + !n->unbatched);
}

static void softmax_axis_forward(const pn_node *n, const pn_ctx *c) {
    pn_value x, o;
    pn_in_view(&x, c, 0);
    pn_out_view(&o, n, c);
    pn_math_softmax(&o, &x, n->iattr[0] + !n->unbatched, n->iattr[1], c->scratch);
}

static void softmax_axis_backward(const pn_node *n, const pn_ctx *c) {
    pn_value x;
    pn_in_view(&x, c, 0);
    float *d = pn_din_buf(c, 0);
    if (d) pn_math_softmax_grad(d, c->dout, c->out, &x, n->iattr[0] + !n->unbatched, n->iattr[1],
                                c->scratch);
}

const pn_op_def pn_op_softmax_axis_def = {"softmax_axis", softmax_axis_shape,
                                          softmax_axis_forward, softmax_axis_backward,
                                          softmax_axis_scratch, PN_OPF_BWD_NO_IN};

/* ---- arange: int32 start + i step for i < count (iattr[0..2]): unbatched, no gradient ---- */

static int arange_shape(const pn_model *m, pn_node *n) {
    (void)m;
    if (n->n_in != 0 || n->n_var != 0)
        return pn_error(PN_EVALUE, "arange: takes no inputs and no variables");
    int64_t start = n->iattr[0], step = n->iattr[1], count = n->iattr[2];
    if (count < 1) return pn_error(PN_EVALUE, "arange: the count must be >= 1, got %lld",
                                   (long long)count);
    int64_t last = start + (count - 1) * step;
    if (last < INT32_MIN || last > INT32_MAX)
        return pn_error(PN_EVALUE, "arange: values beyond int32");
    n->dtype = PN_I32;
    n->unbatched = 1;
    n->ndim = 1;
    n->shape[0] = count;
    return PN_OK;
}

static void arange_forward(const pn_node *n, const pn_ctx *c) {
    int32_t *o = (int32_t *)(void *)c->out;
    for (int64_t i = 0; i < n->shape[0]; i++) o[i] = (int32_t)(n->iattr[0] + i * n->iattr[1]);
}

static void arange_backward(const pn_node *n, const pn_ctx *c) { (void)n, (void)c; }

const pn_op_def pn_op_arange_def = {"arange", arange_shape, arange_forward, arange_backward, NULL,
                                    PN_OPF_BWD_NO_IN | PN_OPF_BWD_NO_OUT};

/* ---- random: iattr[0] 0: normal (mean fattr[0], stddev fattr[1]), 1: uniform [fattr[0],
 * fattr[1]); shape iattr[2] axes at iattr[3..]. With an input (whose values are not read), the
 * shape is per sample and the noise has the input's batch. New noise every forward, from the
 * plan's stream (pn_hash64 of the node's seed and the element). No gradient. */

static int random_shape(const pn_model *m, pn_node *n) {
    (void)m;
    if (n->n_in > 1 || n->n_var != 0)
        return pn_error(PN_EVALUE, "random: takes at most one input (for its batch) and no "
                        "variables");
    if (n->iattr[0] < 0 || n->iattr[0] > 1)
        return pn_error(PN_EVALUE, "random: unknown distribution %d", n->iattr[0]);
    if (!isfinite(n->fattr[0]) || !isfinite(n->fattr[1]) ||
        (n->iattr[0] == 0 && n->fattr[1] < 0.0f))
        return pn_error(PN_EVALUE, "random: bad parameters %g, %g", n->fattr[0], n->fattr[1]);
    int r = n->iattr[2];
    if (r < 0 || r > PN_MAX_DIMS - (n->n_in ? 1 : 0))
        return pn_error(PN_EVALUE, "random: rank %d is out of range", r);
    n->dtype = PN_F32;
    n->ndim = r;
    for (int i = 0; i < r; i++) n->shape[i] = n->iattr[3 + i];
    return PN_OK;
}

static void random_forward(const pn_node *n, const pn_ctx *c) {
    const int64_t N = c->batch * n->size;
    const float a = n->fattr[0], b = n->fattr[1];
    float *o = c->out;
    if (n->iattr[0] == 1) {
        for (int64_t i = 0; i < N; i++) o[i] = a + (b - a) * pn_uniform(c->seed, (uint64_t)i);
        return;
    }
    for (int64_t i = 0; i < N; i++) { /* Box-Muller on two uniforms in (0, 1] and [0, 1) */
        float u1 = 1.0f - pn_uniform(c->seed, 2 * (uint64_t)i);
        float u2 = pn_uniform(c->seed, 2 * (uint64_t)i + 1);
        o[i] = a + b * sqrtf(-2.0f * logf(u1)) * cosf(6.28318531f * u2);
    }
}

static void random_backward(const pn_node *n, const pn_ctx *c) {
    (void)n;
    pn_din_buf(c, 0); /* the batch's source gets no gradient: zero when first */
}

const pn_op_def pn_op_random_def = {"random", random_shape, random_forward, random_backward, NULL,
                                    PN_OPF_BWD_NO_IN | PN_OPF_BWD_NO_OUT};

/* ---- cast: to float32 (iattr[0] 0) or int32 (1, toward zero as NumPy's astype; NaN and
 * values beyond int32 give INT32_MIN, as x86's conversion does). The gradient of a cast to
 * float32 from float32 passes through unless iattr[1] is 1 (stop_gradient); other casts have
 * none. */

static int cast_shape(const pn_model *m, pn_node *n) {
    if (n->n_in != 1 || n->n_var != 0)
        return pn_error(PN_EVALUE, "cast: takes one input and no variables");
    if (n->iattr[0] != 0 && n->iattr[0] != 1)
        return pn_error(PN_EVALUE, "cast: unknown dtype %d", n->iattr[0]);
    const pn_node *x = pn_input_node(m, n, 0);
    n->dtype = n->iattr[0] ? PN_I32 : PN_F32;
    n->ndim = x->ndim;
    memcpy(n->shape, x->shape, (size_t)x->ndim * sizeof *x->shape);
    return PN_OK;
}

static void cast_forward(const pn_node *n, const pn_ctx *c) {
    const int64_t N = c->batch * n->size;
    const pn_dtype from = c->in_node[0]->dtype;
    if (from == n->dtype) {
        memcpy(c->out, c->in[0], (size_t)N * 4);
    } else if (n->dtype == PN_F32) {
        const int32_t *x = (const int32_t *)(const void *)c->in[0];
        for (int64_t i = 0; i < N; i++) c->out[i] = (float)x[i];
    } else {
        int32_t *o = (int32_t *)(void *)c->out;
        for (int64_t i = 0; i < N; i++) {
            float v = c->in[0][i];
            o[i] = v > -2147483904.0f && v < 2147483648.0f ? (int32_t)v : INT32_MIN;
        }
    }
}

static void cast_backward(const pn_node *n, const pn_ctx *c) {
    float *d = pn_din_buf(c, 0);
    if (!d || n->iattr[1] || n->dtype != PN_F32 || c->in_node[0]->dtype != PN_F32) return;
    for (int64_t i = 0; i < c->batch * n->size; i++) d[i] += c->dout[i];
}

const pn_op_def pn_op_cast_def = {"cast", cast_shape, cast_forward, cast_backward, NULL,
                                  PN_OPF_BWD_NO_IN | PN_OPF_BWD_NO_OUT};

/* ---- training_select: input 0 in a training run, input 1 otherwise (the two traces of a
 * call() whose Python code branches on `training`); the gradient goes to the input chosen. */

static int training_select_shape(const pn_model *m, pn_node *n) {
    if (n->n_in != 2 || n->n_var != 0)
        return pn_error(PN_EVALUE, "training_select: takes two inputs and no variables");
    const pn_node *a = pn_input_node(m, n, 0), *b = pn_input_node(m, n, 1);
    if (a->ndim != b->ndim || memcmp(a->shape, b->shape, (size_t)a->ndim * sizeof *a->shape) ||
        a->dtype != b->dtype || a->unbatched != b->unbatched)
        return pn_error(PN_ESHAPE, "training_select: the training and inference values differ "
                                   "in shape, dtype or batch axis");
    n->dtype = a->dtype;
    n->ndim = a->ndim;
    memcpy(n->shape, a->shape, (size_t)a->ndim * sizeof *a->shape);
    return PN_OK;
}

static void training_select_forward(const pn_node *n, const pn_ctx *c) {
    memcpy(c->out, c->in[c->training ? 0 : 1], (size_t)(c->batch * n->size) * 4);
}

static void training_select_backward(const pn_node *n, const pn_ctx *c) {
    const int k = c->training ? 0 : 1;
    pn_din_buf(c, 1 - k); /* the other branch gets no gradient: zero when first */
    float *d = pn_din_buf(c, k);
    if (!d || n->dtype != PN_F32) return;
    for (int64_t i = 0; i < c->batch * n->size; i++) d[i] += c->dout[i];
}

const pn_op_def pn_op_training_select_def = {"training_select", training_select_shape,
                                             training_select_forward,
                                             training_select_backward, NULL,
                                             PN_OPF_BWD_NO_IN | PN_OPF_BWD_NO_OUT};
