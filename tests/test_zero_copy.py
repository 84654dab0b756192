"""Tests of the mutation policy and zero-copy boundary: read-only views of what tracker owns,
copy on write for gradients and updates, and NumPy arguments borrowed without a copy."""

import numpy as np
import pytest
from numpy.testing import assert_array_equal

import tracker as tr


class Subclass(np.ndarray):
    pass


def misaligned(values):
    """A float64 array with the given values whose data pointer is not 8-byte aligned."""
    raw = np.zeros(8 * len(values) + 1, dtype=np.uint8)
    array = raw[1:].view(np.float64)
    array[:] = values
    assert not array.flags.aligned
    return array


def test_data_is_a_read_only_view_shared_between_calls():
    x = tr.param([1.0, 2.0, 3.0])
    first = tr.data(x)
    second = tr.data(x)
    assert not first.flags.writeable
    assert np.shares_memory(first, second)
    assert np.shares_memory(first, x.data)
    with pytest.raises(ValueError, match="read-only"):
        first[0] = 100.0
    with pytest.raises(ValueError):
        first.setflags(write=True)
    assert_array_equal(tr.data(x), [1.0, 2.0, 3.0])


def test_data_of_a_recorded_value_is_a_read_only_view():
    x = tr.param([1.0, 2.0, 3.0])
    y = x * 2.0
    view = tr.data(y)
    assert not view.flags.writeable
    assert np.shares_memory(view, tr.data(y))
    with pytest.raises(ValueError, match="read-only"):
        view[:] = 0.0
    tr.back(np.sum(y * y))
    assert_array_equal(tr.grad(x), [8.0, 16.0, 24.0])


def test_data_view_outlives_its_handle():
    view = tr.data(tr.param(np.arange(5.0)))
    assert_array_equal(view, np.arange(5.0))
    view = tr.data(tr.param([1.0, 2.0]) * 3.0)
    assert_array_equal(view, [3.0, 6.0])


def test_grad_is_read_only_and_copied_on_write():
    x = tr.param([1.0, 2.0, 3.0])
    tr.back(np.sum(x * x))
    first = tr.grad(x)
    assert not first.flags.writeable
    with pytest.raises(ValueError, match="read-only"):
        first[0] = 0.0

    tr.back(np.sum(x * x))
    assert_array_equal(first, [2.0, 4.0, 6.0])
    assert_array_equal(tr.grad(x), [4.0, 8.0, 12.0])

    second = tr.grad(x)
    tr.zero_grad(x)
    assert_array_equal(second, [4.0, 8.0, 12.0])
    assert_array_equal(tr.grad(x), [0.0, 0.0, 0.0])

    tr.back(np.sum(x * 5.0))
    third = tr.grad(x)
    tr.update(x, np.ones(3))
    assert_array_equal(third, [5.0, 5.0, 5.0])
    assert_array_equal(tr.grad(x), [0.0, 0.0, 0.0])


def test_update_does_not_mutate_an_old_data_view():
    x = tr.param([1.0, 2.0, 3.0])
    old = tr.data(x)
    tr.update(x, np.array([1.0, 1.0, 1.0]))
    assert_array_equal(old, [1.0, 2.0, 3.0])
    assert_array_equal(tr.data(x), [2.0, 3.0, 4.0])

    s = tr.param(2.0)
    old_scalar = tr.data(s)
    tr.update(s, 1.0)
    assert old_scalar == 2.0
    assert tr.data(s) == 3.0


def test_update_does_not_change_a_value_a_tape_saved():
    # y = x * x saves x for its pullback; updating x before back must not change
    # the gradient of the recorded computation.
    x = tr.param([1.0, 2.0])
    y = np.sum(x * x)
    tr.update(x, np.array([10.0, 10.0]))
    tr.back(y)
    assert_array_equal(tr.grad(x), [2.0, 4.0])
    assert tr.data(y) == 5.0


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_gradient_arguments_are_borrowed(dtype):
    x0 = np.array([1.0, 2.0, 3.0], dtype=dtype)
    seen = []

    def f(x):
        seen.append((np.shares_memory(tr.data(x), x0), tr.data(x).flags.writeable))
        return np.sum(x * x)

    (g,) = tr.gradient(f, x0)
    assert seen == [(True, False)]
    assert g.dtype == dtype
    assert_array_equal(g, 2.0 * x0)
    assert x0.flags.writeable
    assert_array_equal(x0, [1.0, 2.0, 3.0])


