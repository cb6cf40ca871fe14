"""k-NN manifold metrics: precision/recall and density/coverage, in blocks (never an N x M matrix in memory).

Improved precision and recall (Kynkaanniemi et al. 2019, eq. 1-3): each set's manifold is the union of balls
around its points with radius = distance to the k-th nearest neighbour *other than itself* (k = 3).
    precision = mean_j 1[ exists i: d(gen_j, real_i) <= r_k(real_i) ]
    recall    = mean_i 1[ exists j: d(real_i, gen_j) <= r_k(gen_j) ]
Membership uses ``<=`` (their code, NVIDIA's and torch-fidelity's).

Density and coverage (Naeem et al. 2020, eq. 5-6), with real radii r_k (k = 5 in their experiments):
    density  = 1/(k M) sum_j sum_i 1[ d(gen_j, real_i) < r_k(real_i) ]
    coverage = 1/N sum_i 1[ min_j d(real_i, gen_j) < r_k(real_i) ]
with strict ``<`` as in clovaai/generative-evaluation-prdc (so all-identical points give 0, issue #7 there).

Distances are Euclidean, computed in float64 as sqrt(|x|^2 + |y|^2 - 2 x.y). Rounding in that formula leaves
~1e-8 relative noise where the true distance is 0, so squared distances below 1e-12 of |x|^2 + |y|^2 are set
to exactly 0: duplicates then count as inside (``<=``) and outside (``<``) as the definitions say.
"""
from __future__ import annotations

import torch

from ..errors import ConfigError
from .base import EvalOptions, FeatureStats, MetricSpec, metrics

_SNAP = 1e-12


def pairwise_distances(x: torch.Tensor, y: torch.Tensor, x_sq: torch.Tensor | None = None,
                       y_sq: torch.Tensor | None = None) -> torch.Tensor:
    """Euclidean distances between rows of x [M, D] and y [K, D] -> [M, K] float64 (duplicates exactly 0)."""
    x, y = x.double(), y.double()
    x_sq = (x * x).sum(1) if x_sq is None else x_sq                     # [M]
    y_sq = (y * y).sum(1) if y_sq is None else y_sq                     # [K]
    scale = x_sq[:, None] + y_sq[None, :]
    d2 = scale - 2.0 * (x @ y.T)
    d2 = torch.where(d2 <= _SNAP * scale, torch.zeros_like(d2), d2)
    return d2.sqrt()


def knn_radii(x: torch.Tensor, k: int | tuple[int, ...], batch: int = 4096
              ) -> torch.Tensor | dict[int, torch.Tensor]:
    """Distance of each row of x [N, D] to its k-th nearest neighbour other than itself -> [N] float64
    (a dict {k: [N]} when ``k`` is a tuple: several k from one pass).

    Blocks of ``batch`` rows x ``batch`` columns; a running top-(k+1) per row is merged across column blocks.
    The smallest distance of each row is to itself (0), so the (k+1)-th smallest is the k-th neighbour.
    """
    ks = (k,) if isinstance(k, int) else tuple(k)
    k_max = max(ks)
    n = x.shape[0]
    if n <= k_max:
        raise ConfigError(f"k-NN radii with k={k_max} need more than {k_max} samples, got {n}.")
    x = x.double()
    sq = (x * x).sum(1)
    radii = []
    for r0 in range(0, n, batch):
        rows = slice(r0, r0 + batch)
        best = None                                                     # [b, <=k+1] smallest so far
        for c0 in range(0, n, batch):
            cols = slice(c0, c0 + batch)
            d = pairwise_distances(x[rows], x[cols], sq[rows], sq[cols])
            both = d if best is None else torch.cat([best, d], dim=1)
            best = both.topk(min(k_max + 1, both.shape[1]), dim=1, largest=False).values
        radii.append(best)
    best = torch.cat(radii)                                             # [N, k_max+1], sorted ascending
    return best[:, ks[0]] if isinstance(k, int) else {kk: best[:, kk] for kk in ks}


