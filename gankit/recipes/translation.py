"""What the image-to-image translation recipes (pix2pix, CycleGAN) share.

- ``adversarial_loss``: the patch GAN objective with a real / fake target, vanilla (cross-entropy on logits,
  Goodfellow et al. 2014 with the non-saturating generator target) or least squares (Mao et al. 2017);
- ``linear_decay``: constant learning rate, then linear decay to zero (Zhu et al. 2017, sec. 7.1);
- ``TranslationRecipe``: building a translator / patch discriminator pair from the config, the fixed snapshot
  inputs, the snapshot grid, the sampler and the choice of network for a direction.

Direction convention: a recipe always learns batch ``'a'`` -> batch ``'b'``. ``data.direction`` (applied by the
data layer, which swaps the two sides for ``BtoA``) says which side of the dataset that is, and is kept in
``trained_direction`` so that ``translator(direction)`` can answer in the dataset's own A / B names.
"""
from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from ..nets import build_net, discriminators, generators
from ..samplers import EvalRequest, ExportSpec, Sampler, sampler_kinds
from .base import Recipe, check_data_kind

GAN_LOSSES = ("vanilla", "lsgan")
DIRECTIONS = ("AtoB", "BtoA")


def adversarial_loss(logits: torch.Tensor, real: bool, mode: str) -> torch.Tensor:
    """Mean patch loss of D's raw outputs ``logits`` [N, 1, h, w] against target 1 (real) or 0 (fake).

    vanilla: -log sigmoid(l) for real, -log(1 - sigmoid(l)) for fake (Isola et al. 2017, eq. 1; the generator
             uses the real target, the non-saturating form of Goodfellow et al. 2014, sec. 3).
    lsgan:   (l - 1)^2 for real, l^2 for fake (Mao et al. 2017, eq. 9 with a=0, b=c=1; Zhu et al. 2017 sec. 4).
    """
    target = torch.full_like(logits, 1.0 if real else 0.0)
    if mode == "vanilla":
        return F.binary_cross_entropy_with_logits(logits, target)
    if mode == "lsgan":
        return F.mse_loss(logits, target)
    raise ConfigError(f"Unknown gan_loss {mode!r}. Valid choices: {', '.join(GAN_LOSSES)}.")


def linear_decay(progress: float, decay_start: float) -> float:
    """1 until ``decay_start`` (a fraction of training), then linearly down to 0 at the end (Zhu et al. 2017)."""
    if progress <= decay_start or decay_start >= 1.0:
        return 1.0
    return max(0.0, 1.0 - (progress - decay_start) / (1.0 - decay_start))


def check_fraction(value: float, name: str) -> None:
    if not 0.0 <= value <= 1.0:
        raise ConfigError(f"{name} must be a fraction of training in [0, 1], got {value}.")


def as_rgb(img: torch.Tensor, channels: int) -> torch.Tensor:
    """Repeat a grayscale image to ``channels`` (3) so rows of mixed gray / RGB images share one grid."""
    return img.expand(-1, channels, -1, -1) if img.shape[1] < channels else img


def translation_nets(cfg: Any, in_channels: int, out_channels: int, resolution: int,
                     d_in_channels: int, g_name: str, d_name: str) -> tuple[nn.Module, nn.Module]:
    """One translator (G.image) and one patch discriminator (D.image) with their interface arguments and init."""
    for role, arch, kind, reg in (("G", cfg.G.image, "translator", generators),
                                  ("D", cfg.D.image, "patch", discriminators)):
        if getattr(reg.get(arch), "kind", None) != kind:
            valid = [n for n, c in reg.items() if getattr(c, "kind", None) == kind]
            raise ConfigError(f"{role}.image = {arch!r} is not a {kind} network, which image-to-image translation "
                              f"needs. Valid choices: {', '.join(valid)}.")
    G = build_net("G", cfg.G, "paired",
                  {"in_channels": in_channels, "out_channels": out_channels, "resolution": resolution}, g_name)
    D = build_net("D", cfg.D, "paired", {"in_channels": d_in_channels, "resolution": resolution}, d_name)
    return G, D


