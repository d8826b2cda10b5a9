/*
 * vmath.h: exp and erf for the core's hot loops, in plain arithmetic that vectorises. glibc's
 * expf and erff are calls per value unless -ffast-math (which pynn does not use: issue 168 of
 * llm.c), so a softmax or a GELU over a batch spent most of its time in libm. Each function has a
 * scalar form (any compiler, loop tails) and an AVX2 form of 8 lanes with the same formula.
 *   pn_vexpf   e^x to within an ulp (Cephes's polynomial); e^-inf and x < -87.34 give 0, NaN
 *              stays NaN
 *   pn_verff   erf(x) to within 3.2e-7 absolute (XLA's and Eigen's rational approximation on
 *              [-4, 4]; +-1 beyond, where float erf is +-1)
 */
#ifndef PYNN_VMATH_H
#define PYNN_VMATH_H

#include <stdint.h>
#include <string.h>

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define PN_VMATH_AVX2 1
#endif

#define EXP_LO -87.3365447505531f
#define EXP_HI 88.3762626647949f
#define EXP_MAGIC 12582912.0f /* 1.5 2^23: adding it rounds to an integer */
#define EXP_C1 0.693359375f
#define EXP_C2 -2.12194440e-4f
#define EXP_P0 1.9875691500E-4f
#define EXP_P1 1.3981999507E-3f
#define EXP_P2 8.3334519073E-3f
#define EXP_P3 4.1665795894E-2f
#define EXP_P4 1.6666665459E-1f
#define EXP_P5 5.0000001201E-1f

static inline float pn_vexpf(float x) {
    if (x < EXP_LO) return 0.0f;
    float xc = x > EXP_HI ? EXP_HI : x;
    float t = xc * 1.44269504088896341f + EXP_MAGIC;
    float n = t - EXP_MAGIC;
    float r = xc - n * EXP_C1 - n * EXP_C2;
    float y = ((((EXP_P0 * r + EXP_P1) * r + EXP_P2) * r + EXP_P3) * r + EXP_P4) * r + EXP_P5;
    y = y * (r * r) + r + 1.0f;
    int32_t ti, e;
    memcpy(&ti, &t, sizeof ti);
    e = ((ti - 0x4B400000) + 127) * (1 << 23);
    float sc;
    memcpy(&sc, &e, sizeof sc);
    return y * sc;
}

#ifdef PN_VMATH_AVX2
static inline __m256 pn_vexp8(__m256 x) {
    __m256 under = _mm256_cmp_ps(x, _mm256_set1_ps(EXP_LO), _CMP_LT_OQ);
    __m256 xc = _mm256_min_ps(_mm256_set1_ps(EXP_HI), _mm256_max_ps(_mm256_set1_ps(EXP_LO), x));
    __m256 t = _mm256_fmadd_ps(xc, _mm256_set1_ps(1.44269504088896341f), _mm256_set1_ps(EXP_MAGIC));
    __m256 n = _mm256_sub_ps(t, _mm256_set1_ps(EXP_MAGIC));
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(EXP_C1), xc);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(EXP_C2), r);
    __m256 y = _mm256_fmadd_ps(_mm256_set1_ps(EXP_P0), r, _mm256_set1_ps(EXP_P1));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(EXP_P2));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(EXP_P3));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(EXP_P4));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(EXP_P5));
    y = _mm256_fmadd_ps(y, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    __m256i e = _mm256_add_epi32(_mm256_sub_epi32(_mm256_castps_si256(t),
                                                  _mm256_set1_epi32(0x4B400000)),
                                 _mm256_set1_epi32(127));
    __m256 sc = _mm256_castsi256_ps(_mm256_slli_epi32(e, 23));
    return _mm256_andnot_ps(under, _mm256_mul_ps(y, sc));
}
#endif


/* erf(x) ~ x P(x^2) / Q(x^2) on x clamped to [-4, 4] */
#define ERF_A1 -1.60960333262415e-02f
#define ERF_A3 -2.95459980854025e-03f
#define ERF_A5 -7.34990630326855e-04f
#define ERF_A7 -5.69250639462346e-05f
#define ERF_A9 -2.10102402082508e-06f
#define ERF_A11 2.77068142495902e-08f
#define ERF_A13 -2.72614225801306e-10f
#define ERF_B0 -1.42647390514189e-02f
#define ERF_B2 -7.37332916720468e-03f
#define ERF_B4 -1.68282697438203e-03f
#define ERF_B6 -2.13374055278905e-04f
#define ERF_B8 -1.45660718464996e-05f

static inline float pn_verff(float x) {
    float xc = x < -4.0f ? -4.0f : x > 4.0f ? 4.0f : x, x2 = xc * xc;
    float p = ((((((ERF_A13 * x2 + ERF_A11) * x2 + ERF_A9) * x2 + ERF_A7) * x2 + ERF_A5) * x2 +
                ERF_A3) * x2 + ERF_A1) * xc;
    float q = (((ERF_B8 * x2 + ERF_B6) * x2 + ERF_B4) * x2 + ERF_B2) * x2 + ERF_B0;
    return x != x ? x : p / q;
}

#ifdef PN_VMATH_AVX2
static inline __m256 pn_verf8(__m256 x) {
    __m256 xc = _mm256_min_ps(_mm256_set1_ps(4.0f), _mm256_max_ps(_mm256_set1_ps(-4.0f), x));
    __m256 x2 = _mm256_mul_ps(xc, xc);
    __m256 p = _mm256_fmadd_ps(_mm256_set1_ps(ERF_A13), x2, _mm256_set1_ps(ERF_A11));
    p = _mm256_fmadd_ps(p, x2, _mm256_set1_ps(ERF_A9));
    p = _mm256_fmadd_ps(p, x2, _mm256_set1_ps(ERF_A7));
    p = _mm256_fmadd_ps(p, x2, _mm256_set1_ps(ERF_A5));
    p = _mm256_fmadd_ps(p, x2, _mm256_set1_ps(ERF_A3));
    p = _mm256_fmadd_ps(p, x2, _mm256_set1_ps(ERF_A1));
    p = _mm256_mul_ps(p, xc);
    __m256 q = _mm256_fmadd_ps(_mm256_set1_ps(ERF_B8), x2, _mm256_set1_ps(ERF_B6));
    q = _mm256_fmadd_ps(q, x2, _mm256_set1_ps(ERF_B4));
    q = _mm256_fmadd_ps(q, x2, _mm256_set1_ps(ERF_B2));
    q = _mm256_fmadd_ps(q, x2, _mm256_set1_ps(ERF_B0));
    return _mm256_div_ps(p, q); /* NaN: max/min above return x's NaN, which stays */
}
#endif

#endif /* PYNN_VMATH_H */
