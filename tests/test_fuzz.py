"""Fuzzing: random programs against finite differences, and every public function with
random (mostly invalid) arguments.

Random programs are compositions of the supported ops over random shapes with
broadcasting. Each is generated as Python source, one line per op, and run three
ways: on plain NumPy float64 arrays (the reference and the finite differences), traced
in float64 (first-order gradients against central differences, the Hessian against
differences of `tr.gradient`) and traced in float32 (dtypes kept, values close to the
float64 run). Values stay in safe domains and away from kinks: each op is chosen
with the values it will see at hand, so a `log` gets a positive argument, an `abs`
or a `maximum` stays `MARGIN` away from its kink, a `max` has a unique maximiser,
and a `where` condition is `MARGIN` away from its threshold.

Indexing is checked directly against NumPy: random keys (integers, slices with any
bounds and steps, `None`, `...`, integer arrays, boolean masks, out-of-range items)
give NumPy's value, and a gradient that is NumPy's scatter-add of the seed.

The API fuzzer calls every public function and op with random arguments; only the
documented exceptions may come out, never a panic, a `SystemError` or a message that
mentions an internal error. Sizes whose allocation cannot succeed run in child
processes, so that an abort is reported instead of ending the test run.

The `slow` variants run the same checks longer (`make test-slow`).
"""

import dataclasses
import itertools
import math
import subprocess
import sys
import threading
import warnings
from collections import namedtuple
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

import tracker as tr

MARGIN = 0.05  # how far every value stays from a kink, a tie or a threshold
LIMIT = 4.0  # values larger than this are scaled back by a constant factor
MAX_SIZE = 36  # no intermediate value grows past this many elements
STEP = 2e-4  # finite-difference step (fourth-order central differences)

# Hypothesis reports a failure through code that warns (mypy_extensions' TypedDict); with
# warnings as errors that would hide the failure behind an INTERNALERROR.
pytestmark = pytest.mark.filterwarnings("ignore:mypy_extensions.TypedDict:DeprecationWarning")

SLOW_SETTINGS = {"deadline": None, "suppress_health_check": list(HealthCheck)}


def literal(value: Any, typed: bool = False) -> str:
    """Python source for a constant: floats exactly, arrays of the program's dtype `DT`
    (a 0-d one as a Python float, weakly typed, unless `typed`)."""
    array = np.asarray(value)
    if array.dtype == np.bool_ or array.dtype.kind in "iu":
        kind = "bool" if array.dtype == np.bool_ else "np.intp"
        if array.size == 0:
            return f"np.zeros({array.shape}, dtype={kind})"
        return f"np.array({array.tolist()!r})"
    if array.ndim == 0:
        return f"np.array({float(array)!r}, dtype=DT)" if typed else repr(float(array))
    if array.size == 0:
        return f"np.zeros({array.shape}, dtype=DT)"
    return f"np.array({array.tolist()!r}, dtype=DT)"


def fits(shape: tuple[int, ...], target: tuple[int, ...]) -> bool:
    """Whether `shape` and `target` broadcast together within `MAX_SIZE` elements."""
    try:
        joint = np.broadcast_shapes(shape, target)
    except ValueError:
        return False
    return math.prod(joint) <= MAX_SIZE


