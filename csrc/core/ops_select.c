/*
 * ops_select.c: selection, indexing and ordering: where, gather (take, take_along_axis),
 * cumulative sums and products, sort / argsort, argmax / argmin and pad. Each is a whole-tensor
 * kernel pair pn_math_* (forward, and backward accumulating into the input's gradient) and a
 * graph op running it, as in ops_math.c; eager values run the same graph op through
 * pn_eager_math_op (eager_ops.c), so the tape and the plans share one set of kernels.
 *
 * Axes in attributes are the node's own (per sample for a batched node); the kernels see the
 * whole tensor, (batch, *shape) or shape, and its axis. Most kernels view a tensor around one
 * axis as (outer, L, inner): L values along the axis, inner-contiguous.
 *
 * Indices are int32 data, so a gather checks them as it runs: a negative index counts from the
 * end (NumPy), one still outside the axis is never read; its output is 0 and the run fails with
 * PN_EVALUE (pn_fault: a graph forward cannot return an error, so the plan's caller asks after
 * the forward, before any loss, backward or update).
 */
#include <math.h>

#include "internal.h"

/* ---- faults: bad data found by a forward ------------------------------------------------- */

static _Thread_local int fault_code;

/* Records a fault with its message (the first of a run wins). */
#define FAULT(...)                                                                             \
    do {                                                                                       \
        if (!fault_code) fault_code = pn_error(PN_EVALUE, __VA_ARGS__);                        \
    } while (0)

void pn_fault_note(int rc) {
    if (!fault_code) fault_code = rc;
}

int pn_fault_take(void) {
    int rc = fault_code;
    fault_code = 0;
    return rc;
}

/* ---- shapes ------------------------------------------------------------------------------- */

static void contiguous_strides(int nd, const int64_t *dims, int64_t *st) {
    int64_t s = 1;
    for (int i = nd - 1; i >= 0; i--) {
        st[i] = s;
        s *= dims[i];
    }
}

/* a tensor around axis: (outer, L, inner) */
static void axis_dims(const pn_value *a, int axis, int64_t *outer, int64_t *L, int64_t *inner) {
    *outer = *inner = 1;
    for (int i = 0; i < axis; i++) *outer *= a->dims[i];
    for (int i = axis + 1; i < a->ndim; i++) *inner *= a->dims[i];
    *L = a->ndim ? a->dims[axis] : 1;
}

/* An odometer over a shape with up to three operands' strides: offsets follow the index. */
typedef struct {
    int nd;
    int64_t dims[PN_MAX_DIMS], st[3][PN_MAX_DIMS], idx[PN_MAX_DIMS], off[3];
} odo;

static void odo_init(odo *o, int nd, const int64_t *dims) {
    memset(o, 0, sizeof *o);
    o->nd = nd;
    memcpy(o->dims, dims, (size_t)nd * sizeof *dims);
}

static void odo_next(odo *o) {
    for (int d = o->nd - 1; d >= 0; d--) {
        o->idx[d]++;
        for (int k = 0; k < 3; k++) o->off[k] += o->st[k][d];
        if (o->idx[d] < o->dims[d]) return;
        for (int k = 0; k < 3; k++) o->off[k] -= o->st[k][d] * o->dims[d];
        o->idx[d] = 0;
    }
}

/* Operand k's strides in the broadcast to o's shape (aligned on the right; 0 where broadcast). */
static void odo_operand(odo *o, int k, const pn_value *v) {
    int64_t st[PN_MAX_DIMS];
    contiguous_strides(v->ndim, v->dims, st);
    for (int d = 0; d < o->nd; d++) {
        int i = d - (o->nd - v->ndim);
        o->st[k][d] = i >= 0 && v->dims[i] == o->dims[d] && o->dims[d] != 1 ? st[i] : 0;
    }
}

/* NumPy's broadcast of n shapes; error names the op */
static int broadcast_n(const char *name, int n, const pn_value *const *v, int *nd, int64_t *dims) {
    int r = 0;
    for (int k = 0; k < n; k++) r = v[k]->ndim > r ? v[k]->ndim : r;
    for (int d = 0; d < r; d++) {
        int64_t out = 1;
        for (int k = 0; k < n; k++) {
            int i = d - (r - v[k]->ndim);
            int64_t s = i >= 0 ? v[k]->dims[i] : 1;
            if (s != 1 && out != 1 && s != out)
                return pn_error(PN_ESHAPE, "%s: operand %d (size %lld on axis %d) cannot be "
                                "broadcast with size %lld", name, k, (long long)s, d,
                                (long long)out);
            if (s != 1) out = s;
        }
        dims[d] = out;
    }
    *nd = r;
    return PN_OK;
}

/* Views of the inputs with a stand-in batch of 1; the whole rank of the batched ones (-1: none);
 * checks each input's element type (want[j]). */
