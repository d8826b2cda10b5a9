"""Files under real conditions (issue 15): every integer read from a saved model or a data file
is range-checked, with a ValueError naming the file and the field; a save changes only the
target's contents (its mode, its owner and a symlink to it stay), and a failed save names the
user's path and leaves no temporary file."""

import errno
import gzip
import json
import os
import struct
import zipfile

import numpy as np
import pytest

import pynn
from pynn import layers
from pynn.datasets import _files


def _trained(seed=0):
    pynn.utils.set_random_seed(seed)
    model = pynn.Sequential([pynn.Input((3,)), layers.Dense(2)])
    model.compile(optimizer="adam", loss="mse")
    model.fit(np.ones((4, 3), np.float32), np.zeros((4, 2), np.float32), batch_size=4,
              epochs=1, verbose=0)
    return model


def _crafted(tmp_path, config=None, metadata=None, header=None):
    """A saved model's archive with config.json, the safetensors __metadata__ or the
    safetensors header edited in place by the given functions; returns its path."""
    path = str(tmp_path / "crafted.keras")
    _trained().save(path)
    with zipfile.ZipFile(path) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    data = members["model.safetensors"]
    (n,) = struct.unpack("<Q", data[:8])
    head = json.loads(data[8:8 + n])
    if metadata:
        metadata(head["__metadata__"])
    if header:
        header(head)
    text = json.dumps(head).encode()
    members["model.safetensors"] = struct.pack("<Q", len(text)) + text + data[8 + n:]
    if config:
        cfg = json.loads(members["config.json"])
        config(cfg)
        members["config.json"] = json.dumps(cfg).encode()
    with zipfile.ZipFile(path, "w") as zf:
        for name, raw in members.items():
            zf.writestr(name, raw)
    return path


# -- integers read from a saved model ------------------------------------------------------------
@pytest.mark.parametrize("value", [str(2**63 - 1), str(2**63), str(2**53 + 1), "-1", "1.5",
                                   "abc", "", "\u00b2", "\u0661\u0662"],
                         ids=["2**63-1", "2**63", "2**53+1", "negative", "float", "text",
                              "empty", "superscript", "arabic_digits"])
def test_crafted_iterations_raise_value_error_naming_file_and_field(tmp_path, value):
    path = _crafted(tmp_path, metadata=lambda m: m.update({"optimizer.iterations": value}))
    with pytest.raises(ValueError, match="optimizer.iterations") as e:
        pynn.models.load_model(path)
    assert path in str(e.value)


@pytest.mark.parametrize("key,value", [("rng.seed", str(2**64)), ("rng.forwards", "-3"),
                                       ("rng.seed", "\u00b2"), ("rng.forwards", "\u0661"),
                                       ("rng.seed", " 7")],
                         ids=["seed_2**64", "negative_forwards", "superscript_seed",
                              "arabic_forwards", "padded_seed"])
def test_crafted_random_state_raises_value_error_naming_file_and_field(tmp_path, key, value):
    path = _crafted(tmp_path, metadata=lambda m: m.update({key: value}))
    with pytest.raises(ValueError, match=key.replace(".", r"\.")) as e:
        pynn.models.load_model(path)
    assert path in str(e.value)


def test_a_random_state_without_its_forwards_count_raises_value_error(tmp_path):
    path = _crafted(tmp_path, metadata=lambda m: m.pop("rng.forwards"))
    with pytest.raises(ValueError, match=r"rng\.forwards") as e:
        pynn.models.load_model(path)
    assert path in str(e.value)


def test_the_largest_iteration_count_loads_and_trains_finite(tmp_path):
    path = _crafted(tmp_path, metadata=lambda m: m.update({"optimizer.iterations": str(2**53)}))
    model = pynn.models.load_model(path)
    model.fit(np.ones((4, 3), np.float32), np.zeros((4, 2), np.float32), batch_size=4,
              epochs=1, verbose=0)
    assert model.optimizer.iterations == 2**53 + 1
    assert all(np.isfinite(w).all() for w in model.get_weights())


@pytest.mark.parametrize("shape", [[0, 2**62], [2**63, 0], [0, 2**31]])
def test_a_huge_dimension_of_an_empty_tensor_raises_value_error_naming_file(tmp_path, shape):
    # an empty tensor's bytes (none) match its data_offsets whatever its other dimensions say
    def add(head):
        head["huge"] = {"dtype": "F32", "shape": shape, "data_offsets": [0, 0]}
    path = _crafted(tmp_path, header=add)
    with pytest.raises(ValueError, match="tensor 'huge' has shape") as e:
        pynn.models.load_model(path)
    assert path in str(e.value)


def _layer_config(cfg, i):
    return cfg["config"]["layers"][i]["config"]


def test_a_layer_size_beyond_a_c_int_raises_value_error_naming_file_and_field(tmp_path):
    # 2**32 + 2 units would wrap to 2 where the core takes them as a C int
    path = _crafted(tmp_path, config=lambda c: _layer_config(c, 1).update({"units": 2**32 + 2}))
    with pytest.raises(ValueError, match=r"config\.json: config\.layers\[1\]\.config\.units") \
            as e:
        pynn.models.load_model(path)
    assert path in str(e.value)


def test_a_padding_beyond_a_c_int_raises_value_error_instead_of_wrapping(tmp_path):
    # no weights, so no weight count catches it: the core would pad by 1 (2**32 + 1 as a C int)
    path = str(tmp_path / "pad.keras")
    pynn.Sequential([pynn.Input((4, 4, 2)), layers.ZeroPadding2D(1)]).save(path)
    with zipfile.ZipFile(path) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    cfg = json.loads(members["config.json"])
    _layer_config(cfg, 1)["padding"] = [[2**32 + 1] * 2] * 2
    members["config.json"] = json.dumps(cfg)
    with zipfile.ZipFile(path, "w") as zf:
        for name, raw in members.items():
            zf.writestr(name, raw)
    with pytest.raises(ValueError, match=r"config\.layers\[1\]\.config\.padding") as e:
        pynn.models.load_model(path)
    assert path in str(e.value)


