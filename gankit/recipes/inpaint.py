"""Inpainting: completing missing regions with an encoder-decoder GAN (Iizuka et al. 2017; Yu et al. 2019),
and the "inpaint" sampler kind.

Each step draws one hole mask per image (``mask`` = centre | rect | free, ``mask_fraction`` of the area;
gankit.data.masks, seeded by the step so resume is exact), or takes each image's own mask when the data has them
(``mask`` = files, or auto, the default: files when the image folder holds NAME_mask.png beside NAME.jpg, i.e.
data of kind masked_image, else free), blanks the holes (x (1 - m): 0, mid-grey), and

    G(x (1 - m), m) = y_hat;  composite x_c = m y_hat + (1 - m) x  (the known pixels are kept exactly)
    L_G = hole_weight |m (y_hat - x)|_1 / N + valid_weight |(1 - m)(y_hat - x)|_1 / N + adv_weight L_adv
          (recon=mse: squared errors, Iizuka et al. 2017 eq. 1, with valid_weight 0 and adv_weight 0.0004, eq. 5)
          (L1 per element over the whole image, as Liu et al. 2018 normalise their hole / valid terms; 1 : 1 is
          Yu et al. 2019's plain L1 on the output, sec. 4)
    hinge (SN-PatchGAN, Yu et al. 2019 eq. 2-3, on every output element):
          L_D = E[relu(1 - D(x, m))] + E[relu(1 + D(x_c, m))],   L_adv = -E[D(x_c, m)]
    vanilla (Iizuka et al. 2017 eq. 2-3 style): cross-entropy with the non-saturating G target

D sees the image with its mask as an extra channel (Yu et al. sec. 3.2). Default weights: Yu et al.'s 1 : 1.
Discriminators: SN-PatchGAN (``D.image=sn_patchgan``, the preset's) or Iizuka et al.'s global + local pair
(``D.image=global_local``, the ``inpaint-glcic`` preset: the mask channel places the local crop on the hole).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..artefacts import ImageGrid
from ..errors import ConfigError
from ..images import pad_to_multiple
from ..nets import build_net, generators
from ..samplers import EvalRequest, ExportSpec, Sampler, sampler_kinds
from .base import Recipe, StepContext, check_data_kind, recipes
from .translation import adversarial_loss, eval_mode

GAN_LOSSES = ("hinge", "vanilla")
RECONS = ("l1", "mse")
FILE_MASKS = ("auto", "files")      # besides gankit.data.masks.MASK_KINDS


@dataclass
class InpaintOptions:
    mask: str = "auto"              # centre | rect | free (Yu et al. 2019's strokes) | files | auto (files if any)
    mask_fraction: float = 0.25     # share of the image area in the hole
    hole_weight: float = 1.0        # L1 on the hole (Yu et al. 2019: 1)
    valid_weight: float = 1.0       # L1 on the known region (Yu et al. 2019: 1)
    adv_weight: float = 1.0         # Yu et al. 2019 sec. 4: "loss balancing hyper-parameter 1 : 1"
    gan_loss: str = "hinge"         # hinge (SN-PatchGAN) | vanilla (cross-entropy)
    recon: str = "l1"               # l1 (Yu et al. 2019) | mse (Iizuka et al. 2017 eq. 1, squared error)
    lpips_weights: str = ""         # torchvision vgg16 state dict (path) for the lpips metric (evaluation only)


def composite(generated: torch.Tensor, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Generated pixels in the hole (mask True / 1), the image's own pixels elsewhere, bit for bit."""
    return torch.where(mask.bool().expand_as(image), generated, image)


