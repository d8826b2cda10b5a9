/*
 * test_multi.c: models with several inputs and several outputs, through the public header.
 * Each graph's gradients (every trainable weight and every float input) are checked against
 * central differences of the weighted total loss that pn_model_test_step reports.
 * Built and run by tests/test_c_core.py; prints "N passed, M failed" and exits non-zero on failure.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

/* A variable of the given shape, filled later by fill(). */
static int var(pn_model *m, int ndim, int64_t a, int64_t b) {
    int64_t shape[2] = {a, b};
    int id = -1;
    pn_model_add_variable(m, ndim, shape, 1, &id);
    return id;
}

static void fill(pn_model *m, unsigned seed) {
    for (int v = 0; v < pn_model_variable_count(m); v++) {
        int64_t size;
        pn_model_variable(m, v, NULL, &size, NULL, NULL);
        for (int64_t i = 0; i < size; i++) param(m, v)[i] = 0.8f * frand(&seed);
    }
}

static int input(pn_model *m, int64_t features) {
    int node = -1;
    pn_model_add_input(m, 1, &features, PN_F32, &node);
    return node;
}

static int node1(pn_model *m, int op, int in, int n_var, const int *vars) {
    int node = -1;
    pn_model_add_node(m, op, 1, &in, n_var, vars, NULL, NULL, &node);
    return node;
}

/* dense with kernel and bias */
static int dense(pn_model *m, int in, int kvar, int bvar) {
    return node1(m, PN_OP_DENSE, in, 2, (int[]){kvar, bvar});
}

static float total_loss(pn_model *m, const pn_tensor *xs, const pn_tensor *ys) {
    float res[64];
    if (pn_model_test_step(m, xs, ys, NULL, NULL, 0, res)) return NAN;
    return res[0];
}

/* The largest gap between the core's gradients (weights, and dx of each float input) and central
 * differences of the total loss, relative to 1 + |gradient|. xs' data must be writable. */
static double fd_gap(pn_model *m, pn_tensor *xs, const pn_tensor *ys) {
    int n_in = pn_model_input_count(m);
    float *dx[PN_MAX_MODEL_INPUTS] = {NULL};
    for (int k = 0; k < n_in; k++) {
        if (xs[k].dtype != PN_F32) continue;
        int64_t size = 1;
        for (int i = 0; i < xs[k].ndim; i++) size *= xs[k].dims[i];
        dx[k] = malloc((size_t)size * sizeof(float));
    }
    float loss;
    double worst = 0.0;
    if (pn_model_gradients(m, xs, ys, &loss, dx)) {
        worst = INFINITY;
        goto done;
    }
    const float eps = 4e-3f;
    for (int v = 0; v < pn_model_variable_count(m); v++) {
        int64_t size;
        pn_model_variable(m, v, NULL, &size, NULL, NULL);
        float *w = param(m, v), *g = grad(m, v);
        float *gcopy = malloc((size_t)size * sizeof(float));
        memcpy(gcopy, g, (size_t)size * sizeof(float));
        for (int64_t i = 0; i < size; i++) {
            float keep = w[i];
            w[i] = keep + eps;
            double lp = total_loss(m, xs, ys);
            w[i] = keep - eps;
            double lm = total_loss(m, xs, ys);
            w[i] = keep;
            double num = (lp - lm) / (2.0 * eps);
            worst = fmax(worst, fabs(num - gcopy[i]) / (1.0 + fabs(num)));
        }
        free(gcopy);
    }
    for (int k = 0; k < n_in; k++) {
        if (!dx[k]) continue;
        float *x = xs[k].data;
        int64_t size = 1;
        for (int i = 0; i < xs[k].ndim; i++) size *= xs[k].dims[i];
        for (int64_t i = 0; i < size; i++) {
            float keep = x[i];
            x[i] = keep + eps;
            double lp = total_loss(m, xs, ys);
            x[i] = keep - eps;
            double lm = total_loss(m, xs, ys);
            x[i] = keep;
            double num = (lp - lm) / (2.0 * eps);
            worst = fmax(worst, fabs(num - dx[k][i]) / (1.0 + fabs(num)));
        }
    }
done:
    for (int k = 0; k < n_in; k++) free(dx[k]);
    return worst;
}

static void rand_fill(float *x, int n, unsigned seed) {
    for (int i = 0; i < n; i++) x[i] = frand(&seed);
}

