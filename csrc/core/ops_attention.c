/*
 * ops_attention.c: fused multi-head scaled dot-product attention (Keras 3 MultiHeadAttention's
 * core, between its four projections, which are dense ops).
 *
 * Inputs (per sample): q (Tq, H kd), k (Tk, H kd), v (Tk, H vd), and optionally a mask (Tq, Tk)
 * of float32 or int32 (non-zero: attend, 0: masked, as Keras's attention_mask). Head h reads the
 * columns h kd .. (h+1) kd of q and k and h vd .. (h+1) vd of v: the dense projections' outputs
 * as they lie, so nothing is transposed or copied. Output (Tq, H vd), head h in its columns.
 *   iattr [0] H heads  [1] kd  [2] vd  [3] causal (1: query i attends keys j <= i, Keras's and
 *         PyTorch's top-left aligned lower triangle)
 *   fattr [0] dropout rate on the attention probabilities, in [0, 1) (training only)
 *
 * Per (b, h), with a = 1 / sqrt(kd), M the combined mask (mask != 0 and, if causal, j <= i):
 *   S = a Q K^T,  P = softmax over the keys of S where M, 0 elsewhere
 *   Pd = P keep / (1 - rate)          keep_ij: draw n = ((b H + h) Tq + i) Tk + j of a
 *                                     counter-based stream, >= rate: 24 bits of
 *                                     pn_hash64(seed ^ salt, n / 2), the top ones for even n,
 *                                     bits 16..39 for odd n (two draws per hash: the hash is
 *                                     most of dropout's cost)
 *   O = Pd V
 * backward:  dV = Pd^T dO,  dPd = dO V^T,  dP = dPd keep / (1 - rate),
 *            dS = P (dP - rowsum(P dP)),  dQ = a dS K,  dK = a dS^T Q,  the mask gets none.
 * A fully masked row: Keras adds -1e9 to masked scores, so such a row's softmax is uniform over
 * all Tk keys (PyTorch gives NaN). We follow Keras: P = 1 / Tk on that row, a constant, so it
 * sends no gradient to Q and K (only to V through O).
 *
 * Work: (b, h) pairs are independent; OpenMP splits them over threads. Within a pair the queries
 * run in blocks of bq rows against all the keys they may see (causal: keys < the block's end),
 * each block's scores one (bq, Tk) buffer, bq = 64 rows, fewer for long keys (a block holds at
 * most ATTN_BLOCK scores: 16 slots stay ~30 MB at Tk = 4096); the products run on the thread
 * that owns the pair, in a small register kernel (mm, below) over K^T and V^T copied once per
 * pair; the softmax's exponentials in a vectorised expf (vmath.h). The buffers belong to
 * ATTN_SLOTS work slots, not to threads: slot s runs pairs s, s + ATTN_SLOTS, ..., so the scratch
 * size and the results do not depend on the thread count.
 *
 * Store or recompute: backward needs P. When Tq Tk <= ATTN_STORE_MAX (contexts up to 256) the
 * training forward keeps P (and with dropout the dropped Pd, so backward hashes no mask again:
 * dropout at 0.1 cost 2x the op's training time before) for every (b, h) in scratch and
 * backward reads them; above that the
 * forward keeps only each row's log-sum-exp (kept in both cases) and backward recomputes the
 * scores of one block at a time (flash-attention style), so no more than one block of scores per
 * slot exists at once. Measured (causal, H=4, kd=32, B T = 2048 tokens, one thread, forward +
 * backward, fastest of 300): T=64 store 3.67 ms vs recompute 4.45; T=128 5.27 vs 6.01; T=256 9.15
 * vs 9.95. Storing wins at every length measured, by less as T grows, while its memory grows as
 * B H T^2 (8 MB at T=256 for 2048 tokens); past 256 the quadratic memory is not worth 8%.
 *
 * Causal without a mask: a row block's products skip what lies above the diagonal (mm's causal
 * hints), about 40% of the work at T=64, and the softmax exponentiates only the visible keys.
 *
 * Scratch (floats): [P: B H Tq Tk (store, training)] [Pd: B H Tq Tk (store, dropout)]
 *                   [lse: B H Tq (INFINITY marks a fully masked row)]
 *                   then per slot: S (BQ Tk), dP (BQ Tk), [Pd (BQ Tk), with dropout], K^T (kd Tk),
 *                   V^T (vd Tk).
 */
#include <math.h>

#include "internal.h"
#include "vmath.h"

#define ATTN_BQ 64        /* query rows per block, at most */
#define ATTN_BLOCK 65536  /* scores per block, at most (unless that leaves under 8 rows) */
#define ATTN_SLOTS 16     /* work slots, each with its own block buffers */
#ifndef ATTN_STORE_MAX
#define ATTN_STORE_MAX (256 * 256) /* keep P for backward up to this many scores per head */
#endif
#define ATTN_SALT 0x6174746e5f64726full /* "attn_dro": this op's dropout stream */

typedef struct {
    int64_t B, Tq, Tk, H, kd, vd;
    int causal, store, drop, has_mask, mask_int;
    float rate, scale;
    int64_t slots, bq, blk; /* work slots; rows per block; floats per block buffer (bq Tk) */
} attn_dims;

static attn_dims attn_dims_of(const pn_node *n, const pn_node *q, const pn_node *k, int has_mask,
                              int mask_int, int64_t batch, int training) {
    attn_dims d;
    d.B = batch;
    d.Tq = q->shape[0];
    d.Tk = k->shape[0];
    d.H = n->iattr[0];
    d.kd = n->iattr[1];
    d.vd = n->iattr[2];
    d.causal = n->iattr[3];
    d.rate = n->fattr[0];
    d.drop = training && d.rate > 0.0f;
    d.store = training && d.Tq * d.Tk <= ATTN_STORE_MAX;
    d.has_mask = has_mask;
    d.mask_int = mask_int;
    d.scale = 1.0f / sqrtf((float)d.kd);
    d.slots = d.B * d.H < ATTN_SLOTS ? d.B * d.H : ATTN_SLOTS;
    d.bq = ATTN_BLOCK / d.Tk < ATTN_BQ ? ATTN_BLOCK / d.Tk / 8 * 8 : ATTN_BQ;
    if (d.bq < 8) d.bq = 8;
    if (d.bq > d.Tq) d.bq = d.Tq;
    d.blk = (d.bq * d.Tk + 15) / 16 * 16;
    return d;
}

