"""User layers: a Keras-style layer's call() runs in every way a layer can be used (a direct
call, Sequential, a functional model, on the tape), traced into the model's core graph; a layer
with nothing to run raises. A layer whose call() returned x * 2 once acted as the identity, in
Sequential, functional models and direct calls alike, with no error.
"""

import re

import helpers
import numpy as np
import pytest

import pynn
from pynn import layers

X = np.ones((2, 3), np.float32)


class Double(layers.Layer):
    """A Keras 3 layer: Python code in call()."""

    def call(self, x):
        return x * 2


class Nothing(layers.Layer):
    """A layer with nothing to run: Keras's Layer.call raises NotImplementedError."""


USES = {
    "a direct call on data": lambda layer: layer(X),
    "a Sequential model": lambda layer: pynn.Sequential([pynn.Input((3,)), layer]).predict(
        X, verbose=0),
    "a functional model": lambda layer: pynn.Model(i := pynn.Input((3,)), layer(i)),
    "a call inside a GradientTape": lambda layer: _on_tape(layer),
}


def _on_tape(layer):
    with pynn.GradientTape():
        return layer(pynn.Tensor(X, requires_grad=True))


@pytest.mark.parametrize("use", list(USES))
def test_a_layer_with_nothing_to_run_raises_naming_itself(use):
    layer = Nothing(name="mine")
    with pytest.raises(NotImplementedError,
                       match=re.escape("Nothing 'mine' defines neither call() nor lower()")):
        USES[use](layer)


@pytest.mark.parametrize("use", list(USES))
def test_a_layers_call_runs_in_every_use(use):
    out = USES[use](Double(name="mine"))
    if isinstance(out, pynn.Model):
        out = out.predict(X, verbose=0)
    np.testing.assert_array_equal(np.asarray(out), 2 * X)


def test_a_user_layer_with_lower_runs():
    layer = helpers.Affine(2)
    out = pynn.Sequential([pynn.Input((3,)), layer]).predict(X, verbose=0)
    w, b = layer.get_weights()
    np.testing.assert_allclose(out, X @ w + b, rtol=1e-6)
