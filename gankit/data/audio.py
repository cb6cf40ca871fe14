"""Sound data: the ``audio`` and ``spectrogram`` kinds, folders of sound files, and two offline builtins.

    audio        {'audio': float [1, T] in [-1, 1], 'label': int64 [] (if labelled)}   T = data.clip_samples
    spectrogram  {'image': float [1, B, B] in [-1, 1], 'label': ...}   SpecGAN's normalised log-magnitude STFT

Options of the audio kind (``--set data.rate=16000 data.clip_samples=16384``): every clip is resampled to
``rate`` (scipy's polyphase ``resample_poly`` with the exact ratio) and centre-cropped or zero-padded to
``clip_samples`` (WaveGAN: 16384 samples at 16 kHz, about one second; Donahue et al. 2019, sec. 5).

Sources:
- a folder of .wav (.flac, .ogg) files, labels from first-level subfolders (like image folders), with
  train/ test/ subfolders for splits;
- ``tones``: synthetic notes whose truth is computable: a pure tone or a harmonic mixture (fundamental plus
  decaying overtones) at one of 8 known pitches (the label), with a random amplitude and phase and a short fade;
- ``spoken-digits``: "zero" ... "nine" spoken by Debian's ``espeak-ng`` in many voice variants, pitches and
  speeds, an offline stand-in for SC09 (Donahue et al. 2019, sec. 5.1); train and test use disjoint voices.

The spectrogram kind is a conversion of the audio kind (``conversions`` in catalog.py), so a SpecGAN run reads the
same sources: log(|STFT| + 1e-6) with n_fft = 2 B and hop = T / B, the top (Nyquist) bin dropped (B x B), each
frequency normalised to zero mean and unit variance over the training set, clipped at 3 standard deviations and
scaled to [-1, 1] (Donahue et al. 2019, sec. 3.4). The per-frequency moments travel in ``info.extras``
(``spec_mean``, ``spec_std``), hence in every checkpoint, so samples can be turned back into sound.
"""
from __future__ import annotations

import dataclasses
import hashlib
import itertools
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .. import audio as dsp
from ..config import dataclass_from_dict, field_names
from ..errors import ConfigError, DataError
from .base import DataInfo, MemoryDataset, register_kind
from .catalog import PathFormat, builtin, data_root, path_formats, register_conversion
from .folders import split_folder


@dataclass
class AudioOptions:
    rate: int = 16000              # sample rate every clip is resampled to (Hz); WaveGAN: 16 kHz
    clip_samples: int = 16384      # clip length in samples (crop / zero-pad); WaveGAN: 16384
    limit: int = 0                 # use at most this many clips, balanced over classes (0 = all)
    spec_bins: int = 128           # spectrogram kind: B x B log-magnitude pictures (SpecGAN: 128)

    def __post_init__(self) -> None:
        if self.rate < 1000:
            raise ConfigError(f"data.rate must be at least 1000 Hz, got {self.rate}.")
        if self.clip_samples < 64:
            raise ConfigError(f"data.clip_samples must be at least 64, got {self.clip_samples}.")
        if self.limit < 0:
            raise ConfigError(f"data.limit must be >= 0, got {self.limit}.")
        if self.spec_bins < 8 or self.clip_samples % self.spec_bins:
            raise ConfigError(f"data.spec_bins must be >= 8 and divide data.clip_samples ({self.clip_samples}) so "
                              f"that the hop T / B is whole, got {self.spec_bins}.")
        if self.clip_samples // self.spec_bins > 2 * self.spec_bins:
            raise ConfigError(f"data.spec_bins={self.spec_bins} is too small for {self.clip_samples}-sample clips: the "
                              f"hop T / B = {self.clip_samples // self.spec_bins} would exceed the window n_fft = 2 B "
                              f"= {2 * self.spec_bins}; use B >= sqrt(T / 2) (e.g. 128 for 16384, 64 for 4096).")


AUDIO = register_kind("audio", "{'audio': float [1, T] in [-1, 1], 'label': int64 [] (if labelled)}", AudioOptions)
SPECTROGRAM = register_kind("spectrogram", "{'image': float [1, B, B] in [-1, 1] (normalised log |STFT|), "
                                           "'label': int64 [] (if labelled)}")


def audio_options(cfg) -> AudioOptions:
    """The typed audio options of a ``DataConfig`` (keys of other kinds are ignored)."""
    mine = {k: v for k, v in (cfg.options or {}).items() if k in field_names(AudioOptions)}
    return dataclass_from_dict(AudioOptions, mine, "data options of kind 'audio'")


