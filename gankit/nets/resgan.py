"""ResNet GAN networks: SNGAN (Miyato et al. 2018), SAGAN (Zhang et al. 2019), BigGAN and BigGAN-deep (Brock et al.
2019). One generator and one discriminator class; the three papers are three sets of defaults, registered as
``sngan``, ``sagan`` and ``biggan`` (G.image / D.image).

Generator (Brock et al. 2019, fig. 15 / table 4; Miyato et al. 2018, appendix B.4):

    z (or its first chunk) -> linear -> [N, 16 ch or 4 ch, 4, 4] -> residual up-blocks (one per doubling;
    BigGAN-deep: two per doubling, the first without upsampling) -> [self-attention at side ``attention``] ->
    BN -> ReLU -> conv3x3 -> tanh

    up-block:  x -> CBN -> ReLU -> up x2 (nearest) -> conv3x3 -> CBN -> ReLU -> conv3x3  (+ up x2 -> conv1x1 skip)

Conditional batch norm (CBN; de Vries et al. 2017, Dumoulin et al. 2017): batch norm without its own affine, then
``(1 + gain(c)) * x_hat + bias(c)``.
  - SNGAN / SAGAN: ``c`` is the class, gain and bias are per-class embeddings (Miyato & Koyama 2018, sec. 4:
    "categorical conditional batch normalisation").
  - BigGAN: ``c = [shared(y), z_k]``, one shared class embedding for all layers (sec. 3) and the chunk of z of
    this block (hierarchical latent: z is split into one chunk for the linear input plus one per block);
    gain and bias are linear maps of ``c``. BigGAN-deep feeds ``[shared(y), z]`` whole to every block.
  - Unconditional networks (num_classes = 0): plain batch norm (SNGAN), or CBN on the z chunks (BigGAN).

Discriminator: residual down-blocks (the first without pre-activation, "optimised block" of Miyato et al.),
[self-attention], ReLU, global sum pooling, linear score + projection term ``<embed(y), phi(x)>`` (Miyato &
Koyama 2018, eq. 3), spectral normalisation on every weight (Miyato et al. 2018). BigGAN-deep's D (``deep=true``,
Brock et al. 2019 appendix B): a 3x3 stem conv, then two bottleneck blocks per stage (1x1 to C/4, two 3x3, 1x1
back; the skip keeps the input channels and concatenates learnt ones when the width grows).

Channel plans per resolution follow BigGAN-PyTorch's ``G_arch`` / ``D_arch`` (Brock's reference code): widths
are multiples of ``ch``. Resolutions 32, 64, 128, 256.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from .base import discriminators, generators
from .layers import projection_term, require_label, spectral

RESOLUTIONS = (32, 64, 128, 256)

# Channel multipliers of ``ch`` at the input and output of every block (BigGAN-PyTorch BigGAN.py G_arch/D_arch).
G_PLAN = {32: ([4, 4, 4], [4, 4, 4]),
          64: ([16, 16, 8, 4], [16, 8, 4, 2]),
          128: ([16, 16, 8, 4, 2], [16, 8, 4, 2, 1]),
          256: ([16, 16, 8, 8, 4, 2], [16, 8, 8, 4, 2, 1])}
D_PLAN = {32: ([None, 4, 4, 4], [4, 4, 4, 4], [True, True, False, False]),
          64: ([None, 1, 2, 4, 8], [1, 2, 4, 8, 16], [True, True, True, True, False]),
          128: ([None, 1, 2, 4, 8, 16], [1, 2, 4, 8, 16, 16], [True, True, True, True, True, False]),
          256: ([None, 1, 2, 4, 8, 8, 16], [1, 2, 4, 8, 8, 16, 16], [True] * 6 + [False])}
# BigGAN-deep's D (BigGAN-PyTorch BigGANdeep.py D_arch): a 3x3 stem conv to in[0] * ch, then per stage two
# bottleneck blocks (the first changes the width and down-samples), ending at 4x4 (8x8 at 32 px).
DEEP_D_PLAN = {32: ([4, 4, 4], [4, 4, 4], [True, True, False]),
               64: ([1, 2, 4, 8], [2, 4, 8, 16], [True] * 4),
               128: ([1, 2, 4, 8, 16], [2, 4, 8, 16, 16], [True] * 5),
               256: ([1, 2, 4, 8, 8, 16], [2, 4, 8, 8, 16, 16], [True] * 6)}
DEEP_D_DEPTH = 2             # bottleneck blocks per stage (BigGAN-deep: D_depth = 2)


def check_resolution(resolution: int, where: str) -> None:
    if resolution not in RESOLUTIONS:
        raise ConfigError(f"{where}: cannot make resolution {resolution!r}. Valid resolutions: "
                          f"{', '.join(map(str, RESOLUTIONS))} (for MNIST's 28 px: --set data.resolution=32).")


def sn(module: nn.Module, on: bool) -> nn.Module:
    """Spectral normalisation (Miyato et al. 2018) of ``module`` when ``on``."""
    return spectral(module, "spectral" if on else "none")


# ---- blocks ----------------------------------------------------------------------------------------------------

class ConditionalBatchNorm2d(nn.Module):
    """Batch norm whose scale and shift come from a condition (de Vries et al. 2017; Dumoulin et al. 2017).

    ``num_classes > 0``: per-class gain / bias embeddings, ``cond`` is the label [N] (SNGAN, SAGAN); the scale is
    ``1 + gain(y)`` with gain and bias ~ N(0, 0.02), i.e. close to Miyato's gamma = 1, beta = 0 start (plain batch
    norm) while every initialisation scheme (orthogonal, N(0, 0.02)) only perturbs the scale around 1.
    ``cond_dim > 0``: ``cond`` is a vector [N, cond_dim]; gain = 1 + W_g c, bias = W_b c (BigGAN's ccbn, no
    biases; spectrally normalised in BigGAN's G).
    Neither: ordinary batch norm with a learned affine; ``cond`` is ignored.
    """

    def __init__(self, channels: int, num_classes: int = 0, cond_dim: int = 0, spectral_norm: bool = False,
                 eps: float = 1e-5, momentum: float = 0.1):
        super().__init__()
        self.num_classes, self.cond_dim = num_classes, cond_dim
        conditional = num_classes > 0 or cond_dim > 0
        self.bn = nn.BatchNorm2d(channels, eps=eps, momentum=momentum, affine=not conditional)
        if num_classes > 0:
            self.gain = nn.Embedding(num_classes, channels)
            self.bias = nn.Embedding(num_classes, channels)
            nn.init.normal_(self.gain.weight, 0.0, 0.02)
            nn.init.normal_(self.bias.weight, 0.0, 0.02)
        elif cond_dim > 0:
            self.gain = sn(nn.Linear(cond_dim, channels, bias=False), spectral_norm)
            self.bias = sn(nn.Linear(cond_dim, channels, bias=False), spectral_norm)

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        out = self.bn(x)                                              # [N, C, H, W]
        if self.num_classes > 0 or self.cond_dim > 0:
            return (1 + self.gain(cond))[:, :, None, None] * out + self.bias(cond)[:, :, None, None]
        return out


class SelfAttention(nn.Module):
    """Self-attention over feature-map positions (Zhang et al. 2019, sec. 4, eq. 1-3), BigGAN-PyTorch's layout.

        f = W_f x, g = W_g x  (C/8 channels), h = W_h x (C/2 channels); keys and values max-pooled 2x2
        beta_{j,i} = softmax_i(f_i^T g_j),   o_j = W_v sum_i beta_{j,i} h_i,   y = x + gamma o

    ``gamma`` starts at 0 (paper: "gamma is initialised as 0"), so a new attention block is the identity.
    """

    def __init__(self, channels: int, spectral_norm: bool = True):
        super().__init__()
        self.channels = channels
        key = max(1, channels // 8)
        value = max(1, channels // 2)
        self.theta = sn(nn.Conv2d(channels, key, 1, bias=False), spectral_norm)   # queries f
        self.phi = sn(nn.Conv2d(channels, key, 1, bias=False), spectral_norm)     # keys g
        self.g = sn(nn.Conv2d(channels, value, 1, bias=False), spectral_norm)     # values h
        self.o = sn(nn.Conv2d(value, channels, 1, bias=False), spectral_norm)     # W_v
        self.gamma = nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        pool = 2 if min(h, w) >= 2 else 1
        theta = self.theta(x).flatten(2)                                    # [N, C/8, HW]
        phi = F.max_pool2d(self.phi(x), pool).flatten(2)                    # [N, C/8, HW/4]
        g = F.max_pool2d(self.g(x), pool).flatten(2)                        # [N, C/2, HW/4]
        beta = torch.softmax(theta.transpose(1, 2) @ phi, dim=-1)           # [N, HW, HW/4]
        o = (g @ beta.transpose(1, 2)).reshape(n, -1, h, w)                 # [N, C/2, H, W]
        return x + self.gamma * self.o(o)


class GBlock(nn.Module):
    """Residual up-block of SNGAN / BigGAN: CBN-ReLU-up-conv3-CBN-ReLU-conv3, skip up-conv1 (BigGAN fig. 15b)."""

    def __init__(self, c_in: int, c_out: int, upsample: bool, num_classes: int, cond_dim: int, spectral_norm: bool):
        super().__init__()
        self.upsample = upsample
        self.bn1 = ConditionalBatchNorm2d(c_in, num_classes, cond_dim, spectral_norm)
        self.conv1 = sn(nn.Conv2d(c_in, c_out, 3, padding=1), spectral_norm)
        self.bn2 = ConditionalBatchNorm2d(c_out, num_classes, cond_dim, spectral_norm)
        self.conv2 = sn(nn.Conv2d(c_out, c_out, 3, padding=1), spectral_norm)
        self.skip = sn(nn.Conv2d(c_in, c_out, 1), spectral_norm) if (c_in != c_out or upsample) else None

    def _up(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, scale_factor=2, mode="nearest") if self.upsample else x

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None) -> torch.Tensor:
        h = self.conv1(self._up(F.relu(self.bn1(x, cond))))
        h = self.conv2(F.relu(self.bn2(h, cond)))
        skip = self._up(x)
        return h + (self.skip(skip) if self.skip is not None else skip)


class DeepGBlock(nn.Module):
    """BigGAN-deep's bottleneck up-block (Brock et al. 2019, fig. 16b): CBN-ReLU-conv1 (C/4), CBN-ReLU-[up]-conv3,
    CBN-ReLU-conv3, CBN-ReLU-conv1 (C_out); the skip drops channels to C_out (keeps the first ones) and upsamples,
    with no convolution."""

    def __init__(self, c_in: int, c_out: int, upsample: bool, num_classes: int, cond_dim: int, spectral_norm: bool,
                 ratio: int = 4):
        super().__init__()
        if c_out > c_in:
            raise ConfigError(f"BigGAN-deep blocks keep or reduce the width, got {c_in} -> {c_out}.")
        mid = max(1, c_in // ratio)
        self.upsample, self.c_out = upsample, c_out
        self.bns = nn.ModuleList([ConditionalBatchNorm2d(c, num_classes, cond_dim, spectral_norm)
                                  for c in (c_in, mid, mid, mid)])
        self.convs = nn.ModuleList([sn(nn.Conv2d(c_in, mid, 1), spectral_norm),
                                    sn(nn.Conv2d(mid, mid, 3, padding=1), spectral_norm),
                                    sn(nn.Conv2d(mid, mid, 3, padding=1), spectral_norm),
                                    sn(nn.Conv2d(mid, c_out, 1), spectral_norm)])

    def _up(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, scale_factor=2, mode="nearest") if self.upsample else x

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None) -> torch.Tensor:
        h = x
        for i, (bn, conv) in enumerate(zip(self.bns, self.convs)):
            h = F.relu(bn(h, cond))
            if i == 1:
                h = self._up(h)
            h = conv(h)
        return h + self._up(x[:, :self.c_out])


class DBlock(nn.Module):
    """Residual down-block (Miyato et al. 2018, fig. 8; BigGAN fig. 15c): [ReLU]-conv3-ReLU-conv3-[avgpool], skip
    conv1-[avgpool] (pre-activated blocks) or [avgpool]-conv1 (the first, "optimised" block)."""

    def __init__(self, c_in: int, c_out: int, downsample: bool, preactivation: bool, spectral_norm: bool = True):
        super().__init__()
        self.downsample, self.preactivation = downsample, preactivation
        self.conv1 = sn(nn.Conv2d(c_in, c_out, 3, padding=1), spectral_norm)
        self.conv2 = sn(nn.Conv2d(c_out, c_out, 3, padding=1), spectral_norm)
        self.skip = sn(nn.Conv2d(c_in, c_out, 1), spectral_norm) if (c_in != c_out or downsample) else None

    def _down(self, x: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(x, 2) if self.downsample else x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(x) if self.preactivation else x
        h = self._down(self.conv2(F.relu(self.conv1(h))))
        if self.skip is None:
            return h + x
        skip = self._down(self.skip(x)) if self.preactivation else self.skip(self._down(x))
        return h + skip


class DeepDBlock(nn.Module):
    """BigGAN-deep's bottleneck down-block (Brock et al. 2019, fig. 16c; BigGAN-PyTorch BigGANdeep.DBlock):

        h = conv1x1(ReLU(x)) [C_out/4] -> ReLU -> conv3 -> ReLU -> conv3 -> ReLU -> [avgpool] -> conv1x1 [C_out]
        skip = [avgpool] x, then, when the width grows, [x, conv1x1(x)] (the new C_out - C_in channels learnt)

    Output ``h + skip``. Widths only grow (or stay), as in every stage of BigGAN-deep's D.
    """

    def __init__(self, c_in: int, c_out: int, downsample: bool, spectral_norm: bool = True, ratio: int = 4):
        super().__init__()
        if c_out < c_in:
            raise ConfigError(f"BigGAN-deep D blocks keep or widen the channels, got {c_in} -> {c_out}.")
        mid = max(1, c_out // ratio)
        self.downsample = downsample
        self.conv1 = sn(nn.Conv2d(c_in, mid, 1), spectral_norm)
        self.conv2 = sn(nn.Conv2d(mid, mid, 3, padding=1), spectral_norm)
        self.conv3 = sn(nn.Conv2d(mid, mid, 3, padding=1), spectral_norm)
        self.conv4 = sn(nn.Conv2d(mid, c_out, 1), spectral_norm)
        self.skip = sn(nn.Conv2d(c_in, c_out - c_in, 1), spectral_norm) if c_out > c_in else None

    def _down(self, x: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(x, 2) if self.downsample else x

    def shortcut(self, x: torch.Tensor) -> torch.Tensor:
        x = self._down(x)
        return x if self.skip is None else torch.cat([x, self.skip(x)], dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.relu(x))
        h = self.conv3(F.relu(self.conv2(F.relu(h))))
        h = self.conv4(self._down(F.relu(h)))
        return h + self.shortcut(x)


# ---- generator ---------------------------------------------------------------------------------------------------

class ResNetGANGenerator(nn.Module):
    """``G(z [N, z_dim], label [N] or None) -> [N, C, R, R]`` in [-1, 1]. See the module docstring."""

    kind = "image"
    test_interface = {"z_dim": 8, "out_channels": 3, "resolution": 32}
    small_kwargs = {"ch": 4, "shared_dim": 8}
    resolutions = RESOLUTIONS
    name = "resnet GAN generator"

    def __init__(self,
                 z_dim: int,
                 out_channels: int,
                 resolution: int,
                 num_classes: int = 0,
                 ch: int = 64,                  # width unit: block widths are multiples of ch (G_PLAN)
                 spectral_norm: bool = False,   # SN in G too (SAGAN sec. 4, BigGAN); SNGAN has it in D only
                 attention: int = 0,            # feature-map side of the self-attention block (0 = none)
                 shared_embedding: bool = False,  # BigGAN: one class embedding, linear CBN of [shared(y), z_k]
                 shared_dim: int = 128,         # size of the shared class embedding (BigGAN: 128)
                 hierarchical: bool = False,    # BigGAN: split z into one chunk per block (+ one for the input)
                 deep: bool = False,            # BigGAN-deep: bottleneck blocks, two per resolution, z not split
                 bn_eps: float = 1e-5):         # epsilon of the output batch norm
        super().__init__()
        where = f"{self.name}"
        check_resolution(resolution, where)
        if deep and hierarchical:
            raise ConfigError(f"{where}: BigGAN-deep does not split z (Brock et al. 2019, appendix B); use "
                              "deep=true with hierarchical=false.")
        if hierarchical and not shared_embedding and num_classes > 0:
            raise ConfigError(f"{where}: the hierarchical latent feeds z chunks into linear conditional batch norm: "
                              "set shared_embedding=true with hierarchical=true.")
        if ch < 1 or shared_dim < 1:
            raise ConfigError(f"{where}: ch and shared_dim must be positive, got {ch} and {shared_dim}.")
        c_in, c_out = G_PLAN[resolution]
        self.z_dim, self.num_classes, self.resolution = z_dim, num_classes, resolution
        self.hierarchical, self.deep, self.attention = hierarchical, deep, attention
        n_blocks = len(c_in)
        # Latent routing: the chunks of z (hierarchical) or z whole (deep, and SNGAN's input).
        self.num_chunks = n_blocks + 1 if hierarchical else 1
        if hierarchical and z_dim % self.num_chunks:
            raise ConfigError(f"{where}: the hierarchical latent splits z into {self.num_chunks} equal chunks at "
                              f"{resolution} px ({n_blocks} blocks + the input); z_dim={z_dim} is not a multiple "
                              f"of {self.num_chunks} (e.g. z_dim={self.num_chunks * max(1, z_dim // self.num_chunks)}).")
        self.chunk = z_dim // self.num_chunks
        linear_cbn = shared_embedding or hierarchical or deep
        self.shared = nn.Embedding(num_classes, shared_dim) if (shared_embedding and num_classes > 0) else None
        embed_dim = shared_dim if self.shared is not None else 0
        if linear_cbn:
            cond_dim = embed_dim + (self.chunk if hierarchical else z_dim if deep else 0)
            cbn_classes = 0
        else:
            cond_dim, cbn_classes = 0, num_classes     # SNGAN / SAGAN: categorical CBN (or plain BN)
        self.uses_z_in_bn = linear_cbn and (hierarchical or deep)
        in_features = self.chunk if hierarchical else z_dim
        self.linear = sn(nn.Linear(in_features, c_in[0] * ch * 16), spectral_norm)
        self.bottom = c_in[0] * ch
        blocks: list[nn.Module] = []
        self.block_sides: list[int] = []        # output side of every block
        widths: list[int] = []                  # output channels of every block
        side = 4
        for i in range(n_blocks):
            a, b = c_in[i] * ch, c_out[i] * ch
            if deep:
                blocks.append(DeepGBlock(a, a, False, cbn_classes, cond_dim, spectral_norm))
                self.block_sides.append(side)
                widths.append(a)
            blocks.append((DeepGBlock if deep else GBlock)(a, b, True, cbn_classes, cond_dim, spectral_norm))
            side *= 2
            self.block_sides.append(side)
            widths.append(b)
        self.blocks = nn.ModuleList(blocks)
        sides = sorted(set(self.block_sides))
        if attention and attention not in sides:
            raise ConfigError(f"{where}: attention={attention} is not a feature-map side of this network; valid: "
                              f"{', '.join(map(str, sides))} (or 0 for none).")
        # The attention block follows the first block that outputs side ``attention`` (BigGAN-PyTorch's place).
        self.attn_after = self.block_sides.index(attention) if attention else -1
        self.attn = SelfAttention(widths[self.attn_after], spectral_norm) if attention else None
        self.out_bn = nn.BatchNorm2d(c_out[-1] * ch, eps=bn_eps)
        self.out_conv = sn(nn.Conv2d(c_out[-1] * ch, out_channels, 3, padding=1), spectral_norm)

    def block_conditions(self, z: torch.Tensor, label: torch.Tensor | None
                         ) -> tuple[torch.Tensor, list[torch.Tensor | None]]:
        """(input of the linear layer, the condition of every block): the hierarchical latent's routing.

        hierarchical: z = [z_0, z_1, ..., z_B]; z_0 -> linear, block b gets [shared(y), z_{b+1}] (BigGAN sec. 3);
        deep: every block gets [shared(y), z] and z -> linear; otherwise the label (categorical CBN) or None.
        """
        n_cond_blocks = len(self.blocks)
        if self.hierarchical:
            chunks = list(z.split(self.chunk, dim=1))                            # B + 1 chunks [N, chunk]
            shared = [self.shared(label)] if self.shared is not None else []
            return chunks[0], [torch.cat(shared + [c], dim=1) for c in chunks[1:]]
        if self.deep:
            shared = [self.shared(label)] if self.shared is not None else []
            return z, [torch.cat(shared + [z], dim=1)] * n_cond_blocks
        if self.shared is not None:
            return z, [self.shared(label)] * n_cond_blocks
        return z, [label] * n_cond_blocks

    def forward(self, z: torch.Tensor, label: torch.Tensor | None = None) -> torch.Tensor:
        label = require_label(label, self.num_classes, z.shape[0], self.name)
        first, conds = self.block_conditions(z, label)
        h = self.linear(first).view(z.shape[0], self.bottom, 4, 4)               # [N, c_in[0] ch, 4, 4]
        for i, block in enumerate(self.blocks):
            h = block(h, conds[i])
            if i == self.attn_after:
                h = self.attn(h)
        return torch.tanh(self.out_conv(F.relu(self.out_bn(h))))                 # [N, C, R, R]


class ResNetGANDiscriminator(nn.Module):
    """``D(x [N, C, R, R], label [N] or None) -> [N]`` raw scores, with a projection term when conditional."""

    kind = "image"
    test_interface = {"in_channels": 3, "resolution": 32}
    small_kwargs = {"ch": 4}
    resolutions = RESOLUTIONS
    name = "resnet GAN discriminator"

    def __init__(self,
                 in_channels: int,
                 resolution: int,
                 num_classes: int = 0,
                 ch: int = 64,                # width unit: block widths are multiples of ch (D_PLAN)
                 spectral_norm: bool = True,  # SN on every weight (Miyato et al. 2018)
                 attention: int = 0,          # feature-map side after which a self-attention block runs (0 = none)
                 deep: bool = False):         # BigGAN-deep's D: stem conv + two bottleneck blocks per stage
        super().__init__()
        where = self.name
        check_resolution(resolution, where)
        self.num_classes, self.resolution, self.deep = num_classes, resolution, deep
        blocks: list[nn.Module] = []
        sides, side = [], resolution            # output side of every block
        if deep:
            c_in, c_out, down = DEEP_D_PLAN[resolution]
            self.stem = sn(nn.Conv2d(in_channels, c_in[0] * ch, 3, padding=1), spectral_norm)
            for i in range(len(c_out)):
                for d in range(DEEP_D_DEPTH):
                    a = c_in[i] * ch if d == 0 else c_out[i] * ch
                    blocks.append(DeepDBlock(a, c_out[i] * ch, down[i] and d == 0, spectral_norm))
                    side //= 2 if (down[i] and d == 0) else 1
                    sides.append(side)
        else:
            c_in, c_out, down = D_PLAN[resolution]
            self.stem = None
            for i in range(len(c_out)):
                a = in_channels if c_in[i] is None else c_in[i] * ch
                blocks.append(DBlock(a, c_out[i] * ch, down[i], preactivation=i > 0, spectral_norm=spectral_norm))
                side //= 2 if down[i] else 1
                sides.append(side)
        widths = [b.conv4.out_channels if deep else b.conv2.out_channels for b in blocks]
        self.blocks = nn.ModuleList(blocks)
        if attention and attention not in sides:
            raise ConfigError(f"{where}: attention={attention} is not a feature-map side of this network; valid: "
                              f"{', '.join(map(str, sorted(set(sides))))} (or 0 for none).")
        # After the first block at side ``attention`` (deep: at the end of that block's stage, BigGAN-PyTorch's place).
        self.attn_after = sides.index(attention) if attention else -1
        if deep and attention:
            self.attn_after += DEEP_D_DEPTH - 1 - self.attn_after % DEEP_D_DEPTH
        self.attn = SelfAttention(widths[self.attn_after], spectral_norm) if attention else None
        features = widths[-1]
        self.head = sn(nn.Linear(features, 1), spectral_norm)
        self.embed = sn(nn.Embedding(num_classes, features), spectral_norm) if num_classes > 0 else None

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """phi(x): ReLU then global sum pooling of the last block, [N, F]."""
        h = x if self.stem is None else self.stem(x)
        for i, block in enumerate(self.blocks):
            h = block(h)
            if i == self.attn_after:
                h = self.attn(h)
        return F.relu(h).sum(dim=(2, 3))

    def forward(self, x: torch.Tensor, label: torch.Tensor | None = None) -> torch.Tensor:
        label = require_label(label, self.num_classes, x.shape[0], self.name)
        phi = self.features(x)                                                  # [N, F]
        score = self.head(phi).reshape(x.shape[0])                              # psi(phi(x))
        if self.embed is not None:
            score = score + projection_term(self.embed, label, phi)            # Miyato & Koyama 2018, eq. 3
        return score


# ---- the three papers' defaults ----------------------------------------------------------------------------------

@generators.register("sngan")
class SNGANGenerator(ResNetGANGenerator):
    """SNGAN (Miyato et al. 2018, table 4 ResNet; Miyato & Koyama 2018): categorical CBN, no SN in G, 256 channels
    at 32 px (ch = 64 x 4)."""
    name = "sngan generator"


@discriminators.register("sngan")
class SNGANDiscriminator(ResNetGANDiscriminator):
    """SNGAN's ResNet D with spectral norm and the projection term (Miyato & Koyama 2018)."""
    name = "sngan discriminator"


@generators.register("sagan")
class SAGANGenerator(ResNetGANGenerator):
    """SAGAN (Zhang et al. 2019): SNGAN's G with spectral norm and self-attention (at side 16 by default; the
    paper's 128 px model has it at 32 and 64: --set G.attention=32)."""
    name = "sagan generator"

    def __init__(self, z_dim: int, out_channels: int, resolution: int, num_classes: int = 0, ch: int = 64,
                 spectral_norm: bool = True, attention: int = 16, shared_embedding: bool = False,
                 shared_dim: int = 128, hierarchical: bool = False, deep: bool = False, bn_eps: float = 1e-5):
        super().__init__(z_dim, out_channels, resolution, num_classes, ch, spectral_norm, attention,
                         shared_embedding, shared_dim, hierarchical, deep, bn_eps)


@discriminators.register("sagan")
class SAGANDiscriminator(ResNetGANDiscriminator):
    """SAGAN's D: SNGAN's with self-attention (at side 16 by default)."""
    name = "sagan discriminator"

    def __init__(self, in_channels: int, resolution: int, num_classes: int = 0, ch: int = 64,
                 spectral_norm: bool = True, attention: int = 16):
        super().__init__(in_channels, resolution, num_classes, ch, spectral_norm, attention)


@generators.register("biggan")
class BigGANGenerator(ResNetGANGenerator):
    """BigGAN (Brock et al. 2019): shared embedding, hierarchical z, SN in G, self-attention; ``deep=true`` for
    BigGAN-deep (``--set G.deep=true G.hierarchical=false D.deep=true``)."""
    name = "biggan generator"

    def __init__(self, z_dim: int, out_channels: int, resolution: int, num_classes: int = 0, ch: int = 64,
                 spectral_norm: bool = True, attention: int = 16, shared_embedding: bool = True,
                 shared_dim: int = 128, hierarchical: bool = True, deep: bool = False, bn_eps: float = 1e-5):
        super().__init__(z_dim, out_channels, resolution, num_classes, ch, spectral_norm, attention,
                         shared_embedding, shared_dim, hierarchical, deep, bn_eps)


@discriminators.register("biggan")
class BigGANDiscriminator(ResNetGANDiscriminator):
    """BigGAN's D: SNGAN's projection D with self-attention; ``deep=true`` for BigGAN-deep's D (a stem conv, then
    two bottleneck blocks per stage, Brock et al. 2019 appendix B)."""
    name = "biggan discriminator"

    def __init__(self, in_channels: int, resolution: int, num_classes: int = 0, ch: int = 64,
                 spectral_norm: bool = True, attention: int = 16, deep: bool = False):
        super().__init__(in_channels, resolution, num_classes, ch, spectral_norm, attention, deep)


def orthogonal_penalty(weight: torch.Tensor) -> torch.Tensor:
    """BigGAN's orthogonal regularisation (Brock et al. 2019, eq. 3), off-diagonal form, without beta:

        R(W) = || W W^T (.) (1 - I) ||_F^2,   W the weight as a matrix [out, in * k * k] (one row per filter)

    It penalises only the cosine-like overlap between different filters, not their norms (the full
    ||W W^T - I||^2 of Brock et al. 2017 also pulls every row to unit norm). BigGAN-PyTorch's ``ortho`` adds
    2 (W W^T (.) (1 - I)) W to the gradient, which is the gradient of R/2: gankit's beta x R therefore equals
    their ``G_ortho`` = 2 beta.
    """
    w = weight.reshape(weight.shape[0], -1)                                   # [out, fan_in]
    gram = w @ w.t()                                                          # [out, out]
    off = gram * (1 - torch.eye(w.shape[0], device=w.device, dtype=w.dtype))
    return off.square().sum()


__all__ = ["ConditionalBatchNorm2d", "SelfAttention", "GBlock", "DeepGBlock", "DBlock", "DeepDBlock",
           "ResNetGANGenerator",
           "ResNetGANDiscriminator", "orthogonal_penalty", "RESOLUTIONS"]
