"""pynn.ops against Keras 3's keras.ops: each function's values against NumPy (or Keras's
documented formula) three ways (on NumPy arrays, on pynn.Tensors, and on symbolic tensors in a
small pynn.Model), its gradient on the tape against finite differences, and a representative set
against PyTorch (values and gradients)."""

import numpy as np
import pytest

import pynn
from pynn import ops
from pynn.layers.input_layer import KerasTensor

torch = pytest.importorskip("torch")
F = torch.nn.functional

# keras.ops's 337 top-level names in Keras 3.15
KERAS_OPS = """
abs absolute adaptive_average_pool adaptive_max_pool add all allclose amax amin angle any append
arange arccos arccosh arcsin arcsinh arctan arctan2 arctanh argmax argmin argpartition argsort
array array_split associative_scan average average_pool bartlett batch_normalization
binary_crossentropy bincount bitwise_and bitwise_invert bitwise_left_shift bitwise_not
bitwise_or bitwise_right_shift bitwise_xor blackman broadcast_to cast categorical_crossentropy
cbrt cdist ceil celu cholesky cholesky_inverse clip concatenate cond conj conjugate conv
conv_transpose convert_to_numpy convert_to_tensor copy corrcoef correlate cos cosh
count_nonzero cross ctc_decode ctc_loss cumprod cumsum custom_gradient deg2rad depth_to_space
depthwise_conv det diag diagflat diagonal diff digitize divide divide_no_nan dot
dot_product_attention dsplit dstack dtype eig eigh einsum elu empty empty_like equal erf erfc
erfinv exp exp2 expand_dims expm1 extract_sequences eye fabs fft fft2 flip fliplr flipud floor
floor_divide fmax fmin fmod fold fori_loop full full_like gcd gelu geomspace get_item glu
greater greater_equal hamming hanning hard_shrink hard_sigmoid hard_silu hard_swish hard_tanh
heaviside histogram hsplit hstack hypot i0 identity ifft2 imag in_top_k inner inv irfft
is_tensor isclose isfinite isin isinf isnan isneginf isposinf isreal istft jvp kaiser kron
layer_normalization lcm ldexp leaky_relu left_shift less less_equal linspace log log10 log1p
log2 log_sigmoid log_softmax logaddexp logaddexp2 logdet logical_and logical_not logical_or
logical_xor logspace logsumexp lstsq lu_factor map matmul matrix_rank max max_pool maximum mean
median meshgrid min minimum mod moments moveaxis multi_hot multiply nan_to_num nanargmax
nanargmin nancumprod nancumsum nanmax nanmean nanmedian nanmin nanpercentile nanprod
nanquantile nanstd nansum nanvar ndim negative nextafter nonzero norm normalize not_equal
one_hot ones ones_like outer pad percentile pinv polar power prod psnr ptp qr quantile rad2deg
ravel real rearrange reciprocal relu relu6 repeat reshape rfft right_shift rms_normalization
roll rot90 round rsqrt saturate_cast scan scatter scatter_update searchsorted segment_max
segment_min segment_prod segment_sum select selu separable_conv shape sigmoid sign signbit silu
sin sinc sinh size slice slice_update slogdet soft_shrink softmax softplus softsign solve
solve_triangular sort space_to_depth sparse_categorical_crossentropy sparse_plus
sparse_sigmoid sparsemax split sqrt square squareplus squeeze stack std stft stop_gradient
subtract sum svd swapaxes swish switch take take_along_axis tan tanh tanh_shrink tensordot
threshold tile top_k trace transpose trapezoid tri tril triu true_divide trunc unfold unique
unravel_index unstack vander var vdot vectorize vectorized_map view view_as_complex
view_as_real vsplit vstack where while_loop zeros zeros_like
""".split()


def test_pynn_ops_has_at_least_200_of_keras_ops_names():
    assert len(KERAS_OPS) == 337
    have = [n for n in KERAS_OPS if hasattr(ops, n)]
    assert len(have) >= 200, f"only {len(have)} names"
    assert all(callable(getattr(ops, n)) for n in have)


# -- drivers ---------------------------------------------------------------------------------------
def data(shape, kind="normal", seed=0):
    rng = np.random.default_rng(seed)
    if kind == "positive":
        return (rng.uniform(0.3, 2.0, shape)).astype(np.float32)
    if kind == "unit":
        return rng.uniform(-0.9, 0.9, shape).astype(np.float32)
    if kind == "above1":
        return rng.uniform(1.2, 3.0, shape).astype(np.float32)
    if kind == "away":  # magnitude in [0.2, 2): no kink within a finite-difference step
        mag = rng.uniform(0.2, 2.0, shape)
        return np.where(rng.random(shape) < 0.5, -mag, mag).astype(np.float32)
    return rng.standard_normal(shape).astype(np.float32)


def symbolic(fn, arrays):
    """fn on pynn.Inputs (per sample: each array's shape without its first axis), predicted."""
    inputs = [pynn.Input(a.shape[1:]) for a in arrays]
    out = fn(*inputs)
    flat = len(out.shape) == 1  # a model's output keeps an axis besides the batch
    model = pynn.Model(inputs if len(inputs) > 1 else inputs[0],
                       ops.expand_dims(out, -1) if flat else out)
    got = model.predict(arrays if len(arrays) > 1 else arrays[0], verbose=0)
    return got[:, 0] if flat else got


def check_three_ways(fn, arrays, expected, sym=True, rtol=1e-5, atol=1e-5):
    expected = np.asarray(expected, np.float64)
    got = np.asarray(fn(*arrays))
    np.testing.assert_allclose(got, expected, rtol=rtol, atol=atol, err_msg="on arrays")
    assert got.shape == expected.shape
    got = fn(*[pynn.Tensor(a) for a in arrays])
    assert isinstance(got, pynn.Tensor)
    np.testing.assert_allclose(np.asarray(got), expected, rtol=rtol, atol=atol,
                               err_msg="on Tensors")
    if sym:
        np.testing.assert_allclose(symbolic(fn, arrays), expected, rtol=rtol, atol=atol,
                                   err_msg="in a model")


def check_gradient(fn, arrays, eps=1e-3, rtol=2e-2, atol=2e-3):
    """The tape's gradient of sum(fn(x) * w) against central differences (in float64 around
    float32 evaluations)."""
    leaves = [pynn.Tensor(a, requires_grad=True) for a in arrays]
    out = fn(*leaves)
    w = np.random.default_rng(7).standard_normal(out.shape).astype(np.float32)
    (out * w).sum().backward()

    def f(*xs):
        return float(np.sum(np.asarray(fn(*xs), np.float64) * w))
    for i, (leaf, a) in enumerate(zip(leaves, arrays)):
        num = np.zeros(a.size)
        for j in range(a.size):
            up, down = [x.copy() for x in arrays], [x.copy() for x in arrays]
            up[i].reshape(-1)[j] += eps
            down[i].reshape(-1)[j] -= eps
            num[j] = (f(*up) - f(*down)) / (2 * eps)
        grad = np.zeros(a.size) if leaf.grad is None else np.asarray(leaf.grad).reshape(-1)
        scale = max(np.abs(num).max(), 1e-3)
        np.testing.assert_allclose(grad, num, rtol=rtol, atol=atol * scale,
                                   err_msg=f"gradient of input {i}")


# -- elementwise -----------------------------------------------------------------------------------
UNARY = [  # name, NumPy's function, input kind, differentiable
    ("sin", np.sin, "normal", True), ("cos", np.cos, "normal", True),
    ("tan", np.tan, "unit", True), ("arctan", np.arctan, "normal", True),
    ("sinh", np.sinh, "normal", True), ("cosh", np.cosh, "normal", True),
    ("tanh", np.tanh, "normal", True), ("arcsin", np.arcsin, "unit", True),
    ("arccos", np.arccos, "unit", True), ("arcsinh", np.arcsinh, "normal", True),
    ("arccosh", np.arccosh, "above1", True), ("arctanh", np.arctanh, "unit", True),
    ("log2", np.log2, "positive", True), ("log10", np.log10, "positive", True),
    ("exp2", np.exp2, "normal", True), ("cbrt", np.cbrt, "away", True),
    ("expm1", np.expm1, "normal", True), ("log1p", np.log1p, "positive", True),
    ("trunc", np.trunc, "away", False), ("fabs", np.fabs, "away", True),
    ("ceil", np.ceil, "away", False), ("floor", np.floor, "away", False),
    ("round", np.round, "away", False), ("sign", np.sign, "away", False),
    ("reciprocal", np.reciprocal, "positive", True),
    ("rsqrt", lambda x: 1 / np.sqrt(x), "positive", True),
    ("deg2rad", np.deg2rad, "normal", True), ("rad2deg", np.rad2deg, "normal", True),
    ("sinc", np.sinc, "away", True), ("erfc", lambda x: 1 - np.vectorize(__import__(
        "math").erf)(x), "normal", True), ("angle", np.angle, "away", False),
    ("real", np.real, "normal", True), ("imag", np.imag, "normal", False),
    ("conj", np.conj, "normal", True), ("conjugate", np.conjugate, "normal", True),
]


