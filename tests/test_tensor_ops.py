"""pynn.Tensor arithmetic, reductions, shapes and the loss functions: values and gradients against
PyTorch, a numerical gradient check of a composite, and a custom loss that trains a model."""

import numpy as np
import pytest

import pynn
from pynn import layers, ops

torch = pytest.importorskip("torch")

RNG = np.random.default_rng(0)


def pair(shape, positive=False, requires_grad=True):
    a = RNG.standard_normal(shape).astype(np.float32)
    if positive:
        a = np.abs(a) + 0.5
    return (pynn.Tensor(a, requires_grad=requires_grad),
            torch.tensor(a, requires_grad=requires_grad))


def check(ours, theirs, leaves, rtol=1e-5, atol=1e-6):
    """Same values, and the same gradients of sum(out * w) for a fixed random w."""
    np.testing.assert_allclose(np.asarray(ours), theirs.detach().numpy(), rtol=rtol, atol=atol)
    w = RNG.standard_normal(theirs.shape).astype(np.float32)
    (ours * w).sum().backward()
    (theirs * torch.from_numpy(w)).sum().backward()
    for mine, ref in leaves:
        np.testing.assert_allclose(mine.grad, ref.grad.numpy(), rtol=1e-4, atol=1e-5)


BROADCASTS = [((3, 4), (3, 4)), ((3, 4), (4,)), ((2, 3, 4), (3, 1)), ((1, 4), (3, 1)), ((5,), ()),
              ((), (2, 3))]


@pytest.mark.parametrize("op", ["add", "sub", "mul", "div", "maximum", "minimum", "pow"])
@pytest.mark.parametrize("sa,sb", BROADCASTS)
def test_binary_ops_broadcast_like_pytorch(op, sa, sb):
    a, ta = pair(sa, positive=op in ("div", "pow"))
    b, tb = pair(sb, positive=op in ("div", "pow"))
    fn = {"add": (lambda x, y: x + y, torch.add), "sub": (lambda x, y: x - y, torch.sub),
          "mul": (lambda x, y: x * y, torch.mul), "div": (lambda x, y: x / y, torch.div),
          "maximum": (ops.maximum, torch.maximum), "minimum": (ops.minimum, torch.minimum),
          "pow": (lambda x, y: x ** y, torch.pow)}[op]
    check(fn[0](a, b), fn[1](ta, tb), [(a, ta), (b, tb)])


def test_numbers_and_arrays_mix_with_tensors():
    a, ta = pair((2, 3))
    c = np.arange(3, dtype=np.float32)
    check(2.0 * a - c / 4 + 1, 2.0 * ta - torch.from_numpy(c) / 4 + 1, [(a, ta)])
    b, tb = pair((2, 3))
    check(np.exp(b) + np.square(b), torch.exp(tb) + torch.square(tb), [(b, tb)])


@pytest.mark.parametrize("name", ["neg", "exp", "log", "sqrt", "abs", "square", "relu", "sigmoid",
                                  "tanh"])
def test_unary_ops_match_pytorch(name):
    a, ta = pair((4, 5), positive=name in ("log", "sqrt"))
    ours = {"neg": lambda x: -x, "exp": ops.exp, "log": ops.log, "sqrt": ops.sqrt,
            "abs": ops.abs, "square": ops.square, "relu": ops.relu, "sigmoid": ops.sigmoid,
            "tanh": ops.tanh}[name]
    theirs = {"neg": torch.neg, "exp": torch.exp, "log": torch.log, "sqrt": torch.sqrt,
              "abs": torch.abs, "square": torch.square, "relu": torch.relu,
              "sigmoid": torch.sigmoid, "tanh": torch.tanh}[name]
    check(ours(a), theirs(ta), [(a, ta)])


@pytest.mark.parametrize("name", ["sum", "mean", "max", "min"])
@pytest.mark.parametrize("axis,keepdims", [(None, False), (0, False), (-1, True), ((0, 2), False),
                                           (1, True)])
