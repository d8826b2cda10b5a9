/*
 * test_eager_math.c: the NumPy-style eager ops (eager_math.c) through the public header: each
 * forward against a plain reference loop (broadcasting of every kind, rank 0, negative axes,
 * empty tensors, negative-step slices), each backward against central differences, gradient
 * accumulation, grad mode, argument errors, and a long chain released without recursion.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

typedef struct {
    int nd;
    int64_t d[PN_MAX_DIMS];
} shp;

static int64_t shp_size(shp s) {
    int64_t n = 1;
    for (int i = 0; i < s.nd; i++) n *= s.d[i];
    return n;
}

/* How a test fills a tensor: values chosen so that no kink or tie lies within a step of them. */
enum { UNIFORM, POSITIVE, GRID_A, GRID_B, AWAY_FROM_0 };

static float draw(unsigned *seed, int kind) {
    float u = frand(seed);
    switch (kind) {
    case POSITIVE: return 1.0f + 0.5f * u;                         /* [0.5, 1.5) */
    case GRID_A: return floorf(u * 10.0f) / 10.0f + 0.05f;         /* k/10 + 0.05 */
    case GRID_B: return floorf(u * 10.0f) / 10.0f;                 /* k/10 */
    case AWAY_FROM_0: return u < 0 ? u - 0.2f : u + 0.2f;          /* |x| >= 0.2 */
    default: return u;
    }
}

static pn_value *mk(shp s, unsigned seed, int kind, int requires_grad) {
    int64_t n = shp_size(s);
    float *buf = malloc((size_t)(n ? n : 1) * sizeof(float));
    for (int64_t i = 0; i < n; i++) buf[i] = draw(&seed, kind);
    pn_value *v = NULL;
    if (pn_value_create(&v, s.nd, s.d, PN_F32, buf) == 0 && requires_grad)
        pn_value_set_requires_grad(v, 1);
    free(buf);
    return v;
}

static int same_shape(const pn_value *v, shp s) {
    if (pn_value_ndim(v) != s.nd) return 0;
    for (int i = 0; i < s.nd; i++)
        if (pn_value_dims(v)[i] != s.d[i]) return 0;
    return 1;
}

/* the largest |got - want| / max(1, |want|) */
static double elem_rel_err(const float *got, const double *want, int64_t n) {
    double e = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - want[i]) / fmax(1.0, fabs(want[i]));
        if (isnan(got[i]) != isnan(want[i])) d = INFINITY;
        else if (isnan(want[i])) d = 0;
        e = fmax(e, d);
    }
    return e;
}

/* the flat index into shape `in` (aligned on the right with out, broadcast where in's size is 1)
 * of flat index i of shape out */
static int64_t bcast_index(shp out, shp in, int64_t i) {
    int64_t idx[PN_MAX_DIMS], r = 0;
    for (int d = out.nd - 1; d >= 0; d--) {
        idx[d] = i % out.d[d];
        i /= out.d[d];
    }
    for (int d = 0; d < in.nd; d++) {
        int64_t k = idx[d + out.nd - in.nd];
        r = r * in.d[d] + (in.d[d] == 1 ? 0 : k);
    }
    return r;
}

/* ---- the gradient check ------------------------------------------------------------------- */

typedef int (*op_fn)(pn_value *const *in, const void *ctx, pn_value **out);

static double weighted_sum(const pn_value *out, const float *w) {
    double s = 0;
    const float *z = pn_value_data((pn_value *)out);
    for (int64_t i = 0; i < pn_value_size(out); i++) s += (double)z[i] * w[i];
    return s;
}

/* d/dx of L = sum(op(in) * w), w fixed random weights: the tape against central differences,
 * for every input that requires a gradient (inputs may repeat: x * x). */
static void gradcheck(const char *what, op_fn fn, const void *ctx, int n, pn_value *const *in,
                      float h) {
    pn_value *out;
    if (fn(in, ctx, &out)) {
        CHECK(0, "%s: forward failed", what);
        return;
    }
    int64_t m = pn_value_size(out);
    float *w = malloc((size_t)(m ? m : 1) * sizeof(float));
    unsigned s = 99;
    for (int64_t i = 0; i < m; i++) w[i] = frand(&s);
    for (int k = 0; k < n; k++) pn_value_zero_grad(in[k]);
    CHECK(pn_value_requires_grad(out), "%s: the output requires a gradient", what);
    CHECK(pn_value_backward(out, w) == 0, "%s: backward", what);
    pn_value_release(out);
    pn_set_grad_enabled(0);
    double worst = 0;
    for (int k = 0; k < n; k++) {
        if (!pn_value_requires_grad(in[k])) continue;
        int seen = 0; /* an input listed twice is checked once: its gradient holds both uses */
        for (int j = 0; j < k; j++) seen |= in[j] == in[k];
        if (seen) continue;
        const float *g = pn_value_grad(in[k]);
        if (!g) {
            CHECK(pn_value_size(in[k]) == 0, "%s: input %d got no gradient", what, k);
            continue;
        }
        float *x = pn_value_data(in[k]);
        for (int64_t e = 0; e < pn_value_size(in[k]); e++) {
            float v = x[e];
            double lp = 0, lm = 0;
            x[e] = v + h;
            if (fn(in, ctx, &out) == 0) {
                lp = weighted_sum(out, w);
                pn_value_release(out);
            }
            x[e] = v - h;
            if (fn(in, ctx, &out) == 0) {
                lm = weighted_sum(out, w);
                pn_value_release(out);
            }
            x[e] = v;
            double num = (lp - lm) / (2.0 * h);
            double err = fabs(num - g[e]) / fmax(0.1, fmax(fabs(num), fabs(g[e])));
            if (err > worst) worst = err;
            if (err > 1e-2)
                printf("  %s: input %d element %lld: tape %g, differences %g\n", what, k,
                       (long long)e, g[e], num);
        }
    }
    pn_set_grad_enabled(1);
    CHECK(worst < 1e-2, "%s: gradient error %g", what, worst);
    free(w);
}

/* ---- binary ------------------------------------------------------------------------------- */

static const char *bin_name[PN_BIN_COUNT] = {
    "add", "sub", "mul", "div", "maximum", "minimum", "pow", "equal", "not_equal", "less",
    "less_equal", "greater", "greater_equal", "logical_and", "logical_or", "logical_xor",
    "floor_divide", "mod", "arctan2", "hypot"};

static double ref_binary(int op, double x, double y) {
    switch (op) {
    case PN_BIN_ADD: return (float)x + (float)y;
    case PN_BIN_SUB: return (float)x - (float)y;
    case PN_BIN_MUL: return (float)x * (float)y;
    case PN_BIN_DIV: return (float)x / (float)y;
    case PN_BIN_MAXIMUM: return x >= y ? x : y;
    case PN_BIN_MINIMUM: return x <= y ? x : y;
    case PN_BIN_EQUAL: return x == y;
    case PN_BIN_NOT_EQUAL: return x != y;
    case PN_BIN_LESS: return x < y;
    case PN_BIN_LESS_EQUAL: return x <= y;
    case PN_BIN_GREATER: return x > y;
    case PN_BIN_GREATER_EQUAL: return x >= y;
    case PN_BIN_LOGICAL_AND: return x != 0 && y != 0;
    case PN_BIN_LOGICAL_OR: return x != 0 || y != 0;
    case PN_BIN_LOGICAL_XOR: return (x != 0) != (y != 0);
    case PN_BIN_FLOOR_DIVIDE: return floor(x / y);
    case PN_BIN_MOD: return x - floor(x / y) * y; /* Python's sign: y's */
    case PN_BIN_ARCTAN2: return atan2(x, y);
    case PN_BIN_HYPOT: return hypot(x, y);
    default: return pow(x, y);
    }
}

static int run_binary(pn_value *const *in, const void *ctx, pn_value **out) {
    return pn_eager_binary(*(const pn_binop *)ctx, in[0], in[1], out);
}

/* operand value kinds per op: no division by ~0, positive bases, max/min never within a step */
static void bin_kinds(int op, int *ka, int *kb) {
    *ka = *kb = UNIFORM;
    if (op == PN_BIN_DIV || op == PN_BIN_FLOOR_DIVIDE || op == PN_BIN_MOD ||
        op == PN_BIN_ARCTAN2)
        *kb = AWAY_FROM_0;
    if (op == PN_BIN_HYPOT || op == PN_BIN_ARCTAN2) *ka = *kb = AWAY_FROM_0; /* no branch cut */
    if (op == PN_BIN_POW) *ka = POSITIVE;
    /* comparisons: never within a step of equal; logical ops: never within a step of 0 */
    if (op == PN_BIN_MAXIMUM || op == PN_BIN_MINIMUM || (op >= PN_BIN_EQUAL &&
                                                         op <= PN_BIN_GREATER_EQUAL))
        *ka = GRID_A, *kb = GRID_B;
    if (op >= PN_BIN_LOGICAL_AND && op <= PN_BIN_LOGICAL_XOR) *ka = *kb = GRID_A;
}

static const struct {
    shp a, b, out;
} bin_cases[] = {
    {{2, {2, 3}}, {2, {2, 3}}, {2, {2, 3}}},             /* same shape */
    {{2, {2, 3}}, {0, {0}}, {2, {2, 3}}},                /* scalar right */
    {{0, {0}}, {2, {2, 3}}, {2, {2, 3}}},                /* scalar left */
    {{0, {0}}, {0, {0}}, {0, {0}}},                      /* rank 0 */
    {{2, {4, 3}}, {1, {3}}, {2, {4, 3}}},                /* a bias row */
    {{1, {3}}, {3, {2, 4, 3}}, {3, {2, 4, 3}}},          /* a row on the left */
    {{2, {4, 1}}, {2, {1, 5}}, {2, {4, 5}}},             /* outer product */
    {{3, {2, 1, 3}}, {2, {4, 1}}, {3, {2, 4, 3}}},       /* both broadcast */
    {{2, {3, 1}}, {1, {1}}, {2, {3, 1}}},                /* (1,) */
    {{8, {1, 2, 1, 2, 1, 2, 1, 2}}, {7, {1, 2, 1, 2, 1, 2, 1}}, {8, {1, 2, 2, 2, 2, 2, 2, 2}}},
    {{2, {0, 3}}, {1, {3}}, {2, {0, 3}}},                /* empty */
    {{2, {2, 0}}, {1, {1}}, {2, {2, 0}}},
    {{1, {0}}, {0, {0}}, {1, {0}}},
    {{2, {1, 0}}, {2, {3, 1}}, {2, {3, 0}}},             /* 1 broadcast to 0 */
};
#define N_BIN_CASES (int)(sizeof bin_cases / sizeof bin_cases[0])

