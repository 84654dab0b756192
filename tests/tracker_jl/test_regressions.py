"""Regression tests for what Tracker.jl's users reported broken (inventory §4.5 and §5):
#120 and #148 (the `prod` Hessian, nested `sum`), #163 (Params with plain arrays),
#165 (scalar arguments), #167 (shared arrays), an input-independent function, and the
stack-depth cases (#49, the removed 10,000-element scalar-indexing test)."""

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

import tracker as tr
from tracker import params
from tracker.derivatives import hvp
from tracker.params import Params
from tracker.testing import gradgradcheck


def prod_hessian(x):
    """The exact Hessian of prod(x): the product of the other elements off the diagonal, 0 on it."""
    n = x.size
    H = np.zeros((n, n))
    for i in range(n):
        for j in range(n):
            if i != j:
                H[i, j] = np.prod(np.delete(x, [i, j]))
    return H


# #120: Incorrect Hessians returned for prod.


def test_120_hessian_of_prod():
    x = np.array([2.0, 3.0, 4.0])
    H = tr.hessian(np.prod, x)
    assert_allclose(H, [[0.0, 4.0, 3.0], [4.0, 0.0, 2.0], [3.0, 2.0, 0.0]], rtol=1e-15)
    assert_allclose(H, prod_hessian(x), rtol=1e-15)


@pytest.mark.parametrize(
    "x", [np.array([0.0, 2.0, 3.0]), np.array([0.0, 0.0, 3.0, 5.0]), np.array([1.5, -2.0])]
)
def test_120_hessian_of_prod_with_zeros(x):
    assert_allclose(tr.hessian(np.prod, x), prod_hessian(x), rtol=1e-15, atol=0)


def test_120_hessian_of_prod_along_an_axis():
    x0 = np.array([[1.5, -0.5, 2.0], [0.7, 1.1, -1.3]])

    def f(x):
        return np.sum(np.prod(x, axis=1) ** 2)

    assert gradgradcheck(f, x0)


# #148: Nested derivatives do not work for functions with arrays as argument.


def test_148_nested_gradient_of_prod():
    # The report: [-2.0, -0.5] instead of [1, 1].
    x = np.array([2.0, 3.0])
    (g,) = tr.gradient(lambda x: np.sum(tr.gradient(np.prod, x, nest=True)[0]), x)
    assert_allclose(g, [1.0, 1.0], rtol=1e-15)
    x = np.array([2.0, 3.0, 5.0])
    (g,) = tr.gradient(lambda x: np.sum(tr.gradient(np.prod, x, nest=True)[0]), x)
    assert_allclose(g, [8.0, 7.0, 5.0], rtol=1e-15)


def test_148_nested_gradient_of_sum_is_zeros_not_an_error():
    # The report: MethodError: no method matching back!(::Float64).
    x = np.array([2.0, 3.0])
    (g,) = tr.gradient(lambda x: np.sum(tr.gradient(np.sum, x, nest=True)[0]), x)
    assert_array_equal(g, [0.0, 0.0])
    assert_array_equal(tr.hessian(np.sum, x), np.zeros((2, 2)))


def test_flux_571_second_derivative_of_a_scalar_polynomial():
    # f(x) = 3x² + 2x + 1: f'' = 6.
    def f(x):
        return 3 * x**2 + 2 * x + 1

    def df(x):
        return tr.gradient(f, x, nest=True)[0]

    assert tr.data(df(2.0)) == 14.0
    assert tr.gradient(df, 2.0)[0] == 6.0


# #163: gradient(() -> ..., Params([W, b])) with plain arrays.


def test_163_params_with_plain_arrays_raises_a_clear_error():
    W, b = np.random.default_rng(0).random((2, 3)), np.zeros(2)
    with pytest.raises(TypeError, match=r"wrap it with tr\.param"):
        Params([W, b])


def test_163_params_with_parameters_works():
    rng = np.random.default_rng(0)
    W, b = tr.param(rng.random((2, 3))), tr.param(np.zeros(2))
    x = rng.random(3)
    grads = params.gradient(lambda: np.sum(W @ x + b), Params([W, b]))
    assert_allclose(grads[W], np.tile(x, (2, 1)), rtol=1e-15)
    assert_array_equal(grads[b], [1.0, 1.0])


# #165: scalar arguments of withgradient get nothing in Tracker.jl.


def test_165_scalar_arguments_are_differentiated():
    x = np.array([1.0, 2.0])
    val, (gx, gs) = tr.withgradient(lambda x, s: s * np.sum(x**2), x, 3.0)
    assert val == 15.0
    assert_array_equal(gx, [6.0, 12.0])
    assert gs == 5.0
    assert isinstance(gs, np.float64)


