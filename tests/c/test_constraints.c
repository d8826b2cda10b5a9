/*
 * test_constraints.c: the weight constraints of optimizer.c (pn_model_set_variable_constraint):
 * MaxNorm, NonNeg, UnitNorm, MinMaxNorm over any set of axes, applied after an SGD update,
 * against a double reference that indexes every element by its full multi-index; only the
 * updated variables constrained; bad arguments refused with the variable as it was.
 * Built and run by tests/test_c_core.py; prints "N passed, M failed".
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

#define NV 9
#define LR 0.1f

/* a Dense kernel (axis 0), a conv kernel of 70 filters (axes 0, 1, 2: two blocks of lanes), a
 * 3-D weight over axes 0 and 2, a bias, a kernel normed along its last axis, a scalar, a
 * per-element norm (no axes), all axes at once, and a variable without a constraint */
static const int nd[NV] = {2, 4, 3, 1, 2, 0, 3, 3, 2};
static const int64_t shapes[NV][4] = {{5, 3},    {2, 2, 3, 70}, {3, 4, 5}, {6}, {4, 7},
                                      {0},       {3, 4, 5},     {2, 3, 4}, {3, 3}};
static const int kinds[NV] = {PN_CONSTRAINT_MAX_NORM,     PN_CONSTRAINT_UNIT_NORM,
                              PN_CONSTRAINT_MIN_MAX_NORM, PN_CONSTRAINT_NON_NEG,
                              PN_CONSTRAINT_MAX_NORM,     PN_CONSTRAINT_MAX_NORM,
                              PN_CONSTRAINT_UNIT_NORM,    PN_CONSTRAINT_MIN_MAX_NORM,
                              PN_CONSTRAINT_NONE};
static const unsigned axes[NV] = {0x1, 0x7, 0x5, 0x0, 0x2, 0x0, 0x0, 0x7, 0x0};
static const float lo[NV] = {0, 0, 0.8f, 0, 0, 0, 0, 0.5f, 0};
static const float hi[NV] = {0.7f, 0, 1.1f, 0, 0.9f, 0.2f, 0, 3.0f, 0};
static const float rate[NV] = {1, 1, 0.6f, 1, 1, 1, 1, 1, 1};

static int64_t size_of(int v) {
    int64_t n = 1;
    for (int d = 0; d < nd[v]; d++) n *= shapes[v][d];
    return n;
}

static pn_model *make_model(int *ids) {
    pn_model *m;
    if (pn_model_create(&m)) return NULL;
    for (int v = 0; v < NV; v++) pn_model_add_variable(m, nd[v], shapes[v], 1, &ids[v]);
    pn_model_alloc(m);
    unsigned seed = 5;
    for (int v = 0; v < NV; v++) {
        float *w = param(m, ids[v]);
        for (int64_t i = 0; i < size_of(v); i++) w[i] = frand(&seed);
        if (v == 0) /* a zero column: its norm is 0, eps keeps it finite */
            for (int64_t r = 0; r < 5; r++) w[r * 3 + 1] = 0.0f;
    }
    pn_optim_config c = pn_optim_default(PN_SGD);
    c.learning_rate = LR;
    pn_model_set_optimizer(m, &c);
    return m;
}

/* ---- the double reference --------------------------------------------------------------- */

/* The group of element i: its flat index over the axes not in the mask. */
static int64_t group_of(int v, int64_t i) {
    int64_t g = 0, rest = i;
    int64_t idx[4] = {0};
    for (int d = nd[v] - 1; d >= 0; d--) {
        idx[d] = rest % shapes[v][d];
        rest /= shapes[v][d];
    }
    for (int d = 0; d < nd[v]; d++)
        if (!((axes[v] >> d) & 1u)) g = g * shapes[v][d] + idx[d];
    return g;
}

static double clip(double x, double a, double b) { return fmin(fmax(x, a), b); }

static void ref_constrain(int v, double *w) {
    const int64_t n = size_of(v);
    double *sums = calloc((size_t)n, sizeof *sums);
    for (int64_t i = 0; i < n; i++) sums[group_of(v, i)] += w[i] * w[i];
    for (int64_t i = 0; i < n; i++) {
        const double norm = sqrt(sums[group_of(v, i)]), d = 1e-7 + norm;
        switch (kinds[v]) {
        case PN_CONSTRAINT_MAX_NORM: w[i] *= clip(norm, 0.0, hi[v]) / d; break;
        case PN_CONSTRAINT_NON_NEG: w[i] = fmax(w[i], 0.0); break;
        case PN_CONSTRAINT_UNIT_NORM: w[i] /= d; break;
        case PN_CONSTRAINT_MIN_MAX_NORM:
            w[i] *= (rate[v] * clip(norm, lo[v], hi[v]) + (1.0 - rate[v]) * norm) / d;
            break;
        default: break;
        }
    }
    free(sums);
}

/* w - lr g, then the constraint, for variable v */
static void ref_step(pn_model *m, int id, int v, double *w) {
    const float *p = param(m, id), *g = grad(m, id);
    for (int64_t i = 0; i < size_of(v); i++) w[i] = (double)p[i] - (double)LR * g[i];
    ref_constrain(v, w);
}

static void fill_grads(pn_model *m, const int *ids, unsigned seed) {
    for (int v = 0; v < NV; v++) {
        float *g = grad(m, ids[v]);
        for (int64_t i = 0; i < size_of(v); i++) g[i] = 2.0f * frand(&seed);
    }
}

/* ---- tests ------------------------------------------------------------------------------- */

