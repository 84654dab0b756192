"""Optimisers in the style of Optimisers.jl, on any nested structure of arrays.

A rule says how a gradient becomes a step; `setup` gives every trainable array of a
model its state, and `update` returns the new state and a new model. Nothing is
mutated: the model's arrays are replaced by new ones, so a model held elsewhere (or
a tape that saved its values) never changes behind its owner's back.

>>> import numpy as np, tracker as tr
>>> from tracker import optim
>>> model = {"w": np.array([1.0, -2.0])}
>>> state = optim.setup(optim.Descent(0.1), model)
>>> grad = tr.gradient(lambda m: np.sum(m["w"] ** 2), model)[0]
>>> state, model = optim.update(state, model, grad)
>>> model["w"]
array([ 0.8, -1.6])

The rules follow PyTorch's update formulas step for step (its `SGD` with momentum and
Nesterov, `RMSprop`, `Adam`, `AdamW`), with Optimisers.jl's names and defaults. Tied
arrays (one array object in several places) are one parameter: `tr.gradient` reports
the total gradient at each place, and `update` steps it once and puts the one new
array back in every place.
"""

import dataclasses
from typing import Any

import numpy as np

from tracker import tree

__all__ = [
    "Adam",
    "AdamW",
    "ClipGrad",
    "ClipNorm",
    "Descent",
    "Leaf",
    "Momentum",
    "Nesterov",
    "OptimiserChain",
    "RMSProp",
    "Rule",
    "WeightDecay",
    "adjust",
    "setup",
    "update",
]


class Rule:
    """How a gradient becomes a step: `init(x)` is the state for array `x`, and
    `apply(state, x, g)` returns the new state and the step `dx` (`x` becomes
    `x - dx`). Rules are frozen dataclasses; `adjust` replaces their fields."""

    def init(self, x: np.ndarray) -> Any:
        return None

    def apply(self, state: Any, x: np.ndarray, g: np.ndarray) -> tuple[Any, np.ndarray]:
        raise NotImplementedError


@dataclasses.dataclass(frozen=True)
class Descent(Rule):
    """Plain gradient descent: `dx = eta * g` (PyTorch's `SGD`)."""

    eta: float = 0.1

    def apply(self, state, x, g):
        return state, self.eta * g


@dataclasses.dataclass(frozen=True)
class Momentum(Rule):
    """Descent with momentum: `v = rho * v + eta * g`, `dx = v` (PyTorch's `SGD` with
    `momentum=rho`)."""

    eta: float = 0.01
    rho: float = 0.9

    def init(self, x):
        return np.zeros_like(x)

    def apply(self, v, x, g):
        v = self.rho * v + self.eta * g
        return v, v


@dataclasses.dataclass(frozen=True)
class Nesterov(Rule):
    """Nesterov momentum in PyTorch's form: `b = rho * b + g`,
    `dx = eta * (g + rho * b)` (its `SGD` with `nesterov=True`)."""

    eta: float = 0.001
    rho: float = 0.9

    def init(self, x):
        return np.zeros_like(x)

    def apply(self, b, x, g):
        b = self.rho * b + g
        return b, self.eta * (g + self.rho * b)


@dataclasses.dataclass(frozen=True)
class RMSProp(Rule):
    """`s = rho * s + (1 - rho) * g²`, `dx = eta * g / (sqrt(s) + eps)`; with `centred`,
    the running mean of `g` is subtracted first (PyTorch's `RMSprop` with
    `alpha=rho`)."""

    eta: float = 0.001
    rho: float = 0.9
    eps: float = 1e-8
    centred: bool = False

    def init(self, x):
        return np.zeros_like(x), np.zeros_like(x)

    def apply(self, state, x, g):
        s, mean = state
        s = self.rho * s + (1 - self.rho) * g * g
        if self.centred:
            mean = self.rho * mean + (1 - self.rho) * g
            scale = np.sqrt(s - mean * mean)
        else:
            scale = np.sqrt(s)
        return (s, mean), self.eta * g / (scale + self.eps)


@dataclasses.dataclass(frozen=True)
class Adam(Rule):
    """Adam with bias correction (PyTorch's `Adam`)."""

    eta: float = 0.001
    beta: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8

    def init(self, x):
        return np.zeros_like(x), np.zeros_like(x), 0

    def apply(self, state, x, g):
        m, v, t = state
        b1, b2 = self.beta
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        t += 1
        m_hat = m / (1 - b1**t)
        v_hat = v / (1 - b2**t)
        return (m, v, t), self.eta * m_hat / (np.sqrt(v_hat) + self.eps)


@dataclasses.dataclass(frozen=True)
class AdamW(Adam):
    """Adam with decoupled weight decay: `x` shrinks by `eta * weight_decay * x` besides
    Adam's step (PyTorch's `AdamW`)."""

    weight_decay: float = 0.01

    def apply(self, state, x, g):
        state, dx = super().apply(state, x, g)
        return state, dx + self.eta * self.weight_decay * x


@dataclasses.dataclass(frozen=True)
class WeightDecay(Rule):
    """L2 regularisation folded into the gradient: `g + decay * x` (PyTorch's
    `weight_decay` for SGD); chain it before the rule that takes the step."""

    decay: float = 5e-4

    def apply(self, state, x, g):
        return state, g + self.decay * x


@dataclasses.dataclass(frozen=True)
class ClipGrad(Rule):
    """Each gradient element clipped to `[-delta, delta]`; chain it before a step."""

    delta: float = 10.0

    def apply(self, state, x, g):
        return state, np.clip(g, -self.delta, self.delta)


