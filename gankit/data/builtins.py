"""Builtin image datasets: ``digits`` (ships with scikit-learn) and the torchvision classics.

``mnist``, ``fashion-mnist``, ``cifar10`` and ``celeba`` read files under the data root (data.root, else
$GANKIT_DATA, else ./data). They download only with data.download=true (``--download``); otherwise missing
files raise a ``DataError`` that says which files to put where. MNIST-style sets also read the original IDX
files, gzipped or not, in torchvision's layout (root/MNIST/raw/) or directly in the root.
"""
from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import torch

from ..errors import DataError
from .base import DataInfo
from .catalog import builtin, data_root
from .imagefiles import ImageRef, fit_tensor
from .storage import ImageMemoryDataset, build_image_dataset

# ---- digits ------------------------------------------------------------------------------------------------

DIGITS_TEST = 360            # held-out images (20% of 1797), chosen by a fixed permutation
DIGITS_RESOLUTION = 32       # default side: 8x8 is too small for convolutional GANs (4x bilinear upscale)


def digits_split(split: str) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 8x8 digits (values 0..16) of one split: float [n, 8, 8], int [n].

    The 1797 images have no standard split; a fixed permutation (seed 0) puts 360 in 'test' and 1437 in
    'train', disjoint, so a classifier or translation trained on 'train' can be measured on 'test'.
    """
    from sklearn.datasets import load_digits
    bunch = load_digits()
    order = np.random.default_rng(0).permutation(len(bunch.images))
    idx = order[:DIGITS_TEST] if split == "test" else order[DIGITS_TEST:]
    return bunch.images[idx], bunch.target[idx]


def digits_uint8(images: np.ndarray, resolution: int) -> torch.Tensor:
    """Digits 0..16 -> uint8 [n, 1, R, R]: 0 -> 0 and 16 -> 255, resized in float and rounded once."""
    import torchvision.transforms.v2.functional as TF   # here, not at the top: torchvision adds ~1 s to `import gankit`
    x = torch.from_numpy(images).float()[:, None] * (255.0 / 16.0)           # [n, 1, 8, 8] in [0, 255]
    if resolution != 8:
        x = TF.resize(x, [resolution], antialias=True)                        # bilinear; convex weights
    return x.round().clamp(0, 255).to(torch.uint8)


@builtin("digits", kind="image",
         about="scikit-learn's 8x8 handwritten digits (1437 train / 360 test, 10 classes), 32x32 by default")
def digits(cfg) -> ImageMemoryDataset:
    images, labels = digits_split(cfg.split)
    resolution = cfg.resolution or DIGITS_RESOLUTION
    image = fit_tensor(digits_uint8(images, resolution), resolution, cfg.channels)      # [n, C, R, R]
    info = DataInfo(name="digits", kind="image", size=len(image), channels=image.shape[1], resolution=resolution,
                    num_classes=10, class_names=[str(i) for i in range(10)], extras={"storage": "memory"})
    return ImageMemoryDataset({"image": image, "label": torch.from_numpy(labels).long()}, info)


# ---- MNIST-style IDX files ---------------------------------------------------------------------------------

def read_idx(path: Path) -> np.ndarray:
    """An IDX file (LeCun's MNIST format), plain or gzipped: magic 0 0 0x08 ndim, ndim big-endian sizes, bytes."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as e:
        raise DataError(f"Cannot read IDX file {str(path)!r}: {e}") from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise DataError(f"{str(path)!r} is not an unsigned-byte IDX file (bad magic number {data[:4].hex()}).")
    ndim = data[3]
    shape = tuple(int(s) for s in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    offset = 4 + 4 * ndim
    if len(data) - offset != int(np.prod(shape)):
        raise DataError(f"{str(path)!r} is truncated: header says {shape}, found {len(data) - offset} bytes.")
    return np.frombuffer(data, dtype=np.uint8, offset=offset).reshape(shape)


IDX_FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
             "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}


def _find(name: str, folders: list[Path]) -> Path | None:
    for folder in folders:
        for candidate in (folder / name, folder / f"{name}.gz"):
            if candidate.is_file():
                return candidate
    return None


def idx_dataset(cfg, name: str, tv_class: str, classes: list[str]) -> ImageMemoryDataset:
    """MNIST or Fashion-MNIST from IDX files, downloading through torchvision only when asked."""
    root = data_root(cfg)
    folders = [root / tv_class / "raw", root / tv_class, root]
    names = IDX_FILES[cfg.split]
    found = [_find(n, folders) for n in names]
    if None in found and cfg.download:
        import torchvision.datasets as tvd
        try:
            getattr(tvd, tv_class)(str(root), train=cfg.split == "train", download=True)
        except Exception as e:  # noqa: BLE001 - network errors come in many types; say what failed
            raise DataError(f"Downloading {name} into {str(root)!r} failed: {e}") from None
        found = [_find(n, folders) for n in names]
    if None in found:
        missing = [n for n, f in zip(names, found) if f is None]
        raise DataError(
            f"{name} ({cfg.split} split) needs the files {' and '.join(f + '.gz' for f in missing)} (gzipped or "
            f"not) in {str(root / tv_class / 'raw')!r} or directly in {str(root)!r}. The data root is "
            f"data.root, else $GANKIT_DATA, else ./data. Pass --download (data.download=true) to fetch them.")
    images, labels = (read_idx(p) for p in found)
    if images.ndim != 3 or len(images) != len(labels):
        raise DataError(f"{name}: {found[0]} holds {images.shape}, {found[1]} holds {labels.shape} labels.")
    resolution = cfg.resolution or images.shape[-1]
    image = fit_tensor(torch.from_numpy(images.copy())[:, None], resolution, cfg.channels)   # [N, C, R, R]
    info = DataInfo(name=name, kind="image", size=len(image), channels=image.shape[1], resolution=resolution,
                    num_classes=len(classes), class_names=list(classes),
                    extras={"storage": "memory", "files": [str(p) for p in found]})
    return ImageMemoryDataset({"image": image, "label": torch.from_numpy(labels.astype(np.int64))}, info)


@builtin("mnist", kind="image", about="MNIST handwritten digits, 28x28 (60000 train / 10000 test), torchvision")
def mnist(cfg) -> ImageMemoryDataset:
    return idx_dataset(cfg, "mnist", "MNIST", [str(i) for i in range(10)])


@builtin("fashion-mnist", kind="image", about="Fashion-MNIST clothing, 28x28 (60000 / 10000), torchvision")
def fashion_mnist(cfg) -> ImageMemoryDataset:
    from torchvision.datasets import FashionMNIST
    return idx_dataset(cfg, "fashion-mnist", "FashionMNIST", FashionMNIST.classes)


# ---- CIFAR-10 ----------------------------------------------------------------------------------------------

CIFAR_FILES = {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]}


@builtin("cifar10", kind="image", about="CIFAR-10, 32x32 colour, 10 classes (50000 train / 10000 test), torchvision")
def cifar10(cfg) -> ImageMemoryDataset:
    from torchvision.datasets import CIFAR10
    from torchvision.datasets.utils import extract_archive
    root = data_root(cfg)
    folder = root / CIFAR10.base_folder                                      # root/cifar-10-batches-py
    needed = CIFAR_FILES[cfg.split] + ["batches.meta"]
    archive = root / CIFAR10.filename                                        # cifar-10-python.tar.gz
    if not all((folder / f).is_file() for f in needed) and archive.is_file() and not cfg.download:
        extract_archive(str(archive), str(root))
    if not all((folder / f).is_file() for f in needed) and not cfg.download:
        raise DataError(f"cifar10 needs {', '.join(needed)} in {str(folder)!r} (the extracted "
                        f"{CIFAR10.filename}; the archive itself in {str(root)!r} is also accepted). The data root "
                        "is data.root, else $GANKIT_DATA, else ./data. Pass --download (data.download=true) to "
                        "fetch it.")
    try:
        ds = CIFAR10(str(root), train=cfg.split == "train", download=cfg.download)
    except RuntimeError as e:
        raise DataError(f"cifar10 in {str(root)!r}: {e}") from None
    resolution = cfg.resolution or 32
    image = fit_tensor(torch.from_numpy(ds.data).permute(0, 3, 1, 2), resolution, cfg.channels)  # [N, C, R, R]
    info = DataInfo(name="cifar10", kind="image", size=len(image), channels=image.shape[1], resolution=resolution,
                    num_classes=10, class_names=list(ds.classes), extras={"storage": "memory"})
    return ImageMemoryDataset({"image": image, "label": torch.tensor(ds.targets, dtype=torch.long)}, info)


# ---- CelebA ------------------------------------------------------------------------------------------------

CELEBA_RESOLUTION = 64       # default side: the 64x64 of DCGAN-era GAN papers (native is 178x218)
CELEBA_PARTITION = {"train": "0", "test": "2"}   # list_eval_partition.txt: 0 train, 1 valid, 2 test


@builtin("celeba", kind="image", about="CelebA aligned faces (unlabelled), 64x64 by default, torchvision")
def celeba(cfg):
    root = data_root(cfg)
    folder = root / "celeba"
    images_dir, partition = folder / "img_align_celeba", folder / "list_eval_partition.txt"
    if not (images_dir.is_dir() and partition.is_file()) and cfg.download:
        from torchvision.datasets import CelebA
        try:
            CelebA(str(root), split="all", target_type=[], download=True)
        except Exception as e:  # noqa: BLE001 - gdown / network failures
            raise DataError(f"Downloading celeba into {str(root)!r} failed: {e}") from None
    if not (images_dir.is_dir() and partition.is_file()):
        raise DataError(f"celeba needs the folder {str(images_dir)!r} (the 202599 JPEGs of img_align_celeba.zip) "
                        f"and the file {str(partition)!r}. The data root is data.root, else $GANKIT_DATA, else "
                        "./data. Pass --download (data.download=true) to fetch them (needs the gdown package).")
    wanted = CELEBA_PARTITION[cfg.split]
    names = [line.split()[0] for line in partition.read_text().splitlines()
             if len(line.split()) == 2 and line.split()[1] == wanted]
    refs = [ImageRef(str(images_dir / n)) for n in names if (images_dir / n).is_file()]
    missing = len(names) - len(refs)
    resolution = cfg.resolution or CELEBA_RESOLUTION
    channels = cfg.channels or 3
    info = DataInfo(name="celeba", kind="image", size=len(refs), channels=channels, resolution=resolution)
    skipped = [str(images_dir / n) for n in names if not (images_dir / n).is_file()] if missing else []
    return build_image_dataset({"image": refs}, info, resolution, {"image": channels}, skipped, str(images_dir))
