"""NumPy's linear algebra on tracked arrays: `np.linalg.*` and the products, registered
into the `__array_function__` table.

The decompositions (`inv`, `det`, `slogdet`, `solve`, `cholesky`, `eigh`, `svd`, `qr`)
are core ops with their own pullbacks; `eigh`, `svd` and `qr` return their results
packed into one tracked array, taken apart here by indexing, so each piece's gradient
flows back into the packed one. The products (`dot`, `vdot`, `inner`, `outer`,
`tensordot`, `einsum`, `kron`) and `norm`, `tril`, `triu`, `diag`, `diagonal`, `trace`
are compositions of core ops (transpose, reshape, matmul, multiply, sum, indexing).

Conventions where NumPy's functions have no unique derivative follow PyTorch:
`eigh`'s and `cholesky`'s gradients are for symmetric perturbations (the symmetric
matrix whose inner product with a symmetric `dA` is the change of the loss), although
the forward pass reads only one triangle, as NumPy's does. Where eigenvalues or
singular values repeat exactly, the gradient drops the undefined `1/(λⱼ - λᵢ)` terms
(finite for losses of the eigenvalues alone, as PyTorch). Singular matrices raise
`numpy.linalg.LinAlgError` in `inv`, `solve`, and in the gradient of `slogdet`; `det`'s
gradient at a singular matrix is the cofactor matrix, through the SVD.
"""

import math
import string
from typing import Any

import numpy as np

from tracker import _core
from tracker._numpy import _implements, _refuse_options

_linalg = np.linalg._linalg  # the result namedtuples (NumPy >= 2)


def _ndim(x: Any) -> int:
    return len(np.shape(_core.data(x)))


def _shape(x: Any) -> tuple[int, ...]:
    return tuple(np.shape(_core.data(x)))


def _swap(x: Any) -> Any:
    """The matrix transpose of each matrix of a batch."""
    nd = _ndim(x)
    return np.transpose(x, (*range(nd - 2), nd - 1, nd - 2))


def _float(x: Any) -> Any:
    """`x` if tracked or a Python number (weakly typed, NEP 50), else as a float array
    (integer arrays become float64, as tracker's values)."""
    if _core.istracked(x) or type(x) in (int, float):
        return x
    a = np.asarray(x)
    return a if a.dtype.kind == "f" else a.astype(np.float64)


def _matmul(a: Any, b: Any) -> Any:
    return _core.linalg("matmul", a, b)


# -- products ---------------------------------------------------------------------------


@_implements(np.tensordot, *([np.linalg.tensordot] if hasattr(np.linalg, "tensordot") else []))
def tensordot(a: Any, b: Any, axes: Any = 2) -> Any:
    """`np.tensordot`: the contraction as one matrix product of reshaped operands.

    >>> import numpy as np, tracker as tr
    >>> np.tensordot(tr.param(np.ones((2, 3))), np.ones((3, 4)), axes=1).shape
    (2, 4)
    """
    a, b = _float(a), _float(b)
    sa, sb = _shape(a), _shape(b)
    if isinstance(axes, (int, np.integer)):
        n = int(axes)
        if n < 0 or n > len(sa) or n > len(sb):
            raise ValueError(f"np.tensordot: axes={n} does not fit shapes {sa} and {sb}")
        axes_a, axes_b = list(range(len(sa) - n, len(sa))), list(range(n))
    else:
        try:
            axes_a, axes_b = axes
        except (TypeError, ValueError):
            raise TypeError(
                "np.tensordot: axes must be an int or a pair of axis sequences"
            ) from None
        axes_a = [axes_a] if isinstance(axes_a, (int, np.integer)) else list(axes_a)
        axes_b = [axes_b] if isinstance(axes_b, (int, np.integer)) else list(axes_b)
        if len(axes_a) != len(axes_b):
            raise ValueError(
                "np.tensordot: shape-mismatch for sum (the axis lists differ in length)"
            )
        try:
            axes_a = [int(k) % len(sa) if sa else int(k) for k in axes_a]
            axes_b = [int(k) % len(sb) if sb else int(k) for k in axes_b]
        except ZeroDivisionError:
            raise ValueError("np.tensordot: 0-d operands have no axes") from None
    for i, j in zip(axes_a, axes_b):
        if sa[i] != sb[j]:
            raise ValueError(
                f"np.tensordot: shape-mismatch for sum: axis {i} of shape {sa} has length "
                f"{sa[i]}, axis {j} of shape {sb} has length {sb[j]}"
            )
    free_a = [k for k in range(len(sa)) if k not in axes_a]
    free_b = [k for k in range(len(sb)) if k not in axes_b]
    size = math.prod(sa[k] for k in axes_a)
    left = np.reshape(np.transpose(a, free_a + axes_a), (math.prod(sa[k] for k in free_a), size))
    right = np.reshape(np.transpose(b, axes_b + free_b), (size, math.prod(sb[k] for k in free_b)))
    out = _matmul(left, right)
    return np.reshape(out, tuple(sa[k] for k in free_a) + tuple(sb[k] for k in free_b))