@dataclasses.dataclass(frozen=True)
class ClipNorm(Rule):
    """Each array's gradient scaled down to norm `omega` when it is longer (the `p`-norm
    of its elements); chain it before a step."""

    omega: float = 10.0
    p: float = 2.0

    def apply(self, state, x, g):
        norm = np.linalg.norm(np.ravel(g), ord=self.p)
        if not np.isfinite(norm):
            raise ValueError(f"ClipNorm: the gradient's norm is {norm}; it cannot be clipped")
        return state, g * min(1.0, self.omega / norm) if norm > 0 else g


@dataclasses.dataclass(frozen=True, init=False)
class OptimiserChain(Rule):
    """Rules applied in turn, each one's output the next one's gradient:
    `OptimiserChain(ClipNorm(1.0), Adam())`."""

    rules: tuple[Rule, ...]

    def __init__(self, *rules: Rule) -> None:
        for r in rules:
            if not isinstance(r, Rule):
                raise TypeError(f"OptimiserChain: {r!r} is not an optimisation rule")
        object.__setattr__(self, "rules", rules)

    def init(self, x):
        return tuple(r.init(x) for r in self.rules)

    def apply(self, states, x, g):
        new = []
        for r, s in zip(self.rules, states, strict=True):
            s, g = r.apply(s, x, g)
            new.append(s)
        return tuple(new), g


@dataclasses.dataclass(frozen=True)
class Leaf:
    """The state of one trainable array: its rule and what the rule keeps."""

    rule: Rule
    state: Any


def _trainable(x: Any) -> bool:
    return isinstance(x, (np.ndarray, float, np.floating)) and tree.is_differentiable(x)


def _is_state_leaf(node: Any) -> bool:
    return node is None or isinstance(node, Leaf)


def setup(rule: Rule, model: Any) -> Any:
    """The optimiser state of `model`: a `Leaf` for every float array or scalar, `None`
    for anything else and for fields a dataclass leaves out of its `trainable()`, in
    the structure of `tr.gradient`'s results (a dataclass becomes a dict of its
    fields). Tied arrays share one `Leaf`."""
    if not isinstance(rule, Rule):
        raise TypeError(f"setup: {rule!r} is not an optimisation rule (Descent, Adam, ...)")
    leaves, treedef = tree.flatten(model)
    seen: dict[int, Leaf] = {}
    states = []
    for x, allowed in zip(leaves, tree.trainable_mask(model), strict=True):
        if not (allowed and _trainable(x)):
            states.append(None)
            continue
        key = id(x) if isinstance(x, np.ndarray) else None
        leaf = seen.get(key) if key is not None else None
        if leaf is None:
            leaf = Leaf(rule, rule.init(np.asarray(x)))
            if key is not None:
                seen[key] = leaf
        states.append(leaf)
    return tree.unflatten_gradient(treedef, states)


def update(state: Any, model: Any, grad: Any) -> tuple[Any, Any]:
    """One step: `(new_state, new_model)`. `grad` is `tr.gradient`'s result for `model`
    (`None` where there is no gradient); each trainable array `x` becomes
    `x - dx`, in its own dtype. The arguments are not modified."""
    leaves, treedef = tree.flatten(model)
    states, _ = tree.flatten(state, is_leaf=_is_state_leaf)
    grads, _ = tree.flatten(grad)
    if not len(leaves) == len(states) == len(grads):
        raise ValueError(
            f"update: the model has {len(leaves)} leaves, the state {len(states)} and the "
            f"gradient {len(grads)}; pass the state from setup(rule, model) and the "
            "gradient tr.gradient gives for this model"
        )
    stepped: dict[int, tuple[Leaf, Any]] = {}
    new_states: list[Any] = []
    new_leaves: list[Any] = []
    for x, s, g in zip(leaves, states, grads, strict=True):
        if s is None or g is None:
            new_states.append(s)
            new_leaves.append(x)
            continue
        if not isinstance(s, Leaf):
            raise TypeError(f"update: the state holds {s!r} where a Leaf was expected")
        done = stepped.get(id(s))
        if done is None:
            done = _step(s, x, g)
            stepped[id(s)] = done
        new_states.append(done[0])
        new_leaves.append(done[1])
    return tree.unflatten_gradient(treedef, new_states), tree.unflatten(treedef, new_leaves)


def _step(leaf: Leaf, x: Any, g: Any) -> tuple[Leaf, Any]:
    array = np.asarray(x)
    g = np.asarray(g)
    if g.shape != array.shape:
        raise ValueError(
            f"update: a gradient of shape {g.shape} for an array of shape {array.shape}"
        )
    state, dx = leaf.rule.apply(leaf.state, array, g.astype(array.dtype, copy=False))
    new = (array - dx).astype(array.dtype, copy=False)
    if isinstance(x, float):
        new = float(new)
    elif isinstance(x, np.generic):
        new = x.dtype.type(new)
    return Leaf(leaf.rule, state), new


def adjust(state: Any, **fields: Any) -> Any:
    """The state with every rule's `fields` replaced (`adjust(state, eta=1e-4)` for a new
    learning rate); rules inside a chain are adjusted where they have the field."""

    def replace(rule: Rule) -> Rule:
        if isinstance(rule, OptimiserChain):
            return OptimiserChain(*(replace(r) for r in rule.rules))
        names = {f.name for f in dataclasses.fields(rule)}
        return dataclasses.replace(rule, **{k: v for k, v in fields.items() if k in names})

    states, treedef = tree.flatten(state, is_leaf=_is_state_leaf)
    done: dict[int, Leaf] = {}
    new: list[Any] = []
    for s in states:
        if isinstance(s, Leaf):
            if id(s) not in done:
                done[id(s)] = Leaf(replace(s.rule), s.state)
            s = done[id(s)]
        new.append(s)
    return tree.unflatten(treedef, new)
