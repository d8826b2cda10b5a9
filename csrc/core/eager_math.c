/*
 * eager_math.c: NumPy-style math on eager values: elementwise binary ops with broadcasting,
 * unary ops, reductions, matmul, softmax, and slice / reshape / transpose (as copies).
 *
 * Each op is a forward that computes its result now and records a tape entry when a gradient
 * is wanted, and a backward beside it that adds d(out)/d(in) * out->grad into the gradient of
 * each input that requires one (gradients accumulate: +=, never =).
 *
 * Broadcasting, reductions, slices and transposes all walk one strided iterator (walk): an
 * iteration shape that is contiguous (a binary op's output, a reduction's input, a slice's
 * output) and up to two operands with a stride per axis, 0 where the operand is broadcast (or
 * reduced into). Axes of size 1 are dropped and neighbouring axes merged wherever every operand
 * steps through them as through one, so the common cases come out as one or two axes:
 *   same shapes               one axis, strides 1 and 1: one long plain loop, parallel when big
 *   a scalar operand          one axis, strides 1 and 0
 *   a row broadcast (B, C)+(C) two axes, strides (C, 1) and (0, 1): rows of C, unit stride
 * The iteration runs row by row (a row is the last axis, unit stride in the iteration shape);
 * each row's operand offsets come from its index (unravel), so rows can go to any thread.
 */
#include <math.h>
#include <stdio.h>

#include "internal.h"
#include "vmath.h"

/* A long single row is cut into chunks of this many elements for the threads. */
#define CHUNK 16384

/* ---- shapes, strides, messages ------------------------------------------------------------ */

typedef struct {
    char s[200]; /* PN_MAX_DIMS numbers of up to 20 digits and their separators */
} shape_text;

/* "(2, 3)", "(4,)", "()": a shape as Python prints it, for messages */
static shape_text shape_str(int nd, const int64_t *dims) {
    shape_text t;
    int n = snprintf(t.s, sizeof t.s, "(");
    for (int i = 0; i < nd; i++)
        n += snprintf(t.s + n, sizeof t.s - (size_t)n, i ? ", %lld" : "%lld", (long long)dims[i]);
    snprintf(t.s + n, sizeof t.s - (size_t)n, nd == 1 ? ",)" : ")");
    return t;
}

#define SHAPE(v) (shape_str((v)->ndim, (v)->dims).s)

/* row-major strides of a contiguous shape, in elements */
static void contiguous_strides(int nd, const int64_t *dims, int64_t *st) {
    int64_t s = 1;
    for (int i = nd - 1; i >= 0; i--) {
        st[i] = s;
        s *= dims[i];
    }
}

static int check_input(const char *op, const pn_value *v) {
    if (!v) return pn_error(PN_EVALUE, "%s: an operand is missing (NULL)", op);
    if (v->dtype != PN_F32)
        return pn_error(PN_ETYPE, "%s: operands must be float32, got an int32 tensor", op);
    return PN_OK;
}

/* Records o's tape entry when an input requires a gradient and grad mode is on; *f is then the
 * entry (for the caller to save what backward needs), else NULL. Out of memory: releases o. */
static int record(const char *name, int (*backward)(pn_fn *, pn_value *), int n,
                  pn_value *const *in, pn_value *o, pn_fn **f) {
    *f = NULL;
    if (!pn_fn_wanted(n, in)) return PN_OK;
    if (!(*f = pn_fn_new(name, backward, n, in))) {
        pn_value_release(o);
        return PN_ENOMEM;
    }
    pn_fn_attach(*f, o);
    return PN_OK;
}

static void free_saved(pn_fn *f) { free(f->saved); }

/* y += x over n values */
static void add_into(float *restrict y, const float *restrict x, int64_t n) {
#pragma omp parallel for num_threads(pn_threads) if (n > PN_PAR_MIN)
    for (int64_t i = 0; i < n; i++) y[i] += x[i];
}

/* ---- the strided iterator ----------------------------------------------------------------- */

typedef struct {
    int nd;                     /* axes after dropping and merging, >= 1 */
    int64_t dims[PN_MAX_DIMS];  /* the iteration shape (contiguous) */
    int64_t st[2][PN_MAX_DIMS]; /* each operand's stride per axis, in elements (may be 0 or < 0) */
} walk;

/* A walk over (nd, dims) with operand strides s0 and s1: axes of size 1 dropped, and an axis
 * merged into the one before it when both operands step through the pair as through one. */
static void walk_init(walk *w, int nd, const int64_t *dims, const int64_t *s0, const int64_t *s1) {
    int k = 0;
    for (int i = 0; i < nd; i++) {
        if (dims[i] == 1) continue;
        if (k > 0 && w->st[0][k - 1] == s0[i] * dims[i] && w->st[1][k - 1] == s1[i] * dims[i]) {
            w->dims[k - 1] *= dims[i];
            w->st[0][k - 1] = s0[i];
            w->st[1][k - 1] = s1[i];
            continue;
        }
        w->dims[k] = dims[i];
        w->st[0][k] = s0[i];
        w->st[1][k] = s1[i];
        k++;
    }
    if (k == 0) { /* a single element */
        w->dims[0] = 1;
        w->st[0][0] = w->st[1][0] = 0;
        k = 1;
    }
    w->nd = k;
}

/* The operands' offsets of element i of the iteration over its first n_axes axes (so row r is
 * unravel(w, w->nd - 1, r)). */
static void unravel(const walk *w, int n_axes, int64_t i, int64_t off[2]) {
    off[0] = off[1] = 0;
    for (int d = n_axes - 1; d >= 0; d--) {
        int64_t q = i / w->dims[d], idx = i - q * w->dims[d];
        off[0] += idx * w->st[0][d];
        off[1] += idx * w->st[1][d];
        i = q;
    }
}

static int64_t walk_len(const walk *w) { return w->dims[w->nd - 1]; }

/* o = x through operand 0's strides from base (slice, transpose): o[i] = x[base + off0(i)] */
static void gather(float *restrict o, const float *restrict x, const walk *w, int64_t base,
                   int64_t size) {
    int64_t len = walk_len(w), rows = size / len, s = w->st[0][w->nd - 1];
#pragma omp parallel for num_threads(pn_threads) if (size > PN_PAR_MIN)
    for (int64_t r = 0; r < rows; r++) {
        int64_t off[2];
        unravel(w, w->nd - 1, r, off);
        const float *xr = x + (base + off[0]);
        float *orow = o + r * len;
        for (int64_t j = 0; j < len; j++) orow[j] = xr[j * s];
    }
}

/* the backward of gather: gx[base + off0(i)] += g[i]; every element of x is reached at most
 * once (a slice's indices are distinct, a transpose is a bijection), so rows may run in parallel */
static void scatter_add(float *restrict gx, const float *restrict g, const walk *w, int64_t base,
                        int64_t size) {
    int64_t len = walk_len(w), rows = size / len, s = w->st[0][w->nd - 1];
#pragma omp parallel for num_threads(pn_threads) if (size > PN_PAR_MIN)
    for (int64_t r = 0; r < rows; r++) {
        int64_t off[2];
        unravel(w, w->nd - 1, r, off);
        float *gr = gx + (base + off[0]);
        const float *grow = g + r * len;
        for (int64_t j = 0; j < len; j++) gr[j * s] += grow[j];
    }
}

/* ---- binary ops with broadcasting ----------------------------------------------------------
 *   add       z = x + y       dx = g            dy = g
 *   subtract  z = x - y       dx = g            dy = -g
 *   multiply  z = x y         dx = g y          dy = g x
 *   divide    z = x / y       dx = g / y        dy = -g z / y       (= -g x / y^2)
 *   maximum   z = max(x, y)   dx = g where x >= y (or x is NaN), else dy = g
 *   minimum   z = min(x, y)   dx = g where x <= y (or x is NaN), else dy = g
 *             (ties go to x, the first operand, as the merge layers do; a NaN propagates)
 *   power     z = x^y         dx = g y x^(y-1)  (0 where y == 0, so 0^0 has dx 0, as PyTorch)
 *                             dy = g z log x    (0 where x == 0 by convention; NaN for x < 0)
 *   equal, not_equal, less, less_equal, greater, greater_equal: z = 1 where x (op) y holds,
 *             else 0 (IEEE: a NaN compares unequal to everything)             no gradient
 *   logical_and, logical_or, logical_xor: on truth values (x != 0: NaN is true)  no gradient
 *   floor_divide z = floor(x / y) as NumPy's divmod computes it               no gradient
 *   mod       z = x - floor(x / y) y, the sign of y (NumPy, Python)  dx = g, dy = -g floor(x / y)
 *   arctan2   z = atan2(x, y)          dx = g y / (x^2 + y^2)   dy = -g x / (x^2 + y^2)
 *   hypot     z = sqrt(x^2 + y^2)      dx = g x / z             dy = g y / z   (0 where z == 0)
 * An operand broadcast over an axis receives its gradient summed over that axis.
 */

static const char *const bin_names[PN_BIN_COUNT] = {
    [PN_BIN_ADD] = "add",         [PN_BIN_SUB] = "subtract", [PN_BIN_MUL] = "multiply",
    [PN_BIN_DIV] = "divide",      [PN_BIN_MAXIMUM] = "maximum",
    [PN_BIN_MINIMUM] = "minimum", [PN_BIN_POW] = "power",
    [PN_BIN_EQUAL] = "equal",     [PN_BIN_NOT_EQUAL] = "not_equal", [PN_BIN_LESS] = "less",
    [PN_BIN_LESS_EQUAL] = "less_equal", [PN_BIN_GREATER] = "greater",
    [PN_BIN_GREATER_EQUAL] = "greater_equal", [PN_BIN_LOGICAL_AND] = "logical_and",
    [PN_BIN_LOGICAL_OR] = "logical_or", [PN_BIN_LOGICAL_XOR] = "logical_xor",
    [PN_BIN_FLOOR_DIVIDE] = "floor_divide", [PN_BIN_MOD] = "mod", [PN_BIN_ARCTAN2] = "arctan2",
    [PN_BIN_HYPOT] = "hypot",
};
_Static_assert(PN_BIN_COUNT == 20, "name the new binary op in bin_names");

