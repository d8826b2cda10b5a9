/*
 * metrics.c: metrics as accumulators, with Keras 3's definitions (see pynn.h for the layout).
 *
 * The predictions are R rows of C values (R = batch * rows per sample). A mean metric's one
 * accumulator is the sum over the batch's samples of the metric's mean over each sample's rows:
 *   binary accuracy  mean_c [(p > thr) == y]     mae  mean_c |p - y|    mse, rmse  mean_c (p - y)^2
 *   categorical      argmax p == argmax y        sparse  argmax p == label
 *   top-k            #{j : p_j > p_t} < k, t = argmax y (or the label): ties with p_t count in
 * With a mask on the output (one value per row, non-zero keeps it) a mean metric sums over the
 * kept rows only, and the step reports the batch's weight, kept rows / rows per sample, which
 * the epoch's value divides by in place of the samples (Keras's MeanMetricWrapper with the mask
 * as its sample weight: a mean over the epoch's kept rows). RMSE (a Mean of (p - y)^2 in Keras,
 * which carries no mask) and the confusion metrics count every row.
 * Confusion metrics count elements: positive prediction p > thr, positive target y != 0.
 *   precision  tp, fp       recall  tp, fn
 *   AUC        each p (clipped to [0, 1]) falls in bucket b = max(ceil(p (T - 1)) - 1, 0), the
 *              last threshold it is above; tp[i] = #{positives with b >= i}, fp likewise over
 *              negatives, fn = P - tp, tn = N - fp. One pass to bucket, one over the buckets.
 */
#include <math.h>
#include <string.h>

#include "internal.h"

static const char *const metric_names[PN_METRIC_COUNT] = {
    [PN_METRIC_BINARY_ACCURACY] = "binary_accuracy",
    [PN_METRIC_CATEGORICAL_ACCURACY] = "categorical_accuracy",
    [PN_METRIC_SPARSE_ACCURACY] = "sparse_categorical_accuracy",
    [PN_METRIC_MAE] = "mean_absolute_error",
    [PN_METRIC_MSE] = "mean_squared_error",
    [PN_METRIC_TOP_K] = "top_k_categorical_accuracy",
    [PN_METRIC_SPARSE_TOP_K] = "sparse_top_k_categorical_accuracy",
    [PN_METRIC_PRECISION] = "precision",
    [PN_METRIC_RECALL] = "recall",
    [PN_METRIC_AUC] = "auc",
    [PN_METRIC_RMSE] = "root_mean_squared_error",
};
_Static_assert(PN_METRIC_COUNT == 11, "add the new metric to metric_names");

pn_metric pn_metric_default(pn_metric_kind kind) {
    return (pn_metric){.kind = kind, .k = 5, .threshold = 0.5f, .num_thresholds = 200};
}

int pn_metric_sparse_targets(pn_metric_kind kind) {
    return kind == PN_METRIC_SPARSE_ACCURACY || kind == PN_METRIC_SPARSE_TOP_K;
}

int pn_metric_reads_mask(pn_metric_kind kind) {
    switch (kind) {
    case PN_METRIC_BINARY_ACCURACY:
    case PN_METRIC_CATEGORICAL_ACCURACY:
    case PN_METRIC_SPARSE_ACCURACY:
    case PN_METRIC_MAE:
    case PN_METRIC_MSE:
    case PN_METRIC_TOP_K:
    case PN_METRIC_SPARSE_TOP_K: return 1;
    default: return 0;
    }
}

const char *pn_metric_name(pn_metric_kind kind) {
    return (int)kind >= 0 && kind < PN_METRIC_COUNT ? metric_names[kind] : NULL;
}

int pn_metric_check(const pn_metric *m) {
    if ((int)m->kind < 0 || m->kind >= PN_METRIC_COUNT)
        return pn_error(PN_EVALUE, "unknown metric %d", (int)m->kind);
    const char *name = metric_names[m->kind];
    switch (m->kind) {
    case PN_METRIC_TOP_K:
    case PN_METRIC_SPARSE_TOP_K:
        if (m->k < 1) return pn_error(PN_EVALUE, "%s: k must be at least 1, got %d", name, m->k);
        break;
    case PN_METRIC_BINARY_ACCURACY: /* any threshold, as Keras (0 for logits) */
        if (!isfinite(m->threshold))
            return pn_error(PN_EVALUE, "%s: threshold must be finite, got %g", name,
                            (double)m->threshold);
        break;
    case PN_METRIC_PRECISION:
    case PN_METRIC_RECALL:
        if (!(m->threshold >= 0.0f && m->threshold <= 1.0f))
            return pn_error(PN_EVALUE, "%s: threshold must be in [0, 1], got %g", name,
                            (double)m->threshold);
        break;
    case PN_METRIC_AUC:
        if (m->num_thresholds < 2 || m->num_thresholds > PN_MAX_THRESHOLDS)
            return pn_error(PN_EVALUE, "auc: num_thresholds must be in [2, %d], got %d",
                            PN_MAX_THRESHOLDS, m->num_thresholds);
        break;
    default: break;
    }
    return PN_OK;
}

