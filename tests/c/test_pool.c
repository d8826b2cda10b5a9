/*
 * test_pool.c: the pooling, zero padding and reshape ops (ops_pool.c, ops_shape.c) through the
 * public header: forward against naive loops, gradients against finite differences and a naive
 * backward, bad attributes refused; the plan's relu/max-pool swap (passes.c) against the plan
 * without it. Prints "N passed, M failed" and exits non-zero on failure.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "internal.h" /* the plan's marks, to see that the swap happens */


static unsigned rng_state = 12345u;
static unsigned urand(void) {
    rng_state = rng_state * 1103515245u + 12345u;
    return rng_state >> 8;
}
static float next_float(void) { return (float)(urand() & 0xFFFF) / 32768.0f - 1.0f; }

/* n distinct values spaced 0.05 apart in random order: no ties, and a step below 0.025 never
 * changes which element wins a max. */
static void fill_distinct(float *x, int n) {
    for (int i = 0; i < n; i++) x[i] = (float)i;
    for (int i = n - 1; i > 0; i--) {
        int j = (int)(urand() % (unsigned)(i + 1));
        float t = x[i];
        x[i] = x[j];
        x[j] = t;
    }
    for (int i = 0; i < n; i++) x[i] = (x[i] - 0.5f * (float)n) * 0.05f;
}

/* ---- the models: input (H, W, C) -> op ------------------------------------------------------ */

typedef struct {
    int op;
    int iattr[PN_MAX_ATTRS];
} op_cfg;

/* not NULL: model.c memcpy's the metrics even when there are none */
static const pn_metric no_metrics[1] = {{.kind = PN_METRIC_MSE}};

static pn_model *make_model(const op_cfg *o, int H, int W, int C) {
    pn_model *m;
    if (pn_model_create(&m)) return NULL;
    int64_t xs[3] = {H, W, C};
    int in, node;
    if (pn_model_alloc(m) || pn_model_add_input(m, 3, xs, PN_F32, &in) ||
        pn_model_add_node(m, o->op, 1, &in, 0, NULL, o->iattr, NULL, &node) ||
        pn_model_set_output(m, node) || pn_model_compile(m, PN_LOSS_MSE, 0, 0, no_metrics)) {
        printf("could not build %s: %s\n", pn_op_name(o->op), pn_last_error());
        pn_model_destroy(m);
        return NULL;
    }
    return m;
}

/* ---- naive references ----------------------------------------------------------------------- */

/* The output shape of op on (H, W, C); returns the per-sample size. */
static int ref_shape(const op_cfg *o, int H, int W, int C, int *OH, int *OW, int *OC) {
    const int *a = o->iattr;
    *OC = C;
    switch (o->op) {
    case PN_OP_MAX_POOL2D:
    case PN_OP_AVG_POOL2D:
        *OH = (H + a[4] + a[6] - a[0]) / a[2] + 1;
        *OW = (W + a[5] + a[7] - a[1]) / a[3] + 1;
        break;
    case PN_OP_GLOBAL_AVG_POOL2D:
    case PN_OP_GLOBAL_MAX_POOL2D:
        *OH = *OW = 1;
        break;
    case PN_OP_ZERO_PAD2D:
        *OH = H + a[0] + a[1];
        *OW = W + a[2] + a[3];
        break;
    default: /* reshape: the same elements */
        *OH = H;
        *OW = W;
    }
    return *OH * *OW * *OC;
}

/* out = op(x) for B samples, and, when dout is non-NULL, dx = the op's input gradient for dout:
 * each output element's window of inside positions, then max (first in row-major order), mean,
 * or a copy. */
