/*
 * test_conv_groups.c: conv2d with groups (iattr[8]) through libpynn's public header: forward
 * against a plain loop, gradients against central differences, the same op run eagerly (with
 * training 0 under the tape too, whose backward makes the columns again), results that do not
 * depend on the thread count, groups 0 and 1 as the ungrouped op bit for bit, and refusals.
 * Prints "N passed, M failed" and exits non-zero on failure.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

/* One grouped convolution: input (H, W, C), kernel (KH, KW, C / G, OC), strides, dilations,
 * pads (top, left, bottom, right), batch B, bias or not, G groups. */
typedef struct {
    int H, W, C, KH, KW, OC, sh, sw, dh, dw, pt, pl, pb, pr, B, bias, G;
} cfg;

static int out_h(const cfg *g) {
    return (g->H + g->pt + g->pb - g->dh * (g->KH - 1) - 1) / g->sh + 1;
}
static int out_w(const cfg *g) {
    return (g->W + g->pl + g->pr - g->dw * (g->KW - 1) - 1) / g->sw + 1;
}
static int n_in(const cfg *g) { return g->B * g->H * g->W * g->C; }
static int n_out(const cfg *g) { return g->B * out_h(g) * out_w(g) * g->OC; }
static int n_kernel(const cfg *g) { return g->KH * g->KW * (g->C / g->G) * g->OC; }

static void describe(char *s, size_t n, const cfg *g) {
    snprintf(s, n, "in %dx%dx%d k %dx%d->%d G%d s(%d,%d) d(%d,%d) p(%d,%d,%d,%d) B%d bias%d",
             g->H, g->W, g->C, g->KH, g->KW, g->OC, g->G, g->sh, g->sw, g->dh, g->dw, g->pt,
             g->pl, g->pb, g->pr, g->B, g->bias);
}

/* input -> conv2d (groups attribute `gattr`) -> output; variable 0 the kernel, 1 the bias;
 * weights drawn from seed; compiled with the MSE loss */
static pn_model *make_conv(const cfg *g, int gattr, unsigned seed) {
    pn_model *m;
    if (pn_model_create(&m)) return NULL;
    int vk, vb = -1, in, node;
    int64_t ks[4] = {g->KH, g->KW, g->C / g->G, g->OC}, bs[1] = {g->OC},
            xs[3] = {g->H, g->W, g->C};
    pn_model_add_variable(m, 4, ks, 1, &vk);
    if (g->bias) pn_model_add_variable(m, 1, bs, 1, &vb);
    pn_model_alloc(m);
    for (int i = 0; i < n_kernel(g); i++) param(m, vk)[i] = frand(&seed);
    for (int i = 0; g->bias && i < g->OC; i++) param(m, vb)[i] = frand(&seed);
    pn_model_add_input(m, 3, xs, PN_F32, &in);
    int vars[2] = {vk, vb};
    int ia[PN_MAX_ATTRS] = {g->sh, g->sw, g->dh, g->dw, g->pt, g->pl, g->pb, g->pr, gattr};
    if (pn_model_add_node(m, PN_OP_CONV2D, 1, &in, g->bias ? 2 : 1, vars, ia, NULL, &node) ||
        pn_model_set_output(m, node) || pn_model_compile(m, PN_LOSS_MSE, 0, 0, NULL)) {
        pn_model_destroy(m);
        return NULL;
    }
    return m;
}

/* out[b, oh, ow, o] = bias[o] + sum_{kh, kw, c < Cg} x[b, ih, iw, g Cg + c] w[kh, kw, c, o],
 * g = o / (OC / G): output channel o sees only its group's input channels */
static void reference(double *out, const float *x, const float *w, const float *bias,
                      const cfg *g) {
    const int OH = out_h(g), OW = out_w(g), Cg = g->C / g->G, OCg = g->OC / g->G;
    for (int b = 0; b < g->B; b++)
        for (int oh = 0; oh < OH; oh++)
            for (int ow = 0; ow < OW; ow++)
                for (int o = 0; o < g->OC; o++) {
                    double s = bias ? bias[o] : 0.0;
                    for (int kh = 0; kh < g->KH; kh++)
                        for (int kw = 0; kw < g->KW; kw++) {
                            int ih = oh * g->sh - g->pt + kh * g->dh;
                            int iw = ow * g->sw - g->pl + kw * g->dw;
                            if (ih < 0 || ih >= g->H || iw < 0 || iw >= g->W) continue;
                            for (int c = 0; c < Cg; c++)
                                s += (double)x[((b * g->H + ih) * g->W + iw) * g->C +
                                               o / OCg * Cg + c] *
                                     w[((kh * g->KW + kw) * Cg + c) * g->OC + o];
                        }
                    out[((b * OH + oh) * OW + ow) * g->OC + o] = s;
                }
}

