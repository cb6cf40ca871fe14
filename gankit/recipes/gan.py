"""The noise-to-data GAN family: GAN, DCGAN, WGAN, WGAN-GP, LSGAN, hinge, cGAN, by configuration.

One generator G(z [, y]) and one discriminator/critic D(x [, y]); what differs between the papers is the
adversarial loss, the regulariser (weight clipping, gradient penalty, R1) and the networks, all of which are
data here (``GANOptions`` + ``NetConfig``), not branches in the trainer.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..artefacts import ImageGrid, Scatter
from ..augment import AugmentOptions, make_augment
from ..data.base import DataInfo
from ..errors import ConfigError
from ..losses import adversarial_losses, gradient_penalty, r1_penalty
from ..nets import build_net
from ..samplers import NoiseSampler
from .base import Phase, Recipe, StepContext, recipes


def batch_coupled_layer(net: nn.Module) -> str | None:
    """What in ``net`` makes one forward on [a; b] differ from forwards on a and b: a layer whose training output
    for a row depends on the other rows (batch norm, minibatch stddev: class attribute ``mixes_batch_rows``), or
    whose state advances per forward (spectral norm's power iteration). None when there is none."""
    for name, m in net.named_modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            return f"batch norm ({name})"
        if getattr(m, "mixes_batch_rows", False):
            return f"a layer mixing batch rows ({name}: {type(m).__name__})"
        parametrizations = getattr(m, "parametrizations", None)
        if parametrizations is not None and any("SpectralNorm" in type(p).__name__
                                                for plist in parametrizations.values() for p in plist):
            return f"spectral norm ({name})"
    return None


@dataclass
class GANOptions(AugmentOptions):
    # Inherited: augment (none | diffaug | ada), augment_policy, ada_target, ada_kimg, ada_interval, ada_p
    # (gankit.augment): what D sees of real and generated images, for small image datasets.
    loss: str = "nonsaturating"   # minimax | nonsaturating | wasserstein | hinge | lsgan (gankit.losses)
    z_dim: int = 100              # latent size; z ~ N(0, I)
    gp_weight: float = 0.0        # WGAN-GP lambda (Gulrajani et al. 2017 use 10); 0 = off
    clip: float = 0.0             # WGAN weight clipping c (Arjovsky et al. 2017 use 0.01); 0 = off
    r1_gamma: float = 0.0         # R1 penalty gamma on real data (Mescheder et al. 2018); 0 = off
    r1_interval: int = 16         # lazy regularisation: R1 every N steps, scaled by N (Karras et al. 2020)
    r1_phase: bool = False        # R1 as its own lazy phase (StyleGAN2's Dreg: own D step, D's Adam corrected by
                                  # c = N/(N+1)); False = added to the D loss on those steps (tuned toy presets)
    conditional: bool = False     # class-conditional G and D (Mirza & Osindero 2014); needs labelled data
    # Speed options (issue 16). Both are off by default: each changes what is computed (see docs/architecture.md,
    # "Speed options of the gan recipe").
    reuse_fakes: bool = False     # the G phase reuses the last D phase's fakes and their G graph (the PyTorch
                                  # DCGAN example's loop): one G forward fewer per step; G's loss then scores
                                  # fakes drawn before D's update, through the updated D
    joint_d_forward: bool = False  # one D forward on [real; fake] instead of two; exact up to float
                                   # reassociation, refused where D mixes rows (batch norm, minibatch stddev) or
                                   # counts forwards (spectral norm's power iteration)

    def __post_init__(self) -> None:
        super().__post_init__()
        adversarial_losses.get(self.loss)  # ConfigError naming the valid losses
        for name in ("gp_weight", "clip", "r1_gamma"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be >= 0, got {getattr(self, name)}.")
        if self.z_dim < 1 or self.r1_interval < 1:
            raise ConfigError(f"z_dim and r1_interval must be positive, got {self.z_dim} and {self.r1_interval}.")


@recipes.register("gan")
class GAN(Recipe):
    Options = GANOptions
    data_kinds = ("image", "vector")

    def __init__(self, nets: dict[str, nn.Module], opts: GANOptions, info: DataInfo):
        super().__init__(nets, opts, info)
        self.adv = adversarial_losses.get(opts.loss)
        self.num_classes = info.num_classes if opts.conditional else 0
        self.augment = make_augment(opts)     # identity unless opts.augment; ADA's p is recipe state
        self._kept_fakes: dict[tuple, torch.Tensor] = {}   # reuse_fakes: the D phase's fakes (with G's graph)

    @classmethod
    def from_config(cls, cfg: Any, info: DataInfo) -> "GAN":
        opts: GANOptions = cls.parse_options(cfg.opts)
        if opts.conditional and info.num_classes < 2:
            raise ConfigError(f"Conditional training needs class labels, but {info.name!r} has none "
                              "(use an image folder with one subfolder per class, a .npz with 'labels', or a "
                              "labelled builtin such as digits or mnist).")
        num_classes = info.num_classes if opts.conditional else 0
        if opts.augment != "none" and info.kind == "vector":
            raise ConfigError(f"augment={opts.augment!r} transforms images; {info.name!r} is vector data "
                              "(use augment=none).")
        if info.kind == "vector":
            g_iface = {"z_dim": opts.z_dim, "out_dim": info.dim, "num_classes": num_classes}
            d_iface = {"in_dim": info.dim, "num_classes": num_classes}
        else:
            g_iface = {"z_dim": opts.z_dim, "out_channels": info.channels, "resolution": info.resolution,
                       "num_classes": num_classes}
            d_iface = {"in_channels": info.channels, "resolution": info.resolution, "num_classes": num_classes}
        nets = {"G": build_net("G", cfg.G, info.kind, g_iface), "D": build_net("D", cfg.D, info.kind, d_iface)}
        if opts.joint_d_forward and (why := batch_coupled_layer(nets["D"])):
            raise ConfigError(f"joint_d_forward=true needs a discriminator whose rows are scored independently and "
                              f"that runs the same whatever the number of forwards; this D has {why} (use "
                              f"D.norm=none | layer | instance, or joint_d_forward=false).")
        recipe = cls(nets, opts, info)
        recipe.d_steps = cfg.d_steps
        return recipe

    # ---- helpers ------------------------------------------------------------------------------------------
    def _real(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return batch["x"] if self.info.kind == "vector" else batch["image"]

    def _labels(self, batch: dict[str, torch.Tensor]) -> torch.Tensor | None:
        # Generated samples take the real batch's labels, so G sees the data's class frequencies.
        return batch["label"] if self.num_classes else None

    def _generate(self, n: int, label: torch.Tensor | None, ctx: StepContext, device: torch.device) -> torch.Tensor:
        z = ctx.randn(n, self.opts.z_dim, device=device)           # [N, z_dim]: this rank's slice of the batch
        return self.nets["G"](z, label)

    def _score_real_fake(self, real: torch.Tensor, fake: torch.Tensor, label: torch.Tensor | None,
                         ctx: StepContext) -> tuple[torch.Tensor, torch.Tensor]:
        """D(aug(real)) and D(aug(fake)), [N] each: two forwards, or one on the concatenation (joint_d_forward).
        The augmentation draws its randomness per call in the same order either way."""
        D = self.nets["D"]
        real_in, fake_in = self.augment(real, ctx), self.augment(fake, ctx)
        if not self.opts.joint_d_forward:
            return D(real_in, label), D(fake_in, label)
        both_label = None if label is None else torch.cat([label, label])
        scores = D(torch.cat([real_in, fake_in]), both_label)      # [2N]
        return scores[:len(real_in)], scores[len(real_in):]

    def _key(self, real: torch.Tensor, ctx: StepContext) -> tuple:
        # The G phase's micro-batch i is the same slice of the same real batch as the D phase's micro-batch i.
        # (step, nimg) names the real batch (the G phase runs on the last one), the pointer and length its slice.
        return ctx.step, ctx.nimg, real.data_ptr(), real.shape[0]

    # ---- what the engine runs -----------------------------------------------------------------------------
    def phases(self) -> list[Phase]:
        """D x d_steps, then G (the base default); with ``r1_phase``, R1 is a lazy D phase every ``r1_interval``
        steps on the last real batch (StyleGAN2's Dreg: the engine scales it by the interval and corrects D's
        optimiser). Without it, R1 joins the D loss on those steps, times the interval.

        Measured here (tests/test_toys.py's 1200-step ring8 run, seeds 0 / 1): the fused form reached a
        high-quality share of 0.69 / 0.65, the separate phase with DCGAN's beta1 = 0.5 only 0.39 (seed 0): Adam's
        momentum makes every extra R1 step also half an adversarial step. StyleGAN2 runs beta1 = 0, where the
        separate phase is what the paper did."""
        phases = super().phases()
        if self.opts.reuse_fakes:        # G's forward in the D phase keeps its graph for the G phase
            phases[0] = dataclasses.replace(phases[0], nets=tuple(self.discriminator_names + self.generator_names))
        if self.opts.r1_gamma > 0 and self.opts.r1_phase:
            phases.insert(1, Phase("D_r1", self.r1_loss, "D", every=self.opts.r1_interval, batch="last",
                                   log_grad_norm=False))
        return phases

    # ---- objective ----------------------------------------------------------------------------------------
    def d_loss(self, batch: dict[str, torch.Tensor], ctx: StepContext) -> dict[str, torch.Tensor]:
        real = self._real(batch)                                   # [N, C, H, W] or [N, D]
        label = self._labels(batch)
        D = self.nets["D"]
        if self.opts.reuse_fakes:
            # G is trainable in this phase (phases() lists it), so its graph is kept for the G phase; D's loss
            # sees the fakes detached, so no gradient reaches G here.
            kept = self._generate(real.shape[0], label, ctx, real.device)
            key = self._key(real, ctx)     # only this batch's micro-batches are kept (earlier D repeats go)
            self._kept_fakes = {k: v for k, v in self._kept_fakes.items() if k[:2] == key[:2]}
            self._kept_fakes[key] = kept
            fake = kept.detach()
        else:
            with torch.no_grad():
                fake = self._generate(real.shape[0], label, ctx, real.device)
        real_score, fake_score = self._score_real_fake(real, fake, label, ctx)   # [N], [N]; augment = identity unless set
        adv = self.adv.d(real_score, fake_score)
        out = {"D/adv": adv.detach(), "D/real": real_score.detach().mean(), "D/fake": fake_score.detach().mean()}
        out.update(self.augment.observe(real_score, ctx))          # ADA: r_t and p ({} otherwise)
        loss = adv
        if self.opts.gp_weight > 0:
            gp = gradient_penalty(lambda x: D(self.augment(x, ctx), label), real, fake, alpha=ctx.rand(len(real), device=real.device))
            loss = loss + self.opts.gp_weight * gp
            out["D/gp"] = gp.detach()
        if self.opts.r1_gamma > 0 and not self.opts.r1_phase and ctx.step % self.opts.r1_interval == 0:
            # Fused lazy R1: times the interval, so the average strength does not depend on it.
            r1 = self.r1_loss(batch, ctx)
            loss = loss + self.opts.r1_interval * r1["loss"]
            out["D/r1"] = r1["D/r1"]
        out["loss"] = loss
        return out

    def r1_loss(self, batch: dict[str, torch.Tensor], ctx: StepContext) -> dict[str, torch.Tensor]:
        """R1 = gamma/2 E_real ||grad_x D(x)||^2 (Mescheder et al. 2018, eq. 9); the engine multiplies the
        phase's loss by its interval."""
        real, label = self._real(batch), self._labels(batch)
        r1 = r1_penalty(lambda x: self.nets["D"](self.augment(x, ctx), label), real)
        return {"loss": 0.5 * self.opts.r1_gamma * r1, "D/r1": r1.detach()}

    def g_loss(self, batch: dict[str, torch.Tensor], ctx: StepContext) -> dict[str, torch.Tensor]:
        real = self._real(batch)
        label = self._labels(batch)
        fake = self._kept_fakes.pop(self._key(real, ctx), None) if self.opts.reuse_fakes else None
        if fake is None:        # no D phase ran on this batch this step (or reuse_fakes is off): fresh latents
            fake = self._generate(real.shape[0], label, ctx, real.device)
        loss = self.adv.g(self.nets["D"](self.augment(fake, ctx), label))
        return {"loss": loss, "G/adv": loss.detach()}

    @torch.no_grad()
    def after_d_step(self) -> None:
        # Arjovsky et al. 2017, Algorithm 1 line 7: w <- clip(w, -c, c) after every critic update.
        if self.opts.clip > 0:
            for p in self.nets["D"].parameters():
                p.clamp_(-self.opts.clip, self.opts.clip)

    # ---- using the model ----------------------------------------------------------------------------------
    def default_labels(self, n: int) -> torch.Tensor | None:
        """Labels 0, 1, ..., C-1, 0, 1, ...: a grid with C columns shows one class per column."""
        return torch.arange(n) % self.num_classes if self.num_classes else None

    def fixed_inputs(self, n: int, seed: int, dataset: Any) -> dict[str, Any]:
        z = torch.randn(n, self.opts.z_dim, generator=torch.Generator().manual_seed(seed))
        fixed: dict[str, Any] = {"z": z}
        if self.num_classes:
            fixed["label"] = self.default_labels(n)
        if self.info.kind == "vector" and hasattr(dataset, "get_batch"):   # real points under the scatter
            fixed["real"] = dataset.get_batch(torch.arange(min(len(dataset), 2000)))["x"].cpu()
        return fixed

    @torch.no_grad()
    def snapshot(self, fixed: dict[str, Any], nets: nn.ModuleDict) -> list:
        G = nets["G"]
        device = next(G.parameters()).device
        label = fixed.get("label")
        out = G(fixed["z"].to(device), None if label is None else label.to(device))
        if self.info.kind == "vector":
            return [Scatter(out.cpu(), real=fixed.get("real"), centers=self.info.extras.get("centers"),
                            title=f"{self.info.name}")]
        nrow = self.num_classes if self.num_classes else max(1, int(len(out) ** 0.5))
        return [ImageGrid(out, nrow=nrow)]

    def samplers(self, nets: nn.ModuleDict | None = None) -> dict[str, NoiseSampler]:
        G = (nets if nets is not None else self.nets)["G"]
        output = "points" if self.info.kind == "vector" else "image"
        return {"default": NoiseSampler(G, output, context={"centers": self.info.extras.get("centers")})}
