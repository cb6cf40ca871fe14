"""The pieces every metric is made of: extractors, streaming statistics, metric specs, and their registries.

DESIGN.md sec. 3 "Metrics": feature extractor -> streaming statistics (float64) -> metric function. Extractors
turn uint8 images into named feature tensors; ``FeatureStats`` accumulates one named output of one extractor
(mean and covariance in float64, and the raw features when a metric needs them); a ``MetricSpec`` says which
output it reads, whether it needs a reference set, and computes numbers from the statistics.

Registries (``gankit.registry.Registry``):
    extractors  name -> factory(arg, **options) -> Extractor   ("inception", "classifier" as "classifier:PATH")
    metrics     name -> MetricSpec                             ("fid", "kid", "is", "pr", "dc", "modes", "toy",
                                                                "psnr", "ssim", "l1" for translation)
"""
from __future__ import annotations

import hashlib
import os
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Protocol, runtime_checkable

import numpy as np
import torch

from ..errors import ConfigError
from ..registry import Registry

extractors: Registry[Callable[..., "Extractor"]] = Registry("feature extractor")
metrics: Registry["MetricSpec"] = Registry("metric")


# ---- extractors ----------------------------------------------------------------------------------------------

class Extractor:
    """uint8 images [N, C, H, W] -> {output name: float32 [N, D]}.

    ``outputs`` names what ``__call__`` returns: "features" (the embedding FID/KID/PR/DC use) and "logits"
    (class scores for IS and mode counts). ``protocol()`` describes everything that changes the numbers.
    """

    name: str = ""
    outputs: tuple[str, ...] = ("features",)

    def __call__(self, img: torch.Tensor) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def protocol(self) -> dict[str, Any]:
        """Full description: implementation, weights file and hash, resize, normalisation, feature layers."""
        raise NotImplementedError

    def identity(self) -> dict[str, Any]:
        """The part of ``protocol()`` that must be equal for two numbers to be comparable."""
        raise NotImplementedError


@contextmanager
def exact_float32() -> Iterator[None]:
    """Run convolutions and matrix products in IEEE float32 on the GPU, then restore the caller's settings.

    PyTorch lets cuDNN convolutions use TF32 by default on Ampere and later GPUs (10 mantissa bits), which moves
    Inception features by ~5e-4 relative (measured on an H200), and a FID computed from them with it. Metric
    numbers must not depend on the card, so extraction runs in full float32 (NVIDIA's StyleGAN2-ADA also
    switches TF32 off unless ``--allow-tf32`` is given). No effect on the CPU. Uses the ``fp32_precision`` API
    where torch has it (2.9+): mixing it with the legacy ``allow_tf32`` flags makes torch raise.
    """
    conv = getattr(getattr(torch.backends.cudnn, "conv", None), "fp32_precision", None)
    if conv is not None:
        saved = (torch.backends.cudnn.conv.fp32_precision, torch.backends.cuda.matmul.fp32_precision)
        torch.backends.cudnn.conv.fp32_precision = "ieee"
        torch.backends.cuda.matmul.fp32_precision = "ieee"
        try:
            yield
        finally:
            torch.backends.cudnn.conv.fp32_precision, torch.backends.cuda.matmul.fp32_precision = saved
    else:  # pragma: no cover - torch < 2.9
        saved = (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)
        torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
        try:
            yield
        finally:
            torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def parse_extractor_spec(spec: str) -> tuple[str, str | None]:
    """"classifier:clf.pt" -> ("classifier", "clf.pt"); "inception" -> ("inception", None)."""
    name, sep, arg = spec.partition(":")
    return name, (arg if sep else None)


def make_extractor(spec: str, **options: Any) -> Extractor:
    """Build the extractor named by ``spec`` ("inception", "classifier:PATH") with shared options
    (device, batch_size, inception_weights, verify_weights, download); factories ignore options they lack."""
    name, arg = parse_extractor_spec(spec)
    return extractors.get(name)(arg, **options)


# ---- sharding over processes ---------------------------------------------------------------------------------

@runtime_checkable
class Shard(Protocol):
    """Where this process stands in a multi-process evaluation (``gankit.engine.distributed.World.metrics_shard``).

    Every rank calls ``evaluate`` with the same arguments; rank r extracts the batches i with
    ``i % world_size == r`` and ``all_gather`` (a collective: every rank calls it, in the same order) brings the
    statistics of all ranks to each. Metrics import nothing from the engine: any object with these three
    members will do (a test passes a fake).
    """

    rank: int
    world_size: int

    def all_gather(self, obj: Any) -> list[Any]:
        """[obj of rank 0, obj of rank 1, ...] on every rank; obj is picklable."""
        ...


