/*
 * gemm_avx512.c: matrix products on AVX-512, chosen at run time (pn_cpu_has; the functions here
 * are compiled for AVX-512 whatever the build's own flags): float32, and mixed precision,
 * bfloat16 operands summed in float32.
 *
 * Float32 (pn_gemm_avx512_product, where the CPU has AVX-512): a 12 x 32 register tile of
 * 24 zmm accumulators, on the same blocking and threads as the bfloat16 product below. On
 * Intel's cores with two 512-bit FMA units it has twice the AVX2 tile's (tile.h) peak.
 *
 *   C (M, N) = [C +] bf16(op(A)) bf16(op(B))       or starting from a bias row instead of C
 *
 * Keras's "mixed_bfloat16" policy: a layer's matrix products read its inputs and weights rounded
 * to bfloat16 (to nearest, ties to even) and sum in float32; the weights stay float32. pn_gemm
 * comes here when the node that runs asked for it (pn_gemm_bf16, set by the plan per node).
 *
 * With AVX512-BF16 (pn_cpu_has, read at run time; the functions below are compiled for it
 * whatever the build's own flags): both operands are packed as bfloat16 pairs of consecutive k,
 * what VDPBF16PS reads, and a 12 x 32 register tile (24 accumulators) sums 2 products per lane
 * per instruction, twice the float32 tile's work per instruction, from operands half the bytes.
 * Blocked as gemm.c is: op(B) packed once by all threads into panels of 32 columns, op(A) packed
 * per thread in blocks of MC rows x KCP pairs (L2), a panel's KCP pairs (16 KB) in L1. Threads
 * split C's rows; a product with too few rows (a weight gradient: C is the weight, k the batch)
 * splits k instead and adds the threads' partial sums. Each element's sum runs in the order of k
 * within a thread's range, so results depend on the thread count only when k is split.
 *
 * Without it, the operands are rounded to bfloat16 into float32 copies and the float32 product
 * runs: the same rounding, the sums in another order.
 */
#ifdef _OPENMP
#include <omp.h>
#endif

#include "internal.h"

_Thread_local int pn_gemm_bf16;

/* Products below this many multiply-adds run on one thread. */
#define PAR_MIN (1 << 19)

float pn_bf16_round(float x) {
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    if ((u & 0x7fffffffu) > 0x7f800000u) u |= 0x00400000u; /* NaN: stays a (quiet) NaN */
    else u += 0x7fffu + ((u >> 16) & 1u);                  /* to nearest, ties to even */
    u &= 0xffff0000u;
    memcpy(&x, &u, sizeof x);
    return x;
}

/* dst (rows, cols), tightly packed, = bf16 rounding of src (rows, cols) with leading dim ld */
static void round_copy(float *restrict dst, const float *restrict src, int64_t rows, int64_t cols,
                       int64_t ld) {
    PN_FOR(rows * cols > PN_PAR_MIN, r, rows, {
        const float *restrict s = src + r * ld;
        float *restrict d = dst + r * cols;
        for (int64_t j = 0; j < cols; j++) d[j] = pn_bf16_round(s[j]);
    });
}

/* The fallback: rounded copies of the operands, then the float32 product. 0 when the copies
 * cannot be allocated (the caller then runs the float32 product on the operands as they are). */
static int emulated(int ta, int tb, int64_t M, int64_t N, int64_t K, const float *A, int64_t lda,
                    const float *B, int64_t ldb, int acc, const float *bias, float *C,
                    int64_t ldc) {
    float *a = malloc((size_t)(M * K) * sizeof(float)), *b = malloc((size_t)(K * N) * sizeof(float));
    if (!a || !b) {
        free(a), free(b);
        return 0;
    }
    /* op(A) is M x K: A is M rows of K (ta 0) or K rows of M (ta 1); likewise B */
    round_copy(a, A, ta ? K : M, ta ? M : K, lda);
    round_copy(b, B, tb ? N : K, tb ? K : N, ldb);
    pn_gemm_bf16 = 0;
    if (bias && !acc) pn_gemm_bias(M, N, K, a, K, b, N, bias, C, ldc); /* ta = tb = 0 here */
    else pn_gemm(ta, tb, M, N, K, 1.0f, a, ta ? M : K, b, tb ? K : N, acc ? 1.0f : 0.0f, C, ldc);
    pn_gemm_bf16 = 1;
    free(a), free(b);
    return 1;
}

