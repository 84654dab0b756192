"""The NumPy functions tracker differentiates, read from its own tables, and the README's
list made from them.

`python -m tracker.supported` rewrites the list in README.md; a test checks that it is
current.
"""

import re
import sys
from pathlib import Path

import numpy as np

from tracker import _core
from tracker._numpy import FUNCTIONS

START, END = "<!-- supported: start -->", "<!-- supported: end -->"


def ufuncs() -> list[str]:
    """The ufuncs with a gradient on tracked arrays (`np.<name>`): the core's elementwise
    ops that NumPy has as ufuncs (the others, such as `sinc`, are functions)."""
    return sorted(n for n in _core.ufuncs()[0] if isinstance(getattr(np, n, None), np.ufunc))


def boolean_ufuncs() -> list[str]:
    """The ufuncs that take tracked arrays and give plain boolean results."""
    return sorted(_core.ufuncs()[1])


def _qualified(f: object) -> str:
    module = getattr(f, "__module__", "numpy") or "numpy"
    public = "np" + "".join(f".{part}" for part in module.split(".")[1:] if part[0] != "_")
    return f"{public}.{getattr(f, '__name__', '?')}"


def functions() -> list[str]:
    """The NumPy functions with a rule (`__array_function__`), qualified as `np.linalg.inv`."""
    return sorted({_qualified(f) for f in FUNCTIONS})


def _names(names: list[str]) -> str:
    return ", ".join(f"`{n}`" for n in names)


def markdown() -> str:
    """The README's list of supported functions."""
    methods = ["reduce", "accumulate", "outer"]
    return "\n".join(
        [
            START,
            f"- **Ufuncs with gradients** ({len(ufuncs())}): {_names(ufuncs())}; "
            f"as operators where Python has them, and their methods "
            f"{_names(methods)} where meaningful (`np.add.reduce`, `np.multiply.accumulate`, "
            "`np.subtract.outer`, ...).",
            f"- **Ufuncs with plain boolean results**: {_names(boolean_ufuncs())}.",
            f"- **Functions** ({len(functions())}): {_names(functions())}.",
            END,
        ]
    )


def update_readme(path: Path) -> bool:
    """Rewrites the list in the README at `path`; whether it changed."""
    text = path.read_text()
    pattern = re.compile(re.escape(START) + ".*?" + re.escape(END), re.DOTALL)
    if not pattern.search(text):
        raise ValueError(f"{path} has no {START} ... {END} section")
    new = pattern.sub(lambda _: markdown(), text)
    path.write_text(new)
    return new != text


if __name__ == "__main__":
    readme = Path(sys.argv[1] if len(sys.argv) > 1 else "README.md")
    print(f"{readme}: {'updated' if update_readme(readme) else 'already current'}")
