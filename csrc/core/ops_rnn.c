/*
 * ops_rnn.c: recurrent layers over whole sequences (Keras 3 SimpleRNN, LSTM, GRU). Their packed
 * outputs (return_state) are split by slice nodes (ops_shape.c).
 *
 * Each recurrent op runs the whole sequence in one forward and backpropagates through time in
 * one backward. Sizes: B batch, T steps, F input features, U units, G gates (1, 4, 3), GU = G U.
 *
 * Attributes:
 *   simple_rnn, lstm, gru   iattr [0] units U          [1] return_sequences
 *                                 [2] go_backwards     [3] return_state (pack the states)
 *                                 [4] activation       [5] recurrent_activation (PN_RNN_ACT_*)
 *                                 [6] gru: reset_after
 *                                 [7] reverse_output: the sequence in input order although
 *                                     processed backwards (Bidirectional's backward layer)
 *                           fattr [0] dropout          [1] recurrent_dropout, each in [0, 1)
 *                           inputs  x (T, F), then optionally the initial states h0 (U) and,
 *                                   for lstm, c0 (U)
 *                           vars    kernel (F, GU), recurrent_kernel (U, GU), optional bias:
 *                                   (GU), or (2, GU) for gru with reset_after (input, recurrent)
 *
 * Output per sample: the sequence (T, U) (in processing order: reversed with go_backwards, as
 * Keras) or the last h (U); with return_state the same values flat, followed by h_T and, for
 * lstm, c_T: (T U or U) + (1 or 2) U values, which slice nodes split into the layer's outputs.
 *
 * Keras 3 cells (gates in Keras's column order, x_t masked by the dropout mask dm, h_{t-1} by
 * the recurrent one rm in the recurrent product only; one mask per sample for all steps):
 *   simple_rnn  h = act(x W + b + (h rm) U)
 *   lstm        [i f g o] = [sig sig act sig](x W + b + (h rm) U)
 *               c = f c + i g,  h = o act(c)
 *   gru         reset_after: [az ar] = x W[:, :2U] + b_in,  ah = x W[:, 2U:] + b_in
 *                            s = (h rm) U + b_rec;   z = sig(az + s_z), r = sig(ar + s_r)
 *                            hh = act(ah + r s_h)
 *               otherwise:   s = (h rm) U[:, :2U],  z, r as above (one bias, on x W)
 *                            hh = act(ah + (r (h rm)) U[:, 2U:])
 *               h = z h_prev + (1 - z) hh
 *
 * Layout: the steps run time-major. The forward copies x into xt (T, B, F) in processing order
 * (masked), so the input projection of every step is one GEMM, gx (T B, GU) = xt W, and step t's
 * gates are the contiguous block gx[t] (B, GU) that its one GEMM (h rm) U adds into. The fused
 * gate pass then overwrites gx[t] with the activated gates, which backward reads; hs (T+1, B, U)
 * keeps h_0..h_T, so the h_{t-1} of every step form one (T B, U) matrix and dU is one GEMM, as
 * are dW = xt^T dgx and dxt = dgx W^T. The lstm runs its steps on persistent threads instead
 * (lstm_steps_forward and _backward): one parallel region per direction, U packed once into
 * panels, x_t W + b + (h rm) U one pass of a register-blocked kernel per step, one barrier per
 * step; gx then only receives the activated gates, and the backward adds dgx into dW, dU and db
 * every few steps while it is in cache (only dxt stays a GEMM).
 *
 * A folded embedding (the plan's pn_plan_fold: a recurrent op reading an embedding's output
 * that nothing else needs, with a table E (V, F) of at most T B rows): x_t W + b is then the row
 * of tab = E W + b (V, GU, one product per batch) that the step's index picks: gx gathers them
 * (the lstm's steps start each product from them, its panels holding U only); backward sums
 * each row of dgx into the row of dtab (V, GU) its index picks (the lstm in its steps, while in
 * cache), and dW = E^T dtab, dE = dtab W^T. Per token this removes F GU multiply-adds from the
 * forward and 2 F GU from the backward (dW's and dxt's), about a fifth of bench_lstm.py's step,
 * and the embedding's own passes.
 *
 * Scratch (floats), the same for training and inference plans (an eager call may run backward
 * after an inference-mode forward):
 *   xt T B F | gx T B GU | hs (T+1) B U | cs (T+1) B U | aux T B U | hm T B U | dm B F | rm B U
 *   | dgx T B GU | dgh T B GU | dh, dc, dt1, dt2 4 B U | step B GU | dxt T B F
 *   | pk 4 UP (1 + F + U) | prod B 4 UP | gbuf UP grad_rows(B) | tab V GU | dtab V GU
 * (xt and dxt: none with a folded embedding; tab and dtab: only with one)
 * aux: lstm act(c_t); gru s_h (reset_after) or r (h rm). hm: h_{t-1} rm (with recurrent
 * dropout). cs: lstm only. dgh: gru reset_after only (the gradient of s differs from gx's).
 * pk, prod: lstm only, U's panels and a step's product (UP: U rounded up to whole panels of 16);
 * gbuf (UP grad_rows(B)): lstm only, a block of dgx's columns per thread; the lstm's backward
 * sums the bias gradient into step.
 */
#include <math.h>
#include <sched.h>
#include <stdatomic.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#endif

#include "internal.h"
#include "tile.h"
#include "vmath.h"

enum { PN_RNN_ACT_LINEAR = 0, PN_RNN_ACT_TANH, PN_RNN_ACT_SIGMOID, PN_RNN_ACT_RELU,
       PN_RNN_ACT_HARD_SIGMOID, PN_RNN_ACT_COUNT };

enum { CELL_SIMPLE = 0, CELL_LSTM, CELL_GRU };

/* ---- activations: vmath.h's exp, sigmoid and tanh, which vectorise in the gate loops ---- */

static inline float act_f(float x, int a) {
    switch (a) {
    case PN_RNN_ACT_TANH: return pn_tanh(x);
    case PN_RNN_ACT_SIGMOID: return pn_sigmoid(x);
    case PN_RNN_ACT_RELU: return x <= 0.0f ? 0.0f : x;
    case PN_RNN_ACT_HARD_SIGMOID: { /* relu6(x + 3) / 6 */
        float y = (x + 3.0f) * (1.0f / 6.0f);
        return y < 0.0f ? 0.0f : (y > 1.0f ? 1.0f : y);
    }
    default: return x;
    }
}

/* f'(x) from y = f(x) */
static inline float act_d(float y, int a) {
    switch (a) {
    case PN_RNN_ACT_TANH: return 1.0f - y * y;
    case PN_RNN_ACT_SIGMOID: return y * (1.0f - y);
    case PN_RNN_ACT_RELU: return y > 0.0f ? 1.0f : 0.0f;
    case PN_RNN_ACT_HARD_SIGMOID: return (y > 0.0f && y < 1.0f) ? (1.0f / 6.0f) : 0.0f;
    default: return 1.0f;
    }
}

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
        for (int64_t i = 0; i < n; i++) y[i] = act_f(y[i], PN_RNN_ACT_HARD_SIGMOID);
        break;
    default: break;
    }
}

/* ---- shapes and the scratch layout --------------------------------------------------------- */

static int cell_of(int op) {
    return op == PN_OP_LSTM ? CELL_LSTM : op == PN_OP_GRU ? CELL_GRU : CELL_SIMPLE;
}
static int gates_of(int cell) { return cell == CELL_LSTM ? 4 : cell == CELL_GRU ? 3 : 1; }
static int states_of(int cell) { return cell == CELL_LSTM ? 2 : 1; }

typedef struct {
    int cell, G, act, ract, rs, back, rstate, reset_after, rev;
    int64_t B, T, F, U, GU, S; /* S: output values per sample */
    int64_t V;                 /* with a folded embedding: the table's rows; else 0 */
    float drop, rdrop;
} rnn_dims;

static rnn_dims rnn_get(const pn_node *n, const pn_node *x, int64_t B) {
    rnn_dims d = {.cell = cell_of(n->op), .B = B, .T = x->shape[0], .F = x->shape[1],
                  .U = n->iattr[0], .rs = n->iattr[1], .back = n->iattr[2],
                  .rstate = n->iattr[3], .act = n->iattr[4], .ract = n->iattr[5],
                  .reset_after = n->iattr[6], .rev = n->iattr[7], .drop = n->fattr[0], .rdrop = n->fattr[1]};
    d.G = gates_of(d.cell);
    d.GU = d.G * d.U;
    d.S = (d.rs ? d.T * d.U : d.U) + (d.rstate ? states_of(d.cell) * d.U : 0);
    return d;
}

typedef struct {
    float *xt, *gx, *hs, *cs, *aux, *hm, *dm, *rm, *dgx, *dgh, *dh, *dc, *dt1, *dt2, *step, *dxt;
    float *pk, *prod; /* lstm: U packed into panels, the recurrent product of a step */
    float *gbuf;      /* lstm: per thread, a block of dgx's columns (grad_columns) */
    float *tab, *dtab; /* with a folded embedding: table W + b (V, GU), its gradient */
} rnn_scratch;

