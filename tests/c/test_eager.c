/*
 * test_eager.c: the tape through the public header: a model called eagerly agrees with its
 * training step, graph ops run on values agree with the model's plan, entries and values free
 * what they hold in every order, and misuse returns clear errors.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

enum { C = 6, H = 5, K = 3, B = 4 };

/* input (C) -> dense (H) relu -> dense (K); weights from seed */
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
    pn_model_compile(m, PN_LOSS_MSE, 0, 0, NULL);
    return m;
}

static int64_t total_params(pn_model *m) {
    int64_t off, size;
    pn_model_variable(m, pn_model_variable_count(m) - 1, &off, &size, NULL, NULL);
    return off + size;
}

static double max_diff(const float *a, const float *b, int64_t n) {
    double d = 0;
    for (int64_t i = 0; i < n; i++) d = fmax(d, fabs((double)a[i] - b[i]));
    return d;
}

/* model call + MSE on the tape + backward gives the training step's loss and gradients; a
 * second backward adds them again; the input's gradient matches pn_model_gradients' dx */
static void test_model_call_matches_gradients(void) {
    pn_model *m = make_mlp(3);
    unsigned s = 11;
    float x[B * C], y[B * K], dx[B * C], loss_ref;
    for (int i = 0; i < B * C; i++) x[i] = frand(&s);
    for (int i = 0; i < B * K; i++) y[i] = frand(&s);
    pn_tensor tx = {.ndim = 2, .dims = {B, C}, .dtype = PN_F32, .data = x};
    pn_tensor ty = {.ndim = 2, .dims = {B, K}, .dtype = PN_F32, .data = y};
    float *dxs[1] = {dx};
    CHECK(pn_model_gradients(m, &tx, &ty, &loss_ref, dxs) == 0, "gradients");
    int64_t n = total_params(m);
    float *want = malloc((size_t)n * sizeof(float));
    memcpy(want, pn_model_grads(m), (size_t)n * sizeof(float));

    pn_value *xv, *yv, *out, *loss;
    int64_t xd[2] = {B, C}, yd[2] = {B, K};
    pn_value_create(&xv, 2, xd, PN_F32, x);
    pn_value_create(&yv, 2, yd, PN_F32, y);
    pn_value_set_requires_grad(xv, 1);
    for (int round = 1; round <= 2; round++) {
        CHECK(pn_model_call(m, &xv, 1, &out) == 0, "call");
        CHECK(pn_eager_loss(PN_LOSS_MSE, 0, yv, out, &loss) == 0, "loss");
        CHECK(fabsf(*(float *)pn_value_data(loss) - loss_ref) < 1e-6f, "loss value");
        CHECK(pn_value_backward(loss, NULL) == 0, "backward");
        double d = 0;
        for (int64_t i = 0; i < n; i++) d = fmax(d, fabs(pn_model_grads(m)[i] - round * want[i]));
        CHECK(d < 1e-5, "round %d: parameter gradients differ by %g", round, d);
        float twice[B * C];
        for (int i = 0; i < B * C; i++) twice[i] = round * dx[i];
        CHECK(max_diff(pn_value_grad(xv), twice, B * C) < 1e-5, "input gradient, round %d", round);
        CHECK(pn_value_backward(loss, NULL) == PN_ESTATE, "a second backward through the call");
        pn_value_release(loss);
        pn_value_release(out);
    }
    pn_value_release(xv);
    pn_value_release(yv);
    free(want);
    pn_model_destroy(m);
}

/* Two calls held at once each get a plan; their backwards sum; a dense op run on values over the
 * model's variables gives the model's first layer. */
