"""Shared helpers for the dataset loaders: locating, hashing, downloading
and reading files.

Nothing here ever unpickles data: IDX files are parsed by hand and `.npz`
archives are read with `allow_pickle=False`.
"""

from __future__ import annotations

import gzip
import hashlib
import math
import os
import threading
import uuid
import zipfile
import zlib
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import BinaryIO, Union
from urllib.request import urlopen

import numpy as np

__all__ = [
    "ENV_VAR",
    "IDX_MAGIC_IMAGES",
    "IDX_MAGIC_LABELS",
    "cache_dir",
    "dataset_roots",
    "download",
    "fetch",
    "first_existing",
    "read_idx",
    "read_npz",
    "sha256_file",
    "verify_file",
]

PathLike = Union[str, "os.PathLike[str]"]

#: Environment variable naming a folder laid out like `shared/data`.
ENV_VAR = "PYNN_DATASETS"

#: IDX magic number of a 3-D uint8 array (images).
IDX_MAGIC_IMAGES = 2051
#: IDX magic number of a 1-D uint8 array (labels).
IDX_MAGIC_LABELS = 2049

# IDX type byte -> numpy dtype. Only unsigned bytes are needed (and accepted).
_IDX_DTYPES = {0x08: np.dtype(np.uint8)}

_CHUNK = 1 << 20  # 1 MiB, for hashing and downloading.
_FETCH_TIMEOUT_S = 60.0


# --------------------------------------------------------------------------
# Locating
# --------------------------------------------------------------------------


def cache_dir() -> Path:
    """Returns the per-user dataset folder, `~/.pynn/datasets`.

    It is computed on every call, so a changed `HOME` takes effect at once.
    The folder is not created here.
    """
    return Path(os.path.expanduser("~")) / ".pynn" / "datasets"


def dataset_roots() -> list[Path]:
    """Returns the folders searched for data, in lookup order.

    First the folder named by the `PYNN_DATASETS` environment variable (when
    set and not empty), then `~/.pynn/datasets`. Each folder holds one
    subfolder per data set, e.g. `mnist/`.

    Returns:
        A list of `Path` objects; they need not exist.
    """
    roots: list[Path] = []
    env = os.environ.get(ENV_VAR, "").strip()
    if env:
        roots.append(Path(os.path.expanduser(env)))
    home = cache_dir()
    if not any(_same_path(home, r) for r in roots):
        roots.append(home)
    return roots


def _same_path(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.abspath(a) == os.path.abspath(b)


# --------------------------------------------------------------------------
# Hashing
# --------------------------------------------------------------------------

# (real path, device, inode, size, mtime_ns) -> sha256 hex digest.
_hash_cache: dict[tuple[str, int, int, int, int], str] = {}
_hash_lock = threading.Lock()


def sha256_file(path: PathLike) -> str:
    """Computes the SHA-256 of a file, streaming it in 1 MiB chunks.

    Args:
        path: the file to hash.

    Returns:
        The hex digest, lower case.
    """
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def _cache_key(path: PathLike) -> tuple[str, int, int, int, int]:
    st = os.stat(path)
    return (os.path.realpath(path), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def verify_file(path: PathLike, expected_sha256: str) -> None:
    """Checks a file's SHA-256 and raises if it differs.

    The digest is cached in-process per (path, size, mtime), so verifying an
    unchanged file again costs only a `stat`.

    Args:
        path: the file to check.
        expected_sha256: the expected hex digest (an md5 one when 32 digits long).

    Raises:
        ValueError: the file's digest is not `expected_sha256`.

    Example:

    >>> verify_file("mnist/train-labels-idx1-ubyte.gz",
    ...             "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c")
    """
    if len(expected_sha256) == 32:  # an md5 digest, as Keras gives for its word indexes
        h = hashlib.md5()
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(_CHUNK), b""):
                h.update(chunk)
        if h.hexdigest() != expected_sha256.lower():
            raise ValueError(
                f"File {os.fspath(path)!r} failed its integrity check: md5 is "
                f"{h.hexdigest()}, expected {expected_sha256.lower()}. The file is corrupt, "
                "truncated or not the expected one; delete or replace it."
            )
        return
    key = _cache_key(path)
    with _hash_lock:
        digest = _hash_cache.get(key)
    if digest is None:
        digest = sha256_file(path)
        # Only remember it if the file did not change while it was hashed.
        if _cache_key(path) == key:
            with _hash_lock:
                _hash_cache[key] = digest
    if digest != expected_sha256.lower():
        raise ValueError(
            f"File {os.fspath(path)!r} failed its integrity check: sha256 is "
            f"{digest}, expected {expected_sha256.lower()}. The file is corrupt, "
            "truncated or not the expected one; delete or replace it."
        )


# --------------------------------------------------------------------------
# Downloading
# --------------------------------------------------------------------------


def fetch(url: str, fileobj: BinaryIO, desc: str | None = None) -> None:
    """Streams the resource at `url` into an open binary file.

    Uses `urllib` from the standard library and shows a `tqdm` progress bar
    when `tqdm` is installed. Tests replace this function to avoid the
    network.

    Args:
        url: the address to read (any scheme `urllib` opens, `file://` too).
        fileobj: a binary file object opened for writing.
        desc: a label for the progress bar.
    """
    with urlopen(url, timeout=_FETCH_TIMEOUT_S) as response:
        length = response.headers.get("Content-Length") if response.headers else None
        total = int(length) if length and length.isdigit() else None
        try:
            from tqdm.auto import tqdm  # optional
        except ImportError:  # pragma: no cover - depends on the environment
            tqdm = None
        bar = (
            tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=desc)
            if tqdm is not None
            else None
        )
        try:
            while True:
                chunk = response.read(_CHUNK)
                if not chunk:
                    break
                fileobj.write(chunk)
                if bar is not None:
                    bar.update(len(chunk))
        finally:
            if bar is not None:
                bar.close()


