"""Offline domain features: a small CNN classifier that gankit trains itself.

Without the Inception weights (or for data far from ImageNet: digits, toys), the same metrics run on the
penultimate features of a classifier trained on the labelled training set ("classifier:clf.pt" extractor), and
its predictions give mode statistics: the stacked-MNIST protocol of VEEGAN (Srivastava et al. 2017, sec. 5.2)
and PacGAN (Lin et al. 2018, sec. 5): three digits in the three colour channels make 1000 modes; each channel
is classified separately, a mode is the triple of predicted digits; report the number of modes with at least
one sample and the KL divergence of the mode histogram to the uniform distribution.

The file is a data-only checkpoint (state dict + config; ``torch.load(path, weights_only=True)`` reads it).
"""
from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn

from ..registry import Registry
from ..version import __version__
from ..io import atomic_write
from ..errors import CheckpointError, ConfigError, DataError
from ..images import from_uint8
from .base import (EvalOptions, Extractor, FeatureStats, MetricSpec, exact_float32, extractors, metrics,
                   resolve_device, sha256_file)

FORMAT = "gankit-classifier"
VERSION = 1


@dataclass(frozen=True)
class ClassifierInput:
    """How items of one data kind become the classifier's pictures (``gankit classifier train`` on that kind).

    key:        the item key holding the data ("image", "audio")
    params:     info -> plain data saved in the classifier file (``data.input``), what ``to_images`` needs
    to_images:  (batch tensor, params) -> float pictures [N, C, R, R] in [-1, 1]
    """
    key: str
    params: Callable[[Any], dict]
    to_images: Callable[[torch.Tensor, dict], torch.Tensor]
    about: str = ""


# data kind -> ClassifierInput; "image" here, other kinds where their metrics live (metrics/audio.py: "audio").
classifier_inputs: Registry[ClassifierInput] = Registry("classifier input")
classifier_inputs.register("image")(ClassifierInput(key="image", params=lambda info: {},
                                                    to_images=lambda x, params: x, about="images as they are"))


class SmallCNN(nn.Module):
    """conv-BN-ReLU-maxpool stages (channels doubling, up to 4x width) until the side is <= 8, then
    flatten -> Linear(feature_dim) -> ReLU (the penultimate features) -> dropout -> Linear(num_classes).

    Input: float images [N, C, H, W] in [-1, 1] at ``resolution``.
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 10, resolution: int = 28, width: int = 32,
                 feature_dim: int = 128, dropout: float = 0.3):
        super().__init__()
        self.config = dict(in_channels=in_channels, num_classes=num_classes, resolution=resolution, width=width,
                           feature_dim=feature_dim, dropout=dropout)
        layers: list[nn.Module] = []
        c_in, c_out, side = in_channels, width, resolution
        while side > 8 or not layers:
            layers += [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(),
                       nn.MaxPool2d(2)]
            c_in, c_out, side = c_out, min(2 * c_out, 4 * width), side // 2
        self.body = nn.Sequential(*layers, nn.Flatten())
        self.embed = nn.Sequential(nn.Linear(c_in * side * side, feature_dim), nn.ReLU())
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(feature_dim, num_classes))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.embed(self.body(x))                                  # [N, feature_dim]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))                               # [N, num_classes] logits


def _as_float_images(images: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] or float [-1, 1] -> float [-1, 1]."""
    return from_uint8(images) if images.dtype == torch.uint8 else images.float()


def random_translate(x: torch.Tensor, max_shift: int, gen: torch.Generator) -> torch.Tensor:
    """Shift each image by its own integer offset in [-max_shift, max_shift]^2, filling with -1 (black)."""
    n, _, h, w = x.shape
    padded = F.pad(x, [max_shift] * 4, value=-1.0)                      # [N, C, H+2s, W+2s]
    dy, dx = torch.randint(0, 2 * max_shift + 1, (2, n), generator=gen)
    rows = (torch.arange(h)[None, :] + dy[:, None]).to(x.device)       # [N, H]
    cols = (torch.arange(w)[None, :] + dx[:, None]).to(x.device)       # [N, W]
    idx = torch.arange(n, device=x.device)[:, None, None]
    return padded.permute(0, 2, 3, 1)[idx, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)


@torch.no_grad()
def accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 1000) -> float:
    device = next(model.parameters()).device
    model.eval()
    correct = 0
    for xb, yb in zip(images.split(batch_size), labels.split(batch_size)):
        correct += (model(_as_float_images(xb).to(device)).argmax(1).cpu() == yb).sum().item()
    return correct / len(labels)


