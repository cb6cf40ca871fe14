"""Optimisers: the registry, what a recipe declares (``OptimizerSpec``), and the lazy-regularisation correction.

A recipe declares its optimisers as data (``Recipe.optimizers()``: name -> ``OptimizerSpec``): which networks
(or which parameter groups, each with its own learning-rate multiplier) an optimiser updates and its schedule.
The hyper-parameters come from ``cfg.opt[name]`` (an ``OptConfig``). The engine builds them with
``build_optimizer``; every parameter group remembers its own base rate (``BASE_LR``), so a schedule or a
rollback scales each group from its own base and never overwrites a group's ratio to the others
(StyleGAN2's mapping network runs at 0.01 x the synthesis rate).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Callable, Iterable

import torch
from torch import nn

from .config import OptConfig
from .errors import ConfigError
from .registry import Registry

optimizers: Registry = Registry("optimizer")

BASE_LR = "gankit_base_lr"   # key in each torch param group: that group's rate before schedules and rollbacks


@optimizers.register("adam")
def _adam(params, c: OptConfig) -> torch.optim.Optimizer:
    params = list(params)
    flat = [p for g in params for p in (g["params"] if isinstance(g, dict) else [g])]
    # On CUDA, the fused kernel updates every parameter in one launch (the default foreach path takes several
    # per step); same algorithm, float32 rounding aside.
    fused = bool(flat) and all(p.is_cuda for p in flat)
    return torch.optim.Adam(params, lr=c.lr, betas=tuple(c.betas), eps=c.eps, weight_decay=c.weight_decay,
                            fused=fused or None)


@optimizers.register("rmsprop")
def _rmsprop(params, c: OptConfig) -> torch.optim.Optimizer:
    return torch.optim.RMSprop(params, lr=c.lr, eps=c.eps, weight_decay=c.weight_decay, momentum=c.momentum)


@optimizers.register("sgd")
def _sgd(params, c: OptConfig) -> torch.optim.Optimizer:
    return torch.optim.SGD(params, lr=c.lr, momentum=c.momentum, weight_decay=c.weight_decay)


@dataclass
class ParamGroup:
    """Some parameters of an optimiser with their own learning-rate multiplier (and any other torch group key)."""
    params: list                            # parameters (nn.Parameter)
    lr_mult: float = 1.0                    # this group's rate = cfg.opt[name].lr * lr_mult
    name: str = ""                          # for messages
    extra: dict = field(default_factory=dict)  # further torch param-group keys (e.g. weight_decay)


@dataclass
class OptimizerSpec:
    """One optimiser a recipe declares.

    nets:     the networks it updates (all their parameters, unless ``groups`` says otherwise). A phase that
              uses this optimiser trains these networks and freezes the rest.
    groups:   parameter groups; None = one group with every parameter of ``nets``.
    schedule: learning-rate factor as a function of training progress in [0, 1] (None = constant).
    default:  the hyper-parameters when ``cfg.opt`` has no entry of this name (None = ``OptConfig()``).
    """
    nets: tuple[str, ...]
    groups: list[ParamGroup] | None = None
    schedule: Callable[[float], float] | None = None
    default: OptConfig | None = None


def lazy_corrected(c: OptConfig, interval: int) -> OptConfig:
    """Hyper-parameters of an optimiser some of whose phases run every ``interval`` steps.

    Karras et al. 2020 (StyleGAN2, appendix B "lazy regularization"; stylegan2-ada training_loop.py): with
    c = interval / (interval + 1), lr -> lr * c and each Adam beta -> beta ** c, so that the regulariser's extra
    optimiser steps leave the effective momentum and step size per image as they were.
    """
    if interval <= 1:
        return c
    ratio = interval / (interval + 1)
    return dataclasses.replace(c, lr=c.lr * ratio, betas=tuple(b ** ratio for b in c.betas))


def build_optimizer(spec: OptimizerSpec, c: OptConfig, nets: nn.ModuleDict, where: str) -> torch.optim.Optimizer:
    """The torch optimiser of ``spec`` with ``c``'s hyper-parameters; each group records its base rate."""
    groups = spec.groups
    if groups is None:
        missing = [n for n in spec.nets if n not in nets]
        if missing:
            raise ConfigError(f"{where}: optimiser updates networks {missing}, which the recipe does not have "
                              f"(it has {', '.join(nets.keys())}).")
        groups = [ParamGroup([p for n in spec.nets for p in nets[n].parameters()])]
    torch_groups = []
    for g in groups:
        torch_groups.append({"params": list(g.params), "lr": c.lr * g.lr_mult, BASE_LR: c.lr * g.lr_mult,
                             **g.extra})
    if not any(g["params"] for g in torch_groups):
        raise ConfigError(f"{where}: the optimiser has no parameters to update.")
    try:
        opt = optimizers.get(c.name)(torch_groups, c)
    except ValueError as e:     # torch's range checks ("Invalid beta parameter at index 0") name no config key
        raise ConfigError(f"{where}: {c.name} refuses its hyper-parameters (lr={c.lr}, betas={list(c.betas)}, "
                          f"eps={c.eps}, weight_decay={c.weight_decay}, momentum={c.momentum}): {e}.") from e
    for g, tg in zip(opt.param_groups, torch_groups):   # torch keeps unknown keys; make sure of it
        g.setdefault(BASE_LR, tg[BASE_LR])
    return opt


def set_learning_rates(opt: torch.optim.Optimizer, factor: float) -> None:
    """Every group this module built runs at its own base rate x ``factor``; groups without one are left alone."""
    for group in opt.param_groups:
        if BASE_LR in group:
            group["lr"] = group[BASE_LR] * factor


def grad_norm(opt: torch.optim.Optimizer) -> torch.Tensor:
    """Global L2 norm of the gradients an optimiser is about to apply (a divergence diagnostic)."""
    grads = [p.grad for group in opt.param_groups for p in group["params"] if p.grad is not None]
    if not grads:
        return torch.zeros(())
    return torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))


def params_of(opt: torch.optim.Optimizer) -> Iterable[nn.Parameter]:
    return (p for group in opt.param_groups for p in group["params"])
