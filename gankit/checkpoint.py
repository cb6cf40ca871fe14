"""Data-only checkpoints: atomic save, safe load, and the migration of older checkpoint versions.

A checkpoint is a dict of tensors and plain values (DESIGN.md principle 5), readable with
``torch.load(path, weights_only=True)``; it never pickles modules or code:

    {'format': 'gankit', 'version': 2, 'gankit_version': str,
     'config': TrainConfig as a dict, 'data_info': DataInfo as a dict,
     'nimg': int, 'step': int, 'structure': recipe.structure_state() (shapes of networks that grow),
     'nets': recipe.state_dict(), 'opt': {optimiser name: state_dict}, 'rng': {'torch': ByteTensor, 'cuda': [...]},
     'stream': BatchStream.state_dict(), 'lr_scale': float, 'best': {...} | None,
     'summary': facts the strategies report ({'epsilon': ..., 'delta': ..., 'privacy': {...}} under DP-SGD),
     <strategy name>: that strategy's state ('ema': {name: state_dict}, 'amp': {...}, 'privacy': {...}, ...)}

Version 1 (gankit 0.1 before the engine's second contract) named the optimiser sections ``g_opt`` / ``d_opt``
and AMP a boolean; ``load_checkpoint`` upgrades such files in memory (``migrate``), so old runs stay usable.
Rebuilding networks from a checkpoint is ``gankit.loading``'s job, not this module's.
"""
from __future__ import annotations

import pickle
from pathlib import Path

import torch

from .errors import CheckpointError
from .io import atomic_write
from .version import __version__

FORMAT = "gankit"
VERSION = 2


def save_checkpoint(state: dict, path: str | Path) -> None:
    state = {"format": FORMAT, "version": VERSION, "gankit_version": __version__, **state}
    atomic_write(Path(path), lambda f: torch.save(state, f))


def migrate(ckpt: dict) -> dict:
    """Upgrade an older checkpoint's layout to this version's (in memory; the file is left as it is)."""
    if ckpt.get("version", 1) < 2 and isinstance(ckpt.get("config"), dict):
        cfg = dict(ckpt["config"])
        opt = {}
        for old, new in (("g_opt", "G"), ("d_opt", "D")):
            if old in cfg:
                opt[new] = cfg.pop(old)
        if opt:
            cfg["opt"] = opt
        if isinstance(cfg.get("amp"), bool):
            cfg["amp"] = "bf16" if cfg["amp"] else "off"
        ckpt = {**ckpt, "config": cfg, "version": 2}
    return ckpt


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
    return migrate(ckpt)
