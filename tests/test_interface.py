"""Tests of the rest of Tracker.jl's interface: implicit parameters (`Params`, `Grads`),
`forward`/`pullback`, `jacobian`, `hessian`, `hvp`, `jvp`, `forwarddiff`, `gradgradcheck`,
gradients of gradients to third order and long chains under nesting."""

import gc
import weakref

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

import tracker as tr
from conftest import fd_jacobian
from tracker import derivatives, params, rules
from tracker.derivatives import forward, forwarddiff, hvp, jvp, pullback
from tracker.params import Grads, Params
from tracker.testing import gradcheck, gradgradcheck, ngradient

RNG = np.random.default_rng(5)


class Marker:
    """An object whose collection a weakref observes."""


# Params


def test_params_are_ordered_and_deduplicated_by_identity():
    W, b = tr.param(np.ones((2, 3))), tr.param(np.zeros(2))
    ps = Params([W, b, W])
    assert len(ps) == 2
    assert [p is q for p, q in zip(ps, [W, b])] == [True, True]
    assert ps[0] is W and ps[1] is b
    assert W in ps and b in ps


def test_params_equal_values_are_different_parameters():
    a, b = tr.param(np.ones(2)), tr.param(np.ones(2))
    ps = Params([a, b])
    assert len(ps) == 2
    assert a in ps and b in ps


def test_params_append_adds_new_parameters_at_the_end():
    W, b, c = tr.param(np.ones(2)), tr.param(np.zeros(2)), tr.param(3.0)
    ps = Params()
    assert len(ps) == 0
    ps.append(W)
    ps.append(b, W, c)
    assert [p is q for p, q in zip(ps, [W, b, c])] == [True, True, True]
    assert len(ps) == 3


def test_params_membership_of_other_objects_is_false():
    W = tr.param(np.ones(2))
    ps = Params([W])
    assert np.ones(2) not in ps
    assert "W" not in ps
    assert W * 1 not in ps
    assert tr.param(np.ones(2)) not in ps


def test_params_of_a_single_parameter_a_structure_and_a_generator():
    W, b = tr.param(np.ones(2)), tr.param(np.zeros(2))
    assert len(Params(W)) == 1
    assert [p is q for p, q in zip(Params({"w": W, "layers": [b, W]}), [W, b])] == [True, True]
    assert len(Params(p for p in (W, b))) == 2
    assert len(Params(Params([W, b]))) == 2


@pytest.mark.parametrize("plain", [np.ones(3), [np.ones(3)], 1.5, [np.float32(1.0)]])
def test_params_with_plain_arrays_raises_a_type_error_naming_param(plain):
    with pytest.raises(TypeError, match=r"tr\.param"):
        Params(plain)


def test_params_append_of_a_plain_array_changes_nothing():
    W = tr.param(np.ones(2))
    ps = Params([W])
    with pytest.raises(TypeError, match=r"tr\.param"):
        ps.append(tr.param(np.ones(1)), np.ones(2))
    assert len(ps) == 1


def test_params_with_other_objects_raises_a_type_error():
    with pytest.raises(TypeError, match="str"):
        Params(["weights"])


def test_params_repr_shows_shapes():
    ps = Params([tr.param(np.ones((2, 3)))])
    assert repr(ps).startswith("Params([")
    assert "(2, 3)" in repr(ps)


def test_zero_grad_of_params_zeroes_every_parameter():
    W, b = tr.param(np.ones(2)), tr.param(1.0)
    tr.back(np.sum(W * 3) + b * 2)
    tr.zero_grad(Params([W, b]))
    assert_array_equal(tr.grad(W), [0.0, 0.0])
    assert tr.grad(b) == 0.0


def test_tree_map_over_params_keeps_params_for_tracked_results():
    W, b = tr.param(np.ones(2)), tr.param(np.zeros(2))
    ps = Params([W, b])
    assert isinstance(tr.tree.map(lambda p: p, ps), Params)
    values = tr.tree.map(tr.data, ps)
    assert_array_equal(values[0], [1.0, 1.0])


# gradient with Params


def test_params_gradient_equals_the_explicit_gradient():
    # Tracker.jl's "Params" test.
    W = tr.param(RNG.standard_normal((5, 10)))
    x = RNG.random(10)
    (dW,) = tr.gradient(lambda W: np.sum(W @ x), W)
    grads = params.gradient(lambda: np.sum(W @ x), Params([W]))
    assert isinstance(grads, Grads)
    assert_allclose(grads[W], tr.data(dW), rtol=1e-15)
    assert not tr.istracked(grads[W])


