"""Voice conversion data: the ``voice`` kind, WORLD features, and the offline two-speaker builtin ``digit-voices``.

    voice   {'a': float [D, F], 'b': float [D, F]}   D mel-cepstral coefficients x F frames of speaker A and of
            speaker B, drawn independently (non-parallel training, as CycleGAN-VC; Kaneko & Kameoka 2018)

Features (Kaneko et al. 2018 sec. 4.1 / 2019 sec. 4.1): the WORLD vocoder (Morise et al. 2016; ``pyworld``) with a
5 ms frame period gives F0 (DIO + StoneMask), the spectral envelope (CheapTrick) and aperiodicity (D4C); the
envelope becomes D = ``mcep_dim`` mel-cepstral coefficients (``pysptk.sp2mc``, all-pass constant alpha for the
sample rate). Each coefficient is normalised to zero mean and unit variance per speaker over the training frames;
F0 is converted by the log-Gaussian normalised transform (Liu et al. 2007): log f0_B = (log f0_A - mu_A) / s_A x
s_B + mu_B; aperiodicity is kept. These statistics travel in ``info.extras`` (so in every checkpoint), which is
all that ``gankit convert`` needs besides the generator. Training segments are ``frames`` consecutive frames
(VC2: 128), cut with a hop of frames / 4 (utterances shorter than a segment are padded by reflection).

``digit-voices``: espeak-ng says strings of three digits in two voices (A: a low male voice, B: a high female
voice). The training split gives each speaker DIFFERENT strings (non-parallel, as the method requires); the test
split gives both speakers the SAME strings, so mel-cepstral distortion to the true target utterance can be
measured after dynamic time warping (``parallel`` attribute of the test dataset).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .. import audio as dsp
from ..config import dataclass_from_dict, field_names
from ..errors import ConfigError, DataError
from .audio import DIGIT_WORDS, espeak_version, synthesise
from .base import DataInfo, MemoryDataset, register_kind
from .catalog import PathFormat, builtin, data_root, path_formats
from .storage import make_unpaired


@dataclass
class VoiceOptions:
    vc_rate: int = 16000           # sample rate of the WORLD analysis (Hz); CycleGAN-VC: 16 kHz
    mcep_dim: int = 36             # mel-cepstral coefficients incl. c0 (VC2: 35 + energy; VC1: 24)
    frames: int = 128              # frames per training segment (VC2: 128); must be a multiple of 4
    frame_period: float = 5.0      # WORLD frame period in ms
    utterances: int = 40           # digit-voices: utterances per speaker (train; test gets a quarter, at least 2)

    def __post_init__(self) -> None:
        if self.frames < 8 or self.frames % 4:
            raise ConfigError(f"data.frames must be a multiple of 4 and >= 8, got {self.frames}.")
        if not 4 <= self.mcep_dim <= 60:
            raise ConfigError(f"data.mcep_dim must be in [4, 60], got {self.mcep_dim}.")
        if self.utterances < 2:
            raise ConfigError(f"data.utterances must be >= 2, got {self.utterances}.")


VOICE = register_kind("voice", "{'a': float [D, F], 'b': float [D, F]}: normalised mel-cepstra of speakers A and B "
                               "(non-parallel)", VoiceOptions)


def voice_options(cfg) -> VoiceOptions:
    mine = {k: v for k, v in (cfg.options or {}).items() if k in field_names(VoiceOptions)}
    return dataclass_from_dict(VoiceOptions, mine, "data options of kind 'voice'")


# ---- WORLD ---------------------------------------------------------------------------------------------------

def _world():
    import warnings
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")          # pysptk 1.0.1 imports the deprecated pkg_resources
            import pysptk
            import pyworld
    except ImportError:
        raise DataError("Voice conversion needs the WORLD vocoder and SPTK: pip install 'gankit[audio]' (pyworld, "
                        "pysptk; both build from source and need a C compiler).") from None
    return pyworld, pysptk


def mcep_alpha(rate: int) -> float:
    """All-pass constant that best approximates the mel scale at ``rate`` (pysptk.util.mcepalpha: 0.41 at 16 kHz)."""
    _, pysptk = _world()
    return float(pysptk.util.mcepalpha(rate))


def world_features(wave: np.ndarray, rate: int, mcep_dim: int, frame_period: float) -> dict[str, np.ndarray]:
    """[T] -> {'f0': [F], 'mcep': [F, D], 'ap': [F, fft/2+1]} (float64): DIO + StoneMask, CheapTrick, D4C, sp2mc."""
    pyworld, pysptk = _world()
    x = np.ascontiguousarray(wave, dtype=np.float64)
    f0, t = pyworld.dio(x, rate, frame_period=frame_period, f0_floor=60.0, f0_ceil=600.0)
    f0 = pyworld.stonemask(x, f0, t, rate)
    sp = pyworld.cheaptrick(x, f0, t, rate)
    ap = pyworld.d4c(x, f0, t, rate)
    mcep = pysptk.sp2mc(sp, order=mcep_dim - 1, alpha=mcep_alpha(rate))
    return {"f0": f0, "mcep": mcep, "ap": ap}


def world_synthesis(f0: np.ndarray, mcep: np.ndarray, ap: np.ndarray, rate: int, frame_period: float) -> np.ndarray:
    """WORLD resynthesis from F0 [F], mel-cepstra [F, D] and aperiodicity [F, fft/2+1] -> [T] float64."""
    pyworld, pysptk = _world()
    fftlen = pyworld.get_cheaptrick_fft_size(rate)
    sp = pysptk.mc2sp(np.ascontiguousarray(mcep, dtype=np.float64), alpha=mcep_alpha(rate), fftlen=fftlen)
    return pyworld.synthesize(np.ascontiguousarray(f0), sp, np.ascontiguousarray(ap), rate, frame_period)


def log_f0_stats(f0s: list[np.ndarray]) -> tuple[float, float]:
    """Mean and std of log F0 over the voiced frames (f0 > 0) of a speaker's utterances."""
    voiced = np.concatenate([np.log(f[f > 0]) for f in f0s])
    if len(voiced) < 2:
        raise DataError("No voiced frames found: cannot estimate the speaker's F0 statistics.")
    return float(voiced.mean()), float(voiced.std())


