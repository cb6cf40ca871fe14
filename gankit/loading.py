"""Rebuilding models from checkpoints: recipes, generators and samplers, and weights for ``--init-from``.

    recipe, cfg, info, nets = load_recipe("runs/00003-dcgan-faces")    # nets: EMA generators where kept
    G = load_generator("runs/00003-dcgan-faces/latest.pt")              # a plain nn.Module in eval mode
    sampler = load_sampler("runs/00003-dcgan-faces")                   # the recipe's default Sampler
    G = load_generator("dcgan-faces-model/")                           # a model folder (gankit export)

Every function takes a checkpoint file, a run directory (its latest.pt) or a **model folder**: what
``gankit export --format safetensors`` writes, ``model.safetensors`` (the sampling networks, EMA copies in
place of the trained generators, plus the recipe's other tensors) and ``gankit.json`` (config, data info,
structure): no optimiser state, no pickled code, small enough to share.
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .checkpoint import REQUIRED_KEYS, load_checkpoint, load_module_state, require_keys
from .config import from_dict
from .data.base import DataInfo
from .errors import CheckpointError
from .recipes import recipes


MODEL_FORMAT = "gankit-model"
MODEL_META = "gankit.json"
MODEL_WEIGHTS = "model.safetensors"
MODEL_VERSION = 1


def is_model_folder(path: str | Path) -> bool:
    return (Path(path) / MODEL_META).is_file()


def read_model_folder(path: str | Path) -> dict:
    """A model folder as a checkpoint-like dict (``config``, ``data_info``, ``structure``, ``nets``; no EMA
    entry: the folder holds the sampling networks already)."""
    import json
    path = Path(path)
    try:
        meta = json.loads((path / MODEL_META).read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise CheckpointError(f"Cannot read {str(path / MODEL_META)!r}: {e}") from None
    if not isinstance(meta, dict) or meta.get("format") != MODEL_FORMAT:
        raise CheckpointError(f"{str(path)!r} is not a gankit model folder ({MODEL_META} has no "
                              f"'format': '{MODEL_FORMAT}').")
    if meta.get("version", 0) > MODEL_VERSION:
        raise CheckpointError(f"{str(path)!r} was written by a newer gankit (model folder version "
                              f"{meta['version']}, this gankit reads up to {MODEL_VERSION}); upgrade gankit.")
    weights = path / MODEL_WEIGHTS
    if not weights.is_file():
        raise CheckpointError(f"Model folder {str(path)!r} has no {MODEL_WEIGHTS}.")
    try:
        from safetensors.torch import load_file
    except ImportError:
        raise CheckpointError("Reading a model folder needs safetensors: pip install 'gankit[export]'.") from None
    return {**meta, "nets": load_file(str(weights)), "ema": None, "model_folder": True}


def read_model(path: str | Path, require: tuple[str, ...] = ()) -> dict:
    """A checkpoint file, a run directory (its latest.pt) or a model folder, as a checkpoint dict; ``require``
    names the entries the caller needs (a ``CheckpointError`` naming the missing ones, never a KeyError)."""
    if not is_model_folder(path):
        return load_checkpoint(path, require=require)
    model = read_model_folder(path)
    require_keys({k: v for k, v in model.items() if v is not None}, tuple(require), path, "using its networks")
    return model


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
    ckpt = read_model(path, require=REQUIRED_KEYS)
    recipe, cfg, info = recipe_from_checkpoint(ckpt)
    state = ckpt["nets"]
    if ckpt.get("model_folder"):
        # A model folder holds tensors only: non-tensor training state (``_extra_state``, e.g. CycleGAN's image
        # history pool) starts fresh; a missing tensor is still an error.
        fresh = recipe.state_dict()
        state = {**{k: v for k, v in fresh.items() if k.endswith("_extra_state")}, **state}
    load_module_state(recipe, state, path)
    recipe.to(device).eval().requires_grad_(False)
    recipe.run_summary = dict(ckpt.get("summary") or {})   # what the strategies reported (privacy: epsilon)
    nets = nn.ModuleDict(dict(recipe.nets.items()))
    if ema and ckpt.get("ema"):
        for name, state in ckpt["ema"].items():
            net = copy.deepcopy(recipe.nets[name])
            load_module_state(net, state, path, f"EMA copy of {name}")
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
    ckpt = load_checkpoint(source, require=REQUIRED_KEYS)
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
