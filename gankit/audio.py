"""Sound: wav files, resampling, clips, spectrograms, mel filters and Griffin-Lim, the one place for audio signal code.

Conventions (like ``images.py`` for pictures): a waveform is float [-1, 1], shape [T] for one clip or
[N, 1, T] for a batch (one channel, mono); a file is 16-bit PCM (or float) WAV read and written with
``soundfile``. torchaudio is not used: it does not install beside the local torch, and what gankit needs is small:

    read_wav / wav_bytes / write_wav     soundfile I/O (writes are atomic, through ``gankit.io``)
    resample                             scipy.signal.resample_poly with the exact rational ratio new/old
    fit_length                           centre-crop or zero-pad to a clip length
    stft_magnitude / log_magnitude       torch.stft with a periodic Hann window
    mel_filterbank                       triangular filters on the HTK mel scale (O'Shaughnessy 1987)
    griffin_lim                          phase recovery from a magnitude (Griffin & Lim 1984; the "fast" momentum
                                         variant of Perraudin et al. 2013, alpha = 0.99 as in librosa)
    spectrogram_image                    a dB picture of a clip for grids and snapshots
    silence_rate / clipping_rate         per-clip quality flags used as metrics
"""
from __future__ import annotations

import io
import math
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch

from .errors import DataError
from .io import atomic_write_bytes

WAV_SUFFIXES = (".wav", ".flac", ".ogg")


# ---- files ---------------------------------------------------------------------------------------------------

def _soundfile():
    try:
        import soundfile
    except ImportError:  # pragma: no cover - soundfile is a dependency of the [audio] extra
        raise DataError("Audio files need the soundfile package: pip install 'gankit[audio]' (or pip install "
                        "soundfile).") from None
    return soundfile


def read_wav(path: str | Path) -> tuple[np.ndarray, int]:
    """A sound file -> (float64 mono samples [T] in [-1, 1], sample rate). Multi-channel files are averaged."""
    sf = _soundfile()
    try:
        data, rate = sf.read(str(path), dtype="float64", always_2d=True)   # [T, C]
    except (RuntimeError, sf.LibsndfileError) as e:
        raise DataError(f"Cannot read sound file {str(path)!r}: {e}") from None
    return data.mean(axis=1), int(rate)


def wav_bytes(wave: torch.Tensor | np.ndarray, rate: int, subtype: str = "PCM_16") -> bytes:
    """[T] (or [1, T]) float in [-1, 1] -> the bytes of a mono WAV file (values outside [-1, 1] are clipped)."""
    sf = _soundfile()
    x = wave.detach().cpu().double().numpy() if isinstance(wave, torch.Tensor) else np.asarray(wave, np.float64)
    x = np.clip(x.reshape(-1), -1.0, 1.0)
    buf = io.BytesIO()
    sf.write(buf, x, int(rate), format="WAV", subtype=subtype)
    return buf.getvalue()


def write_wav(path: str | Path, wave: torch.Tensor | np.ndarray, rate: int) -> Path:
    path = Path(path)
    atomic_write_bytes(path, wav_bytes(wave, rate))
    return path


# ---- resampling and clips ----------------------------------------------------------------------------------------

