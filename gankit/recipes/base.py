"""The recipe contract: networks + objective, nothing about optimisation mechanics.

A recipe owns its networks in ``self.nets`` (an ``nn.ModuleDict``) and any objective state (an image pool, a
running mean). It computes losses and returns them; it never calls ``backward()`` or an optimiser: that is
``train.train_step``'s job (DESIGN.md principle 2). A new family is a new file with a ``Recipe`` subclass and
``@recipes.register("name")``.

    d_loss(batch, step) -> {'loss': scalar Tensor, ...logging scalars}
    g_loss(batch, step) -> {'loss': scalar Tensor, ...}
    sample(...)         -> Tensor in [-1, 1] (uses the nets passed in, normally the EMA copies)
    generator_params() / discriminator_params()  what each optimiser updates
"""
from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import torch
from torch import nn

from ..data.base import DataInfo
from ..errors import ConfigError
from ..registry import Registry

recipes: Registry[type["Recipe"]] = Registry("recipe")


@dataclasses.dataclass
class NoOptions:
    """A recipe without options of its own."""


class Recipe(nn.Module):
    Options: ClassVar[type] = NoOptions                 # dataclass of recipe options (TrainConfig.opts)
    data_kinds: ClassVar[tuple[str, ...]] = ("image",)  # DataInfo.kind values this recipe trains on
    generator_names: ClassVar[tuple[str, ...]] = ("G",)  # nets updated by the G optimiser; they get EMA copies
    discriminator_names: ClassVar[tuple[str, ...]] = ("D",)
    # What ``sampler`` returns, so metrics know how to drive it: "noise" = ``(n, seed) -> images`` (drawn from
    # latents); "translate" = ``inputs -> images`` (image-to-image recipes, fed held-out inputs).
    sampler_kind: ClassVar[str] = "noise"

    def __init__(self, nets: dict[str, nn.Module], opts: Any, info: DataInfo):
        super().__init__()
        self.nets = nn.ModuleDict(nets)
        self.opts = opts
        self.info = info

    # ---- construction -------------------------------------------------------------------------------------
    @classmethod
    def from_config(cls, cfg: Any, info: DataInfo) -> "Recipe":
        """Build networks (via ``gankit.nets.make_net``) from ``cfg`` and the data's interface arguments."""
        raise NotImplementedError

    @classmethod
    def parse_options(cls, opts: dict) -> Any:
        """``TrainConfig.opts`` (a dict) -> this recipe's typed ``Options``; unknown keys / bad types fail."""
        from ..config import dataclass_from_dict  # local import: config imports recipes
        return dataclass_from_dict(cls.Options, opts, where=f"recipe {cls.__name__} options")

    # ---- objective ----------------------------------------------------------------------------------------
    def d_loss(self, batch: dict[str, torch.Tensor], step: int) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def g_loss(self, batch: dict[str, torch.Tensor], step: int) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def after_d_step(self) -> None:
        """Constraint applied after each discriminator optimiser step (e.g. WGAN weight clipping)."""

    # ---- what the optimisers update -----------------------------------------------------------------------
    def generator_params(self) -> list[nn.Parameter]:
        return [p for n in self.generator_names for p in self.nets[n].parameters()]

    def discriminator_params(self) -> list[nn.Parameter]:
        return [p for n in self.discriminator_names for p in self.nets[n].parameters()]

    def set_requires_grad(self, generators: bool, discriminators: bool) -> None:
        for n in self.generator_names:
            self.nets[n].requires_grad_(generators)
        for n in self.discriminator_names:
            self.nets[n].requires_grad_(discriminators)

    def lr_multiplier(self, progress: float) -> float:
        """Learning-rate factor at training progress in [0, 1] (constant unless a family schedules it)."""
        return 1.0

    # ---- using the trained model --------------------------------------------------------------------------
    def fixed_inputs(self, n: int, seed: int, dataset: Any) -> dict[str, torch.Tensor]:
        """The inputs of the snapshot grid (fixed latents and labels, or a fixed batch of real inputs)."""
        raise NotImplementedError

    @torch.no_grad()
    def snapshot(self, fixed: dict[str, torch.Tensor], nets: nn.ModuleDict) -> dict[str, Any]:
        """What the snapshot shows: {'grid': [N, C, H, W] in [-1, 1], 'nrow': int} or {'points': [N, D]}."""
        raise NotImplementedError

    def sampler(self, nets: nn.ModuleDict | None = None):
        """A function ``(n, seed) -> [n, C, H, W] in [-1, 1]`` drawing from the model (for metrics)."""
        raise NotImplementedError


def check_data_kind(recipe_cls: type[Recipe], name: str, info: DataInfo) -> None:
    if info.kind not in recipe_cls.data_kinds:
        raise ConfigError(f"Recipe {name!r} trains on {' or '.join(recipe_cls.data_kinds)} data, but "
                          f"{info.name!r} is {info.kind} data.")
