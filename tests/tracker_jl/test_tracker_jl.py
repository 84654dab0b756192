"""Tracker.jl's own test suite, case by case (FluxML/Tracker.jl v0.2.37, commit ce231f9).

The cases run in Julia's order: test/tracker.jl, test/chainrules.jl, then the
testsets of test/runtests.jl. Each Julia `@testset` is a class; each case's
pytest id is its Julia line, `L86`, with the loop value where Julia loops
(`L86-rvcat`). NNlib's cases (softmax, dropout, conv, pooling) are in
test_tracker_jl_nnlib.py. MAPPING.md lists every case with its NumPy
expression, or why it does not apply; test_mapping.py keeps the two in step.

Translation: shapes are Julia's; `dims=d` is `axis=d - 1` and Julia's
reductions keep their dims (`keepdims=True`); `W*x` is `W @ x`, `x'` is `x.T`,
`A \\ b` is `np.linalg.solve(A, b)`, `A / B` is `np.linalg.solve(B.T, A.T).T`.
A Julia vector is a column where it meets matrices (`col(v)`); `cat`, `vcat`,
`hcat` and the column-major `reshape` are written out in julia.py.
`gradtest(f, dims...)` takes shapes as tuples: Julia's `5` is `(5,)`.
"""

import dataclasses
import functools
import operator
from collections import namedtuple

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

import tracker as tr
from tracker.testing import gradtest

from .julia import (
    cat,
    col,
    hcat,
    logsigmoid,
    rand,
    randn,
    reshape_f,
    rng,
    sigmoid,
    vcat,
)


def case(id, f, *xs):
    """A `gradtest(f, xs...)` case with its Julia line as pytest id."""
    return pytest.param(f, xs, id=id)


def check(f, xs):
    assert gradtest(f, *xs)


# -- test/tracker.jl: "gradtests 1" (lines 15-53) -----------------------------------------

DIAGONAL = np.diag(np.diag(randn(5, 5)))  # A = Diagonal(randn(5, 5)), line 24

# fmt: off
GRADTESTS_1 = [
    case("L17", lambda x, W, b: sigmoid(W @ x + b), (5,), (2, 5), (2,)),
    case("L18", lambda x, W: sigmoid(W @ x), (5,), (2, 5)),
    case("L19", lambda x, W, b: sigmoid(W @ x + col(b)), (5, 3), (2, 5), (2,)),
    case("L20", lambda x, W, b: logsigmoid(W @ x + b), (5,), (2, 5), (2,)),
    case("L21", lambda x, W, b: logsigmoid(W @ x + col(b)), (5, 3), (2, 5), (2,)),
    case("L22", lambda w, x: w.T @ x, randn(10, 2), randn(10)),
    case("L23", lambda w, x: w @ x.T, randn(5, 5), randn(5, 5)),
    case("L25", lambda x: DIAGONAL @ x, (5,)),
    case("L26", lambda x: DIAGONAL @ x, (5, 5)),
    case("L27", lambda x: x @ DIAGONAL, (5, 5)),
    case("L29", lambda x: np.sum(x, axis=(1, 2), keepdims=True), (3, 4, 5)),
    case("L30", lambda x: np.sum(x, axis=0, keepdims=True), randn(2, 3)),
    case("L31", lambda x: np.sum(x, axis=(0, 1), keepdims=True), randn(2, 3)),
    case("L32", lambda x: np.sum(x), randn(2, 3)),
    case("L33", lambda x: np.prod(x, axis=(1, 2), keepdims=True), (3, 4, 5)),
    case("L34", lambda x: np.prod(x), (3, 4, 5)),
    # L36-L45 (softmax, logsoftmax, dropout) are NNlib's: test_tracker_jl_nnlib.py.
    case("L47", lambda x: col(x).T, rand(5)),
    case("L49", np.linalg.det, (4, 4)),
    case("L50", lambda x: np.linalg.slogdet(x)[1], (lambda x: x @ x.T)(rand(4, 4))),
    case("L51", lambda x: np.linalg.slogdet(x)[1], (4, 4)),
]
# fmt: on


class TestGradtests1:
    @pytest.mark.parametrize(("f", "xs"), GRADTESTS_1)
    def test_gradtest(self, f, xs):
        check(f, xs)


# -- "zero" (lines 55-58) -----------------------------------------------------------------


class TestZero:
    def test_zero_is_an_untracked_array(self):
        # L56: Julia's zero(x::TrackedArray) is a fresh leaf, unconnected to x (PR #169);
        # NumPy's zeros_like of a tracked array is a plain array of zeros, as similar is (L413).
        z = np.zeros_like(tr.param(rand(2)))
        assert type(z) is np.ndarray
        assert_array_equal(z, [0.0, 0.0])

    def test_gradtest(self):
        check(lambda x: np.zeros_like(x) * x, [(2,)])  # L57


# -- "indexing & slicing" (lines 60-62) ---------------------------------------------------


X44 = rand(4, 4)


class TestIndexingAndSlicing:
    def test_view(self):
        check(lambda x: x[0:2, 0:2], [X44])  # L61: view(x, 1:2, 1:2)


# -- "concat" (lines 79-158) --------------------------------------------------------------


