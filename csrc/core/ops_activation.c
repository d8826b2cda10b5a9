/*
 * ops_activation.c: activations. Elementwise except softmax (over the last axis).
 * Each backward gets x (in[0]) and y (out) and writes or accumulates dx = dy * f'(x).
 * Keras 3 definitions: leaky_relu's default slope 0.2, elu's alpha 1, gelu exact unless asked.
 */
#include <math.h>

#include "internal.h"
#include "vmath.h"

static int act_shape(const pn_model *m, pn_node *n) {
    if (n->n_in != 1 || n->n_var != 0)
        return pn_error(PN_EVALUE, "%s: takes one input and no weights", pn_op_name(n->op));
    const pn_node *x = pn_input_node(m, n, 0);
    if (x->dtype != PN_F32) return pn_error(PN_ETYPE, "%s: input must be float32", pn_op_name(n->op));
    n->dtype = PN_F32;
    n->ndim = x->ndim;
    memcpy(n->shape, x->shape, sizeof n->shape);
    return PN_OK;
}

/* Defines NAME_forward and NAME_backward as one loop each over N = batch * size elements.
 * FWD computes y from x; GRAD computes f'(x) from x and y. a is fattr[0]. FLAGS tell the plan
 * what GRAD reads; ops whose GRAD reads y alone (PN_OPF_BWD_NO_IN) may run in place in training
 * too, so out may be inp and dinp may be dout: no restrict on them. */
#define ELEMENTWISE(NAME, FWD, GRAD, FLAGS)                                                       \
    static void NAME##_fwd(float *out, const float *inp, int64_t N, float a) {                    \
        (void)a;                                                                                  \
        PN_FOR_SIMD(N > PN_PAR_MIN, i, N, float x = inp[i]; out[i] = (FWD););                   \
    }                                                                                             \
    static void NAME##_bwd(float *dinp, const float *dout, const float *inp, const float *out,     \
                           int64_t N, float a, int acc) {                                         \
        (void)a, (void)inp, (void)out;                                                            \
        if (acc) /* two loops: a written gradient is not read first */                           \
            PN_FOR_SIMD(N > PN_PAR_MIN, i, N, float x = inp[i], y = out[i]; (void)x, (void)y;  \
                        dinp[i] += dout[i] * (GRAD););                                            \
        else                                                                                      \
            PN_FOR_SIMD(N > PN_PAR_MIN, i, N, float x = inp[i], y = out[i]; (void)x, (void)y;  \
                        dinp[i] = dout[i] * (GRAD););                                             \
    }                                                                                             \
    static void NAME##_forward(const pn_node *n, const pn_ctx *c) {                               \
        NAME##_fwd(c->out, c->in[0], c->batch * n->size, n->fattr[0]);                            \
    }                                                                                             \
    static void NAME##_backward(const pn_node *n, const pn_ctx *c) {                              \
        if (c->din[0])                                                                            \
            NAME##_bwd(c->din[0], c->dout, c->in[0], c->out, c->batch * n->size, n->fattr[0],     \
                       c->acc_in[0]);                                                             \
    }                                                                                             \
    const pn_op_def pn_op_##NAME##_def = {#NAME, act_shape, NAME##_forward, NAME##_backward, NULL, \
                                          (FLAGS) | PN_OPF_ACTIVATION};


#define SELU_ALPHA 1.67326324235437728481f
#define SELU_SCALE 1.05070098735548049342f
#define INV_SQRT2 0.70710678118654752440f
#define INV_SQRT_2PI 0.39894228040143267794f