@pytest.mark.parametrize("name,ref,kind,diff", UNARY, ids=[u[0] for u in UNARY])
def test_unary_matches_numpy_three_ways(name, ref, kind, diff):
    x = data((3, 4), kind)
    check_three_ways(getattr(ops, name), [x], ref(x.astype(np.float64)), rtol=1e-4)


@pytest.mark.parametrize("name,ref,kind,diff", [u for u in UNARY if u[3]],
                         ids=[u[0] for u in UNARY if u[3]])
def test_unary_gradient_matches_finite_differences(name, ref, kind, diff):
    check_gradient(getattr(ops, name), [data((2, 3), kind, seed=3)])


def test_special_values_follow_numpy():
    x = np.array([0.0, -1000.0, 1e-3, 1.0, -1.0], np.float32)
    np.testing.assert_allclose(ops.arcsinh(x), np.arcsinh(x), rtol=1e-5)
    np.testing.assert_allclose(ops.sinc(np.array([0.0, 0.5], np.float32)), np.sinc([0, 0.5]),
                               rtol=1e-6)
    np.testing.assert_allclose(ops.arcsin(np.array([1.0, -1.0], np.float32)),
                               [np.pi / 2, -np.pi / 2], rtol=1e-6)
    np.testing.assert_allclose(ops.round(np.array([1.25, -2.5, 0.5], np.float32), 1),
                               [1.2, -2.5, 0.5], rtol=1e-6)
    t = pynn.Tensor(np.zeros(1, np.float32), requires_grad=True)
    ops.arcsinh(t).sum().backward()
    assert t.grad[0] == pytest.approx(1.0)  # the slope at 0


BINARY = [
    ("logaddexp", np.logaddexp), ("logaddexp2", np.logaddexp2),
    ("divide_no_nan", lambda a, b: np.where(b == 0, 0, a / np.where(b == 0, 1, b))),
    ("heaviside", np.heaviside), ("fmod", np.fmod), ("ldexp", lambda a, b: a * 2.0 ** b),
]


@pytest.mark.parametrize("name,ref", BINARY, ids=[b[0] for b in BINARY])
def test_binary_matches_numpy_three_ways(name, ref):
    a, b = data((3, 4), "away"), data((3, 4), "away", seed=1)
    if name in ("divide_no_nan", "heaviside"):
        b[0, :2] = 0.0
        a[1, 1] = 0.0
    check_three_ways(getattr(ops, name), [a, b], ref(a.astype(np.float64), b), rtol=1e-4)


@pytest.mark.parametrize("name", ["logaddexp", "logaddexp2", "divide_no_nan"])
def test_binary_gradient_matches_finite_differences(name):
    a, b = data((2, 3), "away", seed=4), data((2, 3), "away", seed=5)
    check_gradient(getattr(ops, name), [a, b])


# -- creation --------------------------------------------------------------------------------------
def test_creation_functions_match_numpy():
    cases = [
        (ops.zeros((2, 3)), np.zeros((2, 3))), (ops.ones(4), np.ones(4)),
        (ops.full((2, 2), 3.5), np.full((2, 2), 3.5)), (ops.empty((2,)), np.zeros(2)),
        (ops.eye(3, 4, k=1), np.eye(3, 4, 1)), (ops.identity(3), np.identity(3)),
        (ops.tri(3, 4, -1), np.tri(3, 4, -1)), (ops.arange(5), np.arange(5)),
        (ops.arange(1, 2, 0.25), np.arange(1, 2, 0.25)), (ops.arange(2, 9, 3), [2, 5, 8]),
        (ops.linspace(0, 1, 5), np.linspace(0, 1, 5)),
        (ops.linspace(0, 1, 4, endpoint=False), np.linspace(0, 1, 4, endpoint=False)),
        (ops.logspace(0, 2, 3), np.logspace(0, 2, 3)),
        (ops.logspace(0, 3, 4, base=2), np.logspace(0, 3, 4, base=2)),
        (ops.geomspace(1, 8, 4), np.geomspace(1, 8, 4)),
        (ops.array([[1, 2], [3, 4]]), [[1, 2], [3, 4]]),
        (ops.full((2,), np.array([1.0, 2.0])), [1.0, 2.0]),
    ]
    for got, want in cases:
        np.testing.assert_allclose(np.asarray(got), want, rtol=1e-6)
        assert np.asarray(got).shape == np.shape(want)
    assert ops.arange(5).dtype == np.int32 and ops.arange(0.0, 2.0).dtype == np.float32
    assert ops.zeros((2,), "int32").dtype == np.int32
    assert ops.full((2,), 3).dtype == np.int32


def test_like_functions_keep_shape_and_are_symbolic_on_symbolic_tensors():
    x = data((3, 4))
    for fn, value in [(ops.zeros_like, 0.0), (ops.ones_like, 1.0), (ops.empty_like, 0.0),
                      (lambda t: ops.full_like(t, 2.5), 2.5)]:
        check_three_ways(fn, [x], np.full((3, 4), value))
        inp = pynn.Input((4,))
        assert isinstance(fn(inp), KerasTensor) and fn(inp).shape == (None, 4)
    assert ops.zeros_like(np.arange(3)).dtype == np.int32
    check_three_ways(lambda t: ops.full_like(t, np.arange(4.0)), [x],
                     np.broadcast_to(np.arange(4.0), (3, 4)))


def test_zeros_with_a_none_batch_takes_the_batch_of_the_shaped_tensor():
    def fn(t):
        return ops.add(t, ops.ones((ops.shape(t)[0], 4)))
    x = data((3, 4))
    np.testing.assert_allclose(symbolic(fn, [x]), x + 1)


def test_linspace_of_tensors_is_differentiable():
    a, b = data((3,)), data((3,), seed=1)
    check_three_ways(lambda s, e: ops.linspace(s, e, 4, axis=1), [a, b],
                     np.linspace(a, b, 4, axis=1), sym=False)
    check_gradient(lambda s, e: ops.linspace(s, e, 4, axis=1), [a, b])


def test_meshgrid_and_copy():
    x, y = np.arange(3.0, dtype=np.float32), np.arange(2.0, dtype=np.float32)
    for indexing in ("xy", "ij"):
        for got, want in zip(ops.meshgrid(x, y, indexing=indexing),
                             np.meshgrid(x, y, indexing=indexing)):
            np.testing.assert_array_equal(got, want)
    check_three_ways(ops.copy, [data((3, 2))], data((3, 2)))
    check_gradient(ops.copy, [data((2, 2))])


