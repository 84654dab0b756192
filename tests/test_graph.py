"""tr.show and tr.to_dot: the recorded ops behind a value."""

import io
import re

import numpy as np
import pytest

import tracker as tr


def shown(y) -> list[str]:
    out = io.StringIO()
    tr.show(y, file=out)
    return out.getvalue().splitlines()


def test_show_lists_each_op_after_its_inputs():
    x = tr.param([1.0, 2.0])
    w = tr.param(np.ones((3, 2), dtype=np.float32))
    y = np.sum(np.tanh(w @ x.astype(np.float32)) ** 3)
    lines = shown(y)
    ops = [re.match(r"%\d+ = (\w+)", line).group(1) for line in lines]
    assert ops == ["param", "astype", "param", "matmul", "tanh", "constant", "power", "sum"]
    assert lines[1].startswith("%1 = astype(%0)") and lines[1].endswith("(2,) float32")
    assert re.fullmatch(r"%3 = matmul\(%2, %1\)\s+\(3,\) float32", lines[3])
    assert lines[-1].endswith("() float32")


def test_show_only_the_ancestry_and_marks_freed_values():
    x = tr.param([1.0, 2.0])
    unrelated = x * 5.0
    y = np.sum(np.exp(x))
    lines = shown(y)
    assert len(lines) == 3 and not any("multiply" in line for line in lines)
    tr.back(y)
    assert "(freed)" in shown(y)[1]
    del unrelated


def test_ops_with_one_scalar_constant_share_its_node():
    x = tr.param(np.array([1.0, 2.0]))
    t = x[0]
    y = 3.0 * t + 3.0 * t**4 + (1 - t) ** 4  # 3 and 4 twice each, 1 once: 3 constants
    ops = [re.match(r"%\d+ = (\w+)", line).group(1) for line in shown(y)]
    assert ops.count("constant") == 3
    (g,) = tr.gradient(lambda x: 3.0 * x[0] + 3.0 * x[0] ** 4 + (1 - x[0]) ** 4, x.data)
    assert g.tolist() == [3.0 + 12.0 * 1.0 - 4.0 * 0.0, 0.0]


def test_to_dot_is_a_digraph_with_one_edge_per_input():
    a, b = tr.param([1.0]), tr.param([2.0])
    dot = tr.to_dot(a * b + a)
    assert dot.startswith("digraph tracker {") and dot.rstrip().endswith("}")
    assert len(re.findall(r"n\d+ -> n\d+;", dot)) == 4
    assert 'label="multiply\\n(1,) float64"' in dot


def test_a_parameter_alone_and_untracked_values():
    lines = shown(tr.param(np.zeros((2, 2))))
    assert lines == ["%0 = param   (2, 2) float64"]
    with pytest.raises(TypeError, match="not tracked"):
        tr.show(np.ones(2))
