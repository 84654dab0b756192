"""Issue 8: bad input, faults and load. Never a crash, never a wrong gradient.

Extends tests/test_errors.py (the first refusals), tests/test_lifetime.py (one
thread-handoff case, one shared-parameter case) and tests/test_zero_copy.py (the
first mutation cases) with:

- the bad-input battery: unsupported dtypes through every entry point, too many
  dimensions, axes, indices, shapes in every binary op and in matmul, losses,
  consumed nodes, non-leaves, `update`, custom rules, and allocations that
  would overflow; each asserts the exception type and what its message says;
- empty and 0-d arrays wherever NumPy accepts them;
- threads: many gradients at once, concurrent `back` into one parameter,
  tracked values handed across threads, and the GIL released during large
  operations and backward passes (shown by a watchdog thread's progress);
- Ctrl-C during a long backward pass or gradient sweep;
- mutation: `update` under a live tape, views that never change, and views
  that cannot be written.
"""

import gc
import os
import queue
import signal
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

import tracker as tr
from tracker.testing import gradcheck

# --------------------------------------------------------------------------------------
# Helpers


def shape_texts(shape):
    """The ways a message may spell `shape`: `[2, 3]` (the core's) or `(2, 3)` (NumPy's)."""
    items = ", ".join(str(n) for n in shape)
    return (f"[{items}]", f"({items},)" if len(shape) == 1 else f"({items})")


def check_message(message, *expected):
    """Each item of `expected` must occur in `message`; a tuple means any one of its items."""
    for item in expected:
        options = item if isinstance(item, tuple) else (item,)
        assert any(option in message for option in options), (
            f"expected one of {options!r} in the message: {message!r}"
        )


def raises(kind, call, *expected):
    """`call()` raises `kind` (exactly that class or a subclass) saying each of `expected`."""
    with pytest.raises(kind) as excinfo:
        call()
    message = str(excinfo.value)
    check_message(message, *expected)
    return message


def in_thread(target, timeout=30.0):
    """Runs `target` in a new thread and returns ("value", v) or ("error", e).

    Fails instead of hanging when the thread does not finish within `timeout`.
    """
    outcome = []

    def body():
        try:
            outcome.append(("value", target()))
        except BaseException as error:
            # Without its traceback: the frames it holds die in this thread (see
            # test_an_error_raised_in_a_worker_can_be_dropped_in_another_thread).
            outcome.append(("error", error.with_traceback(None)))

    thread = threading.Thread(target=body, daemon=True)
    thread.start()
    thread.join(timeout)
    assert not thread.is_alive(), "the thread deadlocked or hung"
    return outcome[0]


THREAD_MESSAGE = ("another thread", "tr.data(x)", "compute it in this thread")


def chain(x, n, factor):
    """`x * factor**n` recorded as `n` multiply nodes."""
    y = x
    for _ in range(n):
        y = y * factor
    return y


# --------------------------------------------------------------------------------------
# Bad input: values of unsupported types


UNSUPPORTED = [
    pytest.param(np.array(["a", "b", "c"]), ("dtype kind 'U'",), id="str-array"),
    pytest.param(np.array([b"a", b"b", b"c"]), ("dtype kind 'S'",), id="bytes-array"),
    pytest.param(np.array([1.0, "a", None], dtype=object), ("dtype kind 'O'",), id="object-array"),
    pytest.param(np.ones(3, dtype=np.complex128), ("complex",), id="complex128"),
    pytest.param(np.ones(3, dtype=np.complex64), ("complex",), id="complex64"),
    pytest.param(np.ones(3, dtype=np.float16), ("float16",), id="float16"),
    pytest.param(np.ones(3, dtype=np.longdouble), ("long double", "longdouble"), id="longdouble"),
    pytest.param(np.zeros(3, dtype="datetime64[s]"), ("dtype kind 'M'",), id="datetime"),
    pytest.param(np.zeros(3, dtype="timedelta64[s]"), ("dtype kind 'm'",), id="timedelta"),
    pytest.param(np.zeros(3, dtype=[("a", "f8")]), ("dtype kind 'V'",), id="structured"),
]


@pytest.mark.parametrize(("value", "what"), UNSUPPORTED)
def test_param_refuses_unsupported_arrays(value, what):
    raises(TypeError, lambda: tr.param(value), what, "not supported", "float64")


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("text", id="str"),
        pytest.param(object(), id="object"),
        pytest.param(None, id="None"),
        pytest.param({"a": 1.0}, id="dict"),
        pytest.param(b"bytes", id="bytes"),
    ],
)
def test_param_refuses_python_objects(value):
    raises(TypeError, lambda: tr.param(value), "not supported", "float64")


def test_param_refuses_a_ragged_list():
    with pytest.raises(ValueError, match="inhomogeneous"):
        tr.param([[1.0, 2.0], [3.0]])


@pytest.mark.parametrize(("value", "what"), UNSUPPORTED)
def test_gradient_refuses_unsupported_arrays_as_constants_of_an_op(value, what):
    x = tr.param(np.ones(3))
    raises(TypeError, lambda: x * value, what, "not supported", "float64")


@pytest.mark.parametrize(
    ("value", "what"),
    [
        pytest.param(np.ones(3, dtype=np.complex128), "complex", id="complex"),
        pytest.param(np.ones(3, dtype=np.float16), "float16", id="float16"),
        pytest.param(np.ones(3, dtype=np.longdouble), ("long double", "float128"), id="longdouble"),
    ],
)
def test_gradient_refuses_unsupported_arguments(value, what):
    raises(TypeError, lambda: tr.gradient(lambda a: np.sum(a * a), value), what, "float")


def test_gradient_passes_non_float_arguments_through_with_no_gradient():
    dates = np.zeros(3, dtype="datetime64[s]")
    words = np.array(["a", "b"])
    grads = tr.gradient(lambda x, d, w: np.sum(x * x) + len(d) + len(w), np.ones(2), dates, words)
    assert_array_equal(grads[0], [2.0, 2.0])
    assert grads[1:] == (None, None)


@pytest.mark.parametrize(
    ("op", "symbol", "other", "type_name"),
    [
        ("add", "+", "text", "str"),
        ("multiply", "*", None, "NoneType"),
        ("power", "**", 1j, "complex"),
        ("matmul", "@", "text", "str"),
        ("subtract", "-", object(), "object"),
        ("divide", "/", 2j, "complex"),
    ],
)
def test_operators_refuse_python_objects(op, symbol, other, type_name):
    x = tr.param(np.ones(3))
    calls = {
        "add": lambda: x + other,
        "multiply": lambda: x * other,
        "power": lambda: x**other,
        "matmul": lambda: x @ other,
        "subtract": lambda: x - other,
        "divide": lambda: x / other,
    }
    raises(TypeError, calls[op], symbol, type_name, "TrackedArray")


@pytest.mark.parametrize(
    ("op", "call", "what"),
    [
        pytest.param("add", lambda x: x + np.ones(3, np.complex128), "complex", id="add-complex"),
        pytest.param("multiply", lambda x: x * np.ones(3, np.float16), "float16", id="mul-f16"),
        pytest.param(
            "subtract", lambda x: np.subtract(x, np.array(["a", "b", "c"])), "'U'", id="sub-str"
        ),
        pytest.param(
            "matmul", lambda x: x @ np.array([1.0, 2.0, 3.0], dtype=object), "'O'", id="matmul-obj"
        ),
        pytest.param(
            "where",
            lambda x: np.where(np.array([True, False, True]), x, np.ones(3, np.complex64)),
            "complex",
            id="where-complex",
        ),
        pytest.param(
            "update", lambda x: tr.update(x, np.ones(3, np.complex128)), "complex", id="update"
        ),
        pytest.param(
            "back", lambda x: tr.back(x * 2.0, np.ones(3, np.complex128)), "complex", id="back-seed"
        ),
    ],
)
def test_unsupported_dtype_errors_name_the_op_they_were_passed_to(op, call, what):
    """In a long expression, "complex values are not supported" alone does not say where."""
    x = tr.param(np.ones(3))
    raises(TypeError, lambda: call(x), op, what, "float64")


@pytest.mark.parametrize("ndim", [33, 40, 64])
def test_more_dimensions_than_supported_is_an_error_or_works_never_a_panic(ndim):
    """NumPy 2 allows up to 64 dimensions. Either tracker handles such arrays, or it
    refuses them with a ValueError/TypeError that says so; a Rust panic (which reaches
    Python as a BaseException, past `except Exception`) is neither."""
    value = np.array([1.0, 2.0]).reshape((1,) * (ndim - 1) + (2,))
    for attempt, expected in (
        (lambda: tr.data(tr.param(value)), value),
        (lambda: tr.gradient(lambda a: np.sum(a * a), value)[0], 2.0 * value),
        (lambda: tr.data(tr.param([1.0, 2.0]).reshape(value.shape)), value),
        (lambda: tr.data(tr.param([3.0, 3.0]) * value), 3.0 * value),
    ):
        try:
            result = attempt()
        except (ValueError, TypeError) as error:
            check_message(str(error), "dimension", str(ndim))
        else:
            assert result.shape == value.shape
            assert_array_equal(result, expected)


