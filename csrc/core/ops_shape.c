/*
 * ops_shape.c: the ops that move values without arithmetic on them: the input placeholder,
 * reshape (Flatten, Reshape), slice (one output of a node that packs several: return_state) and
 * zero_pad2d; and pn_image_input, the check that image ops (pools, padding) share.
 *
 * Attributes (iattr):
 *   input        none: the plan points its value at the caller's batch (or the gathered rows)
 *   target       [0] output k, [1] 0 its targets, 1 its sample weights: the plan points its
 *                value at the step's (gathered) data; made by pn_model_add_target only
 *   reshape      [0] target rank r (1..7), [1..r] the target dims
 *   slice        [0] offset within a sample  [1] rank r (1..6)  [2..2+r) dims
 *   zero_pad2d   [0] top [1] bottom [2] left [3] right (images channels-last: (H, W, C))
 */
#include <stdio.h>

#include "internal.h"

/* ---- shared checks -------------------------------------------------------------------------- */

/* One float32 input of rank 3, no variables; the input's per-sample size fits int32 indices. */
int pn_image_input(const pn_model *m, const pn_node *n, const pn_node **x) {
    const char *name = pn_op_name(n->op);
    if (n->n_in != 1 || n->n_var != 0)
        return pn_error(PN_EVALUE, "%s: takes one input and no weights, got %d inputs and %d "
                        "weights", name, n->n_in, n->n_var);
    *x = pn_input_node(m, n, 0);
    if ((*x)->dtype != PN_F32) return pn_error(PN_ETYPE, "%s: input must be float32", name);
    if ((*x)->ndim != 3)
        return pn_error(PN_ESHAPE, "%s: input must have rank 3 (H, W, C) besides the batch, got "
                        "rank %d", name, (*x)->ndim);
    if ((*x)->size > INT32_MAX)
        return pn_error(PN_ESHAPE, "%s: input has %lld elements per sample, at most %d supported",
                        name, (long long)(*x)->size, INT32_MAX);
    return PN_OK;
}

/* ---- input: a placeholder whose value the plan points at the caller's batch ---------------- */

static int input_shape(const pn_model *m, pn_node *n) {
    (void)m;
    if (n->n_in != 0 || n->n_var != 0) return pn_error(PN_EVALUE, "input: takes no inputs");
    return PN_OK;
}

static void input_forward(const pn_node *n, const pn_ctx *c) { (void)n, (void)c; }
static void input_backward(const pn_node *n, const pn_ctx *c) { (void)n, (void)c; }

const pn_op_def pn_op_input_def = {"input", input_shape, input_forward, input_backward, NULL, 0};

/* ---- target: a placeholder for a step's targets or sample weights (pn_model_add_target) ---- */

static int target_shape(const pn_model *m, pn_node *n) {
    (void)m, (void)n;
    return pn_error(PN_EVALUE, "target: made by pn_model_add_target, not as a node");
}

/* Never runs: the plan skips it and points its value at the step's data; nodes reading it run
 * only when a step bound that data (pn_plan_forward). Reaching here is a fault, not garbage. */
static void target_forward(const pn_node *n, const pn_ctx *c) {
    (void)n, (void)c;
    pn_fault_note(pn_error(PN_ESTATE, "target: read without a step's targets"));
}
static void target_backward(const pn_node *n, const pn_ctx *c) { (void)n, (void)c; }

const pn_op_def pn_op_target_def = {"target", target_shape, target_forward, target_backward,
                                    NULL, 0};

/* ---- zero_pad2d ---------------------------------------------------------------------------------
 * out[b, h + top, w + left, c] = inp[b,h,w,c], zero elsewhere     dinp = dout's interior
 * inp is (B, H, W, C), out (B, OH, OW, C) with OH = H + top + bottom, OW = W + left + right.
 */
static int zero_pad2d_shape(const pn_model *m, pn_node *n) {
    const pn_node *x = NULL;
    int rc = pn_image_input(m, n, &x);
    if (rc) return rc;
    const int *a = n->iattr;
    if (a[0] < 0 || a[1] < 0 || a[2] < 0 || a[3] < 0)
        return pn_error(PN_EVALUE, "zero_pad2d: padding must be >= 0, got top %d bottom %d left "
                        "%d right %d", a[0], a[1], a[2], a[3]);
    n->dtype = PN_F32;
    n->ndim = 3;
    n->shape[0] = x->shape[0] + a[0] + a[1];
    n->shape[1] = x->shape[1] + a[2] + a[3];
    n->shape[2] = x->shape[2];
    return PN_OK;
}