def test_reductions_match_pytorch(name, axis, keepdims):
    a, ta = pair((3, 4, 5))
    ours = getattr(ops, name)(a, axis=axis, keepdims=keepdims)
    if axis is None:
        theirs = getattr(torch, {"max": "amax", "min": "amin"}.get(name, name))(ta)
        if keepdims:
            theirs = theirs.reshape(1, 1, 1)
    else:
        dims = axis if isinstance(axis, tuple) else (axis,)
        fn = {"sum": torch.sum, "mean": torch.mean, "max": torch.amax, "min": torch.amin}[name]
        theirs = fn(ta, dim=dims, keepdim=keepdims)
    check(ours, theirs, [(a, ta)])


@pytest.mark.parametrize("sa,sb", [((3, 4), (4, 5)), ((2, 3, 4), (4, 2)), ((2, 3, 4), (2, 4, 5)),
                                   ((4,), (4, 3)), ((3, 4), (4,)), ((1, 3, 4), (5, 4, 2))])
def test_matmul_matches_pytorch(sa, sb):
    a, ta = pair(sa)
    b, tb = pair(sb)
    check(a @ b, ta @ tb, [(a, ta), (b, tb)], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("axis", [-1, 0, 1])
def test_softmax_and_log_softmax_match_pytorch(axis):
    a, ta = pair((3, 4, 5))
    check(ops.softmax(a, axis), torch.softmax(ta, axis), [(a, ta)])
    b, tb = pair((3, 4, 5))
    check(ops.log_softmax(b, axis), torch.log_softmax(tb, axis), [(b, tb)])


@pytest.mark.parametrize("key", [np.s_[1:3], np.s_[:, ::2], np.s_[..., 0], np.s_[-1],
                                 np.s_[::-1, 1:, -2], np.s_[0, 0, 0], np.s_[:, 5:]])
def test_slicing_matches_pytorch(key):
    a, ta = pair((4, 5, 3))
    ours = a[key]
    if isinstance(key, tuple) and key[0] == slice(None, None, -1):  # PyTorch has no negative
        # steps: flip, then slice
        theirs = torch.flip(ta, [0])[(slice(None),) + key[1:]]
    else:
        theirs = ta[key]
    assert ours.shape == tuple(theirs.shape)
    check(ours, theirs, [(a, ta)])


def test_reshape_transpose_and_logsumexp_match_pytorch():
    a, ta = pair((2, 3, 4))
    check(a.reshape(4, -1).T, ta.reshape(4, -1).T, [(a, ta)])
    b, tb = pair((2, 3, 4))
    check(ops.transpose(b, (1, 2, 0)), tb.permute(1, 2, 0), [(b, tb)])
    c, tc = pair((3, 6))
    check(ops.logsumexp(c, axis=-1), torch.logsumexp(tc, -1), [(c, tc)])


def test_loss_functions_match_pytorch_per_sample():
    p, tp = pair((6, 4))
    y = RNG.integers(0, 4, 6)
    check(pynn.losses.sparse_categorical_crossentropy(y, p, from_logits=True),
          torch.nn.functional.cross_entropy(tp, torch.from_numpy(y), reduction="none"),
          [(p, tp)])
    q, tq = pair((6, 3))
    t = RNG.standard_normal((6, 3)).astype(np.float32)
    check(pynn.losses.mean_squared_error(t, q),
          torch.nn.functional.mse_loss(tq, torch.from_numpy(t), reduction="none").mean(-1),
          [(q, tq)])
    z, tz = pair((6, 2))
    b = RNG.integers(0, 2, (6, 2)).astype(np.float32)
    check(pynn.losses.binary_crossentropy(b, z, from_logits=True),
          torch.nn.functional.binary_cross_entropy_with_logits(
              tz, torch.from_numpy(b), reduction="none").mean(-1), [(z, tz)])


def test_the_loss_classes_reduce_as_pytorch_does():
    p, tp = pair((8, 5))
    y = RNG.integers(0, 5, 8)
    check(pynn.losses.SparseCategoricalCrossentropy(from_logits=True)(y, p).reshape(1),
          torch.nn.functional.cross_entropy(tp, torch.from_numpy(y)).reshape(1), [(p, tp)])


def test_numerical_gradient_of_a_composite():
    x0 = RNG.standard_normal((3, 4)).astype(np.float32)

    def f(x):
        h = ops.tanh(x @ np.ones((4, 2), np.float32) * 0.3) + ops.sigmoid(x[:, :2])
        return ops.mean(ops.square(h)) + ops.logsumexp(x, axis=None) * 0.1

    x = pynn.Tensor(x0, requires_grad=True)
    f(x).backward()
    eps, num = 1e-2, np.zeros_like(x0)
    for i in np.ndindex(x0.shape):
        hi, lo = x0.copy(), x0.copy()
        hi[i] += eps
        lo[i] -= eps
        num[i] = (float(f(pynn.Tensor(hi))) - float(f(pynn.Tensor(lo)))) / (2 * eps)
    np.testing.assert_allclose(x.grad, num, rtol=2e-2, atol=2e-3)


def test_a_custom_loss_written_with_ops_trains_a_model():
    rng = np.random.default_rng(3)
    centers = rng.standard_normal((3, 6)).astype(np.float32) * 3
    y = rng.integers(0, 3, 300).astype(np.int32)
    x = (centers[y] + rng.standard_normal((300, 6))).astype(np.float32)
    pynn.utils.set_random_seed(0)
    model = pynn.Sequential([pynn.Input((6,)), layers.Dense(16, activation="relu"),
                             layers.Dense(3)])

    def my_cross_entropy(labels, logits):  # what a user writes: log-softmax and a one-hot
        return -ops.mean(ops.sum(ops.one_hot(labels, 3) * ops.log_softmax(logits), axis=-1))

    # the same gradient as the built-in loss
    with pynn.GradientTape() as tape:
        mine = my_cross_entropy(y[:32], model(x[:32], training=True))
    g_mine = [np.array(g) for g in tape.gradient(mine, model.trainable_weights)]
    with pynn.GradientTape() as tape:
        builtin = pynn.losses.SparseCategoricalCrossentropy(from_logits=True)(
            y[:32], model(x[:32], training=True))
    g_builtin = tape.gradient(builtin, model.trainable_weights)
    assert float(mine) == pytest.approx(float(builtin), rel=1e-5)
    for a, b in zip(g_mine, g_builtin):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)

    opt = pynn.optimizers.Adam(0.01)
    first = None
    for _epoch in range(10):
        for i in range(0, 300, 30):
            with pynn.GradientTape() as tape:
                loss = my_cross_entropy(y[i:i + 30], model(x[i:i + 30], training=True))
            opt.apply(tape.gradient(loss, model.trainable_weights), model.trainable_weights)
            first = float(loss) if first is None else first
    assert float(loss) < 0.2 * first
    accuracy = (model(x).argmax(-1) == y).mean()
    assert accuracy > 0.95


def test_tensor_errors_are_clear():
    a = pynn.Tensor(np.ones((2, 3), np.float32))
    with pytest.raises(ValueError, match="broadcast"):
        a + np.ones((4,), np.float32)
    with pytest.raises(ValueError):
        a @ np.ones((2, 2), np.float32)
    with pytest.raises(IndexError):
        a[5]
    with pytest.raises(TypeError, match="slices"):
        a[[0, 1]]
    with pytest.raises(ValueError):
        a.reshape(4, 2)
    with pytest.raises(ValueError):
        ops.sum(a, axis=2)
    with pytest.raises(ValueError, match="not one"):
        a.item()
    assert not np.asarray(a).flags.writeable