def prdc(real: torch.Tensor, gen: torch.Tensor, pr_k: int = 3, dc_k: int = 5, batch: int = 4096,
         which: tuple[str, ...] = ("pr", "dc")) -> dict[str, float]:
    """Precision, recall (``<=``, k = pr_k) and density, coverage (``<``, k = dc_k) of gen [M, D] vs real [N, D].

    Three passes over blocks: real radii (both k at once), generated radii, and the [gen x real] distances,
    which update all four numbers together. Memory is O(batch^2). ``which`` picks "pr" and/or "dc".
    """
    if real.shape[1] != gen.shape[1]:
        raise ConfigError(f"Feature dimensions differ: real {real.shape[1]}, generated {gen.shape[1]}.")
    device = real.device
    real, gen = real.double(), gen.to(device).double()
    n, m = real.shape[0], gen.shape[0]
    real_sq, gen_sq = (real * real).sum(1), (gen * gen).sum(1)
    want_pr, want_dc = "pr" in which, "dc" in which
    real_radii = knn_radii(real, tuple(k for k, w in ((pr_k, want_pr), (dc_k, want_dc)) if w), batch)
    r_pr, r_dc = real_radii.get(pr_k), real_radii.get(dc_k)             # [N]
    g_pr = knn_radii(gen, pr_k, batch) if want_pr else None             # [M]

    precise = torch.zeros(m, dtype=torch.bool, device=device)          # gen_j inside the real manifold
    recalled = torch.zeros(n, dtype=torch.bool, device=device)         # real_i inside the generated manifold
    density_count = torch.zeros((), dtype=torch.float64, device=device)
    covered = torch.zeros(n, dtype=torch.bool, device=device)          # some gen strictly inside real ball
    for g0 in range(0, m, batch):
        gs = slice(g0, g0 + batch)
        for r0 in range(0, n, batch):
            rs = slice(r0, r0 + batch)
            d = pairwise_distances(gen[gs], real[rs], gen_sq[gs], real_sq[rs])   # [b_gen, b_real]
            if want_pr:
                precise[gs] |= (d <= r_pr[rs][None, :]).any(dim=1)
                recalled[rs] |= (d <= g_pr[gs][:, None]).any(dim=0)
            if want_dc:
                inside = d < r_dc[rs][None, :]
                density_count += inside.sum()
                covered[rs] |= inside.any(dim=0)
    out = {}
    if want_pr:
        out.update(precision=precise.double().mean().item(), recall=recalled.double().mean().item())
    if want_dc:
        out.update(density=(density_count / (dc_k * m)).item(), coverage=covered.double().mean().item())
    return out


def _prdc_once(gen: FeatureStats, ref: FeatureStats, opts: EvalOptions, name: str, metric: str
               ) -> dict[str, float]:
    """All four numbers from one set of passes (when the sets are large enough for both k), remembered on
    ``gen`` so that "pr" and "dc" requested together cost one pass."""
    if not ref.has_features:
        raise ConfigError(f"{name} needs the reference features, but the reference statistics hold only mean "
                          f"and covariance. Recompute them with `gankit ref --features` (or pass the data spec).")
    key = ("prdc", id(ref), opts.pr_k, opts.dc_k)
    memo = gen.__dict__.setdefault("_memo", {})
    if metric not in memo.get(key, {}).get("which", ()):
        both = ref.n > max(opts.pr_k, opts.dc_k) and gen.n > opts.pr_k
        which = ("pr", "dc") if both else (metric,)
        device = gen.device                   # where the features were extracted (the evaluation's device)
        memo[key] = {"which": which, **prdc(ref.features().to(device), gen.features().to(device), opts.pr_k,
                                            opts.dc_k, opts.distance_batch, which)}
    return memo[key]


def _compute_pr(gen: FeatureStats, ref: FeatureStats, opts: EvalOptions) -> dict[str, float]:
    out = _prdc_once(gen, ref, opts, "Precision/recall", "pr")
    return {"precision": out["precision"], "recall": out["recall"]}


def _compute_dc(gen: FeatureStats, ref: FeatureStats, opts: EvalOptions) -> dict[str, float]:
    out = _prdc_once(gen, ref, opts, "Density/coverage", "dc")
    return {"density": out["density"], "coverage": out["coverage"]}


metrics.register("pr")(MetricSpec(
    name="pr", values=("precision", "recall"),
    output="features", needs_ref=True, keep_gen=True, keep_ref=True, compute=_compute_pr,
    needs_moments=False, min_n=lambda o: o.pr_k + 1, params=lambda o: {"k": o.pr_k, "membership": "<=", "self_excluded": True},
    description="Improved precision and recall (Kynkaanniemi et al. 2019)"))

metrics.register("dc")(MetricSpec(
    name="dc", values=("density", "coverage"),
    output="features", needs_ref=True, keep_gen=True, keep_ref=True, compute=_compute_dc,
    needs_moments=False, min_n=lambda o: o.dc_k + 1, params=lambda o: {"k": o.dc_k, "membership": "<", "self_excluded": True},
    description="Density and coverage (Naeem et al. 2020)"))
