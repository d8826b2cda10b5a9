/*
 * ops_norm.c: batch normalization, dropout and layer normalization.
 *
 * Attributes:
 *   batch_norm  iattr [0] scale: 1 when a gamma variable is present
 *                     [1] center: 1 when a beta variable is present
 *                     [2] frozen: 1 uses the moving statistics in training too, with no update
 *                         (Keras runs a BatchNormalization with trainable=False in inference
 *                         mode); 0 by default
 *               fattr [0] momentum in [0, 1] (Keras: 0.99)   [1] epsilon > 0 (Keras: 1e-3)
 *               vars  [gamma (C)] [beta (C)] moving_mean (C) moving_var (C): 2 + scale + center
 *   dropout     iattr [0] 0 ordinary, 1 spatial (one draw per sample and channel, shared over
 *                         every axis between the batch and the channels)
 *               fattr [0] rate in [0, 1)
 */
#include <math.h>

#include "internal.h"

/* ---- batch_norm ---------------------------------------------------------------------------
 * Keras 3 BatchNormalization with axis=-1. Sizes: R rows = B * (size / C), C channels; x is
 * (R, C) and every statistic is per channel over the R rows (N = R values).
 * training:   mean = sum(x) / N,  var = sum((x - mean)^2) / N   (biased, as Keras)
 *             y = gamma (x - mean) / sqrt(var + eps) + beta
 *             moving_mean = moving_mean m + mean (1 - m),  moving_var = moving_var m + var (1 - m)
 * inference:  the same y with moving_mean and moving_var, nothing updated.
 * backward:   xhat = (x - mean) inv_std,  dgamma = sum(dy xhat),  dbeta = sum(dy)
 *             dx = gamma inv_std / N (N dy - sum(dy) - xhat sum(dy xhat))    (batch statistics)
 *             dx = gamma inv_std dy                                           (moving statistics)
 *
 * Channel sums are accumulated in double over a fixed grid of row blocks (and channel chunks
 * when C is wide), then the blocks are added in order: the grid depends on R and C alone, so
 * the result is the same bits for any thread count. The forward's sums are shifted by the first
 * row (sum(x - k), sum((x - k)^2)), so the variance does not cancel when |mean| >> std.
 *
 * Scratch, per node: doubles inv_std[C], partial sums[nb][2][C]; then floats mean[C], a[C] =
 * gamma inv_std, b[C] = beta, and the backward's k2[C], k3[C] (dx = a dy + k2 (x - mean) + k3).
 */

#define BN_BLOCK 32768    /* about this many elements per row block */
#define BN_MAX_BLOCKS 64  /* at most this many row blocks: bounds the partial sums */
#define BN_CHUNK 512      /* channels per task: wide C is split across threads too */

typedef struct {
    int64_t R, C;     /* rows, channels */
    int64_t nb, rpb;  /* row blocks, rows per block */
    int64_t ncc;      /* channel chunks */
} bn_grid;

static bn_grid bn_grid_of(int64_t R, int64_t C) {
    bn_grid g = {.R = R, .C = C};
    int64_t nb = (R * C + BN_BLOCK - 1) / BN_BLOCK;
    if (nb > BN_MAX_BLOCKS) nb = BN_MAX_BLOCKS;
    if (nb > R) nb = R;
    if (nb < 1) nb = 1;
    g.rpb = (R + nb - 1) / nb;
    g.nb = (R + g.rpb - 1) / g.rpb;
    g.ncc = (C + BN_CHUNK - 1) / BN_CHUNK;
    return g;
}

static int64_t bn_channels(const pn_node *n) { return n->shape[n->ndim - 1]; }

static int64_t bn_scratch(const pn_model *m, const pn_node *n, int64_t batch, int training) {
    (void)m, (void)training;
    int64_t C = bn_channels(n);
    bn_grid g = bn_grid_of(batch * (n->size / C), C);
    return 2 * (C + 2 * g.nb * C) + 5 * C;
}

typedef struct {
    double *inv, *part;             /* inv_std (C), partial sums (nb, 2, C) */
    float *mean, *a, *b, *k2, *k3;  /* (C) each */
} bn_scratch_ptrs;

