"""Multilayer perceptrons: for vectors (2-D toys, tabular data) and, on flattened images, the networks of the
original GAN (Goodfellow et al. 2014).

"mlp"        G: z [N, z_dim] -> [N, out_dim] (linear output: vector data is not confined to [-1, 1]);
             D: x [N, in_dim] -> [N]. Defaults follow the 2-D toy networks of the WGAN-GP paper's code
             (Gulrajani et al. 2017, gan_toy.py: 3 hidden layers, ReLU), at 256 units, LeakyReLU(0.2) in D, and
             batch norm in G: measured on grid25 (non-saturating loss, z_dim 2, batch 64, 6000 G steps) it
             covered 21 of 25 modes against 2 without it; 512 units were no better than 256 and 2.6x slower.
             Batch norm in G needs batches of 2 or more in training mode (sample in eval mode).
"mlp_image"  the same on flattened images, G ending in tanh and reshaping to [N, C, R, R]. Goodfellow et al.
             used two hidden layers (ReLU G, maxout D with dropout); here D uses LeakyReLU in place of maxout
             and ``dropout`` (their value: 0.5) is off by default.

Class conditioning (Mirza & Osindero 2014): a learned label embedding joins z in G and x in D ("concat"), or D
adds the projection term <embed(y), phi(x)> on its last hidden layer (Miyato & Koyama 2018, eq. 3).
"""
from __future__ import annotations

import torch
from torch import nn

from ..errors import ConfigError
from .base import discriminators, generators
from .layers import (CONDITIONINGS, GENERATOR_NORMS, check_choice, norm1d, projection_term, require_label, spectral,
                     uses_bias)

MLP_D_NORMS = ("none", "spectral", "layer", "batch")  # "instance" has no meaning for a vector


def _check_size(hidden: int, depth: int, where: str) -> None:
    if hidden < 1 or depth < 1:
        raise ConfigError(f"{where}: hidden and depth must be >= 1, got hidden={hidden}, depth={depth}.")


@generators.register("mlp")
class MLPGenerator(nn.Module):
    kind = "vector"
    test_interface = {"z_dim": 4, "out_dim": 2}

    def __init__(
        self,
        z_dim: int,
        out_dim: int,
        num_classes: int = 0,
        hidden: int = 256,      # units per hidden layer
        depth: int = 3,         # number of hidden layers
        norm: str = "batch",    # batch | none (after each hidden linear layer; batch learns grid25 much faster)
        embed_dim: int = 16,    # size of the label embedding joined to z (class-conditional only)
    ):
        super().__init__()
        where = f"{type(self).__name__}"
        check_choice(norm, GENERATOR_NORMS, "norm", where)
        _check_size(hidden, depth, where)
        self.z_dim, self.num_classes, self.out_dim = z_dim, num_classes, out_dim
        self.embed = nn.Embedding(num_classes, embed_dim) if num_classes > 0 else None
        width = z_dim + (embed_dim if num_classes > 0 else 0)
        layers: list[nn.Module] = []
        for _ in range(depth):
            layers += [nn.Linear(width, hidden, bias=uses_bias(norm)), norm1d(norm, hidden), nn.ReLU(True)]
            width = hidden
        layers.append(nn.Linear(width, out_dim))
        self.main = nn.Sequential(*[m for m in layers if not isinstance(m, nn.Identity)])

    def forward(self, z: torch.Tensor, label: torch.Tensor | None = None) -> torch.Tensor:
        label = require_label(label, self.num_classes, z.shape[0], type(self).__name__)
        if label is not None:
            z = torch.cat([z, self.embed(label)], dim=1)  # [N, z_dim + embed_dim]
        return self.main(z)                               # [N, out_dim]