def cat1(*xs):
    return cat(*xs, dims=1)


def cat2(*xs):
    return cat(*xs, dims=2)


def rvcat(*xs):
    """Julia's `reduce(vcat, xs)` on a tuple: a left fold of `vcat` over pairs."""
    return functools.reduce(vcat, xs)


def rhcat(*xs):
    return functools.reduce(hcat, xs)


def cat3(*xs):
    return cat(*xs, dims=3)


def cat12(*xs):
    return cat(*xs, dims=(1, 2))


VCATS = {"vcat": vcat, "cat1": cat1, "rvcat": rvcat}
HCATS = {"hcat": hcat, "cat2": cat2, "rhcat": rhcat}
CATS = {**VCATS, **HCATS, "cat-dims3": cat3, "cat-dims12": cat12}


def rand_row(n):
    """Julia's `rand(n)'`: the adjoint of a vector, a 1-by-n matrix."""
    return col(rand(n)).T


# Inputs per Julia line, drawn once for all the functions the line loops over.
VCAT_INPUTS = {
    "L86": (rand(5), rand(3)),
    "L87": (rand(5), rand(3), rand(8)),
    "L88": (rand_row(5), rand_row(5)),
    "L89": (rand(5, 2), rand(3, 2), rand(8, 2)),
    "L90": (rand(5, 2, 3), rand(3, 2, 3), rand(8, 2, 3)),
    "L91": (rand(5), rand(3, 1)),
    "L92": (rand_row(5), rand(2, 5)),
}
HCAT_INPUTS = {
    "L97": (rand(5), rand(5)),
    "L98": (rand_row(5), rand_row(5)),
    "L99": (rand(2, 5), rand(2, 3), rand(2, 8)),
    "L100": (rand(2, 5, 3), rand(2, 3, 3), rand(2, 8, 3)),
    "L101": (rand(5), rand(5), rand(5, 2)),
    "L102": (rand_row(5), rand(1, 3)),
    "L103": (rand(5), rand(5, 2)),
}
ONE_ARG_INPUTS = {
    "L107": (rand(5),),
    "L108": (rand_row(5),),
    "L109": (rand(2, 5),),
    "L110": (rand(2, 5, 3),),
}
CAT_DIM_INPUTS = {
    "L117": (rand(5), rand(5), rand(5)),
    "L118": (rand(2, 5), rand(2, 5), rand(2, 5)),
    "L119": (rand(2, 5, 3), rand(2, 5, 3), rand(2, 5, 3)),
}
CAT_DIM_EMPTY = (rand(2, 5, 3), rand(2, 5, 0), rand(2, 5, 3))  # L120, dim == 3 only
CAT_DIMS3_INPUTS = (rand(2, 5, 2), rand(2, 5, 3), rand(2, 5, 4))  # L113
BLOCK_DIAGONAL_INPUTS = (rand(2, 3), rand(2, 4, 2, 1))  # L127


def loop_cases(functions, inputs):
    """Julia's `@testset for f in functions` around one `@test` per line of `inputs`."""
    return [
        case(f"{line}-{name}", f, *xs)
        for name, f in functions.items()
        for line, xs in inputs.items()
    ]


def cat_dim_cases():
    cases = []
    for dim in (3, 4, 5):
        for line, xs in CAT_DIM_INPUTS.items():
            cases.append(case(f"{line}-dim{dim}", functools.partial(cat, dims=dim), *xs))
        if dim == 3:
            cases.append(case("L120-dim3", functools.partial(cat, dims=dim), *CAT_DIM_EMPTY))
    return cases


def promotion_cases():
    cases = []
    for name, f in {"hcat": hcat, "vcat": vcat, "cat-dims3": cat3, "cat-dims12": cat12}.items():
        for line, shape in (("L131", (2,)), ("L132", None), ("L133", (2, 2)), ("L134", (2, 2, 2))):
            xs = tuple(rand_row(2) if shape is None else rand(*shape) for _ in range(3))
            cases.append(pytest.param(f, xs, id=f"{line}-{name}"))
    cases += [
        pytest.param(vcat, (rand(1, 2), rand_row(2), rand(2, 2)), id="L137"),
        pytest.param(hcat, (rand(2, 1), rand(2), rand(2, 2)), id="L138"),
        pytest.param(vcat, (rand(3, 4, 5), rand(1, 4, 5), rand(2, 4, 5)), id="L139"),
        pytest.param(hcat, (rand(4, 3, 5), rand(4, 1, 5), rand(4, 2, 5)), id="L140"),
        pytest.param(cat3, (rand(4, 5, 3), rand(4, 5, 1), rand(4, 5, 2)), id="L141"),
    ]
    return cases


