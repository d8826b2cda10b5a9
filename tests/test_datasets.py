"""Tests for pynn.datasets (MNIST loader and the shared file helpers).

No test touches the network: an autouse fixture points HOME at a temporary
folder, clears PYNN_DATASETS and replaces urlopen with one that only opens
file:// URLs.
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np
import pytest

import pynn.datasets
from pynn.datasets import _files, mnist

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
MNIST_DIR = SHARED_DATA / "mnist"
IDX_NAMES = list(mnist.IDX_SHA256)

requires_mnist = pytest.mark.skipif(
    not all((MNIST_DIR / n).is_file() for n in IDX_NAMES),
    reason=f"MNIST IDX files not found in {MNIST_DIR}",
)

_REAL_URLOPEN = _files.urlopen
_REAL_FETCH = _files.fetch


@pytest.fixture(autouse=True)
def offline_home(monkeypatch, tmp_path) -> Path:
    """An empty HOME, no PYNN_DATASETS, and no network access."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("PYNN_DATASETS", raising=False)

    def file_only_urlopen(url, *args, **kwargs):
        if not str(url).startswith("file:"):
            raise AssertionError(f"tests must not download, tried {url}")
        return _REAL_URLOPEN(url, *args, **kwargs)

    monkeypatch.setattr(_files, "urlopen", file_only_urlopen)
    return home


def _home_mnist(home: Path) -> Path:
    return home / ".pynn" / "datasets" / "mnist"


def _link_real_idx(folder: Path, skip: tuple[str, ...] = ()) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name in IDX_NAMES:
        if name not in skip:
            (folder / name).symlink_to(MNIST_DIR / name)


def _write_idx(path: Path, header: bytes, payload: bytes, compress: bool = True) -> Path:
    data = header + payload
    path.write_bytes(gzip.compress(data) if compress else data)
    return path


def _idx_header(magic: int, *dims: int) -> bytes:
    return magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in dims)


@pytest.fixture(scope="module")
def real_mnist():
    """The real data, read once from the shared IDX files."""
    if not all((MNIST_DIR / n).is_file() for n in IDX_NAMES):
        pytest.skip(f"MNIST IDX files not found in {MNIST_DIR}")
    return mnist._load_idx(MNIST_DIR)


