"""Arrays in files: ``.npz`` of images or vectors, ``.csv`` of vectors (tabular data, 2-D point sets).

    .npz images   key 'images' or 'x' (else the first array): uint8 or float, [N, H, W], [N, H, W, C] or
                  [N, C, H, W] with C in 1, 3 (4: alpha dropped); floats in [0, 1] or [-1, 1]
    .npz vectors  same keys, a 2-D array [N, D]
    labels        optional key 'labels' or 'y': integer class indices [N]
    .csv          numeric columns, optional header; a column named label / labels / y / class / target holds
                  labels (numbers, or names mapped to indices in sorted order)
"""
from __future__ import annotations

import csv
import warnings
import zipfile
from pathlib import Path

import numpy as np
import torch

from ..errors import DataError
from ..images import to_uint8
from .base import DataInfo, MemoryDataset
from .catalog import PathFormat, path_formats
from .imagefiles import DataWarning, fit_tensor
from .storage import ImageMemoryDataset, labels_tensor

DATA_KEYS = ("images", "x", "data", "vectors")
LABEL_KEYS = ("labels", "y")
LABEL_COLUMNS = ("label", "labels", "y", "class", "target")


# ---- npz ---------------------------------------------------------------------------------------------------

def _npz_keys(path: Path) -> tuple[str, str | None]:
    """(data key, label key or None) of an .npz, read from the archive's member names (no array is loaded)."""
    try:
        with zipfile.ZipFile(path) as z:
            names = [n[:-4] for n in z.namelist() if n.endswith(".npy")]
    except (zipfile.BadZipFile, OSError) as e:
        raise DataError(f"Cannot read {str(path)!r} as an .npz archive: {e}") from None
    label_key = next((k for k in LABEL_KEYS if k in names), None)
    data_key = next((k for k in DATA_KEYS if k in names), None)
    if data_key is None:
        data_key = next((k for k in names if k not in LABEL_KEYS), None)
    if data_key is None:
        raise DataError(f"{str(path)!r} holds no data array (keys: {', '.join(names) or 'none'}). Store images "
                        f"or vectors under one of {', '.join(DATA_KEYS)}.")
    return data_key, label_key


def _npz_ndim(path: Path, key: str) -> int:
    """Number of dimensions of one array, from its .npy header."""
    with zipfile.ZipFile(path) as z, z.open(key + ".npy") as f:
        version = np.lib.format.read_magic(f)
        read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, _, _ = read(f)
    return len(shape)


def _npz_kind(cfg) -> tuple[str, ...]:
    path = Path(cfg.spec)
    ndim = _npz_ndim(path, _npz_keys(path)[0])
    if ndim in (3, 4):
        return ("image",)
    if ndim == 2:
        return ("vector",)
    raise DataError(f"The data array in {str(path)!r} has {ndim} dimensions; expected images [N, H, W(, C)] "
                    "or [N, C, H, W], or vectors [N, D].")


def images_to_uint8(arr: np.ndarray, where: str) -> torch.Tensor:
    """Image array in any accepted layout and range -> uint8 [N, C, H, W]."""
    if arr.ndim == 3:
        arr = arr[:, None]                                        # [N, H, W] -> [N, 1, H, W]
    elif arr.shape[-1] in (1, 3, 4) and arr.shape[1] not in (1, 3, 4):
        arr = arr.transpose(0, 3, 1, 2)                           # NHWC -> NCHW
    elif arr.shape[1] not in (1, 3, 4):
        raise DataError(f"Cannot tell the channel axis of images {arr.shape} in {where}: expected [N, H, W, C] "
                        "or [N, C, H, W] with C = 1 or 3.")
    if arr.dtype == np.uint8:
        images = torch.from_numpy(np.ascontiguousarray(arr))
    elif np.issubdtype(arr.dtype, np.floating):
        lo, hi = float(arr.min()), float(arr.max())
        if lo >= 0 and hi <= 1:
            x = torch.from_numpy(arr.astype(np.float32)) * 2 - 1   # [0, 1] -> [-1, 1]
        elif lo >= -1 and hi <= 1:
            x = torch.from_numpy(arr.astype(np.float32))
        else:
            raise DataError(f"Float images in {where} must lie in [0, 1] or [-1, 1]; found [{lo:g}, {hi:g}]. "
                            "Store uint8 0..255 instead, or rescale.")
        images = to_uint8(x)
    else:
        raise DataError(f"Images in {where} must be uint8 or float, got {arr.dtype}.")
    if images.shape[1] == 4:
        warnings.warn(f"Images in {where} have 4 channels; the alpha channel is dropped.", DataWarning, stacklevel=3)
        images = images[:, :3]
    return images


