"""What a run writes as it goes: log.txt, stats.jsonl, metrics.jsonl and (optionally) TensorBoard events.

Rank-aware I/O lives here, in one place, so multi-process training can silence every rank but 0 here.
"""
from __future__ import annotations

import json
import time
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