static int input_views(const pn_model *m, const pn_node *n, const char *name, pn_value *v,
                       const pn_dtype *want, int *rank_b) {
    *rank_b = -1;
    for (int j = 0; j < n->n_in; j++) {
        const pn_node *x = pn_input_node(m, n, j);
        if (x->dtype != want[j])
            return pn_error(PN_ETYPE, "%s: input %d must be %s", name, j,
                            want[j] == PN_F32 ? "float32" : "int32");
        pn_node_view(&v[j], x, 1, NULL);
        if (!x->unbatched) {
            if (*rank_b >= 0 && *rank_b != v[j].ndim)
                return pn_error(PN_ESHAPE, "%s: tensors with a batch axis must have the same "
                                "rank, got %d and %d", name, *rank_b, v[j].ndim);
            *rank_b = v[j].ndim;
        }
    }
    return PN_OK;
}

/* One float input, no variables, node axis iattr[k] within its axes: the whole axis in *ax. */
static int one_input_axis(const pn_model *m, const pn_node *n, const char *name, int k,
                          int *ax) {
    if (n->n_in != 1 || n->n_var != 0)
        return pn_error(PN_EVALUE, "%s: takes one input and no variables", name);
    const pn_node *x = pn_input_node(m, n, 0);
    if (x->dtype != PN_F32) return pn_error(PN_ETYPE, "%s: the input must be float32", name);
    if (n->iattr[k] < 0 || n->iattr[k] >= x->ndim)
        return pn_error(PN_EVALUE, "%s: axis %d is out of bounds for a tensor of %d axes%s", name,
                        n->iattr[k], x->ndim, x->unbatched ? "" : " per sample");
    *ax = n->iattr[k] + !x->unbatched;
    return PN_OK;
}

static void same_shape_as_input(const pn_model *m, pn_node *n, pn_dtype dtype) {
    const pn_node *x = pn_input_node(m, n, 0);
    n->dtype = dtype;
    n->ndim = x->ndim;
    memcpy(n->shape, x->shape, (size_t)x->ndim * sizeof *x->shape);
}

/* ---- where: z = cond != 0 ? a : b, broadcast        da += g where cond, db += g elsewhere -- */

int pn_math_where_shape(const pn_value *c, const pn_value *a, const pn_value *b, int *nd,
                        int64_t *dims) {
    const pn_value *v[3] = {c, a, b};
    return broadcast_n("where", 3, v, nd, dims);
}

void pn_math_where(pn_value *o, const pn_value *c, const pn_value *a, const pn_value *b) {
    odo it;
    odo_init(&it, o->ndim, o->dims);
    odo_operand(&it, 0, c);
    odo_operand(&it, 1, a);
    odo_operand(&it, 2, b);
    const float *cd = c->data, *ad = a->data, *bd = b->data;
    float *z = o->data;
    for (int64_t i = 0; i < o->size; i++, odo_next(&it))
        z[i] = cd[it.off[0]] != 0.0f ? ad[it.off[1]] : bd[it.off[2]];
}

void pn_math_where_grad(float *ga, float *gb, const float *g, const pn_value *o,
                        const pn_value *c, const pn_value *a, const pn_value *b) {
    odo it;
    odo_init(&it, o->ndim, o->dims);
    odo_operand(&it, 0, c);
    odo_operand(&it, 1, a);
    odo_operand(&it, 2, b);
    const float *cd = c->data;
    for (int64_t i = 0; i < o->size; i++, odo_next(&it)) {
        if (cd[it.off[0]] != 0.0f) {
            if (ga) ga[it.off[1]] += g[i];
        } else if (gb) {
            gb[it.off[2]] += g[i];
        }
    }
}

static int where_shape(const pn_model *m, pn_node *n) {
    if (n->n_in != 3 || n->n_var != 0)
        return pn_error(PN_EVALUE, "where: takes three inputs (condition, x1, x2) and no "
                        "variables");
    static const pn_dtype want[3] = {PN_F32, PN_F32, PN_F32};
    pn_value v[3];
    int rank_b, nd;
    int64_t dims[PN_MAX_DIMS];
    int rc = input_views(m, n, "where", v, want, &rank_b);
    if (rc || (rc = pn_math_where_shape(&v[0], &v[1], &v[2], &nd, dims))) return rc;
    n->dtype = PN_F32;
    return pn_set_result_shape("where", n, nd, dims, rank_b);
}

static void where_forward(const pn_node *n, const pn_ctx *c) {
    pn_value v[3], o;
    for (int j = 0; j < 3; j++) pn_in_view(&v[j], c, j);
    pn_out_view(&o, n, c);
    pn_math_where(&o, &v[0], &v[1], &v[2]);
}

static void where_backward(const pn_node *n, const pn_ctx *c) {
    pn_value v[3], o;
    for (int j = 0; j < 3; j++) pn_in_view(&v[j], c, j);
    pn_out_view(&o, n, c);
    pn_din_buf(c, 0); /* the condition has no gradient: zeroed when first */
    float *ga = pn_din_buf(c, 1), *gb = pn_din_buf(c, 2);
    if (ga || gb) pn_math_where_grad(ga, gb, c->dout, &o, &v[0], &v[1], &v[2]);
}

