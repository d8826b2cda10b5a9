/*
 * test_rnn.c: the recurrent ops (simple_rnn, lstm, gru) and slice through the public header.
 * Prints "N passed, M failed" and exits non-zero on failure.
 *
 * Each case builds input (T, F) [+ initial states] -> op [-> slice] with an MSE loss and checks
 * the forward against a double-precision reference written here (Keras 3's cells), and every
 * gradient (input, states, weights) against central finite differences of the core's loss; with
 * dropout the random state is restored before each evaluation, so the masks stay fixed.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

enum { LIN = 0, TANH, SIG, RELU, HSIG };

static double act(double x, int a) {
    switch (a) {
    case TANH: return tanh(x);
    case SIG: return 1.0 / (1.0 + exp(-x));
    case RELU: return x > 0 ? x : 0;
    case HSIG: return fmin(1.0, fmax(0.0, (x + 3.0) / 6.0));
    default: return x;
    }
}

typedef struct {
    const char *what;
    int op, T, F, U, B;
    int rs, back, rstate, act, ract, ra, use_bias, states, rev;
    float drop, rdrop;
    int stride; /* finite differences at every stride-th weight (0: every 5th) */
} cfg;

typedef struct {
    pn_model *m;
    int in[3], n_in, vars[3], n_var, node;
    int64_t out_size;
    float *x[3], *y;
    int64_t x_size[3];
} net;

static int gates(int op) { return op == PN_OP_LSTM ? 4 : op == PN_OP_GRU ? 3 : 1; }
static int nstates(int op) { return op == PN_OP_LSTM ? 2 : 1; }

static int make(net *t, const cfg *c, unsigned seed) {
    memset(t, 0, sizeof *t);
    int G = gates(c->op), rc = 0;
    int64_t GU = (int64_t)G * c->U;
    int64_t ks[2] = {c->F, GU}, rks[2] = {c->U, GU}, bs2[2] = {2, GU}, bs1[1] = {GU};
    rc |= pn_model_create(&t->m);
    rc |= pn_model_add_variable(t->m, 2, ks, 1, &t->vars[0]);
    rc |= pn_model_add_variable(t->m, 2, rks, 1, &t->vars[1]);
    t->n_var = 2;
    if (c->use_bias) {
        int ra = c->op == PN_OP_GRU && c->ra;
        rc |= pn_model_add_variable(t->m, ra ? 2 : 1, ra ? bs2 : bs1, 1, &t->vars[2]);
        t->n_var = 3;
    }
    rc |= pn_model_alloc(t->m);
    if (rc) return rc;
    for (int v = 0; v < t->n_var; v++) {
        int64_t size;
        pn_model_variable(t->m, t->vars[v], NULL, &size, NULL, NULL);
        for (int64_t i = 0; i < size; i++) param(t->m, t->vars[v])[i] = 0.5f * frand(&seed);
    }
    int64_t xs[2] = {c->T, c->F}, ss[1] = {c->U};
    rc |= pn_model_add_input(t->m, 2, xs, PN_F32, &t->in[0]);
    t->n_in = 1;
    t->x_size[0] = (int64_t)c->B * c->T * c->F;
    if (c->states)
        for (int k = 0; k < nstates(c->op); k++) {
            rc |= pn_model_add_input(t->m, 1, ss, PN_F32, &t->in[1 + k]);
            t->x_size[1 + k] = (int64_t)c->B * c->U;
            t->n_in++;
        }
    int ia[PN_MAX_ATTRS] = {c->U, c->rs, c->back, c->rstate, c->act, c->ract, c->ra, c->rev};
    float fa[PN_MAX_ATTRS] = {c->drop, c->rdrop};
    rc |= pn_model_add_node(t->m, c->op, t->n_in, t->in, t->n_var, t->vars, ia, fa, &t->node);
    if (rc) return rc;
    int64_t shape[PN_MAX_DIMS];
    int nd = pn_model_node_shape(t->m, t->node, shape);
    t->out_size = 1;
    for (int i = 0; i < nd; i++) t->out_size *= shape[i];
    rc |= pn_model_set_output(t->m, t->node);
    rc |= pn_model_compile(t->m, PN_LOSS_MSE, 0, 0, NULL);
    for (int k = 0; k < t->n_in; k++) {
        t->x[k] = malloc((size_t)t->x_size[k] * sizeof(float));
        for (int64_t i = 0; i < t->x_size[k]; i++) t->x[k][i] = frand(&seed);
    }
    t->y = malloc((size_t)(c->B * t->out_size) * sizeof(float));
    for (int64_t i = 0; i < c->B * t->out_size; i++) t->y[i] = frand(&seed);
    return rc;
}

