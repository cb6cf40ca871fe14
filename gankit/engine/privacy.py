"""Differential privacy: DP-SGD for the discriminators through Opacus (Abadi et al. 2016, "Deep Learning with
Differential Privacy"; Opacus: Yousefpour et al. 2021).

``--set privacy.epsilon=E --set privacy.delta=D`` (or a preset's ``strategy.privacy``) turns it on. What it does:

- **Unit**: one real example (one row of a table) under add/remove adjacency. The recipe is asked for
  per-example discriminator terms (``Recipe.enable_per_sample``): no packing, no gradient penalty, one forward
  whose loss is a plain mean over its rows, each depending on one real example at most.
- **Sampling**: the data stream becomes Poisson sampling (each example in a batch independently with rate
  q = batch / N, Opacus' ``UniformWithReplacementSampler``), drawn with a generator seeded by (seed, batch k), so
  the stream's state is still one integer and resume is exact.
- **Clipping and noise**: each discriminator network is wrapped in Opacus' ``GradSampleModule`` (per-example
  gradients) and its optimiser in ``DPOptimizer``: every per-example gradient clipped to ``max_grad_norm`` C, the
  sum plus N(0, sigma^2 C^2) noise, divided by the expected rows per forward (Abadi et al. 2016, Algorithm 1).
  The noise comes from the global torch RNG, which the checkpoint holds.
- **Calibration**: sigma is Opacus' ``get_noise_multiplier`` for the run's planned number of discriminator steps
  (counted from the recipe's phases and ``kimg``) at rate q, so that the accountant reaches epsilon at delta at
  the end; the RDP accountant (Mironov 2017; Mironov et al. 2019 for the subsampled Gaussian) by default.
- **Resume** continues the accountant (its history is in the checkpoint) with the saved sigma; a resume whose
  ``kimg`` exceeds the planned length is refused (it would overspend the budget).
- **Reporting**: ``privacy/epsilon`` per tick in stats.jsonl, and ``summary()`` (epsilon, delta, sigma, q, steps,
  what the guarantee covers) in the checkpoint, ``gankit info --json`` and evaluation cards.

The generators are trained only through the discriminators' privatised weights (post-processing), which the
per-sample contract makes the recipe promise; any other phase that draws real batches is refused. Not covered:
what the data kind derived from the rows before training (for tables: column types, category lists and counts,
numeric ranges, the Gaussian-mixture modes, all stored in the checkpoint's ``data_info``): (epsilon, delta) holds
for the weights treating that metadata as public; logged training statistics (losses, D's scores on real rows,
gradient norms in stats.jsonl / TensorBoard) and evaluation cards computed on real rows are not private either.
"""
from __future__ import annotations

import contextlib
import math
import warnings
from dataclasses import dataclass
from typing import Any, ContextManager, Iterator

import torch

from ..config import TrainConfig
from ..data.base import BatchStream
from ..errors import CheckpointError, ConfigError
from .strategies import Strategy, StrategyFactory, strategy_factories, strategy_options

ACCOUNTANTS = ("rdp", "prv")

COVERS = ("the weights of every network (discriminators by DP-SGD; generators and their EMA copies see the rows "
          "only through the discriminators, as post-processing), for one row added or removed, treating the "
          "data's metadata as public")
NOT_COVERED = ("the metadata derived from the rows before training and stored in the checkpoint's data_info (for "
               "tables: column types, category lists and counts, numeric ranges, Gaussian-mixture modes); logged "
               "training statistics (stats.jsonl, log.txt, TensorBoard: losses, D's scores on real rows, gradient "
               "norms); evaluation cards computed on real rows")


