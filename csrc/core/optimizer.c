/*
 * optimizer.c: Keras 3's update rules, each one fused pass over the flat trainable buffer.
 * State lives in n_slots buffers of n_trainable floats each, parallel to the parameters.
 *
 *   SGD      m = mu m - lr g;  w += m  (nesterov: w += mu m - lr g);  no momentum: w -= lr g
 *   Adam     m += (1-b1)(g - m);  v += (1-b2)(g^2 - v);  (amsgrad: vh = max(vh, v), v = vh)
 *            w -= lr sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(v) + eps)
 *   AdamW    Adam with decoupled weight decay (w -= lr wd w first; default wd 0.004)
 *   RMSprop  v = rho v + (1-rho) g^2;  centered: a = rho a + (1-rho) g, v' = v - a^2
 *            inc = lr g / sqrt(v' + eps);  momentum: m = mu m + inc, w -= m;  else w -= inc
 *   Adagrad  s += g^2;  w -= lr g / sqrt(s + eps)
 * Before the update: gradients clipped (clipnorm per variable, global_clipnorm, or clipvalue),
 * then weight decay w -= lr wd w when wd > 0.
 */
#include <float.h>
#include <math.h>
#ifdef _OPENMP
#include <omp.h>
#else
static int omp_get_thread_num(void) { return 0; }
static int omp_get_num_threads(void) { return 1; }
#endif

#include "internal.h"

int pn_optimizer_slots(const pn_optim_config *cfg) {
    switch (cfg->kind) {
    case PN_SGD: return cfg->momentum != 0.0f ? 1 : 0;
    case PN_ADAM:
    case PN_ADAMW: return cfg->amsgrad ? 3 : 2;
    case PN_RMSPROP: return 1 + (cfg->centered ? 1 : 0) + (cfg->momentum != 0.0f ? 1 : 0);
    case PN_ADAGRAD: return 1;
    default: return 0;
    }
}

static double sumsq(const float *restrict g, int64_t n) {
    double s = 0.0;
    for (int64_t i = 0; i < n; i++) s += (double)g[i] * g[i];
    return s;
}

static void scale(float *restrict g, int64_t n, float k) {
    for (int64_t i = 0; i < n; i++) g[i] *= k;
}

/* The variables an update touches: all trainable ones (sel NULL), or those whose sel[] is set. */
static int selected(const pn_model *m, const unsigned char *sel, int v) {
    return m->vars[v].trainable && (!sel || sel[v]);
}

static void clip_gradients(pn_model *m, const unsigned char *sel) {
    const pn_optim_config *o = &m->opt;
    float *g = m->grads;
    if (o->clipnorm > 0.0f) {
        for (int v = 0; v < m->n_vars; v++) {
            const pn_var *var = &m->vars[v];
            if (!selected(m, sel, v)) continue;
            float norm = (float)sqrt(sumsq(g + var->offset, var->size));
            if (norm > o->clipnorm) scale(g + var->offset, var->size, o->clipnorm / norm);
        }
    } else if (o->global_clipnorm > 0.0f) {
        double s = 0.0;
        for (int v = 0; v < m->n_vars; v++)
            if (selected(m, sel, v)) s += sumsq(g + m->vars[v].offset, m->vars[v].size);
        float norm = (float)sqrt(s);
        if (norm > o->global_clipnorm)
            for (int v = 0; v < m->n_vars; v++)
                if (selected(m, sel, v))
                    scale(g + m->vars[v].offset, m->vars[v].size, o->global_clipnorm / norm);
    } else if (o->clipvalue > 0.0f) {
        float c = o->clipvalue;
        for (int v = 0; v < m->n_vars; v++) {
            if (!selected(m, sel, v)) continue;
            float *gv = g + m->vars[v].offset;
            for (int64_t i = 0; i < m->vars[v].size; i++) gv[i] = fminf(fmaxf(gv[i], -c), c);
        }
    }
}

/* A moment that decays below FLT_MIN (weights whose gradient stays 0, like MNIST's border
 * pixels) would become subnormal, and arithmetic on subnormals runs ~100x slower on x86: a few
 * thousand of them made whole training steps several times slower. Such a moment is flushed to
 * 0, as TensorFlow's flush-to-zero does for Keras; it changes updates by less than 1e-30. */
static inline float flush(float x) { return fabsf(x) < FLT_MIN ? 0.0f : x; }

#define SIMD_LOOP _Pragma("omp simd")

