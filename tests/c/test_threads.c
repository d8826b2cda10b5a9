/*
 * test_threads.c: the core's results when OpenMP grants fewer threads than it asks for (as under
 * OMP_THREAD_LIMIT, OMP_DYNAMIC on a busy machine, or inside another parallel region). Each case
 * runs once on one thread, then with pn_threads 2 and 3 from inside a team of two where nested
 * regions get one thread each: a region that split its work by the count it asked for, not by
 * the team it got, leaves parts undone (pn_gemm's row split returned only the bias in columns
 * 64-99 of a 256 x 784 -> 100 dense layer). Also pn_model_set_iterations' range.
 */
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "internal.h"

enum { TANH = 1, SIG = 2 };

/* Runs fn(arg) on the master thread of a team of two: the regions fn opens get one thread.
 * Returns whether they did (else the case proves nothing here, e.g. under OMP_THREAD_LIMIT=1). */
static int starved(void (*fn)(void *), void *arg) {
    int inner = 0;
#pragma omp parallel num_threads(2)
    {
#pragma omp master
        {
#pragma omp parallel num_threads(2)
            inner = omp_get_num_threads();
            fn(arg);
        }
    }
    return inner == 1;
}

typedef struct {
    int tb;
    int64_t M, N, K;
    const float *a, *b;
    float *c;
} gemm_case;

static void run_gemm(void *arg) {
    gemm_case *g = arg;
    pn_gemm(0, g->tb, g->M, g->N, g->K, 1.0f, g->a, g->K, g->b, g->tb ? g->K : g->N, 0.0f, g->c,
            g->N);
}

/* pn_gemm on both paths (the own kernels and OpenBLAS split by rows or by columns) */
static void test_gemm_starved(void) {
    const int64_t shapes[][3] = {{256, 100, 784}, {64, 512, 300}, {300, 64, 128}};
    for (int s = 0; s < 3; s++)
        for (int kernels = 1; kernels >= 0; kernels--)
            for (int tb = 0; tb <= 1; tb++) {
                const int64_t M = shapes[s][0], N = shapes[s][1], K = shapes[s][2];
                unsigned seed = (unsigned)(s * 7 + tb + 1);
                float *a = malloc(sizeof(float) * M * K), *b = malloc(sizeof(float) * K * N);
                float *one = malloc(sizeof(float) * M * N), *c = malloc(sizeof(float) * M * N);
                for (int64_t i = 0; i < M * K; i++) a[i] = frand(&seed);
                for (int64_t i = 0; i < K * N; i++) b[i] = frand(&seed);
                pn_gemm_kernels = kernels;
                pn_set_num_threads(1);
                gemm_case g = {tb, M, N, K, a, b, one};
                run_gemm(&g);
                for (int threads = 2; threads <= 3; threads++) {
                    pn_set_num_threads(threads);
                    for (int64_t i = 0; i < M * N; i++) c[i] = NAN;
                    g.c = c;
                    int meaningful = starved(run_gemm, &g);
                    double worst = 0;
                    for (int64_t i = 0; i < M * N; i++) {
                        double d = fabs((double)c[i] - one[i]);
                        worst = d > worst || isnan(d) ? (isnan(d) ? INFINITY : d) : worst;
                    }
                    CHECK(worst < 1e-4, "gemm %lldx%lldx%lld tb=%d kernels=%d, %d threads asked, "
                          "one granted%s: differs from one thread by %g", (long long)M,
                          (long long)N, (long long)K, tb, kernels, threads,
                          meaningful ? "" : " (not starved here)", worst);
                }
                pn_gemm_kernels = 1;
                free(a), free(b), free(one), free(c);
            }
}

/* A dense layer into an LSTM (64 units: its steps split over the threads) into a dense output,
 * MSE, Adam: predict and two training steps. */
typedef struct {
    pn_model *m;
    pn_tensor x, y;
    float *pred, loss[2];
} model_case;

