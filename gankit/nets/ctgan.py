"""CTGAN's networks (Xu et al. 2019, "Modeling Tabular Data using Conditional GAN", sec. 4.4 and appendix).

"ctgan" G: residual blocks h_{i+1} = [ReLU(BN(FC(h_i))), h_i] (the input is concatenated to each block's output),
           then a linear layer to the encoded row [N, out_dim]. The recipe applies the per-span activations
           (tanh for alpha, Gumbel-softmax for modes and categories) and feeds z with the conditional vector
           concatenated (z_dim counts both).
"ctgan" D: FC -> LeakyReLU(0.2) -> Dropout(0.5) twice, then a linear score [N]. PacGAN packing (Lin et al. 2018)
           is the recipe's: it reshapes pac rows into one input of pac x row width, so ``in_dim`` counts a pack.
           No batch norm, so it works with per-sample gradients (DP-SGD through Opacus) and with gradient penalties.
"""
from __future__ import annotations

import torch
from torch import nn

from ..errors import ConfigError
from .base import discriminators, generators


def _dims(hidden: tuple, where: str) -> tuple[int, ...]:
    dims = tuple(int(h) for h in hidden)
    if not dims or min(dims) < 1:
        raise ConfigError(f"{where}: hidden must be a non-empty list of positive widths, got {list(hidden)}.")
    return dims


class _Residual(nn.Module):
    def __init__(self, width_in: int, width_out: int):
        super().__init__()
        self.fc = nn.Linear(width_in, width_out)
        self.bn = nn.BatchNorm1d(width_out)
        self.relu = nn.ReLU()

    def forward(self, h: torch.Tensor) -> torch.Tensor:          # [N, i] -> [N, o + i]
        return torch.cat([self.relu(self.bn(self.fc(h))), h], dim=1)


@generators.register("ctgan")
class CTGANGenerator(nn.Module):
    kind = "vector"
    test_interface = {"z_dim": 6, "out_dim": 5}

    def __init__(self, z_dim: int, out_dim: int, hidden: tuple = (256, 256)):   # CTGAN: generator_dim (256, 256)
        super().__init__()
        dims = _dims(hidden, type(self).__name__)
        self.z_dim, self.out_dim = z_dim, out_dim
        blocks, width = [], z_dim
        for h in dims:
            blocks.append(_Residual(width, h))
            width += h
        self.blocks = nn.Sequential(*blocks)
        self.out = nn.Linear(width, out_dim)

    def forward(self, z: torch.Tensor, label: torch.Tensor | None = None) -> torch.Tensor:
        return self.out(self.blocks(z))                           # [N, out_dim] raw (pre-activation) row


@discriminators.register("ctgan")
class CTGANDiscriminator(nn.Module):
    kind = "vector"
    test_interface = {"in_dim": 7}

    def __init__(self, in_dim: int, hidden: tuple = (256, 256), dropout: float = 0.5, slope: float = 0.2):
        super().__init__()
        dims = _dims(hidden, type(self).__name__)
        layers: list[nn.Module] = []
        width = in_dim
        for h in dims:
            layers += [nn.Linear(width, h), nn.LeakyReLU(slope), nn.Dropout(dropout)]
            width = h
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(width, 1)

    def forward(self, x: torch.Tensor, label: torch.Tensor | None = None) -> torch.Tensor:
        return self.head(self.body(x)).squeeze(1)                 # [N] raw scores
