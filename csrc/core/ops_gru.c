/*
 * ops_gru.c: Keras 3's GRU cell, with reset_after (the default: the reset gate multiplies the
 * recurrent product) or without (it multiplies h before U's candidate columns); the sequence
 * around it (attributes, scratch, masks, the time loop, outputs, the other gradients) is
 * ops_rnn.c's.
 *
 * Gates [z r hh] in Keras's column order; hp = h_{t-1} rm (rm: the recurrent dropout mask).
 *   reset_after: [az ar] = x W[:, :2U] + b_in,  ah = x W[:, 2U:] + b_in
 *                s = hp U + b_rec;   z = sig(az + s_z), r = sig(ar + s_r),  hh = act(ah + r s_h)
 *   otherwise:   s = hp U[:, :2U],  z, r as above (one bias, on x W)
 *                hh = act(ah + (r hp) U[:, 2U:])
 *   h = z h_{t-1} + (1 - z) hh
 * Backward, with dh = dL/dh_t:
 *   dhh = dh (1 - z) act'(hh),  dz = dh (h_{t-1} - hh) sig'(z)
 *   reset_after: dr = dhh s_h sig'(r);  dgh_t = [dz dr dhh r];  dgx_t = [dz dr dhh]
 *                dh_{t-1} = dh z + (dgh_t U^T) rm;   dU = hp^T dgh over all steps
 *   otherwise:   da = dhh U_h^T (a = r hp);  dr = da hp sig'(r);  dgx_t = [dz dr dhh]
 *                dh_{t-1} = dh z + (da r + dgx_t[:, :2U] U[:, :2U]^T) rm
 *                dU = [hp^T dgx[:, :2U], a^T dgx[:, 2U:]] over all steps
 * Scratch (ops_rnn.c's layout): aux[t] keeps s_h (reset_after) or a = r hp, for backward; step
 * holds a step's s; dgh the gradient of s (reset_after), which differs from gx's there.
 */
#include "ops_rnn.h"

static void gru_step(const pn_rnn_dims *d, const pn_rnn_scratch *s, const pn_ctx *c, int64_t t,
                     const float *hprev, const float *hp) {
    const int64_t B = d->B, U = d->U, GU = d->GU;
    const int act = d->act, ract = d->ract;
    const float *Uw = c->var[1];
    float *g = s->gx + t * B * GU;          /* (B, GU) */
    float *h = s->hs + (t + 1) * B * U;
    float *st = s->step, *aux = s->aux + t * B * U;
    if (d->reset_after) {
        /* s = hp U + b_rec (B, 3U); the bias (2, GU) is [b_in; b_rec] */
        const float *b_rec = d->bias ? c->var[2] + GU : NULL;
        if (b_rec)
            for (int64_t b = 0; b < B; b++) memcpy(st + b * GU, b_rec, (size_t)GU * sizeof(float));
        pn_gemm(0, 0, B, GU, U, 1.0f, hp, U, Uw, GU, b_rec ? 1.0f : 0.0f, st, GU);
#pragma omp parallel for PN_RNN_ROWS_PAR(B, 3 * U)
        for (int64_t b = 0; b < B; b++) {
            float *restrict gz = g + b * GU, *restrict gr = gz + U, *restrict gh = gz + 2 * U;
            const float *restrict sz = st + b * GU, *restrict sr = sz + U,
                                  *restrict sh = sz + 2 * U, *restrict hpv = hprev + b * U;
            float *restrict ab = aux + b * U, *restrict hb = h + b * U;
            for (int64_t j = 0; j < U; j++) {
                float z = pn_rnn_act(gz[j] + sz[j], ract), r = pn_rnn_act(gr[j] + sr[j], ract);
                float hh = pn_rnn_act(gh[j] + r * sh[j], act);
                gz[j] = z, gr[j] = r, gh[j] = hh, ab[j] = sh[j];
                hb[j] = z * hpv[j] + (1.0f - z) * hh;
            }
        }
    } else {
        /* s[:, :2U] = hp U[:, :2U]; then (r hp) U[:, 2U:] */
        pn_gemm(0, 0, B, 2 * U, U, 1.0f, hp, U, Uw, GU, 0.0f, st, GU);
#pragma omp parallel for PN_RNN_ROWS_PAR(B, 2 * U)
        for (int64_t b = 0; b < B; b++) {
            float *restrict gz = g + b * GU, *restrict gr = gz + U;
            const float *restrict sz = st + b * GU, *restrict sr = sz + U,
                                  *restrict hpb = hp + b * U;
            float *restrict ab = aux + b * U;
            for (int64_t j = 0; j < U; j++) {
                float z = pn_rnn_act(gz[j] + sz[j], ract), r = pn_rnn_act(gr[j] + sr[j], ract);
                gz[j] = z, gr[j] = r, ab[j] = r * hpb[j];
            }
        }
        pn_gemm(0, 0, B, U, U, 1.0f, aux, U, Uw + 2 * U, GU, 0.0f, st + 2 * U, GU);
#pragma omp parallel for PN_RNN_ROWS_PAR(B, U)
        for (int64_t b = 0; b < B; b++) {
            float *restrict gz = g + b * GU, *restrict gh = gz + 2 * U;
            const float *restrict sh = st + b * GU + 2 * U, *restrict hpv = hprev + b * U;
            float *restrict hb = h + b * U;
            for (int64_t j = 0; j < U; j++) {
                float hh = pn_rnn_act(gh[j] + sh[j], act), z = gz[j];
                gh[j] = hh;
                hb[j] = z * hpv[j] + (1.0f - z) * hh;
            }
        }
    }
}

