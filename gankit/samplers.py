"""Samplers: what a trained model is used through, one contract for ``sample``, ``translate``, ``eval`` and the
metrics that run during training.

A recipe's ``samplers(nets)`` returns typed ``Sampler`` objects (DESIGN.md sec. 3); the CLI and the engine
drive them through this module's registries and never ask which family or kind of data a model is:

    sampler_kinds    kind name -> Sampler class ("noise": (n, seed) -> samples; "translate": inputs -> outputs;
                     later kinds add sequences, audio, table rows, upscaled images)
    sample_options   the flags of ``gankit sample`` / ``interpolate`` (``--label``; families add ``--truncation``,
                     ``--temperature``, ``--condition``...). A sampler lists the ones it accepts in ``options``.
    output_formats   "<output>:<suffix>" -> writer of ``gankit sample --out`` ("image:.png" a grid, "points:.png" a
                     scatter, "image:" a folder, "*:.npy" an array; later "text:.txt", "audio:.wav", "rows:.csv")

Evaluation is the sampler's too (``Sampler.evaluate(EvalRequest)``): a noise sampler scores samples against a
reference (``metrics.evaluate``), a translator scores its translations of held-out inputs
(``metrics.evaluate_translation``). ``Sampler.check_metrics`` is what validation asks before training starts.
"""
from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar, Sequence

import numpy as np
import torch
from torch import nn

from .errors import ConfigError
from .io import atomic_write_bytes
from .registry import Registry
from .sample import balanced_labels  # noqa: F401  (part of the sampler contract: conditional samplers use it)

sampler_kinds: Registry[type["Sampler"]] = Registry("sampler kind")
output_formats: Registry[Callable[..., None]] = Registry("output format")


@dataclass
class SampleOption:
    """One flag of ``gankit sample`` / ``gankit interpolate`` that some sampler kinds accept."""
    name: str                       # python name; the flag is --name with '_' -> '-'
    type: type
    help: str


sample_options: Registry[SampleOption] = Registry("sampling option")


def register_sample_option(name: str, type_: type, help_: str) -> SampleOption:
    opt = SampleOption(name, type_, help_)
    sample_options.register(name)(opt)
    return opt


register_sample_option("label", int, "Class for conditional models (default: cycle through the classes).")
# Shared by every family with a truncation trick; each sampler that accepts it documents its meaning
# (StyleGAN2: psi, the pull of w towards the tracked W average; BigGAN: the threshold |z| is resampled beyond).
register_sample_option("truncation", float, "Truncation trick; its meaning is the family's (StyleGAN2: psi in W, "
                       "1 = off; BigGAN: the threshold on |z|). See the family's docs.")


@dataclass
class EvalRequest:
    """Everything ``gankit eval`` or a training run asks of an evaluation; each sampler kind uses what applies.

    ``data`` is the run's own data config (what ``ref`` defaults to during training, and a translator's test
    data); ``ref`` / ``ref_b`` name other reference or test data.
    """
    metrics: Any = None                          # "fid,kid" or a list; None = the kind's default
    data: Any = None                             # DataConfig of the run, or None
    ref: str | None = None
    ref_b: str | None = None
    n: int | None = None
    n_ref: int | None = None
    seed: int = 0
    split: str | None = None
    root: str | None = None
    direction: str | None = None
    extractor: str = "auto"
    batch_size: int = 64
    device: Any = None
    inception_weights: str | None = None
    verify_weights: bool | None = None
    download: bool = True
    cache: bool = True
    bootstrap: int = 0
    progress: bool = False
    extractors: dict | None = None               # kept by the trainer so weights load once
    shard: Any = None                            # gankit.metrics.Shard under torchrun: extraction split over ranks
    ref_size: int | None = None                  # items the reference holds, when the caller knows (``prepare``)
    options: dict = field(default_factory=dict)  # further metric options (EvalOptions fields)


@dataclass
class ExportSpec:
    """What ``gankit export`` traces for ONNX / TorchScript: one module and example inputs (batch first).

    ``module(*inputs)`` returns one tensor named ``output_name``. ``describe`` says, per input and output name,
    its shape and values (written next to the exported file, so a user of the file knows what to feed it).
    ``dynamic_batch``: ask the exporter for a free batch dimension (the exporter may still refuse; the export
    then falls back to the example's batch and says so).
    """
    module: nn.Module
    inputs: tuple[torch.Tensor, ...]
    input_names: tuple[str, ...]
    output_name: str = "output"
    describe: dict[str, str] = field(default_factory=dict)
    dynamic_batch: bool = True


