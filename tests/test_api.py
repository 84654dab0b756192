"""Tests of the Python API: `param`, the tracked classes, `back`, `grad`, `data` and friends,
`gradient` over nested structures, `withgradient`, `hessian`, `no_grad`, `repr` and formatting."""

import collections
import dataclasses
from typing import NamedTuple

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

import tracker as tr


class Layer(NamedTuple):
    w: object
    b: object


OldLayer = collections.namedtuple("OldLayer", ["w", "b"])


@dataclasses.dataclass
class Model:
    weight: object
    bias: object
    name: str = "model"
    depth: int = 2


# param


def test_param_converts_ints_to_float64():
    x = tr.param([1, 2, 3])
    assert type(x) is tr.TrackedArray
    assert x.dtype == np.float64
    assert_array_equal(tr.data(x), [1.0, 2.0, 3.0])

    assert tr.param(np.arange(4, dtype=np.int32)).dtype == np.float64
    assert tr.param([[1, 2], [3, 4]]).shape == (2, 2)

    s = tr.param(2)
    assert type(s) is tr.TrackedReal
    assert s.dtype == np.float64
    assert tr.data(s) == 2.0


def test_param_keeps_float32():
    x = tr.param(np.array([1.5, 2.5], dtype=np.float32))
    assert x.dtype == np.float32
    assert tr.data(x).dtype == np.float32

    s = tr.param(np.float32(1.5))
    assert type(s) is tr.TrackedReal
    assert s.dtype == np.float32

    tr.back(np.sum(x * x))
    assert tr.grad(x).dtype == np.float32
    assert_array_equal(tr.grad(x), np.array([3.0, 5.0], dtype=np.float32))


def test_param_copies_its_argument_once():
    source = np.array([1.0, 2.0, 3.0])
    x = tr.param(source)
    assert not np.shares_memory(tr.data(x), source)
    source[0] = 100.0
    source *= 2
    assert_array_equal(tr.data(x), [1.0, 2.0, 3.0])

    tr.back(np.sum(x * x))
    assert_array_equal(tr.grad(x), [2.0, 4.0, 6.0])


def test_param_of_a_tracked_value_is_connected():
    x = tr.param([1.0, 2.0])
    y = tr.param(x)
    assert tr.istracked(y)
    assert_array_equal(tr.data(y), [1.0, 2.0])

    tr.back(np.sum(y * np.array([3.0, 5.0])))
    assert_array_equal(tr.grad(x), [3.0, 5.0])


# TrackedArray and TrackedReal


def test_scalars_are_tracked_reals_not_tracked_arrays():
    x = tr.param([1.0, 2.0, 3.0])
    m = tr.param(np.arange(6.0).reshape(2, 3))
    for scalar in (x[0], x[-1], np.sum(x), x.sum(), np.prod(x), np.max(x), m[1, 2], x @ x):
        assert type(scalar) is tr.TrackedReal
        assert not isinstance(scalar, tr.TrackedArray)
    assert not issubclass(tr.TrackedReal, tr.TrackedArray)
    assert not issubclass(tr.TrackedArray, tr.TrackedReal)

    for array in (x[1:], m[0], np.sum(m, axis=0), x * 2):
        assert type(array) is tr.TrackedArray


def test_array_attributes():
    m = tr.param(np.arange(6.0).reshape(2, 3))
    assert m.shape == (2, 3)
    assert m.dtype == np.float64
    assert m.ndim == 2
    assert m.size == 6
    assert len(m) == 2
    assert np.shape(m) == (2, 3)
    assert np.ndim(m) == 2
    assert np.size(m) == 6

    s = np.sum(m)
    assert s.shape == ()
    assert s.ndim == 0
    assert s.size == 1
    assert s.dtype == np.float64


def test_transpose_property_is_tracked():
    m = tr.param(np.arange(6.0).reshape(2, 3))
    t = m.T
    assert type(t) is tr.TrackedArray
    assert t.shape == (3, 2)
    assert_array_equal(tr.data(t), np.arange(6.0).reshape(2, 3).T)

    weights = np.arange(6.0).reshape(3, 2) + 1.0
    tr.back(np.sum(t * weights))
    assert_array_equal(tr.grad(m), weights.T)