def shard_size(shard: Shard | None) -> int:
    """1 without a shard (one process), else the number of ranks."""
    return 1 if shard is None else int(shard.world_size)


# ---- streaming statistics ------------------------------------------------------------------------------------

class FeatureStats:
    """Mean and (N-1) covariance in float64, merged batch by batch; optionally keeps the raw features.

    Batches are gathered into blocks of at least ``MERGE_ROWS`` rows and merged with the pairwise update of
    Chan, Golub & LeVeque (1979): with block mean m_b and centred scatter M2_b,
    ``M2 = M2_a + M2_b + d d^T n_a n_b / n`` where ``d = m_b - m_a``. Centring each block avoids the
    catastrophic cancellation of ``E[xx^T] - mu mu^T`` in one pass (TTUR issue #29 is about float32 statistics
    going wrong; we accumulate in float64 on the features' device).

    While N <= D the features are kept anyway (at most D x D numbers, the size of the covariance): the
    covariance is then rank-deficient and ``factor()`` gives its exact low-rank factor, which FID uses instead
    of a D x D eigen-decomposition.
    """

    MERGE_ROWS = 4096

    def __init__(self, keep_features: bool = False, with_moments: bool = True):
        self.keep_features = keep_features
        self.with_moments = with_moments
        self.n = 0
        self._mean: torch.Tensor | None = None   # [D] float64
        self._m2: torch.Tensor | None = None     # [D, D] float64, sum of centred outer products
        self._pending: list[torch.Tensor] = []   # [B, D] batches not merged yet, as given (dtype, device)
        self._pending_n = 0                       # rows in _pending; _mean / _m2 hold the other n - _pending_n
        self._chunks: list[torch.Tensor] = []    # float32 [B, D] on the CPU
        self._small: list[torch.Tensor] | None = []  # float64 [B, D] on the CPU while N <= D
        self._fixed: dict[str, Any] = {}         # set by from_arrays (statistics read from a file)
        self.device = torch.device("cpu")        # where the features were computed: metrics run there too

    def append(self, x: torch.Tensor) -> None:
        """Add a batch of features [B, D]."""
        if x.ndim != 2:
            raise ValueError(f"features must be [N, D], got shape {tuple(x.shape)}")
        if self._fixed:
            raise RuntimeError("cannot append to statistics read from a file")
        self.device = x.device
        if self.keep_features:
            self._chunks.append(x.detach().float().cpu())
        elif self._small is not None:
            self._small = self._small + [x.detach().double().cpu()] if self.n + x.shape[0] <= x.shape[1] else None
        if self.with_moments:
            # Batches are merged in blocks of >= MERGE_ROWS rows: one [D, B] x [B, D] product of a large block
            # runs several times faster than many thin ones, and each merge costs a few D x D passes.
            self._pending.append(x.detach())
            self._pending_n += x.shape[0]
        self.n += x.shape[0]
        if self._pending_n >= self.MERGE_ROWS:
            self._merge_pending()

    def _merge_pending(self) -> None:
        """Chan et al.'s pairwise update with the pending rows as one batch."""
        if not self._pending:
            return
        xb = torch.cat(self._pending).double()                           # [B, D]
        nb, n_a = xb.shape[0], self.n - self._pending_n                  # n_a: rows already in _mean / _m2
        self._pending, self._pending_n = [], 0
        mean_b = xb.mean(0)
        centred = xb - mean_b
        if centred.device.type == "cpu":
            # numpy hands c^T c to BLAS syrk (one triangle): 0.18 s vs torch's gemm 0.31 s at 4096 x 2048.
            c = centred.numpy()
            m2_b = torch.from_numpy(c.T @ c)                             # [D, D]
        else:
            m2_b = centred.T @ centred                                   # [D, D]
        if self._mean is None:
            self._mean, self._m2 = mean_b, m2_b
        else:
            n = n_a + nb
            delta = mean_b - self._mean
            self._mean = self._mean + delta * (nb / n)
            self._m2 += m2_b                                             # in place: D x D float64 passes
            self._m2.addr_(delta, delta, alpha=n_a * nb / n)             # are the cost of a merge

    @classmethod
    def from_arrays(cls, mu: np.ndarray, sigma: np.ndarray, n: int, features: np.ndarray | None = None
                    ) -> "FeatureStats":
        """Statistics read from a file (pytorch-fid's ``mu``/``sigma`` layout, optionally raw features)."""
        st = cls(keep_features=features is not None)
        st.n = int(n)
        st._fixed = {"mu": np.asarray(mu, np.float64), "sigma": np.asarray(sigma, np.float64)}
        if features is not None:
            st._chunks = [torch.from_numpy(np.asarray(features, np.float32))]
        return st

    # ---- merging the statistics of several processes ----

    def shard_payload(self) -> dict[str, Any]:
        """This process's part as CPU tensors, for ``from_shards`` on every rank: moments (n, mean, centred
        scatter) rather than rows, plus the rows that are kept (features; the N <= D low-rank rows)."""
        if self._fixed:
            raise RuntimeError("statistics read from a file are not sharded")
        if self.with_moments:
            self._merge_pending()
        return {"n": self.n,
                "mean": None if self._mean is None else self._mean.cpu(),
                "m2": None if self._m2 is None else self._m2.cpu(),
                "features": torch.cat(self._chunks) if self._chunks else None,
                "small": None if self._small is None else (torch.cat(self._small) if self._small else [])}

    @classmethod
    def from_shards(cls, payloads: list[dict[str, Any]], batches: list[list[tuple[int, int]]], *,
                    keep_features: bool, with_moments: bool, device: torch.device) -> "FeatureStats":
        """The statistics one process would have computed over every rank's batches.

        ``payloads[r]``: rank r's ``shard_payload()``; ``batches[r]``: its (global batch index, rows) in the
        order it appended them. Moments merge with the same pairwise update as the blocks (Chan et al. 1979),
        in rank order: equal to one process up to float64 rounding (~1e-15 relative; the blocks differ). Kept
        rows are put back into global batch order, so features are identical to one process's.
        """
        st = cls(keep_features=keep_features, with_moments=with_moments)
        st.device = device
        st.n = sum(p["n"] for p in payloads)
        if with_moments:
            for p in payloads:
                if not p["n"]:
                    continue
                mean_b, m2_b = p["mean"].to(device), p["m2"].to(device)
                if st._mean is None:
                    st._mean, st._m2, n_a = mean_b.clone(), m2_b.clone(), p["n"]
                    continue
                n_b = p["n"]
                n = n_a + n_b
                delta = mean_b - st._mean
                st._mean = st._mean + delta * (n_b / n)
                st._m2 += m2_b
                st._m2.addr_(delta, delta, alpha=n_a * n_b / n)
                n_a = n
        if keep_features:
            st._chunks = [_in_global_order([p["features"] for p in payloads], batches)]
        elif all(p["small"] is not None for p in payloads):
            rows = _in_global_order([p["small"] for p in payloads], batches)
            st._small = [rows] if len(rows) <= rows.shape[1] else None
        else:
            st._small = None                     # some rank already had more rows than dimensions
        return st

    @property
    def dim(self) -> int:
        return len(self.mean())

    def mean(self) -> np.ndarray:
        """[D] float64."""
        if self._fixed:
            return self._fixed["mu"]
        self._check()
        self._merge_pending()
        return self._mean.cpu().numpy()

    def cov(self) -> np.ndarray:
        """[D, D] float64 unbiased covariance (divides by N-1, like np.cov, TTUR and torch-fidelity)."""
        if self._fixed:
            return self._fixed["sigma"]
        self._check()
        if self.n < 2:
            raise ConfigError(f"A covariance needs at least 2 samples, got {self.n}.")
        self._merge_pending()
        return (self._m2 / (self.n - 1)).cpu().numpy()

    def factor(self) -> torch.Tensor | None:
        """A [N, D] float64 with cov() = A^T A when N <= D and the features are at hand, else None."""
        if self.has_features:
            x = self.features().double()
        elif self._small:
            x = torch.cat(self._small)
        else:
            return None
        n, d = x.shape
        if n > d or n < 2:
            return None
        return (x - x.mean(0)) / (n - 1) ** 0.5

    def features(self) -> torch.Tensor:
        """All features [N, D] float32 (only when kept)."""
        if not self.keep_features:
            raise RuntimeError("features were not kept; create FeatureStats(keep_features=True)")
        if len(self._chunks) > 1:
            self._chunks = [torch.cat(self._chunks)]
        return self._chunks[0]

    @property
    def has_features(self) -> bool:
        return self.keep_features and bool(self._chunks)

    def _check(self) -> None:
        if self.n == 0 or (self._mean is None and not self._pending):
            raise ConfigError("No samples were given: statistics of an empty set are undefined.")


