"""keras.mixed_precision's names: float32 works, other policies are refused clearly (pynn has no
bfloat16 or float16 compute yet, issue 17)."""

import numpy as np
import pytest

import pynn
from pynn import layers, mixed_precision


def test_the_float32_policy_is_the_global_one_and_layers_take_it():
    assert mixed_precision.global_policy().name == "float32"
    mixed_precision.set_global_policy("float32")
    policy = mixed_precision.DTypePolicy("float32")
    mixed_precision.set_global_policy(policy)
    assert (policy.compute_dtype, policy.variable_dtype) == ("float32", "float32")
    assert mixed_precision.Policy is mixed_precision.DTypePolicy
    assert mixed_precision.DTypePolicy.from_config(policy.get_config()) == policy
    model = pynn.Sequential([pynn.Input((3,)), layers.Dense(2, dtype=policy)])
    assert model.predict(np.ones((1, 3), np.float32), verbose=0).shape == (1, 2)


@pytest.mark.parametrize("name", ["mixed_bfloat16", "mixed_float16", "bfloat16", "float16"])
def test_other_policies_are_refused_not_ignored(name):
    with pytest.raises(NotImplementedError, match="float32 only"):
        mixed_precision.set_global_policy(name)
    with pytest.raises(NotImplementedError, match="float32 only"):
        mixed_precision.DTypePolicy(name)
    assert mixed_precision.global_policy().name == "float32"
    with pytest.raises(NotImplementedError, match="LossScaleOptimizer"):
        mixed_precision.LossScaleOptimizer(pynn.optimizers.Adam())
