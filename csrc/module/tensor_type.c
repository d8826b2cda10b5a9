/*
 * tensor_type.c: pynn._core.Tensor, a Python handle on a pn_value, and the module functions of
 * the imperative path (eager ops, losses, grad mode). The Python class pynn.Tensor derives from
 * it and adds the operators; every result is made as that class (set_tensor_class).
 *
 * NumPy arrays come in without a copy where they can: a value borrows the array's buffer and
 * holds a reference to the array until the value is freed. Values go out as read-only views
 * (np.asarray(t)): the tape may still need the numbers, so they must not change under it.
 */
#include "module.h"

typedef struct {
    PyObject_HEAD
    pn_value *v;
} PnTensor;

static PyTypeObject *result_type = &PnTensorType;

PyObject *pn_tensor_wrap(pn_value *v) {
    PnTensor *t = (PnTensor *)result_type->tp_alloc(result_type, 0);
    if (!t) {
        pn_value_release(v);
        return NULL;
    }
    t->v = v;
    return (PyObject *)t;
}

static void decref_array(void *ctx) { Py_DECREF((PyObject *)ctx); }

/* The array's values as a pn_value (a new reference) over its own buffer. */
static pn_value *borrow_array(PyArrayObject *a) {
    int nd = PyArray_NDIM(a);
    if (nd > PN_MAX_DIMS) {
        PyErr_Format(PyExc_ValueError, "arrays of rank %d are not supported (at most %d)", nd,
                     PN_MAX_DIMS);
        return NULL;
    }
    int64_t dims[PN_MAX_DIMS];
    for (int i = 0; i < nd; i++) dims[i] = PyArray_DIM(a, i);
    pn_value *v;
    int rc = pn_value_borrow(&v, nd, dims, PyArray_TYPE(a) == NPY_INT32 ? PN_I32 : PN_F32,
                             PyArray_DATA(a), NULL, decref_array, a);
    if (rc) {
        pn_raise(rc);
        return NULL;
    }
    Py_INCREF(a);
    return v;
}

pn_value *pn_tensor_value(PyObject *obj, int npy_type, const char *what) {
    if (PyObject_TypeCheck(obj, &PnTensorType)) {
        pn_value *v = ((PnTensor *)obj)->v;
        int have = pn_value_dtype(v) == PN_I32 ? NPY_INT32 : NPY_FLOAT32;
        if (npy_type < 0 || npy_type == have) {
            pn_value_retain(v);
            return v;
        }
        /* another element type: a converted copy, which takes no gradient */
        npy_intp dims[PN_MAX_DIMS];
        for (int i = 0; i < pn_value_ndim(v); i++) dims[i] = (npy_intp)pn_value_dims(v)[i];
        PyObject *view = PyArray_SimpleNewFromData(pn_value_ndim(v), dims, have,
                                                   pn_value_data(v));
        if (!view) return NULL;
        PyArrayObject *conv = (PyArrayObject *)PyArray_FROM_OTF(view, npy_type,
                                                                NPY_ARRAY_IN_ARRAY |
                                                                NPY_ARRAY_FORCECAST |
                                                                NPY_ARRAY_ENSURECOPY);
        Py_DECREF(view);
        if (!conv) return NULL;
        pn_value *c = borrow_array(conv);
        Py_DECREF(conv);
        return c;
    }
    if (npy_type < 0) { /* integers stay integers (indices, labels), the rest is float32 */
        PyArrayObject *probe = (PyArrayObject *)PyArray_FROM_O(obj);
        if (!probe) return NULL;
        int t = PyArray_TYPE(probe);
        npy_type = PyTypeNum_ISINTEGER(t) || PyTypeNum_ISBOOL(t) ? NPY_INT32 : NPY_FLOAT32;
        if (PyTypeNum_ISINTEGER(t) && PyArray_SIZE(probe) > 0) { /* int32 must hold it */
            PyObject *lo = PyArray_Min(probe, NPY_RAVEL_AXIS, NULL);
            PyObject *hi = lo ? PyArray_Max(probe, NPY_RAVEL_AXIS, NULL) : NULL;
            long long l = lo ? PyLong_AsLongLong(lo) : 0, h = hi ? PyLong_AsLongLong(hi) : 0;
            Py_XDECREF(lo);
            Py_XDECREF(hi);
            if (PyErr_Occurred() || l < INT32_MIN || h > INT32_MAX) {
                Py_DECREF(probe);
                PyErr_Clear();
                PyErr_Format(PyExc_ValueError, "%s: integer values do not fit in int32", what);
                return NULL;
            }
        }
        obj = (PyObject *)probe;
        PyArrayObject *a = pn_borrow(obj, npy_type, what);
        Py_DECREF(probe);
        if (!a) return NULL;
        pn_value *v = borrow_array(a);
        Py_DECREF(a);
        return v;
    }
    PyArrayObject *a = pn_borrow(obj, npy_type, what);
    if (!a) return NULL;
    pn_value *v = borrow_array(a);
    Py_DECREF(a);
    return v;
}

