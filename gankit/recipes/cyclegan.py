"""CycleGAN: unpaired image-to-image translation with cycle consistency (Zhu et al. 2017).

Two translators G_ab: A -> B and G_ba: B -> A, two PatchGAN discriminators D_b (on B) and D_a (on A).
Full objective (sec. 3.3, eq. 3) with the least-squares adversarial loss of sec. 4 (Mao et al. 2017):

    L = L_GAN(G_ab, D_b) + L_GAN(G_ba, D_a) + lambda L_cyc + lambda_idt lambda L_idt
    L_cyc = E_a[|G_ba(G_ab(a)) - a|_1] + E_b[|G_ab(G_ba(b)) - b|_1]           (eq. 2), lambda = 10
    L_idt = E_b[|G_ab(b) - b|_1] + E_a[|G_ba(a) - a|_1]      (sec. 5.2, Taigman et al. 2017), lambda_idt = 0.5

The generators minimise (D(G(x)) - 1)^2; each discriminator minimises
0.5 [(D(y) - 1)^2 + D(G(x))^2] (the 1/2 "slows down the rate at which D learns", sec. 4), with G(x) taken from
a history of 50 generated images (``ImagePool``; Shrivastava et al. 2017). The identity term feeds b to G_ab,
so it needs the two domains to have the same number of channels; otherwise it is switched off with a warning.

Learning rate (sec. 4 / 7.1): constant for the first half of training, then linearly down to zero
(``lr_multiplier``). Optimisers (preset): Adam 2e-4, betas (0.5, 0.999).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from ..errors import ConfigError
from .base import StepContext, recipes
from .image_pool import ImagePool
from ..artefacts import ImageGrid
from .translation import GAN_LOSSES, TranslationRecipe, adversarial_loss, as_rgb, check_fraction, linear_decay, \
    translation_nets


@dataclass
class CycleGANOptions:
    gan_loss: str = "lsgan"         # lsgan (paper, sec. 4) | vanilla
    cycle_weight: float = 10.0      # lambda of eq. 3 (sec. 4: lambda = 10)
    identity_weight: float = 0.5    # lambda_idt, relative to cycle_weight (sec. 5.2 / authors' code: 0.5)
    pool_size: int = 50             # generated images kept per discriminator (sec. 4; 0 = no history)
    lr_decay_start: float = 0.5     # fraction of training after which the lr decays linearly to 0 (sec. 4)


@recipes.register("cyclegan")
class CycleGAN(TranslationRecipe):
    Options = CycleGANOptions
    data_kinds = ("unpaired", "paired")  # paired data works too: the pairing is simply not used
    generator_names = ("G_ab", "G_ba")
    discriminator_names = ("D_a", "D_b")
    translators = {"forward": "G_ab", "backward": "G_ba"}

    def __init__(self, nets, opts: CycleGANOptions, info, trained_direction: str = "AtoB", seed: int = 0):
        super().__init__(nets, opts, info, trained_direction)
        if opts.gan_loss not in GAN_LOSSES:
            raise ConfigError(f"cyclegan: unknown gan_loss {opts.gan_loss!r}. Valid choices: {', '.join(GAN_LOSSES)}.")
        for name in ("cycle_weight", "identity_weight"):
            if getattr(opts, name) < 0:
                raise ConfigError(f"cyclegan: {name} must be >= 0, got {getattr(opts, name)}.")
        if opts.pool_size < 0:
            raise ConfigError(f"cyclegan: pool_size must be >= 0, got {opts.pool_size}.")
        check_fraction(opts.lr_decay_start, "cyclegan: lr_decay_start")
        ca, cb = self.channels(info)
        self.use_identity = opts.identity_weight > 0 and ca == cb
        if opts.identity_weight > 0 and ca != cb:
            warnings.warn(f"cyclegan: identity loss disabled: it feeds domain B ({cb} channels) to G_ab, which reads "
                          f"{ca} channels; it needs both domains to have the same channel count.", stacklevel=2)
        # Histories of generated images, one per discriminator; their own generators keep resume exact.
        self.pool_a = ImagePool(opts.pool_size, seed=2 * seed)          # fakes shown to D_a: G_ba(b)
        self.pool_b = ImagePool(opts.pool_size, seed=2 * seed + 1)      # fakes shown to D_b: G_ab(a)

    @classmethod
    def from_config(cls, cfg: Any, info: Any) -> "CycleGAN":
        cls.check_info("cyclegan", info)
        opts = cls.parse_options(cfg.opts)
        ca, cb = cls.channels(info)
        res = info.resolution
        G_ab, D_b = translation_nets(cfg, ca, cb, res, cb, "G_ab", "D_b")   # D_b judges domain B images
        G_ba, D_a = translation_nets(cfg, cb, ca, res, ca, "G_ba", "D_a")
        return cls({"G_ab": G_ab, "G_ba": G_ba, "D_a": D_a, "D_b": D_b}, opts, info, cfg.data.direction, cfg.seed)

    # ---- objective ----------------------------------------------------------------------------------------
    def d_loss(self, batch: dict[str, torch.Tensor], ctx: StepContext) -> dict[str, torch.Tensor]:
        n, mode = self.nets, self.opts.gan_loss
        real_a, real_b = batch["a"], batch["b"]                     # [N, Ca, H, W], [N, Cb, H, W]
        with torch.no_grad():
            fake_b = self.pool_b.query(n["G_ab"](real_a))           # [N, Cb, H, W], partly from the history
            fake_a = self.pool_a.query(n["G_ba"](real_b))           # [N, Ca, H, W]
        # Each discriminator: 0.5 [(D(y) - 1)^2 + D(G(x))^2] (sec. 4).
        d_b = 0.5 * (adversarial_loss(n["D_b"](real_b), True, mode) + adversarial_loss(n["D_b"](fake_b), False, mode))
        d_a = 0.5 * (adversarial_loss(n["D_a"](real_a), True, mode) + adversarial_loss(n["D_a"](fake_a), False, mode))
        return {"loss": d_a + d_b, "d_a": d_a.detach(), "d_b": d_b.detach()}

    def g_loss(self, batch: dict[str, torch.Tensor], ctx: StepContext) -> dict[str, torch.Tensor]:
        n, o = self.nets, self.opts
        real_a, real_b = batch["a"], batch["b"]
        fake_b = n["G_ab"](real_a)                                   # [N, Cb, H, W]
        fake_a = n["G_ba"](real_b)                                   # [N, Ca, H, W]
        adv_ab = adversarial_loss(n["D_b"](fake_b), True, o.gan_loss)  # G_ab fools D_b
        adv_ba = adversarial_loss(n["D_a"](fake_a), True, o.gan_loss)
        # Cycle consistency, eq. 2: forward a -> b -> a and backward b -> a -> b.
        cycle_a = F.l1_loss(n["G_ba"](fake_b), real_a)
        cycle_b = F.l1_loss(n["G_ab"](fake_a), real_b)
        loss = adv_ab + adv_ba + o.cycle_weight * (cycle_a + cycle_b)
        out = {"g_adv_ab": adv_ab.detach(), "g_adv_ba": adv_ba.detach(),
               "cycle_a": cycle_a.detach(), "cycle_b": cycle_b.detach()}
        if self.use_identity:
            # Identity mapping, sec. 5.2: a translator should leave an image of its target domain unchanged.
            idt_b = F.l1_loss(n["G_ab"](real_b), real_b)
            idt_a = F.l1_loss(n["G_ba"](real_a), real_a)
            loss = loss + o.identity_weight * o.cycle_weight * (idt_a + idt_b)
            out.update(idt_a=idt_a.detach(), idt_b=idt_b.detach())
        return {"loss": loss, **out}

    def lr_multiplier(self, progress: float) -> float:
        return linear_decay(progress, self.opts.lr_decay_start)

    # ---- using the trained model --------------------------------------------------------------------------
    @torch.no_grad()
    def snapshot(self, fixed: dict[str, torch.Tensor], nets) -> list:
        """Six rows of n: A, G_ab(A), G_ba(G_ab(A)), then B, G_ba(B), G_ab(G_ba(B))."""
        real_a, real_b = fixed["a"], fixed["b"]
        fake_b = self.run_eval(nets["G_ab"], real_a)
        rec_a = self.run_eval(nets["G_ba"], fake_b)
        fake_a = self.run_eval(nets["G_ba"], real_b)
        rec_b = self.run_eval(nets["G_ab"], fake_a)
        c = max(real_a.shape[1], real_b.shape[1])
        rows = [real_a, fake_b, rec_a, real_b, fake_a, rec_b]
        return [ImageGrid(torch.cat([as_rgb(r, c) for r in rows]), nrow=len(real_a))]   # [6n, c, H, W]
