"""The graph objects Keras users reach for: Model.input/output, Layer.input/output, and inference
sub-models built from them (a feature extractor from `get_layer(...).output`)."""

import numpy as np
import pytest

import pynn
from pynn import layers

X = np.random.default_rng(0).random((5, 3)).astype(np.float32)


def test_model_input_and_output_are_the_tensors_it_was_given_in_their_structure():
    i = pynn.Input((3,))
    y = layers.Dense(2)(i)
    model = pynn.Model(i, y)
    assert model.input is i and model.output is y
    a, b = pynn.Input((3,), name="a"), pynn.Input((3,), name="b")
    z = layers.Concatenate()([a, b])
    out1, out2 = layers.Dense(1, name="p")(z), layers.Dense(2, name="q")(z)
    listed = pynn.Model([a, b], [out1, out2])
    assert listed.input == [a, b] and listed.output == [out1, out2]
    named = pynn.Model({"a": a, "b": b}, {"p": out1, "q": out2})
    assert named.input == {"a": a, "b": b} and named.output == {"p": out1, "q": out2}


def test_layer_input_and_output_are_its_first_calls_tensors():
    i = pynn.Input((3,))
    dense = layers.Dense(4)
    h = dense(i)
    dense(layers.Dense(3)(h))  # a second call does not change them
    assert dense.input is i and dense.output is h
    a, b = pynn.Input((3,)), pynn.Input((3,))
    cat = layers.Concatenate()
    z = cat([a, b])
    assert cat.input == [a, b] and cat.output is z


def test_a_feature_extractor_from_get_layer_output_predicts_the_intermediate_values():
    i = pynn.Input((3,))
    h = layers.Dense(4, activation="relu", name="features")(i)
    model = pynn.Model(i, layers.Dense(2)(h))
    extractor = pynn.Model(model.input, model.get_layer("features").output)
    w, b = model.get_layer("features").get_weights()
    np.testing.assert_allclose(extractor.predict(X, verbose=0), np.maximum(X @ w + b, 0),
                               rtol=1e-5, atol=1e-6)


def test_a_layer_never_called_has_no_input_or_output():
    dense = layers.Dense(2, name="lonely")
    for what in ("input", "output"):
        with pytest.raises(AttributeError, match=f"lonely has never been called and thus has "
                                                 f"no defined {what}"):
            getattr(dense, what)