const pn_op_def pn_op_where_def = {"where", where_shape, where_forward, where_backward, NULL,
                                   PN_OPF_MIXED | PN_OPF_BWD_NO_OUT};

/* ---- gather ----------------------------------------------------------------------------------
 *   take              z[o, k, i] = x[o, idx[k], i]        x as (outer, N, inner) around axis,
 *                                                        idx any shape (K values)
 *   take_along_axis   z[.., k, ..] = x[.., idx[.., k, ..], ..]   x and idx of one rank, the
 *                                                        other axes broadcast
 *   backward          dx[source] += g   (indices may repeat: serial)
 * An index v < 0 reads v + N; one outside 0..N-1 then is a fault, its z 0, its g dropped.
 */

static int64_t wrap_index(int32_t v, int64_t N) { return v < 0 ? (int64_t)v + N : v; }

int pn_math_take_shape(const pn_value *x, const pn_value *idx, int axis, int *nd,
                       int64_t *dims) {
    if (axis < 0 || axis >= x->ndim)
        return pn_error(PN_EVALUE, "take: axis %d is out of bounds for a tensor of rank %d",
                        axis, x->ndim);
    if (x->ndim - 1 + idx->ndim > PN_MAX_DIMS)
        return pn_error(PN_ESHAPE, "take: the result would have rank %d; at most %d",
                        x->ndim - 1 + idx->ndim, PN_MAX_DIMS);
    int r = 0;
    for (int i = 0; i < axis; i++) dims[r++] = x->dims[i];
    for (int i = 0; i < idx->ndim; i++) dims[r++] = idx->dims[i];
    for (int i = axis + 1; i < x->ndim; i++) dims[r++] = x->dims[i];
    *nd = r;
    if (x->dims[axis] == 0 && idx->size > 0)
        return pn_error(PN_EVALUE, "take: cannot take from an empty axis");
    return PN_OK;
}

int pn_math_take(pn_value *o, const pn_value *x, const pn_value *idx, int axis) {
    int64_t outer, N, inner, K = idx->size;
    axis_dims(x, axis, &outer, &N, &inner);
    const int32_t *id = idx->data;
    const float *xd = x->data;
    float *z = o->data;
    int rc = PN_OK;
    for (int64_t k = 0; k < K; k++) {
        int64_t v = wrap_index(id[k], N);
        if (v < 0 || v >= N) {
            rc = pn_error(PN_EVALUE, "take: index %d is out of bounds for an axis of size %lld",
                          id[k], (long long)N);
            break;
        }
    }
    for (int64_t t = 0; t < outer; t++)
        for (int64_t k = 0; k < K; k++) {
            int64_t v = wrap_index(id[k], N);
            float *zr = z + (t * K + k) * inner;
            if (v < 0 || v >= N)
                memset(zr, 0, (size_t)inner * sizeof(float));
            else
                memcpy(zr, xd + (t * N + v) * inner, (size_t)inner * sizeof(float));
        }
    return rc;
}

void pn_math_take_grad(float *gx, const float *g, const pn_value *x, const pn_value *idx,
                       int axis) {
    int64_t outer, N, inner, K = idx->size;
    axis_dims(x, axis, &outer, &N, &inner);
    const int32_t *id = idx->data;
    for (int64_t t = 0; t < outer; t++)
        for (int64_t k = 0; k < K; k++) {
            int64_t v = wrap_index(id[k], N);
            if (v < 0 || v >= N) continue;
            float *gr = gx + (t * N + v) * inner;
            const float *gz = g + (t * K + k) * inner;
            for (int64_t i = 0; i < inner; i++) gr[i] += gz[i];
        }
}

int pn_math_take_along_shape(const pn_value *x, const pn_value *idx, int axis, int *nd,
                             int64_t *dims) {
    if (x->ndim != idx->ndim)
        return pn_error(PN_ESHAPE, "take_along_axis: the indices must have the tensor's rank "
                        "%d, got rank %d", x->ndim, idx->ndim);
    if (axis < 0 || axis >= x->ndim)
        return pn_error(PN_EVALUE, "take_along_axis: axis %d is out of bounds for a tensor of "
                        "rank %d", axis, x->ndim);
    for (int d = 0; d < x->ndim; d++) {
        int64_t a = x->dims[d], b = idx->dims[d];
        if (d == axis) {
            dims[d] = b;
            continue;
        }
        if (a != b && a != 1 && b != 1)
            return pn_error(PN_ESHAPE, "take_along_axis: axis %d of the tensor (%lld) and of the "
                            "indices (%lld) cannot be broadcast", d, (long long)a, (long long)b);
        dims[d] = a == 1 ? b : a;
    }
    *nd = x->ndim;
    if (x->ndim && x->dims[axis] == 0 && idx->size > 0)
        return pn_error(PN_EVALUE, "take_along_axis: cannot take from an empty axis");
    return PN_OK;
}

