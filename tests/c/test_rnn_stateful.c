/*
 * test_rnn_stateful.c: stateful recurrent ops (iattr[10]) through the public header: the op
 * starts from its state variables and writes its final states into them at every forward, so
 * two predicts of T steps equal one of 2T; a training forward starts from them too (its
 * gradients are those of a plain op given the states as initial-state inputs); a batch of
 * another size is refused before anything runs; an op run on values keeps its states alike;
 * malformed nodes are refused. Prints "N passed, M failed" and exits non-zero on failure.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

enum { B = 3, T = 4, F = 2, U = 3 };

static int gates(int op) { return op == PN_OP_LSTM ? 4 : op == PN_OP_GRU ? 3 : 1; }
static int nstates(int op) { return op == PN_OP_LSTM ? 2 : 1; }

typedef struct {
    pn_model *m;
    int v[5], nv, node, in[3];
} net;

/* input (steps, F) [-> initial states as inputs] -> op, MSE. stateful: the op's states are
 * variables (B, U); given: the initial states are model inputs instead. Weights from seed. */
static int make(net *t, int op, int64_t steps, int stateful, int given, unsigned seed) {
    memset(t, 0, sizeof *t);
    const int G = gates(op), ns = nstates(op);
    int64_t ks[2] = {F, G * U}, rs[2] = {U, G * U}, bs[2] = {2, G * U}, ss[2] = {B, U};
    int rc = pn_model_create(&t->m);
    rc |= pn_model_add_variable(t->m, 2, ks, 1, &t->v[0]);
    rc |= pn_model_add_variable(t->m, 2, rs, 1, &t->v[1]);
    /* gru with reset_after: a (2, GU) bias; the others (GU) */
    rc |= op == PN_OP_GRU ? pn_model_add_variable(t->m, 2, bs, 1, &t->v[2])
                          : pn_model_add_variable(t->m, 1, bs + 1, 1, &t->v[2]);
    t->nv = 3;
    for (int k = 0; stateful && k < ns; k++)
        rc |= pn_model_add_variable(t->m, 2, ss, 0, &t->v[t->nv++]);
    rc |= pn_model_alloc(t->m);
    for (int k = 0; k < 3; k++) {
        int64_t size;
        pn_model_variable(t->m, t->v[k], NULL, &size, NULL, NULL);
        for (int64_t i = 0; i < size; i++) param(t->m, t->v[k])[i] = 0.6f * frand(&seed);
    }
    int64_t xs[2] = {steps, F}, hs[1] = {U};
    rc |= pn_model_add_input(t->m, 2, xs, PN_F32, &t->in[0]);
    int n_in = 1;
    for (int k = 0; given && k < ns; k++)
        rc |= pn_model_add_input(t->m, 1, hs, PN_F32, &t->in[n_in++]);
    int ia[PN_MAX_ATTRS] = {U, 0, 0, 0, 1 /* tanh */, 2 /* sigmoid */, op == PN_OP_GRU, 0, 0, 0,
                            stateful};
    rc |= pn_model_add_node(t->m, op, n_in, t->in, t->nv, t->v, ia, NULL, &t->node);
    rc |= pn_model_set_output(t->m, t->node);
    rc |= pn_model_compile(t->m, PN_LOSS_MSE, 0, 0, NULL);
    return rc;
}

static void copy_weights(pn_model *to, const net *from, const net *shape) {
    for (int k = 0; k < 3; k++) {
        int64_t size;
        pn_model_variable(from->m, from->v[k], NULL, &size, NULL, NULL);
        memcpy(param(to, shape->v[k]), param(from->m, from->v[k]), (size_t)size * sizeof(float));
    }
}

static double max_diff(const float *a, const float *b, int64_t n) {
    double d = 0;
    for (int64_t i = 0; i < n; i++) d = fmax(d, fabs((double)a[i] - b[i]));
    return d;
}

