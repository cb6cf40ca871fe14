"""Metrics of image restoration with the fields' conventions, and evaluation against the classic baselines.

Super-resolution (the Set5 / Set14 protocol, e.g. Ledig et al. 2017 sec. 3.1, Wang et al. 2018; BasicSR's code):
    psnr_y    PSNR (peak 255) of the luma Y of ITU-R BT.601 with the 16-235 offset,
              Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255 for R, G, B in 0..255 (gray images: the gray
              level itself), unrounded, with ``border`` = scale pixels cropped on every side; per image, averaged
    ssim_y    SSIM (Wang et al. 2004; torchmetrics: Gaussian window 11, sigma 1.5, K1 0.01, K2 0.03) of the same
              cropped Y channels, per image, averaged
    hf_ratio  sharpness: the share of each output's (mean-removed) Y power spectrum above half the Nyquist
              frequency (|f| > 1/4 cycle per pixel), averaged, divided by the same share of the HR targets
              (1 = as much fine detail as the truth; bicubic upsampling gives far less)
    the bicubic baseline (``bicubic_*``): the LR image upsampled with the resize method that made it (PIL
    bicubic, or MATLAB-style bicubic for degrade=matlab), always in the same table.

Both (on request, ``metrics=[..., lpips]``):
    lpips     LPIPS-VGG (Zhang et al. 2018; torchmetrics' network and linear heads) of each output against its
              truth, at the images' own size, averaged (lower = perceptually closer); the VGG16 backbone is a
              torchvision ``vgg16`` state dict given by path (``--set lpips_weights=PATH``; loaded by
              gankit.projector.LPIPSDistance, nothing is downloaded). Without it the metric is refused before
              anything is evaluated. Baselines get theirs too (``bicubic_lpips`` ...).

Inpainting (masks: gankit.data.masks, seeded per test image):
    hole_l1    mean |completed - truth| over the hole pixels, on the 0..1 scale
    hole_psnr  PSNR (peak 255) of the hole pixels only, per image, averaged
    baselines  ``meanfill_*`` (each hole filled with the mean colour of that image's known pixels) and
               ``biharmonic_*`` (scikit-image ``inpaint_biharmonic``), always in the same table
    fid, kid   of the completed images against the test images, when asked for (through ``evaluate``)

Outputs are quantised with ``gankit.images.to_uint8`` first, exactly as saved files.
"""
from __future__ import annotations

import functools
import time
import warnings
from typing import Any, Iterable

import numpy as np
import torch

from ..errors import ConfigError, DataError
from ..images import to_uint8
from .base import EvalOptions, MetricSpec, metrics
from .evaluate import QUANTISATION, _card, evaluate

BT601 = (65.481, 128.553, 24.966)          # x 1/255 on 0..255 RGB, + 16 (ITU-R BT.601, studio swing)
SR_METRICS = ("psnr_y", "ssim_y", "hf_ratio")
INPAINT_METRICS = ("hole_l1", "hole_psnr")
IMAGE_METRICS = ("fid", "kid")             # distribution metrics a restoration sampler can add on request
PAIR_METRICS = ("lpips",)                  # per-pair metrics needing weights by path, on request


def _pick(name: str):
    def compute(means: dict[str, float], _ref: Any, _opts: EvalOptions) -> dict[str, float]:
        return {name: means[name]}
    return compute


for _name, _better, _about in (
        ("psnr_y", True, "PSNR of the BT.601 luma with the scale-sized border cropped (dB), super-resolution"),
        ("ssim_y", True, "SSIM of the BT.601 luma with the scale-sized border cropped, super-resolution"),
        ("hf_ratio", True, "high-frequency power share of outputs / that of the targets (1 = as sharp as the truth)"),
        ("hole_l1", False, "mean absolute error over the hole pixels (0..1 scale), inpainting"),
        ("hole_psnr", True, "PSNR over the hole pixels (dB), inpainting"),
        ("lpips", False, "LPIPS-VGG of each output against its truth (needs --set lpips_weights=PATH)")):
    metrics.register(_name)(MetricSpec(name=_name, values=(_name,), output="pairs", needs_ref=False,
                                       keep_gen=False, keep_ref=False, compute=_pick(_name), needs_moments=False,
                                       higher_is_better=_better, description=_about))