static void drop(net *t) {
    pn_model_destroy(t->m);
    for (int k = 0; k < t->n_in; k++) free(t->x[k]);
    free(t->y);
}

static void tensors(const net *t, const cfg *c, pn_tensor *xs, pn_tensor *y) {
    xs[0] = (pn_tensor){.ndim = 3, .dims = {c->B, c->T, c->F}, .dtype = PN_F32, .data = t->x[0]};
    for (int k = 1; k < t->n_in; k++)
        xs[k] = (pn_tensor){.ndim = 2, .dims = {c->B, c->U}, .dtype = PN_F32, .data = t->x[k]};
    *y = (pn_tensor){.ndim = 2, .dims = {c->B, t->out_size}, .dtype = PN_F32, .data = t->y};
}

/* Keras 3's cell in double, no dropout: writes the op's packed output for sample b */
static void reference(const net *t, const cfg *c, int64_t b, double *out) {
    const int U = c->U, F = c->F, T = c->T, G = gates(c->op), GU = G * U;
    const float *W = param(t->m, t->vars[0]), *R = param(t->m, t->vars[1]);
    const float *bias = c->use_bias ? param(t->m, t->vars[2]) : NULL;
    int ra = c->op == PN_OP_GRU && c->ra;
    double h[128] = {0}, cc[128] = {0}, z[512], s[512], hn[128]; /* U <= 128 */
    if (c->states) {
        for (int j = 0; j < U; j++) h[j] = t->x[1][b * U + j];
        if (c->op == PN_OP_LSTM)
            for (int j = 0; j < U; j++) cc[j] = t->x[2][b * U + j];
    }
    int64_t seq = c->rs ? (int64_t)T * U : U;
    for (int step = 0; step < T; step++) {
        int src = c->back ? T - 1 - step : step;
        const float *x = t->x[0] + ((int64_t)b * T + src) * F;
        for (int g = 0; g < GU; g++) {
            z[g] = bias ? bias[g] : 0;
            for (int f = 0; f < F; f++) z[g] += x[f] * W[f * GU + g];
            s[g] = ra && bias ? bias[GU + g] : 0;
            for (int k = 0; k < U; k++) s[g] += h[k] * R[k * GU + g];
        }
        for (int j = 0; j < U; j++) {
            if (c->op == PN_OP_SIMPLE_RNN) {
                hn[j] = act(z[j] + s[j], c->act);
            } else if (c->op == PN_OP_LSTM) {
                double i = act(z[j] + s[j], c->ract), f = act(z[U + j] + s[U + j], c->ract);
                double g = act(z[2 * U + j] + s[2 * U + j], c->act);
                double o = act(z[3 * U + j] + s[3 * U + j], c->ract);
                cc[j] = f * cc[j] + i * g;
                hn[j] = o * act(cc[j], c->act);
            } else {
                double zz = act(z[j] + s[j], c->ract), r = act(z[U + j] + s[U + j], c->ract), hh;
                if (ra) {
                    hh = act(z[2 * U + j] + r * s[2 * U + j], c->act);
                } else {
                    double rh = 0;
                    for (int k = 0; k < U; k++) {
                        double rk = act(z[U + k] + s[U + k], c->ract);
                        rh += rk * h[k] * R[k * GU + 2 * U + j];
                    }
                    hh = act(z[2 * U + j] + rh, c->act);
                }
                hn[j] = zz * h[j] + (1 - zz) * hh;
            }
        }
        memcpy(h, hn, sizeof(double) * (size_t)U);
        if (c->rs) {
            int at = c->rev ? T - 1 - step : step;
            for (int j = 0; j < U; j++) out[at * U + j] = h[j];
        }
    }
    if (!c->rs)
        for (int j = 0; j < U; j++) out[j] = h[j];
    if (c->rstate) {
        for (int j = 0; j < U; j++) out[seq + j] = h[j];
        if (c->op == PN_OP_LSTM)
            for (int j = 0; j < U; j++) out[seq + U + j] = cc[j];
    }
}

