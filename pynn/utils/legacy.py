"""keras.utils.legacy: the serialization functions under their legacy names (pynn has one
format, so these are pynn.saving's)."""

from ..saving.serialization import deserialize_keras_object, serialize_keras_object

__all__ = ["deserialize_keras_object", "serialize_keras_object"]
