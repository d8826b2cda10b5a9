"""Reading the pickled data of Keras's data set files without unpickling.

imdb.npz and reuters.npz hold object arrays of lists of ints, which NumPy stores as a pickle
stream inside the .npy member; the CIFAR batches are pickled dicts of a uint8 array, lists of
ints and byte strings. `loads` runs a small stack machine that knows only the opcodes those
streams use and builds only their values: ints, bools, None, strings, bytes, lists, tuples,
dicts, and NumPy arrays of numbers or of objects (the only callables it accepts are
numpy's `_reconstruct` of an ndarray, `numpy.dtype` and `_codecs.encode(str, 'latin1')`, all
interpreted here, never looked up or called). Anything else raises ValueError. `read_npy` and
`read_npz` read .npy and .npz files with it.
"""

from __future__ import annotations

import ast
import io
import math
import os
import struct
import zipfile
import zlib

import numpy as np

__all__ = ["loads", "read_npy", "read_npz"]

_RECONSTRUCT = {("numpy.core.multiarray", "_reconstruct"),
                ("numpy._core.multiarray", "_reconstruct")}
_MAX_MEMBER = 1 << 31  # bytes of one .npz member read into memory at most


class _Global:
    def __init__(self, module: str, name: str):
        self.key = (module, name)


class _Array:  # an ndarray being rebuilt: _reconstruct(ndarray, (0,), b'b'), then BUILD
    value = None


class _DType:  # numpy.dtype(name, align, copy), then BUILD with its byte order
    def __init__(self, name: str):
        self.name, self.value = name, None


class _Mark:
    pass


def _fail(msg: str):
    raise ValueError(f"pickled data refused: {msg}")


def _dtype(spec: _DType) -> np.dtype:
    if not isinstance(spec, _DType) or spec.value is None:
        _fail("an array's dtype is not a numpy.dtype")
    return spec.value


def _build_dtype(d: _DType, state) -> None:
    if not (isinstance(state, tuple) and len(state) in (8, 9) and state[1] in "<>|="
            and isinstance(state[1], str)):
        _fail(f"a dtype's state {state!r:.80} is not numpy's")
    if state[2:5] != (None, None, None):
        _fail("structured dtypes are not accepted")
    name = d.name
    if name == "O8" or name == "O4" or name == "O":
        d.value = np.dtype(object)
        return
    if len(name) < 2 or name[0] not in "biuf" or not name[1:].isdigit():
        _fail(f"dtype {name!r} is not a plain number type")
    dt = np.dtype(name)
    d.value = dt.newbyteorder(state[1]) if state[1] in "<>" else dt


def _build_array(a: _Array, state) -> None:
    if not (isinstance(state, tuple) and len(state) == 5 and state[0] == 1
            and isinstance(state[1], tuple) and isinstance(state[3], bool)):
        _fail(f"an array's state {type(state).__name__} is not numpy's")
    _, shape, dt, fortran, data = state
    dt = _dtype(dt)
    if any(isinstance(n, bool) or not isinstance(n, int) or n < 0 for n in shape) \
            or len(shape) > 32:
        _fail(f"an array's shape {shape!r:.80} is not a tuple of sizes")
    n = math.prod(shape)
    order = "F" if fortran else "C"
    if dt == np.dtype(object):
        if not isinstance(data, list) or len(data) != n:
            _fail("an object array's items are not a list of its size")
        out = np.empty(n, dtype=object)
        for i, item in enumerate(data):
            out[i] = item
        a.value = out.reshape(shape, order=order)
        return
    if not isinstance(data, bytes) or len(data) != n * dt.itemsize:
        _fail(f"an array of shape {shape} and dtype {dt} holds "
              f"{len(data) if isinstance(data, bytes) else type(data).__name__} bytes")
    a.value = np.frombuffer(data, dtype=dt).reshape(shape, order=order).copy()


def _reduce(func, args):
    if not isinstance(func, _Global) or not isinstance(args, tuple):
        _fail("a call to something other than numpy's array rebuilders")
    if func.key in _RECONSTRUCT:
        if len(args) != 3 or not isinstance(args[0], _Global) or \
                args[0].key != ("numpy", "ndarray") or args[1] != (0,) or args[2] != b"b":
            _fail("_reconstruct with other arguments than numpy's")
        return _Array()
    if func.key == ("numpy", "dtype"):
        if len(args) != 3 or not isinstance(args[0], str) or len(args[0]) > 8:
            _fail("numpy.dtype with other arguments than numpy's")
        return _DType(args[0])
    if func.key == ("_codecs", "encode"):
        if len(args) != 2 or not isinstance(args[0], str) or args[1] != "latin1":
            _fail("_codecs.encode with other arguments than a latin1 string")
        return args[0].encode("latin1")
    _fail(f"a call to {'.'.join(func.key)}")


def _resolve(v):
    """The finished value: rebuilt arrays replace their placeholders."""
    if isinstance(v, _Array):
        if v.value is None:
            _fail("an array was never given its data")
        return v.value
    if isinstance(v, (_DType, _Global, _Mark)):
        _fail("a dtype or a class is not a data value")
    return v