#if (defined(__x86_64__) || defined(__i386__)) && defined(__GNUC__) && !defined(__clang__)
#define PN_HAVE_AVX512_KERNELS 1 /* and the float32 one */
#include <immintrin.h>

#define TARGET __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx512bf16")))
#define MR 12   /* rows of C in the register tile */
#define NR 32   /* columns of C in the register tile: a panel of packed B */
#define KCP 128 /* pairs of k per block: a panel's block is KCP x 32 pairs, 16 KB, in L1 */
#define MC 120  /* rows of an A block: MC x KCP pairs, 60 KB, in L2 (a multiple of MR) */
#define NCP 16  /* panels per column block: KCP x 512 pairs, 256 KB, in L2 */

static inline __mmask16 lanes(int64_t n) {
    return n >= 16 ? (__mmask16)0xffff : n <= 0 ? (__mmask16)0 : (__mmask16)((1u << n) - 1);
}

/* the first n of 16 floats at x (zeros past n), as 16 bfloat16 */
TARGET static inline __m256i bf16x16(const float *x, int64_t n) {
    __m512 v = n >= 16 ? _mm512_loadu_ps(x) : _mm512_maskz_loadu_ps(lanes(n), x);
    return (__m256i)_mm512_cvtneps_pbh(v);
}

/* cap pairs (cap <= 32) at out: pair j = (r0[j], r1[j]) for j < w, zeros past w, and past r0's
 * row when r1 is NULL (k beyond K): two rows of floats interleaved as bfloat16 */
TARGET static void pair_rows(const float *r0, const float *r1, int64_t w, uint16_t *out, int cap) {
    static const short order[32] = {0, 16, 1, 17, 2,  18, 3,  19, 4,  20, 5,  21, 6,  22, 7,  23,
                                    8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31};
    const __m512i idx = _mm512_loadu_si512(order);
    for (int h = 0; h < 2 && 16 * h < cap; h++) {
        const int64_t n = w - 16 * h;
        const __m256i lo = bf16x16(r0 + 16 * h, n),
                      hi = r1 ? bf16x16(r1 + 16 * h, n) : _mm256_setzero_si256();
        const __m512i v =
            _mm512_permutexvar_epi16(idx, _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1));
        const int keep = cap - 16 * h >= 16 ? 32 : 2 * (cap - 16 * h);
        _mm512_mask_storeu_epi16(out + 32 * h, keep == 32 ? 0xffffffffu : (1u << keep) - 1, v);
    }
}

/* np pairs of one row of floats, from x[k0] (zeros past K), as 32-bit pairs at out[q stride] */
TARGET static void row_pairs(const float *x, int64_t k0, int64_t K, int64_t np, uint32_t *out,
                             int64_t stride) {
    for (int64_t q = 0; q < np; q += 16) {
        const int64_t k = k0 + 2 * q, n = K - k;
        uint32_t t[16];
        _mm256_storeu_si256((__m256i *)t, bf16x16(x + k, n));
        _mm256_storeu_si256((__m256i *)(t + 8), bf16x16(x + k + 16, n - 16));
        const int64_t m = np - q < 16 ? np - q : 16;
        for (int64_t j = 0; j < m; j++) out[(q + j) * stride] = t[j];
    }
}

