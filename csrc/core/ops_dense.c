/* ops_dense.c: the dense (fully connected) layer. */
#include "internal.h"

/* ---- dense --------------------------------------------------------------------------------
 * Over the last axis, for rows = batch * (all other axes):
 *   out = inp W + b            dinp = dout W^T,  dW = inp^T dout,  db = sum_rows(dout)
 * Sizes: R rows, C input features, OC units. inp is (R, C), W (C, OC), b (OC), out (R, OC).
 * The bias is folded into the GEMM: out starts as b broadcast over rows, then beta = 1.
 */

/* The kernel as a matrix (C, OC): its first k axes are the inputs (k = iattr[1], 1 when 0),
 * the rest the units. Keras's EinsumDense kernels of MultiHeadAttention are (dim, H, kd) and
 * (H, vd, out): the same memory as (dim, H kd) and (H vd, out). */
static int dense_kernel_dims(const pn_node *n, const pn_var *w, int64_t *C, int64_t *OC) {
    int k = n->iattr[1] > 1 ? n->iattr[1] : 1;
    if (k >= w->ndim) return -1;
    int64_t c = 1, oc = 1;
    for (int i = 0; i < w->ndim; i++) {
        if (i < k) c *= w->shape[i];
        else oc *= w->shape[i];
    }
    *C = c;
    *OC = oc;
    return 0;
}

static int dense_check(const pn_model *m, pn_node *n) {
    if (n->n_in != 1) return pn_error(PN_EVALUE, "dense: takes one input, got %d", n->n_in);
    if (n->n_var < 1 || n->n_var > 2)
        return pn_error(PN_EVALUE, "dense: takes a kernel and an optional bias");
    const pn_node *x = pn_input_node(m, n, 0);
    if (x->dtype != PN_F32) return pn_error(PN_ETYPE, "dense: input must be float32");
    if (x->ndim < 1) return pn_error(PN_ESHAPE, "dense: input needs at least one axis besides the batch");
    if (n->iattr[1] < 0 || n->iattr[1] >= PN_MAX_DIMS)
        return pn_error(PN_EVALUE, "dense: the kernel's input axes (iattr[1]) must be in 0..%d, "
                        "got %d", PN_MAX_DIMS - 1, n->iattr[1]);
    const pn_var *w = &m->vars[n->var[0]];
    int64_t c = x->shape[x->ndim - 1], wc = -1, oc = 0;
    if (w->ndim < 2 || dense_kernel_dims(n, w, &wc, &oc) != 0 || wc != c)
        return pn_error(PN_ESHAPE, "dense: input has %lld features, kernel expects %lld",
                        (long long)c, (long long)wc);
    if (n->n_var == 2) {
        const pn_var *b = &m->vars[n->var[1]];
        if (b->size != oc || (w->ndim == 2 && b->ndim != 1))
            return pn_error(PN_ESHAPE, "dense: bias has %lld elements, kernel has %lld units",
                            (long long)b->size, (long long)oc);
    }
    n->dtype = PN_F32;
    n->ndim = x->ndim;
    memcpy(n->shape, x->shape, sizeof n->shape);
    n->shape[n->ndim - 1] = oc;
    return PN_OK;
}

/* iattr[0] holds C, cached from the kernel's shape when the node is added. */
static void dense_dims(const pn_node *n, const pn_ctx *c, int64_t *R, int64_t *C, int64_t *OC) {
    *OC = n->shape[n->ndim - 1];
    *R = c->batch * (n->size / *OC);
    *C = n->iattr[0];
}

/* ---- one row: single-sample inference ------------------------------------------------------
 * out[j] (+)= sum_k inp[k] W[k, j] for the columns [j0, j1). GEMM would repack all of W on every
 * call; these stream W once, row after row as it lies in memory, so they run at the speed of the
 * cache that holds W. With AVX-512 a block of 64 columns stays in four registers for all of C.
 */
#if defined(__AVX512F__)
#include <immintrin.h>
#define ROW_KERNEL_MIN_COLS 1 /* the masked tail makes narrow rows fast too */

