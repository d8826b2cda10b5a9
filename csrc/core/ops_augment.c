/*
 * ops_augment.c: Keras 3's random image augmentations as ops: image_affine (RandomRotation,
 * RandomZoom, RandomTranslation), random_flip, random_contrast, random_brightness, random_crop.
 *
 * In a training run each op draws its parameters per image from the node's stream,
 * pn_uniform(c->seed, k), so a step of fit stays one call, a seed repeats it, and backward draws
 * the same parameters again instead of keeping them. Every other run (predict, evaluate, a model
 * called without training) passes the images through unchanged; random_crop then takes the
 * centre at the window's aspect ratio resized to the window (the output's shape is fixed).
 *
 * Images are (H, W, C) per sample (channels_first 0) or (C, H, W) (channels_first 1).
 *
 * Attributes:
 *   image_affine       iattr [0] transform: 0 rotation, 1 zoom, 2 translation
 *                            [1] fill_mode: 0 reflect, 1 wrap, 2 constant, 3 nearest
 *                            [2] interpolation: 0 bilinear, 1 nearest
 *                            [3] channels_first
 *                            [4] zoom only: 1 when the width has a range of its own (else the
 *                                height's draw zooms both, as Keras's width_factor=None)
 *                      fattr [0] [1] rotation: lower, upper in turns; zoom, translation: the
 *                                height's lower, upper
 *                            [2] [3] the width's lower, upper   [4] fill_value
 *   random_flip        iattr [0] 1 horizontal, 2 vertical, 3 both   [1] channels_first
 *   random_contrast    iattr [0] channels_first
 *                      fattr [0] [1] the multiplier's range   [2] [3] value_range (clip)
 *   random_brightness  fattr [0] [1] the delta's range, as fractions of the value range
 *                            [2] [3] value_range (clip)
 *   random_crop        iattr [0] height [1] width [2] channels_first
 * Draws: image_affine u(2b), u(2b + 1); random_flip, random_contrast, random_brightness u(b);
 * random_crop u(0), u(1) for the whole batch (one window per batch, as Keras).
 */
#include <math.h>

#include "internal.h"

/* ---- shared: image geometry ----------------------------------------------------------------- */

typedef struct {
    int64_t H, W, C;
    int64_t sh, sw, sc; /* strides of a row, a column and a channel within one image */
} img_dims;

static img_dims img_dims_of(const int64_t *shape, int channels_first) {
    img_dims d;
    if (channels_first) {
        d.C = shape[0], d.H = shape[1], d.W = shape[2];
        d.sc = d.H * d.W, d.sh = d.W, d.sw = 1;
    } else {
        d.H = shape[0], d.W = shape[1], d.C = shape[2];
        d.sh = d.W * d.C, d.sw = d.C, d.sc = 1;
    }
    return d;
}

/* One float32 image input of rank 3 and no weights; iattr[ci] (channels_first) 0 or 1. */
static int augment_input(const pn_model *m, pn_node *n, int ci, const pn_node **x) {
    int rc = pn_image_input(m, n, x);
    if (rc) return rc;
    if (n->iattr[ci] != 0 && n->iattr[ci] != 1)
        return pn_error(PN_EVALUE, "%s: channels_first must be 0 or 1, got %d",
                        pn_op_name(n->op), n->iattr[ci]);
    return PN_OK;
}

static void same_shape(pn_node *n, const pn_node *x) {
    n->dtype = PN_F32;
    n->ndim = x->ndim;
    memcpy(n->shape, x->shape, sizeof n->shape);
}

/* y (+)= x over N values: the pass-through of an inference run and its gradient */
static void pass_through(float *y, const float *x, int64_t N, int acc) {
    if (!acc) {
        if (y != x) memcpy(y, x, (size_t)N * sizeof(float));
    } else {
        PN_FOR_SIMD(N > PN_PAR_MIN, i, N, y[i] += x[i];);
    }
}

static int finite_range(const float *f) { return isfinite(f[0]) && isfinite(f[1]) && f[0] <= f[1]; }