static void test_constraints_match_the_reference(void) {
    int ids[NV];
    pn_model *m = make_model(ids);
    CHECK(m != NULL, "model");
    for (int v = 0; v < NV; v++)
        CHECK(pn_model_set_variable_constraint(m, ids[v], kinds[v], axes[v], lo[v], hi[v],
                                               rate[v]) == PN_OK, "set constraint %d", v);
    for (int step = 0; step < 3; step++) {
        fill_grads(m, ids, 100u + (unsigned)step);
        double *want[NV];
        for (int v = 0; v < NV; v++) {
            want[v] = malloc((size_t)size_of(v) * sizeof(double));
            ref_step(m, ids[v], v, want[v]);
        }
        CHECK(pn_model_apply_gradients(m, 0, NULL) == PN_OK, "apply");
        for (int v = 0; v < NV; v++) {
            double e = rel_err(param(m, ids[v]), want[v], size_of(v), 1e-6);
            CHECK(e < 2e-6, "step %d variable %d: relative error %g", step, v, e);
            free(want[v]);
        }
    }
    /* UnitNorm's conv filters have norm 1, MaxNorm's Dense columns at most 0.7 */
    const float *k = param(m, ids[1]);
    for (int f = 0; f < 70; f++) {
        double s = 0;
        for (int r = 0; r < 12; r++) s += (double)k[r * 70 + f] * k[r * 70 + f];
        CHECK(fabs(sqrt(s) - 1.0) < 1e-5, "filter %d has norm %g", f, sqrt(s));
    }
    const float *d = param(m, ids[0]);
    for (int c = 0; c < 3; c++) {
        double s = 0;
        for (int r = 0; r < 5; r++) s += (double)d[r * 3 + c] * d[r * 3 + c];
        CHECK(sqrt(s) <= 0.7 + 1e-6, "column %d has norm %g", c, sqrt(s));
    }
    pn_model_destroy(m);
}

static void test_only_updated_variables_are_constrained(void) {
    int ids[NV];
    pn_model *m = make_model(ids);
    pn_model_set_variable_constraint(m, ids[3], PN_CONSTRAINT_NON_NEG, 0u, 0, 0, 1);
    pn_model_set_variable_constraint(m, ids[0], PN_CONSTRAINT_NON_NEG, 0u, 0, 0, 1);
    float before[15];
    memcpy(before, param(m, ids[0]), sizeof before);
    fill_grads(m, ids, 7u);
    int only = ids[3];
    CHECK(pn_model_apply_gradients(m, 1, &only) == PN_OK, "apply to one variable");
    CHECK(memcmp(before, param(m, ids[0]), sizeof before) == 0,
          "a variable left out of the update keeps its negative values");
    const float *b = param(m, ids[3]);
    int neg = 0;
    for (int i = 0; i < 6; i++) neg += b[i] < 0.0f;
    CHECK(neg == 0, "the updated variable is non-negative");
    /* removing the constraint: the next update leaves negatives */
    pn_model_set_variable_constraint(m, ids[3], PN_CONSTRAINT_NONE, 0u, 0, 0, 1);
    float *g = grad(m, ids[3]);
    for (int i = 0; i < 6; i++) g[i] = 100.0f;
    CHECK(pn_model_apply_gradients(m, 1, &only) == PN_OK, "apply again");
    CHECK(param(m, ids[3])[0] < 0.0f, "no constraint once removed");
    pn_model_destroy(m);
}

static void test_bad_arguments_refused(void) {
    int ids[NV];
    pn_model *m = make_model(ids);
    pn_model_set_variable_constraint(m, ids[0], PN_CONSTRAINT_NON_NEG, 0u, 0, 0, 1);
    CHECK(pn_model_set_variable_constraint(m, NV, PN_CONSTRAINT_NON_NEG, 0u, 0, 0, 1) ==
              PN_EVALUE, "no such variable");
    CHECK(pn_model_set_variable_constraint(m, -1, PN_CONSTRAINT_NON_NEG, 0u, 0, 0, 1) ==
              PN_EVALUE, "negative variable");
    CHECK(pn_model_set_variable_constraint(m, ids[0], PN_CONSTRAINT_COUNT, 0u, 0, 0, 1) ==
              PN_EVALUE, "unknown kind");
    CHECK(pn_model_set_variable_constraint(m, ids[0], PN_CONSTRAINT_MAX_NORM, 0x4u, 0, 1, 1) ==
              PN_EVALUE, "axis 2 of a matrix");
    CHECK(pn_model_set_variable_constraint(m, ids[5], PN_CONSTRAINT_MAX_NORM, 0x1u, 0, 1, 1) ==
              PN_EVALUE, "an axis of a scalar");
    CHECK(pn_model_set_variable_constraint(m, ids[0], PN_CONSTRAINT_MAX_NORM, 0x1u, 0, NAN, 1) ==
              PN_EVALUE, "a NaN max_value");
    CHECK(pn_model_set_variable_constraint(m, ids[0], PN_CONSTRAINT_MIN_MAX_NORM, 0x1u, 0, 1,
                                           INFINITY) == PN_EVALUE, "an infinite rate");
    /* the first constraint stands: NonNeg, not a MaxNorm */
    fill_grads(m, ids, 3u);
    int only = ids[0];
    pn_model_apply_gradients(m, 1, &only);
    const float *w = param(m, ids[0]);
    int neg = 0;
    for (int i = 0; i < 15; i++) neg += w[i] < 0.0f;
    CHECK(neg == 0, "the refused calls left NonNeg in place");
    pn_model_destroy(m);
}

int main(void) {
    pn_set_num_threads(2);
    test_constraints_match_the_reference();
    test_only_updated_variables_are_constrained();
    test_bad_arguments_refused();
    printf("%d passed, %d failed\n", passed, failed);
    return failed != 0;
}