static void test_binary_forward(void) {
    for (int op = 0; op < PN_BIN_COUNT; op++)
        for (int c = 0; c < N_BIN_CASES; c++) {
            int ka, kb;
            bin_kinds(op, &ka, &kb);
            pn_value *a = mk(bin_cases[c].a, 1 + c, ka, 0), *b = mk(bin_cases[c].b, 50 + c, kb, 0);
            pn_value *o = NULL;
            int rc = pn_eager_binary(op, a, b, &o);
            CHECK(rc == 0 && same_shape(o, bin_cases[c].out), "%s case %d: shape", bin_name[op], c);
            if (rc == 0) {
                int64_t n = pn_value_size(o);
                double *want = malloc((size_t)(n ? n : 1) * sizeof(double));
                const float *ad = pn_value_data(a), *bd = pn_value_data(b);
                for (int64_t i = 0; i < n; i++)
                    want[i] = ref_binary(op, ad[bcast_index(bin_cases[c].out, bin_cases[c].a, i)],
                                         bd[bcast_index(bin_cases[c].out, bin_cases[c].b, i)]);
                double e = elem_rel_err(pn_value_data(o), want, n);
                CHECK(e < 1e-6, "%s case %d: error %g", bin_name[op], c, e);
                CHECK(!pn_value_requires_grad(o) && !pn_value_fn_name(o),
                      "%s case %d: nothing recorded without a gradient", bin_name[op], c);
                free(want);
                pn_value_release(o);
            }
            pn_value_release(a);
            pn_value_release(b);
        }
    /* NaN propagates through maximum / minimum from either side */
    shp one = {1, {2}};
    pn_value *a = mk(one, 1, UNIFORM, 0), *b = mk(one, 2, UNIFORM, 0), *o;
    ((float *)pn_value_data(a))[0] = NAN;
    ((float *)pn_value_data(b))[1] = NAN;
    for (int op = PN_BIN_MAXIMUM; op <= PN_BIN_MINIMUM; op++) {
        pn_eager_binary(op, a, b, &o);
        const float *z = pn_value_data(o);
        CHECK(isnan(z[0]) && isnan(z[1]), "%s: NaN propagates", bin_name[op]);
        pn_value_release(o);
    }
    pn_value_release(a);
    pn_value_release(b);
}

static void test_binary_gradients(void) {
    static const int cases[] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9};
    for (int op = 0; op < PN_BIN_COUNT; op++)
        for (size_t j = 0; j < sizeof cases / sizeof cases[0]; j++) {
            /* jumps wherever x / y is an integer: checked on fixed values below */
            if (op == PN_BIN_FLOOR_DIVIDE || op == PN_BIN_MOD) continue;
            int c = cases[j], ka, kb;
            bin_kinds(op, &ka, &kb);
            pn_value *in[2] = {mk(bin_cases[c].a, 7 + c, ka, 1), mk(bin_cases[c].b, 70 + c, kb, 1)};
            char what[64];
            snprintf(what, sizeof what, "%s grad case %d", bin_name[op], c);
            pn_binop bop = op;
            gradcheck(what, run_binary, &bop, 2, in, 1e-2f);
            pn_value_release(in[0]);
            pn_value_release(in[1]);
        }
    /* only one operand requires a gradient; one input used twice (x * x, x / x, x - x) */
    shp s = {2, {3, 2}}, r = {1, {2}};
    pn_value *x = mk(s, 3, AWAY_FROM_0, 1), *c = mk(r, 4, AWAY_FROM_0, 0);
    pn_binop ops[3] = {PN_BIN_MUL, PN_BIN_DIV, PN_BIN_SUB};
    for (int k = 0; k < 3; k++) {
        pn_value *in[2] = {x, x}, *in2[2] = {c, x};
        gradcheck("x op x", run_binary, &ops[k], 2, in, 1e-2f);
        gradcheck("const op x", run_binary, &ops[k], 2, in2, 1e-2f);
    }
    pn_value_release(x);
    pn_value_release(c);

    /* pow at a zero base: dz/dy takes 0 there (log 0 by convention), and 0^0 has dz/dx 0 */
    shp two = {1, {2}};
    float base[2] = {0.0f, 0.0f}, ex[2] = {2.0f, 0.0f};
    pn_value *pa, *pb, *po;
    pn_value_create(&pa, 1, two.d, PN_F32, base);
    pn_value_create(&pb, 1, two.d, PN_F32, ex);
    pn_value_set_requires_grad(pa, 1);
    pn_value_set_requires_grad(pb, 1);
    pn_eager_binary(PN_BIN_POW, pa, pb, &po);
    float ones[2] = {1, 1};
    pn_value_backward(po, ones);
    const float *z = pn_value_data(po), *ga = pn_value_grad(pa), *gb = pn_value_grad(pb);
    CHECK(z[0] == 0.0f && z[1] == 1.0f, "0^2 = 0, 0^0 = 1");
    CHECK(ga[0] == 0.0f && ga[1] == 0.0f && gb[0] == 0.0f && gb[1] == 0.0f,
          "pow at base 0: gradients %g %g %g %g", ga[0], ga[1], gb[0], gb[1]);
    pn_value_release(po);
    pn_value_release(pa);
    pn_value_release(pb);

    /* ties of maximum / minimum go to the first operand */
    float av[3] = {1, 2, 3}, bv[3] = {1, 5, 3};
    pn_value *ta, *tb, *to;
    int64_t d3[1] = {3};
    pn_value_create(&ta, 1, d3, PN_F32, av);
    pn_value_create(&tb, 1, d3, PN_F32, bv);
    pn_value_set_requires_grad(ta, 1);
    pn_value_set_requires_grad(tb, 1);
    float g3[3] = {1, 1, 1};
    pn_eager_binary(PN_BIN_MAXIMUM, ta, tb, &to);
    pn_value_backward(to, g3);
    pn_value_release(to);
    ga = pn_value_grad(ta);
    gb = pn_value_grad(tb);
    CHECK(ga[0] == 1 && gb[0] == 0 && ga[1] == 0 && gb[1] == 1 && ga[2] == 1 && gb[2] == 0,
          "maximum: ties to a");
    pn_value_zero_grad(ta);
    pn_value_zero_grad(tb);
    pn_eager_binary(PN_BIN_MINIMUM, ta, tb, &to);
    pn_value_backward(to, g3);
    pn_value_release(to);
    CHECK(ga[0] == 1 && gb[0] == 0 && ga[1] == 1 && gb[1] == 0 && ga[2] == 1 && gb[2] == 0,
          "minimum: ties to a");
    pn_value_release(ta);
    pn_value_release(tb);

    /* empty broadcast: backward runs, the row's gradient is zeros */
    shp e = {2, {0, 3}}, row = {1, {3}};
    pn_value *ea = mk(e, 1, UNIFORM, 1), *eb = mk(row, 2, UNIFORM, 1), *eo;
    CHECK(pn_eager_binary(PN_BIN_MUL, ea, eb, &eo) == 0, "empty mul");
    float dummy[1] = {0};
    CHECK(pn_value_backward(eo, dummy) == 0, "empty backward");
    const float *gr = pn_value_grad(eb);
    CHECK(gr && gr[0] == 0 && gr[1] == 0 && gr[2] == 0, "empty: the row's gradient is zero");
    pn_value_release(eo);
    pn_value_release(ea);
    pn_value_release(eb);
}

/* ---- unary -------------------------------------------------------------------------------- */

static int run_unary(pn_value *const *in, const void *ctx, pn_value **out) {
    return pn_eager_unary(*(const pn_unop *)ctx, in[0], out);
}

static double ref_unary(int op, double x) {
    switch (op) {
    case PN_UN_NEG: return -x;
    case PN_UN_EXP: return exp(x);
    case PN_UN_LOG: return log(x);
    case PN_UN_SQRT: return sqrt(x);
    case PN_UN_ABS: return fabs(x);
    case PN_UN_SQUARE: return x * x;
    case PN_UN_RELU: return x > 0 ? x : 0;
    case PN_UN_SIGMOID: return 1 / (1 + exp(-x));
    case PN_UN_TANH: return tanh(x);
    case PN_UN_SIN: return sin(x);
    case PN_UN_COS: return cos(x);
    case PN_UN_TAN: return tan(x);
    case PN_UN_ARCTAN: return atan(x);
    case PN_UN_ERF: return erf(x);
    case PN_UN_LOG1P: return log1p(x);
    case PN_UN_EXPM1: return expm1(x);
    case PN_UN_RECIPROCAL: return 1 / x;
    case PN_UN_RSQRT: return 1 / sqrt(x);
    case PN_UN_SIGN: return x > 0 ? 1 : x < 0 ? -1 : x;
    case PN_UN_FLOOR: return floor(x);
    case PN_UN_CEIL: return ceil(x);
    case PN_UN_ROUND: return nearbyint(x);
    case PN_UN_SOFTPLUS: return log1p(exp(x));
    case PN_UN_SILU: return x / (1 + exp(-x));
    case PN_UN_GELU: return 0.5 * x * (1 + erf(x / sqrt(2.0)));
    case PN_UN_LOGICAL_NOT: return x == 0;
    case PN_UN_ISNAN: return isnan(x);
    case PN_UN_ISINF: return isinf(x);
    case PN_UN_ISFINITE: return isfinite(x);
    case PN_UN_SIGNBIT: return signbit(x) != 0;
    default: return -log1p(exp(-x)); /* log_sigmoid */
    }
}

