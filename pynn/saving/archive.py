"""The `.keras` archive and `.weights.safetensors` files: writing and reading them, the
optimizer's and the random stream's state in them, and pickling through them.

A saved model is a zip archive (`.keras`, or `.pynn`: the same format) holding
    config.json         the architecture, the compile settings, the pynn and format versions
    metadata.json       versions and the date saved, as Keras writes it
    model.safetensors   every weight, named by its path ('dense/kernel'), and when the model is
                        compiled the optimizer's slots ('optimizer/momentum/dense/kernel') and its
                        iteration count (in the header's __metadata__)
so the weights are readable by any safetensors reader.

Loading executes no code: no pickle, no eval; the configs are read by serialization.py. Every
size, offset, dtype and shape in a file is checked against the file and against the model before
any of it is used, and a bad file gives a ValueError (or OSError) that names the problem. A save
writes a temporary file beside the target and renames it over the target, so an interrupted save
never destroys the previous file.
"""

import datetime
import errno
import io
import json
import math
import os
import stat
import struct
import tempfile
import zipfile
import zlib

import numpy as np

from .keras_format import (
    KERAS_API_VERSION,
    KERAS_WEIGHTS_FILE,
    WEIGHTS_H5_SUFFIX,
    keras_archive_config,
    keras_compile,
    keras_weights_bytes,
    read_keras_optimizer,
    read_keras_weights,
    translate_config,
)
from .serialization import (
    _REGISTERED_NAMES,
    _brief,
    _builtins,
    _expect,
    compile_config,
    compile_from_config,
    deserialize_keras_object,
    model_from_config,
    serialize_keras_object,
)

FORMAT_VERSION = 1
_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
_CONFIG_FILE, _METADATA_FILE, _WEIGHTS_FILE = "config.json", "metadata.json", "model.safetensors"
_MODEL_SUFFIXES = (".keras", ".pynn")
_WEIGHTS_SUFFIX = ".weights.safetensors"
_JSON_LIMIT = 64 << 20       # bytes of config.json / metadata.json we are willing to parse
_HEADER_LIMIT = 100 << 20    # a safetensors header, as the reference implementation caps it
_MAX_RANK = 8
# The largest int a config, or a dimension of a saved tensor, may hold: the core takes a layer's
# sizes as C ints, so a larger one would wrap around there.
_MAX_SIZE = 2**31 - 1
_MAX_ITERATIONS = 2**53      # the optimizer's step count: its bias corrections use a double
_MAX_UINT64 = 2**64 - 1      # the random stream's seed and position: the core's uint64_t


# -- the optimizer's state -------------------------------------------------------------------------
def _slot_names(opt) -> list[str]:
    """The optimizer's state buffers, in the core's order (csrc/core/optimizer.c), by Keras's
    names."""
    names = getattr(opt, "_slot_names", None)
    return names() if callable(names) else []


def _optimizer_slots(model) -> dict[str, np.ndarray]:
    """{'optimizer/<slot>/<variable path>': view} over the core's optimizer state, and
    {'optimizer/scalars/<name>': 0-d view} over its scalars (Nadam's u_product, a loss scale),
    or {} when the model has no bound optimizer state.

    The state is n_slots runs of the trainable span, each parallel to the parameters, then the
    scalars. The core places the variables it trains first (from offset 0) and the others after
    them, so a variable's offset is its distance from the lowest variable address, and it is
    trained (has slots) when that offset lies inside the span. A slot smaller than its variable
    (Adafactor's row and column factors) is the start of the variable's run."""
    core, opt = model._core, model.optimizer
    if core is None or opt is None or getattr(opt, "_core", None) is not core:
        return {}
    state = core.optimizer_state()
    names, scalars = _slot_names(opt), opt._scalar_names()
    variables = model.weights
    if state.size == 0 or not variables or not names and not scalars:
        return {}
    body = state.size - len(scalars)
    if any(v._owner_core() is not core for v in variables) or body < 0 or \
            (body % len(names) if names else body):
        raise RuntimeError(f"Model '{model.name}': its optimizer state does not lie over its "
                           "weights; compile it again")
    out = {}
    if names:
        span = body // len(names)
        base = min(v.__array_interface__["data"][0] for v in variables)
        for v in variables:
            off = (v.__array_interface__["data"][0] - base) // 4
            if off >= span:
                continue  # not trained by the core
            if off + v.size > span:
                raise RuntimeError(f"variable {v.path} straddles the optimizer's span")
            for k, slot in enumerate(names):
                shape = opt._slot_shape(slot, v)
                if shape is None:
                    continue
                start = k * span + off
                out[f"optimizer/{slot}/{v.path}"] = \
                    state[start:start + math.prod(shape)].reshape(shape)
    for i, name in enumerate(scalars):
        out[f"optimizer/scalars/{name}"] = state[body + i:body + i + 1].reshape(())
    return out


# -- safetensors -----------------------------------------------------------------------------------
def _tensor_bytes(arr: np.ndarray) -> bytes:
    return np.ascontiguousarray(arr, dtype="<f4").tobytes()


def write_safetensors(stream, tensors: dict, metadata: dict | None = None) -> None:
    """Writes float32 `tensors` ({name: array}, in order) to a binary stream in the safetensors
    format: an 8-byte little-endian header length, the JSON header (space-padded so the data
    starts 8-byte aligned), then the raw little-endian data."""
    header, offset = {}, 0
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    for name, arr in tensors.items():
        n = int(np.prod(arr.shape, dtype=np.int64)) * 4
        header[name] = {"dtype": "F32", "shape": [int(d) for d in arr.shape],
                        "data_offsets": [offset, offset + n]}
        offset += n
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-(8 + len(text)) % 8)
    stream.write(struct.pack("<Q", len(text)))
    stream.write(text)
    for arr in tensors.values():
        stream.write(_tensor_bytes(arr))


