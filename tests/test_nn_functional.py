"""tracker.nn.functional: every function against PyTorch's torch.nn.functional (values and
gradients, float64 and float32), first and second order against finite differences,
kinks, and bad input.

Each case is a function of its float64 inputs, reduced to a scalar by `loss` (not
linear in the output, so the second-order checks run every pullback backwards).
"""

import doctest
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

import tracker as tr
import tracker.nn.functional as nnf
from tracker.testing import gradcheck, gradgradcheck

rng = np.random.default_rng(20260516)


def normal(*shape: int) -> np.ndarray:
    return rng.standard_normal(shape)


def nonzero(*shape: int) -> np.ndarray:
    """Values at least 0.2 away from 0 (the kinks of relu and friends)."""
    return rng.choice([-1.0, 1.0], shape) * rng.uniform(0.2, 2.0, shape)


def distinct(*shape: int) -> np.ndarray:
    """Values at least 0.1 apart, so that no window of max_pool ties within a difference step."""
    n = int(np.prod(shape))
    return ((rng.permutation(n) - n / 2) * 0.1 + rng.uniform(0, 0.02, n)).reshape(shape)


def weights(shape: tuple[int, ...]) -> np.ndarray:
    return np.random.default_rng(len(shape) + sum(shape)).uniform(0.5, 1.5, shape)


def loss(y: Any) -> Any:
    """sum(w·y + y²/2): its Hessian reaches every output."""
    w = weights(tuple(y.shape)).astype(y.dtype)
    return np.sum(w * y + 0.5 * y * y)


def torch_loss(torch: Any, y: Any) -> Any:
    w = torch.tensor(weights(tuple(y.shape)), dtype=y.dtype)
    return torch.sum(w * y + 0.5 * y * y)


@dataclass(frozen=True)
class Case:
    label: str
    fn: Callable[..., Any]  # of tracked (or plain) arrays
    torch_fn: Callable[..., Any]  # fn(F, torch, *tensors)
    inputs: tuple[np.ndarray, ...]
    second_order: bool = True  # small enough for gradgradcheck


def case(label, fn, torch_fn, *inputs, second_order=True):
    return Case(label, fn, torch_fn, tuple(np.asarray(x, np.float64) for x in inputs), second_order)


X = normal(3, 4)
SPREAD = 4 * normal(3, 5)
NZ = nonzero(3, 4)
NEAR_BOUNDS = np.array([[-1.2, -0.7, -0.3, 0.0], [0.2, 0.5, 0.9, 1.4]])

