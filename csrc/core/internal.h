/*
 * internal.h: what the core's files share and the public header does not show: the model, node
 * and plan structs, the op table, the BLAS binding and the error helper.
 */
#ifndef PYNN_INTERNAL_H
#define PYNN_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pynn.h"

/* BLAS: scipy-openblas32 prefixes every symbol with scipy_; a system OpenBLAS does not. */
#include <cblas.h>
#ifdef PN_SYSTEM_BLAS
#define pn_sgemm cblas_sgemm
#define pn_sgemv cblas_sgemv
#define pn_blas_set_threads openblas_set_num_threads
#else
#define pn_sgemm scipy_cblas_sgemm
#define pn_sgemv scipy_cblas_sgemv
#define pn_blas_set_threads scipy_openblas_set_num_threads
#endif

#if defined(__GNUC__)
#define PN_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define PN_PRINTF(a, b)
#endif

/* C (M, N) = alpha op(A) op(B) + beta C, row-major (ta, tb: transpose A, B), split over the core's
 * threads; OpenBLAS itself runs single-threaded (gemm.c). Never call it inside a parallel region. */
void pn_gemm(int ta, int tb, int64_t M, int64_t N, int64_t K, float alpha, const float *A,
             int64_t lda, const float *B, int64_t ldb, float beta, float *C, int64_t ldc);
/* C (M, N) = A (M, K) B (K, N) + bias (N values added to each row; NULL: none), likewise */
void pn_gemm_bias(int64_t M, int64_t N, int64_t K, const float *A, int64_t lda, const float *B,
                  int64_t ldb, const float *bias, float *C, int64_t ldc);
/* C (M, N) = [C +] op(A) op(B) (acc) or bias + op(A) op(B), float32 on the AVX-512 kernel
 * (gemm_avx512.c) where pn_gemm_avx512 says and the shape suits its panels: 1 when it ran, 0
 * when not (no AVX-512, fewer than 48 rows, a width far from whole panels, no memory). */
int pn_gemm_avx512_product(int ta, int tb, int64_t M, int64_t N, int64_t K, const float *A,
                           int64_t lda, const float *B, int64_t ldb, int acc, const float *bias,
                           float *C, int64_t ldc);
/* gemm_avx512.c: 1 (the default) runs float32 products on the AVX-512 kernel where the CPU
 * has full-rate 512-bit FMAs (PN_CPU_FMA512), 2 wherever it has AVX-512 (the tests), 0 never */
extern int pn_gemm_avx512;
/* 1 while the thread runs a node of mixed precision (pn_node.bf16, set by the plan around it):
 * its pn_gemm and pn_gemm_bias products go to pn_gemm_bf16_product (gemm_avx512.c). */
extern _Thread_local int pn_gemm_bf16;
/* C (M, N) = [C +] op(A) op(B) (acc) or bias + op(A) op(B) (bias: N values, or NULL), the
 * operands rounded to bfloat16 and summed in float32, on AVX512-BF16 where the CPU has it; 0
 * when it did not run (K < PN_BF16_MIN_K, or no memory for its buffers: run the float32 product). */
int pn_gemm_bf16_product(int ta, int tb, int64_t M, int64_t N, int64_t K, const float *A,
                         int64_t lda, const float *B, int64_t ldb, int acc, const float *bias,
                         float *C, int64_t ldc);
#define PN_BF16_MIN_K 32 /* products of fewer terms stay float32 (pn_gemm_bf16_product) */
/* x rounded to bfloat16 (to nearest, ties to even; NaN stays NaN), as a float */
float pn_bf16_round(float x);
extern int pn_gemm_kernels; /* gemm.c: 0 sends every product to OpenBLAS (for the tests) */
extern _Atomic int64_t pn_gemm_own_runs; /* gemm.c: products its own kernels ran */
extern int64_t pn_gemm_poll_macs; /* gemm.c: multiply-adds of a polled product's row block */
/* C (M, N) = A (M, K) B (K, N) as pn_gemm computes it, in blocks of rows when large, with
 * pn_poll_interrupt() between blocks: PN_EINTR leaves C partly written (eager results only). */
int pn_gemm_polled(int64_t M, int64_t N, int64_t K, const float *A, int64_t lda, const float *B,
                   int64_t ldb, float *C, int64_t ldc);

/* Runs fn(arg, part, parts) for part = 0..parts-1 across the calling thread and the spinning
 * helpers of workers.c, and returns when all have run: for work of a few microseconds, where an
 * OpenMP region's start and barriers cost as much as the work. Parts run in any order, on any
 * thread; never call it inside a parallel region or from a part. */
