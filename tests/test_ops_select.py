"""pynn.ops comparison, selection, indexing and ordering functions (pynn/ops/_select.py): each
against NumPy on the three drivers (a symbolic model's predict, eager Tensors, NumPy arrays), its
tape gradient against float64 finite differences of the NumPy reference, PyTorch parity of values
and gradients, graph-vs-tape gradients of a model trained one step, and the run-time index check.
"""

import numpy as np
import pytest

import pynn
from pynn import layers
from pynn.ops import _select as S

torch = pytest.importorskip("torch")

B = 3  # the batch of every symbolic check


def rng(seed=0):
    return np.random.default_rng(seed)


def away(shape, seed, low=0.3, high=1.5, grid=None):
    """Values with |x| in [low, high), random signs; on a grid of step `grid` (offset half a
    step) when given, so no two values tie and none lies near a kink."""
    r = rng(seed)
    if grid is not None:
        n = int(np.prod(shape))
        vals = (r.permutation(n) - n / 2 + 0.5) * grid
        return vals.reshape(shape).astype(np.float32)
    return (r.uniform(low, high, shape) * r.choice([-1, 1], shape)).astype(np.float32)


# -- the drivers ----------------------------------------------------------------------------------
def as_f32(v):
    return np.asarray(v).astype(np.float32)


def symbolic(fn, args):
    """fn on Inputs (every argument batched, axis 0 the batch), run by Model.predict."""
    inputs = [pynn.Input(a.shape[1:], dtype="int32" if a.dtype == np.int32 else None)
              for a in args]
    out = fn(*inputs)
    if out.dtype != "float32":
        out = pynn.ops._base.cast(out, "float32")
    model = pynn.Model(inputs if len(inputs) > 1 else inputs[0], out)
    return model.predict(list(args) if len(args) > 1 else args[0], verbose=0)


def eager(fn, args):
    return np.asarray(fn(*[pynn.Tensor(a) for a in args]))


def arrays(fn, args):
    return np.asarray(fn(*args))


def check_drivers(fn, ref, args, exact=False, symbolic_ok=True):
    want = ref(*[a.astype(np.float64) if a.dtype == np.float32 else a for a in args])
    outs = {"tensor": eager(fn, args), "numpy": arrays(fn, args)}
    if symbolic_ok:
        outs["symbolic"] = symbolic(fn, args)
    for name, got in outs.items():
        assert got.shape == np.shape(want), (name, got.shape, np.shape(want))
        if exact:
            np.testing.assert_array_equal(as_f32(got), as_f32(want), err_msg=name)
        else:
            np.testing.assert_allclose(as_f32(got), as_f32(want), rtol=2e-5, atol=2e-6,
                                       err_msg=name)


def tape_grads(fn, args, w):
    ts = [pynn.Tensor(a, requires_grad=a.dtype == np.float32) for a in args]
    out = fn(*ts)
    (out * w).sum().backward()
    return [t.grad if t.grad is not None else np.zeros_like(a)
            for t, a in zip(ts, args) if a.dtype == np.float32]


def numeric_grads(ref, args, w, eps=1e-6):
    """d sum(ref(args) w) / d args (the float ones), central differences in float64."""
    x64 = [a.astype(np.float64) if a.dtype == np.float32 else a for a in args]
    grads = []
    for k, a in enumerate(x64):
        if args[k].dtype != np.float32:
            continue
        g = np.zeros_like(a)
        for i in np.ndindex(a.shape):
            keep = a[i]
            a[i] = keep + eps
            lp = np.sum(ref(*x64) * w)
            a[i] = keep - eps
            lm = np.sum(ref(*x64) * w)
            a[i] = keep
            g[i] = (lp - lm) / (2 * eps)
        grads.append(g)
    return grads


