/*
 * ops_rnn.c: recurrent layers over whole sequences (Keras 3 SimpleRNN, LSTM, GRU): the sequence
 * machinery the three cells share (shapes, scratch, dropout masks, the input projection, the time
 * loop, the outputs, the gradients around the steps). Each cell's steps are in its own file:
 * ops_simple_rnn.c, ops_lstm.c, ops_gru.c; what they share with this file is ops_rnn.h. Their
 * packed outputs (return_state) are split by slice nodes (ops_shape.c).
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
 *                                 [8] the last input is a step mask m (T)
 *                                 [9] zero_output_for_mask (flags: 0 or 1)
 *                                 [10] stateful (0 or 1): the last variables are the states
 *                                     h (B0, U) and, for lstm, c (B0, U), Keras's layer.states
 *                                     (stateful=True): with no initial state among the inputs
 *                                     the recurrence starts from them, and every forward
 *                                     (training or not) writes the final states into them.
 *                                     They take no gradient; a run must have batch B0.
 *                           fattr [0] dropout          [1] recurrent_dropout, each in [0, 1)
 *                           inputs  x (T, F), then optionally the initial states h0 (U) and,
 *                                   for lstm, c0 (U), then with iattr[8] the mask m (T),
 *                                   float32, nonzero: keep the step
 *                           vars    kernel (F, GU), recurrent_kernel (U, GU), optional bias:
 *                                   (GU), or (2, GU) for gru with reset_after (input, recurrent),
 *                                   then with iattr[10] the states
 *
 * Output per sample: the sequence (T, U) (in processing order: reversed with go_backwards, as
 * Keras) or the last h (U); with return_state the same values flat, followed by h_T and, for
 * lstm, c_T: (T U or U) + (1 or 2) U values, which slice nodes split into the layer's outputs.
 *
 * Keras 3 cells (gates in Keras's column order, x_t masked by the dropout mask dm, h_{t-1} by
 * the recurrent one rm in the recurrent product only; one mask per sample for all steps); each
 * cell's file gives its backward:
 *   simple_rnn  h = act(x W + b + (h rm) U)                                  (ops_simple_rnn.c)
 *   lstm        [i f g o] = [sig sig act sig](x W + b + (h rm) U)            (ops_lstm.c)
 *               c = f c + i g,  h = o act(c)
 *   gru         reset_after: [az ar] = x W[:, :2U] + b_in,  ah = x W[:, 2U:] + b_in  (ops_gru.c)
 *                            s = (h rm) U + b_rec;   z = sig(az + s_z), r = sig(ar + s_r)
 *                            hh = act(ah + r s_h)
 *               otherwise:   s = (h rm) U[:, :2U],  z, r as above (one bias, on x W)
 *                            hh = act(ah + (r (h rm)) U[:, 2U:])
 *               h = z h_prev + (1 - z) hh
 *
 * Step mask (Keras 3's mask argument, as keras/src/backend/jax/rnn.py applies it): where
 * m[b, t] == 0 step t of sample b is the identity on the states (h_t = h_{t-1}, c_t = c_{t-1})
 * and its output is the previous one, h_{t-1} (at t = 0 the initial state), or zeros with
 * zero_output_for_mask; the output without return_sequences is the last step's. The mask is read
 * in processing order, like x (m[b, T-1-t] at step t with go_backwards). Backward is the
 * derivative of that: a masked step passes dL/dh_t (dL/dc_t) on to dL/dh_{t-1} (dL/dc_{t-1})
 * and its gate gradients dgx are zero, so nothing reaches the weights or x_t from it; with
 * zero_output_for_mask its output's gradient is dropped. The mask gets no gradient. The forward
 * copies it to mk, since backward does not read the inputs (PN_OPF_BWD_NO_IN).
 *
 * A forward: pn_rnn_forward_begin (masks, xt, gx = xt W + b, initial states), the cell's steps
 * (simple_rnn and gru through pn_rnn_steps_forward, one step function each; the lstm its own
 * threaded loop), pn_rnn_forward_end (the output). A backward: pn_rnn_backward_begin (dh, dc
 * from the output's gradient), the cell's steps back and its dU, pn_rnn_backward_end (initial
 * states, dW, db, dx, a folded table).
 *
 * Layout: the steps run time-major. The forward copies x into xt (T, B, F) in processing order
 * (masked), so the input projection of every step is one GEMM, gx (T B, GU) = xt W, and step t's
 * gates are the contiguous block gx[t] (B, GU) that its one GEMM (h rm) U adds into. The fused
 * gate pass then overwrites gx[t] with the activated gates, which backward reads; hs (T+1, B, U)
 * keeps h_0..h_T, so the h_{t-1} of every step form one (T B, U) matrix and dU is one GEMM, as
 * are dW = xt^T dgx and dxt = dgx W^T. The lstm runs its steps on persistent threads instead
 * (ops_lstm.c): one parallel region per direction, U packed once into panels, x_t W + b +
 * (h rm) U one pass of a register-blocked kernel per step, one barrier per step; gx then only
 * receives the activated gates, and the backward adds dgx into dW, dU and db every few steps
 * while it is in cache (only dxt stays a GEMM).
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
 *   | pk 4 UP (1 + F + U) | prod B 4 UP | gbuf UP pn_rnn_grad_rows(B) | tab V GU | dtab V GU
 *   | mk T B | sdh B U
 * (xt and dxt: none with a folded embedding; tab and dtab: only with one; mk and sdh: only with
 * a step mask, sdh not for lstm)
 * aux: lstm act(c_t); gru s_h (reset_after) or r (h rm). hm: h_{t-1} rm (with recurrent
 * dropout). cs: lstm only. dgh: gru reset_after only (the gradient of s differs from gx's).
 * pk, prod: lstm only, U's panels and a step's product (UP: U rounded up to whole panels of 16);
 * gbuf (UP pn_rnn_grad_rows(B)): lstm only, a block of dgx's columns per thread; the lstm's
 * backward sums the bias gradient into step. mk: the step mask as 1 (keep) or 0, in processing
 * order; sdh: simple_rnn's and gru's dh of the masked samples while a step runs back (the lstm
 * skips a masked row's step in its own loop instead).
 */
