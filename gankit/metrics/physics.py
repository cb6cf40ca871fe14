"""Physical observables of 2-D Ising spin configurations (known truths for GAN samples of the ``ising`` data).

Spins s in {-1, +1} on an L x L square lattice with periodic boundaries, nearest-neighbour coupling J = 1, no
field (the model of the ``ising`` builtin, mdsdata MDS-2):

* magnetisation per spin  m = (1/N) sum_i s_i; spins flip symmetrically, so |m| is the order parameter.
* energy per spin         e = -(1/N) sum_<ij> s_i s_j, each bond once (right and down neighbour, wrapping):
                          -2 for a uniform lattice, +2 for a checkerboard. Onsager's exact value at the critical
                          temperature T_c = 2 / ln(1 + sqrt 2) is e_c = -sqrt(2) (infinite lattice).
* two-point correlation   G(r) = <s_x s_{x+r}> - <s>^2 (connected), averaged over sites and the two lattice
                          axes, periodic: the correlation length grows towards T_c.

``phase_from_energy`` predicts the below/above-T_c class from e: on the 5000 real mdsdata images the energy
agrees with the labels file on 99% of them, |m| on at most 83% (low-temperature configurations often hold
domain walls, so |m| is small although the phase is ordered); see benchmarks/ising_phase.py.
"""
from __future__ import annotations

import math

import torch

CRITICAL_ENERGY = -math.sqrt(2.0)    # Onsager (1944): e at T_c on the infinite square lattice
ISING_ENERGY_THRESHOLD = -1.312      # best separates the labels of the 64 px train split (benchmarks/ising_phase.py)


def to_spins(images: torch.Tensor) -> torch.Tensor:
    """Images -> spins float [N, L, L] in {-1, +1}.

    uint8 [N, 1, L, L] or [N, L, L] (0 / 255, threshold 128) or float in gankit's [-1, 1] (threshold 0);
    a multi-channel image is averaged over channels first.
    """
    x = images
    if x.dim() == 4:
        x = x.float().mean(dim=1) if x.shape[1] > 1 else x[:, 0]
    if x.dim() != 3 or x.shape[-1] != x.shape[-2]:
        raise ValueError("spin configurations must be [N, L, L] or [N, C, L, L] square images, "
                         f"got {tuple(images.shape)}")
    threshold = 127.5 if images.dtype == torch.uint8 else 0.0
    return torch.where(x.float() > threshold, 1.0, -1.0)


def magnetisation(spins: torch.Tensor) -> torch.Tensor:
    """|m| per configuration: [N, L, L] spins -> [N]."""
    return spins.float().mean(dim=(-2, -1)).abs()


def energy_per_spin(spins: torch.Tensor) -> torch.Tensor:
    """e = -(1/N) sum_<ij> s_i s_j with periodic boundaries, each bond once: [N, L, L] -> [N]."""
    s = spins.float()
    bonds = s * torch.roll(s, 1, dims=-1) + s * torch.roll(s, 1, dims=-2)     # [N, L, L]: left + up bond per site
    return -bonds.mean(dim=(-2, -1))


def two_point_correlation(spins: torch.Tensor, max_r: int | None = None) -> torch.Tensor:
    """Connected G(r) = <s_x s_{x+r}> - <s>^2 for r = 0..max_r (default L // 2), per configuration: [N, R+1]."""
    s = spins.float()
    max_r = s.shape[-1] // 2 if max_r is None else max_r
    m = s.mean(dim=(-2, -1))                                                  # [N]
    out = []
    for r in range(max_r + 1):
        pair = (s * torch.roll(s, r, dims=-1)).mean(dim=(-2, -1)) + (s * torch.roll(s, r, dims=-2)).mean(dim=(-2, -1))
        out.append(pair / 2 - m * m)
    return torch.stack(out, dim=1)


def phase_from_energy(energy: torch.Tensor, threshold: float = ISING_ENERGY_THRESHOLD) -> torch.Tensor:
    """Class 0 (below T_c: ordered, low energy) where e < threshold, else class 1 (above T_c). [N] -> long [N]."""
    return (energy >= threshold).long()


def phase_from_magnetisation(abs_m: torch.Tensor, threshold: float) -> torch.Tensor:
    """Class 0 (ordered) where |m| >= threshold, else class 1. [N] -> long [N]."""
    return (abs_m < threshold).long()


def best_threshold(values: torch.Tensor, labels: torch.Tensor, low_is_class0: bool) -> tuple[float, float]:
    """The threshold on ``values`` that best separates classes 0 / 1, and its agreement (share of matches).

    ``low_is_class0``: class 0 sits below the threshold (energy) or above it (|m|, pass False).
    """
    v, order = values.float().sort()
    y = labels[order].long()
    n = len(v)
    # candidate k: the k lowest values are predicted "low side"; matches = low-side class hits + high-side hits
    low_class = 0 if low_is_class0 else 1
    low_hits = torch.cat([torch.zeros(1), (y == low_class).float().cumsum(0)])              # [n+1]
    high_hits = (y != low_class).float().sum() - torch.cat([torch.zeros(1), (y != low_class).float().cumsum(0)])
    agree = (low_hits + high_hits) / n
    k = int(agree.argmax())
    if k == 0:
        threshold = float(v[0]) - 1e-6
    elif k == n:
        threshold = float(v[-1]) + 1e-6
    else:
        threshold = float(v[k - 1] + v[k]) / 2
    return threshold, float(agree[k])


def phase_agreement(images: torch.Tensor, asked: torch.Tensor, threshold: float = ISING_ENERGY_THRESHOLD
                    ) -> dict[str, float]:
    """Class consistency with a physical ruler: share of configurations whose energy phase is the asked class.

    Returns the overall share, the share per class (``class_0``, ``class_1``) and the mean energy / |m| per class.
    """
    spins = to_spins(images)
    energy, abs_m = energy_per_spin(spins), magnetisation(spins)
    hit = phase_from_energy(energy, threshold) == asked.long()
    out = {"agreement": float(hit.float().mean())}
    for c in (0, 1):
        mask = asked.long() == c
        if mask.any():
            out[f"class_{c}"] = float(hit[mask].float().mean())
            out[f"energy_{c}"] = float(energy[mask].mean())
            out[f"abs_m_{c}"] = float(abs_m[mask].mean())
    return out