def test_a_bad_layer_argument_names_the_file(tmp_path):
    path = _crafted(tmp_path, config=lambda c: _layer_config(c, 1).update({"units": -3}))
    with pytest.raises(ValueError, match="units must be a positive int") as e:
        pynn.models.load_model(path)
    assert path in str(e.value)


@pytest.mark.parametrize("version", [0, -1])
def test_a_format_version_below_one_raises_value_error(tmp_path, version):
    path = _crafted(tmp_path, config=lambda c: c.update({"format_version": version}))
    with pytest.raises(ValueError, match=f"format version {version}") as e:
        pynn.models.load_model(path)
    assert path in str(e.value)


def test_idx_dimensions_larger_than_the_file_raise_value_error_naming_it(tmp_path):
    # 65535**3 bytes (256 TiB) claimed by a 60-byte file: refused before any allocation
    path = tmp_path / "huge-idx3-ubyte.gz"
    header = (2051).to_bytes(4, "big") + b"".join(
        (65535).to_bytes(4, "big") for _ in range(3))
    path.write_bytes(gzip.compress(header + bytes(16)))
    with pytest.raises(ValueError, match="huge-idx3-ubyte.gz.*dimensions"):
        _files.read_idx(path)


# -- saving changes only the target's contents ---------------------------------------------------
@pytest.mark.parametrize("kind", ["model", "weights"])
def test_overwriting_keeps_the_files_mode(tmp_path, kind):
    model = _trained()
    path = str(tmp_path / ("m.keras" if kind == "model" else "m.weights.safetensors"))
    save = model.save if kind == "model" else model.save_weights
    save(path)
    os.chmod(path, 0o600)
    save(path)
    assert os.stat(path).st_mode & 0o7777 == 0o600


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can give a file to another user")
def test_overwriting_keeps_the_files_owner_and_group(tmp_path):
    model = _trained()
    path = str(tmp_path / "m.keras")
    model.save(path)
    os.chown(path, 1234, 5678)
    model.save(path)
    st = os.stat(path)
    assert (st.st_uid, st.st_gid) == (1234, 5678)


def test_saving_through_a_symlink_keeps_the_link_and_updates_its_target(tmp_path):
    (tmp_path / "store").mkdir()
    target = tmp_path / "store" / "real.keras"
    link = tmp_path / "link.keras"
    link.symlink_to(target)
    _trained(seed=0).save(link)
    second = _trained(seed=1)
    second.save(link)
    assert link.is_symlink() and os.readlink(link) == str(target)
    np.testing.assert_array_equal(pynn.models.load_model(target).get_weights()[0],
                                  second.get_weights()[0])
    assert sorted(os.listdir(tmp_path / "store")) == ["real.keras"]


def test_saving_without_overwrite_over_a_dangling_symlink_raises_file_exists(tmp_path):
    link = tmp_path / "link.keras"
    link.symlink_to(tmp_path / "nowhere.keras")
    with pytest.raises(FileExistsError):
        _trained().save(link, overwrite=False)
    assert link.is_symlink() and not (tmp_path / "nowhere.keras").exists()


def test_saving_through_a_symlink_to_a_pipe_refuses_and_keeps_the_pipe(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    link = tmp_path / "link.keras"
    link.symlink_to(fifo)
    with pytest.raises(OSError, match="not a regular file") as e:
        _trained().save(link)
    assert e.value.filename == str(link)
    assert link.is_symlink() and os.path.exists(fifo) and not os.path.isfile(fifo)


def _failing(err, *filenames):
    def fail(*args, **kwargs):
        raise OSError(err, os.strerror(err), *filenames)
    return fail


def test_a_full_disk_names_the_users_path_and_leaves_no_temporary_file(tmp_path, monkeypatch):
    model = _trained()
    path = str(tmp_path / "m.keras")
    monkeypatch.setattr(os, "fsync", _failing(errno.ENOSPC))  # where a full disk shows
    with pytest.raises(OSError) as e:
        model.save(path)
    assert e.value.errno == errno.ENOSPC and e.value.filename == path
    assert path in str(e.value) and isinstance(e.value.__cause__, OSError)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("err", [errno.EROFS, errno.EACCES], ids=["read_only", "denied"])
def test_a_refused_rename_names_the_users_path_and_leaves_no_temporary_file(tmp_path,
                                                                             monkeypatch, err):
    # tests run as root, whom permissions do not stop: the rename fails as os.replace would
    model = _trained()
    path = str(tmp_path / "m.keras")
    monkeypatch.setattr(os, "replace", lambda src, dst: _failing(err, src, dst)())
    with pytest.raises(OSError) as e:
        model.save(path)
    # the errno's own subclass (PermissionError for EACCES), naming the path and not the temp
    assert e.value.errno == err and type(e.value) is type(OSError(err, ""))
    assert e.value.filename == path and e.value.filename2 is None
    assert ".tmp" not in str(e.value)
    assert os.listdir(tmp_path) == []


def test_a_full_disk_under_csv_logger_names_the_log(tmp_path):
    model = _trained()
    with pytest.raises(OSError) as e:  # /dev/full: every write fails with ENOSPC
        model.fit(np.ones((4, 3), np.float32), np.zeros((4, 2), np.float32), epochs=1,
                  verbose=0, callbacks=[pynn.callbacks.CSVLogger("/dev/full")])
    assert e.value.errno == errno.ENOSPC and e.value.filename == "/dev/full"
