"""Metrics for generated sound: a spectrogram classifier's score and features, class coverage, silence, clipping.

The SC09 protocol of WaveGAN (Donahue et al. 2019, sec. 6.1): a classifier trained on the real digits gives
the Inception-score analogue exp(E_x KL(p(y|x) || p(y))) of generated clips (10 = every clip confidently one
digit and the digits equally often), and here also the Frechet distance between its penultimate features of
generated and real clips (Heusel et al. 2017, eq. 6, as in the image FID) and the predicted classes' coverage
(``modes``: classes predicted at least once; ``modes_kl``: KL of the predicted-class histogram to uniform).

The classifier is gankit's ``SmallCNN`` (metrics/classifier.py), trained by ``gankit classifier train --data
spoken-digits --out clf.pt`` on the ``audio`` classifier input registered below: each clip becomes a
32 x 32 log-mel picture (32 mel bands of a 512-point STFT with 32 frames across the clip, in dB relative to the
clip's loudest bin, 80 dB of range mapped to [-1, 1]). The picture needs no dataset statistics, so the same file
scores any clip at the same rate and length.

Silence rate: share of clips whose RMS level is below -40 dBFS; clipping rate: share of samples at |x| >= 0.999
(gankit.audio). Both need no classifier and are reported with every audio evaluation.
"""
from __future__ import annotations

import dataclasses
import time
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .. import audio as dsp
from ..errors import ConfigError, DataError
from .base import exact_float32, resolve_device
from .classifier import ClassifierInput, classifier_inputs, load_classifier, mode_metrics
from .fid import frechet_distance
from .inception_score import inception_score

AUDIO_METRICS = ("is", "fid", "modes", "silence", "clipping")
NEEDS_CLASSIFIER = ("is", "fid", "modes")
LOGMEL_SIDE = 32
LOGMEL_TOP_DB = 80.0


