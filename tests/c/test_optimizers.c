/*
 * test_optimizers.c: the update rules of optimizer.c (Nadam, Adamax, Adadelta, Lion, Ftrl,
 * Adafactor, Lamb, Muon, ScheduleFreeAdamW) and the options around every rule (moving average,
 * gradient accumulation, dynamic loss scale, weight decay flags) against double-precision
 * references written from Keras 3's formulas; the one-pass and per-variable paths against each
 * other; bad arguments refused with the model unchanged.
 * Built and run by tests/test_c_core.py; prints "N passed, M failed".
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

#define NV 5
#define STEPS 7
/* a matrix, a bias, a 3-D kernel, a tall matrix (Muon transposes it) and a kernel large enough
 * for the threaded pass */
static const int nd[NV] = {2, 1, 3, 2, 3};
static const int64_t shapes[NV][3] = {{4, 6}, {5}, {2, 3, 4}, {7, 3}, {4, 45, 200}};

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
    unsigned seed = 11;
    for (int v = 0; v < NV; v++)
        for (int64_t i = 0; i < size_of(v); i++) param(m, ids[v])[i] = 0.5f * frand(&seed);
    return m;
}

/* the gradient of variable v at step t (deterministic; step 3's bias gradient is zero) */
static float grad_at(int v, int t, int64_t i) {
    unsigned s = (unsigned)(1000 * v + 7 * t + 1) * 2654435761u + (unsigned)i * 40503u;
    for (int k = 0; k < 3; k++) frand(&s);
    return (v == 1 && t == 3) ? 0.0f : 0.7f * frand(&s);
}

/* ---- the double reference ---------------------------------------------------------------- */

typedef struct {
    double *w, *s0, *s1, *s2, *avg, *acc;
} ref_var;

typedef struct {
    ref_var v[NV];
    double u_product, scale;
    int counter;
    int64_t calls;
} ref_state;

static void ref_init(ref_state *r, pn_model *m, const int *ids, const pn_optim_config *c) {
    memset(r, 0, sizeof *r);
    for (int v = 0; v < NV; v++) {
        int64_t n = size_of(v);
        ref_var *x = &r->v[v];
        x->w = calloc((size_t)n, sizeof(double));
        x->s0 = calloc((size_t)n, sizeof(double));
        x->s1 = calloc((size_t)n, sizeof(double));
        x->s2 = calloc((size_t)n, sizeof(double));
        x->avg = calloc((size_t)n, sizeof(double));
        x->acc = calloc((size_t)n, sizeof(double));
        for (int64_t i = 0; i < n; i++) {
            x->w[i] = param(m, ids[v])[i];
            if (c->kind == PN_FTRL) x->s0[i] = c->initial_accumulator_value;
        }
    }
    r->u_product = 1.0;
    r->scale = c->initial_scale;
}

static void ref_free(ref_state *r) {
    for (int v = 0; v < NV; v++) {
        ref_var *x = &r->v[v];
        free(x->w), free(x->s0), free(x->s1), free(x->s2), free(x->avg), free(x->acc);
    }
}

static double sgn(double x) { return x > 0 ? 1.0 : x < 0 ? -1.0 : 0.0; }