/* ---- the type ------------------------------------------------------------------------------ */

static void tensor_dealloc(PnTensor *self) {
    pn_value_release(self->v);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* Tensor(value, requires_grad=False): a leaf holding a copy of value. */
static PyObject *tensor_new(PyTypeObject *type, PyObject *args, PyObject *kw) {
    static char *kwlist[] = {"value", "requires_grad", NULL};
    PyObject *obj;
    int requires_grad = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O|p", kwlist, &obj, &requires_grad)) return NULL;
    pn_value *src = pn_tensor_value(obj, requires_grad ? NPY_FLOAT32 : -1, "Tensor");
    if (!src) return NULL;
    pn_value *v;
    int rc = pn_value_create(&v, pn_value_ndim(src), pn_value_dims(src), pn_value_dtype(src),
                             pn_value_data(src));
    pn_value_release(src);
    if (rc) return pn_raise(rc);
    if (requires_grad && (rc = pn_value_set_requires_grad(v, 1))) {
        pn_value_release(v);
        return pn_raise(rc);
    }
    PnTensor *t = (PnTensor *)type->tp_alloc(type, 0);
    if (!t) {
        pn_value_release(v);
        return NULL;
    }
    t->v = v;
    return (PyObject *)t;
}

static PyObject *dims_tuple(const pn_value *v) {
    PyObject *t = PyTuple_New(pn_value_ndim(v));
    for (int i = 0; t && i < pn_value_ndim(v); i++) {
        PyObject *d = PyLong_FromLongLong(pn_value_dims(v)[i]);
        if (!d) {
            Py_CLEAR(t);
            break;
        }
        PyTuple_SET_ITEM(t, i, d);
    }
    return t;
}

/* A read-only NumPy view of `data` (the value's numbers or gradient), kept alive by self. */
static PyObject *view(PnTensor *self, void *data, int npy_type) {
    npy_intp dims[PN_MAX_DIMS];
    for (int i = 0; i < pn_value_ndim(self->v); i++) dims[i] = (npy_intp)pn_value_dims(self->v)[i];
    PyObject *a = PyArray_New(&PyArray_Type, pn_value_ndim(self->v), dims, npy_type, NULL, data, 0,
                              NPY_ARRAY_C_CONTIGUOUS | NPY_ARRAY_ALIGNED, NULL);
    if (!a) return NULL;
    Py_INCREF(self);
    if (PyArray_SetBaseObject((PyArrayObject *)a, (PyObject *)self) < 0) {
        Py_DECREF(a);
        return NULL;
    }
    return a;
}

static int npy_type_of(const pn_value *v) {
    return pn_value_dtype(v) == PN_I32 ? NPY_INT32 : NPY_FLOAT32;
}

static PyObject *tensor_array(PnTensor *self, PyObject *args, PyObject *kw) {
    static char *kwlist[] = {"dtype", "copy", NULL};
    PyObject *dtype = Py_None, *copy = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "|OO", kwlist, &dtype, &copy)) return NULL;
    PyObject *a = view(self, pn_value_data(self->v), npy_type_of(self->v));
    if (!a || (dtype == Py_None && !PyObject_IsTrue(copy))) return a;
    PyArray_Descr *d = NULL;
    if (dtype != Py_None && !PyArray_DescrConverter(dtype, &d)) {
        Py_DECREF(a);
        return NULL;
    }
    PyObject *c = PyArray_FromAny(a, d, 0, 0, NPY_ARRAY_ENSURECOPY | NPY_ARRAY_DEFAULT, NULL);
    Py_DECREF(a);
    return c;
}

