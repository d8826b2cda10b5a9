/*
 * test_faults.c: every allocation of the core, made to fail in turn (pn_debug_fail_alloc).
 *
 * For each scenario (building a model, a training step, a test step, predict, the gradients
 * call, an eager model call with its loss, backward and update, eager math, eager graph ops) the
 * test first counts the N allocations the scenario makes, then for every k in 0..N-1 makes the
 * k-th fail and checks that the call returns PN_ENOMEM with a message, that the model is as it
 * was (weights, iterations, random stream), and that the same scenario then succeeds with the
 * same results as a run that never failed. Nothing may leak: build it with
 * -fsanitize=address,undefined to check that (LeakSanitizer reports at exit).
 * Prints "faults: build N walked, ..." and "N passed, M failed".
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

enum { IN = 6, WIDTH = 6, CLASSES = 3, LAYERS = 9, ROWS = 7, BATCH = 4 };

static char summary[1024] = "faults:";

/* A message no allocation failure leaves, so a stale one cannot pass for a fresh one. */
static void stale_message(void) {
    pn_value *v = NULL;
    pn_value_create(&v, 0, NULL, (pn_dtype)99, NULL);
}

static int enomem_with_message(int rc) {
    return rc == PN_ENOMEM && strstr(pn_last_error(), "memory") != NULL;
}

/* ---- building -------------------------------------------------------------------------------
 * LAYERS dense layers with tanh between and a softmax: 18 variables and 20 nodes, so both
 * arrays grow twice. Each call that fails must fail with PN_ENOMEM and leave the model as it
 * was: it is retried at once and the build goes on, and the model must come out the same.
 */
static int build_failures;