def _no_duplicates(pairs):
    out = {}
    for k, v in pairs:
        if k in out:
            raise ValueError(f"the key '{k}' appears twice")
        out[k] = v
    return out


def _reject_constant(name):
    raise ValueError(f"{name} is not valid JSON")


def _parse_json(raw: bytes, what: str):
    try:
        return json.loads(raw.decode("utf-8"), object_pairs_hook=_no_duplicates,
                          parse_constant=_reject_constant)
    except UnicodeDecodeError as e:
        raise ValueError(f"{what} is not UTF-8 text: {e}") from None
    except RecursionError:
        raise ValueError(f"{what} is nested too deeply") from None
    except ValueError as e:
        raise ValueError(f"{what} is not valid JSON: {e}") from None


def read_safetensors(data: bytes, what: str = "safetensors data") -> tuple[dict, dict]:
    """Parses safetensors bytes; returns ({name: read-only float32 array}, metadata).

    Everything is checked before any tensor is viewed: the header length against the data, the
    header (JSON object, no repeated key), each entry's dtype (F32 only), shape and offsets, and
    that the tensors tile the data exactly (in order, no gap, no overlap, nothing after)."""
    size = len(data)
    if size < 8:
        raise ValueError(f"{what}: {size} bytes is too short for a safetensors file (an 8-byte "
                         "header length comes first)")
    (n,) = struct.unpack_from("<Q", data, 0)
    if n > size - 8:
        raise ValueError(f"{what}: the header length {n} is beyond the end of the data "
                         f"({size - 8} bytes after the length)")
    if n > _HEADER_LIMIT:
        raise ValueError(f"{what}: the header length {n} exceeds the {_HEADER_LIMIT}-byte limit")
    raw = bytes(data[8:8 + n])
    if not raw.startswith(b"{"):
        raise ValueError(f"{what}: the header does not start with '{{'")
    header = _parse_json(raw, f"{what}: the header")
    if not isinstance(header, dict):
        raise ValueError(f"{what}: the header is not a JSON object")
    metadata = header.pop("__metadata__", {})
    if not isinstance(metadata, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
        raise ValueError(f"{what}: __metadata__ must map strings to strings")
    buffer_size = size - 8 - n
    spans = []
    for name, entry in header.items():
        who = f"{what}: tensor '{name}'"
        if not name:
            raise ValueError(f"{what}: a tensor has an empty name")
        if not isinstance(entry, dict) or set(entry) != {"dtype", "shape", "data_offsets"}:
            raise ValueError(f"{who} must be an object with exactly dtype, shape and "
                             f"data_offsets, got {_brief(entry)}")
        if entry["dtype"] != "F32":
            raise ValueError(f"{who} has dtype {_brief(entry['dtype'])}; pynn reads only F32")
        shape, offsets = entry["shape"], entry["data_offsets"]
        if not isinstance(shape, list) or len(shape) > _MAX_RANK or any(
                isinstance(d, bool) or not isinstance(d, int) or d < 0 for d in shape):
            raise ValueError(f"{who} has shape {_brief(shape)}: expected a list of at most "
                             f"{_MAX_RANK} non-negative ints")
        if not isinstance(offsets, list) or len(offsets) != 2 or any(
                isinstance(d, bool) or not isinstance(d, int) for d in offsets):
            raise ValueError(f"{who} has data_offsets {_brief(offsets)}: expected [begin, end]")
        begin, end = offsets
        if not 0 <= begin <= end <= buffer_size:
            raise ValueError(f"{who} has data_offsets [{begin}, {end}] outside the "
                             f"{buffer_size} bytes of data")
        if end - begin != math.prod(shape) * 4:
            raise ValueError(f"{who}: shape {tuple(shape)} needs {math.prod(shape) * 4} bytes, "
                             f"its data_offsets [{begin}, {end}] hold {end - begin}")
        if max(shape, default=0) > _MAX_SIZE:  # an empty tensor's size bounds no dimension
            raise ValueError(f"{who} has shape {_brief(shape)}: a dimension beyond {_MAX_SIZE}")
        spans.append((begin, end, name))
    position = 0
    for begin, end, name in sorted(spans):
        if begin != position:
            problem = "overlaps the tensor before it" if begin < position else \
                f"leaves a gap of {begin - position} bytes before it"
            raise ValueError(f"{what}: tensor '{name}' (data_offsets [{begin}, {end}]) {problem}")
        position = end
    if position != buffer_size:
        raise ValueError(f"{what}: {buffer_size - position} bytes after the last tensor are not "
                         "part of any tensor")
    start = 8 + n
    tensors = {}
    for begin, end, name in sorted(spans):  # in data order: the order the writer wrote
        shape = tuple(header[name]["shape"])
        arr = np.frombuffer(data, dtype="<f4", count=(end - begin) // 4, offset=start + begin)
        tensors[name] = arr.reshape(shape)
    return tensors, metadata


# -- files -----------------------------------------------------------------------------------------
def _atomic_write(filepath: str, write, overwrite: bool) -> None:
    """Calls write(stream) on a temporary file beside `filepath`, then renames it over
    `filepath`: the previous file stays whole until the new one is complete.

    Only the contents change, as when a file is written in place: through a symlink the link's
    target is replaced and the link kept; an existing file keeps its permission bits (and its
    owner and group where the user may set them); a new file gets 0666 less the umask. An
    OSError (disk full, a read-only folder) names `filepath`, not the temporary file, which is
    removed on every failure."""
    if not overwrite and os.path.lexists(filepath):  # a dangling symlink counts: it is taken
        raise FileExistsError(f"{filepath} already exists; pass overwrite=True to replace it")
    target = os.path.realpath(filepath)
    tmp = None
    try:
        try:
            old = os.stat(target)
        except FileNotFoundError:
            old = None
        if old is not None and not stat.S_ISREG(old.st_mode):
            # renaming over a folder, a device or a pipe would destroy it, not write into it
            raise OSError(errno.EISDIR if stat.S_ISDIR(old.st_mode) else errno.EINVAL,
                          "not a regular file", filepath)
        fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(target) + ".", suffix=".tmp",
                                   dir=os.path.dirname(target))
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        if old is None:
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o666 & ~umask)
        else:
            try:  # before chmod: chown clears the set-id bits
                os.chown(tmp, old.st_uid, old.st_gid)
            except OSError:
                pass  # only root may give a file away; the save goes on with the user's own
            os.chmod(tmp, stat.S_IMODE(old.st_mode))
        os.replace(tmp, target)
    except BaseException as e:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass
        if isinstance(e, OSError) and e.errno is not None and e.filename != filepath:
            raise OSError(e.errno, e.strerror, filepath) from e
        raise