def logmel_pictures(audio: torch.Tensor, rate: int, n_mels: int = LOGMEL_SIDE, frames: int = LOGMEL_SIDE,
                    top_db: float = LOGMEL_TOP_DB) -> torch.Tensor:
    """[N, 1, T] waveforms -> [N, 1, n_mels, frames] log-mel pictures in [-1, 1] (per-clip dB scale)."""
    length = audio.shape[-1]
    hop = max(1, length // frames)
    n_fft = max(512, 2 ** int(np.ceil(np.log2(hop))))
    power = dsp.stft_magnitude(audio.float().reshape(len(audio), -1), n_fft, hop) ** 2        # [N, F, frames+]
    fb = dsp.mel_filterbank(n_mels, n_fft, rate).to(power.device)                              # [M, F]
    mel = (fb @ power)[..., :frames]                                                           # [N, M, frames]
    db = 10 * torch.log10(mel.clamp_min(1e-10))
    db = (db - db.amax(dim=(1, 2), keepdim=True)).clamp_min(-top_db)
    return (db / top_db * 2 + 1)[:, None]                                                      # [N, 1, M, frames]


def _audio_input_params(info: Any) -> dict[str, Any]:
    return {"rate": int(info.extras["rate"]), "clip_samples": int(info.extras["clip_samples"]),
            "picture": f"log-mel {LOGMEL_SIDE}x{LOGMEL_SIDE}, per-clip dB, {LOGMEL_TOP_DB:g} dB range"}


classifier_inputs.register("audio")(ClassifierInput(
    key="audio", params=_audio_input_params,
    to_images=lambda x, params: logmel_pictures(x, int(params["rate"])),
    about="clips -> 32x32 log-mel pictures"))


def check_audio_metrics(names: Sequence[str] | str | None) -> list[str]:
    names = [n.strip() for n in names.split(",")] if isinstance(names, str) else list(names or [])
    wrong = [n for n in names if n not in AUDIO_METRICS]
    if wrong:
        raise ConfigError(f"Metrics {wrong} do not apply to sound; audio models are scored with "
                          f"{', '.join(AUDIO_METRICS)} (is / fid / modes need --extractor classifier:PATH, a "
                          "classifier trained with `gankit classifier train` on the audio data).")
    return names


class AudioClassifier:
    """A classifier file trained on the audio input: clips [N, 1, T] -> {'features': [N, F], 'logits': [N, K]}."""

    def __init__(self, path: str, device: Any = None, batch_size: int = 256):
        self.path, self.device, self.batch_size = path, resolve_device(device), batch_size
        self.model, self.ckpt = load_classifier(path, self.device)
        self.params = self.ckpt.get("data", {}).get("input", {})
        if self.params.get("kind") != "audio":
            raise ConfigError(f"Classifier {path!r} was trained on {self.params.get('kind', 'image')} data, not on "
                              "sound; train one with `gankit classifier train --data <audio data> --out clf.pt`.")

    def check(self, rate: int, length: int) -> None:
        if (int(self.params["rate"]), int(self.params["clip_samples"])) != (rate, length):
            raise ConfigError(f"Classifier {self.path!r} scores {self.params['clip_samples']}-sample clips at "
                              f"{self.params['rate']} Hz; these clips are {length} samples at {rate} Hz.")

    @torch.no_grad()
    @exact_float32()
    def __call__(self, audio: torch.Tensor) -> dict[str, torch.Tensor]:
        feats, logits = [], []
        for chunk in audio.split(self.batch_size):
            x = logmel_pictures(chunk.to(self.device), int(self.params["rate"]))
            side = self.model.config["resolution"]
            if x.shape[-1] != side:
                x = F.interpolate(x, size=(side, side), mode="bilinear", align_corners=False)
            f = self.model.features(x)
            feats.append(f.double().cpu())
            logits.append(self.model.head(f).double().cpu())
        return {"features": torch.cat(feats), "logits": torch.cat(logits)}


def _moments(x: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    a = x.double().numpy()
    return a.mean(0), np.cov(a, rowvar=False)


def audio_scores(gen: torch.Tensor, real: torch.Tensor | None, names: Sequence[str],
                 classifier: AudioClassifier | None, is_splits: int = 10) -> dict[str, float]:
    """The numbers of ``names`` for generated clips ``gen`` [N, 1, T] (and real clips for fid)."""
    out: dict[str, float] = {"silence": dsp.silence_rate(gen), "clipping": dsp.clipping_rate(gen)}
    if any(n in NEEDS_CLASSIFIER for n in names):
        g = classifier(gen)
        if "is" in names:
            out.update(inception_score(g["logits"], splits=min(is_splits, len(gen))))
        if "modes" in names:
            out.update({k: v for k, v in mode_metrics(g["logits"]).items() if k != "modes_total"})
        if "fid" in names:
            r = classifier(real)
            out["fid"] = frechet_distance(*_moments(g["features"]), *_moments(r["features"]))
    return out


def prepare_audio(sampler: Any, r: Any) -> None:
    """What ``evaluate_audio`` needs, checked before training (fresh or resumed): the metric names, and for
    is / fid / modes a classifier file trained on sound at this sample rate and clip length."""
    names = check_audio_metrics(r.metrics or ("silence", "clipping"))
    if not any(n in NEEDS_CLASSIFIER for n in names):
        return
    spec = r.extractor if r.extractor and r.extractor != "auto" else ""
    if not spec.startswith("classifier:"):
        raise ConfigError("is / fid / modes of sound need --extractor classifier:PATH (a classifier trained with "
                          "`gankit classifier train --data <audio data> --out clf.pt`).")
    classifier = AudioClassifier(spec.partition(":")[2], r.device)
    info = getattr(sampler, "info", None)
    length = (getattr(info, "extras", None) or {}).get("clip_samples") if info is not None else None
    if length:
        classifier.check(sampler.rate, int(length))


def evaluate_audio(sampler: Any, r: Any) -> dict[str, Any]:
    """``Sampler.evaluate`` of audio models: ``r.n`` generated clips (default 1000) against the run's data or
    ``r.ref`` (the "real-data floor" is the same numbers for real clips: ``real_data_scores``)."""
    from ..config import DataConfig
    from ..data import load_dataset
    start = time.perf_counter()
    names = check_audio_metrics(r.metrics or ("silence", "clipping"))
    spec = r.extractor if r.extractor and r.extractor != "auto" else ""
    classifier = None
    if any(n in NEEDS_CLASSIFIER for n in names):
        if not spec.startswith("classifier:"):
            raise ConfigError("is / fid / modes of sound need --extractor classifier:PATH (a classifier trained with "
                              "`gankit classifier train --data <audio data> --out clf.pt`).")
        classifier = AudioClassifier(spec.partition(":")[2], r.device)
    n = r.n or 1000
    gen = torch.cat([sampler(min(256, n - i), r.seed + i) for i in range(0, n, 256)])              # [n, 1, T]
    if classifier is not None:
        classifier.check(sampler.rate, gen.shape[-1])
    real = None
    data = r.data or DataConfig()
    if "fid" in names:
        data = dataclasses.replace(data, spec=r.ref or data.spec, **({"split": r.split} if r.split else {}),
                                   **({"root": r.root} if r.root else {}))
        ds = load_dataset(data, ("audio",))
        real = ds.tensors["audio"][: r.n_ref] if r.n_ref else ds.tensors["audio"]
        if real.shape[-1] != gen.shape[-1]:
            raise DataError(f"Reference {data.spec!r} has {real.shape[-1]}-sample clips, the model makes "
                            f"{gen.shape[-1]}; give the same data.clip_samples.")
    values = audio_scores(gen, real, names, classifier)
    protocol = {"generated": {"n": n, "seed": r.seed, "rate": sampler.rate, "length": gen.shape[-1]},
                "n_gen": n, "n_ref": None if real is None else len(real), "device": str(r.device),
                "wall_time_s": round(time.perf_counter() - start, 2),
                "reference": None if real is None else {"spec": data.spec, "split": data.split},
                "silence": "RMS < -40 dBFS", "clipping": "|x| >= 0.999",
                "classifier": None if classifier is None else {"file": classifier.path, **classifier.params,
                                                               "report": classifier.ckpt.get("report", {})}}
    return {"metrics": values, "protocol": protocol}


def real_data_scores(clips: torch.Tensor, reference: torch.Tensor, classifier: AudioClassifier,
                     names: Sequence[str] = AUDIO_METRICS) -> dict[str, float]:
    """The same numbers for real clips (held-out split vs the training split): the floor a generator can reach."""
    return audio_scores(clips, reference, names, classifier)
