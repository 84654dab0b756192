"""Tests of gradients written by hand (`tracker.rules`): `rule`, `track`, `hook`,
`checkpoint`, `nobacksies`; `no_grad`, `back(once=False)`; and that a tape whose
Python callables capture tracked values is freed by the garbage collector."""

import gc
import weakref

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

import tracker as tr
from tracker.rules import checkpoint, hook, nobacksies, rule, track
from tracker.testing import gradcheck, gradgradcheck


class Marker:
    """An object whose collection a weakref observes."""


@rule
def cube(x):
    """x**3 with a hand-written pullback that uses the (tracked, when nested) input."""
    return x**3, lambda dy: (3 * x**2 * dy,)


# rule


def test_rule_with_plain_arguments_is_the_plain_function():
    y = cube(np.array([1.0, 2.0]))
    assert type(y) is np.ndarray
    assert_array_equal(y, [1.0, 8.0])
    assert cube(2.0) == 8.0
    assert not tr.istracked(cube(2.0))


def test_rule_keeps_the_function_name_and_doc():
    assert cube.__name__ == "cube"
    assert "hand-written" in cube.__doc__


def test_rule_with_tracked_arguments_records_one_node():
    calls = {"forward": 0, "pullback": 0}

    @rule
    def scaled(x):
        calls["forward"] += 1

        def pullback(dy):
            calls["pullback"] += 1
            return (dy * 5,)

        # The forward computes 3x, but the gradient is the pullback's 5: only
        # the rule's node is on the tape, not the operations inside it.
        return x * 3, pullback

    x = tr.param(np.array([1.0, 2.0]))
    y = scaled(x)
    assert type(y) is tr.TrackedArray
    assert not tr.isleaf(y)
    assert_array_equal(tr.data(y), [3.0, 6.0])
    tr.back(np.sum(y))
    assert_array_equal(tr.grad(x), [5.0, 5.0])
    assert calls == {"forward": 1, "pullback": 1}


def test_rule_gradient_against_finite_differences():
    assert gradcheck(lambda x: np.sum(np.sin(cube(x))), np.array([0.3, -0.8, 1.1]))


def test_rule_with_several_arguments_and_a_non_differentiable_one():
    @rule
    def affine(x, w, name):
        assert name == "layer"
        return w * x, lambda dy: (dy * w, dy * x, None)

    gx, gw, gname = tr.gradient(
        lambda x, w, name: np.sum(affine(x, w, name) ** 2), np.array([1.0, 2.0]), 3.0, "layer"
    )
    assert_allclose(gx, 2 * 3.0 * np.array([3.0, 6.0]))
    assert gw == pytest.approx(2 * (3.0 * 1 + 6.0 * 2))
    assert gname is None


def test_rule_passes_keyword_arguments_through_undifferentiated():
    @rule
    def scaled(x, *, scale=1.0):
        return scale * x, lambda dy: (scale * dy,)

    (g,) = tr.gradient(lambda x: np.sum(scaled(x, scale=3.0)), np.array([1.0, 2.0]))
    assert_array_equal(g, [3.0, 3.0])
    assert_array_equal(scaled(np.array([1.0]), scale=2.0), [2.0])


def test_rule_refuses_a_tracked_keyword_argument():
    @rule
    def scaled(x, *, scale=1.0):
        return scale * x, lambda dy: (scale * dy,)

    s = tr.param(2.0)
    with pytest.raises(TypeError, match=r"scaled: keyword arguments .* scale= is tracked"):
        scaled(tr.param([1.0]), scale=s)


def test_rule_with_a_mix_of_tracked_and_plain_arguments():
    @rule
    def mul(a, b):
        return a * b, lambda dy: (dy * b, dy * a)

    a = tr.param(np.array([1.0, 2.0]))
    tr.back(np.sum(mul(a, np.array([3.0, 4.0]))))
    assert_array_equal(tr.grad(a), [3.0, 4.0])


def test_track_is_the_explicit_form():
    def square(x):
        return x**2, lambda dy: (2 * x * dy,)

    assert_array_equal(track(square, np.array([3.0])), [9.0])
    (g,) = tr.gradient(lambda x: np.sum(track(square, x)), np.array([3.0, 4.0]))
    assert_array_equal(g, [6.0, 8.0])