int pn_metric_size(const pn_metric *m) {
    int rc = pn_metric_check(m);
    if (rc) return rc;
    switch (m->kind) {
    case PN_METRIC_PRECISION:
    case PN_METRIC_RECALL: return 2;
    case PN_METRIC_AUC: return 4 * m->num_thresholds;
    default: return 1;
    }
}

static int64_t argmax(const float *x, int64_t C) {
    int64_t best = 0;
    for (int64_t j = 1; j < C; j++)
        if (x[j] > x[best]) best = j;
    return best;
}

/* sum over all n elements of [(p > thr) == y], |p - y| or (p - y)^2 */
static double elementwise_sum(pn_metric_kind kind, float thr, const float *restrict p,
                              const float *restrict y, int64_t n) {
    double s = 0.0;
    switch (kind) {
    case PN_METRIC_BINARY_ACCURACY:
        for (int64_t i = 0; i < n; i++) s += (p[i] > thr ? 1.0f : 0.0f) == y[i];
        break;
    case PN_METRIC_MAE:
        for (int64_t i = 0; i < n; i++) s += fabsf(p[i] - y[i]);
        break;
    default: /* MSE, RMSE */
        for (int64_t i = 0; i < n; i++) s += (double)(p[i] - y[i]) * (p[i] - y[i]);
        break;
    }
    return s;
}

/* the same over the rows the mask keeps (each row's C values in one sum, then the rows) */
static double elementwise_sum_kept(pn_metric_kind kind, float thr, const float *p,
                                   const float *y, const float *mask, int64_t R, int64_t C) {
    double s = 0.0;
    for (int64_t r = 0; r < R; r++)
        if (mask[r] != 0.0f) s += elementwise_sum(kind, thr, p + r * C, y + r * C, C);
    return s;
}

/* rows (that the mask keeps, when non-NULL) whose target class t (argmax of y, or the label) is
 * argmax p (k = 0) or has fewer than k predictions above p_t */
static int64_t class_hits(const float *p, const float *y, const int32_t *lab, const float *mask,
                          int64_t R, int64_t C, int k) {
    int64_t hits = 0;
    for (int64_t r = 0; r < R; r++) {
        if (mask && mask[r] == 0.0f) continue;
        const float *pr = p + r * C;
        int64_t t = lab ? lab[r] : argmax(y + r * C, C);
        if (k == 0) {
            hits += argmax(pr, C) == t;
        } else {
            const float v = pr[t];
            int64_t above = 0;
            for (int64_t j = 0; j < C; j++) above += pr[j] > v;
            hits += above < k;
        }
    }
    return hits;
}

/* tp, fp, fn at one threshold over n elements */
static void confusion(const float *restrict p, const float *restrict y, int64_t n, float thr,
                      int64_t *tp, int64_t *fp, int64_t *fn) {
    int64_t a = 0, b = 0, c = 0;
    for (int64_t i = 0; i < n; i++) {
        int pp = p[i] > thr, yp = y[i] != 0.0f;
        a += pp & yp;
        b += pp & (!yp);
        c += (!pp) & yp;
    }
    *tp = a, *fp = b, *fn = c;
}

/* AUC's tp[T], fp[T], tn[T], fn[T] into s. The buckets (T - 1 of them) are counted in place:
 * positives in the fn block, negatives in the tn block, then turned into suffix sums. */
static void auc_counts(float *s, const float *restrict p, const float *restrict y, int64_t n,
                       int T, int from_logits) {
    float *tp = s, *fp = s + T, *tn = s + 2 * T, *fn = s + 3 * T;
    float *hpos = fn, *hneg = tn;
    memset(s, 0, (size_t)4 * (size_t)T * sizeof(float));
    const float scale = (float)(T - 1);
    for (int64_t i = 0; i < n; i++) {
        float q = from_logits ? 1.0f / (1.0f + expf(-p[i])) : p[i];
        q = fminf(fmaxf(q, 0.0f), 1.0f); /* NaN becomes 0 */
        int b = (int)ceilf(q * scale) - 1;
        b = b < 0 ? 0 : b;
        (y[i] != 0.0f ? hpos : hneg)[b] += 1.0f;
    }
    double P = 0.0, N = 0.0;
    tp[T - 1] = fp[T - 1] = 0.0f;
    for (int i = T - 2; i >= 0; i--) {
        P += hpos[i];
        N += hneg[i];
        tp[i] = (float)P;
        fp[i] = (float)N;
    }
    for (int i = 0; i < T; i++) {
        fn[i] = (float)(P - tp[i]);
        tn[i] = (float)(N - fp[i]);
    }
}