/* Panel p of op(B): K2 pairs of 32 columns (64 bfloat16 each), zeros past N and K. */
TARGET static void pack_b(int tb, int64_t p, int64_t N, int64_t K, const float *B, int64_t ldb,
                          uint32_t *panel32) {
    uint16_t *panel = (uint16_t *)panel32;
    const int64_t K2 = (K + 1) / 2, j0 = p * NR, w = N - j0 < NR ? N - j0 : NR;
    if (!tb) { /* op(B) = B (K, N): pair q is rows 2q and 2q+1 */
        for (int64_t q = 0; q < K2; q++)
            pair_rows(B + 2 * q * ldb + j0, 2 * q + 1 < K ? B + (2 * q + 1) * ldb + j0 : NULL, w,
                      panel + 64 * q, NR);
        return;
    }
    /* op(B) = B^T, B (N, K): a column's pairs are adjacent in B's row */
    if (w < NR) memset(panel, 0, (size_t)(K2 * 64) * sizeof(uint16_t));
    for (int64_t j = 0; j < w; j++)
        row_pairs(B + (j0 + j) * ldb, 0, K, K2, (uint32_t *)panel + j, NR);
}

/* Rows i0..i0+mc of op(A), pairs q0..q0+kp, padded with zero rows to whole tiles of MR. A (M, K)
 * (ta 0): row by row, pair q of row r at ap[r KCP + q - q0], a row's pairs being its floats in
 * order; A^T (ta 1, A (K, M)): in slivers of MR rows, pair q of row r at ap[s kp MR + (q - q0)
 * MR + r % MR] for r's sliver s, a pair of rows of A giving MR consecutive pairs. Either way a
 * pass of vector loads, conversions and stores. */
TARGET static void pack_a(int ta, int64_t i0, int64_t mc, int64_t q0, int64_t kp, int64_t K,
                          const float *A, int64_t lda, uint32_t *ap) {
    const int64_t rows = (mc + MR - 1) / MR * MR;
    if (!ta) {
        const int64_t k0 = 2 * q0;
        for (int64_t r = 0; r < mc; r++) {
            const float *x = A + (i0 + r) * lda;
            uint32_t *o = ap + r * KCP;
            for (int64_t q = 0; q < kp; q += 16) {
                const int64_t k = k0 + 2 * q, n = K - k;
                const __m512i v = _mm512_inserti64x4(_mm512_castsi256_si512(bf16x16(x + k, n)),
                                                     bf16x16(x + k + 16, n - 16), 1);
                if (kp - q >= 16) _mm512_storeu_si512(o + q, v);
                else _mm512_mask_storeu_epi32(o + q, lanes(kp - q), v);
            }
        }
        for (int64_t r = mc; r < rows; r++) memset(ap + r * KCP, 0, (size_t)kp * sizeof(uint32_t));
        return;
    }
    for (int64_t s = 0; s * MR < mc; s++) {
        const int64_t mr = mc - s * MR < MR ? mc - s * MR : MR, i = i0 + s * MR;
        uint32_t *sl = ap + s * kp * MR;
        for (int64_t q = q0; q < q0 + kp; q++)
            pair_rows(A + 2 * q * lda + i, 2 * q + 1 < K ? A + (2 * q + 1) * lda + i : NULL, mr,
                      (uint16_t *)(sl + (q - q0) * MR), MR);
    }
}

/* c (mr, w) = start + a (MR rows of kp pairs, pair q of row r at a[q sq + r sr]) b (kp pairs of
 * 32 columns); start: c itself (acc), else init (32 values, NULL: zeros). Rows past mr are
 * computed (from zeros) and not stored. */