def _model_tensors(model) -> dict[str, np.ndarray]:
    out = {}
    for var in model.weights:
        if var.path in out:
            raise ValueError(f"Model '{model.name}' has two weights with the path '{var.path}': "
                             "give every layer a unique name to save it")
        out[var.path] = var
    return out


def _check_suffix(filepath, suffixes, what: str) -> str:
    path = os.fspath(filepath)
    if not isinstance(path, str):
        path = os.fsdecode(path)
    if not path.endswith(suffixes):
        raise ValueError(f"Invalid filepath extension for {what}: {path!r}. " + (
            "Use a `.keras` (or `.pynn`) file, pynn's native format (a zip of config.json and "
            "model.safetensors); HDF5 (.h5) is not supported."
            if suffixes == _MODEL_SUFFIXES else
            f"The filename must end in `{_WEIGHTS_SUFFIX}` (pynn's safetensors) or "
            f"`{WEIGHTS_H5_SUFFIX}` (Keras's HDF5 layout)."))
    return path


def save_model(model, filepath, overwrite: bool = True, zipped: bool | None = None,
               keras_format: bool = False) -> None:
    """Saves `model` to a `.keras` (or `.pynn`) archive: config.json, metadata.json and
    model.safetensors (weights, and the optimizer's state when compiled).

    Args:
        model: a Sequential or functional model.
        filepath: a path ending in `.keras` or `.pynn`.
        overwrite: replace an existing file (else FileExistsError).
        zipped: True or None (a zip archive); unzipped directories are not supported.
        keras_format: write the archive as Keras 3 writes it (config.json with Keras's module
            names, model.weights.h5 with Keras's variable paths and the optimizer's state), which
            `keras.saving.load_model` opens; pynn's own archive also keeps the random stream.

    Example:
        >>> model.save("model.keras")
    """
    if zipped is False:
        raise ValueError("save: zipped=False is not supported; pynn saves one .keras archive")
    path = _check_suffix(filepath, _MODEL_SUFFIXES, "saving")
    _atomic_write(path, (_keras_model_writer if keras_format else _model_writer)(model),
                  overwrite)


def _model_writer(model):
    """write(stream), which writes the model's archive to a binary stream (a file, or memory
    when pickling). Everything is gathered, and checked, now: before a file is opened."""
    from .. import __version__

    config = {"module": "pynn.models", "class_name": type(model).__name__,
              "config": model.get_config(), "registered_name": None,
              "compile_config": compile_config(model),
              "pynn_version": __version__, "format_version": FORMAT_VERSION}
    config_text = _dumps(config, f"Model '{model.name}''s config")
    tensors, metadata = _training_state(model)
    return lambda f: _write_archive(f, config_text, tensors, metadata)


def _keras_model_writer(model):
    """write(stream), which writes the model's archive as Keras 3 writes it: config.json with
    Keras's module names, metadata.json, and model.weights.h5 (weights and optimizer state in
    Keras's layout). Everything is gathered, and checked, now: before a file is opened."""
    from .. import __version__

    config_text = _dumps(keras_archive_config(model, compile_config(model)),
                         f"Model '{model.name}''s config")
    model._assert_built("its weights")
    state, metadata = _training_state(model)
    it = metadata.get("optimizer.iterations")
    weights = keras_weights_bytes(model, state, None if it is None else int(it))
    meta_text = _dumps({"keras_version": KERAS_API_VERSION, "pynn_version": __version__,
                        "date_saved": datetime.datetime.now().strftime("%Y-%m-%d@%H:%M:%S")},
                       "metadata")

    def write(stream):
        with zipfile.ZipFile(stream, "w") as zf:
            zf.writestr(_METADATA_FILE, meta_text, compress_type=zipfile.ZIP_DEFLATED)
            zf.writestr(_CONFIG_FILE, config_text, compress_type=zipfile.ZIP_DEFLATED)
            zf.writestr(KERAS_WEIGHTS_FILE, weights, compress_type=zipfile.ZIP_STORED)
    return write


def _training_state(model) -> tuple[dict, dict]:
    """What training needs to go on exactly: the weights and the optimizer's slots by name, and
    the safetensors metadata for the optimizer's step count and the random stream."""
    tensors = _model_tensors(model)
    slots = _optimizer_slots(model)
    metadata = {"format": "pynn", "format_version": str(FORMAT_VERSION)}
    pending = vars(model).get("_pending_state")  # loaded, for a core not built yet
    if model._core is not None:  # dropout's random stream, so training resumes exactly
        metadata["rng.seed"], metadata["rng.forwards"] = map(str, model._core.rng_state)
    elif pending is not None and pending[2] is not None:
        metadata["rng.seed"], metadata["rng.forwards"] = map(str, pending[2])
    # an unbuilt model has no optimizer state yet (its optimizer binds when the model builds)
    if model._compiled and model.optimizer is not None and model._core is not None:
        # every call of the optimizer (with gradient accumulation, more than its updates)
        metadata["optimizer.iterations"] = str(int(model.optimizer._steps_taken()))
        metadata["optimizer.slots"] = ",".join(_slot_names(model.optimizer))
    elif pending is not None and pending[1] is not None:
        slots = dict(pending[0])
        metadata["optimizer.iterations"] = str(int(pending[1]))
        metadata["optimizer.slots"] = ",".join(_slot_names(model.optimizer))
    tensors.update(slots)
    return tensors, metadata