static void dense_row_cols(float *restrict out, const float *restrict inp,
                           const float *restrict w, int64_t C, int64_t OC, int64_t j0, int64_t j1,
                           int add) {
    int64_t j = j0;
    for (; j + 64 <= j1; j += 64) {
        __m512 a0 = add ? _mm512_loadu_ps(out + j) : _mm512_setzero_ps();
        __m512 a1 = add ? _mm512_loadu_ps(out + j + 16) : _mm512_setzero_ps();
        __m512 a2 = add ? _mm512_loadu_ps(out + j + 32) : _mm512_setzero_ps();
        __m512 a3 = add ? _mm512_loadu_ps(out + j + 48) : _mm512_setzero_ps();
        const float *p = w + j;
        for (int64_t k = 0; k < C; k++, p += OC) {
            __m512 x = _mm512_set1_ps(inp[k]);
            a0 = _mm512_fmadd_ps(x, _mm512_loadu_ps(p), a0);
            a1 = _mm512_fmadd_ps(x, _mm512_loadu_ps(p + 16), a1);
            a2 = _mm512_fmadd_ps(x, _mm512_loadu_ps(p + 32), a2);
            a3 = _mm512_fmadd_ps(x, _mm512_loadu_ps(p + 48), a3);
        }
        _mm512_storeu_ps(out + j, a0);
        _mm512_storeu_ps(out + j + 16, a1);
        _mm512_storeu_ps(out + j + 32, a2);
        _mm512_storeu_ps(out + j + 48, a3);
    }
    for (; j < j1; j += 16) {
        __mmask16 m = j1 - j >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (j1 - j)) - 1u);
        __m512 a = add ? _mm512_maskz_loadu_ps(m, out + j) : _mm512_setzero_ps();
        const float *p = w + j;
        for (int64_t k = 0; k < C; k++, p += OC)
            a = _mm512_fmadd_ps(_mm512_set1_ps(inp[k]), _mm512_maskz_loadu_ps(m, p), a);
        _mm512_mask_storeu_ps(out + j, m, a);
    }
}
#elif defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define ROW_KERNEL_MIN_COLS 1

/* The same with 8-wide registers: a block of 32 columns in four accumulators; the last columns
 * in blocks of 8 with masked loads. About 2x the plain loop, which reloads and stores its row of
 * outputs for every k. */
static __m256i tail_mask(int64_t left) {
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)(left < 8 ? left : 8)), lane);
}

static void dense_row_cols(float *restrict out, const float *restrict inp,
                           const float *restrict w, int64_t C, int64_t OC, int64_t j0, int64_t j1,
                           int add) {
    int64_t j = j0;
    for (; j + 32 <= j1; j += 32) {
        __m256 a0 = add ? _mm256_loadu_ps(out + j) : _mm256_setzero_ps();
        __m256 a1 = add ? _mm256_loadu_ps(out + j + 8) : _mm256_setzero_ps();
        __m256 a2 = add ? _mm256_loadu_ps(out + j + 16) : _mm256_setzero_ps();
        __m256 a3 = add ? _mm256_loadu_ps(out + j + 24) : _mm256_setzero_ps();
        const float *p = w + j;
        for (int64_t k = 0; k < C; k++, p += OC) {
            __m256 x = _mm256_broadcast_ss(inp + k);
            a0 = _mm256_fmadd_ps(x, _mm256_loadu_ps(p), a0);
            a1 = _mm256_fmadd_ps(x, _mm256_loadu_ps(p + 8), a1);
            a2 = _mm256_fmadd_ps(x, _mm256_loadu_ps(p + 16), a2);
            a3 = _mm256_fmadd_ps(x, _mm256_loadu_ps(p + 24), a3);
        }
        _mm256_storeu_ps(out + j, a0);
        _mm256_storeu_ps(out + j + 8, a1);
        _mm256_storeu_ps(out + j + 16, a2);
        _mm256_storeu_ps(out + j + 24, a3);
    }
    for (; j < j1; j += 8) { /* four sums over every fourth k: one would wait on each fma */
        __m256i m = tail_mask(j1 - j);
        __m256 a0 = add ? _mm256_maskload_ps(out + j, m) : _mm256_setzero_ps();
        __m256 a1 = _mm256_setzero_ps(), a2 = _mm256_setzero_ps(), a3 = _mm256_setzero_ps();
        const float *p = w + j;
        int64_t k = 0;
        for (; k + 4 <= C; k += 4, p += 4 * OC) {
            a0 = _mm256_fmadd_ps(_mm256_broadcast_ss(inp + k), _mm256_maskload_ps(p, m), a0);
            a1 = _mm256_fmadd_ps(_mm256_broadcast_ss(inp + k + 1),
                                 _mm256_maskload_ps(p + OC, m), a1);
            a2 = _mm256_fmadd_ps(_mm256_broadcast_ss(inp + k + 2),
                                 _mm256_maskload_ps(p + 2 * OC, m), a2);
            a3 = _mm256_fmadd_ps(_mm256_broadcast_ss(inp + k + 3),
                                 _mm256_maskload_ps(p + 3 * OC, m), a3);
        }
        for (; k < C; k++, p += OC)
            a0 = _mm256_fmadd_ps(_mm256_broadcast_ss(inp + k), _mm256_maskload_ps(p, m), a0);
        _mm256_maskstore_ps(out + j, m, _mm256_add_ps(_mm256_add_ps(a0, a1),
                                                      _mm256_add_ps(a2, a3)));
    }
}
#else
#define ROW_KERNEL_MIN_COLS 32 /* below: OpenBLAS's GEMV, dot products down the few columns */
static void dense_row_cols(float *restrict out, const float *restrict inp,
                           const float *restrict w, int64_t C, int64_t OC, int64_t j0, int64_t j1,
                           int add) {
    if (!add) memset(out + j0, 0, (size_t)(j1 - j0) * sizeof(float));
    for (int64_t k = 0; k < C; k++) {
        const float xk = inp[k];
        const float *restrict wk = w + k * OC;
        for (int64_t j = j0; j < j1; j++) out[j] += xk * wk[j];
    }
}
#endif

