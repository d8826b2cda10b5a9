"""The benchmark harness's own arithmetic and records (benchmarks/harness.py, issue 17): the
matrix FLOPs it credits each model with, and what every report says about its machine."""

import sys
from pathlib import Path

import pynn
from pynn import layers

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import harness  # noqa: E402


def test_matrix_flops_of_an_mlp_and_a_cnn():
    mlp = pynn.Sequential([pynn.Input(shape=(784,)), layers.Dense(128, activation="relu"),
                           layers.Dense(10)])
    forward = 2 * (784 * 128 + 128 * 10)
    assert harness.matrix_flops(mlp, training=False) == forward
    # training: the first layer reads the model input (no input gradient), the second does
    assert harness.matrix_flops(mlp, training=True) == 2 * 2 * 784 * 128 + 3 * 2 * 128 * 10
    cnn = pynn.Sequential([pynn.Input(shape=(28, 28, 1)), layers.Conv2D(32, 3),
                           layers.MaxPooling2D(2), layers.Conv2D(64, 3)])
    want = 2 * 26 * 26 * 9 * 1 * 32 + 2 * 11 * 11 * 9 * 32 * 64
    assert harness.matrix_flops(cnn, training=False) == want
    up = pynn.Sequential([pynn.Input(shape=(7, 7, 8)),
                          layers.Conv2DTranspose(4, 3, strides=2, padding="same")])
    assert harness.matrix_flops(up, training=False) == 2 * 7 * 7 * 9 * 8 * 4


def test_matrix_flops_of_attention_and_an_lstm():
    x = pynn.Input(shape=(16, 32))
    att = pynn.Model(x, layers.MultiHeadAttention(num_heads=2, key_dim=8)(x, x))
    # q, k, v projections (32 -> 2 x 8 each), the output (16 -> 32), scores and values
    per = 2 * (16 * 32 * 16 * 3 + 16 * 16 * 32 + 2 * 16 * 16 * 8 * 2)
    assert harness.matrix_flops(att, training=False) == per
    lstm = pynn.Sequential([pynn.Input(shape=(10, 4)), layers.LSTM(6)])
    assert harness.matrix_flops(lstm, training=False) == 2 * 10 * (4 + 6) * 4 * 6


def test_every_report_names_its_machine_and_its_blas():
    info = harness.machine()
    assert info["cpu"] and info["vector extensions"] and info["numpy"]
    assert "OpenBLAS" in info["openblas"] and info["openblas core"] not in ("", "unknown")


def test_the_sgemm_ceiling_is_a_rate():
    threads = pynn.get_num_threads()
    pynn.set_num_threads(1)
    try:
        assert harness.sgemm_gflops("pynn", n=256, repeats=2) > 0.1
    finally:
        pynn.set_num_threads(threads)
