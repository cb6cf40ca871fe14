"""The training loop: steps, ticks, snapshots, periodic metrics, non-finite handling, and ``train``.

    train(cfg) -> resolve the world and the device -> build -> (resume | init) -> training_loop -> run dir

Per tick: one ``stats.jsonl`` record (kimg, images/s, every logged loss, the strategies' own numbers) and the
progress bar. Per snapshot: the recipe's artefacts (``samples-<kimg>.png`` ...), ``ckpt-<kimg>.pt`` and
``latest.pt``. With ``metrics``, the default sampler's ``evaluate`` appends to ``metrics.jsonl`` and keeps
``best.json``. Snapshots and metrics run inside ``torch.random.fork_rng``, so they never move the training RNG.
Under torchrun every rank runs this loop; only rank 0 writes files (``RunLog`` and ``_save``).
"""
from __future__ import annotations

import json
import math
import shutil
import time
import warnings
from pathlib import Path
from typing import Any

import torch

from ..checkpoint import REQUIRED_KEYS, TRAINING_STATE_KEYS, load_checkpoint, save_checkpoint
from ..config import TrainConfig, from_dict, save_json
from ..data.base import DataInfo
from ..errors import ConfigError, TrainingDiverged, TrainingInterrupted
from ..io import atomic_write_text
from ..report import REPORT_NAME, refresh_run_report
from ..runlog import RunLog
from ..samplers import EvalRequest
from . import distributed
from .build import build, resolve_device
from .configure import explain_first_step_failure, validate
from .interrupt import StopOnSignal
from .rundir import merge_resume_config, new_run_dir
from .step import Trainer


def train(cfg: TrainConfig | dict, out: str | Path = "runs", resume: str | Path | None = None,
          progress: bool = True, resume_overrides: set[str] | None = None, dataset: Any = None,
          command: str | None = None) -> Path:
    """Train a model; returns the run directory. ``resume`` is a run directory or checkpoint to continue.
    ``command`` (the CLI's command line) is recorded in log.txt for the report."""
    if isinstance(cfg, dict):
        cfg = from_dict(cfg)
    ckpt = None
    if resume is not None:
        ckpt = load_checkpoint(resume, require=REQUIRED_KEYS + TRAINING_STATE_KEYS)
        cfg = merge_resume_config(from_dict(ckpt["config"]), cfg, resume_overrides or set())
        resume_path = Path(resume)
        run_dir = resume_path if resume_path.is_dir() else resume_path.parent
    validate(cfg)
    world = distributed.init_world(resolve_device(cfg.device).type)
    try:
        device = distributed.device_for(world, resolve_device(cfg.device))
        # Build before making a run directory: bad data must not leave an empty run behind.
        trainer, dataset = build(cfg, device=device, dataset=dataset, world=world)
        if ckpt is not None:
            trainer.load_state_dict(ckpt)
        # Metric prerequisites (the weights file, enough samples) before the first step, fresh or resumed.
        _prepare_metrics(trainer, dataset)
        if ckpt is None:
            run_dir = Path(distributed.broadcast_object(str(new_run_dir(out, cfg)) if world.is_main else None, world))
        try:
            with StopOnSignal(message=world.is_main) as stop:    # Ctrl-C: finish the step, checkpoint, stop
                return training_loop(trainer, dataset, run_dir, progress=progress and world.is_main,
                                     resumed=ckpt is not None, rank=world.rank, stop=stop, command=command)
        except ConfigError:
            # The networks could not run their first step: no training happened, so the run this call just
            # created (config.json, log.txt, the initial latest.pt) is removed, as a failed build leaves none.
            if ckpt is None and trainer.step == 0 and world.is_main:
                shutil.rmtree(run_dir, ignore_errors=True)
            raise
    finally:
        distributed.shutdown(world)


