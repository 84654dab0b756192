"""Neural-network functions on tracked (or plain NumPy) arrays, channels-first as
PyTorch's `torch.nn.functional`: inputs are `(batch, channels, *spatial)`, kernels
`(out_channels, in_channels / groups, *kernel)`.

>>> import numpy as np, tracker as tr
>>> import tracker.nn.functional as nnf
>>> x = np.arange(16.0).reshape(1, 1, 4, 4)
>>> w = np.ones((2, 1, 3, 3))
>>> y, (gx, gw) = tr.withgradient(lambda x, w: np.sum(nnf.relu(nnf.conv(x, w))), x, w)
>>> float(y), gw.shape
(540.0, (2, 1, 3, 3))

The parameter-free activations are rows of the core's elementwise table (one fused
loop, stable forms, twice differentiable); softmax and friends subtract the maximum
as a constant; convolution and pooling gather windows by computed index arrays
(im2col, whose gradient is the scatter-add col2im) and multiply matrices.

Kinks follow PyTorch: `relu'(0) = 0`, `leaky_relu'(0) = negative_slope`,
`elu'(0) = alpha`, `hardtanh` passes the gradient only strictly inside its interval.
Where PyTorch's max pooling gives a tied maximum's gradient to one element,
`max_pool` shares it equally among the ties (as tracker's `max`).
"""

import functools
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from tracker import _core

__all__ = [
    "avg_pool",
    "avg_pool1d",
    "avg_pool2d",
    "avg_pool3d",
    "conv",
    "conv1d",
    "conv2d",
    "conv3d",
    "conv_transpose",
    "conv_transpose1d",
    "conv_transpose2d",
    "conv_transpose3d",
    "dropout",
    "elu",
    "embedding",
    "gelu",
    "hardtanh",
    "leaky_relu",
    "log_softmax",
    "logsigmoid",
    "logsoftmax",
    "logsumexp",
    "max_pool",
    "max_pool1d",
    "max_pool2d",
    "max_pool3d",
    "maxpool",
    "meanpool",
    "one_hot",
    "relu",
    "selu",
    "sigmoid",
    "silu",
    "softmax",
    "softplus",
]

# The rows of the core's elementwise table these functions apply (by name).
CORE_ROWS = (
    "relu",
    "sigmoid",
    "logsigmoid",
    "softplus",
    "silu",
    "gelu",
    "gelu_tanh",
    "elu",
    "selu",
)

# -- helpers -------------------------------------------------------------------------------


def _array(x: Any) -> Any:
    """A tracked value as it is; anything else as a float NumPy array."""
    if _core.istracked(x):
        return x
    a = np.asarray(x)
    return a if a.dtype.kind == "f" else a.astype(np.float64)


def _plain(x: Any) -> np.ndarray:
    return np.asarray(_core.data(x)) if _core.istracked(x) else np.asarray(x)


def _constant(values: Any, like: Any) -> np.ndarray:
    """`values` as a constant of `like`'s dtype (so float32 stays float32)."""
    return np.asarray(values, dtype=like.dtype)


# -- activations ---------------------------------------------------------------------------


def relu(x: Any) -> Any:
    """`max(x, 0)`; `relu'(0) = 0`.

    >>> relu(np.array([-1.0, 0.0, 2.0]))
    array([0., 0., 2.])
    """
    return _core.unary("relu", _array(x))


def leaky_relu(x: Any, negative_slope: float = 0.01) -> Any:
    """`x` where `x > 0`, else `negative_slope * x` (so the slope at 0 is `negative_slope`).

    >>> leaky_relu(np.array([-1.0, 2.0]), 0.1)
    array([-0.1,  2. ])
    """
    x = _array(x)
    return x * _constant(np.where(_plain(x) > 0, 1.0, negative_slope), x)


def elu(x: Any, alpha: float = 1.0) -> Any:
    """`x` where `x > 0`, else `alpha * (exp(x) - 1)`; `elu'(0) = alpha`, as PyTorch.

    >>> elu(np.array([0.0, 1.0]))
    array([0., 1.])
    """
    x = _array(x)
    y = _core.unary("elu", x)
    if alpha == 1.0:
        return y
    return y * _constant(np.where(_plain(x) > 0, 1.0, alpha), x)


