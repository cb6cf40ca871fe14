"""Small building blocks shared by the classic network families (DCGAN, MLP): choices, norms, conditioning.

Every network class declares two class attributes read by the shared tests (tests/test_nets.py) and by tools
that build networks generically:

    kind            "image"      noise -> [N, C, R, R] generator, or image -> [N] score discriminator
                    "vector"     noise -> [N, out_dim] generator, or vector -> [N] score discriminator
                    "translator" image -> image generator (U-Net, ResNet):  G(x [N, C_in, H, W]) -> [N, C_out, H, W]
                    "patch"      patch discriminator:  D(x [N, C_in, H, W]) -> [N, 1, h, w]
    test_interface  example interface arguments (small) that build a working instance, e.g.
                    {"z_dim": 8, "out_channels": 3, "resolution": 32}

and may declare ``small_kwargs``: architectural arguments that make a small instance (``{"ch": 4}``), which the
shared preset tests (tests/test_presets_shared.py) apply so every preset trains two steps in a second.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from ..errors import ConfigError

GENERATOR_NORMS = ("batch", "none")
DISCRIMINATOR_NORMS = ("batch", "spectral", "none", "layer", "instance")
CONDITIONINGS = ("concat", "projection")


def check_choice(value: str, choices: tuple[str, ...], what: str, where: str) -> str:
    """Return ``value`` if it is one of ``choices``; otherwise raise ConfigError naming them."""
    if value not in choices:
        raise ConfigError(f"{where}: unknown {what} {value!r}. Valid choices: {', '.join(choices)}.")
    return value


def norm2d(norm: str, channels: int) -> nn.Module:
    """Feature-map normalisation after a conv. "spectral" and "none" normalise no activations (identity)."""
    if norm == "batch":
        return nn.BatchNorm2d(channels)
    if norm == "layer":
        # Layer norm over [C, H, W] per sample with a per-channel affine: the batch-free replacement for batch
        # norm in a WGAN-GP critic (Gulrajani et al. 2017, sec. 4: the penalty is per sample, batch norm mixes).
        return nn.GroupNorm(1, channels)
    if norm == "instance":
        return nn.InstanceNorm2d(channels, affine=True)
    return nn.Identity()


def norm1d(norm: str, features: int) -> nn.Module:
    """Vector normalisation after a linear layer ("instance" has no meaning for vectors and is refused earlier)."""
    if norm == "batch":
        return nn.BatchNorm1d(features)
    if norm == "layer":
        return nn.LayerNorm(features)
    return nn.Identity()


def uses_bias(norm: str) -> bool:
    """Conv / linear layers carry a bias unless batch norm follows them.

    The DCGAN reference code (Radford's Theano code, the PyTorch example) has no conv biases at all: batch
    norm's shift plays that role. Without batch norm a layer needs its own bias.
    """
    return norm != "batch"


def spectral(module: nn.Module, norm: str) -> nn.Module:
    """Wrap ``module`` in spectral normalisation (Miyato et al. 2018) when ``norm == "spectral"``.

    torch's parametrisation keeps the raw weight at ``module.parametrizations.weight.original`` (where
    ``gankit.nets.init_weights`` initialises it) and runs one power iteration per forward in training mode.
    """
    return spectral_norm(module) if norm == "spectral" else module


def require_label(label: torch.Tensor | None, num_classes: int, batch: int, where: str) -> torch.Tensor | None:
    """The label of a class-conditional net: [N] long in [0, num_classes). Unconditional nets ignore labels.

    Ignoring (rather than refusing) a label on an unconditional net lets a recipe pass the batch's labels
    whether or not the run is conditional; whether it is, is the recipe's decision (num_classes > 0).
    """
    if num_classes == 0:
        return None
    if label is None:
        raise ConfigError(f"{where} is class-conditional (num_classes={num_classes}): call it with a label "
                          f"tensor [N] of class indices in [0, {num_classes}), not label=None.")
    if label.shape != (batch,):
        raise ConfigError(f"{where}: label must have shape [{batch}] (one class index per sample), "
                          f"got {tuple(label.shape)}.")
    return label.long()


def projection_term(embed: nn.Module, label: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
    """Projection discriminator term <embed(y), phi(x)> (Miyato & Koyama 2018, eq. 3: y^T V phi(x)).

    ``features`` is phi(x) already pooled to [N, F]; ``embed`` maps a class to the row of V, [N, F].
    """
    return (embed(label) * features).sum(dim=1)  # [N]