class TestConcat:
    @pytest.mark.parametrize(("f", "xs"), loop_cases(VCATS, VCAT_INPUTS))
    def test_2arg_vcat(self, f, xs):
        check(f, xs)

    @pytest.mark.parametrize(("f", "xs"), loop_cases(HCATS, HCAT_INPUTS))
    def test_2arg_hcat(self, f, xs):
        check(f, xs)

    @pytest.mark.parametrize(("f", "xs"), loop_cases(CATS, ONE_ARG_INPUTS))
    def test_1arg_cat(self, f, xs):
        check(f, xs)

    def test_cat_dims3_of_three(self):
        check(cat3, CAT_DIMS3_INPUTS)  # L113

    @pytest.mark.parametrize(("f", "xs"), cat_dim_cases())
    def test_cat_dim(self, f, xs):
        check(f, xs)

    @pytest.mark.parametrize(
        "f",
        [
            pytest.param(vcat, id="L123"),
            pytest.param(hcat, id="L124"),
            pytest.param(cat1, id="L125"),
        ],
    )
    def test_plain_arguments_give_plain_arrays(self, f):
        assert not isinstance(f(rand(2)), tr.TrackedArray)

    def test_block_diagonal_cat(self):
        # L127: cat(a, b, dims = (2,3,5)) places b after a along dims 2, 3 and 5.
        check(lambda a, b: cat(a, b, dims=(2, 3, 5)), BLOCK_DIAGONAL_INPUTS)

    @pytest.mark.parametrize(("f", "xs"), promotion_cases())
    def test_promotiontest(self, f, xs):
        # promotiontest (lines 64-77): the result is tracked whichever argument is.
        # Julia no longer tracks through the third position alone (line 68); NumPy
        # functions see all their arguments, so the port checks that case (r3) too.
        A, B, C = xs
        r0 = f(A, B, C)
        r1 = f(tr.param(A), B, C)
        r2 = f(A, tr.param(B), C)
        r3 = f(A, B, tr.param(C))
        r4 = f(tr.param(A), tr.param(B), tr.param(C))
        assert not isinstance(r0, tr.TrackedArray)
        assert all(isinstance(r, tr.TrackedArray) for r in (r1, r2, r3, r4))
        for r in (r2, r3, r4):
            assert_array_equal(tr.data(r), tr.data(r1))
        assert_array_equal(r0, tr.data(r4))

    # "scalars": numbers join arrays through np.hstack, which promotes them to 1-d.
    @pytest.mark.parametrize(
        ("f", "shape"),
        [
            pytest.param(lambda: np.hstack([tr.param([1, 2, 3]), 1]), (4,), id="L145"),
            pytest.param(lambda: np.hstack([1, tr.param([1, 2, 3])]), (4,), id="L146"),
            # hcat(1, [1 2 3;]): NumPy does not promote a scalar to 1-by-1; the port writes [[1]].
            pytest.param(lambda: np.hstack([[[1]], tr.param([[1, 2, 3]])]), (1, 4), id="L147"),
            pytest.param(lambda: np.hstack([tr.param(1), 2]), (2,), id="L148"),
        ],
    )
    def test_scalars(self, f, shape):
        r = f()
        assert isinstance(r, tr.TrackedArray)
        assert r.shape == shape
        assert r.dtype == np.float64

    # "ambiguities": tracked and plain arrays of ints or floats.
    @pytest.mark.parametrize(
        ("f", "shape"),
        [
            pytest.param(
                lambda: np.concatenate([tr.param([1, 2, 3]), np.array([2, 3])]), (5,), id="L152"
            ),
            pytest.param(
                lambda: np.concatenate([tr.param([1, 2, 3]), np.array([2.0, 3.0])]),
                (5,),
                id="L153",
            ),
            pytest.param(
                lambda: hcat(tr.param([[1, 2, 3]]), col(np.array([2, 3])).T), (1, 5), id="L154"
            ),
            pytest.param(
                lambda: hcat(tr.param([[1, 2, 3]]), col(np.array([2.0, 3.0])).T),
                (1, 5),
                id="L155",
            ),
        ],
    )
    def test_ambiguities(self, f, shape):
        r = f()
        assert isinstance(r, tr.TrackedArray)
        assert r.shape == shape
        assert r.dtype == np.float64


# -- "getindex (Nabla.jl - #139)" (lines 160-163) ----------------------------------------


class TestGetindexNabla139:
    def test_repeated_index(self):
        # L162: z = [2, 3, 3] (1-based); the gradient accumulates over the repeated index.
        z = [1, 2, 2]
        check(lambda x: x[z], [np.random.default_rng(123456).standard_normal(3)])


# -- "gradtests 2" (lines 165-205) --------------------------------------------------------

CONSTANT_A_191 = rand(5, 5)
CONSTANT_B_194 = rand(5)
CONSTANT_A_198 = rand(5, 5)
CONSTANT_B_201 = rand(5, 5)


def right_divide(A, B):
    """Julia's `A / B` = A·B⁻¹: the X with X·B = A, that is Bᵀ·Xᵀ = Aᵀ."""
    return np.linalg.solve(B.T, A.T).T


