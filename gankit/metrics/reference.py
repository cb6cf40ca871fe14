"""Reference statistics: the npz file layout, loading a reference data spec, and the on-disk cache.

File layout (``gankit ref`` writes it, ``gankit fid`` and ``evaluate(ref=...npz)`` read it): pytorch-fid's
``mu`` [D] and ``sigma`` [D, D] (float64), plus ``n`` (number of images), optionally ``features`` [N, D]
(float32; KID, precision/recall and density/coverage need them), and ``protocol`` (a JSON string: extractor,
weights hash, reference data, gankit version). Files from pytorch-fid or TTUR (``mu``/``sigma`` only) load too,
with a warning that their protocol cannot be checked.

Cache: statistics of a data spec are kept under ``$GANKIT_CACHE`` (default ~/.cache/gankit) in ``refstats/``,
keyed on the data spec (for paths: the absolute path, size and modification time), resolution, channels,
split, extractor identity (name + weights SHA-256), N and subset seed.
"""
from __future__ import annotations

import hashlib
import json
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from ..version import __version__
from ..io import atomic_write
from ..errors import ConfigError, DataError
from .base import Extractor, FeatureStats, Shard, cache_dir
from .sources import DatasetSource, ImageSource, Wants, extract, image_source

FORMAT = "gankit-ref-stats"
VERSION = 1


# ---- the npz file --------------------------------------------------------------------------------------------

def save_stats(path: str | os.PathLike, stats: FeatureStats, protocol: dict[str, Any]) -> Path:
    """Write ``stats`` as npz (mu, sigma, n, [features], protocol) atomically."""
    path = Path(path)
    if path.suffix != ".npz":
        raise ConfigError(f"Reference statistics are written as .npz, got {str(path)!r}.")
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays: dict[str, Any] = {"mu": stats.mean(), "sigma": stats.cov(), "n": np.int64(stats.n),
                              "protocol": np.array(json.dumps({"format": FORMAT, "version": VERSION, **protocol}))}
    if stats.has_features:
        arrays["features"] = stats.features().numpy()
    atomic_write(path, lambda f: np.savez(f, **arrays))
    return path