def training_loop(trainer: Trainer, dataset: Any, run_dir: Path, progress: bool = True, resumed: bool = False,
                  rank: int = 0, stop: StopOnSignal | None = None, command: str | None = None) -> Path:
    from tqdm import tqdm
    cfg, recipe = trainer.cfg, trainer.recipe
    info: DataInfo = dataset.info
    main = rank == 0
    if main:
        save_json(cfg, run_dir / "config.json")
    log = RunLog(run_dir, tensorboard=cfg.tensorboard, rank=rank)
    log.text(f"{'resumed' if resumed else 'started'} at kimg {trainer.nimg / 1000:.3f}: preset={cfg.preset!r} "
             f"recipe={cfg.recipe} data={info.name} ({info.kind}, {info.size} items) device={trainer.device}"
             + (f" ranks={trainer.world_size}" if trainer.world_size > 1 else "")
             + (f" strategies={','.join(s.name for s in trainer.strategies)}" if trainer.strategies.items else ""))
    if command:
        log.text(f"command: {command}")
    with torch.random.fork_rng(devices=[]):  # the fixed snapshot inputs must not move the training RNG
        fixed = recipe.fixed_inputs(cfg.snapshot_n, cfg.seed, dataset)

    # -- Schedule, in images: ticks (stats), snapshots (artefacts + checkpoint), metrics.
    total = trainer.total_nimg
    tick_img, snap_img = int(cfg.tick_kimg * 1000), int(cfg.snapshot_kimg * 1000)
    metric_img = int(cfg.metrics_kimg * 1000) if cfg.metrics_kimg > 0 else 0
    next_tick = (trainer.nimg // tick_img + 1) * tick_img
    next_snap = (trainer.nimg // snap_img + 1) * snap_img
    next_metric = (trainer.nimg // metric_img + 1) * metric_img if metric_img else None
    if not resumed:
        _save(trainer, info, run_dir / "latest.pt")  # a good state to roll back to
    bar = tqdm(total=total / 1000, initial=min(trainer.nimg, total) / 1000, unit="kimg", disable=not progress,
               bar_format="{l_bar}{bar}| {n:.2f}/{total:.2f} kimg [{elapsed}, ETA {remaining}{postfix}]")
    if progress:
        bar.write(f"run directory {run_dir}\nreport        {run_dir / REPORT_NAME} (refreshed at every snapshot)")
    latest_metric = ""
    tick_start_time, tick_start_nimg = time.time(), trainer.nimg
    first_of_tick, first_step = True, True
    stop = stop or StopOnSignal()      # not installed: never requested (train() installs the handlers)
    while trainer.nimg < total:
        # -- One step; the first of each tick also measures gradient norms (a sample per tick suffices).
        if first_step:    # what goes wrong in the first step is a config the networks cannot run (exit 2)
            try:
                trainer.train_step(measure_grad_norm=first_of_tick)
            except (RuntimeError, ValueError) as e:
                error = explain_first_step_failure(cfg, e)
                log.text(str(error))
                log.close()
                raise error from e
            first_step = False
        else:
            trainer.train_step(measure_grad_norm=first_of_tick)
        first_of_tick = False
        # -- Ctrl-C / SIGTERM: this step is complete; checkpoint it and stop (every rank agrees).
        if stop.requested_on_any_rank(trainer.world):
            _save_interrupted(trainer, info, run_dir, log, stop.requested or "a signal on another rank")
        done = trainer.nimg >= total
        if trainer.nimg < next_tick and not done:
            continue

        # -- Tick: the non-finite check (all ranks agree), then the stats line.
        first_of_tick = True
        bad_step = _first_bad_step(trainer)
        if bad_step is not None:
            if _handle_nonfinite(trainer, bad_step, run_dir, log):
                tick_start_time, tick_start_nimg = time.time(), trainer.nimg
                next_tick = (trainer.nimg // tick_img + 1) * tick_img
                next_snap = (trainer.nimg // snap_img + 1) * snap_img
                continue
        now = time.time()
        stats = {"kimg": round(trainer.nimg / 1000, 4), "step": trainer.step,
                 "img_per_s": round((trainer.nimg - tick_start_nimg) / max(now - tick_start_time, 1e-9), 2),
                 "lr_scale": trainer.lr_scale, **_tick_stats(trainer)}
        log.stats(stats)
        bar.update(min(trainer.nimg, total) / 1000 - bar.n)
        bar.set_postfix_str(", ".join([f"{stats['img_per_s']:.0f} img/s"] +
                                      [f"{k}={v:.3g}" for k, v in stats.items() if k.endswith("loss")] +
                                      ([latest_metric] if latest_metric else [])))
        tick_start_time, tick_start_nimg = time.time(), trainer.nimg
        next_tick = (trainer.nimg // tick_img + 1) * tick_img

        # -- Snapshot: the recipe's artefacts + checkpoint; metrics.
        with torch.random.fork_rng(devices=[trainer.device] if trainer.device.type == "cuda" else []):
            snapped = trainer.nimg >= next_snap or done
            if snapped:
                _snapshot(trainer, fixed, info, run_dir, log)
                next_snap = (trainer.nimg // snap_img + 1) * snap_img
            want_metrics = cfg.metrics and ((next_metric is not None and trainer.nimg >= next_metric) or done)
            if want_metrics:
                latest_metric = _evaluate(trainer, run_dir, log)
                if next_metric is not None:
                    next_metric = (trainer.nimg // metric_img + 1) * metric_img
                _save(trainer, info, run_dir / "latest.pt")  # carries 'best'
            if (snapped or want_metrics) and main:
                _refresh_report(run_dir, log)
            tick_start_time = time.time()  # snapshot/metric time is not training time
    bar.close()
    log.text(f"done at kimg {trainer.nimg / 1000:.3f}; samples and checkpoints in {run_dir}")
    log.close()
    return run_dir


def _save(trainer: Trainer, info: DataInfo, path: Path) -> None:
    """Checkpoints are written by rank 0 only; the other ranks wait so that none reads a half-written state."""
    world = trainer.world
    if world.is_main:
        save_checkpoint(trainer.state_dict(info), path)
    distributed.barrier(world)


def _prepare_metrics(trainer: Trainer, dataset: Any) -> None:
    """What the training-time metrics need (weights file, sample counts), checked before the first step; the
    extractors are kept in the trainer. Rank 0 first (a weights download happens once), then the others."""
    cfg = trainer.cfg
    if not cfg.metrics:
        return
    sampler = trainer.recipe.samplers(trainer.sampling_nets())["default"]
    request = EvalRequest(metrics=cfg.metrics, data=cfg.data, n=cfg.metrics_n, seed=cfg.seed,
                          extractor=cfg.extractor, device=trainer.device, extractors=trainer.extractors,
                          ref_size=getattr(dataset.info, "size", None) or None)
    world = trainer.world
    if world.is_main:
        sampler.prepare(request)
    distributed.barrier(world)
    if not world.is_main:
        sampler.prepare(request)


def _save_interrupted(trainer: Trainer, info: DataInfo, run_dir: Path, log: Any, signal_name: str) -> None:
    """After a signal: the completed step's state to latest.pt (rank 0, once every rank has finished the step),
    unless a loss of this tick was non-finite (latest.pt then keeps the last good state); then stop."""
    latest = run_dir / "latest.pt"
    distributed.barrier(trainer.world)
    bad_step = _first_bad_step(trainer)
    where = f"kimg {trainer.nimg / 1000:.3f} (step {trainer.step})"
    if bad_step is None:
        _save(trainer, info, latest)
        msg = (f"Interrupted ({signal_name}) at {where}: saved {latest}. Continue the same run with "
               f"`gankit train --resume {run_dir}`.")
    else:
        msg = (f"Interrupted ({signal_name}) at {where}, after a non-finite loss at step {bad_step}: {latest} "
               f"keeps the last good state (kimg {load_checkpoint(latest)['nimg'] / 1000:.3f}).")
    log.text(msg)
    log.close()
    raise TrainingInterrupted(msg, run_dir=run_dir, checkpoint=latest)


def _first_bad_step(trainer: Trainer) -> int | None:
    """The first non-finite step of the tick on any rank (every rank takes the same decision)."""
    steps = [s for s in distributed.all_gather_objects(trainer.check_finite(), trainer.world) if s is not None]
    return min(steps) if steps else None


def _tick_stats(trainer: Trainer) -> dict[str, float]:
    """The tick's means, averaged over the ranks under DDP."""
    world = trainer.world
    stats = trainer.take_tick_stats()
    if not world.enabled:
        return stats
    keys = sorted(set().union(*distributed.all_gather_objects(sorted(stats), world)))
    values = torch.tensor([stats.get(k, float("nan")) for k in keys], dtype=torch.float64,
                          device=trainer.device if trainer.device.type == "cuda" else "cpu")
    distributed.all_reduce_mean_(values, world)
    return dict(zip(keys, values.tolist()))


def _snapshot(trainer: Trainer, fixed: dict, info: DataInfo, run_dir: Path, log: Any) -> None:
    # Whole kimg (floor) as StyleGAN does; three decimals where that name is taken (snapshots less than a kimg
    # apart, or the final one), so no snapshot ever replaces another.
    cfg = trainer.cfg
    kimg_tag = f"{trainer.nimg // 1000:06d}"
    if list(run_dir.glob(f"samples-{kimg_tag}.*")) or (run_dir / f"ckpt-{kimg_tag}.pt").exists():
        kimg_tag = f"{trainer.nimg / 1000:010.3f}"
    if trainer.rank == 0:
        nets = trainer.sampling_nets()
        modes = {n: m.training for n, m in nets.items()}
        nets.eval()
        try:
            artefacts = trainer.recipe.snapshot(fixed, nets)
        finally:
            for n, m in nets.items():
                m.train(modes[n])
        written = [a.write(run_dir / f"{a.name}-{kimg_tag}", log, trainer.nimg) for a in artefacts]
    state_path = run_dir / f"ckpt-{kimg_tag}.pt"
    if cfg.keep_snapshots:
        _save(trainer, info, state_path)
    _save(trainer, info, run_dir / "latest.pt")
    if trainer.rank == 0:
        log.text(f"snapshot kimg {trainer.nimg / 1000:.3f}: {', '.join(p.name for p in written)}")


def _refresh_report(run_dir: Path, log: Any) -> None:
    """Rewrite run_dir/report.html (atomically); a report that fails is a warning, never the end of a run."""
    error = refresh_run_report(run_dir)
    if error is not None:
        log.text(f"warning: {REPORT_NAME} not refreshed: {error}")
        warnings.warn(f"{REPORT_NAME} not refreshed ({error}); training goes on.", RuntimeWarning, stacklevel=2)


def _evaluate(trainer: Trainer, run_dir: Path, log: Any) -> str:
    """The same metrics as ``gankit eval``, through the recipe's default sampler on the EMA networks: a noise
    sampler against the training data, a translator on the held-out split of its data."""
    from ..metrics import metrics as metric_specs
    cfg = trainer.cfg
    # Every rank takes part (a noise sampler's extraction is sharded over the ranks and its statistics merged);
    # every rank gets the same numbers, rank 0 writes them.
    sampler = trainer.recipe.samplers(trainer.sampling_nets())["default"]
    shard = trainer.world.metrics_shard()      # None for one process
    result = sampler.evaluate(EvalRequest(metrics=cfg.metrics, data=cfg.data, n=cfg.metrics_n, seed=cfg.seed,
                                          extractor=cfg.extractor, device=trainer.device,
                                          extractors=trainer.extractors, shard=shard))
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
            if trainer.rank == 0:
                atomic_write_text(run_dir / "best.json", json.dumps(trainer.best, indent=2) + "\n")
    return f"{key}={float(values[key]):.4g}" if key is not None and _is_number(values[key]) else ""


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