/* The lstm's recurrent product runs on panels of NR units (see lstm_steps_forward) */
#define NR PN_TILE_NR
#define MR PN_TILE_MR
static int64_t panels_of(int64_t U) { return (U + NR - 1) / NR; }
/* The lstm's backward adds dgx into the weight gradients every GRAD_ROWS rows (steps x batch) or
 * so: enough to amortise reading and writing the gradients' columns, few enough to stay in L2.
 * grad_rows: the most rows of one block. */
#define GRAD_ROWS 128
static int64_t grad_rows(int64_t B) { return B < GRAD_ROWS ? GRAD_ROWS / B * B : B; }

/* Places the buffers in scratch (s may be NULL: only the size); returns the floats needed. */
static int64_t rnn_layout(const rnn_dims *d, float *s, rnn_scratch *o) {
    const int64_t B = d->B, T = d->T, TB = T * B, U = d->U, lstm = d->cell == CELL_LSTM;
    const int64_t UP = panels_of(U) * NR; /* U rounded up to whole panels */
    const int64_t xs = d->V ? 0 : TB * d->F; /* xt and dxt: not with a folded embedding */
    const int64_t sizes[21] = {
        xs, TB * d->GU, (T + 1) * B * U, lstm ? (T + 1) * B * U : 0,
        TB * U, d->rdrop > 0.0f ? TB * U : 0, B * d->F, B * U,
        TB * d->GU, d->cell == CELL_GRU && d->reset_after ? TB * d->GU : 0,
        B * U, B * U, B * U, B * U, B * d->GU, xs, lstm ? 4 * UP * (1 + d->F + U) : 0,
        lstm ? B * 4 * UP : 0, lstm ? UP * grad_rows(B) : 0, d->V * d->GU, d->V * d->GU};
    float **slots[21] = {&o->xt, &o->gx, &o->hs, &o->cs, &o->aux, &o->hm, &o->dm, &o->rm,
                         &o->dgx, &o->dgh, &o->dh, &o->dc, &o->dt1, &o->dt2, &o->step, &o->dxt,
                         &o->pk, &o->prod, &o->gbuf, &o->tab, &o->dtab};
    int64_t off = 0;
    for (int i = 0; i < 21; i++) {
        if (s) *slots[i] = sizes[i] ? s + off : NULL;
        off += (sizes[i] + 15) / 16 * 16; /* each buffer 64-byte aligned when scratch is */
    }
    return off;
}

static int64_t rnn_scratch_size(const pn_model *m, const pn_node *n, int64_t batch,
                                int training) {
    (void)training;
    rnn_dims d = rnn_get(n, pn_input_node(m, n, 0), batch);
    const int e = pn_plan_fold(m, n, batch);
    if (e >= 0) d.V = m->vars[m->nodes[e].var[0]].shape[0];
    rnn_scratch o;
    return rnn_layout(&d, NULL, &o);
}

static int rnn_shape(const pn_model *m, pn_node *n) {
    const char *name = pn_op_name(n->op);
    const int cell = cell_of(n->op), G = gates_of(cell), ns = states_of(cell);
    if (n->n_in != 1 && n->n_in != 1 + ns)
        return pn_error(PN_EVALUE, "%s: takes a sequence and optionally %d initial state%s, got "
                        "%d inputs", name, ns, ns > 1 ? "s" : "", n->n_in);
    const pn_node *x = pn_input_node(m, n, 0);
    if (x->dtype != PN_F32) return pn_error(PN_ETYPE, "%s: input must be float32", name);
    if (x->ndim != 2)
        return pn_error(PN_ESHAPE, "%s: input must have rank 2 (timesteps, features) besides "
                        "the batch, got rank %d", name, x->ndim);
    int64_t T = x->shape[0], F = x->shape[1], U = n->iattr[0];
    if (U < 1) return pn_error(PN_EVALUE, "%s: units must be >= 1, got %lld", name, (long long)U);
    if (n->n_var != 2 && n->n_var != 3)
        return pn_error(PN_EVALUE, "%s: takes a kernel, a recurrent kernel and an optional bias",
                        name);
    const pn_var *w = &m->vars[n->var[0]], *u = &m->vars[n->var[1]];
    if (w->ndim != 2 || w->shape[0] != F || w->shape[1] != G * U)
        return pn_error(PN_ESHAPE, "%s: kernel must be (%lld, %lld) for %lld input features and "
                        "%lld units", name, (long long)F, (long long)(G * U), (long long)F,
                        (long long)U);
    if (u->ndim != 2 || u->shape[0] != U || u->shape[1] != G * U)
        return pn_error(PN_ESHAPE, "%s: recurrent kernel must be (%lld, %lld)", name,
                        (long long)U, (long long)(G * U));
    for (int a = 1; a <= 3; a++)
        if (n->iattr[a] != 0 && n->iattr[a] != 1)
            return pn_error(PN_EVALUE, "%s: flag attribute %d must be 0 or 1, got %d", name, a,
                            n->iattr[a]);
    if (n->iattr[7] != 0 && n->iattr[7] != 1)
        return pn_error(PN_EVALUE, "%s: reverse_output must be 0 or 1, got %d", name, n->iattr[7]);
    int ra = cell == CELL_GRU ? n->iattr[6] : 0;
    if (ra != 0 && ra != 1)
        return pn_error(PN_EVALUE, "%s: reset_after must be 0 or 1, got %d", name, ra);
    if (n->n_var == 3) {
        const pn_var *b = &m->vars[n->var[2]];
        int ok = ra ? (b->ndim == 2 && b->shape[0] == 2 && b->shape[1] == G * U)
                    : (b->ndim == 1 && b->shape[0] == G * U);
        if (!ok)
            return pn_error(PN_ESHAPE, "%s: bias must be %s%lld)", name, ra ? "(2, " : "(",
                            (long long)(G * U));
    }
    for (int a = 4; a <= 5; a++)
        if (n->iattr[a] < 0 || n->iattr[a] >= PN_RNN_ACT_COUNT)
            return pn_error(PN_EVALUE, "%s: unknown activation code %d", name, n->iattr[a]);
    for (int a = 0; a < 2; a++)
        if (!(n->fattr[a] >= 0.0f && n->fattr[a] < 1.0f))
            return pn_error(PN_EVALUE, "%s: %s must be in [0, 1), got %g", name,
                            a ? "recurrent_dropout" : "dropout", n->fattr[a]);
    for (int j = 1; j < n->n_in; j++) {
        const pn_node *s = pn_input_node(m, n, j);
        if (s->dtype != PN_F32 || s->ndim != 1 || s->shape[0] != U)
            return pn_error(PN_ESHAPE, "%s: initial state %d must be float32 (%lld) per sample",
                            name, j - 1, (long long)U);
    }
    if (T * F > INT32_MAX || T * G * U > INT32_MAX)
        return pn_error(PN_ESHAPE, "%s: the sequence is too long", name);
    n->dtype = PN_F32;
    if (n->iattr[3]) {
        n->ndim = 1;
        n->shape[0] = (n->iattr[1] ? T * U : U) + ns * U;
    } else if (n->iattr[1]) {
        n->ndim = 2;
        n->shape[0] = T, n->shape[1] = U;
    } else {
        n->ndim = 1;
        n->shape[0] = U;
    }
    return PN_OK;
}

/* ---- forward --------------------------------------------------------------------------------- */

/* mask[i] = keep / (1 - rate) for n draws from key (all ones without dropout) */
static void make_mask(float *restrict mask, int64_t n, uint64_t key, float rate, int on) {
    if (!on || rate == 0.0f) {
        for (int64_t i = 0; i < n; i++) mask[i] = 1.0f;
        return;
    }
    const float scale = 1.0f / (1.0f - rate);
    for (int64_t i = 0; i < n; i++) mask[i] = pn_uniform(key, (uint64_t)i) >= rate ? scale : 0.0f;
}

/* Splits rows [0, R) of a gate pass over the threads when the work is large enough. A gate
 * costs several exponentials, so the bar is lower than PN_PAR_MIN's for a plain elementwise
 * loop: with steps of batch 32 and 256 units (32k gates), bench_lstm.py's LSTM layer (forward
 * and backward) ran about 10% faster on two threads than with serial gate passes. */
#define GATE_PAR_MIN 8192
#define ROWS_PAR(R, W) if ((R) * (W) >= GATE_PAR_MIN) num_threads(pn_threads)

/* lstm step, one sample, over w units: p = [i f g o] pre-activations in, g the activated gates
 * out; cp c_{t-1}, c c_t, tc act(c_t), h h_t. Called with constant act and ract on the common
 * path, so the switches fold away and the loop vectorises. */
static inline void lstm_row(float *restrict gi, float *restrict gf, float *restrict gg,
                            float *restrict go, float *restrict c, float *restrict tc,
                            float *restrict h, const float *restrict cp, const float *restrict pi,
                            const float *restrict pf, const float *restrict pg,
                            const float *restrict po, int64_t w, int act, int ract) {
    for (int64_t j = 0; j < w; j++) {
        float i = act_f(pi[j], ract), f = act_f(pf[j], ract), gv = act_f(pg[j], act),
              o = act_f(po[j], ract);
        float cv = f * cp[j] + i * gv, t = act_f(cv, act);
        gi[j] = i, gf[j] = f, gg[j] = gv, go[j] = o;
        c[j] = cv, tc[j] = t, h[j] = o * t;
    }
}

