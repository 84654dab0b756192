"""Newton's method with `tr.hessian`: quadratic convergence to a minimum.

    python examples/newton.py

Minimises f(x) = sum(exp(x) - x·c) + ½ xᵀAx, a strictly convex function, by
x ← x - H(x)⁻¹ ∇f(x). The gradient and the Hessian come from the same NumPy code.
"""

import numpy as np

import tracker as tr

rng = np.random.default_rng(0)
n = 5
B = rng.standard_normal((n, n))
A = B @ B.T / n + np.eye(n)  # symmetric positive definite
c = rng.standard_normal(n)


def f(x):
    return np.sum(np.exp(x) - x * c) + 0.5 * x @ (A @ x)


x = np.zeros(n)
for step in range(1, 11):
    (g,) = tr.gradient(f, x)
    H = tr.hessian(f, x)
    x = x - np.linalg.solve(H, g)
    norm = np.linalg.norm(g)
    print(f"step {step}: |grad| = {norm:.3e}")
    if norm < 1e-12:
        break

(g,) = tr.gradient(f, x)
assert np.linalg.norm(g) < 1e-10, g
# The Hessian is exp(x) on the diagonal plus A.
np.testing.assert_allclose(tr.hessian(f, x), np.diag(np.exp(x)) + A, rtol=1e-12)
print("minimum at", x)
