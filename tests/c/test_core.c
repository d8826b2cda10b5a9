/*
 * test_core.c: tests of libpynn through its public header alone, no Python.
 * Built and run by tests/test_c_core.py; prints "N passed, M failed" and exits non-zero on failure.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"



/* A model: input (C) -> dense (OC) [-> activation]; kernel and bias filled from seed. */
static pn_model *make_dense(int C, int OC, int bias, int act, unsigned seed, int *out_node) {
    pn_model *m;
    if (pn_model_create(&m)) return NULL;
    int vk, vb = -1, in, d;
    int64_t ks[2] = {C, OC}, bs[1] = {OC}, xs[1] = {C};
    pn_model_add_variable(m, 2, ks, 1, &vk);
    if (bias) pn_model_add_variable(m, 1, bs, 1, &vb);
    pn_model_alloc(m);
    int64_t off;
    pn_model_variable(m, vk, &off, NULL, NULL, NULL);
    for (int i = 0; i < C * OC; i++) pn_model_params(m)[off + i] = frand(&seed);
    if (bias) {
        pn_model_variable(m, vb, &off, NULL, NULL, NULL);
        for (int i = 0; i < OC; i++) pn_model_params(m)[off + i] = frand(&seed);
    }
    pn_model_add_input(m, 1, xs, PN_F32, &in);
    int vars[2] = {vk, vb};
    pn_model_add_node(m, PN_OP_DENSE, 1, &in, bias ? 2 : 1, vars, NULL, NULL, &d);
    if (act >= 0) pn_model_add_node(m, act, 1, &d, 0, NULL, NULL, NULL, &d);
    pn_model_set_output(m, d);
    *out_node = d;
    return m;
}

/* predict matches a plain triple loop, for 1 row (the GEMV path) and several (GEMM), with and
 * without bias, narrow and wide outputs */
static void test_dense_forward(void) {
    int shapes[][2] = {{7, 3}, {33, 40}, {784, 128}, {5, 1}};
    for (int s = 0; s < 4; s++)
        for (int bias = 0; bias <= 1; bias++)
            for (int rows = 1; rows <= 9; rows += 4) {
                int C = shapes[s][0], OC = shapes[s][1], node;
                pn_model *m = make_dense(C, OC, bias, -1, 7u + (unsigned)s, &node);
                unsigned seed = 99;
                float *x = malloc(sizeof(float) * rows * C), *y = malloc(sizeof(float) * rows * OC);
                for (int i = 0; i < rows * C; i++) x[i] = frand(&seed);
                pn_tensor tx = {.ndim = 2, .dims = {rows, C}, .dtype = PN_F32, .data = x};
                int rc = pn_model_predict(m, &tx, 4, (float *[]){y});
                const float *w = param(m, 0), *b = bias ? param(m, 1) : NULL;
                double err = 0;
                for (int r = 0; r < rows; r++)
                    for (int j = 0; j < OC; j++) {
                        double ref = b ? b[j] : 0;
                        for (int k = 0; k < C; k++) ref += (double)x[r * C + k] * w[k * OC + j];
                        err = fmax(err, fabs(ref - y[r * OC + j]) / (1 + fabs(ref)));
                    }
                CHECK(rc == 0 && err < 1e-4, "dense %dx%d bias=%d rows=%d: err %g", C, OC, bias,
                      rows, err);
                free(x);
                free(y);
                pn_model_destroy(m);
            }
}

/* one SGD step on y = x w + b with MSE moves w by -lr * 2/(N) * x^T (p - y) */
static void test_sgd_step_matches_hand_computation(void) {
    int node;
    pn_model *m = make_dense(3, 1, 1, -1, 1u, &node);
    pn_model_compile(m, PN_LOSS_MSE, 0, 0, NULL);
    pn_optim_config cfg = {.kind = PN_SGD, .learning_rate = 0.1f};
    pn_model_set_optimizer(m, &cfg);
    float x[6] = {1, 2, 3, -1, 0.5f, 2}, y[2] = {1, -2}, w0[3], b0;
    memcpy(w0, param(m, 0), sizeof w0);
    b0 = param(m, 1)[0];
    float p[2];
    for (int r = 0; r < 2; r++) p[r] = b0 + x[3 * r] * w0[0] + x[3 * r + 1] * w0[1] + x[3 * r + 2] * w0[2];
    pn_tensor tx = {2, {2, 3}, PN_F32, x}, ty = {2, {2, 1}, PN_F32, y};
    float res[1];
    int rc = pn_model_train_step(m, &tx, &ty, NULL, NULL, 0, res);
    double loss = ((p[0] - y[0]) * (p[0] - y[0]) + (p[1] - y[1]) * (p[1] - y[1])) / 2;
    CHECK(rc == 0 && fabs(res[0] - loss) < 1e-5 * (1 + loss), "loss %g vs %g", res[0], loss);
    double worst = 0;
    for (int k = 0; k < 3; k++) {
        double g = (2.0 / 2) * ((p[0] - y[0]) * x[k] + (p[1] - y[1]) * x[3 + k]);
        worst = fmax(worst, fabs(param(m, 0)[k] - (w0[k] - 0.1 * g)));
    }
    double gb = (2.0 / 2) * ((p[0] - y[0]) + (p[1] - y[1]));
    worst = fmax(worst, fabs(param(m, 1)[0] - (b0 - 0.1 * gb)));
    CHECK(worst < 1e-5, "sgd update off by %g", worst);
    CHECK(pn_model_iterations(m) == 1, "iterations %lld", (long long)pn_model_iterations(m));
    pn_model_destroy(m);
}

