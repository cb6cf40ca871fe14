"""Strategies: the mechanics that wrap a training step without the step knowing which are on.

The step (``engine.step``) calls the same hooks whatever is configured; each strategy fills in the ones it needs:

    setup(trainer)               once after build: wrap networks, optimisers or the data stream
    on_rebuild(trainer, names)   the recipe grew and optimisers ``names`` were rebuilt (re-wrap, re-copy)
    micro_batches(batch)         split a batch (gradient accumulation); one strategy at most
    micro_context(i, n, trained) around micro-batch i of n, given the phase's trained networks (DDP: frozen
                                 networks never sync, trained ones only on the last micro-batch)
    autocast()                   around each loss computation (AMP)
    scale_loss(name, loss)       before backward (fp16 loss scaling)
    before_step(name, opt)       gradients complete (DDP reduced them in backward): unscale fp16 gradients;
                                 gradient norms are measured after this
    step(name, opt) -> bool      True if it stepped the optimiser itself (GradScaler); one strategy at most
    after_train_step(trainer)    after all phases of a step (EMA)
    sampling_nets(nets)          the networks to sample with (EMA copies)
    tick_stats() -> dict         logged once per tick ("amp/scale_G", "privacy/epsilon")
    state_dict() / load_state_dict(state)   the strategy's checkpoint entry, under ``ckpt[name]``
    summary() -> dict            reported facts (epsilon): ``ckpt["summary"]``, ``gankit info --json``, eval cards

Strategies are made from the config by the factories in ``strategy_factories`` (each returns a strategy or None),
in ``order``; a new one (differential privacy through Opacus, engine/privacy.py) is a class and a registration.
A factory may declare an ``options`` dataclass: its settings live in ``cfg.strategy[name]`` and ``--set
name.key=value`` is routed there (``--set privacy.epsilon=3``).
"""
from __future__ import annotations

import contextlib
import copy
from dataclasses import dataclass
from typing import Any, Callable, ContextManager, Iterable

import torch
from torch import nn

from ..config import TrainConfig
from ..errors import ConfigError
from ..nets.base import unwrap
from ..optim import params_of
from ..registry import Registry


class Strategy:
    name: str = ""
    owns_micro_batches: bool = False
    owns_step: bool = False

    def setup(self, trainer: Any) -> None: ...
    def on_rebuild(self, trainer: Any, names: set[str]) -> None: ...

    def micro_batches(self, batch: dict[str, torch.Tensor]) -> list[dict[str, torch.Tensor]]:
        return [batch]

    def micro_context(self, i: int, n: int, trained: tuple[str, ...] = ()) -> ContextManager:
        return contextlib.nullcontext()

    def autocast(self) -> ContextManager:
        return contextlib.nullcontext()

    def scale_loss(self, name: str, loss: torch.Tensor) -> torch.Tensor:
        return loss

    def before_step(self, name: str, opt: torch.optim.Optimizer) -> None: ...

    def step(self, name: str, opt: torch.optim.Optimizer) -> bool:
        return False

    def after_train_step(self, trainer: Any) -> None: ...

    def sampling_nets(self, nets: nn.ModuleDict) -> nn.ModuleDict:
        return nets

    def tick_stats(self) -> dict[str, float]:
        return {}

    def state_dict(self) -> dict | None:
        return None

    def load_state_dict(self, state: dict) -> None: ...

    def summary(self) -> dict[str, Any]:
        """Plain values about the run worth reporting (privacy: the spent epsilon): saved as the checkpoint's
        ``summary``, shown by ``gankit info --json`` and copied into evaluation cards."""
        return {}


