/*
 * test_augment.c: the augmentation ops (ops_augment.c) run on values: a 90-degree rotation
 * against its index map, the identity outside training, backward as the adjoint of the forward
 * for the linear ops (<w, A x> = <A^T w, x>, the same draws from the same seed), contrast and
 * brightness against central differences, bad attributes refused. Prints "N passed, M failed".
 */
#include <stdlib.h>
#include <string.h>

#include "check.h"

enum { B = 3, H = 5, W = 4, C = 2, N = B * H * W * C };

static pn_value *leaf(const float *x, int64_t h, int64_t w) {
    pn_value *v = NULL;
    int64_t dims[4] = {B, h, w, C};
    if (pn_value_create(&v, 4, dims, PN_F32, x) == 0) pn_value_set_requires_grad(v, 1);
    return v;
}

/* sum(w y) for y = op(x) in training with the given seed; the input's gradient in g if not NULL */
static double run(int op, const int *ia, const float *fa, const float *x, const float *w,
                  uint64_t seed, int training, float *g, float *y_out, int64_t *out_n) {
    pn_value *in = leaf(x, H, W), *out = NULL;
    double s = NAN;
    if (!in || pn_eager_op(op, 1, &in, 0, NULL, ia, fa, training, seed, &out)) goto done;
    int64_t n = pn_value_size(out);
    if (n > 2 * N) goto done; /* more than w weighs: NAN, a failed check */
    const float *y = pn_value_data(out);
    s = 0;
    for (int64_t i = 0; i < n; i++) s += (double)w[i] * y[i];
    if (y_out) memcpy(y_out, y, (size_t)n * sizeof(float));
    if (out_n) *out_n = n;
    if (g) {
        if (pn_value_backward(out, w)) s = NAN;
        else memcpy(g, pn_value_grad(in), sizeof(float) * N);
    }
done:
    pn_value_release(out);
    pn_value_release(in);
    return s;
}

