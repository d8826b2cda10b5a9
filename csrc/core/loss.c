/*
 * loss.c: losses and weight penalties, with Keras 3's definitions and reductions.
 *
 * The output is viewed as R rows of C values (R = batch * all axes but the last). Each loss is a
 * per-row value averaged over the R rows ("sum over batch size"). Metrics are in metrics.c.
 *   mse   mean_c (p - y)^2                   mae  mean_c |p - y|
 *   bce   mean_c -(y log p + (1 - y) log(1 - p))
 *   cce   -sum_c y log p                     sparse  -log p[label]
 * With logits z (from_logits, or a softmax/sigmoid output folded into the loss) the cross-entropies
 * are computed from z, exactly: lse(z) - z[label], and max(z,0) - z y + log1p(e^-|z|); their
 * gradients are (p - y) / R and (p - y) / (R C). Probabilities are clipped to [1e-7, 1 - 1e-7]
 * as Keras does when they are not logits.
 * With a mask (one value per row, pn_model_set_output_masks) the mean is over the kept rows:
 * sum_r l_r w_r m_r / sum_r m_r, m_r = [mask_r != 0] (Keras's apply_mask: weight total / valid on
 * kept rows), and 0 when none is kept; masked rows get a zero gradient.
 * With several outputs each has its own loss and metrics; output k's loss gradient is scaled by
 * its weight, and written (=) or added (+=) to its loss node's gradient (p->loss_acc[k]: an
 * earlier loss wrote that buffer).
 * PN_LOSS_NONE (a traced loss function, computed by the graph's added losses from its target
 * nodes) is 0 here and writes a zero gradient.
 */
#include <math.h>
#include <string.h>

#include "internal.h"
#include "vmath.h"

#define PN_EPS 1e-7f

static void rows_cols(const pn_model *m, int k, int64_t batch, int64_t *R, int64_t *C) {
    const pn_node *o = &m->g->nodes[m->g->outputs[k]];
    *C = o->shape[o->ndim - 1];
    *R = batch * (o->size / *C);
}

int64_t pn_loss_target_size(const pn_model *m, int k) {
    const pn_node *o = &m->g->nodes[m->g->outputs[k]];
    if (m->g->out[k].loss == PN_LOSS_NONE) /* what its target node holds, else the output's */
        return m->g->targets[k][0] ? m->g->nodes[m->g->targets[k][0] - 1].size : o->size;
    return m->g->out[k].loss == PN_LOSS_SPARSE_CE ? o->size / o->shape[o->ndim - 1] : o->size;
}

int pn_loss_check_labels(const int32_t *t, int64_t R, int64_t C) {
    for (int64_t r = 0; r < R; r++)
        if (t[r] < 0 || t[r] >= C)
            return pn_error(PN_EVALUE,
                            "sparse_categorical_crossentropy: label %d is out of range for %lld "
                            "classes (valid labels are 0..%lld)",
                            (int)t[r], (long long)C, (long long)(C - 1));
    return PN_OK;
}

int pn_loss_check_targets(const pn_model *m, int k, const pn_tensor *y, int64_t rows) {
    if (m->g->out[k].loss != PN_LOSS_SPARSE_CE) return PN_OK;
    int64_t R, C;
    rows_cols(m, k, rows, &R, &C);
    return pn_loss_check_labels(y->data, R, C);
}

/* Output k's loss in a plan as rows: its output, and the logits its loss reads. */
static pn_loss_rows plan_rows(const pn_model *m, const pn_plan *p, int k, const void *y,
                              const float *w) {
    pn_loss_rows L = {.kind = m->g->out[k].loss, .from_logits = m->g->out[k].from_logits,
                      .fused = p->fused[k], .out = p->value[m->g->outputs[k]],
                      .z = p->value[p->loss_node[k]], .y = y, .w = w,
                      .mask = m->g->masks[k] >= 0 ? p->value[m->g->masks[k]] : NULL};
    rows_cols(m, k, p->batch, &L.R, &L.C);
    L.rows_per_w = L.R / p->batch;
    return L;
}

/* Returns output k's mean loss, unweighted, without penalties. */
float pn_loss_forward(const pn_model *m, const pn_plan *p, int k, const void *y, const float *w) {
    if (m->g->out[k].loss == PN_LOSS_NONE) return 0.0f; /* the added losses are its loss */
    pn_loss_rows L = plan_rows(m, p, k, y, w);
    return (float)pn_loss_value(&L);
}

/* Writes (or, with p->loss_acc[k], adds) weight * dloss/d(loss node) into output k's loss node's
 * gradient. */
void pn_loss_backward(const pn_model *m, pn_plan *p, int k, const void *y, const float *w) {
    float *g = p->grad[p->loss_node[k]];
    if (!g) return;
    if (m->g->out[k].loss == PN_LOSS_NONE) { /* no gradient of its own: 0, which the added
                                                * losses' backward then adds to */
        if (!p->loss_acc[k])
            memset(g, 0, (size_t)(p->batch * m->g->nodes[p->loss_node[k]].size) * sizeof *g);
        return;
    }
    pn_loss_rows L = plan_rows(m, p, k, y, w);
    pn_loss_grad(&L, g, m->g->out[k].weight, p->loss_acc[k]);
}

