/*
 * model_type.c: pynn._core.Model, a Python handle on a pn_model. Argument parsing, borrowing of
 * arrays, releasing the GIL, building results: no numerics.
 */
#include "module.h"

#include <limits.h>

/* What the handle keeps of each of the model's graphs */
typedef struct {
    int n_results;                        /* set by compile: the floats a step returns */
    int n_inputs;
    int x_type[PN_MAX_MODEL_INPUTS];      /* per input: NPY_FLOAT32, or NPY_INT32 for indices */
    int y_type[PN_MAX_OUTPUTS];           /* set by compile: NPY_INT32 for class indices */
} graph_info;

typedef struct {
    PyObject_HEAD
    pn_model *m;
    graph_info graphs[PN_MAX_GRAPHS];
    graph_info *g;                        /* the current graph's */
    int running;                          /* runs between their checks and their end, on any
                                           * thread: the current graph cannot change then */
} PnModel;

/* A run's core call, with the GIL released; the graph stays the one its arguments were checked
 * against (use_graph refuses while a run is in flight). */
#define RUN(self, call)                                                                        \
    do {                                                                                       \
        (self)->running++;                                                                     \
        Py_BEGIN_ALLOW_THREADS                                                                 \
        call;                                                                                  \
        Py_END_ALLOW_THREADS                                                                   \
        (self)->running--;                                                                     \
    } while (0)

static PyObject *model_new(PyTypeObject *type, PyObject *args, PyObject *kw) {
    (void)args, (void)kw;
    PnModel *self = (PnModel *)type->tp_alloc(type, 0);
    if (!self) return NULL;
    self->g = &self->graphs[0];
    int rc = pn_model_create(&self->m);
    if (rc) {
        Py_DECREF(self);
        return pn_raise(rc);
    }
    return (PyObject *)self;
}

static void model_dealloc(PnModel *self) {
    pn_model_destroy(self->m);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* A tuple of ints into shape[]; returns the rank or -1 with an exception set. */
static int parse_shape(PyObject *seq, int64_t *shape, const char *what) {
    PyObject *fast = PySequence_Fast(seq, "shape must be a sequence of ints");
    if (!fast) return -1;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(fast);
    if (n > PN_MAX_DIMS) {
        Py_DECREF(fast);
        PyErr_Format(PyExc_ValueError, "%s: rank %zd is above %d", what, n, PN_MAX_DIMS);
        return -1;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        long long v = PyLong_AsLongLong(PySequence_Fast_GET_ITEM(fast, i));
        if (v == -1 && PyErr_Occurred()) {
            Py_DECREF(fast);
            return -1;
        }
        shape[i] = v;
    }
    Py_DECREF(fast);
    return (int)n;
}

static PyObject *shape_tuple(int nd, const int64_t *shape) {
    PyObject *t = PyTuple_New(nd);
    if (!t) return NULL;
    for (int i = 0; i < nd; i++) {
        PyObject *v = PyLong_FromLongLong(shape[i]);
        if (!v) {
            Py_DECREF(t);
            return NULL;
        }
        PyTuple_SET_ITEM(t, i, v);
    }
    return t;
}

static PyObject *model_add_variable(PnModel *self, PyObject *args) {
    PyObject *shape_o;
    int trainable = 1, id;
    if (!PyArg_ParseTuple(args, "O|p", &shape_o, &trainable)) return NULL;
    int64_t shape[PN_MAX_DIMS];
    int nd = parse_shape(shape_o, shape, "variable");
    if (nd < 0) return NULL;
    int rc = pn_model_add_variable(self->m, nd, shape, trainable, &id);
    return rc ? pn_raise(rc) : PyLong_FromLong(id);
}

static PyObject *model_alloc(PnModel *self, PyObject *unused) {
    (void)unused;
    int rc = pn_model_alloc(self->m);
    if (rc) return pn_raise(rc);
    Py_RETURN_NONE;
}

/* A NumPy view onto count floats of core memory at base + offset, kept alive by the model. */
static PyObject *view_of(PnModel *self, float *base, int64_t offset, int nd, const int64_t *shape) {
    npy_intp dims[PN_MAX_DIMS];
    for (int i = 0; i < nd; i++) dims[i] = (npy_intp)shape[i];
    PyObject *a = PyArray_SimpleNewFromData(nd, dims, NPY_FLOAT32, base + offset);
    if (!a) return NULL;
    Py_INCREF(self);
    if (PyArray_SetBaseObject((PyArrayObject *)a, (PyObject *)self) < 0) { /* steals self */
        Py_DECREF(a);
        return NULL;
    }
    return a;
}

static PyObject *variable_view(PnModel *self, PyObject *arg, int grad) {
    int id = (int)PyLong_AsLong(arg);
    if (id == -1 && PyErr_Occurred()) return NULL;
    int64_t offset, shape[PN_MAX_DIMS];
    int nd;
    int rc = pn_model_variable(self->m, id, &offset, NULL, &nd, shape);
    if (rc) return pn_raise(rc);
    return view_of(self, grad ? pn_model_grads(self->m) : pn_model_params(self->m), offset, nd,
                   shape);
}

static PyObject *model_variable(PnModel *self, PyObject *arg) { return variable_view(self, arg, 0); }
static PyObject *model_gradient(PnModel *self, PyObject *arg) { return variable_view(self, arg, 1); }

/* The ids of a sequence of variable ids, n of them at most; -1 with an exception set. */
static int variable_ids(PyObject *seq, int *ids, Py_ssize_t n) {
    for (Py_ssize_t i = 0; i < n; i++) {
        long id = PyLong_AsLong(PySequence_Fast_GET_ITEM(seq, i));
        if (id == -1 && PyErr_Occurred()) return -1;
        ids[i] = id < INT32_MIN || id > INT32_MAX ? -1 : (int)id;
    }
    return 0;
}

/* write_variables(ids, values): values[i] (float32, C-contiguous, of variable ids[i]'s size)
 * into the variables, all under the model's lock, so a run on another thread sees every value
 * old or every one new */
static PyObject *model_write_variables(PnModel *self, PyObject *args) {
    PyObject *ids_o, *vals_o, *ids_seq = NULL, *vals_seq = NULL, *result = NULL;
    if (!PyArg_ParseTuple(args, "OO", &ids_o, &vals_o)) return NULL;
    if (!(ids_seq = PySequence_Fast(ids_o, "ids must be a sequence")) ||
        !(vals_seq = PySequence_Fast(vals_o, "values must be a sequence")))
        goto done;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(ids_seq);
    if (PySequence_Fast_GET_SIZE(vals_seq) != n || n > INT32_MAX) {
        PyErr_SetString(PyExc_ValueError, "write_variables: one value per id");
        goto done;
    }
    int *ids = PyMem_Calloc((size_t)n + 1, sizeof *ids);
    const float **src = PyMem_Calloc((size_t)n + 1, sizeof *src);
    if (!ids || !src) {
        PyErr_NoMemory();
        goto free_arrays;
    }
    if (variable_ids(ids_seq, ids, n)) goto free_arrays;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *v = PySequence_Fast_GET_ITEM(vals_seq, i);
        int64_t size;
        int rc = pn_model_variable(self->m, ids[i], NULL, &size, NULL, NULL);
        if (rc) {
            pn_raise(rc);
            goto free_arrays;
        }
        if (!PyArray_Check(v) || PyArray_TYPE((PyArrayObject *)v) != NPY_FLOAT32 ||
            !PyArray_IS_C_CONTIGUOUS((PyArrayObject *)v) ||
            PyArray_SIZE((PyArrayObject *)v) != size) {
            PyErr_Format(PyExc_ValueError, "write_variables: value %zd must be a C-contiguous "
                         "float32 array of %lld values", i, (long long)size);
            goto free_arrays;
        }
        src[i] = PyArray_DATA((PyArrayObject *)v);
    }
    int rc;
    Py_BEGIN_ALLOW_THREADS /* the lock may be held by a run on another thread */
    rc = pn_model_write_variables(self->m, (int)n, ids, src);
    Py_END_ALLOW_THREADS
    if (rc) pn_raise(rc);
    else result = Py_NewRef(Py_None);
free_arrays:
    PyMem_Free(ids);
    PyMem_Free(src);
done:
    Py_XDECREF(ids_seq);
    Py_XDECREF(vals_seq);
    return result;
}

/* read_variables(ids) -> a list of new float32 arrays, copies of the variables' values taken
 * together under the model's lock */