/* NumPy's npy_divmod in float: the floor quotient, and the remainder (sign of b) in *mod */
static float floor_divmod(float a, float b, float *mod) {
    float m = fmodf(a, b);
    if (b == 0.0f) { /* NaN remainder, a / b (inf or NaN) quotient, as NumPy */
        *mod = m;
        return a / b;
    }
    float div = (a - m) / b;
    if (m != 0.0f) {
        if ((b < 0.0f) != (m < 0.0f)) {
            m += b;
            div -= 1.0f;
        }
    } else {
        m = copysignf(0.0f, b);
    }
    float fd;
    if (div != 0.0f) {
        fd = floorf(div);
        if (div - fd > 0.5f) fd += 1.0f;
    } else {
        fd = copysignf(0.0f, a / b);
    }
    *mod = m;
    return fd;
}

/* One row of n outputs: o[j] = a[j sa] (op) b[j sb]. */
static void binary_row(pn_binop op, float *restrict o, const float *restrict a, int64_t sa,
                       const float *restrict b, int64_t sb, int64_t n) {
    switch (op) {
    case PN_BIN_ADD:
        for (int64_t j = 0; j < n; j++) o[j] = a[j * sa] + b[j * sb];
        break;
    case PN_BIN_SUB:
        for (int64_t j = 0; j < n; j++) o[j] = a[j * sa] - b[j * sb];
        break;
    case PN_BIN_MUL:
        for (int64_t j = 0; j < n; j++) o[j] = a[j * sa] * b[j * sb];
        break;
    case PN_BIN_DIV:
        for (int64_t j = 0; j < n; j++) o[j] = a[j * sa] / b[j * sb];
        break;
    case PN_BIN_MAXIMUM:
        for (int64_t j = 0; j < n; j++) {
            float x = a[j * sa], y = b[j * sb];
            o[j] = (x >= y || x != x) ? x : y;
        }
        break;
    case PN_BIN_MINIMUM:
        for (int64_t j = 0; j < n; j++) {
            float x = a[j * sa], y = b[j * sb];
            o[j] = (x <= y || x != x) ? x : y;
        }
        break;
    case PN_BIN_POW:
        for (int64_t j = 0; j < n; j++) o[j] = powf(a[j * sa], b[j * sb]);
        break;
    case PN_BIN_EQUAL:
        for (int64_t j = 0; j < n; j++) o[j] = a[j * sa] == b[j * sb] ? 1.0f : 0.0f;
        break;
    case PN_BIN_NOT_EQUAL:
        for (int64_t j = 0; j < n; j++) o[j] = a[j * sa] != b[j * sb] ? 1.0f : 0.0f;
        break;
    case PN_BIN_LESS:
        for (int64_t j = 0; j < n; j++) o[j] = a[j * sa] < b[j * sb] ? 1.0f : 0.0f;
        break;
    case PN_BIN_LESS_EQUAL:
        for (int64_t j = 0; j < n; j++) o[j] = a[j * sa] <= b[j * sb] ? 1.0f : 0.0f;
        break;
    case PN_BIN_GREATER:
        for (int64_t j = 0; j < n; j++) o[j] = a[j * sa] > b[j * sb] ? 1.0f : 0.0f;
        break;
    case PN_BIN_GREATER_EQUAL:
        for (int64_t j = 0; j < n; j++) o[j] = a[j * sa] >= b[j * sb] ? 1.0f : 0.0f;
        break;
    case PN_BIN_LOGICAL_AND:
        for (int64_t j = 0; j < n; j++)
            o[j] = (a[j * sa] != 0.0f) && (b[j * sb] != 0.0f) ? 1.0f : 0.0f;
        break;
    case PN_BIN_LOGICAL_OR:
        for (int64_t j = 0; j < n; j++)
            o[j] = (a[j * sa] != 0.0f) || (b[j * sb] != 0.0f) ? 1.0f : 0.0f;
        break;
    case PN_BIN_LOGICAL_XOR:
        for (int64_t j = 0; j < n; j++)
            o[j] = (a[j * sa] != 0.0f) != (b[j * sb] != 0.0f) ? 1.0f : 0.0f;
        break;
    case PN_BIN_FLOOR_DIVIDE:
        for (int64_t j = 0; j < n; j++) {
            float m;
            o[j] = floor_divmod(a[j * sa], b[j * sb], &m);
        }
        break;
    case PN_BIN_MOD:
        for (int64_t j = 0; j < n; j++) floor_divmod(a[j * sa], b[j * sb], &o[j]);
        break;
    case PN_BIN_ARCTAN2:
        for (int64_t j = 0; j < n; j++) o[j] = atan2f(a[j * sa], b[j * sb]);
        break;
    case PN_BIN_HYPOT:
        for (int64_t j = 0; j < n; j++) o[j] = hypotf(a[j * sa], b[j * sb]);
        break;
    default:
        break;
    }
}

/* One row of the gradient of operand k (0: a, 1: b): gx[j sx] += g[j] dz/dx(a[j sa], b[j sb],
 * z[j]), where sx is that operand's stride (0: it is broadcast, all j add into gx[0]). */
static void binary_grad_row(pn_binop op, int k, float *restrict gx, int64_t sx,
                            const float *restrict g, const float *restrict z,
                            const float *restrict a, int64_t sa, const float *restrict b,
                            int64_t sb, int64_t n) {
    switch (op) {
    case PN_BIN_ADD:
        for (int64_t j = 0; j < n; j++) gx[j * sx] += g[j];
        break;
    case PN_BIN_SUB:
        if (k == 0)
            for (int64_t j = 0; j < n; j++) gx[j * sx] += g[j];
        else
            for (int64_t j = 0; j < n; j++) gx[j * sx] -= g[j];
        break;
    case PN_BIN_MUL:
        if (k == 0)
            for (int64_t j = 0; j < n; j++) gx[j * sx] += g[j] * b[j * sb];
        else
            for (int64_t j = 0; j < n; j++) gx[j * sx] += g[j] * a[j * sa];
        break;
    case PN_BIN_DIV:
        if (k == 0)
            for (int64_t j = 0; j < n; j++) gx[j * sx] += g[j] / b[j * sb];
        else
            for (int64_t j = 0; j < n; j++) gx[j * sx] -= g[j] * z[j] / b[j * sb];
        break;
    case PN_BIN_MAXIMUM:
    case PN_BIN_MINIMUM:
        for (int64_t j = 0; j < n; j++) {
            float x = a[j * sa], y = b[j * sb];
            int to_a = (op == PN_BIN_MAXIMUM ? x >= y : x <= y) || x != x;
            if (to_a == (k == 0)) gx[j * sx] += g[j];
        }
        break;
    case PN_BIN_POW:
        if (k == 0)
            for (int64_t j = 0; j < n; j++) {
                float x = a[j * sa], y = b[j * sb];
                gx[j * sx] += y == 0.0f ? 0.0f : g[j] * y * powf(x, y - 1.0f);
            }
        else
            for (int64_t j = 0; j < n; j++) {
                float x = a[j * sa];
                gx[j * sx] += x == 0.0f ? 0.0f : g[j] * z[j] * logf(x);
            }
        break;
    case PN_BIN_MOD:
        if (k == 0)
            for (int64_t j = 0; j < n; j++) gx[j * sx] += g[j];
        else
            for (int64_t j = 0; j < n; j++) {
                float m;
                gx[j * sx] -= g[j] * floor_divmod(a[j * sa], b[j * sb], &m);
            }
        break;
    case PN_BIN_ARCTAN2:
        for (int64_t j = 0; j < n; j++) {
            float x = a[j * sa], y = b[j * sb], r = x * x + y * y;
            gx[j * sx] += g[j] * (k == 0 ? y : -x) / r;
        }
        break;
    case PN_BIN_HYPOT:
        for (int64_t j = 0; j < n; j++) {
            float v = k == 0 ? a[j * sa] : b[j * sb];
            gx[j * sx] += z[j] == 0.0f ? 0.0f : g[j] * v / z[j];
        }
        break;
    default: /* comparisons, logical ops, floor_divide: piecewise constant, no gradient */
        break;
    }
}

/* The broadcast of a and b (NumPy's rules: shapes aligned on the right, each pair of sizes
 * equal or one of them 1) as a walk over the output shape; the output's rank and dims. */
static int broadcast(const char *name, const pn_value *a, const pn_value *b, walk *w, int *nd,
                     int64_t *dims) {
    int n = a->ndim > b->ndim ? a->ndim : b->ndim;
    int64_t ast[PN_MAX_DIMS], bst[PN_MAX_DIMS], sa[PN_MAX_DIMS], sb[PN_MAX_DIMS];
    contiguous_strides(a->ndim, a->dims, ast);
    contiguous_strides(b->ndim, b->dims, bst);
    for (int i = 0; i < n; i++) {
        int ia = i - (n - a->ndim), ib = i - (n - b->ndim);
        int64_t da = ia >= 0 ? a->dims[ia] : 1, db = ib >= 0 ? b->dims[ib] : 1;
        if (da != db && da != 1 && db != 1)
            return pn_error(PN_ESHAPE, "%s: shapes %s and %s cannot be broadcast together", name,
                            SHAPE(a), SHAPE(b));
        dims[i] = da == 1 ? db : da;
        sa[i] = da == dims[i] && ia >= 0 ? ast[ia] : 0;
        sb[i] = db == dims[i] && ib >= 0 ? bst[ib] : 0;
    }
    *nd = n;
    walk_init(w, n, dims, sa, sb);
    return PN_OK;
}