@discriminators.register("mlp")
class MLPDiscriminator(nn.Module):
    kind = "vector"
    test_interface = {"in_dim": 2}

    def __init__(
        self,
        in_dim: int,
        num_classes: int = 0,
        hidden: int = 256,             # units per hidden layer
        depth: int = 3,                # number of hidden layers
        norm: str = "none",            # none | spectral | layer | batch
        slope: float = 0.2,            # LeakyReLU negative slope
        conditioning: str = "concat",  # concat (label embedding joined to x) | projection (Miyato & Koyama 2018)
        embed_dim: int = 16,           # size of the label embedding joined to x under "concat"
        dropout: float = 0.0,          # dropout after each hidden layer (Goodfellow et al. 2014 used 0.5)
    ):
        super().__init__()
        where = f"{type(self).__name__}"
        check_choice(norm, MLP_D_NORMS, "norm", where)
        check_choice(conditioning, CONDITIONINGS, "conditioning", where)
        _check_size(hidden, depth, where)
        if not 0.0 <= dropout < 1.0:
            raise ConfigError(f"{where}: dropout must be in [0, 1), got {dropout}.")
        self.num_classes, self.conditioning = num_classes, conditioning
        concat = num_classes > 0 and conditioning == "concat"
        self.label_embed = nn.Embedding(num_classes, embed_dim) if concat else None
        width = in_dim + (embed_dim if concat else 0)
        layers: list[nn.Module] = []
        for _ in range(depth):
            layers += [spectral(nn.Linear(width, hidden, bias=uses_bias(norm)), norm), norm1d(norm, hidden),
                       nn.LeakyReLU(slope, True)]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            width = hidden
        self.blocks = nn.Sequential(*[m for m in layers if not isinstance(m, nn.Identity)])
        self.head = spectral(nn.Linear(width, 1), norm)  # psi
        # V of Miyato & Koyama eq. 3 (spectrally normalised under norm="spectral", as in their code).
        self.embed = (spectral(nn.Embedding(num_classes, width), norm)
                      if num_classes > 0 and conditioning == "projection" else None)

    def features(self, x: torch.Tensor, label: torch.Tensor | None = None) -> torch.Tensor:
        """phi(x): the last hidden layer [N, hidden] that the head and the projection read."""
        label = require_label(label, self.num_classes, x.shape[0], type(self).__name__)
        if self.label_embed is not None:
            x = torch.cat([x, self.label_embed(label).to(x.dtype)], dim=1)  # [N, in_dim + embed_dim]
        return self.blocks(x)

    def forward(self, x: torch.Tensor, label: torch.Tensor | None = None) -> torch.Tensor:
        feat = self.features(x, label)                      # [N, hidden]
        score = self.head(feat).reshape(x.shape[0])         # psi(phi(x)), [N]
        if self.embed is not None:
            score = score + projection_term(self.embed, label.long(), feat)  # + y^T V phi(x), eq. 3
        return score                                        # raw scores, no sigmoid


@generators.register("mlp_image")
class ImageMLPGenerator(nn.Module):
    kind = "image"
    test_interface = {"z_dim": 8, "out_channels": 1, "resolution": 8}

    def __init__(
        self,
        z_dim: int,
        out_channels: int,
        resolution: int,
        num_classes: int = 0,
        hidden: int = 1024,     # units per hidden layer (Goodfellow et al. 2014 used 1200 for MNIST)
        depth: int = 2,         # number of hidden layers (Goodfellow et al.: 2)
        norm: str = "batch",    # batch | none
        embed_dim: int = 16,    # size of the label embedding joined to z (class-conditional only)
    ):
        super().__init__()
        self.z_dim, self.num_classes = z_dim, num_classes
        self.shape = (out_channels, resolution, resolution)
        self.mlp = MLPGenerator(z_dim, out_channels * resolution * resolution, num_classes, hidden, depth, norm,
                                embed_dim)

    def forward(self, z: torch.Tensor, label: torch.Tensor | None = None) -> torch.Tensor:
        return torch.tanh(self.mlp(z, label)).view(z.shape[0], *self.shape)  # [N, C, R, R] in [-1, 1]


@discriminators.register("mlp_image")
class ImageMLPDiscriminator(nn.Module):
    kind = "image"
    test_interface = {"in_channels": 1, "resolution": 8}

    def __init__(
        self,
        in_channels: int,
        resolution: int,
        num_classes: int = 0,
        hidden: int = 512,             # units per hidden layer (Goodfellow et al.: 240 maxout units x 5 pieces)
        depth: int = 2,                # number of hidden layers
        norm: str = "none",            # none | spectral | layer | batch
        slope: float = 0.2,            # LeakyReLU negative slope
        conditioning: str = "concat",  # concat | projection
        embed_dim: int = 16,           # size of the label embedding joined to the flattened image under "concat"
        dropout: float = 0.0,          # dropout after each hidden layer (Goodfellow et al.: 0.5)
    ):
        super().__init__()
        self.num_classes, self.conditioning = num_classes, conditioning
        self.mlp = MLPDiscriminator(in_channels * resolution * resolution, num_classes, hidden, depth, norm, slope,
                                    conditioning, embed_dim, dropout)

    def features(self, x: torch.Tensor, label: torch.Tensor | None = None) -> torch.Tensor:
        return self.mlp.features(x.flatten(1), label)       # [N, hidden]

    def forward(self, x: torch.Tensor, label: torch.Tensor | None = None) -> torch.Tensor:
        return self.mlp(x.flatten(1), label)                # [N]