/* ---- image_affine ----------------------------------------------------------------------------
 * Per image a 2x3 matrix T maps an output pixel (x, y) (column, row) to the input point
 *   col = a0 x + a1 y + a2,   row = b0 x + b1 y + b2          (Keras's affine_transform)
 * rotation by theta about the centre (cx, cy) = ((W - 1) / 2, (H - 1) / 2):
 *   a0 = cos, a1 = -sin, a2 = cx - cx a0 - cy a1, b0 = sin, b1 = cos, b2 = cy - cx b0 - cy b1
 * zoom (zx, zy):  a0 = zx, a2 = (W - 1) / 2 (1 - zx), b1 = zy, b2 = (H - 1) / 2 (1 - zy)
 * translation (tx, ty) pixels:  a0 = b1 = 1, a2 = -tx, b2 = -ty
 * and the input is sampled there as jax.scipy.ndimage.map_coordinates does: bilinear taps
 * floor(p) with weight 1 - frac, floor(p) + 1 with weight frac (nearest: round half away from
 * zero, weight 1), each tap's index fixed by fill_mode (reflect: d c b a | a b c d | d c b a;
 * wrap; nearest: clamped; constant: a tap outside reads fill_value):
 *   y[p] = sum_t w_t x[i_t] + w_out fill_value            dx[i_t] += w_t dy[p]
 * Backward scatters into its own image only, so images run in parallel.
 */

typedef struct {
    float a0, a1, a2, b0, b1, b2;
} affine;

static affine affine_draw(const pn_node *n, uint64_t seed, int64_t b, int64_t H, int64_t W) {
    const float *f = n->fattr;
    const float u1 = pn_uniform(seed, (uint64_t)(2 * b)), u2 = pn_uniform(seed, (uint64_t)(2 * b + 1));
    affine t = {1.0f, 0.0f, 0.0f, 0.0f, 1.0f, 0.0f};
    if (n->iattr[0] == 0) {
        const float lo = f[0] * 360.0f, hi = f[1] * 360.0f;
        const float rad = (lo + u1 * (hi - lo)) * (float)(3.14159265358979323846 / 180.0);
        const float cs = cosf(rad), sn = sinf(rad);
        const float cx = 0.5f * (float)(W - 1), cy = 0.5f * (float)(H - 1);
        t.a0 = cs, t.a1 = -sn, t.b0 = sn, t.b1 = cs;
        t.a2 = cx - cx * t.a0 - cy * t.a1;
        t.b2 = cy - cx * t.b0 - cy * t.b1;
    } else if (n->iattr[0] == 1) {
        const float hlo = 1.0f + f[0], hhi = 1.0f + f[1];
        const float zy = hlo + u1 * (hhi - hlo);
        float zx = zy;
        if (n->iattr[4]) {
            const float wlo = 1.0f + f[2], whi = 1.0f + f[3];
            zx = wlo + u2 * (whi - wlo);
        }
        t.a0 = zx, t.b1 = zy;
        t.a2 = ((float)W - 1.0f) / 2.0f * (1.0f - zx);
        t.b2 = ((float)H - 1.0f) / 2.0f * (1.0f - zy);
    } else {
        const float ty = (f[0] + u1 * (f[1] - f[0])) * (float)H;
        const float tx = (f[2] + u2 * (f[3] - f[2])) * (float)W;
        t.a2 = -tx, t.b2 = -ty;
    }
    return t;
}

enum { FILL_REFLECT, FILL_WRAP, FILL_CONSTANT, FILL_NEAREST };

/* index i on an axis of n pixels after fill_mode; -1: outside, reads the fill value */
static inline int64_t fix_index(int64_t i, int64_t n, int mode) {
    switch (mode) {
    case FILL_REFLECT: { /* jax: floor((|(2i + 1 + s) mod 2s - s| - 1) / 2), s = 2n */
        const int64_t s = 2 * n, m = ((2 * i + 1 + s) % (2 * s) + 2 * s) % (2 * s);
        const int64_t r = m - s < 0 ? s - m : m - s;
        return (r - 1) / 2;
    }
    case FILL_WRAP: return (i % n + n) % n;
    case FILL_NEAREST: return i < 0 ? 0 : i >= n ? n - 1 : i;
    default: return i >= 0 && i < n ? i : -1;
    }
}

