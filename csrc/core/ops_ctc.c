/*
 * ops_ctc.c: the CTC loss (connectionist temporal classification, Graves et al. 2006), Keras's
 * ops.ctc_loss and losses.CTC.
 *
 * Per sample: logits (T, K), labels (L) int32, label length () int32, logit length () int32;
 * the output is the sample's negative log likelihood (). The blank class is iattr[0]
 * (mask_index). With the extended label l' = (blank, l1, blank, l2, ..., lN, blank),
 * S = 2N + 1, and p = softmax(logits) over the classes, in log space:
 *
 *   alpha[0][0] = log p[0][blank], alpha[0][1] = log p[0][l1]
 *   alpha[t][s] = log p[t][l's] + logsumexp(alpha[t-1][s], alpha[t-1][s-1],
 *                                           alpha[t-1][s-2] if l's != blank and l's != l'(s-2))
 *   loss = -logsumexp(alpha[T'-1][S-1], alpha[T'-1][S-2])      (T' the logit length)
 *
 * and beta the same recursion from the end. The gradient with respect to the logits is
 *   dlogits[t][k] = g (p[t][k] - sum_{s: l's = k} exp(alpha[t][s] + beta[t][s] - log p[t][k]
 *                                                      + loss))          for t < T'
 * and 0 for t >= T'. A sample no alignment can produce (a label longer than its frames allow)
 * has an infinite loss, as PyTorch's, and no gradient. Lengths outside 0..L and 0..T fail the
 * run (PN_EVALUE) with the sample's loss left at 0.
 *
 * Scratch per sample: log p (T K) and alpha (T S), kept from forward to backward; backward
 * computes beta over the same rows (T S more).
 */
#include <math.h>

#include "internal.h"

static float lse2(float a, float b) {
    if (a == -INFINITY) return b;
    if (b == -INFINITY) return a;
    float m = a > b ? a : b;
    return m + log1pf(expf(-fabsf(a - b)));
}

static int ctc_shape(const pn_model *m, pn_node *n) {
    if (n->n_in != 4 || n->n_var != 0)
        return pn_error(PN_EVALUE, "ctc_loss: takes (logits, labels, label_length, "
                        "logit_length) and no variables");
    const pn_node *x = pn_input_node(m, n, 0), *y = pn_input_node(m, n, 1);
    const pn_node *ly = pn_input_node(m, n, 2), *lx = pn_input_node(m, n, 3);
    for (int j = 0; j < 4; j++)
        if (pn_input_node(m, n, j)->unbatched)
            return pn_error(PN_EVALUE, "ctc_loss: every input needs the batch axis");
    if (x->dtype != PN_F32 || x->ndim != 2)
        return pn_error(PN_ESHAPE, "ctc_loss: logits must be float32 (batch, steps, classes)");
    if (y->dtype != PN_I32 || y->ndim != 1)
        return pn_error(PN_ESHAPE, "ctc_loss: labels must be int32 (batch, max_label_length)");
    if (ly->dtype != PN_I32 || ly->ndim != 0 || lx->dtype != PN_I32 || lx->ndim != 0)
        return pn_error(PN_ESHAPE, "ctc_loss: the lengths must be int32, one per sample");
    if (x->shape[0] < 1 || x->shape[1] < 1)
        return pn_error(PN_ESHAPE, "ctc_loss: logits need at least one step and one class");
    if (n->iattr[0] < 0 || n->iattr[0] >= x->shape[1])
        return pn_error(PN_EVALUE, "ctc_loss: mask_index %d is not a class (0..%lld)",
                        n->iattr[0], (long long)x->shape[1] - 1);
    if (y->shape[0] > (INT32_MAX - 1) / 2)
        return pn_error(PN_EVALUE, "ctc_loss: labels too long");
    n->dtype = PN_F32;
    n->ndim = 0;
    return PN_OK;
}

static void ctc_dims(const pn_model *m, const pn_node *n, int64_t *T, int64_t *K, int64_t *L) {
    const pn_node *x = pn_input_node(m, n, 0), *y = pn_input_node(m, n, 1);
    *T = x->shape[0];
    *K = x->shape[1];
    *L = y->shape[0];
}