/* the largest difference of two float arrays (batch sizes change the GEMM path, so not exact) */
static float max_diff(const float *a, const float *b, int n) {
    float d = 0.0f;
    for (int i = 0; i < n; i++) d = fmaxf(d, fabsf(a[i] - b[i]));
    return d;
}

/* two inputs, each through its own dense, added, tanh, dense: one MSE output */
static void test_two_inputs_merged(void) {
    pn_model *m;
    pn_model_create(&m);
    int k1 = var(m, 2, 3, 4), b1 = var(m, 1, 4, 0), k2 = var(m, 2, 2, 4), b2 = var(m, 1, 4, 0);
    int k3 = var(m, 2, 4, 2), b3 = var(m, 1, 2, 0);
    pn_model_alloc(m);
    fill(m, 11);
    int x1 = input(m, 3), x2 = input(m, 2), sum = -1;
    int d1 = dense(m, x1, k1, b1), d2 = dense(m, x2, k2, b2);
    pn_model_add_node(m, PN_OP_ADD, 2, (int[]){d1, d2}, 0, NULL, NULL, NULL, &sum);
    int out = dense(m, node1(m, PN_OP_TANH, sum, 0, NULL), k3, b3);
    CHECK(pn_model_set_output(m, out) == 0, "set_output");
    CHECK(pn_model_compile(m, PN_LOSS_MSE, 0, 0, NULL) == 0, "compile");
    CHECK(pn_model_input_count(m) == 2 && pn_model_input_node(m, 1) == x2, "two inputs in order");
    CHECK(pn_model_result_count(m) == 1, "one output, no metrics: one result");
    float a[15], b[10], y[10];
    rand_fill(a, 15, 1), rand_fill(b, 10, 2), rand_fill(y, 10, 3);
    pn_tensor xs[2] = {{2, {5, 3}, PN_F32, a}, {2, {5, 2}, PN_F32, b}}, ty = {2, {5, 2}, PN_F32, y};
    double gap = fd_gap(m, xs, &ty);
    CHECK(gap < 2e-3, "two inputs: gradients differ from finite differences by %g", gap);

    /* predict in batches of 2 equals one batch; a batch gathered by idx trains */
    float all[10], part[10];
    CHECK(pn_model_predict(m, xs, 5, (float *[]){all}) == 0 &&
              pn_model_predict(m, xs, 2, (float *[]){part}) == 0 && max_diff(all, part, 10) < 1e-6f,
          "predict in batches");
    pn_optim_config cfg = {.kind = PN_SGD, .learning_rate = 0.1f};
    pn_model_set_optimizer(m, &cfg);
    float res[1];
    CHECK(pn_model_train_step(m, xs, &ty, NULL, (int64_t[]){4, 0, 2}, 3, res) == 0 &&
              isfinite(res[0]),
          "train step on gathered rows");

    /* inputs with different sample counts are refused before anything runs */
    pn_tensor bad[2] = {xs[0], {2, {4, 2}, PN_F32, b}};
    int64_t it = pn_model_iterations(m);
    CHECK(pn_model_train_step(m, bad, &ty, NULL, NULL, 0, res) == PN_ESHAPE &&
              strstr(pn_last_error(), "input 1 has 4 samples") != NULL,
          "sample counts differ");
    CHECK(pn_model_predict(m, bad, 5, (float *[]){all}) == PN_ESHAPE, "predict: counts differ");
    CHECK(pn_model_iterations(m) == it, "a refused step takes no step");
    pn_tensor wide[2] = {xs[0], {2, {5, 3}, PN_F32, a}};
    CHECK(pn_model_test_step(m, wide, &ty, NULL, NULL, 0, res) == PN_ESHAPE &&
              strstr(pn_last_error(), "input 1: expected shape (None, 2)") != NULL,
          "second input's shape");
    pn_model_destroy(m);
}

/* one hidden layer, two heads: A = dense (MSE, weight 0.3, mae), B = dense softmax (sparse CE,
 * weight 2, accuracy; fused) */
