/*
 * test_conv.c: the conv2d and conv2d_transpose ops through libpynn's public header: forward
 * against a plain loop, gradients against central differences, refusals of bad attributes and
 * shapes.
 * Prints "N passed, M failed" and exits non-zero on failure.
 * With the arguments "bench [threads]" it times the MNIST CNN's two convolutions at batch 64
 * instead; run it with OMP_WAIT_POLICY=PASSIVE, as pynn sets, or libgomp's spinning threads
 * compete with OpenBLAS's between the op's loops and its GEMMs.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "check.h"



/* One convolution: input (H, W, C), kernel (KH, KW, C, OC), strides, dilations, pads
 * (top, left, bottom, right), batch B, bias or not. */
typedef struct {
    int H, W, C, KH, KW, OC, sh, sw, dh, dw, pt, pl, pb, pr, B, bias;
} cfg;

static int out_h(const cfg *g) {
    return (g->H + g->pt + g->pb - g->dh * (g->KH - 1) - 1) / g->sh + 1;
}
static int out_w(const cfg *g) {
    return (g->W + g->pl + g->pr - g->dw * (g->KW - 1) - 1) / g->sw + 1;
}
static int fits(const cfg *g) {
    return g->dh * (g->KH - 1) + 1 <= g->H + g->pt + g->pb &&
           g->dw * (g->KW - 1) + 1 <= g->W + g->pl + g->pr;
}

static void describe(char *s, size_t n, const cfg *g) {
    snprintf(s, n, "in %dx%dx%d k %dx%d->%d s(%d,%d) d(%d,%d) p(%d,%d,%d,%d) B%d bias%d", g->H,
             g->W, g->C, g->KH, g->KW, g->OC, g->sh, g->sw, g->dh, g->dw, g->pt, g->pl, g->pb,
             g->pr, g->B, g->bias);
}

/* input -> conv2d (output); variable 0 the kernel, 1 the bias; weights drawn from seed */
static pn_model *make_conv(const cfg *g, unsigned seed) {
    pn_model *m;
    if (pn_model_create(&m)) return NULL;
    int vk, vb = -1, in, node;
    int64_t ks[4] = {g->KH, g->KW, g->C, g->OC}, bs[1] = {g->OC}, xs[3] = {g->H, g->W, g->C};
    pn_model_add_variable(m, 4, ks, 1, &vk);
    if (g->bias) pn_model_add_variable(m, 1, bs, 1, &vb);
    pn_model_alloc(m);
    float *w = param(m, vk);
    for (int i = 0; i < g->KH * g->KW * g->C * g->OC; i++) w[i] = frand(&seed);
    if (g->bias)
        for (int i = 0; i < g->OC; i++) param(m, vb)[i] = frand(&seed);
    pn_model_add_input(m, 3, xs, PN_F32, &in);
    int vars[2] = {vk, vb};
    int ia[PN_MAX_ATTRS] = {g->sh, g->sw, g->dh, g->dw, g->pt, g->pl, g->pb, g->pr};
    int rc = pn_model_add_node(m, PN_OP_CONV2D, 1, &in, g->bias ? 2 : 1, vars, ia, NULL, &node);
    if (rc || pn_model_set_output(m, node)) {
        pn_model_destroy(m);
        return NULL;
    }
    return m;
}

/* the seven loops: out[b, oh, ow, o] = bias[o] + sum_{kh, kw, c} x[b, ih, iw, c] w[kh, kw, c, o] */
static void reference(double *out, const float *x, const float *w, const float *bias,
                      const cfg *g) {
    int OH = out_h(g), OW = out_w(g);
    for (int b = 0; b < g->B; b++)
        for (int oh = 0; oh < OH; oh++)
            for (int ow = 0; ow < OW; ow++)
                for (int o = 0; o < g->OC; o++) {
                    double s = bias ? bias[o] : 0.0;
                    for (int kh = 0; kh < g->KH; kh++)
                        for (int kw = 0; kw < g->KW; kw++)
                            for (int c = 0; c < g->C; c++) {
                                int ih = oh * g->sh - g->pt + kh * g->dh;
                                int iw = ow * g->sw - g->pl + kw * g->dw;
                                if (ih < 0 || ih >= g->H || iw < 0 || iw >= g->W) continue;
                                s += (double)x[((b * g->H + ih) * g->W + iw) * g->C + c] *
                                     w[((kh * g->KW + kw) * g->C + c) * g->OC + o];
                            }
                    out[((b * OH + oh) * OW + ow) * g->OC + o] = s;
                }
}