typedef void (*pn_part_fn)(void *arg, int part, int parts);
void pn_parallel(pn_part_fn fn, void *arg, int parts);

/* The core's allocations (alloc.c): malloc, calloc, realloc and aligned_alloc, each of which a
 * test can make fail (pn_debug_fail_alloc). Their memory is freed with free. */
void *pn_malloc(size_t bytes);
void *pn_calloc(size_t n, size_t size);
void *pn_realloc(void *p, size_t bytes);
void *pn_aligned_alloc(size_t align, size_t bytes);

/* Stores the message for pn_last_error() and returns code, so `return pn_error(...)` reads well. */
int pn_error(int code, const char *fmt, ...) PN_PRINTF(2, 3);

/* The thread count every OpenMP loop asks for (num_threads clause), set by pn_set_num_threads.
 * OpenMP may grant fewer: a region splits its work by omp_get_num_threads(), never by this. */
extern int pn_threads;

/* process.c: registers the fork handlers (once); pn_set_num_threads and pn_model_create call it. */
void pn_process_init(void);
/* PN_EINTR (with its message) when the interrupt hook, asked at most every 50 ms, says stop. Call
 * it on the calling thread between batches or blocks, never inside a parallel region. The hook
 * may wait for Python's GIL while the caller holds a model's lock: so no thread waits for a
 * model's lock holding the GIL (pn_model_lock waits between the wait hooks, which release it;
 * pn_model_put_plan takes no lock). */
int pn_poll_interrupt(void);
/* model.c's fork handlers: the registry of live models is locked across fork; in the child every
 * model's lock is made anew, and a model whose weights another thread was writing is marked. */
void pn_models_before_fork(void);
void pn_models_after_fork_parent(void);
void pn_models_after_fork_child(void);
/* The model's lock; PN_ESTATE (not locked) when this thread holds it already (a signal handler
 * run by the interrupt hook, calling the model it interrupted) or a fork tore its weights. */
int pn_model_lock(pn_model *m);
void pn_model_unlock(pn_model *m);
/* An elementwise loop goes parallel only above this many elements: below it, waking the second
 * thread costs more than it saves. */
#define PN_PAR_MIN 65536

/* for (int64_t i = 0; i < n; i++) { body }: on the core's threads when par holds, else on the
 * calling thread outside any OpenMP region. An `omp parallel for if (0)` is not free: libgomp
 * builds and frees a team of one, about half a microsecond, more than a small layer's whole loop
 * (single-sample predict ran two of them per call). The body is the last argument; a pragma
 * inside it must be written _Pragma("..."). PN_FOR_SIMD also asks for vectorisation. */
#define PN_FOR(par, i, n, ...)                                                                 \
    do {                                                                                       \
        const int64_t pn_for_n_ = (n);                                                         \
        if ((par) && pn_threads > 1) {                                                         \
            _Pragma("omp parallel for num_threads(pn_threads)")                                \
            for (int64_t i = 0; i < pn_for_n_; i++) { __VA_ARGS__ }                            \
        } else {                                                                               \
            for (int64_t i = 0; i < pn_for_n_; i++) { __VA_ARGS__ }                            \
        }                                                                                      \
    } while (0)
#define PN_FOR_SIMD(par, i, n, ...)                                                            \
    do {                                                                                       \
        const int64_t pn_for_n_ = (n);                                                         \
        if ((par) && pn_threads > 1) {                                                         \
            _Pragma("omp parallel for simd num_threads(pn_threads)")                           \
            for (int64_t i = 0; i < pn_for_n_; i++) { __VA_ARGS__ }                            \
        } else {                                                                               \
            _Pragma("omp simd")                                                                \
            for (int64_t i = 0; i < pn_for_n_; i++) { __VA_ARGS__ }                            \
        }                                                                                      \
    } while (0)
/* Up to this many rows a dense layer multiplies row by row instead of calling GEMM. */
#define PN_GEMV_ROWS 2
/* A single row is split over the threads above this many weights: each core then streams half
 * of the kernel from its own cache (single-sample predict of the MNIST MLP, 100k weights: about
 * 20% faster, with OpenMP's workers spinning between calls rather than sleeping). */
#define PN_ROW_PAR_MIN 32768

/* ---- variables and nodes ------------------------------------------------------------------ */

typedef struct {
    int ndim;
    int64_t shape[PN_MAX_DIMS];
    int64_t size;        /* elements */
    int64_t offset;      /* into params/grads, set by pn_model_alloc */
    int trainable;
    float l1, l2;        /* penalties, 0 when none */
    int optim_flags;     /* PN_VAR_* (pn_model_set_variable_optim) */
    int constraint;      /* PN_CONSTRAINT_* after each update (pn_model_set_variable_constraint) */
    unsigned constraint_axes;     /* bit i: the constraint's norms reduce over axis i */
    float cmin, cmax, crate;      /* its min_value, max_value, rate */
} pn_var;

