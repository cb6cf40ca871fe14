"""Frechet Inception Distance (Heusel et al. 2017, "GANs trained by a two time-scale update rule", eq. 6).

    FID = ||mu_1 - mu_2||^2 + Tr(S_1 + S_2 - 2 (S_1 S_2)^{1/2})

Only Tr((S_1 S_2)^{1/2}) = sum_i sqrt(lambda_i(S_1 S_2)) is needed, never the matrix square root itself, so we
do not call ``scipy.linalg.sqrtm(..., disp=False)`` (it raises TypeError on SciPy >= 1.18). Two exact routes:

* symmetric (default when S_1 or S_2 is well conditioned): with the Cholesky factor S_1 = L L^T,
  S_1 S_2 = L (L^T S_2 L) L^{-1} is similar to the symmetric PSD matrix L^T S_2 L, so its eigenvalues come
  from ``eigvalsh``: 10x faster than a general eigensolver at 2048-d and never complex.
* low rank (N <= D samples, features at hand): S_1 = A^T A with A the centred features / sqrt(N-1), and the
  nonzero eigenvalues of S_1 S_2 are those of the N x N matrix A S_2 A^T (``trace_sqrt_product_factored``).
* general (rank-deficient covariances without features): eigenvalues of S_1 S_2 cast to complex before the
  square root, exactly torch-fidelity >= 0.4 (``fid_statistics_to_metric``); the cast stops tiny negative
  eigenvalues from becoming NaN (torch-fidelity issue #46).
"""
from __future__ import annotations

import warnings

import numpy as np
import torch

from ..errors import ConfigError
from .base import EvalOptions, FeatureStats, MetricSpec, metrics

# Cholesky is used when every pivot is at least this fraction of the largest variance; below that the
# covariance is (numerically) rank-deficient and the general route matches the reference implementations.
_MIN_PIVOT_RATIO = 1e-10


def trace_sqrt_product(sigma1: np.ndarray, sigma2: np.ndarray, method: str = "auto",
                       device: str | torch.device = "cpu") -> float:
    """Tr((sigma1 @ sigma2)^{1/2}) for symmetric PSD [D, D] matrices, in float64 (torch.linalg on ``device``).

    method: "auto" (symmetric when possible, else general), "symmetric", or "eigvals" (torch-fidelity's form).
    """
    if method not in ("auto", "symmetric", "eigvals"):
        raise ConfigError(f"Unknown trace method {method!r}. Valid choices: auto, symmetric, eigvals.")
    s1 = torch.as_tensor(np.asarray(sigma1, np.float64), device=device)
    s2 = torch.as_tensor(np.asarray(sigma2, np.float64), device=device)
    if method != "eigvals":
        # eig(S1 S2) = eig(S2 S1): factor whichever covariance is positive definite.
        for a, b in ((s1, s2), (s2, s1)):
            chol = _cholesky(a)
            if chol is not None:
                m = chol.T @ b @ chol                                   # [D, D] symmetric PSD
                eig = torch.linalg.eigvalsh((m + m.T) / 2)
                return float(eig.clamp_min(0).sqrt().sum())
        if method == "symmetric":
            raise ConfigError("Neither covariance is positive definite; use method='eigvals' or more samples.")
    eig = torch.linalg.eigvals(s1 @ s2)                                 # complex128 [D]
    return float(eig.sqrt().real.sum())


def _cholesky(a: torch.Tensor) -> torch.Tensor | None:
    chol, info = torch.linalg.cholesky_ex(a)
    if int(info) != 0:
        return None
    scale = float(torch.diagonal(a).max()) if a.numel() else 0.0
    if scale <= 0 or float(torch.diagonal(chol).min()) ** 2 < _MIN_PIVOT_RATIO * scale:
        return None
    return chol


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray,
                     method: str = "auto", device: str | torch.device = "cpu") -> float:
    """FID between two Gaussians N(mu1, sigma1), N(mu2, sigma2) (Heusel et al. 2017, eq. 6)."""
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    sigma1, sigma2 = np.asarray(sigma1, np.float64), np.asarray(sigma2, np.float64)
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != (len(mu1), len(mu1)):
        raise ConfigError(f"FID statistics do not match: mu {mu1.shape} vs {mu2.shape}, "
                          f"sigma {sigma1.shape} vs {sigma2.shape}. Were they made with the same extractor?")
    diff = mu1 - mu2
    tr_covmean = trace_sqrt_product(sigma1, sigma2, method, device)
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * tr_covmean)


def trace_sqrt_product_factored(a: torch.Tensor, sigma2: np.ndarray | None = None,
                                b: torch.Tensor | None = None) -> float:
    """Tr((S1 S2)^{1/2}) with S1 = a^T a given by its factor a [n1, D] (n1 <= D: few samples).

    The nonzero eigenvalues of (a^T a) S2 are those of the small symmetric PSD matrix a S2 a^T [n1, n1]
    (eig(XY) = eig(YX) up to zeros); when S2 = b^T b too, they are the squared singular values of a b^T, so
    the trace is the nuclear norm of a b^T [n1, n2]. Exact, and no D x D eigen-problem at all.
    """
    a = a.double()
    if b is not None:
        return float(torch.linalg.svdvals(a @ b.double().T).sum())
    s2 = torch.as_tensor(np.asarray(sigma2, np.float64), device=a.device)
    m = a @ s2 @ a.T                                                    # [n1, n1]
    return float(torch.linalg.eigvalsh((m + m.T) / 2).clamp_min(0).sqrt().sum())


