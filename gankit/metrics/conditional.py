"""Conditional evaluation: metrics that sample each class on its own, for every class-conditional model.

    class_consistency@classifier:clf.pt   share of samples of class c that gankit's domain classifier assigns
                                          to c, over equal numbers per class (mean and worst class)
    intra_fid[@extractor]                 FID between the samples of class c and the reference images of class
                                          c, averaged over classes (Miyato & Koyama 2018, sec. 5: "intra-FID")
    truncation_curve[@extractor]          FID, precision and recall at each truncation setting of the model
                                          (Brock et al. 2019, fig. 2 / 17 trade-off; the sampler's --truncation:
                                          BigGAN's threshold on |z|, StyleGAN2's psi)

They are registered in the metrics registry with ``output = PER_CLASS``; ``evaluate`` hands requests for them
here (one seam: ``Sampler.evaluate`` -> ``metrics.evaluate``), so every family whose sampler has
``draw(n, seed, label=c)`` over a generator with ``num_classes > 0`` gets them, in ``gankit eval`` and in
training-time metrics. Settings (``EvalOptions``): ``class_n`` samples per class (0: ``n`` split evenly over the
classes, e.g. ``metrics_n`` during training; 1000 per class without ``n``), ``truncations`` the curve's settings. Samples of class c use seeds ``seed + c * SEED_STRIDE + batch``; the reference of class c is every
reference image with label c (at most ``n_ref`` of them).

Extraction here runs on one process (a ``shard`` is not used: under torchrun every rank computes the same
numbers).
"""
from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch

from ..errors import ConfigError, DataError
from .base import PER_CLASS, EvalOptions, Extractor, FeatureStats, MetricSpec, make_extractor, metrics, resolve_device
from .fid import fid_from_stats
from .sources import GeneratorSource, TensorSource, Wants, as_uint8, extract

SEED_STRIDE = 1_000_003      # seeds of class c start at seed + c * SEED_STRIDE
DEFAULT_CLASS_N = 1000       # samples per class when neither class_n nor n is given


def class_consistency(predicted: torch.Tensor, asked: torch.Tensor, num_classes: int) -> dict[str, Any]:
    """Share of samples whose predicted class is the class they were generated for; per class and overall.

    predicted, asked: int [N]. Returns {"class_consistency": mean over classes of the per-class share,
    "class_consistency_min": the worst class, "per_class": [share of class c]}.
    """
    per_class = []
    for c in range(num_classes):
        mask = asked == c
        if not mask.any():
            raise ConfigError(f"class consistency: no samples were asked for class {c}.")
        per_class.append(float((predicted[mask] == c).double().mean()))
    return {"class_consistency": float(np.mean(per_class)), "class_consistency_min": float(min(per_class)),
            "per_class": per_class}


# ---- what every per-class metric needs ---------------------------------------------------------------------------

def _num_classes(sampler: Any) -> int:
    k = getattr(sampler, "num_classes", None)
    if k is None:
        k = getattr(getattr(sampler, "G", None), "num_classes", 0)
    return int(k or 0)


def _class_sampler(sampler: Any, label: int, truncation: float | None = None):
    """``(n, seed) -> images`` of one class (and one truncation setting)."""
    extra = {} if truncation is None else {"truncation": truncation}
    return lambda n, seed: sampler.draw(n=n, seed=seed, label=label, **extra)


def _reference_by_class(ref: Any, num_classes: int, shape: tuple[int, int, int], data_options: dict[str, Any] | None,
                        n_ref: int | None) -> tuple[list[torch.Tensor], dict[str, Any]]:
    """The reference images of each class, uint8 [N_c, C, H, W], from a data spec or a labelled dataset."""
    if isinstance(ref, str):
        from ..config import DataConfig
        from ..data import load_dataset
        channels, height, width = shape
        options = {"resolution": height if height == width else 0, "channels": channels, **(data_options or {})}
        try:
            dataset = load_dataset(DataConfig(spec=ref, labels=True, **options), kinds=("image",))
        except TypeError as e:
            raise ConfigError(f"Unknown data option for the reference: {e}") from None
        desc = {"kind": "data", "spec": ref, **{k: v for k, v in options.items() if v not in (None, "")}}
    elif hasattr(ref, "__getitem__") and hasattr(ref, "__len__") and hasattr(ref, "info"):
        dataset, desc = ref, {"kind": "dataset", "name": ref.info.name}
    else:
        raise ConfigError("Per-class metrics need a labelled reference: a data spec (mnist, digits, a class "
                          "folder...) or a gankit dataset with labels.")
    if hasattr(dataset, "get_batch"):
        items = dataset.get_batch(torch.arange(len(dataset)))
        images, labels = items["image"], items.get("label")
    else:
        rows = [dataset[i] for i in range(len(dataset))]
        images = torch.stack([r["image"] for r in rows])
        labels = torch.stack([torch.as_tensor(r["label"]) for r in rows]) if "label" in rows[0] else None
    if labels is None:
        raise DataError(f"The reference {desc} has no labels: per-class metrics compare each class with the "
                        f"reference images of that class.")
    if dataset.info.num_classes != num_classes:
        raise DataError(f"The model has {num_classes} classes, the reference {desc} has {dataset.info.num_classes}.")
    per_class = []
    for c in range(num_classes):
        imgs = images[labels.long() == c]
        if len(imgs) < 2:
            raise DataError(f"The reference has {len(imgs)} images of class {c}; per-class FID needs at least 2.")
        per_class.append(as_uint8(imgs[:n_ref] if n_ref else imgs, "The reference"))
    desc["n_per_class"] = [len(x) for x in per_class]
    return per_class, desc


