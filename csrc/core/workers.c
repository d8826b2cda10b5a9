/*
 * workers.c: a spinning thread pool for work of a few microseconds.
 *
 * An OpenMP region costs about as much as such work: libgomp wakes its workers and releases
 * every barrier with a futex syscall, twice per region. Single-sample predict of the MNIST MLP
 * (a 784 x 128 kernel, about 3 us of arithmetic per core) spent a third of its time there.
 *
 * Here the helpers spin on one atomic word for a while after each job (POOL_SPIN_NS), then
 * sleep on a condition variable. A job is a number of parts that any thread may claim, the
 * caller included: the caller starts claiming at once, so a helper that is asleep, or slow to
 * wake, costs nothing but its wake-up call, and the job is never slower than running every part
 * on the calling thread.
 *
 * The word `job` holds the job's generation, its number of parts and the next part to claim.
 * A part is claimed by a compare-and-swap on the whole word, judged by the word alone, so a
 * helper that woke for an earlier job can neither take a part of a later one nor one past the
 * end of its own; the caller waits until `done` counts every part, so the job's function and
 * argument stay valid while any part runs.
 *
 * One job at a time: a second caller (another Python thread, with the GIL released) runs its
 * parts itself. After fork the child has no helpers; the pool starts afresh there.
 */
#define _GNU_SOURCE /* pthread_atfork's declaration with -std=c11 */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <time.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define cpu_relax() _mm_pause()
#else
#define cpu_relax() ((void)0)
#endif

#include "internal.h"

#define POOL_MAX_HELPERS 63
#define POOL_SPIN_NS 200000 /* a helper spins this long after a job before it sleeps */
/* job = generation << 16 | parts << 8 | next part */
#define GEN_SHIFT 16
#define PARTS_OF(w) ((int)((w) >> 8 & 0xff))
#define NEXT_OF(w) ((int)((w) & 0xff))

static struct {
    pthread_mutex_t lock;
    pthread_cond_t wake;
    atomic_flag busy;             /* held by the thread running a job */
    _Atomic uint64_t job;         /* generation, parts, next part to claim */
    _Atomic int sleepers;         /* helpers waiting on `wake` */
    _Atomic int done;             /* parts of the current job finished */
    int helpers;                  /* helper threads started (only the job's caller changes it) */
    pn_part_fn fn;
    void *arg;
} pool = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, ATOMIC_FLAG_INIT, 0, 0, 0, 0,
          NULL, NULL};

static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

static uint64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

/* Claims and runs parts of job generation `gen` until none is left. */
static void run_parts(uint64_t gen) {
    uint64_t w = atomic_load_explicit(&pool.job, memory_order_acquire);
    while (w >> GEN_SHIFT == gen && NEXT_OF(w) < PARTS_OF(w)) {
        if (atomic_compare_exchange_weak_explicit(&pool.job, &w, w + 1, memory_order_acq_rel,
                                                  memory_order_acquire)) {
            pool.fn(pool.arg, NEXT_OF(w), PARTS_OF(w));
            atomic_fetch_add_explicit(&pool.done, 1, memory_order_release);
            w = atomic_load_explicit(&pool.job, memory_order_acquire);
        }
    }
}

/* A helper: waits for a new generation (spinning, then sleeping), takes what parts are left. */
static void *helper_main(void *unused) {
    (void)unused;
    uint64_t seen = atomic_load(&pool.job) >> GEN_SHIFT;
    for (;;) {
        uint64_t gen = seen, start = now_ns();
        for (unsigned spins = 1; (gen = atomic_load_explicit(&pool.job, memory_order_acquire) >>
                                         GEN_SHIFT) == seen; spins++) {
            cpu_relax();
            if (spins % 256 == 0 && now_ns() - start > POOL_SPIN_NS) break;
        }
        if (gen == seen) { /* idle: sleep until the next job. seq_cst pairs with pn_parallel */
            pthread_mutex_lock(&pool.lock);
            atomic_fetch_add(&pool.sleepers, 1);
            while ((gen = atomic_load(&pool.job) >> GEN_SHIFT) == seen)
                pthread_cond_wait(&pool.wake, &pool.lock);
            atomic_fetch_sub(&pool.sleepers, 1);
            pthread_mutex_unlock(&pool.lock);
        }
        seen = gen;
        run_parts(gen);
    }
    return NULL;
}

/* In a forked child the helpers do not exist: forget them and any job in flight. */
static void pool_after_fork_child(void) {
    pthread_mutex_init(&pool.lock, NULL);
    pthread_cond_init(&pool.wake, NULL);
    atomic_flag_clear(&pool.busy);
    atomic_store(&pool.sleepers, 0);
    pool.helpers = 0;
}

static void pool_register_atfork(void) { pthread_atfork(NULL, NULL, pool_after_fork_child); }

static void run_inline(pn_part_fn fn, void *arg, int parts) {
    for (int p = 0; p < parts; p++) fn(arg, p, parts);
}

void pn_parallel(pn_part_fn fn, void *arg, int parts) {
    if (parts > POOL_MAX_HELPERS + 1) parts = POOL_MAX_HELPERS + 1;
    if (parts <= 1 || atomic_flag_test_and_set_explicit(&pool.busy, memory_order_acquire)) {
        run_inline(fn, arg, parts < 1 ? 1 : parts);
        return;
    }
    pthread_once(&atfork_once, pool_register_atfork);
    while (pool.helpers < parts - 1) { /* started lazily; without them the caller does it all */
        pthread_t t;
        pthread_attr_t attr;
        if (pthread_attr_init(&attr)) break;
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        int failed = pthread_create(&t, &attr, helper_main, NULL);
        pthread_attr_destroy(&attr);
        if (failed) break;
        pool.helpers++;
    }
    pool.fn = fn;
    pool.arg = arg;
    atomic_store_explicit(&pool.done, 0, memory_order_relaxed);
    uint64_t gen = (atomic_load_explicit(&pool.job, memory_order_relaxed) >> GEN_SHIFT) + 1;
    gen &= (1ull << (64 - GEN_SHIFT)) - 1;
    atomic_store(&pool.job, gen << GEN_SHIFT | (uint64_t)parts << 8); /* seq_cst: publishes */
    if (atomic_load(&pool.sleepers) > 0) {
        pthread_mutex_lock(&pool.lock);
        pthread_cond_broadcast(&pool.wake);
        pthread_mutex_unlock(&pool.lock);
    }
    run_parts(gen);
    /* Every part is claimed; wait for those a helper is still running. */
    for (unsigned spins = 1; atomic_load_explicit(&pool.done, memory_order_acquire) < parts;
         spins++) {
        cpu_relax();
        if (spins % 4096 == 0) sched_yield(); /* the helper may have lost its core */
    }
    atomic_flag_clear_explicit(&pool.busy, memory_order_release);
}