/* pn_metric_accumulate, with a mask (NULL: none) leaving rows out of the mean metrics */
static int accumulate(const pn_metric *m, float *sums, const float *pred, const void *target,
                      const float *mask, int64_t R, int64_t C, int64_t batch) {
    int rc = pn_metric_check(m);
    if (rc) return rc;
    if (R < 0 || C < 1 || batch < 0 || (batch == 0) != (R == 0) || (batch > 0 && R % batch))
        return pn_error(PN_ESHAPE, "%s: %lld rows of %lld values do not split into %lld samples",
                        metric_names[m->kind], (long long)R, (long long)C, (long long)batch);
    const float *y = target;
    const int32_t *lab = target;
    if (pn_metric_sparse_targets(m->kind))
        for (int64_t r = 0; r < R; r++)
            if (lab[r] < 0 || lab[r] >= C)
                return pn_error(PN_EVALUE,
                                "%s: label %d is out of range for %lld classes (valid labels "
                                "are 0..%lld)",
                                metric_names[m->kind], (int)lab[r], (long long)C,
                                (long long)(C - 1));
    const int64_t n = R * C;
    /* a per-row value summed over rows, divided by the rows per sample: a sum over samples */
    const double per_sample = R ? (double)batch / (double)R : 0.0;
    int64_t tp, fp, fn;
    switch (m->kind) {
    case PN_METRIC_BINARY_ACCURACY:
    case PN_METRIC_MAE:
    case PN_METRIC_MSE:
    case PN_METRIC_RMSE: /* no mask: pn_metrics_sum passes none */
        sums[0] = (float)((mask ? elementwise_sum_kept(m->kind, m->threshold, pred, y, mask, R, C)
                                : elementwise_sum(m->kind, m->threshold, pred, y, n)) /
                          (double)C * per_sample);
        break;
    case PN_METRIC_CATEGORICAL_ACCURACY:
        sums[0] = (float)((double)class_hits(pred, y, NULL, mask, R, C, 0) * per_sample);
        break;
    case PN_METRIC_SPARSE_ACCURACY:
        sums[0] = (float)((double)class_hits(pred, NULL, lab, mask, R, C, 0) * per_sample);
        break;
    case PN_METRIC_TOP_K:
        sums[0] = (float)((double)class_hits(pred, y, NULL, mask, R, C, m->k) * per_sample);
        break;
    case PN_METRIC_SPARSE_TOP_K:
        sums[0] = (float)((double)class_hits(pred, NULL, lab, mask, R, C, m->k) * per_sample);
        break;
    case PN_METRIC_PRECISION:
    case PN_METRIC_RECALL:
        confusion(pred, y, n, m->threshold, &tp, &fp, &fn);
        sums[0] = (float)tp;
        sums[1] = (float)(m->kind == PN_METRIC_PRECISION ? fp : fn);
        break;
    case PN_METRIC_AUC:
        auc_counts(sums, pred, y, n, m->num_thresholds, m->from_logits);
        break;
    default: break;
    }
    return PN_OK;
}

int pn_metric_accumulate(const pn_metric *m, float *sums, const float *pred, const void *target,
                         int64_t R, int64_t C, int64_t batch) {
    return accumulate(m, sums, pred, target, NULL, R, C, batch);
}

/* Output k's metrics for the plan's batch, each metric's accumulators in turn. Compile checked
 * the specs and the kind of targets; the loss checked sparse labels. */
void pn_metrics_sum(const pn_model *m, const pn_plan *p, int k, const void *y, float *sums) {
    const pn_node *o = &m->g->nodes[m->g->outputs[k]];
    const int64_t C = o->shape[o->ndim - 1], R = p->batch * (o->size / C);
    const pn_loss_config *cfg = &m->g->out[k];
    const float *out = p->value[m->g->outputs[k]];
    const float *mask = m->g->masks[k] >= 0 ? p->value[m->g->masks[k]] : NULL;
    for (int i = 0; i < cfg->n_metrics; i++) {
        const int reads = pn_metric_reads_mask(cfg->metrics[i].kind);
        accumulate(&cfg->metrics[i], sums, out, y, reads ? mask : NULL, R, C, p->batch);
        sums += pn_metric_size(&cfg->metrics[i]);
    }
}

/* kept rows / rows per sample: what a masked output's mean metrics divide by (the batch's
 * samples when every row is kept) */
float pn_metrics_weight(const pn_model *m, const pn_plan *p, int k) {
    const pn_node *o = &m->g->nodes[m->g->outputs[k]];
    const int64_t rows = o->size / o->shape[o->ndim - 1], R = p->batch * rows;
    const float *mask = p->value[m->g->masks[k]];
    int64_t kept = 0;
    for (int64_t r = 0; r < R; r++) kept += mask[r] != 0.0f;
    return (float)((double)kept / (double)rows);
}
