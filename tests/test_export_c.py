"""pynn.export.to_c (issue 20): the exported C99 model, compiled with the system compiler, gives
predict's outputs; unsupported layers are refused before a file is written."""

import os
import shutil
import subprocess

import numpy as np
import pytest

import pynn
from pynn import layers
from pynn.export.c import to_c

CC = shutil.which("cc")
needs_cc = pytest.mark.skipif(CC is None, reason="no C compiler (cc) found")

MAIN_C = r"""
#include <stdio.h>
#include <stdlib.h>
#include "model.h"

/* prog in.bin out.bin n: reads n samples of MODEL_INPUT_SIZE floats, writes their outputs */
int main(int argc, char **argv) {
    static float in[MODEL_INPUT_SIZE], out[MODEL_OUTPUT_SIZE], ws[MODEL_WORKSPACE_FLOATS];
    if (argc != 4) return 2;
    FILE *fi = fopen(argv[1], "rb"), *fo = fopen(argv[2], "wb");
    if (!fi || !fo) return 3;
    int n = atoi(argv[3]);
    for (int s = 0; s < n; s++) {
        if (fread(in, sizeof(float), MODEL_INPUT_SIZE, fi) != MODEL_INPUT_SIZE) return 4;
        model_predict(in, out, ws);
        if (fwrite(out, sizeof(float), MODEL_OUTPUT_SIZE, fo) != MODEL_OUTPUT_SIZE) return 5;
    }
    fclose(fi);
    return fclose(fo) != 0;
}
"""


# The compiler and the exported program run without the sanitizer runtime that CI preloads into
# pytest (.ci/sanitize): they are not what it checks, and valgrind cannot run it.
_ENV = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "ASAN_OPTIONS")}


def _compile(model, tmp_path):
    src, hdr = to_c(model, str(tmp_path / "model.c"))
    assert os.path.basename(hdr) == "model.h"
    (tmp_path / "main.c").write_text(MAIN_C)
    prog = str(tmp_path / "prog")
    r = subprocess.run([CC, "-O2", "-std=c99", "-Wall", "-Werror", "-o", prog,
                        str(tmp_path / "main.c"), src, "-lm"], capture_output=True, text=True,
                       env=_ENV)
    assert r.returncode == 0, r.stderr
    return prog


def _run(prog, x, out_shape, tmp_path, wrapper=()):
    x = np.ascontiguousarray(x, dtype=np.float32)
    (tmp_path / "in.bin").write_bytes(x.tobytes())
    r = subprocess.run([*wrapper, prog, str(tmp_path / "in.bin"), str(tmp_path / "out.bin"),
                        str(len(x))], capture_output=True, text=True, env=_ENV)
    assert r.returncode == 0, r.stderr
    return np.fromfile(tmp_path / "out.bin", dtype=np.float32).reshape((len(x),) + out_shape)


def _check(model, x, tmp_path, atol=1e-5, rtol=1e-5):
    expected = model.predict(x, verbose=0)
    prog = _compile(model, tmp_path)
    got = _run(prog, x, expected.shape[1:], tmp_path)
    np.testing.assert_allclose(got, expected, rtol=rtol, atol=atol)
    return prog


def _mlp():
    return pynn.models.Sequential([
        layers.Input((20,)), layers.Dense(32, activation="relu"), layers.Dropout(0.5),
        layers.Dense(16, activation="tanh"), layers.Dense(10, activation="softmax")])


@needs_cc
def test_mlp_matches_predict(tmp_path):
    x = np.random.default_rng(0).normal(size=(5, 20)).astype(np.float32)
    _check(_mlp(), x, tmp_path)


@needs_cc
def test_every_activation_matches_predict(tmp_path):
    # one model (one compile): each activation in a Dense and in an Activation over 2-D rows
    stack = [layers.Input((6,))]
    for act in ["linear", "relu", "sigmoid", "tanh", "softmax", "gelu", "elu", "selu",
                "leaky_relu", "swish", "silu", "softplus"]:
        stack += [layers.Dense(8, activation=act), layers.Reshape((2, 4)),
                  layers.Activation(act), layers.Flatten()]
    model = pynn.models.Sequential(stack)
    rng = np.random.default_rng(1)
    for layer in model.layers:  # weights large enough to reach every branch
        for w in layer.weights:
            w[...] = rng.normal(scale=1.5, size=w.shape).astype(np.float32)
    x = rng.normal(size=(4, 6)).astype(np.float32) * 3
    _check(model, x, tmp_path)


@needs_cc
def test_activation_layers_match_predict(tmp_path):
    model = pynn.models.Sequential([
        layers.Input((3, 4)), layers.Dense(6), layers.ReLU(negative_slope=0.1),
        layers.Dense(6), layers.LeakyReLU(negative_slope=0.3), layers.Dense(6), layers.ELU(0.5),
        layers.Dense(5), layers.ReLU(), layers.Dense(4), layers.Softmax()])
    x = np.random.default_rng(6).normal(size=(3, 3, 4)).astype(np.float32) * 2
    _check(model, x, tmp_path)