def test_hessian_of_a_custom_cube_rule_is_6x():
    x0 = np.array([1.0, -2.0, 0.5])
    H = tr.hessian(lambda x: np.sum(cube(x)), x0)
    assert_allclose(H, np.diag(6 * x0), rtol=1e-15)
    assert_allclose(H, tr.hessian(lambda x: np.sum(x**3), x0), rtol=1e-15)
    assert gradgradcheck(lambda x: np.sum(np.sin(cube(x))), x0 * 0.5)


def test_third_derivative_of_a_custom_rule_through_nested_gradients():
    def d(f):
        return lambda x: tr.gradient(f, x, nest=True)[0]

    # (x³)' = 3x², '' = 6x, ''' = 6.
    assert tr.gradient(d(d(cube)), 1.7)[0] == pytest.approx(6.0, rel=1e-15)
    assert tr.data(d(d(cube))(1.7)) == pytest.approx(6 * 1.7, rel=1e-15)


def test_rule_pullback_returning_too_few_gradients_raises_naming_the_rule():
    @rule
    def bad_count(x, y):
        return x * y, lambda dy: (dy * y,)

    with pytest.raises(TypeError, match=r"bad_count.*1 gradients for 2 inputs"):
        tr.gradient(lambda a, b: np.sum(bad_count(a, b)), np.ones(2), np.ones(2))


def test_rule_pullback_returning_too_many_gradients_raises_naming_the_rule():
    @rule
    def extra(x):
        return x * 2, lambda dy: (dy * 2, dy)

    with pytest.raises(TypeError, match=r"extra.*2 gradients for 1 inputs"):
        tr.gradient(lambda a: np.sum(extra(a)), np.ones(2))


def test_rule_pullback_returning_a_wrong_shape_raises_naming_the_rule():
    @rule
    def bad_shape(x):
        return x * 2, lambda dy: (np.ones(5),)

    with pytest.raises(ValueError, match=r"bad_shape.*shape"):
        tr.gradient(lambda a: np.sum(bad_shape(a)), np.ones(2))


def test_rule_pullback_returning_a_wrong_dtype_raises_naming_the_rule():
    @rule
    def bad_dtype(x):
        return x * 2, lambda dy: ((dy * 2).astype(np.float32),)

    with pytest.raises(TypeError, match=r"bad_dtype.*float32"):
        tr.gradient(lambda a: np.sum(bad_dtype(a)), np.ones(2))


def test_rule_pullback_returning_a_non_array_raises_naming_the_rule():
    @rule
    def bad_type(x):
        return x * 2, lambda dy: ("gradient",)

    with pytest.raises(TypeError, match="bad_type"):
        tr.gradient(lambda a: np.sum(bad_type(a)), np.ones(2))


def test_an_exception_in_a_pullback_propagates_unchanged():
    error = KeyError("raised by the pullback")

    @rule
    def failing(x):
        def pullback(dy):
            raise error

        return x * 2, pullback

    with pytest.raises(KeyError) as raised:
        tr.gradient(lambda a: np.sum(failing(a)), np.ones(2))
    assert raised.value is error
    # The tape and scopes are usable afterwards.
    assert_array_equal(tr.gradient(lambda a: np.sum(cube(a)), np.ones(2))[0], [3.0, 3.0])


def test_an_exception_in_a_rules_forward_propagates():
    @rule
    def failing(x):
        raise ValueError("forward failed")

    with pytest.raises(ValueError, match="forward failed"):
        tr.gradient(lambda a: np.sum(failing(a)), np.ones(2))


def test_rule_keeps_float32():
    (g,) = tr.gradient(lambda a: np.sum(cube(a)), np.array([1.0, 2.0], dtype=np.float32))
    assert g.dtype == np.float32
    assert_array_equal(g, [3.0, 12.0])


# hook


def test_hook_flips_the_sign_of_the_gradient():
    # Tracker.jl's "Hooks": x = param(2); y = hook(-, x); back!(y); grad(x) == -1.
    x = tr.param(2.0)
    tr.back(hook(lambda g: -g, x))
    assert tr.grad(x) == -1.0


def test_hook_is_the_identity_forward_and_transforms_only_its_path():
    def f(x):
        return np.sum(hook(lambda g: -g, x) * 3) + np.sum(x**2)

    x0 = np.array([1.0, 2.0])
    assert tr.gradient(lambda x: np.sum(hook(lambda g: g, x) * 3), x0)[0][0] == 3.0
    assert_array_equal(tr.gradient(f, x0)[0], -3 + 2 * x0)