def audio_info(name: str, n: int, opts: AudioOptions, class_names: list[str], about: str, **extras) -> DataInfo:
    return DataInfo(name=name, kind="audio", size=n, channels=1, num_classes=len(class_names),
                    class_names=list(class_names),
                    extras={"rate": opts.rate, "clip_samples": opts.clip_samples, "about": about,
                            "shape_text": f"1x{opts.clip_samples} at {opts.rate} Hz", **extras})


def clips_tensor(clips: list[np.ndarray], length: int) -> torch.Tensor:
    """Clips (float64 [T_i]) -> float32 [N, 1, length], cropped / padded, clamped to [-1, 1]."""
    out = np.stack([dsp.fit_length(c, length) for c in clips]).astype(np.float32)
    return torch.from_numpy(np.clip(out, -1.0, 1.0))[:, None]


def balanced_first(labels: list[int], limit: int) -> list[int]:
    """Indices of at most ``limit`` items taking classes in turn (0 = all), in the original order."""
    if not limit or limit >= len(labels):
        return list(range(len(labels)))
    by_class: dict[int, list[int]] = {}
    for i, y in enumerate(labels):
        by_class.setdefault(y, []).append(i)
    chosen = [i for group in itertools.zip_longest(*by_class.values()) for i in group if i is not None][:limit]
    return sorted(chosen)


# ---- a folder of sound files -------------------------------------------------------------------------------

def list_sounds(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in dsp.WAV_SUFFIXES)


def _is_sound_folder(cfg) -> bool:
    path = Path(cfg.spec)
    if not path.is_dir() or cfg.spec_b:
        return False
    return next((True for p in path.rglob("*") if p.suffix.lower() in dsp.WAV_SUFFIXES), False)


def load_sound_folder(cfg, kind: str = "audio") -> MemoryDataset:
    opts = audio_options(cfg)
    folder = split_folder(Path(cfg.spec), cfg.split)
    files = list_sounds(folder)
    if not files:
        raise DataError(f"No sound file ({', '.join(dsp.WAV_SUFFIXES)}) in folder {str(folder)!r} (searched "
                        "recursively).")
    rel = [f.relative_to(folder).parts for f in files]
    classes = sorted({r[0] for r in rel if len(r) > 1})
    labelled = cfg.labels and len(classes) >= 2
    if labelled and any(len(r) == 1 for r in rel):
        loose = next(str(f) for f, r in zip(files, rel) if len(r) == 1)
        raise DataError(f"Folder {str(folder)!r} has class subfolders ({', '.join(classes[:3])}, ...) and also sound "
                        f"files directly inside it (e.g. {loose}). Move them into a class folder, or set "
                        "data.labels=false.")
    labels = [classes.index(r[0]) if labelled else 0 for r in rel]
    keep = balanced_first(labels, opts.limit)
    clips, rates = [], set()
    for i in keep:
        wave, rate = dsp.read_wav(files[i])
        rates.add(rate)
        clips.append(dsp.resample(wave, rate, opts.rate))
    tensors = {"audio": clips_tensor(clips, opts.clip_samples)}
    if labelled:
        tensors["label"] = torch.tensor([labels[i] for i in keep], dtype=torch.long)
    info = audio_info(cfg.spec, len(keep), opts, classes if labelled else [], "a folder of sound files",
                      source_rates=sorted(rates))
    return MemoryDataset(tensors, info)


path_formats.register("sound-folder")(PathFormat(
    about="a folder of .wav/.flac/.ogg files (recursive; labels from subfolders; train/ test/ for splits), "
          "resampled to data.rate and cut to data.clip_samples",
    matches=_is_sound_folder,
    provides=lambda cfg: ("audio",),
    load=load_sound_folder,
))


# ---- tones: sounds whose content is known ------------------------------------------------------------------

TONE_PITCHES = (220.0, 261.63, 329.63, 392.0, 440.0, 523.25, 659.26, 784.0)   # A3, C4, E4, G4, A4, C5, E5, G5
TONE_COUNTS = {"train": 2048, "test": 512}


def tone(f0: float, rate: int, length: int, harmonics: int, amplitude: float, phase: float,
         fade: int) -> np.ndarray:
    """A note: sum_k a_k sin(2 pi k f0 t + phase) for k = 1..harmonics with a_k = 1 / k (a sawtooth-like timbre),
    scaled to peak ``amplitude``, with linear fades of ``fade`` samples at both ends."""
    t = np.arange(length) / rate
    ks = [k for k in range(1, harmonics + 1) if k * f0 < rate / 2]                 # below Nyquist only
    x = sum(np.sin(2 * np.pi * k * f0 * t + k * phase) / k for k in ks)
    x = x / np.abs(x).max() * amplitude
    ramp = np.minimum(1.0, np.minimum(np.arange(length), np.arange(length)[::-1]) / max(fade, 1))
    return x * ramp