static void ref_op(const op_cfg *o, int B, int H, int W, int C, const float *x, double *out,
                   const double *dout, double *dx) {
    int OH, OW, OC;
    int os = ref_shape(o, H, W, C, &OH, &OW, &OC), is = H * W * C;
    const int *a = o->iattr;
    if (dx)
        for (int i = 0; i < B * is; i++) dx[i] = 0;
    for (int b = 0; b < B; b++)
        for (int oh = 0; oh < OH; oh++)
            for (int ow = 0; ow < OW; ow++)
                for (int c = 0; c < C; c++) {
                    int oi = b * os + (oh * OW + ow) * C + c;
                    /* the window in input coordinates */
                    int h0, h1, w0, w1;
                    switch (o->op) {
                    case PN_OP_MAX_POOL2D:
                    case PN_OP_AVG_POOL2D:
                        h0 = oh * a[2] - a[4], h1 = h0 + a[0];
                        w0 = ow * a[3] - a[5], w1 = w0 + a[1];
                        break;
                    case PN_OP_GLOBAL_AVG_POOL2D:
                    case PN_OP_GLOBAL_MAX_POOL2D:
                        h0 = 0, h1 = H, w0 = 0, w1 = W;
                        break;
                    case PN_OP_ZERO_PAD2D:
                        h0 = oh - a[0], h1 = h0 + 1, w0 = ow - a[2], w1 = w0 + 1;
                        break;
                    default:
                        h0 = oh, h1 = oh + 1, w0 = ow, w1 = ow + 1;
                    }
                    int best = -1, count = 0;
                    double sum = 0;
                    for (int h = h0; h < h1; h++)
                        for (int w = w0; w < w1; w++) {
                            if (h < 0 || h >= H || w < 0 || w >= W) continue;
                            int i = b * is + (h * W + w) * C + c;
                            count++;
                            sum += x[i];
                            if (best < 0 || x[i] > x[best]) best = i;
                        }
                    int is_max = o->op == PN_OP_MAX_POOL2D || o->op == PN_OP_GLOBAL_MAX_POOL2D;
                    if (is_max) {
                        out[oi] = x[best];
                        if (dx) dx[best] += dout[oi];
                    } else if (count == 0) { /* zero padding */
                        out[oi] = 0;
                    } else {
                        out[oi] = sum / count;
                        if (dx)
                            for (int h = h0; h < h1; h++)
                                for (int w = w0; w < w1; w++)
                                    if (h >= 0 && h < H && w >= 0 && w < W)
                                        dx[b * is + (h * W + w) * C + c] += dout[oi] / count;
                    }
                }
}

static const char *cfg_str(const op_cfg *o, int B, int H, int W, int C) {
    static char s[200];
    snprintf(s, sizeof s, "%s [%d %d %d %d %d %d %d %d] B=%d (%d,%d,%d)", pn_op_name(o->op),
             o->iattr[0], o->iattr[1], o->iattr[2], o->iattr[3], o->iattr[4], o->iattr[5],
             o->iattr[6], o->iattr[7], B, H, W, C);
    return s;
}

/* ---- forward and the gradient against the naive backward --------------------------------------
 * The loss is MSE: dloss/dout = 2 (out - y) / N over the N output elements. ties: x holds a few
 * levels only, so max pools must break ties as the reference does (first in the window). */
