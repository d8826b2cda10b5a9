/*
 * test_targets.c: target nodes (pn_model_add_target) and PN_LOSS_NONE: a weighted mean squared
 * error built from graph nodes over an output's target and sample-weight nodes, as an added loss,
 * gives the fused MSE's loss and gradients, with and without sample weights; predict and eager
 * calls skip the nodes that read targets; refused arguments leave the model as it was; an output
 * that reads a target fails its plans; a failed allocation leaves no target behind.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

enum { C = 6, H = 5, K = 3, B = 4 };

/* input (C) -> dense (H) relu -> dense (K) (node 3, the output); weights from seed */
static pn_model *make_mlp(unsigned seed) {
    pn_model *m;
    if (pn_model_create(&m)) return NULL;
    int v[4], in, d1, r, d2;
    int64_t s0[2] = {C, H}, s1[1] = {H}, s2[2] = {H, K}, s3[1] = {K}, xs[1] = {C};
    pn_model_add_variable(m, 2, s0, 1, &v[0]);
    pn_model_add_variable(m, 1, s1, 1, &v[1]);
    pn_model_add_variable(m, 2, s2, 1, &v[2]);
    pn_model_add_variable(m, 1, s3, 1, &v[3]);
    pn_model_alloc(m);
    for (int k = 0; k < 4; k++) {
        int64_t size;
        pn_model_variable(m, v[k], NULL, &size, NULL, NULL);
        for (int64_t i = 0; i < size; i++) param(m, v[k])[i] = frand(&seed);
    }
    pn_model_add_input(m, 1, xs, PN_F32, &in);
    pn_model_add_node(m, PN_OP_DENSE, 1, &in, 2, v, NULL, NULL, &d1);
    pn_model_add_node(m, PN_OP_RELU, 1, &d1, 0, NULL, NULL, NULL, &r);
    pn_model_add_node(m, PN_OP_DENSE, 1, &r, 2, v + 2, NULL, NULL, &d2);
    pn_model_set_output(m, d2);
    return m;
}

static int64_t total_params(pn_model *m) {
    int64_t off, size;
    pn_model_variable(m, pn_model_variable_count(m) - 1, &off, &size, NULL, NULL);
    return off + size;
}

/* the batch's mean of w * mean_c (out - y)^2 from target nodes: Keras's MSE with sample weights
 * ("sum over batch size"), as an added loss; *diff gets the (out - y) node */
static int traced_mse(pn_model *m, int *diff) {
    int y, w, sq, row, wsq, loss, pair[2], out = 3;
    int64_t ys[1] = {K};
    int sub[PN_MAX_ATTRS] = {PN_BIN_SUB}, mul[PN_MAX_ATTRS] = {PN_BIN_MUL};
    int row_mean[PN_MAX_ATTRS] = {PN_RED_MEAN, 2, 0}, mean[PN_MAX_ATTRS] = {PN_RED_MEAN, 1, 0};
    int rc = pn_model_add_target(m, 0, 0, 1, ys, &y);
    if (!rc) rc = pn_model_add_target(m, 0, 1, 0, NULL, &w);
    pair[0] = out, pair[1] = y;
    if (!rc) rc = pn_model_add_node(m, PN_OP_BINARY, 2, pair, 0, NULL, sub, NULL, diff);
    pair[0] = *diff, pair[1] = *diff;
    if (!rc) rc = pn_model_add_node(m, PN_OP_BINARY, 2, pair, 0, NULL, mul, NULL, &sq);
    if (!rc) rc = pn_model_add_node(m, PN_OP_REDUCE, 1, &sq, 0, NULL, row_mean, NULL, &row);
    pair[0] = row, pair[1] = w;
    if (!rc) rc = pn_model_add_node(m, PN_OP_BINARY, 2, pair, 0, NULL, mul, NULL, &wsq);
    if (!rc) rc = pn_model_add_node(m, PN_OP_REDUCE, 1, &wsq, 0, NULL, mean, NULL, &loss);
    if (!rc) rc = pn_model_set_added_losses(m, 1, &loss);
    if (!rc) rc = pn_model_compile(m, PN_LOSS_NONE, 0, 0, NULL);
    return rc;
}

