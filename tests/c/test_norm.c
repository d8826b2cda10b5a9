/*
 * test_norm.c: batch_norm and dropout through the public header alone.
 * Prints "N passed, M failed" and exits non-zero on failure.
 *
 * A training-mode forward is only reachable through pn_model_gradients (MSE loss), so the
 * training output is checked through the loss and the gradients it produces, against a
 * double-precision reference of the forward and the backward written here.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

static int64_t prod(int ndim, const int64_t *shape) {
    int64_t s = 1;
    for (int i = 0; i < ndim; i++) s *= shape[i];
    return s;
}

/* ---- batch_norm ----------------------------------------------------------------------------- */

typedef struct {
    pn_model *m;
    int scale, center, frozen;
    int vg, vb, vmm, vmv, node;
    int ndim;
    int64_t shape[4], C, size;
    float mom, eps;
} bn_net;

/* input (shape) -> batch_norm -> output, MSE; gamma, beta and the moving stats filled from seed */
static int bn_make(bn_net *t, int ndim, const int64_t *shape, int scale, int center, int frozen,
                   float mom, float eps, unsigned seed) {
    memset(t, 0, sizeof *t);
    t->scale = scale, t->center = center, t->frozen = frozen, t->mom = mom, t->eps = eps;
    t->ndim = ndim;
    memcpy(t->shape, shape, (size_t)ndim * sizeof *shape);
    t->C = shape[ndim - 1];
    t->size = prod(ndim, shape);
    t->vg = t->vb = -1;
    int64_t cs[1] = {t->C};
    int vars[4], nv = 0, in, rc = 0;
    rc |= pn_model_create(&t->m);
    if (scale) {
        rc |= pn_model_add_variable(t->m, 1, cs, 1, &t->vg);
        vars[nv++] = t->vg;
    }
    if (center) {
        rc |= pn_model_add_variable(t->m, 1, cs, 1, &t->vb);
        vars[nv++] = t->vb;
    }
    rc |= pn_model_add_variable(t->m, 1, cs, 0, &t->vmm);
    vars[nv++] = t->vmm;
    rc |= pn_model_add_variable(t->m, 1, cs, 0, &t->vmv);
    vars[nv++] = t->vmv;
    rc |= pn_model_alloc(t->m);
    for (int64_t c = 0; c < t->C; c++) {
        if (scale) param(t->m, t->vg)[c] = 1.0f + 0.5f * frand(&seed);
        if (center) param(t->m, t->vb)[c] = 0.3f * frand(&seed);
        param(t->m, t->vmm)[c] = 0.2f * frand(&seed);
        param(t->m, t->vmv)[c] = 0.6f + 0.5f * fabsf(frand(&seed));
    }
    rc |= pn_model_add_input(t->m, ndim, shape, PN_F32, &in);
    int iattr[PN_MAX_ATTRS] = {scale, center, frozen};
    float fattr[PN_MAX_ATTRS] = {mom, eps};
    rc |= pn_model_add_node(t->m, PN_OP_BATCH_NORM, 1, &in, nv, vars, iattr, fattr, &t->node);
    rc |= pn_model_set_output(t->m, t->node);
    rc |= pn_model_compile(t->m, PN_LOSS_MSE, 0, 0, NULL);
    return rc;
}

/* The reference forward over R rows of C: batch statistics (training) or the moving ones.
 * Writes y, the statistics used, and xhat. */
static void bn_ref_forward(const bn_net *t, const float *x, int64_t R, int batch_stats, double *y,
                           double *xhat, double *mean, double *var) {
    int64_t C = t->C;
    const float *g = t->scale ? param(t->m, t->vg) : NULL;
    const float *b = t->center ? param(t->m, t->vb) : NULL;
    for (int64_t c = 0; c < C; c++) {
        if (batch_stats) {
            double s = 0, q = 0;
            for (int64_t r = 0; r < R; r++) s += x[r * C + c];
            s /= (double)R;
            for (int64_t r = 0; r < R; r++) q += (x[r * C + c] - s) * (x[r * C + c] - s);
            mean[c] = s;
            var[c] = q / (double)R;
        } else {
            mean[c] = param(t->m, t->vmm)[c];
            var[c] = param(t->m, t->vmv)[c];
        }
        double inv = 1.0 / sqrt(var[c] + (double)t->eps);
        for (int64_t r = 0; r < R; r++) {
            double h = (x[r * C + c] - mean[c]) * inv;
            xhat[r * C + c] = h;
            y[r * C + c] = (g ? g[c] : 1.0) * h + (b ? b[c] : 0.0);
        }
    }
}

/* The reference backward: dx, dgamma, dbeta from dy */
static void bn_ref_backward(const bn_net *t, const double *dy, const double *xhat,
                            const double *var, int64_t R, int batch_stats, double *dx,
                            double *dgamma, double *dbeta) {
    int64_t C = t->C;
    const float *g = t->scale ? param(t->m, t->vg) : NULL;
    for (int64_t c = 0; c < C; c++) {
        double sdy = 0, sdyx = 0, inv = 1.0 / sqrt(var[c] + (double)t->eps);
        for (int64_t r = 0; r < R; r++) {
            sdy += dy[r * C + c];
            sdyx += dy[r * C + c] * xhat[r * C + c];
        }
        dgamma[c] = sdyx;
        dbeta[c] = sdy;
        double a = (g ? g[c] : 1.0) * inv;
        for (int64_t r = 0; r < R; r++)
            dx[r * C + c] = batch_stats ? a / (double)R * ((double)R * dy[r * C + c] - sdy -
                                                           xhat[r * C + c] * sdyx)
                                        : a * dy[r * C + c];
    }
}

