"""Input: the symbolic placeholder a model starts from."""

from .base import Layer


class KerasTensor:
    """A symbolic tensor: a shape (batch axis None), the layer that produced it and the tensors
    that layer was called on (none for an Input): the graph a functional Model is made of."""

    def __init__(self, shape, dtype: str = "float32", name: str | None = None, layer=None,
                 inputs=()):
        self.shape = tuple(shape)
        self.dtype = dtype
        self.name = name
        self._layer = layer
        self._inputs = tuple(inputs)
        self._call_spec = None  # a call with named tensors: {names, options} (Layer._call_named)
        # a call with several outputs (an LSTM's [output, h, c]) makes one tensor per output:
        # this one is output _index, and _siblings lists them all (the first stands for the call)
        self._index = 0
        self._siblings = None
        # a value of weights and constants only (in a traced call): no batch axis, `shape` is
        # the whole tensor's
        self._unbatched = False
        # the batch size an Input fixed (Input(batch_size=...)), passed on to the tensors made
        # from it: what a stateful recurrent layer builds its states for. The batch axis of
        # `shape` stays None: the core runs any batch size.
        self._batch_size = next((i._batch_size for i in self._inputs
                                 if getattr(i, "_batch_size", None)), None)

    @property
    def _call(self) -> "KerasTensor":
        """The tensor that stands for the layer call that made this one."""
        return self._siblings[0] if self._siblings else self

    @property
    def ndim(self) -> int:
        return len(self.shape)

    # -- operators: pynn.ops on symbolic tensors ----------------------------------------------
    __array_ufunc__ = None  # NumPy defers to the reflected operators below (array + tensor)

    def __add__(self, other):
        """`a + b`: two tensors of one shape make an Add layer's call, as Keras records it;
        other operands (broadcasting, numbers, weights) an op."""
        if isinstance(other, KerasTensor) and other.shape == self.shape and \
                not self._unbatched and not other._unbatched and self.dtype == other.dtype \
                == "float32":
            from .merging import Add
            return Add()([self, other])
        from .. import ops
        return ops.add(self, other)

    def __radd__(self, other):
        from .. import ops
        return ops.add(other, self)

    def __sub__(self, other):
        from .. import ops
        return ops.subtract(self, other)

    def __rsub__(self, other):
        from .. import ops
        return ops.subtract(other, self)

    def __mul__(self, other):
        from .. import ops
        return ops.multiply(self, other)

    def __rmul__(self, other):
        from .. import ops
        return ops.multiply(other, self)

    def __truediv__(self, other):
        from .. import ops
        return ops.divide(self, other)

    def __rtruediv__(self, other):
        from .. import ops
        return ops.divide(other, self)

    def __pow__(self, other):
        from .. import ops
        return ops.power(self, other)

    def __rpow__(self, other):
        from .. import ops
        return ops.power(other, self)

    def __matmul__(self, other):
        from .. import ops
        return ops.matmul(self, other)

    def __rmatmul__(self, other):
        from .. import ops
        return ops.matmul(other, self)

    def __neg__(self):
        from .. import ops
        return ops.negative(self)

    def __pos__(self):
        return self

    def __abs__(self):
        from .. import ops
        return ops.abs(self)

    def __getitem__(self, key):
        from .. import ops
        return ops.core._getitem(self, key)

    def __bool__(self):
        from .tracing import where
        raise TypeError(f"A symbolic tensor{where()} has no value yet, so Python cannot branch "
                        "on it (if/while/and/or): pynn traces call() once when the model is "
                        "built. Use pynn.ops.where for a choice per element.")

    def __len__(self):
        if not self.shape or self.shape[0] is None:
            raise TypeError("len() of a symbolic tensor whose first axis is the batch is unknown "
                            "until it runs")
        return self.shape[0]

    def __iter__(self):
        raise TypeError("a symbolic tensor cannot be iterated over: index it (x[:, 0]) or use "
                        "pynn.ops.unstack")

    def __array__(self, *args, **kwargs):
        from .tracing import where
        raise TypeError(f"A symbolic tensor{where()} has no values to convert to a NumPy array: "
                        "use pynn.ops functions on it (they are recorded and run in the model)")

    @property
    def T(self):
        from .. import ops
        return ops.transpose(self)

    def numpy(self):
        self.__array__()

    def __repr__(self):
        return f"<KerasTensor shape={self.shape}, dtype={self.dtype}, name={self.name}>"


