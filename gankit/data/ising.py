"""The ``ising`` builtin: 5000 2-D Ising spin configurations, 64x64 grey, labelled by phase (mdsdata MDS-2).

Files: ``MDS2_Ising_model/images_64.zip`` (PNG, pixels 0 = spin down, 255 = spin up) and ``labels_64.csv``
(filenames, temperatures, labels: 0 below the critical (Curie) temperature, 1 above) inside the mdsdata wheel
(``pip install --no-deps mdsdata==0.1.5``; the Makefile installs it for the tests). Labels: the phase class
(class_names "below_Tc", "above_Tc"); the temperature of each image is available through ``ising_arrays``.
Split: a fixed permutation (seed 0) puts 1000 in 'test' and 4000 in 'train'. ``--set data.resolution=32``
resizes like every builtin (bilinear, so resized images are no longer pure +-1 spins: threshold them with
``gankit.metrics.physics.to_spins``).
"""
from __future__ import annotations

import csv
import functools
import io
import zipfile
from pathlib import Path

import numpy as np
import torch

from ..errors import DataError
from .base import DataInfo
from .catalog import builtin
from .imagefiles import fit_tensor
from .storage import ImageMemoryDataset

ISING_TEST = 1000
ISING_CLASSES = ["below_Tc", "above_Tc"]


def ising_folder() -> Path:
    try:
        import mdsdata
    except ImportError:
        raise DataError("ising needs the mdsdata package (it ships the images): "
                        "pip install --no-deps mdsdata==0.1.5") from None
    folder = Path(mdsdata.__file__).parent / "MDS2_Ising_model"
    missing = [f for f in ("images_64.zip", "labels_64.csv") if not (folder / f).is_file()]
    if missing:
        raise DataError(f"ising: {', '.join(missing)} not found in {folder}: reinstall mdsdata==0.1.5.")
    return folder


@functools.lru_cache(maxsize=1)
def _read_all() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All 5000 images (uint8 [5000, 64, 64], read-only), temperatures and labels, in the CSV's order."""
    from PIL import Image
    folder = ising_folder()
    with open(folder / "labels_64.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    images = []
    with zipfile.ZipFile(folder / "images_64.zip") as archive:
        for row in rows:
            with Image.open(io.BytesIO(archive.read(row["filenames"]))) as img:
                images.append(np.asarray(img.convert("L")))
    temperatures = np.array([float(r["temperatures"]) for r in rows])
    labels = np.array([int(r["labels"]) for r in rows], dtype=np.int64)
    arrays = (np.stack(images), temperatures, labels)
    for a in arrays:
        a.setflags(write=False)
    return arrays


def ising_arrays(split: str | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """uint8 images [n, 64, 64], float temperatures [n], int labels [n] of one split (None: all 5000, file order)."""
    images, temperatures, labels = _read_all()
    idx = np.arange(len(labels))
    if split is not None:
        order = np.random.default_rng(0).permutation(len(labels))
        idx = np.sort(order[:ISING_TEST] if split == "test" else order[ISING_TEST:])
    return images[idx], temperatures[idx], labels[idx]            # fancy indexing: fresh, writable copies


@builtin("ising", kind="image",
         about="2-D Ising spin configurations (mdsdata), 64x64 grey, 2 classes below/above T_c (4000 / 1000)")
def ising(cfg) -> ImageMemoryDataset:
    images, temperatures, labels = ising_arrays(cfg.split)
    resolution = cfg.resolution or images.shape[-1]
    image = fit_tensor(torch.from_numpy(images)[:, None], resolution, cfg.channels)          # [n, C, R, R]
    info = DataInfo(name="ising", kind="image", size=len(image), channels=image.shape[1], resolution=resolution,
                    num_classes=2, class_names=list(ISING_CLASSES),
                    extras={"storage": "memory", "temperature_range": [float(temperatures.min()),
                                                                       float(temperatures.max())]})
    return ImageMemoryDataset({"image": image, "label": torch.from_numpy(labels)}, info)
