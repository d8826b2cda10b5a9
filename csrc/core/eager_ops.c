/*
 * eager_ops.c: a graph op (dense, conv2d, relu, ...) run once on values, as a layer called on
 * data runs it.
 *
 * The op's own row of the op table does all the work: its shape function checks the values'
 * shapes, its forward and backward are the kernels the model plans run. The entry keeps what the
 * kernels see in a plan (the node, its inputs' nodes, its variables' shapes, its scratch), so
 * backward hands them exactly the context forward had.
 */
#include "internal.h"

typedef struct {
    pn_node node;
    pn_node in_node[PN_MAX_INPUTS];
    pn_var var[PN_MAX_VARS];
    float *scratch;
    int training;
    uint64_t seed;
    int whole;           /* inputs without a batch axis (pn_eager_math_op): a batch of 1 */
} op_saved;

static void op_destroy(pn_fn *f) {
    op_saved *s = f->saved;
    if (s) free(s->scratch);
    free(s);
}

/* The context of a plan, for values: inputs first in f->in, then variables. */
static void op_ctx(const op_saved *s, pn_value *const *vals, pn_value *out, pn_ctx *c) {
    const pn_node *nd = &s->node;
    memset(c, 0, sizeof *c);
    c->batch = c->full_batch = s->whole ? 1 : out->dims[0];
    for (int j = 0; j < nd->n_in; j++) {
        c->in_node[j] = &s->in_node[j];
        c->in[j] = vals[j]->data;
    }
    for (int k = 0; k < nd->n_var; k++) {
        c->var_info[k] = &s->var[k];
        c->var[k] = vals[nd->n_in + k]->data;
    }
    c->out = out->data;
    c->scratch = s->scratch;
    c->training = s->training;
    c->eager = 1;
    c->seed = s->seed;
}

static int op_backward(pn_fn *f, pn_value *out) {
    const op_saved *s = f->saved;
    const pn_node *nd = &s->node;
    pn_ctx c;
    op_ctx(s, f->in, out, &c);
    c.dout = out->grad;
    for (int j = 0; j < nd->n_in; j++)
        if (f->in[j]->requires_grad) {
            if (!(c.din[j] = pn_value_grad_buf(f->in[j]))) return PN_ENOMEM;
            c.acc_in[j] = 1;
        }
    for (int k = 0; k < nd->n_var; k++) {
        pn_value *v = f->in[nd->n_in + k];
        if (v->requires_grad) {
            if (!(c.dvar[k] = pn_value_grad_buf(v))) return PN_ENOMEM;
            c.acc_var[k] = 1;
        }
    }
    pn_gemm_bf16 = nd->bf16;
    pn_op_table[nd->op]->backward(nd, &c);
    pn_gemm_bf16 = 0;
    return PN_OK;
}

int pn_eager_op(int op, int n_in, pn_value *const *in, int n_var, pn_value *const *vars,
                const int *iattr, const float *fattr, int training, uint64_t seed,
                pn_value **out) {
    return pn_eager_op_mixed(op, n_in, in, n_var, vars, iattr, fattr, training, seed, 0, out);
}