/* The reference's gradients for an output gradient dy: dx, dw, db (doubles, written) */
static void reference_backward(double *dx, double *dw, double *db, const float *x,
                               const float *w, const float *dy, const cfg *g) {
    const int OH = out_h(g), OW = out_w(g), Cg = g->C / g->G, OCg = g->OC / g->G;
    memset(dx, 0, sizeof(double) * n_in(g));
    memset(dw, 0, sizeof(double) * n_kernel(g));
    memset(db, 0, sizeof(double) * g->OC);
    for (int b = 0; b < g->B; b++)
        for (int oh = 0; oh < OH; oh++)
            for (int ow = 0; ow < OW; ow++)
                for (int o = 0; o < g->OC; o++) {
                    const double d = dy[((b * OH + oh) * OW + ow) * g->OC + o];
                    db[o] += d;
                    for (int kh = 0; kh < g->KH; kh++)
                        for (int kw = 0; kw < g->KW; kw++) {
                            int ih = oh * g->sh - g->pt + kh * g->dh;
                            int iw = ow * g->sw - g->pl + kw * g->dw;
                            if (ih < 0 || ih >= g->H || iw < 0 || iw >= g->W) continue;
                            for (int c = 0; c < Cg; c++) {
                                const int xi = ((b * g->H + ih) * g->W + iw) * g->C +
                                               o / OCg * Cg + c,
                                          wi = ((kh * g->KW + kw) * Cg + c) * g->OC + o;
                                dx[xi] += d * w[wi];
                                dw[wi] += d * x[xi];
                            }
                        }
                }
}

/* predict (in batches of pred_batch) matches the reference */
static void check_forward(const cfg *g, int pred_batch, unsigned seed) {
    char name[192];
    describe(name, sizeof name, g);
    pn_model *m = make_conv(g, g->G, seed);
    CHECK(m != NULL, "%s: model not built", name);
    if (!m) return;
    int64_t shape[8];
    int nd = pn_model_output_shape(m, 0, shape);
    CHECK(nd == 3 && shape[0] == out_h(g) && shape[1] == out_w(g) && shape[2] == g->OC,
          "%s: output shape (%lld, %lld, %lld)", name, (long long)shape[0],
          (long long)shape[1], (long long)shape[2]);
    const int nx = n_in(g), ny = n_out(g);
    float *x = malloc(sizeof(float) * nx), *y = malloc(sizeof(float) * ny);
    double *ref = malloc(sizeof(double) * ny);
    for (int i = 0; i < nx; i++) x[i] = frand(&seed);
    pn_tensor tx = {.ndim = 4, .dims = {g->B, g->H, g->W, g->C}, .dtype = PN_F32, .data = x};
    int rc = pn_model_predict(m, &tx, pred_batch, (float *[]){y});
    reference(ref, x, param(m, 0), g->bias ? param(m, 1) : NULL, g);
    double err = rel_err(y, ref, ny, 1.0);
    CHECK(rc == 0 && err < 1e-5, "%s: forward error %g (rc %d)", name, err, rc);
    free(x);
    free(y);
    free(ref);
    pn_model_destroy(m);
}

static int fits(const cfg *g) {
    return g->dh * (g->KH - 1) + 1 <= g->H + g->pt + g->pb &&
           g->dw * (g->KW - 1) + 1 <= g->W + g->pl + g->pr;
}

/* groups 2, 3 and one per channel (with one and two filters each) across kernels, strides,
 * dilations, pads, bias and batch; 1x1 kernels (the groups' images are their cols) too */
