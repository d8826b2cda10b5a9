"""Datasets from folders and arrays, as keras.utils: image_dataset_from_directory,
text_dataset_from_directory, split_dataset.

Keras returns tf.data datasets; pynn returns a `BatchDataset`, a PyDataset (so fit, evaluate and
predict take it) whose batches are NumPy arrays, with Keras's `class_names` and `file_paths`.
Files are listed, labelled, ordered, shuffled and split exactly as Keras does (the same seed
gives the same files in each subset).
"""

import os
import random as _random

import numpy as np

from . import io_utils
from .dataset import PyDataset

_IMAGE_FORMATS = (".bmp", ".gif", ".jpeg", ".jpg", ".png")


class BatchDataset(PyDataset):
    """Batches of NumPy arrays read on demand: `len()` batches, `ds[i]` the i-th, iteration
    over one epoch. `class_names` and `file_paths` are as Keras's datasets have them.

    Args:
        n: the number of samples.
        load: a function from an array of sample indices to a batch.
        batch_size: samples per batch; None yields single samples.
        shuffle: reshuffle the samples after each epoch.
        seed: the seed of those reshuffles.
    """

    def __init__(self, n: int, load, batch_size=32, shuffle: bool = False, seed=None,
                 class_names=None, file_paths=None):
        super().__init__()
        self._n, self._load, self.batch_size = n, load, batch_size
        self._shuffle = shuffle
        self._rng = np.random.default_rng(seed)
        self._order = np.arange(n)
        self.class_names, self.file_paths = class_names, file_paths

    def __len__(self) -> int:
        if self.batch_size is None:
            return self._n
        return -(-self._n // self.batch_size)

    def __getitem__(self, index):
        if not -len(self) <= index < len(self):
            raise IndexError(f"batch {index} out of range: the dataset has {len(self)}")
        index %= len(self)
        if self.batch_size is None:
            batch = self._load(self._order[index:index + 1])
            return tuple(b[0] for b in batch) if isinstance(batch, tuple) else batch[0]
        return self._load(self._order[index * self.batch_size:(index + 1) * self.batch_size])

    def __iter__(self):
        for i in range(len(self)):
            yield self[i]

    def on_epoch_end(self) -> None:
        if self._shuffle:
            self._rng.shuffle(self._order)


# -- listing the files of a folder, as Keras's index_directory ----------------------------------
def _iter_valid_files(directory, follow_links, formats):
    walk = os.walk(directory, followlinks=follow_links)
    for root, _, files in sorted(walk, key=lambda x: x[0]):
        for fname in sorted(files):
            if fname.lower().endswith(formats):
                yield root, fname


def index_directory(directory, labels, formats, class_names=None, shuffle=True, seed=None,
                    follow_links=False, verbose=True):
    """(file_paths, labels, class_names) of the files under `directory` with one of
    `formats`, in Keras's order: by class folder, then by path, shuffled with `seed`."""
    if not os.path.isdir(directory):
        raise ValueError(f"directory {directory!r} does not exist or is not a folder")
    if labels == "inferred":
        subdirs = [d for d in sorted(os.listdir(directory))
                   if os.path.isdir(os.path.join(directory, d)) and not d.startswith(".")]
        if class_names is not None:
            if not set(class_names).issubset(set(subdirs)):
                raise ValueError("The `class_names` passed did not match the names of the "
                                 "subdirectories of the target directory. Expected: "
                                 f"{subdirs} (or a subset of it), but received: "
                                 f"class_names={class_names}")
            subdirs = list(class_names)
    else:
        subdirs = [""]
        if class_names is not None:
            if labels is None:
                raise ValueError("When `labels=None` (no labels), argument `class_names` "
                                 "cannot be specified.")
            raise ValueError("When argument `labels` is specified, argument `class_names` "
                             "cannot be specified (the `class_names` will be the sorted list "
                             "of labels).")
    class_names = subdirs
    filenames, found = [], []
    for index, subdir in enumerate(subdirs):
        folder = os.path.join(directory, subdir)
        dirname = os.path.basename(folder)
        for root, fname in _iter_valid_files(folder, follow_links, formats):
            filenames.append(os.path.join(dirname, os.path.relpath(os.path.join(root, fname),
                                                                   folder)))
            found.append(index)
    if labels == "inferred":
        labels = np.asarray(found, dtype="int32")
    elif labels is None:
        class_names = None
    else:
        if len(labels) != len(filenames):
            raise ValueError("Expected the lengths of `labels` to match the number of files in "
                             f"the target directory. len(labels) is {len(labels)} while we "
                             f"found {len(filenames)} files in directory {directory}.")
        class_names = [str(label) for label in sorted(set(labels))]
    if verbose:
        if labels is None:
            io_utils.print_msg(f"Found {len(filenames)} files.")
        else:
            io_utils.print_msg(f"Found {len(filenames)} files belonging to "
                               f"{len(class_names)} classes.")
    file_paths = [os.path.join(directory, f) for f in filenames]
    if shuffle:
        if seed is None:
            seed = np.random.randint(1e6)
        np.random.RandomState(seed).shuffle(file_paths)
        if labels is not None:
            labels = np.array(labels)
            np.random.RandomState(seed).shuffle(labels)
    return file_paths, labels, class_names


def _check_validation_split(validation_split, subset, shuffle, seed):
    if validation_split and not 0 < validation_split < 1:
        raise ValueError(f"`validation_split` must be between 0 and 1, received: "
                         f"{validation_split}")
    if (validation_split or subset) and not (validation_split and subset):
        raise ValueError("If `subset` is set, `validation_split` must be set, and inversely.")
    if subset not in ("training", "validation", "both", None):
        raise ValueError(f'`subset` must be either "training", "validation" or "both", '
                         f"received: {subset}")
    if validation_split and shuffle and seed is None:
        raise ValueError("If using `validation_split` and shuffling the data, you must provide a "
                         "`seed` argument, to make sure that there is no overlap between the "
                         "training and validation subset.")


def _subset(samples, labels, validation_split, subset):
    if not validation_split:
        return samples, labels
    n_val = int(validation_split * len(samples))
    if subset == "training":
        io_utils.print_msg(f"Using {len(samples) - n_val} files for training.")
        cut = slice(None, len(samples) - n_val)
    else:
        io_utils.print_msg(f"Using {n_val} files for validation.")
        cut = slice(len(samples) - n_val, None)
    return samples[cut], (labels[cut] if labels is not None else None)


def _encode_labels(labels, label_mode, num_classes):
    labels = np.asarray(labels)
    if label_mode == "binary":
        return labels.astype("float32").reshape(-1, 1)
    if label_mode == "categorical":
        return np.eye(num_classes, dtype="float32")[labels]
    return labels.astype("int32")


def _check_labels(labels, label_mode, class_names, what):
    if labels not in ("inferred", None) and not isinstance(labels, (list, tuple)):
        raise ValueError(f"`labels` argument should be a list/tuple of integer labels, of the "
                         f'same size as the number of {what} files in the target directory. '
                         'If you wish to infer the labels from the subdirectory names in the '
                         'target directory, pass `labels="inferred"`. If you wish to get a '
                         f"dataset that only contains {what}s (no labels), pass "
                         f"`labels=None`. Received: labels={labels}")
    if class_names and labels != "inferred":
        raise ValueError('You can only pass `class_names` if `labels="inferred"`. Received: '
                         f"labels={labels}, and class_names={class_names}")
    if label_mode not in {"int", "categorical", "binary", None}:
        raise ValueError('`label_mode` argument must be one of "int", "categorical", "binary", '
                         f"or None. Received: label_mode={label_mode}")
    return None if labels is None else label_mode


def _datasets(file_paths, labels, class_names, label_mode, validation_split, subset, load_one,
              batch_size, shuffle, seed, verbose):
    """One BatchDataset, or [training, validation] for subset='both'."""
    if label_mode == "binary" and len(class_names) != 2:
        raise ValueError('When passing `label_mode="binary"`, there must be exactly 2 '
                         f"class_names. Received: class_names={class_names}")
    num_classes = len(class_names) if class_names else 0

    def make(paths, labs):
        if not paths:
            raise ValueError("No files found in the directory (or in this subset); allowed "
                             "formats: .bmp .gif .jpeg .jpg .png for images, .txt for texts")
        paths = list(paths)
        encoded = None if labs is None or label_mode is None else \
            _encode_labels(labs, label_mode, num_classes)

        def load(indices):
            x = np.stack([load_one(paths[i]) for i in indices])
            return x if encoded is None else (x, encoded[indices])

        return BatchDataset(len(paths), load, batch_size, shuffle, seed, class_names, paths)

    if subset == "both":
        return [make(*_subset(file_paths, labels, validation_split, s))
                for s in ("training", "validation")]
    return make(*_subset(file_paths, labels, validation_split, subset))


def image_dataset_from_directory(directory, labels="inferred", label_mode="int",
                                 class_names=None, color_mode="rgb", batch_size=32,
                                 image_size=(256, 256), shuffle=True, seed=None,
                                 validation_split=None, subset=None, interpolation="bilinear",
                                 follow_links=False, crop_to_aspect_ratio=False,
                                 pad_to_aspect_ratio=False, data_format=None, format="tf",
                                 verbose=True):
    """Batches of images from a folder with one subfolder per class, as
    keras.utils.image_dataset_from_directory (.bmp, .gif, .jpeg, .jpg, .png; decoded and
    resized with Pillow).

    Args:
        directory: the folder; with labels='inferred', one subfolder per class.
        labels: 'inferred', None (images only), or a list of int labels in the files' sorted
            order.
        label_mode: 'int' (int32), 'categorical' (one-hot float32), 'binary' (float32 of shape
            (n, 1); two classes) or None.
        class_names: the classes (subfolder names) to use, in this order.
        color_mode: 'grayscale', 'rgb' or 'rgba' (1, 3 or 4 channels).
        batch_size: images per batch (None: single images).
        image_size: (height, width) every image is resized to.
        shuffle: shuffle the files (with `seed`), and again after each epoch.
        seed: the seed of the shuffles; needed with validation_split and shuffle.
        validation_split: the fraction held out for validation.
        subset: 'training', 'validation' or 'both' (a list of the two).
        interpolation: the resize's method ('bilinear', 'nearest', 'bicubic', 'lanczos', ...).
        crop_to_aspect_ratio: crop the centre to image_size's aspect ratio before resizing.
        pad_to_aspect_ratio: pad (with zeros) to the aspect ratio before resizing.
        data_format: 'channels_last' (default) or 'channels_first'.
        format: accepted for Keras's signature; batches are always NumPy arrays.
        verbose: print how many files and classes were found.

    Returns:
        A BatchDataset of (images, labels) batches: images float32 of shape
        (batch, height, width, channels), or images alone when label_mode or labels is None.

    Example:
        >>> train = pynn.utils.image_dataset_from_directory("photos", image_size=(64, 64),
        ...     validation_split=0.2, subset="training", seed=1)
        >>> model.fit(train, epochs=3)
    """
    from .image_utils import _data_format, _interpolations, _pil

    Image = _pil()
    label_mode = _check_labels(labels, label_mode, class_names, "image")
    channels = {"rgb": 3, "rgba": 4, "grayscale": 1}.get(color_mode)
    if channels is None:
        raise ValueError('`color_mode` must be one of {"rgb", "rgba", "grayscale"}. Received: '
                         f"color_mode={color_mode}")
    if crop_to_aspect_ratio and pad_to_aspect_ratio:
        raise ValueError("Only one of `crop_to_aspect_ratio` and `pad_to_aspect_ratio` can be "
                         "set to `True`.")
    methods = _interpolations()
    if interpolation not in methods:
        raise ValueError(f"interpolation must be one of {sorted(methods)}, got "
                         f"{interpolation!r}")
    height, width = (int(v) for v in image_size)
    data_format = _data_format(data_format)
    _check_validation_split(validation_split, subset, shuffle, seed)
    if seed is None:
        seed = np.random.randint(1e6)
    file_paths, labels, class_names = index_directory(
        directory, labels, _IMAGE_FORMATS, class_names=class_names, shuffle=shuffle, seed=seed,
        follow_links=follow_links, verbose=verbose)
    mode = {3: "RGB", 4: "RGBA", 1: "L"}[channels]

    def load_one(path):
        with open(path, "rb") as f:
            img = Image.open(f)
            img.load()
        if img.mode != mode:
            img = img.convert(mode)
        w, h = img.size
        box = None
        if crop_to_aspect_ratio:
            ch, cw = min(h, (w * height) // width), min(w, (h * width) // height)
            top, left = (h - ch) // 2, (w - cw) // 2
            box = (left, top, left + cw, top + ch)
        elif pad_to_aspect_ratio:
            ph, pw = max(h, (w * height) // width), max(w, (h * width) // height)
            canvas = Image.new(mode, (pw, ph))
            canvas.paste(img, ((pw - w) // 2, (ph - h) // 2))
            img = canvas
        img = img.resize((width, height), methods[interpolation], box=box)
        x = np.asarray(img, dtype="float32").reshape(height, width, channels)
        return x.transpose(2, 0, 1) if data_format == "channels_first" else x

    return _datasets(file_paths, labels, class_names, label_mode, validation_split, subset,
                     load_one, batch_size, shuffle, seed, verbose)


def text_dataset_from_directory(directory, labels="inferred", label_mode="int", class_names=None,
                                batch_size=32, max_length=None, shuffle=True, seed=None,
                                validation_split=None, subset=None, follow_links=False,
                                format="tf", verbose=True):
    """Batches of texts from a folder of .txt files with one subfolder per class, as
    keras.utils.text_dataset_from_directory.

    Args:
        directory: the folder; with labels='inferred', one subfolder per class.
        labels, label_mode, class_names, batch_size, shuffle, seed, validation_split, subset,
            follow_links, verbose: as in `image_dataset_from_directory`.
        max_length: the most characters of each text kept (None: all).
        format: accepted for Keras's signature; batches are always NumPy arrays.

    Returns:
        A BatchDataset of (texts, labels) batches; texts is a NumPy array of str (object
        dtype), read as UTF-8.

    Example:
        >>> train = pynn.utils.text_dataset_from_directory("aclImdb/train", seed=1,
        ...     validation_split=0.2, subset="training")
    """
    label_mode = _check_labels(labels, label_mode, class_names, "text")
    if max_length is not None and (isinstance(max_length, bool) or
                                   not isinstance(max_length, int) or max_length < 0):
        raise ValueError(f"max_length must be an int >= 0 or None, got {max_length!r}")
    _check_validation_split(validation_split, subset, shuffle, seed)
    if seed is None:
        seed = np.random.randint(1e6)
    file_paths, labels, class_names = index_directory(
        directory, labels, (".txt",), class_names=class_names, shuffle=shuffle, seed=seed,
        follow_links=follow_links, verbose=verbose)

    def load_one(path):
        with open(path, encoding="utf-8") as f:
            text = f.read()
        return np.array(text if max_length is None else text[:max_length], dtype=object)

    return _datasets(file_paths, labels, class_names, label_mode, validation_split, subset,
                     load_one, batch_size, shuffle, seed, verbose)


# -- split_dataset ---------------------------------------------------------------------------
def _split_sizes(left_size, right_size, total):
    """Keras's _rescale_dataset_split_sizes: two int sizes that fit in `total`."""
    lt, rt = type(left_size), type(right_size)
    for name, v, t in (("left_size", left_size, lt), ("right_size", right_size, rt)):
        if v is not None and t not in (int, float):
            raise TypeError(f"Invalid `{name}` Type. Expected: int or float or None, "
                            f"Received: type({name})={t}.")
    if left_size is None and right_size is None:
        raise ValueError("At least one of the `left_size` or `right_size` must be specified. "
                         "Received: left_size=None and right_size=None")
    if left_size == 0 and right_size == 0:
        raise ValueError("Both `left_size` and `right_size` are zero. At least one of the split "
                         "sizes must be non-zero.")
    for name, v, t in (("left_size", left_size, lt), ("right_size", right_size, rt)):
        if (t is int and (v <= 0 or v >= total)) or (t is float and (v <= 0 or v >= 1)):
            raise ValueError(f"`{name}` should be either a positive integer smaller than "
                             f"{total}, or a float within the range `[0, 1]`. Received: "
                             f"{name}={v}")
    if lt is rt is float and right_size + left_size > 1:
        raise ValueError("The sum of `left_size` and `right_size` is greater than 1. It must be "
                         "less than or equal to 1.")
    left = round(left_size * total) if lt is float else left_size
    right = round(right_size * total) if rt is float else right_size
    if left is None:
        left = total - right
    elif right is None:
        right = total - left
    if left + right > total:
        raise ValueError(f"The sum of `left_size` and `right_size` should be smaller than the "
                         f"{total}. Received: left_size + right_size = {left + right}and "
                         f"total_length = {total}")
    for split, side in ((left, "left"), (right, "right")):
        if split == 0:
            raise ValueError(f"With `dataset` of length={total}, `left_size`={left} and "
                             f"`right_size`={right}.Resulting {side} side dataset split will be "
                             "empty. Adjust any of the aforementioned parameters")
    return int(left), int(right)


def split_dataset(dataset, left_size=None, right_size=None, shuffle=False, seed=None,
                  preferred_backend=None):
    """Splits a dataset of samples in two (e.g. train and test), as keras.utils.split_dataset.

    Args:
        dataset: a NumPy array, a tuple or list of arrays of the same length (e.g. (x, y)), or a
            PyDataset (its batches are joined into samples first).
        left_size: a fraction in (0, 1) or a number of samples for the left part; the
            complement of right_size when None.
        right_size: likewise for the right part.
        shuffle: shuffle the samples first (Python's random with `seed`, as Keras).
        seed: the shuffle's seed.
        preferred_backend: accepted for Keras's signature.

    Returns:
        (left, right), each of the dataset's structure (an array, or a tuple/list of arrays).

    Example:
        >>> left, right = pynn.utils.split_dataset(np.random.random((1000, 4)), left_size=0.8)
        >>> len(left), len(right)
        (800, 200)
    """
    if isinstance(dataset, PyDataset):
        batches = [dataset[i] for i in range(len(dataset))]
        if not batches:
            raise ValueError("split_dataset: the PyDataset has no batches")
        if isinstance(batches[0], tuple):
            dataset = tuple(np.concatenate([np.asarray(b[k]) for b in batches])
                            for k in range(len(batches[0])))
        else:
            dataset = np.concatenate([np.asarray(b) for b in batches])
    if isinstance(dataset, (tuple, list)):
        parts = [np.asarray(p) for p in dataset]
        if not parts or any(p.ndim == 0 for p in parts):
            raise TypeError("split_dataset: a tuple or list dataset must hold arrays")
        if len({len(p) for p in parts}) != 1:
            raise ValueError(f"split_dataset: the arrays must have the same length, got "
                             f"{[len(p) for p in parts]}")
        total = len(parts[0])
    else:
        try:
            parts = [np.asarray(dataset)]
        except Exception:
            raise TypeError("The `dataset` argument must be either a NumPy array, a list or "
                            f"tuple of arrays or a PyDataset. Received: dataset={dataset} of "
                            f"type {type(dataset)}") from None
        if parts[0].ndim == 0:
            raise TypeError(f"split_dataset: expected an array of samples, got {dataset!r}")
        total = len(parts[0])
    order = list(range(total))
    if shuffle:
        if seed is None:
            seed = _random.randint(0, int(1e6))
        _random.Random(seed).shuffle(order)
    left, right = _split_sizes(left_size, right_size, total)
    left_idx, right_idx = np.asarray(order[:left], int), np.asarray(order[-right:], int)
    halves = [[p[left_idx] for p in parts], [p[right_idx] for p in parts]]
    if isinstance(dataset, (tuple, list)):
        return tuple(type(dataset)(h) for h in halves)
    return halves[0][0], halves[1][0]