def convert_f0(f0: np.ndarray, source: tuple[float, float], target: tuple[float, float]) -> np.ndarray:
    """Log-Gaussian normalised F0 transform (Liu et al. 2007): voiced frames only, unvoiced stay 0."""
    out = np.zeros_like(f0)
    voiced = f0 > 0
    out[voiced] = np.exp((np.log(f0[voiced]) - source[0]) / source[1] * target[1] + target[0])
    return out


def segments(mcep: np.ndarray, frames: int) -> list[np.ndarray]:
    """[F, D] -> segments [D, frames] with a hop of frames / 4 (short utterances padded by reflection / wrap)."""
    x = mcep.T                                                                         # [D, F]
    if x.shape[1] < frames:
        x = np.pad(x, ((0, 0), (0, frames - x.shape[1])), mode="wrap")
    hop = frames // 4
    return [x[:, s:s + frames] for s in range(0, x.shape[1] - frames + 1, hop)]


def voice_dataset(name: str, feats_a: list[dict], feats_b: list[dict], opts: VoiceOptions, about: str,
                  parallel: list[tuple[dict, dict]] | None = None, **extras) -> MemoryDataset:
    """Normalised training segments of two speakers as an unpaired voice dataset; statistics in info.extras."""
    stats = {}
    tensors = {}
    for side, feats in (("a", feats_a), ("b", feats_b)):
        frames_all = np.concatenate([f["mcep"] for f in feats])                             # [sum F, D]
        mean, std = frames_all.mean(0), frames_all.std(0) + 1e-8
        stats[f"mcep_mean_{side}"], stats[f"mcep_std_{side}"] = mean.tolist(), std.tolist()
        stats[f"lf0_mean_{side}"], stats[f"lf0_std_{side}"] = log_f0_stats([f["f0"] for f in feats])
        segs = [s for f in feats for s in segments((f["mcep"] - mean) / std, opts.frames)]
        tensors[side] = MemoryDataset({"image": torch.from_numpy(np.stack(segs)).float()},
                                      DataInfo(name=f"{name}:{side}", kind="voice", size=len(segs)))
    info = DataInfo(name=name, kind="voice", size=max(len(tensors["a"]), len(tensors["b"])), channels=opts.mcep_dim,
                    extras={"vc_rate": opts.vc_rate, "mcep_dim": opts.mcep_dim, "frames": opts.frames,
                            "frame_period": opts.frame_period, "mcep_alpha": mcep_alpha(opts.vc_rate),
                            "about": about, "shape_text": f"{opts.mcep_dim}x{opts.frames} mel-cepstra",
                            **stats, **extras})
    ds = make_unpaired(tensors["a"], tensors["b"], info)
    ds.parallel = parallel or []                 # [(features of A, features of B)] saying the same words
    ds.sources = feats_a[:2]                     # whole utterances of A (snapshots play them converted)
    return ds


