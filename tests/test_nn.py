"""tracker.nn: layers, initialisers and losses, against PyTorch where installed."""

import dataclasses

import numpy as np
import pytest
from numpy.testing import assert_allclose

import tracker as tr
from tracker import nn, optim
from tracker.nn import losses

rng = np.random.default_rng(3)


def test_flux_readme_example_structure():
    """Tracker.jl's headline example: the gradient mirrors the model, float32 kept."""
    model = nn.Chain(nn.Dense(2, 1, np.tanh, rng=0), nn.Dense(1, 1, bias=False, rng=1))
    x = rng.random(2, dtype=np.float32)
    val, (g_model, g_x) = tr.withgradient(lambda m, x: np.sum(m(x) ** 2), model, x)
    first, second = g_model["layers"]
    assert set(g_model) == {"layers"} and isinstance(g_model["layers"], tuple)
    assert first["activation"] is None and second["bias"] is None
    assert second["activation"] is None
    for g in (first["weight"], first["bias"], second["weight"], g_x):
        assert g.dtype == np.float32
    assert first["weight"].shape == (1, 2) and second["weight"].shape == (1, 1)
    # By hand: y = w2 * tanh(w1 x + b1), loss = y².
    w1, b1, w2 = model[0].weight, model[0].bias, model[1].weight
    h = np.tanh(w1 @ x + b1)
    y = w2 @ h
    assert_allclose(val, np.sum(y**2), rtol=1e-6)
    assert_allclose(second["weight"], 2 * np.outer(y, h), rtol=1e-5)
    assert_allclose(first["bias"], 2 * y * w2[0] * (1 - h**2), rtol=1e-5)


def test_dense_matches_torch_linear(torch):
    layer = nn.Dense(4, 3, np.tanh, rng=1, dtype=np.float64)
    x = rng.standard_normal((5, 4))
    (g,) = tr.gradient(lambda m: np.sum(m(x) ** 2), layer)
    linear = torch.nn.Linear(4, 3).double()
    with torch.no_grad():
        linear.weight.copy_(torch.tensor(layer.weight))
        linear.bias.copy_(torch.tensor(layer.bias))
    (torch.tanh(linear(torch.tensor(x))) ** 2).sum().backward()
    assert_allclose(g["weight"], linear.weight.grad.numpy(), rtol=1e-12)
    assert_allclose(g["bias"], linear.bias.grad.numpy(), rtol=1e-12)


def test_layernorm_matches_torch(torch):
    norm = nn.LayerNorm((3, 4), dtype=np.float64)
    norm.weight = rng.standard_normal((3, 4))
    norm.bias = rng.standard_normal((3, 4))
    x = rng.standard_normal((2, 3, 4))
    w = rng.standard_normal((2, 3, 4))
    (g, gx) = tr.gradient(lambda m, x: np.sum(m(x) * w), norm, x)
    ref = torch.nn.LayerNorm((3, 4)).double()
    with torch.no_grad():
        ref.weight.copy_(torch.tensor(norm.weight))
        ref.bias.copy_(torch.tensor(norm.bias))
    tx = torch.tensor(x, requires_grad=True)
    y = ref(tx)
    assert_allclose(tr.data(norm(tr.param(x))), y.detach().numpy(), rtol=1e-12)
    (y * torch.tensor(w)).sum().backward()
    assert_allclose(gx, tx.grad.numpy(), rtol=1e-10, atol=1e-12)
    assert_allclose(g["weight"], ref.weight.grad.numpy(), rtol=1e-12)
    assert g["eps"] is None  # not trainable


def test_embedding_rows_accumulate():
    emb = nn.Embedding(5, 2, rng=0, dtype=np.float64)
    (g,) = tr.gradient(lambda m: np.sum(m([[1, 3], [1, 1]])), emb)
    expected = np.zeros((5, 2))
    expected[1], expected[3] = 3.0, 1.0
    assert_allclose(g["weight"], expected)
    with pytest.raises(TypeError, match="Embedding: indices must be integers"):
        emb(np.array([0.5]))


def test_initialisers_are_seeded_and_scaled():
    a = nn.init.glorot_uniform((300, 200), rng=5)
    assert a.dtype == np.float32
    assert np.array_equal(a, nn.init.glorot_uniform((300, 200), rng=5))
    assert np.abs(a).max() <= np.sqrt(6 / 500)
    k = nn.init.kaiming_normal((64, 16, 3, 3), rng=1, dtype=np.float64)
    assert k.std() == pytest.approx(np.sqrt(2 / (16 * 9)), rel=0.05)
    assert nn.Dense(3, 2, rng=7).weight.tolist() == nn.Dense(3, 2, rng=7).weight.tolist()


def test_chain_refuses_what_is_not_a_layer():
    with pytest.raises(TypeError, match="Chain: 3 is not a layer"):
        nn.Chain(nn.Dense(1, 1), 3)


def test_conv_refuses_groups_that_do_not_divide():
    with pytest.raises(ValueError, match="groups=2 must divide both in_channels=3"):
        nn.Conv((3, 3), 3, 4, groups=2)


def test_dropout_has_nothing_to_train():
    layer = nn.Dropout(0.5)
    assert tr.tree.trainable_mask(layer) == [False, False, False]
    with pytest.raises(ValueError, match=r"p must be in \[0, 1\)"):
        nn.Dropout(1.5)
    x = np.ones(3)
    assert nn.Dropout(0.5, active=False)(x) is x


