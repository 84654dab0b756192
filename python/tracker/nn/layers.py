"""Layers: plain dataclasses holding NumPy arrays, callable on plain or tracked input.

A model is a structure of layers, so `tr.withgradient(loss, model, x)` returns its
gradient in the same structure (each layer a dict of its fields), and
`tracker.optim` updates it. Fields a layer does not train (a dropout rate, a norm's
epsilon) are left out by its `trainable()`. Channels come first, as in PyTorch: a
batch of images is (batch, channels, height, width).
"""

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from tracker.nn import init as initialisers

__all__ = [
    "AvgPool",
    "Chain",
    "Conv",
    "Dense",
    "Dropout",
    "Embedding",
    "LayerNorm",
    "MaxPool",
]

Initialiser = Callable[..., np.ndarray]


def _functional() -> Any:
    from tracker.nn import functional

    return functional


def _activate(activation: Callable[[Any], Any] | None, y: Any) -> Any:
    return y if activation is None else activation(y)


@dataclasses.dataclass(init=False)
class Dense:
    """`activation(x @ weight.T + bias)`: `weight` is (out, in), as PyTorch's `Linear`."""

    weight: np.ndarray
    bias: np.ndarray | None
    activation: Callable[[Any], Any] | None

    def __init__(
        self,
        in_features: int,
        out_features: int,
        activation: Callable[[Any], Any] | None = None,
        bias: bool = True,
        *,
        init: Initialiser = initialisers.glorot_uniform,
        rng: Any = None,
        dtype: Any = np.float32,
    ) -> None:
        self.weight = init((out_features, in_features), rng=rng, dtype=dtype)
        self.bias = np.zeros(out_features, dtype=dtype) if bias else None
        self.activation = activation

    def __call__(self, x: Any) -> Any:
        y = x @ self.weight.T
        return _activate(self.activation, y if self.bias is None else y + self.bias)


@dataclasses.dataclass(init=False)
class Chain:
    """Layers applied in turn: `Chain(Dense(2, 3, np.tanh), Dense(3, 1))`."""

    layers: tuple[Any, ...]

    def __init__(self, *layers: Callable[[Any], Any]) -> None:
        for layer in layers:
            if not callable(layer):
                raise TypeError(f"Chain: {layer!r} is not a layer (it is not callable)")
        self.layers = tuple(layers)

    def __call__(self, x: Any) -> Any:
        for layer in self.layers:
            x = layer(x)
        return x

    def __getitem__(self, k: int) -> Any:
        return self.layers[k]

    def __len__(self) -> int:
        return len(self.layers)


def _tuple(value: int | Sequence[int], n: int, what: str) -> tuple[int, ...]:
    values = (value,) * n if isinstance(value, int) else tuple(value)
    if len(values) != n:
        raise ValueError(f"{what} needs {n} values (one per spatial dimension), got {value!r}")
    return values