/* The lstm's common gates (sigmoid, tanh), twice as fast as vmath.h's in its step loop, which
 * they dominated: sigmoid through pn_exp_lean on a clamped input, tanh as a rational function. */
static inline float sigmoid_lean(float x) {
    float xc = x < -87.0f ? -87.0f : x;
    xc = xc > 87.0f ? 87.0f : xc;
    return 1.0f / (1.0f + pn_exp_lean(-xc));
}
/* tanh as a rational function (Eigen's float tanh: odd degree 13 over even degree 6, inputs
 * clamped to +-7.9, where it rounds to +-1), within 4.1e-7 of tanh; NaN stays NaN */
static inline float tanh_lean(float x0) {
    float x = x0 > 7.90531110763549805f ? 7.90531110763549805f : x0;
    x = x < -7.90531110763549805f ? -7.90531110763549805f : x;
    float z = x * x;
    float p = -2.76076847742355e-16f;
    p = p * z + 2.00018790482477e-13f;
    p = p * z - 8.60467152213735e-11f;
    p = p * z + 5.12229709037114e-08f;
    p = p * z + 1.48572235717979e-05f;
    p = p * z + 6.37261928875436e-04f;
    p = p * z + 4.89352455891786e-03f;
    float q = 1.19825839466702e-06f;
    q = q * z + 1.18534705686654e-04f;
    q = q * z + 2.26843463243900e-03f;
    q = q * z + 4.89352518554385e-03f;
    return x * p / q;
}

/* lstm_row with act tanh and ract sigmoid */
static inline void lstm_row_fast(float *restrict gi, float *restrict gf, float *restrict gg,
                                 float *restrict go, float *restrict c, float *restrict tc,
                                 float *restrict h, const float *restrict cp,
                                 const float *restrict pi, const float *restrict pf,
                                 const float *restrict pg, const float *restrict po, int64_t w) {
    for (int64_t j = 0; j < w; j++) {
        float i = sigmoid_lean(pi[j]), f = sigmoid_lean(pf[j]), gv = tanh_lean(pg[j]),
              o = sigmoid_lean(po[j]);
        float cv = f * cp[j] + i * gv, t = tanh_lean(cv);
        gi[j] = i, gf[j] = f, gg[j] = gv, go[j] = o;
        c[j] = cv, tc[j] = t, h[j] = o * t;
    }
}

/* lstm backward, one sample: dg (4U) the pre-activation gradients, dc updated to dc_{t-1} */
static inline void lstm_row_bwd(float *restrict dgi, float *restrict dgf, float *restrict dgg,
                                float *restrict dgo, float *restrict dc,
                                const float *restrict gi, const float *restrict gf,
                                const float *restrict gg, const float *restrict go,
                                const float *restrict tc, const float *restrict cp,
                                const float *restrict dh, int64_t U, int act, int ract) {
    for (int64_t j = 0; j < U; j++) {
        float i = gi[j], f = gf[j], gv = gg[j], o = go[j], tv = tc[j];
        float dcv = dc[j] + dh[j] * o * act_d(tv, act);
        dgi[j] = dcv * gv * act_d(i, ract);
        dgf[j] = dcv * cp[j] * act_d(f, ract);
        dgg[j] = dcv * i * act_d(gv, act);
        dgo[j] = dh[j] * tv * act_d(o, ract);
        dc[j] = dcv * f;
    }
}

/* ---- the lstm's time loop on persistent threads ------------------------------------------------
 * A step's recurrent product (B, U) x (U, 4U) is small (8M multiply-adds in bench_lstm.py): as a
 * GEMM call per step, OpenBLAS repacks U every time and the threads wake twice (the product,
 * then the gates). Instead one parallel region runs the whole sequence. Thread k owns the units
 * of panels [q0, q1) (NR units each) in all four gates; it packs its columns of U once per call
 * and per step multiplies h_{t-1} by them with a register-blocked kernel, then runs the gates of
 * its units, which need no other thread's columns. Only h_t crosses threads, so a step ends in
 * one barrier (a spin on atomics: OpenMP's barrier wakes waiters with a futex syscall). Backward
 * likewise: thread k computes dgx_t for its units, waits, then dh_{t-1} for its units from all
 * of dgx_t and its rows of U, which its next dgx needs and nothing else; every few steps it adds
 * its own columns of dgx into the same columns of dW, dU and db. Threads write disjoint columns,
 * and the barrier orders each write before the other threads' reads.
 *
 * Panels (pk; UP = U rounded up to whole panels, zeros past U; col = g U + q NR + j):
 *   forward   panel (g, q) at (g nq + q) (1 + F + U) NR: row 0 the bias b[col], rows 1..F
 *             W[k, col], then rows U[k, col]; so a step's x_t W + b + (h rm) U is one pass
 *   backward  panel q at q 4U NR: pk[k NR + j] = U[q NR + j, k]   (U^T's rows)
 * prod holds a step's product: (B, 4 UP) forward, gate g's units at g UP; (B, UP) backward.
 */

/* Below this many multiply-adds per step, one thread runs the sequence: a barrier costs about
 * as much as 2^16 multiply-adds. */
#define STEP_PAR_MIN (1 << 16)
/* A waiting thread spins this many times (about 13 us on Zen 3), then yields the core at each
 * check (valgrind, a machine with more threads than cores) */
#define SPIN_YIELD 512

typedef struct {
    atomic_uint arrived, gen;
} spin_barrier;

static inline void cpu_relax(void) {
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
    __builtin_ia32_pause();
#endif
}

/* Returns when all n threads have called it; what each wrote before is visible to all after.
 * The last to arrive resets the count and moves the generation on, which releases the others
 * (each reads the generation before it arrives, so none can miss the release). */
static void spin_wait(spin_barrier *b, int n) {
    if (n <= 1) return;
    unsigned gen = atomic_load_explicit(&b->gen, memory_order_relaxed);
    if (atomic_fetch_add_explicit(&b->arrived, 1u, memory_order_acq_rel) == (unsigned)n - 1) {
        atomic_store_explicit(&b->arrived, 0u, memory_order_relaxed);
        atomic_store_explicit(&b->gen, gen + 1u, memory_order_release);
        return;
    }
    int spins = 0;
    while (atomic_load_explicit(&b->gen, memory_order_acquire) == gen) {
        if (spins < SPIN_YIELD) spins++, cpu_relax();
        else sched_yield();
    }
}

/* c (mr, NR) = start + a1 (mr, K1) bp[0 .. K1) + a2 (mr, K2) bp[K1 .. K1 + K2): tile.h's kernel
 * on whole panels; start c's own values when acc, else init (NR values, NULL: zeros); mr <= MR
 * (OpenBLAS reached about 80% of peak here, and it repacks U on every call) */
static inline void tile(const int mr, const float *restrict init, int acc,
                        const float *restrict bp, int64_t K1, const float *restrict a1,
                        int64_t lda1, int64_t K2, const float *restrict a2, int64_t lda2,
                        float *restrict c, int64_t ldc) {
    pn_tile(mr, init, acc, NR, bp, K1, a1, lda1, K2, a2, lda2, c, ldc);
}

/* tile for mr <= 2 rows over two panels side by side (bp, bq; inits ip, iq): the rows past
 * whole tiles of MR (2 of batch 32) with 8 accumulators instead of 4, which the FMA latency
 * would halve */
