/*
 * test_rnn_mask.c: the step mask of the recurrent ops (simple_rnn, lstm, gru; iattr[8] with the
 * mask as the last input, iattr[9] zero_output_for_mask) through the public header. Prints
 * "N passed, M failed" and exits non-zero on failure.
 *
 * Keras 3's masked recurrence (keras/src/backend/jax/rnn.py): where m[b, t] == 0 the step keeps
 * the states (h, and c for lstm) and outputs the previous h, or zeros with zero_output_for_mask;
 * the mask is read in processing order. Each case builds input (T, F) [+ initial states] + mask
 * (T) -> op with an MSE loss and checks
 *   - the forward against a double-precision cell written here with that rule;
 *   - every gradient (input, states, weights) against central finite differences of the core's
 *     loss (with dropout the random state is restored before each evaluation), and the mask's
 *     gradient is zero;
 * then an all-ones mask against no mask (bitwise: the same output and gradients), a folded
 * embedding with a mask against the unfolded plan, the eager op against the plan, and the
 * refused attributes, shapes and dtypes.
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

/* mask kinds: none, a mixed mask (padding, random, all masked), all ones (values 1 and 3) */
enum { NO_MASK = 0, MIXED, ONES };

typedef struct {
    const char *what;
    int op, T, F, U, B;
    int rs, back, rstate, act, ract, ra, use_bias, states, rev, zero;
    float drop, rdrop;
    int mask;
    int stride; /* finite differences at every stride-th weight (0: every 5th) */
} cfg;

typedef struct {
    pn_model *m;
    int in[4], n_in, vars[3], n_var, node, mi; /* mi: the mask's input, or -1 */
    int64_t out_size;
    float *x[4], *y;
    int64_t x_size[4];
} net;

static int gates(int op) { return op == PN_OP_LSTM ? 4 : op == PN_OP_GRU ? 3 : 1; }
static int nstates(int op) { return op == PN_OP_LSTM ? 2 : 1; }

/* The mixed mask, sample b's kind by b % 6: all masked; right padding; left padding; random with
 * the first step masked; random with the last step masked; all kept. Kept values are not all 1:
 * any nonzero keeps. */
static void fill_mask(float *m, const cfg *c, unsigned *seed) {
    const int T = c->T;
    for (int b = 0; b < c->B; b++) {
        float *r = m + (int64_t)b * T;
        const int L = T > 1 ? 1 + b % (T - 1) : 1; /* the kept length of a padded sample */
        for (int t = 0; t < T; t++) {
            float keep = frand(seed) > 0.7f ? 2.5f : 1.0f, v;
            switch (c->mask == ONES ? 5 : b % 6) {
            case 0: v = 0.0f; break;
            case 1: v = t < L ? keep : 0.0f; break;
            case 2: v = t >= T - L ? keep : 0.0f; break;
            case 3: v = t == 0 || frand(seed) < -0.2f ? 0.0f : keep; break;
            case 4: v = t == T - 1 || frand(seed) < -0.2f ? 0.0f : -keep; break;
            default: v = c->mask == ONES && t % 3 == 1 ? 3.0f : 1.0f; break;
            }
            r[t] = v;
        }
    }
}