@builtin("tones", kind="audio", about="synthetic notes at 8 known pitches (220-784 Hz; the label), pure or with "
                                      "overtones, random level and phase (2048 train / 512 test)")
def tones(cfg) -> MemoryDataset:
    opts = audio_options(cfg)
    n = opts.limit or TONE_COUNTS[cfg.split]
    rng = np.random.default_rng({"train": 0, "test": 1}[cfg.split])
    labels = np.arange(n) % len(TONE_PITCHES)
    rng.shuffle(labels)
    harmonics = rng.choice([1, 3, 6], size=n)                          # pure tone or harmonic mixtures
    amplitude = rng.uniform(0.3, 0.9, size=n)
    phase = rng.uniform(0, 2 * np.pi, size=n)
    clips = [tone(TONE_PITCHES[y], opts.rate, opts.clip_samples, int(h), a, p, fade=opts.clip_samples // 32)
             for y, h, a, p in zip(labels, harmonics, amplitude, phase)]
    info = audio_info("tones", n, opts, [f"{f:g}Hz" for f in TONE_PITCHES], tones.about,
                      pitches=list(TONE_PITCHES), harmonics=harmonics.tolist())
    return MemoryDataset({"audio": clips_tensor(clips, opts.clip_samples), "label": torch.from_numpy(labels).long()},
                         info)


# ---- spoken digits: espeak-ng --------------------------------------------------------------------------------

DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
# Voice = language voice + variant (espeak-ng --voices=variant); train and test speakers are disjoint (as SC09's).
DIGIT_VOICES = {
    "train": ("en-us+m1", "en-us+m2", "en-us+m3", "en-us+m4", "en-us+f1", "en-us+f2", "en-us+f3", "en+m5",
              "en+m6", "en+f4", "en+klatt", "en+klatt2"),
    "test": ("en-us+m7", "en-us+f5", "en+m8", "en+klatt3"),
}
DIGIT_PITCHES = (35, 50, 65)          # espeak-ng -p (0-99, default 50)
DIGIT_SPEEDS = (140, 175)             # espeak-ng -s words per minute (default 175)
ESPEAK_RATE = 22050


def espeak_binary() -> str:
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise DataError("The spoken-digits builtins synthesise speech with espeak-ng, which is not installed. "
                        "Install it with `sudo apt-get install espeak-ng` (Debian/Ubuntu), `brew install "
                        "espeak-ng` (macOS) or from https://github.com/espeak-ng/espeak-ng, or train on a folder "
                        "of .wav files instead.")
    return exe


def espeak_version() -> str:
    out = subprocess.run([espeak_binary(), "--version"], capture_output=True, text=True, check=False).stdout
    return out.strip()


def synthesise(word: str, voice: str, pitch: int, speed: int, path: Path) -> None:
    """Speak ``word`` with espeak-ng into a 22,050 Hz mono wav at ``path``."""
    result = subprocess.run([espeak_binary(), "-v", voice, "-p", str(pitch), "-s", str(speed), "-w", str(path),
                             word], capture_output=True, text=True, check=False)
    if result.returncode != 0 or not path.exists():
        raise DataError(f"espeak-ng could not say {word!r} with voice {voice!r}: {result.stderr.strip()}")


def utterances(split: str, voices: tuple[str, ...] | None = None) -> list[tuple[int, str, int, int]]:
    """(digit, voice, pitch, speed) of every utterance of ``split``, digits varying fastest (so the first N are
    balanced over classes)."""
    voices = voices or DIGIT_VOICES[split]
    combos = itertools.product(voices, DIGIT_PITCHES, DIGIT_SPEEDS)
    return [(d, v, p, s) for v, p, s in combos for d in range(len(DIGIT_WORDS))]


def synthesised_set(root: Path, name: str, items: list[tuple[int, str, int, int]]) -> list[Path]:
    """The wav files of ``items`` under ``root/name/``, synthesised once and cached (espeak-ng is deterministic
    for a given version; the cache key holds the version)."""
    version = espeak_version()
    folder = root / name / hashlib.sha1(version.encode()).hexdigest()[:8]
    folder.mkdir(parents=True, exist_ok=True)
    manifest = folder / "espeak-version.txt"
    if not manifest.exists():
        manifest.write_text(version + "\n")
    paths = []
    for digit, voice, pitch, speed in items:
        path = folder / f"{DIGIT_WORDS[digit]}_{voice.replace('+', '-')}_p{pitch}_s{speed}.wav"
        if not path.exists():
            tmp = path.with_suffix(".tmp.wav")
            synthesise(DIGIT_WORDS[digit], voice, pitch, speed, tmp)
            tmp.replace(path)                   # atomic: a half-written file is never cached
        paths.append(path)
    return paths


@builtin("spoken-digits", kind="audio",
         about="'zero'...'nine' by espeak-ng: 12 train / 4 test voices x 3 pitches x 2 speeds (720 / 240 clips), "
               "an offline SC09; synthesised once under the data root")
def spoken_digits(cfg) -> MemoryDataset:
    opts = audio_options(cfg)
    items = utterances(cfg.split)
    keep = balanced_first([d for d, *_ in items], opts.limit)
    items = [items[i] for i in keep]
    paths = synthesised_set(data_root(cfg), "spoken-digits", items)
    clips = []
    for path in paths:
        wave, rate = dsp.read_wav(path)
        clips.append(dsp.resample(wave, rate, opts.rate))
    info = audio_info("spoken-digits", len(items), opts, list(DIGIT_WORDS), spoken_digits.about,
                      espeak=espeak_version(), voices=sorted({v for _, v, _, _ in items}))
    return MemoryDataset({"audio": clips_tensor(clips, opts.clip_samples),
                          "label": torch.tensor([d for d, *_ in items], dtype=torch.long)}, info)


# ---- audio -> spectrogram (SpecGAN) ------------------------------------------------------------------------

SPEC_CLIP_STD = 3.0           # SpecGAN clips normalised values at 3 standard deviations, then scales to [-1, 1]


def spec_params(info: DataInfo) -> tuple[int, int, int]:
    """(n_fft, hop, bins) of a spectrogram dataset: n_fft = 2 B (B + 1 bins, the top one dropped), hop = T / B."""
    bins, clip = int(info.extras["spec_bins"]), int(info.extras["clip_samples"])
    return 2 * bins, clip // bins, bins


def log_spectrogram(audio: torch.Tensor, n_fft: int, hop: int, bins: int) -> torch.Tensor:
    """[N, 1, T] -> log |STFT| [N, 1, B, B]: B frequencies (Nyquist bin dropped) x B frames (the last dropped)."""
    spec = dsp.log_magnitude(audio[:, 0].double(), n_fft, hop)                 # [N, B + 1, T / hop + 1]
    return spec[:, None, :bins, :bins]


def normalise_spectrogram(logmag: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """Per-frequency (x - mean) / std, clipped to +-3 and divided by 3: [N, 1, B, B] in [-1, 1]."""
    z = (logmag - mean[:, None]) / std[:, None]
    return (z.clamp(-SPEC_CLIP_STD, SPEC_CLIP_STD) / SPEC_CLIP_STD).float()


def denormalise_spectrogram(image: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """Inverse of ``normalise_spectrogram`` (up to the clipping): [N, 1, B, B] -> log |STFT|."""
    return image.double() * SPEC_CLIP_STD * std[:, None].to(image.device) + mean[:, None].to(image.device)


def audio_to_spectrogram(ds: MemoryDataset, cfg) -> MemoryDataset:
    """The spectrogram kind of an audio dataset, normalised with its own per-frequency moments (those of the
    training set for a training run; a model keeps them in its checkpoint and uses them to turn samples back into
    sound)."""
    opts = audio_options(cfg)
    info = dataclasses.replace(ds.info, extras={**ds.info.extras, "spec_bins": opts.spec_bins})
    n_fft, hop, bins = spec_params(info)
    logmag = log_spectrogram(ds.tensors["audio"], n_fft, hop, bins)                # [N, 1, B, B] float64
    moments_from = logmag
    mean = moments_from.mean(dim=(0, 1, 3))                                         # [B]
    std = moments_from.std(dim=(0, 1, 3)).clamp_min(1e-3)                          # [B]
    image = normalise_spectrogram(logmag, mean, std)
    info = dataclasses.replace(info, kind="spectrogram", resolution=bins,
                               extras={**info.extras, "spec_mean": mean.tolist(), "spec_std": std.tolist(),
                                       "n_fft": n_fft, "hop": hop, "shape_text": f"1x{bins}x{bins} log |STFT|"})
    tensors = {"image": image, **{k: v for k, v in ds.tensors.items() if k not in ("audio",)}}
    return MemoryDataset(tensors, info)


register_conversion("audio", "spectrogram")(audio_to_spectrogram)
