"""`tr.at(x)[idx].set(v)`: functional indexed updates, as JAX's `x.at[idx].set(v)`.

Tracked arrays are immutable, so `x[idx] = v` is refused; `tr.at(x)[idx]` returns the
updates of a new array instead, differentiable in `x` and in `v`:

>>> import numpy as np, tracker as tr
>>> x = np.zeros(4)
>>> tr.at(x)[1:3].set(np.array([1.0, 2.0]))
array([0., 1., 2., 0.])
>>> tr.gradient(lambda x, v: np.sum(tr.at(x)[[0, 0, 2]].add(v) ** 2), np.ones(3), 1.0)
(array([4., 2., 4.]), np.float64(12.0))

Every index `x[idx]` takes works (integers, slices, `None`, `...`, integer and boolean
arrays). `v` broadcasts to the shape of `x[idx]` and is cast to `x`'s dtype. Where an
index repeats a position, `add` accumulates (as `np.add.at`), `multiply`, `min` and `max`
apply every value in turn, and `set` keeps the last value written, as NumPy's assignment
does.

How: the flat positions of `x[idx]` come from NumPy's own indexing of
`arange(x.size).reshape(x.shape)`; `add` scatters `v` into a zero array at them (repeats
add), the others select with `where` between `x` and the placed values. Each step is a
core op, so second derivatives work.
"""

from typing import Any

import numpy as np

from tracker import _core

__all__ = ["at"]


def _tracked(x: Any) -> bool:
    return _core.istracked(x)


def at(x: Any) -> "_At":
    """The functional updates of `x`: `tr.at(x)[idx].set(v)`, `.add(v)`, `.multiply(v)`,
    `.min(v)`, `.max(v)` and `.get()` each return a new array.

    >>> import numpy as np, tracker as tr
    >>> x = tr.param([1.0, 2.0, 3.0])
    >>> y = tr.at(x)[-1].set(x[0] * 10)
    >>> tr.data(y)
    array([ 1.,  2., 10.])
    """
    if not _tracked(x):
        x = np.asarray(x)
    return _At(x)


class _At:
    __slots__ = ("_x",)

    def __init__(self, x: Any) -> None:
        self._x = x

    def __getitem__(self, index: Any) -> "_Update":
        return _Update(self._x, index)

    def __repr__(self) -> str:
        return f"tr.at({self._x!r})"


def _index_parts(index: Any) -> tuple[Any, ...]:
    return index if type(index) is tuple else (index,)


class _Update:
    """The updates of `x` at one index."""

    __slots__ = ("_index", "_positions", "_x")

    def __init__(self, x: Any, index: Any) -> None:
        for part in _index_parts(index):
            if _tracked(part):
                raise TypeError(
                    "tr.at(x)[idx]: an index cannot be a tracked value: pass tr.data(idx) for "
                    "its plain value"
                )
        self._x, self._index = x, index
        shape = tuple(x.shape)
        # NumPy's own indexing of the flat positions: its semantics and its errors.
        self._positions = np.arange(int(np.prod(shape, dtype=np.int64))).reshape(shape)[index]

    def get(self) -> Any:
        """`x[idx]`."""
        return self._x[self._index]

    def _values(self, values: Any) -> Any:
        """`values` cast to `x`'s dtype, broadcast to the shape of `x[idx]`, flattened."""
        x, shape = self._x, np.shape(self._positions)
        dtype = np.dtype(x.dtype)
        if _tracked(values):
            if dtype.kind != "f":
                raise TypeError(
                    f"tr.at(x)[idx]: cannot write tracked values into an array of dtype {dtype}"
                )
            if values.dtype != dtype:
                values = values.astype(dtype)
        else:
            values = np.asarray(values, dtype=dtype)
        vshape = tuple(values.shape)
        # NumPy's assignment drops leading unit axes of the values.
        while len(vshape) > len(shape) and vshape[0] == 1:
            vshape = vshape[1:]
        try:
            fits = np.broadcast_shapes(vshape, shape) == shape
        except ValueError:
            fits = False
        if not fits:
            raise ValueError(
                f"tr.at(x)[idx]: could not broadcast values of shape {tuple(values.shape)} into "
                f"the indexed shape {shape}"
            )
        values = values.reshape(vshape) if vshape != tuple(values.shape) else values
        values = np.broadcast_to(values, shape)
        return values.reshape(values.size) if _tracked(values) else values.reshape(-1)

    def _placed(self, values: Any, positions: np.ndarray) -> Any:
        """`values` (flat) in a zero array of `x`'s shape at flat `positions`; repeats add."""
        x = self._x
        size = int(np.prod(x.shape, dtype=np.int64))
        if _tracked(values):
            flat = _core.place(values, (size,), (positions,))
        else:
            flat = np.zeros(size, dtype=values.dtype)
            np.add.at(flat, positions, values)
        return flat.reshape(tuple(x.shape))

    def _mask(self, positions: np.ndarray) -> np.ndarray:
        mask = np.zeros(int(np.prod(self._x.shape, dtype=np.int64)), dtype=bool)
        mask[positions] = True
        return mask.reshape(tuple(self._x.shape))

    def _rounds(self) -> list[np.ndarray]:
        """The entries of `x[idx]` (flat) in rounds with distinct positions: the k-th write
        to each position is in round k."""
        flat = self._positions.reshape(-1)
        order = np.argsort(flat, kind="stable")
        ranks = np.empty(flat.size, dtype=np.intp)
        if flat.size:
            ordered = flat[order]
            starts = np.r_[True, ordered[1:] != ordered[:-1]]
            first = np.maximum.accumulate(np.where(starts, np.arange(flat.size), 0))
            ranks[order] = np.arange(flat.size) - first
        return [np.flatnonzero(ranks == k) for k in range(int(ranks.max(initial=-1)) + 1)]

    def _select(self, entries: np.ndarray, values: Any) -> tuple[Any, np.ndarray]:
        positions = self._positions.reshape(-1)[entries]
        return values[entries], positions

    def set(self, values: Any) -> Any:
        """`x` with `x[idx]` replaced by `values`; of repeated positions the last write wins."""
        values = self._values(values)
        flat = self._positions.reshape(-1)
        # The last entry that writes each position.
        reversed_unique = np.unique(flat[::-1], return_index=True)[1]
        last = np.sort(flat.size - 1 - reversed_unique)
        chosen, positions = self._select(last, values)
        return np.where(self._mask(positions), self._placed(chosen, positions), self._x)

    def add(self, values: Any) -> Any:
        """`x` with `values` added at `idx`; repeated positions accumulate (as `np.add.at`)."""
        values = self._values(values)
        return self._x + self._placed(values, self._positions.reshape(-1))

    def _combine(self, values: Any, combine: Any) -> Any:
        values = self._values(values)
        result = self._x
        for entries in self._rounds():
            chosen, positions = self._select(entries, values)
            placed = self._placed(chosen, positions)
            result = np.where(self._mask(positions), combine(result, placed), result)
        return result

    def multiply(self, values: Any) -> Any:
        """`x` with `x[idx]` multiplied by `values` (repeats multiply in turn)."""
        return self._combine(values, np.multiply)

    def min(self, values: Any) -> Any:
        """`x` with `x[idx]` replaced by `minimum(x[idx], values)` (ties share the gradient)."""
        return self._combine(values, np.minimum)

    def max(self, values: Any) -> Any:
        """`x` with `x[idx]` replaced by `maximum(x[idx], values)` (ties share the gradient)."""
        return self._combine(values, np.maximum)

    def __repr__(self) -> str:
        return f"tr.at({self._x!r})[{self._index!r}]"