typedef struct {
    int op;
    int n_in, in[PN_MAX_INPUTS];
    int n_var, var[PN_MAX_VARS];
    int iattr[PN_MAX_ATTRS];
    float fattr[PN_MAX_ATTRS];
    pn_dtype dtype;
    int unbatched;                 /* the value has no batch axis: computed once per step from
                                    * variables and constants; ndim and shape are then the
                                    * whole tensor's, and its op runs with a batch of 1 */
    int ndim;                      /* per-sample output shape, batch excluded */
    int64_t shape[PN_MAX_DIMS];
    int64_t size;                  /* elements per sample */
    float *data;                   /* constant: its values, owned by the graph; else NULL */
    int bf16;                      /* its matrix products in mixed precision (bfloat16 operands,
                                    * float32 sums): a layer of Keras's mixed_bfloat16 policy */
} pn_node;

/* What one node sees when it runs: pointers for this batch size. A NULL gradient means "not
 * needed"; acc says whether a gradient is accumulated (+=) or written (=): the first writer of a
 * buffer in backward order writes, so no buffer needs zeroing per step. */
typedef struct {
    int64_t batch;       /* the node's own: 1 for an unbatched node */
    int64_t full_batch;  /* the run's: what a batched input holds */
    const pn_node *in_node[PN_MAX_INPUTS]; /* the inputs' nodes: their per-sample shapes */
    const pn_var *var_info[PN_MAX_VARS];   /* the variables: their shapes */
    const float *in[PN_MAX_INPUTS];
    float *din[PN_MAX_INPUTS];
    int acc_in[PN_MAX_INPUTS];
    float *out, *dout;
    float *var[PN_MAX_VARS];
    float *dvar[PN_MAX_VARS];
    int acc_var[PN_MAX_VARS];
    float *scratch;
    int training;        /* 1 in a training forward/backward: dropout drops, batch norm uses and
                          * updates batch statistics; 0 in evaluate and predict */
    int eager;           /* 1 in a model called on values (PN_MODE_EAGER, PN_MODE_EAGER_DX) or an
                          * op run on values, 0 in a step of fit (spectral_norm: Keras's eager
                          * call assigns the kernel, its fit step does not) */
    uint64_t seed;       /* this forward's random stream (random ops hash it with node and index) */
    /* an embedding folded into this node (pn_plan_fold; input 0 is then the embedding's node,
     * with no value and no gradient): its indices (batch, steps), its table (fold_rows, F) and
     * the table's gradient (NULL: not needed; fold_acc: add into it). fold_rows 0: none. */
    const int32_t *fold_idx;
    const float *fold_table;
    float *fold_dtable;
    int fold_acc;
    int64_t fold_rows;
} pn_ctx;

typedef struct {
    const char *name;
    /* checks inputs, variables and attributes; sets the node's dtype, ndim and shape */
    int (*shape)(const pn_model *m, pn_node *n);
    void (*forward)(const pn_node *n, const pn_ctx *c);
    void (*backward)(const pn_node *n, const pn_ctx *c);
    /* scratch floats for a batch, in a training plan or an inference one; NULL when none */
    int64_t (*scratch)(const pn_model *m, const pn_node *n, int64_t batch, int training);
    unsigned flags;  /* PN_OPF_*: what backward reads, whether it may run in place */
} pn_op_def;

/* Op flags, for the plan's memory layout. Without a flag the plan assumes the safe case. */
#define PN_OPF_BWD_NO_IN 1u  /* backward does not read the inputs' values */
#define PN_OPF_BWD_NO_OUT 2u /* backward does not read the node's own output */
#define PN_OPF_MIXED 8u      /* takes batched and unbatched inputs together (broadcasting) */
#define PN_OPF_INPLACE 4u    /* elementwise: may write its output over its input, and in backward
                              * (with PN_OPF_BWD_NO_IN) its input's gradient over its own */
#define PN_OPF_ACTIVATION 16u /* an activation: one input, an output of its shape, at most one
                               * float and one int attribute (pn_activation_apply runs it alone) */

extern const pn_op_def *const pn_op_table[PN_OP_COUNT];

/* Refuses a batch size node n cannot run: a stateful recurrent op's states hold one batch
 * (ops_rnn.c); PN_OK for any other node. Asked when a plan is made and before an op runs on
 * values. */
int pn_node_check_batch(const pn_model *m, const pn_node *n, int64_t batch);