@dataclass
class PrivacyOptions:
    epsilon: float = 0.0          # target epsilon at the end of the run (0 = privacy off)
    delta: float = 1e-5           # target delta; must be below 1 / N (N = training examples)
    max_grad_norm: float = 1.0    # per-example clipping bound C (Abadi et al. 2016)
    accountant: str = "rdp"       # rdp (Renyi DP, Mironov 2017) | prv (Gopi et al. 2021, tighter)
    # Noise multiplier of a Gaussian release of the recipe's data histograms (Recipe.data_statistics; CTGAN: the
    # category counts), charged to the same budget; 0 = the histograms are treated as public metadata.
    count_noise: float = 0.0

    def __post_init__(self) -> None:
        if self.epsilon < 0 or self.max_grad_norm <= 0:
            raise ConfigError(f"privacy.epsilon must be >= 0 and privacy.max_grad_norm > 0, got {self.epsilon} "
                              f"and {self.max_grad_norm}.")
        if not 0 < self.delta < 1:
            raise ConfigError(f"privacy.delta must be in (0, 1), got {self.delta}.")
        if self.count_noise < 0:
            raise ConfigError(f"privacy.count_noise must be >= 0, got {self.count_noise}.")
        if self.accountant not in ACCOUNTANTS:
            raise ConfigError(f"privacy.accountant must be one of {', '.join(ACCOUNTANTS)}, got "
                              f"{self.accountant!r}.")


class PoissonStream(BatchStream):
    """Batch k holds each example independently with probability q (Poisson sampling, the sampling DP-SGD's
    accountant assumes), drawn by Opacus' UniformWithReplacementSampler from a generator seeded by (seed, k):
    batch sizes vary, the position is still ``batches_done``."""

    def __init__(self, dataset: Any, sample_rate: float, seed: int, device: torch.device, batch_size: int):
        super().__init__(dataset, batch_size, seed=seed, device=device)
        self.sample_rate = sample_rate

    def indices(self, k: int) -> torch.Tensor:
        from opacus.utils.uniform_sampler import UniformWithReplacementSampler
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + k + 104_729)
        sampler = UniformWithReplacementSampler(num_samples=len(self.dataset), sample_rate=self.sample_rate,
                                                generator=g, steps=1)
        return torch.tensor(next(iter(sampler)), dtype=torch.long)

    def __next__(self) -> dict[str, torch.Tensor]:
        idx = self.indices(self.batches_done)
        if hasattr(self.dataset, "get_batch"):
            batch = self.dataset.get_batch(idx)
        else:
            items = [self.dataset[int(i)] for i in idx]
            batch = {k: torch.stack([it[k] for it in items]) for k in self.dataset[0]}
        self.batches_done += 1
        return {k: v.to(self.device) for k, v in batch.items()}


def count_private_steps(phases: list, private: set[str], total_nimg: int, global_batch: int) -> int:
    """How many times the private optimisers step in a run of ``total_nimg`` real examples: the trainer's phase
    loop replayed on counters (a phase drawing a new batch adds ``global_batch`` to nimg)."""
    nimg = step = count = 0
    while nimg < total_nimg:
        start, have_batch = nimg, False
        for p in phases:
            if not p.active(start, step):
                continue
            for _ in range(p.repeat):
                if p.batch == "new" or not have_batch:
                    nimg += global_batch
                    have_batch = True
                if p.optimizer in private:
                    count += 1
        step += 1
        if step > 10_000_000:
            raise ConfigError("privacy: the run's phases never reach its kimg.")
    return count