#define TRY(call)                                                                          \
    do {                                                                                   \
        stale_message();                                                                   \
        int rc_ = (call);                                                                  \
        if (rc_) {                                                                         \
            build_failures++;                                                              \
            CHECK(enomem_with_message(rc_), "%s failed with %d", #call, rc_);              \
            rc_ = (call);                                                                  \
            CHECK(rc_ == 0, "%s retried: %d", #call, rc_);                                 \
            if (rc_) goto fail;                                                            \
        }                                                                                  \
    } while (0)

static pn_model *build(void) {
    pn_model *m = NULL;
    TRY(pn_model_create(&m));
    int v[2 * LAYERS], node, id;
    for (int l = 0; l < LAYERS; l++) {
        int64_t ks[2] = {l ? WIDTH : IN, l == LAYERS - 1 ? CLASSES : WIDTH}, bs[1] = {ks[1]};
        TRY(pn_model_add_variable(m, 2, ks, 1, &v[2 * l]));
        TRY(pn_model_add_variable(m, 1, bs, 1, &v[2 * l + 1]));
        CHECK(v[2 * l] == 2 * l && v[2 * l + 1] == 2 * l + 1, "variable ids %d %d", v[2 * l],
              v[2 * l + 1]);
    }
    TRY(pn_model_alloc(m));
    unsigned seed = 17;
    for (int k = 0; k < 2 * LAYERS; k++) {
        int64_t size;
        pn_model_variable(m, k, NULL, &size, NULL, NULL);
        for (int64_t i = 0; i < size; i++) param(m, k)[i] = 0.8f * frand(&seed);
    }
    int64_t xs[1] = {IN};
    TRY(pn_model_add_input(m, 1, xs, PN_F32, &node));
    for (int l = 0; l < LAYERS; l++) {
        id = node;
        TRY(pn_model_add_node(m, PN_OP_DENSE, 1, &id, 2, &v[2 * l], NULL, NULL, &node));
        id = node;
        TRY(pn_model_add_node(m, l == LAYERS - 1 ? PN_OP_SOFTMAX : PN_OP_TANH, 1, &id, 0, NULL,
                              NULL, NULL, &node));
    }
    CHECK(node == 2 * LAYERS, "the last node is %d", node);
    TRY(pn_model_set_output(m, node));
    pn_metric acc = pn_metric_default(PN_METRIC_SPARSE_ACCURACY);
    TRY(pn_model_compile(m, PN_LOSS_SPARSE_CE, 0, 1, &acc));
    pn_optim_config opt = {.kind = PN_ADAM, .learning_rate = 0.01f, .beta_1 = 0.9f,
                           .beta_2 = 0.999f, .epsilon = 1e-7f};
    TRY(pn_model_set_optimizer(m, &opt));
    /* a second graph over the same variables, holding a constant, then back to the first */
    int graph, constant;
    float zeros[IN] = {0};
    TRY(pn_model_add_graph(m, &graph));
    TRY(pn_model_add_constant(m, 1, xs, zeros, &constant));
    TRY(pn_model_use_graph(m, 0));
    return m;
fail:
    pn_model_destroy(m);
    return NULL;
}

/* Two inputs, a merge, two outputs with their own losses (weighted) and an RMSprop. */
static pn_model *build_multi(void) {
    pn_model *m = NULL;
    if (pn_model_create(&m)) return NULL;
    int64_t shapes[5][2] = {{IN, 5}, {3, 5}, {5, 0}, {5, CLASSES}, {5, 2}};
    int v[5], in[2], d[2], n;
    for (int k = 0; k < 5; k++) pn_model_add_variable(m, shapes[k][1] ? 2 : 1, shapes[k], 1, &v[k]);
    pn_model_alloc(m);
    unsigned seed = 5;
    for (int k = 0; k < 5; k++) {
        int64_t size;
        pn_model_variable(m, k, NULL, &size, NULL, NULL);
        for (int64_t i = 0; i < size; i++) param(m, k)[i] = frand(&seed);
    }
    int64_t s1[1] = {IN}, s2[1] = {3};
    pn_model_add_input(m, 1, s1, PN_F32, &in[0]);
    pn_model_add_input(m, 1, s2, PN_F32, &in[1]);
    pn_model_add_node(m, PN_OP_DENSE, 1, &in[0], 1, &v[0], NULL, NULL, &d[0]);
    int vb[2] = {v[1], v[2]};
    pn_model_add_node(m, PN_OP_DENSE, 1, &in[1], 2, vb, NULL, NULL, &d[1]);
    pn_model_add_node(m, PN_OP_ADD, 2, d, 0, NULL, NULL, NULL, &n);
    int r = n, o[2];
    pn_model_add_node(m, PN_OP_RELU, 1, &r, 0, NULL, NULL, NULL, &r);
    pn_model_add_node(m, PN_OP_DENSE, 1, &r, 1, &v[3], NULL, NULL, &n);
    pn_model_add_node(m, PN_OP_SOFTMAX, 1, &n, 0, NULL, NULL, NULL, &o[0]);
    pn_model_add_node(m, PN_OP_DENSE, 1, &r, 1, &v[4], NULL, NULL, &o[1]);
    pn_model_set_outputs(m, 2, o);
    pn_loss_config cfg[2] = {
        {.loss = PN_LOSS_SPARSE_CE, .weight = 1.0f, .n_metrics = 1,
         .metrics = {pn_metric_default(PN_METRIC_SPARSE_ACCURACY)}},
        {.loss = PN_LOSS_MSE, .weight = 0.5f, .n_metrics = 1,
         .metrics = {pn_metric_default(PN_METRIC_AUC)}},
    };
    cfg[1].metrics[0].num_thresholds = 10; /* 40 accumulators: the results fit in MAX_RES */
    pn_optim_config opt = {.kind = PN_RMSPROP, .learning_rate = 0.01f, .rho = 0.9f,
                           .momentum = 0.5f, .epsilon = 1e-7f, .centered = 1};
    if (pn_model_compile_outputs(m, cfg) || pn_model_set_optimizer(m, &opt)) {
        pn_model_destroy(m);
        return NULL;
    }
    return m;
}

/* ---- data ------------------------------------------------------------------------------------ */

static float X[ROWS * IN], SW[ROWS], X2[ROWS * 3], Y2[ROWS * 2];
static int32_t Y[ROWS];
static const int64_t IDX[BATCH] = {5, 0, 3, 6};

static void make_data(void) {
    unsigned s = 3;
    for (int i = 0; i < ROWS * IN; i++) X[i] = frand(&s);
    for (int i = 0; i < ROWS * 3; i++) X2[i] = frand(&s);
    for (int i = 0; i < ROWS * 2; i++) Y2[i] = 0.5f + 0.5f * frand(&s);
    for (int i = 0; i < ROWS; i++) {
        Y[i] = i % CLASSES;
        SW[i] = 0.5f + 0.25f * (float)(i % 3);
    }
}

static pn_tensor tx(void) { return (pn_tensor){.ndim = 2, .dims = {ROWS, IN}, .dtype = PN_F32, .data = X}; }
static pn_tensor ty(void) { return (pn_tensor){.ndim = 1, .dims = {ROWS}, .dtype = PN_I32, .data = Y}; }

/* ---- one scenario walked --------------------------------------------------------------------
 * run(m, res) does the scenario on a freshly built model and writes up to MAX_RES floats of
 * results; it returns 0 or the first error, having released whatever it made.
 */
enum { MAX_RES = 256 };
typedef int (*scenario)(pn_model *m, float *res);

static int64_t total_floats(pn_model *m) {
    int64_t off, size;
    pn_model_variable(m, pn_model_variable_count(m) - 1, &off, &size, NULL, NULL);
    return off + size;
}

static int same(const float *a, const float *b, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        if (a[i] != b[i] && !(a[i] != a[i] && b[i] != b[i])) return 0;
    return 1;
}

static void walk(const char *name, pn_model *(*make)(void), scenario run, int eager) {
    float ref[MAX_RES], res[MAX_RES];
    memset(ref, 0, sizeof ref);
    pn_model *m = make();
    if (!m) return;
    int64_t n = total_floats(m);
    float *p0 = malloc((size_t)n * sizeof(float)), *p1 = malloc((size_t)n * sizeof(float));
    float *g1 = malloc((size_t)n * sizeof(float));
    memcpy(p0, pn_model_params(m), (size_t)n * sizeof(float));
    pn_debug_fail_alloc(INT64_MAX);
    int rc = run(m, ref);
    int64_t N = pn_debug_alloc_count();
    pn_debug_fail_alloc(-1);
    CHECK(rc == 0, "%s: the scenario itself fails: %d", name, rc);
    CHECK(N > 0, "%s: no allocation to walk", name);
    memcpy(p1, pn_model_params(m), (size_t)n * sizeof(float));
    memcpy(g1, pn_model_grads(m), (size_t)n * sizeof(float));
    pn_model_destroy(m);

    int64_t walked = 0;
    for (int64_t k = 0; k < N; k++) {
        m = make();
        if (!m) break;
        uint64_t seed0, fw0, seed, fw;
        pn_model_rng_state(m, &seed0, &fw0);
        stale_message();
        pn_debug_fail_alloc(k);
        rc = run(m, res);
        int hit = pn_debug_alloc_count() > k;
        pn_debug_fail_alloc(-1);
        walked += hit;
        CHECK(hit && enomem_with_message(rc), "%s: allocation %lld of %lld failed, call gave %d",
              name, (long long)k, (long long)N, rc);
        if (!eager) { /* a failed run call leaves the model as it was */
            pn_model_rng_state(m, &seed, &fw);
            CHECK(same(pn_model_params(m), p0, n) && pn_model_iterations(m) == 0 && fw == fw0,
                  "%s: allocation %lld failed but the model changed", name, (long long)k);
        }
        memset(res, 0, sizeof res);
        rc = run(m, res);
        CHECK(rc == 0 && same(res, ref, MAX_RES), "%s: after allocation %lld failed, the retry "
              "gives %d (results %s)", name, (long long)k, rc,
              same(res, ref, MAX_RES) ? "same" : "differ");
        CHECK(same(pn_model_params(m), p1, n) && same(pn_model_grads(m), g1, n),
              "%s: after allocation %lld failed, the retry leaves other weights or gradients",
              name, (long long)k);
        pn_model_destroy(m);
    }
    size_t len = strlen(summary);
    snprintf(summary + len, sizeof summary - len, "%s %s %lld walked", len > 7 ? "," : "", name,
             (long long)walked);
    free(p0);
    free(p1);
    free(g1);
}

/* ---- the scenarios --------------------------------------------------------------------------- */

static int run_train(pn_model *m, float *res) {
    pn_tensor x = tx(), y = ty();
    const float *sw[1] = {SW};
    return pn_model_train_step(m, &x, &y, sw, IDX, BATCH, res);
}

static int run_test(pn_model *m, float *res) {
    pn_tensor x = tx(), y = ty();
    const float *sw[1] = {SW};
    return pn_model_test_step(m, &x, &y, sw, IDX, BATCH, res);
}

static int run_predict(pn_model *m, float *res) {
    pn_tensor x = tx();
    float *outs[1] = {res};
    return pn_model_predict(m, &x, BATCH, outs); /* batches of 4 and 3: two plans */
}

static int run_gradients(pn_model *m, float *res) {
    pn_tensor x = tx(), y = ty();
    float *dx[1] = {res + 1};
    return pn_model_gradients(m, &x, &y, res, dx);
}

/* the imperative path: x -> model -> loss -> backward -> an update of two variables */
static int run_eager_model(pn_model *m, float *res) {
    pn_value *x = NULL, *y = NULL, *out = NULL, *loss = NULL;
    int64_t xd[2] = {ROWS, IN}, yd[1] = {ROWS};
    pn_model_zero_grads(m);
    int rc = pn_value_create(&x, 2, xd, PN_F32, X);
    if (!rc) rc = pn_value_set_requires_grad(x, 1);
    if (!rc) rc = pn_value_create(&y, 1, yd, PN_I32, Y);
    if (!rc) rc = pn_model_call(m, &x, 1, &out);
    if (!rc) rc = pn_eager_loss(PN_LOSS_SPARSE_CE, 0, y, out, &loss);
    if (!rc) rc = pn_value_backward(loss, NULL);
    int vars[2] = {0, 5};
    if (!rc) rc = pn_model_apply_gradients(m, 2, vars);
    if (!rc) {
        res[0] = *(float *)pn_value_data(loss);
        memcpy(res + 1, pn_value_grad(x), ROWS * IN * sizeof(float));
        memcpy(res + 1 + ROWS * IN, pn_value_data(out), ROWS * CLASSES * sizeof(float));
    }
    pn_value_release(loss);
    pn_value_release(out);
    pn_value_release(y);
    pn_value_release(x);
    return rc;
}

static int run_train_multi(pn_model *m, float *res) {
    pn_tensor xs[2] = {tx(), {.ndim = 2, .dims = {ROWS, 3}, .dtype = PN_F32, .data = X2}};
    pn_tensor ys[2] = {ty(), {.ndim = 2, .dims = {ROWS, 2}, .dtype = PN_F32, .data = Y2}};
    const float *sw[2] = {NULL, SW};
    return pn_model_train_step(m, xs, ys, sw, IDX, BATCH, res);
}

/* two inputs, one of them wanting its gradient; two outputs, two losses, one backward */
static int run_eager_multi(pn_model *m, float *res) {
    pn_value *x[2] = {NULL, NULL}, *y[2] = {NULL, NULL}, *out[2] = {NULL, NULL};
    pn_value *l[2] = {NULL, NULL}, *loss = NULL;
    int64_t xd[2] = {ROWS, IN}, x2d[2] = {ROWS, 3}, yd[1] = {ROWS}, y2d[2] = {ROWS, 2};
    pn_model_zero_grads(m);
    int rc = pn_value_create(&x[0], 2, xd, PN_F32, X);
    if (!rc) rc = pn_value_create(&x[1], 2, x2d, PN_F32, X2);
    if (!rc) rc = pn_value_set_requires_grad(x[1], 1);
    if (!rc) rc = pn_value_create(&y[0], 1, yd, PN_I32, Y);
    if (!rc) rc = pn_value_create(&y[1], 2, y2d, PN_F32, Y2);
    if (!rc) rc = pn_model_call(m, x, 1, out);
    if (!rc) rc = pn_eager_loss(PN_LOSS_SPARSE_CE, 0, y[0], out[0], &l[0]);
    if (!rc) rc = pn_eager_loss(PN_LOSS_MSE, 0, y[1], out[1], &l[1]);
    if (!rc) rc = pn_eager_binary(PN_BIN_ADD, l[0], l[1], &loss);
    if (!rc) rc = pn_value_backward(loss, NULL);
    if (!rc) rc = pn_model_apply_gradients(m, 0, NULL);
    if (!rc) {
        res[0] = *(float *)pn_value_data(loss);
        memcpy(res + 1, pn_value_grad(x[1]), ROWS * 3 * sizeof(float));
    }
    pn_value_release(loss);
    for (int k = 0; k < 2; k++) {
        pn_value_release(l[k]);
        pn_value_release(out[k]);
        pn_value_release(y[k]);
        pn_value_release(x[k]);
    }
    return rc;
}

/* a model called with grad mode off: nothing recorded, the plan handed back at once */
static int run_eager_infer(pn_model *m, float *res) {
    pn_value *x = NULL, *out = NULL;
    int64_t xd[2] = {ROWS, IN};
    int rc = pn_value_create(&x, 2, xd, PN_F32, X);
    pn_set_grad_enabled(0);
    if (!rc) rc = pn_model_call(m, &x, 0, &out);
    pn_set_grad_enabled(1);
    if (!rc) memcpy(res, pn_value_data(out), ROWS * CLASSES * sizeof(float));
    pn_value_release(out);
    pn_value_release(x);
    return rc;
}

/* Values made by a scenario, released together in reverse at the end. */
typedef struct {
    pn_value *v[64];
    int n;
} pool;

static pn_value *keep(pool *p, pn_value *v) {
    p->v[p->n++] = v;
    return v;
}

static void drain_last(pool *p) { pn_value_release(p->v[--p->n]); }

static void drain(pool *p) {
    while (p->n > 0) pn_value_release(p->v[--p->n]);
}

#define E(call)                  \
    do {                         \
        pn_value *o_ = NULL;     \
        rc = (call);             \
        if (rc) goto out;        \
        keep(&pl, o_);           \
    } while (0)
#define OUT (&o_)
#define LAST (pl.v[pl.n - 1])

/* eager math on leaves a (3, 4, 5) and b (4, 5), every kind of entry, then backward */
static int run_eager_math(pn_model *m, float *res) {
    (void)m;
    pool pl = {.n = 0};
    int rc;
    unsigned s = 9;
    float da[60], db[20];
    for (int i = 0; i < 60; i++) da[i] = frand(&s);
    for (int i = 0; i < 20; i++) db[i] = frand(&s);
    int64_t ad[3] = {3, 4, 5}, bd[2] = {4, 5};
    E(pn_value_create(OUT, 3, ad, PN_F32, da));
    pn_value *a = LAST;
    E(pn_value_create(OUT, 2, bd, PN_F32, db));
    pn_value *b = LAST;
    pn_value_set_requires_grad(a, 1);
    pn_value_set_requires_grad(b, 1);
    E(pn_eager_binary(PN_BIN_MUL, a, b, OUT));                 /* (3,4,5), broadcast */
    pn_value *c = LAST;
    E(pn_eager_unary(PN_UN_TANH, c, OUT));
    pn_value *t = LAST;
    int perm[2] = {1, 0};
    E(pn_eager_transpose(b, perm, OUT));                       /* (5,4) */
    E(pn_eager_matmul(t, LAST, OUT));                          /* (3,4,4) */
    pn_value *mm = LAST;
    E(pn_eager_softmax(mm, 1, 0, OUT));                        /* over a middle axis */
    pn_value *sm = LAST;
    E(pn_eager_softmax(mm, -1, 1, OUT));                       /* log_softmax, last axis */
    pn_value *ls = LAST;
    int ax1[1] = {2};
    E(pn_eager_reduce(PN_RED_MAX, sm, 1, ax1, 1, OUT));       /* (3,4,1), saved winners */
    pn_value *mx = LAST;
    int64_t st[3] = {0, 1, 0}, sp[3] = {2, 1, 1}, cn[3] = {2, 3, 4};
    E(pn_eager_slice(ls, st, sp, cn, 0, OUT));                 /* (2,3,4) */
    int64_t rd[2] = {6, 4};
    E(pn_eager_reshape(LAST, 2, rd, OUT));
    E(pn_eager_reduce(PN_RED_MEAN, LAST, 0, NULL, 0, OUT));
    pn_value *r1 = LAST;
    E(pn_eager_reduce(PN_RED_SUM, mx, 0, NULL, 0, OUT));
    E(pn_eager_binary(PN_BIN_SUB, r1, LAST, OUT));
    /* a chain of 70 entries: backward's work lists grow past their first 64 slots */
    pn_value *z = LAST;
    pn_value_retain(z);
    for (int i = 0; i < 70; i++) {
        pn_value *nx = NULL;
        rc = pn_eager_unary(PN_UN_NEG, z, &nx);
        pn_value_release(z);
        if (rc) goto out;
        z = keep(&pl, nx);
        pn_value_retain(z);
        drain_last(&pl);
    }
    keep(&pl, z);
    rc = pn_value_backward(z, NULL);
    if (rc) goto out;
    res[0] = *(float *)pn_value_data(z);
    memcpy(res + 1, pn_value_grad(a), sizeof da);
    memcpy(res + 61, pn_value_grad(b), sizeof db);
out:
    drain(&pl);
    return rc;
}

/* graph ops on values: conv2d (scratch), batch norm, dropout, dense, concatenate; backward */
static int run_eager_ops(pn_model *m, float *res) {
    pool pl = {.n = 0};
    pn_model_zero_grads(m);
    int rc;
    unsigned s = 21;
    float dx[2 * 5 * 5 * 2], dk[3 * 3 * 2 * 3], dw[48 * 4];
    for (size_t i = 0; i < sizeof dx / sizeof *dx; i++) dx[i] = frand(&s);
    for (size_t i = 0; i < sizeof dk / sizeof *dk; i++) dk[i] = frand(&s);
    for (size_t i = 0; i < sizeof dw / sizeof *dw; i++) dw[i] = 0.2f * frand(&s);
    int64_t xd[4] = {2, 5, 5, 2}, kd[4] = {3, 3, 2, 3}, cd[1] = {3}, wd[2] = {48, 4};
    E(pn_value_create(OUT, 4, xd, PN_F32, dx));
    pn_value *x = LAST;
    E(pn_value_create(OUT, 4, kd, PN_F32, dk));
    pn_value *k = LAST;
    E(pn_value_create(OUT, 2, wd, PN_F32, dw));
    pn_value *w = LAST;
    E(pn_value_create(OUT, 1, cd, PN_F32, NULL));              /* gamma */
    pn_value *gamma = LAST;
    E(pn_value_create(OUT, 1, cd, PN_F32, NULL));              /* beta */
    pn_value *beta = LAST;
    E(pn_value_create(OUT, 1, cd, PN_F32, NULL));              /* moving mean */
    pn_value *mean = LAST;
    E(pn_value_create(OUT, 1, cd, PN_F32, NULL));              /* moving variance */
    pn_value *var = LAST;
    float *g = pn_value_data(gamma), *vv = pn_value_data(var);
    for (int i = 0; i < 3; i++) g[i] = vv[i] = 1.0f;
    pn_value_set_requires_grad(x, 1);
    pn_value_set_requires_grad(k, 1);
    pn_value_set_requires_grad(w, 1);
    pn_value_set_requires_grad(gamma, 1);
    pn_value_set_requires_grad(beta, 1);
    int conv[PN_MAX_ATTRS] = {1, 1, 1, 1, 0, 0, 0, 0};
    E(pn_eager_op(PN_OP_CONV2D, 1, &x, 1, &k, conv, NULL, 1, 0, OUT)); /* (2,3,3,3) */
    pn_value *bnv[4] = {gamma, beta, mean, var};
    int bn[PN_MAX_ATTRS] = {1, 1, 0, 0, 0, 0, 0, 0};
    float bnf[PN_MAX_ATTRS] = {0.99f, 1e-3f};
    E(pn_eager_op(PN_OP_BATCH_NORM, 1, &LAST, 4, bnv, bn, bnf, 1, 0, OUT));
    float drop[PN_MAX_ATTRS] = {0.25f};
    int spatial[PN_MAX_ATTRS] = {1};
    E(pn_eager_op(PN_OP_DROPOUT, 1, &LAST, 0, NULL, spatial, drop, 1, 7, OUT));
    pn_value *h = LAST;
    pn_value *two[2] = {h, h};
    int cat[PN_MAX_ATTRS] = {2};
    E(pn_eager_op(PN_OP_CONCATENATE, 2, two, 0, NULL, cat, NULL, 1, 0, OUT)); /* (2,3,3,6) */
    int64_t fd[2] = {2, 54};
    E(pn_eager_reshape(LAST, 2, fd, OUT));
    int64_t st[2] = {0, 0}, sp[2] = {1, 1}, cn[2] = {2, 48};
    E(pn_eager_slice(LAST, st, sp, cn, 0, OUT));
    E(pn_eager_op(PN_OP_DENSE, 1, &LAST, 1, &w, NULL, NULL, 1, 0, OUT));
    E(pn_eager_unary(PN_UN_SQUARE, LAST, OUT));
    E(pn_eager_reduce(PN_RED_SUM, LAST, 0, NULL, 0, OUT));
    pn_value *z1 = LAST;
    /* a variable of the model as a value: its gradient lands in the model's gradients */
    int64_t qd[2] = {4, IN};
    E(pn_value_create(OUT, 2, qd, PN_F32, X));
    pn_value *q = LAST;
    E(pn_model_variable_value(m, 0, OUT));
    E(pn_eager_op(PN_OP_DENSE, 1, &q, 1, &LAST, NULL, NULL, 1, 0, OUT));
    E(pn_eager_reduce(PN_RED_SUM, LAST, 0, NULL, 0, OUT));
    E(pn_eager_binary(PN_BIN_ADD, z1, LAST, OUT));
    pn_value *z = LAST;
    rc = pn_value_backward(z, NULL);
    if (rc) goto out;
    res[0] = *(float *)pn_value_data(z);
    memcpy(res + 1, pn_value_grad(x), sizeof dx);
    memcpy(res + 101, pn_value_grad(k), sizeof dk);
    memcpy(res + 155, pn_value_grad(gamma), 3 * sizeof(float));
    memcpy(res + 158, pn_value_grad(beta), 3 * sizeof(float));
    memcpy(res + 161, pn_value_data(mean), 3 * sizeof(float));
out:
    drain(&pl);
    return rc;
}

/* The build itself: each allocation made to fail once, the failed call retried (TRY). */
static void walk_build(void) {
    pn_debug_fail_alloc(INT64_MAX);
    pn_model *m = build();
    int64_t N = pn_debug_alloc_count();
    pn_debug_fail_alloc(-1);
    CHECK(m != NULL, "the build fails");
    pn_tensor x = tx(), y = ty();
    float ref[2], res[2];
    CHECK(pn_model_train_step(m, &x, &y, NULL, NULL, 0, ref) == 0, "a step after the build");
    pn_model_destroy(m);
    int64_t walked = 0;
    for (int64_t k = 0; k < N; k++) {
        build_failures = 0;
        pn_debug_fail_alloc(k);
        m = build();
        int hit = pn_debug_alloc_count() > k;
        pn_debug_fail_alloc(-1);
        walked += hit;
        CHECK(m && hit && build_failures == 1, "build: allocation %lld: %d failures seen",
              (long long)k, build_failures);
        if (!m) continue;
        int rc = pn_model_train_step(m, &x, &y, NULL, NULL, 0, res);
        CHECK(rc == 0 && same(res, ref, 2), "build: allocation %lld failed, then the model "
              "trains differently (%d)", (long long)k, rc);
        pn_model_destroy(m);
    }
    snprintf(summary + strlen(summary), sizeof summary - strlen(summary), " build %lld walked",
             (long long)walked);
}

/* A failure that comes back again and again: every call fails cleanly, the model stays whole. */
static void test_every_allocation_failing_after_the_first_step(void) {
    pn_model *m = build();
    if (!m) return;
    pn_tensor x = tx(), y = ty();
    float res[2];
    CHECK(pn_model_train_step(m, &x, &y, NULL, IDX, BATCH, res) == 0, "a first step");
    /* the plan is cached: a step of that size allocates nothing */
    pn_debug_fail_alloc(0);
    CHECK(pn_model_train_step(m, &x, &y, NULL, IDX, BATCH, res) == 0 &&
              pn_debug_alloc_count() == 0,
          "a cached step allocated %lld times", (long long)pn_debug_alloc_count());
    pn_debug_fail_alloc(-1);
    pn_model_destroy(m);
}

/* An eager batch norm in training updates its moving statistics: never when it then fails. */
static void test_failed_eager_batch_norm_keeps_moving_statistics(void) {
    int64_t xd[2] = {5, 3}, cd[1] = {3};
    pn_value *x, *v[4];
    pn_value_create(&x, 2, xd, PN_F32, X);
    pn_value_set_requires_grad(x, 1);
    for (int i = 0; i < 4; i++) pn_value_create(&v[i], 1, cd, PN_F32, NULL);
    for (int i = 0; i < 2; i++) pn_value_set_requires_grad(v[i], 1);
    int bn[PN_MAX_ATTRS] = {1, 1, 0};
    float bnf[PN_MAX_ATTRS] = {0.9f, 1e-3f};
    pn_debug_fail_alloc(INT64_MAX);
    pn_value *o = NULL;
    int rc = pn_eager_op(PN_OP_BATCH_NORM, 1, &x, 4, v, bn, bnf, 1, 0, &o);
    int64_t N = pn_debug_alloc_count();
    pn_debug_fail_alloc(-1);
    CHECK(rc == 0 && N > 0, "batch norm on values: %d", rc);
    pn_value_release(o);
    for (int64_t k = 0; k < N; k++) {
        float mean[3];
        memcpy(mean, pn_value_data(v[2]), sizeof mean);
        pn_debug_fail_alloc(k);
        o = NULL;
        rc = pn_eager_op(PN_OP_BATCH_NORM, 1, &x, 4, v, bn, bnf, 1, 0, &o);
        pn_debug_fail_alloc(-1);
        CHECK(enomem_with_message(rc) && same(mean, pn_value_data(v[2]), 3),
              "batch norm, allocation %lld: %d, moving mean changed: %d", (long long)k, rc,
              !same(mean, pn_value_data(v[2]), 3));
        if (rc == 0) pn_value_release(o);
    }
    for (int i = 0; i < 4; i++) pn_value_release(v[i]);
    pn_value_release(x);
}

/* Eager calls waiting for their backward hold every slot of the plan cache: the run calls then
 * use a plan of their own, which they free (LeakSanitizer checks it). */
static void test_steps_with_every_cached_plan_held_free_their_plans(void) {
    pn_model *m = build();
    if (!m) return;
    int64_t xd[2] = {BATCH, IN};
    pn_value *x, *held[9];
    pn_value_create(&x, 2, xd, PN_F32, X);
    int rc = 0;
    for (int i = 0; i < 9; i++) rc |= pn_model_call(m, &x, 1, &held[i]);
    CHECK(rc == 0, "nine calls held");
    pn_tensor tx_ = tx(), ty_ = ty();
    float res[2], out[ROWS * CLASSES], dx[ROWS * IN], loss;
    float *outs[1] = {out}, *dxs[1] = {dx};
    int64_t bytes;
    CHECK(pn_model_train_step(m, &tx_, &ty_, NULL, IDX, BATCH, res) == 0, "train step");
    CHECK(pn_model_test_step(m, &tx_, &ty_, NULL, NULL, 0, res) == 0, "test step");
    CHECK(pn_model_predict(m, &tx_, BATCH, outs) == 0, "predict");
    CHECK(pn_model_gradients(m, &tx_, &ty_, &loss, dxs) == 0, "gradients");
    CHECK(pn_model_plan_bytes(m, 3, 1, &bytes) == 0, "plan bytes");
    int32_t bad[ROWS] = {0, 1, 2, 9, 0, 1, 2};
    pn_tensor tbad = {.ndim = 1, .dims = {ROWS}, .dtype = PN_I32, .data = bad};
    CHECK(pn_model_test_step(m, &tx_, &tbad, NULL, NULL, 0, res) == PN_EVALUE, "bad labels");
    for (int i = 0; i < 9; i++) pn_value_release(held[i]);
    pn_value_release(x);
    pn_model_destroy(m);
}

int main(void) {
    make_data();
    walk_build();
    walk("train_step", build, run_train, 0);
    walk("test_step", build, run_test, 0);
    walk("predict", build, run_predict, 0);
    walk("gradients", build, run_gradients, 0);
    walk("eager_model", build, run_eager_model, 1);
    walk("eager_model_infer", build, run_eager_infer, 0);
    walk("eager_math", build, run_eager_math, 1);
    walk("eager_op", build, run_eager_ops, 1);
    walk("train_step_2in_2out", build_multi, run_train_multi, 0);
    walk("eager_model_2in_2out", build_multi, run_eager_multi, 1);
    test_every_allocation_failing_after_the_first_step();
    test_failed_eager_batch_norm_keeps_moving_statistics();
    test_steps_with_every_cached_plan_held_free_their_plans();
    printf("%s\n", summary);
    printf("%d passed, %d failed\n", passed, failed);
    return failed != 0;
}