# fmt: off
CASES = [
    # activations
    case("relu",          nnf.relu,                         lambda F, t, x: F.relu(x), NZ),
    case("leaky_relu",    nnf.leaky_relu,                   lambda F, t, x: F.leaky_relu(x), NZ),
    case("leaky_relu-0.2", lambda x: nnf.leaky_relu(x, 0.2),
         lambda F, t, x: F.leaky_relu(x, 0.2), NZ),
    case("elu",           nnf.elu,                          lambda F, t, x: F.elu(x), NZ),
    case("elu-alpha", lambda x: nnf.elu(x, alpha=0.5), lambda F, t, x: F.elu(x, alpha=0.5), NZ),
    case("selu",          nnf.selu,                         lambda F, t, x: F.selu(x), NZ),
    case("gelu",          nnf.gelu,                         lambda F, t, x: F.gelu(x), SPREAD),
    case("gelu-tanh",     lambda x: nnf.gelu(x, approximate="tanh"),
         lambda F, t, x: F.gelu(x, approximate="tanh"), SPREAD),
    case("sigmoid",       nnf.sigmoid,                      lambda F, t, x: t.sigmoid(x), SPREAD),
    case("logsigmoid", nnf.logsigmoid, lambda F, t, x: F.logsigmoid(x), SPREAD),
    case("softplus",      nnf.softplus,                     lambda F, t, x: F.softplus(x), SPREAD),
    case("softplus-beta", lambda x: nnf.softplus(x, beta=2.0, threshold=3.0),
         lambda F, t, x: F.softplus(x, beta=2.0, threshold=3.0), SPREAD),
    case("silu",          nnf.silu,                         lambda F, t, x: F.silu(x), SPREAD),
    case("hardtanh",      nnf.hardtanh,                     lambda F, t, x: F.hardtanh(x), 2 * NZ),
    case("hardtanh-bounds", lambda x: nnf.hardtanh(x, -0.5, 0.7),
         lambda F, t, x: F.hardtanh(x, -0.5, 0.7), NEAR_BOUNDS),
    # softmax
    case("softmax",       nnf.softmax,                      lambda F, t, x: F.softmax(x, -1), X),
    case("softmax-axis0", lambda x: nnf.softmax(x, axis=0), lambda F, t, x: F.softmax(x, 0), X),
    case("softmax-large", lambda x: nnf.softmax(x + 1000.0, axis=1),
         lambda F, t, x: F.softmax(x + 1000.0, 1), X),
    case("logsoftmax", nnf.logsoftmax, lambda F, t, x: F.log_softmax(x, -1), X),
    case("log_softmax-axis0", lambda x: nnf.log_softmax(x - 1000.0, axis=0),
         lambda F, t, x: F.log_softmax(x - 1000.0, 0), X),
    case("logsumexp", nnf.logsumexp, lambda F, t, x: t.logsumexp(x, (0, 1)), X),
    case("logsumexp-axis", lambda x: nnf.logsumexp(x + 800.0, axis=1),
         lambda F, t, x: t.logsumexp(x + 800.0, 1), X),
    case("logsumexp-keepdims", lambda x: nnf.logsumexp(x, axis=(0, 2), keepdims=True),
         lambda F, t, x: t.logsumexp(x, (0, 2), keepdim=True), normal(2, 3, 4)),
    # convolution
    case("conv1d",        lambda x, w: nnf.conv(x, w),      lambda F, t, x, w: F.conv1d(x, w),
         normal(2, 3, 7), normal(4, 3, 3)),
    case("conv1d-all",
         lambda x, w, b: nnf.conv1d(x, w, b, stride=2, padding=2, dilation=2, groups=2),
         lambda F, t, x, w, b: F.conv1d(x, w, b, stride=2, padding=2, dilation=2, groups=2),
         normal(2, 4, 9), normal(6, 2, 3), normal(6)),
    case("conv1d-same",   lambda x, w: nnf.conv(x, w, padding="same", dilation=2),
         lambda F, t, x, w: F.conv1d(x, w, padding="same", dilation=2),
         normal(1, 2, 8), normal(3, 2, 4)),
    case("conv2d",        lambda x, w, b: nnf.conv(x, w, b, padding=1),
         lambda F, t, x, w, b: F.conv2d(x, w, b, padding=1), normal(2, 3, 5, 4), normal(2, 3, 3, 3),
         normal(2)),
    case("conv2d-tuples",
         lambda x, w: nnf.conv2d(x, w, stride=(2, 1), padding=(0, 2), dilation=(1, 2)),
         lambda F, t, x, w: F.conv2d(x, w, stride=(2, 1), padding=(0, 2), dilation=(1, 2)),
         normal(2, 2, 6, 5), normal(3, 2, 2, 3)),
    case("conv2d-groups", lambda x, w: nnf.conv(x, w, groups=3, stride=2),
         lambda F, t, x, w: F.conv2d(x, w, groups=3, stride=2),
         normal(1, 6, 5, 5), normal(6, 2, 2, 2)),
    case("conv2d-depthwise", lambda x, w: nnf.conv(x, w, groups=2, padding="valid"),
         lambda F, t, x, w: F.conv2d(x, w, groups=2), normal(2, 2, 4, 4), normal(4, 1, 3, 2)),
    case("conv2d-same",   lambda x, w: nnf.conv(x, w, padding="same"),
         lambda F, t, x, w: F.conv2d(x, w, padding="same"), normal(1, 2, 4, 5), normal(2, 2, 2, 3)),
    case("conv3d",        lambda x, w, b: nnf.conv3d(x, w, b, stride=(1, 2, 1), padding=(1, 0, 1)),
         lambda F, t, x, w, b: F.conv3d(x, w, b, stride=(1, 2, 1), padding=(1, 0, 1)),
         normal(1, 2, 3, 4, 3), normal(2, 2, 2, 2, 2), normal(2)),
    case("conv_transpose1d", lambda x, w, b: nnf.conv_transpose(x, w, b, stride=2, padding=1,
                                                                output_padding=1),
         lambda F, t, x, w, b: F.conv_transpose1d(x, w, b, stride=2, padding=1, output_padding=1),
         normal(2, 3, 4), normal(3, 2, 3), normal(2)),
    case("conv_transpose2d", lambda x, w: nnf.conv_transpose(x, w),
         lambda F, t, x, w: F.conv_transpose2d(x, w), normal(2, 3, 3, 2), normal(3, 2, 2, 3)),
    case("conv_transpose2d-all",
         lambda x, w, b: nnf.conv_transpose2d(x, w, b, stride=(2, 3), padding=(1, 0),
                                              output_padding=(1, 2), groups=2, dilation=(1, 2)),
         lambda F, t, x, w, b: F.conv_transpose2d(x, w, b, stride=(2, 3), padding=(1, 0),
                                                  output_padding=(1, 2), groups=2, dilation=(1, 2)),
         normal(1, 4, 3, 2), normal(4, 1, 3, 2), normal(2)),
    case("conv_transpose3d", lambda x, w: nnf.conv_transpose3d(x, w, stride=2, padding=(0, 1, 0)),
         lambda F, t, x, w: F.conv_transpose3d(x, w, stride=2, padding=(0, 1, 0)),
         normal(1, 2, 2, 3, 2), normal(2, 1, 2, 3, 2)),
    # pooling
    case("max_pool1d",    lambda x: nnf.max_pool(x, 2),     lambda F, t, x: F.max_pool1d(x, 2),
         distinct(2, 3, 8)),
    case("max_pool2d",    lambda x: nnf.max_pool2d(x, (3, 2), stride=2, padding=1),
         lambda F, t, x: F.max_pool2d(x, (3, 2), stride=2, padding=1), distinct(2, 2, 5, 6)),
    case("max_pool2d-dilation", lambda x: nnf.max_pool(x, 2, stride=1, dilation=2),
         lambda F, t, x: F.max_pool2d(x, 2, stride=1, dilation=2), distinct(1, 2, 5, 5)),
    case("max_pool3d",    lambda x: nnf.max_pool3d(x, 2, stride=(1, 2, 2)),
         lambda F, t, x: F.max_pool3d(x, 2, stride=(1, 2, 2)), distinct(1, 2, 3, 4, 4)),
    case("maxpool",       lambda x: nnf.maxpool(x, (2, 2)), lambda F, t, x: F.max_pool2d(x, 2),
         distinct(2, 2, 4, 6)),
    case("avg_pool1d",    lambda x: nnf.avg_pool(x, 3, stride=2, padding=1),
         lambda F, t, x: F.avg_pool1d(x, 3, stride=2, padding=1), normal(2, 3, 8)),
    case("avg_pool2d",    lambda x: nnf.avg_pool2d(x, 2), lambda F, t, x: F.avg_pool2d(x, 2),
         normal(2, 2, 4, 6)),
    case("avg_pool2d-exclude-pad",
         lambda x: nnf.avg_pool(x, 3, stride=2, padding=1, count_include_pad=False),
         lambda F, t, x: F.avg_pool2d(x, 3, stride=2, padding=1, count_include_pad=False),
         normal(1, 2, 5, 6)),
    case("avg_pool3d",    lambda x: nnf.avg_pool3d(x, (2, 1, 2)),
         lambda F, t, x: F.avg_pool3d(x, (2, 1, 2)), normal(1, 2, 4, 3, 4)),
    case("meanpool", lambda x: nnf.meanpool(x, (2, 3)), lambda F, t, x: F.avg_pool2d(x, (2, 3)),
         normal(2, 1, 4, 6)),
    # embedding
    case("embedding",     lambda w: nnf.embedding(np.array([[0, 2, 2], [3, 0, 2]]), w),
         lambda F, t, w: F.embedding(t.tensor([[0, 2, 2], [3, 0, 2]]), w), normal(4, 3)),
    # a small network: conv, activation, pooling, softmax
    case("network",
         lambda x, w: nnf.logsoftmax(nnf.max_pool(nnf.gelu(nnf.conv(x, w, padding=1)), 2), axis=1),
         lambda F, t, x, w: F.log_softmax(F.max_pool2d(F.gelu(F.conv2d(x, w, padding=1)), 2), 1),
         normal(2, 2, 4, 4), normal(3, 2, 3, 3), second_order=False),
]
# fmt: on


