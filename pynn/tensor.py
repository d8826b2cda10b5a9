"""pynn.Tensor: the values of the imperative path, and the tape's controls.

A Tensor is made by calling a model or a layer on data, by an operation on Tensors, or directly
(`pynn.Tensor(array, requires_grad=True)`). Each operation runs in the C core at once and, when an
input requires a gradient, records itself on the tape; `loss.backward()` then accumulates the
gradient of every leaf that requires one (a model's weights, a Tensor made with
requires_grad=True). NumPy reads a Tensor without a copy (`np.asarray(t)` is a read-only view).

Example:
    >>> w = pynn.Tensor(np.ones(3, np.float32), requires_grad=True)
    >>> loss = (w * w).sum()
    >>> loss.backward()
    >>> w.grad
    array([2., 2., 2.], dtype=float32)
"""

import threading

import numpy as np

from . import _core

# the core's math ops, by the names its tables give them (eager_math.c)
ADD, SUB, MUL, DIV, MAXIMUM, MINIMUM, POW = ("add", "subtract", "multiply", "divide", "maximum",
                                             "minimum", "power")
NEG, EXP, LOG, SQRT, ABS, SQUARE, RELU, SIGMOID, TANH = ("negative", "exp", "log", "sqrt", "abs",
                                                         "square", "relu", "sigmoid", "tanh")
SUM, MEAN, MAX, MIN = "sum", "mean", "max", "min"


