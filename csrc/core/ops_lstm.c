/*
 * ops_lstm.c: Keras 3's LSTM cell, its steps on persistent threads; the sequence around it
 * (attributes, scratch, masks, outputs, the other gradients) is ops_rnn.c's.
 *
 *   [i f g o] = [ract ract act ract](x_t W + b + (h_{t-1} rm) U)     (ract: sigmoid, act: tanh)
 *   c_t = f c_{t-1} + i g,   h_t = o act(c_t)
 * Backward, with dh = dL/dh_t, dc = dL/dc_t:
 *   dc += dh o act'(act(c_t));  dgx_t = [dc g ract'(i), dc c_{t-1} ract'(f), dc i act'(g),
 *   dh act(c_t) ract'(o)];  dc_{t-1} = dc f;  dh_{t-1} = (dgx_t U^T) rm
 * and dW, dU, db summed from dgx while it is in cache (only dx stays a GEMM, ops_rnn.c's).
 * A masked step (ops_rnn.c's step mask) carries h and c, and backward passes dh and dc through
 * it with zero gate gradients: each thread does both for its units, in its own loop.
 * The common gates run vmath.h's lean sigmoid and tanh; other activations its exact ones.
 * Scratch (ops_rnn.c's layout): gx[t] the activated gates, cs the cell states, aux[t] act(c_t),
 * pk U's panels, prod a step's product, gbuf a thread's block of dgx's columns, step the bias's
 * gradient.
 */
#include <sched.h>
#include <stdatomic.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#endif

#include "ops_rnn.h"

#define NR PN_TILE_NR
#define MR PN_TILE_MR

/* lstm step, one sample, over w units: p = [i f g o] pre-activations in, g the activated gates
 * out; cp c_{t-1}, c c_t, tc act(c_t), h h_t. Called with constant act and ract on the common
 * path, so the switches fold away and the loop vectorises. */
static inline void lstm_row(float *restrict gi, float *restrict gf, float *restrict gg,
                            float *restrict go, float *restrict c, float *restrict tc,
                            float *restrict h, const float *restrict cp, const float *restrict pi,
                            const float *restrict pf, const float *restrict pg,
                            const float *restrict po, int64_t w, int act, int ract) {
    for (int64_t j = 0; j < w; j++) {
        float i = pn_rnn_act(pi[j], ract), f = pn_rnn_act(pf[j], ract), gv = pn_rnn_act(pg[j], act),
              o = pn_rnn_act(po[j], ract);
        float cv = f * cp[j] + i * gv, t = pn_rnn_act(cv, act);
        gi[j] = i, gf[j] = f, gg[j] = gv, go[j] = o;
        c[j] = cv, tc[j] = t, h[j] = o * t;
    }
}

