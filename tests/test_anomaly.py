"""Anomaly mode: a backward pass raises at the first op whose gradient is NaN or infinite."""

import numpy as np
import pytest

import tracker as tr


def loss_with_sqrt_at_zero(x):
    return np.sum(np.sqrt(x) * 2.0)


def test_names_the_op_and_where_it_was_recorded():
    with tr.detect_anomaly(), pytest.raises(tr.AnomalyError) as error:
        tr.gradient(loss_with_sqrt_at_zero, np.array([0.0, 1.0]))
    message = str(error.value)
    assert "`sqrt`" in message
    assert "test_anomaly.py" in message
    assert "loss_with_sqrt_at_zero" in message


def test_in_place_back_and_nested_sweeps_are_checked_too():
    x = tr.param([0.0, 1.0])
    with tr.detect_anomaly(), pytest.raises(tr.AnomalyError, match="`sqrt`"):
        tr.back(np.sum(np.sqrt(x)))
    with tr.detect_anomaly(), pytest.raises(tr.AnomalyError, match="`sqrt`"):
        tr.hessian(lambda x: np.sum(np.sqrt(x)), np.array([0.0, 4.0]))


def test_off_by_default_and_restored_after_the_context():
    grads = tr.gradient(loss_with_sqrt_at_zero, np.array([0.0, 1.0]))[0]
    assert np.isinf(grads[0])
    with tr.detect_anomaly():
        tr.gradient(loss_with_sqrt_at_zero, np.array([4.0, 1.0]))
    assert np.isinf(tr.gradient(loss_with_sqrt_at_zero, np.array([0.0, 1.0]))[0][0])
