/*
 * metric.c: the core's metrics for Python: a metric spec from a name or a tuple, and
 * metric_accumulate, one batch's accumulators (what the stateful pynn.metrics objects add).
 */
#include "module.h"

/* A metric name ('precision') or a tuple (name, k, threshold, num_thresholds, from_logits),
 * missing entries taking Keras's defaults, into *out; -1 with an exception set. */
int pn_parse_metric(PyObject *obj, pn_metric *out) {
    const char *s = NULL;
    PyObject *name = PyTuple_Check(obj) && PyTuple_GET_SIZE(obj) > 0 ? PyTuple_GET_ITEM(obj, 0)
                                                                      : obj;
    if (!PyUnicode_Check(name) || !(s = PyUnicode_AsUTF8(name))) {
        if (!PyErr_Occurred())
            PyErr_Format(PyExc_TypeError, "a metric is a name or a tuple (name, k, threshold, "
                         "num_thresholds, from_logits), got %R", obj);
        return -1;
    }
    int kind = -1;
    for (int i = 0; i < PN_METRIC_COUNT; i++)
        if (strcmp(pn_metric_name((pn_metric_kind)i), s) == 0) kind = i;
    if (kind < 0) {
        PyErr_Format(PyExc_ValueError, "unknown metric '%s'", s);
        return -1;
    }
    pn_metric m = pn_metric_default((pn_metric_kind)kind);
    if (PyTuple_Check(obj) && !PyArg_ParseTuple(obj, "s|ifip", &s, &m.k, &m.threshold,
                                                &m.num_thresholds, &m.from_logits))
        return -1;
    int rc = pn_metric_check(&m);
    if (rc) {
        pn_raise(rc);
        return -1;
    }
    *out = m;
    return 0;
}

/* metric_size(spec) -> how many accumulators the metric adds per batch */
PyObject *pn_py_metric_size(PyObject *self, PyObject *spec) {
    (void)self;
    pn_metric m;
    if (pn_parse_metric(spec, &m)) return NULL;
    return PyLong_FromLong(pn_metric_size(&m));
}

/* metric_reads_mask(spec) -> whether a masked output's mask weighs the metric in the steps */
PyObject *pn_py_metric_reads_mask(PyObject *self, PyObject *spec) {
    (void)self;
    pn_metric m;
    if (pn_parse_metric(spec, &m)) return NULL;
    return PyBool_FromLong(pn_metric_reads_mask(m.kind));
}

/* metric_accumulate(spec, y_true, y_pred) -> float64 array: the batch's accumulators. y_pred
 * (batch, ..., C), or (batch,) read as (batch, 1); y_true as many values (float32), or one int32
 * label per row of C for a sparse metric. */
PyObject *pn_py_metric_accumulate(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    (void)self;
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "metric_accumulate(spec, y_true, y_pred)");
        return NULL;
    }
    pn_metric m;
    if (pn_parse_metric(args[0], &m)) return NULL;
    const char *name = pn_metric_name(m.kind);
    int sparse = pn_metric_sparse_targets(m.kind);
    PyArrayObject *yt = NULL, *yp = NULL, *res = NULL;
    float *sums = NULL;
    yp = pn_borrow(args[2], NPY_FLOAT32, "y_pred");
    if (!yp) goto fail;
    yt = pn_borrow(args[1], sparse ? NPY_INT32 : NPY_FLOAT32, "y_true");
    if (!yt) goto fail;
    int nd = PyArray_NDIM(yp);
    if (nd < 1 || PyArray_DIM(yp, 0) < 1) {
        PyErr_Format(PyExc_ValueError, "%s: y_pred needs at least one sample (got a scalar or "
                     "an empty array)", name);
        goto fail;
    }
    int64_t batch = PyArray_DIM(yp, 0), size = PyArray_SIZE(yp);
    int64_t C = nd == 1 ? 1 : PyArray_DIM(yp, nd - 1);
    int64_t R = C ? size / C : 0;
    if (C < 1) {
        PyErr_Format(PyExc_ValueError, "%s: y_pred has no values per row", name);
        goto fail;
    }
    int64_t want = sparse ? R : size;
    if (PyArray_SIZE(yt) != want) {
        PyErr_Format(PyExc_ValueError,
                     sparse ? "%s: y_true must hold one integer label per row of y_pred (%lld), "
                              "got %lld values"
                            : "%s: y_true must hold as many values as y_pred (%lld), got %lld",
                     name, (long long)want, (long long)PyArray_SIZE(yt));
        goto fail;
    }
    int n = pn_metric_size(&m);
    sums = PyMem_RawMalloc((size_t)n * sizeof(float));
    if (!sums) {
        PyErr_NoMemory();
        goto fail;
    }
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = pn_metric_accumulate(&m, sums, PyArray_DATA(yp), PyArray_DATA(yt), R, C, batch);
    Py_END_ALLOW_THREADS
    if (rc) {
        pn_raise(rc);
        goto fail;
    }
    npy_intp dims[1] = {n};
    res = (PyArrayObject *)PyArray_SimpleNew(1, dims, NPY_FLOAT64);
    if (!res) goto fail;
    double *d = PyArray_DATA(res);
    for (int i = 0; i < n; i++) d[i] = sums[i];
fail:
    PyMem_RawFree(sums);
    Py_XDECREF(yt);
    Py_XDECREF(yp);
    return (PyObject *)res;
}
