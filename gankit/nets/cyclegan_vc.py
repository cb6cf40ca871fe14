"""CycleGAN-VC networks on mel-cepstral sequences [N, D, F] (D coefficients x F frames).

Gated linear units (Dauphin et al. 2017) everywhere: a convolution makes 2C channels, GLU(h) = h_1 * sigmoid(h_2)
(Kaneko & Kameoka 2018, sec. 3.2: "gated CNNs ... capture sequential and hierarchical structures").

``cyclegan_vc`` (CycleGAN-VC, Kaneko & Kameoka 2018, fig. 3): a 1-D gated CNN over time with the D coefficients
as channels: conv k15 + GLU (128) -> 2 downsampling blocks (k5 s2, instance norm, GLU; 256, 512) -> 6 residual
blocks (k3, 1024 -> GLU 512 -> k3 -> 512, instance norm) -> 2 upsampling blocks (k5, pixel shuffle x2, instance
norm, GLU; 1024 -> 512, 512 -> 256 after shuffling) -> conv k15 to D.

``cyclegan_vc2`` (CycleGAN-VC2, Kaneko et al. 2019, sec. 3.2, fig. 4): the 2-1-2D generator: 2-D downsampling
of the [D, F] "image" (conv 5x15 + GLU, two k5 s2 blocks) keeps the structure of the spectrum, a 1x1 conv
reshapes to 1-D for the residual blocks (where the 2-D version over-smooths), and 2-D upsampling by pixel
shuffle brings it back, ending with a 5x15 conv to one channel.

``vc_patch`` discriminator: the 2-D gated CNN of VC1 (fig. 3, bottom) made a PatchGAN as in VC2 (sec. 3.3: the
last layer is a convolution, so D judges patches): conv 3x3 + GLU (128), three 3x3 stride-2 blocks with instance
norm and GLU (256, 512, 1024), then conv 1x5 to one channel: [N, 1, D', F'] scores.

``width`` scales all channel counts (1.0 = the papers'; 0.125 for small CPU models).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from .base import discriminators, generators


def _c(width: float, channels: int) -> int:
    return max(4, int(round(channels * width)))


class GLU(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.glu(x, dim=1)                                   # [N, 2C, ...] -> [N, C, ...]


def gated(conv: nn.Module, channels: int, dims: int, norm: bool = True) -> nn.Sequential:
    """conv (2C channels) -> instance norm -> GLU."""
    layers = [conv]
    if norm:
        layers.append((nn.InstanceNorm1d if dims == 1 else nn.InstanceNorm2d)(2 * channels, affine=True))
    return nn.Sequential(*layers, GLU())


class PixelShuffle1d(nn.Module):
    """[N, C r, T] -> [N, C, T r] (Shi et al. 2016, in time)."""

    def __init__(self, r: int):
        super().__init__()
        self.r = r

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, t = x.shape
        return x.view(n, c // self.r, self.r, t).permute(0, 1, 3, 2).reshape(n, c // self.r, t * self.r)


class Residual1d(nn.Module):
    def __init__(self, channels: int, hidden: int):
        super().__init__()
        self.body = nn.Sequential(gated(nn.Conv1d(channels, 2 * hidden, 3, padding=1), hidden, 1),
                                  nn.Conv1d(hidden, channels, 3, padding=1), nn.InstanceNorm1d(channels, affine=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


def _check_frames(x: torch.Tensor, multiple: int, where: str) -> None:
    if x.shape[-1] % multiple:
        raise ConfigError(f"{where}: the number of frames must be a multiple of {multiple}, got {x.shape[-1]}.")


@generators.register("cyclegan_vc")
class GatedCNN1dGenerator(nn.Module):
    kind = "voice"
    size_multiple = 4                                            # frames: two stride-2 downsamplings
    test_interface = {"in_channels": 8, "out_channels": 8}

    def __init__(self, in_channels: int, out_channels: int,
                 width: float = 1.0,          # channel multiplier (1.0 = Kaneko & Kameoka 2018)
                 residual_blocks: int = 6):   # fig. 3: 6
        super().__init__()
        c1, c2, c3 = _c(width, 128), _c(width, 256), _c(width, 512)
        self.net = nn.Sequential(
            gated(nn.Conv1d(in_channels, 2 * c1, 15, padding=7), c1, 1, norm=False),
            gated(nn.Conv1d(c1, 2 * c2, 5, stride=2, padding=2), c2, 1),
            gated(nn.Conv1d(c2, 2 * c3, 5, stride=2, padding=2), c3, 1),
            *[Residual1d(c3, c3) for _ in range(residual_blocks)],
            gated(nn.Sequential(nn.Conv1d(c3, 4 * c3, 5, padding=2), PixelShuffle1d(2)), c3, 1),
            gated(nn.Sequential(nn.Conv1d(c3, 4 * c2, 5, padding=2), PixelShuffle1d(2)), c2, 1),
            nn.Conv1d(c2, out_channels, 15, padding=7))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_frames(x, self.size_multiple, "cyclegan_vc generator")
        return self.net(x)                                       # [N, D, F] -> [N, D, F]


@generators.register("cyclegan_vc2")
class Gated212Generator(nn.Module):
    kind = "voice"
    size_multiple = 4
    test_interface = {"in_channels": 8, "out_channels": 8}

    def __init__(self, in_channels: int, out_channels: int,
                 width: float = 1.0,          # channel multiplier (1.0 = Kaneko et al. 2019)
                 residual_blocks: int = 6):   # fig. 4: 6 (VC2 with 2-1-2D)
        super().__init__()
        if in_channels % 4 or in_channels != out_channels:
            raise ConfigError(f"cyclegan_vc2 generator: the number of coefficients must be a multiple of 4 and the "
                              f"same in and out, got {in_channels} -> {out_channels}.")
        self.dim = in_channels
        c1, c2, c3 = _c(width, 128), _c(width, 256), _c(width, 512)
        self.c2 = c2
        self.down = nn.Sequential(
            gated(nn.Conv2d(1, 2 * c1, (5, 15), padding=(2, 7)), c1, 2, norm=False),
            gated(nn.Conv2d(c1, 2 * c2, 5, stride=2, padding=2), c2, 2),
            gated(nn.Conv2d(c2, 2 * c2, 5, stride=2, padding=2), c2, 2))
        flat = c2 * (in_channels // 4)
        self.to_1d = nn.Sequential(nn.Conv1d(flat, c3, 1), nn.InstanceNorm1d(c3, affine=True))   # 2-D -> 1-D
        self.res = nn.Sequential(*[Residual1d(c3, c3) for _ in range(residual_blocks)])
        self.to_2d = nn.Sequential(nn.Conv1d(c3, flat, 1), nn.InstanceNorm1d(flat, affine=True))  # 1-D -> 2-D
        self.up = nn.Sequential(
            gated(nn.Sequential(nn.Conv2d(c2, 4 * 2 * c2, 5, padding=2), nn.PixelShuffle(2)), c2, 2),
            gated(nn.Sequential(nn.Conv2d(c2, 4 * 2 * c1, 5, padding=2), nn.PixelShuffle(2)), c1, 2),
            nn.Conv2d(c1, 1, (5, 15), padding=(2, 7)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_frames(x, self.size_multiple, "cyclegan_vc2 generator")
        n, d, f = x.shape
        h = self.down(x[:, None])                                # [N, c2, D/4, F/4]
        h = self.to_2d(self.res(self.to_1d(h.reshape(n, -1, f // 4))))   # [N, c2 D/4, F/4]
        return self.up(h.view(n, self.c2, d // 4, f // 4))[:, 0]  # [N, D, F]


@discriminators.register("vc_patch")
class GatedPatchDiscriminator(nn.Module):
    kind = "voice"
    test_interface = {"in_channels": 8}

    def __init__(self, in_channels: int,
                 width: float = 1.0):         # channel multiplier (1.0 = the papers')
        super().__init__()
        c1, c2, c3, c4 = _c(width, 128), _c(width, 256), _c(width, 512), _c(width, 1024)
        self.net = nn.Sequential(
            gated(nn.Conv2d(1, 2 * c1, 3, padding=1), c1, 2, norm=False),
            gated(nn.Conv2d(c1, 2 * c2, 3, stride=2, padding=1), c2, 2),
            gated(nn.Conv2d(c2, 2 * c3, 3, stride=2, padding=1), c3, 2),
            gated(nn.Conv2d(c3, 2 * c4, (3, 5), stride=(1, 2), padding=(1, 2)), c4, 2),
            nn.Conv2d(c4, 1, (1, 3), padding=(0, 1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x[:, None])                              # [N, D, F] -> [N, 1, D/4, F/8] patch scores
