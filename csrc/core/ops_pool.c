/*
 * ops_pool.c: pooling. Images are channels-last: per sample (H, W, C). Zero padding and reshape,
 * which move values without arithmetic, are in ops_shape.c.
 *
 * Attributes (iattr):
 *   max_pool2d, avg_pool2d   [0] pool_h [1] pool_w [2] stride_h [3] stride_w
 *                            [4] pad_top [5] pad_left [6] pad_bottom [7] pad_right
 *                            OH = (H + pad_top + pad_bottom - pool_h) / stride_h + 1, OW alike.
 *                            Padded positions never take part: max ignores them (as if -inf), avg
 *                            divides by the count of inside positions (Keras 'same').
 *   global_avg_pool2d, global_max_pool2d   none: (H, W, C) -> (C)
 *
 * The kernels read the input's H and W from the input node (c->in_node[0]).
 * Max pools keep, per output element, the flat index of the winning element within its sample
 * (int32) in scratch, so backward scatters dout to it.
 */
#include "internal.h"

/* ---- max_pool2d and avg_pool2d -------------------------------------------------------------- */

typedef struct {
    int64_t B, H, W, C, OH, OW;
    int64_t ph, pw, sh, sw, pt, pl;
} pool_dims;

/* x is the input node */
static pool_dims pool_get(const pn_node *n, const pn_node *x, int64_t B) {
    pool_dims d = {
        .B = B, .H = x->shape[0], .W = x->shape[1], .C = n->shape[2],
        .OH = n->shape[0], .OW = n->shape[1],
        .ph = n->iattr[0], .pw = n->iattr[1], .sh = n->iattr[2], .sw = n->iattr[3],
        .pt = n->iattr[4], .pl = n->iattr[5],
    };
    return d;
}

/* The window of output (oh, ow) clipped to the input: rows [h0, h1), columns [w0, w1). */
static inline void pool_window(const pool_dims *d, int64_t oh, int64_t ow, int64_t *h0,
                               int64_t *h1, int64_t *w0, int64_t *w1) {
    int64_t hs = oh * d->sh - d->pt, ws = ow * d->sw - d->pl;
    *h0 = hs > 0 ? hs : 0;
    *h1 = hs + d->ph < d->H ? hs + d->ph : d->H;
    *w0 = ws > 0 ? ws : 0;
    *w1 = ws + d->pw < d->W ? ws + d->pw : d->W;
}

static int pool_shape(const pn_model *m, pn_node *n) {
    const char *name = pn_op_name(n->op);
    const pn_node *x = NULL;
    int rc = pn_image_input(m, n, &x);
    if (rc) return rc;
    const int *a = n->iattr;
    if (a[0] < 1 || a[1] < 1)
        return pn_error(PN_EVALUE, "%s: pool size must be >= 1, got (%d, %d)", name, a[0], a[1]);
    if (a[2] < 1 || a[3] < 1)
        return pn_error(PN_EVALUE, "%s: strides must be >= 1, got (%d, %d)", name, a[2], a[3]);
    if (a[4] < 0 || a[5] < 0 || a[6] < 0 || a[7] < 0)
        return pn_error(PN_EVALUE, "%s: padding must be >= 0, got top %d left %d bottom %d "
                        "right %d", name, a[4], a[5], a[6], a[7]);
    int64_t H = x->shape[0], W = x->shape[1], C = x->shape[2];
    int64_t PH = H + a[4] + a[6], PW = W + a[5] + a[7];
    if (a[0] > PH || a[1] > PW)
        return pn_error(PN_ESHAPE, "%s: pool (%d, %d) is larger than the padded input (%lld, "
                        "%lld)", name, a[0], a[1], (long long)PH, (long long)PW);
    int64_t OH = (PH - a[0]) / a[2] + 1, OW = (PW - a[1]) / a[3] + 1;
    /* Every window must hold at least one input position: the first starts before the input
     * ends its padding (pad < pool), the last starts inside the input. */
    if (a[4] >= a[0] || a[5] >= a[1] || (OH - 1) * a[2] - a[4] >= H || (OW - 1) * a[3] - a[5] >= W)
        return pn_error(PN_EVALUE, "%s: padding top %d left %d bottom %d right %d leaves windows "
                        "of pool (%d, %d), strides (%d, %d) wholly outside the %lld x %lld input",
                        name, a[4], a[5], a[6], a[7], a[0], a[1], a[2], a[3], (long long)H,
                        (long long)W);
    n->dtype = PN_F32;
    n->ndim = 3;
    n->shape[0] = OH;
    n->shape[1] = OW;
    n->shape[2] = C;
    return PN_OK;
}

