"""Does synthetic data help a classifier trained on few real rows? Numbers for the survey's augmentation claim.

For each n in --n: n real training rows are drawn (seeded, stratified by the target) from a bundled table; a
CTGAN (the ``ctgan`` preset, ``--kimg`` long, no holdout: all n rows train it) is fitted on those n rows only;
then a random forest and a logistic regression are trained on (a) the n real rows and (b) the n real rows plus
m = --ratio x n synthetic rows, and both are scored on the same held-out real rows (never seen by either the
GAN or the classifier). Classifier scores are averaged over --clf-seeds.

    python benchmarks/augmentation.py [--data penguins] [--n 20,40,80] [--kimg 15] [--ratio 2] [--seeds 0]

Writes the table into docs/benchmarks.md (section "augmentation_<data>"). The class-conditional image part of
the issue (a cGAN on a few hundred MNIST digits) is not run by this script yet.
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
    p.add_argument("--no-report", action="store_true")
    args = p.parse_args()
    start = time.time()
    rows = run(args)
    text = report(rows, args, time.time() - start)
    print(text)
    if not args.no_report:
        write_section(f"augmentation_{args.data}", f"Augmentation with synthetic tables (CTGAN, {args.data})", text)


if __name__ == "__main__":
    main()