/* x with a per-channel offset and spread, so the shift and the scale both matter */
static void bn_fill_x(float *x, int64_t R, int64_t C, float offset, unsigned seed) {
    for (int64_t r = 0; r < R; r++)
        for (int64_t c = 0; c < C; c++)
            x[r * C + c] = offset * (1.0f + 0.1f * (float)(c % 5)) +
                           (1.0f + 0.2f * (float)(c % 3)) * frand(&seed);
}

/* One training call: the loss, dx, dgamma, dbeta and the moving-stat update all match the
 * double reference. */
static void bn_check_training(const char *what, int ndim, const int64_t *shape, int64_t B,
                              int scale, int center, float offset) {
    bn_net t;
    int rc = bn_make(&t, ndim, shape, scale, center, 0, 0.9f, 1e-3f, 11u + (unsigned)B);
    CHECK(rc == 0, "%s: build", what);
    int64_t R = B * t.size / t.C, M = B * t.size, C = t.C;
    float *x = malloc(sizeof(float) * M), *y = malloc(sizeof(float) * M),
          *dx = malloc(sizeof(float) * M);
    double *yr = malloc(sizeof(double) * M), *xh = malloc(sizeof(double) * M),
           *dy = malloc(sizeof(double) * M), *dxr = malloc(sizeof(double) * M);
    double *mean = malloc(sizeof(double) * C), *var = malloc(sizeof(double) * C),
           *dg = malloc(sizeof(double) * C), *db = malloc(sizeof(double) * C),
           *mm = malloc(sizeof(double) * C), *mv = malloc(sizeof(double) * C);
    bn_fill_x(x, R, C, offset, 3u);
    unsigned s = 77;
    for (int64_t i = 0; i < M; i++) y[i] = frand(&s);
    for (int64_t c = 0; c < C; c++) mm[c] = param(t.m, t.vmm)[c], mv[c] = param(t.m, t.vmv)[c];
    bn_ref_forward(&t, x, R, 1, yr, xh, mean, var);
    double loss_ref = 0;
    for (int64_t i = 0; i < M; i++) {
        loss_ref += (yr[i] - y[i]) * (yr[i] - y[i]);
        dy[i] = 2.0 * (yr[i] - y[i]) / (double)M;
    }
    loss_ref /= (double)M;
    bn_ref_backward(&t, dy, xh, var, R, 1, dxr, dg, db);
    for (int64_t c = 0; c < C; c++) {
        mm[c] = mm[c] * 0.9f + mean[c] * (1.0 - 0.9f);
        mv[c] = mv[c] * 0.9f + var[c] * (1.0 - 0.9f);
    }
    int64_t dims_x[5] = {B};
    memcpy(dims_x + 1, shape, (size_t)ndim * sizeof *shape);
    pn_tensor tx = {ndim + 1, {0}, PN_F32, x}, ty = {ndim + 1, {0}, PN_F32, y};
    memcpy(tx.dims, dims_x, sizeof dims_x);
    memcpy(ty.dims, dims_x, sizeof dims_x);
    float loss = 0;
    rc = pn_model_gradients(t.m, &tx, &ty, &loss, (float *[]){dx});
    CHECK(rc == 0, "%s: gradients", what);
    CHECK(fabs(loss - loss_ref) <= 1e-5 * (1 + loss_ref), "%s: loss %.7g vs %.7g", what, loss,
          loss_ref);
    double e = rel_err(dx, dxr, M, 1e-6);
    CHECK(e < 2e-4, "%s: dx rel err %g", what, e);
    if (scale) {
        e = rel_err(grad(t.m, t.vg), dg, C, 1e-6);
        CHECK(e < 2e-4, "%s: dgamma rel err %g", what, e);
    }
    if (center) {
        e = rel_err(grad(t.m, t.vb), db, C, 1e-6);
        CHECK(e < 2e-4, "%s: dbeta rel err %g", what, e);
    }
    double em = 0, ev = 0;
    for (int64_t c = 0; c < C; c++) {
        em = fmax(em, fabs(param(t.m, t.vmm)[c] - mm[c]) / (1 + fabs(mm[c])));
        ev = fmax(ev, fabs(param(t.m, t.vmv)[c] - mv[c]) / (1 + fabs(mv[c])));
    }
    CHECK(em < 1e-5 && ev < 1e-5, "%s: moving stats err %g %g", what, em, ev);
    free(x), free(y), free(dx), free(yr), free(xh), free(dy), free(dxr);
    free(mean), free(var), free(dg), free(db), free(mm), free(mv);
    pn_model_destroy(t.m);
}

