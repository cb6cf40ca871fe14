"""Progressive GAN networks (Karras et al. 2018, "Progressive growing of GANs"), growing from 4x4.

Generator (paper table 2, official code ``networks.py``): z -> pixel norm -> equalised dense to 4x4 -> LReLU ->
PN -> conv3x3 -> LReLU -> PN; each later stage: nearest 2x up -> conv3x3 -> LReLU -> PN -> conv3x3 -> LReLU -> PN;
each stage has its own toRGB (1x1 conv). Discriminator mirrors it: fromRGB (1x1 conv + LReLU) at the current
resolution, stages conv3x3 -> LReLU -> conv3x3 -> LReLU -> 2x2 average pool, and the 4x4 stage minibatch stddev ->
conv3x3 -> LReLU -> dense -> LReLU -> dense (one score).

Growing: ``stage`` s (0 = 4x4) is how many stages are active; ``grow()`` adds the next one (the recipe rebuilds the
optimisers). ``alpha`` (a buffer, so EMA copies and checkpoints carry it) fades the newest stage in (sec. 3,
fig. 2): the generator outputs ``(1 - alpha) up2(toRGB_{s-1}(h_{s-1})) + alpha toRGB_s(h_s)`` and the
discriminator reads ``(1 - alpha) fromRGB_{s-1}(pool2(x)) + alpha block_s(fromRGB_s(x))``.

Interfaces as every image network: G always returns the full ``resolution`` (the current stage's output
up-sampled by nearest neighbour, as the official code's ``lod`` output), D takes any side from the current one
up to ``resolution`` and average-pools it to the current side (pooling undoes the nearest up-sampling exactly).
``G(z, label, native=True)`` returns the current side without up-sampling (the recipe trains at it).

Class-conditional (``num_classes > 0``): G's latent is ``pixel_norm([z, one_hot(y)])`` (official ``label_size``);
D adds the projection ``<embed(y), phi(x)>`` of its last hidden layer (Miyato & Koyama 2018) to the score.

Equalised learning rate (sec. 4.1): weights ~ N(0, 1), multiplied at run time by He's constant
c = gain / sqrt(fan_in) (gain sqrt(2); toRGB gain 1; the first dense sqrt(2) / 4 as in the official code).
Pixel norm (sec. 4.2): b = a / sqrt(mean_c a^2 + 1e-8). Minibatch stddev (sec. 3): the standard deviation of each
feature over a group of ``group_size`` samples, averaged into one extra feature map.

One deviation from the paper: toRGB is followed by tanh (gankit's generators give images in [-1, 1]); the
fade-in interpolates between the two tanh outputs, so the output stays in [-1, 1]. The paper's toRGB is linear.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from .base import discriminators, generators
from .layers import projection_term, require_label

SQRT2 = math.sqrt(2.0)


def check_resolution(resolution: int, where: str) -> int:
    """Number of doublings from 4x4 to ``resolution`` (a power of two, 8 to 1024)."""
    if resolution < 8 or resolution > 1024 or resolution & (resolution - 1):
        raise ConfigError(f"{where}: progressive growing starts at 4x4 and doubles; resolution must be a power "
                          f"of two from 8 to 1024, got {resolution!r} (for MNIST's 28 px: --set data.resolution=32).")
    return int(math.log2(resolution)) - 2


class EqualizedConv2d(nn.Module):
    """Conv with the equalised learning rate: w ~ N(0, 1), used as w * gain / sqrt(fan_in); bias 0."""

    def __init__(self, c_in: int, c_out: int, kernel: int, gain: float = SQRT2):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(c_out, c_in, kernel, kernel))
        self.bias = nn.Parameter(torch.zeros(c_out))
        self.scale = gain / math.sqrt(c_in * kernel * kernel)
        self.padding = kernel // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight * self.scale, self.bias, padding=self.padding)


class EqualizedLinear(nn.Module):
    """Dense layer with the equalised learning rate (as ``EqualizedConv2d``)."""

    def __init__(self, f_in: int, f_out: int, gain: float = SQRT2):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(f_out, f_in))
        self.bias = nn.Parameter(torch.zeros(f_out))
        self.scale = gain / math.sqrt(f_in)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight * self.scale, self.bias)


def pixel_norm(x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Karras et al. 2018, eq. in sec. 4.2: a / sqrt(mean over channels of a^2 + eps), per pixel."""
    return x * torch.rsqrt(x.square().mean(dim=1, keepdim=True) + eps)


