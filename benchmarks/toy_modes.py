"""Mode coverage on the 2-D toys: what `gankit train --preset P --data ring8|grid25` gives with the defaults.

Each run is exactly the preset's resolved config (its values for vector data included) with only the seed
changed, trained by ``gankit.train`` on one CPU thread. The final checkpoint's generator (the EMA copy where
the preset keeps one) then draws ``--n`` samples, scored by the VEEGAN / PacGAN protocol
(``gankit.metrics.toy.toy_metrics``: modes covered, share of samples within 3 std of a centre, reverse KL of the
mode histogram to uniform). The raw (non-EMA) generator's high-quality share is listed beside it.

    python benchmarks/toy_modes.py [--presets gan,wgan-gp] [--data ring8,grid25] [--seeds 0,1,2] [--jobs 2]
                                   [--more dcgan,lsgan,hinge,cgan,wgan --more-data grid25 --more-seeds 0]

Writes the table into docs/benchmarks.md (section "toy_modes") and, with --images, the first seed's scatter
plots of --presets to docs/images/toy_<preset>_<data>.png.
"""
from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import write_section  # noqa: E402

IMAGES = Path(__file__).resolve().parent.parent / "docs" / "images"
SAMPLE_SEED = 12345  # latents of the scored samples (not the training seed)


def run_one(preset: str, data: str, seed: int, n: int, out: str, kimg: float = 0.0) -> dict:
    """Train one preset on one toy with one seed; score the final generator. Runs in a worker process."""
    import torch
    torch.set_num_threads(1)
    import gankit
    from gankit.loading import load_recipe
    from gankit.metrics.toy import toy_metrics

    overrides = {"data.spec": data, "seed": seed, **({"kimg": kimg} if kimg > 0 else {})}
    cfg = gankit.resolve(preset, overrides=overrides)
    start = time.perf_counter()
    run_dir = gankit.train(cfg, out=out, progress=False)
    wall = time.perf_counter() - start
    ckpt = run_dir / "latest.pt"
    _, _, info, _ = load_recipe(ckpt)
    centers, std = info.extras["centers"], float(info.extras["std"])
    scores = toy_metrics(gankit.sample(gankit.load_generator(ckpt), n, seed=SAMPLE_SEED), centers, std)
    raw = toy_metrics(gankit.sample(gankit.load_generator(ckpt, ema=False), n, seed=SAMPLE_SEED), centers, std)
    d_steps_per_g = cfg.d_steps
    return {"preset": preset, "data": data, "seed": seed, "modes": scores["modes"], "modes_total": len(centers),
            "high_quality": scores["high_quality"], "reverse_kl": scores["reverse_kl"],
            "raw_high_quality": raw["high_quality"], "ema": cfg.ema_kimg > 0, "wall_s": wall,
            "g_steps": int(round(cfg.kimg * 1000)) // (cfg.batch_size * d_steps_per_g),
            "png": str(sorted(run_dir.glob("samples-*.png"))[-1]), "cfg": cfg}


def describe(cfg) -> str:
    """The resolved values that matter for the toys, in one line."""
    o = cfg.opts
    extra = ", ".join(f"{k} {o[k]}" for k in ("gp_weight", "r1_gamma", "clip") if o.get(k))
    g_norm = cfg.G.vector_kwargs.get("norm", "batch")
    betas = f", betas {tuple(cfg.opt["G"].betas)}" if cfg.opt["G"].name == "adam" else ""
    return (f"loss {o.get('loss')}, z_dim {o.get('z_dim')}{', ' + extra if extra else ''}; batch {cfg.batch_size}, "
            f"{cfg.d_steps} D step(s) per G step, kimg {cfg.kimg:g}; {cfg.opt["G"].name} lr G {cfg.opt["G"].lr:g} / "
            f"D {cfg.opt["D"].lr:g}{betas}; G MLP norm {g_norm}, init {cfg.G.init}; EMA half-life {cfg.ema_kimg:g} kimg")


def verdict(rows: list[dict], threshold: float = 0.9) -> str:
    """Which (preset, data) reached every mode with >= threshold high-quality samples in every seed."""
    groups: dict[tuple[str, str], list[dict]] = {}
    for r in rows:
        groups.setdefault((r["preset"], r["data"]), []).append(r)
    met = [f"{p} on {d} (lowest {min(r['high_quality'] for r in rs):.3f})" for (p, d), rs in groups.items()
           if all(r["modes"] == r["modes_total"] and r["high_quality"] >= threshold for r in rs)]
    text = (f"Every mode and >= {threshold:.0%} high-quality samples in every seed: "
            f"{', '.join(met) if met else 'none'}.")
    if any(r["preset"] == "cgan" for r in rows):
        text += (" cgan is given each point's mode as its class label and sampling cycles through the labels, so "
                 "its coverage holds by construction: its row checks the conditional path.")
    return text


