/*
 * gemm.c: the core's matrix product, on the core's own threads.
 *
 *   C (M, N) = alpha op(A) op(B) + beta C        row-major, cblas_sgemm's arguments
 *
 * One pool of threads: OpenBLAS runs single-threaded and the core's OpenMP threads split a large
 * product between them, so OpenBLAS's pthreads and OpenMP's never wait for the same cores (on
 * two cores, two pools spinning in turn made steps several times slower), and a block's result
 * does not depend on what the other threads do.
 *
 * A B and A B^T with alpha 1 and beta 0 or 1 (a dense layer's output and its input gradient)
 * run on the core's own kernel where AVX2 and FMA are there: a 6 x 16 register tile (twelve
 * accumulators) over B packed once, by both threads together, into panels of 16 columns; the
 * threads then split the rows of C. Blocked as OpenBLAS is (a KC x NC block of B in L2, a panel's
 * KC rows in L1, MC rows of A in L2), but A is read where it lies: OpenBLAS, called per thread,
 * packs A and packs all of B again in each thread, which at the widths of a small transformer
 * (K = 128 to 512, thousands of rows) is a large part of the work. The tile can also start from
 * a bias row (pn_gemm_bias), which saves the dense layer a pass that wrote the bias into every
 * row of C before the product read it back. Each element of C is summed by one thread in the
 * order of k, so results do not depend on the thread count. Anything else (A^T B, where
 * OpenBLAS was faster, widths far from whole panels, alpha != 1, other betas, small products, a
 * build without AVX2) goes to OpenBLAS.
 *
 * Before both: a node of mixed precision sends its products to pn_gemm_bf16_product, and on CPUs
 * whose 512-bit FMAs run at full rate (Intel's AVX-512 cores, not Zen 4) the float32 products
 * these kernels would take go to gemm_avx512.c's 12 x 32 tile, chosen at run time.
 */
#ifdef _OPENMP
#include <omp.h>
#endif

#include "internal.h"

/* Products below this many multiply-adds run on one thread: waking a second costs more. */
#define GEMM_PAR_MIN (1 << 19)
/* Blocks are multiples of this many rows or columns (the SGEMM kernels' register tile). */
#define GEMM_ALIGN 16

static void one(int ta, int tb, int64_t M, int64_t N, int64_t K, float alpha, const float *A,
                int64_t lda, const float *B, int64_t ldb, float beta, float *C, int64_t ldc) {
    pn_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
             (int)M, (int)N, (int)K, alpha, A, (int)lda, B, (int)ldb, beta, C, (int)ldc);
}


/* thread t of the nt that OpenMP granted the region */
static void thread_of(int *t, int *nt) {
#ifdef _OPENMP
    *t = omp_get_thread_num(), *nt = omp_get_num_threads();
#else
    *t = 0, *nt = 1;
#endif
}

/* 0: every product goes to OpenBLAS (the C tests compare the two paths) */
int pn_gemm_kernels = 1;
/* products the own kernels ran (the C tests check that a shape took them) */
_Atomic int64_t pn_gemm_own_runs;

#if defined(__AVX2__) && defined(__FMA__) && defined(__GNUC__)
#include "tile.h"

#define MR PN_TILE_MR /* rows of C in a register tile */
#define NR PN_TILE_NR /* columns of C in a register tile: a panel of packed B */
#define KC 256  /* k per block: a panel's slice (16 KB) and a tile's rows of A (6 KB) in L1 */
#define NC 256  /* columns of a B block: KC x NC floats (256 KB) stay in L2 */
#define MC 96   /* rows of A per block: MC x KC floats (96 KB) stay in L2 */

/* tile.h's kernel over one segment of A: c (mr, NR) = [c +] a (mr, K) b, on c's first ncols
 * columns, from bias instead of zeros when not acc; mr < MR rows each their own instance */
