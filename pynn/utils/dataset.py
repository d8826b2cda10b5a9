"""PyDataset (alias Sequence): data that comes in batches, as Keras 3's keras.utils.PyDataset.

Subclass it with `__len__` (batches per epoch) and `__getitem__(index)` (one batch: `(x, y)` or
`(x, y, sample_weight)`, arrays or lists/dicts of arrays for several inputs or outputs), and pass
it to fit, evaluate or predict in place of arrays. `on_epoch_end` runs after each epoch (reshuffle
there). Batches are read in the calling thread, in order.
"""


class PyDataset:
    """Base class of batch-producing datasets for fit/evaluate/predict.

    Args:
        workers, use_multiprocessing, max_queue_size: Keras's loading options; pynn reads the
            batches in the calling thread, so they only have to be valid.

    Example:
        >>> class Batches(pynn.utils.PyDataset):
        ...     def __init__(self, x, y, batch_size=32, **kwargs):
        ...         super().__init__(**kwargs)
        ...         self.x, self.y, self.batch_size = x, y, batch_size
        ...     def __len__(self):
        ...         return -(-len(self.x) // self.batch_size)
        ...     def __getitem__(self, i):
        ...         s = slice(i * self.batch_size, (i + 1) * self.batch_size)
        ...         return self.x[s], self.y[s]
        >>> model.fit(Batches(x, y), epochs=3)
    """

    def __init__(self, workers: int = 1, use_multiprocessing: bool = False,
                 max_queue_size: int = 10):
        for name, value in (("workers", workers), ("max_queue_size", max_queue_size)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"PyDataset: {name} must be a positive int, got {value!r}")
        self.workers, self.use_multiprocessing = workers, bool(use_multiprocessing)
        self.max_queue_size = max_queue_size

    def __getitem__(self, index):
        raise NotImplementedError(f"{type(self).__name__} must define __getitem__(index)")

    def __len__(self) -> int:
        raise NotImplementedError(f"{type(self).__name__} must define __len__()")

    @property
    def num_batches(self) -> int:
        return len(self)

    def on_epoch_begin(self) -> None:
        pass

    def on_epoch_end(self) -> None:
        pass


Sequence = PyDataset
