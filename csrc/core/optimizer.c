/*
 * optimizer.c: Keras 3's update rules, each a fused pass over the flat trainable buffer (or, for
 * the rules that read a whole variable, a pass or two per variable).
 * State lives in n_slots buffers of n_trainable floats each, parallel to the parameters, then a
 * few scalars. t is the update's step (1 for the first; with gradient accumulation, updates so
 * far + 1), g the gradient, w the weight.
 *
 *   SGD       m = mu m - lr g;  w += m  (nesterov: w += mu m - lr g);  no momentum: w -= lr g
 *   Adam      m += (1-b1)(g - m);  v += (1-b2)(g^2 - v);  (amsgrad: vh = max(vh, v), v = vh)
 *             w -= lr sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(v) + eps)
 *   AdamW     Adam with decoupled weight decay (w -= lr wd w first; default wd 0.004)
 *   RMSprop   v = rho v + (1-rho) g^2;  centered: a = rho a + (1-rho) g, v' = v - a^2
 *             inc = lr g / sqrt(v' + eps);  momentum: m = mu m + inc, w -= m;  else w -= inc
 *   Adagrad   s += g^2;  w -= lr g / sqrt(s + eps)
 *   Nadam     u_t = b1 (1 - 0.5 * 0.96^t),  P_t = u_1 ... u_t (a scalar of the state);
 *             m, v as Adam;  mh = u_{t+1} m / (1 - P_t u_{t+1}) + (1 - u_t) g / (1 - P_t)
 *             w -= lr mh / (sqrt(v / (1 - b2^t)) + eps)
 *   Adamax    m += (1-b1)(g - m);  u = max(b2 u, |g|);  w -= lr m / ((1 - b1^t)(u + eps))
 *   Adadelta  a = rho a + (1-rho) g^2;  d = -sqrt(D + eps) g / sqrt(a + eps);
 *             D = rho D + (1-rho) d^2;  w += lr d
 *   Lion      w -= lr sign(b1 m + (1-b1) g);  m = b2 m + (1-b2) g
 *   Ftrl      n' = n + g^2;  z += g + 2 l2s w - (n'^-p - n^-p) / lr * w  (p: learning_rate_power)
 *             w = (clip(z, -l1, l1) - z) / (n'^-p / lr + 2 (l2 + beta / (2 lr)));  n = n'
 *   Adafactor (per variable) rho = min(lr, 1/sqrt(t)),  alpha = max(eps2, rms(w)) rho,
 *             b = 1 - t^decay,  G = g^2 + eps1;  2-D and up (last two axes):
 *             r = b r + (1-b) mean_cols(G),  c = b c + (1-b) mean_rows(G),  v = r c / mean(r);
 *             else v = b v + (1-b) G;  u = g / sqrt(v);  w -= alpha u / max(1, rms(u) / clip)
 *   Lamb      (per variable) m, v as Adam;  u = (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)
 *             w -= lr (|w| / |u| when both > 0, else 1) u
 *   Muon      2-D variables: m = mu m + g;  G = nesterov ? g + mu m : m;  X = G / (|G|_F + 1e-7)
 *             (transposed to rows <= cols), ns_steps times A = X X^T, X = a X + (b A + c A A) X;
 *             w -= lr X sqrt(max(rows, cols)) rms_rate.  Others (and PN_VAR_ADAM): AdamW at
 *             lr adam_lr_ratio, with adam_weight_decay
 *   ScheduleFreeAdamW  z starts as w;  lr' = lr min(1, t / warmup);  v as Adam;
 *             z' = z - lr' g / (sqrt(v / (1 - b2^t)) + eps);  x = (w - (1-b1) z) / b1;
 *             x' = (1 - 1/t) x + z' / t;  w = (1-b1) z' + b1 x'
 * Around every rule, in Keras's order: a dynamic loss scale's check (gradients not finite: the
 * scale halves, nothing else happens), the loss scale divided out (pn_model_apply_gradients,
 * whose gradients come from a scaled loss), gradient accumulation (between updates only the
 * sum grows), clipping (clipnorm per variable, global_clipnorm, or clipvalue), weight decay
 * w -= lr wd w, the rule, then the moving average of the weights (use_ema).
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

pn_optim_config pn_optim_default(pn_optim_kind kind) {
    pn_optim_config c = {
        .kind = kind, .learning_rate = 0.001f, .beta_1 = 0.9f, .beta_2 = 0.999f,
        .epsilon = 1e-7f, .rho = 0.9f, .initial_accumulator_value = 0.1f,
        .beta_2_decay = -0.8f, .epsilon_1 = 1e-30f, .epsilon_2 = 1e-3f, .clip_threshold = 1.0f,
        .learning_rate_power = -0.5f, .muon_a = 3.4445f, .muon_b = -4.7750f,
        .muon_c = 2.0315f, .adam_lr_ratio = 1.0f, .rms_rate = 0.2f, .ns_steps = 5,
        .ema_momentum = 0.99f, .initial_scale = 32768.0f, .dynamic_growth_steps = 2000,
    };
    switch (kind) {
    case PN_SGD: c.learning_rate = 0.01f; break;
    case PN_ADAMW: c.weight_decay = 0.004f; break;
    case PN_ADADELTA: c.rho = 0.95f; break;
    case PN_LION: c.beta_2 = 0.99f; break;
    case PN_SCHEDULE_FREE_ADAMW:
        c.learning_rate = 0.0025f;
        c.epsilon = 1e-8f;
        break;
    case PN_MUON:
        c.momentum = 0.95f;
        c.nesterov = 1;
        c.weight_decay = c.adam_weight_decay = 0.004f;
        break;
    default: break;
    }
    return c;
}

/* The rule's own slots (before the options' "average" and "gradient_accumulator"). */
static int rule_slots(const pn_optim_config *cfg) {
    switch (cfg->kind) {
    case PN_SGD: return cfg->momentum != 0.0f ? 1 : 0;
    case PN_ADAM:
    case PN_ADAMW: return cfg->amsgrad ? 3 : 2;
    case PN_RMSPROP: return 1 + (cfg->centered ? 1 : 0) + (cfg->momentum != 0.0f ? 1 : 0);
    case PN_ADAGRAD:
    case PN_LION: return 1;
    case PN_NADAM:
    case PN_ADAMAX:
    case PN_ADADELTA:
    case PN_FTRL:
    case PN_LAMB:
    case PN_MUON:
    case PN_SCHEDULE_FREE_ADAMW: return 2;
    case PN_ADAFACTOR: return 3; /* r and c (each a prefix of its variable's run), v */
    default: return 0;
    }
}

