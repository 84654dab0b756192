"""tracker.optim: each rule against PyTorch's optimiser, step for step; structures, tied
arrays, immutability, chains and adjust."""

import dataclasses
from typing import Any

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

import tracker as tr
from tracker import optim

rng = np.random.default_rng(7)
TARGET = rng.standard_normal((4, 2))
INPUT = rng.standard_normal((5, 4))


def loss(model: dict[str, Any], xp: Any = np) -> Any:
    """A small regression, with a curvature that makes the rules differ."""
    w = model["w"]
    x = INPUT.astype(w.dtype) if xp is np else xp.as_tensor(INPUT, dtype=w.dtype)
    y = xp.tanh(x @ w + model["b"])
    return xp.sum((y - 0.5) ** 2) + xp.sum(w**4) * 0.1


def model_of(dtype: type) -> dict[str, np.ndarray]:
    return {"w": TARGET.astype(dtype), "b": np.linspace(-0.5, 0.5, 2).astype(dtype)}


# (our rule, PyTorch's optimiser class name and keyword arguments)
RULES = [
    (optim.Descent(0.1), "SGD", {"lr": 0.1}),
    (optim.Momentum(0.05, 0.8), "SGD", {"lr": 0.05, "momentum": 0.8}),
    (optim.Nesterov(0.05, 0.8), "SGD", {"lr": 0.05, "momentum": 0.8, "nesterov": True}),
    (optim.RMSProp(0.01, 0.9), "RMSprop", {"lr": 0.01, "alpha": 0.9, "eps": 1e-8}),
    (
        optim.RMSProp(0.01, 0.9, centred=True),
        "RMSprop",
        {"lr": 0.01, "alpha": 0.9, "eps": 1e-8, "centered": True},
    ),
    (optim.Adam(0.01, (0.8, 0.99)), "Adam", {"lr": 0.01, "betas": (0.8, 0.99), "eps": 1e-8}),
    (
        optim.AdamW(0.01, (0.8, 0.99), weight_decay=0.1),
        "AdamW",
        {"lr": 0.01, "betas": (0.8, 0.99), "eps": 1e-8, "weight_decay": 0.1},
    ),
    (
        optim.OptimiserChain(optim.WeightDecay(0.01), optim.Descent(0.1)),
        "SGD",
        {"lr": 0.1, "weight_decay": 0.01},
    ),
]


@pytest.mark.parametrize(("dtype", "rtol"), [(np.float64, 1e-6), (np.float32, 1e-5)])
@pytest.mark.parametrize(("rule", "torch_name", "kwargs"), RULES, ids=lambda r: repr(r)[:40])
def test_rule_matches_pytorch_step_for_step(rule, torch_name, kwargs, dtype, rtol, torch):
    model = model_of(dtype)
    params = {k: torch.tensor(v, requires_grad=True) for k, v in model.items()}
    torch_optimiser = getattr(torch.optim, torch_name)(params.values(), **kwargs)
    state = optim.setup(rule, model)
    for _ in range(6):
        (grad,) = tr.gradient(loss, model)
        state, model = optim.update(state, model, grad)
        torch_optimiser.zero_grad()
        loss(params, torch).backward()
        torch_optimiser.step()
        for k in model:
            assert model[k].dtype == dtype
            assert_allclose(model[k], params[k].detach().numpy(), rtol=rtol, atol=rtol)


def test_descent_by_hand():
    model = {"w": np.array([1.0, -2.0]), "n": 3, "name": "layer"}
    state = optim.setup(optim.Descent(0.5), model)
    assert state["n"] is None and state["name"] is None
    grad = {"w": np.array([2.0, 4.0]), "n": None, "name": None}
    _, new_model = optim.update(state, model, grad)
    assert_array_equal(new_model["w"], [0.0, -4.0])
    assert new_model["n"] == 3 and new_model["name"] == "layer"