/* every scale/center combination, rank 1 and rank 3, batch 1 and more, odd sizes */
static void test_bn_training_matches_reference(void) {
    int64_t r1[1] = {5}, r3[3] = {3, 4, 6}, wide[1] = {1100}, r2[2] = {7, 3};
    char what[128];
    for (int sc = 0; sc <= 1; sc++)
        for (int ce = 0; ce <= 1; ce++) {
            int64_t batches[3] = {1, 2, 9};
            for (int k = 0; k < 3; k++) {
                int64_t B = batches[k];
                snprintf(what, sizeof what, "bn train rank1 B=%lld scale=%d center=%d",
                         (long long)B, sc, ce);
                bn_check_training(what, 1, r1, B, sc, ce, 0.5f);
                snprintf(what, sizeof what, "bn train rank3 B=%lld scale=%d center=%d",
                         (long long)B, sc, ce);
                bn_check_training(what, 3, r3, B, sc, ce, 0.5f);
            }
            snprintf(what, sizeof what, "bn train rank2 scale=%d center=%d", sc, ce);
            bn_check_training(what, 2, r2, 4, sc, ce, -2.0f);
        }
    /* wide C (several channel chunks), and a large mean against the spread */
    bn_check_training("bn train wide C", 1, wide, 40, 1, 1, 1.0f);
    bn_check_training("bn train mean 1e3", 3, r3, 9, 1, 1, 1000.0f);
    int64_t big[3] = {13, 13, 32};
    bn_check_training("bn train 16x13x13x32 (parallel)", 3, big, 16, 1, 1, 3.0f);
}

/* predict uses the moving statistics and leaves them alone */
static void test_bn_inference_matches_reference(void) {
    int64_t r1[1] = {6}, r3[3] = {2, 5, 3};
    for (int sc = 0; sc <= 1; sc++)
        for (int ce = 0; ce <= 1; ce++)
            for (int rank = 1; rank <= 3; rank += 2) {
                bn_net t;
                const int64_t *shape = rank == 1 ? r1 : r3;
                int rc = bn_make(&t, rank, shape, sc, ce, 0, 0.99f, 1e-3f, 5u);
                int64_t B = 7, M = B * t.size, R = M / t.C;
                float *x = malloc(sizeof(float) * M), *out = malloc(sizeof(float) * M);
                double *yr = malloc(sizeof(double) * M), *xh = malloc(sizeof(double) * M);
                double mean[8], var[8];
                float mm0[PN_MAX_ATTRS], mv0[8];
                memcpy(mm0, param(t.m, t.vmm), sizeof(float) * t.C);
                memcpy(mv0, param(t.m, t.vmv), sizeof(float) * t.C);
                bn_fill_x(x, R, t.C, 0.3f, 9u);
                pn_tensor tx = {rank + 1, {B, shape[0], rank == 3 ? shape[1] : 0,
                                           rank == 3 ? shape[2] : 0}, PN_F32, x};
                rc |= pn_model_predict(t.m, &tx, 3, (float *[]){out}); /* batches of 3, 3 and 1 */
                bn_ref_forward(&t, x, R, 0, yr, xh, mean, var);
                double e = rel_err(out, yr, M, 1.0);
                CHECK(rc == 0 && e < 1e-5, "bn inference rank%d scale=%d center=%d: err %g", rank,
                      sc, ce, e);
                CHECK(memcmp(mm0, param(t.m, t.vmm), sizeof(float) * t.C) == 0 &&
                          memcmp(mv0, param(t.m, t.vmv), sizeof(float) * t.C) == 0,
                      "bn inference changed the moving statistics");
                free(x), free(out), free(yr), free(xh);
                pn_model_destroy(t.m);
            }
}

/* loss in training mode (batch statistics), for finite differences */
static float bn_train_loss(pn_model *m, const pn_tensor *tx, const pn_tensor *ty) {
    float loss = 0;
    pn_model_gradients(m, tx, ty, &loss, NULL);
    return loss;
}

/* dx, dgamma, dbeta against central differences of the training-mode loss */
static void test_bn_gradients_finite_differences(void) {
    int64_t shape[3] = {2, 3, 4};
    for (int combo = 0; combo < 4; combo++) {
        int sc = combo & 1, ce = combo >> 1;
        bn_net t;
        int rc = bn_make(&t, 3, shape, sc, ce, 0, 0.99f, 1e-3f, 21u);
        int64_t B = 3, M = B * t.size, R = M / t.C, C = t.C;
        float *x = malloc(sizeof(float) * M), *y = malloc(sizeof(float) * M),
              *dx = malloc(sizeof(float) * M);
        bn_fill_x(x, R, C, 0.2f, 4u);
        unsigned s = 8;
        for (int64_t i = 0; i < M; i++) y[i] = frand(&s);
        pn_tensor tx = {4, {B, 2, 3, 4}, PN_F32, x}, ty = {4, {B, 2, 3, 4}, PN_F32, y};
        float loss, dg[4] = {0}, db[4] = {0};
        rc |= pn_model_gradients(t.m, &tx, &ty, &loss, (float *[]){dx});
        if (sc) memcpy(dg, grad(t.m, t.vg), sizeof dg);
        if (ce) memcpy(db, grad(t.m, t.vb), sizeof db);
        CHECK(rc == 0, "bn fd build");
        const float h = 1e-2f;
        double err = 0, mx = 1e-6;
        for (int64_t i = 0; i < M; i++) {
            float keep = x[i];
            x[i] = keep + h;
            double lp = bn_train_loss(t.m, &tx, &ty);
            x[i] = keep - h;
            double lm = bn_train_loss(t.m, &tx, &ty);
            x[i] = keep;
            double fd = (lp - lm) / (2.0 * h);
            err = fmax(err, fabs(fd - dx[i]));
            mx = fmax(mx, fabs(fd));
        }
        CHECK(err / mx < 1e-2, "bn fd dx scale=%d center=%d: err %g of %g", sc, ce, err, mx);
        for (int k = 0; k < 2; k++) {
            if ((k == 0 && !sc) || (k == 1 && !ce)) continue;
            float *p = param(t.m, k == 0 ? t.vg : t.vb), *an = k == 0 ? dg : db;
            err = 0, mx = 1e-6;
            for (int64_t c = 0; c < C; c++) {
                float keep = p[c];
                p[c] = keep + h;
                double lp = bn_train_loss(t.m, &tx, &ty);
                p[c] = keep - h;
                double lm = bn_train_loss(t.m, &tx, &ty);
                p[c] = keep;
                double fd = (lp - lm) / (2.0 * h);
                err = fmax(err, fabs(fd - an[c]));
                mx = fmax(mx, fabs(fd));
            }
            CHECK(err / mx < 1e-2, "bn fd %s scale=%d center=%d: err %g of %g",
                  k == 0 ? "dgamma" : "dbeta", sc, ce, err, mx);
        }
        free(x), free(y), free(dx);
        pn_model_destroy(t.m);
    }
}