/* lstm_row with act tanh and ract sigmoid */
static inline void lstm_row_fast(float *restrict gi, float *restrict gf, float *restrict gg,
                                 float *restrict go, float *restrict c, float *restrict tc,
                                 float *restrict h, const float *restrict cp,
                                 const float *restrict pi, const float *restrict pf,
                                 const float *restrict pg, const float *restrict po, int64_t w) {
    for (int64_t j = 0; j < w; j++) {
        float i = pn_sigmoid_lean(pi[j]), f = pn_sigmoid_lean(pf[j]), gv = pn_tanh_lean(pg[j]),
              o = pn_sigmoid_lean(po[j]);
        float cv = f * cp[j] + i * gv, t = pn_tanh_lean(cv);
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
        float dcv = dc[j] + dh[j] * o * pn_rnn_act_d(tv, act);
        dgi[j] = dcv * gv * pn_rnn_act_d(i, ract);
        dgf[j] = dcv * cp[j] * pn_rnn_act_d(f, ract);
        dgg[j] = dcv * i * pn_rnn_act_d(gv, act);
        dgo[j] = dh[j] * tv * pn_rnn_act_d(o, ract);
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
static int step_threads(const pn_rnn_dims *d) {
    const int64_t nq = pn_rnn_panels(d->U);
    if (pn_threads <= 1 || d->B * d->GU * d->U < STEP_PAR_MIN) return 1;
    return pn_threads < nq ? pn_threads : (int)nq;
}

/* thread k of n: its panels [q0, q1) and units [u0, u1) */
typedef struct {
    int64_t q0, q1, u0, u1;
} unit_slice;

static unit_slice slice_of(int64_t U, int k, int n) {
    const int64_t nq = pn_rnn_panels(U);
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
static void lstm_steps_forward(const pn_rnn_dims *d, const pn_rnn_scratch *s, const float *W,
                               const float *Uw, const float *bias, int rdrop,
                               const int32_t *idx) {
    const int64_t B = d->B, T = d->T, F = d->F, U = d->U, GU = d->GU, BU = B * U,
                  nq = pn_rnn_panels(U), UP = nq * NR, ldp = 4 * UP, FP = idx ? 0 : 1 + F,
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
                /* a masked step carries h and c, this thread's units of them before the barrier
                 * lets the next step read h_t; its gates stay unwritten (backward reads none) */
                if (pn_rnn_skip(s->mk, t, B, b)) {
                    memcpy(c + r, cp + r, (size_t)w * sizeof(float));
                    memcpy(h + r, s->hs + t * BU + r, (size_t)w * sizeof(float));
                } else if (fast)
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
 * (each zeroed first unless acc_w, acc_u), over blocks of steps of about PN_RNN_GRAD_ROWS rows.
 * With a folded embedding (idx not NULL, dW NULL) it sums each row of dgx into the row of dtab
 * (V, GU, overwritten) that its index picks, when dtab is not NULL. */
static void lstm_steps_backward(const pn_rnn_dims *d, const pn_rnn_scratch *s, const float *Uw,
                                const float *dout, float *dbias, float *dW, int acc_w,
                                float *dU, int acc_u, int rdrop, const int32_t *idx,
                                float *dtab) {
    const int64_t B = d->B, T = d->T, F = d->F, U = d->U, GU = d->GU, BU = B * U, S = d->S,
                  nq = pn_rnn_panels(U), UP = nq * NR,
                  steps = B < PN_RNN_GRAD_ROWS ? PN_RNN_GRAD_ROWS / B : 1,
                  gk = pn_rnn_grad_rows(B);
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
                const int skip = pn_rnn_skip(s->mk, t, B, b);
                if (d->rs && !(skip && d->zero_masked)) { /* a zeroed output has no gradient */
                    const float *restrict ob = dout + b * S + (d->rev ? T - 1 - t : t) * U + u0;
                    for (int64_t j = 0; j < w; j++) dh[j] += ob[j];
                }
                const float *gb = gt + b * GU + u0;
                float *db = dg + b * GU + u0;
                /* a masked step is the identity on (h, c): dc and dh (output's share included)
                 * pass on to step t - 1 unchanged, and its gate gradients are zero (they join
                 * dW, dU and the product below) */
                if (skip) {
                    for (int g = 0; g < 4; g++) memset(db + g * U, 0, (size_t)w * sizeof(float));
                    continue;
                }
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
                if (pn_rnn_skip(s->mk, t, B, b)) continue; /* keeps dL/dh_t, as above */
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

static void lstm_forward(const pn_node *n, const pn_ctx *c) {
    pn_rnn_dims d;
    pn_rnn_scratch s;
    pn_rnn_forward_begin(n, c, &d, &s, 1);
    lstm_steps_forward(&d, &s, c->var[0], c->var[1], d.bias ? c->var[2] : NULL, d.masked,
                       d.V ? c->fold_idx : NULL);
    pn_rnn_forward_end(c, &d, &s);
}

static void lstm_backward(const pn_node *n, const pn_ctx *c) {
    pn_rnn_dims d;
    pn_rnn_scratch s;
    pn_rnn_backward_begin(n, c, &d, &s);
    /* the bias's gradient, summed in the steps into step (GU) */
    float *db = d.bias && c->dvar[2] ? s.step : NULL;
    /* it also fills dW (without a folded embedding; with one, dtab), dU and db */
    lstm_steps_backward(&d, &s, c->var[1], c->dout, db, d.V ? NULL : c->dvar[0], c->acc_var[0],
                        c->dvar[1], c->acc_var[1], d.masked, c->fold_idx, pn_rnn_dtab(&d, &s, c));
    pn_rnn_backward_end(n, c, &d, &s, 1, db);
}

const pn_op_def pn_op_lstm_def = {"lstm", pn_rnn_shape, lstm_forward, lstm_backward,
                                  pn_rnn_scratch_size, PN_RNN_FLAGS};