def test_params_gradient_of_a_two_layer_model():
    W1, b1 = tr.param(RNG.standard_normal((4, 3))), tr.param(RNG.standard_normal(4))
    W2 = tr.param(RNG.standard_normal((1, 4)))
    x = RNG.standard_normal(3)

    def loss(W1, b1, W2):
        return np.sum(W2 @ np.tanh(W1 @ x + b1))

    grads = params.gradient(lambda: loss(W1, b1, W2), Params([W1, b1, W2]))
    expected = tr.gradient(loss, tr.data(W1), tr.data(b1), tr.data(W2))
    for p, e in zip([W1, b1, W2], expected):
        assert_allclose(grads[p], e, rtol=1e-14)


def test_params_gradient_of_a_scalar_parameter():
    a = tr.param(2.0)
    grads = params.gradient(lambda: a**3, Params([a]))
    assert grads[a] == 12.0


def test_params_gradient_unused_parameter_gets_zeros():
    W, unused = tr.param(np.ones(2)), tr.param(np.ones((2, 2), dtype=np.float32))
    grads = params.gradient(lambda: np.sum(W**2), Params([W, unused]))
    assert_array_equal(grads[unused], np.zeros((2, 2)))
    assert grads[unused].dtype == np.float32


def test_params_gradient_of_an_input_independent_function_is_zeros():
    W = tr.param(np.ones(3))
    grads = params.gradient(lambda: 3.0, Params([W]))
    assert_array_equal(grads[W], np.zeros(3))


def test_params_gradient_of_a_tuple_differentiates_its_first_element():
    W = tr.param(np.array([1.0, 2.0]))
    grads = params.gradient(lambda: (np.sum(W**2), "aux"), Params([W]))
    assert_array_equal(grads[W], [2.0, 4.0])


def test_params_gradient_neither_includes_nor_changes_accumulated_gradients():
    # Inventory §4.5 item 6: Tracker.jl adds stale accumulated gradients and
    # then zeroes them; tracker's gradient is out of place and leaves them alone.
    W = tr.param(np.array([1.0, 2.0]))
    tr.back(np.sum(W * 10))
    assert_array_equal(tr.grad(W), [10.0, 10.0])
    grads = params.gradient(lambda: np.sum(W**2), Params([W]))
    assert_array_equal(grads[W], [2.0, 4.0])
    assert_array_equal(tr.grad(W), [10.0, 10.0])
    # And a later back keeps accumulating on top of the old value.
    tr.back(np.sum(W))
    assert_array_equal(tr.grad(W), [11.0, 11.0])


def test_params_gradient_of_a_float32_parameter_is_float32():
    W = tr.param(np.ones(3, dtype=np.float32))
    grads = params.gradient(lambda: np.sum(W * 2.0), Params([W]))
    assert grads[W].dtype == np.float32


def test_params_gradient_with_a_non_scalar_loss_raises():
    W = tr.param(np.ones(3))
    with pytest.raises(tr.LossError):
        params.gradient(lambda: W * 2, Params([W]))


def test_params_gradient_of_a_computed_value_raises_instead_of_zeros():
    W = tr.param(np.ones(2))
    V = W * 2  # tracked, but not a parameter
    with pytest.raises(TypeError, match="not a parameter"):
        params.gradient(lambda: np.sum(V * 3), Params([V]))


def test_params_gradient_requires_params():
    with pytest.raises(TypeError, match="Params"):
        params.gradient(lambda: 1.0, [tr.param(1.0)])


def test_params_gradient_nested_is_tracked_and_differentiable_wrt_an_argument():
    W = tr.param(np.array([1.0, 2.0]))
    x0 = np.array([1.0, 3.0])

    def outer(x):
        grads = params.gradient(lambda: np.sum(W**2 * x), Params([W]), nest=True)
        assert tr.istracked(grads[W])
        return np.sum(grads[W])  # sum(2 W x): its gradient in x is 2 W

    assert_allclose(tr.gradient(outer, x0)[0], [2.0, 4.0])


def test_params_gradient_without_nest_refuses_nested_differentiation():
    W = tr.param(np.array([1.0, 2.0]))

    def outer(x):
        return np.sum(params.gradient(lambda: np.sum(W**2 * x), Params([W]))[W])

    with pytest.raises(tr.NestingError, match="nest=True"):
        tr.gradient(outer, np.array([1.0, 3.0]))