# ---- digit-voices ----------------------------------------------------------------------------------------------

VOICE_A, VOICE_B = ("en-us+m3", 35), ("en-us+f2", 70)      # (espeak voice + variant, pitch 0-99)


def digit_strings(n: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    return [" ".join(DIGIT_WORDS[d] for d in rng.integers(0, 10, size=3)) for _ in range(n)]


def _speak_all(root: Path, texts: list[str], voice: tuple[str, int], rate: int, opts: VoiceOptions) -> list[dict]:
    import hashlib
    folder = root / "digit-voices" / hashlib.sha1(espeak_version().encode()).hexdigest()[:8]
    folder.mkdir(parents=True, exist_ok=True)
    feats = []
    for text in texts:
        path = folder / f"{voice[0].replace('+', '-')}_p{voice[1]}_{text.replace(' ', '-')}.wav"
        if not path.exists():
            tmp = path.with_suffix(".tmp.wav")
            synthesise(text, voice[0], voice[1], 175, tmp)
            tmp.replace(path)
        feats.append({"text": text, **cached_world_features(path, rate, opts)})
    return feats


def cached_world_features(path: Path, rate: int, opts: VoiceOptions) -> dict[str, np.ndarray]:
    """WORLD features of a wav file resampled to ``rate``, cached beside it (the analysis takes about a second
    per utterance on a CPU; the cache key holds rate, order and frame period)."""
    cache = path.with_name(f"{path.stem}.world-{rate}-{opts.mcep_dim}-{opts.frame_period:g}.npz")
    if cache.exists():
        with np.load(cache) as z:
            return {k: z[k] for k in z.files}
    wave, sr = dsp.read_wav(path)
    wave = dsp.resample(wave, sr, rate)
    feats = {"wave": wave, **world_features(wave, rate, opts.mcep_dim, opts.frame_period)}
    tmp = cache.with_suffix(".tmp.npz")
    np.savez(tmp, **feats)
    tmp.replace(cache)
    return feats


@builtin("digit-voices", kind="voice",
         about="two espeak-ng speakers (A low male, B high female) saying three-digit strings: non-parallel train "
               "(40 strings each), parallel test (10) for MCD; WORLD mel-cepstra")
def digit_voices(cfg) -> MemoryDataset:
    opts = voice_options(cfg)
    root = data_root(cfg)
    if cfg.split == "train":
        n = opts.utterances
        texts = digit_strings(2 * n, seed=0)
        texts_a, texts_b = texts[:n], texts[n:]                                    # disjoint: non-parallel
    else:
        texts_a = texts_b = digit_strings(max(2, opts.utterances // 4), seed=1)    # parallel test strings
    feats_a = _speak_all(root, texts_a, VOICE_A, opts.vc_rate, opts)
    feats_b = _speak_all(root, texts_b, VOICE_B, opts.vc_rate, opts)
    parallel = list(zip(feats_a, feats_b)) if cfg.split != "train" else []
    return voice_dataset("digit-voices", feats_a, feats_b, opts, digit_voices.about, parallel=parallel,
                         speakers=[f"{VOICE_A[0]} p{VOICE_A[1]}", f"{VOICE_B[0]} p{VOICE_B[1]}"])


# ---- two folders of sound files: speaker A (--data) and speaker B (--data-b) -------------------------------------

def _sound_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in dsp.WAV_SUFFIXES)


def _is_two_speaker_folders(cfg) -> bool:
    a, b = Path(cfg.spec), Path(cfg.spec_b) if cfg.spec_b else None
    return bool(b) and a.is_dir() and b.is_dir() and bool(_sound_files(a)) and bool(_sound_files(b))


def load_two_speakers(cfg, kind: str = "voice") -> MemoryDataset:
    """Speaker A's files under --data, B's under --data-b (train/ test/ subfolders for splits). Files with the same
    name in both folders are the same words (parallel): the test split's MCD uses them."""
    from .folders import split_folder
    opts = voice_options(cfg)
    folders = [split_folder(Path(p), cfg.split) for p in (cfg.spec, cfg.spec_b)]
    feats = []
    for folder in folders:
        files = _sound_files(folder)
        if not files:
            raise DataError(f"No sound files ({', '.join(dsp.WAV_SUFFIXES)}) in {str(folder)!r}.")
        side = []
        for path in files:
            wave, sr = dsp.read_wav(path)
            wave = dsp.resample(wave, sr, opts.vc_rate)
            side.append({"name": path.name, "wave": wave,
                         **world_features(wave, opts.vc_rate, opts.mcep_dim, opts.frame_period)})
        feats.append(side)
    by_name = {f["name"]: f for f in feats[1]}
    parallel = [(f, by_name[f["name"]]) for f in feats[0] if f["name"] in by_name]
    return voice_dataset(f"{cfg.spec}+{cfg.spec_b}", feats[0], feats[1], opts,
                         "two folders of one speaker's sound files each", parallel=parallel)


path_formats.register("two-speaker-folders")(PathFormat(
    about="--data A/ --data-b B/ with one speaker's sound files each (voice conversion; same file names = same "
          "words, used for MCD on the test split)",
    matches=_is_two_speaker_folders,
    provides=lambda cfg: ("voice",),
    load=load_two_speakers,
))


def dtw_path(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Dynamic time warping of [Fx, D] and [Fy, D] with Euclidean frame distances and steps (1,0), (0,1), (1,1):
    the index pairs of the cheapest monotonic alignment from (0, 0) to (Fx-1, Fy-1)."""
    cost = np.sqrt(((x[:, None, :] - y[None, :, :]) ** 2).sum(-1))                  # [Fx, Fy]
    acc = np.full((len(x) + 1, len(y) + 1), np.inf)
    acc[0, 0] = 0.0
    for i in range(1, len(x) + 1):
        row, prev = acc[i], acc[i - 1]
        c = cost[i - 1]
        for j in range(1, len(y) + 1):
            row[j] = c[j - 1] + min(prev[j], row[j - 1], prev[j - 1])
    i, j, path = len(x), len(y), []
    while i > 0 and j > 0:
        path.append((i - 1, j - 1))
        step = int(np.argmin([acc[i - 1, j - 1], acc[i - 1, j], acc[i, j - 1]]))
        i, j = (i - 1, j - 1) if step == 0 else (i - 1, j) if step == 1 else (i, j - 1)
    path.reverse()
    idx = np.array(path)
    return idx[:, 0], idx[:, 1]


MCD_CONSTANT = 10.0 / np.log(10.0) * np.sqrt(2.0)


def mel_cepstral_distortion(converted: np.ndarray, target: np.ndarray) -> float:
    """MCD in dB between mel-cepstra [F, D] after DTW on c1..c(D-1) (c0, the energy, left out):
    (10 / ln 10) sqrt(2 sum_{d >= 1} (c_d - c'_d)^2), averaged over the aligned frames (Kubichek 1993)."""
    a, b = converted[:, 1:], target[:, 1:]
    ia, ib = dtw_path(a, b)
    return float(MCD_CONSTANT * np.sqrt(((a[ia] - b[ib]) ** 2).sum(-1)).mean())