static PyObject *model_read_variables(PnModel *self, PyObject *ids_o) {
    PyObject *ids_seq = PySequence_Fast(ids_o, "ids must be a sequence"), *list = NULL;
    if (!ids_seq) return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(ids_seq);
    int *ids = PyMem_Calloc((size_t)n + 1, sizeof *ids);
    float **dst = PyMem_Calloc((size_t)n + 1, sizeof *dst);
    if (!ids || !dst || n > INT32_MAX) {
        PyErr_NoMemory();
        goto done;
    }
    if (variable_ids(ids_seq, ids, n) || !(list = PyList_New(n))) goto done;
    for (Py_ssize_t i = 0; i < n; i++) {
        int64_t shape[PN_MAX_DIMS];
        int nd, rc = pn_model_variable(self->m, ids[i], NULL, NULL, &nd, shape);
        if (rc) {
            pn_raise(rc);
            Py_CLEAR(list);
            goto done;
        }
        npy_intp dims[PN_MAX_DIMS];
        for (int d = 0; d < nd; d++) dims[d] = (npy_intp)shape[d];
        PyObject *a = PyArray_SimpleNew(nd, dims, NPY_FLOAT32);
        if (!a) {
            Py_CLEAR(list);
            goto done;
        }
        dst[i] = PyArray_DATA((PyArrayObject *)a);
        PyList_SET_ITEM(list, i, a);
    }
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = pn_model_read_variables(self->m, (int)n, ids, dst);
    Py_END_ALLOW_THREADS
    if (rc) {
        pn_raise(rc);
        Py_CLEAR(list);
    }
done:
    PyMem_Free(ids);
    PyMem_Free(dst);
    Py_DECREF(ids_seq);
    return list;
}

static PyObject *model_param_count(PnModel *self, PyObject *args) {
    int trainable_only = 0;
    if (!PyArg_ParseTuple(args, "|p", &trainable_only)) return NULL;
    return PyLong_FromLongLong(pn_model_param_count(self->m, trainable_only));
}

static PyObject *model_set_regularizer(PnModel *self, PyObject *args) {
    int var;
    float l1, l2;
    if (!PyArg_ParseTuple(args, "iff", &var, &l1, &l2)) return NULL;
    int rc = pn_model_set_regularizer(self->m, var, l1, l2);
    if (rc) return pn_raise(rc);
    Py_RETURN_NONE;
}

static PyObject *model_add_input(PnModel *self, PyObject *args) {
    PyObject *shape_o;
    const char *dtype = "float32";
    if (!PyArg_ParseTuple(args, "O|s", &shape_o, &dtype)) return NULL;
    int64_t shape[PN_MAX_DIMS];
    int nd = parse_shape(shape_o, shape, "input");
    if (nd < 0) return NULL;
    pn_dtype dt;
    if (strcmp(dtype, "float32") == 0)
        dt = PN_F32;
    else if (strcmp(dtype, "int32") == 0)
        dt = PN_I32;
    else {
        PyErr_Format(PyExc_TypeError, "input: dtype must be 'float32' or 'int32', got '%s'", dtype);
        return NULL;
    }
    int node, rc = pn_model_add_input(self->m, nd, shape, dt, &node);
    if (rc) return pn_raise(rc);
    self->g->x_type[self->g->n_inputs++] = dt == PN_I32 ? NPY_INT32 : NPY_FLOAT32;
    return PyLong_FromLong(node);
}

/* add_target(k, kind, shape) -> node: output k's targets (kind 0, per-sample shape) or sample
 * weights (kind 1, shape (1,)) as a float32 node for a traced loss (pn_model_add_target) */
static PyObject *model_add_target(PnModel *self, PyObject *args) {
    int k, kind;
    PyObject *shape_o;
    if (!PyArg_ParseTuple(args, "iiO", &k, &kind, &shape_o)) return NULL;
    int64_t shape[PN_MAX_DIMS];
    int nd = parse_shape(shape_o, shape, "target");
    if (nd < 0) return NULL;
    int node, rc = pn_model_add_target(self->m, k, kind, nd, shape, &node);
    if (rc) return pn_raise(rc);
    return PyLong_FromLong(node);
}

/* Up to max ints or floats from a sequence. Returns the count or -1. */
static int parse_ints(PyObject *seq, int *out, int max, const char *what) {
    if (!seq || seq == Py_None) return 0;
    PyObject *fast = PySequence_Fast(seq, "expected a sequence");
    if (!fast) return -1;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(fast);
    if (n > max) {
        Py_DECREF(fast);
        PyErr_Format(PyExc_ValueError, "at most %d %s", max, what);
        return -1;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        long v = PyLong_AsLong(PySequence_Fast_GET_ITEM(fast, i));
        if ((v == -1 && PyErr_Occurred()) || v < INT_MIN || v > INT_MAX) {
            if (!PyErr_Occurred() || PyErr_ExceptionMatches(PyExc_OverflowError)) {
                PyErr_Clear();
                PyErr_Format(PyExc_ValueError, "%s: %R is outside the range of a C int", what,
                             PySequence_Fast_GET_ITEM(fast, i));
            }
            Py_DECREF(fast);
            return -1;
        }
        out[i] = (int)v;
    }
    Py_DECREF(fast);
    return (int)n;
}

static int parse_floats(PyObject *seq, float *out, int max) {
    if (!seq || seq == Py_None) return 0;
    PyObject *fast = PySequence_Fast(seq, "expected a sequence");
    if (!fast) return -1;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(fast);
    if (n > max) {
        Py_DECREF(fast);
        PyErr_Format(PyExc_ValueError, "at most %d float attributes", max);
        return -1;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        double v = PyFloat_AsDouble(PySequence_Fast_GET_ITEM(fast, i));
        if (v == -1.0 && PyErr_Occurred()) {
            Py_DECREF(fast);
            return -1;
        }
        out[i] = (float)v;
    }
    Py_DECREF(fast);
    return (int)n;
}

/* add_node(op, inputs, variables=(), iattr=(), fattr=()) -> (node, output shape) */
static PyObject *model_add_node(PnModel *self, PyObject *args, PyObject *kw) {
    static char *kwlist[] = {"op", "inputs", "variables", "iattr", "fattr", NULL};
    const char *name;
    PyObject *ins_o, *vars_o = NULL, *iattr_o = NULL, *fattr_o = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "sO|OOO", kwlist, &name, &ins_o, &vars_o, &iattr_o,
                                     &fattr_o))
        return NULL;
    int op = pn_op_find(name);
    if (op <= PN_OP_INPUT) {
        PyErr_Format(PyExc_ValueError, "unknown op '%s'", name);
        return NULL;
    }
    int ins[PN_MAX_INPUTS], vars[PN_MAX_VARS], iattr[PN_MAX_ATTRS] = {0};
    float fattr[PN_MAX_ATTRS] = {0};
    int n_in = parse_ints(ins_o, ins, PN_MAX_INPUTS, "inputs");
    int n_var = n_in < 0 ? -1 : parse_ints(vars_o, vars, PN_MAX_VARS, "variables");
    if (n_in < 0 || n_var < 0 || parse_ints(iattr_o, iattr, PN_MAX_ATTRS, "attributes") < 0 ||
        parse_floats(fattr_o, fattr, PN_MAX_ATTRS) < 0)
        return NULL;
    int node, rc = pn_model_add_node(self->m, op, n_in, ins, n_var, vars, iattr, fattr, &node);
    if (rc) return pn_raise(rc);
    int64_t shape[PN_MAX_DIMS];
    int nd = pn_model_node_shape(self->m, node, shape);
    PyObject *st = shape_tuple(nd, shape);
    if (!st) return NULL;
    return Py_BuildValue("(iN)", node, st);
}

/* add_constant(array) -> node: an unbatched float32 node holding a copy of the array */
static PyObject *model_add_constant(PnModel *self, PyObject *arg) {
    PyArrayObject *a = (PyArrayObject *)PyArray_FROMANY(arg, NPY_FLOAT32, 0, PN_MAX_DIMS,
                                                        NPY_ARRAY_C_CONTIGUOUS | NPY_ARRAY_ALIGNED);
    if (!a) return NULL;
    int64_t shape[PN_MAX_DIMS];
    int nd = PyArray_NDIM(a);
    for (int d = 0; d < nd; d++) shape[d] = (int64_t)PyArray_DIM(a, d);
    int node, rc = pn_model_add_constant(self->m, nd, shape, PyArray_DATA(a), &node);
    Py_DECREF(a);
    return rc ? pn_raise(rc) : PyLong_FromLong(node);
}

static int graph_switch_allowed(PnModel *self) {
    if (!self->running) return 0;
    PyErr_SetString(PyExc_RuntimeError, "the model is running on another thread: a model whose "
                    "input lengths come from the data runs one input shape at a time");
    return -1;
}

/* add_graph() -> id: a new, empty graph over the same variables, now the current one */
static PyObject *model_add_graph(PnModel *self, PyObject *unused) {
    (void)unused;
    if (graph_switch_allowed(self)) return NULL;
    int id, rc = pn_model_add_graph(self->m, &id);
    if (rc) return pn_raise(rc);
    self->g = &self->graphs[id];
    memset(self->g, 0, sizeof *self->g);
    return PyLong_FromLong(id);
}