/* P, and with dropout Pd too (so backward draws no mask again) */
static int64_t attn_store_floats(const attn_dims *d) {
    return d->store ? (d->drop ? 2 : 1) * d->B * d->H * d->Tq * d->Tk : 0;
}

/* kept in inference too: an eager call made with training=False may still run backward */
static int64_t attn_lse_floats(const attn_dims *d) { return (d->B * d->H * d->Tq + 15) / 16 * 16; }

/* per slot: S, dP, [Pd] blocks, then K^T and V^T of the current pair */
static int64_t attn_slot_floats(const attn_dims *d) {
    return (d->drop ? 3 : 2) * d->blk + (d->kd * d->Tk + 15) / 16 * 16 +
           (d->vd * d->Tk + 15) / 16 * 16;
}

static attn_dims attn_dims_ctx(const pn_node *n, const pn_ctx *c) {
    int has_mask = n->n_in == 4;
    return attn_dims_of(n, c->in_node[0], c->in_node[1], has_mask,
                        has_mask && c->in_node[3]->dtype == PN_I32, c->batch, c->training);
}

static int64_t attn_scratch(const pn_model *m, const pn_node *n, int64_t batch, int training) {
    int has_mask = n->n_in == 4;
    attn_dims d = attn_dims_of(n, pn_input_node(m, n, 0), pn_input_node(m, n, 1), has_mask,
                               has_mask && pn_input_node(m, n, 3)->dtype == PN_I32, batch,
                               training);
    return attn_store_floats(&d) + attn_lse_floats(&d) + d.slots * attn_slot_floats(&d);
}

/* attention (scores = 0: q, k, v [, mask] -> (Tq, H vd)) and attention_scores (scores = 1:
 * q, k [, mask] -> (H, Tq, Tk)): the same checks of heads, sizes and mask */
static int attn_check(const pn_model *m, pn_node *n, int scores) {
    const char *name = scores ? "attention_scores" : "attention";
    const int nqkv = scores ? 2 : 3; /* the mask, if any, follows q, k (and v) */
    if ((n->n_in != nqkv && n->n_in != nqkv + 1) || n->n_var != 0)
        return pn_error(PN_EVALUE, "%s: takes %s and an optional mask and no weights, got %d "
                        "inputs and %d weights", name, scores ? "q, k" : "q, k, v", n->n_in,
                        n->n_var);
    int H = n->iattr[0], kd = n->iattr[1], vd = scores ? 1 : n->iattr[2], causal = n->iattr[3];
    float rate = n->fattr[0];
    if (H < 1 || kd < 1 || vd < 1)
        return pn_error(PN_EVALUE, "%s: heads, key_dim and value_dim must be >= 1, got %d, %d, "
                        "%d", name, H, kd, vd);
    if (causal != 0 && causal != 1)
        return pn_error(PN_EVALUE, "%s: causal (iattr 3) must be 0 or 1, got %d", name, causal);
    if (!(rate >= 0.0f && rate < 1.0f) || (scores && rate != 0.0f))
        return pn_error(PN_EVALUE, "%s: dropout must be in [0, 1)%s, got %g", name,
                        scores ? " (the scores are taken before it: 0)" : "", rate);
    static const char *names[3] = {"query", "key", "value"};
    const pn_node *qkv[3] = {NULL, NULL, NULL};
    for (int i = 0; i < nqkv; i++) {
        qkv[i] = pn_input_node(m, n, i);
        if (qkv[i]->dtype != PN_F32)
            return pn_error(PN_ETYPE, "%s: the %s must be float32", name, names[i]);
        if (qkv[i]->ndim != 2)
            return pn_error(PN_ESHAPE, "%s: the %s must be (batch, steps, features), got rank "
                            "%d", name, names[i], qkv[i]->ndim + 1);
    }
    const pn_node *q = qkv[0], *k = qkv[1], *v = qkv[2];
    int64_t HK = (int64_t)H * kd, HV = (int64_t)H * vd;
    if (q->shape[1] != HK || k->shape[1] != HK)
        return pn_error(PN_ESHAPE, "%s: query and key need %d heads x %d = %lld features, got "
                        "%lld and %lld", name, H, kd, (long long)HK, (long long)q->shape[1],
                        (long long)k->shape[1]);
    if (v && v->shape[1] != HV)
        return pn_error(PN_ESHAPE, "%s: value needs %d heads x %d = %lld features, got %lld",
                        name, H, vd, (long long)HV, (long long)v->shape[1]);
    if (v && k->shape[0] != v->shape[0])
        return pn_error(PN_ESHAPE, "%s: key has %lld steps but value has %lld", name,
                        (long long)k->shape[0], (long long)v->shape[0]);
    if (n->n_in == nqkv + 1) {
        const pn_node *mk = pn_input_node(m, n, nqkv);
        if (mk->dtype != PN_F32 && mk->dtype != PN_I32)
            return pn_error(PN_ETYPE, "%s: the mask must be float32 or int32", name);
        if (mk->ndim != 2 || mk->shape[0] != q->shape[0] || mk->shape[1] != k->shape[0])
            return pn_error(PN_ESHAPE, "%s: the mask must be (batch, %lld, %lld) for %lld "
                            "queries and %lld keys, got rank %d%s", name,
                            (long long)q->shape[0], (long long)k->shape[0],
                            (long long)q->shape[0], (long long)k->shape[0], mk->ndim + 1,
                            mk->ndim == 2 ? " of another shape" : "");
    }
    if (scores && (double)H * (double)q->shape[0] * (double)k->shape[0] > INT32_MAX)
        return pn_error(PN_ESHAPE, "%s: %d heads x %lld x %lld scores per sample are too many",
                        name, H, (long long)q->shape[0], (long long)k->shape[0]);
    n->dtype = PN_F32;
    if (scores) {
        n->ndim = 3;
        n->shape[0] = H, n->shape[1] = q->shape[0], n->shape[2] = k->shape[0];
    } else {
        n->ndim = 2;
        n->shape[0] = q->shape[0], n->shape[1] = HV;
    }
    return PN_OK;
}