int pn_eager_op_mixed(int op, int n_in, pn_value *const *in, int n_var, pn_value *const *vars,
                      const int *iattr, const float *fattr, int training, uint64_t seed,
                      int bf16, pn_value **out) {
    if (op <= PN_OP_INPUT || op >= PN_OP_COUNT) return pn_error(PN_EVALUE, "unknown op %d", op);
    const char *name = pn_op_name(op);
    if (op >= PN_OP_WHERE && op <= PN_OP_PAD && n_var == 0) /* whole tensors, no batch axis */
        return pn_eager_math_op(op, n_in, in, iattr, fattr, out);
    if (op >= PN_OP_VARIABLE) /* math ops run eagerly through pn_eager_binary and the rest */
        return pn_error(PN_EVALUE, "%s: a graph-only op (its eager form is the math call)", name);
    if (n_in < 1 || n_in > PN_MAX_INPUTS || n_var < 0 || n_var > PN_MAX_VARS)
        return pn_error(PN_EVALUE, "%s: bad number of inputs or variables", name);
    op_saved *s = pn_calloc(1, sizeof *s);
    if (!s) return pn_error(PN_ENOMEM, "out of memory running %s", name);
    int64_t batch = in[0]->ndim > 0 ? in[0]->dims[0] : 0;
    int rc = PN_OK;
    for (int j = 0; j < n_in && rc == PN_OK; j++) {
        const pn_value *x = in[j];
        if (x->ndim < 1 || x->dims[0] != batch) {
            rc = pn_error(PN_ESHAPE, "%s: every input needs the same batch axis first (input %d "
                          "has rank %d)", name, j, x->ndim);
            break;
        }
        s->in_node[j] = (pn_node){.op = PN_OP_INPUT, .dtype = x->dtype, .ndim = x->ndim - 1,
                                  .size = batch > 0 ? x->size / batch : 0};
        memcpy(s->in_node[j].shape, x->dims + 1, (size_t)(x->ndim - 1) * sizeof(int64_t));
        s->node.in[j] = j;
    }
    for (int k = 0; k < n_var && rc == PN_OK; k++) {
        const pn_value *v = vars[k];
        if (v->dtype != PN_F32) rc = pn_error(PN_ETYPE, "%s: variables must be float32", name);
        s->var[k] = (pn_var){.ndim = v->ndim, .size = v->size};
        memcpy(s->var[k].shape, v->dims, (size_t)v->ndim * sizeof(int64_t));
        s->node.var[k] = k;
    }
    if (rc == PN_OK && batch < 1)
        rc = pn_error(PN_ESHAPE, "%s: the batch is empty", name);
    /* the op's shape function sees a model made of just these inputs and variables */
    pn_graph g = {.nodes = s->in_node, .n_nodes = n_in, .n_inputs = n_in};
    for (int j = 0; j < n_in; j++) g.inputs[j] = j;
    pn_model tmp;
    memset(&tmp, 0, sizeof tmp);
    tmp.g = &g;
    tmp.vars = s->var;
    tmp.n_vars = n_var;
    pn_node *nd = &s->node;
    nd->op = op;
    nd->n_in = n_in;
    nd->n_var = n_var;
    nd->bf16 = bf16 != 0;
    for (int a = 0; a < PN_MAX_ATTRS; a++) {
        nd->iattr[a] = iattr ? iattr[a] : 0;
        nd->fattr[a] = fattr ? fattr[a] : 0.0f;
    }
    if (rc == PN_OK) rc = pn_op_table[op]->shape(&tmp, nd);
    if (rc == PN_OK) {
        nd->size = 1;
        for (int i = 0; i < nd->ndim; i++) nd->size *= nd->shape[i];
        if (nd->size > INT32_MAX / batch)
            rc = pn_error(PN_EVALUE, "%s: the output would hold too many values", name);
    }
    if (rc == PN_OK) rc = pn_node_check_batch(&tmp, nd, batch);
    if (rc == PN_OK && op == PN_OP_EMBEDDING) /* indices are checked before any kernel runs */
        rc = pn_embedding_check_rows(in[0]->data, in[0]->size, s->var[0].shape[0]);
    const pn_op_def *def = pn_op_table[op];
    if (rc == PN_OK && def->scratch) { /* a backward's too when the tape will record one (an
                                        * op run with training 0 may still be differentiated) */
        const int bwd = pn_fn_wanted(n_in, in) || pn_fn_wanted(n_var, vars);
        int64_t sc = def->scratch(&tmp, nd, batch, training || bwd);
        if (sc > 0 && !(s->scratch = pn_malloc((size_t)sc * sizeof(float))))
            rc = pn_error(PN_ENOMEM, "out of memory for %s's scratch", name);
    }
    pn_value *o = NULL;
    if (rc == PN_OK) {
        int64_t dims[PN_MAX_DIMS] = {batch};
        memcpy(dims + 1, nd->shape, (size_t)nd->ndim * sizeof(int64_t));
        rc = pn_value_new(&o, nd->ndim + 1, dims, PN_F32);
    }
    if (rc) {
        op_destroy(&(pn_fn){.saved = s});
        return rc;
    }
    s->training = training != 0;
    s->seed = seed;
    pn_value *all[PN_FN_MAX_IN];
    memcpy(all, in, (size_t)n_in * sizeof *all);
    if (n_var > 0) memcpy(all + n_in, vars, (size_t)n_var * sizeof *all);
    /* the entry before the forward: batch norm's forward updates its moving statistics, which
     * running out of memory afterwards must not leave changed */
    pn_fn *f = NULL;
    if (pn_fn_wanted(n_in + n_var, all) && !(f = pn_fn_new(name, op_backward, n_in + n_var, all))) {
        op_destroy(&(pn_fn){.saved = s});
        pn_value_release(o);
        return PN_ENOMEM;
    }
    pn_ctx c;
    op_ctx(s, all, o, &c);
    pn_gemm_bf16 = nd->bf16;
    pn_fault_take();
    def->forward(nd, &c);
    pn_gemm_bf16 = 0;
    if ((rc = pn_fault_take())) { /* bad data the op found (ctc_loss's labels) */
        pn_fn_free(f);
        op_destroy(&(pn_fn){.saved = s});
        pn_value_release(o);
        return rc;
    }
    if (f) {
        f->saved = s;
        f->destroy = op_destroy;
        pn_fn_attach(f, o);
    } else {
        op_destroy(&(pn_fn){.saved = s});
    }
    *out = o;
    return PN_OK;
}

