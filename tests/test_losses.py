"""Formula tests for gankit.losses: each would fail if a sign, a distribution or a constant were wrong."""
import math

import pytest
import torch
import torch.nn.functional as F
from scipy import stats

from gankit.losses import adversarial_losses, gradient_penalty, interpolate, r1_penalty


def _grad(fn, s):
    s = torch.tensor([s], requires_grad=True)
    fn(s).backward()
    return float(s.grad)


def test_d_loss_is_binary_cross_entropy_for_minimax_and_nonsaturating():
    real, fake = torch.randn(50), torch.randn(50)
    bce = (F.binary_cross_entropy_with_logits(real, torch.ones(50))
           + F.binary_cross_entropy_with_logits(fake, torch.zeros(50)))
    for name in ("minimax", "nonsaturating"):
        assert torch.allclose(adversarial_losses.get(name).d(real, fake), bce, atol=1e-6)


def test_minimax_generator_loss_is_log_one_minus_d_and_saturates():
    g = adversarial_losses.get("minimax").g
    s = torch.tensor([-1.5, 0.0, 2.0])
    assert torch.allclose(g(s), torch.log1p(-torch.sigmoid(s)).mean(), atol=1e-6)  # E log(1 - D(G(z)))
    assert g(torch.zeros(1)).item() == pytest.approx(-math.log(2))
    # d/ds log(1 - sigmoid(s)) = -sigmoid(s): almost no gradient when D confidently rejects the fake.
    assert _grad(g, -10.0) == pytest.approx(-torch.sigmoid(torch.tensor(-10.0)).item(), rel=1e-4)
    assert abs(_grad(g, -10.0)) < 1e-4


def test_nonsaturating_generator_loss_is_minus_log_d_with_strong_early_gradient():
    g = adversarial_losses.get("nonsaturating").g
    s = torch.tensor([-1.5, 0.0, 2.0])
    assert torch.allclose(g(s), -torch.log(torch.sigmoid(s)).mean(), atol=1e-6)  # -E log D(G(z))
    assert g(torch.zeros(1)).item() == pytest.approx(math.log(2))
    assert _grad(g, -10.0) == pytest.approx(-1.0, abs=1e-4)     # -sigmoid(-s) ~ -1: full-strength gradient
    # Both G losses push the fake score up (negative gradient), and agree at s = 0 (gradient -1/2).
    assert _grad(adversarial_losses.get("minimax").g, 0.0) == pytest.approx(-0.5)
    assert _grad(g, 0.0) == pytest.approx(-0.5)


def test_hinge_values():
    h = adversarial_losses.get("hinge")
    real = torch.tensor([2.0, 0.5, -1.0])   # relu(1 - r) = 0, 0.5, 2
    fake = torch.tensor([-2.0, 0.0, 1.0])   # relu(1 + f) = 0, 1, 2
    assert h.d(real, fake).item() == pytest.approx((0 + 0.5 + 2) / 3 + (0 + 1 + 2) / 3)
    assert h.g(fake).item() == pytest.approx(-(-2.0 + 0.0 + 1.0) / 3)


def test_least_squares_values():
    ls = adversarial_losses.get("lsgan")
    real, fake = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])
    assert ls.d(real, fake).item() == pytest.approx(0.5 * (0 + 1) / 2 + 0.5 * (0 + 1) / 2)
    assert ls.g(torch.tensor([1.0, 3.0])).item() == pytest.approx(0.5 * (0 + 4) / 2)


def test_wasserstein_signs():
    w = adversarial_losses.get("wasserstein")
    real, fake = torch.tensor([3.0, 1.0]), torch.tensor([0.0, -2.0])
    assert w.d(real, fake).item() == pytest.approx(-1.0 - 2.0)  # E f(fake) - E f(real)
    assert w.g(fake).item() == pytest.approx(1.0)


def test_gradient_penalty_interpolation_weight_is_uniform_on_0_1():
    # With real = 1 and fake = 0, the interpolate IS alpha: it must be U[0, 1], one draw per sample.
    n = 20000
    real, fake = torch.ones(n, 1, 2, 2), torch.zeros(n, 1, 2, 2)
    x_hat = interpolate(real, fake, torch.Generator().manual_seed(0))
    alpha = x_hat[:, 0, 0, 0]
    assert torch.equal(x_hat, alpha.view(n, 1, 1, 1).expand_as(x_hat))   # one alpha per sample
    assert stats.kstest(alpha.numpy(), "uniform").pvalue > 1e-3
    assert alpha.min() >= 0 and alpha.max() <= 1
    assert alpha.mean().item() == pytest.approx(0.5, abs=0.01)
    assert alpha.var().item() == pytest.approx(1 / 12, abs=0.005)


def test_gradient_penalty_value_for_a_linear_critic():
    w = torch.tensor([3.0, 4.0])                    # ||w|| = 5 -> penalty (5 - 1)^2 = 16 at every point
    critic = lambda x: x @ w
    gp = gradient_penalty(critic, torch.randn(8, 2), torch.randn(8, 2))
    assert gp.item() == pytest.approx(16.0)
    unit = torch.tensor([0.6, 0.8])                 # a 1-Lipschitz critic pays nothing
    assert gradient_penalty(lambda x: x @ unit, torch.randn(8, 2), torch.randn(8, 2)).item() == pytest.approx(0.0, abs=1e-10)


def test_gradient_penalty_reaches_critic_parameters():
    lin = torch.nn.Linear(2, 1)
    gp = gradient_penalty(lambda x: lin(x).squeeze(1), torch.randn(4, 2), torch.randn(4, 2))
    gp.backward()
    assert lin.weight.grad is not None and lin.weight.grad.abs().sum() > 0


def test_r1_penalty_value():
    a = torch.tensor([1.0, 2.0])
    real = torch.tensor([[1.0, 1.0], [0.0, 2.0]])
    critic = lambda x: (a * x ** 2).sum(1)          # grad = 2 a x
    expected = ((2 * a * real) ** 2).sum(1).mean()
    assert r1_penalty(critic, real).item() == pytest.approx(expected.item())