def test_iteration_yields_tracked_elements_and_rows():
    x = tr.param([1.0, 2.0, 3.0])
    elements = list(x)
    assert len(elements) == 3
    assert all(type(e) is tr.TrackedReal for e in elements)
    assert [float(tr.data(e)) for e in elements] == [1.0, 2.0, 3.0]

    total = sum(e * e for e in x)  # Python's sum, starting from 0
    assert type(total) is tr.TrackedReal
    tr.back(total)
    assert_array_equal(tr.grad(x), [2.0, 4.0, 6.0])

    m = tr.param(np.arange(6.0).reshape(2, 3))
    rows = list(m)
    assert [type(r) for r in rows] == [tr.TrackedArray, tr.TrackedArray]
    assert_array_equal(tr.data(rows[1]), [3.0, 4.0, 5.0])


# back


def test_back_with_a_seed_for_a_non_scalar_value():
    x = tr.param([1.0, 2.0, 3.0])
    y = x * x
    tr.back(y, np.array([1.0, 10.0, 100.0]))
    assert_array_equal(tr.grad(x), [2.0, 40.0, 600.0])


def test_back_with_a_seed_for_a_scalar_scales_the_gradient():
    x = tr.param([1.0, 2.0])
    tr.back(np.sum(x * 3.0), 2.0)
    assert_array_equal(tr.grad(x), [6.0, 6.0])


def test_back_accumulates_into_parameters():
    x = tr.param([1.0, 2.0])
    tr.back(np.sum(x * x))
    tr.back(np.sum(x * 3.0))
    assert_array_equal(tr.grad(x), [5.0, 7.0])


def test_back_method_of_a_tracked_real():
    x = tr.param([1.0, 2.0, 3.0])
    loss = np.sum(x**2) + np.prod(x[1:])
    assert type(loss) is tr.TrackedReal
    loss.back()
    assert_array_equal(tr.grad(x), [2.0, 7.0, 8.0])


def test_back_method_of_a_tracked_array_with_a_seed():
    x = tr.param([1.0, 2.0])
    (x * 3.0).back(np.array([1.0, -1.0]))
    assert_array_equal(tr.grad(x), [3.0, -3.0])


# grad, data, istracked, isleaf, zero_grad, update


def test_grad_is_the_accumulated_gradient_of_a_parameter():
    x = tr.param([1.0, 2.0])
    assert_array_equal(tr.grad(x), [0.0, 0.0])
    tr.back(np.sum(x * x))
    assert_array_equal(tr.grad(x), [2.0, 4.0])
    assert_array_equal(x.grad, [2.0, 4.0])

    s = tr.param(3.0)
    tr.back(s * s)
    assert tr.grad(s) == 6.0
    assert isinstance(tr.grad(s), np.float64)


def test_data_is_the_untracked_value():
    x = tr.param([1.0, 2.0, 3.0])
    assert type(tr.data(x)) is np.ndarray
    assert_array_equal(tr.data(x), [1.0, 2.0, 3.0])
    assert_array_equal(x.data, [1.0, 2.0, 3.0])

    total = np.sum(x)
    assert type(tr.data(total)) is np.float64
    assert tr.data(total) == 6.0
    assert total.data == 6.0

    y = x * 2
    assert type(tr.data(y)) is np.ndarray
    assert_array_equal(tr.data(y), [2.0, 4.0, 6.0])

    single = np.sum(tr.param(np.ones(2, dtype=np.float32)))
    assert type(tr.data(single)) is np.float32

    plain = np.ones(2)
    assert tr.data(plain) is plain


def test_istracked_and_isleaf():
    x = tr.param([1.0, 2.0])
    s = tr.param(1.0)
    y = x * 2
    assert tr.istracked(x) and tr.isleaf(x)
    assert tr.istracked(s) and tr.isleaf(s)
    assert tr.istracked(y) and not tr.isleaf(y)
    assert tr.istracked(x[0]) and not tr.isleaf(x[0])
    for plain in (np.ones(2), 1.0, 3, None, "x"):
        assert not tr.istracked(plain)
        assert not tr.isleaf(plain)


def test_zero_grad_of_a_parameter_and_of_a_structure():
    a = tr.param([1.0, 2.0])
    b = tr.param(3.0)
    c = tr.param(np.ones((2, 2)))
    tr.back(np.sum(a * a) + b * b + np.sum(c * 2.0))
    assert_array_equal(tr.grad(a), [2.0, 4.0])

    tr.zero_grad(a)
    assert_array_equal(tr.grad(a), [0.0, 0.0])
    assert tr.grad(b) == 6.0

    tr.zero_grad({"layers": [b, (c,)], "other": None})
    assert tr.grad(b) == 0.0
    assert_array_equal(tr.grad(c), np.zeros((2, 2)))