static void test_unary(void) {
    shp shapes[] = {{2, {3, 4}}, {0, {0}}, {3, {2, 0, 3}}, {1, {70000}}};
    for (int op = 0; op < PN_UN_COUNT; op++) {
        int kind = op == PN_UN_LOG || op == PN_UN_SQRT || op == PN_UN_RSQRT ? POSITIVE
                   : op == PN_UN_ABS || op == PN_UN_RELU || op == PN_UN_RECIPROCAL ||
                           op == PN_UN_SIGN
                       ? AWAY_FROM_0
                       : UNIFORM;
        /* piecewise constant: no gradient to check (a step inside the numerical one's reach) */
        int steps = op == PN_UN_SIGN || op == PN_UN_FLOOR || op == PN_UN_CEIL ||
                    op == PN_UN_ROUND || op >= PN_UN_LOGICAL_NOT;
        for (int c = 0; c < 4; c++) {
            pn_value *x = mk(shapes[c], 5 + c, kind, 1), *o = NULL;
            CHECK(pn_eager_unary(op, x, &o) == 0 && same_shape(o, shapes[c]), "unary %d", op);
            int64_t n = pn_value_size(x);
            double *want = malloc((size_t)(n ? n : 1) * sizeof(double));
            for (int64_t i = 0; i < n; i++) want[i] = ref_unary(op, ((float *)pn_value_data(x))[i]);
            double e = elem_rel_err(pn_value_data(o), want, n);
            CHECK(e < 1e-6, "unary %d shape %d: error %g", op, c, e);
            free(want);
            pn_value_release(o);
            pn_unop uop = op;
            if (c < 3 && !steps) gradcheck("unary", run_unary, &uop, 1, &x, 1e-2f);
            pn_value_release(x);
        }
    }
    /* log of 0 and of a negative: -inf and NaN, no error */
    float v[2] = {0.0f, -1.0f};
    int64_t d[1] = {2};
    pn_value *x, *o;
    pn_value_create(&x, 1, d, PN_F32, v);
    CHECK(pn_eager_unary(PN_UN_LOG, x, &o) == 0, "log of 0");
    const float *z = pn_value_data(o);
    CHECK(isinf(z[0]) && z[0] < 0 && isnan(z[1]), "log: -inf and NaN");
    pn_value_release(o);
    pn_value_release(x);
    /* sigmoid far out stays finite */
    float big[2] = {-100.0f, 100.0f};
    pn_value_create(&x, 1, d, PN_F32, big);
    pn_eager_unary(PN_UN_SIGMOID, x, &o);
    z = pn_value_data(o);
    CHECK(z[0] >= 0.0f && z[0] < 1e-30f && z[1] == 1.0f, "sigmoid saturates");
    pn_value_release(o);
    pn_value_release(x);
}

/* ---- reductions --------------------------------------------------------------------------- */

typedef struct {
    int op, n, axes[PN_MAX_DIMS], keep;
} red_ctx;

static int run_reduce(pn_value *const *in, const void *ctx, pn_value **out) {
    const red_ctx *r = ctx;
    return pn_eager_reduce(r->op, in[0], r->n, r->axes, r->keep, out);
}

/* the reference: output shape (keepdims) and values, ties to the first */
static void ref_reduce(const red_ctx *r, shp s, const float *x, shp *os, double *z) {
    unsigned mask = 0;
    for (int i = 0; i < r->n; i++) mask |= 1u << ((r->axes[i] + s.nd) % s.nd);
    if (r->n == 0) mask = (1u << s.nd) - 1;
    shp k = {s.nd, {0}};
    os->nd = 0;
    for (int i = 0; i < s.nd; i++) {
        k.d[i] = mask >> i & 1 ? 1 : s.d[i];
        if (!(mask >> i & 1) || r->keep) os->d[os->nd++] = k.d[i];
    }
    int64_t on = shp_size(k), n = shp_size(s), count = on ? n / on : 0;
    int64_t *cnt = calloc((size_t)(on ? on : 1), sizeof(int64_t));
    for (int64_t o = 0; o < on; o++) z[o] = r->op == PN_RED_MAX ? -INFINITY
                                          : r->op == PN_RED_MIN ? INFINITY
                                          : r->op == PN_RED_PROD ? 1 : 0;
    for (int64_t i = 0; i < n; i++) {
        /* index i of s -> index of k */
        int64_t rem = i, o = 0, idx[PN_MAX_DIMS];
        for (int d = s.nd - 1; d >= 0; d--) {
            idx[d] = rem % s.d[d];
            rem /= s.d[d];
        }
        for (int d = 0; d < s.nd; d++) o = o * k.d[d] + (mask >> d & 1 ? 0 : idx[d]);
        if (r->op == PN_RED_MAX) z[o] = fmax(z[o], x[i]);
        else if (r->op == PN_RED_MIN) z[o] = fmin(z[o], x[i]);
        else if (r->op == PN_RED_PROD) z[o] *= x[i];
        else z[o] += x[i];
        cnt[o]++;
    }
    if (r->op == PN_RED_MEAN)
        for (int64_t o = 0; o < on; o++) z[o] = count ? z[o] / count : NAN;
    free(cnt);
}

static void test_reduce(void) {
    static const struct {
        shp s;
        int n, axes[3];
    } cases[] = {
        {{3, {2, 3, 4}}, 0, {0}},     {{3, {2, 3, 4}}, 1, {0}},     {{3, {2, 3, 4}}, 1, {1}},
        {{3, {2, 3, 4}}, 1, {-1}},    {{3, {2, 3, 4}}, 2, {0, 2}},  {{3, {2, 3, 4}}, 2, {-1, -3}},
        {{3, {2, 3, 4}}, 3, {2, 0, 1}}, {{2, {5, 7}}, 1, {1}},      {{2, {5, 7}}, 1, {0}},
        {{0, {0}}, 0, {0}},           {{1, {6}}, 1, {0}},           {{2, {0, 3}}, 1, {0}},
        {{2, {0, 3}}, 1, {1}},        {{4, {2, 1, 3, 2}}, 2, {1, 3}},
    };
    int nc = (int)(sizeof cases / sizeof cases[0]);
    for (int op = 0; op < PN_RED_COUNT; op++)
        for (int c = 0; c < nc; c++)
            for (int keep = 0; keep < 2; keep++) {
                red_ctx r = {op, cases[c].n, {0}, keep};
                memcpy(r.axes, cases[c].axes, sizeof cases[c].axes);
                shp s = cases[c].s;
                int extreme = op == PN_RED_MAX || op == PN_RED_MIN;
                /* distinct values on a grid: no ties, no max within a step of the next */
                pn_value *x = mk(s, 11 + c, UNIFORM, 1), *o = NULL;
                float *xd = pn_value_data(x);
                int64_t n = shp_size(s);
                for (int64_t i = 0; i < n; i++) xd[i] = (float)((i * 37) % (n + 1)) * 0.1f - 1.0f;
                int rc = pn_eager_reduce(op, x, r.n, r.axes, keep, &o);
                if (extreme && c == 11) { /* max over an empty axis of a non-empty result */
                    CHECK(rc == PN_EVALUE && !o, "max/min over an empty axis: an error");
                    pn_value_release(x);
                    continue;
                }
                CHECK(rc == 0, "reduce %d case %d keep %d", op, c, keep);
                if (rc) {
                    pn_value_release(x);
                    continue;
                }
                shp os;
                double want[64];
                ref_reduce(&r, s, xd, &os, want);
                CHECK(same_shape(o, os), "reduce %d case %d keep %d: shape", op, c, keep);
                double e = elem_rel_err(pn_value_data(o), want, pn_value_size(o));
                CHECK(e < 1e-6, "reduce %d case %d keep %d: error %g", op, c, keep, e);
                pn_value_release(o);
                gradcheck("reduce", run_reduce, &r, 1, &x, 1e-2f);
                pn_value_release(x);
            }
    /* ties: the gradient goes to the first maximal element only */
    float v[5] = {1, 3, 2, 3, 0};
    int64_t d[1] = {5};
    pn_value *x, *o;
    pn_value_create(&x, 1, d, PN_F32, v);
    pn_value_set_requires_grad(x, 1);
    pn_eager_reduce(PN_RED_MAX, x, 0, NULL, 0, &o);
    CHECK(*(float *)pn_value_data(o) == 3.0f && pn_value_ndim(o) == 0, "max of a vector");
    pn_value_backward(o, NULL);
    const float *g = pn_value_grad(x);
    CHECK(g[0] == 0 && g[1] == 1 && g[2] == 0 && g[3] == 0 && g[4] == 0, "max: ties to the first");
    pn_value_release(o);
    /* NaN propagates through max */
    v[2] = NAN;
    pn_value *y;
    pn_value_create(&y, 1, d, PN_F32, v);
    pn_eager_reduce(PN_RED_MAX, y, 0, NULL, 0, &o);
    CHECK(isnan(*(float *)pn_value_data(o)), "max: NaN propagates");
    pn_value_release(o);
    pn_value_release(y);
    /* rows of 40 (the row path): ties to the first, for max and min; a NaN anywhere wins */
    int64_t rd[2] = {3, 40};
    float rv[120];
    for (int i = 0; i < 120; i++) rv[i] = (float)(i % 40) * 0.01f;
    rv[7] = rv[30] = 5.0f;          /* row 0: two maxima */
    rv[40 + 3] = rv[40 + 33] = -5;  /* row 1: two minima */
    rv[80 + 21] = NAN;              /* row 2: a NaN */
    pn_value *rx;
    pn_value_create(&rx, 2, rd, PN_F32, rv);
    pn_value_set_requires_grad(rx, 1);
    int last[1] = {-1};
    float g3[3] = {1, 1, 1};
    for (int op = PN_RED_MAX; op <= PN_RED_MIN; op++) {
        pn_value_zero_grad(rx);
        pn_eager_reduce(op, rx, 1, last, 1, &o);
        const float *z = pn_value_data(o);
        CHECK(pn_value_ndim(o) == 2 && pn_value_dims(o)[1] == 1 && isnan(z[2]), "rows: NaN wins");
        pn_value_backward(o, g3);
        const float *gr = pn_value_grad(rx);
        int first = op == PN_RED_MAX ? 7 : 40 + 3, second = op == PN_RED_MAX ? 30 : 40 + 33;
        CHECK(gr[first] == 1 && gr[second] == 0 && gr[80 + 21] == 1, "rows: ties to the first");
        pn_value_release(o);
    }
    pn_value_release(rx);
    /* a big mean is accurate (double accumulation) */
    int64_t bd[1] = {1 << 20};
    float *ones = malloc(sizeof(float) << 20);
    for (int i = 0; i < 1 << 20; i++) ones[i] = 0.1f;
    pn_value_create(&y, 1, bd, PN_F32, ones);
    pn_eager_reduce(PN_RED_MEAN, y, 0, NULL, 0, &o);
    CHECK(fabsf(*(float *)pn_value_data(o) - 0.1f) < 1e-7f, "mean of 2^20 values: %.9g",
          *(float *)pn_value_data(o));
    pn_value_release(o);
    pn_value_release(y);
    free(ones);
    pn_value_release(x);
}

