"""Offline image-to-image translation tasks built from images that ship with installed packages.

    edges2digits     paired    a = Canny edges of a digit, b = the digit (scikit-learn digits, 32x32)
    edges2photos     paired    a = Canny edges of a crop, b = the RGB crop (scikit-image sample photographs)
    digits2inverted  unpaired  a = digits, b = colour-inverted digits from a DISJOINT set of digits

Edge maps are drawn as black lines on white, like the pix2pix edges2shoes/edges2handbags sets (Isola et al.
2017, sec. 4). Train and test come from disjoint images (digits: the fixed split of ``digits_split``;
photos: disjoint regions of each photograph), so test scores measure generalisation.

digits2inverted has a known true mapping (``info.extras['true_mapping'] == 'invert'``), so a CycleGAN
(Zhu et al. 2017) trained without ever seeing a pair can be scored against the truth on held-out images:
``true_translation("digits2inverted", a) `` gives the exact b for images a in [-1, 1].
"""
from __future__ import annotations

import numpy as np
import torch

from ..errors import DataError
from .base import DataInfo
from .builtins import DIGITS_RESOLUTION, digits_split, digits_uint8
from .catalog import builtin
from .imagefiles import fit_tensor
from .storage import ImageMemoryDataset, make_unpaired


def edge_map(gray: torch.Tensor, sigma: float) -> torch.Tensor:
    """uint8 [N, 1, R, R] -> Canny edges (Canny 1986; scikit-image) as uint8 [N, 1, R, R]: 0 on edges, 255 elsewhere."""
    try:
        from skimage.feature import canny
    except ImportError:
        raise DataError("The edges2* datasets need scikit-image for Canny edges: pip install scikit-image") from None
    edges = np.stack([canny(g.numpy().astype(np.float64) / 255.0, sigma=sigma) for g in gray[:, 0]])
    return torch.from_numpy(np.where(edges, 0, 255).astype(np.uint8))[:, None]


def _paired_info(name: str, a: torch.Tensor, b: torch.Tensor, about: str) -> DataInfo:
    return DataInfo(name=name, kind="paired", size=len(a), channels=a.shape[1], channels_b=b.shape[1],
                    resolution=a.shape[-1], extras={"storage": "memory", "about": about})


# ---- edges2digits ------------------------------------------------------------------------------------------

@builtin("edges2digits", kind="paired", about="Canny edges of digits -> the digit (paired, 32x32, gray)")
def edges2digits(cfg) -> ImageMemoryDataset:
    images, _ = digits_split(cfg.split)
    resolution = cfg.resolution or DIGITS_RESOLUTION
    digit = digits_uint8(images, resolution)                                    # [n, 1, R, R] uint8
    edges = edge_map(digit, sigma=resolution / 32)                              # sigma in pixels scales with R
    a, b = fit_tensor(edges, resolution, cfg.channels), fit_tensor(digit, resolution, cfg.channels)
    return ImageMemoryDataset({"a": a, "b": b}, _paired_info("edges2digits", a, b, edges2digits.about))


# ---- edges2photos ------------------------------------------------------------------------------------------

PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "motorcycle")
PHOTO_CROPS = {"train": 4000, "test": 400}
PHOTO_TEST_FRACTION = 0.25     # the right quarter of every photograph is held out for the test split
PHOTOS_RESOLUTION = 64


def sample_photographs() -> dict[str, np.ndarray]:
    """scikit-image's bundled colour photographs, uint8 [H, W, 3] (no download: they ship in the wheel)."""
    try:
        from skimage import data
    except ImportError:
        raise DataError("edges2photos needs scikit-image for its sample photographs: pip install scikit-image") \
            from None
    loaders = {"astronaut": data.astronaut, "coffee": data.coffee, "chelsea": data.chelsea,
               "rocket": data.rocket, "motorcycle": lambda: data.stereo_motorcycle()[0]}
    return {name: loaders[name]() for name in PHOTOS}


def crop_boxes(split: str, count: int, sizes: dict[str, tuple[int, int]], seed: int = 0) -> list[tuple]:
    """``count`` random squares (photo, x0, y0, side) over photos of ``sizes`` {name: (H, W)}, seeded.

    Sides are 15-25% of the photo's shorter side (objects at several scales); train squares lie in the left
    75% of each photo and test squares in the right 25%, so the two splits share no pixel.
    """
    rng = np.random.default_rng([seed, 0 if split == "train" else 1])
    boxes = []
    for name in rng.choice(sorted(sizes), size=count):
        h, w = sizes[name]
        cut = int(w * (1 - PHOTO_TEST_FRACTION))
        lo, hi = (0, cut) if split == "train" else (cut, w)
        short = min(h, w)
        side = min(int(rng.integers(int(0.15 * short), int(0.25 * short) + 1)), hi - lo, h)
        boxes.append((str(name), int(rng.integers(lo, hi - side + 1)), int(rng.integers(0, h - side + 1)), side))
    return boxes