/* One row per op, defined in the op family files. */
#define PN_OP(e, d) extern const pn_op_def pn_op_##d##_def;
#include "ops.def"
#undef PN_OP

/* The one float32 input of rank 3 (H, W, C) of an image op with no variables, whose per-sample
 * size fits int32 indices, in *x; else an error naming the op (ops_shape.c). */
int pn_image_input(const pn_model *m, const pn_node *n, const pn_node **x);

/* Refuses indices outside any embedding table that reads the input node `input` (ops_embedding.c). */
int pn_embedding_check(const pn_model *m, int input, const int32_t *idx, int64_t count);
/* Likewise for a float32 model input that an embedding reads through a cast to int32 (a
 * Keras model whose Input is float): each value, truncated, must be a row of the table. */
int pn_embedding_check_f32(const pn_model *m, int input, const float *x, int64_t count);
/* Refuses indices outside 0..V-1: a table of V rows. */
int pn_embedding_check_rows(const int32_t *idx, int64_t count, int64_t V);

/* ---- eager values and tape entries (tape.c) ------------------------------------------------ */

#define PN_FN_MAX_IN 16 /* inputs of an op and its variables, or of a model */
_Static_assert(PN_FN_MAX_IN >= PN_MAX_INPUTS + PN_MAX_VARS && PN_FN_MAX_IN >= PN_MAX_MODEL_INPUTS,
               "a tape entry holds every input of an op or a model");

typedef struct pn_fn pn_fn;

struct pn_value {
    int refs;
    int ndim;
    int64_t dims[PN_MAX_DIMS];
    int64_t size;
    pn_dtype dtype;
    void *data;
    float *grad;          /* NULL until a backward writes it */
    int own_data, own_grad;
    int requires_grad;
    pn_fn *fn;            /* the entry that made the value (owned), NULL for a leaf */
    pn_model *model;      /* a model's variable: its grads may need zeroing first (model.c) */
    void (*release)(void *);
    void *release_ctx;
    pn_value *next;       /* work lists of release and backward */
    int mark, pending;    /* backward: visited, consumers still to run */
};

/* One tape entry: how its output was made, so backward can send dout to the inputs. */
struct pn_fn {
    const char *name;
    /* adds d(out)/d(in) * out->grad into each input that requires a gradient; may fail */
    int (*backward)(pn_fn *f, pn_value *out);
    void (*destroy)(pn_fn *f);   /* frees what the entry saved (NULL: nothing) */
    int n_in;
    pn_value *in[PN_FN_MAX_IN];  /* references */
    int iattr[PN_MAX_ATTRS];
    float fattr[PN_MAX_ATTRS];
    int64_t i64[2 * PN_MAX_DIMS];
    void *saved;
};

/* A value's gradient buffer, zero-filled on first use; NULL (error set) when out of memory. */
float *pn_value_grad_buf(pn_value *v);
/* A new value (one reference) with its own uninitialised data. */
int pn_value_new(pn_value **out, int ndim, const int64_t *dims, pn_dtype dtype);
/* Whether an entry over these inputs is recorded: grad mode is on and one requires a gradient. */
int pn_fn_wanted(int n_in, pn_value *const *in);
/* A new entry holding references to its inputs; NULL (error set) when out of memory. */
pn_fn *pn_fn_new(const char *name, int (*backward)(pn_fn *, pn_value *), int n_in,
                 pn_value *const *in);
/* Makes f the maker of out, which then requires a gradient. */
void pn_fn_attach(pn_fn *f, pn_value *out);
/* Frees an entry that was never attached (its inputs' references, its saved state). */
void pn_fn_free(pn_fn *f);

/* ---- NumPy-style math kernels (eager_math.c) -------------------------------------------------
 * The tape's math entries and the graph's math ops (ops_math.c) run these same functions, on
 * views: pn_values that pn_math_view fills over memory they do not own (no references, no entry).
 * The *_shape functions check operands and give the result's shape (an error names the op);
 * the kernels assume they passed. Gradient kernels accumulate (+=). */
void pn_math_view(pn_value *v, int ndim, const int64_t *dims, const void *data);
int pn_math_binary_shape(pn_binop op, const pn_value *a, const pn_value *b, int *nd,
                         int64_t *dims);
void pn_math_binary(pn_binop op, pn_value *o, const pn_value *a, const pn_value *b);
/* operand k's gradient (k = 0: a, 1: b) from o's values (data) and gradient (grad) */
void pn_math_binary_grad(pn_binop op, int k, float *gx, const pn_value *o, const pn_value *a,
                         const pn_value *b);