/* momentum 0: the moving statistics become the batch's; momentum 1: they stay */
static void test_bn_moving_stats_update(void) {
    int64_t shape[2] = {4, 3};
    for (int k = 0; k < 2; k++) {
        float mom = k == 0 ? 0.0f : 1.0f;
        bn_net t;
        int rc = bn_make(&t, 2, shape, 1, 1, 0, mom, 1e-3f, 2u);
        int64_t B = 5, M = B * t.size, R = M / t.C;
        float x[60], y[60] = {0}, dx[60], loss, mm0[3], mv0[3];
        memcpy(mm0, param(t.m, t.vmm), sizeof mm0);
        memcpy(mv0, param(t.m, t.vmv), sizeof mv0);
        bn_fill_x(x, R, t.C, 1.5f, 6u);
        double yr[60], xh[60], mean[3], var[3];
        bn_ref_forward(&t, x, R, 1, yr, xh, mean, var);
        pn_tensor tx = {3, {B, 4, 3}, PN_F32, x}, ty = {3, {B, 4, 3}, PN_F32, y};
        rc |= pn_model_gradients(t.m, &tx, &ty, &loss, (float *[]){dx});
        double err = 0;
        for (int c = 0; c < 3; c++) {
            double wm = mom == 0.0f ? mean[c] : mm0[c], wv = mom == 0.0f ? var[c] : mv0[c];
            err = fmax(err, fabs(param(t.m, t.vmm)[c] - wm) + fabs(param(t.m, t.vmv)[c] - wv));
        }
        CHECK(rc == 0 && err < 1e-6, "bn momentum %g: moving stats off by %g", mom, err);
        /* with momentum 0, predict now reproduces the training forward */
        if (mom == 0.0f) {
            float out[60];
            rc = pn_model_predict(t.m, &tx, B, (float *[]){out});
            double e = rel_err(out, yr, M, 1.0);
            CHECK(rc == 0 && e < 1e-5, "bn predict after momentum-0 step: err %g", e);
        }
        pn_model_destroy(t.m);
    }
}

/* frozen (iattr[2] = 1): training uses and keeps the moving statistics, dx = gamma inv_std dy */
static void test_bn_frozen(void) {
    int64_t shape[3] = {3, 2, 4};
    bn_net t;
    int rc = bn_make(&t, 3, shape, 1, 1, 1, 0.9f, 1e-3f, 13u);
    int64_t B = 4, M = B * t.size, R = M / t.C, C = t.C;
    float x[96], y[96], dx[96], loss, mm0[4], mv0[4];
    double yr[96], xh[96], dy[96], dxr[96], mean[4], var[4], dg[4], db[4];
    memcpy(mm0, param(t.m, t.vmm), sizeof mm0);
    memcpy(mv0, param(t.m, t.vmv), sizeof mv0);
    bn_fill_x(x, R, C, 0.7f, 2u);
    unsigned s = 3;
    for (int i = 0; i < M; i++) y[i] = frand(&s);
    bn_ref_forward(&t, x, R, 0, yr, xh, mean, var);
    double loss_ref = 0;
    for (int i = 0; i < M; i++) {
        loss_ref += (yr[i] - y[i]) * (yr[i] - y[i]) / (double)M;
        dy[i] = 2.0 * (yr[i] - y[i]) / (double)M;
    }
    bn_ref_backward(&t, dy, xh, var, R, 0, dxr, dg, db);
    pn_tensor tx = {4, {B, 3, 2, 4}, PN_F32, x}, ty = {4, {B, 3, 2, 4}, PN_F32, y};
    rc |= pn_model_gradients(t.m, &tx, &ty, &loss, (float *[]){dx});
    CHECK(rc == 0 && fabs(loss - loss_ref) < 1e-5 * (1 + loss_ref), "frozen loss %g vs %g", loss,
          loss_ref);
    CHECK(rel_err(dx, dxr, M, 1e-6) < 1e-4, "frozen dx err %g", rel_err(dx, dxr, M, 1e-6));
    CHECK(rel_err(grad(t.m, t.vg), dg, C, 1e-6) < 1e-4 &&
              rel_err(grad(t.m, t.vb), db, C, 1e-6) < 1e-4,
          "frozen dgamma/dbeta");
    CHECK(memcmp(mm0, param(t.m, t.vmm), sizeof mm0) == 0 &&
              memcmp(mv0, param(t.m, t.vmv), sizeof mv0) == 0,
          "frozen batch_norm changed its moving statistics");
    pn_model_destroy(t.m);
}

