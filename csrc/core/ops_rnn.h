/*
 * ops_rnn.h: what the recurrent ops' files share. ops_rnn.c holds the sequence machinery common
 * to the three cells (attributes and shapes, the scratch layout, dropout masks, the step mask,
 * the input projection, the time loop of simple_rnn and gru, the outputs, and the gradients of
 * the inputs, the initial states, a folded embedding, the kernel and the bias);
 * ops_simple_rnn.c, ops_lstm.c and ops_gru.c each hold one cell: its step forward and backward,
 * its recurrent kernel's gradient and its pn_op_def. The math, layout and attributes are
 * described at the top of ops_rnn.c.
 */
#ifndef PYNN_OPS_RNN_H
#define PYNN_OPS_RNN_H

#include "internal.h"
#include "tile.h"
#include "vmath.h"

/* activation codes of iattr[4] and iattr[5] */
enum { PN_RNN_ACT_LINEAR = 0, PN_RNN_ACT_TANH, PN_RNN_ACT_SIGMOID, PN_RNN_ACT_RELU,
       PN_RNN_ACT_HARD_SIGMOID, PN_RNN_ACT_COUNT };

enum { PN_RNN_SIMPLE = 0, PN_RNN_LSTM, PN_RNN_GRU };

/* ---- gate activations: vmath.h's kernels, which vectorise in the gate loops ---------------- */

/* f(x); called with a constant a on the common paths, so the switch folds away */
static inline float pn_rnn_act(float x, int a) {
    switch (a) {
    case PN_RNN_ACT_TANH: return pn_tanh(x);
    case PN_RNN_ACT_SIGMOID: return pn_sigmoid(x);
    case PN_RNN_ACT_RELU: return x <= 0.0f ? 0.0f : x;
    case PN_RNN_ACT_HARD_SIGMOID: return pn_hard_sigmoid(x);
    default: return x;
    }
}

/* f'(x) from y = f(x) */
static inline float pn_rnn_act_d(float y, int a) {
    switch (a) {
    case PN_RNN_ACT_TANH: return 1.0f - y * y;
    case PN_RNN_ACT_SIGMOID: return y * (1.0f - y);
    case PN_RNN_ACT_RELU: return y > 0.0f ? 1.0f : 0.0f;
    case PN_RNN_ACT_HARD_SIGMOID: return (y > 0.0f && y < 1.0f) ? (1.0f / 6.0f) : 0.0f;
    default: return 1.0f;
    }
}

/* ---- sizes and the scratch ------------------------------------------------------------------ */

typedef struct {
    int cell, G, act, ract, rs, back, rstate, reset_after, rev;
    int64_t B, T, F, U, GU, S; /* S: output values per sample */
    int64_t V;                 /* with a folded embedding: the table's rows; else 0 */
    float drop, rdrop;
    int masked;                /* recurrent dropout applies (training): hm holds h_{t-1} rm */
    int step_mask, zero_masked; /* iattr[8]: the last input is a step mask; iattr[9]:
                                 * zero_output_for_mask */
    int states_in;             /* initial states among the inputs: 0, or 1 (2 for lstm) */
    int bias;                  /* a bias variable (var[2]) */
    int stateful;              /* iattr[10]: the last variables hold the states (h, then the
                                * lstm's c), read when no initial state is given and written
                                * with the final states by every forward */
} pn_rnn_dims;

typedef struct {
    float *xt, *gx, *hs, *cs, *aux, *hm, *dm, *rm, *dgx, *dgh, *dh, *dc, *dt1, *dt2, *step, *dxt;
    float *pk, *prod; /* lstm: U packed into panels, the recurrent product of a step */
    float *gbuf;      /* lstm: per thread, a block of dgx's columns (grad_columns) */
    float *tab, *dtab; /* with a folded embedding: table W + b (V, GU), its gradient */
    float *mk;         /* with a step mask: (T, B) 1 keep, 0 carry, in processing order */
    float *sdh;        /* with a step mask, simple_rnn and gru: dh's masked rows (B, U) while a
                        * step runs back */
} pn_rnn_scratch;

/* Whether step t of sample b is masked (the step carries the states; NULL mk: no mask) */
static inline int pn_rnn_skip(const float *mk, int64_t t, int64_t B, int64_t b) {
    return mk && mk[t * B + b] == 0.0f;
}

/* The lstm's recurrent product runs on panels of PN_TILE_NR units (ops_lstm.c) */
static inline int64_t pn_rnn_panels(int64_t U) { return (U + PN_TILE_NR - 1) / PN_TILE_NR; }
/* The lstm's backward adds dgx into the weight gradients every PN_RNN_GRAD_ROWS rows (steps x
 * batch) or so: enough to amortise reading and writing the gradients' columns, few enough to
 * stay in L2. pn_rnn_grad_rows: the most rows of one block. */
#define PN_RNN_GRAD_ROWS 128
static inline int64_t pn_rnn_grad_rows(int64_t B) {
    return B < PN_RNN_GRAD_ROWS ? PN_RNN_GRAD_ROWS / B * B : B;
}