@needs_cc
def test_cnn_matches_predict(tmp_path):
    model = pynn.models.Sequential([
        layers.Input((9, 8, 3)),
        layers.Conv2D(4, 3, padding="same", activation="relu"),
        layers.BatchNormalization(),
        layers.MaxPooling2D(),
        layers.Conv2D(5, (2, 3), strides=(2, 1), padding="valid"),
        layers.AveragePooling2D(pool_size=2, strides=1, padding="same"),
        layers.Conv2D(3, 3, strides=2, padding="same", dilation_rate=1, activation="elu"),
        layers.GlobalAveragePooling2D(),
        layers.Dense(4, activation="softmax")])
    # non-trivial BatchNormalization statistics
    bn = model.layers[1]
    rng = np.random.default_rng(2)
    for w in bn.weights:
        w[...] = rng.uniform(0.5, 1.5, size=w.shape).astype(np.float32)
    x = rng.normal(size=(4, 9, 8, 3)).astype(np.float32)
    _check(model, x, tmp_path)


@needs_cc
def test_1d_stack_matches_predict(tmp_path):
    model = pynn.models.Sequential([
        layers.Input((12, 3)),
        layers.Conv1D(4, 3, padding="causal", dilation_rate=2, activation="tanh"),
        layers.Conv1D(5, 2, strides=2, padding="same"),
        layers.LayerNormalization(),
        layers.AveragePooling1D(pool_size=2, strides=1, padding="same"),
        layers.Conv1D(4, 2, padding="valid"),
        layers.SimpleRNN(6, return_sequences=True),
        layers.MaxPooling1D(),
        layers.SimpleRNN(3, go_backwards=True, return_sequences=True, activation="relu"),
        layers.GlobalMaxPooling1D()])
    rng = np.random.default_rng(7)
    for w in model.layers[2].weights:  # LayerNormalization's gamma and beta
        w[...] = rng.normal(size=w.shape).astype(np.float32)
    x = rng.normal(size=(3, 12, 3)).astype(np.float32)
    _check(model, x, tmp_path)


@needs_cc
def test_global_pools_2d_match_predict(tmp_path):
    model = pynn.models.Sequential([
        layers.Input((5, 4, 2)), layers.Conv2D(3, 2), layers.GlobalMaxPooling2D(keepdims=True),
        layers.Flatten(), layers.Dense(2)])
    x = np.random.default_rng(8).normal(size=(3, 5, 4, 2)).astype(np.float32)
    _check(model, x, tmp_path)


@needs_cc
def test_lstm_and_gru_match_predict(tmp_path):
    model = pynn.models.Sequential([
        layers.Input((7, 5)), layers.LSTM(6, return_sequences=True),
        layers.GRU(4, go_backwards=True, return_sequences=True),
        layers.GRU(4, reset_after=False, return_sequences=True), layers.LSTM(3),
        layers.Dense(2)])
    rng = np.random.default_rng(3)
    for layer in model.layers:  # non-zero biases
        for w in layer.weights:
            w[...] = rng.normal(scale=0.5, size=w.shape).astype(np.float32)
    x = rng.normal(size=(3, 7, 5)).astype(np.float32)
    _check(model, x, tmp_path)


@needs_cc
def test_embedding_gru_matches_predict(tmp_path):
    model = pynn.models.Sequential([layers.Input((6,), dtype="int32"), layers.Embedding(11, 4),
                                    layers.GRU(5), layers.Dense(3, activation="sigmoid")])
    rng = np.random.default_rng(4)
    for w in model.layers[1].weights:
        w[...] = rng.normal(scale=0.5, size=w.shape).astype(np.float32)
    x = rng.integers(0, 11, size=(4, 6)).astype(np.int32)
    expected = model.predict(x, verbose=0)
    prog = _compile(model, tmp_path)
    got = _run(prog, x.astype(np.float32), expected.shape[1:], tmp_path)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


@needs_cc
def test_inference_identities_match_predict(tmp_path):
    model = pynn.models.Sequential([
        layers.Input((4, 3)), layers.SpatialDropout1D(0.5), layers.GaussianNoise(1.0),
        layers.GaussianDropout(0.3), layers.AlphaDropout(0.2), layers.ActivityRegularization(),
        layers.Identity(), layers.Flatten(), layers.Dense(2)])
    x = np.random.default_rng(10).normal(size=(2, 4, 3)).astype(np.float32)
    _check(model, x, tmp_path)


def test_unbuilt_or_variable_shape_model_raises(tmp_path):
    with pytest.raises(ValueError, match="not built"):
        to_c(pynn.models.Sequential([layers.Dense(3)]), str(tmp_path / "m.c"))
    with pytest.raises(ValueError, match="fixed"):
        to_c(pynn.models.Sequential([layers.Input((None, 3)), layers.LSTM(2)]),
             str(tmp_path / "m.c"))
    assert not os.listdir(tmp_path)