/* Muon's Newton-Schulz in double on a (rows, cols) matrix G (overwritten with the result) */
static void ref_newton_schulz(double *G, int64_t rows, int64_t cols, const pn_optim_config *c) {
    int tr = rows > cols;
    int64_t r = tr ? cols : rows, q = tr ? rows : cols, n = rows * cols;
    double *x = malloc((size_t)n * sizeof *x), *xn = malloc((size_t)n * sizeof *xn);
    double *a = malloc((size_t)(r * r) * sizeof *a), *b = malloc((size_t)(r * r) * sizeof *b);
    double ss = 0;
    for (int64_t i = 0; i < rows; i++)
        for (int64_t j = 0; j < cols; j++) {
            x[tr ? j * rows + i : i * cols + j] = G[i * cols + j];
            ss += G[i * cols + j] * G[i * cols + j];
        }
    for (int64_t i = 0; i < n; i++) x[i] /= sqrt(ss) + 1e-7;
    for (int s = 0; s < c->ns_steps; s++) {
        for (int64_t i = 0; i < r; i++)
            for (int64_t j = 0; j < r; j++) {
                double t = 0;
                for (int64_t k = 0; k < q; k++) t += x[i * q + k] * x[j * q + k];
                a[i * r + j] = t;
            }
        for (int64_t i = 0; i < r; i++)
            for (int64_t j = 0; j < r; j++) {
                double t = 0;
                for (int64_t k = 0; k < r; k++) t += a[i * r + k] * a[k * r + j];
                b[i * r + j] = c->muon_b * a[i * r + j] + c->muon_c * t;
            }
        for (int64_t i = 0; i < r; i++)
            for (int64_t j = 0; j < q; j++) {
                double t = 0;
                for (int64_t k = 0; k < r; k++) t += b[i * r + k] * x[k * q + j];
                xn[i * q + j] = c->muon_a * x[i * q + j] + t;
            }
        memcpy(x, xn, (size_t)n * sizeof *x);
    }
    for (int64_t i = 0; i < rows; i++)
        for (int64_t j = 0; j < cols; j++) G[i * cols + j] = x[tr ? j * rows + i : i * cols + j];
    free(x), free(xn), free(a), free(b);
}