static int accumulates(const pn_optim_config *cfg) { return cfg->gradient_accumulation_steps > 1; }

int pn_optimizer_slots(const pn_optim_config *cfg) {
    return rule_slots(cfg) + (cfg->use_ema ? 1 : 0) + (accumulates(cfg) ? 1 : 0);
}

/* The scalars after the slots: Nadam's u_product, then a dynamic loss scale's scale and count. */
static int scalar_count(const pn_optim_config *cfg) {
    return (cfg->kind == PN_NADAM ? 1 : 0) + (cfg->dynamic_loss_scale ? 2 : 0);
}

static float *slot(const pn_model *m, int k) { return m->opt_state + (int64_t)k * m->n_trainable; }
static float *scalars(const pn_model *m) {
    return m->opt_state + (int64_t)m->n_slots * m->n_trainable;
}
static float *loss_scale_state(const pn_model *m) { /* [scale, finite steps since a change] */
    return scalars(m) + (m->opt.kind == PN_NADAM ? 1 : 0);
}

/* ---- arguments ------------------------------------------------------------------------------ */

static int finite_in(float x, float lo, float hi) { return x >= lo && x <= hi && isfinite(x); }

#define CHECK(cond, ...)                                                                       \
    do {                                                                                       \
        if (!(cond)) return pn_error(PN_EVALUE, __VA_ARGS__);                                  \
    } while (0)

static int check_config(const pn_optim_config *c) {
    CHECK((int)c->kind >= 0 && c->kind < PN_OPTIM_COUNT, "unknown optimizer %d", (int)c->kind);
    CHECK(finite_in(c->learning_rate, 0.0f, FLT_MAX),
          "learning_rate must be finite and >= 0, got %g", c->learning_rate);
    CHECK(finite_in(c->weight_decay, 0.0f, FLT_MAX), "weight_decay must be finite and >= 0");
    CHECK(finite_in(c->clipnorm, 0.0f, FLT_MAX) && finite_in(c->clipvalue, 0.0f, FLT_MAX) &&
              finite_in(c->global_clipnorm, 0.0f, FLT_MAX),
          "clipnorm, clipvalue and global_clipnorm must be finite and >= 0");
    CHECK(c->use_ema == 0 || finite_in(c->ema_momentum, 0.0f, 1.0f),
          "ema_momentum must be in [0, 1], got %g", c->ema_momentum);
    CHECK(c->ema_overwrite_frequency >= 0, "ema_overwrite_frequency must be >= 0");
    CHECK(c->gradient_accumulation_steps >= 0, "gradient_accumulation_steps must be >= 0");
    CHECK(finite_in(c->loss_scale_factor, 0.0f, FLT_MAX) &&
              (c->loss_scale_factor == 0.0f || c->loss_scale_factor >= FLT_MIN),
          "loss_scale_factor must be a finite number > 0 (0: off), got %g",
          c->loss_scale_factor);
    CHECK(!c->dynamic_loss_scale ||
              (finite_in(c->initial_scale, FLT_MIN, FLT_MAX) && c->dynamic_growth_steps >= 1 &&
               c->dynamic_growth_steps <= (1 << 24)),
          "a dynamic loss scale needs initial_scale > 0 and 1 <= dynamic_growth_steps <= 2^24");
    int adam_like = c->kind == PN_ADAM || c->kind == PN_ADAMW || c->kind == PN_NADAM ||
                    c->kind == PN_ADAMAX || c->kind == PN_LAMB || c->kind == PN_MUON ||
                    c->kind == PN_SCHEDULE_FREE_ADAMW;
    if (adam_like || c->kind == PN_LION)
        CHECK(finite_in(c->beta_1, 0.0f, 1.0f) && finite_in(c->beta_2, 0.0f, 1.0f),
              "beta_1 and beta_2 must be in [0, 1], got %g and %g", c->beta_1, c->beta_2);
    if (c->kind != PN_LION && c->kind != PN_FTRL && c->kind != PN_ADAFACTOR)
        CHECK(finite_in(c->epsilon, 0.0f, FLT_MAX), "epsilon must be finite and >= 0");
    if (c->kind == PN_SGD || c->kind == PN_RMSPROP || c->kind == PN_MUON)
        CHECK(finite_in(c->momentum, 0.0f, 1.0f), "momentum must be in [0, 1], got %g",
              c->momentum);
    if (c->kind == PN_RMSPROP || c->kind == PN_ADADELTA)
        CHECK(finite_in(c->rho, 0.0f, 1.0f), "rho must be in [0, 1], got %g", c->rho);
    if (c->kind == PN_ADAGRAD || c->kind == PN_FTRL)
        CHECK(finite_in(c->initial_accumulator_value, 0.0f, FLT_MAX),
              "initial_accumulator_value must be finite and >= 0");
    if (c->kind == PN_ADAFACTOR)
        CHECK(finite_in(c->beta_2_decay, -FLT_MAX, 0.0f) &&
                  finite_in(c->epsilon_1, 0.0f, FLT_MAX) &&
                  finite_in(c->epsilon_2, 0.0f, FLT_MAX) &&
                  finite_in(c->clip_threshold, FLT_MIN, FLT_MAX),
              "Adafactor: beta_2_decay must be <= 0, epsilon_1 and epsilon_2 >= 0, "
              "clip_threshold > 0");
    if (c->kind == PN_FTRL)
        CHECK(finite_in(c->learning_rate_power, -FLT_MAX, 0.0f) &&
                  finite_in(c->l1, 0.0f, FLT_MAX) && finite_in(c->l2, 0.0f, FLT_MAX) &&
                  finite_in(c->l2_shrinkage, 0.0f, FLT_MAX) && finite_in(c->beta, 0.0f, FLT_MAX),
              "Ftrl: learning_rate_power must be <= 0, the regularization strengths and beta "
              ">= 0");
    if (c->kind == PN_MUON)
        CHECK(isfinite(c->muon_a) && isfinite(c->muon_b) && isfinite(c->muon_c) &&
                  finite_in(c->adam_lr_ratio, 0.0f, FLT_MAX) &&
                  finite_in(c->adam_weight_decay, 0.0f, FLT_MAX) && isfinite(c->rms_rate) &&
                  c->ns_steps >= 0 && c->ns_steps <= 1000,
              "Muon: muon_a, muon_b, muon_c must be finite, adam_lr_ratio and "
              "adam_weight_decay >= 0, ns_steps in 0..1000");
    if (c->kind == PN_SCHEDULE_FREE_ADAMW)
        CHECK(c->beta_1 > 0.0f && c->warmup_steps >= 0,
              "ScheduleFreeAdamW: beta_1 must be in (0, 1] and warmup_steps >= 0");
    return PN_OK;
}

