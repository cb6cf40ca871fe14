"""pix2pix: paired image-to-image translation with a conditional GAN (Isola et al. 2017).

Objective (sec. 3.1, eq. 1-4): G* = arg min_G max_D L_cGAN(G, D) + lambda L_L1(G), lambda = 100, with

    L_cGAN = E[log D(x, y)] + E[log(1 - D(x, G(x)))]      x = input ('a'), y = target ('b')
    L_L1   = E[|y - G(x)|_1]

D is conditioned on the input by channel concatenation (a PatchGAN over [x, y], sec. 3.2.2); its objective is
divided by 2 "to slow down the rate at which D learns relative to G" (sec. 3.3). The generator maximises
log D(x, G(x)) (non-saturating, sec. 3.3). Noise comes only from dropout in the U-Net decoder (sec. 3.1).
``gan_loss = lsgan`` swaps in the least-squares objective (Mao et al. 2017), an option of the authors' code.

Networks: ``G`` (U-Net, in = channels of a, out = channels of b) and ``D`` (PatchGAN, in = channels of a + b).
Optimisers (preset): Adam 2e-4, betas (0.5, 0.999) (sec. 3.3).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from .base import StepContext, recipes
from ..artefacts import ImageGrid
from .translation import GAN_LOSSES, TranslationRecipe, adversarial_loss, as_rgb, check_fraction, linear_decay, \
    translation_nets
from ..errors import ConfigError


@dataclass
class Pix2PixOptions:
    gan_loss: str = "vanilla"       # vanilla (paper, eq. 1) | lsgan (Mao et al. 2017)
    l1_weight: float = 100.0        # lambda of eq. 4 (sec. 4: lambda = 100)
    lr_decay_start: float = 1.0     # fraction of training after which the lr decays linearly to 0 (1 = constant)


@recipes.register("pix2pix")
class Pix2Pix(TranslationRecipe):
    Options = Pix2PixOptions
    data_kinds = ("paired",)
    generator_names = ("G",)
    discriminator_names = ("D",)
    translators = {"forward": "G"}  # one direction only: the one it was trained in

    def __init__(self, nets, opts: Pix2PixOptions, info, trained_direction: str = "AtoB"):
        super().__init__(nets, opts, info, trained_direction)
        if opts.gan_loss not in GAN_LOSSES:
            raise ConfigError(f"pix2pix: unknown gan_loss {opts.gan_loss!r}. Valid choices: {', '.join(GAN_LOSSES)}.")
        if opts.l1_weight < 0:
            raise ConfigError(f"pix2pix: l1_weight must be >= 0, got {opts.l1_weight}.")
        check_fraction(opts.lr_decay_start, "pix2pix: lr_decay_start")

    @classmethod
    def from_config(cls, cfg: Any, info: Any) -> "Pix2Pix":
        cls.check_info("pix2pix", info)
        opts = cls.parse_options(cfg.opts)
        ca, cb = cls.channels(info)
        G, D = translation_nets(cfg, ca, cb, info.resolution, ca + cb, "G", "D")
        return cls({"G": G, "D": D}, opts, info, cfg.data.direction)

    # ---- objective ----------------------------------------------------------------------------------------
    def d_loss(self, batch: dict[str, torch.Tensor], ctx: StepContext) -> dict[str, torch.Tensor]:
        G, D, mode = self.nets["G"], self.nets["D"], self.opts.gan_loss
        real_a, real_b = batch["a"], batch["b"]                       # [N, Ca, H, W], [N, Cb, H, W]
        with torch.no_grad():
            fake_b = G(real_a)                                        # [N, Cb, H, W]; no graph into G
        real_logits = D(torch.cat([real_a, real_b], dim=1))          # [N, 1, h, w]: D(x, y)
        fake_logits = D(torch.cat([real_a, fake_b], dim=1))          # D(x, G(x))
        loss_real = adversarial_loss(real_logits, True, mode)
        loss_fake = adversarial_loss(fake_logits, False, mode)
        # Halved D objective (sec. 3.3).
        return {"loss": 0.5 * (loss_real + loss_fake), "d_real": loss_real.detach(), "d_fake": loss_fake.detach()}

    def g_loss(self, batch: dict[str, torch.Tensor], ctx: StepContext) -> dict[str, torch.Tensor]:
        G, D = self.nets["G"], self.nets["D"]
        real_a, real_b = batch["a"], batch["b"]
        fake_b = G(real_a)                                            # [N, Cb, H, W]
        adv = adversarial_loss(D(torch.cat([real_a, fake_b], dim=1)), True, self.opts.gan_loss)
        l1 = F.l1_loss(fake_b, real_b)                                # eq. 3, mean over pixels
        return {"loss": adv + self.opts.l1_weight * l1, "g_adv": adv.detach(), "l1": l1.detach()}

    def lr_multiplier(self, progress: float) -> float:
        return linear_decay(progress, self.opts.lr_decay_start)

    # ---- using the trained model --------------------------------------------------------------------------
    @torch.no_grad()
    def snapshot(self, fixed: dict[str, torch.Tensor], nets) -> list:
        """Three rows of n: input a, output G(a), target b (grayscale shown as RGB when the sides differ)."""
        real_a, real_b = fixed["a"], fixed["b"]
        fake_b = self.run_eval(nets["G"], real_a)
        c = max(real_a.shape[1], real_b.shape[1])
        grid = torch.cat([as_rgb(real_a, c), as_rgb(fake_b, c), as_rgb(real_b, c)])  # [3n, c, H, W]
        return [ImageGrid(grid, nrow=len(real_a))]