/* predict (in batches of pred_batch) matches the reference, and the output shape the formula */
static void check_forward(const cfg *g, int pred_batch, unsigned seed) {
    char name[160];
    describe(name, sizeof name, g);
    pn_model *m = make_conv(g, seed);
    CHECK(m != NULL, "%s: model not built", name);
    if (!m) return;
    int OH = out_h(g), OW = out_w(g);
    int64_t shape[8];
    int nd = pn_model_output_shape(m, 0, shape);
    CHECK(nd == 3 && shape[0] == OH && shape[1] == OW && shape[2] == g->OC,
          "%s: output shape (%lld, %lld, %lld), want (%d, %d, %d)", name, (long long)shape[0],
          (long long)shape[1], (long long)shape[2], OH, OW, g->OC);
    int nx = g->B * g->H * g->W * g->C, ny = g->B * OH * OW * g->OC;
    float *x = malloc(sizeof(float) * nx), *y = malloc(sizeof(float) * ny);
    double *ref = malloc(sizeof(double) * ny);
    for (int i = 0; i < nx; i++) x[i] = frand(&seed);
    pn_tensor tx = {.ndim = 4, .dims = {g->B, g->H, g->W, g->C}, .dtype = PN_F32, .data = x};
    int rc = pn_model_predict(m, &tx, pred_batch, (float *[]){y});
    reference(ref, x, param(m, 0), g->bias ? param(m, 1) : NULL, g);
    double err = 0;
    for (int i = 0; i < ny; i++) err = fmax(err, fabs(ref[i] - y[i]) / (1 + fabs(ref[i])));
    CHECK(rc == 0 && err < 1e-5, "%s: forward error %g (rc %d)", name, err, rc);
    free(x);
    free(y);
    free(ref);
    pn_model_destroy(m);
}

/* every combination of kernel, strides, dilation, padding and bias, with sizes, channels and
 * batch varying from one case to the next */
static void test_forward_matches_reference(void) {
    const int kernels[][2] = {{1, 1}, {3, 3}, {2, 3}, {5, 5}};
    const int strides[][2] = {{1, 1}, {2, 2}, {2, 1}};
    const int pads[][4] = {{0, 0, 0, 0}, {1, 0, 2, 1}};
    const int sizes[][2] = {{7, 5}, {8, 9}, {6, 6}};
    int count = 0, skipped = 0;
    for (int k = 0; k < 4; k++)
        for (int s = 0; s < 3; s++)
            for (int dil = 1; dil <= 2; dil++)
                for (int p = 0; p < 2; p++)
                    for (int bias = 0; bias <= 1; bias++) {
                        int i = count + skipped;
                        cfg g = {sizes[i % 3][0], sizes[i % 3][1], i % 2 ? 3 : 1, kernels[k][0],
                                 kernels[k][1], (i / 2) % 2 ? 4 : 1, strides[s][0], strides[s][1],
                                 dil, dil, pads[p][0], pads[p][1], pads[p][2], pads[p][3],
                                 (i / 3) % 2 ? 3 : 1, bias};
                        if (!fits(&g)) {
                            skipped++;
                            continue;
                        }
                        check_forward(&g, g.B, 100u + (unsigned)i);
                        count++;
                    }
    CHECK(count >= 80, "only %d forward configurations ran", count);
    /* dilation along one axis only; batches split over two plans (2 then 1) */
    check_forward(&(cfg){7, 5, 3, 3, 3, 4, 1, 1, 2, 1, 1, 1, 1, 1, 3, 1}, 2, 7u);
    check_forward(&(cfg){7, 5, 3, 1, 1, 4, 1, 1, 1, 1, 0, 0, 0, 0, 3, 1}, 2, 8u);
    /* large enough for the parallel im2col and bias fill, the direct 1x1 GEMM with many rows */
    pn_set_num_threads(2);
    check_forward(&(cfg){20, 20, 8, 3, 3, 48, 1, 1, 1, 1, 1, 0, 2, 1, 4, 1}, 4, 9u);
    check_forward(&(cfg){20, 20, 8, 1, 1, 48, 1, 1, 1, 1, 0, 0, 0, 0, 4, 1}, 4, 10u);
    check_forward(&(cfg){28, 28, 1, 3, 3, 32, 1, 1, 1, 1, 0, 0, 0, 0, 5, 1}, 5, 11u);
    pn_set_num_threads(1);
}