static void check_op(const op_cfg *o, int B, int H, int W, int C, int ties) {
    int OH, OW, OC;
    int os = ref_shape(o, H, W, C, &OH, &OW, &OC), is = H * W * C;
    pn_model *m = make_model(o, H, W, C);
    CHECK(m != NULL, "%s builds", cfg_str(o, B, H, W, C));
    if (!m) return;
    int64_t shp[8];
    int nd = pn_model_output_shape(m, 0, shp);
    int64_t got = 1;
    for (int i = 0; i < nd; i++) got *= shp[i];
    CHECK(got == os, "%s: output size %lld, expected %d", cfg_str(o, B, H, W, C), (long long)got,
          os);

    float *x = malloc(sizeof(float) * B * is), *y = malloc(sizeof(float) * B * os);
    float *out = malloc(sizeof(float) * B * os), *dx = malloc(sizeof(float) * B * is);
    double *ro = malloc(sizeof(double) * B * os), *rd = malloc(sizeof(double) * B * is);
    double *g = malloc(sizeof(double) * B * os);
    for (int i = 0; i < B * is; i++) x[i] = ties ? (float)(urand() % 3) : next_float();
    for (int i = 0; i < B * os; i++) y[i] = next_float();
    pn_tensor tx = {.ndim = 4, .dims = {B, H, W, C}, .dtype = PN_F32, .data = x};
    pn_tensor ty = {.ndim = 2, .dims = {B, os}, .dtype = PN_F32, .data = y};

    /* forward, in batches of 2 so a batch of 3 also runs a batch of 1 */
    int rc = pn_model_predict(m, &tx, 2, (float *[]){out});
    CHECK(rc == 0, "%s: predict rc %d", cfg_str(o, B, H, W, C), rc);
    ref_op(o, B, H, W, C, x, ro, NULL, NULL);
    double err = 0;
    for (int i = 0; i < B * os; i++) err = fmax(err, fabs(out[i] - ro[i]));
    CHECK(err < 1e-5, "%s: forward max error %g", cfg_str(o, B, H, W, C), err);

    /* the gradient, twice: the second run finds the last run's values in the buffers */
    for (int i = 0; i < B * os; i++) g[i] = 2.0 * ((double)ro[i] - y[i]) / (B * os);
    ref_op(o, B, H, W, C, x, ro, g, rd);
    for (int run = 0; run < 2; run++) {
        float loss;
        rc = pn_model_gradients(m, &tx, &ty, &loss, (float *[]){dx});
        CHECK(rc == 0, "%s: gradients rc %d", cfg_str(o, B, H, W, C), rc);
        double e = 0, scale = 1e-12;
        for (int i = 0; i < B * is; i++) {
            e = fmax(e, fabs(dx[i] - rd[i]));
            scale = fmax(scale, fabs(rd[i]));
        }
        CHECK(e <= 1e-4 * scale, "%s%s: input gradient max error %g (scale %g)",
              cfg_str(o, B, H, W, C), ties ? " ties" : "", e, scale);
    }
    free(x), free(y), free(out), free(dx), free(ro), free(rd), free(g);
    pn_model_destroy(m);
}

/* ---- gradient by central finite differences of the loss, computed in double ----------------- */

static double mse(pn_model *m, const pn_tensor *tx, const float *y, float *out, int n) {
    pn_model_predict(m, tx, 64, (float *[]){out});
    double s = 0;
    for (int i = 0; i < n; i++) s += ((double)out[i] - y[i]) * ((double)out[i] - y[i]);
    return s / n;
}

static void check_fd(const op_cfg *o, int B, int H, int W, int C) {
    int OH, OW, OC;
    int os = ref_shape(o, H, W, C, &OH, &OW, &OC), is = H * W * C, n = B * is;
    pn_model *m = make_model(o, H, W, C);
    CHECK(m != NULL, "%s builds", cfg_str(o, B, H, W, C));
    if (!m) return;
    float *x = malloc(sizeof(float) * n), *y = malloc(sizeof(float) * B * os);
    float *out = malloc(sizeof(float) * B * os), *dx = malloc(sizeof(float) * n);
    fill_distinct(x, n);
    for (int i = 0; i < B * os; i++) y[i] = next_float();
    pn_tensor tx = {.ndim = 4, .dims = {B, H, W, C}, .dtype = PN_F32, .data = x};
    pn_tensor ty = {.ndim = 2, .dims = {B, os}, .dtype = PN_F32, .data = y};
    float loss;
    int rc = pn_model_gradients(m, &tx, &ty, &loss, (float *[]){dx});
    CHECK(rc == 0, "%s: gradients rc %d", cfg_str(o, B, H, W, C), rc);
    double worst = 0;
    int bad = -1;
    for (int i = 0; i < n; i++) {
        float x0 = x[i], xp = x0 + 1e-2f, xm = x0 - 1e-2f;
        x[i] = xp;
        double lp = mse(m, &tx, y, out, B * os);
        x[i] = xm;
        double lm = mse(m, &tx, y, out, B * os);
        x[i] = x0;
        double fd = (lp - lm) / ((double)xp - (double)xm);
        double e = fabs(fd - dx[i]) / (1e-2 * fmax(fabs(fd), fabs(dx[i])) + 1e-6);
        if (e > worst) worst = e, bad = i;
    }
    CHECK(worst <= 1.0, "%s: finite differences disagree at %d: worst ratio %g",
          cfg_str(o, B, H, W, C), bad, worst);
    free(x), free(y), free(out), free(dx);
    pn_model_destroy(m);
}