/* ---- matmul ------------------------------------------------------------------------------- */

static int run_matmul(pn_value *const *in, const void *ctx, pn_value **out) {
    (void)ctx;
    return pn_eager_matmul(in[0], in[1], out);
}

static void test_matmul(void) {
    static const struct {
        shp a, b, out;
    } cases[] = {
        {{2, {3, 4}}, {2, {4, 5}}, {2, {3, 5}}},
        {{1, {4}}, {2, {4, 5}}, {1, {5}}},
        {{2, {3, 4}}, {1, {4}}, {1, {3}}},
        {{1, {4}}, {1, {4}}, {0, {0}}},
        {{3, {2, 3, 4}}, {2, {4, 5}}, {3, {2, 3, 5}}},       /* batches stacked */
        {{3, {2, 3, 4}}, {3, {2, 4, 5}}, {3, {2, 3, 5}}},
        {{3, {1, 3, 4}}, {3, {2, 4, 5}}, {3, {2, 3, 5}}},    /* batch broadcast */
        {{2, {3, 4}}, {3, {2, 4, 5}}, {3, {2, 3, 5}}},       /* A broadcast */
        {{4, {2, 1, 3, 4}}, {3, {3, 4, 2}}, {4, {2, 3, 3, 2}}},
        {{1, {4}}, {3, {2, 4, 5}}, {2, {2, 5}}},
        {{3, {2, 3, 4}}, {1, {4}}, {2, {2, 3}}},
        {{3, {2, 3, 0}}, {2, {0, 4}}, {3, {2, 3, 4}}},       /* k = 0: zeros */
        {{2, {0, 3}}, {2, {3, 2}}, {2, {0, 2}}},
        {{3, {0, 3, 2}}, {3, {1, 2, 2}}, {3, {0, 3, 2}}},
    };
    int nc = (int)(sizeof cases / sizeof cases[0]);
    for (int c = 0; c < nc; c++) {
        pn_value *in[2] = {mk(cases[c].a, 3 + c, UNIFORM, 1), mk(cases[c].b, 30 + c, UNIFORM, 1)};
        pn_value *o = NULL;
        int rc = pn_eager_matmul(in[0], in[1], &o);
        CHECK(rc == 0 && same_shape(o, cases[c].out), "matmul case %d: shape", c);
        if (rc == 0) {
            /* reference: promote, loop over the output's batch, then un-promote */
            shp a = cases[c].a, b = cases[c].b;
            if (a.nd == 1) a = (shp){2, {1, a.d[0]}};
            if (b.nd == 1) b = (shp){2, {b.d[0], 1}};
            int64_t n = a.d[a.nd - 2], k = a.d[a.nd - 1], m = b.d[b.nd - 1];
            int nb = (a.nd > b.nd ? a.nd : b.nd) - 2;
            shp bo = {nb, {0}}, ab = {a.nd - 2, {0}}, bbs = {b.nd - 2, {0}};
            for (int i = 0; i < ab.nd; i++) ab.d[i] = a.d[i];
            for (int i = 0; i < bbs.nd; i++) bbs.d[i] = b.d[i];
            for (int i = 0; i < nb; i++) {
                int ia = i - (nb - ab.nd), ib = i - (nb - bbs.nd);
                int64_t da = ia >= 0 ? ab.d[ia] : 1, db = ib >= 0 ? bbs.d[ib] : 1;
                bo.d[i] = da == 1 ? db : da;
            }
            int64_t batches = shp_size(bo), size = pn_value_size(o);
            double *want = calloc((size_t)(size ? size : 1), sizeof(double));
            const float *A = pn_value_data(in[0]), *B = pn_value_data(in[1]);
            for (int64_t t = 0; t < batches; t++) {
                int64_t ta = bcast_index(bo, ab, t), tb = bcast_index(bo, bbs, t);
                for (int64_t i = 0; i < n; i++)
                    for (int64_t j = 0; j < m; j++) {
                        double s = 0;
                        for (int64_t l = 0; l < k; l++)
                            s += (double)A[ta * n * k + i * k + l] * B[tb * k * m + l * m + j];
                        want[t * n * m + i * m + j] = s;
                    }
            }
            double e = elem_rel_err(pn_value_data(o), want, size);
            CHECK(e < 1e-5, "matmul case %d: error %g", c, e);
            free(want);
            pn_value_release(o);
            gradcheck("matmul", run_matmul, NULL, 2, in, 1e-2f);
        }
        pn_value_release(in[0]);
        pn_value_release(in[1]);
    }
    /* x @ x with x square: one input, both sides */
    shp sq = {2, {3, 3}};
    pn_value *x = mk(sq, 8, UNIFORM, 1);
    pn_value *xx[2] = {x, x};
    gradcheck("x @ x", run_matmul, NULL, 2, xx, 1e-2f);
    pn_value_release(x);
    /* a bigger product through the threaded GEMM */
    shp ba = {2, {256, 300}}, bb = {2, {300, 200}};
    pn_value *A = mk(ba, 1, UNIFORM, 0), *Bv = mk(bb, 2, UNIFORM, 0), *o;
    CHECK(pn_eager_matmul(A, Bv, &o) == 0, "big matmul");
    double s = 0;
    const float *a = pn_value_data(A), *b = pn_value_data(Bv);
    for (int l = 0; l < 300; l++) s += (double)a[17 * 300 + l] * b[l * 200 + 33];
    CHECK(fabs(((float *)pn_value_data(o))[17 * 200 + 33] - s) < 1e-4, "big matmul element");
    pn_value_release(o);
    pn_value_release(A);
    pn_value_release(Bv);
}

/* ---- softmax ------------------------------------------------------------------------------ */

typedef struct {
    int axis, log;
} sm_ctx;

static int run_softmax(pn_value *const *in, const void *ctx, pn_value **out) {
    const sm_ctx *s = ctx;
    return pn_eager_softmax(in[0], s->axis, s->log, out);
}

static void test_softmax(void) {
    static const struct {
        shp s;
        int axis;
    } cases[] = {
        {{2, {3, 5}}, -1}, {{2, {3, 5}}, 0}, {{3, {2, 3, 4}}, 1}, {{3, {2, 3, 4}}, -3},
        {{1, {6}}, 0},     {{2, {0, 4}}, 1}, {{2, {4, 0}}, 0},   {{3, {2, 1, 3}}, 1},
    };
    int nc = (int)(sizeof cases / sizeof cases[0]);
    for (int c = 0; c < nc; c++)
        for (int lg = 0; lg < 2; lg++) {
            shp s = cases[c].s;
            pn_value *x = mk(s, 21 + c, UNIFORM, 1), *o = NULL;
            float *xd = pn_value_data(x);
            int64_t n = shp_size(s);
            for (int64_t i = 0; i < n; i++) xd[i] = 3.0f * xd[i] + (c == 0 ? 1000.0f : 0.0f);
            sm_ctx ctx = {cases[c].axis, lg};
            CHECK(pn_eager_softmax(x, ctx.axis, lg, &o) == 0 && same_shape(o, s), "softmax %d", c);
            int ax = (ctx.axis + s.nd) % s.nd;
            int64_t outer = 1, L = s.d[ax], inner = 1;
            for (int i = 0; i < ax; i++) outer *= s.d[i];
            for (int i = ax + 1; i < s.nd; i++) inner *= s.d[i];
            double *want = malloc((size_t)(n ? n : 1) * sizeof(double));
            for (int64_t p = 0; p < outer; p++)
                for (int64_t q = 0; q < inner; q++) {
                    double mx = -INFINITY, sum = 0;
                    for (int64_t l = 0; l < L; l++) mx = fmax(mx, xd[(p * L + l) * inner + q]);
                    for (int64_t l = 0; l < L; l++) sum += exp(xd[(p * L + l) * inner + q] - mx);
                    for (int64_t l = 0; l < L; l++) {
                        double v = xd[(p * L + l) * inner + q] - mx;
                        want[(p * L + l) * inner + q] = lg ? v - log(sum) : exp(v) / sum;
                    }
                }
            double e = elem_rel_err(pn_value_data(o), want, n);
            CHECK(e < 1e-5, "softmax case %d log %d: error %g", c, lg, e);
            free(want);
            pn_value_release(o);
            if (c != 0) gradcheck("softmax", run_softmax, &ctx, 1, &x, 1e-2f);
            pn_value_release(x);
        }
}

/* ---- slice -------------------------------------------------------------------------------- */

typedef struct {
    int64_t start[PN_MAX_DIMS], step[PN_MAX_DIMS], count[PN_MAX_DIMS];
    unsigned drop;
} sl_ctx;

static int run_slice(pn_value *const *in, const void *ctx, pn_value **out) {
    const sl_ctx *s = ctx;
    return pn_eager_slice(in[0], s->start, s->step, s->count, s->drop, out);
}

