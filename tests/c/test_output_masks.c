/*
 * test_output_masks.c: pn_model_set_output_masks through the public header: its checks, the
 * results layout it adds to, and one masked loss, gradient and mean metric against a reference.
 * The model: x (B, T, F) -> dense -> out (B, T, C), MSE, the mask a second input (B, T).
 * Built and run by tests/test_c_core.py; prints "N passed, M failed" and exits non-zero on failure.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "check.h"

enum { B = 4, T = 3, F = 2, C = 2 };

typedef struct {
    pn_model *m;
    int x, mask, out, kernel, bias;
} net;

static int make(net *n) {
    memset(n, 0, sizeof *n);
    int rc = pn_model_create(&n->m);
    if (rc) return rc;
    int64_t xs[2] = {T, F}, ms[1] = {T}, ks[2] = {F, C}, bs[1] = {C};
    pn_model_add_variable(n->m, 2, ks, 1, &n->kernel);
    pn_model_add_variable(n->m, 1, bs, 1, &n->bias);
    pn_model_alloc(n->m);
    unsigned seed = 7;
    for (int i = 0; i < F * C; i++) param(n->m, n->kernel)[i] = frand(&seed);
    for (int i = 0; i < C; i++) param(n->m, n->bias)[i] = 0.1f * frand(&seed);
    pn_model_add_input(n->m, 2, xs, PN_F32, &n->x);
    pn_model_add_input(n->m, 1, ms, PN_F32, &n->mask);
    return pn_model_add_node(n->m, PN_OP_DENSE, 1, &n->x, 2, (int[]){n->kernel, n->bias}, NULL,
                             NULL, &n->out);
}

/* set_output_masks refuses what is not one float32, batched, row-sized node (or -1) per output */
static void test_checks(void) {
    net n;
    CHECK(make(&n) == PN_OK, "model");
    pn_model *m = n.m;
    CHECK(pn_model_set_output_masks(m, 1, &n.mask) == PN_ESTATE, "no output yet");
    CHECK(pn_model_set_output(m, n.out) == PN_OK, "output");
    CHECK(pn_model_output_mask(m, 0) == -1, "no mask by default");
    CHECK(pn_model_set_output_masks(m, 2, (int[]){n.mask, -1}) == PN_EVALUE,
          "two masks, one output");
    CHECK(pn_model_set_output_masks(m, 0, NULL) == PN_EVALUE, "no masks");
    CHECK(pn_model_set_output_masks(m, 1, (int[]){99}) == PN_EVALUE, "no such node");
    CHECK(pn_model_set_output_masks(m, 1, (int[]){-2}) == PN_EVALUE, "negative node");
    int as_int = -1, cst = -1;
    pn_model_add_node(m, PN_OP_CAST, 1, &n.mask, 0, NULL, (int[PN_MAX_ATTRS]){1}, NULL, &as_int);
    CHECK(pn_model_set_output_masks(m, 1, &as_int) == PN_ETYPE, "int32 mask");
    pn_model_add_constant(m, 1, (int64_t[]){T}, (float[]){1, 1, 1}, &cst);
    CHECK(pn_model_set_output_masks(m, 1, &cst) == PN_ESHAPE, "unbatched mask");
    CHECK(pn_model_set_output_masks(m, 1, &n.x) == PN_ESHAPE, "mask of T * F values");
    CHECK(pn_model_set_output_masks(m, 1, &n.out) == PN_ESHAPE, "mask of T * C values");
    CHECK(pn_model_output_mask(m, 0) == -1, "a refused call changes nothing");

    pn_metric mae = pn_metric_default(PN_METRIC_MAE);
    CHECK(pn_model_compile(m, PN_LOSS_MSE, 0, 1, &mae) == PN_OK, "compile");
    CHECK(pn_model_result_count(m) == 2, "loss and mae: %d", pn_model_result_count(m));
    CHECK(pn_model_set_output_masks(m, 1, &n.mask) == PN_OK, "mask");
    CHECK(pn_model_output_mask(m, 0) == n.mask, "the mask node");
    CHECK(pn_model_result_count(m) == 3, "and the metric weight: %d", pn_model_result_count(m));
    CHECK(pn_model_set_output_masks(m, 1, (int[]){-1}) == PN_OK, "unmask");
    CHECK(pn_model_result_count(m) == 2, "no weight: %d", pn_model_result_count(m));
    CHECK(pn_model_set_output_masks(m, 1, &n.mask) == PN_OK, "mask again");
    CHECK(pn_model_set_output(m, n.out) == PN_OK && pn_model_output_mask(m, 0) == -1,
          "new outputs clear the masks");
    pn_model_destroy(m);
}

