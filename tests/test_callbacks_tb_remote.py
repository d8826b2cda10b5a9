"""TensorBoard (event files read back with tensorboardX's protobuf types) and RemoteMonitor
(against a local HTTP server)."""

import json
import struct
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import numpy as np
import pytest

import pynn
from pynn import callbacks, layers


def _fit(cbs, epochs=2, validation=True):
    rng = np.random.RandomState(0)
    x = rng.rand(48, 3).astype(np.float32)
    y = (x.sum(1) > 1.5).astype(np.int32)
    model = pynn.Sequential([pynn.Input((3,)), layers.Dense(2, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    history = model.fit(x, y, batch_size=16, epochs=epochs, verbose=0, callbacks=cbs,
                        validation_split=0.25 if validation else 0.0)
    return model, history


def _events(folder: Path) -> list:
    """Every event of the event files in `folder` (TFRecord framing: length, its crc, the
    record, its crc)."""
    event_pb2 = pytest.importorskip("tensorboardX.proto.event_pb2")
    out = []
    for path in sorted(folder.glob("events.out.tfevents.*")):
        data = path.read_bytes()
        pos = 0
        while pos < len(data):
            (length,) = struct.unpack("<Q", data[pos:pos + 8])
            record = data[pos + 12:pos + 12 + length]
            out.append(event_pb2.Event.FromString(record))
            pos += 12 + length + 4
    return out


def _scalars(folder: Path) -> dict:
    found: dict = {}
    for e in _events(folder):
        for v in e.summary.value:
            if v.HasField("simple_value"):
                found.setdefault(v.tag, []).append((e.step, v.simple_value))
            elif v.HasField("histo"):
                found.setdefault("histogram:" + v.tag, []).append((e.step, v.histo.num))
    return found


def test_tensorboard_writes_the_epoch_scalars_and_histograms(tmp_path):
    pytest.importorskip("tensorboardX")
    tb = callbacks.TensorBoard(log_dir=tmp_path, histogram_freq=1, update_freq="batch",
                               write_steps_per_second=True)
    model, history = _fit([tb])
    train, val = _scalars(tmp_path / "train"), _scalars(tmp_path / "validation")
    for key in ("loss", "accuracy"):
        got = [v for _, v in sorted(train[f"epoch_{key}"])]
        np.testing.assert_allclose(got, history.history[key], rtol=1e-6)
        got = [v for _, v in sorted(val[f"epoch_{key}"])]
        np.testing.assert_allclose(got, history.history[f"val_{key}"], rtol=1e-6)
    assert len(train["batch_loss"]) == 2 * 3  # 36 training samples in batches of 16
    assert "epoch_learning_rate" in train and "epoch_steps_per_second" in train
    kernel = [k for k in train if k.startswith("histogram:") and "kernel" in k]
    assert kernel and [n for _, n in train[kernel[0]]] == [6, 6]  # the (3, 2) kernel


def test_tensorboard_refuses_bad_arguments():
    with pytest.raises(ValueError, match="update_freq"):
        callbacks.TensorBoard(update_freq="sometimes")
    with pytest.raises(ValueError, match="histogram_freq"):
        callbacks.TensorBoard(histogram_freq=-1)
    with pytest.raises(ValueError, match="profil"):
        callbacks.TensorBoard(profile_batch=3)


class _Collector(BaseHTTPRequestHandler):
    received: list = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append((self.path, self.headers["Content-Type"], body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    _Collector.received = []
    httpd = HTTPServer(("127.0.0.1", 0), _Collector)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", _Collector.received
    httpd.shutdown()


@pytest.mark.parametrize("as_json", [False, True])
def test_remote_monitor_posts_each_epoch(server, as_json):
    root, received = server
    _, history = _fit([callbacks.RemoteMonitor(root=root, path="/log", send_as_json=as_json)],
                      validation=False)
    assert len(received) == 2
    for epoch, (path, ctype, body) in enumerate(received):
        assert path == "/log"
        if as_json:
            assert ctype == "application/json"
            sent = json.loads(body)
        else:
            sent = json.loads(urllib.parse.parse_qs(body.decode())["data"][0])
        assert sent["epoch"] == epoch
        assert sent["loss"] == pytest.approx(history.history["loss"][epoch])


def test_remote_monitor_warns_when_the_server_is_down():
    with pytest.warns(UserWarning, match="could not reach"):
        _fit([callbacks.RemoteMonitor(root="http://127.0.0.1:9")], epochs=1, validation=False)
