/*
 * test_metrics.c: pn_metric_accumulate against naive reference computations (every threshold
 * compared with every prediction, top-k by sorting), spec validation, and a model step's metric
 * accumulators. Built and run by tests/test_c_core.py.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

/* uniform in [0, 1], multiples of 2^-16 (so no prediction sits on an AUC threshold) */
static float urand(unsigned *s) { return (frand(s) + 1.0f) * 0.5f; }

static int close_to(double a, double b, double tol) { return fabs(a - b) <= tol * (1 + fabs(b)); }

/* ---- references ---------------------------------------------------------------------------- */

/* Keras's numpy in_top_k: the target's value is >= the k-th largest (sorted) value. */
static int in_top_k_ref(const float *p, int64_t C, int64_t t, int k) {
    float *s = malloc(sizeof(float) * (size_t)C);
    memcpy(s, p, sizeof(float) * (size_t)C);
    for (int64_t i = 0; i < C; i++) /* selection sort, descending */
        for (int64_t j = i + 1; j < C; j++)
            if (s[j] > s[i]) {
                float tmp = s[i];
                s[i] = s[j], s[j] = tmp;
            }
    float kth = s[(k < C ? k : C) - 1];
    free(s);
    return p[t] >= kth;
}

static int64_t argmax_ref(const float *x, int64_t C) {
    int64_t b = 0;
    for (int64_t j = 1; j < C; j++)
        if (x[j] > x[b]) b = j;
    return b;
}

/* Keras's thresholds for AUC, compared one by one */
static void auc_ref(const float *p, const float *y, int64_t n, int T, int logits, double *out) {
    memset(out, 0, sizeof(double) * 4 * (size_t)T);
    for (int i = 0; i < T; i++) {
        float t = i == 0 ? -1e-7f : i == T - 1 ? 1.0f + 1e-7f : (float)((double)i / (T - 1));
        for (int64_t e = 0; e < n; e++) {
            float q = logits ? 1.0f / (1.0f + expf(-p[e])) : p[e];
            q = q < 0 ? 0 : q > 1 ? 1 : q;
            int pp = q > t, yp = y[e] != 0;
            out[i] += pp && yp;
            out[T + i] += pp && !yp;
            out[2 * T + i] += !pp && !yp;
            out[3 * T + i] += !pp && yp;
        }
    }
}

/* ---- tests --------------------------------------------------------------------------------- */

static void test_sizes_and_defaults(void) {
    pn_metric m = pn_metric_default(PN_METRIC_AUC);
    CHECK(m.num_thresholds == 200 && pn_metric_size(&m) == 800, "auc: 4 x 200 accumulators");
    m = pn_metric_default(PN_METRIC_PRECISION);
    CHECK(m.threshold == 0.5f && pn_metric_size(&m) == 2, "precision: tp, fp");
    m = pn_metric_default(PN_METRIC_TOP_K);
    CHECK(m.k == 5 && pn_metric_size(&m) == 1, "top-k: k=5, one sum");
    m = pn_metric_default(PN_METRIC_RMSE);
    CHECK(pn_metric_size(&m) == 1, "rmse: one sum");
    CHECK(strcmp(pn_metric_name(PN_METRIC_AUC), "auc") == 0 && !pn_metric_name(PN_METRIC_COUNT),
          "names");
}

static void test_bad_specs_are_refused(void) {
    pn_metric m = pn_metric_default(PN_METRIC_TOP_K);
    m.k = 0;
    CHECK(pn_metric_check(&m) == PN_EVALUE && strstr(pn_last_error(), "k must be"), "k = 0");
    m = pn_metric_default(PN_METRIC_PRECISION);
    m.threshold = 1.5f;
    CHECK(pn_metric_size(&m) == PN_EVALUE && strstr(pn_last_error(), "threshold"), "thr 1.5");
    m.threshold = NAN;
    CHECK(pn_metric_check(&m) == PN_EVALUE, "threshold NaN");
    m = pn_metric_default(PN_METRIC_BINARY_ACCURACY); /* any finite threshold, as Keras */
    m.threshold = -2.0f;
    CHECK(pn_metric_check(&m) == PN_OK, "binary accuracy: threshold -2");
    m.threshold = INFINITY;
    CHECK(pn_metric_check(&m) == PN_EVALUE && strstr(pn_last_error(), "finite"), "thr inf");
    m = pn_metric_default(PN_METRIC_AUC);
    m.num_thresholds = 1;
    CHECK(pn_metric_check(&m) == PN_EVALUE && strstr(pn_last_error(), "num_thresholds"), "T=1");
    m.num_thresholds = PN_MAX_THRESHOLDS + 1;
    CHECK(pn_metric_check(&m) == PN_EVALUE, "T too large");
    m.kind = PN_METRIC_COUNT;
    CHECK(pn_metric_check(&m) == PN_EVALUE, "unknown kind");
    m = pn_metric_default(PN_METRIC_SPARSE_TOP_K);
    float p[6] = {0};
    int32_t lab[2] = {0, 3};
    float s[1];
    CHECK(pn_metric_accumulate(&m, s, p, lab, 2, 3, 2) == PN_EVALUE &&
              strstr(pn_last_error(), "label 3"),
          "label out of range");
    m = pn_metric_default(PN_METRIC_MSE);
    CHECK(pn_metric_accumulate(&m, s, p, p, 3, 2, 2) == PN_ESHAPE, "3 rows in 2 samples");
}