/* The update of the n parameters from offset `off` of the trainable span, on this thread. */
static void update_range(pn_model *m, int64_t off, int64_t n) {
    const pn_optim_config *o = &m->opt;
    const int64_t span = m->n_trainable;
    float *restrict w = m->params + off;
    float *restrict g = m->grads + off;
    float *s0 = m->opt_state + off, *s1 = s0 + span, *s2 = s1 + span;
    const float lr = o->learning_rate;

    if (o->weight_decay > 0.0f) {
        const float k = 1.0f - lr * o->weight_decay;
        SIMD_LOOP
        for (int64_t i = 0; i < n; i++) w[i] *= k;
    }

    switch (o->kind) {
    case PN_SGD: {
        const float mu = o->momentum;
        float *restrict mom = s0;
        if (mu == 0.0f) {
            SIMD_LOOP
            for (int64_t i = 0; i < n; i++) w[i] -= lr * g[i];
        } else if (o->nesterov) {
            SIMD_LOOP
            for (int64_t i = 0; i < n; i++) {
                mom[i] = flush(mu * mom[i] - lr * g[i]);
                w[i] += mu * mom[i] - lr * g[i];
            }
        } else {
            SIMD_LOOP
            for (int64_t i = 0; i < n; i++) {
                mom[i] = flush(mu * mom[i] - lr * g[i]);
                w[i] += mom[i];
            }
        }
        break;
    }
    case PN_ADAM:
    case PN_ADAMW: {
        const double t = (double)(m->iterations + 1);
        const float b1 = o->beta_1, b2 = o->beta_2, eps = o->epsilon;
        const float alpha = (float)(lr * sqrt(1.0 - pow(b2, t)) / (1.0 - pow(b1, t)));
        float *restrict mm = s0, *restrict vv = s1, *restrict vh = s2;
        if (o->amsgrad) {
            SIMD_LOOP
            for (int64_t i = 0; i < n; i++) {
                mm[i] = flush(mm[i] + (g[i] - mm[i]) * (1.0f - b1));
                vv[i] = flush(vv[i] + (g[i] * g[i] - vv[i]) * (1.0f - b2));
                vh[i] = fmaxf(vh[i], vv[i]);
                w[i] -= alpha * mm[i] / (sqrtf(vh[i]) + eps);
            }
        } else {
            SIMD_LOOP
            for (int64_t i = 0; i < n; i++) {
                mm[i] = flush(mm[i] + (g[i] - mm[i]) * (1.0f - b1));
                vv[i] = flush(vv[i] + (g[i] * g[i] - vv[i]) * (1.0f - b2));
                w[i] -= alpha * mm[i] / (sqrtf(vv[i]) + eps);
            }
        }
        break;
    }
    case PN_RMSPROP: {
        const float rho = o->rho, eps = o->epsilon, mu = o->momentum;
        float *restrict vel = s0;
        float *restrict avg = o->centered ? s1 : NULL;
        float *restrict mom = mu != 0.0f ? (o->centered ? s2 : s1) : NULL;
        SIMD_LOOP
        for (int64_t i = 0; i < n; i++) {
            vel[i] = flush(rho * vel[i] + (1.0f - rho) * g[i] * g[i]);
            float denom = vel[i];
            if (avg) {
                avg[i] = flush(rho * avg[i] + (1.0f - rho) * g[i]);
                denom -= avg[i] * avg[i];
            }
            float inc = lr * g[i] / sqrtf(denom + eps);
            if (mom) {
                mom[i] = flush(mu * mom[i] + inc);
                w[i] -= mom[i];
            } else {
                w[i] -= inc;
            }
        }
        break;
    }
    case PN_ADAGRAD: {
        const float eps = o->epsilon;
        float *restrict acc = s0;
        SIMD_LOOP
        for (int64_t i = 0; i < n; i++) {
            acc[i] += g[i] * g[i];
            w[i] -= lr * g[i] / sqrtf(acc[i] + eps);
        }
        break;
    }
    default: break;
    }
}

/* The update rules are compute-bound (a square root and a division per weight), so they pay
 * for a second thread from about 32k weights on (the MNIST MLP has 100k); each thread then
 * updates one block of the span, a multiple of 16 weights (64 bytes) long. */
static void update(pn_model *m, int64_t off, int64_t n) {
    if (n <= PN_PAR_MIN / 2 || pn_threads < 2) {
        update_range(m, off, n);
        return;
    }
#pragma omp parallel num_threads(pn_threads)
    {
        int64_t nt = omp_get_num_threads(), t = omp_get_thread_num();
        int64_t per = ((n + nt - 1) / nt + 15) / 16 * 16;
        int64_t lo = t * per, hi = lo + per < n ? lo + per : n;
        if (lo < hi) update_range(m, off + lo, hi - lo);
    }
}

void pn_optimizer_step(pn_model *m) {
    clip_gradients(m, NULL);
    update(m, 0, m->n_trainable); /* one pass over the whole span, padding included */
    m->iterations++;
}

int pn_model_apply_gradients(pn_model *m, int n, const int *vars) {
    if (!m->has_optimizer)
        return pn_error(PN_ESTATE, "the model has no optimizer state: bind an optimizer first");
    unsigned char *sel = NULL;
    if (n > 0) {
        sel = pn_calloc((size_t)m->n_vars, 1);
        if (!sel) return pn_error(PN_ENOMEM, "out of memory applying gradients");
        for (int k = 0; k < n; k++) {
            int v = vars[k];
            int bad = v < 0 || v >= m->n_vars || !m->vars[v].trainable || sel[v];
            if (bad) {
                free(sel);
                return pn_error(PN_EVALUE, v < 0 || v >= m->n_vars ? "no variable %d"
                                : !m->vars[v].trainable ? "variable %d is not trainable"
                                                        : "variable %d is listed twice", v);
            }
            sel[v] = 1;
        }
    }
    int rc = pn_model_lock(m);
    if (rc) {
        free(sel);
        return rc;
    }
    m->writing = 1;
    if (!sel) {
        pn_optimizer_step(m);
    } else {
        clip_gradients(m, sel);
        for (int v = 0; v < m->n_vars; v++)
            if (sel[v]) update(m, m->vars[v].offset, m->vars[v].size);
        m->iterations++;
    }
    m->writing = 0;
    pn_model_unlock(m);
    free(sel);
    return PN_OK;
}
