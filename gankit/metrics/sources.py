"""Where images come from (a generator, a tensor, a folder, a dataset) and the one extraction pass over them.

Every source yields uint8 batches [B, C, H, W]. Float images are quantised with ``gankit.images.to_uint8``
exactly as a saved PNG would be, before any extractor resizes them (clean-fid's point: real images are uint8
files, so generated ones must be quantised the same way).
"""
from __future__ import annotations

import hashlib
import warnings
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch

from ..errors import ConfigError, DataError
from ..images import to_uint8
from .base import Extractor, FeatureStats, Shard, shard_size

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")
LOSSY_SUFFIXES = (".jpg", ".jpeg", ".webp")
DEFAULT_N_GEN = 10_000


def as_uint8(img: torch.Tensor, where: str) -> torch.Tensor:
    """uint8 passes through; float in [-1, 1] goes through ``to_uint8``; anything else is a user error."""
    if not torch.is_tensor(img) or img.ndim != 4:
        raise DataError(f"{where} must give image tensors [N, C, H, W], got "
                        f"{type(img).__name__ if not torch.is_tensor(img) else tuple(img.shape)}.")
    if img.dtype == torch.uint8:
        return img
    if not img.is_floating_point():
        raise DataError(f"{where} gave {img.dtype} images; expected float in [-1, 1] or uint8.")
    return to_uint8(img)