# --------------------------------------------------------------------------------------
# Bad input: axes


REDUCTIONS = ["sum", "mean", "prod", "max", "min"]


@pytest.mark.parametrize("name", REDUCTIONS)
@pytest.mark.parametrize("axis", [2, 7, -3, -10])
def test_reductions_refuse_out_of_range_axes(name, axis):
    m = tr.param(np.ones((2, 3)))
    message = raises(
        (IndexError, ValueError), lambda: getattr(np, name)(m, axis=axis), name, "axis"
    )
    check_message(message, str(axis), "dimension 2")
    # The method spelling says the same.
    raises((IndexError, ValueError), lambda: getattr(m, name)(axis=axis), name, str(axis))


@pytest.mark.parametrize("name", REDUCTIONS)
def test_reductions_refuse_duplicate_and_mixed_bad_axes(name):
    m = tr.param(np.ones((2, 3)))
    raises((IndexError, ValueError), lambda: getattr(np, name)(m, axis=(0, -2)), name, "axis")
    raises((IndexError, ValueError), lambda: getattr(np, name)(m, axis=(1, 2)), name, "axis")


@pytest.mark.parametrize("name", REDUCTIONS)
def test_reduction_axis_of_the_wrong_type(name):
    m = tr.param(np.ones((2, 3)))
    raises(TypeError, lambda: getattr(np, name)(m, axis=1.0), name, "axis")
    raises(TypeError, lambda: getattr(np, name)(m, axis="rows"), name, "axis")


def test_reduction_of_a_0d_value_has_no_axis_0():
    s = tr.param(2.0)
    raises((IndexError, ValueError), lambda: np.sum(s, axis=0), "sum", "axis 0", "dimension 0")


@pytest.mark.parametrize("name", REDUCTIONS)
@pytest.mark.parametrize("axis", [-1, -2, (-1, -2)])
def test_negative_axes_give_numpy_values_and_correct_gradients(name, axis):
    rng = np.random.default_rng(5)
    x0 = rng.uniform(0.5, 2.0, (3, 4))
    reduce = getattr(np, name)
    (g,) = tr.gradient(lambda x: np.sum(reduce(x, axis=axis) ** 2), x0)
    assert_allclose(tr.data(reduce(tr.param(x0), axis=axis)), reduce(x0, axis=axis), rtol=1e-15)
    assert gradcheck(lambda x: np.sum(reduce(x, axis=axis) ** 2), x0, rtol=1e-7, atol=1e-9)
    assert g.shape == x0.shape


def test_transpose_refuses_axes_that_are_not_a_permutation():
    m = tr.param(np.ones((2, 3)))
    for axes in ((0, 2), (0, 0), (1, -3), (0, 1, 2)):
        raises((IndexError, ValueError), lambda axes=axes: m.transpose(*axes), "transpose")
        raises((IndexError, ValueError), lambda axes=axes: np.transpose(m, axes), "transpose")


@pytest.mark.parametrize(
    ("op", "call"),
    [
        ("concatenate", lambda m: np.concatenate([m, m], axis=2)),
        ("concatenate", lambda m: np.concatenate([m, m], axis=-3)),
        ("stack", lambda m: np.stack([m, m], axis=3)),
        ("stack", lambda m: np.stack([m, m], axis=-4)),
    ],
)
def test_joining_refuses_out_of_range_axes_and_names_the_op(op, call):
    m = tr.param(np.ones((2, 3)))
    raises((IndexError, ValueError), lambda: call(m), op, "axis", "out of bounds")


@pytest.mark.parametrize(
    ("op", "call"),
    [
        ("concatenate", lambda m: np.concatenate([m, tr.param(np.ones((2, 4)))], axis=0)),
        ("stack", lambda m: np.stack([m, tr.param(np.ones((3, 2)))])),
    ],
)
def test_joining_refuses_mismatched_shapes_and_names_the_op(op, call):
    m = tr.param(np.ones((2, 3)))
    raises(ValueError, lambda: call(m), op, "shape")


# --------------------------------------------------------------------------------------
# Bad input: indices


@pytest.mark.parametrize(
    ("key", "index", "axis", "size"),
    [
        (2, 2, 0, 2),
        (-3, -3, 0, 2),
        ((0, 3), 3, 1, 3),
        ((1, -4), -4, 1, 3),
        ((slice(None), 5), 5, 1, 3),
        ([0, 2], 2, 0, 2),
        (np.array([1, -3]), -3, 0, 2),
        ((slice(None), np.array([[0], [9]])), 9, 1, 3),
        ((Ellipsis, -7), -7, 1, 3),
    ],
)
def test_out_of_range_indices(key, index, axis, size):
    m = tr.param(np.arange(6.0).reshape(2, 3))
    raises(IndexError, lambda: m[key], "getitem", str(index), f"axis {axis}", f"size {size}")
    # A failed index records nothing: the parameter is still usable.
    tr.back(np.sum(m * 2.0))
    assert_array_equal(tr.grad(m), np.full((2, 3), 2.0))


def test_too_many_indices():
    m = tr.param(np.ones((2, 3)))
    raises(IndexError, lambda: m[0, 0, 0], "getitem", "too many indices", "2-dimensional")
    s = tr.param(np.array(2.0))
    raises(IndexError, lambda: s[0], "getitem", "too many indices", "0-dimensional")


def test_boolean_mask_of_the_wrong_length():
    x = tr.param(np.ones(3))
    with pytest.raises(IndexError):
        x[np.array([True, False])]
    with pytest.raises(IndexError):
        x[np.array([True, False, True, True])]


@pytest.mark.parametrize(
    "key",
    [1.5, "a", object(), [1.5], np.array([0.0]), (0.5, 1)],
    ids=["float", "str", "object", "float-list", "float-array", "float-in-tuple"],
)
def test_indices_of_the_wrong_type(key):
    x = tr.param(np.ones((3, 3)))
    raises(IndexError, lambda: x[key], "integers", "slices", "boolean arrays")


def test_index_too_large_for_an_integer():
    x = tr.param(np.ones(3))
    for key in (2**70, -(2**70)):
        with pytest.raises((IndexError, OverflowError)):
            x[key]


def test_negative_indices_give_the_right_gradient():
    x0 = np.arange(1.0, 7.0).reshape(2, 3)

    def f(x):
        return x[-1, -1] * 10.0 + np.sum(x[-2]) + np.sum(x[:, np.array([-1, -3, -1])] ** 2)

    (g,) = tr.gradient(f, x0)
    expected = np.zeros((2, 3))
    expected[1, 2] += 10.0
    expected[0] += 1.0
    expected[:, 2] += 2 * (2 * x0[:, 2])
    expected[:, 0] += 2 * x0[:, 0]
    assert_allclose(g, expected, rtol=1e-15)


# --------------------------------------------------------------------------------------
# Bad input: shapes in every binary op and in matmul


BINARY = {
    "add": np.add,
    "subtract": np.subtract,
    "multiply": np.multiply,
    "divide": np.divide,
    "power": np.power,
    "maximum": np.maximum,
    "minimum": np.minimum,
}

OPERATORS = {
    "add": lambda a, b: a + b,
    "subtract": lambda a, b: a - b,
    "multiply": lambda a, b: a * b,
    "divide": lambda a, b: a / b,
    "power": lambda a, b: a**b,
}


@pytest.mark.parametrize("name", list(BINARY))
@pytest.mark.parametrize(
    ("left", "right"),
    [((2, 3), (4,)), ((2, 3), (3, 2)), ((5,), (4, 1, 3)), ((2, 1, 3), (4, 2)), ((0,), (2,))],
)
@pytest.mark.parametrize("tracked", ["both", "left", "right"])
def test_binary_ops_refuse_shapes_that_do_not_broadcast(name, left, right, tracked):
    a = np.full(left, 1.5)
    b = np.full(right, 2.0)
    a = tr.param(a) if tracked in ("both", "left") else a
    b = tr.param(b) if tracked in ("both", "right") else b
    raises(
        ValueError,
        lambda: BINARY[name](a, b),
        name,
        "broadcast",
        shape_texts(left),
        shape_texts(right),
    )
    if name in OPERATORS:
        raises(ValueError, lambda: OPERATORS[name](a, b), name, shape_texts(left))


