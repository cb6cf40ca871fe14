"""Metrics of image-to-image translators (pix2pix, CycleGAN) on held-out data.

    result = evaluate_translation(recipe, nets, cfg.data, ["psnr", "ssim", "l1"], device="cpu")
    result["metrics"]   {"psnr": 21.3, "ssim": 0.81, "l1": 0.12}

Every input of the held-out split is translated (``recipe.sampler(nets, direction)``, batch by batch) and the
outputs are quantised to uint8 with ``gankit.images.to_uint8``, as saved files would be, before any metric sees
them. Then, by what the data offers:

* paired data (edges2digits, facades, two folders with matching names): each output against its own target,
  ``psnr``, ``ssim``, ``l1`` (``paired_metrics``; targets quantised the same way);
* any data: ``fid``, ``kid``, ``is``, ``pr``, ``dc`` of the translated images against the real images of the
  target domain in the same split, through ``evaluate()`` with tensor inputs (same extractors, statistics and
  protocol as ``gankit eval``);
* unpaired data with a known true mapping (``info.extras['true_mapping']``, e.g. digits2inverted): the paired
  metrics against the truth (``gankit.data.true_translation``), named ``truth_psnr``, ``truth_ssim``,
  ``truth_l1``. They are always reported when the truth is known: cheap, and the only ground truth an unpaired
  task has.

The paired metrics are averages over images (PSNR and SSIM per image, L1 over equally sized images), so the
batch means weighted by batch size equal the whole-set numbers of ``paired_metrics`` exactly.
"""
from __future__ import annotations

import dataclasses
import time
import warnings
from pathlib import Path
from typing import Any, Iterable

import torch

from ..errors import ConfigError, DataError
from ..images import to_uint8
from .base import EvalOptions, MetricSpec, metrics, resolve_device
from .evaluate import QUANTISATION, _card, evaluate
from .paired import paired_metrics
from .sources import DatasetSource

PAIRS = "pairs"                      # MetricSpec.output of metrics computed on (output, target) pairs
PAIRED_NAMES = ("psnr", "ssim", "l1")
TRUTH_PREFIX = "truth_"              # paired metrics against a known true mapping (unpaired data)
DEFAULT_METRICS = {"paired": ("psnr", "ssim", "l1"), "unpaired": ("fid", "kid")}


# ---- the paired metrics as registered metrics ----------------------------------------------------------------
# "Statistics" of a paired metric are the set means of ``paired_metrics`` over every (output, target) pair;
# ``compute`` picks its number from them. Registering them lets ``TrainConfig.metrics`` and ``gankit eval``
# name them like any other metric; ``evaluate()`` refuses them (they need targets, not a reference set).

def _pick(name: str):
    def compute(means: dict[str, float], _ref: Any, _opts: EvalOptions) -> dict[str, float]:
        return {name: means[name]}
    return compute


_QUANTISED = "outputs and targets through gankit.images.to_uint8, compared on 0..255"
_PAIRED_SPECS = {
    "psnr": dict(higher_is_better=True, params=lambda o: {
        "data_range": 255, "quantised": _QUANTISED, "average": "mean of per-image PSNR (dB)",
        "implementation": "torchmetrics peak_signal_noise_ratio"},
        description="Peak signal-to-noise ratio of each output against its target (dB)"),
    "ssim": dict(higher_is_better=True, params=lambda o: {
        "data_range": 255, "quantised": _QUANTISED, "window": "gaussian 11, sigma 1.5", "k1": 0.01, "k2": 0.03,
        "implementation": "torchmetrics structural_similarity_index_measure"},
        description="Structural similarity of each output with its target (Wang et al. 2004)"),
    "l1": dict(higher_is_better=False, params=lambda o: {
        "units": "[-1, 1] image units (the pix2pix L1 term, Isola et al. 2017 eq. 3)", "quantised": _QUANTISED},
        description="Mean absolute difference between each output and its target"),
}
for _name, _kw in _PAIRED_SPECS.items():
    metrics.register(_name)(MetricSpec(name=_name, values=(_name, TRUTH_PREFIX + _name), output=PAIRS,
                                       needs_ref=False, keep_gen=False, keep_ref=False, compute=_pick(_name),
                                       needs_moments=False, **_kw))