@_implements(np.dot)
def dot(a: Any, b: Any, out: Any = None) -> Any:
    """`np.dot`: products of scalars, matrix products, and for N-D operands the sum over
    the last axis of `a` and the second-to-last of `b`."""
    _refuse_options("dot", out=out)
    a, b = _float(a), _float(b)
    na, nb = _ndim(a), _ndim(b)
    if na == 0 or nb == 0:
        return a * b
    if na <= 2 and nb <= 2:
        return _matmul(a, b)
    return tensordot(a, b, ([na - 1], [max(nb - 2, 0)]))


@_implements(np.vdot)
def vdot(a: Any, b: Any) -> Any:
    """`np.vdot`: the dot product of the flattened operands."""
    a, b = _float(a), _float(b)
    if math.prod(_shape(a)) != math.prod(_shape(b)):
        raise ValueError(
            f"np.vdot: operands of shapes {_shape(a)} and {_shape(b)} have different sizes"
        )
    return _matmul(np.reshape(a, (-1,)), np.reshape(b, (-1,)))


@_implements(np.inner)
def inner(a: Any, b: Any) -> Any:
    """`np.inner`: the sum over the last axes of both operands."""
    a, b = _float(a), _float(b)
    na, nb = _ndim(a), _ndim(b)
    if na == 0 or nb == 0:
        return a * b
    return tensordot(a, b, ([na - 1], [nb - 1]))


@_implements(np.outer)
def outer(a: Any, b: Any, out: Any = None) -> Any:
    """`np.outer`: every product of an element of `a` and one of `b` (both flattened)."""
    _refuse_options("outer", out=out)
    a, b = _float(a), _float(b)
    return np.reshape(a, (-1, 1)) * np.reshape(b, (1, -1))


if hasattr(np.linalg, "outer"):

    @_implements(np.linalg.outer)
    def _linalg_outer(x1: Any, x2: Any, /) -> Any:
        if _ndim(x1) != 1 or _ndim(x2) != 1:
            raise ValueError("np.linalg.outer: both operands must be 1-dimensional")
        return outer(x1, x2)


@_implements(np.kron)
def kron(a: Any, b: Any) -> Any:
    """`np.kron`: the Kronecker product, as a broadcast product of interleaved axes."""
    a, b = _float(a), _float(b)
    sa, sb = _shape(a), _shape(b)
    nd = max(len(sa), len(sb))
    sa, sb = (1,) * (nd - len(sa)) + sa, (1,) * (nd - len(sb)) + sb
    left = np.reshape(a, tuple(d for k in sa for d in (k, 1)))
    right = np.reshape(b, tuple(d for k in sb for d in (1, k)))
    return np.reshape(left * right, tuple(x * y for x, y in zip(sa, sb)))


@_implements(np.linalg.multi_dot)
def multi_dot(arrays: Any, *, out: Any = None) -> Any:
    """`np.linalg.multi_dot`: the chain of products, left to right."""
    _refuse_options("linalg.multi_dot", out=out)
    arrays = [_float(x) for x in arrays]
    if len(arrays) < 2:
        raise ValueError("np.linalg.multi_dot: expecting at least two arrays")
    result = arrays[0]
    for x in arrays[1:]:
        result = dot(result, x)
    return result


# -- einsum -----------------------------------------------------------------------------

_LABELS = string.ascii_letters


