"""``gankit upscale`` and ``gankit inpaint``: run a trained super-resolution or inpainting model over image files.

    gankit upscale --ckpt runs/00003-srgan-photo-crops --input photos/ --out upscaled/ [--tile 128 --overlap 16]
    gankit inpaint --ckpt runs/00004-inpaint-photo-crops --input photos/ --mask masks/ --out completed/
    gankit inpaint --ckpt ... --input photo.png --mask-kind centre [--mask-fraction 0.25] --out completed/

upscale: images of any size; each is cut into tiles of ``--tile`` LR pixels, each run with ``--overlap`` pixels of
context (kept out of the result), so memory stays bounded; with an overlap at least the network's receptive
radius the result equals the whole-image run. ``--tile 0`` runs whole images.

inpaint: the holes come from ``--mask`` (one mask file for every image, or a folder with a mask per image,
``NAME.*`` or ``NAME_mask.*``), from ``--mask-kind`` (seeded masks, as in training: ``--seed``), or else from mask
files next to the images (``NAME_mask.png`` beside ``NAME.jpg``). Mask pixels > 127 are holes. The known pixels of
every output are the input's, bit for bit (composited on the 8-bit values).

Outputs keep the input file names (and formats). Nothing is ever overwritten: if a file of that name exists in
``--out`` the command stops before writing anything and names it.
"""
from __future__ import annotations

from pathlib import Path

import click

from .errors import ConfigError, DataError

MASK_SUFFIX = "_mask"


def _targets(files: list[Path], out: str) -> tuple[Path, list[Path]]:
    out_dir = Path(out)
    targets = [out_dir / f.name for f in files]
    existing = [t for t in targets if t.exists()]
    if existing:
        raise ConfigError(f"{len(existing)} output file(s) already exist in {str(out_dir)!r} (e.g. "
                          f"{existing[0].name}); gankit never overwrites: choose another --out.")
    names = [t.name for t in targets]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ConfigError(f"Several inputs share the file name {twice[0]!r}; outputs keep names, so they must differ.")
    out_dir.mkdir(parents=True, exist_ok=True)
    return out_dir, targets


@click.command("upscale")
@click.option("--ckpt", required=True, help="Checkpoint file or run directory (its latest.pt) of srresnet / srgan / esrgan.")
@click.option("--input", "input_path", required=True, help="An image file or a folder of images (the LR inputs).")
@click.option("--out", required=True, help="Folder for the upscaled images (same file names; never overwritten).")
@click.option("--tile", type=int, default=128, show_default=True, help="Tile side in LR pixels (0 = whole images).")
@click.option("--overlap", type=int, default=16, show_default=True, help="Context pixels around each tile.")
@click.option("--no-ema", is_flag=True, help="Use the trained generator instead of its EMA copy (if one was kept).")
@click.option("--device", default="auto", show_default=True)
def upscale(ckpt, input_path, out, tile, overlap, no_ema, device):
    """Upscale images with a trained super-resolution model."""
    from .cli_translate import image_bytes, list_images, load_image
    from .engine import resolve_device
    from .io import atomic_write_bytes
    from .loading import load_sampler

    if tile < 0 or overlap < 0:
        raise ConfigError(f"--tile and --overlap must be >= 0, got {tile} and {overlap}.")
    files = list_images(input_path)
    sampler = load_sampler(ckpt, resolve_device(device), ema=not no_ema)
    sampler.require("upscale")
    out_dir, targets = _targets(files, out)
    click.echo(f"x{sampler.scale} {type(sampler.net).__name__} ({sampler.channels} channels), tiles of {tile or 'whole'} "
               f"LR px with {overlap} px context: {len(files)} image(s) -> {out_dir}")
    for src, dst in zip(files, targets):
        lr = load_image(src, sampler.channels)                                # [1, C, h, w]
        atomic_write_bytes(dst, image_bytes(sampler.upscale(lr, tile=tile, overlap=overlap), dst.suffix))