@pytest.mark.parametrize(
    ("cond", "a", "b"),
    [((2, 3), (2, 3), (4,)), ((5,), (2, 3), (2, 3)), ((2, 3), (3, 2), (2, 3)), ((4,), (3,), ())],
)
def test_where_refuses_shapes_that_do_not_broadcast(cond, a, b):
    x = tr.param(np.ones(a))
    mask = np.ones(cond, dtype=bool)
    for call in (lambda: np.where(mask, x, np.ones(b)), lambda: np.where(mask, np.ones(b), x)):
        raises(ValueError, call, "where", "broadcast", shape_texts(a))


@pytest.mark.parametrize(
    ("left", "right"),
    [((2, 3), (4, 2)), ((3,), (4,)), ((2, 3), (2,)), ((3,), (2, 3)), ((1, 5), (4, 1))],
)
@pytest.mark.parametrize(
    "spelling",
    ["operator", "np.matmul", "np.dot", "method", "reflected"],
)
def test_matmul_refuses_unaligned_shapes(left, right, spelling):
    a = tr.param(np.ones(left))
    b = np.ones(right)
    call = {
        "operator": lambda: a @ b,
        "np.matmul": lambda: np.matmul(a, tr.param(b)),
        "np.dot": lambda: np.dot(a, b),
        "method": lambda: a.dot(b),
        "reflected": lambda: np.ones(left) @ tr.param(b),
    }[spelling]
    raises(
        ValueError,
        call,
        ("matmul", "dot"),
        shape_texts(left),
        shape_texts(right),
        "aligned",
    )


def test_matmul_of_0d_operands_is_refused_like_numpy():
    s = tr.param(2.0)
    m = tr.param(np.ones((2, 2)))
    with pytest.raises(ValueError):
        np.ones(()) @ np.ones((2, 2))  # NumPy refuses too
    for call in (lambda: s @ m, lambda: m @ s, lambda: s @ s):
        raises((ValueError, TypeError), call, "matmul", "[]")


# --------------------------------------------------------------------------------------
# Bad input: losses, consumed nodes, non-leaves, update


@pytest.mark.parametrize(
    "call",
    [
        pytest.param(lambda x: tr.back(x * 2.0), id="back"),
        pytest.param(lambda x: (x * 2.0).back(), id="method"),
        pytest.param(lambda x: tr.gradient(lambda a: a * 2.0, tr.data(x)), id="gradient"),
        pytest.param(lambda x: tr.withgradient(lambda a: (a, 1.0), tr.data(x)), id="withgradient"),
        pytest.param(lambda x: tr.hessian(lambda a: a**2, tr.data(x)), id="hessian"),
    ],
)
def test_non_scalar_loss_without_a_seed(call):
    x = tr.param(np.ones((2, 2)))
    raises(tr.LossError, lambda: call(x), shape_texts((2, 2)), "not a scalar", "dy", "sum")
    assert_array_equal(tr.grad(x), np.zeros((2, 2)))


def test_seed_of_the_wrong_shape_for_a_scalar():
    x = tr.param([1.0, 2.0])
    raises(tr.LossError, lambda: tr.back(np.sum(x), np.ones(2)), "seed", "[2]", "[]")


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize(
    ("make", "word"),
    [
        (lambda s: s * np.nan, "NaN"),
        (lambda s: s / 0.0, "inf"),
        (lambda s: -s / 0.0, "-inf"),
        (lambda s: np.exp(s * 1e4), "inf"),
    ],
)
def test_non_finite_loss(dtype, make, word):
    x = tr.param(np.array([1.0, 2.0], dtype=dtype))
    with np.errstate(all="ignore"):
        raises(tr.LossError, lambda: tr.back(make(np.sum(x))), word, "non-finite")
        assert_array_equal(tr.grad(x), [0.0, 0.0])
        x0 = np.array([1.0, 2.0], dtype=dtype)
        raises(tr.LossError, lambda: tr.gradient(lambda a: make(np.sum(a)), x0), word)
        raises(tr.LossError, lambda: tr.withgradient(lambda a: make(np.sum(a)), x0), word)
    # Nothing was consumed: the same parameter back-propagates a finite loss.
    tr.back(np.sum(x * 3.0))
    assert_array_equal(tr.grad(x), [3.0, 3.0])


def test_second_backward_through_a_shared_consumed_node():
    x = tr.param([1.0, 2.0])
    z = tr.param([1.0, 1.0])
    h = np.exp(x)
    tr.back(np.sum(h))
    first = np.array(tr.grad(x))
    second_loss = np.sum(z * 5.0) + np.sum(h * 2.0)
    raises(tr.ConsumedError, lambda: tr.back(second_loss), "`exp`", "once=False", "back()")
    # The failed pass changed no gradient: not x's, nor z's, whose branch it never reached.
    assert_array_equal(tr.grad(x), first)
    assert_array_equal(tr.grad(z), [0.0, 0.0])
    # The failed once=True pass consumed the nodes it passed before reaching `exp`.
    raises(tr.ConsumedError, lambda: second_loss.back(), "`add`", "once=False")


def test_second_backward_with_once_false_then_once_true_then_again():
    x = tr.param([1.0, 2.0])
    loss = np.sum(x * x)
    tr.back(loss, once=False)
    tr.back(loss)
    assert_array_equal(tr.grad(x), [4.0, 8.0])
    raises(tr.ConsumedError, lambda: tr.back(loss, once=False), "`sum`", "once=False")
    assert_array_equal(tr.grad(x), [4.0, 8.0])


@pytest.mark.parametrize(
    ("op", "make"),
    [
        ("getitem", lambda x: x[0]),
        ("sum", lambda x: np.sum(x)),
        ("exp", lambda x: np.exp(x)),
        ("matmul", lambda x: x @ x),
    ],
)
def test_grad_of_a_non_leaf(op, make):
    x = tr.param([1.0, 2.0])
    raises(tr.TrackerError, lambda: tr.grad(make(x)), "grad", f"`{op}`", "tr.param", "tr.gradient")
    raises(tr.TrackerError, lambda: make(x).grad, f"`{op}`", "tr.param")


def test_grad_of_an_untracked_value():
    for value in (np.ones(2), 3.0, "text"):
        raises(TypeError, lambda value=value: tr.grad(value), "grad", "tr.param")


@pytest.mark.parametrize(
    ("shape", "delta"),
    [
        ((3,), np.ones(4)),
        ((3,), np.ones((2, 3))),
        ((3,), np.ones((1, 3))),
        ((3,), 1.0),
        ((2, 2), np.ones(4)),
        ((), np.ones(2)),
        ((), np.ones(1)),
        ((0,), np.ones(1)),
    ],
)
def test_update_with_the_wrong_shape(shape, delta):
    x0 = np.arange(float(np.prod(shape))).reshape(shape)
    x = tr.param(x0)
    raises(
        ValueError,
        lambda: tr.update(x, delta),
        "update",
        shape_texts(np.shape(delta)),
        shape_texts(shape),
        "parameter",
    )
    assert_array_equal(tr.data(x), x0)  # a refused update changes nothing


def test_update_of_a_non_leaf_or_a_plain_array():
    x = tr.param([1.0, 2.0])
    raises(TypeError, lambda: tr.update(np.sum(x), 1.0), "update", "`sum`", "parameter")
    raises(TypeError, lambda: tr.update(np.ones(2), np.ones(2)), "update", "tr.param")


# --------------------------------------------------------------------------------------
# Bad input: custom rules (tr.rule) returning the wrong gradients


@tr.rule
def too_many(a):
    return a * 2.0, lambda dy: (dy * 2.0, dy)


@tr.rule
def too_few(a, b):
    return a * b, lambda dy: (dy * b,)


@tr.rule
def empty_tuple(a):
    return a * 2.0, lambda dy: ()


@tr.rule
def wrong_shape(a):
    return a * 2.0, lambda dy: (np.ones(5),)


@tr.rule
def broadcastable_shape(a):
    return a * 2.0, lambda dy: (np.ones((2, 3)),)


@tr.rule
def scalar_for_array(a):
    return a * 2.0, lambda dy: (1.0,)


@tr.rule
def float32_for_float64(a):
    return a * 2.0, lambda dy: (np.ones(3, dtype=np.float32),)


@tr.rule
def complex_gradient(a):
    return a * 2.0, lambda dy: (np.ones(3, dtype=np.complex128),)


@tr.rule
def string_gradient(a):
    return a * 2.0, lambda dy: ("text",)


RULE_CASES = [
    pytest.param(too_many, 1, TypeError, ("returned 2 gradients", "1 input", "one per input"),
                 id="too-many"),
    pytest.param(too_few, 2, TypeError, ("returned 1 gradients", "2 inputs", "None"),
                 id="too-few"),
    pytest.param(empty_tuple, 1, TypeError, ("returned 0 gradients", "one per input"),
                 id="none-at-all"),
    pytest.param(wrong_shape, 1, ValueError, ("gradient 0", "[5]", "input 0", "[3]"),
                 id="wrong-shape"),
    pytest.param(scalar_for_array, 1, ValueError, ("gradient 0", "[]", "[3]"),
                 id="scalar-for-array"),
    pytest.param(float32_for_float64, 1, TypeError, ("gradient 0", "float32", "float64"),
                 id="float32"),
    pytest.param(complex_gradient, 1, TypeError, ("complex", "float64"), id="complex"),
    pytest.param(string_gradient, 1, TypeError, ("str",), id="string"),
]  # fmt: skip


