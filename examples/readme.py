"""The README's quick-start example, run and checked.

    python examples/readme.py

Prints each result and fails loudly (AssertionError) if a value is wrong.
"""

import numpy as np

import tracker as tr

# Back-propagation through a tape recorded from ordinary NumPy code.
x = tr.param([1, 2, 3])  # a tracked float64 vector (param converts ints)
y = np.sum(x**2) + np.prod(x[1:])  # ordinary NumPy code, recorded on a tape
tr.back(y)  # back-propagation
print("y       =", tr.data(y))
print("grad(x) =", repr(tr.grad(x)))
np.testing.assert_allclose(tr.data(y), 20.0, rtol=1e-15)
np.testing.assert_allclose(tr.grad(x), [2.0, 7.0, 8.0], rtol=1e-15)
assert tr.grad(x).dtype == np.float64


# The same function, differentiated as a whole.
def f(x):
    return np.sum(x**2) + np.prod(x[1:])


x0 = np.array([1.0, 2.0, 3.0])

grads = tr.gradient(f, x0)
print("gradient(f, x0) =", repr(grads))
assert isinstance(grads, tuple) and len(grads) == 1, grads
np.testing.assert_allclose(grads[0], [2.0, 7.0, 8.0], rtol=1e-15)

hess = tr.hessian(f, x0)
print("hessian(f, x0) =")
print(repr(hess))
np.testing.assert_allclose(hess, [[2.0, 0.0, 0.0], [0.0, 2.0, 1.0], [0.0, 1.0, 2.0]], atol=1e-15)

print("readme example: all results as documented")
