/*
 * ops_conv.c: 2-D convolution over channels-last images, Keras's kernel layout.
 *
 * Per sample: input (H, W, C), kernel (KH, KW, C, OC), optional bias (OC), output (OH, OW, OC).
 * A kernel of rank 3 is (KW, C, OC) with KH = 1: Conv1D's kernel, run over (1, steps, C) images.
 *   iattr: [0] stride_h  [1] stride_w  [2] dilation_h  [3] dilation_w
 *          [4] pad_top   [5] pad_left  [6] pad_bottom  [7] pad_right   (explicit zero padding)
 *   OH = (H + pad_top + pad_bottom - dilation_h * (KH - 1) - 1) / stride_h + 1, OW likewise.
 *
 * Method: im2col, then one GEMM for the whole batch.
 *   cols[(b, oh, ow), (kh, kw, c)] = inp[b, oh*sh - pt + kh*dh, ow*sw - pl + kw*dw, c]  (0 outside)
 * The columns follow the kernel's memory order, so the kernel is the (K, OC) row-major matrix
 * W with K = KH*KW*C, and with R = B*OH*OW rows:
 *   out = cols W + b          dW = cols^T dout,  db = sum_rows(dout),  dcols = dout W^T,
 *                             dinp = col2im(dcols)  (each tap's gradient added where it read)
 * A 1x1 kernel with stride 1 and no padding reads the input itself as cols: no im2col, and
 * dinp = dout W^T directly.
 * Scratch: cols (R, K), kept from forward for dW; in training also dcols (R, K) and per-chunk
 * bias sums.
 *
 * conv2d_transpose (Keras's Conv2DTranspose, Conv1DTranspose) is conv2d's input gradient as a
 * forward op. Per sample: input (IH, IW, Cin), kernel (KH, KW, Cout, Cin) (rank 3: (KW, Cout,
 * Cin)), optional bias (Cout), output (OH, OW, Cout). It is the conv2d whose input is this op's
 * output and whose output is this op's input:
 *   iattr: [0..3] strides and dilations  [4] pad_top  [5] pad_left  of that conv2d;
 *          [6] OH  [7] OW  (Keras's output size, from its padding and output_padding; the
 *          conv2d's taps that fall outside it are dropped)
 *   out = col2im(x W^T) + b,   dx = im2col(dout) W,   dW = im2col(dout)^T x,   db as conv2d.
 * Scratch: the (R, K) matrix, R = B IH IW, K = KH KW Cout; in training the bias sums too.
 */
#include "internal.h"

/* The bias gradient sums rows in this many chunks (in parallel), then the chunks in order: the
 * same result whatever the thread count. */
#define BIAS_CHUNKS 64

typedef struct {
    int64_t B, H, W, C, KH, KW, OC, OH, OW;
    int64_t sh, sw, dh, dw, pt, pl;
    int64_t R, K; /* the im2col matrix: R = B*OH*OW rows, K = KH*KW*C columns */
    int direct;   /* 1x1, stride 1, no padding: the input is the cols matrix */
} conv_dims;

/* The kernel's (KH, KW): a rank-3 kernel is (KW, C, OC) with KH = 1. */
static void kernel_hw(const pn_var *w, int64_t *KH, int64_t *KW) {
    *KH = w->ndim == 4 ? w->shape[0] : 1;
    *KW = w->shape[w->ndim - 3];
}

/* The dims of a conv2d over images (H, W, C) that gives (OH, OW, OC) with n's strides,
 * dilations and top/left pads (iattr[0..5]): a conv2d node's own (image: its input), or the
 * conv2d a conv2d_transpose node is the transpose of (image: its output). 1x1, stride 1, no
 * padding (so OH = H, OW = W) reads the image itself as the cols matrix. */