def resample(x: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    """Resample [T] from ``rate_in`` to ``rate_out`` by the exact rational factor up/down (polyphase FIR with a
    Kaiser window, scipy.signal.resample_poly): a 440 Hz tone stays exactly 440 Hz; the length becomes
    ceil(T * up / down)."""
    if rate_in == rate_out:
        return np.asarray(x, np.float64)
    from scipy.signal import resample_poly
    ratio = Fraction(int(rate_out), int(rate_in))          # reduced: 16000/22050 -> 320/441
    return resample_poly(np.asarray(x, np.float64), ratio.numerator, ratio.denominator)


def fit_length(x: np.ndarray | torch.Tensor, length: int):
    """Centre-crop a longer clip to ``length`` samples, or zero-pad a shorter one at the end (WaveGAN's loader
    pads short SC09 utterances with silence)."""
    n = x.shape[-1]
    if n >= length:
        start = (n - length) // 2
        return x[..., start:start + length]
    pad = length - n
    if isinstance(x, torch.Tensor):
        return torch.nn.functional.pad(x, (0, pad))
    return np.pad(x, [(0, 0)] * (x.ndim - 1) + [(0, pad)])


# ---- spectrograms --------------------------------------------------------------------------------------------

def stft(x: torch.Tensor, n_fft: int, hop: int) -> torch.Tensor:
    """[..., T] -> complex [..., n_fft // 2 + 1, frames] with a periodic Hann window, centred frames (reflect)."""
    window = torch.hann_window(n_fft, dtype=x.dtype, device=x.device)
    shape = x.shape
    spec = torch.stft(x.reshape(-1, shape[-1]), n_fft, hop_length=hop, win_length=n_fft, window=window,
                      center=True, pad_mode="reflect", return_complex=True)
    return spec.reshape(*shape[:-1], *spec.shape[-2:])


def istft(spec: torch.Tensor, n_fft: int, hop: int, length: int) -> torch.Tensor:
    """Inverse of ``stft`` (least-squares overlap-add): complex [..., F, frames] -> [..., length]."""
    window = torch.hann_window(n_fft, dtype=spec.real.dtype, device=spec.device)
    shape = spec.shape
    x = torch.istft(spec.reshape(-1, *shape[-2:]), n_fft, hop_length=hop, win_length=n_fft, window=window,
                    center=True, length=length)
    return x.reshape(*shape[:-2], length)


def stft_magnitude(x: torch.Tensor, n_fft: int, hop: int) -> torch.Tensor:
    """|STFT| [..., n_fft // 2 + 1, frames]."""
    return stft(x, n_fft, hop).abs()


def log_magnitude(x: torch.Tensor, n_fft: int, hop: int, eps: float = 1e-6) -> torch.Tensor:
    """log(|STFT| + eps), SpecGAN's representation (Donahue et al. 2019, sec. 3.4)."""
    return torch.log(stft_magnitude(x, n_fft, hop) + eps)


def hz_to_mel(f):
    """HTK mel scale: m = 2595 log10(1 + f / 700)."""
    return 2595.0 * np.log10(1.0 + np.asarray(f, np.float64) / 700.0)


def mel_to_hz(m):
    return 700.0 * (10.0 ** (np.asarray(m, np.float64) / 2595.0) - 1.0)


def mel_filterbank(n_mels: int, n_fft: int, rate: int, f_min: float = 0.0, f_max: float | None = None
                   ) -> torch.Tensor:
    """[n_mels, n_fft // 2 + 1] triangular filters, centres equally spaced in mel between f_min and f_max.

    Filter m rises linearly from centre m-1 to 1 at centre m and falls to 0 at centre m+1 (in Hz, on the FFT
    bin frequencies k * rate / n_fft); peaks are 1 (no area normalisation). ``mel = fb @ |STFT|^2``.
    """
    f_max = rate / 2 if f_max is None else f_max
    if not 0 <= f_min < f_max <= rate / 2:
        raise ValueError(f"mel filters need 0 <= f_min < f_max <= rate / 2, got {f_min}, {f_max}, rate {rate}")
    bins = np.arange(n_fft // 2 + 1) * rate / n_fft                                  # [F] Hz
    edges = mel_to_hz(np.linspace(hz_to_mel(f_min), hz_to_mel(f_max), n_mels + 2))  # [M + 2] Hz
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]      # [M, 1]
    rising = (bins[None] - lower) / (centre - lower)
    falling = (upper - bins[None]) / (upper - centre)
    return torch.from_numpy(np.maximum(0.0, np.minimum(rising, falling))).float()     # [M, F]


def griffin_lim(magnitude: torch.Tensor, n_fft: int, hop: int, length: int, iters: int = 32,
                momentum: float = 0.99, generator: torch.Generator | None = None) -> torch.Tensor:
    """A waveform [..., length] whose STFT magnitude approximates ``magnitude`` [..., F, frames].

    Griffin & Lim 1984, eq. 6: alternate x = ISTFT(|S| e^{i phase}) and phase = angle(STFT(x)), which never
    increases the spectral distance; with momentum (Perraudin et al. 2013, "fast Griffin-Lim"): the new complex
    estimate is extrapolated by alpha times its change before taking the angle. Starts from random phases
    (seeded ``generator``), as SpecGAN does.
    """
    mag = magnitude.to(torch.float64) if magnitude.dtype == torch.float64 else magnitude.float()
    phase = torch.rand(mag.shape, generator=generator, dtype=mag.dtype) * (2 * math.pi)
    angles = torch.polar(torch.ones_like(mag), phase.to(mag.device))
    previous = torch.zeros_like(angles)
    for _ in range(iters):
        x = istft(mag * angles, n_fft, hop, length)
        rebuilt = stft(x, n_fft, hop)
        accelerated = rebuilt - (momentum / (1 + momentum)) * previous if momentum else rebuilt
        previous = rebuilt
        angles = accelerated / accelerated.abs().clamp_min(1e-12)
    return istft(mag * angles, n_fft, hop, length)


def spectrogram_image(wave: torch.Tensor, n_fft: int = 256, hop: int = 128, top_db: float = 80.0) -> torch.Tensor:
    """[N, 1, T] waveforms -> [N, 1, F, frames] pictures in [-1, 1]: dB magnitude, low frequencies at the bottom,
    the loudest bin of each clip at 1 and ``top_db`` below it at -1."""
    mag = stft_magnitude(wave.float().reshape(len(wave), -1), n_fft, hop)                 # [N, F, frames]
    db = 20 * torch.log10(mag.clamp_min(1e-8))
    top = db.amax(dim=(1, 2), keepdim=True)
    img = ((db - top).clamp_min(-top_db) / top_db) * 2 + 1                                   # [-1, 1]
    return img.flip(1).unsqueeze(1)


# ---- clip statistics ----------------------------------------------------------------------------------------

def rms_db(wave: torch.Tensor) -> torch.Tensor:
    """Root-mean-square level of each clip [N, 1, T] in dB relative to full scale: [N]."""
    rms = wave.float().reshape(len(wave), -1).pow(2).mean(1).sqrt()
    return 20 * torch.log10(rms.clamp_min(1e-10))


def silence_rate(wave: torch.Tensor, threshold_db: float = -40.0) -> float:
    """Fraction of clips whose RMS level is below ``threshold_db`` dBFS (a generator that outputs silence)."""
    return float((rms_db(wave) < threshold_db).float().mean())


def clipping_rate(wave: torch.Tensor, level: float = 0.999) -> float:
    """Fraction of samples at or beyond +-``level`` (a saturated tanh output clips when quantised)."""
    return float((wave.abs() >= level).double().mean())


def dominant_frequency(wave: torch.Tensor | np.ndarray, rate: int) -> float:
    """Frequency in Hz of the largest peak of the magnitude spectrum of [T] (Hann window, with parabolic
    interpolation between bins for sub-bin accuracy)."""
    x = wave.detach().cpu().double().numpy() if isinstance(wave, torch.Tensor) else np.asarray(wave, np.float64)
    x = x.reshape(-1)
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    k = int(np.argmax(spectrum[1:-1])) + 1
    a, b, c = np.log(spectrum[k - 1:k + 2] + 1e-300)
    offset = 0.5 * (a - c) / (a - 2 * b + c) if (a - 2 * b + c) != 0 else 0.0
    return (k + offset) * rate / len(x)