/* The MSE loss of the model on (x, y), in double from predict's float outputs. */
static double mse(pn_model *m, const pn_tensor *tx, const float *y, float *buf, int ny) {
    pn_model_predict(m, tx, tx->dims[0], (float *[]){buf});
    double s = 0;
    for (int i = 0; i < ny; i++) s += ((double)buf[i] - y[i]) * ((double)buf[i] - y[i]);
    return s / ny;
}

/* The analytic gradient g[i] against (L(v + e) - L(v - e)) / 2e for the elements of v listed in
 * idx (all when idx is NULL). The loss is quadratic in each weight, so the central difference is
 * exact but for rounding. Returns the worst error relative to the largest gradient. */
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
        double num = (lp - lm) / (2.0 * eps);
        worst = fmax(worst, fabs(num - g[i]) / scale);
    }
    return worst;
}

/* Input, kernel and bias gradients of MSE(conv(x)) against central differences; every `stride`-th
 * element is checked. Also: a second call gives the same gradients (they are written, not
 * accumulated), and training without an input gradient gives the same weight gradients. */
static void check_gradients(const cfg *g, int stride, unsigned seed) {
    char name[160];
    describe(name, sizeof name, g);
    pn_model *m = make_conv(g, seed);
    CHECK(m != NULL, "%s: model not built", name);
    if (!m) return;
    CHECK(pn_model_compile(m, PN_LOSS_MSE, 0, 0, NULL) == 0, "%s: compile", name);
    int OH = out_h(g), OW = out_w(g);
    int nx = g->B * g->H * g->W * g->C, ny = g->B * OH * OW * g->OC;
    int nk = g->KH * g->KW * g->C * g->OC, nb = g->bias ? g->OC : 0;
    float *x = malloc(sizeof(float) * nx), *y = malloc(sizeof(float) * ny);
    float *buf = malloc(sizeof(float) * ny), *dx = malloc(sizeof(float) * nx);
    float *dx2 = malloc(sizeof(float) * nx), *gw = malloc(sizeof(float) * (nk + nb));
    for (int i = 0; i < nx; i++) x[i] = frand(&seed);
    for (int i = 0; i < ny; i++) y[i] = frand(&seed);
    pn_tensor tx = {.ndim = 4, .dims = {g->B, g->H, g->W, g->C}, .dtype = PN_F32, .data = x};
    pn_tensor ty = {.ndim = 4, .dims = {g->B, OH, OW, g->OC}, .dtype = PN_F32, .data = y};
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
    CHECK(ex < 1e-3, "%s: input gradient error %g", name, ex);
    CHECK(ek < 1e-3, "%s: kernel gradient error %g", name, ek);
    CHECK(eb < 1e-3, "%s: bias gradient error %g", name, eb);

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
    check_gradients(&(cfg){7, 5, 3, 3, 3, 4, 1, 1, 1, 1, 0, 0, 0, 0, 3, 1}, 1, 1u);
    check_gradients(&(cfg){7, 5, 3, 3, 3, 4, 2, 2, 1, 1, 1, 0, 2, 1, 3, 1}, 1, 2u);
    check_gradients(&(cfg){7, 5, 1, 2, 3, 4, 2, 1, 2, 2, 1, 0, 2, 1, 1, 1}, 1, 3u);
    check_gradients(&(cfg){8, 9, 3, 5, 5, 1, 1, 2, 1, 1, 2, 2, 2, 2, 1, 0}, 1, 4u);
    check_gradients(&(cfg){7, 5, 3, 1, 1, 4, 1, 1, 1, 1, 0, 0, 0, 0, 3, 1}, 1, 5u);   /* direct */
    check_gradients(&(cfg){7, 5, 3, 1, 1, 4, 2, 2, 1, 1, 0, 0, 0, 0, 3, 0}, 1, 6u);   /* 1x1 s2 */
    check_gradients(&(cfg){6, 6, 3, 1, 1, 4, 1, 1, 1, 1, 1, 1, 0, 0, 3, 1}, 1, 7u);   /* 1x1 pad */
    /* large enough for the parallel im2col, col2im and chunked bias sums; sampled elements */
    pn_set_num_threads(2);
    check_gradients(&(cfg){20, 20, 8, 3, 3, 48, 1, 1, 1, 1, 1, 0, 2, 1, 4, 1}, 97, 8u);
    check_gradients(&(cfg){20, 20, 8, 1, 1, 48, 1, 1, 1, 1, 0, 0, 0, 0, 4, 1}, 97, 9u);
    pn_set_num_threads(1);
}