static int attn_shape(const pn_model *m, pn_node *n) { return attn_check(m, n, 0); }

/* ---- small products on one thread ------------------------------------------------------------
 * C (M, N) = alpha A B (+ C with add), A(i, k) = A[i sai + k sak] (so A or A^T, any strides),
 * B(k, j) = B[k ldb + j] (rows of B contiguous). The blocks here are small (64 x 64 x 32 for the
 * char GPT): OpenBLAS's packing of both operands costs more than the product, so a register
 * kernel computes 6 rows x 16 columns at a time (12 of the 16 AVX2 registers accumulate, enough
 * FMAs in flight), reading B's rows straight from L1.
 */
/* Causal hints (no mask): what of a product is known to be zero or not needed, for queries
 * numbered from off. N: C's columns (keys) beyond each row's (query's) last key are not needed;
 * K: A's columns (keys) beyond each row's query are zero; KT: A(i, k) is zero for queries
 * off + k before key i. */
enum { MM_FULL = 0, MM_TRI_N, MM_TRI_K, MM_TRI_KT };

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>

static inline __m256i mm_lanes(int64_t left) {
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)(left < 8 ? (left < 0 ? 0 : left) : 8)), lane);
}

static inline void mm_store(float *c, __m256 v, __m256 alpha, int add, int full, __m256i m) {
    v = _mm256_mul_ps(v, alpha);
    if (full) {
        if (add) v = _mm256_add_ps(v, _mm256_loadu_ps(c));
        _mm256_storeu_ps(c, v);
    } else {
        if (add) v = _mm256_add_ps(v, _mm256_maskload_ps(c, m));
        _mm256_maskstore_ps(c, m, v);
    }
}

/* rows i..i+R-1 (R = 1, 4 or 6), columns j..j+16 (the last ones masked unless full) */
__attribute__((always_inline)) static inline void mm_block(float *C, int64_t ldc, const float *A,
                                                         int64_t sai, int64_t sak,
                            const float *B, int64_t ldb, int64_t K, int64_t left, float alpha,
                            int add, int R, int full) {
    __m256i m0 = mm_lanes(left), m1 = mm_lanes(left - 8);
    __m256 c00 = _mm256_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00,
           c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
    const float *a = A, *b = B;
    for (int64_t k = 0; k < K; k++, a += sak, b += ldb) {
        __m256 b0 = full ? _mm256_loadu_ps(b) : _mm256_maskload_ps(b, m0);
        __m256 b1 = full ? _mm256_loadu_ps(b + 8) : _mm256_maskload_ps(b + 8, m1);
        __m256 x = _mm256_broadcast_ss(a);
        c00 = _mm256_fmadd_ps(x, b0, c00);
        c01 = _mm256_fmadd_ps(x, b1, c01);
        if (R >= 4) {
            x = _mm256_broadcast_ss(a + sai);
            c10 = _mm256_fmadd_ps(x, b0, c10);
            c11 = _mm256_fmadd_ps(x, b1, c11);
            x = _mm256_broadcast_ss(a + 2 * sai);
            c20 = _mm256_fmadd_ps(x, b0, c20);
            c21 = _mm256_fmadd_ps(x, b1, c21);
            x = _mm256_broadcast_ss(a + 3 * sai);
            c30 = _mm256_fmadd_ps(x, b0, c30);
            c31 = _mm256_fmadd_ps(x, b1, c31);
        }
        if (R == 6) {
            x = _mm256_broadcast_ss(a + 4 * sai);
            c40 = _mm256_fmadd_ps(x, b0, c40);
            c41 = _mm256_fmadd_ps(x, b1, c41);
            x = _mm256_broadcast_ss(a + 5 * sai);
            c50 = _mm256_fmadd_ps(x, b0, c50);
            c51 = _mm256_fmadd_ps(x, b1, c51);
        }
    }
    __m256 va = _mm256_set1_ps(alpha);
    mm_store(C, c00, va, add, full, m0);
    if (full || left > 8) mm_store(C + 8, c01, va, add, full, m1);
    if (R == 6) {
        mm_store(C + 4 * ldc, c40, va, add, full, m0);
        mm_store(C + 5 * ldc, c50, va, add, full, m0);
        if (full || left > 8) {
            mm_store(C + 4 * ldc + 8, c41, va, add, full, m1);
            mm_store(C + 5 * ldc + 8, c51, va, add, full, m1);
        }
    }
    if (R >= 4) {
        mm_store(C + ldc, c10, va, add, full, m0);
        mm_store(C + 2 * ldc, c20, va, add, full, m0);
        mm_store(C + 3 * ldc, c30, va, add, full, m0);
        if (full || left > 8) {
            mm_store(C + ldc + 8, c11, va, add, full, m1);
            mm_store(C + 2 * ldc + 8, c21, va, add, full, m1);
            mm_store(C + 3 * ldc + 8, c31, va, add, full, m1);
        }
    }
}

/* The part of rows [i, i + R) that a causal product needs, without a mask, for queries numbered
 * from off: columns [0, *n) and inner indices [*k0, *k1). */