int main(void) {
    unsigned s = 7;
    /* w weighs an op's output, which can be larger than its input (a crop window larger than
     * the image): room for twice the input */
    float x[N], w[2 * N], g[N], y[2 * N];
    for (int i = 0; i < N; i++) x[i] = frand(&s), w[i] = frand(&s);
    for (int i = N; i < 2 * N; i++) w[i] = frand(&s);

    /* rotation by a quarter turn on a square image: out[r][c] = in[c][n - 1 - r] */
    {
        enum { S = 4 };
        float sx[S * S], sy[S * S];
        for (int i = 0; i < S * S; i++) sx[i] = (float)i;
        int64_t dims[4] = {1, S, S, 1};
        for (int interp = 0; interp < 2; interp++) {
            pn_value *in = NULL, *out = NULL;
            int ia[PN_MAX_ATTRS] = {0, 2, interp, 0, 0};
            float fa[PN_MAX_ATTRS] = {0.25f, 0.25f, 0, 0, 0};
            int rc = pn_value_create(&in, 4, dims, PN_F32, sx);
            rc = rc ? rc : pn_eager_op(PN_OP_IMAGE_AFFINE, 1, &in, 0, NULL, ia, fa, 1, 5, &out);
            CHECK(rc == 0, "quarter turn runs");
            if (rc == 0) {
                memcpy(sy, pn_value_data(out), sizeof sy);
                double err = 0;
                for (int r = 0; r < S; r++)
                    for (int c = 0; c < S; c++)
                        err = fmax(err, fabs(sy[r * S + c] - sx[c * S + (S - 1 - r)]));
                CHECK(err < 1e-4, "quarter turn (interpolation %d): error %g", interp, err);
            }
            pn_value_release(out);
            pn_value_release(in);
        }
    }

    /* the linear ops: identity outside training, backward the adjoint of forward */
    struct { int op; int ia[5]; float fa[5]; } lin[] = {
        {PN_OP_IMAGE_AFFINE, {0, 0, 0, 0, 0}, {-0.2f, 0.3f, 0, 0, 0}},
        {PN_OP_IMAGE_AFFINE, {0, 2, 0, 0, 0}, {-0.2f, 0.3f, 0, 0, 0}},
        {PN_OP_IMAGE_AFFINE, {0, 1, 1, 0, 0}, {0.1f, 0.4f, 0, 0, 0}},
        {PN_OP_IMAGE_AFFINE, {1, 3, 0, 1, 1}, {-0.5f, 0.5f, -0.2f, 0.9f, 0}},
        {PN_OP_IMAGE_AFFINE, {2, 2, 1, 0, 0}, {-0.4f, 0.4f, -0.3f, 0.3f, 0}},
        {PN_OP_RANDOM_FLIP, {3, 0}, {0}},
        {PN_OP_RANDOM_FLIP, {1, 1}, {0}},
        {PN_OP_RANDOM_CROP, {3, 2, 0}, {0}},
        {PN_OP_RANDOM_CROP, {7, 3, 0}, {0}},
    };
    for (size_t k = 0; k < sizeof lin / sizeof lin[0]; k++) {
        int ia[PN_MAX_ATTRS] = {0};
        float fa[PN_MAX_ATTRS] = {0};
        memcpy(ia, lin[k].ia, sizeof lin[k].ia);
        memcpy(fa, lin[k].fa, sizeof lin[k].fa);
        int64_t n = 0;
        double lhs = run(lin[k].op, ia, fa, x, w, 99, 1, g, y, &n);
        double rhs = 0;
        for (int i = 0; i < N; i++) rhs += (double)g[i] * x[i];
        CHECK(fabs(lhs - rhs) < 1e-4 * fmax(1.0, fabs(lhs)), "case %zu: <w, Ax> %g, <A^T w, x> %g",
              k, lhs, rhs);
        double again = run(lin[k].op, ia, fa, x, w, 99, 1, NULL, NULL, NULL);
        CHECK(again == lhs, "case %zu: the same seed draws the same", k);
        if (lin[k].op != PN_OP_RANDOM_CROP) {
            run(lin[k].op, ia, fa, x, w, 99, 0, g, y, &n);
            CHECK(memcmp(y, x, sizeof x) == 0 && memcmp(g, w, sizeof g) == 0,
                  "case %zu: identity outside training", k);
        }
    }

    /* contrast and brightness: central differences (steps too small to cross a clip) */
    struct { int op; int ia0; float fa[4]; } nl[] = {
        {PN_OP_RANDOM_CONTRAST, 0, {0.6f, 1.5f, -1.0f, 1.1f}},
        {PN_OP_RANDOM_CONTRAST, 1, {1.2f, 1.2f, -5.0f, 5.0f}},
        {PN_OP_RANDOM_BRIGHTNESS, 0, {-0.1f, 0.1f, -1.0f, 1.0f}},
    };
    for (size_t k = 0; k < sizeof nl / sizeof nl[0]; k++) {
        int ia[PN_MAX_ATTRS] = {nl[k].ia0};
        float fa[PN_MAX_ATTRS] = {0};
        memcpy(fa, nl[k].fa, sizeof nl[k].fa);
        run(nl[k].op, ia, fa, x, w, 3, 1, g, NULL, NULL);
        double err = 0, mx = 1e-3;
        const float eps = 1e-3f;
        for (int i = 0; i < N; i += 5) {
            float xp[N], xm[N];
            memcpy(xp, x, sizeof x);
            memcpy(xm, x, sizeof x);
            xp[i] += eps, xm[i] -= eps;
            double num = (run(nl[k].op, ia, fa, xp, w, 3, 1, NULL, NULL, NULL) -
                          run(nl[k].op, ia, fa, xm, w, 3, 1, NULL, NULL, NULL)) / (2.0 * eps);
            err = fmax(err, fabs(num - g[i]));
            mx = fmax(mx, fabs(num));
        }
        CHECK(err < 2e-2 * mx, "case %zu: gradient error %g of %g", k, err, mx);
    }

    /* refused attributes */
    struct { int op; int ia[5]; float fa[5]; } bad[] = {
        {PN_OP_IMAGE_AFFINE, {3, 0, 0, 0, 0}, {0}},                    /* transform */
        {PN_OP_IMAGE_AFFINE, {0, 4, 0, 0, 0}, {0}},                    /* fill mode */
        {PN_OP_IMAGE_AFFINE, {0, 0, 2, 0, 0}, {0}},                    /* interpolation */
        {PN_OP_IMAGE_AFFINE, {0, 0, 0, 0, 0}, {0.3f, 0.1f, 0, 0, 0}},  /* lower > upper */
        {PN_OP_IMAGE_AFFINE, {1, 0, 0, 0, 0}, {-1.0f, 0.1f, 0, 0, 0}}, /* zoom to nothing */
        {PN_OP_RANDOM_FLIP, {0, 0}, {0}},
        {PN_OP_RANDOM_FLIP, {1, 2}, {0}},
        {PN_OP_RANDOM_CROP, {0, 2, 0}, {0}},
        {PN_OP_RANDOM_CONTRAST, {0}, {1.5f, 0.5f, 0, 1}},
    };
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        int ia[PN_MAX_ATTRS] = {0};
        float fa[PN_MAX_ATTRS] = {0};
        memcpy(ia, bad[k].ia, sizeof bad[k].ia);
        memcpy(fa, bad[k].fa, sizeof bad[k].fa);
        pn_value *in = leaf(x, H, W), *out = NULL;
        int rc = pn_eager_op(bad[k].op, 1, &in, 0, NULL, ia, fa, 1, 1, &out);
        CHECK(rc == PN_EVALUE && out == NULL, "bad case %zu refused (rc %d)", k, rc);
        pn_value_release(in);
    }

    printf("%d passed, %d failed\n", passed, failed);
    return failed != 0;
}