class Tensor(_core.Tensor):
    """A float32 (or int32) tensor that remembers the operations that made it.

    Args:
        value: an array, a nested list or a number (copied).
        requires_grad: whether backward computes this tensor's gradient.

    Attributes:
        shape, ndim, size, dtype: as NumPy's.
        grad: the gradient accumulated by backward (a read-only array), or None.
        requires_grad: whether a gradient is computed for it.
    """

    # _keras_mask: Keras's mask of a layer's output on data (Embedding(mask_zero=True),
    # Masking, and the layers passing one on): the next layer called on it uses it
    __slots__ = ("_keras_mask",)
    __array_priority__ = 1000  # ndarray <op> Tensor calls the Tensor's reflected operator

    # -- arithmetic (a layer's weight as the other operand is read as its leaf Tensor, so the
    # gradient reaches it) ------------------------------------------------------------------------
    def __add__(self, other):
        return _core.binary(ADD, self, _leaf(other))

    def __radd__(self, other):
        return _core.binary(ADD, _leaf(other), self)

    def __sub__(self, other):
        return _core.binary(SUB, self, _leaf(other))

    def __rsub__(self, other):
        return _core.binary(SUB, _leaf(other), self)

    def __mul__(self, other):
        return _core.binary(MUL, self, _leaf(other))

    def __rmul__(self, other):
        return _core.binary(MUL, _leaf(other), self)

    def __truediv__(self, other):
        return _core.binary(DIV, self, _leaf(other))

    def __rtruediv__(self, other):
        return _core.binary(DIV, _leaf(other), self)

    def __pow__(self, other):
        if isinstance(other, (int, float)) and other == 2:
            return _core.unary(SQUARE, self)
        return _core.binary(POW, self, _leaf(other))

    def __rpow__(self, other):
        return _core.binary(POW, _leaf(other), self)

    def __matmul__(self, other):
        return _core.matmul(self, _leaf(other))

    def __rmatmul__(self, other):
        return _core.matmul(_leaf(other), self)

    def __neg__(self):
        return _core.unary(NEG, self)

    def __pos__(self):
        return self

    def __abs__(self):
        return _core.unary(ABS, self)

    # comparisons give NumPy booleans: they have no gradient
    def __lt__(self, other):
        return np.asarray(self) < _plain(other)

    def __le__(self, other):
        return np.asarray(self) <= _plain(other)

    def __gt__(self, other):
        return np.asarray(self) > _plain(other)

    def __ge__(self, other):
        return np.asarray(self) >= _plain(other)

    def __eq__(self, other):
        return np.asarray(self) == _plain(other)

    def __ne__(self, other):
        return np.asarray(self) != _plain(other)

    __hash__ = object.__hash__

    # -- reductions and shape -------------------------------------------------------------------
    def sum(self, axis=None, keepdims: bool = False):
        return _core.reduce(SUM, self, axis, keepdims)

    def mean(self, axis=None, keepdims: bool = False):
        return _core.reduce(MEAN, self, axis, keepdims)

    def max(self, axis=None, keepdims: bool = False):
        return _core.reduce(MAX, self, axis, keepdims)

    def min(self, axis=None, keepdims: bool = False):
        return _core.reduce(MIN, self, axis, keepdims)

    def argmax(self, axis=None) -> np.ndarray:
        """Indices of the maxima (a NumPy array: it has no gradient)."""
        return np.asarray(self).argmax(axis)

    def argmin(self, axis=None) -> np.ndarray:
        return np.asarray(self).argmin(axis)

    def exp(self):
        return _core.unary(EXP, self)

    def log(self):
        return _core.unary(LOG, self)

    def sqrt(self):
        return _core.unary(SQRT, self)

    def reshape(self, *shape):
        shape = shape[0] if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape
        return _core.reshape(self, _resolve_shape(tuple(int(d) for d in shape), self.size))

    def transpose(self, *axes):
        axes = axes[0] if len(axes) == 1 and isinstance(axes[0], (tuple, list)) else axes
        if not axes:
            axes = tuple(range(self.ndim))[::-1]
        return _core.transpose(self, tuple(a % self.ndim if self.ndim else a for a in axes))

    @property
    def T(self):
        return self.transpose()

    def __getitem__(self, key):
        return _core.slice(self, *_slice_args(key, self.shape))

    def __len__(self) -> int:
        if self.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self.shape[0]

    def __iter__(self):
        for i in range(len(self)):
            yield self[i]

    # -- values ---------------------------------------------------------------------------------
    def item(self):
        if self.size != 1:
            raise ValueError(f"item(): the tensor holds {self.size} values, not one")
        return np.asarray(self).reshape(()).item()

    def __float__(self) -> float:
        return float(self.item())

    def __int__(self) -> int:
        return int(self.item())

    def __bool__(self) -> bool:
        return bool(self.item())

    def __format__(self, spec: str) -> str:
        return format(self.item(), spec) if self.size == 1 else format(str(self), spec)

    def detach(self) -> "Tensor":
        """A copy of the values that records nothing and needs no gradient."""
        return Tensor(np.asarray(self))

    def __reduce__(self):
        """pickle, copy.copy and copy.deepcopy: a new leaf Tensor of the same dtype, shape, values
        and requires_grad (without the operation that made this one, or its gradient). The
        pickle holds them as plain data: the values as raw little-endian bytes (see
        pynn.saving)."""
        from . import saving
        a = np.asarray(self)
        return saving._unpickle_tensor, (a.dtype.name, a.shape,
                                         a.astype(a.dtype.newbyteorder("<")).tobytes(),
                                         self.requires_grad)

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        """np.exp(t), np.add(a, t), ...: the ufuncs pynn has run on the tape; the others on the
        values, as NumPy arrays (without gradient)."""
        fn = _UFUNCS.get(ufunc.__name__) if method == "__call__" and not kwargs else None
        if fn is not None and len(inputs) == fn[1]:
            return fn[0](*inputs)
        plain = [np.asarray(i) if isinstance(i, Tensor) else i for i in inputs]
        return getattr(ufunc, method)(*plain, **kwargs)

    def __repr__(self) -> str:
        op = self._op
        extra = f", grad_fn={op}" if op else (", requires_grad=True" if self.requires_grad
                                              else "")
        body = np.array2string(np.asarray(self), separator=", ", prefix="pynn.Tensor(")
        return f"pynn.Tensor({body}, dtype={self.dtype}{extra})"

    __str__ = __repr__


_core.set_tensor_class(Tensor)