class Program:
    """A random program, built one line at a time as its values are computed."""

    def __init__(self, draw: Callable[[Any], Any], inputs: list[np.ndarray]):
        self.draw = draw
        self.inputs = inputs
        self.args = [f"x{k}" for k in range(len(inputs))]
        self.env: dict[str, Any] = {"np": np, "DT": np.float64}
        self.env.update(zip(self.args, inputs))
        self.pool = list(self.args)
        self.lines: list[str] = []
        self.count = 0
        self.extreme_odds = 9  # one slice in this many has extreme bounds or step
        self.invalid = False  # whether index items may be out of range

    # values and lines

    def value(self, name: str) -> np.ndarray:
        return np.asarray(self.env[name], dtype=np.float64)

    def shape(self, name: str) -> tuple[int, ...]:
        return self.value(name).shape

    def emit(self, expr: str, keep: bool = True) -> str:
        name = f"v{self.count}"
        self.count += 1
        line = f"{name} = {expr}"
        try:
            exec(line, self.env)
        except Exception:
            note("\n".join([*self.lines, line, repr(self.inputs)]))
            raise
        self.lines.append(line)
        if keep:
            self.pool.append(name)
        return name

    def pick(self, nonempty: bool = False) -> str | None:
        names = [n for n in self.pool if not nonempty or self.value(n).size > 0]
        if not names:
            return None
        if self.draw(st.booleans()):
            return self.draw(st.sampled_from(names[-3:]))
        return self.draw(st.sampled_from(names))

    def choice(self, options: list[Any]) -> Any:
        return self.draw(st.sampled_from(options))

    def constant(
        self, shape: tuple[int, ...], low: float = -1.0, high: float = 1.0, typed: bool = False
    ) -> str:
        # multiples of 1/32, so that constants are exact in float32 and rarely 0
        n = math.prod(shape)
        steps = st.integers(math.ceil(low * 32), math.floor(high * 32))
        values = [k / 32 for k in self.draw(st.lists(steps, min_size=n, max_size=n))]
        values = [v or 0.75 for v in values]
        return literal(np.array(values, dtype=np.float64).reshape(shape), typed)

    def sub_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        """A shape that broadcasts to `shape`: leading axes dropped, some set to 1."""
        drop = self.draw(st.integers(0, len(shape)))
        return tuple(d if self.draw(st.booleans()) else 1 for d in shape[drop:])

    # guards that keep values in safe domains and away from kinks

    def rescale(self, name: str) -> str:
        v = self.value(name)
        top = float(np.max(np.abs(v))) if v.size else 0.0
        if top <= LIMIT:
            return name
        scaled = self.emit(f"{name} * {float(f'{LIMIT / top:.3g}')!r}", keep=False)
        self.pool = [scaled if n == name else n for n in self.pool]
        return scaled

    def shifted(self, name: str, differences: np.ndarray) -> str:
        """`name` plus a constant that keeps `differences` (minus it) `MARGIN` from 0."""
        if differences.size == 0 or np.min(np.abs(differences)) >= MARGIN:
            return name
        for c in (0.5, -0.5, 1.0, -1.0, 2.0):
            if np.min(np.abs(differences - c)) >= MARGIN:
                break
        else:
            c = float(np.max(np.abs(differences))) + 1.0
        return self.emit(f"{name} + {c!r}", keep=False)

    def away_from_zero(self, name: str) -> str:
        return self.shifted(name, -self.value(name))

    def positive(self, name: str) -> str:
        v = self.value(name)
        if v.size == 0 or np.min(v) >= 0.3:
            return name
        options = ["square"]
        if np.min(np.abs(v)) >= MARGIN:
            options.append("abs")
        if np.min(v) >= -1.2 and np.max(v) <= LIMIT:
            options.append("exp")
        how = self.choice(options)
        if how == "abs":
            return self.emit(f"np.abs({name}) + 0.5", keep=False)
        if how == "exp":
            return self.emit(f"np.exp({name})", keep=False)
        return self.emit(f"{name} * {name} + 0.5", keep=False)

    def untied(self, name: str, axes: tuple[int, ...] | None) -> str:
        """`name`, made to have a unique maximum and minimum in each group of `axes`."""
        v = self.value(name)
        if v.size == 0:
            return name
        axes = tuple(range(v.ndim)) if axes is None else tuple(a % v.ndim for a in axes)
        rest = [a for a in range(v.ndim) if a not in axes]
        n = math.prod(v.shape[a] for a in axes)
        groups = np.sort(np.transpose(v, rest + list(axes)).reshape(-1, n), axis=1)
        if n <= 1 or np.min(np.diff(groups, axis=1)) >= MARGIN:
            return name
        spread = float(np.ptp(v)) + 2 * MARGIN
        return self.emit(
            f"{name} + np.arange({v.size}, dtype=DT).reshape({v.shape}) * {spread!r}", keep=False
        )

    def partner(self, a: str) -> str:
        """Another value of the pool that broadcasts with `a` (a scalar sum if none does)."""
        b = self.pick()
        assert b is not None
        if fits(self.shape(a), self.shape(b)):
            return b
        return self.rescale(self.emit(f"np.sum({b})", keep=False))

    # the ops

    def unary(self) -> str:
        a = self.pick()
        assert a is not None
        kind = self.choice(
            ["exp", "log", "sin", "cos", "tanh", "sqrt", "abs", "neg", "square", "pow", "affine"]
        )
        if kind in ("exp", "sin", "cos", "tanh"):
            expr = f"np.{kind}({a})"
        elif kind in ("log", "sqrt"):
            expr = f"np.{kind}({self.positive(a)})"
        elif kind == "abs":
            n = self.away_from_zero(a)
            expr = self.choice([f"np.abs({n})", f"abs({n})", f"np.absolute({n})", f"np.fabs({n})"])
        elif kind == "neg":
            expr = self.choice([f"-{a}", f"np.negative({a})", f"+{a}"])
        elif kind == "square":
            expr = self.choice([f"{a} ** 2", f"np.square({a})", f"{a} ** 3", f"np.power({a}, 2)"])
        elif kind == "pow":
            p = self.positive(a)
            expr = self.choice(
                [f"{p} ** 0.5", f"{p} ** -1.5", f"1.5 ** {a}", f"np.power(0.7, {a})", f"1.0 / {p}"]
            )
        else:
            expr = self.choice(
                [f"{a} * 2.5 + 1.0", f"0.5 - {a}", f"{a} / 3.0", f"np.tanh({a}) * 3"]
            )
        return self.rescale(self.emit(expr))

    def binary(self) -> str:
        a = self.pick()
        assert a is not None
        kind = self.choice(["add", "sub", "mul", "div", "maximum", "minimum", "pow"])
        source = self.choice(["pool", "pool", "constant", "scalar"])
        if source == "pool":
            b = self.partner(a)
        elif source == "constant":
            # constants are positive where they may end up a divisor or a base
            low = 0.5 if kind in ("div", "pow") else -1.0
            b = self.constant(self.sub_shape(self.shape(a)), low, 1.5)
        else:
            b = repr(self.draw(st.sampled_from([0.5, 1.25, 2.0, 3.0])))
        if self.draw(st.booleans()):
            a, b = b, a
        if kind == "div" and b in self.env:
            b = self.positive(b)
        if kind == "pow" and a in self.env:
            a = self.positive(a)
        if kind in ("maximum", "minimum"):
            b = self.shifted(b, np.asarray(eval(f"{a} - {b}", self.env), dtype=np.float64))
            expr = f"np.{kind}({a}, {b})"
        else:
            symbol = {"add": "+", "sub": "-", "mul": "*", "div": "/", "pow": "**"}[kind]
            ufunc = {
                "add": "add",
                "sub": "subtract",
                "mul": "multiply",
                "div": "divide",
                "pow": "power",
            }[kind]
            expr = self.choice([f"{a} {symbol} {b}", f"np.{ufunc}({a}, {b})"])
        return self.rescale(self.emit(expr))

    def axes(self, ndim: int) -> tuple[str, tuple[int, ...] | None]:
        """A random `axis` argument: its source and the axes it means (None for all)."""
        if ndim == 0:
            return self.choice([("None", None), ("()", ())])
        how = self.choice(["none", "int", "tuple"])
        if how == "none":
            return "None", None
        if how == "int":
            k = self.draw(st.integers(-ndim, ndim - 1))
            return str(k), (k,)
        chosen = self.draw(st.lists(st.integers(0, ndim - 1), unique=True, max_size=ndim))
        signed = tuple(k - ndim if self.draw(st.booleans()) else k for k in chosen)
        return repr(signed), signed

    def reduce(self) -> str:
        a = self.pick()
        assert a is not None
        v = self.value(a)
        kind = self.choice(["sum", "mean", "prod", "max", "min"])
        axis, axes = self.axes(v.ndim)
        normalized = range(v.ndim) if axes is None else {k % v.ndim for k in axes}
        reduced = math.prod(v.shape[k] for k in normalized) if v.ndim else 1
        if reduced == 0 and kind != "prod":
            kind = "sum"  # NumPy warns about the mean of nothing; max has no identity
        if v.size == 0 and kind in ("max", "min") and not self.draw(st.booleans()):
            kind = "sum"
        if kind in ("max", "min"):
            a = self.untied(a, axes)
        keepdims = self.draw(st.booleans())
        ufunc = {"sum": "add", "prod": "multiply", "max": "maximum", "min": "minimum"}
        forms = [
            f"np.{kind}({a}, axis={axis}, keepdims={keepdims})",
            f"{a}.{kind}(axis={axis}, keepdims={keepdims})",
            f"{a}.{kind}({axis})",
        ]
        if kind in ("max", "min"):
            forms.append(f"np.a{kind}({a}, axis={axis}, keepdims={keepdims})")
        if kind in ufunc and v.ndim > 0:
            forms.append(f"np.{ufunc[kind]}.reduce({a}, axis={axis}, keepdims={keepdims})")
            forms.append(f"np.{ufunc[kind]}.reduce({a}, {axis})")
            if axes in ((0,), (-v.ndim,)):
                forms.append(f"np.{ufunc[kind]}.reduce({a})")  # axis 0 by default
        return self.rescale(self.emit(self.choice(forms)))

    def transpose(self) -> str:
        a = self.pick()
        assert a is not None
        ndim = self.value(a).ndim
        perm = self.draw(st.permutations(range(ndim)))
        perm = tuple(k - ndim if self.draw(st.booleans()) else k for k in perm)
        forms = [f"{a}.T", f"np.transpose({a})"]
        if ndim > 0:
            forms += [f"np.transpose({a}, {perm})", f"{a}.transpose({perm})"]
        if ndim > 1:
            forms.append(f"{a}.transpose({', '.join(map(str, perm))})")
        return self.emit(self.choice(forms))

    def reshape(self) -> str:
        a = self.pick()
        assert a is not None
        size = self.value(a).size
        dims: list[int] = []
        rest = size
        for _ in range(self.draw(st.integers(0, 3))):
            divisors = [d for d in range(1, min(rest, 6) + 1) if rest % d == 0] if rest else [0, 2]
            d = self.draw(st.sampled_from(divisors))
            dims.append(d)
            rest = rest // d if d else 0
        if rest != 1 or (size == 0 and 0 not in dims):
            dims.append(rest)
        if size > 0 and dims and self.draw(st.booleans()):
            dims[self.draw(st.integers(0, len(dims) - 1))] = -1
        shape = tuple(dims)
        forms = [f"{a}.reshape({shape})", f"np.reshape({a}, {shape})"]
        if dims:
            forms.append(f"{a}.reshape({', '.join(map(str, dims))})")
        return self.emit(self.choice(forms))

    def index_item(self, n: int) -> str:
        """One item of an index that consumes an axis of length `n`."""
        kind = self.choice(["int", "slice", "slice", "array", "mask"])
        if self.invalid and self.draw(st.integers(0, 7)) == 0:
            # out of range, as an integer or in an integer array
            if kind == "array":
                return f"np.array([{self.draw(st.sampled_from([n, n + 1, -n - 1]))}])"
            return str(self.draw(st.sampled_from([n, n + 1, -n - 1, 10**30, -(10**30)])))
        if kind == "int" and n > 0:
            return str(self.draw(st.integers(-n, n - 1)))
        if kind == "array" and n > 0:
            index_shape = self.choice([(), (0,), (1,), (2,), (3,), (2, 2)])
            count = math.prod(index_shape)
            values = self.draw(st.lists(st.integers(-n, n - 1), min_size=count, max_size=count))
            return literal(np.array(values, dtype=np.intp).reshape(index_shape))
        if kind == "mask":
            bits = self.draw(st.lists(st.booleans(), min_size=n, max_size=n))
            return literal(np.array(bits, dtype=bool))
        bound = st.none() | st.integers(-n - 2, n + 2)
        step = st.none() | st.sampled_from([1, 2, 3, -1, -2])
        if self.draw(st.integers(0, self.extreme_odds)) == 0:
            # bounds and steps far outside the axis, as NumPy clamps them
            extreme = st.sampled_from([2**62, 2**63 - 1, -(2**63), 10**30, -(10**30)])
            bound, step = bound | extreme, step | extreme
        start, stop, step = self.draw(bound), self.draw(bound), self.draw(step)
        text = f"{'' if start is None else start}:{'' if stop is None else stop}"
        return text if step is None else f"{text}:{step}"

    def index_key(self, shape: tuple[int, ...]) -> str:
        ndim = len(shape)
        if ndim and self.draw(st.integers(0, 5)) == 0:
            # one boolean mask over the whole array
            bits = self.draw(
                st.lists(st.booleans(), min_size=math.prod(shape), max_size=math.prod(shape))
            )
            return literal(np.array(bits, dtype=bool).reshape(shape))
        k = self.draw(st.integers(0, ndim))
        back = self.draw(st.booleans())
        consumed = range(ndim - k, ndim) if back else range(k)
        items = [self.index_item(shape[axis]) for axis in consumed]
        for _ in range(self.draw(st.integers(0, 2))):
            items.insert(self.draw(st.integers(0, len(items))), "None")
        if back:
            items.insert(0, "...")
        elif self.draw(st.booleans()) or not items:
            items.append("...")
        return ", ".join(items)

    def index(self) -> str:
        a = self.pick()
        assert a is not None
        shape = self.shape(a)
        for _ in range(5):
            key = self.index_key(shape)
            try:
                result = eval(f"{a}[{key}]", self.env)
            except IndexError:
                continue  # advanced indices that NumPy cannot broadcast together
            if np.size(result) <= MAX_SIZE:
                return self.emit(f"{a}[{key}]")
        return self.emit(f"{a}[...]")

    def gathered(self, shape: tuple[int, ...]) -> str:
        """A tracked operand of `shape`: elements of a pool value, or a constant."""
        v = self.pick(nonempty=True)
        if v is None or math.prod(shape) == 0 or self.draw(st.booleans()):
            return self.constant(shape)
        size = self.value(v).size
        count = math.prod(shape)
        positions = self.draw(st.lists(st.integers(0, size - 1), min_size=count, max_size=count))
        index = literal(np.array(positions, dtype=np.intp).reshape(shape))
        return self.emit(f"{v}.reshape(-1)[{index}]", keep=False)

    def matmul(self) -> str:
        a = self.pick()
        assert a is not None
        v = self.value(a)
        if v.ndim == 0:
            other = self.gathered(self.choice([(), (2,), (2, 3)]))
            return self.rescale(self.emit(f"np.dot({a}, {other})"))
        if v.ndim > 2 or (v.ndim == 2 and self.draw(st.booleans())):
            flat = v.size == 0 or self.draw(st.booleans())
            shape = "-1" if flat else f"{v.shape[0]}, -1"
            a = self.emit(f"{a}.reshape({shape})", keep=False)
            v = self.value(a)
        left = self.draw(st.booleans())
        n = self.draw(st.integers(1, 3))
        if left:
            k = v.shape[0]
            other = self.gathered(self.choice([(k,), (n, k)]))
            x, y = other, a
        else:
            k = v.shape[-1]
            other = self.gathered(self.choice([(k,), (k, n)]))
            x, y = a, other
        expr = self.choice([f"{x} @ {y}", f"np.matmul({x}, {y})", f"np.dot({x}, {y})"])
        if not left:
            expr = self.choice([expr, f"{x}.dot({y})"])
        return self.rescale(self.emit(expr))

    def join(self) -> str:
        a = self.pick()
        assert a is not None
        v = self.value(a)
        same = [n for n in self.pool if self.shape(n) == v.shape]
        pieces = [a] + [
            self.draw(st.sampled_from(same)) for _ in range(self.draw(st.integers(0, 2)))
        ]
        if self.draw(st.booleans()):
            pieces.append(self.constant(v.shape, typed=True))
        if math.prod(v.shape) * (len(pieces) + 1) > MAX_SIZE:
            pieces = pieces[:1]
        if v.ndim == 0 or self.draw(st.booleans()):
            axis = self.draw(st.integers(-v.ndim - 1, v.ndim))
            return self.emit(f"np.stack([{', '.join(pieces)}], axis={axis})")
        axis = self.draw(st.integers(-v.ndim, v.ndim - 1))
        cut = self.draw(st.integers(0, v.shape[axis]))
        before = ":, " * (axis % v.ndim)
        pieces.append(self.emit(f"{a}[{before}:{cut}]", keep=False))
        if self.draw(st.booleans()):
            return self.emit(f"np.concatenate([{', '.join(pieces)}], axis={axis})")
        return self.emit(f"np.concatenate(({', '.join(pieces)}), {axis})")

    def where(self) -> str:
        a = self.pick()
        assert a is not None
        b = self.choice([self.partner(a), repr(0.5)])
        c = self.partner(a)
        shapes = [self.shape(a), np.shape(eval(b, self.env)), self.shape(c)]
        try:
            joint = np.broadcast_shapes(*shapes)
        except ValueError:
            joint = (MAX_SIZE + 1,)
        if math.prod(joint) > MAX_SIZE:
            c = self.rescale(self.emit(f"np.sum({c})", keep=False))
            joint = np.broadcast_shapes(*shapes[:2])
        values = np.unique(self.value(c))
        gaps = [(lo + hi) / 2 for lo, hi in itertools.pairwise(values) if hi - lo >= 2 * MARGIN]
        threshold = self.choice(gaps) if gaps else (float(values[0]) - 1 if values.size else 0.0)
        condition = self.choice([f"{c} > {threshold!r}", f"{c} <= {threshold!r}"])
        if self.draw(st.integers(0, 3)) == 0:
            mask_shape = self.sub_shape(joint)
            bits = self.draw(
                st.lists(
                    st.booleans(), min_size=math.prod(mask_shape), max_size=math.prod(mask_shape)
                )
            )
            condition = literal(np.array(bits, dtype=bool).reshape(mask_shape))
        if self.draw(st.booleans()):
            a, b = b, a
        return self.rescale(self.emit(f"np.where({condition}, {a}, {b})"))

    def build(self, steps: int) -> None:
        ops = [
            self.unary,
            self.unary,
            self.binary,
            self.binary,
            self.reduce,
            self.transpose,
            self.reshape,
            self.index,
            self.matmul,
            self.join,
            self.where,
        ]
        for _ in range(steps):
            self.draw(st.sampled_from(ops))()
        terms = []
        names = [self.pool[-1], *self.draw(st.lists(st.sampled_from(self.pool), max_size=2))]
        for name in names:
            shape = self.shape(name)
            if not shape:
                terms.append(f"{name} * {self.draw(st.sampled_from([1.0, -0.75, 2.0]))!r}")
            else:
                how = self.choice(["weights", "sum", "mean"]) if math.prod(shape) else "sum"
                if how == "weights":
                    terms.append(f"np.sum({name} * {self.constant(shape)})")
                elif how == "sum":
                    terms.append(f"{name}.sum()")
                else:
                    terms.append(f"np.mean({name})")
        self.emit(" + ".join(terms), keep=False)

    # running it

    def source(self, record: bool = False) -> str:
        body = []
        for line in self.lines:
            body.append(f"    {line}")
            if record:
                body.append(f"    SEEN.append({line.split(' = ')[0]})")
        body.append(f"    return v{self.count - 1}")
        return "\n".join([f"def f({', '.join(self.args)}):", *body])

    def flat_source(self) -> str:
        lines, start = [], 0
        for name, x in zip(self.args, self.inputs):
            lines.append(f"    {name} = v[{start}:{start + x.size}].reshape({x.shape})")
            start += x.size
        lines.append(f"    return f({', '.join(self.args)})")
        return "\n".join(["def flat(v):", *lines])

    def function(self, dtype: Any, seen: list[Any] | None = None) -> Callable[..., Any]:
        namespace = {"np": np, "DT": dtype, "SEEN": seen}
        exec(self.source(record=seen is not None), namespace)
        exec(self.flat_source(), namespace)
        return namespace["f"]

    def flat_function(self, dtype: Any) -> Callable[..., Any]:
        namespace = {"np": np, "DT": dtype, "SEEN": None}
        exec(self.source(), namespace)
        exec(self.flat_source(), namespace)
        return namespace["flat"]

    def repro(self) -> str:
        inputs = [
            f"{name} = np.array({x.tolist()!r}, dtype=DT).reshape({x.shape})"
            for name, x in zip(self.args, self.inputs)
        ]
        return "\n".join(
            [
                "import numpy as np, tracker as tr",
                "DT = np.float64",
                self.source(),
                *inputs,
                f"tr.withgradient(f, {', '.join(self.args)})",
            ]
        )


