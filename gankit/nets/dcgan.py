"""DCGAN networks (Radford et al. 2016, "Unsupervised representation learning with deep convolutional GANs").

Generator: z -> (1x1 transposed conv to a start map) -> stride-2 transposed convs, each doubling the side,
with batch norm + ReLU -> tanh. Discriminator: stride-2 convs with LeakyReLU, batch norm on all but the first,
and a final conv over the whole start map to one score. All up/down-sampling convs are 4x4, stride 2,
padding 1, as in the paper's code and the PyTorch example (pytorch/examples dcgan/main.py).

Resolutions: 32, 64, 128 start from a 4x4 map (3, 4, 5 doublings); 28 (MNIST) starts from 7x7 with two
doublings (7 -> 14 -> 28), the start conv and the final D conv using a 7x7 kernel instead of 4x4. Channel
widths halve as the side doubles: at side ``start * 2**j`` (j = 0 .. n-1) the width is
``ngf * min(2**(n-1-j), 8)`` (so 64x64 gives the example's 512-256-128-64, and 128x128 caps at 8*ngf).
With ngf = ndf = 64, 64x64, 3 channels and norm="batch" the networks are layer for layer the PyTorch example's
(3,576,704 and 2,765,568 parameters).

Class conditioning (Mirza & Osindero 2014): G joins a learned label embedding to z. D either joins a learned
label *map* (an embedding of size R*R reshaped to one extra input channel, [N, 1, R, R]) to the image
("concat"), or adds the projection term of Miyato & Koyama 2018 ("projection").
"""
from __future__ import annotations

import torch
from torch import nn

from ..errors import ConfigError
from .base import discriminators, generators
from .layers import (CONDITIONINGS, DISCRIMINATOR_NORMS, GENERATOR_NORMS, check_choice, norm2d, projection_term,
                     require_label, spectral, uses_bias)

RESOLUTIONS = (28, 32, 64, 128)
MAX_WIDTH_MULT = 8  # widest layer = 8 * ngf, the paper's 4x4 width at 64x64


def plan(resolution: int, where: str) -> tuple[int, int]:
    """(side of the start map, number of 2x resamplings) for ``resolution``; ConfigError if unsupported."""
    if resolution not in RESOLUTIONS:
        raise ConfigError(f"{where}: cannot make resolution {resolution!r}. "
                          f"Valid resolutions: {', '.join(map(str, RESOLUTIONS))}.")
    start = 7 if resolution == 28 else 4
    return start, (resolution // start).bit_length() - 1  # 28 -> 2, 32 -> 3, 64 -> 4, 128 -> 5


def widths(base: int, doublings: int) -> list[int]:
    """Channel width at each side start * 2**j, j = 0 .. doublings-1 (coarse to fine)."""
    return [base * min(2 ** (doublings - 1 - j), MAX_WIDTH_MULT) for j in range(doublings)]


@generators.register("dcgan")
class DCGANGenerator(nn.Module):
    kind = "image"
    test_interface = {"z_dim": 8, "out_channels": 3, "resolution": 32}
    resolutions = RESOLUTIONS

    def __init__(
        self,
        z_dim: int,
        out_channels: int,
        resolution: int,
        num_classes: int = 0,
        ngf: int = 64,          # width of the finest hidden layer; coarser layers double it, up to 8 * ngf
        norm: str = "batch",    # batch | none (Radford et al.: batch norm in every G layer but the output)
        embed_dim: int = 32,    # size of the label embedding joined to z (class-conditional only)
    ):
        super().__init__()
        where = "dcgan generator"
        check_choice(norm, GENERATOR_NORMS, "norm", where)
        start, doublings = plan(resolution, where)
        self.z_dim, self.num_classes, self.resolution = z_dim, num_classes, resolution
        self.embed = nn.Embedding(num_classes, embed_dim) if num_classes > 0 else None
        in_dim = z_dim + (embed_dim if num_classes > 0 else 0)

        bias = uses_bias(norm)
        chans = widths(ngf, doublings)
        # z as a 1x1 map -> start x start map by a transposed conv with a start-sized kernel (PyTorch example).
        layers: list[nn.Module] = [nn.ConvTranspose2d(in_dim, chans[0], start, 1, 0, bias=bias),
                                   norm2d(norm, chans[0]), nn.ReLU(True)]
        for c_in, c_out in zip(chans[:-1], chans[1:]):
            layers += [nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=bias), norm2d(norm, c_out), nn.ReLU(True)]
        # The output layer has no batch norm (Radford et al. sec. 3: it caused sample oscillation).
        layers += [nn.ConvTranspose2d(chans[-1], out_channels, 4, 2, 1, bias=bias), nn.Tanh()]
        self.main = nn.Sequential(*[m for m in layers if not isinstance(m, nn.Identity)])

    def forward(self, z: torch.Tensor, label: torch.Tensor | None = None) -> torch.Tensor:
        label = require_label(label, self.num_classes, z.shape[0], "dcgan generator")
        if label is not None:
            z = torch.cat([z, self.embed(label)], dim=1)          # [N, z_dim + embed_dim]
        return self.main(z[:, :, None, None])                      # [N, C, R, R] in [-1, 1]