static conv_dims dims_of(const pn_node *n, const pn_var *w, int64_t batch, const int64_t *image,
                         const int64_t *out) {
    conv_dims d;
    d.B = batch;
    d.H = image[0];
    d.W = image[1];
    d.C = image[2];
    kernel_hw(w, &d.KH, &d.KW);
    d.OH = out[0];
    d.OW = out[1];
    d.OC = out[2];
    d.sh = n->iattr[0];
    d.sw = n->iattr[1];
    d.dh = n->iattr[2];
    d.dw = n->iattr[3];
    d.pt = n->iattr[4];
    d.pl = n->iattr[5];
    d.R = d.B * d.OH * d.OW;
    d.K = d.KH * d.KW * d.C;
    d.direct = d.KH == 1 && d.KW == 1 && d.sh == 1 && d.sw == 1 && d.pt == 0 && d.pl == 0 &&
               d.H == d.OH && d.W == d.OW;
    return d;
}

/* x is the input node, w the kernel */
static conv_dims conv_get_dims(const pn_node *n, const pn_node *x, const pn_var *w,
                               int64_t batch) {
    return dims_of(n, w, batch, x->shape, n->shape);
}

static int conv2d_shape(const pn_model *m, pn_node *n) {
    if (n->n_in != 1) return pn_error(PN_EVALUE, "conv2d: takes one input, got %d", n->n_in);
    if (n->n_var < 1 || n->n_var > 2)
        return pn_error(PN_EVALUE, "conv2d: takes a kernel and an optional bias, got %d variables",
                        n->n_var);
    const pn_node *x = pn_input_node(m, n, 0);
    if (x->dtype != PN_F32) return pn_error(PN_ETYPE, "conv2d: input must be float32");
    if (x->ndim != 3)
        return pn_error(PN_ESHAPE, "conv2d: input must be (height, width, channels) per sample, "
                        "got rank %d", x->ndim);
    const pn_var *w = &m->vars[n->var[0]];
    if (w->ndim != 4 && w->ndim != 3)
        return pn_error(PN_ESHAPE, "conv2d: kernel must be (KH, KW, in_channels, out_channels) "
                        "or (KW, in_channels, out_channels), got rank %d", w->ndim);
    int64_t H = x->shape[0], W = x->shape[1], C = x->shape[2], KH, KW;
    kernel_hw(w, &KH, &KW);
    int64_t OC = w->shape[w->ndim - 1], KC = w->shape[w->ndim - 2];
    if (KC != C)
        return pn_error(PN_ESHAPE, "conv2d: input has %lld channels, kernel expects %lld",
                        (long long)C, (long long)KC);
    if (n->n_var == 2) {
        const pn_var *b = &m->vars[n->var[1]];
        if (b->size != OC)
            return pn_error(PN_ESHAPE, "conv2d: bias has %lld elements, kernel has %lld filters",
                            (long long)b->size, (long long)OC);
    }
    const int *a = n->iattr;
    if (a[0] < 1 || a[1] < 1)
        return pn_error(PN_EVALUE, "conv2d: strides must be >= 1, got (%d, %d)", a[0], a[1]);
    if (a[2] < 1 || a[3] < 1)
        return pn_error(PN_EVALUE, "conv2d: dilation rates must be >= 1, got (%d, %d)", a[2], a[3]);
    if (a[4] < 0 || a[5] < 0 || a[6] < 0 || a[7] < 0)
        return pn_error(PN_EVALUE, "conv2d: padding must be >= 0, got top %d left %d bottom %d "
                        "right %d", a[4], a[5], a[6], a[7]);
    int64_t eh = (int64_t)a[2] * (KH - 1) + 1, ew = (int64_t)a[3] * (KW - 1) + 1;
    int64_t ph = H + a[4] + a[6], pw = W + a[5] + a[7];
    if (eh > ph || ew > pw)
        return pn_error(PN_ESHAPE, "conv2d: the dilated kernel (%lld, %lld) is larger than the "
                        "padded input (%lld, %lld)", (long long)eh, (long long)ew, (long long)ph,
                        (long long)pw);
    if (KH * KW * C > INT32_MAX || OC > INT32_MAX)
        return pn_error(PN_ESHAPE, "conv2d: input (%lld, %lld, %lld) or kernel (%lld, %lld) is "
                        "too large", (long long)H, (long long)W, (long long)C, (long long)KH,
                        (long long)KW);
    n->dtype = PN_F32;
    n->ndim = 3;
    n->shape[0] = (ph - eh) / a[0] + 1;
    n->shape[1] = (pw - ew) / a[1] + 1;
    n->shape[2] = OC;
    return PN_OK;
}

