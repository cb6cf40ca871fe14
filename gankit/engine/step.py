"""The training step: the recipe's phases, run with its optimisers through the configured strategies.

The step owns every optimisation mechanic (DESIGN.md principle 2): it toggles ``requires_grad``, calls
``backward()`` and the optimisers, applies the lazy-regularisation gain and the recipe's constraint hooks.
Recipes only return losses; strategies (AMP, accumulation, DDP, EMA, privacy) wrap the mechanics through fixed
hooks, so this file never asks which of them are on. Progress is counted in real images drawn from the data
(``nimg``; kimg = nimg / 1000; all ranks together under DDP), as in StyleGAN2-ADA.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Iterator

import torch
from torch import nn

from ..config import OptConfig, TrainConfig, to_dict
from ..checkpoint import load_module_state
from ..data.base import BatchStream, DataInfo
from ..optim import OptimizerSpec, build_optimizer, grad_norm, lazy_corrected, set_learning_rates
from ..recipes.base import Phase, Recipe, StepContext
from ..runlog import TickStats
from .distributed import World, unwrap
from .strategies import Strategies


@dataclass
class Trainer:
    """Everything a run updates; ``state_dict`` of this is the checkpoint's training state."""
    cfg: TrainConfig
    recipe: Recipe
    specs: dict[str, OptimizerSpec]               # what the recipe declared
    optimizers: dict[str, torch.optim.Optimizer]  # built from specs + cfg.opt
    phases: list[Phase]
    stream: BatchStream
    strategies: Strategies
    device: torch.device
    world: World = field(default_factory=World)   # this process's place under torchrun (World() = one process)
    nimg: int = 0
    step: int = 0
    lr_scale: float = 1.0                         # halved by each rollback after a non-finite loss
    best: dict | None = None                      # best metric value so far and its snapshot
    last_step_images: int = 0                     # real images the last step drew (all ranks): the EMA's batch
    tick: TickStats = field(default_factory=TickStats)  # the tick's logged losses, on the device until the tick ends
    extractors: dict = field(default_factory=dict)  # feature extractors kept between evaluations (loaded once)
    # Per-step bookkeeping skipped when nothing changed (issue 16; on a GPU a small step is bound by Python):
    _trainable: dict = field(default_factory=dict, repr=False)  # net name -> (module, params, flag) last set
    _lr_factor: dict = field(default_factory=dict, repr=False)  # optimiser name -> (optimiser, factor) last set

    @property
    def total_nimg(self) -> int:
        return int(round(self.cfg.kimg * 1000))

    @property
    def rank(self) -> int:
        return self.world.rank

    @property
    def world_size(self) -> int:
        return self.world.world_size

    @property
    def global_batch(self) -> int:
        return self.cfg.batch_size * self.world_size

    def context(self, phase: str = "") -> StepContext:
        return StepContext(step=self.step, nimg=self.nimg, total_nimg=self.total_nimg, phase=phase,
                           rank=self.rank, world_size=self.world_size)

    # ---- optimisers ------------------------------------------------------------------------------------------
    def lazy_intervals(self) -> dict[str, int]:
        """Per optimiser, the largest ``every`` of the phases that step it (1 = no lazy regularisation)."""
        out = {name: 1 for name in self.specs}
        for p in self.phases:
            out[p.optimizer] = max(out[p.optimizer], p.every)
        return out

    def build_optimizers(self, names: set[str] | None = None) -> None:
        """(Re)build optimisers ``names`` (all by default) with fresh state from their specs and ``cfg.opt``."""
        intervals = self.lazy_intervals()
        for name, spec in self.specs.items():
            if names is None or name in names:
                oc = self.cfg.opt.get(name) or spec.default or OptConfig()
                self.optimizers[name] = build_optimizer(spec, lazy_corrected(oc, intervals[name]), self.recipe.nets,
                                                        where=f"optimizer {name!r}")

    def set_lr(self) -> None:
        """Each optimiser's groups at their base rate x its schedule at this progress x the rollback scale."""
        progress = self.context().progress
        for name, opt in self.optimizers.items():
            schedule = self.specs[name].schedule
            factor = self.lr_scale * (schedule(progress) if schedule else 1.0)
            last = self._lr_factor.get(name)
            if last is None or last[0] is not opt or last[1] != factor:   # a constant schedule: set once
                set_learning_rates(opt, factor)
                self._lr_factor[name] = (opt, factor)

    def _grow(self) -> None:
        """Networks that change shape (ProGAN): rebuild the optimisers whose parameters changed."""
        changed = self.recipe.grow(self.context())
        if changed:
            self._rebuild(set(changed))

    def _rebuild(self, names: set[str] | None = None) -> None:
        """After the recipe's networks changed shape: re-read what it declares (bound to the new networks),
        rebuild optimisers ``names`` (all by default) with fresh state, and let the strategies follow."""
        self.specs, self.phases = self.recipe.optimizers(), self.recipe.phases()
        self.build_optimizers(names)
        self.strategies.on_rebuild(self, set(self.specs) if names is None else names)
        self.forget_cached_state()

    def _set_trainable(self, names: tuple[str, ...]) -> None:
        """``requires_grad`` on for the networks ``names``, off for the others: what ``net.requires_grad_`` does,
        skipped for a network whose flags this method already set (same module, its first parameter still so)."""
        for name, net in self.recipe.nets.items():
            want = name in names
            known = self._trainable.get(name)
            if known is None or known[0] is not net:
                known = (net, list(net.parameters()), None)
            module, params, flag = known
            if flag is want and (not params or params[0].requires_grad is want):
                continue
            for p in params:
                p.requires_grad_(want)
            self._trainable[name] = (module, params, want)

    def forget_cached_state(self) -> None:
        """Drop the cached trainable flags and learning-rate factors (after networks or optimisers changed)."""
        self._trainable.clear()
        self._lr_factor.clear()

    @staticmethod
    def _zero_grad(opt: torch.optim.Optimizer) -> None:
        """``opt.zero_grad(set_to_none=True)``, without its per-call profiler record for torch's own classes (an
        optimiser that overrides zero_grad, as Opacus' does to clear per-sample gradients, is called)."""
        if type(opt).zero_grad is not torch.optim.Optimizer.zero_grad:
            opt.zero_grad(set_to_none=True)
            return
        for group in opt.param_groups:
            for p in group["params"]:
                p.grad = None

    # ---- the step --------------------------------------------------------------------------------------------
    def train_step(self, measure_grad_norm: bool = True) -> None:
        """Every active phase in order (default: D x k on fresh batches, then G on the last one), then the
        strategies' end-of-step work (the EMA).

        ``measure_grad_norm``: also log each phase's global gradient norm (the loop asks on the first step of
        each tick: a sample per tick is enough to spot divergence and costs ~2% when done every step).
        """
        self._grow()
        self.set_lr()
        batch: dict[str, torch.Tensor] | None = None
        images_before = self.nimg
        for phase in self.phases:
            if not phase.active(images_before, self.step):       # windows are judged at the step's start
                continue
            # -- Who learns in this phase: its networks get gradients, every other network is frozen.
            trained = phase.nets or self.specs[phase.optimizer].nets
            self._set_trainable(trained)
            opt = self.optimizers[phase.optimizer]
            for _ in range(phase.repeat):
                # -- A fresh real batch (counted in kimg), or the step's last one.
                if phase.batch == "new" or batch is None:
                    batch = next(self.stream)
                    self.nimg += self.global_batch
                ctx = self.context(phase.name)
                # -- Forward and backward, per micro-batch. The loss is a mean, so each of n micro-batches
                # weighs 1/n; a lazy phase (every > 1) weighs ``every`` (Karras et al. 2020, appendix B).
                self._zero_grad(opt)
                micro = self.strategies.micro_batches(batch)
                logged: dict[str, torch.Tensor] = {}
                for i, mb in enumerate(micro):
                    with self.strategies.micro_context(i, len(micro), trained):
                        with self.strategies.autocast():
                            out = phase.loss(mb, ctx)
                        loss = out["loss"] * (phase.every / len(micro))
                        self.strategies.scale_loss(phase.optimizer, loss).backward()
                    for k, v in out.items():
                        v = v.detach().float()
                        if len(micro) > 1:          # (x / 1 == x exactly: skipped)
                            v = v / len(micro)
                        logged[k] = logged[k] + v if k in logged else v
                # -- Gradients are complete (unscaled, all-reduced): measure, then step.
                self.strategies.before_step(phase.optimizer, opt)
                if measure_grad_norm and phase.log_grad_norm:
                    logged[f"{phase.name}/grad_norm"] = grad_norm(opt)
                self.strategies.step(phase.optimizer, opt)
                if phase.after_step is not None:
                    phase.after_step()
                self.tick.add(phase.name, self.step, logged)
        self.last_step_images = self.nimg - images_before
        # -- End of step: the EMA of the generators, and whatever else a strategy does once per step.
        self.strategies.after_train_step(self)
        self.step += 1

    def sampling_nets(self) -> nn.ModuleDict:
        """The networks to sample with: the EMA generators where kept, else the trained ones."""
        plain = nn.ModuleDict({n: unwrap(m) for n, m in self.recipe.nets.items()})
        return self.strategies.sampling_nets(plain)

    def take_tick_stats(self) -> dict[str, float]:
        """Per-key means of the tick's logged values (and the strategies' own); starts the next tick."""
        return {**self.tick.take(), **self.strategies.tick_stats()}

    def check_finite(self) -> int | None:
        """The first step of this tick whose loss was NaN or infinite, or None."""
        return self.tick.first_nonfinite_step()

    # ---- checkpoint state ------------------------------------------------------------------------------------
    def state_dict(self, info: DataInfo) -> dict:
        rng = {"torch": torch.get_rng_state()}
        if torch.cuda.is_available():
            rng["cuda"] = torch.cuda.get_rng_state_all()
        with plain_nets(self.recipe):                 # a checkpoint never depends on the world size
            nets = self.recipe.state_dict()
        return {"config": to_dict(self.cfg), "data_info": info.to_dict(), "nimg": self.nimg, "step": self.step,
                "structure": self.recipe.structure_state(), "nets": nets,
                "opt": {name: opt.state_dict() for name, opt in self.optimizers.items()}, "rng": rng,
                "stream": self.stream.state_dict(), "lr_scale": self.lr_scale, "best": self.best,
                "summary": self.strategies.summary(), **self.strategies.state_dict()}

    def load_state_dict(self, ckpt: dict) -> None:
        if ckpt.get("structure"):
            # Shapes first (a ProGAN stage), then optimisers over the new parameters, then every value.
            self.recipe.load_structure_state(ckpt["structure"])
            self._rebuild()
        with plain_nets(self.recipe):
            load_module_state(self.recipe, ckpt["nets"], "the checkpoint")
        self.strategies.load_state_dict(ckpt)
        missing = sorted(set(self.optimizers) - set(ckpt["opt"]))
        if missing:
            from ..errors import CheckpointError
            raise CheckpointError(f"The checkpoint has no state for optimiser(s) {missing}; it has "
                                  f"{sorted(ckpt['opt'])}.")
        for name, opt in self.optimizers.items():
            opt.load_state_dict(ckpt["opt"][name])
        self.stream.load_state_dict(ckpt["stream"])
        self.nimg, self.step = int(ckpt["nimg"]), int(ckpt["step"])
        self.lr_scale, self.best = float(ckpt.get("lr_scale", 1.0)), ckpt.get("best")
        self.forget_cached_state()
        torch.set_rng_state(ckpt["rng"]["torch"])
        if "cuda" in ckpt["rng"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(ckpt["rng"]["cuda"])


@contextlib.contextmanager
def plain_nets(recipe: Recipe) -> Iterator[None]:
    """The recipe's networks without their DDP wrappers for the duration (its state dict then has the keys of
    one process); the wrappers go back afterwards."""
    wrapped = {n: m for n, m in recipe.nets.items() if unwrap(m) is not m}
    for n, m in wrapped.items():
        recipe.nets[n] = unwrap(m)
    try:
        yield
    finally:
        for n, m in wrapped.items():
            recipe.nets[n] = m
