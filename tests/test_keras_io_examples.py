"""Quick runs of the keras-io examples in examples/keras_io (import swapped, data cut): each
must run end to end and learn (issue 16). The full runs and their figures against Keras 3 are in
the examples' docstrings and the issue's closing note."""

import importlib.util
import pathlib

import numpy as np
import pytest

HERE = pathlib.Path(__file__).resolve().parent.parent / "examples" / "keras_io"


def _load(name):
    spec = importlib.util.spec_from_file_location(f"keras_io_{name}", HERE / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def small(monkeypatch):
    # conftest points PYNN_DATASETS at ../shared/data; MNIST missing there fails the test
    monkeypatch.setenv("EXAMPLE_EPOCHS", "1")
    return monkeypatch


def test_trainer_pattern(small):
    small.setenv("EXAMPLE_SAMPLES", "3000")
    acc_sgd, acc_adam = _load("trainer_pattern").main()
    assert acc_sgd > 0.3 and acc_adam > 0.8  # plain SGD at lr 0.01 learns slowly in 47 steps


def test_knowledge_distillation(small):
    small.setenv("EXAMPLE_SAMPLES", "1500")
    small.setenv("EXAMPLE_TEACHER_WIDTH", "16")
    teacher, distilled, scratch = _load("knowledge_distillation").main()
    assert teacher > 0.7 and distilled > 0.5 and scratch > 0.5


def test_subclassing_guide_end_to_end(small, capsys):
    small.setenv("EXAMPLE_SAMPLES", "1200")
    module = _load("subclassing_guide")
    losses = module.hist.history["loss"]
    assert len(losses) == 2 and losses[1] < losses[0] and np.isfinite(losses).all()


def test_text_classification_with_transformer(monkeypatch):
    # synthetic data: no PYNN_DATASETS needed
    monkeypatch.setenv("EXAMPLE_SAMPLES", "1000")
    monkeypatch.setenv("EXAMPLE_EPOCHS", "3")
    acc = _load("text_classification_with_transformer").main()
    assert acc > 0.55  # chance is 0.5; 0.64 here, 0.75 with 2000 reviews and 4 epochs


def test_bidirectional_lstm_imdb_on_variable_length_input(monkeypatch):
    # Input(shape=(None,)): trained on 40-word reviews, then scores 20-word ones
    monkeypatch.setenv("EXAMPLE_SAMPLES", "800")
    monkeypatch.setenv("EXAMPLE_EPOCHS", "2")
    monkeypatch.setenv("EXAMPLE_MAXLEN", "40")
    assert _load("bidirectional_lstm_imdb").main() > 0.55  # 0.67 measured; chance 0.5


def test_vae_with_a_gradient_tape_train_step(small):
    # VAE(encoder, decoder): a Model subclass taking models (not the graph's tensors); fit(x)
    # hands train_step the batch itself, as Keras packs it
    small.setenv("EXAMPLE_SAMPLES", "512")
    small.setenv("EXAMPLE_EPOCHS", "2")
    history = _load("vae").main()
    assert history["loss"][1] < history["loss"][0]
    assert history["loss"][1] == pytest.approx(history["reconstruction_loss"][1]
                                               + history["kl_loss"][1], rel=1e-4)


def test_timeseries_classification_transformer(monkeypatch):
    # synthetic FordA-like recordings; GlobalAveragePooling1D(data_format="channels_first")
    for key, value in [("SAMPLES", "600"), ("STEPS", "100"), ("EPOCHS", "3"), ("BLOCKS", "2")]:
        monkeypatch.setenv(f"EXAMPLE_{key}", value)
    acc = _load("timeseries_classification_transformer").main()
    assert acc > 0.55  # chance is 0.5; 0.635 measured (Keras 3 on JAX: 0.695)


def test_addition_rnn(monkeypatch):
    # RepeatVector between an LSTM encoder and decoder
    monkeypatch.setenv("EXAMPLE_SAMPLES", "5000")
    monkeypatch.setenv("EXAMPLE_EPOCHS", "5")
    acc = _load("addition_rnn").main()
    assert acc > 0.3  # per character; 0.386 measured (Keras 3 on JAX: 0.390)


def test_convolutional_denoising_autoencoder(small):
    # Conv2DTranspose decoder; MNIST from PYNN_DATASETS
    small.setenv("EXAMPLE_SAMPLES", "2000")
    small.setenv("EXAMPLE_EPOCHS", "2")
    reconstruct, denoise, mse_noisy, mse_denoised = _load("autoencoder").main()
    # 0.0316 against 0.0798 measured (Keras 3 on JAX, same data: 0.0269)
    assert mse_denoised < 0.6 * mse_noisy


def test_timeseries_anomaly_detection(monkeypatch):
    # Conv1DTranspose decoder; the jump is found (Keras 3 on JAX, same sizes: 59 of 60 inside)
    monkeypatch.setenv("EXAMPLE_DAYS", "6")
    monkeypatch.setenv("EXAMPLE_EPOCHS", "5")
    count, indices, (start, length) = _load("timeseries_anomaly_detection").main()
    inside = [i for i in indices if start <= i < start + length]
    assert count > 0 and len(inside) >= 0.8 * length and len(inside) >= 0.9 * len(indices)