/* dloss/dx from the core matches central differences, through dense, tanh, softmax and CE */
static void test_gradient_check_dense_tanh_softmax(void) {
    pn_model *m;
    pn_model_create(&m);
    int64_t k1[2] = {4, 5}, b1[1] = {5}, k2[2] = {5, 3}, xs[1] = {4};
    int v[4], in, n;
    pn_model_add_variable(m, 2, k1, 1, &v[0]);
    pn_model_add_variable(m, 1, b1, 1, &v[1]);
    pn_model_add_variable(m, 2, k2, 1, &v[2]);
    pn_model_alloc(m);
    unsigned seed = 5;
    for (int i = 0; i < 20; i++) param(m, v[0])[i] = frand(&seed);
    for (int i = 0; i < 5; i++) param(m, v[1])[i] = frand(&seed);
    for (int i = 0; i < 15; i++) param(m, v[2])[i] = frand(&seed);
    pn_model_add_input(m, 1, xs, PN_F32, &in);
    pn_model_add_node(m, PN_OP_DENSE, 1, &in, 2, v, NULL, NULL, &n);
    pn_model_add_node(m, PN_OP_TANH, 1, &n, 0, NULL, NULL, NULL, &n);
    pn_model_add_node(m, PN_OP_DENSE, 1, &n, 1, &v[2], NULL, NULL, &n);
    pn_model_add_node(m, PN_OP_SOFTMAX, 1, &n, 0, NULL, NULL, NULL, &n);
    pn_model_set_output(m, n);
    pn_model_compile(m, PN_LOSS_SPARSE_CE, 0, 0, NULL);
    float x[PN_MAX_ATTRS], dx[8], loss, res[1];
    for (int i = 0; i < 8; i++) x[i] = frand(&seed);
    int32_t y[2] = {2, 0};
    pn_tensor tx = {2, {2, 4}, PN_F32, x}, ty = {1, {2}, PN_I32, y};
    int rc = pn_model_gradients(m, &tx, &ty, &loss, (float *[]){dx});
    CHECK(rc == 0, "gradients failed");
    double worst = 0;
    for (int i = 0; i < 8; i++) {
        float keep = x[i], lp, lm;
        x[i] = keep + 1e-2f;
        pn_model_test_step(m, &tx, &ty, NULL, NULL, 0, res);
        lp = res[0];
        x[i] = keep - 1e-2f;
        pn_model_test_step(m, &tx, &ty, NULL, NULL, 0, res);
        lm = res[0];
        x[i] = keep;
        worst = fmax(worst, fabs((lp - lm) / 2e-2 - dx[i]));
    }
    CHECK(worst < 2e-3, "input gradient differs from finite differences by %g", worst);
    pn_model_destroy(m);
}

/* bad input is refused with the right code, and a refused step changes no weight */
static void test_errors_leave_state_unchanged(void) {
    int node, id;
    pn_model *m = make_dense(4, 3, 1, PN_OP_SOFTMAX, 3u, &node);
    CHECK(pn_model_train_step(m, &(pn_tensor){0}, &(pn_tensor){0}, NULL, NULL, 0,
                              (float[1]){0}) ==
              PN_ESTATE,
          "training before compile must fail with PN_ESTATE");
    pn_model_compile(m, PN_LOSS_SPARSE_CE, 0, 0, NULL);
    pn_optim_config cfg = {.kind = PN_ADAM, .learning_rate = 0.01f, .beta_1 = 0.9f,
                           .beta_2 = 0.999f, .epsilon = 1e-7f};
    CHECK(pn_model_set_optimizer(m, &cfg) == 0, "adam");
    float before[16], x[PN_MAX_ATTRS] = {0}, res[2];
    memcpy(before, param(m, 0), sizeof(float) * 12);
    int32_t bad[2] = {1, 3};
    pn_tensor tx = {2, {2, 4}, PN_F32, x}, ty = {1, {2}, PN_I32, bad};
    CHECK(pn_model_train_step(m, &tx, &ty, NULL, NULL, 0, res) == PN_EVALUE,
          "label 3 of 3 classes");
    CHECK(strstr(pn_last_error(), "out of range") != NULL, "message: %s", pn_last_error());
    CHECK(memcmp(before, param(m, 0), sizeof(float) * 12) == 0, "weights changed");
    CHECK(pn_model_iterations(m) == 0, "iterations moved");
    pn_tensor wide = {2, {2, 5}, PN_F32, x};
    bad[1] = 0;
    CHECK(pn_model_train_step(m, &wide, &ty, NULL, NULL, 0, res) == PN_ESHAPE, "5 features for 4");
    CHECK(strstr(pn_last_error(), "(None, 4)") && strstr(pn_last_error(), "(2, 5)"),
          "message names both shapes: %s", pn_last_error());
    int64_t idx[2] = {0, 7};
    CHECK(pn_model_train_step(m, &tx, &ty, NULL, idx, 2, res) == PN_EVALUE, "index 7 of 2 rows");
    pn_tensor fy = {1, {2}, PN_F32, x};
    CHECK(pn_model_train_step(m, &tx, &fy, NULL, NULL, 0, res) == PN_ETYPE, "float labels");
    int64_t s[1] = {3};
    CHECK(pn_model_add_variable(m, 1, s, 1, &id) == PN_ESTATE, "variable after alloc");
    int64_t zero[1] = {0};
    pn_model *m2;
    pn_model_create(&m2);
    CHECK(pn_model_add_variable(m2, 1, zero, 1, &id) == PN_ESHAPE, "zero-sized variable");
    int64_t huge[2] = {INT64_MAX / 2, 4};
    CHECK(pn_model_add_variable(m2, 2, huge, 1, &id) == PN_ESHAPE, "overflowing variable");
    CHECK(pn_model_add_node(m2, PN_OP_RELU, 1, (int[]){0}, 0, NULL, NULL, NULL, &id) == PN_EVALUE,
          "node on a missing input");
    pn_model_destroy(m2);
    CHECK(pn_model_train_step(m, &tx, &ty, NULL, NULL, 0, res) == 0,
          "a good step after the bad ones");
    pn_model_destroy(m);
    pn_model_destroy(NULL); /* a no-op */
}