def check_grad(fn, ref, args, seed=1):
    out = np.asarray(fn(*args))
    w = rng(seed).standard_normal(out.shape).astype(np.float32)
    for got, want in zip(tape_grads(fn, args, w), numeric_grads(ref, args, w.astype(np.float64))):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def check_torch(fn, tfn, args):
    """Same values and gradients of sum(out * w) as PyTorch on the same inputs."""
    ours = fn(*[pynn.Tensor(a, requires_grad=a.dtype == np.float32) for a in args])
    targs = [torch.tensor(a, requires_grad=a.dtype == np.float32) if a.dtype == np.float32
             else torch.tensor(a.astype(np.int64)) for a in args]
    theirs = tfn(*targs)
    np.testing.assert_allclose(as_f32(ours), theirs.detach().numpy().astype(np.float32),
                               rtol=1e-5, atol=1e-6)
    if not theirs.requires_grad:
        return
    w = rng(7).standard_normal(theirs.shape).astype(np.float32)
    ts = [pynn.Tensor(a, requires_grad=a.dtype == np.float32) for a in args]
    (fn(*ts) * w).sum().backward()
    (theirs * torch.from_numpy(w)).sum().backward()
    for t, tt, a in zip(ts, targs, args):
        if a.dtype != np.float32:
            continue
        if tt.grad is None:  # an operand torch gives no gradient (where's condition): zero
            assert t.grad is None or not np.any(t.grad)
        else:
            np.testing.assert_allclose(t.grad, tt.grad.numpy(), rtol=1e-4, atol=1e-5)


# -- elementwise binary and unary ops -------------------------------------------------------------
GRID_A = away((B, 4), 0, grid=0.25)
GRID_B = away((4,), 1, grid=0.3)  # never equal to GRID_A's values: different grids and offsets

COMPARE = {
    "equal": (np.equal, torch.eq), "not_equal": (np.not_equal, torch.ne),
    "less": (np.less, torch.lt), "less_equal": (np.less_equal, torch.le),
    "greater": (np.greater, torch.gt), "greater_equal": (np.greater_equal, torch.ge),
    "logical_and": (np.logical_and, torch.logical_and),
    "logical_or": (np.logical_or, torch.logical_or),
    "logical_xor": (np.logical_xor, torch.logical_xor),
}