/* the odometer over o with x (its axis' stride 0) and idx as operands; x's axis stride */
static int64_t along_odo(odo *it, const pn_value *o, const pn_value *x, const pn_value *idx,
                         int axis) {
    int64_t xst[PN_MAX_DIMS];
    contiguous_strides(x->ndim, x->dims, xst);
    odo_init(it, o->ndim, o->dims);
    odo_operand(it, 0, x);
    odo_operand(it, 1, idx);
    it->st[0][axis] = 0;
    return xst[axis];
}

int pn_math_take_along(pn_value *o, const pn_value *x, const pn_value *idx, int axis) {
    odo it;
    int64_t sax = along_odo(&it, o, x, idx, axis), N = x->dims[axis];
    const int32_t *id = idx->data;
    const float *xd = x->data;
    float *z = o->data;
    int rc = PN_OK;
    for (int64_t i = 0; i < o->size; i++, odo_next(&it)) {
        int32_t raw = id[it.off[1]];
        int64_t v = wrap_index(raw, N);
        if (v < 0 || v >= N) {
            if (rc == PN_OK)
                rc = pn_error(PN_EVALUE, "take_along_axis: index %d is out of bounds for an axis "
                              "of size %lld", raw, (long long)N);
            z[i] = 0.0f;
            continue;
        }
        z[i] = xd[it.off[0] + v * sax];
    }
    return rc;
}

void pn_math_take_along_grad(float *gx, const float *g, const pn_value *o, const pn_value *x,
                             const pn_value *idx, int axis) {
    odo it;
    int64_t sax = along_odo(&it, o, x, idx, axis), N = x->dims[axis];
    const int32_t *id = idx->data;
    for (int64_t i = 0; i < o->size; i++, odo_next(&it)) {
        int64_t v = wrap_index(id[it.off[1]], N);
        if (v >= 0 && v < N) gx[it.off[0] + v * sax] += g[i];
    }
}

/* iattr[0] 0: take along x's node axis iattr[1]; 1: take_along_axis on the result's node axis
 * iattr[1]. Take does not mix batched x and indices; batched indices take from x's axis 0. */
static int gather_shape(const pn_model *m, pn_node *n) {
    if (n->n_in != 2 || n->n_var != 0)
        return pn_error(PN_EVALUE, "gather: takes two inputs (a tensor, int32 indices) and no "
                        "variables");
    int along = n->iattr[0];
    const char *name = along ? "take_along_axis" : "take";
    if (along != 0 && along != 1) return pn_error(PN_EVALUE, "gather: unknown mode %d", along);
    static const pn_dtype want[2] = {PN_F32, PN_I32};
    pn_value v[2];
    int rank_b, nd, rc = input_views(m, n, name, v, want, &rank_b);
    if (rc) return rc;
    const pn_node *x = pn_input_node(m, n, 0), *ix = pn_input_node(m, n, 1);
    int64_t dims[PN_MAX_DIMS];
    n->dtype = PN_F32;
    if (along) {
        int ax = n->iattr[1] + (n->unbatched ? 0 : 1);
        if (n->iattr[1] < 0)
            return pn_error(PN_EVALUE, "take_along_axis: axis %d is negative", n->iattr[1]);
        if (!n->unbatched && (x->unbatched || ix->unbatched) && v[0].ndim != v[1].ndim)
            return pn_error(PN_ESHAPE, "take_along_axis: the indices must have the tensor's rank "
                            "%d, got rank %d", v[0].ndim, v[1].ndim);
        if ((rc = pn_math_take_along_shape(&v[0], &v[1], ax, &nd, dims))) return rc;
        return pn_set_result_shape(name, n, nd, dims, nd);
    }
    if (!x->unbatched && !ix->unbatched)
        return pn_error(PN_ESHAPE, "take: the tensor and the indices cannot both have a batch "
                        "axis (use take_along_axis)");
    if (n->iattr[1] < 0 || n->iattr[1] >= x->ndim)
        return pn_error(PN_EVALUE, "take: axis %d is out of bounds for a tensor of %d axes%s",
                        n->iattr[1], x->ndim, x->unbatched ? "" : " per sample");
    int ax = n->iattr[1] + !x->unbatched;
    if (!ix->unbatched && ax != 0)
        return pn_error(PN_ESHAPE, "take: indices with a batch axis take from axis 0 of a "
                        "tensor without one, not axis %d", ax);
    if ((rc = pn_math_take_shape(&v[0], &v[1], ax, &nd, dims))) return rc;
    return pn_set_result_shape(name, n, nd, dims, nd);
}

static int gather_axis(const pn_node *n, const pn_ctx *c) {
    if (n->iattr[0]) return n->iattr[1] + !n->unbatched;
    return n->iattr[1] + !c->in_node[0]->unbatched;
}

static void gather_forward(const pn_node *n, const pn_ctx *c) {
    pn_value x, idx, o;
    pn_in_view(&x, c, 0);
    pn_in_view(&idx, c, 1);
    pn_out_view(&o, n, c);
    int ax = gather_axis(n, c);
    int rc = n->iattr[0] ? pn_math_take_along(&o, &x, &idx, ax) : pn_math_take(&o, &x, &idx, ax);
    if (rc && !fault_code) fault_code = rc;
}

