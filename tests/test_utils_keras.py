"""keras.utils in pynn: the names, and what they compute against Keras 3 (tests/keras_reference/
utils.py and its utils.npz); the dataset builders, images, get_file and the registry."""

import io
import logging
import os
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
from helpers import keras_reference_module, keras_reference_values

import pynn
from pynn import utils

KERAS_UTILS = ['Config', 'CustomObjectScope', 'FeatureSpace', 'Progbar', 'PyDataset', 'Sequence',
               'array_to_img', 'audio_dataset_from_directory', 'bounding_boxes', 'clear_session',
               'custom_object_scope', 'deserialize_keras_object', 'disable_interactive_logging',
               'enable_interactive_logging', 'get_custom_objects', 'get_file',
               'get_registered_name', 'get_registered_object', 'get_source_inputs',
               'image_dataset_from_directory', 'img_to_array', 'is_interactive_logging_enabled',
               'is_keras_tensor', 'legacy', 'load_img', 'model_to_dot', 'normalize',
               'pack_x_y_sample_weight', 'pad_sequences', 'plot_model',
               'register_keras_serializable', 'save_img', 'serialize_keras_object',
               'set_random_seed', 'split_dataset', 'standardize_dtype',
               'text_dataset_from_directory', 'timeseries_dataset_from_array', 'to_categorical',
               'unpack_x_y_sample_weight']


def test_keras_utils_names_are_there_but_three():
    missing = [n for n in KERAS_UTILS if not hasattr(utils, n)]
    assert missing == ["FeatureSpace", "audio_dataset_from_directory", "bounding_boxes"]


def test_deterministic_utils_match_keras():
    mod = keras_reference_module("utils")
    mine, ref = mod.run(), keras_reference_values("utils")
    assert set(mine) == set(ref)
    for k in sorted(ref):
        if ref[k].dtype.kind in "US":
            assert str(mine[k]) == str(ref[k]) if ref[k].ndim == 0 else \
                list(mine[k]) == list(ref[k]), k
        else:
            if not k.startswith("onehot"):  # pynn gives float32 (the models' dtype), Keras float64
                assert mine[k].dtype == ref[k].dtype, k
            np.testing.assert_allclose(mine[k], ref[k], rtol=1e-6, err_msg=k)


def test_timeseries_windows_targets_and_indexes():
    data, targets = np.arange(20).reshape(10, 2), np.arange(10) * 10
    ds = utils.timeseries_dataset_from_array(data, targets, sequence_length=3, sampling_rate=2,
                                             sequence_stride=2, batch_size=2, start_index=1,
                                             end_index=9)
    x, y = ds[0]
    # starts 1 and 3 (stride 2 from start_index 1); steps every 2
    np.testing.assert_array_equal(x, data[[[1, 3, 5], [3, 5, 7]]])
    np.testing.assert_array_equal(y, [10, 30])
    assert len(ds) == 1 and sum(len(b[0]) for b in ds) == 2


def test_timeseries_shuffle_uses_keras_start_order():
    ds = utils.timeseries_dataset_from_array(np.arange(30), None, 4, batch_size=None,
                                             shuffle=True, seed=3)
    starts = np.arange(27)
    np.random.RandomState(3).shuffle(starts)
    np.testing.assert_array_equal([w[0] for w in ds], starts)


def test_timeseries_rejects_bad_arguments():
    with pytest.raises(ValueError, match="sampling_rate"):
        utils.timeseries_dataset_from_array(np.arange(5), None, 2, sampling_rate=0)
    with pytest.raises(ValueError, match="end_index"):
        utils.timeseries_dataset_from_array(np.arange(5), None, 2, end_index=9)


def test_split_dataset_sizes_and_structure():
    x, y = np.arange(10), np.arange(10) * 2
    (lx, ly), (rx, ry) = utils.split_dataset((x, y), left_size=0.8, shuffle=True, seed=1)
    assert (len(lx), len(rx)) == (8, 2)
    np.testing.assert_array_equal(ly, lx * 2)
    assert sorted(np.concatenate([lx, rx])) == list(range(10))
    left, right = utils.split_dataset(np.zeros((7, 3)), right_size=2)
    assert left.shape == (5, 3) and right.shape == (2, 3)
    with pytest.raises(ValueError):
        utils.split_dataset(x, left_size=0.8, right_size=0.5)


def test_split_dataset_takes_a_pydataset():
    class Batches(utils.PyDataset):
        def __len__(self):
            return 3

        def __getitem__(self, i):
            return np.arange(4) + 4 * i, np.ones(4)

    (lx, _), (rx, _) = utils.split_dataset(Batches(), left_size=9)
    assert len(lx) == 9 and len(rx) == 3