# -- shapes ----------------------------------------------------------------------------------------
X = data((3, 4, 5))
SHAPE_CASES = [  # id, fn, NumPy reference (on X), runs on a symbolic tensor
    ("stack", lambda x: ops.stack([x, x * 2], 1), lambda x: np.stack([x, x * 2], 1), True),
    ("stack_last", lambda x: ops.stack([x, x], -1), lambda x: np.stack([x, x], -1), True),
    ("unstack", lambda x: ops.unstack(x, axis=2)[3], lambda x: x[:, :, 3], True),
    ("split", lambda x: ops.split(x, 2, 1)[1], lambda x: np.split(x, 2, 1)[1], True),
    ("split_idx", lambda x: ops.split(x, [1, 3], 2)[1], lambda x: np.split(x, [1, 3], 2)[1],
     True),
    ("array_split", lambda x: ops.array_split(x, 3, 2)[0], lambda x: np.array_split(x, 3, 2)[0],
     True),
    ("hsplit", lambda x: ops.hsplit(x, 2)[0], lambda x: np.hsplit(x, 2)[0], True),
    ("dsplit", lambda x: ops.dsplit(x, [2])[1], lambda x: np.dsplit(x, [2])[1], True),
    ("vsplit", lambda x: ops.vsplit(x, 3)[2], lambda x: np.vsplit(x, 3)[2], False),
    ("hstack", lambda x: ops.hstack([x, x]), lambda x: np.hstack([x, x]), True),
    ("vstack", lambda x: ops.vstack([x, x]), lambda x: np.vstack([x, x]), False),
    ("dstack", lambda x: ops.dstack([x, x]), lambda x: np.dstack([x, x]), True),
    ("moveaxis", lambda x: ops.moveaxis(x, 1, 2), lambda x: np.moveaxis(x, 1, 2), True),
    ("moveaxis_many", lambda x: ops.moveaxis(x, [0, 1], [2, 0]),
     lambda x: np.moveaxis(x, [0, 1], [2, 0]), False),
    ("swapaxes", lambda x: ops.swapaxes(x, -1, 1), lambda x: np.swapaxes(x, -1, 1), True),
    ("broadcast_to", lambda x: ops.broadcast_to(x[:, :1], (3, 4, 5)),
     lambda x: np.broadcast_to(x[:, :1], (3, 4, 5)), True),
    ("flip", lambda x: ops.flip(x, (1, 2)), lambda x: np.flip(x, (1, 2)), True),
    ("flip_all", ops.flip, np.flip, False),
    ("fliplr", ops.fliplr, np.fliplr, True),
    ("flipud", ops.flipud, np.flipud, False),
    ("roll", lambda x: ops.roll(x, 2, 2), lambda x: np.roll(x, 2, 2), True),
    ("roll_multi", lambda x: ops.roll(x, (1, -1), (1, 2)), lambda x: np.roll(x, (1, -1), (1, 2)),
     True),
    ("roll_flat", lambda x: ops.roll(x, 7), lambda x: np.roll(x, 7), False),
    ("rot90", lambda x: ops.rot90(x, 1, (1, 2)), lambda x: np.rot90(x, 1, (1, 2)), True),
    ("rot90_3", lambda x: ops.rot90(x, 3, (1, 2)), lambda x: np.rot90(x, 3, (1, 2)), True),
    ("rot90_2", lambda x: ops.rot90(x, 2, (2, 1)), lambda x: np.rot90(x, 2, (2, 1)), True),
    ("repeat", lambda x: ops.repeat(x, 2, 1), lambda x: np.repeat(x, 2, 1), True),
    ("repeat_list", lambda x: ops.repeat(x, [1, 0, 2, 1, 1], 2),
     lambda x: np.repeat(x, [1, 0, 2, 1, 1], 2), True),
    ("repeat_flat", lambda x: ops.repeat(x, 2), lambda x: np.repeat(x, 2), False),
    ("tile", lambda x: ops.tile(x, (1, 2, 2)), lambda x: np.tile(x, (1, 2, 2)), True),
    ("tile_rank", lambda x: ops.tile(x, (2, 1, 1, 2)), lambda x: np.tile(x, (2, 1, 1, 2)),
     False),
    ("append", lambda x: ops.append(x, x * 2, axis=2), lambda x: np.append(x, x * 2, 2), True),
    ("append_flat", lambda x: ops.append(x, x), lambda x: np.append(x, x), False),
    ("tril", lambda x: ops.tril(x, 1), lambda x: np.tril(x, 1), True),
    ("triu", lambda x: ops.triu(x, -1), lambda x: np.triu(x, -1), True),
    ("diagonal", lambda x: ops.diagonal(x, 1, 1, 2), lambda x: np.diagonal(x, 1, 1, 2), True),
    ("diagonal_neg", lambda x: ops.diagonal(x, -2, 2, 1), lambda x: np.diagonal(x, -2, 2, 1),
     True),
    ("trace", lambda x: ops.trace(x, 0, 1, 2), lambda x: np.trace(x, 0, 1, 2), True),
    ("get_item", lambda x: ops.get_item(x, (slice(None), None, 2, slice(1, None, 2))),
     lambda x: x[:, None, 2, 1::2], True),
    ("slice", lambda x: ops.slice(x, (0, 1, 2), (3, 2, 3)), lambda x: x[:, 1:3, 2:5], False),
    ("expand_squeeze", lambda x: ops.squeeze(ops.expand_dims(x, 2), 2), lambda x: x, True),
]


@pytest.mark.parametrize("fn,ref,sym", [c[1:] for c in SHAPE_CASES],
                         ids=[c[0] for c in SHAPE_CASES])
def test_shape_functions_match_numpy_three_ways(fn, ref, sym):
    check_three_ways(fn, [X], ref(X), sym=sym)


@pytest.mark.parametrize("fn", [c[1] for c in SHAPE_CASES if c[0] in (
    "stack", "split", "moveaxis", "broadcast_to", "flip", "roll", "rot90", "repeat",
    "repeat_list", "tile", "tril", "diagonal", "vstack", "append_flat")],
    ids=["stack", "split", "moveaxis", "broadcast_to", "flip", "roll", "rot90", "repeat",
         "repeat_list", "tile", "tril", "diagonal", "vstack", "append_flat"])
def test_shape_function_gradients_match_finite_differences(fn):
    check_gradient(fn, [data((3, 4, 5), seed=2)])


def test_diag_diagflat_ravel_size_ndim_slice_update():
    v = data((4,))
    m = data((4, 5))
    for k in (-1, 0, 2):
        np.testing.assert_allclose(ops.diag(v, k), np.diag(v, k))
        np.testing.assert_allclose(ops.diag(m, k), np.diag(m, k))
    np.testing.assert_allclose(ops.diagflat(m[:2, :2], 1), np.diagflat(m[:2, :2], 1))
    np.testing.assert_allclose(ops.ravel(m), m.ravel())
    assert ops.size(m) == 20 and ops.ndim(m) == 2 and ops.ndim(pynn.Input((3,))) == 2
    check_gradient(lambda t: ops.diag(t, 1), [data((3,))])
    want = X.copy()
    want[:, 1:3, 0:2] = 7.0
    check_three_ways(lambda x: ops.slice_update(x, (0, 1, 0), ops.full((3, 2, 2), 7.0)), [X],
                     want, sym=False)
    check_three_ways(lambda x: ops.slice_update(x, (0, 1, 0), x[:, :2, :2] * 0 + 7.0), [X],
                     want)
    check_gradient(lambda x, u: ops.slice_update(x, (1, 0), u), [data((3, 3)), data((2, 2))])


def test_symbolic_shape_functions_refuse_the_batch_axis_clearly():
    inp = pynn.Input((4,))
    with pytest.raises(NotImplementedError, match="ravel"):
        ops.ravel(inp)
    with pytest.raises(ValueError, match="batch axis"):
        ops.unstack(inp, axis=0)
    with pytest.raises(ValueError, match="batch"):
        ops.stack([inp, inp], 0)