def test_tied_arguments_are_borrowed_once():
    x0 = np.array([1.0, 2.0])
    seen = []

    def f(a, b):
        seen.append(np.shares_memory(tr.data(a), x0) and np.shares_memory(tr.data(b), x0))
        return np.sum(a * b)

    g1, g2 = tr.gradient(f, x0, x0)
    assert seen == [True]
    assert_array_equal(g1, 2.0 * x0)
    assert_array_equal(g2, 2.0 * x0)


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda: np.arange(12.0).reshape(3, 4)[:, ::2], id="non-contiguous"),
        pytest.param(lambda: np.arange(6.0).reshape(2, 3)[:, ::-1], id="negative-strides"),
        pytest.param(lambda: np.arange(6.0).reshape(2, 3).T, id="fortran-order"),
        pytest.param(lambda: np.arange(24.0).reshape(2, 3, 4).transpose(1, 0, 2), id="permuted"),
        pytest.param(lambda: np.arange(6.0).reshape(2, 3).astype(">f8"), id="big-endian"),
        pytest.param(lambda: np.arange(6.0, dtype=">f4").reshape(2, 3), id="big-endian-f32"),
        pytest.param(lambda: misaligned(np.arange(6.0)).reshape(2, 3), id="misaligned"),
        pytest.param(lambda: np.arange(6.0).reshape(2, 3).view(Subclass), id="subclass"),
    ],
)
def test_non_native_arguments_are_copied_not_refused(make):
    x0 = make()
    weights = np.arange(x0.size, dtype=np.float64).reshape(x0.shape) + 1.0
    expected = 2.0 * np.asarray(x0, dtype=np.float64) + weights
    seen = []

    def f(x):
        seen.append(tr.data(x))
        return np.sum(x * x) + np.sum(x * weights)

    (g,) = tr.gradient(f, x0)
    assert type(g) is np.ndarray
    assert g.shape == x0.shape
    assert g.dtype == x0.dtype.newbyteorder("=")
    np.testing.assert_allclose(g, expected, rtol=1e-6)
    assert_array_equal(seen[0], x0)

    x = tr.param(x0)
    assert x.shape == x0.shape
    assert_array_equal(tr.data(x), x0)


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda: np.asfortranarray([[1.0, 2.0], [3.0, 4.0]]), id="fortran-order"),
        pytest.param(lambda: np.array([[1.0, 3.0], [2.0, 4.0]]).T, id="transposed"),
        pytest.param(lambda: np.array([[4.0, 3.0], [2.0, 1.0]])[::-1, ::-1], id="reversed"),
        pytest.param(lambda: np.array([[1.0, 2.0], [3.0, 4.0]], dtype=">f8"), id="big-endian"),
    ],
)
def test_non_native_constants_keep_their_values(make):
    constant = make()
    assert_array_equal(constant, [[1.0, 2.0], [3.0, 4.0]])
    x = tr.param(np.ones((2, 2)))
    assert_array_equal(tr.data(x * constant), [[1.0, 2.0], [3.0, 4.0]])
    assert_array_equal(tr.data(x @ constant), [[4.0, 6.0], [4.0, 6.0]])
    tr.back(np.sum(x * constant))
    assert_array_equal(tr.grad(x), [[1.0, 2.0], [3.0, 4.0]])


def test_gradients_never_share_the_callers_memory():
    # A product with a sum's seed hands the other operand back as the gradient, and an
    # addition passes its seed on: neither may be an array the caller can still change.
    x0 = np.array([1.0, 2.0, 3.0])
    constant = np.array([4.0, 5.0, 6.0])
    (g,) = tr.gradient(lambda x: np.sum(x * constant), x0)
    seed = np.array([7.0, 8.0, 9.0])
    _, back = tr.forward(lambda x: x + 1.0, x0)
    (g_seeded,) = back(seed)
    p = tr.param(x0)
    tr.back(p + 1.0, seed)
    for gradient, caller in [(g, constant), (g_seeded, seed), (tr.grad(p), seed)]:
        assert not np.shares_memory(gradient, caller)
    constant += 1.0
    seed += 1.0
    assert_array_equal(g, [4.0, 5.0, 6.0])
    assert_array_equal(g_seeded, [7.0, 8.0, 9.0])
    assert_array_equal(tr.grad(p), [7.0, 8.0, 9.0])


def test_product_with_a_sums_seed_shares_the_other_operand():
    # d sum(a * b) / da is b itself: no copy is made of a value the tape owns.
    x = tr.param(np.linspace(0.0, 1.0, 1000))
    w = tr.param(np.linspace(1.0, 2.0, 1000))
    tr.back(np.sum(x * w))
    assert np.shares_memory(tr.grad(x), tr.data(w))
    assert_array_equal(tr.grad(x), tr.data(w))
    assert_array_equal(tr.grad(w), tr.data(x))


@pytest.mark.parametrize("seed_first", [True, False])
def test_a_seed_written_to_is_no_longer_taken_as_one_value(seed_first):
    # y's gradient starts as the ones of sum(y) (when that sum is swept first) and is
    # then added to in place; exp's rule must read what it then holds, not the ones.
    x0 = np.linspace(-1.0, 1.0, 1000)
    c = np.cos(x0)

    def f(x):
        y = np.exp(x)
        return np.sum(y * c) + np.sum(y) if seed_first else np.sum(y) + np.sum(y * c)

    (g,) = tr.gradient(f, x0)
    np.testing.assert_allclose(g, np.exp(x0) * (1.0 + c), rtol=1e-14)