/* one update of variable v with gradient g (clipped and accumulated already) at step t */
static void ref_rule(ref_state *R, int v, const double *g, double t, const pn_optim_config *c,
                     int no_decay, int muon_adam) {
    ref_var *x = &R->v[v];
    const int64_t n = size_of(v);
    double lr = c->learning_rate, b1 = c->beta_1, b2 = c->beta_2, eps = c->epsilon;
    int adam = c->kind == PN_MUON && (nd[v] != 2 || muon_adam);
    double wd = adam ? c->adam_weight_decay : c->weight_decay;
    if (no_decay) wd = 0;
    for (int64_t i = 0; i < n; i++) x->w[i] -= x->w[i] * wd * lr;
    switch (c->kind) {
    case PN_NADAM: {
        double ut = b1 * (1 - 0.5 * pow(0.96, t)), un = b1 * (1 - 0.5 * pow(0.96, t + 1));
        double pt = R->u_product, pn = pt * un; /* R->u_product already holds P_t */
        for (int64_t i = 0; i < n; i++) {
            x->s0[i] += (g[i] - x->s0[i]) * (1 - b1);
            x->s1[i] += (g[i] * g[i] - x->s1[i]) * (1 - b2);
            double mh = un * x->s0[i] / (1 - pn) + (1 - ut) * g[i] / (1 - pt);
            x->w[i] -= mh * lr / (sqrt(x->s1[i] / (1 - pow(b2, t))) + eps);
        }
        break;
    }
    case PN_ADAMAX:
        for (int64_t i = 0; i < n; i++) {
            x->s0[i] += (g[i] - x->s0[i]) * (1 - b1);
            x->s1[i] = fmax(b2 * x->s1[i], fabs(g[i]));
            x->w[i] -= lr * x->s0[i] / ((1 - pow(b1, t)) * (x->s1[i] + eps));
        }
        break;
    case PN_ADADELTA:
        for (int64_t i = 0; i < n; i++) {
            double rho = c->rho;
            x->s0[i] = rho * x->s0[i] + (1 - rho) * g[i] * g[i];
            double d = -sqrt(x->s1[i] + eps) * g[i] / sqrt(x->s0[i] + eps);
            x->s1[i] = rho * x->s1[i] + (1 - rho) * d * d;
            x->w[i] += lr * d;
        }
        break;
    case PN_LION:
        for (int64_t i = 0; i < n; i++) {
            x->w[i] -= lr * sgn(x->s0[i] * b1 + g[i] * (1 - b1));
            x->s0[i] = x->s0[i] * b2 + g[i] * (1 - b2);
        }
        break;
    case PN_FTRL: {
        double p = -c->learning_rate_power, l2r = c->l2 + c->beta / (2 * lr);
        for (int64_t i = 0; i < n; i++) {
            double na = x->s0[i] + g[i] * g[i];
            x->s1[i] += g[i] + 2 * c->l2_shrinkage * x->w[i] -
                        (pow(na, p) - pow(x->s0[i], p)) / lr * x->w[i];
            double lc = fmin(fmax(x->s1[i], -c->l1), c->l1);
            x->w[i] = (lc - x->s1[i]) / (pow(na, p) / lr + 2 * l2r);
            x->s0[i] = na;
        }
        break;
    }
    case PN_ADAFACTOR: {
        double rho = fmin(lr, 1 / sqrt(t)), ww = 0;
        for (int64_t i = 0; i < n; i++) ww += x->w[i] * x->w[i];
        double alpha = fmax(c->epsilon_2, sqrt(ww / n)) * rho, b = 1 - pow(t, c->beta_2_decay);
        if (nd[v] >= 2) {
            int64_t cols = shapes[v][nd[v] - 1], rows = shapes[v][nd[v] - 2];
            for (int64_t p = 0; p < n / (rows * cols); p++) {
                double rs = 0;
                for (int64_t i = 0; i < rows; i++) {
                    double s = 0;
                    for (int64_t j = 0; j < cols; j++) {
                        double gg = g[p * rows * cols + i * cols + j];
                        s += gg * gg + c->epsilon_1;
                    }
                    x->s0[p * rows + i] = b * x->s0[p * rows + i] + (1 - b) * s / cols;
                    rs += x->s0[p * rows + i];
                }
                for (int64_t j = 0; j < cols; j++) {
                    double s = 0;
                    for (int64_t i = 0; i < rows; i++) {
                        double gg = g[p * rows * cols + i * cols + j];
                        s += gg * gg + c->epsilon_1;
                    }
                    x->s1[p * cols + j] = b * x->s1[p * cols + j] + (1 - b) * s / rows;
                }
                for (int64_t i = 0; i < rows; i++)
                    for (int64_t j = 0; j < cols; j++)
                        x->s2[p * rows * cols + i * cols + j] =
                            x->s0[p * rows + i] / (rs / rows) * x->s1[p * cols + j];
            }
        } else {
            for (int64_t i = 0; i < n; i++)
                x->s2[i] = b * x->s2[i] + (1 - b) * (g[i] * g[i] + c->epsilon_1);
        }
        double uu = 0;
        for (int64_t i = 0; i < n; i++) uu += g[i] * g[i] / x->s2[i];
        double k = alpha / fmax(1.0, sqrt(uu / n) / c->clip_threshold);
        for (int64_t i = 0; i < n; i++) x->w[i] -= k * g[i] / sqrt(x->s2[i]);
        break;
    }
    case PN_LAMB: {
        double ww = 0, uu = 0;
        for (int64_t i = 0; i < n; i++) {
            x->s0[i] += (g[i] - x->s0[i]) * (1 - b1);
            x->s1[i] += (g[i] * g[i] - x->s1[i]) * (1 - b2);
            double u = (x->s0[i] / (1 - pow(b1, t))) / (sqrt(x->s1[i] / (1 - pow(b2, t))) + eps);
            ww += x->w[i] * x->w[i];
            uu += u * u;
        }
        double ratio = ww > 0 && uu > 0 ? sqrt(ww) / sqrt(uu) : 1.0;
        for (int64_t i = 0; i < n; i++)
            x->w[i] -= ratio * lr * (x->s0[i] / (1 - pow(b1, t))) /
                       (sqrt(x->s1[i] / (1 - pow(b2, t))) + eps);
        break;
    }
    case PN_MUON: {
        if (adam) {
            double alr = lr * c->adam_lr_ratio;
            double alpha = alr * sqrt(1 - pow(b2, t)) / (1 - pow(b1, t));
            for (int64_t i = 0; i < n; i++) {
                x->s0[i] += (g[i] - x->s0[i]) * (1 - b1);
                x->s1[i] += (g[i] * g[i] - x->s1[i]) * (1 - b2);
                x->w[i] -= alpha * x->s0[i] / (sqrt(x->s1[i]) + eps);
            }
            break;
        }
        double mu = c->momentum, *G = malloc((size_t)n * sizeof *G);
        for (int64_t i = 0; i < n; i++) {
            x->s0[i] += g[i] + x->s0[i] * (mu - 1);
            G[i] = c->nesterov ? g[i] + mu * x->s0[i] : x->s0[i];
        }
        ref_newton_schulz(G, shapes[v][0], shapes[v][1], c);
        double k = lr;
        if (c->rms_rate >= 0) k *= sqrt((double)(shapes[v][0] > shapes[v][1] ? shapes[v][0]
                                                                              : shapes[v][1])) *
                                   c->rms_rate;
        for (int64_t i = 0; i < n; i++) x->w[i] -= k * G[i];
        free(G);
        break;
    }
    case PN_SCHEDULE_FREE_ADAMW: {
        double lw = c->warmup_steps > 0 ? lr * fmin(t / c->warmup_steps, 1.0) : lr;
        for (int64_t i = 0; i < n; i++) {
            x->s1[i] += (g[i] * g[i] - x->s1[i]) * (1 - b2);
            double z0 = x->s0[i];
            x->s0[i] -= lw * g[i] / (sqrt(x->s1[i] / (1 - pow(b2, t))) + eps);
            double xo = (x->w[i] - (1 - b1) * z0) / b1;
            double xn = (1 - 1 / t) * xo + x->s0[i] / t;
            x->w[i] = (1 - b1) * x->s0[i] + b1 * xn;
        }
        break;
    }
    default: break;
    }
}