def test_no_grad_evaluation_is_plain_numpy():
    model = nn.Chain(nn.Dense(3, 4, np.tanh, rng=0), nn.Dense(4, 2, rng=1))
    x = rng.standard_normal((8, 3)).astype(np.float32)
    with tr.no_grad():
        y = model(x)
    assert type(y) is np.ndarray


def test_training_a_chain_with_optim():
    x = rng.standard_normal((64, 2))
    y = np.sin(x[:, :1] * 2) * x[:, 1:]
    model = nn.Chain(nn.Dense(2, 16, np.tanh, rng=0), nn.Dense(16, 1, rng=1))
    state = optim.setup(optim.Adam(0.02), model)
    first = float(losses.mse(model(x), y))
    for _ in range(200):
        _, (g,) = tr.withgradient(lambda m: losses.mse(m(x), y), model)
        state, model = optim.update(state, model, g)
    assert float(losses.mse(model(x), y)) < 0.2 * first
    assert dataclasses.is_dataclass(model) and model[0].weight.dtype == np.float32


P = rng.uniform(0.05, 0.95, (4, 3))
T = rng.uniform(0.0, 1.0, (4, 3))


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_mse_and_binarycrossentropy_match_torch(reduction, torch):
    F = torch.nn.functional
    cases = [
        (losses.mse, F.mse_loss),
        (
            lambda p, t, reduction: losses.binarycrossentropy(p, t, eps=0.0, reduction=reduction),
            F.binary_cross_entropy,
        ),
    ]
    for ours, theirs in cases:

        def total(p, ours=ours):
            return np.sum(ours(p, T, reduction=reduction))

        value, (g,) = tr.withgradient(total, P)
        tp = torch.tensor(P, requires_grad=True)
        expected = theirs(tp, torch.tensor(T), reduction=reduction)
        expected.sum().backward()
        assert_allclose(value, expected.sum().item(), rtol=1e-12)
        assert_allclose(g, tp.grad.numpy(), rtol=1e-12)


def test_crossentropy_by_hand():
    p = np.array([[0.2, 0.8], [0.5, 0.5]])
    t = np.array([[0.0, 1.0], [1.0, 0.0]])
    assert_allclose(losses.crossentropy(p, t, eps=0.0), -(np.log(0.8) + np.log(0.5)) / 2)
    assert_allclose(
        losses.crossentropy(p.T, t.T, axis=0, eps=0.0, reduction="sum"),
        -(np.log(0.8) + np.log(0.5)),
    )


def test_losses_name_bad_input():
    with pytest.raises(ValueError, match=r"mse: the prediction has shape \(4, 3\) and the target"):
        losses.mse(P, T[:2])
    with pytest.raises(ValueError, match="reduction must be one of"):
        losses.mse(P, T, reduction="average")


def test_conv_and_pool_layers_match_torch(torch):
    conv = nn.Conv((3, 3), 2, 4, np.tanh, padding=1, stride=2, rng=0, dtype=np.float64)
    conv.bias = rng.standard_normal(4)
    pool = nn.MaxPool((2, 2))
    mean = nn.AvgPool((2, 2))
    x = rng.standard_normal((3, 2, 8, 8))
    model = nn.Chain(conv, pool)
    (g, gx) = tr.gradient(lambda m, x: np.sum(m(x) ** 2) + np.sum(mean(x)), model, x)
    F = torch.nn.functional
    w = torch.tensor(conv.weight, requires_grad=True)
    b = torch.tensor(conv.bias, requires_grad=True)
    tx = torch.tensor(x, requires_grad=True)
    y = F.max_pool2d(torch.tanh(F.conv2d(tx, w, b, stride=2, padding=1)), 2)
    ((y**2).sum() + F.avg_pool2d(tx, 2).sum()).backward()
    layer = g["layers"][0]
    assert_allclose(layer["weight"], w.grad.numpy(), rtol=1e-10)
    assert_allclose(layer["bias"], b.grad.numpy(), rtol=1e-10)
    assert_allclose(gx, tx.grad.numpy(), rtol=1e-10, atol=1e-12)
    assert layer["stride"] == (None, None) and layer["groups"] is None  # not trainable


def test_dropout_layer_draws_from_its_generator():
    x = np.ones((4, 5))
    a = nn.Dropout(0.5, np.random.default_rng(3))(x)
    b = nn.Dropout(0.5, np.random.default_rng(3))(x)
    assert np.array_equal(a, b)
    assert set(np.unique(a)) <= {0.0, 2.0}


def test_logit_losses_match_torch(torch):
    F = torch.nn.functional
    logits = rng.standard_normal((4, 3))
    probs = np.exp(logits) / np.sum(np.exp(logits), axis=1, keepdims=True)
    target = rng.dirichlet(np.ones(3), 4)
    value, (g,) = tr.withgradient(lambda z: losses.logitcrossentropy(z, target), logits)
    tz = torch.tensor(logits, requires_grad=True)
    expected = F.cross_entropy(tz, torch.tensor(target))
    expected.backward()
    assert_allclose(value, expected.item(), rtol=1e-12)
    assert_allclose(g, tz.grad.numpy(), rtol=1e-10)
    assert_allclose(losses.crossentropy(probs, target, eps=0.0), expected.item(), rtol=1e-12)
    bits = rng.uniform(0, 1, (4, 3))
    value, (g,) = tr.withgradient(lambda z: losses.logitbinarycrossentropy(z, bits), logits)
    tz = torch.tensor(logits, requires_grad=True)
    expected = F.binary_cross_entropy_with_logits(tz, torch.tensor(bits))
    expected.backward()
    assert_allclose(value, expected.item(), rtol=1e-12)
    assert_allclose(g, tz.grad.numpy(), rtol=1e-10)