static int make(net *t, const cfg *c, unsigned seed) {
    memset(t, 0, sizeof *t);
    t->mi = -1;
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
    int64_t xs[2] = {c->T, c->F}, ss[1] = {c->U}, ms[1] = {c->T};
    rc |= pn_model_add_input(t->m, 2, xs, PN_F32, &t->in[0]);
    t->n_in = 1;
    t->x_size[0] = (int64_t)c->B * c->T * c->F;
    if (c->states)
        for (int k = 0; k < nstates(c->op); k++) {
            rc |= pn_model_add_input(t->m, 1, ss, PN_F32, &t->in[t->n_in]);
            t->x_size[t->n_in++] = (int64_t)c->B * c->U;
        }
    if (c->mask) {
        t->mi = t->n_in;
        rc |= pn_model_add_input(t->m, 1, ms, PN_F32, &t->in[t->n_in]);
        t->x_size[t->n_in++] = (int64_t)c->B * c->T;
    }
    int ia[PN_MAX_ATTRS] = {c->U,    c->rs, c->back, c->rstate, c->act,
                            c->ract, c->ra, c->rev,  c->mask != NO_MASK, c->zero};
    float fa[PN_MAX_ATTRS] = {c->drop, c->rdrop};
    rc |= pn_model_add_node(t->m, c->op, t->n_in, t->in, t->n_var, t->vars, ia, fa, &t->node);
    if (rc) return rc;
    int64_t shape[PN_MAX_DIMS];
    int nd = pn_model_node_shape(t->m, t->node, shape);
    t->out_size = 1;
    for (int i = 0; i < nd; i++) t->out_size *= shape[i];
    rc |= pn_model_set_output(t->m, t->node);
    rc |= pn_model_compile(t->m, PN_LOSS_MSE, 0, 0, NULL);
    unsigned mseed = seed ^ 0x9e3779b9u; /* the other data the same with and without a mask */
    for (int k = 0; k < t->n_in; k++) {
        t->x[k] = malloc((size_t)t->x_size[k] * sizeof(float));
        if (k == t->mi) fill_mask(t->x[k], c, &mseed);
        else
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
        xs[k] = (pn_tensor){.ndim = 2, .dims = {c->B, k == t->mi ? c->T : c->U},
                            .dtype = PN_F32, .data = t->x[k]};
    *y = (pn_tensor){.ndim = 2, .dims = {c->B, t->out_size}, .dtype = PN_F32, .data = t->y};
}

/* Keras 3's masked cell in double, no dropout: writes the op's packed output for sample b */
static void reference(const net *t, const cfg *c, int64_t b, double *out) {
    const int U = c->U, F = c->F, T = c->T, G = gates(c->op), GU = G * U;
    const float *W = param(t->m, t->vars[0]), *R = param(t->m, t->vars[1]);
    const float *bias = c->use_bias ? param(t->m, t->vars[2]) : NULL;
    const float *mask = t->mi >= 0 ? t->x[t->mi] + b * T : NULL;
    int ra = c->op == PN_OP_GRU && c->ra;
    double h[128] = {0}, cc[128] = {0}, cn[128], z[512], s[512], hn[128]; /* U <= 128 */
    if (c->states) {
        for (int j = 0; j < U; j++) h[j] = t->x[1][b * U + j];
        if (c->op == PN_OP_LSTM)
            for (int j = 0; j < U; j++) cc[j] = t->x[2][b * U + j];
    }
    int64_t seq = c->rs ? (int64_t)T * U : U;
    int last_masked = 0;
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
                cn[j] = f * cc[j] + i * g;
                hn[j] = o * act(cn[j], c->act);
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
        /* a masked step keeps the states and outputs the kept h (or zeros) */
        int masked = mask && mask[src] == 0.0f;
        if (!masked) {
            memcpy(h, hn, sizeof(double) * (size_t)U);
            memcpy(cc, cn, sizeof(double) * (size_t)U);
        }
        last_masked = masked;
        if (c->rs) {
            int at = c->rev ? T - 1 - step : step;
            for (int j = 0; j < U; j++) out[at * U + j] = masked && c->zero ? 0.0 : h[j];
        }
    }
    if (!c->rs)
        for (int j = 0; j < U; j++) out[j] = last_masked && c->zero ? 0.0 : h[j];
    if (c->rstate) {
        for (int j = 0; j < U; j++) out[seq + j] = h[j];
        if (c->op == PN_OP_LSTM)
            for (int j = 0; j < U; j++) out[seq + U + j] = cc[j];
    }
}

