"""Mode metrics for 2-D Gaussian-mixture toys (ring8, grid25): the protocol of VEEGAN and PacGAN.

Srivastava et al. 2017 (VEEGAN, sec. 5.1) and Lin et al. 2018 (PacGAN, sec. 5.1, Table 1) score a generator on a
mixture of M Gaussians with known centres and standard deviation:
    high-quality share  fraction of samples within 3 standard deviations of the nearest centre
    modes covered       number of centres that at least one high-quality sample is nearest to
    reverse KL          KL(q || p) of the histogram q of high-quality samples over modes to the true mode
                        distribution p (uniform, 1/M): sum_k q_k log(q_k M); 0 = all modes equally hit
The toy datasets carry ``info.extras = {"centers": [[x, y], ...], "std": float}``.
"""
from __future__ import annotations

from typing import Any

import torch

from ..errors import DataError
from .base import EvalOptions, MetricSpec, metrics


def toy_metrics(samples: torch.Tensor, centers: torch.Tensor | list, std: float, threshold: float = 3.0
                ) -> dict[str, float]:
    """samples [N, 2], centers [M, 2], std of each mode -> {'modes', 'high_quality', 'reverse_kl'}."""
    x = torch.as_tensor(samples, dtype=torch.float64)
    c = torch.as_tensor(centers, dtype=torch.float64).to(x.device)
    if x.ndim != 2 or c.ndim != 2 or x.shape[1] != c.shape[1]:
        raise DataError(f"toy_metrics needs samples [N, D] and centers [M, D], got {tuple(x.shape)} and "
                        f"{tuple(c.shape)}.")
    if not std > 0:
        raise DataError(f"toy_metrics needs a positive mode std, got {std}.")
    dist = torch.cdist(x, c)                                            # [N, M]
    nearest_dist, nearest = dist.min(dim=1)
    good = nearest_dist <= threshold * std                              # high-quality samples [N]
    counts = torch.bincount(nearest[good], minlength=len(c)).double()   # [M]
    if counts.sum() > 0:
        q = counts / counts.sum()
        nz = q > 0
        reverse_kl = float((q[nz] * (q[nz] * len(c)).log()).sum())
    else:
        reverse_kl = float("inf")   # no sample near any mode: the mode distribution is undefined
    return {"modes": int((counts > 0).sum()), "high_quality": float(good.double().mean()),
            "reverse_kl": reverse_kl}


def _compute_toy(samples: torch.Tensor, extras: dict[str, Any], opts: EvalOptions) -> dict[str, float]:
    if "centers" not in extras or "std" not in extras:
        raise DataError("The toy metric needs a reference whose info.extras has 'centers' and 'std' "
                        "(the ring8 / grid25 builtins).")
    out = toy_metrics(samples, extras["centers"], float(extras["std"]))
    return {"toy_modes": out["modes"], "toy_high_quality": out["high_quality"], "toy_reverse_kl": out["reverse_kl"],
            "protocol": {"modes_total": len(extras["centers"]), "std": float(extras["std"])}}


metrics.register("toy")(MetricSpec(
    name="toy", values=("toy_modes", "toy_high_quality", "toy_reverse_kl"),
    output="", needs_ref=True, keep_gen=True, keep_ref=False, compute=_compute_toy,
    needs_moments=False, params=lambda o: {"threshold": "3 std", "kl": "KL(high-quality mode histogram || uniform)"},
    description="Modes covered, high-quality share and reverse KL on 2-D mixtures (VEEGAN / PacGAN)"))
