"""Tracker.jl's test cases that need NNlib (test/tracker.jl), against tracker.nn.functional.

The same conventions as test_tracker_jl.py (Julia line as pytest id, MAPPING.md).
NNlib's names, made Pythonic: `softmax(x, axis)`, `logsoftmax(x, axis)`,
`dropout(x, p, axis=None, rng=...)`, `conv(x, w, groups=1)`, `conv_transpose(y, w)`
(NNlib's `∇conv_data`, the gradient of `conv` with respect to its input),
`maxpool(x, window)` and `meanpool(x, window)`.

Layouts: NNlib's arrays are (spatial..., channels, batch) and its kernels
(spatial..., in, out); tracker's, as NumPy code and PyTorch write them, are
(batch, channels, spatial...) and (out, in, spatial...). The shapes below are
Julia's, reordered so.
"""

import numpy as np
import pytest

from tracker.testing import gradtest

from .julia import col, rand

nnf = pytest.importorskip("tracker.nn.functional")


def check(f, xs):
    assert gradtest(f, *xs)


# -- "gradtests 1": softmax and logsoftmax (lines 36-41) ----------------------------------
# `.*(1:3)` weights the outputs. A Julia vector broadcast against a matrix runs down its
# rows: against a 3-by-5 matrix, (1:3) is the column col(arange(1, 4)), whatever the dims.

WEIGHTS = np.arange(1.0, 4.0)


@pytest.mark.parametrize(
    ("f", "xs"),
    [
        pytest.param(lambda x: nnf.softmax(x, axis=0) * WEIGHTS, [(3,)], id="L36"),
        pytest.param(lambda x: nnf.softmax(x, axis=0) * col(WEIGHTS), [(3, 5)], id="L37"),
        pytest.param(lambda x: nnf.softmax(x, axis=1) * col(WEIGHTS), [(3, 5)], id="L38"),
        pytest.param(lambda x: nnf.logsoftmax(x, axis=0) * WEIGHTS, [(3,)], id="L39"),
        pytest.param(lambda x: nnf.logsoftmax(x, axis=0) * col(WEIGHTS), [(3, 5)], id="L40"),
        pytest.param(lambda x: nnf.logsoftmax(x, axis=1) * col(WEIGHTS), [(3, 5)], id="L41"),
    ],
)
def test_softmax(f, xs):
    check(f, xs)


# -- "gradtests 1": dropout (lines 43-45) -------------------------------------------------
# dropout(copy(RNG), x, p) draws its mask from a copy of one generator, so every call
# of the finite differences sees the same mask: here, a fresh generator of the same seed.
# NNlib's dims=1 draws one mask value per index along dimension 1, shared along the
# others: axis=0.


def fresh_rng():
    return np.random.default_rng(1)  # RNG = MersenneTwister(1)


@pytest.mark.parametrize(
    ("f", "xs"),
    [
        pytest.param(lambda x: nnf.dropout(x, 0.5, rng=fresh_rng()), [(10,)], id="L44"),
        pytest.param(lambda x: nnf.dropout(x, 0.4, axis=0, rng=fresh_rng()), [(8, 9)], id="L45"),
    ],
)
def test_dropout(f, xs):
    check(f, xs)


# -- "conv, $(spatial_rank)d" (lines 338-347) ---------------------------------------------
# x = rand(10,…,10, 3, 2), w = rand(3,…,3, 3, 3), DenseConvDims(x, w): stride 1, no
# padding. NNlib's conv flips the kernel (a true convolution); tracker's, like
# PyTorch's, does not: the gradient check does not see the difference. Rank 3 checks
# 6,000 inputs by finite differences: slow.

RANKS = [
    pytest.param(1, id="1d"),
    pytest.param(2, id="2d"),
    pytest.param(3, id="3d", marks=pytest.mark.slow),
]
CONV_INPUTS = {rank: (rand(2, 3, *([10] * rank)), rand(3, 3, *([3] * rank))) for rank in (1, 2, 3)}
# DepthwiseConvDims(x, w) with w's last dimensions (3, 3): a channel multiplier of 3 on
# 3 input channels, 9 outputs: a convolution in 3 groups with a (9, 1, 3, ...) kernel.
DEPTHWISE_KERNELS = {rank: rand(9, 1, *([3] * rank)) for rank in (1, 2, 3)}


@pytest.mark.parametrize("rank", RANKS)
def test_conv(rank):
    check(nnf.conv, CONV_INPUTS[rank])  # L342


@pytest.mark.parametrize("rank", RANKS)
def test_conv_data_gradient(rank):
    # L344: gradtest((y, w) -> ∇conv_data(y, w, cdims), y, w) with y = conv(x, w, cdims).
    x, w = CONV_INPUTS[rank]
    check(nnf.conv_transpose, (nnf.conv(x, w), w))


@pytest.mark.parametrize("rank", RANKS)
def test_depthwise_conv(rank):
    # L346: @test_skip upstream; active here.
    x, _ = CONV_INPUTS[rank]
    check(lambda x, w: nnf.conv(x, w, groups=3), (x, DEPTHWISE_KERNELS[rank]))


# -- "pooling" (lines 349-356) ------------------------------------------------------------
# PoolDims(x, 2): a window of 2, stride 2, no padding.

POOL_RANKS = [pytest.param(1, id="1d"), pytest.param(2, id="2d")]
POOL_INPUTS = {rank: rand(2, 3, *([10] * rank)) for rank in (1, 2)}


@pytest.mark.parametrize("rank", POOL_RANKS)
def test_maxpool(rank):
    check(lambda x: nnf.maxpool(x, 2), (POOL_INPUTS[rank],))  # L353


@pytest.mark.parametrize("rank", POOL_RANKS)
def test_meanpool(rank):
    check(lambda x: nnf.meanpool(x, 2), (POOL_INPUTS[rank],))  # L354