/* ---- max_pool2d ---------------------------------------------------------------------------------
 * out[b,oh,ow,c] = max over the window's inside (h, w) of inp[b,h,w,c]; idx = its flat index in
 * the sample (first maximum in row-major window order; a NaN wins, as in PyTorch).
 * dinp[b, idx[b,oh,ow,c]] += dout[b,oh,ow,c]
 * inp is (B, H, W, C), out and idx (B, OH, OW, C).
 */
static void max_pool2d_forward(const pn_node *n, const pn_ctx *c) {
    const pool_dims d = pool_get(n, c->in_node[0], c->batch);
    const int64_t B = d.B, H = d.H, W = d.W, C = d.C, OH = d.OH, OW = d.OW;
    const float *restrict inp = c->in[0];
    float *restrict out = c->out;
    int32_t *restrict idx = (int32_t *)c->scratch;
#pragma omp parallel for collapse(2) if (B * H * W * C > PN_PAR_MIN) num_threads(pn_threads)
    for (int64_t b = 0; b < B; b++)
        for (int64_t oh = 0; oh < OH; oh++) {
            const float *restrict x = inp + b * H * W * C;
            for (int64_t ow = 0; ow < OW; ow++) {
                int64_t h0, h1, w0, w1;
                pool_window(&d, oh, ow, &h0, &h1, &w0, &w1);
                int64_t o = ((b * OH + oh) * OW + ow) * C;
                float *restrict y = out + o;
                int32_t *restrict id = idx + o;
                const int32_t first = (int32_t)((h0 * W + w0) * C);
                for (int64_t k = 0; k < C; k++) {
                    y[k] = x[first + k];
                    id[k] = first + (int32_t)k;
                }
                for (int64_t h = h0; h < h1; h++)
                    for (int64_t w = w0; w < w1; w++) {
                        const int32_t off = (int32_t)((h * W + w) * C);
                        const float *restrict xp = x + off;
                        /* branch-free, so it vectorizes to blends (no masked stores) */
                        for (int64_t k = 0; k < C; k++) {
                            const float v = xp[k];
                            const int take = v > y[k] || v != v;
                            y[k] = take ? v : y[k];
                            id[k] = take ? off + (int32_t)k : id[k];
                        }
                    }
            }
        }
}

/* One image's dinp when the windows tile it (stride = pool, no padding): each input element
 * lies in at most one window, so every element is written once (dout at its window's winner, 0
 * elsewhere, 0 past the last window) instead of zeroing the image and scattering into it. */
static void max_pool2d_backward_tiled(float *restrict dx, const float *restrict g,
                                      const int32_t *restrict id, const pool_dims *d) {
    const int64_t W = d->W, C = d->C, OH = d->OH, OW = d->OW, ph = d->ph, pw = d->pw;
    for (int64_t h = 0; h < OH * ph; h++) {
        float *restrict row = dx + h * W * C;
        const int64_t o = (h / ph) * OW;
        for (int64_t w = 0; w < OW * pw; w++) {
            const float *restrict go = g + (o + w / pw) * C;
            const int32_t *restrict io = id + (o + w / pw) * C;
            const int32_t at = (int32_t)((h * W + w) * C);
            for (int64_t k = 0; k < C; k++)
                row[w * C + k] = io[k] == at + (int32_t)k ? go[k] : 0.0f;
        }
        memset(row + OW * pw * C, 0, (size_t)((W - OW * pw) * C) * sizeof(float));
    }
    memset(dx + OH * ph * W * C, 0, (size_t)((d->H - OH * ph) * W * C) * sizeof(float));
}

static void max_pool2d_backward(const pn_node *n, const pn_ctx *c) {
    float *restrict dinp = c->din[0];
    if (!dinp) return;
    const pool_dims d = pool_get(n, c->in_node[0], c->batch);
    const int64_t B = c->batch, IS = c->in_node[0]->size, OS = n->size;
    const float *restrict dout = c->dout;
    const int32_t *restrict idx = (const int32_t *)c->scratch;
    const int acc = c->acc_in[0];
    const int tiled = !acc && d.sh == d.ph && d.sw == d.pw && n->iattr[4] == 0 &&
                      n->iattr[5] == 0 && n->iattr[6] == 0 && n->iattr[7] == 0;
    /* a scatter: one image per thread, so no two threads write the same element */
#pragma omp parallel for if (B * IS > PN_PAR_MIN) num_threads(pn_threads)
    for (int64_t b = 0; b < B; b++) {
        float *restrict dx = dinp + b * IS;
        const float *restrict g = dout + b * OS;
        const int32_t *restrict id = idx + b * OS;
        if (tiled) {
            max_pool2d_backward_tiled(dx, g, id, &d);
            continue;
        }
        if (!acc) memset(dx, 0, (size_t)IS * sizeof(float));
        for (int64_t i = 0; i < OS; i++) dx[id[i]] += g[i];
    }
}

