"""What cifar10 and cifar100 share: reading a batch of the python tarball, without unpickling."""

from __future__ import annotations

import tarfile
import zlib

import numpy as np

from . import _pickle


def read_batches(tar_path, members: list[str], label_key: str):
    """{member: (data (n, 3, 32, 32) uint8, labels (n,) uint8)} of the tarball's batches.

    Raises:
        ValueError: the tarball is unreadable, lacks a member, or a batch is not CIFAR's dict.
    """
    out = {}
    try:
        with tarfile.open(tar_path) as tf:
            for name in members:
                try:
                    info = tf.getmember(name)
                except KeyError:
                    raise ValueError(f"{tar_path}: the archive lacks {name!r}") from None
                if not info.isfile() or info.size > 1 << 30:
                    raise ValueError(f"{tar_path}: {name!r} is not a plain file of sane size")
                f = tf.extractfile(info)
                with f:
                    out[name] = load_batch(f.read(), name, label_key)
    except (tarfile.TarError, zlib.error, EOFError, OSError) as e:
        raise ValueError(f"Could not read {tar_path!r} as a tar archive: {e}") from e
    return out


def load_batch(data: bytes, name: str, label_key: str = "labels"):
    """(data (n, 3, 32, 32) uint8, labels (n,) uint8) of one pickled CIFAR batch."""
    d = _pickle.loads(data, encoding="bytes")
    if not isinstance(d, dict):
        raise ValueError(f"{name}: a CIFAR batch is a dict, got {type(d).__name__}")
    d = {k.decode("utf8") if isinstance(k, bytes) else k: v for k, v in d.items()}
    images, labels = d.get("data"), d.get(label_key)
    if not isinstance(images, np.ndarray) or images.dtype != np.uint8 or images.ndim != 2 \
            or images.shape[1] != 3 * 32 * 32:
        raise ValueError(f"{name}: 'data' must be a uint8 array of shape (n, 3072)")
    if not isinstance(labels, list) or len(labels) != len(images) or not all(
            isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 256 for v in labels):
        raise ValueError(f"{name}: {label_key!r} must be a list of {len(images)} int labels")
    return images.reshape(len(images), 3, 32, 32), np.asarray(labels, dtype=np.uint8)