static int64_t conv2d_scratch(const pn_model *m, const pn_node *n, int64_t batch, int training) {
    conv_dims d = conv_get_dims(n, pn_input_node(m, n, 0), &m->vars[n->var[0]], batch);
    if (!training) return d.direct ? 0 : d.R * d.K;
    return (d.direct ? 0 : 2 * d.R * d.K) + BIAS_CHUNKS * d.OC;
}

/* The i in [lo, hi), within [0, n), for which i * s + off lies in [0, W): the output columns
 * whose tap kw is inside the image (s = stride_w, off = kw * dw - pl), or the taps of output
 * column ow that are (s = dilation_w, off = ow * sw - pl). */
static void tap_range(int64_t off, int64_t s, int64_t W, int64_t n, int64_t *lo, int64_t *hi) {
    int64_t l = off >= 0 ? 0 : (-off + s - 1) / s;
    int64_t h = W - 1 - off < 0 ? 0 : (W - 1 - off) / s + 1;
    *hi = h < n ? h : n;
    *lo = l < *hi ? l : *hi;
}

/* cols (R, K) from inp (B, H, W, C): one output pixel per row, its taps in (kh, kw, c) order.
 * Filled tap by tap along a row of output pixels, so the bounds are worked out per tap, not per
 * element: zeros left of lo and from hi on, copies between. */
static void im2col(float *restrict cols, const float *restrict inp, const conv_dims *d) {
    const int64_t H = d->H, W = d->W, C = d->C, KH = d->KH, KW = d->KW, OH = d->OH, OW = d->OW;
    const int64_t K = d->K, sh = d->sh, sw = d->sw, dh = d->dh, dw = d->dw, pt = d->pt, pl = d->pl;
    const size_t tap = (size_t)C * sizeof(float);
#pragma omp parallel for num_threads(pn_threads) if (d->R * K > PN_PAR_MIN)
    for (int64_t p = 0; p < d->B * OH; p++) { /* one row of output pixels (b, oh) */
        const int64_t b = p / OH, oh = p % OH;
        float *rows = cols + p * OW * K;
        for (int64_t kh = 0; kh < KH; kh++) {
            const int64_t ih = oh * sh - pt + kh * dh;
            if (ih < 0 || ih >= H) {
                for (int64_t ow = 0; ow < OW; ow++)
                    memset(rows + ow * K + kh * KW * C, 0, (size_t)KW * tap);
                continue;
            }
            const float *src = inp + ((b * H + ih) * W) * C;
            for (int64_t kw = 0; kw < KW; kw++) {
                const int64_t off = kw * dw - pl;
                int64_t lo, hi, ow = 0;
                tap_range(off, sw, W, OW, &lo, &hi);
                float *dst = rows + (kh * KW + kw) * C;
                for (; ow < lo; ow++) memset(dst + ow * K, 0, tap);
                if (C == 1)
                    for (; ow < hi; ow++) dst[ow * K] = src[ow * sw + off];
                else
                    for (; ow < hi; ow++) memcpy(dst + ow * K, src + (ow * sw + off) * C, tap);
                for (; ow < OW; ow++) memset(dst + ow * K, 0, tap);
            }
        }
    }
}

/* dinp (B, H, W, C) (+)= the sum of every tap of dcols (R, K) at the pixel it read. Each row of
 * dcols is read once, in order; the taps kw in [lo, hi) of an output pixel land inside the image.
 * Parallel over images: one thread owns each image's gradient, so no two threads add to the
 * same pixel. */