def minibatch_stddev(x: torch.Tensor, group_size: int = 4) -> torch.Tensor:
    """Append the mean over features of the per-group standard deviation as one channel (sec. 3).

    Samples n = g M + m (g < G) form group m; G = gcd(N, group_size) so every group has the same size (the
    official code requires N divisible by the group size). [N, C, H, W] -> [N, C + 1, H, W].
    """
    n, c, h, w = x.shape
    g = math.gcd(n, group_size)
    y = x.reshape(g, -1, c, h, w)                                    # [G, M, C, H, W]
    y = (y - y.mean(dim=0)).square().mean(dim=0)                     # variance over the group, [M, C, H, W]
    y = (y + 1e-8).sqrt().mean(dim=(1, 2, 3))                        # [M]
    y = y.repeat(g).reshape(n, 1, 1, 1).expand(n, 1, h, w)           # sample n gets y[n % M]
    return torch.cat([x, y], dim=1)


def stage_widths(max_stage: int, fmap_base: int, fmap_max: int) -> list[int]:
    """Channels at stage s (side 4 * 2^s): min(fmap_base / 2^(s+1), fmap_max) (official ``nf(stage)``)."""
    return [max(1, min(fmap_base // 2 ** (s + 1), fmap_max)) for s in range(max_stage + 1)]


class _Growing(nn.Module):
    """What ProGAN's G and D share: the stage counter and the fade weight ``alpha`` (a buffer)."""

    max_stage: int

    def _init_growth(self) -> None:
        self.register_buffer("alpha", torch.ones(()))
        self.stage = 0

    def grow_to(self, stage: int) -> None:
        if not 0 <= stage <= self.max_stage:
            raise ConfigError(f"{type(self).__name__}: stage must be in 0..{self.max_stage}, got {stage}.")
        while self.stage < stage:
            self.grow()

    def grow(self) -> None:
        raise NotImplementedError

    def set_alpha(self, alpha: float) -> None:
        self.alpha.fill_(float(alpha))

    @property
    def current_resolution(self) -> int:
        return 4 * 2 ** self.stage

    def _device(self) -> torch.device:
        return next(self.parameters()).device


@generators.register("progan")
class ProGANGenerator(_Growing):
    """``G(z [N, z_dim]) -> [N, C, R, R]`` in [-1, 1]; grows from 4x4 (``stage`` 0) to ``resolution``."""

    kind = "image"
    test_interface = {"z_dim": 8, "out_channels": 3, "resolution": 32}
    small_kwargs = {"fmap_base": 64, "fmap_max": 16}

    def __init__(self,
                 z_dim: int,
                 out_channels: int,
                 resolution: int,
                 fmap_base: int = 8192,      # stage widths min(fmap_base / 2^(s+1), fmap_max) (official code)
                 fmap_max: int = 512,
                 slope: float = 0.2,         # LeakyReLU slope (paper: 0.2)
                 pixelnorm: bool = True,     # pixel norm after every conv (sec. 4.2)
                 num_classes: int = 0):      # > 0: one-hot label joins z (official code's label_size)
        super().__init__()
        self.z_dim, self.out_channels, self.resolution = z_dim, out_channels, resolution
        self.num_classes = num_classes
        self.max_stage = check_resolution(resolution, "progan generator")
        self.widths = stage_widths(self.max_stage, fmap_base, fmap_max)
        self.slope, self.pixelnorm = slope, pixelnorm
        c0 = self.widths[0]
        # Stage 0: dense to 4x4 (gain sqrt(2)/4, official code) and one conv.
        self.dense = EqualizedLinear(z_dim + num_classes, c0 * 16, gain=SQRT2 / 4)
        self.blocks = nn.ModuleList([nn.ModuleList([EqualizedConv2d(c0, c0, 3)])])
        self.to_rgb = nn.ModuleList([EqualizedConv2d(c0, out_channels, 1, gain=1.0)])
        self._init_growth()

    def grow(self) -> None:
        if self.stage >= self.max_stage:
            raise ConfigError(f"progan generator: already at its full resolution {self.resolution}.")
        s = self.stage + 1
        c_in, c_out = self.widths[s - 1], self.widths[s]
        device = self._device()
        self.blocks.append(nn.ModuleList([EqualizedConv2d(c_in, c_out, 3), EqualizedConv2d(c_out, c_out, 3)]).to(device))
        self.to_rgb.append(EqualizedConv2d(c_out, self.out_channels, 1, gain=1.0).to(device))
        self.stage = s

    def _act(self, x: torch.Tensor) -> torch.Tensor:
        x = F.leaky_relu(x, self.slope)
        return pixel_norm(x) if self.pixelnorm else x

    def latent(self, z: torch.Tensor, label: torch.Tensor | None = None) -> torch.Tensor:
        """The dense layer's input: z, or [z, one_hot(y)] when conditional (official G_paper: labels concatenated
        to the latents, then the pixel norm of the whole vector), [N, z_dim + num_classes]."""
        label = require_label(label, self.num_classes, len(z), "progan generator")
        x = z if label is None else torch.cat([z, F.one_hot(label, self.num_classes).to(z.dtype)], dim=1)
        return pixel_norm(x) if self.pixelnorm else x                        # normalise the latent (official)

    def features(self, z: torch.Tensor, label: torch.Tensor | None = None) -> list[torch.Tensor]:
        """Feature maps h_0 .. h_stage (sides 4, 8, ...)."""
        x = self.latent(z, label)
        h = self._act(self.dense(x).view(len(z), self.widths[0], 4, 4))      # [N, c0, 4, 4]
        h = self._act(self.blocks[0][0](h))
        out = [h]
        for s in range(1, self.stage + 1):
            h = F.interpolate(h, scale_factor=2, mode="nearest")
            for conv in self.blocks[s]:
                h = self._act(conv(h))
            out.append(h)
        return out

    def forward(self, z: torch.Tensor, label: torch.Tensor | None = None, native: bool = False) -> torch.Tensor:
        feats = self.features(z, label)
        img = torch.tanh(self.to_rgb[self.stage](feats[-1]))                  # [N, C, r, r]
        if self.stage > 0:
            # Fade-in (sec. 3, fig. 2b): the new stage as a residual weighted alpha over the up-sampled old output.
            old = F.interpolate(torch.tanh(self.to_rgb[self.stage - 1](feats[-2])), scale_factor=2, mode="nearest")
            img = torch.lerp(old, img, self.alpha.to(img.dtype))
        if native or self.stage == self.max_stage:
            return img
        return F.interpolate(img, scale_factor=2 ** (self.max_stage - self.stage), mode="nearest")   # [N, C, R, R]


@discriminators.register("progan")
class ProGANDiscriminator(_Growing):
    """``D(x [N, C, r, r]) -> [N]`` scores, r between the current side and ``resolution``."""

    kind = "image"
    mixes_batch_rows = True   # minibatch stddev at 4x4 (gan recipe: no joint real/fake D forward)
    test_interface = {"in_channels": 3, "resolution": 32}
    small_kwargs = {"fmap_base": 64, "fmap_max": 16}

    def __init__(self,
                 in_channels: int,
                 resolution: int,
                 fmap_base: int = 8192,      # as the generator's
                 fmap_max: int = 512,
                 slope: float = 0.2,
                 group_size: int = 4,        # minibatch stddev group (official default 4)
                 num_classes: int = 0):      # > 0: projection term on the last hidden layer (Miyato & Koyama)
        super().__init__()
        self.in_channels, self.resolution = in_channels, resolution
        self.num_classes = num_classes
        self.max_stage = check_resolution(resolution, "progan discriminator")
        self.widths = stage_widths(self.max_stage, fmap_base, fmap_max)
        self.slope, self.group_size = slope, group_size
        c0 = self.widths[0]
        head_width = max(1, min(fmap_base, fmap_max))                         # official nf(0)
        self.from_rgb = nn.ModuleList([EqualizedConv2d(in_channels, c0, 1)])
        self.blocks = nn.ModuleList([nn.ModuleList([EqualizedConv2d(c0 + 1, c0, 3),
                                                    EqualizedLinear(c0 * 16, head_width),
                                                    EqualizedLinear(head_width, 1, gain=1.0)])])
        # Conditional: <embed(y), phi(x)> with phi the last hidden layer (the official code instead predicts the
        # label, AC-GAN style; the projection is gankit's conditional D everywhere else).
        self.embed = nn.Embedding(num_classes, head_width) if num_classes > 0 else None
        self._init_growth()

    def grow(self) -> None:
        if self.stage >= self.max_stage:
            raise ConfigError(f"progan discriminator: already at its full resolution {self.resolution}.")
        s = self.stage + 1
        c_in, c_out = self.widths[s], self.widths[s - 1]
        device = self._device()
        self.from_rgb.append(EqualizedConv2d(self.in_channels, c_in, 1).to(device))
        self.blocks.append(nn.ModuleList([EqualizedConv2d(c_in, c_in, 3), EqualizedConv2d(c_in, c_out, 3)]).to(device))
        self.stage = s

    def _lrelu(self, x: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu(x, self.slope)

    def _block(self, s: int, h: torch.Tensor) -> torch.Tensor:
        for conv in self.blocks[s]:
            h = self._lrelu(conv(h))
        return F.avg_pool2d(h, 2)

    def forward(self, x: torch.Tensor, label: torch.Tensor | None = None) -> torch.Tensor:
        label = require_label(label, self.num_classes, len(x), "progan discriminator")
        phi = self.features(x)                                                # [N, head_width]
        score = self.blocks[0][2](phi).reshape(len(x))                        # raw critic scores [N]
        if self.embed is not None:
            score = score + projection_term(self.embed, label, phi)          # Miyato & Koyama 2018, eq. 3
        return score

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """phi(x): the last hidden layer, [N, head_width], from images of the current side or larger."""
        side = self.current_resolution
        if x.shape[-1] < side or x.shape[-1] % side:
            raise ConfigError(f"progan discriminator at {side}x{side} got {x.shape[-1]}x{x.shape[-2]} images.")
        if x.shape[-1] != side:
            x = F.avg_pool2d(x, x.shape[-1] // side)                          # [N, C, side, side]
        s = self.stage
        h = self._lrelu(self.from_rgb[s](x))
        if s > 0:
            h = self._block(s, h)
            # Fade-in (sec. 3): the old fromRGB on the pooled image, weighted 1 - alpha.
            old = self._lrelu(self.from_rgb[s - 1](F.avg_pool2d(x, 2)))
            h = torch.lerp(old, h, self.alpha.to(h.dtype))
            for t in range(s - 1, 0, -1):
                h = self._block(t, h)
        conv, dense, out = self.blocks[0]
        h = self._lrelu(conv(minibatch_stddev(h, self.group_size)))          # [N, c0, 4, 4]
        return self._lrelu(dense(h.flatten(1)))


__all__ = ["ProGANGenerator", "ProGANDiscriminator", "EqualizedConv2d", "EqualizedLinear", "pixel_norm",
           "minibatch_stddev", "stage_widths"]
