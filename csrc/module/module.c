/* module.c: the pynn._core module: error mapping, array borrowing, threads, activations. */
#define PN_MODULE_MAIN
#include "module.h"

PyObject *pn_raise(int code) {
    PyObject *type;
    switch (code) {
    case PN_ESHAPE:
    case PN_EVALUE: type = PyExc_ValueError; break;
    case PN_ETYPE: type = PyExc_TypeError; break;
    case PN_ENOMEM: type = PyExc_MemoryError; break;
    case PN_EIO: type = PyExc_OSError; break;
    case PN_EINTR: /* the signal handler's exception, which check_signals left set */
        if (PyErr_Occurred()) return NULL;
        type = PyExc_KeyboardInterrupt;
        break;
    default: type = PyExc_RuntimeError; break;
    }
    PyErr_SetString(type, pn_last_error());
    return NULL;
}

PyArrayObject *pn_borrow(PyObject *obj, int npy_type, const char *what) {
    /* anything else (a list, a number, a string) is read as NumPy reads it first, so that "2"
       or [1j] is refused as an array of strings or complex numbers is, not parsed or truncated */
    PyObject *probe = NULL;
    if (!PyArray_Check(obj)) {
        probe = PyArray_FROM_O(obj);
        if (!probe) return NULL;
        obj = probe;
    }
    int t = PyArray_TYPE((PyArrayObject *)obj);
    if (!PyTypeNum_ISNUMBER(t) || PyTypeNum_ISCOMPLEX(t)) {
        PyErr_Format(PyExc_TypeError, "%s: expected a real numeric array, got dtype %R", what,
                     PyArray_DESCR((PyArrayObject *)obj));
        Py_XDECREF(probe);
        return NULL;
    }
    /* FORCECAST: a float64 or uint8 array converts once, explicitly, as a whole. */
    PyObject *a = PyArray_FROM_OTF(obj, npy_type, NPY_ARRAY_IN_ARRAY | NPY_ARRAY_FORCECAST);
    Py_XDECREF(probe);
    if (!a && !PyErr_Occurred())
        PyErr_Format(PyExc_TypeError, "%s: could not be read as an array", what);
    return (PyArrayObject *)a;
}

int pn_view(PyArrayObject *a, pn_tensor *t) {
    int nd = PyArray_NDIM(a);
    if (nd > PN_MAX_DIMS) {
        PyErr_Format(PyExc_ValueError, "arrays of rank %d are not supported (at most %d)", nd,
                     PN_MAX_DIMS);
        return -1;
    }
    t->ndim = nd;
    for (int i = 0; i < nd; i++) t->dims[i] = PyArray_DIM(a, i);
    t->dtype = PyArray_TYPE(a) == NPY_INT32 ? PN_I32 : PN_F32;
    t->data = PyArray_DATA(a);
    return 0;
}

static PyObject *set_num_threads(PyObject *self, PyObject *arg) {
    (void)self;
    long n = PyLong_AsLong(arg);
    if (n == -1 && PyErr_Occurred()) return NULL;
    if (n < 1 || n > 4096) {
        PyErr_Format(PyExc_ValueError, "set_num_threads: n must be >= 1, got %ld", n);
        return NULL;
    }
    pn_set_num_threads((int)n);
    Py_RETURN_NONE;
}

static PyObject *get_num_threads(PyObject *self, PyObject *unused) {
    (void)self, (void)unused;
    return PyLong_FromLong(pn_get_num_threads());
}

static PyObject *default_num_threads(PyObject *self, PyObject *unused) {
    (void)self, (void)unused;
    return PyLong_FromLong(pn_default_num_threads());
}

static PyObject *forked_child(PyObject *self, PyObject *unused) {
    (void)self, (void)unused;
    return PyBool_FromLong(pn_forked_child());
}

static PyObject *cpu_features(PyObject *self, PyObject *unused) {
    (void)self, (void)unused;
    static const struct {
        unsigned bit;
        const char *name;
    } names[] = {{PN_CPU_AVX2, "avx2"},
                 {PN_CPU_AVX512, "avx512"},
                 {PN_CPU_AVX512BF16, "avx512_bf16"},
                 {PN_CPU_AMX_BF16, "amx_bf16"},
                 {PN_CPU_FMA512, "fma512"}};
    PyObject *out = PyList_New(0);
    for (size_t i = 0; out && i < sizeof names / sizeof names[0]; i++) {
        if (!pn_cpu_has(names[i].bit)) continue;
        PyObject *s = PyUnicode_FromString(names[i].name);
        if (!s || PyList_Append(out, s)) Py_CLEAR(out);
        Py_XDECREF(s);
    }
    return out;
}

static PyObject *cpu_disable(PyObject *self, PyObject *arg) {
    (void)self;
    const char *name = PyUnicode_AsUTF8(arg);
    if (!name) return NULL;
    if (!strcmp(name, "")) pn_cpu_disable(0);
    else if (!strcmp(name, "avx512_bf16")) pn_cpu_disable(PN_CPU_AVX512BF16);
    else return PyErr_Format(PyExc_ValueError, "cpu_disable: unknown feature %R", arg);
    Py_RETURN_NONE;
}