def test_update_adds_delta_and_zeroes_the_gradient():
    x = tr.param([1.0, 2.0, 3.0])
    tr.back(np.sum(x * x))
    tr.update(x, np.array([0.5, -1.0, 2.0]))
    assert_array_equal(tr.data(x), [1.5, 1.0, 5.0])
    assert_array_equal(tr.grad(x), [0.0, 0.0, 0.0])

    # The updated parameter is still a parameter, and differentiates at its new value.
    assert tr.isleaf(x)
    tr.back(np.sum(x * x))
    assert_array_equal(tr.grad(x), [3.0, 2.0, 10.0])

    s = tr.param(2.0)
    tr.back(s * s)
    tr.update(s, 1.0)
    assert tr.data(s) == 3.0
    assert tr.grad(s) == 0.0


def test_update_with_the_wrong_shape_raises_and_changes_nothing():
    x = tr.param([1.0, 2.0, 3.0])
    tr.back(np.sum(x * x))
    with pytest.raises(ValueError, match="update") as excinfo:
        tr.update(x, np.ones(4))
    message = str(excinfo.value)
    assert "4" in message and "3" in message
    assert_array_equal(tr.data(x), [1.0, 2.0, 3.0])
    assert_array_equal(tr.grad(x), [2.0, 4.0, 6.0])


# gradient


def test_gradient_with_several_arguments():
    a = np.array([1.0, 2.0])
    b = np.array([3.0, 5.0])
    ga, gb = tr.gradient(lambda a, b: np.sum(a * b) + np.sum(a), a, b)
    assert_array_equal(ga, b + 1.0)
    assert_array_equal(gb, a)


def test_gradient_of_the_readme_example():
    f = lambda x: np.sum(x**2) + np.prod(x[1:])  # noqa: E731
    (g,) = tr.gradient(f, np.array([1.0, 2.0, 3.0]))
    assert_array_equal(g, [2.0, 7.0, 8.0])


def test_gradient_mirrors_nested_dicts_lists_and_tuples():
    params = {
        "w": np.array([1.0, 2.0]),
        "layers": [np.array([3.0]), (np.array([4.0, 5.0]), 2.0)],
    }

    def loss(p):
        inner, scale = p["layers"][1]
        return np.sum(p["w"] ** 2) + np.sum(p["layers"][0] * 3.0) + scale * np.sum(inner)

    (g,) = tr.gradient(loss, params)
    assert type(g) is dict
    assert list(g) == ["w", "layers"]
    assert_array_equal(g["w"], [2.0, 4.0])
    assert type(g["layers"]) is list
    assert_array_equal(g["layers"][0], [3.0])
    assert type(g["layers"][1]) is tuple
    assert_array_equal(g["layers"][1][0], [2.0, 2.0])
    assert g["layers"][1][1] == 9.0
    assert type(g["layers"][1][1]) is np.float64


def test_gradient_of_flat_dicts_beside_arrays():
    # Flat dicts of arrays take a shortcut past the structure walk: keys keep their
    # order, positional arrays their place, and an array in two places is one input.
    w, b, x = np.array([1.0, 2.0]), np.array([0.5]), np.array([3.0, 4.0])

    def loss(p, x, q):
        return np.sum(p["w"] * x) + np.sum(p["b"] ** 2) + np.sum(q["v"] * p["w"])

    gp, gx, gq = tr.gradient(loss, {"w": w, "b": b}, x, {"v": x})
    assert list(gp) == ["w", "b"] and type(gp) is dict and type(gq) is dict
    assert_array_equal(gp["w"], x + x)
    assert_array_equal(gp["b"], [1.0])
    assert_array_equal(gx, w + w)  # x is tied with q["v"]: both get the total
    assert_array_equal(gq["v"], w + w)
    (g,) = tr.gradient(lambda p: np.sum(p["a"] * p["b"]), {"b": w, "a": x})
    assert list(g) == ["b", "a"]
    assert_array_equal(g["a"], w)
    assert_array_equal(g["b"], x)


def test_gradient_keeps_namedtuple_types():
    layer = Layer(np.array([1.0, 2.0]), np.array([0.5]))
    old = OldLayer(np.array([3.0]), 1)
    g_layer, g_old = tr.gradient(
        lambda layer, old: np.sum(layer.w * layer.w) + np.sum(layer.b) + np.sum(old.w) * old.b,
        layer,
        old,
    )
    assert type(g_layer) is Layer
    assert_array_equal(g_layer.w, [2.0, 4.0])
    assert_array_equal(g_layer.b, [1.0])
    assert type(g_old) is OldLayer
    assert_array_equal(g_old.w, [1.0])
    assert g_old.b is None