static void test_two_calls_and_ops_on_variables(void) {
    pn_model *m = make_mlp(5);
    unsigned s = 2;
    float x[2 * B * C];
    for (int i = 0; i < 2 * B * C; i++) x[i] = frand(&s);
    int64_t xd[2] = {B, C};
    pn_value *a, *b, *oa, *ob;
    pn_value_create(&a, 2, xd, PN_F32, x);
    pn_value_create(&b, 2, xd, PN_F32, x + B * C);
    CHECK(pn_model_call(m, &a, 1, &oa) == 0 && pn_model_call(m, &b, 1, &ob) == 0, "calls");
    float ones[B * K];
    for (int i = 0; i < B * K; i++) ones[i] = 1.0f;
    pn_model_zero_grads(m);
    pn_value_backward(ob, ones);
    pn_value_backward(oa, ones);
    int64_t n = total_params(m);
    float *both = malloc((size_t)n * sizeof(float));
    memcpy(both, pn_model_grads(m), (size_t)n * sizeof(float));
    pn_value_release(oa);
    pn_value_release(ob);
    /* the same sum from one batch of both halves */
    pn_value *ab, *oab;
    int64_t abd[2] = {2 * B, C};
    float ones2[2 * B * K];
    for (int i = 0; i < 2 * B * K; i++) ones2[i] = 1.0f;
    pn_value_create(&ab, 2, abd, PN_F32, x);
    pn_model_zero_grads(m);
    pn_model_call(m, &ab, 1, &oab);
    pn_value_backward(oab, ones2);
    CHECK(max_diff(both, pn_model_grads(m), n) < 1e-5, "two held calls sum their gradients");

    /* dense on values over variables 0 and 1 = the model's first dense layer */
    pn_value *w[2], *h;
    pn_model_variable_value(m, 0, &w[0]);
    pn_model_variable_value(m, 1, &w[1]);
    CHECK(pn_value_requires_grad(w[0]), "a trainable variable requires a gradient");
    CHECK(pn_eager_op(PN_OP_DENSE, 1, &a, 2, w, NULL, NULL, 0, 0, &h) == 0, "dense on values");
    const float *hv = pn_value_data(h), *W = param(m, 0), *bias = param(m, 1);
    double err = 0;
    for (int r = 0; r < B; r++)
        for (int j = 0; j < H; j++) {
            double ref = bias[j];
            for (int k = 0; k < C; k++) ref += (double)x[r * C + k] * W[k * H + j];
            err = fmax(err, fabs(ref - hv[r * H + j]));
        }
    CHECK(err < 1e-5, "dense on values: error %g", err);
    CHECK(pn_value_fn_name(h) && !strcmp(pn_value_fn_name(h), "dense"), "recorded as dense");
    /* the model is destroyed by its creator; the values over its variables keep it alive */
    pn_model_destroy(m);
    float hsum[B * H];
    for (int i = 0; i < B * H; i++) hsum[i] = 1.0f;
    pn_value_zero_grad(w[1]);
    CHECK(pn_value_backward(h, hsum) == 0, "backward after the model's creator let go");
    double db = 0;
    for (int j = 0; j < H; j++) db = fmax(db, fabs(pn_value_grad(w[1])[j] - B));
    CHECK(db < 1e-5, "bias gradient of a sum over %d rows", B);
    pn_value_release(h);
    pn_value_release(w[0]);
    pn_value_release(w[1]);
    pn_value_release(oab);
    pn_value_release(ab);
    pn_value_release(a);
    pn_value_release(b);
    free(both);
}

/* misuse: wrong input shapes and types, a backward from a tensor without a tape, an embedding
 * index out of range, apply_gradients without an optimizer or on bad variables */
