/*
 * ops_spectral.c: spectral_norm, Keras 3's SpectralNormalization (Miyato et al., 2018) as one
 * unbatched scalar s: the wrapped layer computes with W / sigma, and since it is linear in its
 * input before its bias (Dense, the convolutions, EinsumDense: f(x, W / sigma) = f(x s, W)),
 * pynn multiplies its input by s and runs the layer unchanged, kernel, bias and activation; an
 * Embedding's output is multiplied instead (take(W / sigma) = take(W) s).
 *
 * Attributes:
 *   spectral_norm  iattr [0] power_iterations >= 1
 *                  fattr [0] epsilon > 0 of the l2 normalisations (Keras's backend.epsilon(), 1e-7)
 *                  vars  kernel W (any shape; its last axis has the U units, seen as (R, U)),
 *                        vector_u (U values, Keras's (1, U)), written in training
 *                  no inputs; the output is a scalar without a batch axis
 *
 * Keras's call, as its JAX backend runs it (keras/src/layers/normalization/spectral_normalization.py):
 *   training:  u = vector_u; power_iterations times: v = l2n(u W^T) (R), u = l2n(v W) (U),
 *              l2n(x) = x min(1 / |x|, 1 / eps); sigma = v W u^T with u and v constant
 *              (stop_gradient); vector_u = u; the layer runs with W / sigma.
 *     fit:     (a step of fit or train_on_batch, c->eager 0) Keras's kernel.assign(W / sigma)
 *              inside a stateless step is dropped: W stays, s = 1 / sigma, and
 *              ds/dW = -v^T u / sigma^2, so dW += ds_grad (-v^T u / sigma^2) beside the layer's
 *              own s dL/d(W s).
 *     eager:   (a model called on values, c->eager 1) the kernel is assigned: W = W / sigma,
 *              s = 1, and the layer's gradient reaches the assigned kernel directly (as Keras's
 *              TensorFlow and PyTorch backends, whose tapes do not see the assignment).
 *     W all zeros: nothing changes and s = 1 (Keras's ops.cond keeps vector_u and the kernel).
 *   inference: s = 1, nothing written.
 *
 * Scratch (floats): sums t (U doubles, first: the arena is 64-byte aligned), v (R), u (U),
 * sigma, and whether backward has a gradient to give (1) or not (0).
 */
#include <math.h>

#include "internal.h"

typedef struct {
    int64_t R, U;
} sn_dims;

static sn_dims sn_dims_of(const pn_var *w) {
    sn_dims d = {.U = w->shape[w->ndim - 1]};
    d.R = d.U > 0 ? w->size / d.U : 0;
    return d;
}

typedef struct {
    double *t;       /* (U) */
    float *v, *u;    /* (R), (U) */
    float *sigma;    /* 1 */
    float *has_grad; /* 1 */
} sn_scratch_ptrs;

static sn_scratch_ptrs sn_scratch_get(float *scratch, sn_dims d) {
    sn_scratch_ptrs s;
    s.t = (double *)(void *)scratch;
    s.v = (float *)(void *)(s.t + d.U);
    s.u = s.v + d.R;
    s.sigma = s.u + d.U;
    s.has_grad = s.sigma + 1;
    return s;
}

static int64_t sn_scratch(const pn_model *m, const pn_node *n, int64_t batch, int training) {
    (void)batch, (void)training;
    sn_dims d = sn_dims_of(&m->vars[n->var[0]]);
    return 2 * d.U + d.R + d.U + 2;
}

static int sn_shape(const pn_model *m, pn_node *n) {
    if (n->n_in != 0 || n->n_var != 2)
        return pn_error(PN_EVALUE, "spectral_norm: takes no input and two variables (kernel, "
                        "vector_u), got %d inputs and %d variables", n->n_in, n->n_var);
    const pn_var *w = &m->vars[n->var[0]], *u = &m->vars[n->var[1]];
    if (w->ndim < 1 || w->size < 1)
        return pn_error(PN_ESHAPE, "spectral_norm: the kernel must have at least one axis and "
                        "one value, got rank %d with %lld values", w->ndim, (long long)w->size);
    int64_t U = w->shape[w->ndim - 1];
    if (u->size != U || u->ndim < 1 || u->shape[u->ndim - 1] != U)
        return pn_error(PN_ESHAPE, "spectral_norm: vector_u must have shape (1, %lld) for a "
                        "kernel of %lld units, got rank %d with %lld values", (long long)U,
                        (long long)U, u->ndim, (long long)u->size);
    if (n->iattr[0] < 1)
        return pn_error(PN_EVALUE, "spectral_norm: power_iterations must be >= 1, got %d",
                        n->iattr[0]);
    float eps = n->fattr[0];
    if (!(eps > 0.0f) || isinf(eps))
        return pn_error(PN_EVALUE, "spectral_norm: epsilon must be finite and > 0, got %g", eps);
    n->dtype = PN_F32;
    n->unbatched = 1;
    n->ndim = 0;
    return PN_OK;
}