static void test_slice(void) {
    static const struct {
        shp s;
        sl_ctx c;
        shp out;
    } cases[] = {
        {{1, {5}}, {{4}, {-1}, {5}, 0}, {1, {5}}},                       /* reversed */
        {{1, {5}}, {{0}, {2}, {3}, 0}, {1, {3}}},
        {{2, {4, 6}}, {{1, 5}, {2, -2}, {2, 3}, 0}, {2, {2, 3}}},
        {{2, {3, 4}}, {{2, 0}, {1, 1}, {1, 4}, 1u}, {1, {4}}},           /* x[2] */
        {{2, {3, 4}}, {{0, 3}, {1, 1}, {3, 1}, 2u}, {1, {3}}},           /* x[:, 3] */
        {{2, {3, 4}}, {{1, 2}, {1, 1}, {1, 1}, 3u}, {0, {0}}},           /* x[1, 2] */
        {{2, {3, 4}}, {{0, 0}, {1, 1}, {0, 4}, 0}, {2, {0, 4}}},         /* empty */
        {{3, {2, 3, 4}}, {{1, 2, 3}, {-1, -1, -2}, {2, 2, 2}, 0}, {3, {2, 2, 2}}},
        {{0, {0}}, {{0}, {0}, {0}, 0}, {0, {0}}},                        /* rank 0 */
        {{3, {2, 3, 4}}, {{0, 0, 1}, {1, 1, 1}, {2, 3, 2}, 0}, {3, {2, 3, 2}}},
    };
    int nc = (int)(sizeof cases / sizeof cases[0]);
    for (int c = 0; c < nc; c++) {
        shp s = cases[c].s;
        const sl_ctx *sc = &cases[c].c;
        pn_value *x = mk(s, 41 + c, UNIFORM, 1), *o = NULL;
        int rc = pn_eager_slice(x, sc->start, sc->step, sc->count, sc->drop, &o);
        CHECK(rc == 0 && same_shape(o, cases[c].out), "slice case %d: shape", c);
        if (rc == 0) {
            int64_t n = pn_value_size(o), idx[PN_MAX_DIMS];
            double *want = malloc((size_t)(n ? n : 1) * sizeof(double));
            const float *xd = pn_value_data(x);
            for (int64_t i = 0; i < n; i++) {
                int64_t rem = i, src = 0;
                for (int d = s.nd - 1; d >= 0; d--) {
                    idx[d] = rem % sc->count[d];
                    rem /= sc->count[d];
                }
                for (int d = 0; d < s.nd; d++) src = src * s.d[d] + sc->start[d] + idx[d] * sc->step[d];
                want[i] = xd[src];
            }
            double e = elem_rel_err(pn_value_data(o), want, n);
            CHECK(e == 0, "slice case %d: error %g", c, e);
            free(want);
            pn_value_release(o);
            gradcheck("slice", run_slice, sc, 1, &x, 1e-2f);
        }
        pn_value_release(x);
    }
}

/* ---- reshape and transpose ---------------------------------------------------------------- */

typedef struct {
    int nd;
    int64_t dims[PN_MAX_DIMS];
    int perm[PN_MAX_DIMS];
} rt_ctx;

static int run_reshape(pn_value *const *in, const void *ctx, pn_value **out) {
    const rt_ctx *r = ctx;
    return pn_eager_reshape(in[0], r->nd, r->dims, out);
}

static int run_transpose(pn_value *const *in, const void *ctx, pn_value **out) {
    return pn_eager_transpose(in[0], ((const rt_ctx *)ctx)->perm, out);
}

static void test_reshape_transpose(void) {
    shp s = {2, {2, 3}};
    pn_value *x = mk(s, 1, UNIFORM, 1), *o;
    rt_ctx r = {3, {3, 1, 2}, {0}};
    CHECK(pn_eager_reshape(x, 3, r.dims, &o) == 0 && pn_value_ndim(o) == 3, "reshape");
    CHECK(!memcmp(pn_value_data(o), pn_value_data(x), 6 * sizeof(float)), "reshape copies");
    pn_value_release(o);
    gradcheck("reshape", run_reshape, &r, 1, &x, 1e-2f);
    pn_value_release(x);
    shp one = {1, {1}}, e = {2, {0, 3}};
    x = mk(one, 1, UNIFORM, 0);
    CHECK(pn_eager_reshape(x, 0, NULL, &o) == 0 && pn_value_ndim(o) == 0, "(1,) -> ()");
    pn_value_release(o);
    pn_value_release(x);
    x = mk(e, 1, UNIFORM, 0);
    int64_t e2[3] = {3, 0, 7};
    CHECK(pn_eager_reshape(x, 3, e2, &o) == 0 && pn_value_size(o) == 0, "(0, 3) -> (3, 0, 7)");
    pn_value_release(o);
    pn_value_release(x);

    static const struct {
        shp s;
        int perm[4];
    } cases[] = {
        {{2, {2, 3}}, {1, 0}},       {{3, {2, 3, 4}}, {2, 0, 1}}, {{3, {2, 3, 4}}, {0, 2, 1}},
        {{3, {2, 3, 4}}, {0, 1, 2}}, {{0, {0}}, {0}},             {{4, {2, 1, 3, 2}}, {3, 1, 0, 2}},
        {{3, {2, 0, 3}}, {2, 1, 0}},
    };
    for (int c = 0; c < (int)(sizeof cases / sizeof cases[0]); c++) {
        shp t = cases[c].s;
        rt_ctx tc = {0, {0}, {0}};
        memcpy(tc.perm, cases[c].perm, sizeof cases[c].perm);
        x = mk(t, 5 + c, UNIFORM, 1);
        CHECK(pn_eager_transpose(x, tc.perm, &o) == 0, "transpose %d", c);
        int64_t n = pn_value_size(x);
        const float *xd = pn_value_data(x), *z = pn_value_data(o);
        int ok = pn_value_ndim(o) == t.nd;
        for (int j = 0; j < t.nd; j++) ok &= pn_value_dims(o)[j] == t.d[tc.perm[j]];
        for (int64_t i = 0; ok && i < n; i++) { /* out index i -> x index */
            int64_t rem = i, idx[PN_MAX_DIMS], src = 0, xi[PN_MAX_DIMS];
            for (int d = t.nd - 1; d >= 0; d--) {
                idx[d] = rem % t.d[tc.perm[d]];
                rem /= t.d[tc.perm[d]];
            }
            for (int d = 0; d < t.nd; d++) xi[tc.perm[d]] = idx[d];
            for (int d = 0; d < t.nd; d++) src = src * t.d[d] + xi[d];
            ok &= z[i] == xd[src];
        }
        CHECK(ok, "transpose case %d: values", c);
        pn_value_release(o);
        gradcheck("transpose", run_transpose, &tc, 1, &x, 1e-2f);
        pn_value_release(x);
    }
}

/* ---- the tape: accumulation, grad mode, chains -------------------------------------------- */

static void test_tape(void) {
    shp s = {2, {2, 3}};
    pn_value *x = mk(s, 1, UNIFORM, 1), *y, *o;
    const float *xd = pn_value_data(x);
    float ones[6] = {1, 1, 1, 1, 1, 1};
    pn_eager_binary(PN_BIN_MUL, x, x, &o);
    CHECK(pn_value_fn_name(o) && !strcmp(pn_value_fn_name(o), "multiply"), "recorded");
    pn_value_backward(o, ones);
    const float *g = pn_value_grad(x);
    int ok = 1;
    for (int i = 0; i < 6; i++) ok &= fabsf(g[i] - 2 * xd[i]) < 1e-6f;
    CHECK(ok, "x * x: gradient 2x");
    pn_value_backward(o, ones);
    for (int i = 0; i < 6; i++) ok &= fabsf(g[i] - 4 * xd[i]) < 1e-6f;
    CHECK(ok, "a second backward doubles it");
    pn_value_release(o);

    /* grad mode off: nothing recorded */
    y = mk(s, 2, UNIFORM, 0);
    pn_set_grad_enabled(0);
    int all_off = 1;
    pn_value *r = NULL;
    int axes[1] = {-1};
    int64_t st[2] = {0, 0}, sp[2] = {1, 1}, cn[2] = {2, 3}, dims[1] = {6};
    int perm[2] = {1, 0};
    pn_eager_binary(PN_BIN_ADD, x, y, &r), all_off &= !pn_value_requires_grad(r), pn_value_release(r);
    pn_eager_unary(PN_UN_EXP, x, &r), all_off &= !pn_value_requires_grad(r), pn_value_release(r);
    pn_eager_reduce(PN_RED_MAX, x, 1, axes, 0, &r), all_off &= !pn_value_requires_grad(r),
        pn_value_release(r);
    pn_eager_softmax(x, -1, 0, &r), all_off &= !pn_value_requires_grad(r), pn_value_release(r);
    pn_eager_slice(x, st, sp, cn, 0, &r), all_off &= !pn_value_requires_grad(r), pn_value_release(r);
    pn_eager_reshape(x, 1, dims, &r), all_off &= !pn_value_requires_grad(r), pn_value_release(r);
    pn_eager_transpose(x, perm, &r), all_off &= !pn_value_requires_grad(r), pn_value_release(r);
    CHECK(all_off, "grad mode off: no output requires a gradient");
    pn_set_grad_enabled(1);
    pn_value_release(y);

    /* a long chain: v = ((x + x) + x) + ...; backward and release walk it without recursion */
    enum { LONG = 100000 };
    pn_value *v = x;
    pn_value_retain(x);
    pn_value_zero_grad(x);
    for (int i = 0; i < LONG && v; i++) {
        pn_value *nv = NULL;
        if (pn_eager_binary(PN_BIN_ADD, v, x, &nv)) nv = NULL;
        pn_value_release(v);
        v = nv;
    }
    CHECK(v != NULL, "long chain built");
    if (v) {
        CHECK(pn_value_backward(v, ones) == 0, "long chain backward");
        CHECK(g[0] == LONG + 1.0f, "long chain gradient %g", g[0]);
        pn_value_release(v);
    }
    /* and one released without a backward, from a leaf that is released first */
    shp sc = {0, {0}};
    pn_value *l = mk(sc, 1, UNIFORM, 1);
    v = l;
    pn_value_retain(l);
    pn_value_release(l);
    for (int i = 0; i < LONG && v; i++) {
        pn_value *nv = NULL;
        if (pn_eager_unary(PN_UN_NEG, v, &nv)) nv = NULL;
        pn_value_release(v);
        v = nv;
    }
    pn_value_release(v);
    pn_value_release(x);
}

/* ---- errors: a code, a message, *out untouched, nothing leaked ----------------------------- */

static pn_value *const SENTINEL = (pn_value *)&passed;