#include "ops_rnn.h"

#include <string.h>

/* ---- gate activations by name (the layers' activation and recurrent_activation) ------------ */

static const char *const rnn_act_names[PN_RNN_ACT_COUNT] = {
    [PN_RNN_ACT_LINEAR] = "linear", [PN_RNN_ACT_TANH] = "tanh", [PN_RNN_ACT_SIGMOID] = "sigmoid",
    [PN_RNN_ACT_RELU] = "relu",     [PN_RNN_ACT_HARD_SIGMOID] = "hard_sigmoid"};

int pn_rnn_activation_find(const char *name) {
    for (int a = 0; a < PN_RNN_ACT_COUNT; a++)
        if (strcmp(rnn_act_names[a], name) == 0) return a;
    return -1;
}

/* ---- shapes and the scratch layout --------------------------------------------------------- */

static int cell_of(int op) {
    return op == PN_OP_LSTM ? PN_RNN_LSTM : op == PN_OP_GRU ? PN_RNN_GRU : PN_RNN_SIMPLE;
}
static int gates_of(int cell) { return cell == PN_RNN_LSTM ? 4 : cell == PN_RNN_GRU ? 3 : 1; }
static int states_of(int cell) { return cell == PN_RNN_LSTM ? 2 : 1; }

static pn_rnn_dims rnn_get(const pn_node *n, const pn_node *x, int64_t B) {
    pn_rnn_dims d = {.cell = cell_of(n->op), .B = B, .T = x->shape[0], .F = x->shape[1],
                     .U = n->iattr[0], .rs = n->iattr[1], .back = n->iattr[2],
                     .rstate = n->iattr[3], .act = n->iattr[4], .ract = n->iattr[5],
                     .reset_after = n->iattr[6], .rev = n->iattr[7], .drop = n->fattr[0],
                     .rdrop = n->fattr[1], .step_mask = n->iattr[8],
                     .zero_masked = n->iattr[9], .stateful = n->iattr[10]};
    d.states_in = n->n_in - 1 - d.step_mask;
    d.bias = pn_rnn_has_bias(n);
    d.G = gates_of(d.cell);
    d.GU = d.G * d.U;
    d.S = (d.rs ? d.T * d.U : d.U) + (d.rstate ? states_of(d.cell) * d.U : 0);
    return d;
}

