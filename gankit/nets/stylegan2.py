"""StyleGAN2 networks in plain PyTorch (Karras et al. 2020, "Analyzing and Improving the Image Quality of
StyleGAN", config F; conditioning as in Karras et al. 2020, "Training GANs with Limited Data").

No custom CUDA op: the [1, 3, 3, 1] resampling filters are depthwise ``conv2d``s and the modulated convolution
is the non-fused form of NVlabs' ``modulated_conv2d`` (scale the input by the style, one ordinary convolution
for the whole batch, scale the output by the demodulation coefficients), which is the same linear map as the
per-sample weight w''_ijk of the paper's eq. 1-3. So the networks run on a CPU and on any GPU.

Generator   z [N, z_dim] --normalise--> 8 FC (lr x 0.01, lrelu) --> w [N, w_dim], tracked average w_avg
            (truncation: w_avg + psi (w - w_avg)), broadcast to ws [N, num_ws, w_dim]
            learned constant 4x4 -> per resolution r: [up] modconv3x3, modconv3x3 (each + noise x learned
            strength + bias, lrelu x sqrt 2), toRGB (modulated 1x1, no demodulation); the RGB outputs are
            summed with filtered up-sampling ("skip" architecture, paper fig. 7b); num_ws = 2 log2(R) - 2.
Discriminator  fromRGB at R, residual blocks (conv3x3, conv3x3 down; skip: filtered down + 1x1, both
            x sqrt 1/2) down to 4x4, minibatch standard deviation (group 4, 1 feature), conv3x3, FC, output
            FC; class-conditional by projection onto a label embedding (cmap), as in StyleGAN2-ADA.

Equalised learning rate (Karras et al. 2018, sec. 4.1) everywhere: weights are stored as N(0, 1) / lr_mul and
multiplied at run time by lr_mul / sqrt(fan_in); biases by lr_mul. The mapping network's 0.01 multiplier is
this gain (NVlabs' way), not an optimiser group.

Channel widths: min(channel_base / r, channel_max) at resolution r (config F: 32768 and 512).
Output: ``out_activation="tanh"`` (default) bounds images to [-1, 1] as every gankit image generator does;
``"linear"`` is NVlabs' unbounded output (clamped to [-1, 1] in eval mode only, as their image writer does).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from .base import discriminators, generators
from .layers import check_choice, require_label

MIN_RESOLUTION, MAX_RESOLUTION = 8, 1024
RESOLUTIONS = tuple(2 ** k for k in range(3, 11))     # 8 .. 1024; the range is 32 .. 256
OUT_ACTIVATIONS = ("tanh", "linear")
LRELU_GAIN = math.sqrt(2.0)                           # keeps unit variance through leaky ReLU (NVlabs bias_act)


def check_resolution(resolution: int, where: str) -> int:
    if resolution not in RESOLUTIONS:
        raise ConfigError(f"{where}: StyleGAN2 makes square powers of two; cannot make resolution {resolution!r}. "
                          f"Valid resolutions: {', '.join(map(str, RESOLUTIONS))} (resize the data with "
                          f"--resolution, e.g. 32 for MNIST).")
    return resolution


def channels_at(res: int, channel_base: int, channel_max: int) -> int:
    return max(1, min(channel_base // res, channel_max))


# ---- the [1, 3, 3, 1] resampling filter, as depthwise convolutions --------------------------------------------

def make_filter(taps: tuple[float, ...] = (1, 3, 3, 1)) -> torch.Tensor:
    """Separable 2-D low-pass filter, outer(k, k) / sum: [k, k] (Zhang 2019 / NVlabs' upfirdn2d setup_filter)."""
    k = torch.tensor(taps, dtype=torch.float32)
    f = torch.outer(k, k)
    return f / f.sum()


def _depthwise(x: torch.Tensor, f: torch.Tensor, pad: tuple[int, int, int, int], gain: float = 1.0) -> torch.Tensor:
    """Convolve each channel of x [N, C, H, W] with filter f [k, k] (flipped = correlated: f is symmetric)."""
    c = x.shape[1]
    x = F.pad(x, pad)
    weight = (f * gain).to(x.dtype)[None, None].expand(c, 1, *f.shape)       # [C, 1, k, k]
    return F.conv2d(x, weight, groups=c)


def upsample2d(x: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    """[N, C, H, W] -> [N, C, 2H, 2W]: zero insertion, then the filter x 4 (upfirdn2d up=2, padding (2, 1)),
    computed as one depthwise transposed convolution of stride 2 (the same sums, without the zeros; f is
    symmetric, so the transposed conv's flip does not matter). ``tests/test_stylegan2.py`` checks it against
    the zero-insertion definition."""
    c = x.shape[1]
    weight = (f * 4.0).to(x.dtype)[None, None].expand(c, 1, *f.shape)               # [C, 1, 4, 4]
    return F.conv_transpose2d(x, weight, stride=2, padding=(f.shape[0] - 2) // 2, groups=c)


def downsample2d(x: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    """[N, C, H, W] -> [N, C, H/2, W/2]: the filter, then every second pixel (upfirdn2d down=2, padding 1)."""
    k = f.shape[0]
    p = (k - 2) // 2
    return _depthwise(x, f, (p, p, p, p))[:, :, ::2, ::2]


# ---- equalised-learning-rate layers --------------------------------------------------------------------------

class EqualLinear(nn.Module):
    """y = x (W lr_mul / sqrt(in))^T + b lr_mul, with W ~ N(0, 1) / lr_mul at init (Karras et al. 2018, sec. 4.1;
    the lr multiplier as in StyleGAN's mapping network, Karras et al. 2019 appendix C)."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, bias_init: float = 0.0,
                 lr_mul: float = 1.0, activation: bool = False):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_features, in_features) / lr_mul)
        self.bias = nn.Parameter(torch.full((out_features,), float(bias_init))) if bias else None
        self.weight_gain = lr_mul / math.sqrt(in_features)
        self.bias_gain = lr_mul
        self.activation = activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = None if self.bias is None else self.bias * self.bias_gain
        y = F.linear(x, self.weight * self.weight_gain, b)
        return F.leaky_relu(y, 0.2) * LRELU_GAIN if self.activation else y


class EqualConv2d(nn.Module):
    """Equalised conv (gain 1 / sqrt(in k^2)); ``down`` filters then convolves with stride 2 (NVlabs
    conv2d_resample down=2: padding 2 around the [1, 3, 3, 1] filter, then a 3x3 conv without padding)."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int, bias: bool = True, activation: bool = False,
                 down: bool = False):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel, kernel))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self.weight_gain = 1 / math.sqrt(in_channels * kernel * kernel)
        self.activation, self.down, self.kernel = activation, down, kernel
        self.register_buffer("resample_filter", make_filter(), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight * self.weight_gain
        if self.down:
            f = self.resample_filter
            p = (f.shape[0] - 2 + self.kernel - 1) // 2                       # 2 for a 3x3 kernel
            x = _depthwise(x, f, (p, p, p, p))
            y = F.conv2d(x, w, self.bias, stride=2)
        else:
            y = F.conv2d(x, w, self.bias, padding=self.kernel // 2)
        return F.leaky_relu(y, 0.2) * LRELU_GAIN if self.activation else y


def normalize_2nd_moment(x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """x / sqrt(mean(x^2)) per row (StyleGAN's PixelNorm of z and of the label embedding)."""
    return x * (x.square().mean(dim=1, keepdim=True) + eps).rsqrt()


def modulated_conv2d(x: torch.Tensor, weight: torch.Tensor, styles: torch.Tensor, demodulate: bool = True,
                     padding: int = 0, eps: float = 1e-8) -> torch.Tensor:
    """The paper's eq. 1-3 as one batched convolution.

    x [N, I, H, W], weight [O, I, k, k], styles s [N, I]. Modulation w'_ijk = s_i w_ijk (eq. 1); demodulation
    sigma_j = sqrt(sum_ik w'_ijk^2 + eps), w''_ijk = w'_ijk / sigma_j (eq. 3). Since sum_ik w'_ijk x_ik = sum_ik
    w_ijk (s_i x_ik), this is conv(x * s) * (1 / sigma_j): NVlabs' non-fused path, one conv for the batch.
    """
    y = F.conv2d(x * styles[:, :, None, None], weight, padding=padding)                 # [N, O, H', W']
    if demodulate:
        w = weight[None] * styles[:, None, :, None, None]                                # [N, O, I, k, k]
        dcoefs = (w.square().sum(dim=(2, 3, 4)) + eps).rsqrt()                          # [N, O] = 1 / sigma_j
        y = y * dcoefs[:, :, None, None]
    return y


# ---- generator -----------------------------------------------------------------------------------------------

class MappingNetwork(nn.Module):
    """z (and label) -> w: normalised z, concatenated with the normalised label embedding, then ``num_layers``
    FC layers with leaky ReLU at lr_mul (0.01 in config F), tracked average w_avg (decay ``w_avg_beta``)."""

    def __init__(self, z_dim: int, w_dim: int, num_classes: int, num_layers: int, lr_mul: float,
                 w_avg_beta: float = 0.995):
        super().__init__()
        self.z_dim, self.w_dim, self.num_classes = z_dim, w_dim, num_classes
        self.embed = EqualLinear(num_classes, w_dim) if num_classes else None      # one-hot -> [N, w_dim]
        in_dim = z_dim + (w_dim if num_classes else 0)
        dims = [in_dim] + [w_dim] * num_layers
        self.layers = nn.ModuleList(EqualLinear(dims[i], dims[i + 1], lr_mul=lr_mul, activation=True)
                                    for i in range(num_layers))
        self.w_avg_beta = w_avg_beta
        self.register_buffer("w_avg", torch.zeros(w_dim))

    def forward(self, z: torch.Tensor, label: torch.Tensor | None = None, psi: float = 1.0,
                update_w_avg: bool | None = None) -> torch.Tensor:
        x = normalize_2nd_moment(z)                                                     # [N, z_dim]
        if self.embed is not None:
            y = F.one_hot(label, self.num_classes).to(z.dtype)
            x = torch.cat([x, normalize_2nd_moment(self.embed(y))], dim=1)              # [N, z_dim + w_dim]
        for layer in self.layers:
            x = layer(x)
        w = x                                                                            # [N, w_dim]
        if self.training if update_w_avg is None else update_w_avg:
            with torch.no_grad():   # w_avg <- lerp(mean w, w_avg, beta): the centre truncation pulls towards
                self.w_avg.copy_(w.detach().mean(0).lerp(self.w_avg, self.w_avg_beta))
        if psi != 1:
            w = self.w_avg.lerp(w, psi)                                                 # w_avg + psi (w - w_avg)
        return w


class SynthesisLayer(nn.Module):
    """Modulated (+ demodulated) 3x3 conv, optional 2x up-sampling before it, noise x learned strength, bias,
    leaky ReLU x sqrt 2 (paper fig. 2c / 2d)."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, resolution: int, up: bool = False):
        super().__init__()
        self.affine = EqualLinear(w_dim, in_channels, bias_init=1.0)                   # A: styles start at 1
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, 3, 3))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.noise_strength = nn.Parameter(torch.zeros(()))                             # B: learned, starts at 0
        self.register_buffer("noise_const", torch.randn(resolution, resolution))        # for noise_mode="const"
        self.register_buffer("resample_filter", make_filter(), persistent=False)
        self.up, self.resolution = up, resolution

    def forward(self, x: torch.Tensor, w: torch.Tensor, noise_mode: str = "random",
                noise: torch.Tensor | None = None) -> torch.Tensor:
        """``noise`` [N, 1, R, R], when given, is this layer's noise input (a training step draws it through its
        StepContext, so DDP ranks see slices of one global draw); otherwise ``noise_mode`` says: "random" draws
        it here, "const" uses the fixed buffer, "none" adds none."""
        if self.up:
            x = upsample2d(x, self.resample_filter)
        x = modulated_conv2d(x, self.weight, self.affine(w), demodulate=True, padding=1)  # [N, O, R, R]
        if noise is not None:
            x = x + noise.to(x.dtype) * self.noise_strength
        elif noise_mode == "random":
            noise = torch.randn(x.shape[0], 1, self.resolution, self.resolution, device=x.device, dtype=x.dtype)
            x = x + noise * self.noise_strength
        elif noise_mode == "const":
            x = x + self.noise_const.to(x.dtype) * self.noise_strength
        x = x + self.bias[None, :, None, None]
        return F.leaky_relu(x, 0.2) * LRELU_GAIN


class ToRGB(nn.Module):
    """Modulated 1x1 conv without demodulation (style x 1/sqrt(in), NVlabs ToRGBLayer) + bias."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int):
        super().__init__()
        self.affine = EqualLinear(w_dim, in_channels, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, 1, 1))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.weight_gain = 1 / math.sqrt(in_channels)

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        styles = self.affine(w) * self.weight_gain
        return modulated_conv2d(x, self.weight, styles, demodulate=False) + self.bias[None, :, None, None]


class SynthesisBlock(nn.Module):
    """One resolution of the skip generator: (const | up conv0), conv1, toRGB; uses 2 (first: 1) + 1 ws."""

    def __init__(self, in_channels: int, out_channels: int, out_rgb: int, w_dim: int, resolution: int):
        super().__init__()
        self.first = resolution == 4
        if self.first:
            self.const = nn.Parameter(torch.randn(out_channels, 4, 4))
        else:
            self.conv0 = SynthesisLayer(in_channels, out_channels, w_dim, resolution, up=True)
        self.conv1 = SynthesisLayer(out_channels, out_channels, w_dim, resolution)
        self.torgb = ToRGB(out_channels, out_rgb, w_dim)
        self.num_conv = 1 if self.first else 2
        self.register_buffer("resample_filter", make_filter(), persistent=False)

    def forward(self, x: torch.Tensor | None, img: torch.Tensor | None, ws: torch.Tensor, noise_mode: str,
                noise: list[torch.Tensor] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        # ws [N, num_conv + 1, w_dim]: this block's conv styles, then its toRGB's (shared with the next conv0).
        # noise: None, or num_conv tensors [N, 1, r, r] (conv0's, conv1's).
        noise = noise if noise is not None else [None] * self.num_conv
        if self.first:
            x = self.const[None].expand(ws.shape[0], -1, -1, -1)
            x = self.conv1(x, ws[:, 0], noise_mode, noise[0])
        else:
            x = self.conv0(x, ws[:, 0], noise_mode, noise[0])
            x = self.conv1(x, ws[:, 1], noise_mode, noise[1])
        rgb = self.torgb(x, ws[:, self.num_conv])
        img = rgb if img is None else upsample2d(img, self.resample_filter) + rgb
        return x, img


class SynthesisNetwork(nn.Module):
    """ws [N, num_ws, w_dim] -> image [N, C, R, R] (before the output activation)."""

    def __init__(self, w_dim: int, resolution: int, out_channels: int, channel_base: int, channel_max: int):
        super().__init__()
        self.resolutions = [2 ** k for k in range(2, int(math.log2(resolution)) + 1)]   # 4, 8, ..., R
        self.blocks = nn.ModuleList()
        in_ch = 0
        for res in self.resolutions:
            out_ch = channels_at(res, channel_base, channel_max)
            self.blocks.append(SynthesisBlock(in_ch, out_ch, out_channels, w_dim, res))
            in_ch = out_ch
        self.num_ws = sum(b.num_conv for b in self.blocks) + 1                          # 2 log2(R) - 2
        # One noise input per synthesis layer, in order: [1, r, r] each (4x4 once, then twice per resolution).
        self.noise_shapes = [(1, r, r) for b, r in zip(self.blocks, self.resolutions) for _ in range(b.num_conv)]

    def forward(self, ws: torch.Tensor, noise_mode: str = "random",
                noise: list[torch.Tensor] | None = None) -> torch.Tensor:
        if noise is not None and len(noise) != len(self.noise_shapes):
            raise ValueError(f"noise: expected {len(self.noise_shapes)} tensors (one per layer, shapes [N, *s] "
                             f"for s in {self.noise_shapes}), got {len(noise)}.")
        x = img = None
        i = j = 0
        for block in self.blocks:
            block_noise = None if noise is None else noise[j:j + block.num_conv]
            x, img = block(x, img, ws[:, i:i + block.num_conv + 1], noise_mode, block_noise)
            i += block.num_conv
            j += block.num_conv
        return img


def style_groups(num_ws: int) -> dict[str, tuple[int, int]]:
    """Which layers of ws are coarse / middle / fine (Karras et al. 2019, sec. 3.1: coarse 4-8 px, middle
    16-32 px, fine 64 px and up), as [start, stop) index ranges for style mixing."""
    # ws index i feeds resolution 4 * 2**((i + 1) // 2) roughly: layer 0 is 4x4, layers 1-2 8x8, 3-4 16x16...
    coarse_end = min(4, num_ws)        # 4x4 and 8x8
    middle_end = min(8, num_ws)        # 16x16 and 32x32
    return {"coarse": (0, coarse_end), "middle": (coarse_end, middle_end), "fine": (middle_end, num_ws)}


@generators.register("stylegan2")
class StyleGAN2Generator(nn.Module):
    kind = "image"
    test_interface = {"z_dim": 8, "out_channels": 3, "resolution": 16}
    small_kwargs = {"channel_base": 128, "channel_max": 16}
    resolutions = RESOLUTIONS

    def __init__(
        self,
        z_dim: int,
        out_channels: int,
        resolution: int,
        num_classes: int = 0,
        w_dim: int = 0,                 # size of w (0 = z_dim; config F: 512)
        mapping_layers: int = 8,        # FC layers of the mapping network (config F: 8)
        mapping_lr_mul: float = 0.01,   # learning-rate multiplier of the mapping network (config F: 0.01)
        channel_base: int = 32768,      # width at resolution r: min(channel_base / r, channel_max) (config F)
        channel_max: int = 512,
        w_avg_beta: float = 0.995,      # decay of the tracked W average (NVlabs)
        out_activation: str = "tanh",   # tanh | linear (see the module docstring)
    ):
        super().__init__()
        where = "stylegan2 generator"
        check_resolution(resolution, where)
        check_choice(out_activation, OUT_ACTIVATIONS, "out_activation", where)
        for name, v in (("mapping_layers", mapping_layers), ("channel_base", channel_base),
                        ("channel_max", channel_max)):
            if v < 1:
                raise ConfigError(f"{where}: {name} must be at least 1, got {v}.")
        self.z_dim, self.num_classes, self.resolution = z_dim, num_classes, resolution
        self.out_channels = out_channels
        self.w_dim = w_dim or z_dim
        self.out_activation = out_activation
        self.mapping = MappingNetwork(z_dim, self.w_dim, num_classes, mapping_layers, mapping_lr_mul, w_avg_beta)
        self.synthesis = SynthesisNetwork(self.w_dim, resolution, out_channels, channel_base, channel_max)
        self.num_ws = self.synthesis.num_ws

    @property
    def w_avg(self) -> torch.Tensor:
        return self.mapping.w_avg

    def map(self, z: torch.Tensor, label: torch.Tensor | None = None, psi: float = 1.0,
            update_w_avg: bool | None = None) -> torch.Tensor:
        """z [N, z_dim] -> ws [N, num_ws, w_dim] (one w broadcast to every layer), truncated by ``psi``."""
        label = require_label(label, self.num_classes, z.shape[0], "stylegan2 generator")
        w = self.mapping(z, label, psi=psi, update_w_avg=update_w_avg)
        return w[:, None, :].expand(-1, self.num_ws, -1)

    @property
    def noise_shapes(self) -> list[tuple[int, int, int]]:
        """Shapes [1, r, r] of the per-layer noise inputs, in the order ``noise=`` takes them."""
        return self.synthesis.noise_shapes

    def synthesize(self, ws: torch.Tensor, noise_mode: str = "random",
                   noise: list[torch.Tensor] | None = None) -> torch.Tensor:
        """ws [N, num_ws, w_dim] -> images [N, C, R, R] in [-1, 1] (tanh; linear output clamped in eval).
        ``noise``: explicit per-layer noise inputs ([N, *s] for s in ``noise_shapes``), overriding noise_mode."""
        img = self.synthesis(ws, noise_mode, noise)
        if self.out_activation == "tanh":
            return torch.tanh(img)
        return img if self.training else img.clamp(-1, 1)

    def forward(self, z: torch.Tensor, label: torch.Tensor | None = None, psi: float = 1.0,
                noise_mode: str = "random", z_mix: torch.Tensor | None = None,
                mix_cutoff: torch.Tensor | None = None, return_ws: bool = False,
                noise: list[torch.Tensor] | None = None):
        """Images [N, C, R, R] (and ws when ``return_ws``). With ``z_mix`` [N, z_dim] and ``mix_cutoff`` (a [] or
        [N] integer tensor), layers >= cutoff take mapping(z_mix)'s styles (style mixing). ``noise``: explicit
        per-layer noise inputs (see ``synthesize``; training draws them through its StepContext). Everything goes
        through forward so that a DDP wrapper sees every use of G."""
        ws = self.map(z, label, psi)
        if z_mix is not None:
            ws = mix_styles(ws, self.map(z_mix, label, psi), mix_cutoff)
        img = self.synthesize(ws, noise_mode, noise)
        return (img, ws) if return_ws else img


def mix_styles(ws: torch.Tensor, ws_mix: torch.Tensor, cutoff: torch.Tensor) -> torch.Tensor:
    """ws [N, L, w_dim] with layers >= cutoff (a [] or [N] integer tensor) taken from ws_mix; no host sync."""
    layer = torch.arange(ws.shape[1], device=ws.device)                                  # [L]
    take = layer[None, :] >= cutoff.reshape(-1, 1)                                       # [1 or N, L]
    return torch.where(take[:, :, None], ws_mix, ws)


# ---- discriminator -------------------------------------------------------------------------------------------

class MinibatchStd(nn.Module):
    """Minibatch standard deviation (Karras et al. 2018, sec. 3; StyleGAN2 group 4, 1 feature): per group of G
    samples, the std over the group of every activation, averaged over channels and pixels, appended as a
    feature map. Group G = the largest divisor of N that is <= group_size.

    Groups are runs of consecutive rows (NVlabs groups rows m, m + M, m + 2M, ...; the same statistic for i.i.d.
    rows), so that under DDP, where rank r holds rows [r n, (r + 1) n) of the global batch and G divides n, the
    groups are those one process would form on the whole batch (tests/test_stylegan2_ddp.py).

    In eval mode (scoring single images) the feature is the running mean of the training values (a buffer,
    like batch norm's running statistics), so each sample's score does not depend on the rest of its batch.
    """

    mixes_batch_rows = True   # a row's output depends on its group (gan recipe: no joint real/fake D forward)

    def __init__(self, group_size: int = 4, num_features: int = 1, momentum: float = 0.01):
        super().__init__()
        self.group_size, self.num_features, self.momentum = group_size, num_features, momentum
        self.register_buffer("running_std", torch.ones(num_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        f = self.num_features
        if self.training:
            g = min(self.group_size, n)
            while n % g:
                g -= 1
            y = x.reshape(-1, g, f, c // f, h, w)                  # [M, G, F, c, H, W]: rows m G .. m G + G - 1
            y = (y - y.mean(dim=1, keepdim=True)).square().mean(dim=1)   # variance over the group [M, F, c, H, W]
            y = (y + 1e-8).sqrt().mean(dim=(2, 3, 4))              # [M, F]
            with torch.no_grad():
                self.running_std.lerp_(y.detach().mean(0), self.momentum)
            y = y[:, None, :, None, None].expand(-1, g, f, h, w).reshape(n, f, h, w)   # [N, F, H, W]
        else:
            y = self.running_std.to(x.dtype)[None, :, None, None].expand(n, f, h, w)
        return torch.cat([x, y], dim=1)


class DiscriminatorBlock(nn.Module):
    """Residual block (paper fig. 7c): conv3x3, conv3x3 down; skip: filtered down-sampling + 1x1; sum x sqrt(1/2)."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv0 = EqualConv2d(in_channels, in_channels, 3, activation=True)
        self.conv1 = EqualConv2d(in_channels, out_channels, 3, activation=True, down=True)
        self.skip = EqualConv2d(in_channels, out_channels, 1, bias=False)
        self.register_buffer("resample_filter", make_filter(), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skip = self.skip(downsample2d(x, self.resample_filter))
        return (skip + self.conv1(self.conv0(x))) * math.sqrt(0.5)


@discriminators.register("stylegan2")
class StyleGAN2Discriminator(nn.Module):
    kind = "image"
    test_interface = {"in_channels": 3, "resolution": 16}
    small_kwargs = {"channel_base": 128, "channel_max": 16}
    resolutions = RESOLUTIONS

    def __init__(
        self,
        in_channels: int,
        resolution: int,
        num_classes: int = 0,
        channel_base: int = 32768,      # width at resolution r: min(channel_base / r, channel_max) (config F)
        channel_max: int = 512,
        mbstd_group: int = 4,           # minibatch-std group size (StyleGAN2: 4)
        mbstd_features: int = 1,
        cmap_dim: int = 0,              # size of the projection's label embedding (0 = the 4x4 width)
    ):
        super().__init__()
        where = "stylegan2 discriminator"
        check_resolution(resolution, where)
        if mbstd_group < 1 or mbstd_features < 1:
            raise ConfigError(f"{where}: mbstd_group and mbstd_features must be at least 1.")
        self.num_classes, self.resolution = num_classes, resolution
        ch = lambda r: channels_at(r, channel_base, channel_max)                       # noqa: E731
        self.from_rgb = EqualConv2d(in_channels, ch(resolution), 1, activation=True)
        self.blocks = nn.Sequential(*[DiscriminatorBlock(ch(r), ch(r // 2))
                                      for r in [2 ** k for k in range(int(math.log2(resolution)), 2, -1)]])
        c4 = ch(4)
        if c4 % mbstd_features:
            raise ConfigError(f"{where}: mbstd_features ({mbstd_features}) must divide the 4x4 width ({c4}).")
        self.mbstd = MinibatchStd(mbstd_group, mbstd_features)
        self.conv = EqualConv2d(c4 + mbstd_features, c4, 3, activation=True)
        self.fc = EqualLinear(c4 * 16, c4, activation=True)
        self.cmap_dim = (cmap_dim or c4) if num_classes else 0
        self.out = EqualLinear(c4, self.cmap_dim or 1)
        # Label embedding for the projection: one-hot -> EqualLinear -> normalised (StyleGAN2-ADA's D mapping,
        # reduced here to its embedding layer).
        self.embed = EqualLinear(num_classes, self.cmap_dim) if num_classes else None

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """x [N, C, R, R] -> phi(x) [N, cmap_dim or 1] before the projection."""
        x = self.blocks(self.from_rgb(x))                                               # [N, c4, 4, 4]
        x = self.conv(self.mbstd(x))
        return self.out(self.fc(x.flatten(1)))

    def forward(self, x: torch.Tensor, label: torch.Tensor | None = None) -> torch.Tensor:
        label = require_label(label, self.num_classes, x.shape[0], "stylegan2 discriminator")
        phi = self.features(x)
        if self.embed is None:
            return phi[:, 0]                                                            # [N]
        cmap = normalize_2nd_moment(self.embed(F.one_hot(label, self.num_classes).to(x.dtype)))
        return (phi * cmap).sum(dim=1) / math.sqrt(self.cmap_dim)                     # projection, [N]