static void test_traced_mse_matches_fused(void) {
    pn_model *a = make_mlp(5), *b = make_mlp(5);
    int diff;
    CHECK(pn_model_compile(a, PN_LOSS_MSE, 0, 0, NULL) == 0, "fused mse");
    CHECK(traced_mse(b, &diff) == 0, "traced mse");
    unsigned s = 21;
    float x[B * C], y[B * K], sw[B] = {0.5f, 2.0f, 0.0f, 1.25f};
    for (int i = 0; i < B * C; i++) x[i] = frand(&s);
    for (int i = 0; i < B * K; i++) y[i] = frand(&s);
    pn_tensor tx = {.ndim = 2, .dims = {B, C}, .dtype = PN_F32, .data = x};
    pn_tensor ty = {.ndim = 2, .dims = {B, K}, .dtype = PN_F32, .data = y};
    int64_t n = total_params(a);
    float la, lb;
    CHECK(pn_model_gradients(a, &tx, &ty, &la, NULL) == 0, "fused gradients");
    CHECK(pn_model_gradients(b, &tx, &ty, &lb, NULL) == 0, "traced gradients");
    CHECK(fabsf(la - lb) < 1e-6f * fmaxf(1.0f, fabsf(la)), "loss %g vs %g", lb, la);
    double err = 0;
    for (int64_t i = 0; i < n; i++)
        err = fmax(err, fabs((double)pn_model_grads(a)[i] - pn_model_grads(b)[i]));
    CHECK(err < 1e-6, "gradients differ by %g", err);

    /* test steps, with sample weights (gathered rows) and without */
    const float *sws[1] = {sw};
    int64_t idx[B] = {2, 0, 3, 1};
    float ra[1], rb[1];
    CHECK(pn_model_test_step(a, &tx, &ty, sws, idx, B, ra) == 0, "fused weighted test step");
    CHECK(pn_model_test_step(b, &tx, &ty, sws, idx, B, rb) == 0, "traced weighted test step");
    CHECK(fabsf(ra[0] - rb[0]) < 1e-6f * fmaxf(1.0f, fabsf(ra[0])), "weighted loss %g vs %g",
          rb[0], ra[0]);
    CHECK(pn_model_test_step(a, &tx, &ty, NULL, NULL, 0, ra) == 0 &&
              pn_model_test_step(b, &tx, &ty, NULL, NULL, 0, rb) == 0 &&
              fabsf(ra[0] - rb[0]) < 1e-6f * fmaxf(1.0f, fabsf(ra[0])),
          "unweighted test step after a weighted one: %g vs %g (the ones come back)", rb[0],
          ra[0]);

    /* one SGD step each with sample weights: the same weights after */
    pn_optim_config opt = pn_optim_default(PN_SGD);
    opt.learning_rate = 0.1f;
    CHECK(pn_model_set_optimizer(a, &opt) == 0 && pn_model_set_optimizer(b, &opt) == 0, "sgd");
    CHECK(pn_model_train_step(a, &tx, &ty, sws, idx, B, ra) == 0, "fused train step");
    CHECK(pn_model_train_step(b, &tx, &ty, sws, idx, B, rb) == 0, "traced train step");
    err = 0;
    for (int64_t i = 0; i < n; i++)
        err = fmax(err, fabs((double)pn_model_params(a)[i] - pn_model_params(b)[i]));
    CHECK(err < 1e-6 && fabsf(ra[0] - rb[0]) < 1e-5f, "after a step: weights differ by %g, "
          "loss %g vs %g", err, rb[0], ra[0]);

    /* predict and eager calls skip the loss nodes, and agree */
    float pa[B * K], pb[B * K];
    float *oa[1] = {pa}, *ob[1] = {pb};
    CHECK(pn_model_predict(a, &tx, B, oa) == 0 && pn_model_predict(b, &tx, B, ob) == 0,
          "predict");
    CHECK(memcmp(pa, pb, sizeof pa) == 0, "predictions differ");
    pn_value *xv, *o;
    int64_t xd[2] = {B, C};
    pn_value_create(&xv, 2, xd, PN_F32, x);
    CHECK(pn_model_call(b, &xv, 0, &o) == 0, "an eager call");
    err = 0;
    for (int i = 0; i < B * K; i++) err = fmax(err, fabs(((float *)pn_value_data(o))[i] - pa[i]));
    CHECK(err < 1e-6, "the eager call's output differs by %g", err);
    pn_value_release(o);
    pn_value_release(xv);

    /* targets of another size are refused before anything runs */
    float y4[B * (K + 1)] = {0};
    pn_tensor ty4 = {.ndim = 2, .dims = {B, K + 1}, .dtype = PN_F32, .data = y4};
    CHECK(pn_model_test_step(b, &tx, &ty4, NULL, NULL, 0, rb) == PN_ESHAPE,
          "targets of K + 1 values refused");
    /* an output reading a target fails its plans, predict included */
    CHECK(pn_model_set_output(b, diff) == 0 && pn_model_compile(b, PN_LOSS_NONE, 0, 0, NULL) == 0,
          "the difference as the output");
    CHECK(pn_model_predict(b, &tx, B, ob) == PN_ESHAPE, "an output reading targets refused");
    pn_model_destroy(a);
    pn_model_destroy(b);
}