def selu(x: Any) -> Any:
    """`scale * elu(x, alpha)` with the constants of Klambauer et al. (2017), as PyTorch.

    >>> selu(np.array([1.0]))
    array([1.05070099])
    """
    return _core.unary("selu", _array(x))


def gelu(x: Any, approximate: str = "none") -> Any:
    """`x * Φ(x)` (`approximate="none"`, with the error function) or its tanh
    approximation (`approximate="tanh"`), as PyTorch.

    >>> gelu(np.array([0.0, 1.0])).round(6)
    array([0.      , 0.841345])
    """
    if approximate not in ("none", "tanh"):
        raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
    return _core.unary("gelu" if approximate == "none" else "gelu_tanh", _array(x))


def sigmoid(x: Any) -> Any:
    """`1 / (1 + exp(-x))`, without overflow.

    >>> sigmoid(np.array([0.0, -1000.0]))
    array([0.5, 0. ])
    """
    return _core.unary("sigmoid", _array(x))


def logsigmoid(x: Any) -> Any:
    """`log(sigmoid(x)) = -softplus(-x)`, without overflow.

    >>> logsigmoid(np.array([-1000.0]))
    array([-1000.])
    """
    return _core.unary("logsigmoid", _array(x))


def softplus(x: Any, beta: float = 1.0, threshold: float = 20.0) -> Any:
    """`log(1 + exp(beta * x)) / beta`, and `x` itself where `beta * x > threshold`, as
    PyTorch.

    >>> softplus(np.array([0.0, 30.0]))
    array([ 0.69314718, 30.        ])
    """
    x = _array(x)
    y = _core.unary("softplus", x) if beta == 1 else _core.unary("softplus", x * beta) / beta
    above = _plain(x) * beta > threshold
    return _core.where(above, x, y) if above.any() else y


def silu(x: Any) -> Any:
    """`x * sigmoid(x)` (swish).

    >>> silu(np.array([0.0]))
    array([0.])
    """
    return _core.unary("silu", _array(x))


def hardtanh(x: Any, min_val: float = -1.0, max_val: float = 1.0) -> Any:
    """`x` clipped to `[min_val, max_val]`. As PyTorch, the gradient passes only strictly
    inside the interval (0 at its bounds; `np.clip` passes it at the bounds).

    >>> hardtanh(np.array([-2.0, 0.5, 3.0]))
    array([-1. ,  0.5,  1. ])
    """
    if min_val > max_val:
        raise ValueError(f"hardtanh: min_val {min_val} is greater than max_val {max_val}")
    x = _array(x)
    v = _plain(x)
    inside = (v > min_val) & (v < max_val)
    return _core.where(inside, x, _constant(np.clip(v, min_val, max_val), x))


# -- softmax ---------------------------------------------------------------------------------


def _max_constant(x: Any, axis: Any) -> np.ndarray:
    """The maximum along `axis` (kept), as a constant; 0 where it is not finite, so that an
    all `-inf` slice gives NaN-free shifts. Subtracting it does not change the gradient."""
    v = _plain(x)
    if v.size == 0:
        return np.zeros((1,) * v.ndim, dtype=v.dtype)
    m = np.max(v, axis=axis, keepdims=True)
    return np.where(np.isfinite(m), m, 0).astype(v.dtype)


def softmax(x: Any, axis: int = -1) -> Any:
    """`exp(x) / sum(exp(x), axis)`, computed stably.

    >>> softmax(np.array([0.0, np.log(3.0)]))
    array([0.25, 0.75])
    """
    x = _array(x)
    e = np.exp(x - _max_constant(x, axis))
    return e / np.sum(e, axis=axis, keepdims=True)


def logsoftmax(x: Any, axis: int = -1) -> Any:
    """`x - logsumexp(x, axis)`, computed stably.

    >>> np.exp(logsoftmax(np.array([0.0, np.log(3.0)])))
    array([0.25, 0.75])
    """
    x = _array(x)
    z = x - _max_constant(x, axis)
    return z - np.log(np.sum(np.exp(z), axis=axis, keepdims=True))


