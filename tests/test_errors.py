"""Tests of tracker's refusals and errors: each has the documented type, and a message that
names what went wrong and the remedy that exists."""

import math

import numpy as np
import pytest

import tracker as tr


def shape_texts(shape):
    """The ways a message may spell `shape`: `[2, 3]` (the core's) or `(2, 3)` (NumPy's)."""
    items = ", ".join(str(n) for n in shape)
    return (f"[{items}]", f"({items},)" if len(shape) == 1 else f"({items})")


def mentions_shape(message, shape):
    return any(text in message for text in shape_texts(shape))


def mentions_plain_value_remedy(message):
    return "tr.data" in message or ".item()" in message


# Conversions that would drop tracking


def test_asarray_refuses():
    x = tr.param([1.0, 2.0])
    with pytest.raises(TypeError) as excinfo:
        np.asarray(x)
    message = str(excinfo.value)
    assert "np.asarray" in message
    assert "tracking" in message
    assert "tr.data" in message


def test_array_of_tracked_values_refuses_and_suggests_stack():
    x = tr.param([1.0, 2.0])
    for build in (lambda: np.array([x[0], x[1]]), lambda: np.array([x, x])):
        with pytest.raises(TypeError) as excinfo:
            build()
        message = str(excinfo.value)
        assert "np.array" in message
        assert "np.stack" in message


def test_float_refuses():
    x = tr.param([1.0, 2.0])
    for value in (x[0], np.sum(x), x):
        with pytest.raises(TypeError) as excinfo:
            float(value)
        message = str(excinfo.value)
        assert "float()" in message
        assert mentions_plain_value_remedy(message)


def test_int_refuses():
    x = tr.param([1.0, 2.0])
    with pytest.raises(TypeError) as excinfo:
        int(x[1])
    message = str(excinfo.value)
    assert "int()" in message
    assert mentions_plain_value_remedy(message)


def test_math_functions_refuse():
    x = tr.param([1.0, 2.0])
    for function in (math.sin, math.exp, math.sqrt):
        with pytest.raises(TypeError) as excinfo:
            function(x[0])
        message = str(excinfo.value)
        # math.sin reaches the tracked value only through float(); the message must
        # still tell a user who called math.sin what happened and what to use instead.
        assert "math" in message
        assert mentions_plain_value_remedy(message) or "np." in message


def test_item_assignment_refuses():
    x = tr.param([1.0, 2.0])
    with pytest.raises(TypeError) as excinfo:
        x[0] = 1.0
    message = str(excinfo.value)
    assert "assign" in message
    assert "tr.data" in message or "np.where" in message
    assert np.array_equal(tr.data(x), [1.0, 2.0])

    y = x * 2
    with pytest.raises(TypeError, match="assign"):
        y[1:] = 0.0


def test_out_into_an_array_refuses():
    x = tr.param([1.0, 2.0])
    out = np.zeros(2)
    with pytest.raises(TypeError) as excinfo:
        np.add(x, 1.0, out=out)
    message = str(excinfo.value)
    assert "np.add" in message
    assert "out=" in message
    assert "returned value" in message
    assert np.array_equal(out, [0.0, 0.0])


def test_out_of_a_unary_ufunc_refuses_after_plain_calls():
    # Plain calls of a unary ufunc take a shortcut; keywords must still be checked.
    x = tr.param([1.0, 2.0])
    for _ in range(2):
        np.testing.assert_allclose(tr.data(np.exp(x)), np.exp([1.0, 2.0]))
    out = np.zeros(2)
    with pytest.raises(TypeError, match="out="):
        np.exp(x, out=out)
    with pytest.raises(TypeError, match="where="):
        np.exp(x, where=np.array([True, False]))
    assert np.array_equal(out, [0.0, 0.0])


@pytest.mark.parametrize(
    ("call", "name", "option"),
    [
        (lambda x: np.sum(x, out=np.zeros(())), "np.sum", "out="),
        (lambda x: np.sum(x, dtype=np.float32), "np.sum", "dtype="),
        (lambda x: np.mean(x, where=np.array([True, False])), "np.mean", "where="),
        (lambda x: np.max(x, out=np.zeros(())), "np.max", "out="),
        (lambda x: np.min(x, initial=0.0), "np.min", "initial="),
    ],
)
def test_options_of_a_reduction_refuse(call, name, option):
    x = tr.param([1.0, 2.0])
    with pytest.raises(TypeError) as excinfo:
        call(x)
    message = str(excinfo.value)
    assert name in message
    assert option in message


@pytest.mark.parametrize(
    ("name", "call"),
    [
        ("convolve", lambda x: np.convolve(x, x)),
        ("median", lambda x: np.median(x)),
        ("partition", lambda x: np.partition(x, 1)),
    ],
)
def test_numpy_function_without_a_rule_refuses(name, call):
    x = tr.param([1.0, 2.0, 3.0])
    with pytest.raises(TypeError) as excinfo:
        call(x)
    message = str(excinfo.value)
    assert name in message
    assert "no gradient rule" in message
    assert "tr.data" in message
    assert "rule" in message


def test_unsupported_ufunc_refuses():
    x = tr.param([1.5, 2.5])
    with pytest.raises(TypeError) as excinfo:
        np.spacing(x)
    message = str(excinfo.value)
    assert "np.spacing" in message
    assert "tr.data" in message


# Shapes, indices and axes


def test_add_shape_mismatch():
    a = tr.param(np.ones((2, 3)))
    b = tr.param(np.ones(4))
    with pytest.raises(ValueError) as excinfo:
        a + b
    message = str(excinfo.value)
    assert "add" in message
    assert mentions_shape(message, (2, 3))
    assert mentions_shape(message, (4,))

    with pytest.raises(ValueError) as excinfo:
        a + np.ones(4)
    message = str(excinfo.value)
    assert mentions_shape(message, (2, 3))
    assert mentions_shape(message, (4,))