/* use_graph(id): building and running use graph id */
static PyObject *model_use_graph(PnModel *self, PyObject *arg) {
    int id = (int)PyLong_AsLong(arg);
    if (id == -1 && PyErr_Occurred()) return NULL;
    if (graph_switch_allowed(self)) return NULL;
    int rc = pn_model_use_graph(self->m, id);
    if (rc) return pn_raise(rc);
    self->g = &self->graphs[id];
    Py_RETURN_NONE;
}

/* drop_graph(id): frees a graph that is not the current one */
static PyObject *model_drop_graph(PnModel *self, PyObject *arg) {
    int id = (int)PyLong_AsLong(arg);
    if (id == -1 && PyErr_Occurred()) return NULL;
    int rc = pn_model_drop_graph(self->m, id);
    if (rc) return pn_raise(rc);
    Py_RETURN_NONE;
}

/* One (shape, dtype, unbatched) triple into d; -1 with an exception set. */
static int parse_desc(PyObject *o, pn_shape_desc *d, const char *what) {
    PyObject *shape_o, *unb_o;
    const char *dtype;
    memset(d, 0, sizeof *d);
    if (!PyTuple_Check(o) || !PyArg_ParseTuple(o, "OsO", &shape_o, &dtype, &unb_o)) {
        if (!PyErr_Occurred())
            PyErr_Format(PyExc_TypeError, "%s: expected (shape, dtype, unbatched)", what);
        return -1;
    }
    if ((d->ndim = parse_shape(shape_o, d->shape, what)) < 0) return -1;
    if (strcmp(dtype, "float32") == 0)
        d->dtype = PN_F32;
    else if (strcmp(dtype, "int32") == 0)
        d->dtype = PN_I32;
    else {
        PyErr_Format(PyExc_TypeError, "%s: dtype must be 'float32' or 'int32', got '%s'", what,
                     dtype);
        return -1;
    }
    int u = PyObject_IsTrue(unb_o);
    if (u < 0) return -1;
    d->unbatched = u;
    return 0;
}

/* infer(op, inputs, variables, iattr, fattr) -> (shape, dtype, unbatched): the node the op would
 * make from inputs given as (shape, dtype, unbatched) and variables as shapes (tracing) */
PyObject *pn_py_infer(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    (void)self;
    if (nargs != 5 || !PyUnicode_Check(args[0]))
        return PyErr_Format(PyExc_TypeError, "infer(op, inputs, variables, iattr, fattr)");
    const char *name = PyUnicode_AsUTF8(args[0]);
    if (!name) return NULL;
    int op = pn_op_find(name);
    if (op <= PN_OP_INPUT) return PyErr_Format(PyExc_ValueError, "unknown op '%s'", name);
    pn_shape_desc in[PN_MAX_INPUTS], vars[PN_MAX_VARS], out;
    PyObject *fi = PySequence_Fast(args[1], "inputs must be a sequence");
    if (!fi) return NULL;
    Py_ssize_t n_in = PySequence_Fast_GET_SIZE(fi);
    if (n_in > PN_MAX_INPUTS) {
        Py_DECREF(fi);
        return PyErr_Format(PyExc_ValueError, "%s: at most %d inputs", name, PN_MAX_INPUTS);
    }
    for (Py_ssize_t j = 0; j < n_in; j++)
        if (parse_desc(PySequence_Fast_GET_ITEM(fi, j), &in[j], name) < 0) {
            Py_DECREF(fi);
            return NULL;
        }
    Py_DECREF(fi);
    PyObject *fv = PySequence_Fast(args[2], "variables must be a sequence");
    if (!fv) return NULL;
    Py_ssize_t n_var = PySequence_Fast_GET_SIZE(fv);
    if (n_var > PN_MAX_VARS) {
        Py_DECREF(fv);
        return PyErr_Format(PyExc_ValueError, "%s: at most %d variables", name, PN_MAX_VARS);
    }
    for (Py_ssize_t k = 0; k < n_var; k++) {
        memset(&vars[k], 0, sizeof vars[k]);
        if ((vars[k].ndim = parse_shape(PySequence_Fast_GET_ITEM(fv, k), vars[k].shape, name)) <
            0) {
            Py_DECREF(fv);
            return NULL;
        }
    }
    Py_DECREF(fv);
    int iattr[PN_MAX_ATTRS] = {0};
    float fattr[PN_MAX_ATTRS] = {0};
    if (parse_ints(args[3], iattr, PN_MAX_ATTRS, "attributes") < 0 ||
        parse_floats(args[4], fattr, PN_MAX_ATTRS) < 0)
        return NULL;
    int rc = pn_infer_node(op, (int)n_in, in, (int)n_var, vars, iattr, fattr, &out);
    if (rc) return pn_raise(rc);
    PyObject *st = shape_tuple(out.ndim, out.shape);
    if (!st) return NULL;
    return Py_BuildValue("(NsO)", st, out.dtype == PN_I32 ? "int32" : "float32",
                         out.unbatched ? Py_True : Py_False);
}

/* set_output(node) or set_output([node, ...]): the output nodes, in order */
static PyObject *model_set_output(PnModel *self, PyObject *arg) {
    int nodes[PN_MAX_OUTPUTS], n;
    if (PyList_Check(arg) || PyTuple_Check(arg)) {
        n = parse_ints(arg, nodes, PN_MAX_OUTPUTS, "outputs");
        if (n < 0) return NULL;
    } else {
        n = 1;
        nodes[0] = (int)PyLong_AsLong(arg);
        if (nodes[0] == -1 && PyErr_Occurred()) return NULL;
    }
    int rc = pn_model_set_outputs(self->m, n, nodes);
    if (rc) return pn_raise(rc);
    self->g->n_results = 0;
    Py_RETURN_NONE;
}

/* set_output_masks([node or -1, ...]): per output, the node holding its mask, or -1 */
static PyObject *model_set_output_masks(PnModel *self, PyObject *arg) {
    if (!PyList_Check(arg) && !PyTuple_Check(arg)) {
        PyErr_Format(PyExc_TypeError, "set_output_masks takes a list of nodes (or -1), one per "
                     "output, not %.100s", Py_TYPE(arg)->tp_name);
        return NULL;
    }
    int nodes[PN_MAX_OUTPUTS];
    int n = parse_ints(arg, nodes, PN_MAX_OUTPUTS, "output masks");
    if (n < 0) return NULL;
    int rc = pn_model_set_output_masks(self->m, n, nodes);
    if (rc) return pn_raise(rc);
    self->g->n_results = pn_model_result_count(self->m);
    Py_RETURN_NONE;
}

/* output_masks() -> [node or -1, ...]: per output, its mask node */
static PyObject *model_output_masks(PnModel *self, PyObject *unused) {
    (void)unused;
    int n = pn_model_output_count(self->m);
    PyObject *list = PyList_New(n);
    if (!list) return NULL;
    for (int k = 0; k < n; k++) {
        PyObject *v = PyLong_FromLong(pn_model_output_mask(self->m, k));
        if (!v) {
            Py_DECREF(list);
            return NULL;
        }
        PyList_SET_ITEM(list, k, v);
    }
    return list;
}

/* set_added_losses(nodes): scalar nodes added to the training and test steps' loss */
static PyObject *model_set_added_losses(PnModel *self, PyObject *arg) {
    int nodes[PN_MAX_ADDED_LOSSES];
    int n = parse_ints(arg, nodes, PN_MAX_ADDED_LOSSES, "added losses");
    if (n < 0) return NULL;
    int rc = pn_model_set_added_losses(self->m, n, nodes);
    if (rc) return pn_raise(rc);
    Py_RETURN_NONE;
}

static const char *loss_names[PN_LOSS_COUNT] = {
    [PN_LOSS_MSE] = "mean_squared_error",
    [PN_LOSS_MAE] = "mean_absolute_error",
    [PN_LOSS_BINARY_CE] = "binary_crossentropy",
    [PN_LOSS_CATEGORICAL_CE] = "categorical_crossentropy",
    [PN_LOSS_SPARSE_CE] = "sparse_categorical_crossentropy",
    [PN_LOSS_NONE] = "none", /* a traced loss: the graph's added losses (add_target) */
};

static int find_name(const char *const *names, int n, const char *s) {
    for (int i = 0; i < n; i++)
        if (strcmp(names[i], s) == 0) return i;
    return -1;
}