static void col2im(float *restrict dinp, const float *restrict dcols, const conv_dims *d,
                   int acc) {
    const int64_t H = d->H, W = d->W, C = d->C, KH = d->KH, KW = d->KW, OH = d->OH, OW = d->OW;
    const int64_t K = d->K, sh = d->sh, sw = d->sw, dh = d->dh, dw = d->dw, pt = d->pt, pl = d->pl;
#pragma omp parallel for num_threads(pn_threads) if (d->B > 1 && d->R * K > PN_PAR_MIN)
    for (int64_t b = 0; b < d->B; b++) {
        float *restrict img = dinp + b * H * W * C;
        if (!acc) memset(img, 0, (size_t)(H * W * C) * sizeof(float));
        const float *restrict src = dcols + b * OH * OW * K;
        for (int64_t oh = 0; oh < OH; oh++)
            for (int64_t ow = 0; ow < OW; ow++) {
                const int64_t off = ow * sw - pl; /* iw = kw * dw + off */
                int64_t lo, hi;
                tap_range(off, dw, W, KW, &lo, &hi);
                for (int64_t kh = 0; kh < KH; kh++, src += KW * C) {
                    const int64_t ih = oh * sh - pt + kh * dh;
                    if (ih < 0 || ih >= H) continue;
                    float *restrict row = img + ih * W * C;
                    if (C == 1)
                        for (int64_t kw = lo; kw < hi; kw++) row[kw * dw + off] += src[kw];
                    else
                        for (int64_t kw = lo; kw < hi; kw++) {
                            float *restrict px = row + (kw * dw + off) * C;
                            const float *restrict g = src + kw * C;
                            for (int64_t c = 0; c < C; c++) px[c] += g[c];
                        }
                }
            }
    }
}

/* out (R, OC) = b broadcast over the rows, for the GEMM to add onto (beta = 1) */
static void fill_bias(float *restrict out, const float *restrict b, int64_t R, int64_t OC) {
#pragma omp parallel for num_threads(pn_threads) if (R * OC > PN_PAR_MIN)
    for (int64_t r = 0; r < R; r++) memcpy(out + r * OC, b, (size_t)OC * sizeof(float));
}

/* db (OC) (+)= sum over the R rows of dout (R, OC); part holds BIAS_CHUNKS * OC floats */
static void bias_grad(float *restrict db, float *restrict part, const float *restrict dout,
                      int64_t R, int64_t OC, int acc) {
    if (!acc) memset(db, 0, (size_t)OC * sizeof(float));
    if (R * OC <= PN_PAR_MIN) {
        for (int64_t r = 0; r < R; r++) {
            const float *restrict g = dout + r * OC;
            for (int64_t j = 0; j < OC; j++) db[j] += g[j];
        }
        return;
    }
    const int64_t per = (R + BIAS_CHUNKS - 1) / BIAS_CHUNKS;
#pragma omp parallel for num_threads(pn_threads)
    for (int64_t k = 0; k < BIAS_CHUNKS; k++) {
        float *restrict s = part + k * OC;
        memset(s, 0, (size_t)OC * sizeof(float));
        const int64_t r1 = (k + 1) * per < R ? (k + 1) * per : R;
        for (int64_t r = k * per; r < r1; r++) {
            const float *restrict g = dout + r * OC;
            for (int64_t j = 0; j < OC; j++) s[j] += g[j];
        }
    }
    for (int64_t k = 0; k < BIAS_CHUNKS; k++)
        for (int64_t j = 0; j < OC; j++) db[j] += part[k * OC + j];
}

/* out = cols W + b */
static void conv2d_forward(const pn_node *n, const pn_ctx *c) {
    const conv_dims d = conv_get_dims(n, c->in_node[0], c->var_info[0], c->batch);
    const float *cols = c->in[0]; /* (R, K) */
    if (!d.direct) {
        im2col(c->scratch, c->in[0], &d);
        cols = c->scratch;
    }
    float beta = 0.0f;
    if (n->n_var == 2) {
        fill_bias(c->out, c->var[1], d.R, d.OC);
        beta = 1.0f;
    }
    pn_gemm(0, 0, d.R, d.OC, d.K, 1.0f, cols, d.K, c->var[0], d.OC, beta, c->out, d.OC);
}