/* ---- whole-tensor ops on values ---------------------------------------------------------------
 * The inputs are unbatched nodes (their shapes whole), so the op runs once with a batch of 1:
 * its shape function checks them, its forward computes, and a fault (bad indices) fails the call
 * with no result and no entry. */
int pn_eager_math_op(int op, int n_in, pn_value *const *in, const int *iattr, const float *fattr,
                     pn_value **out) {
    if (op < PN_OP_WHERE || op > PN_OP_PAD)
        return pn_error(PN_EVALUE, "op %d does not run on whole tensors", op);
    const char *name = pn_op_name(op);
    if (n_in < 1 || n_in > PN_MAX_INPUTS)
        return pn_error(PN_EVALUE, "%s: bad number of inputs", name);
    for (int j = 0; j < n_in; j++)
        if (!in[j]) return pn_error(PN_EVALUE, "%s: input %d is missing (NULL)", name, j);
    op_saved *s = pn_calloc(1, sizeof *s);
    if (!s) return pn_error(PN_ENOMEM, "out of memory running %s", name);
    s->whole = 1;
    s->training = 1;
    for (int j = 0; j < n_in; j++) {
        const pn_value *x = in[j];
        s->in_node[j] = (pn_node){.op = PN_OP_INPUT, .dtype = x->dtype, .ndim = x->ndim,
                                  .size = x->size, .unbatched = 1};
        memcpy(s->in_node[j].shape, x->dims, (size_t)x->ndim * sizeof(int64_t));
        s->node.in[j] = j;
    }
    pn_graph g = {.nodes = s->in_node, .n_nodes = n_in, .n_inputs = n_in};
    pn_model tmp;
    memset(&tmp, 0, sizeof tmp);
    tmp.g = &g;
    pn_node *nd = &s->node;
    nd->op = op;
    nd->n_in = n_in;
    nd->unbatched = 1;
    for (int a = 0; a < PN_MAX_ATTRS; a++) {
        nd->iattr[a] = iattr ? iattr[a] : 0;
        nd->fattr[a] = fattr ? fattr[a] : 0.0f;
    }
    const pn_op_def *def = pn_op_table[op];
    int rc = def->shape(&tmp, nd);
    if (rc == PN_OK) { /* every size in int32 range, as a model's nodes */
        nd->size = 1;
        for (int i = 0; i < nd->ndim && rc == PN_OK; i++) {
            if (nd->shape[i] < 0 || (nd->shape[i] > 0 && nd->size > INT32_MAX / nd->shape[i]))
                rc = pn_error(PN_EVALUE, "%s: the output would hold too many values", name);
            else
                nd->size *= nd->shape[i];
        }
    }
    if (rc == PN_OK && def->scratch) {
        int64_t sc = def->scratch(&tmp, nd, 1, 1);
        if (sc > 0 && !(s->scratch = pn_malloc((size_t)sc * sizeof(float))))
            rc = pn_error(PN_ENOMEM, "out of memory for %s's scratch", name);
    }
    pn_value *o = NULL;
    if (rc == PN_OK) rc = pn_value_new(&o, nd->ndim, nd->shape, nd->dtype);
    pn_fn *f = NULL;
    /* an int32 result (indices) has no gradient: nothing to record */
    if (rc == PN_OK && nd->dtype == PN_F32 && pn_fn_wanted(n_in, in) &&
        !(f = pn_fn_new(name, op_backward, n_in, in)))
        rc = PN_ENOMEM;
    if (rc == PN_OK) {
        pn_ctx c;
        op_ctx(s, in, o, &c);
        pn_fault_take();
        def->forward(nd, &c);
        rc = pn_fault_take();
    }
    if (rc) {
        pn_fn_free(f);
        pn_value_release(o);
        op_destroy(&(pn_fn){.saved = s});
        return rc;
    }
    if (f) {
        f->saved = s;
        f->destroy = op_destroy;
        pn_fn_attach(f, o);
    } else {
        op_destroy(&(pn_fn){.saved = s});
    }
    *out = o;
    return PN_OK;
}

