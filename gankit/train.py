"""Training: optimisers, EMA, the training step, the training loop, and ``build``.

The step owns every optimisation mechanic (DESIGN.md principle 2): it toggles ``requires_grad``, calls
``backward()`` and the optimisers, and applies the recipe's constraint hook. Recipes only return losses.
Progress is counted in images shown to D (``nimg``; kimg = nimg / 1000), as in StyleGAN2-ADA.
"""
from __future__ import annotations

import copy
import json
import math
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .checkpoint import atomic_write_text, load_checkpoint, save_checkpoint
from .config import OptConfig, TrainConfig, from_dict, save_json, to_dict
from .data import load_dataset
from .data.base import BatchStream, DataInfo
from .errors import ConfigError, TrainingDiverged
from .recipes import Recipe, recipes
from .recipes.base import check_data_kind
from .registry import Registry
from .runlog import TickStats

optimizers: Registry = Registry("optimizer")


@optimizers.register("adam")
def _adam(params, c: OptConfig) -> torch.optim.Optimizer:
    params = list(params)
    # On CUDA, the fused kernel updates every parameter in one launch (the default foreach path takes several
    # per step); same algorithm, float32 rounding aside.
    fused = bool(params) and all(isinstance(p, torch.Tensor) and p.is_cuda for p in params)
    return torch.optim.Adam(params, lr=c.lr, betas=tuple(c.betas), eps=c.eps, weight_decay=c.weight_decay,
                            fused=fused or None)


@optimizers.register("rmsprop")
def _rmsprop(params, c: OptConfig) -> torch.optim.Optimizer:
    return torch.optim.RMSprop(params, lr=c.lr, eps=c.eps, weight_decay=c.weight_decay, momentum=c.momentum)


@optimizers.register("sgd")
def _sgd(params, c: OptConfig) -> torch.optim.Optimizer:
    return torch.optim.SGD(params, lr=c.lr, momentum=c.momentum, weight_decay=c.weight_decay)


# ---- EMA ---------------------------------------------------------------------------------------------------

class EMA:
    """Exponential moving average of the generators, with the decay given as a half-life in kimg.

    beta = 0.5 ** (batch / half_life_img), so the average halves the weight of old parameters every
    ``half_life`` images whatever the batch size (Karras et al. 2020, StyleGAN2-ADA ``ema_kimg``).
    """

    def __init__(self, nets: nn.ModuleDict, names: tuple[str, ...], half_life_kimg: float, rampup: float = 0.0):
        self.nets = nn.ModuleDict({n: copy.deepcopy(nets[n]).eval().requires_grad_(False) for n in names})
        self.half_life_kimg = half_life_kimg
        self.rampup = rampup

    def beta(self, batch: int, nimg: int) -> float:
        half_life_img = self.half_life_kimg * 1000
        if self.rampup > 0:
            half_life_img = min(half_life_img, nimg * self.rampup)
        return 0.5 ** (batch / max(half_life_img, 1e-8))

    @torch.no_grad()
    def update(self, source: nn.ModuleDict, batch: int, nimg: int) -> None:
        beta = self.beta(batch, nimg)
        for name, ema_net in self.nets.items():
            src = source[name]
            # One multi-tensor kernel per net rather than one per tensor.
            torch._foreach_lerp_(list(ema_net.parameters()), [p.detach() for p in src.parameters()],
                                 1.0 - beta)             # p_ema = beta * p_ema + (1 - beta) * p
            buffers = list(ema_net.buffers())
            if buffers:                                  # BN running stats etc. are copied, not averaged
                torch._foreach_copy_(buffers, list(src.buffers()))

    def state_dict(self) -> dict:
        return {n: m.state_dict() for n, m in self.nets.items()}

    def load_state_dict(self, state: dict) -> None:
        for n, s in state.items():
            self.nets[n].load_state_dict(s)


# ---- the training step -------------------------------------------------------------------------------------