static void kern_rows(int mr, int64_t K, const float *a, int64_t lda, const float *b, float *c,
                      int64_t ldc, int acc, int ncols, const float *bias) {
    switch (mr) {
    case 1: pn_tile(1, bias, acc, ncols, b, K, a, lda, 0, a, lda, c, ldc); break;
    case 2: pn_tile(2, bias, acc, ncols, b, K, a, lda, 0, a, lda, c, ldc); break;
    case 3: pn_tile(3, bias, acc, ncols, b, K, a, lda, 0, a, lda, c, ldc); break;
    case 4: pn_tile(4, bias, acc, ncols, b, K, a, lda, 0, a, lda, c, ldc); break;
    case 5: pn_tile(5, bias, acc, ncols, b, K, a, lda, 0, a, lda, c, ldc); break;
    default: pn_tile(MR, bias, acc, ncols, b, K, a, lda, 0, a, lda, c, ldc); break;
    }
}

/* C = [C +] A op(B), A (M, K) row-major; op(B) (K, N) is B (tb 0) or B^T (tb 1, B (N, K)). B is
 * packed into panels of NR columns (panel p at bp + p K NR, row k of it at k NR, zeros past N),
 * the threads sharing the packing (unless pack is 0: bp holds it already), then each runs its
 * rows of C. */
static void own_ab(int tb, int64_t M, int64_t N, int64_t K, const float *A, int64_t lda,
                   const float *B, int64_t ldb, int acc, const float *bias, float *C,
                   int64_t ldc, float *bp, int nt, int pack) {
    const int64_t np = (N + NR - 1) / NR;
#pragma omp parallel num_threads(nt) if (nt > 1)
    {
        int t, n;
        thread_of(&t, &n);
        for (int64_t p = np * t / n; pack && p < np * (t + 1) / n; p++) {
            float *restrict o = bp + p * K * NR;
            const int64_t w = N - p * NR < NR ? N - p * NR : NR;
            if (w < NR) memset(o, 0, (size_t)(K * NR) * sizeof(float));
            if (!tb)
                for (int64_t k = 0; k < K; k++)
                    memcpy(o + k * NR, B + k * ldb + p * NR, (size_t)w * sizeof(float));
            else
                for (int64_t j = 0; j < w; j++) {
                    const float *restrict src = B + (p * NR + j) * ldb;
                    for (int64_t k = 0; k < K; k++) o[k * NR + j] = src[k];
                }
        }
#pragma omp barrier
        const int64_t tiles = (M + MR - 1) / MR, i0 = tiles * t / n * MR,
                      i1 = tiles * (t + 1) / n * MR < M ? tiles * (t + 1) / n * MR : M;
        for (int64_t jc = 0; jc < np; jc += NC / NR) {
            const int64_t jn = jc + NC / NR < np ? jc + NC / NR : np;
            for (int64_t k0 = 0; k0 < K; k0 += KC) {
                const int64_t kc = K - k0 < KC ? K - k0 : KC;
                const int first = !acc && k0 == 0;
                for (int64_t ic = i0; ic < i1; ic += MC) {
                    const int64_t ie = ic + MC < i1 ? ic + MC : i1;
                    for (int64_t p = jc; p < jn; p++) {
                        const int w = (int)(N - p * NR < NR ? N - p * NR : NR);
                        const float *b = bp + p * K * NR + k0 * NR;
                        for (int64_t i = ic; i < ie; i += MR) {
                            const int mr = (int)(ie - i < MR ? ie - i : MR);
                            const float *a = A + i * lda + k0;
                            float *c = C + i * ldc + p * NR;
                            const float *bz = first && bias ? bias + p * NR : NULL;
                            if (mr == MR && w == NR)
                                pn_tile(MR, bz, !first, NR, b, kc, a, lda, 0, a, lda, c, ldc);
                            else kern_rows(mr, kc, a, lda, b, c, ldc, !first, w, bz);
                        }
                    }
                }
            }
        }
    }
}

/* Products of more multiply-adds than this, when polled, answer an interrupt between blocks of
 * rows of about this many (17 GFLOP: about 0.1 s on two cores; fewer rows a block would read
 * packed B from memory again too often). A variable, so the C tests can make blocks small. */
