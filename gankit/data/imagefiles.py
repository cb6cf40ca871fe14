"""Reading image files: listing, header probes, decoding, resizing to a square of the requested side.

The resize rule is the same everywhere (files, arrays, builtins): scale so that the shorter side equals the
requested resolution, with antialiasing (torchvision's bilinear resize, antialias=True, which for PIL images
is PIL's own filter whose support widens with the reduction factor), then crop the centre square. Nothing
ever stretches an image. Grayscale is ITU-R 601-2 luma, exactly PIL's ``convert("L")``.
"""
from __future__ import annotations

import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..errors import DataError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".gif", ".tif", ".tiff")

# PIL modes that hold colour; "P" (palette) is colour unless every palette entry is gray.
_COLOR_MODES = {"RGB", "RGBA", "RGBX", "RGBa", "CMYK", "YCbCr", "LAB", "HSV"}


class DataWarning(UserWarning):
    """Something about the data the user should know that does not stop loading (skipped files, resizes)."""


@dataclass(frozen=True)
class ImageRef:
    """One image to decode: a file, optionally a crop box (left, upper, right, lower) applied first.

    The box is how one half of a pix2pix side-by-side file is addressed. Plain data, so that lazy datasets
    holding lists of refs can be sent to DataLoader worker processes.
    """
    path: str
    box: tuple[int, int, int, int] | None = None


@dataclass(frozen=True)
class Header:
    width: int
    height: int
    color: bool


def list_images(folder: Path) -> list[Path]:
    """Image files under ``folder`` (recursive, sorted, hidden files and folders skipped)."""
    found = []
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        found.extend(Path(dirpath) / f for f in filenames
                     if not f.startswith(".") and f.lower().endswith(IMAGE_EXTENSIONS))
    return sorted(found)


def probe(path: Path | str) -> Header | None:
    """Size and colour of an image from its header (no decoding); None if the file is not a readable image."""
    try:
        with Image.open(path) as img:
            mode = img.mode
            if mode in ("P", "PA"):
                palette = np.asarray(img.getpalette() or [0, 0, 0]).reshape(-1, 3)
                color = bool((palette != palette[:, :1]).any())
            else:
                color = mode in _COLOR_MODES
            return Header(img.width, img.height, color)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        return None


def fit_pil(img: Image.Image, resolution: int) -> Image.Image:
    """Shorter side -> ``resolution`` (antialiased), then the centre square."""
    import torchvision.transforms.v2.functional as TF   # here, not at the top: torchvision adds ~1 s to `import gankit`
    if img.size != (resolution, resolution):
        if min(img.size) != resolution:
            img = TF.resize(img, [resolution], antialias=True)
        img = TF.center_crop(img, [resolution, resolution])
    return img


def load_image(ref: ImageRef, resolution: int, channels: int) -> np.ndarray:
    """Decode ``ref`` into uint8 [C, R, R] with C = ``channels`` (1 or 3). Raises OSError/ValueError if unreadable."""
    with Image.open(ref.path) as img:
        img.load()
        if ref.box is not None:
            img = img.crop(ref.box)
        img = img.convert("L" if channels == 1 else "RGB")
    arr = np.array(fit_pil(img, resolution), dtype=np.uint8)               # a writable copy
    return arr[None] if arr.ndim == 2 else np.ascontiguousarray(arr.transpose(2, 0, 1))   # [C, R, R]


def decode_all(refs: list[ImageRef], resolution: int, channels: int,
               threads: int = 0) -> tuple[torch.Tensor, list[int]]:
    """Decode many refs in a thread pool (PIL releases the GIL while decoding).

    Returns uint8 [N_ok, C, R, R] and the positions in ``refs`` that failed to decode.
    """
    def one(ref: ImageRef) -> np.ndarray | None:
        try:
            return load_image(ref, resolution, channels)
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError):
            return None

    threads = threads or min(8, os.cpu_count() or 1)
    with ThreadPoolExecutor(threads) as pool:
        arrays = list(pool.map(one, refs, chunksize=64))
    failed = [i for i, a in enumerate(arrays) if a is None]
    good = [a for a in arrays if a is not None]
    out = torch.from_numpy(np.stack(good)) if good else torch.zeros(0, channels, resolution, resolution,
                                                                    dtype=torch.uint8)
    return out, failed


def to_channels(images: torch.Tensor, channels: int) -> torch.Tensor:
    """uint8 [N, C, H, W] -> [N, channels, H, W]; 0 keeps C. RGB -> gray uses PIL's fixed-point ITU-R 601-2 luma."""
    c = images.shape[1]
    if channels in (0, c):
        return images
    if c == 4:                                   # RGBA arrays: drop alpha, as PIL's convert("RGB") does
        images, c = images[:, :3], 3
    if channels == 3 and c == 1:
        return images.expand(-1, 3, -1, -1).contiguous()
    if channels == 1 and c == 3:
        r, g, b = images.int().unbind(1)
        luma = (r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16        # PIL Convert.c L24 = 299/587/114
        return luma.to(torch.uint8)[:, None]
    if c == channels:
        return images
    raise DataError(f"Cannot convert {c}-channel images to {channels} channels (choose 1 or 3).")


def fit_tensor(images: torch.Tensor, resolution: int, channels: int = 0, chunk: int = 4096) -> torch.Tensor:
    """uint8 [N, C, H, W] -> uint8 [N, C', R, R]: channels converted, shorter side resized, centre cropped."""
    import torchvision.transforms.v2.functional as TF   # here, not at the top: torchvision adds ~1 s to `import gankit`
    images = to_channels(images, channels)
    if images.shape[-2:] == (resolution, resolution):
        return images
    out = []
    for part in images.split(chunk):                                     # bounded peak memory
        if min(part.shape[-2:]) != resolution:
            part = TF.resize(part, [resolution], antialias=True)
        out.append(TF.center_crop(part, [resolution, resolution]))
    return torch.cat(out) if out else images.new_zeros(0, images.shape[1], resolution, resolution)


def warn_skipped(skipped: list[str], where: str) -> None:
    if skipped:
        shown = ", ".join(skipped[:5]) + (", ..." if len(skipped) > 5 else "")
        warnings.warn(f"Skipped {len(skipped)} unreadable or corrupt image file(s) in {where}: {shown}",
                      DataWarning, stacklevel=3)


def common_resolution(sizes: list[tuple[int, int]], resolution: int, where: str) -> int:
    """The side every image is brought to: the requested one, else the smallest shorter side (no upscaling).

    Warns when native sizes differ, since the images are then resized, which the user should know.
    """
    if resolution:
        return resolution
    shorts = [min(w, h) for w, h in sizes]
    side = min(shorts)
    if len(set(sizes)) > 1:
        warnings.warn(f"Images in {where} have different sizes (shorter sides {side}..{max(shorts)}); all are "
                      f"resized to {side}x{side}. Set data.resolution to choose the size.", DataWarning,
                      stacklevel=3)
    return side