def test_explicit_gradient_nested_inside_a_params_gradient():
    W = tr.param(np.array([1.0, 2.0]))
    x0 = np.array([1.0, 3.0])

    def loss():
        # d/dx sum(W**2 x**2) = 2 W**2 x; its sum's gradient in W is 4 W x.
        (gx,) = tr.gradient(lambda x: np.sum(W**2 * x**2), x0, nest=True)
        return np.sum(gx)

    grads = params.gradient(loss, Params([W]))
    assert_allclose(grads[W], 4 * tr.data(W) * x0)


def test_hessian_through_nested_params_gradients():
    # The gradient of sum(∇_W sum(W³)) = sum(3W²) with respect to W is 6W.
    W = tr.param(np.array([1.0, 2.0]))
    ps = Params([W])

    def loss():
        return np.sum(params.gradient(lambda: np.sum(W**3), ps, nest=True)[W])

    assert_allclose(params.gradient(loss, ps)[W], [6.0, 12.0])


def test_params_withgradient_returns_the_untracked_value_and_grads():
    W = tr.param(np.array([1.0, 2.0]))
    result = params.withgradient(lambda: (np.sum(W**2), W * 2), Params([W]))
    val, grads = result
    assert val[0] == 5.0
    assert not tr.istracked(val[1])
    assert_array_equal(val[1], [2.0, 4.0])
    assert_array_equal(grads[W], [2.0, 4.0])


# Grads


def test_grads_lookup_iteration_and_items():
    W, b = tr.param(np.ones(2)), tr.param(0.5)
    grads = params.gradient(lambda: np.sum(W * 3) + b * 2, Params([W, b]))
    assert len(grads) == 2
    assert [p is q for p, q in zip(grads, [W, b])] == [True, True]
    assert [p is q for p, q in zip(grads.keys(), [W, b])] == [True, True]
    items = grads.items()
    assert items[0][0] is W and items[1][0] is b
    assert_array_equal(items[0][1], [3.0, 3.0])
    assert items[1][1] == 2.0
    assert_array_equal(grads.values()[0], [3.0, 3.0])
    assert W in grads and b in grads
    assert grads.params[0] is W


def test_grads_of_an_untracked_object_raises_object_not_tracked():
    W = tr.param(np.ones(2))
    grads = params.gradient(lambda: np.sum(W), Params([W]))
    with pytest.raises((KeyError, TypeError), match="object is not tracked"):
        grads[tr.data(W)]
    with pytest.raises((KeyError, TypeError), match="object is not tracked"):
        grads[np.ones(2)]
    assert np.ones(2) not in grads


def test_grads_of_a_tracked_value_not_in_params_raises_key_error():
    W, other = tr.param(np.ones(2)), tr.param(np.ones(2))
    grads = params.gradient(lambda: np.sum(W * other), Params([W]))
    with pytest.raises(KeyError, match="not one of the 1 Params"):
        grads[other]
    assert other not in grads
    assert grads.get(other) is None
    assert_array_equal(grads.get(W), [1.0, 1.0])


def test_grads_of_params_prefills_zeros():
    W = tr.param(np.ones((2, 2), dtype=np.float32))
    grads = Grads(Params([W]))
    assert_array_equal(grads[W], np.zeros((2, 2)))
    assert grads[W].dtype == np.float32
    with pytest.raises(ValueError, match="2 gradients for 1 parameters"):
        Grads(Params([W]), [np.zeros(2), np.zeros(2)])


def test_grads_repr():
    W = tr.param(np.ones(2))
    assert repr(params.gradient(lambda: np.sum(W), Params([W]))).startswith("Grads({")


def test_grads_used_for_a_gradient_descent_step():
    W = tr.param(np.array([3.0, -2.0]))
    ps = Params([W])
    for _ in range(50):
        grads = params.gradient(lambda: np.sum(W**2), ps)
        for p, g in grads.items():
            tr.update(p, -0.1 * g)
    assert np.all(np.abs(tr.data(W)) < 1e-4)


# forward / pullback


def test_forward_custom_sensitivities():
    # Tracker.jl's "Custom Sensitivities": y, back = forward(x -> [3x^2, 2x], 5).
    y, back = forward(lambda x: np.stack([3 * x**2, 2 * x]), 5.0)
    assert not tr.istracked(y)
    assert_array_equal(y, [75.0, 10.0])
    (dx,) = back(np.array([1.0, 1.0]))
    assert dx == 32.0


