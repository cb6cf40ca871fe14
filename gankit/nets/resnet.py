"""ResNet translator of CycleGAN (Zhu et al. 2017, appendix 7.2), after Johnson et al. 2016.

    c7s1-64, d128, d256, R256 x n_blocks, u128, u64, c7s1-out, tanh

``c7s1-k``: 7x7 conv stride 1 with reflection padding, norm, ReLU; ``dk``: 3x3 conv stride 2, norm, ReLU;
``Rk``: residual block of two reflection-padded 3x3 convs; ``uk``: 3x3 fractionally strided conv (stride 1/2).
Reflection padding avoids the border artefacts zero padding leaves (paper, appendix 7.2).

Block count rule (paper): 6 blocks for 128 x 128 training images and below, 9 for 256 x 256 and above
(``n_blocks = 0`` picks it from the resolution). Fully convolutional: at inference any H, W that are multiples
of ``size_multiple`` (4, two stride-2 layers) work.
"""
from __future__ import annotations

import torch
from torch import nn

from ..errors import ConfigError
from .base import generators
from .patchgan import check_translation_resolution, conv_bias, norm_2d


def auto_resnet_blocks(resolution: int) -> int:
    """Zhu et al. 2017, appendix 7.2: 6 residual blocks up to 128 px, 9 above."""
    return 6 if resolution <= 128 else 9


class ResnetBlock(nn.Module):
    """x + F(x), F = pad-conv3-norm-ReLU-[dropout]-pad-conv3-norm (He et al. 2016; no ReLU after the sum)."""

    def __init__(self, channels: int, norm: str, dropout: float):
        super().__init__()
        bias = conv_bias(norm)
        layers: list[nn.Module] = [nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3, bias=bias),
                                   norm_2d(norm, channels), nn.ReLU(True)]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        layers += [nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3, bias=bias), norm_2d(norm, channels)]
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


@generators.register("resnet")
class ResnetGenerator(nn.Module):
    """``G(x [N, in_channels, H, W]) -> [N, out_channels, H, W]`` in [-1, 1] (tanh)."""

    kind = "translator"
    test_interface = {"in_channels": 3, "out_channels": 1, "resolution": 32}  # small example (shared tests)
    size_multiple = 4

    def __init__(self,
                 in_channels: int = 3,       # interface: channels of the input domain
                 out_channels: int = 3,      # interface: channels of the output domain
                 resolution: int = 256,      # interface: training image side; sets the block count
                 ngf: int = 64,              # filters of c7s1-64; 2 ngf and 4 ngf after the two downsamplings
                 n_blocks: int = 0,          # residual blocks; 0 = 6 up to 128 px, 9 above (paper)
                 norm: str = "instance",     # instance (paper) | batch | none
                 dropout: float = 0.0):      # dropout inside the residual blocks (not used in the paper)
        super().__init__()
        check_translation_resolution(resolution, "resnet")
        if n_blocks < 0:
            raise ConfigError(f"resnet: n_blocks must be >= 0 (0 = automatic), got {n_blocks}.")
        if not 0.0 <= dropout < 1.0:
            raise ConfigError(f"resnet: dropout must be in [0, 1), got {dropout}.")
        self.n_blocks = n_blocks or auto_resnet_blocks(resolution)
        bias = conv_bias(norm)
        layers: list[nn.Module] = [nn.ReflectionPad2d(3), nn.Conv2d(in_channels, ngf, 7, bias=bias),
                                   norm_2d(norm, ngf), nn.ReLU(True)]                       # c7s1-64
        ch = ngf
        for _ in range(2):                                                                # d128, d256
            layers += [nn.Conv2d(ch, ch * 2, 3, 2, 1, bias=bias), norm_2d(norm, ch * 2), nn.ReLU(True)]
            ch *= 2
        layers += [ResnetBlock(ch, norm, dropout) for _ in range(self.n_blocks)]         # R256 x n_blocks
        for _ in range(2):                                                                # u128, u64
            layers += [nn.ConvTranspose2d(ch, ch // 2, 3, 2, 1, output_padding=1, bias=bias),
                       norm_2d(norm, ch // 2), nn.ReLU(True)]
            ch //= 2
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ch, out_channels, 7), nn.Tanh()]     # c7s1-out
        self.main = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.main(x)  # [N, out_channels, H, W] in [-1, 1]