@pytest.fixture(scope="module")
def mnist_npz(real_mnist, tmp_path_factory):
    """A Keras-style mnist.npz built from the real data, and its sha256."""
    (x_train, y_train), (x_test, y_test) = real_mnist
    path = tmp_path_factory.mktemp("npz") / "mnist.npz"
    np.savez(path, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    return path, _files.sha256_file(path)


# ---------------------------------------------------------------- real data


def test_package_exposes_mnist_submodule():
    assert pynn.datasets.mnist is mnist
    assert "mnist" in pynn.datasets.__all__
    assert callable(pynn.datasets.mnist.load_data)


@requires_mnist
def test_load_data_from_shared_data_has_keras_shapes_and_dtypes(monkeypatch):
    monkeypatch.setenv("PYNN_DATASETS", str(SHARED_DATA))
    (x_train, y_train), (x_test, y_test) = mnist.load_data()
    assert x_train.shape == (60000, 28, 28) and x_train.dtype == np.uint8
    assert y_train.shape == (60000,) and y_train.dtype == np.uint8
    assert x_test.shape == (10000, 28, 28) and x_test.dtype == np.uint8
    assert y_test.shape == (10000,) and y_test.dtype == np.uint8


@requires_mnist
def test_load_data_from_shared_data_has_known_labels_and_pixels(monkeypatch):
    monkeypatch.setenv("PYNN_DATASETS", str(SHARED_DATA))
    (x_train, y_train), (x_test, y_test) = mnist.load_data()
    assert y_train[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert y_test[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
    assert set(np.unique(y_train).tolist()) == set(range(10))
    assert set(np.unique(y_test).tolist()) == set(range(10))
    assert x_train.max() == 255 and x_train.min() == 0
    assert x_train[0, 0].tolist() == [0] * 28  # the border is blank
    assert 30 < x_train.mean() < 37  # MNIST's mean pixel is about 33.3


@requires_mnist
def test_load_data_returns_writable_arrays(monkeypatch):
    monkeypatch.setenv("PYNN_DATASETS", str(SHARED_DATA))
    (x_train, y_train), (x_test, y_test) = mnist.load_data()
    for a in (x_train, y_train, x_test, y_test):
        assert a.flags.writeable and a.flags.c_contiguous


@requires_mnist
def test_repeated_load_data_does_not_rehash_unchanged_files(monkeypatch):
    monkeypatch.setenv("PYNN_DATASETS", str(SHARED_DATA))
    mnist.load_data()
    calls = []
    monkeypatch.setattr(_files, "sha256_file", lambda p: calls.append(p) or "")
    mnist.load_data()
    assert calls == []


# ------------------------------------------------------------- lookup order


@requires_mnist
def test_lookup_pynn_datasets_wins_over_home_folder(monkeypatch, offline_home):
    # The copy under ~/.pynn/datasets is corrupt: using it would raise.
    home_mnist = _home_mnist(offline_home)
    home_mnist.mkdir(parents=True)
    for name in IDX_NAMES:
        (home_mnist / name).write_bytes(b"not the real file")
    monkeypatch.setenv("PYNN_DATASETS", str(SHARED_DATA))
    (_, y_train), _ = mnist.load_data()
    assert y_train[:3].tolist() == [5, 0, 4]


@requires_mnist
def test_lookup_falls_back_to_home_folder_when_env_unset(offline_home):
    _link_real_idx(_home_mnist(offline_home))
    (_, y_train), _ = mnist.load_data()
    assert y_train[:3].tolist() == [5, 0, 4]


@requires_mnist
def test_lookup_falls_back_to_home_folder_when_env_folder_lacks_mnist(
    monkeypatch, offline_home, tmp_path
):
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("PYNN_DATASETS", str(empty))
    _link_real_idx(_home_mnist(offline_home))
    (_, y_train), _ = mnist.load_data()
    assert y_train[:3].tolist() == [5, 0, 4]


@requires_mnist
def test_lookup_ignores_incomplete_idx_set_and_downloads(monkeypatch, tmp_path):
    data = tmp_path / "data"
    _link_real_idx(data / "mnist", skip=("t10k-labels-idx1-ubyte.gz",))
    monkeypatch.setenv("PYNN_DATASETS", str(data))
    with pytest.raises(AssertionError, match="must not download"):
        mnist.load_data()


# ------------------------------------------------------- local verification


@requires_mnist
def test_local_idx_file_with_wrong_hash_is_rejected(monkeypatch, tmp_path):
    data = tmp_path / "data"
    bad = "train-labels-idx1-ubyte.gz"
    _link_real_idx(data / "mnist", skip=(bad,))
    # A well-formed IDX file, but not the published one.
    labels = _files.read_idx(MNIST_DIR / bad)
    labels[0] = 7
    _write_idx(data / "mnist" / bad, _idx_header(2049, 60000), labels.tobytes())
    monkeypatch.setenv("PYNN_DATASETS", str(data))
    with pytest.raises(ValueError, match=r"train-labels-idx1-ubyte\.gz.*sha256"):
        mnist.load_data()


def test_verify_file_accepts_matching_hash_and_rejects_other(tmp_path):
    f = tmp_path / "f.bin"
    f.write_bytes(b"abc")
    good = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    _files.verify_file(f, good)
    with pytest.raises(ValueError, match="f.bin"):
        _files.verify_file(f, "0" * 64)


def test_verify_file_rehashes_a_changed_file(tmp_path):
    f = tmp_path / "f.bin"
    f.write_bytes(b"abc")
    good = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    _files.verify_file(f, good)
    f.write_bytes(b"abcd")
    with pytest.raises(ValueError, match="sha256"):
        _files.verify_file(f, good)


# --------------------------------------------------------------- IDX reader


@pytest.mark.parametrize("compress", [True, False], ids=["gzip", "plain"])
def test_read_idx_reads_gzip_and_plain_files(tmp_path, compress):
    payload = bytes(range(24))
    path = _write_idx(tmp_path / "x.idx", _idx_header(2051, 2, 3, 4), payload, compress)
    arr = _files.read_idx(path, expected_magic=2051, expected_shape=(None, 3, 4))
    assert arr.dtype == np.uint8 and arr.shape == (2, 3, 4)
    assert arr.ravel().tolist() == list(range(24))


def test_read_idx_rejects_truncated_gzip_stream(tmp_path):
    path = _write_idx(tmp_path / "x.gz", _idx_header(2049, 1000), bytes(1000))
    path.write_bytes(path.read_bytes()[:-12])  # cut the gzip trailer and more
    with pytest.raises(ValueError, match="truncated"):
        _files.read_idx(path)


@pytest.mark.parametrize("compress", [True, False], ids=["gzip", "plain"])
def test_read_idx_rejects_payload_shorter_than_header_says(tmp_path, compress):
    path = _write_idx(tmp_path / "x.idx", _idx_header(2051, 10, 28, 28), bytes(28 * 28 * 9),
                      compress)
    with pytest.raises(ValueError, match="truncated"):
        _files.read_idx(path)


def test_read_idx_rejects_truncated_header(tmp_path):
    path = _write_idx(tmp_path / "x.gz", _idx_header(2051)[:4] + b"\x00\x00", b"")
    with pytest.raises(ValueError, match="truncated"):
        _files.read_idx(path)


def test_read_idx_rejects_trailing_data(tmp_path):
    path = _write_idx(tmp_path / "x.gz", _idx_header(2049, 5), bytes(6))
    with pytest.raises(ValueError, match="trailing"):
        _files.read_idx(path)


def test_read_idx_rejects_wrong_magic_number(tmp_path):
    path = _write_idx(tmp_path / "x.gz", _idx_header(2049, 5), bytes(5))
    with pytest.raises(ValueError, match="magic number 2049, expected 2051"):
        _files.read_idx(path, expected_magic=2051)


def test_read_idx_rejects_non_idx_magic_bytes(tmp_path):
    path = _write_idx(tmp_path / "x.gz", b"\x12\x34\x08\x01" + (5).to_bytes(4, "big"), bytes(5))
    with pytest.raises(ValueError, match="not an IDX file"):
        _files.read_idx(path)


def test_read_idx_rejects_unsupported_dtype_byte(tmp_path):
    path = _write_idx(tmp_path / "x.gz", _idx_header(0x0D01, 5), bytes(20))  # float32
    with pytest.raises(ValueError, match="0x0d"):
        _files.read_idx(path)


def test_read_idx_rejects_unexpected_shape(tmp_path):
    path = _write_idx(tmp_path / "x.gz", _idx_header(2051, 2, 27, 28), bytes(2 * 27 * 28))
    with pytest.raises(ValueError, match="shape"):
        _files.read_idx(path, expected_shape=(None, 28, 28))


def test_read_idx_rejects_corrupt_gzip_data(tmp_path):
    path = _write_idx(tmp_path / "x.gz", _idx_header(2049, 4096), os.urandom(4096))
    raw = bytearray(path.read_bytes())
    raw[-8] ^= 0xFF  # flip a CRC byte
    path.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match="x.gz"):
        _files.read_idx(path)


# --------------------------------------------------------------------- NPZ


@pytest.mark.parametrize("where", ["mnist/mnist.npz", "mnist.npz"])
def test_npz_form_is_accepted(monkeypatch, tmp_path, mnist_npz, real_mnist, where):
    src, digest = mnist_npz
    data = tmp_path / "data"
    (data / where).parent.mkdir(parents=True, exist_ok=True)
    (data / where).symlink_to(src)
    monkeypatch.setenv("PYNN_DATASETS", str(data))
    monkeypatch.setattr(mnist, "NPZ_SHA256", digest)
    (x_train, y_train), (x_test, y_test) = mnist.load_data()
    (rx_train, ry_train), (rx_test, ry_test) = real_mnist
    assert x_train.dtype == np.uint8 and x_train.shape == (60000, 28, 28)
    np.testing.assert_array_equal(x_train, rx_train)
    np.testing.assert_array_equal(y_train, ry_train)
    np.testing.assert_array_equal(x_test, rx_test)
    np.testing.assert_array_equal(y_test, ry_test)


def test_npz_with_absolute_path_argument_is_used_as_given(monkeypatch, mnist_npz):
    src, digest = mnist_npz
    monkeypatch.setattr(mnist, "NPZ_SHA256", digest)
    (_, y_train), _ = mnist.load_data(path=str(src))
    assert y_train[:3].tolist() == [5, 0, 4]


def test_local_npz_with_wrong_hash_is_rejected(monkeypatch, tmp_path, mnist_npz):
    src, _ = mnist_npz  # built here, so not Keras's published file
    data = tmp_path / "data"
    (data / "mnist").mkdir(parents=True)
    (data / "mnist" / "mnist.npz").symlink_to(src)
    monkeypatch.setenv("PYNN_DATASETS", str(data))
    with pytest.raises(ValueError, match=r"mnist\.npz.*sha256"):
        mnist.load_data()


def test_read_npz_rejects_wrong_shape_or_dtype(tmp_path):
    path = tmp_path / "a.npz"
    np.savez(path, y=np.zeros(5, np.int64))
    with pytest.raises(ValueError, match="dtype int64"):
        _files.read_npz(path, {"y": ((5,), np.dtype(np.uint8))})
    with pytest.raises(ValueError, match=r"shape \(5,\)"):
        _files.read_npz(path, {"y": ((6,), np.dtype(np.int64))})


def test_read_npz_rejects_missing_key(tmp_path):
    path = tmp_path / "a.npz"
    np.savez(path, y=np.zeros(5, np.uint8))
    with pytest.raises(ValueError, match="x_train"):
        _files.read_npz(path, {"x_train": ((5,), np.dtype(np.uint8))})


def test_read_npz_refuses_pickled_object_arrays(tmp_path):
    path = tmp_path / "a.npz"
    np.savez(path, y=np.array([{"a": 1}, None], dtype=object))
    with pytest.raises(ValueError, match="pickle"):
        _files.read_npz(path, {"y": ((2,), np.dtype(object))})


def test_read_npz_rejects_a_file_that_is_not_npz(tmp_path):
    path = tmp_path / "a.npz"
    path.write_bytes(b"PK\x03\x04 garbage")
    with pytest.raises(ValueError, match="a.npz"):
        _files.read_npz(path, {"y": ((2,), np.dtype(np.uint8))})


# ---------------------------------------------------------------- download


def _fake_fetch(payload: bytes, seen: list):
    def fetch(url, fileobj, desc=None):
        seen.append(url)
        fileobj.write(payload)

    return fetch


def test_download_with_patched_fetch_and_correct_hash_succeeds(
    monkeypatch, offline_home, mnist_npz
):
    src, digest = mnist_npz
    seen: list = []
    monkeypatch.setattr(_files, "fetch", _fake_fetch(src.read_bytes(), seen))
    monkeypatch.setattr(mnist, "NPZ_SHA256", digest)
    (_, y_train), (x_test, _) = mnist.load_data()
    assert seen == [mnist.ORIGIN]
    assert y_train[:3].tolist() == [5, 0, 4] and x_test.shape == (10000, 28, 28)
    folder = _home_mnist(offline_home)
    assert sorted(p.name for p in folder.iterdir()) == ["mnist.npz"]
    assert _files.sha256_file(folder / "mnist.npz") == digest


def test_download_with_wrong_hash_raises_and_leaves_no_file(monkeypatch, offline_home):
    seen: list = []
    monkeypatch.setattr(_files, "fetch", _fake_fetch(b"not mnist at all", seen))
    with pytest.raises(ValueError, match="sha256"):
        mnist.load_data()
    assert seen == [mnist.ORIGIN]
    assert list(_home_mnist(offline_home).iterdir()) == []


def test_download_interrupted_midway_leaves_no_file(monkeypatch, offline_home):
    def broken_fetch(url, fileobj, desc=None):
        fileobj.write(b"partial")
        raise OSError("connection reset")

    monkeypatch.setattr(_files, "fetch", broken_fetch)
    with pytest.raises(OSError, match="connection reset"):
        mnist.load_data()
    assert list(_home_mnist(offline_home).iterdir()) == []


def test_download_via_file_url_with_real_fetch_succeeds(monkeypatch, offline_home, mnist_npz):
    src, digest = mnist_npz
    monkeypatch.setattr(_files, "fetch", _REAL_FETCH)
    monkeypatch.setattr(mnist, "ORIGIN", src.as_uri())
    monkeypatch.setattr(mnist, "NPZ_SHA256", digest)
    (_, y_train), _ = mnist.load_data()
    assert y_train[:3].tolist() == [5, 0, 4]
    assert (_home_mnist(offline_home) / "mnist.npz").is_file()


def test_downloaded_file_is_reused_without_downloading_again(
    monkeypatch, offline_home, mnist_npz
):
    src, digest = mnist_npz
    seen: list = []
    monkeypatch.setattr(_files, "fetch", _fake_fetch(src.read_bytes(), seen))
    monkeypatch.setattr(mnist, "NPZ_SHA256", digest)
    mnist.load_data()
    mnist.load_data()
    assert len(seen) == 1


def test_download_to_absolute_path_argument(monkeypatch, tmp_path, mnist_npz):
    src, digest = mnist_npz
    seen: list = []
    monkeypatch.setattr(_files, "fetch", _fake_fetch(src.read_bytes(), seen))
    monkeypatch.setattr(mnist, "NPZ_SHA256", digest)
    dest = tmp_path / "elsewhere" / "my-mnist.npz"
    mnist.load_data(path=str(dest))
    assert seen == [mnist.ORIGIN] and dest.is_file()


# -- the other loaders ---------------------------------------------------------------------------
SHAKESPEARE = SHARED_DATA / "tinyshakespeare" / "input.txt"
AUTO_MPG = SHARED_DATA / "auto-mpg" / "auto-mpg.data"


@pytest.mark.skipif(not SHAKESPEARE.is_file(), reason="tinyshakespeare not in ../shared/data")
def test_tiny_shakespeare_loads_text_and_codes(monkeypatch):
    monkeypatch.setenv("PYNN_DATASETS", str(SHARED_DATA))
    text = pynn.datasets.tiny_shakespeare.load_data()
    assert text.startswith("First Citizen:") and len(text) == 1115394
    codes, vocab = pynn.datasets.tiny_shakespeare.load_data(as_codes=True)
    assert len(vocab) == 65 and codes.dtype == np.uint8 and codes.shape == (1115394,)
    assert "".join(vocab[c] for c in codes[:14]) == "First Citizen:"


@pytest.mark.skipif(not AUTO_MPG.is_file(), reason="auto-mpg not in ../shared/data")
def test_auto_mpg_splits_like_keras_boston_housing(monkeypatch):
    monkeypatch.setenv("PYNN_DATASETS", str(SHARED_DATA))
    (x, y), (xt, yt) = pynn.datasets.auto_mpg.load_data(test_split=0.25, seed=1)
    assert x.shape == (294, 7) and xt.shape == (98, 7) and y.shape == (294,)
    assert x.dtype == np.float32 and not np.isnan(x).any()
    assert 9 <= y.min() and y.max() <= 47  # mpg
    again = pynn.datasets.auto_mpg.load_data(test_split=0.25, seed=1)
    np.testing.assert_array_equal(again[0][0], x)
    with pytest.raises(ValueError, match="test_split"):
        pynn.datasets.auto_mpg.load_data(test_split=1.0)


@pytest.mark.skipif(not AUTO_MPG.is_file(), reason="auto-mpg not in ../shared/data")
def test_a_tampered_local_file_is_rejected(monkeypatch, tmp_path):
    folder = tmp_path / "auto-mpg"
    folder.mkdir()
    data = AUTO_MPG.read_bytes()
    (folder / "auto-mpg.data").write_bytes(data.replace(b"18.0", b"81.0", 1))
    monkeypatch.setenv("PYNN_DATASETS", str(tmp_path))
    with pytest.raises(ValueError, match="sha256"):
        pynn.datasets.auto_mpg.load_data()


def test_fashion_mnist_checks_local_files_and_would_download_the_missing(monkeypatch, tmp_path):
    folder = tmp_path / "fashion-mnist"
    folder.mkdir()
    for name in pynn.datasets.fashion_mnist.FILE_SHA256:
        (folder / name).write_bytes(b"not the real file")
    monkeypatch.setenv("PYNN_DATASETS", str(tmp_path))
    with pytest.raises(ValueError, match="sha256"):
        pynn.datasets.fashion_mnist.load_data()
    monkeypatch.delenv("PYNN_DATASETS")
    with pytest.raises(AssertionError, match="must not download"):  # the offline fixture
        pynn.datasets.fashion_mnist.load_data()