/* Python's main thread, the only one whose signal handlers run */
static unsigned long main_thread;

/* The core's interrupt hook (a long call asks it between batches, with the GIL released): on the
 * main thread, runs the handlers of pending signals; the exception a handler raises
 * (KeyboardInterrupt for Ctrl-C) stops the call and stays set for pn_raise(PN_EINTR). */
static int check_signals(void) {
    if (PyThread_get_thread_ident() != main_thread) return 0;
    PyGILState_STATE g = PyGILState_Ensure();
    int stop = PyErr_CheckSignals() < 0;
    PyGILState_Release(g);
    return stop;
}

/* The core's wait hooks: a thread about to wait for a model's lock releases the GIL if it holds
 * it (the run holding the lock may need the GIL for check_signals), and takes it back after. */
static void *release_gil(void) { return PyGILState_Check() ? PyEval_SaveThread() : NULL; }

static void restore_gil(void *tstate) {
    if (tstate) PyEval_RestoreThread(tstate);
}

static int find_main_thread(void) {
    PyObject *threading = PyImport_ImportModule("threading");
    PyObject *t = threading ? PyObject_CallMethod(threading, "main_thread", NULL) : NULL;
    PyObject *ident = t ? PyObject_GetAttrString(t, "ident") : NULL;
    if (ident) main_thread = PyLong_AsUnsignedLong(ident);
    Py_XDECREF(ident);
    Py_XDECREF(t);
    Py_XDECREF(threading);
    return PyErr_Occurred() ? -1 : 0;
}

/* activation(name, x, alpha=0.0, approximate=False) -> new float32 array of x's shape */
static PyObject *activation(PyObject *self, PyObject *args, PyObject *kw) {
    (void)self;
    static char *kwlist[] = {"name", "x", "alpha", "approximate", NULL};
    const char *name;
    PyObject *xo;
    float alpha = 0.0f;
    int approximate = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "sO|fp", kwlist, &name, &xo, &alpha, &approximate))
        return NULL;
    int op = pn_activation_find(name);
    if (op < 0) {
        PyErr_Format(PyExc_ValueError, "unknown activation '%s'", name);
        return NULL;
    }
    PyArrayObject *x = pn_borrow(xo, NPY_FLOAT32, "activation");
    if (!x) return NULL;
    PyArrayObject *out = (PyArrayObject *)PyArray_NewLikeArray(x, NPY_CORDER, NULL, 0);
    if (!out) {
        Py_DECREF(x);
        return NULL;
    }
    int nd = PyArray_NDIM(x);
    int64_t cols = nd ? PyArray_DIM(x, nd - 1) : 1;
    int64_t size = PyArray_SIZE(x), rows = cols ? size / cols : 0;
    float fattr[PN_MAX_ATTRS] = {alpha};
    int iattr[PN_MAX_ATTRS] = {approximate};
    int rc = PN_OK;
    if (size > 0) {
        Py_BEGIN_ALLOW_THREADS
        rc = pn_activation_apply(op, fattr, iattr, PyArray_DATA(out), PyArray_DATA(x), rows, cols);
        Py_END_ALLOW_THREADS
    }
    Py_DECREF(x);
    if (rc) {
        Py_DECREF(out);
        return pn_raise(rc);
    }
    return (PyObject *)out;
}

/* _debug_fail_alloc(n): tests only; the core's allocation number n from now fails once (n < 0:
 * off). Returns the number of allocations counted since the previous call. */
static PyObject *debug_fail_alloc(PyObject *self, PyObject *arg) {
    (void)self;
    long long n = PyLong_AsLongLong(arg);
    if (n == -1 && PyErr_Occurred()) return NULL;
    int64_t before = pn_debug_alloc_count();
    pn_debug_fail_alloc((int64_t)n);
    return PyLong_FromLongLong((long long)before);
}

/* _debug_folds(on) -> the previous setting: tests only; False stops new plans from folding an
 * embedding into a recurrent layer, so both paths can be compared */
static PyObject *debug_folds(PyObject *self, PyObject *arg) {
    (void)self;
    int on = PyObject_IsTrue(arg);
    if (on < 0) return NULL;
    return PyBool_FromLong(pn_debug_folds(on));
}

/* _debug_swaps(on) -> the previous setting: tests only; False stops new plans from moving a
 * relu after the max pool it feeds, so both paths can be compared */
static PyObject *debug_swaps(PyObject *self, PyObject *arg) {
    (void)self;
    int on = PyObject_IsTrue(arg);
    if (on < 0) return NULL;
    return PyBool_FromLong(pn_debug_swaps(on));
}

#define FASTCALL(f) (PyCFunction)(void (*)(void))(f), METH_FASTCALL

