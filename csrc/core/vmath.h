/*
 * vmath.h: exp, tanh, sigmoid and erf for float32 as branch-free inline functions, so that a loop
 * calling them vectorises (libm's expf, tanhf and erff are calls the compiler cannot vectorise
 * without -ffast-math). Each is within a few units in the last place of the true value;
 * ternaries compile to blends, NaN propagates, and there is no undefined behaviour for any input
 * (the exponent of 2^n is built from the bits of a float, never by converting a float to int).
 *
 * pn_sigmoid_lean and pn_tanh_lean trade range handling and a little accuracy for speed, for
 * the gate loops of the lstm.
 *
 * pn_exp8 is pn_exp on eight lanes in AVX2 intrinsics, for kernels written with them (the
 * attention's softmax); it clamps at PN_EXP_HI rather than reaching infinity, which a softmax's
 * x - max <= 0 never meets.
 *
 * Sources of the formulas: Cephes (expf's and tanhf's polynomials), Eigen's and XLA's rational
 * erf.
 */
#ifndef PYNN_VMATH_H
#define PYNN_VMATH_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define PN_VMATH_AVX2 1
#endif

#define PN_EXP_LO -87.3365447505531f  /* below: the result (subnormal) is flushed to 0 */
#define PN_EXP_HI 88.3762626647949f   /* pn_exp8's clamp: 2^n stays normal */
#define PN_EXP_INF 88.72283905206835f /* above: e^x overflows float */

/* e^x's core, for x with round(x log2 e) in [-126, 127]: x = n ln2 + r with |r| <= ln2/2, e^r by
 * Cephes's degree-6 polynomial. Returns e^r; *mb holds n in its low bits (n + 0x4B400000). */
static inline float pn_exp_reduced(float x, uint32_t *mb) {
    const float magic = 12582912.0f; /* 1.5 * 2^23: adding it rounds to an integer */
    float m = x * 1.44269504088896341f + magic;
    memcpy(mb, &m, sizeof *mb);
    float n = m - magic;                      /* round(x log2 e), as a float */
    float r = x - n * 0.693359375f;           /* ln2 split in two for an exact product */
    r = r - n * -2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    return p * (r * r) + r + 1.0f;
}

/* 2^n from pn_exp_reduced's *mb, times 2^(k - 127) */
static inline float pn_exp_scale(uint32_t mb, uint32_t k) {
    uint32_t sb = (mb - 0x4B400000u + k) << 23;
    float s;
    memcpy(&s, &sb, sizeof s);
    return s;
}

/* e^x, within a few ulp; overflow to inf, underflow to 0, NaN kept. Times 2^n as 2^(n-1) * 2
 * when n > 0, so that n = 128 (x just below the overflow) stays representable. */
static inline float pn_exp(float x) {
    float xc = x > PN_EXP_INF ? PN_EXP_INF : x;
    xc = xc < PN_EXP_LO ? PN_EXP_LO : xc;
    uint32_t mb;
    float p = pn_exp_reduced(xc, &mb);
    int pos = mb > 0x4B400000u; /* n > 0 */
    float y = p * pn_exp_scale(mb, pos ? 126u : 127u) * (pos ? 2.0f : 1.0f);
    y = x > PN_EXP_INF ? INFINITY : y;
    return x < PN_EXP_LO ? 0.0f : y;
}

/* e^x for |x| <= 87 only (2^n stays a normal float): pn_exp without its range handling, for
 * callers that clamp */
static inline float pn_exp_lean(float x) {
    uint32_t mb;
    float p = pn_exp_reduced(x, &mb);
    return p * pn_exp_scale(mb, 127u);
}