# fmt: off
GRADTESTS_2 = [
    case("L167", lambda x: np.transpose(x, (2, 0, 1)), rand(4, 5, 6)),
    # PermutedDimsArray is a lazy permuted view; NumPy's transpose is a view too.
    case("L168", lambda x: x.transpose(2, 0, 1), rand(4, 5, 6)),
    case("L170", np.flip, rand(5)),
    case("L171", lambda x: np.flip(x, axis=1), rand(4, 5, 6)),
    # reverse(x, 2, 4) reverses elements 2 to 4 (1-based, inclusive).
    case("L172", lambda x: np.concatenate([x[:1], np.flip(x[1:4]), x[4:]]), rand(5)),
    # repeat(x; inner) repeats each element along each axis; outer tiles the result.
    case("L174", lambda x: np.repeat(x, 2), rand(5)),
    case("L175", lambda x: np.tile(np.repeat(x, 2), 3), rand(5)),
    case("L176", lambda x: np.tile(np.repeat(np.repeat(x, 2, axis=0), 2, axis=1), (1, 1, 3)),
         rand(5, 4, 3)),
    # kron(a, b, c) = kron(kron(a, b), c); a vector is a column, as in np.kron's 1-d product.
    case("L178", np.kron, rand(5), rand(3)),
    case("L179", lambda a, b, c: np.kron(np.kron(a, b), c), rand(5), rand(3), rand(8)),
    case("L180", np.kron, rand(5, 1), rand(3, 1)),
    case("L181", lambda a, b, c: np.kron(np.kron(a, b), c), rand(5, 1), rand(3, 1), rand(8, 1)),
    case("L182", lambda a, b, c: np.kron(np.kron(a, b), c), rand(5, 2), rand(3, 2), rand(8, 2)),
    case("L184", np.diag, rand(3)),  # diagm(0 => x)
    # Matrix(Diagonal(x)): the dense form of the lazy diagonal, the identity scaled by x.
    case("L185", lambda x: np.eye(x.shape[0]) * x, rand(3)),
    case("L187", lambda W: np.linalg.inv(np.log(W @ W)), (5, 5)),
    case("L188", right_divide, (1, 5), (5, 5)),
    case("L189", lambda A, B: right_divide(np.log(A @ A), np.exp(B @ B)), (5, 5), (5, 5)),
    case("L190", np.linalg.solve, (5, 5), (5,)),
    case("L191", lambda B: np.linalg.solve(CONSTANT_A_191, B), (5,)),
    case("L194", lambda A: np.linalg.solve(A, CONSTANT_B_194), (5, 5)),
    case("L197", lambda A, B: np.linalg.solve(np.log(A @ A), np.exp(B @ B)), (5, 5), (5, 5)),
    case("L198", lambda B: np.linalg.solve(np.log(CONSTANT_A_198 @ CONSTANT_A_198), np.exp(B @ B)),
         (5, 5)),
    case("L201", lambda A: np.linalg.solve(np.log(A @ A), np.exp(CONSTANT_B_201 @ CONSTANT_B_201)),
         (5, 5)),
]
# fmt: on


class TestGradtests2:
    @pytest.mark.parametrize(("f", "xs"), GRADTESTS_2)
    def test_gradtest(self, f, xs):
        check(f, xs)


# -- "mean", "maximum", "minimum" (lines 207-235) -----------------------------------------


def reduction_cases(lines, reduce):
    first, axis0, axis1, axis2, axes01 = lines
    return [
        case(first, reduce, rand(2, 3)),
        case(axis0, lambda x: reduce(x, axis=0, keepdims=True), rand(2, 3)),
        case(axis1, lambda x: reduce(x, axis=1, keepdims=True), rand(2, 3)),
        case(axis2, lambda x: reduce(x, axis=2, keepdims=True), rand(2, 3, 4)),
        case(axes01, lambda x: reduce(x, axis=(0, 1), keepdims=True), rand(2, 3, 4)),
    ]


class TestMean:
    @pytest.mark.parametrize(
        ("f", "xs"), reduction_cases(("L208", "L210", "L211", "L212", "L214"), np.mean)
    )
    def test_gradtest(self, f, xs):
        check(f, xs)


class TestMaximum:
    @pytest.mark.parametrize(
        ("f", "xs"), reduction_cases(("L218", "L220", "L221", "L222", "L224"), np.max)
    )
    def test_gradtest(self, f, xs):
        check(f, xs)


class TestMinimum:
    @pytest.mark.parametrize(
        ("f", "xs"), reduction_cases(("L228", "L230", "L231", "L232", "L234"), np.min)
    )
    def test_gradtest(self, f, xs):
        check(f, xs)


# -- "gradtests 3" (lines 237-261) --------------------------------------------------------

X55 = rand(5, 5)


def square_plus(x):
    """The do-block of lines 256-259."""
    y = x**2
    return 2 * y + x


# Julia's std and var are corrected (ddof=1) unless corrected = false.
# fmt: off
GRADTESTS_3 = [
    case("L239", lambda x: np.std(x, ddof=1), rand(5, 5)),
    case("L240", lambda x: np.std(x, axis=0, ddof=1, keepdims=True), rand(5, 5)),
    case("L241", lambda x: np.std(x, axis=0, ddof=0, keepdims=True), rand(5, 5)),
    case("L243", lambda x: np.var(x, ddof=1), rand(5, 5)),
    case("L244", lambda x: np.var(x, axis=0, ddof=1, keepdims=True), rand(5, 5)),
    case("L245", lambda x: np.var(x, axis=0, ddof=0, keepdims=True), rand(5, 5)),
    case("L247", lambda x: np.var(x, axis=1, ddof=1, keepdims=True,
                                  mean=np.mean(X55, axis=1, keepdims=True)), X55),
    case("L249", lambda x, y: x * y, rand(5), rand(5)),
    case("L250", np.dot, rand(5), rand(5)),
    case("L252", np.linalg.norm, rand(5)),
    case("L253", np.linalg.norm, np.zeros(5)),
    case("L256", square_plus, rand(5)),
]
# fmt: on