# ---- evaluation ------------------------------------------------------------------------------------------------

def evaluate_translation(recipe: Any, nets: Any, data_cfg: Any, metric_names: str | Iterable[str] | None = None, *,
                         n: int | None = None, device: str | torch.device | None = None, extractor: str = "auto",
                         extractors: dict | None = None, direction: str | None = None, batch_size: int = 64,
                         split: str = "test", n_ref: int | None = None, ref_seed: int = 0,
                         inception_weights: str | None = None, verify_weights: bool | None = None,
                         download: bool = True, progress: bool = False, **options: Any) -> dict[str, Any]:
    """Metrics of ``recipe``'s translator for ``direction`` on the ``split`` split of ``data_cfg``.

    recipe, nets: a ``TranslationRecipe`` and the networks to translate with (e.g. from ``load_recipe``).
    data_cfg: a ``DataConfig`` (normally the run's own); its split is replaced by ``split``. Data without such a
        split (a plain folder, an npz) falls back to ``data_cfg.split`` with a warning, recorded in the protocol.
    metric_names: "psnr,ssim,l1" / "fid,kid" / a list (``name@extractor`` as in ``evaluate``); None = psnr,
        ssim, l1 for paired data, fid, kid for unpaired. Truth metrics are added whenever the truth is known.
    n: at most this many inputs are translated (the first n of the split; default all: test sets are small, so
        the trainer's ``metrics_n`` is a cap). n_ref: target-domain images for the image metrics (default all;
        fewer = seeded subset with ``ref_seed``).
    extractor, extractors, inception_weights, verify_weights, download, options: as in ``evaluate``.
    Returns a card in ``evaluate``'s layout ({'metrics', 'metric_protocols', 'protocol', ...}).
    """
    start = time.perf_counter()
    dev = resolve_device(device)
    direction = direction or recipe.trained_direction
    net_name = recipe.translator_name(direction)                  # ConfigError for a direction it cannot do
    in_channels, out_channels = recipe.translator_channels(direction)
    requested = _split_names(metric_names)
    for name in {item.partition("@")[0] for item in requested}:
        metrics.get(name)                                         # unknown names fail first, listing the valid

    # ---- the held-out data: inputs 'a', targets 'b' ---------------------------------------------------------
    dataset, data_desc = load_held_out(data_cfg, split, direction, recipe.info.resolution)
    info = dataset.info
    if info.channels != in_channels or (info.channels_b or info.channels) != out_channels:
        raise DataError(f"{data_desc['spec']!r} ({data_desc['split']} split) has {info.channels} -> "
                        f"{info.channels_b or info.channels} channels, but the {net_name} translator maps "
                        f"{in_channels} -> {out_channels}. Set data.channels to the training data's.")
    truth = info.extras.get("true_mapping") if info.kind == "unpaired" else None
    requested = requested or list(DEFAULT_METRICS[info.kind])
    paired_req, image_req = _check_for_data(requested, info, truth)
    inputs, targets = _columns(dataset)
    if n is not None and n < 1:
        raise ConfigError(f"n (the number of test inputs to translate) must be at least 1, got {n}.")
    n_inputs = len(inputs) if n is None else min(n, len(inputs))     # the card records the N used

    # ---- translate, quantise, accumulate the paired means ---------------------------------------------------
    from ..data import true_translation
    translate = recipe.sampler(nets, direction)
    # Paired data: only the asked-for numbers; a known truth: all three (truth_*), whatever was asked.
    if info.kind == "paired":
        against, paired_names, prefix = "dataset pairs", [m for m in PAIRED_NAMES if m in paired_req], ""
    else:
        against, paired_names, prefix = f"true mapping {truth!r}", list(PAIRED_NAMES) if truth else [], TRUTH_PREFIX
    against = against if paired_names else None
    sums = {k: 0.0 for k in PAIRED_NAMES}
    outputs_u8 = []
    for begin in range(0, n_inputs, batch_size):
        idx = torch.arange(begin, min(begin + batch_size, n_inputs))
        real_in = _images(inputs, idx)                                         # [B, Cin, H, W] in [-1, 1]
        fake_out = translate(real_in).float().cpu()                            # [B, Cout, H, W]
        if fake_out.shape != (len(idx), out_channels, *real_in.shape[-2:]):
            raise DataError(f"The translator gave {tuple(fake_out.shape)} for inputs {tuple(real_in.shape)}.")
        if image_req:
            outputs_u8.append(to_uint8(fake_out))                              # what a saved file would hold
        if against is not None:
            # The known true mappings are self-inverse (gankit.data.translation), so they serve both directions.
            target = _images(targets, idx) if info.kind == "paired" else true_translation(truth, real_in)
            for k, v in paired_metrics(fake_out, target.float().cpu(), quantize=True).items():
                sums[k] += v * len(idx)                                        # per-image averages: exact

    values: dict[str, Any] = {}
    per_metric: dict[str, Any] = {}
    if against is not None:
        means = {k: s / n_inputs for k, s in sums.items()}
        for name in paired_names:
            spec = metrics.get(name)
            values.update({prefix + k: v for k, v in spec.compute(means, None, EvalOptions()).items()})
            per_metric[name] = {"metric": name, "n_gen": n_inputs, "against": against, "layer": PAIRS,
                                "params": spec.params(EvalOptions()),
                                "reference": {k: data_desc[k] for k in ("spec", "spec_b", "split", "side")}}

    # ---- distribution metrics of the translations against the target domain --------------------------------
    image_card = None
    if image_req:
        translated = torch.cat(outputs_u8)                                     # uint8 [N, Cout, H, W]
        ref_source = DatasetSource(targets, n_ref, ref_seed, batch_size,
                                   description={**data_desc, "side": "target domain (b)"})
        image_card = evaluate(image_req, translated, ref_source, extractor=extractor, extractors=extractors,
                              device=dev, batch_size=batch_size, inception_weights=inception_weights,
                              verify_weights=verify_weights, download=download, progress=progress, **options)
        values.update(image_card["metrics"])
        per_metric.update(image_card["metric_protocols"])

    protocol = dict(image_card["protocol"]) if image_card else {"device": str(dev)}
    protocol.update({
        "task": "image-to-image translation",
        "generated": {"kind": "translator", "recipe": type(recipe).__name__, "network": net_name,
                      "direction": direction, "trained_direction": recipe.trained_direction, "n": n_inputs,
                      "inputs": f"the first {n_inputs} of the {data_desc['split']} split, in order",
                      "batch_size": batch_size},
        "data": data_desc, "n_gen": n_inputs,
        "n_ref": image_card["protocol"]["n_ref"] if image_card else (n_inputs if against else None),
        "paired_against": against, "image_shape": [out_channels, *real_in.shape[-2:]],
        "quantisation": f"outputs and targets: {QUANTISATION}",
    })
    return _card(values, per_metric, protocol, start)