static void test_op(int op) {
    const char *name = pn_op_name(op);
    unsigned s = 7;
    float x[B * 2 * T * F], x1[B * T * F], x2[B * T * F];
    for (int i = 0; i < B * 2 * T * F; i++) x[i] = frand(&s);
    for (int b = 0; b < B; b++) { /* x1, x2: the first and last T steps of each sample */
        memcpy(x1 + b * T * F, x + b * 2 * T * F, T * F * sizeof(float));
        memcpy(x2 + b * T * F, x + b * 2 * T * F + T * F, T * F * sizeof(float));
    }
    net st, whole;
    CHECK(make(&st, op, T, 1, 0, 3) == 0, "%s: stateful model", name);
    CHECK(make(&whole, op, 2 * T, 0, 0, 3) == 0, "%s: plain model", name);
    copy_weights(whole.m, &st, &whole);
    float o1[B * U], o2[B * U], ow[B * U];
    float *out1[1] = {o1}, *out2[1] = {o2}, *outw[1] = {ow};
    pn_tensor t1 = {.ndim = 3, .dims = {B, T, F}, .dtype = PN_F32, .data = x1};
    pn_tensor t2 = {.ndim = 3, .dims = {B, T, F}, .dtype = PN_F32, .data = x2};
    pn_tensor tw = {.ndim = 3, .dims = {B, 2 * T, F}, .dtype = PN_F32, .data = x};
    CHECK(pn_model_predict(st.m, &t1, B, out1) == 0, "%s: predict 1", name);
    CHECK(max_diff(param(st.m, st.v[3]), o1, B * U) == 0, "%s: h holds the final state", name);
    CHECK(pn_model_predict(st.m, &t2, B, out2) == 0, "%s: predict 2", name);
    CHECK(pn_model_predict(whole.m, &tw, B, outw) == 0, "%s: predict whole", name);
    CHECK(max_diff(o2, ow, B * U) < 1e-5, "%s: two calls of T steps = one of 2T (%g)", name,
          max_diff(o2, ow, B * U));

    /* another batch size: refused before anything runs, the states unchanged */
    float keep[2 * B * U];
    memcpy(keep, param(st.m, st.v[3]), B * U * sizeof(float));
    pn_tensor small = {.ndim = 3, .dims = {B - 1, T, F}, .dtype = PN_F32, .data = x1};
    CHECK(pn_model_predict(st.m, &small, B - 1, out1) == PN_ESHAPE &&
              strstr(pn_last_error(), "Expected batch size: 3, received batch size: 2"),
          "%s: a batch of 2 refused", name);
    CHECK(pn_model_predict(st.m, &t1, 2, out1) == PN_ESHAPE, "%s: batches of 2 refused", name);
    CHECK(memcmp(keep, param(st.m, st.v[3]), B * U * sizeof(float)) == 0,
          "%s: the states unchanged by a refused run", name);

    /* a training forward starts from the states: its gradients are a plain op's given them as
     * initial states, and it writes the final states */
    net given;
    CHECK(make(&given, op, T, 0, 1, 3) == 0, "%s: model with initial states", name);
    copy_weights(given.m, &st, &given);
    float y[B * U], loss_a, loss_b, h0[2][B * U];
    for (int i = 0; i < B * U; i++) y[i] = frand(&s);
    for (int k = 0; k < nstates(op); k++)
        memcpy(h0[k], param(st.m, st.v[3 + k]), B * U * sizeof(float));
    pn_tensor ty = {.ndim = 2, .dims = {B, U}, .dtype = PN_F32, .data = y};
    pn_tensor gx[3] = {t1, {.ndim = 2, .dims = {B, U}, .dtype = PN_F32, .data = h0[0]},
                       {.ndim = 2, .dims = {B, U}, .dtype = PN_F32, .data = h0[1]}};
    CHECK(pn_model_gradients(st.m, &t1, &ty, &loss_a, NULL) == 0, "%s: gradients", name);
    CHECK(pn_model_gradients(given.m, gx, &ty, &loss_b, NULL) == 0, "%s: given's", name);
    CHECK(fabsf(loss_a - loss_b) < 1e-6f, "%s: losses %g %g", name, loss_a, loss_b);
    for (int k = 0; k < 3; k++) {
        int64_t size;
        pn_model_variable(st.m, st.v[k], NULL, &size, NULL, NULL);
        CHECK(max_diff(grad(st.m, st.v[k]), grad(given.m, given.v[k]), size) < 1e-6,
              "%s: gradient of variable %d", name, k);
    }
    float oa[B * U], *outa[1] = {oa};
    pn_model_predict(given.m, gx, B, outa);
    CHECK(max_diff(param(st.m, st.v[3]), oa, B * U) < 1e-6, "%s: training wrote the state",
          name);

    /* on values: the op run once over the model's variables as values, from the states
     * after x1 (zeros, then a predict of x1), goes on as the model does */
    pn_value *xv, *vars[5], *out = NULL;
    int64_t xd[3] = {B, T, F};
    pn_value_create(&xv, 3, xd, PN_F32, x2);
    for (int k = 0; k < st.nv; k++) pn_model_variable_value(st.m, st.v[k], &vars[k]);
    for (int k = 0; k < nstates(op); k++) memset(param(st.m, st.v[3 + k]), 0, sizeof o1);
    pn_model_predict(st.m, &t1, B, out1);
    int ia[PN_MAX_ATTRS] = {U, 0, 0, 0, 1, 2, op == PN_OP_GRU, 0, 0, 0, 1};
    CHECK(pn_eager_op(op, 1, &xv, st.nv, vars, ia, NULL, 0, 0, &out) == 0, "%s: on values",
          name);
    CHECK(out && max_diff(pn_value_data(out), ow, B * U) < 1e-5, "%s: values go on", name);
    CHECK(out && max_diff(param(st.m, st.v[3]), pn_value_data(out), B * U) == 0,
          "%s: values keep the state", name);
    pn_value_release(out);
    pn_value *sm;
    int64_t sd[3] = {B - 1, T, F};
    pn_value_create(&sm, 3, sd, PN_F32, x2);
    out = NULL;
    CHECK(pn_eager_op(op, 1, &sm, st.nv, vars, ia, NULL, 0, 0, &out) == PN_ESHAPE && !out,
          "%s: another batch refused on values", name);
    pn_value_release(sm);
    pn_value_release(xv);
    for (int k = 0; k < st.nv; k++) pn_value_release(vars[k]);
    pn_model_destroy(st.m);
    pn_model_destroy(whole.m);
    pn_model_destroy(given.m);
}

