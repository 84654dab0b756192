"""Scenario tests of DESIGN.md's "Tape lifetime": scopes, consumption, nesting, threads,
long chains and freeing the tape once its handles are gone."""

import gc
import os
import threading
import weakref

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

import tracker as tr

PAGE_MB = os.sysconf("SC_PAGE_SIZE") / 2**20


def resident_mb():
    """This process's resident memory in MB, from /proc/self/statm."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * PAGE_MB


def run_in_thread(target, timeout=20.0):
    """Run `target` in a new thread; returns what it returned, or re-raises what it raised.

    Fails (instead of hanging) if the thread does not finish within `timeout` seconds.
    """
    outcome = {}

    def body():
        try:
            outcome["value"] = target()
        except BaseException as error:
            outcome["error"] = error

    thread = threading.Thread(target=body, daemon=True)
    thread.start()
    thread.join(timeout)
    assert not thread.is_alive(), "the thread deadlocked or hung"
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def test_two_parameters_in_one_loss():
    w0 = np.array([[0.5, -0.3], [0.2, 0.1]])
    v0 = np.array([1.0, -2.0, 0.5])
    u = np.array([1.0, 2.0])
    W, V = tr.param(w0), tr.param(v0)

    def f(W):
        return np.sum(np.tanh(W @ u))

    def g(V):
        return np.sum(V**2)

    tr.back(f(W) + g(V))
    t = np.tanh(w0 @ u)
    assert_allclose(tr.grad(W), np.outer(1.0 - t**2, u), rtol=1e-14)
    assert_array_equal(tr.grad(V), 2.0 * v0)

    # Independent losses on one tape back-propagate independently.
    tr.zero_grad([W, V])
    loss_f, loss_g = f(W), g(V)
    tr.back(loss_g)
    tr.back(loss_f)
    assert_allclose(tr.grad(W), np.outer(1.0 - t**2, u), rtol=1e-14)
    assert_array_equal(tr.grad(V), 2.0 * v0)


def test_keeping_every_loss_after_back_runs_in_flat_memory():
    # Each step records ~40 nodes; a tape (or its saved buffers) that outlived a step
    # would grow by tens of MB over the loop, while the losses kept are small scalars.
    W = tr.param(np.full((4, 4), 0.1))
    b = tr.param(np.zeros(4))
    inputs = np.linspace(-1.0, 1.0, 4)
    losses = []

    def step():
        h = inputs
        for _ in range(8):
            h = np.tanh(W @ h + b)
        loss = np.sum(h * h) + np.sum(W * W) * 1e-3
        tr.back(loss)
        losses.append(loss)
        tr.update(W, -0.01 * tr.grad(W))
        tr.update(b, -0.01 * tr.grad(b))

    for _ in range(1_000):
        step()
    gc.collect()
    before = resident_mb()
    for _ in range(10_000):
        step()
    gc.collect()
    after = resident_mb()
    assert len(losses) == 11_000
    assert all(type(loss) is tr.TrackedReal for loss in losses[-3:])
    assert np.isfinite(tr.data(losses[-1]))
    growth = after - before
    assert growth < 0.05 * before, f"resident memory grew {growth:.2f} MB from {before:.1f} MB"


def test_value_computed_before_back_and_used_after_it():
    x0 = np.array([1.0, 2.0])
    x = tr.param(x0)
    h = np.exp(x)
    tr.back(np.sum(h))
    assert_allclose(tr.grad(x), np.exp(x0), rtol=1e-15)

    # The forward pass through the consumed value works ...
    later = np.sum(h * 2.0)
    assert_allclose(tr.data(later), 2.0 * np.sum(np.exp(x0)), rtol=1e-15)
    # ... but a backward pass that reaches it names the op that consumed it.
    with pytest.raises(tr.ConsumedError) as excinfo:
        tr.back(later)
    message = str(excinfo.value)
    assert "exp" in message
    assert "once=False" in message
    assert_allclose(tr.grad(x), np.exp(x0), rtol=1e-15)


def test_value_computed_before_back_once_false_and_used_after_it():
    x0 = np.array([1.0, 2.0])
    x = tr.param(x0)
    h = np.exp(x)
    tr.back(np.sum(h), once=False)
    later = np.sum(h * 2.0)
    tr.back(later)
    assert_allclose(tr.grad(x), 3.0 * np.exp(x0), rtol=1e-15)


def test_data_after_back():
    x = tr.param([1.0, 2.0, 3.0])
    y = x * 3.0
    z = np.exp(y)
    loss = np.sum(z)
    tr.back(loss)
    assert_array_equal(tr.data(y), [3.0, 6.0, 9.0])
    assert_allclose(tr.data(z), np.exp([3.0, 6.0, 9.0]), rtol=1e-15)
    assert_allclose(tr.data(loss), np.sum(np.exp([3.0, 6.0, 9.0])), rtol=1e-15)
    assert_array_equal(tr.data(x), [1.0, 2.0, 3.0])


def test_gradient_without_nest_inside_a_differentiation_refuses_to_be_differentiated():
    x0 = np.array([1.0, 2.0])
    y0 = np.array([3.0, 4.0])
    with pytest.raises(tr.NestingError) as excinfo:
        tr.gradient(lambda y: np.sum(tr.gradient(lambda x: np.sum(x * y), x0)[0]), y0)
    assert "nest=True" in str(excinfo.value)


def test_gradient_without_nest_inside_a_differentiation_has_the_right_value():
    # Not differentiated through, the inner gradient is an ordinary value.
    x0 = np.array([1.0, 2.0])
    y0 = np.array([3.0, 4.0])
    seen = []

    def outer(y):
        (inner,) = tr.gradient(lambda x: np.sum(x * y), x0)
        seen.append(np.array(tr.data(inner)))
        return np.sum(y * y)

    (g,) = tr.gradient(outer, y0)
    assert_array_equal(g, 2.0 * y0)
    assert_array_equal(seen[0], y0)


def test_gradient_with_nest_inside_gradient_is_the_exact_second_derivative():
    x0 = np.array([1.0, 2.0, -3.0, 0.5])

    def first(x):
        return tr.gradient(lambda x: np.sum(x**3), x, nest=True)[0]

    (second,) = tr.gradient(lambda x: np.sum(first(x)), x0)
    assert_array_equal(second, 6.0 * x0)

    # The nested gradient mixes with the outer argument: d/dy sum(y * d/dx sum(x**2 y)).
    (mixed,) = tr.gradient(
        lambda y: np.sum(y * tr.gradient(lambda x: np.sum(x * x * y), x0, nest=True)[0]),
        np.array([1.0, 2.0, 3.0, 4.0]),
    )
    assert_array_equal(mixed, 4.0 * x0 * np.array([1.0, 2.0, 3.0, 4.0]))


def test_non_leaf_from_another_thread_raises_without_deadlock():
    x = tr.param([1.0, 2.0])
    y = x * 2.0

    with pytest.raises(tr.ThreadError) as excinfo:
        run_in_thread(lambda: y + 1.0)
    assert "tr.data" in str(excinfo.value)

    with pytest.raises(tr.ThreadError):
        run_in_thread(lambda: np.sum(y))

    # The remedies work: the plain value, and parameters, which are shared.
    assert_array_equal(run_in_thread(lambda: tr.data(y) + 1.0), [3.0, 5.0])
    assert tr.istracked(run_in_thread(lambda: x + 1.0))
    # And this thread's tape is still usable.
    tr.back(np.sum(y))
    assert_array_equal(tr.grad(x), [2.0, 2.0])


def test_four_threads_back_into_one_shared_parameter():
    p = tr.param([1.0, -2.0, 0.5])
    coefficients = [np.array([1.0, 2.0, 3.0]) * (k + 1) for k in range(4)]
    start = threading.Barrier(4)
    errors = []

    def work(c):
        try:
            start.wait(timeout=10)
            for _ in range(250):
                tr.back(np.sum(p * c))
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=work, args=(c,), daemon=True) for c in coefficients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not any(thread.is_alive() for thread in threads), "a thread deadlocked"
    assert errors == []
    # Every addition is exact in float64, so the total is exact.
    assert_array_equal(tr.grad(p), 250.0 * sum(coefficients))


@pytest.mark.slow
def test_a_million_node_chain_back_propagates():
    n = 1_000_000
    factor = 1.0000001
    x = tr.param([1.5])
    y = x
    for _ in range(n):
        y = y * factor
    tr.back(np.sum(y))
    assert_allclose(tr.grad(x), [factor**n], rtol=1e-9)


@pytest.mark.slow
def test_a_hundred_thousand_node_chain_under_nest():
    n = 100_000
    factor = 1.00001

    def f(x):
        y = x
        for _ in range(n):
            y = y * factor
        return np.sum(y**3)

    x0 = np.array([0.5])
    # d/dx sum((x a^n)^3) = 3 a^(3n) x^2, and its derivative is 6 a^(3n) x.
    (second,) = tr.gradient(lambda x: np.sum(tr.gradient(f, x, nest=True)[0]), x0)
    assert_allclose(second, 6.0 * factor ** (3 * n) * x0, rtol=1e-9)

    hessian = tr.hessian(f, x0)
    assert hessian.shape == (1, 1)
    assert_allclose(hessian, [[6.0 * factor ** (3 * n) * 0.5]], rtol=1e-9)


def test_a_tape_is_freed_once_its_handles_are_gone():
    # The extension exposes no tape object to watch. But the tape borrows NumPy
    # constants (it keeps a reference to the array itself instead of copying it),
    # so a weak reference to a constant that only the tape holds dies exactly when
    # the tape lets go of what it recorded.
    x = tr.param([1.0, 2.0, 3.0])
    constant = np.array([4.0, 5.0, 6.0])
    alive = weakref.ref(constant)
    y = x * constant
    del constant
    gc.collect()
    assert alive() is not None, "the tape should be holding its constant"
    del y
    _ = x * 2.0  # the next operation finds no handle into the old tape and clears it
    gc.collect()
    assert alive() is None, "the tape outlived its handles"


def test_a_consumed_loss_that_is_kept_does_not_hold_its_tape():
    x = tr.param([1.0, 2.0, 3.0])
    constant = np.array([4.0, 5.0, 6.0])
    alive = weakref.ref(constant)
    loss = np.sum(x * constant)
    del constant
    tr.back(loss)
    _ = x * 2.0
    gc.collect()
    assert alive() is None, "a consumed loss kept its tape alive"
    assert tr.data(loss) == 32.0


def test_a_kept_unconsumed_value_does_not_pin_what_is_recorded_after_it():
    # One value kept (never back-propagated) while training goes on: every step's nodes
    # are still freed, so the tape, and with it each backward pass, stays small.
    w = tr.param(np.full(4, 0.5))
    constant = np.array([4.0, 5.0, 6.0, 7.0])
    alive = weakref.ref(constant)
    kept = np.sum(w * 3.0)
    lengths = []
    for step in range(3000):
        loss = np.sum(np.tanh(w * constant) ** 2) if step == 0 else np.sum(np.tanh(w) ** 2)
        tr.back(loss)
        tr.update(w, -0.01 * tr.grad(w))
        lengths.append(tr._core.tape_length())
        if step == 0:
            del constant
    gc.collect()
    assert alive() is None, "the first step's constant outlived its consumed nodes"
    assert max(lengths[100:]) <= max(lengths[:100]), f"the tape grew: {lengths[-5:]}"
    # The kept value still differentiates, against the parameter's value when it was
    # recorded (3 per element, whatever updates came after).
    tr.zero_grad(w)
    tr.back(kept)
    assert_array_equal(tr.grad(w), np.full(4, 3.0))


def test_compaction_keeps_what_live_values_reach_and_moves_their_handles():
    # Values kept among thousands of dropped ones: once the tape is compacted, each kept
    # value still back-propagates to the right gradient, a kept consumed loss still
    # refuses a second pass, and the parameter's shared leaf is found again.
    x = tr.param(np.array([1.0, 2.0]))
    kept = []
    losses = []
    for i in range(3000):
        y = np.sin(x * (1.0 + i / 3000.0))
        if i % 1000 == 0:
            kept.append((i, np.sum(y * y)))
        if i % 1500 == 0:
            loss = np.sum(x * x)
            tr.back(loss)
            losses.append(loss)
    assert tr._core.tape_length() < 1000, "the tape was not compacted"
    for i, value in kept:
        c = 1.0 + i / 3000.0
        tr.zero_grad(x)
        tr.back(value)
        expected = 2.0 * np.sin(c * tr.data(x)) * np.cos(c * tr.data(x)) * c
        assert_allclose(tr.grad(x), expected, rtol=1e-12)
    for loss in losses:
        with pytest.raises(tr.ConsumedError, match="sum"):
            tr.back(loss)
        assert np.sum(loss * 2.0) == 2.0 * tr.data(loss)
    tr.zero_grad(x)
    tr.back(np.sum(x * x) + np.sum(x))
    assert_array_equal(tr.grad(x), [3.0, 5.0])


@tr.rule
def tripled(a):
    return a * 3.0, lambda dy: (dy * 3.0,)


def test_a_rule_stays_differentiable_while_a_later_value_reaches_it():
    # A rule's pullback is kept alive by the values that can reach it, not by the
    # handle of its own result: drop that handle, record and drop other rules, collect,
    # and a value computed from it long before still back-propagates through it.
    x = tr.param(np.array([1.0, 2.0]))
    chained = x
    for _ in range(50):
        chained = tripled(chained) * 0.5  # each link a rule and an op; links dropped
    late = np.sum(chained)
    for _ in range(3000):
        np.sum(tripled(x))  # rules recorded and dropped
    gc.collect()
    tr.back(late)
    assert_allclose(tr.grad(x), np.full(2, 1.5**50), rtol=1e-12)


def test_a_gradient_call_frees_its_tape_on_return():
    escaped = []

    def differentiate():
        constant = np.array([4.0, 5.0, 6.0])

        def f(x):
            product = x * constant
            escaped.append(product)  # a tracked value escapes the call
            return np.sum(product)

        return tr.gradient(f, np.ones(3)), weakref.ref(constant)

    (g,), alive = differentiate()
    assert_array_equal(g, [4.0, 5.0, 6.0])
    gc.collect()
    assert alive() is None, "the gradient call's tape outlived the call"
    assert len(escaped) == 1


def test_memory_of_a_large_computation_is_released():
    # 10^7 float64 = 80 MB per array: far above malloc's mmap threshold, so a freed
    # buffer goes back to the operating system and shows in the resident size.
    size_mb = 10**7 * 8 / 2**20
    x = tr.param(np.ones(10**7))
    gc.collect()
    base = resident_mb()
    y = x * 2.0
    assert resident_mb() - base > 0.8 * size_mb
    del y
    _ = tr.param([1.0]) * 2.0  # the next operation clears the tape
    gc.collect()
    assert resident_mb() - base < 0.1 * size_mb, "the tape kept a dead 80 MB value"

    # The same through a backward pass, keeping the loss: only the gradient remains.
    loss = np.sum(x * 3.0)
    tr.back(loss)
    _ = tr.param([1.0]) * 2.0
    gc.collect()
    grown = resident_mb() - base
    assert 0.8 * size_mb < grown < 1.2 * size_mb, f"{grown:.1f} MB kept, expected one gradient"
    assert tr.data(loss) == 3.0 * 10**7
