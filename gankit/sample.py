"""Using a trained generator: seeded sampling, image grids, 2-D scatter plots, interpolation."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import nn

from .io import atomic_write_bytes
from .errors import ConfigError
from .images import to_uint8


def latents_for_seeds(seeds: Sequence[int], z_dim: int) -> torch.Tensor:
    """One latent per seed, z_s = randn(z_dim) from a generator seeded with s: image s never depends on
    which other seeds are asked for (as in StyleGAN's --seeds)."""
    return torch.stack([torch.randn(z_dim, generator=torch.Generator().manual_seed(int(s))) for s in seeds])


def _device_of(net: nn.Module) -> torch.device:
    p = next(net.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


def balanced_labels(num_classes: int, n: int, start: int = 0) -> torch.Tensor:
    """Class labels [n] (long) for samples start, ..., start + n - 1 of an evaluation: sample i gets i mod C.

    The one rule every conditional sampler follows when its caller asks for no particular class: labels are a
    function of the sample's global index over the whole evaluation (``start`` comes through the metrics'
    ``gen(n, seed, start=...)`` call), not of its place in a batch. Over N samples each class then appears
    floor(N / C) or ceil(N / C) times, whatever the batch size, the number of ranks or N itself; cycling per
    call instead gives classes 0..k a whole extra share in every short batch (with C = 10, batch 64 and
    N = 10000: 1094 of classes 0-3 against 938 of 4-9), which biases FID/KID/IS and the mode KL.
    """
    return (start + torch.arange(n)) % num_classes


def default_labels(generator: nn.Module, n: int, label: int | None = None, start: int = 0) -> torch.Tensor | None:
    """Labels for ``n`` samples of a conditional generator (None for an unconditional one): all ``label``, or
    the classes in turn from the global sample index ``start``: sample start + i gets class (start + i) mod C,
    so any evaluation of N samples, however batched, holds every class N / C times to within one."""
    num_classes = getattr(generator, "num_classes", 0)
    if not num_classes:
        if label is not None:
            raise ConfigError("--label was given, but this generator is not class-conditional.")
        return None
    if label is not None:
        if not 0 <= label < num_classes:
            raise ConfigError(f"--label must be in 0..{num_classes - 1} for this generator, got {label}.")
        return torch.full((n,), int(label), dtype=torch.long)
    return balanced_labels(num_classes, n, start)


@torch.no_grad()
def generate(generator: nn.Module, z: torch.Tensor, label: torch.Tensor | None = None,
             batch_size: int = 256) -> torch.Tensor:
    """G(z, label) in batches, in eval mode; returns [N, ...] on the CPU."""
    device = _device_of(generator)
    was_training = generator.training
    generator.eval()
    try:
        outs = []
        for i in range(0, len(z), batch_size):
            lab = None if label is None else label[i:i + batch_size].to(device)
            outs.append(generator(z[i:i + batch_size].to(device), lab).float().cpu())
        return torch.cat(outs) if outs else torch.empty(0)
    finally:
        generator.train(was_training)


def sample(generator: nn.Module, n: int | None = None, seed: int = 0, seeds: Sequence[int] | None = None,
           label: int | None = None, batch_size: int = 256, start: int = 0) -> torch.Tensor:
    """Draw samples: ``n`` latents from one seeded generator, or one latent per entry of ``seeds``.

    Returns images [N, C, H, W] in [-1, 1] (or vectors [N, D]) on the CPU. Conditional generators cycle
    through the classes from the global index ``start`` of the first sample (``default_labels``) unless
    ``label`` fixes one.
    """
    z_dim = generator.z_dim
    if seeds is not None:
        z = latents_for_seeds(seeds, z_dim)
    else:
        if n is None or n < 1:
            raise ConfigError("Give a positive number of samples (n) or a list of seeds.")
        z = torch.randn(n, z_dim, generator=torch.Generator().manual_seed(int(seed)))
    return generate(generator, z, default_labels(generator, len(z), label, start), batch_size)


# ---- pictures ----------------------------------------------------------------------------------------------

def grid_uint8(images: torch.Tensor, nrow: int | None = None, padding: int = 2) -> np.ndarray:
    """[N, C, H, W] in [-1, 1] -> one HWC uint8 array laid out ``nrow`` images per row."""
    from torchvision.utils import make_grid
    nrow = nrow or max(1, int(math.ceil(math.sqrt(len(images)))))
    grid = make_grid(images.float().cpu(), nrow=nrow, padding=padding, pad_value=1.0)  # [3, H', W']
    arr = to_uint8(grid).permute(1, 2, 0).numpy()
    return arr[..., :1].repeat(3, axis=2) if images.shape[1] == 1 else arr


def png_bytes(arr: np.ndarray) -> bytes:
    import io

    from PIL import Image
    buf = io.BytesIO()
    Image.fromarray(arr.squeeze(-1) if arr.shape[-1] == 1 else arr).save(buf, format="PNG")
    return buf.getvalue()


def save_grid(images: torch.Tensor, path: str | Path, nrow: int | None = None) -> Path:
    path = Path(path)
    atomic_write_bytes(path, png_bytes(grid_uint8(images, nrow)))
    return path


def save_images(images: torch.Tensor, folder: str | Path, names: Sequence[str]) -> list[Path]:
    """One PNG per image; refuses to overwrite existing files."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / name for name in names]
    existing = [p for p in paths if p.exists()]
    if existing:
        raise ConfigError(f"{len(existing)} file(s) already exist in {str(folder)!r} (e.g. {existing[0].name}); "
                          "choose an empty folder: gankit never overwrites results.")
    u8 = to_uint8(images).permute(0, 2, 3, 1).numpy()  # [N, H, W, C]
    for arr, p in zip(u8, paths):
        atomic_write_bytes(p, png_bytes(arr))
    return paths


def scatter_png(points: torch.Tensor, path: str | Path, real: torch.Tensor | None = None,
                centers: Sequence[Sequence[float]] | None = None, title: str = "") -> Path:
    """2-D samples over the real data / mode centres, as a PNG (matplotlib, no display needed)."""
    import io

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(5, 5), dpi=100)
    if real is not None:
        r = real[:, :2].cpu().numpy()
        ax.scatter(r[:, 0], r[:, 1], s=2, c="tab:blue", alpha=0.3, label="real")
    if centers is not None and len(centers):
        c = np.asarray(centers)
        ax.scatter(c[:, 0], c[:, 1], s=40, marker="x", c="black", label="modes")
    p = points[:, :2].cpu().numpy()
    ax.scatter(p[:, 0], p[:, 1], s=2, c="tab:red", alpha=0.5, label="generated")
    ax.set_aspect("equal")
    ax.legend(loc="upper right", fontsize=7)
    if title:
        ax.set_title(title, fontsize=9)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    plt.close(fig)
    atomic_write_bytes(Path(path), buf.getvalue())
    return Path(path)


# ---- interpolation -----------------------------------------------------------------------------------------

def slerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation (Shoemake 1985), recommended for Gaussian latents by White 2016."""
    a_n, b_n = a / a.norm(dim=-1, keepdim=True), b / b.norm(dim=-1, keepdim=True)
    omega = torch.acos((a_n * b_n).sum(-1, keepdim=True).clamp(-1 + 1e-7, 1 - 1e-7))
    so = torch.sin(omega)
    return torch.sin((1 - t) * omega) / so * a + torch.sin(t * omega) / so * b


def interpolate(generator: nn.Module, seed_a: int, seed_b: int, steps: int = 8, mode: str = "slerp",
                label: int | None = None) -> torch.Tensor:
    if steps < 2:
        raise ConfigError(f"--steps must be at least 2, got {steps}.")
    if mode not in ("slerp", "linear"):
        raise ConfigError(f"Interpolation mode must be slerp or linear, got {mode!r}.")
    za, zb = latents_for_seeds([seed_a, seed_b], generator.z_dim)
    t = torch.linspace(0, 1, steps).unsqueeze(1)  # [steps, 1]
    z = slerp(za[None], zb[None], t) if mode == "slerp" else (1 - t) * za + t * zb
    return generate(generator, z, default_labels(generator, steps, label))


def save_gif(images: torch.Tensor, path: str | Path, duration_ms: int = 120) -> Path:
    import io

    from PIL import Image
    u8 = to_uint8(images).permute(0, 2, 3, 1).numpy()
    frames = [Image.fromarray(f.squeeze(-1) if f.shape[-1] == 1 else f) for f in u8]
    frames = frames + frames[-2:0:-1]  # ping-pong loop
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:], duration=duration_ms, loop=0)
    atomic_write_bytes(Path(path), buf.getvalue())
    return Path(path)