def load_npz(cfg, kind: str):
    path = Path(cfg.spec)
    data_key, label_key = _npz_keys(path)
    with np.load(path, allow_pickle=False) as z:
        arr = z[data_key]
        labels = z[label_key] if label_key else None
    if labels is not None and len(labels) != len(arr):
        raise DataError(f"{str(path)!r}: {len(labels)} labels for {len(arr)} items.")
    columns: dict[str, torch.Tensor] = {}
    num_classes = 0
    if labels is not None and cfg.labels:
        columns["label"] = labels_tensor(labels.reshape(-1), str(path))
        num_classes = int(columns["label"].max()) + 1 if len(labels) else 0
    if kind == "vector":
        if not np.issubdtype(arr.dtype, np.number):
            raise DataError(f"Vectors in {str(path)!r} must be numeric, got {arr.dtype}.")
        x = torch.from_numpy(arr.astype(np.float32))                            # [N, D]
        _check_finite(x, str(path))
        info = DataInfo(name=cfg.spec, kind="vector", size=len(x), dim=x.shape[1], num_classes=num_classes,
                        class_names=[str(i) for i in range(num_classes)])
        return MemoryDataset({"x": x, **columns}, info)
    images = images_to_uint8(arr, str(path))
    resolution = cfg.resolution or min(images.shape[-2:])
    images = fit_tensor(images, resolution, cfg.channels)                       # [N, C, R, R] uint8
    info = DataInfo(name=cfg.spec, kind="image", size=len(images), channels=images.shape[1],
                    resolution=resolution, num_classes=num_classes,
                    class_names=[str(i) for i in range(num_classes)], extras={"storage": "memory"})
    return ImageMemoryDataset({"image": images, **columns}, info)


path_formats.register("npz")(PathFormat(
    about="an .npz file of images [N, H, W, C] / [N, C, H, W] or vectors [N, D] (+ optional 'labels')",
    matches=lambda cfg: Path(cfg.spec).is_file() and cfg.spec.lower().endswith(".npz"),
    provides=_npz_kind,
    load=load_npz,
))


# ---- csv ---------------------------------------------------------------------------------------------------

def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def load_csv(cfg, kind: str = "vector"):
    path = Path(cfg.spec)
    with open(path, newline="") as f:
        rows = [r for r in csv.reader(f) if r and any(c.strip() for c in r)]
    if not rows:
        raise DataError(f"{str(path)!r} is empty.")
    header = None if all(_is_number(c) for c in rows[0]) else [c.strip() for c in rows[0]]
    body = rows[1:] if header else rows
    width = len(rows[0])
    label_col = next((i for i, name in enumerate(header or []) if name.lower() in LABEL_COLUMNS), None)
    values, raw_labels = [], []
    for line, row in enumerate(body, start=2 if header else 1):
        if len(row) != width:
            raise DataError(f"{str(path)!r} line {line}: {len(row)} columns, expected {width}.")
        cells = [c.strip() for i, c in enumerate(row) if i != label_col]
        bad = next((c for c in cells if not _is_number(c)), None)
        if bad is not None:
            raise DataError(f"{str(path)!r} line {line}: {bad!r} is not a number. Feature columns must be "
                            f"numeric; a label column must be named one of {', '.join(LABEL_COLUMNS)}.")
        values.append([float(c) for c in cells])
        if label_col is not None:
            raw_labels.append(row[label_col].strip())
    if not values:
        raise DataError(f"{str(path)!r} has a header but no rows.")
    x = torch.tensor(values, dtype=torch.float32)                                   # [N, D]
    _check_finite(x, str(path))
    columns: dict[str, torch.Tensor] = {"x": x}
    class_names: list[str] = []
    if label_col is not None and cfg.labels:
        if all(_is_number(v) for v in raw_labels):
            columns["label"] = labels_tensor(np.array([float(v) for v in raw_labels]), str(path))
            class_names = [str(i) for i in range(int(columns["label"].max()) + 1)]
        else:                                                   # names -> indices in sorted order
            class_names = sorted(set(raw_labels))
            columns["label"] = torch.tensor([class_names.index(v) for v in raw_labels], dtype=torch.long)
    info = DataInfo(name=cfg.spec, kind="vector", size=len(x), dim=x.shape[1], num_classes=len(class_names),
                    class_names=class_names,
                    extras={"columns": [c for i, c in enumerate(header) if i != label_col]} if header else {})
    return MemoryDataset(columns, info)


def _check_finite(x: torch.Tensor, where: str) -> None:
    if not torch.isfinite(x).all():
        bad = torch.nonzero(~torch.isfinite(x))[0].tolist()
        raise DataError(f"{where} holds a non-finite value (NaN or inf) at row {bad[0]}, column {bad[1]}.")


path_formats.register("csv")(PathFormat(
    about="a .csv of numeric columns (vectors; optional header with a 'label' column)",
    matches=lambda cfg: Path(cfg.spec).is_file() and cfg.spec.lower().endswith(".csv"),
    provides=lambda cfg: ("vector",),
    load=load_csv,
))