def _write_archive(stream, config_text: str, tensors: dict, metadata: dict) -> None:
    """Writes a `.keras` archive to a binary stream: config.json, metadata.json (the versions and
    the date) and model.safetensors (`tensors`, with `metadata` in its header)."""
    from .. import __version__

    meta_text = _dumps({"keras_version": None, "pynn_version": __version__,
                        "format_version": FORMAT_VERSION,
                        "date_saved": datetime.datetime.now().strftime("%Y-%m-%d@%H:%M:%S")},
                       "metadata")
    with zipfile.ZipFile(stream, "w") as zf:
        zf.writestr(_CONFIG_FILE, config_text, compress_type=zipfile.ZIP_DEFLATED)
        zf.writestr(_METADATA_FILE, meta_text, compress_type=zipfile.ZIP_DEFLATED)
        with zf.open(_WEIGHTS_FILE, "w", force_zip64=True) as w:
            write_safetensors(w, tensors, metadata)


def _dumps(obj, what: str) -> str:
    def default(o):
        if isinstance(o, np.generic):
            return o.item()
        raise TypeError(f"{what} holds {type(o).__name__} {_brief(o)}, which JSON cannot store; "
                        "get_config() must return plain values (numbers, strings, lists, dicts)")
    return json.dumps(obj, indent=2, default=default)