/* ---- the configurations --------------------------------------------------------------------- */

static const op_cfg pools[] = {
    {PN_OP_MAX_POOL2D, {2, 2, 2, 2, 0, 0, 0, 0}},
    {PN_OP_MAX_POOL2D, {3, 3, 2, 2, 0, 0, 0, 0}},
    {PN_OP_MAX_POOL2D, {3, 3, 1, 1, 0, 0, 0, 0}},
    {PN_OP_MAX_POOL2D, {2, 3, 1, 2, 0, 0, 0, 0}},
    {PN_OP_MAX_POOL2D, {3, 3, 2, 2, 0, 1, 1, 1}}, /* asymmetric padding */
    {PN_OP_MAX_POOL2D, {2, 2, 2, 2, 0, 0, 1, 1}}, /* Keras 'same' 2x2/2 on 7x5 */
    {PN_OP_MAX_POOL2D, {3, 3, 1, 1, 1, 1, 1, 1}}, /* Keras 'same' 3x3/1 */
    {PN_OP_MAX_POOL2D, {1, 1, 2, 3, 0, 0, 0, 0}}, /* stride beyond the pool: skips inputs */
};
#define N_POOLS ((int)(sizeof pools / sizeof pools[0]))

static const op_cfg others[] = {
    {PN_OP_GLOBAL_AVG_POOL2D, {0}},
    {PN_OP_GLOBAL_MAX_POOL2D, {0}},
    {PN_OP_ZERO_PAD2D, {1, 2, 0, 3}},
    {PN_OP_ZERO_PAD2D, {0, 0, 2, 1}},
    {PN_OP_ZERO_PAD2D, {0, 0, 0, 0}},
};
#define N_OTHERS ((int)(sizeof others / sizeof others[0]))

static void test_forward_and_gradients(void) {
    const int shapes[][3] = {{7, 5, 1}, {7, 5, 3}, {6, 6, 3}};
    for (int s = 0; s < 3; s++)
        for (int B = 1; B <= 3; B += 2)
            for (int k = 0; k < 2 * N_POOLS + N_OTHERS; k++) {
                op_cfg o = k < 2 * N_POOLS ? pools[k / 2] : others[k - 2 * N_POOLS];
                if (k < 2 * N_POOLS && k % 2) o.op = PN_OP_AVG_POOL2D;
                check_op(&o, B, shapes[s][0], shapes[s][1], shapes[s][2], 0);
                if (o.op == PN_OP_MAX_POOL2D || o.op == PN_OP_GLOBAL_MAX_POOL2D)
                    check_op(&o, B, shapes[s][0], shapes[s][1], shapes[s][2], 1);
            }
    /* large enough for the OpenMP loops, on several threads */
    pn_set_num_threads(3);
    for (int k = 0; k < 2 * N_POOLS + N_OTHERS; k++) {
        op_cfg o = k < 2 * N_POOLS ? pools[k / 2] : others[k - 2 * N_POOLS];
        if (k < 2 * N_POOLS && k % 2) o.op = PN_OP_AVG_POOL2D;
        check_op(&o, 5, 26, 27, 32, 0);
        if (o.op == PN_OP_MAX_POOL2D) check_op(&o, 5, 26, 27, 32, 1);
    }
    pn_set_num_threads(1);
}