@pytest.mark.parametrize(("rule", "arity", "kind", "expected"), RULE_CASES)
def test_custom_rule_returning_wrong_gradients(rule, arity, kind, expected):
    """The error names the rule (the decorated function), what was wrong, and the remedy."""
    p = tr.param(np.ones(3))
    args = (p,) * arity
    raises(kind, lambda: tr.back(np.sum(rule(*args))), rule.__name__, *expected)
    raises(
        kind,
        lambda: tr.gradient(lambda a: np.sum(rule(*(a,) * arity)), np.ones(3)),
        rule.__name__,
        *expected,
    )
    # The interpreter and this thread's tape are usable afterwards.
    (g,) = tr.gradient(lambda a: np.sum(a * a), np.array([1.0, 2.0]))
    assert_array_equal(g, [2.0, 4.0])


def test_custom_rule_gradient_of_a_broadcast_shape_is_summed_to_the_input():
    """As PyTorch's autograd.Function: a gradient the input's shape broadcasts to is summed
    back to it; one it does not broadcast to is refused (the cases above)."""
    p = tr.param(np.ones(3))
    tr.back(np.sum(broadcastable_shape(p)))
    assert_array_equal(tr.grad(p), [2.0, 2.0, 2.0])
    (g,) = tr.gradient(lambda a: np.sum(broadcastable_shape(a)), np.ones(3))
    assert_array_equal(g, [2.0, 2.0, 2.0])


def test_hook_returning_the_wrong_shape():
    x = tr.param(np.ones(3))
    raises(ValueError, lambda: tr.back(np.sum(tr.hook(lambda g: np.ones(5), x))), "hook", "[5]")


def test_custom_rule_whose_pullback_raises_propagates_the_error():
    @tr.rule
    def fragile(a):
        def pullback(dy):
            raise RuntimeError("the pullback failed")

        return a * 2.0, pullback

    with pytest.raises(RuntimeError, match="the pullback failed"):
        tr.gradient(lambda a: np.sum(fragile(a)), np.ones(3))
    (g,) = tr.gradient(lambda a: np.sum(a * 3.0), np.ones(2))
    assert_array_equal(g, [3.0, 3.0])


def test_state_after_a_rule_error_in_the_middle_of_back():
    """A backward pass that fails part-way (here a custom rule's wrong gradient; Ctrl-C
    behaves the same, see the interrupt tests) leaves every parameter whose nodes the
    sweep already passed with its full contribution, and every other parameter
    untouched; with once=True the nodes it passed are consumed."""
    p = tr.param([1.0, 2.0])
    q = tr.param([3.0, 4.0])
    loss = np.sum(wrong_shape(p * 2.0)) + np.sum(q * q)  # q's nodes come later on the tape
    with pytest.raises(ValueError, match="wrong_shape"):
        tr.back(loss)
    assert_array_equal(tr.grad(q), [6.0, 8.0])  # reached before the failure
    assert_array_equal(tr.grad(p), [0.0, 0.0])  # behind the failing rule
    raises(tr.ConsumedError, lambda: tr.back(loss), "once=False")


# --------------------------------------------------------------------------------------
# Bad input: allocations that would overflow or cannot be satisfied

# Each needs at least 2**47 bytes: more than a process's address space, so no
# overcommit setting can make it "succeed" and be killed later. The inputs are
# small (at most 32 MB), and tracker, not NumPy, computes the result's size.
N = 2**22


def column(n, dtype=np.float64):
    return np.ones((n, 1), dtype=dtype)


def row(n, dtype=np.float64):
    return np.ones((1, n), dtype=dtype)


@pytest.mark.parametrize("name", list(BINARY))
def test_a_binary_op_whose_result_cannot_be_allocated_raises_memory_error(name):
    a = tr.param(column(N))
    raises(MemoryError, lambda: BINARY[name](a, row(N)), name, "allocate")
    # Nothing was recorded and nothing broke: the next op works.
    tr.back(np.sum(a[:3] * 2.0))
    assert_array_equal(tr.grad(a)[:4, 0], [2.0, 2.0, 2.0, 0.0])


def test_matmul_whose_result_cannot_be_allocated_raises_memory_error():
    a = tr.param(column(N, np.float32))
    b = tr.param(row(N, np.float32))
    raises(MemoryError, lambda: a @ b, "matmul", "allocate")


def test_where_whose_result_size_overflows_raises_memory_error():
    # 2**16 ** 3 = 2**48 elements: 2**51 bytes.
    n = 2**16
    cond = np.ones((n, 1, 1), dtype=bool)
    a = tr.param(np.ones((1, n, 1)))
    b = np.ones((1, 1, n))
    raises(MemoryError, lambda: np.where(cond, a, b), "where", "allocate")
    # 2**22 ** 3 = 2**66 elements: the element count itself overflows 64 bits.
    n = 2**22
    cond = np.ones((n, 1, 1), dtype=bool)
    a = tr.param(np.ones((1, n, 1), dtype=np.float32))
    b = np.ones((1, 1, n), dtype=np.float32)
    raises(MemoryError, lambda: np.where(cond, a, b), "where", "allocate")


def test_memory_error_inside_gradient_leaves_the_thread_usable():
    raises(
        MemoryError,
        lambda: tr.gradient(lambda u, v: np.sum(u * v), column(N), row(N)),
        "multiply",
    )
    raises(
        MemoryError,
        lambda: tr.gradient(lambda u: np.sum(u @ u.T), column(N, np.float32)),
        "matmul",
    )
    (g,) = tr.gradient(lambda u: np.sum(u * u), np.array([1.0, 2.0]))
    assert_array_equal(g, [2.0, 4.0])


def test_reshape_to_a_shape_whose_size_overflows():
    e = tr.param(np.zeros(0))
    with pytest.raises(ValueError):
        np.zeros(0).reshape(2**40, 2**40, 0)  # NumPy refuses
    with pytest.raises((MemoryError, ValueError)) as excinfo:
        e.reshape(2**40, 2**40, 0)
    assert "reshape" in str(excinfo.value)
    # A large but representable empty shape is fine, as in NumPy.
    assert e.reshape(2**20, 2**20, 0).shape == (2**20, 2**20, 0)


# --------------------------------------------------------------------------------------
# Empty and 0-d arrays


def empty(*shape):
    return np.zeros(shape)


EMPTY_CASES = [
    pytest.param(lambda x: np.sum(x), (empty(0),), id="sum"),
    pytest.param(lambda x: np.sum(x**2), (empty(0, 3),), id="sum-0x3"),
    pytest.param(lambda x: np.sum(np.sum(x, axis=0) ** 2), (empty(0, 3),), id="sum-axis0"),
    pytest.param(lambda x: np.sum(np.sum(x, axis=1)), (empty(0, 3),), id="sum-axis1"),
    pytest.param(lambda x: np.sum(x.sum(axis=-1, keepdims=True)), (empty(3, 0),), id="keepdims"),
    pytest.param(lambda x: np.prod(x), (empty(0),), id="prod"),
    pytest.param(lambda x: np.sum(np.prod(x, axis=1)), (empty(2, 0),), id="prod-axis"),
    pytest.param(lambda x: np.sum(np.mean(x, axis=1)), (empty(0, 2),), id="mean-axis"),
    pytest.param(lambda x: np.sum(np.max(x, axis=0)), (empty(2, 0),), id="max-axis0"),
    pytest.param(lambda x: np.sum(np.min(x, axis=(0, 2))), (empty(3, 0, 2),), id="min-axes"),
    pytest.param(lambda x: np.sum(np.exp(x) * 2.0 + np.tanh(x)), (empty(3, 0),), id="unary"),
    pytest.param(lambda x: np.sum(x.reshape(0, 5)), (empty(5, 0),), id="reshape"),
    pytest.param(lambda x: np.sum(x.T @ np.ones((0, 2))), (empty(0, 4),), id="transpose"),
    pytest.param(lambda a, b: np.sum((a @ b) ** 2), (empty(2, 0), empty(0, 3)), id="matmul-k0"),
    pytest.param(lambda a, b: np.sum(a @ b + 1.0), (np.ones((0, 2)), np.ones((2, 3))),
                 id="matmul-m0"),
    pytest.param(lambda a, b: a @ b, (empty(0), empty(0)), id="dot-0"),
    pytest.param(lambda a, b: np.sum(a @ b), (np.ones((3, 0)), np.ones((0, 3))), id="outer-k0"),
    pytest.param(lambda x: np.sum(x[2:2]), (np.arange(4.0),), id="empty-slice"),
    pytest.param(lambda x: np.sum(x[:, 5:]), (np.ones((2, 3)),), id="empty-slice-2d"),
    pytest.param(lambda x: np.sum(x[np.array([], dtype=int)]), (np.arange(4.0),), id="empty-take"),
    pytest.param(lambda x: np.sum(x[x > 10.0]), (np.arange(4.0),), id="empty-mask"),
    pytest.param(lambda x: np.sum(x[[]]), (np.ones((2, 2)),), id="empty-list"),
    pytest.param(lambda a, b: np.sum(np.concatenate([a, b]) ** 2), (empty(0), np.ones(2)),
                 id="concatenate"),
    pytest.param(lambda x: np.sum(np.stack([x, x])), (empty(0, 2),), id="stack"),
    pytest.param(lambda a, b: np.sum(a * b), (empty(0, 1), np.array([1.0, 2.0])),
                 id="broadcast-to-empty"),
    pytest.param(lambda x: np.sum(np.where(x > 0, x, -x)), (empty(0),), id="where"),
    pytest.param(lambda x: np.sum(np.maximum(x, 0.0)), (empty(4, 0),), id="maximum"),
]  # fmt: skip


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize(("f", "args"), EMPTY_CASES)
def test_empty_arrays(f, args, dtype):
    """The value is NumPy's; every gradient has its argument's shape and dtype, and agrees
    with finite differences (trivially for an empty argument)."""
    args = tuple(np.asarray(a, dtype=dtype) for a in args)
    expected = f(*args)
    value, grads = tr.withgradient(f, *args)
    assert_allclose(value, expected, rtol=1e-6)
    for arg, g in zip(args, grads):
        assert g.shape == arg.shape
        assert g.dtype == dtype
    if dtype == np.float64:
        assert gradcheck(f, *args, rtol=1e-7, atol=1e-9)