def _parse_einsum(subscripts: str, shapes: list[tuple[int, ...]]) -> tuple[list[str], str]:
    """The operands' labels and the output's, with `...` expanded into fresh labels."""
    subscripts = subscripts.replace(" ", "")
    if "->" in subscripts:
        inputs, output = subscripts.split("->")
        explicit = True
    else:
        inputs, output, explicit = subscripts, "", False
    terms = inputs.split(",")
    if len(terms) != len(shapes):
        raise ValueError(
            f"np.einsum: {len(terms)} operand subscripts for {len(shapes)} operands in "
            f"{subscripts!r}"
        )
    for ch in subscripts:
        if ch not in _LABELS and ch not in ",.->":
            raise ValueError(f"np.einsum: invalid subscript {ch!r} in {subscripts!r}")
    used = set(subscripts)
    spare = [c for c in reversed(_LABELS) if c not in used]
    ellipsis_dims = 0
    for term, shape in zip(terms, shapes):
        if "..." in term:
            ellipsis_dims = max(ellipsis_dims, len(shape) - len(term.replace("...", "")))
    ellipsis = "".join(spare[:ellipsis_dims])
    expanded = []
    for term, shape in zip(terms, shapes):
        if term.count("...") > 1 or "." in term.replace("...", ""):
            raise ValueError(f"np.einsum: invalid ellipsis in {subscripts!r}")
        if "..." in term:
            k = len(shape) - len(term.replace("...", ""))
            if k < 0:
                raise ValueError(f"np.einsum: operand of shape {shape} has too few dimensions")
            term = term.replace("...", ellipsis[ellipsis_dims - k :])
        if len(term) != len(shape):
            raise ValueError(
                f"np.einsum: subscripts {term!r} do not match an operand of shape {shape}"
            )
        expanded.append(term)
    if explicit:
        if "..." in output:
            output = output.replace("...", ellipsis)
        if len(set(output)) != len(output):
            raise ValueError(f"np.einsum: output subscript repeated in {subscripts!r}")
        missing = set(output) - set("".join(expanded))
        if missing:
            raise ValueError(
                f"np.einsum: output subscript {sorted(missing)[0]!r} appears in no operand"
            )
    else:
        counts: dict[str, int] = {}
        for term in terms:
            for ch in term.replace("...", ""):
                counts[ch] = counts.get(ch, 0) + 1
        output = ellipsis + "".join(sorted(c for c, n in counts.items() if n == 1))
    return expanded, output


def _take_diagonals(x: Any, labels: str) -> tuple[Any, str]:
    """Repeated labels within one operand (`ii`) become one axis: their diagonal."""
    while True:
        repeated = next((c for c in labels if labels.count(c) > 1), None)
        if repeated is None:
            return x, labels
        first = labels.index(repeated)
        second = labels.index(repeated, first + 1)
        shape = _shape(x)
        if shape[first] != shape[second]:
            raise ValueError(
                f"np.einsum: label {repeated!r} has lengths {shape[first]} and {shape[second]}"
            )
        others = [k for k in range(len(labels)) if k not in (first, second)]
        moved = np.transpose(x, (*others, first, second))
        idx = np.arange(shape[first])
        x = moved[..., idx, idx]
        labels = "".join(labels[k] for k in others) + repeated


def _sum_labels(x: Any, labels: str, keep: set[str]) -> tuple[Any, str]:
    """Sums the axes whose labels are not in `keep`."""
    axes = tuple(k for k, c in enumerate(labels) if c not in keep)
    if not axes:
        return x, labels
    return np.sum(x, axis=axes), "".join(c for c in labels if c in keep)


def _contract(x: Any, lx: str, y: Any, ly: str, keep: set[str]) -> tuple[Any, str]:
    """The pairwise contraction of two operands as one (batched) matrix product."""
    sx, sy = dict(zip(lx, _shape(x))), dict(zip(ly, _shape(y)))
    # A shared label of length 1 on one side only broadcasts: sum it there first.
    for c in set(lx) & set(ly):
        if sx[c] != sy[c]:
            if sx[c] == 1:
                x, lx = _sum_labels(x, lx, set(lx) - {c})
            elif sy[c] == 1:
                y, ly = _sum_labels(y, ly, set(ly) - {c})
            else:
                raise ValueError(
                    f"np.einsum: label {c!r} has lengths {sx[c]} and {sy[c]} in two operands"
                )
    shared = [c for c in lx if c in ly]
    batch = [c for c in shared if c in keep]
    summed = [c for c in shared if c not in keep]
    free_x = [c for c in lx if c not in ly]
    free_y = [c for c in ly if c not in lx]
    sx, sy = dict(zip(lx, _shape(x))), dict(zip(ly, _shape(y)))
    xt = np.transpose(x, [lx.index(c) for c in batch + free_x + summed])
    yt = np.transpose(y, [ly.index(c) for c in batch + summed + free_y])
    bshape = tuple(sx[c] for c in batch)
    fx, fy = math.prod(sx[c] for c in free_x), math.prod(sy[c] for c in free_y)
    k = math.prod(sx[c] for c in summed)
    out = _matmul(np.reshape(xt, (*bshape, fx, k)), np.reshape(yt, (*bshape, k, fy)))
    shape = bshape + tuple(sx[c] for c in free_x) + tuple(sy[c] for c in free_y)
    return np.reshape(out, shape), "".join(batch + free_x + free_y)


