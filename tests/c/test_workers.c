/*
 * test_workers.c: workers.c's spinning pool. Every part of every job runs exactly once, with
 * the right part count, whether the helpers are spinning, asleep, racing a second caller, or
 * absent (after fork); single-row dense layers on the pool match the GEMM path.
 */
#define _GNU_SOURCE /* nanosleep, fork and waitpid with -std=c11 */
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "internal.h"

#define MAX_PARTS 8

typedef struct {
    _Atomic int runs[MAX_PARTS];
    _Atomic int wrong_parts; /* calls told a part count other than the job's */
    int parts;
} tally;

static void count_part(void *arg, int part, int parts) {
    tally *t = arg;
    if (parts != t->parts || part < 0 || part >= parts) atomic_fetch_add(&t->wrong_parts, 1);
    else atomic_fetch_add(&t->runs[part], 1);
}

/* Runs one job of `parts` parts; 1 when every part ran once and was told the right count. */
static int job_ok(int parts) {
    tally t;
    memset(&t, 0, sizeof t);
    t.parts = parts;
    pn_parallel(count_part, &t, parts);
    if (atomic_load(&t.wrong_parts)) return 0;
    for (int p = 0; p < parts; p++)
        if (atomic_load(&t.runs[p]) != 1) return 0;
    return 1;
}

static void sleep_us(long us) {
    struct timespec ts = {us / 1000000, (us % 1000000) * 1000};
    nanosleep(&ts, NULL);
}

static void test_every_part_once(void) {
    for (int parts = 1; parts <= MAX_PARTS; parts++) {
        int ok = 1;
        for (int rep = 0; rep < 200; rep++) ok &= job_ok(parts);
        CHECK(ok, "parts=%d: a part ran twice, never, or with the wrong count", parts);
    }
    int ok = 1;
    for (int rep = 0; rep < 20000; rep++) ok &= job_ok(2); /* back to back: helpers spinning */
    CHECK(ok, "20000 two-part jobs back to back");
}

static void test_after_sleep(void) {
    /* Past the spin window the helpers sleep; a job must wake them or run without them. */
    int ok = 1;
    for (int rep = 0; rep < 5; rep++) {
        sleep_us(2000);
        ok &= job_ok(2);
        ok &= job_ok(3);
    }
    CHECK(ok, "jobs after the helpers went to sleep");
}

static void *caller(void *arg) {
    int *ok = arg;
    for (int rep = 0; rep < 3000; rep++) *ok &= job_ok(2 + rep % 3);
    return NULL;
}

static void test_two_callers(void) {
    /* Only one job at a time uses the pool; the other caller runs its parts itself. */
    pthread_t th[2];
    int ok[2] = {1, 1};
    int started = 0;
    for (int i = 0; i < 2; i++) started += pthread_create(&th[i], NULL, caller, &ok[i]) == 0;
    CHECK(started == 2, "started %d caller threads", started);
    for (int i = 0; i < started; i++) pthread_join(th[i], NULL);
    CHECK(ok[0] && ok[1], "two threads calling at once");
}

static void test_fork(void) {
    CHECK(job_ok(2), "before fork");
    pid_t pid = fork();
    if (pid == 0) _exit(job_ok(2) && job_ok(4) ? 0 : 1); /* no helpers exist in the child */
    int status = 0;
    CHECK(pid > 0 && waitpid(pid, &status, 0) == pid, "fork and wait");
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the pool in a forked child");
    CHECK(job_ok(2), "the parent after fork");
}

/* One row through the pool's column split against the same rows through GEMM (3 rows). */
static void test_dense_row_matches_gemm(void) {
    enum { C = 300, OC = 150, R = 3 }; /* C OC above the split threshold; OC not a multiple of 16 */
    pn_model *m = NULL;
    int rc = pn_model_create(&m);
    int64_t ks[2] = {C, OC}, bs[1] = {OC}, xs[1] = {C};
    int v[2], in, d;
    rc |= pn_model_add_variable(m, 2, ks, 1, &v[0]);
    rc |= pn_model_add_variable(m, 1, bs, 1, &v[1]);
    rc |= pn_model_alloc(m);
    rc |= pn_model_add_input(m, 1, xs, PN_F32, &in);
    rc |= pn_model_add_node(m, PN_OP_DENSE, 1, &in, 2, v, NULL, NULL, &d);
    rc |= pn_model_set_output(m, d);
    CHECK(rc == 0, "build the model");
    if (rc) {
        pn_model_destroy(m);
        return;
    }
    unsigned seed = 7;
    int64_t off[2], size, shape[PN_MAX_DIMS];
    int ndim;
    for (int k = 0; k < 2; k++) pn_model_variable(m, v[k], &off[k], &size, &ndim, shape);
    float *w = pn_model_params(m) + off[0], *b = pn_model_params(m) + off[1];
    for (int i = 0; i < C * OC; i++) w[i] = frand(&seed);
    for (int i = 0; i < OC; i++) b[i] = frand(&seed);
    static float x[R * C], all[R * OC], one[OC];
    for (int i = 0; i < R * C; i++) x[i] = frand(&seed);
    pn_tensor tx = {.ndim = 2, .dims = {R, C}, .dtype = PN_F32, .data = x};
    float *outs[1] = {all};
    CHECK(pn_model_predict(m, &tx, R, outs) == 0, "predict 3 rows");
    for (int threads = 1; threads <= 3; threads++) {
        pn_set_num_threads(threads);
        double err = 0;
        for (int r = 0; r < R; r++) {
            pn_tensor t1 = {.ndim = 2, .dims = {1, C}, .dtype = PN_F32, .data = x + r * C};
            outs[0] = one;
            CHECK(pn_model_predict(m, &t1, 1, outs) == 0, "predict one row");
            for (int j = 0; j < OC; j++) {
                double e = fabs((double)one[j] - all[r * OC + j]);
                err = e > err ? e : err;
            }
        }
        CHECK(err < 1e-4, "threads=%d: one row differs from the GEMM rows by %g", threads, err);
    }
    pn_set_num_threads(2);
    pn_model_destroy(m);
}

int main(void) {
    pn_set_num_threads(2);
    test_every_part_once();
    test_after_sleep();
    test_two_callers();
    test_fork();
    test_dense_row_matches_gemm();
    printf("%d passed, %d failed\n", passed, failed);
    return failed != 0;
}