@recipes.register("inpaint")
class InpaintRecipe(Recipe):
    Options = InpaintOptions
    data_kinds = ("masked_image", "image")      # image folders with NAME_mask files first, else any images
    generator_names = ("G",)
    discriminator_names = ("D",)
    sampler_kind = "inpaint"

    def __init__(self, nets, opts: InpaintOptions, info, seed: int = 0):
        super().__init__(nets, opts, info)
        from ..data.masks import MASK_KINDS, check_mask_args
        from ..errors import DataError
        has_files = info.kind == "masked_image"
        if opts.mask not in MASK_KINDS + FILE_MASKS:
            raise ConfigError(f"inpaint: mask must be one of {', '.join(MASK_KINDS + FILE_MASKS)}, got {opts.mask!r}.")
        if opts.mask == "files" and not has_files:
            raise ConfigError(f"inpaint: mask=files needs mask files beside the training images (NAME_mask.png next "
                              f"to NAME.jpg in the --data folder); {info.name!r} has none. Use mask=centre|rect|free.")
        # The hole kind of training: the data's own masks, or generated ones (auto: files when there are any).
        self.mask_kind = ("files" if has_files else "free") if opts.mask == "auto" else opts.mask
        try:
            check_mask_args("free" if self.mask_kind == "files" else self.mask_kind, opts.mask_fraction)
        except DataError as e:
            raise ConfigError(str(e)) from None
        if opts.gan_loss not in GAN_LOSSES:
            raise ConfigError(f"inpaint: gan_loss must be one of {', '.join(GAN_LOSSES)}, got {opts.gan_loss!r}.")
        if opts.recon not in RECONS:
            raise ConfigError(f"inpaint: recon must be one of {', '.join(RECONS)}, got {opts.recon!r}.")
        for k in ("hole_weight", "valid_weight", "adv_weight"):
            if getattr(opts, k) < 0:
                raise ConfigError(f"inpaint: {k} must be >= 0, got {getattr(opts, k)}.")
        self.seed = seed
        self._masks: tuple[int, torch.Tensor] | None = None

    @classmethod
    def from_config(cls, cfg: Any, info: Any) -> "InpaintRecipe":
        check_data_kind(cls, "inpaint", info)
        opts = cls.parse_options(cfg.opts)
        from ..metrics.restoration import check_lpips_weights
        check_lpips_weights(cfg.metrics, opts.lpips_weights)          # refused before training, not at the first eval
        if getattr(generators.get(cfg.G.image), "kind", None) != "inpainter":
            valid = [n for n, c in generators.items() if getattr(c, "kind", None) == "inpainter"]
            raise ConfigError(f"G.image = {cfg.G.image!r} is not an inpainter. Valid choices: {', '.join(valid)}.")
        c = info.channels
        G = build_net("G", cfg.G, info.kind, {"in_channels": c, "out_channels": c})
        D = build_net("D", cfg.D, info.kind, {"in_channels": c + 1, "resolution": info.resolution})
        return cls({"G": G, "D": D}, opts, info, cfg.seed)

    # ---- objective ----------------------------------------------------------------------------------------
    def step_masks(self, images: torch.Tensor, ctx: StepContext, batch_mask: torch.Tensor | None = None
                   ) -> torch.Tensor:
        """This rank's masks [n, 1, H, W] (float, 1 = hole) of step ``ctx.step``: the batch's own (``mask`` key,
        mask files) or rows [r n, (r+1) n) of the W n masks one process would draw, seeded by (seed, step); D and
        G of one step share them."""
        from ..data.masks import mask_batch
        n, (h, w) = len(images), images.shape[-2:]
        if self.mask_kind == "files":
            return batch_mask.to(images.device, torch.float32)
        if self._masks is None or self._masks[0] != ctx.step or len(self._masks[1]) != n:
            masks = mask_batch(self.mask_kind, n, h, w, self.opts.mask_fraction, seed=(self.seed, ctx.step),
                               first=ctx.rank * n)
            self._masks = (ctx.step, masks.to(images.device, torch.float32))
        return self._masks[1]

    def complete(self, G: nn.Module, image: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(raw output, composite) of G on ``image`` with holes ``mask`` (float or bool [N, 1, H, W])."""
        m = mask.to(image.dtype)
        raw = G(image * (1 - m), m)
        return raw, composite(raw, image, mask)

    def d_loss(self, batch: dict[str, torch.Tensor], ctx: StepContext) -> dict[str, torch.Tensor]:
        G, D = self.nets["G"], self.nets["D"]
        real = batch["image"]
        m = self.step_masks(real, ctx, batch.get("mask"))
        with torch.no_grad():
            _, fake = self.complete(G, real, m)
        real_out, fake_out = D(torch.cat([real, m], 1)), D(torch.cat([fake, m], 1))
        if self.opts.gan_loss == "hinge":
            loss_real, loss_fake = F.relu(1 - real_out).mean(), F.relu(1 + fake_out).mean()
        else:
            loss_real, loss_fake = adversarial_loss(real_out, True, "vanilla"), adversarial_loss(fake_out, False, "vanilla")
        return {"loss": loss_real + loss_fake, "d_real": loss_real.detach(), "d_fake": loss_fake.detach()}

    def g_loss(self, batch: dict[str, torch.Tensor], ctx: StepContext) -> dict[str, torch.Tensor]:
        G, D = self.nets["G"], self.nets["D"]
        real = batch["image"]
        m = self.step_masks(real, ctx, batch.get("mask"))
        stages = getattr(G, "stages", None)              # coarse-to-fine nets: (coarse, refined), loss on both
        if stages is not None:
            coarse, raw = stages(real * (1 - m), m)
            fake = composite(raw, real, m)
        else:
            raw, fake = self.complete(G, real, m)
        distance = (lambda y: (y - real).abs()) if self.opts.recon == "l1" else (lambda y: (y - real).square())
        err = distance(raw)                                               # [N, C, H, W]
        hole, valid = (err * m).mean(), (err * (1 - m)).mean()
        extra = {}
        if stages is not None:                                            # Yu et al. 2018: the same terms on the coarse output
            err_c = distance(coarse)
            coarse_rec = self.opts.hole_weight * (err_c * m).mean() + self.opts.valid_weight * (err_c * (1 - m)).mean()
            extra = {"coarse_rec": coarse_rec.detach()}
        else:
            coarse_rec = 0
        out = D(torch.cat([fake, m], 1))
        adv = -out.mean() if self.opts.gan_loss == "hinge" else adversarial_loss(out, True, "vanilla")
        loss = self.opts.hole_weight * hole + self.opts.valid_weight * valid + self.opts.adv_weight * adv + coarse_rec
        r = self.opts.recon                                               # l1_hole / mse_hole ...
        return {"loss": loss, f"{r}_hole": hole.detach(), f"{r}_valid": valid.detach(), "g_adv": adv.detach(), **extra}

    # ---- using the trained model --------------------------------------------------------------------------
    def fixed_inputs(self, n: int, seed: int, dataset: Any) -> dict[str, torch.Tensor]:
        from ..data.masks import mask_batch
        g = torch.Generator().manual_seed(seed)
        idx = torch.randperm(len(dataset), generator=g)[: min(n, len(dataset))]
        items = dataset.get_batch(idx) if hasattr(dataset, "get_batch") else \
            {k: torch.stack([dataset[int(i)][k] for i in idx]) for k in dataset[0]}
        images = items["image"]
        if self.mask_kind == "files":
            masks = items["mask"].bool()
        else:
            masks = mask_batch(self.mask_kind, len(idx), *images.shape[-2:], self.opts.mask_fraction, seed=(seed, 1))
        return {"image": images.detach().cpu().clone(), "mask": masks}

    @torch.no_grad()
    def snapshot(self, fixed: dict[str, torch.Tensor], nets: nn.ModuleDict) -> list:
        """Rows of n: input with holes (mid-grey), completed (composited), original."""
        image, mask = fixed["image"], fixed["mask"]
        completed = Inpainter(self, nets)(image, mask)
        holed = torch.where(mask.expand_as(image), torch.zeros_like(image), image)
        return [ImageGrid(torch.cat([holed, completed, image]), nrow=len(image))]

    def samplers(self, nets: nn.ModuleDict | None = None) -> dict[str, "Inpainter"]:
        return {"default": Inpainter(self, nets if nets is not None else self.nets)}


class _Completion(nn.Module):
    """``Inpainter.__call__`` for one size as a traceable module: G on the holed image and the mask, composited."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        raw = self.net(image * (1 - mask), mask)
        return torch.where(mask > 0.5, raw, image)


@sampler_kinds.register("inpaint")
class Inpainter(Sampler):
    """``inpainter(images [N, C, H, W] in [-1, 1], masks bool [N, 1, H, W]) -> completed [N, C, H, W]``: G
    (``net``) in eval mode, on images padded to its size multiple, composited so known pixels stay exact."""

    kind = "inpaint"
    commands = ("inpaint",)
    output = "image"

    def __init__(self, recipe: InpaintRecipe, nets: nn.ModuleDict):
        self.recipe, self.nets = recipe, nets
        self.net = nets["G"]
        self.channels = recipe.info.channels

    def __call__(self, images: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        masks = masks.bool()
        if masks.shape != (len(images), 1, *images.shape[-2:]):
            raise ConfigError(f"masks must be [N, 1, H, W] for images {tuple(images.shape)}, got {tuple(masks.shape)}.")
        h, w = images.shape[-2:]
        multiple = getattr(self.net, "size_multiple", 1)
        with torch.no_grad(), eval_mode(self.net):
            device = next(self.net.parameters()).device
            m = masks.to(device, images.dtype)
            x = images.to(device)
            raw = self.net(pad_to_multiple(x * (1 - m), multiple), pad_to_multiple(m, multiple))[..., :h, :w]
        return composite(raw.to(images.device), images, masks)

    def export_spec(self, batch: int = 2) -> ExportSpec:
        """Image and hole mask -> the completed image, composited (known pixels kept exactly), at the training
        size (a multiple of the network's size multiple, so no padding is traced)."""
        side = self.recipe.info.resolution
        gen = torch.Generator().manual_seed(0)
        image = torch.rand(batch, self.channels, side, side, generator=gen) * 2 - 1
        mask = (torch.rand(batch, 1, side, side, generator=gen) < 0.25).float()
        c = self.channels
        return ExportSpec(_Completion(self.net), (image, mask), ("image", "mask"), "completed",
                          {"image": f"[N, {c}, {side}, {side}] float32 in [-1, 1]",
                           "mask": f"[N, 1, {side}, {side}] float32, 1 in the hole, 0 where pixels are known",
                           "completed": f"[N, {c}, {side}, {side}] float32 in [-1, 1], known pixels unchanged"})

    @classmethod
    def check_metrics(cls, names: Sequence[str]) -> None:
        from ..metrics.restoration import IMAGE_METRICS, PAIR_METRICS, INPAINT_METRICS
        bad = [m for m in names if str(m).partition("@")[0] not in INPAINT_METRICS + PAIR_METRICS + IMAGE_METRICS]
        if bad:
            raise ConfigError(f"Metrics {bad} do not apply to inpainting. Valid: "
                              f"{', '.join(INPAINT_METRICS + PAIR_METRICS + IMAGE_METRICS)}.")

    def evaluate(self, r: EvalRequest) -> dict[str, Any]:
        import dataclasses
        from ..metrics.restoration import evaluate_inpaint
        data_cfg = r.data
        if r.ref:
            data_cfg = dataclasses.replace(data_cfg, spec=r.ref)
        if r.root:
            data_cfg = dataclasses.replace(data_cfg, root=r.root)
        if r.metrics:
            self.check_metrics(r.metrics.split(",") if isinstance(r.metrics, str) else r.metrics)
        opts = self.recipe.opts
        result = evaluate_inpaint(self, data_cfg, r.options.get("mask", self.recipe.mask_kind),
                                  float(r.options.get("mask_fraction", opts.mask_fraction)), r.metrics, n=r.n,
                                  batch_size=min(r.batch_size, 32), split=r.split or "test", device=r.device,
                                  baselines=bool(r.options.get("baselines", True)), extractor=r.extractor,
                                  inception_weights=r.inception_weights, download=r.download,
                                   lpips_weights=r.options.get("lpips_weights", self.recipe.opts.lpips_weights))
        d, m = result["protocol"]["data"], result["protocol"]["masks"]
        result["note"] = (f"{m['kind']} holes of {m['fraction']:.0%} on {d['spec']!r} split {d['split']}"
                          f"{'' if d['held_out'] else ' (NOT held out)'}; meanfill_* / biharmonic_* = baselines")
        return result