static void gather_backward(const pn_node *n, const pn_ctx *c) {
    pn_value x, idx, o;
    pn_in_view(&x, c, 0);
    pn_in_view(&idx, c, 1);
    pn_out_view(&o, n, c);
    pn_din_buf(c, 1);
    float *gx = pn_din_buf(c, 0);
    if (!gx) return;
    int ax = gather_axis(n, c);
    if (n->iattr[0])
        pn_math_take_along_grad(gx, c->dout, &o, &x, &idx, ax);
    else
        pn_math_take_grad(gx, c->dout, &x, &idx, ax);
}

const pn_op_def pn_op_gather_def = {"gather", gather_shape, gather_forward, gather_backward, NULL,
                                    PN_OPF_MIXED | PN_OPF_BWD_NO_OUT};

/* ---- cumulative: along one axis, per (outer, inner) line of L values ------------------------
 *   cumsum   z_l = sum_{j <= l} x_j        dx_j += sum_{l >= j} g_l
 *   cumprod  z_l = prod_{j <= l} x_j       dx_j += sum_{l >= j} g_l z_l / x_j before the line's
 *            first zero p; dx_p += sum_{l >= p} g_l prod_{j <= l, j != p} x_j; 0 after it
 */

void pn_math_cumulative(int prod, float *z, const float *x, int64_t outer, int64_t L,
                        int64_t inner) {
    for (int64_t t = 0; t < outer; t++)
        for (int64_t i = 0; i < inner; i++) {
            const float *xr = x + t * L * inner + i;
            float *zr = z + t * L * inner + i, acc = prod ? 1.0f : 0.0f;
            for (int64_t l = 0; l < L; l++) {
                acc = prod ? acc * xr[l * inner] : acc + xr[l * inner];
                zr[l * inner] = acc;
            }
        }
}

void pn_math_cumulative_grad(int prod, float *gx, const float *g, const float *x, const float *z,
                             int64_t outer, int64_t L, int64_t inner) {
    for (int64_t t = 0; t < outer; t++)
        for (int64_t i = 0; i < inner; i++) {
            int64_t base = t * L * inner + i;
            const float *gr = g + base, *xr = x + base, *zr = z + base;
            float *dr = gx + base;
            if (!prod) {
                float acc = 0.0f;
                for (int64_t l = L - 1; l >= 0; l--) {
                    acc += gr[l * inner];
                    dr[l * inner] += acc;
                }
                continue;
            }
            int64_t p = 0;
            while (p < L && xr[p * inner] != 0.0f) p++;
            if (p < L) { /* the first zero: the products of the others */
                float q = p > 0 ? zr[(p - 1) * inner] : 1.0f, s = gr[p * inner] * q;
                for (int64_t l = p + 1; l < L; l++) {
                    q *= xr[l * inner];
                    s += gr[l * inner] * q;
                }
                dr[p * inner] += s;
            }
            float acc = 0.0f;
            for (int64_t l = (p < L ? p : L) - 1; l >= 0; l--) { /* z_l is 0 from p on */
                acc += gr[l * inner] * zr[l * inner];
                dr[l * inner] += acc / xr[l * inner];
            }
        }
}

static int cumulative_shape(const pn_model *m, pn_node *n) {
    int ax;
    if (n->iattr[0] != 0 && n->iattr[0] != 1)
        return pn_error(PN_EVALUE, "cumulative: unknown op %d", n->iattr[0]);
    int rc = one_input_axis(m, n, n->iattr[0] ? "cumprod" : "cumsum", 1, &ax);
    if (rc) return rc;
    same_shape_as_input(m, n, PN_F32);
    return PN_OK;
}

static void cumulative_dims(const pn_node *n, const pn_ctx *c, int64_t *outer, int64_t *L,
                            int64_t *inner) {
    pn_value x;
    pn_in_view(&x, c, 0);
    axis_dims(&x, n->iattr[1] + !n->unbatched, outer, L, inner);
}

static void cumulative_forward(const pn_node *n, const pn_ctx *c) {
    int64_t outer, L, inner;
    cumulative_dims(n, c, &outer, &L, &inner);
    pn_math_cumulative(n->iattr[0], c->out, c->in[0], outer, L, inner);
}

static void cumulative_backward(const pn_node *n, const pn_ctx *c) {
    int64_t outer, L, inner;
    cumulative_dims(n, c, &outer, &L, &inner);
    float *d = pn_din_buf(c, 0);
    if (d) pn_math_cumulative_grad(n->iattr[0], d, c->dout, c->in[0], c->out, outer, L, inner);
}

const pn_op_def pn_op_cumulative_def = {"cumulative", cumulative_shape, cumulative_forward,
                                        cumulative_backward, NULL, 0};