#if defined(__AVX2__) && defined(__FMA__) && defined(__GNUC__)
static inline __attribute__((always_inline)) void
tile2(const int mr, const float *restrict ip, const float *restrict iq, int acc,
      const float *restrict bp, const float *restrict bq, int64_t K1, const float *restrict a1,
      int64_t lda1, int64_t K2, const float *restrict a2, int64_t lda2, float *restrict c,
      int64_t ldc) {
#define SEGMENT2(a, lda, K)                                                                      \
    {                                                                                            \
        const float *x0 = a, *x1 = a + (mr > 1 ? lda : 0);                                       \
        for (int64_t k = 0; k < K; k++, bp += NR, bq += NR) {                                    \
            __m256 b0 = _mm256_loadu_ps(bp), b1 = _mm256_loadu_ps(bp + 8),                       \
                   b2 = _mm256_loadu_ps(bq), b3 = _mm256_loadu_ps(bq + 8);                       \
            __m256 x = _mm256_broadcast_ss(x0 + k);                                              \
            c00 = _mm256_fmadd_ps(x, b0, c00), c01 = _mm256_fmadd_ps(x, b1, c01);                \
            c02 = _mm256_fmadd_ps(x, b2, c02), c03 = _mm256_fmadd_ps(x, b3, c03);                \
            if (mr > 1) {                                                                        \
                x = _mm256_broadcast_ss(x1 + k);                                                 \
                c10 = _mm256_fmadd_ps(x, b0, c10), c11 = _mm256_fmadd_ps(x, b1, c11);            \
                c12 = _mm256_fmadd_ps(x, b2, c12), c13 = _mm256_fmadd_ps(x, b3, c13);            \
            }                                                                                    \
        }                                                                                        \
    }
    __m256 c00 = ip ? _mm256_loadu_ps(ip) : _mm256_setzero_ps(),
           c01 = ip ? _mm256_loadu_ps(ip + 8) : _mm256_setzero_ps(),
           c02 = iq ? _mm256_loadu_ps(iq) : _mm256_setzero_ps(),
           c03 = iq ? _mm256_loadu_ps(iq + 8) : _mm256_setzero_ps();
    __m256 c10 = c00, c11 = c01, c12 = c02, c13 = c03;
    if (acc) {
        c00 = _mm256_loadu_ps(c), c01 = _mm256_loadu_ps(c + 8);
        c02 = _mm256_loadu_ps(c + NR), c03 = _mm256_loadu_ps(c + NR + 8);
        if (mr > 1) {
            c10 = _mm256_loadu_ps(c + ldc), c11 = _mm256_loadu_ps(c + ldc + 8);
            c12 = _mm256_loadu_ps(c + ldc + NR), c13 = _mm256_loadu_ps(c + ldc + NR + 8);
        }
    }
    SEGMENT2(a1, lda1, K1)
    SEGMENT2(a2, lda2, K2)
    _mm256_storeu_ps(c, c00), _mm256_storeu_ps(c + 8, c01);
    _mm256_storeu_ps(c + NR, c02), _mm256_storeu_ps(c + NR + 8, c03);
    if (mr > 1) {
        _mm256_storeu_ps(c + ldc, c10), _mm256_storeu_ps(c + ldc + 8, c11);
        _mm256_storeu_ps(c + ldc + NR, c12), _mm256_storeu_ps(c + ldc + NR + 8, c13);
    }
#undef SEGMENT2
}
#else
static inline void tile2(const int mr, const float *restrict ip, const float *restrict iq,
                         int acc, const float *restrict bp, const float *restrict bq, int64_t K1,
                         const float *restrict a1, int64_t lda1, int64_t K2,
                         const float *restrict a2, int64_t lda2, float *restrict c, int64_t ldc) {
    tile(mr, ip, acc, bp, K1, a1, lda1, K2, a2, lda2, c, ldc);
    tile(mr, iq, acc, bq, K1, a1, lda1, K2, a2, lda2, c + NR, ldc);
}
#endif

/* What a step's product starts from: zeros, each panel's first row (the bias), or c's own values
 * (the rows of a folded embedding's table, gathered) */
enum { START_ZERO = 0, START_ROW, START_C };

/* c (B, np NR) = start + a1 (B, K1) [a2 (B, K2)] times panels 0 .. np of bp, ps floats apart.
 * Rows go in tiles of MR; each panel stays in L1 while the tiles pass over it. */
static void panels_product(float *c, int64_t ldc, const float *bp, int64_t ps, int start,
                           int64_t np, int64_t B, int64_t K1, const float *a1, int64_t lda1,
                           int64_t K2, const float *a2, int64_t lda2) {
    const int64_t full = B / MR * MR, rem = B - full;
    const float *x1 = a1 + full * lda1, *x2 = a2 + full * lda2;
    const int row = start == START_ROW, acc = start == START_C;
    for (int64_t p = 0; p < np; p++, bp += ps, c += NR) {
        const float *init = row ? bp : NULL, *w = row ? bp + NR : bp;
        for (int64_t r = 0; r < full; r += MR)
            tile(MR, init, acc, w, K1, a1 + r * lda1, lda1, K2, a2 + r * lda2, lda2, c + r * ldc,
                 ldc);
        float *o = c + full * ldc;
        if (rem > 2) { /* 3..5 rows */
            switch (rem) {
            case 3: tile(3, init, acc, w, K1, x1, lda1, K2, x2, lda2, o, ldc); break;
            case 4: tile(4, init, acc, w, K1, x1, lda1, K2, x2, lda2, o, ldc); break;
            default: tile(5, init, acc, w, K1, x1, lda1, K2, x2, lda2, o, ldc); break;
            }
        } else if (rem > 0 && p % 2 == 1) { /* panels p - 1 and p, the former still in L2 */
            const float *bq = bp - ps, *iq = row ? bq : NULL, *wq = row ? bq + NR : bq;
            if (rem == 1) tile2(1, iq, init, acc, wq, w, K1, x1, lda1, K2, x2, lda2, o - NR, ldc);
            else tile2(2, iq, init, acc, wq, w, K1, x1, lda1, K2, x2, lda2, o - NR, ldc);
        } else if (rem > 0 && p == np - 1) { /* the last of an odd number of panels */
            if (rem == 1) tile(1, init, acc, w, K1, x1, lda1, K2, x2, lda2, o, ldc);
            else tile(2, init, acc, w, K1, x1, lda1, K2, x2, lda2, o, ldc);
        }
    }
}

/* c (mr, NR) += a^T (mr, K) b (K, NR): a's element (r, k) at a[k lda + r] (rows of a stored
 * matrix, read as columns), b's row k at b + k ldb, c's rows ldc apart; mr <= MR. The weight
 * gradients' kernel: dU += h^T dgx over a few steps' rows. */
#if defined(__AVX2__) && defined(__FMA__) && defined(__GNUC__)
static inline __attribute__((always_inline)) void
tile_acc(const int mr, int64_t K, const float *restrict a, int64_t lda, const float *restrict b,
         int64_t ldb, float *restrict c, int64_t ldc) {
#define ROW_LOAD(r, c0, c1)                                                                      \
    __m256 c0 = _mm256_setzero_ps(), c1 = c0;                                                    \
    if (mr > r) c0 = _mm256_loadu_ps(c + r * ldc), c1 = _mm256_loadu_ps(c + r * ldc + 8);
#define ROW_FMA(r, c0, c1)                                                                       \
    if (mr > r) {                                                                                \
        __m256 x = _mm256_broadcast_ss(a + r);                                                   \
        c0 = _mm256_fmadd_ps(x, b0, c0), c1 = _mm256_fmadd_ps(x, b1, c1);                        \
    }
#define ROW_STORE(r, c0, c1)                                                                     \
    if (mr > r) _mm256_storeu_ps(c + r * ldc, c0), _mm256_storeu_ps(c + r * ldc + 8, c1);
    ROW_LOAD(0, c00, c01)
    ROW_LOAD(1, c10, c11)
    ROW_LOAD(2, c20, c21)
    ROW_LOAD(3, c30, c31)
    ROW_LOAD(4, c40, c41)
    ROW_LOAD(5, c50, c51)
    for (int64_t k = 0; k < K; k++, a += lda, b += ldb) {
        __m256 b0 = _mm256_loadu_ps(b), b1 = _mm256_loadu_ps(b + 8);
        ROW_FMA(0, c00, c01)
        ROW_FMA(1, c10, c11)
        ROW_FMA(2, c20, c21)
        ROW_FMA(3, c30, c31)
        ROW_FMA(4, c40, c41)
        ROW_FMA(5, c50, c51)
    }
    ROW_STORE(0, c00, c01)
    ROW_STORE(1, c10, c11)
    ROW_STORE(2, c20, c21)
    ROW_STORE(3, c30, c31)
    ROW_STORE(4, c40, c41)
    ROW_STORE(5, c50, c51)
#undef ROW_LOAD
#undef ROW_FMA
#undef ROW_STORE
}
#else
static inline void tile_acc(const int mr, int64_t K, const float *restrict a, int64_t lda,
                            const float *restrict b, int64_t ldb, float *restrict c,
                            int64_t ldc) {
    float acc[MR][NR];
    for (int r = 0; r < mr; r++)
        for (int j = 0; j < NR; j++) acc[r][j] = c[r * ldc + j];
    for (int64_t k = 0; k < K; k++)
        for (int r = 0; r < mr; r++) {
            const float x = a[k * lda + r];
            for (int j = 0; j < NR; j++) acc[r][j] += x * b[k * ldb + j];
        }
    for (int r = 0; r < mr; r++)
        for (int j = 0; j < NR; j++) c[r * ldc + j] = acc[r][j];
}
#endif

/* dw (M, GU) += a^T (M, K) b, b (K, NR) packed: tiles of MR rows of dw, whose row i is at
 * dw + i ldw */
static void grad_panel(float *dw, int64_t ldw, const float *a, int64_t lda, int64_t M,
                       const float *b, int64_t K) {
    for (int64_t i = 0; i < M; i += MR) {
        const float *ai = a + i;
        float *c = dw + i * ldw;
        switch (M - i < MR ? M - i : MR) {
        case 1: tile_acc(1, K, ai, lda, b, NR, c, ldw); break;
        case 2: tile_acc(2, K, ai, lda, b, NR, c, ldw); break;
        case 3: tile_acc(3, K, ai, lda, b, NR, c, ldw); break;
        case 4: tile_acc(4, K, ai, lda, b, NR, c, ldw); break;
        case 5: tile_acc(5, K, ai, lda, b, NR, c, ldw); break;
        default: tile_acc(MR, K, ai, lda, b, NR, c, ldw); break;
        }
    }
}

/* one column of a weight gradient: dw[i ldw] += sum over k of a (K, M)[k, i] g[k ldg], i < M */
static void grad_column(float *dw, int64_t ldw, const float *a, int64_t lda, int64_t M,
                        const float *g, int64_t ldg, int64_t K) {
    for (int64_t i = 0; i < M; i++) {
        float sum = 0.0f;
        for (int64_t k = 0; k < K; k++) sum += a[k * lda + i] * g[k * ldg];
        dw[i * ldw] += sum;
    }
}

