"""Augmenting what the discriminator sees, for small data: DiffAugment and ADA, usable by every image family.

Both apply the same random, differentiable transformation family to real and generated images *before D* (never
to the data G is compared with elsewhere), so D cannot memorise the few real images while the augmentations do
not leak into G's outputs (Zhao et al. 2020, "Differentiable Augmentation for Data-Efficient GAN Training";
Karras et al. 2020, "Training Generative Adversarial Networks with Limited Data", sec. 2-3).

    DiffAugment(policy="color,translation,cutout")      always on, Zhao et al.'s three ops (their DiffAugment.py)
    AdaptiveAugment(target=0.6, speed_kimg=500)         ADA: the 'bgc' pipeline (geometric + colour groups), each
                                                        op applied per image with probability p; p adapted from
                                                        r_t = E[sign(D(real))] (eq. 1 and sec. 3)

How a recipe uses one (the whole contract; see docs/architecture.md, "Augmentation"):

    opts: AugmentOptions fields (augment, augment_policy, ada_target, ada_kimg, ada_interval, ada_p)
    self.augment = make_augment(opts)            # an nn.Module of the recipe: its state (ADA's p and the sums of
                                                 # sign(D(real))) is in recipe.state_dict(), i.e. the checkpoint
    out |= self.augment.observe(real_score, ctx) # in the D loss: accumulate, adapt p every ada_interval steps,
                                                 # returns {"aug/p": p} to log (the tick's mean)
    D(self.augment(images, ctx))                 # real and fake, in every loss that calls D (R1 included)

Everything stays on the device (p is a tensor; the adaptation is tensor arithmetic): no host sync per step.
Random numbers come from ``ctx.rand`` / ``ctx.randn``, so under DDP every rank draws its slice of one global
draw, and resume is bit-exact.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn

from .errors import ConfigError

AUGMENTS = ("none", "diffaug", "ada")
DIFFAUG_OPS = ("color", "translation", "cutout")

Draw = Callable[..., torch.Tensor]          # (n, *shape, device=...) -> U[0, 1) or N(0, 1) noise


# ---- the recipe-side options ----------------------------------------------------------------------------------

@dataclass
class AugmentOptions:
    """Recipe options of the augmentation (a recipe's Options dataclass inherits these fields)."""
    augment: str = "none"                         # none | diffaug (Zhao et al. 2020) | ada (Karras et al. 2020)
    augment_policy: str = "color,translation,cutout"  # DiffAugment ops, comma-separated
    ada_target: float = 0.6                       # ADA: target of r_t = E[sign(D(real))] (paper sec. 3: 0.6)
    ada_kimg: float = 500.0                       # ADA: p can move 0 -> 1 in this many kimg (paper: 500)
    ada_interval: int = 4                         # ADA: adapt p every this many steps (NVlabs: 4)
    ada_p: float = 0.0                            # ADA: starting p (ada_kimg=0 keeps p fixed at this value)

    def __post_init__(self) -> None:
        if self.augment not in AUGMENTS:
            raise ConfigError(f"augment must be one of {', '.join(AUGMENTS)}, got {self.augment!r}.")
        ops = [o.strip() for o in self.augment_policy.split(",") if o.strip()]
        bad = [o for o in ops if o not in DIFFAUG_OPS]
        if bad:
            raise ConfigError(f"augment_policy: unknown DiffAugment op(s) {bad}. Valid ops: {', '.join(DIFFAUG_OPS)}.")
        if not 0 <= self.ada_p <= 1 or not 0 <= self.ada_target <= 1:
            raise ConfigError(f"ada_p and ada_target must be in [0, 1], got {self.ada_p} and {self.ada_target}.")
        if self.ada_kimg < 0 or self.ada_interval < 1:
            raise ConfigError(f"ada_kimg must be >= 0 and ada_interval >= 1, got {self.ada_kimg}, {self.ada_interval}.")


def make_augment(opts: AugmentOptions) -> "Augment":
    """The augmentation a recipe's options ask for (an identity module for augment="none")."""
    if opts.augment == "diffaug":
        return DiffAugment(opts.augment_policy)
    if opts.augment == "ada":
        return AdaptiveAugment(target=opts.ada_target, speed_kimg=opts.ada_kimg, interval=opts.ada_interval,
                               p=opts.ada_p)
    return Augment()


def _draws(ctx: Any, device: torch.device) -> tuple[Draw, Draw]:
    """U[0, 1) and N(0, 1) draws: the step context's (DDP-sliced, resumable) when given, else torch's."""
    if ctx is not None:
        return (lambda n, *s: ctx.rand(n, *s, device=device)), (lambda n, *s: ctx.randn(n, *s, device=device))
    return (lambda n, *s: torch.rand(n, *s, device=device)), (lambda n, *s: torch.randn(n, *s, device=device))


class Augment(nn.Module):
    """The identity (augment="none"): what every augmentation module offers a recipe."""

    def forward(self, images: torch.Tensor, ctx: Any = None) -> torch.Tensor:
        return images

    def observe(self, real_score: torch.Tensor, ctx: Any = None) -> dict[str, torch.Tensor]:
        """See D's scores on (augmented) real images; returns values to log. Only ADA uses them."""
        return {}


# ---- DiffAugment (Zhao et al. 2020) -------------------------------------------------------------------------

def diff_color(x: torch.Tensor, rand: Draw) -> torch.Tensor:
    """Random brightness (+U[-0.5, 0.5]), saturation (x U[0, 2] around the pixel's channel mean) and contrast
    (x U[0.5, 1.5] around the image mean), per image (DiffAugment.py rand_brightness/saturation/contrast)."""
    n = x.shape[0]
    x = x + (rand(n, 1, 1, 1) - 0.5)
    mean = x.mean(dim=1, keepdim=True)
    x = (x - mean) * (rand(n, 1, 1, 1) * 2) + mean
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * (rand(n, 1, 1, 1) + 0.5) + mean


def diff_translation(x: torch.Tensor, rand: Draw, ratio: float = 0.125) -> torch.Tensor:
    """Shift each image by whole pixels in [-ratio R, ratio R] per axis, zero-filled (DiffAugment.py)."""
    n, _, h, w = x.shape
    sh, sw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    ty = (rand(n, 1, 1) * (2 * sh + 1)).floor().long() - sh                          # [N, 1, 1] in [-sh, sh]
    tx = (rand(n, 1, 1) * (2 * sw + 1)).floor().long() - sw
    gy = torch.arange(h, device=x.device)[None, :, None]
    gx = torch.arange(w, device=x.device)[None, None, :]
    iy = (gy + ty + 1).clamp(0, h + 1)                                               # index into the padded image
    ix = (gx + tx + 1).clamp(0, w + 1)
    padded = F.pad(x, (1, 1, 1, 1))                                                  # [N, C, H+2, W+2], zeros
    b = torch.arange(n, device=x.device)[:, None, None]
    return padded.permute(0, 2, 3, 1)[b, iy, ix].permute(0, 3, 1, 2)


def diff_cutout(x: torch.Tensor, rand: Draw, ratio: float = 0.5) -> torch.Tensor:
    """Zero one square of side ratio R at a random place per image (DeVries & Taylor 2017; DiffAugment.py)."""
    n, _, h, w = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    oy = (rand(n, 1, 1) * (h + (1 - ch % 2))).floor().long()                         # centre in [0, h - (ch%2==0)]
    ox = (rand(n, 1, 1) * (w + (1 - cw % 2))).floor().long()
    gy = torch.arange(h, device=x.device)[None, :, None]
    gx = torch.arange(w, device=x.device)[None, None, :]
    inside = ((gy - oy + ch // 2) >= 0) & ((gy - oy + ch // 2) < ch) & \
             ((gx - ox + cw // 2) >= 0) & ((gx - ox + cw // 2) < cw)                 # [N, H, W]
    return x * (~inside)[:, None].to(x.dtype)


_DIFF_OPS = {"color": diff_color, "translation": diff_translation, "cutout": diff_cutout}


class DiffAugment(Augment):
    """Zhao et al. 2020: the same ops, always on, on real and generated images before D."""

    def __init__(self, policy: str = "color,translation,cutout"):
        super().__init__()
        self.ops = [o.strip() for o in policy.split(",") if o.strip()]
        bad = [o for o in self.ops if o not in _DIFF_OPS]
        if bad:
            raise ConfigError(f"DiffAugment: unknown op(s) {bad}. Valid ops: {', '.join(DIFFAUG_OPS)}.")

    def forward(self, images: torch.Tensor, ctx: Any = None) -> torch.Tensor:
        rand, _ = _draws(ctx, images.device)
        for op in self.ops:
            images = _DIFF_OPS[op](images, rand)
        return images


# ---- ADA (Karras et al. 2020) -------------------------------------------------------------------------------

def _eye(n: int, k: int, device) -> torch.Tensor:
    return torch.eye(k, device=device).expand(n, k, k).clone()


def _translate2d(tx: torch.Tensor, ty: torch.Tensor) -> torch.Tensor:
    m = _eye(len(tx), 3, tx.device)
    m[:, 0, 2], m[:, 1, 2] = tx, ty
    return m


def _scale2d(sx: torch.Tensor, sy: torch.Tensor) -> torch.Tensor:
    m = _eye(len(sx), 3, sx.device)
    m[:, 0, 0], m[:, 1, 1] = sx, sy
    return m


def _rotate2d(theta: torch.Tensor) -> torch.Tensor:
    m = _eye(len(theta), 3, theta.device)
    c, s = torch.cos(theta), torch.sin(theta)
    m[:, 0, 0], m[:, 0, 1], m[:, 1, 0], m[:, 1, 1] = c, -s, s, c
    return m


def _translate3d(b: torch.Tensor) -> torch.Tensor:
    m = _eye(len(b), 4, b.device)
    m[:, :3, 3] = b[:, None]
    return m


def _scale3d(c: torch.Tensor) -> torch.Tensor:
    m = _eye(len(c), 4, c.device)
    m[:, 0, 0] = m[:, 1, 1] = m[:, 2, 2] = c
    return m


def _rotate3d(axis: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """Rotation by theta about the unit ``axis`` [3] (Rodrigues), in homogeneous 4x4 form."""
    x, y, z = axis
    c, s = torch.cos(theta), torch.sin(theta)
    cc = 1 - c
    m = _eye(len(theta), 4, theta.device)
    rows = [[x * x * cc + c, x * y * cc - z * s, x * z * cc + y * s],
            [y * x * cc + z * s, y * y * cc + c, y * z * cc - x * s],
            [z * x * cc - y * s, z * y * cc + x * s, z * z * cc + c]]
    for i in range(3):
        for j in range(3):
            m[:, i, j] = rows[i][j]
    return m


# The 'bgc' pipeline's ops and strengths (NVlabs augment.py defaults; paper appendix B).
ADA_GEOMETRIC = ("xflip", "rotate90", "xint", "scale", "rotate", "aniso", "xfrac")
ADA_COLOR = ("brightness", "contrast", "lumaflip", "hue", "saturation")


class AdaptiveAugment(Augment):
    """ADA: 'bgc' (blit + geometric + colour) with one probability p per op and image, adapted during training.

    Geometric ops build one 3x3 matrix per image in normalised coordinates ([-1, 1], the image centre at 0),
    applied with ``affine_grid`` + bilinear ``grid_sample`` and reflection padding (NVlabs pads by reflection and
    resamples with a wavelet filter at 2x; plain bilinear here, so some aliasing for large rotations). Colour
    ops build one 4x4 matrix per image on (r, g, b, 1); grey images use the mean of its rows (as NVlabs).

    Adaptation (paper sec. 3, eq. 1 r_t = E[sign(D_train)]; NVlabs training_loop.py): every ``interval`` steps,
    p <- clamp(p + sign(r_t - target) * N_img / (speed_kimg * 1000), 0, 1), N_img the real images of those
    steps; so at speed_kimg = 500, p can go from 0 to 1 in 500 kimg. speed_kimg = 0 keeps p fixed.
    """

    def __init__(self, target: float = 0.6, speed_kimg: float = 500.0, interval: int = 4, p: float = 0.0,
                 xint_max: float = 0.125, scale_std: float = 0.2, rotate_max: float = 1.0, aniso_std: float = 0.2,
                 xfrac_std: float = 0.125, brightness_std: float = 0.2, contrast_std: float = 0.5,
                 hue_max: float = 1.0, saturation_std: float = 1.0):
        super().__init__()
        self.target, self.speed_kimg, self.interval = target, speed_kimg, interval
        self.strengths = dict(xint_max=xint_max, scale_std=scale_std, rotate_max=rotate_max, aniso_std=aniso_std,
                              xfrac_std=xfrac_std, brightness_std=brightness_std, contrast_std=contrast_std,
                              hue_max=hue_max, saturation_std=saturation_std)
        self.register_buffer("p", torch.tensor(float(p)))
        self.register_buffer("sign_sum", torch.zeros(()))      # sum of sign(D(real)) since the last adjustment
        self.register_buffer("seen", torch.zeros(()))          # real images scored since then (this rank)
        self.register_buffer("rt", torch.zeros(()))            # the last r_t (logged)
        self._adjusted_at = -1                                 # python: the step whose adjustment is done

    # -- the transformation
    def forward(self, images: torch.Tensor, ctx: Any = None) -> torch.Tensor:
        rand, randn = _draws(ctx, images.device)
        return ada_transform(images, self.p, rand, randn, **self.strengths)

    # -- the adaptation
    def observe(self, real_score: torch.Tensor, ctx: Any = None) -> dict[str, torch.Tensor]:
        step = 0 if ctx is None else ctx.step
        world = 1 if ctx is None else ctx.world_size
        if step > 0 and step % self.interval == 0 and step != self._adjusted_at:
            self._adjusted_at = step
            self.adjust(world)
        with torch.no_grad():
            self.sign_sum += torch.sign(real_score.detach().float()).sum()
            self.seen += real_score.shape[0]
        return {"aug/p": self.p.detach().clone(), "aug/rt": self.rt.detach().clone()}

    @torch.no_grad()
    def adjust(self, world_size: int = 1) -> None:
        """p += sign(r_t - target) x images / (speed x 1000), on the device; sums all-reduced under DDP."""
        stats = torch.stack([self.sign_sum, self.seen])
        if world_size > 1 and torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.all_reduce(stats)               # every rank adapts p identically
        sign_sum, seen = stats[0], stats[1]
        rt = sign_sum / seen.clamp(min=1)
        if self.speed_kimg > 0:
            step = torch.sign(rt - self.target) * seen / (self.speed_kimg * 1000)
            self.p.copy_((self.p + torch.where(seen > 0, step, torch.zeros_like(step))).clamp(0, 1))
        self.rt.copy_(torch.where(seen > 0, rt, self.rt))
        self.sign_sum.zero_()
        self.seen.zero_()


def ada_transform(images: torch.Tensor, p: torch.Tensor | float, rand: Draw, randn: Draw, xint_max: float = 0.125,
                  scale_std: float = 0.2, rotate_max: float = 1.0, aniso_std: float = 0.2, xfrac_std: float = 0.125,
                  brightness_std: float = 0.2, contrast_std: float = 0.5, hue_max: float = 1.0,
                  saturation_std: float = 1.0) -> torch.Tensor:
    """The 'bgc' pipeline at probability p (a tensor or float) on images [N, C, H, W] in [-1, 1].

    Each op is applied to each image independently with probability p (rotation twice, each with
    1 - sqrt(1 - p), so that some rotation happens with probability p, as NVlabs). Differentiable in the images.
    """
    n, c, h, w = images.shape
    dev = images.device
    p = torch.as_tensor(p, dtype=torch.float32, device=dev)
    draw_u, draw_n = rand, randn
    rand = lambda *shape: draw_u(*shape).float()                                    # noqa: E731  (matrices in
    randn = lambda *shape: draw_n(*shape).float()                                   # noqa: E731   float32)
    applied: list[torch.Tensor] = []                                                # [N] bool per gated op

    def gate(values: torch.Tensor, identity: float, prob: torch.Tensor = p) -> torch.Tensor:
        on = rand(n) < prob
        applied.append(on)
        return torch.where(on, values, torch.full_like(values, identity))

    def any_applied() -> torch.Tensor:
        out = torch.stack(applied).any(dim=0)
        applied.clear()
        return out

    # -- geometric: output pixel -> input coordinate (the matrix affine_grid takes), normalised coords
    g = _eye(n, 3, dev)
    flip = gate((rand(n) * 2).floor(), 0.0)                                         # 0 or 1
    g = g @ _scale2d(1 - 2 * flip, torch.ones(n, device=dev))
    quarter = gate((rand(n) * 4).floor(), 0.0)                                      # 0..3 quarter turns
    g = g @ _rotate2d(-math.pi / 2 * quarter)
    t = (rand(n, 2) * 2 - 1) * xint_max
    tx, ty = (t[:, 0] * w).round() * 2 / w, (t[:, 1] * h).round() * 2 / h          # whole pixels, normalised
    g = g @ _translate2d(gate(tx, 0.0), torch.where(applied[-1], ty, 0 * ty))
    s = gate(torch.exp2(randn(n) * scale_std), 1.0)
    g = g @ _scale2d(s, s)
    p_rot = 1 - torch.sqrt((1 - p).clamp(min=0))
    g = g @ _rotate2d(gate((rand(n) * 2 - 1) * math.pi * rotate_max, 0.0, p_rot))
    a = gate(torch.exp2(randn(n) * aniso_std), 1.0)
    g = g @ _scale2d(a, 1 / a)
    g = g @ _rotate2d(gate((rand(n) * 2 - 1) * math.pi * rotate_max, 0.0, p_rot))
    t = randn(n, 2) * xfrac_std * 2                                                 # fraction of the side, x 2
    g = g @ _translate2d(gate(t[:, 0], 0.0), torch.where(applied[-1], t[:, 1], 0 * t[:, 1]))
    grid = F.affine_grid(g[:, :2, :].to(images.dtype), [n, c, h, w], align_corners=False)
    moved = F.grid_sample(images, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    # Images no geometric op was drawn for pass through exactly (resampling at the pixel centres would
    # round at 1e-6): p = 0 is the identity, bit for bit.
    images = torch.where(any_applied()[:, None, None, None], moved, images)

    # -- colour: one 4x4 matrix on (r, g, b, 1)
    luma = torch.tensor([1.0, 1.0, 1.0], device=dev) / math.sqrt(3)                 # the luma axis v
    v4 = torch.cat([luma, torch.zeros(1, device=dev)])
    vvt = torch.outer(v4, v4)                                                       # [4, 4] projection on v
    m = _eye(n, 4, dev)
    m = _translate3d(gate(randn(n) * brightness_std, 0.0)) @ m
    m = _scale3d(gate(torch.exp2(randn(n) * contrast_std), 1.0)) @ m
    lf = gate((rand(n) * 2).floor(), 0.0)                                           # flip the luma: I - 2 v v^T
    m = (torch.eye(4, device=dev) - 2 * vvt * lf[:, None, None]) @ m
    if c == 3:                                                                      # hue is meaningless in grey
        m = _rotate3d(luma, gate((rand(n) * 2 - 1) * math.pi * hue_max, 0.0)) @ m
    sat = gate(torch.exp2(randn(n) * saturation_std), 1.0)
    m = (vvt + (torch.eye(4, device=dev) - vvt) * sat[:, None, None]) @ m
    m = m.to(images.dtype)
    colour_on = any_applied()[:, None, None, None]
    # Other channel counts (2, 4, ...) get the geometric ops only.
    if c == 3:
        flat = images.reshape(n, 3, h * w)
        images = torch.where(colour_on, (m[:, :3, :3] @ flat + m[:, :3, 3:]).reshape(n, 3, h, w), images)
    elif c == 1:
        row = m[:, :3, :].mean(dim=1)                                               # [N, 4]
        recoloured = images * row[:, :3].sum(dim=1)[:, None, None, None] + row[:, 3][:, None, None, None]
        images = torch.where(colour_on, recoloured, images)
    return images