/* per sample: log p (T K) and alpha (T S), then beta (T S) in backward */
static int64_t ctc_per_sample(int64_t T, int64_t K, int64_t L) {
    return T * K + 2 * T * (2 * L + 1);
}

static int64_t ctc_scratch(const pn_model *m, const pn_node *n, int64_t batch, int training) {
    (void)training;
    int64_t T, K, L;
    ctc_dims(m, n, &T, &K, &L);
    return batch * ctc_per_sample(T, K, L);
}

/* The extended label's class at s (blank at even s). */
static int32_t ext(const int32_t *lab, int64_t s, int32_t blank) {
    return (s & 1) ? lab[s / 2] : blank;
}

/* One sample's loss; fills logp (T K) and alpha (T S). */
static float ctc_sample_forward(float *logp, float *alpha, const float *x, const int32_t *lab,
                                int64_t Tn, int64_t N, int64_t T, int64_t K, int64_t S,
                                int32_t blank) {
    for (int64_t t = 0; t < T; t++) { /* log softmax */
        const float *xr = x + t * K;
        float *lr = logp + t * K, mx = xr[0];
        for (int64_t k = 1; k < K; k++) mx = xr[k] > mx ? xr[k] : mx;
        double sum = 0.0;
        for (int64_t k = 0; k < K; k++) sum += exp((double)(xr[k] - mx));
        float lz = mx + (float)log(sum);
        for (int64_t k = 0; k < K; k++) lr[k] = xr[k] - lz;
    }
    if (Tn == 0) return N == 0 ? 0.0f : INFINITY;
    int64_t Sn = 2 * N + 1;
    for (int64_t s = 0; s < S; s++) alpha[s] = -INFINITY;
    alpha[0] = logp[blank];
    if (Sn > 1) alpha[1] = logp[lab[0]];
    for (int64_t t = 1; t < Tn; t++) {
        const float *prev = alpha + (t - 1) * S, *lp = logp + t * K;
        float *cur = alpha + t * S;
        for (int64_t s = 0; s < S; s++) cur[s] = -INFINITY;
        for (int64_t s = 0; s < Sn; s++) {
            int32_t c = ext(lab, s, blank);
            float a = prev[s];
            if (s >= 1) a = lse2(a, prev[s - 1]);
            if (s >= 2 && c != blank && c != ext(lab, s - 2, blank)) a = lse2(a, prev[s - 2]);
            cur[s] = a == -INFINITY ? -INFINITY : a + lp[c];
        }
    }
    const float *last = alpha + (Tn - 1) * S;
    float ll = Sn > 1 ? lse2(last[Sn - 1], last[Sn - 2]) : last[0];
    return -ll;
}

/* Adds g * dloss/dlogits for one sample into dx (T K), with beta (T S) as work. */
static void ctc_sample_backward(float *dx, float g, float loss, const float *logp,
                                const float *alpha, float *beta, const int32_t *lab, int64_t Tn,
                                int64_t N, int64_t K, int64_t S, int32_t blank) {
    if (Tn == 0 || !isfinite(loss)) return;
    int64_t Sn = 2 * N + 1;
    for (int64_t t = Tn - 1; t >= 0; t--) {
        const float *lp = logp + t * K;
        float *cur = beta + t * S;
        for (int64_t s = 0; s < S; s++) cur[s] = -INFINITY;
        if (t == Tn - 1) {
            cur[Sn - 1] = lp[ext(lab, Sn - 1, blank)];
            if (Sn > 1) cur[Sn - 2] = lp[ext(lab, Sn - 2, blank)];
            continue;
        }
        const float *next = beta + (t + 1) * S;
        for (int64_t s = 0; s < Sn; s++) {
            int32_t c = ext(lab, s, blank);
            float b = next[s];
            if (s + 1 < Sn) b = lse2(b, next[s + 1]);
            if (s + 2 < Sn && c != blank && c != ext(lab, s + 2, blank)) b = lse2(b, next[s + 2]);
            cur[s] = b == -INFINITY ? -INFINITY : b + lp[c];
        }
    }
    /* occupancy: sum over s of exp(alpha + beta - log p[l's] + loss), gathered per class, then
     * dx = g (p - occupancy) */
    for (int64_t t = 0; t < Tn; t++) {
        const float *lp = logp + t * K, *a = alpha + t * S, *b = beta + t * S;
        float *d = dx + t * K;
        for (int64_t k = 0; k < K; k++) d[k] += g * expf(lp[k]);
        for (int64_t s = 0; s < Sn; s++) {
            if (a[s] == -INFINITY || b[s] == -INFINITY) continue;
            int32_t c = ext(lab, s, blank);
            d[c] -= g * expf(a[s] + b[s] - lp[c] + loss);
        }
    }
}