log_softmax = logsoftmax


def logsumexp(x: Any, axis: Any = None, keepdims: bool = False) -> Any:
    """`log(sum(exp(x), axis))`, computed stably.

    >>> logsumexp(np.array([1000.0, 1000.0])) - 1000.0 - np.log(2.0) < 1e-12
    np.True_
    """
    x = _array(x)
    m = _max_constant(x, axis)
    y = np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True)) + m
    if keepdims:
        return y
    shape = np.sum(np.zeros(x.shape, dtype=np.int8), axis=axis).shape
    return y.reshape(shape)


# -- windows: the index arrays of convolution and pooling ------------------------------------


def _ints(value: Any, n: int, what: str, function: str, minimum: int) -> tuple[int, ...]:
    """An int or a sequence of `n` ints, each at least `minimum`."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        values = (int(value),) * n
    elif isinstance(value, Sequence) and not isinstance(value, str):
        values = tuple(int(v) for v in value)
        if len(values) != n:
            raise ValueError(
                f"{function}: {what} {tuple(value)} has {len(values)} entries for {n} spatial "
                f"dimensions; pass an int or {n} ints"
            )
    else:
        raise TypeError(f"{function}: {what} must be an int or a tuple of ints, got {value!r}")
    if any(v < minimum for v in values):
        raise ValueError(f"{function}: {what} must be at least {minimum}, got {values}")
    return values


def _strides(shape: Sequence[int]) -> list[int]:
    """Row-major strides, in elements."""
    out, acc = [], 1
    for d in reversed(shape):
        out.append(acc)
        acc *= d
    return out[::-1]


@functools.lru_cache(maxsize=16)
def _window_offsets(
    frame: tuple[int, ...],
    kernel: tuple[int, ...],
    stride: tuple[int, ...],
    dilation: tuple[int, ...],
    out: tuple[int, ...],
) -> tuple[np.ndarray, np.ndarray]:
    """The flat offsets, in a row-major `frame`, of each window's start (one per output
    position, `(L,)`) and of each kernel element within a window (`(K,)`)."""
    starts = np.zeros(1, dtype=np.intp)
    within = np.zeros(1, dtype=np.intp)
    for size, k, s, d, o in zip(_strides(frame), kernel, stride, dilation, out, strict=True):
        starts = (starts[:, None] + np.arange(o, dtype=np.intp) * (s * size)).reshape(-1)
        within = (within[:, None] + np.arange(k, dtype=np.intp) * (d * size)).reshape(-1)
    return starts, within


@functools.lru_cache(maxsize=16)
def _conv_index(
    batch: int,
    channels: int,
    frame: tuple[int, ...],
    kernel: tuple[int, ...],
    stride: tuple[int, ...],
    dilation: tuple[int, ...],
    out: tuple[int, ...],
    groups: int,
) -> tuple[Any, ...]:
    """For each group, the gather from an array `(batch, channels, *frame)` of the im2col
    matrix `(channels / groups * K, batch * L)`: row `(c, k)`, column `(n, l)`. Built once
    per shape: a call then costs only the copy of the elements."""
    starts, within = _window_offsets(frame, kernel, stride, dilation, out)
    size = math.prod(frame)
    per_group = channels // groups
    samples = np.arange(batch, dtype=np.intp) * (channels * size)
    columns = (samples[:, None] + starts).reshape(-1)
    index = []
    for g in range(groups):
        chans = np.arange(g * per_group, (g + 1) * per_group, dtype=np.intp) * size
        rows = (chans[:, None] + within).reshape(-1)
        index.append(_core.GatherIndex((batch, channels, *frame), rows[:, None] + columns))
    return tuple(index)


def _pad(x: Any, pads: Sequence[tuple[int, int]], fill: float = 0.0) -> Any:
    """`x` with its spatial axes padded by `(before, after)` each, with `fill`."""
    if not any(lo or hi for lo, hi in pads):
        return x
    spatial = x.shape[2:]
    shape = (*x.shape[:2], *(d + lo + hi for d, (lo, hi) in zip(spatial, pads)))
    key = (slice(None), slice(None), *(slice(lo, lo + d) for d, (lo, _) in zip(spatial, pads)))
    padded = _core.place(x, shape, key)
    if fill != 0.0:
        border = np.full(shape, fill, dtype=x.dtype)
        border[key] = 0.0
        padded = padded + border
    return padded


def _check_batch(function: str, x: Any, nd: int, what: str) -> None:
    if x.ndim != nd + 2:
        raise ValueError(
            f"{function}: x of shape {tuple(x.shape)} must be (batch, channels, *spatial) with "
            f"{nd} spatial dimension{'s' if nd != 1 else ''} ({what}); add a batch axis with "
            "x[None] if it has none"
        )


def _concat_rows(pieces: list[Any]) -> Any:
    return pieces[0] if len(pieces) == 1 else np.concatenate(pieces, axis=0)


# -- convolution -----------------------------------------------------------------------------


def _conv_padding(
    padding: Any, nd: int, kernel: tuple[int, ...], stride, dilation, function: str
) -> list[tuple[int, int]]:
    if isinstance(padding, str):
        if padding == "valid":
            return [(0, 0)] * nd
        if padding == "same":
            if any(s != 1 for s in stride):
                raise ValueError(
                    f"{function}: padding='same' needs stride 1, got stride {stride}; "
                    "pass explicit padding instead"
                )
            total = [d * (k - 1) for k, d in zip(kernel, dilation)]
            return [(t // 2, t - t // 2) for t in total]
        raise ValueError(
            f"{function}: padding must be an int, a tuple of ints, 'same' or 'valid', "
            f"got {padding!r}"
        )
    return [(p, p) for p in _ints(padding, nd, "padding", function, 0)]


def _groups(function: str, groups: Any) -> int:
    if isinstance(groups, bool) or not isinstance(groups, (int, np.integer)) or groups < 1:
        raise ValueError(f"{function}: groups must be a positive int, got {groups!r}")
    return int(groups)


def _check_channels(
    function: str, x: Any, w: Any, groups: int, in_channels: int, out_channels: int
) -> int:
    if in_channels % groups or out_channels % groups:
        raise ValueError(
            f"{function}: groups={groups} must divide both the input channels ({in_channels}) "
            f"and the output channels ({out_channels}) (x of shape {tuple(x.shape)}, w of shape "
            f"{tuple(w.shape)})"
        )
    return groups


def _kernel_dims(function: str, w: Any, layout: str) -> int:
    nd = w.ndim - 2
    if nd not in (1, 2, 3):
        raise ValueError(
            f"{function}: w of shape {tuple(w.shape)} must be {layout} with 1 to 3 spatial "
            "dimensions"
        )
    return nd


def _add_bias(y: Any, b: Any, channels: int, function: str) -> Any:
    if b is None:
        return y
    b = _array(b)
    if tuple(b.shape) != (channels,):
        raise ValueError(
            f"{function}: the bias b of shape {tuple(b.shape)} must have one entry per output "
            f"channel, shape ({channels},)"
        )
    return y + b.reshape(channels, *([1] * (y.ndim - 2)))


def conv(
    x: Any,
    w: Any,
    b: Any = None,
    stride: Any = 1,
    padding: Any = 0,
    dilation: Any = 1,
    groups: int = 1,
) -> Any:
    """The 1-, 2- or 3-D convolution (cross-correlation, as PyTorch's `conv{1,2,3}d`) of
    `x` `(batch, in_channels, *spatial)` with `w` `(out_channels, in_channels / groups,
    *kernel)`, plus the bias `b` `(out_channels,)`. The dimensionality is `w.ndim - 2`;
    `stride`, `padding` and `dilation` are ints or tuples, `padding` also "same" or "valid".

    >>> conv(np.ones((1, 1, 5)), np.ones((1, 1, 3)), padding=1)
    array([[[2., 3., 3., 3., 2.]]])
    """
    name = "conv"
    x, w = _array(x), _array(w)
    nd = _kernel_dims(name, w, "(out_channels, in_channels / groups, *kernel)")
    _check_batch(name, x, nd, f"to match w of shape {tuple(w.shape)}")
    batch, channels, *spatial = x.shape
    out_channels, per_group, *kernel = w.shape
    kernel = tuple(kernel)
    groups = _check_channels(name, x, w, _groups(name, groups), channels, out_channels)
    if per_group * groups != channels:
        raise ValueError(
            f"{name}: x of shape {tuple(x.shape)} has {channels} channels, but w of shape "
            f"{tuple(w.shape)} with groups={groups} expects {per_group * groups} "
            "(w is (out_channels, in_channels / groups, *kernel))"
        )
    stride = _ints(stride, nd, "stride", name, 1)
    dilation = _ints(dilation, nd, "dilation", name, 1)
    pads = _conv_padding(padding, nd, kernel, stride, dilation, name)
    frame = tuple(d + lo + hi for d, (lo, hi) in zip(spatial, pads))
    spans = tuple(dl * (k - 1) + 1 for k, dl in zip(kernel, dilation))
    if any(span > f for span, f in zip(spans, frame)):
        raise ValueError(
            f"{name}: the kernel (extent {spans} with dilation {dilation}) is larger than the "
            f"padded input {frame} (x of shape {tuple(x.shape)}, padding {pads}); pad the input "
            "or use a smaller kernel"
        )
    out = tuple((f - span) // s + 1 for f, span, s in zip(frame, spans, stride))
    index = _conv_index(batch, channels, frame, kernel, stride, dilation, out, groups)
    padded = _pad(x, pads)
    per_out = out_channels // groups
    k = per_group * math.prod(kernel)
    pieces = []
    for g, positions in enumerate(index):
        weights = w[g * per_out : (g + 1) * per_out] if groups > 1 else w
        pieces.append(weights.reshape(per_out, k) @ _core.gather(padded, positions))
    y = _concat_rows(pieces).reshape(out_channels, batch, *out)
    y = y.transpose(1, 0, *range(2, nd + 2))
    return _add_bias(y, b, out_channels, name)


def conv_transpose(
    x: Any,
    w: Any,
    b: Any = None,
    stride: Any = 1,
    padding: Any = 0,
    output_padding: Any = 0,
    groups: int = 1,
    dilation: Any = 1,
) -> Any:
    """The transposed convolution (the adjoint of `conv`, as PyTorch's
    `conv_transpose{1,2,3}d`) of `x` `(batch, in_channels, *spatial)` with `w`
    `(in_channels, out_channels / groups, *kernel)`, plus the bias `b` `(out_channels,)`.
    Each spatial size becomes `(n - 1) * stride - 2 * padding + dilation * (k - 1) +
    output_padding + 1`.

    >>> conv_transpose(np.ones((1, 1, 3)), np.ones((1, 1, 2)), stride=2)
    array([[[1., 1., 1., 1., 1., 1.]]])
    """
    name = "conv_transpose"
    x, w = _array(x), _array(w)
    nd = _kernel_dims(name, w, "(in_channels, out_channels / groups, *kernel)")
    _check_batch(name, x, nd, f"to match w of shape {tuple(w.shape)}")
    batch, channels, *spatial = x.shape
    in_w, per_group_out, *kernel = w.shape
    kernel = tuple(kernel)
    if in_w != channels:
        raise ValueError(
            f"{name}: x of shape {tuple(x.shape)} has {channels} channels, but w of shape "
            f"{tuple(w.shape)} expects {in_w} (w is (in_channels, out_channels / groups, *kernel))"
        )
    groups = _groups(name, groups)
    out_channels = per_group_out * groups
    _check_channels(name, x, w, groups, channels, out_channels)
    stride = _ints(stride, nd, "stride", name, 1)
    dilation = _ints(dilation, nd, "dilation", name, 1)
    pads = _ints(padding, nd, "padding", name, 0)
    extra = _ints(output_padding, nd, "output_padding", name, 0)
    if any(e >= max(s, d) for e, s, d in zip(extra, stride, dilation)):
        raise ValueError(
            f"{name}: output_padding {extra} must be smaller than the stride {stride} or the "
            f"dilation {dilation}"
        )
    frame = tuple(
        (n - 1) * s + d * (k - 1) + e + 1
        for n, s, d, k, e in zip(spatial, stride, dilation, kernel, extra)
    )
    out = tuple(f - 2 * p for f, p in zip(frame, pads))
    if any(o < 1 for o in out):
        raise ValueError(
            f"{name}: the output would have spatial shape {out} (x of shape {tuple(x.shape)}, "
            f"w of shape {tuple(w.shape)}, padding {pads}); use less padding"
        )
    index = _conv_index(
        batch, out_channels, frame, kernel, stride, dilation, tuple(spatial), groups
    )
    per_in = channels // groups
    k = per_group_out * math.prod(kernel)
    # (in_channels, batch * L): the right-hand side of each group's product.
    rows = x.reshape(batch, channels, -1).transpose(1, 0, 2).reshape(channels, -1)
    y = None
    for g, positions in enumerate(index):
        part = slice(g * per_in, (g + 1) * per_in)
        weights = w[part] if groups > 1 else w
        rhs = rows[part] if groups > 1 else rows
        cols = weights.reshape(per_in, k).T @ rhs
        piece = _core.scatter(cols, positions)
        y = piece if y is None else y + piece
    if any(pads):
        y = y[(slice(None), slice(None), *(slice(p, p + o) for p, o in zip(pads, out)))]
    return _add_bias(y, b, out_channels, name)


def _fixed(function, nd: int, position: int, what: str):
    """`function` with `nd` spatial dimensions, as PyTorch's `<function><nd>d`: its
    argument at `position` (named `what`'s first word) must have `nd + 2` dimensions."""
    name = f"{function.__name__}{nd}d"
    argument = what.split()[0]

    def call(*args, **kwargs):
        checked = args[position] if len(args) > position else kwargs[argument]
        shape = tuple(_array(checked).shape)
        if len(shape) != nd + 2:
            plural = "s" if nd != 1 else ""
            raise ValueError(f"{name}: {what.format(shape=shape, nd=nd, s=plural)}")
        return function(*args, **kwargs)

    call.__name__ = name
    call.__doc__ = f"`{function.__name__}` with {nd} spatial dimension(s), as PyTorch's."
    return call


_KERNEL = "w of shape {shape} must have {nd} spatial dimension{s}"
conv1d, conv2d, conv3d = (_fixed(conv, n, 1, _KERNEL) for n in (1, 2, 3))
conv_transpose1d, conv_transpose2d, conv_transpose3d = (
    _fixed(conv_transpose, n, 1, _KERNEL) for n in (1, 2, 3)
)


# -- pooling ---------------------------------------------------------------------------------


def _pool(
    x: Any,
    kernel_size: Any,
    stride: Any,
    padding: Any,
    dilation: Any,
    name: str,
    fill: float,
) -> tuple[Any, tuple[int, ...], tuple[int, ...]]:
    """The windows of `x`, `(batch * channels * L, K)`, the output's spatial shape, and
    the kernel."""
    x = _array(x)
    if isinstance(kernel_size, Sequence):
        nd = len(kernel_size)
        _check_batch(name, x, nd, f"to match kernel_size {tuple(kernel_size)}")
    else:
        nd = x.ndim - 2
        if nd not in (1, 2, 3):
            raise ValueError(
                f"{name}: x of shape {tuple(x.shape)} must be (batch, channels, *spatial) with 1 "
                "to 3 spatial dimensions"
            )
    kernel = _ints(kernel_size, nd, "kernel_size", name, 1)
    stride = kernel if stride is None else _ints(stride, nd, "stride", name, 1)
    dilation = _ints(dilation, nd, "dilation", name, 1)
    pads = _ints(padding, nd, "padding", name, 0)
    if any(2 * p > k for p, k in zip(pads, kernel)):
        raise ValueError(f"{name}: padding {pads} must be at most half the kernel size {kernel}")
    batch, channels, *spatial = x.shape
    frame = tuple(d + 2 * p for d, p in zip(spatial, pads))
    spans = tuple(dl * (k - 1) + 1 for k, dl in zip(kernel, dilation))
    if any(span > f for span, f in zip(spans, frame)):
        raise ValueError(
            f"{name}: the window (extent {spans}) is larger than the padded input {frame} "
            f"(x of shape {tuple(x.shape)}, padding {pads}); use a smaller kernel_size or pad"
        )
    out = tuple((f - span) // s + 1 for f, span, s in zip(frame, spans, stride))
    index = _pool_index(batch, channels, frame, kernel, stride, dilation, out)
    return _core.gather(_pad(x, [(p, p) for p in pads], fill), index), out, kernel


@functools.lru_cache(maxsize=16)
def _pool_index(
    batch: int,
    channels: int,
    frame: tuple[int, ...],
    kernel: tuple[int, ...],
    stride: tuple[int, ...],
    dilation: tuple[int, ...],
    out: tuple[int, ...],
) -> Any:
    """The gather from an array `(batch, channels, *frame)` of its windows,
    `(batch * channels * L, K)`."""
    starts, within = _window_offsets(frame, kernel, stride, dilation, out)
    planes = np.arange(batch * channels, dtype=np.intp) * math.prod(frame)
    positions = (planes[:, None] + starts).reshape(-1)[:, None] + within
    return _core.GatherIndex((batch, channels, *frame), positions)


def max_pool(
    x: Any, kernel_size: Any, stride: Any = None, padding: Any = 0, dilation: Any = 1
) -> Any:
    """The maximum over each window (as PyTorch's `max_pool{1,2,3}d`; padding is `-inf`).
    Tied maxima share the gradient equally (PyTorch gives it to one of them).

    >>> max_pool(np.arange(8.0).reshape(1, 1, 8), 2)
    array([[[1., 3., 5., 7.]]])
    """
    windows, out, _ = _pool(x, kernel_size, stride, padding, dilation, "max_pool", -np.inf)
    return windows.max(axis=1).reshape(*_array(x).shape[:2], *out)


def avg_pool(
    x: Any,
    kernel_size: Any,
    stride: Any = None,
    padding: Any = 0,
    count_include_pad: bool = True,
) -> Any:
    """The mean over each window (as PyTorch's `avg_pool{1,2,3}d`): padding counts as
    zeros, unless `count_include_pad=False`.

    >>> avg_pool(np.arange(8.0).reshape(1, 1, 8), 2)
    array([[[0.5, 2.5, 4.5, 6.5]]])
    """
    x = _array(x)
    windows, out, _ = _pool(x, kernel_size, stride, padding, 1, "avg_pool", 0.0)
    shape = (*x.shape[:2], *out)
    if count_include_pad or not np.any(padding):
        return windows.mean(axis=1).reshape(shape)
    ones = np.ones((1, 1, *x.shape[2:]), dtype=x.dtype)
    counts, _, _ = _pool(ones, kernel_size, stride, padding, 1, "avg_pool", 0.0)
    counts = np.asarray(counts).sum(axis=1).reshape(1, 1, *out)
    return windows.sum(axis=1).reshape(shape) / counts


def maxpool(x: Any, k: Any, pad: Any = 0, stride: Any = None) -> Any:
    """NNlib's `maxpool(x, k; pad, stride)`: `max_pool(x, k, stride, pad)`."""
    return max_pool(x, k, stride, pad)


def meanpool(x: Any, k: Any, pad: Any = 0, stride: Any = None) -> Any:
    """NNlib's `meanpool(x, k; pad, stride)`: `avg_pool(x, k, stride, pad)`."""
    return avg_pool(x, k, stride, pad)


_BATCH = "x of shape {shape} must be (batch, channels, *spatial) with {nd} spatial dimension{s}"


max_pool1d, max_pool2d, max_pool3d = (_fixed(max_pool, n, 0, _BATCH) for n in (1, 2, 3))
avg_pool1d, avg_pool2d, avg_pool3d = (_fixed(avg_pool, n, 0, _BATCH) for n in (1, 2, 3))


# -- dropout, embedding, one_hot -------------------------------------------------------------


def dropout(
    x: Any,
    p: float,
    rng: np.random.Generator | None = None,
    training: bool = True,
    axis: Any = None,
) -> Any:
    """`x` with each element zeroed with probability `p` and the rest scaled by
    `1 / (1 - p)`; the identity when not `training`. With `axis` (NNlib's `dims`), one
    mask value per index along those axes, shared along the others. Random numbers come
    from `rng`, a `numpy.random.Generator` (a fresh one when None).

    >>> x = np.ones((2, 3))
    >>> y = dropout(x, 0.5, rng=np.random.default_rng(0), axis=0)
    >>> bool(np.all((y == 0) | (y == 2))), bool(np.all(y == y[:, :1]))
    (True, True)
    """
    if not 0 <= p < 1:
        raise ValueError(
            f"dropout: p must be in [0, 1), got {p}; p = 1 would zero everything (scale by 0 "
            "instead)"
        )
    x = _array(x)
    if not training or p == 0:
        return x
    if rng is None:
        rng = np.random.default_rng()
    elif not isinstance(rng, np.random.Generator):
        raise TypeError(
            f"dropout: rng must be a numpy.random.Generator (np.random.default_rng(seed)), "
            f"got {type(rng).__name__}"
        )
    shape = tuple(x.shape)
    if axis is None:
        mask_shape = shape
    else:
        axes = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
        for a in axes:
            if not -len(shape) <= a < len(shape):
                raise ValueError(f"dropout: axis {a} is out of bounds for x of shape {shape}")
        kept = {a % len(shape) for a in axes}
        mask_shape = tuple(d if k in kept else 1 for k, d in enumerate(shape))
    keep = rng.random(mask_shape) >= p
    return x * _constant(keep / (1.0 - p), x)


def _indices(indices: Any, function: str) -> np.ndarray:
    if _core.istracked(indices):
        raise TypeError(f"{function}: indices cannot be tracked; pass integer indices")
    idx = np.asarray(indices)
    if idx.dtype.kind not in "iu":
        raise TypeError(
            f"{function}: indices must be integers, got an array of dtype {idx.dtype}; "
            "convert them with .astype(int)"
        )
    return idx


def embedding(indices: Any, weight: Any) -> Any:
    """The rows of `weight` `(num_embeddings, dim)` at integer `indices` (any shape), of
    shape `indices.shape + (dim,)`. The gradient adds into the rows read (repeats
    accumulate).

    >>> embedding(np.array([2, 0]), np.arange(6.0).reshape(3, 2))
    array([[4., 5.],
           [0., 1.]])
    """
    idx = _indices(indices, "embedding")
    weight = _array(weight)
    if weight.ndim != 2:
        raise ValueError(
            f"embedding: weight of shape {tuple(weight.shape)} must be 2-D, "
            "(num_embeddings, embedding_dim)"
        )
    rows = weight.shape[0]
    if idx.size and (idx.min() < 0 or idx.max() >= rows):
        bad = idx.min() if idx.min() < 0 else idx.max()
        raise IndexError(
            f"embedding: index {bad} is out of range for weight of shape {tuple(weight.shape)}; "
            f"indices must be in [0, {rows})"
        )
    return weight[idx]


def one_hot(indices: Any, num_classes: int | None = None, dtype: Any = np.float64) -> np.ndarray:
    """A plain array of shape `indices.shape + (num_classes,)`: 1 at each index, else 0
    (float64 by default; PyTorch's is int64). `num_classes` defaults to `max + 1`.

    >>> one_hot(np.array([1, 0]), 3)
    array([[0., 1., 0.],
           [1., 0., 0.]])
    """
    idx = _indices(indices, "one_hot")
    if num_classes is None or num_classes == -1:
        num_classes = int(idx.max()) + 1 if idx.size else 0
    if idx.size and (idx.min() < 0 or idx.max() >= num_classes):
        raise ValueError(
            f"one_hot: indices must be in [0, {num_classes}), got values from {idx.min()} to "
            f"{idx.max()}; pass a larger num_classes"
        )
    return (idx[..., None] == np.arange(num_classes)).astype(dtype)
