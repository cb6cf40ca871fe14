"""Rebuilding models from checkpoints: recipes, generators and samplers, and weights for ``--init-from``.

    recipe, cfg, info, nets = load_recipe("runs/00003-dcgan-faces")    # nets: EMA generators where kept
    G = load_generator("runs/00003-dcgan-faces/latest.pt")              # a plain nn.Module in eval mode
    sampler = load_sampler("runs/00003-dcgan-faces")                   # the recipe's default Sampler
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .checkpoint import load_checkpoint
from .config import from_dict
from .data.base import DataInfo
from .errors import CheckpointError
from .recipes import recipes


def recipe_from_checkpoint(ckpt: dict) -> tuple[Any, Any, DataInfo]:
    """A recipe with the checkpoint's shapes (not yet its weights): ``(recipe, cfg, info)``."""
    cfg = from_dict(ckpt["config"])
    info = DataInfo(**ckpt["data_info"])
    recipe = recipes.get(cfg.recipe).from_config(cfg, info)
    if ckpt.get("structure"):
        recipe.load_structure_state(ckpt["structure"])
    return recipe, cfg, info


def load_recipe(path: str | Path, device: str | torch.device = "cpu", ema: bool = True):
    """Rebuild the recipe of a checkpoint. Returns ``(recipe, cfg, info, nets)``.

    ``nets`` is the ``ModuleDict`` to sample with: the EMA copies of the generators where the run kept them
    (and ``ema`` is true), merged over the trained networks. Everything is in eval mode without gradients.
    """
    ckpt = load_checkpoint(path)
    recipe, cfg, info = recipe_from_checkpoint(ckpt)
    recipe.load_state_dict(ckpt["nets"])
    recipe.to(device).eval().requires_grad_(False)
    recipe.run_summary = dict(ckpt.get("summary") or {})   # what the strategies reported (privacy: epsilon)
    nets = nn.ModuleDict(dict(recipe.nets.items()))
    if ema and ckpt.get("ema"):
        for name, state in ckpt["ema"].items():
            net = copy.deepcopy(recipe.nets[name])
            net.load_state_dict(state)
            nets[name] = net.to(device).eval().requires_grad_(False)
    return recipe, cfg, info, nets


def load_generator(path: str | Path, device: str | torch.device = "cpu", ema: bool = True,
                   name: str | None = None) -> nn.Module:
    """The (EMA) generator of a checkpoint as a plain ``nn.Module`` in eval mode."""
    recipe, _, _, nets = load_recipe(path, device, ema)
    name = name or recipe.generator_names[0]
    if name not in nets:
        raise CheckpointError(f"No network {name!r} in this checkpoint; it has {', '.join(nets.keys())}.")
    return nets[name]


def load_sampler(path: str | Path, device: str | torch.device = "cpu", ema: bool = True, name: str = "default"):
    """The recipe's sampler ``name`` over the checkpoint's (EMA) networks (``gankit.samplers.Sampler``)."""
    recipe, _, _, nets = load_recipe(path, device, ema)
    samplers = recipe.samplers(nets)
    if name not in samplers:
        raise CheckpointError(f"This model has no sampler {name!r}; it has {', '.join(samplers)}.")
    return samplers[name]


def init_weights_from(recipe: nn.Module, source: str | Path, ema: bool = True) -> dict[str, list[str]]:
    """Load every network tensor of checkpoint ``source`` whose name and shape match ``recipe``'s.

    For ``--init-from``: starting a new run from another run's weights (SRResNet -> SRGAN, MLE -> SeqGAN,
    fine-tuning), unlike ``--resume``, which continues the same run. Networks are matched by name (``G``, ``D``,
    ...) and tensors by their key and shape; with ``ema`` a generator starts from the source's EMA copy where it
    kept one. Returns {'loaded': [...], 'skipped': [...] (shape differs), 'missing': [...] (not in the source)}.
    """
    ckpt = load_checkpoint(source)
    theirs: dict[str, torch.Tensor] = {k: v for k, v in ckpt["nets"].items() if k.startswith("nets.")}
    if ema and ckpt.get("ema"):
        for name, state in ckpt["ema"].items():
            theirs.update({f"nets.{name}.{k}": v for k, v in state.items()})
    mine = recipe.state_dict()
    loaded, skipped, missing = [], [], []
    update = {}
    for key, value in mine.items():
        if not key.startswith("nets."):
            continue
        if key not in theirs:
            missing.append(key)
        elif theirs[key].shape != value.shape:
            skipped.append(key)
        else:
            update[key] = theirs[key].to(value.dtype)
            loaded.append(key)
    if not loaded:
        raise CheckpointError(f"--init-from {str(source)!r}: no network tensor matches this model by name and shape "
                              f"(it has {', '.join(sorted({k.split('.')[1] for k in theirs}))}; this model has "
                              f"{', '.join(recipe.nets.keys())}).")
    recipe.load_state_dict({**mine, **update})
    return {"loaded": loaded, "skipped": skipped, "missing": missing}
