"""Super-resolution networks: SRResNet (Ledig et al. 2017), ESRGAN's RRDB net (Wang et al. 2018) and the
VGG-style discriminator both papers use.

Upscalers (``kind = "upscaler"``) map ``LR [N, C_in, h, w] -> SR [N, C_out, s h, s w]`` in [-1, 1] (any h, w:
fully convolutional); interface arguments ``in_channels``, ``out_channels``, ``scale`` (2, 4 or 8) come from the
data. The discriminator (``kind = "image"``) scores HR-sized images, ``[N, C, R, R] -> [N]`` raw logits.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from .base import discriminators, generators
from .layers import check_choice

SCALES = (2, 4, 8)
OUTPUTS = ("tanh", "linear")


def _check_scale(scale: int, where: str) -> int:
    if scale not in SCALES:
        raise ConfigError(f"{where}: scale must be one of {', '.join(map(str, SCALES))}, got {scale}.")
    return int(math.log2(scale))


class SubPixelUpsample(nn.Sequential):
    """x2 by sub-pixel convolution (Shi et al. 2016): conv to 4 C channels, then PixelShuffle(2), which puts
    input channel c * 4 + 2 i + j at output pixel (2 y + i, 2 x + j) of channel c; then PReLU (Ledig et al. 2017)."""

    def __init__(self, channels: int):
        super().__init__(nn.Conv2d(channels, channels * 4, 3, padding=1), nn.PixelShuffle(2), nn.PReLU(channels))


class ResidualBlock(nn.Module):
    """conv3-BN-PReLU-conv3-BN + identity (Ledig et al. 2017, fig. 4; He et al. 2016)."""

    def __init__(self, nf: int, batch_norm: bool):
        super().__init__()
        bn = (lambda: nn.BatchNorm2d(nf)) if batch_norm else nn.Identity
        self.body = nn.Sequential(nn.Conv2d(nf, nf, 3, padding=1), bn(), nn.PReLU(nf),
                                  nn.Conv2d(nf, nf, 3, padding=1), bn())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class _Upscaler(nn.Module):
    kind = "upscaler"
    size_multiple = 1            # any LR size works

    def zero_tail(self) -> None:
        """With ``global_skip`` the output conv starts at zero, so the untrained network is bicubic upsampling."""
        if self.global_skip:
            nn.init.zeros_(self.tail.weight)
            nn.init.zeros_(self.tail.bias)

    def finish(self, x: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        """Output head: optional global bicubic skip (the body then learns only the residual), tanh or linear."""
        if self.global_skip:
            out = out + F.interpolate(x, scale_factor=self.scale, mode="bicubic", align_corners=False)
            return out.clamp(-1, 1) if not self.training else out
        if self.output == "tanh":
            return torch.tanh(out)
        return out.clamp(-1, 1) if not self.training else out


@generators.register("srresnet")
class SRResNet(_Upscaler):
    """SRResNet (Ledig et al. 2017, fig. 4): conv9-PReLU, ``n_blocks`` residual blocks, conv3-BN + long skip,
    log2(scale) sub-pixel x2 stages with ``nf`` channels, conv9 to the output.

    output: "tanh" (HR scaled to [-1, 1], sec. 3.2) or "linear" (clamped to [-1, 1] in eval mode).
    global_skip: add the bicubic-upsampled input to the output, the output conv starting at zero (not in the
                 paper: the untrained net is then bicubic upsampling, which helps very short runs).
    """
    test_interface = {"in_channels": 3, "out_channels": 3, "scale": 4}

    def __init__(self, in_channels: int, out_channels: int, scale: int, nf: int = 64, n_blocks: int = 16,
                 batch_norm: bool = True, output: str = "tanh", global_skip: bool = False):
        super().__init__()
        stages = _check_scale(scale, "srresnet")
        self.scale, self.global_skip = scale, global_skip
        self.output = check_choice(output, OUTPUTS, "output", "srresnet")
        if global_skip and in_channels != out_channels:
            raise ConfigError("srresnet: global_skip needs in_channels == out_channels.")
        self.head = nn.Sequential(nn.Conv2d(in_channels, nf, 9, padding=4), nn.PReLU(nf))
        self.blocks = nn.Sequential(*[ResidualBlock(nf, batch_norm) for _ in range(n_blocks)])
        self.trunk = nn.Sequential(nn.Conv2d(nf, nf, 3, padding=1),
                                   nn.BatchNorm2d(nf) if batch_norm else nn.Identity())
        self.upsample = nn.Sequential(*[SubPixelUpsample(nf) for _ in range(stages)])
        self.tail = nn.Conv2d(nf, out_channels, 9, padding=4)
        self.zero_tail()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feat = self.head(x)                                          # [N, nf, h, w]
        feat = feat + self.trunk(self.blocks(feat))                  # long skip (fig. 4)
        return self.finish(x, self.tail(self.upsample(feat)))        # [N, C_out, s h, s w]


class DenseBlock(nn.Module):
    """Five 3x3 convs, each fed every earlier feature (growth ``gc``), LeakyReLU 0.2, output x 0.2 + input
    (Wang et al. 2018, fig. 4; residual scaling beta = 0.2, sec. 3.1)."""

    def __init__(self, nf: int, gc: int, beta: float):
        super().__init__()
        self.convs = nn.ModuleList([nn.Conv2d(nf + i * gc, gc if i < 4 else nf, 3, padding=1) for i in range(5)])
        self.beta = beta

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = [x]
        for i, conv in enumerate(self.convs):
            out = conv(torch.cat(feats, 1))
            if i < 4:
                feats.append(F.leaky_relu(out, 0.2))
        return x + self.beta * out


class RRDB(nn.Module):
    """Residual-in-residual dense block: three dense blocks, then x 0.2 + input (Wang et al. 2018, fig. 4)."""

    def __init__(self, nf: int, gc: int, beta: float):
        super().__init__()
        self.blocks = nn.Sequential(*[DenseBlock(nf, gc, beta) for _ in range(3)])
        self.beta = beta

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.beta * self.blocks(x)


@generators.register("rrdb")
class RRDBNet(_Upscaler):
    """ESRGAN's generator (Wang et al. 2018, fig. 3-4): SRResNet's layout without batch norm, the residual blocks
    replaced by ``n_blocks`` RRDBs (23, growth 32, beta 0.2); x2 stages of nearest upsampling + conv + LeakyReLU
    (the authors' code), conv + LeakyReLU, conv to the output. Linear output (clamped in eval mode)."""
    test_interface = {"in_channels": 3, "out_channels": 3, "scale": 4}

    def __init__(self, in_channels: int, out_channels: int, scale: int, nf: int = 64, gc: int = 32,
                 n_blocks: int = 23, beta: float = 0.2, output: str = "linear", global_skip: bool = False):
        super().__init__()
        self.stages = _check_scale(scale, "rrdb")
        self.scale, self.global_skip = scale, global_skip
        self.output = check_choice(output, OUTPUTS, "output", "rrdb")
        if global_skip and in_channels != out_channels:
            raise ConfigError("rrdb: global_skip needs in_channels == out_channels.")
        self.head = nn.Conv2d(in_channels, nf, 3, padding=1)
        self.blocks = nn.Sequential(*[RRDB(nf, gc, beta) for _ in range(n_blocks)])
        self.trunk = nn.Conv2d(nf, nf, 3, padding=1)
        self.up_convs = nn.ModuleList([nn.Conv2d(nf, nf, 3, padding=1) for _ in range(self.stages)])
        self.hr_conv = nn.Conv2d(nf, nf, 3, padding=1)
        self.tail = nn.Conv2d(nf, out_channels, 3, padding=1)
        self.zero_tail()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feat = self.head(x)
        feat = feat + self.trunk(self.blocks(feat))
        for conv in self.up_convs:
            feat = F.leaky_relu(conv(F.interpolate(feat, scale_factor=2, mode="nearest")), 0.2)
        return self.finish(x, self.tail(F.leaky_relu(self.hr_conv(feat), 0.2)))


@discriminators.register("vgg_d")
class VGGDiscriminator(nn.Module):
    """SRGAN's discriminator (Ledig et al. 2017, fig. 4), also ESRGAN's: eight 3x3 convs with nf, nf (stride 2),
    2 nf, 2 nf (s2), 4 nf, 4 nf (s2), 8 nf, 8 nf (s2) channels, batch norm (not after the first) and
    LeakyReLU 0.2, then dense 1024, LeakyReLU, dense 1 -> [N] raw logits. ``resolution`` (the HR crop side,
    a multiple of 16) sizes the first dense layer."""
    kind = "image"
    test_interface = {"in_channels": 3, "resolution": 32}

    def __init__(self, in_channels: int, resolution: int, nf: int = 64, batch_norm: bool = True,
                 dense: int = 1024):
        super().__init__()
        if resolution % 16 or resolution < 16:
            raise ConfigError(f"vgg_d: resolution must be a multiple of 16, got {resolution}.")
        layers: list[nn.Module] = []
        c_in = in_channels
        for i, (mult, stride) in enumerate([(1, 1), (1, 2), (2, 1), (2, 2), (4, 1), (4, 2), (8, 1), (8, 2)]):
            c_out = nf * mult
            layers += [nn.Conv2d(c_in, c_out, 3, stride, 1, bias=not (batch_norm and i))]
            if batch_norm and i:
                layers.append(nn.BatchNorm2d(c_out))
            layers.append(nn.LeakyReLU(0.2))
            c_in = c_out
        self.features = nn.Sequential(*layers)
        side = resolution // 16
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(c_in * side * side, dense), nn.LeakyReLU(0.2),
                                        nn.Linear(dense, 1))

    def forward(self, x: torch.Tensor, label: torch.Tensor | None = None) -> torch.Tensor:
        return self.classifier(self.features(x)).squeeze(1)          # [N]