@dataclasses.dataclass(init=False)
class Conv:
    """A convolution: `weight` is (out, in / groups, *kernel_size), as PyTorch's
    `Conv1d/2d/3d`; the dimensionality is `len(kernel_size)`."""

    weight: np.ndarray
    bias: np.ndarray | None
    activation: Callable[[Any], Any] | None
    stride: tuple[int, ...]
    padding: tuple[int, ...]
    dilation: tuple[int, ...]
    groups: int

    def __init__(
        self,
        kernel_size: Sequence[int],
        in_channels: int,
        out_channels: int,
        activation: Callable[[Any], Any] | None = None,
        *,
        stride: int | Sequence[int] = 1,
        padding: int | Sequence[int] = 0,
        dilation: int | Sequence[int] = 1,
        groups: int = 1,
        bias: bool = True,
        init: Initialiser = initialisers.glorot_uniform,
        rng: Any = None,
        dtype: Any = np.float32,
    ) -> None:
        kernel = tuple(kernel_size)
        if in_channels % groups or out_channels % groups:
            raise ValueError(
                f"Conv: groups={groups} must divide both in_channels={in_channels} and "
                f"out_channels={out_channels}"
            )
        self.weight = init((out_channels, in_channels // groups, *kernel), rng=rng, dtype=dtype)
        self.bias = np.zeros(out_channels, dtype=dtype) if bias else None
        self.activation = activation
        self.stride = _tuple(stride, len(kernel), "Conv: stride")
        self.padding = _tuple(padding, len(kernel), "Conv: padding")
        self.dilation = _tuple(dilation, len(kernel), "Conv: dilation")
        self.groups = groups

    def trainable(self) -> tuple[str, ...]:
        return ("weight", "bias")

    def __call__(self, x: Any) -> Any:
        y = _functional().conv(
            x,
            self.weight,
            self.bias,
            stride=self.stride,
            padding=self.padding,
            dilation=self.dilation,
            groups=self.groups,
        )
        return _activate(self.activation, y)


@dataclasses.dataclass
class MaxPool:
    """Max pooling over windows of `kernel_size` (channels first)."""

    kernel_size: tuple[int, ...]
    stride: tuple[int, ...] | None = None
    padding: int | tuple[int, ...] = 0

    def __call__(self, x: Any) -> Any:
        return _functional().max_pool(x, self.kernel_size, self.stride, self.padding)


@dataclasses.dataclass
class AvgPool:
    """Mean pooling over windows of `kernel_size` (channels first)."""

    kernel_size: tuple[int, ...]
    stride: tuple[int, ...] | None = None
    padding: int | tuple[int, ...] = 0

    def __call__(self, x: Any) -> Any:
        return _functional().avg_pool(x, self.kernel_size, self.stride, self.padding)


@dataclasses.dataclass
class Dropout:
    """Zeroes each element with probability `p` and scales the rest by `1 / (1 - p)`
    while `active`; the identity otherwise. `rng` draws the masks."""

    p: float
    rng: np.random.Generator = dataclasses.field(default_factory=np.random.default_rng)
    active: bool = True

    def __post_init__(self) -> None:
        if not 0.0 <= self.p < 1.0:
            raise ValueError(f"Dropout: p must be in [0, 1), got {self.p}")

    def trainable(self) -> tuple[str, ...]:
        return ()

    def __call__(self, x: Any) -> Any:
        if not self.active or self.p == 0.0:
            return x
        return _functional().dropout(x, self.p, rng=self.rng)


@dataclasses.dataclass(init=False)
class LayerNorm:
    """Normalises over the last `len(shape)` axes, then scales by `weight` and shifts by
    `bias` (PyTorch's `LayerNorm`)."""

    weight: np.ndarray | None
    bias: np.ndarray | None
    eps: float

    def __init__(
        self,
        shape: int | Sequence[int],
        eps: float = 1e-5,
        affine: bool = True,
        *,
        dtype: Any = np.float32,
    ) -> None:
        shape = (shape,) if isinstance(shape, int) else tuple(shape)
        self.weight = np.ones(shape, dtype=dtype) if affine else None
        self.bias = np.zeros(shape, dtype=dtype) if affine else None
        self.eps = eps

    def trainable(self) -> tuple[str, ...]:
        return ("weight", "bias")

    def __call__(self, x: Any) -> Any:
        n = 1 if self.weight is None else self.weight.ndim
        axes = tuple(range(-n, 0))
        centred = x - np.mean(x, axis=axes, keepdims=True)
        variance = np.mean(centred * centred, axis=axes, keepdims=True)
        y = centred / np.sqrt(variance + self.eps)
        if self.weight is not None:
            y = y * self.weight + self.bias
        return y


@dataclasses.dataclass(init=False)
class Embedding:
    """Rows of `weight` (num_embeddings, dim) picked by integer indices."""

    weight: np.ndarray

    def __init__(
        self,
        num_embeddings: int,
        dim: int,
        *,
        init: Initialiser | None = None,
        rng: Any = None,
        dtype: Any = np.float32,
    ) -> None:
        if init is None:  # N(0, 1), as PyTorch's
            self.weight = np.random.default_rng(rng).standard_normal((num_embeddings, dim))
            self.weight = self.weight.astype(dtype)
        else:
            self.weight = init((num_embeddings, dim), rng=rng, dtype=dtype)

    def __call__(self, indices: Any) -> Any:
        indices = np.asarray(indices)
        if indices.dtype.kind not in "iu":
            raise TypeError(f"Embedding: indices must be integers, got {indices.dtype}")
        return self.weight[indices]