int64_t pn_gemm_poll_macs = INT64_C(1) << 33;
#define POLL_MACS pn_gemm_poll_macs

/* Runs the product on the own kernels when it is one of theirs: 1 when it ran; 0 when it is not
 * (or the packed B cannot be allocated: then OpenBLAS runs it, which needs no memory of ours);
 * with `polled`, B is packed once and C's rows run in blocks with pn_poll_interrupt() between,
 * and PN_EINTR (C partly written) when it says stop. */
static int own(int ta, int tb, int64_t M, int64_t N, int64_t K, float alpha, const float *A,
               int64_t lda, const float *B, int64_t ldb, float beta, const float *bias, float *C,
               int64_t ldc, int polled) {
    if (alpha != 1.0f || (beta != 0.0f && beta != 1.0f) || K <= 0 ||
        M * N * K < GEMM_PAR_MIN || !pn_gemm_kernels)
        return 0;
    if (ta || M < 4 * MR) return 0; /* A^T B: OpenBLAS was faster than this kernel reading A^T */
    const int64_t np = (N + NR - 1) / NR;
    /* columns padded to whole panels cost their share: past a sixteenth of N (N = 65: 15 of
     * 80; N = 100: 12 of 112), OpenBLAS was as fast or faster */
    if ((np * NR - N) * 16 > N) return 0;
    const int acc = beta != 0.0f;
    /* not pn_aligned_alloc: a failed allocation here is no error (OpenBLAS runs the product),
     * so the fault tests' count of the core's allocations leaves it out */
    float *bp = aligned_alloc(64, (size_t)(np * K * NR) * sizeof(float));
    if (!bp) return 0;
    int64_t per = M, rc = 1;
    if (polled && M * N * K > POLL_MACS) { /* whole blocks of MC rows, at least one */
        per = POLL_MACS / (N * K) / MC * MC;
        per = per < MC ? MC : per;
    }
    for (int64_t lo = 0; lo < M && rc == 1; lo += per) {
        if (lo > 0 && pn_poll_interrupt()) {
            rc = PN_EINTR;
            break;
        }
        const int64_t rows = M - lo < per ? M - lo : per, tiles = (rows + MR - 1) / MR;
        const int nt = pn_threads < tiles / 2 ? pn_threads : (int)(tiles / 2);
        own_ab(tb, rows, N, K, A + lo * lda, lda, B, ldb, acc, bias, C + lo * ldc, ldc, bp,
               nt < 1 ? 1 : nt, lo == 0);
    }
    free(bp);
    atomic_fetch_add_explicit(&pn_gemm_own_runs, 1, memory_order_relaxed);
    return (int)rc;
}
#else
static int own(int ta, int tb, int64_t M, int64_t N, int64_t K, float alpha, const float *A,
               int64_t lda, const float *B, int64_t ldb, float beta, const float *bias, float *C,
               int64_t ldc, int polled) {
    (void)ta, (void)tb, (void)M, (void)N, (void)K, (void)alpha, (void)A, (void)lda, (void)B;
    (void)ldb, (void)beta, (void)bias, (void)C, (void)ldc, (void)polled;
    return 0;
}
#endif

/* The AVX-512 kernel (gemm_avx512.c), where the CPU has it, for the products the own kernels
 * take: 1 when it ran the product. */
static int wide(int ta, int tb, int64_t M, int64_t N, int64_t K, float alpha, const float *A,
                int64_t lda, const float *B, int64_t ldb, float beta, const float *bias, float *C,
                int64_t ldc) {
    if (alpha != 1.0f || (beta != 0.0f && beta != 1.0f) || M * N * K < GEMM_PAR_MIN ||
        !pn_gemm_kernels ||
        !pn_gemm_avx512_product(ta, tb, M, N, K, A, lda, B, ldb, beta != 0.0f, bias, C, ldc))
        return 0;
    atomic_fetch_add_explicit(&pn_gemm_own_runs, 1, memory_order_relaxed);
    return 1;
}