/* the winners' indices (int32), kept in inference plans too: forward always records them */
static int64_t max_pool2d_scratch(const pn_model *m, const pn_node *n, int64_t batch, int training) {
    (void)m, (void)training;
    return batch * n->size;
}

const pn_op_def pn_op_max_pool2d_def = {"max_pool2d", pool_shape, max_pool2d_forward,
                                        max_pool2d_backward, max_pool2d_scratch,
                                        PN_OPF_BWD_NO_IN | PN_OPF_BWD_NO_OUT};

/* ---- avg_pool2d ---------------------------------------------------------------------------------
 * out[b,oh,ow,c] = 1/n sum over the window's n inside (h, w) of inp[b,h,w,c]
 * dinp[b,h,w,c] += dout[b,oh,ow,c] / n   for every window holding (h, w)
 */
static void avg_pool2d_forward(const pn_node *n, const pn_ctx *c) {
    const pool_dims d = pool_get(n, c->in_node[0], c->batch);
    const int64_t B = d.B, H = d.H, W = d.W, C = d.C, OH = d.OH, OW = d.OW;
    const float *restrict inp = c->in[0];
    float *restrict out = c->out;
#pragma omp parallel for collapse(2) if (B * H * W * C > PN_PAR_MIN) num_threads(pn_threads)
    for (int64_t b = 0; b < B; b++)
        for (int64_t oh = 0; oh < OH; oh++) {
            const float *restrict x = inp + b * H * W * C;
            for (int64_t ow = 0; ow < OW; ow++) {
                int64_t h0, h1, w0, w1;
                pool_window(&d, oh, ow, &h0, &h1, &w0, &w1);
                float *restrict y = out + ((b * OH + oh) * OW + ow) * C;
                for (int64_t k = 0; k < C; k++) y[k] = 0.0f;
                for (int64_t h = h0; h < h1; h++)
                    for (int64_t w = w0; w < w1; w++) {
                        const float *restrict xp = x + (h * W + w) * C;
                        for (int64_t k = 0; k < C; k++) y[k] += xp[k];
                    }
                const float s = 1.0f / (float)((h1 - h0) * (w1 - w0));
                for (int64_t k = 0; k < C; k++) y[k] *= s;
            }
        }
}

static void avg_pool2d_backward(const pn_node *n, const pn_ctx *c) {
    float *restrict dinp = c->din[0];
    if (!dinp) return;
    const pool_dims d = pool_get(n, c->in_node[0], c->batch);
    const int64_t B = d.B, H = d.H, W = d.W, C = d.C, OH = d.OH, OW = d.OW;
    const float *restrict dout = c->dout;
    const int acc = c->acc_in[0];
    /* windows may overlap: one image per thread */
#pragma omp parallel for if (B * H * W * C > PN_PAR_MIN) num_threads(pn_threads)
    for (int64_t b = 0; b < B; b++) {
        float *restrict dx = dinp + b * H * W * C;
        if (!acc) memset(dx, 0, (size_t)(H * W * C) * sizeof(float));
        for (int64_t oh = 0; oh < OH; oh++)
            for (int64_t ow = 0; ow < OW; ow++) {
                int64_t h0, h1, w0, w1;
                pool_window(&d, oh, ow, &h0, &h1, &w0, &w1);
                const float *restrict g = dout + ((b * OH + oh) * OW + ow) * C;
                const float s = 1.0f / (float)((h1 - h0) * (w1 - w0));
                for (int64_t h = h0; h < h1; h++)
                    for (int64_t w = w0; w < w1; w++) {
                        float *restrict dp = dx + (h * W + w) * C;
                        for (int64_t k = 0; k < C; k++) dp[k] += g[k] * s;
                    }
            }
    }
}

const pn_op_def pn_op_avg_pool2d_def = {"avg_pool2d", pool_shape, avg_pool2d_forward,
                                        avg_pool2d_backward, NULL, PN_OPF_BWD_NO_IN | PN_OPF_BWD_NO_OUT};

/* ---- global pools: (H, W, C) -> (C) ------------------------------------------------------- */

static int global_pool_shape(const pn_model *m, pn_node *n) {
    const pn_node *x = NULL;
    int rc = pn_image_input(m, n, &x);
    if (rc) return rc;
    n->dtype = PN_F32;
    n->ndim = 1;
    n->shape[0] = x->shape[2];
    return PN_OK;
}