static inline void mm_bounds(int tri, int64_t off, int64_t i, int64_t R, int64_t N, int64_t K,
                             int64_t *n, int64_t *k0, int64_t *k1) {
    int64_t last = off + i + R; /* one past the last key these queries see */
    *n = tri == MM_TRI_N && last < N ? last : N;
    *k1 = tri == MM_TRI_K && last < K ? last : K;
    *k0 = tri == MM_TRI_KT && i > off ? (i - off < K ? i - off : K) : 0;
}

__attribute__((always_inline)) static inline void mm_rows(float *C, int64_t ldc, const float *A,
                                                        int64_t sai, int64_t sak,
                                                        const float *B, int64_t ldb, int64_t i,
                                                        int64_t N, int64_t K, float alpha,
                                                        int add, int tri, int64_t off, int R) {
    int64_t n, k0, k1;
    mm_bounds(tri, off, i, R, N, K, &n, &k0, &k1);
    const float *a = A + i * sai + k0 * sak, *b = B + k0 * ldb;
    for (int64_t j = 0; j < n; j += 16) {
        if (n - j >= 16)
            mm_block(C + i * ldc + j, ldc, a, sai, sak, b + j, ldb, k1 - k0, 16, alpha, add, R, 1);
        else
            mm_block(C + i * ldc + j, ldc, a, sai, sak, b + j, ldb, k1 - k0, n - j, alpha, add, R,
                     0);
    }
}

static void mm(float *C, int64_t ldc, const float *A, int64_t sai, int64_t sak, const float *B,
               int64_t ldb, int64_t M, int64_t N, int64_t K, float alpha, int add, int tri,
               int64_t off) {
    int64_t i = 0;
    for (; i + 6 <= M; i += 6)
        mm_rows(C, ldc, A, sai, sak, B, ldb, i, N, K, alpha, add, tri, off, 6);
    for (; i + 4 <= M; i += 4)
        mm_rows(C, ldc, A, sai, sak, B, ldb, i, N, K, alpha, add, tri, off, 4);
    for (; i < M; i++) mm_rows(C, ldc, A, sai, sak, B, ldb, i, N, K, alpha, add, tri, off, 1);
}
#else
/* the plain loops compute every entry: the causal hints (tri, off) only skip zeros */
static void mm(float *C, int64_t ldc, const float *A, int64_t sai, int64_t sak, const float *B,
               int64_t ldb, int64_t M, int64_t N, int64_t K, float alpha, int add, int tri,
               int64_t off) {
    (void)tri, (void)off;
    for (int64_t i = 0; i < M; i++) {
        float *restrict c = C + i * ldc;
        if (!add) memset(c, 0, (size_t)N * sizeof(float));
        for (int64_t k = 0; k < K; k++) {
            const float a = alpha * A[i * sai + k * sak];
            const float *restrict b = B + k * ldb;
            for (int64_t j = 0; j < N; j++) c[j] += a * b[j];
        }
    }
}
#endif

/* dst (cols, rows) = src (rows, cols)^T, src with row stride lds */
static void transpose(float *restrict dst, const float *restrict src, int64_t rows, int64_t cols,
                      int64_t lds) {
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < cols; c++) dst[c * rows + r] = src[r * lds + c];
}

/* p[j] = e^(p[j] - m) for j < n; returns their sum */
static float exp_shift(float *p, int64_t n, float m) {
    int64_t j = 0;
    float sum = 0.0f;
#ifdef PN_VMATH_AVX2
    __m256 vm = _mm256_set1_ps(m), acc = _mm256_setzero_ps();
    for (; j + 8 <= n; j += 8) {
        __m256 e = pn_exp8(_mm256_sub_ps(_mm256_loadu_ps(p + j), vm));
        _mm256_storeu_ps(p + j, e);
        acc = _mm256_add_ps(acc, e);
    }
    float part[8];
    _mm256_storeu_ps(part, acc);
    for (int k = 0; k < 8; k++) sum += part[k];
#endif
    for (; j < n; j++) {
        p[j] = pn_exp(p[j] - m);
        sum += p[j];
    }
    return sum;
}

/* The keys row i of a block may see: causal limits it to i + 1. */
static inline int64_t attn_row_keys(const attn_dims *d, int64_t i) {
    return d->causal && i + 1 < d->Tk ? i + 1 : d->Tk;
}

/* The keys a block of rows r0..r1 reads: with a mask every row may need all of them (a fully
 * masked row is uniform over all Tk keys). */
static inline int64_t attn_block_keys(const attn_dims *d, int64_t r1) {
    return d->causal && !d->has_mask && r1 < d->Tk ? r1 : d->Tk;
}

static inline int attn_masked(const attn_dims *d, const void *mrow, int64_t j) {
    return d->mask_int ? ((const int32_t *)mrow)[j] == 0 : ((const float *)mrow)[j] == 0.0f;
}

/* Row softmax in place over the first `kn` of `ld` columns: s (scaled scores) -> P. Keys j >=
 * the row's limit or masked get 0. Returns log-sum-exp, or INFINITY for a fully masked row
 * (P = 1 / Tk over all kn = Tk keys). */
static float attn_softmax_row(float *restrict p, const attn_dims *d, const void *mrow,
                              int64_t i, int64_t kn) {
    int64_t lim = attn_row_keys(d, i);
    if (lim > kn) lim = kn;
    if (mrow)
        for (int64_t j = 0; j < lim; j++)
            if (attn_masked(d, mrow, j)) p[j] = -INFINITY;
    for (int64_t j = lim; j < kn; j++) p[j] = 0.0f; /* beyond the causal limit: P = 0 */
    float mx = -INFINITY;
#pragma omp simd reduction(max : mx)
    for (int64_t j = 0; j < lim; j++) mx = p[j] > mx ? p[j] : mx;
    if (mx == -INFINITY) {
        float u = 1.0f / (float)d->Tk;
        for (int64_t j = 0; j < kn; j++) p[j] = u;
        return INFINITY;
    }
    float sum = exp_shift(p, lim, mx), inv = 1.0f / sum;
#pragma omp simd
    for (int64_t j = 0; j < lim; j++) p[j] *= inv;
    return mx + logf(sum);
}