void pn_math_unary(pn_unop op, float *z, const float *x, int64_t n);
void pn_math_unary_grad(pn_unop op, float *gx, const float *g, const float *x, const float *z,
                        int64_t n);
/* mask: the reduced axes as bits; buf: pn_math_reduce_buf_bytes: o->size doubles (sum, mean),
 * int64 indices (max, min) or two doubles (prod), the last two read by the gradient */
int64_t pn_math_reduce_buf_bytes(pn_redop op, int64_t out_size);
int pn_math_reduce_shape(pn_redop op, const pn_value *a, unsigned mask, int keepdims, int *nd,
                         int64_t *dims);
void pn_math_reduce(pn_redop op, pn_value *o, const pn_value *a, unsigned mask, void *buf);
void pn_math_reduce_grad(pn_redop op, float *gx, const float *g, const pn_value *a,
                         unsigned mask, const void *buf, int64_t out_size);
int pn_math_matmul_shape(const pn_value *a, const pn_value *b, int *nd, int64_t *dims);
/* polled: in row blocks with pn_poll_interrupt between them (PN_EINTR); else it returns 0 */
int pn_math_matmul(pn_value *o, const pn_value *a, const pn_value *b, int polled);
void pn_math_matmul_grad(float *ga, float *gb, const float *g, const pn_value *a,
                         const pn_value *b);
/* axis in 0..ndim-1; scratch: pn_math_softmax_scratch floats */
int64_t pn_math_softmax_scratch(const pn_value *a, int axis);
void pn_math_softmax(pn_value *o, const pn_value *a, int axis, int log, float *scratch);
void pn_math_softmax_grad(float *gx, const float *g, const float *z, const pn_value *a, int axis,
                          int log, float *scratch);
int pn_math_slice_shape(const pn_value *a, const int64_t *start, const int64_t *step,
                        const int64_t *count, unsigned drop, int *nd, int64_t *dims);
void pn_math_slice(pn_value *o, const pn_value *a, const int64_t *start, const int64_t *step,
                   const int64_t *count);
void pn_math_slice_grad(float *gx, const float *g, const pn_value *a, const int64_t *start,
                        const int64_t *step, const int64_t *count, int64_t out_size);
int pn_math_transpose_shape(const pn_value *a, const int *perm, int64_t *dims);
void pn_math_transpose(pn_value *o, const pn_value *a, const int *perm);
void pn_math_transpose_grad(float *gx, const float *g, const pn_value *a, const int *perm);

/* ---- graph math ops' shared helpers (ops_math.c) ---------------------------------------------- */

/* The whole tensor of node n for a batch: (batch, *shape), or shape when unbatched. */
void pn_node_view(pn_value *v, const pn_node *n, int64_t batch, const void *data);
/* input j's view in a run (batched inputs have the plan's batch, c->full_batch); the output's */
void pn_in_view(pn_value *v, const pn_ctx *c, int j);
void pn_out_view(pn_value *v, const pn_node *n, const pn_ctx *c);
/* The gradient buffer of input j, zeroed when this node is its first writer; NULL if none. */
float *pn_din_buf(const pn_ctx *c, int j);
/* Sets n's shape from a whole-tensor result (nd, dims) computed with a batch of 1 standing in
 * for the batch: a batched result must keep the batch axis first, where every batched operand
 * has it. `rank_b` is the whole rank of the batched operands (-1: none). */
int pn_set_result_shape(const char *name, pn_node *n, int nd, const int64_t *dims, int rank_b);

/* ---- selection, indexing and ordering kernels (ops_select.c) ----------------------------------
 * Whole tensors; axis in 0..ndim-1; (outer, L, inner): the tensor around the axis. Gradient
 * kernels accumulate. A kernel that reads int32 indices returns PN_EVALUE (message set) when one
 * is out of range, having written 0 for it and read nothing out of bounds. */
int pn_math_where_shape(const pn_value *c, const pn_value *a, const pn_value *b, int *nd,
                        int64_t *dims);
void pn_math_where(pn_value *o, const pn_value *c, const pn_value *a, const pn_value *b);
void pn_math_where_grad(float *ga, float *gb, const float *g, const pn_value *o,
                        const pn_value *c, const pn_value *a, const pn_value *b);
int pn_math_take_shape(const pn_value *x, const pn_value *idx, int axis, int *nd,
                       int64_t *dims);
int pn_math_take(pn_value *o, const pn_value *x, const pn_value *idx, int axis);
void pn_math_take_grad(float *gx, const float *g, const pn_value *x, const pn_value *idx,
                       int axis);
int pn_math_take_along_shape(const pn_value *x, const pn_value *idx, int axis, int *nd,
                             int64_t *dims);