static void gru_step_back(const pn_rnn_dims *d, const pn_rnn_scratch *s, const pn_ctx *c,
                          int64_t t, const float *hprev, const float *hp) {
    const int64_t B = d->B, U = d->U, GU = d->GU, BU = B * U;
    const int act = d->act, ract = d->ract;
    const float *Uw = c->var[1];
    const float *g = s->gx + t * B * GU;
    float *dg = s->dgx + t * B * GU, *dhs = s->dh, *dt1 = s->dt1, *dt2 = s->dt2;
    if (d->reset_after) {
        const float *aux = s->aux + t * BU;
        float *dgh = s->dgh + t * B * GU;
#pragma omp parallel for PN_RNN_ROWS_PAR(B, 3 * U)
        for (int64_t b = 0; b < B; b++) {
            const float *restrict gz = g + b * GU, *restrict gr = gz + U,
                                  *restrict gh = gz + 2 * U, *restrict sh = aux + b * U,
                                  *restrict hpv = hprev + b * U;
            float *restrict dx = dg + b * GU, *restrict dhh_ = dgh + b * GU;
            float *restrict dh = dhs + b * U;
            for (int64_t j = 0; j < U; j++) {
                float z = gz[j], r = gr[j], hh = gh[j], dhv = dh[j];
                float dhh = dhv * (1.0f - z) * pn_rnn_act_d(hh, act);
                float dz = dhv * (hpv[j] - hh) * pn_rnn_act_d(z, ract);
                float dr = dhh * sh[j] * pn_rnn_act_d(r, ract);
                dx[j] = dz, dx[U + j] = dr, dx[2 * U + j] = dhh;
                dhh_[j] = dz, dhh_[U + j] = dr, dhh_[2 * U + j] = dhh * r;
                dh[j] = dhv * z; /* the direct path; the product's part is added below */
            }
        }
        pn_gemm(0, 1, B, U, GU, 1.0f, dgh, GU, Uw, GU, 0.0f, dt1, U);
    } else {
        /* dhh and dz first, then da = dhh U_h^T, then dr and the rest */
#pragma omp parallel for PN_RNN_ROWS_PAR(B, 2 * U)
        for (int64_t b = 0; b < B; b++) {
            const float *restrict gz = g + b * GU, *restrict gh = gz + 2 * U,
                                  *restrict hpv = hprev + b * U;
            float *restrict dx = dg + b * GU;
            const float *restrict dh = dhs + b * U;
            for (int64_t j = 0; j < U; j++) {
                float z = gz[j], hh = gh[j], dhv = dh[j];
                dx[2 * U + j] = dhv * (1.0f - z) * pn_rnn_act_d(hh, act);
                dx[j] = dhv * (hpv[j] - hh) * pn_rnn_act_d(z, ract);
            }
        }
        pn_gemm(0, 1, B, U, U, 1.0f, dg + 2 * U, GU, Uw + 2 * U, GU, 0.0f, dt2, U);
#pragma omp parallel for PN_RNN_ROWS_PAR(B, 2 * U)
        for (int64_t b = 0; b < B; b++) {
            const float *restrict gz = g + b * GU, *restrict gr = gz + U,
                                  *restrict hpb = hp + b * U, *restrict da = dt2 + b * U;
            float *restrict dx = dg + b * GU, *restrict dh = dhs + b * U,
                            *restrict dt = dt1 + b * U;
            for (int64_t j = 0; j < U; j++) {
                float r = gr[j];
                dx[U + j] = da[j] * hpb[j] * pn_rnn_act_d(r, ract);
                dt[j] = da[j] * r;
                dh[j] = dh[j] * gz[j];
            }
        }
        pn_gemm(0, 1, B, U, 2 * U, 1.0f, dg, GU, Uw, GU, 1.0f, dt1, U);
    }
    /* dh_{t-1} = the direct part + dt1 rm */
    float *restrict dh = dhs;
    const float *restrict dt = dt1, *restrict rm = s->rm;
    for (int64_t i = 0; i < BU; i++) dh[i] += dt[i] * rm[i];
}

static void gru_forward(const pn_node *n, const pn_ctx *c) {
    pn_rnn_dims d;
    pn_rnn_scratch s;
    pn_rnn_forward_begin(n, c, &d, &s, 0);
    pn_rnn_steps_forward(&d, &s, c, gru_step);
    pn_rnn_forward_end(c, &d, &s);
}

static void gru_backward(const pn_node *n, const pn_ctx *c) {
    pn_rnn_dims d;
    pn_rnn_scratch s;
    pn_rnn_backward_begin(n, c, &d, &s);
    pn_rnn_steps_backward(&d, &s, c, gru_step_back);
    if (c->dvar[1]) { /* dU over all steps */
        const int64_t U = d.U, GU = d.GU, TB = d.T * d.B;
        const float *HP = pn_rnn_hp_all(&d, &s);
        const float beta = c->acc_var[1] ? 1.0f : 0.0f;
        if (d.reset_after) {
            pn_gemm(1, 0, U, GU, TB, 1.0f, HP, U, s.dgh, GU, beta, c->dvar[1], GU);
        } else {
            pn_gemm(1, 0, U, 2 * U, TB, 1.0f, HP, U, s.dgx, GU, beta, c->dvar[1], GU);
            pn_gemm(1, 0, U, U, TB, 1.0f, s.aux, U, s.dgx + 2 * U, GU, beta, c->dvar[1] + 2 * U,
                    GU);
        }
    }
    pn_rnn_backward_end(n, c, &d, &s, 0, NULL);
}

const pn_op_def pn_op_gru_def = {"gru", pn_rnn_shape, gru_forward, gru_backward,
                                 pn_rnn_scratch_size, PN_RNN_FLAGS};