def _mask_for(image: Path, mask_arg: str | None) -> Path | None:
    """The mask file of ``image``: --mask FILE, a match in --mask DIR, or NAME_mask.* beside the image."""
    from .cli_translate import IMAGE_SUFFIXES
    if mask_arg and Path(mask_arg).is_file():
        return Path(mask_arg)
    folder = Path(mask_arg) if mask_arg else image.parent
    stems = (image.stem, image.stem + MASK_SUFFIX) if mask_arg else (image.stem + MASK_SUFFIX,)
    for stem in stems:
        for p in sorted(folder.glob(f"{stem}.*")):
            if p.suffix.lower() in IMAGE_SUFFIXES and p != image:
                return p
    return None


@click.command("inpaint")
@click.option("--ckpt", required=True, help="Checkpoint file or run directory (its latest.pt) of an inpaint model.")
@click.option("--input", "input_path", required=True, help="An image file or a folder of images.")
@click.option("--mask", "mask_path", default=None, help="A mask file (for every image) or a folder of masks by name.")
@click.option("--mask-kind", type=click.Choice(["centre", "rect", "free"]), default=None,
              help="Draw seeded masks instead of reading them.")
@click.option("--mask-fraction", type=float, default=None, help="Hole area for --mask-kind (default: the model's).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of --mask-kind masks (image i: mask i).")
@click.option("--out", required=True, help="Folder for the completed images (same file names; never overwritten).")
@click.option("--no-ema", is_flag=True, help="Use the trained generator instead of its EMA copy (if one was kept).")
@click.option("--device", default="auto", show_default=True)
def inpaint(ckpt, input_path, mask_path, mask_kind, mask_fraction, seed, out, no_ema, device):
    """Fill the holes of images with a trained inpainting model."""
    import torch

    from .cli_translate import image_bytes, list_images, load_image
    from .data.masks import load_mask, mask_batch
    from .engine import resolve_device
    from .images import to_uint8
    from .io import atomic_write_bytes
    from .loading import load_sampler

    if mask_path and mask_kind:
        raise click.UsageError("Give --mask or --mask-kind, not both.")
    if mask_path and not Path(mask_path).exists():
        raise DataError(f"--mask {mask_path!r} does not exist; give a mask file or a folder of masks.")
    files = [f for f in list_images(input_path) if not f.stem.endswith(MASK_SUFFIX)]
    if not files:
        raise DataError(f"No images to inpaint in {input_path!r} (only *{MASK_SUFFIX} files).")
    sampler = load_sampler(ckpt, resolve_device(device), ema=not no_ema)
    sampler.require("inpaint")
    opts = sampler.recipe.opts
    masks_of: list[Path | None] = [None] * len(files)
    if not mask_kind:
        masks_of = [_mask_for(f, mask_path) for f in files]
        missing = [f.name for f, m in zip(files, masks_of) if m is None]
        if missing:
            where = f"in {mask_path!r}" if mask_path else f"beside the images (NAME{MASK_SUFFIX}.png)"
            raise DataError(f"No mask for {len(missing)} image(s) {where}, e.g. {missing[0]}; give --mask FILE_OR_DIR "
                            f"or --mask-kind centre|rect|free.")
    out_dir, targets = _targets(files, out)
    fraction = mask_fraction if mask_fraction is not None else opts.mask_fraction
    click.echo(f"inpainting {len(files)} image(s) ({sampler.channels} channels), holes from "
               f"{mask_kind + f' masks of {fraction:.0%}' if mask_kind else 'mask files'} -> {out_dir}")
    for i, (src, dst, mask_file) in enumerate(zip(files, targets, masks_of)):
        image = load_image(src, sampler.channels)                                 # [1, C, H, W] in [-1, 1]
        size = tuple(image.shape[-2:])
        mask = load_mask(mask_file, size) if mask_file else mask_batch(mask_kind, 1, *size, fraction, seed=seed,
                                                                        first=i)
        completed_u8 = to_uint8(sampler(image, mask))
        original_u8 = to_uint8(image)                                             # the file's own values
        final_u8 = torch.where(mask.expand_as(original_u8), completed_u8, original_u8)
        atomic_write_bytes(dst, image_bytes(final_u8.float() / 127.5 - 1.0, dst.suffix))


COMMANDS = [upscale, inpaint]