class Sampler:
    """Base of every sampler kind. Subclasses register with ``@sampler_kinds.register(kind)``."""

    kind: ClassVar[str] = ""
    commands: ClassVar[tuple[str, ...]] = ()     # CLI commands that drive this kind ("sample", "translate", ...)
    options: ClassVar[tuple[str, ...]] = ()      # names in ``sample_options`` it accepts
    output: str = "image"                        # what it produces: picks the writers of ``gankit sample --out``

    def require(self, command: str) -> None:
        """A clear error when a command is used on a model it does not drive."""
        if command not in self.commands:
            users = sorted(name for name, cls in sampler_kinds.items() if command in cls.commands)
            raise ConfigError(f"`gankit {command}` drives {' or '.join(users) or 'no'} models, but this checkpoint's "
                              f"sampler is a {self.kind!r} one; use `gankit {' / '.join(self.commands)}` instead.")

    def check_options(self, given: dict[str, Any]) -> dict[str, Any]:
        given = {k: v for k, v in given.items() if v is not None}
        wrong = [k for k in given if k not in self.options]
        if wrong:
            flags = ", ".join("--" + k.replace("_", "-") for k in wrong)
            valid = ", ".join("--" + k.replace("_", "-") for k in self.options) or "none"
            raise ConfigError(f"{flags} does not apply to this {self.kind!r} model; its sampling options: {valid}.")
        return given

    @classmethod
    def check_metrics(cls, names: Sequence[str]) -> None:
        """Raise ``ConfigError`` for metrics this kind cannot compute (validation, before training)."""

    def prepare(self, request: EvalRequest) -> None:
        """Check, before training starts, what ``evaluate(request)`` will need and can be known now (weights
        files, enough samples for each metric), loading what can be kept into ``request.extractors``. The loop
        calls it on fresh and resumed runs, so a run never fails at its end. Default: nothing to check."""

    def evaluate(self, request: EvalRequest) -> dict[str, Any]:
        raise NotImplementedError

    def export_spec(self, batch: int = 2) -> ExportSpec | None:
        """The network and example inputs to export to ONNX / TorchScript, or None when this kind has no single
        traceable network (it still exports as a safetensors model folder). Inputs are made on the CPU."""
        return None


class _NoiseForward(nn.Module):
    """G(z) (and G(z, label) for class-conditional generators) with plain tensor inputs, for tracing."""

    def __init__(self, generator: nn.Module, conditional: bool):
        super().__init__()
        self.G, self.conditional = generator, conditional

    def forward(self, z: torch.Tensor, label: torch.Tensor | None = None) -> torch.Tensor:
        return self.G(z, label if self.conditional else None)


# ---- noise -> samples ----------------------------------------------------------------------------------------