static bn_scratch_ptrs bn_scratch_get(float *scratch, bn_grid g) {
    bn_scratch_ptrs s;
    s.inv = (double *)(void *)scratch; /* the arena is 64-byte aligned, doubles come first */
    s.part = s.inv + g.C;
    s.mean = (float *)(void *)(s.part + 2 * g.nb * g.C);
    s.a = s.mean + g.C;
    s.b = s.a + g.C;
    s.k2 = s.b + g.C;
    s.k3 = s.k2 + g.C;
    return s;
}

static void bn_task_range(bn_grid g, int64_t t, int64_t *blk, int64_t *r0, int64_t *r1,
                          int64_t *c0, int64_t *c1) {
    *blk = t / g.ncc;
    int64_t cc = t % g.ncc;
    *r0 = *blk * g.rpb;
    *r1 = *r0 + g.rpb < g.R ? *r0 + g.rpb : g.R;
    *c0 = cc * BN_CHUNK;
    *c1 = *c0 + BN_CHUNK < g.C ? *c0 + BN_CHUNK : g.C;
}

/* s += x - k,  q += (x - k)^2 over one row segment */
static inline void bn_acc_moments(double *restrict s, double *restrict q, const float *restrict x,
                                  const float *restrict k, int64_t n) {
    for (int64_t c = 0; c < n; c++) {
        double d = (double)(x[c] - k[c]);
        s[c] += d;
        q[c] += d * d;
    }
}

/* s += dy,  q += dy (x - mean) over one row segment */
static inline void bn_acc_grads(double *restrict s, double *restrict q, const float *restrict dy,
                                const float *restrict x, const float *restrict mean, int64_t n) {
    for (int64_t c = 0; c < n; c++) {
        s[c] += (double)dy[c];
        q[c] += (double)dy[c] * (double)(x[c] - mean[c]);
    }
}

/* part[blk][0][c] = sum over the block's rows of (x - k), part[blk][1][c] of (x - k)^2;
 * x is (R, C), k (C). With dy non-NULL: sum dy and sum dy (x - k) instead. */
static void bn_block_sums(double *part, const float *x, const float *dy, const float *k,
                          bn_grid g) {
    int64_t tasks = g.nb * g.ncc, C = g.C;
#pragma omp parallel for schedule(static) num_threads(pn_threads) if (g.R * C > PN_PAR_MIN)
    for (int64_t t = 0; t < tasks; t++) {
        int64_t blk, r0, r1, c0, c1;
        bn_task_range(g, t, &blk, &r0, &r1, &c0, &c1);
        double *s = part + blk * 2 * C + c0, *q = part + blk * 2 * C + C + c0;
        for (int64_t c = 0; c < c1 - c0; c++) s[c] = q[c] = 0.0;
        for (int64_t r = r0; r < r1; r++) {
            if (dy)
                bn_acc_grads(s, q, dy + r * C + c0, x + r * C + c0, k + c0, c1 - c0);
            else
                bn_acc_moments(s, q, x + r * C + c0, k + c0, c1 - c0);
        }
    }
}

/* The blocks' partial sums added in block order: S[c], Q[c]. */
static void bn_reduce(const double *restrict part, bn_grid g, int64_t c, double *S, double *Q) {
    double s = 0.0, q = 0.0;
    for (int64_t b = 0; b < g.nb; b++) {
        s += part[b * 2 * g.C + c];
        q += part[b * 2 * g.C + g.C + c];
    }
    *S = s;
    *Q = q;
}

/* y = (x - mean) a + b, row by row; x and y are (R, C) */
static void bn_normalize(float *restrict y, const float *restrict x, const float *restrict mean,
                         const float *restrict a, const float *restrict b, int64_t R, int64_t C) {
    PN_FOR(R * C > PN_PAR_MIN, r, R,
        const float *restrict xr = x + r * C;
        float *restrict yr = y + r * C;
        for (int64_t c = 0; c < C; c++) yr[c] = (xr[c] - mean[c]) * a[c] + b[c];
    );
}