/* Places the buffers in scratch (s may be NULL: only the size); returns the floats needed. */
static int64_t rnn_layout(const pn_rnn_dims *d, float *s, pn_rnn_scratch *o) {
    const int64_t B = d->B, T = d->T, TB = T * B, U = d->U, lstm = d->cell == PN_RNN_LSTM;
    const int64_t UP = pn_rnn_panels(U) * PN_TILE_NR; /* U rounded up to whole panels */
    const int64_t xs = d->V ? 0 : TB * d->F; /* xt and dxt: not with a folded embedding */
    const int64_t mk = d->step_mask ? TB : 0, sdh = d->step_mask && !lstm ? B * U : 0;
    const int64_t sizes[23] = {
        xs, TB * d->GU, (T + 1) * B * U, lstm ? (T + 1) * B * U : 0,
        TB * U, d->rdrop > 0.0f ? TB * U : 0, B * d->F, B * U,
        TB * d->GU, d->cell == PN_RNN_GRU && d->reset_after ? TB * d->GU : 0,
        B * U, B * U, B * U, B * U, B * d->GU, xs, lstm ? 4 * UP * (1 + d->F + U) : 0,
        lstm ? B * 4 * UP : 0, lstm ? UP * pn_rnn_grad_rows(B) : 0, d->V * d->GU, d->V * d->GU,
        mk, sdh};
    float **slots[23] = {&o->xt, &o->gx, &o->hs, &o->cs, &o->aux, &o->hm, &o->dm, &o->rm,
                         &o->dgx, &o->dgh, &o->dh, &o->dc, &o->dt1, &o->dt2, &o->step, &o->dxt,
                         &o->pk, &o->prod, &o->gbuf, &o->tab, &o->dtab, &o->mk, &o->sdh};
    int64_t off = 0;
    for (int i = 0; i < 23; i++) {
        if (s) *slots[i] = sizes[i] ? s + off : NULL;
        off += (sizes[i] + 15) / 16 * 16; /* each buffer 64-byte aligned when scratch is */
    }
    return off;
}

int64_t pn_rnn_scratch_size(const pn_model *m, const pn_node *n, int64_t batch,
                            int training) {
    (void)training;
    pn_rnn_dims d = rnn_get(n, pn_input_node(m, n, 0), batch);
    const int e = pn_plan_fold(m, n, batch);
    if (e >= 0) d.V = m->vars[m->g->nodes[e].var[0]].shape[0];
    pn_rnn_scratch o;
    return rnn_layout(&d, NULL, &o);
}

