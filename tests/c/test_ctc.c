/*
 * test_ctc.c: the ctc_loss op (ops_ctc.c) run on values: each sample's loss against the sum
 * over every path of a small alphabet that collapses to the label (brute force), its gradient
 * against central differences, an impossible label (infinite loss, no gradient), and bad labels
 * and lengths failing the run with no result. Prints "N passed, M failed".
 */
#include <stdlib.h>
#include <string.h>

#include "check.h"

enum { B = 3, T = 5, K = 3, L = 3 };

/* -log P(label | logits) by enumerating the K^tn paths of one sample */
static double brute(const float *x, const int32_t *lab, int n, int tn, int blank) {
    double p[T][K];
    for (int t = 0; t < tn; t++) {
        double m = x[t * K], z = 0;
        for (int k = 1; k < K; k++) m = fmax(m, x[t * K + k]);
        for (int k = 0; k < K; k++) z += exp(x[t * K + k] - m);
        for (int k = 0; k < K; k++) p[t][k] = exp(x[t * K + k] - m) / z;
    }
    int paths = 1;
    for (int t = 0; t < tn; t++) paths *= K;
    double total = 0;
    for (int code = 0; code < paths; code++) {
        int path[T], c = code, out[T], len = 0, prev = -1;
        double pr = 1;
        for (int t = 0; t < tn; t++, c /= K) path[t] = c % K, pr *= p[t][path[t]];
        for (int t = 0; t < tn; t++) { /* collapse repeats, then drop blanks */
            if (path[t] != prev && path[t] != blank) out[len++] = path[t];
            prev = path[t];
        }
        if (len == n && (n == 0 || memcmp(out, lab, (size_t)n * sizeof(int)) == 0)) total += pr;
    }
    return -log(total);
}

static pn_value *ints(const int32_t *v, int nd, const int64_t *dims) {
    pn_value *out = NULL;
    return pn_value_create(&out, nd, dims, PN_I32, v) ? NULL : out;
}

/* the losses (B) of logits x; with w, the gradient of sum(w loss) into g; returns the code */
static int run(const float *x, const int32_t *lab, const int32_t *ll, const int32_t *tl,
               int blank, float *loss, const float *w, float *g) {
    int64_t dx[3] = {B, T, K}, dl[2] = {B, L}, db[1] = {B};
    pn_value *in[4] = {NULL, ints(lab, 2, dl), ints(ll, 1, db), ints(tl, 1, db)}, *out = NULL;
    int ia[PN_MAX_ATTRS] = {blank};
    int rc = pn_value_create(&in[0], 3, dx, PN_F32, x);
    if (!rc && w) pn_value_set_requires_grad(in[0], 1);
    rc = rc ? rc : pn_eager_op(PN_OP_CTC_LOSS, 4, in, 0, NULL, ia, NULL, 1, 0, &out);
    if (!rc) memcpy(loss, pn_value_data(out), B * sizeof(float));
    if (!rc && w && !(rc = pn_value_backward(out, w)))
        memcpy(g, pn_value_grad(in[0]), B * T * K * sizeof(float));
    pn_value_release(out);
    for (int j = 0; j < 4; j++) pn_value_release(in[j]);
    return rc;
}

int main(void) {
    unsigned s = 11;
    float x[B * T * K], g[B * T * K], loss[B], w[B] = {0.7f, -1.3f, 0.4f};
    for (int i = 0; i < B * T * K; i++) x[i] = 2.0f * frand(&s);
    /* a repeated label, a shorter one over fewer steps, an empty one */
    int32_t lab[B * L] = {1, 1, 2, 2, 1, 0, 0, 0, 0}, ll[B] = {3, 2, 0}, tl[B] = {5, 3, 4};

    for (int blank = 0; blank < 3; blank += 2) {
        int32_t lb[B * L];
        for (int i = 0; i < B * L; i++) lb[i] = lab[i] == blank ? 1 : lab[i]; /* no blank */
        CHECK(run(x, lb, ll, tl, blank, loss, w, g) == 0, "blank %d runs", blank);
        for (int b = 0; b < B; b++) {
            double want = brute(x + b * T * K, lb + b * L, ll[b], tl[b], blank);
            CHECK(fabs(loss[b] - want) < 1e-4 * fmax(1.0, fabs(want)),
                  "blank %d sample %d: %g, brute force %g", blank, b, loss[b], want);
        }
        /* d sum(w loss) / dx against central differences */
        for (int i = 0; i < B * T * K; i += 4) {
            float xp[B * T * K], xm[B * T * K], lp[B], lm[B];
            memcpy(xp, x, sizeof x);
            memcpy(xm, x, sizeof x);
            xp[i] += 1e-2f;
            xm[i] -= 1e-2f;
            run(xp, lb, ll, tl, blank, lp, NULL, NULL);
            run(xm, lb, ll, tl, blank, lm, NULL, NULL);
            double num = 0;
            for (int b = 0; b < B; b++) num += w[b] * ((double)lp[b] - lm[b]) / 2e-2;
            CHECK(fabs(g[i] - num) < 2e-3 + 2e-2 * fabs(num), "blank %d: dx[%d] %g, numeric %g",
                  blank, i, g[i], num);
        }
        /* steps past a sample's logit length: no gradient */
        CHECK(g[1 * T * K + 3 * K] == 0.0f && g[1 * T * K + 4 * K + 2] == 0.0f,
              "blank %d: no gradient past the length", blank);
    }

    /* 1 1 2 needs 4 steps (a blank between the 1s): over 3 steps it is impossible */
    {
        int32_t tl3[B] = {3, 3, 4};
        CHECK(run(x, lab, ll, tl3, 0, loss, w, g) == 0, "an impossible label runs");
        CHECK(isinf(loss[0]) && loss[0] > 0 && isfinite(loss[1]), "its loss is +inf");
        int zero = 1;
        for (int i = 0; i < T * K; i++) zero &= g[i] == 0.0f;
        CHECK(zero, "and it has no gradient");
    }

    /* bad data: a label past the classes, the blank as a label, lengths out of range */
    {
        int32_t bad_lab[B * L] = {1, 3, 2, 2, 1, 0, 0, 0, 0}, blank_lab[B * L] = {0, 1, 2,
                                                                                  2, 1, 0,
                                                                                  0, 0, 0};
        int32_t long_ll[B] = {4, 2, 0}, long_tl[B] = {6, 3, 4}, neg[B] = {3, -1, 0};
        CHECK(run(x, bad_lab, ll, tl, 0, loss, NULL, NULL) == PN_EVALUE, "class 3 of 3 refused");
        CHECK(run(x, blank_lab, ll, tl, 0, loss, NULL, NULL) == PN_EVALUE, "the blank refused");
        CHECK(run(x, lab, long_ll, tl, 0, loss, NULL, NULL) == PN_EVALUE, "label length > L");
        CHECK(run(x, lab, ll, long_tl, 0, loss, NULL, NULL) == PN_EVALUE, "logit length > T");
        CHECK(run(x, lab, neg, tl, 0, loss, NULL, NULL) == PN_EVALUE, "negative length");
        CHECK(run(x, lab, ll, tl, 0, loss, NULL, NULL) == 0, "good data runs after a fault");
    }

    printf("%d passed, %d failed\n", passed, failed);
    return failed != 0;
}