static void test_errors(void) {
    pn_model *m = make_mlp(1);
    pn_value *x, *out = NULL;
    int64_t bad[2] = {2, C + 1};
    pn_value_create(&x, 2, bad, PN_F32, NULL);
    CHECK(pn_model_call(m, &x, 0, &out) == PN_ESHAPE && !out, "wrong input shape");
    pn_value_release(x);
    int64_t good[2] = {2, C};
    pn_value_create(&x, 2, good, PN_F32, NULL);
    pn_set_grad_enabled(0);
    CHECK(pn_model_call(m, &x, 1, &out) == 0 && !pn_value_requires_grad(out), "grad mode off");
    CHECK(pn_value_backward(out, NULL) == PN_ESTATE, "backward without a tape");
    pn_set_grad_enabled(1);
    pn_value_release(out);
    CHECK(pn_model_apply_gradients(m, 0, NULL) == PN_ESTATE, "no optimizer yet");
    pn_optim_config sgd = {.kind = PN_SGD, .learning_rate = 0.5f};
    pn_model_set_optimizer(m, &sgd);
    int twice[2] = {0, 0}, nope[1] = {9};
    CHECK(pn_model_apply_gradients(m, 2, twice) == PN_EVALUE, "a variable twice");
    CHECK(pn_model_apply_gradients(m, 1, nope) == PN_EVALUE, "no such variable");
    /* a subset update moves only its variables */
    float before = param(m, 2)[0];
    pn_model_zero_grads(m);
    for (int i = 0; i < C * H; i++) grad(m, 0)[i] = 1.0f;
    grad(m, 2)[0] = 1.0f;
    int first[1] = {0};
    float w0 = param(m, 0)[0];
    CHECK(pn_model_apply_gradients(m, 1, first) == 0, "apply to one variable");
    CHECK(fabsf(param(m, 0)[0] - (w0 - 0.5f)) < 1e-6f && param(m, 2)[0] == before,
          "only the listed variable moved");
    pn_value_release(x);
    pn_model_destroy(m);

    /* embedding indices on the tape are checked before any read */
    pn_value *table, *idx, *e = NULL;
    int64_t td[2] = {4, 3}, id[2] = {2, 2};
    int32_t ids[4] = {0, 3, 4, 1};
    pn_value_create(&table, 2, td, PN_F32, NULL);
    pn_value_create(&idx, 2, id, PN_I32, ids);
    CHECK(pn_eager_op(PN_OP_EMBEDDING, 1, &idx, 1, &table, NULL, NULL, 0, 0, &e) == PN_EVALUE &&
              !e, "index 4 of a 4-row table");
    ids[2] = 2;
    pn_value_release(idx);
    pn_value_create(&idx, 2, id, PN_I32, ids);
    CHECK(pn_eager_op(PN_OP_EMBEDDING, 1, &idx, 1, &table, NULL, NULL, 0, 0, &e) == 0, "lookup");
    pn_value_release(e);
    pn_value_release(idx);
    pn_value_release(table);
}

/* Graphs over one set of variables: graph 1 takes (2, C) per sample and adds a constant before
 * graph 0's layers. Its output is graph 0's on the shifted rows; calls on both graphs held
 * across a switch get, together, the gradients each gets alone; a graph a tape still needs, or
 * the current one, cannot be dropped; at most PN_MAX_GRAPHS. */
