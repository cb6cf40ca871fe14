"""What the audio families (WaveGAN, SpecGAN, CycleGAN-VC) share: the "audio" sampler kind, the audio outputs of
``gankit sample --out`` and the ``AudioClips`` snapshot artefact.

    AudioSampler (kind "audio")   (n, seed) -> waveforms [N, 1, T] in [-1, 1] at ``rate`` Hz; a family whose
                                  generator makes something else (SpecGAN: spectrograms) passes ``decode``
    output formats                "audio:"     a folder of one .wav per sample (names as the CLI gives them)
                                  "audio:.wav" one file, the clips one after another with 0.25 s of silence
                                  "audio:.png" a grid of the clips' spectrograms (dB)
    AudioClips                    a snapshot: <stem>.wav (clips in sequence) and <stem>.png (their spectrograms)

Nothing is overwritten: writing into a folder that already holds a file of the same name stops with a message.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from torch import nn

from .. import audio as dsp
from ..artefacts import Artefact
from ..errors import ConfigError
from ..samplers import EvalRequest, NoiseSampler, output_formats, sampler_kinds

GAP_SECONDS = 0.25


def sequence(clips: torch.Tensor, rate: int, gap: float = GAP_SECONDS) -> torch.Tensor:
    """[N, 1, T] -> [N T + (N - 1) gap rate]: the clips one after another with silence between them."""
    silence = torch.zeros(int(gap * rate), dtype=clips.dtype)
    parts: list[torch.Tensor] = []
    for i, clip in enumerate(clips.detach().cpu()):
        parts += ([silence] if i else []) + [clip.reshape(-1)]
    return torch.cat(parts)


def spectrogram_grid(clips: torch.Tensor, path: Path, nrow: int | None = None) -> None:
    """A PNG grid of the dB spectrograms of [N, 1, T] clips (low frequencies at the bottom)."""
    from ..sample import save_grid
    n_fft = 256 if clips.shape[-1] >= 1024 else 64
    save_grid(dsp.spectrogram_image(clips.cpu(), n_fft=n_fft, hop=n_fft // 2), path, nrow=nrow)


@sampler_kinds.register("audio")
class AudioSampler(NoiseSampler):
    """``sampler(n, seed) -> [N, 1, T]`` waveforms in [-1, 1] from G(z [, label]), z ~ N(0, I).

    ``decode`` turns the generator's output into waveforms (SpecGAN: Griffin-Lim of the de-normalised
    spectrogram); ``rate`` is the sample rate; ``info`` the training data's ``DataInfo`` (what metrics compare to).
    """

    kind = "audio"
    commands = ("sample",)
    options = ("label",)
    output = "audio"

    def __init__(self, generator: nn.Module, rate: int, info: Any = None,
                 decode: Callable[[torch.Tensor], torch.Tensor] | None = None):
        super().__init__(generator, "audio", context={"rate": rate})
        self.rate, self.info, self.decode = rate, info, decode

    def _waves(self, out: torch.Tensor) -> torch.Tensor:
        return (self.decode(out) if self.decode is not None else out).float().clamp(-1, 1)

    def __call__(self, n: int, seed: int) -> torch.Tensor:
        return self._waves(super().__call__(n, seed))

    def draw(self, n: int | None = None, seed: int = 0, seeds: Sequence[int] | None = None,
             label: int | None = None) -> torch.Tensor:
        return self._waves(super().draw(n=n, seed=seed, seeds=seeds, label=label))

    def interpolate(self, *args: Any, **kwargs: Any) -> torch.Tensor:
        raise ConfigError("Latent interpolation pictures are for image models; sample clips with "
                          "`gankit sample --ckpt ... --seeds 3,7 --out DIR`.")

    @classmethod
    def check_metrics(cls, names: Sequence[str]) -> None:
        from ..metrics.audio import check_audio_metrics
        check_audio_metrics(names)

    def prepare(self, r: EvalRequest) -> None:
        from ..metrics.audio import prepare_audio
        prepare_audio(self, r)

    def evaluate(self, r: EvalRequest) -> dict[str, Any]:
        from ..metrics.audio import evaluate_audio
        return evaluate_audio(self, r)


# ---- writers of `gankit sample --out` ----------------------------------------------------------------------

@output_formats.register("audio:")
def _write_wav_folder(samples: torch.Tensor, path: Path, sampler: Any, names: list[str], **_: Any) -> None:
    targets = [path / Path(name).with_suffix(".wav").name for name in names]
    existing = [t for t in targets if t.exists()]
    if existing:
        raise ConfigError(f"{len(existing)} file(s) already exist in {str(path)!r} (e.g. {existing[0].name}); gankit "
                          "never overwrites results. Choose another --out.")
    path.mkdir(parents=True, exist_ok=True)
    for clip, target in zip(samples, targets):
        dsp.write_wav(target, clip, sampler.rate)


@output_formats.register("audio:.wav")
def _write_wav_sequence(samples: torch.Tensor, path: Path, sampler: Any, **_: Any) -> None:
    dsp.write_wav(path, sequence(samples, sampler.rate), sampler.rate)


@output_formats.register("audio:.png")
def _write_spectrogram_grid(samples: torch.Tensor, path: Path, nrow: int | None = None, **_: Any) -> None:
    spectrogram_grid(samples, path, nrow=nrow)


# ---- snapshots -------------------------------------------------------------------------------------------------

@dataclass
class AudioClips(Artefact):
    """Clips [N, 1, T] in [-1, 1] at ``rate`` Hz: ``<stem>.wav`` (the clips in sequence, 0.25 s apart) and
    ``<stem>.png`` (their spectrograms, one per clip); TensorBoard gets the first clip and the picture."""
    clips: torch.Tensor
    rate: int
    nrow: int | None = None
    name: str = "samples"
    suffix: str = ".wav"

    def write(self, stem: Path, log: Any, nimg: int) -> Path:
        path = stem.with_name(stem.name + self.suffix)
        dsp.write_wav(path, sequence(self.clips, self.rate), self.rate)
        picture = stem.with_name(stem.name + ".png")
        spectrogram_grid(self.clips, picture, nrow=self.nrow)
        if log is not None:
            n_fft = 256 if self.clips.shape[-1] >= 1024 else 64
            log.image(self.name, dsp.spectrogram_image(self.clips.cpu(), n_fft=n_fft, hop=n_fft // 2), nimg)
            if hasattr(log, "audio"):
                log.audio(self.name, self.clips[0].cpu(), self.rate, nimg)
        return path
