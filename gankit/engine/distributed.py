"""Placeholder of the torchrun / DDP building blocks (single process only); replaced by the full module."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch


@dataclass(frozen=True)
class World:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def init_world(device_type: str) -> World:
    return World()


def device_for(world: World, requested: torch.device) -> torch.device:
    return requested


def broadcast_object(obj: Any, world: World, src: int = 0) -> Any:
    return obj


def all_gather_objects(obj: Any, world: World) -> list:
    return [obj]


def all_reduce_mean_(tensor: torch.Tensor, world: World) -> torch.Tensor:
    return tensor


def barrier(world: World) -> None:
    pass


def shutdown(world: World) -> None:
    pass