def test_forward_back_is_reusable_for_any_seed():
    A = RNG.standard_normal((3, 4))
    x0 = RNG.standard_normal(4)
    _, back = forward(lambda x: np.tanh(A @ x), x0)
    J = tr.jacobian(lambda x: np.tanh(A @ x), x0)
    for k in range(3):
        seed = np.zeros(3)
        seed[k] = 1.0
        assert_allclose(back(seed)[0], J[k], rtol=1e-14)
    seed = RNG.standard_normal(3)
    assert_allclose(back(seed)[0], seed @ J, rtol=1e-13)
    assert_allclose(back(seed)[0], seed @ J, rtol=1e-13)


def test_forward_of_a_scalar_seeds_one_by_default():
    y, back = forward(lambda x: np.sum(x**2), np.array([1.0, 2.0]))
    assert y == 5.0
    assert_array_equal(back()[0], [2.0, 4.0])
    assert_array_equal(back(3.0)[0], [6.0, 12.0])


def test_forward_mirrors_structures_like_gradient():
    args = ({"a": np.ones(2)}, {"w": np.arange(2.0), "n": 3})
    y, back = forward(lambda p, q: np.sum(p["a"] * q["w"]) * q["n"], *args)
    assert y == 3.0
    (da, dq) = back()
    assert set(da) == {"a"} and set(dq) == {"w", "n"}
    assert_array_equal(da["a"], [0.0, 3.0])
    assert_array_equal(dq["w"], [3.0, 3.0])
    assert dq["n"] is None


def test_forward_tied_arrays_get_the_total_gradient():
    w = np.array([1.0, 2.0])
    _, back = forward(lambda a, b: np.sum(a * b), w, w)
    da, db = back()
    assert_array_equal(da, [2.0, 4.0])
    assert_array_equal(db, [2.0, 4.0])


def test_forward_with_a_seed_of_the_wrong_shape_raises():
    _, back = forward(lambda x: x * 2, np.ones(2))
    with pytest.raises(tr.LossError, match="seed"):
        back(np.ones(3))
    with pytest.raises(tr.LossError, match="seed"):
        back()


def test_forward_does_not_touch_accumulated_gradients():
    W = tr.param(np.array([1.0, 2.0]))
    tr.back(np.sum(W * 5))
    _, back = forward(lambda w: w**2, W)
    assert_array_equal(back(np.ones(2))[0], [2.0, 4.0])
    assert_array_equal(back(np.ones(2))[0], [2.0, 4.0])
    assert_array_equal(tr.grad(W), [5.0, 5.0])


def test_forward_with_params():
    W, b = tr.param(np.array([1.0, 2.0])), tr.param(0.5)
    tr.back(np.sum(W))
    y, back = forward(lambda: W * 3 + b, Params([W, b]))
    assert not tr.istracked(y)
    assert_array_equal(y, [3.5, 6.5])
    grads = back(np.array([1.0, 2.0]))
    assert isinstance(grads, Grads)
    assert_array_equal(grads[W], [3.0, 6.0])
    assert grads[b] == 3.0
    assert_array_equal(back(np.array([1.0, 0.0]))[W], [3.0, 0.0])
    assert_array_equal(tr.grad(W), [1.0, 1.0])


def test_forward_of_an_input_independent_function_gives_zeros():
    y, back = forward(lambda x: np.ones(3), np.ones(2))
    assert_array_equal(y, np.ones(3))
    assert_array_equal(back(np.ones(3))[0], np.zeros(2))


def test_forward_of_a_non_array_result_raises():
    with pytest.raises(TypeError, match="one array or scalar"):
        forward(lambda x: {"y": x}, np.ones(2))


def test_forward_exception_in_f_propagates():
    error = RuntimeError("in f")

    def f(x):
        raise error

    with pytest.raises(RuntimeError) as raised:
        forward(f, np.ones(2))
    assert raised.value is error
    # The scope was retired: differentiation still works afterwards.
    assert_array_equal(tr.gradient(lambda x: np.sum(x), np.ones(2))[0], [1.0, 1.0])


def test_pullback_is_forward():
    assert pullback is forward


def test_closed_pullback_raises():
    _, back = forward(lambda x: x * 2, np.ones(2))
    back.close()
    with pytest.raises(tr.TrackerError, match="closed"):
        back(np.ones(2))
    assert "closed" in repr(back)


