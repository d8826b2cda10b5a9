/*
 * test_spectral.c: spectral_norm through the public header: x (C) times spectral_norm's scalar
 * into a dense (C -> U) layer, MSE. The training forward (reached through pn_model_gradients)
 * against a double reference of Keras's power iteration, the kernel's gradient against the
 * formula and central differences (vector_u put back before each forward, which writes it), an
 * eager call's assignment of the kernel, the all-zero kernel, inference, and refused nodes.
 * Prints "N passed, M failed" and exits non-zero on failure.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

enum { C = 5, U = 3, B = 4 };
#define EPS 1e-7f

typedef struct {
    pn_model *m;
    int vk, vb, vu, in, s, x, d;
} sn_net;

static int sn_make(sn_net *t, int iters, unsigned seed) {
    memset(t, 0, sizeof *t);
    int64_t ks[2] = {C, U}, bs[1] = {U}, us[2] = {1, U}, xs[1] = {C};
    int rc = pn_model_create(&t->m);
    rc |= pn_model_add_variable(t->m, 2, ks, 1, &t->vk);
    rc |= pn_model_add_variable(t->m, 1, bs, 1, &t->vb);
    rc |= pn_model_add_variable(t->m, 2, us, 0, &t->vu);
    rc |= pn_model_alloc(t->m);
    /* a rank-one part makes the largest singular value stand apart, so that many iterations
     * converge */
    for (int r = 0; r < C; r++)
        for (int j = 0; j < U; j++)
            param(t->m, t->vk)[r * U + j] =
                frand(&seed) + (iters >= 30 ? 2.0f * (float)(r - 2) * ((float)j - 1.5f) : 0.0f);
    for (int i = 0; i < U; i++) param(t->m, t->vb)[i] = 0.3f * frand(&seed);
    for (int i = 0; i < U; i++) param(t->m, t->vu)[i] = 0.05f * frand(&seed);
    rc |= pn_model_add_input(t->m, 1, xs, PN_F32, &t->in);
    int vars[2] = {t->vk, t->vu}, ia[PN_MAX_ATTRS] = {iters}, mul[PN_MAX_ATTRS] = {PN_BIN_MUL};
    float fa[PN_MAX_ATTRS] = {EPS};
    rc |= pn_model_add_node(t->m, PN_OP_SPECTRAL_NORM, 0, NULL, 2, vars, ia, fa, &t->s);
    int xs2[2] = {t->in, t->s};
    rc |= pn_model_add_node(t->m, PN_OP_BINARY, 2, xs2, 0, NULL, mul, NULL, &t->x);
    int dv[2] = {t->vk, t->vb};
    rc |= pn_model_add_node(t->m, PN_OP_DENSE, 1, &t->x, 2, dv, NULL, NULL, &t->d);
    rc |= pn_model_set_output(t->m, t->d);
    rc |= pn_model_compile(t->m, PN_LOSS_MSE, 0, 0, NULL);
    return rc;
}

/* Keras's normalized_weights() in double: the new u, v, sigma of W (C, U) from u0 */
static double ref_sigma(const float *W, const float *u0, int iters, double *u, double *v) {
    for (int j = 0; j < U; j++) u[j] = u0[j];
    for (int it = 0; it < iters; it++) {
        double ss = 0;
        for (int r = 0; r < C; r++) {
            v[r] = 0;
            for (int j = 0; j < U; j++) v[r] += W[r * U + j] * u[j];
            ss += v[r] * v[r];
        }
        double inv = fmin(1 / sqrt(ss), 1 / (double)EPS);
        for (int r = 0; r < C; r++) v[r] *= inv;
        ss = 0;
        for (int j = 0; j < U; j++) {
            u[j] = 0;
            for (int r = 0; r < C; r++) u[j] += v[r] * W[r * U + j];
            ss += u[j] * u[j];
        }
        inv = fmin(1 / sqrt(ss), 1 / (double)EPS);
        for (int j = 0; j < U; j++) u[j] *= inv;
    }
    double sigma = 0;
    for (int r = 0; r < C; r++)
        for (int j = 0; j < U; j++) sigma += v[r] * W[r * U + j] * u[j];
    return sigma;
}

