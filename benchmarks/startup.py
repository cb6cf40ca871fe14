"""Start-up time of the CLI: `gankit --help` and `gankit presets` (target: under 1 s; issue 15).

    python benchmarks/startup.py [--rounds 7] [--baseline /path/to/older/gankit/checkout] [--no-write]

Each command runs in a fresh interpreter, rounds interleaved (so load from other jobs spreads over all of them);
the median wall time of each is reported next to the bare interpreter and `import torch`, which is what the
commands no longer pay. With --baseline, the same commands of another checkout (e.g. before this change) run in
the same rounds. Results go to docs/benchmarks.md (section startup).
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

TARGET_S = 1.0


def run_once(argv: list[str], pythonpath: Path) -> float:
    env = {**os.environ, "PYTHONPATH": str(pythonpath)}
    t0 = time.perf_counter()
    subprocess.run(argv, env=env, cwd=pythonpath, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--baseline", type=Path, default=None, help="another gankit checkout to time alongside")
    ap.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    args = ap.parse_args()
    py = sys.executable
    cases = {"python -c pass (interpreter)": ([py, "-c", "pass"], ROOT),
             "python -c 'import torch'": ([py, "-c", "import torch"], ROOT),
             "gankit --help": ([py, "-m", "gankit", "--help"], ROOT),
             "gankit presets": ([py, "-m", "gankit", "presets"], ROOT),
             "gankit sample --help (builds the families' options: imports torch)":
                 ([py, "-m", "gankit", "sample", "--help"], ROOT)}
    if args.baseline:
        cases["baseline: gankit --help"] = ([py, "-m", "gankit", "--help"], args.baseline)
        cases["baseline: gankit presets"] = ([py, "-m", "gankit", "presets"], args.baseline)
    times: dict[str, list[float]] = {k: [] for k in cases}
    for name, (argv, path) in cases.items():       # warm the file cache once
        run_once(argv, path)
    load_before = os.getloadavg()[0]
    for r in range(args.rounds):
        for name, (argv, path) in cases.items():
            times[name].append(run_once(argv, path))
        print(f"round {r + 1}/{args.rounds} done", flush=True)
    floor = statistics.median(times["python -c pass (interpreter)"])
    rows = ["| command | median s | min s | max s | median - interpreter s |", "|---|---|---|---|---|"]
    for name, ts in times.items():
        rows.append(f"| {name} | {statistics.median(ts):.3f} | {min(ts):.3f} | {max(ts):.3f} | "
                    f"{statistics.median(ts) - floor:.3f} |")
    verdict = []
    for name in ("gankit --help", "gankit presets"):
        med = statistics.median(times[name])
        verdict.append(f"`{name}` median {med:.2f} s: {'within' if med < TARGET_S else 'OVER'} the {TARGET_S:.0f} s "
                       f"target")
    baseline = f" --baseline {args.baseline}" if args.baseline else ""
    body = (f"`python benchmarks/startup.py --rounds {args.rounds}{baseline}` on {platform.machine()} "
            f"{os.cpu_count()}-core CPU, Python {platform.python_version()} (fresh interpreter per run, rounds "
            f"interleaved; machine shared with other jobs, 1-minute load average {load_before:.1f} before and "
            f"{os.getloadavg()[0]:.1f} after, so absolute times are noisy: compare within a row set).\n\n" + "\n".join(rows)
            + "\n\n" + "; ".join(verdict) + ".\n\n`gankit --help` and `gankit presets` import neither torch nor "
            "numpy (tests/test_startup.py checks `sys.modules`); `sample` and `interpolate` are built on first use "
            "because their flags come from the families' registrations."
            + (" The baseline is the checkout before this change (the CLI imported every family, hence torch, "
               "to build `sample`'s flags)." if args.baseline else ""))
    print(body)
    if not args.no_write:
        from _report import write_section
        write_section("startup", "CLI start-up (benchmarks/startup.py)", body)


if __name__ == "__main__":
    main()