class TranslationRecipe(Recipe):
    """Shared parts of pix2pix and CycleGAN; subclasses define the objective and ``snapshot``."""

    # "forward" (the trained direction) / "backward" -> translator name; subclasses fill this in.
    translators: ClassVar[dict[str, str]] = {}
    sampler_kind: ClassVar[str] = "translate"     # samplers() give a Translator (inputs -> outputs)

    def __init__(self, nets: dict[str, nn.Module], opts: Any, info: Any, trained_direction: str = "AtoB"):
        super().__init__(nets, opts, info)
        if trained_direction not in DIRECTIONS:
            raise ConfigError(f"direction must be one of {', '.join(DIRECTIONS)}, got {trained_direction!r}.")
        self.trained_direction = trained_direction

    @staticmethod
    def channels(info: Any) -> tuple[int, int]:
        """(channels of a, channels of b) from ``DataInfo`` (``channels_b = 0`` means the same as a)."""
        return info.channels, info.channels_b or info.channels

    @classmethod
    def check_info(cls, name: str, info: Any) -> None:
        check_data_kind(cls, name, info)

    # ---- using the trained model ------------------------------------------------------------------------------
    def translator_name(self, direction: str | None = None) -> str:
        """Network that maps the dataset's ``direction`` (AtoB / BtoA; None = the trained one)."""
        direction = direction or self.trained_direction
        if direction not in DIRECTIONS:
            raise ConfigError(f"direction must be one of {', '.join(DIRECTIONS)}, got {direction!r}.")
        relative = "forward" if direction == self.trained_direction else "backward"
        if relative not in self.translators:
            raise ConfigError(f"This {type(self).__name__} model was trained {self.trained_direction} and translates "
                              f"only that way; {direction} needs a model trained with data.direction={direction} "
                              f"(or a CycleGAN, which learns both).")
        return self.translators[relative]

    def translator_channels(self, direction: str | None = None) -> tuple[int, int]:
        """(input channels, output channels) of the translator for ``direction``."""
        ca, cb = self.channels(self.info)
        forward = self.translator_name(direction) == self.translators["forward"]
        return (ca, cb) if forward else (cb, ca)

    def fixed_inputs(self, n: int, seed: int, dataset: Any) -> dict[str, torch.Tensor]:
        """``n`` dataset items chosen by a seeded permutation: {'a': [n, Ca, H, W], 'b': [n, Cb, H, W]}."""
        g = torch.Generator().manual_seed(seed)
        idx = torch.randperm(len(dataset), generator=g)[: min(n, len(dataset))]
        if hasattr(dataset, "get_batch"):
            batch = dataset.get_batch(idx)
        else:
            items = [dataset[int(i)] for i in idx]
            batch = {k: torch.stack([it[k] for it in items]) for k in ("a", "b")}
        return {"a": batch["a"].detach().cpu().clone(), "b": batch["b"].detach().cpu().clone()}

    def samplers(self, nets: nn.ModuleDict | None = None) -> dict[str, "Translator"]:
        return {"default": Translator(self, nets if nets is not None else self.nets)}

    def sampler(self, nets: nn.ModuleDict | None = None, direction: str | None = None) -> "Translator":
        """A ``Translator`` for ``direction`` (default: the trained one, a -> b): ``inputs -> outputs``."""
        return Translator(self, nets if nets is not None else self.nets, direction)

    def run_eval(self, net: nn.Module, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad(), eval_mode(net):
            return net(x.to(next(net.parameters()).device)).cpu()


class eval_mode:
    """Context manager: the network in eval mode (no dropout, running batch-norm statistics), then as before."""

    def __init__(self, net: nn.Module):
        self.net = net

    def __enter__(self) -> nn.Module:
        self.was_training = self.net.training
        self.net.eval()
        return self.net

    def __exit__(self, *exc: Any) -> None:
        self.net.train(self.was_training)


@sampler_kinds.register("translate")
class Translator(Sampler):
    """``translator(inputs [N, C_in, H, W]) -> outputs [N, C_out, H, W]`` in [-1, 1], for metrics and the CLI.

    Translation is conditioned on an input image, so this sampler maps input batches rather than drawing
    ``(n, seed)``. It runs the translator of ``direction`` (default: the trained one) in eval mode, without
    gradients, on the translator's device, and returns the outputs on the inputs' device.
    """

    kind = "translate"
    commands = ("translate",)
    output = "image"

    def __init__(self, recipe: "TranslationRecipe", nets: nn.ModuleDict, direction: str | None = None):
        self.recipe, self.nets, self.direction = recipe, nets, direction
        self.name = recipe.translator_name(direction)             # ConfigError for a direction it cannot do
        self.net = nets[self.name]

    def for_direction(self, direction: str | None) -> "Translator":
        return Translator(self.recipe, self.nets, direction)

    @property
    def channels(self) -> tuple[int, int]:
        return self.recipe.translator_channels(self.direction)

    def __call__(self, inputs: torch.Tensor) -> torch.Tensor:
        with torch.no_grad(), eval_mode(self.net):
            device = next(self.net.parameters()).device
            return self.net(inputs.to(device)).to(inputs.device)

    def export_spec(self, batch: int = 2) -> ExportSpec:
        """The translator network alone: input image -> translated image, at the training resolution (other
        sizes work where the network allows them: multiples of its ``size_multiple``; the export fixes H, W)."""
        c_in, c_out = self.channels
        side = self.recipe.info.resolution
        x = torch.rand(batch, c_in, side, side, generator=torch.Generator().manual_seed(0)) * 2 - 1
        return ExportSpec(self.net, (x,), ("image",), "translated",
                          {"image": f"[N, {c_in}, {side}, {side}] float32 in [-1, 1]",
                           "translated": f"[N, {c_out}, {side}, {side}] float32 in [-1, 1]"})

    @classmethod
    def check_metrics(cls, names: Any) -> None:
        """Every registered metric applies: paired ones on paired test data, image ones on the target domain."""

    def prepare(self, r: EvalRequest) -> None:
        """The extractors of the image metrics (the weights file) before training; the test split's size is
        known only when it is loaded, at evaluation."""
        if r.metrics:
            from ..metrics import prepare_evaluation
            prepare_evaluation(r.metrics, extractor=r.extractor, device=r.device, batch_size=r.batch_size,
                               inception_weights=r.inception_weights, verify_weights=r.verify_weights,
                               download=r.download, extractors=r.extractors)

    def evaluate(self, r: EvalRequest) -> dict[str, Any]:
        """The translator on the test split of its data (or ``r.ref`` / ``r.ref_b``)."""
        import dataclasses

        from ..metrics import evaluate_translation
        data_cfg = r.data
        if r.ref:
            if r.ref.endswith(".npz"):
                raise ConfigError("A translation checkpoint is evaluated on test data (inputs and their targets or "
                                  "the target domain), not on a statistics file: give --ref a data spec.")
            data_cfg = dataclasses.replace(data_cfg, spec=r.ref, spec_b=r.ref_b or "")
        elif r.ref_b:
            raise ConfigError("--ref-b needs --ref (the first folder).")
        if r.root:
            data_cfg = dataclasses.replace(data_cfg, root=r.root)
        result = evaluate_translation(self.recipe, self.nets, data_cfg, r.metrics, n=r.n, device=r.device,
                                      extractor=r.extractor, extractors=r.extractors,
                                    direction=r.direction or self.direction, batch_size=r.batch_size,
                                    split=r.split or "test", n_ref=r.n_ref, inception_weights=r.inception_weights,
                                    verify_weights=r.verify_weights, download=r.download, progress=r.progress,
                                    fid_bootstrap=r.bootstrap, **r.options)
        g, d = result["protocol"]["generated"], result["protocol"]["data"]
        result["note"] = (f"translator {g['network']} {g['direction']} on {d['spec']!r} split {d['split']}"
                          f"{'' if d['held_out'] else ' (NOT held out: the data has no test split)'}; paired "
                          f"metrics against {result['protocol']['paired_against'] or '-'}")
        return result