/* the taps of coordinate p on an axis: up to 2 (index after fill_mode or -1, weight) */
static inline int axis_taps(float p, int64_t n, int mode, int nearest, int64_t *idx, float *w) {
    if (nearest) {
        idx[0] = fix_index((int64_t)roundf(p), n, mode);
        w[0] = 1.0f;
        return 1;
    }
    const float lo = floorf(p), hi_w = p - lo;
    idx[0] = fix_index((int64_t)lo, n, mode);
    idx[1] = fix_index((int64_t)lo + 1, n, mode);
    w[0] = 1.0f - hi_w, w[1] = hi_w;
    return 2;
}

/* output pixel (x, y)'s taps: offsets within the image (channel 0) and weights, up to 4; the
 * weight that reads the fill value in *w_fill */
static inline int pixel_taps(const affine *t, const img_dims *d, int64_t x, int64_t y, int mode,
                             int nearest, int64_t *off, float *w, float *w_fill) {
    const float fx = (float)x, fy = (float)y;
    const float col = (fy * t->a1 + fx * t->a0) + t->a2, row = (fy * t->b1 + fx * t->b0) + t->b2;
    int64_t ri[2] = {0, 0}, ci[2] = {0, 0};
    float rw[2] = {0.0f, 0.0f}, cw[2] = {0.0f, 0.0f};
    const int nr = axis_taps(row, d->H, mode, nearest, ri, rw);
    const int nc = axis_taps(col, d->W, mode, nearest, ci, cw);
    int k = 0;
    *w_fill = 0.0f;
    for (int i = 0; i < nr; i++)
        for (int j = 0; j < nc; j++) {
            const float ww = rw[i] * cw[j];
            if (ri[i] < 0 || ci[j] < 0) {
                *w_fill += ww;
            } else {
                off[k] = ri[i] * d->sh + ci[j] * d->sw;
                w[k++] = ww;
            }
        }
    return k;
}

static int image_affine_shape(const pn_model *m, pn_node *n) {
    const pn_node *x = NULL;
    int rc = augment_input(m, n, 3, &x);
    if (rc) return rc;
    const int *a = n->iattr;
    const float *f = n->fattr;
    if (a[0] < 0 || a[0] > 2)
        return pn_error(PN_EVALUE, "image_affine: transform must be 0 (rotation), 1 (zoom) or 2 "
                        "(translation), got %d", a[0]);
    if (a[1] < 0 || a[1] > 3)
        return pn_error(PN_EVALUE, "image_affine: fill_mode must be 0..3 (reflect, wrap, "
                        "constant, nearest), got %d", a[1]);
    if (a[2] != 0 && a[2] != 1)
        return pn_error(PN_EVALUE, "image_affine: interpolation must be 0 (bilinear) or 1 "
                        "(nearest), got %d", a[2]);
    if (!finite_range(f) || !finite_range(f + 2) || !isfinite(f[4]))
        return pn_error(PN_EVALUE, "image_affine: the ranges must be finite with lower <= upper, "
                        "got [%g, %g] and [%g, %g]", f[0], f[1], f[2], f[3]);
    if (a[0] == 1 && (f[0] <= -1.0f || (a[4] && f[2] <= -1.0f)))
        return pn_error(PN_EVALUE, "image_affine: a zoom range must stay above -1, got [%g, %g] "
                        "and [%g, %g]", f[0], f[1], f[2], f[3]);
    same_shape(n, x);
    return PN_OK;
}

static void image_affine_forward(const pn_node *n, const pn_ctx *c) {
    const int64_t B = c->batch, S = n->size;
    if (!c->training) {
        pass_through(c->out, c->in[0], B * S, 0);
        return;
    }
    const img_dims d = img_dims_of(n->shape, n->iattr[3]);
    const int mode = n->iattr[1], nearest = n->iattr[2];
    const float fill = n->fattr[4];
    const float *restrict inp = c->in[0];
    float *restrict out = c->out;
#pragma omp parallel for collapse(2) if (B * S > PN_PAR_MIN / 4) num_threads(pn_threads)
    for (int64_t b = 0; b < B; b++)
        for (int64_t y = 0; y < d.H; y++) {
            const affine t = affine_draw(n, c->seed, b, d.H, d.W);
            const float *xb = inp + b * S;
            float *yb = out + b * S;
            for (int64_t x = 0; x < d.W; x++) {
                int64_t off[4];
                float w[4], wf;
                const int k = pixel_taps(&t, &d, x, y, mode, nearest, off, w, &wf);
                float *yp = yb + y * d.sh + x * d.sw;
                for (int64_t ch = 0; ch < d.C; ch++) {
                    float v = wf * fill;
                    for (int j = 0; j < k; j++) v += w[j] * xb[off[j] + ch * d.sc];
                    yp[ch * d.sc] = v;
                }
            }
        }
}