/* Keras's documented example: AUC(num_thresholds=3) on [0, 0, 1, 1] / [0, 0.5, 0.3, 0.9] */
static void test_auc_keras_example(void) {
    pn_metric m = pn_metric_default(PN_METRIC_AUC);
    m.num_thresholds = 3;
    float y[4] = {0, 0, 1, 1}, p[4] = {0, 0.5f, 0.3f, 0.9f}, s[12];
    float want[12] = {2, 1, 0, 2, 0, 0, 0, 2, 2, 0, 1, 2}; /* tp fp tn fn */
    CHECK(pn_metric_accumulate(&m, s, p, y, 4, 1, 4) == 0, "accumulate");
    int ok = 1;
    for (int i = 0; i < 12; i++) ok &= s[i] == want[i];
    CHECK(ok, "tp fp tn fn = %g %g %g / %g %g %g / %g %g %g / %g %g %g", s[0], s[1], s[2], s[3],
          s[4], s[5], s[6], s[7], s[8], s[9], s[10], s[11]);
}

static void test_auc_matches_every_threshold(void) {
    int Ts[] = {2, 3, 7, 200, 1000};
    unsigned seed = 5;
    int64_t n = 3000;
    float *p = malloc(sizeof(float) * n), *y = malloc(sizeof(float) * n);
    for (int64_t i = 0; i < n; i++) {
        p[i] = urand(&seed);
        y[i] = urand(&seed) < 0.3f + 0.4f * p[i] ? 1.0f : 0.0f;
    }
    /* end points, out-of-range predictions and non-0/1 targets */
    p[0] = 0.0f, p[1] = 1.0f, p[2] = 0.5f, p[3] = -0.25f, p[4] = 1.75f, y[5] = 0.3f;
    for (int logits = 0; logits <= 1; logits++)
        for (int t = 0; t < 5; t++) {
            pn_metric m = pn_metric_default(PN_METRIC_AUC);
            m.num_thresholds = Ts[t], m.from_logits = logits;
            int size = pn_metric_size(&m);
            float *s = malloc(sizeof(float) * (size_t)size);
            double *ref = malloc(sizeof(double) * (size_t)size);
            CHECK(pn_metric_accumulate(&m, s, p, y, n / 2, 2, n / 2) == 0, "auc T=%d", Ts[t]);
            auc_ref(p, y, n, Ts[t], logits, ref);
            int bad = -1;
            for (int i = 0; i < size && bad < 0; i++)
                if (s[i] != ref[i]) bad = i;
            CHECK(bad < 0, "auc T=%d logits=%d: accumulator %d is %g, reference %g", Ts[t], logits,
                  bad, bad < 0 ? 0.0 : s[bad], bad < 0 ? 0.0 : ref[bad]);
            free(s);
            free(ref);
        }
    free(p);
    free(y);
}

static void test_precision_recall(void) {
    unsigned seed = 11;
    int64_t n = 999;
    float *p = malloc(sizeof(float) * n), *y = malloc(sizeof(float) * n);
    for (int64_t i = 0; i < n; i++) p[i] = urand(&seed), y[i] = urand(&seed) < 0.4f;
    p[0] = 0.5f, y[0] = 1; /* at the threshold: not positive */
    float thr[3] = {0.5f, 0.0f, 0.8f};
    for (int t = 0; t < 3; t++) {
        double tp = 0, fp = 0, fn = 0;
        for (int64_t i = 0; i < n; i++) {
            tp += p[i] > thr[t] && y[i] != 0;
            fp += p[i] > thr[t] && y[i] == 0;
            fn += !(p[i] > thr[t]) && y[i] != 0;
        }
        pn_metric m = pn_metric_default(PN_METRIC_PRECISION);
        m.threshold = thr[t];
        float s[2], r[2];
        pn_metric_accumulate(&m, s, p, y, 333, 3, 111);
        m.kind = PN_METRIC_RECALL;
        pn_metric_accumulate(&m, r, p, y, 333, 3, 111);
        CHECK(s[0] == tp && s[1] == fp && r[0] == tp && r[1] == fn,
              "thr %g: tp %g fp %g fn %g vs %g %g %g", thr[t], s[0], s[1], r[1], tp, fp, fn);
    }
    free(p);
    free(y);
}