def load_held_out(data_cfg: Any, split: str, direction: str, resolution: int) -> tuple[Any, dict[str, Any]]:
    """The ``split`` split of ``data_cfg`` with 'a' = the input side of ``direction``, at the training size.

    Builtins and folders laid out as train/ test/ (val/) or trainA/ testA/ ... have held-out splits; other data
    (one folder, an npz) does not, and then the configured split is used with a warning.
    """
    from ..data import load_dataset
    cfg = dataclasses.replace(data_cfg, split=split, direction=direction, xflip=False, labels=False,
                              resolution=data_cfg.resolution or resolution)
    held_out = has_split(cfg, split)
    if not held_out:
        warnings.warn(f"{cfg.spec!r} has no {split} split (no {split}/ or {split}A/ subfolders): evaluating on its "
                      f"{data_cfg.split} split, which the model may have trained on. Put held-out data in "
                      f"{split}/ (or {split}A/ and {split}B/) subfolders.", stacklevel=3)
        cfg = dataclasses.replace(cfg, split=data_cfg.split)
    dataset = load_dataset(cfg, kinds=("paired", "unpaired"))   # pairs when the data has them: they are targets
    desc = {"spec": cfg.spec, "spec_b": cfg.spec_b, "split": cfg.split, "requested_split": split,
            "held_out": held_out, "kind": dataset.info.kind, "direction": direction, "resolution": cfg.resolution,
            "channels": cfg.channels, "side": "inputs a, targets b", "name": dataset.info.name}
    return dataset, desc