/* dW (F, GU) += x^T dg and dU (U, GU) += h^T dg over K rows (either may be NULL), in the
 * columns of units [u0, u0 + w) of the four gates (a thread's own): x (K, F), h (K, U), dg (K,
 * GU). Each NR columns of dg are copied into buf (K, NR) first: dg's rows are 4U floats apart,
 * which at U = 256 puts all of a column block's rows in one set of L1. The columns past the
 * last whole NR (units not a multiple of NR) are summed plainly. */
static void grad_columns(float *dW, const float *x, int64_t F, float *dU, const float *h,
                         const float *dg, int64_t K, int64_t U, int64_t u0, int64_t w,
                         float *restrict buf) {
    const int64_t GU = 4 * U, whole = w / NR * NR;
    for (int g = 0; g < 4; g++) {
        const int64_t col = g * U + u0;
        for (int64_t j = col; j < col + whole; j += NR) {
            for (int64_t k = 0; k < K; k++)
                memcpy(buf + k * NR, dg + k * GU + j, NR * sizeof(float));
            if (dW) grad_panel(dW + j, GU, x, F, F, buf, K);
            if (dU) grad_panel(dU + j, GU, h, U, U, buf, K);
        }
        for (int64_t j = col + whole; j < col + w; j++) {
            if (dW) grad_column(dW + j, GU, x, F, F, dg + j, GU, K);
            if (dU) grad_column(dU + j, GU, h, U, U, dg + j, GU, K);
        }
    }
}

/* The threads for a sequence's steps: one for small steps, at most one per panel */
static int step_threads(const rnn_dims *d) {
    const int64_t nq = panels_of(d->U);
    if (pn_threads <= 1 || d->B * d->GU * d->U < STEP_PAR_MIN) return 1;
    return pn_threads < nq ? pn_threads : (int)nq;
}

/* thread k of n: its panels [q0, q1) and units [u0, u1) */
typedef struct {
    int64_t q0, q1, u0, u1;
} unit_slice;

static unit_slice slice_of(int64_t U, int k, int n) {
    const int64_t nq = panels_of(U);
    unit_slice o = {.q0 = nq * k / n, .q1 = nq * (k + 1) / n};
    o.u0 = o.q0 * NR < U ? o.q0 * NR : U;
    o.u1 = o.q1 * NR < U ? o.q1 * NR : U;
    return o;
}

static void thread_id(int *k, int *n) {
#ifdef _OPENMP
    *k = omp_get_thread_num(), *n = omp_get_num_threads();
#else
    *k = 0, *n = 1;
#endif
}

/* the lstm's steps, forward: from xt (masked inputs, in processing order) and hs[0], cs[0] (the
 * initial states), gx gets the activated gates of every step, hs, cs and aux (act(c_t)) the
 * states and, with recurrent dropout, hm the masked h_{t-1}. The panels hold [b; W; U] (1 + F +
 * U rows): a step's product x_t W + b + (h rm) U is one pass over them. With a folded embedding
 * (idx, the batch's indices (B, T), not NULL) the panels hold U only, and a step's product
 * starts from the rows of tab = E W + b that its indices pick. */
static void lstm_steps_forward(const rnn_dims *d, const rnn_scratch *s, const float *W,
                               const float *Uw, const float *bias, int rdrop,
                               const int32_t *idx) {
    const int64_t B = d->B, T = d->T, F = d->F, U = d->U, GU = d->GU, BU = B * U,
                  nq = panels_of(U), UP = nq * NR, ldp = 4 * UP, FP = idx ? 0 : 1 + F,
                  PS = (FP + U) * NR; /* FP: the panels' rows before U's */
    const int act = d->act, ract = d->ract,
              fast = act == PN_RNN_ACT_TANH && ract == PN_RNN_ACT_SIGMOID, nt = step_threads(d);
    spin_barrier bar;
    atomic_init(&bar.arrived, 0u);
    atomic_init(&bar.gen, 0u);
#pragma omp parallel num_threads(nt) if (nt > 1)
    {
        int k, n;
        thread_id(&k, &n);
        const unit_slice o = slice_of(U, k, n);
        const int64_t u0 = o.u0, w = o.u1 - o.u0;
        for (int g = 0; g < 4; g++)
            for (int64_t q = o.q0; q < o.q1; q++) {
                float *restrict bp = s->pk + (g * nq + q) * PS;
                for (int64_t j = 0; j < NR; j++) {
                    const int64_t col = g * U + q * NR + j, in = q * NR + j < U;
                    if (FP) bp[j] = in && bias ? bias[col] : 0.0f;
                    for (int64_t kk = 0; FP && kk < F; kk++)
                        bp[(1 + kk) * NR + j] = in ? W[kk * GU + col] : 0.0f;
                    for (int64_t kk = 0; kk < U; kk++)
                        bp[(FP + kk) * NR + j] = in ? Uw[kk * GU + col] : 0.0f;
                }
            }
        if (idx) /* the product's columns past U stay zero; the gathers fill the others */
            for (int64_t b = 0; b < B; b++)
                for (int g = 0; g < 4; g++)
                    memset(s->prod + b * ldp + g * UP + o.u1, 0,
                           (size_t)(o.q1 * NR - o.u1) * sizeof(float));
        if (rdrop)
            for (int64_t i = 0; i < B; i++)
                for (int64_t j = u0; j < u0 + w; j++)
                    s->hm[i * U + j] = s->hs[i * U + j] * s->rm[i * U + j];
        spin_wait(&bar, n);
        for (int64_t t = 0; t < T; t++) {
            const float *hp = (rdrop ? s->hm : s->hs) + t * BU; /* h_{t-1} rm, all units */
            const int64_t src = d->back ? T - 1 - t : t;
            for (int64_t b = 0; idx && b < B; b++) {
                const float *restrict row = s->tab + (int64_t)idx[b * T + src] * GU + u0;
                for (int g = 0; g < 4; g++)
                    memcpy(s->prod + b * ldp + g * UP + u0, row + g * U,
                           (size_t)w * sizeof(float));
            }
            for (int g = 0; g < 4; g++) {
                float *c = s->prod + g * UP + o.q0 * NR;
                const float *bp = s->pk + (g * nq + o.q0) * PS;
                if (idx)
                    panels_product(c, ldp, bp, PS, START_C, o.q1 - o.q0, B, U, hp, U, 0, hp, U);
                else
                    panels_product(c, ldp, bp, PS, START_ROW, o.q1 - o.q0, B, F,
                                   s->xt + t * B * F, F, U, hp, U);
            }
            float *gt = s->gx + t * B * GU, *c = s->cs + (t + 1) * BU, *tc = s->aux + t * BU,
                  *h = s->hs + (t + 1) * BU;
            const float *cp = s->cs + t * BU;
            for (int64_t b = 0; b < B; b++) {
                float *gb = gt + b * GU + u0;
                const float *pb = s->prod + b * ldp + u0;
                const int64_t r = b * U + u0;
                if (fast)
                    lstm_row_fast(gb, gb + U, gb + 2 * U, gb + 3 * U, c + r, tc + r, h + r,
                                  cp + r, pb, pb + UP, pb + 2 * UP, pb + 3 * UP, w);
                else
                    lstm_row(gb, gb + U, gb + 2 * U, gb + 3 * U, c + r, tc + r, h + r, cp + r,
                             pb, pb + UP, pb + 2 * UP, pb + 3 * UP, w, act, ract);
                if (rdrop && t + 1 < T) {
                    float *restrict hm = s->hm + (t + 1) * BU + r;
                    const float *restrict hv = h + r, *restrict rm = s->rm + r;
                    for (int64_t j = 0; j < w; j++) hm[j] = hv[j] * rm[j];
                }
            }
            if (t + 1 < T) spin_wait(&bar, n); /* h_t complete; the region's end waits last */
        }
    }
}

/* row[g U + j] += db[g U + j] for the four gates, j < w (row and db at a thread's first unit) */
static inline void add_gates(float *restrict row, const float *restrict db, int64_t U, int64_t w) {
    for (int g = 0; g < 4; g++)
        for (int64_t j = 0; j < w; j++) row[g * U + j] += db[g * U + j];
}

/* the lstm's steps, backward: dh, dc (dL/dh_T, dL/dc_T, in) become dL/dh_0 and dL/dc_0; dgx
 * filled for every step; dout adds the sequence's gradient (return_sequences). While dgx's
 * columns are in cache, each thread sums them into the weight gradients' columns of its units,
 * when not NULL: dbias (GU, overwritten), dW (F, GU) += xt^T dgx and dU (U, GU) += (h rm)^T dgx
 * (each zeroed first unless acc_w, acc_u), over blocks of steps of about GRAD_ROWS rows. With a
 * folded embedding (idx not NULL, dW NULL) it sums each row of dgx into the row of dtab (V, GU,
 * overwritten) that its index picks, when dtab is not NULL. */
