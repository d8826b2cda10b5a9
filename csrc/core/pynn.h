/*
 * pynn.h: the whole public API of libpynn, the C core of pynn.
 *
 * The core is plain C11 with no Python in it. A model is built in three steps and then run:
 *
 *   1. variables   pn_model_add_variable() declares every weight (shape, trainable); pn_model_alloc()
 *                  then places them all in one flat float32 buffer (trainable ones first) with a
 *                  gradient buffer of the same size beside it.
 *   2. graph       pn_model_add_input() (once per model input, up to PN_MAX_MODEL_INPUTS) and
 *                  pn_model_add_node() append nodes in topological order; each node is one row of
 *                  the op table (pn_op_kind) with its inputs, variables and attributes; the core
 *                  infers and checks every shape as the node is added.
 *   3. compile     pn_model_set_outputs() names the output nodes (pn_model_set_output() the one
 *                  output of a single-output model); pn_model_compile_outputs() gives each output
 *                  its loss, loss weight and metrics (pn_model_compile() one loss and metric list
 *                  for every output, weight 1); pn_model_set_optimizer() chooses the update rule
 *                  and allocates its state.
 *
 *   run            pn_model_train_step()  forward, losses, backward, regularizers, update: one call.
 *                  pn_model_test_step()   forward, losses, metrics.
 *                  pn_model_predict()     forward only, over any number of rows, in batches.
 *                  Each takes one tensor per model input (and one target per output), in the order
 *                  the inputs were added (and the outputs set).
 *
 * Each run compiles (once, then caches) a plan for its batch size: every activation and activation
 * gradient in one arena, so a step allocates nothing. Caller arrays are borrowed for one call only.
 *
 * Graphs: steps 2 and 3 build the model's current graph. pn_model_add_graph() starts another over
 * the same variables and optimizer (a model whose input lengths come from the data has one per
 * input shape); pn_model_use_graph() chooses which one building and running use.
 *
 * Errors: every function that can fail returns 0 or a negative PN_E* code and leaves a message in a
 * thread-local buffer (pn_last_error()). A failed call leaves the model as it was.
 */
#ifndef PYNN_H
#define PYNN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define PN_MAX_DIMS 8    /* rank of a tensor, batch axis included */
#define PN_MAX_INPUTS 4  /* inputs of one node */
#define PN_MAX_VARS 6    /* variables of one node (a stateful lstm has five) */
#define PN_MAX_ATTRS 28  /* integer and float attributes of one node */
#define PN_MAX_METRICS 8   /* metrics of one output */
#define PN_MAX_MODEL_INPUTS 16 /* inputs of a model */
#define PN_MAX_GRAPHS 16       /* graphs of a model over one set of variables */
#define PN_MAX_OUTPUTS 16      /* outputs of a model */
#define PN_MAX_ADDED_LOSSES 32 /* scalar loss terms of a graph besides its outputs' losses */

/* ---- errors -------------------------------------------------------------------------------- */

enum {
    PN_OK = 0,
    PN_ESHAPE = -1,    /* shapes do not fit together               (Python: ValueError)   */
    PN_EVALUE = -2,    /* a bad argument or data value              (Python: ValueError)   */
    PN_ETYPE = -3,     /* a wrong element type                      (Python: TypeError)    */
    PN_ENOMEM = -4,    /* an allocation failed                      (Python: MemoryError)  */
    PN_EIO = -5,       /* a file could not be read or written       (Python: OSError)      */
    PN_ESTATE = -6,    /* the object is not ready for this call     (Python: RuntimeError) */
    PN_EINTR = -7,     /* the interrupt hook asked the call to stop (Python: the pending
                          signal's exception, KeyboardInterrupt for Ctrl-C) */
};

/* The message of the last error raised on this thread ("" if none). */
const char *pn_last_error(void);

/* Tests only: from now on, allocations of the core are counted from 0 and the one numbered n
 * fails (as if out of memory), once; n < 0 turns counting and failing off (the default). */
void pn_debug_fail_alloc(int64_t n);
/* Allocations counted since the last pn_debug_fail_alloc(n >= 0). */
int64_t pn_debug_alloc_count(void);
/* Tests only: on = 0 stops new plans from folding an embedding into a recurrent op
 * (pn_plan_fold), so a test can compare both paths; returns the previous setting. */
int pn_debug_folds(int on);
/* Tests only: on = 0 stops new plans from moving a relu after the max pool it feeds
 * (passes.c), so a test can compare both paths; returns the previous setting. */
int pn_debug_swaps(int on);

/* ---- threads ------------------------------------------------------------------------------- */

/* One setting for both pools: OpenBLAS's threads and the core's OpenMP loops. n >= 1, capped
 * by OMP_THREAD_LIMIT; always 1 in a child of fork(), where OpenMP cannot start threads. Parallel
 * loops are correct with however many threads OpenMP grants (fewer under OMP_DYNAMIC). */
void pn_set_num_threads(int n);
int pn_get_num_threads(void);
/* OpenMP's default, as PyTorch reads it: OMP_NUM_THREADS, else the CPUs this process may use,
 * capped by OMP_THREAD_LIMIT (1 in a forked child). */
