"""julia.py, the Julia conventions the port is written in, against results Julia gives."""

import numpy as np
from numpy.testing import assert_array_equal

from .julia import cat, col, hcat, reshape_f, vcat, with_rank

A = np.array([[1.0, 2.0], [3.0, 4.0]])  # [1 2; 3 4]


def test_col_is_a_julia_vector_in_products():
    v = np.array([1.0, 2.0])
    assert_array_equal(col(v), [[1.0], [2.0]])
    assert_array_equal(col(v).T @ A, [[7.0, 10.0]])  # v' * A, a 1-by-2 row


def test_with_rank_appends_trailing_singleton_axes():
    assert with_rank(np.zeros(5), 3).shape == (5, 1, 1)
    assert with_rank(np.zeros((2, 5)), 2).shape == (2, 5)


def test_vcat():
    assert_array_equal(vcat(np.array([1.0, 2.0]), np.array([3.0])), [1.0, 2.0, 3.0])
    assert_array_equal(vcat(np.array([1.0, 2.0]), np.array([[3.0]])), [[1.0], [2.0], [3.0]])
    assert vcat(np.zeros((5, 2, 3)), np.zeros((3, 2, 3))).shape == (8, 2, 3)


def test_hcat():
    # hcat([1, 2], [3, 4]) == [1 3; 2 4]: vectors are columns.
    assert_array_equal(hcat(np.array([1.0, 2.0]), np.array([3.0, 4.0])), [[1.0, 3.0], [2.0, 4.0]])
    assert_array_equal(hcat(np.array([5.0]), np.array([[6.0, 7.0]])), [[5.0, 6.0, 7.0]])
    assert hcat(np.zeros(5)).shape == (5, 1)
    assert hcat(np.zeros((2, 5, 3)), np.zeros((2, 3, 3))).shape == (2, 8, 3)


def test_cat_along_a_new_dimension():
    # Julia: size(cat(rand(5), rand(5), dims = 3)) == (5, 1, 2).
    assert cat(np.zeros(5), np.ones(5), dims=3).shape == (5, 1, 2)
    assert cat(np.zeros(5), dims=5).shape == (5, 1, 1, 1, 1)
    assert cat(np.zeros((2, 5, 3)), np.zeros((2, 5, 0)), dims=3).shape == (2, 5, 3)


def test_cat_along_several_dimensions_is_block_diagonal():
    # cat([1 2; 3 4], fill(5.0, 1, 1), dims = (1, 2)) == [1 2 0; 3 4 0; 0 0 5]
    assert_array_equal(
        cat(A, np.array([[5.0]]), dims=(1, 2)), [[1.0, 2.0, 0.0], [3.0, 4.0, 0.0], [0.0, 0.0, 5.0]]
    )
    # test/tracker.jl:127: cat(rand(2,3), rand(2,4,2,1), dims = (2,3,5)) has shape (2, 7, 3, 1, 2).
    a, b = np.full((2, 3), 1.0), np.full((2, 4, 2, 1), 2.0)
    c = cat(a, b, dims=(2, 3, 5))
    assert c.shape == (2, 7, 3, 1, 2)
    assert_array_equal(c[:, :3, :1, :, :1], a[:, :, None, None, None])
    assert_array_equal(c[:, 3:, 1:, :, 1:], b[..., None])
    assert c.sum() == a.sum() + b.sum()


def test_reshape_is_column_major():
    # reshape(1:6, 2, 3) == [1 3 5; 2 4 6]; reshape([1 2; 3 4], 4) == [1, 3, 2, 4]
    assert_array_equal(reshape_f(np.arange(1.0, 7.0), 2, 3), [[1, 3, 5], [2, 4, 6]])
    assert_array_equal(reshape_f(A, 4), [1.0, 3.0, 2.0, 4.0])
    x = np.arange(24.0).reshape(2, 3, 4)
    assert_array_equal(reshape_f(x, 4, -1), np.reshape(x, (4, -1), order="F"))