/* dx (+)= a dy + k2 (x - mean) + k3, row by row */
static void bn_dx(float *restrict dx, const float *restrict dy, const float *restrict x,
                  const float *restrict mean, const float *restrict a, const float *restrict k2,
                  const float *restrict k3, int64_t R, int64_t C, int acc) {
    PN_FOR(R * C > PN_PAR_MIN, r, R,
        const float *restrict dyr = dy + r * C, *restrict xr = x + r * C;
        float *restrict dxr = dx + r * C;
        if (acc)
            for (int64_t c = 0; c < C; c++)
                dxr[c] += a[c] * dyr[c] + k2[c] * (xr[c] - mean[c]) + k3[c];
        else
            for (int64_t c = 0; c < C; c++)
                dxr[c] = a[c] * dyr[c] + k2[c] * (xr[c] - mean[c]) + k3[c];
    );
}

/* Which of c->var[] holds what: gamma and beta may be absent (-1). */
typedef struct {
    int gamma, beta, mmean, mvar;
} bn_slots;

static bn_slots bn_slots_of(const pn_node *n) {
    bn_slots s;
    int k = 0;
    s.gamma = n->iattr[0] ? k++ : -1;
    s.beta = n->iattr[1] ? k++ : -1;
    s.mmean = k++;
    s.mvar = k;
    return s;
}

static int bn_shape(const pn_model *m, pn_node *n) {
    if (n->n_in != 1) return pn_error(PN_EVALUE, "batch_norm: takes one input, got %d", n->n_in);
    const pn_node *x = pn_input_node(m, n, 0);
    if (x->dtype != PN_F32) return pn_error(PN_ETYPE, "batch_norm: input must be float32");
    if (x->ndim < 1)
        return pn_error(PN_ESHAPE, "batch_norm: input needs at least one axis besides the batch");
    int scale = n->iattr[0], center = n->iattr[1], frozen = n->iattr[2];
    if ((scale != 0 && scale != 1) || (center != 0 && center != 1) ||
        (frozen != 0 && frozen != 1))
        return pn_error(PN_EVALUE, "batch_norm: scale, center and frozen (iattr 0..2) must be 0 "
                        "or 1, got %d, %d, %d", scale, center, frozen);
    int want = 2 + scale + center;
    if (n->n_var != want)
        return pn_error(PN_EVALUE, "batch_norm: scale=%d center=%d takes %d variables "
                        "([gamma] [beta] moving_mean moving_var), got %d", scale, center, want,
                        n->n_var);
    int64_t C = x->shape[x->ndim - 1];
    const char *names[4];
    bn_slots sl = bn_slots_of(n);
    if (sl.gamma >= 0) names[sl.gamma] = "gamma";
    if (sl.beta >= 0) names[sl.beta] = "beta";
    names[sl.mmean] = "moving_mean";
    names[sl.mvar] = "moving_var";
    for (int k = 0; k < want; k++) {
        const pn_var *v = &m->vars[n->var[k]];
        const char *name = names[k];
        if (v->ndim != 1 || v->shape[0] != C)
            return pn_error(PN_ESHAPE, "batch_norm: %s must have shape (%lld,) for %lld "
                            "channels, got rank %d with %lld elements", name, (long long)C,
                            (long long)C, v->ndim, (long long)v->size);
    }
    float mom = n->fattr[0], eps = n->fattr[1];
    if (!(mom >= 0.0f && mom <= 1.0f))
        return pn_error(PN_EVALUE, "batch_norm: momentum must be in [0, 1], got %g", mom);
    if (!(eps > 0.0f) || isinf(eps))
        return pn_error(PN_EVALUE, "batch_norm: epsilon must be finite and > 0, got %g", eps);
    n->dtype = PN_F32;
    n->ndim = x->ndim;
    memcpy(n->shape, x->shape, sizeof n->shape);
    return PN_OK;
}