def scalar_loss(c: Case) -> Callable[..., Any]:
    return lambda *xs: loss(c.fn(*xs))


def torch_values(torch: Any, c: Case, dtype: Any) -> tuple[np.ndarray, list[np.ndarray]]:
    F = torch.nn.functional
    tensors = [torch.tensor(x.astype(dtype), requires_grad=True) for x in c.inputs]
    y = c.torch_fn(F, torch, *tensors)
    grads = torch.autograd.grad(torch_loss(torch, y), tensors)
    return y.detach().numpy(), [g.numpy() for g in grads]


# PyTorch warns that its 'same' padding with an even kernel copies the input.
torch_same_padding = pytest.mark.filterwarnings("ignore:Using padding='same'")


@torch_same_padding
@pytest.mark.parametrize("c", CASES, ids=lambda c: c.label)
def test_against_torch_float64(c: Case, torch: Any) -> None:
    expected, expected_grads = torch_values(torch, c, np.float64)
    params = [tr.param(x) for x in c.inputs]
    y = c.fn(*params)
    assert tr.istracked(y)
    assert y.dtype == np.float64
    np.testing.assert_allclose(tr.data(y), expected, rtol=1e-12, atol=1e-12)
    tr.back(loss(y))
    for p, g in zip(params, expected_grads, strict=True):
        np.testing.assert_allclose(tr.grad(p), g, rtol=1e-10, atol=1e-12)