/* the MSE loss of dense(x, W / sigma) + b and its gradients dW (through sigma, u and v
 * constant) and db, in double */
static double ref_loss(const float *x, const float *y, const float *W, const float *b,
                       double sigma, const double *u, const double *v, double *dW, double *db) {
    double loss = 0, G[C * U] = {0}, GW = 0;
    for (int j = 0; j < U; j++) db[j] = 0;
    for (int n = 0; n < B; n++)
        for (int j = 0; j < U; j++) {
            double z = b[j];
            for (int r = 0; r < C; r++) z += x[n * C + r] * W[r * U + j] / sigma;
            double e = z - y[n * U + j], g = 2 * e / (B * U);
            loss += e * e / (B * U);
            db[j] += g;
            for (int r = 0; r < C; r++) G[r * U + j] += x[n * C + r] * g;
        }
    for (int i = 0; i < C * U; i++) GW += G[i] * W[i];
    for (int r = 0; r < C; r++)
        for (int j = 0; j < U; j++)
            dW[r * U + j] = G[r * U + j] / sigma - GW / (sigma * sigma) * v[r] * u[j];
    return loss;
}

static void test_training_forward_and_gradients(int iters) {
    sn_net t;
    CHECK(sn_make(&t, iters, 3u + (unsigned)iters) == 0, "build (%d iterations)", iters);
    unsigned s = 17;
    float x[B * C], y[B * U], loss, u0[U], W[C * U];
    for (int i = 0; i < B * C; i++) x[i] = frand(&s);
    for (int i = 0; i < B * U; i++) y[i] = frand(&s);
    memcpy(u0, param(t.m, t.vu), sizeof u0);
    memcpy(W, param(t.m, t.vk), sizeof W);
    double u[U], v[C], dW[C * U], db[U];
    double sigma = ref_sigma(W, u0, iters, u, v);
    double want = ref_loss(x, y, W, param(t.m, t.vb), sigma, u, v, dW, db);
    pn_tensor tx = {.ndim = 2, .dims = {B, C}, .dtype = PN_F32, .data = x};
    pn_tensor ty = {.ndim = 2, .dims = {B, U}, .dtype = PN_F32, .data = y};
    CHECK(pn_model_gradients(t.m, &tx, &ty, &loss, NULL) == 0, "gradients");
    CHECK(fabs(loss - want) < 1e-5 * fmax(1, fabs(want)), "loss %g, reference %g", loss, want);
    CHECK(rel_err(param(t.m, t.vu), u, U, 1e-3) < 1e-5, "vector_u holds the new u");
    CHECK(memcmp(param(t.m, t.vk), W, sizeof W) == 0, "a training step leaves the kernel");
    CHECK(rel_err(grad(t.m, t.vk), dW, C * U, 1e-3) < 1e-4, "dW (%d iterations): %g", iters,
          rel_err(grad(t.m, t.vk), dW, C * U, 1e-3));
    CHECK(rel_err(grad(t.m, t.vb), db, U, 1e-3) < 1e-5, "db");
    /* central differences of the float32 training loss, vector_u put back to u0 before each
     * forward, which writes it. Differences see u and v move with W, which Keras's gradient
     * leaves out (stop_gradient); once the iteration has converged they stand still to first
     * order (sigma is stationary in the singular vectors), so only then do the two agree. */
    if (iters < 30) {
        pn_model_destroy(t.m);
        return;
    }
    float g[C * U];
    memcpy(g, grad(t.m, t.vk), sizeof g);
    double worst = 0;
    for (int i = 0; i < C * U; i++) {
        float *w = param(t.m, t.vk), keep = w[i], lp, lm;
        const float h = 2e-3f;
        w[i] = keep + h;
        memcpy(param(t.m, t.vu), u0, sizeof u0);
        pn_model_gradients(t.m, &tx, &ty, &lp, NULL);
        w[i] = keep - h;
        memcpy(param(t.m, t.vu), u0, sizeof u0);
        pn_model_gradients(t.m, &tx, &ty, &lm, NULL);
        w[i] = keep;
        worst = fmax(worst, fabs((lp - lm) / (2 * h) - g[i]));
    }
    CHECK(worst < 2e-3, "dW against central differences: %g", worst);
    pn_model_destroy(t.m);
}