class TestGradtests3:
    @pytest.mark.parametrize(("f", "xs"), GRADTESTS_3)
    def test_gradtest(self, f, xs):
        check(f, xs)

    def test_norm_keeps_float32(self):
        # L254: norm(TrackedArray(rand(Float32, 5))) isa TrackedReal{Float32}
        r = np.linalg.norm(tr.param(rand(5).astype(np.float32)))
        assert isinstance(r, tr.TrackedReal)
        assert r.dtype == np.float32


# -- "transpose" (lines 263-336) ----------------------------------------------------------

# Julia's product expressions, by the shapes of w and x. A vector in a product is a
# column: w*x' of vectors is col(w) @ col(x).T, and w'*x is col(w).T @ x.
PRODUCTS = {
    ("matrix", "matrix"): {
        "w*x": lambda w, x: w @ x,
        "w'*x": lambda w, x: w.T @ x,
        "transpose(w)*x": lambda w, x: np.transpose(w) @ x,
        "w*x'": lambda w, x: w @ x.T,
        "w*transpose(x)": lambda w, x: w @ np.transpose(x),
        "w'*x'": lambda w, x: w.T @ x.T,
        "transpose(w)*transpose(x)": lambda w, x: np.transpose(w) @ np.transpose(x),
    },
    ("matrix", "vector"): {
        "w*x": lambda w, x: w @ x,
        "w'*x": lambda w, x: w.T @ x,
        "transpose(w)*x": lambda w, x: np.transpose(w) @ x,
    },
    ("vector", "vector"): {
        "w*x'": lambda w, x: col(w) @ col(x).T,
        "w*transpose(x)": lambda w, x: col(w) @ np.transpose(col(x)),
    },
    ("vector", "matrix"): {
        "w'*x": lambda w, x: col(w).T @ x,
        "transpose(w)*x": lambda w, x: np.transpose(col(w)) @ x,
        "w'*x'": lambda w, x: col(w).T @ x.T,
        "transpose(w)*transpose(x)": lambda w, x: np.transpose(col(w)) @ np.transpose(x),
    },
}
# The first Julia line of each block of products, for (w, x) tracked as written.
PRODUCT_LINES = {
    (True, True): {"matrix-matrix": 266, "matrix-vector": 275, "vector-vector": 280,
                   "vector-matrix": 284},
    (True, False): {"matrix-matrix": 291, "matrix-vector": 299, "vector-vector": 304,
                    "vector-matrix": 308},
    (False, True): {"matrix-matrix": 315, "matrix-vector": 323, "vector-vector": 328,
                    "vector-matrix": 332},
}  # fmt: skip


def transpose_cases():
    cases = []
    for (w_tracked, x_tracked), blocks in PRODUCT_LINES.items():
        for block, first_line in blocks.items():
            shapes = tuple(block.split("-"))
            for k, f in enumerate(PRODUCTS[shapes].values()):
                w = rand(5, 5) if shapes[0] == "matrix" else rand(5)
                x = rand(5, 5) if shapes[1] == "matrix" else rand(5)
                cases.append(pytest.param(f, w, x, w_tracked, x_tracked, id=f"L{first_line + k}"))
    return cases


class TestTranspose:
    @pytest.mark.parametrize(("f", "w", "x", "w_tracked", "x_tracked"), transpose_cases())
    def test_product_is_tracked(self, f, w, x, w_tracked, x_tracked):
        r = f(tr.param(w) if w_tracked else w, tr.param(x) if x_tracked else x)
        assert isinstance(r, tr.TrackedArray)
        assert_allclose(tr.data(r), f(w, x), rtol=1e-14)


# -- line 359: @test_broken gradtest(x -> Float64.(x), 5) -------------------------------


def test_float64_conversion():
    # Broken in Tracker.jl (ForwardDiff PR #538); a conversion to float64 is a cast here.
    check(lambda x: x.astype(np.float64), [(5,)])


# -- "equality & order" (lines 361-384) ---------------------------------------------------