static void test_finite_differences(void) {
    for (int k = 0; k < 2 * N_POOLS + N_OTHERS; k++) {
        op_cfg o = k < 2 * N_POOLS ? pools[k / 2] : others[k - 2 * N_POOLS];
        if (k < 2 * N_POOLS && k % 2) o.op = PN_OP_AVG_POOL2D;
        check_fd(&o, 2, 7, 5, 3);
        check_fd(&o, 1, 6, 6, 1);
    }
}

/* ---- reshape -------------------------------------------------------------------------------- */

static void test_reshape(void) {
    /* (4, 3, 2) -> flatten (24) and -> (6, 4): the same elements in the same order */
    const int targets[][PN_MAX_ATTRS] = {{1, 24}, {2, 6, 4}, {3, 2, 3, 4}, {4, 1, 24, 1, 1}};
    for (int t = 0; t < 4; t++) {
        pn_model *m;
        pn_model_create(&m);
        int64_t xs[3] = {4, 3, 2}, shp[8];
        int in, node;
        pn_model_alloc(m);
        pn_model_add_input(m, 3, xs, PN_F32, &in);
        int rc = pn_model_add_node(m, PN_OP_RESHAPE, 1, &in, 0, NULL, targets[t], NULL, &node);
        CHECK(rc == 0, "reshape to rank %d rc %d", targets[t][0], rc);
        int r = pn_model_node_shape(m, node, shp);
        int same = r == targets[t][0];
        for (int i = 0; same && i < r; i++) same = shp[i] == targets[t][1 + i];
        CHECK(same, "reshape: node shape of target %d", t);
        pn_model_set_output(m, node);
        pn_model_compile(m, PN_LOSS_MSE, 0, 0, no_metrics);
        enum { B = 3, N = B * 24 };
        float x[N], y[N], out[N], dx[N], loss;
        for (int i = 0; i < N; i++) x[i] = next_float(), y[i] = next_float();
        pn_tensor tx = {.ndim = 4, .dims = {B, 4, 3, 2}, .dtype = PN_F32, .data = x};
        pn_tensor ty = {.ndim = 2, .dims = {B, 24}, .dtype = PN_F32, .data = y};
        CHECK(pn_model_predict(m, &tx, 2, (float *[]){out}) == 0 && memcmp(out, x, sizeof x) == 0,
              "reshape: forward is a copy");
        rc = pn_model_gradients(m, &tx, &ty, &loss, (float *[]){dx});
        double e = 0;
        for (int i = 0; i < N; i++) e = fmax(e, fabs(dx[i] - 2.0 * ((double)x[i] - y[i]) / N));
        CHECK(rc == 0 && e < 1e-6, "reshape: gradient error %g", e);
        /* finite differences on a few elements */
        for (int i = 0; i < N; i += 7) {
            float x0 = x[i], xp = x0 + 1e-2f, xm = x0 - 1e-2f;
            x[i] = xp;
            double lp = mse(m, &tx, y, out, N);
            x[i] = xm;
            double lm = mse(m, &tx, y, out, N);
            x[i] = x0;
            double fd = (lp - lm) / ((double)xp - (double)xm);
            CHECK(fabs(fd - dx[i]) <= 1e-2 * fabs(fd) + 1e-6, "reshape: fd %g vs %g at %d", fd,
                  dx[i], i);
        }
        pn_model_destroy(m);
    }
}

/* ---- NaN wins a max, as in PyTorch ---------------------------------------------------------- */

static void test_max_nan(void) {
    op_cfg o = {PN_OP_MAX_POOL2D, {2, 2, 2, 2, 0, 0, 0, 0}};
    pn_model *m = make_model(&o, 4, 4, 1);
    if (!m) return;
    float x[16], out[4];
    for (int i = 0; i < 16; i++) x[i] = (float)i;
    x[5] = NAN; /* in the first window, not its last element */
    pn_tensor tx = {.ndim = 4, .dims = {1, 4, 4, 1}, .dtype = PN_F32, .data = x};
    pn_model_predict(m, &tx, 1, (float *[]){out});
    CHECK(isnan(out[0]) && out[1] == 7.0f && out[2] == 13.0f && out[3] == 15.0f,
          "max_pool2d: NaN propagates (%g %g %g %g)", out[0], out[1], out[2], out[3]);
    pn_model_destroy(m);
}

