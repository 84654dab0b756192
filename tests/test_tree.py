"""Tests of `tracker.tree`: flattening, rebuilding and classifying nested structures."""

import collections
import dataclasses
import sys
from typing import Any, NamedTuple

import numpy as np
import pytest

import tracker as tr
from tracker import tree


class Point(NamedTuple):
    x: object
    y: object


OldPoint = collections.namedtuple("OldPoint", ["x", "y"])


@dataclasses.dataclass
class Linear:
    w: object
    b: object


@dataclasses.dataclass(frozen=True)
class Frozen:
    a: object
    b: object = None


@dataclasses.dataclass
class Model:
    layers: list
    scale: object
    name: str = "model"


def assert_same(actual, expected):
    """Equal structure and types all the way down, leaves compared by identity or value."""
    assert type(actual) is type(expected)
    if isinstance(expected, dict):
        assert list(actual) == list(expected)
        for key in expected:
            assert_same(actual[key], expected[key])
    elif isinstance(expected, (list, tuple)):
        assert len(actual) == len(expected)
        for a, e in zip(actual, expected):
            assert_same(a, e)
    elif dataclasses.is_dataclass(expected):
        for field in dataclasses.fields(expected):
            assert_same(getattr(actual, field.name), getattr(expected, field.name))
    elif isinstance(expected, np.ndarray):
        assert actual is expected
    else:
        assert actual == expected or actual is expected


# ---------------------------------------------------------------- round trips

W = np.arange(6.0).reshape(2, 3)
B = np.zeros(3, dtype=np.float32)

ROUND_TRIPS = {
    "leaf": (W, [W]),
    "none": (None, [None]),
    "tuple": ((W, B, 1.5), [W, B, 1.5]),
    "list": ([W, 2, "s"], [W, 2, "s"]),
    "dict": ({"b": B, "a": W}, [B, W]),
    "namedtuple": (Point(W, 1.0), [W, 1.0]),
    "collections.namedtuple": (OldPoint(1.0, B), [1.0, B]),
    "dataclass": (Linear(W, B), [W, B]),
    "frozen dataclass": (Frozen(W), [W, None]),
    "empty": (((), [], {}), []),
    "nested": (
        {"enc": [Linear(W, B), (B, {"k": [W, None]})], "t": Point([1.0], (2.0,))},
        [W, B, B, W, None, 1.0, 2.0],
    ),
    "dataclass of containers": (Model([Linear(W, 1.0), {"x": B}], 0.5), [W, 1.0, B, 0.5, "model"]),
    "ordered dict": (collections.OrderedDict([("z", W), ("a", [B])]), [W, B]),
}


@pytest.mark.parametrize("structure, leaves", ROUND_TRIPS.values(), ids=ROUND_TRIPS.keys())
def test_round_trip(structure, leaves):
    flat, treedef = tree.flatten(structure)
    assert len(flat) == len(leaves) == treedef.num_leaves
    for got, want in zip(flat, leaves):
        assert got is want or got == want
    assert_same(tree.unflatten(treedef, flat), structure)


@pytest.mark.parametrize("structure", [s for s, _ in ROUND_TRIPS.values()], ids=ROUND_TRIPS.keys())
def test_unflatten_uses_new_leaves(structure):
    flat, treedef = tree.flatten(structure)
    rebuilt = tree.unflatten(treedef, range(len(flat)))
    assert tree.flatten(rebuilt) == (list(range(len(flat))), treedef)


def test_flatten_returns_the_leaf_objects_without_copying():
    leaves, _ = tree.flatten((W, [B]))
    assert leaves[0] is W and leaves[1] is B


def test_dict_keeps_insertion_order():
    leaves, treedef = tree.flatten({"z": 1.0, "a": 2.0, "m": 3.0})
    assert leaves == [1.0, 2.0, 3.0]
    assert list(tree.unflatten(treedef, [0, 0, 0])) == ["z", "a", "m"]
    assert treedef != tree.flatten({"a": 2.0, "z": 1.0, "m": 3.0})[1]


def test_namedtuple_type_is_preserved():
    _, treedef = tree.flatten([Point(1.0, 2.0), OldPoint(3.0, 4.0)])
    rebuilt = tree.unflatten(treedef, [5.0, 6.0, 7.0, 8.0])
    gradient = tree.unflatten_gradient(treedef, [5.0, 6.0, 7.0, 8.0])
    for result in (rebuilt, gradient):
        assert type(result[0]) is Point and result[0] == Point(5.0, 6.0)
        assert type(result[1]) is OldPoint and result[1].y == 8.0