static void test_top_k_dense_and_sparse(void) {
    unsigned seed = 3;
    const int64_t B = 40, T = 2, R = B * T, C = 9;
    float *p = malloc(sizeof(float) * R * C), *y = calloc((size_t)(R * C), sizeof(float));
    int32_t *lab = malloc(sizeof(int32_t) * R);
    for (int64_t i = 0; i < R * C; i++) p[i] = floorf(urand(&seed) * 8) / 8; /* many ties */
    for (int64_t r = 0; r < R; r++) {
        lab[r] = (int32_t)(urand(&seed) * C) % C;
        y[r * C + lab[r]] = 1.0f;
    }
    int ks[] = {1, 2, 5, 9, 20};
    for (int t = 0; t < 5; t++) {
        double hits = 0;
        for (int64_t r = 0; r < R; r++) hits += in_top_k_ref(p + r * C, C, lab[r], ks[t]);
        pn_metric m = pn_metric_default(PN_METRIC_TOP_K);
        m.k = ks[t];
        float s[1], ss[1];
        pn_metric_accumulate(&m, s, p, y, R, C, B);
        m.kind = PN_METRIC_SPARSE_TOP_K;
        pn_metric_accumulate(&m, ss, p, lab, R, C, B);
        CHECK(close_to(s[0], hits / T, 1e-6) && close_to(ss[0], hits / T, 1e-6),
              "k=%d: %g, %g vs %g", ks[t], s[0], ss[0], hits / T);
    }
    double acc = 0;
    for (int64_t r = 0; r < R; r++) acc += argmax_ref(p + r * C, C) == lab[r];
    pn_metric m = pn_metric_default(PN_METRIC_CATEGORICAL_ACCURACY);
    float s[1];
    pn_metric_accumulate(&m, s, p, y, R, C, B);
    CHECK(close_to(s[0], acc / T, 1e-6), "categorical accuracy %g vs %g", s[0], acc / T);
    free(p);
    free(y);
    free(lab);
}

/* mean metrics: per-row means summed over rows, over the rows per sample */
static void test_mean_metrics(void) {
    unsigned seed = 9;
    const int64_t B = 10, T = 3, R = B * T, C = 4;
    float p[120], y[120];
    for (int i = 0; i < R * C; i++) p[i] = urand(&seed), y[i] = urand(&seed) < 0.5f;
    double ba = 0, mae = 0, mse = 0;
    for (int64_t r = 0; r < R; r++) {
        double a = 0, b = 0, c = 0;
        for (int64_t j = 0; j < C; j++) {
            float d = p[r * C + j] - y[r * C + j];
            a += (p[r * C + j] > 0.3f) == (y[r * C + j] != 0), b += fabs(d), c += d * d;
        }
        ba += a / C, mae += b / C, mse += c / C;
    }
    pn_metric_kind kinds[4] = {PN_METRIC_BINARY_ACCURACY, PN_METRIC_MAE, PN_METRIC_MSE,
                               PN_METRIC_RMSE};
    double want[4] = {ba / T, mae / T, mse / T, mse / T};
    for (int i = 0; i < 4; i++) {
        pn_metric m = pn_metric_default(kinds[i]);
        m.threshold = 0.3f;
        float s[1];
        pn_metric_accumulate(&m, s, p, y, R, C, B);
        CHECK(close_to(s[0], want[i], 1e-5), "%s: %g vs %g", pn_metric_name(kinds[i]), s[0],
              want[i]);
    }
}

/* a step's results: the loss, then each metric's accumulators, as pn_metric_accumulate gives
 * them on the model's predictions; a sparse/dense mismatch is refused at compile */
