/* module.h: what the extension's files share. The only headers of pynn that include Python.h. */
#ifndef PYNN_MODULE_H
#define PYNN_MODULE_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#define PY_ARRAY_UNIQUE_SYMBOL pynn_ARRAY_API
#ifndef PN_MODULE_MAIN
#define NO_IMPORT_ARRAY
#endif
#define NPY_NO_DEPRECATED_API NPY_1_7_API_VERSION
#include <numpy/arrayobject.h>

#include "pynn.h"

/* Raises the Python exception for a core error code (with the core's message); returns NULL. */
PyObject *pn_raise(int code);

/* Borrows obj as a C-contiguous array of the given type: no copy when it already is one.
 * Returns a new reference, or NULL with TypeError/ValueError set. */
PyArrayObject *pn_borrow(PyObject *obj, int npy_type, const char *what);

/* Fills a core tensor view of an array (which must stay alive for the call). */
int pn_view(PyArrayObject *a, pn_tensor *t);

extern PyTypeObject PnModelType;
extern PyTypeObject PnTensorType;

/* A Tensor (of the class set by set_tensor_class) owning v's reference; NULL if out of memory
 * (then v is released). */
PyObject *pn_tensor_wrap(pn_value *v);
/* obj (a Tensor, an array or anything NumPy reads) as a value, a new reference: no copy for a
 * Tensor or a contiguous array of the type. npy_type NPY_FLOAT32 or NPY_INT32 converts to it;
 * -1 keeps integers as int32 and makes the rest float32. NULL with an exception set. */
pn_value *pn_tensor_value(PyObject *obj, int npy_type, const char *what);

/* metrics (metric.c): a spec from a name or a tuple (name, k, threshold, num_thresholds,
 * from_logits); -1 with an exception set */
int pn_parse_metric(PyObject *obj, pn_metric *out);
PyObject *pn_py_metric_size(PyObject *self, PyObject *spec);
PyObject *pn_py_metric_reads_mask(PyObject *self, PyObject *spec);
PyObject *pn_py_metric_accumulate(PyObject *self, PyObject *const *args, Py_ssize_t nargs);

/* module functions of the imperative path (tensor_type.c) */
PyObject *pn_set_tensor_class(PyObject *self, PyObject *cls);
PyObject *pn_py_set_grad_enabled(PyObject *self, PyObject *arg);
PyObject *pn_py_leaf(PyObject *self, PyObject *const *args, Py_ssize_t nargs);
PyObject *pn_py_binary(PyObject *self, PyObject *const *args, Py_ssize_t nargs);
PyObject *pn_py_infer(PyObject *self, PyObject *const *args, Py_ssize_t nargs);
PyObject *pn_py_op_code(PyObject *self, PyObject *const *args, Py_ssize_t nargs);
PyObject *pn_py_unary(PyObject *self, PyObject *const *args, Py_ssize_t nargs);
PyObject *pn_py_reduce(PyObject *self, PyObject *const *args, Py_ssize_t nargs);
PyObject *pn_py_matmul(PyObject *self, PyObject *const *args, Py_ssize_t nargs);
PyObject *pn_py_softmax(PyObject *self, PyObject *const *args, Py_ssize_t nargs);
PyObject *pn_py_slice(PyObject *self, PyObject *const *args, Py_ssize_t nargs);
PyObject *pn_py_reshape(PyObject *self, PyObject *const *args, Py_ssize_t nargs);
PyObject *pn_py_transpose(PyObject *self, PyObject *const *args, Py_ssize_t nargs);
PyObject *pn_py_op(PyObject *self, PyObject *const *args, Py_ssize_t nargs);
PyObject *pn_py_loss(PyObject *self, PyObject *const *args, Py_ssize_t nargs);

#endif