@_implements(np.einsum)
def einsum(*operands: Any, out: Any = None, optimize: Any = False, **options: Any) -> Any:
    """`np.einsum` with a subscripts string: explicit (`->`) or implicit output,
    repeated labels (diagonals, traces) and `...`. Operands are contracted pairwise,
    left to right, each pair as one batched matrix product.

    >>> import numpy as np, tracker as tr
    >>> a = tr.param(np.arange(6.0).reshape(2, 3))
    >>> float(np.einsum("ij,ij->", a, a))
    55.0
    """
    _refuse_options("einsum", out=out, **options)
    if not operands or not isinstance(operands[0], str):
        raise TypeError(
            "np.einsum on tracked arrays takes a subscripts string first "
            "(np.einsum('ij,jk->ik', a, b)); the interleaved (operand, axes) form is not supported"
        )
    subscripts, arrays = operands[0], [_float(x) for x in operands[1:]]
    terms, output = _parse_einsum(subscripts, [_shape(x) for x in arrays])
    pieces = [_take_diagonals(x, t) for x, t in zip(arrays, terms)]
    # Labels only one operand has, and the output does not, are summed at once.
    pieces = [
        _sum_labels(x, t, set(output) | {c for k, (_, o) in enumerate(pieces) if k != i for c in o})
        for i, (x, t) in enumerate(pieces)
    ]
    x, labels = pieces[0]
    for i, (y, ly) in enumerate(pieces[1:], start=1):
        later = set(output).union(*(set(t) for _, t in pieces[i + 1 :]))
        x, labels = _contract(x, labels, y, ly, later)
    x, labels = _sum_labels(x, labels, set(output))
    if labels != output:
        x = np.transpose(x, [labels.index(c) for c in output])
    return x


# -- np.linalg --------------------------------------------------------------------------


@_implements(np.linalg.inv)
def inv(a: Any) -> Any:
    """`np.linalg.inv` (batched). Its gradient uses the recorded inverse: `-Yᵀ dY Yᵀ`."""
    return _core.linalg("inv", _float(a))


@_implements(np.linalg.det)
def det(a: Any) -> Any:
    """`np.linalg.det` (batched). Its gradient is the cofactor matrix: `det·A⁻ᵀ`, or
    through the SVD (as PyTorch) at and near singular matrices, where it stays finite and
    twice differentiable."""
    return _core.linalg("det", _float(a))


@_implements(np.linalg.slogdet)
def slogdet(a: Any) -> Any:
    """`np.linalg.slogdet`: `(sign, logabsdet)`; the sign is a plain array (it has no
    gradient), `logabsdet` is tracked, with gradient `dy·A⁻ᵀ`."""
    a = _float(a)
    sign, _ = np.linalg.slogdet(_core.data(a))
    return _linalg.SlogdetResult(sign, _core.linalg("slogdet", a))


@_implements(np.linalg.solve)
def solve(a: Any, b: Any) -> Any:
    """`np.linalg.solve`: `b` is one vector when it is 1-D (NumPy 2), else `(..., n, k)`."""
    a, b = _float(a), _float(b)
    if _ndim(b) == 1:
        return _core.linalg("solve", a, np.reshape(b, (-1, 1)))[..., 0]
    return _core.linalg("solve", a, b)


@_implements(np.linalg.cholesky)
def cholesky(a: Any, /, *, upper: bool = False) -> Any:
    """`np.linalg.cholesky` (reads the lower triangle). The gradient is PyTorch's, for
    symmetric perturbations of `a`."""
    lower = _core.linalg("cholesky", _float(a))
    return _swap(lower) if upper else lower