/* One output's (loss name, from_logits, metric names) into cfg (weight left to the caller). */
static int parse_loss(const char *loss_s, int from_logits, PyObject *metrics_o,
                      pn_loss_config *cfg) {
    int loss = find_name(loss_names, PN_LOSS_COUNT, loss_s);
    if (loss < 0) {
        PyErr_Format(PyExc_ValueError, "unknown loss '%s'", loss_s);
        return -1;
    }
    PyObject *fast = PySequence_Fast(metrics_o, "metrics must be a sequence of metric specs");
    if (!fast) return -1;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(fast);
    if (n > PN_MAX_METRICS) {
        Py_DECREF(fast);
        PyErr_Format(PyExc_ValueError, "at most %d metrics", PN_MAX_METRICS);
        return -1;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        if (pn_parse_metric(PySequence_Fast_GET_ITEM(fast, i), &cfg->metrics[i])) {
            Py_DECREF(fast);
            return -1;
        }
    }
    Py_DECREF(fast);
    cfg->loss = (pn_loss_kind)loss;
    cfg->from_logits = from_logits;
    cfg->n_metrics = (int)n;
    return 0;
}

static PyObject *finish_compile(PnModel *self, const pn_loss_config *cfg) {
    int rc = pn_model_compile_outputs(self->m, cfg);
    if (rc) return pn_raise(rc);
    self->g->n_results = pn_model_result_count(self->m);
    for (int k = 0; k < pn_model_output_count(self->m); k++)
        self->g->y_type[k] = cfg[k].loss == PN_LOSS_SPARSE_CE ? NPY_INT32 : NPY_FLOAT32;
    Py_RETURN_NONE;
}

/* compile(loss, from_logits, metrics): the same loss and metrics for every output, weight 1 */
static PyObject *model_compile(PnModel *self, PyObject *args) {
    const char *loss_s;
    int from_logits;
    PyObject *metrics_o;
    if (!PyArg_ParseTuple(args, "spO", &loss_s, &from_logits, &metrics_o)) return NULL;
    pn_loss_config cfg[PN_MAX_OUTPUTS];
    memset(cfg, 0, sizeof cfg);
    if (parse_loss(loss_s, from_logits, metrics_o, &cfg[0])) return NULL;
    cfg[0].weight = 1.0f;
    for (int k = 1; k < PN_MAX_OUTPUTS; k++) cfg[k] = cfg[0];
    return finish_compile(self, cfg);
}

/* compile_outputs([(loss, from_logits, weight, metrics), ...]): one entry per output */
static PyObject *model_compile_outputs(PnModel *self, PyObject *arg) {
    PyObject *fast = PySequence_Fast(arg, "compile_outputs takes a sequence of tuples");
    if (!fast) return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(fast);
    if (n != pn_model_output_count(self->m)) {
        PyErr_Format(PyExc_ValueError, "compile_outputs: the model has %d outputs, got %zd "
                     "losses", pn_model_output_count(self->m), n);
        Py_DECREF(fast);
        return NULL;
    }
    pn_loss_config cfg[PN_MAX_OUTPUTS];
    memset(cfg, 0, sizeof cfg);
    for (Py_ssize_t k = 0; k < n; k++) {
        const char *loss_s;
        int from_logits;
        float weight;
        PyObject *metrics_o;
        if (!PyArg_ParseTuple(PySequence_Fast_GET_ITEM(fast, k), "spfO", &loss_s, &from_logits,
                              &weight, &metrics_o) ||
            parse_loss(loss_s, from_logits, metrics_o, &cfg[k])) {
            Py_DECREF(fast);
            return NULL;
        }
        cfg[k].weight = weight;
    }
    Py_DECREF(fast);
    return finish_compile(self, cfg);
}

static const char *optim_names[PN_OPTIM_COUNT] = {
    [PN_SGD] = "sgd", [PN_ADAM] = "adam", [PN_ADAMW] = "adamw",
    [PN_RMSPROP] = "rmsprop", [PN_ADAGRAD] = "adagrad", [PN_NADAM] = "nadam",
    [PN_ADAMAX] = "adamax", [PN_ADADELTA] = "adadelta", [PN_LION] = "lion",
    [PN_ADAFACTOR] = "adafactor", [PN_FTRL] = "ftrl", [PN_LAMB] = "lamb", [PN_MUON] = "muon",
    [PN_SCHEDULE_FREE_ADAMW] = "schedule_free_adamw",
};
_Static_assert(PN_OPTIM_COUNT == 14, "name the new optimizer in optim_names");

/* set_optimizer(kind, learning_rate=, momentum=, ...): every field of pn_optim_config by name,
 * Keras's defaults for the others */
static PyObject *model_set_optimizer(PnModel *self, PyObject *args, PyObject *kw) {
    static char *kwlist[] = {
        "kind", "learning_rate", "momentum", "nesterov", "beta_1", "beta_2", "epsilon",
        "amsgrad", "rho", "centered", "initial_accumulator_value", "weight_decay", "clipnorm",
        "global_clipnorm", "clipvalue", "beta_2_decay", "epsilon_1", "epsilon_2",
        "clip_threshold", "learning_rate_power", "l1", "l2", "l2_shrinkage", "beta", "muon_a",
        "muon_b", "muon_c", "adam_lr_ratio", "adam_weight_decay", "rms_rate", "ns_steps",
        "warmup_steps",
        "use_ema", "ema_momentum", "ema_overwrite_frequency", "gradient_accumulation_steps",
        "loss_scale_factor", "dynamic_loss_scale", "initial_scale", "dynamic_growth_steps", NULL};
    const char *kind;
    PyObject *kind_obj = PyTuple_Size(args) > 0 ? PyTuple_GetItem(args, 0) : NULL;
    if (!kind_obj || !PyUnicode_Check(kind_obj))
        return PyErr_Format(PyExc_TypeError, "set_optimizer: kind must be a string");
    const char *name = PyUnicode_AsUTF8(kind_obj);
    if (!name) return NULL;
    int k = find_name(optim_names, PN_OPTIM_COUNT, name);
    if (k < 0) return PyErr_Format(PyExc_ValueError, "unknown optimizer '%U'", kind_obj);
    pn_optim_config c = pn_optim_default((pn_optim_kind)k);
    c.weight_decay = 0.0f; /* off unless given, as Keras's None */
    c.adam_weight_decay = 0.0f;
    if (!PyArg_ParseTupleAndKeywords(
            args, kw, "s|ffpfffpfpffffffffffffffffffffiipfiifpfi", kwlist, &kind, &c.learning_rate,
            &c.momentum, &c.nesterov, &c.beta_1, &c.beta_2, &c.epsilon, &c.amsgrad, &c.rho,
            &c.centered, &c.initial_accumulator_value, &c.weight_decay, &c.clipnorm,
            &c.global_clipnorm, &c.clipvalue, &c.beta_2_decay, &c.epsilon_1, &c.epsilon_2,
            &c.clip_threshold, &c.learning_rate_power, &c.l1, &c.l2, &c.l2_shrinkage, &c.beta,
            &c.muon_a, &c.muon_b, &c.muon_c, &c.adam_lr_ratio, &c.adam_weight_decay,
            &c.rms_rate, &c.ns_steps, &c.warmup_steps, &c.use_ema, &c.ema_momentum, &c.ema_overwrite_frequency,
            &c.gradient_accumulation_steps, &c.loss_scale_factor, &c.dynamic_loss_scale,
            &c.initial_scale, &c.dynamic_growth_steps))
        return NULL;
    int rc = pn_model_set_optimizer(self->m, &c);
    if (rc) return pn_raise(rc);
    Py_RETURN_NONE;
}

/* set_variable_optim(id, flags): a variable's PN_VAR_* flags (1: no weight decay, 2: Muon's
 * AdamW step) */
static PyObject *model_set_variable_optim(PnModel *self, PyObject *args) {
    int id, flags;
    if (!PyArg_ParseTuple(args, "ii", &id, &flags)) return NULL;
    int rc = pn_model_set_variable_optim(self->m, id, flags);
    if (rc) return pn_raise(rc);
    Py_RETURN_NONE;
}

/* set_variable_constraint(id, kind, axes, min_value, max_value, rate): the constraint the core
 * applies to variable id after each update; kind "max_norm", "non_neg", "unit_norm",
 * "min_max_norm" or "none", axes the mask of the axes its norms reduce over */