/* One kernel and bias shared by two stacked convolutions: the second node's weight gradients
 * add to the first's (accumulate), and the first's input gradient flows through the second. */
static void test_shared_kernel_accumulates(void) {
    pn_model *m;
    pn_model_create(&m);
    int64_t ks[4] = {3, 3, 3, 3}, bs[1] = {3}, xs[3] = {6, 5, 3};
    int v[2], in, n1, n2;
    pn_model_add_variable(m, 4, ks, 1, &v[0]);
    pn_model_add_variable(m, 1, bs, 1, &v[1]);
    pn_model_alloc(m);
    unsigned seed = 21;
    for (int i = 0; i < 81; i++) param(m, v[0])[i] = 0.5f * frand(&seed);
    for (int i = 0; i < 3; i++) param(m, v[1])[i] = frand(&seed);
    pn_model_add_input(m, 3, xs, PN_F32, &in);
    int same[PN_MAX_ATTRS] = {1, 1, 1, 1, 1, 1, 1, 1}, s2[PN_MAX_ATTRS] = {2, 1, 1, 2, 0, 1, 1, 0};
    CHECK(pn_model_add_node(m, PN_OP_CONV2D, 1, &in, 2, v, same, NULL, &n1) == 0, "conv 1");
    CHECK(pn_model_add_node(m, PN_OP_CONV2D, 1, &n1, 2, v, s2, NULL, &n2) == 0, "conv 2");
    pn_model_set_output(m, n2);
    pn_model_compile(m, PN_LOSS_MSE, 0, 0, NULL);
    int64_t os[8];
    pn_model_output_shape(m, 0, os);
    int B = 2, nx = B * 6 * 5 * 3, ny = B * (int)(os[0] * os[1] * os[2]);
    float *x = malloc(sizeof(float) * nx), *y = malloc(sizeof(float) * ny);
    float *buf = malloc(sizeof(float) * ny), *dx = malloc(sizeof(float) * nx), gw[84], loss;
    for (int i = 0; i < nx; i++) x[i] = frand(&seed);
    for (int i = 0; i < ny; i++) y[i] = frand(&seed);
    pn_tensor tx = {4, {B, 6, 5, 3}, PN_F32, x}, ty = {4, {B, os[0], os[1], os[2]}, PN_F32, y};
    int rc = pn_model_gradients(m, &tx, &ty, &loss, (float *[]){dx});
    memcpy(gw, grad(m, v[0]), sizeof(float) * 81);
    memcpy(gw + 81, grad(m, v[1]), sizeof(float) * 3);
    CHECK(rc == 0, "shared kernel: gradients rc %d", rc);
    /* quartic in the shared kernel, so the central difference is only O(eps^2): looser bounds */
    double ex = fd_error(m, &tx, y, buf, ny, x, dx, nx, 1);
    double ek = fd_error(m, &tx, y, buf, ny, param(m, v[0]), gw, 81, 1);
    double eb = fd_error(m, &tx, y, buf, ny, param(m, v[1]), gw + 81, 3, 1);
    CHECK(ex < 2e-3 && ek < 2e-2 && eb < 2e-2, "shared kernel: errors x %g k %g b %g", ex, ek, eb);
    free(x);
    free(y);
    free(buf);
    free(dx);
    pn_model_destroy(m);
}

