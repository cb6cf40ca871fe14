"""WaveGAN and SpecGAN: unconditional (or class-conditional) sound from noise (Donahue et al. 2019).

Both are the GAN recipe's objective (``recipes/gan.py``: the loss, the gradient penalty, D x d_steps) on other
data: WaveGAN on raw waveforms ``batch['audio']`` [N, 1, T], SpecGAN on normalised log-magnitude spectrograms
``batch['image']`` [N, 1, B, B] (the "spectrogram" data kind, made from any audio source). The paper's setting
(sec. 5, appendix table 4): WGAN-GP with lambda = 10, 5 critic updates per generator update, Adam lr 1e-4 and
betas (0.5, 0.9), batch 64, z ~ U(-1, 1)^100 (here N(0, I), gankit's convention for every noise GAN).

Samples are sound in both cases: SpecGAN's sampler de-normalises G's spectrogram with the training set's
per-frequency moments (kept in ``info.extras``, so in every checkpoint), exponentiates it and recovers a phase
with 16 iterations of Griffin-Lim (the paper's setting), so the metrics, ``gankit sample`` and snapshots compare
the two families on the same footing.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .. import audio as dsp
from ..data.audio import denormalise_spectrogram, spec_params
from ..data.base import DataInfo
from ..errors import ConfigError
from ..nets import build_net
from .audio import AudioClips, AudioSampler
from .base import recipes
from .gan import GAN, GANOptions


def _check_conditional(opts: GANOptions, info: DataInfo) -> int:
    if opts.conditional and info.num_classes < 2:
        raise ConfigError(f"Conditional training needs class labels, but {info.name!r} has none (use a folder of "
                          "sound files with one subfolder per class, or the labelled builtins tones / "
                          "spoken-digits).")
    return info.num_classes if opts.conditional else 0


@recipes.register("wavegan")
class WaveGAN(GAN):
    """G(z) -> [N, 1, T] waveform; D(x) -> [N] critic score with phase shuffle (nets/wavegan.py)."""

    data_kinds = ("audio",)
    # Shared tests: the computed tones and short clips, not the espeak-synthesised digits of the preset.
    test_overrides = {"data.spec": "tones", "data.limit": 64, "data.clip_samples": 1024}

    @classmethod
    def from_config(cls, cfg: Any, info: DataInfo) -> "WaveGAN":
        opts: GANOptions = cls.parse_options(cfg.opts)
        num_classes = _check_conditional(opts, info)
        length = int(info.extras["clip_samples"])
        g_iface = {"z_dim": opts.z_dim, "out_channels": 1, "length": length, "num_classes": num_classes}
        d_iface = {"in_channels": 1, "length": length, "num_classes": num_classes}
        nets = {"G": build_net("G", cfg.G, info.kind, g_iface), "D": build_net("D", cfg.D, info.kind, d_iface)}
        recipe = cls(nets, opts, info)
        recipe.d_steps = cfg.d_steps
        return recipe

    @property
    def rate(self) -> int:
        return int(self.info.extras["rate"])

    def _real(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return batch["audio"]                                           # [N, 1, T]

    def decode(self, out: torch.Tensor) -> torch.Tensor:
        """Generator output -> waveforms [N, 1, T] (WaveGAN: the output already is one)."""
        return out

    def fixed_inputs(self, n: int, seed: int, dataset: Any) -> dict[str, Any]:
        # A snapshot plays every clip: a few are enough (at most 16, ~20 s of sound at the default length).
        return super().fixed_inputs(min(n, 16), seed, dataset)

    @torch.no_grad()
    def snapshot(self, fixed: dict[str, Any], nets: nn.ModuleDict) -> list:
        G = nets["G"]
        device = next(G.parameters()).device
        label = fixed.get("label")
        out = G(fixed["z"].to(device), None if label is None else label.to(device))
        nrow = self.num_classes if self.num_classes else max(1, int(len(out) ** 0.5))
        return [AudioClips(self.decode(out.cpu()).clamp(-1, 1), self.rate, nrow=nrow)]

    def samplers(self, nets: nn.ModuleDict | None = None) -> dict[str, AudioSampler]:
        G = (nets if nets is not None else self.nets)["G"]
        return {"default": AudioSampler(G, self.rate, self.info, decode=self.decode)}


@dataclass
class SpecGANOptions(GANOptions):
    griffin_lim_iters: int = 16     # phase recovery iterations when sampling (Donahue et al. 2019, sec. 3.4: 16)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.griffin_lim_iters < 1:
            raise ConfigError(f"griffin_lim_iters must be >= 1, got {self.griffin_lim_iters}.")


@recipes.register("specgan")
class SpecGAN(WaveGAN):
    """G(z) -> [N, 1, B, B] normalised log-magnitude spectrogram; D on spectrograms; sound by Griffin-Lim."""

    Options = SpecGANOptions
    data_kinds = ("spectrogram",)
    test_overrides = {"data.spec": "tones", "data.limit": 64, "data.clip_samples": 4096, "data.spec_bins": 64,
                      "griffin_lim_iters": 4}

    def __init__(self, nets: dict[str, nn.Module], opts: SpecGANOptions, info: DataInfo):
        super().__init__(nets, opts, info)
        # Per-frequency moments of the training set's log |STFT| (data/audio.py): buffers, so they move with
        # the recipe and are saved with it, besides ``info.extras``.
        self.register_buffer("spec_mean", torch.tensor(info.extras["spec_mean"], dtype=torch.float64))
        self.register_buffer("spec_std", torch.tensor(info.extras["spec_std"], dtype=torch.float64))

    @classmethod
    def from_config(cls, cfg: Any, info: DataInfo) -> "SpecGAN":
        opts: SpecGANOptions = cls.parse_options(cfg.opts)
        num_classes = _check_conditional(opts, info)
        g_iface = {"z_dim": opts.z_dim, "out_channels": 1, "resolution": info.resolution,
                   "num_classes": num_classes}
        d_iface = {"in_channels": 1, "resolution": info.resolution, "num_classes": num_classes}
        nets = {"G": build_net("G", cfg.G, info.kind, g_iface), "D": build_net("D", cfg.D, info.kind, d_iface)}
        recipe = cls(nets, opts, info)
        recipe.d_steps = cfg.d_steps
        return recipe

    def _real(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return batch["image"]                                           # [N, 1, B, B]

    def decode(self, out: torch.Tensor) -> torch.Tensor:
        """[N, 1, B, B] in [-1, 1] -> [N, 1, T]: de-normalise, exp, add back the dropped Nyquist bin and last
        frame (zero magnitude / a copy of the previous frame), Griffin-Lim (seeded, so sampling is repeatable)."""
        n_fft, hop, bins = spec_params(self.info)
        length = int(self.info.extras["clip_samples"])
        logmag = denormalise_spectrogram(out[:, 0].cpu(), self.spec_mean.cpu(), self.spec_std.cpu())   # [N, B, B]
        mag = torch.exp(logmag) - 1e-6                                   # inverse of log(|X| + 1e-6)
        mag = F.pad(mag.clamp_min(0), (0, 0, 0, 1))                      # [N, B + 1, B]: the Nyquist bin = 0
        mag = torch.cat([mag, mag[..., -1:]], dim=-1)                    # [N, B + 1, B + 1] frames of the STFT
        gen = torch.Generator().manual_seed(0)
        wave = dsp.griffin_lim(mag, n_fft, hop, length, iters=self.opts.griffin_lim_iters, generator=gen)
        return wave.float()[:, None].clamp(-1, 1)                        # [N, 1, T]