static void bn_forward(const pn_node *n, const pn_ctx *c) {
    int64_t C = bn_channels(n), R = c->batch * (n->size / C);
    bn_grid g = bn_grid_of(R, C);
    bn_scratch_ptrs s = bn_scratch_get(c->scratch, g);
    bn_slots v = bn_slots_of(n);
    const float *x = c->in[0];
    const float *gamma = v.gamma >= 0 ? c->var[v.gamma] : NULL;
    const float *beta = v.beta >= 0 ? c->var[v.beta] : NULL;
    float *mmean = c->var[v.mmean], *mvar = c->var[v.mvar];
    double mom = n->fattr[0], eps = n->fattr[1];
    if (c->training && !n->iattr[2]) {
        bn_block_sums(s.part, x, NULL, x, g); /* shifted by row 0 */
        double invN = 1.0 / (double)R;
        for (int64_t ch = 0; ch < C; ch++) {
            double S, Q;
            bn_reduce(s.part, g, ch, &S, &Q);
            double dm = S * invN, mean = (double)x[ch] + dm, var = Q * invN - dm * dm;
            if (var < 0.0) var = 0.0;
            s.inv[ch] = 1.0 / sqrt(var + eps);
            s.mean[ch] = (float)mean;
            mmean[ch] = (float)(mmean[ch] * mom + mean * (1.0 - mom));
            mvar[ch] = (float)(mvar[ch] * mom + var * (1.0 - mom));
        }
    } else {
        for (int64_t ch = 0; ch < C; ch++) {
            s.inv[ch] = 1.0 / sqrt((double)mvar[ch] + eps);
            s.mean[ch] = mmean[ch];
        }
    }
    for (int64_t ch = 0; ch < C; ch++) {
        s.a[ch] = (float)((gamma ? gamma[ch] : 1.0) * s.inv[ch]);
        s.b[ch] = beta ? beta[ch] : 0.0f;
    }
    bn_normalize(c->out, x, s.mean, s.a, s.b, R, C);
}

static void bn_backward(const pn_node *n, const pn_ctx *c) {
    int64_t C = bn_channels(n), R = c->batch * (n->size / C);
    bn_grid g = bn_grid_of(R, C);
    bn_scratch_ptrs s = bn_scratch_get(c->scratch, g);
    bn_slots v = bn_slots_of(n);
    int batch_stats = c->training && !n->iattr[2];
    float *dgamma = v.gamma >= 0 ? c->dvar[v.gamma] : NULL;
    float *dbeta = v.beta >= 0 ? c->dvar[v.beta] : NULL;
    /* The moving statistics take no gradient; should they be marked trainable, it is zero. */
    for (int k = v.mmean; k <= v.mvar; k++)
        if (c->dvar[k] && !c->acc_var[k]) memset(c->dvar[k], 0, (size_t)C * sizeof(float));
    if (!dgamma && !dbeta && !(c->din[0] && batch_stats)) {
        if (c->din[0]) { /* moving statistics: dx = a dy */
            for (int64_t ch = 0; ch < C; ch++) s.k2[ch] = s.k3[ch] = 0.0f;
            bn_dx(c->din[0], c->dout, c->in[0], s.mean, s.a, s.k2, s.k3, R, C, c->acc_in[0]);
        }
        return;
    }
    bn_block_sums(s.part, c->in[0], c->dout, s.mean, g);
    double invN = 1.0 / (double)R;
    for (int64_t ch = 0; ch < C; ch++) {
        double Sdy, Sdyxc;
        bn_reduce(s.part, g, ch, &Sdy, &Sdyxc);
        double inv = s.inv[ch], Sdyxhat = Sdyxc * inv;
        if (dgamma) dgamma[ch] = (float)((c->acc_var[v.gamma] ? dgamma[ch] : 0.0) + Sdyxhat);
        if (dbeta) dbeta[ch] = (float)((c->acc_var[v.beta] ? dbeta[ch] : 0.0) + Sdy);
        double a = s.a[ch];
        s.k2[ch] = batch_stats ? (float)(-a * inv * Sdyxhat * invN) : 0.0f;
        s.k3[ch] = batch_stats ? (float)(-a * Sdy * invN) : 0.0f;
    }
    if (c->din[0])
        bn_dx(c->din[0], c->dout, c->in[0], s.mean, s.a, s.k2, s.k3, R, C, c->acc_in[0]);
}

const pn_op_def pn_op_batch_norm_def = {"batch_norm", bn_shape, bn_forward, bn_backward,
                                        bn_scratch, PN_OPF_BWD_NO_OUT};

/* ---- dropout ------------------------------------------------------------------------------
 * training:  keep_i = u_i >= rate, u_i = pn_uniform(seed, k_i) with k_i the element's flat index
 *            in the batch (ordinary) or b C + channel (spatial);
 *            y = x keep / (1 - rate)          dx = dy keep / (1 - rate)
 * inference (or rate 0): y = x, dx = dy.
 * The backward recomputes the mask from the same hash, so nothing is kept between the passes;
 * spatial dropout draws its B C multipliers into scratch once per pass.
 */