int pn_math_binary_shape(pn_binop op, const pn_value *a, const pn_value *b, int *nd,
                         int64_t *dims) {
    walk w;
    return broadcast(bin_names[op], a, b, &w, nd, dims);
}

void pn_math_binary_grad(pn_binop op, int k, float *gx, const pn_value *o, const pn_value *a,
                         const pn_value *b) {
    walk w;
    int nd;
    int64_t dims[PN_MAX_DIMS];
    broadcast(bin_names[op], a, b, &w, &nd, dims); /* cannot fail: forward passed */
    const float *g = o->grad, *z = o->data, *ad = a->data, *bd = b->data;
    int64_t size = o->size, len = walk_len(&w), rows = size / (len ? len : 1);
    int64_t sa = w.st[0][w.nd - 1], sb = w.st[1][w.nd - 1];
    const pn_value *x = k ? b : a;
    if (size == 0) return;
    /* threads only when this operand is not broadcast: then no two rows share a gradient */
    int par = x->size == size && size > PN_PAR_MIN;
    (void)par; /* read only by the OpenMP clauses */
    if (rows == 1) {
        int64_t nch = (len + CHUNK - 1) / CHUNK;
#pragma omp parallel for num_threads(pn_threads) if (par)
        for (int64_t c = 0; c < nch; c++) {
            int64_t lo = c * CHUNK, n = len - lo < CHUNK ? len - lo : CHUNK;
            binary_grad_row(op, k, gx + lo * w.st[k][0], w.st[k][0], g + lo, z + lo,
                            ad + lo * sa, sa, bd + lo * sb, sb, n);
        }
    } else {
#pragma omp parallel for num_threads(pn_threads) if (par)
        for (int64_t r = 0; r < rows; r++) {
            int64_t off[2];
            unravel(&w, w.nd - 1, r, off);
            binary_grad_row(op, k, gx + off[k], k ? sb : sa, g + r * len, z + r * len,
                            ad + off[0], sa, bd + off[1], sb, len);
        }
    }
}

static int binary_backward(pn_fn *f, pn_value *out) {
    for (int k = 0; k < 2; k++) {
        if (!f->in[k]->requires_grad) continue;
        float *gx = pn_value_grad_buf(f->in[k]);
        if (!gx) return PN_ENOMEM;
        pn_math_binary_grad((pn_binop)f->iattr[0], k, gx, out, f->in[0], f->in[1]);
    }
    return PN_OK;
}

void pn_math_binary(pn_binop op, pn_value *o, const pn_value *a, const pn_value *b) {
    walk w;
    int nd;
    int64_t dims[PN_MAX_DIMS];
    broadcast(bin_names[op], a, b, &w, &nd, dims); /* checked by the caller */
    float *z = o->data;
    const float *ad = a->data, *bd = b->data;
    int64_t size = o->size, len = walk_len(&w), rows = len ? size / len : 0;
    int64_t sa = w.st[0][w.nd - 1], sb = w.st[1][w.nd - 1];
    if (rows == 1) { /* same shapes or a scalar operand: one long row, in chunks */
        int64_t nch = (len + CHUNK - 1) / CHUNK;
#pragma omp parallel for num_threads(pn_threads) if (size > PN_PAR_MIN)
        for (int64_t c = 0; c < nch; c++) {
            int64_t lo = c * CHUNK, n = len - lo < CHUNK ? len - lo : CHUNK;
            binary_row(op, z + lo, ad + lo * sa, sa, bd + lo * sb, sb, n);
        }
    } else { /* rows of the last axis: a bias-like row is offset 0 on every row */
#pragma omp parallel for num_threads(pn_threads) if (size > PN_PAR_MIN)
        for (int64_t r = 0; r < rows; r++) {
            int64_t off[2];
            unravel(&w, w.nd - 1, r, off);
            binary_row(op, z + r * len, ad + off[0], sa, bd + off[1], sb, len);
        }
    }
}

int pn_eager_binary(pn_binop op, pn_value *a, pn_value *b, pn_value **out) {
    if ((int)op < 0 || op >= PN_BIN_COUNT) return pn_error(PN_EVALUE, "unknown binary op %d", op);
    const char *name = bin_names[op];
    int rc = check_input(name, a);
    if (rc == PN_OK) rc = check_input(name, b);
    if (rc) return rc;
    int nd;
    int64_t dims[PN_MAX_DIMS];
    pn_value *o;
    if ((rc = pn_math_binary_shape(op, a, b, &nd, dims)) ||
        (rc = pn_value_new(&o, nd, dims, PN_F32)))
        return rc;
    pn_math_binary(op, o, a, b);
    pn_fn *f;
    pn_value *in[2] = {a, b};
    if ((rc = record(name, binary_backward, 2, in, o, &f))) return rc;
    if (f) f->iattr[0] = op;
    *out = o;
    return PN_OK;
}

/* ---- unary ops -----------------------------------------------------------------------------
 *   negative  z = -x                     dx = -g
 *   exp       z = e^x                    dx = g z
 *   log       z = log x                  dx = g / x        (x <= 0: -inf / NaN, as NumPy)
 *   sqrt      z = sqrt x                 dx = g / (2 z)
 *   abs       z = |x|                    dx = g sign(x)    (0 at x == 0)
 *   square    z = x^2                    dx = 2 g x
 *   relu      z = max(x, 0)              dx = g where x > 0
 *   sigmoid   z = 1 / (1 + e^-x)         dx = g z (1 - z)
 *   tanh      z = tanh x                 dx = g (1 - z^2)
 *   sin, cos, tan, arctan                dx = g cos x, -g sin x, g (1 + z^2), g / (1 + x^2)
 *   erf       z = erf x                  dx = g 2/sqrt(pi) e^(-x^2)
 *   log1p     z = log(1 + x)             dx = g / (1 + x)
 *   expm1     z = e^x - 1                dx = g (z + 1)
 *   reciprocal z = 1 / x                 dx = -g z^2
 *   rsqrt     z = 1 / sqrt x             dx = -g z^3 / 2
 *   sign, floor, ceil, round (half to even, as NumPy)   dx = 0
 *   softplus  z = log(1 + e^x)           dx = g sigmoid(x)
 *   silu      z = x sigmoid(x)           dx = g (s + x s (1 - s)), s = sigmoid(x)
 *   gelu      z = x Phi(x) (exact, erf)  dx = g (Phi(x) + x phi(x))
 *   log_sigmoid z = -softplus(-x)        dx = g sigmoid(-x)
 *   logical_not, isnan, isinf, isfinite, signbit: float32 0/1    no gradient
 */

static const char *const un_names[PN_UN_COUNT] = {
    [PN_UN_NEG] = "negative", [PN_UN_EXP] = "exp",         [PN_UN_LOG] = "log",
    [PN_UN_SQRT] = "sqrt",    [PN_UN_ABS] = "abs",         [PN_UN_SQUARE] = "square",
    [PN_UN_RELU] = "relu",    [PN_UN_SIGMOID] = "sigmoid", [PN_UN_TANH] = "tanh",
    [PN_UN_SIN] = "sin",      [PN_UN_COS] = "cos",         [PN_UN_TAN] = "tan",
    [PN_UN_ARCTAN] = "arctan", [PN_UN_ERF] = "erf",        [PN_UN_LOG1P] = "log1p",
    [PN_UN_EXPM1] = "expm1",  [PN_UN_RECIPROCAL] = "reciprocal", [PN_UN_RSQRT] = "rsqrt",
    [PN_UN_SIGN] = "sign",    [PN_UN_FLOOR] = "floor",     [PN_UN_CEIL] = "ceil",
    [PN_UN_ROUND] = "round",  [PN_UN_SOFTPLUS] = "softplus", [PN_UN_SILU] = "silu",
    [PN_UN_GELU] = "gelu",    [PN_UN_LOG_SIGMOID] = "log_sigmoid",
    [PN_UN_LOGICAL_NOT] = "logical_not", [PN_UN_ISNAN] = "isnan", [PN_UN_ISINF] = "isinf",
    [PN_UN_ISFINITE] = "isfinite", [PN_UN_SIGNBIT] = "signbit",
};
_Static_assert(PN_UN_COUNT == 31, "name the new unary op in un_names");

static float softplus1(float x) { return x > 20.0f ? x : log1pf(pn_exp(x)); }

