"""A folder of images, with class labels from its subfolders.

    faces/                      unlabelled: every image below faces/ (recursive)
    animals/cat/*.jpg           labelled: one class per first-level subfolder holding images
    animals/dog/**/*.png
    set/train/... set/test/...  split layout: data.split picks the subfolder (each may have class folders)

Unreadable files are skipped with one warning and counted in ``info.extras['skipped_files']``.
"""
from __future__ import annotations

from pathlib import Path

from ..errors import DataError
from .base import DataInfo
from .catalog import PathFormat, path_formats
from .imagefiles import Header, ImageRef, common_resolution, list_images, probe
from .storage import build_image_dataset, labels_tensor



def split_folder(folder: Path, split: str) -> Path:
    """``folder/<split>`` when the folder is laid out as train/ test/ (val/) subfolders, else the folder."""
    subdirs = {p.name for p in folder.iterdir() if p.is_dir()}
    if {"train", "test"} <= subdirs or ("train" in subdirs and "val" in subdirs):
        if split == "test" and "test" not in subdirs:
            split = "val"   # pix2pix sets such as facades ship train/ val/ (test/ is optional)
        return folder / split
    return folder


def scan_folder(folder: Path) -> tuple[list[Path], list[Header], list[str]]:
    """Readable image files under ``folder`` with their headers, and the unreadable ones."""
    files, headers, skipped = [], [], []
    for path in list_images(folder):
        header = probe(path)
        if header is None:
            skipped.append(str(path))
        else:
            files.append(path)
            headers.append(header)
    return files, headers, skipped


def no_images_error(folder: Path, skipped: list[str]) -> DataError:
    extra = f" ({len(skipped)} file(s) with image extensions could not be read)" if skipped else ""
    return DataError(f"No readable image in folder {str(folder)!r}{extra}. Accepted extensions: "
                     "png, jpg, jpeg, bmp, webp, gif, tif, tiff (searched recursively).")


def class_of(path: Path, folder: Path) -> str:
    """First-level subfolder name, or '' for a file directly in ``folder``."""
    rel = path.relative_to(folder).parts
    return rel[0] if len(rel) > 1 else ""


def load_image_folder(cfg, kind: str = "image") -> object:
    folder = split_folder(Path(cfg.spec), cfg.split)
    files, headers, skipped = scan_folder(folder)
    if not files:
        raise no_images_error(folder, skipped)

    # Labels: one class per first-level subfolder, when there are at least two.
    classes = sorted({class_of(p, folder) for p in files})
    labelled = cfg.labels and len([c for c in classes if c]) >= 2
    columns: dict = {"image": [ImageRef(str(p)) for p in files]}
    class_names: list[str] = []
    if labelled:
        loose = [str(p) for p in files if not class_of(p, folder)]
        if loose:
            raise DataError(f"Folder {str(folder)!r} has class subfolders ({', '.join(classes[1:4])}, ...) and "
                            f"also {len(loose)} image(s) directly inside it (e.g. {loose[0]}). Move them into a "
                            "class folder, or set data.labels=false to use every image unlabelled.")
        class_names = classes
        columns["label"] = labels_tensor([classes.index(class_of(p, folder)) for p in files], str(folder))

    resolution = common_resolution([(h.width, h.height) for h in headers], cfg.resolution, str(folder))
    channels = cfg.channels or (3 if any(h.color for h in headers) else 1)
    info = DataInfo(name=cfg.spec, kind="image", size=len(files), channels=channels, resolution=resolution,
                    num_classes=len(class_names), class_names=class_names)
    return build_image_dataset(columns, info, resolution, {"image": channels}, skipped, str(folder))


def is_cyclegan_root(path: Path) -> bool:
    """trainA/ trainB/ (or testA/ testB/): the CycleGAN layout, a format of its own (data/paired.py)."""
    return path.is_dir() and any((path / f"{s}A").is_dir() and (path / f"{s}B").is_dir() for s in ("train", "test"))


def _is_plain_folder(cfg) -> bool:
    path = Path(cfg.spec)
    return path.is_dir() and not cfg.spec_b and not is_cyclegan_root(path)


path_formats.register("image-folder")(PathFormat(
    about="a folder of images (recursive; class labels from subfolder names; train/ test/ subfolders for splits)",
    matches=_is_plain_folder,
    provides=lambda cfg: ("image",),
    load=load_image_folder,
))