static int dropout_shape(const pn_model *m, pn_node *n) {
    if (n->n_in != 1 || n->n_var != 0)
        return pn_error(PN_EVALUE, "dropout: takes one input and no weights, got %d inputs and "
                        "%d weights", n->n_in, n->n_var);
    const pn_node *x = pn_input_node(m, n, 0);
    if (x->dtype != PN_F32) return pn_error(PN_ETYPE, "dropout: input must be float32");
    float rate = n->fattr[0];
    if (!(rate >= 0.0f && rate < 1.0f))
        return pn_error(PN_EVALUE, "dropout: rate must be in [0, 1), got %g", rate);
    if (n->iattr[0] != 0 && n->iattr[0] != 1)
        return pn_error(PN_EVALUE, "dropout: iattr[0] must be 0 (ordinary) or 1 (spatial), got %d",
                        n->iattr[0]);
    if (n->iattr[0] == 1 && x->ndim < 2)
        return pn_error(PN_ESHAPE, "dropout: spatial dropout needs an input of rank >= 2 besides "
                        "the batch (steps..., channels), got rank %d", x->ndim);
    n->dtype = PN_F32;
    n->ndim = x->ndim;
    memcpy(n->shape, x->shape, sizeof n->shape);
    return PN_OK;
}

static int64_t dropout_scratch(const pn_model *m, const pn_node *n, int64_t batch,
                               int training) {
    (void)m, (void)training;
    return n->iattr[0] ? batch * n->shape[n->ndim - 1] : 0;
}

/* keep = pn_uniform(seed, i) >= rate, computed on the hash's top 24 bits as integers:
 * pn_uniform is h24 2^-24 exactly, so u >= rate <=> h24 >= ceil(rate 2^24). The same mask, but
 * the loop vectorises without a 64-bit integer to float conversion (measured 5-10x faster). */
static int32_t keep_threshold(float rate) { return (int32_t)ceil((double)rate * 16777216.0); }

static inline int32_t hash24(uint64_t seed, int64_t i) {
    return (int32_t)(pn_hash64(seed, (uint64_t)i) >> 40);
}

#define DROPOUT_BLOCK 4096 /* elements per parallel task */

/* y (+)= x m with m_i = keep_i / (1 - rate): ordinary dropout over N elements */
static void dropout_apply(float *restrict y, const float *restrict x, int64_t N, uint64_t seed,
                          float rate, int acc) {
    const float scale = 1.0f / (1.0f - rate);
    const int32_t thr = keep_threshold(rate);
#pragma omp parallel for schedule(static) num_threads(pn_threads) if (N > PN_PAR_MIN / 4)
    for (int64_t i0 = 0; i0 < N; i0 += DROPOUT_BLOCK) {
        int64_t i1 = i0 + DROPOUT_BLOCK < N ? i0 + DROPOUT_BLOCK : N;
        if (acc)
            for (int64_t i = i0; i < i1; i++)
                y[i] += x[i] * (hash24(seed, i) >= thr ? scale : 0.0f);
        else
            for (int64_t i = i0; i < i1; i++)
                y[i] = x[i] * (hash24(seed, i) >= thr ? scale : 0.0f);
    }
}

/* The same for spatial dropout: one multiplier per (sample, channel), drawn into mult (B, C);
 * x and y are (B, P, C) with P the positions between batch and channels. */
static void dropout_apply_spatial(float *restrict y, const float *restrict x,
                                  float *restrict mult, int64_t B, int64_t P, int64_t C,
                                  uint64_t seed, float rate, int acc) {
    const float scale = 1.0f / (1.0f - rate);
    const int32_t thr = keep_threshold(rate);
    for (int64_t i = 0; i < B * C; i++) mult[i] = hash24(seed, i) >= thr ? scale : 0.0f;
    int64_t rows = B * P;
#pragma omp parallel for schedule(static) num_threads(pn_threads) if (rows * C > PN_PAR_MIN)
    for (int64_t r = 0; r < rows; r++) {
        const float *restrict mr = mult + (r / P) * C, *restrict xr = x + r * C;
        float *restrict yr = y + r * C;
        if (acc)
            for (int64_t c = 0; c < C; c++) yr[c] += xr[c] * mr[c];
        else
            for (int64_t c = 0; c < C; c++) yr[c] = xr[c] * mr[c];
    }
}

