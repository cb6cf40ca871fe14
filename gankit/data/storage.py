"""How datasets hold their items, and the generic changes applied to any of them.

Two storages, one item format (``gankit.data.base``):

* ``ImageMemoryDataset``: columns of equally long tensors; image columns are uint8 [N, C, H, W], a quarter
  of float32's memory, converted to [-1, 1] by ``gankit.images.from_uint8`` per batch (``get_batch``).
* ``LazyImageDataset``: columns of ``ImageRef`` lists decoded in ``__getitem__``, for sets over
  ``MEMORY_LIMIT_BYTES``; ``BatchStream`` batches them with a DataLoader (workers optional).

Unpaired data wraps two single-domain datasets; ``xflip`` wraps any dataset. Every wrapper keeps the
"get_batch when the base has it" property, so in-memory data never goes through per-item Python code.
"""
from __future__ import annotations

import dataclasses
from typing import Union

import numpy as np
import torch
from torch.utils.data import Dataset

from ..errors import DataError
from ..images import from_uint8
from .base import DataInfo, MemoryDataset
from .imagefiles import ImageRef, decode_all, load_image, warn_skipped

MEMORY_LIMIT_BYTES = 2 * 2**30      # image sets estimated above this (as uint8) are decoded lazily
IMAGE_KEYS = ("image", "a", "b", "mask")    # the item keys that hold images (see base.py), mirrored by xflip


def fits_in_memory(nbytes: int) -> bool:
    return nbytes <= MEMORY_LIMIT_BYTES


def _as_float(t: torch.Tensor) -> torch.Tensor:
    return from_uint8(t) if t.dtype == torch.uint8 else t


class ImageMemoryDataset(MemoryDataset):
    """``MemoryDataset`` whose uint8 columns are images, handed out as float [-1, 1]."""

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {k: _as_float(v[i]) for k, v in self.tensors.items()}

    def get_batch(self, idx: torch.Tensor) -> dict[str, torch.Tensor]:
        return {k: _as_float(v[idx]) for k, v in self.tensors.items()}

    def select(self, keys: dict[str, str], info: DataInfo) -> "ImageMemoryDataset":
        """A view with columns renamed/chosen by ``{new_key: old_key}`` (no copy)."""
        return ImageMemoryDataset({new: self.tensors[old] for new, old in keys.items()}, info)


class LazyImageDataset(Dataset):
    """Columns of ``ImageRef`` lists (decoded on access) and label tensors; for sets too large for memory."""

    def __init__(self, columns: dict[str, Union[list[ImageRef], torch.Tensor]], info: DataInfo,
                 resolution: int, channels: dict[str, int]):
        self.columns, self.info, self.resolution, self.channels = columns, info, resolution, channels

    def __len__(self) -> int:
        return len(next(iter(self.columns.values())))

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        item = {}
        for key, col in self.columns.items():
            if isinstance(col, torch.Tensor):
                item[key] = col[i]
                continue
            try:
                item[key] = from_uint8(torch.from_numpy(load_image(col[i], self.resolution, self.channels[key])))
            except (OSError, SyntaxError, ValueError) as e:
                # Headers were checked when the set was listed; a file can still be truncated or changed since.
                raise DataError(f"Cannot decode image {col[i].path}: {e}") from None
        return item

    def select(self, keys: dict[str, str], info: DataInfo) -> "LazyImageDataset":
        return LazyImageDataset({new: self.columns[old] for new, old in keys.items()}, info, self.resolution,
                                {new: self.channels[old] for new, old in keys.items() if old in self.channels})


ColumnDataset = Union[ImageMemoryDataset, LazyImageDataset]