def test_empty_arrays_with_back_and_params():
    p = tr.param(np.zeros((0, 2)))
    tr.back(np.sum(p * 3.0))
    assert tr.grad(p).shape == (0, 2)
    q = tr.param(np.zeros((0, 2)))
    tr.back(q * 3.0, np.zeros((0, 2)))
    assert tr.grad(q).shape == (0, 2)
    assert len(q) == 0
    assert list(q) == []
    tr.update(q, np.zeros((0, 2)))
    assert tr.data(q).shape == (0, 2)


def test_empty_arrays_in_derivatives():
    assert tr.hessian(lambda x: np.sum(x**3), np.zeros(0)).shape == (0, 0)
    assert tr.jacobian(lambda x: x**3, np.zeros(0)).shape == (0, 0)
    assert tr.jacobian(lambda x: x[:0], np.ones(3)).shape == (0, 3)
    jac = tr.jacobian(lambda x: np.stack([np.sum(x), np.sum(x * x)]), np.zeros(0))
    assert jac.shape == (2, 0)


@pytest.mark.parametrize("name", ["max", "min"])
def test_reductions_numpy_refuses_on_empty_arrays_are_refused(name):
    reduce = getattr(np, name)
    raises(ValueError, lambda: reduce(tr.param(np.zeros(0))), name, "zero-size")
    raises(ValueError, lambda: reduce(tr.param(np.zeros((2, 0))), axis=1), name, "zero-size")


def test_the_mean_of_nothing_is_a_nan_loss():
    # NumPy warns and returns NaN; as a loss it is refused as NaN.
    raises(tr.LossError, lambda: tr.gradient(lambda x: np.mean(x), np.zeros(0)), "NaN")


ZERO_D_CASES = [
    pytest.param(lambda x: x * x, id="square"),
    pytest.param(lambda x: np.exp(x) + np.sum(x) + x.sum() + np.mean(x), id="reduce-0d"),
    pytest.param(lambda x: np.tanh(x) ** 2 / (1.0 + x) - np.maximum(x, 1.0), id="mixed"),
    pytest.param(lambda x: np.where(x > 0, x * 3.0, x), id="where"),
    pytest.param(lambda x: np.sum(x.reshape(1, 1) * np.ones((2, 2))), id="reshape-up"),
    pytest.param(lambda x: np.sum(x * np.arange(3.0)), id="broadcast"),
    pytest.param(lambda x: np.sum(np.stack([x, 2.0 * x]) ** 2), id="stack"),
    pytest.param(lambda x: x[()] * 2.0, id="index-empty-tuple"),
    pytest.param(lambda x: np.sum(x[...]) * 2.0, id="ellipsis"),
    pytest.param(lambda x: np.sum(x[None] ** 3), id="newaxis"),
    pytest.param(lambda x: x.T * np.sum(x, axis=()), id="transpose-and-empty-axes"),
    pytest.param(lambda x: np.prod(x) * np.max(x) - np.min(x) ** 2, id="prod-max-min"),
    pytest.param(lambda x: np.sum(np.maximum(x, np.array([0.0, 5.0, 1.0]))), id="maximum-bcast"),
]


@pytest.mark.parametrize("f", ZERO_D_CASES)
@pytest.mark.parametrize(
    "x0",
    [np.array(1.25), np.float64(1.25), 1.25],
    ids=["0d-array", "numpy-scalar", "python-float"],
)
def test_0d_values(f, x0):
    with np.errstate(all="ignore"):
        expected = f(np.float64(x0))
    value, (g,) = tr.withgradient(f, x0)
    assert_allclose(value, expected, rtol=1e-15)
    assert np.shape(g) == ()
    assert gradcheck(f, x0, rtol=1e-7, atol=1e-9)


def test_0d_parameters_and_derivatives():
    p = tr.param(np.array(3.0))
    assert type(p) is tr.TrackedReal
    tr.back(p * p)
    assert tr.grad(p) == 6.0
    tr.back(p * 2.0, np.array(3.0))
    assert tr.grad(p) == 12.0
    assert tr.data(tr.update(p, np.array(1.0))) == 4.0
    assert tr.hessian(lambda x: x**3, np.array(2.0)) == 12.0
    assert tr.jacobian(lambda x: x**3, np.array(2.0)) == 12.0
    (g,) = tr.gradient(lambda x: x * x, np.float32(3.0))
    assert g.dtype == np.float32
    assert g == 6.0
    with pytest.raises(TypeError, match="len"):
        len(p)


# --------------------------------------------------------------------------------------
# Threads


def test_four_threads_each_compute_a_thousand_gradients():
    """Per-thread values are checked at every iteration; all four also `back` into one
    shared parameter with integer coefficients, so the final sum is exact."""
    shared = tr.param(np.array([1.0, -2.0, 0.5, 3.0]))
    start = threading.Barrier(4)
    failures = {k: [] for k in range(4)}
    completed = dict.fromkeys(range(4), 0)
    iterations = 1_000
    coefficients = [np.array([1.0, 2.0, 3.0, 4.0]) * (k + 1) for k in range(4)]

    def work(k):
        try:
            own = tr.param(np.full(3, float(k)))
            weights = np.linspace(-1.0, 1.0, 3) * (k + 1)
            start.wait(timeout=30)
            for i in range(iterations):
                x0 = np.array([0.1 * k, 0.01 * i, -0.5]) + 0.25
                (g,) = tr.gradient(lambda x: np.sum(weights * np.tanh(x)) + k * np.sum(x**2), x0)
                expected = weights * (1.0 - np.tanh(x0) ** 2) + 2.0 * k * x0
                if not np.allclose(g, expected, rtol=1e-13, atol=0):
                    failures[k].append((i, g, expected))
                tr.back(np.sum(shared * coefficients[k]))
                loss = np.sum(own * own) * (i + 1)
                tr.back(loss)
                if tr.data(loss) != 3 * k * k * (i + 1) or not np.array_equal(
                    tr.grad(own), np.full(3, 2.0 * k * (i + 1))
                ):
                    failures[k].append((i, "own", tr.grad(own)))
                tr.zero_grad(own)
                completed[k] += 1
        except BaseException as error:
            failures[k].append(error)

    threads = [threading.Thread(target=work, args=(k,), daemon=True) for k in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not any(thread.is_alive() for thread in threads), "a thread deadlocked"
    assert failures == {k: [] for k in range(4)}
    assert completed == dict.fromkeys(range(4), iterations)
    assert_array_equal(tr.grad(shared), iterations * sum(coefficients))


def test_concurrent_back_of_large_arrays_into_one_shared_parameter():
    """With 2**17 elements every op and sweep runs without the GIL, so the four
    accumulations into `shared` really overlap; integer coefficients keep the sum exact."""
    size = 2**17
    shared = tr.param(np.arange(size, dtype=np.float64) % 7.0)
    rounds = 40
    start = threading.Barrier(4)
    errors = []
    coefficients = [(np.arange(size) % 5.0 + 1.0) * (k + 1) for k in range(4)]

    def work(k):
        try:
            start.wait(timeout=30)
            for _ in range(rounds):
                tr.back(np.sum(np.maximum(shared, -1.0) * coefficients[k]))
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=work, args=(k,), daemon=True) for k in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not any(thread.is_alive() for thread in threads), "a thread deadlocked"
    assert errors == []
    assert_array_equal(tr.grad(shared), rounds * sum(coefficients))


