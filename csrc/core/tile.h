/*
 * tile.h: the core's register tile, shared by its own matrix products (gemm.c) and the lstm's
 * step product (ops_lstm.c).
 *
 *   c (mr, 16) = start + a1 (mr, K1) bp[0 .. K1) + a2 (mr, K2) bp[K1 .. K1 + K2)
 *
 * on c's first ncols columns (ncols <= 16), mr <= PN_TILE_MR. a1 and a2: rows lda1, lda2 apart
 * (two segments, so the lstm multiplies x_t and h_{t-1} in one pass; K2 = 0 for one); bp a
 * packed panel (row k at bp + 16 k, 16 floats, zeros past ncols). start: c's own values when
 * acc, else init (16 values; NULL: zeros). Call it with constant mr (and, on the common path,
 * constant ncols = 16): the unused rows and the masks fold away.
 *
 * With AVX2 and FMA, 6 rows x 2 vectors make twelve accumulators, enough to cover the FMA
 * latency: about 98% of peak on Zen 3 at K = 256.
 */
#ifndef PYNN_TILE_H
#define PYNN_TILE_H

#include <stdint.h>

#define PN_TILE_MR 6
#define PN_TILE_NR 16

#if defined(__AVX2__) && defined(__FMA__) && defined(__GNUC__)
#include <immintrin.h>

static inline __attribute__((always_inline)) void
pn_tile(const int mr, const float *restrict init, int acc, int ncols, const float *restrict bp,
        int64_t K1, const float *restrict a1, int64_t lda1, int64_t K2,
        const float *restrict a2, int64_t lda2, float *restrict c, int64_t ldc) {
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    const __m256i m0 = _mm256_cmpgt_epi32(_mm256_set1_epi32(ncols), lane),
                  m1 = _mm256_cmpgt_epi32(_mm256_set1_epi32(ncols - 8), lane);
    const int full = ncols == PN_TILE_NR;
#define PN_TILE_LOAD(p)                                                                          \
    (full ? _mm256_loadu_ps(p) : _mm256_maskload_ps(p, m0)),                                     \
        (full ? _mm256_loadu_ps((p) + 8) : _mm256_maskload_ps((p) + 8, m1))
#define PN_TILE_START(r, c0, c1)                                                                 \
    __m256 c0 = z0, c1 = z1;                                                                     \
    if (mr > r && acc) {                                                                         \
        __m256 v[2] = {PN_TILE_LOAD(c + r * ldc)};                                               \
        c0 = v[0], c1 = v[1];                                                                    \
    }
#define PN_TILE_FMA(r, c0, c1)                                                                   \
    if (mr > r) {                                                                                \
        __m256 x = _mm256_broadcast_ss(x##r + k);                                                \
        c0 = _mm256_fmadd_ps(x, b0, c0), c1 = _mm256_fmadd_ps(x, b1, c1);                        \
    }
#define PN_TILE_SEGMENT(a, lda, K)                                                               \
    {                                                                                            \
        const float *x0 = a, *x1 = a + (mr > 1 ? lda : 0), *x2 = a + (mr > 2 ? 2 * lda : 0),     \
                    *x3 = a + (mr > 3 ? 3 * lda : 0), *x4 = a + (mr > 4 ? 4 * lda : 0),          \
                    *x5 = a + (mr > 5 ? 5 * lda : 0);                                            \
        for (int64_t k = 0; k < K; k++, bp += PN_TILE_NR) {                                      \
            __m256 b0 = _mm256_loadu_ps(bp), b1 = _mm256_loadu_ps(bp + 8);                      \
            PN_TILE_FMA(0, c00, c01)                                                             \
            PN_TILE_FMA(1, c10, c11)                                                             \
            PN_TILE_FMA(2, c20, c21)                                                             \
            PN_TILE_FMA(3, c30, c31)                                                             \
            PN_TILE_FMA(4, c40, c41)                                                             \
            PN_TILE_FMA(5, c50, c51)                                                             \
        }                                                                                        \
    }
#define PN_TILE_STORE(r, c0, c1)                                                                 \
    if (mr > r) {                                                                                \
        if (full) _mm256_storeu_ps(c + r * ldc, c0), _mm256_storeu_ps(c + r * ldc + 8, c1);      \
        else _mm256_maskstore_ps(c + r * ldc, m0, c0),                                           \
             _mm256_maskstore_ps(c + r * ldc + 8, m1, c1);                                       \
    }
    __m256 z0 = _mm256_setzero_ps(), z1 = z0;
    if (init && !acc) {
        __m256 v[2] = {PN_TILE_LOAD(init)};
        z0 = v[0], z1 = v[1];
    }
    PN_TILE_START(0, c00, c01)
    PN_TILE_START(1, c10, c11)
    PN_TILE_START(2, c20, c21)
    PN_TILE_START(3, c30, c31)
    PN_TILE_START(4, c40, c41)
    PN_TILE_START(5, c50, c51)
    PN_TILE_SEGMENT(a1, lda1, K1)
    PN_TILE_SEGMENT(a2, lda2, K2)
    PN_TILE_STORE(0, c00, c01)
    PN_TILE_STORE(1, c10, c11)
    PN_TILE_STORE(2, c20, c21)
    PN_TILE_STORE(3, c30, c31)
    PN_TILE_STORE(4, c40, c41)
    PN_TILE_STORE(5, c50, c51)
#undef PN_TILE_LOAD
#undef PN_TILE_START
#undef PN_TILE_FMA
#undef PN_TILE_SEGMENT
#undef PN_TILE_STORE
}
#else
/* the portable kernel: the inner loops over the 16 columns vectorise */
static inline void pn_tile(const int mr, const float *restrict init, int acc, int ncols,
                           const float *restrict bp, int64_t K1, const float *restrict a1,
                           int64_t lda1, int64_t K2, const float *restrict a2, int64_t lda2,
                           float *restrict c, int64_t ldc) {
    float s[PN_TILE_MR][PN_TILE_NR];
    for (int r = 0; r < mr; r++)
        for (int j = 0; j < PN_TILE_NR; j++) {
            const float *start = acc ? c + r * ldc : init;
            s[r][j] = start && j < ncols ? start[j] : 0.0f;
        }
    for (int64_t k = 0; k < K1 + K2; k++)
        for (int r = 0; r < mr; r++) {
            const float x = k < K1 ? a1[r * lda1 + k] : a2[r * lda2 + k - K1];
            for (int j = 0; j < PN_TILE_NR; j++) s[r][j] += x * bp[k * PN_TILE_NR + j];
        }
    for (int r = 0; r < mr; r++)
        for (int j = 0; j < ncols; j++) c[r * ldc + j] = s[r][j];
}
#endif

#endif /* PYNN_TILE_H */