int pn_math_take_along(pn_value *o, const pn_value *x, const pn_value *idx, int axis);
void pn_math_take_along_grad(float *gx, const float *g, const pn_value *o, const pn_value *x,
                             const pn_value *idx, int axis);
void pn_math_cumulative(int prod, float *z, const float *x, int64_t outer, int64_t L,
                        int64_t inner);
void pn_math_cumulative_grad(int prod, float *gx, const float *g, const float *x, const float *z,
                             int64_t outer, int64_t L, int64_t inner);
/* work: pn_math_sort_work(L) floats; perm: one int32 per element */
int64_t pn_math_sort_work(int64_t L);
void pn_math_sort(int32_t *perm, const float *x, int64_t outer, int64_t L, int64_t inner,
                  int desc, float *work);
/* the first K of each line: values (float) or indices (int32) */
void pn_math_sort_values(void *z, int indices, const int32_t *perm, const float *x,
                         int64_t outer, int64_t L, int64_t inner, int64_t K);
void pn_math_sort_grad(float *gx, const float *g, const int32_t *perm, int64_t outer, int64_t L,
                       int64_t inner, int64_t K);
void pn_math_arg_reduce(int32_t *z, const float *x, int64_t outer, int64_t L, int64_t inner,
                        int is_min);
/* mode 0 constant (value), 1 reflect, 2 symmetric; before/after per axis */
int pn_math_pad_shape(const pn_value *x, const int64_t *before, const int64_t *after, int mode,
                      int64_t *dims);
void pn_math_pad(pn_value *o, const pn_value *x, const int64_t *before, int mode, float value);
void pn_math_pad_grad(float *gx, const float *g, const pn_value *o, const pn_value *x,
                      const int64_t *before, int mode);
/* The first fault of this thread's forward since the last call (bad data a kernel found, its
 * message set), clearing it; 0 when none. Whoever runs a forward asks after it. */
int pn_fault_take(void);
/* Records a fault that a forward found in its data (the first of a run wins). */
void pn_fault_note(int rc);

/* ---- plans --------------------------------------------------------------------------------- */

/* EAGER plans have no loss: an eager call's backward brings the outputs' gradients. */
typedef enum { PN_MODE_INFER = 0, PN_MODE_TRAIN, PN_MODE_INPUT_GRAD, PN_MODE_EAGER,
               PN_MODE_EAGER_DX } pn_mode;

typedef struct {
    int64_t batch;
    pn_mode mode;
    uint64_t last_used;
    float *arena;          /* one allocation: activations, gradients, scratch, gather buffers */
    float **value;         /* per node: activation (batch * size); inputs point at caller data */
    float **grad;          /* per node: activation gradient, NULL when not needed */
    float **scratch;       /* per node */
    int *acc_in;           /* per node * PN_MAX_INPUTS */
    int *acc_var;          /* per node * PN_MAX_VARS */
    int *fold;             /* per node: the embedding folded into it (pn_plan_fold), -1 none,
                            * PN_FOLDED when it is that embedding (it then never runs) */
    unsigned char *swap;   /* per node: PN_SWAP_SKIP, a relu moved after a max pool (it never
                            * runs); PN_SWAP_RELU_AFTER, that pool; 0 otherwise (passes.c) */
    unsigned char *var_written; /* per variable: some node writes its gradient */
    /* per output: the node whose value its loss reads as logits (fused) or output; whether a
     * softmax/sigmoid output is folded into its cross-entropy; whether its loss adds (+=) to the
     * loss node's gradient because an earlier loss wrote it */
    int loss_node[PN_MAX_OUTPUTS];
    int fused[PN_MAX_OUTPUTS];
    int loss_acc[PN_MAX_OUTPUTS];
    int with_added;        /* the added losses are computed, and seed their gradient (1) */
    int added_acc[PN_MAX_ADDED_LOSSES]; /* added loss k adds to its node's gradient */
    unsigned char *needs_y; /* per node: a target node, or reads one (pn_model_add_target) */
    int targets_set;       /* this run pointed the target nodes at its data (prepare): the nodes
                            * that need them run; reset whenever the plan is taken */
    uint64_t seed;         /* the random stream of the current training forward */
    int training;          /* what the ops see as c->training (eager calls choose it) */
    /* PLAN_HELD: an eager call holds it until its backward (not shared, not evicted);
     * PLAN_HELD_ORPHAN: held, and no longer in the cache, so the holder frees it. Set under the
     * model's lock; released without it (pn_model_put_plan), so a Tensor freed while another
     * thread runs the model never waits for that run. */
    _Atomic int held;
    int orphan;            /* never cached (every slot was held when it was made): freed after
                            * its run */
    int64_t arena_floats;  /* the arena's size */
    float *xbuf[PN_MAX_MODEL_INPUTS]; /* per input: gathered rows (train/test with idx) */
    void *ybuf[PN_MAX_OUTPUTS];       /* per output: gathered targets */
    float *wbuf;                      /* per output: gathered sample weights (batch each) */
} pn_plan;

