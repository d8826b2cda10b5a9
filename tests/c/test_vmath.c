/*
 * test_vmath.c: the vectorisable exp, sigmoid, tanh and erf of csrc/core/vmath.h (and the lean
 * sigmoid and tanh of the lstm's gates) against libm in double precision, over a dense sweep of
 * their useful ranges, and at the special values.
 */
#include <math.h>

#include "check.h"
#include "vmath.h"

/* The largest relative error of f against ref over [lo, hi] in `steps` steps, skipping points
 * where |ref| < floor (an absolute error counts there). */
static double worst(float (*f)(float), double (*ref)(double), float lo, float hi, int steps,
                    double floor) {
    double w = 0.0;
    for (int i = 0; i <= steps; i++) {
        float x = lo + (hi - lo) * (float)i / (float)steps;
        double r = ref((double)x), e = fabs((double)f(x) - r) / fmax(fabs(r), floor);
        if (e > w) w = e;
    }
    return w;
}

static double sigmoid_ref(double x) { return 1.0 / (1.0 + exp(-x)); }

int main(void) {
    double e;
    e = worst(pn_exp, exp, -87.0f, 88.7f, 2000000, 0.0);
    CHECK(e < 2.5e-7, "exp: relative error %g", e);
    e = worst(pn_sigmoid, sigmoid_ref, -80.0f, 80.0f, 2000000, 0.0);
    CHECK(e < 2.5e-7, "sigmoid: relative error %g", e);
    e = worst(pn_tanh, tanh, -20.0f, 20.0f, 2000000, 1e-30);
    CHECK(e < 2.5e-7, "tanh: relative error %g", e);
    e = worst(pn_erf, erf, -6.0f, 6.0f, 2000000, 1e-30);
    CHECK(e < 1e-6, "erf: relative error %g", e);
    e = worst(pn_erf, erf, -6.0f, 6.0f, 2000000, 1.0);
    CHECK(e < 5e-7, "erf: absolute error %g", e); /* 3.3e-7 with FMA, 4.5e-7 without */

    e = worst(pn_sigmoid_lean, sigmoid_ref, -80.0f, 80.0f, 2000000, 0.0);
    CHECK(e < 2.5e-7, "sigmoid_lean: relative error %g", e);
    e = worst(pn_tanh_lean, tanh, -20.0f, 20.0f, 2000000, 1.0);
    CHECK(e < 4.2e-7, "tanh_lean: absolute error %g", e);
    CHECK(isnan(pn_sigmoid_lean(NAN)) && isnan(pn_tanh_lean(NAN)), "lean: NaN propagates");
    CHECK(pn_tanh_lean(INFINITY) == 1.0f && pn_tanh_lean(-INFINITY) == -1.0f &&
              pn_tanh_lean(0.0f) == 0.0f && pn_sigmoid_lean(0.0f) == 0.5f &&
              pn_sigmoid_lean(INFINITY) == 1.0f && pn_sigmoid_lean(-INFINITY) < 1e-37f,
          "lean limits: tanh %g %g, sigmoid %g", (double)pn_tanh_lean(INFINITY),
          (double)pn_tanh_lean(-INFINITY), (double)pn_sigmoid_lean(-INFINITY));
    CHECK(pn_hard_sigmoid(-3.0f) == 0.0f && pn_hard_sigmoid(3.0f) == 1.0f &&
              pn_hard_sigmoid(0.0f) == 0.5f && pn_hard_sigmoid(-INFINITY) == 0.0f,
          "hard_sigmoid: relu6(x + 3) / 6");

    CHECK(isnan(pn_exp(NAN)) && isnan(pn_tanh(NAN)) && isnan(pn_erf(NAN)) &&
              isnan(pn_sigmoid(NAN)), "NaN propagates");
    CHECK(pn_exp(INFINITY) == INFINITY && pn_exp(89.0f) == INFINITY, "exp overflows to inf");
    CHECK(pn_exp(-INFINITY) == 0.0f && pn_exp(-100.0f) == 0.0f, "exp underflows to 0");
    CHECK(pn_exp(88.7f) > 3.0e38f && isfinite(pn_exp(88.7f)), "exp just below overflow: %g",
          (double)pn_exp(88.7f));
    CHECK(pn_exp(0.0f) == 1.0f, "exp(0) = %g", (double)pn_exp(0.0f));
    CHECK(pn_tanh(INFINITY) == 1.0f && pn_tanh(-INFINITY) == -1.0f && pn_tanh(0.0f) == 0.0f,
          "tanh limits");
    CHECK(pn_tanh(1e-20f) == 1e-20f, "tanh of a tiny x is x");
    CHECK(pn_erf(INFINITY) == 1.0f && pn_erf(-INFINITY) == -1.0f && pn_erf(0.0f) == 0.0f,
          "erf limits");
    CHECK(pn_sigmoid(-INFINITY) == 0.0f && pn_sigmoid(INFINITY) == 1.0f, "sigmoid limits");
    printf("%d passed, %d failed\n", passed, failed);
    return failed != 0;
}