static void unary_rows(pn_unop op, float *restrict z, const float *restrict x, int64_t n) {
    switch (op) {
    case PN_UN_NEG:
        for (int64_t i = 0; i < n; i++) z[i] = -x[i];
        break;
    case PN_UN_EXP:
        for (int64_t i = 0; i < n; i++) z[i] = pn_exp(x[i]);
        break;
    case PN_UN_LOG:
        for (int64_t i = 0; i < n; i++) z[i] = logf(x[i]);
        break;
    case PN_UN_SQRT:
        for (int64_t i = 0; i < n; i++) z[i] = sqrtf(x[i]);
        break;
    case PN_UN_ABS:
        for (int64_t i = 0; i < n; i++) z[i] = fabsf(x[i]);
        break;
    case PN_UN_SQUARE:
        for (int64_t i = 0; i < n; i++) z[i] = x[i] * x[i];
        break;
    case PN_UN_RELU:
        for (int64_t i = 0; i < n; i++) z[i] = x[i] <= 0.0f ? 0.0f : x[i]; /* NaN propagates */
        break;
    case PN_UN_SIGMOID:
        for (int64_t i = 0; i < n; i++) z[i] = pn_sigmoid(x[i]);
        break;
    case PN_UN_TANH:
        for (int64_t i = 0; i < n; i++) z[i] = pn_tanh(x[i]);
        break;
    case PN_UN_SIN:
        for (int64_t i = 0; i < n; i++) z[i] = sinf(x[i]);
        break;
    case PN_UN_COS:
        for (int64_t i = 0; i < n; i++) z[i] = cosf(x[i]);
        break;
    case PN_UN_TAN:
        for (int64_t i = 0; i < n; i++) z[i] = tanf(x[i]);
        break;
    case PN_UN_ARCTAN:
        for (int64_t i = 0; i < n; i++) z[i] = atanf(x[i]);
        break;
    case PN_UN_ERF:
        for (int64_t i = 0; i < n; i++) z[i] = erff(x[i]);
        break;
    case PN_UN_LOG1P:
        for (int64_t i = 0; i < n; i++) z[i] = log1pf(x[i]);
        break;
    case PN_UN_EXPM1:
        for (int64_t i = 0; i < n; i++) z[i] = expm1f(x[i]);
        break;
    case PN_UN_RECIPROCAL:
        for (int64_t i = 0; i < n; i++) z[i] = 1.0f / x[i];
        break;
    case PN_UN_RSQRT:
        for (int64_t i = 0; i < n; i++) z[i] = 1.0f / sqrtf(x[i]);
        break;
    case PN_UN_SIGN:
        for (int64_t i = 0; i < n; i++)
            z[i] = x[i] > 0.0f ? 1.0f : x[i] < 0.0f ? -1.0f : x[i]; /* 0, -0 and NaN stay */
        break;
    case PN_UN_FLOOR:
        for (int64_t i = 0; i < n; i++) z[i] = floorf(x[i]);
        break;
    case PN_UN_CEIL:
        for (int64_t i = 0; i < n; i++) z[i] = ceilf(x[i]);
        break;
    case PN_UN_ROUND:
        for (int64_t i = 0; i < n; i++) z[i] = nearbyintf(x[i]); /* ties to even by default */
        break;
    case PN_UN_SOFTPLUS:
        for (int64_t i = 0; i < n; i++) z[i] = softplus1(x[i]);
        break;
    case PN_UN_SILU:
        for (int64_t i = 0; i < n; i++) z[i] = x[i] * pn_sigmoid(x[i]);
        break;
    case PN_UN_GELU:
        for (int64_t i = 0; i < n; i++) z[i] = 0.5f * x[i] * (1.0f + erff(x[i] * 0.70710678f));
        break;
    case PN_UN_LOG_SIGMOID:
        for (int64_t i = 0; i < n; i++) z[i] = -softplus1(-x[i]);
        break;
    case PN_UN_LOGICAL_NOT:
        for (int64_t i = 0; i < n; i++) z[i] = x[i] == 0.0f ? 1.0f : 0.0f;
        break;
    case PN_UN_ISNAN:
        for (int64_t i = 0; i < n; i++) z[i] = isnan(x[i]) ? 1.0f : 0.0f;
        break;
    case PN_UN_ISINF:
        for (int64_t i = 0; i < n; i++) z[i] = isinf(x[i]) ? 1.0f : 0.0f;
        break;
    case PN_UN_ISFINITE:
        for (int64_t i = 0; i < n; i++) z[i] = isfinite(x[i]) ? 1.0f : 0.0f;
        break;
    case PN_UN_SIGNBIT:
        for (int64_t i = 0; i < n; i++) z[i] = signbit(x[i]) ? 1.0f : 0.0f;
        break;
    default:
        break;
    }
}

static void unary_grad_rows(pn_unop op, float *restrict gx, const float *restrict g,
                            const float *restrict x, const float *restrict z, int64_t n) {
    switch (op) {
    case PN_UN_NEG:
        for (int64_t i = 0; i < n; i++) gx[i] -= g[i];
        break;
    case PN_UN_EXP:
        for (int64_t i = 0; i < n; i++) gx[i] += g[i] * z[i];
        break;
    case PN_UN_LOG:
        for (int64_t i = 0; i < n; i++) gx[i] += g[i] / x[i];
        break;
    case PN_UN_SQRT:
        for (int64_t i = 0; i < n; i++) gx[i] += 0.5f * g[i] / z[i];
        break;
    case PN_UN_ABS:
        for (int64_t i = 0; i < n; i++)
            gx[i] += x[i] > 0.0f ? g[i] : x[i] < 0.0f ? -g[i] : 0.0f;
        break;
    case PN_UN_SQUARE:
        for (int64_t i = 0; i < n; i++) gx[i] += 2.0f * g[i] * x[i];
        break;
    case PN_UN_RELU:
        for (int64_t i = 0; i < n; i++) gx[i] += x[i] > 0.0f ? g[i] : 0.0f;
        break;
    case PN_UN_SIGMOID:
        for (int64_t i = 0; i < n; i++) gx[i] += g[i] * z[i] * (1.0f - z[i]);
        break;
    case PN_UN_TANH:
        for (int64_t i = 0; i < n; i++) gx[i] += g[i] * (1.0f - z[i] * z[i]);
        break;
    case PN_UN_SIN:
        for (int64_t i = 0; i < n; i++) gx[i] += g[i] * cosf(x[i]);
        break;
    case PN_UN_COS:
        for (int64_t i = 0; i < n; i++) gx[i] -= g[i] * sinf(x[i]);
        break;
    case PN_UN_TAN:
        for (int64_t i = 0; i < n; i++) gx[i] += g[i] * (1.0f + z[i] * z[i]);
        break;
    case PN_UN_ARCTAN:
        for (int64_t i = 0; i < n; i++) gx[i] += g[i] / (1.0f + x[i] * x[i]);
        break;
    case PN_UN_ERF:
        for (int64_t i = 0; i < n; i++) gx[i] += g[i] * 1.12837917f * pn_exp(-x[i] * x[i]);
        break;
    case PN_UN_LOG1P:
        for (int64_t i = 0; i < n; i++) gx[i] += g[i] / (1.0f + x[i]);
        break;
    case PN_UN_EXPM1:
        for (int64_t i = 0; i < n; i++) gx[i] += g[i] * (z[i] + 1.0f);
        break;
    case PN_UN_RECIPROCAL:
        for (int64_t i = 0; i < n; i++) gx[i] -= g[i] * z[i] * z[i];
        break;
    case PN_UN_RSQRT:
        for (int64_t i = 0; i < n; i++) gx[i] -= 0.5f * g[i] * z[i] * z[i] * z[i];
        break;
    case PN_UN_SIGN:
    case PN_UN_FLOOR:
    case PN_UN_CEIL:
    case PN_UN_ROUND:
    case PN_UN_LOGICAL_NOT:
    case PN_UN_ISNAN:
    case PN_UN_ISINF:
    case PN_UN_ISFINITE:
    case PN_UN_SIGNBIT:
        break; /* piecewise constant: no gradient */
    case PN_UN_SOFTPLUS:
        for (int64_t i = 0; i < n; i++) gx[i] += g[i] * pn_sigmoid(x[i]);
        break;
    case PN_UN_SILU:
        for (int64_t i = 0; i < n; i++) {
            float s = pn_sigmoid(x[i]);
            gx[i] += g[i] * (s + x[i] * s * (1.0f - s));
        }
        break;
    case PN_UN_GELU:
        for (int64_t i = 0; i < n; i++) {
            float cdf = 0.5f * (1.0f + erff(x[i] * 0.70710678f));
            float pdf = 0.39894228f * pn_exp(-0.5f * x[i] * x[i]);
            gx[i] += g[i] * (cdf + x[i] * pdf);
        }
        break;
    case PN_UN_LOG_SIGMOID:
        for (int64_t i = 0; i < n; i++) gx[i] += g[i] * pn_sigmoid(-x[i]);
        break;
    default:
        break;
    }
}

void pn_math_unary(pn_unop op, float *z, const float *x, int64_t n) {
    int64_t nch = (n + CHUNK - 1) / CHUNK;
#pragma omp parallel for num_threads(pn_threads) if (n > PN_PAR_MIN)
    for (int64_t c = 0; c < nch; c++) {
        int64_t lo = c * CHUNK;
        unary_rows(op, z + lo, x + lo, n - lo < CHUNK ? n - lo : CHUNK);
    }
}

void pn_math_unary_grad(pn_unop op, float *gx, const float *g, const float *x, const float *z,
                        int64_t n) {
    int64_t nch = (n + CHUNK - 1) / CHUNK;
#pragma omp parallel for num_threads(pn_threads) if (n > PN_PAR_MIN)
    for (int64_t c = 0; c < nch; c++) {
        int64_t lo = c * CHUNK;
        unary_grad_rows(op, gx + lo, g + lo, x + lo, z + lo, n - lo < CHUNK ? n - lo : CHUNK);
    }
}

static int unary_backward(pn_fn *f, pn_value *out) {
    pn_value *a = f->in[0];
    float *gx = pn_value_grad_buf(a);
    if (!gx) return PN_ENOMEM;
    pn_math_unary_grad((pn_unop)f->iattr[0], gx, out->grad, a->data, out->data, out->size);
    return PN_OK;
}

int pn_eager_unary(pn_unop op, pn_value *a, pn_value **out) {
    if ((int)op < 0 || op >= PN_UN_COUNT) return pn_error(PN_EVALUE, "unknown unary op %d", op);
    const char *name = un_names[op];
    pn_value *o;
    int rc = check_input(name, a);
    if (rc || (rc = pn_value_new(&o, a->ndim, a->dims, PN_F32))) return rc;
    pn_math_unary(op, o->data, a->data, a->size);
    pn_fn *f;
    if ((rc = record(name, unary_backward, 1, &a, o, &f))) return rc;
    if (f) f->iattr[0] = op;
    *out = o;
    return PN_OK;
}

