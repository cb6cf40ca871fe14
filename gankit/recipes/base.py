"""The recipe contract: networks + objective, declared as data; nothing about optimisation mechanics.

A recipe owns its networks in ``self.nets`` (an ``nn.ModuleDict``) and any objective state (an image pool, a
running mean). It computes losses and returns them; it never calls ``backward()`` or an optimiser: the engine's
step does (DESIGN.md principle 2). What the engine runs is declared by the recipe, as data:

    optimizers()            {name: OptimizerSpec(nets or param groups, schedule)}   any number of them
    phases()                [Phase(name, loss, optimizer, repeat, every, batch, start/stop kimg)]
                            default: D x d_steps on fresh real batches, then G on the last one
    loss(batch, ctx)        -> {'loss': scalar Tensor, ...logged scalars}; ctx: StepContext (step, nimg,
                            progress = nimg / total, this rank's noise)
    samplers(nets)          {name: Sampler}; "default" is what sample / eval / training metrics use
    enable_per_sample(b)    DP-SGD asks for per-example discriminator terms (raises where the recipe cannot)
    snapshot(fixed, nets)   [Artefact]: image grid, scatter, ... each with its own writer
    structure_state() / load_structure_state() / grow(ctx)   networks that change shape during a run

A new family is a new file with a ``Recipe`` subclass and ``@recipes.register("name")``.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Callable, ClassVar

import torch
from torch import nn

from ..config import dataclass_from_dict
from ..data.base import DataInfo
from ..errors import ConfigError
from ..nets.base import unwrap
from ..optim import OptimizerSpec
from ..registry import Registry

recipes: Registry[type["Recipe"]] = Registry("recipe")

BATCH_SOURCES = ("new", "last")


@dataclass
class StepContext:
    """What a loss may know about where training stands (passed to every phase's loss).

    ``randn`` / ``rand`` draw this rank's slice of a batch of noise drawn identically on every rank (losses draw
    all their randomness through them): under DDP with W ranks
    rank r gets rows [r n, (r+1) n) of the [W n, ...] draw one process would make, so W processes x batch n see
    exactly the latents of 1 process x batch W n (and on one process it is plain ``torch.randn``).
    """
    step: int = 0                    # training steps done before this one
    nimg: int = 0                    # real images drawn so far (all ranks)
    total_nimg: int = 1              # the run's length in images
    phase: str = ""                  # the running phase's name
    rank: int = 0
    world_size: int = 1

    @property
    def progress(self) -> float:
        """Training progress in [0, 1]: nimg / total."""
        return min(1.0, self.nimg / max(self.total_nimg, 1))

    @property
    def kimg(self) -> float:
        return self.nimg / 1000

    def randn(self, n: int, *shape: int, device: torch.device | str = "cpu") -> torch.Tensor:
        """N(0, 1) noise [n, *shape]: this rank's rows of one global draw."""
        return self._slice(torch.randn, n, shape, device)

    def rand(self, n: int, *shape: int, device: torch.device | str = "cpu") -> torch.Tensor:
        """U[0, 1) noise [n, *shape] (interpolation weights...): this rank's rows of one global draw."""
        return self._slice(torch.rand, n, shape, device)

    def rand_shared(self, *shape: int, device: torch.device | str = "cpu") -> torch.Tensor:
        """U[0, 1) noise [*shape], the SAME on every rank (and equal to one process's draw): for a value drawn
        once per global batch (StyleGAN's one style-mixing cutoff per batch). Ranks draw in lockstep (same seed,
        same draw sizes), so this is a plain draw."""
        return torch.rand(*shape, device=device)

    def _slice(self, draw, n: int, shape: tuple, device) -> torch.Tensor:
        if self.world_size == 1:
            return draw(n, *shape, device=device)
        full = draw(self.world_size * n, *shape, device=device)               # [W n, ...], the same on every rank
        return full[self.rank * n:(self.rank + 1) * n]