/* dW = cols^T dout, db = sum_rows(dout), dinp = col2im(dout W^T) */
static void conv2d_backward(const pn_node *n, const pn_ctx *c) {
    const conv_dims d = conv_get_dims(n, c->in_node[0], c->var_info[0], c->batch);
    const float *dout = c->dout;  /* (R, OC) */
    const float *cols = d.direct ? c->in[0] : c->scratch;
    float *part = c->scratch + (d.direct ? 0 : 2 * d.R * d.K);
    if (c->dvar[0])               /* dW (K, OC) */
        pn_gemm(1, 0, d.K, d.OC, d.R, 1.0f, cols, d.K, dout, d.OC, c->acc_var[0] ? 1.0f : 0.0f,
                c->dvar[0], d.OC);
    if (n->n_var == 2 && c->dvar[1]) bias_grad(c->dvar[1], part, dout, d.R, d.OC, c->acc_var[1]);
    if (!c->din[0]) return;
    if (d.direct) {               /* dinp (R, C) = dout W^T */
        pn_gemm(0, 1, d.R, d.K, d.OC, 1.0f, dout, d.OC, c->var[0], d.OC, c->acc_in[0] ? 1.0f : 0.0f,
                c->din[0], d.K);
        return;
    }
    float *dcols = c->scratch + d.R * d.K; /* (R, K) */
    pn_gemm(0, 1, d.R, d.K, d.OC, 1.0f, dout, d.OC, c->var[0], d.OC, 0.0f, dcols, d.K);
    col2im(c->din[0], dcols, &d, c->acc_in[0]);
}

const pn_op_def pn_op_conv2d_def = {"conv2d", conv2d_shape, conv2d_forward, conv2d_backward,
                                    conv2d_scratch, PN_OPF_BWD_NO_OUT};

/* ---- conv2d_transpose ------------------------------------------------------------------------ */

/* The dims of the conv2d this op is the transpose of: its input is the node's output (OH, OW,
 * Cout), its output the node's input x (IH, IW, Cin). */
static conv_dims transpose_dims(const pn_node *n, const pn_node *x, const pn_var *w,
                                int64_t batch) {
    return dims_of(n, w, batch, n->shape, x->shape);
}

static int conv2d_transpose_shape(const pn_model *m, pn_node *n) {
    const char *name = "conv2d_transpose";
    if (n->n_in != 1) return pn_error(PN_EVALUE, "%s: takes one input, got %d", name, n->n_in);
    if (n->n_var < 1 || n->n_var > 2)
        return pn_error(PN_EVALUE, "%s: takes a kernel and an optional bias, got %d variables",
                        name, n->n_var);
    const pn_node *x = pn_input_node(m, n, 0);
    if (x->dtype != PN_F32) return pn_error(PN_ETYPE, "%s: input must be float32", name);
    if (x->ndim != 3)
        return pn_error(PN_ESHAPE, "%s: input must be (height, width, channels) per sample, got "
                        "rank %d", name, x->ndim);
    const pn_var *w = &m->vars[n->var[0]];
    if (w->ndim != 4 && w->ndim != 3)
        return pn_error(PN_ESHAPE, "%s: kernel must be (KH, KW, out_channels, in_channels) or "
                        "(KW, out_channels, in_channels), got rank %d", name, w->ndim);
    int64_t KH, KW, F = w->shape[w->ndim - 2], C = x->shape[2];
    kernel_hw(w, &KH, &KW);
    if (w->shape[w->ndim - 1] != C)
        return pn_error(PN_ESHAPE, "%s: input has %lld channels, kernel expects %lld", name,
                        (long long)C, (long long)w->shape[w->ndim - 1]);
    if (n->n_var == 2 && m->vars[n->var[1]].size != F)
        return pn_error(PN_ESHAPE, "%s: bias has %lld elements, kernel has %lld filters", name,
                        (long long)m->vars[n->var[1]].size, (long long)F);
    const int *a = n->iattr;
    if (a[0] < 1 || a[1] < 1 || a[2] < 1 || a[3] < 1)
        return pn_error(PN_EVALUE, "%s: strides and dilation rates must be >= 1, got (%d, %d) "
                        "and (%d, %d)", name, a[0], a[1], a[2], a[3]);
    if (a[4] < 0 || a[5] < 0 || a[6] < 1 || a[7] < 1)
        return pn_error(PN_EVALUE, "%s: pads must be >= 0 and the output size >= 1, got pads "
                        "(%d, %d), size (%d, %d)", name, a[4], a[5], a[6], a[7]);
    if (KH * KW * F > INT32_MAX || C > INT32_MAX)
        return pn_error(PN_ESHAPE, "%s: kernel (%lld, %lld, %lld, %lld) is too large", name,
                        (long long)KH, (long long)KW, (long long)F, (long long)C);
    n->dtype = PN_F32;
    n->ndim = 3;
    n->shape[0] = a[6];
    n->shape[1] = a[7];
    n->shape[2] = F;
    return PN_OK;
}