/* one optimizer call on every variable, with the gradients of step `step` times `gscale` (a
 * loss scale's), or a non-finite one when `poison` */
static void ref_call(ref_state *R, int step, const pn_optim_config *c, const int *no_decay,
                     const int *muon_adam, double gscale, int poison) {
    double *g[NV];
    for (int v = 0; v < NV; v++) {
        g[v] = malloc((size_t)size_of(v) * sizeof(double));
        for (int64_t i = 0; i < size_of(v); i++) g[v][i] = grad_at(v, step, i) * gscale;
    }
    if (poison) g[2][1] = INFINITY;
    if (c->dynamic_loss_scale) {
        if (poison) {
            R->scale *= 0.5;
            R->counter = 0;
            goto done;
        }
        for (int v = 0; v < NV; v++)
            for (int64_t i = 0; i < size_of(v); i++) g[v][i] /= R->scale;
    }
    int k = c->gradient_accumulation_steps, update = 1;
    if (k > 1) {
        update = (R->calls + 1) % k == 0;
        for (int v = 0; v < NV; v++)
            for (int64_t i = 0; i < size_of(v); i++) {
                if (update) {
                    g[v][i] = (g[v][i] + R->v[v].acc[i]) / k;
                    R->v[v].acc[i] = 0;
                } else {
                    R->v[v].acc[i] += g[v][i];
                }
            }
    }
    int64_t done_updates = k > 1 ? R->calls / k : R->calls;
    if (update) {
        if (c->global_clipnorm > 0) {
            double ss = 0;
            for (int v = 0; v < NV; v++)
                for (int64_t i = 0; i < size_of(v); i++) ss += g[v][i] * g[v][i];
            if (sqrt(ss) > c->global_clipnorm)
                for (int v = 0; v < NV; v++)
                    for (int64_t i = 0; i < size_of(v); i++) g[v][i] *= c->global_clipnorm / sqrt(ss);
        }
        double t = (double)(done_updates + 1);
        if (c->kind == PN_NADAM) R->u_product *= c->beta_1 * (1 - 0.5 * pow(0.96, t));
        if (c->kind == PN_SCHEDULE_FREE_ADAMW && R->calls == 0)
            for (int v = 0; v < NV; v++) memcpy(R->v[v].s0, R->v[v].w, (size_t)size_of(v) * 8);
        for (int v = 0; v < NV; v++) ref_rule(R, v, g[v], t, c, no_decay[v], muon_adam[v]);
    }
    if (c->use_ema) {
        double mu = done_updates != 0 ? c->ema_momentum : 0.0;
        int over = c->ema_overwrite_frequency > 0 &&
                   (done_updates + 1) % c->ema_overwrite_frequency == 0;
        for (int v = 0; v < NV; v++)
            for (int64_t i = 0; i < size_of(v); i++) {
                R->v[v].avg[i] = mu * R->v[v].avg[i] + (1 - mu) * R->v[v].w[i];
                if (over) R->v[v].w[i] = R->v[v].avg[i];
            }
    }
    R->calls++;
    if (c->dynamic_loss_scale) {
        if (R->counter == c->dynamic_growth_steps - 1) {
            R->scale *= 2;
            R->counter = 0;
        } else {
            R->counter++;
        }
    }
done:
    for (int v = 0; v < NV; v++) free(g[v]);
}