/* The probabilities of one block again from the scores: P = exp(S - lse). */
static void attn_recompute_row(float *restrict p, const attn_dims *d, const void *mrow,
                               int64_t i, int64_t kn, float lse) {
    if (lse == INFINITY) {
        float u = 1.0f / (float)d->Tk;
        for (int64_t j = 0; j < kn; j++) p[j] = u;
        return;
    }
    int64_t lim = attn_row_keys(d, i);
    if (lim > kn) lim = kn;
    if (mrow)
        for (int64_t j = 0; j < lim; j++)
            if (attn_masked(d, mrow, j)) p[j] = -INFINITY;
    for (int64_t j = lim; j < kn; j++) p[j] = 0.0f;
    exp_shift(p, lim, lse);
}

/* out = in keep / (1 - rate) for row i of pair bh over kn keys (out may be in) */
#ifdef PN_VMATH_AVX2
/* a * c mod 2^64 in each 64-bit lane (AVX2 has no 64-bit multiply) */
static inline __m256i mul64c(__m256i a, uint64_t c) {
    const __m256i clo = _mm256_set1_epi64x((long long)(c & 0xFFFFFFFFu)),
                  chi = _mm256_set1_epi64x((long long)(c >> 32));
    __m256i lo = _mm256_mul_epu32(a, clo);
    __m256i mid = _mm256_add_epi64(_mm256_mul_epu32(_mm256_srli_epi64(a, 32), clo),
                                   _mm256_mul_epu32(a, chi));
    return _mm256_add_epi64(lo, _mm256_slli_epi64(mid, 32));
}

/* pn_hash64(key, i) for 4 counters i */
static inline __m256i hash4(uint64_t key, __m256i i) {
    __m256i z = _mm256_add_epi64(_mm256_set1_epi64x((long long)key),
                                 mul64c(_mm256_add_epi64(i, _mm256_set1_epi64x(1)),
                                        0x9E3779B97F4A7C15ull));
    z = mul64c(_mm256_xor_si256(z, _mm256_srli_epi64(z, 30)), 0xBF58476D1CE4E5B9ull);
    z = mul64c(_mm256_xor_si256(z, _mm256_srli_epi64(z, 27)), 0x94D049BB133111EBull);
    return _mm256_xor_si256(z, _mm256_srli_epi64(z, 31));
}
#endif

static void attn_dropout_row(float *out, const float *in, const attn_dims *d,
                             uint64_t key, int64_t bh, int64_t i, int64_t kn) {
    const float sc = 1.0f / (1.0f - d->rate);
    const uint64_t thr = (uint64_t)ceil((double)d->rate * 16777216.0);
    uint64_t idx = ((uint64_t)bh * (uint64_t)d->Tq + (uint64_t)i) * (uint64_t)d->Tk;
    int64_t j = 0;
    if (kn > 0 && (idx & 1)) { /* the row starts on an odd draw: the low half of a hash */
        out[0] = ((pn_hash64(key, idx >> 1) >> 16) & 0xFFFFFF) >= thr ? in[0] * sc : 0.0f;
        j = 1, idx++;
    }
#ifdef PN_VMATH_AVX2
    /* 8 draws from 4 hashes: lanes (top bits, bits 16..39) of each, as 8 int32 in order */
    const __m256i step = _mm256_setr_epi64x(0, 1, 2, 3), low24 = _mm256_set1_epi64x(0xFFFFFF);
    const __m256i vthr = _mm256_set1_epi32((int)thr - 1);
    const __m256 vsc = _mm256_set1_ps(sc);
    for (; j + 8 <= kn; j += 8, idx += 8) {
        __m256i h = hash4(key, _mm256_add_epi64(_mm256_set1_epi64x((long long)(idx >> 1)), step));
        __m256i a = _mm256_srli_epi64(h, 40);
        __m256i b = _mm256_and_si256(_mm256_srli_epi64(h, 16), low24);
        __m256i draws = _mm256_or_si256(a, _mm256_slli_epi64(b, 32));
        __m256 keep = _mm256_castsi256_ps(_mm256_cmpgt_epi32(draws, vthr));
        _mm256_storeu_ps(out + j, _mm256_and_ps(keep, _mm256_mul_ps(_mm256_loadu_ps(in + j), vsc)));
    }
#endif
    for (; j + 1 < kn; j += 2, idx += 2) {
        uint64_t h = pn_hash64(key, idx >> 1);
        out[j] = (h >> 40) >= thr ? in[j] * sc : 0.0f;
        out[j + 1] = ((h >> 16) & 0xFFFFFF) >= thr ? in[j + 1] * sc : 0.0f;
    }
    if (j < kn) out[j] = (pn_hash64(key, idx >> 1) >> 40) >= thr ? in[j] * sc : 0.0f;
}

typedef struct {
    float *P;    /* (B H, Tq, Tk) or NULL */
    float *Pd;   /* (B H, Tq, Tk): P after dropout, when storing with dropout; or NULL */
    float *lse;  /* (B H, Tq) */
    float *slot; /* slots x attn_slot_floats */
} attn_scratch_ptrs;

static attn_scratch_ptrs attn_scratch_get(float *scratch, const attn_dims *d) {
    attn_scratch_ptrs s;
    int64_t np = attn_store_floats(d), nl = attn_lse_floats(d);
    s.P = np ? scratch : NULL;
    s.Pd = np && d->drop ? scratch + np / 2 : NULL;
    s.lse = nl ? scratch + np : NULL;
    s.slot = scratch + np + nl;
    return s;
}