static PyObject *model_set_variable_constraint(PnModel *self, PyObject *args) {
    static const char *const names[PN_CONSTRAINT_COUNT] = {
        [PN_CONSTRAINT_NONE] = "none", [PN_CONSTRAINT_MAX_NORM] = "max_norm",
        [PN_CONSTRAINT_NON_NEG] = "non_neg", [PN_CONSTRAINT_UNIT_NORM] = "unit_norm",
        [PN_CONSTRAINT_MIN_MAX_NORM] = "min_max_norm"};
    int id;
    const char *name;
    unsigned int axes;
    float lo, hi, rate;
    if (!PyArg_ParseTuple(args, "isIfff", &id, &name, &axes, &lo, &hi, &rate)) return NULL;
    int kind = -1;
    for (int k = 0; k < PN_CONSTRAINT_COUNT; k++)
        if (strcmp(name, names[k]) == 0) kind = k;
    if (kind < 0) return PyErr_Format(PyExc_ValueError, "unknown constraint kind '%s'", name);
    int rc = pn_model_set_variable_constraint(self->m, id, kind, axes, lo, hi, rate);
    if (rc) return pn_raise(rc);
    Py_RETURN_NONE;
}

/* finalize_optimizer(): use_ema's moving averages into the weights */
static PyObject *model_finalize_optimizer(PnModel *self, PyObject *unused) {
    (void)unused;
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = pn_model_optimizer_finalize(self->m);
    Py_END_ALLOW_THREADS
    if (rc) return pn_raise(rc);
    Py_RETURN_NONE;
}

static PyObject *get_learning_rate(PnModel *self, void *closure) {
    (void)closure;
    return PyFloat_FromDouble(pn_model_learning_rate(self->m));
}

static int set_learning_rate(PnModel *self, PyObject *v, void *closure) {
    (void)closure;
    double lr = v ? PyFloat_AsDouble(v) : -1.0;
    if (lr == -1.0 && PyErr_Occurred()) return -1;
    int rc = pn_model_set_learning_rate(self->m, (float)lr);
    if (rc) {
        pn_raise(rc);
        return -1;
    }
    return 0;
}

static PyObject *get_iterations(PnModel *self, void *closure) {
    (void)closure;
    return PyLong_FromLongLong(pn_model_iterations(self->m));
}

static int set_iterations(PnModel *self, PyObject *v, void *closure) {
    (void)closure;
    long long it = v ? PyLong_AsLongLong(v) : -1;
    if (it == -1 && PyErr_Occurred()) {
        if (PyErr_ExceptionMatches(PyExc_OverflowError)) {
            PyErr_Clear();
            PyErr_SetString(PyExc_ValueError, "iterations must be in 0..2^53");
        }
        return -1;
    }
    int rc = pn_model_set_iterations(self->m, it);
    if (rc) {
        pn_raise(rc);
        return -1;
    }
    return 0;
}

static PyObject *model_optimizer_state(PnModel *self, PyObject *unused) {
    (void)unused;
    float *state;
    int64_t n;
    pn_model_optimizer_state(self->m, &state, &n);
    if (!state) return PyArray_SimpleNew(1, (npy_intp[]){0}, NPY_FLOAT32);
    return view_of(self, state, 0, 1, &n);
}

/* The arrays of one argument: one per model input (or output), borrowed for one call. A model
 * with one input takes its array alone (or in a list or tuple of one); several take a list or a
 * tuple with one array each. */
typedef struct {
    int n;
    PyArrayObject *a[PN_MAX_MODEL_INPUTS > PN_MAX_OUTPUTS ? PN_MAX_MODEL_INPUTS : PN_MAX_OUTPUTS];
    pn_tensor t[PN_MAX_MODEL_INPUTS > PN_MAX_OUTPUTS ? PN_MAX_MODEL_INPUTS : PN_MAX_OUTPUTS];
} arrays;

static void release_arrays(arrays *b) {
    for (int k = 0; k < b->n; k++) Py_XDECREF(b->a[k]);
    b->n = 0;
}

static int borrow_arrays(PyObject *o, int n, const int *types, const char *what, const char *noun,
                         arrays *b) {
    b->n = 0;
    int seq = PyList_Check(o) || PyTuple_Check(o);
    if (seq && n == 1 &&
        !(PySequence_Fast_GET_SIZE(o) == 1 && PyArray_Check(PySequence_Fast_GET_ITEM(o, 0))))
        seq = 0; /* one input: a nested list is that input's data */
    if (!seq) {
        if (n != 1) {
            PyErr_Format(PyExc_ValueError, "%s: the model has %d %s, so it takes a list of %d "
                         "arrays, got one array", what, n, noun, n);
            return -1;
        }
        b->a[0] = pn_borrow(o, types[0], what);
        if (!b->a[0]) return -1;
        b->n = 1;
        return pn_view(b->a[0], &b->t[0]);
    }
    Py_ssize_t len = PySequence_Fast_GET_SIZE(o);
    if (len != n) {
        PyErr_Format(PyExc_ValueError, "%s: the model has %d %s, got %zd arrays", what, n, noun,
                     len);
        return -1;
    }
    for (int k = 0; k < n; k++) {
        b->a[k] = pn_borrow(PySequence_Fast_GET_ITEM(o, k), types[k], what);
        if (!b->a[k]) return -1;
        b->n = k + 1;
        if (pn_view(b->a[k], &b->t[k])) return -1;
    }
    return 0;
}

/* Borrowed xs, ys (and idx, sample weights) for one step; released by release_xy. */
typedef struct {
    arrays x, y;
    PyArrayObject *idx;
    PyArrayObject *w[PN_MAX_OUTPUTS]; /* per output: its sample weights, or NULL */
    const float *wp[PN_MAX_OUTPUTS];
    int weighted;
} step_args;

static void release_xy(step_args *a) {
    release_arrays(&a->x);
    release_arrays(&a->y);
    Py_XDECREF(a->idx);
    for (int k = 0; k < PN_MAX_OUTPUTS; k++) Py_XDECREF(a->w[k]);
}

/* sw: None, one array (one output), or a list with None or an array per output; each array a
 * float32 vector of one weight per sample. */
static int borrow_weights(PnModel *self, PyObject *sw, step_args *a) {
    int n = pn_model_output_count(self->m);
    int64_t samples = a->x.t[0].ndim ? a->x.t[0].dims[0] : 0;
    int listed = PyList_Check(sw) || PyTuple_Check(sw);
    if (listed && PySequence_Size(sw) != n) {
        PyErr_Format(PyExc_ValueError, "sample_weight: the model has %d outputs, got %zd "
                     "weight arrays", n, PySequence_Size(sw));
        return -1;
    }
    if (!listed && n != 1) {
        PyErr_Format(PyExc_ValueError, "sample_weight: the model has %d outputs: give a list "
                     "with one weight array (or None) per output", n);
        return -1;
    }
    for (int k = 0; k < n; k++) {
        PyObject *o = listed ? PySequence_GetItem(sw, k) : (Py_INCREF(sw), sw);
        if (!o) return -1;
        if (o != Py_None) {
            a->w[k] = pn_borrow(o, NPY_FLOAT32, "sample_weight");
            if (a->w[k] && (PyArray_SIZE(a->w[k]) != samples)) {
                PyErr_Format(PyExc_ValueError, "sample_weight: %lld weights for %lld samples",
                             (long long)PyArray_SIZE(a->w[k]), (long long)samples);
                Py_CLEAR(a->w[k]);
            }
            if (!a->w[k]) {
                Py_DECREF(o);
                return -1;
            }
            a->wp[k] = PyArray_DATA(a->w[k]);
            a->weighted = 1;
        }
        Py_DECREF(o);
    }
    return 0;
}

static int borrow_xy(PnModel *self, PyObject *xo, PyObject *yo, PyObject *idxo, step_args *a) {
    memset(a, 0, sizeof *a);
    if (self->g->n_inputs < 1 || self->g->n_results < 1) {
        PyErr_SetString(PyExc_RuntimeError, "the model must be compiled before training");
        return -1;
    }
    if (borrow_arrays(xo, self->g->n_inputs, self->g->x_type, "x", "inputs", &a->x)) return -1;
    if (borrow_arrays(yo, pn_model_output_count(self->m), self->g->y_type, "y", "outputs", &a->y))
        return -1;
    if (idxo && idxo != Py_None) {
        a->idx = (PyArrayObject *)PyArray_FROM_OTF(idxo, NPY_INT64, NPY_ARRAY_IN_ARRAY);
        if (!a->idx) return -1;
        if (PyArray_NDIM(a->idx) != 1) {
            PyErr_SetString(PyExc_ValueError, "batch indices must be one-dimensional");
            return -1;
        }
    }
    return 0;
}

typedef int (*step_fn)(pn_model *, const pn_tensor *, const pn_tensor *, const float *const *,
                       const int64_t *, int64_t, float *, float *const *, float *const *);

/* New float32 arrays for the outputs listed in `which` (a sequence of output indices), shaped
 * (batch, output shape...), and for those with a mask, the mask (batch, mask shape...): what
 * the step copies its forward's values into. 0, or -1 with an exception set. */