/* ---- sort: a stable merge sort of each line's positions ---------------------------------------
 *   ascending: NaN last (NumPy); descending: NaN first, ties in their original order
 *   values  z_l = x_perm(l)        dx_perm(l) += g_l
 *   argsort z_l = perm(l), int32   no gradient
 * for l < K: the first K of each line (top_k: descending, K = k), K = L for a whole sort.
 * perm (one int32 per input element, the node's scratch) lives until backward; work: 3 L floats.
 */

static int before(float a, float b, int desc) {
    if (desc) return !isnan(b) && (isnan(a) || a > b);
    return !isnan(a) && (isnan(b) || a < b);
}

/* sorts p[0..L) by v[p[.]], stable, with tmp of L ints */
static void merge_sort(int32_t *p, int32_t *tmp, const float *v, int64_t L, int desc) {
    for (int64_t w = 1; w < L; w *= 2) {
        for (int64_t lo = 0; lo < L; lo += 2 * w) {
            int64_t mid = lo + w < L ? lo + w : L, hi = lo + 2 * w < L ? lo + 2 * w : L;
            int64_t a = lo, b = mid, k = lo;
            while (a < mid && b < hi) tmp[k++] = before(v[p[b]], v[p[a]], desc) ? p[b++] : p[a++];
            while (a < mid) tmp[k++] = p[a++];
            while (b < hi) tmp[k++] = p[b++];
        }
        memcpy(p, tmp, (size_t)L * sizeof *p);
    }
}

int64_t pn_math_sort_work(int64_t L) { return 3 * L; }

void pn_math_sort(int32_t *perm, const float *x, int64_t outer, int64_t L, int64_t inner,
                  int desc, float *work) {
    float *v = work;
    int32_t *p = (int32_t *)(void *)(work + L), *tmp = p + L;
    for (int64_t t = 0; t < outer; t++)
        for (int64_t i = 0; i < inner; i++) {
            int64_t base = t * L * inner + i;
            for (int64_t l = 0; l < L; l++) {
                v[l] = x[base + l * inner];
                p[l] = (int32_t)l;
            }
            merge_sort(p, tmp, v, L, desc);
            for (int64_t l = 0; l < L; l++) perm[base + l * inner] = p[l];
        }
}

/* z (outer, K, inner) from perm: the first K sorted values of each line, or (indices) their
 * positions as int32 */
void pn_math_sort_values(void *z, int indices, const int32_t *perm, const float *x,
                         int64_t outer, int64_t L, int64_t inner, int64_t K) {
    float *zf = z;
    int32_t *zi = z;
    for (int64_t t = 0; t < outer; t++)
        for (int64_t i = 0; i < inner; i++) {
            int64_t base = t * L * inner + i, ob = t * K * inner + i;
            for (int64_t l = 0; l < K; l++) {
                int32_t p = perm[base + l * inner];
                if (indices)
                    zi[ob + l * inner] = p;
                else
                    zf[ob + l * inner] = x[base + (int64_t)p * inner];
            }
        }
}

void pn_math_sort_grad(float *gx, const float *g, const int32_t *perm, int64_t outer, int64_t L,
                       int64_t inner, int64_t K) {
    for (int64_t t = 0; t < outer; t++)
        for (int64_t i = 0; i < inner; i++) {
            int64_t base = t * L * inner + i, ob = t * K * inner + i;
            for (int64_t l = 0; l < K; l++)
                gx[base + (int64_t)perm[base + l * inner] * inner] += g[ob + l * inner];
        }
}

/* iattr[3] > 0: keep the first iattr[3] of each line (top_k), else all */
static int64_t sort_keep(const pn_node *n, int64_t L) { return n->iattr[3] > 0 ? n->iattr[3] : L; }

static int sort_shape(const pn_model *m, pn_node *n) {
    int ax, rc = one_input_axis(m, n, n->iattr[1] ? "argsort" : "sort", 0, &ax);
    if (rc) return rc;
    const pn_node *x = pn_input_node(m, n, 0);
    int64_t L = x->shape[n->iattr[0]];
    if (L > INT32_MAX)
        return pn_error(PN_EVALUE, "sort: an axis of more than 2^31 - 1 values");
    if (n->iattr[3] < 0 || n->iattr[3] > L)
        return pn_error(PN_EVALUE, "top_k: k = %d is outside 1..%lld, the axis' size",
                        n->iattr[3], (long long)L);
    same_shape_as_input(m, n, n->iattr[1] ? PN_I32 : PN_F32);
    n->shape[n->iattr[0]] = sort_keep(n, L);
    return PN_OK;
}

static int64_t sort_scratch(const pn_model *m, const pn_node *n, int64_t batch, int training) {
    (void)training;
    const pn_node *x = pn_input_node(m, n, 0);
    return batch * x->size + pn_math_sort_work(x->shape[n->iattr[0]]);
}

static void sort_forward(const pn_node *n, const pn_ctx *c) {
    pn_value x;
    int64_t outer, L, inner;
    pn_in_view(&x, c, 0);
    axis_dims(&x, n->iattr[0] + !n->unbatched, &outer, &L, &inner);
    int32_t *perm = (int32_t *)(void *)c->scratch;
    pn_math_sort(perm, c->in[0], outer, L, inner, n->iattr[2] != 0, c->scratch + x.size);
    pn_math_sort_values(c->out, n->iattr[1], perm, c->in[0], outer, L, inner, sort_keep(n, L));
}