static double loss_of(net *t, const cfg *c, int training, uint64_t seed, uint64_t fw) {
    pn_tensor xs[3], y;
    tensors(t, c, xs, &y);
    float l = 0;
    if (training) {
        pn_model_set_rng_state(t->m, seed, fw);
        pn_model_gradients(t->m, xs, &y, &l, NULL);
    } else {
        float r[4];
        pn_model_test_step(t->m, xs, &y, NULL, NULL, c->B, r);
        l = r[0];
    }
    return l;
}

static void check_case(const cfg *c, unsigned seed) {
    net t;
    int rc = make(&t, c, seed);
    CHECK(rc == 0, "%s: builds", c->what);
    if (rc) {
        drop(&t);
        return;
    }
    pn_tensor xs[3], y;
    tensors(&t, c, xs, &y);
    /* forward vs the reference (inference: no dropout) */
    float *pred = malloc((size_t)(c->B * t.out_size) * sizeof(float));
    const float *outs[1] = {pred};
    rc = pn_model_predict(t.m, xs, c->B, (float *const *)outs);
    double *ref = malloc((size_t)t.out_size * sizeof(double)), err = 0;
    for (int64_t b = 0; b < c->B; b++) {
        reference(&t, c, b, ref);
        for (int64_t i = 0; i < t.out_size; i++)
            err = fmax(err, fabs(pred[b * t.out_size + i] - ref[i]));
    }
    CHECK(rc == 0 && err < 2e-5, "%s: forward matches the reference (max err %g)", c->what, err);

    /* gradients vs finite differences (the masks fixed by the restored random state) */
    int training = c->drop > 0 || c->rdrop > 0;
    uint64_t s0, f0;
    pn_model_rng_state(t.m, &s0, &f0);
    float *dx[3] = {NULL};
    for (int k = 0; k < t.n_in; k++) dx[k] = malloc((size_t)t.x_size[k] * sizeof(float));
    float l;
    pn_model_set_rng_state(t.m, s0, f0);
    rc = pn_model_gradients(t.m, xs, &y, &l, dx);
    CHECK(rc == 0, "%s: gradients", c->what);
    float *g[3] = {NULL};
    for (int v = 0; v < t.n_var; v++) {
        int64_t size;
        pn_model_variable(t.m, t.vars[v], NULL, &size, NULL, NULL);
        g[v] = malloc((size_t)size * sizeof(float));
        memcpy(g[v], grad(t.m, t.vars[v]), (size_t)size * sizeof(float));
    }
    double worst = 0;
    const float h = 1e-2f;
    for (int k = 0; k < t.n_in; k++)
        for (int64_t i = 0; i < t.x_size[k]; i += 3) {
            float old = t.x[k][i];
            t.x[k][i] = old + h;
            double up = loss_of(&t, c, training, s0, f0);
            t.x[k][i] = old - h;
            double down = loss_of(&t, c, training, s0, f0);
            t.x[k][i] = old;
            double num = (up - down) / (2 * h);
            worst = fmax(worst, fabs(num - dx[k][i]) / (1e-2 + fabs(num)));
        }
    for (int v = 0; v < t.n_var; v++) {
        int64_t size;
        pn_model_variable(t.m, t.vars[v], NULL, &size, NULL, NULL);
        float *w = param(t.m, t.vars[v]);
        for (int64_t i = 0; i < size; i += c->stride ? c->stride : 5) {
            float old = w[i];
            w[i] = old + h;
            double up = loss_of(&t, c, training, s0, f0);
            w[i] = old - h;
            double down = loss_of(&t, c, training, s0, f0);
            w[i] = old;
            double num = (up - down) / (2 * h);
            worst = fmax(worst, fabs(num - g[v][i]) / (1e-2 + fabs(num)));
        }
    }
    CHECK(worst < 3e-2, "%s: gradients match finite differences (worst %g)", c->what, worst);
    for (int k = 0; k < t.n_in; k++) free(dx[k]);
    for (int v = 0; v < t.n_var; v++) free(g[v]);
    free(pred);
    free(ref);
    drop(&t);
}