def test_update_does_not_mutate_its_arguments():
    w = np.array([1.0, 2.0])
    model = {"w": w}
    state = optim.setup(optim.Momentum(0.1), model)
    before = state["w"].state.copy()
    new_state, new_model = optim.update(state, model, {"w": np.ones(2)})
    assert_array_equal(w, [1.0, 2.0])
    assert new_model["w"] is not w
    assert_array_equal(state["w"].state, before)
    assert new_state["w"] is not state["w"]


@dataclasses.dataclass
class Layer:
    weight: np.ndarray
    bias: np.ndarray | None
    activation: Any = None


def test_dataclass_models_keep_their_type_and_tied_arrays_step_once():
    shared = np.array([[1.0, 2.0]])
    model = (Layer(shared, np.zeros(1), np.tanh), Layer(shared, None))
    state = optim.setup(optim.Descent(0.1), model)
    assert state[0]["weight"] is state[1]["weight"]  # one state for the tied array

    def f(m):
        return np.sum(m[0].activation(m[0].weight @ np.ones(2) + m[0].bias)) + np.sum(m[1].weight)

    (grad,) = tr.gradient(f, model)
    new_state, new_model = optim.update(state, model, grad)
    assert isinstance(new_model[0], Layer) and new_model[0].activation is np.tanh
    assert new_model[0].weight is new_model[1].weight  # still tied
    # The tied array's total gradient, applied once.
    assert_allclose(new_model[0].weight, shared - 0.1 * grad[0]["weight"])
    assert_allclose(grad[0]["weight"], grad[1]["weight"])
    assert new_state[0]["weight"] is new_state[1]["weight"]


def test_float_scalars_stay_floats():
    model = {"scale": 2.0, "w": np.float32(1.5)}
    state = optim.setup(optim.Descent(0.5), model)
    _, new = optim.update(state, model, {"scale": np.float64(1.0), "w": np.float32(1.0)})
    assert type(new["scale"]) is float and new["scale"] == 1.5
    assert type(new["w"]) is np.float32 and new["w"] == 1.0


def test_clipping():
    model = {"w": np.zeros(3)}
    g = {"w": np.array([3.0, -4.0, 0.0])}
    state = optim.setup(optim.OptimiserChain(optim.ClipNorm(1.0), optim.Descent(1.0)), model)
    _, new = optim.update(state, model, g)
    assert_allclose(new["w"], [-0.6, 0.8, 0.0])
    state = optim.setup(optim.OptimiserChain(optim.ClipGrad(1.0), optim.Descent(1.0)), model)
    _, new = optim.update(state, model, g)
    assert_allclose(new["w"], [-1.0, 1.0, 0.0])


def test_adjust_changes_the_learning_rate_everywhere():
    model = {"a": np.ones(2), "b": [np.ones(1)]}
    state = optim.setup(optim.OptimiserChain(optim.ClipGrad(5.0), optim.Adam(0.1)), model)
    state = optim.adjust(state, eta=0.5)
    assert state["a"].rule.rules[1].eta == 0.5
    assert state["b"][0].rule.rules[0].delta == 5.0


def test_errors_name_the_problem():
    model = {"w": np.ones(2)}
    state = optim.setup(optim.Descent(), model)
    with pytest.raises(ValueError, match=r"model has 1 leaves, the state 1 and the gradient 2"):
        optim.update(state, model, {"w": np.ones(2), "extra": np.ones(1)})
    with pytest.raises(ValueError, match=r"gradient of shape \(3,\) for an array of shape \(2,\)"):
        optim.update(state, model, {"w": np.ones(3)})
    with pytest.raises(TypeError, match="not an optimisation rule"):
        optim.setup("adam", model)
    with pytest.raises(TypeError, match="not an optimisation rule"):
        optim.OptimiserChain(optim.Adam(), 0.1)


def test_training_reduces_the_loss():
    model = model_of(np.float64)
    state = optim.setup(optim.Adam(0.05), model)
    first = loss(model)
    for _ in range(50):
        _, (grad,) = tr.withgradient(loss, model)
        state, model = optim.update(state, model, grad)
    assert loss(model) < 0.5 * first
