"""``evaluate``: metrics of generated images against a reference, every number with its protocol.

    result = evaluate(["fid", "kid"], sampler, "mnist", n_gen=10_000)
    result["metrics"]           {"fid": 3.2, "kid": 0.0011, "kid_std": 0.0002}
    result["metric_protocols"]  per metric: extractor identity, layer, N gen / ref, reference, parameters
    result["protocol"]          extractors in full, sources, seeds, device, dtype, versions, wall time

Plan: group the requested metrics by extractor; one pass over the generated images feeds every extractor and
every statistic (mean/cov in float64, raw features only where a metric needs them); one pass (or the cache)
over the reference likewise; then each metric's function turns statistics into numbers.

A metric may name its own extractor as "name@extractor" (``modes@classifier:clf.pt``); the others use
``extractor`` ("auto" = the standard Inception features).
"""
from __future__ import annotations

import dataclasses
import json
import os
import platform
import time
from pathlib import Path
from typing import Any, Iterable

import torch

from ..version import __version__
from ..io import atomic_write_text
from ..errors import ConfigError, DataError
from .base import (PER_CLASS, EvalOptions, Extractor, MetricSpec, Shard, make_extractor, parse_extractor_spec,
                   resolve_device, shard_size)
from .base import metrics as metric_registry
from .reference import reference_stats
from .sources import Wants, call_generator, extract, image_source, takes_start

CARD_FORMAT = "gankit-eval"
CARD_VERSION = 1
QUANTISATION = "gankit.images.to_uint8: floor(x*127.5+128) clamped to [0, 255], before any resize"


def parse_metrics(names: str | Iterable[str], default_extractor: str) -> list[tuple[MetricSpec, str]]:
    """"fid,kid,modes@classifier:c.pt" -> [(spec, extractor spec), ...] (unknown names list the valid ones)."""
    items = [s.strip() for s in names.split(",")] if isinstance(names, str) else [str(s).strip() for s in names]
    items = [s for s in items if s]
    if not items:
        raise ConfigError(f"No metrics given. Valid metrics: {', '.join(metric_registry.names())}.")
    out, seen = [], set()
    for item in items:
        name, _, ext = item.partition("@")
        spec = metric_registry.get(name)
        ext = ext or default_extractor
        if spec.requires_classifier and parse_extractor_spec(ext)[0] != "classifier":
            raise ConfigError(f"Metric {name!r} counts classes of a gankit classifier: use "
                              f"--extractor classifier:PATH or {name}@classifier:PATH.")
        if (name, ext) in seen:
            continue
        seen.add((name, ext))
        out.append((spec, ext))
    return out


