"""The examples run as a user runs them and reach their targets (MNIST in a short version: one
epoch instead of five; the full run is `python examples/mnist_mlp.py`)."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run_example(name: str, *args: str) -> str:
    r = subprocess.run([sys.executable, str(ROOT / "examples" / name), *args], cwd=ROOT,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout


def percent(pattern: str, text: str) -> float:
    m = re.search(pattern, text)
    assert m, f"no match for {pattern!r} in:\n{text}"
    return float(m.group(1))


def test_binary_classification_example_reaches_95_percent():
    out = run_example("binary_classification.py")
    assert percent(r"Test accuracy:\s+([\d.]+)%", out) >= 95.0


def test_regression_example_beats_predicting_the_mean():
    pytest.importorskip("pandas")
    out = run_example("regression_auto_mpg.py")
    model = percent(r"linear model \(pynn\)\s+([\d.]+)", out)
    baseline = percent(r"predicting the training mean\s+([\d.]+)", out)
    assert model < 0.5 * baseline


def test_mnist_mlp_example_one_epoch_reaches_95_percent():
    out = run_example("mnist_mlp.py", "--epochs", "1")
    assert percent(r"Test accuracy:\s+([\d.]+)%", out) >= 95.0


def test_text_classification_example_short_run_reaches_90_percent():
    out = run_example("text_classification.py", "--epochs", "3", "--samples", "20000")
    assert percent(r"Validation accuracy:\s+([\d.]+)%", out) >= 90.0


def test_char_lstm_example_quick_run_learns_and_samples():
    out = run_example("char_lstm.py", "--quick")
    val = percent(r"Final validation loss: ([\d.]+)", out)
    assert val < 2.8  # a uniform guess over 65 characters costs ln 65 = 4.17 nats
    assert "Sample (temperature 0.8):\nROMEO:" in out


def test_char_gpt_example_short_run_beats_a_bigram_model():
    # Below 2.45 nats a character, the bigram model's entropy on this text (what the previous
    # character alone can tell), the model must read further back: attention and positions work.
    out = run_example("char_gpt.py", "--quick")
    val = percent(r"validation loss ([\d.]+) nats/char", out)
    assert val < 2.45
    assert "sample:\n" in out and len(out.split("sample:\n", 1)[1]) >= 40


def test_dcgan_example_trains_its_two_models_and_writes_a_grid(tmp_path, monkeypatch):
    """A short version of examples/dcgan_mnist.py: the custom loop with two optimizers moves
    both models, its losses stay finite, and the grid is a 224 x 224 image."""
    pytest.importorskip("matplotlib")
    import importlib.util

    import numpy as np

    import pynn
    spec = importlib.util.spec_from_file_location("dcgan_mnist",
                                                  ROOT / "examples" / "dcgan_mnist.py")
    dcgan = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(dcgan)
    (x, _), _ = pynn.datasets.mnist.load_data()
    x = (x[:512, ..., None] / 255.0).astype(np.float32)
    generator, discriminator, d_loss, g_loss = dcgan.train(x, steps=20, batch=32)
    assert np.isfinite(d_loss) and np.isfinite(g_loss)
    pynn.utils.set_random_seed(0)
    fresh = dcgan.make_generator()
    assert not np.allclose(fresh.get_weights()[0], generator.get_weights()[0])
    samples = generator.predict(np.zeros((64, dcgan.LATENT), np.float32), verbose=0)
    assert samples.shape == (64, 28, 28, 1) and 0 <= samples.min() and samples.max() <= 1
    dcgan.save_grid(samples, tmp_path / "grid.png")
    import matplotlib.pyplot as plt
    assert plt.imread(tmp_path / "grid.png").shape[:2] == (224, 224)
