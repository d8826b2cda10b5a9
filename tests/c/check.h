/*
 * check.h: what the core's C tests share: the CHECK macro with its pass/fail counts, and a small
 * seeded generator of floats in [-1, 1). Each test program prints "N passed, M failed".
 */
#ifndef PYNN_TEST_CHECK_H
#define PYNN_TEST_CHECK_H

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