static const void *attn_mask_row(const attn_dims *d, const void *mask, int64_t b, int64_t i) {
    if (!mask) return NULL;
    int64_t off = (b * d->Tq + i) * d->Tk;
    return d->mask_int ? (const void *)((const int32_t *)mask + off)
                       : (const void *)((const float *)mask + off);
}

/* dS = P (dP - rowsum(P dP)) over n keys (ds may be dp: in place); 0 on a fully masked row (lse
 * INFINITY), whose P is the constant 1 / Tk */
static void softmax_grad_row(float *ds, const float *p, const float *dp, int64_t n, float lse) {
    if (lse == INFINITY) {
        memset(ds, 0, (size_t)n * sizeof(float));
        return;
    }
    float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
    for (int64_t j = 0; j < n; j++) dot += p[j] * dp[j];
#pragma omp simd
    for (int64_t j = 0; j < n; j++) ds[j] = p[j] * (dp[j] - dot);
}

static void attn_forward(const pn_node *n, const pn_ctx *c) {
    attn_dims d = attn_dims_ctx(n, c);
    attn_scratch_ptrs s = attn_scratch_get(c->scratch, &d);
    const float *q = c->in[0], *k = c->in[1], *v = c->in[2];
    const void *mask = d.has_mask ? (const void *)c->in[3] : NULL;
    float *out = c->out;
    const int64_t HK = d.H * d.kd, HV = d.H * d.vd, BH = d.B * d.H;
    const uint64_t key = c->seed ^ ATTN_SALT;
    const int64_t slot_floats = attn_slot_floats(&d);
    /* causal without a mask: the products skip the upper triangle (zeros of P, unneeded S) */
    const int tri = d.causal && !d.has_mask, tri_n = tri ? MM_TRI_N : MM_FULL,
              tri_k = tri ? MM_TRI_K : MM_FULL;
    int64_t work = BH * d.Tq * d.Tk * (d.kd + d.vd);
#pragma omp parallel for schedule(static, 1) num_threads(pn_threads) if (work > PN_PAR_MIN)
    for (int64_t sl = 0; sl < d.slots; sl++) {
        float *buf = s.slot + sl * slot_floats, *pd_buf = buf + 2 * d.blk;
        float *KT = buf + (d.drop ? 3 : 2) * d.blk;
        for (int64_t bh = sl; bh < BH; bh += d.slots) {
            int64_t b = bh / d.H, h = bh % d.H;
            const float *Q = q + b * d.Tq * HK + h * d.kd;
            const float *K = k + b * d.Tk * HK + h * d.kd;
            const float *V = v + b * d.Tk * HV + h * d.vd;
            float *O = out + b * d.Tq * HV + h * d.vd;
            transpose(KT, K, d.Tk, d.kd, HK); /* (kd, Tk) */
            for (int64_t r0 = 0; r0 < d.Tq; r0 += d.bq) {
                int64_t r1 = r0 + d.bq < d.Tq ? r0 + d.bq : d.Tq, rows = r1 - r0;
                int64_t kn = attn_block_keys(&d, r1);
                /* S (rows, kn), row stride ld: the stored P itself when storing */
                float *S = s.P ? s.P + (bh * d.Tq + r0) * d.Tk : buf;
                int64_t ld = s.P ? d.Tk : kn;
                mm(S, ld, Q + r0 * HK, HK, 1, KT, d.Tk, rows, kn, d.kd, d.scale, 0, tri_n, r0);
                for (int64_t i = 0; i < rows; i++) {
                    float *p = S + i * ld;
                    float l = attn_softmax_row(p, &d, attn_mask_row(&d, mask, b, r0 + i), r0 + i,
                                               kn);
                    s.lse[bh * d.Tq + r0 + i] = l;
                    if (s.P) /* the stored rows are full width: keys beyond kn have P = 0 */
                        for (int64_t j = kn; j < d.Tk; j++) p[j] = 0.0f;
                    if (s.Pd)
                        attn_dropout_row(s.Pd + (bh * d.Tq + r0 + i) * d.Tk, p, &d, key, bh,
                                         r0 + i, kn);
                    else if (d.drop)
                        attn_dropout_row(pd_buf + i * kn, p, &d, key, bh, r0 + i, kn);
                }
                const float *Pd = s.Pd ? s.Pd + (bh * d.Tq + r0) * d.Tk : d.drop ? pd_buf : S;
                int64_t ldp = s.Pd ? d.Tk : d.drop ? kn : ld;
                mm(O + r0 * HV, HV, Pd, ldp, 1, V, HV, rows, d.vd, kn, 1.0f, 0, tri_k, r0);
            }
        }
    }
}

/* rows x cols of a strided matrix set to zero */
static void zero_rows(float *a, int64_t rows, int64_t cols, int64_t ld) {
    for (int64_t r = 0; r < rows; r++) memset(a + r * ld, 0, (size_t)cols * sizeof(float));
}