static int new_outputs(PnModel *self, PyObject *which, int64_t batch, PyArrayObject **out,
                       PyArrayObject **msk, float **outp, float **mskp) {
    int n = pn_model_output_count(self->m);
    PyObject *fast = PySequence_Fast(which, "outputs must be a sequence of output indices");
    if (!fast) return -1;
    for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(fast); i++) {
        long k = PyLong_AsLong(PySequence_Fast_GET_ITEM(fast, i));
        if (k == -1 && PyErr_Occurred()) goto fail;
        if (k < 0 || k >= n) {
            PyErr_Format(PyExc_ValueError, "outputs: no output %ld (the model has %d)", k, n);
            goto fail;
        }
        if (out[k]) continue;
        for (int pass = 0; pass < 2; pass++) {
            int node = pass ? pn_model_output_mask(self->m, (int)k)
                            : pn_model_output_node(self->m, (int)k);
            if (node < 0) continue;
            npy_intp dims[PN_MAX_DIMS + 1];
            int64_t shape[PN_MAX_DIMS];
            int nd = pn_model_node_shape(self->m, node, shape);
            if (nd < 0) {
                pn_raise(nd);
                goto fail;
            }
            dims[0] = (npy_intp)batch;
            for (int d = 0; d < nd; d++) dims[d + 1] = (npy_intp)shape[d];
            PyArrayObject *a = (PyArrayObject *)PyArray_SimpleNew(nd + 1, dims, NPY_FLOAT32);
            if (!a) goto fail;
            (pass ? msk : out)[k] = a;
            (pass ? mskp : outp)[k] = PyArray_DATA(a);
        }
    }
    Py_DECREF(fast);
    return 0;
fail:
    Py_DECREF(fast);
    return -1;
}

/* [array or None per output] from out, stealing the references. */
static PyObject *list_of(PyArrayObject **a, int n) {
    PyObject *l = PyList_New(n);
    for (int k = 0; k < n; k++) {
        PyObject *o = a[k] ? (PyObject *)a[k] : Py_None;
        a[k] = NULL;
        if (!l) {
            if (o != Py_None) Py_DECREF(o);
            continue;
        }
        if (o == Py_None) Py_INCREF(o);
        PyList_SET_ITEM(l, k, o);
    }
    return l;
}

/* train_step / test_step (x, y, idx=None, sample_weight=None, outputs=None) -> float64 array
 * (loss, [output losses...], metric accumulators..., [masked outputs' metric weights...]); with
 * outputs (a sequence of output indices), a tuple (that array, [the batch's values of each
 * listed output, None for the others], [the listed outputs' masks, None where none]): the
 * predictions of the step's own forward, for metrics computed outside the core. */
static PyObject *run_step(PnModel *self, PyObject *const *args, Py_ssize_t nargs, step_fn fn) {
    if (nargs < 2 || nargs > 5) {
        PyErr_SetString(PyExc_TypeError,
                        "expected (x, y, idx=None, sample_weight=None, outputs=None)");
        return NULL;
    }
    step_args a;
    if (borrow_xy(self, args[0], args[1], nargs >= 3 ? args[2] : NULL, &a) ||
        (nargs >= 4 && args[3] != Py_None && borrow_weights(self, args[3], &a))) {
        release_xy(&a);
        return NULL;
    }
    const int64_t *idx = a.idx ? PyArray_DATA(a.idx) : NULL;
    int64_t batch = a.idx ? PyArray_DIM(a.idx, 0) : 0;
    int n_out = pn_model_output_count(self->m);
    PyArrayObject *out[PN_MAX_OUTPUTS] = {NULL}, *msk[PN_MAX_OUTPUTS] = {NULL};
    float *outp[PN_MAX_OUTPUTS] = {NULL}, *mskp[PN_MAX_OUTPUTS] = {NULL};
    int want = nargs == 5 && args[4] != Py_None;
    int64_t rows = a.idx ? batch : (a.x.t[0].ndim ? a.x.t[0].dims[0] : 0);
    if (want && new_outputs(self, args[4], rows, out, msk, outp, mskp)) {
        release_xy(&a);
        for (int k = 0; k < PN_MAX_OUTPUTS; k++) Py_XDECREF(out[k]), Py_XDECREF(msk[k]);
        return NULL;
    }
    float small[64], *results = small;
    if (self->g->n_results > 64 &&
        !(results = PyMem_RawMalloc((size_t)self->g->n_results * sizeof(float)))) {
        release_xy(&a);
        for (int k = 0; k < PN_MAX_OUTPUTS; k++) Py_XDECREF(out[k]), Py_XDECREF(msk[k]);
        return PyErr_NoMemory();
    }
    int rc;
    RUN(self, rc = fn(self->m, a.x.t, a.y.t, a.weighted ? a.wp : NULL, idx, batch, results,
                      want ? outp : NULL, want ? mskp : NULL));
    release_xy(&a);
    PyObject *t = NULL;
    if (rc) {
        pn_raise(rc);
        goto done;
    }
    npy_intp dims[1] = {self->g->n_results};
    t = PyArray_SimpleNew(1, dims, NPY_FLOAT64);
    if (!t) goto done;
    double *d = PyArray_DATA((PyArrayObject *)t);
    for (int i = 0; i < self->g->n_results; i++) d[i] = results[i];
    if (want) {
        PyObject *o = list_of(out, n_out), *mk = list_of(msk, n_out);
        PyObject *r = o && mk ? PyTuple_Pack(3, t, o, mk) : NULL;
        Py_XDECREF(o);
        Py_XDECREF(mk);
        Py_SETREF(t, r);
    }
done:
    for (int k = 0; k < PN_MAX_OUTPUTS; k++) Py_XDECREF(out[k]), Py_XDECREF(msk[k]);
    if (results != small) PyMem_RawFree(results);
    return t;
}

static PyObject *model_train_step(PnModel *self, PyObject *const *args, Py_ssize_t nargs) {
    return run_step(self, args, nargs, pn_model_train_step_outputs);
}

static PyObject *model_test_step(PnModel *self, PyObject *const *args, Py_ssize_t nargs) {
    return run_step(self, args, nargs, pn_model_test_step_outputs);
}

/* A list of the n arrays, or the one array itself when n is 1; steals the references. */
static PyObject *one_or_list(PyArrayObject **a, int n) {
    if (n == 1) return (PyObject *)a[0];
    PyObject *l = PyList_New(n);
    if (!l) {
        for (int k = 0; k < n; k++) Py_DECREF(a[k]);
        return NULL;
    }
    for (int k = 0; k < n; k++) PyList_SET_ITEM(l, k, (PyObject *)a[k]);
    return l;
}

/* gradients(x, y, input_grad=False) -> (loss, dx or [dx per input] or None); parameter
 * gradients in gradient(id) */
static PyObject *model_gradients(PnModel *self, PyObject *args) {
    PyObject *xo, *yo;
    int want_dx = 0;
    if (!PyArg_ParseTuple(args, "OO|p", &xo, &yo, &want_dx)) return NULL;
    step_args a;
    PyArrayObject *dx[PN_MAX_MODEL_INPUTS] = {NULL};
    float *dxp[PN_MAX_MODEL_INPUTS] = {NULL};
    if (borrow_xy(self, xo, yo, NULL, &a)) goto fail;
    for (int k = 0; want_dx && k < a.x.n; k++) {
        dx[k] = (PyArrayObject *)PyArray_NewLikeArray(a.x.a[k], NPY_CORDER, NULL, 0);
        if (!dx[k]) goto fail;
        dxp[k] = PyArray_DATA(dx[k]);
    }
    float loss = 0.0f;
    int rc;
    RUN(self, rc = pn_model_gradients(self->m, a.x.t, a.y.t, &loss, want_dx ? dxp : NULL));
    int n = a.x.n;
    release_xy(&a);
    if (rc) {
        for (int k = 0; k < n; k++) Py_XDECREF(dx[k]);
        return pn_raise(rc);
    }
    if (!want_dx) return Py_BuildValue("(dO)", (double)loss, Py_None);
    PyObject *d = one_or_list(dx, n);
    if (!d) return NULL;
    return Py_BuildValue("(dN)", (double)loss, d);
fail:
    for (int k = 0; k < a.x.n; k++) Py_XDECREF(dx[k]);
    release_xy(&a);
    return NULL;
}

/* predict(x, batch_size) -> a new float32 array (rows, output shape...) owned by the caller, or
 * a list of them, one per output, when the model has several */
static PyObject *predict_batches(PnModel *self, PyObject *xo, long long bs);

static PyObject *model_predict(PnModel *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "expected (x, batch_size)");
        return NULL;
    }
    long long bs = PyLong_AsLongLong(args[1]);
    if (bs == -1 && PyErr_Occurred()) return NULL;
    return predict_batches(self, args[0], bs);
}

