"""Image-to-image data on disk: pix2pix pairs and CycleGAN unpaired domains.

Paired (kind "paired", items {'a', 'b'}; pix2pix, Isola et al. 2017):
    facades/train/*.jpg         each file holds A | B side by side (the pix2pix datasets' layout);
    facades/test/*.jpg          data.split picks the subfolder (val/ when there is no test/)
    --data A/ --data-b B/       two folders whose files match by name (extension may differ)

Unpaired (kind "unpaired"; CycleGAN, Zhu et al. 2017):
    horse2zebra/trainA trainB testA testB    the CycleGAN datasets' layout; data.split picks train/test
    --data A/ --data-b B/                    two folders of any sizes

data.direction=BtoA swaps the sides (applied in ``load_dataset`` for every paired/unpaired source).
"""
from __future__ import annotations

from pathlib import Path

from ..errors import DataError
from .base import DataInfo
from .catalog import PathFormat, path_formats
from .folders import is_cyclegan_root, no_images_error, scan_folder, split_folder
from .imagefiles import ImageRef, common_resolution
from .storage import build_image_dataset, make_unpaired


# ---- pix2pix: side-by-side files ---------------------------------------------------------------------------

def load_side_by_side(cfg, kind: str = "paired"):
    folder = split_folder(Path(cfg.spec), cfg.split)
    files, headers, skipped = scan_folder(folder)
    if not files:
        raise no_images_error(folder, skipped)
    refs_a, refs_b, sizes = [], [], []
    for path, h in zip(files, headers):
        half = h.width // 2
        if half == 0:
            skipped.append(str(path))
            continue
        refs_a.append(ImageRef(str(path), (0, 0, half, h.height)))               # left half: A
        refs_b.append(ImageRef(str(path), (half, 0, 2 * half, h.height)))        # right half: B
        sizes.append((half, h.height))
    resolution = common_resolution(sizes, cfg.resolution, str(folder))
    channels = cfg.channels or (3 if any(h.color for h in headers) else 1)
    info = DataInfo(name=cfg.spec, kind="paired", size=len(refs_a), channels=channels, channels_b=channels,
                    resolution=resolution, extras={"layout": "side-by-side"})
    return build_image_dataset({"a": refs_a, "b": refs_b}, info, resolution, {"a": channels, "b": channels},
                               skipped, str(folder))


path_formats.register("pix2pix-folder")(PathFormat(
    about="a pix2pix folder: each image holds A (left) and B (right) side by side; train/ test/ subfolders",
    matches=lambda cfg: Path(cfg.spec).is_dir() and not cfg.spec_b and not is_cyclegan_root(Path(cfg.spec)),
    provides=lambda cfg: ("paired",),
    load=load_side_by_side,
))


# ---- two folders -------------------------------------------------------------------------------------------

def _scan_domain(folder: Path) -> tuple[list[Path], list, list[str]]:
    files, headers, skipped = scan_folder(folder)
    if not files:
        raise no_images_error(folder, skipped)
    return files, headers, skipped


def _domain_channels(cfg, headers) -> int:
    return cfg.channels or (3 if any(h.color for h in headers) else 1)


def load_two_folders_paired(cfg, kind: str = "paired"):
    folder_a, folder_b = split_folder(Path(cfg.spec), cfg.split), split_folder(Path(cfg.spec_b), cfg.split)
    files_a, headers_a, skipped = _scan_domain(folder_a)
    files_b, headers_b, skipped_b = _scan_domain(folder_b)
    # Partners share the relative path without extension: A/001.png <-> B/001.jpg. Unreadable files take
    # part in the matching (their partner is not "missing"), then their pairs are dropped and counted.
    key = lambda path, root: str(Path(path).relative_to(root).with_suffix(""))  # noqa: E731
    for folder, files in ((folder_a, files_a + skipped), (folder_b, files_b + skipped_b)):
        keys = sorted(key(p, folder) for p in files)
        twice = sorted({k for k, nxt in zip(keys, keys[1:]) if k == nxt})
        if twice:
            raise DataError(f"{str(folder)!r} holds several files named {twice[0]!r} (different extensions); "
                            f"pairs are matched by name, so names must be unique ({len(twice)} such names).")
    readable_b = {key(p, folder_b): i for i, p in enumerate(files_b)}
    all_a = {key(p, folder_a) for p in files_a} | {key(p, folder_a) for p in skipped}
    all_b = set(readable_b) | {key(p, folder_b) for p in skipped_b}
    missing_b, missing_a = sorted(all_a - all_b), sorted(all_b - all_a)
    if missing_a or missing_b:
        lines = []
        if missing_b:
            lines.append(f"{len(missing_b)} image(s) in {str(folder_a)!r} have no partner in {str(folder_b)!r}, "
                         f"e.g. {', '.join(missing_b[:5])}")
        if missing_a:
            lines.append(f"{len(missing_a)} image(s) in {str(folder_b)!r} have no partner in {str(folder_a)!r}, "
                         f"e.g. {', '.join(missing_a[:5])}")
        raise DataError("Paired folders must hold files with matching names (extensions may differ): "
                        + "; ".join(lines) + ". For unpaired training (CycleGAN) the names need not match.")
    skipped += skipped_b
    rows = [(i, readable_b[key(p, folder_a)]) for i, p in enumerate(files_a) if key(p, folder_a) in readable_b]
    files_a, headers_a = [files_a[i] for i, _ in rows], [headers_a[i] for i, _ in rows]
    files_b, headers_b = [files_b[j] for _, j in rows], [headers_b[j] for _, j in rows]
    if not rows:
        raise no_images_error(folder_a, skipped)
    sizes = [(h.width, h.height) for h in headers_a + headers_b]
    resolution = common_resolution(sizes, cfg.resolution, f"{folder_a} and {folder_b}")
    ch_a, ch_b = _domain_channels(cfg, headers_a), _domain_channels(cfg, headers_b)
    info = DataInfo(name=f"{cfg.spec} + {cfg.spec_b}", kind="paired", size=len(files_a), channels=ch_a,
                    channels_b=ch_b, resolution=resolution, extras={"layout": "two-folders"})
    columns = {"a": [ImageRef(str(p)) for p in files_a], "b": [ImageRef(str(p)) for p in files_b]}
    return build_image_dataset(columns, info, resolution, {"a": ch_a, "b": ch_b}, skipped,
                               f"{folder_a} and {folder_b}")