/* y = x */
ELEMENTWISE(linear, x, 1.0f, PN_OPF_INPLACE | PN_OPF_BWD_NO_IN | PN_OPF_BWD_NO_OUT)
/* y = max(x, 0), NaN kept    y' = 1 where x > 0, which is where y > 0 */
ELEMENTWISE(relu, x <= 0.0f ? 0.0f : x, y > 0.0f ? 1.0f : 0.0f, PN_OPF_INPLACE | PN_OPF_BWD_NO_IN)
/* y = 1 / (1 + e^-x)          y' = y (1 - y) */
ELEMENTWISE(sigmoid, pn_sigmoid(x), y * (1.0f - y), PN_OPF_INPLACE | PN_OPF_BWD_NO_IN)
/* y = tanh x                  y' = 1 - y^2 */
ELEMENTWISE(tanh, pn_tanh(x), 1.0f - y * y, PN_OPF_INPLACE | PN_OPF_BWD_NO_IN)
/* y = x (x > 0), a x          y' = 1 or a */
ELEMENTWISE(leaky_relu, x > 0.0f ? x : a * x, x > 0.0f ? 1.0f : a, PN_OPF_INPLACE | PN_OPF_BWD_NO_OUT)
/* y = x (x > 0), a (e^x - 1)  y' = 1 or y + a */
ELEMENTWISE(elu, x > 0.0f ? x : a * expm1f(x), x > 0.0f ? 1.0f : y + a, PN_OPF_INPLACE)
/* y = s x (x > 0), s A (e^x - 1)   y' = s or y + s A */
ELEMENTWISE(selu, x > 0.0f ? SELU_SCALE * x : SELU_SCALE * SELU_ALPHA * expm1f(x),
            y > 0.0f ? SELU_SCALE : y + SELU_SCALE * SELU_ALPHA, PN_OPF_INPLACE | PN_OPF_BWD_NO_IN)
/* y = x sigmoid(x)            y' = s (1 + x (1 - s)) */
ELEMENTWISE(swish, x * pn_sigmoid(x), pn_sigmoid(x) * (1.0f + x * (1.0f - pn_sigmoid(x))),
            PN_OPF_INPLACE | PN_OPF_BWD_NO_OUT)
/* y = log(1 + e^x), computed as max(x, 0) + log1p(e^-|x|)     y' = sigmoid(x) */
ELEMENTWISE(softplus, fmaxf(x, 0.0f) + log1pf(expf(-fabsf(x))), pn_sigmoid(x),
            PN_OPF_INPLACE | PN_OPF_BWD_NO_OUT)

/* ---- gelu -----------------------------------------------------------------------------------
 * exact:  y = x Phi(x) = x/2 (1 + erf(x/sqrt2))        y' = Phi(x) + x phi(x)
 * tanh:   y = x/2 (1 + tanh(u)),  u = sqrt(2/pi) (x + 0.044715 x^3)
 *         y' = 1/2 (1 + t) + x/2 (1 - t^2) sqrt(2/pi) (1 + 3 0.044715 x^2)
 * iattr[0] = 1 selects the tanh form.
 */
#define GELU_K 0.79788456080286535588f /* sqrt(2/pi) */
#define GELU_C 0.044715f

static void gelu_forward(const pn_node *n, const pn_ctx *c) {
    int64_t N = c->batch * n->size;
    const float *inp = c->in[0]; /* may be out: gelu runs in place in inference */
    float *out = c->out;
    if (n->iattr[0]) {
        PN_FOR_SIMD(N > PN_PAR_MIN, i, N,
            float x = inp[i];
            out[i] = 0.5f * x * (1.0f + pn_tanh(GELU_K * (x + GELU_C * x * x * x)));
        );
    } else {
        PN_FOR_SIMD(N > PN_PAR_MIN, i, N,
            out[i] = 0.5f * inp[i] * (1.0f + pn_erf(inp[i] * INV_SQRT2));
        );
    }
}

static void gelu_backward(const pn_node *n, const pn_ctx *c) {
    float *restrict dinp = c->din[0];
    if (!dinp) return;
    int64_t N = c->batch * n->size;
    const float *restrict inp = c->in[0], *restrict dout = c->dout;
    /* four loops (form, accumulate or write): a written gradient is not read first, which saves
     * a quarter of the memory traffic of a pass that memory bounds */
    if (n->iattr[0]) {
#define GELU_TANH_GRAD(STORE)                                                                    \
        PN_FOR_SIMD(N > PN_PAR_MIN, i, N,                                                        \
            float x = inp[i];                                                                    \
            float t = pn_tanh(GELU_K * (x + GELU_C * x * x * x));                                \
            float g = 0.5f * (1.0f + t) +                                                        \
                      0.5f * x * (1.0f - t * t) * GELU_K * (1.0f + 3.0f * GELU_C * x * x);       \
            dinp[i] STORE dout[i] * g;                                                           \
        )
        if (c->acc_in[0]) GELU_TANH_GRAD(+=);
        else GELU_TANH_GRAD(=);
#undef GELU_TANH_GRAD
    } else {
#define GELU_ERF_GRAD(STORE)                                                                     \
        PN_FOR_SIMD(N > PN_PAR_MIN, i, N,                                                        \
            float x = inp[i], u = x * INV_SQRT2;                                                 \
            float g = 0.5f * (1.0f + pn_erf(u)) + x * INV_SQRT_2PI * pn_exp(-u * u);             \
            dinp[i] STORE dout[i] * g;                                                           \
        )
        if (c->acc_in[0]) GELU_ERF_GRAD(+=);
        else GELU_ERF_GRAD(=);
#undef GELU_ERF_GRAD
    }
}