@dataclass
class Trainer:
    """Everything a run updates; ``state_dict`` of this is the checkpoint's training state."""
    cfg: TrainConfig
    recipe: Recipe
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    stream: BatchStream
    ema: EMA | None
    device: torch.device
    nimg: int = 0
    step: int = 0
    lr_scale: float = 1.0                         # halved by each rollback after a non-finite loss
    best: dict | None = None                      # best metric value so far and its snapshot
    tick: TickStats = field(default_factory=TickStats)  # the tick's logged losses, on the device until the tick ends
    extractors: dict = field(default_factory=dict)  # feature extractors kept between evaluations (loaded once)

    @property
    def total_nimg(self) -> int:
        return int(round(self.cfg.kimg * 1000))

    def set_lr(self) -> None:
        factor = self.lr_scale * self.recipe.lr_multiplier(min(1.0, self.nimg / max(self.total_nimg, 1)))
        for opt, oc in ((self.opt_g, self.cfg.g_opt), (self.opt_d, self.cfg.d_opt)):
            for group in opt.param_groups:
                group["lr"] = oc.lr * factor

    def train_step(self, measure_grad_norm: bool = True) -> None:
        """k discriminator updates, one generator update, then the EMA (one "step").

        ``measure_grad_norm``: also log each player's global gradient norm (the loop asks for it on the last
        step of each tick: a sample per tick is enough to spot divergence and costs ~2% when done every step).
        """
        recipe, cfg = self.recipe, self.cfg
        autocast = torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=cfg.amp and self.device.type == "cuda")

        # -- Discriminator phase: d_steps updates of D on fresh real batches, generators frozen.
        recipe.set_requires_grad(generators=False, discriminators=True)
        for _ in range(cfg.d_steps):
            batch = next(self.stream)
            with autocast:
                d_out = recipe.d_loss(batch, self.step)
            self.opt_d.zero_grad(set_to_none=True)
            d_out["loss"].backward()
            if measure_grad_norm:
                d_out["D/grad_norm"] = grad_norm(self.opt_d)
            self.opt_d.step()
            recipe.after_d_step()
            self.nimg += cfg.batch_size
            self.tick.add("D", self.step, d_out)

        # -- Generator phase: one update of G through the frozen D, on the last real batch.
        recipe.set_requires_grad(generators=True, discriminators=False)
        with autocast:
            g_out = recipe.g_loss(batch, self.step)
        self.opt_g.zero_grad(set_to_none=True)
        g_out["loss"].backward()
        if measure_grad_norm:
            g_out["G/grad_norm"] = grad_norm(self.opt_g)
        self.opt_g.step()
        self.tick.add("G", self.step, g_out)

        # -- EMA of the generators.
        if self.ema is not None:
            self.ema.update(recipe.nets, cfg.batch_size * cfg.d_steps, self.nimg)
        self.step += 1

    def take_tick_stats(self) -> dict[str, float]:
        """Per-key means of the tick's logged values; starts the next tick."""
        return self.tick.take()

    def check_finite(self) -> int | None:
        """The first step of this tick whose D or G loss was NaN or infinite, or None."""
        return self.tick.first_nonfinite_step()

    # -- checkpoint state ----------------------------------------------------------------------------------
    def state_dict(self, info: DataInfo) -> dict:
        rng = {"torch": torch.get_rng_state()}
        if torch.cuda.is_available():
            rng["cuda"] = torch.cuda.get_rng_state_all()
        return {"config": to_dict(self.cfg), "data_info": info.to_dict(), "nimg": self.nimg, "step": self.step,
                "nets": self.recipe.state_dict(), "ema": self.ema.state_dict() if self.ema else None,
                "opt": {"G": self.opt_g.state_dict(), "D": self.opt_d.state_dict()}, "rng": rng,
                "stream": self.stream.state_dict(), "lr_scale": self.lr_scale, "best": self.best}

    def load_state_dict(self, ckpt: dict) -> None:
        self.recipe.load_state_dict(ckpt["nets"])
        if self.ema is not None and ckpt.get("ema"):
            self.ema.load_state_dict(ckpt["ema"])
        self.opt_g.load_state_dict(ckpt["opt"]["G"])
        self.opt_d.load_state_dict(ckpt["opt"]["D"])
        self.stream.load_state_dict(ckpt["stream"])
        self.nimg, self.step = int(ckpt["nimg"]), int(ckpt["step"])
        self.lr_scale, self.best = float(ckpt.get("lr_scale", 1.0)), ckpt.get("best")
        torch.set_rng_state(ckpt["rng"]["torch"])
        if "cuda" in ckpt["rng"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(ckpt["rng"]["cuda"])


def grad_norm(opt: torch.optim.Optimizer) -> torch.Tensor:
    """Global L2 norm of the gradients an optimiser is about to apply (a divergence diagnostic)."""
    grads = [p.grad for group in opt.param_groups for p in group["params"] if p.grad is not None]
    if not grads:
        return torch.zeros(())
    return torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} was requested but CUDA is not available here; use --device cpu or auto.")
    return torch.device(name)