static void sort_backward(const pn_node *n, const pn_ctx *c) {
    pn_value x;
    int64_t outer, L, inner;
    pn_in_view(&x, c, 0);
    axis_dims(&x, n->iattr[0] + !n->unbatched, &outer, &L, &inner);
    float *d = pn_din_buf(c, 0);
    if (d && !n->iattr[1])
        pn_math_sort_grad(d, c->dout, (const int32_t *)(const void *)c->scratch, outer, L, inner,
                          sort_keep(n, L));
}

const pn_op_def pn_op_sort_def = {"sort", sort_shape, sort_forward, sort_backward, sort_scratch,
                                  PN_OPF_BWD_NO_IN | PN_OPF_BWD_NO_OUT};

/* ---- arg_reduce: the int32 position of the first maximum (minimum) of each line, or of its
 * first NaN (NumPy); no gradient. --------------------------------------------------------- */

void pn_math_arg_reduce(int32_t *z, const float *x, int64_t outer, int64_t L, int64_t inner,
                        int is_min) {
    for (int64_t t = 0; t < outer; t++)
        for (int64_t i = 0; i < inner; i++) {
            const float *xr = x + t * L * inner + i;
            int64_t best = 0;
            for (int64_t l = 1; l < L && !isnan(xr[best * inner]); l++) {
                float v = xr[l * inner], b = xr[best * inner];
                if (isnan(v) || (is_min ? v < b : v > b)) best = l;
            }
            z[t * inner + i] = (int32_t)best;
        }
}

static int arg_reduce_shape(const pn_model *m, pn_node *n) {
    int ax, rc = one_input_axis(m, n, n->iattr[1] ? "argmin" : "argmax", 0, &ax);
    if (rc) return rc;
    const pn_node *x = pn_input_node(m, n, 0);
    int a = n->iattr[0];
    if (x->shape[a] == 0 || x->shape[a] > INT32_MAX)
        return pn_error(PN_EVALUE, "%s: axis %d has %lld values (1..2^31 - 1)",
                        n->iattr[1] ? "argmin" : "argmax", a, (long long)x->shape[a]);
    n->dtype = PN_I32;
    n->ndim = 0;
    for (int i = 0; i < x->ndim; i++)
        if (i != a)
            n->shape[n->ndim++] = x->shape[i];
        else if (n->iattr[2])
            n->shape[n->ndim++] = 1;
    return PN_OK;
}

static void arg_reduce_forward(const pn_node *n, const pn_ctx *c) {
    pn_value x;
    int64_t outer, L, inner;
    pn_in_view(&x, c, 0);
    axis_dims(&x, n->iattr[0] + !c->in_node[0]->unbatched, &outer, &L, &inner);
    pn_math_arg_reduce((int32_t *)(void *)c->out, c->in[0], outer, L, inner, n->iattr[1] != 0);
}

static void arg_reduce_backward(const pn_node *n, const pn_ctx *c) {
    (void)n;
    pn_din_buf(c, 0); /* no gradient: zero when first */
}

const pn_op_def pn_op_arg_reduce_def = {"arg_reduce", arg_reduce_shape, arg_reduce_forward,
                                        arg_reduce_backward, NULL,
                                        PN_OPF_BWD_NO_IN | PN_OPF_BWD_NO_OUT};

/* ---- pad: axis d grows by before[d] and after[d] values -------------------------------------
 *   constant   the value
 *   reflect    mirrored about the edge values, which are not repeated (NumPy; periodic with
 *              period 2 (n - 1) when the pad is wider than the axis)
 *   symmetric  mirrored with the edge values repeated (period 2 n)
 *   backward   dx[source(i)] += g[i] over the padded values that have a source (serial: a
 *              reflected value has several)
 */

/* the source index of output index i along an axis of n values, or -1 (constant) */
static int64_t pad_source(int64_t i, int64_t before, int64_t n, int mode) {
    int64_t j = i - before;
    if (j >= 0 && j < n) return j;
    if (mode == 0) return -1;
    if (mode == 1) {
        if (n == 1) return 0;
        int64_t per = 2 * (n - 1);
        j %= per;
        if (j < 0) j += per;
        return j >= n ? per - j : j;
    }
    int64_t per = 2 * n;
    j %= per;
    if (j < 0) j += per;
    return j >= n ? per - 1 - j : j;
}