class TestEqualityAndOrder:
    # Julia's == and ≈ on tracked values compare their data and give one Bool. On a
    # TrackedReal, Python's == does the same; on arrays the whole-array comparisons are
    # np.array_equal and np.allclose, and np.isclose for scalars.
    def test_tracked_real_equality(self):
        assert tr.param(2) ** 2 == tr.param(4)  # L363
        assert tr.param(2) ** 2 == 4  # L364
        assert 4 == tr.param(2) ** 2  # noqa: SIM300 (L365: the reflected comparison)

    def test_tracked_real_isapprox(self):
        assert np.isclose(tr.param(2) ** 2, tr.param(4))  # L367
        assert np.isclose(tr.param(2) ** 2, 4)  # L368
        assert np.isclose(4, tr.param(2) ** 2)  # L369

    @pytest.mark.parametrize(
        ("f", "expected"),
        [
            pytest.param(lambda: tr.param([1, 2, 3]) < 2, [True, False, False], id="L371"),
            pytest.param(lambda: tr.param([1, 2, 3]) <= 2, [True, True, False], id="L372"),
            pytest.param(lambda: 2 > tr.param([1, 2, 3]), [True, False, False], id="L373"),  # noqa: SIM300
            pytest.param(lambda: 2 >= tr.param([1, 2, 3]), [True, True, False], id="L374"),  # noqa: SIM300
        ],
    )
    def test_order(self, f, expected):
        r = f()
        assert type(r) is np.ndarray
        assert r.dtype == np.bool_
        assert np.array_equal(r, expected)

    def test_tracked_array_equality(self):
        assert np.array_equal(tr.param([1, 2, 3]) ** 2, tr.param([1, 4, 9]))  # L377
        assert np.array_equal(np.array([1, 2, 3]) ** 2, tr.param([1, 4, 9]))  # L378
        assert np.array_equal(tr.param([1, 2, 3]) ** 2, [1, 4, 9])  # L379

    def test_tracked_array_isapprox(self):
        assert np.allclose(tr.param([1, 2, 3]) ** 2, tr.param([1, 4, 9]))  # L381
        assert np.allclose(np.array([1, 2, 3]) ** 2, tr.param([1, 4, 9]))  # L382
        assert np.allclose(tr.param([1, 2, 3]) ** 2, [1, 4, 9])  # L383


# -- "reshape" (lines 386-399) ------------------------------------------------------------


class TestReshape:
    # Julia's reshape is column-major: reshape_f (julia.py), equal to NumPy's order="F".
    @pytest.mark.parametrize(
        ("x", "shape", "expected"),
        [
            pytest.param(rand(2, 2, 2), (4, 2), (4, 2), id="L388-389"),
            pytest.param(np.array([1.0]), (1, -1), (1, 1), id="L391-392"),
            pytest.param(rand(2), (2, -1), (2, 1), id="L394-395"),
            pytest.param(rand(2, 2), (1, -1, 2), (1, 2, 2), id="L397-398"),
        ],
    )
    def test_reshape(self, x, shape, expected):
        r = reshape_f(tr.param(x), *shape)
        assert isinstance(r, tr.TrackedArray)
        assert r.shape == expected
        assert_array_equal(tr.data(r), np.reshape(x, shape, order="F"))


# -- "Intermediates" (lines 401-409) ------------------------------------------------------


class TestIntermediates:
    def test_back_twice_with_once_false(self):
        x = tr.param([1])
        loss = np.sum((x + x) ** 2)
        tr.back(loss, once=False)
        assert_array_equal(tr.grad(x), [8.0])  # L405
        tr.zero_grad(x)  # x.grad .= 0
        tr.back(loss, once=False)
        assert_array_equal(tr.grad(x), [8.0])  # L408


# -- "Fallbacks" (lines 411-414) ----------------------------------------------------------


class TestFallbacks:
    def test_similar(self):
        # L413: similar(xs) isa Matrix{Float64}; NumPy's similar is empty_like.
        r = np.empty_like(tr.param([[1, 2], [3, 4]]))
        assert type(r) is np.ndarray
        assert r.dtype == np.float64
        assert r.shape == (2, 2)


# -- lines 416-423 ------------------------------------------------------------------------


def test_sprintf():
    assert f"{np.sum(tr.param([1, 2, 3])):.2f}" == "6.00"  # L416: @sprintf("%.2f", ...)


def test_back_of_a_leaf():
    b = tr.param(rng.random())  # L421-423
    tr.back(b)
    assert tr.grad(b) == 1


# -- "collect" (lines 425-439) ------------------------------------------------------------


class TestCollect:
    # Tracker.collect builds one tracked array from tracked scalars: np.stack.
    def test_collect_and_back(self):
        x, y = tr.param(2), tr.param(3)
        xy = np.stack([x, y])
        assert isinstance(xy, tr.TrackedArray)  # L428
        assert xy.dtype == np.float64
        z = xy[0] * xy[1]
        tr.back(z)
        assert (tr.grad(x), tr.grad(y)) == (3, 2)  # L431

    def test_collect_in_gradient(self):
        # L433: gradient(2, 3) do x, y ... end. Julia's param makes the Ints floats; in
        # tracker a Python int is not differentiable (it gets None), so the port passes floats.
        def f(x, y):
            xy = np.stack([x, y])
            return xy[0] * xy[1]

        assert tr.gradient(f, 2.0, 3.0) == (3.0, 2.0)

    def test_collect_of_an_array(self):
        # L438: evaluated but never asserted upstream (no @test); the port asserts it.
        # Iterating a tracked array gives tracked scalars; floats, as in L433.
        (g,) = tr.gradient(lambda x: np.sum(np.stack(list(x))), np.array([1.0, 2.0, 3.0]))
        assert_array_equal(g, [1.0, 1.0, 1.0])


# -- "Hooks" (lines 441-447) --------------------------------------------------------------


class TestHooks:
    def test_hook(self):
        x = tr.param(2)
        y = tr.hook(operator.neg, x)
        tr.back(y)
        assert tr.grad(x) == -1  # L446