/* out[b,c] = 1/HW sum_hw inp[b,hw,c]            dinp[b,hw,c] += dout[b,c] / HW */
static void global_avg_pool2d_forward(const pn_node *n, const pn_ctx *c) {
    const int64_t B = c->batch, C = n->shape[0], HW = c->in_node[0]->size / C;
    const float *restrict inp = c->in[0];
    float *restrict out = c->out;
    const float s = 1.0f / (float)HW;
#pragma omp parallel for if (B * HW * C > PN_PAR_MIN) num_threads(pn_threads)
    for (int64_t b = 0; b < B; b++) {
        float *restrict y = out + b * C;
        const float *restrict x = inp + b * HW * C;
        for (int64_t k = 0; k < C; k++) y[k] = 0.0f;
        for (int64_t i = 0; i < HW; i++)
            for (int64_t k = 0; k < C; k++) y[k] += x[i * C + k];
        for (int64_t k = 0; k < C; k++) y[k] *= s;
    }
}

static void global_avg_pool2d_backward(const pn_node *n, const pn_ctx *c) {
    float *restrict dinp = c->din[0];
    if (!dinp) return;
    const int64_t B = c->batch, C = n->shape[0], HW = c->in_node[0]->size / C;
    const float *restrict dout = c->dout;
    const float s = 1.0f / (float)HW;
    const int acc = c->acc_in[0];
#pragma omp parallel for collapse(2) if (B * HW * C > PN_PAR_MIN) num_threads(pn_threads)
    for (int64_t b = 0; b < B; b++)
        for (int64_t i = 0; i < HW; i++) {
            const float *restrict g = dout + b * C;
            float *restrict dx = dinp + (b * HW + i) * C;
            if (acc)
                for (int64_t k = 0; k < C; k++) dx[k] += g[k] * s;
            else
                for (int64_t k = 0; k < C; k++) dx[k] = g[k] * s;
        }
}

const pn_op_def pn_op_global_avg_pool2d_def = {"global_avg_pool2d", global_pool_shape,
                                               global_avg_pool2d_forward,
                                               global_avg_pool2d_backward, NULL,
                                               PN_OPF_BWD_NO_IN | PN_OPF_BWD_NO_OUT};

/* out[b,c] = max_hw inp[b,hw,c], idx[b,c] = hw * C + c of the first maximum (a NaN wins)
 * dinp[b, idx[b,c]] += dout[b,c] */
static void global_max_pool2d_forward(const pn_node *n, const pn_ctx *c) {
    const int64_t B = c->batch, C = n->shape[0], HW = c->in_node[0]->size / C;
    const float *restrict inp = c->in[0];
    float *restrict out = c->out;
    int32_t *restrict idx = (int32_t *)c->scratch;
#pragma omp parallel for if (B * HW * C > PN_PAR_MIN) num_threads(pn_threads)
    for (int64_t b = 0; b < B; b++) {
        float *restrict y = out + b * C;
        int32_t *restrict id = idx + b * C;
        const float *restrict x = inp + b * HW * C;
        for (int64_t k = 0; k < C; k++) {
            y[k] = x[k];
            id[k] = (int32_t)k;
        }
        for (int64_t i = 1; i < HW; i++) {
            const int32_t off = (int32_t)(i * C);
            for (int64_t k = 0; k < C; k++) {
                const float v = x[off + k];
                const int take = v > y[k] || v != v;
                y[k] = take ? v : y[k];
                id[k] = take ? off + (int32_t)k : id[k];
            }
        }
    }
}

static void global_max_pool2d_backward(const pn_node *n, const pn_ctx *c) {
    float *restrict dinp = c->din[0];
    if (!dinp) return;
    const int64_t B = c->batch, C = n->shape[0], HW = c->in_node[0]->size / C;
    const float *restrict dout = c->dout;
    const int32_t *restrict idx = (const int32_t *)c->scratch;
    const int acc = c->acc_in[0];
#pragma omp parallel for if (B * HW * C > PN_PAR_MIN) num_threads(pn_threads)
    for (int64_t b = 0; b < B; b++) {
        float *restrict dx = dinp + b * HW * C;
        if (!acc) memset(dx, 0, (size_t)(HW * C) * sizeof(float));
        for (int64_t k = 0; k < C; k++) dx[idx[b * C + k]] += dout[b * C + k];
    }
}

static int64_t global_max_pool2d_scratch(const pn_model *m, const pn_node *n, int64_t batch,
                                         int training) {
    (void)m, (void)training;
    return batch * n->size;
}

const pn_op_def pn_op_global_max_pool2d_def = {"global_max_pool2d", global_pool_shape,
                                               global_max_pool2d_forward,
                                               global_max_pool2d_backward,
                                               global_max_pool2d_scratch,
                                               PN_OPF_BWD_NO_IN | PN_OPF_BWD_NO_OUT};