TARGET static inline __attribute__((always_inline)) void
tile(const int64_t sq, const int64_t sr, int64_t mr, int64_t w, int64_t kp,
     const uint32_t *restrict a, const uint16_t *restrict b, float *restrict c, int64_t ldc,
     int acc, const float *init) {
    const __mmask16 m0 = lanes(w), m1 = lanes(w - 16);
    __m512 s[MR][2], z0 = _mm512_setzero_ps(), z1 = z0;
    if (!acc && init) z0 = _mm512_maskz_loadu_ps(m0, init), z1 = _mm512_maskz_loadu_ps(m1, init + 16);
#pragma GCC unroll 12
    for (int r = 0; r < MR; r++) {
        s[r][0] = z0, s[r][1] = z1;
        if (acc && r < mr)
            s[r][0] = _mm512_maskz_loadu_ps(m0, c + r * ldc),
            s[r][1] = _mm512_maskz_loadu_ps(m1, c + r * ldc + 16);
    }
    for (int64_t q = 0; q < kp; q++, a += sq, b += 64) {
        const __m512bh b0 = (__m512bh)_mm512_loadu_si512(b),
                       b1 = (__m512bh)_mm512_loadu_si512(b + 32);
#pragma GCC unroll 12
        for (int r = 0; r < MR; r++) {
            const __m512bh x = (__m512bh)_mm512_set1_epi32((int)a[r * sr]);
            s[r][0] = _mm512_dpbf16_ps(s[r][0], x, b0);
            s[r][1] = _mm512_dpbf16_ps(s[r][1], x, b1);
        }
    }
#pragma GCC unroll 12
    for (int r = 0; r < MR; r++)
        if (r < mr)
            _mm512_mask_storeu_ps(c + r * ldc, m0, s[r][0]),
            _mm512_mask_storeu_ps(c + r * ldc + 16, m1, s[r][1]);
}

/* the two layouts of pack_a: rows (pair q of row r at a[q + r KCP]) and slivers (a[q MR + r]) */
TARGET static void tile_rows(int64_t mr, int64_t w, int64_t kp, const uint32_t *a,
                             const uint32_t *b, float *c, int64_t ldc, int acc, const float *init) {
    tile(1, KCP, mr, w, kp, a, (const uint16_t *)b, c, ldc, acc, init);
}
TARGET static void tile_slivers(int64_t mr, int64_t w, int64_t kp, const uint32_t *a,
                                const uint32_t *b, float *c, int64_t ldc, int acc,
                                const float *init) {
    tile(MR, 1, mr, w, kp, a, (const uint16_t *)b, c, ldc, acc, init);
}

/* ---- float32: a unit is one k ---- */

/* Panel p of op(B): K rows of 32 floats, zeros past N. */
TARGET static void pack_b32(int tb, int64_t p, int64_t N, int64_t K, const float *B,
                            int64_t ldb, uint32_t *panel) {
    const int64_t j0 = p * NR, w = N - j0 < NR ? N - j0 : NR;
    float *o = (float *)panel;
    if (!tb) {
        for (int64_t k = 0; k < K; k++) {
            const float *x = B + k * ldb + j0;
            _mm512_storeu_ps(o + 32 * k, _mm512_maskz_loadu_ps(lanes(w), x));
            _mm512_storeu_ps(o + 32 * k + 16, _mm512_maskz_loadu_ps(lanes(w - 16), x + 16));
        }
        return;
    }
    if (w < NR) memset(o, 0, (size_t)(K * NR) * sizeof(float));
    for (int64_t j = 0; j < w; j++) {
        const float *restrict x = B + (j0 + j) * ldb;
        for (int64_t k = 0; k < K; k++) o[32 * k + j] = x[k];
    }
}

