"""The plan's memory: buffers whose uses do not overlap share the arena, activations run in
place. Checked on the arena's size (correctness is the parity tests' job)."""

import pynn
from pynn import layers

F32 = 4


def deep_mlp(depth=8, width=256, activation="relu"):
    model = pynn.Sequential([pynn.Input(shape=(width,))] +
                            [layers.Dense(width, activation=activation) for _ in range(depth)])
    model.compile(optimizer="sgd", loss="mse")
    return model


def test_inference_plan_holds_a_few_activations_not_one_per_layer():
    batch, width = 64, 256
    act = batch * width * F32
    # 8 dense + 8 relu nodes: 17 activations if each had its own buffer
    assert deep_mlp()._core.plan_bytes(batch) <= 4 * act


def test_training_plan_is_smaller_than_a_buffer_per_value_and_gradient():
    batch, width, depth = 64, 256, 8
    act = batch * width * F32
    # In-place relus share their input's value and gradient; what stays for the backward is one
    # value per layer (each dense reads its input, each relu its output) plus the batch, and the
    # gradients take turns in a few buffers.
    # (A buffer for every value and every gradient would be 34 activations.)
    assert deep_mlp()._core.plan_bytes(batch, True) <= (depth + 4) * act


def test_activations_that_need_their_input_do_not_run_in_place_in_training():
    batch = 64
    relu = deep_mlp(activation="relu")._core.plan_bytes(batch, True)
    gelu = deep_mlp(activation="gelu")._core.plan_bytes(batch, True)
    assert gelu > relu  # gelu's backward reads x, so its output needs a buffer of its own
