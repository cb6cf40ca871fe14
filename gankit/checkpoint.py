"""Data-only checkpoints: atomic save, safe load, and rebuilding a recipe from a checkpoint.

A checkpoint is a dict of tensors and plain values (DESIGN.md principle 5), readable with
``torch.load(path, weights_only=True)``; it never pickles modules or code:

    {'format': 'gankit', 'version': 1, 'gankit_version': str,
     'config': TrainConfig as a dict, 'data_info': DataInfo as a dict,
     'nimg': int, 'step': int, 'nets': recipe.state_dict(), 'ema': {name: state_dict} | None,
     'opt': {'G': ..., 'D': ...}, 'rng': {'torch': ByteTensor, 'cuda': [ByteTensor, ...]},
     'stream': BatchStream.state_dict(), 'lr_scale': float, 'best': {...} | None}
"""
from __future__ import annotations

import copy
import os
import pickle
import tempfile
from pathlib import Path
from typing import Any

import torch

from .errors import CheckpointError

FORMAT = "gankit"
VERSION = 1


def atomic_write(path: str | Path, write) -> None:
    """Write through a temporary file in the same folder, fsync, then rename over ``path``.

    A crash at any moment leaves either the old file or the new one, never a truncated mix.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: Path, data: bytes) -> None:
    atomic_write(path, lambda f: f.write(data))


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def save_checkpoint(state: dict, path: str | Path) -> None:
    from . import __version__
    state = {"format": FORMAT, "version": VERSION, "gankit_version": __version__, **state}
    atomic_write(Path(path), lambda f: torch.save(state, f))


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict:
    """Load a gankit checkpoint with ``weights_only=True``; refuse anything else with a clear message."""
    path = Path(path)
    if path.is_dir():
        path = path / "latest.pt"
    if not path.is_file():
        raise CheckpointError(f"Checkpoint {str(path)!r} does not exist. Pass a run directory (its latest.pt is "
                              "used) or a ckpt-<kimg>.pt / latest.pt file.")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        if "Unsupported global" not in str(e) and "GLOBAL" not in str(e):
            raise CheckpointError(f"Cannot read checkpoint {str(path)!r}: it is not a torch file "
                                  f"({str(e).splitlines()[0][:200]}).") from None
        raise CheckpointError(
            f"Refusing to load {str(path)!r}: it contains pickled Python objects (code), which gankit never writes "
            f"and will not execute. Only data-only gankit checkpoints are accepted."
        ) from None
    except Exception as e:  # truncated / not a torch file
        raise CheckpointError(f"Cannot read checkpoint {str(path)!r}: {type(e).__name__}: {e}") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise CheckpointError(f"{str(path)!r} is not a gankit checkpoint (no 'format': 'gankit' entry).")
    if ckpt.get("version", 0) > VERSION:
        raise CheckpointError(f"{str(path)!r} was written by a newer gankit (checkpoint version {ckpt['version']}, "
                              f"this gankit reads up to {VERSION}); upgrade gankit.")
    return ckpt


def load_recipe(path: str | Path, device: str | torch.device = "cpu", ema: bool = True):
    """Rebuild the recipe of a checkpoint. Returns ``(recipe, cfg, info, nets)``.

    ``nets`` is the ``ModuleDict`` to sample with: the EMA copies of the generators where the run kept them
    (and ``ema`` is true), merged over the trained networks. Everything is in eval mode without gradients.
    """
    from torch import nn

    from .config import from_dict
    from .data.base import DataInfo
    from .recipes import recipes
    ckpt = load_checkpoint(path)
    cfg = from_dict(ckpt["config"])
    info = DataInfo(**ckpt["data_info"])
    recipe = recipes.get(cfg.recipe).from_config(cfg, info)
    recipe.load_state_dict(ckpt["nets"])
    recipe.to(device).eval().requires_grad_(False)
    nets = nn.ModuleDict(dict(recipe.nets.items()))
    if ema and ckpt.get("ema"):
        for name, state in ckpt["ema"].items():
            net = copy.deepcopy(recipe.nets[name])
            net.load_state_dict(state)
            nets[name] = net.to(device).eval().requires_grad_(False)
    return recipe, cfg, info, nets


def load_generator(path: str | Path, device: str | torch.device = "cpu", ema: bool = True,
                   name: str | None = None) -> torch.nn.Module:
    """The (EMA) generator of a checkpoint as a plain ``nn.Module`` in eval mode."""
    recipe, _, _, nets = load_recipe(path, device, ema)
    name = name or recipe.generator_names[0]
    if name not in nets:
        raise CheckpointError(f"No network {name!r} in this checkpoint; it has {', '.join(nets.keys())}.")
    return nets[name]
