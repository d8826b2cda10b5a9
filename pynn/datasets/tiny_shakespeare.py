"""Tiny Shakespeare: 1.1 MB of Shakespeare's plays as plain text, for character-level models."""

from __future__ import annotations

import numpy as np

from . import _files

__all__ = ["load_data"]

ORIGIN = "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/"
FILE_SHA256 = {"input.txt": "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"}
_SUBDIR = "tinyshakespeare"


def load_data(as_codes: bool = False):
    """Loads the text of Tiny Shakespeare (char-rnn's `input.txt`, ASCII, 65 distinct
    characters), from `$PYNN_DATASETS/tinyshakespeare/`, then `~/.pynn/datasets/tinyshakespeare/`,
    else downloaded there; the file is checked against its SHA-256.

    Args:
        as_codes: return `(codes, vocabulary)` instead of the text: the characters as uint8
            indices into `vocabulary`, the sorted string of distinct characters.

    Returns:
        The text (a str), or `(codes, vocabulary)`.

    Example:
        >>> codes, vocab = pynn.datasets.tiny_shakespeare.load_data(as_codes=True)
        >>> len(vocab)
        65
    """
    if not isinstance(as_codes, bool):
        raise TypeError(f"as_codes must be True or False, got {as_codes!r}")
    folder = _files.locate(_SUBDIR, FILE_SHA256, ORIGIN)
    text = (folder / "input.txt").read_text(encoding="ascii")
    if not as_codes:
        return text
    raw = np.frombuffer(text.encode("ascii"), dtype=np.uint8)
    chars, codes = np.unique(raw, return_inverse=True)
    return codes.astype(np.uint8), bytes(chars).decode("ascii")
