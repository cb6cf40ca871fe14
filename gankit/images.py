"""The one image convention (DESIGN.md principle 6).

Networks see float images in [-1, 1], shape [N, C, H, W]. Files and metrics see uint8 in [0, 255]. These two
functions are the only conversion between the two; everything else calls them.
"""
from __future__ import annotations

import torch


def to_uint8(img: torch.Tensor) -> torch.Tensor:
    """[-1, 1] float -> uint8 [0, 255], rounding as an image file would store it (x*127.5+128, floor, clamp).

    This is the quantisation StyleGAN2-ADA uses when writing PNGs and computing metrics on generated images
    (`(img * 127.5 + 128).clamp(0, 255).to(torch.uint8)`), so metrics see exactly what a saved file holds.
    """
    return (img.detach().float() * 127.5 + 128).clamp(0, 255).to(torch.uint8)


def from_uint8(img: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] -> float [-1, 1] (x/127.5 - 1), the inverse of ``to_uint8`` up to quantisation."""
    return img.float() / 127.5 - 1.0


def pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Pad [..., H, W] on the right and bottom up to multiples of ``multiple``: reflection, else replication
    (reflection cannot reach past the image). Any dtype (masks too): padded in float, returned as it came.
    Used by the translators (cli_translate) and the inpainter, which crop the output back."""
    import torch.nn.functional as F
    h, w = x.shape[-2:]
    pad_h, pad_w = -h % multiple, -w % multiple
    if pad_h == 0 and pad_w == 0:
        return x
    mode = "reflect" if pad_h < h and pad_w < w else "replicate"
    return F.pad(x.float(), (0, pad_w, 0, pad_h), mode=mode).to(x.dtype)