def _extract_class(sampler: Any, c: int, n: int, seed: int, batch_size: int, extractor: Extractor, output: str,
                   keep: bool, truncation: float | None = None) -> FeatureStats:
    source = GeneratorSource(_class_sampler(sampler, c, truncation), n, seed + c * SEED_STRIDE, batch_size)
    wants: Wants = {"x": {output: (output == "features", keep)}}
    return extract(source, {"x": extractor}, wants)["x"][output]


# ---- the metrics -------------------------------------------------------------------------------------------------

def _compute_consistency(ctx: dict[str, Any], extractor: Extractor) -> dict[str, Any]:
    predicted, asked = [], []
    for c in range(ctx["num_classes"]):
        logits = _extract_class(ctx["sampler"], c, ctx["class_n"], ctx["seed"], ctx["batch_size"], extractor,
                                "logits", keep=True).features()
        predicted.append(logits.argmax(dim=1).cpu())
        asked.append(torch.full((len(logits),), c))
    out = class_consistency(torch.cat(predicted), torch.cat(asked), ctx["num_classes"])
    return {"class_consistency": out["class_consistency"], "class_consistency_min": out["class_consistency_min"],
            "protocol": {"per_class": out["per_class"], "n_per_class": ctx["class_n"]}}


def _compute_intra_fid(ctx: dict[str, Any], extractor: Extractor) -> dict[str, Any]:
    refs, ref_desc = ctx["reference"]()
    fids = []
    for c in range(ctx["num_classes"]):
        gen = _extract_class(ctx["sampler"], c, ctx["class_n"], ctx["seed"], ctx["batch_size"], extractor,
                             "features", keep=False)
        ref = extract(TensorSource(refs[c], batch_size=ctx["batch_size"]), {"x": extractor},
                      {"x": {"features": (True, False)}})["x"]["features"]
        fids.append(fid_from_stats(gen, ref))
    return {"intra_fid": float(np.mean(fids)), "intra_fid_max": float(max(fids)),
            "protocol": {"per_class": fids, "n_per_class": ctx["class_n"], "reference": ref_desc}}


def _compute_truncation_curve(ctx: dict[str, Any], extractor_spec: str) -> dict[str, Any]:
    sampler = ctx["sampler"]
    if "truncation" not in getattr(sampler, "options", ()):
        raise ConfigError("truncation_curve needs a model with a truncation trick (its sampler takes "
                          "--truncation: biggan, stylegan2); this one has none.")
    evaluate = ctx["evaluate"]
    args = ctx["args"]
    settings = [None, *ctx["opts"].truncations]
    curve, values = [], {}
    for t in settings:
        gen = sampler if t is None else (lambda n, seed, t=t: sampler.draw(n=n, seed=seed, truncation=t))
        card = evaluate(["fid", "pr"], gen, args["ref"], args["n_gen"], extractor=extractor_spec,
                        n_ref=args["n_ref"], seed=args["seed"], batch_size=args["batch_size"], device=args["device"],
                        inception_weights=args["inception_weights"], verify_weights=args["verify_weights"],
                        download=args["download"], cache=args["cache"], data_options=args["data_options"],
                        extractors=ctx["extractors"], **args["options"])
        point = {"truncation": t, **{k: card["metrics"][k] for k in ("fid", "precision", "recall")}}
        curve.append(point)
        tag = "none" if t is None else f"{t:g}"
        values.update({f"trunc_{tag}_{k}": point[k] for k in ("fid", "precision", "recall")})
    best = min(curve, key=lambda p: p["fid"])
    return {"truncation_best_fid": best["fid"], **values,
            "protocol": {"curve": curve, "best_truncation": best["truncation"], "n_gen": args["n_gen"]}}


metrics.register("class_consistency")(MetricSpec(
    name="class_consistency", values=("class_consistency", "class_consistency_min"), output=PER_CLASS,
    needs_ref=False, keep_gen=True, keep_ref=False, compute=_compute_consistency, requires_classifier=True,
    needs_moments=False, params=lambda o: {"class_n": o.class_n, "prediction": "argmax of the classifier"},
    description="Share of class-c samples the domain classifier assigns to class c (mean and worst class)"))