/* ---- reductions ----------------------------------------------------------------------------
 *   sum   z = sum_R x              dx = g (broadcast back over the reduced axes R)
 *   mean  z = sum_R x / |R|        dx = g / |R|
 *   max   z = max_R x              dx = g at the first maximal element of each group, 0 elsewhere
 *   min   z = min_R x              likewise (a NaN counts as the extreme: it propagates)
 *   prod  z = prod_R x             dx = g prod_{R, others} x: g z / x without zeros in the
 *                                  group; with one zero only that element's, the product of the
 *                                  rest; with two or more, 0. The forward keeps, per group, the
 *                                  product of its nonzero values and its count of zeros.
 * The walk runs over the input (contiguous) with the output as operand 0, stride 0 on the
 * reduced axes. Sums accumulate in double.
 */

static const char *const red_names[PN_RED_COUNT] = {
    [PN_RED_SUM] = "sum", [PN_RED_MEAN] = "mean", [PN_RED_MAX] = "max", [PN_RED_MIN] = "min",
    [PN_RED_PROD] = "prod"};

int64_t pn_math_reduce_buf_bytes(pn_redop op, int64_t out_size) {
    return (op == PN_RED_PROD ? 16 : 8) * out_size;
}

/* The sum of x[0..n): 16 float lanes over blocks of 1024 (vectorised), the blocks summed in
 * double, so a long row keeps about float precision per block and loses nothing across them. */
static double sum_row(const float *restrict x, int64_t n) {
    enum { LANES = 16, BLOCK = 1024 };
    double s = 0.0;
    for (int64_t j = 0; j < n; j += BLOCK) {
        int64_t end = n - j < BLOCK ? n : j + BLOCK, k = j;
        float acc[LANES] = {0};
        for (; k + LANES <= end; k += LANES)
            for (int l = 0; l < LANES; l++) acc[l] += x[k + l];
        for (; k < end; k++) acc[0] += x[k];
        for (int l = 0; l < LANES; l++) s += acc[l];
    }
    return s;
}

/* The index of the first maximum (is_max) or minimum of x[0..n), n >= 1, or of the first NaN
 * if there is one: the extreme of sgn x (sgn = -1 turns the minimum into a maximum) and whether
 * a NaN occurs, as vectorised reductions, then a search for the first element equal to it
 * (which exists: the extreme is one of the elements). */
static int64_t arg_extreme_row(const float *restrict x, int64_t n, int is_max) {
    float sgn = is_max ? 1.0f : -1.0f, best = sgn * x[0];
    int nan = 0;
#pragma omp simd reduction(max : best) reduction(| : nan)
    for (int64_t j = 0; j < n; j++) {
        float v = sgn * x[j];
        best = v > best ? v : best;
        nan |= v != v;
    }
    best *= sgn;
    int64_t j = 0;
    for (; j < n; j++)
        if (nan ? x[j] != x[j] : x[j] == best) break;
    return j;
}

/* The walk over a with the output (axes in mask reduced) as operand 0; the reduced count. */
static int64_t reduce_walk(const pn_value *a, unsigned mask, walk *w) {
    int64_t ost[PN_MAX_DIMS] = {0}, zero[PN_MAX_DIMS] = {0}, s = 1, count = 1;
    for (int i = a->ndim - 1; i >= 0; i--) {
        if (mask >> i & 1u) {
            ost[i] = 0;
            count *= a->dims[i];
        } else {
            ost[i] = s;
            s *= a->dims[i];
        }
    }
    walk_init(w, a->ndim, a->dims, ost, zero);
    return count;
}

void pn_math_reduce_grad(pn_redop op, float *gx, const float *g, const pn_value *a,
                         unsigned mask, const void *buf, int64_t out_size) {
    if (op == PN_RED_MAX || op == PN_RED_MIN) {
        const int64_t *idx = buf;
        for (int64_t k = 0; k < out_size; k++) gx[idx[k]] += g[k];
        return;
    }
    walk w;
    int64_t count = reduce_walk(a, mask, &w);
    if (op == PN_RED_PROD) {
        const double *nz = buf, *zeros = nz + out_size;
        if (a->size == 0) return;
        int64_t len = walk_len(&w), rows = a->size / len, so = w.st[0][w.nd - 1];
        const float *x = a->data;
        for (int64_t r = 0; r < rows; r++) {
            int64_t off[2];
            unravel(&w, w.nd - 1, r, off);
            for (int64_t j = 0; j < len; j++) {
                int64_t k = off[0] + j * so, e = r * len + j;
                double d = zeros[k] == 0.0 ? nz[k] / x[e] : zeros[k] == 1.0 && x[e] == 0.0f ? nz[k]
                                                                                             : 0.0;
                gx[e] += (float)(g[k] * d);
            }
        }
        return;
    }
    float scale = op == PN_RED_MEAN ? 1.0f / (float)count : 1.0f;
    if (a->size == 0) return;
    int64_t len = walk_len(&w), rows = a->size / len, so = w.st[0][w.nd - 1];
#pragma omp parallel for num_threads(pn_threads) if (a->size > PN_PAR_MIN)
    for (int64_t r = 0; r < rows; r++) {
        int64_t off[2];
        unravel(&w, w.nd - 1, r, off);
        float *gr = gx + r * len;
        const float *gz = g + off[0];
        for (int64_t j = 0; j < len; j++) gr[j] += scale * gz[j * so];
    }
}

static int reduce_backward(pn_fn *f, pn_value *out) {
    float *gx = pn_value_grad_buf(f->in[0]);
    if (!gx) return PN_ENOMEM;
    pn_math_reduce_grad((pn_redop)f->iattr[0], gx, out->grad, f->in[0], (unsigned)f->iattr[1],
                        f->saved, out->size);
    return PN_OK;
}

int pn_math_reduce_shape(pn_redop op, const pn_value *a, unsigned mask, int keepdims, int *ond,
                         int64_t *odims) {
    const char *name = red_names[op];
    int nd = a->ndim;
    if (mask >> nd)
        return pn_error(PN_EVALUE, "%s: an axis is out of bounds for a tensor of rank %d", name,
                        nd);
    int64_t count = 1;
    *ond = 0;
    for (int i = 0; i < nd; i++)
        if (!(mask >> i & 1u))
            odims[(*ond)++] = a->dims[i];
        else {
            count *= a->dims[i];
            if (keepdims) odims[(*ond)++] = 1;
        }
    int64_t osize = 1;
    for (int i = 0; i < *ond; i++) osize *= odims[i];
    if ((op == PN_RED_MAX || op == PN_RED_MIN) && count == 0 && osize > 0)
        return pn_error(PN_EVALUE, "%s: the reduced axes of a tensor of shape %s are empty, and "
                        "%s of nothing is undefined", name, SHAPE(a), name);
    return PN_OK;
}

void pn_math_reduce(pn_redop op, pn_value *o, const pn_value *a, unsigned mask, void *buf) {
    walk w;
    int64_t count = reduce_walk(a, mask, &w);
    int extreme = op == PN_RED_MAX || op == PN_RED_MIN;
    float *z = o->data;
    const float *x = a->data;
    int64_t len = walk_len(&w), rows = len ? a->size / len : 0, so = w.st[0][w.nd - 1];
    if (op == PN_RED_PROD) { /* in double: the nonzero values' product and the zeros' count */
        double *nz = buf, *zeros = nz + o->size;
        for (int64_t k = 0; k < o->size; k++) nz[k] = 1.0, zeros[k] = 0.0;
        for (int64_t r = 0; r < rows; r++) {
            int64_t off[2];
            unravel(&w, w.nd - 1, r, off);
            const float *xr = x + r * len;
            for (int64_t j = 0; j < len; j++) {
                int64_t k = off[0] + j * so;
                if (xr[j] == 0.0f)
                    zeros[k] += 1.0;
                else
                    nz[k] *= xr[j];
            }
        }
        for (int64_t k = 0; k < o->size; k++) /* 0 times NaN or inf stays NaN, as NumPy */
            z[k] = (float)(zeros[k] > 0.0 ? 0.0 * nz[k] : nz[k]);
        return;
    }
    if (!extreme) {
        double *acc = buf;
        for (int64_t k = 0; k < o->size; k++) acc[k] = 0.0;
        for (int64_t r = 0; r < rows; r++) {
            int64_t off[2];
            unravel(&w, w.nd - 1, r, off);
            const float *xr = x + r * len;
            if (so == 0) { /* the row folds into one output */
                acc[off[0]] += sum_row(xr, len);
            } else {
                double *ar = acc + off[0];
                for (int64_t j = 0; j < len; j++) ar[j * so] += xr[j];
            }
        }
        double scale = op == PN_RED_MEAN ? 1.0 / (double)count : 1.0;
        if (op == PN_RED_MEAN && count == 0) scale = NAN; /* NumPy: the mean of nothing is NaN */
        for (int64_t k = 0; k < o->size; k++) z[k] = (float)(acc[k] * scale);
        return;
    }
    int64_t *idx = buf;
    int is_max = op == PN_RED_MAX;
    for (int64_t k = 0; k < o->size; k++) {
        idx[k] = -1;
        z[k] = 0.0f;
    }
    for (int64_t r = 0; r < rows; r++) {
        int64_t off[2];
        unravel(&w, w.nd - 1, r, off);
        if (so == 0) { /* the row folds into one output: its winner, then against the rest */
            int64_t j = arg_extreme_row(x + r * len, len, is_max);
            float v = x[r * len + j], best = z[off[0]];
            int wins = idx[off[0]] < 0 || (is_max ? v > best : v < best) ||
                       (v != v && best == best);
            if (wins) {
                z[off[0]] = v;
                idx[off[0]] = r * len + j;
            }
            continue;
        }
        for (int64_t j = 0; j < len; j++) {
            int64_t k = off[0] + j * so;
            float v = x[r * len + j], best = z[k];
            /* strictly better, so ties keep the first; a NaN beats any number */
            int wins = idx[k] < 0 || (is_max ? v > best : v < best) || (v != v && best == best);
            if (wins) {
                z[k] = v;
                idx[k] = r * len + j;
            }
        }
    }
}