static void image_affine_backward(const pn_node *n, const pn_ctx *c) {
    float *restrict dinp = c->din[0];
    if (!dinp) return;
    const int64_t B = c->batch, S = n->size;
    const int acc = c->acc_in[0];
    if (!c->training) {
        pass_through(dinp, c->dout, B * S, acc);
        return;
    }
    const img_dims d = img_dims_of(n->shape, n->iattr[3]);
    const int mode = n->iattr[1], nearest = n->iattr[2];
    const float *restrict dout = c->dout;
#pragma omp parallel for if (B * S > PN_PAR_MIN / 4) num_threads(pn_threads)
    for (int64_t b = 0; b < B; b++) {
        const affine t = affine_draw(n, c->seed, b, d.H, d.W);
        float *dx = dinp + b * S;
        const float *gb = dout + b * S;
        if (!acc) memset(dx, 0, (size_t)S * sizeof(float));
        for (int64_t y = 0; y < d.H; y++)
            for (int64_t x = 0; x < d.W; x++) {
                int64_t off[4];
                float w[4], wf;
                const int k = pixel_taps(&t, &d, x, y, mode, nearest, off, w, &wf);
                const float *g = gb + y * d.sh + x * d.sw;
                for (int64_t ch = 0; ch < d.C; ch++)
                    for (int j = 0; j < k; j++) dx[off[j] + ch * d.sc] += w[j] * g[ch * d.sc];
            }
    }
}

const pn_op_def pn_op_image_affine_def = {"image_affine", image_affine_shape, image_affine_forward,
                                          image_affine_backward, NULL,
                                          PN_OPF_BWD_NO_IN | PN_OPF_BWD_NO_OUT};

/* ---- random_flip -----------------------------------------------------------------------------
 * flip_b = u(b) <= 0.5 (Keras's draw); a flipped image is mirrored along each axis of the mode
 * (both axes at once for horizontal_and_vertical, as Keras's one draw):
 *   y[b, r, q] = x[b, r', q'],  r' = H - 1 - r when vertical, q' = W - 1 - q when horizontal
 *   dx[b, r', q'] = dy[b, r, q]   (a permutation that is its own inverse: the same gather)
 */

static int random_flip_shape(const pn_model *m, pn_node *n) {
    const pn_node *x = NULL;
    int rc = augment_input(m, n, 1, &x);
    if (rc) return rc;
    if (n->iattr[0] < 1 || n->iattr[0] > 3)
        return pn_error(PN_EVALUE, "random_flip: mode must be 1 (horizontal), 2 (vertical) or 3 "
                        "(both), got %d", n->iattr[0]);
    same_shape(n, x);
    return PN_OK;
}

/* y (+)= flip(x) for the images that draw a flip, y (+)= x for the others */
static void flip_run(const pn_node *n, const pn_ctx *c, float *restrict y,
                     const float *restrict x, int acc) {
    const int64_t B = c->batch, S = n->size;
    if (!c->training) {
        pass_through(y, x, B * S, acc);
        return;
    }
    const img_dims d = img_dims_of(n->shape, n->iattr[1]);
    const int horiz = n->iattr[0] & 1, vert = n->iattr[0] >> 1 & 1;
#pragma omp parallel for collapse(2) if (B * S > PN_PAR_MIN) num_threads(pn_threads)
    for (int64_t b = 0; b < B; b++)
        for (int64_t r = 0; r < d.H; r++) {
            const int flip = pn_uniform(c->seed, (uint64_t)b) <= 0.5f;
            const int64_t rs = flip && vert ? d.H - 1 - r : r;
            const float *xb = x + b * S;
            float *yb = y + b * S;
            for (int64_t q = 0; q < d.W; q++) {
                const int64_t qs = flip && horiz ? d.W - 1 - q : q;
                const float *xp = xb + rs * d.sh + qs * d.sw;
                float *yp = yb + r * d.sh + q * d.sw;
                if (acc)
                    for (int64_t ch = 0; ch < d.C; ch++) yp[ch * d.sc] += xp[ch * d.sc];
                else
                    for (int64_t ch = 0; ch < d.C; ch++) yp[ch * d.sc] = xp[ch * d.sc];
            }
        }
}