static void test_graphs(void) {
    pn_model *m = make_mlp(7);
    int v[4] = {0, 1, 2, 3}, in, shifted, d1, r, d2, id, add[PN_MAX_ATTRS] = {PN_BIN_ADD};
    int64_t xs[2] = {2, C}, cs[1] = {C};
    float shift[C];
    unsigned s = 4;
    for (int i = 0; i < C; i++) shift[i] = frand(&s);
    CHECK(pn_model_add_graph(m, &id) == 0 && id == 1 && pn_model_current_graph(m) == 1, "add");
    CHECK(pn_model_add_node(m, PN_OP_CONSTANT, 0, NULL, 0, NULL, NULL, NULL, &d1) == PN_EVALUE,
          "a constant comes with its values");
    int nodes[2];
    pn_model_add_input(m, 2, xs, PN_F32, &in);
    CHECK(pn_model_add_constant(m, 1, cs, shift, &nodes[1]) == 0, "constant");
    nodes[0] = in;
    CHECK(pn_model_add_node(m, PN_OP_BINARY, 2, nodes, 0, NULL, add, NULL, &shifted) == 0, "add");
    pn_model_add_node(m, PN_OP_DENSE, 1, &shifted, 2, v, NULL, NULL, &d1);
    pn_model_add_node(m, PN_OP_RELU, 1, &d1, 0, NULL, NULL, NULL, &r);
    pn_model_add_node(m, PN_OP_DENSE, 1, &r, 2, v + 2, NULL, NULL, &d2);
    CHECK(pn_model_set_output(m, d2) == 0 && pn_model_compile(m, PN_LOSS_MSE, 0, 0, NULL) == 0,
          "graph 1 compiled");

    float x1[B * 2 * C], x0[2 * B * C], ones[2 * B * K];
    for (int i = 0; i < B * 2 * C; i++) x1[i] = frand(&s);
    for (int i = 0; i < 2 * B * C; i++) x0[i] = x1[i] + shift[i % C];
    for (int i = 0; i < 2 * B * K; i++) ones[i] = 1.0f;
    int64_t d1s[3] = {B, 2, C}, d0s[2] = {2 * B, C}, n = total_params(m);
    pn_value *a, *b, *oa, *ob;
    pn_value_create(&a, 3, d1s, PN_F32, x1);
    pn_value_create(&b, 2, d0s, PN_F32, x0);
    CHECK(pn_model_call(m, &a, 1, &oa) == 0, "call on graph 1");
    CHECK(pn_model_drop_graph(m, 1) == PN_ESTATE, "the current graph is not dropped");
    CHECK(pn_model_use_graph(m, 0) == 0 && pn_model_call(m, &b, 1, &ob) == 0, "call on graph 0");
    CHECK(max_diff(pn_value_data(oa), pn_value_data(ob), 2 * B * K) < 1e-6,
          "graph 1 = graph 0 on the shifted rows");
    CHECK(pn_model_drop_graph(m, 1) == PN_ESTATE, "a graph a tape needs is not dropped");
    float *alone = calloc((size_t)n, sizeof(float));
    pn_model_zero_grads(m);
    pn_value_backward(ob, ones);
    for (int64_t i = 0; i < n; i++) alone[i] += 2 * pn_model_grads(m)[i];
    pn_value_release(ob);
    pn_model_zero_grads(m);
    CHECK(pn_model_call(m, &b, 1, &ob) == 0, "call on graph 0 again");
    pn_value_backward(oa, ones); /* on graph 1, while graph 0 is current */
    pn_value_backward(ob, ones);
    CHECK(max_diff(pn_model_grads(m), alone, n) < 1e-5, "held calls on two graphs sum");
    CHECK(pn_model_current_graph(m) == 0, "a backward leaves the current graph as it was");
    pn_value_release(oa);
    pn_value_release(ob);
    CHECK(pn_model_drop_graph(m, 1) == 0, "dropped once its tape is gone");
    CHECK(pn_model_use_graph(m, 1) == PN_EVALUE && pn_model_use_graph(m, 99) == PN_EVALUE,
          "no such graph");
    int made = 1, rc = 0;
    while ((rc = pn_model_add_graph(m, &id)) == 0) made++;
    CHECK(rc == PN_ESTATE && made == PN_MAX_GRAPHS, "at most %d graphs (%d)", PN_MAX_GRAPHS, made);
    pn_value_release(a);
    pn_value_release(b);
    free(alone);
    pn_model_destroy(m);
}

/* An added loss (0.1 * sum of the hidden relu over the batch): the steps' loss grows by its value
 * and the first bias's gradient by 0.1 per sample where the unit is active; eager calls leave it
 * out; only a float32 scalar without a batch axis is taken. */