@needs_cc
def test_names_that_end_a_comment_compile(tmp_path):
    model = pynn.models.Sequential([layers.Input((3,)), layers.Dense(2, name="a*/b\nc")],
                                   name="m*/")
    _check(model, np.ones((1, 3), np.float32), tmp_path)
    with pytest.raises(ValueError, match="include"):
        to_c(model, str(tmp_path / "m.c"), header=str(tmp_path / 'q"h.h'))


@needs_cc
def test_model_of_identities_copies_input(tmp_path):
    model = pynn.models.Sequential([layers.Input((2, 3)), layers.Dropout(0.1), layers.Flatten()])
    _check(model, np.arange(12, dtype=np.float32).reshape(2, 2, 3), tmp_path)
    assert "#define MODEL_WORKSPACE_FLOATS 1\n" in (tmp_path / "model.h").read_text()


def test_weights_round_trip_exactly(tmp_path):
    model = _mlp()
    to_c(model, str(tmp_path / "m.c"), name="net")
    text = (tmp_path / "m.c").read_text()
    kernel = model.layers[0].weights[0]
    start = text.index("net_l0_kernel[")
    body = text[text.index("{", start) + 1:text.index("}", start)]
    values = np.array([float(v.strip().rstrip("f")) for v in body.split(",")], dtype=np.float32)
    np.testing.assert_array_equal(values, np.asarray(kernel).ravel())
    header = (tmp_path / "m.h").read_text()
    assert "#define NET_INPUT_SIZE 20" in header and "#define NET_OUTPUT_SIZE 10" in header
    assert "void net_predict(const float *input, float *output, float *workspace);" in header


def test_unsupported_layer_raises_before_writing(tmp_path):
    model = pynn.models.Sequential([layers.Input((4, 4, 3)), layers.Conv2DTranspose(2, 2),
                                    layers.Flatten()])
    with pytest.raises(NotImplementedError, match="Conv2DTranspose"):
        to_c(model, str(tmp_path / "m.c"))
    assert not os.listdir(tmp_path)


@needs_cc
def test_functional_chain_matches_predict(tmp_path):
    inputs = layers.Input((6, 6, 2))
    h = layers.Conv2D(3, 3, activation="relu")(inputs)
    h = layers.Flatten()(h)
    model = pynn.models.Model(inputs, layers.Dense(2, activation="softmax")(h))
    x = np.random.default_rng(11).normal(size=(3, 6, 6, 2)).astype(np.float32)
    _check(model, x, tmp_path)


def test_functional_graph_raises(tmp_path):
    inputs = layers.Input((4,))
    a, b = layers.Dense(3)(inputs), layers.Dense(3)(inputs)
    model = pynn.models.Model(inputs, layers.Add()([a, b]))
    with pytest.raises(NotImplementedError, match="single chain"):
        to_c(model, str(tmp_path / "m.c"))
    shared = layers.Dense(4)
    model = pynn.models.Model(inputs, shared(shared(inputs)))
    with pytest.raises(NotImplementedError, match="more than once"):
        to_c(model, str(tmp_path / "m.c"))
    assert not os.listdir(tmp_path)


def test_unsupported_argument_raises(tmp_path):
    model = pynn.models.Sequential([layers.Input((4, 4, 4)), layers.Conv2D(4, 2, groups=2)])
    with pytest.raises(NotImplementedError, match="groups=2"):
        to_c(model, str(tmp_path / "m.c"))
    model = pynn.models.Sequential([layers.Input((4, 3)), layers.BatchNormalization(axis=1)])
    with pytest.raises(NotImplementedError, match="axis=1"):
        to_c(model, str(tmp_path / "m.c"))
    with pytest.raises(ValueError, match="C identifier"):
        to_c(_mlp(), str(tmp_path / "m.c"), name="my-model")
    assert not os.listdir(tmp_path)


def _small_cnn_rnn():
    return pynn.models.Sequential([
        layers.Input((6, 6, 2)), layers.Conv2D(3, 3, padding="same", activation="relu"),
        layers.BatchNormalization(), layers.MaxPooling2D(padding="same"),
        layers.Reshape((9, 3)), layers.Conv1D(4, 2, padding="causal"),
        layers.SimpleRNN(4, return_sequences=True), layers.LSTM(4, return_sequences=True),
        layers.GRU(3), layers.Dense(2, activation="softmax")])


@needs_cc
@pytest.mark.skipif(shutil.which("valgrind") is None, reason="valgrind not installed")
@pytest.mark.parametrize("make", [_mlp, _small_cnn_rnn])
def test_valgrind_clean(tmp_path, make):
    model = make()
    prog = _compile(model, tmp_path)
    x = np.random.default_rng(5).normal(size=(2,) + tuple(model.input_shape[1:]))
    expected = model.predict(x.astype(np.float32), verbose=0)
    got = _run(prog, x, expected.shape[1:], tmp_path,
               wrapper=("valgrind", "--error-exitcode=1", "-q"))
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