def test_gradient_of_a_dataclass_is_a_dict_of_its_fields():
    model = Model(weight=np.array([1.0, 2.0]), bias=0.5)

    def loss(m):
        assert isinstance(m, Model)
        return np.sum(m.weight * m.weight) * m.depth + m.bias * 3.0

    (g,) = tr.gradient(loss, model)
    assert type(g) is dict
    assert list(g) == ["weight", "bias", "name", "depth"]
    assert_array_equal(g["weight"], [4.0, 8.0])
    assert g["bias"] == 3.0
    assert g["name"] is None
    assert g["depth"] is None


def test_non_differentiable_leaves_get_none():
    def loss(x, n, s, nothing, ints, flags, fn):
        assert ints.dtype.kind == "i"
        return np.sum(x * n) + np.sum(x * ints)

    grads = tr.gradient(
        loss,
        np.array([1.0, 2.0]),
        3,
        "text",
        None,
        np.array([1, 2]),
        np.array([True, False]),
        len,
    )
    assert_array_equal(grads[0], [4.0, 5.0])
    assert grads[1:] == (None, None, None, None, None, None)


def test_python_float_argument_gets_a_numpy_float64_gradient():
    g_a, g_b = tr.gradient(lambda a, b: a * a * b, 3.0, 2.0)
    assert type(g_a) is np.float64
    assert type(g_b) is np.float64
    assert g_a == 12.0
    assert g_b == 9.0

    (g32,) = tr.gradient(lambda a: a * a, np.float32(3.0))
    assert type(g32) is np.float32
    assert g32 == 6.0


def test_gradient_with_respect_to_tracked_arguments():
    p = tr.param([1.0, 2.0])
    (g,) = tr.gradient(lambda a: np.sum(a * a), p)
    assert_array_equal(tr.data(g), [2.0, 4.0])
    assert_array_equal(tr.grad(p), [0.0, 0.0])  # only back accumulates into parameters

    y = p * 3.0
    (g,) = tr.gradient(lambda a: np.sum(a * a), y)
    assert_array_equal(tr.data(g), [6.0, 12.0])
    assert_array_equal(tr.grad(p), [0.0, 0.0])


def test_gradient_keeps_float32():
    (g,) = tr.gradient(lambda a: np.sum(a * a), np.array([1.0, 2.0], dtype=np.float32))
    assert g.dtype == np.float32
    assert_array_equal(g, np.array([2.0, 4.0], dtype=np.float32))


def test_unused_float_leaves_get_zeros():
    used = np.array([1.0, 2.0])
    unused = np.ones((2, 3), dtype=np.float32)
    g_used, g_unused, g_float = tr.gradient(lambda a, b, c: np.sum(a), used, unused, 1.5)
    assert_array_equal(g_used, [1.0, 1.0])
    assert g_unused.shape == (2, 3)
    assert g_unused.dtype == np.float32
    assert_array_equal(g_unused, np.zeros((2, 3)))
    assert type(g_float) is np.float64
    assert g_float == 0.0


def test_the_same_array_twice_is_tied():
    w = np.array([1.0, 2.0])
    g1, g2 = tr.gradient(lambda a, b: np.sum(a * 2.0) + np.sum(b * b), w, w)
    # One parameter: the total is 2 + 2w, reported at each occurrence.
    assert_array_equal(g1, [4.0, 6.0])
    assert_array_equal(g2, [4.0, 6.0])

    (g,) = tr.gradient(lambda pair: np.sum(pair[0] * pair[1]), [w, w])
    assert_array_equal(g[0], [2.0, 4.0])
    assert_array_equal(g[1], [2.0, 4.0])


def test_equal_but_distinct_arrays_are_not_tied():
    a = np.array([1.0, 2.0])
    b = a.copy()
    g1, g2 = tr.gradient(lambda a, b: np.sum(a * 2.0) + np.sum(b * b), a, b)
    assert_array_equal(g1, [2.0, 2.0])
    assert_array_equal(g2, [2.0, 4.0])


# withgradient