# -- "Checkpointing" (lines 449-459) ------------------------------------------------------


class TestCheckpointing:
    def test_checkpoint_recomputes(self):
        count = 0

        def mul(a, b):
            nonlocal count
            count += 1
            return a * b

        assert tr.gradient(lambda x: mul(5, x), 3.0)[0] == 5  # L455
        assert count == 1  # L456
        assert tr.gradient(lambda x: tr.checkpoint(mul, 5, x), 3.0)[0] == 5  # L457
        assert count == 3  # L458


# -- "Updates" (lines 461-468) ------------------------------------------------------------


class TestUpdates:
    def test_update(self):
        xs = tr.param([1, 2, 3])
        tr.update(xs, tr.param([4, 5, 6]))
        assert_array_equal(tr.data(xs), [5.0, 7.0, 9.0])  # L464
        x = tr.param(3)
        tr.update(x, tr.param(4))
        assert x == 7  # L467


# -- "Params" (lines 470-476) -------------------------------------------------------------


class TestParams:
    def test_params_gradient_equals_explicit_gradient(self):
        W = tr.param(randn(5, 10))
        x = rand(10)
        (dW,) = tr.gradient(lambda W: np.sum(W @ x), W)
        gs = tr.gradient(lambda: np.sum(W @ x), tr.Params([W]))
        assert_array_equal(gs[W], dW)  # L475


# -- "Forward" (lines 478-486) ------------------------------------------------------------


class TestForward:
    def test_forward_jacobian(self):
        # L479: Tracker.forward_jacobian(x -> [sum(x)], rand(5,5), Val(12)) returns the
        # transposed Jacobian, 25-by-1, computed by ForwardDiff in chunks of 12. tracker's
        # Jacobian is tr.jacobian, of shape y.shape + x.shape; the chunk size has no
        # counterpart.
        J = tr.jacobian(lambda x: np.stack([np.sum(x)]), rand(5, 5))
        assert_array_equal(J, np.ones((1, 5, 5)))
        assert_array_equal(np.reshape(J, (1, 25)).T, np.ones((25, 1)))

    def test_forwarddiff(self):
        # L481
        def f(x):
            return tr.forwarddiff(lambda x: x[0] * x[1], x)

        (g,) = tr.gradient(f, np.array([2.0, 3.0]))
        assert_array_equal(g, [3.0, 2.0])


# -- "Custom Sensitivities" (lines 488-491) -----------------------------------------------


class TestCustomSensitivities:
    def test_forward_with_a_seed(self):
        _, back = tr.forward(lambda x: np.stack([3 * x**2, 2 * x]), 5.0)
        assert back(np.array([1.0, 1.0])) == (32.0,)  # L490


# -- "PDMats" (lines 493-503) -------------------------------------------------------------

PDMAT_B = rand(5, 5)
PDMATS = {
    # The PDMats types are Julia's; S / A is the same right division with S dense.
    "L496-PDMat": np.eye(5) + PDMAT_B @ PDMAT_B.T,
    "L499-PDiagMat": np.diag(rand(5)),
    "L502-ScalMat": rng.random() * np.eye(5),
}


class TestPDMats:
    @pytest.mark.parametrize("S", [pytest.param(S, id=id) for id, S in PDMATS.items()])
    def test_right_divide(self, S):
        check(lambda A: right_divide(S, A), [(5, 5)])


# -- "broadcast" (lines 506-515) ----------------------------------------------------------


class TestBroadcast:
    # @inferred (lines 508, 513) checks Julia's type inference: no counterpart.
    def test_comparison(self):
        y = tr.param(rand(5, 3)) < 0  # f(x) = @. x < zero(x)
        assert y.shape == (5, 3)  # L509
        assert not y.any()  # L510

    def test_comparison_times_x(self):
        x = tr.param(rand(5, 3))
        y = (x < 0) * x  # g(x) = @. (x < zero(x)) * x
        assert isinstance(y, tr.TrackedArray)
        assert y.shape == (5, 3)  # L514


# -- test/chainrules.jl -------------------------------------------------------------------
# @grad_from_chainrules imports a ChainRules rrule, (y, pullback); tr.rule takes the same
# pair. The testsets that call ChainRulesCore.rrule directly test the rrules the file
# defines, not Tracker (MAPPING.md).


def counted(calls, y, pullback):
    calls.append(1)
    return y, pullback


class TestChainRulesVarargs:
    def test_function_with_varargs(self):
        calls = []

        @tr.rule
        def f_vararg(x, *args):
            y = np.sum(4 * x + sum(args))
            return counted(calls, y, lambda d: (np.full(np.shape(x), 4 * d), *(None for _ in args)))

        (g,) = tr.gradient(lambda x: f_vararg(x, 1, 2, 3) + 2, rand(3, 3))
        assert_array_equal(g, np.full((3, 3), 4.0))  # chainrules.jl:109
        assert len(calls) == 1  # chainrules.jl:110