# -- reductions and products -----------------------------------------------------------------------
A = data((3, 4))
B = data((3, 4), seed=1)
REDUCE_CASES = [
    ("var", lambda x: ops.var(x, 1), lambda x: np.var(x, 1), True),
    ("var_keep", lambda x: ops.var(x, -1, keepdims=True), lambda x: np.var(x, -1, keepdims=True),
     True),
    ("std", lambda x: ops.std(x, 1), lambda x: np.std(x, 1), True),
    ("std_all", ops.std, np.std, False),
    ("average", lambda x: ops.average(x, 1, np.arange(1.0, 5.0)),
     lambda x: np.average(x, 1, np.arange(1.0, 5.0)), True),
    ("average_full", lambda x: ops.average(x, 1, np.abs(B) + 0.1),
     lambda x: np.average(x, 1, np.abs(B) + 0.1), False),
    ("ptp", lambda x: ops.ptp(x, 1), lambda x: np.ptp(x, 1), True),
    ("norm_2", lambda x: ops.norm(x, axis=1), lambda x: np.linalg.norm(x, axis=1), True),
    ("norm_1", lambda x: ops.norm(x, 1, 1), lambda x: np.linalg.norm(x, 1, 1), True),
    ("norm_3", lambda x: ops.norm(x, 3, -1), lambda x: np.linalg.norm(x, 3, -1), True),
    ("norm_inf", lambda x: ops.norm(x, np.inf, 1), lambda x: np.linalg.norm(x, np.inf, 1), True),
    ("norm_0", lambda x: ops.norm(x, 0, 1), lambda x: np.linalg.norm(x, 0, 1), True),
    ("norm_fro", lambda x: ops.norm(x, "fro"), lambda x: np.linalg.norm(x, "fro"), False),
    ("norm_mat1", lambda x: ops.norm(x, 1), lambda x: np.linalg.norm(x, 1), False),
    ("norm_matinf", lambda x: ops.norm(x, -np.inf), lambda x: np.linalg.norm(x, -np.inf),
     False),
    ("norm_all", ops.norm, lambda x: np.linalg.norm(x), False),
    ("dot", lambda x: ops.dot(x, B.T), lambda x: np.dot(x, B.T), True),
    ("dot_3d", lambda x: ops.dot(x, data((2, 4, 3))), lambda x: np.dot(x, data((2, 4, 3))),
     True),
    ("tensordot", lambda x: ops.tensordot(x, data((4, 2)), 1),
     lambda x: np.tensordot(x, data((4, 2)), 1), True),
    ("tensordot_axes", lambda x: ops.tensordot(x, B, ([0, 1], [0, 1])),
     lambda x: np.tensordot(x, B, ([0, 1], [0, 1])), False),
    ("inner", lambda x: ops.inner(x, B), lambda x: np.inner(x, B), True),
    ("outer", lambda x: ops.outer(x[0], x[1]), lambda x: np.outer(x[0], x[1]), False),
    ("vdot", lambda x: ops.vdot(x, B), lambda x: np.vdot(x, B), False),
    ("kron", lambda x: ops.kron(x, B[:2, :2]), lambda x: np.kron(x, B[:2, :2]), False),
    ("cross", lambda x: ops.cross(x[:, :3], B[:, 1:]), lambda x: np.cross(x[:, :3], B[:, 1:]),
     False),
    ("cross_self", lambda x: ops.cross(x[:, :3], x[:, 1:]),
     lambda x: np.cross(x[:, :3], x[:, 1:]), True),
    ("cross2", lambda x: ops.cross(x[:, :2], x[:, 2:]),
     lambda x: x[:, 0] * x[:, 3] - x[:, 1] * x[:, 2], True),
    ("diff", lambda x: ops.diff(x, 2), lambda x: np.diff(x, 2), True),
    ("trapezoid", ops.trapezoid, np.trapezoid, True),
    ("trapezoid_x", lambda x: ops.trapezoid(x, np.array([0.0, 1.0, 3.0, 4.0])),
     lambda x: np.trapezoid(x, np.array([0.0, 1.0, 3.0, 4.0])), True),
    ("vander", lambda x: ops.vander(x[0]), lambda x: np.vander(x[0]), False),
    ("cdist", lambda x: ops.cdist(x, B[:2]),
     lambda x: np.sqrt(((x[:, None] - B[None, :2]) ** 2).sum(-1)), True),
    ("corrcoef", ops.corrcoef, np.corrcoef, False),
    ("correlate", lambda x: ops.correlate(x[0], x[1, :3], "full"),
     lambda x: np.correlate(x[0], x[1, :3], "full"), False),
    ("correlate_same", lambda x: ops.correlate(x[0], x[1, :2], "same"),
     lambda x: np.correlate(x[0], x[1, :2], "same"), False),
    ("logsumexp", lambda x: ops.logsumexp(x, 1),
     lambda x: np.log(np.exp(x).sum(1)), True),
]


@pytest.mark.parametrize("fn,ref,sym", [c[1:] for c in REDUCE_CASES],
                         ids=[c[0] for c in REDUCE_CASES])
def test_reductions_and_products_match_numpy_three_ways(fn, ref, sym):
    check_three_ways(fn, [A], ref(A.astype(np.float64)), sym=sym, rtol=1e-4)


@pytest.mark.parametrize("fn", [c[1] for c in REDUCE_CASES if c[0] in (
    "var", "std", "average", "norm_2", "norm_3", "norm_mat1", "dot", "tensordot", "kron",
    "cross", "diff", "trapezoid", "cdist", "corrcoef")],
    ids=["var", "std", "average", "norm_2", "norm_3", "norm_mat1", "dot", "tensordot", "kron",
         "cross", "diff", "trapezoid", "cdist", "corrcoef"])
def test_reduction_and_product_gradients_match_finite_differences(fn):
    check_gradient(fn, [A.copy()])


EINSUMS = [
    ("ij,jk->ik", [(3, 4), (4, 2)]), ("bij,bjk->bik", [(3, 2, 4), (3, 4, 5)]),
    ("...ij,...jk", [(3, 2, 2, 4), (3, 2, 4, 3)]), ("bij->bji", [(3, 2, 4)]),
    ("bij->b", [(3, 2, 4)]), ("bi,bi->b", [(3, 4), (3, 4)]), ("bcd,cd->bc", [(3, 4, 5), (4, 5)]),
    ("bi,bj->bij", [(3, 4), (3, 2)]), ("bqhd,bkhd->bhqk", [(3, 5, 2, 4), (3, 6, 2, 4)]),
    ("bij,jk,kl->bil", [(3, 2, 4), (4, 5), (5, 2)]), ("bi,j->bij", [(3, 2), (4,)]),
]


@pytest.mark.parametrize("subscripts,shapes", EINSUMS, ids=[e[0] for e in EINSUMS])
def test_einsum_matches_numpy_three_ways(subscripts, shapes):
    arrays = [data(s, seed=i) for i, s in enumerate(shapes)]
    want = np.einsum(subscripts, *[a.astype(np.float64) for a in arrays])
    check_three_ways(lambda *t: ops.einsum(subscripts, *t), arrays, want, rtol=1e-4,
                     sym=shapes[-1][0] == 3 or len(shapes) == 1)


def test_einsum_gradient_and_unsupported_diagonal():
    check_gradient(lambda a, b: ops.einsum("bij,bjk->bik", a, b),
                   [data((2, 2, 3)), data((2, 3, 2), seed=1)])
    with pytest.raises(NotImplementedError, match="repeated"):
        ops.einsum("ii->i", data((3, 3)))


def test_norm_of_a_symbolic_matrix_norm_nuc_is_data_only():
    with pytest.raises(NotImplementedError, match="norm"):
        ops.norm(pynn.Input((3, 3)), "nuc", (1, 2))
    np.testing.assert_allclose(ops.norm(A, "nuc"), np.linalg.norm(A, "nuc"), rtol=1e-5)


# -- nn --------------------------------------------------------------------------------------------
ACTS = [  # name, ops function, torch reference
    ("elu", lambda x: ops.elu(x, 0.5), lambda t: F.elu(t, 0.5)),
    ("selu", ops.selu, F.selu), ("celu", lambda x: ops.celu(x, 0.7), lambda t: F.celu(t, 0.7)),
    ("leaky_relu", ops.leaky_relu, lambda t: F.leaky_relu(t, 0.2)),
    ("relu6", lambda x: ops.relu6(x * 4), lambda t: F.relu6(t * 4)),
    ("hard_sigmoid", ops.hard_sigmoid, F.hardsigmoid),
    ("hard_silu", ops.hard_silu, F.hardswish), ("hard_swish", ops.hard_swish, F.hardswish),
    ("hard_tanh", ops.hard_tanh, F.hardtanh),
    ("hard_shrink", ops.hard_shrink, lambda t: F.hardshrink(t, 0.5)),
    ("soft_shrink", ops.soft_shrink, lambda t: F.softshrink(t, 0.5)),
    ("tanh_shrink", ops.tanh_shrink, F.tanhshrink),
    ("threshold", lambda x: ops.threshold(x, 0.3, -2.0), lambda t: F.threshold(t, 0.3, -2.0)),
    ("softsign", ops.softsign, F.softsign),
    ("squareplus", ops.squareplus, lambda t: (t + torch.sqrt(t * t + 4)) / 2),
    ("sparse_plus", ops.sparse_plus,
     lambda t: torch.where(t <= -1, 0 * t, torch.where(t >= 1, t, (t + 1) ** 2 / 4))),
    ("sparse_sigmoid", ops.sparse_sigmoid, lambda t: torch.clamp((t + 1) / 2, 0, 1)),
    ("glu", ops.glu, lambda t: F.glu(t, -1)),
    ("normalize", ops.normalize, lambda t: F.normalize(t, dim=-1)),
    ("normalize_1", lambda x: ops.normalize(x, order=1), lambda t: F.normalize(t, 1, dim=-1)),
    ("gelu", ops.gelu, lambda t: F.gelu(t, approximate="tanh")),
]