int pn_default_num_threads(void);
/* 1 in a child of fork() (the core runs single-threaded there), else 0. */
int pn_forked_child(void);

/* ---- the CPU ------------------------------------------------------------------------------- */

/* What the CPU and the OS run (cpu.c, read once from CPUID): kernels are chosen by it at run
 * time, so one build runs on every x86-64 CPU. AVX512: F, BW, DQ and VL together. */
enum {
    PN_CPU_AVX2 = 1,       /* AVX2 and FMA */
    PN_CPU_AVX512 = 2,
    PN_CPU_AVX512BF16 = 4, /* VDPBF16PS: bfloat16 pairs summed in float32 */
    PN_CPU_AMX_BF16 = 8,   /* AMX tiles with bfloat16 */
    PN_CPU_FMA512 = 16,    /* AVX-512 with 512-bit FMAs at full rate (not Zen 4's halves) */
};
unsigned pn_cpu_features(void); /* the PN_CPU_* bits, less those pn_cpu_disable turned off */
int pn_cpu_has(unsigned features); /* 1 when every bit of `features` is there */
/* Tests only: the kernels act as if these features were missing (0: none missing), so the
 * fallbacks run on any CPU. */
void pn_cpu_disable(unsigned features);

/* ---- interrupts ---------------------------------------------------------------------------- */

/* Long calls (predict over many batches, large eager products) call the hook, on the calling
 * thread, at most every 50 ms between batches or blocks; when it returns nonzero the call stops
 * with PN_EINTR, leaving its objects as they were between two batches. NULL: no hook. */
typedef int (*pn_interrupt_fn)(void);
void pn_set_interrupt_hook(pn_interrupt_fn hook);
/* A call that finds its model's lock held by a run on another thread calls begin() before it
 * waits and end(begin's result) after: the extension releases Python's GIL there, so that no
 * thread waits for a model holding the GIL that the run's interrupt hook may need. */
typedef void *(*pn_wait_begin_fn)(void);
typedef void (*pn_wait_end_fn)(void *token);
void pn_set_wait_hooks(pn_wait_begin_fn begin, pn_wait_end_fn end);

/* ---- element types ------------------------------------------------------------------------- */

typedef enum { PN_F32 = 0, PN_I32 = 1 } pn_dtype;

/* A borrowed view of caller memory: contiguous, row-major, dims[0] is the batch. */
typedef struct {
    int ndim;
    int64_t dims[PN_MAX_DIMS];
    pn_dtype dtype;
    void *data;
} pn_tensor;

/* ---- ops ----------------------------------------------------------------------------------- */

/* The op kinds, PN_OP_INPUT = 0 onwards: one per row of ops.def, which documents each. */
typedef enum {
#define PN_OP(e, d) PN_OP_##e,
#include "ops.def"
#undef PN_OP
    PN_OP_COUNT
} pn_op_kind;

/* The op's name ("dense", "relu", ...), or NULL when out of range. */
const char *pn_op_name(int op);
/* The op whose name is `name`, or -1. */
int pn_op_find(const char *name);

/* ---- losses, metrics, optimizers ----------------------------------------------------------- */

typedef enum {
    PN_LOSS_MSE = 0,
    PN_LOSS_MAE,
    PN_LOSS_BINARY_CE,
    PN_LOSS_CATEGORICAL_CE,
    PN_LOSS_SPARSE_CE,   /* targets are int32 class indices */
    PN_LOSS_NONE,        /* no fused loss: 0, no gradient; float32 targets of the output's
                          * target node's size (pn_model_add_target), the loss being the graph's
                          * added losses (a traced loss function) */
    PN_LOSS_COUNT
} pn_loss_kind;

/*
 * Metrics, with Keras 3's definitions. A metric adds a few accumulators (sums) per batch; its
 * value is a function of their running totals (and of the samples seen), taken at the end:
 *   mean metrics (accuracies, MAE, MSE, top-k)  1: the sum over samples of a per-sample value
 *                                                  (the mean over the sample's rows); / samples
 *   precision                                   2: tp, fp        tp / (tp + fp)
 *   recall                                      2: tp, fn        tp / (tp + fn)
 *   AUC                                         4T: tp[T], fp[T], tn[T], fn[T] at T thresholds
 *   RMSE                                        1: as MSE;       sqrt(sum / samples)
 * Precision, recall and AUC count every element of the output (flattened, as Keras does with
 * multi_label=False); a target is positive when it is non-zero. AUC's thresholds are Keras's:
 * t_0 = -1e-7, t_i = i / (T - 1), t_{T-1} = 1 + 1e-7, a prediction (clipped to [0, 1]) counting
 * as positive at t_i when it is above it.
 */
typedef enum {
    PN_METRIC_BINARY_ACCURACY = 0,   /* mean over the last axis of (pred > threshold) == target */
    PN_METRIC_CATEGORICAL_ACCURACY,  /* argmax(pred) == argmax(target) */
    PN_METRIC_SPARSE_ACCURACY,       /* argmax(pred) == target index */
    PN_METRIC_MAE,
    PN_METRIC_MSE,
    PN_METRIC_TOP_K,                 /* argmax(target) among the k largest preds (ties count in) */
    PN_METRIC_SPARSE_TOP_K,          /* the target index among the k largest preds */
    PN_METRIC_PRECISION,
    PN_METRIC_RECALL,
    PN_METRIC_AUC,
    PN_METRIC_RMSE,
    PN_METRIC_COUNT
} pn_metric_kind;