@st.composite
def program_inputs(draw: Callable[[Any], Any]) -> list[np.ndarray]:
    base = tuple(draw(st.lists(st.integers(1, 4), max_size=3)))
    while math.prod(base) > 12:
        base = base[1:]
    shapes = []
    for _ in range(draw(st.integers(1, 3))):
        if draw(st.integers(0, 40)) == 0:
            shape: tuple[int, ...] = (0, *base[1:])
        else:
            drop = draw(st.integers(0, len(base)))
            shape = tuple(d if draw(st.integers(0, 3)) else 1 for d in base[drop:])
        shapes.append(shape)
    inputs = []
    for shape in shapes:
        n = math.prod(shape)
        values = draw(st.lists(st.floats(0.5, 1.5), min_size=n, max_size=n))
        inputs.append(np.array(values, dtype=np.float64).reshape(shape))
    return inputs


def numerical_gradient(f: Callable[..., Any], xs: list[np.ndarray], k: int) -> np.ndarray:
    """The gradient of `f` with respect to its `k`th argument, by fourth-order differences."""
    x = xs[k]
    grad = np.zeros(x.shape)
    for i in np.ndindex(*x.shape):
        values = []
        for offset in (STEP, -STEP, 2 * STEP, -2 * STEP):
            moved = x.copy()
            moved[i] += offset
            values.append(float(f(*xs[:k], moved, *xs[k + 1 :])))
        grad[i] = (8 * (values[0] - values[1]) - (values[2] - values[3])) / (12 * STEP)
    return grad


