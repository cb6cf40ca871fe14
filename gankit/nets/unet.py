"""U-Net generator of pix2pix (Isola et al. 2017, sec. 3.2.1 and appendix 6.1.1; Ronneberger et al. 2015).

An encoder of stride-2 4x4 convolutions down to a 1 x 1 bottleneck and a mirrored decoder of stride-2 4x4
transposed convolutions; decoder layer i also receives encoder layer i's output (the skip connections that let
low-level structure, e.g. the edges of an edge map, cross the bottleneck). At 256 px this is the paper's

    encoder C64-C128-C256-C512-C512-C512-C512-C512
    decoder CD512-CD1024-CD1024-C1024-C1024-C512-C256-C128   (channel counts after concatenating the skip)

Depth rule: ``num_downs = log2(resolution)`` so the bottleneck is always 1 x 1 (5 at 32 px ... 8 at 256 px);
the channel count doubles per level from ``ngf`` and is capped at ``8 * ngf``.

As in the paper, the encoder uses LeakyReLU(0.2), the decoder ReLU; the first encoder layer has no
normalisation, and neither has the innermost (a 1 x 1 map has no spatial statistics: instance norm would zero it,
and batch norm at batch size 1 would too). Dropout 0.5 follows the ``dropout_layers`` innermost decoder layers
(the "CD" layers: the paper's noise z, active while training). gankit runs translators in eval mode for
snapshots, metrics and ``gankit translate``, so outputs are deterministic: no dropout and batch-norm running
statistics, unlike the paper's test protocol (train-mode dropout and test-batch statistics).

Fully convolutional: at inference any H, W that are multiples of ``size_multiple`` (= 2^num_downs) work.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from ..errors import ConfigError
from .base import generators
from .patchgan import check_translation_resolution, conv_bias, norm_2d


def unet_depth(resolution: int) -> int:
    """Number of stride-2 levels that brings a ``resolution`` px image to a 1 x 1 bottleneck."""
    check_translation_resolution(resolution, "unet")
    return int(math.log2(resolution))


@generators.register("unet")
class UNetGenerator(nn.Module):
    """``G(x [N, in_channels, H, W]) -> [N, out_channels, H, W]`` in [-1, 1] (tanh)."""

    kind = "translator"
    test_interface = {"in_channels": 3, "out_channels": 1, "resolution": 32}  # small example (shared tests)

    def __init__(self,
                 in_channels: int = 3,       # interface: channels of the input domain
                 out_channels: int = 3,      # interface: channels of the output domain
                 resolution: int = 256,      # interface: training image side; sets the depth (log2)
                 ngf: int = 64,              # filters of the outermost layer (C64)
                 norm: str = "batch",        # batch (paper) | instance | none
                 dropout: float = 0.5,       # dropout rate of the innermost decoder layers (paper: 0.5)
                 dropout_layers: int = 3):   # how many innermost decoder layers have dropout (paper: 3)
        super().__init__()
        self.num_downs = unet_depth(resolution)
        self.size_multiple = 2 ** self.num_downs
        if not 0.0 <= dropout < 1.0:
            raise ConfigError(f"unet: dropout must be in [0, 1), got {dropout}.")
        if not 0 <= dropout_layers < self.num_downs:
            raise ConfigError(f"unet: dropout_layers must be in [0, {self.num_downs - 1}] at {resolution} px, "
                              f"got {dropout_layers}.")
        D = self.num_downs
        bias = conv_bias(norm)
        self.channels = [ngf * min(2 ** i, 8) for i in range(D)]  # encoder output channels per level, outermost first

        # Encoder, outermost first. Pre-activation layout (activation, conv, norm) as in the authors' code: each
        # skip is the normalised conv output, the activation belongs to the next layer. Not in place, so the stored
        # skips stay as they were (the decoder's ReLU after the concatenation would give the same result anyway).
        self.down = nn.ModuleList()
        for i in range(D):
            c_in = in_channels if i == 0 else self.channels[i - 1]
            c_out = self.channels[i]
            if i == 0:
                layer = [nn.Conv2d(c_in, c_out, 4, 2, 1, bias=bias)]
            elif i == D - 1:
                layer = [nn.LeakyReLU(0.2), nn.Conv2d(c_in, c_out, 4, 2, 1, bias=True)]
            else:
                layer = [nn.LeakyReLU(0.2), nn.Conv2d(c_in, c_out, 4, 2, 1, bias=bias), norm_2d(norm, c_out)]
            self.down.append(nn.Sequential(*layer))

        # Decoder, innermost first: up[j] undoes down[D-1-j]. Its input is the previous decoder output
        # concatenated with the skip of the same level (only the innermost one reads the bottleneck alone).
        self.up = nn.ModuleList()
        for j in range(D):
            i = D - 1 - j                                    # level this decoder layer returns from
            c_in = self.channels[i] * (1 if j == 0 else 2)
            if i == 0:
                layer = [nn.ReLU(True), nn.ConvTranspose2d(c_in, out_channels, 4, 2, 1), nn.Tanh()]
            else:
                c_out = self.channels[i - 1]
                layer = [nn.ReLU(True), nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=bias), norm_2d(norm, c_out)]
                if j < dropout_layers and dropout > 0:
                    layer.append(nn.Dropout(dropout))
            self.up.append(nn.Sequential(*layer))

    def encode(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Encoder outputs (the skips), outermost first: level i is [N, channels[i], H / 2^(i+1), W / 2^(i+1)]."""
        skips = []
        for layer in self.down:
            x = layer(x)
            skips.append(x)
        return skips

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-2] % self.size_multiple or x.shape[-1] % self.size_multiple:
            raise ValueError(f"unet input sides must be multiples of {self.size_multiple}, got {tuple(x.shape[-2:])}")
        skips = self.encode(x)
        h = skips[-1]                                        # [N, 8 ngf, H / 2^D, W / 2^D]
        for j, layer in enumerate(self.up):
            if j > 0:
                h = torch.cat([h, skips[-1 - j]], dim=1)     # skip connection (Ronneberger et al. 2015)
            h = layer(h)
        return h                                             # [N, out_channels, H, W] in [-1, 1]