static void lstm_steps_backward(const rnn_dims *d, const rnn_scratch *s, const float *Uw,
                                const float *dout, float *dbias, float *dW, int acc_w,
                                float *dU, int acc_u, int rdrop, const int32_t *idx,
                                float *dtab) {
    const int64_t B = d->B, T = d->T, F = d->F, U = d->U, GU = d->GU, BU = B * U, S = d->S,
                  nq = panels_of(U), UP = nq * NR, steps = B < GRAD_ROWS ? GRAD_ROWS / B : 1,
                  gk = grad_rows(B);
    const float *HP = rdrop ? s->hm : s->hs; /* h_{t-1} rm of step t at rows t B */
    const int act = d->act, ract = d->ract,
              fast = act == PN_RNN_ACT_TANH && ract == PN_RNN_ACT_SIGMOID, nt = step_threads(d);
    spin_barrier bar;
    atomic_init(&bar.arrived, 0u);
    atomic_init(&bar.gen, 0u);
#pragma omp parallel num_threads(nt) if (nt > 1)
    {
        int k, n;
        thread_id(&k, &n);
        const unit_slice o = slice_of(U, k, n);
        const int64_t u0 = o.u0, w = o.u1 - o.u0;
        for (int64_t q = o.q0; q < o.q1; q++) {
            float *restrict bp = s->pk + q * GU * NR;
            for (int64_t j = 0; j < NR; j++) {
                const float *restrict ur = Uw + (q * NR + j) * GU;
                if (q * NR + j < U)
                    for (int64_t kk = 0; kk < GU; kk++) bp[kk * NR + j] = ur[kk];
                else
                    for (int64_t kk = 0; kk < GU; kk++) bp[kk * NR + j] = 0.0f;
            }
        }
        for (int g = 0; g < 4; g++) {
            if (dbias) memset(dbias + g * U + u0, 0, (size_t)w * sizeof(float));
            for (int64_t i = 0; dW && !acc_w && i < F; i++)
                memset(dW + i * GU + g * U + u0, 0, (size_t)w * sizeof(float));
            for (int64_t i = 0; dU && !acc_u && i < U; i++)
                memset(dU + i * GU + g * U + u0, 0, (size_t)w * sizeof(float));
            for (int64_t v = 0; dtab && v < d->V; v++)
                memset(dtab + v * GU + g * U + u0, 0, (size_t)w * sizeof(float));
        }
        int64_t top = T; /* steps [t, top) have dgx, not yet in dW and dU */
        for (int64_t t = T - 1; t >= 0; t--) {
            const float *gt = s->gx + t * B * GU, *tc = s->aux + t * BU, *cp = s->cs + t * BU;
            float *dg = s->dgx + t * B * GU;
            const int64_t src = d->back ? T - 1 - t : t;
            for (int64_t b = 0; b < B; b++) {
                const int64_t r = b * U + u0;
                float *restrict dh = s->dh + r;
                if (d->rs) {
                    const float *restrict ob = dout + b * S + (d->rev ? T - 1 - t : t) * U + u0;
                    for (int64_t j = 0; j < w; j++) dh[j] += ob[j];
                }
                const float *gb = gt + b * GU + u0;
                float *db = dg + b * GU + u0;
                if (fast)
                    lstm_row_bwd(db, db + U, db + 2 * U, db + 3 * U, s->dc + r, gb, gb + U,
                                 gb + 2 * U, gb + 3 * U, tc + r, cp + r, dh, w, PN_RNN_ACT_TANH,
                                 PN_RNN_ACT_SIGMOID);
                else
                    lstm_row_bwd(db, db + U, db + 2 * U, db + 3 * U, s->dc + r, gb, gb + U,
                                 gb + 2 * U, gb + 3 * U, tc + r, cp + r, dh, w, act, ract);
                if (dbias) add_gates(dbias + u0, db, U, w);
                if (dtab) add_gates(dtab + (int64_t)idx[b * T + src] * GU + u0, db, U, w);
            }
            if (top - t >= steps || t == 0) {
                const int64_t K = (top - t) * B;
                if (dW || dU)
                    grad_columns(dW, dW ? s->xt + t * B * F : NULL, F, dU, HP + t * BU, dg, K, U,
                                 u0, w, s->gbuf + k * gk * NR);
                top = t;
            }
            spin_wait(&bar, n); /* dgx_t complete */
            /* dh_{t-1} = (dgx_t U^T) rm, this thread's units */
            panels_product(s->prod + o.q0 * NR, UP, s->pk + o.q0 * GU * NR, GU * NR, START_ZERO,
                           o.q1 - o.q0, B, GU, dg, GU, 0, dg, GU);
            for (int64_t b = 0; b < B; b++) {
                float *restrict dh = s->dh + b * U + u0;
                const float *restrict pv = s->prod + b * UP + u0, *restrict rm = s->rm + b * U + u0;
                if (rdrop)
                    for (int64_t j = 0; j < w; j++) dh[j] = pv[j] * rm[j];
                else
                    for (int64_t j = 0; j < w; j++) dh[j] = pv[j];
            }
        }
    }
}

static void rnn_forward(const pn_node *n, const pn_ctx *c) {
    rnn_dims d = rnn_get(n, c->in_node[0], c->batch);
    d.V = c->fold_rows;
    rnn_scratch s;
    rnn_layout(&d, c->scratch, &s);
    const int64_t B = d.B, T = d.T, F = d.F, U = d.U, GU = d.GU, TB = T * B;
    const float *x = c->in[0];                 /* (B, T, F) */
    const float *W = c->var[0];                /* (F, GU) */
    const float *Uw = c->var[1];               /* (U, GU) */
    const float *bias = n->n_var == 3 ? c->var[2] : NULL; /* (GU) or (2, GU) */
    const int drop = c->training && d.drop > 0.0f, rdrop = c->training && d.rdrop > 0.0f;

    make_mask(s.dm, B * F, pn_hash64(c->seed, 1), d.drop, drop);
    make_mask(s.rm, B * U, pn_hash64(c->seed, 2), d.rdrop, rdrop);

    /* a folded embedding's table times the kernel, once: tab = E W + b (V, GU) */
    if (d.V) pn_gemm_bias(d.V, GU, F, c->fold_table, F, W, GU, bias, s.tab, GU);
    /* xt[t, b] = x[b, step t's index] dm[b]; gx = xt W + b_in */
    if (!d.V) {
#pragma omp parallel for ROWS_PAR(TB, F)
        for (int64_t tb = 0; tb < TB; tb++) {
            int64_t t = tb / B, b = tb % B, src = d.back ? T - 1 - t : t;
            const float *restrict xr = x + (b * T + src) * F, *restrict mr = s.dm + b * F;
            float *restrict o = s.xt + tb * F;
            for (int64_t f = 0; f < F; f++) o[f] = xr[f] * mr[f];
        }
    }
    if (d.cell != CELL_LSTM && d.V) { /* gx = the rows of tab that the indices pick */
        const int32_t *idx = c->fold_idx;
#pragma omp parallel for ROWS_PAR(TB, GU / 8)
        for (int64_t tb = 0; tb < TB; tb++) {
            int64_t t = tb / B, b = tb % B, src = d.back ? T - 1 - t : t;
            memcpy(s.gx + tb * GU, s.tab + (int64_t)idx[b * T + src] * GU,
                   (size_t)GU * sizeof(float));
        }
    } else if (d.cell != CELL_LSTM) { /* the lstm's steps multiply x_t W themselves */
        float beta = 0.0f;
        if (bias) {
#pragma omp parallel for ROWS_PAR(TB, GU / 8)
            for (int64_t r = 0; r < TB; r++)
                memcpy(s.gx + r * GU, bias, (size_t)GU * sizeof(float));
            beta = 1.0f;
        }
        pn_gemm(0, 0, TB, GU, F, 1.0f, s.xt, F, W, GU, beta, s.gx, GU);
    }

    /* initial states */
    if (n->n_in > 1) memcpy(s.hs, c->in[1], (size_t)(B * U) * sizeof(float));
    else memset(s.hs, 0, (size_t)(B * U) * sizeof(float));
    if (d.cell == CELL_LSTM) {
        if (n->n_in > 2) memcpy(s.cs, c->in[2], (size_t)(B * U) * sizeof(float));
        else memset(s.cs, 0, (size_t)(B * U) * sizeof(float));
    }
    const float *brec = (bias && d.cell == CELL_GRU && d.reset_after) ? bias + GU : NULL;

    if (d.cell == CELL_LSTM)
        lstm_steps_forward(&d, &s, W, Uw, bias, rdrop, d.V ? c->fold_idx : NULL);
    for (int64_t t = 0; d.cell != CELL_LSTM && t < T; t++) {
        const float *hprev = s.hs + t * B * U; /* h_{t-1} (B, U) */
        float *h = s.hs + (t + 1) * B * U;
        const float *hp = hprev;               /* h_{t-1} rm: what multiplies U */
        if (rdrop) {
            float *restrict hm = s.hm + t * B * U;
            for (int64_t i = 0; i < B * U; i++) hm[i] = hprev[i] * s.rm[i];
            hp = hm;
        }
        float *g = s.gx + t * B * GU;          /* (B, GU) */
        if (d.cell == CELL_SIMPLE) {
            pn_gemm(0, 0, B, GU, U, 1.0f, hp, U, Uw, GU, 1.0f, g, GU);
            act_inplace(g, B * U, d.act);
            memcpy(h, g, (size_t)(B * U) * sizeof(float));
        } else if (d.reset_after) {
            float *st = s.step;                /* s = hp U + b_rec (B, 3U) */
            if (brec)
                for (int64_t b = 0; b < B; b++) memcpy(st + b * GU, brec, (size_t)GU * sizeof(float));
            pn_gemm(0, 0, B, GU, U, 1.0f, hp, U, Uw, GU, brec ? 1.0f : 0.0f, st, GU);
            float *aux = s.aux + t * B * U;
#pragma omp parallel for ROWS_PAR(B, 3 * U)
            for (int64_t b = 0; b < B; b++) {
                float *restrict gz = g + b * GU, *restrict gr = gz + U, *restrict gh = gz + 2 * U;
                const float *restrict sz = st + b * GU, *restrict sr = sz + U,
                                      *restrict sh = sz + 2 * U, *restrict hpv = hprev + b * U;
                float *restrict ab = aux + b * U, *restrict hb = h + b * U;
                for (int64_t j = 0; j < U; j++) {
                    float z = act_f(gz[j] + sz[j], d.ract), r = act_f(gr[j] + sr[j], d.ract);
                    float hh = act_f(gh[j] + r * sh[j], d.act);
                    gz[j] = z, gr[j] = r, gh[j] = hh, ab[j] = sh[j];
                    hb[j] = z * hpv[j] + (1.0f - z) * hh;
                }
            }
        } else {
            float *st = s.step;                /* s[:, :2U] = hp U[:, :2U]; then (r hp) U[:, 2U:] */
            pn_gemm(0, 0, B, 2 * U, U, 1.0f, hp, U, Uw, GU, 0.0f, st, GU);
            float *aux = s.aux + t * B * U;
#pragma omp parallel for ROWS_PAR(B, 2 * U)
            for (int64_t b = 0; b < B; b++) {
                float *restrict gz = g + b * GU, *restrict gr = gz + U;
                const float *restrict sz = st + b * GU, *restrict sr = sz + U,
                                      *restrict hpb = hp + b * U;
                float *restrict ab = aux + b * U;
                for (int64_t j = 0; j < U; j++) {
                    float z = act_f(gz[j] + sz[j], d.ract), r = act_f(gr[j] + sr[j], d.ract);
                    gz[j] = z, gr[j] = r, ab[j] = r * hpb[j];
                }
            }
            pn_gemm(0, 0, B, U, U, 1.0f, aux, U, Uw + 2 * U, GU, 0.0f, st + 2 * U, GU);
#pragma omp parallel for ROWS_PAR(B, U)
            for (int64_t b = 0; b < B; b++) {
                float *restrict gz = g + b * GU, *restrict gh = gz + 2 * U;
                const float *restrict sh = st + b * GU + 2 * U, *restrict hpv = hprev + b * U;
                float *restrict hb = h + b * U;
                for (int64_t j = 0; j < U; j++) {
                    float hh = act_f(gh[j] + sh[j], d.act), z = gz[j];
                    gh[j] = hh;
                    hb[j] = z * hpv[j] + (1.0f - z) * hh;
                }
            }
        }
    }

    /* out[b] = the sequence (or h_T), then h_T (and c_T) */
    float *out = c->out;
    const int64_t S = d.S, seq = d.rs ? T * U : U;
    for (int64_t b = 0; b < B; b++) {
        float *o = out + b * S;
        if (d.rs)
            for (int64_t t = 0; t < T; t++) /* step t's h, at t or (reversed) T - 1 - t */
                memcpy(o + (d.rev ? T - 1 - t : t) * U, s.hs + ((t + 1) * B + b) * U,
                       (size_t)U * sizeof(float));
        else
            memcpy(o, s.hs + (T * B + b) * U, (size_t)U * sizeof(float));
        if (d.rstate) {
            memcpy(o + seq, s.hs + (T * B + b) * U, (size_t)U * sizeof(float));
            if (d.cell == CELL_LSTM)
                memcpy(o + seq + U, s.cs + (T * B + b) * U, (size_t)U * sizeof(float));
        }
    }
}