/* `call` (writing to out_) returns `code`; on an error *out_ is untouched and a new message is
 * set (error_reset leaves a known one before the call) */
#define EXPECT_ERR(call, code, ...)                                                            \
    do {                                                                                       \
        pn_value *o_ = SENTINEL;                                                               \
        pn_value **out_ = &o_;                                                                 \
        error_reset();                                                                         \
        int rc_ = (call);                                                                      \
        int new_msg_ = strcmp(pn_last_error(), reset_msg) != 0 && pn_last_error()[0];          \
        CHECK(rc_ == (code) && ((code) == 0 ? o_ != SENTINEL : o_ == SENTINEL && new_msg_),    \
              __VA_ARGS__);                                                                    \
        if (rc_ == 0 && o_ != SENTINEL) pn_value_release(o_);                                  \
    } while (0)

static char reset_msg[512];

static void error_reset(void) {
    pn_value *x;
    int64_t bad = -1;
    pn_value_create(&x, 1, &bad, PN_F32, NULL); /* fails: "dimension 0 of a tensor is -1" */
    snprintf(reset_msg, sizeof reset_msg, "%s", pn_last_error());
}

static void test_errors(void) {
    shp s23 = {2, {2, 3}}, s4 = {1, {4}}, s0 = {0, {0}};
    pn_value *a = mk(s23, 1, UNIFORM, 1), *b = mk(s4, 2, UNIFORM, 1), *c = mk(s0, 3, UNIFORM, 1);
    pn_value *iv;
    int32_t ints[4] = {1, 2, 3, 4};
    pn_value_create(&iv, 1, s4.d, PN_I32, ints);

    EXPECT_ERR(pn_eager_binary(PN_BIN_ADD, a, b, out_), PN_ESHAPE, "add (2,3) (4,)");
    CHECK(strstr(pn_last_error(), "(2, 3)") && strstr(pn_last_error(), "(4,)"),
          "the message names both shapes: %s", pn_last_error());
    EXPECT_ERR(pn_eager_binary(PN_BIN_ADD, a, iv, out_), PN_ETYPE, "int32 operand");
    EXPECT_ERR(pn_eager_binary(PN_BIN_COUNT, a, a, out_), PN_EVALUE, "unknown binary op");
    EXPECT_ERR(pn_eager_binary((pn_binop)-1, a, a, out_), PN_EVALUE, "negative binary op");
    EXPECT_ERR(pn_eager_binary(PN_BIN_ADD, a, NULL, out_), PN_EVALUE, "NULL operand");
    EXPECT_ERR(pn_eager_unary(PN_UN_COUNT, a, out_), PN_EVALUE, "unknown unary op");
    EXPECT_ERR(pn_eager_unary(PN_UN_EXP, iv, out_), PN_ETYPE, "unary on int32");

    int ax[3] = {0, 0, 1}, neg[1] = {-3}, big[1] = {2};
    EXPECT_ERR(pn_eager_reduce(PN_RED_SUM, a, 2, ax, 0, out_), PN_EVALUE, "repeated axis");
    EXPECT_ERR(pn_eager_reduce(PN_RED_SUM, a, 2, ax + 1, 0, out_), 0, "axes 0, 1 are fine");
    int ax2[2] = {-2, 0};
    EXPECT_ERR(pn_eager_reduce(PN_RED_SUM, a, 2, ax2, 0, out_), PN_EVALUE, "-2 repeats 0");
    EXPECT_ERR(pn_eager_reduce(PN_RED_SUM, a, 1, neg, 0, out_), PN_EVALUE, "axis -3 of rank 2");
    EXPECT_ERR(pn_eager_reduce(PN_RED_SUM, a, 1, big, 0, out_), PN_EVALUE, "axis 2 of rank 2");
    EXPECT_ERR(pn_eager_reduce(PN_RED_SUM, c, 1, ax, 0, out_), PN_EVALUE, "axis 0 of a scalar");
    EXPECT_ERR(pn_eager_reduce(PN_RED_SUM, a, 3, ax, 0, out_), PN_EVALUE, "3 axes of rank 2");
    EXPECT_ERR(pn_eager_reduce(PN_RED_SUM, a, -1, ax, 0, out_), PN_EVALUE, "-1 axes");
    EXPECT_ERR(pn_eager_reduce(PN_RED_SUM, a, 1, NULL, 0, out_), PN_EVALUE, "NULL axes");
    EXPECT_ERR(pn_eager_reduce(PN_RED_COUNT, a, 0, NULL, 0, out_), PN_EVALUE, "unknown reduce");
    EXPECT_ERR(pn_eager_reduce(PN_RED_MEAN, iv, 0, NULL, 0, out_), PN_ETYPE, "reduce int32");

    EXPECT_ERR(pn_eager_matmul(a, a, out_), PN_ESHAPE, "matmul (2,3) (2,3)");
    EXPECT_ERR(pn_eager_matmul(a, c, out_), PN_ESHAPE, "matmul with a scalar");
    EXPECT_ERR(pn_eager_matmul(iv, iv, out_), PN_ETYPE, "matmul int32");
    shp b1 = {3, {2, 3, 4}}, b2 = {3, {3, 4, 5}};
    pn_value *m1 = mk(b1, 1, UNIFORM, 0), *m2 = mk(b2, 1, UNIFORM, 0);
    EXPECT_ERR(pn_eager_matmul(m1, m2, out_), PN_ESHAPE, "batch axes 2 and 3");
    pn_value_release(m1);
    pn_value_release(m2);

    EXPECT_ERR(pn_eager_softmax(a, 2, 0, out_), PN_EVALUE, "softmax axis 2 of rank 2");
    EXPECT_ERR(pn_eager_softmax(a, -3, 1, out_), PN_EVALUE, "log_softmax axis -3 of rank 2");
    EXPECT_ERR(pn_eager_softmax(c, 0, 0, out_), PN_EVALUE, "softmax of a scalar");
    EXPECT_ERR(pn_eager_softmax(iv, 0, 0, out_), PN_ETYPE, "softmax of int32");

    /* slices: every index touched must lie in the axis */
    int64_t one[2] = {1, 1}, zero[2] = {0, 0};
    struct {
        int64_t start[2], step[2], count[2];
        unsigned drop;
        const char *what;
    } bad[] = {
        {{2, 0}, {1, 1}, {1, 3}, 0, "start 2 of an axis of 2"},
        {{-1, 0}, {1, 1}, {1, 3}, 0, "start -1"},
        {{0, 0}, {1, 2}, {2, 3}, 0, "last index 4 of an axis of 3"},
        {{0, 2}, {1, 1}, {2, 2}, 0, "last index 3 of an axis of 3, step 1"},
        {{0, 0}, {1, -1}, {2, 2}, 0, "last index -1, step -1"},
        {{0, 2}, {1, -1}, {2, 4}, 0, "last index -1"},
        {{0, 0}, {1, INT64_MAX}, {2, 2}, 0, "a huge step"},
        {{0, 2}, {1, INT64_MIN}, {2, 2}, 0, "a huge negative step"},
        {{0, 0}, {1, 0}, {2, 3}, 0, "step 0"},
        {{0, 0}, {1, 1}, {2, -1}, 0, "negative count"},
        {{0, 0}, {1, 1}, {2, 4}, 0, "count 4 of an axis of 3"},
        {{0, 0}, {1, 1}, {2, 3}, 1u, "a dropped axis with count 2"},
        {{0, 0}, {1, 1}, {2, 3}, 4u, "a drop bit beyond the rank"},
        {{5, 0}, {1, 1}, {1, 3}, 1u, "an integer index out of range"},
        {{0, 0}, {1, 1}, {INT64_MAX, 3}, 0, "a huge count"},
    };
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++)
        EXPECT_ERR(pn_eager_slice(a, bad[k].start, bad[k].step, bad[k].count, bad[k].drop, out_),
                   PN_EVALUE, "slice: %s", bad[k].what);
    int64_t cnt0[2] = {0, 0};
    EXPECT_ERR(pn_eager_slice(a, zero, one, cnt0, 0, out_), 0, "count 0 from 0 is fine");
    EXPECT_ERR(pn_eager_slice(a, NULL, one, cnt0, 0, out_), PN_EVALUE, "NULL start");
    EXPECT_ERR(pn_eager_slice(iv, zero, one, one, 0, out_), PN_ETYPE, "slice int32");

    int64_t r5[1] = {5}, rneg[2] = {-1, -6}, rbig[3] = {INT64_MAX / 2, 4, 0}, rov[2] = {INT64_MAX / 2, 4};
    EXPECT_ERR(pn_eager_reshape(a, 1, r5, out_), PN_ESHAPE, "reshape 6 values to 5");
    EXPECT_ERR(pn_eager_reshape(a, 2, rneg, out_), PN_EVALUE, "reshape with -1");
    EXPECT_ERR(pn_eager_reshape(a, 2, rov, out_), PN_ESHAPE, "reshape to an overflowing shape");
    EXPECT_ERR(pn_eager_reshape(a, 3, rbig, out_), PN_ESHAPE, "reshape 6 values to 0");
    EXPECT_ERR(pn_eager_reshape(a, PN_MAX_DIMS + 1, r5, out_), PN_EVALUE, "reshape rank 9");
    EXPECT_ERR(pn_eager_reshape(a, -1, r5, out_), PN_EVALUE, "reshape rank -1");
    EXPECT_ERR(pn_eager_reshape(a, 1, NULL, out_), PN_EVALUE, "reshape NULL dims");
    EXPECT_ERR(pn_eager_reshape(iv, 1, s4.d, out_), PN_ETYPE, "reshape int32");

    int p00[2] = {0, 0}, p02[2] = {0, 2}, pm[2] = {-1, 0};
    EXPECT_ERR(pn_eager_transpose(a, p00, out_), PN_EVALUE, "transpose (0, 0)");
    EXPECT_ERR(pn_eager_transpose(a, p02, out_), PN_EVALUE, "transpose (0, 2)");
    EXPECT_ERR(pn_eager_transpose(a, pm, out_), PN_EVALUE, "transpose (-1, 0)");
    EXPECT_ERR(pn_eager_transpose(a, NULL, out_), PN_EVALUE, "transpose NULL");
    EXPECT_ERR(pn_eager_transpose(iv, p00, out_), PN_ETYPE, "transpose int32");

    pn_value_release(a);
    pn_value_release(b);
    pn_value_release(c);
    pn_value_release(iv);
}