/* ---- losses on values ------------------------------------------------------------------------
 * The model's loss code over the values' rows: p is (..., C), y holds as many targets, or one
 * int32 label per row for the sparse loss. The result is the mean over rows, a scalar; the
 * gradient goes to p only (targets are data).
 */

static pn_loss_rows loss_rows(const pn_fn *f) {
    const pn_value *y = f->in[0], *p = f->in[1];
    int64_t C = p->ndim ? p->dims[p->ndim - 1] : 1;
    return (pn_loss_rows){.kind = (pn_loss_kind)f->iattr[0], .from_logits = f->iattr[1],
                          .R = p->size / C, .C = C, .out = p->data, .z = p->data, .y = y->data};
}

static int loss_backward(pn_fn *f, pn_value *out) {
    pn_value *p = f->in[1];
    if (!p->requires_grad) return PN_OK;
    float *g = pn_value_grad_buf(p);
    if (!g) return PN_ENOMEM;
    pn_loss_rows L = loss_rows(f);
    pn_loss_grad(&L, g, out->grad[0], 1);
    return PN_OK;
}

int pn_eager_loss(pn_loss_kind loss, int from_logits, pn_value *y, pn_value *p, pn_value **out) {
    static const char *names[PN_LOSS_COUNT] = {"mean_squared_error", "mean_absolute_error",
                                               "binary_crossentropy", "categorical_crossentropy",
                                               "sparse_categorical_crossentropy"};
    if ((int)loss < 0 || loss >= PN_LOSS_COUNT || !names[loss])
        return pn_error(PN_EVALUE, "unknown loss %d", loss);
    const char *name = names[loss];
    int sparse = loss == PN_LOSS_SPARSE_CE;
    if (p->dtype != PN_F32) return pn_error(PN_ETYPE, "%s: predictions must be float32", name);
    if (y->dtype != (sparse ? PN_I32 : PN_F32))
        return pn_error(PN_ETYPE, "%s: targets must be %s", name,
                        sparse ? "int32 class indices" : "float32");
    int64_t C = p->ndim ? p->dims[p->ndim - 1] : 1;
    if (p->size == 0 || C == 0) return pn_error(PN_EVALUE, "%s: the predictions are empty", name);
    int64_t R = p->size / C;
    if (y->size != (sparse ? R : p->size))
        return pn_error(PN_ESHAPE, "%s: %lld predictions in rows of %lld need %lld targets, got "
                        "%lld", name, (long long)p->size, (long long)C,
                        (long long)(sparse ? R : p->size), (long long)y->size);
    if (sparse) {
        int rc = pn_loss_check_labels(y->data, R, C);
        if (rc) return rc;
    }
    pn_value *o;
    int rc = pn_value_new(&o, 0, NULL, PN_F32);
    if (rc) return rc;
    pn_fn probe = {.iattr = {loss, from_logits != 0}, .in = {y, p}};
    pn_loss_rows L = loss_rows(&probe);
    *(float *)o->data = (float)pn_loss_value(&L);
    if (pn_fn_wanted(1, &p)) {
        pn_value *in[2] = {y, p};
        pn_fn *f = pn_fn_new(name, loss_backward, 2, in);
        if (!f) {
            pn_value_release(o);
            return PN_ENOMEM;
        }
        f->iattr[0] = loss;
        f->iattr[1] = from_logits != 0;
        pn_fn_attach(f, o);
    }
    *out = o;
    return PN_OK;
}