def has_split(cfg: Any, split: str) -> bool:
    """Whether ``cfg.split = split`` selects its own images (asks the data layer's folder rules)."""
    from ..data.folders import split_folder
    from ..data.paired import is_cyclegan_root
    paths = [Path(p) for p in (cfg.spec, cfg.spec_b) if p]
    if not Path(cfg.spec).exists():
        return True                                   # a builtin: its loader owns its splits
    for p in paths:
        if not p.is_dir():
            return False                              # an npz / csv file: one set
        if is_cyclegan_root(p):
            if not ((p / f"{split}A").is_dir() and (p / f"{split}B").is_dir()):
                return False
        elif split_folder(p, split) == p:
            return False
    return True


# ---- helpers ----------------------------------------------------------------------------------------------------

def _split_names(names: str | Iterable[str] | None) -> list[str]:
    if names is None:
        return []
    items = names.split(",") if isinstance(names, str) else [str(s) for s in names]
    return [s.strip() for s in items if s.strip()]


def _check_for_data(requested: list[str], info: Any, truth: str | None) -> tuple[list[str], list[str]]:
    """Split the request into paired and image metrics; a metric the data cannot give is a ConfigError."""
    paired = [m for m in requested if metrics.get(m.partition("@")[0]).output == PAIRS]
    other = [m for m in requested if m not in paired]
    image_names = [n for n in metrics.names() if metrics.get(n).output not in (PAIRS, "")]
    works = image_names + (list(PAIRED_NAMES) if info.kind == "paired" or truth else [])
    why = ""
    bad = [m for m in other if metrics.get(m.partition("@")[0]).output == ""]
    if bad:
        why = f"{', '.join(bad)} measure{'s' if len(bad) == 1 else ''} 2-D samples, not images"
    elif paired and info.kind == "unpaired" and not truth:
        bad = paired
        why = (f"{', '.join(paired)} compare each output with its true target, which {info.name!r} (unpaired, no "
               f"known true mapping) does not have")
    if bad:
        raise ConfigError(f"{why}. Metrics that work for this data: {', '.join(works)}.")
    return paired, other


def _columns(dataset: Any) -> tuple[Any, Any]:
    """(input images, target images) as datasets of {'image'} items."""
    if dataset.info.kind == "unpaired":
        return dataset.domain_a, dataset.domain_b
    if hasattr(dataset, "select"):   # a view of the stored columns (uint8 stays uint8 for the reference pass)
        sides = [dataclasses.replace(dataset.info, kind="image", channels=c, channels_b=0)
                 for c in (dataset.info.channels, dataset.info.channels_b or dataset.info.channels)]
        return dataset.select({"image": "a"}, sides[0]), dataset.select({"image": "b"}, sides[1])
    raise DataError(f"Cannot read the sides of {type(dataset).__name__} separately.")   # pragma: no cover


def _images(column: Any, idx: torch.Tensor) -> torch.Tensor:
    """float [B, C, H, W] in [-1, 1] for rows ``idx`` of a single-domain dataset."""
    if hasattr(column, "get_batch"):
        return column.get_batch(idx)["image"]
    return torch.stack([column[int(i)]["image"] for i in idx])