@pytest.mark.parametrize("name", sorted(COMPARE))
def test_comparisons_and_logical_ops(name):
    fn, ref, tfn = getattr(S, name), *COMPARE[name]
    a, b = GRID_A, np.broadcast_to(GRID_B, (B, 4)).copy()
    if name.startswith("logical"):
        a = a * (np.arange(4) % 2)  # zeros, so truth values differ
        b = b * (np.arange(4) // 2)
    a, b = a.astype(np.float32), b.astype(np.float32)
    tied = b.copy()
    tied[0, 1] = a[0, 1]  # one tie, for equal, less_equal, greater_equal
    check_drivers(fn, lambda x, y: ref(x, y).astype(np.float32), (a, tied), exact=True)
    check_drivers(lambda x: fn(x, 0.25), lambda x: ref(x, 0.25).astype(np.float32), (a,),
                  exact=True)
    check_grad(fn, lambda x, y: ref(x, y).astype(np.float64), (a, b))  # zero gradient
    check_torch(lambda x, y: fn(x, y), lambda x, y: tfn(x, y).float(), (a, b))


def test_comparisons_with_nan_and_scalars_on_the_left():
    x = np.array([[np.nan, 1.0, -2.0]], np.float32)
    np.testing.assert_array_equal(np.asarray(S.equal(x, x)), [[0, 1, 1]])
    np.testing.assert_array_equal(np.asarray(S.not_equal(x, x)), [[1, 0, 0]])
    np.testing.assert_array_equal(np.asarray(S.logical_not(x)), [[0, 0, 0]])
    np.testing.assert_array_equal(np.asarray(S.less(0.0, x)), [[0, 1, 0]])
    inp = pynn.Input((3,))
    m = pynn.Model(inp, S.greater(0.0, inp))
    np.testing.assert_array_equal(m.predict(x, verbose=0), [[0, 0, 1]])


ARITH = {
    "floor_divide": (np.floor_divide, lambda x, y: torch.floor_divide(x.detach(), y.detach()),
                     False),
    "mod": (np.mod, torch.remainder, True),
    "arctan2": (np.arctan2, torch.atan2, True),
    "hypot": (np.hypot, torch.hypot, True),
}


@pytest.mark.parametrize("name", sorted(ARITH))
def test_binary_arithmetic(name):
    fn, ref, tfn, smooth = getattr(S, name), *ARITH[name]
    # x / y stays 0.05 away from integers: no jump of floor within the differences' reach
    y = np.array([0.7, -0.9, 1.3, -1.1], np.float32)
    q = np.array([[0.3, -1.25, 2.6, -0.55], [1.45, -2.35, -0.2, 0.8], [-3.7, 0.35, 1.15, -0.4]])
    x = (q * y).astype(np.float32)
    check_drivers(fn, ref, (x, np.broadcast_to(y, (B, 4)).copy()))
    check_drivers(lambda a: fn(a, 0.75), lambda a: ref(a, 0.75), (x,))
    if smooth:
        check_grad(fn, ref, (x, np.broadcast_to(y, (B, 4)).copy()))
    check_torch(fn, tfn, (x, np.broadcast_to(y, (B, 4)).copy()))


def test_mod_and_floor_divide_follow_pythons_signs():
    x = np.array([7, -7, 7, -7, 0, 5.5], np.float32)
    y = np.array([2, 2, -2, -2, 3, 0.5], np.float32)
    np.testing.assert_array_equal(np.asarray(S.mod(x, y)), np.mod(x, y))
    np.testing.assert_array_equal(np.asarray(S.floor_divide(x, y)), np.floor_divide(x, y))


UNARY = {"isnan": (np.isnan, torch.isnan), "isinf": (np.isinf, torch.isinf),
         "isfinite": (np.isfinite, torch.isfinite), "signbit": (np.signbit, torch.signbit),
         "logical_not": (np.logical_not, torch.logical_not)}


@pytest.mark.parametrize("name", sorted(UNARY))
def test_unary_predicates(name):
    fn, ref, tfn = getattr(S, name), *UNARY[name]
    x = np.array([[np.nan, np.inf, -np.inf, 0.0], [-0.0, 1.5, -2.0, 3.0], [0, 0, -1, 1]],
                 np.float32)
    check_drivers(fn, lambda a: ref(a).astype(np.float32), (x,), exact=True)
    check_torch(fn, lambda a: tfn(a).float(), (x,))
    g = away((B, 4), 3)
    check_grad(fn, lambda a: ref(a).astype(np.float64), (g,))


# -- where and select -----------------------------------------------------------------------------
def test_where_values_gradients_and_torch():
    c = (away((B, 4), 4) > 0).astype(np.float32)
    a, b = away((B, 4), 5), away((B, 4), 6)
    ref = lambda c_, x, y: np.where(c_ != 0, x, y)  # noqa: E731
    check_drivers(S.where, ref, (c, a, b))
    check_grad(S.where, ref, (c, a, b))
    check_torch(S.where, lambda c_, x, y: torch.where(c_ != 0, x, y), (c, a, b))
    # broadcasting: a row against the batch, a scalar
    row = away((4,), 7)
    check_drivers(lambda c_, x: S.where(c_, x, row), lambda c_, x: np.where(c_ != 0, x, row),
                  (c, a))
    check_drivers(lambda c_, x: S.where(c_, 2.0, x), lambda c_, x: np.where(c_ != 0, 2.0, x),
                  (c, a))


def test_where_keeps_inf_and_nan_of_the_branch_not_taken_out():
    a = pynn.Tensor(np.array([np.inf, 1.0], np.float32), requires_grad=True)
    b = pynn.Tensor(np.array([2.0, np.nan], np.float32), requires_grad=True)
    y = S.where(np.array([0.0, 1.0], np.float32), a, b)
    (y * 3.0).sum().backward()
    np.testing.assert_array_equal(np.asarray(y), [2.0, 1.0])
    np.testing.assert_array_equal(a.grad, [0.0, 3.0])
    np.testing.assert_array_equal(b.grad, [3.0, 0.0])


def test_select_picks_the_first_true_condition():
    x = np.array([[-2.0, -0.5, 0.5, 2.0]], np.float32)
    ref = np.select([x < -1, x < 1], [x * 10, x * 100], default=7.0)
    got = S.select([S.less(x, -1.0), S.less(x, 1.0)], [x * 10, x * 100], 7.0)
    np.testing.assert_allclose(np.asarray(got), ref)


# -- take and take_along_axis ---------------------------------------------------------------------
def test_take_along_an_axis_with_negative_and_repeated_indices():
    x = away((B, 5, 2), 8)
    idx = np.array([[4, -1], [0, 0]], np.int32)
    ref = lambda a: np.take(a, idx, axis=1)  # noqa: E731
    fn = lambda a: S.take(a, idx, axis=1)  # noqa: E731
    check_drivers(fn, ref, (x,))
    check_grad(fn, ref, (x,))
    check_torch(fn, lambda a: a[:, torch.tensor(idx.astype(np.int64))], (x,))
    # float indices are cast; axis=None flattens (eager); a negative axis
    np.testing.assert_allclose(np.asarray(S.take(x, np.array([1.0, 3.0]), axis=-2)),
                               np.take(x, [1, 3], axis=-2))
    np.testing.assert_allclose(np.asarray(S.take(x, [0, 7, -1])), np.take(x, [0, 7, -1]))


def test_take_rows_of_a_weight_by_batched_token_ids():
    """Indices from an int Input take rows of a constant, as an embedding does."""
    table = away((6, 3), 9)
    ids = np.array([[0, 5], [2, -1], [3, 3]], np.int32)
    check_drivers(lambda t: S.take(table, t, axis=0), lambda t: np.take(table, t, axis=0),
                  (ids,))


def test_take_along_axis_matches_numpy_and_torch():
    x = away((B, 4, 5), 10)
    idx = rng(11).integers(-5, 5, (B, 4, 2)).astype(np.int32)
    ref = lambda a, i: np.take_along_axis(a, i, axis=2)  # noqa: E731
    fn = lambda a, i: S.take_along_axis(a, i, axis=2)  # noqa: E731
    check_drivers(fn, ref, (x, idx))
    check_grad(fn, ref, (x, idx))
    check_torch(fn, lambda a, i: torch.gather(a, 2, i % 5), (x, idx))
    # indices broadcast over the other axes (a constant row of indices against the batch)
    row = np.array([[[3], [0], [1], [4]]], np.int32)
    check_drivers(lambda a: S.take_along_axis(a, row, axis=2),
                  lambda a: np.take_along_axis(a, np.broadcast_to(row, (B, 4, 1)), axis=2), (x,))


def test_indices_out_of_range_raise_at_run_time_on_every_driver():
    x = away((B, 4), 12)
    bad = np.array([[0, 4]] * B, np.int32)
    with pytest.raises(ValueError, match="out of bounds"):
        S.take(x, np.array([4]), axis=1)
    with pytest.raises(ValueError, match="out of bounds"):
        S.take_along_axis(pynn.Tensor(x), bad, axis=1)
    with pytest.raises(ValueError, match="out of bounds"):
        S.take(x, np.array([-5]), axis=1)
    # in a model: the indices arrive as data; predict and a training step fail, and the step
    # changes no weight
    xi, ii = pynn.Input((4,)), pynn.Input((2,), dtype="int32")
    h = layers.Dense(4)(xi)
    model = pynn.Model([xi, ii], S.take_along_axis(h, ii, axis=1))
    model.compile(optimizer="sgd", loss="mse")
    good = np.array([[0, 3]] * B, np.int32)
    assert model.predict([x, good], verbose=0).shape == (B, 2)
    with pytest.raises(ValueError, match="take_along_axis: index 4 is out of bounds"):
        model.predict([x, bad], verbose=0)
    before = [w.copy() for w in model.get_weights()]
    with pytest.raises(ValueError, match="out of bounds"):
        model.train_on_batch([x, bad], np.zeros((B, 2), np.float32))
    for w0, w1 in zip(before, model.get_weights()):
        np.testing.assert_array_equal(w0, w1)
    model.train_on_batch([x, good], np.zeros((B, 2), np.float32))  # the model still runs


# -- cumulative -----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["cumsum", "cumprod"])
def test_cumsum_and_cumprod(name):
    fn, ref, tfn = getattr(S, name), getattr(np, name), getattr(torch, name)
    x = away((B, 4, 3), 13, 0.5, 1.5)
    for axis in (1, 2, -1):
        f = lambda a, ax=axis: fn(a, axis=ax)  # noqa: E731
        r = lambda a, ax=axis: ref(a, axis=ax)  # noqa: E731
        check_drivers(f, r, (x,))
        check_grad(f, r, (x,))
        check_torch(f, lambda a, ax=axis: tfn(a, dim=ax), (x,))
    np.testing.assert_allclose(np.asarray(fn(x)), ref(x), rtol=1e-5)  # axis None: flattened


def test_cumprod_gradient_is_exact_with_zeros():
    x = np.array([[0.5, 0.0, 2.0, 0.0, 3.0], [1.5, -2.0, 0.0, 4.0, 0.5]], np.float32)
    f = lambda a: S.cumprod(a, axis=1)  # noqa: E731
    check_grad(f, lambda a: np.cumprod(a, axis=1), (x,))
    check_torch(f, lambda a: torch.cumprod(a, dim=1), (x,))


# -- sort, argsort, top_k, argmax, argmin ---------------------------------------------------------
def test_sort_and_argsort():
    x = away((B, 5, 4), 14, grid=0.1)
    for axis in (1, -1):
        f = lambda a, ax=axis: S.sort(a, axis=ax)  # noqa: E731
        r = lambda a, ax=axis: np.sort(a, axis=ax)  # noqa: E731
        check_drivers(f, r, (x,))
        check_grad(f, r, (x,))
        check_torch(f, lambda a, ax=axis: torch.sort(a, dim=ax).values, (x,))
        check_drivers(lambda a, ax=axis: S.argsort(a, axis=ax),
                      lambda a, ax=axis: np.argsort(a, axis=ax, kind="stable"), (x,), exact=True)
    assert S.argsort(x).dtype == np.int32
    # NaN last, ties stable, as NumPy's stable sort
    y = np.array([[0.3, np.nan, -1.0, 0.3, 2.0]], np.float32)
    np.testing.assert_array_equal(np.asarray(S.sort(y)), np.sort(y))
    np.testing.assert_array_equal(np.asarray(S.argsort(y)), np.argsort(y, kind="stable"))


def test_top_k_values_and_indices():
    x = away((B, 6), 15, grid=0.1)
    ref_i = lambda a: np.argsort(-a, axis=-1, kind="stable")[:, :3]  # noqa: E731
    ref_v = lambda a: np.take_along_axis(a, ref_i(a), axis=-1)  # noqa: E731
    check_drivers(lambda a: S.top_k(a, 3)[0], ref_v, (x,))
    check_drivers(lambda a: S.top_k(a, 3)[1], ref_i, (x,), exact=True)
    check_grad(lambda a: S.top_k(a, 3)[0], ref_v, (x,))
    check_torch(lambda a: S.top_k(a, 3)[0], lambda a: torch.topk(a, 3).values, (x,))
    check_torch(lambda a: S.top_k(a, 3)[1], lambda a: torch.topk(a, 3).indices.int(), (x,))
    with pytest.raises(ValueError):
        S.top_k(x, 7)


@pytest.mark.parametrize("name", ["argmax", "argmin"])
def test_argmax_and_argmin(name):
    fn, ref, tfn = getattr(S, name), getattr(np, name), getattr(torch, name)
    x = away((B, 4, 5), 16, grid=0.1)
    for axis in (1, 2):
        check_drivers(lambda a, ax=axis: fn(a, axis=ax), lambda a, ax=axis: ref(a, axis=ax),
                      (x,), exact=True)
        check_drivers(lambda a, ax=axis: fn(a, axis=ax, keepdims=True),
                      lambda a, ax=axis: ref(a, axis=ax, keepdims=True), (x,), exact=True)
        check_torch(lambda a, ax=axis: fn(a, axis=ax), lambda a, ax=axis: tfn(a, dim=ax).int(),
                    (x,))
    assert int(np.asarray(fn(x))) == ref(x)  # axis None: of all values
    assert fn(x).dtype == np.int32
    y = np.array([[1.0, np.nan, 3.0, np.nan]], np.float32)
    assert np.asarray(fn(y, axis=1))[0] == ref(y, axis=1)[0] == 1  # the first NaN


# -- prod and pad ---------------------------------------------------------------------------------
def test_prod():
    x = away((B, 4, 3), 17, 0.5, 1.5)
    for axis, keep in ((1, False), ((1, 2), True), (-1, False)):
        f = lambda a, ax=axis, k=keep: S.prod(a, axis=ax, keepdims=k)  # noqa: E731
        r = lambda a, ax=axis, k=keep: np.prod(a, axis=ax, keepdims=k)  # noqa: E731
        check_drivers(f, r, (x,))
        check_grad(f, r, (x,))
    check_torch(lambda a: S.prod(a, axis=2), lambda a: torch.prod(a, dim=2), (x,))
    z = np.array([[2.0, 0.0, 3.0], [0.0, 4.0, 0.0]], np.float32)
    check_grad(lambda a: S.prod(a, axis=1), lambda a: np.prod(a, axis=1), (z,))


@pytest.mark.parametrize("mode", ["constant", "reflect", "symmetric"])
def test_pad(mode):
    x = away((B, 3, 4), 18)
    kw = {"constant_values": 1.5} if mode == "constant" else {}
    for widths in (((0, 0), (1, 2), (2, 1)), ((0, 0), (0, 0), (5, 7))):
        f = lambda a, w=widths: S.pad(a, w, mode, **kw)  # noqa: E731
        r = lambda a, w=widths: np.pad(a, w, mode, **kw)  # noqa: E731
        check_drivers(f, r, (x,))
        check_grad(f, r, (x,))
    np.testing.assert_allclose(np.asarray(S.pad(x, 1, mode, **kw)), np.pad(x, 1, mode, **kw))
    if mode != "symmetric":  # torch has no symmetric mode; its reflect needs pads < the size
        tmode = {"constant": "constant", "reflect": "reflect"}[mode]
        tkw = {"value": 1.5} if mode == "constant" else {}
        check_torch(lambda a: S.pad(a, ((0, 0), (1, 2), (2, 1)), mode, **kw),
                    lambda a: torch.nn.functional.pad(a, (2, 1, 1, 2), tmode, **tkw), (x,))


def test_pad_refuses_the_batch_axis_of_a_symbolic_tensor():
    with pytest.raises(ValueError, match="batch axis"):
        S.pad(pynn.Input((3,)), ((1, 0), (0, 0)))


# -- graph against tape, and a custom layer -------------------------------------------------------
def _one_step(build, x, y, lr=0.1):
    """The weights' change of one SGD step of a Dense + build(h) model, against the gradient of
    the same computation on the tape."""
    inp = pynn.Input(x.shape[1:])
    dense = layers.Dense(4)
    model = pynn.Model(inp, build(dense(inp)))
    model.compile(optimizer=pynn.optimizers.SGD(learning_rate=lr), loss="mse")
    w0 = [w.copy() for w in model.get_weights()]
    kernel = pynn.Tensor(w0[0], requires_grad=True)
    bias = pynn.Tensor(w0[1], requires_grad=True)
    out = build(pynn.ops.matmul(pynn.Tensor(x), kernel) + bias)
    ((out - y) ** 2).mean().backward()
    model.train_on_batch(x, y)
    for w_before, w_after, t in zip(w0, model.get_weights(), (kernel, bias)):
        np.testing.assert_allclose((w_before - w_after) / lr, t.grad, rtol=1e-4, atol=1e-6)


def test_graph_and_tape_gradients_agree_for_where_take_and_cumsum():
    x = away((5, 4), 19)
    _one_step(lambda h: S.where(S.greater(h, 0.0), h * 2.0, S.cumsum(h, axis=1)), x,
              away((5, 4), 20))
    _one_step(lambda h: S.take(h, np.array([3, 0, 3]), axis=1), x, away((5, 3), 21))
    _one_step(lambda h: S.cumsum(h, axis=-1), x, away((5, 4), 22))
    _one_step(lambda h: S.pad(S.sort(h, axis=1), ((0, 0), (1, 2)), "reflect"), x,
              away((5, 7), 23))
    _one_step(lambda h: S.top_k(S.cumprod(h, axis=1), 2)[0], x, away((5, 2), 24))


class SortedGate(layers.Layer):
    """A custom layer whose call() uses the new ops (traced into the graph)."""

    def build(self, input_shape):
        self.w = self.add_weight(shape=(input_shape[-1],), initializer="ones")

    def call(self, x):
        s = S.sort(x * self.w, axis=-1)
        top = S.take(s, np.array([-1]), axis=1)
        return S.where(S.greater_equal(x, top), S.cumsum(x, axis=1), S.pad(x, 0) - 1.0)


def test_a_custom_layers_call_is_traced():
    x = away((B, 5), 25)
    layer = SortedGate()
    inp = pynn.Input((5,))
    model = pynn.Model(inp, layer(inp))
    top = np.sort(x, axis=-1)[:, -1:]
    want = np.where(x >= top, np.cumsum(x, axis=1), x - 1.0)
    np.testing.assert_allclose(model.predict(x, verbose=0), want, rtol=1e-6)
    np.testing.assert_allclose(np.asarray(layer(pynn.Tensor(x))), want, rtol=1e-6)