/* batch 1, rank 1: one value per channel, so the output is beta and the gradients vanish */
static void test_bn_batch_one_rank_one(void) {
    int64_t shape[1] = {4};
    bn_net t;
    int rc = bn_make(&t, 1, shape, 1, 1, 0, 0.99f, 1e-3f, 1u);
    float x[4] = {1, -2, 3, 0.5f}, y[4] = {0}, dx[4], loss;
    pn_tensor tx = {2, {1, 4}, PN_F32, x}, ty = {2, {1, 4}, PN_F32, y};
    rc |= pn_model_gradients(t.m, &tx, &ty, &loss, (float *[]){dx});
    double want = 0;
    for (int c = 0; c < 4; c++) want += param(t.m, t.vb)[c] * param(t.m, t.vb)[c] / 4.0;
    int zero = 1;
    for (int c = 0; c < 4; c++) zero &= dx[c] == 0.0f && grad(t.m, t.vg)[c] == 0.0f;
    CHECK(rc == 0 && fabs(loss - want) < 1e-6 && zero, "bn batch 1 rank 1: loss %g vs %g, zero %d",
          loss, want, zero);
    pn_model_destroy(t.m);
}

/* the same bits for any thread count */
static void test_bn_deterministic_across_threads(void) {
    int64_t shape[3] = {13, 11, 48};
    float *res[3];
    int64_t B = 12, M = B * 13 * 11 * 48;
    float *x = malloc(sizeof(float) * M), *y = malloc(sizeof(float) * M);
    bn_fill_x(x, M / 48, 48, 2.0f, 17u);
    unsigned s = 4;
    for (int64_t i = 0; i < M; i++) y[i] = frand(&s);
    int threads[3] = {1, 2, 3}, rc = 0;
    for (int k = 0; k < 3; k++) {
        pn_set_num_threads(threads[k]);
        bn_net t;
        rc |= bn_make(&t, 3, shape, 1, 1, 0, 0.9f, 1e-3f, 3u);
        res[k] = malloc(sizeof(float) * (M + 4 * 48));
        float loss;
        pn_tensor tx = {4, {B, 13, 11, 48}, PN_F32, x}, ty = {4, {B, 13, 11, 48}, PN_F32, y};
        rc |= pn_model_gradients(t.m, &tx, &ty, &loss, (float *[]){res[k]});
        memcpy(res[k] + M, grad(t.m, t.vg), sizeof(float) * 48);
        memcpy(res[k] + M + 48, grad(t.m, t.vb), sizeof(float) * 48);
        memcpy(res[k] + M + 96, param(t.m, t.vmm), sizeof(float) * 48);
        memcpy(res[k] + M + 144, param(t.m, t.vmv), sizeof(float) * 48);
        pn_model_destroy(t.m);
    }
    pn_set_num_threads(2);
    CHECK(rc == 0 && memcmp(res[0], res[1], sizeof(float) * (M + 192)) == 0 &&
              memcmp(res[0], res[2], sizeof(float) * (M + 192)) == 0,
          "batch_norm results differ between 1, 2 and 3 threads");
    for (int k = 0; k < 3; k++) free(res[k]);
    free(x), free(y);
}

static void test_bn_bad_attributes(void) {
    pn_model *m;
    pn_model_create(&m);
    int64_t c4[1] = {4}, c5[1] = {5}, c22[2] = {2, 2}, xs[2] = {3, 4};
    int v4[4], v5, v22, in, node, iin;
    for (int k = 0; k < 4; k++) pn_model_add_variable(m, 1, c4, k < 2, &v4[k]);
    pn_model_add_variable(m, 1, c5, 1, &v5);
    pn_model_add_variable(m, 2, c22, 1, &v22);
    pn_model_alloc(m);
    pn_model_add_input(m, 2, xs, PN_F32, &in);
    int ok[PN_MAX_ATTRS] = {1, 1}, sc2[PN_MAX_ATTRS] = {2, 1}, ce_neg[PN_MAX_ATTRS] = {1, -1}, fr2[PN_MAX_ATTRS] = {1, 1, 2}, none[PN_MAX_ATTRS] = {0};
    float f[PN_MAX_ATTRS] = {0.99f, 1e-3f};
    CHECK(pn_model_add_node(m, PN_OP_BATCH_NORM, 1, &in, 4, v4, ok, f, &node) == 0, "good bn");
    CHECK(pn_model_add_node(m, PN_OP_BATCH_NORM, 1, &in, 2, v4 + 2, none, f, &node) == 0,
          "bn without gamma and beta");
    CHECK(pn_model_add_node(m, PN_OP_BATCH_NORM, 1, &in, 4, v4, sc2, f, &node) == PN_EVALUE,
          "scale 2");
    CHECK(strstr(pn_last_error(), "batch_norm") != NULL, "message names the op: %s",
          pn_last_error());
    CHECK(pn_model_add_node(m, PN_OP_BATCH_NORM, 1, &in, 4, v4, ce_neg, f, &node) == PN_EVALUE,
          "center -1");
    CHECK(pn_model_add_node(m, PN_OP_BATCH_NORM, 1, &in, 4, v4, fr2, f, &node) == PN_EVALUE,
          "frozen 2");
    CHECK(pn_model_add_node(m, PN_OP_BATCH_NORM, 1, &in, 3, v4, ok, f, &node) == PN_EVALUE,
          "3 vars for scale+center");
    CHECK(pn_model_add_node(m, PN_OP_BATCH_NORM, 1, &in, 4, v4, none, f, &node) == PN_EVALUE,
          "4 vars without scale/center");
    int bad5[4] = {v4[0], v4[1], v5, v4[3]}, bad22[4] = {v22, v4[1], v4[2], v4[3]};
    CHECK(pn_model_add_node(m, PN_OP_BATCH_NORM, 1, &in, 4, bad5, ok, f, &node) == PN_ESHAPE,
          "moving_mean of 5 for 4 channels");
    CHECK(strstr(pn_last_error(), "moving_mean") != NULL, "message: %s", pn_last_error());
    CHECK(pn_model_add_node(m, PN_OP_BATCH_NORM, 1, &in, 4, bad22, ok, f, &node) == PN_ESHAPE,
          "gamma of rank 2");
    float fbad[][2] = {{-0.1f, 1e-3f}, {1.5f, 1e-3f}, {NAN, 1e-3f}, {0.9f, 0.0f},
                       {0.9f, -1e-3f}, {0.9f, NAN}, {0.9f, INFINITY}};
    for (int k = 0; k < 7; k++) {
        float fa[PN_MAX_ATTRS] = {fbad[k][0], fbad[k][1]};
        CHECK(pn_model_add_node(m, PN_OP_BATCH_NORM, 1, &in, 4, v4, ok, fa, &node) == PN_EVALUE,
              "momentum %g epsilon %g", fbad[k][0], fbad[k][1]);
    }
    float edge[PN_MAX_ATTRS] = {1.0f, 1e-3f};
    CHECK(pn_model_add_node(m, PN_OP_BATCH_NORM, 1, &in, 4, v4, ok, edge, &node) == 0,
          "momentum 1 is allowed");
    CHECK(pn_model_add_node(m, PN_OP_BATCH_NORM, 0, &in, 4, v4, ok, f, &node) == PN_EVALUE,
          "no input");
    pn_model_destroy(m);
    /* an int32 input */
    pn_model_create(&m);
    for (int k = 0; k < 2; k++) pn_model_add_variable(m, 1, c4, 0, &v4[k]);
    pn_model_alloc(m);
    pn_model_add_input(m, 1, c4, PN_I32, &iin);
    CHECK(pn_model_add_node(m, PN_OP_BATCH_NORM, 1, &iin, 2, v4, none, f, &node) == PN_ETYPE,
          "int32 input");
    pn_model_destroy(m);
}

