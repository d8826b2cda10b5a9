"""pad_sequences: lists of variable-length sequences to one 2-D array, as Keras does."""

import numpy as np


def pad_sequences(sequences, maxlen: int | None = None, dtype="int32", padding: str = "pre",
                  truncating: str = "pre", value=0.0) -> np.ndarray:
    """Pads (or truncates) each sequence to `maxlen` and stacks them.

    Args:
        sequences: a list of sequences (lists or arrays of numbers, each of any length; entries
            may themselves be arrays of one shape).
        maxlen: the length of the output; the longest sequence's when None.
        dtype: the output's dtype ('int32').
        padding: 'pre' or 'post': where the padding goes.
        truncating: 'pre' or 'post': which end of a longer sequence is dropped.
        value: the padding value (0).

    Returns:
        An array of shape (len(sequences), maxlen) + the entries' shape.

    Example:
        >>> pynn.utils.pad_sequences([[1, 2], [3]], maxlen=3)
        array([[0, 1, 2], [0, 0, 3]], dtype=int32)
    """
    for name, v in (("padding", padding), ("truncating", truncating)):
        if v not in ("pre", "post"):
            raise ValueError(f"pad_sequences: {name} must be 'pre' or 'post', got {v!r}")
    try:
        seqs = [np.asarray(s) for s in sequences]
    except TypeError:
        raise ValueError("pad_sequences: `sequences` must be a list of sequences") from None
    if any(s.ndim == 0 for s in seqs):
        raise ValueError("pad_sequences: every entry of `sequences` must be a sequence")
    if maxlen is None:
        maxlen = max((len(s) for s in seqs), default=0)
    elif isinstance(maxlen, bool) or not isinstance(maxlen, (int, np.integer)) or maxlen < 0:
        raise ValueError(f"pad_sequences: maxlen must be an int >= 0, got {maxlen!r}")
    inner = next((s.shape[1:] for s in seqs if len(s)), ())
    if any(len(s) and s.shape[1:] != inner for s in seqs):
        raise ValueError(f"pad_sequences: the entries' shapes differ: expected {inner} for every "
                         "element of every sequence")
    out = np.full((len(seqs), maxlen) + inner, value, dtype=dtype)
    for i, s in enumerate(seqs):
        if not len(s) or not maxlen:
            continue
        kept = s[-maxlen:] if truncating == "pre" else s[:maxlen]
        if padding == "post":
            out[i, :len(kept)] = kept
        else:
            out[i, maxlen - len(kept):] = kept
    return out