def test_pullbacks_interleaved_with_other_differentiation():
    _, back1 = forward(lambda x: x * 2, np.ones(2))
    _, back2 = forward(lambda x: x**2, np.array([3.0]))
    assert_array_equal(tr.gradient(lambda x: np.sum(x**3), np.array([1.0]))[0], [3.0])
    assert_array_equal(back1(np.ones(2))[0], [2.0, 2.0])
    del back1
    gc.collect()
    assert_array_equal(back2(np.ones(1))[0], [6.0])


def test_forward_nested_is_differentiable():
    # back(1) of x * w**2 with respect to x is w**2; its sum's gradient in w is 2w.
    def outer(w):
        y, back = forward(lambda x: x * w * w, np.array([1.0, 2.0]), nest=True)
        assert tr.istracked(y)
        (gx,) = back(np.ones(2))
        return np.sum(gx)

    assert_allclose(tr.gradient(outer, np.array([3.0, 4.0]))[0], [6.0, 8.0])


def test_forward_gradients_depending_on_an_enclosing_value_refuse_nesting():
    # DESIGN: without nest, a result that depends on a value tracked by an enclosing
    # differentiation is marked, so differentiating through it raises: never a silent
    # constant (tr.gradient does this; forward's back must too).
    x0 = np.array([1.0, 2.0])

    def outer(w):
        _, back = forward(lambda x: x * w, x0)
        return np.sum(back(np.ones(2))[0])

    with pytest.raises(tr.NestingError, match="nest=True"):
        tr.gradient(outer, np.array([3.0, 4.0]))


def test_forward_value_depending_on_an_enclosing_value_is_not_a_silent_constant():
    x0 = np.array([1.0, 2.0])
    w0 = np.array([3.0, 4.0])

    def outer(w):
        y, _ = forward(lambda x: np.sum(x * w), x0)
        return y

    try:
        (g,) = tr.gradient(outer, w0)
    except tr.NestingError:
        return
    assert_array_equal(g, x0)


def test_forward_frees_its_tape_when_the_pullback_is_collected():
    def make():
        marker = Marker()

        @rules.rule
        def double(x):
            return x * 2, lambda dy: (dy * 2 + 0 * (marker is None),)

        _, back = forward(lambda x: double(x), np.ones(2))
        return weakref.ref(marker), back

    ref, back = make()
    gc.collect()
    assert ref() is not None
    assert_array_equal(back(np.ones(2))[0], [2.0, 2.0])
    del back
    gc.collect()
    assert ref() is None


# jacobian


SHAPES = [(), (3,), (2, 3)]


@pytest.mark.parametrize("x_shape", SHAPES)
@pytest.mark.parametrize("y_shape", SHAPES)
def test_jacobian_has_shape_y_plus_x(x_shape, y_shape):
    n, m = int(np.prod(x_shape)), int(np.prod(y_shape))
    A = RNG.standard_normal((m, n))
    x0 = RNG.standard_normal(x_shape) if x_shape else np.float64(0.7)

    def f(x):
        return np.reshape(np.sin(A @ np.reshape(x, (n,))), y_shape)

    J = tr.jacobian(f, x0)
    assert J.shape == y_shape + x_shape
    expected = np.cos(A @ np.reshape(x0, (n,)))[:, None] * A
    assert_allclose(J, expected.reshape(y_shape + x_shape), rtol=1e-13)


def test_jacobian_of_a_tracked_linear_map():
    # Tracker.jl's "Jacobian" test: jacobian(x -> A*x, x) ≈ A.data, with A a parameter.
    A = tr.param(RNG.standard_normal((2, 2)))
    x = RNG.standard_normal(2)
    assert_allclose(tr.jacobian(lambda x: A @ x, x), tr.data(A), rtol=1e-15)


def test_jacobian_against_finite_differences():
    x0 = RNG.standard_normal(4)

    def f(x):
        return np.stack([np.sum(np.exp(x)), np.prod(x[:3]), x[0] * x[3] ** 2])

    assert_allclose(tr.jacobian(f, x0), fd_jacobian(f, x0), rtol=1e-8, atol=1e-10)


def test_jacobian_of_an_input_independent_function_is_zeros():
    assert_array_equal(tr.jacobian(lambda x: np.ones(2), np.ones(3)), np.zeros((2, 3)))


def test_jacobian_keeps_float32():
    J = tr.jacobian(lambda x: x * 2, np.ones(2, dtype=np.float32))
    assert J.dtype == np.float32


# hessian, hvp