/* ---- dropout -------------------------------------------------------------------------------- */

/* input (shape) -> dropout -> output, MSE */
static pn_model *dropout_make(int ndim, const int64_t *shape, float rate, int spatial) {
    pn_model *m;
    int in, node, rc = pn_model_create(&m);
    rc |= pn_model_alloc(m);
    rc |= pn_model_add_input(m, ndim, shape, PN_F32, &in);
    int iattr[PN_MAX_ATTRS] = {spatial};
    float fattr[PN_MAX_ATTRS] = {rate};
    rc |= pn_model_add_node(m, PN_OP_DROPOUT, 1, &in, 0, NULL, iattr, fattr, &node);
    rc |= pn_model_set_output(m, node);
    rc |= pn_model_compile(m, PN_LOSS_MSE, 0, 0, NULL);
    if (rc) {
        pn_model_destroy(m);
        return NULL;
    }
    return m;
}

/* With targets 0: out_i = x_i keep_i s, loss = sum out^2 / M and dx_i = 2 out_i keep_i s / M =
 * 2 x_i keep_i s^2 / M, so dx reveals the mask (x is never 0). Returns the kept fraction and
 * fills keep[]; checks the values and the loss. */
static double dropout_step(pn_model *m, const pn_tensor *tx, const float *x, int64_t M, float rate,
                           unsigned char *keep, const char *what) {
    float *y = calloc((size_t)M, sizeof(float)), *dx = malloc(sizeof(float) * M), loss;
    pn_tensor ty = *tx;
    ty.data = y;
    int rc = pn_model_gradients(m, tx, &ty, &loss, (float *[]){dx});
    double s = 1.0 / (1.0 - rate), loss_ref = 0, err = 0;
    int64_t kept = 0;
    for (int64_t i = 0; i < M; i++) {
        keep[i] = dx[i] != 0.0f;
        kept += keep[i];
        double want = keep[i] ? 2.0 * x[i] * s * s / (double)M : 0.0;
        err = fmax(err, fabs(dx[i] - want) / (2.0 * s * s / (double)M));
        if (keep[i]) loss_ref += x[i] * s * x[i] * s / (double)M;
    }
    CHECK(rc == 0 && err < 1e-5, "%s: dx = mask s dy off by %g (relative)", what, err);
    CHECK(fabs(loss - loss_ref) < 1e-5 * (1 + loss_ref), "%s: loss %g vs kept x s: %g", what, loss,
          loss_ref);
    free(y), free(dx);
    return (double)kept / (double)M;
}

static void fill_nonzero(float *x, int64_t M, unsigned seed) {
    for (int64_t i = 0; i < M; i++) {
        float v = frand(&seed);
        x[i] = v >= 0 ? 0.25f + v : v - 0.25f;
    }
}

/* ordinary dropout over 100k elements: kept fraction ~ 1 - rate, kept values x / (1 - rate) */
static void test_dropout_fraction_and_scale(void) {
    int64_t shape[1] = {1000}, B = 100, M = B * 1000;
    float rates[3] = {0.3f, 0.5f, 0.9f};
    float *x = malloc(sizeof(float) * M);
    unsigned char *keep = malloc((size_t)M);
    fill_nonzero(x, M, 5u);
    pn_tensor tx = {2, {B, 1000}, PN_F32, x};
    for (int k = 0; k < 3; k++) {
        pn_model *m = dropout_make(1, shape, rates[k], 0);
        pn_model_set_seed(m, 1234);
        char what[64];
        snprintf(what, sizeof what, "dropout rate %g", rates[k]);
        double frac = dropout_step(m, &tx, x, M, rates[k], keep, what);
        CHECK(fabs(frac - (1.0 - rates[k])) < 0.01, "%s: kept %g", what, frac);
        pn_model_destroy(m);
    }
    free(x), free(keep);
}

