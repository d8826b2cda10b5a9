"""Sequential: a plain stack of layers, each with one input and one output."""

from ..layers.base import Layer, unique_name
from ..layers.input_layer import InputLayer, KerasTensor
from . import host
from .model import Model


class Sequential(Model):
    """A linear stack of layers.

    Args:
        layers: layers to add in order; may start with `pynn.Input(shape)`.
        name: the model's name.

    Example:
        >>> model = pynn.Sequential([pynn.Input(shape=(4,)), pynn.layers.Dense(1)])
        >>> model.add(pynn.layers.Activation("sigmoid"))
    """

    def __init__(self, layers=None, trainable: bool = True, name: str | None = None):
        super().__init__(name=name or unique_name("sequential"), trainable=trainable)
        self._stack: list[Layer] = []
        self._sample_shape = None
        names: set[str] = set()  # the stack's names, so each uniqueness check is one lookup
        for layer in layers or []:
            self._append(layer, names)
        self._maybe_build()

    def add(self, layer, rebuild: bool = True) -> None:
        """Appends a layer (or an Input) to the stack."""
        if self._append(layer, {existing.name for existing in self._stack}) and rebuild:
            self._core = None
            self._maybe_build()

    def _append(self, layer, names: set) -> bool:
        """add() without the rebuild: checks `layer` against `names` (the stack's names, which
        it extends); returns whether a layer, not an Input, was appended."""
        if isinstance(layer, KerasTensor):
            layer = layer._layer
        if isinstance(layer, InputLayer):
            if self._stack or self._sample_shape is not None:
                raise ValueError("Sequential: an Input can only come first")
            self._sample_shape = layer.sample_shape
            self._batch_size = layer.batch_size  # a stateful layer's batch size, or None
            self._input_dtype = layer.dtype
            self._input_tensor = layer.output
            return False
        if not isinstance(layer, Layer):
            raise TypeError(f"Sequential.add: expected a pynn layer, got {type(layer).__name__}")
        if layer.name in names:
            raise ValueError(f"All layers added to a Sequential model should have unique names. "
                             f"Name '{layer.name}' is already the name of a layer in this model.")
        if not self._stack and self._sample_shape is None and layer._input_shape_arg:
            self._sample_shape = layer._input_shape_arg
        self._stack.append(layer)
        names.add(layer.name)
        return True

    def pop(self, rebuild: bool = True) -> Layer:
        """Removes and returns the last layer."""
        if not self._stack:
            raise TypeError("There are no layers in the model.")
        layer = self._stack.pop()
        self._core = None
        if rebuild:
            self._maybe_build()
        return layer

    def _maybe_build(self) -> None:
        if self._sample_shape is not None and self._stack:
            self._build_core(self._sample_shape)

    def _build_core(self, sample_shape) -> None:
        self._sample_shape = tuple(sample_shape)
        self._host = self._host_stage()
        super()._build_core(sample_shape)
        self._symbolic = None  # the stack's graph, made again for `input`, `output`
        self._graph()

    # -- the stack as a graph: model.input/output and each layer's input/output, as Keras 3's
    # Sequential (a functional graph once its input is known) gives them ---------------------
    def _graph(self) -> tuple:
        g = vars(self).get("_symbolic")
        if g is not None:
            return g
        if self._sample_shape is None:
            raise AttributeError(f"Sequential model '{self.name}' has no defined input yet: give "
                                 "it an Input, or call it on data first")
        from ..layers.input_layer import Input
        x = vars(self).get("_input_tensor")
        if x is None or tuple(x.shape[1:]) != tuple(self._sample_shape):
            x = self._input_tensor = Input(shape=self._sample_shape,
                                           batch_size=vars(self).get("_batch_size"),
                                           dtype=getattr(self, "_input_dtype", "float32"))
        y = x
        for layer in self._stack:
            y = layer(y)
        self._symbolic = (x, y)
        return self._symbolic

    @property
    def input(self):
        return self._graph()[0]

    @property
    def output(self):
        return self._graph()[1]

    @property
    def inputs(self) -> list:
        return [self._graph()[0]]

    @property
    def outputs(self) -> list:
        return [self._graph()[1]]

    def _host_stage(self):
        """The host layers that start the stack (TextVectorization ...; host.py), or None."""
        if not any(host.is_host(layer) for layer in self._stack) and \
                vars(self).get("_input_dtype", "float32") != "string":
            return None
        self._symbolic = None
        x, y = self._graph()
        calls = []
        while y is not x:
            calls.append(y)
            y = y._inputs[0]
        stage = host.split([x], calls[::-1])
        if stage is not None and any(d is None for d in stage.sources[0].shape[1:]):
            raise ValueError(f"Sequential model '{self.name}': its host layers make "
                             f"{stage.sources[0].shape}, of a length known only from the data; "
                             "give TextVectorization an output_sequence_length, or use the "
                             "functional API")
        return stage

    def _input_sample_shapes(self, sample_shape: tuple) -> list[tuple]:
        if vars(self).get("_host") is not None:
            return [tuple(self._host.sources[0].shape[1:])]
        return super()._input_sample_shapes(sample_shape)

    def _lower_model(self, core, sample_shape: tuple) -> list[int]:
        if vars(self).get("_host") is None:
            return super()._lower_model(core, sample_shape)
        src = self._host.sources[0]  # the core starts after the host layers
        node, mask = self._lower(core, core.add_input(tuple(src.shape[1:]), src.dtype),
                                 skip=len(self._host.calls))
        self._lowered_masks = [mask]
        return [node]

    def _build_concrete(self, shapes: list) -> None:
        template = self._sample_shape
        try:
            super()._build_concrete(shapes)
        finally:
            self._sample_shape = template  # the model's shape keeps its None dims

    def _layers_in_order(self) -> list:
        return list(self._stack)

    @property
    def input_shape(self) -> tuple:
        self._assert_built("input_shape")
        return (None,) + tuple(self._sample_shape)

    def get_config(self) -> dict:
        """Its name, trainable flag and layers (an InputLayer first when the input is known)."""
        from .. import saving
        return saving.sequential_config(self)

    @classmethod
    def from_config(cls, config: dict, custom_objects=None):
        from .. import saving
        return saving.sequential_from_config(cls, config, custom_objects)