static void test_two_outputs_weighted(void) {
    pn_model *m;
    pn_model_create(&m);
    int k1 = var(m, 2, 4, 5), b1 = var(m, 1, 5, 0), ka = var(m, 2, 5, 2), ba = var(m, 1, 2, 0);
    int kb = var(m, 2, 5, 3), bb = var(m, 1, 3, 0);
    pn_model_alloc(m);
    fill(m, 21);
    int x = input(m, 4);
    int h = node1(m, PN_OP_TANH, dense(m, x, k1, b1), 0, NULL);
    int oa = dense(m, h, ka, ba), ob = node1(m, PN_OP_SOFTMAX, dense(m, h, kb, bb), 0, NULL);
    CHECK(pn_model_set_outputs(m, 2, (int[]){oa, ob}) == 0, "set_outputs");
    pn_loss_config cfg[2] = {
        {.loss = PN_LOSS_MSE, .weight = 0.3f, .n_metrics = 1, .metrics = {{.kind = PN_METRIC_MAE}}},
        {.loss = PN_LOSS_SPARSE_CE, .weight = 2.0f, .n_metrics = 1,
         .metrics = {{.kind = PN_METRIC_SPARSE_ACCURACY}}},
    };
    CHECK(pn_model_compile_outputs(m, cfg) == 0, "compile_outputs");
    CHECK(pn_model_result_count(m) == 5, "total, 2 losses, 2 metrics: %d",
          pn_model_result_count(m));
    float xv[24], ya[12];
    int32_t yb[6] = {0, 2, 1, 1, 0, 2};
    rand_fill(xv, 24, 4), rand_fill(ya, 12, 5);
    pn_tensor tx = {2, {6, 4}, PN_F32, xv};
    pn_tensor ys[2] = {{2, {6, 2}, PN_F32, ya}, {1, {6}, PN_I32, yb}};
    float res[5];
    CHECK(pn_model_test_step(m, &tx, ys, NULL, NULL, 0, res) == 0, "test step");
    CHECK(fabsf(res[0] - (0.3f * res[1] + 2.0f * res[2])) < 1e-5f * (1 + fabsf(res[0])),
          "total %g is 0.3 * %g + 2 * %g", res[0], res[1], res[2]);
    CHECK(res[3] > 0 && res[4] >= 0 && res[4] <= 6, "metric sums %g %g", res[3], res[4]);
    double gap = fd_gap(m, &tx, ys);
    CHECK(gap < 2e-3, "two weighted outputs: gradients differ by %g", gap);

    /* predict writes each output into its own buffer */
    float pa[12], pb[18];
    CHECK(pn_model_predict(m, &tx, 4, (float *[]){pa, pb}) == 0, "predict two outputs");
    double rowsum = 0;
    for (int j = 0; j < 3; j++) rowsum += pb[j];
    CHECK(fabs(rowsum - 1) < 1e-5, "output B is a softmax: row sums to %g", rowsum);

    /* wrong targets name the output */
    pn_tensor badys[2] = {ys[0], {2, {6, 2}, PN_F32, ya}};
    CHECK(pn_model_test_step(m, &tx, badys, NULL, NULL, 0, res) == PN_ETYPE &&
              strstr(pn_last_error(), "output 1") != NULL,
          "float targets for the sparse output");
    pn_model_destroy(m);
}

/* output A = tanh(dense(x)) (MSE) feeds output B = dense(A) (MSE): A's gradient gets both */
static void test_output_upstream_of_output(void) {
    pn_model *m;
    pn_model_create(&m);
    int k1 = var(m, 2, 3, 4), b1 = var(m, 1, 4, 0), k2 = var(m, 2, 4, 2), b2 = var(m, 1, 2, 0);
    pn_model_alloc(m);
    fill(m, 31);
    int x = input(m, 3);
    int a = node1(m, PN_OP_TANH, dense(m, x, k1, b1), 0, NULL), b = dense(m, a, k2, b2);
    pn_model_set_outputs(m, 2, (int[]){a, b});
    pn_loss_config cfg[2] = {{.loss = PN_LOSS_MSE, .weight = 0.7f},
                             {.loss = PN_LOSS_MSE, .weight = 1.5f}};
    pn_model_compile_outputs(m, cfg);
    float xv[12], ya[16], yb[8];
    rand_fill(xv, 12, 6), rand_fill(ya, 16, 7), rand_fill(yb, 8, 8);
    pn_tensor tx = {2, {4, 3}, PN_F32, xv};
    pn_tensor ys[2] = {{2, {4, 4}, PN_F32, ya}, {2, {4, 2}, PN_F32, yb}};
    double gap = fd_gap(m, &tx, ys);
    CHECK(gap < 2e-3, "output upstream of output: gradients differ by %g", gap);
    float pa[16], pb[8], pb1[8];
    CHECK(pn_model_predict(m, &tx, 3, (float *[]){pa, pb}) == 0, "predict");
    pn_model_set_output(m, b); /* the same model with B alone predicts the same B */
    CHECK(pn_model_predict(m, &tx, 3, (float *[]){pb1}) == 0 && max_diff(pb, pb1, 8) < 1e-6f,
          "B with A as an output equals B alone");
    pn_model_destroy(m);
}

