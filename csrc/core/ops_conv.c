/*
 * ops_conv.c: 2-D convolution over channels-last images, Keras's kernel layout.
 *
 * Per sample: input (H, W, C), kernel (KH, KW, C, OC), optional bias (OC), output (OH, OW, OC).
 * A kernel of rank 3 is (KW, C, OC) with KH = 1: Conv1D's kernel, run over (1, steps, C) images.
 *   iattr: [0] stride_h  [1] stride_w  [2] dilation_h  [3] dilation_w
 *          [4] pad_top   [5] pad_left  [6] pad_bottom  [7] pad_right   (explicit zero padding)
 *          [8] groups G (0 reads as 1)
 *   OH = (H + pad_top + pad_bottom - dilation_h * (KH - 1) - 1) / stride_h + 1, OW likewise.
 * Groups (Keras's `groups`): G divides C and OC; the kernel is (KH, KW, C / G, OC), and output
 * channels [g OC/G, (g+1) OC/G) see only input channels [g C/G, (g+1) C/G).
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
 * With G > 1 groups, group g is a convolution of its own: input channels [g Cg, (g+1) Cg),
 * Cg = C/G, the kernel's columns [g OCg, (g+1) OCg), OCg = OC/G (W_g, a (Kg, OCg) block of W
 * with leading dimension OC, Kg = KH*KW*Cg), and the output's same columns. The groups run one
 * after another on contiguous matrices, as G separate convolutions would: the input is first
 * split by groups into their own images (G, B*H*W, Cg) in one pass, and the products go to
 * (G, R, OCg) and from there, side by side, into the output in one pass. (Products that read
 * and wrote their groups' columns in place ran up to 3x slower: each group's pass touches every
 * cache line of a (rows, channels) matrix, and an im2col of a sliver of each pixel misses
 * cache as often as one of the whole pixel.)
 *   out_g = cols_g W_g,  out = [out_0 ... out_G-1] + b
 *   dout_g = dout's columns of group g,  dW_g = cols_g^T dout_g,  dcols_g = dout_g W_g^T,
 *   dinp = col2im(dcols), every group at once (an image's gradient stays in cache)
 * In training all G cols are kept for dW (G R Kg = R K floats, as with one group); inference
 * makes each group's cols in one (R, Kg) buffer in turn, which stays in cache for its product.
 * A 1x1 kernel (stride 1, no padding) multiplies the groups' images themselves.
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
/* Rows per block when the (G, R, OCg) products move to or from the (R, OC) output: a block of
 * the output stays in cache while each group's run of rows is copied. */
#define GROUP_ROWS 64

typedef struct {
    int64_t B, H, W, C, KH, KW, OC, OH, OW;
    int64_t sh, sw, dh, dw, pt, pl;
    int64_t R, K; /* the im2col matrix: R = B*OH*OW rows, K = KH*KW*C columns */
    int64_t G, Cg, OCg, Kg; /* groups; per group: C/G input channels, OC/G filters, K/G columns */
    int direct;   /* 1x1, stride 1, no padding: the input (with groups, their images) is cols */
} conv_dims;

/* The kernel's (KH, KW): a rank-3 kernel is (KW, C, OC) with KH = 1. */
static void kernel_hw(const pn_var *w, int64_t *KH, int64_t *KW) {
    *KH = w->ndim == 4 ? w->shape[0] : 1;
    *KW = w->shape[w->ndim - 3];
}

/* conv2d's groups: iattr[8], where 0 (a node made before groups) means 1 */
static int64_t groups_of(const pn_node *n) {
    return n->iattr[8] ? n->iattr[8] : 1;
}

/* The dims of a conv2d over images (H, W, C) that gives (OH, OW, OC) with n's strides,
 * dilations and top/left pads (iattr[0..5]), in G groups: a conv2d node's own (image: its
 * input), or the conv2d a conv2d_transpose node is the transpose of (image: its output; G = 1).
 * 1x1, stride 1, no padding (so OH = H, OW = W) reads the image itself as the cols matrix. */
static conv_dims dims_of(const pn_node *n, const pn_var *w, int64_t batch, const int64_t *image,
                         const int64_t *out, int64_t G) {
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
    d.G = G;
    d.Cg = d.C / G;
    d.OCg = d.OC / G;
    d.Kg = d.K / G;
    d.direct = d.KH == 1 && d.KW == 1 && d.sh == 1 && d.sw == 1 && d.pt == 0 && d.pl == 0 &&
               d.H == d.OH && d.W == d.OW;
    return d;
}