def loads(data: bytes, encoding: str = "bytes"):
    """The value of a pickle stream of the structures Keras's data files hold (see the module).

    Args:
        data: the stream.
        encoding: how Python 2 strings (BINSTRING) are read: 'bytes' (as bytes) or 'latin1'.

    Raises:
        ValueError: an opcode, a callable or a structure those files do not have, or a
            truncated stream.
    """
    view = memoryview(data)
    pos, n = 0, len(data)
    stack: list = []
    memo: dict = {}

    def take(k: int) -> bytes:
        nonlocal pos
        if k < 0 or pos + k > n:
            _fail(f"truncated: {k} bytes wanted at offset {pos} of {n}")
        out = bytes(view[pos:pos + k])
        pos += k
        return out

    def unpack(fmt: str):
        return struct.unpack(fmt, take(struct.calcsize(fmt)))[0]

    def pop_mark() -> list:
        for i in range(len(stack) - 1, -1, -1):
            if isinstance(stack[i], _Mark):
                items = stack[i + 1:]
                del stack[i:]
                return items
        _fail("no MARK on the stack")

    def pop():
        if not stack:
            _fail("stack underflow")
        return stack.pop()

    def top():
        if not stack:
            _fail("stack underflow")
        return stack[-1]

    def text(raw: bytes) -> str:
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            _fail("a string is not UTF-8")

    def resolve_items(items):
        return [_resolve(v) for v in items]

    def setitems(d, items):
        if not isinstance(d, dict) or len(items) % 2:
            _fail("SETITEMS on something other than a dict")
        for k, v in zip(items[::2], items[1::2]):
            if not isinstance(k, (str, bytes, int)):
                _fail("a dict key that is not a string or an int")
            d[k] = _resolve(v)

    while True:
        op = take(1)[0]
        if op == 0x80:  # PROTO
            if take(1)[0] > 5:
                _fail("an unknown pickle protocol")
        elif op == 0x95:  # FRAME
            take(8)
        elif op == 0x2E:  # STOP
            if len(stack) != 1:
                _fail("the stream did not end with one value")
            if pos != n:
                _fail(f"{n - pos} bytes after the end of the stream")
            return _resolve(stack[0])
        elif op == 0x28:  # MARK
            stack.append(_Mark())
        elif op == 0x7D:  # EMPTY_DICT
            stack.append({})
        elif op == 0x5D:  # EMPTY_LIST
            stack.append([])
        elif op == 0x29:  # EMPTY_TUPLE
            stack.append(())
        elif op == 0x74:  # TUPLE
            stack.append(tuple(pop_mark()))
        elif op in (0x85, 0x86, 0x87):  # TUPLE1..3
            k = op - 0x84
            if len(stack) < k or any(isinstance(v, _Mark) for v in stack[-k:]):
                _fail("stack underflow")
            items = tuple(stack[-k:])
            del stack[-k:]
            stack.append(items)
        elif op == 0x61:  # APPEND
            v = pop()
            lst = top()
            if not isinstance(lst, list):
                _fail("APPEND to something other than a list")
            lst.append(_resolve(v))
        elif op == 0x65:  # APPENDS
            items = pop_mark()
            lst = top()
            if not isinstance(lst, list):
                _fail("APPENDS to something other than a list")
            lst.extend(resolve_items(items))
        elif op == 0x73:  # SETITEM
            v = pop()
            k = pop()
            setitems(top(), [k, v])
        elif op == 0x75:  # SETITEMS
            items = pop_mark()
            setitems(top(), items)
        elif op == 0x4A:  # BININT
            stack.append(unpack("<i"))
        elif op == 0x4B:  # BININT1
            stack.append(take(1)[0])
        elif op == 0x4D:  # BININT2
            stack.append(unpack("<H"))
        elif op == 0x8A:  # LONG1
            k = take(1)[0]
            if k > 8:
                _fail("an integer wider than 64 bits")
            stack.append(int.from_bytes(take(k), "little", signed=True))
        elif op == 0x4E:  # NONE
            stack.append(None)
        elif op == 0x88:  # NEWTRUE
            stack.append(True)
        elif op == 0x89:  # NEWFALSE
            stack.append(False)
        elif op == 0x58:  # BINUNICODE
            stack.append(text(take(unpack("<I"))))
        elif op == 0x8C:  # SHORT_BINUNICODE
            stack.append(text(take(take(1)[0])))
        elif op == 0x8D:  # BINUNICODE8
            stack.append(text(take(unpack("<Q"))))
        elif op in (0x54, 0x55):  # BINSTRING, SHORT_BINSTRING (Python 2's str)
            raw = take(unpack("<i") if op == 0x54 else take(1)[0])
            stack.append(raw if encoding == "bytes" else raw.decode("latin1"))
        elif op == 0x42:  # BINBYTES
            stack.append(take(unpack("<I")))
        elif op == 0x43:  # SHORT_BINBYTES
            stack.append(take(take(1)[0]))
        elif op == 0x8E:  # BINBYTES8
            stack.append(take(unpack("<Q")))
        elif op == 0x71:  # BINPUT
            memo[take(1)[0]] = top()
        elif op == 0x72:  # LONG_BINPUT
            memo[unpack("<I")] = top()
        elif op == 0x94:  # MEMOIZE
            memo[len(memo)] = top()
        elif op in (0x68, 0x6A):  # BINGET, LONG_BINGET
            key = take(1)[0] if op == 0x68 else unpack("<I")
            if key not in memo:
                _fail(f"memo entry {key} was never stored")
            stack.append(memo[key])
        elif op == 0x63:  # GLOBAL: "module\nname\n"
            end1 = data.find(b"\n", pos, pos + 256)
            end2 = data.find(b"\n", end1 + 1, end1 + 257) if end1 >= 0 else -1
            if end1 < 0 or end2 < 0:
                _fail("a GLOBAL without its names")
            module = take(end1 - pos).decode("latin1")
            take(1)
            name = take(end2 - pos).decode("latin1")
            take(1)
            stack.append(_Global(module, name))
        elif op == 0x93:  # STACK_GLOBAL
            name, module = pop(), pop()
            if not isinstance(name, str) or not isinstance(module, str):
                _fail("STACK_GLOBAL of something other than two strings")
            stack.append(_Global(module, name))
        elif op == 0x52:  # REDUCE
            args = pop()
            func = pop()
            stack.append(_reduce(func, args))
        elif op == 0x62:  # BUILD
            state = pop()
            obj = top()
            if isinstance(obj, _DType) and obj.value is None:
                _build_dtype(obj, state)
            elif isinstance(obj, _Array) and obj.value is None:
                _build_array(obj, state)
            else:
                _fail("BUILD of something other than a new array or dtype")
        else:
            _fail(f"opcode 0x{op:02x} at offset {pos - 1} is not accepted")