def numerical_jacobian(g: Callable[[np.ndarray], Any], v: np.ndarray) -> np.ndarray:
    columns = []
    for i in range(v.size):
        values = []
        for offset in (STEP, -STEP, 2 * STEP, -2 * STEP):
            moved = v.copy()
            moved[i] += offset
            values.append(np.asarray(g(moved), dtype=np.float64).reshape(-1))
        columns.append((8 * (values[0] - values[1]) - (values[2] - values[3])) / (12 * STEP))
    return np.stack(columns, axis=1) if columns else np.zeros((0, 0))


def close(actual: Any, expected: Any, rtol: float, atol: float) -> bool:
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    if actual.shape != expected.shape:
        return False
    scale = 1.0 + (float(np.max(np.abs(expected))) if expected.size else 0.0)
    return bool(np.all(np.abs(actual - expected) <= rtol * np.abs(expected) + atol * scale))


def check_program(program: Program) -> None:
    repro = program.repro()
    note(repro)
    f64 = program.function(np.float64)
    xs = program.inputs

    # every value, traced in float64, against NumPy's
    seen: list[Any] = []
    tr.withgradient(program.function(np.float64, seen), *xs)
    for line, value in zip(program.lines, seen):
        name = line.split(" = ")[0]
        actual, expected = tr.data(value), program.env[name]
        assert np.shape(actual) == np.shape(expected), (
            f"`{line}` has shape {np.shape(actual)}, NumPy's {np.shape(expected)}\n{repro}"
        )
        assert close(actual, expected, 1e-12, 1e-12), (
            f"`{line}` is\n{actual}\nNumPy's\n{expected}\n{repro}"
        )

    # the value and gradients, traced in float64, against NumPy and finite differences
    expected = f64(*xs)
    val, grads = tr.withgradient(f64, *xs)
    assert close(val, expected, 1e-12, 1e-12), f"value {val} != {expected}\n{repro}"
    assert len(grads) == len(xs), repro
    for k, (g, x) in enumerate(zip(grads, xs)):
        # (a 0-d argument's gradient comes back as a NumPy scalar)
        assert isinstance(g, np.ndarray | np.float64), f"gradient {k}: {g!r}\n{repro}"
        assert g.dtype == np.float64 and g.shape == x.shape, f"gradient {k}: {g!r}\n{repro}"
        numeric = numerical_gradient(f64, xs, k)
        assert close(g, numeric, 1e-8, 1e-9), (
            f"gradient of x{k}:\n{g}\nfinite differences:\n{numeric}\n{repro}"
        )

    # the same through parameters and `back`
    params = [tr.param(x) for x in xs]
    loss = f64(*params)
    tr.back(loss)
    for k, (p, g) in enumerate(zip(params, grads)):
        assert close(tr.grad(p), g, 1e-12, 1e-12), f"back: grad(x{k}) = {tr.grad(p)}\n{repro}"

    # second order: the Hessian of the flattened inputs against differences of the gradient
    flat = program.flat_function(np.float64)
    v = np.concatenate([x.reshape(-1) for x in xs])
    if v.size:
        hessian = tr.hessian(flat, v)
        assert hessian.dtype == np.float64 and hessian.shape == (v.size, v.size), repro
        numeric = numerical_jacobian(lambda z: tr.gradient(flat, z)[0], v)
        assert close(hessian, numeric, 1e-7, 1e-8), (
            f"Hessian:\n{hessian}\nfinite differences:\n{numeric}\n{repro}"
        )

    # float32: runs, stays float32 throughout, and agrees with float64
    seen = []
    f32 = program.function(np.float32, seen)
    xs32 = [x.astype(np.float32) for x in xs]
    val32, grads32 = tr.withgradient(f32, *xs32)
    assert np.asarray(val32).dtype == np.float32, (
        f"float32 loss is {np.asarray(val32).dtype}\n{repro}"
    )
    for line, value in zip(program.lines, seen):
        if tr.istracked(value):
            dtype = np.asarray(tr.data(value)).dtype
            assert dtype == np.float32, f"float32 program: `{line}` gave {dtype}\n{repro}"
    assert close(val32, val, 1e-4, 1e-4), f"float32 value {val32} != {val}\n{repro}"
    for k, (g32, g) in enumerate(zip(grads32, grads)):
        assert g32.dtype == np.float32 and g32.shape == g.shape, f"{g32!r}\n{repro}"
        assert close(g32, g, 1e-3, 1e-3), f"float32 gradient of x{k}:\n{g32}\nvs\n{g}\n{repro}"