_UFUNCS = {
    "add": (lambda a, b: _core.binary(ADD, a, b), 2),
    "subtract": (lambda a, b: _core.binary(SUB, a, b), 2),
    "multiply": (lambda a, b: _core.binary(MUL, a, b), 2),
    "true_divide": (lambda a, b: _core.binary(DIV, a, b), 2),
    "divide": (lambda a, b: _core.binary(DIV, a, b), 2),
    "power": (lambda a, b: _core.binary(POW, a, b), 2),
    "maximum": (lambda a, b: _core.binary(MAXIMUM, a, b), 2),
    "minimum": (lambda a, b: _core.binary(MINIMUM, a, b), 2),
    "matmul": (lambda a, b: _core.matmul(a, b), 2),
    "negative": (lambda a: _core.unary(NEG, a), 1),
    "exp": (lambda a: _core.unary(EXP, a), 1),
    "log": (lambda a: _core.unary(LOG, a), 1),
    "sqrt": (lambda a: _core.unary(SQRT, a), 1),
    "absolute": (lambda a: _core.unary(ABS, a), 1),
    "square": (lambda a: _core.unary(SQUARE, a), 1),
    "tanh": (lambda a: _core.unary(TANH, a), 1),
}


def _plain(x):
    return np.asarray(x) if isinstance(x, Tensor) else x