def _images(root: Path, per_class=(3, 2)):
    from PIL import Image

    for c, n in zip(("cats", "dogs"), per_class):
        (root / c).mkdir(parents=True)
        for i in range(n):
            Image.fromarray(np.full((6, 8, 3), 40 * i + (c == "dogs"), np.uint8)).save(
                root / c / f"{i}.png")
    (root / "cats" / "notes.txt").write_text("not an image")


def test_image_dataset_labels_sizes_and_split(tmp_path):
    pytest.importorskip("PIL")
    _images(tmp_path)
    ds = utils.image_dataset_from_directory(tmp_path, image_size=(4, 5), batch_size=2,
                                            shuffle=False, verbose=False)
    assert ds.class_names == ["cats", "dogs"] and len(ds) == 3
    x, y = ds[0]
    assert x.shape == (2, 4, 5, 3) and x.dtype == np.float32 and y.dtype == np.int32
    assert list(np.concatenate([b[1] for b in ds])) == [0, 0, 0, 1, 1]
    cat = utils.image_dataset_from_directory(tmp_path, label_mode="categorical", seed=2,
                                             color_mode="grayscale", image_size=(6, 8),
                                             validation_split=0.4, subset="both",
                                             verbose=False)
    train, val = cat
    assert (sum(len(b[0]) for b in train), sum(len(b[0]) for b in val)) == (3, 2)
    assert not set(train.file_paths) & set(val.file_paths)
    assert train[0][0].shape[-1] == 1 and train[0][1].shape[-1] == 2
    # Keras's order: files by class, then shuffled with RandomState(seed)
    paths = [str(tmp_path / c / f"{i}.png") for c, n in (("cats", 3), ("dogs", 2))
             for i in range(n)]
    np.random.RandomState(2).shuffle(paths)
    assert train.file_paths + val.file_paths == paths
    binary = utils.image_dataset_from_directory(tmp_path, label_mode="binary", verbose=False,
                                                shuffle=False, image_size=(6, 8))
    assert binary[0][1].shape == (5, 1) if len(binary) == 1 else True
    with pytest.raises(ValueError, match="seed"):
        utils.image_dataset_from_directory(tmp_path, validation_split=0.2, subset="training")


def test_text_dataset(tmp_path):
    for c, texts in (("neg", ["bad", "awful film"]), ("pos", ["good", "great", "fine"])):
        (tmp_path / c).mkdir()
        for i, t in enumerate(texts):
            (tmp_path / c / f"{i}.txt").write_text(t)
    ds = utils.text_dataset_from_directory(tmp_path, batch_size=10, shuffle=False,
                                           max_length=4, verbose=False)
    x, y = ds[0]
    assert list(x) == ["bad", "awfu", "good", "grea", "fine"] and list(y) == [0, 0, 1, 1, 1]
    assert ds.class_names == ["neg", "pos"]
    only = utils.text_dataset_from_directory(tmp_path, labels=None, shuffle=False,
                                             verbose=False)
    assert only.class_names is None and len(only[0]) == 5


def test_images_round_trip(tmp_path):
    pytest.importorskip("PIL")
    x = np.random.default_rng(0).integers(0, 256, (5, 7, 3)).astype(np.float32)
    utils.save_img(tmp_path / "a.png", x, scale=False)
    img = utils.load_img(tmp_path / "a.png")
    np.testing.assert_array_equal(utils.img_to_array(img), x)
    assert utils.img_to_array(utils.load_img(tmp_path / "a.png", color_mode="grayscale"),
                              data_format="channels_first").shape == (1, 5, 7)
    assert utils.load_img(tmp_path / "a.png", target_size=(3, 4)).size == (4, 3)
    assert utils.array_to_img(np.zeros((2, 2, 4))).mode == "RGBA"


def test_images_without_pillow_say_what_to_install(monkeypatch):
    import builtins

    real = builtins.__import__

    def no_pil(name, *args, **kwargs):
        if name.startswith("PIL"):
            raise ImportError("no PIL")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_pil)
    with pytest.raises(ImportError, match="pip install pillow"):
        utils.load_img("x.png")


