"""`tracker.testing.gradtest`, Tracker.jl's test helper (test/tracker.jl:12-13)."""

import numpy as np
import pytest

import tracker as tr
from tracker.testing import gradtest


@tr.rule
def half_gradient_square(x):
    """x**2 with a pullback that is wrong by a factor of two."""
    return x**2, lambda dy: (dy * x,)


def test_shapes_and_arrays():
    W = np.random.default_rng(1).random((2, 3))
    assert gradtest(lambda x, W: np.tanh(W @ x), (3,), W)
    assert gradtest(lambda x: x**2, np.array([1.5, -2.0]))
    assert gradtest(lambda x: np.sum(x * x), ())  # () is the shape of a 0-d array


def test_shapes_are_drawn_uniform_in_0_1_from_the_seed():
    seen = []

    def record(x, y):
        seen.append((np.array(tr.data(x)), np.array(tr.data(y))))
        return x * np.sum(y)

    gradtest(record, (2, 3), (4,), rng=7)
    x, y = seen[0]
    expected = np.random.default_rng(7)
    np.testing.assert_array_equal(x, expected.random((2, 3)))
    np.testing.assert_array_equal(y, expected.random(4))
    assert ((x >= 0) & (x < 1)).all()
    first = len(seen)
    gradtest(record, (2, 3), (4,), rng=7)
    np.testing.assert_array_equal(seen[first][0], x)


def test_a_wrong_gradient_raises_or_returns_false():
    with pytest.raises(AssertionError, match=r"gradtest: .*sum\(sin\(f\(\*xs\)\)\).*analytic"):
        gradtest(half_gradient_square, (3,))
    assert gradtest(half_gradient_square, (3,), raise_exception=False) is False


def test_tolerances_are_tracker_jl_s():
    # At x = 0 the gradient is 1; a rule off by 5e-5 fails at atol = rtol = 1e-5 (a margin
    # of 2e-5) and passes when the tolerance is widened, as Julia's gradtest(f, xs; kw...)
    # allows.
    @tr.rule
    def shifted(x):
        return x, lambda dy: (dy + 5e-5,)

    x = np.array([0.0])
    assert not gradtest(shifted, x, raise_exception=False)
    assert gradtest(shifted, x, atol=1e-4)