def test_hessian_against_finite_differences_of_the_gradient():
    x0 = RNG.standard_normal(4)

    def f(x):
        return np.sum(np.sin(x) * np.exp(x[::-1])) + np.prod(x)

    H = tr.hessian(f, x0)
    assert_allclose(H, H.T, rtol=1e-12, atol=1e-14)
    assert_allclose(H, fd_jacobian(lambda z: tr.gradient(f, z)[0], x0), rtol=1e-7, atol=1e-9)


def test_hvp_equals_the_hessian_times_v():
    x0, v = RNG.standard_normal(5), RNG.standard_normal(5)
    W = RNG.standard_normal((3, 5))

    def f(x):
        return np.sum(np.tanh(W @ x) ** 2) + np.sum(x**4)

    assert_allclose(hvp(f, x0, v), tr.hessian(f, x0) @ v, rtol=1e-12, atol=1e-14)


def test_hvp_of_a_scalar_and_of_a_structure():
    assert hvp(lambda x: x**3, 2.0, 1.5) == pytest.approx(6 * 2.0 * 1.5)
    x = {"a": np.array([1.0, 2.0]), "b": 3.0}
    v = {"a": np.array([1.0, 0.0]), "b": 1.0}

    def f(p):
        return np.sum(p["a"] ** 2) * p["b"]

    # H = [[2b, 0, 2a0], [0, 2b, 2a1], [2a0, 2a1, 0]]; H v = [2b + 2a0, 2a1, 2a0].
    result = hvp(f, x, v)
    assert_allclose(result["a"], [8.0, 4.0])
    assert result["b"] == pytest.approx(2.0)


def test_hvp_does_not_form_the_hessian():
    # A Hessian of 4000² float64 would take 128 MB; hvp takes a few vectors.
    n = 4000
    x0 = np.linspace(-1.0, 1.0, n)
    v = np.ones(n)
    result = hvp(lambda x: np.sum(np.cos(x) * x), x0, v)
    assert_allclose(result, -2 * np.sin(x0) - x0 * np.cos(x0), rtol=1e-12, atol=1e-14)


# jvp


@pytest.mark.parametrize("x_shape", SHAPES)
@pytest.mark.parametrize("y_shape", SHAPES)
def test_jvp_equals_the_jacobian_times_v(x_shape, y_shape):
    n, m = int(np.prod(x_shape)), int(np.prod(y_shape))
    A = RNG.standard_normal((m, n))
    x0 = RNG.standard_normal(x_shape) if x_shape else 0.7
    v = RNG.standard_normal(x_shape) if x_shape else -1.3

    def f(x):
        return np.reshape(np.sin(A @ np.reshape(x, (n,))) ** 2, y_shape)

    J = tr.jacobian(f, x0)
    expected = np.tensordot(J, v, axes=len(x_shape))
    result = jvp(f, x0, v)
    assert np.shape(result) == y_shape
    assert_allclose(result, expected, rtol=1e-12, atol=1e-14)


def test_jvp_of_a_nonlinear_function_against_finite_differences():
    x0, v = RNG.standard_normal(3), RNG.standard_normal(3)

    def f(x):
        return np.stack([np.exp(x[0]) * x[1], np.sum(np.tanh(x)), x[2] ** 3])

    h = 1e-6
    expected = (f(x0 + h * v) - f(x0 - h * v)) / (2 * h)
    assert_allclose(jvp(f, x0, v), expected, rtol=1e-8)


def test_jvp_of_an_input_independent_function_is_zeros():
    assert_array_equal(jvp(lambda x: np.ones(3), np.ones(2), np.ones(2)), np.zeros(3))


def test_jvp_rejects_non_float_points():
    with pytest.raises(TypeError, match="jvp"):
        jvp(lambda x: x, "x", 1.0)


# forwarddiff


def test_forwarddiff_of_a_product():
    # Tracker.jl's "Forward": gradient(x -> forwarddiff(x -> x[1]*x[2], x), [2, 3]) == ([3, 2],).
    (g,) = tr.gradient(lambda x: forwarddiff(lambda z: z[0] * z[1], x), np.array([2.0, 3.0]))
    assert_array_equal(g, [3.0, 2.0])


def test_forwarddiff_of_plain_values_is_the_function():
    y = forwarddiff(lambda z: z**2, np.array([2.0, 3.0]))
    assert not tr.istracked(y)
    assert_array_equal(y, [4.0, 9.0])