@_implements(np.linalg.eigh)
def eigh(a: Any, UPLO: str = "L") -> Any:
    """`np.linalg.eigh`: `(eigenvalues, eigenvectors)`, both tracked. The gradient is for
    symmetric perturbations; eigenvectors are defined up to sign, so only losses that do
    not depend on their signs have meaningful gradients.

    >>> import numpy as np, tracker as tr
    >>> w, v = np.linalg.eigh(tr.param(np.diag([2.0, 1.0])))
    >>> tr.data(w)
    array([1., 2.])
    """
    if UPLO not in ("L", "U"):
        raise ValueError("np.linalg.eigh: UPLO argument must be 'L' or 'U'")
    a = _float(a)
    if UPLO == "U":
        a = _swap(a) if _ndim(a) >= 2 else a
    packed = _core.linalg("eigh", a)
    n = _shape(packed)[-1]
    return _linalg.EighResult(packed[..., n, :], packed[..., :n, :])


@_implements(np.linalg.eigvalsh)
def eigvalsh(a: Any, UPLO: str = "L") -> Any:
    """`np.linalg.eigvalsh`: the eigenvalues of `eigh`."""
    return eigh(a, UPLO)[0]


@_implements(np.linalg.svd)
def svd(
    a: Any, full_matrices: bool = True, compute_uv: bool = True, hermitian: bool = False
) -> Any:
    """`np.linalg.svd`: `(U, S, Vh)`, all tracked, or `S` with `compute_uv=False`.

    With `full_matrices=True` (NumPy's default) and a matrix that is not square, the
    extra columns of `U` (rows of `Vh`) are an orthonormal completion that is not a
    function of `a`: they are constants, and their gradient is ignored, as PyTorch's.
    Singular vectors are defined up to sign, so only losses that do not depend on their
    signs have meaningful gradients.
    """
    a = _float(a)
    shape = _shape(a)
    if len(shape) < 2:
        raise np.linalg.LinAlgError(
            f"svd: {len(shape)}-dimensional array given. Array must be at least two-dimensional"
        )
    m = shape[-2]
    packed = _core.linalg("svd", a)
    s = packed[..., m, :]
    if not compute_uv:
        return s
    u, v = packed[..., :m, :], packed[..., m + 1 :, :]
    if full_matrices:
        u, v = _completed(u), _completed(v)
    return _linalg.SVDResult(u, s, _swap(v))


def _completed(q: Any) -> Any:
    """`q`'s orthonormal columns (..., m, k) completed to a square orthogonal matrix; the
    added columns are constants (they are not functions of the input: no gradient)."""
    m, k = _shape(q)[-2:]
    if m == k:
        return q
    plain = np.asarray(_core.data(q))
    full, _ = np.linalg.qr(plain.astype(np.float64), mode="complete")
    extra = full[..., :, k:].astype(plain.dtype)
    return np.concatenate([q, extra], axis=-1)


@_implements(np.linalg.svdvals) if hasattr(np.linalg, "svdvals") else (lambda f: f)
def svdvals(x: Any, /) -> Any:
    """`np.linalg.svdvals`: the singular values."""
    return svd(x, compute_uv=False)


@_implements(np.linalg.qr)
def qr(a: Any, mode: str = "reduced") -> Any:
    """`np.linalg.qr` with mode `'reduced'`, `'r'`, or `'complete'` where it equals
    `'reduced'` (at least as many columns as rows). A wide matrix `[X | Y]` factorises
    as `Q, U = qr(X)`, `R = [U | Qᵀ Y]`, so its gradient is that of a square QR and a
    product. For a tall matrix, `'complete'` adds columns to `Q` (an orthonormal
    completion) and zero rows to `R`: their values, with no gradient (a backward pass
    through them raises, as PyTorch's). The gradient raises `LinAlgError` for
    rank-deficient matrices.
    """
    a = _float(a)
    shape = _shape(a)
    if len(shape) < 2:
        raise np.linalg.LinAlgError(
            f"qr: {len(shape)}-dimensional array given. Array must be at least two-dimensional"
        )
    m, n = shape[-2:]
    if mode not in ("reduced", "complete", "r"):
        raise TypeError(
            f"np.linalg.qr(mode={mode!r}) is not supported on tracked arrays "
            "(use 'reduced', 'r', or 'complete' for matrices with m <= n)"
        )
    if m >= n:
        packed = _core.linalg("qr", a)
        q, r = packed[..., :m, :], packed[..., m:, :]
    else:
        packed = _core.linalg("qr", a[..., :, :m])
        q, u = packed[..., :m, :], packed[..., m:, :]
        r = np.concatenate([u, _matmul(_swap(q), a[..., :, m:])], axis=-1)
    if mode == "complete" and m > n:
        # As PyTorch: the values, but no gradient (Q's added columns are arbitrary).
        q = _completed(q)
        zeros = np.zeros((*shape[:-2], m - n, n), dtype=np.asarray(_core.data(r)).dtype)
        r = np.concatenate([r, zeros], axis=-2)
        why = (
            f"qr(mode='complete') of a {m} x {n} matrix has no gradient: the added columns "
            "of Q are an arbitrary completion; use mode='reduced'"
        )
        q, r = (_core.nobacksies(why, x) if _core.istracked(x) else x for x in (q, r))
    return r if mode == "r" else _linalg.QRResult(q, r)