static void random_flip_forward(const pn_node *n, const pn_ctx *c) {
    flip_run(n, c, c->out, c->in[0], 0);
}

static void random_flip_backward(const pn_node *n, const pn_ctx *c) {
    if (c->din[0]) flip_run(n, c, c->din[0], c->dout, c->acc_in[0]);
}

const pn_op_def pn_op_random_flip_def = {"random_flip", random_flip_shape, random_flip_forward,
                                         random_flip_backward, NULL,
                                         PN_OPF_BWD_NO_IN | PN_OPF_BWD_NO_OUT};

/* ---- random_contrast and random_brightness ---------------------------------------------------
 * contrast, per image and channel, with f = lo + u(b) (hi - lo) and m the channel's mean over
 * the image's H W pixels:
 *   v = (x - m) f + m,   y = clip(v, vmin, vmax)
 *   g = dy [vmin <= v <= vmax],   dx = f g + (1 - f) / (H W) sum_pixels(g)
 * brightness, per image, with delta = (lo + u(b) (hi - lo)) (vmax - vmin):
 *   y = clip(x + delta, vmin, vmax),   dx = dy [vmin <= x + delta <= vmax]
 * Both redraw and recompute v in backward from x (the means in double, per image).
 */

static int color_shape(const pn_model *m, pn_node *n, int contrast) {
    const pn_node *x = NULL;
    int rc = contrast ? augment_input(m, n, 0, &x) : pn_image_input(m, n, &x);
    if (rc) return rc;
    const float *f = n->fattr;
    if (!finite_range(f) || !isfinite(f[2]) || !isfinite(f[3]))
        return pn_error(PN_EVALUE, "%s: the factor range must be finite with lower <= upper and "
                        "the value range finite, got [%g, %g] and [%g, %g]", pn_op_name(n->op),
                        f[0], f[1], f[2], f[3]);
    same_shape(n, x);
    return PN_OK;
}

static int random_contrast_shape(const pn_model *m, pn_node *n) { return color_shape(m, n, 1); }
static int random_brightness_shape(const pn_model *m, pn_node *n) { return color_shape(m, n, 0); }

/* image b's multiplier f and channel ch's mean m */
static float contrast_factor(const pn_node *n, uint64_t seed, int64_t b) {
    const float lo = n->fattr[0], hi = n->fattr[1];
    return lo + pn_uniform(seed, (uint64_t)b) * (hi - lo);
}

static float channel_mean(const float *xb, const img_dims *d, int64_t ch) {
    double s = 0.0;
    for (int64_t r = 0; r < d->H; r++)
        for (int64_t q = 0; q < d->W; q++) s += xb[r * d->sh + q * d->sw + ch * d->sc];
    return (float)(s / (double)(d->H * d->W));
}

static void random_contrast_forward(const pn_node *n, const pn_ctx *c) {
    const int64_t B = c->batch, S = n->size;
    if (!c->training) {
        pass_through(c->out, c->in[0], B * S, 0);
        return;
    }
    const img_dims d = img_dims_of(n->shape, n->iattr[0]);
    const float vmin = n->fattr[2], vmax = n->fattr[3];
#pragma omp parallel for collapse(2) if (B * S > PN_PAR_MIN / 4) num_threads(pn_threads)
    for (int64_t b = 0; b < B; b++)
        for (int64_t ch = 0; ch < d.C; ch++) {
            const float f = contrast_factor(n, c->seed, b);
            const float *xb = c->in[0] + b * S + ch * d.sc;
            float *yb = c->out + b * S + ch * d.sc;
            const float m = channel_mean(c->in[0] + b * S, &d, ch);
            for (int64_t r = 0; r < d.H; r++)
                for (int64_t q = 0; q < d.W; q++) {
                    const int64_t o = r * d.sh + q * d.sw;
                    const float v = (xb[o] - m) * f + m;
                    yb[o] = fminf(fmaxf(v, vmin), vmax);
                }
        }
}