/* Rows i0..i0+mc of op(A), k from q0 to q0+kp, in pack_a's two layouts (a unit: one float) */
TARGET static void pack_a32(int ta, int64_t i0, int64_t mc, int64_t q0, int64_t kp, int64_t K,
                            const float *A, int64_t lda, uint32_t *ap) {
    (void)K;
    float *o = (float *)ap;
    const int64_t rows = (mc + MR - 1) / MR * MR;
    if (!ta) {
        for (int64_t r = 0; r < mc; r++)
            memcpy(o + r * KCP, A + (i0 + r) * lda + q0, (size_t)kp * sizeof(float));
        for (int64_t r = mc; r < rows; r++) memset(o + r * KCP, 0, (size_t)kp * sizeof(float));
        return;
    }
    for (int64_t s = 0; s * MR < mc; s++) {
        const int64_t mr = mc - s * MR < MR ? mc - s * MR : MR;
        float *sl = o + s * kp * MR;
        for (int64_t q = q0; q < q0 + kp; q++)
            _mm512_mask_storeu_ps(sl + (q - q0) * MR, lanes(MR),
                                  _mm512_maskz_loadu_ps(lanes(mr), A + q * lda + i0 + s * MR));
    }
}

TARGET static inline __attribute__((always_inline)) void
tile32(const int64_t sq, const int64_t sr, int64_t mr, int64_t w, int64_t kp,
       const float *restrict a, const float *restrict b, float *restrict c, int64_t ldc, int acc,
       const float *init) {
    const __mmask16 m0 = lanes(w), m1 = lanes(w - 16);
    __m512 s[MR][2], z0 = _mm512_setzero_ps(), z1 = z0;
    if (!acc && init) z0 = _mm512_maskz_loadu_ps(m0, init), z1 = _mm512_maskz_loadu_ps(m1, init + 16);
#pragma GCC unroll 12
    for (int r = 0; r < MR; r++) {
        s[r][0] = z0, s[r][1] = z1;
        if (acc && r < mr)
            s[r][0] = _mm512_maskz_loadu_ps(m0, c + r * ldc),
            s[r][1] = _mm512_maskz_loadu_ps(m1, c + r * ldc + 16);
    }
    for (int64_t q = 0; q < kp; q++, a += sq, b += 32) {
        const __m512 b0 = _mm512_loadu_ps(b), b1 = _mm512_loadu_ps(b + 16);
#pragma GCC unroll 12
        for (int r = 0; r < MR; r++) {
            const __m512 x = _mm512_set1_ps(a[r * sr]);
            s[r][0] = _mm512_fmadd_ps(x, b0, s[r][0]);
            s[r][1] = _mm512_fmadd_ps(x, b1, s[r][1]);
        }
    }
#pragma GCC unroll 12
    for (int r = 0; r < MR; r++)
        if (r < mr)
            _mm512_mask_storeu_ps(c + r * ldc, m0, s[r][0]),
            _mm512_mask_storeu_ps(c + r * ldc + 16, m1, s[r][1]);
}

TARGET static void tile32_rows(int64_t mr, int64_t w, int64_t kp, const uint32_t *a,
                               const uint32_t *b, float *c, int64_t ldc, int acc,
                               const float *init) {
    tile32(1, KCP, mr, w, kp, (const float *)a, (const float *)b, c, ldc, acc, init);
}
TARGET static void tile32_slivers(int64_t mr, int64_t w, int64_t kp, const uint32_t *a,
                                  const uint32_t *b, float *c, int64_t ldc, int acc,
                                  const float *init) {
    tile32(MR, 1, mr, w, kp, (const float *)a, (const float *)b, c, ldc, acc, init);
}

/* ---- the products' shared blocking and threads ---- */

/* A kind of product: how many k make one packed unit (32 bits: a float, or a bfloat16 pair),
 * and its packing and tiles (op(B)'s panels: 32 units per row of units; pack_a's layouts). */
typedef struct {
    int64_t unit;
    void (*pack_b)(int tb, int64_t p, int64_t N, int64_t K, const float *B, int64_t ldb,
                   uint32_t *panel);
    void (*pack_a)(int ta, int64_t i0, int64_t mc, int64_t q0, int64_t kp, int64_t K,
                   const float *A, int64_t lda, uint32_t *ap);
    void (*rows)(int64_t mr, int64_t w, int64_t kp, const uint32_t *a, const uint32_t *b,
                 float *c, int64_t ldc, int acc, const float *init);
    void (*slivers)(int64_t mr, int64_t w, int64_t kp, const uint32_t *a, const uint32_t *b,
                    float *c, int64_t ldc, int acc, const float *init);
} kind;