def _root(total: Any, p: float) -> Any:
    """`total ** (1/p)` with gradient 0 where `total` is 0 (PyTorch's norm at 0), through
    the safe pattern: the root never sees a 0, so no inf leaks into the gradient."""
    positive = np.asarray(_core.data(total)) > 0
    if positive.all():
        return np.sqrt(total) if p == 2 else total ** (1.0 / p)
    safe = np.where(positive, total, 1.0)
    return np.where(positive, np.sqrt(safe) if p == 2 else safe ** (1.0 / p), 0.0)


def _vector_norm(x: Any, ord: Any, axis: tuple[int, ...]) -> Any:
    if ord is None or ord == 2:
        return _root(np.sum(x * x, axis=axis), 2)
    if ord == np.inf:
        return np.max(abs(x), axis=axis)
    if ord == -np.inf:
        return np.min(abs(x), axis=axis)
    if ord == 0:
        # A count: piecewise constant, so a plain value.
        return np.sum(np.asarray(_core.data(x)) != 0, axis=axis).astype(_core.data(x).dtype)
    if ord == 1:
        return np.sum(abs(x), axis=axis)
    if isinstance(ord, str):
        raise ValueError(f"np.linalg.norm: invalid norm order {ord!r} for vectors")
    if ord < 0:
        return np.sum(abs(x) ** ord, axis=axis) ** (1.0 / ord)
    # |x|**p at x = 0 through the safe pattern too: for p < 1 its derivative is inf there.
    nonzero = np.asarray(_core.data(x)) != 0
    powers = np.where(nonzero, np.where(nonzero, abs(x), 1.0) ** ord, 0.0)
    return _root(np.sum(powers, axis=axis), ord)


def _matrix_norm(x: Any, ord: Any, rows: int, cols: int) -> Any:
    if ord is None or ord == "fro":
        return _root(np.sum(x * x, axis=(rows, cols)), 2)
    if ord in (2, -2, "nuc"):
        keep = [k for k in range(_ndim(x)) if k not in (rows, cols)]
        s = svd(np.transpose(x, (*keep, rows, cols)), compute_uv=False)
        if ord == "nuc":
            return np.sum(s, axis=-1)
        return np.max(s, axis=-1) if ord == 2 else np.min(s, axis=-1)
    if ord in (1, -1):
        sums = np.sum(abs(x), axis=rows)
        col = cols - 1 if cols > rows else cols
        return np.max(sums, axis=col) if ord == 1 else np.min(sums, axis=col)
    if ord in (np.inf, -np.inf):
        sums = np.sum(abs(x), axis=cols)
        row = rows - 1 if rows > cols else rows
        return np.max(sums, axis=row) if ord == np.inf else np.min(sums, axis=row)
    raise ValueError(f"np.linalg.norm: invalid norm order {ord!r} for matrices")