def photo_crops(split: str, resolution: int, count: int, seed: int = 0) -> torch.Tensor:
    """The crops of ``crop_boxes`` resized (antialiased) to ``resolution``: uint8 [count, 3, R, R]."""
    import torchvision.transforms.v2.functional as TF   # here, not at the top: torchvision adds ~1 s to `import gankit`
    photos = sample_photographs()
    crops = []
    for name, x0, y0, side in crop_boxes(split, count, {k: v.shape[:2] for k, v in photos.items()}, seed):
        crop = torch.from_numpy(np.ascontiguousarray(photos[name][y0:y0 + side, x0:x0 + side])).permute(2, 0, 1)
        crops.append(TF.resize(crop, [resolution, resolution], antialias=True))  # [3, R, R]
    return torch.stack(crops)


@builtin("edges2photos", kind="paired",
         about="Canny edges of crops of scikit-image's sample photos -> the RGB crop (paired, 64x64)")
def edges2photos(cfg) -> ImageMemoryDataset:
    resolution = cfg.resolution or PHOTOS_RESOLUTION
    photo = photo_crops(cfg.split, resolution, PHOTO_CROPS[cfg.split])           # [n, 3, R, R] uint8
    edges = edge_map(fit_tensor(photo, resolution, 1), sigma=2.0 * resolution / 64)
    a, b = fit_tensor(edges, resolution, cfg.channels), fit_tensor(photo, resolution, cfg.channels)
    return ImageMemoryDataset({"a": a, "b": b}, _paired_info("edges2photos", a, b, edges2photos.about))


# ---- digits2inverted ---------------------------------------------------------------------------------------

def invert(images: torch.Tensor) -> torch.Tensor:
    """Colour inversion in [-1, 1]: uint8 255 - u is exactly -x, since from_uint8(255 - u) = 1 - u/127.5."""
    return -images


TRUE_MAPPINGS = {"invert": invert}                       # mapping name -> a -> b on [-1, 1] images
DATASET_TRUTH = {"digits2inverted": "invert"}            # builtin -> its mapping (self-inverse: AtoB = BtoA)


def true_translation(name: str, a_images: torch.Tensor) -> torch.Tensor:
    """The exact b for inputs ``a_images`` [N, C, H, W] in [-1, 1]; ``name``: a builtin or a mapping name."""
    mapping = DATASET_TRUTH.get(name, name)
    if mapping not in TRUE_MAPPINGS:
        raise DataError(f"No known true translation for {name!r}. Known: "
                        f"{', '.join(sorted(DATASET_TRUTH) + sorted(TRUE_MAPPINGS))}.")
    return TRUE_MAPPINGS[mapping](a_images)


@builtin("digits2inverted", kind="unpaired",
         about="digits vs colour-inverted digits from disjoint image sets (unpaired; true mapping: invert; "
               "train CycleGAN with --set identity_weight=0: its identity term pulls against an inversion)")
def digits2inverted(cfg):
    images, _ = digits_split(cfg.split)
    resolution = cfg.resolution or DIGITS_RESOLUTION
    digit = fit_tensor(digits_uint8(images, resolution), resolution, cfg.channels)    # [n, C, R, R] uint8
    # Disjoint halves: domain a never contains the digit whose inversion is in domain b.
    order = torch.randperm(len(digit), generator=torch.Generator().manual_seed(0))
    half = len(digit) // 2
    domain_a, domain_b = digit[order[:half]], 255 - digit[order[half:]]
    info = DataInfo(name="digits2inverted", kind="unpaired", size=max(len(domain_a), len(domain_b)),
                    channels=digit.shape[1], channels_b=digit.shape[1], resolution=resolution,
                    extras={"storage": "memory", "true_mapping": "invert", "size_a": len(domain_a),
                            "size_b": len(domain_b), "about": digits2inverted.about})
    dom = lambda x: ImageMemoryDataset({"image": x}, DataInfo("digits2inverted", "image", len(x)))  # noqa: E731
    return make_unpaired(dom(domain_a), dom(domain_b), info)