/* out rows i0..i1 (of C's M) = [out +] op(A) op(B) over pairs qa..qb, from bias when not acc */
static void blocks(const kind *kd, int ta, int64_t i0, int64_t i1, int64_t qa, int64_t qb,
                   int64_t N, int64_t K, const float *A, int64_t lda, const uint32_t *bp,
                   uint32_t *ap, int acc, const float *bias, float *out, int64_t ldo) {
    const int64_t np = (N + NR - 1) / NR, KU = (K + kd->unit - 1) / kd->unit;
    for (int64_t jc = 0; jc < np; jc += NCP) {
        const int64_t jn = jc + NCP < np ? jc + NCP : np;
        for (int64_t q0 = qa; q0 < qb; q0 += KCP) {
            const int64_t kp = qb - q0 < KCP ? qb - q0 : KCP;
            const int first = q0 == qa && !acc;
            for (int64_t ic = i0; ic < i1; ic += MC) {
                const int64_t mc = i1 - ic < MC ? i1 - ic : MC;
                kd->pack_a(ta, ic, mc, q0, kp, K, A, lda, ap);
                for (int64_t p = jc; p < jn; p++) {
                    const int64_t w = N - p * NR < NR ? N - p * NR : NR;
                    const uint32_t *b = bp + (p * KU + q0) * NR;
                    for (int64_t s = 0; s * MR < mc; s++) {
                        const int64_t mr = mc - s * MR < MR ? mc - s * MR : MR;
                        float *c = out + (ic + s * MR) * ldo + p * NR;
                        const float *init = first && bias ? bias + p * NR : NULL;
                        if (ta) kd->slivers(mr, w, kp, ap + s * kp * MR, b, c, ldo, !first, init);
                        else kd->rows(mr, w, kp, ap + s * MR * KCP, b, c, ldo, !first, init);
                    }
                }
            }
        }
    }
}

static const kind bf16_kind = {2, pack_b, pack_a, tile_rows, tile_slivers};
static const kind f32_kind = {1, pack_b32, pack_a32, tile32_rows, tile32_slivers};