/* Splits rows [0, R) of a gate pass over the threads when the work is large enough. A gate
 * costs several exponentials, so the bar is lower than PN_PAR_MIN's for a plain elementwise
 * loop: with steps of batch 32 and 256 units (32k gates), bench_lstm.py's LSTM layer (forward
 * and backward) ran about 10% faster on two threads than with serial gate passes. */
#define PN_RNN_GATE_PAR_MIN 8192
#define PN_RNN_ROWS_PAR(R, W) if ((R) * (W) >= PN_RNN_GATE_PAR_MIN) num_threads(pn_threads)

/* h_{t-1} rm of every step, (T B, U): what multiplies U */
static inline const float *pn_rnn_hp_all(const pn_rnn_dims *d, const pn_rnn_scratch *s) {
    return d->masked ? s->hm : s->hs;
}

/* ---- the shared parts of a forward and a backward (ops_rnn.c) ------------------------------ */

int pn_rnn_shape(const pn_model *m, pn_node *n);
int64_t pn_rnn_scratch_size(const pn_model *m, const pn_node *n, int64_t batch, int training);
#define PN_RNN_FLAGS (PN_OPF_BWD_NO_IN | PN_OPF_BWD_NO_OUT)
/* Whether node n has a bias variable: kernel, recurrent kernel, [bias], [states] */
static inline int pn_rnn_has_bias(const pn_node *n) {
    return n->n_var - 2 - (n->iattr[10] ? (n->op == PN_OP_LSTM ? 2 : 1) : 0) == 1;
}

/* Sizes, scratch, dropout masks, xt (masked inputs in processing order), a folded embedding's
 * tab = E W + b, the initial states hs[0] (and cs[0]); and, unless own_input (the lstm, whose
 * steps multiply x_t W + b themselves), gx = every step's x_t W + b. */
void pn_rnn_forward_begin(const pn_node *n, const pn_ctx *c, pn_rnn_dims *d, pn_rnn_scratch *s,
                          int own_input);
/* One step of simple_rnn or gru: gx[t] (B, GU) holds x_t W + b in and the activated gates out;
 * h_t (hs[t+1]) from h_{t-1} (hprev) and h_{t-1} rm (hp, hprev without recurrent dropout). */
typedef void (*pn_rnn_step_fn)(const pn_rnn_dims *d, const pn_rnn_scratch *s, const pn_ctx *c,
                               int64_t t, const float *hprev, const float *hp);
/* The time loop: step(t) for t = 0 .. T-1, with hm[t] = h_{t-1} rm made first when masked;
 * after each step, h_t = h_{t-1} in the samples whose step mask is 0 there. */
void pn_rnn_steps_forward(const pn_rnn_dims *d, const pn_rnn_scratch *s, const pn_ctx *c,
                          pn_rnn_step_fn step);
/* The output: the sequence or h_T, then with return_state h_T (and c_T); with
 * zero_output_for_mask, zeros for a masked step. A stateful op's states take h_T (and c_T). */
void pn_rnn_forward_end(const pn_ctx *c, const pn_rnn_dims *d, const pn_rnn_scratch *s);

/* Sizes, scratch, and dh = dL/dh_T (dc = dL/dc_T) from the output's gradient (the last
 * output's share dropped where zero_output_for_mask zeroed it). */
void pn_rnn_backward_begin(const pn_node *n, const pn_ctx *c, pn_rnn_dims *d, pn_rnn_scratch *s);
/* One step back of simple_rnn or gru: dh holds dL/dh_t in (the output's share added), and
 * leaves dL/dh_{t-1}; dgx[t] (and dgh[t]) the gates' gradients. */
typedef pn_rnn_step_fn pn_rnn_step_back_fn;
/* The time loop backward: for t = T-1 .. 0, the output's gradient of step t into dh, then
 * step(t); a sample whose step is masked keeps its dh (dL/dh_{t-1} = dL/dh_t) and gets zero
 * gate gradients: its dh row is zeroed while step(t) runs (which is linear in dh), then put
 * back. */
void pn_rnn_steps_backward(const pn_rnn_dims *d, const pn_rnn_scratch *s, const pn_ctx *c,
                           pn_rnn_step_back_fn step);
/* A folded embedding's table gradient buffer, NULL when no gradient needs it */
float *pn_rnn_dtab(const pn_rnn_dims *d, const pn_rnn_scratch *s, const pn_ctx *c);
/* After the cell's steps (and its recurrent kernel's gradient): the initial states' gradients,
 * a folded table's (and dW from it), dW = xt^T dgx, the bias's and dx = (dgx W^T) dm; a step
 * mask's gradient is zero. in_steps:
 * the lstm's steps summed dtab, dW and the bias's gradient (into db_sum, NULL: none wanted). */
void pn_rnn_backward_end(const pn_node *n, const pn_ctx *c, const pn_rnn_dims *d,
                         const pn_rnn_scratch *s, int in_steps, const float *db_sum);

#endif /* PYNN_OPS_RNN_H */