#ifdef PN_VMATH_AVX2
static inline __m256 pn_exp8(__m256 x) {
    const __m256 magic = _mm256_set1_ps(12582912.0f);
    __m256 under = _mm256_cmp_ps(x, _mm256_set1_ps(PN_EXP_LO), _CMP_LT_OQ);
    __m256 xc = _mm256_min_ps(_mm256_set1_ps(PN_EXP_HI),
                              _mm256_max_ps(_mm256_set1_ps(PN_EXP_LO), x));
    __m256 m = _mm256_fmadd_ps(xc, _mm256_set1_ps(1.44269504088896341f), magic);
    __m256 n = _mm256_sub_ps(m, magic);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), xc);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 p = _mm256_fmadd_ps(_mm256_set1_ps(1.9875691500e-4f), r,
                               _mm256_set1_ps(1.3981999507e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
    p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    __m256i e = _mm256_add_epi32(_mm256_sub_epi32(_mm256_castps_si256(m),
                                                  _mm256_set1_epi32(0x4B400000)),
                                 _mm256_set1_epi32(127));
    __m256 s = _mm256_castsi256_ps(_mm256_slli_epi32(e, 23));
    return _mm256_andnot_ps(under, _mm256_mul_ps(p, s));
}
#endif

/* 1 / (1 + e^-x) */
static inline float pn_sigmoid(float x) { return 1.0f / (1.0f + pn_exp(-x)); }

/* tanh x: Cephes's odd polynomial for |x| < 0.625, else 1 - 2 / (e^2|x| + 1) with x's sign. */
static inline float pn_tanh(float x) {
    float ax = fabsf(x), z = x * x;
    float p = -5.70498872745e-3f;
    p = p * z + 2.06390887954e-2f;
    p = p * z - 5.37397155531e-2f;
    p = p * z + 1.33314422036e-1f;
    p = p * z - 3.33332819422e-1f;
    float small = x + x * z * p;
    float big = 1.0f - 2.0f / (pn_exp(2.0f * ax) + 1.0f);
    big = copysignf(big, x);
    return ax < 0.625f ? small : big;
}

/* Lean sigmoid and tanh, about twice as fast as pn_sigmoid and pn_tanh where they dominate a loop
 * (the lstm's gates, ops_lstm.c): sigmoid through pn_exp_lean on an input clamped to +-87, tanh
 * as a rational function (Eigen's float tanh: odd degree 13 over even degree 6, inputs clamped
 * to +-7.9, where it rounds to +-1), within 4.1e-7 of tanh; NaN stays NaN. */
static inline float pn_sigmoid_lean(float x) {
    float xc = x < -87.0f ? -87.0f : x;
    xc = xc > 87.0f ? 87.0f : xc;
    return 1.0f / (1.0f + pn_exp_lean(-xc));
}

static inline float pn_tanh_lean(float x0) {
    float x = x0 > 7.90531110763549805f ? 7.90531110763549805f : x0;
    x = x < -7.90531110763549805f ? -7.90531110763549805f : x;
    float z = x * x;
    float p = -2.76076847742355e-16f;
    p = p * z + 2.00018790482477e-13f;
    p = p * z - 8.60467152213735e-11f;
    p = p * z + 5.12229709037114e-08f;
    p = p * z + 1.48572235717979e-05f;
    p = p * z + 6.37261928875436e-04f;
    p = p * z + 4.89352455891786e-03f;
    float q = 1.19825839466702e-06f;
    q = q * z + 1.18534705686654e-04f;
    q = q * z + 2.26843463243900e-03f;
    q = q * z + 4.89352518554385e-03f;
    return x * p / q;
}

/* Keras's hard_sigmoid: relu6(x + 3) / 6 */
static inline float pn_hard_sigmoid(float x) {
    float y = (x + 3.0f) * (1.0f / 6.0f);
    return y < 0.0f ? 0.0f : (y > 1.0f ? 1.0f : y);
}

/* erf x = x P(x^2) / Q(x^2) on x clamped to [-4, 4] (beyond, float erf is +-1): the rational
 * approximation of Eigen and XLA, within 3.2e-7 of erf; no exp, one division. */
static inline float pn_erf(float x) {
    float xc = x < -4.0f ? -4.0f : x;
    xc = xc > 4.0f ? 4.0f : xc;
    float z = xc * xc;
    float p = -2.72614225801306e-10f;
    p = p * z + 2.77068142495902e-08f;
    p = p * z - 2.10102402082508e-06f;
    p = p * z - 5.69250639462346e-05f;
    p = p * z - 7.34990630326855e-04f;
    p = p * z - 2.95459980854025e-03f;
    p = p * z - 1.60960333262415e-02f;
    float q = -1.45660718464996e-05f;
    q = q * z - 2.13374055278905e-04f;
    q = q * z - 1.68282697438203e-03f;
    q = q * z - 7.37332916720468e-03f;
    q = q * z - 1.42647390514189e-02f;
    return xc * p / q; /* NaN: the clamps keep it, and it stays */
}

#endif /* PYNN_VMATH_H */