static void attn_backward(const pn_node *n, const pn_ctx *c) {
    attn_dims d = attn_dims_ctx(n, c);
    attn_scratch_ptrs s = attn_scratch_get(c->scratch, &d);
    const float *q = c->in[0], *k = c->in[1], *v = c->in[2], *dout = c->dout;
    const void *mask = d.has_mask ? (const void *)c->in[3] : NULL;
    float *dq = c->din[0], *dk = c->din[1], *dv = c->din[2];
    const int64_t HK = d.H * d.kd, HV = d.H * d.vd, BH = d.B * d.H;
    const uint64_t key = c->seed ^ ATTN_SALT;
    const int64_t slot_floats = attn_slot_floats(&d);
    if (d.has_mask && c->din[3] && !c->acc_in[3]) /* a float mask computed upstream: no gradient */
        memset(c->din[3], 0, (size_t)(d.B * d.Tq * d.Tk) * sizeof(float));
    if (!dq && !dk && !dv) return;
    const int tri = d.causal && !d.has_mask, tri_n = tri ? MM_TRI_N : MM_FULL,
              tri_k = tri ? MM_TRI_K : MM_FULL, tri_kt = tri ? MM_TRI_KT : MM_FULL;
    int64_t work = BH * d.Tq * d.Tk * (d.kd + d.vd);
#pragma omp parallel for schedule(static, 1) num_threads(pn_threads) if (work > PN_PAR_MIN)
    for (int64_t sl = 0; sl < d.slots; sl++) {
        float *buf = s.slot + sl * slot_floats, *dP = buf + d.blk, *pd_buf = buf + 2 * d.blk;
        float *KT = buf + (d.drop ? 3 : 2) * d.blk, *VT = KT + (d.kd * d.Tk + 15) / 16 * 16;
        for (int64_t bh = sl; bh < BH; bh += d.slots) {
            int64_t b = bh / d.H, h = bh % d.H;
            const float *Q = q + b * d.Tq * HK + h * d.kd;
            const float *K = k + b * d.Tk * HK + h * d.kd;
            const float *V = v + b * d.Tk * HV + h * d.vd;
            const float *dO = dout + b * d.Tq * HV + h * d.vd;
            float *dQ = dq ? dq + b * d.Tq * HK + h * d.kd : NULL;
            float *dK = dk ? dk + b * d.Tk * HK + h * d.kd : NULL;
            float *dV = dv ? dv + b * d.Tk * HV + h * d.vd : NULL;
            /* dK and dV gather every block's share: start them at zero unless accumulating */
            if (dK && !c->acc_in[1]) zero_rows(dK, d.Tk, d.kd, HK);
            if (dV && !c->acc_in[2]) zero_rows(dV, d.Tk, d.vd, HV);
            if (!s.P) transpose(KT, K, d.Tk, d.kd, HK);
            if (dQ || dK) transpose(VT, V, d.Tk, d.vd, HV);
            for (int64_t r0 = 0; r0 < d.Tq; r0 += d.bq) {
                int64_t r1 = r0 + d.bq < d.Tq ? r0 + d.bq : d.Tq, rows = r1 - r0;
                int64_t kn = attn_block_keys(&d, r1);
                float *P;
                int64_t ld;
                if (s.P) {
                    P = s.P + (bh * d.Tq + r0) * d.Tk;
                    ld = d.Tk;
                } else {
                    P = buf;
                    ld = kn;
                    mm(P, ld, Q + r0 * HK, HK, 1, KT, d.Tk, rows, kn, d.kd, d.scale, 0, tri_n,
                       r0);
                    for (int64_t i = 0; i < rows; i++)
                        attn_recompute_row(P + i * ld, &d, attn_mask_row(&d, mask, b, r0 + i),
                                           r0 + i, kn, s.lse[bh * d.Tq + r0 + i]);
                }
                const float *Pd = P;
                int64_t ldp = ld;
                if (s.Pd) {
                    Pd = s.Pd + (bh * d.Tq + r0) * d.Tk;
                    ldp = d.Tk;
                } else if (d.drop) {
                    for (int64_t i = 0; i < rows; i++)
                        attn_dropout_row(pd_buf + i * kn, P + i * ld, &d, key, bh, r0 + i, kn);
                    Pd = pd_buf;
                    ldp = kn;
                }
                /* dV (kn, vd) += Pd^T dO */
                if (dV)
                    mm(dV, HV, Pd, 1, ldp, dO + r0 * HV, HV, kn, d.vd, rows, 1.0f, 1, tri_kt, r0);
                if (!dQ && !dK) continue;
                /* dPd (rows, kn) = dO V^T; then dP, then dS = P (dP - rowsum(P dP)) in place */
                mm(dP, kn, dO + r0 * HV, HV, 1, VT, d.Tk, rows, kn, d.vd, 1.0f, 0, tri_n, r0);
                for (int64_t i = 0; i < rows; i++) {
                    float *restrict g = dP + i * kn;
                    const float *restrict p = P + i * ld;
                    /* beyond the row's causal limit dP may be unwritten (tri_n): dS is 0 there */
                    for (int64_t j = attn_row_keys(&d, r0 + i); j < kn; j++) g[j] = 0.0f;
                    if (s.Pd) { /* kept where Pd != 0; where P = 0, dS = 0 whatever dP is */
                        const float *restrict pd = Pd + i * ldp;
                        const float sc = 1.0f / (1.0f - d.rate);
#pragma omp simd
                        for (int64_t j = 0; j < kn; j++) g[j] = pd[j] != 0.0f ? g[j] * sc : 0.0f;
                    } else if (d.drop) {
                        attn_dropout_row(g, g, &d, key, bh, r0 + i, kn);
                    }
                    softmax_grad_row(g, p, g, kn, s.lse[bh * d.Tq + r0 + i]);
                }
                /* dQ (rows, kd) (+)= a dS K;  dK (kn, kd) += a dS^T Q */
                if (dQ)
                    mm(dQ + r0 * HK, HK, dP, kn, 1, K, HK, rows, d.kd, kn, d.scale, c->acc_in[0],
                       tri_k, r0);
                if (dK)
                    mm(dK, HK, dP, 1, kn, Q + r0 * HK, HK, kn, d.kd, rows, d.scale, 1, tri_kt,
                       r0);
            }
        }
    }
}

const pn_op_def pn_op_attention_def = {"attention", attn_shape, attn_forward, attn_backward,
                                       attn_scratch, PN_OPF_BWD_NO_OUT};

/* ---- attention_scores ------------------------------------------------------------------------
 * Keras's return_attention_scores: P of every head, (H, Tq, Tk) per sample, before dropout (as
 * Keras returns it), from the same q and k (and mask) as the attention op beside it. The scores
 * are computed again rather than kept from that op: they are asked for to be looked at, and the
 * attention op does not keep P beyond short contexts.
 *   iattr [0] H  [1] kd  [3] causal;  inputs q (Tq, H kd), k (Tk, H kd) [, mask (Tq, Tk)]
 * backward (from dP, the output's gradient): dS = P (dP - rowsum(P dP)) (0 on a fully masked
 * row, whose P is the constant 1 / Tk), dQ = a dS K, dK = a dS^T Q.
 * Scratch: lse (B H Tq, INFINITY marks a fully masked row), then per slot K^T (kd Tk) in forward,
 * dS (Tq Tk) in backward.
 */