/* Each bad attribute or shape is refused with a message naming conv2d; the model stays usable. */
static void test_bad_attributes_refused(void) {
    pn_model *m;
    pn_model_create(&m);
    int64_t k_ok[4] = {3, 3, 2, 4}, k2[2] = {3, 8}, k_cin[4] = {3, 3, 5, 4}, b_ok[1] = {4},
            b_bad[1] = {5}, k_big[4] = {6, 3, 2, 4}, k_wide[4] = {3, 6, 2, 4};
    int vk, vb, vk3, vkc, vbb, vkbig, vkwide;
    pn_model_add_variable(m, 4, k_ok, 1, &vk);
    pn_model_add_variable(m, 1, b_ok, 1, &vb);
    pn_model_add_variable(m, 2, k2, 1, &vk3);
    pn_model_add_variable(m, 4, k_cin, 1, &vkc);
    pn_model_add_variable(m, 1, b_bad, 1, &vbb);
    pn_model_add_variable(m, 4, k_big, 1, &vkbig);
    pn_model_add_variable(m, 4, k_wide, 1, &vkwide);
    pn_model_alloc(m);
    int64_t xs[3] = {5, 5, 2};
    int in;
    pn_model_add_input(m, 3, xs, PN_F32, &in);
    const int ok[PN_MAX_ATTRS] = {1, 1, 1, 1, 0, 0, 0, 0};
    struct {
        const char *what;
        int input, n_var, vars[2], slot, value; /* slot < 0: attributes as ok */
        const char *needle;
    } cases[] = {
        {"stride_h 0", in, 2, {vk, vb}, 0, 0, "strides"},
        {"stride_w 0", in, 2, {vk, vb}, 1, 0, "(1, 0)"},
        {"stride_h -2", in, 2, {vk, vb}, 0, -2, "-2"},
        {"dilation_h 0", in, 2, {vk, vb}, 2, 0, "dilation"},
        {"dilation_w 0", in, 2, {vk, vb}, 3, 0, "(1, 0)"},
        {"pad_top -1", in, 2, {vk, vb}, 4, -1, "top -1"},
        {"pad_left -1", in, 2, {vk, vb}, 5, -1, "left -1"},
        {"pad_bottom -1", in, 2, {vk, vb}, 6, -1, "bottom -1"},
        {"pad_right -1", in, 2, {vk, vb}, 7, -1, "right -1"},
        {"kernel rank 2", in, 1, {vk3, -1}, -1, 0, "rank 2"},
        {"kernel Cin 5", in, 1, {vkc, -1}, -1, 0, "2 channels, kernel expects 5"},
        {"bias 5", in, 2, {vk, vbb}, -1, 0, "bias has 5 elements, kernel has 4"},
        {"kernel taller than input", in, 1, {vkbig, -1}, -1, 0, "(6, 3)"},
        {"kernel wider than input", in, 1, {vkwide, -1}, -1, 0, "(3, 6)"},
        {"dilated kernel too tall", in, 1, {vk, -1}, 2, 3, "(7, 3)"},
        {"dilated kernel too wide", in, 1, {vk, -1}, 3, 3, "(3, 7)"},
        {"no variables", in, 0, {-1, -1}, -1, 0, "kernel"},
        {"three variables", in, 3, {vk, vb}, -1, 0, "kernel"},
    };
    int node;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int ia[PN_MAX_ATTRS], vars[3] = {cases[i].vars[0], cases[i].vars[1], vb};
        memcpy(ia, ok, sizeof ia);
        if (cases[i].slot >= 0) ia[cases[i].slot] = cases[i].value;
        int rc = pn_model_add_node(m, PN_OP_CONV2D, 1, &cases[i].input, cases[i].n_var, vars, ia,
                                   NULL, &node);
        const char *msg = pn_last_error();
        CHECK(rc != 0 && strstr(msg, "conv2d") && strstr(msg, cases[i].needle),
              "%s: rc %d, message lacks '%s'", cases[i].what, rc, cases[i].needle);
    }
    int two[2] = {in, in}, vars[2] = {vk, vb};
    CHECK(pn_model_add_node(m, PN_OP_CONV2D, 2, two, 2, vars, ok, NULL, &node) != 0 &&
              strstr(pn_last_error(), "conv2d"), "two inputs accepted");
    /* padding makes a kernel that is too large fit: 'same' for 6x3 on 5x5 */
    int pad[PN_MAX_ATTRS] = {1, 1, 1, 1, 2, 1, 3, 1};
    int64_t shape[8];
    int rc = pn_model_add_node(m, PN_OP_CONV2D, 1, &in, 1, &vkbig, pad, NULL, &node);
    CHECK(rc == 0 && pn_model_node_shape(m, node, shape) == 3 && shape[0] == 5 && shape[1] == 5 &&
              shape[2] == 4, "padded 6x3 kernel on 5x5: rc %d shape (%lld, %lld)", rc,
          (long long)shape[0], (long long)shape[1]);
    pn_model_destroy(m);
}