static void test_refused(void) {
    pn_model *m = make_mlp(7);
    int node = -1, n0 = 4, t; /* the mlp's nodes */
    int64_t ys[1] = {K}, ws[1] = {1}, bad[1] = {2};
    CHECK(pn_model_add_target(m, 1, 0, 1, ys, &node) == PN_EVALUE, "no output 1");
    CHECK(pn_model_add_target(m, -1, 0, 1, ys, &node) == PN_EVALUE, "no output -1");
    CHECK(pn_model_add_target(m, 0, 2, 1, ys, &node) == PN_EVALUE, "kind 2");
    CHECK(pn_model_add_target(m, 0, 0, -1, ys, &node) == PN_ESHAPE, "rank -1");
    CHECK(pn_model_add_target(m, 0, 0, PN_MAX_DIMS, ys, &node) == PN_ESHAPE, "rank too high");
    CHECK(pn_model_add_target(m, 0, 0, 1, NULL, &node) == PN_EVALUE, "no shape");
    CHECK(pn_model_add_target(m, 0, 1, 1, bad, &node) == PN_ESHAPE, "weights of 2 per sample");
    CHECK(pn_model_add_target(m, 0, 1, 1, ws, &node) == PN_ESHAPE, "weights of shape (1,)");
    CHECK(pn_model_add_target(m, 0, 0, 1, (int64_t[]){0}, &node) != 0, "an empty axis");
    CHECK(node == -1, "refusals give no node");
    int in = 0;
    CHECK(pn_model_add_node(m, PN_OP_TARGET, 0, &in, 0, NULL, NULL, NULL, &node) == PN_EVALUE,
          "a target is not made as a node");
    CHECK(pn_model_add_target(m, 0, 0, 1, ys, &t) == 0 && t == n0, "target, node %d", t);
    CHECK(pn_model_add_target(m, 0, 0, 1, ys, &node) == PN_EVALUE, "a second target node");
    CHECK(pn_model_add_target(m, 0, 1, 0, NULL, &node) == 0, "weights");
    CHECK(pn_model_compile(m, PN_LOSS_MSE, 0, 0, NULL) == PN_EVALUE,
          "a fused loss on an output with a target node");
    pn_metric acc = {.kind = PN_METRIC_MAE};
    CHECK(pn_model_compile(m, PN_LOSS_NONE, 0, 1, &acc) == PN_EVALUE, "core metrics on none");
    CHECK(pn_model_compile(m, PN_LOSS_NONE, 0, 0, NULL) == 0, "none");
    /* no added loss: the loss is 0 and the gradients too */
    float x[B * C] = {0}, y[B * K] = {0}, loss = 1;
    pn_tensor tx = {.ndim = 2, .dims = {B, C}, .dtype = PN_F32, .data = x};
    pn_tensor ty = {.ndim = 2, .dims = {B, K}, .dtype = PN_F32, .data = y};
    CHECK(pn_model_gradients(m, &tx, &ty, &loss, NULL) == 0 && loss == 0.0f, "loss %g", loss);
    double g = 0;
    for (int64_t i = 0; i < total_params(m); i++) g = fmax(g, fabs(pn_model_grads(m)[i]));
    CHECK(g == 0, "gradient %g without a loss", g);
    pn_tensor ti = {.ndim = 1, .dims = {B}, .dtype = PN_I32, .data = y};
    CHECK(pn_model_gradients(m, &tx, &ti, &loss, NULL) == PN_ETYPE, "int32 targets refused");
    pn_model_destroy(m);
}

/* every allocation of pn_model_add_target failing in turn: an error, and no target */
static void test_alloc_failures(void) {
    int64_t ys[1] = {K};
    for (int64_t f = 0;; f++) {
        pn_model *m = make_mlp(3);
        /* fill the node array to its capacity so the target's node must grow it */
        int n = 4, node, out = 3; /* the mlp's nodes */
        while (n % 16) {
            pn_model_add_node(m, PN_OP_RELU, 1, &out, 0, NULL, NULL, NULL, &node);
            n++;
        }
        pn_debug_fail_alloc(f);
        int rc = pn_model_add_target(m, 0, 0, 1, ys, &node);
        int64_t count = pn_debug_alloc_count();
        pn_debug_fail_alloc(-1);
        if (rc == 0) {
            CHECK(f >= count, "allocation %lld failed silently", (long long)f);
            pn_model_destroy(m);
            break;
        }
        CHECK(rc == PN_ENOMEM, "allocation %lld: rc %d", (long long)f, rc);
        CHECK(pn_model_add_target(m, 0, 0, 1, ys, &node) == 0 && node == n,
              "a target after the failure, node %d", node);
        pn_model_destroy(m);
    }
}

int main(void) {
    test_traced_mse_matches_fused();
    test_refused();
    test_alloc_failures();
    printf("%d passed, %d failed\n", passed, failed);
    return failed != 0;
}