static void zero_pad2d_forward(const pn_node *n, const pn_ctx *c) {
    const int64_t B = c->batch, OH = n->shape[0], OW = n->shape[1], C = n->shape[2];
    const int64_t top = n->iattr[0], left = n->iattr[2], right = n->iattr[3];
    const int64_t H = OH - top - n->iattr[1], W = OW - left - right;
    const float *restrict inp = c->in[0];
    float *restrict out = c->out;
#pragma omp parallel for collapse(2) if (B * OH * OW * C > PN_PAR_MIN) num_threads(pn_threads)
    for (int64_t b = 0; b < B; b++)
        for (int64_t oh = 0; oh < OH; oh++) {
            float *y = out + (b * OH + oh) * OW * C;
            int64_t h = oh - top;
            if (h < 0 || h >= H) {
                memset(y, 0, (size_t)(OW * C) * sizeof(float));
                continue;
            }
            memset(y, 0, (size_t)(left * C) * sizeof(float));
            memcpy(y + left * C, inp + (b * H + h) * W * C, (size_t)(W * C) * sizeof(float));
            memset(y + (left + W) * C, 0, (size_t)(right * C) * sizeof(float));
        }
}

static void zero_pad2d_backward(const pn_node *n, const pn_ctx *c) {
    float *restrict dinp = c->din[0];
    if (!dinp) return;
    const int64_t B = c->batch, OH = n->shape[0], OW = n->shape[1], C = n->shape[2];
    const int64_t top = n->iattr[0], left = n->iattr[2];
    const int64_t H = OH - top - n->iattr[1], W = OW - left - n->iattr[3], WC = W * C;
    const float *restrict dout = c->dout;
    const int acc = c->acc_in[0];
#pragma omp parallel for collapse(2) if (B * H * WC > PN_PAR_MIN) num_threads(pn_threads)
    for (int64_t b = 0; b < B; b++)
        for (int64_t h = 0; h < H; h++) {
            float *restrict dx = dinp + (b * H + h) * WC;
            const float *restrict g = dout + ((b * OH + h + top) * OW + left) * C;
            if (acc)
                for (int64_t i = 0; i < WC; i++) dx[i] += g[i];
            else
                memcpy(dx, g, (size_t)WC * sizeof(float));
        }
}

const pn_op_def pn_op_zero_pad2d_def = {"zero_pad2d", zero_pad2d_shape, zero_pad2d_forward,
                                        zero_pad2d_backward, NULL,
                                        PN_OPF_BWD_NO_IN | PN_OPF_BWD_NO_OUT};

/* ---- reshape (Flatten, Reshape): out = inp with a new per-sample shape ------------------------
 * The same elements in the same order: forward copies, backward copies or adds dout back.
 */
static int reshape_shape(const pn_model *m, pn_node *n) {
    if (n->n_in != 1 || n->n_var != 0)
        return pn_error(PN_EVALUE, "reshape: takes one input and no weights, got %d inputs and %d "
                        "weights", n->n_in, n->n_var);
    const pn_node *x = pn_input_node(m, n, 0);
    if (x->dtype != PN_F32) return pn_error(PN_ETYPE, "reshape: input must be float32");
    int r = n->iattr[0];
    if (r < 1 || r > PN_MAX_DIMS - 1)
        return pn_error(PN_EVALUE, "reshape: target rank must be in 1..%d, got %d",
                        PN_MAX_DIMS - 1, r);
    int64_t size = 1;
    int more = 0; /* the product already exceeds the input's size (and may not fit int64) */
    char dims[128];
    int len = 0;
    for (int i = 0; i < r; i++) {
        int dim = n->iattr[1 + i];
        if (dim < 1)
            return pn_error(PN_EVALUE, "reshape: target dimension %d is %d, must be >= 1", i, dim);
        if (!more && size > x->size / dim) more = 1;
        if (!more) size *= dim;
        len += snprintf(dims + len, sizeof dims - (size_t)len, "%s%d", i ? ", " : "", dim);
    }
    if (more || size != x->size)
        return pn_error(PN_ESHAPE, "reshape: input has %lld elements per sample, target shape "
                        "(%s) holds %s%lld", (long long)x->size, dims, more ? "more than " : "",
                        (long long)(more ? x->size : size));
    n->dtype = PN_F32;
    n->ndim = r;
    for (int i = 0; i < r; i++) n->shape[i] = n->iattr[1 + i];
    return PN_OK;
}

