"""Paired image metrics for translation and super-resolution (pix2pix-style outputs against ground truth).

PSNR and SSIM (Wang et al. 2004; Gaussian window 11, sigma 1.5, K1 = 0.01, K2 = 0.03) come from torchmetrics.
By default both images are first quantised to uint8 with ``gankit.images.to_uint8``, as a saved result would be,
and compared on the 0..255 scale (data range 255), the convention of SR papers; PSNR is averaged over images
(one MSE per image), not computed from the MSE of the whole batch. L1 is the mean absolute difference in the
[-1, 1] units of the pix2pix L1 term (Isola et al. 2017, eq. 3).
"""
from __future__ import annotations

import torch

from ..errors import DataError
from ..images import to_uint8


def paired_metrics(pred: torch.Tensor, target: torch.Tensor, quantize: bool = True) -> dict[str, float]:
    """pred, target: float [N, C, H, W] in [-1, 1] -> {'psnr' (dB), 'ssim', 'l1'}."""
    from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure
    if pred.shape != target.shape or pred.ndim != 4:
        raise DataError(f"paired_metrics needs two image batches [N, C, H, W] of the same shape, got "
                        f"{tuple(pred.shape)} and {tuple(target.shape)}.")
    if quantize:   # the grey levels a saved file holds, exactly
        pred_255, target_255 = to_uint8(pred).double(), to_uint8(target).double()
    else:          # [-1, 1] -> [0, 255]
        pred_255, target_255 = (pred.double() + 1) * 127.5, (target.double() + 1) * 127.5
    psnr = peak_signal_noise_ratio(pred_255, target_255, data_range=255.0, dim=(1, 2, 3))
    ssim = structural_similarity_index_measure(pred_255, target_255, data_range=255.0)
    l1 = (pred_255 - target_255).abs().mean() / 127.5                  # back to [-1, 1] units
    return {"psnr": float(psnr), "ssim": float(ssim), "l1": float(l1)}