static void dropout_run(const pn_node *n, const pn_ctx *c, float *y, const float *x, int acc) {
    int64_t N = c->batch * n->size;
    float rate = n->fattr[0];
    if (!c->training || rate == 0.0f) {
        if (!acc) {
            if (y != x) memcpy(y, x, (size_t)N * sizeof(float));
        } else {
            PN_FOR_SIMD(N > PN_PAR_MIN, i, N, y[i] += x[i];);
        }
    } else if (n->iattr[0]) {
        int64_t C = n->shape[n->ndim - 1];
        dropout_apply_spatial(y, x, c->scratch, c->batch, n->size / C, C, c->seed, rate, acc);
    } else {
        dropout_apply(y, x, N, c->seed, rate, acc);
    }
}

static void dropout_forward(const pn_node *n, const pn_ctx *c) {
    dropout_run(n, c, c->out, c->in[0], 0);
}

static void dropout_backward(const pn_node *n, const pn_ctx *c) {
    if (c->din[0]) dropout_run(n, c, c->din[0], c->dout, c->acc_in[0]);
}

const pn_op_def pn_op_dropout_def = {"dropout", dropout_shape, dropout_forward, dropout_backward,
                                     dropout_scratch, PN_OPF_BWD_NO_IN | PN_OPF_BWD_NO_OUT};

/* ---- layer_norm ---------------------------------------------------------------------------
 * Keras 3 LayerNormalization with axis=-1, over each row of C values (R = B * size / C rows):
 *   mean = sum(x) / C,  var = sum((x - mean)^2) / C,  r = 1 / sqrt(var + eps)
 *   y = gamma (x - mean) r + beta                         (gamma, beta optional)
 *   rms_scaling: y = gamma x r  (Keras 3's definition: r from the variance, x not centred)
 * backward, with g = dy gamma and xhat = (x - mean) r:
 *   dx = r (g - mean(g) - xhat mean(g xhat)),   dgamma = sum_rows dy xhat,  dbeta = sum_rows dy
 *   rms: dx = r g - r^3 (x - mean) sum(g x) / C,  dgamma = sum_rows dy x r
 * The forward reads each row once from memory (two passes over it in cache), saving mean and r
 * per row in scratch; the backward recomputes xhat from them. dgamma and dbeta are summed per
 * fixed block of rows, then the blocks in order: the same bits at any thread count.
 *
 *   iattr [0] scale (gamma present)  [1] center (beta present)  [2] rms_scaling
 *   fattr [0] epsilon > 0 (Keras: 1e-3)
 *   vars  [gamma (C)] [beta (C)]
 * Scratch (floats): mean[R], r[R], partial sums (nb, 2, C).
 */

#define LN_BLOCK 16384   /* about this many elements per block of rows */
#define LN_MAX_BLOCKS 64

typedef struct {
    int64_t R, C, rpb, nb; /* rows, features, rows per block, blocks */
} ln_grid;

static ln_grid ln_grid_of(int64_t R, int64_t C) {
    ln_grid g = {.R = R, .C = C};
    g.rpb = LN_BLOCK / C > 1 ? LN_BLOCK / C : 1;
    if ((R + g.rpb - 1) / g.rpb > LN_MAX_BLOCKS) g.rpb = (R + LN_MAX_BLOCKS - 1) / LN_MAX_BLOCKS;
    g.nb = R > 0 ? (R + g.rpb - 1) / g.rpb : 0;
    return g;
}

static int64_t ln_features(const pn_node *n) { return n->shape[n->ndim - 1]; }

static int64_t ln_scratch(const pn_model *m, const pn_node *n, int64_t batch, int training) {
    (void)m, (void)training;
    int64_t C = ln_features(n), R = batch * (n->size / C);
    ln_grid g = ln_grid_of(R, C);
    return 2 * R + 2 * g.nb * C;
}

