"""SciPy on tracked arrays.

SciPy's special functions are ufuncs, so `scipy.special.erf(x)` on a tracked `x`
records like `np.exp(x)` does. SciPy's ordinary Python functions cannot be intercepted;
their homes here take tracked arrays: `tracker.scipy.special.logsumexp`, `softmax`,
`log_softmax`, `polygamma` and `tracker.scipy.linalg.solve_triangular`. Calling the
SciPy originals on tracked arrays raises a `TypeError` naming these.

SciPy is optional: importing this package does not import it.
"""

import sys

from tracker.scipy import linalg, special

__all__ = ["linalg", "special"]

# SciPy's Python functions that have a home here: (scipy submodule, name) -> home.
HOMES = {
    ("special", "logsumexp"): "tracker.scipy.special.logsumexp",
    ("special", "softmax"): "tracker.scipy.special.softmax",
    ("special", "log_softmax"): "tracker.scipy.special.log_softmax",
    ("special", "polygamma"): "tracker.scipy.special.polygamma",
    ("special", "zeta"): "tracker.scipy.special.zeta",
    ("linalg", "solve_triangular"): "tracker.scipy.linalg.solve_triangular",
}


def _refusal() -> str | None:
    """When a SciPy function with a home here is converting a tracked value to an array,
    the error to raise (called on that error path only)."""
    frame = sys._getframe(1)
    outermost = None
    while frame is not None:
        module = frame.f_globals.get("__name__", "")
        if module.startswith("scipy."):
            # The function itself, or one a SciPy decorator wraps (batching converts the
            # arguments before the function runs).
            named = [(module, frame.f_code.co_name)] + [
                (getattr(v, "__module__", None) or "", getattr(v, "__name__", ""))
                for v in frame.f_locals.values()
                if callable(v)
            ]
            for mod, name in named:
                key = (mod.split(".")[1], name) if mod.startswith("scipy.") else None
                if key in HOMES:
                    outermost = key
        frame = frame.f_back
    if outermost is None:
        return None
    home = HOMES[outermost]
    return (
        f"scipy.{outermost[0]}.{outermost[1]} is a Python function that converts its "
        f"arguments to NumPy arrays, which would drop tracking; use {home}, which takes "
        "tracked arrays"
    )