/* predict_array(x) -> predict(x, 32) when x is an ndarray (not a subclass) of the model's one
 * input's dtype, in native byte order, with a batch axis and at least one row, for a model with
 * one output; NotImplemented otherwise. Model.predict's latency path: its checks cost ~0.25 us
 * in Python, a few percent of a single-sample predict. */
static PyObject *model_predict_array(PnModel *self, PyObject *x) {
    if (self->g->n_inputs != 1 || pn_model_output_count(self->m) != 1 || !PyArray_CheckExact(x))
        Py_RETURN_NOTIMPLEMENTED;
    PyArrayObject *a = (PyArrayObject *)x;
    if (PyArray_TYPE(a) != self->g->x_type[0] || !PyArray_ISNOTSWAPPED(a) || PyArray_NDIM(a) < 2 ||
        PyArray_DIM(a, 0) < 1)
        Py_RETURN_NOTIMPLEMENTED;
    return predict_batches(self, x, 32);
}

static PyObject *predict_batches(PnModel *self, PyObject *xo, long long bs) {
    int n_out = pn_model_output_count(self->m);
    if (n_out < 1) {
        int64_t shape[PN_MAX_DIMS];
        return pn_raise(pn_model_output_shape(self->m, 0, shape)); /* "no output yet" */
    }
    arrays x;
    PyArrayObject *out[PN_MAX_OUTPUTS] = {NULL};
    float *outp[PN_MAX_OUTPUTS];
    if (borrow_arrays(xo, self->g->n_inputs, self->g->x_type, "x", "inputs", &x)) goto fail;
    for (int k = 0; k < n_out; k++) {
        int64_t shape[PN_MAX_DIMS];
        int nd = pn_model_output_shape(self->m, k, shape);
        if (nd < 0) {
            pn_raise(nd);
            goto fail;
        }
        npy_intp dims[PN_MAX_DIMS + 1];
        dims[0] = x.t[0].ndim ? (npy_intp)x.t[0].dims[0] : 0;
        for (int i = 0; i < nd; i++) dims[i + 1] = (npy_intp)shape[i];
        out[k] = (PyArrayObject *)PyArray_SimpleNew(nd + 1, dims, NPY_FLOAT32);
        if (!out[k]) goto fail;
        outp[k] = PyArray_DATA(out[k]);
    }
    int rc;
    RUN(self, rc = pn_model_predict(self->m, x.t, bs, outp));
    release_arrays(&x);
    if (rc) {
        for (int k = 0; k < n_out; k++) Py_DECREF(out[k]);
        return pn_raise(rc);
    }
    return one_or_list(out, n_out);
fail:
    release_arrays(&x);
    for (int k = 0; k < n_out; k++) Py_XDECREF(out[k]);
    return NULL;
}

/* plan_bytes(batch, training) -> the arena size of that plan, in bytes */
static PyObject *model_plan_bytes(PnModel *self, PyObject *args) {
    long long batch;
    int training = 0;
    if (!PyArg_ParseTuple(args, "L|p", &batch, &training)) return NULL;
    int64_t bytes = 0;
    int rc = pn_model_plan_bytes(self->m, batch, training, &bytes);
    if (rc) return pn_raise(rc);
    return PyLong_FromLongLong(bytes);
}

static PyObject *model_set_seed(PnModel *self, PyObject *arg) {
    unsigned long long seed = PyLong_AsUnsignedLongLongMask(arg);
    if (seed == (unsigned long long)-1 && PyErr_Occurred()) return NULL;
    pn_model_set_seed(self->m, (uint64_t)seed);
    Py_RETURN_NONE;
}

static PyObject *model_set_bf16(PnModel *self, PyObject *arg) {
    int on = PyObject_IsTrue(arg);
    if (on < 0) return NULL;
    return PyBool_FromLong(pn_model_set_bf16(self->m, on));
}

static PyObject *model_node_shape(PnModel *self, PyObject *arg) {
    int node = (int)PyLong_AsLong(arg);
    if (node == -1 && PyErr_Occurred()) return NULL;
    int64_t shape[PN_MAX_DIMS];
    int nd = pn_model_node_shape(self->m, node, shape);
    return nd < 0 ? pn_raise(nd) : shape_tuple(nd, shape);
}

/* output_node(k) -> the node of output k (-1 when there is none) */
static PyObject *model_output_node(PnModel *self, PyObject *arg) {
    int k = (int)PyLong_AsLong(arg);
    if (k == -1 && PyErr_Occurred()) return NULL;
    return PyLong_FromLong(pn_model_output_node(self->m, k));
}

static PyObject *model_node_dtype(PnModel *self, PyObject *arg) {
    int node = (int)PyLong_AsLong(arg);
    if (node == -1 && PyErr_Occurred()) return NULL;
    int d = pn_model_node_dtype(self->m, node);
    return d < 0 ? pn_raise(d) : PyUnicode_FromString(d == PN_I32 ? "int32" : "float32");
}

static PyObject *model_node_unbatched(PnModel *self, PyObject *arg) {
    int node = (int)PyLong_AsLong(arg);
    if (node == -1 && PyErr_Occurred()) return NULL;
    int u = pn_model_node_unbatched(self->m, node);
    return u < 0 ? pn_raise(u) : PyBool_FromLong(u);
}

/* call(x, training) -> Tensor, or a list of one per output: the model run now on x (an array or
 * Tensor, or a list of one per input), recorded on the tape when grad mode is on */
static PyObject *model_call(PnModel *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2) return PyErr_Format(PyExc_TypeError, "call(x, training)");
    int training = PyObject_IsTrue(args[1]);
    if (training < 0) return NULL;
    int n_in = pn_model_input_count(self->m), n_out = pn_model_output_count(self->m);
    if (n_in < 1 || n_out < 1) return PyErr_Format(PyExc_RuntimeError, "the model is not built");
    PyObject *list = PyList_Check(args[0]) || PyTuple_Check(args[0])
                         ? PySequence_Fast(args[0], "x")
                         : NULL;
    Py_ssize_t given = list ? PySequence_Fast_GET_SIZE(list) : 1;
    if (given != n_in) {
        Py_XDECREF(list);
        return PyErr_Format(PyExc_ValueError, "the model has %d inputs, got %zd", n_in, given);
    }
    pn_value *xs[PN_MAX_MODEL_INPUTS], *outs[PN_MAX_OUTPUTS];
    int n = 0, rc = PN_OK;
    for (; n < n_in; n++) {
        PyObject *o = list ? PySequence_Fast_GET_ITEM(list, n) : args[0];
        if (!(xs[n] = pn_tensor_value(o, self->g->x_type[n], "x"))) break;
    }
    Py_XDECREF(list);
    if (n == n_in) rc = pn_model_call(self->m, xs, training, outs);
    for (int k = 0; k < n; k++) pn_value_release(xs[k]);
    if (n != n_in) return NULL;
    if (rc) return pn_raise(rc);
    if (n_out == 1) return pn_tensor_wrap(outs[0]);
    PyObject *res = PyList_New(n_out);
    for (int k = 0; k < n_out; k++) {
        PyObject *t = res ? pn_tensor_wrap(outs[k]) : (pn_value_release(outs[k]), NULL);
        if (res && !t) Py_CLEAR(res);
        if (res) PyList_SET_ITEM(res, k, t);
    }
    return res;
}

/* variable_value(id) -> Tensor over the variable's values and gradient */
static PyObject *model_variable_value(PnModel *self, PyObject *arg) {
    int id = (int)PyLong_AsLong(arg);
    if (id == -1 && PyErr_Occurred()) return NULL;
    pn_value *v = NULL;
    int rc = pn_model_variable_value(self->m, id, &v);
    return rc ? pn_raise(rc) : pn_tensor_wrap(v);
}

static PyObject *model_zero_grads(PnModel *self, PyObject *unused) {
    (void)unused;
    pn_model_zero_grads(self->m);
    Py_RETURN_NONE;
}

/* apply_gradients(ids=None): one optimizer update from the gradient buffer */
static PyObject *model_apply_gradients(PnModel *self, PyObject *const *args, Py_ssize_t nargs) {
    int ids[1024], n = 0;
    if (nargs == 1 && args[0] != Py_None) {
        PyObject *fast = PySequence_Fast(args[0], "ids must be a sequence of ints");
        if (!fast) return NULL;
        Py_ssize_t k = PySequence_Fast_GET_SIZE(fast);
        if (k > 1024) {
            Py_DECREF(fast);
            return PyErr_Format(PyExc_ValueError, "apply_gradients: at most 1024 variables");
        }
        for (Py_ssize_t i = 0; i < k; i++) ids[i] = (int)PyLong_AsLong(PySequence_Fast_GET_ITEM(fast, i));
        Py_DECREF(fast);
        if (PyErr_Occurred()) return NULL;
        n = (int)k;
        if (n == 0) Py_RETURN_NONE;
    }
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = pn_model_apply_gradients(self->m, n, ids);
    Py_END_ALLOW_THREADS
    if (rc) return pn_raise(rc);
    Py_RETURN_NONE;
}