static int ln_shape(const pn_model *m, pn_node *n) {
    if (n->n_in != 1) return pn_error(PN_EVALUE, "layer_norm: takes one input, got %d", n->n_in);
    const pn_node *x = pn_input_node(m, n, 0);
    if (x->dtype != PN_F32) return pn_error(PN_ETYPE, "layer_norm: input must be float32");
    if (x->ndim < 1)
        return pn_error(PN_ESHAPE, "layer_norm: input needs at least one axis besides the batch");
    int scale = n->iattr[0], center = n->iattr[1], rms = n->iattr[2];
    if ((scale != 0 && scale != 1) || (center != 0 && center != 1) || (rms != 0 && rms != 1))
        return pn_error(PN_EVALUE, "layer_norm: scale, center and rms_scaling (iattr 0..2) must "
                        "be 0 or 1, got %d, %d, %d", scale, center, rms);
    if (rms && center)
        return pn_error(PN_EVALUE, "layer_norm: rms_scaling takes no beta (center must be 0)");
    if (n->n_var != scale + center)
        return pn_error(PN_EVALUE, "layer_norm: scale=%d center=%d takes %d variables ([gamma] "
                        "[beta]), got %d", scale, center, scale + center, n->n_var);
    int64_t C = x->shape[x->ndim - 1];
    for (int k = 0; k < n->n_var; k++) {
        const pn_var *v = &m->vars[n->var[k]];
        if (v->ndim != 1 || v->shape[0] != C)
            return pn_error(PN_ESHAPE, "layer_norm: %s must have shape (%lld,) for %lld "
                            "features, got rank %d with %lld elements",
                            k == 0 && scale ? "gamma" : "beta", (long long)C, (long long)C,
                            v->ndim, (long long)v->size);
    }
    float eps = n->fattr[0];
    if (!(eps > 0.0f) || isinf(eps))
        return pn_error(PN_EVALUE, "layer_norm: epsilon must be finite and > 0, got %g", eps);
    n->dtype = PN_F32;
    n->ndim = x->ndim;
    memcpy(n->shape, x->shape, sizeof n->shape);
    return PN_OK;
}

/* one row: y = (x - mean) r gamma + beta (rms: x r gamma); returns mean and r */
static void ln_row_forward(float *restrict y, const float *restrict x,
                           const float *restrict gamma, const float *restrict beta, int64_t C,
                           float eps, int rms, float *mean_out, float *r_out) {
    /* the mean as x[0] + mean(x - x[0]): the deviations are small where the mean is large, so
     * their float sum loses nothing to the mean's magnitude (whatever the summation order) */
    const float x0 = x[0];
    float s = 0.0f;
#pragma omp simd reduction(+ : s)
    for (int64_t j = 0; j < C; j++) s += x[j] - x0;
    const float mean = x0 + s / (float)C;
    float q = 0.0f;
#pragma omp simd reduction(+ : q)
    for (int64_t j = 0; j < C; j++) q += (x[j] - mean) * (x[j] - mean);
    const float r = 1.0f / sqrtf(q / (float)C + eps);
    *mean_out = mean;
    *r_out = r;
    const float sh = rms ? 0.0f : mean;
    if (gamma && beta) {
#pragma omp simd
        for (int64_t j = 0; j < C; j++) y[j] = (x[j] - sh) * r * gamma[j] + beta[j];
    } else if (gamma) {
#pragma omp simd
        for (int64_t j = 0; j < C; j++) y[j] = (x[j] - sh) * r * gamma[j];
    } else if (beta) {
#pragma omp simd
        for (int64_t j = 0; j < C; j++) y[j] = (x[j] - sh) * r + beta[j];
    } else {
#pragma omp simd
        for (int64_t j = 0; j < C; j++) y[j] = (x[j] - sh) * r;
    }
}

static void ln_forward(const pn_node *n, const pn_ctx *c) {
    const int64_t C = ln_features(n), R = c->batch * (n->size / C);
    const int scale = n->iattr[0], center = n->iattr[1], rms = n->iattr[2];
    const float *gamma = scale ? c->var[0] : NULL, *beta = center ? c->var[scale] : NULL;
    const float eps = n->fattr[0];
    const float *x = c->in[0];
    float *y = c->out, *mean = c->scratch, *rstd = c->scratch + R;
    PN_FOR(R * C > PN_PAR_MIN, r, R,
           ln_row_forward(y + r * C, x + r * C, gamma, beta, C, eps, rms, &mean[r], &rstd[r]););
}