/* predict (and rate 0 in training) is the identity */
static void test_dropout_identity(void) {
    int64_t shape[3] = {4, 5, 3}, B = 6, M = B * 60;
    float x[360], out[360], dx[360], y[360] = {0}, loss;
    fill_nonzero(x, M, 9u);
    pn_tensor tx = {4, {B, 4, 5, 3}, PN_F32, x}, ty = {4, {B, 4, 5, 3}, PN_F32, y};
    for (int sp = 0; sp <= 1; sp++) {
        pn_model *m = dropout_make(3, shape, 0.5f, sp);
        int rc = pn_model_predict(m, &tx, 4, (float *[]){out});
        CHECK(rc == 0 && memcmp(out, x, sizeof x) == 0, "dropout spatial=%d: predict is x", sp);
        pn_model_destroy(m);
        m = dropout_make(3, shape, 0.0f, sp);
        rc = pn_model_gradients(m, &tx, &ty, &loss, (float *[]){dx});
        double err = 0, lref = 0;
        for (int i = 0; i < M; i++) {
            err = fmax(err, fabs(dx[i] - 2.0 * x[i] / (double)M));
            lref += (double)x[i] * x[i] / (double)M;
        }
        CHECK(rc == 0 && err < 1e-6 * 2.0 / (double)M && fabs(loss - lref) < 1e-6 * lref,
              "dropout rate 0 spatial=%d: training is the identity (dx err %g)", sp, err);
        pn_model_destroy(m);
    }
}

/* the same seed gives the same mask (at any thread count); the next step a different one */
static void test_dropout_seeded(void) {
    int64_t shape[2] = {50, 40}, B = 40, M = B * 2000;
    float *x = malloc(sizeof(float) * M);
    unsigned char *k1 = malloc((size_t)M), *k2 = malloc((size_t)M), *k3 = malloc((size_t)M),
                  *k4 = malloc((size_t)M);
    fill_nonzero(x, M, 2u);
    pn_tensor tx = {3, {B, 50, 40}, PN_F32, x};
    pn_model *m = dropout_make(2, shape, 0.4f, 0);
    pn_model_set_seed(m, 99);
    dropout_step(m, &tx, x, M, 0.4f, k1, "seeded 1");
    dropout_step(m, &tx, x, M, 0.4f, k3, "seeded next step");
    pn_set_num_threads(1);
    pn_model_set_seed(m, 99);
    dropout_step(m, &tx, x, M, 0.4f, k2, "seeded 1 again, 1 thread");
    pn_set_num_threads(2);
    pn_model_set_seed(m, 100);
    dropout_step(m, &tx, x, M, 0.4f, k4, "other seed");
    CHECK(memcmp(k1, k2, (size_t)M) == 0, "the same seed gives the same mask");
    CHECK(memcmp(k1, k3, (size_t)M) != 0, "the next training call draws a new mask");
    CHECK(memcmp(k1, k4, (size_t)M) != 0, "another seed draws another mask");
    pn_model_destroy(m);
    free(x), free(k1), free(k2), free(k3), free(k4);
}

/* spatial: one draw per (sample, channel), the same over every middle position */
static void test_dropout_spatial(void) {
    int64_t s3[3] = {3, 4, 32}, s2[2] = {6, 32};
    for (int rank = 2; rank <= 3; rank++) {
        const int64_t *shape = rank == 3 ? s3 : s2;
        int64_t B = 128, C = 32, P = rank == 3 ? 12 : 6, M = B * P * C;
        float *x = malloc(sizeof(float) * M);
        unsigned char *keep = malloc((size_t)M);
        fill_nonzero(x, M, 4u);
        pn_tensor tx = {rank + 1, {B, shape[0], shape[1], rank == 3 ? shape[2] : 0}, PN_F32, x};
        pn_model *m = dropout_make(rank, shape, 0.5f, 1);
        pn_model_set_seed(m, 5);
        double frac = dropout_step(m, &tx, x, M, 0.5f, keep, "spatial");
        int same = 1;
        for (int64_t b = 0; b < B; b++)
            for (int64_t p = 1; p < P; p++)
                for (int64_t c = 0; c < C; c++)
                    same &= keep[(b * P + p) * C + c] == keep[b * P * C + c];
        CHECK(same, "spatial rank %d: mask constant across the middle axes", rank);
        CHECK(fabs(frac - 0.5) < 0.04, "spatial rank %d: kept %g of 4096 channels", rank, frac);
        pn_model_destroy(m);
        free(x), free(keep);
    }
}