@discriminators.register("dcgan")
class DCGANDiscriminator(nn.Module):
    kind = "image"
    test_interface = {"in_channels": 3, "resolution": 32}
    resolutions = RESOLUTIONS

    def __init__(
        self,
        in_channels: int,
        resolution: int,
        num_classes: int = 0,
        ndf: int = 64,                 # width of the first layer; each halving of the side doubles it, up to 8 * ndf
        norm: str = "batch",           # batch | spectral | none | layer | instance (none of them on the first layer)
        slope: float = 0.2,            # LeakyReLU negative slope (Radford et al. sec. 3)
        conditioning: str = "concat",  # concat (label map as an extra input channel) | projection (Miyato & Koyama 2018)
    ):
        super().__init__()
        where = "dcgan discriminator"
        check_choice(norm, DISCRIMINATOR_NORMS, "norm", where)
        check_choice(conditioning, CONDITIONINGS, "conditioning", where)
        start, doublings = plan(resolution, where)
        self.num_classes, self.resolution, self.conditioning = num_classes, resolution, conditioning
        concat = num_classes > 0 and conditioning == "concat"
        projection = num_classes > 0 and conditioning == "projection"

        # concat: one learned R x R label map per class, joined to the image as an extra channel.
        self.label_map = nn.Embedding(num_classes, resolution * resolution) if concat else None
        bias = uses_bias(norm)
        chans = widths(ndf, doublings)[::-1]  # fine to coarse
        c_first = in_channels + (1 if concat else 0)
        layers: list[nn.Module] = [spectral(nn.Conv2d(c_first, chans[0], 4, 2, 1, bias=bias), norm),
                                   nn.LeakyReLU(slope, True)]
        for c_in, c_out in zip(chans[:-1], chans[1:]):
            layers += [spectral(nn.Conv2d(c_in, c_out, 4, 2, 1, bias=bias), norm), norm2d(norm, c_out),
                       nn.LeakyReLU(slope, True)]
        self.blocks = nn.Sequential(*[m for m in layers if not isinstance(m, nn.Identity)])
        # psi: a conv over the whole start map = a linear function of the flattened features (one score).
        self.head = spectral(nn.Conv2d(chans[-1], 1, start, 1, 0, bias=bias), norm)
        # projection: V of Miyato & Koyama eq. 3, one row per class over the sum-pooled features; spectrally
        # normalised with the rest under norm="spectral" (as in their SNGAN-projection code).
        self.embed = spectral(nn.Embedding(num_classes, chans[-1]), norm) if projection else None

    def features(self, x: torch.Tensor, label: torch.Tensor | None = None) -> torch.Tensor:
        """phi(x): the last feature map [N, C, s, s] that the head and the projection read."""
        label = require_label(label, self.num_classes, x.shape[0], "dcgan discriminator")
        if self.label_map is not None:
            label_map = self.label_map(label).view(-1, 1, self.resolution, self.resolution)  # [N, 1, R, R]
            x = torch.cat([x, label_map.to(x.dtype)], dim=1)
        return self.blocks(x)

    def forward(self, x: torch.Tensor, label: torch.Tensor | None = None) -> torch.Tensor:
        feat = self.features(x, label)                              # [N, C, s, s]
        score = self.head(feat).reshape(x.shape[0])                 # psi(phi(x)), [N]
        if self.embed is not None:
            # Miyato & Koyama 2018, eq. 3: f(x, y) = y^T V phi(x) + psi(phi(x)), phi sum-pooled over space.
            score = score + projection_term(self.embed, label.long(), feat.sum(dim=(2, 3)))
        return score                                                # raw scores, no sigmoid