static void test_cases(void) {
    const int ops[3] = {PN_OP_SIMPLE_RNN, PN_OP_LSTM, PN_OP_GRU};
    const char *names[3] = {"simple_rnn", "lstm", "gru"};
    char what[160];
    unsigned seed = 7;
    for (int o = 0; o < 3; o++)
        for (int variant = 0; variant < 9; variant++) {
            cfg c = {.what = what, .op = ops[o], .T = 5, .F = 3, .U = 4, .B = 3, .act = TANH,
                     .ract = SIG, .use_bias = 1, .ra = 1};
            switch (variant) {
            case 1: c.rs = 1; break;
            case 2: c.back = 1, c.rs = 1, c.rev = 1; break;
            case 3: c.rstate = 1, c.states = 1, c.rs = 1; break;
            case 4: c.ra = 0, c.use_bias = o != 1, c.back = 1; break;
            case 5: c.drop = 0.3f, c.rdrop = 0.4f, c.rs = 1, c.ra = 0; break;
            case 6: c.T = 1, c.B = 1, c.rstate = 1, c.act = LIN, c.ract = HSIG; break;
            /* steps large enough for the lstm's threads (B 4U U >= 2^16 multiply-adds), with
             * units past whole panels of 16 and rows past whole tiles of 6 */
            case 7:
                c.T = 3, c.F = 5, c.U = 37, c.B = 13, c.rs = 1, c.states = 1, c.drop = 0.2f,
                c.rdrop = 0.3f, c.stride = 17;
                break;
            case 8: c.T = 2, c.U = 67, c.B = 4, c.back = 1, c.rstate = 1, c.stride = 37; break;
            default: break;
            }
            if (variant >= 7 && ops[o] != PN_OP_LSTM) continue;
            snprintf(what, sizeof what, "%s variant %d", names[o], variant);
            check_case(&c, seed++);
        }
}

/* slice: the h and c of an lstm's packed output, as return_state splits it */
static void test_slice(void) {
    cfg c = {.what = "slice", .op = PN_OP_LSTM, .T = 3, .F = 2, .U = 2, .B = 2, .act = TANH,
             .ract = SIG, .use_bias = 1, .rstate = 1, .rs = 1};
    net t;
    CHECK(make(&t, &c, 3) == 0, "slice: builds the lstm");
    int sl, bad;
    int ia[PN_MAX_ATTRS] = {6 + 2, 1, 2}; /* c_T: after the sequence (6) and h (2) */
    CHECK(pn_model_add_node(t.m, PN_OP_SLICE, 1, &t.node, 0, NULL, ia, NULL, &sl) == 0,
          "slice: adds");
    int64_t shape[PN_MAX_DIMS];
    CHECK(pn_model_node_shape(t.m, sl, shape) == 1 && shape[0] == 2, "slice: shape (2)");
    int ib[PN_MAX_ATTRS] = {9, 1, 2};
    CHECK(pn_model_add_node(t.m, PN_OP_SLICE, 1, &t.node, 0, NULL, ib, NULL, &bad) == PN_ESHAPE,
          "slice: past the end is refused");
    int ic[PN_MAX_ATTRS] = {0, 0};
    CHECK(pn_model_add_node(t.m, PN_OP_SLICE, 1, &t.node, 0, NULL, ic, NULL, &bad) == PN_EVALUE,
          "slice: rank 0 is refused");
    pn_model_set_output(t.m, sl);
    pn_model_compile(t.m, PN_LOSS_MSE, 0, 0, NULL);
    pn_tensor xs[1], y;
    tensors(&t, &c, xs, &y);
    float full[2 * 10], part[2 * 2];
    double ref[10];
    float *o1[1] = {part};
    CHECK(pn_model_predict(t.m, xs, 2, o1) == 0, "slice: predicts");
    for (int b = 0; b < 2; b++) {
        reference(&t, &c, b, ref);
        CHECK(fabs(part[b * 2] - ref[8]) < 1e-5 && fabs(part[b * 2 + 1] - ref[9]) < 1e-5,
              "slice: sample %d holds c_T", b);
    }
    (void)full;
    drop(&t);
}