def _resolve_shape(shape: tuple, size: int) -> tuple:
    """A reshape target with at most one -1 filled in, as NumPy does."""
    if shape.count(-1) > 1:
        raise ValueError("reshape: only one dimension can be -1")
    if -1 in shape:
        known = int(np.prod([d for d in shape if d != -1], dtype=np.int64))
        if known == 0 or size % known:
            raise ValueError(f"reshape: cannot reshape a tensor of {size} values into {shape}")
        shape = tuple(size // known if d == -1 else d for d in shape)
    return shape


def _slice_args(key, shape: tuple):
    """(starts, steps, counts, drop mask) of a basic index: ints, slices and one Ellipsis."""
    key = key if isinstance(key, tuple) else (key,)
    if any(k is None or isinstance(k, (list, np.ndarray, Tensor)) or
           (not isinstance(k, (int, np.integer, slice)) and k is not Ellipsis) for k in key):
        raise TypeError("Tensor indexing takes integers, slices and '...'; for other indexing "
                        "use np.asarray(t)[...] (without gradient)")
    if sum(k is Ellipsis for k in key) > 1:
        raise IndexError("an index can only have a single ellipsis ('...')")
    n_real = sum(k is not Ellipsis for k in key)
    if n_real > len(shape):
        raise IndexError(f"too many indices for a tensor of rank {len(shape)}")
    if Ellipsis in key:
        i = key.index(Ellipsis)
        key = key[:i] + (slice(None),) * (len(shape) - n_real) + key[i + 1:]
    key = key + (slice(None),) * (len(shape) - len(key))
    starts, steps, counts, drop = [], [], [], 0
    for axis, (k, dim) in enumerate(zip(key, shape)):
        if isinstance(k, slice):
            start, stop, step = k.indices(dim)
            starts.append(start)
            steps.append(step)
            counts.append(len(range(start, stop, step)))
        else:
            i = int(k)
            if not -dim <= i < dim:
                raise IndexError(f"index {i} is out of bounds for axis {axis} with size {dim}")
            starts.append(i % dim)
            steps.append(1)
            counts.append(1)
            drop |= 1 << axis
    return starts, steps, counts, drop


# -- the tape's controls ---------------------------------------------------------------------------
_state = threading.local()


def _leaf(value):
    """A layer's weight (a Variable) as its leaf Tensor; anything else as it is."""
    if isinstance(value, np.ndarray) and hasattr(value, "_tensor"):
        return value._tensor()
    return value


def _taping() -> bool:
    """Whether a GradientTape is open on this thread."""
    return getattr(_state, "tapes", 0) > 0


class no_grad:
    """A context (or decorator) in which operations record nothing, as torch.no_grad.

    Example:
        >>> with pynn.no_grad():
        ...     logits = model(x)
    """

    def __enter__(self):
        self._was = _core.set_grad_enabled(False)
        return self

    def __exit__(self, *exc):
        _core.set_grad_enabled(self._was)
        return False

    def __call__(self, fn):
        def wrapper(*args, **kwargs):
            with no_grad():
                return fn(*args, **kwargs)
        wrapper.__wrapped__ = fn
        return wrapper


class GradientTape:
    """Records the operations run inside it, then gives the gradient of a result with respect
    to variables or tensors, as TensorFlow's tf.GradientTape does.

    Inside a tape a model called with training=False records too (outside one, only training=True
    calls and operations on tensors that require a gradient record).

    Example:
        >>> with pynn.GradientTape() as tape:
        ...     logits = model(x, training=True)
        ...     loss = loss_fn(y, logits)
        >>> grads = tape.gradient(loss, model.trainable_weights)
        >>> optimizer.apply(grads, model.trainable_weights)
    """

    def __init__(self, persistent: bool = False, watch_accessed_variables: bool = True):
        self.persistent = persistent
        self._used = False
        self._watched: list = []

    def __enter__(self):
        _state.tapes = getattr(_state, "tapes", 0) + 1
        self._was = _core.set_grad_enabled(True)
        return self

    def __exit__(self, *exc):
        _state.tapes -= 1
        _core.set_grad_enabled(self._was)
        return False

    def watch(self, tensor) -> None:
        """Makes a leaf tensor require a gradient, so operations on it are recorded."""
        for t in tensor if isinstance(tensor, (list, tuple)) else [tensor]:
            if not isinstance(t, Tensor):
                raise TypeError(f"GradientTape.watch: expects a pynn.Tensor, got "
                                f"{type(t).__name__}")
            t.requires_grad = True
            self._watched.append(t)

    def gradient(self, target, sources, output_gradients=None):
        """The gradients of `target` with respect to each of `sources`.

        Args:
            target: a Tensor recorded inside the tape (usually the scalar loss).
            sources: a Variable or Tensor, or a list (or tuple or dict) of them.
            output_gradients: target's own gradient when it is not a scalar.

        Returns:
            Tensors shaped like the sources, in the same structure; None for a source the
            target does not depend on.
        """
        from .layers.base import Variable

        if self._used and not self.persistent:
            raise RuntimeError("GradientTape.gradient can only be called once on a "
                               "non-persistent tape")
        if not isinstance(target, Tensor):
            raise TypeError(f"GradientTape.gradient: target must be a pynn.Tensor, got "
                            f"{type(target).__name__}")
        if isinstance(sources, dict):
            keys, flat = list(sources), list(sources.values())
        else:
            keys = None
            flat = list(sources) if isinstance(sources, (list, tuple)) else [sources]
        leaves = []
        for s in flat:
            if isinstance(s, Variable):
                leaves.append(s._tensor())
            elif isinstance(s, Tensor):
                leaves.append(s)
            else:
                raise TypeError(f"GradientTape.gradient: sources must be Variables or Tensors, "
                                f"got {type(s).__name__}")
        # fresh gradients: every buffer a source reads from starts at zero
        for leaf in leaves:
            leaf._zero_grad()
        for core in {id(s._owner_core()): s._owner_core() for s in flat
                     if isinstance(s, Variable) and s._owner_core() is not None}.values():
            core.zero_grads()
        self._used = True
        if not target.requires_grad:  # the target does not depend on any source
            grads = [None] * len(leaves)
            if keys is not None:
                return dict(zip(keys, grads))
            return grads if isinstance(sources, (list, tuple)) else grads[0]
        target.backward(output_gradients)
        grads = [Tensor(leaf.grad) if leaf.grad is not None and leaf.requires_grad else None
                 for leaf in leaves]
        if keys is not None:
            return dict(zip(keys, grads))
        return grads if isinstance(sources, (list, tuple)) else grads[0]
