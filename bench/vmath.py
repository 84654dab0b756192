"""Timings of tracker's vectorised unary functions against NumPy's, over 10^6 elements.

    PYTHONPATH=python python bench/vmath.py [exp,sin,tanh,...]

For each function and dtype: NumPy's ufunc, tracker's forward (under `tr.no_grad()`,
on a param) and tracker's gradient of `sum(f(x))`. Times are the best of several
repeats, in CPU time of this process (`time.process_time`), which a shared machine's
other load disturbs less than wall time.
"""

import sys
import time
import timeit
from collections.abc import Callable
from typing import Any

import numpy as np

import tracker as tr
import tracker.nn.functional as F

N = 10**6


def best_ms(f: Callable[[], Any], number: int, repeat: int) -> float:
    times = timeit.repeat(f, number=number, repeat=repeat, timer=time.process_time)
    return min(times) / number * 1e3


def functions(name: str) -> tuple[Callable[[Any], Any], Callable[[Any], Any]]:
    """(NumPy's function, tracker's) for `name`."""
    if name == "sigmoid":
        return (lambda x: 1 / (1 + np.exp(-x))), F.sigmoid
    f = getattr(np, name)
    return f, f


def row(name: str, dtype: type, rng: np.random.Generator) -> str:
    x = (rng.standard_normal(N) * 3).astype(dtype)
    if name in ("log", "log1p", "sqrt"):
        x = np.abs(x)
    f_np, f_tr = functions(name)
    p = tr.param(x)
    numpy_ms = best_ms(lambda: f_np(x), 10, 15)
    with tr.no_grad():
        forward_ms = best_ms(lambda: f_tr(p), 10, 15)
    gradient_ms = best_ms(lambda: tr.gradient(lambda v: np.sum(f_tr(v)), x), 3, 7)
    return (
        f"{dtype.__name__:8} {name:8} NumPy {numpy_ms:6.2f} ms   tracker forward "
        f"{forward_ms:6.2f} ms ({forward_ms / numpy_ms:4.2f}x)   "
        f"gradient of sum {gradient_ms:6.2f} ms"
    )


def main() -> None:
    names = sys.argv[1].split(",") if len(sys.argv) > 1 else ["exp", "sin", "tanh"]
    rng = np.random.default_rng(0)
    for dtype in (np.float64, np.float32):
        for name in names:
            print(row(name, dtype, rng), flush=True)


if __name__ == "__main__":
    main()
