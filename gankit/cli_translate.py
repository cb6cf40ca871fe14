"""``gankit translate``: run a trained pix2pix / CycleGAN translator over image files.

    gankit translate --ckpt runs/00003-pix2pix-edges2digits --input edges/ --out translated/ [--direction BtoA]

Images of any size are translated whole: each is padded on the right and bottom to a multiple of the
translator's ``size_multiple`` (2^depth for a U-Net, 4 for the ResNet) by reflection (by edge replication where
the image is too small to reflect that far), translated, and cropped back to its own size. There is no tiling:
the network sees the whole image at once, so it must fit in memory. A translator works best at the scale it was
trained at (the training resolution is printed); resize beforehand if your images are at a very different scale.

Output files keep the input file names (and therefore their formats). Existing files in ``--out`` are never
replaced silently: the command stops and names them, unless ``--overwrite`` is given, and then it says how many
it replaced.
"""
from __future__ import annotations

import io
from pathlib import Path

from typing import TYPE_CHECKING

import click

from .errors import ConfigError, DataError

if TYPE_CHECKING:   # torch is imported where it is used: `gankit --help` must not load it
    import torch
    from torch import nn

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")


def list_images(path: str | Path) -> list[Path]:
    """A single image file, or the image files directly inside a folder (sorted by name)."""
    path = Path(path)
    if path.is_file():
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            raise DataError(f"{str(path)!r} is not an image file gankit reads ({', '.join(IMAGE_SUFFIXES)}).")
        return [path]
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise DataError(f"No image files ({', '.join(IMAGE_SUFFIXES)}) in folder {str(path)!r}.")
        return files
    raise DataError(f"Input {str(path)!r} does not exist; pass an image file or a folder of images.")


def load_image(path: Path, channels: int) -> torch.Tensor:
    """Image file -> [1, channels, H, W] in [-1, 1] (converted to grayscale or RGB as the translator reads)."""
    import numpy as np
    import torch
    from PIL import Image, UnidentifiedImageError

    from .images import from_uint8
    try:
        with Image.open(path) as img:
            arr = np.asarray(img.convert("L" if channels == 1 else "RGB"))
    except (UnidentifiedImageError, OSError) as e:
        raise DataError(f"Cannot read image {str(path)!r}: {e}") from None
    u8 = torch.from_numpy(arr.copy()).reshape(arr.shape[0], arr.shape[1], -1).permute(2, 0, 1)  # [C, H, W]
    return from_uint8(u8).unsqueeze(0)


def image_bytes(img: torch.Tensor, suffix: str) -> bytes:
    """[1, C, H, W] in [-1, 1] -> encoded file bytes in the format the file name's suffix names."""
    from PIL import Image

    from .images import to_uint8
    arr = to_uint8(img[0]).permute(1, 2, 0).numpy()  # [H, W, C]
    pil = Image.fromarray(arr[..., 0] if arr.shape[-1] == 1 else arr)
    buf = io.BytesIO()
    pil.save(buf, format=Image.registered_extensions()[suffix.lower()])
    return buf.getvalue()


def translate_image(net: "nn.Module", x: "torch.Tensor", multiple: int) -> "torch.Tensor":
    """[1, Cin, H, W] -> [1, Cout, H, W]: pad to the network's multiple, translate, crop back."""
    import torch

    from .images import pad_to_multiple
    h, w = x.shape[-2:]
    device = next(net.parameters()).device
    with torch.no_grad():
        out = net(pad_to_multiple(x, multiple).to(device))
    return out[..., :h, :w].cpu()


@click.command("translate")
@click.option("--ckpt", required=True, help="Checkpoint file or run directory (its latest.pt) of pix2pix / CycleGAN.")
@click.option("--input", "input_path", required=True, help="An image file or a folder of images.")
@click.option("--out", required=True, help="Folder for the translated images (same file names).")
@click.option("--direction", type=click.Choice(["AtoB", "BtoA"]), default=None,
              help="Dataset direction to translate; default: the one the model was trained in. "
                   "pix2pix knows only that one; CycleGAN both.")
@click.option("--overwrite", is_flag=True, help="Replace files that already exist in --out (and say so).")
@click.option("--no-ema", is_flag=True, help="Use the trained translator instead of its EMA copy (if one was kept).")
@click.option("--device", default="auto", show_default=True)
def translate(ckpt, input_path, out, direction, overwrite, no_ema, device):
    """Translate images with a trained image-to-image model."""
    from .engine import resolve_device
    from .io import atomic_write_bytes
    from .loading import load_sampler

    files = list_images(input_path)
    sampler = load_sampler(ckpt, resolve_device(device), ema=not no_ema)
    sampler.require("translate")                       # a noise model: says to use `gankit sample`
    translator = sampler.for_direction(direction)
    recipe, info, name = translator.recipe, translator.recipe.info, translator.name
    in_channels, out_channels = translator.channels
    net = translator.net.eval()
    multiple = getattr(net, "size_multiple", 1)

    out_dir = Path(out)
    targets = [out_dir / f.name for f in files]
    existing = [t for t in targets if t.exists()]
    if existing and not overwrite:
        raise ConfigError(f"{len(existing)} output file(s) already exist in {str(out_dir)!r} (e.g. "
                          f"{existing[0].name}); choose another --out or pass --overwrite to replace them.")
    out_dir.mkdir(parents=True, exist_ok=True)
    click.echo(f"{type(recipe).__name__} {name} ({direction or recipe.trained_direction}, trained at {info.resolution} px, "
               f"{in_channels} -> {out_channels} channels): {len(files)} image(s) -> {out_dir}")
    for src, dst in zip(files, targets):
        x = load_image(src, in_channels)                                  # [1, Cin, H, W]
        atomic_write_bytes(dst, image_bytes(translate_image(net, x, multiple), dst.suffix))
    if existing:
        click.echo(f"replaced {len(existing)} existing file(s) in {out_dir} (--overwrite)")


COMMANDS = [translate]