/* a model called on values in training assigns W / sigma to the kernel and runs the layer on
 * it (s = 1), whose gradient then reaches the kernel directly; in inference nothing moves */
static void test_eager_call_assigns_the_kernel(void) {
    sn_net t;
    CHECK(sn_make(&t, 2, 9) == 0, "build");
    unsigned s = 5;
    float x[B * C], W[C * U], u0[U];
    for (int i = 0; i < B * C; i++) x[i] = frand(&s);
    memcpy(W, param(t.m, t.vk), sizeof W);
    memcpy(u0, param(t.m, t.vu), sizeof u0);
    int64_t xd[2] = {B, C};
    pn_value *xv, *out;
    pn_value_create(&xv, 2, xd, PN_F32, x);
    CHECK(pn_model_call(t.m, &xv, 0, &out) == 0, "inference call");
    CHECK(memcmp(param(t.m, t.vu), u0, sizeof u0) == 0 && memcmp(param(t.m, t.vk), W, sizeof W) == 0,
          "inference writes nothing");
    double y[B * U];
    for (int n = 0; n < B; n++)
        for (int j = 0; j < U; j++) {
            y[n * U + j] = param(t.m, t.vb)[j];
            for (int r = 0; r < C; r++) y[n * U + j] += x[n * C + r] * W[r * U + j];
        }
    CHECK(rel_err(pn_value_data(out), y, B * U, 1) < 1e-6, "inference runs the layer as it is");
    pn_value_release(out);

    double u[U], v[C], Wn[C * U];
    double sigma = ref_sigma(W, u0, 2, u, v);
    for (int i = 0; i < C * U; i++) Wn[i] = W[i] / sigma;
    CHECK(pn_model_call(t.m, &xv, 1, &out) == 0, "training call");
    CHECK(rel_err(param(t.m, t.vk), Wn, C * U, 1e-3) < 1e-5, "the kernel is W / sigma");
    CHECK(rel_err(param(t.m, t.vu), u, U, 1e-3) < 1e-5, "vector_u is the new u");
    for (int n = 0; n < B; n++)
        for (int j = 0; j < U; j++) {
            y[n * U + j] = param(t.m, t.vb)[j];
            for (int r = 0; r < C; r++) y[n * U + j] += x[n * C + r] * Wn[r * U + j];
        }
    CHECK(rel_err(pn_value_data(out), y, B * U, 1) < 1e-5, "the layer runs on W / sigma");
    float ones[B * U];
    for (int i = 0; i < B * U; i++) ones[i] = 1.0f;
    pn_model_zero_grads(t.m);
    CHECK(pn_value_backward(out, ones) == 0, "backward");
    double dW[C * U];
    for (int r = 0; r < C; r++)
        for (int j = 0; j < U; j++) {
            dW[r * U + j] = 0;
            for (int n = 0; n < B; n++) dW[r * U + j] += x[n * C + r];
        }
    CHECK(rel_err(grad(t.m, t.vk), dW, C * U, 1e-3) < 1e-5, "dW = x^T dy: straight to the kernel");
    pn_value_release(out);
    pn_value_release(xv);
    pn_model_destroy(t.m);
}

