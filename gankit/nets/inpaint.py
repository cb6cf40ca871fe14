"""Inpainting networks: Iizuka et al. 2017's completion network (dilated convolutions), optionally with Yu et al.
2019's gated convolutions, and Yu et al.'s SN-PatchGAN discriminator.

Inpainters (``kind = "inpainter"``) map ``[masked image [N, C, H, W], mask [N, 1, H, W]] -> [N, C, H, W]`` in
[-1, 1] (the recipe composites the known pixels back); H, W must be multiples of ``size_multiple`` (4).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from ..errors import ConfigError
from .base import discriminators, generators
from .layers import check_choice

CONVS = ("plain", "gated")


class GatedConv2d(nn.Module):
    """Gated convolution (Yu et al. 2019, eq. 1): out = act(W_f * x) * sigmoid(W_g * x), a learned soft mask per
    pixel and channel (ELU as in their code; the output layer has no gate)."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1, dilation: int = 1):
        super().__init__()
        pad = dilation * (kernel - 1) // 2
        self.feature = nn.Conv2d(c_in, c_out, kernel, stride, pad, dilation)
        self.gate = nn.Conv2d(c_in, c_out, kernel, stride, pad, dilation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.elu(self.feature(x)) * torch.sigmoid(self.gate(x))


def _block(conv: str, c_in: int, c_out: int, kernel: int, stride: int = 1, dilation: int = 1,
           batch_norm: bool = True) -> nn.Module:
    if conv == "gated":
        return GatedConv2d(c_in, c_out, kernel, stride, dilation)
    pad = dilation * (kernel - 1) // 2
    return nn.Sequential(nn.Conv2d(c_in, c_out, kernel, stride, pad, dilation, bias=not batch_norm),
                         nn.BatchNorm2d(c_out) if batch_norm else nn.Identity(), nn.ReLU())


class _UpBlock(nn.Module):
    """x2: transposed conv 4x4 stride 2 (Iizuka et al. table 1 'deconv'), or nearest + conv for gated nets."""

    def __init__(self, conv: str, c_in: int, c_out: int, batch_norm: bool):
        super().__init__()
        self.gated = conv == "gated"
        if self.gated:
            self.body = GatedConv2d(c_in, c_out, 3)
        else:
            self.body = nn.Sequential(nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=not batch_norm),
                                      nn.BatchNorm2d(c_out) if batch_norm else nn.Identity(), nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(F.interpolate(x, scale_factor=2, mode="nearest") if self.gated else x)


@generators.register("completion")
class CompletionNet(nn.Module):
    """Iizuka et al. 2017, table 1, with ``nf`` = 64 channels at full size: conv5 (nf), conv3 s2 (2 nf), conv3,
    conv3 s2 (4 nf), 2 x conv3, four dilated conv3 (dilations 2, 4, 8, 16), 2 x conv3, deconv (2 nf), conv3,
    deconv (nf), conv3 (nf / 2), conv3 to the output; batch norm + ReLU; tanh output in [-1, 1] (their sigmoid
    on [0, 1] images). ``conv = "gated"`` swaps every conv for Yu et al. 2019's gated conv (no batch norm)."""
    kind = "inpainter"
    size_multiple = 4
    test_interface = {"in_channels": 3, "out_channels": 3}

    def __init__(self, in_channels: int, out_channels: int, nf: int = 64, conv: str = "plain",
                 dilations: tuple = (2, 4, 8, 16), batch_norm: bool = True):
        super().__init__()
        check_choice(conv, CONVS, "conv", "completion")
        bn = batch_norm and conv == "plain"
        b = lambda *a, **k: _block(conv, *a, batch_norm=bn, **k)  # noqa: E731
        if not dilations or any(int(d) < 1 for d in dilations):
            raise ConfigError(f"completion: dilations must be positive integers, got {dilations}.")
        self.encoder = nn.Sequential(b(in_channels + 1, nf, 5), b(nf, 2 * nf, 3, 2), b(2 * nf, 2 * nf, 3),
                                     b(2 * nf, 4 * nf, 3, 2), b(4 * nf, 4 * nf, 3), b(4 * nf, 4 * nf, 3))
        self.dilated = nn.Sequential(*[b(4 * nf, 4 * nf, 3, dilation=int(d)) for d in dilations])
        self.decoder = nn.Sequential(b(4 * nf, 4 * nf, 3), b(4 * nf, 4 * nf, 3), _UpBlock(conv, 4 * nf, 2 * nf, bn),
                                     b(2 * nf, 2 * nf, 3), _UpBlock(conv, 2 * nf, nf, bn), b(nf, max(nf // 2, 1), 3),
                                     nn.Conv2d(max(nf // 2, 1), out_channels, 3, padding=1))

    def forward(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """image [N, C, H, W] (holes already blanked), mask [N, 1, H, W] (1 = hole) -> [N, C_out, H, W]."""
        if image.shape[-2] % self.size_multiple or image.shape[-1] % self.size_multiple:
            raise ValueError(f"completion input sides must be multiples of {self.size_multiple}, "
                             f"got {tuple(image.shape[-2:])}")
        x = torch.cat([image, mask.to(image.dtype)], 1)
        return torch.tanh(self.decoder(self.dilated(self.encoder(x))))


@discriminators.register("sn_patchgan")
class SNPatchGAN(nn.Module):
    """SN-PatchGAN (Yu et al. 2019, sec. 3.2): six 5x5 stride-2 convs with spectral norm and LeakyReLU 0.2
    (nf, 2 nf, 4 nf, 4 nf, 4 nf, 4 nf channels) on the image and its mask (C + 1 input channels). The paper
    applies the hinge loss to every element of the last 4 nf-channel map; ``score_channels`` = 4 nf does that,
    the default 1 ends in a 1-channel projection ([N, 1, h, w], gankit's patch convention)."""
    kind = "patch"
    test_interface = {"in_channels": 4, "resolution": 64}

    def __init__(self, in_channels: int, resolution: int = 0, nf: int = 64, n_layers: int = 6,
                 score_channels: int = 1):
        super().__init__()
        if n_layers < 1:
            raise ConfigError(f"sn_patchgan: n_layers must be >= 1, got {n_layers}.")
        layers: list[nn.Module] = []
        c_in = in_channels
        for i in range(n_layers):
            c_out = nf * min(2 ** i, 4)
            layers += [spectral_norm(nn.Conv2d(c_in, c_out, 5, 2, 2)), nn.LeakyReLU(0.2)]
            c_in = c_out
        if score_channels != c_in:
            layers.append(spectral_norm(nn.Conv2d(c_in, score_channels, 3, 1, 1)))
        else:
            layers.pop()                                                     # raw features, no final activation
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor, label: torch.Tensor | None = None) -> torch.Tensor:
        return self.net(x)                                                   # [N, score_channels, H / 2^L, W / 2^L]


def local_box(mask: torch.Tensor, side: int) -> torch.Tensor:
    """Top-left corners [N, 2] (row, column) of the ``side`` x ``side`` crops centred on each hole: the centre of
    the bounding box of ``mask[i] > 0.5`` ([N, 1, H, W]; the image centre when there is no hole), moved inside
    the image when the hole is near a border (Iizuka et al. 2017 sec. 3.2: "a 128x128-pixel image patch centered
    around the completed region")."""
    n, _, h, w = mask.shape
    hole = mask[:, 0] > 0.5                                                    # [N, H, W]
    rows, cols = hole.any(2), hole.any(1)                                      # [N, H], [N, W]
    corners = []
    for i in range(n):
        ys, xs = rows[i].nonzero(), cols[i].nonzero()
        cy = (int(ys[0]) + int(ys[-1]) + 1) / 2 if len(ys) else h / 2          # bounding-box centre (pixel edges)
        cx = (int(xs[0]) + int(xs[-1]) + 1) / 2 if len(xs) else w / 2
        top = min(max(int(round(cy - side / 2)), 0), h - side)
        left = min(max(int(round(cx - side / 2)), 0), w - side)
        corners.append((top, left))
    return torch.tensor(corners, dtype=torch.long).reshape(n, 2)


def _conv_stack(c_in: int, nf: int, n_layers: int, norm: str) -> tuple[nn.Sequential, int]:
    layers: list[nn.Module] = []
    for i in range(n_layers):
        c_out = nf * min(2 ** i, 8)                                            # 64, 128, 256, 512, 512, 512
        conv = nn.Conv2d(c_in, c_out, 5, 2, 2, bias=norm != "batch")
        layers += [spectral_norm(conv) if norm == "spectral" else conv,
                   nn.BatchNorm2d(c_out) if norm == "batch" else nn.Identity(), nn.ReLU()]
        c_in = c_out
    return nn.Sequential(*layers), c_in


NORMS = ("batch", "spectral", "none")


@discriminators.register("global_local")
class GlobalLocalDiscriminator(nn.Module):
    """Iizuka et al. 2017 (sec. 3.2, table 2): a global discriminator on the whole image and a local one on a
    crop of half the side centred on the hole, each ending in a fully connected layer of ``fc`` (1024) units;
    their outputs are concatenated (2 fc) and a last fully connected layer gives one score per image.

    Input: the image with its hole mask as the last channel ([N, C + 1, R, R], the inpaint recipe's D input);
    the mask places the local crop and, with ``see_mask`` (default off, as in the paper), is also an input
    channel of both networks. Convolutions 5x5 stride 2 with batch norm + ReLU: global log2(R / 4) layers
    (6 at 256 px), local log2(R / 8) (5 at 128 px), nf, 2 nf, 4 nf, 8 nf, 8 nf, ... channels (nf = 64).
    Output: raw scores [N] (the paper's sigmoid is in the loss)."""
    kind = "image"
    test_interface = {"in_channels": 4, "resolution": 32}
    small_kwargs = {"nf": 8, "fc": 16}

    def __init__(self, in_channels: int, resolution: int, nf: int = 64, fc: int = 1024, norm: str = "batch",
                 see_mask: bool = False):
        super().__init__()
        check_choice(norm, NORMS, "norm", "global_local")
        if resolution < 16 or resolution & (resolution - 1):
            raise ConfigError(f"global_local: the resolution must be a power of two >= 16, got {resolution}.")
        if in_channels < 2:
            raise ConfigError(f"global_local: the input is the image plus its mask channel, got {in_channels} "
                              "channel(s).")
        self.see_mask = see_mask
        self.local_side = resolution // 2
        c_in = in_channels if see_mask else in_channels - 1
        n_global = min(6, (resolution // 4).bit_length() - 1)                  # 256 -> 6 (4x4 left), 64 -> 4
        n_local = min(5, (self.local_side // 4).bit_length() - 1)              # 128 -> 5 (4x4 left), 32 -> 3
        self.global_convs, cg = _conv_stack(c_in, nf, n_global, norm)
        self.local_convs, cl = _conv_stack(c_in, nf, n_local, norm)
        g_side, l_side = resolution >> n_global, self.local_side >> n_local
        linear = lambda a, b: spectral_norm(nn.Linear(a, b)) if norm == "spectral" else nn.Linear(a, b)  # noqa: E731
        self.global_fc = nn.Sequential(nn.Flatten(), linear(cg * g_side * g_side, fc), nn.ReLU())
        self.local_fc = nn.Sequential(nn.Flatten(), linear(cl * l_side * l_side, fc), nn.ReLU())
        self.head = linear(2 * fc, 1)

    def crops(self, x: torch.Tensor) -> torch.Tensor:
        """The local discriminator's input: [N, C(+1), R/2, R/2] crops of ``x`` centred on each hole."""
        s = self.local_side
        corners = local_box(x[:, -1:], s)
        return torch.stack([x[i, :, t:t + s, l:l + s] for i, (t, l) in enumerate(corners.tolist())])

    def forward(self, x: torch.Tensor, label: torch.Tensor | None = None) -> torch.Tensor:
        local = self.crops(x)                                                  # [N, C + 1, R/2, R/2]
        if not self.see_mask:
            x, local = x[:, :-1], local[:, :-1]
        both = torch.cat([self.global_fc(self.global_convs(x)), self.local_fc(self.local_convs(local))], 1)
        return self.head(both).reshape(-1)                                     # [N]


@generators.register("coarse_fine")
class CoarseToFineNet(nn.Module):
    """Coarse-to-fine completion (Yu et al. 2018 sec. 3.1 / 2019 sec. 3.3): a coarse completion network, its
    output pasted into the hole, then a refinement network of the same design on that composite. ``forward``
    gives the refined output; ``stages`` gives (coarse, refined), so the recipe puts its reconstruction loss on
    both (Yu et al. 2018: "the coarse network is trained with the reconstruction loss explicitly"). Each stage
    is a ``completion`` net (gated convolutions by default, as in DeepFill v2); contextual attention is not built."""
    kind = "inpainter"
    size_multiple = 4
    test_interface = {"in_channels": 3, "out_channels": 3}

    def __init__(self, in_channels: int, out_channels: int, nf: int = 32, conv: str = "gated",
                 dilations: tuple = (2, 4, 8, 16)):
        super().__init__()
        self.coarse = CompletionNet(in_channels, out_channels, nf, conv, dilations)
        self.fine = CompletionNet(out_channels, out_channels, nf, conv, dilations)

    def stages(self, image: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """image [N, C, H, W] (holes blanked), mask [N, 1, H, W] -> (coarse, refined), each [N, C_out, H, W]."""
        m = mask.to(image.dtype)
        coarse = self.coarse(image, m)
        return coarse, self.fine(coarse * m + image * (1 - m), m)

    def forward(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.stages(image, mask)[1]