@pytest.mark.parametrize(
    "use",
    [
        pytest.param(lambda y, s: y + 1.0, id="operator"),
        pytest.param(lambda y, s: np.exp(y), id="ufunc"),
        pytest.param(lambda y, s: y @ y, id="matmul"),
        pytest.param(lambda y, s: y[0], id="getitem"),
        pytest.param(lambda y, s: np.stack([y, y]), id="array-function"),
        pytest.param(lambda y, s: y.sum(), id="method"),
        pytest.param(lambda y, s: s * 2.0, id="tracked-real"),
        pytest.param(lambda y, s: tr.back(s), id="back"),
        pytest.param(lambda y, s: s.back(), id="back-method"),
        pytest.param(lambda y, s: tr.param(y), id="param-of-it"),
        pytest.param(lambda y, s: tr.hook(lambda g: g, y), id="hook"),
        pytest.param(lambda y, s: tr.gradient(lambda a: np.sum(a), y), id="gradient-argument"),
        pytest.param(lambda y, s: tr.gradient(lambda a: np.sum(a * y), np.ones(2)),
                     id="gradient-closure"),
    ],
)  # fmt: skip
def test_a_non_leaf_handed_to_another_thread_raises_thread_error(use):
    x = tr.param([1.0, 2.0])
    y = x * 2.0
    s = np.sum(y)
    kind, outcome = in_thread(lambda: use(y, s))
    assert kind == "error", f"expected ThreadError, got {outcome!r}"
    assert isinstance(outcome, tr.ThreadError)
    assert isinstance(outcome, tr.TrackerError)
    check_message(str(outcome), *THREAD_MESSAGE)
    # The owner thread is unaffected and its tape intact.
    tr.back(s)
    assert_array_equal(tr.grad(x), [2.0, 2.0])


def test_what_another_thread_may_do_with_a_non_leaf():
    x = tr.param([1.0, 2.0])
    y = x * 2.0
    s = np.sum(y)
    for read, expected in (
        (lambda: tr.data(y), [2.0, 4.0]),
        (lambda: tr.data(s), 6.0),
        (lambda: s.item(), 6.0),
        (lambda: y.shape, (2,)),
        (lambda: tr.data(y) + 1.0, [3.0, 5.0]),
        (lambda: tr.data(x + 1.0), [2.0, 3.0]),  # parameters are shared
    ):
        kind, value = in_thread(read)
        assert kind == "value", value
        assert np.array_equal(value, expected)
    assert in_thread(lambda: repr(y)) == ("value", "TrackedArray([2., 4.])")
    assert in_thread(lambda: f"{s:.1f}") == ("value", "6.0")


def test_a_value_recorded_by_a_worker_is_refused_in_the_main_thread():
    x = tr.param([1.0, 2.0])
    kind, w = in_thread(lambda: x * 5.0)
    assert kind == "value"
    raises(tr.ThreadError, lambda: w + 1.0, *THREAD_MESSAGE)
    raises(tr.ThreadError, lambda: tr.back(np.sum(tr.data(w)) + np.sum(w)), *THREAD_MESSAGE)
    assert_array_equal(tr.data(w), [5.0, 10.0])
    # A consumed value stays bound to its thread too.
    loss = np.sum(x * 3.0)
    tr.back(loss)
    kind, error = in_thread(lambda: loss * 2.0)
    assert isinstance(error, tr.ThreadError)


def test_thread_error_while_the_owner_runs_a_long_backward_pass():
    """Another thread uses the owner's value while the owner's sweep is running (without
    the GIL): it gets ThreadError at once, neither blocking on the busy tape nor deadlocking."""
    handoff = queue.Queue()
    in_back = threading.Event()
    done = threading.Event()
    owner_errors = []
    p = tr.param(np.array([1.5]))

    def owner():
        try:
            y = chain(p, 250_000, 1.0000001)
            loss = np.sum(y)
            handoff.put(y)
            in_back.set()
            tr.back(loss)
        except BaseException as error:
            owner_errors.append(error)
        finally:
            done.set()

    thread = threading.Thread(target=owner, daemon=True)
    thread.start()
    y = handoff.get(timeout=60)
    assert in_back.wait(timeout=60)
    attempts_during_back = 0
    while not done.is_set():
        with pytest.raises(tr.ThreadError):
            y * 2.0
        if not done.is_set():
            attempts_during_back += 1
    thread.join(60)
    assert not thread.is_alive()
    assert owner_errors == []
    print(f"\n[threads] ThreadErrors raised while the owner ran back: {attempts_during_back}")
    assert attempts_during_back >= 1, "the owner's backward pass ended before any attempt"
    assert_allclose(tr.grad(p), [1.0000001**250_000], rtol=1e-9)


def test_an_error_raised_in_a_worker_can_be_dropped_in_another_thread(monkeypatch):
    """concurrent.futures hands a worker's exception, traceback and all, to the caller.
    The traceback's frames hold tracker's per-call scope; when the caller drops them, the
    scope is dropped in a thread other than its own, which must be harmless (no
    "unsendable ... dropped on another thread" error, no leak)."""
    unraisable = []
    monkeypatch.setattr(
        sys, "unraisablehook", lambda u: unraisable.append(f"{u.exc_type.__name__}: {u.exc_value}")
    )

    def work():
        return tr.gradient(lambda a: np.sum(a) * np.nan, np.ones(2))

    with ThreadPoolExecutor(1) as pool:
        with pytest.raises(tr.LossError) as excinfo:
            pool.submit(work).result(timeout=30)
        del excinfo
        gc.collect()
        assert unraisable == []
        # A success is fine too: the worker's scope is gone before the result arrives.
        (g,) = pool.submit(lambda: tr.gradient(lambda a: np.sum(a * a), np.ones(2))).result(30)
    assert_array_equal(g, [2.0, 2.0])
    gc.collect()
    assert unraisable == []


def test_a_handle_dropped_in_another_thread():
    x = tr.param([1.0, 2.0])
    holder = [x * np.array([4.0, 5.0])]
    kind, value = in_thread(lambda: holder.pop())
    assert kind == "value"
    del value
    # The owner goes on recording; the next op clears the old tape without trouble.
    tr.back(np.sum(x * 3.0))
    assert_array_equal(tr.grad(x), [3.0, 3.0])


class Watchdog:
    """A thread that counts ticks of about a millisecond: each tick needs the GIL.

    While another thread holds the GIL (a C call that does not release it), no tick
    can happen; while it runs without the GIL, ticks continue. Counting ticks during a
    call tells the two apart by behaviour, independently of how fast the machine is.
    """

    def __init__(self):
        self.ticks = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self):
        while not self.stop.is_set():
            self.ticks += 1
            time.sleep(0.001)

    def __enter__(self):
        self.thread.start()
        while self.ticks < 3:
            time.sleep(0.001)
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(10)

    def ticks_during(self, call, prepare=lambda: None):
        """Ticks while `call(prepare())` runs (the preparation is not counted), and what
        `call` returned. Both run in a worker thread of their own, so what they record
        lives on that thread's tape and is freed with it."""

        def measured():
            state = prepare()
            before = self.ticks
            result = call(state)
            return self.ticks - before, result

        kind, outcome = in_thread(measured, timeout=300)
        if kind == "error":
            raise outcome
        return outcome


def test_watchdog_method_detects_a_call_that_holds_the_gil():
    # The control: builtin sum over a range is a C loop that keeps the GIL throughout.
    with Watchdog() as watchdog:
        ticks, total = watchdog.ticks_during(lambda _: sum(range(6 * 10**6)))
    assert total == 6 * 10**6 * (6 * 10**6 - 1) // 2
    print(f"\n[threads] watchdog ticks during a GIL-holding call (control): {ticks}")
    assert ticks <= 3, f"{ticks} ticks during a GIL-holding call: the method cannot tell"


@pytest.fixture(scope="module")
def large_param():
    return tr.param(np.linspace(-1.0, 1.0, 3 * 10**7))


@pytest.mark.parametrize(
    "op",
    [
        pytest.param(lambda x: np.exp(x), id="exp"),
        pytest.param(lambda x: x * x, id="multiply"),
    ],
)
def test_watchdog_progresses_while_a_large_op_runs(large_param, op):
    with Watchdog() as watchdog:
        ticks, shape = watchdog.ticks_during(lambda _: op(large_param).shape)
    assert shape == large_param.shape
    print(f"\n[threads] watchdog ticks during a large op: {ticks}")
    assert ticks >= 10, f"only {ticks} watchdog ticks during an op on 3e7 elements"