/* A metric and its parameters; pn_metric_default() gives Keras's defaults. */
typedef struct {
    pn_metric_kind kind;
    int k;              /* top-k: 1.. (default 5) */
    float threshold;    /* binary accuracy: finite; precision, recall: in [0, 1] (default 0.5) */
    int num_thresholds; /* AUC: 2..10000 (default 200) */
    int from_logits;    /* AUC: the predictions are logits (a sigmoid is applied first) */
} pn_metric;

#define PN_MAX_THRESHOLDS 10000

pn_metric pn_metric_default(pn_metric_kind kind);
/* The metric's Keras name ("precision", "top_k_categorical_accuracy", ...), or NULL. */
const char *pn_metric_name(pn_metric_kind kind);
/* 0, or PN_EVALUE with a message naming the bad parameter. */
int pn_metric_check(const pn_metric *m);
/* The number of accumulators the metric adds per batch (>= 1), or a negative code. */
int pn_metric_size(const pn_metric *m);
/* Whether the metric reads int32 class indices (one per row) rather than float32 targets shaped
 * like the predictions. */
int pn_metric_sparse_targets(pn_metric_kind kind);
/* Whether a masked output's mask weighs the metric (pn_model_set_output_masks): the mean
 * metrics that Keras 3 wraps in MeanMetricWrapper (accuracies, top-k, MAE, MSE). RMSE,
 * precision, recall and AUC read no mask in Keras 3, and count every row here too. */
int pn_metric_reads_mask(pn_metric_kind kind);
/* One batch of `batch` samples: pred is (R, C) (R = batch * rows per sample), target (R, C)
 * float32, or (R) int32 indices for a sparse metric. Writes the batch's pn_metric_size(m)
 * accumulators into sums, to be added to running totals (sums may be reused: nothing is read). */
int pn_metric_accumulate(const pn_metric *m, float *sums, const float *pred, const void *target,
                         int64_t R, int64_t C, int64_t batch);

typedef enum {
    PN_SGD = 0, PN_ADAM, PN_ADAMW, PN_RMSPROP, PN_ADAGRAD,
    PN_NADAM, PN_ADAMAX, PN_ADADELTA, PN_LION, PN_ADAFACTOR, PN_FTRL, PN_LAMB, PN_MUON,
    PN_SCHEDULE_FREE_ADAMW,
    PN_OPTIM_COUNT
} pn_optim_kind;

/* Keras 3's update rules and arguments (optimizer.c gives the math). A clip or decay of 0
 * means "off"; pn_optim_default() gives Keras's defaults. */
typedef struct {
    pn_optim_kind kind;
    float learning_rate;
    float momentum;          /* SGD, RMSprop, Muon */
    int nesterov;            /* SGD, Muon */
    float beta_1, beta_2;    /* Adam(W), Nadam, Adamax, Lion, Lamb, ScheduleFreeAdamW; Muon's
                              * adam_beta_1/2 */
    float epsilon;
    int amsgrad;             /* Adam, AdamW */
    float rho;               /* RMSprop, Adadelta */
    int centered;            /* RMSprop */
    float initial_accumulator_value; /* Adagrad, Ftrl */
    float beta_2_decay, epsilon_1, epsilon_2, clip_threshold;             /* Adafactor */
    float learning_rate_power, l1, l2, l2_shrinkage, beta;               /* Ftrl */
    float muon_a, muon_b, muon_c, adam_lr_ratio, adam_weight_decay;       /* Muon */
    float rms_rate;          /* Muon: update scaled by sqrt(max(rows, cols)) rms_rate; < 0 off */
    int ns_steps;            /* Muon: Newton-Schulz iterations */
    int warmup_steps;        /* ScheduleFreeAdamW: lr t / warmup_steps until t reaches it */
    float weight_decay;      /* decoupled: w -= lr * wd * w, before the update */
    float clipnorm;          /* each variable's gradient scaled to norm <= clipnorm */
    float global_clipnorm;   /* all gradients scaled together to norm <= global_clipnorm */
    float clipvalue;         /* each element clipped to [-clipvalue, clipvalue] */
    /* every rule: an exponential moving average of the weights (slot "average"), copied into
     * them every ema_overwrite_frequency steps (0: only by pn_model_optimizer_finalize) */
    int use_ema;
    float ema_momentum;
    int ema_overwrite_frequency;
    int gradient_accumulation_steps; /* >= 2: the mean gradient of that many calls, one update */
    float loss_scale_factor;  /* pn_model_apply_gradients divides the gradients by it (0: off) */
    /* LossScaleOptimizer: a dynamic loss scale (halved, and the step skipped, when a gradient
     * is not finite; doubled after dynamic_growth_steps finite steps) */
    int dynamic_loss_scale;
    float initial_scale;
    int dynamic_growth_steps;
} pn_optim_config;