static void ln_backward(const pn_node *n, const pn_ctx *c) {
    const int64_t C = ln_features(n), R = c->batch * (n->size / C);
    const int scale = n->iattr[0], center = n->iattr[1], rms = n->iattr[2];
    const float *gamma = scale ? c->var[0] : NULL;
    float *dgamma = scale ? c->dvar[0] : NULL, *dbeta = center ? c->dvar[scale] : NULL;
    float *dx = c->din[0];
    const int acc = c->acc_in[0];
    const float *x = c->in[0], *dy = c->dout, *mean = c->scratch, *rstd = c->scratch + R;
    ln_grid g = ln_grid_of(R, C);
    float *part = c->scratch + 2 * R; /* (nb, 2, C): sum dy xhat, sum dy */
    const int want_p = dgamma || dbeta;
    const float invC = 1.0f / (float)C;
#pragma omp parallel for schedule(static) num_threads(pn_threads) if (R * C > PN_PAR_MIN)
    for (int64_t blk = 0; blk < g.nb; blk++) {
        float *restrict pg = part + blk * 2 * C, *restrict pb = pg + C;
        if (want_p)
            for (int64_t j = 0; j < 2 * C; j++) pg[j] = 0.0f;
        int64_t r1 = (blk + 1) * g.rpb < R ? (blk + 1) * g.rpb : R;
        for (int64_t r = blk * g.rpb; r < r1; r++) {
            const float *restrict xr = x + r * C, *restrict dyr = dy + r * C;
            const float mu = mean[r], rs = rstd[r], sh = rms ? 0.0f : mu;
            if (want_p) {
#pragma omp simd
                for (int64_t j = 0; j < C; j++) {
                    pg[j] += dyr[j] * (xr[j] - sh) * rs;
                    pb[j] += dyr[j];
                }
            }
            if (!dx) continue;
            float *restrict dxr = dx + r * C;
            float sg = 0.0f, sgx = 0.0f;
            if (rms) { /* dx = r g - r^3 (x - mean) sum(g x) / C */
#pragma omp simd reduction(+ : sgx)
                for (int64_t j = 0; j < C; j++) sgx += dyr[j] * (gamma ? gamma[j] : 1.0f) * xr[j];
                const float k = rs * rs * rs * sgx * invC;
#pragma omp simd
                for (int64_t j = 0; j < C; j++) {
                    float d = rs * dyr[j] * (gamma ? gamma[j] : 1.0f) - k * (xr[j] - mu);
                    dxr[j] = acc ? dxr[j] + d : d;
                }
                continue;
            }
#pragma omp simd reduction(+ : sg, sgx)
            for (int64_t j = 0; j < C; j++) {
                float gj = dyr[j] * (gamma ? gamma[j] : 1.0f);
                sg += gj;
                sgx += gj * (xr[j] - mu) * rs;
            }
            const float a = sg * invC, b = sgx * invC;
#pragma omp simd
            for (int64_t j = 0; j < C; j++) {
                float xh = (xr[j] - mu) * rs;
                float d = rs * (dyr[j] * (gamma ? gamma[j] : 1.0f) - a - xh * b);
                dxr[j] = acc ? dxr[j] + d : d;
            }
        }
    }
    if (!want_p) return;
    for (int64_t j = 0; j < C; j++) {
        float sgm = 0.0f, sbt = 0.0f;
        for (int64_t blk = 0; blk < g.nb; blk++) {
            sgm += part[blk * 2 * C + j];
            sbt += part[blk * 2 * C + C + j];
        }
        if (dgamma) dgamma[j] = (c->acc_var[0] ? dgamma[j] : 0.0f) + sgm;
        if (dbeta) dbeta[j] = (c->acc_var[scale] ? dbeta[j] : 0.0f) + sbt;
    }
}

const pn_op_def pn_op_layer_norm_def = {"layer_norm", ln_shape, ln_forward, ln_backward,
                                        ln_scratch, PN_OPF_BWD_NO_OUT};
