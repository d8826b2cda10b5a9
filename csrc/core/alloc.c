/*
 * alloc.c: every allocation of the core goes through these wrappers, so a test can make any one
 * of them fail (pn_debug_fail_alloc) and walk every error path. Off, the cost is one relaxed load
 * and a branch that is never taken; armed, a relaxed counter numbers the allocations, so the
 * OpenMP threads (which do not allocate today) would still count each one exactly once.
 */
#include <stdatomic.h>

#include "internal.h"

static atomic_int armed;            /* counting (and maybe failing) since pn_debug_fail_alloc */
static atomic_llong count, fail_at; /* allocations since then; the index that fails */

void pn_debug_fail_alloc(int64_t n) {
    atomic_store(&armed, 0);
    atomic_store(&count, 0);
    atomic_store(&fail_at, n);
    atomic_store(&armed, n >= 0);
}

int64_t pn_debug_alloc_count(void) { return atomic_load(&count); }

/* Whether this allocation is the one to fail: one branch when off. */
static inline int injected(void) {
    if (__builtin_expect(!atomic_load_explicit(&armed, memory_order_relaxed), 1)) return 0;
    long long k = atomic_fetch_add_explicit(&count, 1, memory_order_relaxed);
    return k == atomic_load_explicit(&fail_at, memory_order_relaxed);
}

void *pn_malloc(size_t bytes) { return injected() ? NULL : malloc(bytes); }

void *pn_calloc(size_t n, size_t size) { return injected() ? NULL : calloc(n, size); }

void *pn_realloc(void *p, size_t bytes) { return injected() ? NULL : realloc(p, bytes); }

/* C11 wants the size a multiple of the alignment: rounded up here, once, for every caller. */
void *pn_aligned_alloc(size_t align, size_t bytes) {
    if (injected()) return NULL;
    if (bytes > SIZE_MAX - align) return NULL;
    return aligned_alloc(align, (bytes + align - 1) / align * align);
}