/* Keras's defaults for `kind` (its learning rate, betas, epsilon, ...). */
pn_optim_config pn_optim_default(pn_optim_kind kind);

/* Per-variable optimizer flags (pn_model_set_variable_optim). */
enum {
    PN_VAR_NO_DECAY = 1, /* exclude_from_weight_decay */
    PN_VAR_ADAM = 2      /* Muon: this variable takes the AdamW step (not 2-D, embeddings, ...) */
};

/* Keras 3's weight constraints, applied by the core to a trainable variable after every
 * optimizer update (pn_model_set_variable_constraint). The norms are sqrt(sum w^2) over the
 * axes set in a mask (bit i: axis i of the variable's shape), one norm per index of the other
 * axes; eps = 1e-7 (Keras's backend.epsilon()):
 *   MAX_NORM       w *= clip(norm, 0, max) / (eps + norm)
 *   NON_NEG        w = max(w, 0)
 *   UNIT_NORM      w /= eps + norm
 *   MIN_MAX_NORM   w *= (rate clip(norm, min, max) + (1 - rate) norm) / (eps + norm) */
typedef enum {
    PN_CONSTRAINT_NONE = 0, PN_CONSTRAINT_MAX_NORM, PN_CONSTRAINT_NON_NEG,
    PN_CONSTRAINT_UNIT_NORM, PN_CONSTRAINT_MIN_MAX_NORM,
    PN_CONSTRAINT_COUNT
} pn_constraint_kind;

/* ---- the model ----------------------------------------------------------------------------- */

typedef struct pn_model pn_model;

int pn_model_create(pn_model **out);
void pn_model_destroy(pn_model *m);

/* Variables: declared first, then placed by pn_model_alloc (trainable ones first, contiguous). */
int pn_model_add_variable(pn_model *m, int ndim, const int64_t *shape, int trainable, int *id);
int pn_model_alloc(pn_model *m);
int pn_model_variable_count(const pn_model *m);
/* Offset into the flat buffers, element count, shape. After pn_model_alloc. */
int pn_model_variable(const pn_model *m, int id, int64_t *offset, int64_t *size, int *ndim,
                      int64_t *shape);
/* Copies into (write) or out of (read) n variables, src[i] / dst[i] holding variable ids[i]'s
 * size, all under the model's lock: a run on another thread sees all old or all new values. */
int pn_model_write_variables(pn_model *m, int n, const int *ids, const float *const *src);
int pn_model_read_variables(pn_model *m, int n, const int *ids, float *const *dst);
float *pn_model_params(pn_model *m);       /* all variables, flat (each 64-byte aligned) */
float *pn_model_grads(pn_model *m);        /* their gradients, same layout */
int64_t pn_model_param_count(const pn_model *m, int trainable_only);
/* An L1/L2 penalty on a trainable variable: l1 * sum|w| + l2 * sum w^2, added to the loss. */
int pn_model_set_regularizer(pn_model *m, int var, float l1, float l2);

/* Graph: shapes here exclude the batch axis. Each pn_model_add_input adds one model input (at
 * most PN_MAX_MODEL_INPUTS); run calls take their tensors in this order. */
int pn_model_add_input(pn_model *m, int ndim, const int64_t *shape, pn_dtype dtype, int *node);
int pn_model_input_count(const pn_model *m);
int pn_model_input_node(const pn_model *m, int k); /* the k-th input's node, or -1 */
/* iattr and fattr are NULL (all zero) or arrays of PN_MAX_ATTRS values each. */
int pn_model_add_node(pn_model *m, int op, int n_in, const int *inputs, int n_var, const int *vars,
                      const int *iattr, const float *fattr, int *node);
/* Nodes added after this call (until the next) run their matrix products in mixed precision
 * when on: operands rounded to bfloat16, sums in float32 (Keras's "mixed_bfloat16" policy), on
 * AVX512-BF16 where the CPU has it. Products with fewer than 32 terms stay float32. Returns
 * the setting it replaced. */
int pn_model_set_bf16(pn_model *m, int on);
/* An unbatched float32 node holding a copy of `data` (ndim axes of `shape`): a constant of a
 * traced call, kept by the graph rather than among the variables. */
int pn_model_add_constant(pn_model *m, int ndim, const int64_t *shape, const float *data,
                          int *node);

/* Graphs over the model's variables: pn_model_add_graph makes a new empty graph (inputs, nodes,
 * outputs and losses of its own; optimizer, iterations and random stream shared) the current one
 * and gives its id; pn_model_use_graph makes graph `id` current; pn_model_drop_graph frees one
 * that is not current and that no eager call still needs (PN_ESTATE otherwise). Graph 0 is made
 * with the model. An eager call's backward runs on the graph it was called on. */
int pn_model_add_graph(pn_model *m, int *id);
int pn_model_use_graph(pn_model *m, int id);
int pn_model_drop_graph(pn_model *m, int id);
int pn_model_current_graph(const pn_model *m);

/* A tensor's description for pn_infer_node: its shape (per sample unless unbatched), dtype. */
typedef struct {
    int ndim;
    int64_t shape[PN_MAX_DIMS];
    pn_dtype dtype;
    int unbatched;
} pn_shape_desc;
/* The node an op would make from inputs and variables of these shapes, without a model (what
 * tracing a layer's call() asks): the same checks and shape as pn_model_add_node. */
