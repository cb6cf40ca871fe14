"""Super-resolution: SRResNet, SRGAN (Ledig et al. 2017) and ESRGAN (Wang et al. 2018) on superres data
(``{'a': LR, 'b': HR}``, gankit.data.restoration), and the "upscale" sampler kind.

Objectives, with x = LR input, y = HR target, G(x) = SR output:

    srresnet   L = MSE(G(x), y)                                    Ledig et al. eq. 4 (``pixel_loss = l1``: ESRGAN's
                                                                   PSNR-oriented pre-training, Wang et al. sec. 4.1)
    srgan      L_G = l_content + 1e-3 l_adv,  l_adv = -log D(G(x))  (eq. 3, 6: the non-saturating G loss)
               l_content = MSE(s phi(G(x)), s phi(y)), phi = VGG-19 relu5_4, s = 1/12.75 (SRGAN-VGG54, eq. 5 and
               sec. 3.2), when ``vgg_weights`` names a VGG-19 file; otherwise the pixel MSE (the paper's
               SRGAN-MSE, table 1), with a warning
               L_D = -log D(y) - log(1 - D(G(x)))                  (eq. 2)
    esrgan     L_G = L_percep + 5e-3 L_G^Ra + 1e-2 L_1              (eq. 3; Wang et al. sec. 3.3)
               L_percep = |phi(G(x)) - phi(y)|_1 with phi = VGG-19 conv5_4, before the activation; dropped (L_1
               and L_G^Ra only) without a VGG-19 file, with a warning
               relativistic average D (eq. 1-2): D_Ra(a, b) = sigmoid(C(a) - E[C(b)]),
               L_D^Ra = -E_y[log D_Ra(y, G(x))] - E_x[log(1 - D_Ra(G(x), y))]
               L_G^Ra = -E_y[log(1 - D_Ra(y, G(x)))] - E_x[log D_Ra(G(x), y)]
               each halved, as in the authors' code (codes/models/SRGAN_model.py)

Pre-training: ``pretrain_kimg > 0`` runs a G-only phase ``G_pre`` on the pixel loss for that many kimg before the
adversarial phases start (SRGAN initialises from SRResNet, ESRGAN from its PSNR-oriented RRDB net); or train a
``srresnet`` run first and start the GAN from it with ``--init-from RUN`` (network G must be the same).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any, ClassVar, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..artefacts import ImageGrid
from ..errors import ConfigError
from ..nets import build_net, generators
from ..optim import OptimizerSpec
from ..samplers import EvalRequest, ExportSpec, Sampler, sampler_kinds
from .base import Phase, Recipe, StepContext, check_data_kind, recipes
from .translation import adversarial_loss, as_rgb, check_fraction, eval_mode

PIXEL_LOSSES = ("mse", "l1")
CONTENTS = ("vgg", "mse")


def pixel_loss(pred: torch.Tensor, target: torch.Tensor, kind: str) -> torch.Tensor:
    return F.mse_loss(pred, target) if kind == "mse" else F.l1_loss(pred, target)


def relativistic_d_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """L_D^Ra / 2 (Wang et al. 2018 eq. 2, halved as in the authors' code) from raw C(y) [N] and C(G(x)) [N]."""
    ones, zeros = torch.ones_like(real_logits), torch.zeros_like(fake_logits)
    return 0.5 * (F.binary_cross_entropy_with_logits(real_logits - fake_logits.mean(), ones)
                  + F.binary_cross_entropy_with_logits(fake_logits - real_logits.mean(), zeros))


def relativistic_g_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """L_G^Ra / 2 (Wang et al. 2018 eq. 3's adversarial term): the symmetric form, real made 'less real'."""
    ones, zeros = torch.ones_like(fake_logits), torch.zeros_like(real_logits)
    return 0.5 * (F.binary_cross_entropy_with_logits(real_logits - fake_logits.mean(), zeros)
                  + F.binary_cross_entropy_with_logits(fake_logits - real_logits.mean(), ones))


def step_schedule(progress: float, step_at: float) -> float:
    """1 until ``step_at`` (a fraction of training), then 0.1 (SRGAN: 1e-4, then 1e-5 for the second half)."""
    return 0.1 if step_at < 1.0 and progress >= step_at else 1.0


@dataclass
class SRResNetOptions:
    pixel_loss: str = "mse"         # mse (Ledig et al. eq. 4) | l1 (ESRGAN's PSNR-oriented model, sec. 4.1)
    lr_step: float = 1.0            # fraction of training after which the lr drops x 0.1 (1 = never)
    lpips_weights: str = ""         # torchvision vgg16 state dict (path) for the lpips metric (evaluation only)


@dataclass
class SRGANOptions:
    content: str = "vgg"            # vgg (SRGAN-VGG54) | mse (SRGAN-MSE); vgg without vgg_weights -> mse + warning
    vgg_weights: str = ""           # VGG-19 weights in torchvision's layout (path); nothing is downloaded
    vgg_layer: str = "relu5_4"      # phi_5,4 after activation (sec. 2.2.1)
    vgg_scale: float = 1 / 12.75    # VGG feature maps rescaled by 1/12.75 (sec. 3.2)
    adv_weight: float = 1e-3        # eq. 3
    pixel_loss: str = "mse"         # loss of the G_pre phase (SRResNet's)
    pretrain_kimg: float = 0.0      # G-only pixel-loss phase first (0 = none: --init-from an srresnet run)
    lr_step: float = 1.0            # sec. 3.2: 1e-4, then 1e-5 (lr_step 0.5 of the adversarial run)
    lpips_weights: str = ""         # torchvision vgg16 state dict (path) for the lpips metric (evaluation only)


@dataclass
class ESRGANOptions:
    vgg_weights: str = ""           # VGG-19 weights in torchvision's layout (path)
    vgg_layer: str = "conv5_4"      # before activation (sec. 3.3)
    perceptual_weight: float = 1.0  # the authors' code: feature_weight 1, L1 on features
    adv_weight: float = 5e-3        # lambda (sec. 4.1)
    l1_weight: float = 1e-2         # eta (sec. 4.1)
    pixel_loss: str = "l1"          # loss of the G_pre phase (the PSNR-oriented RRDB net, sec. 4.1)
    pretrain_kimg: float = 0.0
    lr_step: float = 1.0            # sec. 4.1 halves the lr at 50k, 100k, 200k, 300k iterations; one x0.1 step here
    lpips_weights: str = ""         # torchvision vgg16 state dict (path) for the lpips metric (evaluation only)


class SuperResRecipe(Recipe):
    """What the three share: networks from the data's scale, pixel-loss phase, sampler, snapshots."""

    data_kinds: ClassVar[tuple[str, ...]] = ("superres",)
    generator_names = ("G",)
    discriminator_names: ClassVar[tuple[str, ...]] = ()
    sampler_kind = "upscale"
    uses_d: ClassVar[bool] = False

    def __init__(self, nets: dict[str, nn.Module], opts: Any, info: Any):
        super().__init__(nets, opts, info)
        self.scale = int(info.extras["scale"])
        if opts.pixel_loss not in PIXEL_LOSSES:
            raise ConfigError(f"pixel_loss must be one of {', '.join(PIXEL_LOSSES)}, got {opts.pixel_loss!r}.")
        check_fraction(opts.lr_step, "lr_step")
        self._vgg: list[nn.Module] = []       # a list, so the frozen extractor is no submodule (not checkpointed)

    @classmethod
    def from_config(cls, cfg: Any, info: Any) -> "SuperResRecipe":
        name = cfg.recipe
        check_data_kind(cls, name, info)
        opts = cls.parse_options(cfg.opts)
        from ..metrics.restoration import check_lpips_weights
        check_lpips_weights(cfg.metrics, opts.lpips_weights)          # refused before training, not at the first eval
        if "scale" not in info.extras:
            raise ConfigError(f"{name}: the data has no scale (superres data made by gankit.data.restoration).")
        if getattr(generators.get(cfg.G.image), "kind", None) != "upscaler":
            valid = [n for n, c in generators.items() if getattr(c, "kind", None) == "upscaler"]
            raise ConfigError(f"G.image = {cfg.G.image!r} is not an upscaler. Valid choices: {', '.join(valid)}.")
        c = info.channels
        nets = {"G": build_net("G", cfg.G, info.kind, {"in_channels": c, "out_channels": c,
                                                     "scale": int(info.extras["scale"])})}
        if cls.uses_d:
            nets["D"] = build_net("D", cfg.D, info.kind, {"in_channels": c, "resolution": info.resolution})
        return cls(nets, opts, info)

    # ---- objective ----------------------------------------------------------------------------------------
    def optimizers(self) -> dict[str, OptimizerSpec]:
        specs = {"G": OptimizerSpec(("G",), schedule=self.lr_multiplier)}
        if self.uses_d:
            specs["D"] = OptimizerSpec(("D",), schedule=self.lr_multiplier)
        return specs

    def phases(self) -> list[Phase]:
        return [Phase("G", self.pixel_phase, "G", batch="new")]

    def lr_multiplier(self, progress: float) -> float:
        return step_schedule(progress, self.opts.lr_step)

    def pixel_phase(self, batch: dict[str, torch.Tensor], ctx: StepContext) -> dict[str, torch.Tensor]:
        sr = self.nets["G"](batch["a"])                                   # [N, C, sh, sw]
        loss = pixel_loss(sr, batch["b"], self.opts.pixel_loss)
        return {"loss": loss, "pixel": loss.detach()}

    def feature_net(self, device: torch.device) -> nn.Module | None:
        """The frozen VGG-19 extractor (loaded by ``phases()``, before training), on ``device``; None without one."""
        if not self._vgg:
            return None
        if next(self._vgg[0].buffers()).device != device:
            self._vgg[0] = self._vgg[0].to(device)
        return self._vgg[0]

    def load_feature_net(self, needed_for: str) -> bool:
        """Load ``opts.vgg_weights`` (a ConfigError now, before the run starts, if it is not a VGG-19 file)."""
        from ..nets.vgg import VGG19Features
        if not self.opts.vgg_weights:
            warnings.warn(f"{type(self).__name__}: no VGG-19 weights given (--set vgg_weights=PATH to torchvision's "
                          f"vgg19 file): {needed_for}.", stacklevel=3)
            return False
        if not self._vgg:
            self._vgg.append(VGG19Features.from_file(self.opts.vgg_weights, self.opts.vgg_layer))
        return True

    def adversarial_phases(self) -> list[Phase]:
        pre = self.opts.pretrain_kimg
        if pre < 0:
            raise ConfigError(f"pretrain_kimg must be >= 0, got {pre}.")
        phases = [Phase("G_pre", self.pixel_phase, "G", batch="new", stop_kimg=pre)] if pre > 0 else []
        return phases + [Phase("D", self.d_loss, "D", repeat=self.d_steps, batch="new", start_kimg=pre),
                         Phase("G", self.g_loss, "G", batch="last", start_kimg=pre)]

    # ---- using the trained model --------------------------------------------------------------------------
    def fixed_inputs(self, n: int, seed: int, dataset: Any) -> dict[str, torch.Tensor]:
        g = torch.Generator().manual_seed(seed)
        idx = torch.randperm(len(dataset), generator=g)[: min(n, len(dataset))]
        batch = dataset.get_batch(idx) if hasattr(dataset, "get_batch") else \
            {k: torch.stack([dataset[int(i)][k] for i in idx]) for k in ("a", "b")}
        return {"a": batch["a"].detach().cpu().clone(), "b": batch["b"].detach().cpu().clone()}

    @torch.no_grad()
    def snapshot(self, fixed: dict[str, torch.Tensor], nets: nn.ModuleDict) -> list:
        """Rows of n: LR (nearest, at HR size), bicubic, SR output, HR target."""
        lr, hr = fixed["a"], fixed["b"]
        sr = Upscaler(self, nets)(lr)
        nearest = F.interpolate(lr, scale_factor=self.scale, mode="nearest")
        bicubic = F.interpolate(lr, scale_factor=self.scale, mode="bicubic", align_corners=False).clamp(-1, 1)
        grid = torch.cat([as_rgb(x, lr.shape[1]) for x in (nearest, bicubic, sr, hr)])
        return [ImageGrid(grid, nrow=len(lr))]

    def samplers(self, nets: nn.ModuleDict | None = None) -> dict[str, "Upscaler"]:
        return {"default": Upscaler(self, nets if nets is not None else self.nets)}


@recipes.register("srresnet")
class SRResNetRecipe(SuperResRecipe):
    """The PSNR-oriented model: pixel loss only (Ledig et al. 2017, sec. 2.2.1 / 3.2)."""
    Options = SRResNetOptions


class _AdversarialSR(SuperResRecipe):
    discriminator_names = ("D",)
    uses_d = True

    def phases(self) -> list[Phase]:
        return self.adversarial_phases()


@recipes.register("srgan")
class SRGANRecipe(_AdversarialSR):
    """SRGAN (Ledig et al. 2017): VGG content loss + 1e-3 x non-saturating adversarial loss."""
    Options = SRGANOptions

    def __init__(self, nets, opts: SRGANOptions, info):
        super().__init__(nets, opts, info)
        if opts.content not in CONTENTS:
            raise ConfigError(f"srgan: content must be one of {', '.join(CONTENTS)}, got {opts.content!r}.")
        self.content_used = "mse" if opts.content == "mse" else "vgg (weights loaded before training)"

    def phases(self) -> list[Phase]:
        if self.opts.content == "vgg":
            if not self.load_feature_net("the content loss falls back to the pixel MSE (SRGAN-MSE, Ledig et al. "
                                         "2017 table 1)"):
                self.content_used = "mse (no VGG-19 weights)"
        return super().phases()

    def content_loss(self, sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
        vgg = self.feature_net(sr.device) if self.opts.content == "vgg" else None
        if vgg is None:
            return F.mse_loss(sr, hr)
        s = self.opts.vgg_scale
        return F.mse_loss(vgg(sr) * s, vgg(hr).detach() * s)          # eq. 5 with rescaled feature maps

    def d_loss(self, batch: dict[str, torch.Tensor], ctx: StepContext) -> dict[str, torch.Tensor]:
        G, D = self.nets["G"], self.nets["D"]
        with torch.no_grad():
            sr = G(batch["a"])
        real = adversarial_loss(D(batch["b"]), True, "vanilla")         # -log D(y)
        fake = adversarial_loss(D(sr), False, "vanilla")                # -log(1 - D(G(x)))
        return {"loss": real + fake, "d_real": real.detach(), "d_fake": fake.detach()}

    def g_loss(self, batch: dict[str, torch.Tensor], ctx: StepContext) -> dict[str, torch.Tensor]:
        sr = self.nets["G"](batch["a"])
        content = self.content_loss(sr, batch["b"])
        adv = adversarial_loss(self.nets["D"](sr), True, "vanilla")     # -log D(G(x)), eq. 6
        return {"loss": content + self.opts.adv_weight * adv, "content": content.detach(), "g_adv": adv.detach()}


@recipes.register("esrgan")
class ESRGANRecipe(_AdversarialSR):
    """ESRGAN (Wang et al. 2018): perceptual loss before activation + relativistic average GAN + L1."""
    Options = ESRGANOptions

    def phases(self) -> list[Phase]:
        self.load_feature_net("the perceptual term is dropped (L1 + relativistic adversarial only)")
        return super().phases()

    def d_loss(self, batch: dict[str, torch.Tensor], ctx: StepContext) -> dict[str, torch.Tensor]:
        G, D = self.nets["G"], self.nets["D"]
        with torch.no_grad():
            sr = G(batch["a"])
        real_logits, fake_logits = D(batch["b"]), D(sr)                 # C(y), C(G(x)): [N]
        loss = relativistic_d_loss(real_logits, fake_logits)
        return {"loss": loss, "d_real": real_logits.detach().mean(), "d_fake": fake_logits.detach().mean()}

    def g_loss(self, batch: dict[str, torch.Tensor], ctx: StepContext) -> dict[str, torch.Tensor]:
        G, D = self.nets["G"], self.nets["D"]
        lr, hr = batch["a"], batch["b"]
        sr = G(lr)
        with torch.no_grad():
            real_logits = D(hr)                                         # detached, as in the authors' code
        adv = relativistic_g_loss(real_logits, D(sr))
        l1 = F.l1_loss(sr, hr)
        vgg = self.feature_net(sr.device)
        percep = F.l1_loss(vgg(sr), vgg(hr).detach()) if vgg is not None else sr.new_zeros(())
        loss = self.opts.perceptual_weight * percep + self.opts.adv_weight * adv + self.opts.l1_weight * l1
        return {"loss": loss, "percep": percep.detach(), "g_adv": adv.detach(), "l1": l1.detach()}


# ---- the sampler -----------------------------------------------------------------------------------------------

def tiled(fn, lr: torch.Tensor, scale: int, tile: int, overlap: int) -> torch.Tensor:
    """``fn`` (LR [N, C, h, w] -> [N, C', s h, s w]) over tiles of ``tile`` LR pixels, each run with ``overlap``
    pixels of context on every side that exists (cut at the image border, where the whole-image run has its
    own padding), keeping only the tile's own output: memory is bounded by (tile + 2 overlap)^2, and the result
    equals the whole-image run wherever the network's receptive field fits in the context."""
    n, _, h, w = lr.shape
    if tile <= 0 or (h <= tile and w <= tile):
        return fn(lr)
    out = None
    for y0 in range(0, h, tile):
        for x0 in range(0, w, tile):
            y1, x1 = min(y0 + tile, h), min(x0 + tile, w)
            cy0, cx0, cy1, cx1 = max(0, y0 - overlap), max(0, x0 - overlap), min(h, y1 + overlap), min(w, x1 + overlap)
            part = fn(lr[..., cy0:cy1, cx0:cx1])                         # [N, C', s (cy1-cy0), s (cx1-cx0)]
            if out is None:
                out = part.new_zeros(n, part.shape[1], h * scale, w * scale)
            oy, ox = (y0 - cy0) * scale, (x0 - cx0) * scale
            out[..., y0 * scale:y1 * scale, x0 * scale:x1 * scale] = \
                part[..., oy:oy + (y1 - y0) * scale, ox:ox + (x1 - x0) * scale]
    return out


class _Clamped(nn.Module):
    """``net(x).clamp(-1, 1)``: what the upscaler returns, as one traceable module."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).clamp(-1, 1)


@sampler_kinds.register("upscale")
class Upscaler(Sampler):
    """``upscaler(lr [N, C, h, w]) -> sr [N, C, s h, s w]`` in [-1, 1]: the generator ``net`` (a plain
    ``nn.Module``, fully convolutional) in eval mode without gradients, on its device; ``upscale`` tiles."""

    kind = "upscale"
    commands = ("upscale",)
    output = "image"

    def __init__(self, recipe: SuperResRecipe, nets: nn.ModuleDict):
        self.recipe, self.nets = recipe, nets
        self.net = nets["G"]
        self.scale = recipe.scale
        self.channels = recipe.info.channels

    def __call__(self, lr: torch.Tensor) -> torch.Tensor:
        with torch.no_grad(), eval_mode(self.net):
            device = next(self.net.parameters()).device
            return self.net(lr.to(device)).clamp(-1, 1).to(lr.device)

    def export_spec(self, batch: int = 2) -> "ExportSpec":
        """The generator alone, clamped as ``__call__`` clamps: LR [N, C, h, w] -> SR [N, C, s h, s w], at the
        training LR size (the network is fully convolutional; the exported graph fixes h, w where the exporter
        does; large images are the CLI's tiles)."""
        side = max(1, self.recipe.info.resolution // self.scale)
        lr = torch.rand(batch, self.channels, side, side, generator=torch.Generator().manual_seed(0)) * 2 - 1
        c, s = self.channels, self.scale
        return ExportSpec(_Clamped(self.net), (lr,), ("lr",), "sr",
                          {"lr": f"[N, {c}, {side}, {side}] float32 in [-1, 1], the low-resolution image",
                           "sr": f"[N, {c}, {side * s}, {side * s}] float32 in [-1, 1], upscaled x{s}"})

    def upscale(self, lr: torch.Tensor, tile: int = 0, overlap: int = 16) -> torch.Tensor:
        """Any size: tiles of ``tile`` LR pixels (0 = whole) with ``overlap`` pixels of context."""
        if overlap < 0:
            raise ConfigError(f"overlap must be >= 0, got {overlap}.")
        return tiled(self, lr, self.scale, tile, overlap)

    @classmethod
    def check_metrics(cls, names: Sequence[str]) -> None:
        from ..metrics.restoration import IMAGE_METRICS, PAIR_METRICS, SR_METRICS
        bad = [m for m in names if str(m).partition("@")[0] not in SR_METRICS + PAIR_METRICS + IMAGE_METRICS]
        if bad:
            raise ConfigError(f"Metrics {bad} do not apply to super-resolution. Valid: "
                              f"{', '.join(SR_METRICS + PAIR_METRICS + IMAGE_METRICS)}.")

    def evaluate(self, r: EvalRequest) -> dict[str, Any]:
        import dataclasses
        from ..metrics.restoration import evaluate_superres
        data_cfg = r.data
        if r.ref:
            data_cfg = dataclasses.replace(data_cfg, spec=r.ref, spec_b=r.ref_b or "")
        if r.root:
            data_cfg = dataclasses.replace(data_cfg, root=r.root)
        if r.metrics:
            self.check_metrics(r.metrics.split(",") if isinstance(r.metrics, str) else r.metrics)
        result = evaluate_superres(self, data_cfg, r.metrics, n=r.n, batch_size=min(r.batch_size, 32),
                                   split=r.split or "test", device=r.device, extractor=r.extractor,
                                   inception_weights=r.inception_weights, download=r.download,
                                   lpips_weights=r.options.get("lpips_weights", self.recipe.opts.lpips_weights))
        d = result["protocol"]["data"]
        result["note"] = (f"x{self.scale} on {d['spec']!r} split {d['split']}"
                          f"{'' if d['held_out'] else ' (NOT held out)'}; Y channel, {self.scale}-pixel border "
                          f"cropped; bicubic_* = the baseline")
        return result