typedef struct {
    float *out;
    const float *inp, *w;
    int64_t C, OC;
    int add;
} row_job;

/* Part p of a row: a block of columns, a multiple of 16 wide. */
static void dense_row_part(void *arg, int p, int parts) {
    const row_job *j = arg;
    int64_t per = ((j->OC + parts - 1) / parts + 15) / 16 * 16;
    int64_t j0 = p * per, j1 = j0 + per < j->OC ? j0 + per : j->OC;
    if (j0 < j1) dense_row_cols(j->out, j->inp, j->w, j->C, j->OC, j0, j1, j->add);
}

/* The threads share a large row by columns: each streams its part of W from its own core's
 * cache. The work is a few microseconds, so it runs on workers.c's spinning threads. */
static void dense_row(float *out, const float *inp, const float *w, int64_t C, int64_t OC,
                      int add) {
    row_job j = {out, inp, w, C, OC, add};
    pn_parallel(dense_row_part, &j, pn_threads > 1 && C * OC >= PN_ROW_PAR_MIN ? pn_threads : 1);
}

static void dense_forward(const pn_node *n, const pn_ctx *c) {
    int64_t R, C, OC;
    dense_dims(n, c, &R, &C, &OC);
    const float *inp = c->in[0];   /* (R, C) */
    const float *w = c->var[0];    /* (C, OC) */
    const float *b = n->n_var == 2 ? c->var[1] : NULL;
    float *out = c->out;           /* (R, OC) */
    if (R <= PN_GEMV_ROWS) {
        float beta = 0.0f;
        if (b) {
            for (int64_t r = 0; r < R; r++) memcpy(out + r * OC, b, (size_t)OC * sizeof(float));
            beta = 1.0f;
        }
        for (int64_t r = 0; r < R; r++) {
            if (OC >= ROW_KERNEL_MIN_COLS)
                dense_row(out + r * OC, inp + r * C, w, C, OC, b != NULL);
            else
                pn_sgemv(CblasRowMajor, CblasTrans, (int)C, (int)OC, 1.0f, w, (int)OC,
                         inp + r * C, 1, beta, out + r * OC, 1);
        }
        return;
    }
    pn_gemm_bias(R, OC, C, inp, C, w, OC, b, out, OC);
}

static void dense_backward(const pn_node *n, const pn_ctx *c) {
    int64_t R, C, OC;
    dense_dims(n, c, &R, &C, &OC);
    const float *dout = c->dout;   /* (R, OC) */
    if (c->din[0])                 /* dinp (R, C) = dout W^T */
        pn_gemm(0, 1, R, C, OC, 1.0f, dout, OC, c->var[0], OC, c->acc_in[0] ? 1.0f : 0.0f,
                c->din[0], C);
    if (c->dvar[0])                /* dW (C, OC) = inp^T dout */
        pn_gemm(1, 0, C, OC, R, 1.0f, c->in[0], C, dout, OC, c->acc_var[0] ? 1.0f : 0.0f,
                c->dvar[0], OC);
    if (n->n_var == 2 && c->dvar[1]) { /* db (OC) = sum over rows of dout */
        float *db = c->dvar[1];
        if (!c->acc_var[1]) memset(db, 0, (size_t)OC * sizeof(float));
        /* blocks of 64 columns, each summed down all the rows in order (the threads share the
         * pass, which reads all of dout, and the sums do not depend on how many there are) */
        const int64_t nblk = (OC + 63) / 64;
        PN_FOR(R * OC > PN_PAR_MIN, blk, nblk,
            const int64_t j0 = blk * 64, j1 = j0 + 64 < OC ? j0 + 64 : OC;
            for (int64_t r = 0; r < R; r++) {
                const float *restrict d = dout + r * OC;
                for (int64_t j = j0; j < j1; j++) db[j] += d[j];
            }
        );
    }
}

static int dense_shape(const pn_model *m, pn_node *n) {
    int rc = dense_check(m, n);
    int64_t C = 0, OC = 0;
    if (rc == PN_OK && dense_kernel_dims(n, &m->vars[n->var[0]], &C, &OC) == 0)
        n->iattr[0] = (int)C; /* for the kernels */
    return rc;
}

const pn_op_def pn_op_dense_def = {"dense", dense_shape, dense_forward, dense_backward, NULL,
                                   PN_OPF_BWD_NO_OUT};