def _parse_header(f, name: str) -> tuple[np.dtype | str, bool, tuple]:
    magic = f.read(8)
    if len(magic) < 8 or magic[:6] != b"\x93NUMPY":
        raise ValueError(f"{name} is not a .npy array")
    major = magic[6]
    if major == 1:
        raw = f.read(2)
        size = struct.unpack("<H", raw)[0] if len(raw) == 2 else -1
    elif major in (2, 3):
        raw = f.read(4)
        size = struct.unpack("<I", raw)[0] if len(raw) == 4 else -1
    else:
        raise ValueError(f"{name}: unknown .npy version {major}")
    header = f.read(size) if 0 <= size <= 1 << 16 else b""
    if size < 0 or len(header) != size:
        raise ValueError(f"{name}: truncated .npy header")
    try:
        d = ast.literal_eval(header.decode("utf-8" if major == 3 else "latin1"))
    except (ValueError, SyntaxError, UnicodeDecodeError, MemoryError, RecursionError):
        raise ValueError(f"{name}: unreadable .npy header") from None
    if not (isinstance(d, dict) and set(d) == {"descr", "fortran_order", "shape"}
            and isinstance(d["descr"], str) and isinstance(d["fortran_order"], bool)
            and isinstance(d["shape"], tuple)
            and all(isinstance(s, int) and not isinstance(s, bool) and s >= 0
                    for s in d["shape"])):
        raise ValueError(f"{name}: the .npy header is not NumPy's")
    return d["descr"], d["fortran_order"], d["shape"]


def read_npy(data: bytes, name: str = "array") -> np.ndarray:
    """A .npy array from its bytes: numbers as NumPy reads them (no pickle), object arrays
    through `loads`.

    Raises:
        ValueError: the data is not a .npy array of numbers or of the accepted objects.
    """
    f = io.BytesIO(data)
    descr, fortran, shape = _parse_header(f, name)
    if descr != "|O":
        f.seek(0)
        try:
            return np.lib.format.read_array(f, allow_pickle=False)
        except (ValueError, OSError, EOFError) as e:
            raise ValueError(f"{name}: {e}") from e
    value = loads(data[f.tell():])
    if not isinstance(value, np.ndarray) or value.dtype != object or value.shape != shape:
        raise ValueError(f"{name}: the pickled object array does not match its header "
                         f"(shape {shape})")
    return value


def read_npz(path, keys) -> dict[str, np.ndarray]:
    """The arrays `keys` of an .npz archive, object arrays read with `loads`.

    Raises:
        ValueError: the archive is unreadable, lacks a key, or an array is refused.
    """
    name = os.fspath(path)
    out = {}
    try:
        with zipfile.ZipFile(path) as zf:
            members = {n[:-4] if n.endswith(".npy") else n: n for n in zf.namelist()}
            for key in keys:
                if key not in members:
                    raise ValueError(f"Archive {name!r} lacks the array {key!r}; it holds "
                                     f"{sorted(members)}")
                info = zf.getinfo(members[key])
                if info.file_size > _MAX_MEMBER:
                    raise ValueError(f"{name}: member {key!r} claims {info.file_size} bytes")
                out[key] = read_npy(zf.read(info), f"{name}[{key}]")
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, NotImplementedError,
            RuntimeError) as e:
        raise ValueError(f"Could not read {name!r} as an .npz archive: {e}") from e
    return out