static void test_bad_attributes(void) {
    pn_model *m;
    pn_model_create(&m);
    int64_t ks[2] = {3, 16}, rks[2] = {4, 16}, bad_k[2] = {5, 16}, b1[1] = {16};
    int v[3], vb;
    pn_model_add_variable(m, 2, ks, 1, &v[0]);
    pn_model_add_variable(m, 2, rks, 1, &v[1]);
    pn_model_add_variable(m, 1, b1, 1, &v[2]);
    pn_model_add_variable(m, 2, bad_k, 1, &vb);
    pn_model_alloc(m);
    int in, in1, node;
    int64_t xs[2] = {5, 3}, x1[1] = {15};
    pn_model_add_input(m, 2, xs, PN_F32, &in);
    pn_model_add_input(m, 1, x1, PN_F32, &in1);
    int ok[PN_MAX_ATTRS] = {4, 0, 0, 0, TANH, SIG, 0, 0};
    CHECK(pn_model_add_node(m, PN_OP_LSTM, 1, &in, 3, v, ok, NULL, &node) == 0, "lstm adds");
    CHECK(pn_model_add_node(m, PN_OP_LSTM, 1, &in1, 3, v, ok, NULL, &node) == PN_ESHAPE,
          "a rank-1 input is refused");
    int vk[3] = {vb, v[1], v[2]};
    CHECK(pn_model_add_node(m, PN_OP_LSTM, 1, &in, 3, vk, ok, NULL, &node) == PN_ESHAPE,
          "a kernel for other features is refused");
    CHECK(pn_model_add_node(m, PN_OP_GRU, 1, &in, 3, v, ok, NULL, &node) == PN_ESHAPE,
          "gru with lstm's weights is refused");
    int bad_act[PN_MAX_ATTRS] = {4, 0, 0, 0, 9, SIG, 0, 0};
    CHECK(pn_model_add_node(m, PN_OP_LSTM, 1, &in, 3, v, bad_act, NULL, &node) == PN_EVALUE,
          "an unknown activation is refused");
    int bad_flag[PN_MAX_ATTRS] = {4, 2, 0, 0, TANH, SIG, 0, 0};
    CHECK(pn_model_add_node(m, PN_OP_LSTM, 1, &in, 3, v, bad_flag, NULL, &node) == PN_EVALUE,
          "a flag of 2 is refused");
    float bad_rate[PN_MAX_ATTRS] = {1.0f};
    CHECK(pn_model_add_node(m, PN_OP_LSTM, 1, &in, 3, v, ok, bad_rate, &node) == PN_EVALUE,
          "dropout 1 is refused");
    int two[2] = {in, in1};
    CHECK(pn_model_add_node(m, PN_OP_LSTM, 2, two, 3, v, ok, NULL, &node) == PN_EVALUE,
          "lstm with one initial state is refused (it takes h and c)");
    pn_model_destroy(m);
}

/* the eager op runs the same kernels: same output as the plan */
static void test_eager_matches_plan(void) {
    cfg c = {.what = "eager", .op = PN_OP_GRU, .T = 4, .F = 3, .U = 2, .B = 2, .act = TANH,
             .ract = SIG, .use_bias = 1, .ra = 1, .rs = 1};
    net t;
    CHECK(make(&t, &c, 11) == 0, "eager: builds");
    pn_tensor xs[1], y;
    tensors(&t, &c, xs, &y);
    float pred[2 * 8];
    float *o1[1] = {pred};
    pn_model_predict(t.m, xs, 2, o1);
    pn_value *x, *w[3], *out = NULL;
    int64_t xd[3] = {2, 4, 3};
    pn_value_create(&x, 3, xd, PN_F32, t.x[0]);
    for (int k = 0; k < 3; k++) {
        int nd;
        int64_t shape[PN_MAX_DIMS];
        pn_model_variable(t.m, t.vars[k], NULL, NULL, &nd, shape);
        pn_value_create(&w[k], nd, shape, PN_F32, param(t.m, t.vars[k]));
        pn_value_set_requires_grad(w[k], 1);
    }
    int ia[PN_MAX_ATTRS] = {2, 1, 0, 0, TANH, SIG, 1, 0};
    int rc = pn_eager_op(PN_OP_GRU, 1, &x, 3, w, ia, NULL, 1, 5, &out);
    CHECK(rc == 0, "eager: runs");
    double err = 0;
    for (int i = 0; i < 16 && rc == 0; i++)
        err = fmax(err, fabs(((float *)pn_value_data(out))[i] - pred[i]));
    CHECK(err < 1e-6, "eager: the plan's output (err %g)", err);
    float seedg[16];
    for (int i = 0; i < 16; i++) seedg[i] = 1.0f;
    CHECK(rc == 0 && pn_value_backward(out, seedg) == 0 && pn_value_grad(w[1]) != NULL,
          "eager: backward reaches the recurrent kernel");
    pn_value_release(out);
    pn_value_release(x);
    for (int k = 0; k < 3; k++) pn_value_release(w[k]);
    drop(&t);
}

int main(void) {
    pn_set_num_threads(2);
    test_cases();
    test_slice();
    test_bad_attributes();
    test_eager_matches_plan();
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
