"""Julia's array conventions written in NumPy, for the port of Tracker.jl's tests.

Shapes are kept as Julia writes them (`rand(2, 5)` is `rand(2, 5)`), so most
expressions translate directly: `dims=d` is `axis=d - 1` and `W*x` is `W @ x`.
The differences this module spells out once:

- A Julia vector is a column. Where it meets matrices (a product, `x'`, `hcat`,
  broadcasting against a matrix) it is `col(v)`, shape `(n, 1)`.
- Julia arrays have implicit trailing singleton dimensions; `cat` pads every
  argument with them to a common rank (`with_rank`) before concatenating.
- Memory order matters only to `reshape`: Julia's column-major reshape is
  `reshape_f`, the row-major reshape of the reversed axes.
"""

import functools
import operator

import numpy as np

# Random.seed!(0) in test/runtests.jl: the port draws every input from one seeded stream.
rng = np.random.default_rng(0)


def rand(*shape: int) -> np.ndarray:
    """Julia's `rand(Float64, shape...)`: uniform in [0, 1)."""
    return rng.random(shape)


def randn(*shape: int) -> np.ndarray:
    """Julia's `randn(Float64, shape...)`."""
    return rng.standard_normal(shape)


def col(v):
    """A Julia vector as the `(n, 1)` column it is in products and concatenations.

    `v'` and `transpose(v)` of a vector are `col(v).T` and `np.transpose(col(v))`.
    """
    return v[:, np.newaxis]


def sigmoid(x):
    """NNlib's sigmoid: 1 / (1 + exp(-x))."""
    return 1 / (1 + np.exp(-x))


def logsigmoid(x):
    """NNlib's log-sigmoid: log(sigmoid(x)) = -log(1 + exp(-x))."""
    return -np.logaddexp(0, -x)


def with_rank(x, rank: int):
    """`x` with trailing singleton axes up to `rank`: how Julia sees an array in `cat`."""
    shape = np.shape(x)
    return np.reshape(x, shape + (1,) * (rank - len(shape)))


def cat(*xs, dims):
    """Julia's `cat(xs...; dims)`.

    Every argument is padded with trailing singleton axes to the rank of the
    largest argument or of the largest `dims` (1-based). One dimension is
    `np.concatenate` along `axis = dims - 1`; several build a block diagonal:
    each argument is placed after the previous one along every dimension in
    `dims` (`np.pad` to the full shape, then a sum).
    """
    dims = (dims,) if isinstance(dims, int) else tuple(dims)
    rank = max(*(np.ndim(x) for x in xs), *dims)
    xs = [with_rank(x, rank) for x in xs]
    axes = [d - 1 for d in dims]
    if len(axes) == 1:
        return np.concatenate(xs, axis=axes[0])
    shape = list(np.shape(xs[0]))
    for axis in axes:
        shape[axis] = sum(np.shape(x)[axis] for x in xs)
    offsets = dict.fromkeys(axes, 0)
    pieces = []
    for x in xs:
        widths = []
        for axis, size in enumerate(np.shape(x)):
            if axis in offsets:
                start = offsets[axis]
                widths.append((start, shape[axis] - start - size))
                offsets[axis] = start + size
            else:
                widths.append((0, 0))
        pieces.append(np.pad(x, widths))
    return functools.reduce(operator.add, pieces)


def vcat(*xs):
    """Julia's `vcat`: `np.concatenate(axis=0)`, a vector meeting matrices as a column."""
    rank = max(np.ndim(x) for x in xs)
    return np.concatenate([with_rank(x, rank) for x in xs], axis=0)


def hcat(*xs):
    """Julia's `hcat`: `np.concatenate(axis=1)`, vectors as columns."""
    rank = max(2, *(np.ndim(x) for x in xs))
    return np.concatenate([with_rank(x, rank) for x in xs], axis=1)


def reshape_f(x, *shape: int):
    """Julia's column-major `reshape(x, shape...)` (`-1` for `:`), in row-major NumPy.

    Reading `x` in column-major order is reading `x.T` in row-major order, so
    the result is `reshape(x.T, reversed(shape)).T`: equal to
    `np.reshape(x, shape, order="F")`.
    """
    return np.transpose(np.reshape(np.transpose(x), shape[::-1]))