/* Muon's scratch: for the largest 2-D trainable variable (n values, r = min(rows, cols)), X and
 * the next X (n each) and A, B (r^2 each, r^2 <= n). */
static int64_t muon_scratch(const pn_model *m) {
    int64_t most = 0;
    for (int v = 0; v < m->n_vars; v++)
        if (m->vars[v].trainable && m->vars[v].ndim == 2 && m->vars[v].size > most)
            most = m->vars[v].size;
    return 4 * most;
}

int pn_optimizer_create(pn_model *m, const pn_optim_config *cfg) {
    int rc = check_config(cfg);
    if (rc) return rc;
    const int slots = pn_optimizer_slots(cfg), n_scalars = scalar_count(cfg);
    const int64_t span = m->n_trainable;
    const size_t n = (size_t)slots * (size_t)span + (size_t)n_scalars;
    float *state = NULL, *scratch = NULL;
    if (n > 0 && !(state = pn_calloc(n, sizeof *state)))
        return pn_error(PN_ENOMEM, "out of memory for the optimizer's state");
    int64_t ns = cfg->kind == PN_MUON ? muon_scratch(m) : 0;
    if (ns > 0 && !(scratch = pn_malloc((size_t)ns * sizeof *scratch))) {
        free(state);
        return pn_error(PN_ENOMEM, "out of memory for Muon's matrices");
    }
    if (cfg->kind == PN_ADAGRAD || cfg->kind == PN_FTRL) /* the accumulator is slot 0 */
        for (int64_t i = 0; i < span; i++) state[i] = cfg->initial_accumulator_value;
    float *sc = state + (size_t)slots * (size_t)span;
    if (cfg->kind == PN_NADAM) *sc++ = 1.0f; /* u_product */
    if (cfg->dynamic_loss_scale) {
        sc[0] = cfg->initial_scale;
        sc[1] = 0.0f;
    }
    free(m->opt_state);
    free(m->opt_scratch);
    m->opt_state = state;
    m->opt_scratch = scratch;
    m->n_slots = slots;
    m->n_opt_scalars = n_scalars;
    m->opt = *cfg;
    m->iterations = 0;
    m->has_optimizer = 1;
    return PN_OK;
}

int pn_model_set_variable_optim(pn_model *m, int var, int flags) {
    if (var < 0 || var >= m->n_vars) return pn_error(PN_EVALUE, "no variable %d", var);
    if (flags & ~(PN_VAR_NO_DECAY | PN_VAR_ADAM))
        return pn_error(PN_EVALUE, "unknown optimizer flags %d", flags);
    m->vars[var].optim_flags = flags;
    return PN_OK;
}

int pn_model_set_variable_constraint(pn_model *m, int var, int kind, unsigned axes,
                                     float min_value, float max_value, float rate) {
    if (var < 0 || var >= m->n_vars) return pn_error(PN_EVALUE, "no variable %d", var);
    if (kind < 0 || kind >= PN_CONSTRAINT_COUNT)
        return pn_error(PN_EVALUE, "unknown constraint kind %d", kind);
    const int nd = m->vars[var].ndim;
    if (nd < 32 && (axes >> nd) != 0u)
        return pn_error(PN_EVALUE, "constraint axes 0x%x: variable %d has %d axes", axes, var, nd);
    if (!isfinite(min_value) || !isfinite(max_value) || !isfinite(rate))
        return pn_error(PN_EVALUE, "constraint: min_value, max_value and rate must be finite, "
                        "got %g, %g, %g", min_value, max_value, rate);
    pn_var *v = &m->vars[var];
    v->constraint = kind;
    v->constraint_axes = axes;
    v->cmin = min_value;
    v->cmax = max_value;
    v->crate = rate;
    return PN_OK;
}