class Privacy(Strategy):
    name = "privacy"
    owns_step = True

    def __init__(self, opts: PrivacyOptions, private: set[str], nets: tuple[str, ...], sample_rate: float,
                 planned_steps: int, planned_kimg: float, noise_multiplier: float, expected_rows: int, n_rows: int):
        from opacus.accountants import create_accountant
        self.opts, self.private, self.nets = opts, private, nets
        self.sample_rate, self.planned_steps, self.planned_kimg = sample_rate, planned_steps, planned_kimg
        self.noise_multiplier, self.expected_rows, self.n_rows = noise_multiplier, expected_rows, n_rows
        self.accountant = create_accountant(opts.accountant)
        self.trainer: Any = None
        self.statistics: dict[str, torch.Tensor] = {}    # the released (noisy) histograms

    # -- wrapping
    def setup(self, trainer: Any) -> None:
        from opacus import GradSampleModule
        _quiet_opacus()
        self.trainer = trainer
        for name in self.nets:
            gsm = GradSampleModule(trainer.recipe.nets[name], batch_first=True, loss_reduction="mean")
            gsm.wrapped_network = "_module"          # nets.unwrap finds the network inside
            trainer.recipe.nets[name] = gsm
        self._wrap_optimizers(trainer)
        trainer.stream = PoissonStream(trainer.stream.dataset, self.sample_rate, trainer.stream.seed, trainer.device,
                                       trainer.cfg.batch_size)
        self._release_statistics(trainer.recipe)

    def _release_statistics(self, recipe: Any) -> None:
        """The Gaussian mechanism on the recipe's histograms: an example changes one bin of each of the K
        histograms by 1, so the L2 sensitivity is sqrt(K); each bin gets N(0, (count_noise sqrt(K))^2) noise and
        the accountant records one step at rate 1 with that noise multiplier (Dwork & Roth 2014, sec. 3.5)."""
        stats = recipe.data_statistics()
        if self.opts.count_noise <= 0 or not stats:
            return
        std = self.opts.count_noise * math.sqrt(len(stats))
        self.statistics = {k: v.double() + std * torch.randn(v.shape, dtype=torch.float64) for k, v in stats.items()}
        recipe.set_data_statistics(self.statistics)
        self.accountant.step(noise_multiplier=self.opts.count_noise, sample_rate=1.0)

    def _wrap_optimizers(self, trainer: Any) -> None:
        from opacus.optimizers import DPOptimizer
        for name in self.private:
            opt = trainer.optimizers[name]
            if not isinstance(opt, DPOptimizer):
                trainer.optimizers[name] = DPOptimizer(opt, noise_multiplier=self.noise_multiplier,
                                                       max_grad_norm=self.opts.max_grad_norm,
                                                       expected_batch_size=self.expected_rows, loss_reduction="mean")
            trainer.optimizers[name].noise_multiplier = self.noise_multiplier

    def on_rebuild(self, trainer: Any, names: set[str]) -> None:
        self._wrap_optimizers(trainer)

    @contextlib.contextmanager
    def _hooks_only_when_trained(self, trained: tuple[str, ...]) -> Iterator[None]:
        """Per-example gradient hooks run only in the phases that train the network (G's phase backpropagates
        through a frozen D: no activations are kept there, so its hooks must stay off)."""
        off = [self.trainer.recipe.nets[n] for n in self.nets if n not in trained]
        for gsm in off:
            gsm.disable_hooks()
        try:
            yield
        finally:
            for gsm in off:
                gsm.enable_hooks()

    def micro_context(self, i: int, n: int, trained: tuple[str, ...] = ()) -> ContextManager:
        return self._hooks_only_when_trained(trained)

    # -- the step: DPOptimizer clips, noises and steps; the accountant records it
    def step(self, name: str, opt: torch.optim.Optimizer) -> bool:
        if name not in self.private:
            return False
        opt.step()
        if not getattr(opt, "_is_last_step_skipped", False):
            self.accountant.step(noise_multiplier=self.noise_multiplier, sample_rate=self.sample_rate)
        return True

    @property
    def steps(self) -> int:
        """DP-SGD steps taken (the histogram release, at rate 1, is not one)."""
        return int(sum(n for _, q, n in self.accountant.history if q < 1))

    def epsilon(self) -> float:
        return float(self.accountant.get_epsilon(self.opts.delta)) if self.accountant.history else 0.0

    def tick_stats(self) -> dict[str, float]:
        return {"privacy/epsilon": self.epsilon()}

    # -- checkpoint
    def state_dict(self) -> dict:
        return {"accountant": self.accountant.state_dict(), "noise_multiplier": self.noise_multiplier,
                "sample_rate": self.sample_rate, "planned_steps": self.planned_steps,
                "planned_kimg": self.planned_kimg, "target_epsilon": self.opts.epsilon, "delta": self.opts.delta,
                "max_grad_norm": self.opts.max_grad_norm, "accountant_name": self.opts.accountant,
                "statistics": self.statistics}

    def load_state_dict(self, state: dict) -> None:
        kimg = self.trainer.cfg.kimg if self.trainer is not None else self.planned_kimg
        if kimg > float(state["planned_kimg"]) + 1e-9:
            raise CheckpointError(
                f"This run's privacy budget (epsilon {state['target_epsilon']}, delta {state['delta']}) was "
                f"calibrated for {state['planned_kimg']} kimg ({state['planned_steps']} private steps); resuming to "
                f"{kimg} kimg would overspend it. Resume with --kimg {state['planned_kimg']} or less, or train a "
                f"new run planned for the longer length.")
        self.noise_multiplier = float(state["noise_multiplier"])
        self.sample_rate = float(state["sample_rate"])
        self.planned_steps, self.planned_kimg = int(state["planned_steps"]), float(state["planned_kimg"])
        self.accountant.load_state_dict(state["accountant"])
        if state.get("statistics"):          # the histograms released at the start of the run, not new ones
            self.statistics = dict(state["statistics"])
            if self.trainer is not None:
                self.trainer.recipe.set_data_statistics(self.statistics)
        if self.trainer is not None:
            self._wrap_optimizers(self.trainer)

    def summary(self) -> dict[str, Any]:
        covers, not_covered = COVERS, NOT_COVERED
        if self.statistics:
            covers += f"; and the recipe's data histograms ({', '.join(self.statistics)}), released once with " \
                      f"Gaussian noise (multiplier {self.opts.count_noise}) within the same budget"
            not_covered = not_covered.replace("category lists and counts", "category lists")
        return {"epsilon": self.epsilon(), "delta": self.opts.delta,
                "privacy": {"mechanism": "DP-SGD (Opacus): per-example clipping, Gaussian noise, Poisson sampling",
                            "target_epsilon": self.opts.epsilon, "delta": self.opts.delta,
                            "noise_multiplier": self.noise_multiplier, "max_grad_norm": self.opts.max_grad_norm,
                            "sample_rate": self.sample_rate, "steps": self.steps,
                            "planned_steps": self.planned_steps, "planned_kimg": self.planned_kimg,
                            "accountant": self.opts.accountant, "private_networks": list(self.nets),
                            "examples": self.n_rows, "unit": "one training example (row), add/remove",
                            "count_noise": self.opts.count_noise, "covers": covers, "not_covered": not_covered}}