/* big tensors: the threaded paths of a same-shape op, a bias row and their gradients */
/* ---- selection, indexing and ordering (ops_select.c, through pn_eager_math_op) -------------- */

typedef struct {
    int op, iattr[PN_MAX_ATTRS];
    float fattr[PN_MAX_ATTRS];
    int n;
} sel_ctx;

static int run_sel(pn_value *const *in, const void *ctx, pn_value **out) {
    const sel_ctx *c = ctx;
    return pn_eager_math_op(c->op, c->n, in, c->iattr, c->fattr, out);
}

static pn_value *vals(int nd, const int64_t *d, const float *v, int rg) {
    pn_value *x = NULL;
    pn_value_create(&x, nd, d, PN_F32, v);
    if (rg) pn_value_set_requires_grad(x, 1);
    return x;
}

static pn_value *ints(int nd, const int64_t *d, const int32_t *v) {
    pn_value *x = NULL;
    pn_value_create(&x, nd, d, PN_I32, v);
    return x;
}

static int same_floats(const pn_value *o, const float *want, int64_t n) {
    if (pn_value_size(o) != n) return 0;
    const float *z = pn_value_data((pn_value *)o);
    for (int64_t i = 0; i < n; i++)
        if (!(z[i] == want[i] || (isnan(z[i]) && isnan(want[i])))) return 0;
    return 1;
}

static void test_select_binary(void) {
    /* NaN: unequal to everything, true as a truth value */
    int64_t d2[1] = {2};
    float av[2] = {NAN, 0.0f}, bv[2] = {NAN, 0.0f};
    pn_value *a = vals(1, d2, av, 0), *b = vals(1, d2, bv, 0), *o;
    static const float want[][2] = {{0, 1}, {1, 0}, {0, 0}, {0, 1}, {0, 0}, {0, 1},
                                    {1, 0}, {1, 0}, {0, 0}};
    for (int op = PN_BIN_EQUAL; op <= PN_BIN_LOGICAL_XOR; op++) {
        CHECK(pn_eager_binary(op, a, b, &o) == 0 && same_floats(o, want[op - PN_BIN_EQUAL], 2),
              "%s with NaN", bin_name[op]);
        pn_value_release(o);
    }
    pn_value_release(a);
    pn_value_release(b);
    /* floor_divide and mod: Python's signs; dmod/dy = -floor(x / y) */
    int64_t d4[1] = {4};
    float x4[4] = {7, -7, 7, -7}, y4[4] = {2, 2, -2, -2};
    float fd[4] = {3, -4, -4, 3}, md[4] = {1, 1, -1, -1};
    a = vals(1, d4, x4, 1);
    b = vals(1, d4, y4, 1);
    CHECK(pn_eager_binary(PN_BIN_FLOOR_DIVIDE, a, b, &o) == 0 && same_floats(o, fd, 4),
          "floor_divide signs");
    pn_value_release(o);
    CHECK(pn_eager_binary(PN_BIN_MOD, a, b, &o) == 0 && same_floats(o, md, 4), "mod signs");
    float ones[4] = {1, 1, 1, 1};
    pn_value_backward(o, ones);
    const float *ga = pn_value_grad(a), *gb = pn_value_grad(b);
    CHECK(ga && gb && ga[0] == 1 && ga[3] == 1 && gb[0] == -3 && gb[1] == 4 && gb[2] == 4 &&
          gb[3] == -3, "mod gradients");
    pn_value_release(o);
    pn_value_release(a);
    pn_value_release(b);
    /* unary tests of special values */
    int64_t d5[1] = {5};
    float sv[5] = {NAN, INFINITY, -0.0f, 0.0f, -2.0f};
    static const float uw[5][5] = {{0, 0, 1, 1, 0}, {1, 0, 0, 0, 0}, {0, 1, 0, 0, 0},
                                   {0, 0, 1, 1, 1}, {0, 0, 1, 0, 1}};
    a = vals(1, d5, sv, 0);
    for (int op = PN_UN_LOGICAL_NOT; op <= PN_UN_SIGNBIT; op++) {
        CHECK(pn_eager_unary(op, a, &o) == 0 && same_floats(o, uw[op - PN_UN_LOGICAL_NOT], 5),
              "unary %d on special values", op);
        pn_value_release(o);
    }
    pn_value_release(a);
    /* prod with zeros: one zero gives that element the product of the rest; two give none */
    int64_t d23[2] = {2, 3};
    float pv[6] = {2, 0, 3, 0, 4, 0};
    a = vals(2, d23, pv, 1);
    int last[1] = {1};
    CHECK(pn_eager_reduce(PN_RED_PROD, a, 1, last, 0, &o) == 0, "prod with zeros");
    float g2[2] = {1, 1};
    pn_value_backward(o, g2);
    ga = pn_value_grad(a);
    CHECK(ga[0] == 0 && ga[1] == 6 && ga[2] == 0 && ga[3] == 0 && ga[4] == 0 && ga[5] == 0,
          "prod: gradients with zeros");
    pn_value_release(o);
    pn_value_release(a);
}

static void test_where(void) {
    int64_t dc[2] = {3, 1}, da[1] = {4}, db[2] = {3, 4};
    float cv[3] = {1, 0, -2}, av[4] = {1, 2, 3, 4}, bv[12];
    for (int i = 0; i < 12; i++) bv[i] = -(float)i;
    pn_value *in[3] = {vals(2, dc, cv, 0), vals(1, da, av, 1), vals(2, db, bv, 1)}, *o;
    sel_ctx c = {.op = PN_OP_WHERE, .n = 3};
    CHECK(run_sel(in, &c, &o) == 0 && pn_value_ndim(o) == 2 && pn_value_dims(o)[1] == 4,
          "where: shape");
    float want[12];
    for (int r = 0; r < 3; r++)
        for (int j = 0; j < 4; j++) want[r * 4 + j] = cv[r] != 0 ? av[j] : bv[r * 4 + j];
    CHECK(same_floats(o, want, 12), "where: values");
    pn_value_release(o);
    gradcheck("where", run_sel, &c, 3, in, 1e-2f);
    /* an inf in the branch not taken does not reach the result or the gradient */
    av[0] = INFINITY;
    pn_value *inf_a = vals(1, da, av, 1), *in2[3] = {in[0], inf_a, in[2]};
    CHECK(run_sel(in2, &c, &o) == 0 && isfinite(((float *)pn_value_data(o))[4]), "where: inf");
    pn_value_release(o);
    int64_t bad[1] = {5};
    pn_value *bb = vals(1, bad, bv, 0), *in3[3] = {in[0], in[1], bb};
    o = NULL;
    CHECK(run_sel(in3, &c, &o) == PN_ESHAPE && !o, "where: shapes that do not broadcast");
    pn_value_release(bb);
    pn_value_release(inf_a);
    for (int k = 0; k < 3; k++) pn_value_release(in[k]);
}

static void test_gather(void) {
    int64_t dx[2] = {3, 4}, di[2] = {2, 2};
    float xv[12];
    for (int i = 0; i < 12; i++) xv[i] = (float)i * 0.5f - 2.0f;
    int32_t iv[4] = {2, -1, 0, 2}; /* -1 is 3 on axis 1, 2 on axis 0 */
    pn_value *x = vals(2, dx, xv, 1), *idx = ints(2, di, iv), *in[2] = {x, idx}, *o;
    /* take along axis 1: (3, 2, 2) */
    sel_ctx c = {.op = PN_OP_GATHER, .n = 2, .iattr = {0, 1}};
    CHECK(run_sel(in, &c, &o) == 0 && pn_value_ndim(o) == 3 && pn_value_dims(o)[0] == 3,
          "take axis 1: shape");
    float want[16];
    for (int r = 0; r < 3; r++)
        for (int k = 0; k < 4; k++) want[r * 4 + k] = xv[r * 4 + (iv[k] + 4) % 4];
    CHECK(same_floats(o, want, 12), "take axis 1: values");
    pn_value_release(o);
    gradcheck("take axis 1 (repeated indices)", run_sel, &c, 2, in, 1e-2f);
    /* take along axis 0 */
    c.iattr[1] = 0;
    CHECK(run_sel(in, &c, &o) == 0 && pn_value_dims(o)[2] == 4, "take axis 0: shape");
    for (int k = 0; k < 4; k++)
        for (int j = 0; j < 4; j++) want[k * 4 + j] = xv[((iv[k] + 3) % 3) * 4 + j];
    CHECK(same_floats(o, want, 16), "take axis 0: values");
    pn_value_release(o);
    gradcheck("take axis 0", run_sel, &c, 2, in, 1e-2f);
    /* out of range: an error, no result, nothing read */
    int32_t badv[4] = {0, 3, -4, 1};
    pn_value *bad = ints(2, di, badv), *inb[2] = {x, bad};
    o = NULL;
    CHECK(run_sel(inb, &c, &o) == PN_EVALUE && !o, "take: index 3 of 3 rows is an error");
    CHECK(strstr(pn_last_error(), "out of bounds") != NULL, "take: the message says why");
    pn_value_release(bad);
    /* take_along_axis: indices (3, 2) along axis 1 */
    int64_t da[2] = {3, 2};
    int32_t av[6] = {3, 0, -1, 1, 2, 2};
    pn_value *ai = ints(2, da, av), *ina[2] = {x, ai};
    sel_ctx ca = {.op = PN_OP_GATHER, .n = 2, .iattr = {1, 1}};
    CHECK(run_sel(ina, &ca, &o) == 0 && pn_value_dims(o)[1] == 2, "take_along_axis: shape");
    for (int r = 0; r < 3; r++)
        for (int k = 0; k < 2; k++) want[r * 2 + k] = xv[r * 4 + (av[r * 2 + k] + 4) % 4];
    CHECK(same_floats(o, want, 6), "take_along_axis: values");
    pn_value_release(o);
    gradcheck("take_along_axis", run_sel, &ca, 2, ina, 1e-2f);
    av[0] = 4;
    pn_value *ab = ints(2, da, av), *inab[2] = {x, ab};
    o = NULL;
    CHECK(run_sel(inab, &ca, &o) == PN_EVALUE && !o, "take_along_axis: index 4 of 4");
    pn_value_release(ab);
    pn_value_release(ai);
    /* float indices are refused */
    pn_value *inf[2] = {x, x};
    CHECK(run_sel(inf, &c, &o) == PN_ETYPE, "take: float indices are a type error");
    pn_value_release(idx);
    pn_value_release(x);
}