static void test_forward_matches_reference(void) {
    const int kernels[][2] = {{1, 1}, {3, 3}, {2, 3}};
    const int strides[][2] = {{1, 1}, {2, 1}};
    const int pads[][4] = {{0, 0, 0, 0}, {1, 0, 2, 1}};
    const int groups[][3] = {{6, 2, 4}, {6, 3, 9}, {6, 6, 6}, {4, 4, 8}}; /* C, G, OC */
    int count = 0;
    for (int k = 0; k < 3; k++)
        for (int s = 0; s < 2; s++)
            for (int dil = 1; dil <= 2; dil++)
                for (int p = 0; p < 2; p++)
                    for (int gi = 0; gi < 4; gi++) {
                        const int i = count;
                        cfg g = {i % 2 ? 7 : 6, i % 3 ? 5 : 8, groups[gi][0], kernels[k][0],
                                 kernels[k][1], groups[gi][2], strides[s][0], strides[s][1],
                                 dil, dil, pads[p][0], pads[p][1], pads[p][2], pads[p][3],
                                 i % 4 ? 2 : 1, (i / 2) % 2, groups[gi][1]};
                        if (!fits(&g)) continue;
                        check_forward(&g, g.B, 100u + (unsigned)i);
                        count++;
                    }
    CHECK(count >= 80, "only %d forward configurations ran", count);
    /* batches split over two plans (2 then 1) */
    check_forward(&(cfg){7, 5, 4, 3, 3, 6, 1, 1, 2, 1, 1, 1, 1, 1, 3, 1, 2}, 2, 7u);
    /* large enough for the parallel im2col, group moves and products */
    pn_set_num_threads(2);
    check_forward(&(cfg){20, 20, 32, 3, 3, 64, 1, 1, 1, 1, 1, 1, 1, 1, 4, 1, 8}, 4, 9u);
    check_forward(&(cfg){14, 14, 64, 1, 1, 64, 1, 1, 1, 1, 0, 0, 0, 0, 4, 1, 4}, 4, 10u);
    pn_set_num_threads(1);
}

/* The MSE loss of the model on (x, y), in double from predict's float outputs. */
static double mse(pn_model *m, const pn_tensor *tx, const float *y, float *buf, int ny) {
    pn_model_predict(m, tx, tx->dims[0], (float *[]){buf});
    double s = 0;
    for (int i = 0; i < ny; i++) s += ((double)buf[i] - y[i]) * ((double)buf[i] - y[i]);
    return s / ny;
}

/* The analytic gradient g[i] against (L(v + e) - L(v - e)) / 2e for every `stride`-th element
 * of v; the loss is quadratic in each value, so the central difference is exact but for
 * rounding. The worst error relative to the largest gradient. */
static double fd_error(pn_model *m, const pn_tensor *tx, const float *y, float *buf, int ny,
                       float *v, const float *g, int n, int stride) {
    const float eps = 0.05f;
    double worst = 0, scale = 1e-6;
    for (int i = 0; i < n; i++) scale = fmax(scale, fabs(g[i]));
    for (int i = 0; i < n; i += stride) {
        float keep = v[i];
        v[i] = keep + eps;
        double lp = mse(m, tx, y, buf, ny);
        v[i] = keep - eps;
        double lm = mse(m, tx, y, buf, ny);
        v[i] = keep;
        worst = fmax(worst, fabs((lp - lm) / (2.0 * eps) - g[i]) / scale);
    }
    return worst;
}

/* Input, kernel and bias gradients of MSE(conv(x)) against central differences; a second call
 * writes the same gradients (not accumulated), and without the input gradient too. */