int pn_infer_node(int op, int n_in, const pn_shape_desc *in, int n_var, const pn_shape_desc *vars,
                  const int *iattr, const float *fattr, pn_shape_desc *out);
/* 1 when the node's value has no batch axis (made from variables and constants only: its
 * shape is then the whole tensor's), 0 when it has, or a negative code. */
int pn_model_node_unbatched(const pn_model *m, int node);
/* A node's element type (pn_dtype), or a negative code. */
int pn_model_node_dtype(const pn_model *m, int node);
/* A node's per-sample output shape; returns its rank, or a negative code. */
int pn_model_node_shape(const pn_model *m, int node, int64_t *shape);

/* The nodes predict returns and the losses read, in order (1..PN_MAX_OUTPUTS, float32). A node
 * may be listed twice or feed another output. Uncompiles the model and drops cached plans. */
int pn_model_set_outputs(pn_model *m, int n, const int *nodes);
int pn_model_set_output(pn_model *m, int node); /* pn_model_set_outputs(m, 1, &node) */
int pn_model_output_count(const pn_model *m);
int pn_model_output_node(const pn_model *m, int k); /* the k-th output's node, or -1 */
/* Output k's per-sample shape; returns its rank, or a negative code when there is none. */
int pn_model_output_shape(const pn_model *m, int k, int64_t *shape);
/* Per output, a node holding its mask or -1 for none (Keras 3's masks: an Embedding with
 * mask_zero, Masking). A mask is float32, batched, with one value per row of its output (the
 * output's per-sample size over its last axis: (T) for an output (T, C)); a non-zero value
 * keeps the row. The steps then leave masked rows out of the output's loss, as Keras's
 * "sum over batch size" does: loss = sum_r l_r w_r m_r / sum_r m_r (w: sample weights, m: the
 * mask as 0/1; 0 when no row is kept), and out of its mean metrics, which become a weighted
 * mean over the epoch's kept rows (see the results below); RMSE, precision, recall and AUC
 * count every row, masked or not, as Keras 3's do (pn_metric_reads_mask). pn_model_set_outputs
 * clears the masks; this call drops cached plans and keeps the model compiled. */
int pn_model_set_output_masks(pn_model *m, int n, const int *nodes);
int pn_model_output_mask(const pn_model *m, int k); /* the k-th output's mask node, or -1 */
/* Scalar nodes (unbatched float32, one value) added to the total loss of training and test
 * steps as they are (Keras's add_loss): each step's loss is the outputs' weighted losses, the
 * weight penalties and these; their gradient is 1. At most PN_MAX_ADDED_LOSSES; drops cached
 * plans. Eager calls (pn_model_call) leave them out. */
int pn_model_set_added_losses(pn_model *m, int n, const int *nodes);
/* A float32 node holding a step's targets of output k (kind 0: per-sample shape (ndim, shape),
 * rank 0.., whose size the step's y for output k then has) or its sample weights (kind 1: rank
 * 0, one value per sample; ones when the step has none), for nodes computing an added loss from
 * them (a traced loss function; the output compiled with PN_LOSS_NONE). One of each kind per
 * output; the plan points it at the step's gathered data. Nodes that read it run only in train
 * and test steps: predict and eager calls skip them, and a model output or mask that depends on
 * it makes plans fail (PN_ESHAPE). Changes the graph (recompile). */
int pn_model_add_target(pn_model *m, int k, int kind, int ndim, const int64_t *shape, int *node);

/* One output's loss (from_logits: the output holds logits), its weight in the total loss, and
 * its metrics. */
typedef struct {
    pn_loss_kind loss;
    int from_logits;
    float weight;
    int n_metrics;
    pn_metric metrics[PN_MAX_METRICS];
} pn_loss_config;

/* cfg holds one entry per output. Drops cached plans. */
int pn_model_compile_outputs(pn_model *m, const pn_loss_config *cfg);
/* The same loss and metrics for every output, each with weight 1. */
int pn_model_compile(pn_model *m, pn_loss_kind loss, int from_logits, int n_metrics,
                     const pn_metric *metrics);
/* The number of floats a train or test step writes to results (see below). */
int pn_model_result_count(const pn_model *m);
/* The update rule and its fresh state (PN_EVALUE, nothing changed, for a bad argument). */
int pn_model_set_optimizer(pn_model *m, const pn_optim_config *cfg);
/* A trainable variable's PN_VAR_* flags (kept across pn_model_set_optimizer). */
int pn_model_set_variable_optim(pn_model *m, int var, int flags);
/* A trainable variable's constraint (PN_CONSTRAINT_NONE removes it): its kind, the mask of
 * the axes its norms reduce over (bits below the variable's rank only), and min_value,
 * max_value, rate (each finite; read by the kinds that use them). Applied after each update of
 * pn_model_train_step and pn_model_apply_gradients (gradient accumulation's in-between steps
 * too, as Keras), not after a step a dynamic loss scale skips. PN_EVALUE, nothing changed, for
 * a bad argument. Kept across pn_model_set_optimizer. */
