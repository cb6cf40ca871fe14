"""Hole masks for inpainting: centre squares, random rectangles, free-form brush strokes (Yu et al. 2019).

    mask = make_mask("free", 64, 64, fraction=0.25, rng=np.random.default_rng(0))   # bool [64, 64], True = hole
    masks = mask_batch("rect", n=8, height=64, width=64, fraction=0.2, seed=3)     # bool [8, 1, 64, 64]

Every kind covers the requested fraction of the image:
    centre   the centred square (a rectangle when the square would not fit) of area fraction x H x W, rounded
    rect     a rectangle of that area with a random aspect ratio in [1/2, 2] at a uniform position
    free     brush strokes as in Yu et al. 2019 (supplementary, Algorithm 1: strokes of a few vertices, each
             segment at a random angle and length, drawn as a thick line with round joints) added until the
             hole reaches the fraction; the last segment is shortened (bisection) so the total lands on it
Mask files (``load_mask``): any image; pixels > 127 (after conversion to gray) are holes.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from ..errors import DataError

MASK_KINDS = ("centre", "rect", "free")


def check_mask_args(kind: str, fraction: float) -> None:
    if kind not in MASK_KINDS:
        raise DataError(f"Unknown mask kind {kind!r}. Valid choices: {', '.join(MASK_KINDS)} (or mask files).")
    if not 0.0 < fraction < 1.0:
        raise DataError(f"mask_fraction must be in (0, 1), got {fraction}.")


def _centre(h: int, w: int, fraction: float) -> np.ndarray:
    area = fraction * h * w
    mh = min(h, max(1, round(math.sqrt(area))))
    mw = min(w, max(1, round(area / mh)))
    mask = np.zeros((h, w), dtype=bool)
    top, left = (h - mh) // 2, (w - mw) // 2
    mask[top:top + mh, left:left + mw] = True
    return mask


def _rect(h: int, w: int, fraction: float, rng: np.random.Generator) -> np.ndarray:
    area = fraction * h * w
    aspect = math.exp(rng.uniform(math.log(0.5), math.log(2.0)))          # height / width
    mh = min(h, max(1, round(math.sqrt(area * aspect))))
    mw = min(w, max(1, round(area / mh)))
    mh = min(h, max(1, round(area / mw)))                                 # refit after clipping the width
    top, left = int(rng.integers(0, h - mh + 1)), int(rng.integers(0, w - mw + 1))
    mask = np.zeros((h, w), dtype=bool)
    mask[top:top + mh, left:left + mw] = True
    return mask


def _free(h: int, w: int, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """Yu et al. 2019's stroke generator (maxVertex 8, maxAngle 2 pi / 5, maxLength and brush widths scaled to the
    image: their 256-px values, length <= 40 % and width 4-16 % of the shorter side), drawn until the fraction."""
    from PIL import Image, ImageDraw
    side = min(h, w)
    max_len, min_w, max_w = 0.4 * side, max(1.0, 0.04 * side), max(2.0, 0.16 * side)
    target = fraction * h * w
    canvas = Image.new("L", (w, h), 0)

    def drawn(img: Image.Image) -> int:
        return int(np.count_nonzero(np.asarray(img)))

    def segment(img: Image.Image, p0, p1, width: int) -> Image.Image:
        out = img.copy()
        d = ImageDraw.Draw(out)
        d.line([p0, p1], fill=255, width=width)
        r = width / 2
        for x, y in (p0, p1):
            d.ellipse([x - r, y - r, x + r, y + r], fill=255)
        return out

    for _ in range(1000):                                                 # strokes (a safety bound)
        x, y = rng.uniform(0, w), rng.uniform(0, h)
        angle0 = rng.uniform(0, 2 * math.pi)
        width = int(rng.integers(int(min_w), int(max_w) + 1))
        for v in range(int(rng.integers(1, 9))):
            angle = angle0 + rng.uniform(-2 * math.pi / 5, 2 * math.pi / 5) + (math.pi if v % 2 else 0.0)
            length = rng.uniform(0.25 * max_len, max_len)
            end = lambda t: (min(max(x + t * length * math.cos(angle), 0), w - 1),  # noqa: E731
                             min(max(y + t * length * math.sin(angle), 0), h - 1))
            candidate = segment(canvas, (x, y), end(1.0), width)
            if drawn(candidate) >= target:
                lo, hi = 0.0, 1.0                                         # shorten the last segment
                for _ in range(12):
                    mid = (lo + hi) / 2
                    if drawn(segment(canvas, (x, y), end(mid), width)) >= target:
                        hi = mid
                    else:
                        lo = mid
                return np.asarray(segment(canvas, (x, y), end(hi), width)) > 0
            canvas = candidate
            x, y = end(1.0)
    return np.asarray(canvas) > 0


def make_mask(kind: str, height: int, width: int, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """bool [height, width], True where the image is missing."""
    check_mask_args(kind, fraction)
    if kind == "centre":
        return _centre(height, width, fraction)
    if kind == "rect":
        return _rect(height, width, fraction, rng)
    return _free(height, width, fraction, rng)


def mask_batch(kind: str, n: int, height: int, width: int, fraction: float, seed: int | tuple = 0,
               first: int = 0) -> torch.Tensor:
    """bool [n, 1, H, W]: mask i drawn from ``default_rng([*seed, first + i])`` (a pure function of its index)."""
    seed = tuple(seed) if isinstance(seed, (tuple, list)) else (int(seed),)
    return torch.from_numpy(np.stack([make_mask(kind, height, width, fraction,
                                                np.random.default_rng([*seed, first + i]))
                                      for i in range(n)]))[:, None]


def load_mask(path, size: tuple[int, int] | None = None) -> torch.Tensor:
    """A mask image -> bool [1, 1, H, W] (pixels > 127 are holes), checked against ``size`` (H, W)."""
    from PIL import Image, UnidentifiedImageError
    try:
        with Image.open(path) as img:
            arr = np.asarray(img.convert("L")) > 127
    except (UnidentifiedImageError, OSError) as e:
        raise DataError(f"Cannot read mask {str(path)!r}: {e}") from None
    if size is not None and arr.shape != tuple(size):
        raise DataError(f"Mask {str(path)!r} is {arr.shape[1]}x{arr.shape[0]}, but its image is {size[1]}x{size[0]}.")
    return torch.from_numpy(arr)[None, None]
