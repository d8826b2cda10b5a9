/*
 * gemm.c: the core's matrix product, on the core's own threads.
 *
 *   C (M, N) = alpha op(A) op(B) + beta C        row-major, cblas_sgemm's arguments
 *
 * OpenBLAS runs single-threaded; a large product is cut into one block of rows (or of columns,
 * when C is wider than tall) per OpenMP thread, and each thread runs OpenBLAS on its block. So
 * the core has one pool of threads, not two: OpenBLAS's pthreads and OpenMP's never wait for
 * the same cores (on two cores, two pools spinning in turn made steps several times slower),
 * and a block's result does not depend on what the other threads do.
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

void pn_gemm(int ta, int tb, int64_t M, int64_t N, int64_t K, float alpha, const float *A,
             int64_t lda, const float *B, int64_t ldb, float beta, float *C, int64_t ldc) {
    if (M <= 0 || N <= 0) return;
    int nt = pn_threads;
    int by_rows = M >= N;
    int64_t len = by_rows ? M : N;
    if (nt > 1 && M * N * K >= GEMM_PAR_MIN && len >= 2 * GEMM_ALIGN) {
        int64_t per = ((len + nt - 1) / nt + GEMM_ALIGN - 1) / GEMM_ALIGN * GEMM_ALIGN;
#pragma omp parallel num_threads(nt)
        {
#ifdef _OPENMP
            int64_t t = omp_get_thread_num();
#else
            int64_t t = 0;
#endif
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