static void random_contrast_backward(const pn_node *n, const pn_ctx *c) {
    float *restrict dinp = c->din[0];
    if (!dinp) return;
    const int64_t B = c->batch, S = n->size;
    const int acc = c->acc_in[0];
    if (!c->training) {
        pass_through(dinp, c->dout, B * S, acc);
        return;
    }
    const img_dims d = img_dims_of(n->shape, n->iattr[0]);
    const float vmin = n->fattr[2], vmax = n->fattr[3];
#pragma omp parallel for collapse(2) if (B * S > PN_PAR_MIN / 4) num_threads(pn_threads)
    for (int64_t b = 0; b < B; b++)
        for (int64_t ch = 0; ch < d.C; ch++) {
            const float f = contrast_factor(n, c->seed, b);
            const float *xb = c->in[0] + b * S + ch * d.sc, *gb = c->dout + b * S + ch * d.sc;
            float *dx = dinp + b * S + ch * d.sc;
            const float m = channel_mean(c->in[0] + b * S, &d, ch);
            double gs = 0.0; /* sum of the unclipped gradient over the channel's pixels */
            for (int64_t r = 0; r < d.H; r++)
                for (int64_t q = 0; q < d.W; q++) {
                    const int64_t o = r * d.sh + q * d.sw;
                    const float v = (xb[o] - m) * f + m;
                    if (v >= vmin && v <= vmax) gs += gb[o];
                }
            const float k = (float)((1.0 - (double)f) * gs / (double)(d.H * d.W));
            for (int64_t r = 0; r < d.H; r++)
                for (int64_t q = 0; q < d.W; q++) {
                    const int64_t o = r * d.sh + q * d.sw;
                    const float v = (xb[o] - m) * f + m;
                    const float g = (v >= vmin && v <= vmax ? f * gb[o] : 0.0f) + k;
                    dx[o] = acc ? dx[o] + g : g;
                }
        }
}

const pn_op_def pn_op_random_contrast_def = {"random_contrast", random_contrast_shape,
                                             random_contrast_forward, random_contrast_backward,
                                             NULL, PN_OPF_BWD_NO_OUT};

static float brightness_delta(const pn_node *n, uint64_t seed, int64_t b) {
    const float lo = n->fattr[0], hi = n->fattr[1];
    return (lo + pn_uniform(seed, (uint64_t)b) * (hi - lo)) * (n->fattr[3] - n->fattr[2]);
}

static void random_brightness_forward(const pn_node *n, const pn_ctx *c) {
    const int64_t B = c->batch, S = n->size;
    if (!c->training) {
        pass_through(c->out, c->in[0], B * S, 0);
        return;
    }
    const float vmin = n->fattr[2], vmax = n->fattr[3];
    for (int64_t b = 0; b < B; b++) {
        const float delta = brightness_delta(n, c->seed, b);
        const float *restrict xb = c->in[0] + b * S;
        float *restrict yb = c->out + b * S;
        PN_FOR_SIMD(S > PN_PAR_MIN, i, S, yb[i] = fminf(fmaxf(xb[i] + delta, vmin), vmax););
    }
}

static void random_brightness_backward(const pn_node *n, const pn_ctx *c) {
    float *restrict dinp = c->din[0];
    if (!dinp) return;
    const int64_t B = c->batch, S = n->size;
    const int acc = c->acc_in[0];
    if (!c->training) {
        pass_through(dinp, c->dout, B * S, acc);
        return;
    }
    const float vmin = n->fattr[2], vmax = n->fattr[3];
    for (int64_t b = 0; b < B; b++) {
        const float delta = brightness_delta(n, c->seed, b);
        const float *restrict xb = c->in[0] + b * S, *restrict gb = c->dout + b * S;
        float *restrict dx = dinp + b * S;
        if (acc)
            PN_FOR_SIMD(S > PN_PAR_MIN, i, S, {
                const float v = xb[i] + delta;
                dx[i] += v >= vmin && v <= vmax ? gb[i] : 0.0f;
            });
        else
            PN_FOR_SIMD(S > PN_PAR_MIN, i, S, {
                const float v = xb[i] + delta;
                dx[i] = v >= vmin && v <= vmax ? gb[i] : 0.0f;
            });
    }
}