def download(url: str, dest: PathLike, sha256: str) -> Path:
    """Downloads `url` to `dest`, atomically and checked against `sha256`.

    The data is written to a temporary file beside `dest`, hashed, and only
    then moved into place with `os.replace`, so `dest` never holds a partial
    or unverified file. On any failure the temporary file is removed.

    Args:
        url: where to download from.
        dest: the final path of the file; its folder is created if needed.
        sha256: the expected hex digest of the file.

    Returns:
        `dest` as a `Path`.

    Raises:
        ValueError: the downloaded data has another digest (nothing is kept).
        OSError: the download itself failed (nothing is kept).

    Example:

    >>> download("https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz",
    ...          "~/.pynn/datasets/mnist/mnist.npz",
    ...          "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1")
    """
    dest = Path(os.path.expanduser(os.fspath(dest)))
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.parent / f".{dest.name}.{os.getpid()}.{uuid.uuid4().hex}.part"
    print(f"Downloading data from {url}")
    try:
        # "xb" honours the umask, unlike tempfile's 0600 files.
        with open(tmp, "xb") as f:
            fetch(url, f, desc=dest.name)
        digest = sha256_file(tmp)
        if digest != sha256.lower():
            raise ValueError(
                f"Downloaded file for {os.fspath(dest)!r} from {url} failed its "
                f"integrity check: sha256 is {digest}, expected {sha256.lower()}. "
                "The file was deleted; the download was corrupt or the source "
                "changed."
            )
        os.replace(tmp, dest)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return dest


def locate(subdir: str, files: dict[str, str], origin: str) -> Path:
    """The folder holding every file of a data set, each checked against its SHA-256.

    The first data root (see `dataset_roots`) whose `subdir/` holds all of `files` is used;
    failing that, the missing files are downloaded from `origin` + name into
    `~/.pynn/datasets/subdir/`.

    Args:
        subdir: the data set's folder name, e.g. "fashion-mnist".
        files: file name -> expected sha256 hex digest.
        origin: the URL prefix the files are downloaded from.

    Returns:
        The folder, as a `Path`.

    Raises:
        ValueError: a file fails its SHA-256 check.
        OSError: a download failed.
    """
    for root in dataset_roots():
        folder = root / subdir
        if all((folder / name).is_file() for name in files):
            break
    else:
        folder = cache_dir() / subdir
        for name, digest in files.items():
            if not (folder / name).is_file():
                download(origin + name, folder / name, digest)
    for name, digest in files.items():
        verify_file(folder / name, digest)
    return folder


# --------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------


def _open_maybe_gzip(path: PathLike) -> BinaryIO:
    """Opens `path` for reading, decompressing it if it starts like gzip."""
    with open(path, "rb") as f:
        head = f.read(2)
    if head == b"\x1f\x8b":
        return gzip.open(path, "rb")  # type: ignore[return-value]
    return open(path, "rb")


def _read_exact(f: BinaryIO, n: int) -> bytes:
    data = f.read(n)
    return data if data is not None else b""