@st.composite
def programs(draw: Callable[[Any], Any]) -> Program:
    program = Program(draw, draw(program_inputs()))
    program.build(draw(st.integers(2, 12)))
    return program


@settings(max_examples=600, **SLOW_SETTINGS)
@given(program=programs())
def test_random_programs_match_finite_differences(program: Program) -> None:
    check_program(program)


@pytest.mark.slow
@settings(max_examples=2500, **SLOW_SETTINGS)
@given(program=programs())
def test_random_programs_match_finite_differences_long_run(program: Program) -> None:
    check_program(program)


# Indexing against NumPy


@st.composite
def index_cases(draw: Callable[[Any], Any]) -> tuple[tuple[int, ...], str]:
    shape = tuple(draw(st.lists(st.integers(0, 4), max_size=4)))
    maker = Program(draw, [])
    maker.extreme_odds = 2
    maker.invalid = draw(st.booleans())
    return shape, maker.index_key(shape)


def check_index(shape: tuple[int, ...], source: str) -> None:
    """`x[key]` and its gradient against NumPy's `x[key]` and a scatter-add of the weights."""
    x = np.arange(math.prod(shape), dtype=np.float64).reshape(shape) + 0.5
    key = eval(f"np.s_[{source}]", {"np": np})
    what = f"tr.param(np.arange({x.size}.0).reshape({shape}) + 0.5)[{source}]"
    try:
        expected = x[key]
    except IndexError:
        result = attempt(what, lambda: tr.param(x)[key])
        # (tracker raises ValueError for index arrays that do not broadcast together)
        assert isinstance(result, IndexError | ValueError), (
            f"{what} gave {result!r}, NumPy an IndexError"
        )
        return
    result = attempt(what, lambda: tr.param(x)[key])
    assert not isinstance(result, BaseException), (
        f"{what} raised {result!r}; NumPy gives {expected}"
    )
    assert np.shape(result) == np.shape(expected), f"{what} has shape {np.shape(result)}"
    assert np.array_equal(tr.data(result), expected), f"{what} is {tr.data(result)}, not {expected}"
    w = np.arange(np.size(expected), dtype=np.float64).reshape(np.shape(expected)) + 1.0
    grad = tr.gradient(lambda z: np.sum(z[key] * w), x)[0]
    positions = np.arange(x.size).reshape(shape)[key]
    scattered = np.bincount(np.ravel(positions), weights=np.ravel(w), minlength=x.size)
    assert np.array_equal(grad, scattered.reshape(shape)), f"gradient of {what}: {grad}"


@settings(max_examples=1000, **SLOW_SETTINGS)
@given(case=index_cases())
def test_indexing_matches_numpy(case: tuple[tuple[int, ...], str]) -> None:
    check_index(*case)


@pytest.mark.slow
@settings(max_examples=5000, **SLOW_SETTINGS)
@given(case=index_cases())
def test_indexing_matches_numpy_long_run(case: tuple[tuple[int, ...], str]) -> None:
    check_index(*case)


# Every public function with random arguments


class Boom(Exception):
    """Raised by the callables handed to tracker: it must come back unchanged."""


ALLOWED = (TypeError, ValueError, IndexError, MemoryError, KeyError, tr.TrackerError, Boom)


