/*
 * check.h: what the core's C tests share: the CHECK macro with its pass/fail counts, a small
 * seeded generator of floats in [-1, 1) and the error of a result against a double reference.
 * Each test program prints "N passed, M failed".
 */
#ifndef PYNN_TEST_CHECK_H
#define PYNN_TEST_CHECK_H

#include <math.h>
#include <stdio.h>

#include "pynn.h"

static int passed, failed;

#define CHECK(cond, ...)                                                                     \
    do {                                                                                     \
        if (cond) {                                                                          \
            passed++;                                                                        \
        } else {                                                                             \
            failed++;                                                                        \
            printf("FAIL %s:%d: ", __FILE__, __LINE__);                                      \
            printf(__VA_ARGS__);                                                             \
            printf("  [%s]\n", pn_last_error());                                             \
        }                                                                                    \
    } while (0)

/* A linear congruential step: floats in [-1, 1) from the seed *s. */
static inline float frand(unsigned *s) {
    *s = *s * 1103515245u + 12345u;
    return ((*s >> 8) & 0xFFFF) / 32768.0f - 1.0f;
}

/* max |a - b| / max(max |b|, floor) over n values; a NaN on one side only is an infinite error */
static inline double rel_err(const float *a, const double *b, int64_t n, double floor) {
    double err = 0, mx = floor;
    for (int64_t i = 0; i < n; i++) {
        if (isnan(a[i]) != isnan(b[i])) return INFINITY;
        if (isnan(b[i])) continue;
        err = fmax(err, fabs(a[i] - b[i]));
        mx = fmax(mx, fabs(b[i]));
    }
    return err / mx;
}

/* A variable's values, and its gradient, in the model's flat buffers. */
static inline float *param(pn_model *m, int var) {
    int64_t off;
    pn_model_variable(m, var, &off, NULL, NULL, NULL);
    return pn_model_params(m) + off;
}

static inline float *grad(pn_model *m, int var) {
    int64_t off;
    pn_model_variable(m, var, &off, NULL, NULL, NULL);
    return pn_model_grads(m) + off;
}

#endif /* PYNN_TEST_CHECK_H */
