"""PatchGAN discriminator (Isola et al. 2017, sec. 3.2.2 and appendix 6.1.2), shared by pix2pix and CycleGAN.

A PatchGAN classifies each N x N patch of an image as real or fake and returns the map of patch scores
``[N, 1, h, w]`` (raw logits; the recipe's loss applies its own link). The stack is the paper's
``C64-C128-C256-C512`` at 256 px: ``n_layers`` stride-2 4x4 convolutions, one stride-1 4x4 convolution and a
stride-1 4x4 convolution to one channel. Its receptive field is

    rf(n_layers) = 9 * 2**n_layers - 2        -> 16, 34, 70, 142 for n_layers = 1, 2, 3, 4

(70 x 70 at n_layers = 3, the paper's default). ``receptive_field`` computes it from the layers themselves.

Scaling rule for smaller images (``n_layers = 0``, automatic): ``n_layers = max(1, log2(resolution) - 5)``.
This keeps the receptive field at about 28 % of the image side and the output map at 30 x 30, as at 256 px:
256 -> 3 layers (70 px of 256), 128 -> 2 (34 of 128), 64 -> 1 (16 of 64). At 32 px the smallest PatchGAN
(1 layer, 16 px patches, 14 x 14 map) covers half the image side, still a patch critic rather than a whole-image one.

This file also holds the two pieces the translation networks share: the normalisation choice and the
resolution check.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from ..errors import ConfigError
from .base import discriminators

# Square sides the translation networks (U-Net, ResNet, PatchGAN) are built for at training time.
TRANSLATION_RESOLUTIONS = (32, 64, 128, 256)
NORMS = ("batch", "instance", "none")


def check_translation_resolution(resolution: int, net: str) -> None:
    if resolution not in TRANSLATION_RESOLUTIONS:
        raise ConfigError(f"{net} cannot be built for {resolution} px images. Valid resolutions: "
                          f"{', '.join(map(str, TRANSLATION_RESOLUTIONS))} (set data.resolution to one of them).")


def norm_2d(norm: str, channels: int) -> nn.Module:
    """Batch norm (pix2pix) or instance norm (CycleGAN; Ulyanov et al. 2016) as in the authors' code.

    Instance norm is used without affine parameters or running statistics, exactly as the reference
    implementation (junyanz/pytorch-CycleGAN-and-pix2pix ``get_norm_layer``); the conv before it keeps its bias.
    """
    if norm == "batch":
        return nn.BatchNorm2d(channels)
    if norm == "instance":
        return nn.InstanceNorm2d(channels, affine=False, track_running_stats=False)
    if norm == "none":
        return nn.Identity()
    raise ConfigError(f"Unknown norm {norm!r}. Valid norms: {', '.join(NORMS)}.")


def conv_bias(norm: str) -> bool:
    # Batch norm has its own shift, so the conv bias would be redundant; instance norm here has none.
    return norm != "batch"


def auto_patch_layers(resolution: int) -> int:
    """Number of stride-2 layers that keeps the patch at ~28 % of the image side (see the module docstring)."""
    return max(1, int(math.log2(resolution)) - 5)


def receptive_field_formula(n_layers: int) -> int:
    """Closed form of the receptive field of a PatchGAN with ``n_layers`` stride-2 layers: 9 * 2^n - 2."""
    return 9 * 2 ** n_layers - 2


@discriminators.register("patchgan")
class PatchGANDiscriminator(nn.Module):
    """``D(x [N, in_channels, H, W]) -> [N, 1, h, w]`` patch logits (Isola et al. 2017, appendix 6.1.2)."""

    kind = "patch"
    test_interface = {"in_channels": 4, "resolution": 32}  # small example (shared tests)

    def __init__(self,
                 in_channels: int = 6,       # interface: channels D reads (pix2pix: input + output concatenated)
                 resolution: int = 256,      # interface: training image side in pixels
                 ndf: int = 64,              # filters of the first layer (C64); doubled per layer up to 8 * ndf
                 n_layers: int = 0,          # stride-2 layers; 0 = automatic from the resolution (module docstring)
                 norm: str = "batch"):       # batch (pix2pix) | instance (CycleGAN) | none
        super().__init__()
        check_translation_resolution(resolution, "patchgan")
        if n_layers < 0:
            raise ConfigError(f"patchgan: n_layers must be >= 0 (0 = automatic), got {n_layers}.")
        self.n_layers = n_layers or auto_patch_layers(resolution)
        if resolution // 2 ** self.n_layers < 4:
            raise ConfigError(f"patchgan: {self.n_layers} stride-2 layers leave less than 4 px of a {resolution} px "
                              f"image; use n_layers <= {int(math.log2(resolution)) - 2}.")
        bias = conv_bias(norm)
        # C64: no normalisation on the first layer (paper, appendix 6.1.2).
        layers: list[nn.Module] = [nn.Conv2d(in_channels, ndf, 4, 2, 1), nn.LeakyReLU(0.2, True)]
        ch = ndf
        for i in range(1, self.n_layers):
            out = ndf * min(2 ** i, 8)
            layers += [nn.Conv2d(ch, out, 4, 2, 1, bias=bias), norm_2d(norm, out), nn.LeakyReLU(0.2, True)]
            ch = out
        out = ndf * min(2 ** self.n_layers, 8)
        # Stride 1 at the end: widens the receptive field without shrinking the map further.
        layers += [nn.Conv2d(ch, out, 4, 1, 1, bias=bias), norm_2d(norm, out), nn.LeakyReLU(0.2, True),
                   nn.Conv2d(out, 1, 4, 1, 1)]
        self.main = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.main(x)  # [N, 1, H / 2^n - 2, W / 2^n - 2]

    def receptive_field(self) -> int:
        """Receptive field in input pixels, walked back through the convolutions: rf <- rf * stride + (k - stride)."""
        rf = 1
        for m in reversed([m for m in self.main if isinstance(m, nn.Conv2d)]):
            rf = rf * m.stride[0] + (m.kernel_size[0] - m.stride[0])
        return rf