/* dtab (V, GU) = the rows of dgx (T B, GU, processing order) summed by the index of their step
 * and sample (a folded embedding's); column blocks split over the threads, rows in order, so the
 * sums do not depend on the thread count */
static void sum_rows_by_index(float *dtab, const float *dgx, const int32_t *idx,
                              const rnn_dims *d) {
    const int64_t B = d->B, T = d->T, TB = T * B, GU = d->GU, blocks = (GU + 63) / 64;
#pragma omp parallel for ROWS_PAR(TB, GU / 8)
    for (int64_t k = 0; k < blocks; k++) {
        const int64_t j0 = k * 64, w = j0 + 64 < GU ? 64 : GU - j0;
        for (int64_t v = 0; v < d->V; v++)
            memset(dtab + v * GU + j0, 0, (size_t)w * sizeof(float));
        for (int64_t tb = 0; tb < TB; tb++) {
            const int64_t t = tb / B, b = tb % B, src = d->back ? T - 1 - t : t;
            float *restrict o = dtab + (int64_t)idx[b * T + src] * GU + j0;
            const float *restrict g = dgx + tb * GU + j0;
            for (int64_t j = 0; j < w; j++) o[j] += g[j];
        }
    }
}

/* ---- backward -------------------------------------------------------------------------------
 * With dh = dL/dh_t (from the output and step t+1) and, for lstm, dc = dL/dc_t:
 *   simple_rnn  dgx_t = dh act'(h);  dh_{t-1} = (dgx_t U^T) rm
 *   lstm        dc += dh o act'(tc);  dgx_t = [dc g sig'(i), dc c_{t-1} sig'(f), dc i act'(g),
 *               dh tc sig'(o)];  dc_{t-1} = dc f;  dh_{t-1} = (dgx_t U^T) rm
 *   gru         dhh = dh (1 - z) act'(hh),  dz = dh (h_{t-1} - hh) sig'(z)
 *               reset_after: dr = dhh s_h sig'(r);  dgh_t = [dz dr dhh r];  dgx_t = [dz dr dhh]
 *                            dh_{t-1} = dh z + (dgh_t U^T) rm
 *               otherwise:   da = dhh U_h^T (a = r hp);  dr = da hp sig'(r);  dgx_t = [dz dr dhh]
 *                            dh_{t-1} = dh z + (da r + dgx_t[:, :2U] U[:, :2U]^T) rm
 * then over all steps at once: dW = xt^T dgx, dU = hp^T dgx (dgh; gru without reset_after:
 * hp^T dgx[:, :2U] and a^T dgx[:, 2U:]), db = column sums, dx = (dgx W^T) dm, un-reversed.
 */