def test_forwarddiff_of_a_vector_function_and_a_scalar():
    A = RNG.standard_normal((3, 2))
    x0 = RNG.standard_normal(2)
    w = RNG.standard_normal(3)

    def f(x):
        return np.sum(w * forwarddiff(lambda z: np.tanh(A @ z), x))

    assert gradcheck(f, x0, rtol=1e-8, atol=1e-10)
    (g,) = tr.gradient(lambda x: forwarddiff(lambda z: z**3, x), 2.0)
    assert g == 12.0


def test_forwarddiff_accumulates_into_a_parameter():
    x = tr.param(np.array([1.0, 2.0]))
    tr.back(np.sum(forwarddiff(lambda z: z**2, x)))
    assert_array_equal(tr.grad(x), [2.0, 4.0])


def test_forwarddiff_keeps_float32():
    (g,) = tr.gradient(
        lambda x: np.sum(forwarddiff(lambda z: z * 2.0, x)), np.ones(2, dtype=np.float32)
    )
    assert g.dtype == np.float32


def test_second_derivatives_through_forwarddiff_are_right():
    x0 = np.array([0.5, 1.5, -0.7])

    def f(z):
        return np.sum(np.sin(z) * z**2)

    expected = tr.hessian(f, x0)
    assert_allclose(tr.hessian(lambda x: forwarddiff(f, x), x0), expected, rtol=1e-13)
    assert gradgradcheck(lambda x: np.sum(forwarddiff(lambda z: np.exp(z) * z, x)), x0)


def test_forwarddiff_refuses_a_closure_over_an_enclosing_value():
    def outer(w):
        return np.sum(forwarddiff(lambda z: z * w, tr.param(np.ones(2))))

    with pytest.raises(tr.NestingError, match="forwarddiff"):
        tr.gradient(outer, np.array([1.0, 2.0]))


# gradgradcheck


def test_gradgradcheck_passes_on_right_second_derivatives():
    W = RNG.standard_normal((3, 3))
    assert gradgradcheck(lambda x: np.sum(np.tanh(W @ x) ** 2), RNG.standard_normal(3))
    assert gradgradcheck(lambda x, w: np.sum(np.sin(x * w)), np.ones(2), np.array([0.3, 0.8]))
    assert gradgradcheck(lambda p: p["a"] ** 2 * np.sum(p["b"] ** 3), {"a": 1.5, "b": np.ones(2)})


def test_gradgradcheck_catches_a_rule_whose_pullback_uses_the_primal_as_a_constant():
    @rules.rule
    def cube(x):
        x0 = tr.data(x)
        return x**3, lambda dy: (3 * x0**2 * dy,)

    x0 = np.array([0.5, 1.0])
    assert gradcheck(lambda x: np.sum(cube(x)), x0)  # first order is right
    assert not gradgradcheck(lambda x: np.sum(cube(x)), x0, raise_exception=False)
    with pytest.raises(AssertionError, match="gradgradcheck"):
        gradgradcheck(lambda x: np.sum(cube(x)), x0)


def test_gradgradcheck_refuses_tracked_arguments():
    with pytest.raises(TypeError, match="plain values"):
        gradgradcheck(lambda x: x**2, tr.param(1.0))


# gradients of gradients


def derivative(f):
    """The derivative of scalar-to-scalar `f`, itself differentiable (nest=True)."""
    return lambda x: tr.gradient(f, x, nest=True)[0]


def central(f, x, h=1e-4):
    """Fourth-order central difference of scalar `f` at float `x` (plain values)."""
    g = lambda z: float(tr.data(f(z)))  # noqa: E731
    return (8 * (g(x + h) - g(x - h)) - (g(x + 2 * h) - g(x - 2 * h))) / (12 * h)


def test_scalar_derivatives_to_third_order():
    def f(x):
        return np.sin(x) * x**3

    d1, d2 = derivative(f), derivative(derivative(f))
    d3 = derivative(derivative(derivative(f)))
    x = 0.8
    s, c = np.sin(x), np.cos(x)
    assert float(tr.data(d1(x))) == pytest.approx(c * x**3 + 3 * s * x**2, rel=1e-14)
    exact2 = -s * x**3 + 6 * c * x**2 + 6 * s * x
    assert float(tr.data(d2(x))) == pytest.approx(exact2, rel=1e-14)
    exact3 = -c * x**3 - 9 * s * x**2 + 18 * c * x + 6 * s
    third = tr.gradient(d2, x)[0]
    assert third == pytest.approx(exact3, rel=1e-13)
    assert float(tr.data(d3(x))) == pytest.approx(exact3, rel=1e-13)
    # Each order against finite differences of the order below.
    assert float(tr.data(d2(x))) == pytest.approx(central(d1, x), rel=1e-9)
    assert third == pytest.approx(central(d2, x), rel=1e-9)