int pn_model_set_variable_constraint(pn_model *m, int var, int kind, unsigned axes,
                                     float min_value, float max_value, float rate);
/* use_ema: copies the moving averages into the trainable weights (Keras's
 * finalize_variable_values, which fit runs at its end); a no-op otherwise. */
int pn_model_optimizer_finalize(pn_model *m);
int pn_model_set_learning_rate(pn_model *m, float lr);
float pn_model_learning_rate(const pn_model *m);
int64_t pn_model_iterations(const pn_model *m);
/* The seed of the model's random ops (dropout): each training run's masks follow from it and
 * a counter of training forwards, so a seeded run is repeatable at any thread count. */
void pn_model_set_seed(pn_model *m, uint64_t seed);
/* The random stream's whole state (the seed and the training forwards run so far), so a saved
 * model resumes with the masks it would have drawn next. */
void pn_model_rng_state(const pn_model *m, uint64_t *seed, uint64_t *forwards);
void pn_model_set_rng_state(pn_model *m, uint64_t seed, uint64_t forwards);
/* The optimizer's step count: 0..PN_MAX_ITERATIONS (2^53, exact as the double that Adam's bias
 * correction reads; counting on from there by one a step cannot overflow). PN_EVALUE outside. */
#define PN_MAX_ITERATIONS (INT64_C(1) << 53)
int pn_model_set_iterations(pn_model *m, int64_t it);
/* The optimizer's state for saving: n_slots runs parallel to the trainable span of params,
 * then its scalars (Nadam's u_product; a dynamic loss scale's scale and step counter). */
int pn_model_optimizer_state(pn_model *m, float **state, int64_t *n);

/*
 * Run calls. xs points to one tensor per model input, each holding the same number of samples
 * (dims[0]); ys to one target tensor per output (float32, or int32 class indices for the sparse
 * loss), with as many samples. With idx non-NULL the batch is the rows idx[0..batch) of every x
 * and y (gathered into the plan's buffers); with idx NULL it is all of them.
 * results receives pn_model_result_count() values: the batch's total loss (the sum over outputs
 * of weight * mean loss, regularizers included); then, with more than one output, each output's
 * own mean loss (unweighted); then each output's metrics in turn, each as its accumulators for
 * the batch (pn_metric_accumulate); then, for each output with a mask (in output order), the
 * weight of its mean metrics: its kept rows over its rows per sample (the batch's samples when
 * nothing is masked). A masked output's metric that reads the mask (pn_metric_reads_mask)
 * accumulates the sum of its per-row value over the kept rows, over the rows per sample, so
 * that its epoch value is the sum of its accumulators over the sum of that weight (Keras's
 * mask-weighted mean); the other mean metrics' are divided by the samples. One output with
 * mean metrics only and no mask: 1 + n_metrics values.
 * sw, when non-NULL, holds per output NULL or a weight per sample (as many as the samples of
 * xs, finite and >= 0): each sample's loss is multiplied by its weight, and the mean stays over
 * all samples ("sum over batch size", as Keras weighs), or over the kept rows with a mask.
 * Metrics are not weighted (Keras's compile(metrics=...)); a mask weighs them as above.
 */
int pn_model_train_step(pn_model *m, const pn_tensor *xs, const pn_tensor *ys,
                        const float *const *sw, const int64_t *idx, int64_t batch,
                        float *results);
int pn_model_test_step(pn_model *m, const pn_tensor *xs, const pn_tensor *ys,
                       const float *const *sw, const int64_t *idx, int64_t batch,
                       float *results);
/* The same steps, which also copy the forward's outputs for metrics computed outside the core:
 * for each output k with outs[k] non-NULL, its batch * per-sample size values; with masks
 * non-NULL, for each output k with masks[k] non-NULL and a mask (pn_model_output_mask), the
 * mask's batch * rows-per-sample values (0 drops a row). outs may be NULL (nothing copied). */
int pn_model_train_step_outputs(pn_model *m, const pn_tensor *xs, const pn_tensor *ys,
                                const float *const *sw, const int64_t *idx, int64_t batch,
                                float *results, float *const *outs, float *const *masks);
int pn_model_test_step_outputs(pn_model *m, const pn_tensor *xs, const pn_tensor *ys,
                               const float *const *sw, const int64_t *idx, int64_t batch,
                               float *results, float *const *outs, float *const *masks);
/* Gradients of the total loss only, no update: fills pn_model_grads() and, when dx is non-NULL,
 * dloss/dx[k] for each input k whose dx[k] is non-NULL (that input's size; zeros for an int32
 * input). */
int pn_model_gradients(pn_model *m, const pn_tensor *xs, const pn_tensor *ys, float *loss,
                       float *const *dx);
/* Forward over all rows of the inputs in batches of batch_size; outs[k] receives output k:
 * rows * its per-sample size floats. */
int pn_model_predict(pn_model *m, const pn_tensor *xs, int64_t batch_size, float *const *outs);
/* The arena bytes of the plan for `batch` (training: 1, or inference: 0), building it if needed:
 * what a step of that size holds besides the weights. */