def test_get_file_local_hash_cache_and_extract(tmp_path):
    src = tmp_path / "data.bin"
    src.write_bytes(b"hello")
    import hashlib

    sha, md5 = hashlib.sha256(b"hello").hexdigest(), hashlib.md5(b"hello").hexdigest()
    got = utils.get_file("d.bin", origin=src.as_uri(), file_hash=sha, cache_dir=tmp_path / "c")
    assert Path(got).read_bytes() == b"hello" and Path(got).parent.name == "datasets"
    again = utils.get_file("d.bin", origin="file:///nonexistent", md5_hash=md5,
                           cache_dir=tmp_path / "c")  # cached: not fetched
    assert again == got
    with pytest.raises(ValueError, match="hash"):
        utils.get_file("e.bin", origin=str(src), file_hash="0" * 64, cache_dir=tmp_path / "c")
    assert not (tmp_path / "c" / "datasets" / "e.bin").exists()
    tgz = tmp_path / "arch.tar.gz"
    with tarfile.open(tgz, "w:gz") as tf:
        tf.add(src, arcname="top/data.bin")
    out = utils.get_file("arch.tar.gz", origin=str(tgz), extract=True, cache_dir=tmp_path / "c")
    assert (Path(out) / "top" / "data.bin").read_bytes() == b"hello"


@pytest.mark.parametrize("member", ["../evil.txt", "/abs/evil.txt", "a/../../evil.txt"])
def test_get_file_refuses_unsafe_archive_members(tmp_path, member):
    z = tmp_path / "bad.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr(member, "x")
    t = tmp_path / "bad.tar"
    with tarfile.open(t, "w") as tf:
        info = tarfile.TarInfo(member)
        info.size = 1
        tf.addfile(info, io.BytesIO(b"x"))
    for arch in (z, t):
        with pytest.raises(ValueError, match="Refusing"):
            utils.get_file(arch.name, origin=str(arch), extract=True, cache_dir=tmp_path / "c")
    assert not (tmp_path / "evil.txt").exists() and not (tmp_path / "c" / "evil.txt").exists()


def test_get_file_refuses_links_in_tar(tmp_path):
    t = tmp_path / "link.tar"
    with tarfile.open(t, "w") as tf:
        info = tarfile.TarInfo("l")
        info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tf.addfile(info)
    with pytest.raises(ValueError, match="Refusing"):
        utils.get_file("link.tar", origin=str(t), extract=True, cache_dir=tmp_path / "c")


def test_custom_object_scope_and_registry():
    class Scale(pynn.layers.Layer):
        pass

    assert utils.get_registered_object("Scale") is None
    with utils.custom_object_scope({"Scale": Scale}):
        assert utils.get_registered_object("Scale") is Scale
        assert utils.get_custom_objects()["Scale"] is Scale
    assert utils.get_registered_object("Scale") is None
    layer = pynn.layers.Dense(3)
    again = utils.deserialize_keras_object(utils.serialize_keras_object(layer))
    assert isinstance(again, pynn.layers.Dense) and again.units == 3
    assert utils.legacy.serialize_keras_object is utils.serialize_keras_object


def test_clear_session_restarts_names_and_tensor_helpers():
    utils.clear_session()
    assert pynn.layers.Dense(2).name == "dense"
    x = pynn.Input((3,))
    y = pynn.layers.Dense(2)(x)
    assert utils.is_keras_tensor(y) and not utils.is_keras_tensor(np.zeros(2))
    assert utils.get_source_inputs(y)[0] is x
    assert utils.unpack_x_y_sample_weight((1, 2)) == (1, 2, None)


def test_config_behaves_as_keras():
    c = utils.Config(lr=0.1)
    c.seed = 3
    assert c["seed"] == 3 and list(c) == ["lr", "seed"] and "lr" in c
    c.freeze()
    with pytest.raises(ValueError, match="frozen"):
        c.x = 1
    with pytest.raises(AttributeError, match="Did you mean 'seed'"):
        c.sed  # noqa: B018


def test_disabled_interactive_logging_sends_fit_progress_to_logging(capsys, caplog):
    model = pynn.Sequential([pynn.Input((2,)), pynn.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    x = np.zeros((8, 2), np.float32)
    utils.disable_interactive_logging()
    try:
        assert not utils.is_interactive_logging_enabled()
        with caplog.at_level(logging.INFO, logger="pynn"):
            model.fit(x, x[:, :1], epochs=2, verbose=1)
    finally:
        utils.enable_interactive_logging()
    assert capsys.readouterr().out == ""
    logged = [r.getMessage() for r in caplog.records if r.name == "pynn"]
    assert "Epoch 2/2" in logged and sum("loss" in m for m in logged) == 2


def test_plot_model_without_graphviz_raises_import_error(monkeypatch, tmp_path):
    import shutil

    monkeypatch.setattr(shutil, "which", lambda name: None)
    model = pynn.Sequential([pynn.Input((2,)), pynn.layers.Dense(1)])
    with pytest.raises(ImportError, match="Graphviz"):
        utils.plot_model(model, to_file=str(tmp_path / "m.png"))
    utils.plot_model(model, to_file=str(tmp_path / "m.dot"))
    assert os.path.getsize(tmp_path / "m.dot") > 0