void pn_gemm(int ta, int tb, int64_t M, int64_t N, int64_t K, float alpha, const float *A,
             int64_t lda, const float *B, int64_t ldb, float beta, float *C, int64_t ldc) {
    if (M <= 0 || N <= 0) return;
    if (pn_gemm_bf16 && alpha == 1.0f && (beta == 0.0f || beta == 1.0f) &&
        pn_gemm_bf16_product(ta, tb, M, N, K, A, lda, B, ldb, beta != 0.0f, NULL, C, ldc))
        return;
    if (wide(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, NULL, C, ldc)) return;
    if (own(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, NULL, C, ldc, 0)) return;
    int by_rows = M >= N;
    int64_t len = by_rows ? M : N;
    if (pn_threads > 1 && M * N * K >= GEMM_PAR_MIN && len >= 2 * GEMM_ALIGN) {
#pragma omp parallel num_threads(pn_threads)
        {
            int t, nt; /* the team OpenMP granted, which may be smaller than asked */
            thread_of(&t, &nt);
            int64_t per = ((len + nt - 1) / nt + GEMM_ALIGN - 1) / GEMM_ALIGN * GEMM_ALIGN;
            int64_t lo = t * per, hi = lo + per < len ? lo + per : len;
            if (lo < hi) {
                if (by_rows) /* rows lo..hi of op(A) and of C */
                    one(ta, tb, hi - lo, N, K, alpha, ta ? A + lo : A + lo * lda, lda, B, ldb,
                        beta, C + lo * ldc, ldc);
                else         /* columns lo..hi of op(B) and of C */
                    one(ta, tb, M, hi - lo, K, alpha, A, lda, tb ? B + lo * ldb : B + lo, ldb,
                        beta, C + lo, ldc);
            }
        }
        return;
    }
    one(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

void pn_gemm_bias(int64_t M, int64_t N, int64_t K, const float *A, int64_t lda, const float *B,
                  int64_t ldb, const float *bias, float *C, int64_t ldc) {
    if (M <= 0 || N <= 0) return;
    if (!bias) {
        pn_gemm(0, 0, M, N, K, 1.0f, A, lda, B, ldb, 0.0f, C, ldc);
        return;
    }
    if (pn_gemm_bf16 && pn_gemm_bf16_product(0, 0, M, N, K, A, lda, B, ldb, 0, bias, C, ldc))
        return;
    if (wide(0, 0, M, N, K, 1.0f, A, lda, B, ldb, 0.0f, bias, C, ldc)) return;
    if (own(0, 0, M, N, K, 1.0f, A, lda, B, ldb, 0.0f, bias, C, ldc, 0)) return;
    PN_FOR(M * N > PN_PAR_MIN, r, M, memcpy(C + r * ldc, bias, (size_t)N * sizeof(float)););
    pn_gemm(0, 0, M, N, K, 1.0f, A, lda, B, ldb, 1.0f, C, ldc);
}

int pn_gemm_polled(int64_t M, int64_t N, int64_t K, const float *A, int64_t lda, const float *B,
                   int64_t ldb, float *C, int64_t ldc) {
    int rc = own(0, 0, M, N, K, 1.0f, A, lda, B, ldb, 0.0f, NULL, C, ldc, 1);
    if (rc) return rc < 0 ? rc : PN_OK;
    /* OpenBLAS packs B again in every call: blocks of at least 512 rows keep that small */
    int64_t per = M;
    if (N * K > 0 && M * N * K > POLL_MACS) {
        per = POLL_MACS / (N * K);
        per = per < 512 ? 512 : per;
    }
    for (int64_t lo = 0; lo < M; lo += per) {
        if (lo > 0 && (rc = pn_poll_interrupt())) return rc;
        pn_gemm(0, 0, M - lo < per ? M - lo : per, N, K, 1.0f, A + lo * lda, lda, B, ldb, 0.0f,
                C + lo * ldc, ldc);
    }
    return PN_OK;
}