def test_watchdog_progresses_during_a_long_backward_pass():
    # A long chain of small nodes: the sweep itself, not any kernel, is what runs long.
    p = tr.param(np.array([1.5]))
    with Watchdog() as watchdog:
        ticks, _ = watchdog.ticks_during(
            tr.back, prepare=lambda: np.sum(chain(p, 300_000, 1.0000001))
        )
    print(f"\n[threads] watchdog ticks during a 3e5-node back: {ticks}")
    assert ticks >= 10, f"only {ticks} watchdog ticks during a 3e5-node backward pass"
    assert_allclose(tr.grad(p), [1.0000001**300_000], rtol=1e-9)


def test_watchdog_progresses_during_a_gradient_sweep_of_large_arrays():
    x0 = np.linspace(-1.0, 1.0, 2 * 10**6)

    def f(x):
        h = x
        for _ in range(6):
            h = np.tanh(h) * 1.01
        return np.sum(h * h)

    with Watchdog() as watchdog:
        ticks, (g,) = watchdog.ticks_during(lambda _: tr.gradient(f, x0))
    print(f"\n[threads] watchdog ticks during tr.gradient on 2e6 elements: {ticks}")
    assert ticks >= 10, f"only {ticks} watchdog ticks during tr.gradient on 2e6 elements"
    assert g.shape == x0.shape


# --------------------------------------------------------------------------------------
# Interrupts


class Interrupter:
    """Sends SIGINT to this process `delay` seconds after `arm()`, from a Timer thread.

    Python's default handler turns it into KeyboardInterrupt in the main thread. Any
    interrupt that arrives late (after the call under test returned) is caught by
    `__exit__` and fails the test instead of taking down the test session.
    """

    def __init__(self, delay):
        self.delay = delay
        self.sent = None
        self.timer = None

    def fire(self):
        self.sent = time.perf_counter()
        os.kill(os.getpid(), signal.SIGINT)

    def arm(self):
        self.timer = threading.Timer(self.delay, self.fire)
        self.timer.start()

    def __enter__(self):
        self.previous = signal.signal(signal.SIGINT, signal.default_int_handler)
        return self

    def __exit__(self, kind, error, traceback):
        try:
            if self.timer is not None:
                self.timer.cancel()
                self.timer.join(10)
            time.sleep(0.05)  # let a pending signal be handled here, not later
        except KeyboardInterrupt:
            pytest.fail("SIGINT arrived after the call under test had returned")
        finally:
            signal.signal(signal.SIGINT, self.previous)


CHAIN = 1_000_000
FACTOR = 1.0000001
STOPS = 10  # parameters added along the chain, one every CHAIN / STOPS nodes


def interrupted(call, interrupter):
    """Runs `call` with the interrupter armed; returns the latency from SIGINT to
    KeyboardInterrupt, or fails if `call` was not interrupted."""
    interrupter.arm()
    try:
        call()
    except KeyboardInterrupt:
        caught = time.perf_counter()
    else:
        pytest.fail("the call was not interrupted: it finished first")
    assert interrupter.sent is not None
    return caught - interrupter.sent


def check_partial_state(x, stops):
    """After an interrupted (or failed) back: each parameter is either untouched (0) or
    holds exactly its full contribution; the ones holding it are those nearest the loss
    (the sweep runs from the loss backwards); `x`, at the very start, is untouched."""
    step = CHAIN // STOPS
    reached = []
    for k, p in enumerate(stops):
        g = tr.grad(p)[0]
        full = FACTOR ** (CHAIN - k * step)
        if g == 0.0:
            reached.append(False)
        else:
            assert_allclose(g, full, rtol=1e-9)
            reached.append(True)
    assert reached == sorted(reached), f"accumulated out of sweep order: {reached}"
    assert not all(reached), "the sweep reached x's end: it was not interrupted"
    assert tr.grad(x)[0] == 0.0
    return sum(reached)