class Strategies:
    """The configured strategies as one: hooks compose in order; single-owner hooks are checked up front."""

    def __init__(self, items: Iterable[Strategy]):
        self.items = list(items)
        for attr in ("owns_micro_batches", "owns_step"):
            owners = [s.name for s in self.items if getattr(s, attr)]
            if len(owners) > 1:
                raise ConfigError(f"Strategies {owners} cannot be combined: each wants to {attr[5:].replace('_', ' ')}.")

    def __iter__(self):
        return iter(self.items)

    def setup(self, trainer: Any) -> None:
        for s in self.items:
            s.setup(trainer)

    def on_rebuild(self, trainer: Any, names: set[str]) -> None:
        for s in self.items:
            s.on_rebuild(trainer, names)

    def micro_batches(self, batch: dict[str, torch.Tensor]) -> list[dict[str, torch.Tensor]]:
        owner = next((s for s in self.items if s.owns_micro_batches), None)
        return owner.micro_batches(batch) if owner else [batch]

    def micro_context(self, i: int, n: int, trained: tuple[str, ...] = ()) -> ContextManager:
        stack = contextlib.ExitStack()
        for s in self.items:
            stack.enter_context(s.micro_context(i, n, trained))
        return stack

    def autocast(self) -> ContextManager:
        stack = contextlib.ExitStack()
        for s in self.items:
            stack.enter_context(s.autocast())
        return stack

    def scale_loss(self, name: str, loss: torch.Tensor) -> torch.Tensor:
        for s in self.items:
            loss = s.scale_loss(name, loss)
        return loss

    def before_step(self, name: str, opt: torch.optim.Optimizer) -> None:
        for s in self.items:
            s.before_step(name, opt)

    def step(self, name: str, opt: torch.optim.Optimizer) -> None:
        if not any(s.step(name, opt) for s in self.items):
            opt.step()

    def after_train_step(self, trainer: Any) -> None:
        for s in self.items:
            s.after_train_step(trainer)

    def sampling_nets(self, nets: nn.ModuleDict) -> nn.ModuleDict:
        for s in self.items:
            nets = s.sampling_nets(nets)
        return nets

    def tick_stats(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for s in self.items:
            out.update(s.tick_stats())
        return out

    def state_dict(self) -> dict[str, Any]:
        return {s.name: st for s in self.items if (st := s.state_dict()) is not None}

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for s in self.items:
            out.update(s.summary())
        return out

    def load_state_dict(self, ckpt: dict) -> None:
        for s in self.items:
            if ckpt.get(s.name) is not None:
                s.load_state_dict(ckpt[s.name])


@dataclass
class StrategyFactory:
    order: int                                            # position in the chain (lower = outer, earlier)
    make: Callable[[TrainConfig, Any], Strategy | None]   # (cfg, build context) -> strategy or None when off
    options: type | None = None                           # dataclass of its settings in cfg.strategy[name]


def strategy_options(cfg: TrainConfig, name: str) -> Any:
    """The typed options of strategy ``name`` from ``cfg.strategy[name]`` (its defaults when absent)."""
    from ..config import dataclass_from_dict
    factory = strategy_factories.get(name)
    if factory.options is None:
        raise ConfigError(f"strategy {name!r} takes no options.")
    return dataclass_from_dict(factory.options, cfg.strategy.get(name, {}), f"{name} (strategy options)")


strategy_factories: Registry[StrategyFactory] = Registry("strategy")


def make_strategies(cfg: TrainConfig, context: Any) -> Strategies:
    """Every registered strategy the config turns on, in ``order``."""
    factories = sorted(strategy_factories.items(), key=lambda item: item[1].order)
    return Strategies(s for _, f in factories if (s := f.make(cfg, context)) is not None)


# ---- EMA ---------------------------------------------------------------------------------------------------

class EMA(Strategy):
    """Exponential moving average of the generators, with the decay given as a half-life in kimg.

    beta = 0.5 ** (batch / half_life_img), so the average halves the weight of old parameters every
    ``half_life`` images whatever the batch size (Karras et al. 2020, StyleGAN2-ADA ``ema_kimg``).
    rampup: half_life_img <= nimg * rampup early in training (StyleGAN2-ADA ``ema_rampup``, 0.05 there).
    start_kimg: until then the average copies the generator exactly (BigGAN's ``ema_start``, Brock et al. 2019).
    Buffers (BN running statistics) are copied, not averaged.
    """

    name = "ema"

    def __init__(self, nets: nn.ModuleDict, names: tuple[str, ...], half_life_kimg: float, rampup: float = 0.0,
                 start_kimg: float = 0.0):
        self.names = tuple(names)
        self.nets = nn.ModuleDict({n: copy.deepcopy(nets[n]).eval().requires_grad_(False) for n in names})
        self.half_life_kimg = half_life_kimg
        self.rampup = rampup
        self.start_kimg = start_kimg

    def beta(self, batch: int, nimg: int) -> float:
        if nimg < self.start_kimg * 1000:
            return 0.0                                   # before the start: copy the generator
        half_life_img = self.half_life_kimg * 1000
        if self.rampup > 0:
            half_life_img = min(half_life_img, nimg * self.rampup)
        return 0.5 ** (batch / max(half_life_img, 1e-8))

    @torch.no_grad()
    def update(self, source: nn.ModuleDict, batch: int, nimg: int) -> None:
        beta = self.beta(batch, nimg)
        for name, ema_net in self.nets.items():
            src = unwrap(source[name])
            # One multi-tensor kernel per net rather than one per tensor.
            torch._foreach_lerp_(list(ema_net.parameters()), [p.detach() for p in src.parameters()],
                                 1.0 - beta)             # p_ema = beta * p_ema + (1 - beta) * p
            buffers = list(ema_net.buffers())
            if buffers:                                  # BN running stats etc. are copied, not averaged
                torch._foreach_copy_(buffers, list(src.buffers()))

    # -- strategy hooks
    def after_train_step(self, trainer: Any) -> None:
        self.update(trainer.recipe.nets, trainer.last_step_images, trainer.nimg)

    def on_rebuild(self, trainer: Any, names: set[str]) -> None:
        """A generator grew: a fresh copy of it, keeping the averaged values of every unchanged tensor."""
        for name in self.names:
            src = unwrap(trainer.recipe.nets[name])
            old = self.nets[name].state_dict()
            new = copy.deepcopy(src).eval().requires_grad_(False)
            if [(k, v.shape) for k, v in old.items()] == [(k, v.shape) for k, v in new.state_dict().items()]:
                continue
            state = new.state_dict()
            state.update({k: v for k, v in old.items() if k in state and state[k].shape == v.shape})
            new.load_state_dict(state)
            self.nets[name] = new

    def sampling_nets(self, nets: nn.ModuleDict) -> nn.ModuleDict:
        out = nn.ModuleDict(dict(nets.items()))
        for name, net in self.nets.items():
            out[name] = net
        return out

    def state_dict(self) -> dict:
        return {n: m.state_dict() for n, m in self.nets.items()}

    def load_state_dict(self, state: dict) -> None:
        for n, s in state.items():
            self.nets[n].load_state_dict(s)


def _make_ema(cfg: TrainConfig, ctx: Any) -> Strategy | None:
    if cfg.ema_kimg <= 0:
        return None
    return EMA(ctx.recipe.nets, ctx.recipe.generator_names, cfg.ema_kimg, cfg.ema_rampup, cfg.ema_start_kimg)


# ---- automatic mixed precision -----------------------------------------------------------------------------

class AMP(Strategy):
    """Autocast the losses to bfloat16 or float16; float16 also scales each optimiser's loss (``GradScaler``).

    One scaler per optimiser: an overflow in D's gradients must not lower the scale of G's (and vice versa).
    Gradients are unscaled before the step, so gradient norms and clipping see their true values. The scalers'
    states are checkpointed (resume is exact) and their scales logged per tick. bfloat16 has float32's range
    and needs no scaling (Kalamkar et al. 2019).
    """

    name = "amp"

    def __init__(self, mode: str, device: torch.device):
        self.mode, self.device_type = mode, device.type
        self.dtype = torch.bfloat16 if mode == "bf16" else torch.float16
        self.scalers: dict[str, torch.amp.GradScaler] = {}
        self.owns_step = mode == "fp16"

    def _scaler(self, name: str) -> torch.amp.GradScaler:
        if name not in self.scalers:
            self.scalers[name] = torch.amp.GradScaler(self.device_type)
        return self.scalers[name]

    def autocast(self) -> ContextManager:
        return torch.autocast(self.device_type, dtype=self.dtype)

    def scale_loss(self, name: str, loss: torch.Tensor) -> torch.Tensor:
        return self._scaler(name).scale(loss) if self.owns_step else loss

    def before_step(self, name: str, opt: torch.optim.Optimizer) -> None:
        if self.owns_step:
            self._scaler(name).unscale_(opt)

    def step(self, name: str, opt: torch.optim.Optimizer) -> bool:
        if not self.owns_step:
            return False
        scaler = self._scaler(name)
        scaler.step(opt)               # skipped when the gradients hold an inf / NaN
        scaler.update()
        return True

    def tick_stats(self) -> dict[str, float]:
        return {f"amp/scale_{n}": float(s.get_scale()) for n, s in self.scalers.items()}

    def state_dict(self) -> dict | None:
        return {"mode": self.mode, "scalers": {n: s.state_dict() for n, s in self.scalers.items()}}

    def load_state_dict(self, state: dict) -> None:
        for n, s in state.get("scalers", {}).items():
            self._scaler(n).load_state_dict(s)


def _make_amp(cfg: TrainConfig, ctx: Any) -> Strategy | None:
    return None if cfg.amp == "off" else AMP(cfg.amp, ctx.device)


# ---- gradient accumulation ---------------------------------------------------------------------------------

class GradAccumulation(Strategy):
    """Split each batch into ``n`` equal micro-batches, one backward each, one optimiser step per batch.

    Losses are means, so each micro-batch's loss is weighted 1/n (by the step) and the summed gradient equals the
    full batch's. Batch norm then normalises over micro-batches: the update differs where networks use it.
    """

    name = "accum"
    owns_micro_batches = True

    def __init__(self, n: int):
        self.n = n

    def micro_batches(self, batch: dict[str, torch.Tensor]) -> list[dict[str, torch.Tensor]]:
        size = len(next(iter(batch.values())))
        if size % self.n:
            raise ConfigError(f"grad_accum={self.n} does not divide the batch of {size}.")
        chunks = {k: v.chunk(self.n) for k, v in batch.items()}
        return [{k: c[i] for k, c in chunks.items()} for i in range(self.n)]


def _make_accum(cfg: TrainConfig, ctx: Any) -> Strategy | None:
    return GradAccumulation(cfg.grad_accum) if cfg.grad_accum > 1 else None


strategy_factories.register("amp")(StrategyFactory(20, _make_amp))
strategy_factories.register("accum")(StrategyFactory(30, _make_accum))
strategy_factories.register("ema")(StrategyFactory(90, _make_ema))


# ---- DistributedDataParallel (torchrun) ----------------------------------------------------------------------

class DataParallel(Strategy):
    """Every network that trains in DistributedDataParallel, one rank per process (engine/distributed.py).

    The data and the noise are already this rank's slice of the global batch (BatchStream, StepContext.randn),
    so the averaged gradients are those of one process on the whole batch. What this strategy adds to the step:
    - wrapping each network while all its parameters still require grad (DDP syncs only those);
    - the phase's frozen networks run inside ``no_sync`` (and the trained ones too for every micro-batch but
      the last), as StyleGAN2-ADA's ``ddp_sync``;
    - ``0 * sum(p)`` over the optimiser's parameters joins every loss, so that a loss that does not reach every
      parameter (the lazy R1 phase: d logits / d x does not depend on the last bias) still fires every DDP hook
      and all-reduces (otherwise the gradients silently stay per-rank; StyleGAN2-ADA adds ``0 * logits``).
    Checkpoints never hold the wrappers (``engine.step.plain_nets``).
    """

    name = "ddp"

    def __init__(self, world: Any, device: torch.device):
        self.world, self.device = world, device
        self.trainer: Any = None

    def setup(self, trainer: Any) -> None:
        from .distributed import wrap_ddp
        self.trainer = trainer
        nets = trainer.recipe.nets
        for name in list(nets.keys()):
            nets[name].requires_grad_(True)
            nets[name] = wrap_ddp(nets[name], self.world, self.device)

    def on_rebuild(self, trainer: Any, names: set[str]) -> None:
        """Networks of rebuilt optimisers changed their parameters: wrap them anew (DDP's reducer was built
        for the old ones), and wrap any network the recipe replaced by a plain module."""
        from .distributed import wrap_ddp
        nets = trainer.recipe.nets
        changed = {n for opt in names if opt in trainer.specs for n in trainer.specs[opt].nets}
        for name in list(nets.keys()):
            net = unwrap(nets[name])
            if net is nets[name] or name in changed:
                net.requires_grad_(True)
                nets[name] = wrap_ddp(net, self.world, self.device)

    def micro_context(self, i: int, n: int, trained: tuple[str, ...] = ()) -> ContextManager:
        from .distributed import no_sync
        stack = contextlib.ExitStack()
        for name, net in self.trainer.recipe.nets.items():
            if name not in trained or i < n - 1:
                stack.enter_context(no_sync(net))
        return stack

    def scale_loss(self, name: str, loss: torch.Tensor) -> torch.Tensor:
        params = [p for p in params_of(self.trainer.optimizers[name]) if p.requires_grad]
        return loss + 0.0 * sum(p.sum() for p in params)


def _make_ddp(cfg: TrainConfig, ctx: Any) -> Strategy | None:
    world = ctx.world
    return DataParallel(world, ctx.device) if world is not None and world.enabled else None


strategy_factories.register("ddp")(StrategyFactory(10, _make_ddp))
