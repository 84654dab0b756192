"""The README's list of supported functions is generated from the op tables, and every
name on it works on tracked arrays."""

from pathlib import Path

import numpy as np
import pytest

import tracker as tr
from tracker import supported

README = Path(__file__).resolve().parent.parent / "README.md"


@pytest.mark.skipif(not README.is_file(), reason="the README is not beside the tests")
def test_readme_list_is_current(tmp_path: Path) -> None:
    copy = tmp_path / "README.md"
    copy.write_text(README.read_text())
    assert not supported.update_readme(copy), "run `python -m tracker.supported`"


@pytest.mark.parametrize("name", supported.ufuncs())
def test_every_listed_ufunc_records(name: str) -> None:
    ufunc = getattr(np, name)
    # In every op's domain: (0, 1), or above 1 for arccosh.
    x = tr.param(np.array([[0.3, 0.6], [0.45, 0.8]]) + (name == "arccosh"))
    args = (x,) if ufunc.nin == 1 else (x, x[::-1] + 0.05)
    if name == "matmul":
        args = (x, x.T)
    y = ufunc(*args)
    assert tr.istracked(y)
    expected = ufunc(*(tr.data(a) for a in args))
    np.testing.assert_allclose(tr.data(y), expected, rtol=1e-15)
    g = tr.gradient(lambda x: np.sum(ufunc(*((x,) if ufunc.nin == 1 else (x, x.T)))), tr.data(x))
    assert g[0].shape == x.shape


@pytest.mark.parametrize("name", supported.boolean_ufuncs())
def test_every_boolean_ufunc_gives_plain_booleans(name: str) -> None:
    ufunc = getattr(np, name)
    x = tr.param([0.5, -1.0, 2.0])
    y = ufunc(*([x] * ufunc.nin))
    assert not tr.istracked(y)
    assert np.asarray(y).dtype == np.bool_
    np.testing.assert_array_equal(y, ufunc(*([tr.data(x)] * ufunc.nin)))


def test_every_core_elementwise_op_is_reachable() -> None:
    """A core op that is neither a ufunc nor a registered function is exposed nowhere."""
    core, _ = tr._core.ufuncs()
    reachable = set(supported.ufuncs()) | {f.split(".")[-1] for f in supported.functions()}
    # tracker.nn.functional's activation rows, and scipy.special's erf and expit (by their
    # ufunc names).
    reachable |= set(tr.nn.functional.CORE_ROWS) | {"erf", "expit"}
    assert set(core) - reachable == set()


@pytest.mark.parametrize(
    "call",
    [
        lambda x: np.zeros_like(x),
        lambda x: np.ones_like(x),
        lambda x: np.full_like(x, 2.5),
        lambda x: np.empty_like(x).shape,
        lambda x: np.isclose(x, [1.0, 2.1]),
        lambda x: np.allclose(x, x),
        lambda x: np.array_equal(x, [1.0, 2.0]),
        lambda x: np.array_equiv(x, x),
    ],
)
def test_functions_without_a_gradient_give_plain_results(call) -> None:
    x = tr.param([1.0, 2.0])
    result = call(x)
    assert not tr.istracked(result)
    np.testing.assert_array_equal(result, call(tr.data(x)))