/* ---- the core against the reference ------------------------------------------------------- */

/* Runs STEPS calls of cfg through pn_model_apply_gradients (all variables: n = 0, or listed
 * one by one when `listed`) and the reference; returns the worst relative error of the
 * weights. poison_at: the call given a non-finite gradient (-1: none). */
static double run_case(const pn_optim_config *cfg, int listed, int poison_at, const int *flags,
                       pn_model **keep) {
    int ids[NV], no_decay[NV] = {0}, muon_adam[NV] = {0};
    pn_model *m = make_model(ids);
    for (int v = 0; flags && v < NV; v++) {
        pn_model_set_variable_optim(m, ids[v], flags[v]);
        no_decay[v] = flags[v] & PN_VAR_NO_DECAY;
        muon_adam[v] = (flags[v] & PN_VAR_ADAM) != 0;
    }
    if (pn_model_set_optimizer(m, cfg)) {
        pn_model_destroy(m);
        return INFINITY;
    }
    ref_state R;
    ref_init(&R, m, ids, cfg);
    for (int t = 0; t < STEPS; t++) {
        int poison = t == poison_at;
        double s = cfg->dynamic_loss_scale ? R.scale : 1.0;
        for (int v = 0; v < NV; v++)
            for (int64_t i = 0; i < size_of(v); i++) grad(m, ids[v])[i] = (float)(grad_at(v, t, i) * s);
        if (poison) grad(m, ids[2])[1] = INFINITY;
        int rc = listed ? pn_model_apply_gradients(m, NV, ids) : pn_model_apply_gradients(m, 0, NULL);
        if (rc) break;
        ref_call(&R, t, cfg, no_decay, muon_adam, s, poison);
    }
    double worst = 0;
    for (int v = 0; v < NV; v++) worst = fmax(worst, rel_err(param(m, ids[v]), R.v[v].w, size_of(v), 1e-3));
    if (cfg->dynamic_loss_scale) {
        float *state;
        int64_t n;
        pn_model_optimizer_state(m, &state, &n);
        CHECK(state[n - 2] == (float)R.scale && state[n - 1] == (float)R.counter,
              "loss scale %g, counter %g; reference %g, %d", state[n - 2], state[n - 1], R.scale,
              R.counter);
        CHECK(pn_model_iterations(m) == R.calls, "iterations %lld, reference %lld",
              (long long)pn_model_iterations(m), (long long)R.calls);
    }
    if (cfg->use_ema && cfg->ema_overwrite_frequency == 0) { /* finalize copies the averages */
        pn_model_optimizer_finalize(m);
        for (int v = 0; v < NV; v++)
            worst = fmax(worst, rel_err(param(m, ids[v]), R.v[v].avg, size_of(v), 1e-3));
    }
    ref_free(&R);
    if (keep) *keep = m;
    else pn_model_destroy(m);
    return worst;
}

static pn_optim_config cfg_of(pn_optim_kind kind, float lr) {
    pn_optim_config c = pn_optim_default(kind);
    c.learning_rate = lr;
    return c;
}

