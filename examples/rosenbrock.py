"""Minimising the Rosenbrock function with Adam.

    python examples/rosenbrock.py

f(x, y) = (1 - x)² + 100 (y - x²)² has its minimum 0 at (1, 1), at the end of a
long curved valley that plain gradient descent crawls along.
"""

import numpy as np

import tracker as tr
from tracker import optim


def rosenbrock(p):
    x, y = p[0], p[1]
    return (1 - x) ** 2 + 100 * (y - x**2) ** 2


point = np.array([-1.5, 2.0])
state = optim.setup(optim.Adam(0.02), point)
for step in range(1, 5001):
    value, (grad,) = tr.withgradient(rosenbrock, point)
    state, point = optim.update(state, point, grad)
    if step % 1000 == 0:
        print(f"step {step:5d}: f = {value:.3e} at {point}")

print("minimum found at", point)
assert np.allclose(point, [1.0, 1.0], atol=1e-3), point