#define PN_PLAN_CACHE 8

/* A graph: nodes, inputs, outputs and their losses, and the plans that run them. A model holds
 * up to PN_MAX_GRAPHS over one set of variables (one per input shape of a model whose inputs
 * have lengths the data gives); m->g is the one that building and running use. */
typedef struct pn_graph {
    pn_node *nodes;
    int n_nodes, cap_nodes;
    int n_inputs, inputs[PN_MAX_MODEL_INPUTS]; /* the input nodes, in the order added */

    int compiled;
    int n_outputs, outputs[PN_MAX_OUTPUTS];    /* the output nodes (a node may repeat) */
    pn_loss_config out[PN_MAX_OUTPUTS];        /* per output: loss, weight, metrics */
    int masks[PN_MAX_OUTPUTS]; /* per output: its mask node, or -1 (set with the outputs) */
    int n_masked;              /* outputs with a mask */
    int n_results;         /* floats a step returns: total loss, per-output losses, metrics,
                            * masked outputs' metric weights */
    int n_added, added[PN_MAX_ADDED_LOSSES]; /* scalar nodes added to the loss (add_loss) */
    int targets[PN_MAX_OUTPUTS][2]; /* per output: its target and sample-weight nodes + 1, or 0
                                     * (pn_model_add_target) */

    pn_plan *plans[PN_PLAN_CACHE];
    uint64_t clock;
    uint64_t graph_version; /* changes when nodes or outputs change: eager entries check it */
    _Atomic int calls;      /* eager calls on the tape that may still read it (not dropped) */
} pn_graph;

struct pn_model {
    pn_var *vars;
    int n_vars, cap_vars;
    float *params, *grads;
    int64_t n_params, n_trainable; /* spans of the buffers (padding included); trainable first */

    pn_graph *g;                       /* the current graph: one of graphs[] */
    pn_graph *graphs[PN_MAX_GRAPHS];   /* by id; NULL where dropped */
    uint64_t versions;                 /* graph versions handed out: unique across graphs */

    int has_optimizer;
    pn_optim_config opt;
    float *opt_state;      /* n_slots * n_trainable, then n_opt_scalars */
    int n_slots, n_opt_scalars;
    float *opt_scratch;    /* Muon's Newton-Schulz matrices (NULL for the other rules) */
    int64_t iterations;
    uint64_t seed, forwards; /* random ops: the seed, and training forwards run so far */
    uint64_t infer_forwards; /* inference forwards so far: random ops' noise in predict and
                              * evaluate (a stream of its own: training stays repeatable) */

    pthread_mutex_t lock;  /* one run at a time per model: plans and buffers are shared */
    int writing;           /* a run holding the lock writes the weights (a step, a set) */
    int torn;              /* the process forked while another thread was writing the weights */
    pn_model *prev, *next; /* the registry of live models, for the fork handlers */
    int refs;              /* the creator's, and one per value over a variable */
    int eager_grads;       /* the grads hold eager accumulations (else a step's leftovers) */
    int bf16_nodes;        /* nodes added now take pn_node.bf16 = this (pn_model_set_bf16) */
};

/* ---- the plan's passes (passes.c): rewrites marked in a plan, the graph unchanged ----------- */

/* p->fused and p->loss_node: which softmax/sigmoid outputs fold into their cross-entropy;
 * reaches[i]: node i leads to an output */
void pn_pass_fuse_losses(const pn_model *m, pn_plan *p, const unsigned char *reaches);
/* p->fold: the embeddings folded into recurrent ops (pn_plan_fold) */
void pn_pass_fold(const pn_model *m, pn_plan *p);
/* p->swap: each relu -> [reshape ...] -> max pool whose relu runs after the pool instead; after
 * pn_pass_fuse_losses (it reads p->loss_node). PN_ENOMEM (no message) when out of memory. */
int pn_pass_relu_pool(const pn_model *m, pn_plan *p);
enum { PN_SWAP_SKIP = 1, PN_SWAP_RELU_AFTER = 2 };
/* The moved relu of a pool (PN_SWAP_RELU_AFTER), in place: on c->out after its forward, or on
 * c->dout (from c->out) before its backward. */
void pn_plan_relu_after(const pn_node *pool, const pn_ctx *c, int backward);

