/*
 * tape.c: eager values, tape entries and backward.
 *
 * A value made by an eager call owns the entry (pn_fn) that made it, and the entry holds
 * references to its inputs, so the tape is the graph of values itself: releasing the last value
 * of a computation frees its entries and every value only they kept alive. Both release and
 * backward walk that graph with explicit work lists, never recursion, so a loop of a million
 * small ops cannot overflow the C stack.
 *
 * backward(root):
 *   1. collect every value that requires a gradient and is reachable from root through entries,
 *      counting for each the edges that will bring it a gradient (its consumers' inputs);
 *   2. run the entries from root in an order where each value's consumers have all run first
 *      (Kahn's algorithm on those counts), each adding its inputs' gradients;
 *   3. free the gradients of intermediate values as soon as their entry has run; leaves keep
 *      theirs, accumulated.
 */
#include <math.h>

#include "internal.h"

/* ---- values -------------------------------------------------------------------------------- */

static int fill_shape(pn_value *v, int ndim, const int64_t *dims) {
    if (ndim < 0 || ndim > PN_MAX_DIMS)
        return pn_error(PN_ESHAPE, "a tensor's rank must be 0..%d, got %d", PN_MAX_DIMS, ndim);
    int64_t size = 1;
    for (int i = 0; i < ndim; i++) {
        if (dims[i] < 0)
            return pn_error(PN_ESHAPE, "dimension %d of a tensor is %lld", i, (long long)dims[i]);
        if (dims[i] > 0 && size > INT64_MAX / 8 / dims[i])
            return pn_error(PN_ESHAPE, "a tensor's shape is too large");
        size *= dims[i];
        v->dims[i] = dims[i];
    }
    v->ndim = ndim;
    v->size = size;
    return PN_OK;
}

int pn_value_new(pn_value **out, int ndim, const int64_t *dims, pn_dtype dtype) {
    pn_value *v = pn_calloc(1, sizeof *v);
    if (!v) return pn_error(PN_ENOMEM, "out of memory creating a tensor");
    int rc = fill_shape(v, ndim, dims);
    if (rc) {
        free(v);
        return rc;
    }
    size_t bytes = (size_t)(v->size > 0 ? v->size : 1) * 4;
    v->data = pn_malloc(bytes);
    if (!v->data) {
        long long n = (long long)v->size;
        free(v);
        return pn_error(PN_ENOMEM, "out of memory for a tensor of %lld values", n);
    }
    v->refs = 1;
    v->dtype = dtype;
    v->own_data = 1;
    *out = v;
    return PN_OK;
}

int pn_value_create(pn_value **out, int ndim, const int64_t *dims, pn_dtype dtype,
                    const void *data) {
    if (dtype != PN_F32 && dtype != PN_I32) return pn_error(PN_ETYPE, "unknown dtype %d", dtype);
    pn_value *v = NULL;
    int rc = pn_value_new(&v, ndim, dims, dtype);
    if (rc) return rc;
    if (data)
        memcpy(v->data, data, (size_t)v->size * 4);
    else
        memset(v->data, 0, (size_t)v->size * 4);
    *out = v;
    return PN_OK;
}

int pn_value_borrow(pn_value **out, int ndim, const int64_t *dims, pn_dtype dtype, void *data,
                    float *grad, void (*release)(void *), void *ctx) {
    if (dtype != PN_F32 && dtype != PN_I32) return pn_error(PN_ETYPE, "unknown dtype %d", dtype);
    pn_value *v = pn_calloc(1, sizeof *v);
    if (!v) return pn_error(PN_ENOMEM, "out of memory creating a tensor");
    int rc = fill_shape(v, ndim, dims);
    if (rc) {
        free(v);
        return rc;
    }
    v->refs = 1;
    v->dtype = dtype;
    v->data = data;
    v->grad = grad;
    v->release = release;
    v->release_ctx = ctx;
    *out = v;
    return PN_OK;
}

void pn_value_retain(pn_value *v) { v->refs++; }

void pn_value_release(pn_value *v) {
    if (!v || --v->refs > 0) return;
    v->next = NULL;
    for (pn_value *list = v; list;) {
        pn_value *x = list;
        list = x->next;
        pn_fn *f = x->fn;
        if (f) {
            for (int i = 0; i < f->n_in; i++) {
                pn_value *in = f->in[i];
                if (--in->refs == 0) {
                    in->next = list;
                    list = in;
                }
            }
            f->n_in = 0;
            pn_fn_free(f);
        }
        if (x->own_data) free(x->data);
        if (x->own_grad) free(x->grad);
        if (x->release) x->release(x->release_ctx);
        free(x);
    }
}

int pn_value_ndim(const pn_value *v) { return v->ndim; }
const int64_t *pn_value_dims(const pn_value *v) { return v->dims; }
int64_t pn_value_size(const pn_value *v) { return v->size; }
pn_dtype pn_value_dtype(const pn_value *v) { return v->dtype; }
void *pn_value_data(pn_value *v) { return v->data; }
float *pn_value_grad(pn_value *v) { return v->grad; }
int pn_value_requires_grad(const pn_value *v) { return v->requires_grad; }
const char *pn_value_fn_name(const pn_value *v) { return v->fn ? v->fn->name : NULL; }

