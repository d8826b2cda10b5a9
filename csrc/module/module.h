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

#endif