/* C = [C +] op(A) op(B) (or from bias) as `kd` computes it; 0 when its buffers cannot be had */
static int run(const kind *kd, int ta, int tb, int64_t M, int64_t N, int64_t K, const float *A,
               int64_t lda, const float *B, int64_t ldb, int acc, const float *bias, float *C,
               int64_t ldc) {
    const int64_t np = (N + NR - 1) / NR, K2 = (K + kd->unit - 1) / kd->unit,
                  tiles = (M + MR - 1) / MR;
    int nt = M * N * K < PAR_MIN ? 1 : pn_threads;
    /* too few rows for every thread to have two tiles: split k (by whole blocks) instead */
    const int ksplit = nt > 1 && tiles < 2 * nt;
    if (ksplit && K2 < 2 * KCP * nt) nt = 1;
    const int split = ksplit && nt > 1;
    uint32_t *bp = aligned_alloc(64, (size_t)(np * K2 * NR) * sizeof(uint32_t));
    uint32_t *ap = aligned_alloc(64, (size_t)(nt * MC * KCP) * sizeof(uint32_t));
    float *part = split ? malloc((size_t)((nt - 1) * M * N) * sizeof(float)) : NULL;
    if (!bp || !ap || (split && !part)) {
        free(bp), free(ap), free(part);
        return 0;
    }
#pragma omp parallel num_threads(nt) if (nt > 1)
    {
        int t = 0, n = 1;
#ifdef _OPENMP
        t = omp_get_thread_num(), n = omp_get_num_threads();
#endif
        for (int64_t p = np * t / n; p < np * (t + 1) / n; p++)
            kd->pack_b(tb, p, N, K, B, ldb, bp + p * K2 * NR);
#pragma omp barrier
        uint32_t *mine = ap + (int64_t)t * MC * KCP;
        if (!split || n == 1) { /* rows by whole tiles; all of k (n == 1: a smaller team) */
            const int64_t i0 = tiles * t / n * MR, i1e = tiles * (t + 1) / n * MR,
                          i1 = i1e < M ? i1e : M;
            blocks(kd, ta, i0, i1, 0, K2, N, K, A, lda, bp, mine, acc, bias, C, ldc);
        } else { /* every row; k's pairs by whole blocks; partial sums of threads 1.. apart */
            const int64_t nb = (K2 + KCP - 1) / KCP, qa = nb * t / n * KCP,
                          qe = nb * (t + 1) / n * KCP, qb = qe < K2 ? qe : K2;
            if (t == 0) blocks(kd, ta, 0, M, qa, qb, N, K, A, lda, bp, mine, acc, bias, C, ldc);
            else blocks(kd, ta, 0, M, qa, qb, N, K, A, lda, bp, mine, 0, NULL,
                        part + (t - 1) * M * N, N);
#pragma omp barrier
            for (int64_t r = M * t / n; r < M * (t + 1) / n; r++)
                for (int u = 1; u < n; u++) {
                    const float *restrict src = part + ((u - 1) * M + r) * N;
                    float *restrict dst = C + r * ldc;
                    for (int64_t j = 0; j < N; j++) dst[j] += src[j];
                }
        }
    }
    free(bp), free(ap), free(part);
    return 1;
}
#endif

int pn_gemm_bf16_product(int ta, int tb, int64_t M, int64_t N, int64_t K, const float *A,
                         int64_t lda, const float *B, int64_t ldb, int acc, const float *bias,
                         float *C, int64_t ldc) {
    /* a product of few terms (a convolution over one input channel: 9) costs less than
     * converting its operands: it stays float32 */
    if (M <= 0 || N <= 0 || K < PN_BF16_MIN_K) return 0;
#ifdef PN_HAVE_AVX512_KERNELS
    if (pn_cpu_has(PN_CPU_AVX512BF16) &&
        run(&bf16_kind, ta, tb, M, N, K, A, lda, B, ldb, acc, bias, C, ldc))
        return 1;
#endif
    return emulated(ta, tb, M, N, K, A, lda, B, ldb, acc, bias, C, ldc);
}

int pn_gemm_avx512 = 1;

int pn_gemm_avx512_product(int ta, int tb, int64_t M, int64_t N, int64_t K, const float *A,
                           int64_t lda, const float *B, int64_t ldb, int acc, const float *bias,
                           float *C, int64_t ldc) {
#ifdef PN_HAVE_AVX512_KERNELS
    /* where 512-bit FMAs run at half rate (Zen 4) the AVX2 tile is as fast: it stays */
    const unsigned need = pn_gemm_avx512 == 2 ? PN_CPU_AVX512 : PN_CPU_AVX512 | PN_CPU_FMA512;
    if (!pn_gemm_avx512 || !pn_cpu_has(need) || N <= 0 || K <= 0) return 0;
    if (M < 4 * MR) return 0; /* too few rows to share: the other paths split k or columns */
    /* columns padded to whole panels of 32 cost their share: at most an eighth */
    if (((N + NR - 1) / NR * NR - N) * 8 > N) return 0;
    return run(&f32_kind, ta, tb, M, N, K, A, lda, B, ldb, acc, bias, C, ldc);
#else
    (void)ta, (void)tb, (void)M, (void)N, (void)K, (void)A, (void)lda, (void)B, (void)ldb;
    (void)acc, (void)bias, (void)C, (void)ldc;
    return 0;
#endif
}