int pn_eager_reduce(pn_redop op, pn_value *a, int n_axes, const int *axes, int keepdims,
                    pn_value **out) {
    if ((int)op < 0 || op >= PN_RED_COUNT) return pn_error(PN_EVALUE, "unknown reduction %d", op);
    const char *name = red_names[op];
    int rc = check_input(name, a);
    if (rc) return rc;
    int nd = a->ndim;
    if (n_axes < 0 || n_axes > nd || (n_axes > 0 && !axes))
        return pn_error(PN_EVALUE, "%s: %d axes given for a tensor of rank %d", name, n_axes, nd);
    unsigned mask = n_axes == 0 ? (1u << nd) - 1u : 0u;
    for (int i = 0; i < n_axes; i++) {
        int ax = axes[i];
        if (ax < -nd || ax >= nd)
            return pn_error(PN_EVALUE, "%s: axis %d is out of bounds for a tensor of rank %d",
                            name, ax, nd);
        if (ax < 0) ax += nd;
        if (mask >> ax & 1u) return pn_error(PN_EVALUE, "%s: axis %d is repeated", name, axes[i]);
        mask |= 1u << ax;
    }
    int ond = 0;
    int64_t odims[PN_MAX_DIMS];
    if ((rc = pn_math_reduce_shape(op, a, mask, keepdims, &ond, odims))) return rc;
    int keep = op == PN_RED_MAX || op == PN_RED_MIN || op == PN_RED_PROD;
    pn_value *o;
    if ((rc = pn_value_new(&o, ond, odims, PN_F32))) return rc;
    /* sum and mean: double accumulators; max and min: the index of each group's winner; prod:
     * what its gradient reads */
    void *buf = pn_malloc((size_t)pn_math_reduce_buf_bytes(op, o->size ? o->size : 1));
    if (!buf) {
        pn_value_release(o);
        return pn_error(PN_ENOMEM, "%s: out of memory", name);
    }
    pn_math_reduce(op, o, a, mask, buf);
    if (!keep) {
        free(buf);
        buf = NULL;
    }
    pn_fn *f;
    if ((rc = record(name, reduce_backward, 1, &a, o, &f))) {
        free(buf);
        return rc;
    }
    if (f) {
        f->iattr[0] = op;
        f->iattr[1] = (int)mask;
        f->saved = buf;
        f->destroy = free_saved;
    } else {
        free(buf);
    }
    *out = o;
    return PN_OK;
}

/* ---- matmul --------------------------------------------------------------------------------
 * C = A B over the last two axes, NumPy's rules: a 1-D A is a row (1, K), a 1-D B a column
 * (K, 1), and the added axis leaves the result; batch axes broadcast.
 *   C (n, m) = A (n, k) B (k, m)        dA += dC B^T        dB += A^T dC
 * When B has no batch axes, the batches of A are one tall matrix: one GEMM for all of them.
 */

typedef struct {
    int64_t n, k, m, batches;
    walk w; /* over the output's batch axes; operands: A's and B's matrix offsets */
} mm_shape;

static int matmul_shape(const pn_value *a, const pn_value *b, mm_shape *s, int *ond,
                        int64_t *odims) {
    if (a->ndim == 0 || b->ndim == 0)
        return pn_error(PN_ESHAPE, "matmul: operands need at least one axis, got shapes %s and "
                        "%s (use multiply for scalars)", SHAPE(a), SHAPE(b));
    int an = a->ndim, bn = b->ndim;
    s->n = an >= 2 ? a->dims[an - 2] : 1;
    s->k = a->dims[an - 1];
    int64_t kb = bn >= 2 ? b->dims[bn - 2] : b->dims[0];
    s->m = bn >= 2 ? b->dims[bn - 1] : 1;
    if (kb != s->k)
        return pn_error(PN_ESHAPE, "matmul: shapes %s and %s do not match: the last axis of the "
                        "first (%lld) must equal the %s axis of the second (%lld)", SHAPE(a),
                        SHAPE(b), (long long)s->k, bn >= 2 ? "second-to-last" : "only",
                        (long long)kb);
    int abn = an > 2 ? an - 2 : 0, bbn = bn > 2 ? bn - 2 : 0, nb = abn > bbn ? abn : bbn;
    int64_t sa[PN_MAX_DIMS], sb[PN_MAX_DIMS];
    int64_t amat = s->n * s->k, bmat = s->k * s->m;
    int64_t ast = amat, bst = bmat;
    s->batches = 1;
    for (int i = nb - 1; i >= 0; i--) { /* batch axes, aligned on the right */
        int ia = i - (nb - abn), ib = i - (nb - bbn);
        int64_t da = ia >= 0 ? a->dims[ia] : 1, db = ib >= 0 ? b->dims[ib] : 1;
        if (da != db && da != 1 && db != 1)
            return pn_error(PN_ESHAPE, "matmul: the batch axes of shapes %s and %s cannot be "
                            "broadcast together", SHAPE(a), SHAPE(b));
        odims[i] = da == 1 ? db : da;
        sa[i] = da == odims[i] && ia >= 0 ? ast : 0;
        sb[i] = db == odims[i] && ib >= 0 ? bst : 0;
        ast *= da;
        bst *= db;
        s->batches *= odims[i];
    }
    walk_init(&s->w, nb, odims, sa, sb);
    int nd = nb;
    if (an >= 2) odims[nd++] = s->n;
    if (bn >= 2) odims[nd++] = s->m;
    *ond = nd;
    return PN_OK;
}

int pn_math_matmul_shape(const pn_value *a, const pn_value *b, int *nd, int64_t *dims) {
    mm_shape s;
    return matmul_shape(a, b, &s, nd, dims);
}

void pn_math_matmul_grad(float *ga, float *gb, const float *G, const pn_value *a,
                         const pn_value *b) {
    mm_shape s;
    int nd;
    int64_t dims[PN_MAX_DIMS];
    matmul_shape(a, b, &s, &nd, dims); /* cannot fail: forward passed */
    int64_t n = s.n, k = s.k, m = s.m;
    if (s.batches * n * m == 0 || k == 0) return; /* nothing flows */
    const float *A = a->data, *B = b->data;
    if (b->ndim <= 2) { /* A's batches stacked: one GEMM each */
        if (ga) pn_gemm(0, 1, s.batches * n, k, m, 1.0f, G, m, B, m, 1.0f, ga, k);
        if (gb) pn_gemm(1, 0, k, m, s.batches * n, 1.0f, A, k, G, m, 1.0f, gb, m);
        return;
    }
    /* one batch at a time: a broadcast operand accumulates its batches' products in turn */
    for (int64_t t = 0; t < s.batches; t++) {
        int64_t off[2];
        unravel(&s.w, s.w.nd, t, off);
        const float *Gt = G + t * n * m;
        if (ga) pn_gemm(0, 1, n, k, m, 1.0f, Gt, m, B + off[1], m, 1.0f, ga + off[0], k);
        if (gb) pn_gemm(1, 0, k, m, n, 1.0f, A + off[0], k, Gt, m, 1.0f, gb + off[1], m);
    }
}

static int matmul_backward(pn_fn *f, pn_value *out) {
    pn_value *a = f->in[0], *b = f->in[1];
    float *ga = NULL, *gb = NULL;
    if (a->requires_grad && !(ga = pn_value_grad_buf(a))) return PN_ENOMEM;
    if (b->requires_grad && !(gb = pn_value_grad_buf(b))) return PN_ENOMEM;
    pn_math_matmul_grad(ga, gb, out->grad, a, b);
    return PN_OK;
}

int pn_math_matmul(pn_value *o, const pn_value *a, const pn_value *b, int polled) {
    mm_shape s;
    int nd, rc = PN_OK;
    int64_t dims[PN_MAX_DIMS];
    matmul_shape(a, b, &s, &nd, dims); /* checked by the caller */
    int64_t n = s.n, k = s.k, m = s.m;
    const float *A = a->data, *B = b->data;
    float *C = o->data;
    if (k == 0 || o->size == 0) { /* an empty sum */
        memset(C, 0, (size_t)o->size * sizeof(float));
    } else if (!polled) {
        if (b->ndim <= 2)
            pn_gemm(0, 0, s.batches * n, m, k, 1.0f, A, k, B, m, 0.0f, C, m);
        else
            for (int64_t t = 0; t < s.batches; t++) {
                int64_t off[2];
                unravel(&s.w, s.w.nd, t, off);
                pn_gemm(0, 0, n, m, k, 1.0f, A + off[0], k, B + off[1], m, 0.0f, C + t * n * m, m);
            }
    } else if (b->ndim <= 2) {
        rc = pn_gemm_polled(s.batches * n, m, k, A, k, B, m, C, m);
    } else {
        for (int64_t t = 0; t < s.batches && rc == PN_OK; t++) {
            int64_t off[2];
            unravel(&s.w, s.w.nd, t, off);
            if (t > 0) rc = pn_poll_interrupt();
            if (rc == PN_OK)
                rc = pn_gemm_polled(n, m, k, A + off[0], k, B + off[1], m, C + t * n * m, m);
        }
    }
    return rc;
}

