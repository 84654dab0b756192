"""Initialisers: a new array of a shape, drawn from a seeded generator.

Each takes `shape`, then keyword arguments `rng` (a `numpy.random.Generator`, a seed,
or None for fresh entropy) and `dtype` (float32 by default, as Flux's). Fan-in and
fan-out follow PyTorch: a weight is (out, in, *kernel), so fan-in is
`in * prod(kernel)` and fan-out `out * prod(kernel)`.
"""

import math
from typing import Any

import numpy as np

__all__ = [
    "glorot_normal",
    "glorot_uniform",
    "kaiming_normal",
    "kaiming_uniform",
    "ones",
    "zeros",
]


def _fans(shape: tuple[int, ...]) -> tuple[int, int]:
    if len(shape) < 2:
        n = shape[0] if shape else 1
        return n, n
    receptive = math.prod(shape[2:])
    return shape[1] * receptive, shape[0] * receptive


def _generator(rng: Any) -> np.random.Generator:
    return rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)


def glorot_uniform(shape: tuple[int, ...], *, rng: Any = None, gain: float = 1.0, dtype=np.float32):
    """Uniform in ±`gain·sqrt(6 / (fan_in + fan_out))` (Xavier; Flux's default)."""
    fan_in, fan_out = _fans(shape)
    bound = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return _generator(rng).uniform(-bound, bound, shape).astype(dtype)


def glorot_normal(shape: tuple[int, ...], *, rng: Any = None, gain: float = 1.0, dtype=np.float32):
    """Normal with standard deviation `gain·sqrt(2 / (fan_in + fan_out))`."""
    fan_in, fan_out = _fans(shape)
    std = gain * math.sqrt(2.0 / (fan_in + fan_out))
    return (_generator(rng).standard_normal(shape) * std).astype(dtype)


def kaiming_uniform(
    shape: tuple[int, ...], *, rng: Any = None, gain: float = math.sqrt(2.0), dtype=np.float32
):
    """Uniform in ±`gain·sqrt(3 / fan_in)` (He; the gain suits relu)."""
    fan_in, _ = _fans(shape)
    bound = gain * math.sqrt(3.0 / fan_in)
    return _generator(rng).uniform(-bound, bound, shape).astype(dtype)


def kaiming_normal(
    shape: tuple[int, ...], *, rng: Any = None, gain: float = math.sqrt(2.0), dtype=np.float32
):
    """Normal with standard deviation `gain / sqrt(fan_in)`."""
    fan_in, _ = _fans(shape)
    return (_generator(rng).standard_normal(shape) * (gain / math.sqrt(fan_in))).astype(dtype)


def zeros(shape: tuple[int, ...], *, rng: Any = None, dtype=np.float32):
    return np.zeros(shape, dtype=dtype)


def ones(shape: tuple[int, ...], *, rng: Any = None, dtype=np.float32):
    return np.ones(shape, dtype=dtype)