int pn_rnn_shape(const pn_model *m, pn_node *n) {
    const char *name = pn_op_name(n->op);
    const int cell = cell_of(n->op), G = gates_of(cell), ns = states_of(cell);
    for (int a = 8; a <= 10; a++)
        if (n->iattr[a] != 0 && n->iattr[a] != 1)
            return pn_error(PN_EVALUE, "%s: %s must be 0 or 1, got %d", name,
                            a == 8 ? "the mask flag" : a == 9 ? "zero_output_for_mask"
                                                              : "stateful", n->iattr[a]);
    const int has_mask = n->iattr[8]; /* the last input is the step mask */
    if (n->n_in != 1 + has_mask && n->n_in != 1 + ns + has_mask)
        return pn_error(PN_EVALUE, "%s: takes a sequence, optionally %d initial state%s%s, got "
                        "%d inputs", name, ns, ns > 1 ? "s" : "",
                        has_mask ? " and the mask" : "", n->n_in);
    const pn_node *x = pn_input_node(m, n, 0);
    if (x->dtype != PN_F32) return pn_error(PN_ETYPE, "%s: input must be float32", name);
    if (x->ndim != 2)
        return pn_error(PN_ESHAPE, "%s: input must have rank 2 (timesteps, features) besides "
                        "the batch, got rank %d", name, x->ndim);
    int64_t T = x->shape[0], F = x->shape[1], U = n->iattr[0];
    if (U < 1) return pn_error(PN_EVALUE, "%s: units must be >= 1, got %lld", name, (long long)U);
    const int nsv = n->iattr[10] ? ns : 0; /* state variables */
    if (n->n_var != 2 + nsv && n->n_var != 3 + nsv)
        return pn_error(PN_EVALUE, "%s: takes a kernel, a recurrent kernel, an optional bias%s",
                        name, nsv ? " and the states (stateful)" : "");
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
    int ra = cell == PN_RNN_GRU ? n->iattr[6] : 0;
    if (ra != 0 && ra != 1)
        return pn_error(PN_EVALUE, "%s: reset_after must be 0 or 1, got %d", name, ra);
    for (int k = n->n_var - nsv; k < n->n_var; k++) {
        const pn_var *v = &m->vars[n->var[k]];
        if (v->ndim != 2 || v->shape[1] != U || v->shape[0] < 1 ||
            v->shape[0] != m->vars[n->var[n->n_var - nsv]].shape[0])
            return pn_error(PN_ESHAPE, "%s: a stateful layer's states must be (batch, %lld), "
                            "one batch size for all, got rank %d with %lld values", name,
                            (long long)U, v->ndim, (long long)v->size);
    }
    if (pn_rnn_has_bias(n)) {
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
    for (int j = 1; j < n->n_in - has_mask; j++) {
        const pn_node *s = pn_input_node(m, n, j);
        if (s->dtype != PN_F32 || s->ndim != 1 || s->shape[0] != U)
            return pn_error(PN_ESHAPE, "%s: initial state %d must be float32 (%lld) per sample",
                            name, j - 1, (long long)U);
    }
    if (has_mask) {
        const pn_node *mk = pn_input_node(m, n, n->n_in - 1);
        if (mk->dtype != PN_F32)
            return pn_error(PN_ETYPE, "%s: the mask must be float32 (nonzero: keep the step)",
                            name);
        if (mk->ndim != 1)
            return pn_error(PN_ESHAPE, "%s: the mask must have rank 1 (timesteps) besides the "
                            "batch, got rank %d", name, mk->ndim);
        if (mk->shape[0] != T)
            return pn_error(PN_ESHAPE, "%s: the mask has %lld timesteps, the input %lld", name,
                            (long long)mk->shape[0], (long long)T);
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

int pn_node_check_batch(const pn_model *m, const pn_node *n, int64_t batch) {
    if ((n->op != PN_OP_SIMPLE_RNN && n->op != PN_OP_LSTM && n->op != PN_OP_GRU) ||
        !n->iattr[10])
        return PN_OK;
    const int64_t B0 = m->vars[n->var[n->n_var - 1]].shape[0];
    if (batch == B0) return PN_OK;
    return pn_error(PN_ESHAPE, "%s: If an RNN is stateful, the batch size of the input sequences "
                    "must be the same as the batch size of the initial state. Expected batch "
                    "size: %lld, received batch size: %lld", pn_op_name(n->op), (long long)B0,
                    (long long)batch);
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

/* Sizes and scratch of node n in the run c */
static void rnn_begin(const pn_node *n, const pn_ctx *c, pn_rnn_dims *d, pn_rnn_scratch *s) {
    *d = rnn_get(n, c->in_node[0], c->batch);
    d->V = c->fold_rows;
    d->masked = c->training && d->rdrop > 0.0f;
    rnn_layout(d, c->scratch, s);
}

void pn_rnn_forward_begin(const pn_node *n, const pn_ctx *c, pn_rnn_dims *d, pn_rnn_scratch *s,
                          int own_input) {
    rnn_begin(n, c, d, s);
    const int64_t B = d->B, T = d->T, F = d->F, U = d->U, GU = d->GU, TB = T * B;
    const float *x = c->in[0];                 /* (B, T, F) */
    const float *W = c->var[0];                /* (F, GU) */
    const float *bias = d->bias ? c->var[2] : NULL; /* (GU) or (2, GU) */
    const int back = d->back;

    make_mask(s->dm, B * F, pn_hash64(c->seed, 1), d->drop, c->training && d->drop > 0.0f);
    make_mask(s->rm, B * U, pn_hash64(c->seed, 2), d->rdrop, d->masked);

    /* a folded embedding's table times the kernel, once: tab = E W + b (V, GU) */
    if (d->V) pn_gemm_bias(d->V, GU, F, c->fold_table, F, W, GU, bias, s->tab, GU);
    /* xt[t, b] = x[b, step t's index] dm[b]; gx = xt W + b_in */
    if (!d->V) {
        float *xt = s->xt;
        const float *dm = s->dm;
#pragma omp parallel for PN_RNN_ROWS_PAR(TB, F)
        for (int64_t tb = 0; tb < TB; tb++) {
            int64_t t = tb / B, b = tb % B, src = back ? T - 1 - t : t;
            const float *restrict xr = x + (b * T + src) * F, *restrict mr = dm + b * F;
            float *restrict o = xt + tb * F;
            for (int64_t f = 0; f < F; f++) o[f] = xr[f] * mr[f];
        }
    }
    if (!own_input && d->V) { /* gx = the rows of tab that the indices pick */
        const int32_t *idx = c->fold_idx;
        float *gx = s->gx;
        const float *tab = s->tab;
#pragma omp parallel for PN_RNN_ROWS_PAR(TB, GU / 8)
        for (int64_t tb = 0; tb < TB; tb++) {
            int64_t t = tb / B, b = tb % B, src = back ? T - 1 - t : t;
            memcpy(gx + tb * GU, tab + (int64_t)idx[b * T + src] * GU, (size_t)GU * sizeof(float));
        }
    } else if (!own_input) {
        float beta = 0.0f, *gx = s->gx;
        if (bias) {
#pragma omp parallel for PN_RNN_ROWS_PAR(TB, GU / 8)
            for (int64_t r = 0; r < TB; r++) memcpy(gx + r * GU, bias, (size_t)GU * sizeof(float));
            beta = 1.0f;
        }
        pn_gemm(0, 0, TB, GU, F, 1.0f, s->xt, F, W, GU, beta, s->gx, GU);
    }

    /* initial states: the inputs', a stateful op's kept ones, or zeros */
    const int sv = 2 + d->bias; /* a stateful op's first state variable */
    const float *h0 = d->states_in ? c->in[1] : d->stateful ? c->var[sv] : NULL;
    if (h0) memcpy(s->hs, h0, (size_t)(B * U) * sizeof(float));
    else memset(s->hs, 0, (size_t)(B * U) * sizeof(float));
    if (s->cs) { /* the lstm's cell state */
        const float *c0 = d->states_in ? c->in[2] : d->stateful ? c->var[sv + 1] : NULL;
        if (c0) memcpy(s->cs, c0, (size_t)(B * U) * sizeof(float));
        else memset(s->cs, 0, (size_t)(B * U) * sizeof(float));
    }

    /* mk[t, b] = (m[b, step t's index] != 0): a NaN keeps, as Keras's cast to bool */
    if (s->mk) {
        const float *mask = c->in[n->n_in - 1]; /* (B, T) */
        for (int64_t t = 0; t < T; t++) {
            const int64_t src = back ? T - 1 - t : t;
            for (int64_t b = 0; b < B; b++) s->mk[t * B + b] = mask[b * T + src] != 0.0f;
        }
    }
}

/* h_t = h_{t-1} in the samples whose step t is masked (simple_rnn and gru: the lstm carries
 * h and c in its own loop) */
static void carry_state(const pn_rnn_dims *d, const pn_rnn_scratch *s, int64_t t) {
    const int64_t B = d->B, U = d->U, BU = B * U;
    for (int64_t b = 0; b < B; b++)
        if (pn_rnn_skip(s->mk, t, B, b))
            memcpy(s->hs + (t + 1) * BU + b * U, s->hs + t * BU + b * U,
                   (size_t)U * sizeof(float));
}

void pn_rnn_steps_forward(const pn_rnn_dims *d, const pn_rnn_scratch *s, const pn_ctx *c,
                          pn_rnn_step_fn step) {
    const int64_t BU = d->B * d->U;
    for (int64_t t = 0; t < d->T; t++) {
        const float *hprev = s->hs + t * BU; /* h_{t-1} (B, U) */
        const float *hp = hprev;             /* h_{t-1} rm: what multiplies U */
        if (d->masked) {
            float *restrict hm = s->hm + t * BU;
            for (int64_t i = 0; i < BU; i++) hm[i] = hprev[i] * s->rm[i];
            hp = hm;
        }
        step(d, s, c, t, hprev, hp);
        if (s->mk) carry_state(d, s, t);
    }
}

void pn_rnn_forward_end(const pn_ctx *c, const pn_rnn_dims *d, const pn_rnn_scratch *s) {
    /* out[b] = the sequence (or h_T), then h_T (and c_T) */
    float *out = c->out;
    const int64_t B = d->B, T = d->T, U = d->U, S = d->S, seq = d->rs ? T * U : U;
    const float *zmk = d->zero_masked ? s->mk : NULL; /* steps whose output is zeros */
    for (int64_t b = 0; b < B; b++) {
        float *o = out + b * S;
        if (d->rs) {
            for (int64_t t = 0; t < T; t++) { /* step t's h, at t or (reversed) T - 1 - t */
                float *r = o + (d->rev ? T - 1 - t : t) * U;
                if (pn_rnn_skip(zmk, t, B, b)) memset(r, 0, (size_t)U * sizeof(float));
                else memcpy(r, s->hs + ((t + 1) * B + b) * U, (size_t)U * sizeof(float));
            }
        } else if (T > 0 && pn_rnn_skip(zmk, T - 1, B, b)) {
            memset(o, 0, (size_t)U * sizeof(float));
        } else {
            memcpy(o, s->hs + (T * B + b) * U, (size_t)U * sizeof(float));
        }
        if (d->rstate) {
            memcpy(o + seq, s->hs + (T * B + b) * U, (size_t)U * sizeof(float));
            if (s->cs) memcpy(o + seq + U, s->cs + (T * B + b) * U, (size_t)U * sizeof(float));
        }
    }
    if (d->stateful) { /* the final states stay for the next call (hs, cs keep h_0, c_0) */
        const int sv = 2 + d->bias;
        memcpy(c->var[sv], s->hs + T * B * U, (size_t)(B * U) * sizeof(float));
        if (s->cs) memcpy(c->var[sv + 1], s->cs + T * B * U, (size_t)(B * U) * sizeof(float));
    }
}

/* dtab (V, GU) = the rows of dgx (T B, GU, processing order) summed by the index of their step
 * and sample (a folded embedding's); column blocks split over the threads, rows in order, so the
 * sums do not depend on the thread count */
static void sum_rows_by_index(float *dtab, const float *dgx, const int32_t *idx,
                              const pn_rnn_dims *d) {
    const int64_t B = d->B, T = d->T, TB = T * B, GU = d->GU, blocks = (GU + 63) / 64;
#pragma omp parallel for PN_RNN_ROWS_PAR(TB, GU / 8)
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
 * The cells' steps back give dgx (every step's gate gradients, and dgh for gru with
 * reset_after) and dU; then over all steps at once: dW = xt^T dgx, db = column sums, dx = (dgx
 * W^T) dm, un-reversed.
 */
void pn_rnn_backward_begin(const pn_node *n, const pn_ctx *c, pn_rnn_dims *d,
                           pn_rnn_scratch *s) {
    rnn_begin(n, c, d, s);
    const int64_t B = d->B, U = d->U, BU = B * U, S = d->S, seq = d->rs ? d->T * U : U;
    const float *dout = c->dout;
    const float *zmk = d->zero_masked ? s->mk : NULL;
    /* dh = dL/dh_T from the last output and the state; dc = dL/dc_T */
    memset(s->dh, 0, (size_t)BU * sizeof(float));
    memset(s->dc, 0, (size_t)BU * sizeof(float));
    for (int64_t b = 0; b < B; b++) {
        const float *o = dout + b * S;
        float *restrict dh = s->dh + b * U, *restrict dc = s->dc + b * U;
        if (!d->rs && !(d->T > 0 && pn_rnn_skip(zmk, d->T - 1, B, b)))
            for (int64_t j = 0; j < U; j++) dh[j] += o[j];
        if (d->rstate) {
            for (int64_t j = 0; j < U; j++) dh[j] += o[seq + j];
            if (s->cs)
                for (int64_t j = 0; j < U; j++) dc[j] += o[seq + U + j];
        }
    }
}

void pn_rnn_steps_backward(const pn_rnn_dims *d, const pn_rnn_scratch *s, const pn_ctx *c,
                           pn_rnn_step_back_fn step) {
    const int64_t B = d->B, T = d->T, U = d->U, BU = B * U, S = d->S;
    const float *zmk = d->zero_masked ? s->mk : NULL;
    const size_t row = (size_t)U * sizeof(float);
    for (int64_t t = T - 1; t >= 0; t--) {
        if (d->rs)
            for (int64_t b = 0; b < B; b++) {
                if (pn_rnn_skip(zmk, t, B, b)) continue; /* a zeroed output: no gradient */
                const float *restrict o = c->dout + b * S + (d->rev ? T - 1 - t : t) * U;
                float *restrict dh = s->dh + b * U;
                for (int64_t j = 0; j < U; j++) dh[j] += o[j];
            }
        /* a masked step is the identity: its dh (output's share included) is dL/dh_{t-1}; with
         * its row zero, the step gives the row zero gate gradients (the step back is linear in
         * dh), so nothing reaches dU, dW, db or x_t from it */
        for (int64_t b = 0; s->mk && b < B; b++)
            if (pn_rnn_skip(s->mk, t, B, b)) {
                memcpy(s->sdh + b * U, s->dh + b * U, row);
                memset(s->dh + b * U, 0, row);
            }
        const float *hprev = s->hs + t * BU;
        step(d, s, c, t, hprev, d->masked ? s->hm + t * BU : hprev);
        for (int64_t b = 0; s->mk && b < B; b++)
            if (pn_rnn_skip(s->mk, t, B, b)) memcpy(s->dh + b * U, s->sdh + b * U, row);
    }
}

float *pn_rnn_dtab(const pn_rnn_dims *d, const pn_rnn_scratch *s, const pn_ctx *c) {
    return d->V && (c->dvar[0] || c->fold_dtable) ? s->dtab : NULL;
}

void pn_rnn_backward_end(const pn_node *n, const pn_ctx *c, const pn_rnn_dims *d,
                         const pn_rnn_scratch *s, int in_steps, const float *db_sum) {
    const int64_t B = d->B, T = d->T, F = d->F, U = d->U, GU = d->GU, TB = T * B, BU = B * U;
    const float *W = c->var[0];

    /* the initial states' gradients; the mask's is zero (written when a float mask computed
     * upstream has a gradient buffer that this op writes first) */
    if (d->states_in && c->din[1]) {
        float *restrict o = c->din[1];
        for (int64_t i = 0; i < BU; i++) o[i] = c->acc_in[1] ? o[i] + s->dh[i] : s->dh[i];
    }
    const int mi = n->n_in - 1;
    if (d->step_mask && c->din[mi] && !c->acc_in[mi])
        memset(c->din[mi], 0, (size_t)(B * T) * sizeof(float));
    if (d->states_in > 1 && c->din[2]) {
        float *restrict o = c->din[2];
        for (int64_t i = 0; i < BU; i++) o[i] = c->acc_in[2] ? o[i] + s->dc[i] : s->dc[i];
    }

    /* a stateful op's states take no gradient (zero, should they be marked trainable) */
    for (int k = 2 + d->bias; d->stateful && k < n->n_var; k++)
        if (c->dvar[k] && !c->acc_var[k])
            memset(c->dvar[k], 0, (size_t)c->var_info[k]->size * sizeof(float));

    /* weights, over all steps at once */
    float *dtab = pn_rnn_dtab(d, s, c);
    if (dtab) {
        if (!in_steps) sum_rows_by_index(dtab, s->dgx, c->fold_idx, d);
        if (c->dvar[0]) /* dW = E^T dtab */
            pn_gemm(1, 0, F, GU, d->V, 1.0f, c->fold_table, F, dtab, GU,
                    c->acc_var[0] ? 1.0f : 0.0f, c->dvar[0], GU);
        if (c->fold_dtable) /* dE = dtab W^T */
            pn_gemm(0, 1, d->V, F, GU, 1.0f, dtab, GU, W, GU, c->fold_acc ? 1.0f : 0.0f,
                    c->fold_dtable, F);
    }
    if (c->dvar[0] && !in_steps && !d->V)
        pn_gemm(1, 0, F, GU, TB, 1.0f, s->xt, F, s->dgx, GU, c->acc_var[0] ? 1.0f : 0.0f,
                c->dvar[0], GU);
    if (in_steps) {
        if (db_sum) {
            float *restrict db = c->dvar[2];
            for (int64_t j = 0; j < GU; j++) db[j] = c->acc_var[2] ? db[j] + db_sum[j] : db_sum[j];
        }
    } else if (d->bias && c->dvar[2]) { /* column sums of dgx (and dgh), columns split */
        float *db = c->dvar[2];
        const float *dgx = s->dgx, *dgh = s->dgh;
        const int rows = dgh ? 2 : 1, acc = c->acc_var[2];
        const int64_t blocks = (GU + 63) / 64;
#pragma omp parallel for PN_RNN_ROWS_PAR(TB, GU / 8)
        for (int64_t k = 0; k < rows * blocks; k++) {
            const float *src = k < blocks ? dgx : dgh;
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
        pn_gemm(0, 1, TB, F, GU, 1.0f, s->dgx, GU, W, GU, 0.0f, s->dxt, F);
        float *dx = c->din[0];
        const float *dxt = s->dxt, *dm = s->dm;
        const int acc = c->acc_in[0], back = d->back;
#pragma omp parallel for PN_RNN_ROWS_PAR(TB, F)
        for (int64_t tb = 0; tb < TB; tb++) {
            int64_t t = tb / B, b = tb % B, src = back ? T - 1 - t : t;
            float *restrict o = dx + (b * T + src) * F;
            const float *restrict v = dxt + tb * F, *restrict mr = dm + b * F;
            if (acc)
                for (int64_t f = 0; f < F; f++) o[f] += v[f] * mr[f];
            else
                for (int64_t f = 0; f < F; f++) o[f] = v[f] * mr[f];
        }
    }
}