class ImageSource:
    """A finite sequence of uint8 image batches (``batch(i)``, i < n_batches) with a description for the protocol."""

    n: int = 0
    batch_size: int = 64

    @property
    def n_batches(self) -> int:
        return -(-self.n // self.batch_size)

    def batch(self, index: int) -> torch.Tensor:
        """uint8 [B, C, H, W]: images index * batch_size ... (the last batch may be short)."""
        raise NotImplementedError

    def shard_batches(self, rank: int, world_size: int) -> Iterator[tuple[int, torch.Tensor]]:
        """(batch index, batch) for the batches i with ``i % world_size == rank``, in order; only those are made.

        Round robin rather than contiguous blocks: every rank gets the same number of batches to within one
        (the short last batch included), whatever N.
        """
        for index in range(rank, self.n_batches, world_size):
            yield index, self.batch(index)

    def shape(self) -> tuple[int, int, int]:
        """(C, H, W) of the images."""
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        raise NotImplementedError


def takes_start(fn: Callable) -> bool:
    """Whether a generator callable takes ``start=``: the global index of its first sample in the evaluation."""
    import inspect
    try:
        return "start" in inspect.signature(fn).parameters
    except (TypeError, ValueError):       # builtins without a signature
        return False


def call_generator(fn: Callable, n: int, seed: int, start: int, indexed: bool) -> torch.Tensor:
    """``fn(n, seed, start=start)`` for a callable that takes ``start`` (``takes_start``), else ``fn(n, seed)``."""
    return fn(n, seed, start=start) if indexed else fn(n, seed)


class GeneratorSource(ImageSource):
    """``gen(n, seed[, start]) -> [n, C, H, W]`` in [-1, 1], called in batches with seed = base_seed + batch_index.

    A callable that takes ``start`` also gets the global index of the batch's first image (batch_index x
    batch_size): a conditional sampler draws its labels from it (``samplers.balanced_labels``), so over the
    whole evaluation every class appears N / C times to within one, whatever the batching or sharding.
    """

    def __init__(self, fn: Callable[..., torch.Tensor], n: int, seed: int = 0, batch_size: int = 64):
        if n < 1:
            raise ConfigError(f"The number of generated images must be at least 1, got {n}.")
        self.fn, self.n, self.seed, self.batch_size = fn, n, seed, batch_size
        self.indexed = takes_start(fn)
        self._first: torch.Tensor | None = None

    def _generate(self, index: int) -> torch.Tensor:
        # Seeds follow the global batch index, so N ranks generate exactly the images one process would.
        size = min(self.batch_size, self.n - index * self.batch_size)
        with torch.no_grad():
            img = call_generator(self.fn, size, self.seed + index, index * self.batch_size, self.indexed)
        img = as_uint8(img, "The generator")
        if len(img) != size:
            raise DataError(f"The generator was asked for {size} images and gave {len(img)}.")
        return img

    def batch(self, index: int) -> torch.Tensor:
        if index == 0 and self._first is not None:      # made by shape(): generated once
            img, self._first = self._first, None
            return img
        return self._generate(index)

    def shard_batches(self, rank: int, world_size: int) -> Iterator[tuple[int, torch.Tensor]]:
        yield from super().shard_batches(rank, world_size)
        self._first = None              # shape() on a rank without batch 0 made it: not needed any more

    def shape(self) -> tuple[int, int, int]:
        if self._first is None:
            self._first = self._generate(0)
        return tuple(self._first.shape[1:])

    def describe(self) -> dict[str, Any]:
        return {"kind": "generator", "n": self.n, "base_seed": self.seed, "batch_size": self.batch_size,
                "seeding": "gen(batch_n, base_seed + batch_index)",
                **({"conditions": "from the global sample index (start = batch_index x batch_size)"}
                   if self.indexed else {})}


class TensorSource(ImageSource):
    """An in-memory batch of images: uint8, or float in [-1, 1]."""

    def __init__(self, images: torch.Tensor, n: int | None = None, batch_size: int = 64, name: str = "tensor"):
        as_uint8(images[:1], f"The {name}")   # validate early
        if n is not None and n > len(images):
            raise ConfigError(f"Asked for {n} images, but the {name} holds only {len(images)}.")
        self.images = images[:n] if n is not None else images
        self.n, self.batch_size, self.name = len(self.images), batch_size, name

    def batch(self, index: int) -> torch.Tensor:
        start = index * self.batch_size
        return as_uint8(self.images[start:start + self.batch_size], f"The {self.name}")

    def shape(self) -> tuple[int, int, int]:
        return tuple(self.images.shape[1:])

    def describe(self) -> dict[str, Any]:
        # The content hash tells two in-memory reference sets apart in evaluation cards.
        raw = self.images.detach().cpu()
        raw = raw.float() if raw.dtype == torch.bfloat16 else raw     # numpy has no bfloat16
        digest = hashlib.sha256(raw.contiguous().numpy().tobytes()).hexdigest()[:16]
        return {"kind": "tensor", "n": self.n, "dtype": str(self.images.dtype).replace("torch.", ""),
                "shape": list(self.images.shape), "sha256": digest}


def list_images(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise DataError(f"Image folder {str(folder)!r} does not exist.")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise DataError(f"No images ({', '.join(IMAGE_SUFFIXES)}) found in {str(folder)!r}.")
    return files


def read_image(path: Path) -> torch.Tensor:
    """uint8 [C, H, W]: grayscale files stay 1-channel, everything else becomes RGB (as PIL's convert)."""
    from PIL import Image
    with Image.open(path) as im:
        im = im.convert("L") if im.mode in ("1", "L", "I", "I;16", "F") else im.convert("RGB")
        arr = np.array(im)                    # a writable copy
    arr = arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)
    return torch.from_numpy(np.ascontiguousarray(arr))


class FolderSource(ImageSource):
    """Image files under a folder (recursively, sorted by path); the first ``n`` when n is given."""

    def __init__(self, folder: str | Path, n: int | None = None, batch_size: int = 64):
        self.folder = Path(folder)
        files = list_images(self.folder)
        if n is not None and n > len(files):
            raise ConfigError(f"Asked for {n} images, but {str(self.folder)!r} holds only {len(files)}.")
        self.files = files[:n] if n is not None else files
        self.n, self.batch_size = len(self.files), batch_size
        self.lossy = any(p.suffix.lower() in LOSSY_SUFFIXES for p in self.files)
        if self.lossy:
            warnings.warn(f"{self.folder} holds lossy (JPEG/WebP) images: compression changes FID by whole "
                          f"points (clean-fid); save generated images as PNG.", stacklevel=2)
        self._shape: tuple[int, int, int] | None = None

    def batch(self, index: int) -> torch.Tensor:
        start = index * self.batch_size
        imgs = [read_image(p) for p in self.files[start:start + self.batch_size]]
        shapes = {tuple(i.shape) for i in imgs} | ({self.shape()} if start else set())
        if len(shapes) > 1:
            raise DataError(f"Images in {str(self.folder)!r} differ in size or channels ({sorted(shapes)}); "
                            f"metrics need one size: resize them first.")
        return torch.stack(imgs)

    def shape(self) -> tuple[int, int, int]:
        if self._shape is None:
            self._shape = tuple(read_image(self.files[0]).shape)
        return self._shape

    def describe(self) -> dict[str, Any]:
        return {"kind": "folder", "path": str(self.folder.resolve()), "n": self.n, "lossy_files": self.lossy}


class DatasetSource(ImageSource):
    """Items' 'image' (float [C, H, W] in [-1, 1]) of a gankit dataset; a seeded random subset when n < size."""

    def __init__(self, dataset: Any, n: int | None = None, seed: int = 0, batch_size: int = 64,
                 description: dict[str, Any] | None = None):
        size = len(dataset)
        if size == 0:
            raise DataError("The reference dataset is empty.")
        self.dataset, self.batch_size = dataset, batch_size
        if n is None or n >= size:
            self.indices = np.arange(size)
            subset = "all"
        else:
            self.indices = np.sort(np.random.RandomState(seed).choice(size, n, replace=False))
            subset = f"random subset of {n}/{size}, RandomState({seed}), sorted"
        self.n = len(self.indices)
        self._description = {**(description or {}), "kind": "dataset", "n": self.n, "size": size,
                             "subset": subset}

    def batch(self, index: int) -> torch.Tensor:
        start = index * self.batch_size
        idx = torch.from_numpy(self.indices[start:start + self.batch_size])
        stored = getattr(self.dataset, "tensors", {}).get("image")
        if stored is not None and stored.dtype == torch.uint8:
            img = stored[idx]                     # in-memory uint8: the file's grey levels, no round trip
        elif hasattr(self.dataset, "get_batch"):
            img = self.dataset.get_batch(idx)["image"]
        else:
            img = torch.stack([self.dataset[int(i)]["image"] for i in idx])
        return as_uint8(img, "The reference dataset")

    def shape(self) -> tuple[int, int, int]:
        return tuple(self.dataset[int(self.indices[0])]["image"].shape)

    def describe(self) -> dict[str, Any]:
        return dict(self._description)


def image_source(obj: Any, n: int | None, seed: int, batch_size: int, what: str) -> ImageSource:
    """A callable, tensor, folder path or dataset -> ImageSource."""
    if isinstance(obj, ImageSource):
        return obj
    if torch.is_tensor(obj):
        return TensorSource(obj, n, batch_size, name=f"{what} tensor")
    if isinstance(obj, (str, Path)):
        return FolderSource(obj, n, batch_size)
    if hasattr(obj, "__getitem__") and hasattr(obj, "__len__"):
        return DatasetSource(obj, n, seed, batch_size)
    if callable(obj):
        return GeneratorSource(obj, n or DEFAULT_N_GEN, seed, batch_size)
    raise ConfigError(f"Cannot read {what} images from a {type(obj).__name__}: give a callable (n, seed) -> "
                      f"images, a tensor, an image folder, or a dataset.")


Wants = dict[str, dict[str, tuple[bool, bool]]]   # extractor spec -> output -> (moments, keep features)


def extract(source: ImageSource, extractors: dict[str, Extractor], wants: Wants,
            progress: bool = False, desc: str = "", shard: Shard | None = None) -> dict[str, dict[str, FeatureStats]]:
    """One pass over ``source``: every batch goes through every extractor, feeding every statistic wanted.

    With a ``shard`` of several ranks, this rank extracts only its batches (``ImageSource.shard_batches``) and
    the ranks' statistics are then merged on every rank (``FeatureStats.from_shards``): each ends with what one
    process would have computed. Every rank must call it with the same source and wants (a collective).
    """
    stats = {e: {out: FeatureStats(keep_features=keep, with_moments=moments)
                 for out, (moments, keep) in outs.items()} for e, outs in wants.items()}
    world = shard_size(shard)
    rank = shard.rank if shard is not None else 0
    batches: Iterator[tuple[int, torch.Tensor]] = source.shard_batches(rank, world)
    if progress and rank == 0:
        from tqdm import tqdm
        batches = tqdm(batches, total=len(range(rank, source.n_batches, world)), desc=desc, unit="batch",
                       leave=False)
    order: list[tuple[int, int]] = []          # (global batch index, rows) of the batches this rank extracted
    for index, img in batches:
        order.append((index, len(img)))
        for spec, outs in wants.items():
            feats = extractors[spec](img)
            for out in outs:
                stats[spec][out].append(feats[out])
    if world == 1:
        return stats
    # One collective for everything: [(order, {spec: {output: payload}}) of rank 0, of rank 1, ...].
    parts = shard.all_gather((order, {e: {out: st.shard_payload() for out, st in outs.items()}
                                      for e, outs in stats.items()}))
    orders = [p[0] for p in parts]
    return {e: {out: FeatureStats.from_shards([p[1][e][out] for p in parts], orders,
                                              keep_features=st.keep_features, with_moments=st.with_moments,
                                              device=st.device)
                for out, st in outs.items()} for e, outs in stats.items()}