@torch_same_padding
@pytest.mark.parametrize("c", CASES, ids=lambda c: c.label)
def test_against_torch_float32(c: Case, torch: Any) -> None:
    expected, expected_grads = torch_values(torch, c, np.float32)
    inputs = [x.astype(np.float32) for x in c.inputs]
    y = c.fn(*(tr.param(x) for x in inputs))
    assert y.dtype == np.float32
    scale = 1 + np.abs(expected).max()
    np.testing.assert_allclose(tr.data(y), expected, rtol=1e-4, atol=1e-5 * scale)
    grads = tr.gradient(scalar_loss(c), *inputs)
    for g, e in zip(grads, expected_grads, strict=True):
        assert g.dtype == np.float32
        np.testing.assert_allclose(g, e, rtol=1e-3, atol=1e-4 * (1 + np.abs(e).max()))


@pytest.mark.parametrize("c", CASES, ids=lambda c: c.label)
def test_plain_arrays_give_the_same_values(c: Case) -> None:
    """On NumPy arrays the functions compute the same values, untracked."""
    y = c.fn(*c.inputs)
    assert not tr.istracked(y)
    np.testing.assert_allclose(y, tr.data(c.fn(*(tr.param(x) for x in c.inputs))), rtol=1e-15)


@pytest.mark.parametrize("c", CASES, ids=lambda c: c.label)
def test_first_order(c: Case) -> None:
    assert gradcheck(scalar_loss(c), *c.inputs, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("c", [c for c in CASES if c.second_order], ids=lambda c: c.label)
def test_second_order(c: Case) -> None:
    assert gradgradcheck(scalar_loss(c), *c.inputs, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize(
    "label",
    ["relu", "sigmoid", "gelu", "softmax", "conv2d", "conv_transpose2d", "max_pool2d"],
)
def test_second_order_against_torch(label: str, torch: Any) -> None:
    """The Hessian of the loss in the first input, from tracker and from PyTorch."""
    c = next(c for c in CASES if c.label == label)
    first, rest = c.inputs[0], c.inputs[1:]
    F = torch.nn.functional
    rest_t = [torch.tensor(r) for r in rest]

    def f(z: Any) -> Any:
        return torch_loss(torch, c.torch_fn(F, torch, z.reshape(first.shape), *rest_t))

    expected = torch.autograd.functional.hessian(f, torch.tensor(first.reshape(-1))).numpy()
    hessian = tr.hessian(lambda z: loss(c.fn(z.reshape(first.shape), *rest)), first.reshape(-1))
    np.testing.assert_allclose(hessian, expected, rtol=1e-10, atol=1e-12)


# -- kinks: PyTorch's conventions --------------------------------------------------------------


# fmt: off
KINKS = [
    ("relu", nnf.relu, lambda F, x: F.relu(x), [-1, 0, 2]),
    ("leaky_relu", lambda x: nnf.leaky_relu(x, 0.1), lambda F, x: F.leaky_relu(x, 0.1), [-1, 0, 2]),
    ("elu", lambda x: nnf.elu(x, 2.0), lambda F, x: F.elu(x, 2.0), [-1, 0, 2]),
    ("selu", nnf.selu, lambda F, x: F.selu(x), [-1, 0, 2]),
    ("hardtanh",   lambda x: nnf.hardtanh(x, -0.5, 0.5),  lambda F, x: F.hardtanh(x, -0.5, 0.5),
     [-1, -0.5, 0, 0.5, 1]),
    ("softplus", lambda x: nnf.softplus(x, 1.0, 2.0), lambda F, x: F.softplus(x, 1.0, 2.0),
     [1.0, 2.0, 3.0]),
]
# fmt: on


@pytest.mark.parametrize(("label", "fn", "torch_fn", "x"), KINKS, ids=[k[0] for k in KINKS])
def test_kink_gradients_match_torch(label, fn, torch_fn, x, torch: Any) -> None:
    x = np.asarray(x, dtype=np.float64)
    t = torch.tensor(x, requires_grad=True)
    (expected,) = torch.autograd.grad(torch_fn(torch.nn.functional, t).sum(), t)
    (g,) = tr.gradient(lambda x: np.sum(fn(x)), x)
    np.testing.assert_allclose(g, expected.numpy(), rtol=1e-15, atol=0)


def test_kink_gradients_by_hand() -> None:
    x = np.array([-1.0, 0.0, 2.0])
    assert list(tr.gradient(lambda x: np.sum(nnf.relu(x)), x)[0]) == [0, 0, 1]
    assert list(tr.gradient(lambda x: np.sum(nnf.leaky_relu(x, 0.1)), x)[0]) == [0.1, 0.1, 1]
    assert tr.gradient(lambda x: np.sum(nnf.elu(x, 2.0)), x)[0][1] == 2.0
    g = tr.gradient(lambda x: np.sum(nnf.hardtanh(x)), np.array([-1.0, 0.0, 1.0]))[0]
    assert list(g) == [0, 1, 0]  # np.clip would pass the gradient at the bounds


def test_max_pool_ties_share_the_gradient() -> None:
    """PyTorch gives a tied maximum's gradient to one element; tracker shares it."""
    x = np.array([[[1.0, 3.0, 3.0, 0.0]]])
    (g,) = tr.gradient(lambda x: np.sum(nnf.max_pool(x, 2)), x)
    np.testing.assert_array_equal(g, [[[0.0, 1.0, 1.0, 0.0]]])  # one 3 in each window
    (g,) = tr.gradient(lambda x: np.sum(nnf.max_pool(x, 4)), x)
    np.testing.assert_array_equal(g, [[[0.0, 0.5, 0.5, 0.0]]])


def test_stable_at_extremes() -> None:
    x = np.array([-1000.0, -50.0, 0.0, 50.0, 1000.0])
    for f in (nnf.sigmoid, nnf.logsigmoid, nnf.softplus, nnf.silu, nnf.gelu, nnf.elu, nnf.selu):
        y = tr.data(f(tr.param(x)))
        (g,) = tr.gradient(lambda x, f=f: np.sum(f(x)), x)
        assert np.isfinite(y).all() and np.isfinite(g).all(), f.__name__
    np.testing.assert_allclose(
        tr.data(nnf.logsigmoid(tr.param(x))), np.minimum(x, 0) - np.log1p(np.exp(-np.abs(x)))
    )
    big = np.array([[1000.0, 1000.0, -1000.0]])
    np.testing.assert_allclose(nnf.softmax(big), [[0.5, 0.5, 0.0]])
    np.testing.assert_allclose(nnf.logsumexp(big), 1000.0 + np.log(2.0))
    (g,) = tr.gradient(lambda x: nnf.logsumexp(x), big)
    np.testing.assert_allclose(g, [[0.5, 0.5, 0.0]])


def test_softmax_of_an_all_minus_inf_row_is_nan_free_elsewhere() -> None:
    x = np.array([[-np.inf, -np.inf], [0.0, 1.0]])
    with np.errstate(invalid="ignore"):
        y = nnf.softmax(x)
    np.testing.assert_allclose(y[1], np.exp([0.0, 1.0]) / np.exp([0.0, 1.0]).sum())


# -- conv_transpose is the adjoint of conv ---------------------------------------------------


@pytest.mark.parametrize(
    "kw",
    [
        {},
        {"stride": 2},
        {"stride": (2, 1), "padding": (1, 0), "dilation": (1, 2)},
        {"stride": 2, "padding": 1, "groups": 2},
    ],
    ids=str,
)
def test_conv_transpose_is_the_adjoint_of_conv(kw: dict) -> None:
    """<conv(x, w), y> = <x, conv_transpose(y, w)>, with the same w, for the x whose
    convolution has y's shape."""
    x, w = normal(2, 4, 7, 6), normal(6, 4 // kw.get("groups", 1), 3, 2)
    cx = nnf.conv(x, w, **kw)
    y = normal(*cx.shape)
    extra = tuple(
        np.array(x.shape[2:]) - nnf.conv_transpose(y, w, **kw).shape[2:]
    )  # output_padding recovers sizes the stride rounds away
    back = nnf.conv_transpose(y, w, output_padding=extra, **kw)
    assert back.shape == x.shape
    np.testing.assert_allclose(np.sum(cx * y), np.sum(x * back), rtol=1e-12)


# -- dropout, embedding, one_hot --------------------------------------------------------------


def test_dropout_masks_and_scales() -> None:
    x = np.ones((200, 50))
    y = nnf.dropout(x, 0.3, rng=np.random.default_rng(1))
    assert set(np.unique(y)) <= {0.0, 1 / 0.7}
    assert abs((y == 0).mean() - 0.3) < 0.02
    again = nnf.dropout(x, 0.3, rng=np.random.default_rng(1))
    np.testing.assert_array_equal(y, again)


def test_dropout_gradient_is_the_mask() -> None:
    x = normal(4, 5)
    p = tr.param(x)
    y = nnf.dropout(p, 0.5, rng=np.random.default_rng(3))
    tr.back(np.sum(y))
    scale = tr.data(y) / x
    np.testing.assert_allclose(tr.grad(p), scale, rtol=1e-15)
    assert set(np.unique(np.round(scale, 12))) <= {0.0, 2.0}


def test_dropout_axis_shares_the_mask_along_the_other_axes() -> None:
    x = np.ones((6, 4, 3))
    y = nnf.dropout(x, 0.5, rng=np.random.default_rng(0), axis=(0, 2))
    assert (y == y[:, :1, :]).all()
    y = nnf.dropout(x, 0.5, axis=None, rng=np.random.default_rng(0))
    assert not (y == y[:, :1, :]).all()
    y = nnf.dropout(x, 0.5, rng=np.random.default_rng(0), axis=-1)
    assert (y == y[:1, :1, :]).all()


def test_dropout_identity_when_not_training_or_p_zero() -> None:
    x = tr.param(normal(3))
    assert nnf.dropout(x, 0.5, training=False) is x
    assert nnf.dropout(x, 0.0) is x
    y = nnf.dropout(np.ones(1000, dtype=np.float32), 0.5, rng=np.random.default_rng(0))
    assert y.dtype == np.float32


@pytest.mark.parametrize("p", [-0.1, 1.0, 1.5])
def test_dropout_refuses_p_outside_0_1(p: float) -> None:
    with pytest.raises(ValueError, match=r"dropout: p must be in \[0, 1\)"):
        nnf.dropout(np.ones(3), p)


def test_dropout_refuses_a_legacy_random_state() -> None:
    with pytest.raises(TypeError, match=r"dropout: rng must be a numpy\.random\.Generator"):
        nnf.dropout(np.ones(3), 0.5, rng=np.random.RandomState(0))


def test_embedding_repeats_accumulate() -> None:
    w = normal(4, 3)
    idx = np.array([[1, 1], [3, 1]])
    (g,) = tr.gradient(lambda w: np.sum(nnf.embedding(idx, w)), w)
    np.testing.assert_array_equal(g, [[0, 0, 0], [3, 3, 3], [0, 0, 0], [1, 1, 1]])


def test_one_hot_matches_torch(torch: Any) -> None:
    idx = np.array([[0, 2], [1, 4]])
    expected = torch.nn.functional.one_hot(torch.tensor(idx), 5).numpy()
    np.testing.assert_array_equal(nnf.one_hot(idx, 5), expected)
    np.testing.assert_array_equal(nnf.one_hot(idx), expected)
    assert nnf.one_hot(idx, 5).dtype == np.float64
    assert nnf.one_hot(idx, 5, dtype=np.float32).dtype == np.float32
    assert not tr.istracked(nnf.one_hot(idx, 5))


# -- the signatures Tracker.jl's ported tests call ------------------------------------------------


def test_tracker_jl_signatures() -> None:
    x = normal(2, 3, 6, 6)
    assert nnf.softmax(normal(3, 4), axis=0).shape == (3, 4)
    assert nnf.logsoftmax(normal(3, 4), axis=1).shape == (3, 4)
    assert nnf.dropout(x, 0.1, axis=None, rng=np.random.default_rng(0)).shape == x.shape
    y = nnf.conv(x, normal(4, 3, 3, 3), groups=1)
    assert y.shape == (2, 4, 4, 4)
    assert nnf.conv_transpose(y, normal(4, 3, 3, 3)).shape == x.shape
    assert nnf.maxpool(x, (2, 2)).shape == (2, 3, 3, 3)
    assert nnf.meanpool(x, (3, 3)).shape == (2, 3, 2, 2)
    assert tr.nn.functional is nnf


# -- bad input: the message names the function, the shapes and the remedy ------------------------


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (
            lambda: nnf.conv(np.ones((1, 2, 5, 5)), np.ones((4, 3, 3, 3))),
            ValueError,
            r"conv: x of shape \(1, 2, 5, 5\) has 2 channels, but w of shape \(4, 3, 3, 3\)",
        ),
        (
            lambda: nnf.conv(np.ones((1, 6, 5, 5)), np.ones((4, 3, 3, 3)), groups=4),
            ValueError,
            r"conv: groups=4 must divide both the input channels \(6\) and the output channels "
            r"\(4\)",
        ),
        (
            lambda: nnf.conv(np.ones((1, 2, 5)), np.ones((2, 2, 3)), groups=0),
            ValueError,
            r"conv: groups must be a positive int, got 0",
        ),
        (
            lambda: nnf.conv_transpose(np.ones((1, 2, 5)), np.ones((2, 2, 3)), groups=1.5),
            ValueError,
            r"conv_transpose: groups must be a positive int, got 1.5",
        ),
        (
            lambda: nnf.conv(np.ones((1, 1, 2, 5)), np.ones((1, 1, 3, 3))),
            ValueError,
            r"conv: the kernel .* is larger than the padded input \(2, 5\) .*pad the input",
        ),
        (
            lambda: nnf.conv(np.ones((1, 1, 5)), np.ones((1, 1, 3, 3))),
            ValueError,
            r"conv: x of shape \(1, 1, 5\) must be \(batch, channels, \*spatial\) with 2 spatial "
            r"dimensions .*x\[None\]",
        ),
        (
            lambda: nnf.conv(np.ones((1, 1, 5)), np.ones((1, 3))),
            ValueError,
            r"conv: w of shape \(1, 3\) must be \(out_channels, in_channels / groups, \*kernel\)",
        ),
        (
            lambda: nnf.conv(np.ones((1, 1, 5, 5)), np.ones((1, 1, 3, 3)), stride=(1, 2, 3)),
            ValueError,
            r"conv: stride \(1, 2, 3\) has 3 entries for 2 spatial dimensions",
        ),
        (
            lambda: nnf.conv(np.ones((1, 1, 5)), np.ones((1, 1, 3)), stride=0),
            ValueError,
            r"conv: stride must be at least 1",
        ),
        (
            lambda: nnf.conv(np.ones((1, 1, 5)), np.ones((1, 1, 3)), padding="same", stride=2),
            ValueError,
            r"conv: padding='same' needs stride 1",
        ),
        (
            lambda: nnf.conv(np.ones((1, 1, 5)), np.ones((1, 1, 3)), padding="full"),
            ValueError,
            r"conv: padding must be an int, a tuple of ints, 'same' or 'valid'",
        ),
        (
            lambda: nnf.conv(np.ones((1, 2, 5)), np.ones((3, 2, 3)), np.ones(2)),
            ValueError,
            r"conv: the bias b of shape \(2,\) must have one entry per output channel, "
            r"shape \(3,\)",
        ),
        (
            lambda: nnf.conv_transpose(np.ones((1, 2, 5)), np.ones((3, 2, 3))),
            ValueError,
            r"conv_transpose: x of shape \(1, 2, 5\) has 2 channels, but w of shape \(3, 2, 3\) "
            r"expects 3",
        ),
        (
            lambda: nnf.conv_transpose(np.ones((1, 3, 5)), np.ones((3, 2, 3)), groups=2),
            ValueError,
            r"conv_transpose: groups=2 must divide both the input channels \(3\)",
        ),
        (
            lambda: nnf.conv_transpose(np.ones((1, 1, 5)), np.ones((1, 1, 3)), output_padding=1),
            ValueError,
            r"conv_transpose: output_padding \(1,\) must be smaller than the stride",
        ),
        (
            lambda: nnf.conv_transpose(np.ones((1, 1, 2)), np.ones((1, 1, 2)), padding=2),
            ValueError,
            r"conv_transpose: the output would have spatial shape \(-1,\) .*use less padding",
        ),
        (
            lambda: nnf.conv2d(np.ones((1, 1, 5)), np.ones((1, 1, 3))),
            ValueError,
            r"conv2d: w of shape \(1, 1, 3\) must have 2 spatial dimensions",
        ),
        (
            lambda: nnf.max_pool(np.ones((1, 1, 3, 3)), 4),
            ValueError,
            r"max_pool: the window \(extent \(4, 4\)\) is larger than the padded input \(3, 3\)",
        ),
        (
            lambda: nnf.max_pool(np.ones((1, 1, 6, 6)), 2, padding=2),
            ValueError,
            r"max_pool: padding \(2, 2\) must be at most half the kernel size \(2, 2\)",
        ),
        (
            lambda: nnf.avg_pool(np.ones((1, 6, 6)), (2, 2)),
            ValueError,
            r"avg_pool: x of shape \(1, 6, 6\) must be \(batch, channels, \*spatial\) with 2 "
            r"spatial dimensions",
        ),
        (
            lambda: nnf.max_pool2d(np.ones((1, 1, 6)), 2),
            ValueError,
            r"max_pool2d: x of shape \(1, 1, 6\) must be",
        ),
        (
            lambda: nnf.gelu(np.ones(2), approximate="erf"),
            ValueError,
            r"gelu: approximate must be 'none' or 'tanh'",
        ),
        (
            lambda: nnf.hardtanh(np.ones(2), 1.0, -1.0),
            ValueError,
            r"hardtanh: min_val 1.0 is greater than max_val -1.0",
        ),
        (
            lambda: nnf.embedding(np.array([0, 4]), np.ones((4, 2))),
            IndexError,
            r"embedding: index 4 is out of range for weight of shape \(4, 2\); indices must be in "
            r"\[0, 4\)",
        ),
        (
            lambda: nnf.embedding(np.array([0.0]), np.ones((4, 2))),
            TypeError,
            r"embedding: indices must be integers, got an array of dtype float64",
        ),
        (
            lambda: nnf.embedding(tr.param([0.0]), np.ones((4, 2))),
            TypeError,
            r"embedding: indices cannot be tracked",
        ),
        (
            lambda: nnf.embedding(np.array([0]), np.ones(4)),
            ValueError,
            r"embedding: weight of shape \(4,\) must be 2-D",
        ),
        (
            lambda: nnf.one_hot(np.array([0, 3]), 3),
            ValueError,
            r"one_hot: indices must be in \[0, 3\), got values from 0 to 3; pass a larger",
        ),
        (
            lambda: nnf.dropout(np.ones((2, 2)), 0.5, axis=2),
            ValueError,
            r"dropout: axis 2 is out of bounds for x of shape \(2, 2\)",
        ),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_bad_input(call: Callable[[], Any], error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        call()


def test_docstring_examples() -> None:
    failures, _ = doctest.testmod(nnf, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert failures == 0


def test_windows_are_built_once_per_shape() -> None:
    nnf._conv_index.cache_clear()
    x, w = normal(1, 2, 5, 5), normal(3, 2, 3, 3)
    for _ in range(3):
        tr.gradient(lambda x: np.sum(nnf.conv(x, w)), x)
    assert nnf._conv_index.cache_info().hits == 2


def test_gather_index_checks_its_positions_once() -> None:
    index = tr._core.GatherIndex((2, 3), np.array([[5, 0], [1, 1]]))
    assert index.shape == (2, 2) and index.source_shape == (2, 3)
    x = normal(2, 3)
    np.testing.assert_array_equal(tr._core.gather(x, index), x.reshape(-1)[[[5, 0], [1, 1]]])
    (g,) = tr.gradient(lambda x: np.sum(tr._core.gather(x, index)), x)
    np.testing.assert_array_equal(g, [[1, 2, 0], [0, 0, 1]])
    np.testing.assert_array_equal(tr._core.scatter(np.ones((2, 2)), index), [[1, 2, 0], [0, 0, 1]])
    with pytest.raises(
        IndexError,
        match=r"GatherIndex: position 6 is out of bounds for an array "
        r"of shape \[2, 3\] \(6 elements\)",
    ):
        tr._core.GatherIndex((2, 3), np.array([6]))
    with pytest.raises(IndexError, match="position -1 is out of bounds"):
        tr._core.GatherIndex((2, 3), np.array([-1]))
    with pytest.raises(
        ValueError, match=r"getitem: planned for shape \[2, 3\], applied to \[3, 2\]"
    ):
        tr._core.gather(normal(3, 2), index)
