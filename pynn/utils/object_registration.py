"""The registry of user objects, as keras.utils: register_keras_serializable,
get_custom_objects, custom_object_scope, get_registered_name / get_registered_object, and the
(de)serialization that uses them (all delegate to pynn.saving)."""

from ..saving.serialization import (
    _REGISTERED,
    deserialize_keras_object,
    get_registered_name,
    get_registered_object,
    register_keras_serializable,
    serialize_keras_object,
)

__all__ = ["CustomObjectScope", "custom_object_scope", "deserialize_keras_object",
           "get_custom_objects", "get_registered_name", "get_registered_object",
           "register_keras_serializable", "serialize_keras_object"]


def get_custom_objects() -> dict:
    """The global dict of user objects loading finds by name (what
    `register_keras_serializable` fills, as 'package>name'); add to it to make a class known.

    Example:
        >>> pynn.utils.get_custom_objects()["Scale"] = Scale
    """
    return _REGISTERED


class CustomObjectScope:
    """Makes user objects known by name inside a `with` block (loading a model, deserializing),
    as keras.utils.CustomObjectScope; the registry is as it was after the block.

    Args:
        custom_objects: dicts {name: class or function}, one or several.

    Example:
        >>> with pynn.utils.custom_object_scope({"Scale": Scale}):
        ...     model = pynn.saving.load_model("m.keras")
    """

    def __init__(self, custom_objects=None, *more):
        self.custom_objects = {}
        for objects in (custom_objects, *more):
            if objects is None:
                continue
            if not isinstance(objects, dict):
                raise TypeError(f"CustomObjectScope: expected dicts {{name: object}}, got "
                                f"{type(objects).__name__}")
            self.custom_objects.update(objects)
        self._backup = None

    def __enter__(self):
        self._backup = dict(_REGISTERED)
        _REGISTERED.update(self.custom_objects)
        return self

    def __exit__(self, *args):
        _REGISTERED.clear()
        _REGISTERED.update(self._backup)


custom_object_scope = CustomObjectScope