def build(cfg: TrainConfig, device: torch.device | None = None, dataset: Any = None) -> tuple[Trainer, Any]:
    """Config -> dataset -> recipe (networks) -> optimisers -> EMA, all seeded by ``cfg.seed``.

    ``dataset`` replaces ``cfg.data`` with a dataset of your own (items and ``info`` as in gankit.data.base).
    """
    device = device or resolve_device(cfg.device)
    recipe_cls = recipes.get(cfg.recipe)
    if dataset is None:
        dataset = load_dataset(cfg.data, kinds=recipe_cls.data_kinds)
    check_data_kind(recipe_cls, cfg.recipe, dataset.info)
    torch.manual_seed(cfg.seed)
    recipe = recipe_cls.from_config(cfg, dataset.info).to(device)
    recipe.train()
    opt_g = optimizers.get(cfg.g_opt.name)(recipe.generator_params(), cfg.g_opt)
    opt_d = optimizers.get(cfg.d_opt.name)(recipe.discriminator_params(), cfg.d_opt)
    ema = EMA(recipe.nets, recipe.generator_names, cfg.ema_kimg, cfg.ema_rampup) if cfg.ema_kimg > 0 else None
    stream = BatchStream(dataset, cfg.batch_size, seed=cfg.seed, num_workers=cfg.data.num_workers, device=device)
    return Trainer(cfg, recipe, opt_g, opt_d, stream, ema, device), dataset


# ---- run directories ---------------------------------------------------------------------------------------

def new_run_dir(root: str | Path, cfg: TrainConfig) -> Path:
    """runs/00007-<preset>-<data>: numbered, created exclusively, never reused."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    data_name = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(cfg.data.spec.rstrip("/")).stem or cfg.data.spec)[:40]
    tag = re.sub(r"[^A-Za-z0-9_.-]+", "_", cfg.preset or cfg.recipe)
    while True:
        nums = [int(m.group(1)) for p in root.iterdir() if (m := re.match(r"^(\d{5})-", p.name))]
        run_dir = root / f"{(max(nums) + 1 if nums else 0):05d}-{tag}-{data_name}"
        try:
            run_dir.mkdir()
            return run_dir
        except FileExistsError:  # another process took this number: try the next
            continue


RESUME_CHANGEABLE = ("kimg", "tick_kimg", "snapshot_kimg", "snapshot_n", "keep_snapshots", "metrics", "metrics_kimg",
                     "metrics_n", "extractor", "on_nonfinite", "tensorboard", "device", "description")


def merge_resume_config(saved: TrainConfig, requested: TrainConfig | None, explicit: set[str]) -> TrainConfig:
    """The checkpoint's config with the schedule keys the user explicitly changed; anything else is an error."""
    if requested is None:
        return saved
    saved_d, req_d = to_dict(saved), to_dict(requested)
    for key in explicit:
        top = key.split(".")[0]
        if top not in RESUME_CHANGEABLE and _get(saved_d, key) != _get(req_d, key):
            raise ConfigError(f"Cannot change {key!r} when resuming: the run was trained with "
                              f"{_get(saved_d, key)!r}. Keys that may change on resume: {', '.join(RESUME_CHANGEABLE)}.")
    for key in RESUME_CHANGEABLE:
        if key in {k.split('.')[0] for k in explicit}:
            saved_d[key] = req_d[key]
    return from_dict(saved_d)