def _open_archive(path: str) -> tuple[dict, bytes]:
    """(config.json as a dict, model.safetensors bytes) of a .keras archive, each checked."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"File not found: filepath={path}. Please ensure the file is an "
                                "accessible `.keras` zip file.")
    if os.path.isdir(path):
        raise IsADirectoryError(f"{path} is a directory, not a .keras file")
    return _read_archive(path, path, os.path.getsize(path))


def _read_archive(source, path: str, limit: int) -> tuple[dict, bytes]:
    """(config.json as a dict, model.safetensors bytes) of a .keras archive read from `source`
    (a file's path, or a binary stream), each checked; `path` names the archive in errors and
    `limit` is its size in bytes."""
    try:
        with zipfile.ZipFile(source, "r") as zf:
            members = {i.filename: i for i in zf.infolist()}
            # pynn's archive holds model.safetensors; Keras 3's holds model.weights.h5
            weights_file = _WEIGHTS_FILE if _WEIGHTS_FILE in members or \
                KERAS_WEIGHTS_FILE not in members else KERAS_WEIGHTS_FILE
            for name in (_CONFIG_FILE, weights_file):
                if name not in members:
                    raise ValueError(f"{path}: the archive has no {name}; it is not a model saved "
                                     "by pynn or Keras 3")
            for name, info in members.items():
                if name == weights_file:
                    # deflate expands at most about 1032-fold: a larger claim is a lie (or a bomb)
                    cap = limit if info.compress_type == zipfile.ZIP_STORED else \
                        1032 * info.compress_size + 1024
                elif name in (_CONFIG_FILE, _METADATA_FILE):
                    cap = _JSON_LIMIT
                else:
                    continue
                if info.file_size > cap:
                    raise ValueError(f"{path}: {name} claims {info.file_size} bytes, more than "
                                     f"the {cap} it can hold")
            config = _parse_json(zf.read(_CONFIG_FILE), f"{path}: {_CONFIG_FILE}")
            weights = zf.read(weights_file)
    except zipfile.BadZipFile as e:
        raise ValueError(f"{path} is not a valid .keras archive (corrupted or truncated): "
                         f"{e}") from None
    except (EOFError, zlib.error) as e:
        raise ValueError(f"{path}: a member of the archive is truncated or corrupted: "
                         f"{e}") from None
    except NotImplementedError as e:  # zipfile: a compression method or feature it lacks
        raise ValueError(f"{path}: a member of the archive cannot be read: {e}") from None
    if not isinstance(config, dict):
        raise ValueError(f"{path}: {_CONFIG_FILE} is not a JSON object")
    return config, weights


class _WeightBudget:
    """While a saved model is rebuilt, caps the weights its layers may create at what the
    weights file holds: a config asking for a huge layer fails before allocating it."""

    def __init__(self, floats: int):
        self.floats = floats

    def __enter__(self):
        from ..layers import base
        self._previous = base._weight_budget
        base._weight_budget = self
        return self

    def __exit__(self, *exc):
        from ..layers import base
        base._weight_budget = self._previous

    def take(self, n: int, who: str) -> None:
        if n > self.floats:
            raise ValueError(f"Invalid saved model: {who} needs {n} values, more than the "
                             "weights file holds; the config does not match its weights")
        self.floats -= n


def load_model(filepath, custom_objects: dict | None = None, compile: bool = True,
               safe_mode: bool = True):
    """Loads a model saved with `model.save` (a `.keras` or `.pynn` archive).

    Args:
        filepath: the archive.
        custom_objects: {name: class} of user-defined layers, losses, metrics or optimizers.
        compile: compile the model as it was saved, with the optimizer's state restored, so
            training continues exactly where it stopped.
        safe_mode: accepted for Keras compatibility; loading never runs code from the file.

    Returns:
        The model, predicting as the saved one did.

    Example:
        >>> model = pynn.models.load_model("model.keras")
    """
    path = os.fspath(filepath)
    path = path if isinstance(path, str) else os.fsdecode(path)
    if not path.endswith(_MODEL_SUFFIXES):
        raise ValueError(f"File format not supported: filepath={path}. pynn loads `.keras` (or "
                         f"`.pynn`) archives saved by model.save; for `{_WEIGHTS_SUFFIX}` files "
                         "use model.load_weights")
    if custom_objects is not None and not isinstance(custom_objects, dict):
        raise TypeError("load_model: custom_objects must be a dict {name: class}")
    config, weights = _open_archive(path)
    return _model_from_archive(config, weights, path, custom_objects, compile, safe_mode)


def _model_from_archive(config: dict, weights: bytes, path: str, custom_objects,
                        compile: bool, safe_mode: bool = True):
    """The model an archive's config.json and model.safetensors bytes describe, with its
    weights, compile settings, optimizer state and random state; `path` names it in errors."""
    if weights.startswith(_HDF5_SIGNATURE):
        return _model_from_keras_archive(config, weights, path, custom_objects, compile,
                                         safe_mode)
    tensors, metadata = read_safetensors(weights, f"{path}: {_WEIGHTS_FILE}")
    version = config.get("format_version", FORMAT_VERSION)
    if isinstance(version, bool) or not isinstance(version, int) or \
            not 1 <= version <= FORMAT_VERSION:
        raise ValueError(f"{path} was saved in format version {_brief(version)}; this pynn "
                         f"reads versions 1 to {FORMAT_VERSION}")
    _check_config_ints(config, path)
    with _WeightBudget(sum(int(t.size) for t in tensors.values())):
        try:
            model = model_from_config(config, custom_objects)
        except TypeError as e:  # layers that cannot be connected so (a float input to Embedding)
            raise ValueError(f"Invalid saved model {path}: its config does not build: "
                             f"{e}") from None
        except ValueError as e:
            raise ValueError(f"{path}: {e}") from None
    slots = {k: v for k, v in tensors.items() if k.startswith("optimizer/")}
    _assign(model, {k: v for k, v in tensors.items() if k not in slots}, path, by_name=True)
    cc = config.get("compile_config")
    if compile and cc is not None:
        try:
            compile_from_config(model, cc, custom_objects)
        except ValueError as e:
            raise ValueError(f"{path}: {e}") from None
        _restore_optimizer(model, slots, metadata, path)
    _restore_rng(model, metadata, path)
    return model


def _model_from_keras_archive(config: dict, weights: bytes, path: str, custom_objects,
                              compile: bool, safe_mode: bool):
    """The model of an archive Keras 3 wrote: config.json translated to pynn's classes
    (keras_format.translate_config), the weights from model.weights.h5 by Keras's layout, and
    when compiling, the optimizer's state."""
    what = f"{path}: {KERAS_WEIGHTS_FILE}"
    config = translate_config(config, custom_objects, safe_mode)
    _check_config_ints(config, path)
    with _WeightBudget(len(weights) // 4):
        try:
            model = model_from_config(config, custom_objects)
        except TypeError as e:
            raise ValueError(f"Invalid saved model {path}: its config does not build: "
                             f"{e}") from None
        except ValueError as e:
            raise ValueError(f"{path}: {e}") from None
    model._assert_built("its weights")
    tensors, h5 = read_keras_weights(model, weights, what)
    with h5:
        _assign(model, tensors, path, by_name=True)
        cc = config.get("compile_config")
        if compile and cc is not None:
            try:
                keras_compile(model, cc, custom_objects)
            except (TypeError, ValueError) as e:
                raise ValueError(f"{path}: its compile_config: {e}") from None
            state = read_keras_optimizer(model, h5, what)
            if state is not None:
                slots, iterations = state
                _restore_optimizer(model, slots, {"optimizer.iterations": str(iterations)},
                                   path)
    return model


def _check_config_ints(config: dict, path: str) -> None:
    """Every int in config.json but a seed lies within ±_MAX_SIZE: layers hand their sizes to
    the core as C ints, where a larger one would wrap around to another size. (Seeds go to
    NumPy, which takes any size; the initializers check them.)"""
    stack = [(config, "")]
    while stack:  # a loop, not recursion: the JSON may be nested as deeply as json parses
        value, where = stack.pop()
        if isinstance(value, dict):
            stack += [(v, f"{where}.{k}" if where else k) for k, v in value.items()
                      if k != "seed"]
        elif isinstance(value, list):
            stack += [(v, f"{where}[{i}]") for i, v in enumerate(value)]
        elif isinstance(value, int) and not isinstance(value, bool) and \
                not -_MAX_SIZE <= value <= _MAX_SIZE:
            raise ValueError(f"{path}: {_CONFIG_FILE}: {where} is {_brief(value)}, beyond the "
                             f"±{_MAX_SIZE} a size or count in a config may be")


def _metadata_count(metadata: dict, key: str, limit: int, path: str) -> int | None:
    """The count stored under `key` in model.safetensors's __metadata__ (None when absent):
    decimal ASCII digits, from 0 to `limit`."""
    text = metadata.get(key)
    if text is None:
        return None
    # isascii: str.isdigit and int() also take other scripts' digits ('١٢') and superscripts
    if not (text.isascii() and text.isdigit() and len(text) <= len(str(limit))
            and int(text) <= limit):
        raise ValueError(f"{path}: {_WEIGHTS_FILE}: __metadata__ {key} is {_brief(text)}, not "
                         f"a count from 0 to {limit}")
    return int(text)


def _restore_rng(model, metadata: dict, path: str) -> None:
    seed = _metadata_count(metadata, "rng.seed", _MAX_UINT64, path)
    forwards = _metadata_count(metadata, "rng.forwards", _MAX_UINT64, path)
    if seed is None and forwards is None:
        return
    if seed is None or forwards is None:
        missing = "rng.seed" if seed is None else "rng.forwards"
        raise ValueError(f"{path}: {_WEIGHTS_FILE}: __metadata__ has no {missing}; the random "
                         "state is a seed and a count of forwards")
    model._assert_built("its random state")
    if model._core is None:  # lengths from the data: kept for the first core
        slots, it, _ = vars(model).get("_pending_state") or ({}, None, None)
        model._pending_state = (slots, it, (seed, forwards))
        return
    model._core.rng_state = (seed, forwards)


def _restore_optimizer(model, slots: dict, metadata: dict, path: str) -> None:
    it = _metadata_count(metadata, "optimizer.iterations", _MAX_ITERATIONS, path)
    if it is None:
        return
    model._assert_built("its optimizer state")
    if model._core is None:  # lengths from the data: checked now, applied to the first core
        _pend_optimizer(model, slots, it, path)
        return
    views = _optimizer_slots(model)
    frozen = {v.path for v in model.weights} - {k.split("/", 2)[2] for k in views}
    known = set(_slot_names(model.optimizer)) | {"scalars"}
    missing = sorted(set(views) - set(slots))
    # slots of a variable this model does not train (frozen after the saved model was built)
    # are ignored; any other difference is an error
    extra = sorted(k for k in set(slots) - set(views)
                   if k.count("/") < 2 or k.split("/", 2)[1] not in known
                   or k.split("/", 2)[2] not in frozen)
    if missing or extra:
        raise ValueError(f"{path}: the optimizer state does not match the model's optimizer: "
                         + (f"missing {missing[0]}" if missing else f"unexpected {extra[0]}"))
    for name, view in views.items():
        if view.shape != slots[name].shape:
            raise ValueError(f"{path}: optimizer slot '{name}' has shape "
                             f"{slots[name].shape}, the model needs {view.shape}")
    for name, view in views.items():
        view[...] = slots[name]
    model._core.iterations = it


def _pend_optimizer(model, slots: dict, iterations: int, path: str) -> None:
    """Optimizer slots for a model whose core waits for data: each must name a known slot of
    the optimizer and a trainable weight of the model, with the weight's shape."""
    opt = model.optimizer
    known = set(_slot_names(opt))
    weights = {v.path: v for v in model.trainable_weights}
    for name, value in slots.items():
        parts = name.split("/", 2)
        if len(parts) == 3 and parts[1] == "scalars" and parts[2] in opt._scalar_names():
            want = ()
        elif len(parts) != 3 or parts[1] not in known or parts[2] not in weights or \
                opt._slot_shape(parts[1], weights[parts[2]]) is None:
            raise ValueError(f"{path}: the optimizer state does not match the model's "
                             f"optimizer: unexpected {name}")
        else:
            want = tuple(opt._slot_shape(parts[1], weights[parts[2]]))
        if value.shape != want:
            raise ValueError(f"{path}: optimizer slot '{name}' has shape {value.shape}, the "
                             f"model needs {want}")
    _, _, rng = vars(model).get("_pending_state") or ({}, None, None)
    model._pending_state = ({k: np.array(v) for k, v in slots.items()}, iterations, rng)


def _assign(model, tensors: dict, path: str, by_name: bool, skip_mismatch: bool = False) -> None:
    """Writes `tensors` into the model's weights, by path (or in order when no path matches and
    the counts and shapes agree); every check comes before the first write."""
    weights = model.weights
    if not weights and not tensors:
        return
    if not weights:
        raise ValueError(f"Model '{model.name}' has no weights yet (it is not built): build it, "
                         f"or call it on data, before loading {path}")
    names = [w.path for w in weights]
    common = set(names) & set(tensors)
    if set(names) == set(tensors) or (skip_mismatch and (common or by_name)):
        pairs = [(w, tensors[w.path]) for w in weights if w.path in tensors]
    elif not common and not by_name and len(tensors) == len(weights):
        # Another model of the same architecture, whose layers were named differently: by order
        # (the file's order is its data order, which is the order save_weights wrote).
        pairs = list(zip(weights, tensors.values()))
    else:
        missing = [n for n in names if n not in tensors]
        extra = [n for n in tensors if n not in names]
        raise ValueError(f"{path} does not match model '{model.name}': " + (
            f"it has no weight '{missing[0]}'" if missing else
            f"it has a weight '{extra[0]}' the model does not") +
            f" ({len(tensors)} weights in the file, {len(names)} in the model)")
    kept = []
    for var, value in pairs:
        if var.shape != value.shape:
            if skip_mismatch:
                continue
            raise ValueError(f"{path}: weight '{var.path}' has shape {tuple(value.shape)} in the "
                             f"file, the model's has shape {var.shape}")
        kept.append((var, value))
    from ..layers.base import assign_values

    assign_values(kept)  # together, under the model's lock


def save_weights(model, filepath, overwrite: bool = True) -> None:
    """Saves the model's weights to a `.weights.safetensors` file, each named by its path
    ('dense/kernel'), or to a `.weights.h5` file in Keras 3's layout (with the optimizer's
    state, as Keras writes it), which Keras's `load_weights` reads.

    Example:
        >>> model.save_weights("model.weights.safetensors")
    """
    path = _check_suffix(filepath, (_WEIGHTS_SUFFIX, WEIGHTS_H5_SUFFIX), "save_weights")
    tensors = _model_tensors(model)
    if not tensors:
        raise ValueError(f"Model '{model.name}' has no weights yet (it is not built)")
    if path.endswith(WEIGHTS_H5_SUFFIX):  # Keras's layout, the optimizer's state included
        state, metadata = _training_state(model)
        it = metadata.get("optimizer.iterations")
        data = keras_weights_bytes(model, state, None if it is None else int(it))
        _atomic_write(path, lambda f: f.write(data), overwrite)
        return
    metadata = {"format": "pynn", "format_version": str(FORMAT_VERSION)}
    if model._core is not None:  # dropout's random stream, so training resumes exactly
        metadata["rng.seed"], metadata["rng.forwards"] = map(str, model._core.rng_state)
    _atomic_write(path, lambda f: write_safetensors(f, tensors, metadata), overwrite)


def load_weights(model, filepath, skip_mismatch: bool = False) -> None:
    """Loads weights saved by `save_weights` (a `.weights.safetensors` file) or held in a
    `.keras` archive into `model`, by weight path; when no path matches (the same architecture
    with other layer names) by order, if every shape agrees. The optimizer's state is not
    touched. A `.weights.h5` file (or an archive) in Keras 3's layout is read as Keras reads it:
    by layer, and a compiled model's optimizer state with it.

    Args:
        skip_mismatch: skip weights missing from the file or of another shape, instead of
            raising.
    """
    path = os.fspath(filepath)
    path = path if isinstance(path, str) else os.fsdecode(path)
    if path.endswith(_MODEL_SUFFIXES):
        _, data = _open_archive(path)
        what = f"{path}: {_WEIGHTS_FILE}"
    else:
        _check_suffix(path, (_WEIGHTS_SUFFIX, WEIGHTS_H5_SUFFIX), "load_weights")
        if not os.path.exists(path):
            raise FileNotFoundError(f"File not found: filepath={path}")
        with open(path, "rb") as f:
            data = f.read()
        what = path
    if data.startswith(_HDF5_SIGNATURE):  # Keras's layout, from Keras or from pynn
        if path.endswith(_MODEL_SUFFIXES):
            what = f"{path}: {KERAS_WEIGHTS_FILE}"
        model._assert_built("its weights")
        tensors, h5 = read_keras_weights(model, data, what, skip_mismatch)
        with h5:
            _assign(model, tensors, path, by_name=True, skip_mismatch=skip_mismatch)
            # as Keras's load_weights: a compiled model's optimizer state too
            if model._compiled and model.optimizer is not None:
                state = read_keras_optimizer(model, h5, what)
                if state is not None:
                    _restore_optimizer(model, state[0],
                                       {"optimizer.iterations": str(state[1])}, path)
        return
    tensors, _ = read_safetensors(data, what)
    tensors = {k: v for k, v in tensors.items() if not k.startswith("optimizer/")}
    model._assert_built("its weights")
    _assign(model, tensors, path, by_name=False, skip_mismatch=skip_mismatch)



def save_checkpoint(model, filepath, extra: dict | None = None) -> None:
    """Writes what training needs to go on exactly (weights, the optimizer's slots and step
    count, the random stream) to a `.safetensors` file, with `extra` ({str: str}) in its
    metadata; atomically, so a run killed while it writes leaves the previous checkpoint whole.
    BackupAndRestore's file."""
    tensors, metadata = _training_state(model)
    if not tensors:
        raise ValueError(f"Model '{model.name}' has no weights yet (it is not built)")
    for key, value in (extra or {}).items():
        if key in metadata or not isinstance(value, str):
            raise ValueError(f"save_checkpoint: metadata {key!r} is taken or not a string")
        metadata[key] = value
    _atomic_write(os.fspath(filepath), lambda f: write_safetensors(f, tensors, metadata),
                  overwrite=True)


def _renamed_slot(key: str, rename: dict) -> str:
    """'optimizer/<slot>/<variable path>' with the path renamed (scalars keep their names)."""
    parts = key.split("/", 2)
    if len(parts) == 3 and parts[2] in rename:
        parts[2] = rename[parts[2]]
    return "/".join(parts)


def load_checkpoint(model, filepath) -> dict:
    """Restores, in place, a checkpoint that save_checkpoint wrote for this model (weights by
    path, the optimizer's state, the random stream); returns the file's metadata. The file is
    checked against the model before the weights change."""
    path = os.fspath(filepath)
    with open(path, "rb") as f:
        data = f.read()
    tensors, metadata = read_safetensors(data, path)
    model._assert_built("a checkpoint")
    slots = {k: v for k, v in tensors.items() if k.startswith("optimizer/")}
    weights = {k: v for k, v in tensors.items() if k not in slots}
    names = {w.path: w.shape for w in model.weights}
    if set(names) != set(weights):
        # the same architecture with other layer names (made again in the same process): by
        # order, the order the weights were written in
        if [v.shape for v in weights.values()] != list(names.values()):
            raise ValueError(f"{path} is a checkpoint of another model than '{model.name}' "
                             "(its weights' names and shapes differ)")
        rename = dict(zip(weights, names))
        weights = {rename[k]: v for k, v in weights.items()}
        slots = {_renamed_slot(k, rename): v for k, v in slots.items()}
    elif any(names[k] != weights[k].shape for k in names):
        raise ValueError(f"{path} is a checkpoint of another model than '{model.name}' (its "
                         "weights' shapes differ)")
    _restore_optimizer(model, slots, metadata, path)
    _assign(model, weights, path, by_name=True)
    _restore_rng(model, metadata, path)
    return metadata

# -- pickling --------------------------------------------------------------------------------------
# pickle, copy.copy and copy.deepcopy go through the archive, as Keras 3's do: a model or a layer
# pickles as a call of `_unpickle_model` or `_unpickle_layer` on its archive's bytes, a Tensor or a
# Variable as a call of `_unpickle_tensor` or `_unpickle_variable` on its raw values. A pickle so
# holds no code and no object's __dict__, and the archive is checked as load_model checks a file.
# The pickle names these functions by the package, pynn.saving (see its __init__.py).
# (A pickle from someone else is never safe to load: pickle itself can call anything.)
_PICKLED = {"model": "<pickled model>", "layer": "<pickled layer>"}
_TENSOR_DTYPES = {"float32": "<f4", "int32": "<i4"}  # a Tensor's dtypes, pickled little-endian


def _archive_bytes(obj, kind: str) -> bytes:
    """The archive of a model or a layer (`kind`), in memory. What stops it (a class unpickling
    could not find, a config JSON cannot hold) is a TypeError, as pickle raises for an object it
    cannot pickle."""
    _check_findable(obj, kind)
    buffer = io.BytesIO()
    try:
        (_model_writer if kind == "model" else _layer_writer)(obj)(buffer)
    except (ValueError, NotImplementedError) as e:
        raise TypeError(f"Cannot pickle or copy {kind} '{obj.name}': {e}") from None
    return buffer.getvalue()


def _check_findable(obj, kind: str) -> None:
    """Raises TypeError when a class of `obj` (a model: its own, its layers' (and the layers they
    wrap), its optimizer's, losses' and metrics'; a layer: its own and its wrapped layers') is
    neither pynn's nor registered: unpickling, which has no custom_objects, could not find it.
    So does a learning-rate schedule other than pynn's, which the archive cannot describe."""
    from .. import schedules
    from ..layers import Layer
    from ..models import Sequential
    from ..models.functional import Functional

    classes, stack = [], [obj]
    if kind == "model":
        if type(obj) not in (Sequential, Functional):
            raise TypeError(f"Cannot pickle or copy model '{obj.name}': it is a "
                            f"{type(obj).__name__}; pynn pickles (and saves) Sequential and "
                            "functional models")
        stack = list(obj.layers)
        schedule = getattr(obj.optimizer, "_schedule", None)
        if schedule is not None and \
                schedules._BY_NAME.get(type(schedule).__name__) is not type(schedule):
            raise TypeError(f"Cannot pickle or copy model '{obj.name}': its optimizer's learning "
                            f"rate comes from {_brief(schedule)}, which unpickling could not "
                            "rebuild; pynn pickles fixed rates and its own schedules")
        if obj._compiled:
            classes += [(type(obj.optimizer), "optimizer")]
            classes += [(type(loss), "loss") for loss in obj._losses]
            from .. import metrics
            known = set(metrics.FUNCTIONS.values()) | set(_REGISTERED_NAMES)
            classes += [(m if isinstance(m, type) else type(m), "metric")
                        for specs in obj._metric_specs + (obj._weighted_specs or [])
                        for m in specs
                        if not isinstance(m, str) and m not in known]  # a function: by name
    seen = set()
    while stack:  # layers, and the layers they wrap (Bidirectional's, TimeDistributed's)
        layer = stack.pop()
        if id(layer) not in seen:
            seen.add(id(layer))
            classes.append((type(layer), "layer"))
            stack += [v for v in vars(layer).values() if isinstance(v, Layer)]
    for cls, what in classes:
        if cls not in _REGISTERED_NAMES and _builtins(what)[1].get(cls.__name__) is not cls:
            raise TypeError(f"Cannot pickle or copy {kind} '{obj.name}': its {what} class "
                            f"{cls.__module__}.{cls.__qualname__} is neither pynn's nor "
                            "registered, so unpickling could not find it; register it with "
                            "pynn.saving.register_keras_serializable")


def _unpickle_model(data: bytes):
    """The model `Model.__reduce__` pickled: its archive read and checked as load_model reads a
    file, compiled (when it was) with its optimizer state, and with its random state."""
    what = _PICKLED["model"]
    config, weights = _read_archive(io.BytesIO(data), what, len(data))
    return _model_from_archive(config, weights, what, None, True)


def _layer_writer(layer):
    """write(stream), which writes a standalone layer's archive: config.json holds its config and
    the arguments it was built with (`build_config`, as Keras writes it), model.safetensors its
    weights by path."""
    from .. import __version__

    build = layer._build_args
    config = {**serialize_keras_object(layer),
              "build_config": None if build is None else {"args": list(build[0]),
                                                          "kwargs": build[1]},
              "pynn_version": __version__, "format_version": FORMAT_VERSION}
    config_text = _dumps(config, f"Layer '{layer.name}''s config")
    tensors = {w.path: w for w in layer.weights}
    metadata = {"format": "pynn", "format_version": str(FORMAT_VERSION)}
    return lambda f: _write_archive(f, config_text, tensors, metadata)


def _unpickle_layer(data: bytes):
    """The layer `Layer.__reduce__` pickled: made from its config, built with the arguments it
    was built with, its weights restored; a layer of its own, in no model."""
    what = _PICKLED["layer"]
    config, weights = _read_archive(io.BytesIO(data), what, len(data))
    tensors, _ = read_safetensors(weights, f"{what}: {_WEIGHTS_FILE}")
    _check_config_ints(config, what)
    build = config.get("build_config")
    with _WeightBudget(sum(int(t.size) for t in tensors.values())):
        layer = deserialize_keras_object(config, None, "layer")
        if build is not None:
            _expect(build, dict, "build_config")
            args = _expect(build.get("args"), list, "build_config's args")
            kwargs = _expect(build.get("kwargs"), dict, "build_config's kwargs")
            layer.build(*_as_shapes(args), **_as_shapes(kwargs))
    _assign(layer, tensors, what, by_name=True)
    return layer


def _as_shapes(value):
    """Build arguments back from JSON: a shape (a list of ints and None) as a tuple, in lists and
    dicts alike."""
    if isinstance(value, dict):
        return {k: _as_shapes(v) for k, v in value.items()}
    if isinstance(value, list):
        if all(d is None or isinstance(d, int) and not isinstance(d, bool) for d in value):
            return tuple(value)
        return [_as_shapes(v) for v in value]
    return value


def _unpickle_tensor(dtype: str, shape: tuple, data: bytes, requires_grad: bool):
    """The Tensor `Tensor.__reduce__` pickled: a new leaf of these values (raw little-endian
    bytes)."""
    from ..tensor import Tensor

    if dtype not in _TENSOR_DTYPES:
        raise ValueError(f"A pickled Tensor has dtype {_brief(dtype)}; pynn's Tensors are "
                         "float32 or int32")
    values = np.frombuffer(data, _TENSOR_DTYPES[dtype]).reshape(shape).copy()  # writable
    return Tensor(values, requires_grad=bool(requires_grad))


def _unpickle_variable(data: bytes, shape: tuple, name: str, path: str, trainable: bool):
    """The Variable `Variable.__reduce__` pickled: a standalone one (in no model) of these values
    (raw little-endian float32 bytes), name, path and trainable flag."""
    from ..layers.base import Variable

    values = np.frombuffer(data, "<f4").reshape(shape).copy()
    return Variable(values, name=name, path=path, trainable=bool(trainable))