def summarise(rows: list[dict]) -> str:
    def mean_std(values: list[float], fmt: str) -> str:
        if len(values) == 1:
            return format(values[0], fmt)
        return f"{format(statistics.mean(values), fmt)} ± {format(statistics.stdev(values), fmt)}"

    lines = ["| preset | data | modes (per seed) | high-quality share | reverse KL | high-quality, raw G | "
             "G steps | wall time per run |",
             "|---|---|---|---|---|---|---|---|"]
    groups: dict[tuple[str, str], list[dict]] = {}
    for r in rows:
        groups.setdefault((r["preset"], r["data"]), []).append(r)
    for (preset, data), rs in groups.items():
        rs.sort(key=lambda r: r["seed"])
        modes = ", ".join(str(r["modes"]) for r in rs)
        lines.append(
            f"| {preset} | {data} | {modes} of {rs[0]['modes_total']} | "
            f"{mean_std([r['high_quality'] for r in rs], '.3f')} | {mean_std([r['reverse_kl'] for r in rs], '.3f')} | "
            f"{mean_std([r['raw_high_quality'] for r in rs], '.3f') if rs[0]['ema'] else '(no EMA)'} | "
            f"{rs[0]['g_steps']} | {mean_std([r['wall_s'] for r in rs], '.0f')} s |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--presets", default="gan,wgan-gp")
    ap.add_argument("--data", default="ring8,grid25")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--more", default="", help="further presets, run on --more-data with --more-seeds")
    ap.add_argument("--more-data", default="grid25")
    ap.add_argument("--more-seeds", default="0")
    ap.add_argument("--kimg", type=float, default=0.0, help="override the length (a quick check, not the defaults)")
    ap.add_argument("--n", type=int, default=2500, help="samples scored per run (PacGAN: 2500)")
    ap.add_argument("--jobs", type=int, default=2, help="runs at once, one CPU thread each")
    ap.add_argument("--images", action="store_true",
                    help="copy the first seed's scatter plots of --presets (not --more) to docs/images/")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    presets, datas = args.presets.split(","), args.data.split(",")
    seeds = [int(s) for s in args.seeds.split(",")]
    jobs = [(p, d, s) for p in presets for d in datas for s in seeds]
    if args.more:
        jobs += [(p, d, int(s)) for p in args.more.split(",") for d in args.more_data.split(",")
                 for s in args.more_seeds.split(",")]
    load_before = os.getloadavg()[0]
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as out, \
            ProcessPoolExecutor(args.jobs, mp_context=get_context("spawn")) as pool:
        futures = [pool.submit(run_one, p, d, s, args.n, out, args.kimg) for p, d, s in jobs]
        rows = []
        for f in futures:
            r = f.result()
            rows.append(r)
            print(f"{r['preset']:8s} {r['data']:7s} seed {r['seed']}: {r['modes']}/{r['modes_total']} modes, "
                  f"high-quality {r['high_quality']:.3f} (raw G {r['raw_high_quality']:.3f}), "
                  f"reverse KL {r['reverse_kl']:.3f}, {r['wall_s']:.0f} s", flush=True)
            if args.images and r["preset"] in presets and r["seed"] == seeds[0]:
                IMAGES.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(r["png"], IMAGES / f"toy_{r['preset']}_{r['data']}.png")
    total = time.perf_counter() - start
    import torch
    configs = {}
    for r in rows:
        configs.setdefault(r["preset"], describe(r["cfg"]))
    text = "\n".join([
        f"Preset defaults for vector data (only the seed changes{'; LENGTH OVERRIDDEN: kimg ' + str(args.kimg) if args.kimg else ''}), "
        f"{args.n} samples from the "
        f"final generator (its EMA copy where kept). Protocol of VEEGAN / PacGAN (Srivastava et al. 2017; Lin et "
        f"al. 2018, sec. 5.1): a sample is high-quality within 3 std of its nearest centre; a mode is covered when "
        f"it is the nearest centre of at least one high-quality sample; reverse KL of the high-quality mode "
        f"histogram to uniform.",
        "",
        summarise(rows),
        "",
        verdict(rows),
        "",
        *[f"- `{p}`: {c}" for p, c in configs.items()],
        "",
        f"Machine: {platform.machine()} CPU, {os.cpu_count()} cores shared with other jobs (load average "
        f"{load_before:.1f} at the start, {os.getloadavg()[0]:.1f} at the end), {args.jobs} runs at once, one "
        f"torch thread each; torch {torch.__version__}; {total / 60:.1f} min in all. Wall times include "
        f"snapshots and checkpoints and grow with the machine's load.",
        "",
        f"Command: `python benchmarks/toy_modes.py --presets {args.presets} --data {args.data} --seeds {args.seeds}"
        + (f" --more {args.more} --more-data {args.more_data} --more-seeds {args.more_seeds}" if args.more else "")
        + (f" --kimg {args.kimg:g}" if args.kimg else "") + (" --images" if args.images else "") + "`",
    ])
    print(text)
    if not args.no_write:
        write_section("toy_modes", "Mode coverage on the 2-D toys (benchmarks/toy_modes.py)", text)


if __name__ == "__main__":
    main()
