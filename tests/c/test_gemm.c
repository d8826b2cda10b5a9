/*
 * test_gemm.c: the core's own product kernel (gemm.c) against OpenBLAS and a double reference:
 * A B and A B^T with beta 0 and 1, pn_gemm_bias, at sizes that leave partial tiles (rows not a
 * multiple of 6, columns not of 16), more than one block of k (K > 256) and of columns (N >
 * 256), on 1 to 3 threads, where the own kernels' results must be bit for bit the same; and
 * again with the AVX-512 float32 kernel (gemm_avx512.c) forced on where the CPU has AVX-512. Built
 * without AVX2 both paths are OpenBLAS and the comparisons with the reference still hold.
 */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "internal.h"

/* gemm.c's own kernels exist (built with AVX2 and FMA, as this file is). OpenBLAS's results may
 * differ in the last bits with the threads' split of the rows, so only the own kernels are held
 * to the same bits on any thread count. */
#if defined(__AVX2__) && defined(__FMA__) && defined(__GNUC__)
#define OWN_KERNELS 1
#else
#define OWN_KERNELS 0
#endif

/* c (M, N) = [c +] a op(b) [+ bias], in double */
static void reference(int tb, int64_t M, int64_t N, int64_t K, const float *a, const float *b,
                      const float *bias, int acc, const float *c0, double *out) {
    for (int64_t i = 0; i < M; i++)
        for (int64_t j = 0; j < N; j++) {
            double s = acc ? c0[i * N + j] : 0.0;
            if (bias) s += bias[j];
            for (int64_t k = 0; k < K; k++)
                s += (double)a[i * K + k] * (tb ? b[j * K + k] : b[k * N + j]);
            out[i * N + j] = s;
        }
}

/* own: the shape is one the own kernels take (else OpenBLAS runs it on both paths) */
static void one_case(int tb, int64_t M, int64_t N, int64_t K, int acc, int with_bias, int own) {
    unsigned seed = (unsigned)(M * 131 + N * 17 + K * 7 + tb * 3 + acc + with_bias * 5);
    float *a = malloc(sizeof(float) * M * K), *b = malloc(sizeof(float) * K * N);
    float *bias = malloc(sizeof(float) * N), *c0 = malloc(sizeof(float) * M * N);
    float *c = malloc(sizeof(float) * M * N), *theirs = malloc(sizeof(float) * M * N);
    float *mine = malloc(sizeof(float) * M * N); /* 1 thread: the own kernels, OpenBLAS */
    double *ref = malloc(sizeof(double) * M * N);
    for (int64_t i = 0; i < M * K; i++) a[i] = frand(&seed);
    for (int64_t i = 0; i < K * N; i++) b[i] = frand(&seed);
    for (int64_t i = 0; i < N; i++) bias[i] = frand(&seed);
    for (int64_t i = 0; i < M * N; i++) c0[i] = frand(&seed);
    reference(tb, M, N, K, a, b, with_bias ? bias : NULL, acc, c0, ref);
    const int64_t ldb = tb ? K : N;
    const int64_t runs_before = pn_gemm_own_runs;
    for (int kernels = 1; kernels >= 0; kernels--) {
        pn_gemm_kernels = kernels;
        for (int threads = 1; threads <= 3; threads++) {
            pn_set_num_threads(threads);
            memcpy(c, c0, sizeof(float) * M * N);
            if (with_bias) pn_gemm_bias(M, N, K, a, K, b, ldb, bias, c, N);
            else pn_gemm(0, tb, M, N, K, 1.0f, a, K, b, ldb, acc ? 1.0f : 0.0f, c, N);
            double err = rel_err(c, ref, M * N, 1.0);
            CHECK(err < 1e-5 * (K > 16 ? K / 16 : 1), "%s tb=%d M=%lld N=%lld K=%lld acc=%d "
                  "bias=%d threads=%d: error %g", kernels ? "own" : "openblas", tb, (long long)M,
                  (long long)N, (long long)K, acc, with_bias, threads, err);
            if (threads == 1) memcpy(kernels ? mine : theirs, c, sizeof(float) * M * N);
            else if (kernels && own && OWN_KERNELS)
                CHECK(memcmp(mine, c, sizeof(float) * M * N) == 0, "%s tb=%d M=%lld N=%lld "
                      "K=%lld: %d threads differ from 1", kernels ? "own" : "openblas", tb,
                      (long long)M, (long long)N, (long long)K, threads);
        }
    }
    const int64_t own_runs = pn_gemm_own_runs - runs_before;
    /* the shapes marked own ran on the own kernels (and this test did not compare OpenBLAS with
     * itself), the others on OpenBLAS. Differing bits would not show it: on AVX-512 machines
     * OpenBLAS's kernel sums some shapes in the very order the own kernels do. */
    CHECK(own_runs == (own && OWN_KERNELS ? 3 : 0), "tb=%d M=%lld N=%lld K=%lld: the own kernels "
          "ran %lld of the 3 products with kernels on (1 to 3 threads), expected %s", tb,
          (long long)M, (long long)N, (long long)K, (long long)own_runs,
          own && OWN_KERNELS ? "all" : "none");
    pn_gemm_kernels = 1;
    pn_set_num_threads(2);
    free(a), free(b), free(bias), free(c0), free(c), free(theirs), free(mine), free(ref);
}

static void all_cases(void) {
    /* M, N, K: whole tiles; K past one block with partial rows and columns; N past one block
     * (partial rows and columns); K = 1; then widths the own kernels leave to OpenBLAS (N = 37,
     * 5, 65: over a sixteenth of padding) */
    static const int64_t shapes[][4] = {{96, 128, 128, 1}, {151, 250, 600, 1},
                                        {257, 300, 64, 1}, {64, 16, 1, 0},
                                        {101, 37, 129, 0}, {30, 5, 700, 0},
                                        {200, 65, 300, 0}}; /* [3]: the own kernels run it */
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (int tb = 0; tb <= 1; tb++)
            for (int acc = 0; acc <= 1; acc++)
                one_case(tb, shapes[s][0], shapes[s][1], shapes[s][2], acc, 0, (int)shapes[s][3]);
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        one_case(0, shapes[s][0], shapes[s][1], shapes[s][2], 0, 1, (int)shapes[s][3]);
    /* a small product (OpenBLAS on every path) and bias with a single-row-block M */
    one_case(0, 7, 9, 11, 1, 0, 0);
    one_case(0, 24, 16, 2048, 0, 1, 1);
}

int main(void) {
    /* as the CPU chooses, then with the AVX-512 float32 kernel wherever AVX-512 is there (on
     * Zen 4 the default leaves it to the AVX2 tile) */
    all_cases();
    if (pn_cpu_has(PN_CPU_AVX512)) {
        pn_gemm_avx512 = 2;
        const int64_t before = pn_gemm_own_runs;
        all_cases();
        printf("AVX-512 float32 kernel: %lld products\n", (long long)(pn_gemm_own_runs - before));
    }
    printf("%d passed, %d failed\n", passed, failed);
    return failed != 0;
}
