"""Inception Score (Salimans et al. 2016, "Improved techniques for training GANs", sec. 4).

    IS = exp( E_x KL(p(y|x) || p(y)) ),   p(y) = E_x p(y|x)

computed on each of ``splits`` equal slices ``[i*N//s, (i+1)*N//s)`` and reported as mean and population std
(np.std) over the slices, as openai/improved-gan ``inception_score/model.py`` does. p(y|x) is the softmax of
the *unbiased* logits (pool3 @ W, no bias, 1008 classes), torch-fidelity's ``logits_unbiased``.

Shuffling: the reference code slices in input order, so class-sorted inputs (an image folder written class by
class) give a collapsed score. We shuffle first with ``RandomState(seed).permutation`` like torch-fidelity's
``isc_features_to_metric`` (default seed 2020), which makes the number independent of file order and equal to
torch-fidelity's for the same features.
"""
from __future__ import annotations

import numpy as np
import torch

from ..errors import ConfigError
from .base import EvalOptions, FeatureStats, MetricSpec, metrics


def inception_score(logits: torch.Tensor, splits: int = 10, shuffle: bool = True, seed: int = 2020
                    ) -> dict[str, float]:
    """IS mean and std from logits [N, K] (softmax is applied here, in float64)."""
    n = logits.shape[0]
    if n < splits:
        raise ConfigError(f"Inception Score with {splits} splits needs at least {splits} samples, got {n}.")
    if shuffle:
        logits = logits[torch.from_numpy(np.random.RandomState(seed).permutation(n)).to(logits.device)]
    logits = logits.double()
    p = logits.softmax(dim=1)                                           # p(y|x)   [N, K]
    log_p = logits.log_softmax(dim=1)
    scores = []
    for i in range(splits):
        part = slice(i * n // splits, (i + 1) * n // splits)
        p_y = p[part].mean(dim=0, keepdim=True)                         # p(y)     [1, K]
        kl = (p[part] * (log_p[part] - p_y.log())).sum(dim=1)           # KL per image [n_i]
        scores.append(kl.mean().exp().item())
    return {"is": float(np.mean(scores)), "is_std": float(np.std(scores))}


def _compute_is(gen: FeatureStats, ref: FeatureStats | None, opts: EvalOptions) -> dict[str, float]:
    return inception_score(gen.features(), opts.is_splits, opts.is_shuffle, opts.rng_seed)


metrics.register("is")(MetricSpec(
    name="is", values=("is", "is_std"),
    output="logits", needs_ref=False, keep_gen=True, keep_ref=False, compute=_compute_is,
    needs_moments=False, min_n=lambda o: o.is_splits,
    params=lambda o: {"splits": o.is_splits, "shuffle": o.is_shuffle, "seed": o.rng_seed,
                      "std": "population (np.std)"},
    description="Inception Score on unbiased logits (Salimans et al. 2016)"))
