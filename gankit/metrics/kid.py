"""Kernel Inception Distance (Binkowski et al. 2018, "Demystifying MMD GANs", sec. 3 and appendix).

KID is the unbiased estimator of the squared MMD with the cubic polynomial kernel

    k(x, y) = (x.y / d + 1)^3                                          (Binkowski et al. 2018, eq. in sec. 3)
    MMD^2_u = [sum_{i!=j} k(x_i,x_j) + sum_{i!=j} k(y_i,y_j)] / (m(m-1)) - 2 sum_{i,j} k(x_i,y_j) / m^2

averaged over random subsets (100 of size 1000) drawn with a seeded ``np.random.RandomState``, reported as mean
and population std: exactly mbinkowski/MMD-GAN ``_mmd2_and_variance(mmd_est='unbiased')`` and torch-fidelity's
``kid_features_to_metric`` (same seed -> same subsets -> same numbers), but in float64 throughout.

Fewer samples than the subset size: we shrink the subset to min(n_gen, n_ref), like stylegan2-ada and
clean-fid, and record the size used. MMD^2_u is unbiased for every subset size m >= 2, so shrinking keeps
the expected KID; only the spread across subsets (``kid_std``) refers to the smaller m.
"""
from __future__ import annotations

import warnings

import numpy as np
import torch

from ..errors import ConfigError
from .base import EvalOptions, FeatureStats, MetricSpec, metrics


def polynomial_kernel(x: torch.Tensor, y: torch.Tensor, degree: int = 3, coef0: float = 1.0) -> torch.Tensor:
    """k(x, y) = (x.y / d + coef0)^degree for rows of x [M, D] and y [K, D] -> [M, K]."""
    return (x @ y.T / x.shape[1] + coef0) ** degree


def mmd2_unbiased(k_xx: torch.Tensor, k_xy: torch.Tensor, k_yy: torch.Tensor) -> float:
    """Unbiased MMD^2 from the three kernel matrices of equal-size sets [m, m] (diagonals of k_xx, k_yy dropped;
    the cross term keeps its diagonal, as in MMD-GAN's 'unbiased' estimator)."""
    m = k_xx.shape[0]
    sum_xx = k_xx.sum() - torch.diagonal(k_xx).sum()
    sum_yy = k_yy.sum() - torch.diagonal(k_yy).sum()
    return float((sum_xx + sum_yy) / (m * (m - 1)) - 2 * k_xy.sum() / (m * m))


def kernel_inception_distance(gen_features: torch.Tensor, ref_features: torch.Tensor, subsets: int = 100,
                              subset_size: int = 1000, seed: int = 2020) -> dict[str, float]:
    """KID mean and std over ``subsets`` random subsets; features [N, D] (gen first, like torch-fidelity's
    input1, so the same seed draws the same subsets). Returns also the subset size actually used."""
    n_gen, n_ref = len(gen_features), len(ref_features)
    m = min(subset_size, n_gen, n_ref)
    if m < 2:
        raise ConfigError(f"KID needs at least 2 generated and 2 reference samples, got {n_gen} and {n_ref}.")
    if m < subset_size:
        warnings.warn(f"KID subset size shrunk from {subset_size} to {m} (only {n_gen} generated / {n_ref} "
                      f"reference samples); the mean is still unbiased, the std refers to subsets of {m}.",
                      stacklevel=2)
    x = gen_features.double()
    y = ref_features.double()
    rng = np.random.RandomState(seed)
    mmds = np.zeros(subsets)
    for i in range(subsets):
        # Same draw order as torch-fidelity: a generated subset, then a reference subset.
        xs = x[torch.from_numpy(rng.choice(n_gen, m, replace=False)).to(x.device)]
        ys = y[torch.from_numpy(rng.choice(n_ref, m, replace=False)).to(y.device)]
        mmds[i] = mmd2_unbiased(polynomial_kernel(xs, xs), polynomial_kernel(xs, ys), polynomial_kernel(ys, ys))
    return {"kid": float(np.mean(mmds)), "kid_std": float(np.std(mmds)), "kid_subset_size_used": m}


def _compute_kid(gen: FeatureStats, ref: FeatureStats, opts: EvalOptions) -> dict[str, float]:
    if not ref.has_features:
        raise ConfigError("KID needs the reference features, but the reference statistics hold only mean and "
                          "covariance. Recompute them with `gankit ref --features` (or pass the data spec).")
    out = kernel_inception_distance(gen.features().to(gen.device), ref.features().to(gen.device), opts.kid_subsets,
                                    opts.kid_subset_size, opts.rng_seed)
    # The subset size used belongs to the protocol, not to the numbers.
    return {"kid": out["kid"], "kid_std": out["kid_std"],
            "protocol": {"subset_size_used": out["kid_subset_size_used"]}}


metrics.register("kid")(MetricSpec(
    name="kid", values=("kid", "kid_std"),
    output="features", needs_ref=True, keep_gen=True, keep_ref=True, compute=_compute_kid,
    needs_moments=False, higher_is_better=False, min_n=2,
    params=lambda o: {"kernel": "(x.y/d+1)^3", "estimator": "unbiased MMD^2", "subsets": o.kid_subsets,
                      "subset_size": o.kid_subset_size, "seed": o.rng_seed},
    description="Kernel Inception Distance, unbiased MMD^2 with a cubic kernel (Binkowski et al. 2018)"))
