"""keras.ops.linalg: matrix decompositions and solvers.

`norm` runs everywhere (symbolic tensors, the tape, data). The others run on data only, in
NumPy (float32 results, float64 inside), without gradient: on a symbolic tensor, or a Tensor that
needs a gradient, they raise NotImplementedError.
"""

import numpy as np

from .numpy import _data, _out, norm  # noqa: F401  (norm re-exported)


def _f(x, fn: str) -> np.ndarray:
    return _data(x, fn).astype(np.float64)


def cholesky(x, upper: bool = False):
    """L with x = L L^T (or U = L^T with upper=True); x symmetric positive definite."""
    lo = np.linalg.cholesky(_f(x, "cholesky"))
    return _out(np.swapaxes(lo, -1, -2) if upper else lo)


def cholesky_inverse(x, upper: bool = False):
    """The inverse of A from its Cholesky factor x (A = x x^T, or x^T x with upper=True)."""
    f = _f(x, "cholesky_inverse")
    a = np.swapaxes(f, -1, -2) @ f if upper else f @ np.swapaxes(f, -1, -2)
    return _out(np.linalg.inv(a))


def det(x):
    return _out(np.linalg.det(_f(x, "det")))


def eig(x):
    """Eigenvalues and eigenvectors of a real matrix whose eigenvalues are real."""
    w, v = np.linalg.eig(_f(x, "eig"))
    if np.iscomplexobj(w) and np.any(np.abs(w.imag) > 0):
        raise NotImplementedError("eig: this matrix has complex eigenvalues; pynn has no "
                                  "complex tensors")
    return _out(w.real), _out(v.real)


def eigh(x):
    w, v = np.linalg.eigh(_f(x, "eigh"))
    return _out(w), _out(v)


def inv(x):
    return _out(np.linalg.inv(_f(x, "inv")))


def lstsq(a, b, rcond=None):
    """The least-squares solution x of a x = b."""
    return _out(np.linalg.lstsq(_f(a, "lstsq"), _f(b, "lstsq"), rcond=rcond)[0])


def lu_factor(x):
    """(LU, pivots) as scipy.linalg.lu_factor: L below the diagonal (unit diagonal), U on and
    above; pivots (0-based) the row swapped with each row."""
    a = _f(x, "lu_factor").copy()
    if a.ndim != 2 or a.shape[0] != a.shape[1]:
        raise ValueError(f"lu_factor: expects a square matrix, got shape {a.shape}")
    n = a.shape[0]
    piv = np.zeros(n, np.int32)
    for k in range(n):
        p = k + int(np.argmax(np.abs(a[k:, k])))
        piv[k] = p
        if p != k:
            a[[k, p]] = a[[p, k]]
        if a[k, k] != 0:
            a[k + 1:, k] /= a[k, k]
            a[k + 1:, k + 1:] -= np.outer(a[k + 1:, k], a[k, k + 1:])
    return _out(a), _out(piv)


def qr(x, mode: str = "reduced"):
    if mode not in ("reduced", "complete"):
        raise ValueError(f"qr: mode must be 'reduced' or 'complete', got {mode!r}")
    q, r = np.linalg.qr(_f(x, "qr"), mode=mode)
    return _out(q), _out(r)


def solve(a, b):
    """x with a x = b."""
    return _out(np.linalg.solve(_f(a, "solve"), _f(b, "solve")))


def solve_triangular(a, b, lower: bool = False):
    """x with a x = b, a triangular (its other triangle ignored)."""
    af = _f(a, "solve_triangular")
    af = np.tril(af) if lower else np.triu(af)
    return _out(np.linalg.solve(af, _f(b, "solve_triangular")))


def svd(x, full_matrices: bool = True, compute_uv: bool = True):
    out = np.linalg.svd(_f(x, "svd"), full_matrices=full_matrices, compute_uv=compute_uv)
    return tuple(_out(o) for o in out) if compute_uv else _out(out)


def slogdet(x):
    """(sign, log|det|)."""
    s, ld = np.linalg.slogdet(_f(x, "slogdet"))
    return _out(s), _out(ld)


def logdet(x):
    """log(det(x)) of a positive definite x (via its Cholesky factor)."""
    lo = np.linalg.cholesky(_f(x, "logdet"))
    return _out(2.0 * np.sum(np.log(np.diagonal(lo, axis1=-2, axis2=-1)), -1))


def matrix_rank(x, tol=None):
    return _out(np.linalg.matrix_rank(_f(x, "matrix_rank"), tol))


def pinv(x, rcond=None):
    """The Moore-Penrose pseudo-inverse (rcond: NumPy's default when None)."""
    f = _f(x, "pinv")
    return _out(np.linalg.pinv(f) if rcond is None else np.linalg.pinv(f, rcond=rcond))
