/*
 * test_attention.c: the attention, layer_norm and position_embedding ops through the public
 * header alone. Prints "N passed, M failed" and exits non-zero on failure.
 *
 * Each op sits alone in a model (its inputs are model inputs, MSE loss), so pn_model_gradients
 * gives its training forward (through the loss) and its backward, checked against
 * double-precision references written here; dropout against finite differences with a fixed
 * seed, thread counts against each other, and bad shapes and attributes against their errors.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

/* ---- attention ---------------------------------------------------------------------------- */

typedef struct {
    int64_t B, Tq, Tk, H, kd, vd;
    int causal, mask; /* mask: 0 none, 1 int32, 2 float32 */
    float rate;
} attn_case;

typedef struct {
    pn_model *m;
    int node;
    int n_in;
} net;

static int attn_make(net *t, const attn_case *a) {
    memset(t, 0, sizeof *t);
    int rc = pn_model_create(&t->m);
    rc |= pn_model_alloc(t->m);
    int in[4];
    int64_t sq[2] = {a->Tq, a->H * a->kd}, sk[2] = {a->Tk, a->H * a->kd},
            sv[2] = {a->Tk, a->H * a->vd}, sm[2] = {a->Tq, a->Tk};
    rc |= pn_model_add_input(t->m, 2, sq, PN_F32, &in[0]);
    rc |= pn_model_add_input(t->m, 2, sk, PN_F32, &in[1]);
    rc |= pn_model_add_input(t->m, 2, sv, PN_F32, &in[2]);
    t->n_in = 3;
    if (a->mask) {
        rc |= pn_model_add_input(t->m, 2, sm, a->mask == 1 ? PN_I32 : PN_F32, &in[3]);
        t->n_in = 4;
    }
    int iattr[PN_MAX_ATTRS] = {(int)a->H, (int)a->kd, (int)a->vd, a->causal};
    float fattr[PN_MAX_ATTRS] = {a->rate};
    rc |= pn_model_add_node(t->m, PN_OP_ATTENTION, t->n_in, in, 0, NULL, iattr, fattr, &t->node);
    rc |= pn_model_set_output(t->m, t->node);
    rc |= pn_model_compile(t->m, PN_LOSS_MSE, 0, 0, NULL);
    return rc;
}

/* whether query i may see key j (the mask is (B, Tq, Tk) ints or floats) */
static int attn_allowed(const attn_case *a, const void *mask, int64_t b, int64_t i, int64_t j) {
    if (a->causal && j > i) return 0;
    if (!a->mask) return 1;
    int64_t o = (b * a->Tq + i) * a->Tk + j;
    return a->mask == 1 ? ((const int32_t *)mask)[o] != 0 : ((const float *)mask)[o] != 0.0f;
}

/* The reference without dropout: out (B, Tq, H vd); with dy non-NULL also dq, dk, dv. */
static void attn_ref_drop(const attn_case *a, const float *q, const float *k, const float *v,
                          const void *mask, double *out, const double *dy, double *dq,
                          double *dk, double *dv, uint64_t drop_key);

static void attn_ref(const attn_case *a, const float *q, const float *k, const float *v,
                     const void *mask, double *out, const double *dy, double *dq, double *dk,
                     double *dv) {
    attn_ref_drop(a, q, k, v, mask, out, dy, dq, dk, dv, 0);
}