static int64_t conv2d_transpose_scratch(const pn_model *m, const pn_node *n, int64_t batch,
                                        int training) {
    conv_dims d = transpose_dims(n, pn_input_node(m, n, 0), &m->vars[n->var[0]], batch);
    return (d.direct ? 0 : d.R * d.K) + (training ? BIAS_CHUNKS * d.C : 0);
}

/* out = col2im(x W^T) + b */
static void conv2d_transpose_forward(const pn_node *n, const pn_ctx *c) {
    const conv_dims d = transpose_dims(n, c->in_node[0], c->var_info[0], c->batch);
    const int64_t pixels = d.B * d.H * d.W;
    float beta = 0.0f;
    if (n->n_var == 2) {
        fill_bias(c->out, c->var[1], pixels, d.C);
        beta = 1.0f;
    }
    if (d.direct) { /* out (R, Cout) = x W^T */
        pn_gemm(0, 1, d.R, d.K, d.OC, 1.0f, c->in[0], d.OC, c->var[0], d.OC, beta, c->out, d.K);
        return;
    }
    float *dcols = c->scratch; /* (R, K) */
    pn_gemm(0, 1, d.R, d.K, d.OC, 1.0f, c->in[0], d.OC, c->var[0], d.OC, 0.0f, dcols, d.K);
    col2im(c->out, dcols, &d, n->n_var == 2);
}

/* cols = im2col(dout): dW = cols^T x, dx = cols W, db = sum_pixels(dout) */
static void conv2d_transpose_backward(const pn_node *n, const pn_ctx *c) {
    const conv_dims d = transpose_dims(n, c->in_node[0], c->var_info[0], c->batch);
    const float *cols = c->dout;
    if (!d.direct) {
        im2col(c->scratch, c->dout, &d);
        cols = c->scratch;
    }
    float *part = c->scratch + (d.direct ? 0 : d.R * d.K);
    if (c->dvar[0]) /* dW (K, Cin) */
        pn_gemm(1, 0, d.K, d.OC, d.R, 1.0f, cols, d.K, c->in[0], d.OC,
                c->acc_var[0] ? 1.0f : 0.0f, c->dvar[0], d.OC);
    if (n->n_var == 2 && c->dvar[1])
        bias_grad(c->dvar[1], part, c->dout, d.B * d.H * d.W, d.C, c->acc_var[1]);
    if (c->din[0]) /* dx (R, Cin) */
        pn_gemm(0, 0, d.R, d.OC, d.K, 1.0f, cols, d.K, c->var[0], d.OC,
                c->acc_in[0] ? 1.0f : 0.0f, c->din[0], d.OC);
}

const pn_op_def pn_op_conv2d_transpose_def = {"conv2d_transpose", conv2d_transpose_shape,
                                              conv2d_transpose_forward,
                                              conv2d_transpose_backward,
                                              conv2d_transpose_scratch, PN_OPF_BWD_NO_OUT};