def load_unpaired_folders(folder_a: Path, folder_b: Path, cfg, name: str, layout: str):
    """Two independent domains; each is decoded (or kept lazy) on its own, then paired by index (storage.py)."""
    files_a, headers_a, skipped_a = _scan_domain(folder_a)
    files_b, headers_b, skipped_b = _scan_domain(folder_b)
    sizes = [(h.width, h.height) for h in headers_a + headers_b]
    resolution = common_resolution(sizes, cfg.resolution, f"{folder_a} and {folder_b}")
    domains = []
    for files, headers, skipped, folder in ((files_a, headers_a, skipped_a, folder_a),
                                            (files_b, headers_b, skipped_b, folder_b)):
        ch = _domain_channels(cfg, headers)
        info = DataInfo(name=str(folder), kind="image", size=len(files), channels=ch, resolution=resolution)
        domains.append(build_image_dataset({"image": [ImageRef(str(p)) for p in files]}, info, resolution,
                                           {"image": ch}, skipped, str(folder)))
    dom_a, dom_b = domains
    info = DataInfo(name=name, kind="unpaired", size=max(len(dom_a), len(dom_b)), channels=dom_a.info.channels,
                    channels_b=dom_b.info.channels, resolution=resolution,
                    extras={"layout": layout, "size_a": len(dom_a), "size_b": len(dom_b),
                            "skipped_files": dom_a.info.extras["skipped_files"] + dom_b.info.extras["skipped_files"]})
    return make_unpaired(dom_a, dom_b, info)


def _two_folders(cfg) -> bool:
    if not cfg.spec_b:
        return False
    for p in (cfg.spec, cfg.spec_b):
        if not Path(p).is_dir():
            raise DataError(f"--data-b (data.spec_b) needs two folders, but {p!r} is not a folder.")
    return True


def load_two_folders(cfg, kind: str):
    if kind == "paired":
        return load_two_folders_paired(cfg)
    folder_a, folder_b = split_folder(Path(cfg.spec), cfg.split), split_folder(Path(cfg.spec_b), cfg.split)
    return load_unpaired_folders(folder_a, folder_b, cfg, f"{cfg.spec} + {cfg.spec_b}", "two-folders")


path_formats.register("two-folders")(PathFormat(
    about="two folders, --data A/ --data-b B/ (paired when file names match, else unpaired)",
    matches=_two_folders,
    provides=lambda cfg: ("paired", "unpaired"),
    load=load_two_folders,
))


# ---- CycleGAN layout ---------------------------------------------------------------------------------------

def load_cyclegan_root(cfg, kind: str = "unpaired"):
    root = Path(cfg.spec)
    folder_a, folder_b = root / f"{cfg.split}A", root / f"{cfg.split}B"
    if not (folder_a.is_dir() and folder_b.is_dir()):
        present = sorted(p.name for p in root.iterdir() if p.is_dir())
        raise DataError(f"{str(root)!r} is a CycleGAN-layout folder but has no {cfg.split}A/ and {cfg.split}B/ "
                        f"for data.split={cfg.split!r} (it has: {', '.join(present)}).")
    return load_unpaired_folders(folder_a, folder_b, cfg, cfg.spec, "cyclegan")


path_formats.register("cyclegan-folder")(PathFormat(
    about="a CycleGAN folder with trainA/ trainB/ testA/ testB/ (unpaired)",
    matches=lambda cfg: not cfg.spec_b and is_cyclegan_root(Path(cfg.spec)),
    provides=lambda cfg: ("unpaired",),
    load=load_cyclegan_root,
))