def evaluate(metrics: str | Iterable[str], gen: Any, ref: Any = None, n_gen: int | None = None, *,
             extractor: str = "auto", n_ref: int | None = None, seed: int = 0, batch_size: int = 64,
             device: str | torch.device | None = None, inception_weights: str | os.PathLike | None = None,
             verify_weights: bool | None = None, download: bool = True, cache: bool = True,
             data_options: dict[str, Any] | None = None, ref_seed: int = 0, progress: bool = False,
             extractors: dict[str, Extractor] | None = None, shard: Shard | None = None,
             **options: Any) -> dict[str, Any]:
    """Compute ``metrics`` ("fid,kid" or a list) for ``gen`` against ``ref``; returns numbers and their protocol.

    gen: callable ``(n, seed) -> float [n, C, H, W] in [-1, 1]`` (called in batches with seed = seed +
         batch index; for "toy", ``-> [n, 2]``), an image tensor (uint8, or float in [-1, 1]), or a folder.
    ref: data spec (builtin name or path; loaded at the generated images' resolution and channels), an npz
         from ``gankit ref``, an image tensor or a dataset. Not needed for "is" and "modes".
    n_gen: generated images (default 10000 for a callable, all of a tensor / folder); n_ref: reference
         images (default all; fewer = seeded random subset with ``ref_seed``).
    options: fields of ``EvalOptions`` (kid_subsets, kid_subset_size, is_splits, pr_k, dc_k, fid_bootstrap,
         rng_seed, ...). ``extractors``: a dict {spec: Extractor}; evaluate uses the ones in it and adds those
         it builds, so a caller that keeps the dict (the trainer) loads the Inception weights once.
    shard: several processes share the work (``base.Shard``: rank, world_size, all_gather; the trainer passes
         ``World.metrics_shard()``). Every rank calls evaluate with the same arguments, extracts the batches
         i with i % world_size == rank of the generated images and of a reference that is not cached, and gets
         the same card as one process would (statistics merged across ranks; cache files written by rank 0).
         Rank 0 builds the extractors first (a weights download happens once), then the others.
    """
    args = dict(locals())                  # for the per-class metrics (metrics/conditional.py), which re-enter
    start = time.perf_counter()
    try:
        opts = EvalOptions(**options)
    except TypeError as e:
        valid = ", ".join(f.name for f in dataclasses.fields(EvalOptions))
        raise ConfigError(f"Unknown evaluation option ({e}). Valid options: {valid}.") from None
    default_extractor = "inception" if extractor in ("auto", "", None) else extractor
    requests = parse_metrics(metrics, default_extractor)
    if any(spec.output == PER_CLASS for spec, _ in requests):
        from .conditional import evaluate_per_class     # class consistency, intra-class FID, truncation curve
        return evaluate_per_class(requests, args, evaluate, _card)
    paired = [spec.name for spec, _ in requests if spec.output == "pairs"]
    if paired:
        raise ConfigError(f"{', '.join(paired)} compare each output with its own target image: they evaluate "
                          f"image-to-image models (gankit.metrics.evaluate_translation, or `gankit eval --ckpt` on "
                          f"a pix2pix / CycleGAN checkpoint), not samples against a reference set.")
    dev = resolve_device(device)
    if any(spec.output == "" for spec, _ in requests):
        if not all(spec.output == "" for spec, _ in requests):
            raise ConfigError("The toy metric works on 2-D samples; evaluate it separately from image metrics.")
        return _evaluate_vectors(requests, gen, ref, n_gen, seed, batch_size, opts, data_options, start)

    gen_source = image_source(gen, n_gen, seed, batch_size, "generated")   # checks the input before loading nets

    # ---- extractors and what each must produce -------------------------------------------------------------
    built = extractors if extractors is not None else {}
    sharded = shard_size(shard) > 1
    if sharded and shard.rank != 0:
        # Wait for rank 0 to have fetched and checked the weights; its failure is everybody's (no rank is left
        # waiting in a collective that rank 0 never reaches).
        failure = shard.all_gather(None)[0]
        if failure:
            raise ConfigError(f"Rank 0 could not build the feature extractors: {failure}")
    try:
        for _, ext in requests:
            if ext not in built:
                built[ext] = make_extractor(ext, device=dev, batch_size=batch_size,
                                            inception_weights=inception_weights, verify_weights=verify_weights,
                                            download=download)
    except Exception as e:
        if sharded and shard.rank == 0:
            shard.all_gather(f"{type(e).__name__}: {e}")
        raise
    if sharded and shard.rank == 0:
        shard.all_gather(None)
    gen_wants: Wants = {}
    ref_wants: Wants = {}
    for spec, ext in requests:
        if spec.output not in built[ext].outputs:
            raise ConfigError(f"Metric {spec.name!r} needs {spec.output!r} from extractor {ext!r}, which gives "
                              f"only {', '.join(built[ext].outputs)}.")
        _want(gen_wants, ext, spec.output, spec.needs_moments, spec.keeps_gen(opts))
        if spec.needs_ref:
            # Reference moments always: they are cheap next to the features and every stats file holds them.
            _want(ref_wants, ext, spec.output, True, spec.keeps_ref(opts))

    # A statistics file is read before any image is generated: one without the features KID / PR / DC need
    # (or made by another extractor) fails now, not after the generated pass.
    ref_stats, ref_desc = {}, None
    if ref_wants and isinstance(ref, (str, Path)) and str(ref).endswith(".npz"):
        ref_stats, ref_desc = reference_stats(ref, built, ref_wants, n=n_ref, seed=ref_seed, batch_size=batch_size,
                                              data_options=None, cache=cache, progress=progress, shard=shard)

    # ---- generated images: one pass feeds every extractor ----------------------------------------------------
    if sharded:
        # Rank 0's shape for all: on the others shape() would generate batch 0, which is not theirs.
        channels, height, width = shard.all_gather(gen_source.shape() if shard.rank == 0 else None)[0]
    else:
        channels, height, width = gen_source.shape()
    gen_stats = extract(gen_source, built, gen_wants, progress, "generated", shard=shard)

    # ---- reference: cache, file, or one pass -----------------------------------------------------------------
    if ref_wants and ref_desc is None:
        if ref is None:
            needing = sorted({s.name for s, _ in requests if s.needs_ref})
            raise ConfigError(f"Metrics {', '.join(needing)} compare with a reference: give ref= (a data spec, "
                              f"a stats .npz from `gankit ref`, or images).")
        data_opts = {"resolution": height if height == width else 0, "channels": channels,
                     **(data_options or {})}
        ref_stats, ref_desc = reference_stats(ref, built, ref_wants, n=n_ref, seed=ref_seed, batch_size=batch_size,
                                              data_options=data_opts, cache=cache, progress=progress,
                                              shard=shard)

    # ---- numbers, each with its protocol ---------------------------------------------------------------------
    values: dict[str, Any] = {}
    per_metric: dict[str, Any] = {}
    for spec, ext in requests:
        gen_st = gen_stats[ext][spec.output]
        ref_st = ref_stats[ext][spec.output] if spec.needs_ref else None
        out = dict(spec.compute(gen_st, ref_st, opts))
        extra = out.pop("protocol", {})
        # The same metric on a second extractor: its numbers are named "fid@classifier:clf.pt".
        key = spec.name if spec.name not in per_metric else f"{spec.name}@{ext}"
        suffix = key[len(spec.name):]
        values.update({f"{k}{suffix}": v for k, v in out.items()})
        per_metric[key] = {"metric": spec.name, "extractor": built[ext].identity(), "layer": spec.output,
                           "n_gen": gen_st.n, "params": spec.params(opts), **extra}
        if spec.needs_ref:
            per_metric[key].update(n_ref=ref_st.n, reference=_reference_identity(ref_desc))
    sharding = {"sharding": {"world_size": shard_size(shard), "batches": "i % world_size == rank"}} if sharded else {}
    return _card(values, per_metric, {
        **sharding, "extractors": {ext: built[ext].protocol() for ext in {e for _, e in requests}},
        "generated": gen_source.describe(), "reference": ref_desc, "n_gen": gen_source.n,
        "n_ref": ref_desc.get("n") if ref_desc else None, "image_shape": [channels, height, width],
        "quantisation": QUANTISATION, "statistics_dtype": "float64", "device": str(dev),
        "seeds": {"generator_base_seed": seed, "reference_subset_seed": ref_seed, "metric_rng_seed": opts.rng_seed},
        "options": dataclasses.asdict(opts)}, start)


