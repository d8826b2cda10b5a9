"""generate: autoregressive sampling from a model that maps token windows to next-token scores.

The model takes int32 windows of a fixed length T, shape (batch, T), and returns either one score
vector per position, (batch, T, vocabulary) (a causal language model: a GPT, an RNN with
return_sequences=True), or one for the whole window, (batch, vocabulary) (a next-token
classifier). Each new token is a single `predict` call: an inference plan of the core, with no
backward buffers, reused from one token to the next.
"""

from __future__ import annotations

import numpy as np

__all__ = ["generate"]


def _window_length(model) -> int:
    shape = getattr(model, "input_shape", None)
    if not isinstance(shape, tuple) or len(shape) != 2 or shape[1] is None:
        raise ValueError(f"generate: the model must take one input, windows of token ids of a "
                         f"fixed length: shape (None, T); got {shape}")
    return int(shape[1])


def _per_position(model, width: int) -> bool:
    """Whether the model scores every position (batch, T, V), else the window (batch, V)."""
    shape = model.output_shape
    if isinstance(shape, tuple) and len(shape) == 3 and shape[1] == width:
        return True
    if isinstance(shape, tuple) and len(shape) == 2:
        return False
    raise ValueError(f"generate: the model must have one output of token scores, shape "
                     f"(None, T, vocabulary) or (None, vocabulary); got {shape}")


def generate(model, prompt, num_tokens: int, temperature: float = 1.0, top_k: int | None = None,
             seed: int | None = None, from_logits: bool | None = None,
             pad_id: int = 0) -> np.ndarray:
    """Extends `prompt` by `num_tokens` tokens, each drawn from the model's next-token
    distribution given (at most) the last T tokens.

    A prompt shorter than the window is placed at its start and padded after it with `pad_id`;
    the next token is read at the prompt's last position. That is exact for causal models, whose
    output at a position does not depend on later positions; a (batch, vocabulary) model instead
    gets the prompt left-padded, at the window's end.

    Args:
        model: a built model taking int32 windows (None, T) and returning (None, T, V) or
            (None, V) scores.
        prompt: token ids: a sequence (one prompt) or a 2-D array (a batch of prompts of one
            length), at least one token each.
        num_tokens: how many tokens to add (>= 0).
        temperature: divides the logits before sampling; 0 picks the most likely token.
        top_k: sample only among the k most likely tokens (None: all).
        seed: of the sampling's random generator (None: fresh entropy).
        from_logits: whether the model returns logits (True) or probabilities (False); None
            decides from the first output (non-negative rows that sum to 1 are probabilities).
        pad_id: the token that fills a window beyond a short prompt.

    Returns:
        The prompt followed by the new tokens, int32, (len + num_tokens) or
        (batch, len + num_tokens) as the prompt was given.

    Example:
        >>> ids = pynn.utils.generate(model, [12, 5, 7], 100, temperature=0.8, top_k=10)
    """
    width = _window_length(model)
    ids = np.asarray(prompt)
    if ids.dtype.kind not in "iu" and ids.size:
        raise TypeError(f"generate: the prompt must hold integer token ids, got {ids.dtype}")
    single = ids.ndim == 1
    ids = np.atleast_2d(ids).astype(np.int32)
    if ids.ndim != 2 or ids.shape[0] < 1 or ids.shape[1] < 1:
        raise ValueError(f"generate: the prompt must be a non-empty sequence of token ids (or a "
                         f"2-D batch of them), got shape {np.shape(prompt)}")
    if isinstance(num_tokens, bool) or not isinstance(num_tokens, (int, np.integer)) \
            or num_tokens < 0:
        raise ValueError(f"generate: num_tokens must be an integer >= 0, got {num_tokens!r}")
    if not temperature >= 0:
        raise ValueError(f"generate: temperature must be >= 0, got {temperature!r}")
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer))
                              or top_k < 1):
        raise ValueError(f"generate: top_k must be None or an integer >= 1, got {top_k!r}")

    rng = np.random.default_rng(seed)
    batch, n = ids.shape
    seq = np.empty((batch, n + num_tokens), np.int32)
    seq[:, :n] = ids
    window = np.empty((batch, width), np.int32)
    per_position = _per_position(model, width)
    for t in range(n, n + num_tokens):
        if t >= width:                    # the last T tokens
            window[:] = seq[:, t - width:t]
            pos = width - 1
        elif per_position:                # a short prefix at the start, read where it ends
            window.fill(pad_id)
            window[:, :t] = seq[:, :t]
            pos = t - 1
        else:                             # a short prefix at the end
            window.fill(pad_id)
            window[:, width - t:] = seq[:, :t]
            pos = width - 1
        y = model.predict(window, verbose=0)  # scores at the window's last real position:
        scores = (y[:, pos] if per_position else y).astype(np.float64)
        if from_logits is None:
            from_logits = not (np.all(scores >= 0) and np.allclose(scores.sum(-1), 1, atol=1e-3))
        logits = scores if from_logits else np.log(np.maximum(scores, 1e-30))
        seq[:, t] = _sample(logits, temperature, top_k, rng)
    return seq[0] if single else seq


def _sample(logits: np.ndarray, temperature: float, top_k: int | None,
            rng: np.random.Generator) -> np.ndarray:
    """One token per row of logits (batch, V)."""
    if temperature == 0:
        return logits.argmax(-1)
    logits = logits / temperature
    if top_k is not None and top_k < logits.shape[-1]:
        kth = np.partition(logits, -top_k, axis=-1)[:, -top_k][:, None]
        logits = np.where(logits < kth, -np.inf, logits)
    logits = logits - logits.max(-1, keepdims=True)
    p = np.exp(logits)
    p /= p.sum(-1, keepdims=True)
    u = rng.random((len(p), 1))
    return np.minimum((p.cumsum(-1) < u).sum(-1), p.shape[-1] - 1)
