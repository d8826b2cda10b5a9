/*
 * ops_simple_rnn.c: Keras 3's SimpleRNN cell; the sequence around it (attributes, scratch,
 * masks, the time loop, outputs, the other gradients) is ops_rnn.c's.
 *
 *   h_t = act(x_t W + b + (h_{t-1} rm) U)
 *   dgx_t = dh act'(h_t),  dh_{t-1} = (dgx_t U^T) rm,  dU = sum_t (h_{t-1} rm)^T dgx_t
 *
 * G = 1 gate: gx[t] (B, U) holds x_t W + b in and h_t out.
 */
#include "ops_rnn.h"

/* y[i] = act(y[i]) over n values; the switch outside the loop so each loop vectorises */
static void act_inplace(float *restrict y, int64_t n, int a) {
    switch (a) {
    case PN_RNN_ACT_TANH:
        for (int64_t i = 0; i < n; i++) y[i] = pn_tanh(y[i]);
        break;
    case PN_RNN_ACT_SIGMOID:
        for (int64_t i = 0; i < n; i++) y[i] = pn_sigmoid(y[i]);
        break;
    case PN_RNN_ACT_RELU:
        for (int64_t i = 0; i < n; i++) y[i] = y[i] <= 0.0f ? 0.0f : y[i];
        break;
    case PN_RNN_ACT_HARD_SIGMOID:
        for (int64_t i = 0; i < n; i++) y[i] = pn_hard_sigmoid(y[i]);
        break;
    default: break;
    }
}

/* gx[t] += hp U, then h_t = act(gx[t]) */
static void simple_rnn_step(const pn_rnn_dims *d, const pn_rnn_scratch *s, const pn_ctx *c,
                            int64_t t, const float *hprev, const float *hp) {
    (void)hprev;
    const int64_t B = d->B, U = d->U, GU = d->GU;
    float *g = s->gx + t * B * GU, *h = s->hs + (t + 1) * B * U;
    pn_gemm(0, 0, B, GU, U, 1.0f, hp, U, c->var[1], GU, 1.0f, g, GU);
    act_inplace(g, B * U, d->act);
    memcpy(h, g, (size_t)(B * U) * sizeof(float));
}

/* dgx_t = dh act'(h_t); dh = dh_{t-1} = (dgx_t U^T) rm */
static void simple_rnn_step_back(const pn_rnn_dims *d, const pn_rnn_scratch *s, const pn_ctx *c,
                                 int64_t t, const float *hprev, const float *hp) {
    (void)hprev, (void)hp;
    const int64_t B = d->B, U = d->U, GU = d->GU, BU = B * U;
    float *dg = s->dgx + t * B * GU;
    {
        const float *restrict h = s->hs + (t + 1) * BU;
        const float *restrict dh = s->dh;
        for (int64_t i = 0; i < BU; i++) dg[i] = dh[i] * pn_rnn_act_d(h[i], d->act);
    }
    pn_gemm(0, 1, B, U, GU, 1.0f, dg, GU, c->var[1], GU, 0.0f, s->dt1, U);
    float *restrict dh = s->dh;
    const float *restrict dt = s->dt1, *restrict rm = s->rm;
    for (int64_t i = 0; i < BU; i++) dh[i] = dt[i] * rm[i];
}

static void simple_rnn_forward(const pn_node *n, const pn_ctx *c) {
    pn_rnn_dims d;
    pn_rnn_scratch s;
    pn_rnn_forward_begin(n, c, &d, &s, 0);
    pn_rnn_steps_forward(&d, &s, c, simple_rnn_step);
    pn_rnn_forward_end(c, &d, &s);
}

static void simple_rnn_backward(const pn_node *n, const pn_ctx *c) {
    pn_rnn_dims d;
    pn_rnn_scratch s;
    pn_rnn_backward_begin(n, c, &d, &s);
    pn_rnn_steps_backward(&d, &s, c, simple_rnn_step_back);
    if (c->dvar[1]) /* dU = hp^T dgx over all steps */
        pn_gemm(1, 0, d.U, d.GU, d.T * d.B, 1.0f, pn_rnn_hp_all(&d, &s), d.U, s.dgx, d.GU,
                c->acc_var[1] ? 1.0f : 0.0f, c->dvar[1], d.GU);
    pn_rnn_backward_end(n, c, &d, &s, 0, NULL);
}

const pn_op_def pn_op_simple_rnn_def = {"simple_rnn", pn_rnn_shape, simple_rnn_forward,
                                        simple_rnn_backward, pn_rnn_scratch_size, PN_RNN_FLAGS};