def prepare_evaluation(metrics: str | Iterable[str], n_gen: int | None = None, n_ref: int | None = None, *,
                       extractor: str = "auto", device: str | torch.device | None = None, batch_size: int = 64,
                       inception_weights: str | os.PathLike | None = None, verify_weights: bool | None = None,
                       download: bool = True, extractors: dict[str, Extractor] | None = None,
                       **options: Any) -> dict[str, Extractor]:
    """Check, before any work, what an evaluation of ``metrics`` will need; build its feature extractors.

    For validation before training (``Sampler.prepare``): the metric names and their options, the extractors
    (the Inception weights file found, read as data and verified; a classifier file loaded), that each extractor
    gives what its metrics read, and that ``n_gen`` generated and ``n_ref`` reference samples (None = not known
    yet) are enough for every metric (``MetricSpec.min_n``). The extractors go into ``extractors`` (returned),
    so a caller that keeps the dict does not load them twice. Paired metrics (psnr, ssim, l1) and the toy metric
    need no extractor.
    """
    try:
        opts = EvalOptions(**options)
    except TypeError as e:
        valid = ", ".join(f.name for f in dataclasses.fields(EvalOptions))
        raise ConfigError(f"Unknown evaluation option ({e}). Valid options: {valid}.") from None
    default_extractor = "inception" if extractor in ("auto", "", None) else extractor
    built = extractors if extractors is not None else {}
    for spec, ext in parse_metrics(metrics, default_extractor):
        need = spec.min_samples(opts)
        for n, what in ((n_gen, "generated samples (metrics_n)"), (n_ref if spec.needs_ref else None,
                                                                   "reference items")):
            if n is not None and n < need:
                raise ConfigError(f"Metric {spec.name!r} needs at least {need} {what.split(' (')[0]}, but the "
                                  f"evaluation has {n} {what}. Raise it, or drop {spec.name!r}.")
        if spec.output in ("", "pairs"):
            continue
        if ext not in built:
            built[ext] = make_extractor(ext, device=resolve_device(device), batch_size=batch_size,
                                        inception_weights=inception_weights, verify_weights=verify_weights,
                                        download=download)
        if spec.output not in built[ext].outputs:
            raise ConfigError(f"Metric {spec.name!r} needs {spec.output!r} from extractor {ext!r}, which gives "
                              f"only {', '.join(built[ext].outputs)}.")
    return built