/* The sample's lengths, checked: 0 and the fault when outside the ranges. */
static int ctc_lengths(const pn_ctx *c, int64_t i, int64_t T, int64_t L, int64_t *Tn,
                       int64_t *N) {
    int32_t ln = ((const int32_t *)c->in[2])[i], tn = ((const int32_t *)c->in[3])[i];
    if (ln < 0 || ln > L || tn < 0 || tn > T) return 0;
    *N = ln;
    *Tn = tn;
    return 1;
}

static void ctc_forward(const pn_node *n, const pn_ctx *c) {
    const pn_node *x = c->in_node[0], *y = c->in_node[1];
    int64_t T = x->shape[0], K = x->shape[1], L = y->shape[0], S = 2 * L + 1;
    int64_t B = c->full_batch, per = ctc_per_sample(T, K, L);
    int32_t blank = n->iattr[0];
    int bad = 0;
#pragma omp parallel for reduction(| : bad) if (B * T * K > PN_PAR_MIN) num_threads(pn_threads)
    for (int64_t i = 0; i < B; i++) {
        int64_t Tn, N;
        const int32_t *lab = (const int32_t *)c->in[1] + i * L;
        int ok = ctc_lengths(c, i, T, L, &Tn, &N);
        for (int64_t j = 0; ok && j < N; j++)
            ok = lab[j] >= 0 && lab[j] < K && lab[j] != blank;
        if (!ok) {
            c->out[i] = 0.0f;
            bad = 1;
            continue;
        }
        float *logp = c->scratch + i * per;
        c->out[i] = ctc_sample_forward(logp, logp + T * K, c->in[0] + i * T * K, lab, Tn, N, T,
                                       K, S, blank);
    }
    if (bad)
        pn_fault_note(pn_error(PN_EVALUE, "ctc_loss: a label length outside 0..%lld, a logit "
                               "length outside 0..%lld, or a label outside the classes "
                               "0..%lld or equal to the blank (mask_index %d)", (long long)L,
                               (long long)T, (long long)K - 1, blank));
}

static void ctc_backward(const pn_node *n, const pn_ctx *c) {
    float *dx = pn_din_buf(c, 0);
    if (!dx) return;
    const pn_node *x = c->in_node[0], *y = c->in_node[1];
    int64_t T = x->shape[0], K = x->shape[1], L = y->shape[0], S = 2 * L + 1;
    int64_t B = c->full_batch, per = ctc_per_sample(T, K, L);
    int32_t blank = n->iattr[0];
#pragma omp parallel for if (B * T * K > PN_PAR_MIN) num_threads(pn_threads)
    for (int64_t i = 0; i < B; i++) {
        int64_t Tn, N;
        if (!ctc_lengths(c, i, T, L, &Tn, &N)) continue;
        const float *logp = c->scratch + i * per;
        ctc_sample_backward(dx + i * T * K, c->dout[i], c->out[i], logp, logp + T * K,
                            c->scratch + i * per + T * K + T * S,
                            (const int32_t *)c->in[1] + i * L, Tn, N, K, S, blank);
    }
}

const pn_op_def pn_op_ctc_loss_def = {"ctc_loss", ctc_shape, ctc_forward, ctc_backward,
                                      ctc_scratch, 0};
