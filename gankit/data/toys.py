"""2-D Gaussian mixtures, the mode-collapse benchmarks (kind "vector", labels = mode index).

ring8:  8 Gaussians, centres evenly spaced on a circle of radius 2, std 0.02
        (Metz et al. 2017, "Unrolled Generative Adversarial Networks", sec. 3.1).
grid25: 25 Gaussians with means (-4 + 2i, -4 + 2j), i, j in 0..4, variance 0.0025 (std 0.05)
        (Lin et al. 2018, "PacGAN", sec. 5.1, after the 2-D grid of Srivastava et al. 2017, VEEGAN).

The papers draw fresh points for every batch. Here a fixed, seeded set of ``N_POINTS`` = 100,000 points
stands in for that stream: 12,500 per mode for ring8 and 4,000 for grid25 (equal counts, so mode-coverage
statistics are not perturbed by multinomial noise), which puts the sampling error of each mode's mean at
std/sqrt(4000) = 0.0008 or less, far below the std, and is far more points than a small MLP generator can
memorise; it costs 800 KB. data.split=test draws a different 100,000 with another seed.
"""
from __future__ import annotations

import math

import torch

from .base import DataInfo, MemoryDataset
from .catalog import builtin

N_POINTS = 100_000
SEEDS = {"train": 0, "test": 1}


def ring_centers(n_modes: int = 8, radius: float = 2.0) -> torch.Tensor:
    angle = torch.arange(n_modes, dtype=torch.float64) * (2 * math.pi / n_modes)
    return torch.stack([radius * torch.cos(angle), radius * torch.sin(angle)], dim=1)      # [K, 2]


def grid_centers(side: int = 5, spacing: float = 2.0) -> torch.Tensor:
    coords = (torch.arange(side, dtype=torch.float64) - (side - 1) / 2) * spacing        # -4, -2, 0, 2, 4
    gx, gy = torch.meshgrid(coords, coords, indexing="ij")
    return torch.stack([gx.reshape(-1), gy.reshape(-1)], dim=1)                           # [K, 2]


def gaussian_mixture(name: str, centers: torch.Tensor, std: float, split: str, about: str) -> MemoryDataset:
    """``N_POINTS`` points, an equal number per mode in shuffled order: x = centre[label] + std * N(0, I)."""
    k = len(centers)
    g = torch.Generator().manual_seed(SEEDS[split])
    label = torch.arange(N_POINTS) % k                                                    # equal counts
    label = label[torch.randperm(N_POINTS, generator=g)]
    x = centers[label] + std * torch.randn(N_POINTS, 2, generator=g, dtype=torch.float64)  # [N, 2]
    info = DataInfo(name=name, kind="vector", size=N_POINTS, dim=2, num_classes=k,
                    class_names=[f"mode{i}" for i in range(k)],
                    extras={"centers": centers.tolist(), "std": std, "about": about})
    return MemoryDataset({"x": x.float(), "label": label}, info)


@builtin("ring8", kind="vector", about="8 Gaussians on a circle of radius 2, std 0.02 (Metz et al. 2017)")
def ring8(cfg) -> MemoryDataset:
    return gaussian_mixture("ring8", ring_centers(8, 2.0), 0.02, cfg.split, ring8.about)


@builtin("grid25", kind="vector", about="25 Gaussians on a 5x5 grid, spacing 2, std 0.05 (Lin et al. 2018)")
def grid25(cfg) -> MemoryDataset:
    return gaussian_mixture("grid25", grid_centers(5, 2.0), 0.05, cfg.split, grid25.about)