#define FAST(f) (PyCFunction)(void (*)(void))(f), METH_FASTCALL
#define KW(f) (PyCFunction)(void (*)(void))(f), METH_VARARGS | METH_KEYWORDS

static PyMethodDef model_methods[] = {
    {"add_variable", (PyCFunction)model_add_variable, METH_VARARGS,
     "add_variable(shape, trainable=True) -> id"},
    {"alloc", (PyCFunction)model_alloc, METH_NOARGS, "alloc(): place all variables in one buffer"},
    {"variable", (PyCFunction)model_variable, METH_O, "variable(id) -> float32 view of its values"},
    {"write_variables", (PyCFunction)model_write_variables, METH_VARARGS,
     "write_variables(ids, values): copies values in, all under the model's lock"},
    {"read_variables", (PyCFunction)model_read_variables, METH_O,
     "read_variables(ids) -> [array]: copies of the values, taken under the model's lock"},
    {"gradient", (PyCFunction)model_gradient, METH_O, "gradient(id) -> float32 view of its gradient"},
    {"param_count", (PyCFunction)model_param_count, METH_VARARGS, "param_count(trainable_only=False)"},
    {"set_regularizer", (PyCFunction)model_set_regularizer, METH_VARARGS,
     "set_regularizer(var, l1, l2)"},
    {"add_input", (PyCFunction)model_add_input, METH_VARARGS, "add_input(shape, dtype) -> node"},
    {"add_target", (PyCFunction)model_add_target, METH_VARARGS,
     "add_target(k, kind, shape) -> node: output k's targets (kind 0) or sample weights (1)"},
    {"add_node", KW(model_add_node),
     "add_node(op, inputs, variables=(), iattr=(), fattr=()) -> (node, shape)"},
    {"node_shape", (PyCFunction)model_node_shape, METH_O, "node_shape(node) -> tuple"},
    {"set_added_losses", (PyCFunction)model_set_added_losses, METH_O,
     "set_added_losses(nodes): scalar nodes added to the steps' loss (add_loss)"},
    {"add_constant", (PyCFunction)model_add_constant, METH_O,
     "add_constant(array) -> node: an unbatched node holding a copy of the array"},
    {"add_graph", (PyCFunction)model_add_graph, METH_NOARGS,
     "add_graph() -> id: a new empty graph over the same variables, made current"},
    {"use_graph", (PyCFunction)model_use_graph, METH_O, "use_graph(id): make graph id current"},
    {"drop_graph", (PyCFunction)model_drop_graph, METH_O,
     "drop_graph(id): free a graph that is not current and no tape still needs"},
    {"output_node", (PyCFunction)model_output_node, METH_O,
     "output_node(k) -> the node of output k, or -1"},
    {"node_dtype", (PyCFunction)model_node_dtype, METH_O,
     "node_dtype(node) -> 'float32' or 'int32'"},
    {"node_unbatched", (PyCFunction)model_node_unbatched, METH_O,
     "node_unbatched(node) -> bool: the node's value has no batch axis"},
    {"set_output", (PyCFunction)model_set_output, METH_O,
     "set_output(node or [node, ...]): the output nodes"},
    {"set_output_masks", (PyCFunction)model_set_output_masks, METH_O,
     "set_output_masks([node or -1, ...]): per output, the node holding its mask (one float32 "
     "value per row, non-zero keeps it), or -1"},
    {"output_masks", (PyCFunction)model_output_masks, METH_NOARGS,
     "output_masks() -> [node or -1, ...]: per output, its mask node"},
    {"compile", (PyCFunction)model_compile, METH_VARARGS,
     "compile(loss, from_logits, metrics): the same loss for every output"},
    {"compile_outputs", (PyCFunction)model_compile_outputs, METH_O,
     "compile_outputs([(loss, from_logits, weight, metrics), ...]): one per output"},
    {"set_optimizer", KW(model_set_optimizer), "set_optimizer(kind, **config)"},
    {"set_variable_optim", (PyCFunction)model_set_variable_optim, METH_VARARGS,
     "set_variable_optim(id, flags): 1 no weight decay, 2 Muon's AdamW step"},
    {"set_variable_constraint", (PyCFunction)model_set_variable_constraint, METH_VARARGS,
     "set_variable_constraint(id, kind, axes, min_value, max_value, rate): a constraint the "
     "core applies after each update"},
    {"finalize_optimizer", (PyCFunction)model_finalize_optimizer, METH_NOARGS,
     "finalize_optimizer(): use_ema's averages into the weights"},
    {"optimizer_state", (PyCFunction)model_optimizer_state, METH_NOARGS,
     "optimizer_state() -> float32 view of every slot, flat"},
    {"train_step", FAST(model_train_step),
     "train_step(x, y, idx=None, sw=None, outputs=None) -> array [loss, *output_losses, "
     "*metric_accumulators, *masked_outputs_metric_weights]; with outputs (output indices), "
     "(that array, [outputs' values or None], [their masks or None])"},
    {"test_step", FAST(model_test_step),
     "test_step(x, y, idx=None, sw=None, outputs=None) -> as train_step, without the update"},
    {"gradients", (PyCFunction)model_gradients, METH_VARARGS,
     "gradients(x, y, input_grad=False) -> (loss, dx or [dx, ...] or None)"},
    {"predict", FAST(model_predict), "predict(x, batch_size) -> array or [array, ...]"},
    {"predict_array", (PyCFunction)model_predict_array, METH_O,
     "predict_array(x) -> predict(x, 32) for one plain array, else NotImplemented"},
    {"set_seed", (PyCFunction)model_set_seed, METH_O, "set_seed(seed): random ops' stream"},
    {"set_bf16", (PyCFunction)model_set_bf16, METH_O,
     "set_bf16(on) -> bool: nodes added from now on run their matrix products in mixed "
     "precision (bfloat16 operands, float32 sums); returns the setting it replaced"},
    {"call", FAST(model_call), "call(x, training) -> Tensor, recorded on the tape"},
    {"variable_value", (PyCFunction)model_variable_value, METH_O,
     "variable_value(id) -> Tensor over a variable and its gradient"},
    {"zero_grads", (PyCFunction)model_zero_grads, METH_NOARGS, "zero_grads(): all gradients to 0"},
    {"apply_gradients", FAST(model_apply_gradients),
     "apply_gradients(ids=None): an optimizer update from the gradients"},
    {"plan_bytes", (PyCFunction)model_plan_bytes, METH_VARARGS,
     "plan_bytes(batch, training=False) -> bytes of that plan's arena"},
    {NULL, NULL, 0, NULL},
};

/* rng_state: (seed, training forwards so far) of the model's random ops */
static PyObject *get_rng_state(PnModel *self, void *c) {
    (void)c;
    uint64_t seed, forwards;
    pn_model_rng_state(self->m, &seed, &forwards);
    return Py_BuildValue("(KK)", (unsigned long long)seed, (unsigned long long)forwards);
}

static int set_rng_state(PnModel *self, PyObject *value, void *c) {
    (void)c;
    PyObject *so, *fo;
    if (!value || !PyArg_ParseTuple(value, "OO", &so, &fo)) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_TypeError, "rng_state is a tuple (seed, forwards)");
        return -1;
    }
    /* not "KK", which wraps a negative or a too large number silently */
    unsigned long long seed = PyLong_AsUnsignedLongLong(so);
    unsigned long long forwards = PyErr_Occurred() ? 0 : PyLong_AsUnsignedLongLong(fo);
    if (PyErr_Occurred()) {
        if (PyErr_ExceptionMatches(PyExc_OverflowError)) {
            PyErr_Clear();
            PyErr_SetString(PyExc_ValueError, "rng_state: seed and forwards are integers in "
                            "0..2^64-1");
        }
        return -1;
    }
    pn_model_set_rng_state(self->m, (uint64_t)seed, (uint64_t)forwards);
    return 0;
}

static PyGetSetDef model_getset[] = {
    {"rng_state", (getter)get_rng_state, (setter)set_rng_state,
     "(seed, training forwards so far) of the random ops", NULL},
    {"learning_rate", (getter)get_learning_rate, (setter)set_learning_rate, "learning rate", NULL},
    {"iterations", (getter)get_iterations, (setter)set_iterations, "optimizer steps taken", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

PyTypeObject PnModelType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "pynn._core.Model",
    .tp_basicsize = sizeof(PnModel),
    .tp_dealloc = (destructor)model_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "A model in the C core: variables, graph, loss, optimizer, plans.",
    .tp_methods = model_methods,
    .tp_getset = model_getset,
    .tp_new = model_new,
};