/* x is the input node, w the kernel */
static conv_dims conv_get_dims(const pn_node *n, const pn_node *x, const pn_var *w,
                               int64_t batch) {
    return dims_of(n, w, batch, x->shape, n->shape, groups_of(n));
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
    const int *a = n->iattr;
    if (a[8] < 0)
        return pn_error(PN_EVALUE, "conv2d: groups must be >= 1, got %d", a[8]);
    const int64_t G = groups_of(n);
    if (OC % G)
        return pn_error(PN_EVALUE, "conv2d: %lld filters are not a multiple of groups (%lld)",
                        (long long)OC, (long long)G);
    if (G == 1 && KC != C)
        return pn_error(PN_ESHAPE, "conv2d: input has %lld channels, kernel expects %lld",
                        (long long)C, (long long)KC);
    if (C % G || C / G != KC)
        return pn_error(PN_ESHAPE, "conv2d: input has %lld channels, kernel expects %lld per "
                        "group in %lld groups", (long long)C, (long long)KC, (long long)G);
    if (n->n_var == 2) {
        const pn_var *b = &m->vars[n->var[1]];
        if (b->size != OC)
            return pn_error(PN_ESHAPE, "conv2d: bias has %lld elements, kernel has %lld filters",
                            (long long)b->size, (long long)OC);
    }
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

/* A grouped conv2d's scratch, in this order: cols, every group's (G, R, Kg) kept for backward
 * in training, else one group's (R, Kg) at a time (made again in a backward after a forward that
 * was not training: an eager call under a tape, whose scratch is sized for training; none for a
 * 1x1 kernel, whose cols are the groups' images); the
 * products by groups (G, R, OCg), in backward dout by groups; the input by groups (G, B H W,
 * Cg); for backward, dcols (G, R, Kg) and the bias sums. size: the floats it takes (base NULL:
 * only the size). */
typedef struct {
    float *cols, *prod, *img, *dcols, *part;
    int64_t size;
} group_scratch;

static group_scratch group_layout(const conv_dims *d, float *base, int training) {
    const int64_t cols = d->direct ? 0 : training ? d->R * d->K : d->R * d->Kg;
    const int64_t len[5] = {cols, d->R * d->OC,
                            d->B * d->H * d->W * d->C, d->R * d->K, BIAS_CHUNKS * d->OC};
    float *p[5];
    int64_t off = 0;
    for (int i = 0; i < 5; i++) {
        p[i] = base ? base + off : NULL;
        off += len[i];
    }
    return (group_scratch){p[0], p[1], p[2], p[3], p[4], training ? off : off - len[3] - len[4]};
}

static int64_t conv2d_scratch(const pn_model *m, const pn_node *n, int64_t batch, int training) {
    conv_dims d = conv_get_dims(n, pn_input_node(m, n, 0), &m->vars[n->var[0]], batch);
    if (d.G > 1) return group_layout(&d, NULL, training).size;
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

/* cols (R, Kg) from the first Cg channels of inp (B, H, W, ld): one output pixel per row, its
 * taps in (kh, kw, c) order (ld = Cg = C for one group; a group's own image, ld = Cg, for more).
 * Filled tap by tap along a row of output pixels, so the bounds are worked out per tap, not per
 * element: zeros left of lo and from hi on, copies between. */
static void im2col(float *restrict cols, const float *restrict inp, const conv_dims *d,
                   int64_t ld) {
    const int64_t H = d->H, W = d->W, KH = d->KH, KW = d->KW, OH = d->OH, OW = d->OW;
    const int64_t K = d->Kg, Cg = d->Cg, sh = d->sh, sw = d->sw, dh = d->dh, dw = d->dw;
    const int64_t pt = d->pt, pl = d->pl;
    const size_t tap = (size_t)Cg * sizeof(float);
#pragma omp parallel for num_threads(pn_threads) if (d->R * K > PN_PAR_MIN)
    for (int64_t p = 0; p < d->B * OH; p++) { /* one row of output pixels (b, oh) */
        const int64_t b = p / OH, oh = p % OH;
        float *rows = cols + p * OW * K;
        for (int64_t kh = 0; kh < KH; kh++) {
            const int64_t ih = oh * sh - pt + kh * dh;
            if (ih < 0 || ih >= H) {
                for (int64_t ow = 0; ow < OW; ow++)
                    memset(rows + ow * K + kh * KW * Cg, 0, (size_t)KW * tap);
                continue;
            }
            const float *src = inp + ((b * H + ih) * W) * ld;
            for (int64_t kw = 0; kw < KW; kw++) {
                const int64_t off = kw * dw - pl;
                int64_t lo, hi, ow = 0;
                tap_range(off, sw, W, OW, &lo, &hi);
                float *dst = rows + (kh * KW + kw) * Cg;
                for (; ow < lo; ow++) memset(dst + ow * K, 0, tap);
                if (Cg == 1)
                    for (; ow < hi; ow++) dst[ow * K] = src[(ow * sw + off) * ld];
                else
                    for (; ow < hi; ow++) memcpy(dst + ow * K, src + (ow * sw + off) * ld, tap);
                for (; ow < OW; ow++) memset(dst + ow * K, 0, tap);
            }
        }
    }
}

/* dinp (B, H, W, C) (+)= the sum of every tap of dcols (G, R, Kg) at the pixel it read (group
 * g's block adds into its channels [g Cg, (g+1) Cg); one group: dcols (R, K)). Each block's rows
 * are read once, in order; the taps kw in [lo, hi) of an output pixel land inside the image.
 * Parallel over images: one thread owns each image's gradient, so no two threads add to the
 * same pixel, and it stays in cache while every group adds to it. */
static void col2im(float *restrict dinp, const float *restrict dcols, const conv_dims *d,
                   int acc) {
    const int64_t H = d->H, W = d->W, C = d->C, KH = d->KH, KW = d->KW, OH = d->OH, OW = d->OW;
    const int64_t K = d->Kg, Cg = d->Cg, sh = d->sh, sw = d->sw, dh = d->dh, dw = d->dw;
    const int64_t pt = d->pt, pl = d->pl, G = d->G, RK = d->R * d->Kg;
#pragma omp parallel for num_threads(pn_threads) if (d->B > 1 && d->R * d->K > PN_PAR_MIN)
    for (int64_t b = 0; b < d->B; b++) {
        float *restrict img = dinp + b * H * W * C;
        if (!acc) memset(img, 0, (size_t)(H * W * C) * sizeof(float));
        for (int64_t g = 0; g < G; g++) {
            const float *restrict src = dcols + g * RK + b * OH * OW * K;
            float *restrict grp = img + g * Cg;
            for (int64_t oh = 0; oh < OH; oh++)
                for (int64_t ow = 0; ow < OW; ow++) {
                    const int64_t off = ow * sw - pl; /* iw = kw * dw + off */
                    int64_t lo, hi;
                    tap_range(off, dw, W, KW, &lo, &hi);
                    for (int64_t kh = 0; kh < KH; kh++, src += KW * Cg) {
                        const int64_t ih = oh * sh - pt + kh * dh;
                        if (ih < 0 || ih >= H) continue;
                        float *restrict row = grp + ih * W * C;
                        if (Cg == 1)
                            for (int64_t kw = lo; kw < hi; kw++) row[(kw * dw + off) * C] += src[kw];
                        else
                            for (int64_t kw = lo; kw < hi; kw++) {
                                float *restrict px = row + (kw * dw + off) * C;
                                const float *restrict t = src + kw * Cg;
                                for (int64_t c = 0; c < Cg; c++) px[c] += t[c];
                            }
                    }
                }
        }
    }
}

/* Group g's cols (R, Kg) from the groups' images img (G, B H W, Cg): made in buf, or the
 * image itself for a 1x1 kernel (stride 1, no padding) */
static const float *group_cols(float *buf, const float *img, const conv_dims *d, int64_t g) {
    const float *img_g = img + g * d->B * d->H * d->W * d->Cg;
    if (d->direct) return img_g;
    im2col(buf, img_g, d, d->Cg);
    return buf;
}

/* grp (G, N, w) = x (N, G w) by groups of w columns: what G separate convolutions would read
 * (their inputs, their output gradients). In blocks of GROUP_ROWS rows of x, which stay in
 * cache while each group's run of them is copied. */
static void to_groups(float *restrict grp, const float *restrict x, int64_t N, int64_t G,
                      int64_t w) {
    PN_FOR(N * G * w > PN_PAR_MIN, blk, (N + GROUP_ROWS - 1) / GROUP_ROWS,
        const int64_t r0 = blk * GROUP_ROWS, r1 = r0 + GROUP_ROWS < N ? r0 + GROUP_ROWS : N;
        for (int64_t g = 0; g < G; g++)
            for (int64_t r = r0; r < r1; r++)
                memcpy(grp + (g * N + r) * w, x + (r * G + g) * w, (size_t)w * sizeof(float)););
}

/* y (N, G w) = grp (G, N, w) side by side, + b (G w values; NULL: none): the outputs of G
 * separate convolutions concatenated, in the same blocks */
static void from_groups(float *restrict y, const float *restrict grp, const float *restrict b,
                        int64_t N, int64_t G, int64_t w) {
    PN_FOR(N * G * w > PN_PAR_MIN, blk, (N + GROUP_ROWS - 1) / GROUP_ROWS,
        const int64_t r0 = blk * GROUP_ROWS, r1 = r0 + GROUP_ROWS < N ? r0 + GROUP_ROWS : N;
        for (int64_t g = 0; g < G; g++)
            for (int64_t r = r0; r < r1; r++) {
                float *restrict o = y + (r * G + g) * w;
                const float *restrict t = grp + (g * N + r) * w;
                if (b)
                    for (int64_t j = 0; j < w; j++) o[j] = t[j] + b[g * w + j];
                else
                    memcpy(o, t, (size_t)w * sizeof(float));
            });
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

/* Groups: out_g = cols_g W_g for each group on its own image, then out = [out_0 ...] + b */
static void conv2d_forward_groups(const pn_node *n, const pn_ctx *c, const conv_dims *d) {
    const group_scratch s = group_layout(d, c->scratch, c->training);
    to_groups(s.img, c->in[0], d->B * d->H * d->W, d->G, d->Cg);
    for (int64_t g = 0; g < d->G; g++) {
        float *buf = c->training ? s.cols + g * d->R * d->Kg : s.cols; /* kept for backward */
        pn_gemm(0, 0, d->R, d->OCg, d->Kg, 1.0f, group_cols(buf, s.img, d, g), d->Kg,
                c->var[0] + g * d->OCg, d->OC, 0.0f, s.prod + g * d->R * d->OCg, d->OCg);
    }
    from_groups(c->out, s.prod, n->n_var == 2 ? c->var[1] : NULL, d->R, d->G, d->OCg);
}

/* Groups: db = sum_rows(dout); dout_g = dout's columns of group g (made contiguous), then
 * dW_g = cols_g^T dout_g and dcols_g = dout_g W_g^T for each group; dinp = col2im(dcols) */
static void conv2d_backward_groups(const pn_node *n, const pn_ctx *c, const conv_dims *d) {
    const group_scratch s = group_layout(d, c->scratch, c->training);
    if (n->n_var == 2 && c->dvar[1])
        bias_grad(c->dvar[1], s.part, c->dout, d->R, d->OC, c->acc_var[1]);
    if (!c->dvar[0] && !c->din[0]) return;
    float *grp = s.prod; /* dout by groups (G, R, OCg) */
    to_groups(grp, c->dout, d->R, d->G, d->OCg);
    if (c->dvar[0] && !c->training) /* the forward kept no cols: they are made again */
        to_groups(s.img, c->in[0], d->B * d->H * d->W, d->G, d->Cg);
    for (int64_t g = 0; g < d->G; g++) {
        const float *dout_g = grp + g * d->R * d->OCg;
        if (c->dvar[0]) { /* dW_g (Kg, OCg) */
            const float *cols_g = c->training && !d->direct ? s.cols + g * d->R * d->Kg
                                                            : group_cols(s.cols, s.img, d, g);
            pn_gemm(1, 0, d->Kg, d->OCg, d->R, 1.0f, cols_g, d->Kg, dout_g, d->OCg,
                    c->acc_var[0] ? 1.0f : 0.0f, c->dvar[0] + g * d->OCg, d->OC);
        }
        if (c->din[0]) /* dcols_g (R, Kg) */
            pn_gemm(0, 1, d->R, d->Kg, d->OCg, 1.0f, dout_g, d->OCg, c->var[0] + g * d->OCg,
                    d->OC, 0.0f, s.dcols + g * d->R * d->Kg, d->Kg);
    }
    if (c->din[0]) col2im(c->din[0], s.dcols, d, c->acc_in[0]);
}

/* out = cols W + b */
static void conv2d_forward(const pn_node *n, const pn_ctx *c) {
    const conv_dims d = conv_get_dims(n, c->in_node[0], c->var_info[0], c->batch);
    if (d.G > 1) {
        conv2d_forward_groups(n, c, &d);
        return;
    }
    const float *cols = c->in[0]; /* (R, K) */
    if (!d.direct) {
        im2col(c->scratch, c->in[0], &d, d.C);
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
    if (d.G > 1) {
        conv2d_backward_groups(n, c, &d);
        return;
    }
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
    return dims_of(n, w, batch, n->shape, x->shape, 1);
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
        im2col(c->scratch, c->dout, &d, d.C);
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