def train_classifier(images: torch.Tensor, labels: torch.Tensor, *, test_images: torch.Tensor | None = None,
                     test_labels: torch.Tensor | None = None, num_classes: int | None = None, epochs: float = 3.0,
                     batch_size: int = 128, lr: float = 4e-3, width: int = 32, feature_dim: int = 128,
                     max_shift: int = 2, seed: int = 0, device: str | torch.device | None = None,
                     log: Callable[[str], None] | None = None) -> tuple[SmallCNN, dict[str, Any]]:
    """Train ``SmallCNN`` on images [N, C, H, W] (uint8 or float in [-1, 1]) with int labels [N].

    Adam with a one-cycle learning rate (Smith & Topin 2019) and random translations of up to ``max_shift``
    pixels: 3 epochs reach >= 99% test accuracy on MNIST. Returns the model (eval mode) and a report.
    """
    if images.ndim != 4 or len(images) != len(labels):
        raise DataError(f"Classifier training needs images [N, C, H, W] and N labels, got {tuple(images.shape)} "
                        f"and {tuple(labels.shape)}.")
    if images.shape[2] != images.shape[3]:
        raise DataError(f"Classifier training needs square images, got {images.shape[2]}x{images.shape[3]}.")
    labels = labels.long()
    num_classes = int(num_classes or int(labels.max()) + 1)
    if num_classes < 2:
        raise DataError("Classifier training needs labelled data with at least 2 classes.")
    device = resolve_device(device)
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    model = SmallCNN(images.shape[1], num_classes, images.shape[2], width, feature_dim).to(device)
    steps = max(1, math.ceil(epochs * len(images) / batch_size))
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps)
    data = images.to(device)
    targets = labels.to(device)
    start = time.perf_counter()
    model.train()
    for step in range(steps):
        idx = torch.randint(0, len(data), (batch_size,), generator=gen).to(device)
        xb = _as_float_images(data[idx])
        if max_shift:
            xb = random_translate(xb, max_shift, gen)
        loss = F.cross_entropy(model(xb), targets[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if log and (step % 200 == 0 or step == steps - 1):
            log(f"step {step + 1}/{steps}  loss {loss.item():.4f}")
    model.eval()
    report: dict[str, Any] = {"train_images": len(images), "epochs": epochs, "steps": steps,
                              "batch_size": batch_size, "lr": lr, "max_shift": max_shift, "seed": seed,
                              "train_seconds": round(time.perf_counter() - start, 2)}
    if test_images is not None and test_labels is not None:
        report["test_accuracy"] = accuracy(model, test_images, test_labels.long())
        report["test_images"] = len(test_labels)
    return model, report


def save_classifier(path: str | os.PathLike, model: SmallCNN, report: dict[str, Any] | None = None,
                    class_names: list[str] | None = None, data: dict[str, Any] | None = None) -> Path:
    """Write a data-only checkpoint atomically (temporary file in the same folder, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ckpt = {"format": FORMAT, "version": VERSION, "gankit_version": __version__, "config": dict(model.config),
            "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
            "report": dict(report or {}), "class_names": list(class_names or []), "data": dict(data or {})}
    atomic_write(path, lambda f: torch.save(ckpt, f))
    return path


def load_classifier(path: str | os.PathLike, device: str | torch.device | None = None
                    ) -> tuple[SmallCNN, dict[str, Any]]:
    """Read a classifier checkpoint (weights_only: no code is unpickled) -> (model in eval mode, checkpoint)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"Classifier file {str(path)!r} does not exist. Train one with "
                              f"`gankit classifier train --data SPEC --out {path}`.")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise CheckpointError(f"Cannot read classifier {str(path)!r}: {e}") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise CheckpointError(f"{str(path)!r} is not a gankit classifier (format {FORMAT!r}).")
    model = SmallCNN(**ckpt["config"])
    model.load_state_dict(ckpt["state_dict"])
    return model.to(resolve_device(device)).eval(), ckpt


class ClassifierExtractor(Extractor):
    """uint8 images -> {'features': penultimate [N, F] (or [N, C*F]), 'logits': [N, K] (or [N, K^C])}.

    A 1-channel classifier on C-channel images classifies each channel separately (stacked MNIST): features
    are concatenated and the logits are the joint log-probabilities sum_c log p(y_c | x_c) over the K^C
    tuples (channel 0 most significant), whose softmax is the product of the per-channel posteriors.
    """

    name = "classifier"
    outputs = ("features", "logits")

    def __init__(self, path: str | os.PathLike, device: str | torch.device | None = None, batch_size: int = 256):
        self.path = Path(path)
        self.device = resolve_device(device)
        self.batch_size = batch_size
        self.model, self.ckpt = load_classifier(self.path, self.device)
        self.sha256 = sha256_file(self.path)
        self.in_channels = self.model.config["in_channels"]
        self.resolution = self.model.config["resolution"]
        self.mode = "joint"

    @torch.no_grad()
    @exact_float32()
    def __call__(self, img: torch.Tensor) -> dict[str, torch.Tensor]:
        if img.dtype != torch.uint8 or img.ndim != 4:
            raise DataError(f"The classifier extractor takes uint8 images [N, C, H, W], got {img.dtype} "
                            f"{tuple(img.shape)}.")
        n, c = img.shape[:2]
        per_channel = self.in_channels == 1 and c > 1
        if not per_channel and c != self.in_channels:
            if self.in_channels == 3 and c == 1:
                img = img.repeat(1, 3, 1, 1)
            else:
                raise DataError(f"Classifier {self.path} takes {self.in_channels}-channel images, got {c}.")
        feats, logits = [], []
        for chunk in img.split(self.batch_size):
            x = from_uint8(chunk.to(self.device))                                # [B, C, H, W] in [-1, 1]
            if per_channel:
                x = x.reshape(-1, 1, *x.shape[2:])                               # [B*C, 1, H, W]
            if x.shape[-1] != self.resolution or x.shape[-2] != self.resolution:
                x = F.interpolate(x, size=(self.resolution, self.resolution), mode="bilinear",
                                  align_corners=False, antialias=True)
            f = self.model.features(x)
            lg = self.model.head(f)
            if per_channel:
                b = chunk.shape[0]
                f = f.reshape(b, -1)                                             # [B, C*F]
                logp = lg.log_softmax(1).reshape(b, c, -1)                       # [B, C, K]
                joint = logp[:, 0]
                for ch in range(1, c):                                           # [B, K^(ch+1)]
                    joint = (joint[:, :, None] + logp[:, ch][:, None, :]).reshape(b, -1)
                lg = joint
            feats.append(f.float())
            logits.append(lg.float())
        return {"features": torch.cat(feats), "logits": torch.cat(logits)}

    def identity(self) -> dict[str, Any]:
        return {"extractor": "classifier", "weights_sha256": self.sha256, "resolution": self.resolution}

    def protocol(self) -> dict[str, Any]:
        return {**self.identity(), "file": str(self.path), "config": self.ckpt["config"],
                "report": self.ckpt.get("report", {}), "data": self.ckpt.get("data", {}),
                "layers": {"features": "penultimate (after ReLU)", "logits": "class logits; per-channel "
                           "classifiers give joint log-probabilities"},
                "resize": f"bilinear antialiased to {self.resolution} when sizes differ",
                "device": str(self.device)}


@extractors.register("classifier")
def _make_classifier(arg: str | None = None, *, device=None, batch_size: int = 256, **_: Any) -> ClassifierExtractor:
    if not arg:
        raise ConfigError("The classifier extractor needs a file: --extractor classifier:PATH (train one with "
                          "`gankit classifier train --data SPEC --out clf.pt`).")
    return ClassifierExtractor(arg, device=device, batch_size=max(batch_size, 256))


# ---- predictions -> mode statistics ---------------------------------------------------------------------------

def mode_metrics(logits: torch.Tensor) -> dict[str, float]:
    """Modes covered and KL(mode histogram || uniform) from class logits [N, K] (K = 1000 for stacked MNIST).

    A sample's mode is its argmax class. KL(q || u) = sum_k q_k log(q_k K) with q the histogram of predicted
    modes: the reverse KL to the (uniform) true mode distribution of VEEGAN / PacGAN; 0 means every mode is
    hit equally often, log K means all samples in one mode.
    """
    k = logits.shape[1]
    pred = logits.argmax(dim=1)
    counts = torch.bincount(pred.cpu(), minlength=k).double()
    q = counts / counts.sum()
    nz = q > 0
    kl = float((q[nz] * (q[nz] * k).log()).sum())
    return {"modes": int(nz.sum()), "modes_kl": kl, "modes_total": k}


def _compute_modes(gen: FeatureStats, ref: FeatureStats | None, opts: EvalOptions) -> dict[str, float]:
    out = mode_metrics(gen.features())
    return {"modes": out["modes"], "modes_kl": out["modes_kl"], "protocol": {"modes_total": out["modes_total"]}}


metrics.register("modes")(MetricSpec(
    name="modes", values=("modes", "modes_kl"),
    output="logits", needs_ref=False, keep_gen=True, keep_ref=False, compute=_compute_modes,
    needs_moments=False, requires_classifier=True,
    params=lambda o: {"mode": "argmax class (joint over channels)", "kl": "KL(histogram || uniform)"},
    description="Modes covered and KL to uniform from classifier predictions (VEEGAN / PacGAN stacked MNIST)"))