def test_fourth_derivative_of_exp():
    d4 = derivative(derivative(derivative(np.exp)))
    assert tr.gradient(d4, 0.3)[0] == pytest.approx(np.exp(0.3), rel=1e-14)


def test_third_order_of_a_vector_function_against_finite_differences():
    W = RNG.standard_normal((3, 4))
    w = RNG.standard_normal(4)

    def f(x):
        return np.sum(np.tanh(W @ x) ** 3) + np.sum(np.exp(x) * x)

    def directional(x):
        # <∇f(x), w>: its Hessian is f's third derivative contracted with w.
        return np.sum(tr.gradient(f, x, nest=True)[0] * w)

    x0 = RNG.standard_normal(4) * 0.5
    assert gradgradcheck(directional, x0)
    # The third-order tensor along w, against finite differences of tr.hessian.
    H3 = tr.hessian(directional, x0)
    expected = fd_jacobian(lambda z: tr.hessian(f, z) @ w, x0)
    assert_allclose(H3, expected, rtol=1e-7, atol=1e-9)


def test_jacobian_of_a_gradient_of_a_gradient():
    # hessian(x -> <∇f, v>) = ∂³f · v for f = sum(x^4): diag(24 x v).
    x0, v = np.array([1.0, -2.0]), np.array([0.5, 3.0])
    H = tr.hessian(lambda x: np.sum(tr.gradient(lambda z: np.sum(z**4), x, nest=True)[0] * v), x0)
    assert_allclose(H, np.diag(24 * x0 * v), rtol=1e-14)


# long chains


CHAIN = 10**5


def chain(x):
    """`x`, through `CHAIN` recorded operations (exact in floating point)."""
    for _ in range(CHAIN // 2):
        x = x + 1.0
        x = x - 1.0
    return x


def test_a_long_chain_under_nest_does_not_overflow_the_stack():
    x0 = np.array([0.5, 2.0])

    def outer(x):
        (g,) = tr.gradient(lambda z: np.sum(chain(z) ** 3), x, nest=True)
        return np.sum(g)

    assert_array_equal(tr.gradient(outer, x0)[0], 6 * x0)


def test_a_long_chain_in_jacobian_does_not_overflow_the_stack():
    x0 = np.array([0.5, 2.0, 3.0])
    assert_array_equal(tr.jacobian(lambda x: chain(x) ** 2, x0), np.diag(2 * x0))


# misc


def test_ngradient_and_forward_agree_on_a_vector_jacobian_product():
    x0 = RNG.standard_normal(3)
    seed = RNG.standard_normal(2)

    def f(x):
        return np.stack([np.sum(np.sin(x)), np.prod(x)])

    _, back = forward(f, x0)
    (numeric,) = ngradient(lambda x: np.sum(f(x) * seed), x0)
    assert_allclose(back(seed)[0], numeric, rtol=1e-8)


def test_public_names():
    # What tracker/__init__.py is to export from these modules.
    for name, value in [
        ("Params", Params),
        ("Grads", Grads),
        ("forward", forward),
        ("pullback", pullback),
        ("jvp", jvp),
        ("hvp", hvp),
        ("forwarddiff", forwarddiff),
        ("rule", rules.rule),
        ("track", rules.track),
        ("hook", rules.hook),
        ("checkpoint", rules.checkpoint),
        ("nobacksies", rules.nobacksies),
    ]:
        assert getattr(tr, name, None) is value, name
    assert tr.testing.gradgradcheck is gradgradcheck
    assert derivatives.Pullback.__name__ == "Pullback"


def test_tr_gradient_and_withgradient_accept_params():
    W = tr.param(np.array([1.0, 2.0]))
    tr.back(np.sum(W * 10))
    grads = tr.gradient(lambda: np.sum(W**2), Params([W]))
    assert isinstance(grads, Grads)
    assert_array_equal(grads[W], [2.0, 4.0])
    assert_array_equal(tr.grad(W), [10.0, 10.0])
    nested = tr.gradient(lambda: np.sum(W**3), Params([W]), nest=True)
    assert tr.istracked(nested[W])
    val, grads = tr.withgradient(lambda: np.sum(W**2), Params([W]))
    assert val == 5.0
    assert_array_equal(grads[W], [2.0, 4.0])