# ---- formulas -------------------------------------------------------------------------------------------------

def rgb_to_y(img_255: torch.Tensor) -> torch.Tensor:
    """float [N, 3, H, W] RGB in 0..255 -> [N, 1, H, W] BT.601 luma in 16..235; [N, 1, H, W] gray is returned as is."""
    if img_255.shape[1] == 1:
        return img_255
    if img_255.shape[1] != 3:
        raise DataError(f"rgb_to_y needs 1 or 3 channels, got {img_255.shape[1]}.")
    r, g, b = img_255.unbind(1)
    return (16.0 + (BT601[0] * r + BT601[1] * g + BT601[2] * b) / 255.0)[:, None]


def _crop(x: torch.Tensor, border: int) -> torch.Tensor:
    if border and (x.shape[-1] <= 2 * border or x.shape[-2] <= 2 * border):
        raise DataError(f"Images of {tuple(x.shape[-2:])} are too small for a {border}-pixel border crop.")
    return x[..., border:x.shape[-2] - border, border:x.shape[-1] - border] if border else x


def _y(u8: torch.Tensor, border: int) -> torch.Tensor:
    return _crop(rgb_to_y(u8.double()), border)


def psnr_y(pred_u8: torch.Tensor, target_u8: torch.Tensor, border: int) -> torch.Tensor:
    """Per-image PSNR [N] (dB) of the cropped Y channels of uint8 [N, C, H, W] images (peak 255)."""
    mse = ((_y(pred_u8, border) - _y(target_u8, border)) ** 2).mean(dim=(1, 2, 3))
    return 10 * torch.log10(255.0 ** 2 / mse.clamp_min(1e-12))


def ssim_y(pred_u8: torch.Tensor, target_u8: torch.Tensor, border: int) -> torch.Tensor:
    """Per-image SSIM [N] of the cropped Y channels (torchmetrics' Gaussian SSIM, data range 255)."""
    from torchmetrics.functional.image import structural_similarity_index_measure as ssim
    return ssim(_y(pred_u8, border), _y(target_u8, border), data_range=255.0, reduction="none")


def high_frequency_share(img_u8: torch.Tensor, cutoff: float = 0.25) -> torch.Tensor:
    """Per-image share [N] of the mean-removed Y power spectrum at radial frequency > ``cutoff`` cycles/pixel."""
    y = rgb_to_y(img_u8.double())[:, 0]
    y = y - y.mean(dim=(1, 2), keepdim=True)
    power = torch.fft.fft2(y).abs() ** 2                                       # [N, H, W]
    fy = torch.fft.fftfreq(y.shape[-2], dtype=torch.float64)[:, None]
    fx = torch.fft.fftfreq(y.shape[-1], dtype=torch.float64)[None, :]
    high = (fy ** 2 + fx ** 2).sqrt() > cutoff
    return (power * high).sum(dim=(1, 2)) / power.sum(dim=(1, 2)).clamp_min(1e-12)