metrics.register("intra_fid")(MetricSpec(
    name="intra_fid", values=("intra_fid", "intra_fid_max"), output=PER_CLASS, needs_ref=True, keep_gen=False,
    keep_ref=False, compute=_compute_intra_fid, higher_is_better=False,
    params=lambda o: {"class_n": o.class_n, "reference": "all reference images of the class (n_ref caps it)"},
    description="FID of each class against the reference images of that class, averaged (Miyato & Koyama 2018)"))

metrics.register("truncation_curve")(MetricSpec(
    name="truncation_curve", values=("truncation_best_fid",), output=PER_CLASS, needs_ref=True, keep_gen=True,
    keep_ref=True, compute=_compute_truncation_curve, higher_is_better=False,
    params=lambda o: {"truncations": list(o.truncations), "metrics": ["fid", "pr"], "pr_k": o.pr_k},
    description="FID, precision and recall at each truncation setting (Brock et al. 2019, fig. 17)"))


def evaluate_per_class(requests: list[tuple[MetricSpec, str]], args: dict[str, Any], evaluate: Any, card: Any
                       ) -> dict[str, Any]:
    """``evaluate``'s branch for the metrics above; ``args`` are evaluate's arguments, ``evaluate`` and ``card``
    its function and card maker (passed in: this module is imported by evaluate's). The other requested metrics
    run through ``evaluate`` as usual and share the card (and the extractors)."""
    _card = card
    start = time.perf_counter()
    sampler = args["gen"]
    names = [spec.name for spec, _ in requests if spec.output == PER_CLASS]
    num_classes = _num_classes(sampler)
    if not hasattr(sampler, "draw") or num_classes < 2:
        raise ConfigError(f"{', '.join(names)} evaluate class-conditional models (a sampler that draws a given "
                          f"class; e.g. sngan, sagan, biggan, cgan checkpoints); this one has no classes.")
    opts = EvalOptions(**args["options"])
    built = args["extractors"] if args["extractors"] is not None else {}
    dev = resolve_device(args["device"])
    rest = [f"{spec.name}@{ext}" for spec, ext in requests if spec.output != PER_CLASS]
    if rest:
        result = evaluate(rest, **{k: v for k, v in args.items() if k not in ("metrics", "options", "extractors")},
                          extractors=built, **args["options"])
    else:
        result = _card({}, {}, {"generated": {"kind": "sampler, class by class", "base_seed": args["seed"]},
                              "device": str(dev), "seeds": {"generator_base_seed": args["seed"]},
                              "options": {k: getattr(opts, k) for k in opts.__dataclass_fields__}}, start)
    shape = tuple(sampler.draw(n=1, seed=args["seed"], label=0).shape[1:])
    cached: dict[str, Any] = {}

    def reference():
        if "ref" not in cached:
            if args["ref"] is None:
                raise ConfigError("intra_fid compares each class with the reference images of that class: give ref=.")
            cached["ref"] = _reference_by_class(args["ref"], num_classes, shape, args["data_options"], args["n_ref"])
        return cached["ref"]

    class_n = opts.class_n or (max(1, args["n_gen"] // num_classes) if args["n_gen"] else DEFAULT_CLASS_N)
    ctx = {"sampler": sampler, "num_classes": num_classes, "opts": opts, "seed": args["seed"], "class_n": class_n,
           "batch_size": args["batch_size"], "reference": reference, "args": args, "extractors": built,
           "evaluate": evaluate}
    for spec, ext in requests:
        if spec.output != PER_CLASS:
            continue
        if spec.name == "truncation_curve":
            out = dict(spec.compute(ctx, ext))
        else:
            if ext not in built:
                built[ext] = make_extractor(ext, device=dev, batch_size=args["batch_size"],
                                            inception_weights=args["inception_weights"],
                                            verify_weights=args["verify_weights"], download=args["download"])
            out = dict(spec.compute(ctx, built[ext]))
        extra = out.pop("protocol", {})
        key = spec.name if spec.name not in result["metric_protocols"] else f"{spec.name}@{ext}"
        result["metrics"].update(out)
        result["metric_protocols"][key] = {"metric": spec.name, "extractor": built[ext].identity() if ext in built
                                         else ext, "layer": "per class", "params": spec.params(opts),
                                         "num_classes": num_classes, **extra}
        if spec.name != "truncation_curve":
            result["metric_protocols"][key]["n_gen"] = class_n * num_classes
    result["protocol"]["per_class"] = {"seeds": f"class c: seed + c * {SEED_STRIDE} + batch index",
                                     "class_n": class_n, "num_classes": num_classes}
    result["protocol"]["wall_time_s"] = round(time.perf_counter() - start, 3)
    return result