def test_withgradient_returns_the_untracked_value():
    result = tr.withgradient(lambda x: np.sum(x * x), np.array([1.0, 2.0]))
    assert isinstance(result, tr.WithGradient)
    assert not tr.istracked(result.val)
    assert result.val == 5.0
    assert type(result.val) is np.float64
    assert_array_equal(result.grad[0], [2.0, 4.0])

    val, (g,) = result
    assert val == 5.0
    assert_array_equal(g, [2.0, 4.0])


def test_withgradient_of_a_tuple_differentiates_its_first_element():
    def f(x):
        return np.sum(x * x), x * 3.0, "aux"

    val, (g,) = tr.withgradient(f, np.array([1.0, 2.0]))
    assert type(val) is tuple
    assert len(val) == 3
    assert val[0] == 5.0
    assert not tr.istracked(val[0])
    assert not tr.istracked(val[1])
    assert type(val[1]) is np.ndarray
    assert_array_equal(val[1], [3.0, 6.0])
    assert val[2] == "aux"
    assert_array_equal(g, [2.0, 4.0])


# hessian


def test_hessian_of_the_readme_example():
    f = lambda x: np.sum(x**2) + np.prod(x[1:])  # noqa: E731
    h = tr.hessian(f, np.array([1.0, 2.0, 3.0]))
    assert h.shape == (3, 3)
    assert_allclose(h, [[2.0, 0.0, 0.0], [0.0, 2.0, 1.0], [0.0, 1.0, 2.0]], rtol=0, atol=1e-12)


def test_hessian_of_a_non_polynomial_function():
    w = np.array([[0.3, -0.2], [0.1, 0.4], [-0.5, 0.2]])
    x0 = np.array([0.7, -1.1])
    h = tr.hessian(lambda x: np.sum(np.tanh(w @ x)), x0)
    t = np.tanh(w @ x0)
    expected = w.T @ np.diag(-2.0 * t * (1.0 - t**2)) @ w
    assert_allclose(h, expected, rtol=1e-12, atol=1e-14)


# no_grad


def test_no_grad_runs_without_recording():
    x = tr.param([1.0, 2.0])
    with tr.no_grad():
        y = x * 2
        total = np.sum(x)
        element = x[0]
        z = np.exp(x) + x
    assert type(y) is np.ndarray
    assert_array_equal(y, [2.0, 4.0])
    assert not tr.istracked(total)
    assert total == 3.0
    assert not tr.istracked(element)
    assert type(z) is np.ndarray


def test_no_grad_restores_recording_afterwards():
    x = tr.param([1.0, 2.0])
    with tr.no_grad():
        pass
    y = x * 2
    assert type(y) is tr.TrackedArray
    tr.back(np.sum(y))
    assert_array_equal(tr.grad(x), [2.0, 2.0])


def test_no_grad_restores_recording_after_an_exception():
    x = tr.param([1.0, 2.0])
    with pytest.raises(KeyError), tr.no_grad():
        assert type(x * 2) is np.ndarray
        raise KeyError("inside")
    assert type(x * 2) is tr.TrackedArray
    assert tr.istracked(np.sum(x))


def test_no_grad_nests():
    x = tr.param([1.0, 2.0])
    with tr.no_grad():
        with tr.no_grad():
            pass
        assert type(x * 2) is np.ndarray
    assert type(x * 2) is tr.TrackedArray


# repr and formatting


def test_formatting_a_tracked_real():
    x = tr.param([1.0, 2.0, 3.5])
    loss = np.sum(x)
    assert f"{loss:.3f}" == "6.500"
    assert f"{loss:.1e}" == "6.5e+00"
    assert f"{x[0]:>6.2f}" == "  1.00"
    assert "loss = 6.50" in f"loss = {loss:.2f}"


def test_repr_names_the_class_and_shows_the_value():
    x = tr.param([1.0, 2.0, 3.5])
    text = repr(x)
    assert "TrackedArray" in text
    assert "3.5" in text
    scalar = repr(np.sum(x))
    assert "TrackedReal" in scalar
    assert "6.5" in scalar
    assert "3.5" in str(x)


def test_ngradient_of_a_non_contiguous_array():
    """Finite differences move each element of a transposed (non-C-order) array too."""
    from tracker.testing import ngradient

    x = np.arange(6.0).reshape(2, 3).T
    (g,) = ngradient(lambda x: np.sum(x * x * np.arange(6.0).reshape(3, 2)), x)
    np.testing.assert_allclose(g, 2 * x * np.arange(6.0).reshape(3, 2), rtol=1e-8)