/* loss = sum_r m_r mean_c (p - y)^2 / sum_r m_r, its gradient, and MAE over the kept rows */
static void test_masked_loss(void) {
    net n;
    CHECK(make(&n) == PN_OK, "model");
    pn_model *m = n.m;
    pn_model_set_output(m, n.out);
    pn_metric mae = pn_metric_default(PN_METRIC_MAE);
    pn_model_compile(m, PN_LOSS_MSE, 0, 1, &mae);
    pn_optim_config cfg = {.kind = PN_SGD, .learning_rate = 0.0f};
    pn_model_set_optimizer(m, &cfg);
    CHECK(pn_model_set_output_masks(m, 1, &n.mask) == PN_OK, "mask");

    float x[B * T * F], y[B * T * C], mk[B * T] = {1, 1, 0, 1, 0, 0, 0, 0, 0, 1, 1, 1};
    unsigned seed = 3;
    for (int i = 0; i < B * T * F; i++) x[i] = frand(&seed);
    for (int i = 0; i < B * T * C; i++) y[i] = frand(&seed);
    pn_tensor xs[2] = {{.ndim = 3, .dims = {B, T, F}, .dtype = PN_F32, .data = x},
                       {.ndim = 2, .dims = {B, T}, .dtype = PN_F32, .data = mk}};
    pn_tensor ys[1] = {{.ndim = 3, .dims = {B, T, C}, .dtype = PN_F32, .data = y}};

    /* the reference: out = x W + b per row */
    const float *W = param(m, n.kernel), *b = param(m, n.bias);
    double loss = 0, abs_sum = 0, kept = 0, dW[F * C] = {0};
    for (int r = 0; r < B * T; r++) {
        if (mk[r] == 0.0f) continue;
        kept++;
        for (int c = 0; c < C; c++) {
            double o = b[c];
            for (int f = 0; f < F; f++) o += (double)x[r * F + f] * W[f * C + c];
            double d = o - y[r * C + c];
            loss += d * d / C;
            abs_sum += fabs(d) / C;
            for (int f = 0; f < F; f++) dW[f * C + c] += 2.0 * d / C * x[r * F + f];
        }
    }
    float res[3];
    CHECK(pn_model_test_step(m, xs, ys, NULL, NULL, 0, res) == PN_OK, "test step");
    CHECK(fabs(res[0] - loss / kept) < 1e-5 * (1 + loss / kept), "loss %g, want %g", res[0],
          loss / kept);
    CHECK(fabs(res[2] - kept / T) < 1e-6, "weight %g, want %g", res[2], kept / T);
    CHECK(fabs(res[1] / res[2] - abs_sum / kept) < 1e-5, "mae %g, want %g", res[1] / res[2],
          abs_sum / kept);

    float got;
    CHECK(pn_model_gradients(m, xs, ys, &got, NULL) == PN_OK, "gradients");
    CHECK(fabs(got - loss / kept) < 1e-5 * (1 + loss / kept), "gradients' loss %g", got);
    double want[F * C];
    for (int i = 0; i < F * C; i++) want[i] = dW[i] / kept;
    CHECK(rel_err(grad(m, n.kernel), want, F * C, 1e-3) < 1e-5, "dW %g",
          rel_err(grad(m, n.kernel), want, F * C, 1e-3));

    /* every row masked: loss 0 and zero gradients, no NaN (Keras's divide_no_nan) */
    memset(mk, 0, sizeof mk);
    CHECK(pn_model_train_step(m, xs, ys, NULL, NULL, 0, res) == PN_OK, "train step");
    CHECK(res[0] == 0.0f && res[1] == 0.0f && res[2] == 0.0f, "all masked: %g %g %g", res[0],
          res[1], res[2]);
    int finite_zero = 1;
    for (int i = 0; i < F * C; i++) finite_zero &= grad(m, n.kernel)[i] == 0.0f;
    CHECK(finite_zero, "all masked: zero gradients");
    pn_model_destroy(m);
}

int main(void) {
    test_checks();
    test_masked_loss();
    printf("%d passed, %d failed\n", passed, failed);
    return failed != 0;
}