def test_hook_sees_the_incoming_gradient():
    seen = []

    def record(g):
        seen.append(np.array(tr.data(g)))
        return g

    tr.gradient(lambda x: np.sum(hook(record, x) * np.array([2.0, 5.0])), np.ones(2))
    assert len(seen) == 1
    assert_array_equal(seen[0], [2.0, 5.0])


def test_hook_of_a_plain_value_is_the_value():
    x = np.ones(2)
    assert hook(lambda g: -g, x) is x


def test_hook_is_differentiated_when_nested():
    # h = hook(2g, z) doubles every gradient flowing back through it (as a PyTorch
    # tensor hook does): the nested gradient of h³ is 2·3h², and differentiating
    # that again passes through h once more: 2·2·6h = 24x.
    def inner(x):
        return tr.gradient(lambda z: hook(lambda g: 2 * g, z) ** 3, x, nest=True)[0]

    assert tr.data(inner(1.5)) == pytest.approx(6 * 1.5**2)
    assert tr.gradient(inner, 1.5)[0] == pytest.approx(24 * 1.5)

    # A hook that does not change the gradient leaves every order alone.
    def plain(x):
        return tr.gradient(lambda z: hook(lambda g: g, z) ** 3, x, nest=True)[0]

    assert tr.gradient(plain, 1.5)[0] == pytest.approx(6 * 1.5)


# checkpoint


def test_checkpoint_calls_f_twice():
    # Tracker.jl's "Checkpointing": the count goes 1 → 3.
    count = [0]

    def mul(a, b):
        count[0] += 1
        return a * b

    assert tr.gradient(lambda x: mul(5, x), 3.0)[0] == 5.0
    assert count[0] == 1
    assert tr.gradient(lambda x: checkpoint(mul, 5, x), 3.0)[0] == 5.0
    assert count[0] == 3


def test_checkpoint_of_plain_values_is_f():
    count = [0]

    def f(x):
        count[0] += 1
        return x * 2

    y = checkpoint(f, np.ones(2))
    assert not tr.istracked(y)
    assert_array_equal(y, [2.0, 2.0])
    assert count[0] == 1


def test_checkpoint_gradient_against_finite_differences():
    W = np.array([[0.5, -1.0], [2.0, 0.3]])

    def block(x, w):
        return np.tanh(w @ x) * x

    def f(x, w):
        return np.sum(checkpoint(block, x, w) ** 2)

    x0 = np.array([0.4, -0.9])
    assert gradcheck(f, x0, W)
    expected = tr.gradient(lambda x, w: np.sum(block(x, w) ** 2), x0, W)
    for got, want in zip(tr.gradient(f, x0, W), expected):
        assert_allclose(got, want, rtol=1e-14)


def test_checkpoint_accumulates_into_parameters():
    W = tr.param(np.array([1.0, 2.0]))
    tr.back(np.sum(checkpoint(lambda w: w**2, W)))
    assert_array_equal(tr.grad(W), [2.0, 4.0])


def test_nested_hessian_through_checkpoint_is_right():
    def f(x):
        return np.sum(np.sin(x) * x**2)

    x0 = np.array([0.5, -1.2, 2.0])
    H = tr.hessian(lambda x: checkpoint(f, x), x0)
    assert_allclose(H, tr.hessian(f, x0), rtol=1e-14)
    assert gradgradcheck(lambda x: np.sum(checkpoint(lambda z: np.exp(z) * z, x)), x0)


def test_checkpoint_with_a_non_differentiable_argument():
    def scale(x, n):
        return x * n

    (g,) = tr.gradient(lambda x: np.sum(checkpoint(scale, x, 3) ** 2), np.array([1.0, 2.0]))
    assert_array_equal(g, [18.0, 36.0])


def test_checkpoint_with_string_and_none_arguments():
    def activation(x, name, bias):
        assert name == "tanh" and bias is None
        return np.tanh(x)

    x0 = np.array([0.5, -1.0])
    (g,) = tr.gradient(lambda x: np.sum(checkpoint(activation, x, "tanh", None)), x0)
    assert_allclose(g, 1 - np.tanh(x0) ** 2, rtol=1e-15)


# nobacksies


def test_nobacksies_raises_nesting_error_with_the_message():
    def inner(x):
        (g,) = tr.gradient(lambda z: np.sum(nobacksies("my_op", z**2)), x, nest=True)
        return np.sum(g)

    with pytest.raises(tr.NestingError, match="my_op"):
        tr.gradient(inner, np.ones(2))