static PyObject *tensor_numpy(PnTensor *self, PyObject *unused) {
    (void)unused;
    PyObject *a = view(self, pn_value_data(self->v), npy_type_of(self->v));
    if (!a) return NULL;
    PyObject *c = PyArray_NewCopy((PyArrayObject *)a, NPY_CORDER);
    Py_DECREF(a);
    return c;
}

static PyObject *tensor_backward(PnTensor *self, PyObject *args, PyObject *kw) {
    static char *kwlist[] = {"gradient", NULL};
    PyObject *g = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "|O", kwlist, &g)) return NULL;
    pn_value *seed = NULL;
    if (g != Py_None) {
        if (!(seed = pn_tensor_value(g, NPY_FLOAT32, "backward: gradient"))) return NULL;
        int same = pn_value_ndim(seed) == pn_value_ndim(self->v);
        for (int i = 0; same && i < pn_value_ndim(seed); i++)
            same = pn_value_dims(seed)[i] == pn_value_dims(self->v)[i];
        if (!same) {
            pn_value_release(seed);
            PyErr_SetString(PyExc_ValueError, "backward: the gradient must have the tensor's "
                            "shape");
            return NULL;
        }
    }
    int rc = pn_value_backward(self->v, seed ? pn_value_data(seed) : NULL);
    pn_value_release(seed);
    if (rc) return pn_raise(rc);
    Py_RETURN_NONE;
}

static PyObject *tensor_zero_grad(PnTensor *self, PyObject *unused) {
    (void)unused;
    pn_value_zero_grad(self->v);
    Py_RETURN_NONE;
}

static PyObject *get_shape(PnTensor *self, void *c) {
    (void)c;
    return dims_tuple(self->v);
}
static PyObject *get_ndim(PnTensor *self, void *c) {
    (void)c;
    return PyLong_FromLong(pn_value_ndim(self->v));
}
static PyObject *get_size(PnTensor *self, void *c) {
    (void)c;
    return PyLong_FromLongLong(pn_value_size(self->v));
}
static PyObject *get_dtype(PnTensor *self, void *c) {
    (void)c;
    return (PyObject *)PyArray_DescrFromType(npy_type_of(self->v));
}
static PyObject *get_requires_grad(PnTensor *self, void *c) {
    (void)c;
    return PyBool_FromLong(pn_value_requires_grad(self->v));
}
static int set_requires_grad(PnTensor *self, PyObject *value, void *c) {
    (void)c;
    int on = value ? PyObject_IsTrue(value) : 0;
    if (on < 0) return -1;
    int rc = pn_value_set_requires_grad(self->v, on);
    if (rc) {
        pn_raise(rc);
        return -1;
    }
    return 0;
}
/* The gradient a backward left in a leaf, as a read-only view (None before any). */
static PyObject *get_grad(PnTensor *self, void *c) {
    (void)c;
    float *g = pn_value_grad(self->v);
    if (!g) Py_RETURN_NONE;
    return view(self, g, NPY_FLOAT32);
}
static PyObject *get_op(PnTensor *self, void *c) {
    (void)c;
    const char *name = pn_value_fn_name(self->v);
    if (!name) Py_RETURN_NONE;
    return PyUnicode_FromString(name);
}