def test_165_scalars_inside_structures_and_integers():
    model = {"w": np.array([1.0, 2.0]), "scale": 0.5, "n": 2}
    _, (g,) = tr.withgradient(lambda m: m["scale"] * np.sum(m["w"]) ** m["n"], model)
    assert_allclose(g["w"], [3.0, 3.0])
    assert g["scale"] == 9.0
    assert g["n"] is None


def test_165_float32_scalar_keeps_its_dtype():
    (g,) = tr.gradient(lambda s: s * s, np.float32(1.5))
    assert g == 3.0
    assert g.dtype == np.float32


# #167: shared (identical) arrays report the total gradient at each occurrence.


def test_167_shared_array_in_withgradient():
    w = np.array([1.0, 2.0])
    model = {"encoder": w, "decoder": w}
    val, (g,) = tr.withgradient(
        lambda m: np.sum(m["encoder"] * 3) + np.sum(m["decoder"] ** 2), model
    )
    assert val == 14.0
    assert_array_equal(g["encoder"], [5.0, 7.0])
    assert_array_equal(g["decoder"], [5.0, 7.0])


def test_167_shared_array_across_arguments_and_nesting():
    w = np.array([1.0, 2.0])
    val, (ga, gb) = tr.withgradient(lambda a, b: np.sum(a[0] * b["x"]), [w], {"x": w})
    assert val == 5.0
    assert_array_equal(ga[0], [2.0, 4.0])
    assert_array_equal(gb["x"], [2.0, 4.0])


def test_167_equal_but_distinct_arrays_are_separate():
    model = {"encoder": np.array([1.0, 2.0]), "decoder": np.array([1.0, 2.0])}
    _, (g,) = tr.withgradient(lambda m: np.sum(m["encoder"] * 3) + np.sum(m["decoder"] ** 2), model)
    assert_array_equal(g["encoder"], [3.0, 3.0])
    assert_array_equal(g["decoder"], [2.0, 4.0])


# An input-independent f: zeros, not an error (Tracker.jl: MethodError back!(::Float64)).


def test_input_independent_gradient_is_zeros():
    x = np.array([1.0, 2.0, 3.0])
    assert_array_equal(tr.gradient(lambda x: 3.0, x)[0], np.zeros(3))
    assert_array_equal(tr.gradient(lambda x: np.sum(np.ones(3)), x)[0], np.zeros(3))
    (g,) = tr.gradient(lambda s: 2.0, 1.5)
    assert g == 0.0


def test_input_independent_withgradient_is_zeros():
    val, (g,) = tr.withgradient(lambda x: 7.0, np.ones(2, dtype=np.float32))
    assert val == 7.0
    assert_array_equal(g, [0.0, 0.0])
    assert g.dtype == np.float32


def test_input_independent_higher_order_is_zeros():
    x = np.array([1.0, 2.0])
    assert_array_equal(tr.hessian(lambda x: 1.0, x), np.zeros((2, 2)))
    assert_array_equal(tr.jacobian(lambda x: np.ones(3), x), np.zeros((3, 2)))
    # Linear f: the nested gradient is a constant.
    assert_array_equal(tr.hessian(lambda x: np.sum(2 * x), x), np.zeros((2, 2)))


def test_input_independent_params_gradient_is_zeros():
    W = tr.param(np.ones(2))
    assert_array_equal(params.gradient(lambda: 1.0, Params([W]))[W], [0.0, 0.0])


# Stack depth: #49 (long recurrences) and the removed 10,000-element scalar-indexing test.


def test_scalar_indexing_loop_of_ten_thousand_elements():
    x = np.random.default_rng(1).random(10**4)

    def f(x):
        s = 0.0
        for i in range(len(x)):
            s += x[i]
        return s

    (g,) = tr.gradient(f, x)
    assert_array_equal(g, np.ones(10**4))


def test_scalar_indexing_loop_to_second_order():
    n = 2000
    x = np.random.default_rng(2).random(n)
    v = np.random.default_rng(3).random(n)

    def f(x):
        s = 0.0
        for i in range(len(x)):
            s += x[i] ** 3
        return s

    assert_allclose(hvp(f, x, v), 6 * x * v, rtol=1e-14)


def test_49_long_recurrence():
    def f(x):
        for _ in range(20000):
            x = x * 0.5 + 0.5
        return x

    # The recurrence contracts: the gradient is 0.5**20000, which underflows to 0.
    assert tr.gradient(f, 3.0)[0] == 0.0

    def g(x):
        for _ in range(20000):
            x = x * 1.0 + 0.0
        return x * x

    assert tr.gradient(g, 3.0)[0] == 6.0