const pn_op_def pn_op_random_brightness_def = {"random_brightness", random_brightness_shape,
                                               random_brightness_forward,
                                               random_brightness_backward, NULL,
                                               PN_OPF_BWD_NO_OUT};

/* ---- random_crop -----------------------------------------------------------------------------
 * A (h, w) window of (H, W) images. In training, when H > h and W > w, its corner is drawn once
 * for the batch: r0 = int(u(0) (H - h + 1)), q0 = int(u(1) (W - w + 1)), y = x[r0 + r, q0 + q].
 * Otherwise the centre at the window's aspect ratio: ch = clamp(int(W h / w), 1, H),
 * cw = clamp(int(H w / h), 1, W), r0 = int((H - ch) / 2), q0 = int((W - cw) / 2); in inference
 * that (ch, cw) window (Keras 2's smart_resize), in training (an image no larger than the
 * window) what Keras 3 slices: rows r0 .. min(r0 + h, H), columns q0 .. min(q0 + w, W). The
 * window is resized bilinearly to (h, w) with half-pixel centres and edges held (Keras's resize
 * without antialiasing):
 *   src(r) = r0 + clamp((r + 1/2) ch / h - 1/2, 0, ch - 1),  the same for columns
 *   y = sum of the 2 x 2 taps w x,   dx[taps] += w dy   (a window of scale 1 has one tap)
 */

typedef struct {
    int64_t r0, q0, ch, cw;
} crop_window;

static crop_window crop_window_of(const pn_node *n, const img_dims *d, const pn_ctx *c) {
    const int64_t h = n->iattr[0], w = n->iattr[1];
    crop_window k;
    if (c->training && d->H > h && d->W > w) {
        k.ch = h, k.cw = w;
        k.r0 = (int64_t)(pn_uniform(c->seed, 0) * (float)(d->H - h + 1));
        k.q0 = (int64_t)(pn_uniform(c->seed, 1) * (float)(d->W - w + 1));
        if (k.r0 > d->H - h) k.r0 = d->H - h;
        if (k.q0 > d->W - w) k.q0 = d->W - w;
        return k;
    }
    k.ch = (int64_t)((double)d->W * (double)h / (double)w);
    k.ch = k.ch > d->H ? d->H : k.ch < 1 ? 1 : k.ch;
    k.cw = (int64_t)((double)d->H * (double)w / (double)h);
    k.cw = k.cw > d->W ? d->W : k.cw < 1 ? 1 : k.cw;
    k.r0 = (int64_t)((double)(d->H - k.ch) / 2.0);
    k.q0 = (int64_t)((double)(d->W - k.cw) / 2.0);
    if (c->training) { /* Keras 3 slices (h, w) from that corner, as far as the image goes */
        k.ch = h < d->H - k.r0 ? h : d->H - k.r0;
        k.cw = w < d->W - k.q0 ? w : d->W - k.q0;
    }
    return k;
}

/* the 2 taps (indices in the input, weights) of output position o on an axis: a window of
 * size cn at i0 resized to on */
static inline void crop_taps(int64_t o, int64_t on, int64_t i0, int64_t cn, int64_t *idx,
                             float *w) {
    if (cn == on) {
        idx[0] = idx[1] = i0 + o;
        w[0] = 1.0f, w[1] = 0.0f;
        return;
    }
    float s = ((float)o + 0.5f) * ((float)cn / (float)on) - 0.5f;
    s = s < 0.0f ? 0.0f : s > (float)(cn - 1) ? (float)(cn - 1) : s;
    const int64_t lo = (int64_t)s;
    idx[0] = i0 + lo;
    idx[1] = i0 + (lo + 1 < cn ? lo + 1 : cn - 1);
    w[1] = s - (float)lo, w[0] = 1.0f - w[1];
}