def _get(d: dict, dotted: str) -> Any:
    for part in dotted.split("."):
        if not isinstance(d, dict) or part not in d:
            return None
        d = d[part]
    return d


# ---- the training loop -------------------------------------------------------------------------------------

def train(cfg: TrainConfig | dict, out: str | Path = "runs", resume: str | Path | None = None,
          progress: bool = True, resume_overrides: set[str] | None = None) -> Path:
    """Train a model; returns the run directory. ``resume`` is a run directory or checkpoint to continue."""
    if isinstance(cfg, dict):
        cfg = from_dict(cfg)
    ckpt = None
    if resume is not None:
        ckpt = load_checkpoint(resume)
        cfg = merge_resume_config(from_dict(ckpt["config"]), cfg, resume_overrides or set())
        resume_path = Path(resume)
        run_dir = resume_path if resume_path.is_dir() else resume_path.parent
    else:
        from .config import validate
        validate(cfg)
    trainer, dataset = build(cfg)  # before making a run directory: bad data must not leave an empty run behind
    if ckpt is not None:
        trainer.load_state_dict(ckpt)
    else:
        run_dir = new_run_dir(out, cfg)
    return training_loop(trainer, dataset, run_dir, progress=progress, resumed=ckpt is not None)


def training_loop(trainer: Trainer, dataset: Any, run_dir: Path, progress: bool = True,
                  resumed: bool = False) -> Path:
    from tqdm import tqdm

    from .runlog import RunLog
    cfg, recipe = trainer.cfg, trainer.recipe
    info: DataInfo = dataset.info
    save_json(cfg, run_dir / "config.json")
    log = RunLog(run_dir, tensorboard=cfg.tensorboard)
    log.text(f"{'resumed' if resumed else 'started'} at kimg {trainer.nimg / 1000:.3f}: preset={cfg.preset!r} "
             f"recipe={cfg.recipe} data={info.name} ({info.kind}, {info.size} items) device={trainer.device}")
    with torch.random.fork_rng(devices=[]):  # the fixed snapshot inputs must not move the training RNG
        fixed = recipe.fixed_inputs(cfg.snapshot_n, cfg.seed, dataset)

    total = trainer.total_nimg
    tick_img, snap_img = int(cfg.tick_kimg * 1000), int(cfg.snapshot_kimg * 1000)
    metric_img = int(cfg.metrics_kimg * 1000) if cfg.metrics_kimg > 0 else 0
    next_tick = (trainer.nimg // tick_img + 1) * tick_img
    next_snap = (trainer.nimg // snap_img + 1) * snap_img
    next_metric = (trainer.nimg // metric_img + 1) * metric_img if metric_img else None
    if not resumed:
        save_checkpoint(trainer.state_dict(info), run_dir / "latest.pt")  # a good state to roll back to
    bar = tqdm(total=total / 1000, initial=min(trainer.nimg, total) / 1000, unit="kimg", disable=not progress,
               bar_format="{l_bar}{bar}| {n:.2f}/{total:.2f} kimg [{elapsed}<{remaining}{postfix}]")
    tick_start_time, tick_start_nimg = time.time(), trainer.nimg
    while trainer.nimg < total:
        trainer.set_lr()
        step_img = cfg.batch_size * cfg.d_steps
        trainer.train_step(measure_grad_norm=trainer.nimg + step_img >= min(next_tick, total))
        done = trainer.nimg >= total
        if trainer.nimg < next_tick and not done:
            continue

        # -- Tick: stats line, non-finite check.
        bad_step = trainer.check_finite()
        if bad_step is not None:
            if _handle_nonfinite(trainer, bad_step, run_dir, log):
                tick_start_time, tick_start_nimg = time.time(), trainer.nimg
                next_tick = (trainer.nimg // tick_img + 1) * tick_img
                next_snap = (trainer.nimg // snap_img + 1) * snap_img
                continue
        now = time.time()
        stats = {"kimg": round(trainer.nimg / 1000, 4), "step": trainer.step,
                 "img_per_s": round((trainer.nimg - tick_start_nimg) / max(now - tick_start_time, 1e-9), 2),
                 "lr_scale": trainer.lr_scale, **trainer.take_tick_stats()}
        log.stats(stats)
        bar.update(min(trainer.nimg, total) / 1000 - bar.n)
        bar.set_postfix_str(", ".join([f"{stats['img_per_s']:.0f} img/s"] +
                                      [f"{k}={v:.3g}" for k, v in stats.items() if k.endswith("loss")]))
        tick_start_time, tick_start_nimg = time.time(), trainer.nimg
        next_tick = (trainer.nimg // tick_img + 1) * tick_img

        # -- Snapshot: sample grid + checkpoint; metrics.
        with torch.random.fork_rng(devices=[trainer.device] if trainer.device.type == "cuda" else []):
            if trainer.nimg >= next_snap or done:
                _snapshot(trainer, fixed, dataset, run_dir, log)
                next_snap = (trainer.nimg // snap_img + 1) * snap_img
            want_metrics = cfg.metrics and ((next_metric is not None and trainer.nimg >= next_metric) or done)
            if want_metrics:
                _evaluate(trainer, info, run_dir, log)
                if next_metric is not None:
                    next_metric = (trainer.nimg // metric_img + 1) * metric_img
                save_checkpoint(trainer.state_dict(info), run_dir / "latest.pt")  # carries 'best'
            tick_start_time = time.time()  # snapshot/metric time is not training time
    bar.close()
    log.text(f"done at kimg {trainer.nimg / 1000:.3f}; samples and checkpoints in {run_dir}")
    log.close()
    return run_dir


def _sampling_nets(trainer: Trainer) -> nn.ModuleDict:
    """The EMA generators where kept, else the trained ones; discriminators as trained."""
    nets = nn.ModuleDict(dict(trainer.recipe.nets.items()))
    if trainer.ema is not None:
        for name, net in trainer.ema.nets.items():
            nets[name] = net
    return nets


def _snapshot(trainer: Trainer, fixed: dict, dataset: Any, run_dir: Path, log: Any) -> None:
    from .sample import save_grid, scatter_png
    cfg, info = trainer.cfg, dataset.info
    # Whole kimg (floor) as StyleGAN does; three decimals where that name is taken (snapshots less than a kimg
    # apart, or the final one), so no snapshot ever replaces another.
    kimg_tag = f"{trainer.nimg // 1000:06d}"
    if (run_dir / f"samples-{kimg_tag}.png").exists() or (run_dir / f"ckpt-{kimg_tag}.pt").exists():
        kimg_tag = f"{trainer.nimg / 1000:010.3f}"
    nets = _sampling_nets(trainer)
    modes = {n: m.training for n, m in nets.items()}
    nets.eval()
    try:
        shot = trainer.recipe.snapshot(fixed, nets)
    finally:
        for n, m in nets.items():
            m.train(modes[n])
    png = run_dir / f"samples-{kimg_tag}.png"
    if "points" in shot:
        real = dataset.get_batch(torch.arange(min(len(dataset), 2000)))["x"] if hasattr(dataset, "get_batch") else None
        scatter_png(shot["points"], png, real=real, centers=info.extras.get("centers"),
                    title=f"{cfg.preset or cfg.recipe} on {info.name}, kimg {trainer.nimg / 1000:.1f}")
    else:
        save_grid(shot["grid"], png, nrow=shot.get("nrow"))
        log.image("samples", shot["grid"], trainer.nimg)
    state = trainer.state_dict(info)
    if cfg.keep_snapshots:
        save_checkpoint(state, run_dir / f"ckpt-{kimg_tag}.pt")
    save_checkpoint(state, run_dir / "latest.pt")
    log.text(f"snapshot kimg {trainer.nimg / 1000:.3f}: {png.name}")


def _evaluate(trainer: Trainer, info: DataInfo, run_dir: Path, log: Any) -> None:
    """The same metrics as ``gankit eval``, on the EMA generators: noise-driven models against the training data,
    translators (``sampler_kind == "translate"``) on the held-out split of their data (``evaluate_translation``)."""
    from .metrics import evaluate, evaluate_translation
    from .metrics import metrics as metric_specs
    cfg = trainer.cfg
    nets = _sampling_nets(trainer)
    if trainer.recipe.sampler_kind == "translate":
        result = evaluate_translation(trainer.recipe, nets, cfg.data, cfg.metrics, n=cfg.metrics_n,
                                      device=trainer.device, extractor=cfg.extractor, extractors=trainer.extractors)
    else:
        data_options = {"root": cfg.data.root, "split": cfg.data.split}
        result = evaluate(cfg.metrics, gen=trainer.recipe.sampler(nets), ref=cfg.data.spec, n_gen=cfg.metrics_n,
                          extractor=cfg.extractor, device=trainer.device, seed=cfg.seed,
                          extractors=trainer.extractors, data_options=data_options)
    values = result["metrics"]
    record = {"kimg": round(trainer.nimg / 1000, 4), **{k: v for k, v in values.items() if _is_number(v)}}
    log.metrics(record)
    # The first metric listed decides "best", by its headline number and the direction its spec declares
    # (distances and errors better low, scores and coverage high).
    spec = metric_specs.get(cfg.metrics[0].partition("@")[0])
    key = spec.headline(values)
    if key is not None and _is_number(values[key]):
        value = float(values[key])
        best = trainer.best["value"] if trainer.best is not None else None
        if best is None or (value > best if spec.higher_is_better else value < best):
            trainer.best = {"metric": key, "value": value, "kimg": record["kimg"]}
            atomic_write_text(run_dir / "best.json", json.dumps(trainer.best, indent=2) + "\n")


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _handle_nonfinite(trainer: Trainer, bad_step: int, run_dir: Path, log: Any) -> bool:
    """Stop with a message, or (on_nonfinite=rollback) reload latest.pt and halve the learning rates."""
    latest = run_dir / "latest.pt"
    ckpt = load_checkpoint(latest)
    good_kimg = ckpt["nimg"] / 1000
    if trainer.cfg.on_nonfinite == "rollback" and trainer.lr_scale > 1e-3:
        lr_scale = trainer.lr_scale * 0.5
        trainer.load_state_dict(ckpt)
        trainer.lr_scale = lr_scale
        trainer.tick.clear()
        log.text(f"non-finite loss at step {bad_step}: rolled back to {latest} (kimg {good_kimg:.3f}) and halved "
                 f"the learning rates (scale {lr_scale:g})")
        return True
    msg = (f"Training diverged: a loss became NaN or infinite at step {bad_step}. The last good checkpoint is "
           f"{latest} (kimg {good_kimg:.3f}). Try a lower learning rate, a gradient penalty, or "
           f"--set on_nonfinite=rollback to roll back and halve the learning rates automatically.")
    log.text(msg)
    raise TrainingDiverged(msg)