def load_stats(path: str | os.PathLike) -> tuple[FeatureStats, dict[str, Any]]:
    """Read an npz of reference statistics -> (FeatureStats, protocol dict; {} for third-party files)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"Statistics file {str(path)!r} does not exist.")
    try:
        with np.load(path, allow_pickle=False) as f:
            if "mu" not in f or "sigma" not in f:
                raise DataError(f"{str(path)!r} has no 'mu'/'sigma' arrays (keys: {', '.join(f.files)}); it is "
                                f"not a statistics file written by gankit ref or pytorch-fid.")
            protocol = json.loads(str(f["protocol"])) if "protocol" in f else {}
            n = int(f["n"]) if "n" in f else 0
            features = f["features"] if "features" in f else None
            stats = FeatureStats.from_arrays(f["mu"], f["sigma"], n, features)
    except (OSError, ValueError) as e:
        raise DataError(f"Cannot read statistics file {str(path)!r}: {e}") from None
    if not protocol:
        warnings.warn(f"{path} carries no protocol (written by another tool?): its extractor, resize and N "
                      f"cannot be checked against this evaluation.", stacklevel=2)
    return stats, protocol


# ---- reference data ------------------------------------------------------------------------------------------

def data_identity(spec: str, options: dict[str, Any]) -> dict[str, Any]:
    """What identifies a data spec for caching and comparability: builtin name or path (+ size and mtime)."""
    ident: dict[str, Any] = {"spec": spec, **{k: v for k, v in sorted(options.items()) if k not in ("num_workers",)}}
    p = Path(spec).expanduser()
    if p.exists():
        st = p.stat()
        ident.update(spec=str(p.resolve()), mtime_ns=st.st_mtime_ns, size=st.st_size)
    return ident


def load_reference_dataset(spec: str, options: dict[str, Any]) -> Any:
    """A dataset of images for ``spec`` through ``gankit.data.load_dataset`` (builtin name or path)."""
    from ..config import DataConfig
    from ..data import load_dataset
    try:
        cfg = DataConfig(spec=spec, labels=False, **options)
    except TypeError as e:
        raise ConfigError(f"Unknown data option for the reference: {e}") from None
    return load_dataset(cfg, kinds=("image",))


def reference_stats(ref: Any, extractors: dict[str, Extractor], wants: Wants, *, n: int | None, seed: int,
                    batch_size: int, data_options: dict[str, Any], cache: bool = True, progress: bool = False,
                    shard: Shard | None = None) -> tuple[dict[str, dict[str, FeatureStats]], dict[str, Any]]:
    """Statistics of the reference for every wanted extractor output, and a description of the reference.

    ``ref``: an npz written by ``gankit ref`` (one extractor), a data spec string, a tensor, or a dataset.
    ``shard``: extract the reference over several ranks like the generated images (``sources.extract``); the
    cache is used only if every rank finds it, and written by rank 0 only.
    """
    if isinstance(ref, (str, Path)) and str(ref).endswith(".npz"):
        return _from_npz(Path(ref), extractors, wants)
    if isinstance(ref, (str, Path)):
        return _from_spec(str(ref), extractors, wants, n=n, seed=seed, batch_size=batch_size,
                          data_options=data_options, cache=cache, progress=progress, shard=shard)
    source = image_source(ref, n, seed, batch_size, "reference")
    if not isinstance(source, (DatasetSource,)) and n is not None and source.n < n:
        raise ConfigError(f"Asked for {n} reference images, but the reference holds {source.n}.")
    stats = extract(source, extractors, wants, progress, "reference", shard=shard)
    return stats, {**source.describe(), "n": source.n}


def _from_npz(path: Path, extractors: dict[str, Extractor], wants: Wants):
    stats, protocol = load_stats(path)
    if len(wants) != 1 or set(next(iter(wants.values()))) != {"features"}:
        raise ConfigError(f"A statistics file holds the features of one extractor; this evaluation needs "
                          f"{', '.join(f'{e}:{o}' for e, outs in wants.items() for o in outs)}. Give a data spec "
                          f"as the reference instead.")
    spec = next(iter(wants))
    ours = extractors[spec].identity()
    theirs = protocol.get("extractor")
    if theirs is not None and theirs != ours:
        diff = sorted(k for k in set(ours) | set(theirs) if ours.get(k) != theirs.get(k))
        raise ConfigError(f"{path} was made with a different extractor ({', '.join(diff)} differ: file "
                          f"{ {k: theirs.get(k) for k in diff} }, now { {k: ours.get(k) for k in diff} }). "
                          f"Recompute it with `gankit ref` and the same extractor.")
    keep = next(iter(wants.values()))["features"][1]
    if keep and not stats.has_features:
        raise ConfigError(f"{path} holds only mean and covariance, but KID / precision-recall / density-coverage "
                          f"need every reference feature. Recompute it with `gankit ref --features`.")
    description = {"kind": "stats file", "path": str(path.resolve()), "n": stats.n,
                   "reference": protocol.get("reference", {}), "has_protocol": bool(protocol)}
    return {spec: {"features": stats}}, description


def cache_key(identity: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:20]


def _from_spec(spec: str, extractors: dict[str, Extractor], wants: Wants, *, n, seed, batch_size, data_options,
               cache, progress, shard=None):
    data_id = data_identity(spec, data_options)
    subset = {"n": n, "subset_seed": seed}
    description = {"kind": "data", **data_id, **subset}
    stats: dict[str, dict[str, FeatureStats]] = {}
    missing: Wants = {}
    paths: dict[str, Path] = {}
    for ext_spec, outs in wants.items():
        cacheable = cache and set(outs) == {"features"}
        if cacheable:
            key = cache_key({"format": VERSION, "data": data_id, "extractor": extractors[ext_spec].identity(),
                             **subset})
            paths[ext_spec] = cache_dir() / "refstats" / f"{key}.npz"
            if paths[ext_spec].is_file():
                cached, _ = load_stats(paths[ext_spec])
                if cached.has_features or not outs["features"][1]:
                    stats[ext_spec] = {"features": cached}
                    continue
        missing[ext_spec] = outs
    if shard is not None and shard.world_size > 1:
        # All ranks must take the same branch (extraction is a collective): a file one rank sees and another
        # does not (written meanwhile, or a cache folder per machine) means extracting on all of them.
        found = shard.all_gather(sorted(stats))
        common = set.intersection(*(set(f) for f in found))
        for ext_spec in [e for e in stats if e not in common]:
            missing[ext_spec] = wants[ext_spec]
            del stats[ext_spec]
    if missing:
        dataset = load_reference_dataset(spec, data_options)
        source = DatasetSource(dataset, n, seed, batch_size, description=data_id)
        fresh = extract(source, extractors, missing, progress, "reference", shard=shard)
        for ext_spec, outs in fresh.items():
            stats[ext_spec] = outs
            if ext_spec in paths and (shard is None or shard.rank == 0):     # one writer
                save_stats(paths[ext_spec], outs["features"], {
                    "extractor": extractors[ext_spec].identity(), "extractor_protocol": extractors[ext_spec].protocol(),
                    "reference": {**description, "n": outs["features"].n}, "gankit_version": __version__})
    n_used = next(iter(next(iter(stats.values())).values())).n
    description["n"] = n_used
    return stats, description


def compute_reference_file(data: Any, out: str | os.PathLike, extractor: Extractor, *, n: int | None = None,
                           seed: int = 0, batch_size: int = 64, data_options: dict[str, Any] | None = None,
                           keep_features: bool = False, progress: bool = False) -> Path:
    """``gankit ref``: statistics of a data spec (or tensor / dataset / folder source) -> npz file."""
    wants: Wants = {"x": {"features": (True, keep_features)}}
    if isinstance(data, str):
        description = {"kind": "data", **data_identity(data, data_options or {}), "n": n, "subset_seed": seed}
        source: ImageSource = DatasetSource(load_reference_dataset(data, data_options or {}), n, seed, batch_size,
                                            description=description)
    else:
        source = image_source(data, n, seed, batch_size, "reference")
        description = source.describe()
    stats = extract(source, {"x": extractor}, wants, progress, "reference")["x"]["features"]
    description["n"] = stats.n
    return save_stats(out, stats, {"extractor": extractor.identity(), "extractor_protocol": extractor.protocol(),
                                   "reference": description, "gankit_version": __version__})
