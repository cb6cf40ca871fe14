"""Projecting an image into the W space of a style generator (Karras et al. 2020, StyleGAN2 sec. 5 and appendix
D; NVlabs stylegan2-ada-pytorch projector.py).

One w (broadcast to every layer), started at the W average, and the generator's noise maps are optimised with
Adam to make G(w) look like the target:

    loss = distance(G(w + n_t), target) + noise_weight * sum_maps sum_scales (mean(x * roll_x(x))^2 +
           mean(x * roll_y(x))^2)

where n_t ~ N(0, (0.05 sigma_W max(0, 1 - t / 0.75))^2) is the ramped-down exploration noise on w, the
regulariser pushes the noise maps towards spatially uncorrelated noise at every scale (down to 8x8), and the
maps are renormalised to zero mean, unit variance after each step. Learning rate 0.1 with a 5% cosine ramp-up
and a 25% cosine ramp-down (all NVlabs' values).

distance: LPIPS (Zhang et al. 2018) with VGG16 when ``vgg_weights`` names a torchvision ``vgg16`` state dict
(the ``features.*`` keys of ``torchvision.models.vgg16``; nothing is downloaded); its linear heads are the ones
torchmetrics ships (``lpips_models/vgg.pth``). Images under 64 px are upsampled to 64 for VGG, images over 256
px area-downsampled to 256 (NVlabs). Without VGG weights: a multi-scale pixel loss, the mean squared error at
full, 1/2 and 1/4 resolution (average pooling), summed; it matches colours and layout but not texture the way
LPIPS does.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from .errors import ConfigError


@dataclass
class Projection:
    ws: torch.Tensor                    # [1, num_ws, w_dim] the projected w, broadcast
    image: torch.Tensor                 # [1, C, R, R] G(ws) in [-1, 1] with the optimised noise
    losses: list[float] = field(default_factory=list)   # distance per step (one host read per step: a CLI tool)
    noise: dict[str, torch.Tensor] = field(default_factory=dict)   # the optimised noise maps
    target: torch.Tensor | None = None  # [1, C, R, R] what was projected
    distance_name: str = ""             # "lpips-vgg16" or "pixel-multiscale"


def pixel_distance(a: torch.Tensor, b: torch.Tensor, scales: int = 3) -> torch.Tensor:
    """sum over s = 0..scales-1 of MSE(avgpool_{2^s}(a), avgpool_{2^s}(b)): [N] (the fallback without VGG)."""
    total = 0
    for s in range(scales):
        if s:
            if a.shape[-1] < 2:
                break
            a, b = F.avg_pool2d(a, 2), F.avg_pool2d(b, 2)
        total = total + (a - b).square().flatten(1).mean(1)
    return total


class LPIPSDistance(nn.Module):
    """LPIPS-VGG (Zhang et al. 2018) from torchmetrics' implementation and linear heads, with the VGG16 backbone
    loaded from ``vgg_weights`` (a torchvision vgg16 state dict). Inputs [N, C, H, W] in [-1, 1]."""

    def __init__(self, vgg_weights: str | Path):
        super().__init__()
        path = Path(vgg_weights)
        if not path.is_file():
            raise ConfigError(f"--vgg {str(path)!r} does not exist: give a torchvision vgg16 state dict (.pth).")
        try:
            from torchmetrics.functional.image.lpips import _LPIPS
        except ImportError as e:                                   # pragma: no cover - torchmetrics is a dependency
            raise ConfigError(f"LPIPS needs torchmetrics: {e}") from None
        from torchvision.models.vgg import cfgs, make_layers
        state = torch.load(path, map_location="cpu", weights_only=True)
        if isinstance(state, dict) and "state_dict" in state:
            state = state["state_dict"]
        vgg_features = make_layers(cfgs["D"], batch_norm=False)        # torchvision vgg16's .features
        features = {k[len("features."):]: v for k, v in state.items() if k.startswith("features.")}
        expected = vgg_features.state_dict()
        if set(features) != set(expected) or any(features[k].shape != expected[k].shape for k in expected):
            raise ConfigError(f"--vgg {str(path)!r} is not a torchvision vgg16 state dict: it needs the keys "
                              f"features.0.weight ... features.28.bias with vgg16's shapes.")
        vgg_features.load_state_dict(features)
        self.lpips = _LPIPS(pretrained=True, net="vgg", pnet_rand=True)   # heads from torchmetrics, no download
        for slice_ in (self.lpips.net.slice1, self.lpips.net.slice2, self.lpips.net.slice3, self.lpips.net.slice4,
                       self.lpips.net.slice5):
            for name, module in slice_.named_children():
                module.load_state_dict(vgg_features[int(name)].state_dict())
        self.lpips.eval().requires_grad_(False)

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        if a.shape[1] == 1:
            a, b = a.repeat(1, 3, 1, 1), b.repeat(1, 3, 1, 1)
        if a.shape[-1] > 256:
            a, b = F.interpolate(a, size=(256, 256), mode="area"), F.interpolate(b, size=(256, 256), mode="area")
        elif a.shape[-1] < 64:
            a = F.interpolate(a, size=(64, 64), mode="bilinear", align_corners=False)
            b = F.interpolate(b, size=(64, 64), mode="bilinear", align_corners=False)
        return self.lpips(a, b).reshape(-1)


def noise_regularization(noise_maps: list[torch.Tensor]) -> torch.Tensor:
    """sum over maps and scales (halving down to 8x8) of mean(x * roll_x(x))^2 + mean(x * roll_y(x))^2."""
    reg = 0
    for n in noise_maps:
        x = n[None, None]                                                                # [1, 1, H, W]
        while True:
            reg = reg + (x * torch.roll(x, 1, dims=3)).mean().square() + (x * torch.roll(x, 1, dims=2)).mean().square()
            if x.shape[2] <= 8:
                break
            x = F.avg_pool2d(x, 2)
    return reg


def project(G: nn.Module, target: torch.Tensor, steps: int = 1000, vgg_weights: str | Path | None = None,
            seed: int = 0, initial_lr: float = 0.1, noise_weight: float = 1e5, w_avg_samples: int = 10000,
            label: torch.Tensor | None = None, progress: Callable[[int, float], None] | None = None) -> Projection:
    """Invert ``target`` [1, C, R, R] in [-1, 1] (G's channels and resolution) into G's W space.

    G is a style generator (``map``, ``synthesize``, ``num_ws``, and noise buffers ``noise_const``); it is
    deep-copied, so the caller's network is left as it was.
    """
    import copy
    if steps < 1:
        raise ConfigError(f"--steps must be at least 1, got {steps}.")
    device = next(G.parameters()).device
    G = copy.deepcopy(G).eval().requires_grad_(False)
    res = G.resolution
    if tuple(target.shape) != (1, G.out_channels, res, res):
        raise ConfigError(f"The target must be [1, C, {res}, {res}] for this generator, got {tuple(target.shape)}.")
    target = target.to(device)
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)

    # -- W statistics: mean and spread of w over w_avg_samples latents (NVlabs: 10,000).
    with torch.no_grad():
        z = torch.randn(w_avg_samples, G.z_dim, generator=gen).to(device)
        lab = None if label is None else label.to(device).expand(w_avg_samples)
        w = G.map(z, lab, update_w_avg=False)[:, :1, :]                                  # [S, 1, w_dim]
        w_avg = w.mean(0, keepdim=True)                                                  # [1, 1, w_dim]
        w_std = ((w - w_avg).square().sum() / w_avg_samples).sqrt().item()

    distance: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    distance = LPIPSDistance(vgg_weights).to(device) if vgg_weights else pixel_distance

    noise_bufs = {name: buf for name, buf in G.synthesis.named_buffers() if name.endswith("noise_const")}
    w_opt = w_avg.clone().requires_grad_(True)
    opt = torch.optim.Adam([w_opt, *noise_bufs.values()], betas=(0.9, 0.999), lr=initial_lr)
    with torch.no_grad():
        for buf in noise_bufs.values():
            buf.copy_(torch.randn(buf.shape, generator=gen).to(device))
            buf.requires_grad_(True)

    losses: list[float] = []
    for step in range(steps):
        t = step / steps
        noise_scale = w_std * 0.05 * max(0.0, 1.0 - t / 0.75) ** 2
        lr_ramp = min(1.0, (1.0 - t) / 0.25)
        lr_ramp = 0.5 - 0.5 * math.cos(lr_ramp * math.pi)
        lr_ramp = lr_ramp * min(1.0, t / 0.05)
        for group in opt.param_groups:
            group["lr"] = initial_lr * lr_ramp
        ws = (w_opt + torch.randn(w_opt.shape, generator=gen).to(device) * noise_scale).expand(-1, G.num_ws, -1)
        synth = G.synthesize(ws, noise_mode="const")
        dist = distance(synth, target).sum()
        loss = dist + noise_weight * noise_regularization(list(noise_bufs.values()))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():                                                            # renormalise the maps
            for buf in noise_bufs.values():
                buf -= buf.mean()
                buf *= buf.square().mean().rsqrt()
        losses.append(float(dist.detach()))
        if progress is not None:
            progress(step, losses[-1])

    with torch.no_grad():
        ws = w_opt.detach().expand(-1, G.num_ws, -1).clone()
        image = G.synthesize(ws, noise_mode="const")
    return Projection(ws.cpu(), image.cpu(), losses, {k: v.detach().cpu().clone() for k, v in noise_bufs.items()},
                      target.cpu(), "lpips-vgg16" if vgg_weights else "pixel-multiscale")


def load_target(path: str | Path, channels: int, resolution: int) -> torch.Tensor:
    """An image file -> [1, C, R, R] in [-1, 1]: centre-cropped to a square, resized (Lanczos), grey or RGB."""
    from PIL import Image

    import numpy as np
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"--target {str(path)!r} does not exist.")
    try:
        img = Image.open(path)
        img = img.convert("L" if channels == 1 else "RGB")
    except OSError as e:
        raise ConfigError(f"Cannot read --target {str(path)!r} as an image: {e}") from None
    w, h = img.size
    s = min(w, h)
    img = img.crop(((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s))
    img = img.resize((resolution, resolution), Image.LANCZOS)
    arr = np.asarray(img, dtype=np.float32)
    arr = arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)
    return torch.from_numpy(arr / 127.5 - 1)[None]