int pn_eager_matmul(pn_value *a, pn_value *b, pn_value **out) {
    int rc = check_input("matmul", a);
    if (rc == PN_OK) rc = check_input("matmul", b);
    if (rc) return rc;
    int nd;
    int64_t dims[PN_MAX_DIMS];
    pn_value *o;
    if ((rc = pn_math_matmul_shape(a, b, &nd, dims)) || (rc = pn_value_new(&o, nd, dims, PN_F32)))
        return rc;
    if ((rc = pn_math_matmul(o, a, b, 1))) { /* interrupted: the half-made result goes */
        pn_value_release(o);
        return rc;
    }
    pn_fn *f;
    pn_value *in[2] = {a, b};
    if ((rc = record("matmul", matmul_backward, 2, in, o, &f))) return rc;
    *out = o;
    return PN_OK;
}

/* ---- softmax and log_softmax over one axis -------------------------------------------------
 * The tensor as (outer, L, inner), L the axis; for each of the outer * inner groups:
 *   softmax      z = e^(x - max x) / sum e^(x - max x)      dx = z (g - sum(g z))
 *   log_softmax  z = x - max x - log sum e^(x - max x)      dx = g - e^z sum(g)
 * With inner == 1 (the last axis) a group is a unit-stride row; otherwise the inner groups of
 * an outer block run side by side, unit stride along inner.
 */

static void softmax_dims(const pn_value *a, int axis, int64_t *outer, int64_t *L,
                         int64_t *inner) {
    *outer = *inner = 1;
    for (int i = 0; i < axis; i++) *outer *= a->dims[i];
    for (int i = axis + 1; i < a->ndim; i++) *inner *= a->dims[i];
    *L = a->dims[axis];
}

/* one row of L values (the last axis) */
static void softmax_row(float *restrict z, const float *restrict x, int64_t L, int log) {
    float mx = x[0];
    for (int64_t j = 1; j < L; j++) mx = x[j] > mx ? x[j] : mx;
    float s = 0.0f;
    for (int64_t j = 0; j < L; j++) {
        z[j] = pn_exp(x[j] - mx);
        s += z[j];
    }
    if (log) { /* (x - max) first: exact near the max, so large logits lose nothing */
        float ls = logf(s);
        for (int64_t j = 0; j < L; j++) z[j] = (x[j] - mx) - ls;
    } else {
        float inv = 1.0f / s;
        for (int64_t j = 0; j < L; j++) z[j] *= inv;
    }
}

/* one block of (L, inner) values; t holds 2 * inner floats of scratch */
static void softmax_block(float *restrict z, const float *restrict x, int64_t L, int64_t inner,
                          int log, float *restrict t) {
    float *mx = t, *s = t + inner;
    for (int64_t i = 0; i < inner; i++) {
        mx[i] = x[i];
        s[i] = 0.0f;
    }
    for (int64_t l = 1; l < L; l++)
        for (int64_t i = 0; i < inner; i++) mx[i] = x[l * inner + i] > mx[i] ? x[l * inner + i] : mx[i];
    for (int64_t l = 0; l < L; l++)
        for (int64_t i = 0; i < inner; i++) {
            z[l * inner + i] = pn_exp(x[l * inner + i] - mx[i]);
            s[i] += z[l * inner + i];
        }
    if (log) {
        for (int64_t i = 0; i < inner; i++) s[i] = logf(s[i]);
        for (int64_t l = 0; l < L; l++)
            for (int64_t i = 0; i < inner; i++)
                z[l * inner + i] = (x[l * inner + i] - mx[i]) - s[i];
    } else {
        for (int64_t i = 0; i < inner; i++) s[i] = 1.0f / s[i];
        for (int64_t l = 0; l < L; l++)
            for (int64_t i = 0; i < inner; i++) z[l * inner + i] *= s[i];
    }
}

void pn_math_softmax_grad(float *gx, const float *g, const float *z, const pn_value *a, int axis,
                          int log, float *dot) {
    if (a->size == 0) return;
    int64_t outer, L, inner;
    softmax_dims(a, axis, &outer, &L, &inner);
    if (inner == 1) {
#pragma omp parallel for num_threads(pn_threads) if (a->size > PN_PAR_MIN)
        for (int64_t r = 0; r < outer; r++) {
            const float *gr = g + r * L, *zr = z + r * L;
            float *dx = gx + r * L;
            float d = 0.0f;
            if (log) {
                for (int64_t j = 0; j < L; j++) d += gr[j];
                for (int64_t j = 0; j < L; j++) dx[j] += gr[j] - pn_exp(zr[j]) * d;
            } else {
                for (int64_t j = 0; j < L; j++) d += gr[j] * zr[j];
                for (int64_t j = 0; j < L; j++) dx[j] += zr[j] * (gr[j] - d);
            }
        }
        return;
    }
    for (int64_t r = 0; r < outer; r++) {
        const float *gr = g + r * L * inner, *zr = z + r * L * inner;
        float *dx = gx + r * L * inner;
        for (int64_t i = 0; i < inner; i++) dot[i] = 0.0f;
        for (int64_t l = 0; l < L; l++)
            for (int64_t i = 0; i < inner; i++)
                dot[i] += gr[l * inner + i] * (log ? 1.0f : zr[l * inner + i]);
        for (int64_t l = 0; l < L; l++)
            for (int64_t i = 0; i < inner; i++) {
                int64_t e = l * inner + i;
                dx[e] += log ? gr[e] - pn_exp(zr[e]) * dot[i] : zr[e] * (gr[e] - dot[i]);
            }
    }
}

int64_t pn_math_softmax_scratch(const pn_value *a, int axis) {
    int64_t outer, L, inner;
    softmax_dims(a, axis, &outer, &L, &inner);
    return inner == 1 ? 0 : 2 * inner;
}

static int softmax_backward(pn_fn *f, pn_value *out) {
    pn_value *a = f->in[0];
    float *gx = pn_value_grad_buf(a);
    if (!gx) return PN_ENOMEM;
    int64_t t = pn_math_softmax_scratch(a, f->iattr[0]);
    float *dot = t ? pn_malloc((size_t)t * sizeof(float)) : NULL;
    if (t && !dot) return pn_error(PN_ENOMEM, "%s: out of memory in backward", f->name);
    pn_math_softmax_grad(gx, out->grad, out->data, a, f->iattr[0], f->iattr[1], dot);
    free(dot);
    return PN_OK;
}

void pn_math_softmax(pn_value *o, const pn_value *a, int axis, int log, float *t) {
    int64_t outer, L, inner;
    softmax_dims(a, axis, &outer, &L, &inner);
    float *z = o->data;
    const float *x = a->data;
    if (o->size == 0) return;
    if (inner == 1) {
#pragma omp parallel for num_threads(pn_threads) if (o->size > PN_PAR_MIN)
        for (int64_t r = 0; r < outer; r++) softmax_row(z + r * L, x + r * L, L, log != 0);
    } else {
        for (int64_t r = 0; r < outer; r++)
            softmax_block(z + r * L * inner, x + r * L * inner, L, inner, log != 0, t);
    }
}

int pn_eager_softmax(pn_value *a, int axis, int log, pn_value **out) {
    const char *name = log ? "log_softmax" : "softmax";
    int rc = check_input(name, a);
    if (rc) return rc;
    if (axis < -a->ndim || axis >= a->ndim)
        return pn_error(PN_EVALUE, "%s: axis %d is out of bounds for a tensor of shape %s", name,
                        axis, SHAPE(a));
    if (axis < 0) axis += a->ndim;
    pn_value *o;
    if ((rc = pn_value_new(&o, a->ndim, a->dims, PN_F32))) return rc;
    int64_t tn = pn_math_softmax_scratch(a, axis);
    float *t = tn ? pn_malloc((size_t)tn * sizeof(float)) : NULL;
    if (tn && !t) {
        pn_value_release(o);
        return pn_error(PN_ENOMEM, "%s: out of memory", name);
    }
    pn_math_softmax(o, a, axis, log, t);
    free(t);
    pn_fn *f;
    if ((rc = record(name, softmax_backward, 1, &a, o, &f))) return rc;
    if (f) {
        f->iattr[0] = axis;
        f->iattr[1] = log != 0;
    }
    *out = o;
    return PN_OK;
}

/* ---- slice ---------------------------------------------------------------------------------
 *   z[i_0, ..] = x[start_0 + i_0 step_0, ..]      dx[start + i step] += g[i]
 * Python normalises the slices; they are checked again here, as untrusted: every index read
 * must lie in 0..dim-1. The walk runs over the counts (dropped axes count 1) with x's strides
 * times the steps; f->i64 keeps start (0..7) and step (8..15) for backward.
 */

static void slice_walk(const pn_value *a, const int64_t *start, const int64_t *step,
                       const int64_t *count, walk *w, int64_t *base) {
    int64_t st[PN_MAX_DIMS], s[PN_MAX_DIMS], zero[PN_MAX_DIMS] = {0};
    contiguous_strides(a->ndim, a->dims, st);
    *base = 0;
    for (int i = 0; i < a->ndim; i++) {
        s[i] = step[i] * st[i];
        *base += start[i] * st[i];
    }
    walk_init(w, a->ndim, count, s, zero);
}

void pn_math_slice_grad(float *gx, const float *g, const pn_value *a, const int64_t *start,
                        const int64_t *step, const int64_t *count, int64_t out_size) {
    if (out_size == 0) return;
    walk w;
    int64_t base;
    slice_walk(a, start, step, count, &w, &base);
    scatter_add(gx, g, &w, base, out_size);
}

static int slice_backward(pn_fn *f, pn_value *out) {
    pn_value *a = f->in[0];
    float *gx = pn_value_grad_buf(a);
    if (!gx) return PN_ENOMEM;
    unsigned drop = (unsigned)f->iattr[0];
    int64_t count[PN_MAX_DIMS];
    for (int i = 0, j = 0; i < a->ndim; i++) count[i] = drop >> i & 1u ? 1 : out->dims[j++];
    pn_math_slice_grad(gx, out->grad, a, f->i64, f->i64 + PN_MAX_DIMS, count, out->size);
    return PN_OK;
}

