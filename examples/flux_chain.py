"""Tracker.jl's headline example, in Python: a Flux-style model through `withgradient`.

    python examples/flux_chain.py

The Julia original:

    model = Chain(Dense(2=>1, tanh), Dense(1=>1, bias=false))
    withgradient(model, rand(Float32, 2)) do m, x
      sum(abs2, m(x))
    end

The gradient mirrors the model: each layer a dict of its fields, `None` where a field
has no gradient (the missing bias, the activation), float32 kept throughout.
"""

import numpy as np

import tracker as tr
from tracker import nn

model = nn.Chain(nn.Dense(2, 1, np.tanh, rng=0), nn.Dense(1, 1, bias=False, rng=1))
x = np.random.default_rng(2).random(2, dtype=np.float32)

result = tr.withgradient(lambda m, x: np.sum(m(x) ** 2), model, x)
print(result)

val, (grad_model, grad_x) = result
first, second = grad_model["layers"]
assert val.dtype == np.float32 and grad_x.dtype == np.float32
assert first["weight"].shape == (1, 2) and first["bias"].shape == (1,)
assert first["activation"] is None and second["bias"] is None
# Checked against the chain rule by hand: y = w2 tanh(w1 x + b1), loss = y².
h = np.tanh(model[0].weight @ x + model[0].bias)
y = model[1].weight @ h
np.testing.assert_allclose(second["weight"], 2 * np.outer(y, h), rtol=1e-5)
