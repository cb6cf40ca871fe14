"""Where datasets are registered: builtin names and the kinds of path ``--data`` accepts.

Two registries, filled by decorators next to each loader (DESIGN.md principle 3):

* ``datasets``: builtin name -> ``factory(cfg: DataConfig) -> Dataset``. The decorator ``builtin`` records the
  kind of data the factory makes (a registered kind) and a one-line description for error messages and
  ``gankit info``.
* ``conversions``: (kind the data is, kind wanted) -> ``convert(dataset, cfg) -> Dataset``: a source of one kind
  used as another (paired -> unpaired for CycleGAN; audio -> spectrogram for SpecGAN), registered next to the
  kinds it joins with ``register_conversion(native, wanted)``.
* ``path_formats``: a layout of files on disk (image folder, ``.npz``, CycleGAN folders, ...). Each says
  whether it recognises a path, which kinds it can give, and loads one of them. The same folder can match
  several formats (a folder of images is an image set, or a pix2pix set of side-by-side pairs); the recipe's
  preferred kinds choose.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from torch.utils.data import Dataset

from ..registry import Registry
from .base import kinds

datasets: Registry[Callable] = Registry("dataset")


def builtin(name: str, kind: str, about: str) -> Callable:
    """Register ``factory(cfg) -> Dataset`` as builtin ``name`` making ``kind`` data."""
    kinds.get(kind)     # a registered kind (ConfigError listing them otherwise)

    def add(factory: Callable) -> Callable:
        factory.kind = kind
        factory.about = about
        return datasets.register(name)(factory)
    return add


@dataclass(frozen=True)
class PathFormat:
    about: str                                           # "a folder of images (class labels from subfolders)"
    matches: Callable[[object], bool]                    # cfg -> does this layout apply to cfg.spec / spec_b?
    provides: Callable[[object], tuple[str, ...]]        # cfg -> kinds this layout can give (cheap to call)
    load: Callable[[object, str], Dataset]               # (cfg, kind) -> dataset of that kind


path_formats: Registry[PathFormat] = Registry("path format")


conversions: dict[tuple[str, str], Callable[[Dataset, object], Dataset]] = {}


def register_conversion(native: str, wanted: str) -> Callable:
    """Register ``convert(dataset, cfg) -> Dataset`` turning ``native`` data into ``wanted`` data."""
    kinds.get(native), kinds.get(wanted)

    def add(fn: Callable) -> Callable:
        if (native, wanted) in conversions:
            raise ValueError(f"a conversion {native} -> {wanted} is already registered")
        conversions[(native, wanted)] = fn
        return fn
    return add


def data_root(cfg) -> Path:
    """Folder where builtins that need files look: data.root, else $GANKIT_DATA, else ./data."""
    return Path(cfg.root or os.environ.get("GANKIT_DATA") or "data").expanduser()