static pn_model *lstm_model(void) {
    enum { T = 8, F = 16, U = 64, O = 5 };
    pn_model *m;
    pn_model_create(&m);
    int64_t k0[2] = {F, F}, b0[1] = {F}, k[2] = {F, 4 * U}, rk[2] = {U, 4 * U}, b[1] = {4 * U},
            k2[2] = {U, O}, xs[2] = {T, F};
    int v[6], in, n;
    pn_model_add_variable(m, 2, k0, 1, &v[0]);
    pn_model_add_variable(m, 1, b0, 1, &v[1]);
    pn_model_add_variable(m, 2, k, 1, &v[2]);
    pn_model_add_variable(m, 2, rk, 1, &v[3]);
    pn_model_add_variable(m, 1, b, 1, &v[4]);
    pn_model_add_variable(m, 2, k2, 1, &v[5]);
    pn_model_alloc(m);
    unsigned seed = 11;
    for (int64_t i = 0; i < pn_model_param_count(m, 0); i++)
        pn_model_params(m)[i] = 0.3f * frand(&seed);
    pn_model_add_input(m, 2, xs, PN_F32, &in);
    pn_model_add_node(m, PN_OP_DENSE, 1, &in, 2, v, NULL, NULL, &n);
    int lstm[PN_MAX_ATTRS] = {U, 0, 0, 0, TANH, SIG, 0, 0};
    pn_model_add_node(m, PN_OP_LSTM, 1, &n, 3, v + 2, lstm, NULL, &n);
    pn_model_add_node(m, PN_OP_DENSE, 1, &n, 1, v + 5, NULL, NULL, &n);
    pn_model_set_output(m, n);
    pn_model_compile(m, PN_LOSS_MSE, 0, 0, NULL);
    pn_optim_config cfg = {.kind = PN_ADAM, .learning_rate = 0.01f, .beta_1 = 0.9f,
                           .beta_2 = 0.999f, .epsilon = 1e-7f};
    pn_model_set_optimizer(m, &cfg);
    return m;
}

static void run_model(void *arg) {
    model_case *c = arg;
    pn_model_predict(c->m, &c->x, 64, &c->pred);
    for (int s = 0; s < 2; s++) pn_model_train_step(c->m, &c->x, &c->y, NULL, NULL, 0, c->loss);
}

static void test_model_starved(void) {
    enum { B = 64, T = 8, F = 16, O = 5 };
    float *x = malloc(sizeof(float) * B * T * F), *y = malloc(sizeof(float) * B * O);
    float *pred1 = malloc(sizeof(float) * B * O), *pred = malloc(sizeof(float) * B * O);
    unsigned seed = 3;
    for (int i = 0; i < B * T * F; i++) x[i] = frand(&seed);
    for (int i = 0; i < B * O; i++) y[i] = frand(&seed);
    pn_tensor tx = {3, {B, T, F}, PN_F32, x}, ty = {2, {B, O}, PN_F32, y};
    pn_set_num_threads(1);
    model_case one = {lstm_model(), tx, ty, pred1, {0}};
    run_model(&one);
    for (int threads = 2; threads <= 3; threads++) {
        pn_set_num_threads(threads);
        model_case c = {lstm_model(), tx, ty, pred, {0}};
        for (int i = 0; i < B * O; i++) pred[i] = NAN;
        int meaningful = starved(run_model, &c);
        double dp = 0, dw = 0;
        for (int i = 0; i < B * O; i++) dp = fmax(dp, isnan(pred[i]) ? INFINITY : fabs(pred[i] - pred1[i]));
        const float *w1 = pn_model_params(one.m), *w = pn_model_params(c.m);
        for (int64_t i = 0; i < pn_model_param_count(c.m, 0); i++)
            dw = fmax(dw, isnan(w[i]) ? INFINITY : fabs(w[i] - w1[i]));
        CHECK(dp < 1e-4 && dw < 1e-4 && fabs(c.loss[0] - one.loss[0]) < 1e-4,
              "dense-lstm-dense, %d threads asked, one granted%s: predictions differ by %g, "
              "weights after two Adam steps by %g, losses %g and %g", threads,
              meaningful ? "" : " (not starved here)", dp, dw, c.loss[0], one.loss[0]);
        pn_model_destroy(c.m);
    }
    pn_model_destroy(one.m);
    free(x), free(y), free(pred1), free(pred);
}

