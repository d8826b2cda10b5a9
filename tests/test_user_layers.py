"""User layers: a Layer subclass pynn cannot run raises, in every way it can be used, instead of
passing its input through unchanged. A Keras-style layer whose call() returned x * 2 used to act
as the identity, in Sequential, functional models and direct calls alike, with no error.
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
@pytest.mark.parametrize("cls, says", [(Double, "defines call()"),
                                       (Nothing, "defines neither call() nor lower()")])
def test_a_layer_pynn_cannot_run_raises_naming_itself(cls, says, use):
    layer = cls(name="mine")
    with pytest.raises(NotImplementedError, match=re.escape(f"{cls.__name__} 'mine' {says}")):
        USES[use](layer)


def test_a_user_layer_with_lower_runs():
    layer = helpers.Affine(2)
    out = pynn.Sequential([pynn.Input((3,)), layer]).predict(X, verbose=0)
    w, b = layer.get_weights()
    np.testing.assert_allclose(out, X @ w + b, rtol=1e-6)