/* Keras's ops.cond: an all-zero kernel keeps its vector_u, and the layer runs on it as it is */
static void test_zero_kernel(void) {
    sn_net t;
    CHECK(sn_make(&t, 1, 4) == 0, "build");
    memset(param(t.m, t.vk), 0, C * U * sizeof(float));
    float x[B * C], y[B * U], loss, u0[U];
    unsigned s = 8;
    for (int i = 0; i < B * C; i++) x[i] = frand(&s);
    for (int i = 0; i < B * U; i++) y[i] = frand(&s);
    memcpy(u0, param(t.m, t.vu), sizeof u0);
    pn_tensor tx = {.ndim = 2, .dims = {B, C}, .dtype = PN_F32, .data = x};
    pn_tensor ty = {.ndim = 2, .dims = {B, U}, .dtype = PN_F32, .data = y};
    CHECK(pn_model_gradients(t.m, &tx, &ty, &loss, NULL) == 0 && isfinite(loss), "gradients");
    CHECK(memcmp(param(t.m, t.vu), u0, sizeof u0) == 0, "vector_u kept");
    double dW[C * U] = {0};
    const float *b = param(t.m, t.vb);
    for (int n = 0; n < B; n++)
        for (int j = 0; j < U; j++)
            for (int r = 0; r < C; r++)
                dW[r * U + j] += x[n * C + r] * 2 * (b[j] - y[n * U + j]) / (B * U);
    CHECK(rel_err(grad(t.m, t.vk), dW, C * U, 1e-3) < 1e-5, "dW is the layer's own");
    pn_model_destroy(t.m);
}

static void test_refusals(void) {
    pn_model *m;
    pn_model_create(&m);
    int64_t ks[2] = {C, U}, u2[2] = {1, U + 1}, xs[1] = {C};
    int vk, vu, vbad, in, node;
    pn_model_add_variable(m, 2, ks, 1, &vk);
    int64_t us[2] = {1, U};
    pn_model_add_variable(m, 2, us, 0, &vu);
    pn_model_add_variable(m, 2, u2, 0, &vbad);
    pn_model_alloc(m);
    pn_model_add_input(m, 1, xs, PN_F32, &in);
    int ok[2] = {vk, vu}, bad[2] = {vk, vbad}, one[PN_MAX_ATTRS] = {1}, zero[PN_MAX_ATTRS] = {0};
    float eps[PN_MAX_ATTRS] = {EPS}, neg[PN_MAX_ATTRS] = {-1.0f};
    CHECK(pn_model_add_node(m, PN_OP_SPECTRAL_NORM, 0, NULL, 2, bad, one, eps, &node) ==
              PN_ESHAPE, "a vector_u of the wrong size");
    CHECK(pn_model_add_node(m, PN_OP_SPECTRAL_NORM, 0, NULL, 2, ok, zero, eps, &node) ==
              PN_EVALUE, "power_iterations 0");
    CHECK(pn_model_add_node(m, PN_OP_SPECTRAL_NORM, 0, NULL, 2, ok, one, neg, &node) ==
              PN_EVALUE, "a negative epsilon");
    CHECK(pn_model_add_node(m, PN_OP_SPECTRAL_NORM, 1, &in, 2, ok, one, eps, &node) ==
              PN_EVALUE, "an input");
    CHECK(pn_model_add_node(m, PN_OP_SPECTRAL_NORM, 0, NULL, 1, ok, one, eps, &node) ==
              PN_EVALUE, "one variable");
    CHECK(pn_model_add_node(m, PN_OP_SPECTRAL_NORM, 0, NULL, 2, ok, one, eps, &node) == 0 &&
              pn_model_node_unbatched(m, node) == 1, "a valid node is an unbatched scalar");
    /* run on values it has no input to take a batch from: a graph-only op */
    pn_value *k, *u, *out = NULL;
    pn_model_variable_value(m, vk, &k);
    pn_model_variable_value(m, vu, &u);
    pn_value *vars[2] = {k, u};
    CHECK(pn_eager_op(PN_OP_SPECTRAL_NORM, 0, NULL, 2, vars, one, eps, 1, 0, &out) != 0 && !out,
          "refused on values");
    pn_value_release(k);
    pn_value_release(u);
    pn_model_destroy(m);
}

int main(void) {
    test_training_forward_and_gradients(1);
    test_training_forward_and_gradients(4);
    test_training_forward_and_gradients(40);
    test_eager_call_assigns_the_kernel();
    test_zero_kernel();
    test_refusals();
    printf("%d passed, %d failed\n", passed, failed);
    return failed != 0;
}