static void rnn_backward(const pn_node *n, const pn_ctx *c) {
    rnn_dims d = rnn_get(n, c->in_node[0], c->batch);
    d.V = c->fold_rows;
    rnn_scratch s;
    rnn_layout(&d, c->scratch, &s);
    const int64_t B = d.B, T = d.T, F = d.F, U = d.U, GU = d.GU, TB = T * B, BU = B * U;
    const float *W = c->var[0], *Uw = c->var[1];
    const float *dout = c->dout;
    const int rdrop = c->training && d.rdrop > 0.0f;
    const int64_t S = d.S, seq = d.rs ? T * U : U;

    /* dh = dL/dh_T from the last output and the state; dc = dL/dc_T */
    memset(s.dh, 0, (size_t)BU * sizeof(float));
    memset(s.dc, 0, (size_t)BU * sizeof(float));
    for (int64_t b = 0; b < B; b++) {
        const float *o = dout + b * S;
        float *restrict dh = s.dh + b * U, *restrict dc = s.dc + b * U;
        if (!d.rs)
            for (int64_t j = 0; j < U; j++) dh[j] += o[j];
        if (d.rstate) {
            for (int64_t j = 0; j < U; j++) dh[j] += o[seq + j];
            if (d.cell == CELL_LSTM)
                for (int64_t j = 0; j < U; j++) dc[j] += o[seq + U + j];
        }
    }

    /* the lstm's bias gradient, summed in its steps into step (GU) */
    float *lstm_db = d.cell == CELL_LSTM && n->n_var == 3 && c->dvar[2] ? s.step : NULL;
    /* with a folded embedding, dgx summed by index: dtab, from which dW and dE follow */
    float *dtab = d.V && (c->dvar[0] || c->fold_dtable) ? s.dtab : NULL;
    if (d.cell == CELL_LSTM) /* it also fills dW (without a folded embedding), dU and db */
        lstm_steps_backward(&d, &s, Uw, dout, lstm_db, d.V ? NULL : c->dvar[0], c->acc_var[0],
                            c->dvar[1], c->acc_var[1], rdrop, c->fold_idx, dtab);

    for (int64_t t = T - 1; d.cell != CELL_LSTM && t >= 0; t--) {
        if (d.rs)
            for (int64_t b = 0; b < B; b++) {
                const float *restrict o = dout + b * S + (d.rev ? T - 1 - t : t) * U;
                float *restrict dh = s.dh + b * U;
                for (int64_t j = 0; j < U; j++) dh[j] += o[j];
            }
        const float *g = s.gx + t * B * GU, *hprev = s.hs + t * BU;
        const float *hp = rdrop ? s.hm + t * BU : hprev;
        float *dg = s.dgx + t * B * GU;
        if (d.cell == CELL_SIMPLE) {
            const float *restrict h = s.hs + (t + 1) * BU;
            const float *restrict dh = s.dh;
            for (int64_t i = 0; i < BU; i++) dg[i] = dh[i] * act_d(h[i], d.act);
            pn_gemm(0, 1, B, U, GU, 1.0f, dg, GU, Uw, GU, 0.0f, s.dt1, U);
        } else if (d.reset_after) {
            const float *aux = s.aux + t * BU;
            float *dgh = s.dgh + t * B * GU;
#pragma omp parallel for ROWS_PAR(B, 3 * U)
            for (int64_t b = 0; b < B; b++) {
                const float *restrict gz = g + b * GU, *restrict gr = gz + U,
                                      *restrict gh = gz + 2 * U, *restrict sh = aux + b * U,
                                      *restrict hpv = hprev + b * U;
                float *restrict dx = dg + b * GU, *restrict dhh_ = dgh + b * GU;
                float *restrict dh = s.dh + b * U;
                for (int64_t j = 0; j < U; j++) {
                    float z = gz[j], r = gr[j], hh = gh[j], dhv = dh[j];
                    float dhh = dhv * (1.0f - z) * act_d(hh, d.act);
                    float dz = dhv * (hpv[j] - hh) * act_d(z, d.ract);
                    float dr = dhh * sh[j] * act_d(r, d.ract);
                    dx[j] = dz, dx[U + j] = dr, dx[2 * U + j] = dhh;
                    dhh_[j] = dz, dhh_[U + j] = dr, dhh_[2 * U + j] = dhh * r;
                    dh[j] = dhv * z; /* the direct path; the product's part is added below */
                }
            }
            pn_gemm(0, 1, B, U, GU, 1.0f, dgh, GU, Uw, GU, 0.0f, s.dt1, U);
        } else {
            /* dhh and dz first, then da = dhh U_h^T, then dr and the rest */
#pragma omp parallel for ROWS_PAR(B, 2 * U)
            for (int64_t b = 0; b < B; b++) {
                const float *restrict gz = g + b * GU, *restrict gh = gz + 2 * U,
                                      *restrict hpv = hprev + b * U;
                float *restrict dx = dg + b * GU;
                const float *restrict dh = s.dh + b * U;
                for (int64_t j = 0; j < U; j++) {
                    float z = gz[j], hh = gh[j], dhv = dh[j];
                    dx[2 * U + j] = dhv * (1.0f - z) * act_d(hh, d.act);
                    dx[j] = dhv * (hpv[j] - hh) * act_d(z, d.ract);
                }
            }
            pn_gemm(0, 1, B, U, U, 1.0f, dg + 2 * U, GU, Uw + 2 * U, GU, 0.0f, s.dt2, U);
#pragma omp parallel for ROWS_PAR(B, 2 * U)
            for (int64_t b = 0; b < B; b++) {
                const float *restrict gz = g + b * GU, *restrict gr = gz + U,
                                      *restrict hpb = hp + b * U, *restrict da = s.dt2 + b * U;
                float *restrict dx = dg + b * GU, *restrict dh = s.dh + b * U,
                                *restrict dt = s.dt1 + b * U;
                for (int64_t j = 0; j < U; j++) {
                    float r = gr[j];
                    dx[U + j] = da[j] * hpb[j] * act_d(r, d.ract);
                    dt[j] = da[j] * r;
                    dh[j] = dh[j] * gz[j];
                }
            }
            pn_gemm(0, 1, B, U, 2 * U, 1.0f, dg, GU, Uw, GU, 1.0f, s.dt1, U);
        }
        /* dh_{t-1} = (direct part, gru) + dt1 rm */
        float *restrict dh = s.dh;
        const float *restrict dt = s.dt1, *restrict rm = s.rm;
        if (d.cell == CELL_GRU)
            for (int64_t i = 0; i < BU; i++) dh[i] += dt[i] * rm[i];
        else
            for (int64_t i = 0; i < BU; i++) dh[i] = dt[i] * rm[i];
    }

    /* the initial states' gradients */
    if (n->n_in > 1 && c->din[1]) {
        float *restrict o = c->din[1];
        for (int64_t i = 0; i < BU; i++) o[i] = c->acc_in[1] ? o[i] + s.dh[i] : s.dh[i];
    }
    if (n->n_in > 2 && c->din[2]) {
        float *restrict o = c->din[2];
        for (int64_t i = 0; i < BU; i++) o[i] = c->acc_in[2] ? o[i] + s.dc[i] : s.dc[i];
    }

    /* weights, over all steps at once */
    const float *HP = rdrop ? s.hm : s.hs; /* h_{t-1} rm of every step: (T B, U) */
    if (dtab) {
        if (d.cell != CELL_LSTM) sum_rows_by_index(dtab, s.dgx, c->fold_idx, &d);
        if (c->dvar[0]) /* dW = E^T dtab */
            pn_gemm(1, 0, F, GU, d.V, 1.0f, c->fold_table, F, dtab, GU,
                    c->acc_var[0] ? 1.0f : 0.0f, c->dvar[0], GU);
        if (c->fold_dtable) /* dE = dtab W^T */
            pn_gemm(0, 1, d.V, F, GU, 1.0f, dtab, GU, W, GU, c->fold_acc ? 1.0f : 0.0f,
                    c->fold_dtable, F);
    }
    if (c->dvar[0] && d.cell != CELL_LSTM && !d.V)
        pn_gemm(1, 0, F, GU, TB, 1.0f, s.xt, F, s.dgx, GU, c->acc_var[0] ? 1.0f : 0.0f,
                c->dvar[0], GU);
    if (c->dvar[1] && d.cell != CELL_LSTM) {
        float beta = c->acc_var[1] ? 1.0f : 0.0f;
        if (d.cell == CELL_GRU && d.reset_after) {
            pn_gemm(1, 0, U, GU, TB, 1.0f, HP, U, s.dgh, GU, beta, c->dvar[1], GU);
        } else if (d.cell == CELL_GRU) {
            pn_gemm(1, 0, U, 2 * U, TB, 1.0f, HP, U, s.dgx, GU, beta, c->dvar[1], GU);
            pn_gemm(1, 0, U, U, TB, 1.0f, s.aux, U, s.dgx + 2 * U, GU, beta, c->dvar[1] + 2 * U,
                    GU);
        } else {
            pn_gemm(1, 0, U, GU, TB, 1.0f, HP, U, s.dgx, GU, beta, c->dvar[1], GU);
        }
    }
    if (lstm_db) {
        float *restrict db = c->dvar[2];
        for (int64_t j = 0; j < GU; j++) db[j] = c->acc_var[2] ? db[j] + lstm_db[j] : lstm_db[j];
    } else if (n->n_var == 3 && c->dvar[2]) { /* column sums of dgx (and dgh), columns split */
        float *db = c->dvar[2];
        const int rows = d.cell == CELL_GRU && d.reset_after ? 2 : 1, acc = c->acc_var[2];
        const int64_t blocks = (GU + 63) / 64;
#pragma omp parallel for ROWS_PAR(TB, GU / 8)
        for (int64_t k = 0; k < rows * blocks; k++) {
            const float *src = k < blocks ? s.dgx : s.dgh;
            int64_t j0 = (k % blocks) * 64, j1 = j0 + 64 < GU ? j0 + 64 : GU;
            float *restrict o = db + (k < blocks ? 0 : GU);
            float sum[64] = {0};
            for (int64_t r = 0; r < TB; r++) {
                const float *restrict g = src + r * GU;
                for (int64_t j = j0; j < j1; j++) sum[j - j0] += g[j];
            }
            for (int64_t j = j0; j < j1; j++) o[j] = acc ? o[j] + sum[j - j0] : sum[j - j0];
        }
    }
    if (c->din[0]) {
        pn_gemm(0, 1, TB, F, GU, 1.0f, s.dgx, GU, W, GU, 0.0f, s.dxt, F);
        float *dx = c->din[0];
        const int acc = c->acc_in[0];
#pragma omp parallel for ROWS_PAR(TB, F)
        for (int64_t tb = 0; tb < TB; tb++) {
            int64_t t = tb / B, b = tb % B, src = d.back ? T - 1 - t : t;
            float *restrict o = dx + (b * T + src) * F;
            const float *restrict v = s.dxt + tb * F, *restrict mr = s.dm + b * F;
            if (acc)
                for (int64_t f = 0; f < F; f++) o[f] += v[f] * mr[f];
            else
                for (int64_t f = 0; f < F; f++) o[f] = v[f] * mr[f];
        }
    }
}

const pn_op_def pn_op_simple_rnn_def = {"simple_rnn", rnn_shape, rnn_forward, rnn_backward,
                                        rnn_scratch_size, PN_OPF_BWD_NO_IN | PN_OPF_BWD_NO_OUT};
const pn_op_def pn_op_lstm_def = {"lstm", rnn_shape, rnn_forward, rnn_backward, rnn_scratch_size,
                                  PN_OPF_BWD_NO_IN | PN_OPF_BWD_NO_OUT};
const pn_op_def pn_op_gru_def = {"gru", rnn_shape, rnn_forward, rnn_backward, rnn_scratch_size,
                                 PN_OPF_BWD_NO_IN | PN_OPF_BWD_NO_OUT};