@_implements(np.linalg.norm)
def norm(x: Any, ord: Any = None, axis: Any = None, keepdims: bool = False) -> Any:
    """`np.linalg.norm`: vector norms (`ord` None, ±inf, 0, 1, 2, any p) and matrix norms
    (None/'fro', 'nuc', ±1, ±2, ±inf), over `axis` (an int, a pair, or all), with
    `keepdims`. Composed of abs, max, sum, sqrt and the SVD; as PyTorch, the gradient of
    a p-norm at a zero vector is 0."""
    x = _float(x)
    nd = _ndim(x)
    if axis is None:
        if ord is None:
            result = _root(np.sum(x * x), 2)
            axes: tuple[int, ...] = tuple(range(nd))
        elif nd == 1:
            axes = (0,)
            result = _vector_norm(x, ord, axes)
        elif nd == 2:
            axes = (0, 1)
            result = _matrix_norm(x, ord, 0, 1)
        else:
            raise ValueError("np.linalg.norm: improper number of dimensions to norm")
    else:
        axes = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
        axes = tuple(int(k) % nd for k in axes) if nd else axes
        if len(axes) == 1:
            result = _vector_norm(x, ord, axes)
        elif len(axes) == 2:
            if axes[0] == axes[1]:
                raise ValueError("np.linalg.norm: duplicate axes given")
            result = _matrix_norm(x, ord, *axes)
        else:
            raise ValueError("np.linalg.norm: improper number of dimensions to norm")
    if keepdims:
        shape = tuple(1 if k in axes else d for k, d in enumerate(_shape(x)))
        result = np.reshape(result, shape)
    return result


# -- triangles and diagonals ----------------------------------------------------------------


def _triangle_mask(x: Any, k: int, lower: bool) -> np.ndarray:
    shape = _shape(x)
    n, m = shape[-2:] if len(shape) >= 2 else (shape[-1], shape[-1])
    dtype = np.asarray(_core.data(x)).dtype
    mask = np.tri(n, m, k, dtype=bool)
    return (mask if lower else ~np.tri(n, m, k - 1, dtype=bool)).astype(dtype)


@_implements(np.tril)
def tril(m: Any, k: int = 0) -> Any:
    """`np.tril`: `m` times a constant mask of its lower triangle."""
    m = _float(m)
    return m * _triangle_mask(m, k, lower=True)


@_implements(np.triu)
def triu(m: Any, k: int = 0) -> Any:
    """`np.triu`: `m` times a constant mask of its upper triangle."""
    m = _float(m)
    return m * _triangle_mask(m, k, lower=False)


def _diagonal_indices(n1: int, n2: int, offset: int) -> tuple[np.ndarray, np.ndarray]:
    if offset >= 0:
        length = max(0, min(n1, n2 - offset))
        i = np.arange(length)
        return i, i + offset
    length = max(0, min(n1 + offset, n2))
    i = np.arange(length)
    return i - offset, i


@_implements(np.diagonal)
def diagonal(a: Any, offset: int = 0, axis1: int = 0, axis2: int = 1) -> Any:
    """`np.diagonal`: a gather; the diagonal becomes the last axis, as NumPy's."""
    a = _float(a)
    nd = _ndim(a)
    if nd < 2:
        raise ValueError("np.diagonal: diag requires an array of at least two dimensions")
    axis1, axis2 = axis1 % nd, axis2 % nd
    if axis1 == axis2:
        raise ValueError("np.diagonal: axis1 and axis2 cannot be the same")
    shape = _shape(a)
    others = [k for k in range(nd) if k not in (axis1, axis2)]
    moved = np.transpose(a, (*others, axis1, axis2))
    rows, cols = _diagonal_indices(shape[axis1], shape[axis2], offset)
    return moved[..., rows, cols]


@_implements(np.trace)
def trace(
    a: Any, offset: int = 0, axis1: int = 0, axis2: int = 1, dtype: Any = None, out: Any = None
) -> Any:
    """`np.trace`: the sum of `np.diagonal`."""
    _refuse_options("trace", dtype=dtype, out=out)
    return np.sum(diagonal(a, offset, axis1, axis2), axis=-1)


@_implements(np.diag)
def diag(v: Any, k: int = 0) -> Any:
    """`np.diag`: of a vector, the matrix with it on diagonal `k` (a placement, whose
    gradient is a gather); of a matrix, its diagonal `k`."""
    v = _float(v)
    nd = _ndim(v)
    if nd == 2:
        return diagonal(v, k)
    if nd != 1:
        raise ValueError("np.diag: input must be 1- or 2-d")
    n = _shape(v)[0] + abs(k)
    rows, cols = _diagonal_indices(n, n, k)
    return _core.place(v, [n, n], (rows, cols))


# -- the array-API spellings of NumPy 2 (np.linalg.matmul, vecdot, ...) ---------------------


def _implements_linalg(name: str):
    """Registers for `np.linalg.<name>` where this NumPy has it."""
    function = getattr(np.linalg, name, None)
    return _implements(function) if function is not None else (lambda impl: impl)