def _in_global_order(parts: list[Any], batches: list[list[tuple[int, int]]]) -> torch.Tensor:
    """Concatenate ranks' rows [n_r, D] batch by batch in global batch-index order."""
    pieces: list[tuple[int, torch.Tensor]] = []
    for rows, order in zip(parts, batches):
        if not order:
            continue
        sizes = [size for _, size in order]
        pieces += [(index, chunk) for (index, _), chunk in zip(order, rows.split(sizes))]
    pieces.sort(key=lambda item: item[0])
    return torch.cat([chunk for _, chunk in pieces])


# ---- metric specs --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class EvalOptions:
    """Every knob of the metric functions, recorded in the protocol of each result."""

    kid_subsets: int = 100          # Binkowski et al. 2018 / torch-fidelity defaults
    kid_subset_size: int = 1000
    is_splits: int = 10             # Salimans et al. 2016
    is_shuffle: bool = True         # torch-fidelity shuffles before splitting (seeded); see docs/metrics.md
    pr_k: int = 3                   # Kynkaanniemi et al. 2019
    dc_k: int = 5                   # Naeem et al. 2020 use k = 5
    fid_bootstrap: int = 0          # bootstrap resamples for a FID confidence interval (0 = none)
    rng_seed: int = 2020            # KID subsets, IS shuffle, bootstrap: torch-fidelity's default seed
    distance_batch: int = 4096      # rows per block of the k-NN distance computations
    class_n: int = 0                # per-class metrics (class_consistency, intra_fid): samples of each class;
                                    # 0 = the n generated images split evenly over the classes (1000 each without n)
    truncations: tuple = (2.0, 1.0, 0.5)  # truncation_curve: the sampler's --truncation settings (and none)


