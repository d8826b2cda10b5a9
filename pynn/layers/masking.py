"""Keras's masks: which timesteps of a padded sequence are real.

`Embedding(mask_zero=True)` and `Masking` make a mask; layers that support masking pass it on;
recurrent layers skip the masked steps (carrying their states), attention ignores masked keys,
GlobalAveragePooling1D averages the unmasked steps, and the losses and metrics of a masked
output leave masked positions out, as Keras 3 does.

A mask lives in the core graph, as the layers' values do: a float32 node of 1 (keep) and 0
(masked) per sample, shaped like the layer's output without its last axis (a (timesteps,
features) sequence has a (timesteps,) mask). A model lowers each layer call with the masks of
its inputs (`lower_layer`) and gets the output's mask from the layer (`Layer._lower_mask`), so
masks cost nothing in models that make none.
"""

from .. import _core
from .base import Layer, _takes_arg

__all__ = ["Masking"]


def _binary(core, op: str, a: int, b: int) -> int:
    node, _ = core.add_node("binary", (a, b), (), (_core.op_code("binary", op),))
    return node


def not_equal(core, node: int, value: float) -> int:
    """1 where the node's values differ from `value`, else 0 (float32)."""
    if core.node_dtype(node) != "float32":
        node, _ = core.add_node("cast", (node,), (), (0,))
    out, _ = core.add_node("binary", (node,), (), (_core.op_code("binary", "not_equal"), 0),
                           (float(value),))
    return out


def any_last(core, node: int) -> int:
    """1 where any value along the last axis is nonzero (values are 0 or 1)."""
    axis = len(core.node_shape(node))  # the core counts the batch axis as axis 0
    out, _ = core.add_node("reduce", (node,), (), (_core.op_code("reduce", "max"), 1 << axis, 0))
    return out


def all_of(core, masks: list) -> int | None:
    """The masks combined (keep where all keep); None when any is None, as Keras's merges."""
    if not masks or any(m is None for m in masks):
        return None
    out = masks[0]
    for m in masks[1:]:
        out = _binary(core, "multiply", out, m)
    return out


def expand(core, mask: int, axis: int) -> int:
    """The mask with a new axis of size 1 at `axis` (per sample)."""
    shape = list(core.node_shape(mask))
    shape.insert(axis if axis >= 0 else len(shape) + 1 + axis, 1)
    out, _ = core.add_node("reshape", (mask,), (), (len(shape), *shape))
    return out


def lower_layer(core, layer, inputs, mask):
    """Lowers one call of `layer` on `inputs` (a node, or a list of them) whose masks are
    `mask` (a node or None, or a list of them); returns (output nodes, output mask nodes). A
    layer whose `lower` takes `mask` receives it; any other drops or passes it
    (`Layer._lower_mask`)."""
    masks = mask if isinstance(mask, list) else [mask]
    if any(m is not None for m in masks) and _takes_arg(type(layer).lower, "mask"):
        out = layer.lower(core, inputs, mask=mask)
    else:
        out = layer.lower(core, inputs)
    return out, layer._lower_mask(core, inputs, out, mask)


class Masking(Layer):
    """Masks the timesteps whose features all equal `mask_value` (Keras's Masking): for
    (batch, timesteps, features) it outputs the input with such steps zeroed, and a mask that
    the layers after it (LSTM, GRU, attention, GlobalAveragePooling1D, the losses) honour.

    Args:
        mask_value: the padding value (0.0).

    Example:
        >>> x = pynn.Input((None, 3))
        >>> y = pynn.layers.LSTM(4)(pynn.layers.Masking(0.0)(x))
    """

    supports_masking = True

    def __init__(self, mask_value=0.0, **kwargs):
        super().__init__(**kwargs)
        try:
            self.mask_value = float(mask_value)
        except (TypeError, ValueError):
            raise ValueError(f"Masking '{self.name}': mask_value must be a number, got "
                             f"{mask_value!r}") from None
        self.built = True

    def build(self, input_shape) -> None:
        self.built = True

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def _keep(self, core, node: int) -> int:
        """1 per step (all axes but the last) where any feature differs from mask_value."""
        return any_last(core, not_equal(core, node, self.mask_value))

    def lower(self, core, node: int) -> int:
        if len(core.node_shape(node)) < 1:
            raise ValueError(f"Masking '{self.name}': needs an input of rank >= 2 (batch, "
                             "..., features)")
        return _binary(core, "multiply", node, expand(core, self._keep(core, node), -1))

    def _lower_mask(self, core, inputs, output, mask):
        return self._keep(core, inputs)

    def get_config(self) -> dict:
        return {**super().get_config(), "mask_value": self.mask_value}