int pn_math_slice_shape(const pn_value *a, const int64_t *start, const int64_t *step,
                        const int64_t *count, unsigned drop, int *ond, int64_t *odims) {
    int nd = a->ndim;
    if (drop >> nd)
        return pn_error(PN_EVALUE, "slice: an integer index names an axis beyond the tensor's "
                        "rank %d (mask 0x%x)", nd, drop);
    *ond = 0;
    for (int i = 0; i < nd; i++) {
        int64_t dim = a->dims[i], b = start[i], s = step[i], c = count[i];
        if (s == 0) return pn_error(PN_EVALUE, "slice: the step of axis %d is zero", i);
        if (c < 0) return pn_error(PN_EVALUE, "slice: axis %d has a negative count %lld", i,
                                   (long long)c);
        if ((drop >> i & 1u) && c != 1)
            return pn_error(PN_EVALUE, "slice: axis %d is indexed by an integer, so its count "
                            "must be 1, not %lld", i, (long long)c);
        /* in bounds: the first and last index (|step| small enough that the last cannot
         * overflow: (c - 1) |step| <= dim - 1) */
        int64_t lim = c > 1 && dim > 0 ? (dim - 1) / (c - 1) : 0;
        if (c > 0 && (b < 0 || b >= dim || (c > 1 && (s > lim || s < -lim)) ||
                      b + (c - 1) * s < 0 || b + (c - 1) * s >= dim)) {
            if (drop >> i & 1u)
                return pn_error(PN_EVALUE, "index %lld is out of bounds for axis %d with size "
                                "%lld", (long long)b, i, (long long)dim);
            return pn_error(PN_EVALUE, "slice: %lld indices from %lld in steps of %lld are out "
                            "of bounds for axis %d with size %lld", (long long)c, (long long)b,
                            (long long)s, i, (long long)dim);
        }
        if (!(drop >> i & 1u)) odims[(*ond)++] = c;
    }
    return PN_OK;
}

void pn_math_slice(pn_value *o, const pn_value *a, const int64_t *start, const int64_t *step,
                   const int64_t *count) {
    if (o->size == 0) return;
    walk w;
    int64_t base;
    slice_walk(a, start, step, count, &w, &base);
    gather(o->data, a->data, &w, base, o->size);
}

int pn_eager_slice(pn_value *a, const int64_t *start, const int64_t *step, const int64_t *count,
                   unsigned drop, pn_value **out) {
    int rc = check_input("slice", a);
    if (rc) return rc;
    int nd = a->ndim;
    if (nd > 0 && (!start || !step || !count))
        return pn_error(PN_EVALUE, "slice: start, step and count are needed for every axis");
    int ond = 0;
    int64_t odims[PN_MAX_DIMS];
    if ((rc = pn_math_slice_shape(a, start, step, count, drop, &ond, odims))) return rc;
    pn_value *o;
    if ((rc = pn_value_new(&o, ond, odims, PN_F32))) return rc;
    pn_math_slice(o, a, start, step, count);
    pn_fn *f;
    if ((rc = record("slice", slice_backward, 1, &a, o, &f))) return rc;
    if (f) {
        f->iattr[0] = (int)drop;
        for (int i = 0; i < nd; i++) {
            f->i64[i] = start[i];
            f->i64[PN_MAX_DIMS + i] = step[i];
        }
    }
    *out = o;
    return PN_OK;
}

/* ---- reshape: z = x with a new shape (a copy)         dx += g ------------------------------ */

static int reshape_backward(pn_fn *f, pn_value *out) {
    float *gx = pn_value_grad_buf(f->in[0]);
    if (!gx) return PN_ENOMEM;
    add_into(gx, out->grad, out->size);
    return PN_OK;
}

int pn_eager_reshape(pn_value *a, int ndim, const int64_t *dims, pn_value **out) {
    int rc = check_input("reshape", a);
    if (rc) return rc;
    if (ndim < 0 || ndim > PN_MAX_DIMS || (ndim > 0 && !dims))
        return pn_error(PN_EVALUE, "reshape: a shape needs 0..%d axes, got %d", PN_MAX_DIMS, ndim);
    int64_t size = 1; /* the new shape's, or -1 when it would overflow */
    int empty = 0;
    for (int i = 0; i < ndim; i++) {
        if (dims[i] < 0)
            return pn_error(PN_EVALUE, "reshape: negative dimension %lld in the new shape",
                            (long long)dims[i]);
        if (dims[i] == 0)
            empty = 1;
        else if (size >= 0)
            size = size > INT64_MAX / dims[i] ? -1 : size * dims[i];
    }
    if (empty) size = 0;
    if (size != a->size)
        return pn_error(PN_ESHAPE, "reshape: cannot reshape a tensor of shape %s (%lld values) "
                        "into shape %s", SHAPE(a), (long long)a->size,
                        shape_str(ndim, dims).s);
    pn_value *o;
    if ((rc = pn_value_new(&o, ndim, dims, PN_F32))) return rc;
    memcpy(o->data, a->data, (size_t)a->size * sizeof(float));
    pn_fn *f;
    if ((rc = record("reshape", reshape_backward, 1, &a, o, &f))) return rc;
    *out = o;
    return PN_OK;
}

/* ---- transpose: z[i] = x[i permuted]: z's axis j is x's axis perm[j]; dx[..] += g[..] ------- */

_Static_assert(PN_MAX_ATTRS >= PN_MAX_DIMS, "transpose keeps its axes in f->iattr");

static void transpose_walk(const pn_value *a, const int *perm, walk *w, int64_t *odims) {
    int64_t st[PN_MAX_DIMS], s[PN_MAX_DIMS], zero[PN_MAX_DIMS] = {0};
    contiguous_strides(a->ndim, a->dims, st);
    for (int j = 0; j < a->ndim; j++) {
        odims[j] = a->dims[perm[j]];
        s[j] = st[perm[j]];
    }
    walk_init(w, a->ndim, odims, s, zero);
}

int pn_math_transpose_shape(const pn_value *a, const int *perm, int64_t *odims) {
    int nd = a->ndim;
    unsigned seen = 0;
    for (int j = 0; j < nd; j++) {
        if (perm[j] < 0 || perm[j] >= nd)
            return pn_error(PN_EVALUE, "transpose: axis %d is out of bounds for a tensor of "
                            "rank %d", perm[j], nd);
        if (seen >> perm[j] & 1u)
            return pn_error(PN_EVALUE, "transpose: axis %d is repeated in the axes", perm[j]);
        seen |= 1u << perm[j];
        odims[j] = a->dims[perm[j]];
    }
    return PN_OK;
}

void pn_math_transpose(pn_value *o, const pn_value *a, const int *perm) {
    if (o->size == 0) return;
    walk w;
    int64_t odims[PN_MAX_DIMS];
    transpose_walk(a, perm, &w, odims);
    gather(o->data, a->data, &w, 0, o->size);
}

void pn_math_transpose_grad(float *gx, const float *g, const pn_value *a, const int *perm) {
    if (a->size == 0) return;
    walk w;
    int64_t odims[PN_MAX_DIMS];
    transpose_walk(a, perm, &w, odims);
    scatter_add(gx, g, &w, 0, a->size);
}

static int transpose_backward(pn_fn *f, pn_value *out) {
    float *gx = pn_value_grad_buf(f->in[0]);
    if (!gx) return PN_ENOMEM;
    pn_math_transpose_grad(gx, out->grad, f->in[0], f->iattr);
    return PN_OK;
}

int pn_eager_transpose(pn_value *a, const int *perm, pn_value **out) {
    int rc = check_input("transpose", a);
    if (rc) return rc;
    int nd = a->ndim;
    if (nd > 0 && !perm) return pn_error(PN_EVALUE, "transpose: the axes are missing");
    int64_t odims[PN_MAX_DIMS];
    if ((rc = pn_math_transpose_shape(a, perm, odims))) return rc;
    pn_value *o;
    if ((rc = pn_value_new(&o, nd, odims, PN_F32))) return rc;
    pn_math_transpose(o, a, perm);
    pn_fn *f;
    if ((rc = record("transpose", transpose_backward, 1, &a, o, &f))) return rc;
    if (f)
        for (int j = 0; j < nd; j++) f->iattr[j] = perm[j];
    *out = o;
    return PN_OK;
}

/* ---- names ---------------------------------------------------------------------------------- */

static int find_name(const char *const *names, int n, const char *name) {
    for (int i = 0; i < n; i++)
        if (names[i] && strcmp(names[i], name) == 0) return i;
    return -1;
}

const char *pn_binop_name(int op) { return op >= 0 && op < PN_BIN_COUNT ? bin_names[op] : NULL; }
const char *pn_unop_name(int op) { return op >= 0 && op < PN_UN_COUNT ? un_names[op] : NULL; }
const char *pn_redop_name(int op) { return op >= 0 && op < PN_RED_COUNT ? red_names[op] : NULL; }
int pn_binop_find(const char *name) { return find_name(bin_names, PN_BIN_COUNT, name); }
int pn_unop_find(const char *name) { return find_name(un_names, PN_UN_COUNT, name); }
int pn_redop_find(const char *name) { return find_name(red_names, PN_RED_COUNT, name); }

void pn_math_view(pn_value *v, int ndim, const int64_t *dims, const void *data) {
    memset(v, 0, sizeof *v);
    v->ndim = ndim;
    v->size = 1;
    for (int i = 0; i < ndim; i++) {
        v->dims[i] = dims[i];
        v->size *= dims[i];
    }
    v->dtype = PN_F32;
    v->data = (void *)data;
}
