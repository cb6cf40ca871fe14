"""StyleGAN2 (Karras et al. 2020, "Analyzing and Improving the Image Quality of StyleGAN", config F) with the
adaptive discriminator augmentation of Karras et al. 2020, "Training GANs with Limited Data" (StyleGAN2-ADA).

Phases, each step (the engine runs them in this order and applies the lazy-regularisation gain and the Adam
correction c = every / (every + 1) to both optimisers; Karras et al. 2020, appendix B):

    D      non-saturating: softplus(D(aug(G(z)))) + softplus(-D(aug(x)))          fresh real batch
    D_r1   gamma / 2 E ||grad_x D(aug(x))||^2, every 16 steps (x 16)              the same real batch
    G      softplus(-D(aug(G(z))))                                                  (style mixing on)
    G_pl   path length: w_pl (|J_w^T y| - a)^2, y ~ N(0, I) / sqrt(HW), every 4 steps (x 4), half batch;
           a = the decaying mean of |J_w^T y| (decay 0.01), kept in the checkpoint (paper sec. 3.2, eq. 4)

Style mixing regularisation (Karras et al. 2019, sec. 3.1): with probability 0.9 a batch's ws switch from
mapping(z1) to mapping(z2) at one random layer. r1_gamma < 0 (the default) is ADA's heuristic
gamma = 0.0002 R^2 / batch with the GLOBAL batch (batch_size x ranks; StyleGAN2-ADA train.py, cfg auto).

All randomness of a step goes through the StepContext (latents, the mixing cutoff, the per-layer noise inputs
of the synthesis network, the path-length probe y, the augmentation), so W DDP ranks x batch B compute the same
update as one process x batch W B (tests/test_stylegan2_ddp.py). EMA of G (half-life, ramp-up) is the engine's
``ema`` strategy; the tracked W average is a buffer of G (copied into the EMA copy, used by truncation).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..artefacts import ImageGrid
from ..augment import AugmentOptions, make_augment
from ..data.base import DataInfo
from ..errors import ConfigError
from ..losses import r1_penalty
from ..nets import build_net
from ..nets.base import unwrap
from ..samplers import NoiseSampler, sampler_kinds
from .base import Phase, Recipe, StepContext, recipes


@dataclass
class StyleGAN2Options(AugmentOptions):
    z_dim: int = 512              # latent size (config F: 512); w_dim is G's own argument (default = z_dim)
    r1_gamma: float = -1.0        # R1 weight; < 0 = ADA's heuristic 0.0002 * resolution^2 / batch_size
    r1_interval: int = 16         # lazy R1 every N steps (paper appendix B: 16)
    pl_weight: float = 2.0        # path-length weight (paper sec. 3.2: 2); 0 = off
    pl_interval: int = 4          # lazy path length every N steps (paper: 4)
    pl_decay: float = 0.01        # decay of the running mean a of the path lengths (NVlabs: 0.01)
    pl_batch_shrink: int = 2      # path length on batch / shrink images (NVlabs: 2)
    style_mixing: float = 0.9     # probability of style mixing regularisation (paper: 0.9); 0 = off
    # class-conditional (label embedding into mapping, projection in D): "auto" (StyleGAN2-ADA's --cond
    # default: conditional exactly when the data has class labels), true (refused on unlabelled data), false
    conditional: bool | str = "auto"

    def __post_init__(self) -> None:
        super().__post_init__()
        if isinstance(self.conditional, str) and self.conditional != "auto":
            raise ConfigError(f"conditional must be auto, true or false, got {self.conditional!r}.")
        if self.z_dim < 1 or self.r1_interval < 1 or self.pl_interval < 1 or self.pl_batch_shrink < 1:
            raise ConfigError("z_dim, r1_interval, pl_interval and pl_batch_shrink must be positive.")
        if self.pl_weight < 0 or not 0 <= self.style_mixing <= 1 or not 0 <= self.pl_decay <= 1:
            raise ConfigError(f"pl_weight must be >= 0 and style_mixing, pl_decay in [0, 1], got {self.pl_weight}, "
                              f"{self.style_mixing}, {self.pl_decay}.")


def r1_gamma_heuristic(resolution: int, batch_size: int) -> float:
    """StyleGAN2-ADA train.py (cfg auto): gamma = 0.0002 * R^2 / batch, batch = the global batch (all GPUs)."""
    return 0.0002 * resolution ** 2 / batch_size


def conditional_for(opts: "StyleGAN2Options", info: DataInfo) -> bool:
    """``conditional=auto`` follows the data (labelled -> conditional, StyleGAN2-ADA's cond default)."""
    if opts.conditional == "auto":
        return info.num_classes >= 2
    if opts.conditional and info.num_classes < 2:
        raise ConfigError(f"Conditional StyleGAN2 needs class labels, but {info.name!r} has none; use "
                          f"conditional=auto or false.")
    return bool(opts.conditional)


def path_length_penalty(img: torch.Tensor, ws: torch.Tensor, noise: torch.Tensor, pl_mean: torch.Tensor,
                        decay: float, batch_mean: Any = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Path-length regularisation (Karras et al. 2020, sec. 3.2, eq. 4): E_{w,y} (||J_w^T y||_2 - a)^2.

    img [N, C, H, W] = g(ws) with ws [N, L, w_dim] in its graph; noise y [N, C, H, W] (N(0, I) / sqrt(HW) in
    the recipe, so the length does not depend on the resolution). J_w^T y = grad_ws sum(img * y) (one
    backward), its length per sample sqrt(mean over layers of sum over w_dim of the squares) (NVlabs).
    a <- lerp(a, mean length, decay) (kept with its gradient, as NVlabs). ``batch_mean`` (default: the mean of
    this batch) takes the mean over the global batch under DDP (``global_mean``). Returns (penalty [N], lengths
    [N], new a).
    """
    (grad,) = torch.autograd.grad((img * noise).sum(), ws, create_graph=True)         # [N, L, w_dim]
    lengths = grad.square().sum(dim=2).mean(dim=1).sqrt()                               # [N]
    new_mean = pl_mean.lerp(lengths.mean() if batch_mean is None else batch_mean(lengths), decay)
    return (lengths - new_mean).square(), lengths, new_mean


def global_mean(values: torch.Tensor, ctx: StepContext) -> torch.Tensor:
    """Mean of values [n] over the global batch (all ranks), differentiable: the all-reduced sum / (n W). With it
    every rank keeps the same path-length mean, and the DDP-averaged gradient is one process's on W n rows
    (NVlabs keeps one mean per GPU instead). Plain ``values.mean()`` on one process."""
    if ctx.world_size == 1 or not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return values.mean()
    import torch.distributed.nn.functional as dist_fn
    return dist_fn.all_reduce(values.sum()) / (values.shape[0] * ctx.world_size)


def mixing_cutoff(u: torch.Tensor, num_ws: int, prob: float) -> torch.Tensor:
    """The layer where a batch switches to the second latent's styles (NVlabs loss.py): uniform in [1, num_ws)
    with probability ``prob``, else num_ws (no mixing). u: two U[0, 1) numbers [2]; returns a [] long tensor."""
    cutoff = (u[0] * (num_ws - 1)).floor().long() + 1
    return torch.where(u[1] < prob, cutoff, torch.full_like(cutoff, num_ws))


@recipes.register("stylegan2")
class StyleGAN2(Recipe):
    Options = StyleGAN2Options
    data_kinds = ("image",)
    sampler_kind = "style"

    def __init__(self, nets: dict[str, nn.Module], opts: StyleGAN2Options, info: DataInfo, batch_size: int):
        super().__init__(nets, opts, info)
        self.num_classes = info.num_classes if conditional_for(opts, info) else 0
        self.batch_size = batch_size                 # per rank; the heuristic gamma uses it x world_size
        self.augment = make_augment(opts)            # its state (ADA's p) is in the recipe's state dict
        self.register_buffer("pl_mean", torch.zeros(()))   # path-length running mean a (checkpointed)

    @classmethod
    def from_config(cls, cfg: Any, info: DataInfo) -> "StyleGAN2":
        opts: StyleGAN2Options = cls.parse_options(cfg.opts)
        num_classes = info.num_classes if conditional_for(opts, info) else 0
        for role in ("G", "D"):
            if getattr(cfg, role).image == "stylegan2" and getattr(cfg, role).init != "default":
                raise ConfigError(f"{role}.init={getattr(cfg, role).init!r}: StyleGAN2's equalised-lr layers "
                                  f"initialise themselves (N(0, 1) / lr_mul, scaled at run time); use "
                                  f"{role}.init=default.")
        g_iface = {"z_dim": opts.z_dim, "out_channels": info.channels, "resolution": info.resolution,
                   "num_classes": num_classes}
        d_iface = {"in_channels": info.channels, "resolution": info.resolution, "num_classes": num_classes}
        G = build_net("G", cfg.G, info.kind, g_iface)
        D = build_net("D", cfg.D, info.kind, d_iface)
        missing = [m for m in ("map", "synthesize", "num_ws", "w_avg") if not hasattr(G, m)]
        if missing:
            raise ConfigError(f"The stylegan2 recipe needs a style generator (G.image=stylegan2); "
                              f"{cfg.G.image!r} has no {', '.join(missing)}.")
        return cls({"G": G, "D": D}, opts, info, cfg.batch_size)

    def r1_gamma_for(self, world_size: int = 1) -> float:
        """The R1 weight: ``r1_gamma`` if >= 0, else the heuristic on the global batch (batch_size x ranks)."""
        if self.opts.r1_gamma >= 0:
            return self.opts.r1_gamma
        return r1_gamma_heuristic(self.info.resolution, self.batch_size * world_size)

    @property
    def r1_gamma(self) -> float:
        """The R1 weight of a one-process run (under DDP the loss uses ``r1_gamma_for(ctx.world_size)``)."""
        return self.r1_gamma_for(1)

    # ---- what the engine runs -----------------------------------------------------------------------------
    def phases(self) -> list[Phase]:
        phases = [Phase("D", self.d_loss, "D", batch="new")]
        if self.r1_gamma > 0:
            phases.append(Phase("D_r1", self.r1_loss, "D", every=self.opts.r1_interval, batch="last",
                                log_grad_norm=False))
        phases.append(Phase("G", self.g_loss, "G", batch="last"))
        if self.opts.pl_weight > 0:
            phases.append(Phase("G_pl", self.pl_loss, "G", every=self.opts.pl_interval, batch="last",
                                log_grad_norm=False))
        return phases

    # ---- helpers ------------------------------------------------------------------------------------------
    def _labels(self, batch: dict[str, torch.Tensor]) -> torch.Tensor | None:
        return batch["label"] if self.num_classes else None

    def _generate(self, n: int, label: torch.Tensor | None, ctx: StepContext, device: torch.device,
                  return_ws: bool = False):
        """G(z) with style mixing regularisation (probability ``style_mixing``, one cutoff per global batch in
        [1, num_ws), as NVlabs per batch) and fresh per-layer noise inputs; all randomness through ctx."""
        G = self.nets["G"]
        plain = unwrap(G)
        z = ctx.randn(n, self.opts.z_dim, device=device)                                # [N, z_dim]
        z_mix = cutoff = None
        if self.opts.style_mixing > 0:
            z_mix = ctx.randn(n, self.opts.z_dim, device=device)
            cutoff = mixing_cutoff(ctx.rand_shared(2, device=device), plain.num_ws, self.opts.style_mixing)
        noise = [ctx.randn(n, *shape, device=device) for shape in plain.noise_shapes]   # [N, 1, r, r] per layer
        return G(z, label, z_mix=z_mix, mix_cutoff=cutoff, return_ws=return_ws, noise=noise)

    def _d(self, images: torch.Tensor, label: torch.Tensor | None, ctx: StepContext) -> torch.Tensor:
        return self.nets["D"](self.augment(images, ctx), label)

    # ---- objective ----------------------------------------------------------------------------------------
    def d_loss(self, batch: dict[str, torch.Tensor], ctx: StepContext) -> dict[str, torch.Tensor]:
        real, label = batch["image"], self._labels(batch)                               # [N, C, R, R]
        with torch.no_grad():
            fake = self._generate(real.shape[0], label, ctx, real.device)
        real_score, fake_score = self._d(real, label, ctx), self._d(fake, label, ctx)    # [N], [N]
        loss = F.softplus(fake_score).mean() + F.softplus(-real_score).mean()          # -log(1 - s(f)) - log s(r)
        out = {"loss": loss, "D/real": real_score.detach().mean(), "D/fake": fake_score.detach().mean(),
               "D/real_sign": real_score.detach().sign().mean()}
        out.update(self.augment.observe(real_score, ctx))
        return out

    def r1_loss(self, batch: dict[str, torch.Tensor], ctx: StepContext) -> dict[str, torch.Tensor]:
        """gamma/2 E ||grad_x D(aug(x))||^2 on reals (Mescheder et al. 2018, eq. 9; through the augmentation,
        as StyleGAN2-ADA); the engine multiplies it by the interval."""
        real, label = batch["image"], self._labels(batch)
        r1 = r1_penalty(lambda x: self._d(x, label, ctx), real)
        return {"loss": 0.5 * self.r1_gamma_for(ctx.world_size) * r1, "D/r1": r1.detach()}

    def g_loss(self, batch: dict[str, torch.Tensor], ctx: StepContext) -> dict[str, torch.Tensor]:
        real, label = batch["image"], self._labels(batch)
        fake = self._generate(real.shape[0], label, ctx, real.device)
        loss = F.softplus(-self._d(fake, label, ctx)).mean()                            # non-saturating
        return {"loss": loss}

    def pl_loss(self, batch: dict[str, torch.Tensor], ctx: StepContext) -> dict[str, torch.Tensor]:
        real, label = batch["image"], self._labels(batch)
        n = max(1, real.shape[0] // self.opts.pl_batch_shrink)
        label = None if label is None else label[:n]
        img, ws = self._generate(n, label, ctx, real.device, return_ws=True)
        h, w = img.shape[2], img.shape[3]
        noise = ctx.randn(n, *img.shape[1:], device=img.device) / math.sqrt(h * w)
        penalty, lengths, new_mean = path_length_penalty(img, ws, noise, self.pl_mean, self.opts.pl_decay,
                                                         batch_mean=lambda v: global_mean(v, ctx))
        with torch.no_grad():
            self.pl_mean.copy_(new_mean.detach())
        return {"loss": self.opts.pl_weight * penalty.mean(), "G/pl_length": lengths.detach().mean(),
                "G/pl_mean": new_mean.detach()}

    # ---- using the model ----------------------------------------------------------------------------------
    def fixed_inputs(self, n: int, seed: int, dataset: Any) -> dict[str, Any]:
        z = torch.randn(n, self.opts.z_dim, generator=torch.Generator().manual_seed(seed))
        fixed: dict[str, Any] = {"z": z}
        if self.num_classes:
            fixed["label"] = torch.arange(n) % self.num_classes
        return fixed

    @torch.no_grad()
    def snapshot(self, fixed: dict[str, Any], nets: nn.ModuleDict) -> list:
        G = nets["G"]
        device = next(G.parameters()).device
        label = fixed.get("label")
        was = G.training
        G.eval()
        out = G(fixed["z"].to(device), None if label is None else label.to(device), noise_mode="const")
        G.train(was)
        nrow = self.num_classes if self.num_classes else max(1, int(len(out) ** 0.5))
        return [ImageGrid(out, nrow=nrow)]

    def samplers(self, nets: nn.ModuleDict | None = None) -> dict[str, "StyleSampler"]:
        G = (nets if nets is not None else self.nets)["G"]
        return {"default": StyleSampler(unwrap(G))}


# ---- the sampler of models with a W space ---------------------------------------------------------------------

@sampler_kinds.register("style")
class StyleSampler(NoiseSampler):
    """A noise sampler over a style generator (``map`` z -> ws, ``synthesize`` ws -> images, ``w_avg``).

    ``--truncation psi``: w <- w_avg + psi (w - w_avg) (Karras et al. 2019, sec. 5.1; 1 = off, 0 = the average
    image). Pictures (sample, interpolate, mix, project) use the fixed noise buffers (``noise_mode="const"``,
    NVlabs generate.py's default), so a seed always gives the same image; metrics draw fresh noise per image,
    seeded from the metrics' seed. ``interpolate``: "linear" is linear in W (the StyleGAN papers' path),
    "slerp" is spherical in Z, then mapped.
    """

    kind = "style"
    commands = ("sample", "interpolate", "mix", "project")
    options = ("label", "truncation")

    def __init__(self, generator: nn.Module, noise_mode: str = "const"):
        super().__init__(generator, "image")
        self.noise_mode = noise_mode
        self.psi = 1.0                                   # truncation used by __call__ (metrics)

    @property
    def device(self) -> torch.device:
        return next(self.G.parameters()).device

    @torch.no_grad()
    def images_from_ws(self, ws: torch.Tensor, noise_mode: str | None = None, batch_size: int = 64) -> torch.Tensor:
        """ws [N, num_ws, w_dim] -> images [N, C, R, R] in [-1, 1], on the CPU."""
        was = self.G.training
        self.G.eval()
        try:
            outs = [self.G.synthesize(ws[i:i + batch_size].to(self.device), noise_mode or self.noise_mode).float().cpu()
                    for i in range(0, len(ws), batch_size)]
        finally:
            self.G.train(was)
        return torch.cat(outs) if outs else torch.empty(0)

    @torch.no_grad()
    def ws_for(self, z: torch.Tensor, label: torch.Tensor | None, psi: float = 1.0) -> torch.Tensor:
        """z [N, z_dim] -> ws [N, num_ws, w_dim] (truncated by psi), on the CPU; no w_avg update."""
        lab = None if label is None else label.to(self.device)
        return self.G.map(z.to(self.device), lab, psi=psi, update_w_avg=False).cpu()

    def _psi(self, truncation: float | None) -> float:
        psi = 1.0 if truncation is None else float(truncation)
        if not 0 <= psi <= 1:
            raise ConfigError(f"--truncation is StyleGAN2's psi in [0, 1] (1 = off, 0.7 is common), got {psi}.")
        return psi

    def __call__(self, n: int, seed: int) -> torch.Tensor:
        from ..sample import default_labels
        z = torch.randn(n, self.G.z_dim, generator=torch.Generator().manual_seed(int(seed)))
        ws = self.ws_for(z, default_labels(self.G, n), self.psi)
        devices = [self.device] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(int(seed) + 1)
            return self.images_from_ws(ws, noise_mode="random")

    def draw(self, n: int | None = None, seed: int = 0, seeds: Sequence[int] | None = None,
             label: int | None = None, truncation: float | None = None) -> torch.Tensor:
        from ..sample import default_labels, latents_for_seeds
        if seeds is not None:
            z = latents_for_seeds(seeds, self.G.z_dim)
        else:
            if n is None or n < 1:
                raise ConfigError("Give a positive number of samples (n) or a list of seeds.")
            z = torch.randn(n, self.G.z_dim, generator=torch.Generator().manual_seed(int(seed)))
        return self.images_from_ws(self.ws_for(z, default_labels(self.G, len(z), label), self._psi(truncation)))

    def interpolate(self, seed_a: int, seed_b: int, steps: int, mode: str, label: int | None = None,
                    truncation: float | None = None) -> torch.Tensor:
        from ..sample import default_labels, latents_for_seeds, slerp
        if steps < 2:
            raise ConfigError(f"--steps must be at least 2, got {steps}.")
        za, zb = latents_for_seeds([seed_a, seed_b], self.G.z_dim)
        t = torch.linspace(0, 1, steps)[:, None]                                         # [steps, 1]
        labels = default_labels(self.G, steps, label)
        if labels is not None and label is None:
            labels = torch.zeros_like(labels)                                            # one class along the path
        psi = self._psi(truncation)
        if mode == "linear":                                                             # linear in W
            wa = self.ws_for(za[None], None if labels is None else labels[:1], psi)
            wb = self.ws_for(zb[None], None if labels is None else labels[:1], psi)
            return self.images_from_ws(torch.lerp(wa, wb, t[:, :, None]))
        if mode != "slerp":
            raise ConfigError(f"Interpolation mode must be slerp or linear, got {mode!r}.")
        return self.images_from_ws(self.ws_for(slerp(za[None], zb[None], t), labels, psi))

    def style_ranges(self) -> dict[str, tuple[int, int]]:
        from ..nets.stylegan2 import style_groups
        return style_groups(self.G.num_ws)

    def mix(self, row_seeds: Sequence[int], col_seeds: Sequence[int], styles: str = "coarse",
            truncation: float | None = None, label: int | None = None) -> torch.Tensor:
        """The style-mixing figure (Karras et al. 2019, fig. 3): a (1 + rows) x (1 + cols) grid, the column
        seeds' images on top, the row seeds' down the left, and in cell (r, c) the row seed's ws with the layers
        ``styles`` (coarse | middle | fine | A-B, a range of layer indices) taken from the column seed."""
        from ..sample import default_labels, latents_for_seeds
        start, stop = parse_styles(styles, self.G.num_ws)
        psi = self._psi(truncation)
        lab = default_labels(self.G, 1, label)
        z_rows, z_cols = latents_for_seeds(row_seeds, self.G.z_dim), latents_for_seeds(col_seeds, self.G.z_dim)
        lab_r = None if lab is None else lab[:1].expand(len(z_rows)).clone()
        lab_c = None if lab is None else lab[:1].expand(len(z_cols)).clone()
        w_rows, w_cols = self.ws_for(z_rows, lab_r, psi), self.ws_for(z_cols, lab_c, psi)
        cells = []
        for wr in w_rows:
            for wc in w_cols:
                w = wr.clone()
                w[start:stop] = wc[start:stop]
                cells.append(w)
        row_img, col_img = self.images_from_ws(w_rows), self.images_from_ws(w_cols)
        mixed = self.images_from_ws(torch.stack(cells))
        blank = torch.ones_like(row_img[:1])                                             # white corner
        grid = [blank, *col_img]
        for r in range(len(row_seeds)):
            grid.extend([row_img[r:r + 1], *[mixed[r * len(col_seeds) + c:r * len(col_seeds) + c + 1]
                                             for c in range(len(col_seeds))]])
        return torch.cat([g if g.dim() == 4 else g[None] for g in grid])


    def project(self, target: Any, steps: int = 1000, vgg_weights: str | None = None, seed: int = 0,
                label: int | None = None, progress: Any = None):
        """Invert an image (a path, or a [1, C, R, R] tensor in [-1, 1]) into W: ``gankit.projector.project``."""
        from ..projector import load_target, project
        from ..sample import default_labels
        if not isinstance(target, torch.Tensor):
            target = load_target(target, self.G.out_channels, self.G.resolution)
        lab = default_labels(self.G, 1, label)
        return project(self.G, target, steps=steps, vgg_weights=vgg_weights, seed=seed, label=lab,
                       progress=progress)


def parse_styles(text: str, num_ws: int) -> tuple[int, int]:
    """'coarse' | 'middle' | 'fine' | 'A-B' (inclusive layer indices) -> [start, stop) of ws layers."""
    from ..nets.stylegan2 import style_groups
    groups = style_groups(num_ws)
    if text in groups:
        start, stop = groups[text]
    else:
        try:
            a, b = (int(v) for v in text.split("-", 1))
        except ValueError:
            raise ConfigError(f"--styles must be coarse, middle, fine or a layer range A-B (0..{num_ws - 1}), "
                              f"got {text!r}.") from None
        start, stop = a, b + 1
    if not 0 <= start < stop <= num_ws:
        raise ConfigError(f"--styles {text!r}: this generator has layers 0..{num_ws - 1} ({num_ws} styles); "
                          f"coarse/middle/fine = {groups}.")
    return start, stop