static PyMethodDef tensor_methods[] = {
    {"__array__", (PyCFunction)(void (*)(void))tensor_array, METH_VARARGS | METH_KEYWORDS,
     "__array__(dtype=None, copy=None): a read-only view of the values (a copy if asked)"},
    {"numpy", (PyCFunction)tensor_numpy, METH_NOARGS, "numpy() -> a copy of the values"},
    {"backward", (PyCFunction)(void (*)(void))tensor_backward, METH_VARARGS | METH_KEYWORDS,
     "backward(gradient=None): accumulate gradients into the leaves that require them"},
    {"_zero_grad", (PyCFunction)tensor_zero_grad, METH_NOARGS, "zeroes the gradient"},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef tensor_getset[] = {
    {"shape", (getter)get_shape, NULL, "the shape, a tuple", NULL},
    {"ndim", (getter)get_ndim, NULL, "the rank", NULL},
    {"size", (getter)get_size, NULL, "the number of values", NULL},
    {"dtype", (getter)get_dtype, NULL, "the NumPy dtype (float32 or int32)", NULL},
    {"requires_grad", (getter)get_requires_grad, (setter)set_requires_grad,
     "whether backward computes a gradient for this tensor", NULL},
    {"grad", (getter)get_grad, NULL, "the accumulated gradient (a read-only array) or None", NULL},
    {"_op", (getter)get_op, NULL, "the name of the operation that made it, None for a leaf", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

PyTypeObject PnTensorType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "pynn._core.Tensor",
    .tp_basicsize = sizeof(PnTensor),
    .tp_dealloc = (destructor)tensor_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
    .tp_doc = "A tensor that records the operations that made it, for backward.",
    .tp_methods = tensor_methods,
    .tp_getset = tensor_getset,
    .tp_new = tensor_new,
};

/* ---- module functions ---------------------------------------------------------------------- */

PyObject *pn_set_tensor_class(PyObject *self, PyObject *cls) {
    (void)self;
    if (!PyType_Check(cls) || !PyType_IsSubtype((PyTypeObject *)cls, &PnTensorType)) {
        PyErr_SetString(PyExc_TypeError, "set_tensor_class: expects a subclass of Tensor");
        return NULL;
    }
    Py_INCREF(cls);
    result_type = (PyTypeObject *)cls;
    Py_RETURN_NONE;
}

/* leaf(array, requires_grad) -> a Tensor over the array's memory (float32, C-contiguous: no
 * copy), such as a layer's own weights before a model holds them */
PyObject *pn_py_leaf(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    (void)self;
    if (nargs != 2) return PyErr_Format(PyExc_TypeError, "leaf(array, requires_grad)");
    int rg = PyObject_IsTrue(args[1]);
    if (rg < 0) return NULL;
    if (!PyArray_Check(args[0]) || PyArray_TYPE((PyArrayObject *)args[0]) != NPY_FLOAT32 ||
        !PyArray_IS_C_CONTIGUOUS((PyArrayObject *)args[0]))
        return PyErr_Format(PyExc_TypeError, "leaf: expects a C-contiguous float32 array");
    pn_value *v = borrow_array((PyArrayObject *)args[0]);
    if (!v) return NULL;
    int rc = pn_value_set_requires_grad(v, rg);
    if (rc) {
        pn_value_release(v);
        return pn_raise(rc);
    }
    return pn_tensor_wrap(v);
}

PyObject *pn_py_set_grad_enabled(PyObject *self, PyObject *arg) {
    (void)self;
    int on = PyObject_IsTrue(arg);
    if (on < 0) return NULL;
    int was = pn_grad_enabled();
    pn_set_grad_enabled(on);
    return PyBool_FromLong(was);
}

/* Releases the argument values of a call that failed before running; returns NULL. */
static PyObject *drop(pn_value **args, int n) {
    for (int i = 0; i < n; i++) pn_value_release(args[i]);
    return NULL;
}

/* Wraps an eager call's result, releasing the argument values. */
static PyObject *finish(int rc, pn_value *out, pn_value **args, int n) {
    for (int i = 0; i < n; i++) pn_value_release(args[i]);
    if (rc) return pn_raise(rc);
    return pn_tensor_wrap(out);
}

static int parse_axes(PyObject *o, int *axes, int *n) {
    *n = 0;
    if (o == Py_None) return 0;
    if (PyLong_Check(o)) {
        axes[0] = (int)PyLong_AsLong(o);
        *n = 1;
        return PyErr_Occurred() ? -1 : 0;
    }
    PyObject *fast = PySequence_Fast(o, "axis must be an int, a tuple of ints or None");
    if (!fast) return -1;
    Py_ssize_t k = PySequence_Fast_GET_SIZE(fast);
    if (k > PN_MAX_DIMS) {
        Py_DECREF(fast);
        PyErr_SetString(PyExc_ValueError, "too many axes");
        return -1;
    }
    for (Py_ssize_t i = 0; i < k; i++) axes[i] = (int)PyLong_AsLong(PySequence_Fast_GET_ITEM(fast, i));
    Py_DECREF(fast);
    *n = (int)k;
    if (k == 0) { /* axis=() reduces nothing: keep the shape, as NumPy does */
        PyErr_SetString(PyExc_ValueError, "axis=() is not supported; pass None for all axes");
        return -1;
    }
    return PyErr_Occurred() ? -1 : 0;
}

/* The code of a math op given by name ("add", "sin", "sum"); -1 with an exception set. */
static int math_code(PyObject *o, int (*find)(const char *), const char *what) {
    const char *name = PyUnicode_Check(o) ? PyUnicode_AsUTF8(o) : NULL;
    if (!name) {
        if (!PyErr_Occurred()) PyErr_Format(PyExc_TypeError, "a %s op is given by name", what);
        return -1;
    }
    int op = find(name);
    if (op < 0) PyErr_Format(PyExc_ValueError, "unknown %s op '%s'", what, name);
    return op;
}

/* op_code(kind, name) -> int: the code of a math op ("binary", "unary", "reduce") or of a
 * recurrent layer's gate activation ("rnn_activation"), for a graph node's attributes */
PyObject *pn_py_op_code(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    (void)self;
    if (nargs != 2 || !PyUnicode_Check(args[0]))
        return PyErr_Format(PyExc_TypeError, "op_code(kind, name)");
    const char *kind = PyUnicode_AsUTF8(args[0]);
    if (!kind) return NULL;
    int (*find)(const char *) = strcmp(kind, "binary") == 0  ? pn_binop_find
                                : strcmp(kind, "unary") == 0 ? pn_unop_find
                                : strcmp(kind, "reduce") == 0 ? pn_redop_find
                                : strcmp(kind, "rnn_activation") == 0 ? pn_rnn_activation_find
                                                                      : NULL;
    if (!find) return PyErr_Format(PyExc_ValueError, "unknown op kind '%s'", kind);
    int op = math_code(args[1], find, kind);
    return op < 0 ? NULL : PyLong_FromLong(op);
}

/* binary(op, a, b) */
PyObject *pn_py_binary(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    (void)self;
    if (nargs != 3) return PyErr_Format(PyExc_TypeError, "binary(op, a, b)");
    int op = math_code(args[0], pn_binop_find, "binary");
    if (op < 0) return NULL;
    pn_value *v[2] = {pn_tensor_value(args[1], NPY_FLOAT32, "operand"), NULL};
    if (!v[0]) return NULL;
    if (!(v[1] = pn_tensor_value(args[2], NPY_FLOAT32, "operand"))) return drop(v, 1);
    pn_value *out = NULL;
    int rc = pn_eager_binary((pn_binop)op, v[0], v[1], &out);
    return finish(rc, out, v, 2);
}

/* unary(op, a) */
PyObject *pn_py_unary(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    (void)self;
    if (nargs != 2) return PyErr_Format(PyExc_TypeError, "unary(op, a)");
    int op = math_code(args[0], pn_unop_find, "unary");
    if (op < 0) return NULL;
    pn_value *a = pn_tensor_value(args[1], NPY_FLOAT32, "operand");
    if (!a) return NULL;
    pn_value *out = NULL;
    int rc = pn_eager_unary((pn_unop)op, a, &out);
    return finish(rc, out, &a, 1);
}

/* reduce(op, a, axis, keepdims) */
PyObject *pn_py_reduce(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    (void)self;
    if (nargs != 4) return PyErr_Format(PyExc_TypeError, "reduce(op, a, axis, keepdims)");
    int op = math_code(args[0], pn_redop_find, "reduce");
    if (op < 0) return NULL;
    int axes[PN_MAX_DIMS], n;
    if (parse_axes(args[2], axes, &n) < 0) return NULL;
    int keep = PyObject_IsTrue(args[3]);
    if (keep < 0) return NULL;
    pn_value *a = pn_tensor_value(args[1], NPY_FLOAT32, "operand");
    if (!a) return NULL;
    pn_value *out = NULL;
    int rc = pn_eager_reduce((pn_redop)op, a, n, axes, keep, &out);
    return finish(rc, out, &a, 1);
}

PyObject *pn_py_matmul(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    (void)self;
    if (nargs != 2) return PyErr_Format(PyExc_TypeError, "matmul(a, b)");
    pn_value *v[2] = {pn_tensor_value(args[0], NPY_FLOAT32, "operand"), NULL};
    if (!v[0]) return NULL;
    if (!(v[1] = pn_tensor_value(args[1], NPY_FLOAT32, "operand"))) return drop(v, 1);
    pn_value *out = NULL;
    int rc = pn_eager_matmul(v[0], v[1], &out);
    return finish(rc, out, v, 2);
}

/* softmax(a, axis, log) */
PyObject *pn_py_softmax(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    (void)self;
    if (nargs != 3) return PyErr_Format(PyExc_TypeError, "softmax(a, axis, log)");
    int axis = (int)PyLong_AsLong(args[1]);
    if (axis == -1 && PyErr_Occurred()) return NULL;
    int log = PyObject_IsTrue(args[2]);
    if (log < 0) return NULL;
    pn_value *a = pn_tensor_value(args[0], NPY_FLOAT32, "operand");
    if (!a) return NULL;
    pn_value *out = NULL;
    int rc = pn_eager_softmax(a, axis, log, &out);
    return finish(rc, out, &a, 1);
}

static int parse_i64s(PyObject *o, int64_t *dst, int max, const char *what) {
    PyObject *fast = PySequence_Fast(o, what);
    if (!fast) return -1;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(fast);
    if (n > max) {
        Py_DECREF(fast);
        PyErr_Format(PyExc_ValueError, "%s: at most %d entries", what, max);
        return -1;
    }
    for (Py_ssize_t i = 0; i < n; i++) dst[i] = PyLong_AsLongLong(PySequence_Fast_GET_ITEM(fast, i));
    Py_DECREF(fast);
    return PyErr_Occurred() ? -1 : (int)n;
}

/* slice(a, starts, steps, counts, drop_mask) */
PyObject *pn_py_slice(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    (void)self;
    if (nargs != 5) return PyErr_Format(PyExc_TypeError, "slice(a, starts, steps, counts, drop)");
    int64_t start[PN_MAX_DIMS], step[PN_MAX_DIMS], count[PN_MAX_DIMS];
    int n0 = parse_i64s(args[1], start, PN_MAX_DIMS, "starts");
    int n1 = n0 < 0 ? -1 : parse_i64s(args[2], step, PN_MAX_DIMS, "steps");
    int n2 = n1 < 0 ? -1 : parse_i64s(args[3], count, PN_MAX_DIMS, "counts");
    if (n2 < 0) return NULL;
    unsigned long drop = PyLong_AsUnsignedLong(args[4]);
    if (PyErr_Occurred()) return NULL;
    pn_value *a = pn_tensor_value(args[0], NPY_FLOAT32, "operand");
    if (!a) return NULL;
    if (n0 != pn_value_ndim(a) || n1 != n0 || n2 != n0) {
        pn_value_release(a);
        return PyErr_Format(PyExc_ValueError, "slice: one start, step and count per axis");
    }
    pn_value *out = NULL;
    int rc = pn_eager_slice(a, start, step, count, (unsigned)drop, &out);
    return finish(rc, out, &a, 1);
}

/* reshape(a, shape) */
PyObject *pn_py_reshape(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    (void)self;
    if (nargs != 2) return PyErr_Format(PyExc_TypeError, "reshape(a, shape)");
    int64_t dims[PN_MAX_DIMS];
    int nd = parse_i64s(args[1], dims, PN_MAX_DIMS, "shape");
    if (nd < 0) return NULL;
    pn_value *a = pn_tensor_value(args[0], NPY_FLOAT32, "operand");
    if (!a) return NULL;
    pn_value *out = NULL;
    int rc = pn_eager_reshape(a, nd, dims, &out);
    return finish(rc, out, &a, 1);
}

/* transpose(a, perm) */
PyObject *pn_py_transpose(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    (void)self;
    if (nargs != 2) return PyErr_Format(PyExc_TypeError, "transpose(a, perm)");
    int64_t p64[PN_MAX_DIMS];
    int nd = parse_i64s(args[1], p64, PN_MAX_DIMS, "axes");
    if (nd < 0) return NULL;
    pn_value *a = pn_tensor_value(args[0], NPY_FLOAT32, "operand");
    if (!a) return NULL;
    if (nd != pn_value_ndim(a)) {
        pn_value_release(a);
        return PyErr_Format(PyExc_ValueError, "transpose: axes don't match the tensor's rank");
    }
    int perm[PN_MAX_DIMS];
    for (int i = 0; i < nd; i++) perm[i] = (int)p64[i];
    pn_value *out = NULL;
    int rc = pn_eager_transpose(a, perm, &out);
    return finish(rc, out, &a, 1);
}

/* op(name, inputs, variables, iattr, fattr, training, seed[, bf16]): a graph op run on tensors
 * (bf16: its matrix products in mixed precision, for a layer of the mixed_bfloat16 policy) */
PyObject *pn_py_op(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    (void)self;
    if (nargs != 7 && nargs != 8)
        return PyErr_Format(PyExc_TypeError,
                            "op(name, inputs, variables, iattr, fattr, training, seed[, bf16])");
    const char *name = PyUnicode_AsUTF8(args[0]);
    if (!name) return NULL;
    int op = pn_op_find(name);
    if (op <= PN_OP_INPUT) return PyErr_Format(PyExc_ValueError, "unknown op '%s'", name);
    int iattr[PN_MAX_ATTRS] = {0};
    float fattr[PN_MAX_ATTRS] = {0};
    int64_t tmp[PN_MAX_ATTRS];
    int ni = parse_i64s(args[3], tmp, PN_MAX_ATTRS, "iattr");
    if (ni < 0) return NULL;
    for (int i = 0; i < ni; i++) iattr[i] = (int)tmp[i];
    PyObject *ff = PySequence_Fast(args[4], "fattr must be a sequence");
    if (!ff) return NULL;
    for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(ff) && i < PN_MAX_ATTRS; i++)
        fattr[i] = (float)PyFloat_AsDouble(PySequence_Fast_GET_ITEM(ff, i));
    Py_DECREF(ff);
    int training = PyObject_IsTrue(args[5]), bf16 = nargs == 8 ? PyObject_IsTrue(args[7]) : 0;
    unsigned long long seed = PyLong_AsUnsignedLongLongMask(args[6]);
    if (PyErr_Occurred() || training < 0 || bf16 < 0) return NULL;
    PyObject *ins = PySequence_Fast(args[1], "inputs must be a sequence");
    PyObject *vars = ins ? PySequence_Fast(args[2], "variables must be a sequence") : NULL;
    if (!vars) {
        Py_XDECREF(ins);
        return NULL;
    }
    int n_in = (int)PySequence_Fast_GET_SIZE(ins), n_var = (int)PySequence_Fast_GET_SIZE(vars);
    pn_value *v[PN_MAX_INPUTS + PN_MAX_VARS];
    int n = 0;
    if (n_in < 1 || n_in > PN_MAX_INPUTS || n_var > PN_MAX_VARS) {
        PyErr_Format(PyExc_ValueError, "%s: bad number of inputs or variables", name);
    } else {
        for (int i = 0; i < n_in + n_var; i++) {
            PyObject *o = i < n_in ? PySequence_Fast_GET_ITEM(ins, i)
                                   : PySequence_Fast_GET_ITEM(vars, i - n_in);
            if (!(v[n] = pn_tensor_value(o, -1, name))) break;
            n++;
        }
    }
    Py_DECREF(ins);
    Py_DECREF(vars);
    if (n != n_in + n_var) return drop(v, n);
    pn_value *out = NULL;
    int rc = pn_eager_op_mixed(op, n_in, v, n_var, v + n_in, iattr, fattr, training, seed, bf16,
                               &out);
    return finish(rc, out, v, n);
}

/* loss(name, from_logits, y_true, y_pred) */
PyObject *pn_py_loss(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    (void)self;
    if (nargs != 4) return PyErr_Format(PyExc_TypeError, "loss(name, from_logits, y, p)");
    static const char *names[PN_LOSS_COUNT] = {
        "mean_squared_error", "mean_absolute_error", "binary_crossentropy",
        "categorical_crossentropy", "sparse_categorical_crossentropy"};
    const char *name = PyUnicode_AsUTF8(args[0]);
    if (!name) return NULL;
    int kind = -1;
    for (int k = 0; k < PN_LOSS_COUNT; k++)
        if (names[k] && !strcmp(name, names[k])) kind = k;
    if (kind < 0) return PyErr_Format(PyExc_ValueError, "unknown loss '%s'", name);
    int logits = PyObject_IsTrue(args[1]);
    if (logits < 0) return NULL;
    pn_value *v[2] = {pn_tensor_value(args[2], kind == PN_LOSS_SPARSE_CE ? NPY_INT32 : NPY_FLOAT32,
                                      "y_true"),
                      NULL};
    if (!v[0]) return NULL;
    if (!(v[1] = pn_tensor_value(args[3], NPY_FLOAT32, "y_pred"))) return drop(v, 1);
    pn_value *out = NULL;
    int rc = pn_eager_loss((pn_loss_kind)kind, logits, v[0], v[1], &out);
    return finish(rc, out, v, 2);
}