def _want(wants: Wants, ext: str, output: str, moments: bool, keep: bool) -> None:
    old_moments, old_keep = wants.setdefault(ext, {}).get(output, (False, False))
    wants[ext][output] = (old_moments or moments, old_keep or keep)


def _reference_identity(desc: dict[str, Any] | None) -> dict[str, Any]:
    """The parts of the reference description that decide comparability (not file paths of caches)."""
    if not desc:
        return {}
    if desc.get("kind") == "stats file":
        return desc.get("reference") or {"stats_file": Path(desc["path"]).name}
    return {k: v for k, v in desc.items() if k not in ("mtime_ns", "size", "batch_size")}


def _versions() -> dict[str, str]:
    out = {"gankit": __version__, "torch": torch.__version__, "python": platform.python_version()}
    try:
        import torch_fidelity
        out["torch_fidelity"] = torch_fidelity.__version__
    except ImportError:  # pragma: no cover - a declared dependency
        pass
    return out


def _card(values: dict[str, Any], per_metric: dict[str, Any], protocol: dict[str, Any], start: float
          ) -> dict[str, Any]:
    protocol = {**protocol, "versions": _versions(), "wall_time_s": round(time.perf_counter() - start, 3)}
    return {"format": CARD_FORMAT, "version": CARD_VERSION, "metrics": values, "metric_protocols": per_metric,
            "protocol": protocol}


def _evaluate_vectors(requests, gen, ref, n_gen, seed, batch_size, opts, data_options, start) -> dict[str, Any]:
    """The toy metric: 2-D samples from ``gen(n, seed)`` (or a tensor [N, 2]) against a mixture's modes."""
    n = n_gen or 2500   # VEEGAN / PacGAN draw 2500 samples
    if torch.is_tensor(gen):
        samples = gen[:n].detach().double().cpu()
        gen_desc = {"kind": "tensor", "n": len(samples)}
    elif callable(gen):
        chunks = []
        indexed = takes_start(gen)
        with torch.no_grad():
            for index, s in enumerate(range(0, n, batch_size)):
                chunks.append(call_generator(gen, min(batch_size, n - s), seed + index, s, indexed)
                              .detach().double().cpu())
        samples = torch.cat(chunks)
        gen_desc = {"kind": "generator", "n": n, "base_seed": seed, "batch_size": batch_size}
    else:
        raise ConfigError("The toy metric needs a callable (n, seed) -> [n, 2] or a tensor [N, 2].")
    if isinstance(ref, dict):
        extras, ref_desc = ref, {"kind": "modes", "n_modes": len(ref.get("centers", []))}
    elif isinstance(ref, str):
        from ..config import DataConfig
        from ..data import load_dataset
        dataset = load_dataset(DataConfig(spec=ref, **(data_options or {})), kinds=("vector",))
        extras, ref_desc = dataset.info.extras, {"kind": "data", "spec": ref}
    elif hasattr(ref, "info"):
        extras, ref_desc = ref.info.extras, {"kind": "dataset", "name": ref.info.name}
    else:
        raise DataError("The toy metric needs ref= a toy data spec (ring8, grid25), its dataset, or "
                        "{'centers': [[x, y], ...], 'std': s}.")
    values, per_metric = {}, {}
    for spec, _ in requests:
        out = dict(spec.compute(samples, extras, opts))
        extra = out.pop("protocol", {})
        values.update(out)
        per_metric[spec.name] = {"metric": spec.name, "n_gen": len(samples), "reference": ref_desc,
                                 "params": spec.params(opts), **extra}
    return _card(values, per_metric, {"generated": gen_desc, "reference": ref_desc, "n_gen": len(samples),
                                      "seeds": {"generator_base_seed": seed}}, start)