@sampler_kinds.register("noise")
class NoiseSampler(Sampler):
    """G(z [, label]) with z ~ N(0, I): ``sampler(n, seed)`` is the metrics' contract, ``draw`` the CLI's.

    output: "image" ([N, C, H, W] in [-1, 1]) or "points" ([N, D] vectors, e.g. the 2-D toys);
    context: what the output's writers may show besides the samples (``centers`` of toy modes, ``real`` points).
    """

    kind = "noise"
    commands = ("sample", "interpolate")
    options = ("label",)

    def __init__(self, generator: nn.Module, output: str = "image", context: dict | None = None):
        self.G = generator
        self.output = output
        self.context = context or {}

    def __call__(self, n: int, seed: int, start: int = 0) -> torch.Tensor:
        """The metrics' contract: ``n`` samples from latents seeded by ``seed``; ``start`` is the global index of
        the first of them in the whole evaluation, from which a conditional G takes its labels
        (``balanced_labels``), so an evaluation is class-balanced however it is batched or sharded."""
        from .sample import sample
        return sample(self.G, n, seed=seed, start=start)

    def draw(self, n: int | None = None, seed: int = 0, seeds: Sequence[int] | None = None, label: int | None = None
             ) -> torch.Tensor:
        from .sample import sample
        return sample(self.G, n=n, seed=seed, seeds=seeds, label=label)

    def interpolate(self, seed_a: int, seed_b: int, steps: int, mode: str, label: int | None = None) -> torch.Tensor:
        from .sample import interpolate
        if self.output != "image":
            raise ConfigError("Interpolation pictures are for image models; sample vectors with "
                              "`gankit sample --out x.npy`.")
        return interpolate(self.G, seed_a, seed_b, steps=steps, mode=mode, label=label)

    @classmethod
    def check_metrics(cls, names: Sequence[str]) -> None:
        from .metrics import metrics as metric_specs
        # Metrics of image features (and the toys' points), also class by class for conditional models (per_class:
        # class consistency, intra-class FID, the truncation curve); others (translation pairs, text...) belong to
        # other sampler kinds' evaluations.
        mine = ("features", "logits", "per_class", "")
        other = [m for m in names if metric_specs.get(str(m).partition("@")[0]).output not in mine]
        if other:
            raise ConfigError(f"Metrics {other} score image-to-image translators (pix2pix, cyclegan) or other "
                              f"kinds of model (text...); "
                              f"this model samples from noise (use fid, kid, is, pr, dc, modes or toy).")

    def prepare(self, r: EvalRequest) -> None:
        from .metrics import prepare_evaluation
        n_ref = r.n_ref if r.n_ref is not None else r.ref_size
        prepare_evaluation(r.metrics or "fid", r.n, n_ref, extractor=r.extractor, device=r.device,
                           batch_size=r.batch_size, inception_weights=r.inception_weights,
                           verify_weights=r.verify_weights, download=r.download, extractors=r.extractors,
                           **r.options)

    def export_spec(self, batch: int = 2) -> ExportSpec:
        """z [N, z_dim] ~ N(0, I) (and label [N] int64) -> samples; the latent is an input, so a user of the
        exported file chooses the noise (seeded latents: ``gankit.sample.latents_for_seeds``)."""
        G = self.G
        num_classes = int(getattr(G, "num_classes", 0) or 0)
        z = torch.randn(batch, G.z_dim, generator=torch.Generator().manual_seed(0))
        inputs: tuple[torch.Tensor, ...] = (z,)
        describe = {"z": f"[N, {G.z_dim}] float32, standard normal noise"}
        if num_classes:
            inputs = (z, torch.arange(batch, dtype=torch.long) % num_classes)
            describe["label"] = f"[N] int64 class in 0..{num_classes - 1}"
        out_name = "image" if self.output == "image" else self.output
        describe[out_name] = ("[N, C, H, W] float32 in [-1, 1] (gankit.images.to_uint8 for pixels)"
                              if self.output == "image" else f"[N, ...] float32 {self.output}")
        return ExportSpec(_NoiseForward(G, bool(num_classes)), inputs, ("z", "label")[:len(inputs)], out_name,
                          describe)

    def evaluate(self, r: EvalRequest) -> dict[str, Any]:
        from .metrics import evaluate
        if r.direction or r.ref_b:
            raise ConfigError("--direction and --ref-b apply to translation (pix2pix / CycleGAN) checkpoints.")
        ref, options = r.ref, {}
        if r.data is not None:
            ref = ref or r.data.spec
            options = {"root": r.data.root, "split": r.data.split}
        options.update({k: v for k, v in (("split", r.split), ("root", r.root)) if v})
        return evaluate(r.metrics or "fid", self, ref, r.n, extractor=r.extractor, n_ref=r.n_ref, seed=r.seed,
                        batch_size=r.batch_size, device=r.device, inception_weights=r.inception_weights,
                        verify_weights=r.verify_weights, download=r.download, cache=r.cache,
                        data_options=options, progress=r.progress, fid_bootstrap=r.bootstrap,
                        extractors=r.extractors, shard=r.shard, **r.options)


# ---- writers of `gankit sample --out` -------------------------------------------------------------------------

def write_samples(sampler: Sampler, samples: torch.Tensor, path: Path, names: list[str], nrow: int | None) -> None:
    """Write samples in the format ``path``'s suffix names, for the sampler's kind of output."""
    key = f"{sampler.output}:{path.suffix}"
    for candidate in (key, f"*:{path.suffix}"):
        if candidate in output_formats:
            return output_formats.get(candidate)(samples, path, sampler=sampler, names=names, nrow=nrow)
    valid = sorted(k.split(":", 1)[1] or "a folder" for k in output_formats
                   if k.split(":", 1)[0] in (sampler.output, "*"))
    raise ConfigError(f"--out {str(path)!r}: {sampler.output} samples can be written as {', '.join(valid)}.")


@output_formats.register("*:.npy")
def _write_npy(samples: torch.Tensor, path: Path, **_: Any) -> None:
    buf = io.BytesIO()
    np.save(buf, samples.numpy())
    atomic_write_bytes(path, buf.getvalue())


@output_formats.register("image:.png")
def _write_grid(samples: torch.Tensor, path: Path, nrow: int | None = None, **_: Any) -> None:
    from .sample import save_grid
    save_grid(samples, path, nrow=nrow)


@output_formats.register("image:")
def _write_folder(samples: torch.Tensor, path: Path, names: list[str], **_: Any) -> None:
    from .sample import save_images
    save_images(samples, path, names)


@output_formats.register("points:.png")
def _write_scatter(samples: torch.Tensor, path: Path, sampler: Sampler, **_: Any) -> None:
    from .sample import scatter_png
    ctx = getattr(sampler, "context", {})
    scatter_png(samples, path, centers=ctx.get("centers"), title=f"{len(samples)} samples")