static void test_dropout_bad_attributes(void) {
    pn_model *m;
    int in, in1, node, v;
    int64_t s2[2] = {3, 4}, s1[1] = {4};
    pn_model_create(&m);
    pn_model_add_variable(m, 1, s1, 1, &v);
    pn_model_alloc(m);
    pn_model_add_input(m, 2, s2, PN_F32, &in);
    pn_model_add_node(m, PN_OP_RELU, 1, &in, 0, NULL, NULL, NULL, &in1);
    float rates[5] = {-0.1f, 1.0f, 1.5f, NAN, INFINITY};
    for (int k = 0; k < 5; k++) {
        float f[PN_MAX_ATTRS] = {rates[k]};
        CHECK(pn_model_add_node(m, PN_OP_DROPOUT, 1, &in, 0, NULL, NULL, f, &node) == PN_EVALUE,
              "dropout rate %g", rates[k]);
    }
    CHECK(strstr(pn_last_error(), "dropout") && strstr(pn_last_error(), "rate"), "message: %s",
          pn_last_error());
    float f[PN_MAX_ATTRS] = {0.5f};
    int two[PN_MAX_ATTRS] = {2}, neg[PN_MAX_ATTRS] = {-1}, sp[PN_MAX_ATTRS] = {1};
    CHECK(pn_model_add_node(m, PN_OP_DROPOUT, 1, &in, 0, NULL, two, f, &node) == PN_EVALUE,
          "iattr 2");
    CHECK(pn_model_add_node(m, PN_OP_DROPOUT, 1, &in, 0, NULL, neg, f, &node) == PN_EVALUE,
          "iattr -1");
    CHECK(pn_model_add_node(m, PN_OP_DROPOUT, 1, &in, 1, &v, NULL, f, &node) == PN_EVALUE,
          "a variable");
    CHECK(pn_model_add_node(m, PN_OP_DROPOUT, 2, (int[]){in, in1}, 0, NULL, NULL, f, &node) ==
              PN_EVALUE,
          "two inputs");
    CHECK(pn_model_add_node(m, PN_OP_DROPOUT, 1, &in, 0, NULL, sp, f, &node) == 0,
          "spatial on rank 2");
    CHECK(pn_model_add_node(m, PN_OP_DROPOUT, 1, &in, 0, NULL, NULL, (float[PN_MAX_ATTRS]){0}, &node) == 0,
          "rate 0");
    pn_model_destroy(m);
    pn_model_create(&m);
    pn_model_alloc(m);
    pn_model_add_input(m, 1, s1, PN_F32, &in);
    CHECK(pn_model_add_node(m, PN_OP_DROPOUT, 1, &in, 0, NULL, sp, f, &node) == PN_ESHAPE,
          "spatial on rank 1");
    pn_model_destroy(m);
}

/* batch_norm -> dropout in one model: both run in a training step and the step is repeatable */
static void test_bn_then_dropout_trains(void) {
    pn_model *m;
    pn_model_create(&m);
    int64_t cs[1] = {8}, ks[2] = {8, 8}, xs[1] = {8};
    int vg, vb, vmm, vmv, vk, in, n;
    pn_model_add_variable(m, 2, ks, 1, &vk);
    pn_model_add_variable(m, 1, cs, 1, &vg);
    pn_model_add_variable(m, 1, cs, 1, &vb);
    pn_model_add_variable(m, 1, cs, 0, &vmm);
    pn_model_add_variable(m, 1, cs, 0, &vmv);
    pn_model_alloc(m);
    unsigned s = 3;
    for (int i = 0; i < 64; i++) param(m, vk)[i] = frand(&s);
    for (int i = 0; i < 8; i++) param(m, vg)[i] = 1, param(m, vmv)[i] = 1;
    pn_model_add_input(m, 1, xs, PN_F32, &in);
    pn_model_add_node(m, PN_OP_DENSE, 1, &in, 1, &vk, NULL, NULL, &n);
    pn_model_add_node(m, PN_OP_BATCH_NORM, 1, &n, 4, (int[]){vg, vb, vmm, vmv},
                      (int[PN_MAX_ATTRS]){1, 1}, (float[PN_MAX_ATTRS]){0.99f, 1e-3f}, &n);
    pn_model_add_node(m, PN_OP_DROPOUT, 1, &n, 0, NULL, NULL, (float[PN_MAX_ATTRS]){0.25f}, &n);
    pn_model_set_output(m, n);
    pn_model_compile(m, PN_LOSS_MSE, 0, 0, NULL);
    pn_optim_config cfg = {.kind = PN_SGD, .learning_rate = 0.05f};
    pn_model_set_optimizer(m, &cfg);
    float x[16 * 8], y[16 * 8], res[1], first = 0, last = 0;
    for (int i = 0; i < 128; i++) x[i] = frand(&s), y[i] = 0.5f * frand(&s);
    pn_tensor tx = {2, {16, 8}, PN_F32, x}, ty = {2, {16, 8}, PN_F32, y};
    int rc = 0;
    pn_model_set_seed(m, 1);
    for (int it = 0; it < 200; it++) {
        rc |= pn_model_train_step(m, &tx, &ty, NULL, NULL, 0, res);
        if (it == 0) first = res[0];
        last = res[0];
    }
    CHECK(rc == 0 && isfinite(last) && last < first, "bn+dropout training: loss %g -> %g", first,
          last);
    pn_model_destroy(m);
}

int main(void) {
    pn_set_num_threads(2);
    test_bn_training_matches_reference();
    test_bn_inference_matches_reference();
    test_bn_gradients_finite_differences();
    test_bn_moving_stats_update();
    test_bn_frozen();
    test_bn_batch_one_rank_one();
    test_bn_deterministic_across_threads();
    test_bn_bad_attributes();
    test_dropout_fraction_and_scale();
    test_dropout_identity();
    test_dropout_seeded();
    test_dropout_spatial();
    test_dropout_bad_attributes();
    test_bn_then_dropout_trains();
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