static attn_dims scores_dims(const pn_node *n, const pn_node *q, const pn_node *k,
                             const pn_node *mask, int64_t batch) {
    return attn_dims_of(n, q, k, mask != NULL, mask && mask->dtype == PN_I32, batch, 0);
}

static int64_t scores_slot_floats(const attn_dims *d) {
    int64_t kt = d->kd * d->Tk, ds = d->Tq * d->Tk;
    return ((kt > ds ? kt : ds) + 15) / 16 * 16;
}

static int64_t scores_scratch(const pn_model *m, const pn_node *n, int64_t batch, int training) {
    (void)training;
    attn_dims d = scores_dims(n, pn_input_node(m, n, 0), pn_input_node(m, n, 1),
                              n->n_in == 3 ? pn_input_node(m, n, 2) : NULL, batch);
    return attn_lse_floats(&d) + d.slots * scores_slot_floats(&d);
}

static int scores_shape(const pn_model *m, pn_node *n) { return attn_check(m, n, 1); }

static attn_dims scores_dims_ctx(const pn_node *n, const pn_ctx *c) {
    return scores_dims(n, c->in_node[0], c->in_node[1], n->n_in == 3 ? c->in_node[2] : NULL,
                       c->batch);
}

static void scores_forward(const pn_node *n, const pn_ctx *c) {
    attn_dims d = scores_dims_ctx(n, c);
    const float *q = c->in[0], *k = c->in[1];
    const void *mask = d.has_mask ? (const void *)c->in[2] : NULL;
    const int64_t HK = d.H * d.kd, BH = d.B * d.H, TT = d.Tq * d.Tk;
    float *lse = c->scratch, *slots = c->scratch + attn_lse_floats(&d);
    const int64_t slot_floats = scores_slot_floats(&d);
    const int tri_n = d.causal && !d.has_mask ? MM_TRI_N : MM_FULL,
              par = BH * TT * d.kd > PN_PAR_MIN;
#pragma omp parallel for schedule(static, 1) num_threads(pn_threads) if (par)
    for (int64_t sl = 0; sl < d.slots; sl++) {
        float *KT = slots + sl * slot_floats;
        for (int64_t bh = sl; bh < BH; bh += d.slots) {
            int64_t b = bh / d.H, h = bh % d.H;
            const float *Q = q + b * d.Tq * HK + h * d.kd, *K = k + b * d.Tk * HK + h * d.kd;
            float *P = c->out + bh * TT; /* sample b's head h */
            transpose(KT, K, d.Tk, d.kd, HK);
            mm(P, d.Tk, Q, HK, 1, KT, d.Tk, d.Tq, d.Tk, d.kd, d.scale, 0, tri_n, 0);
            for (int64_t i = 0; i < d.Tq; i++)
                lse[bh * d.Tq + i] = attn_softmax_row(P + i * d.Tk, &d,
                                                      attn_mask_row(&d, mask, b, i), i, d.Tk);
        }
    }
}

static void scores_backward(const pn_node *n, const pn_ctx *c) {
    attn_dims d = scores_dims_ctx(n, c);
    const float *q = c->in[0], *k = c->in[1], *out = c->out, *dout = c->dout;
    float *dq = c->din[0], *dk = c->din[1];
    const int64_t HK = d.H * d.kd, BH = d.B * d.H, TT = d.Tq * d.Tk;
    if (d.has_mask && c->din[2] && !c->acc_in[2]) /* a float mask computed upstream: none */
        memset(c->din[2], 0, (size_t)(d.B * TT) * sizeof(float));
    if (!dq && !dk) return;
    const float *lse = c->scratch;
    float *slots = c->scratch + attn_lse_floats(&d);
    const int64_t slot_floats = scores_slot_floats(&d);
    const int tri = d.causal && !d.has_mask, tri_k = tri ? MM_TRI_K : MM_FULL,
              tri_kt = tri ? MM_TRI_KT : MM_FULL, par = BH * TT * d.kd > PN_PAR_MIN;
#pragma omp parallel for schedule(static, 1) num_threads(pn_threads) if (par)
    for (int64_t sl = 0; sl < d.slots; sl++) {
        float *dS = slots + sl * slot_floats;
        for (int64_t bh = sl; bh < BH; bh += d.slots) {
            int64_t b = bh / d.H, h = bh % d.H;
            const float *Q = q + b * d.Tq * HK + h * d.kd, *K = k + b * d.Tk * HK + h * d.kd;
            const float *P = out + bh * TT, *dP = dout + bh * TT;
            for (int64_t i = 0; i < d.Tq; i++)
                softmax_grad_row(dS + i * d.Tk, P + i * d.Tk, dP + i * d.Tk, d.Tk,
                                 lse[bh * d.Tq + i]);
            if (dq)
                mm(dq + b * d.Tq * HK + h * d.kd, HK, dS, d.Tk, 1, K, HK, d.Tq, d.kd, d.Tk,
                   d.scale, c->acc_in[0], tri_k, 0);
            if (dk) {
                float *dK = dk + b * d.Tk * HK + h * d.kd;
                if (!c->acc_in[1]) zero_rows(dK, d.Tk, d.kd, HK);
                mm(dK, HK, dS, 1, d.Tk, Q, HK, d.Tk, d.kd, d.Tq, d.scale, 1, tri_kt, 0);
            }
        }
    }
}

const pn_op_def pn_op_attention_scores_def = {"attention_scores", scores_shape, scores_forward,
                                              scores_backward, scores_scratch, 0};
