"""WaveGAN and SpecGAN networks (Donahue, McAuley & Puckette 2019, "Adversarial Audio Synthesis", sec. 3-4).

WaveGAN flattens DCGAN to one dimension: 5x5 2-D kernels become length-25 1-D kernels, stride 2 becomes stride 4,
so five layers upsample a 16-sample start map 4^5 times to 16384 samples (table 2 / 3 of the paper):

    G:  z [N, 100] -> dense -> [N, 16d, 16] -> ReLU -> 5 x (ConvTranspose1d k=25 s=4, ReLU) -> tanh [N, 1, 16384]
    D:  [N, 1, 16384] -> 5 x (Conv1d k=25 s=4, LeakyReLU 0.2, phase shuffle n=2 after layers 1-4)
        -> flatten [N, 256d] -> dense -> [N] (no sigmoid: a WGAN-GP critic)

with widths d, 2d, 4d, 8d, 16d (d = ``model_size``, 64 in the paper). Shorter clips use fewer layers:
``length = 16 * 4^L`` (L = 5 for 16384, 4 for 4096, 3 for 1024); the width doubling is kept, so the first G layer
has d * 2^(L-1) channels. No batch norm (the paper's WaveGAN and SpecGAN train without it under WGAN-GP).

Phase shuffle (sec. 3.3): each D activation map is shifted in time by k ~ U{-n, ..., n}, drawn independently per
example, and the n samples that the shift exposes are filled by reflection, so D cannot tell real from fake by
the periodic artefacts of transposed convolutions. It is on only in training mode.

SpecGAN is the same recipe in 2-D on B x B log-magnitude spectrograms: DCGAN with 5x5 kernels and stride 2, a
4x4 start map and 16d channels at the start (for B = 128, five layers: 4 -> 128).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from .base import discriminators, generators
from .layers import require_label

KERNEL_1D, STRIDE_1D, START_1D = 25, 4, 16       # WaveGAN tables 2 / 3
KERNEL_2D, STRIDE_2D, START_2D = 5, 2, 4         # SpecGAN (DCGAN with 5x5 kernels)


def layer_count(length: int, start: int, stride: int, where: str, what: str = "length") -> int:
    """L with length = start * stride^L (L >= 1); ConfigError naming the valid values otherwise."""
    layers = round(math.log(max(length, 1) / start, stride)) if length >= start else 0
    if layers < 1 or start * stride ** layers != length:
        valid = ", ".join(str(start * stride ** k) for k in range(1, 7))
        raise ConfigError(f"{where}: cannot make {what} {length}; valid values: {valid}.")
    return layers


def phase_shuffle(x: torch.Tensor, n: int, shifts: torch.Tensor | None = None) -> torch.Tensor:
    """Shift each example of [N, C, T] by its own k in [-n, n] along time, filling the exposed edge by reflection.

    out[i, :, t] = x[i, :, t - k_i], where t - k_i outside [0, T) is reflected back inside (x[-1] -> x[1],
    x[T] -> x[T-2]: reflection without repeating the edge sample, as tf.pad(..., "REFLECT") in the authors'
    code). ``shifts`` [N] (integers in [-n, n]) may be given; by default k ~ U{-n..n} per example.
    """
    if n == 0:
        return x
    N, C, T = x.shape
    if shifts is None:
        shifts = torch.randint(-n, n + 1, (N,), device=x.device)
    padded = F.pad(x, (n, n), mode="reflect")                                     # [N, C, T + 2n]
    # Output t reads padded position t - k + n.
    index = (torch.arange(T, device=x.device)[None] - shifts[:, None] + n)       # [N, T]
    return padded.gather(2, index[:, None, :].expand(N, C, T))


class PhaseShuffle(nn.Module):
    """``phase_shuffle`` as a layer, active in training mode only (D is used only while training)."""

    def __init__(self, n: int):
        super().__init__()
        self.n = n

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return phase_shuffle(x, self.n) if self.training and self.n > 0 else x

    def extra_repr(self) -> str:
        return f"n={self.n}"


def _widths(d: int, layers: int) -> list[int]:
    """Channels from the start map down: d * 2^(L-1), ..., 2d, d (WaveGAN: 16d, 8d, 4d, 2d, d)."""
    return [d * 2 ** (layers - 1 - j) for j in range(layers)]


class _UpsamplingGenerator(nn.Module):
    """z -> dense -> start map -> L transposed convolutions (ReLU between, tanh at the end)."""

    def __init__(self, dims: int, z_dim: int, out_channels: int, size: int, num_classes: int, d: int,
                 embed_dim: int, kernel: int, stride: int, start: int, where: str):
        super().__init__()
        self.layers = layer_count(size, start, stride, where, "length" if dims == 1 else "resolution")
        self.z_dim, self.num_classes, self.dims, self.start = z_dim, num_classes, dims, start
        self.where = where
        chans = _widths(d, self.layers)
        self.embed = nn.Embedding(num_classes, embed_dim) if num_classes > 0 else None
        in_dim = z_dim + (embed_dim if num_classes > 0 else 0)
        self.chans0 = chans[0]
        self.dense = nn.Linear(in_dim, chans[0] * start ** dims)
        conv = nn.ConvTranspose1d if dims == 1 else nn.ConvTranspose2d
        # Padding p and output padding op give out = stride * in: (in - 1) s - 2p + k + op = s in.
        pad = (kernel - stride + 1) // 2
        out_pad = stride - kernel + 2 * pad
        ups: list[nn.Module] = []
        for c_in, c_out in zip(chans, chans[1:] + [out_channels]):
            ups += [nn.ReLU(), conv(c_in, c_out, kernel, stride, pad, output_padding=out_pad)]
        self.ups = nn.Sequential(*ups)

    def forward(self, z: torch.Tensor, label: torch.Tensor | None = None) -> torch.Tensor:
        label = require_label(label, self.num_classes, z.shape[0], self.where)
        if label is not None:
            z = torch.cat([z, self.embed(label)], dim=1)                              # [N, z_dim + embed]
        x = self.dense(z).view(len(z), self.chans0, *([self.start] * self.dims))       # [N, 16d, 16] / [N, 16d, 4, 4]
        return torch.tanh(self.ups(x))                                                # [N, C, T] / [N, C, B, B]


class _DownsamplingCritic(nn.Module):
    """L strided convolutions with LeakyReLU 0.2 (and phase shuffle in 1-D) -> dense -> one score."""

    def __init__(self, dims: int, in_channels: int, size: int, num_classes: int, d: int, phase_shuffle_n: int,
                 kernel: int, stride: int, start: int, where: str):
        super().__init__()
        layers = layer_count(size, start, stride, where, "length" if dims == 1 else "resolution")
        if phase_shuffle_n < 0:
            raise ConfigError(f"{where}: phase_shuffle must be >= 0, got {phase_shuffle_n}.")
        self.num_classes, self.where = num_classes, where
        chans = _widths(d, layers)[::-1]                                                  # d, 2d, ..., 16d
        conv = nn.Conv1d if dims == 1 else nn.Conv2d
        pad = (kernel - 1) // 2 if dims == 1 else (kernel - stride + 1) // 2
        downs: list[nn.Module] = []
        for i, (c_in, c_out) in enumerate(zip([in_channels] + chans[:-1], chans)):
            downs += [conv(c_in, c_out, kernel, stride, pad), nn.LeakyReLU(0.2)]
            if dims == 1 and i < layers - 1:
                downs.append(PhaseShuffle(phase_shuffle_n))                              # after layers 1..L-1
        self.downs = nn.Sequential(*downs)
        features = chans[-1] * start ** dims
        self.fc = nn.Linear(features, 1)
        # Projection discriminator term for class-conditional training (Miyato & Koyama 2018, eq. 3).
        self.embed = nn.Embedding(num_classes, features) if num_classes > 0 else None

    def forward(self, x: torch.Tensor, label: torch.Tensor | None = None) -> torch.Tensor:
        label = require_label(label, self.num_classes, x.shape[0], self.where)
        h = self.downs(x).flatten(1)                                                      # [N, 256d] / [N, 16d*16]
        score = self.fc(h)[:, 0]                                                          # [N]
        if label is not None:
            score = score + (self.embed(label) * h).sum(1)
        return score


@generators.register("wavegan")
class WaveGANGenerator(_UpsamplingGenerator):
    kind = "audio"
    test_interface = {"z_dim": 8, "out_channels": 1, "length": 1024}

    def __init__(self, z_dim: int, out_channels: int, length: int, num_classes: int = 0,
                 model_size: int = 64,     # d of tables 2 / 3 (64 in the paper; 8-16 for small CPU models)
                 embed_dim: int = 32):     # label embedding joined to z (class-conditional only)
        super().__init__(1, z_dim, out_channels, length, num_classes, model_size, embed_dim,
                         KERNEL_1D, STRIDE_1D, START_1D, "wavegan generator")
        self.length = length


@discriminators.register("wavegan")
class WaveGANDiscriminator(_DownsamplingCritic):
    kind = "audio"
    test_interface = {"in_channels": 1, "length": 1024}

    def __init__(self, in_channels: int, length: int, num_classes: int = 0,
                 model_size: int = 64,     # d (64 in the paper)
                 phase_shuffle: int = 2):  # n of sec. 3.3 (the paper's best: 2); 0 = off
        super().__init__(1, in_channels, length, num_classes, model_size, phase_shuffle,
                         KERNEL_1D, STRIDE_1D, START_1D, "wavegan discriminator")


@generators.register("specgan")
class SpecGANGenerator(_UpsamplingGenerator):
    kind = "image"
    test_interface = {"z_dim": 8, "out_channels": 1, "resolution": 32}

    def __init__(self, z_dim: int, out_channels: int, resolution: int, num_classes: int = 0,
                 model_size: int = 64,     # d: the start map has 16d channels at 128x128 (64 in the paper)
                 embed_dim: int = 32):
        super().__init__(2, z_dim, out_channels, resolution, num_classes, model_size, embed_dim,
                         KERNEL_2D, STRIDE_2D, START_2D, "specgan generator")
        self.resolution = resolution


@discriminators.register("specgan")
class SpecGANDiscriminator(_DownsamplingCritic):
    kind = "image"
    test_interface = {"in_channels": 1, "resolution": 32}

    def __init__(self, in_channels: int, resolution: int, num_classes: int = 0,
                 model_size: int = 64):    # d (64 in the paper)
        super().__init__(2, in_channels, resolution, num_classes, model_size, 0,
                         KERNEL_2D, STRIDE_2D, START_2D, "specgan discriminator")
