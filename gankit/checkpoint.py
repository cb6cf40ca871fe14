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
from .io import atomic_write, damage_of
from .version import __version__

FORMAT = "gankit"
VERSION = 2
# What every checkpoint holds (to use its networks), and what continuing its run needs besides.
REQUIRED_KEYS = ("config", "data_info", "nets")
TRAINING_STATE_KEYS = ("nimg", "step", "opt", "rng", "stream")


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


def require_keys(ckpt: dict, keys: tuple[str, ...], path: str | Path, purpose: str) -> None:
    """A ``CheckpointError`` naming the entries ``ckpt`` lacks for ``purpose`` (never a bare KeyError later)."""
    missing = [k for k in keys if k not in ckpt]
    if missing:
        raise CheckpointError(f"Checkpoint {str(path)!r} lacks {', '.join(repr(k) for k in missing)}, which "
                              f"{purpose} needs (it has {', '.join(sorted(map(str, ckpt))) or 'nothing'}). It was not "
                              f"written whole by gankit's trainer; use another ckpt-<kimg>.pt of the run.")


def load_module_state(module: torch.nn.Module, state: dict, path: str | Path, what: str = "networks") -> None:
    """``module.load_state_dict(state)`` with a ``CheckpointError`` naming missing / unexpected / misshapen keys."""
    try:
        module.load_state_dict(state)
    except RuntimeError as e:
        lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()][1:4]
        raise CheckpointError(f"The {what} in {str(path)!r} do not fit the model its config builds: "
                              f"{' '.join(lines)[:600]}") from None


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu",
                    require: tuple[str, ...] = ()) -> dict:
    """Load a gankit checkpoint with ``weights_only=True``; refuse anything else with a clear message.

    ``require``: entries the caller needs (``REQUIRED_KEYS`` to use the networks, ``+ TRAINING_STATE_KEYS`` to
    resume); a file without them gets a ``CheckpointError`` naming them, never a KeyError later."""
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
            damage = damage_of(path)
            raise CheckpointError(f"Cannot read checkpoint {str(path)!r}: it "
                                  f"{damage or 'is not a torch file'} ({str(e).splitlines()[0][:200]}).") from None
        raise CheckpointError(
            f"Refusing to load {str(path)!r}: it contains pickled Python objects (code), which gankit never writes "
            f"and will not execute. Only data-only gankit checkpoints are accepted."
        ) from None
    except Exception as e:  # truncated / not a torch file
        damage = damage_of(path)
        if damage:
            raise CheckpointError(f"Checkpoint {str(path)!r} {damage}: it cannot be read. Copy it again, or use "
                                  "another ckpt-<kimg>.pt of the run.") from None
        raise CheckpointError(f"Cannot read checkpoint {str(path)!r}: it is not a torch file "
                              f"({type(e).__name__}: {str(e)[:200]}).") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise CheckpointError(f"{str(path)!r} is not a gankit checkpoint (no 'format': 'gankit' entry).")
    if ckpt.get("version", 0) > VERSION:
        raise CheckpointError(f"{str(path)!r} was written by a newer gankit (checkpoint version {ckpt['version']}, "
                              f"this gankit reads up to {VERSION}); upgrade gankit.")
    ckpt = migrate(ckpt)
    if require:
        purpose = "resuming its run" if set(require) & set(TRAINING_STATE_KEYS) else "using its networks"
        require_keys(ckpt, tuple(require), path, purpose)
    return ckpt