/* splitmix64's finaliser, as the core's counter-based random stream */
static uint64_t hash64(uint64_t key, uint64_t i) {
    uint64_t z = key + (i + 1) * 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* attention's dropout draw n: 24 bits of hash(key, n / 2), the top ones for even n */
static int attn_keep(uint64_t key, uint64_t n, float rate) {
    uint64_t h = hash64(key, n >> 1);
    uint64_t draw = (n & 1) ? (h >> 16) & 0xFFFFFF : h >> 40;
    return draw >= (uint64_t)ceil((double)rate * 16777216.0);
}

/* The reference; with drop_key non-zero, P is dropped with rate a->rate (forward only). */
static void attn_ref_drop(const attn_case *a, const float *q, const float *k, const float *v,
                          const void *mask, double *out, const double *dy, double *dq,
                          double *dk, double *dv, uint64_t drop_key) {
    int64_t HK = a->H * a->kd, HV = a->H * a->vd, Tk = a->Tk;
    double *p = malloc(sizeof(double) * Tk), *dp = malloc(sizeof(double) * Tk);
    unsigned char *ok = malloc((size_t)Tk);
    double sc = 1.0 / sqrt((double)a->kd);
    if (dy) {
        memset(dq, 0, sizeof(double) * a->B * a->Tq * HK);
        memset(dk, 0, sizeof(double) * a->B * Tk * HK);
        memset(dv, 0, sizeof(double) * a->B * Tk * HV);
    }
    for (int64_t b = 0; b < a->B; b++)
        for (int64_t h = 0; h < a->H; h++)
            for (int64_t i = 0; i < a->Tq; i++) {
                const float *qi = q + (b * a->Tq + i) * HK + h * a->kd;
                double mx = -INFINITY;
                int any = 0;
                for (int64_t j = 0; j < Tk; j++) {
                    const float *kj = k + (b * Tk + j) * HK + h * a->kd;
                    double s = 0;
                    for (int64_t d = 0; d < a->kd; d++) s += (double)qi[d] * kj[d];
                    p[j] = s * sc;
                    ok[j] = (unsigned char)attn_allowed(a, mask, b, i, j);
                    if (ok[j]) mx = fmax(mx, p[j]), any = 1;
                }
                double sum = 0;
                for (int64_t j = 0; j < Tk; j++) {
                    p[j] = any ? (ok[j] ? exp(p[j] - mx) : 0.0) : 1.0;
                    sum += p[j];
                }
                for (int64_t j = 0; j < Tk; j++) p[j] /= sum;
                if (drop_key)
                    for (int64_t j = 0; j < Tk; j++)
                        p[j] = attn_keep(drop_key,
                                         (uint64_t)(((b * a->H + h) * a->Tq + i) * Tk + j),
                                         a->rate) ? p[j] / (1.0 - a->rate) : 0.0;
                double *o = out + (b * a->Tq + i) * HV + h * a->vd;
                for (int64_t e = 0; e < a->vd; e++) {
                    double s = 0;
                    for (int64_t j = 0; j < Tk; j++)
                        s += p[j] * v[(b * Tk + j) * HV + h * a->vd + e];
                    o[e] = s;
                }
                if (!dy) continue;
                const double *g = dy + (b * a->Tq + i) * HV + h * a->vd;
                double dot = 0;
                for (int64_t j = 0; j < Tk; j++) {
                    double s = 0;
                    for (int64_t e = 0; e < a->vd; e++) {
                        s += g[e] * v[(b * Tk + j) * HV + h * a->vd + e];
                        dv[(b * Tk + j) * HV + h * a->vd + e] += p[j] * g[e];
                    }
                    dp[j] = s;
                    dot += p[j] * s;
                }
                for (int64_t j = 0; j < Tk; j++) {
                    double ds = any ? p[j] * (dp[j] - dot) * sc : 0.0;
                    for (int64_t d = 0; d < a->kd; d++) {
                        dq[(b * a->Tq + i) * HK + h * a->kd + d] +=
                            ds * k[(b * Tk + j) * HK + h * a->kd + d];
                        dk[(b * Tk + j) * HK + h * a->kd + d] += ds * qi[d];
                    }
                }
            }
    free(p), free(dp), free(ok);
}

typedef struct {
    float *q, *k, *v, *y;
    void *mask;
    int64_t nq, nk, nv, nm;
    pn_tensor xs[4], ty;
} attn_data;

static void attn_data_make(attn_data *d, const attn_case *a, unsigned seed) {
    d->nq = a->B * a->Tq * a->H * a->kd;
    d->nk = a->B * a->Tk * a->H * a->kd;
    d->nv = a->B * a->Tk * a->H * a->vd;
    d->nm = a->B * a->Tq * a->Tk;
    d->q = malloc(sizeof(float) * d->nq);
    d->k = malloc(sizeof(float) * d->nk);
    d->v = malloc(sizeof(float) * d->nv);
    d->y = malloc(sizeof(float) * a->B * a->Tq * a->H * a->vd);
    d->mask = malloc(4 * (size_t)d->nm);
    for (int64_t i = 0; i < d->nq; i++) d->q[i] = 1.5f * frand(&seed);
    for (int64_t i = 0; i < d->nk; i++) d->k[i] = 1.5f * frand(&seed);
    for (int64_t i = 0; i < d->nv; i++) d->v[i] = frand(&seed);
    for (int64_t i = 0; i < a->B * a->Tq * a->H * a->vd; i++) d->y[i] = frand(&seed);
    for (int64_t i = 0; i < d->nm; i++) {
        int keep = frand(&seed) > -0.4f;                      /* about 70% attend */
        if ((i / a->Tk) % 4 == 1) keep = 0;                   /* some rows fully masked */
        if (a->mask == 1) ((int32_t *)d->mask)[i] = keep ? ((i % 3) + 1) : 0;
        else ((float *)d->mask)[i] = keep ? 1.0f : 0.0f;
    }
    d->xs[0] = (pn_tensor){3, {a->B, a->Tq, a->H * a->kd}, PN_F32, d->q};
    d->xs[1] = (pn_tensor){3, {a->B, a->Tk, a->H * a->kd}, PN_F32, d->k};
    d->xs[2] = (pn_tensor){3, {a->B, a->Tk, a->H * a->vd}, PN_F32, d->v};
    d->xs[3] = (pn_tensor){3, {a->B, a->Tq, a->Tk}, a->mask == 1 ? PN_I32 : PN_F32, d->mask};
    d->ty = (pn_tensor){3, {a->B, a->Tq, a->H * a->vd}, PN_F32, d->y};
}

static void attn_data_free(attn_data *d) {
    free(d->q), free(d->k), free(d->v), free(d->y), free(d->mask);
}

static void attn_check(const char *what, attn_case a) {
    net t;
    CHECK(attn_make(&t, &a) == 0, "%s: build", what);
    attn_data d;
    attn_data_make(&d, &a, 5u + (unsigned)a.Tq);
    int64_t M = a.B * a.Tq * a.H * a.vd;
    double *out = malloc(sizeof(double) * M), *dy = malloc(sizeof(double) * M);
    double *dq = malloc(sizeof(double) * d.nq), *dk = malloc(sizeof(double) * d.nk),
           *dv = malloc(sizeof(double) * d.nv);
    const void *mask = a.mask ? d.mask : NULL;
    attn_ref(&a, d.q, d.k, d.v, mask, out, NULL, NULL, NULL, NULL);
    double loss_ref = 0;
    for (int64_t i = 0; i < M; i++) {
        loss_ref += (out[i] - d.y[i]) * (out[i] - d.y[i]);
        dy[i] = 2.0 * (out[i] - d.y[i]) / (double)M;
    }
    loss_ref /= (double)M;
    attn_ref(&a, d.q, d.k, d.v, mask, out, dy, dq, dk, dv);
    /* inference */
    float *pred = malloc(sizeof(float) * M);
    CHECK(pn_model_predict(t.m, d.xs, a.B, (float *[]){pred}) == 0, "%s: predict", what);
    double e = rel_err(pred, out, M, 1e-3);
    CHECK(e < 1e-5, "%s: output rel err %g", what, e);
    /* training forward and backward */
    float *g[4];
    for (int j = 0; j < 4; j++) g[j] = malloc(sizeof(float) * (size_t)(d.nq + d.nk + d.nv + d.nm));
    float loss = 0;
    CHECK(pn_model_gradients(t.m, d.xs, &d.ty, &loss, g) == 0, "%s: gradients", what);
    CHECK(fabs(loss - loss_ref) <= 1e-5 * (1 + loss_ref), "%s: loss %.7g vs %.7g", what, loss,
          loss_ref);
    e = rel_err(g[0], dq, d.nq, 1e-6);
    CHECK(e < 2e-4, "%s: dq rel err %g", what, e);
    e = rel_err(g[1], dk, d.nk, 1e-6);
    CHECK(e < 2e-4, "%s: dk rel err %g", what, e);
    e = rel_err(g[2], dv, d.nv, 1e-6);
    CHECK(e < 2e-4, "%s: dv rel err %g", what, e);
    if (a.mask == 2) {
        int zero = 1;
        for (int64_t i = 0; i < d.nm; i++) zero &= g[3][i] == 0.0f;
        CHECK(zero, "%s: a float mask gets a zero gradient", what);
    }
    /* the same bits at 1 and 2 threads */
    float *g1 = malloc(sizeof(float) * d.nq);
    memcpy(g1, g[0], sizeof(float) * d.nq);
    pn_set_num_threads(1);
    float loss1 = 0;
    CHECK(pn_model_gradients(t.m, d.xs, &d.ty, &loss1, g) == 0, "%s: gradients (1 thread)", what);
    pn_set_num_threads(2);
    CHECK(loss1 == loss && memcmp(g1, g[0], sizeof(float) * d.nq) == 0,
          "%s: 1 and 2 threads differ", what);
    free(g1);
    for (int j = 0; j < 4; j++) free(g[j]);
    free(out), free(dy), free(dq), free(dk), free(dv), free(pred);
    attn_data_free(&d);
    pn_model_destroy(t.m);
}

/* Dropout: a fixed seed gives a fixed loss, its gradients match central differences of it,
 * any thread count gives the same bits, and inference ignores the rate. */
static void attn_check_dropout(void) {
    attn_case a = {.B = 2, .Tq = 5, .Tk = 6, .H = 2, .kd = 3, .vd = 2, .causal = 0, .rate = 0.3f};
    net t;
    CHECK(attn_make(&t, &a) == 0, "dropout: build");
    attn_data d;
    attn_data_make(&d, &a, 91u);
    float *g[4];
    for (int j = 0; j < 4; j++) g[j] = malloc(sizeof(float) * 256);
    float loss = 0, l2 = 0;
    pn_model_set_seed(t.m, 42);
    CHECK(pn_model_gradients(t.m, d.xs, &d.ty, &loss, g) == 0, "dropout: gradients");
    float dq[60];
    memcpy(dq, g[0], sizeof dq);
    pn_model_set_seed(t.m, 42);
    pn_set_num_threads(1);
    CHECK(pn_model_gradients(t.m, d.xs, &d.ty, &l2, g) == 0 && l2 == loss &&
              memcmp(dq, g[0], sizeof dq) == 0,
          "dropout: the same seed at 1 thread gives the same loss and gradients");
    pn_set_num_threads(2);
    CHECK(pn_model_gradients(t.m, d.xs, &d.ty, &l2, g) == 0 && l2 != loss,
          "dropout: the next forward draws other masks");
    double worst = 0, scale = 1e-3;
    for (int i = 0; i < 60; i++) scale = fmax(scale, fabs(dq[i]));
    for (int i = 0; i < 60; i += 3) {
        float old = d.q[i], up, down;
        d.q[i] = old + 1e-2f;
        pn_model_set_seed(t.m, 42);
        pn_model_gradients(t.m, d.xs, &d.ty, &up, g);
        d.q[i] = old - 1e-2f;
        pn_model_set_seed(t.m, 42);
        pn_model_gradients(t.m, d.xs, &d.ty, &down, g);
        d.q[i] = old;
        worst = fmax(worst, fabs((up - down) / 2e-2 - dq[i]) / scale);
    }
    CHECK(worst < 2e-2, "dropout: dq vs central differences, worst %g", worst);
    /* inference: no dropout */
    int64_t M = a.B * a.Tq * a.H * a.vd;
    float *pred = malloc(sizeof(float) * M);
    double *out = malloc(sizeof(double) * M);
    attn_ref(&a, d.q, d.k, d.v, NULL, out, NULL, NULL, NULL, NULL);
    CHECK(pn_model_predict(t.m, d.xs, 2, (float *[]){pred}) == 0 &&
              rel_err(pred, out, M, 1e-3) < 1e-5,
          "dropout: inference ignores the rate");
    free(pred), free(out);
    for (int j = 0; j < 4; j++) free(g[j]);
    attn_data_free(&d);
    pn_model_destroy(t.m);
}

/* The training forward's dropout mask is the documented stream: the model's seed, the step's
 * stream (hash(seed, forwards)), the node's (hash(step, node)), xor the op's salt; draw n of
 * row i, key j is n = ((b H + h) Tq + i) Tk + j. Tk odd, so rows also start on odd draws. */
static void attn_check_dropout_stream(void) {
    attn_case a = {.B = 2, .Tq = 5, .Tk = 13, .H = 2, .kd = 3, .vd = 2, .rate = 0.3f};
    net t;
    CHECK(attn_make(&t, &a) == 0, "dropout stream: build");
    attn_data d;
    attn_data_make(&d, &a, 17u);
    int64_t M = a.B * a.Tq * a.H * a.vd;
    double *out = malloc(sizeof(double) * M);
    uint64_t key = hash64(hash64(99, 0), (uint64_t)t.node) ^ 0x6174746e5f64726full;
    attn_ref_drop(&a, d.q, d.k, d.v, NULL, out, NULL, NULL, NULL, NULL, key);
    double loss_ref = 0;
    for (int64_t i = 0; i < M; i++) loss_ref += (out[i] - d.y[i]) * (out[i] - d.y[i]);
    loss_ref /= (double)M;
    float *g[4], loss = 0;
    for (int j = 0; j < 4; j++) g[j] = malloc(sizeof(float) * 512);
    pn_model_set_seed(t.m, 99);
    CHECK(pn_model_gradients(t.m, d.xs, &d.ty, &loss, g) == 0, "dropout stream: gradients");
    CHECK(fabs(loss - loss_ref) <= 1e-5 * (1 + loss_ref), "dropout stream: loss %.7g vs %.7g",
          loss, loss_ref);
    for (int j = 0; j < 4; j++) free(g[j]);
    free(out);
    attn_data_free(&d);
    pn_model_destroy(t.m);
}

static void attn_check_errors(void) {
    pn_model *m;
    pn_model_create(&m);
    pn_model_alloc(m);
    int q, k, v, mk, mf, n;
    int64_t sq[2] = {4, 6}, sk[2] = {5, 6}, sv[2] = {5, 4}, sbad[2] = {3, 4}, smk[2] = {4, 4},
            sm[2] = {4, 5}, s1[1] = {6};
    pn_model_add_input(m, 2, sq, PN_F32, &q);
    pn_model_add_input(m, 2, sk, PN_F32, &k);
    pn_model_add_input(m, 2, sv, PN_F32, &v);
    pn_model_add_input(m, 2, smk, PN_I32, &mk);
    pn_model_add_input(m, 2, sm, PN_F32, &mf);
    int vb, r1;
    pn_model_add_input(m, 2, sbad, PN_F32, &vb);
    pn_model_add_input(m, 1, s1, PN_F32, &r1);
    int ok[PN_MAX_ATTRS] = {2, 3, 2, 0};
    float f0[PN_MAX_ATTRS] = {0};
    CHECK(pn_model_add_node(m, PN_OP_ATTENTION, 3, (int[]){q, k, v}, 0, NULL, ok, f0, &n) == 0,
          "attention: a good node");
    CHECK(pn_model_add_node(m, PN_OP_ATTENTION, 4, (int[]){q, k, v, mf}, 0, NULL, ok, f0, &n) == 0,
          "attention: a good masked node");
    CHECK(pn_model_add_node(m, PN_OP_ATTENTION, 4, (int[]){q, k, v, mk}, 0, NULL, ok, f0, &n) ==
              PN_ESHAPE, "attention: a mask of the wrong shape");
    CHECK(pn_model_add_node(m, PN_OP_ATTENTION, 3, (int[]){q, k, vb}, 0, NULL, ok, f0, &n) ==
              PN_ESHAPE, "attention: key and value steps differ");
    CHECK(pn_model_add_node(m, PN_OP_ATTENTION, 3, (int[]){q, k, r1}, 0, NULL, ok, f0, &n) ==
              PN_ESHAPE, "attention: a value of rank 2");
    int bad_heads[PN_MAX_ATTRS] = {4, 3, 2, 0}, zero_kd[PN_MAX_ATTRS] = {2, 0, 2, 0}, bad_causal[PN_MAX_ATTRS] = {2, 3, 2, 2};
    CHECK(pn_model_add_node(m, PN_OP_ATTENTION, 3, (int[]){q, k, v}, 0, NULL, bad_heads, f0, &n) ==
              PN_ESHAPE, "attention: heads x key_dim differs from the features");
    CHECK(pn_model_add_node(m, PN_OP_ATTENTION, 3, (int[]){q, k, v}, 0, NULL, zero_kd, f0, &n) ==
              PN_EVALUE, "attention: key_dim 0");
    CHECK(pn_model_add_node(m, PN_OP_ATTENTION, 3, (int[]){q, k, v}, 0, NULL, bad_causal, f0, &n) ==
              PN_EVALUE, "attention: causal 2");
    float f1[PN_MAX_ATTRS] = {1.0f};
    CHECK(pn_model_add_node(m, PN_OP_ATTENTION, 3, (int[]){q, k, v}, 0, NULL, ok, f1, &n) ==
              PN_EVALUE, "attention: dropout 1");
    CHECK(pn_model_add_node(m, PN_OP_ATTENTION, 2, (int[]){q, k}, 0, NULL, ok, f0, &n) ==
              PN_EVALUE, "attention: two inputs");
    pn_model_destroy(m);
}

/* ---- layer_norm --------------------------------------------------------------------------- */

static void ln_check(const char *what, int64_t B, int64_t T, int64_t C, int scale, int center,
                     int rms, float offset) {
    pn_model *m;
    int rc = pn_model_create(&m), vars[2], nv = 0, in, node;
    int64_t cs[1] = {C}, shape[2] = {T, C};
    if (scale) rc |= pn_model_add_variable(m, 1, cs, 1, &vars[nv++]);
    if (center) rc |= pn_model_add_variable(m, 1, cs, 1, &vars[nv++]);
    rc |= pn_model_alloc(m);
    unsigned s = 17u + (unsigned)C;
    for (int k = 0; k < nv; k++)
        for (int64_t c = 0; c < C; c++) param(m, vars[k])[c] = (k == 0 && scale ? 1.0f : 0.0f) +
                                                               0.5f * frand(&s);
    rc |= pn_model_add_input(m, 2, shape, PN_F32, &in);
    int iattr[PN_MAX_ATTRS] = {scale, center, rms};
    float fattr[PN_MAX_ATTRS] = {1e-3f};
    rc |= pn_model_add_node(m, PN_OP_LAYER_NORM, 1, &in, nv, vars, iattr, fattr, &node);
    rc |= pn_model_set_output(m, node);
    rc |= pn_model_compile(m, PN_LOSS_MSE, 0, 0, NULL);
    CHECK(rc == 0, "%s: build", what);
    int64_t R = B * T, M = R * C;
    float *x = malloc(sizeof(float) * M), *y = malloc(sizeof(float) * M),
          *dx = malloc(sizeof(float) * M);
    double *yr = malloc(sizeof(double) * M), *dy = malloc(sizeof(double) * M),
           *dxr = malloc(sizeof(double) * M), *dg = calloc((size_t)C, sizeof(double)),
           *db = calloc((size_t)C, sizeof(double));
    for (int64_t i = 0; i < M; i++) x[i] = offset + 2.0f * frand(&s), y[i] = frand(&s);
    const float *g = scale ? param(m, vars[0]) : NULL, *b = center ? param(m, vars[scale]) : NULL;
    double loss_ref = 0;
    double *mu = malloc(sizeof(double) * R), *rs = malloc(sizeof(double) * R);
    for (int64_t r = 0; r < R; r++) {
        double sm = 0, q = 0;
        for (int64_t c = 0; c < C; c++) sm += x[r * C + c];
        sm /= (double)C;
        for (int64_t c = 0; c < C; c++) q += (x[r * C + c] - sm) * (x[r * C + c] - sm);
        mu[r] = sm;
        rs[r] = 1.0 / sqrt(q / (double)C + 1e-3);
        for (int64_t c = 0; c < C; c++) {
            double xh = (x[r * C + c] - (rms ? 0.0 : sm)) * rs[r];
            yr[r * C + c] = (g ? g[c] : 1.0) * xh + (b ? b[c] : 0.0);
            loss_ref += (yr[r * C + c] - y[r * C + c]) * (yr[r * C + c] - y[r * C + c]);
        }
    }
    loss_ref /= (double)M;
    for (int64_t i = 0; i < M; i++) dy[i] = 2.0 * (yr[i] - y[i]) / (double)M;
    for (int64_t r = 0; r < R; r++) { /* dx by the chain rule through mean and variance */
        double sg = 0, sgx = 0, sgxr = 0;
        for (int64_t c = 0; c < C; c++) {
            double gi = dy[r * C + c] * (g ? g[c] : 1.0), xc = x[r * C + c] - mu[r];
            sg += gi;
            sgx += gi * xc * rs[r];
            sgxr += gi * x[r * C + c];
            dg[c] += dy[r * C + c] * (x[r * C + c] - (rms ? 0.0 : mu[r])) * rs[r];
            db[c] += dy[r * C + c];
        }
        for (int64_t c = 0; c < C; c++) {
            double gi = dy[r * C + c] * (g ? g[c] : 1.0), xc = x[r * C + c] - mu[r];
            dxr[r * C + c] = rms ? rs[r] * gi - rs[r] * rs[r] * rs[r] * xc * sgxr / (double)C
                                 : rs[r] * (gi - sg / (double)C - xc * rs[r] * sgx / (double)C);
        }
    }
    pn_tensor tx = {3, {B, T, C}, PN_F32, x}, ty = {3, {B, T, C}, PN_F32, y};
    float loss = 0;
    CHECK(pn_model_gradients(m, &tx, &ty, &loss, (float *[]){dx}) == 0, "%s: gradients", what);
    CHECK(fabs(loss - loss_ref) <= 2e-5 * (1 + loss_ref), "%s: loss %.7g vs %.7g", what, loss,
          loss_ref);
    double e = rel_err(dx, dxr, M, 1e-6);
    CHECK(e < 1e-3, "%s: dx rel err %g", what, e);
    if (scale) {
        e = rel_err(grad(m, vars[0]), dg, C, 1e-6);
        CHECK(e < 1e-3, "%s: dgamma rel err %g", what, e);
    }
    if (center) {
        e = rel_err(grad(m, vars[scale]), db, C, 1e-6);
        CHECK(e < 1e-3, "%s: dbeta rel err %g", what, e);
    }
    free(x), free(y), free(dx), free(yr), free(dy), free(dxr), free(dg), free(db), free(mu),
        free(rs);
    pn_model_destroy(m);
}

static void ln_check_errors(void) {
    pn_model *m;
    pn_model_create(&m);
    int vg, vb, in, n;
    int64_t c4[1] = {4}, c5[1] = {5}, shape[2] = {3, 4};
    pn_model_add_variable(m, 1, c4, 1, &vg);
    pn_model_add_variable(m, 1, c5, 1, &vb);
    pn_model_alloc(m);
    pn_model_add_input(m, 2, shape, PN_F32, &in);
    float eps[PN_MAX_ATTRS] = {1e-3f}, zero[PN_MAX_ATTRS] = {0};
    CHECK(pn_model_add_node(m, PN_OP_LAYER_NORM, 1, &in, 1, &vg, (int[PN_MAX_ATTRS]){1, 0, 0}, eps, &n) == 0,
          "layer_norm: gamma only");
    CHECK(pn_model_add_node(m, PN_OP_LAYER_NORM, 1, &in, 2, (int[]){vg, vb}, (int[PN_MAX_ATTRS]){1, 1, 0},
                            eps, &n) == PN_ESHAPE, "layer_norm: beta of the wrong size");
    CHECK(pn_model_add_node(m, PN_OP_LAYER_NORM, 1, &in, 1, &vg, (int[PN_MAX_ATTRS]){1, 0, 0}, zero, &n) ==
              PN_EVALUE, "layer_norm: epsilon 0");
    CHECK(pn_model_add_node(m, PN_OP_LAYER_NORM, 1, &in, 1, &vg, (int[PN_MAX_ATTRS]){0, 0, 0}, eps, &n) ==
              PN_EVALUE, "layer_norm: a variable too many");
    CHECK(pn_model_add_node(m, PN_OP_LAYER_NORM, 1, &in, 2, (int[]){vg, vg}, (int[PN_MAX_ATTRS]){1, 1, 1},
                            eps, &n) == PN_EVALUE, "layer_norm: rms_scaling with beta");
    pn_model_destroy(m);
}

/* ---- position_embedding ------------------------------------------------------------------- */

static void posemb_check(void) {
    pn_model *m;
    int rc = pn_model_create(&m), vt, in, node;
    int64_t ts[2] = {6, 3}, shape[2] = {4, 3}, B = 3, M = B * 12;
    rc |= pn_model_add_variable(m, 2, ts, 1, &vt);
    rc |= pn_model_alloc(m);
    unsigned s = 3;
    for (int i = 0; i < 18; i++) param(m, vt)[i] = frand(&s);
    rc |= pn_model_add_input(m, 2, shape, PN_F32, &in);
    rc |= pn_model_add_node(m, PN_OP_POSITION_EMBEDDING, 1, &in, 1, &vt, NULL, NULL, &node);
    rc |= pn_model_set_output(m, node);
    rc |= pn_model_compile(m, PN_LOSS_MSE, 0, 0, NULL);
    CHECK(rc == 0, "position_embedding: build");
    float x[36], y[36], dx[36], out[36];
    for (int i = 0; i < M; i++) x[i] = frand(&s), y[i] = frand(&s);
    pn_tensor tx = {3, {B, 4, 3}, PN_F32, x}, ty = {3, {B, 4, 3}, PN_F32, y};
    CHECK(pn_model_predict(m, &tx, 2, (float *[]){out}) == 0, "position_embedding: predict");
    int same = 1;
    for (int i = 0; i < M; i++) same &= out[i] == param(m, vt)[i % 12];
    CHECK(same, "position_embedding: rows 0..T-1 for every sample");
    float loss;
    CHECK(pn_model_gradients(m, &tx, &ty, &loss, (float *[]){dx}) == 0,
          "position_embedding: grads");
    double err = 0;
    for (int j = 0; j < 18; j++) {
        double want = 0;
        for (int b = 0; j < 12 && b < B; b++) want += 2.0 * (out[b * 12 + j] - y[b * 12 + j]) / M;
        err = fmax(err, fabs(grad(m, vt)[j] - want));
    }
    CHECK(err < 1e-6, "position_embedding: dtable err %g", err);
    int zero = 1;
    for (int i = 0; i < M; i++) zero &= dx[i] == 0.0f;
    CHECK(zero, "position_embedding: the input gets no gradient");
    int long_in, n;
    int64_t longer[2] = {7, 3}, other[2] = {4, 2};
    pn_model_add_input(m, 2, longer, PN_F32, &long_in);
    CHECK(pn_model_add_node(m, PN_OP_POSITION_EMBEDDING, 1, &long_in, 1, &vt, NULL, NULL, &n) ==
              PN_ESHAPE, "position_embedding: more steps than the table");
    pn_model_add_input(m, 2, other, PN_F32, &long_in);
    CHECK(pn_model_add_node(m, PN_OP_POSITION_EMBEDDING, 1, &long_in, 1, &vt, NULL, NULL, &n) ==
              PN_ESHAPE, "position_embedding: other features");
    pn_model_destroy(m);
}

int main(void) {
    pn_set_num_threads(2);
    attn_check("self", (attn_case){.B = 2, .Tq = 7, .Tk = 7, .H = 2, .kd = 3, .vd = 2});
    attn_check("causal", (attn_case){.B = 2, .Tq = 7, .Tk = 7, .H = 2, .kd = 3, .vd = 2,
                                     .causal = 1});
    attn_check("one step", (attn_case){.B = 1, .Tq = 1, .Tk = 1, .H = 1, .kd = 4, .vd = 4,
                                       .causal = 1});
    attn_check("int mask", (attn_case){.B = 2, .Tq = 6, .Tk = 6, .H = 2, .kd = 3, .vd = 3,
                                       .mask = 1});
    attn_check("int mask causal", (attn_case){.B = 2, .Tq = 6, .Tk = 6, .H = 2, .kd = 3, .vd = 3,
                                              .mask = 1, .causal = 1});
    attn_check("float mask cross", (attn_case){.B = 2, .Tq = 5, .Tk = 9, .H = 3, .kd = 2,
                                               .vd = 4, .mask = 2});
    attn_check("cross causal", (attn_case){.B = 2, .Tq = 9, .Tk = 5, .H = 1, .kd = 2, .vd = 2,
                                           .causal = 1});
    attn_check("blocks of rows", (attn_case){.B = 3, .Tq = 130, .Tk = 70, .H = 2, .kd = 4,
                                             .vd = 3, .causal = 1});
    attn_check("recompute", (attn_case){.B = 1, .Tq = 270, .Tk = 260, .H = 1, .kd = 2, .vd = 2,
                                        .causal = 1});
    attn_check("recompute masked", (attn_case){.B = 1, .Tq = 257, .Tk = 257, .H = 2, .kd = 2,
                                               .vd = 2, .mask = 1});
    attn_check("long keys, short blocks", (attn_case){.B = 1, .Tq = 40, .Tk = 2100, .H = 1,
                                                      .kd = 2, .vd = 2, .causal = 1});
    attn_check("many pairs", (attn_case){.B = 9, .Tq = 8, .Tk = 8, .H = 4, .kd = 2, .vd = 2,
                                         .causal = 1});
    attn_check_dropout();
    attn_check_dropout_stream();
    attn_check_errors();
    ln_check("layer_norm", 2, 5, 7, 1, 1, 0, 0.0f);
    ln_check("layer_norm no gamma", 2, 5, 7, 0, 1, 0, 0.5f);
    ln_check("layer_norm no beta", 2, 5, 7, 1, 0, 0, 0.0f);
    ln_check("layer_norm bare", 1, 3, 4, 0, 0, 0, 0.0f);
    ln_check("layer_norm rms", 2, 5, 7, 1, 0, 1, 1.0f);
    ln_check("layer_norm large", 16, 64, 128, 1, 1, 0, 20.0f);
    ln_check_errors();
    posemb_check();
    printf("%d passed, %d failed\n", passed, failed);
    return failed != 0;
}