int pn_value_set_requires_grad(pn_value *v, int on) {
    if (v->fn) return pn_error(PN_EVALUE, "requires_grad can only be set on a leaf tensor (one "
                               "that no operation made); this one was made by '%s'", v->fn->name);
    if (on && v->dtype != PN_F32)
        return pn_error(PN_ETYPE, "only float32 tensors can require a gradient");
    v->requires_grad = on != 0;
    return PN_OK;
}

float *pn_value_grad_buf(pn_value *v) {
    if (v->model && !v->model->eager_grads) pn_model_zero_grads(v->model);
    if (!v->grad) {
        v->grad = pn_calloc((size_t)(v->size > 0 ? v->size : 1), sizeof(float));
        if (!v->grad) {
            pn_error(PN_ENOMEM, "out of memory for a gradient of %lld values", (long long)v->size);
            return NULL;
        }
        v->own_grad = 1;
    }
    return v->grad;
}

void pn_value_zero_grad(pn_value *v) {
    if (v->grad) memset(v->grad, 0, (size_t)v->size * sizeof(float));
}

/* ---- entries ------------------------------------------------------------------------------- */

static _Thread_local int grad_off;

void pn_set_grad_enabled(int on) { grad_off = !on; }
int pn_grad_enabled(void) { return !grad_off; }

int pn_fn_wanted(int n_in, pn_value *const *in) {
    if (grad_off) return 0;
    for (int i = 0; i < n_in; i++)
        if (in[i] && in[i]->requires_grad) return 1;
    return 0;
}

pn_fn *pn_fn_new(const char *name, int (*backward)(pn_fn *, pn_value *), int n_in,
                 pn_value *const *in) {
    pn_fn *f = pn_calloc(1, sizeof *f);
    if (!f) {
        pn_error(PN_ENOMEM, "out of memory recording '%s'", name);
        return NULL;
    }
    f->name = name;
    f->backward = backward;
    f->n_in = n_in;
    for (int i = 0; i < n_in; i++) {
        f->in[i] = in[i];
        in[i]->refs++;
    }
    return f;
}

void pn_fn_attach(pn_fn *f, pn_value *out) {
    out->fn = f;
    out->requires_grad = 1;
}

void pn_fn_free(pn_fn *f) {
    if (!f) return;
    for (int i = 0; i < f->n_in; i++) pn_value_release(f->in[i]);
    if (f->destroy) f->destroy(f);
    free(f);
}

/* ---- backward ------------------------------------------------------------------------------ */

typedef struct {
    pn_value **v;
    size_t n, cap;
} vec;

static int push(vec *s, pn_value *v) {
    if (s->n == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 64;
        pn_value **p = pn_realloc(s->v, cap * sizeof *p);
        if (!p) return pn_error(PN_ENOMEM, "out of memory walking the tape");
        s->v = p;
        s->cap = cap;
    }
    s->v[s->n++] = v;
    return PN_OK;
}

static unsigned epoch; /* marks values visited by the current backward (the GIL serialises) */

int pn_value_backward(pn_value *root, const float *seed) {
    if (!root->requires_grad)
        return pn_error(PN_ESTATE, "this tensor does not require a gradient: no operation that "
                        "made it was recorded (its inputs need no gradient, or grad mode was "
                        "off)");
    if (!seed && root->size != 1)
        return pn_error(PN_EVALUE, "backward() without a gradient needs a tensor of one value "
                        "(a loss); this one holds %lld: pass its gradient", (long long)root->size);
    /* 1. every value that will receive a gradient, with its count of incoming edges */
    vec all = {0}, stack = {0};
    unsigned mark = ++epoch ? epoch : ++epoch;
    int rc = push(&stack, root);
    root->mark = (int)mark;
    root->pending = 0;
    while (rc == PN_OK && stack.n > 0) {
        pn_value *v = stack.v[--stack.n];
        rc = push(&all, v);
        if (!v->fn) continue;
        for (int i = 0; rc == PN_OK && i < v->fn->n_in; i++) {
            pn_value *in = v->fn->in[i];
            if (!in->requires_grad) continue;
            if (in->mark != (int)mark) {
                in->mark = (int)mark;
                in->pending = 0;
                rc = push(&stack, in);
            }
            in->pending++;
        }
    }
    /* 2. the root's gradient, then the entries in dependency order */
    float *g = rc == PN_OK ? pn_value_grad_buf(root) : NULL;
    if (rc == PN_OK && !g) rc = PN_ENOMEM;
    if (rc == PN_OK) {
        for (int64_t i = 0; i < root->size; i++) g[i] += seed ? seed[i] : 1.0f;
        stack.n = 0;
        rc = push(&stack, root);
    }
    while (rc == PN_OK && stack.n > 0) {
        pn_value *v = stack.v[--stack.n];
        if (!v->fn) continue;
        if (v->grad) rc = v->fn->backward(v->fn, v);
        for (int i = 0; rc == PN_OK && i < v->fn->n_in; i++) {
            pn_value *in = v->fn->in[i];
            if (in->requires_grad && --in->pending == 0) rc = push(&stack, in);
        }
        if (v->own_grad) { /* an intermediate gradient is done with */
            free(v->grad);
            v->grad = NULL;
            v->own_grad = 0;
        }
    }
    /* 3. on an error, no intermediate gradient is left behind half-summed */
    for (size_t k = 0; k < all.n; k++) {
        pn_value *v = all.v[k];
        if (v->fn && v->own_grad) {
            free(v->grad);
            v->grad = NULL;
            v->own_grad = 0;
        }
    }
    free(all.v);
    free(stack.v);
    return rc;
}