static void check_gradients(const cfg *g, int stride, unsigned seed) {
    char name[192];
    describe(name, sizeof name, g);
    pn_model *m = make_conv(g, g->G, seed);
    CHECK(m != NULL, "%s: model not built", name);
    if (!m) return;
    const int nx = n_in(g), ny = n_out(g), nk = n_kernel(g), nb = g->bias ? g->OC : 0;
    float *x = malloc(sizeof(float) * nx), *y = malloc(sizeof(float) * ny);
    float *buf = malloc(sizeof(float) * ny), *dx = malloc(sizeof(float) * nx);
    float *dx2 = malloc(sizeof(float) * nx), *gw = malloc(sizeof(float) * (nk + nb));
    for (int i = 0; i < nx; i++) x[i] = frand(&seed);
    for (int i = 0; i < ny; i++) y[i] = frand(&seed);
    pn_tensor tx = {.ndim = 4, .dims = {g->B, g->H, g->W, g->C}, .dtype = PN_F32, .data = x};
    pn_tensor ty = {.ndim = 4, .dims = {g->B, out_h(g), out_w(g), g->OC}, .dtype = PN_F32,
                    .data = y};
    float loss;
    int rc = pn_model_gradients(m, &tx, &ty, &loss, (float *[]){dx});
    CHECK(rc == 0, "%s: gradients rc %d", name, rc);
    memcpy(gw, grad(m, 0), sizeof(float) * nk);
    if (nb) memcpy(gw + nk, grad(m, 1), sizeof(float) * nb);
    double l = mse(m, &tx, y, buf, ny);
    CHECK(fabs(l - loss) < 1e-5 * (1 + l), "%s: loss %g, want %g", name, loss, l);
    double ex = fd_error(m, &tx, y, buf, ny, x, dx, nx, stride);
    double ek = fd_error(m, &tx, y, buf, ny, param(m, 0), gw, nk, stride);
    double eb = nb ? fd_error(m, &tx, y, buf, ny, param(m, 1), gw + nk, nb, 1) : 0;
    CHECK(ex < 1e-3 && ek < 1e-3 && eb < 1e-3, "%s: gradient errors x %g kernel %g bias %g",
          name, ex, ek, eb);
    rc = pn_model_gradients(m, &tx, &ty, &loss, (float *[]){dx2});
    int same = rc == 0 && memcmp(dx, dx2, sizeof(float) * nx) == 0 &&
               memcmp(gw, grad(m, 0), sizeof(float) * nk) == 0 &&
               (!nb || memcmp(gw + nk, grad(m, 1), sizeof(float) * nb) == 0);
    CHECK(same, "%s: a second gradients call differs (accumulated instead of written?)", name);
    rc = pn_model_gradients(m, &tx, &ty, &loss, NULL);
    same = rc == 0 && memcmp(gw, grad(m, 0), sizeof(float) * nk) == 0 &&
           (!nb || memcmp(gw + nk, grad(m, 1), sizeof(float) * nb) == 0);
    CHECK(same, "%s: weight gradients differ without the input gradient", name);
    free(x);
    free(y);
    free(buf);
    free(dx);
    free(dx2);
    free(gw);
    pn_model_destroy(m);
}

static void test_gradients_match_finite_differences(void) {
    check_gradients(&(cfg){6, 5, 4, 3, 3, 6, 1, 1, 1, 1, 1, 1, 1, 1, 2, 1, 2}, 1, 1u);
    check_gradients(&(cfg){7, 5, 6, 3, 2, 6, 2, 1, 1, 1, 1, 0, 2, 1, 2, 1, 3}, 1, 2u);
    check_gradients(&(cfg){7, 6, 4, 2, 2, 8, 1, 1, 2, 2, 1, 1, 0, 0, 2, 0, 4}, 1, 3u);
    check_gradients(&(cfg){6, 5, 6, 1, 1, 4, 1, 1, 1, 1, 0, 0, 0, 0, 3, 1, 2}, 1, 4u); /* 1x1 */
    check_gradients(&(cfg){6, 5, 4, 1, 1, 4, 2, 2, 1, 1, 0, 0, 0, 0, 2, 1, 4}, 1, 5u); /* s2 */
    /* large enough for the parallel paths; sampled elements */
    pn_set_num_threads(2);
    check_gradients(&(cfg){16, 16, 16, 3, 3, 32, 1, 1, 1, 1, 1, 1, 1, 1, 4, 1, 4}, 97, 6u);
    pn_set_num_threads(1);
}

/* ---- eager --------------------------------------------------------------------------------- */

/* The op run on values (training 0 and 1) under the tape: its output is predict's, and its
 * backward, for an output gradient dy, the reference's. With training 0 the forward keeps no
 * columns and the backward makes them again (in scratch sized for a backward). */