static int random_crop_shape(const pn_model *m, pn_node *n) {
    const pn_node *x = NULL;
    int rc = augment_input(m, n, 2, &x);
    if (rc) return rc;
    if (n->iattr[0] < 1 || n->iattr[1] < 1)
        return pn_error(PN_EVALUE, "random_crop: height and width must be >= 1, got %d and %d",
                        n->iattr[0], n->iattr[1]);
    n->dtype = PN_F32;
    n->ndim = 3;
    if (n->iattr[2]) {
        n->shape[0] = x->shape[0], n->shape[1] = n->iattr[0], n->shape[2] = n->iattr[1];
    } else {
        n->shape[0] = n->iattr[0], n->shape[1] = n->iattr[1], n->shape[2] = x->shape[2];
    }
    return PN_OK;
}

static void random_crop_forward(const pn_node *n, const pn_ctx *c) {
    const int64_t B = c->batch, S = n->size, IS = c->in_node[0]->size;
    const img_dims d = img_dims_of(c->in_node[0]->shape, n->iattr[2]);
    const img_dims o = img_dims_of(n->shape, n->iattr[2]);
    const crop_window k = crop_window_of(n, &d, c);
#pragma omp parallel for collapse(2) if (B * S > PN_PAR_MIN / 4) num_threads(pn_threads)
    for (int64_t b = 0; b < B; b++)
        for (int64_t r = 0; r < o.H; r++) {
            int64_t ri[2];
            float rw[2];
            crop_taps(r, o.H, k.r0, k.ch, ri, rw);
            const float *xb = c->in[0] + b * IS;
            float *yb = c->out + b * S + r * o.sh;
            for (int64_t q = 0; q < o.W; q++) {
                int64_t qi[2];
                float qw[2];
                crop_taps(q, o.W, k.q0, k.cw, qi, qw);
                for (int64_t ch = 0; ch < o.C; ch++) {
                    float v = 0.0f;
                    for (int i = 0; i < 2; i++)
                        for (int j = 0; j < 2; j++)
                            v += rw[i] * qw[j] * xb[ri[i] * d.sh + qi[j] * d.sw + ch * d.sc];
                    yb[q * o.sw + ch * o.sc] = v;
                }
            }
        }
}

static void random_crop_backward(const pn_node *n, const pn_ctx *c) {
    float *restrict dinp = c->din[0];
    if (!dinp) return;
    const int64_t B = c->batch, S = n->size, IS = c->in_node[0]->size;
    const img_dims d = img_dims_of(c->in_node[0]->shape, n->iattr[2]);
    const img_dims o = img_dims_of(n->shape, n->iattr[2]);
    const crop_window k = crop_window_of(n, &d, c);
    const int acc = c->acc_in[0];
#pragma omp parallel for if (B * S > PN_PAR_MIN / 4) num_threads(pn_threads)
    for (int64_t b = 0; b < B; b++) {
        float *dx = dinp + b * IS;
        if (!acc) memset(dx, 0, (size_t)IS * sizeof(float));
        for (int64_t r = 0; r < o.H; r++) {
            int64_t ri[2];
            float rw[2];
            crop_taps(r, o.H, k.r0, k.ch, ri, rw);
            for (int64_t q = 0; q < o.W; q++) {
                int64_t qi[2];
                float qw[2];
                crop_taps(q, o.W, k.q0, k.cw, qi, qw);
                const float *g = c->dout + b * S + r * o.sh + q * o.sw;
                for (int64_t ch = 0; ch < o.C; ch++)
                    for (int i = 0; i < 2; i++)
                        for (int j = 0; j < 2; j++)
                            dx[ri[i] * d.sh + qi[j] * d.sw + ch * d.sc] +=
                                rw[i] * qw[j] * g[ch * o.sc];
            }
        }
    }
}

const pn_op_def pn_op_random_crop_def = {"random_crop", random_crop_shape, random_crop_forward,
                                         random_crop_backward, NULL,
                                         PN_OPF_BWD_NO_IN | PN_OPF_BWD_NO_OUT};