static void test_model_step_returns_accumulators(void) {
    pn_model *m;
    pn_model_create(&m);
    int vk, vb, in, d, o;
    int64_t ks[2] = {3, 2}, bs[1] = {2}, xs[1] = {3};
    pn_model_add_variable(m, 2, ks, 1, &vk);
    pn_model_add_variable(m, 1, bs, 1, &vb);
    pn_model_alloc(m);
    unsigned seed = 17;
    for (int i = 0; i < 8; i++) pn_model_params(m)[i] = frand(&seed);
    pn_model_add_input(m, 1, xs, PN_F32, &in);
    pn_model_add_node(m, PN_OP_DENSE, 1, &in, 2, (int[]){vk, vb}, NULL, NULL, &d);
    pn_model_add_node(m, PN_OP_SIGMOID, 1, &d, 0, NULL, NULL, NULL, &o);
    pn_model_set_output(m, o);
    pn_metric mets[3] = {pn_metric_default(PN_METRIC_PRECISION),
                         pn_metric_default(PN_METRIC_AUC), pn_metric_default(PN_METRIC_RMSE)};
    mets[1].num_thresholds = 50;
    CHECK(pn_model_compile(m, PN_LOSS_BINARY_CE, 0, 3, mets) == 0, "compile");
    CHECK(pn_model_result_count(m) == 1 + 2 + 200 + 1, "result count %d",
          pn_model_result_count(m));
    float x[60], y[40], pred[40];
    for (int i = 0; i < 60; i++) x[i] = frand(&seed);
    for (int i = 0; i < 40; i++) y[i] = frand(&seed) > 0;
    pn_tensor tx = {2, {20, 3}, PN_F32, x}, ty = {2, {20, 2}, PN_F32, y};
    float res[204], want[204];
    CHECK(pn_model_test_step(m, &tx, &ty, NULL, NULL, 0, res) == 0, "test step");
    pn_model_predict(m, &tx, 20, (float *[]){pred});
    int off = 1;
    for (int i = 0; i < 3; i++) {
        pn_metric_accumulate(&mets[i], want + off, pred, y, 20, 2, 20);
        off += pn_metric_size(&mets[i]);
    }
    int bad = -1;
    for (int i = 1; i < 204 && bad < 0; i++)
        if (!close_to(res[i], want[i], 1e-5)) bad = i;
    CHECK(bad < 0, "result %d: %g vs %g", bad, bad < 0 ? 0 : res[bad], bad < 0 ? 0 : want[bad]);

    /* two outputs (the same node twice): output 1's metrics start after all of output 0's */
    CHECK(pn_model_set_outputs(m, 2, (int[]){o, o}) == 0, "two outputs");
    pn_loss_config cfg[2] = {
        {.loss = PN_LOSS_BINARY_CE, .weight = 1.0f, .n_metrics = 1, .metrics = {mets[1]}},
        {.loss = PN_LOSS_MSE, .weight = 1.0f, .n_metrics = 1, .metrics = {mets[0]}},
    };
    CHECK(pn_model_compile_outputs(m, cfg) == 0, "compile two outputs");
    CHECK(pn_model_result_count(m) == 3 + 200 + 2, "count %d", pn_model_result_count(m));
    float res2[205];
    pn_tensor ys[2] = {ty, ty};
    CHECK(pn_model_test_step(m, &tx, ys, NULL, NULL, 0, res2) == 0, "two-output step");
    bad = -1;
    for (int i = 0; i < 202 && bad < 0; i++) /* want: precision at 1, auc at 3 */
        if (!close_to(res2[3 + i], i < 200 ? want[3 + i] : want[1 + i - 200], 1e-5)) bad = i;
    CHECK(bad < 0, "two outputs: accumulator %d", bad);

    pn_metric sp = pn_metric_default(PN_METRIC_SPARSE_TOP_K);
    CHECK(pn_model_compile(m, PN_LOSS_MSE, 0, 1, &sp) == PN_EVALUE &&
              strstr(pn_last_error(), "integer labels"),
          "sparse top-k with float targets");
    pn_metric auc = pn_metric_default(PN_METRIC_AUC);
    CHECK(pn_model_compile(m, PN_LOSS_SPARSE_CE, 0, 1, &auc) == PN_EVALUE &&
              strstr(pn_last_error(), "auc"),
          "auc with integer labels");
    auc.num_thresholds = 0;
    CHECK(pn_model_compile(m, PN_LOSS_BINARY_CE, 0, 1, &auc) == PN_EVALUE, "bad spec");
    CHECK(pn_model_result_count(m) == 205, "a refused compile keeps the previous one");
    pn_model_destroy(m);
}

int main(void) {
    test_sizes_and_defaults();
    test_bad_specs_are_refused();
    test_auc_keras_example();
    test_auc_matches_every_threshold();
    test_precision_recall();
    test_top_k_dense_and_sparse();
    test_mean_metrics();
    test_model_step_returns_accumulators();
    printf("%d passed, %d failed\n", passed, failed);
    return failed != 0;
}