/* A model has one input: the bad inputs each get their own model. */
static void refused_input(int ndim, const int64_t *xs, pn_dtype dtype, const char *needle) {
    pn_model *m;
    pn_model_create(&m);
    int64_t ks[4] = {3, 3, 2, 4};
    int vk, in, node;
    pn_model_add_variable(m, 4, ks, 1, &vk);
    pn_model_alloc(m);
    CHECK(pn_model_add_input(m, ndim, xs, dtype, &in) == 0, "input not added");
    int ia[PN_MAX_ATTRS] = {1, 1, 1, 1, 0, 0, 0, 0};
    int rc = pn_model_add_node(m, PN_OP_CONV2D, 1, &in, 1, &vk, ia, NULL, &node);
    const char *msg = pn_last_error();
    CHECK(rc != 0 && strstr(msg, "conv2d") && strstr(msg, needle),
          "input rank %d dtype %d: rc %d, message lacks '%s'", ndim, (int)dtype, rc, needle);
    pn_model_destroy(m);
}

static void test_bad_inputs_refused(void) {
    int64_t x2[2] = {5, 10}, x4[4] = {2, 5, 5, 2}, x3[3] = {5, 5, 2};
    refused_input(2, x2, PN_F32, "rank 2");
    refused_input(4, x4, PN_F32, "rank 4");
    refused_input(3, x3, PN_I32, "float32");
}

/* ---- timing ---------------------------------------------------------------------------------- */

static double now_ms(void) {
    struct timespec t;
    timespec_get(&t, TIME_UTC);
    return t.tv_sec * 1e3 + t.tv_nsec * 1e-6;
}

/* ms per predict (inference forward) and per gradients call (training forward + MSE + backward)
 * of one conv layer with bias at batch B; want_dx asks for the input gradient as well. */
static void bench(const char *name, int H, int W, int C, int OC, int B, int want_dx) {
    cfg g = {H, W, C, 3, 3, OC, 1, 1, 1, 1, 0, 0, 0, 0, B, 1};
    pn_model *m = make_conv(&g, 1u);
    pn_model_compile(m, PN_LOSS_MSE, 0, 0, NULL);
    int OH = out_h(&g), OW = out_w(&g), nx = B * H * W * C, ny = B * OH * OW * OC;
    float *x = malloc(sizeof(float) * nx), *y = malloc(sizeof(float) * ny);
    float *out = malloc(sizeof(float) * ny), *dx = malloc(sizeof(float) * nx), loss;
    unsigned seed = 3;
    for (int i = 0; i < nx; i++) x[i] = frand(&seed);
    for (int i = 0; i < ny; i++) y[i] = frand(&seed);
    pn_tensor tx = {4, {B, H, W, C}, PN_F32, x}, ty = {4, {B, OH, OW, OC}, PN_F32, y};
    int reps = 200;
    double best_f = 1e30, best_g = 1e30;
    for (int trial = 0; trial < 5; trial++) {
        pn_model_predict(m, &tx, B, (float *[]){out});
        double t0 = now_ms();
        for (int r = 0; r < reps; r++) pn_model_predict(m, &tx, B, (float *[]){out});
        double t1 = now_ms();
        pn_model_gradients(m, &tx, &ty, &loss, want_dx ? (float *[]){dx} : NULL);
        double t2 = now_ms();
        for (int r = 0; r < reps; r++)
            pn_model_gradients(m, &tx, &ty, &loss, want_dx ? (float *[]){dx} : NULL);
        double t3 = now_ms();
        best_f = fmin(best_f, (t1 - t0) / reps);
        best_g = fmin(best_g, (t3 - t2) / reps);
    }
    printf("%-34s threads %d  forward %7.3f ms  gradients%s %7.3f ms\n", name,
           pn_get_num_threads(), best_f, want_dx ? " (+dx)" : "     ", best_g);
    free(x);
    free(y);
    free(out);
    free(dx);
    pn_model_destroy(m);
}

/* ---- conv2d_transpose ------------------------------------------------------------------------
 * Input (IH, IW, C), kernel (KH, KW, F, C), the strides, dilations and (top, left) pads of the
 * conv2d it transposes, output (OH, OW, F), batch B, bias or not. */