def fid_from_stats(gen: FeatureStats, ref: FeatureStats) -> float:
    """FID of two ``FeatureStats``; uses the exact low-rank route when either set has N <= D."""
    fa, fb = gen.factor(), ref.factor()
    if fa is None and fb is None:   # the D x D route, on the device the features came from
        return frechet_distance(gen.mean(), gen.cov(), ref.mean(), ref.cov(), device=gen.device)
    mu1, mu2 = gen.mean(), ref.mean()
    if mu1.shape != mu2.shape:
        raise ConfigError(f"FID statistics do not match: {mu1.shape} vs {mu2.shape} features. Were they made "
                          f"with the same extractor?")
    if fa is not None and fb is not None:
        tr_covmean = trace_sqrt_product_factored(fa, b=fb)
    elif fa is not None:
        tr_covmean = trace_sqrt_product_factored(fa, ref.cov())
    else:
        tr_covmean = trace_sqrt_product_factored(fb, gen.cov())
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(gen.cov()) + np.trace(ref.cov()) - 2.0 * tr_covmean)


def warn_if_rank_deficient(n: int, dim: int, what: str) -> None:
    if 0 < n <= dim:   # n = 0: statistics from a file that does not record N
        warnings.warn(f"FID with {n} {what} samples of {dim}-d features: the covariance is rank-deficient "
                      f"(N <= D), so FID is biased and not comparable with published numbers (TTUR recommends "
                      f"N >= 10000). Use more samples or a lower-dimensional extractor.", stacklevel=3)


def fid_bootstrap(gen_features: torch.Tensor, ref_mu: np.ndarray, ref_sigma: np.ndarray, n_boot: int,
                  seed: int = 2020, ci: float = 0.95) -> dict[str, float]:
    """Percentile bootstrap interval for FID over resamples of the generated set (Efron & Tibshirani 1993).

    The reference statistics are held fixed: the interval reflects the sampling noise of the N generated
    images, which is what differs between two models evaluated against the same reference. Each resample
    draws multinomial counts w (sum N) and uses the weighted mean and (N-1) covariance of the centred features.
    """
    if n_boot < 2:
        raise ConfigError(f"fid_bootstrap needs at least 2 resamples, got {n_boot}.")
    x = gen_features.double()                                           # [N, D] on the evaluation's device
    n, d = x.shape
    full_mean = x.mean(0)                                               # [D]
    x = x - full_mean                                                   # centring keeps the sums small
    ref_mu = np.asarray(ref_mu, np.float64)
    ref_trace = float(np.trace(ref_sigma))
    gen = torch.Generator().manual_seed(seed)
    values = []
    for _ in range(n_boot):
        counts = torch.multinomial(torch.full((n,), 1.0 / n, dtype=torch.float64), n, replacement=True,
                                   generator=gen)
        w = torch.bincount(counts, minlength=n).to(x)                   # [N], sums to N
        shift = (w @ x) / n                                             # resample mean - full mean
        mean = (full_mean + shift).cpu().numpy()
        if n <= d:   # rank-deficient: the exact factor A (cov = A^T A) of the resample, as in fid_from_stats
            factor = (x - shift) * (w / (n - 1)).sqrt()[:, None]        # [N, D]
            diff = mean - ref_mu
            values.append(float(diff @ diff + (factor * factor).sum() + ref_trace
                                - 2.0 * trace_sqrt_product_factored(factor, ref_sigma)))
            continue
        cov = (x.T @ (x * w[:, None]) - n * torch.outer(shift, shift)) / (n - 1)
        values.append(frechet_distance(mean, cov.cpu().numpy(), ref_mu, ref_sigma, device=x.device))
    lo, hi = np.quantile(values, [(1 - ci) / 2, (1 + ci) / 2])
    return {"fid_ci_low": float(lo), "fid_ci_high": float(hi), "fid_boot_std": float(np.std(values))}


def _compute_fid(gen: FeatureStats, ref: FeatureStats, opts: EvalOptions) -> dict[str, float]:
    warn_if_rank_deficient(gen.n, gen.dim, "generated")
    warn_if_rank_deficient(ref.n, ref.dim, "reference")
    out = {"fid": fid_from_stats(gen, ref)}
    if opts.fid_bootstrap:
        out.update(fid_bootstrap(gen.features().to(gen.device), ref.mean(), ref.cov(), opts.fid_bootstrap,
                                 opts.rng_seed))
    return out


metrics.register("fid")(MetricSpec(
    name="fid", values=("fid", "fid_ci_low", "fid_ci_high", "fid_boot_std"),
    output="features", needs_ref=True, keep_gen=lambda o: o.fid_bootstrap > 0, keep_ref=False, compute=_compute_fid,
    higher_is_better=False, min_n=2,
    params=lambda o: {"covariance": "unbiased (N-1), float64", "trace": "symmetric eigvalsh / eigvals",
                      "bootstrap": o.fid_bootstrap, **({"bootstrap_seed": o.rng_seed} if o.fid_bootstrap else {})},
    description="Frechet distance between Gaussians fitted to the features (Heusel et al. 2017)"))