@pytest.mark.parametrize("fn,ref", [a[1:] for a in ACTS], ids=[a[0] for a in ACTS])
def test_activations_match_torch_three_ways_and_in_gradient(fn, ref):
    x = data((3, 4), "away") * 2
    t = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    want = ref(t)
    check_three_ways(fn, [x], want.detach().numpy(), rtol=1e-4)
    leaf = pynn.Tensor(x, requires_grad=True)
    w = np.random.default_rng(1).standard_normal(want.shape)
    (fn(leaf) * w.astype(np.float32)).sum().backward()
    (want * torch.tensor(w)).sum().backward()
    np.testing.assert_allclose(leaf.grad, t.grad.numpy(), rtol=1e-3, atol=1e-5)


def test_normalization_functions_match_torch():
    x = data((3, 4))
    g, b = data((4,), "positive", 1), data((4,), seed=2)
    tx, tg, tb = (torch.tensor(a, dtype=torch.float64) for a in (x, g, b))
    check_three_ways(lambda t: ops.layer_normalization(t, g, b), [x],
                     F.layer_norm(tx, (4,), tg, tb, eps=1e-7).numpy(), rtol=1e-4)
    check_three_ways(lambda t: ops.rms_normalization(t, g), [x],
                     F.rms_norm(tx, (4,), tg, eps=1e-7).numpy(), rtol=1e-4)
    check_three_ways(lambda t: ops.batch_normalization(t, b, g, -1, offset=b, scale=g), [x],
                     F.batch_norm(tx, tb, tg, tg, tb, eps=1e-3).numpy(), rtol=1e-4)
    m, v = ops.moments(x, [0])
    np.testing.assert_allclose(m, x.mean(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(v, x.var(0), rtol=1e-5, atol=1e-6)
    check_three_ways(lambda t: ops.moments(t, [1], keepdims=True)[1], [x],
                     x.var(1, keepdims=True), rtol=1e-4)
    check_gradient(lambda t: ops.layer_normalization(t, g, b), [data((2, 4))])
    x4 = data((2, 3, 4))
    check_three_ways(lambda t: ops.batch_normalization(t, b[:3], g[:3], 1), [x4],
                     (x4 - b[:3, None]) / np.sqrt(g[:3, None] + 1e-3), rtol=1e-4)


def test_crossentropies_match_torch():
    logits = data((3, 4))
    probs = np.abs(logits) / np.abs(logits).sum(-1, keepdims=True)
    labels = np.array([0, 3, 1])
    onehot = np.eye(4, dtype=np.float32)[labels]
    tl = torch.tensor(logits, dtype=torch.float64)
    check_three_ways(lambda y, p: ops.binary_crossentropy(y, p, from_logits=True),
                     [onehot, logits], F.binary_cross_entropy_with_logits(
                         tl, torch.tensor(onehot, dtype=torch.float64), reduction="none"),
                     rtol=1e-4)
    sig = 1 / (1 + np.exp(-logits))
    check_three_ways(ops.binary_crossentropy, [onehot, sig], F.binary_cross_entropy(
        torch.tensor(sig, dtype=torch.float64), torch.tensor(onehot, dtype=torch.float64),
        reduction="none"), rtol=1e-4)
    check_three_ways(lambda y, p: ops.categorical_crossentropy(y, p, from_logits=True),
                     [onehot, logits], F.cross_entropy(tl, torch.tensor(labels),
                                                       reduction="none"), rtol=1e-4)
    check_three_ways(ops.categorical_crossentropy, [onehot, probs],
                     -(onehot * np.log(probs)).sum(-1), rtol=1e-4)
    got = ops.sparse_categorical_crossentropy(labels, logits, from_logits=True)
    np.testing.assert_allclose(got, F.cross_entropy(tl, torch.tensor(labels),
                                                    reduction="none"), rtol=1e-5)
    check_gradient(lambda p: ops.categorical_crossentropy(onehot[:2], p, from_logits=True),
                   [logits[:2].copy()])
    check_gradient(lambda p: ops.binary_crossentropy(onehot[:2], p, from_logits=True),
                   [logits[:2].copy()])


def test_psnr_and_multi_hot():
    x, y = data((3, 4), "positive"), data((3, 4), "positive", 1)
    want = 20 * np.log10(2.0) - 10 * np.log10(np.mean((x - y) ** 2))
    np.testing.assert_allclose(ops.psnr(x, y, 2.0), want, rtol=1e-5)
    np.testing.assert_array_equal(ops.multi_hot(np.array([[0, 2], [1, 1]]), 4),
                                  [[1, 0, 1, 0], [0, 1, 0, 0]])


@pytest.mark.parametrize("masked,causal,scale", [(False, False, None), (True, False, None),
                                                 (False, True, 0.3), (True, True, None)])
def test_dot_product_attention_matches_torch(masked, causal, scale):
    q, k, v = data((2, 5, 2, 4)), data((2, 5, 2, 4), seed=1), data((2, 5, 2, 3), seed=2)
    mask = np.random.default_rng(3).random((2, 1, 5, 5)) > 0.3 if masked else None
    if masked:  # no row fully masked (there torch gives 0, Keras a uniform average)
        mask |= np.eye(5, dtype=bool)
    tq, tk, tv = (torch.tensor(a, dtype=torch.float64).transpose(1, 2) for a in (q, k, v))
    tmask = None if mask is None else torch.tensor(mask)
    if causal and masked:
        tmask = tmask & torch.tril(torch.ones(5, 5, dtype=torch.bool))
    want = F.scaled_dot_product_attention(tq, tk, tv, attn_mask=tmask,
                                          is_causal=causal and not masked,
                                          scale=scale).transpose(1, 2).numpy()

    def fn(a, b, c):
        return ops.dot_product_attention(a, b, c, mask=mask, scale=scale, is_causal=causal)
    check_three_ways(fn, [q, k, v], want, rtol=1e-4, sym=not masked)
    check_gradient(fn, [q[:1, :3], k[:1, :3], v[:1, :3]] if not masked else [q, k, v])


def test_dot_product_attention_fully_masked_row_is_uniform():
    q, k, v = data((1, 2, 1, 2)), data((1, 3, 1, 2), seed=1), data((1, 3, 1, 2), seed=2)
    mask = np.zeros((1, 1, 2, 3), bool)
    out = ops.dot_product_attention(q, k, v, mask=mask)
    np.testing.assert_allclose(out[0, 0, 0], v[0, :, 0].mean(0), rtol=1e-5)


def _torch_conv(x, kernel, stride=1, padding=0, dilation=1, groups=1):
    tx = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    tk = torch.tensor(kernel, dtype=torch.float64, requires_grad=True)
    nsp = x.ndim - 2
    perm_x = (0, nsp + 1) + tuple(range(1, nsp + 1))
    perm_k = (nsp + 1, nsp) + tuple(range(nsp))
    conv = F.conv2d if nsp == 2 else F.conv1d
    out = conv(tx.permute(*perm_x), tk.permute(*perm_k), stride=stride, padding=padding,
               dilation=dilation, groups=groups)
    back = (0,) + tuple(range(2, nsp + 2)) + (1,)
    return out.permute(*back), tx, tk


CONVS = [  # x shape, kernel shape, strides, padding, dilation, torch padding
    ((2, 7, 6, 3), (3, 2, 3, 4), 1, "valid", 1, 0),
    ((2, 7, 6, 3), (3, 3, 3, 2), 2, "valid", 1, 0),
    ((2, 7, 6, 3), (3, 3, 3, 2), 1, "same", 1, 1),
    ((2, 7, 7, 2), (2, 2, 2, 3), 1, "valid", 2, 0),
    ((2, 9, 3), (3, 3, 5), 1, "same", 1, 1),
    ((2, 9, 3), (2, 3, 2), 2, "valid", 1, 0),
    ((2, 6, 6, 4), (3, 3, 2, 4), 1, "valid", 1, 0),  # two groups
]


@pytest.mark.parametrize("xs,ks,strides,padding,dilation,tpad", CONVS)
def test_conv_matches_torch_three_ways_and_in_gradient(xs, ks, strides, padding, dilation, tpad):
    x, kernel = data(xs), data(ks, seed=1)
    want, tx, tk = _torch_conv(x, kernel, strides, tpad, dilation, groups=xs[-1] // ks[-2])

    def fn(t):
        return ops.conv(t, kernel, strides, padding, dilation_rate=dilation)
    check_three_ways(fn, [x], want.detach().numpy(), rtol=1e-4, atol=1e-4)
    lx, lk = pynn.Tensor(x, requires_grad=True), pynn.Tensor(kernel, requires_grad=True)
    w = np.random.default_rng(2).standard_normal(want.shape)
    (ops.conv(lx, lk, strides, padding, dilation_rate=dilation) * w.astype(np.float32)) \
        .sum().backward()
    (want * torch.tensor(w)).sum().backward()
    np.testing.assert_allclose(lx.grad, tx.grad.numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(lk.grad, tk.grad.numpy(), rtol=1e-4, atol=1e-4)


def test_conv_channels_first_depthwise_and_separable_match_torch():
    x = data((2, 6, 5, 3))
    kernel = data((3, 2, 3, 4), seed=1)
    want, _, _ = _torch_conv(x, kernel)
    got = ops.conv(np.moveaxis(x, -1, 1), kernel, data_format="channels_first")
    np.testing.assert_allclose(got, np.moveaxis(want.detach().numpy(), -1, 1), rtol=1e-4,
                               atol=1e-5)
    dk = data((3, 2, 3, 2), seed=2)  # multiplier 2
    want, _, _ = _torch_conv(x, dk.reshape(3, 2, 1, 6), groups=3)
    check_three_ways(lambda t: ops.depthwise_conv(t, dk), [x], want.detach().numpy(),
                     rtol=1e-4, atol=1e-5)
    pk = data((1, 1, 6, 4), seed=3)
    tw = torch.tensor(pk, dtype=torch.float64).permute(3, 2, 0, 1)
    want2 = F.conv2d(want.permute(0, 3, 1, 2), tw).permute(0, 2, 3, 1).detach().numpy()
    check_three_ways(lambda t: ops.separable_conv(t, dk, pk), [x], want2, rtol=1e-4,
                     atol=1e-5)
    check_gradient(lambda t, k: ops.depthwise_conv(t, k, padding="same"),
                   [data((1, 3, 3, 2)), data((2, 2, 2, 1), seed=4)])


@pytest.mark.parametrize("strides,padding,output_padding", [(1, "valid", None),
                                                            (2, "valid", None),
                                                            (2, "valid", 1), (2, "same", None)])
def test_conv_transpose_matches_torch(strides, padding, output_padding):
    x, kernel = data((2, 4, 3, 3)), data((3, 3, 2, 3), seed=1)  # kernel (kh, kw, out, in)
    tx = torch.tensor(x, dtype=torch.float64).permute(0, 3, 1, 2)
    tk = torch.tensor(kernel, dtype=torch.float64).permute(3, 2, 0, 1)
    if padding == "valid":
        want = F.conv_transpose2d(tx, tk, stride=strides, output_padding=output_padding or 0)
    else:  # 'same' with stride 2, kernel 3: Keras's output is input * 2, the full transposed
        # convolution (2 n + 1 values) without its last value
        full = F.conv_transpose2d(tx, tk, stride=strides)
        want = full[:, :, :4 * strides, :3 * strides]
    want = want.permute(0, 2, 3, 1).numpy()

    def fn(t):
        return ops.conv_transpose(t, kernel, strides, padding, output_padding)
    check_three_ways(fn, [x], want, rtol=1e-4, atol=1e-4)


def test_conv_transpose_gradient():
    check_gradient(lambda t, k: ops.conv_transpose(t, k, 2),
                   [data((1, 2, 2, 1)), data((2, 2, 2, 1), seed=1)])


@pytest.mark.parametrize("name,pool,strides,padding", [
    ("max_pool", 2, None, "valid"), ("max_pool", (2, 3), 1, "valid"), ("max_pool", 3, 2, "same"),
    ("average_pool", 2, None, "valid"), ("average_pool", 3, 2, "same")])
def test_pools_match_torch_three_ways(name, pool, strides, padding):
    x = data((2, 6, 5, 3))
    tx = torch.tensor(x, dtype=torch.float64).permute(0, 3, 1, 2)
    p = (pool, pool) if isinstance(pool, int) else pool
    s = p if strides is None else (strides, strides)
    if padding == "same":  # 6x5 by 3 stride 2: pads (0, 1) / (1, 1); Keras ignores the pads
        if name == "max_pool":
            tx = F.pad(tx, (1, 1, 0, 1), value=-np.inf)
            want = F.max_pool2d(tx, p, s)
        else:
            ones = F.pad(torch.ones_like(tx), (1, 1, 0, 1))
            want = F.avg_pool2d(F.pad(tx, (1, 1, 0, 1)), p, s) / F.avg_pool2d(ones, p, s)
    else:
        want = (F.max_pool2d if name == "max_pool" else F.avg_pool2d)(tx, p, s)
    fn = getattr(ops, name)
    check_three_ways(lambda t: fn(t, pool, strides, padding), [x],
                     want.permute(0, 2, 3, 1).numpy(), rtol=1e-5)
    check_gradient(lambda t: fn(t, pool, strides, padding), [data((1, 4, 4, 1), "away")])


def test_pool_1d():
    x = data((2, 7, 3))
    want = F.max_pool1d(torch.tensor(x).permute(0, 2, 1), 2).permute(0, 2, 1).numpy()
    check_three_ways(lambda t: ops.max_pool(t, 2), [x], want)


def test_depth_to_space_and_back():
    # TensorFlow's layout: out[b, h * 2 + i, w * 2 + j, c] = x[b, h, w, (i * 2 + j) * C + c]
    x = data((2, 2, 3, 8))
    want = x.reshape(2, 2, 3, 2, 2, 2).transpose(0, 1, 3, 2, 4, 5).reshape(2, 4, 6, 2)
    check_three_ways(lambda t: ops.depth_to_space(t, 2), [x], want)
    assert float(ops.depth_to_space(x, 2)[0, 1, 0, 1]) == x[0, 0, 0, (1 * 2 + 0) * 2 + 1]
    check_three_ways(lambda t: ops.space_to_depth(ops.depth_to_space(t, 2), 2), [x], x)


# -- control flow ----------------------------------------------------------------------------------
def test_control_flow_on_data():
    x = data((3, 2))
    np.testing.assert_allclose(ops.cond(True, lambda: x * 2, lambda: x), x * 2)
    np.testing.assert_allclose(ops.cond(pynn.Tensor(np.array(0.0, np.float32)),
                                        lambda: x * 2, lambda: x), x)
    assert ops.switch(5, [lambda a: a, lambda a: a + 1], 1.0) == 2.0  # clipped to the last
    assert ops.fori_loop(0, 4, lambda i, v: v + i, 0) == 6
    i, s = ops.while_loop(lambda i, s: i < 5, lambda i, s: (i + 1, s * 2), (0, 1.0))
    assert (i, s) == (5, 32.0)
    assert ops.while_loop(lambda v: v < 100, lambda v: v * 3, 1, maximum_iterations=2) == 9
    carry, ys = ops.scan(lambda c, r: (c + r, c * r), np.zeros(2, np.float32), x)
    np.testing.assert_allclose(carry, x.sum(0), rtol=1e-6)
    np.testing.assert_allclose(ys, np.stack([np.cumsum(x, 0)[i] - x[i] for i in range(3)]) * x,
                               rtol=1e-6, atol=1e-7)
    _, ys = ops.scan(lambda c, r: (c, r * 2), 0.0, x, reverse=True)
    np.testing.assert_allclose(ys, x * 2)
    carry, _ = ops.scan(lambda c, _: (c * 2, None), 1.0, length=3)
    assert carry == 8.0
    np.testing.assert_allclose(ops.map(lambda r: ops.sum(r), x), x.sum(1), rtol=1e-6)
    np.testing.assert_allclose(ops.vectorized_map(lambda r: r * 3, x), x * 3)
    np.testing.assert_allclose(ops.associative_scan(ops.add, x, axis=0), np.cumsum(x, 0),
                               rtol=1e-6)
    np.testing.assert_allclose(ops.associative_scan(ops.add, x, reverse=True, axis=1),
                               np.cumsum(x[:, ::-1], 1)[:, ::-1], rtol=1e-6)


def test_control_flow_unrolls_on_symbolic_tensors_with_static_decisions():
    x = data((3, 4))

    def fn(t):
        t = ops.fori_loop(0, 3, lambda i, v: v * 2 + i, t)
        t = ops.cond(True, lambda: t + 1, lambda: t)
        _, t = ops.while_loop(lambda i, v: i < 2, lambda i, v: (i + 1, v - 1), (0, t))
        return t
    np.testing.assert_allclose(symbolic(fn, [x]), x * 8 + 4 + 1 - 2, rtol=1e-5)
    scan_sym = symbolic(lambda t: ops.scan(lambda c, _: (c * 2, None), t, length=2)[0], [x])
    np.testing.assert_allclose(scan_sym, x * 4, rtol=1e-6)


def test_control_flow_on_a_symbolic_value_raises_clearly():
    inp = pynn.Input((3,))
    with pytest.raises(NotImplementedError, match="cond"):
        ops.cond(ops.sum(inp), lambda: inp, lambda: inp)
    with pytest.raises(NotImplementedError, match="while_loop"):
        ops.while_loop(lambda v: ops.sum(v), lambda v: v, inp)
    with pytest.raises(NotImplementedError, match="scan"):
        ops.scan(lambda c, r: (c, r), 0.0, inp)


def test_gradients_flow_through_unrolled_loops():
    check_gradient(lambda t: ops.fori_loop(0, 3, lambda i, v: ops.sin(v) * 2, t), [data((2,))])
    check_gradient(lambda t: ops.scan(lambda c, r: (c * r, c), ops.ones(2), t)[1],
                   [data((3, 2))])


# -- inside a traced layer: weights stay weights ---------------------------------------------------
class Conv(pynn.layers.Layer):
    def build(self, input_shape):
        self.kernel = self.add_weight(shape=(3, input_shape[-1], 2), initializer="ones")

    def call(self, x):
        return ops.relu(ops.conv(x, self.kernel, padding="same"))


def test_ops_read_layer_weights_in_a_trace_and_train_them():
    inp = pynn.Input((8, 3))
    model = pynn.Model(inp, Conv()(inp))
    model.compile(optimizer="sgd", loss="mse")
    x, y = data((4, 8, 3)), data((4, 8, 2), seed=1)
    before = model.get_weights()[0].copy()
    model.fit(x, y, epochs=1, batch_size=4, verbose=0)
    assert not np.allclose(model.get_weights()[0], before)
    kernel = model.get_weights()[0]
    want, _, _ = _torch_conv(x, kernel, padding=1)
    np.testing.assert_allclose(model.predict(x, verbose=0), np.maximum(want.detach().numpy(), 0),
                               rtol=1e-4, atol=1e-5)


# -- linear algebra and data-only functions --------------------------------------------------------
def test_linalg_on_data_matches_numpy():
    rng = np.random.default_rng(0)
    m = rng.standard_normal((3, 3)).astype(np.float32)
    spd = m @ m.T + 3 * np.eye(3, dtype=np.float32)
    b = rng.standard_normal((3, 2)).astype(np.float32)
    np.testing.assert_allclose(ops.det(m), np.linalg.det(m), rtol=1e-4)
    np.testing.assert_allclose(ops.inv(spd), np.linalg.inv(spd), rtol=1e-4)
    np.testing.assert_allclose(ops.solve(spd, b), np.linalg.solve(spd, b), rtol=1e-4)
    low = ops.cholesky(spd)
    np.testing.assert_allclose(np.asarray(low) @ np.asarray(low).T, spd, rtol=1e-4)
    np.testing.assert_allclose(ops.cholesky_inverse(low), np.linalg.inv(spd), rtol=1e-4)
    np.testing.assert_allclose(ops.logdet(spd), np.linalg.slogdet(spd)[1], rtol=1e-4)
    np.testing.assert_allclose(ops.slogdet(m)[1], np.linalg.slogdet(m)[1], rtol=1e-4)
    np.testing.assert_allclose(ops.solve_triangular(spd, b, lower=True),
                               np.linalg.solve(np.tril(spd), b), rtol=1e-4)
    q, r = ops.qr(m)
    np.testing.assert_allclose(np.asarray(q) @ np.asarray(r), m, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(ops.svd(m, compute_uv=False), np.linalg.svd(m)[1], rtol=1e-4)
    np.testing.assert_allclose(ops.eigh(spd)[0], np.linalg.eigh(spd)[0], rtol=1e-4)
    np.testing.assert_allclose(ops.pinv(b), np.linalg.pinv(b), rtol=1e-3, atol=1e-5)
    np.testing.assert_allclose(ops.lstsq(spd, b), np.linalg.lstsq(spd, b)[0], rtol=1e-4)
    assert int(ops.matrix_rank(m)) == 3
    lu, piv = ops.lu_factor(m)
    p = np.eye(3)
    for i, j in enumerate(np.asarray(piv)):
        p[[i, j]] = p[[j, i]]
    lu = np.asarray(lu, np.float64)
    np.testing.assert_allclose((np.tril(lu, -1) + np.eye(3)) @ np.triu(lu), p @ m, rtol=1e-4,
                               atol=1e-5)
    with pytest.raises(NotImplementedError, match="det"):
        ops.det(pynn.Input((3, 3)))
    with pytest.raises(NotImplementedError, match="gradient"):
        ops.inv(pynn.Tensor(spd, requires_grad=True))


def test_integer_and_data_only_functions_match_numpy():
    a = np.array([3, 1, 4, 1, 5, 9, 2, 6], np.int32)
    np.testing.assert_array_equal(ops.bincount(a), np.bincount(a))
    np.testing.assert_array_equal(ops.digitize(a, [2, 5]), np.digitize(a, [2, 5]))
    np.testing.assert_array_equal(ops.searchsorted(np.sort(a), [4, 7], side="right"),
                                  np.searchsorted(np.sort(a), [4, 7], side="right"))
    np.testing.assert_array_equal(ops.unique(a), np.unique(a))
    np.testing.assert_array_equal(ops.nonzero(a - 1)[0], np.nonzero(a - 1)[0])
    np.testing.assert_array_equal(ops.bitwise_and(a, 3), a & 3)
    np.testing.assert_array_equal(ops.bitwise_xor(a, 5), a ^ 5)
    np.testing.assert_array_equal(ops.bitwise_invert(a), ~a)
    np.testing.assert_array_equal(ops.left_shift(a, 1), a << 1)
    np.testing.assert_array_equal(ops.gcd(a, 6), np.gcd(a, 6))
    np.testing.assert_array_equal(ops.lcm(a, 4), np.lcm(a, 4))
    np.testing.assert_array_equal(ops.isin(a, [1, 9]), np.isin(a, [1, 9]))
    np.testing.assert_array_equal(ops.unravel_index(a, (3, 4))[1], np.unravel_index(a, (3, 4))[1])
    np.testing.assert_array_equal(ops.histogram(a, 3)[0], np.histogram(a, 3)[0])
    np.testing.assert_array_equal(ops.in_top_k(np.array([0, 2]), A[:2, :3], 2),
                                  [A[0, 0] >= np.sort(A[0, :3])[-2],
                                   A[1, 2] >= np.sort(A[1, :3])[-2]])
    for name in ("bartlett", "blackman", "hamming", "hanning"):
        np.testing.assert_allclose(getattr(ops, name)(5), getattr(np, name)(5), atol=1e-7)
    np.testing.assert_allclose(ops.kaiser(5, 2.0), np.kaiser(5, 2.0), rtol=1e-6)
    np.testing.assert_allclose(ops.i0(A), np.i0(A), rtol=1e-5)
    np.testing.assert_array_equal(ops.isposinf(np.array([np.inf, -np.inf, 1.0])), [1, 0, 0])
    np.testing.assert_array_equal(ops.isneginf(np.array([np.inf, -np.inf, 1.0])), [0, 1, 0])
    np.testing.assert_array_equal(ops.isreal(A), np.ones((3, 4)))
    np.testing.assert_array_equal(ops.saturate_cast(np.array([1e10, -3.7]), "int32"),
                                  [2**31 - 1, -3])
    with pytest.raises(NotImplementedError, match="bincount"):
        ops.bincount(pynn.Input((3,)))


def test_segment_functions_and_extract_sequences():
    x = data((5, 3))
    ids = np.array([0, 2, 0, 1, 1])
    for name, red in (("segment_sum", np.sum), ("segment_max", np.max), ("segment_min", np.min),
                      ("segment_prod", np.prod)):
        got = getattr(ops, name)(x, ids, num_segments=4)
        for s in range(3):
            np.testing.assert_allclose(got[s], red(x[ids == s], 0), rtol=1e-5)
    assert np.all(np.asarray(ops.segment_max(x, ids, 4))[3] == -np.inf)
    check_gradient(lambda d: ops.segment_sum(d, ids, 3), [x.copy()])
    s = data((2, 7))
    want = np.stack([s[:, i:i + 3] for i in range(0, 5, 2)], 1)
    check_three_ways(lambda t: ops.extract_sequences(t, 3, 2), [s], want)


# -- composed with the comparisons and selections of _select ---------------------------------------
NANS = np.array([[1.0, np.nan, -2.0, 4.0], [np.nan, np.nan, np.nan, np.nan],
                 [0.5, 3.0, np.inf, -np.inf]], np.float32)
SELECT_CASES = [  # id, fn, reference, runs in a model
    ("all", lambda x: ops.all(x, 1), lambda x: np.all(x, 1), True),
    ("any", lambda x: ops.any(ops.greater(x, 0.5), 1),
     lambda x: np.any(x > 0.5, 1), True),
    ("count_nonzero", lambda x: ops.count_nonzero(ops.greater(x, 0.0), 1),
     lambda x: np.count_nonzero(x > 0, 1), True),
    ("isclose", lambda x: ops.isclose(x, x + 1e-6), lambda x: np.isclose(x, x + 1e-6), True),
    ("allclose", lambda x: ops.allclose(x, x * 1.5), lambda x: np.allclose(x, x * 1.5), False),
    ("median", lambda x: ops.median(x, 1), lambda x: np.median(x, 1), True),
    ("median_all", ops.median, np.median, False),
    ("quantile", lambda x: ops.quantile(x, [0.1, 0.7], 1), lambda x: np.quantile(x, [0.1, 0.7], 1),
     False),
    ("quantile_keep", lambda x: ops.quantile(x, 0.3, 1, keepdims=True),
     lambda x: np.quantile(x, 0.3, 1, keepdims=True), True),
    ("percentile_lower", lambda x: ops.percentile(x, 40, 1, method="lower"),
     lambda x: np.percentile(x, 40, 1, method="lower"), True),
    ("quantile_midpoint", lambda x: ops.quantile(x, 0.4, 1, method="midpoint"),
     lambda x: np.quantile(x, 0.4, 1, method="midpoint"), True),
    ("quantile_nearest", lambda x: ops.quantile(x, 0.6, 1, method="nearest"),
     lambda x: np.quantile(x, 0.6, 1, method="nearest"), True),
    ("sparsemax", ops.sparsemax, None, True),
    ("fmax", lambda x: ops.fmax(x, ops.flip(x, 1)), lambda x: np.fmax(x, np.flip(x, 1)), True),
    ("tril_where", lambda x: ops.tril(x), np.tril, False),
]


def _sparsemax_ref(x):
    out = np.empty_like(x)
    for i, row in enumerate(x):
        z = np.sort(row)[::-1]
        k = np.arange(1, len(z) + 1)
        support = 1 + k * z > np.cumsum(z)
        tau = (z[support].sum() - 1) / support.sum()
        out[i] = np.maximum(row - tau, 0)
    return out


@pytest.mark.parametrize("fn,ref,sym", [c[1:] for c in SELECT_CASES],
                         ids=[c[0] for c in SELECT_CASES])
def test_functions_composed_with_comparisons_match_numpy(fn, ref, sym):
    ref = ref or _sparsemax_ref
    check_three_ways(fn, [A], np.asarray(ref(A.astype(np.float64)), np.float64), sym=sym,
                     rtol=1e-5)


@pytest.mark.parametrize("name", ["median", "sparsemax", "tril_where"])
def test_composed_gradients_match_finite_differences(name):
    fn = {c[0]: c[1] for c in SELECT_CASES}[name]
    check_gradient(fn, [A.copy()])


@pytest.mark.parametrize("name", ["nansum", "nanmean", "nanmax", "nanmin", "nanprod", "nanvar",
                                  "nanstd", "nanargmax", "nanargmin", "nancumsum", "nancumprod",
                                  "nanmedian", "nanquantile", "nanpercentile"])
def test_nan_functions_match_numpy(name):
    x = NANS[[0, 2]] if name in ("nanargmax", "nanargmin") else NANS
    x = np.where(np.isinf(x), 1.5, x).astype(np.float32)
    args = {"nanquantile": (0.3,), "nanpercentile": (30,)}.get(name, ())
    kwargs = {} if name in ("nancumsum", "nancumprod") else {"axis": 1}
    if name in ("nancumsum", "nancumprod"):
        kwargs = {"axis": 1}
    with np.errstate(all="ignore"), __import__("warnings").catch_warnings():
        __import__("warnings").simplefilter("ignore")
        want = getattr(np, name)(x, *args, **kwargs)
    np.testing.assert_allclose(getattr(ops, name)(x, *args, **kwargs), want, rtol=1e-5)


def test_nan_to_num_isposinf_isneginf_fmin():
    big = np.finfo(np.float32).max
    np.testing.assert_array_equal(ops.nan_to_num(NANS), np.nan_to_num(NANS))
    np.testing.assert_array_equal(ops.nan_to_num(NANS, nan=1.0, posinf=2.0, neginf=-3.0),
                                  np.nan_to_num(NANS, nan=1.0, posinf=2.0, neginf=-3.0))
    assert np.asarray(ops.nan_to_num(NANS))[2, 2] == big
    np.testing.assert_array_equal(ops.isposinf(NANS), np.isposinf(NANS))
    np.testing.assert_array_equal(ops.isneginf(NANS), np.isneginf(NANS))
    np.testing.assert_array_equal(ops.fmin(NANS, 0.0), np.fmin(NANS, 0.0))
    check_three_ways(lambda t: ops.nan_to_num(ops.log(t)), [np.array([[0.0, 1.0]], np.float32)],
                     [[-big, 0.0]])


def test_one_hot_multi_hot_and_sparse_crossentropy_in_a_model():
    labels = np.array([[0, 2], [1, 1], [3, 0]], np.float32)
    check_three_ways(lambda t: ops.one_hot(t, 4), [labels], np.eye(4)[labels.astype(int)])
    check_three_ways(lambda t: ops.multi_hot(t, 4), [labels],
                     [[1, 0, 1, 0], [0, 1, 0, 0], [1, 0, 0, 1]])
    logits = data((3, 4))
    y = np.array([[0], [3], [1]], np.float32)
    want = F.cross_entropy(torch.tensor(logits), torch.tensor([0, 3, 1]), reduction="none")
    check_three_ways(lambda t, p: ops.sparse_categorical_crossentropy(t, p, from_logits=True),
                     [y, logits], want.numpy(), rtol=1e-5)


def test_scatter_and_scatter_update():
    idx = np.array([[0, 1], [2, 0], [0, 1]])
    vals = np.array([1.0, 2.0, 3.0], np.float32)
    want = np.zeros((3, 2), np.float32)
    np.add.at(want, tuple(idx.T), vals)
    np.testing.assert_allclose(ops.scatter(idx, vals, (3, 2)), want)
    x = data((3, 2))
    upd = x.copy()
    upd[0, 1], upd[2, 0] = 5.0, 6.0
    np.testing.assert_allclose(ops.scatter_update(x, [[0, 1], [2, 0]], [5.0, 6.0]), upd)
    rows = x.copy()
    rows[1] = [7.0, 8.0]
    np.testing.assert_allclose(ops.scatter_update(x, [[1]], [[7.0, 8.0]]), rows)
    check_gradient(lambda v: ops.scatter(idx, v, (3, 2)), [vals.copy()])
    check_gradient(lambda t, v: ops.scatter_update(t, [[0, 1]], v), [x.copy(), vals[:1].copy()])