PER_CLASS = "per_class"             # MetricSpec.output of metrics that sample class by class (metrics/conditional.py)


@dataclass(frozen=True)
class MetricSpec:
    """What a metric reads and how it turns statistics into numbers."""

    name: str
    output: str                     # extractor output it reads: "features" or "logits" ("" = no extractor)
    needs_ref: bool                 # compares with a reference set
    keep_gen: bool | Callable[[EvalOptions], bool]  # needs every generated feature, not only mean/cov
    keep_ref: bool | Callable[[EvalOptions], bool]  # needs every reference feature
    compute: Callable[..., dict[str, Any]]  # (gen: FeatureStats, ref: FeatureStats | None, opts) -> numbers
                                            # (+ optional "protocol": facts about how they were computed)
    values: tuple[str, ...] = ()    # names of the numbers it writes (kid -> kid, kid_std)
    params: Callable[[EvalOptions], dict] = lambda opts: {}   # the options that change its numbers
    needs_moments: bool = True      # uses mean/cov of the generated features
    description: str = ""
    requires_classifier: bool = False
    # Direction of the headline number (the first of ``values`` a result holds), which decides a run's "best"
    # snapshot: scores and coverage are better high, distances and errors low.
    higher_is_better: bool = True
    # The fewest samples (generated, and reference when it has one) the metric is defined for: checked before
    # training by ``prepare_evaluation``, so a run does not fail at its end. (n - 1 covariances need 2, k-NN
    # radii without the point itself k + 1, IS one image per split.)
    min_n: int | Callable[[EvalOptions], int] = 1

    def min_samples(self, opts: EvalOptions) -> int:
        return self.min_n(opts) if callable(self.min_n) else self.min_n

    def headline(self, result_values: dict[str, Any]) -> str | None:
        """Name of this metric's headline number in ``result_values`` (None when it is not there)."""
        return next((v for v in (self.values or (self.name,)) if v in result_values), None)

    def keeps_gen(self, opts: EvalOptions) -> bool:
        return self.keep_gen(opts) if callable(self.keep_gen) else self.keep_gen

    def keeps_ref(self, opts: EvalOptions) -> bool:
        return self.keep_ref(opts) if callable(self.keep_ref) else self.keep_ref


def metric_names() -> list[str]:
    """Names accepted by ``evaluate`` and by ``TrainConfig.metrics``."""
    return metrics.names()


# ---- small shared helpers ------------------------------------------------------------------------------------

_hash_cache: dict[tuple[str, int, int], str] = {}


def sha256_file(path: str | Path) -> str:
    """Hex SHA-256 of a file, cached per (path, size, mtime) so repeated loads do not re-read 100 MB."""
    p = Path(path).resolve()
    st = p.stat()
    key = (str(p), st.st_size, st.st_mtime_ns)
    if key not in _hash_cache:
        h = hashlib.sha256()
        with open(p, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        _hash_cache[key] = h.hexdigest()
    return _hash_cache[key]


def resolve_device(device: str | torch.device | None) -> torch.device:
    """None / "auto" -> the first CUDA device when there is one, else the CPU."""
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"Device {str(device)!r} was asked for, but CUDA is not available. Use --device cpu.")
    return dev


def cache_dir() -> Path:
    """Where reference statistics are cached: $GANKIT_CACHE, else ~/.cache/gankit."""
    return Path(os.environ.get("GANKIT_CACHE") or Path.home() / ".cache" / "gankit")