static void check_eager(const cfg *g, unsigned seed) {
    char name[192];
    describe(name, sizeof name, g);
    pn_model *m = make_conv(g, g->G, seed);
    const int nx = n_in(g), ny = n_out(g), nk = n_kernel(g);
    float *x = malloc(sizeof(float) * nx), *y = malloc(sizeof(float) * ny);
    float *dy = malloc(sizeof(float) * ny);
    double *dxr = malloc(sizeof(double) * nx), *dwr = malloc(sizeof(double) * nk);
    double *dbr = malloc(sizeof(double) * g->OC);
    for (int i = 0; i < nx; i++) x[i] = frand(&seed);
    for (int i = 0; i < ny; i++) dy[i] = frand(&seed);
    pn_tensor tx = {.ndim = 4, .dims = {g->B, g->H, g->W, g->C}, .dtype = PN_F32, .data = x};
    pn_model_predict(m, &tx, g->B, (float *[]){y});
    const float *w = param(m, 0), *bias = g->bias ? param(m, 1) : NULL;
    reference_backward(dxr, dwr, dbr, x, w, dy, g);
    int64_t xd[4] = {g->B, g->H, g->W, g->C}, kd[4] = {g->KH, g->KW, g->C / g->G, g->OC},
            bd[1] = {g->OC};
    for (int training = 0; training <= 1; training++) {
        pn_value *vx, *vk, *vb = NULL, *out = NULL;
        pn_value_create(&vx, 4, xd, PN_F32, x);
        pn_value_create(&vk, 4, kd, PN_F32, w);
        if (bias) pn_value_create(&vb, 1, bd, PN_F32, bias);
        pn_value_set_requires_grad(vx, 1);
        pn_value_set_requires_grad(vk, 1);
        if (vb) pn_value_set_requires_grad(vb, 1);
        int ia[PN_MAX_ATTRS] = {g->sh, g->sw, g->dh, g->dw, g->pt, g->pl, g->pb, g->pr, g->G};
        pn_value *vars[2] = {vk, vb};
        int rc = pn_eager_op(PN_OP_CONV2D, 1, &vx, vb ? 2 : 1, vars, ia, NULL, training, 0, &out);
        CHECK(rc == 0, "%s: eager training %d: rc %d", name, training, rc);
        if (rc) continue;
        CHECK(memcmp(pn_value_data(out), y, sizeof(float) * ny) == 0,
              "%s: eager training %d: the output differs from predict's", name, training);
        rc = pn_value_backward(out, dy);
        double ex = rel_err(pn_value_grad(vx), dxr, nx, 1e-6);
        double ek = rel_err(pn_value_grad(vk), dwr, nk, 1e-6);
        double eb = vb ? rel_err(pn_value_grad(vb), dbr, g->OC, 1e-6) : 0;
        CHECK(rc == 0 && ex < 1e-5 && ek < 1e-5 && eb < 1e-5,
              "%s: eager training %d: backward rc %d, errors x %g kernel %g bias %g", name,
              training, rc, ex, ek, eb);
        pn_value_release(out);
        pn_value_release(vx);
        pn_value_release(vk);
        pn_value_release(vb);
    }
    free(x);
    free(y);
    free(dy);
    free(dxr);
    free(dwr);
    free(dbr);
    pn_model_destroy(m);
}

static void test_eager_matches_plan_and_reference(void) {
    check_eager(&(cfg){6, 7, 6, 3, 3, 9, 1, 1, 1, 1, 1, 1, 1, 1, 2, 1, 3}, 31u);
    check_eager(&(cfg){7, 6, 4, 2, 3, 4, 2, 1, 1, 2, 0, 2, 1, 0, 3, 0, 4}, 32u);
    check_eager(&(cfg){5, 5, 8, 1, 1, 4, 1, 1, 1, 1, 0, 0, 0, 0, 2, 1, 2}, 33u); /* 1x1 */
    check_eager(&(cfg){6, 6, 3, 3, 3, 4, 1, 1, 1, 1, 1, 1, 1, 1, 2, 1, 1}, 34u); /* one group */
}

/* ---- the thread count, the ungrouped op ---------------------------------------------------- */

/* predict and gradients of `g` with attribute gattr at `threads` threads, into out (ny), dx
 * (nx) and gw (kernel and bias) */
static void run_once(const cfg *g, int gattr, int threads, float *out, float *dx, float *gw) {
    pn_set_num_threads(threads);
    pn_model *m = make_conv(g, gattr, 41u);
    const int nx = n_in(g), ny = n_out(g), nk = n_kernel(g);
    float *x = malloc(sizeof(float) * nx), *y = malloc(sizeof(float) * ny), loss;
    unsigned seed = 42u;
    for (int i = 0; i < nx; i++) x[i] = frand(&seed);
    for (int i = 0; i < ny; i++) y[i] = frand(&seed);
    pn_tensor tx = {.ndim = 4, .dims = {g->B, g->H, g->W, g->C}, .dtype = PN_F32, .data = x};
    pn_tensor ty = {.ndim = 4, .dims = {g->B, out_h(g), out_w(g), g->OC}, .dtype = PN_F32,
                    .data = y};
    pn_model_predict(m, &tx, g->B, (float *[]){out});
    pn_model_gradients(m, &tx, &ty, &loss, (float *[]){dx});
    memcpy(gw, grad(m, 0), sizeof(float) * nk);
    memcpy(gw + nk, grad(m, 1), sizeof(float) * g->OC);
    free(x);
    free(y);
    pn_model_destroy(m);
    pn_set_num_threads(1);
}

