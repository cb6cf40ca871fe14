"""Size and build time of the run report for long runs (the size budget at work).

    python benchmarks/report_size.py [--no-write]

Synthetic run directories (no training): N ticks of stats.jsonl with 12 logged keys and S snapshots of a
290 x 290 PNG grid (random 8 x 8 tiles, like a 64-sample 32 px grid), for growing N and S. Reports the HTML size
and the time of one `build_report` (what the training loop pays at every snapshot). Results go to
docs/benchmarks.md (section report_size).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gankit.report import build_report  # noqa: E402


def make_run(root: Path, ticks: int, snapshots: int) -> Path:
    run = root / f"run-{ticks}-{snapshots}"
    run.mkdir()
    rng = np.random.default_rng(0)
    (run / "config.json").write_text(json.dumps({"preset": "dcgan", "recipe": "gan", "kimg": ticks * 0.1}))
    keys = ["D/loss", "G/loss", "D/adv", "D/real", "D/fake", "G/adv", "D/grad_norm", "G/grad_norm", "D/r1"]
    with open(run / "stats.jsonl", "w") as f:
        for i in range(1, ticks + 1):
            row = {"kimg": round(i * 0.1, 4), "step": i * 10, "img_per_s": 500.0, "lr_scale": 1.0}
            row.update({k: float(v) for k, v in zip(keys, rng.normal(size=len(keys)))})
            f.write(json.dumps(row) + "\n")
    lines = []
    for s in range(snapshots):
        kimg = ticks * 0.1 * (s + 1) / snapshots
        tiles = rng.integers(0, 256, (8, 8, 32, 32), dtype=np.uint8).transpose(0, 2, 1, 3).reshape(256, 256)
        name = f"samples-{s:06d}.png"
        Image.fromarray(np.pad(tiles, 17)).save(run / name)
        lines.append(f"2026-01-01 00:00:00 snapshot kimg {kimg:.3f}: {name}")
    (run / "log.txt").write_text("\n".join(lines) + "\n")
    return run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    rows = ["| ticks | snapshots | run's PNGs MiB | report MiB | build s (median of 3) |", "|---|---|---|---|---|"]
    with tempfile.TemporaryDirectory() as tmp:
        for ticks, snaps in ((100, 5), (1000, 25), (10000, 100), (50000, 400)):
            run = make_run(Path(tmp), ticks, snaps)
            pngs = sum(p.stat().st_size for p in run.glob("*.png")) / 2**20
            times = []
            for _ in range(3):
                t0 = time.perf_counter()
                text = build_report([run])
                times.append(time.perf_counter() - t0)
            size = len(text.encode()) / 2**20
            rows.append(f"| {ticks} | {snaps} | {pngs:.1f} | {size:.2f} | {sorted(times)[1]:.3f} |")
            print(rows[-1], flush=True)
    body = (f"`python benchmarks/report_size.py` on {platform.machine()} {os.cpu_count()}-core CPU (shared with "
            f"other jobs, load average {os.getloadavg()[0]:.1f}); random-noise grids, the worst case for PNG size. "
            f"Default budget: 1500 points per curve, 24 snapshots per series.\n\n" + "\n".join(rows) +
            "\n\nThe report stops growing once a run passes the budget: its size is the vendored uPlot (51 KB) plus "
            "24 grids plus 1500 rows per curve, whatever the run's length.")
    print(body)
    if not args.no_write:
        from _report import write_section
        write_section("report_size", "Run report size and build time (benchmarks/report_size.py)", body)


if __name__ == "__main__":
    main()