/* many batch sizes (more than the plan cache holds) give the answers of one big batch */
static void test_plan_cache_many_batch_sizes(void) {
    int node;
    pn_model *m = make_dense(6, 5, 1, PN_OP_RELU, 11u, &node);
    unsigned seed = 3;
    float x[40 * 6], all[40 * 5], part[40 * 5];
    for (int i = 0; i < 40 * 6; i++) x[i] = frand(&seed);
    pn_tensor tx = {2, {40, 6}, PN_F32, x};
    int rc = pn_model_predict(m, &tx, 40, (float *[]){all});
    for (int bs = 1; bs <= 13 && rc == 0; bs++) {
        rc = pn_model_predict(m, &tx, bs, (float *[]){part});
        float worst = 0; /* one or two rows take the GEMV path: equal up to rounding */
        for (int i = 0; i < 40 * 5; i++) worst = fmaxf(worst, fabsf(all[i] - part[i]));
        CHECK(rc == 0 && worst < 1e-5f, "batch size %d: differs by %g", bs, worst);
    }
    CHECK(rc == 0, "predict failed");
    pn_model_destroy(m);
}

/* the activation table: names round-trip and each op applies to a plain array */
static void test_op_table(void) {
    for (int op = 0; op < PN_OP_COUNT; op++)
        CHECK(pn_op_find(pn_op_name(op)) == op, "op %d round trip", op);
    CHECK(pn_op_name(PN_OP_COUNT) == NULL && pn_op_find("nope") == -1, "out of range");
    float in[4] = {-2, -0.5f, 0.5f, 2}, out[4];
    CHECK(pn_activation_apply(PN_OP_RELU, NULL, NULL, out, in, 1, 4) == 0 && out[0] == 0 &&
              out[3] == 2,
          "relu");
    float alpha[4] = {0.2f};
    pn_activation_apply(PN_OP_LEAKY_RELU, alpha, NULL, out, in, 2, 2);
    CHECK(fabsf(out[0] + 0.4f) < 1e-7f, "leaky relu slope");
    pn_activation_apply(PN_OP_SOFTMAX, NULL, NULL, out, in, 2, 2);
    CHECK(fabsf(out[0] + out[1] - 1) < 1e-6f && fabsf(out[2] + out[3] - 1) < 1e-6f, "softmax rows");
    CHECK(pn_activation_apply(PN_OP_DENSE, NULL, NULL, out, in, 1, 4) == PN_EVALUE, "not an activation");
    CHECK(pn_activation_apply(PN_OP_CONV2D, NULL, NULL, out, in, 1, 4) == PN_EVALUE, "conv2d");
    CHECK(pn_activation_apply(-1, NULL, NULL, out, in, 1, 4) == PN_EVALUE, "negative op");
    CHECK(pn_activation_find("gelu") == PN_OP_GELU && pn_activation_find("softmax") == PN_OP_SOFTMAX,
          "activations by name");
    CHECK(pn_activation_find("dense") == -1 && pn_activation_find("nope") == -1, "not activations");
    CHECK(pn_rnn_activation_find("hard_sigmoid") >= 0 && pn_rnn_activation_find("tanh") >= 0 &&
              pn_rnn_activation_find("gelu") == -1,
          "gate activations by name");
}

int main(void) {
    pn_set_num_threads(2);
    test_dense_forward();
    test_sgd_step_matches_hand_computation();
    test_gradient_check_dense_tanh_softmax();
    test_errors_leave_state_unchanged();
    test_plan_cache_many_batch_sizes();
    test_op_table();
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