int pn_model_plan_bytes(pn_model *m, int64_t batch, int training, int64_t *bytes);

/* ---- eager values and the tape: the imperative path --------------------------------------
 *
 * A pn_value is a tensor computed now, which remembers how: its data, its gradient once a
 * backward has reached it, and the tape entry (pn_fn) that made it, which holds the entry's
 * inputs. Every eager call below computes its result at once and, when grad mode is on and an
 * input requires a gradient, records an entry; pn_value_backward then walks the entries from a
 * value back to the leaves, adding each leaf's gradient into its grad buffer (as PyTorch's
 * .backward() does: gradients accumulate until zeroed).
 *
 * Values are reference-counted: a new value comes with one reference, owned by the caller.
 * Entries run the same kernels as the model plans, so a model called eagerly and a model trained
 * with pn_model_train_step compute the same numbers.
 */
typedef struct pn_value pn_value;

/* A new value holding a copy of data (zeros when data is NULL). dims[0] need not be a batch. */
int pn_value_create(pn_value **out, int ndim, const int64_t *dims, pn_dtype dtype,
                    const void *data);
/* A value over caller memory, which must outlive it: release(ctx) runs when the value is freed
 * (may be NULL). grad, when non-NULL, is the caller's gradient buffer of the same size. */
int pn_value_borrow(pn_value **out, int ndim, const int64_t *dims, pn_dtype dtype, void *data,
                    float *grad, void (*release)(void *), void *ctx);
void pn_value_retain(pn_value *v);
void pn_value_release(pn_value *v);   /* frees the value and what only it kept alive */

int pn_value_ndim(const pn_value *v);
const int64_t *pn_value_dims(const pn_value *v);
int64_t pn_value_size(const pn_value *v);
pn_dtype pn_value_dtype(const pn_value *v);
void *pn_value_data(pn_value *v);
float *pn_value_grad(pn_value *v);     /* NULL until a backward reaches the value */
int pn_value_requires_grad(const pn_value *v);
/* Marks a leaf (a value no entry made) as wanting a gradient, or not. */
int pn_value_set_requires_grad(pn_value *v, int on);
/* The name of the entry that made v ("add", "dense", "model", ...), or NULL for a leaf. */
const char *pn_value_fn_name(const pn_value *v);
/* Zeroes v's gradient, if it has one. */
void pn_value_zero_grad(pn_value *v);

/* Grad mode of this thread (on by default): with it off, eager calls record nothing. */
void pn_set_grad_enabled(int on);
int pn_grad_enabled(void);

/* Backpropagates from v: with seed NULL, v must hold one value and its gradient is 1; otherwise
 * seed holds v's gradient (v's size). Leaves that require a gradient accumulate it; the
 * gradients of intermediate values are freed on the way. On an error (PN_ENOMEM midway) the
 * leaves, and a called model's gradients, may hold part of this backward's sum: zero them and
 * run the step again (intermediate gradients are always freed; nothing leaks). */
int pn_value_backward(pn_value *v, const float *seed);

/* Any graph op (PN_OP_DENSE ... PN_OP_SLICE) on values whose axis 0 is the batch, with the
 * op's variables as values too: what a layer called on data runs. training: dropout drops and
 * batch norm uses batch statistics; seed: the random stream of dropout. */
int pn_eager_op(int op, int n_in, pn_value *const *in, int n_var, pn_value *const *vars,
                const int *iattr, const float *fattr, int training, uint64_t seed,
                pn_value **out);
/* pn_eager_op, with the op's matrix products (forward and backward) in mixed precision when
 * bf16 is 1, as a node of pn_model_set_bf16: a layer of the mixed_bfloat16 policy on data. */
int pn_eager_op_mixed(int op, int n_in, pn_value *const *in, int n_var, pn_value *const *vars,
                      const int *iattr, const float *fattr, int training, uint64_t seed,
                      int bf16, pn_value **out);

/* Comparisons and logical ops give float32 0/1 (a nonzero operand, NaN included, is true) and
 * no gradient; floor_divide and mod follow Python's signs (NumPy's divmod). */
typedef enum { PN_BIN_ADD = 0, PN_BIN_SUB, PN_BIN_MUL, PN_BIN_DIV, PN_BIN_MAXIMUM,
               PN_BIN_MINIMUM, PN_BIN_POW, PN_BIN_EQUAL, PN_BIN_NOT_EQUAL, PN_BIN_LESS,
               PN_BIN_LESS_EQUAL, PN_BIN_GREATER, PN_BIN_GREATER_EQUAL, PN_BIN_LOGICAL_AND,
               PN_BIN_LOGICAL_OR, PN_BIN_LOGICAL_XOR, PN_BIN_FLOOR_DIVIDE, PN_BIN_MOD,
               PN_BIN_ARCTAN2, PN_BIN_HYPOT, PN_BIN_COUNT } pn_binop;
