"""Adversarial losses, gradient penalties and reconstruction terms.

Every adversarial loss takes raw discriminator scores (logits, no sigmoid) and returns a scalar:

    d(real_score [N], fake_score [N]) -> D loss        g(fake_score [N]) -> G loss

With D(x) = sigmoid(score), log D = -softplus(-score) and log(1 - D) = -softplus(score); writing the losses
through softplus keeps them finite for any score.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

from .registry import Registry


@dataclass(frozen=True)
class AdversarialLoss:
    d: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    g: Callable[[torch.Tensor], torch.Tensor]
    doc: str


adversarial_losses: Registry[AdversarialLoss] = Registry("adversarial loss")


def _register(name: str, d, g, doc: str) -> None:
    adversarial_losses.register(name)(AdversarialLoss(d, g, doc))


# Goodfellow et al. 2014, eq. 1: D maximises log D(x) + log(1 - D(G(z))); G minimises log(1 - D(G(z))).
# The G loss saturates (vanishing gradient) when D confidently rejects fakes early in training.
_register("minimax",
          d=lambda real, fake: F.softplus(-real).mean() + F.softplus(fake).mean(),
          g=lambda fake: -F.softplus(fake).mean(),
          doc="Goodfellow et al. 2014 eq. 1, saturating G loss log(1 - D(G(z)))")

# Goodfellow et al. 2014, sec. 3: G maximises log D(G(z)) instead ("non-saturating"): same fixed point,
# strong gradients early in training.
_register("nonsaturating",
          d=lambda real, fake: F.softplus(-real).mean() + F.softplus(fake).mean(),
          g=lambda fake: F.softplus(-fake).mean(),
          doc="Goodfellow et al. 2014 sec. 3, G maximises log D(G(z))")

# Arjovsky et al. 2017, eq. 3 / Algorithm 1: the critic maximises E[f(x)] - E[f(G(z))], G maximises E[f(G(z))].
_register("wasserstein",
          d=lambda real, fake: fake.mean() - real.mean(),
          g=lambda fake: -fake.mean(),
          doc="Arjovsky et al. 2017 eq. 3 (with clipping) / Gulrajani et al. 2017 (with gradient penalty)")

# Lim & Ye 2017; Miyato et al. 2018 eq. 16-17: D minimises E[relu(1 - D(x))] + E[relu(1 + D(G(z)))].
_register("hinge",
          d=lambda real, fake: F.relu(1.0 - real).mean() + F.relu(1.0 + fake).mean(),
          g=lambda fake: -fake.mean(),
          doc="Lim & Ye 2017, Miyato et al. 2018 eq. 16-17")

# Mao et al. 2017, eq. 2 with a = 0 (fake), b = 1 (real), c = 1 (what G wants D to believe).
_register("lsgan",
          d=lambda real, fake: 0.5 * ((real - 1.0) ** 2).mean() + 0.5 * (fake ** 2).mean(),
          g=lambda fake: 0.5 * ((fake - 1.0) ** 2).mean(),
          doc="Mao et al. 2017 eq. 2, targets a=0, b=1, c=1")


def interpolate(real: torch.Tensor, fake: torch.Tensor, generator: torch.Generator | None = None,
                alpha: torch.Tensor | None = None) -> torch.Tensor:
    """x_hat = alpha * real + (1 - alpha) * fake with alpha ~ U[0, 1] per sample (Gulrajani et al. 2017, Alg. 1 l. 6).

    ``alpha`` [N] may be given (drawn by the caller, e.g. ``StepContext.rand`` so that DDP ranks draw their
    slice of one global draw); else it is drawn here from ``generator``.
    """
    alpha_shape = (real.shape[0],) + (1,) * (real.dim() - 1)  # [N, 1, 1, 1] for images, [N, 1] for vectors
    if alpha is None:
        alpha = torch.rand(alpha_shape, device=real.device, dtype=real.dtype, generator=generator)
    alpha = alpha.to(real.dtype).reshape(alpha_shape)
    return alpha * real.detach() + (1.0 - alpha) * fake.detach()


def gradient_penalty(critic: Callable[[torch.Tensor], torch.Tensor], real: torch.Tensor, fake: torch.Tensor,
                     generator: torch.Generator | None = None, alpha: torch.Tensor | None = None) -> torch.Tensor:
    """E[(||grad_x_hat D(x_hat)||_2 - 1)^2] on random interpolates (Gulrajani et al. 2017, eq. 3)."""
    x_hat = interpolate(real, fake, generator, alpha).requires_grad_(True)
    score = critic(x_hat)
    (grad,) = torch.autograd.grad(score.sum(), x_hat, create_graph=True)
    grad_norm = grad.flatten(1).norm(2, dim=1)  # [N]
    return ((grad_norm - 1.0) ** 2).mean()


def r1_penalty(critic: Callable[[torch.Tensor], torch.Tensor], real: torch.Tensor) -> torch.Tensor:
    """E[||grad_x D(x)||^2] on real data (Mescheder et al. 2018, eq. 9 without the gamma/2 factor)."""
    real = real.detach().requires_grad_(True)
    score = critic(real)
    (grad,) = torch.autograd.grad(score.sum(), real, create_graph=True)
    return grad.flatten(1).pow(2).sum(1).mean()