/* The embedding node that node l (of m) folds into itself at this batch size, or -1: a recurrent
 * op (simple_rnn, lstm, gru) whose input is an embedding's output that nothing else reads (no
 * other node, no model output), whose table no other node uses, with no input dropout and a
 * table of at most T B rows. The op then multiplies the table by its kernel once per batch,
 * (V, F) x (F, G U), instead of every step's embedded inputs, (T B, F) x (F, G U), and takes
 * the table's gradient from its own (passes.c, ops_rnn.c, ops_lstm.c). Results agree up to float
 * rounding. */
int pn_plan_fold(const pn_model *m, const pn_node *l, int64_t batch);
#define PN_FOLDED (-2)

/* The plan for (batch, mode) from the cache, or a new one (model.c); the model lock is held. */
int pn_model_get_plan(pn_model *m, int64_t batch, pn_mode mode, pn_plan **out);
enum { PLAN_FREE = 0, PLAN_HELD = 1, PLAN_HELD_ORPHAN = 2 };
/* Releases a plan an eager call held, without the model's lock. */
void pn_model_put_plan(pn_model *m, pn_plan *p);
void pn_model_release(pn_model *m);
/* Checks x against the model's input k (element type, per-sample shape). */
int pn_model_check_input(const pn_model *m, int k, const pn_tensor *x);

int pn_plan_create(pn_plan **out, const pn_model *m, int64_t batch, pn_mode mode);
void pn_plan_destroy(pn_plan *p);
void pn_plan_forward(const pn_model *m, pn_plan *p);
void pn_model_infer_seed(pn_model *m, pn_plan *p); /* model.c: an inference run's stream */
void pn_plan_backward(const pn_model *m, pn_plan *p);

/* the loss of output k (loss.c) */
int64_t pn_loss_target_size(const pn_model *m, int k); /* target values per sample */
int pn_loss_check_targets(const pn_model *m, int k, const pn_tensor *y, int64_t rows);
float pn_loss_forward(const pn_model *m, const pn_plan *p, int k, const void *y, const float *w);
void pn_loss_backward(const pn_model *m, pn_plan *p, int k, const void *y, const float *w);
/* output k's metric accumulators for the batch (metrics.c) */
void pn_metrics_sum(const pn_model *m, const pn_plan *p, int k, const void *y, float *sums);
/* output k's weight of its mean metrics for the batch: its kept rows over its rows per sample */
float pn_metrics_weight(const pn_model *m, const pn_plan *p, int k);

/* A loss over R rows of C values: the outputs, the logits it reads when they are logits (fused:
 * out = softmax/sigmoid(z), folded into the loss; from_logits: out = z), the targets. */
typedef struct {
    pn_loss_kind kind;
    int from_logits, fused;
    int64_t R, C;
    const float *out, *z;
    const void *y;       /* float32 targets, or int32 labels (one per row) for the sparse loss */
    const float *w;      /* NULL, or a weight per sample: row r's is w[r / rows_per_w] */
    int64_t rows_per_w;
    const float *mask;   /* NULL, or one value per row: 0 leaves the row out of the mean */
} pn_loss_rows;
double pn_loss_value(const pn_loss_rows *L);  /* the mean over rows (the kept rows) */
void pn_loss_grad(const pn_loss_rows *L, float *g, float w, int acc);
int pn_loss_check_labels(const int32_t *t, int64_t R, int64_t C);

float pn_regularizer_apply(pn_model *m, const pn_plan *p, int want_grad);

/* optimizer (optimizer.c) */
int pn_optimizer_slots(const pn_optim_config *cfg);
/* Checks cfg and replaces the model's optimizer state with a fresh one (PN_EVALUE or
 * PN_ENOMEM with the model unchanged). */
int pn_optimizer_create(pn_model *m, const pn_optim_config *cfg);
/* The fused training step's update, from the gradients of the unscaled loss. */
void pn_optimizer_step(pn_model *m);

/* A counter-based random stream for random ops: the same (key, i) always gives the same bits,
 * so masks are reproducible whatever the thread count or loop order. splitmix64's finaliser. */
static inline uint64_t pn_hash64(uint64_t key, uint64_t i) {
    uint64_t z = key + (i + 1) * 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* A uniform float in [0, 1) from (key, i): the top 24 bits. */
static inline float pn_uniform(uint64_t key, uint64_t i) {
    return (float)(pn_hash64(key, i) >> 40) * (1.0f / 16777216.0f);
}

/* shape helper for op files */
static inline const pn_node *pn_input_node(const pn_model *m, const pn_node *n, int i) {
    return &m->g->nodes[n->in[i]];
}

#endif /* PYNN_INTERNAL_H */
