"""``gankit mix`` and ``gankit project``: the style-mixing figure and projection into W, for models whose sampler
has a W space (StyleGAN2; any sampler kind that lists "mix" / "project" in its ``commands``).

    gankit mix --ckpt runs/00001-stylegan2-mnist --rows 1,2,3 --cols 4,5,6 --styles coarse --out mix.png
    gankit project --ckpt runs/00001-stylegan2-mnist --target digit.png --out proj/ [--vgg vgg16.pth]

Nothing here imports torch at module level (``gankit --help`` stays fast); the work is the sampler's and
``gankit.projector``'s.
"""
from __future__ import annotations

import json
from pathlib import Path

import click

from .errors import ConfigError


def _load(ckpt: str, device: str, command: str, no_ema: bool = False):
    from .engine import resolve_device
    from .loading import load_sampler
    sampler = load_sampler(ckpt, resolve_device(device), ema=not no_ema)
    sampler.require(command)
    return sampler


@click.command()
@click.option("--ckpt", required=True, help="Checkpoint file or run directory.")
@click.option("--rows", required=True, help="Row seeds (their images down the left; the base styles), e.g. 1,2,3.")
@click.option("--cols", required=True, help="Column seeds (their images on top; the styles mixed in), e.g. 4,5,6.")
@click.option("--styles", default="coarse", show_default=True,
              help="Layers taken from the column seeds: coarse (4-8 px), middle (16-32 px), fine (64 px and up) "
                   "or a range A-B of layer indices.")
@click.option("--truncation", type=float, default=None, help="psi in [0, 1] (1 = off).")
@click.option("--label", type=int, default=None, help="Class for conditional models (default: 0).")
@click.option("--out", required=True, help="FILE.png: the grid.")
@click.option("--no-ema", is_flag=True, help="Use the trained generator instead of its EMA copy.")
@click.option("--device", default="auto", show_default=True)
def mix(ckpt, rows, cols, styles, truncation, label, out, no_ema, device):
    """Style mixing: each cell is a row seed with some of its styles from a column seed (StyleGAN fig. 3)."""
    from .cli import parse_seeds
    from .sample import save_grid
    out_path = Path(out)
    if out_path.suffix != ".png":
        raise ConfigError(f"--out must be a .png file, got {out!r}.")
    if out_path.exists():
        raise ConfigError(f"{out} already exists; gankit never overwrites results. Choose another --out.")
    row_seeds, col_seeds = parse_seeds(rows), parse_seeds(cols)
    sampler = _load(ckpt, device, "mix", no_ema)
    grid = sampler.mix(row_seeds, col_seeds, styles=styles, truncation=truncation, label=label)
    save_grid(grid, out_path, nrow=len(col_seeds) + 1)
    click.echo(f"Wrote a {len(row_seeds)} x {len(col_seeds)} style-mixing grid ({styles} styles from the columns) "
               f"to {out_path}")


@click.command()
@click.option("--ckpt", required=True, help="Checkpoint file or run directory.")
@click.option("--target", required=True, help="Image file to invert (centre-cropped and resized to the model's).")
@click.option("--out", required=True, help="Folder for projected_w.npz, proj.png, target.png, losses.json.")
@click.option("--steps", type=int, default=1000, show_default=True, help="Optimisation steps (NVlabs: 1000).")
@click.option("--vgg", default=None, help="torchvision vgg16 state dict (.pth): LPIPS distance. Without it, a "
                                          "multi-scale pixel loss (see gankit.projector).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--label", type=int, default=None, help="Class for conditional models (default: 0).")
@click.option("--no-ema", is_flag=True, help="Use the trained generator instead of its EMA copy.")
@click.option("--device", default="auto", show_default=True)
def project(ckpt, target, out, steps, vgg, seed, label, no_ema, device):
    """Invert an image into W (StyleGAN2's projector with noise regularisation)."""
    out_dir = Path(out)
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise ConfigError(f"--out {out!r} exists and is not an empty folder; gankit never overwrites results.")
    sampler = _load(ckpt, device, "project", no_ema)
    result = sampler.project(target, steps=steps, vgg_weights=vgg, seed=seed, label=label)
    from .io import atomic_write_bytes, atomic_write_text
    from .sample import save_grid
    out_dir.mkdir(parents=True, exist_ok=True)
    import io

    import numpy as np
    buf = io.BytesIO()
    np.savez(buf, w=result.ws.numpy(), **{k.replace(".", "/"): v.numpy() for k, v in result.noise.items()})
    atomic_write_bytes(out_dir / "projected_w.npz", buf.getvalue())
    save_grid(result.image, out_dir / "proj.png", nrow=1)
    save_grid(result.target, out_dir / "target.png", nrow=1)
    atomic_write_text(out_dir / "losses.json", json.dumps({"distance": result.distance_name,
                                                           "losses": result.losses}) + "\n")
    click.echo(f"Projected {target} in {steps} steps ({result.distance_name}, final distance "
               f"{result.losses[-1]:.4f}); wrote {out_dir}/projected_w.npz, proj.png, target.png, losses.json")


COMMANDS = [mix, project]