# ---- evaluation cards ----------------------------------------------------------------------------------------

def save_card(result: dict[str, Any], path: str | os.PathLike) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(result, indent=2, default=_json_default) + "\n")
    return path


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "tolist"):
        return obj.tolist()
    return str(obj)


def load_card(path: str | os.PathLike) -> dict[str, Any]:
    path = Path(path)
    try:
        card = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise DataError(f"Cannot read evaluation card {str(path)!r}: {e}") from None
    if not isinstance(card, dict) or card.get("format") != CARD_FORMAT:
        raise DataError(f"{str(path)!r} is not a gankit evaluation card (written by `gankit eval --out`).")
    return card


def compare_cards(a: dict[str, Any], b: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per number in either card: both values, and whether their protocols allow comparing them."""
    rows = []
    owners_a = _value_owners(a)
    owners_b = _value_owners(b)
    for name in list(dict.fromkeys([*a["metrics"], *b["metrics"]])):
        pa = a["metric_protocols"].get(owners_a.get(name, ""), None)
        pb = b["metric_protocols"].get(owners_b.get(name, ""), None)
        if pa is None or pb is None:
            diffs = ["only in one card"]
        else:
            diffs = _diff(pa, pb)
        rows.append({"name": name, "a": a["metrics"].get(name), "b": b["metrics"].get(name),
                     "comparable": not diffs, "differences": diffs})
    return rows


def _value_owners(card: dict[str, Any]) -> dict[str, str]:
    """Number name -> the metric-protocol key that produced it (kid_std -> kid)."""
    out = {}
    for key, proto in card["metric_protocols"].items():
        name = proto.get("metric", key)
        suffix = key[len(name):] if key.startswith(name) else ""
        for value_name in (metric_registry.get(name).values if name in metric_registry else (key,)):
            out.setdefault(f"{value_name}{suffix}", key)
    return out


def _diff(a: Any, b: Any, prefix: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b)):
            out += _diff(a.get(k), b.get(k), f"{prefix}{k}.")
        return out
    return [] if a == b else [f"{prefix.rstrip('.')}: {a!r} vs {b!r}"]


def format_table(result: dict[str, Any]) -> str:
    """A small text table of the numbers and the main protocol facts."""
    p = result["protocol"]
    lines = [f"{'metric':<18} value"]
    for name, value in result["metrics"].items():
        if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            lines.append(f"{name}:")                      # a curve (text temperature sweep): one row per point
            for point in value:
                lines.append("  " + ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                                              for k, v in point.items()))
            continue
        lines.append(f"{name:<18} {value:.6g}" if isinstance(value, float) else f"{name:<18} {value}")
    lines.append("")
    lines.append(f"N generated {p.get('n_gen')}, N reference {p.get('n_ref')}, device {p.get('device')}, "
                 f"{p.get('wall_time_s')} s")
    for ext, proto in (p.get("extractors") or {}).items():
        verified = proto.get("weights_verified")
        flag = "" if verified in (None, True) else "  (weights NOT verified: not comparable with papers)"
        lines.append(f"extractor {ext}: sha256 {proto.get('weights_sha256', '')[:12]}{flag}")
    return "\n".join(lines)

