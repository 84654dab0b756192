"""Flattening and rebuilding nested structures of arrays.

`gradient`, `withgradient` and `zero_grad` accept arguments nested in dicts,
lists, tuples, namedtuples and dataclasses (a list is a structure, not an
array). This module turns such a structure into a flat list of leaves plus a
`TreeDef` that remembers its shape, and rebuilds a structure from new leaves:

>>> import numpy as np
>>> from tracker import tree
>>> params = {"w": np.ones((2, 2)), "layers": [np.zeros(3), 0.5]}
>>> leaves, treedef = tree.flatten(params)
>>> len(leaves)
3
>>> tree.unflatten(treedef, [1, 2, 3])
{'w': 1, 'layers': [2, 3]}

Containers:

- `dict` (keys in insertion order), `list`, `tuple`, `collections.OrderedDict`
  and `collections.defaultdict` keep their type;
- namedtuples keep their type;
- dataclass instances are flattened by their fields in `dataclasses.fields`
  order. `unflatten` rebuilds the same dataclass; `unflatten_gradient` rebuilds
  a dict of field name to value, because a gradient is not a model;
- any type registered with `register`.

Everything else, `None` included, is a leaf. Subclasses of `dict`, `list` and
`tuple` other than namedtuples are leaves unless registered. Traversal uses an
explicit stack, so deep nesting does not hit Python's recursion limit.
"""

import collections
import dataclasses
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np

__all__ = [
    "TreeDef",
    "dedup",
    "flatten",
    "is_differentiable",
    "map",
    "register",
    "trainable_mask",
    "trainable_unique",
    "unflatten",
    "unflatten_gradient",
]


class _Kind:
    """How to take one container type apart and put it back together.

    `flatten(obj) -> (children, aux)`. `builders[how](aux, children)` makes
    the container again, where `how` is `_ORIGINAL` (the same type),
    `_GRADIENT` (a dataclass becomes a dict) or `_SHOWN` (for `TreeDef`'s repr,
    which must not run users' code). `fields` is set for dataclasses, so that
    their gradient dicts can be matched against them in `map`.
    """

    __slots__ = ("builders", "fields", "flatten", "name")

    def __init__(
        self,
        name: str,
        flatten: Callable[[Any], tuple[Sequence[Any], Any]],
        build: Callable[[Any, list[Any]], Any],
        build_gradient: Callable[[Any, list[Any]], Any] | None = None,
        build_shown: Callable[[Any, list[Any]], Any] | None = None,
        fields: tuple[str, ...] | None = None,
    ) -> None:
        self.name = name
        self.flatten = flatten
        self.builders = (build, build_gradient or build, build_shown or build)
        self.fields = fields

    def __repr__(self) -> str:
        return f"<container kind {self.name}>"


_ORIGINAL, _GRADIENT, _SHOWN = 0, 1, 2