static void test_added_losses(void) {
    pn_model *m = make_mlp(9);
    unsigned s = 12;
    float x[B * C], y[B * K];
    for (int i = 0; i < B * C; i++) x[i] = frand(&s);
    for (int i = 0; i < B * K; i++) y[i] = frand(&s);
    pn_tensor tx = {.ndim = 2, .dims = {B, C}, .dtype = PN_F32, .data = x};
    pn_tensor ty = {.ndim = 2, .dims = {B, K}, .dtype = PN_F32, .data = y};
    float base, with, gb_base[H], gb_with[H];
    CHECK(pn_model_gradients(m, &tx, &ty, &base, NULL) == 0, "gradients");
    memcpy(gb_base, grad(m, 1), sizeof gb_base);
    int sum, tenth, scaled, relu = 2, red[PN_MAX_ATTRS] = {PN_RED_SUM, 3, 0};
    int mul[PN_MAX_ATTRS] = {PN_BIN_MUL}, pair[2];
    float k = 0.1f;
    CHECK(pn_model_add_node(m, PN_OP_REDUCE, 1, &relu, 0, NULL, red, NULL, &sum) == 0, "sum");
    CHECK(pn_model_add_constant(m, 0, NULL, &k, &tenth) == 0, "a scalar constant");
    pair[0] = sum, pair[1] = tenth;
    CHECK(pn_model_add_node(m, PN_OP_BINARY, 2, pair, 0, NULL, mul, NULL, &scaled) == 0, "mul");
    int out = 3;
    CHECK(pn_model_set_added_losses(m, 1, &out) == PN_ESHAPE, "a batched node is refused");
    CHECK(pn_model_set_added_losses(m, 1, &scaled) == 0, "added loss");
    CHECK(pn_model_compile(m, PN_LOSS_MSE, 0, 0, NULL) == 0, "compiled again after new nodes");
    CHECK(pn_model_gradients(m, &tx, &ty, &with, NULL) == 0, "gradients with the added loss");
    memcpy(gb_with, grad(m, 1), sizeof gb_with);
    double want = 0, err = 0;
    const float *W = param(m, 0), *b = param(m, 1);
    for (int r = 0; r < B; r++)
        for (int j = 0; j < H; j++) {
            double z = b[j];
            for (int c = 0; c < C; c++) z += (double)x[r * C + c] * W[c * H + j];
            want += z > 0 ? 0.1 * z : 0;
            gb_base[j] += z > 0 ? 0.1f : 0.0f;
        }
    CHECK(fabs(with - base - want) < 1e-5, "loss grows by %g, want %g", with - base, want);
    for (int j = 0; j < H; j++) err = fmax(err, fabs(gb_with[j] - gb_base[j]));
    CHECK(err < 1e-5, "bias gradient off by %g", err);
    float res[1];
    CHECK(pn_model_test_step(m, &tx, &ty, NULL, NULL, 0, res) == 0 && fabsf(res[0] - with) < 1e-5,
          "a test step's loss includes it");
    pn_value *xv, *o;
    int64_t xd[2] = {B, C};
    pn_value_create(&xv, 2, xd, PN_F32, x);
    float ones[B * K];
    for (int i = 0; i < B * K; i++) ones[i] = 1.0f;
    pn_model_zero_grads(m);
    CHECK(pn_model_call(m, &xv, 1, &o) == 0 && pn_value_backward(o, ones) == 0, "eager call");
    float gb_eager[H];
    memcpy(gb_eager, grad(m, 1), sizeof gb_eager);
    CHECK(pn_model_set_added_losses(m, 0, NULL) == 0, "none");
    pn_value_release(o);
    pn_model_zero_grads(m);
    pn_model_call(m, &xv, 1, &o);
    pn_value_backward(o, ones);
    CHECK(memcmp(gb_eager, grad(m, 1), sizeof gb_eager) == 0, "an eager call leaves it out");
    pn_value_release(o);
    pn_value_release(xv);
    pn_model_destroy(m);
}

int main(void) {
    test_model_call_matches_gradients();
    test_two_calls_and_ops_on_variables();
    test_errors();
    test_graphs();
    test_added_losses();
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