/* ---- refused attributes and shapes ---------------------------------------------------------- */

/* add_node(op, iattr) on an input of rank r refuses with a message naming the op. */
static void expect_refused(int op, int r, const int64_t *xs, pn_dtype dt, int n_var,
                           const int *iattr, const char *what) {
    pn_model *m;
    pn_model_create(&m);
    int v, in, node = -1;
    int64_t vs[1] = {4};
    pn_model_add_variable(m, 1, vs, 1, &v);
    pn_model_alloc(m);
    pn_model_add_input(m, r, xs, dt, &in);
    int rc = pn_model_add_node(m, op, 1, &in, n_var, &v, iattr, NULL, &node);
    const char *msg = pn_last_error();
    CHECK(rc < 0 && strstr(msg, pn_op_name(op)) != NULL, "%s %s: refused (rc %d)",
          pn_op_name(op), what, rc);
    pn_model_destroy(m);
}

static void test_refused(void) {
    const int64_t img[3] = {7, 5, 3}, flat[2] = {7, 5}, small[3] = {4, 4, 1};
    const int ok_pool[PN_MAX_ATTRS] = {2, 2, 2, 2, 0, 0, 0, 0};
    const int ops[2] = {PN_OP_MAX_POOL2D, PN_OP_AVG_POOL2D};
    for (int k = 0; k < 2; k++) {
        int op = ops[k];
        expect_refused(op, 2, flat, PN_F32, 0, ok_pool, "rank 2 input");
        expect_refused(op, 3, img, PN_I32, 0, ok_pool, "int32 input");
        expect_refused(op, 3, img, PN_F32, 1, ok_pool, "a weight");
        const int bad[][PN_MAX_ATTRS] = {
            {0, 2, 2, 2, 0, 0, 0, 0},  /* pool_h 0 */
            {2, -1, 2, 2, 0, 0, 0, 0}, /* pool_w < 0 */
            {2, 2, 0, 2, 0, 0, 0, 0},  /* stride_h 0 */
            {2, 2, 2, -3, 0, 0, 0, 0}, /* stride_w < 0 */
            {2, 2, 2, 2, -1, 0, 0, 0}, /* negative pads, each */
            {2, 2, 2, 2, 0, -1, 0, 0},
            {2, 2, 2, 2, 0, 0, -1, 0},
            {2, 2, 2, 2, 0, 0, 0, -1},
            {8, 2, 1, 1, 0, 0, 0, 0},  /* window taller than the input */
            {2, 7, 1, 1, 0, 0, 0, 0},  /* window wider than the input */
            {9, 2, 1, 1, 1, 0, 0, 0},  /* taller than the padded input */
            {2, 2, 1, 1, 2, 0, 0, 0},  /* top pad >= pool: the first window is all padding */
            {2, 2, 1, 1, 0, 3, 0, 0},  /* left pad >= pool */
            {2, 2, 2, 2, 0, 0, 3, 0},  /* the last window lies in the bottom padding */
            {2, 2, 2, 2, 0, 0, 0, 3},  /* ... in the right padding */
        };
        for (int i = 0; i < (int)(sizeof bad / sizeof bad[0]); i++) {
            char what[64];
            snprintf(what, sizeof what, "bad attributes #%d", i);
            expect_refused(op, 3, img, PN_F32, 0, bad[i], what);
        }
        /* a 4x4 input, pool 2 stride 2, bottom pad 2: OH 3, the last window wholly padding */
        const int pad2[PN_MAX_ATTRS] = {2, 2, 2, 2, 0, 0, 2, 0};
        expect_refused(op, 3, small, PN_F32, 0, pad2, "last window in the padding");
    }
    const int none[PN_MAX_ATTRS] = {0};
    expect_refused(PN_OP_GLOBAL_AVG_POOL2D, 2, flat, PN_F32, 0, none, "rank 2 input");
    expect_refused(PN_OP_GLOBAL_MAX_POOL2D, 2, flat, PN_F32, 0, none, "rank 2 input");
    expect_refused(PN_OP_GLOBAL_MAX_POOL2D, 3, img, PN_F32, 1, none, "a weight");
    const int pads[][PN_MAX_ATTRS] = {{-1, 0, 0, 0}, {0, -1, 0, 0}, {0, 0, -1, 0}, {0, 0, 0, -2}};
    for (int i = 0; i < 4; i++) expect_refused(PN_OP_ZERO_PAD2D, 3, img, PN_F32, 0, pads[i], "pad");
    expect_refused(PN_OP_ZERO_PAD2D, 2, flat, PN_F32, 0, none, "rank 2 input");
    const int shapes[][PN_MAX_ATTRS] = {
        {0},                                          /* rank 0 */
        {8, 1, 1, 1, 1, 1, 1, 1},                     /* rank 8 */
        {-1, 105},                                    /* negative rank */
        {1, 104},                                     /* one element short */
        {2, 15, 8},                                   /* too many */
        {2, 0, 105},                                  /* a zero dim */
        {2, -1, 105},                                 /* -1 is not inferred */
        {7, 1 << 30, 1 << 30, 1 << 30, 1 << 30, 1 << 30, 1 << 30, 1 << 30}, /* overflow */
    };
    for (int i = 0; i < (int)(sizeof shapes / sizeof shapes[0]); i++) {
        char what[64];
        snprintf(what, sizeof what, "target #%d", i);
        expect_refused(PN_OP_RESHAPE, 3, img, PN_F32, 0, shapes[i], what);
    }
    const int flat105[PN_MAX_ATTRS] = {1, 105};
    expect_refused(PN_OP_RESHAPE, 3, img, PN_I32, 0, flat105, "int32 input");
    expect_refused(PN_OP_RESHAPE, 3, img, PN_F32, 1, flat105, "a weight");
}