static void test_rules_match_the_reference(void) {
    typedef struct {
        const char *name;
        pn_optim_config c;
        double tol;
    } rule_case;
    rule_case cases[20];
    int n = 0;
    cases[n++] = (rule_case){"nadam", cfg_of(PN_NADAM, 0.02f), 1e-4};
    cases[n++] = (rule_case){"adamax", cfg_of(PN_ADAMAX, 0.02f), 1e-5};
    cases[n++] = (rule_case){"adadelta", cfg_of(PN_ADADELTA, 1.0f), 1e-5};
    cases[n++] = (rule_case){"lion", cfg_of(PN_LION, 0.01f), 1e-5};
    cases[n++] = (rule_case){"ftrl", cfg_of(PN_FTRL, 0.1f), 1e-5};
    pn_optim_config f = cfg_of(PN_FTRL, 0.2f);
    f.learning_rate_power = -0.7f, f.l1 = 0.05f, f.l2 = 0.1f, f.l2_shrinkage = 0.05f,
    f.beta = 0.3f, f.initial_accumulator_value = 0.5f;
    cases[n++] = (rule_case){"ftrl regularized", f, 1e-5};
    cases[n++] = (rule_case){"adafactor", cfg_of(PN_ADAFACTOR, 0.05f), 1e-5};
    cases[n++] = (rule_case){"lamb", cfg_of(PN_LAMB, 0.02f), 1e-5};
    cases[n++] = (rule_case){"muon", cfg_of(PN_MUON, 0.02f), 1e-4};
    pn_optim_config mu = cfg_of(PN_MUON, 0.05f);
    mu.nesterov = 0, mu.rms_rate = -1.0f, mu.ns_steps = 3, mu.momentum = 0.8f;
    cases[n++] = (rule_case){"muon plain", mu, 1e-4};
    pn_optim_config sf = cfg_of(PN_SCHEDULE_FREE_ADAMW, 0.05f);
    sf.warmup_steps = 3, sf.weight_decay = 0.1f, sf.beta_1 = 0.8f;
    cases[n++] = (rule_case){"schedule-free", sf, 1e-4};
    pn_optim_config nd_ = cfg_of(PN_NADAM, 0.02f);
    nd_.weight_decay = 0.05f, nd_.use_ema = 1, nd_.ema_momentum = 0.7f;
    cases[n++] = (rule_case){"nadam decay ema", nd_, 1e-4};
    pn_optim_config ac = cfg_of(PN_ADAMAX, 0.05f);
    ac.gradient_accumulation_steps = 3, ac.use_ema = 1, ac.ema_overwrite_frequency = 2;
    cases[n++] = (rule_case){"adamax accumulate ema", ac, 1e-5};
    pn_optim_config gc = cfg_of(PN_LION, 0.01f);
    gc.global_clipnorm = 0.5f, gc.weight_decay = 0.2f;
    cases[n++] = (rule_case){"lion global clipnorm", gc, 1e-5};
    pn_optim_config af = cfg_of(PN_ADAFACTOR, 0.3f);
    af.beta_2_decay = -0.5f, af.epsilon_2 = 0.1f, af.clip_threshold = 0.5f,
    af.gradient_accumulation_steps = 2;
    cases[n++] = (rule_case){"adafactor clipped accumulate", af, 1e-5};
    for (int k = 0; k < n; k++)
        for (int listed = 0; listed < 2; listed++) {
            double err = run_case(&cases[k].c, listed, -1, NULL, NULL);
            CHECK(err < cases[k].tol, "%s (%s): error %g", cases[k].name,
                  listed ? "listed" : "all", err);
        }
}

static void test_loss_scale_skips_halves_and_doubles(void) {
    pn_optim_config c = cfg_of(PN_ADAMAX, 0.02f);
    c.dynamic_loss_scale = 1, c.initial_scale = 8.0f, c.dynamic_growth_steps = 2;
    double err = run_case(&c, 0, 3, NULL, NULL);
    CHECK(err < 1e-5, "dynamic loss scale: error %g", err);
    c.kind = PN_NADAM; /* Nadam's u_product comes first among the scalars */
    err = run_case(&c, 1, 1, NULL, NULL);
    CHECK(err < 1e-4, "dynamic loss scale with nadam: error %g", err);
}