def test_matmul_shape_mismatch():
    a = tr.param(np.ones((2, 3)))
    with pytest.raises(ValueError) as excinfo:
        a @ tr.param(np.ones((4, 2)))
    message = str(excinfo.value)
    assert "matmul" in message
    assert mentions_shape(message, (2, 3))
    assert mentions_shape(message, (4, 2))

    with pytest.raises(ValueError) as excinfo:
        a @ np.ones(4)
    message = str(excinfo.value)
    assert mentions_shape(message, (2, 3))
    assert mentions_shape(message, (4,))


def test_index_out_of_range():
    x = tr.param([1.0, 2.0, 3.0])
    for index in (3, -4):
        with pytest.raises(IndexError) as excinfo:
            x[index]
        message = str(excinfo.value)
        assert str(index) in message
        assert "3" in message

    m = tr.param(np.ones((2, 3)))
    with pytest.raises(IndexError):
        m[0, 5]


def test_bad_axis():
    m = tr.param(np.ones((2, 3)))
    for reduce in (
        lambda: np.sum(m, axis=2),
        lambda: m.sum(axis=-3),
        lambda: np.max(m, axis=5),
        lambda: m.mean(axis=(0, 2)),
    ):
        with pytest.raises((IndexError, ValueError)) as excinfo:
            reduce()
        assert "axis" in str(excinfo.value)


# back and grad


def test_non_scalar_loss_without_a_seed():
    x = tr.param([1.0, 2.0, 3.0])
    with pytest.raises(tr.LossError) as excinfo:
        tr.back(x * 2)
    message = str(excinfo.value)
    assert mentions_shape(message, (3,))
    assert "dy" in message or "seed" in message
    assert isinstance(excinfo.value, tr.TrackerError)


def test_seed_of_the_wrong_shape():
    x = tr.param([1.0, 2.0, 3.0])
    with pytest.raises(tr.LossError) as excinfo:
        tr.back(x * 2, np.ones(4))
    message = str(excinfo.value)
    assert mentions_shape(message, (3,))
    assert mentions_shape(message, (4,))


@pytest.mark.parametrize(
    ("make_loss", "word"),
    [
        (lambda total: total * np.nan, "NaN"),
        (lambda total: total / 0.0, "inf"),
        (lambda total: np.log(total * 0.0), "inf"),
    ],
)
def test_non_finite_loss(make_loss, word):
    x = tr.param([1.0, 2.0])
    loss = make_loss(np.sum(x))
    with pytest.raises(tr.LossError) as excinfo:
        tr.back(loss)
    assert word in str(excinfo.value)
    assert np.array_equal(tr.grad(x), [0.0, 0.0])


def test_grad_of_a_non_leaf():
    x = tr.param([1.0, 2.0])
    with pytest.raises(tr.TrackerError) as excinfo:
        tr.grad(x * 2)
    message = str(excinfo.value)
    assert "multiply" in message
    assert "tr.param" in message or "parameter" in message


def test_back_of_an_untracked_value():
    with pytest.raises(TypeError) as excinfo:
        tr.back(np.ones(1))
    assert "tr.param" in str(excinfo.value)


def test_second_back_through_consumed_nodes_names_the_op():
    x = tr.param([1.0, 2.0])
    loss = np.sum(x * 2)
    tr.back(loss)
    with pytest.raises(tr.ConsumedError) as excinfo:
        tr.back(loss)
    message = str(excinfo.value)
    assert "sum" in message
    assert "once=False" in message
    assert isinstance(excinfo.value, tr.TrackerError)
    assert np.array_equal(tr.grad(x), [2.0, 2.0])


def test_second_back_through_a_loop_over_scalars_names_the_op():
    # x[i] and the ops on the 0-d values it gives take the sweep's shortcut past steps.
    x = tr.param([1.0, 2.0, 3.0])
    h = x[0] * 2.0
    tr.back(h * x[1] + x[2] ** 2)
    assert np.array_equal(tr.grad(x), [4.0, 2.0, 6.0])
    with pytest.raises(tr.ConsumedError) as excinfo:
        tr.back(h + x[1])
    assert "multiply" in str(excinfo.value)
    assert np.array_equal(tr.grad(x), [4.0, 2.0, 6.0])


# Unsupported types


@pytest.mark.parametrize("dtype", [np.float16, np.complex128, np.complex64])
def test_unsupported_float_types(dtype):
    name = "float16" if dtype is np.float16 else "complex"
    with pytest.raises(TypeError) as excinfo:
        tr.param(np.ones(3, dtype=dtype))
    assert name in str(excinfo.value)
    assert "float64" in str(excinfo.value)

    with pytest.raises(TypeError) as excinfo:
        tr.gradient(lambda a: np.sum(a), np.ones(3, dtype=dtype))
    assert name in str(excinfo.value)


def test_complex_scalar_param():
    with pytest.raises(TypeError, match="complex"):
        tr.param(1 + 2j)


@pytest.mark.parametrize("value", ["text", ["a", "b"], np.array(["a"])])
def test_string_param(value):
    with pytest.raises(TypeError) as excinfo:
        tr.param(value)
    assert "not supported" in str(excinfo.value)


def test_update_of_a_non_leaf():
    x = tr.param([1.0, 2.0])
    with pytest.raises(TypeError) as excinfo:
        tr.update(x * 2, np.ones(2))
    message = str(excinfo.value)
    assert "update" in message
    assert "multiply" in message