/* Rows are split over the threads above this many values (each costs an exponential or so) */
#define LOSS_PAR_MIN 16384
/* pn_loss_value sums its rows in this many fixed blocks, then the blocks in order: the same
 * total at any thread count */
#define LOSS_BLOCKS 64

static float logsumexp(const float *z, int64_t C) {
    float mx = z[0]; /* a NaN logit makes the sum below NaN, whichever the max */
#pragma omp simd reduction(max : mx)
    for (int64_t j = 1; j < C; j++) mx = z[j] > mx ? z[j] : mx;
    float s = 0.0f;
#pragma omp simd reduction(+ : s)
    for (int64_t j = 0; j < C; j++) s += pn_exp(z[j] - mx);
    return mx + logf(s);
}

static float clip_p(float p) { return fminf(fmaxf(p, PN_EPS), 1.0f - PN_EPS); }

/* The rows the mean divides by: all of them, or those the mask keeps. */
static int64_t kept_rows(const pn_loss_rows *L) {
    if (!L->mask) return L->R;
    int64_t kept = 0;
    for (int64_t r = 0; r < L->R; r++) kept += L->mask[r] != 0.0f;
    return kept;
}

/* row r's loss, times its sample weight (0 for a masked row, whatever its values) */
static double row_loss(const pn_loss_rows *L, int64_t r) {
    if (L->mask && L->mask[r] == 0.0f) return 0.0;
    const int64_t C = L->C;
    const int logits = L->fused || L->from_logits;
    const int32_t *lab = L->y;
    const float *pr = L->out + r * C, *zr = L->z + r * C, *yr = (const float *)L->y + r * C;
    double l = 0.0;
    switch (L->kind) {
    case PN_LOSS_MSE:
        for (int64_t j = 0; j < C; j++) l += (double)(pr[j] - yr[j]) * (pr[j] - yr[j]);
        l /= (double)C;
        break;
    case PN_LOSS_MAE:
        for (int64_t j = 0; j < C; j++) l += fabsf(pr[j] - yr[j]);
        l /= (double)C;
        break;
    case PN_LOSS_BINARY_CE:
        for (int64_t j = 0; j < C; j++) {
            if (logits)
                l += fmaxf(zr[j], 0.0f) - zr[j] * yr[j] + log1pf(expf(-fabsf(zr[j])));
            else {
                float q = clip_p(pr[j]);
                l -= yr[j] * logf(q) + (1.0f - yr[j]) * logf(1.0f - q);
            }
        }
        l /= (double)C;
        break;
    case PN_LOSS_CATEGORICAL_CE:
        if (logits) {
            float lse = logsumexp(zr, C);
            for (int64_t j = 0; j < C; j++) l += yr[j] * (lse - zr[j]);
        } else {
            float s = 0.0f;
            for (int64_t j = 0; j < C; j++) s += pr[j];
            for (int64_t j = 0; j < C; j++) l -= yr[j] * logf(clip_p(pr[j] / s));
        }
        break;
    case PN_LOSS_SPARSE_CE:
        if (logits)
            l = logsumexp(zr, C) - zr[lab[r]];
        else {
            float s = 0.0f;
            for (int64_t j = 0; j < C; j++) s += pr[j];
            l = -logf(clip_p(pr[lab[r]] / s));
        }
        break;
    default: break;
    }
    return L->w ? l * L->w[r / L->rows_per_w] : l;
}

double pn_loss_value(const pn_loss_rows *L) {
    const int64_t R = L->R, nb = R < LOSS_BLOCKS ? R : LOSS_BLOCKS;
    double part[LOSS_BLOCKS], total = 0.0;
#pragma omp parallel for num_threads(pn_threads) if (R * L->C >= LOSS_PAR_MIN)
    for (int64_t b = 0; b < nb; b++) {
        double sum = 0.0;
        for (int64_t r = R * b / nb; r < R * (b + 1) / nb; r++) sum += row_loss(L, r);
        part[b] = sum;
    }
    for (int64_t b = 0; b < nb; b++) total += part[b];
    if (!L->mask) return total / (double)R;
    const int64_t kept = kept_rows(L);
    return kept ? total / (double)kept : 0.0; /* Keras's divide_no_nan */
}

/* The gradient of the mean loss, times w, with respect to the logits z when the loss reads
 * logits (fused or from_logits), else to the outputs: written into g, or added with acc. */