const pn_op_def pn_op_gelu_def = {"gelu", act_shape, gelu_forward, gelu_backward, NULL,
                                  PN_OPF_INPLACE | PN_OPF_BWD_NO_OUT | PN_OPF_ACTIVATION};

/* ---- softmax over the last axis (C values per row) ------------------------------------------
 * y = e^(x - max) / sum e^(x - max)        dx = y (dy - sum(dy y))
 */
static void softmax_row(float *restrict y, const float *restrict x, int64_t C) {
    float mx = x[0];
    for (int64_t j = 1; j < C; j++) mx = fmaxf(mx, x[j]);
    float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
    for (int64_t j = 0; j < C; j++) {
        y[j] = pn_exp(x[j] - mx);
        sum += y[j];
    }
    float inv = 1.0f / sum;
    for (int64_t j = 0; j < C; j++) y[j] *= inv;
}

static void softmax_rows(float *restrict out, const float *restrict inp, int64_t R, int64_t C) {
    PN_FOR(R * C > PN_PAR_MIN, r, R, softmax_row(out + r * C, inp + r * C, C););
}

static void softmax_forward(const pn_node *n, const pn_ctx *c) {
    int64_t C = n->shape[n->ndim - 1];
    softmax_rows(c->out, c->in[0], c->batch * (n->size / C), C);
}

static void softmax_backward(const pn_node *n, const pn_ctx *c) {
    float *restrict dinp = c->din[0];
    if (!dinp) return;
    int64_t C = n->shape[n->ndim - 1], R = c->batch * (n->size / C);
    const float *restrict y = c->out, *restrict dout = c->dout;
    int acc = c->acc_in[0];
    PN_FOR(R * C > PN_PAR_MIN, r, R,
        const float *yr = y + r * C, *dr = dout + r * C;
        float *dx = dinp + r * C;
        float dot = 0.0f;
        for (int64_t j = 0; j < C; j++) dot += dr[j] * yr[j];
        for (int64_t j = 0; j < C; j++) {
            float d = yr[j] * (dr[j] - dot);
            dx[j] = acc ? dx[j] + d : d;
        }
    );
}

const pn_op_def pn_op_softmax_def = {"softmax", act_shape, softmax_forward, softmax_backward, NULL,
                                     PN_OPF_BWD_NO_IN | PN_OPF_ACTIVATION};

/* ---- applying one activation to a plain array (pynn.activations on NumPy data) -------------- */

int pn_activation_find(const char *name) {
    int op = pn_op_find(name);
    return op >= 0 && (pn_op_table[op]->flags & PN_OPF_ACTIVATION) ? op : -1;
}

int pn_activation_apply(int op, const float *fattr, const int *iattr, float *out, const float *inp,
                        int64_t rows, int64_t cols) {
    if (op < 0 || op >= PN_OP_COUNT || !(pn_op_table[op]->flags & PN_OPF_ACTIVATION))
        return pn_error(PN_EVALUE, "op %d is not an activation", op);
    if (rows < 0 || cols < 1) return pn_error(PN_ESHAPE, "activation: bad shape (%lld, %lld)",
                                              (long long)rows, (long long)cols);
    pn_node n = {.op = op, .n_in = 1, .dtype = PN_F32, .ndim = 1, .shape = {cols}, .size = cols};
    n.fattr[0] = fattr ? fattr[0] : 0.0f; /* an activation has at most one attribute of each */
    n.iattr[0] = iattr ? iattr[0] : 0;
    pn_ctx c = {.batch = rows, .in = {inp}, .out = out};
    pn_op_table[op]->forward(&n, &c);
    return PN_OK;
}