int pn_math_pad_shape(const pn_value *x, const int64_t *before, const int64_t *after, int mode,
                      int64_t *dims) {
    static const char *const modes[3] = {"constant", "reflect", "symmetric"};
    if (mode < 0 || mode > 2) return pn_error(PN_EVALUE, "pad: unknown mode %d", mode);
    for (int d = 0; d < x->ndim; d++) {
        if (before[d] < 0 || after[d] < 0 || before[d] > INT32_MAX || after[d] > INT32_MAX)
            return pn_error(PN_EVALUE, "pad: axis %d has padding (%lld, %lld); each must be in "
                            "0..2^31 - 1", d, (long long)before[d], (long long)after[d]);
        if (mode != 0 && x->dims[d] == 0 && before[d] + after[d] > 0)
            return pn_error(PN_EVALUE, "pad: %s padding of the empty axis %d", modes[mode], d);
        dims[d] = x->dims[d] + before[d] + after[d];
    }
    return PN_OK;
}

/* each output row (the last axis) at once: its source row, or none (constant) */
static void pad_walk(float *z, float *gx, const float *g, const float *xd, const pn_value *x,
                     const int64_t *odims, int64_t osize, const int64_t *before, int mode,
                     float value) {
    int nd = x->ndim;
    if (nd == 0) {
        if (z) z[0] = xd[0];
        if (gx) gx[0] += g[0];
        return;
    }
    int64_t xst[PN_MAX_DIMS], len = odims[nd - 1], n = x->dims[nd - 1];
    contiguous_strides(nd, x->dims, xst);
    odo it;
    odo_init(&it, nd - 1, odims);
    int64_t rows = len ? osize / len : 0;
    for (int64_t r = 0; r < rows; r++, odo_next(&it)) {
        int64_t src = 0;
        for (int d = 0; d < nd - 1 && src >= 0; d++) {
            int64_t s = pad_source(it.idx[d], before[d], x->dims[d], mode);
            src = s < 0 ? -1 : src + s * xst[d];
        }
        for (int64_t l = 0; l < len; l++) {
            int64_t s = src < 0 ? -1 : pad_source(l, before[nd - 1], n, mode);
            if (z) z[r * len + l] = s < 0 ? value : xd[src + s];
            if (gx && s >= 0) gx[src + s] += g[r * len + l];
        }
    }
}

void pn_math_pad(pn_value *o, const pn_value *x, const int64_t *before, int mode, float value) {
    pad_walk(o->data, NULL, NULL, x->data, x, o->dims, o->size, before, mode, value);
}

void pn_math_pad_grad(float *gx, const float *g, const pn_value *o, const pn_value *x,
                      const int64_t *before, int mode) {
    pad_walk(NULL, gx, g, NULL, x, o->dims, o->size, before, mode, 0.0f);
}

_Static_assert(PN_MAX_ATTRS >= 1 + 2 * PN_MAX_DIMS, "pad keeps 2 ints per axis");

/* whole-tensor paddings of node n's input (the batch axis unpadded) */
static void pad_amounts(const pn_node *n, int batched, int ndim, int64_t *before,
                        int64_t *after) {
    int k = 0;
    if (batched) before[k] = after[k] = 0, k++;
    for (int i = 0; i < ndim; i++, k++) {
        before[k] = n->iattr[1 + 2 * i];
        after[k] = n->iattr[2 + 2 * i];
    }
}

static int pad_shape(const pn_model *m, pn_node *n) {
    if (n->n_in != 1 || n->n_var != 0)
        return pn_error(PN_EVALUE, "pad: takes one input and no variables");
    const pn_node *x = pn_input_node(m, n, 0);
    if (x->dtype != PN_F32) return pn_error(PN_ETYPE, "pad: the input must be float32");
    pn_value v;
    pn_node_view(&v, x, 1, NULL);
    int64_t before[PN_MAX_DIMS], after[PN_MAX_DIMS], dims[PN_MAX_DIMS];
    pad_amounts(n, !x->unbatched, x->ndim, before, after);
    int rc = pn_math_pad_shape(&v, before, after, n->iattr[0], dims);
    if (rc) return rc;
    n->dtype = PN_F32;
    return pn_set_result_shape("pad", n, v.ndim, dims, x->unbatched ? -1 : v.ndim);
}

static void pad_forward(const pn_node *n, const pn_ctx *c) {
    pn_value x, o;
    int64_t before[PN_MAX_DIMS], after[PN_MAX_DIMS];
    pn_in_view(&x, c, 0);
    pn_out_view(&o, n, c);
    pad_amounts(n, !c->in_node[0]->unbatched, c->in_node[0]->ndim, before, after);
    pn_math_pad(&o, &x, before, n->iattr[0], n->fattr[0]);
}

static void pad_backward(const pn_node *n, const pn_ctx *c) {
    pn_value x, o;
    int64_t before[PN_MAX_DIMS], after[PN_MAX_DIMS];
    pn_in_view(&x, c, 0);
    pn_out_view(&o, n, c);
    pad_amounts(n, !c->in_node[0]->unbatched, c->in_node[0]->ndim, before, after);
    float *d = pn_din_buf(c, 0);
    if (d) pn_math_pad_grad(d, c->dout, &o, &x, before, n->iattr[0]);
}

const pn_op_def pn_op_pad_def = {"pad", pad_shape, pad_forward, pad_backward, NULL,
                                 PN_OPF_BWD_NO_IN | PN_OPF_BWD_NO_OUT};