/* x (n) = t (n) min(1 / |t|, 1 / eps), Keras's l2 normalisation (ops.normalize, axis=None) */
static void sn_l2n(float *restrict x, const double *restrict t, int64_t n, double eps) {
    double ss = 0.0;
    for (int64_t i = 0; i < n; i++) ss += t[i] * t[i];
    float inv = (float)fmin(1.0 / sqrt(ss), 1.0 / eps); /* 1/0 = inf: the bound */
    for (int64_t i = 0; i < n; i++) x[i] = (float)t[i] * inv;
}

/* t (U) = v (R) W (R, U): rows of W added in order, unit stride */
static void sn_vw(double *restrict t, const float *restrict v, const float *restrict w,
                  sn_dims d) {
    for (int64_t j = 0; j < d.U; j++) t[j] = 0.0;
    for (int64_t r = 0; r < d.R; r++) {
        const float *restrict wr = w + r * d.U;
        const double vr = v[r];
        for (int64_t j = 0; j < d.U; j++) t[j] += vr * wr[j];
    }
}

/* One power iteration after another: v, u, and sigma = v W u^T; the new u in s.u. */
static float sn_sigma(sn_scratch_ptrs s, const float *w, const float *u0, sn_dims d, int iters,
                      double eps) {
    memcpy(s.u, u0, (size_t)d.U * sizeof(float));
    for (int it = 0; it < iters; it++) {
        /* v = l2n(u W^T): t_r = W[r, :] . u, kept in place of v before it is normalised */
        double ss = 0.0;
        for (int64_t r = 0; r < d.R; r++) {
            const float *restrict wr = w + r * d.U;
            double acc = 0.0;
            for (int64_t j = 0; j < d.U; j++) acc += (double)wr[j] * s.u[j];
            s.v[r] = (float)acc;
            ss += (double)s.v[r] * s.v[r];
        }
        float inv = (float)fmin(1.0 / sqrt(ss), 1.0 / eps);
        for (int64_t r = 0; r < d.R; r++) s.v[r] *= inv;
        sn_vw(s.t, s.v, w, d); /* u = l2n(v W) */
        sn_l2n(s.u, s.t, d.U, eps);
    }
    sn_vw(s.t, s.v, w, d);
    double sigma = 0.0;
    for (int64_t j = 0; j < d.U; j++) sigma += (double)(float)s.t[j] * s.u[j];
    return (float)sigma;
}

static void sn_forward(const pn_node *n, const pn_ctx *c) {
    sn_dims d = sn_dims_of(c->var_info[0]);
    sn_scratch_ptrs s = sn_scratch_get(c->scratch, d);
    float *w = c->var[0], *vec_u = c->var[1];
    *s.has_grad = 0.0f;
    c->out[0] = 1.0f;
    if (!c->training) return;
    int64_t size = c->var_info[0]->size, nz = 0;
    for (int64_t i = 0; i < size; i++) nz |= w[i] != 0.0f;
    if (!nz) return; /* Keras keeps an all-zero kernel and its vector_u */
    float sigma = sn_sigma(s, w, vec_u, d, n->iattr[0], n->fattr[0]);
    *s.sigma = sigma;
    memcpy(vec_u, s.u, (size_t)d.U * sizeof(float));
    if (c->eager) {
        for (int64_t i = 0; i < size; i++) w[i] /= sigma;
    } else {
        c->out[0] = 1.0f / sigma;
        *s.has_grad = 1.0f;
    }
}

/* dW (+)= g (-v^T u / sigma^2) for the output's gradient g; vector_u takes none */
static void sn_backward(const pn_node *n, const pn_ctx *c) {
    (void)n;
    sn_dims d = sn_dims_of(c->var_info[0]);
    sn_scratch_ptrs s = sn_scratch_get(c->scratch, d);
    float *dw = c->dvar[0];
    if (c->dvar[1] && !c->acc_var[1])
        memset(c->dvar[1], 0, (size_t)c->var_info[1]->size * sizeof(float));
    if (!dw) return;
    if (*s.has_grad == 0.0f) {
        if (!c->acc_var[0]) memset(dw, 0, (size_t)c->var_info[0]->size * sizeof(float));
        return;
    }
    const double sigma = *s.sigma;
    const float k = (float)(-(double)c->dout[0] / (sigma * sigma));
    for (int64_t r = 0; r < d.R; r++) {
        float *restrict dr = dw + r * d.U;
        const float kv = k * s.v[r];
        const float *restrict u = s.u;
        if (c->acc_var[0])
            for (int64_t j = 0; j < d.U; j++) dr[j] += kv * u[j];
        else
            for (int64_t j = 0; j < d.U; j++) dr[j] = kv * u[j];
    }
}

const pn_op_def pn_op_spectral_norm_def = {"spectral_norm", sn_shape, sn_forward, sn_backward,
                                           sn_scratch, PN_OPF_BWD_NO_IN | PN_OPF_BWD_NO_OUT};