/* run_once twice: the largest difference relative to the largest value (0: bit for bit) */
static double runs_differ(const cfg *g, int gattr1, int threads1, int gattr2, int threads2) {
    const int n = n_out(g) + n_in(g) + n_kernel(g) + g->OC;
    float *a = malloc(sizeof(float) * n), *b = malloc(sizeof(float) * n);
    run_once(g, gattr1, threads1, a, a + n_out(g), a + n_out(g) + n_in(g));
    run_once(g, gattr2, threads2, b, b + n_out(g), b + n_out(g) + n_in(g));
    double diff = 0, scale = 1e-30;
    for (int i = 0; i < n; i++) {
        diff = fmax(diff, fabs((double)a[i] - b[i]));
        scale = fmax(scale, fabs((double)a[i]));
    }
    free(a);
    free(b);
    return diff / scale;
}

/* Two threads compute what one does (up to the order OpenBLAS sums the kernel gradient in,
 * which may follow the rows each thread takes); groups 0 (a node made before groups) and 1 are
 * the ungrouped op, bit for bit. */
static void test_thread_count_and_groups_1(void) {
    const cfg big = {18, 18, 32, 3, 3, 48, 1, 1, 1, 1, 1, 1, 1, 1, 4, 1, 4};
    double d = runs_differ(&big, 4, 1, 4, 2);
    CHECK(d < 1e-6, "grouped: 1 and 2 threads differ by %g", d);
    const cfg one = {18, 18, 8, 3, 3, 16, 2, 2, 1, 1, 1, 1, 1, 1, 4, 1, 1};
    CHECK(runs_differ(&one, 0, 1, 1, 1) == 0, "groups 0 and 1 differ");
    CHECK(runs_differ(&one, 0, 2, 1, 2) == 0, "groups 0 and 1 differ at 2 threads");
}

/* ---- refusals ------------------------------------------------------------------------------ */

static void test_bad_groups_refused(void) {
    pn_model *m;
    pn_model_create(&m);
    int64_t k2[4] = {3, 3, 2, 4}, k3[4] = {3, 3, 2, 6}, k5[4] = {3, 3, 2, 5}, xs[3] = {6, 6, 4};
    int v2, v3, v5, in, node;
    pn_model_add_variable(m, 4, k2, 1, &v2);
    pn_model_add_variable(m, 4, k3, 1, &v3);
    pn_model_add_variable(m, 4, k5, 1, &v5);
    pn_model_alloc(m);
    pn_model_add_input(m, 3, xs, PN_F32, &in);
    struct {
        const char *what;
        int var, groups, code;
        const char *needle;
    } cases[] = {
        {"negative groups", v2, -2, PN_EVALUE, "groups must be >= 1, got -2"},
        {"filters not divisible", v5, 2, PN_EVALUE, "5 filters are not a multiple of groups (2)"},
        {"channels per group", v2, 4, PN_ESHAPE, "4 channels, kernel expects 2 per group in 4"},
        {"more groups than channels", v3, 3, PN_ESHAPE, "4 channels, kernel expects 2 per group"},
        {"groups 1 on a group's kernel", v2, 1, PN_ESHAPE, "4 channels, kernel expects 2"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int ia[PN_MAX_ATTRS] = {1, 1, 1, 1, 0, 0, 0, 0, cases[i].groups};
        int rc = pn_model_add_node(m, PN_OP_CONV2D, 1, &in, 1, &cases[i].var, ia, NULL, &node);
        const char *msg = pn_last_error();
        CHECK(rc == cases[i].code && strstr(msg, "conv2d") && strstr(msg, cases[i].needle),
              "%s: rc %d, message lacks '%s'", cases[i].what, rc, cases[i].needle);
    }
    int ok[PN_MAX_ATTRS] = {1, 1, 1, 1, 0, 0, 0, 0, 2};
    int64_t shape[8];
    int rc = pn_model_add_node(m, PN_OP_CONV2D, 1, &in, 1, &v2, ok, NULL, &node);
    CHECK(rc == 0 && pn_model_node_shape(m, node, shape) == 3 && shape[2] == 4,
          "two groups of 2 channels: rc %d", rc);
    pn_model_destroy(m);
}

int main(void) {
    test_forward_matches_reference();
    test_gradients_match_finite_differences();
    test_eager_matches_plan_and_reference();
    test_thread_count_and_groups_1();
    test_bad_groups_refused();
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