def read_idx(
    path: PathLike,
    expected_magic: int | None = None,
    expected_shape: Sequence[int | None] | None = None,
) -> np.ndarray:
    """Reads an IDX file (as used by MNIST), gzip-compressed or plain.

    The header is validated before any data is used: two zero bytes, the type
    byte (0x08, unsigned byte), the number of dimensions and the dimensions;
    the payload must hold exactly as many bytes as the dimensions call for.
    The data is decompressed straight into the returned (writable) array.

    Args:
        path: the file; compression is detected from its first bytes.
        expected_magic: if given, the required magic number, e.g. 2051 for
            images (3-D uint8) or 2049 for labels (1-D uint8).
        expected_shape: if given, the required shape; `None` entries match
            any size.

    Returns:
        A `uint8` NumPy array with the file's dimensions.

    Raises:
        ValueError: the file is truncated, corrupt or not the expected IDX.

    Example:

    >>> labels = read_idx("mnist/train-labels-idx1-ubyte.gz", expected_magic=2049)
    >>> labels.shape
    (60000,)
    """
    name = os.fspath(path)
    try:
        with _open_maybe_gzip(path) as f:
            head = _read_exact(f, 4)
            if len(head) < 4:
                raise ValueError(
                    f"IDX file {name!r} is truncated: {len(head)} header bytes, expected 4."
                )
            magic = int.from_bytes(head, "big")
            if head[0] != 0 or head[1] != 0:
                raise ValueError(
                    f"IDX file {name!r} has a bad magic number {magic} "
                    f"(0x{magic:08x}); it is not an IDX file."
                )
            if expected_magic is not None and magic != expected_magic:
                raise ValueError(
                    f"IDX file {name!r} has magic number {magic}, expected {expected_magic}."
                )
            type_code, ndim = head[2], head[3]
            if type_code not in _IDX_DTYPES:
                raise ValueError(
                    f"IDX file {name!r} has data type 0x{type_code:02x}; "
                    "only 0x08 (unsigned byte) is supported."
                )
            if ndim == 0:
                raise ValueError(f"IDX file {name!r} declares 0 dimensions.")
            dims_raw = _read_exact(f, 4 * ndim)
            if len(dims_raw) < 4 * ndim:
                raise ValueError(
                    f"IDX file {name!r} is truncated inside its header "
                    f"({ndim} dimensions declared)."
                )
            shape = tuple(int(d) for d in np.frombuffer(dims_raw, dtype=">u4"))
            if expected_shape is not None and (
                len(expected_shape) != len(shape)
                or any(e is not None and e != s for e, s in zip(expected_shape, shape))
            ):
                want = tuple("?" if e is None else e for e in expected_shape)
                raise ValueError(
                    f"IDX file {name!r} has shape {shape}, expected {want}."
                )
            dtype = _IDX_DTYPES[type_code]
            nbytes = math.prod(shape) * dtype.itemsize
            # A header can claim any size: check it against the file before allocating it.
            # Deflate expands at most about 1032-fold.
            size = os.fstat(f.fileno()).st_size
            room = 1032 * size if isinstance(f, gzip.GzipFile) else size - 4 - 4 * ndim
            if nbytes > room:
                raise ValueError(
                    f"IDX file {name!r} is truncated or corrupt: its dimensions {shape} "
                    f"call for {nbytes} bytes of data, more than its {size} bytes can hold."
                )
            out = np.empty(shape, dtype=dtype)
            view = memoryview(out.reshape(-1)).cast("B")
            pos = 0
            while pos < nbytes:
                n = f.readinto(view[pos:])
                if not n:
                    break
                pos += n
            view.release()
            if pos < nbytes:
                raise ValueError(
                    f"IDX file {name!r} is truncated: {pos} data bytes, expected "
                    f"{nbytes} for shape {shape}."
                )
            if _read_exact(f, 1):  # also makes gzip check its CRC and length
                raise ValueError(
                    f"IDX file {name!r} has trailing data after the {nbytes} "
                    f"bytes its header declares for shape {shape}."
                )
    except (EOFError, zlib.error, gzip.BadGzipFile) as e:
        raise ValueError(
            f"IDX file {name!r} is truncated or its compression is corrupt: {e}"
        ) from e
    return out


def read_npz(
    path: PathLike,
    expected: dict[str, tuple[tuple[int, ...], np.dtype]],
) -> dict[str, np.ndarray]:
    """Reads named arrays from an `.npz` archive without ever unpickling.

    Args:
        path: the archive.
        expected: key -> (shape, dtype) for every array wanted; each is
            checked. Other keys in the archive are ignored.

    Returns:
        A dict from key to array, for the keys of `expected`.

    Raises:
        ValueError: the archive is unreadable, lacks a key, holds object data,
            or an array has another shape or dtype.

    Example:

    >>> arrays = read_npz("mnist.npz", {"y_test": ((10000,), np.dtype("uint8"))})
    """
    name = os.fspath(path)
    out: dict[str, np.ndarray] = {}
    # The file is opened here, not by np.load, so it is closed on every path.
    with open(path, "rb") as f:
        try:
            archive = np.load(f, allow_pickle=False)
        except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:
            raise ValueError(f"Could not read {name!r} as an .npz archive: {e}") from e
        if not isinstance(archive, np.lib.npyio.NpzFile):
            raise ValueError(f"File {name!r} holds a single .npy array, not an .npz archive.")
        with archive:
            missing = [k for k in expected if k not in archive.files]
            if missing:
                raise ValueError(
                    f"Archive {name!r} lacks the arrays {missing}; it holds {archive.files}."
                )
            for key, (shape, dtype) in expected.items():
                try:
                    arr = archive[key]
                except (ValueError, OSError, EOFError, zlib.error, zipfile.BadZipFile) as e:
                    raise ValueError(
                        f"Could not read array {key!r} from {name!r} "
                        f"(corrupt, or object data that needs pickle): {e}"
                    ) from e
                if arr.dtype != dtype or arr.shape != tuple(shape):
                    raise ValueError(
                        f"Array {key!r} in {name!r} has shape {arr.shape} and dtype "
                        f"{arr.dtype}, expected shape {tuple(shape)} and dtype "
                        f"{np.dtype(dtype)}."
                    )
                out[key] = arr
    return out


def first_existing(candidates: Iterable[Path]) -> Path | None:
    """Returns the first path in `candidates` that is a file, or `None`."""
    for p in candidates:
        if p.is_file():
            return p
    return None