def test_nobacksies_refuses_any_backward_pass_through_it():
    x = tr.param(np.ones(2))
    y = nobacksies("no gradient here", x * 2)
    assert_array_equal(tr.data(y), [2.0, 2.0])
    with pytest.raises(tr.NestingError, match="no gradient here"):
        tr.back(np.sum(y))


def test_nobacksies_of_a_plain_value_is_the_value():
    x = np.ones(2)
    assert nobacksies("op", x) is x


def test_nobacksies_does_not_affect_other_paths():
    x = tr.param(np.ones(2))
    unused = nobacksies("op", x * 2)
    tr.back(np.sum(x * 3))
    assert_array_equal(tr.grad(x), [3.0, 3.0])
    assert tr.istracked(unused)


# no_grad


def test_no_grad_records_nothing():
    x = tr.param(np.array([1.0, 2.0]))
    with tr.no_grad():
        y = np.sum(np.tanh(x) * 2)
        z = cube(x)
    assert not tr.istracked(y)
    assert not tr.istracked(z)
    assert_array_equal(z, [1.0, 8.0])


def test_no_grad_inside_a_gradient_makes_a_constant():
    def f(x):
        with tr.no_grad():
            c = x * 2
        return np.sum(c * x)

    assert_array_equal(tr.gradient(f, np.array([1.0, 2.0]))[0], [2.0, 4.0])


# back(once=False)


def test_back_once_false_keeps_the_tape_for_a_second_pass():
    # Tracker.jl's "Intermediates".
    x = tr.param([1.0])
    loss = np.sum((x + x) ** 2)
    tr.back(loss, once=False)
    assert_array_equal(tr.grad(x), [8.0])
    tr.zero_grad(x)
    tr.back(loss, once=False)
    assert_array_equal(tr.grad(x), [8.0])
    tr.back(loss)
    assert_array_equal(tr.grad(x), [16.0])
    with pytest.raises(tr.ConsumedError):
        tr.back(loss)


def test_back_once_false_through_a_custom_rule_and_a_hook():
    x = tr.param(np.array([1.0, 2.0]))
    loss = np.sum(hook(lambda g: 2 * g, cube(x)))
    tr.back(loss, once=False)
    tr.back(loss, once=False)
    assert_array_equal(tr.grad(x), 2 * 2 * 3 * np.array([1.0, 4.0]))


# garbage collection of tapes holding Python callables


def rule_in_a_cycle():
    """A custom rule whose pullback captures a marker and tracked values, in a cycle:
    the result's handle → tape → pullback → holder → the result's handle."""
    marker = Marker()
    holder = []

    @rule
    def double(x):
        return x * 2, lambda dy: (dy * 2 + 0 * np.sum(holder[0]) + 0 * (marker is None),)

    x = tr.param(np.ones(3))
    out = double(x)
    holder.extend([out, x])
    return weakref.ref(marker), out


def hook_in_a_cycle():
    marker = Marker()
    holder = []
    x = tr.param(np.ones(3))
    out = hook(lambda g: g + 0 * np.sum(holder[0]) + 0 * (marker is None), x * 3)
    holder.extend([out, x])
    return weakref.ref(marker), out


def checkpoint_in_a_cycle():
    marker = Marker()
    holder = []
    x = tr.param(np.ones(3))

    def f(z):
        assert marker is not None
        return z * 2 if not holder else z * tr.data(holder[0])

    out = checkpoint(f, x)
    holder.extend([out, x])
    return weakref.ref(marker), out


@pytest.mark.parametrize("make", [rule_in_a_cycle, hook_in_a_cycle, checkpoint_in_a_cycle])
def test_a_tape_whose_callable_captures_tracked_values_is_freed(make):
    ref, out = make()
    gc.collect()
    assert ref() is not None  # the tape still holds the closure
    del out
    gc.collect()
    assert ref() is None


@pytest.mark.parametrize("make", [rule_in_a_cycle, hook_in_a_cycle, checkpoint_in_a_cycle])
def test_a_tape_is_freed_after_its_backward_pass(make):
    ref, out = make()
    tr.back(np.sum(out))
    del out
    gc.collect()
    assert ref() is None


def test_a_custom_rule_inside_gradient_leaves_nothing_behind():
    def run():
        marker = Marker()

        @rule
        def double(x):
            return x * 2, lambda dy: (dy * 2 + 0 * (marker is None),)

        tr.gradient(lambda x: np.sum(double(x)), np.ones(2))
        return weakref.ref(marker)

    ref = run()
    gc.collect()
    assert ref() is None