def build_image_dataset(columns: dict[str, Union[list[ImageRef], torch.Tensor]], info: DataInfo,
                        resolution: int, channels: dict[str, int], skipped: list[str],
                        where: str) -> ColumnDataset:
    """Decode ``columns`` into memory when they fit, else keep them as lazy refs.

    ``skipped``: files already found unreadable while listing; rows whose images fail to decode are dropped
    and added. The total goes to ``info.extras['skipped_files']`` with one warning; no rows left is an error.
    """
    skipped = list(skipped)
    n = len(next(iter(columns.values())))
    nbytes = sum(n * channels[k] * resolution ** 2 for k in columns if k in channels)
    if fits_in_memory(nbytes):
        keep = torch.ones(n, dtype=torch.bool)
        decoded = {}
        for key, col in columns.items():
            if key in channels:
                images, failed = decode_all(col, resolution, channels[key])      # [n - len(failed), C, R, R]
                if failed:   # re-align rows with the other columns; dropped below via ``keep``
                    skipped += [col[i].path for i in failed]
                    ok = torch.ones(n, dtype=torch.bool)
                    ok[failed] = False
                    full = torch.zeros(n, *images.shape[1:], dtype=torch.uint8)
                    full[ok] = images
                    images, keep = full, keep & ok
                decoded[key] = images
            else:
                decoded[key] = col
        columns = decoded if keep.all() else {k: v[keep] for k, v in decoded.items()}
        storage = "memory"
    else:
        storage = "lazy"
    warn_skipped(skipped, where)
    if len(next(iter(columns.values()))) == 0:
        raise DataError(f"No readable image in {where} ({len(skipped)} file(s) could not be read).")
    size = len(next(iter(columns.values())))
    info = dataclasses.replace(info, size=size, extras={**info.extras, "skipped_files": len(skipped),
                                                         "storage": storage})
    if storage == "memory":
        return ImageMemoryDataset(columns, info)
    return LazyImageDataset(columns, info, resolution, channels)


# ---- unpaired: two domains of different sizes -------------------------------------------------------------

class UnpairedDataset(Dataset):
    """Item i = (a[i mod Na], b[perm_b[i] mod Nb]) over size = max(Na, Nb).

    perm_b is a fixed seeded permutation of range(size), so the b drawn with a given a is independent of it
    yet a pure function of i: batches depend only on ``BatchStream``'s index, and resume is exact. Over one
    epoch each image of the larger domain appears once, each of the smaller one size/N times (rounded).
    """

    def __init__(self, domain_a: Dataset, domain_b: Dataset, info: DataInfo, seed: int = 0):
        self.domain_a, self.domain_b = domain_a, domain_b
        self.n_a, self.n_b = len(domain_a), len(domain_b)
        size = max(self.n_a, self.n_b)
        self.perm_b = torch.randperm(size, generator=torch.Generator().manual_seed(seed))
        self.info = dataclasses.replace(info, size=size)

    def __len__(self) -> int:
        return len(self.perm_b)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"a": self.domain_a[i % self.n_a]["image"],
                "b": self.domain_b[int(self.perm_b[i]) % self.n_b]["image"]}


class UnpairedMemoryDataset(UnpairedDataset):
    def get_batch(self, idx: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"a": self.domain_a.get_batch(idx % self.n_a)["image"],
                "b": self.domain_b.get_batch(self.perm_b[idx] % self.n_b)["image"]}


def make_unpaired(domain_a: Dataset, domain_b: Dataset, info: DataInfo, seed: int = 0) -> UnpairedDataset:
    in_memory = hasattr(domain_a, "get_batch") and hasattr(domain_b, "get_batch")
    return (UnpairedMemoryDataset if in_memory else UnpairedDataset)(domain_a, domain_b, info, seed)


def paired_to_unpaired(ds: ColumnDataset) -> UnpairedDataset:
    """Use a paired set unpaired: b is drawn independently of a (a fixed permutation breaks the pairs)."""
    info = dataclasses.replace(ds.info, kind="unpaired", extras={**ds.info.extras, "converted_from": "paired"})
    domain = lambda key, ch: ds.select({"image": key}, dataclasses.replace(  # noqa: E731
        ds.info, kind="image", channels=ch, channels_b=0))
    return make_unpaired(domain("a", info.channels), domain("b", info.channels_b or info.channels), info)