def _make_privacy(cfg: TrainConfig, ctx: Any) -> Strategy | None:
    opts: PrivacyOptions = strategy_options(cfg, "privacy")
    if opts.epsilon <= 0:
        return None
    try:
        import opacus  # noqa: F401
        from opacus.accountants.utils import get_noise_multiplier
    except ImportError:
        raise ConfigError("privacy.epsilon needs Opacus: pip install opacus (or 'gankit[privacy]').") from None
    if ctx.world is not None and ctx.world.enabled:
        raise ConfigError("DP-SGD under torchrun (several processes) is not built yet: train on one process.")
    if cfg.grad_accum > 1:
        raise ConfigError("privacy with grad_accum > 1 is not supported: Opacus accumulates per-example gradients "
                          "over virtual steps differently; use a smaller batch_size instead.")
    recipe = ctx.recipe
    n_rows = len(ctx.dataset)
    if opts.delta >= 1.0 / n_rows:
        raise ConfigError(f"privacy.delta = {opts.delta:g} is not below 1 / N = {1.0 / n_rows:.3g} for the {n_rows} "
                          f"training examples; a delta that large allows releasing an example outright. Use e.g. "
                          f"{10 ** math.floor(math.log10(0.1 / n_rows)):g}.")
    sample_rate = cfg.batch_size / n_rows
    if sample_rate >= 1:
        raise ConfigError(f"DP-SGD samples each of the {n_rows} examples with rate batch_size / N; batch_size "
                          f"{cfg.batch_size} must be smaller than N (e.g. --batch {max(1, n_rows // 4)}).")
    specs, phases = recipe.optimizers(), recipe.phases()
    nets = tuple(n for n in recipe.discriminator_names if n in recipe.nets)
    private = {name for name, spec in specs.items() if set(spec.nets) & set(nets)}
    if not private:
        raise ConfigError(f"privacy: recipe {cfg.recipe!r} has no optimiser over its discriminators {nets}.")
    for p in phases:
        if p.optimizer in private and p.batch != "new":
            raise ConfigError(f"privacy: phase {p.name!r} steps a private optimiser on a reused batch; each DP-SGD "
                              f"step needs its own Poisson sample.")
        if p.optimizer not in private and p.batch == "new":
            raise ConfigError(f"privacy: phase {p.name!r} draws real examples for non-private optimiser "
                              f"{p.optimizer!r}; only the discriminators may read real data under DP-SGD.")
    expected_rows = recipe.enable_per_sample(cfg.batch_size)
    _quiet_opacus()
    total = int(round(cfg.kimg * 1000))
    planned = count_private_steps(phases, private, total, cfg.batch_size)
    try:
        if opts.count_noise > 0 and recipe.data_statistics():
            if opts.accountant != "rdp":
                raise ConfigError("privacy.count_noise is calibrated with the rdp accountant; set "
                                  "privacy.accountant=rdp.")
            sigma = _noise_with_release(opts, sample_rate, planned)
        else:
            sigma = get_noise_multiplier(target_epsilon=opts.epsilon, target_delta=opts.delta,
                                         sample_rate=sample_rate, steps=planned, accountant=opts.accountant)
    except ValueError as e:
        raise ConfigError(f"privacy: no noise level reaches epsilon {opts.epsilon} at delta {opts.delta:g} for "
                          f"{planned} steps at sampling rate {sample_rate:.3g} ({e}).") from None
    return Privacy(opts, private, nets, sample_rate, planned, cfg.kimg, float(sigma), expected_rows, n_rows)


