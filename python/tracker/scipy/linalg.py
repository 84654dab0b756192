"""`scipy.linalg` on tracked arrays: `solve_triangular`."""

from typing import Any

import numpy as np

from tracker._core import data

__all__ = ["solve_triangular"]


def solve_triangular(
    a: Any, b: Any, trans: Any = 0, lower: bool = False, unit_diagonal: bool = False
) -> Any:
    """`scipy.linalg.solve_triangular`: `x` with `a @ x = b` (or `a.T @ x = b` for
    `trans=1`/`'T'`/`'C'`) for a triangular `a`, by substitution over rows, each step a
    recorded op, so it differentiates to any order in `a` and `b`.

    >>> import tracker as tr
    >>> a = np.array([[2.0, 0.0], [1.0, 1.0]])
    >>> solve_triangular(a, np.array([2.0, 3.0]), lower=True)
    array([1., 2.])
    """
    if trans in (1, 2, "T", "C"):
        a = a.T if hasattr(a, "T") else np.transpose(a)
        lower = not lower
    elif trans not in (0, "N"):
        raise ValueError(f"solve_triangular: trans must be 0, 1, 2, 'N', 'T' or 'C', not {trans!r}")
    shape_a, shape_b = np.shape(data(a)), np.shape(data(b))
    n = shape_a[0] if len(shape_a) == 2 else -1
    if len(shape_a) != 2 or shape_a[1] != n or len(shape_b) not in (1, 2) or shape_b[0] != n:
        raise ValueError(
            f"solve_triangular: expected a square a (n, n) and b (n,) or (n, k), got "
            f"{shape_a} and {shape_b}"
        )
    rows: list[Any] = [None] * n
    order = range(n) if lower else range(n - 1, -1, -1)
    for i in order:
        done = [j for j in (range(i) if lower else range(i + 1, n))]
        r = b[i]
        if done:
            known = np.stack([rows[j] for j in done])
            r = r - a[i, done[0] : done[-1] + 1] @ known
        rows[i] = r if unit_diagonal else r / a[i, i]
    return np.stack(rows)
