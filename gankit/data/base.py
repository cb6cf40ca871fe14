"""The data contract: what every dataset gives the trainer, and the resumable batch stream.

A dataset is a map-style ``torch.utils.data.Dataset`` whose items are dicts of tensors, plus an ``info``
attribute (``DataInfo``). Item keys, by kind:

    image     {'image': float [C, H, W] in [-1, 1], 'label': int64 [] (only if labelled)}
    vector    {'x': float [D], 'label': int64 [] (only if labelled)}
    paired    {'a': float [C, H, W], 'b': float [C, H, W]}                # pix2pix: a -> b
    unpaired  {'a': float [C, H, W], 'b': float [C, H, W]}                # CycleGAN: a and b drawn independently

Datasets that fit in memory subclass ``MemoryDataset`` and get whole batches by fancy indexing (no per-item
Python work on the hot path). Larger ones implement ``__getitem__`` and are batched by a DataLoader.

``BatchStream`` turns a dataset into an endless, seeded stream of batches whose position is a single integer,
so a checkpoint can store it and resume gives exactly the batches an uninterrupted run would have seen.
A dataset with a ``draw(n, generator) -> dict`` method samples its own batches (CTGAN's training-by-sampling
picks a category first, then a row holding it); the stream calls it with a generator seeded by (seed, k), so the
position is still one integer. Strategies may replace the stream (DP-SGD's Poisson sampling, engine/privacy.py).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Iterator

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from ..registry import Registry


@dataclass(frozen=True)
class DataKind:
    """A kind of data: what its items hold and, optionally, the options it takes (``data.options``).

    Kinds are open: a family with a new kind (sequences, audio, table rows) registers it with ``register_kind``
    next to its loaders; recipes name the kinds they train on, datasets say which kind they are.
    """
    name: str
    items: str                       # the item keys and shapes, for messages and docs
    options: type | None = None      # dataclass of this kind's options (``--set data.<option>=...``), or None


kinds: Registry[DataKind] = Registry("data kind")


def register_kind(name: str, items: str, options: type | None = None) -> DataKind:
    kind = DataKind(name, items, options)
    kinds.register(name)(kind)
    return kind


register_kind("image", "{'image': float [C, H, W] in [-1, 1], 'label': int64 [] (if labelled)}")
register_kind("vector", "{'x': float [D], 'label': int64 [] (if labelled)}")
register_kind("paired", "{'a': float [C, H, W], 'b': float [C, H, W]} (a -> b)")
register_kind("unpaired", "{'a': float [C, H, W], 'b': float [C, H, W]} drawn independently")
# More kinds register next to their loaders (data/audio.py: audio, spectrogram, voice).


def data_options(cfg: Any, kind: str) -> Any:
    """The typed options of data kind ``kind`` from ``cfg.options`` (a DataConfig's; keys of other kinds are
    ignored), or None for a kind without options. Loaders of that kind read their settings through this."""
    from ..config import dataclass_from_dict, field_names
    from ..errors import ConfigError, DataError
    spec = kinds.get(kind)
    if spec.options is None:
        return None
    mine = {k: v for k, v in cfg.options.items() if k in field_names(spec.options)}
    try:
        return dataclass_from_dict(spec.options, mine, f"data options of kind {kind!r}")
    except ConfigError as e:
        raise DataError(str(e)) from None


def registered_kinds() -> tuple[str, ...]:
    return tuple(kinds.in_order())


@dataclass
class DataInfo:
    """What the networks need to know about the data; injected into constructors by ``build()``."""

    name: str                       # "digits", "grid25", "/path/to/faces", ...
    kind: str                       # a registered data kind (``kinds``)
    size: int                       # number of items (for unpaired: max of the two domains)
    channels: int = 0               # images: 1 or 3 (for paired/unpaired: channels of a; see channels_b)
    resolution: int = 0             # images: square side in pixels
    dim: int = 0                    # vectors: dimensionality
    num_classes: int = 0            # 0 when unlabelled
    class_names: list[str] = field(default_factory=list)
    channels_b: int = 0             # paired/unpaired: channels of domain b (0 = same as a)
    extras: dict[str, Any] = field(default_factory=dict)  # e.g. toy mode centres/std, skipped-file counts

    def to_dict(self) -> dict:
        return asdict(self)

    def shape_text(self) -> str:
        """'3x64x64' for images, '2-d' for vectors, or the kind's own words in ``extras['shape_text']`` (audio:
        '1x16384 at 16000 Hz', sequences: 'length 20, 5000 tokens'), for messages and ``gankit info``."""
        if self.extras.get("shape_text"):
            return str(self.extras["shape_text"])
        return f"{self.dim}-d" if self.dim and not self.resolution else \
            f"{self.channels}x{self.resolution}x{self.resolution}"


class MemoryDataset(Dataset):
    """A dataset held as a dict of equally long tensors; ``get_batch`` indexes them all at once."""

    def __init__(self, tensors: dict[str, torch.Tensor], info: DataInfo):
        lengths = {k: len(v) for k, v in tensors.items()}
        assert len(set(lengths.values())) == 1, f"tensor lengths differ: {lengths}"
        self.tensors = tensors
        self.info = info

    def __len__(self) -> int:
        return len(next(iter(self.tensors.values())))

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {k: v[i] for k, v in self.tensors.items()}

    def get_batch(self, idx: torch.Tensor) -> dict[str, torch.Tensor]:
        return {k: v[idx] for k, v in self.tensors.items()}


def index_stream_batch(n: int, batch_size: int, seed: int, batch_index: int) -> torch.Tensor:
    """Indices of batch number ``batch_index`` of the endless stream perm_0 ++ perm_1 ++ ... over range(n).

    perm_e = randperm(n) seeded by (seed, e): a pure function of its arguments, so any position can be
    recomputed after a restart without replaying the stream.
    """
    start = batch_index * batch_size
    out = []
    while len(out) < batch_size:
        epoch, offset = divmod(start + len(out), n)
        perm = _epoch_perm(n, seed, epoch)
        out.extend(perm[offset: offset + batch_size - len(out)].tolist())
    return torch.tensor(out, dtype=torch.long)


_perm_cache: dict[tuple[int, int, int], torch.Tensor] = {}


def _epoch_perm(n: int, seed: int, epoch: int) -> torch.Tensor:
    key = (n, seed, epoch)
    if key not in _perm_cache:
        if len(_perm_cache) > 4:
            _perm_cache.clear()
        g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
        _perm_cache[key] = torch.randperm(n, generator=g)
    return _perm_cache[key]


class _StreamSampler(Sampler[int]):
    """Yields the flat index stream from a given batch on, for a DataLoader (lazy datasets)."""

    def __init__(self, n: int, batch_size: int, seed: int, start_batch: int, rank: int = 0, world_size: int = 1):
        self.n, self.batch_size, self.seed, self.start_batch = n, batch_size, seed, start_batch
        self.rank, self.world_size = rank, world_size

    def __iter__(self) -> Iterator[int]:
        b, lo = self.start_batch, self.rank * self.batch_size
        while True:
            idx = index_stream_batch(self.n, self.batch_size * self.world_size, self.seed, b)
            yield from idx[lo:lo + self.batch_size].tolist()
            b += 1


class BatchStream:
    """Endless seeded batches from a dataset, positioned by the number of batches already consumed."""

    def __init__(self, dataset: Dataset, batch_size: int, seed: int = 0, num_workers: int = 0,
                 device: torch.device | str = "cpu", rank: int = 0, world_size: int = 1):
        # Under DDP, batch k of the stream is the global batch of world_size x batch_size items one process
        # would draw, and this rank gets its rank-th slice: the data order is a pure function of (seed, k)
        # whatever the number of processes.
        self.dataset = dataset
        self.batch_size = batch_size
        self.rank, self.world_size = rank, world_size
        self.seed = seed
        self.num_workers = num_workers
        self.device = torch.device(device)
        self.batches_done = 0
        self._loader_iter: Iterator | None = None

    def state_dict(self) -> dict:
        return {"batches_done": self.batches_done, "seed": self.seed, "batch_size": self.batch_size}

    def load_state_dict(self, state: dict) -> None:
        self.batches_done = int(state["batches_done"])
        self._loader_iter = None

    def __iter__(self) -> "BatchStream":
        return self

    def __next__(self) -> dict[str, torch.Tensor]:
        n = len(self.dataset)
        if hasattr(self.dataset, "draw"):
            # A dataset that samples its own batches (CTGAN's training-by-sampling): the global batch is a pure
            # function of (seed, k), drawn with a generator seeded by both, and this rank takes its slice.
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.batches_done)
            full = self.dataset.draw(self.batch_size * self.world_size, g)
            lo = self.rank * self.batch_size
            batch = {k: v[lo:lo + self.batch_size] for k, v in full.items()}
        elif hasattr(self.dataset, "get_batch"):
            idx = index_stream_batch(n, self.batch_size * self.world_size, self.seed, self.batches_done)
            batch = self.dataset.get_batch(idx[self.rank * self.batch_size:(self.rank + 1) * self.batch_size])
        else:
            if self._loader_iter is None:
                loader = DataLoader(self.dataset, batch_size=self.batch_size,
                                    sampler=_StreamSampler(n, self.batch_size, self.seed, self.batches_done,
                                                           self.rank, self.world_size),
                                    num_workers=self.num_workers, pin_memory=self.device.type == "cuda",
                                    persistent_workers=self.num_workers > 0)
                self._loader_iter = iter(loader)
            batch = next(self._loader_iter)
        self.batches_done += 1
        return {k: v.to(self.device, non_blocking=True) for k, v in batch.items()}
