"""What a run writes as it goes: log.txt, stats.jsonl, metrics.jsonl and (optionally) TensorBoard events.

Rank-aware I/O lives here, in one place, so multi-process training can silence every rank but 0 here.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch


class RunLog:
    def __init__(self, run_dir: Path, tensorboard: bool = False, rank: int = 0):
        self.run_dir, self.rank = Path(run_dir), rank
        self.writer = None
        if tensorboard and rank == 0:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                from .errors import ConfigError
                raise ConfigError("--tensorboard needs the tensorboard package: pip install 'gankit[tensorboard]'.") from None
            self.writer = SummaryWriter(str(self.run_dir / "tensorboard"))

    def _append(self, name: str, line: str) -> None:
        if self.rank == 0:
            with open(self.run_dir / name, "a", encoding="utf-8") as f:
                f.write(line + "\n")

    def text(self, message: str) -> None:
        self._append("log.txt", f"{time.strftime('%Y-%m-%d %H:%M:%S')} {message}")

    def stats(self, record: dict) -> None:
        self._append("stats.jsonl", json.dumps(record))
        if self.writer is not None:
            step = int(round(record["kimg"] * 1000))
            for k, v in record.items():
                if k not in ("kimg", "step") and isinstance(v, (int, float)):
                    self.writer.add_scalar(k, v, step)

    def metrics(self, record: dict) -> None:
        self._append("metrics.jsonl", json.dumps(record))
        self.text("metrics " + " ".join(f"{k}={v:.5g}" if isinstance(v, float) else f"{k}={v}" for k, v in record.items()))
        if self.writer is not None:
            step = int(round(record["kimg"] * 1000))
            for k, v in record.items():
                if k != "kimg":
                    self.writer.add_scalar(f"metrics/{k}", v, step)

    def image(self, tag: str, images: torch.Tensor, nimg: int) -> None:
        if self.writer is not None:
            from torchvision.utils import make_grid
            self.writer.add_image(tag, (make_grid(images.float().cpu(), normalize=True, value_range=(-1, 1))), nimg)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


@dataclass
class _FoldedRows:
    """The reduced rows of one key tuple: per-key sums on the device, how many rows, and per block the index
    of its first non-finite loss (a device scalar, equal to the block's length when there is none) and its steps."""
    sums: torch.Tensor                                    # [K]
    rows: int = 0
    blocks: list = field(default_factory=list)          # [(first_bad: Tensor[], steps: list[int])]


class TickStats:
    """The recipes' logged values of one tick, kept on the device until the tick ends: one sync per tick.

    Each phase's values of a step are stacked into one row (a single kernel, which matters on a GPU where a
    small DCGAN step is bound by kernel launches). Rows with the same keys are stacked into a block [steps, keys]
    every ``FOLD`` rows and at the end of the tick, reduced to per-key sums and the index of the first row whose
    loss (the key ``PHASE/loss``) is not finite.
    """

    FOLD = 256

    def __init__(self) -> None:
        self.clear()

    def clear(self) -> None:
        self._rows: dict[tuple[str, ...], tuple[list[int], list[torch.Tensor]]] = {}   # keys -> (steps, rows)
        self._folded: dict[tuple[str, ...], _FoldedRows] = {}

    def add(self, phase: str, step: int, out: dict[str, torch.Tensor]) -> None:
        """Record a phase's outputs ({"loss": ..., "D/real": ...}, scalars) at ``step``; no sync."""
        keys = tuple(f"{phase}/loss" if k == "loss" else k for k in out)
        values = list(out.values())
        if not all(v.dim() == 0 and v.dtype == torch.float32 and not v.requires_grad for v in values):
            values = [v.detach().float().reshape(()) for v in values]   # (the step hands these over already)
        row = torch.stack(values)                                                     # [K]
        steps, rows = self._rows.setdefault(keys, ([], []))
        steps.append(step)
        rows.append(row)
        if len(rows) >= self.FOLD:
            self._fold(keys)

    def _fold(self, keys: tuple[str, ...]) -> None:
        steps, rows = self._rows.pop(keys)
        block = torch.stack(rows)                                                     # [n, K]
        loss = block[:, next(i for i, k in enumerate(keys) if k.endswith("/loss"))]
        index = torch.arange(len(rows), device=block.device)
        first_bad = torch.where(torch.isfinite(loss), len(rows), index).min()         # n = none
        folded = self._folded.setdefault(keys, _FoldedRows(torch.zeros(len(keys), device=block.device)))
        folded.sums = folded.sums + block.sum(0)
        folded.rows += len(rows)
        folded.blocks.append((first_bad, steps))

    def _fold_all(self) -> None:
        for keys in list(self._rows):
            self._fold(keys)

    def first_nonfinite_step(self) -> int | None:
        self._fold_all()
        bad_steps = []
        for folded in self._folded.values():
            firsts = torch.stack([first for first, _ in folded.blocks]).tolist()      # one sync
            bad_steps += [steps[i] for i, (_, steps) in zip(firsts, folded.blocks) if i < len(steps)]
        return min(bad_steps) if bad_steps else None

    def take(self) -> dict[str, float]:
        """Per-key means of the tick, then clear."""
        self._fold_all()
        sums: dict[str, float] = {}
        counts: dict[str, int] = {}
        for keys, folded in self._folded.items():
            for key, value in zip(keys, folded.sums.tolist()):
                sums[key] = sums.get(key, 0.0) + value
                counts[key] = counts.get(key, 0) + folded.rows
        self.clear()
        return {k: sums[k] / counts[k] for k in sums}