/* ---- helpers -------------------------------------------------------------------------------- */

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
        if (!(norm <= o->global_clipnorm)) /* NaN too: Keras's scale is then NaN */
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

/* The update's step t: 1 for the first update (with accumulation, updates so far + 1). */
static double step_t(const pn_model *m) {
    int k = m->opt.gradient_accumulation_steps;
    return (double)((k > 1 ? m->iterations / k : m->iterations) + 1);
}

/* ---- the elementwise rules ------------------------------------------------------------------ */

/* The step's scalars, computed once before the passes. */
typedef struct {
    float alpha;         /* Adam, AdamW, Muon's AdamW: lr sqrt(1 - b2^t) / (1 - b1^t) */
    float c1, c2;        /* Nadam: u_{t+1} / (1 - P_t u_{t+1}), (1 - u_t) / (1 - P_t) */
    float bc1, bc2;      /* 1 - b1^t, 1 - b2^t (Nadam, Adamax, Lamb, ScheduleFreeAdamW) */
    float lr_w, inv_t;   /* ScheduleFreeAdamW: the warmed-up lr, 1 / t */
} step_consts;

/* The update of the n parameters from offset `off` of the trainable span, on this thread, with
 * weight decay wd. */
static void update_range(pn_model *m, const step_consts *k, int64_t off, int64_t n, float wd) {
    const pn_optim_config *o = &m->opt;
    float *restrict w = m->params + off;
    float *restrict g = m->grads + off;
    float *s0 = slot(m, 0) + off, *s1 = slot(m, 1) + off, *s2 = slot(m, 2) + off;
    const float lr = o->learning_rate;

    if (wd > 0.0f) {
        const float keep = 1.0f - lr * wd;
        SIMD_LOOP
        for (int64_t i = 0; i < n; i++) w[i] *= keep;
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
    case PN_ADAMW:
    case PN_MUON: { /* Muon: the variables that take the AdamW step */
        const float b1 = o->beta_1, b2 = o->beta_2, eps = o->epsilon, alpha = k->alpha;
        float *restrict mm = s0, *restrict vv = s1, *restrict vh = s2;
        if (o->amsgrad && o->kind != PN_MUON) {
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
    case PN_NADAM: {
        const float b1 = o->beta_1, b2 = o->beta_2, eps = o->epsilon;
        const float c1 = k->c1, c2 = k->c2, bc2 = k->bc2;
        float *restrict mm = s0, *restrict vv = s1;
        SIMD_LOOP
        for (int64_t i = 0; i < n; i++) {
            mm[i] = flush(mm[i] + (g[i] - mm[i]) * (1.0f - b1));
            vv[i] = flush(vv[i] + (g[i] * g[i] - vv[i]) * (1.0f - b2));
            float mh = c1 * mm[i] + c2 * g[i];
            w[i] -= mh * lr / (sqrtf(vv[i] / bc2) + eps);
        }
        break;
    }
    case PN_ADAMAX: {
        const float b1 = o->beta_1, b2 = o->beta_2, eps = o->epsilon, bc1 = k->bc1;
        float *restrict mm = s0, *restrict uu = s1;
        SIMD_LOOP
        for (int64_t i = 0; i < n; i++) {
            mm[i] = flush(mm[i] + (g[i] - mm[i]) * (1.0f - b1));
            uu[i] = flush(fmaxf(b2 * uu[i], fabsf(g[i])));
            w[i] -= lr * mm[i] / (bc1 * (uu[i] + eps));
        }
        break;
    }
    case PN_ADADELTA: {
        const float rho = o->rho, eps = o->epsilon;
        float *restrict ag = s0, *restrict ad = s1;
        SIMD_LOOP
        for (int64_t i = 0; i < n; i++) {
            ag[i] = flush(rho * ag[i] + (1.0f - rho) * g[i] * g[i]);
            float d = -(sqrtf(ad[i] + eps) * g[i]) / sqrtf(ag[i] + eps);
            ad[i] = flush(rho * ad[i] + (1.0f - rho) * d * d);
            w[i] += lr * d;
        }
        break;
    }
    case PN_LION: {
        const float b1 = o->beta_1, b2 = o->beta_2;
        float *restrict mm = s0;
        SIMD_LOOP
        for (int64_t i = 0; i < n; i++) {
            float c = mm[i] * b1 + g[i] * (1.0f - b1);
            float sign = c > 0.0f ? 1.0f : c < 0.0f ? -1.0f : c; /* sign(NaN) is NaN */
            w[i] -= lr * sign;
            mm[i] = flush(mm[i] * b2 + g[i] * (1.0f - b2));
        }
        break;
    }
    case PN_FTRL: {
        const float p = -o->learning_rate_power, l1 = o->l1, shrink = 2.0f * o->l2_shrinkage;
        const float l2x2 = 2.0f * (o->l2 + o->beta / (2.0f * lr));
        float *restrict acc = s0, *restrict lin = s1;
        if (p == 0.5f) { /* the default: a square root, which vectorises */
            SIMD_LOOP
            for (int64_t i = 0; i < n; i++) {
                float na = acc[i] + g[i] * g[i], sn = sqrtf(na);
                lin[i] += (g[i] + shrink * w[i]) - (sn - sqrtf(acc[i])) / lr * w[i];
                float lc = fminf(fmaxf(lin[i], -l1), l1);
                w[i] = (lc - lin[i]) / (sn / lr + l2x2);
                acc[i] = na;
            }
        } else {
            for (int64_t i = 0; i < n; i++) {
                float na = acc[i] + g[i] * g[i], pn = powf(na, p);
                lin[i] += (g[i] + shrink * w[i]) - (pn - powf(acc[i], p)) / lr * w[i];
                float lc = fminf(fmaxf(lin[i], -l1), l1);
                w[i] = (lc - lin[i]) / (pn / lr + l2x2);
                acc[i] = na;
            }
        }
        break;
    }
    case PN_SCHEDULE_FREE_ADAMW: {
        const float b1 = o->beta_1, b2 = o->beta_2, eps = o->epsilon, bc2 = k->bc2;
        const float lw = k->lr_w, it = k->inv_t;
        float *restrict z = s0, *restrict vv = s1;
        SIMD_LOOP
        for (int64_t i = 0; i < n; i++) {
            vv[i] = flush(vv[i] + (g[i] * g[i] - vv[i]) * (1.0f - b2));
            const float z0 = z[i];
            z[i] -= lw * g[i] / (sqrtf(vv[i] / bc2) + eps);
            const float x = (w[i] - (1.0f - b1) * z0) / b1;
            const float xn = (1.0f - it) * x + it * z[i];
            w[i] = (1.0f - b1) * z[i] + b1 * xn;
        }
        break;
    }
    default: break;
    }
}

typedef struct {
    pn_model *m;
    const step_consts *k;
    int64_t off, n;
    float wd;
} range_job;

/* The update rules are compute-bound (a square root and a division per weight), so they pay
 * for a second thread from about 32k weights on (the MNIST MLP has 100k); each thread then
 * updates one block of the span, a multiple of 16 weights (64 bytes) long. */
static void update(pn_model *m, const step_consts *k, int64_t off, int64_t n, float wd) {
    if (n <= PN_PAR_MIN / 2 || pn_threads < 2) {
        update_range(m, k, off, n, wd);
        return;
    }
#pragma omp parallel num_threads(pn_threads)
    {
        int64_t nt = omp_get_num_threads(), t = omp_get_thread_num();
        int64_t per = ((n + nt - 1) / nt + 15) / 16 * 16;
        int64_t lo = t * per, hi = lo + per < n ? lo + per : n;
        if (lo < hi) update_range(m, k, off + lo, hi - lo, wd);
    }
}

/* ---- the rules that read whole variables ---------------------------------------------------- */

/* Adafactor on one variable (see the top). r and c live at the start of the variable's runs in
 * slots 0 and 1, v in slot 2. */
static void adafactor_var(pn_model *m, const pn_var *var, float wd) {
    const pn_optim_config *o = &m->opt;
    const int64_t n = var->size;
    float *restrict w = m->params + var->offset, *restrict g = m->grads + var->offset;
    float *restrict r = slot(m, 0) + var->offset, *restrict c = slot(m, 1) + var->offset;
    float *restrict v = slot(m, 2) + var->offset;
    const double t = step_t(m);
    const float lr = o->learning_rate, eps1 = o->epsilon_1;
    if (wd > 0.0f) scale(w, n, 1.0f - lr * wd);
    const float rho = fminf(lr, (float)(1.0 / sqrt(t)));
    const float alpha = fmaxf(o->epsilon_2, (float)sqrt(sumsq(w, n) / (double)n)) * rho;
    const float b = (float)(1.0 - pow(t, o->beta_2_decay));
    if (var->ndim >= 2) {
        const int64_t cols = var->shape[var->ndim - 1], rows = var->shape[var->ndim - 2];
        const int64_t mats = n / (rows * cols);
        for (int64_t p = 0; p < mats; p++) {
            const float *gp = g + p * rows * cols;
            float *rp = r + p * rows, *cp = c + p * cols, *vp = v + p * rows * cols;
            double rsum = 0.0;
            for (int64_t i = 0; i < rows; i++) {
                double s = 0.0;
                for (int64_t j = 0; j < cols; j++) s += (double)gp[i * cols + j] * gp[i * cols + j] + eps1;
                rp[i] = b * rp[i] + (1.0f - b) * (float)(s / (double)cols);
                rsum += rp[i];
            }
            for (int64_t j = 0; j < cols; j++) {
                double s = 0.0;
                for (int64_t i = 0; i < rows; i++) s += (double)gp[i * cols + j] * gp[i * cols + j] + eps1;
                cp[j] = b * cp[j] + (1.0f - b) * (float)(s / (double)rows);
            }
            const float rmean = (float)(rsum / (double)rows);
            for (int64_t i = 0; i < rows; i++) {
                const float ri = rp[i] / rmean;
                for (int64_t j = 0; j < cols; j++) vp[i * cols + j] = ri * cp[j];
            }
        }
    } else {
        for (int64_t i = 0; i < n; i++) v[i] = b * v[i] + (1.0f - b) * (g[i] * g[i] + eps1);
    }
    double uu = 0.0;
    for (int64_t i = 0; i < n; i++) {
        float u = g[i] / sqrtf(v[i]);
        uu += (double)u * u;
    }
    const float rms_u = (float)sqrt(uu / (double)n);
    const float step = alpha / fmaxf(1.0f, rms_u / o->clip_threshold);
    for (int64_t i = 0; i < n; i++) w[i] -= step * (g[i] / sqrtf(v[i]));
}

/* Lamb on one variable: the moments and both norms in one pass, the update in a second. */
static void lamb_var(pn_model *m, const step_consts *k, const pn_var *var, float wd) {
    const pn_optim_config *o = &m->opt;
    const int64_t n = var->size;
    float *restrict w = m->params + var->offset, *restrict g = m->grads + var->offset;
    float *restrict mm = slot(m, 0) + var->offset, *restrict vv = slot(m, 1) + var->offset;
    const float lr = o->learning_rate, b1 = o->beta_1, b2 = o->beta_2, eps = o->epsilon;
    const float bc1 = k->bc1, bc2 = k->bc2;
    if (wd > 0.0f) scale(w, n, 1.0f - lr * wd);
    double ww = 0.0, uu = 0.0;
    for (int64_t i = 0; i < n; i++) {
        mm[i] = flush(mm[i] + (g[i] - mm[i]) * (1.0f - b1));
        vv[i] = flush(vv[i] + (g[i] * g[i] - vv[i]) * (1.0f - b2));
        float u = (mm[i] / bc1) / (sqrtf(vv[i] / bc2) + eps);
        ww += (double)w[i] * w[i];
        uu += (double)u * u;
    }
    const float wn = (float)sqrt(ww), un = (float)sqrt(uu);
    const float ratio = wn > 0.0f && un > 0.0f ? wn / un : 1.0f;
    const float step = ratio * lr;
    for (int64_t i = 0; i < n; i++) w[i] -= step * ((mm[i] / bc1) / (sqrtf(vv[i] / bc2) + eps));
}

/* Muon's orthogonalised step on one 2-D variable (rows, cols), with the model's scratch. */
static void muon_var(pn_model *m, const pn_var *var, float wd) {
    const pn_optim_config *o = &m->opt;
    const int64_t rows = var->shape[0], cols = var->shape[1], n = var->size;
    const int tr = rows > cols; /* work on the wide form: X is (r, q), r <= q */
    const int64_t r = tr ? cols : rows, q = tr ? rows : cols;
    float *restrict w = m->params + var->offset, *restrict g = m->grads + var->offset;
    float *restrict mom = slot(m, 0) + var->offset;
    float *x = m->opt_scratch, *xn = x + n, *a = xn + n, *bm = a + r * r;
    const float lr = o->learning_rate, mu = o->momentum;
    if (wd > 0.0f) scale(w, n, 1.0f - lr * wd);
    for (int64_t i = 0; i < n; i++) mom[i] = flush(mom[i] + (g[i] + mom[i] * (mu - 1.0f)));
    double ss = 0.0;
    for (int64_t i = 0; i < rows; i++)
        for (int64_t j = 0; j < cols; j++) {
            const int64_t e = i * cols + j;
            float gv = o->nesterov ? g[e] + mu * mom[e] : mom[e];
            x[tr ? j * rows + i : e] = gv;
            ss += (double)gv * gv;
        }
    scale(x, n, 1.0f / ((float)sqrt(ss) + 1e-7f));
    for (int s = 0; s < o->ns_steps; s++) {
        /* A = X X^T;  B = b A + c A A;  X' = a X + B X */
        pn_gemm(0, 1, r, r, q, 1.0f, x, q, x, q, 0.0f, a, r);
        pn_gemm(0, 0, r, r, r, o->muon_c, a, r, a, r, 0.0f, bm, r);
        for (int64_t i = 0; i < r * r; i++) bm[i] += o->muon_b * a[i];
        for (int64_t i = 0; i < n; i++) xn[i] = o->muon_a * x[i];
        pn_gemm(0, 0, r, q, r, 1.0f, bm, r, x, q, 1.0f, xn, q);
        float *swap = x;
        x = xn;
        xn = swap;
    }
    float k = lr;
    if (o->rms_rate >= 0.0f) k *= sqrtf((float)(rows > cols ? rows : cols)) * o->rms_rate;
    for (int64_t i = 0; i < rows; i++)
        for (int64_t j = 0; j < cols; j++)
            w[i * cols + j] -= k * x[tr ? j * rows + i : i * cols + j];
}

/* ---- the step ------------------------------------------------------------------------------- */

static int per_variable(const pn_model *m) {
    if (m->opt.kind == PN_ADAFACTOR || m->opt.kind == PN_LAMB || m->opt.kind == PN_MUON) return 1;
    for (int v = 0; v < m->n_vars; v++)
        if (m->vars[v].trainable && (m->vars[v].optim_flags & PN_VAR_NO_DECAY)) return 1;
    return 0;
}

static step_consts consts(pn_model *m) {
    const pn_optim_config *o = &m->opt;
    const double t = step_t(m), b1 = o->beta_1, b2 = o->beta_2;
    step_consts k = {0};
    k.bc1 = (float)(1.0 - pow(b1, t));
    k.bc2 = (float)(1.0 - pow(b2, t));
    double lr = o->kind == PN_MUON ? (double)o->learning_rate * o->adam_lr_ratio
                                   : o->learning_rate;
    k.alpha = (float)(lr * sqrt(1.0 - pow(b2, t)) / (1.0 - pow(b1, t)));
    k.inv_t = (float)(1.0 / t);
    k.lr_w = o->warmup_steps > 0 ? (float)(lr * fmin(t / o->warmup_steps, 1.0)) : (float)lr;
    if (o->kind == PN_NADAM) {
        float *prod = scalars(m);
        double u_t = b1 * (1.0 - 0.5 * pow(0.96, t)), u_next = b1 * (1.0 - 0.5 * pow(0.96, t + 1));
        *prod = (float)(*prod * u_t); /* P_t = P_{t-1} u_t */
        double p_t = *prod;
        k.c1 = (float)(u_next / (1.0 - p_t * u_next));
        k.c2 = (float)((1.0 - u_t) / (1.0 - p_t));
    }
    return k;
}

/* The rule itself on the selected variables (every trainable one when sel is NULL). */
static void apply_rule(pn_model *m, const unsigned char *sel) {
    const pn_optim_config *o = &m->opt;
    const step_consts k = consts(m);
    if (!sel && !per_variable(m)) {
        update(m, &k, 0, m->n_trainable, o->weight_decay); /* one pass, padding included */
        return;
    }
    for (int v = 0; v < m->n_vars; v++) {
        const pn_var *var = &m->vars[v];
        if (!selected(m, sel, v)) continue;
        const int adam = o->kind == PN_MUON && (var->ndim != 2 || (var->optim_flags & PN_VAR_ADAM));
        float wd = adam ? o->adam_weight_decay : o->weight_decay;
        if (var->optim_flags & PN_VAR_NO_DECAY) wd = 0.0f;
        if (o->kind == PN_ADAFACTOR) adafactor_var(m, var, wd);
        else if (o->kind == PN_LAMB) lamb_var(m, &k, var, wd);
        else if (o->kind == PN_MUON && !adam) muon_var(m, var, wd);
        else update(m, &k, var->offset, var->size, wd);
    }
}

/* gradient_accumulation_steps: between updates the sum grows and 0 is returned; on an update
 * the gradients become (g + sum) / steps, the sum restarts, and 1 is returned. */
static int accumulate(pn_model *m, const unsigned char *sel) {
    const int steps = m->opt.gradient_accumulation_steps;
    const int update = (m->iterations + 1) % steps == 0;
    float *acc_all = slot(m, m->n_slots - 1);
    for (int v = 0; v < m->n_vars; v++) {
        if (!selected(m, sel, v)) continue;
        float *restrict acc = acc_all + m->vars[v].offset;
        float *restrict g = m->grads + m->vars[v].offset;
        const int64_t n = m->vars[v].size;
        if (update) {
            SIMD_LOOP
            for (int64_t i = 0; i < n; i++) {
                g[i] = (g[i] + acc[i]) / (float)steps;
                acc[i] = 0.0f;
            }
        } else {
            SIMD_LOOP
            for (int64_t i = 0; i < n; i++) acc[i] += g[i];
        }
    }
    return update;
}

/* use_ema: avg = mu avg + (1 - mu) w over every trainable weight (mu 0 on the first update),
 * and w = avg every ema_overwrite_frequency updates. */
static void moving_average(pn_model *m) {
    const pn_optim_config *o = &m->opt;
    const int k = o->gradient_accumulation_steps;
    const int64_t t = k > 1 ? m->iterations / k : m->iterations;
    const float mu = t != 0 ? o->ema_momentum : 0.0f;
    float *restrict avg = slot(m, rule_slots(o)), *restrict w = m->params;
    const int64_t n = m->n_trainable;
    SIMD_LOOP
    for (int64_t i = 0; i < n; i++) avg[i] = mu * avg[i] + (1.0f - mu) * w[i];
    if (o->ema_overwrite_frequency > 0 && (t + 1) % o->ema_overwrite_frequency == 0)
        memcpy(w, avg, (size_t)n * sizeof *w);
}

/* Whether every selected gradient times s is finite (s = 1: the gradients themselves). */
static int finite_gradients(const pn_model *m, const unsigned char *sel, float s) {
    for (int v = 0; v < m->n_vars; v++) {
        if (!selected(m, sel, v)) continue;
        const float *restrict g = m->grads + m->vars[v].offset;
        int64_t bad = 0;
        SIMD_LOOP
        for (int64_t i = 0; i < m->vars[v].size; i++) bad += !(fabsf(g[i] * s) <= FLT_MAX);
        if (bad) return 0;
    }
    return 1;
}

static void divide_gradients(pn_model *m, const unsigned char *sel, float s) {
    for (int v = 0; v < m->n_vars; v++) {
        if (!selected(m, sel, v)) continue;
        float *restrict g = m->grads + m->vars[v].offset;
        SIMD_LOOP
        for (int64_t i = 0; i < m->vars[v].size; i++) g[i] /= s;
    }
}

/* ---- constraints ---------------------------------------------------------------------------- */

#define CONSTRAINT_EPS 1e-7f /* Keras's backend.epsilon() */
#define LANES 64             /* norms computed side by side when the last axis is kept */

/* jnp.clip: min(max(x, lo), hi), NaN kept */
static float clip_to(float x, float lo, float hi) {
    x = x < lo ? lo : x;
    return x > hi ? hi : x;
}

/* For one norm: the factor that w is multiplied by, desired / (eps + norm); UnitNorm's is the
 * divisor eps + norm (Keras divides). */
static float norm_factor(const pn_var *v, float norm) {
    const float d = CONSTRAINT_EPS + norm;
    switch (v->constraint) {
    case PN_CONSTRAINT_MAX_NORM: return clip_to(norm, 0.0f, v->cmax) / d;
    case PN_CONSTRAINT_MIN_MAX_NORM:
        return (v->crate * clip_to(norm, v->cmin, v->cmax) + (1.0f - v->crate) * norm) / d;
    default: return d;
    }
}

/* The offset of element `idx` of the sub-array over axes ax[0..n) (the last fastest). */
static int64_t offset_of(int64_t idx, const int *ax, int n, const int64_t *shape,
                         const int64_t *stride) {
    int64_t off = 0;
    for (int j = n - 1; j >= 0; j--) {
        off += (idx % shape[ax[j]]) * stride[ax[j]];
        idx /= shape[ax[j]];
    }
    return off;
}

/* A norm constraint on one variable w: norm = sqrt(sum w^2) over the masked axes, one per index
 * of the others, then w *= desired / (eps + norm) (UnitNorm: w /= eps + norm). When the last
 * axis is kept (Dense's kernel with axis 0, a conv kernel with [0, 1, 2]) LANES neighbouring
 * norms are summed side by side from contiguous rows; when it is reduced, each norm's sum runs
 * along it. No allocation: the sums live on the stack. */
static void constrain_norms(float *restrict w, const pn_var *v) {
    int64_t shape[PN_MAX_DIMS], stride[PN_MAX_DIMS];
    int nd = v->ndim, kept[PN_MAX_DIMS], red[PN_MAX_DIMS], nk = 0, nr = 0;
    unsigned axes = v->constraint_axes;
    memcpy(shape, v->shape, sizeof shape);
    if (nd == 0) { /* a scalar: one element, its own norm */
        nd = 1;
        shape[0] = 1;
        axes = 0u;
    }
    int64_t s = 1;
    for (int a = nd - 1; a >= 0; a--) {
        stride[a] = s;
        s *= shape[a];
    }
    for (int a = 0; a < nd; a++) {
        if ((axes >> a) & 1u) red[nr++] = a;
        else kept[nk++] = a;
    }
    const int last_kept = !((axes >> (nd - 1)) & 1u);
    const int64_t lanes = last_kept ? shape[nd - 1] : 1, run = last_kept ? 1 : shape[nd - 1];
    const int nk_outer = last_kept ? nk - 1 : nk, nr_outer = last_kept ? nr : nr - 1;
    int64_t groups = 1, rows = 1;
    for (int j = 0; j < nk_outer; j++) groups *= shape[kept[j]];
    for (int j = 0; j < nr_outer; j++) rows *= shape[red[j]];
    const int div = v->constraint == PN_CONSTRAINT_UNIT_NORM;
    for (int64_t g = 0; g < groups; g++) {
        float *wg = w + offset_of(g, kept, nk_outer, shape, stride);
        for (int64_t l0 = 0; l0 < lanes; l0 += LANES) {
            const int64_t nl = lanes - l0 < LANES ? lanes - l0 : LANES;
            double acc[LANES] = {0};
            float f[LANES];
            for (int64_t r = 0; r < rows; r++) {
                const float *restrict p = wg + l0 + offset_of(r, red, nr_outer, shape, stride);
                if (last_kept) {
                    for (int64_t j = 0; j < nl; j++) acc[j] += (double)p[j] * p[j];
                } else {
                    double sum = 0.0;
                    for (int64_t i = 0; i < run; i++) sum += (double)p[i] * p[i];
                    acc[0] += sum;
                }
            }
            for (int64_t j = 0; j < nl; j++) f[j] = norm_factor(v, sqrtf((float)acc[j]));
            for (int64_t r = 0; r < rows; r++) {
                float *restrict p = wg + l0 + offset_of(r, red, nr_outer, shape, stride);
                if (last_kept && div) {
                    for (int64_t j = 0; j < nl; j++) p[j] /= f[j];
                } else if (last_kept) {
                    for (int64_t j = 0; j < nl; j++) p[j] *= f[j];
                } else if (div) {
                    for (int64_t i = 0; i < run; i++) p[i] /= f[0];
                } else {
                    for (int64_t i = 0; i < run; i++) p[i] *= f[0];
                }
            }
        }
    }
}

/* Every selected variable's constraint, after the update (Keras's apply: constraints after
 * _backend_apply_gradients, every call). */
static void apply_constraints(pn_model *m, const unsigned char *sel) {
    for (int v = 0; v < m->n_vars; v++) {
        const pn_var *var = &m->vars[v];
        if (var->constraint == PN_CONSTRAINT_NONE || !selected(m, sel, v)) continue;
        float *restrict w = m->params + var->offset;
        if (var->constraint == PN_CONSTRAINT_NON_NEG) {
            SIMD_LOOP
            for (int64_t i = 0; i < var->size; i++) w[i] = w[i] < 0.0f ? 0.0f : w[i];
        } else {
            constrain_norms(w, var);
        }
    }
}

/* One optimizer call on the selected variables. `scaled`: the gradients are those of a scaled
 * loss (pn_model_apply_gradients), so the loss scale is divided out; the fused step's come from
 * the loss itself, and a dynamic scale only checks that they would stay finite scaled. */
static void optimizer_update(pn_model *m, const unsigned char *sel, int scaled) {
    const pn_optim_config *o = &m->opt;
    if (o->kind == PN_SCHEDULE_FREE_ADAMW && m->iterations == 0) /* Keras builds z = w */
        memcpy(slot(m, 0), m->params, (size_t)m->n_trainable * sizeof(float));
    float *ls = o->dynamic_loss_scale ? loss_scale_state(m) : NULL;
    if (ls) {
        if (!finite_gradients(m, sel, scaled ? 1.0f : ls[0])) { /* skip; halve the scale */
            ls[0] *= 0.5f;
            ls[1] = 0.0f;
            return;
        }
        if (scaled) divide_gradients(m, sel, ls[0]);
    }
    if (scaled && o->loss_scale_factor > 0.0f) divide_gradients(m, sel, o->loss_scale_factor);
    if (!accumulates(o) || accumulate(m, sel)) {
        clip_gradients(m, sel);
        apply_rule(m, sel);
    }
    if (o->use_ema) moving_average(m);
    apply_constraints(m, sel);
    m->iterations++;
    if (ls) {
        if (ls[1] >= (float)(o->dynamic_growth_steps - 1)) {
            ls[0] *= 2.0f;
            ls[1] = 0.0f;
        } else {
            ls[1] += 1.0f;
        }
    }
}

void pn_optimizer_step(pn_model *m) { optimizer_update(m, NULL, 0); }

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
    optimizer_update(m, sel, 1);
    m->writing = 0;
    pn_model_unlock(m);
    free(sel);
    return PN_OK;
}

int pn_model_optimizer_finalize(pn_model *m) {
    if (!m->has_optimizer || !m->opt.use_ema) return PN_OK;
    int rc = pn_model_lock(m);
    if (rc) return rc;
    m->writing = 1;
    memcpy(m->params, slot(m, rule_slots(&m->opt)), (size_t)m->n_trainable * sizeof(float));
    m->writing = 0;
    pn_model_unlock(m);
    return PN_OK;
}