static void test_refusals(void) {
    pn_model *m;
    pn_model_create(&m);
    int64_t ks[2] = {F, U}, rs[2] = {U, U}, ss[2] = {B, U}, bad[2] = {B, U + 1}, xs[2] = {T, F};
    int v[6], in, node;
    pn_model_add_variable(m, 2, ks, 1, &v[0]);
    pn_model_add_variable(m, 2, rs, 1, &v[1]);
    pn_model_add_variable(m, 2, ss, 0, &v[2]);
    pn_model_add_variable(m, 2, bad, 0, &v[3]);
    pn_model_alloc(m);
    pn_model_add_input(m, 2, xs, PN_F32, &in);
    int ia[PN_MAX_ATTRS] = {U, 0, 0, 0, 1, 2, 0, 0, 0, 0, 1};
    CHECK(pn_model_add_node(m, PN_OP_SIMPLE_RNN, 1, &in, 3, v, ia, NULL, &node) == 0,
          "kernel, recurrent kernel, state");
    int wrong[3] = {v[0], v[1], v[3]};
    CHECK(pn_model_add_node(m, PN_OP_SIMPLE_RNN, 1, &in, 3, wrong, ia, NULL, &node) == PN_ESHAPE,
          "a state of the wrong width");
    CHECK(pn_model_add_node(m, PN_OP_SIMPLE_RNN, 1, &in, 2, v, ia, NULL, &node) == PN_EVALUE,
          "stateful without its state");
    ia[10] = 2;
    CHECK(pn_model_add_node(m, PN_OP_SIMPLE_RNN, 1, &in, 3, v, ia, NULL, &node) == PN_EVALUE,
          "stateful must be 0 or 1");
    pn_model_destroy(m);
}

int main(void) {
    test_op(PN_OP_SIMPLE_RNN);
    test_op(PN_OP_GRU);
    test_op(PN_OP_LSTM);
    test_refusals();
    printf("%d passed, %d failed\n", passed, failed);
    return failed != 0;
}