class TestChainRulesVarargsAndKwargs:
    def test_function_with_varargs_and_kwargs(self):
        # Keyword arguments reach the rule and are not differentiated, as in Tracker.jl.
        calls = []

        @tr.rule
        def f_kw(x, *args, k=1, **kwargs):
            y = np.sum(4 * x + sum(args) + (k + kwargs["j"]))
            return counted(calls, y, lambda d: (np.full(np.shape(x), 4 * d), *(None for _ in args)))

        (g,) = tr.gradient(lambda x: f_kw(x, 1, 2, 3, k=2, j=3) + 2, rand(3, 3))
        assert_array_equal(g, np.full((3, 3), 4.0))  # chainrules.jl:131
        assert len(calls) == 1  # chainrules.jl:132


class TestChainRulesMixed:
    def test_tracker_and_chainrules_mixed(self):
        # h has a hand-written @grad, g an imported rrule: both are tr.rule here.
        h_calls, g_calls = [], []

        @tr.rule
        def h(x):
            return counted(h_calls, 10 * x, lambda d: (d * 10,))

        @tr.rule
        def g(x, y):
            def pullback(d):
                return np.full(np.shape(x), 4 * d), np.full(np.shape(x), 4 * d)

            return counted(g_calls, np.sum(4 * x + 4 * y), pullback)

        (grad,) = tr.gradient(lambda x: g(x, h(x)), rand(3, 3))
        assert_array_equal(grad, np.full((3, 3), 44.0))  # chainrules.jl:152, 44 = 4 + 4·10
        # chainrules.jl:153 counts 2: its first testset called the rrule directly.
        assert len(g_calls) == 1
        assert len(h_calls) == 1  # chainrules.jl:154


# -- test/runtests.jl ---------------------------------------------------------------------


class TestJacobian:
    def test_jacobian_of_a_linear_map(self):
        A = tr.param(randn(2, 2))
        x = randn(2)
        J = tr.jacobian(lambda x: A @ x, x)
        assert_allclose(J, tr.data(A), rtol=1e-14)  # runtests.jl:18


VecMatFun = namedtuple("VecMatFun", "vec mat fun")
VW = namedtuple("VW", "v w")
SumAux = namedtuple("SumAux", "sum aux")


@dataclasses.dataclass
class TwoThirds:
    a: np.ndarray
    b: np.ndarray
    c: np.ndarray


class TestWithgradient:
    # tracker's structures (DESIGN.md): NamedTuples are namedtuples, a struct is a
    # dataclass whose gradient is a dict of its fields; ints and functions get None, and
    # a float leaf the loss does not use gets zeros (Tracker.jl: nothing).

    def test_namedtuple_and_power(self):
        nt = VecMatFun(vec=np.array([1.0, 2.0]), mat=np.array([[4.0]]), fun=np.sin)
        val, (g, gp) = tr.withgradient(lambda x, p: np.sum(np.square(x.vec)) ** p, nt, 2)
        assert val == 25.0  # runtests.jl:28
        assert isinstance(g, VecMatFun)
        assert_array_equal(g.vec, [20.0, 40.0])
        assert_array_equal(g.mat, [[0.0]])
        assert g.fun is None
        assert gp is None

    def test_integer_array(self):
        # runtests.jl:30: Julia gives grad = (nothing,): no parameter is used. Here the int
        # array gets None and the unused float array w gets zeros.
        x = VW(v=np.array([1, 2]), w=np.array([3.0]))
        val, (g,) = tr.withgradient(lambda x: np.sum(x.v), x)
        assert val == 3
        assert g.v is None
        assert_array_equal(g.w, [0.0])

    def test_tuple_output(self):
        # runtests.jl:31: the loss is the first element; val is the whole tuple.
        val, (g,) = tr.withgradient(
            lambda x: (np.sum(x.v), x.v), VW(v=np.array([1, 2]), w=np.array([3.0]))
        )
        assert val[0] == 3
        assert_array_equal(val[1], [1, 2])
        assert g.v is None
        assert_array_equal(g.w, [0.0])

    def test_namedtuple_output(self):
        # runtests.jl:33
        val, (g,) = tr.withgradient(
            lambda x: SumAux(sum=np.sum(x.v), aux=33), VW(v=np.array([1, 2]), w=np.array([3.0]))
        )
        assert isinstance(val, SumAux)
        assert val == (3, 33)
        assert g.v is None
        assert_array_equal(g.w, [0.0])

    def test_struct(self):
        # runtests.jl:38: TwoThirds has only `a` trainable (Functors/Optimisers); tracker
        # has no trainable filter, so every float field is differentiated.
        m = TwoThirds(np.array([1.0]), np.array([2.0]), np.array([3.0]))
        val, (g,) = tr.withgradient(lambda m: (m.a + m.b + m.c)[0], m)
        assert val == 6.0
        assert list(g) == ["a", "b", "c"]
        for field in "abc":
            assert_array_equal(g[field], [1.0])


class TestWithinGradient:
    # NNlib.within_gradient(x) asks whether x is being differentiated: tr.istracked(x).
    @staticmethod
    def f_good(x):
        return 10 * x if tr.istracked(x) else x

    def test_scalar(self):
        assert tr.gradient(self.f_good, 1.0)[0] == 10  # runtests.jl:44

    def test_array(self):
        (g,) = tr.gradient(lambda x: np.sum(self.f_good(x)), np.array([1.0]))
        assert_array_equal(g, [10.0])  # runtests.jl:45