@dataclass
class Phase:
    """One kind of update the engine runs each training step, in list order.

    loss:       (batch, ctx) -> {'loss': Tensor, ...}. The engine multiplies 'loss' by ``every`` (lazy
                regularisation keeps the regulariser's average strength; Karras et al. 2020, appendix B).
    optimizer:  name of the recipe optimiser this phase steps.
    nets:       networks trained in this phase (requires_grad on, every other network frozen); default: the
                optimiser's networks.
    repeat:     updates per training step (D x k), each on its own batch when ``batch == "new"``.
    every:      run only on steps where step % every == 0 (lazy regularisation); an optimiser used by such a phase
                gets the lazy correction lr * c, beta ** c with c = every / (every + 1).
    batch:      "new" draws a fresh real batch (counted in kimg); "last" reuses the step's latest batch.
    start_kimg / stop_kimg: the phase is active while start <= kimg < stop (G-only pre-training, MLE before the
                adversarial game, ProGAN stages).
    after_step: called after the optimiser step (a constraint such as weight clipping).
    log_grad_norm: log the global gradient norm of this phase's optimiser once per tick as '<name>/grad_norm'.
    """
    name: str
    loss: Callable[[dict, StepContext], dict]
    optimizer: str
    nets: tuple[str, ...] = ()
    repeat: int = 1
    every: int = 1
    batch: str = "new"
    start_kimg: float = 0.0
    stop_kimg: float = math.inf
    after_step: Callable[[], None] | None = None
    log_grad_norm: bool = True

    def __post_init__(self) -> None:
        if self.repeat < 0 or self.every < 1:
            raise ConfigError(f"phase {self.name!r}: repeat must be >= 0 and every >= 1, got {self.repeat}, "
                              f"{self.every}.")
        if self.batch not in BATCH_SOURCES:
            raise ConfigError(f"phase {self.name!r}: batch must be one of {', '.join(BATCH_SOURCES)}, "
                              f"got {self.batch!r}.")

    def active(self, nimg: int, step: int) -> bool:
        kimg = nimg / 1000
        return self.repeat > 0 and self.start_kimg <= kimg < self.stop_kimg and step % self.every == 0


@dataclasses.dataclass
class NoOptions:
    """A recipe without options of its own."""