def build_chain():
    x = tr.param(np.array([1.5]))
    stops = [tr.param(np.array([0.0])) for _ in range(STOPS)]
    y = x
    for k in range(STOPS):
        y = chain(y + stops[k], CHAIN // STOPS, FACTOR)
    return x, stops, np.sum(y)


def test_ctrl_c_during_back_of_a_million_node_chain():
    """SIGINT during `back` stops the sweep within 0.5 s with KeyboardInterrupt.

    Documented state afterwards (observed): gradients are partially accumulated. Every
    parameter whose nodes the sweep had passed holds its full contribution; every other
    parameter is untouched. With once=False the tape is intact: zero the gradients and
    call back again for the full result. With once=True the nodes the sweep passed are
    consumed, so a second back through them raises ConsumedError.
    """
    x, stops, loss = build_chain()
    with Interrupter(0.1) as interrupter:
        latency = interrupted(lambda: tr.back(loss, once=False), interrupter)
    reached = check_partial_state(x, stops)
    print(f"\n[interrupt] back(once=False): {1e3 * latency:.1f} ms, {reached}/{STOPS} reached")
    assert latency < 0.5, f"back stopped {latency:.3f} s after SIGINT"

    # once=False kept the tape: a clean retry gives the full gradient.
    tr.zero_grad([x, *stops])
    tr.back(loss, once=False)
    assert_allclose(tr.grad(x), [FACTOR**CHAIN], rtol=1e-9)
    step = CHAIN // STOPS
    for k, p in enumerate(stops):
        assert_allclose(tr.grad(p), [FACTOR ** (CHAIN - k * step)], rtol=1e-9)

    # Interrupt a once=True pass through the same tape.
    tr.zero_grad([x, *stops])
    with Interrupter(0.05) as interrupter:
        latency = interrupted(lambda: tr.back(loss), interrupter)
    reached = check_partial_state(x, stops)
    print(f"[interrupt] back(once=True): {1e3 * latency:.1f} ms, {reached}/{STOPS} reached")
    assert latency < 0.5, f"back stopped {latency:.3f} s after SIGINT"
    # once=True consumed what the interrupted sweep passed.
    raises(tr.ConsumedError, lambda: tr.back(loss), "once=False")

    # The interpreter is usable: new gradients, new tapes, new back passes.
    (g,) = tr.gradient(lambda a: np.sum(a**2), np.array([1.0, 2.0]))
    assert_array_equal(g, [2.0, 4.0])
    p = tr.param([1.0, 2.0])
    tr.back(np.sum(p * p))
    assert_array_equal(tr.grad(p), [2.0, 4.0])


def test_ctrl_c_during_a_gradient_sweep():
    """SIGINT during tr.gradient's sweep (of a 5e5-node chain): KeyboardInterrupt within
    0.5 s, and the scope the call pushed is popped (the next recording is on this thread's
    own tape)."""
    interrupter = Interrupter(0.05)

    def f(x):
        y = chain(x, CHAIN // 2, FACTOR)
        interrupter.arm()  # the forward pass is built; the sweep starts next
        return np.sum(y)

    def call():
        tr.gradient(f, np.array([1.5]))

    with interrupter:
        try:
            call()
        except KeyboardInterrupt:
            latency = time.perf_counter() - interrupter.sent
        else:
            pytest.fail("tr.gradient was not interrupted")
    print(f"\n[interrupt] tr.gradient sweep: {1e3 * latency:.1f} ms")
    assert latency < 0.5, f"the sweep stopped {latency:.3f} s after SIGINT"
    (g,) = tr.gradient(lambda a: np.sum(a**3), np.array([1.0, 2.0]))
    assert_array_equal(g, [3.0, 12.0])
    p = tr.param([1.0])
    y = p * 2.0
    tr.back(np.sum(y))
    assert_array_equal(tr.grad(p), [2.0])


# --------------------------------------------------------------------------------------
# Mutation


def test_updates_while_a_tape_is_alive_give_the_recorded_gradient():
    rng = np.random.default_rng(1)
    w0 = rng.standard_normal((3, 4))
    b0 = rng.standard_normal(3)
    u = rng.standard_normal(4)

    def loss_of(W, b):
        h = np.tanh(W @ u + b)
        return (
            np.sum(h**2)
            + np.sum(W / (1.0 + W**2))
            + np.sum(np.maximum(W, 0.1) * W[:, ::-1])
            + np.sum(b[np.array([0, 0, 2])] ** 3)
            + np.prod(np.exp(b * 0.1))
        )

    expected_w, expected_b = tr.gradient(loss_of, w0, b0)
    W = tr.param(w0)
    b = tr.param(b0)
    loss = loss_of(W, b)
    recorded = tr.data(loss)
    for k in range(3):  # several updates, each large enough to change every mask
        tr.update(W, rng.standard_normal((3, 4)) * (k + 2))
        tr.update(b, rng.standard_normal(3) * (k + 2))
    moved_w, moved_b = np.array(tr.data(W)), np.array(tr.data(b))
    tr.back(loss)
    assert_allclose(tr.grad(W), expected_w, rtol=1e-14)
    assert_allclose(tr.grad(b), expected_b, rtol=1e-14)
    assert tr.data(loss) == recorded
    # The updates were kept, and a new loss is computed at the new values.
    assert_array_equal(tr.data(W), moved_w)
    tr.zero_grad([W, b])
    tr.back(loss_of(W, b))
    new_w, new_b = tr.gradient(loss_of, moved_w, moved_b)
    assert_allclose(tr.grad(W), new_w, rtol=1e-14)
    assert_allclose(tr.grad(b), new_b, rtol=1e-14)


def test_update_between_two_backs_of_a_kept_tape():
    x = tr.param([1.0, 2.0])
    loss = np.sum(x**3)
    tr.back(loss, once=False)
    tr.update(x, np.array([5.0, 5.0]))  # zeroes the gradient too
    tr.back(loss)
    assert_array_equal(tr.grad(x), [3.0, 12.0])
    assert_array_equal(tr.data(x), [6.0, 7.0])


def test_update_of_a_parameter_captured_by_a_custom_rule():
    """The pullback closes over its tracked argument; after `update` it must still see the
    value the tape recorded, not the parameter's new one."""

    @tr.rule
    def cube(a):
        return a**3, lambda dy: (3.0 * a**2 * dy,)

    x = tr.param([1.0, 2.0])
    loss = np.sum(cube(x))
    tr.update(x, np.array([10.0, -10.0]))
    tr.back(loss)
    assert_allclose(tr.grad(x), [3.0, 12.0], rtol=1e-15)


def test_update_of_a_parameter_saved_by_a_checkpoint():
    """`checkpoint` recomputes its function in the backward pass: from the recorded
    value, not from the parameter's new one."""
    x = tr.param([1.0, 2.0])
    loss = np.sum(tr.checkpoint(lambda a: np.sin(a) * a, x))
    tr.update(x, np.array([10.0, -10.0]))
    tr.back(loss)
    x0 = np.array([1.0, 2.0])
    assert_allclose(tr.grad(x), np.cos(x0) * x0 + np.sin(x0), rtol=1e-14)


def test_views_held_by_the_user_never_change():
    x = tr.param([1.0, 2.0, 3.0])
    s = tr.param(2.0)
    y = np.exp(x) * s
    loss = np.sum(y * y)
    views = {
        "data(x)": tr.data(x),
        "x.data": x.data,
        "data(y)": tr.data(y),
        "data(y) slice": tr.data(y)[1:],
        "data(loss)": tr.data(loss),
        "data(s)": tr.data(s),
    }
    tr.back(loss)
    views["grad(x)"] = tr.grad(x)
    views["grad(s)"] = tr.grad(s)
    (g,) = tr.gradient(lambda a: np.sum(a**2), np.array([1.0, 2.0]))
    views["gradient"] = g
    frozen = {name: np.array(view, copy=True) for name, view in views.items()}

    # Everything that could write to the buffers behind those views.
    tr.back(np.sum(x * 7.0) + s * 3.0)
    tr.update(x, np.array([1.0, 1.0, 1.0]))
    tr.update(s, 1.0)
    tr.back(np.sum(x**2) * s)
    tr.zero_grad([x, s])
    del y, loss
    for _ in range(200):  # clears and reuses the tape many times over
        tr.back(np.sum(np.exp(x) * s * 3.0))
        tr.gradient(lambda a: np.sum(a**2), np.array([3.0, 4.0]))
    for name, view in views.items():
        assert_array_equal(view, frozen[name], err_msg=name)


def writable_attempts(view):
    yield lambda: view.__setitem__(..., 0.0)
    yield lambda: np.copyto(view, 0.0)
    yield lambda: np.add(view, 1.0, out=view)
    yield lambda: view.setflags(write=True)
    if view.ndim:
        yield lambda: view.__setitem__(0, 5.0)
        yield lambda: view.reshape(-1).__setitem__(0, 5.0)
        yield lambda: view.T.__setitem__(0, 5.0)
        yield lambda: view.fill(3.0)


def views_tracker_hands_out():
    x = tr.param(np.array([[1.0, 2.0], [3.0, 4.0]]))
    y = np.tanh(x) * 2.0
    tr.back(np.sum(y * y), once=False)
    (g,) = tr.gradient(lambda a: np.sum(a**2), np.array([1.0, 2.0]))
    result = tr.withgradient(lambda a: (np.sum(a**2), a * 2.0), np.array([1.0, 2.0]))
    nested = []

    def outer(a):
        (inner,) = tr.gradient(lambda b: np.sum(b**3), a, nest=True)
        nested.append(tr.data(inner))
        return np.sum(inner)

    tr.gradient(outer, np.array([1.0, 2.0]))
    dicts = tr.gradient(lambda d: np.sum(d["w"] ** 2), {"w": np.ones(2)})
    rows = [tr.data(r) for r in x]
    return {
        "tr.data(param)": tr.data(x),
        "param.data": x.data,
        "tr.data(result)": tr.data(y),
        "tr.data(result.T)": tr.data(y.T),
        "tr.data(reshape)": tr.data(y.reshape(4)),
        "tr.data(slice)": tr.data(y[:, 1]),
        "tr.grad(param)": tr.grad(x),
        "param.grad": x.grad,
        "tr.gradient result": g,
        "withgradient grad": result.grad[0],
        "withgradient val": result.val[1],
        "nested gradient data": nested[0],
        "gradient in a dict": dicts[0]["w"],
        "row of iteration": rows[0],
    }


@pytest.mark.parametrize("name", list(views_tracker_hands_out()))
def test_writing_into_any_view_tracker_hands_out_raises(name):
    view = views_tracker_hands_out()[name]
    assert isinstance(view, np.ndarray)
    before = np.array(view, copy=True)
    assert not view.flags.writeable
    for attempt in writable_attempts(view):
        with pytest.raises(ValueError):
            attempt()
    assert_array_equal(view, before)


def test_scalars_tracker_hands_out_are_immutable_numpy_scalars():
    s = tr.param(2.0)
    tr.back(s * s)
    for value in (tr.data(s), tr.grad(s), tr.gradient(lambda a: a * a, 2.0)[0]):
        assert isinstance(value, np.float64)


def test_jacobian_and_hessian_are_fresh_arrays_owned_by_the_caller():
    """Not views: tracker keeps nothing of them, so writing into one affects nothing."""
    x0 = np.array([1.0, 2.0])
    h = tr.hessian(lambda a: np.sum(a**3), x0)
    j = tr.jacobian(lambda a: a**2, x0)
    for result in (h, j):
        assert result.flags.writeable
        result[...] = -1.0
    assert_array_equal(tr.hessian(lambda a: np.sum(a**3), x0), [[6.0, 0.0], [0.0, 12.0]])
    assert_array_equal(tr.jacobian(lambda a: a**2, x0), [[2.0, 0.0], [0.0, 4.0]])


def test_index_arrays_of_more_than_32_dimensions():
    """rust-numpy's views stop at 32 dimensions: index arrays are read flat."""
    x = tr.param(np.arange(3.0))
    idx = np.full((1,) * 40, 2, dtype=np.intp)
    y = x[idx]
    assert y.shape == idx.shape
    tr.back(np.sum(y * y))
    np.testing.assert_array_equal(tr.grad(x), [0.0, 0.0, 4.0])


BOOLEAN_SCALAR_KEYS = [
    True,
    False,
    np.True_,
    np.array(False),
    (0, True),
    (True, 1),
    (Ellipsis, np.True_),
    (None, True, slice(1, None), False),
    (True, [0, 1], True),
    (slice(None), np.array([True, False, True]), True),
    (True, Ellipsis, 0, False),
]


@pytest.mark.parametrize("key", BOOLEAN_SCALAR_KEYS, ids=repr)
def test_boolean_scalar_indices_as_numpy(key):
    """A boolean scalar is a new axis of length 1 (True) or 0 (False) where it stands,
    alone or among other indices, as in NumPy; the gradient flows through it."""
    a = np.arange(24.0).reshape(2, 3, 4)
    y = tr.param(a)[key]
    assert tr.data(y).shape == a[key].shape
    assert_array_equal(tr.data(y), a[key])
    assert gradcheck(lambda x: np.sum(np.sin(x[key])), a)


@pytest.mark.parametrize("returned", [(), []], ids=["tuple", "list"])
def test_a_function_returning_no_loss(returned):
    for differentiate in (tr.gradient, tr.withgradient):
        with pytest.raises(TypeError, match="returned an empty"):
            differentiate(lambda x: returned, np.ones(3))
    ps = tr.Params([tr.param(np.ones(3))])
    with pytest.raises(TypeError, match="returned an empty"):
        tr.gradient(lambda: (), ps)
