/*
 * test_gemm_bf16.c: the mixed-precision product (gemm_bf16.c) against a double reference over
 * operands rounded to bfloat16: every transpose of A and B, beta 0 and 1, a bias row, partial
 * tiles (rows not a multiple of 12, columns not of 32, odd K), more than one block of k (K > 256)
 * and of columns (N > 512), a weight-gradient shape whose k is split over the threads, 1 to 3
 * threads; products shorter than PN_BF16_MIN_K staying float32; each on the AVX512-BF16 kernel where the CPU has it and on the fallback (rounded
 * copies, float32 product) everywhere. The rounding itself: ties to even, NaN, infinities.
 */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "internal.h"

static int rounds; /* the reference rounds the operands (K >= PN_BF16_MIN_K) */
static double bf(float x) { return rounds ? (double)pn_bf16_round(x) : (double)x; }

/* out (M, N) = [c0 +] bf(op(a)) bf(op(b)) [+ bias], in double */
static void reference(int ta, int tb, int64_t M, int64_t N, int64_t K, const float *a,
                      const float *b, const float *bias, int acc, const float *c0, double *out) {
    for (int64_t i = 0; i < M; i++)
        for (int64_t j = 0; j < N; j++) {
            double s = acc ? c0[i * N + j] : bias ? bias[j] : 0.0;
            for (int64_t k = 0; k < K; k++)
                s += bf(ta ? a[k * M + i] : a[i * K + k]) * bf(tb ? b[j * K + k] : b[k * N + j]);
            out[i * N + j] = s;
        }
}

static void one_case(int ta, int tb, int64_t M, int64_t N, int64_t K, int acc, int with_bias) {
    unsigned seed = (unsigned)(M * 131 + N * 17 + K * 7 + ta * 11 + tb * 3 + acc);
    float *a = malloc(sizeof(float) * M * K), *b = malloc(sizeof(float) * K * N);
    float *bias = malloc(sizeof(float) * N), *c0 = malloc(sizeof(float) * M * N);
    float *c = malloc(sizeof(float) * M * N);
    double *ref = malloc(sizeof(double) * M * N);
    for (int64_t i = 0; i < M * K; i++) a[i] = frand(&seed);
    for (int64_t i = 0; i < K * N; i++) b[i] = frand(&seed);
    for (int64_t i = 0; i < N; i++) bias[i] = frand(&seed);
    for (int64_t i = 0; i < M * N; i++) c0[i] = frand(&seed);
    rounds = K >= PN_BF16_MIN_K; /* shorter products stay float32 */
    reference(ta, tb, M, N, K, a, b, with_bias ? bias : NULL, acc, c0, ref);
    for (int hw = 1; hw >= 0; hw--) {
        pn_cpu_disable(hw ? 0 : PN_CPU_AVX512BF16);
        for (int threads = 1; threads <= 3; threads++) {
            pn_set_num_threads(threads);
            memcpy(c, c0, sizeof(float) * M * N);
            pn_gemm_bf16 = 1;
            if (with_bias) pn_gemm_bias(M, N, K, a, K, b, N, bias, c, N);
            else pn_gemm(ta, tb, M, N, K, 1.0f, a, ta ? M : K, b, tb ? K : N, acc ? 1.0f : 0.0f,
                         c, N);
            pn_gemm_bf16 = 0;
            /* the products of bfloat16 values are exact in float32: only the float32 sums err */
            double err = rel_err(c, ref, M * N, 1.0);
            CHECK(err < 2e-6 * (K > 16 ? K / 16 : 1), "%s ta=%d tb=%d M=%lld N=%lld K=%lld acc=%d "
                  "bias=%d threads=%d: error %g", hw ? "kernel" : "fallback", ta, tb, (long long)M,
                  (long long)N, (long long)K, acc, with_bias, threads, err);
        }
    }
    pn_cpu_disable(0);
    pn_set_num_threads(2);
    free(a), free(b), free(bias), free(c0), free(c), free(ref);
}

/* the products really are of bfloat16 operands: 1 + 2^-9 rounds to 1 (a tie, to even), and
 * 1 + 2^-7 stays; the float32 product would keep both */
static void rounding(void) {
    CHECK(pn_bf16_round(1.0f + 0x1p-9f) == 1.0f, "1 + 2^-9 rounds to 1");
    CHECK(pn_bf16_round(1.0f + 3 * 0x1p-9f) == 1.0f + 0x1p-7f, "1 + 3 2^-9 rounds up (tie, to even)");
    CHECK(pn_bf16_round(1.0f + 0x1p-7f) == 1.0f + 0x1p-7f, "1 + 2^-7 is a bfloat16");
    CHECK(isnan(pn_bf16_round(NAN)), "NaN stays NaN");
    CHECK(isinf(pn_bf16_round(INFINITY)) && pn_bf16_round(-INFINITY) < 0, "infinities stay");
    CHECK(isinf(pn_bf16_round(3.4e38f)), "past bfloat16's largest: infinity");
    for (int hw = 1; hw >= 0; hw--) {
        pn_cpu_disable(hw ? 0 : PN_CPU_AVX512BF16);
        float a[64], b[64 * 40], c[40];
        for (int k = 0; k < 64; k++) a[k] = k == 0 ? 1.0f + 0x1p-9f : 0.0f;
        for (int i = 0; i < 64 * 40; i++) b[i] = i < 40 ? 1.0f : 0.0f;
        pn_gemm_bf16 = 1;
        pn_gemm(0, 0, 1, 40, 64, 1.0f, a, 64, b, 40, 0.0f, c, 40);
        pn_gemm_bf16 = 0;
        int ok = 1;
        for (int j = 0; j < 40; j++) ok &= c[j] == 1.0f;
        CHECK(ok, "%s: (1 + 2^-9) x 1 gives 1 in bfloat16, got %.9g", hw ? "kernel" : "fallback",
              c[0]);
    }
    pn_cpu_disable(0);
}

int main(void) {
    printf("AVX512-BF16 %s\n", pn_cpu_has(PN_CPU_AVX512BF16) ? "present" : "absent: fallback only");
    rounding();
    /* whole tiles; partial rows and columns, odd K past a block; N past a column block; K = 1 */
    static const int64_t shapes[][3] = {
        {96, 64, 128}, {151, 250, 601}, {37, 530, 64}, {64, 16, 1}, {13, 5, 3}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (int t = 0; t < 4; t++)
            for (int acc = 0; acc <= 1; acc++)
                one_case(t & 1, t >> 1, shapes[s][0], shapes[s][1], shapes[s][2], acc, 0);
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        one_case(0, 0, shapes[s][0], shapes[s][1], shapes[s][2], 0, 1);
    /* a weight gradient: 9 x 32 over k = 5000 rows, k split over the threads (A^T B) */
    one_case(1, 0, 9, 32, 5001, 0, 0);
    one_case(1, 0, 9, 32, 5001, 1, 0);
    printf("%d passed, %d failed\n", passed, failed);
    return failed != 0;
}
