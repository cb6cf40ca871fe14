"""The training engine: resolving a config against the registries, building a run, the step, the loop.

    configure.py   resolve(preset, file, overrides) and validate(cfg): the registry-aware side of the config
    build.py       build(cfg) -> Trainer: dataset, recipe, its optimisers and phases, strategies
    step.py        Trainer.train_step: the recipe's phases through the strategies' hooks; checkpoint state
    strategies.py  DDP, AMP (bf16 / fp16 + GradScaler), gradient accumulation, EMA: wrappers of the mechanics
    distributed.py torchrun / DistributedDataParallel building blocks (one process when not under torchrun)
    loop.py        train() and training_loop(): ticks, snapshots, metrics, non-finite handling
    rundir.py      numbered run directories, what --resume may change
"""
from .build import build, resolve_device
from .configure import resolve, validate
from .loop import train, training_loop
from .step import Trainer
from .strategies import AMP, EMA, GradAccumulation, Strategy, strategy_factories
from . import privacy  # noqa: E402,F401  registers the "privacy" strategy (DP-SGD through Opacus)

__all__ = ["build", "resolve_device", "resolve", "validate", "train", "training_loop", "Trainer", "EMA", "AMP",
           "GradAccumulation", "Strategy", "strategy_factories"]