static void test_variable_flags(void) {
    int flags[NV] = {0, PN_VAR_NO_DECAY, 0, PN_VAR_ADAM, PN_VAR_NO_DECAY};
    pn_optim_config c = cfg_of(PN_MUON, 0.02f);
    c.weight_decay = 0.3f, c.adam_weight_decay = 0.1f;
    double err = run_case(&c, 0, -1, flags, NULL);
    CHECK(err < 1e-4, "muon with flags: error %g", err);
    pn_optim_config a = cfg_of(PN_ADAMAX, 0.02f);
    a.weight_decay = 0.3f;
    err = run_case(&a, 0, -1, flags, NULL);
    CHECK(err < 1e-5, "adamax without decay on flagged variables: error %g", err);
    int ids[NV];
    pn_model *m = make_model(ids);
    CHECK(pn_model_set_variable_optim(m, NV, 0) == PN_EVALUE, "a variable out of range");
    CHECK(pn_model_set_variable_optim(m, 0, 4) == PN_EVALUE, "an unknown flag");
    pn_model_destroy(m);
}

/* the one fused pass and the per-variable path give the same weights bit for bit */
static void test_whole_span_equals_listed(void) {
    pn_optim_kind kinds[] = {PN_NADAM, PN_ADAMAX, PN_ADADELTA, PN_LION, PN_FTRL,
                             PN_SCHEDULE_FREE_ADAMW};
    for (size_t k = 0; k < sizeof kinds / sizeof *kinds; k++) {
        pn_optim_config c = cfg_of(kinds[k], 0.03f);
        c.use_ema = 1;
        pn_model *a, *b;
        run_case(&c, 0, -1, NULL, &a);
        run_case(&c, 1, -1, NULL, &b);
        int same = 1;
        for (int v = 0; v < NV; v++)
            same &= memcmp(param(a, v), param(b, v), (size_t)size_of(v) * sizeof(float)) == 0;
        CHECK(same, "kind %d: the fused pass and the listed variables differ", (int)kinds[k]);
        pn_model_destroy(a);
        pn_model_destroy(b);
    }
}

static void test_bad_arguments_refused(void) {
    int ids[NV];
    pn_model *m = make_model(ids);
    pn_optim_config good = cfg_of(PN_NADAM, 0.01f);
    CHECK(pn_model_set_optimizer(m, &good) == 0, "nadam");
    grad(m, ids[0])[0] = 1.0f;
    pn_model_apply_gradients(m, 0, NULL);
    pn_optim_config bad[12];
    int n = 0;
    bad[n] = cfg_of(PN_LION, 0.01f), bad[n++].beta_1 = 1.5f;
    bad[n] = cfg_of(PN_ADADELTA, 0.01f), bad[n++].rho = -0.1f;
    bad[n] = cfg_of(PN_FTRL, 0.01f), bad[n++].learning_rate_power = 0.5f;
    bad[n] = cfg_of(PN_FTRL, 0.01f), bad[n++].l1 = -1.0f;
    bad[n] = cfg_of(PN_ADAFACTOR, 0.01f), bad[n++].clip_threshold = 0.0f;
    bad[n] = cfg_of(PN_MUON, 0.01f), bad[n++].ns_steps = -1;
    bad[n] = cfg_of(PN_SCHEDULE_FREE_ADAMW, 0.01f), bad[n++].beta_1 = 0.0f;
    bad[n] = cfg_of(PN_ADAM, 0.01f), bad[n].use_ema = 1, bad[n++].ema_momentum = 2.0f;
    bad[n] = cfg_of(PN_ADAM, 0.01f), bad[n++].gradient_accumulation_steps = -2;
    bad[n] = cfg_of(PN_ADAM, 0.01f), bad[n++].loss_scale_factor = NAN;
    bad[n] = cfg_of(PN_ADAM, 0.01f), bad[n].dynamic_loss_scale = 1, bad[n++].initial_scale = 0;
    bad[n] = cfg_of(PN_ADAM, 0.01f), bad[n++].kind = PN_OPTIM_COUNT;
    for (int k = 0; k < n; k++) {
        CHECK(pn_model_set_optimizer(m, &bad[k]) == PN_EVALUE, "bad config %d accepted", k);
        CHECK(pn_model_iterations(m) == 1, "bad config %d reset the state", k);
    }
    pn_model_destroy(m);
}

int main(void) {
    pn_set_num_threads(2);
    test_rules_match_the_reference();
    test_loss_scale_skips_halves_and_doubles();
    test_variable_flags();
    test_whole_span_equals_listed();
    test_bad_arguments_refused();
    printf("%d passed, %d failed\n", passed, failed);
    return failed != 0;
}
