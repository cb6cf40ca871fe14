"""Snapshot artefacts: what a recipe shows of its model at each snapshot, each kind with its own writer.

``Recipe.snapshot(fixed, nets)`` returns a list of artefacts; the training loop only calls
``artefact.write(stem, log, nimg)`` with the snapshot's file stem (``run_dir / "samples-000004"``), so it never
reads data-specific fields (a toy's mode centres travel inside the ``Scatter`` the recipe makes). Later kinds
(text samples, audio clips, table previews) are further subclasses with their own suffix and writer.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch


class Artefact:
    suffix: str = ""          # file suffix the writer adds to the stem (".png")
    name: str = "samples"     # stem prefix and TensorBoard tag

    def write(self, stem: Path, log: Any, nimg: int) -> Path:
        raise NotImplementedError


@dataclass
class ImageGrid(Artefact):
    """Images [N, C, H, W] in [-1, 1] laid out ``nrow`` per row."""
    images: torch.Tensor
    nrow: int | None = None
    name: str = "samples"
    suffix: str = ".png"

    def write(self, stem: Path, log: Any, nimg: int) -> Path:
        from .sample import save_grid
        path = stem.with_name(stem.name + self.suffix)
        save_grid(self.images, path, nrow=self.nrow)
        if log is not None:
            log.image(self.name, self.images, nimg)
        return path


@dataclass
class Scatter(Artefact):
    """2-D points [N, D] (first two coordinates) over optional real points and mode centres."""
    points: torch.Tensor
    real: torch.Tensor | None = None
    centers: Sequence[Sequence[float]] | None = None
    title: str = ""
    name: str = "samples"
    suffix: str = ".png"

    def write(self, stem: Path, log: Any, nimg: int) -> Path:
        from .sample import scatter_png
        path = stem.with_name(stem.name + self.suffix)
        title = f"{self.title}, kimg {nimg / 1000:.1f}" if self.title else f"kimg {nimg / 1000:.1f}"
        scatter_png(self.points, path, real=self.real, centers=self.centers, title=title)
        return path