static PyMethodDef methods[] = {
    {"cpu_features", cpu_features, METH_NOARGS,
     "cpu_features() -> list of what the CPU runs that the core's kernels use ('avx2', "
     "'avx512', 'avx512_bf16', 'amx_bf16', 'fma512': 512-bit FMAs at full rate)"},
    {"cpu_disable", cpu_disable, METH_O,
     "cpu_disable(name): tests only: the kernels act as if the feature ('avx512_bf16') were "
     "missing; '' restores"},
    {"set_num_threads", set_num_threads, METH_O,
     "set_num_threads(n): threads for OpenBLAS and the core's OpenMP loops together."},
    {"get_num_threads", get_num_threads, METH_NOARGS, "get_num_threads() -> int"},
    {"default_num_threads", default_num_threads, METH_NOARGS,
     "default_num_threads() -> int: OMP_NUM_THREADS, else the usable CPUs, capped by "
     "OMP_THREAD_LIMIT (1 in a forked child)"},
    {"forked_child", forked_child, METH_NOARGS,
     "forked_child() -> bool: whether this process is a child of fork() (single-threaded)"},
    {"activation", (PyCFunction)(void (*)(void))activation, METH_VARARGS | METH_KEYWORDS,
     "activation(name, x, alpha=0.0, approximate=False) -> array: one activation on an array."},
    {"set_tensor_class", pn_set_tensor_class, METH_O,
     "set_tensor_class(cls): the Tensor subclass eager results are made as"},
    {"set_grad_enabled", pn_py_set_grad_enabled, METH_O,
     "set_grad_enabled(on) -> previous: whether eager calls record on this thread"},
    {"leaf", FASTCALL(pn_py_leaf), "leaf(array, requires_grad) -> Tensor over the array"},
    {"binary", FASTCALL(pn_py_binary), "binary(op, a, b) -> Tensor"},
    {"op_code", FASTCALL(pn_py_op_code), "op_code(kind, name) -> int: a math op's code"},
    {"infer", FASTCALL(pn_py_infer),
     "infer(op, inputs, variables, iattr, fattr) -> (shape, dtype, unbatched)"},
    {"unary", FASTCALL(pn_py_unary), "unary(op, a) -> Tensor"},
    {"reduce", FASTCALL(pn_py_reduce), "reduce(op, a, axis, keepdims) -> Tensor"},
    {"matmul", FASTCALL(pn_py_matmul), "matmul(a, b) -> Tensor"},
    {"softmax", FASTCALL(pn_py_softmax), "softmax(a, axis, log) -> Tensor"},
    {"slice", FASTCALL(pn_py_slice), "slice(a, starts, steps, counts, drop) -> Tensor"},
    {"reshape", FASTCALL(pn_py_reshape), "reshape(a, shape) -> Tensor"},
    {"transpose", FASTCALL(pn_py_transpose), "transpose(a, axes) -> Tensor"},
    {"op", FASTCALL(pn_py_op),
     "op(name, inputs, variables, iattr, fattr, training, seed[, bf16]): bf16 runs its matrix "
     "products in mixed precision"},
    {"loss", FASTCALL(pn_py_loss), "loss(name, from_logits, y_true, y_pred) -> scalar Tensor"},
    {"metric_size", pn_py_metric_size, METH_O,
     "metric_size(spec) -> the number of accumulators a metric adds per batch"},
    {"metric_reads_mask", pn_py_metric_reads_mask, METH_O,
     "metric_reads_mask(spec) -> bool: a masked output's mask weighs the metric in the steps"},
    {"metric_accumulate", FASTCALL(pn_py_metric_accumulate),
     "metric_accumulate(spec, y_true, y_pred) -> float64 array: one batch's accumulators"},
    {"_debug_fail_alloc", debug_fail_alloc, METH_O,
     "_debug_fail_alloc(n) -> allocations counted so far: tests only; the core's n-th allocation "
     "from now (0-based) fails once, as if out of memory; n < 0 turns it off"},
    {"_debug_folds", debug_folds, METH_O,
     "_debug_folds(on) -> the previous setting: tests only; False stops new plans from folding "
     "an embedding into a recurrent layer"},
    {"_debug_swaps", debug_swaps, METH_O,
     "_debug_swaps(on) -> the previous setting: tests only; False stops new plans from moving "
     "a relu after the max pool it feeds"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef moduledef = {
    PyModuleDef_HEAD_INIT, "pynn._core", "The C engine of pynn.", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__core(void) {
    import_array();
    if (PyType_Ready(&PnModelType) < 0 || PyType_Ready(&PnTensorType) < 0) return NULL;
    if (find_main_thread() < 0) return NULL;
    pn_set_interrupt_hook(check_signals);
    pn_set_wait_hooks(release_gil, restore_gil);
    PyObject *m = PyModule_Create(&moduledef);
    if (!m) return NULL;
    if (PyModule_AddObjectRef(m, "Model", (PyObject *)&PnModelType) < 0 ||
        PyModule_AddObjectRef(m, "Tensor", (PyObject *)&PnTensorType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