def test_dataclass_unflatten_rebuilds_the_dataclass():
    _, treedef = tree.flatten(Frozen(1.0, 2.0))
    rebuilt = tree.unflatten(treedef, [3.0, 4.0])
    assert type(rebuilt) is Frozen and rebuilt == Frozen(3.0, 4.0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        rebuilt.a = 0.0


def test_dataclass_unflatten_does_not_run_post_init():
    @dataclasses.dataclass
    class Checked:
        value: object

        def __post_init__(self):
            if not isinstance(self.value, float):
                raise TypeError("value must be a float")

    _, treedef = tree.flatten(Checked(1.0))
    rebuilt = tree.unflatten(treedef, [None])
    assert type(rebuilt) is Checked and rebuilt.value is None


def test_dataclass_with_slots_and_init_false_fields():
    @dataclasses.dataclass(slots=True)
    class Slotted:
        a: object
        b: object = dataclasses.field(init=False, default=2.0)

    leaves, treedef = tree.flatten(Slotted(1.0))
    assert leaves == [1.0, 2.0]
    rebuilt = tree.unflatten(treedef, [3.0, 4.0])
    assert (rebuilt.a, rebuilt.b) == (3.0, 4.0)
    assert tree.unflatten_gradient(treedef, [3.0, 4.0]) == {"a": 3.0, "b": 4.0}


def test_dataclass_class_itself_is_a_leaf():
    leaves, _ = tree.flatten([Linear])
    assert leaves == [Linear]


# ---------------------------------------------------------------- gradients


def test_gradient_rebuilds_dataclasses_as_dicts():
    structure = (Model([Linear(W, B)], 1.0), {"p": Point(Linear(1.0, 2.0), [3.0])})
    _, treedef = tree.flatten(structure)
    gradient = tree.unflatten_gradient(treedef, list(range(7)))
    expected = (
        {"layers": [{"w": 0, "b": 1}], "scale": 2, "name": 3},
        {"p": Point({"w": 4, "b": 5}, [6])},
    )
    assert_same(gradient, expected)


def test_gradient_keeps_every_other_container_type():
    structure = {
        "l": [1.0],
        "t": (2.0,),
        "n": Point(3.0, None),
        "o": collections.OrderedDict(a=4.0),
    }
    _, treedef = tree.flatten(structure)
    assert_same(
        tree.unflatten_gradient(treedef, [1, 2, 3, 4, 5]), tree.unflatten(treedef, [1, 2, 3, 4, 5])
    )


def test_unflatten_checks_the_number_of_leaves():
    _, treedef = tree.flatten((1.0, [2.0, 3.0]))
    with pytest.raises(ValueError, match="expected 3 leaves, got 2"):
        tree.unflatten(treedef, [1, 2])
    with pytest.raises(ValueError, match="expected 3 leaves, got 4"):
        tree.unflatten_gradient(treedef, [1, 2, 3, 4])


# ---------------------------------------------------------------- treedef


def test_treedef_equality_and_hash():
    first = tree.flatten({"a": [W, 1.0], "b": Point(1, 2)})[1]
    second = tree.flatten({"a": [B, "x"], "b": Point(None, 3.0)})[1]
    assert first == second and hash(first) == hash(second)
    assert first != tree.flatten({"a": (W, 1.0), "b": Point(1, 2)})[1]
    assert first != tree.flatten({"a": [W, 1.0], "b": OldPoint(1, 2)})[1]
    assert first != tree.flatten({"a": [W, 1.0, 2.0], "b": Point(1, 2)})[1]
    assert tree.flatten([1.0])[1] != tree.flatten([[1.0]])[1]


def test_treedef_repr_shows_the_structure():
    _, treedef = tree.flatten({"a": [W, None], "b": Linear(1.0, (2.0,)), "p": Point(1, ())})
    assert (
        repr(treedef) == "TreeDef({'a': [*, *], 'b': Linear(w=*, b=(*,)), 'p': Point(x=*, y=())})"
    )
    assert repr(tree.flatten(W)[1]) == "TreeDef(*)"


def test_is_leaf_stops_the_walk():
    structure = {"pair": (1.0, 2.0), "list": [3.0, (4.0, 5.0)]}
    leaves, treedef = tree.flatten(structure, is_leaf=lambda node: type(node) is tuple)
    assert leaves == [(1.0, 2.0), 3.0, (4.0, 5.0)]
    assert tree.unflatten(treedef, leaves) == structure
    leaves, _ = tree.flatten((1.0, 2.0), is_leaf=lambda node: type(node) is tuple)
    assert leaves == [(1.0, 2.0)]


# ---------------------------------------------------------------- classification

TRACKED = object()


def is_tracked(value):
    return value is TRACKED


CLASSIFICATION = {
    "float64 array": (np.zeros(3), True),
    "float32 array": (np.zeros(3, dtype=np.float32), True),
    "0-d float array": (np.array(1.0), True),
    "python float": (1.5, True),
    "np.float32 scalar": (np.float32(1.5), True),
    "np.float64 scalar": (np.float64(1.5), True),
    "tracked value": (TRACKED, True),
    "python int": (3, False),
    "python bool": (True, False),
    "np.int64 scalar": (np.int64(3), False),
    "int array": (np.arange(3), False),
    "bool array": (np.array([True, False]), False),
    "str": ("abc", False),
    "None": (None, False),
    "lambda": (lambda x: x, False),
    "object": (object(), False),
    "list subclass": (type("Rows", (list,), {})([1.0]), False),
}


@pytest.mark.parametrize("leaf, expected", CLASSIFICATION.values(), ids=CLASSIFICATION.keys())
def test_is_differentiable(leaf, expected):
    assert tree.is_differentiable(leaf, is_tracked) is expected


def test_tracked_values_need_the_predicate():
    assert tree.is_differentiable(TRACKED) is False
    assert tree.is_differentiable(TRACKED, is_tracked=is_tracked) is True


@pytest.mark.parametrize(
    "leaf",
    [np.zeros(3, dtype=np.float16), np.float16(1.0)],
    ids=["array", "scalar"],
)
def test_float16_is_rejected(leaf):
    with pytest.raises(TypeError, match=r"float16 .*not supported.*float32 or float64"):
        tree.is_differentiable(leaf)


@pytest.mark.skipif(np.dtype(np.longdouble).itemsize <= 8, reason="longdouble is float64 here")
def test_longdouble_is_rejected():
    with pytest.raises(TypeError, match="not supported"):
        tree.is_differentiable(np.zeros(2, dtype=np.longdouble))


def test_complex_arrays_are_rejected():
    with pytest.raises(TypeError, match="complex arrays are not supported"):
        tree.is_differentiable(np.zeros(3, dtype=np.complex128))
    with pytest.raises(TypeError, match="complex arrays are not supported"):
        tree.is_differentiable(np.zeros(3, dtype=np.complex64))


@pytest.mark.parametrize("leaf", [1j, np.complex128(1j)], ids=["python", "numpy"])
def test_complex_numbers_are_rejected(leaf):
    with pytest.raises(TypeError, match="complex numbers are not supported"):
        tree.is_differentiable(leaf)


# ---------------------------------------------------------------- registration


def test_register_a_custom_container():
    class Pair:
        def __init__(self, first, second, label):
            self.first, self.second, self.label = first, second, label

    seen_aux = []

    def unflatten_pair(aux, children):
        seen_aux.append(aux)
        return Pair(*children, aux)

    tree.register(Pair, lambda p: ((p.first, p.second), p.label), unflatten_pair)

    structure = [Pair(W, {"x": B}, "pair-1"), 1.0]
    leaves, treedef = tree.flatten(structure)
    assert leaves[0] is W and leaves[1] is B and leaves[2] == 1.0
    assert treedef != tree.flatten([Pair(W, {"x": B}, "pair-2"), 1.0])[1]

    for rebuild in (tree.unflatten, tree.unflatten_gradient):
        rebuilt = rebuild(treedef, [10, 20, 30])
        assert type(rebuilt[0]) is Pair
        assert (rebuilt[0].first, rebuilt[0].second, rebuilt[0].label) == (10, {"x": 20}, "pair-1")
        assert rebuilt[1] == 30
    assert repr(treedef) == "TreeDef([Pair(*, {'x': *}), *])"
    assert seen_aux == ["pair-1", "pair-1"]  # repr does not call unflatten_fn

    mapped = tree.map(lambda x: x * 2, structure)
    assert np.array_equal(mapped[0].first, W * 2) and mapped[1] == 2.0


def test_register_accepts_any_iterable_of_children():
    class Bag:
        def __init__(self, items):
            self.items = items

    tree.register(Bag, lambda bag: (iter(bag.items), None), lambda _aux, items: Bag(items))
    leaves, treedef = tree.flatten(Bag([1.0, 2.0]))
    assert leaves == [1.0, 2.0]
    assert tree.unflatten(treedef, [3.0, 4.0]).items == [3.0, 4.0]


def test_register_overrides_dataclass_flattening():
    @dataclasses.dataclass
    class Layer:
        w: object
        cache: object

    tree.register(Layer, lambda layer: ([layer.w], None), lambda _aux, c: Layer(c[0], None))
    leaves, treedef = tree.flatten(Layer(W, "cached"))
    assert leaves == [W]
    assert tree.unflatten_gradient(treedef, [1.0]) == Layer(1.0, None)


def test_register_rejects_duplicates_and_builtins():
    class Once:
        pass

    tree.register(Once, lambda o: ([], None), lambda _aux, _c: Once())
    with pytest.raises(ValueError, match="already registered"):
        tree.register(Once, lambda o: ([], None), lambda _aux, _c: Once())
    for cls in (list, tuple, dict):
        with pytest.raises(ValueError, match="already a container"):
            tree.register(cls, lambda o: ([], None), lambda _aux, _c: None)
    with pytest.raises(TypeError, match="expects a class"):
        tree.register(Once(), lambda o: ([], None), lambda _aux, _c: None)


def test_subclasses_of_a_registered_type_are_leaves():
    class Base:
        def __init__(self, value):
            self.value = value

    class Derived(Base):
        pass

    tree.register(Base, lambda b: ([b.value], None), lambda _aux, c: Base(c[0]))
    derived = Derived(1.0)
    assert tree.flatten(derived)[0] == [derived]
    assert tree.flatten(Base(1.0))[0] == [1.0]


def test_defaultdict_keeps_its_factory():
    counts = collections.defaultdict(list, {"a": 1.0, "b": [2.0]})
    leaves, treedef = tree.flatten(counts)
    assert leaves == [1.0, 2.0]
    rebuilt = tree.unflatten(treedef, [3.0, 4.0])
    assert type(rebuilt) is collections.defaultdict and rebuilt.default_factory is list
    assert dict(rebuilt) == {"a": 3.0, "b": [4.0]}


# ---------------------------------------------------------------- tied leaves


def test_dedup_ties_the_same_array_object():
    w = np.ones(3)
    v = np.ones(3)  # equal to w, but another parameter
    leaves = [w, v, w, 1.0, w]
    unique, positions = tree.dedup(leaves)
    assert positions == [0, 1, 0, 2, 0]
    assert unique[0] is w and unique[1] is v and unique[2] == 1.0
    assert all(leaves[i] is unique[p] for i, p in enumerate(positions))


def test_dedup_never_ties_floats_scalars_or_non_differentiable_leaves():
    x = 1.0
    scalar = np.float64(2.0)
    ints = np.arange(3)
    leaves = [x, x, scalar, scalar, ints, ints, None, None]
    unique, positions = tree.dedup(leaves)
    assert positions == list(range(8))
    assert len(unique) == 8


def test_dedup_does_not_tie_views_of_one_buffer():
    base = np.ones(4)
    unique, positions = tree.dedup([base, base[:], base])
    assert positions == [0, 1, 0] and len(unique) == 2


def test_dedup_ties_tracked_values_with_the_predicate():
    class Tracked:
        pass

    t = Tracked()
    unique, positions = tree.dedup([t, t], is_tracked=lambda v: isinstance(v, Tracked))
    assert positions == [0, 0] and unique == [t]
    assert tree.dedup([t, t])[1] == [0, 1]


def test_dedup_of_a_flattened_structure_with_tied_weights():
    embedding = np.ones((4, 2))
    model = {"encoder": {"emb": embedding}, "decoder": {"emb": embedding, "b": np.zeros(2)}}
    leaves, _ = tree.flatten(model)
    unique, positions = tree.dedup(leaves)
    assert len(unique) == 2 and positions == [0, 0, 1]


# ---------------------------------------------------------------- map


def test_map_over_one_tree():
    structure = {"a": [1.0, 2.0], "b": Point(3.0, (4.0,))}
    assert tree.map(lambda x: x + 1, structure) == {"a": [2.0, 3.0], "b": Point(4.0, (5.0,))}
    assert type(tree.map(lambda x: x, structure)["b"]) is Point


def test_map_over_two_trees():
    params = {"w": np.ones(2), "layers": [Point(1.0, 2.0)]}
    grads = {"w": np.full(2, 0.5), "layers": [Point(10.0, 20.0)]}
    updated = tree.map(lambda p, g: p - 0.1 * g, params, grads)
    assert np.allclose(updated["w"], 0.95)
    assert updated["layers"] == [Point(0.0, 0.0)]


def test_map_over_three_trees_passes_leaves_in_order():
    calls = []
    tree.map(lambda *xs: calls.append(xs), [1, (2,)], [3, (4,)], [5, (6,)])
    assert calls == [(1, 3, 5), (2, 4, 6)]


def test_map_matches_a_dataclass_with_its_gradient_dict():
    params = [Linear(1.0, 2.0)]
    _, treedef = tree.flatten(params)
    grads = tree.unflatten_gradient(treedef, [0.5, 0.25])
    assert grads == [{"w": 0.5, "b": 0.25}]
    updated = tree.map(lambda p, g: p - g, params, grads)
    assert updated == [Linear(0.5, 1.75)]


def test_map_rejects_different_structures():
    with pytest.raises(ValueError, match="tree 1 has structure"):
        tree.map(lambda a, b: a, [1.0, 2.0], [1.0, [2.0]])
    with pytest.raises(ValueError, match="tree 2 has structure"):
        tree.map(lambda a, b, c: a, {"a": 1.0}, {"a": 1.0}, {"b": 1.0})
    with pytest.raises(ValueError):
        tree.map(lambda a, b: a, Linear(1.0, 2.0), {"b": 1.0, "w": 2.0})
    with pytest.raises(ValueError):
        tree.map(lambda a, b: a, {"w": 1.0, "b": 2.0}, Linear(1.0, 2.0))


def test_map_with_is_leaf():
    structure = [(1.0, 2.0), (3.0, 4.0)]
    assert tree.map(sum, structure, is_leaf=lambda n: type(n) is tuple) == [3.0, 7.0]


# ---------------------------------------------------------------- deep structures


def nested_lists(depth, leaf):
    structure = leaf
    for _ in range(depth):
        structure = [structure, 1.0]
    return structure


@pytest.mark.parametrize("depth", [200, 1000, 5 * sys.getrecursionlimit()])
def test_deep_nesting(depth):
    structure = nested_lists(depth, W)
    leaves, treedef = tree.flatten(structure)
    assert len(leaves) == depth + 1 and leaves[0] is W
    rebuilt = tree.unflatten(treedef, leaves)
    gradient = tree.unflatten_gradient(treedef, [0.0] * (depth + 1))
    mapped = tree.map(lambda x, _: x, structure, rebuilt)
    for result in (rebuilt, gradient, mapped):
        for _ in range(depth):
            assert type(result) is list and result[1] in (0.0, 1.0)
            result = result[0]
    assert tree.flatten(rebuilt)[1] == treedef


def test_deep_dicts_and_dataclasses():
    structure = W
    for i in range(1000):
        structure = {"inner": Linear(structure, float(i))}
    leaves, treedef = tree.flatten(structure)
    gradient = tree.unflatten_gradient(treedef, leaves)
    for i in reversed(range(1000)):
        assert gradient["inner"]["b"] == float(i)
        gradient = gradient["inner"]["w"]
    assert gradient is W


@dataclasses.dataclass
class _Norm:
    scale: np.ndarray
    running_mean: np.ndarray
    frozen_layer: Any = None

    def trainable(self):
        return ("scale",)


def test_trainable_excludes_fields_from_gradients_and_updates():
    from tracker import optim

    inner = _Norm(np.array([3.0]), np.array([5.0]))
    model = {"norm": _Norm(np.array([1.0, 2.0]), np.array([0.5, 0.5]), inner), "w": np.ones(1)}
    # scale, running_mean, the frozen layer's three fields, w
    assert tree.trainable_mask(model) == [True, False, False, False, False, True]

    def f(m):
        n = m["norm"]
        inner = n.frozen_layer
        return np.sum(n.scale * n.running_mean) + np.sum(inner.scale) * m["w"][0]

    (g,) = tr.gradient(f, model)
    np.testing.assert_array_equal(g["norm"]["scale"], [0.5, 0.5])
    assert g["norm"]["running_mean"] is None
    assert g["norm"]["frozen_layer"] == {"scale": None, "running_mean": None, "frozen_layer": None}
    np.testing.assert_array_equal(g["w"], [3.0])
    numeric = tr.testing.ngradient(f, model)[0]
    assert numeric["norm"]["running_mean"] is None
    assert numeric["norm"]["frozen_layer"]["scale"] is None
    state = optim.setup(optim.Descent(1.0), model)
    assert state["norm"]["running_mean"] is None
    _, new = optim.update(state, model, g)
    np.testing.assert_array_equal(new["norm"].running_mean, [0.5, 0.5])
    np.testing.assert_array_equal(new["norm"].scale, [0.5, 1.5])
