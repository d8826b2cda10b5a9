/*
 * process.c: the core in its process: how many threads it runs, what a fork leaves the child,
 * and how a long call learns that its caller wants it to stop.
 *
 * Threads. pn_threads is what the core asks OpenMP for; OpenMP may grant fewer (OMP_THREAD_LIMIT,
 * OMP_DYNAMIC on a busy machine, a region inside another), so every parallel region splits its
 * work by the team it got (omp_get_num_threads() inside the region, or OpenMP's own `for`), never
 * by pn_threads. The default is OpenMP's reading of the environment, as PyTorch's is:
 * OMP_NUM_THREADS when set, else the CPUs this process may run on, capped by OMP_THREAD_LIMIT.
 *
 * Fork. GNU OpenMP's threads do not survive fork(): the child's next region of more than one
 * thread waits for them forever (a region of one thread does not). So a forked child runs
 * single-threaded for good: pn_threads becomes 1 and stays 1. The spinning pool of workers.c
 * starts afresh there, and model.c makes every model's lock anew (its holder, a thread of the
 * parent, does not exist in the child).
 *
 * Interrupts. A long call (predict over many batches, a large eager product) calls
 * pn_poll_interrupt() between batches or blocks, on the calling thread, outside any parallel
 * region. At most every POLL_NS it asks the hook the caller installed (the extension asks Python
 * whether a signal is pending), and when the hook says stop, the call returns PN_EINTR, its
 * objects as they were before it or between two of its batches, never half-written.
 */
#define _GNU_SOURCE /* pthread_atfork's declaration with -std=c11 */
#include <pthread.h>
#include <time.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "internal.h"

#define POLL_NS 50000000u /* 50 ms between two questions to the interrupt hook */

int pn_threads = 1;
static int forked; /* this process is a child of fork(): OpenMP cannot start threads here */

static void after_fork_child(void) {
    forked = 1;
    pn_threads = 1;
    pn_models_after_fork_child();
}

static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;
static void register_atfork(void) {
    pthread_atfork(pn_models_before_fork, pn_models_after_fork_parent, after_fork_child);
}

void pn_process_init(void) { pthread_once(&atfork_once, register_atfork); }

/* The most threads a region may get: 1 after fork, else OMP_THREAD_LIMIT's. */
static int thread_cap(void) {
    if (forked) return 1;
#ifdef _OPENMP
    int limit = omp_get_thread_limit();
    return limit > 0 ? limit : 1;
#else
    return 1;
#endif
}

int pn_default_num_threads(void) {
#ifdef _OPENMP
    int n = omp_get_max_threads(); /* OMP_NUM_THREADS, else the CPUs of the affinity mask */
#else
    int n = 1;
#endif
    int cap = thread_cap();
    return n < 1 ? 1 : n > cap ? cap : n;
}

void pn_set_num_threads(int n) {
    pn_process_init();
    int cap = thread_cap();
    pn_threads = n < 1 ? 1 : n > cap ? cap : n;
    pn_blas_set_threads(1); /* the core splits GEMMs over its own OpenMP threads (gemm.c) */
}

int pn_get_num_threads(void) { return pn_threads; }

int pn_forked_child(void) { return forked; }

static pn_interrupt_fn interrupt_hook;
static _Thread_local uint64_t next_poll; /* this thread asks the hook again from then on */

void pn_set_interrupt_hook(pn_interrupt_fn hook) { interrupt_hook = hook; }

int pn_poll_interrupt(void) {
    pn_interrupt_fn hook = interrupt_hook;
    if (!hook) return PN_OK;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    const uint64_t now = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
    if (now < next_poll) return PN_OK;
    next_poll = now + POLL_NS;
    return hook() ? pn_error(PN_EINTR, "interrupted") : PN_OK;
}