void pn_loss_grad(const pn_loss_rows *L, float *g, float w, int acc) {
    const int64_t R = L->R, C = L->C;
    const int fused = L->fused;
    const float *out = L->out, *z = L->z;
    const float *y = L->y;
    const int32_t *lab = L->y;
    const int64_t kept = kept_rows(L); /* R without a mask */
    const float wr = !L->mask || kept ? w / (float)kept : 0.0f,
                wrc = !L->mask || kept ? w / (float)(kept * C) : 0.0f;
#define PUT(j, v) (gr[j] = acc ? gr[j] + (v) : (v))
#pragma omp parallel for num_threads(pn_threads) if (R * C >= LOSS_PAR_MIN)
    for (int64_t r = 0; r < R; r++) {
        const float *pr = out + r * C, *zr = z + r * C, *yr = y + r * C;
        float *gr = g + r * C;
        if (L->mask && L->mask[r] == 0.0f) { /* a masked row: no gradient, whatever its values */
            for (int64_t j = 0; j < C; j++) PUT(j, 0.0f);
            continue;
        }
        const float sw = L->w ? L->w[r / L->rows_per_w] : 1.0f; /* the row's sample weight */
        const float inv_r = wr * sw, inv_rc = wrc * sw;
        switch (L->kind) {
        case PN_LOSS_MSE:
            for (int64_t j = 0; j < C; j++) PUT(j, 2.0f * (pr[j] - yr[j]) * inv_rc);
            break;
        case PN_LOSS_MAE:
            for (int64_t j = 0; j < C; j++) {
                float d = pr[j] - yr[j];
                PUT(j, (d > 0.0f ? 1.0f : d < 0.0f ? -1.0f : 0.0f) * inv_rc);
            }
            break;
        case PN_LOSS_BINARY_CE:
            for (int64_t j = 0; j < C; j++) {
                if (fused)
                    PUT(j, (pr[j] - yr[j]) * inv_rc);
                else if (L->from_logits)
                    PUT(j, (pn_sigmoid(zr[j]) - yr[j]) * inv_rc);
                else {
                    float q = pr[j];
                    PUT(j, (q < PN_EPS || q > 1.0f - PN_EPS)
                               ? 0.0f
                               : (q - yr[j]) / (q * (1.0f - q)) * inv_rc);
                }
            }
            break;
        case PN_LOSS_CATEGORICAL_CE:
        case PN_LOSS_SPARSE_CE: {
            int sparse = L->kind == PN_LOSS_SPARSE_CE;
            if (fused || L->from_logits) {
                /* dz_j = softmax(z)_j * sum(y) - y_j */
                float sy = 1.0f;
                if (!sparse) {
                    sy = 0.0f;
                    for (int64_t j = 0; j < C; j++) sy += yr[j];
                }
                float lse = fused ? 0.0f : logsumexp(zr, C);
                for (int64_t j = 0; j < C; j++) {
                    float q = fused ? pr[j] : pn_exp(zr[j] - lse);
                    float t = sparse ? (j == lab[r] ? 1.0f : 0.0f) : yr[j];
                    PUT(j, (q * sy - t) * inv_r);
                }
            } else {
                /* q = p / s, L = -sum y log q: dq_j = -y_j / q_j (0 where clipped),
                 * dp_j = (dq_j - sum_k dq_k q_k) / s */
                float s = 0.0f, dot = 0.0f;
                for (int64_t j = 0; j < C; j++) s += pr[j];
                for (int64_t j = 0; j < C; j++) {
                    float q = pr[j] / s, t = sparse ? (j == lab[r] ? 1.0f : 0.0f) : yr[j];
                    if (!(q < PN_EPS || q > 1.0f - PN_EPS)) dot += -t / q * q;
                }
                for (int64_t j = 0; j < C; j++) {
                    float q = pr[j] / s, t = sparse ? (j == lab[r] ? 1.0f : 0.0f) : yr[j];
                    float dq = (q < PN_EPS || q > 1.0f - PN_EPS) ? 0.0f : -t / q;
                    PUT(j, (dq - dot) / s * inv_r);
                }
            }
            break;
        }
        default: break;
        }
    }
#undef PUT
}

/* Adds l1 sum|w| + l2 sum w^2 over penalised variables; with want_grad, their gradients too. */
float pn_regularizer_apply(pn_model *m, const pn_plan *p, int want_grad) {
    double penalty = 0.0;
    for (int v = 0; v < m->n_vars; v++) {
        const pn_var *var = &m->vars[v];
        if (!var->trainable || (var->l1 == 0.0f && var->l2 == 0.0f)) continue;
        const float *restrict w = m->params + var->offset;
        float *restrict g = m->grads + var->offset;
        int acc = p->var_written[v];
        double s1 = 0.0, s2 = 0.0;
        for (int64_t i = 0; i < var->size; i++) {
            s1 += fabsf(w[i]);
            s2 += (double)w[i] * w[i];
            if (want_grad) {
                float d = var->l1 * (w[i] > 0.0f ? 1.0f : w[i] < 0.0f ? -1.0f : 0.0f) +
                          2.0f * var->l2 * w[i];
                g[i] = acc ? g[i] + d : d;
            }
        }
        penalty += var->l1 * s1 + var->l2 * s2;
    }
    return (float)penalty;
}