def attempt(
    what: str,
    fn: Callable[..., Any],
    *args: Any,
    also_allowed: tuple[type, ...] = (),
    **kwargs: Any,
) -> Any:
    """`fn(*args, **kwargs)`, or the documented exception it raised; anything else fails.

    `also_allowed` are exceptions NumPy itself raises for the same arguments.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return fn(*args, **kwargs)
    except ALLOWED + also_allowed as e:
        assert "internal" not in str(e).lower(), f"{what}: {type(e).__name__}: {e}"
        return e
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as e:  # a PanicException is a BaseException
        pytest.fail(f"{what} raised {type(e).__module__}.{type(e).__qualname__}: {e}")


def tracked(kind: str, shape: tuple[int, ...], dtype: Any) -> Any:
    """A tracked value: a parameter, a recorded value, a consumed one, or a stale one."""
    x = np.linspace(0.5, 1.5, math.prod(shape)).reshape(shape).astype(dtype)
    p = tr.param(x)
    if kind == "param" or not tr.istracked(p * 1.0):  # (inside tr.no_grad)
        return p
    y = p * 2.0
    if kind == "consumed":
        tr.back(np.sum(y))
    elif kind == "stale":
        leaked = []
        tr.gradient(lambda z: np.sum(leaked.append(z * 2.0) or z), x)
        return leaked[0]
    elif kind == "nested":
        return tr.gradient(lambda z: np.sum(z * y), x)[0]
    return y


small_shapes = st.lists(st.integers(0, 3), max_size=4).map(tuple) | st.just((1,) * 40)
tracked_values = st.builds(
    tracked,
    st.sampled_from(["param", "param", "node", "consumed", "stale", "nested"]),
    small_shapes,
    st.sampled_from([np.float64, np.float32]),
)


def junk_arrays() -> st.SearchStrategy[Any]:
    from hypothesis.extra import numpy as hnp

    dtypes = st.sampled_from(
        [
            np.float64,
            np.float32,
            np.float16,
            np.complex128,
            np.int64,
            np.int8,
            np.uint8,
            np.bool_,
            np.dtype(">f8"),
            np.dtype("U2"),
        ]
    )
    plain = hnp.arrays(dtypes, hnp.array_shapes(min_dims=0, max_dims=5, min_side=0, max_side=3))
    strided = hnp.arrays(np.float64, (4, 3)).map(lambda a: a[::2, ::-1])
    return plain | strided


HUGE = 2**40

junk_objects = st.sampled_from(
    [
        None,
        "abc",
        "",
        b"bytes",
        object(),
        Ellipsis,
        1j,
        float("nan"),
        float("inf"),
        -float("inf"),
        0,
        -1,
        3,
        2**63,
        -(2**63) - 1,
        10**30,
        True,
        False,
        0.5,
        -2.0,
        np.float16(1.0),
        np.complex64(1j),
        np.int8(-3),
        np.float32(2.0),
        np.float64(-1.5),
        np.bool_(True),
        np.datetime64("2020-01-01"),
        [],
        [[]],
        [1.0, 2.0],
        [[1.0], [2.0, 3.0]],
        [1, "a"],
        (1, 2),
        (0, -1),
        (2, 3, 4),
        (HUGE, HUGE),
        (2**62, 4),
        (-1, HUGE),
        (2**32, 2**32, -1),
        {"a": 1.0},
        {1, 2},
        range(3),
        slice(0, 2),
        slice(None, None, -1),
        slice(1, None, 2**63 - 1),
        lambda *a: None,
        np.sum,
        np.array([object()]),
        np.ma.array([1.0, 2.0], mask=[False, True]),
        np.ones((1,) * 33),
        np.ones((1,) * 64),
    ]
)

junk = st.deferred(
    lambda: (
        junk_objects
        | junk_arrays()
        | tracked_values
        | st.floats(allow_nan=True, allow_infinity=True)
        | st.integers(-(2**70), 2**70)
        | st.lists(junk_objects | tracked_values, max_size=3)
        | st.tuples(st.integers(-5, 5), st.integers(-5, 5))
    )
)

BIG_INDEX = st.integers(-(2**70), 2**70)
index_items = st.one_of(
    st.integers(-4, 4),
    BIG_INDEX,
    st.none(),
    st.just(Ellipsis),
    st.builds(
        slice,
        st.none() | st.integers(-5, 5) | BIG_INDEX,
        st.none() | st.integers(-5, 5) | BIG_INDEX,
        st.none() | st.integers(-3, 3) | BIG_INDEX,
    ),
    st.lists(st.integers(-4, 4), max_size=3),
    st.lists(st.booleans(), max_size=4).map(np.array),
    st.lists(st.integers(-4, 4), max_size=3).map(lambda v: np.array(v, dtype=np.int64)),
    st.lists(st.integers(0, 4), max_size=3).map(lambda v: np.array(v, dtype=np.uint8)),
    junk_objects,
    tracked_values,
)
index_keys = index_items | st.lists(index_items, max_size=5).map(tuple)


CALLABLES: list[Callable[..., Any]] = [
    lambda *xs: np.sum(xs[0]),
    lambda *xs: xs[0],
    lambda *xs: "loss",
    lambda *xs: None,
    lambda *xs: (np.sum(xs[0]), "aux"),
    lambda *xs: (),
    lambda *xs: xs[0] @ xs[-1],
    lambda *xs: np.sum(xs[0] * xs[-1]),
    lambda *xs: sum(np.sum(x) for x in xs),
    lambda *xs: np.sum(tr.data(xs[0])),
    lambda *xs: tr.gradient(lambda y: np.sum(y * y), xs[0])[0],
    lambda *xs: np.sum(tr.gradient(lambda y: np.sum(y**3), xs[0], nest=True)[0]),
    lambda *xs: np.sum(tr.gradient(lambda y: np.sum(y * xs[0]), 1.0)[0] * xs[0]),
    lambda *xs: np.max(xs[0]) / np.min(xs[-1]),
    lambda *xs: xs[0][0],
]


def boom(*xs: Any) -> Any:
    raise Boom("from the user's function")


CALLABLES.append(boom)

Point = namedtuple("Point", "x y")


@dataclasses.dataclass
class Pair:
    a: Any
    b: Any


def structure(draw: Callable[[Any], Any]) -> Any:
    """A random argument structure for `gradient`: a leaf, or containers of leaves."""
    leaf = st.one_of(junk, st.just(np.array([0.5, 1.5])), st.just(1.25))
    how = draw(
        st.sampled_from(["leaf", "leaf", "list", "dict", "tuple", "namedtuple", "dataclass"])
    )
    if how == "leaf":
        return draw(leaf)
    if how == "list":
        return draw(st.lists(leaf, max_size=3))
    if how == "dict":
        return draw(st.dictionaries(st.sampled_from("abc"), leaf, max_size=3))
    if how == "tuple":
        return tuple(draw(st.lists(leaf, max_size=3)))
    if how == "namedtuple":
        return Point(draw(leaf), draw(leaf))
    return Pair(draw(leaf), draw(leaf))


def random_action(draw: Callable[[Any], Any]) -> None:
    """One call of a public function or op with random arguments."""
    a = draw(junk)
    b = draw(junk)
    t = draw(tracked_values)
    action = draw(st.sampled_from(ACTIONS))
    action(draw, t, a, b)


def _binary_ops(draw: Callable[[Any], Any], t: Any, a: Any, b: Any) -> None:
    ops = [
        lambda x, y: x + y,
        lambda x, y: x - y,
        lambda x, y: x * y,
        lambda x, y: x / y,
        lambda x, y: x**y,
        lambda x, y: x @ y,
        lambda x, y: x < y,
        lambda x, y: x == y,
        np.add,
        np.subtract,
        np.multiply,
        np.divide,
        np.power,
        np.maximum,
        np.minimum,
        np.dot,
        np.matmul,
        np.float_power,
        np.arctan2,
        np.logical_and,
    ]
    op = draw(st.sampled_from(ops))
    plain = plain_of(t)
    attempt(f"{op}(t, a)", op, t, a, also_allowed=numpy_raises(op, plain, a))
    attempt(f"{op}(a, t)", op, a, t, also_allowed=numpy_raises(op, a, plain))
    attempt("t.dot(a)", t.dot, a)


def plain_of(t: Any) -> Any:
    try:
        return tr.data(t)
    except Exception:
        return None


def numpy_raises(op: Callable[..., Any], *args: Any) -> tuple[type, ...]:
    """The exception NumPy raises for `op` on plain arguments (an int too large for
    NumPy, say), which tracker may raise as well."""
    if any(a is None for a in args):
        return ()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            op(*args)
    except (OverflowError, ValueError, TypeError) as e:
        return (type(e),)
    except Exception:
        return ()
    return ()


def _unary_ops(draw: Callable[[Any], Any], t: Any, a: Any, b: Any) -> None:
    ufunc = draw(
        st.sampled_from(
            [
                np.exp,
                np.log,
                np.sin,
                np.cos,
                np.tanh,
                np.sqrt,
                np.abs,
                np.negative,
                np.square,
                np.positive,
                np.fabs,
                np.isnan,
                np.sign,
                np.floor,
                np.cbrt,
                np.exp2,
            ]
        )
    )
    kwargs = draw(
        st.dictionaries(
            st.sampled_from(["out", "where", "dtype", "casting", "order"]), junk, max_size=2
        )
    )
    attempt(f"{ufunc}(t, **{kwargs})", ufunc, t, **kwargs)
    for f in (abs, lambda x: -x, lambda x: +x):
        attempt("unary operator", f, t)


def _index(draw: Callable[[Any], Any], t: Any, a: Any, b: Any) -> None:
    key = draw(index_keys)
    attempt(f"t[{key!r}]", lambda: t[key])
    attempt(f"t[{key!r}] = a", t.__setitem__, key, a)


# NumPy raises OverflowError for an axis beyond int64, so tracker may too
OVERFLOW = (OverflowError,)


def _reductions(draw: Callable[[Any], Any], t: Any, a: Any, b: Any) -> None:
    name = draw(st.sampled_from(["sum", "mean", "prod", "max", "min"]))
    axis = draw(st.one_of(junk, st.integers(-6, 6), st.lists(st.integers(-6, 6), max_size=4)))
    keepdims = draw(st.one_of(st.booleans(), junk))
    attempt(
        f"t.{name}({axis!r}, {keepdims!r})",
        lambda: getattr(t, name)(axis, keepdims),
        also_allowed=OVERFLOW,
    )
    attempt(f"t.{name}(axis={axis!r})", lambda: getattr(t, name)(axis=axis), also_allowed=OVERFLOW)
    attempt(
        f"np.{name}(t, axis={axis!r}, keepdims={keepdims!r})",
        lambda: getattr(np, name)(t, axis=axis, keepdims=keepdims),
        also_allowed=OVERFLOW,
    )
    attempt(f"np.{name}(t, out=a)", lambda: getattr(np, name)(t, out=a))
    ufunc = draw(st.sampled_from([np.add, np.multiply, np.maximum, np.minimum, np.subtract]))
    method = draw(st.sampled_from(["reduce", "accumulate", "outer", "at", "reduceat"]))
    attempt(
        f"{ufunc}.{method}(t, {axis!r})",
        lambda: getattr(ufunc, method)(t, axis),
        also_allowed=OVERFLOW,
    )
    attempt(
        f"{ufunc}.reduce(t, axis={axis!r})",
        lambda: ufunc.reduce(t, axis=axis),
        also_allowed=OVERFLOW,
    )


def _shapes(draw: Callable[[Any], Any], t: Any, a: Any, b: Any) -> None:
    shape = draw(st.one_of(junk, st.lists(st.integers(-2, 6), max_size=5).map(tuple)))
    attempt(f"t.reshape({shape!r})", lambda: t.reshape(shape))
    attempt(f"np.reshape(t, {shape!r})", lambda: np.reshape(t, shape))
    attempt(f"t.transpose({shape!r})", lambda: t.transpose(shape))
    attempt(f"np.transpose(t, {shape!r})", lambda: np.transpose(t, shape))
    if isinstance(shape, tuple):
        attempt(f"t.reshape(*{shape!r})", lambda: t.reshape(*shape))
        attempt(f"t.transpose(*{shape!r})", lambda: t.transpose(*shape))
    attempt("t.T", lambda: t.T)


def _joins(draw: Callable[[Any], Any], t: Any, a: Any, b: Any) -> None:
    axis = draw(st.one_of(st.integers(-4, 4), junk))
    pieces = draw(st.permutations([t, a, t]))
    for f in (np.stack, np.concatenate, np.vstack, np.hstack):
        attempt(f"{f}({pieces!r}, axis={axis!r})", lambda f=f: f(pieces, axis=axis))
        attempt(f"{f}([t, t])", lambda f=f: f([t, t]))
    attempt("np.where(a, t, b)", lambda: np.where(a, t, b))
    attempt("np.where(t > 1, a, t)", lambda: np.where(t > 1, a, t))
    attempt("np.where(t)", lambda: np.where(t))


def _conversions(draw: Callable[[Any], Any], t: Any, a: Any, b: Any) -> None:
    spec = draw(st.sampled_from(["", ".3f", "x", "bad", "10", "e", "%"]))
    for what, f in [
        ("len", len),
        ("list", list),
        ("float", float),
        ("int", int),
        ("bool", bool),
        ("complex", complex),
        ("repr", repr),
        ("str", str),
        ("format", lambda x: format(x, spec)),
        ("item", lambda x: x.item()),
        ("np.asarray", np.asarray),
        ("np.array", lambda x: np.array([x, x])),
        ("math.sin", math.sin),
        ("hash", hash),
        ("attributes", lambda x: (x.shape, x.dtype, x.ndim, x.size, x.data)),
        ("x.grad", lambda x: x.grad),
        ("x.back", lambda x: x.back(a)),
        ("x.back once", lambda x: x.back(once=b)),
        ("sort", np.sort),
        ("cumsum", np.cumsum),
    ]:
        attempt(what, f, t)


def _api(draw: Callable[[Any], Any], t: Any, a: Any, b: Any) -> None:
    x = draw(st.sampled_from([a, t]))
    result = attempt("tr.istracked", tr.istracked, x)
    assert isinstance(result, bool)
    result = attempt("tr.isleaf", tr.isleaf, x)
    assert isinstance(result, bool)
    result = attempt("tr.data", tr.data, x)
    assert not isinstance(result, BaseException)
    if not tr.istracked(x):
        assert result is x
    attempt("tr.param", tr.param, x)
    attempt("tr.grad", tr.grad, x)
    attempt("tr.zero_grad", tr.zero_grad, x)
    attempt("tr.update", tr.update, x, b)
    attempt("tr.back", tr.back, x)
    attempt("tr.back with a seed", tr.back, x, b)
    attempt("tr.back with once", tr.back, x, dy=b, once=draw(st.sampled_from([True, False, a])))


def _differentiate(draw: Callable[[Any], Any], t: Any, a: Any, b: Any) -> None:
    f = draw(st.sampled_from([*CALLABLES, a]))
    args = [structure(draw) for _ in range(draw(st.integers(0, 3)))]
    nest = draw(st.sampled_from([True, False, a]))
    attempt("tr.gradient", tr.gradient, f, *args)
    attempt("tr.gradient(nest)", tr.gradient, f, *args, nest=nest)
    attempt("tr.withgradient", tr.withgradient, f, *args)
    x = draw(st.sampled_from([a, t, np.array([0.5, 1.5])]))
    attempt("tr.jacobian", tr.jacobian, f, x)
    attempt("tr.hessian", tr.hessian, f, x)


def _rules(draw: Callable[[Any], Any], t: Any, a: Any, b: Any) -> None:
    """Custom rules, hooks and checkpoints whose pullbacks return random (wrong) things."""
    returned = draw(
        st.sampled_from(
            [
                (a,),
                (a, b),
                a,
                None,
                (None,),
                (),
                (np.ones(7),),
                (np.ones(np.shape(tr.data(t)), dtype=np.float16),),
                (np.ones(np.shape(tr.data(t)), dtype=np.complex128),),
                (tr.data(t),),
            ]
        )
    )

    def pullback(dy: Any) -> Any:
        if returned is None and draw(st.booleans()):
            raise Boom("from the pullback")
        return returned

    value = draw(st.sampled_from([t, a]))

    @tr.rule
    def custom(x: Any) -> Any:
        return value, pullback

    for make in (
        lambda: custom(t),
        lambda: tr.track(lambda x: (value, pullback), t),
        lambda: tr.hook(lambda g: returned, t),
        lambda: tr.checkpoint(draw(st.sampled_from(CALLABLES)), t),
        lambda: tr.nobacksies("no", t),
    ):
        y = attempt("recording a rule", make)
        if not isinstance(y, BaseException):
            attempt("back through a rule", lambda y=y: tr.back(np.sum(y)))
            attempt("gradient through a rule", tr.gradient, lambda z: np.sum(custom(z)), t)


def _threads(draw: Callable[[Any], Any], t: Any, a: Any, b: Any) -> None:
    """Tracked values used from another thread: parameters work, recorded values raise."""
    failures: list[BaseException] = []

    def work() -> None:
        try:
            attempt("back in another thread", lambda: tr.back(np.sum(t * 2.0)))
            attempt("an op in another thread", lambda: t + a)
            attempt(
                "gradient in another thread",
                tr.gradient,
                lambda z: np.sum(z * t),
                np.ones(np.shape(tr.data(t))),
            )
            still_works()
        except BaseException as e:
            failures.append(e)

    thread = threading.Thread(target=work)
    thread.start()
    thread.join(timeout=60)
    assert not thread.is_alive(), "a thread using a tracked value hangs"
    if failures:
        raise failures[0]


def _contexts(draw: Callable[[Any], Any], t: Any, a: Any, b: Any) -> None:
    context = draw(st.sampled_from([tr.no_grad, tr.detect_anomaly]))
    inner = draw(st.sampled_from([_binary_ops, _index, _differentiate, _api]))
    with context():
        inner(draw, t, a, b)


ACTIONS = [
    _binary_ops,
    _unary_ops,
    _index,
    _reductions,
    _shapes,
    _joins,
    _conversions,
    _api,
    _differentiate,
    _rules,
    _threads,
    _contexts,
]


def still_works() -> None:
    """After any of the above, the engine is in a usable state."""
    grad = tr.gradient(lambda x: np.sum(x * x), np.array([1.0, 2.0]))[0]
    assert np.array_equal(grad, [2.0, 4.0])
    p = tr.param([1.0, 2.0])
    tr.back(np.sum(p * p))
    assert np.array_equal(tr.grad(p), [2.0, 4.0])
    assert tr.istracked(p * 1.0)  # recording is on again
    assert tr.hessian(lambda x: np.sum(x**3), np.array([1.0]))[0, 0] == 6.0


@settings(max_examples=1000, **SLOW_SETTINGS)
@given(data=st.data())
def test_public_functions_with_random_arguments(data: st.DataObject) -> None:
    for _ in range(data.draw(st.integers(1, 4))):
        random_action(data.draw)
    still_works()


@pytest.mark.slow
@settings(max_examples=5000, **SLOW_SETTINGS)
@given(data=st.data())
def test_public_functions_with_random_arguments_long_run(data: st.DataObject) -> None:
    for _ in range(data.draw(st.integers(1, 8))):
        random_action(data.draw)
    still_works()


# Sizes whose allocation cannot succeed, each in a child process (an abort would take
# the test run down with it) whose address space is limited, so that no allocator can
# promise the memory

HUGE_CASES = [
    "t + np.broadcast_to(1.0, (2**40,))",
    "tr.param(np.broadcast_to(1.0, (2**40,)))",
    "tr.gradient(lambda x: np.sum(x), np.broadcast_to(1.0, (2**40,)))",
    "tr.back(t, np.broadcast_to(1.0, (2**40,)))",
    "tr.update(t, np.broadcast_to(1.0, (2**40,)))",
    "tr.param(np.ones((2**20, 1))) * np.ones((1, 2**21))",
    "tr.param(np.ones((2**21, 1))) + tr.param(np.ones((1, 2**21)))",
    "tr.param(np.ones((2**21, 1))) @ tr.param(np.ones((1, 2**21)))",
    "t.reshape(2**32, 2**32, -1)",
    "t[:, None][np.broadcast_to(np.intp(0), (2**20,)), np.broadcast_to(np.intp(0), (2**20, 1))]",
    "np.where(np.broadcast_to(True, (2**40,)), t, 0.0)",
    "t[np.broadcast_to(np.intp(0), (2**40,))]",
    "t[np.broadcast_to(True, (2**40,))]",
    "t.sum(axis=np.broadcast_to(0, (2**40,)))",
    "t.reshape(np.broadcast_to(1, (2**40,)))",
    "t.transpose(np.broadcast_to(0, (2**40,)))",
]

CHILD = """
import resource, sys
resource.setrlimit(resource.RLIMIT_AS, (8 << 30, 8 << 30))
import numpy as np, tracker as tr
t = tr.param(np.ones(3))
allowed = (TypeError, ValueError, IndexError, MemoryError, KeyError, tr.TrackerError)
try:
    eval(sys.argv[1])
except allowed as e:
    print("documented", type(e).__name__, e)
except BaseException as e:
    print("undocumented", type(e).__module__, type(e).__qualname__, e)
else:
    print("returned")
"""


@pytest.mark.parametrize("expr", HUGE_CASES)
def test_huge_sizes_fail_cleanly(expr: str) -> None:
    try:
        run = subprocess.run(
            [sys.executable, "-c", CHILD, expr], capture_output=True, text=True, timeout=10
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"{expr} still runs after 10 s (NumPy refuses it at once)")
    assert run.returncode == 0, (
        f"{expr} killed the interpreter (exit {run.returncode}): {run.stderr[-600:]}"
    )
    outcome = run.stdout.strip()
    assert outcome.startswith("documented"), f"{expr}: {outcome}"
    assert "internal" not in outcome.lower(), f"{expr}: {outcome}"