def swap_domains(ds: Dataset) -> Dataset:
    """direction=BtoA: the input side 'a' becomes the data's B side."""
    info = ds.info
    info = dataclasses.replace(info, channels=info.channels_b or info.channels, channels_b=info.channels,
                               extras={**info.extras, "direction": "BtoA"})
    if isinstance(ds, UnpairedDataset):
        return make_unpaired(ds.domain_b, ds.domain_a, info)
    return ds.select({"a": "b", "b": "a"}, info)


def without_labels(ds: Dataset) -> Dataset:
    info = dataclasses.replace(ds.info, num_classes=0, class_names=[])
    if isinstance(ds, ImageMemoryDataset):
        return ImageMemoryDataset({k: v for k, v in ds.tensors.items() if k != "label"}, info)
    if isinstance(ds, MemoryDataset):
        return MemoryDataset({k: v for k, v in ds.tensors.items() if k != "label"}, info)
    if isinstance(ds, LazyImageDataset):
        return ds.select({k: k for k in ds.columns if k != "label"}, info)
    raise TypeError(f"cannot drop labels from {type(ds).__name__}")


# ---- xflip: mirrored copies without storing them ----------------------------------------------------------

class XFlipDataset(Dataset):
    """Twice the items: i < N is item i, i >= N is item i - N mirrored left-right (every image key)."""

    def __init__(self, base: Dataset):
        self.base, self.n = base, len(base)
        self.info = dataclasses.replace(base.info, size=2 * self.n, extras={**base.info.extras, "xflip": True})

    def __len__(self) -> int:
        return 2 * self.n

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        item = self.base[i % self.n]
        if i >= self.n:
            item = {k: v.flip(-1) if k in IMAGE_KEYS else v for k, v in item.items()}
        return item


class XFlipMemoryDataset(XFlipDataset):
    def get_batch(self, idx: torch.Tensor) -> dict[str, torch.Tensor]:
        batch = self.base.get_batch(idx % self.n)
        mirrored = (idx >= self.n).view(-1, 1, 1, 1)                                  # [B, 1, 1, 1]
        return {k: torch.where(mirrored, v.flip(-1), v) if k in IMAGE_KEYS else v for k, v in batch.items()}


class XFlipDrawDataset(XFlipMemoryDataset):
    """xflip over a dataset that draws its own batches (``draw(n, generator)``): each drawn item is mirrored with
    probability 1/2, from the same generator, so the batch stays a pure function of (seed, batch number)."""

    def draw(self, n: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
        batch = self.base.draw(n, generator)
        mirrored = (torch.rand(n, generator=generator) < 0.5).view(-1, 1, 1, 1)     # [n, 1, 1, 1]
        return {k: torch.where(mirrored, v.flip(-1), v) if k in IMAGE_KEYS else v for k, v in batch.items()}


def with_xflip(ds: Dataset) -> XFlipDataset:
    if ds.info.kind == "vector":
        raise DataError(f"data.xflip mirrors images, but {ds.info.name!r} is vector data. Set data.xflip=false.")
    if hasattr(ds, "draw") and hasattr(ds, "get_batch"):
        return XFlipDrawDataset(ds)
    return (XFlipMemoryDataset if hasattr(ds, "get_batch") else XFlipDataset)(ds)


def labels_tensor(labels: np.ndarray | list, where: str) -> torch.Tensor:
    """Class labels as int64 [N], checked to be non-negative integers."""
    arr = np.asarray(labels)
    if arr.size and (not np.issubdtype(arr.dtype, np.number) or (arr != np.round(arr)).any() or arr.min() < 0):
        raise DataError(f"Labels in {where} must be non-negative integers (class indices); got {arr[:5]}...")
    return torch.as_tensor(arr.astype(np.int64))