typedef enum { PN_UN_NEG = 0, PN_UN_EXP, PN_UN_LOG, PN_UN_SQRT, PN_UN_ABS, PN_UN_SQUARE,
               PN_UN_RELU, PN_UN_SIGMOID, PN_UN_TANH, PN_UN_SIN, PN_UN_COS, PN_UN_TAN,
               PN_UN_ARCTAN, PN_UN_ERF, PN_UN_LOG1P, PN_UN_EXPM1, PN_UN_RECIPROCAL, PN_UN_RSQRT,
               PN_UN_SIGN, PN_UN_FLOOR, PN_UN_CEIL, PN_UN_ROUND, PN_UN_SOFTPLUS, PN_UN_SILU,
               PN_UN_GELU, PN_UN_LOG_SIGMOID, PN_UN_LOGICAL_NOT, PN_UN_ISNAN, PN_UN_ISINF,
               PN_UN_ISFINITE, PN_UN_SIGNBIT, PN_UN_COUNT } pn_unop;
/* The name of a binary op, unary op or reduction ("add", "sin", "sum"), NULL when out of
 * range; the code of a name, or -1. */
const char *pn_binop_name(int op);
const char *pn_unop_name(int op);
const char *pn_redop_name(int op);
int pn_binop_find(const char *name);
int pn_unop_find(const char *name);
int pn_redop_find(const char *name);
typedef enum { PN_RED_SUM = 0, PN_RED_MEAN, PN_RED_MAX, PN_RED_MIN, PN_RED_PROD,
               PN_RED_COUNT } pn_redop;

/* a op b with NumPy broadcasting; float32 only */
int pn_eager_binary(pn_binop op, pn_value *a, pn_value *b, pn_value **out);
int pn_eager_unary(pn_unop op, pn_value *a, pn_value **out);
/* Reduces over the listed axes (all of them when n_axes is 0). */
int pn_eager_reduce(pn_redop op, pn_value *a, int n_axes, const int *axes, int keepdims,
                    pn_value **out);
/* Matrix product of the last two axes, NumPy's matmul rules for 1-D operands and batch axes. */
int pn_eager_matmul(pn_value *a, pn_value *b, pn_value **out);
/* softmax (or log_softmax) over one axis */
int pn_eager_softmax(pn_value *a, int axis, int log, pn_value **out);
/* A strided slice: per axis start, step (non-zero) and count; axes in `drop` (a bitmask) are
 * indexed by one integer and disappear from the result. */
int pn_eager_slice(pn_value *a, const int64_t *start, const int64_t *step, const int64_t *count,
                   unsigned drop, pn_value **out);
int pn_eager_reshape(pn_value *a, int ndim, const int64_t *dims, pn_value **out);
int pn_eager_transpose(pn_value *a, const int *perm, pn_value **out);
/* A whole-tensor graph op of ops_select.c (PN_OP_WHERE, PN_OP_GATHER, PN_OP_CUMULATIVE,
 * PN_OP_SORT, PN_OP_ARG_REDUCE, PN_OP_PAD) run now on values without a batch axis: its shape
 * function checks them, its forward and backward are the graph's (attributes as in ops.def).
 * Bad data (an index out of range) gives PN_EVALUE and no result. */
int pn_eager_math_op(int op, int n_in, pn_value *const *in, const int *iattr, const float *fattr,
                     pn_value **out);
/* A loss of Keras 3 (pn_loss_kind) between targets y (float32, or int32 labels for the sparse
 * loss) and predictions p: a scalar, the mean over samples; the gradient flows to p. */
int pn_eager_loss(pn_loss_kind loss, int from_logits, pn_value *y, pn_value *p, pn_value **out);

/* The model run now on x (one value per input), into out (one value per output): the same plan
 * and kernels as a training step, kept by the entry until its backward. The variables' gradients accumulate into
 * pn_model_grads(). training: dropout and batch norm as in a training step. */
int pn_model_call(pn_model *m, pn_value *const *x, int training, pn_value **out);
/* A value over variable `id` of the model (data in the params, gradient in the grads); it keeps
 * the model alive. Trainable variables require a gradient. */
int pn_model_variable_value(pn_model *m, int id, pn_value **out);
/* Zeroes every gradient of the model. */
void pn_model_zero_grads(pn_model *m);
/* One optimizer update from the gradients in pn_model_grads(), of the listed trainable
 * variables (all of them when n is 0); no loss, no regularizers. */
int pn_model_apply_gradients(pn_model *m, int n, const int *vars);
/* pn_model_destroy drops the caller's reference; values over the model's variables hold their
 * own, so the model lives until the last is released. */
void pn_model_retain(pn_model *m);

/* The op code of the activation called `name` ("relu", "gelu", ...), -1 when no activation has
 * that name; and the code of a recurrent layer's gate activation ("tanh", "sigmoid", "relu",
 * "linear", "hard_sigmoid"; iattr[4] and iattr[5] of the recurrent ops), -1 when unknown. */
int pn_activation_find(const char *name);
int pn_rnn_activation_find(const char *name);

/* Applies one activation op (see pn_activation_find) to `rows` rows of `cols` values; fattr
 * and iattr (may be NULL) hold its one attribute of each kind (leaky_relu/elu alpha, gelu form). */
int pn_activation_apply(int op, const float *fattr, const int *iattr, float *out, const float *inp,
                        int64_t rows, int64_t cols);

#ifdef __cplusplus
}
#endif
#endif /* PYNN_H */
