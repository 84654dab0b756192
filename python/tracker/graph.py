"""Seeing the tape: `show(y)` prints the ops `y` was computed by, `to_dot(y)` gives them
as Graphviz DOT text.

>>> import numpy as np, tracker as tr
>>> x = tr.param([1.0, 2.0])
>>> tr.show(np.sum(x * x))
%0 = param              (2,) float64
%1 = multiply(%0, %0)   (2,) float64
%2 = sum(%1)            () float64
"""

import sys
from typing import Any, TextIO

from tracker import _core

__all__ = ["show", "to_dot"]


def _describe(shape: list[int] | None, dtype: str | None) -> str:
    return "(freed)" if shape is None else f"{tuple(shape)} {dtype}"


def _rows(y: Any) -> list[tuple[str, str, str]]:
    """Per node: its name, its call (op and inputs) and its value's description."""
    nodes = _core.graph(y)
    names = {node_id: f"%{k}" for k, (node_id, *_) in enumerate(nodes)}
    rows = []
    for node_id, op, shape, dtype, inputs in nodes:
        call = op if not inputs else f"{op}({', '.join(names[i] for i in inputs)})"
        rows.append((names[node_id], call, _describe(shape, dtype)))
    return rows


def show(y: Any, file: TextIO | None = None) -> None:
    """Prints the recorded ops that `y` depends on, one per line, each after its inputs:
    `%k = op(inputs)   shape dtype`."""
    rows = _rows(y)
    width = max(len(call) for _, call, _ in rows)
    out = sys.stdout if file is None else file
    for name, call, value in rows:
        print(f"{name} = {call.ljust(width)}   {value}", file=out)


def to_dot(y: Any) -> str:
    """The recorded ops that `y` depends on as a Graphviz digraph (inputs point to the
    ops that use them): `dot -Tsvg` draws it."""
    nodes = _core.graph(y)
    lines = ["digraph tracker {", "  node [shape=box, fontname=monospace];"]
    for node_id, op, shape, dtype, inputs in nodes:
        label = f"{op}\\n{_describe(shape, dtype)}"
        lines.append(f'  n{node_id} [label="{label}"];')
        lines.extend(f"  n{i} -> n{node_id};" for i in inputs)
    lines.append("}")
    return "\n".join(lines) + "\n"
