"""Datasets: ``load_dataset(cfg, kinds)`` turns a ``DataConfig`` into a dataset of the kind a recipe trains on.

``cfg.spec`` is an existing path (a folder, ``.npz``, ``.csv``; with ``cfg.spec_b`` two folders) or else a
builtin name. Builtins register themselves in ``datasets`` and path layouts in ``path_formats`` (catalog.py),
each next to its loader; this module only chooses among them, never by name:

    source   = the builtin, or every path format that recognises the path
    kind     = the first of ``kinds`` the source can give (directly, or by a conversion such as
               paired -> unpaired), else a DataError naming what the data is and what was wanted
    then     direction=BtoA swaps a/b, labels=false drops labels, xflip doubles the set by mirrored copies
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from torch.utils.data import Dataset

from ..errors import ConfigError, DataError
from .base import BatchStream, DataInfo, DataKind, MemoryDataset, data_options, kinds, register_kind, registered_kinds
from .catalog import PathFormat, builtin, conversions, data_root, datasets, path_formats, register_conversion
from .storage import paired_to_unpaired, swap_domains, with_xflip, without_labels

# Loaders register on import (one module per family of sources).
from . import arrays, audio, builtins, folders, ising, paired, restoration, tables, text, toys, translation, voice  # noqa: E402,F401  isort: skip
from .translation import true_translation  # noqa: E402

if TYPE_CHECKING:
    from ..config import DataConfig

__all__ = ["kinds", "register_kind", "registered_kinds", "DataKind", "DataInfo", "MemoryDataset", "BatchStream", "datasets", "path_formats", "builtin",
           "PathFormat", "load_dataset", "conversions", "register_conversion", "true_translation", "data_root",
           "describe_sources", "data_kinds", "reachable_kinds", "data_options"]

SPLITS = ("train", "test")

# (kind the data is, kind wanted) -> conversion(dataset, data_cfg) (catalog.conversions; loaders add theirs). A
# paired set can be used unpaired (CycleGAN on pix2pix data); images can be the HR side of super-resolution pairs
# (degraded by the superres kind's options).
register_conversion("paired", "unpaired")(lambda ds, cfg: paired_to_unpaired(ds))
register_conversion("image", "superres")(restoration.image_to_superres)
CONVERSIONS = conversions


@dataclasses.dataclass
class _Source:
    name: str                                   # what to call the data in messages
    provides: tuple[str, ...]                   # kinds it gives directly, in its own order
    load: Callable[[str], Dataset]              # kind -> dataset


def load_dataset(cfg: "DataConfig", kinds: tuple[str, ...] | None = None) -> Dataset:
    """The dataset ``cfg`` describes, as the first of ``kinds`` it can be given as. Result has ``.info``."""
    kinds = registered_kinds() if kinds is None else kinds
    unknown = [k for k in kinds if k not in registered_kinds()]
    if unknown or not kinds:
        raise ValueError(f"kinds must be a non-empty tuple of {registered_kinds()}, got {kinds!r}")
    if cfg.split not in SPLITS:
        raise ConfigError(f"data.split must be one of {', '.join(SPLITS)}, got {cfg.split!r}.")
    if cfg.direction not in ("AtoB", "BtoA"):
        raise ConfigError(f"data.direction must be AtoB or BtoA, got {cfg.direction!r}.")
    source = _find_source(cfg)

    ds = None
    for wanted in kinds:
        if wanted in source.provides:
            ds = source.load(wanted)
            break
        native = next((k for k in source.provides if (k, wanted) in CONVERSIONS), None)
        if native is not None:
            ds = CONVERSIONS[(native, wanted)](source.load(native), cfg)
            break
    if ds is None:
        raise DataError(f"{source.name!r} is {' or '.join(source.provides)} data, but this recipe trains on "
                        f"{' or '.join(kinds)} data. " + _kind_hint(kinds))

    if ds.info.kind in ("paired", "unpaired") and cfg.direction == "BtoA":
        ds = swap_domains(ds)
    if ds.info.num_classes and not cfg.labels:
        ds = without_labels(ds)
    if cfg.xflip:
        ds = with_xflip(ds)
    return ds


def _find_source(cfg: "DataConfig") -> _Source:
    if cfg.spec_b and not Path(cfg.spec_b).exists():
        raise DataError(f"--data-b (data.spec_b) {cfg.spec_b!r} does not exist.")
    if Path(cfg.spec).exists():
        formats = [f for _, f in path_formats.items() if f.matches(cfg)]
        if not formats:
            raise DataError(f"{cfg.spec!r} is not a data layout gankit reads. {describe_sources()}")
        provides = tuple(dict.fromkeys(k for f in formats for k in f.provides(cfg)))

        def load(kind: str) -> Dataset:
            return next(f for f in formats if kind in f.provides(cfg)).load(cfg, kind)
        return _Source(cfg.spec, provides, load)
    if cfg.spec_b:
        raise DataError(f"--data-b (data.spec_b) needs --data to be a folder; {cfg.spec!r} does not exist.")
    if cfg.spec in datasets:
        factory = datasets.get(cfg.spec)
        return _Source(cfg.spec, (factory.kind,), lambda kind: factory(cfg))
    raise DataError(f"{cfg.spec!r} is neither an existing file or folder nor a builtin dataset. "
                    + describe_sources())


def data_kinds(cfg: "DataConfig") -> tuple[str, ...]:
    """The kinds ``cfg`` can give without loading it (empty when the data cannot be found: ``load_dataset``
    then says why). Used to pick a preset's per-kind values, e.g. for 2-D toys."""
    try:
        return _find_source(cfg).provides
    except DataError:
        return ()


def reachable_kinds(cfg: "DataConfig") -> tuple[str, ...]:
    """The kinds ``cfg`` can give directly or through a conversion (whose options then apply), without loading."""
    direct = data_kinds(cfg)
    return tuple(dict.fromkeys([*direct, *(w for (n, w) in CONVERSIONS if n in direct)]))


def describe_sources() -> str:
    """One paragraph listing the builtins and the path layouts (for error messages and ``gankit info``)."""
    builtins_text = "; ".join(f"{name} ({f.kind}: {f.about})" for name, f in datasets.items())
    paths_text = "; ".join(f.about for _, f in path_formats.items())
    return f"Builtin datasets: {builtins_text}. Accepted paths: {paths_text}."


def _kind_hint(kinds: tuple[str, ...]) -> str:
    fitting = [name for name, f in datasets.items() if f.kind in kinds or
               any((f.kind, k) in CONVERSIONS for k in kinds)]
    return f"Builtins of a fitting kind: {', '.join(fitting) or 'none'}."