@_implements_linalg("matmul")
def _linalg_matmul(x1: Any, x2: Any, /) -> Any:
    return _matmul(_float(x1), _float(x2))


@_implements_linalg("vecdot")
def _linalg_vecdot(x1: Any, x2: Any, /, *, axis: int = -1) -> Any:
    return np.sum(_float(x1) * _float(x2), axis=axis)


@_implements_linalg("matrix_transpose")
def _linalg_matrix_transpose(x: Any, /) -> Any:
    if _ndim(x) < 2:
        raise ValueError("np.linalg.matrix_transpose: input must be at least 2-dimensional")
    return _swap(x)


@_implements_linalg("trace")
def _linalg_trace(x: Any, /, *, offset: int = 0, dtype: Any = None) -> Any:
    _refuse_options("linalg.trace", dtype=dtype)
    return trace(x, offset, -2, -1)


@_implements_linalg("diagonal")
def _linalg_diagonal(x: Any, /, *, offset: int = 0) -> Any:
    return diagonal(x, offset, -2, -1)


@_implements_linalg("matrix_norm")
def _linalg_matrix_norm(x: Any, /, *, keepdims: bool = False, ord: Any = "fro") -> Any:
    return norm(x, ord, axis=(-2, -1), keepdims=keepdims)


@_implements_linalg("vector_norm")
def _linalg_vector_norm(
    x: Any, /, *, axis: Any = None, keepdims: bool = False, ord: Any = 2
) -> Any:
    x = _float(x)
    if axis is None:
        result = _vector_norm(np.reshape(x, (-1,)), ord, (0,))
        return np.reshape(result, (1,) * _ndim(x)) if keepdims else result
    axes = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
    result = _vector_norm(x, ord, axes)
    if keepdims:
        nd = _ndim(x)
        kept = {int(k) % nd for k in axes}
        result = np.reshape(result, tuple(1 if k in kept else d for k, d in enumerate(_shape(x))))
    return result


@_implements(np.linalg.matrix_power)
def matrix_power(a: Any, n: int) -> Any:
    """`np.linalg.matrix_power`: repeated squaring of matrix products (of the inverse for
    negative `n`)."""
    a = _float(a)
    shape = _shape(a)
    if len(shape) < 2 or shape[-1] != shape[-2]:
        raise np.linalg.LinAlgError(
            f"matrix_power: the last 2 dimensions of the array must be square, got {shape}"
        )
    if not isinstance(n, (int, np.integer)):
        raise TypeError("np.linalg.matrix_power: exponent must be an integer")
    n = int(n)
    if n == 0:
        return a * 0.0 + np.eye(shape[-1], dtype=np.asarray(_core.data(a)).dtype)
    if n < 0:
        a, n = inv(a), -n
    result, square = None, a
    while n:
        if n & 1:
            result = square if result is None else _matmul(result, square)
        n >>= 1
        if n:
            square = _matmul(square, square)
    return result


@_implements(np.linalg.pinv)
def pinv(a: Any, rcond: Any = None, hermitian: bool = False, *, rtol: Any = None) -> Any:
    """`np.linalg.pinv` through the thin SVD: `V diag(1/s) Uᵀ`, with the singular values
    below the cutoff (NumPy's `rcond`/`rtol` times the largest) dropped by a constant mask.
    Differentiable where the rank does not change."""
    no_value = getattr(np, "_NoValue", None)
    a = _float(a)
    m, n = _shape(a)[-2:]
    if rtol is not None and rtol is not no_value:
        cutoff_ratio = rtol
    elif rcond is not None and rcond is not no_value:
        cutoff_ratio = rcond
    else:
        cutoff_ratio = max(m, n) * np.finfo(np.asarray(_core.data(a)).dtype).eps
    u, s, vh = svd(a, full_matrices=False)
    values = np.asarray(_core.data(s))
    cutoff = np.asarray(cutoff_ratio)[..., None] * np.max(values, axis=-1, keepdims=True)
    keep = values > cutoff
    safe = np.where(keep, values, 1.0).astype(values.dtype)
    scale = np.where(keep, 1.0, 0.0).astype(values.dtype)
    # s is replaced where dropped by a constant 1 (then zeroed), so no 1/0 is recorded.
    inverse = scale / (s * scale + (safe - safe * scale))
    return _matmul(_swap(vh) * inverse[..., None, :], _swap(u))