def hole_errors(pred_u8: torch.Tensor, target_u8: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(L1 on 0..1, PSNR dB) per image [N] over hole pixels; mask bool [N, 1, H, W] (True = hole)."""
    m = mask.expand_as(pred_u8).double()
    diff = pred_u8.double() - target_u8.double()
    count = m.sum(dim=(1, 2, 3)).clamp_min(1)
    l1 = (diff.abs() * m).sum(dim=(1, 2, 3)) / count / 255.0
    mse = (diff ** 2 * m).sum(dim=(1, 2, 3)) / count
    return l1, 10 * torch.log10(255.0 ** 2 / mse.clamp_min(1e-12))


def lpips_network(weights: str | None) -> torch.nn.Module:
    """torchmetrics' LPIPS-VGG network with the VGG16 backbone from ``weights`` (gankit.projector.LPIPSDistance's
    loading: a torchvision vgg16 state dict, checked key by key), or a ConfigError when there is no file."""
    if not weights:
        raise ConfigError("The lpips metric needs LPIPS's VGG16 backbone weights by path: --set lpips_weights=PATH "
                          "(a torchvision vgg16 state dict with features.* keys; nothing is downloaded), or leave "
                          "lpips out of the metrics.")
    try:
        from pathlib import Path
        stat = Path(weights).stat()
        return _cached_lpips(str(Path(weights).resolve()), stat.st_mtime_ns, stat.st_size)
    except FileNotFoundError:
        raise ConfigError(f"lpips_weights: {str(weights)!r} does not exist: give a torchvision vgg16 state dict "
                          "(.pth).") from None
    except ConfigError as e:
        raise ConfigError(f"lpips_weights: {e}") from None


@functools.lru_cache(maxsize=2)
def _cached_lpips(path: str, mtime_ns: int, size: int) -> torch.nn.Module:
    """One load per weights file (and version of it): evaluations during training reuse the network."""
    from ..projector import LPIPSDistance
    return LPIPSDistance(path).lpips


def check_lpips_weights(metric_names: Any, weights: str) -> None:
    """Before training: a run asking for lpips must have loadable backbone weights (ConfigError otherwise)."""
    if any(str(m).partition("@")[0] == "lpips" for m in (metric_names or ())):
        lpips_network(weights)


def lpips_pairs(network: torch.nn.Module, a_u8: torch.Tensor, b_u8: torch.Tensor) -> torch.Tensor:
    """Per-pair LPIPS [N] of uint8 [N, C, H, W] images at their own size (gray repeated to RGB), in float64 out."""
    device = next(network.parameters()).device
    a, b = (x.to(device, torch.float32) / 127.5 - 1.0 for x in (a_u8, b_u8))
    if a.shape[1] == 1:
        a, b = a.repeat(1, 3, 1, 1), b.repeat(1, 3, 1, 1)
    with torch.no_grad():
        return network(a, b).reshape(-1).double().cpu()


# ---- baselines -------------------------------------------------------------------------------------------------

def bicubic_upscale(lr_u8: torch.Tensor, scale: int, method: str = "bicubic") -> torch.Tensor:
    """uint8 [N, C, h, w] -> [N, C, s h, s w]: PIL bicubic, or MATLAB-style bicubic ("matlab")."""
    from PIL import Image
    from ..data.restoration import matlab_weights
    out = []
    for x in lr_u8:
        arr = x.permute(1, 2, 0).numpy()
        h, w = arr.shape[:2]
        if method == "matlab":
            img = arr.astype(np.float64)
            ri, rw = matlab_weights(h, h * scale, float(scale))
            img = np.einsum("op,opwc->owc", rw, img[ri])
            ci, cw = matlab_weights(w, w * scale, float(scale))
            img = np.einsum("op,hopc->hoc", cw, img[:, ci])
            up = np.clip(np.round(img), 0, 255).astype(np.uint8)
        else:
            pil = Image.fromarray(arr[..., 0] if arr.shape[2] == 1 else arr)
            up = np.asarray(pil.resize((w * scale, h * scale), Image.BICUBIC)).reshape(h * scale, w * scale, -1)
        out.append(torch.from_numpy(np.array(up)).permute(2, 0, 1))       # a writable copy
    return torch.stack(out)


def mean_fill(img_u8: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Each hole filled with the mean colour of that image's known pixels (rounded)."""
    m = mask.expand_as(img_u8)
    known = (~m).double()
    mean = (img_u8.double() * known).sum(dim=(2, 3), keepdim=True) / known.sum(dim=(2, 3), keepdim=True).clamp_min(1)
    return torch.where(m, mean.round().to(torch.uint8).expand_as(img_u8), img_u8)


