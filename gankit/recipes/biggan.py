"""BigGAN (Brock et al. 2019, "Large scale GAN training for high fidelity natural image synthesis").

The GAN recipe (hinge loss, class-conditional projection D, D x 2 per G step) plus what BigGAN adds to the
objective and to sampling:

- orthogonal regularisation of G's weights in the off-diagonal form (sec. 3.1, eq. 3):
  ``R_beta(W) = beta || W W^T (.) (1 - I) ||_F^2`` over every G weight of two or more dimensions except the
  shared class embedding (as BigGAN-PyTorch's ``utils.ortho`` blacklist), added to the G loss;
- the truncation trick with resampling (sec. 3.1): latents are drawn from N(0, I) and every entry with
  ``|z| > threshold`` is drawn again, until none is left (a truncated normal; ``gankit sample --truncation T``).
  Smaller thresholds trade variety for fidelity (fig. 2, fig. 17).

The networks (shared embedding, hierarchical z, self-attention, BigGAN-deep) are ``gankit.nets.resgan``'s
``biggan``; EMA with a start delay, orthogonal init, TTUR and gradient accumulation are configuration (the
``biggan`` preset). With batch norm in G, ``grad_accum=N`` is *not* one batch N times larger: batch norm
normalises each micro-batch with its own statistics (BigGAN-PyTorch's ``num_G_accumulations`` has the same
property), only the gradient is the large batch's.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import torch
from torch import nn

from ..errors import ConfigError
from ..nets.resgan import orthogonal_penalty
from ..samplers import NoiseSampler
from .base import StepContext, recipes
from .gan import GAN, GANOptions

MAX_RESAMPLING_ROUNDS = 1000   # P(|z| > 0.05) ~ 0.96 per entry: 1000 rounds leave ~1e-18 per entry unresolved


def truncated_normal(shape: Sequence[int], threshold: float, generator: torch.Generator | None = None
                     ) -> torch.Tensor:
    """N(0, 1) samples with every entry |z| > threshold resampled until none is (BigGAN's truncation trick).

    Resampling (not clamping) gives the normal distribution truncated to [-threshold, threshold]: values at
    the bound are as rare as anywhere near it. Entries are redrawn from ``generator`` in a fixed order, so a
    seed gives the same latent every time.
    """
    if not threshold > 0:
        raise ConfigError(f"--truncation is BigGAN's threshold on |z| and must be > 0, got {threshold}.")
    z = torch.randn(*shape, generator=generator)
    for _ in range(MAX_RESAMPLING_ROUNDS):
        outside = z.abs() > threshold
        count = int(outside.sum())
        if count == 0:
            return z
        z[outside] = torch.randn(count, generator=generator)
    raise ConfigError(f"--truncation {threshold}: could not draw latents within the threshold; use a larger one.")


def truncated_latents(n: int | None, z_dim: int, threshold: float, seed: int = 0,
                      seeds: Sequence[int] | None = None) -> torch.Tensor:
    """[N, z_dim] truncated latents: one seeded generator for ``n`` of them, or one per entry of ``seeds``
    (latent s never depends on which other seeds are asked for, as ``gankit.sample.latents_for_seeds``)."""
    if seeds is not None:
        return torch.stack([truncated_normal((z_dim,), threshold, torch.Generator().manual_seed(int(s)))
                            for s in seeds])
    if n is None or n < 1:
        raise ConfigError("Give a positive number of samples (n) or a list of seeds.")
    return truncated_normal((n, z_dim), threshold, torch.Generator().manual_seed(int(seed)))


class TruncatedNoiseSampler(NoiseSampler):
    """A noise sampler with BigGAN's truncation trick: ``truncation`` = the threshold on |z| (None = off).

    Without ``truncation`` it draws exactly what ``NoiseSampler`` draws (same seeds, same images).
    """

    options = ("label", "truncation")

    def __init__(self, generator: nn.Module, output: str = "image", context: dict | None = None,
                 truncation: float | None = None):
        super().__init__(generator, output, context)
        self.truncation = truncation

    def __call__(self, n: int, seed: int) -> torch.Tensor:
        return self.draw(n=n, seed=seed, truncation=self.truncation)

    def draw(self, n: int | None = None, seed: int = 0, seeds: Sequence[int] | None = None, label: int | None = None,
             truncation: float | None = None) -> torch.Tensor:
        if truncation is None:
            return super().draw(n=n, seed=seed, seeds=seeds, label=label)
        from ..sample import default_labels, generate
        z = truncated_latents(n, self.G.z_dim, truncation, seed=seed, seeds=seeds)
        return generate(self.G, z, default_labels(self.G, len(z), label))

    def interpolate(self, seed_a: int, seed_b: int, steps: int, mode: str, label: int | None = None,
                    truncation: float | None = None) -> torch.Tensor:
        if truncation is not None:
            raise ConfigError("--truncation applies to `gankit sample`; interpolation uses plain N(0, I) latents.")
        return super().interpolate(seed_a, seed_b, steps, mode, label=label)


@dataclass
class BigGANOptions(GANOptions):
    loss: str = "hinge"            # Brock et al. 2019, sec. 3 (after Lim & Ye 2017 / Miyato et al. 2018)
    z_dim: int = 120               # BigGAN 128 px: 120 = 6 chunks of 20 (the preset uses 128 at 32 px: 4 x 32)
    conditional: bool = True       # class-conditional (shared embedding in G, projection in D)
    ortho_beta: float = 1e-4       # orthogonal regularisation beta (sec. 3.1); 0 = off

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.ortho_beta < 0:
            raise ConfigError(f"ortho_beta must be >= 0, got {self.ortho_beta}.")


@recipes.register("biggan")
class BigGAN(GAN):
    Options = BigGANOptions
    data_kinds = ("image",)

    def orthogonal_regularisation(self) -> torch.Tensor:
        """sum_W ||W W^T (.) (1 - I)||_F^2 over G's weights with >= 2 dimensions, the shared embedding excepted."""
        G = self.plain("G")
        shared = getattr(G, "shared", None)
        exempt = {id(p) for p in shared.parameters()} if shared is not None else set()
        terms = [orthogonal_penalty(p) for p in G.parameters() if p.dim() >= 2 and id(p) not in exempt]
        if not terms:
            return torch.zeros(())
        return torch.stack(terms).sum()

    def g_loss(self, batch: dict[str, torch.Tensor], ctx: StepContext) -> dict[str, torch.Tensor]:
        out = super().g_loss(batch, ctx)
        if self.opts.ortho_beta > 0:
            ortho = self.orthogonal_regularisation()
            out["loss"] = out["loss"] + self.opts.ortho_beta * ortho
            out["G/ortho"] = ortho.detach()
        return out

    def samplers(self, nets: nn.ModuleDict | None = None) -> dict[str, Any]:
        G = (nets if nets is not None else self.nets)["G"]
        return {"default": TruncatedNoiseSampler(G, "image")}