static double loss_of(net *t, const cfg *c, int training, uint64_t seed, uint64_t fw) {
    pn_tensor xs[4], y;
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
    pn_tensor xs[4], y;
    tensors(&t, c, xs, &y);
    /* forward vs the reference (inference: no dropout) */
    float *pred = malloc((size_t)(c->B * t.out_size) * sizeof(float));
    float *outs[1] = {pred};
    rc = pn_model_predict(t.m, xs, c->B, outs);
    double *ref = malloc((size_t)t.out_size * sizeof(double)), err = 0;
    for (int64_t b = 0; b < c->B; b++) {
        reference(&t, c, b, ref);
        for (int64_t i = 0; i < t.out_size; i++)
            err = fmax(err, fabs(pred[b * t.out_size + i] - ref[i]));
    }
    CHECK(rc == 0 && err < 2e-5, "%s: forward matches the reference (max err %g)", c->what, err);

    /* gradients vs finite differences (the dropout masks fixed by the restored random state) */
    int training = c->drop > 0 || c->rdrop > 0;
    uint64_t s0, f0;
    pn_model_rng_state(t.m, &s0, &f0);
    float *dx[4] = {NULL};
    for (int k = 0; k < t.n_in; k++) {
        dx[k] = malloc((size_t)t.x_size[k] * sizeof(float));
        for (int64_t i = 0; i < t.x_size[k]; i++) dx[k][i] = NAN;
    }
    float l;
    pn_model_set_rng_state(t.m, s0, f0);
    rc = pn_model_gradients(t.m, xs, &y, &l, dx);
    CHECK(rc == 0, "%s: gradients", c->what);
    if (t.mi >= 0) {
        int zero = 1;
        for (int64_t i = 0; i < t.x_size[t.mi]; i++) zero &= dx[t.mi][i] == 0.0f;
        CHECK(zero, "%s: the mask's gradient is zero", c->what);
    }
    float *g[3] = {NULL};
    for (int v = 0; v < t.n_var; v++) {
        int64_t size;
        pn_model_variable(t.m, t.vars[v], NULL, &size, NULL, NULL);
        g[v] = malloc((size_t)size * sizeof(float));
        memcpy(g[v], grad(t.m, t.vars[v]), (size_t)size * sizeof(float));
    }
    double worst = 0;
    const float h = 1e-2f;
    for (int k = 0; k < t.n_in; k++) {
        if (k == t.mi) continue;
        for (int64_t i = 0; i < t.x_size[k]; i += k ? 1 : 2) {
            float old = t.x[k][i];
            t.x[k][i] = old + h;
            double up = loss_of(&t, c, training, s0, f0);
            t.x[k][i] = old - h;
            double down = loss_of(&t, c, training, s0, f0);
            t.x[k][i] = old;
            double num = (up - down) / (2 * h);
            worst = fmax(worst, fabs(num - dx[k][i]) / (1e-2 + fabs(num)));
        }
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

static const int ops[3] = {PN_OP_SIMPLE_RNN, PN_OP_LSTM, PN_OP_GRU};
static const char *const names[3] = {"simple_rnn", "lstm", "gru"};

/* the variants of one cell; the last two (lstm only) run the lstm's steps on threads */
static int variant_cfg(cfg *c, int o, int variant) {
    *c = (cfg){.op = ops[o], .T = 6, .F = 3, .U = 4, .B = 6, .act = TANH, .ract = SIG,
               .use_bias = 1, .ra = 1, .mask = MIXED};
    switch (variant) {
    case 0: break;
    case 1: c->rs = 1; break;
    case 2: c->back = 1, c->rs = 1, c->rev = 1; break;
    case 3: c->rstate = 1, c->states = 1, c->rs = 1; break;
    case 4: c->ra = 0, c->use_bias = o != 1, c->back = 1, c->rstate = 1, c->zero = 1; break;
    case 5: c->rs = 1, c->zero = 1, c->states = 1, c->back = 1; break;
    case 6: c->zero = 1, c->rstate = 1, c->states = 1; break;
    case 7: c->drop = 0.3f, c->rdrop = 0.4f, c->rs = 1, c->ra = 0, c->zero = 1; break;
    case 8: c->T = 1, c->B = 4, c->rstate = 1, c->act = LIN, c->ract = HSIG, c->rs = 1; break;
    case 9: c->B = 7, c->act = SIG, c->rs = 1, c->rev = 1, c->back = 1, c->zero = 1; break;
    /* steps large enough for the lstm's threads (B 4U U >= 2^16 multiply-adds), units past
     * whole panels of 16 and rows past whole tiles of 6 */
    case 10:
        c->T = 5, c->F = 5, c->U = 37, c->B = 13, c->rs = 1, c->states = 1, c->stride = 17,
        c->rstate = 1;
        break;
    case 11:
        c->T = 4, c->U = 67, c->B = 6, c->back = 1, c->rstate = 1, c->zero = 1, c->rdrop = 0.3f,
        c->rs = 1, c->stride = 37;
        break;
    default: return 0;
    }
    return !(variant >= 10 && ops[o] != PN_OP_LSTM);
}

static void test_cases(void) {
    char what[160];
    unsigned seed = 7;
    for (int o = 0; o < 3; o++)
        for (int variant = 0; variant < 12; variant++) {
            cfg c;
            if (!variant_cfg(&c, o, variant)) continue;
            snprintf(what, sizeof what, "%s variant %d", names[o], variant);
            c.what = what;
            check_case(&c, seed++);
        }
}

/* predict and gradients (weights, inputs) of a net, for bitwise comparisons */
typedef struct {
    float *pred, *g[3], *dx[4];
    int rc;
} run_out;

static run_out run_all(net *t, const cfg *c) {
    run_out r = {0};
    pn_tensor xs[4], y;
    tensors(t, c, xs, &y);
    r.pred = malloc((size_t)(c->B * t->out_size) * sizeof(float));
    float *outs[1] = {r.pred};
    r.rc = pn_model_predict(t->m, xs, c->B, outs);
    for (int k = 0; k < t->n_in; k++) r.dx[k] = malloc((size_t)t->x_size[k] * sizeof(float));
    float l;
    r.rc |= pn_model_gradients(t->m, xs, &y, &l, r.dx);
    for (int v = 0; v < t->n_var; v++) {
        int64_t size;
        pn_model_variable(t->m, t->vars[v], NULL, &size, NULL, NULL);
        r.g[v] = malloc((size_t)size * sizeof(float));
        memcpy(r.g[v], grad(t->m, t->vars[v]), (size_t)size * sizeof(float));
    }
    return r;
}

static void free_run(run_out *r) {
    free(r->pred);
    for (int k = 0; k < 3; k++) free(r->g[k]);
    for (int k = 0; k < 4; k++) free(r->dx[k]);
}

/* an all-ones mask (any nonzero values) gives bitwise no mask's output and gradients, with and
 * without zero_output_for_mask */
static void test_all_ones(void) {
    char what[160];
    const int variants[4] = {3, 5, 10, 11};
    for (int o = 0; o < 3; o++)
        for (int vi = 0; vi < 4; vi++)
            for (int zero = 0; zero < 2; zero++) {
                cfg a;
                if (!variant_cfg(&a, o, variants[vi])) continue;
                a.drop = a.rdrop = 0; /* the op's random stream hashes its node's index */
                a.zero = zero;
                a.mask = NO_MASK;
                cfg b = a;
                b.mask = ONES;
                snprintf(what, sizeof what, "%s variant %d, zero_output_for_mask %d: all-ones "
                         "mask", names[o], variants[vi], zero);
                net ta, tb;
                int rc = make(&ta, &a, 99) | make(&tb, &b, 99);
                CHECK(rc == 0, "%s: builds", what);
                if (rc == 0) {
                    run_out ra = run_all(&ta, &a), rb = run_all(&tb, &b);
                    int same = ra.rc == 0 && rb.rc == 0 &&
                               !memcmp(ra.pred, rb.pred,
                                       (size_t)(a.B * ta.out_size) * sizeof(float));
                    CHECK(same, "%s: the same output", what);
                    same = 1;
                    for (int v = 0; v < ta.n_var; v++) {
                        int64_t size;
                        pn_model_variable(ta.m, ta.vars[v], NULL, &size, NULL, NULL);
                        same &= !memcmp(ra.g[v], rb.g[v], (size_t)size * sizeof(float));
                    }
                    for (int k = 0; k < ta.n_in; k++)
                        same &= !memcmp(ra.dx[k], rb.dx[k], (size_t)ta.x_size[k] * sizeof(float));
                    CHECK(same, "%s: the same gradients", what);
                    free_run(&ra);
                    free_run(&rb);
                }
                drop(&ta);
                drop(&tb);
            }
}

/* An embedding folded into a masked op (the mask a separate input) against the same model with
 * folding off: the same output and gradients, up to the order of sums */
static void test_folded_embedding(void) {
    char what[160];
    for (int o = 0; o < 3; o++) {
        const int T = 6, F = 16, U = 4, B = 4, V = 5, G = gates(ops[o]), GU = G * U;
        double err_out = 0, err_g = 0;
        int64_t bytes[2] = {0, 0};
        float *res[2][5] = {{NULL}};
        unsigned seed = 5;
        int32_t ids[B * T];
        float mask[B * T], y[B * T * U];
        cfg c = {.T = T, .B = B, .mask = MIXED};
        fill_mask(mask, &c, &seed);
        for (int i = 0; i < B * T; i++) ids[i] = (int32_t)((unsigned)(i * 7 + i / 5) % V);
        for (int i = 0; i < B * T * U; i++) y[i] = frand(&seed);
        snprintf(what, sizeof what, "%s: a folded embedding with a mask", names[o]);
        for (int fold = 0; fold < 2; fold++) {
            int prev = pn_debug_folds(fold);
            pn_model *m;
            int rc = pn_model_create(&m), vars[4], in[2], e = -1, node = -1;
            int64_t ts[2] = {V, F}, ks[2] = {F, GU}, rks[2] = {U, GU}, bs[1] = {GU},
                    bs2[2] = {2, GU}, len[1] = {T};
            const int ra = ops[o] == PN_OP_GRU;
            rc |= pn_model_add_variable(m, 2, ts, 1, &vars[0]);
            rc |= pn_model_add_variable(m, 2, ks, 1, &vars[1]);
            rc |= pn_model_add_variable(m, 2, rks, 1, &vars[2]);
            rc |= pn_model_add_variable(m, ra ? 2 : 1, ra ? bs2 : bs, 1, &vars[3]);
            rc |= pn_model_alloc(m);
            unsigned ws = 11;
            for (int v = 0; v < 4 && rc == 0; v++) {
                int64_t size;
                pn_model_variable(m, vars[v], NULL, &size, NULL, NULL);
                for (int64_t i = 0; i < size; i++) param(m, vars[v])[i] = 0.5f * frand(&ws);
            }
            rc |= pn_model_add_input(m, 1, len, PN_I32, &in[0]);
            rc |= pn_model_add_input(m, 1, len, PN_F32, &in[1]);
            rc |= pn_model_add_node(m, PN_OP_EMBEDDING, 1, &in[0], 1, &vars[0], NULL, NULL, &e);
            int rin[2] = {e, in[1]};
            int ia[PN_MAX_ATTRS] = {U, 1, 1, 0, TANH, SIG, ra, 1, 1, 1};
            rc |= pn_model_add_node(m, ops[o], 2, rin, 3, &vars[1], ia, NULL, &node);
            rc |= pn_model_set_output(m, node);
            rc |= pn_model_compile(m, PN_LOSS_MSE, 0, 0, NULL);
            CHECK(rc == 0, "%s: builds (fold %d)", what, fold);
            if (rc == 0) {
                pn_tensor xs[2] = {{2, {B, T}, PN_I32, ids}, {2, {B, T}, PN_F32, mask}};
                pn_tensor ty = {2, {B, T * U}, PN_F32, y};
                res[fold][4] = malloc(sizeof(float) * B * T * U);
                float *outs[1] = {res[fold][4]}, l;
                rc = pn_model_predict(m, xs, B, outs);
                rc |= pn_model_gradients(m, xs, &ty, &l, NULL);
                rc |= pn_model_plan_bytes(m, B, 1, &bytes[fold]);
                CHECK(rc == 0, "%s: runs (fold %d)", what, fold);
                for (int v = 0; v < 4; v++) {
                    int64_t size;
                    pn_model_variable(m, vars[v], NULL, &size, NULL, NULL);
                    res[fold][v] = malloc((size_t)size * sizeof(float));
                    memcpy(res[fold][v], grad(m, vars[v]), (size_t)size * sizeof(float));
                }
            }
            pn_model_destroy(m);
            pn_debug_folds(prev);
        }
        if (res[0][4] && res[1][4]) {
            const int64_t sizes[5] = {V * F, F * GU, U * GU, (ops[o] == PN_OP_GRU ? 2 : 1) * GU,
                                      B * T * U};
            for (int64_t i = 0; i < sizes[4]; i++)
                err_out = fmax(err_out, fabs(res[0][4][i] - res[1][4][i]));
            for (int v = 0; v < 4; v++)
                for (int64_t i = 0; i < sizes[v]; i++)
                    err_g = fmax(err_g, fabs(res[0][v][i] - res[1][v][i]));
        }
        CHECK(err_out < 1e-5 && err_g < 1e-5, "%s: the unfolded plan's output (err %g) and "
              "gradients (err %g)", what, err_out, err_g);
        CHECK(bytes[1] < bytes[0], "%s: the plan folds it (%lld bytes against %lld)", what,
              (long long)bytes[1], (long long)bytes[0]);
        for (int f = 0; f < 2; f++)
            for (int v = 0; v < 5; v++) free(res[f][v]);
    }
}

/* the eager op (a layer called on data) runs the same kernels as the plan, mask included */
static void test_eager_matches_plan(void) {
    for (int o = 0; o < 3; o++) {
        cfg c;
        variant_cfg(&c, o, 5); /* go_backwards, return_sequences, zero_output_for_mask, states */
        c.what = names[o];
        net t;
        CHECK(make(&t, &c, 13) == 0, "%s eager: builds", names[o]);
        pn_tensor xs[4], y;
        tensors(&t, &c, xs, &y);
        const int64_t n_out = c.B * t.out_size;
        float *pred = malloc((size_t)n_out * sizeof(float));
        float *outs[1] = {pred};
        int rc = pn_model_predict(t.m, xs, c.B, outs);
        pn_value *in[4] = {NULL}, *w[3] = {NULL}, *out = NULL;
        for (int k = 0; k < t.n_in; k++) rc |= pn_value_create(&in[k], xs[k].ndim, xs[k].dims,
                                                               PN_F32, t.x[k]);
        for (int k = 0; k < t.n_var; k++) {
            int nd;
            int64_t shape[PN_MAX_DIMS];
            pn_model_variable(t.m, t.vars[k], NULL, NULL, &nd, shape);
            rc |= pn_value_create(&w[k], nd, shape, PN_F32, param(t.m, t.vars[k]));
            rc |= pn_value_set_requires_grad(w[k], 1);
        }
        int ia[PN_MAX_ATTRS] = {c.U, c.rs, c.back, c.rstate, c.act, c.ract, c.ra, c.rev, 1,
                                c.zero};
        rc |= pn_eager_op(c.op, t.n_in, in, t.n_var, w, ia, NULL, 1, 5, &out);
        CHECK(rc == 0, "%s eager: runs", names[o]);
        double err = 0;
        for (int64_t i = 0; i < n_out && rc == 0; i++)
            err = fmax(err, fabs(((float *)pn_value_data(out))[i] - pred[i]));
        CHECK(rc == 0 && err < 1e-6, "%s eager: the plan's output (err %g)", names[o], err);
        float *seedg = malloc((size_t)n_out * sizeof(float));
        for (int64_t i = 0; i < n_out; i++) seedg[i] = 1.0f;
        CHECK(rc == 0 && pn_value_backward(out, seedg) == 0 && pn_value_grad(w[1]) != NULL,
              "%s eager: backward reaches the recurrent kernel", names[o]);
        free(seedg);
        free(pred);
        pn_value_release(out);
        for (int k = 0; k < t.n_in; k++) pn_value_release(in[k]);
        for (int k = 0; k < t.n_var; k++) pn_value_release(w[k]);
        drop(&t);
    }
}

/* refused: flags other than 0 and 1, a mask of another dtype or shape, input counts that do not
 * add up */
static void test_bad_mask(void) {
    pn_model *m;
    pn_model_create(&m);
    int64_t ks[2] = {3, 16}, rks[2] = {4, 16}, b1[1] = {16}, gks[2] = {3, 12}, grks[2] = {4, 12},
            gb[1] = {12}, sks[2] = {3, 4}, srks[2] = {4, 4};
    int v[3], g[3], sv[2];
    pn_model_add_variable(m, 2, ks, 1, &v[0]);
    pn_model_add_variable(m, 2, rks, 1, &v[1]);
    pn_model_add_variable(m, 1, b1, 1, &v[2]);
    pn_model_add_variable(m, 2, gks, 1, &g[0]);
    pn_model_add_variable(m, 2, grks, 1, &g[1]);
    pn_model_add_variable(m, 1, gb, 1, &g[2]);
    pn_model_add_variable(m, 2, sks, 1, &sv[0]);
    pn_model_add_variable(m, 2, srks, 1, &sv[1]);
    pn_model_alloc(m);
    int x, h0, c0, mk, mk_i32, mk_long, mk_2d, node;
    int64_t xs[2] = {5, 3}, ss[1] = {4}, ms[1] = {5}, ml[1] = {6}, m2[2] = {5, 1};
    pn_model_add_input(m, 2, xs, PN_F32, &x);
    pn_model_add_input(m, 1, ss, PN_F32, &h0);
    pn_model_add_input(m, 1, ss, PN_F32, &c0);
    pn_model_add_input(m, 1, ms, PN_F32, &mk);
    pn_model_add_input(m, 1, ms, PN_I32, &mk_i32);
    pn_model_add_input(m, 1, ml, PN_F32, &mk_long);
    pn_model_add_input(m, 2, m2, PN_F32, &mk_2d);
    int ok[PN_MAX_ATTRS] = {4, 1, 0, 0, TANH, SIG, 0, 0, 1, 1};
    int xm[2] = {x, mk}, all[4] = {x, h0, c0, mk}, one_state[3] = {x, h0, mk};
    CHECK(pn_model_add_node(m, PN_OP_LSTM, 2, xm, 3, v, ok, NULL, &node) == 0,
          "lstm with a mask adds");
    CHECK(pn_model_add_node(m, PN_OP_LSTM, 4, all, 3, v, ok, NULL, &node) == 0,
          "lstm with states and a mask adds");
    CHECK(pn_model_add_node(m, PN_OP_GRU, 3, one_state, 3, g, ok, NULL, &node) == 0,
          "gru with a state and a mask adds");
    CHECK(pn_model_add_node(m, PN_OP_LSTM, 3, one_state, 3, v, ok, NULL, &node) == PN_EVALUE,
          "lstm with one state and a mask is refused");
    CHECK(pn_model_add_node(m, PN_OP_LSTM, 1, &x, 3, v, ok, NULL, &node) == PN_EVALUE,
          "the mask flag without a mask input is refused");
    for (int a = 8; a <= 9; a++) {
        int bad[PN_MAX_ATTRS] = {4, 1, 0, 0, TANH, SIG, 0, 0, 1, 1};
        bad[a] = a == 8 ? 2 : -1;
        CHECK(pn_model_add_node(m, PN_OP_SIMPLE_RNN, 2, xm, 2, sv, bad, NULL, &node) ==
                  PN_EVALUE, "simple_rnn: iattr[%d] = %d is refused", a, bad[a]);
        CHECK(pn_model_add_node(m, PN_OP_LSTM, 2, xm, 3, v, bad, NULL, &node) == PN_EVALUE,
              "lstm: iattr[%d] = %d is refused", a, bad[a]);
    }
    int xi[2] = {x, mk_i32}, xl[2] = {x, mk_long}, x2[2] = {x, mk_2d};
    CHECK(pn_model_add_node(m, PN_OP_LSTM, 2, xi, 3, v, ok, NULL, &node) == PN_ETYPE,
          "an int32 mask is refused");
    CHECK(pn_model_add_node(m, PN_OP_GRU, 2, xl, 3, g, ok, NULL, &node) == PN_ESHAPE,
          "a mask of 6 steps for 5 is refused");
    CHECK(pn_model_add_node(m, PN_OP_SIMPLE_RNN, 2, xm, 2, sv, ok, NULL, &node) == 0,
          "simple_rnn with a mask adds");
    CHECK(pn_model_add_node(m, PN_OP_LSTM, 2, x2, 3, v, ok, NULL, &node) == PN_ESHAPE,
          "lstm: a mask of rank 2 is refused");
    int no_mask[PN_MAX_ATTRS] = {4, 1, 0, 0, TANH, SIG, 0, 0, 0, 1};
    CHECK(pn_model_add_node(m, PN_OP_LSTM, 2, xm, 3, v, no_mask, NULL, &node) == PN_EVALUE,
          "a mask input without the flag is refused");
    pn_model_destroy(m);
}

int main(void) {
    pn_set_num_threads(2);
    test_cases();
    test_all_ones();
    test_folded_embedding();
    test_eager_matches_plan();
    test_bad_mask();
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