/* the same softmax node as two outputs (CCE and MSE): no fusion, both gradients flow */
static void test_same_node_two_outputs(void) {
    pn_model *m;
    pn_model_create(&m);
    int k1 = var(m, 2, 3, 4), b1 = var(m, 1, 4, 0);
    pn_model_alloc(m);
    fill(m, 41);
    int x = input(m, 3);
    int o = node1(m, PN_OP_SOFTMAX, dense(m, x, k1, b1), 0, NULL);
    pn_model_set_outputs(m, 2, (int[]){o, o});
    pn_loss_config cfg[2] = {{.loss = PN_LOSS_CATEGORICAL_CE, .weight = 1.0f},
                             {.loss = PN_LOSS_MSE, .weight = 0.5f}};
    pn_model_compile_outputs(m, cfg);
    float xv[9], ya[12] = {1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1}, yb[12];
    rand_fill(xv, 9, 9), rand_fill(yb, 12, 10);
    pn_tensor tx = {2, {3, 3}, PN_F32, xv};
    pn_tensor ys[2] = {{2, {3, 4}, PN_F32, ya}, {2, {3, 4}, PN_F32, yb}};
    double gap = fd_gap(m, &tx, ys);
    CHECK(gap < 2e-3, "same node as two outputs: gradients differ by %g", gap);
    float p0[12], p1[12];
    CHECK(pn_model_predict(m, &tx, 2, (float *[]){p0, p1}) == 0 && memcmp(p0, p1, sizeof p0) == 0,
          "both outputs predict the same values");
    pn_model_destroy(m);
}

/* A softmax output with another reader (a dense leading to a second output) is not folded into
 * its cross-entropy: the second output's gradient must flow back through the softmax. A third
 * output is the logits themselves, so two losses write the logits' gradient. */
static void test_fusion_refused_with_another_reader(void) {
    pn_model *m;
    pn_model_create(&m);
    int k1 = var(m, 2, 3, 4), b1 = var(m, 1, 4, 0), k2 = var(m, 2, 4, 2), b2 = var(m, 1, 2, 0);
    pn_model_alloc(m);
    fill(m, 51);
    int x = input(m, 3);
    int z = dense(m, x, k1, b1), s = node1(m, PN_OP_SOFTMAX, z, 0, NULL), r = dense(m, s, k2, b2);
    float xv[9], ya[12], yb[6];
    int32_t lab[3] = {3, 0, 1};
    rand_fill(xv, 9, 11), rand_fill(ya, 12, 12), rand_fill(yb, 6, 13);
    pn_tensor tx = {2, {3, 3}, PN_F32, xv};

    pn_model_set_outputs(m, 2, (int[]){s, r});
    pn_loss_config cfg[3] = {{.loss = PN_LOSS_SPARSE_CE, .weight = 1.0f},
                             {.loss = PN_LOSS_MSE, .weight = 3.0f},
                             {.loss = PN_LOSS_MSE, .weight = 0.25f}};
    pn_model_compile_outputs(m, cfg);
    pn_tensor ys[3] = {{1, {3}, PN_I32, lab}, {2, {3, 2}, PN_F32, yb}, {2, {3, 4}, PN_F32, ya}};
    double gap = fd_gap(m, &tx, ys);
    CHECK(gap < 2e-3, "softmax output read by another output: gradients differ by %g", gap);

    /* softmax output (fused: its only reader is its loss) and its own logits as outputs */
    pn_model_set_outputs(m, 2, (int[]){s, z});
    pn_loss_config cfg2[2] = {cfg[0], cfg[2]};
    pn_model_compile_outputs(m, cfg2);
    pn_tensor ys2[2] = {ys[0], ys[2]};
    gap = fd_gap(m, &tx, ys2);
    CHECK(gap < 2e-3, "softmax output and its logits as outputs: gradients differ by %g", gap);

    /* all three */
    pn_model_set_outputs(m, 3, (int[]){s, r, z});
    pn_model_compile_outputs(m, cfg);
    pn_tensor ys3[3] = {ys[0], ys[1], ys[2]};
    gap = fd_gap(m, &tx, ys3);
    CHECK(gap < 2e-3, "three outputs: gradients differ by %g", gap);
    pn_model_destroy(m);
}