class _Shown:
    """Stands for a leaf, or a registered container, in `TreeDef`'s repr."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return self.text


_LEAF = _Shown("*")


def _flatten_sequence(obj: Sequence[Any]) -> tuple[Sequence[Any], None]:
    return obj, None


def _flatten_dict(obj: dict[Any, Any]) -> tuple[list[Any], tuple[Any, ...]]:
    return list(obj.values()), tuple(obj)


_TUPLE = _Kind("tuple", _flatten_sequence, lambda _aux, children: tuple(children))
_LIST = _Kind("list", _flatten_sequence, lambda _aux, children: children)
_DICT = _Kind("dict", _flatten_dict, lambda keys, children: dict(zip(keys, children)))

# Container kind of each type seen so far; `None` marks a leaf type. Filled
# lazily by `_kind_of`, overwritten by `register`.
_kinds: dict[type, _Kind | None] = {tuple: _TUPLE, list: _LIST, dict: _DICT}
# Types registered by `register` (including the built-in extras below).
_registered: set[type] = set()
_MISSING = object()


def _shower(name: str, fields: Sequence[str] | None = None) -> Callable[[Any, list[Any]], _Shown]:
    """A `_SHOWN` builder: `Name(*, *)`, or `Name(a=*, b=*)` when the fields are known."""

    def show(_aux: Any, children: list[Any]) -> _Shown:
        if fields is None:
            items = [repr(child) for child in children]
        else:
            items = [f"{field}={child!r}" for field, child in zip(fields, children)]
        return _Shown(f"{name}({', '.join(items)})")

    return show


def _namedtuple_kind(cls: type) -> _Kind:
    make = cls._make  # type: ignore[attr-defined]
    return _Kind(
        cls.__qualname__,
        _flatten_sequence,
        lambda _aux, children: make(children),
        build_shown=_shower(cls.__name__, cls._fields),  # type: ignore[attr-defined]
    )


def _dataclass_kind(cls: type) -> _Kind:
    names = tuple(field.name for field in dataclasses.fields(cls))

    def flatten_fields(obj: Any) -> tuple[list[Any], None]:
        return [getattr(obj, name) for name in names], None

    def build(_aux: None, children: list[Any]) -> Any:
        # Set the fields directly, without running __init__ or __post_init__:
        # the values may be tracked arrays or placeholders, not what a
        # constructor validates. object.__setattr__ also works on frozen and
        # slotted dataclasses.
        obj = cls.__new__(cls)
        for name, value in zip(names, children):
            object.__setattr__(obj, name, value)
        return obj

    def build_gradient(_aux: None, children: list[Any]) -> dict[str, Any]:
        return dict(zip(names, children))

    return _Kind(
        cls.__qualname__,
        flatten_fields,
        build,
        build_gradient,
        _shower(cls.__name__, names),
        fields=names,
    )


def _kind_of(cls: type) -> _Kind | None:
    """The container kind of `cls`, or `None` for a leaf type; cached."""
    kind = _kinds.get(cls, _MISSING)
    if kind is _MISSING:
        if issubclass(cls, tuple) and hasattr(cls, "_fields") and hasattr(cls, "_make"):
            kind = _namedtuple_kind(cls)
        elif dataclasses.is_dataclass(cls):
            kind = _dataclass_kind(cls)
        else:
            kind = None
        _kinds[cls] = kind
    return kind  # type: ignore[return-value]


def register(
    cls: type,
    flatten_fn: Callable[[Any], tuple[Sequence[Any], Any]],
    unflatten_fn: Callable[[Any, list[Any]], Any],
) -> None:
    """Make instances of `cls` containers, so that the leaves inside them get gradients.

    `flatten_fn(obj)` returns `(children, aux)`: the values to walk into, and
    any hashable, comparable data needed to rebuild `obj`.
    `unflatten_fn(aux, children)` builds a new object from them. Gradients of a
    registered container are rebuilt with `unflatten_fn` too. Only `cls` itself
    is registered, not its subclasses.

    >>> class Pair:
    ...     def __init__(self, a, b):
    ...         self.a, self.b = a, b
    >>> register(Pair, lambda p: ([p.a, p.b], None), lambda aux, c: Pair(*c))
    >>> flatten(Pair(1.0, [2.0, 3.0]))[0]
    [1.0, 2.0, 3.0]
    """
    if not isinstance(cls, type):
        raise TypeError(f"register expects a class, got {cls!r}")
    if cls in (tuple, list, dict):
        raise ValueError(f"{cls.__name__} is already a container")
    if cls in _registered:
        raise ValueError(f"{cls.__qualname__} is already registered")

    def flatten_children(obj: Any) -> tuple[Sequence[Any], Any]:
        children, aux = flatten_fn(obj)
        if type(children) is not list and type(children) is not tuple:
            children = list(children)
        return children, aux

    name = cls.__qualname__
    _kinds[cls] = _Kind(name, flatten_children, unflatten_fn, build_shown=_shower(cls.__name__))
    _registered.add(cls)


register(
    collections.OrderedDict,
    _flatten_dict,
    lambda keys, children: collections.OrderedDict(zip(keys, children)),
)
register(
    collections.defaultdict,
    lambda d: (list(d.values()), (d.default_factory, tuple(d))),
    lambda aux, children: collections.defaultdict(aux[0], zip(aux[1], children)),
)


class TreeDef:
    """The shape of a flattened structure: everything but its leaves.

    Two treedefs are equal when the structures have the same container types,
    dict keys (in the same order), lengths and registered aux data.
    """

    __slots__ = ("_nodes", "_num_leaves")

    def __init__(self, nodes: tuple[Any, ...], num_leaves: int) -> None:
        # The nodes in pre-order: `None` for a leaf, `(kind, aux, arity)` for a
        # container whose `arity` children follow it.
        self._nodes = nodes
        self._num_leaves = num_leaves

    @property
    def num_leaves(self) -> int:
        """How many leaves `unflatten` expects."""
        return self._num_leaves

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, TreeDef):
            return NotImplemented
        return self._nodes == other._nodes

    def __hash__(self) -> int:
        return hash(self._nodes)

    def __repr__(self) -> str:
        return f"TreeDef({_build(self, [_LEAF] * self._num_leaves, _SHOWN)!r})"


def flatten(tree: Any, is_leaf: Callable[[Any], bool] | None = None) -> tuple[list[Any], TreeDef]:
    """Split a nested structure into its leaves, in order, and its `TreeDef`.

    `is_leaf(node)`, if given, is asked about every node before it is walked
    into; returning `True` makes that node a leaf.

    >>> leaves, treedef = flatten({"a": 1.0, "b": (2.0, None)})
    >>> leaves
    [1.0, 2.0, None]
    >>> treedef
    TreeDef({'a': *, 'b': (*, *)})
    """
    kinds = _kinds
    if type(tree) is tuple and is_leaf is None:
        # The common case, the arguments of `gradient`: a tuple of leaves.
        for item in tree:
            if kinds.get(type(item), _MISSING) is not None:
                break
        else:
            return list(tree), TreeDef(
                ((_TUPLE, None, len(tree)),) + (None,) * len(tree), len(tree)
            )
    leaves: list[Any] = []
    nodes: list[Any] = []
    stack = [tree]
    while stack:
        node = stack.pop()
        kind = kinds.get(type(node), _MISSING)
        if kind is _MISSING:
            kind = _kind_of(type(node))
        if kind is None or (is_leaf is not None and is_leaf(node)):
            leaves.append(node)
            nodes.append(None)
            continue
        children, aux = kind.flatten(node)  # type: ignore[union-attr]
        nodes.append((kind, aux, len(children)))
        stack.extend(reversed(children))
    return leaves, TreeDef(tuple(nodes), len(leaves))


def _build(treedef: TreeDef, leaves: Iterable[Any], how: int) -> Any:
    leaves = leaves if type(leaves) is list else list(leaves)
    if len(leaves) != treedef._num_leaves:
        raise ValueError(f"expected {treedef._num_leaves} leaves, got {len(leaves)}")
    # Walk the pre-order nodes backwards: every container's children are then
    # already built, on top of `values`, first child last.
    values: list[Any] = []
    next_leaf = len(leaves)
    for node in reversed(treedef._nodes):
        if node is None:
            next_leaf -= 1
            values.append(leaves[next_leaf])
            continue
        kind, aux, arity = node
        start = len(values) - arity
        children = values[start:]
        del values[start:]
        children.reverse()
        values.append(kind.builders[how](aux, children))
    return values[0]


def unflatten(treedef: TreeDef, leaves: Iterable[Any]) -> Any:
    """Rebuild the structure `treedef` describes, with new leaves, in the original types.

    Dataclasses are rebuilt as the same dataclass by setting their fields,
    without calling `__init__` or `__post_init__`.

    >>> leaves, treedef = flatten([1.0, (2.0, 3.0)])
    >>> unflatten(treedef, [x * 10 for x in leaves])
    [10.0, (20.0, 30.0)]
    """
    return _build(treedef, leaves, _ORIGINAL)


def unflatten_gradient(treedef: TreeDef, leaves: Iterable[Any]) -> Any:
    """Rebuild the structure `treedef` describes as a gradient: dataclasses become dicts.

    Every other container keeps its type, as in `unflatten`.

    >>> from dataclasses import dataclass
    >>> @dataclass
    ... class Linear:
    ...     w: float
    ...     b: float
    >>> _, treedef = flatten([Linear(1.0, 2.0)])
    >>> unflatten_gradient(treedef, [0.5, 1.0])
    [{'w': 0.5, 'b': 1.0}]
    """
    return _build(treedef, leaves, _GRADIENT)


def _same_shape(node: Any, other: Any) -> bool:
    """Whether two treedef nodes match, a dataclass matching the dict of its fields."""
    if node == other:
        return True
    if node is None or other is None:
        return False
    kind, _aux, arity = node
    other_kind, other_aux, other_arity = other
    return (
        kind.fields is not None
        and other_kind is _DICT
        and other_aux == kind.fields
        and other_arity == arity
    )


def map(
    f: Callable[..., Any],
    tree: Any,
    *rest: Any,
    is_leaf: Callable[[Any], bool] | None = None,
) -> Any:
    """Apply `f` to the leaves of `tree` (and the matching leaves of `rest`), keep the structure.

    The trees in `rest` must have the structure of `tree`, except that a
    dataclass in `tree` may be matched by the dict of its fields, so that
    gradients can be combined with the parameters they belong to. The result
    has the types of `tree`.

    >>> params = {"w": 1.0, "b": [2.0, 3.0]}
    >>> grads = {"w": 0.5, "b": [1.0, 1.0]}
    >>> map(lambda p, g: p - 0.1 * g, params, grads)
    {'w': 0.95, 'b': [1.9, 2.9]}
    """
    leaves, treedef = flatten(tree, is_leaf)
    columns = [leaves]
    for position, other in enumerate(rest, start=1):
        other_leaves, other_treedef = flatten(other, is_leaf)
        if other_treedef != treedef and not (
            len(other_treedef._nodes) == len(treedef._nodes)
            and all(_same_shape(a, b) for a, b in zip(treedef._nodes, other_treedef._nodes))
        ):
            raise ValueError(
                f"map: tree {position} has structure {other_treedef!r}, "
                f"but tree 0 has structure {treedef!r}"
            )
        columns.append(other_leaves)
    return _build(treedef, [f(*args) for args in zip(*columns)], _ORIGINAL)


def _declares_trainable(node: Any) -> bool:
    return (
        dataclasses.is_dataclass(node)
        and not isinstance(node, type)
        and callable(getattr(node, "trainable", None))
    )


def trainable_mask(tree: Any) -> list[bool]:
    """For each leaf of `flatten(tree)`, whether it may be trained: `False` under a field
    that its dataclass leaves out of `trainable()` (Optimisers.jl's `trainable`).

    A dataclass declares its trainable fields with a method `trainable(self)` returning
    their names; its other fields get no gradient and no update.

    >>> @dataclasses.dataclass
    ... class Norm:
    ...     scale: np.ndarray
    ...     running_mean: np.ndarray
    ...     def trainable(self):
    ...         return ("scale",)
    >>> trainable_mask({"norm": Norm(np.ones(2), np.zeros(2)), "w": np.ones(1)})
    [True, False, True]
    """
    leaves, _ = flatten(tree, is_leaf=_declares_trainable)
    mask: list[bool] = []
    for leaf in leaves:
        if not _declares_trainable(leaf):
            mask.append(True)
            continue
        names = set(leaf.trainable())
        for field in dataclasses.fields(leaf):
            inner = trainable_mask(getattr(leaf, field.name))
            mask.extend(inner if field.name in names else [False] * len(inner))
    return mask


def trainable_unique(tree: Any, positions: Sequence[int], count: int) -> list[bool]:
    """For each of the `count` unique leaves `dedup` found (at `positions`), whether any
    of its occurrences may be trained (see `trainable_mask`)."""
    trainable = [False] * count
    for p, allowed in zip(positions, trainable_mask(tree), strict=True):
        trainable[p] |= allowed
    return trainable


def is_differentiable(leaf: Any, is_tracked: Callable[[Any], bool] | None = None) -> bool:
    """Whether a leaf gets a gradient: a float array or scalar, or a tracked value.

    Float32 and float64 arrays, Python floats, NumPy float32/float64 scalars and
    anything `is_tracked` accepts are differentiable. Ints, bools, integer and
    bool arrays, strings, callables, `None` and other objects are not (their
    gradient is `None`). Float16 and other float widths, and complex values,
    raise `TypeError`.

    >>> is_differentiable(np.zeros(3)), is_differentiable(np.arange(3)), is_differentiable(2.0)
    (True, False, True)
    """
    if is_tracked is not None and is_tracked(leaf):
        return True
    if isinstance(leaf, float):
        return True
    if isinstance(leaf, (np.ndarray, np.generic)):
        dtype = leaf.dtype
        kind = dtype.kind
        if kind == "f":
            if dtype.itemsize in (4, 8):  # float32, float64, either byte order
                return True
            what = "arrays" if isinstance(leaf, np.ndarray) else "scalars"
            raise TypeError(f"{dtype.name} {what} are not supported: use float32 or float64")
        if kind == "c":
            what = "arrays" if isinstance(leaf, np.ndarray) else "numbers"
            raise TypeError(f"complex {what} are not supported: use float32 or float64")
        return False
    if isinstance(leaf, complex):
        raise TypeError("complex numbers are not supported: use float32 or float64")
    return False


def dedup(
    leaves: Sequence[Any], is_tracked: Callable[[Any], bool] | None = None
) -> tuple[list[Any], list[int]]:
    """Find tied leaves: the same float array object (or tracked value) appearing more than once.

    Returns `(unique, positions)`: `unique` keeps the first occurrence of each
    leaf, and `leaves[i] is unique[positions[i]]`. The caller makes one
    parameter per unique leaf, so each occurrence reports the total gradient.
    Only identity counts: two equal arrays, or two views of one buffer, are not
    tied, and floats and other leaves are never tied.

    >>> w = np.ones(2)
    >>> unique, positions = dedup([w, 1.0, w])
    >>> len(unique), positions
    (2, [0, 1, 0])
    """
    unique: list[Any] = []
    positions: list[int] = []
    seen: dict[int, int] = {}
    for leaf in leaves:
        if (isinstance(leaf, np.ndarray) and leaf.dtype.kind == "f") or (
            is_tracked is not None and is_tracked(leaf)
        ):
            position = seen.get(id(leaf))
            if position is None:
                position = seen[id(leaf)] = len(unique)
                unique.append(leaf)
        else:
            position = len(unique)
            unique.append(leaf)
        positions.append(position)
    return unique, positions
