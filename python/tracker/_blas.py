"""Matrix products through the OpenBLAS that NumPy's wheels bundle (scipy-openblas).

tracker's engine multiplies matrices with matrixmultiply, a portable Rust GEMM. Where
NumPy ships its own OpenBLAS (its wheels for Linux, Windows and Intel macOS), tracker
calls that instead: the same library, already loaded, that computes `a @ b` in NumPy,
several times faster on large products. Set `TRACKER_BLAS=0` to keep matrixmultiply.
"""

import os
from pathlib import Path

import numpy as np

from tracker import _core


def numpy_openblas() -> list[Path]:
    """The scipy-openblas libraries bundled with this NumPy (none for other builds)."""
    package = Path(np.__file__).resolve().parent
    places = [package.parent / "numpy.libs", package / ".dylibs"]
    return sorted(p for place in places for p in place.glob("libscipy_openblas64_*"))


def use_numpy_blas() -> bool:
    """Whether matrix products now go through NumPy's OpenBLAS."""
    if os.environ.get("TRACKER_BLAS", "1") == "0":
        return False
    return any(_core.use_blas(str(path)) for path in numpy_openblas())


USING_NUMPY_BLAS = use_numpy_blas()