/* ---- the relu/max-pool swap (passes.c) ----------------------------------------------------------
 * input -> linear -> relu [-> reshape (1, H W, C)] -> pool: with the swap the relu runs on the
 * pool's output; predictions and input gradients must be the same as without it, ties and
 * zero maxima included. */
static void check_swap(const op_cfg *o, int B, int H, int W, int C, int reshape, int ties) {
    float *out[2] = {NULL, NULL}, *dx[2] = {NULL, NULL};
    int marks[2] = {0, 0};
    int64_t os = 0;
    const int is = H * W * C;
    float *x = malloc(sizeof(float) * B * is);
    for (int i = 0; i < B * is; i++) x[i] = ties ? (float)(urand() % 3) - 1.0f : next_float();
    pn_tensor tx = {.ndim = 4, .dims = {B, H, W, C}, .dtype = PN_F32, .data = x};
    for (int on = 0; on < 2; on++) {
        int prev = pn_debug_swaps(on);
        pn_model *m;
        int64_t xs[3] = {H, W, C};
        int in, lin, relu, rs, pool;
        const int rattr[PN_MAX_ATTRS] = {3, 1, H * W, C};
        int rc = pn_model_create(&m) || pn_model_alloc(m) ||
                 pn_model_add_input(m, 3, xs, PN_F32, &in) ||
                 pn_model_add_node(m, PN_OP_LINEAR, 1, &in, 0, NULL, NULL, NULL, &lin) ||
                 pn_model_add_node(m, PN_OP_RELU, 1, &lin, 0, NULL, NULL, NULL, &relu);
        if (!rc && reshape)
            rc = pn_model_add_node(m, PN_OP_RESHAPE, 1, &relu, 0, NULL, rattr, NULL, &rs);
        int iattr[PN_MAX_ATTRS];
        memcpy(iattr, o->iattr, sizeof iattr);
        if (reshape && o->op == PN_OP_MAX_POOL2D) /* a 1 x pool_w pool, no padding in H */
            iattr[0] = 1, iattr[2] = 1, iattr[4] = 0, iattr[6] = 0;
        rc = rc || pn_model_add_node(m, o->op, 1, reshape ? &rs : &relu, 0, NULL, iattr, NULL,
                                     &pool) ||
             pn_model_set_output(m, pool) || pn_model_compile(m, PN_LOSS_MSE, 0, 0, no_metrics);
        CHECK(rc == 0, "swap model builds");
        if (rc) {
            pn_model_destroy(m);
            pn_debug_swaps(prev);
            break;
        }
        int64_t shp[8];
        int nd = pn_model_output_shape(m, 0, shp);
        os = 1;
        for (int i = 0; i < nd; i++) os *= shp[i];
        out[on] = malloc(sizeof(float) * B * os);
        dx[on] = malloc(sizeof(float) * B * is);
        float *y = malloc(sizeof(float) * B * os), loss;
        for (int i = 0; i < B * os; i++) y[i] = 0.25f * (float)(i % 5) - 0.5f;
        pn_tensor ty = {.ndim = 2, .dims = {B, os}, .dtype = PN_F32, .data = y};
        CHECK(pn_model_predict(m, &tx, 2, (float *[]){out[on]}) == 0, "swap predict");
        for (int run = 0; run < 2; run++) /* the second finds the first's values in the plan */
            CHECK(pn_model_gradients(m, &tx, &ty, &loss, (float *[]){dx[on]}) == 0,
                  "swap gradients");
        pn_plan *p = NULL;
        CHECK(pn_plan_create(&p, m, B, PN_MODE_TRAIN) == 0, "swap plan");
        if (p) marks[on] = p->swap[relu] == PN_SWAP_SKIP && p->swap[pool] == PN_SWAP_RELU_AFTER;
        pn_plan_destroy(p);
        free(y);
        pn_model_destroy(m);
        pn_debug_swaps(prev);
    }
    if (out[0] && out[1]) {
        int same_out = 1, same_dx = 1;
        for (int64_t i = 0; i < B * os; i++) same_out &= out[0][i] == out[1][i];
        for (int i = 0; i < B * is; i++) same_dx &= dx[0][i] == dx[1][i];
        const char *what = cfg_str(o, B, H, W, C);
        CHECK(same_out, "%s%s%s: the swap changes the output", what, reshape ? " reshaped" : "",
              ties ? " ties" : "");
        CHECK(same_dx, "%s%s%s: the swap changes the input gradient", what,
              reshape ? " reshaped" : "", ties ? " ties" : "");
        CHECK(!marks[0] && marks[1], "%s%s: the swap is made only when on (%d, %d)", what,
              reshape ? " reshaped" : "", marks[0], marks[1]);
    }
    free(out[0]), free(out[1]), free(dx[0]), free(dx[1]), free(x);
}

static void test_relu_swap(void) {
    const op_cfg cases[] = {
        {PN_OP_MAX_POOL2D, {2, 2, 2, 2, 0, 0, 0, 0}},
        {PN_OP_MAX_POOL2D, {3, 3, 1, 1, 0, 0, 0, 0}}, /* overlapping windows */
        {PN_OP_MAX_POOL2D, {2, 2, 2, 2, 0, 0, 1, 1}}, /* Keras 'same' */
        {PN_OP_GLOBAL_MAX_POOL2D, {0}},
    };
    for (int k = 0; k < 4; k++)
        for (int reshape = 0; reshape < 2; reshape++)
            for (int ties = 0; ties < 2; ties++) {
                check_swap(&cases[k], 3, 7, 5, 3, reshape, ties);
                check_swap(&cases[k], 4, 26, 27, 32, reshape, ties); /* parallel loops */
            }
}

int main(void) {
    test_forward_and_gradients();
    test_finite_differences();
    test_reshape();
    test_max_nan();
    test_refused();
    test_relu_swap();
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