typedef struct {
    int IH, IW, C, KH, KW, F, sh, sw, dh, dw, pt, pl, OH, OW, B, bias;
} tcfg;

static pn_model *make_transpose(const tcfg *g, unsigned seed) {
    pn_model *m;
    if (pn_model_create(&m)) return NULL;
    int vk, vb = -1, in, node;
    int64_t ks[4] = {g->KH, g->KW, g->F, g->C}, bs[1] = {g->F}, xs[3] = {g->IH, g->IW, g->C};
    pn_model_add_variable(m, 4, ks, 1, &vk);
    if (g->bias) pn_model_add_variable(m, 1, bs, 1, &vb);
    pn_model_alloc(m);
    for (int i = 0; i < g->KH * g->KW * g->F * g->C; i++) param(m, vk)[i] = frand(&seed);
    for (int i = 0; g->bias && i < g->F; i++) param(m, vb)[i] = frand(&seed);
    pn_model_add_input(m, 3, xs, PN_F32, &in);
    int vars[2] = {vk, vb};
    int ia[PN_MAX_ATTRS] = {g->sh, g->sw, g->dh, g->dw, g->pt, g->pl, g->OH, g->OW};
    if (pn_model_add_node(m, PN_OP_CONV2D_TRANSPOSE, 1, &in, g->bias ? 2 : 1, vars, ia, NULL,
                          &node) ||
        pn_model_set_output(m, node) || pn_model_compile(m, PN_LOSS_MSE, 0, 0, NULL)) {
        pn_model_destroy(m);
        return NULL;
    }
    return m;
}

/* Forward against the defining loop (every input pixel spreads through every tap that lands
 * inside the output), then input, kernel and bias gradients against central differences. */
static void check_transpose(const tcfg *g, unsigned seed) {
    pn_model *m = make_transpose(g, seed);
    CHECK(m != NULL, "transpose %dx%d s(%d,%d): model not built", g->KH, g->KW, g->sh, g->sw);
    if (!m) return;
    int nx = g->B * g->IH * g->IW * g->C, ny = g->B * g->OH * g->OW * g->F;
    int nk = g->KH * g->KW * g->F * g->C, nb = g->bias ? g->F : 0;
    float *x = malloc(sizeof(float) * nx), *y = malloc(sizeof(float) * ny);
    float *buf = malloc(sizeof(float) * ny), *dx = malloc(sizeof(float) * nx);
    float *gw = malloc(sizeof(float) * (nk + nb));
    double *ref = calloc((size_t)ny, sizeof(double));
    for (int i = 0; i < nx; i++) x[i] = frand(&seed);
    for (int i = 0; i < ny; i++) y[i] = frand(&seed);
    const float *w = param(m, 0);
    for (int b = 0; b < g->B; b++)
        for (int oh = 0; oh < g->IH; oh++)
            for (int ow = 0; ow < g->IW; ow++)
                for (int kh = 0; kh < g->KH; kh++)
                    for (int kw = 0; kw < g->KW; kw++) {
                        int i = oh * g->sh - g->pt + kh * g->dh;
                        int j = ow * g->sw - g->pl + kw * g->dw;
                        if (i < 0 || i >= g->OH || j < 0 || j >= g->OW) continue;
                        for (int f = 0; f < g->F; f++)
                            for (int c = 0; c < g->C; c++)
                                ref[((b * g->OH + i) * g->OW + j) * g->F + f] +=
                                    (double)x[((b * g->IH + oh) * g->IW + ow) * g->C + c] *
                                    w[((kh * g->KW + kw) * g->F + f) * g->C + c];
                    }
    for (int i = 0; nb && i < ny; i++) ref[i] += param(m, 1)[i % g->F];
    pn_tensor tx = {.ndim = 4, .dims = {g->B, g->IH, g->IW, g->C}, .dtype = PN_F32, .data = x};
    pn_tensor ty = {.ndim = 4, .dims = {g->B, g->OH, g->OW, g->F}, .dtype = PN_F32, .data = y};
    pn_model_predict(m, &tx, g->B, (float *[]){buf});
    double err = rel_err(buf, ref, ny, 1.0);
    CHECK(err < 1e-5, "transpose %dx%d s(%d,%d): forward error %g", g->KH, g->KW, g->sh, g->sw,
          err);
    float loss;
    CHECK(pn_model_gradients(m, &tx, &ty, &loss, (float *[]){dx}) == 0, "transpose gradients");
    memcpy(gw, grad(m, 0), sizeof(float) * nk);
    if (nb) memcpy(gw + nk, grad(m, 1), sizeof(float) * nb);
    double ex = fd_error(m, &tx, y, buf, ny, x, dx, nx, 1);
    double ek = fd_error(m, &tx, y, buf, ny, param(m, 0), gw, nk, 1);
    double eb = nb ? fd_error(m, &tx, y, buf, ny, param(m, 1), gw + nk, nb, 1) : 0;
    CHECK(ex < 1e-3 && ek < 1e-3 && eb < 1e-3,
          "transpose %dx%d s(%d,%d): gradient errors x %g kernel %g bias %g", g->KH, g->KW, g->sh,
          g->sw, ex, ek, eb);
    free(x);
    free(y);
    free(buf);
    free(dx);
    free(gw);
    free(ref);
    pn_model_destroy(m);
}