static void reshape_forward(const pn_node *n, const pn_ctx *c) {
    memcpy(c->out, c->in[0], (size_t)(c->batch * n->size) * sizeof(float));
}

static void reshape_backward(const pn_node *n, const pn_ctx *c) {
    float *restrict dinp = c->din[0];
    if (!dinp) return;
    const int64_t N = c->batch * n->size;
    const float *restrict dout = c->dout;
    if (!c->acc_in[0]) {
        memcpy(dinp, dout, (size_t)N * sizeof(float));
        return;
    }
#pragma omp parallel for simd if (N > PN_PAR_MIN) num_threads(pn_threads)
    for (int64_t i = 0; i < N; i++) dinp[i] += dout[i];
}

const pn_op_def pn_op_reshape_def = {"reshape", reshape_shape, reshape_forward, reshape_backward,
                                     NULL, PN_OPF_BWD_NO_IN | PN_OPF_BWD_NO_OUT};

/* ---- slice: out = inp[:, offset : offset + size] with a new per-sample shape -----------------
 * forward copies; backward adds dout into those columns (a first writer zeroes the rest).
 */
static int slice_shape(const pn_model *m, pn_node *n) {
    if (n->n_in != 1 || n->n_var != 0)
        return pn_error(PN_EVALUE, "slice: takes one input and no weights, got %d inputs and %d "
                        "weights", n->n_in, n->n_var);
    const pn_node *x = pn_input_node(m, n, 0);
    if (x->dtype != PN_F32) return pn_error(PN_ETYPE, "slice: input must be float32");
    int r = n->iattr[1];
    if (r < 1 || r > PN_MAX_DIMS - 1)
        return pn_error(PN_EVALUE, "slice: rank must be in 1..%d, got %d", PN_MAX_DIMS - 1, r);
    int64_t off = n->iattr[0], size = 1;
    for (int i = 0; i < r; i++) {
        if (n->iattr[2 + i] < 1)
            return pn_error(PN_EVALUE, "slice: dimension %d is %d, must be >= 1", i,
                            n->iattr[2 + i]);
        size *= n->iattr[2 + i];
        if (size > x->size) break;
    }
    if (off < 0 || size > x->size || off > x->size - size)
        return pn_error(PN_ESHAPE, "slice: values [%lld, %lld + %lld) are outside a sample of %lld",
                        (long long)off, (long long)off, (long long)size, (long long)x->size);
    n->dtype = PN_F32;
    n->ndim = r;
    for (int i = 0; i < r; i++) n->shape[i] = n->iattr[2 + i];
    return PN_OK;
}

static void slice_forward(const pn_node *n, const pn_ctx *c) {
    const int64_t S = c->in_node[0]->size, N = n->size, off = n->iattr[0];
    for (int64_t b = 0; b < c->batch; b++)
        memcpy(c->out + b * N, c->in[0] + b * S + off, (size_t)N * sizeof(float));
}

static void slice_backward(const pn_node *n, const pn_ctx *c) {
    if (!c->din[0]) return;
    const int64_t S = c->in_node[0]->size, N = n->size, off = n->iattr[0];
    for (int64_t b = 0; b < c->batch; b++) {
        float *restrict d = c->din[0] + b * S;
        const float *restrict g = c->dout + b * N;
        if (c->acc_in[0]) {
            for (int64_t j = 0; j < N; j++) d[off + j] += g[j];
        } else {
            memset(d, 0, (size_t)S * sizeof(float));
            memcpy(d + off, g, (size_t)N * sizeof(float));
        }
    }
}

const pn_op_def pn_op_slice_def = {"slice", slice_shape, slice_forward, slice_backward, NULL,
                                   PN_OPF_BWD_NO_IN | PN_OPF_BWD_NO_OUT};