def _quiet_opacus() -> None:
    # D's inputs (data rows) do not require gradients, so torch notes on every step that the full backward hooks
    # fire on outputs only: that is how Opacus captures per-example backprops, not a problem. The RDP orders'
    # warning says a larger order might tighten the bound slightly; the reported epsilon is still an upper bound.
    warnings.filterwarnings("ignore", message="Full backward hook is firing", category=UserWarning)
    warnings.filterwarnings("ignore", message="Optimal order is the largest alpha", category=UserWarning)


def _noise_with_release(opts: PrivacyOptions, sample_rate: float, steps: int) -> float:
    """The DP-SGD noise multiplier that, composed (RDP) with one Gaussian release at multiplier count_noise,
    reaches epsilon at delta: bisection on sigma, as Opacus' get_noise_multiplier does for DP-SGD alone."""
    from opacus.accountants import RDPAccountant

    def eps(sigma: float) -> float:
        acc = RDPAccountant()
        acc.history = [(opts.count_noise, 1.0, 1), (sigma, sample_rate, steps)]
        return acc.get_epsilon(opts.delta)

    alone = RDPAccountant()
    alone.history = [(opts.count_noise, 1.0, 1)]
    if alone.get_epsilon(opts.delta) >= opts.epsilon:
        raise ValueError(f"the histogram release alone (count_noise {opts.count_noise}) spends epsilon "
                         f"{alone.get_epsilon(opts.delta):.3g}; raise privacy.count_noise")
    lo, hi = 0.0, 10.0
    while eps(hi) > opts.epsilon:
        lo, hi = hi, 2 * hi
        if hi > 1e4:
            raise ValueError("no noise multiplier below 1e4 reaches the target")
    while hi - lo > 0.005 * hi:
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if eps(mid) > opts.epsilon else (lo, mid)
    return hi


# After every other strategy (order 95): it owns the step, and EMA (90) averages the privatised weights.
strategy_factories.register("privacy")(StrategyFactory(95, _make_privacy, options=PrivacyOptions))