static void test_transpose(void) {
    /* Keras 'same', stride 2, kernel 4: out = 2 in, top pad 1 */
    check_transpose(&(tcfg){3, 4, 2, 4, 4, 3, 2, 2, 1, 1, 1, 1, 6, 8, 2, 1}, 21u);
    /* 'valid', strides (2, 3), kernel (3, 2): out (7, 11) */
    check_transpose(&(tcfg){3, 4, 2, 3, 2, 3, 2, 3, 1, 1, 0, 0, 7, 11, 2, 1}, 22u);
    /* dilation 2, an output past the taps (output_padding), no bias */
    check_transpose(&(tcfg){4, 3, 3, 3, 2, 2, 1, 2, 2, 1, 2, 0, 5, 8, 2, 0}, 23u);
    /* 1x1 stride 1: the direct path */
    check_transpose(&(tcfg){4, 3, 3, 1, 1, 5, 1, 1, 1, 1, 0, 0, 4, 3, 2, 1}, 24u);
    /* bad attributes: no output size, a negative pad, the kernel's channels */
    pn_model *m;
    pn_model_create(&m);
    int v, in, node;
    int64_t ks[4] = {3, 3, 4, 2}, xs[3] = {5, 5, 3};
    pn_model_add_variable(m, 4, ks, 1, &v);
    pn_model_alloc(m);
    pn_model_add_input(m, 3, xs, PN_F32, &in);
    int ia[PN_MAX_ATTRS] = {2, 2, 1, 1, 1, 1, 10, 10};
    CHECK(pn_model_add_node(m, PN_OP_CONV2D_TRANSPOSE, 1, &in, 1, &v, ia, NULL, &node) ==
              PN_ESHAPE, "kernel for 2 input channels on 3");
    int64_t xs2[3] = {5, 5, 2};
    pn_model_add_input(m, 3, xs2, PN_F32, &in);
    ia[6] = 0;
    CHECK(pn_model_add_node(m, PN_OP_CONV2D_TRANSPOSE, 1, &in, 1, &v, ia, NULL, &node) ==
              PN_EVALUE, "no output size");
    ia[6] = 10, ia[4] = -1;
    CHECK(pn_model_add_node(m, PN_OP_CONV2D_TRANSPOSE, 1, &in, 1, &v, ia, NULL, &node) ==
              PN_EVALUE, "negative pad");
    ia[4] = 1;
    CHECK(pn_model_add_node(m, PN_OP_CONV2D_TRANSPOSE, 1, &in, 1, &v, ia, NULL, &node) == 0,
          "a good one");
    pn_model_destroy(m);
}

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "bench") == 0) {
        int threads = argc > 2 ? atoi(argv[2]) : 1;
        pn_set_num_threads(threads > 0 ? threads : 1);
        bench("conv 3x3 1->32 on 28x28, B=64", 28, 28, 1, 32, 64, 0);
        bench("conv 3x3 32->64 on 13x13, B=64", 13, 13, 32, 64, 64, 1);
        return 0;
    }
    test_forward_matches_reference();
    test_gradients_match_finite_differences();
    test_transpose();
    test_shared_kernel_accumulates();
    test_bad_attributes_refused();
    test_bad_inputs_refused();
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
