"""Progressive growing of GANs (Karras et al. 2018): train at 4x4, then add a stage at a time, fading it in.

Schedule (official code ``training_schedule``: ``lod_training_kimg`` then ``lod_transition_kimg`` per resolution),
counted in real images shown to D:

    [0, S)                      4x4, stable
    [S + (k-1)(F+S), ... + F)   stage k fades in: alpha = (kimg - start) / F, from 0 to 1
    [... + F, ... + F + S)      stage k stable (alpha = 1)
    ...                         until the full resolution, which then trains for the rest of the run

S = ``stable_kimg``, F = ``fade_kimg``: 800 each in the paper (sec. 3, "we alternate 800k images of fading in and
800k of stabilising"), 600 each in the official code's default; the preset scales them down for CPU runs.
Everything is a pure function of the image count, so resuming in the middle of a fade is exact: the stage is
the checkpoint's ``structure`` (rebuilt before the weights), alpha is recomputed and also stored as a buffer.

At every new stage both networks grow and ``grow`` returns {"G", "D"}: the engine rebuilds both Adam optimisers
with fresh state (the official code resets them at each new resolution, ``reset_opt_for_new_lod``) and the EMA
re-copies G, keeping the averages of the unchanged layers.

Loss: WGAN-GP (Gulrajani et al. 2017) with lambda = 10 plus the drift term eps E[D(x)^2], eps = 0.001 (sec. A.1),
which keeps the critic's output near 0. Real images are shown at the current side: average-pooled to it, and,
during a fade, blended as the generator's output is: ``(1 - alpha) up2(pool2(x)) + alpha x`` (appendix A.1).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from ..data.base import DataInfo
from ..errors import ConfigError
from ..losses import gradient_penalty
from ..nets import build_net
from .base import StepContext, recipes
from .gan import GAN, GANOptions


@dataclass
class ProGANOptions(GANOptions):
    loss: str = "wasserstein"     # WGAN-GP (Karras et al. 2018, sec. A.1)
    z_dim: int = 512              # paper: 512-d latent on the unit hypersphere (pixel norm of z)
    gp_weight: float = 10.0       # lambda (Gulrajani et al. 2017)
    drift: float = 0.001          # eps_drift E[D(x)^2] (Karras et al. 2018, sec. A.1)
    stable_kimg: float = 600.0    # images per stabilising phase (official code 600; paper 800)
    fade_kimg: float = 600.0      # images per fade-in phase (official code 600; paper 800)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.drift < 0 or self.stable_kimg <= 0 or self.fade_kimg < 0:
            raise ConfigError(f"progan: drift >= 0, stable_kimg > 0 and fade_kimg >= 0 are needed, got "
                              f"{self.drift}, {self.stable_kimg}, {self.fade_kimg}.")


def schedule(kimg: float, stable_kimg: float, fade_kimg: float, max_stage: int) -> tuple[int, float]:
    """(stage, alpha) at ``kimg``: stage 0 for the first ``stable_kimg``, then for each next stage a fade of
    ``fade_kimg`` (alpha 0 -> 1) and a stable phase of ``stable_kimg``."""
    if kimg < stable_kimg:
        return 0, 1.0
    period = fade_kimg + stable_kimg
    stage = int((kimg - stable_kimg) // period) + 1
    if stage > max_stage:
        return max_stage, 1.0
    into = kimg - stable_kimg - (stage - 1) * period
    alpha = 1.0 if fade_kimg == 0 else min(1.0, into / fade_kimg)
    return stage, alpha


def fade_images(real: torch.Tensor, side: int, stage: int, alpha: float) -> torch.Tensor:
    """Real images [N, C, R, R] as the networks see them at ``side``: average-pooled, and during a fade blended
    with the previous side up-sampled, ``(1 - alpha) up2(pool2(x)) + alpha x`` (the generator's fade)."""
    if real.shape[-1] != side:
        real = F.avg_pool2d(real, real.shape[-1] // side)
    if stage > 0 and alpha < 1.0:
        low = F.interpolate(F.avg_pool2d(real, 2), scale_factor=2, mode="nearest")
        real = torch.lerp(low, real, alpha)
    return real


@recipes.register("progan")
class ProGAN(GAN):
    Options = ProGANOptions
    data_kinds = ("image",)

    def __init__(self, nets, opts: ProGANOptions, info: DataInfo):
        super().__init__(nets, opts, info)
        self.stage, self.alpha = 0, 1.0

    @classmethod
    def from_config(cls, cfg: Any, info: DataInfo) -> "ProGAN":
        opts: ProGANOptions = cls.parse_options(cfg.opts)
        if opts.conditional and info.num_classes < 2:
            raise ConfigError(f"Conditional training needs class labels, but {info.name!r} has none "
                              "(a folder with one subfolder per class, a .npz with 'labels', or a labelled builtin).")
        num_classes = info.num_classes if opts.conditional else 0        # G: one-hot joins z; D: projection
        g_iface = {"z_dim": opts.z_dim, "out_channels": info.channels, "resolution": info.resolution,
                   "num_classes": num_classes}
        d_iface = {"in_channels": info.channels, "resolution": info.resolution, "num_classes": num_classes}
        nets = {"G": build_net("G", cfg.G, info.kind, g_iface), "D": build_net("D", cfg.D, info.kind, d_iface)}
        for name, net in nets.items():
            if not hasattr(net, "grow_to"):
                raise ConfigError(f"progan grows its networks; {name} must be a growing network (progan), got "
                                  f"{type(net).__name__}.")
        recipe = cls(nets, opts, info)
        recipe.d_steps = cfg.d_steps
        return recipe

    @property
    def max_stage(self) -> int:
        return self.plain("G").max_stage

    # ---- growth --------------------------------------------------------------------------------------------
    def _set_stage(self, stage: int, alpha: float) -> set[str]:
        grown = set()
        for name in ("G", "D"):
            net = self.plain(name)
            if net.stage < stage:
                net.grow_to(stage)
                grown.add(name)
            net.set_alpha(alpha)
        self.stage, self.alpha = stage, alpha
        return grown

    def grow(self, ctx: StepContext) -> set[str]:
        stage, alpha = schedule(ctx.kimg, self.opts.stable_kimg, self.opts.fade_kimg, self.max_stage)
        return self._set_stage(max(stage, self.stage), alpha if stage >= self.stage else 1.0)

    def structure_state(self) -> dict:
        return {"stage": self.stage}

    def load_structure_state(self, state: dict) -> None:
        self._set_stage(int(state.get("stage", 0)), self.alpha)

    # ---- objective -----------------------------------------------------------------------------------------
    @property
    def side(self) -> int:
        return 4 * 2 ** self.stage

    def _fake(self, n: int, label: torch.Tensor | None, ctx: StepContext, device: torch.device) -> torch.Tensor:
        z = ctx.randn(n, self.opts.z_dim, device=device)
        return self.nets["G"](z, label, native=True)                              # [N, C, side, side]

    def d_loss(self, batch: dict[str, torch.Tensor], ctx: StepContext) -> dict[str, torch.Tensor]:
        real = fade_images(batch["image"], self.side, self.stage, self.alpha)    # [N, C, side, side]
        D, label = self.nets["D"], self._labels(batch)                           # label None unless conditional
        with torch.no_grad():
            fake = self._fake(len(real), label, ctx, real.device)
        real_score, fake_score = D(real, label), D(fake, label)
        wgan = fake_score.mean() - real_score.mean()                              # critic loss (WGAN)
        gp = gradient_penalty(lambda x: D(x, label), real, fake, alpha=ctx.rand(len(real), device=real.device))
        drift = real_score.square().mean()                                        # eps_drift E[D(x)^2]
        loss = wgan + self.opts.gp_weight * gp + self.opts.drift * drift
        return {"loss": loss, "D/wgan": wgan.detach(), "D/gp": gp.detach(), "D/drift": drift.detach(),
                "D/real": real_score.detach().mean(), "D/fake": fake_score.detach().mean(),
                "progan/stage": torch.tensor(float(self.stage), device=real.device),
                "progan/alpha": torch.tensor(self.alpha, device=real.device)}

    def g_loss(self, batch: dict[str, torch.Tensor], ctx: StepContext) -> dict[str, torch.Tensor]:
        label = self._labels(batch)
        fake = self._fake(len(batch["image"]), label, ctx, batch["image"].device)
        loss = -self.nets["D"](fake, label).mean()
        return {"loss": loss, "G/adv": loss.detach()}