/* pn_set_num_threads(n) keeps within OMP_THREAD_LIMIT; the default reads OpenMP's setting */
static void test_thread_setting(void) {
    int limit = omp_get_thread_limit();
    pn_set_num_threads(limit < 64 ? limit + 5 : 64);
    CHECK(pn_get_num_threads() <= limit, "%d threads with a thread limit of %d",
          pn_get_num_threads(), limit);
    int d = pn_default_num_threads();
    CHECK(d >= 1 && d <= limit && d <= omp_get_max_threads(), "default %d", d);
    pn_set_num_threads(0);
    CHECK(pn_get_num_threads() == 1, "n < 1 means 1");
    CHECK(!pn_forked_child(), "not forked");
}

static void test_iterations_range(void) {
    pn_model *m = lstm_model();
    CHECK(pn_model_set_iterations(m, PN_MAX_ITERATIONS) == 0, "2^53 is taken");
    CHECK(pn_model_set_iterations(m, PN_MAX_ITERATIONS + 1) == PN_EVALUE, "2^53 + 1 is refused");
    CHECK(pn_model_set_iterations(m, INT64_MAX) == PN_EVALUE, "2^63 - 1 is refused");
    CHECK(pn_model_set_iterations(m, -1) == PN_EVALUE, "-1 is refused");
    CHECK(pn_model_iterations(m) == PN_MAX_ITERATIONS, "a refused value changes nothing");
    pn_model_destroy(m);
}

static int asked;
static int stop_now(void) { return ++asked > 0; }

/* a large eager product (pn_gemm_polled): pn_gemm's result without a hook; with a hook that says
 * stop, PN_EINTR after its first block of rows */
static void test_polled_product(void) {
    const int64_t M = 600, N = 256, K = 512 + 16; /* 81 Mi multiply-adds */
    pn_gemm_poll_macs = INT64_C(1) << 24;          /* blocks of 96 rows (MC), 7 of them */
    float *a = malloc(sizeof(float) * M * K), *b = malloc(sizeof(float) * K * N);
    float *c = malloc(sizeof(float) * M * N), *d = malloc(sizeof(float) * M * N);
    unsigned seed = 9;
    for (int64_t i = 0; i < M * K; i++) a[i] = frand(&seed);
    for (int64_t i = 0; i < K * N; i++) b[i] = frand(&seed);
    pn_set_num_threads(2);
    pn_gemm(0, 0, M, N, K, 1.0f, a, K, b, N, 0.0f, c, N);
    CHECK(pn_gemm_polled(M, N, K, a, K, b, N, d, N) == PN_OK &&
              memcmp(c, d, sizeof(float) * M * N) == 0,
          "the polled product is pn_gemm's to the bit");
    pn_set_interrupt_hook(stop_now);
    CHECK(pn_gemm_polled(M, N, K, a, K, b, N, d, N) == PN_EINTR && asked == 1,
          "a hook that says stop ends the product (asked %d times)", asked);
    pn_set_interrupt_hook(NULL);
    pn_gemm_poll_macs = INT64_C(1) << 33;
    free(a), free(b), free(c), free(d);
}

int main(void) {
    test_gemm_starved();
    test_model_starved();
    test_thread_setting();
    test_iterations_range();
    test_polled_product();
    printf("test_threads: %d passed, %d failed\n", passed, failed);
    return failed != 0;
}