static void test_cumulative_sort_pad(void) {
    int64_t d[2] = {3, 4};
    float xv[12] = {0.5f, -1.2f, 0.8f, 1.5f, -0.7f, 0.0f, 1.1f, 0.9f, 1.3f, -0.6f, 0.4f, -1.4f};
    pn_value *x = vals(2, d, xv, 1), *o;
    const int32_t *pi;
    for (int prod = 0; prod < 2; prod++)
        for (int axis = 0; axis < 2; axis++) {
            sel_ctx c = {.op = PN_OP_CUMULATIVE, .n = 1, .iattr = {prod, axis}};
            CHECK(run_sel(&x, &c, &o) == 0, "cumulative");
            double want[12];
            for (int r = 0; r < 3; r++)
                for (int j = 0; j < 4; j++) {
                    double acc = prod ? 1 : 0;
                    for (int k = 0; k <= (axis ? j : r); k++) {
                        float v = axis ? xv[r * 4 + k] : xv[k * 4 + j];
                        acc = prod ? acc * v : acc + v;
                    }
                    want[r * 4 + j] = acc;
                }
            CHECK(elem_rel_err(pn_value_data(o), want, 12) < 1e-6, "cum%s axis %d",
                  prod ? "prod" : "sum", axis);
            pn_value_release(o);
            gradcheck(prod ? "cumprod (a zero)" : "cumsum", run_sel, &c, 1, &x, 1e-2f);
        }
    /* sort, argsort (ascending and descending), with a NaN last (first when descending) */
    float sv[5] = {0.3f, NAN, -1.0f, 2.0f, 0.3f};
    int64_t d5[1] = {5};
    pn_value *s = vals(1, d5, sv, 1);
    sel_ctx cs = {.op = PN_OP_SORT, .n = 1, .iattr = {0, 0, 0}};
    float asc[5] = {-1.0f, 0.3f, 0.3f, 2.0f, NAN};
    CHECK(run_sel(&s, &cs, &o) == 0 && same_floats(o, asc, 5), "sort ascending, NaN last");
    float g5[5] = {1, 2, 3, 4, 5};
    pn_value_backward(o, g5);
    const float *gs = pn_value_grad(s);
    CHECK(gs[2] == 1 && gs[0] == 2 && gs[4] == 3 && gs[3] == 4 && gs[1] == 5,
          "sort: the gradient follows the permutation (ties stable)");
    pn_value_release(o);
    cs.iattr[1] = 1;
    cs.iattr[2] = 1;
    CHECK(run_sel(&s, &cs, &o) == 0 && pn_value_dtype(o) == PN_I32 && !pn_value_requires_grad(o),
          "argsort: int32, no gradient");
    pi = pn_value_data(o);
    CHECK(pi[0] == 1 && pi[1] == 3 && pi[2] == 0 && pi[3] == 4 && pi[4] == 2,
          "argsort descending: NaN first, ties in order");
    pn_value_release(o);
    pn_value_release(s);
    sel_ctx c2 = {.op = PN_OP_SORT, .n = 1, .iattr = {0, 0, 1}};
    gradcheck("sort along axis 0", run_sel, &c2, 1, &x, 1e-3f);
    /* top_k: the first k of a descending sort, values with a gradient and int32 indices */
    sel_ctx ck = {.op = PN_OP_SORT, .n = 1, .iattr = {1, 0, 1, 2}};
    float top[6] = {1.5f, 0.8f, 1.1f, 0.9f, 1.3f, 0.4f};
    CHECK(run_sel(&x, &ck, &o) == 0 && pn_value_dims(o)[1] == 2 && same_floats(o, top, 6),
          "top_k values");
    pn_value_release(o);
    gradcheck("top_k", run_sel, &ck, 1, &x, 1e-2f);
    ck.iattr[1] = 1;
    CHECK(run_sel(&x, &ck, &o) == 0 && pn_value_dtype(o) == PN_I32, "top_k indices");
    pi = pn_value_data(o);
    CHECK(pi[0] == 3 && pi[1] == 2 && pi[2] == 2 && pi[3] == 3 && pi[4] == 0 && pi[5] == 2,
          "top_k indices' values");
    pn_value_release(o);
    ck.iattr[3] = 5;
    o = NULL;
    CHECK(run_sel(&x, &ck, &o) == PN_EVALUE && !o, "top_k: k beyond the axis");
    /* argmax / argmin: the first extreme, a NaN wins */
    sel_ctx cm = {.op = PN_OP_ARG_REDUCE, .n = 1, .iattr = {1, 0, 0}};
    CHECK(run_sel(&x, &cm, &o) == 0 && pn_value_ndim(o) == 1 && pn_value_dtype(o) == PN_I32,
          "argmax: shape");
    pi = pn_value_data(o);
    CHECK(pi[0] == 3 && pi[1] == 2 && pi[2] == 0, "argmax values");
    pn_value_release(o);
    cm.iattr[1] = 1;
    cm.iattr[2] = 1;
    CHECK(run_sel(&x, &cm, &o) == 0 && pn_value_ndim(o) == 2, "argmin keepdims");
    pi = pn_value_data(o);
    CHECK(pi[0] == 1 && pi[1] == 0 && pi[2] == 3, "argmin values");
    pn_value_release(o);
    /* pad: constant, reflect and symmetric, against NumPy's results */
    static const float pads[3][3 * 7] = { /* np.pad(x, ((1, 0), (2, 1)), mode) */
        {9, 9, 9, 9, 9, 9, 9, 9, 9, 0.5f, -1.2f, 0.80000001f, 1.5f, 9, 9, 9, -0.69999999f,
         0, 1.1f, 0.89999998f, 9},
        {1.1f, 0, -0.69999999f, 0, 1.1f, 0.89999998f, 1.1f, 0.80000001f, -1.2f, 0.5f, -1.2f,
         0.80000001f, 1.5f, 0.80000001f, 1.1f, 0, -0.69999999f, 0, 1.1f, 0.89999998f, 1.1f},
        {-1.2f, 0.5f, 0.5f, -1.2f, 0.80000001f, 1.5f, 1.5f, -1.2f, 0.5f, 0.5f, -1.2f,
         0.80000001f, 1.5f, 1.5f, 0, -0.69999999f, -0.69999999f, 0, 1.1f, 0.89999998f,
         0.89999998f},
    };
    int64_t d24[2] = {2, 4};
    pn_value *x2 = vals(2, d24, xv, 1);
    for (int mode = 0; mode < 3; mode++) {
        sel_ctx cp = {.op = PN_OP_PAD, .n = 1, .iattr = {mode, 1, 0, 2, 1}, .fattr = {9}};
        CHECK(run_sel(&x2, &cp, &o) == 0 && pn_value_dims(o)[0] == 3 && pn_value_dims(o)[1] == 7,
              "pad mode %d: shape", mode);
        CHECK(same_floats(o, pads[mode], 21), "pad mode %d: values", mode);
        pn_value_release(o);
        cp.iattr[3] = 6; /* wider than the axis: reflected again */
        gradcheck("pad", run_sel, &cp, 1, &x2, 1e-2f);
    }
    sel_ctx cn = {.op = PN_OP_PAD, .n = 1, .iattr = {0, -1, 0, 0, 0}};
    o = NULL;
    CHECK(run_sel(&x2, &cn, &o) == PN_EVALUE && !o, "pad: a negative width is refused");
    pn_value_release(x2);
    pn_value_release(x);
}

static void test_big(void) {
    shp s = {2, {300, 300}}, row = {1, {300}};
    pn_value *a = mk(s, 1, UNIFORM, 1), *b = mk(s, 2, UNIFORM, 1), *r = mk(row, 3, UNIFORM, 1);
    pn_value *ab, *ar;
    CHECK(pn_eager_binary(PN_BIN_MUL, a, b, &ab) == 0, "big mul");
    CHECK(pn_eager_binary(PN_BIN_ADD, ab, r, &ar) == 0, "big add of a row");
    const float *x = pn_value_data(a), *y = pn_value_data(b), *z = pn_value_data(r);
    const float *o = pn_value_data(ar);
    int ok = 1;
    for (int i = 0; i < 300 * 300; i++) ok &= o[i] == x[i] * y[i] + z[i % 300];
    CHECK(ok, "big (a * b) + row");
    float *seed = malloc(300 * 300 * sizeof(float));
    unsigned s0 = 5;
    for (int i = 0; i < 300 * 300; i++) seed[i] = frand(&s0);
    CHECK(pn_value_backward(ar, seed) == 0, "big backward");
    const float *ga = pn_value_grad(a), *gr = pn_value_grad(r);
    for (int i = 0; i < 300 * 300; i++) ok &= ga[i] == seed[i] * y[i];
    CHECK(ok, "big: a's gradient");
    double worst = 0;
    for (int j = 0; j < 300; j++) {
        double sum = 0;
        for (int i = 0; i < 300; i++) sum += seed[i * 300 + j];
        worst = fmax(worst, fabs(sum - gr[j]));
    }
    CHECK(worst < 1e-3, "big: the row's gradient sums the columns (error %g)", worst);
    free(seed);
    pn_value_release(ar);
    pn_value_release(ab);
    pn_value_release(a);
    pn_value_release(b);
    pn_value_release(r);
}

int main(void) {
    pn_set_num_threads(4);
    test_big();
    test_binary_forward();
    test_binary_gradients();
    test_unary();
    test_reduce();
    test_matmul();
    test_softmax();
    test_slice();
    test_reshape_transpose();
    test_tape();
    test_errors();
    test_select_binary();
    test_where();
    test_gather();
    test_cumulative_sort_pad();
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