class InputLayer(Layer):
    """The input of a model: its per-sample shape and dtype.

    Args:
        shape: the shape of one sample (without the batch axis).
        batch_size: the batch size, fixed (or None): what a stateful recurrent layer keeps its
            states for; the model's other layers run any batch size.
        dtype: 'float32', or 'int32' for indices.
    """

    dtype = "float32"  # the input's own ("float32" or "int32"), not a policy's

    def __init__(self, shape=None, batch_size=None, dtype=None, name: str | None = None,
                 **kwargs):
        batch_shape = kwargs.pop("batch_shape", None)
        input_shape = kwargs.pop("input_shape", None)
        super().__init__(name=name, **kwargs)
        if batch_shape is not None:
            if not isinstance(batch_shape, (list, tuple)) or not batch_shape:
                raise ValueError(f"Input: batch_shape must be a tuple (batch, *shape), got "
                                 f"{batch_shape!r}")
            if shape is not None or batch_size is not None:
                raise ValueError("Input: pass either batch_shape, or shape and batch_size")
            batch_size, shape = batch_shape[0], tuple(batch_shape)[1:]
        if batch_size is not None and (isinstance(batch_size, bool) or
                                       not isinstance(batch_size, int) or batch_size <= 0):
            raise ValueError(f"Input: batch_size must be a positive int or None, got "
                             f"{batch_size!r}")
        if shape is None:
            shape = input_shape
        if shape is None:
            raise ValueError("Input: pass `shape`, the shape of one sample")
        if isinstance(shape, int):
            shape = (shape,)
        shape = tuple(shape)
        if not shape or any(d is not None and (isinstance(d, bool) or not isinstance(d, int)
                                                or d <= 0) for d in shape):
            raise ValueError(f"Input: shape must be positive ints or None (a length known only "
                             f"from the data; batch axis excluded), got {shape}")
        dtype = dtype or "float32"
        if str(dtype) in ("str", "object"):
            dtype = "string"
        if str(dtype) == "int64":  # Keras's index type: pynn's core takes indices as int32
            dtype = "int32"
        if str(dtype) not in ("float32", "int32", "string"):
            raise ValueError(f"Input: dtype must be 'float32', 'int32' or 'string' (for "
                             f"TextVectorization and the lookup layers), got {dtype}")
        self.sample_shape = shape
        self.batch_size = batch_size
        self.dtype = str(dtype)
        self._output = KerasTensor((None,) + shape, self.dtype, self.name, self)
        self._output._batch_size = batch_size
        self.built = True

    @property
    def batch_shape(self) -> tuple:
        return (self.batch_size,) + tuple(self.sample_shape)

    def lower(self, core, node: int) -> int:
        return node  # the model's input node itself

    @property
    def output(self):
        """The symbolic tensor this input stands for (what `pynn.Input` returns)."""
        return self._output

    def get_config(self):
        return {"name": self.name, "batch_shape": self.batch_shape, "dtype": self.dtype}


def Input(shape=None, batch_size=None, dtype=None, name: str | None = None, batch_shape=None,
          **kwargs) -> KerasTensor:
    """A symbolic input of per-sample `shape`, to start a model.

    Example:
        >>> x = pynn.Input(shape=(784,))
        >>> x.shape
        (None, 784)
    """
    return InputLayer(shape=shape, batch_size=batch_size, dtype=dtype, name=name,
                      batch_shape=batch_shape, **kwargs).output
