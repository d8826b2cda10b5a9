"""Saving and loading models: the `.keras` archive and `.weights.safetensors` files (archive.py),
and the configs (`get_config` / `from_config`) that describe models, layers, optimizers, losses
and metrics, with the registry of user classes (serialization.py).

Example:
    >>> model.save("model.keras")
    >>> model = pynn.saving.load_model("model.keras")
"""

# ruff: noqa: F401  (the names below are re-exported: pynn.saving was one module)

from . import archive, serialization
from .archive import (
    FORMAT_VERSION,
    _archive_bytes,
    _optimizer_slots,
    _tensor_bytes,
    _unpickle_layer,
    _unpickle_model,
    _unpickle_tensor,
    _unpickle_variable,
    load_model,
    load_weights,
    read_safetensors,
    save_model,
    save_weights,
    write_safetensors,
)
from .serialization import (
    _REGISTERED,
    _REGISTERED_NAMES,
    compile_config,
    compile_from_config,
    deserialize_keras_object,
    functional_config,
    functional_from_config,
    get_registered_name,
    get_registered_object,
    model_from_config,
    register_keras_serializable,
    sequential_config,
    sequential_from_config,
    serialize_keras_object,
)

__all__ = ["deserialize_keras_object", "get_registered_name", "get_registered_object",
           "load_model", "load_weights", "register_keras_serializable", "save_model",
           "save_weights", "serialize_keras_object"]

# A pickle names its unpickling functions by this package (pynn.saving._unpickle_model), not by
# the module that defines them, so pickles stay loadable however the package is laid out.
for _fn in (_unpickle_model, _unpickle_layer, _unpickle_tensor, _unpickle_variable):
    _fn.__module__ = __name__
del _fn

