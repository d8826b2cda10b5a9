"""timeseries_dataset_from_array: sliding windows over a sequence, in batches, as Keras."""

import numpy as np

from .dataset_utils import BatchDataset


def timeseries_dataset_from_array(data, targets, sequence_length, sequence_stride=1,
                                  sampling_rate=1, batch_size=128, shuffle=False, seed=None,
                                  start_index=None, end_index=None, format="tf"):
    """Batches of windows over `data`, as keras.utils.timeseries_dataset_from_array.

    Window i holds data[s, s + r, ..., s + (sequence_length - 1) * r] (r = sampling_rate) for
    the start s = start_index + i * sequence_stride; its target is targets[s].

    Args:
        data: an array (or list) of timesteps along axis 0.
        targets: the target of each window's first step (targets[i] for the window starting
            at i), or None for windows alone.
        sequence_length: steps per window.
        sequence_stride: the step between two windows' starts.
        sampling_rate: the step between two steps of a window.
        batch_size: windows per batch (None: single windows).
        shuffle: shuffle the windows (once with `seed`, as Keras orders the starts; again after
            each epoch).
        seed: the shuffle's seed.
        start_index, end_index: only data[start_index:end_index] is used.
        format: accepted for Keras's signature; batches are NumPy arrays.

    Returns:
        A BatchDataset of (windows, targets) batches, or windows alone; windows have shape
        (batch, sequence_length) + data.shape[1:].

    Example:
        >>> ds = pynn.utils.timeseries_dataset_from_array(np.arange(10), None, 3, batch_size=4)
        >>> ds[0]
        array([[0, 1, 2], [1, 2, 3], [2, 3, 4], [3, 4, 5]])
    """
    data = np.asarray(data)
    if data.ndim == 0:
        raise ValueError("timeseries_dataset_from_array: data must be an array of timesteps")
    for name, v in (("sequence_length", sequence_length), ("sequence_stride", sequence_stride),
                    ("sampling_rate", sampling_rate)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
            raise ValueError(f"`{name}` must be an int, got {v!r}")
    if start_index:
        if start_index < 0:
            raise ValueError(f"`start_index` must be 0 or greater. Received: "
                             f"start_index={start_index}")
        if start_index >= len(data):
            raise ValueError(f"`start_index` must be lower than the length of the data. "
                             f"Received: start_index={start_index}, for data of length "
                             f"{len(data)}")
    if end_index:
        if start_index and end_index <= start_index:
            raise ValueError(f"`end_index` must be higher than `start_index`. Received: "
                             f"start_index={start_index}, and end_index={end_index} ")
        if end_index >= len(data):
            raise ValueError(f"`end_index` must be lower than the length of the data. "
                             f"Received: end_index={end_index}, for data of length {len(data)}")
        if end_index <= 0:
            raise ValueError(f"`end_index` must be higher than 0. Received: "
                             f"end_index={end_index}")
    if sampling_rate <= 0:
        raise ValueError(f"`sampling_rate` must be higher than 0. Received: "
                         f"sampling_rate={sampling_rate}")
    if sampling_rate >= len(data):
        raise ValueError(f"`sampling_rate` must be lower than the length of the data. Received: "
                         f"sampling_rate={sampling_rate}, for data of length {len(data)}")
    if sequence_stride <= 0:
        raise ValueError(f"`sequence_stride` must be higher than 0. Received: "
                         f"sequence_stride={sequence_stride}")
    if sequence_stride >= len(data):
        raise ValueError(f"`sequence_stride` must be lower than the length of the data. "
                         f"Received: sequence_stride={sequence_stride}, for data of length "
                         f"{len(data)}")
    if batch_size is not None and (isinstance(batch_size, bool) or
                                   not isinstance(batch_size, (int, np.integer)) or
                                   batch_size < 1):
        raise ValueError(f"batch_size must be a positive int or None, got {batch_size!r}")
    start_index = start_index or 0
    end_index = end_index or len(data)
    steps = data[start_index:end_index]
    num_seqs = end_index - start_index - (sequence_length - 1) * sampling_rate
    if targets is not None:
        targets = np.asarray(targets)
        num_seqs = min(num_seqs, len(targets))
        target_steps = targets[start_index:end_index]
    starts = np.arange(0, max(num_seqs, 0), sequence_stride, dtype=np.int64)
    if shuffle:
        if seed is None:
            seed = np.random.randint(1e6)
        np.random.RandomState(seed).shuffle(starts)
    offsets = np.arange(sequence_length) * sampling_rate

    def load(indices):
        s = starts[indices]
        windows = steps[s[:, None] + offsets]
        return windows if targets is None else (windows, target_steps[s])

    return BatchDataset(len(starts), load, batch_size, shuffle, seed)