class Recipe(nn.Module):
    Options: ClassVar[type] = NoOptions                 # dataclass of recipe options (TrainConfig.opts)
    data_kinds: ClassVar[tuple[str, ...]] = ("image",)  # DataInfo.kind values this recipe trains on
    generator_names: ClassVar[tuple[str, ...]] = ("G",)  # updated by the "G" optimiser; they get EMA copies
    discriminator_names: ClassVar[tuple[str, ...]] = ("D",)
    # Which Sampler kind ``samplers()["default"]`` is (gankit.samplers): validation asks it which metrics apply.
    sampler_kind: ClassVar[str] = "noise"
    # Config overrides (dotted keys) under which a few CPU steps of this recipe's first preset take well under
    # a second, for the shared tests over every recipe (tests/test_hardening.py): laid over batch 4, 32 px and
    # width arguments (ngf, ndf, hidden, ...) at 8. A family whose networks or data need other values sets them.
    test_overrides: ClassVar[dict] = {}

    def __init__(self, nets: dict[str, nn.Module], opts: Any, info: DataInfo):
        super().__init__()
        self.nets = nn.ModuleDict(nets)
        self.opts = opts
        self.info = info
        self.d_steps = 1          # set from the config by from_config / the engine (the default phases use it)

    # ---- construction -------------------------------------------------------------------------------------
    @classmethod
    def from_config(cls, cfg: Any, info: DataInfo) -> "Recipe":
        """Build networks (via ``gankit.nets.build_net``) from ``cfg`` and the data's interface arguments."""
        raise NotImplementedError

    @classmethod
    def parse_options(cls, opts: dict) -> Any:
        """``TrainConfig.opts`` (a dict) -> this recipe's typed ``Options``; unknown keys / bad types fail."""
        return dataclass_from_dict(cls.Options, opts, where=f"recipe {cls.__name__} options")

    # ---- what the engine runs -----------------------------------------------------------------------------
    def optimizers(self) -> dict[str, OptimizerSpec]:
        """Default: "G" updates the generators, "D" the discriminators, both on ``lr_multiplier``'s schedule."""
        return {"G": OptimizerSpec(self.generator_names, schedule=self.lr_multiplier),
                "D": OptimizerSpec(self.discriminator_names, schedule=self.lr_multiplier)}

    def phases(self) -> list[Phase]:
        """Default: d_steps updates of D on fresh real batches (generators frozen), then one update of G
        through the frozen D on the last batch (Goodfellow et al. 2014, Algorithm 1)."""
        return [Phase("D", self.d_loss, "D", repeat=self.d_steps, batch="new", after_step=self.after_d_step),
                Phase("G", self.g_loss, "G", batch="last")]

    def generator_params(self) -> list[nn.Parameter]:
        return [p for n in self.generator_names for p in self.nets[n].parameters()]

    def discriminator_params(self) -> list[nn.Parameter]:
        return [p for n in self.discriminator_names for p in self.nets[n].parameters()]

    def d_loss(self, batch: dict[str, torch.Tensor], ctx: StepContext) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def g_loss(self, batch: dict[str, torch.Tensor], ctx: StepContext) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def after_d_step(self) -> None:
        """Constraint applied after each discriminator optimiser step (e.g. WGAN weight clipping)."""

    def lr_multiplier(self, progress: float) -> float:
        """Learning-rate factor at training progress in [0, 1] (constant unless a family schedules it)."""
        return 1.0

    def enable_per_sample(self, batch_size: int) -> int:
        """Called by a strategy that clips one gradient per example (DP-SGD, engine/privacy.py): switch the
        discriminator losses to a plain mean over the rows of one forward pass in which every row depends on one
        real example at most (no packing, no gradient penalty, no batch statistics), and return the expected
        number of rows of that forward for ``batch_size`` real examples. Raise ``ConfigError`` saying what in
        this configuration cannot do that. Default: not supported."""
        raise ConfigError(f"Recipe {type(self).__name__} does not support per-sample gradients (DP-SGD); a "
                          f"recipe that does implements Recipe.enable_per_sample (see ctgan).")

    def data_statistics(self) -> dict[str, torch.Tensor]:
        """Histograms of the training data the recipe uses besides the networks (CTGAN: the category counts of
        its conditional vector), each example counting once in each histogram. A privacy strategy may release
        them with noise (``set_data_statistics``) and charge the release to its budget. Default: none."""
        return {}

    def set_data_statistics(self, stats: dict[str, torch.Tensor]) -> None:
        """Use these (noisy) histograms instead of the data's own, everywhere they are read and saved."""

    # ---- networks that change during a run (ProGAN growing) -----------------------------------------------
    def structure_state(self) -> dict:
        """Plain data that, given to ``load_structure_state`` on a fresh recipe, rebuilds today's shapes (saved
        in the checkpoint before the weights, so resume mid-growth is exact)."""
        return {}

    def load_structure_state(self, state: dict) -> None:
        """Restore the shapes ``structure_state`` describes (before the weights are loaded)."""

    def grow(self, ctx: StepContext) -> set[str]:
        """Called before each step: change the networks if the schedule says so and return the names of the
        optimisers whose parameters changed (the engine rebuilds them with fresh state, as ProGAN's reference
        code resets Adam at each new resolution, and re-wraps their networks under DDP). Change a network
        through ``self.plain(name)``: under DDP ``self.nets[name]`` is its wrapper."""
        return set()

    def plain(self, name: str) -> nn.Module:
        """Network ``name`` without a DistributedDataParallel wrapper (for its attributes or to change it)."""
        return unwrap(self.nets[name])

    # ---- using the trained model --------------------------------------------------------------------------
    def fixed_inputs(self, n: int, seed: int, dataset: Any) -> dict[str, torch.Tensor]:
        """The inputs of the snapshot (fixed latents and labels, or a fixed batch of real inputs)."""
        raise NotImplementedError

    @torch.no_grad()
    def snapshot(self, fixed: dict[str, Any], nets: nn.ModuleDict) -> list:
        """What the snapshot shows: a list of ``gankit.artefacts.Artefact`` (image grid, scatter, ...)."""
        raise NotImplementedError

    def samplers(self, nets: nn.ModuleDict | None = None) -> dict[str, Any]:
        """``{"default": Sampler, ...}`` drawing from ``nets`` (normally the EMA copies)."""
        raise NotImplementedError

    def sampler(self, nets: nn.ModuleDict | None = None) -> Any:
        """The default sampler."""
        return self.samplers(nets)["default"]


def check_data_kind(recipe_cls: type[Recipe], name: str, info: DataInfo) -> None:
    if info.kind not in recipe_cls.data_kinds:
        raise ConfigError(f"Recipe {name!r} trains on {' or '.join(recipe_cls.data_kinds)} data, but "
                          f"{info.name!r} is {info.kind} data.")


__all__ = ["Recipe", "Phase", "StepContext", "OptimizerSpec", "recipes", "check_data_kind"]
