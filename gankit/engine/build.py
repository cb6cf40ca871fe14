"""``build``: config -> dataset -> recipe (networks) -> optimisers -> strategies, all seeded by ``cfg.seed``.

Everything a run needs is made here, before a run directory exists, so that a mistake knowable up front (bad
data, an optimiser the recipe does not declare, strategies that cannot be combined) stops with a message and no
empty run is left behind.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from ..config import TrainConfig
from ..data import load_dataset
from ..data.base import BatchStream
from ..errors import ConfigError
from ..loading import init_weights_from
from ..recipes import recipes
from ..recipes.base import check_data_kind
from .distributed import World
from .step import Trainer
from .strategies import make_strategies


@dataclass
class BuildContext:
    """What strategy factories may read when deciding whether and how to turn on."""
    cfg: TrainConfig
    recipe: Any
    device: torch.device
    world: Any = None                 # gankit.engine.distributed.World
    dataset: Any = None


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} was requested but CUDA is not available here; use --device cpu or auto.")
    return torch.device(name)


def build(cfg: TrainConfig, device: torch.device | None = None, dataset: Any = None,
          world: Any = None) -> tuple[Trainer, Any]:
    """Make everything a run updates. ``dataset`` replaces ``cfg.data`` with a dataset of your own (items and
    ``info`` as in gankit.data.base); ``world`` is the process group under torchrun (None = one process)."""
    device = device or resolve_device(cfg.device)
    world = world or World()
    recipe_cls = recipes.get(cfg.recipe)
    if dataset is None:
        dataset = load_dataset(cfg.data, kinds=recipe_cls.data_kinds)
    check_data_kind(recipe_cls, cfg.recipe, dataset.info)

    # -- Networks: seeded identically on every rank, so all ranks start from the same weights.
    torch.manual_seed(cfg.seed)
    recipe = recipe_cls.from_config(cfg, dataset.info)
    if cfg.init_from:
        init_weights_from(recipe, cfg.init_from)
    recipe = recipe.to(device)
    recipe.train()

    # -- What the recipe declares: its optimisers and phases, checked against the config.
    specs = recipe.optimizers()
    phases = recipe.phases()
    unknown = sorted(set(cfg.opt) - set(specs))
    if unknown:
        raise ConfigError(f"opt.{unknown[0]}: recipe {cfg.recipe!r} has no optimiser named {unknown[0]!r}; its "
                          f"optimisers: {', '.join(specs)}.")
    for p in phases:
        if p.optimizer not in specs:
            raise ConfigError(f"recipe {cfg.recipe!r}: phase {p.name!r} steps optimiser {p.optimizer!r}, which it "
                              f"does not declare ({', '.join(specs)}).")
    if not any(p.repeat > 0 for p in phases):
        raise ConfigError(f"recipe {cfg.recipe!r} with this config runs no phase (d_steps=0 and no other phase).")

    stream = BatchStream(dataset, cfg.batch_size, seed=cfg.seed, num_workers=cfg.data.num_workers, device=device,
                         rank=world.rank, world_size=world.world_size)
    strategies = make_strategies(cfg, BuildContext(cfg, recipe, device, world, dataset))
    trainer = Trainer(cfg, recipe, specs, {}, phases, stream, strategies, device, world=world)
    trainer.build_optimizers()
    strategies.setup(trainer)
    return trainer, dataset