/* a float input and an int32 input (embedding): indices of the second input are checked */
static void test_embedding_on_second_input(void) {
    pn_model *m;
    pn_model_create(&m);
    int k1 = var(m, 2, 2, 3), b1 = var(m, 1, 3, 0), table = var(m, 2, 5, 3);
    pn_model_alloc(m);
    fill(m, 61);
    int64_t len = 1;
    int x = input(m, 2), ids = -1;
    pn_model_add_input(m, 1, &len, PN_I32, &ids);
    int e = node1(m, PN_OP_EMBEDDING, ids, 1, &table), r = -1, sum = -1;
    pn_model_add_node(m, PN_OP_RESHAPE, 1, &e, 0, NULL, (int[PN_MAX_ATTRS]){1, 3}, NULL, &r);
    pn_model_add_node(m, PN_OP_ADD, 2, (int[]){dense(m, x, k1, b1), r}, 0, NULL, NULL, NULL,
                      &sum);
    CHECK(sum >= 0, "graph: %s", pn_last_error());
    pn_model_set_output(m, sum);
    pn_model_compile(m, PN_LOSS_MSE, 0, 0, NULL);
    float xv[6], y[9], out[9];
    int32_t good[3] = {4, 0, 2}, bad[3] = {1, 7, 0};
    rand_fill(xv, 6, 14), rand_fill(y, 9, 15);
    pn_tensor ty = {2, {3, 3}, PN_F32, y};
    pn_tensor xs[2] = {{2, {3, 2}, PN_F32, xv}, {2, {3, 1}, PN_I32, good}};
    double gap = fd_gap(m, xs, &ty);
    CHECK(gap < 2e-3, "float + embedding inputs: gradients differ by %g", gap);
    xs[1].data = bad;
    float res[1];
    CHECK(pn_model_test_step(m, xs, &ty, NULL, NULL, 0, res) == PN_EVALUE &&
              strstr(pn_last_error(), "index 7") != NULL,
          "a bad index in the second input is refused in a step");
    CHECK(pn_model_predict(m, xs, 2, (float *[]){out}) == PN_EVALUE, "and in predict");
    pn_model_destroy(m);
}

/* at most PN_MAX_MODEL_INPUTS inputs and PN_MAX_OUTPUTS outputs, with clear errors beyond */
static void test_limits(void) {
    pn_model *m;
    pn_model_create(&m);
    pn_model_alloc(m);
    int node = -1, nodes[PN_MAX_OUTPUTS + 1];
    for (int k = 0; k < PN_MAX_MODEL_INPUTS; k++) nodes[k % PN_MAX_OUTPUTS] = input(m, 2);
    int64_t f = 2;
    CHECK(pn_model_add_input(m, 1, &f, PN_F32, &node) == PN_EVALUE &&
              strstr(pn_last_error(), "at most 16 inputs") != NULL,
          "a 17th input");
    nodes[PN_MAX_OUTPUTS] = nodes[0];
    CHECK(pn_model_set_outputs(m, PN_MAX_OUTPUTS + 1, nodes) == PN_EVALUE, "17 outputs");
    CHECK(pn_model_set_outputs(m, 0, nodes) == PN_EVALUE, "no outputs");
    CHECK(pn_model_set_outputs(m, 2, (int[]){0, 99}) == PN_EVALUE, "a missing node");
    CHECK(pn_model_set_outputs(m, PN_MAX_OUTPUTS, nodes) == 0, "16 outputs");
    pn_model_destroy(m);
}

int main(void) {
    pn_set_num_threads(2);
    test_two_inputs_merged();
    test_two_outputs_weighted();
    test_output_upstream_of_output();
    test_same_node_two_outputs();
    test_fusion_refused_with_another_reader();
    test_embedding_on_second_input();
    test_limits();
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
