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

    @property
    def _call(self) -> "KerasTensor":
        """The tensor that stands for the layer call that made this one."""
        return self._siblings[0] if self._siblings else self

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __add__(self, other):
        """`a + b` of two tensors: an Add layer's call, as Keras records it."""
        if not isinstance(other, KerasTensor):
            return NotImplemented
        from .merging import Add
        return Add()([self, other])

    def __repr__(self):
        return f"<KerasTensor shape={self.shape}, dtype={self.dtype}, name={self.name}>"


class InputLayer(Layer):
    """The input of a model: its per-sample shape and dtype.

    Args:
        shape: the shape of one sample (without the batch axis).
        batch_size: accepted for Keras compatibility; the batch axis is always open.
        dtype: 'float32', or 'int32' for indices.
    """

    def __init__(self, shape=None, batch_size=None, dtype=None, name: str | None = None,
                 **kwargs):
        batch_shape = kwargs.pop("batch_shape", None)
        input_shape = kwargs.pop("input_shape", None)
        super().__init__(name=name, **kwargs)
        if shape is None and batch_shape is not None:
            shape = tuple(batch_shape)[1:]
        if shape is None:
            shape = input_shape
        if shape is None:
            raise ValueError("Input: pass `shape`, the shape of one sample")
        if isinstance(shape, int):
            shape = (shape,)
        shape = tuple(shape)
        if not shape or any(d is None or isinstance(d, bool) or not isinstance(d, int) or d <= 0
                            for d in shape):
            raise ValueError(f"Input: shape must be positive ints (batch axis excluded), "
                             f"got {shape}")
        dtype = dtype or "float32"
        if str(dtype) not in ("float32", "int32"):
            raise ValueError(f"Input: dtype must be 'float32' or 'int32', got {dtype}")
        self.sample_shape = shape
        self.dtype = str(dtype)
        self._output = KerasTensor((None,) + shape, self.dtype, self.name, self)
        self.built = True


    def lower(self, core, node: int) -> int:
        return node  # the model's input node itself

    @property
    def output(self):
        """The symbolic tensor this input stands for (what `pynn.Input` returns)."""
        return self._output
    def get_config(self):
        return {"name": self.name, "batch_shape": (None,) + tuple(self.sample_shape),
                "dtype": self.dtype}


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