def biharmonic_fill(img_u8: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """scikit-image's biharmonic inpainting (Damelin & Hoang 2018) of each image; known pixels kept exactly."""
    from skimage.restoration import inpaint_biharmonic
    out = []
    for x, m in zip(img_u8, mask):
        arr = x.permute(1, 2, 0).numpy().astype(np.float64) / 255.0
        filled = inpaint_biharmonic(arr, m[0].numpy(), channel_axis=-1)
        u8 = torch.from_numpy(np.clip(np.round(filled * 255.0), 0, 255).astype(np.uint8)).permute(2, 0, 1)
        out.append(torch.where(m.expand_as(x), u8, x))
    return torch.stack(out)


# ---- evaluation ------------------------------------------------------------------------------------------------

def _names(names: str | Iterable[str] | None, default: tuple[str, ...], own: tuple[str, ...]) -> list[str]:
    if names is None:
        return list(default)
    items = [s.strip() for s in (names.split(",") if isinstance(names, str) else names) if str(s).strip()]
    bad = [m for m in items if m.partition("@")[0] not in own + IMAGE_METRICS]
    if bad:
        raise ConfigError(f"Metrics {bad} do not apply here. Valid: {', '.join(own + IMAGE_METRICS)}.")
    return items or list(default)


def held_out(data_cfg: Any, split: str, kinds: tuple[str, ...]) -> tuple[Any, dict[str, Any]]:
    """The ``split`` split of ``data_cfg`` (warning and the configured split when the data has none)."""
    import dataclasses
    from ..data import load_dataset
    from .translation import has_split
    cfg = dataclasses.replace(data_cfg, split=split, xflip=False, labels=False)
    ok = has_split(cfg, split)
    if not ok:
        warnings.warn(f"{cfg.spec!r} has no {split} split: evaluating on its {data_cfg.split} split, which the model "
                      f"may have trained on. Put held-out images in {split}/ subfolders.", stacklevel=3)
        cfg = dataclasses.replace(cfg, split=data_cfg.split)
    ds = load_dataset(cfg, kinds=kinds)
    return ds, {"spec": cfg.spec, "spec_b": cfg.spec_b, "split": cfg.split, "held_out": ok, "name": ds.info.name,
                "resolution": ds.info.resolution, "extras": {k: v for k, v in ds.info.extras.items()
                                                             if isinstance(v, (int, float, str, list))}}


def _batches(ds: Any, n: int, batch_size: int):
    for begin in range(0, n, batch_size):
        idx = torch.arange(begin, min(begin + batch_size, n))
        yield idx, ds.get_batch(idx) if hasattr(ds, "get_batch") else \
            {k: torch.stack([ds[int(i)][k] for i in idx]) for k in ds[0]}


def evaluate_superres(upscale: Any, data_cfg: Any, metric_names: Any = None, *, n: int | None = None,
                      batch_size: int = 16, split: str = "test", device: Any = None, lpips_weights: str = "",
                      **image_options: Any) -> dict[str, Any]:
    """``upscale(lr [N, C, h, w] in [-1, 1]) -> [N, C, s h, s w]`` on the held-out split of superres data.

    Returns an evaluation card: ``metrics`` holds the model's numbers and the bicubic baseline's
    (``bicubic_psnr_y`` ...), ``protocol`` how they were computed.
    """
    start = time.perf_counter()
    names = _names(metric_names, SR_METRICS, SR_METRICS + PAIR_METRICS)
    lpips_net = lpips_network(lpips_weights).to(device or "cpu") if "lpips" in names else None   # before any work
    ds, desc = held_out(data_cfg, split, ("superres",))
    scale = int(ds.info.extras["scale"])
    method = "matlab" if "matlab" in str(ds.info.extras.get("degrade", "")) else "bicubic"
    total = len(ds) if n is None else min(n, len(ds))
    if total < 1:
        raise ConfigError(f"n must be at least 1, got {n}.")
    sums = {k: 0.0 for k in ("psnr_y", "ssim_y", "hf_out", "bicubic_psnr_y", "bicubic_ssim_y", "hf_bicubic", "hf_hr",
                             "lpips", "bicubic_lpips")}
    outputs = []
    for _, batch in _batches(ds, total, batch_size):
        lr, hr = batch["a"], batch["b"]
        sr_u8 = to_uint8(upscale(lr).float().cpu())
        hr_u8, lr_u8 = to_uint8(hr), to_uint8(lr)
        if sr_u8.shape != hr_u8.shape:
            raise DataError(f"The upscaler gave {tuple(sr_u8.shape)} for LR {tuple(lr.shape)}; HR is "
                            f"{tuple(hr_u8.shape)}.")
        bic_u8 = bicubic_upscale(lr_u8, scale, method)
        for key, img in (("", sr_u8), ("bicubic_", bic_u8)):
            sums[key + "psnr_y"] += float(psnr_y(img, hr_u8, scale).sum())
            sums[key + "ssim_y"] += float(ssim_y(img, hr_u8, scale).sum())
            if lpips_net is not None:
                sums[key + "lpips"] += float(lpips_pairs(lpips_net, img, hr_u8).sum())
        sums["hf_out"] += float(high_frequency_share(sr_u8).sum())
        sums["hf_bicubic"] += float(high_frequency_share(bic_u8).sum())
        sums["hf_hr"] += float(high_frequency_share(hr_u8).sum())
        if any(m.partition("@")[0] in IMAGE_METRICS for m in names):
            outputs.append(sr_u8)
    mean = {k: v / total for k, v in sums.items()}
    values: dict[str, Any] = {}
    own = [m for m in names if m in SR_METRICS + PAIR_METRICS]
    for m in own:
        if m == "hf_ratio":
            values["hf_ratio"] = mean["hf_out"] / max(mean["hf_hr"], 1e-12)
        else:
            values[m] = mean[m]
    for m in own:
        values["bicubic_" + m] = mean["hf_bicubic"] / max(mean["hf_hr"], 1e-12) if m == "hf_ratio" \
            else mean["bicubic_" + m]
    per_metric = {m: {"metric": m, "n_gen": total, "border": 0 if m == "lpips" else scale, "against": "HR targets"}
                  for m in own}
    image_req = [m for m in names if m.partition("@")[0] in IMAGE_METRICS]
    if image_req:
        hr_all = torch.cat([to_uint8(b["b"]) for _, b in _batches(ds, total, batch_size)])
        card = evaluate(image_req, torch.cat(outputs), hr_all, device=device, batch_size=batch_size, **image_options)
        values.update(card["metrics"])
        per_metric.update(card["metric_protocols"])
    protocol = {
        "task": "super-resolution", "device": str(device or "cpu"), "n_gen": total, "n_ref": total,
        "generated": {"kind": "upscaler", "scale": scale, "inputs": f"the first {total} of the {desc['split']} split"},
        "data": desc, "scale": scale, "baseline": f"{method} upsampling of the LR input",
        "y_channel": "ITU-R BT.601: Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255, unrounded; gray as is",
        "border_crop": scale, "hf_cutoff": "0.25 cycles / pixel", "hf_share_hr": mean["hf_hr"],
        "quantisation": f"outputs: {QUANTISATION}",
    }
    return _card(values, per_metric, protocol, start)


def evaluate_inpaint(inpaint: Any, data_cfg: Any, mask_kind: str, mask_fraction: float, metric_names: Any = None,
                     *, n: int | None = None, batch_size: int = 16, split: str = "test", mask_seed: int = 0,
                     device: Any = None, baselines: bool = True, lpips_weights: str = "", **image_options: Any
                     ) -> dict[str, Any]:
    """``inpaint(images [N, C, H, W] in [-1, 1], masks bool [N, 1, H, W]) -> completed`` on the held-out images,
    masks ``mask_batch(mask_kind, ..., seed=mask_seed)`` (mask i for image i: the same for every model), or with
    ``mask_kind = "files"`` each test image's own mask file (NAME_mask.png beside it: data of kind masked_image)."""
    from ..data.masks import check_mask_args, mask_batch
    start = time.perf_counter()
    files = mask_kind == "files"
    if not files:
        check_mask_args(mask_kind, mask_fraction)
    names = _names(metric_names, INPAINT_METRICS, INPAINT_METRICS + PAIR_METRICS)
    lpips_net = lpips_network(lpips_weights).to(device or "cpu") if "lpips" in names else None   # before any work
    ds, desc = held_out(data_cfg, split, ("masked_image",) if files else ("image",))
    total = len(ds) if n is None else min(n, len(ds))
    if total < 1:
        raise ConfigError(f"n must be at least 1, got {n}.")
    methods = ["", "meanfill_", "biharmonic_"] if baselines else [""]
    sums = {m + k: 0.0 for m in methods for k in INPAINT_METRICS + PAIR_METRICS}
    completed_all, real_all = [], []
    known_exact = True
    for idx, batch in _batches(ds, total, batch_size):
        real = batch["image"]
        h, w = real.shape[-2:]
        masks = batch["mask"].bool() if files else \
            mask_batch(mask_kind, len(idx), h, w, mask_fraction, seed=mask_seed, first=int(idx[0]))
        real_u8 = to_uint8(real)
        out_u8 = to_uint8(inpaint(real, masks).float().cpu())
        known_exact &= bool(torch.equal(out_u8[~masks.expand_as(out_u8)], real_u8[~masks.expand_as(real_u8)]))
        candidates = {"": out_u8}
        if baselines:
            candidates["meanfill_"] = mean_fill(real_u8, masks)
            candidates["biharmonic_"] = biharmonic_fill(real_u8, masks)
        for prefix, img in candidates.items():
            l1, psnr = hole_errors(img, real_u8, masks)
            sums[prefix + "hole_l1"] += float(l1.sum())
            sums[prefix + "hole_psnr"] += float(psnr.sum())
            if lpips_net is not None:
                sums[prefix + "lpips"] += float(lpips_pairs(lpips_net, img, real_u8).sum())
        completed_all.append(out_u8)
        real_all.append(real_u8)
    own = [m for m in names if m in INPAINT_METRICS + PAIR_METRICS]
    values: dict[str, Any] = {p + m: sums[p + m] / total for p in methods for m in own}
    per_metric = {m: {"metric": m, "n_gen": total, "against": "the test images under the holes"} for m in own}
    image_req = [m for m in names if m.partition("@")[0] in IMAGE_METRICS]
    if image_req:
        card = evaluate(image_req, torch.cat(completed_all), torch.cat(real_all), device=device,
                        batch_size=batch_size, **image_options)
        values.update(card["metrics"])
        per_metric.update(card["metric_protocols"])
    protocol = {
        "task": "inpainting", "device": str(device or "cpu"), "n_gen": total, "n_ref": total,
        "generated": {"kind": "inpainter", "inputs": f"the first {total} of the {desc['split']} split"},
        "data": desc, "masks": {"kind": mask_kind, "fraction": ds.info.extras.get("mask_fraction") if files else mask_fraction,
                  "seed": None if files else mask_seed},
        "known_pixels_exact": known_exact,
        "baselines": "meanfill: mean colour of the known pixels; biharmonic: skimage.restoration.inpaint_biharmonic"
        if baselines else "none", "quantisation": f"outputs: {QUANTISATION}",
    }
    return _card(values, per_metric, protocol, start)
