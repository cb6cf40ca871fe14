"""Image-to-image translation quality after a fixed CPU budget, and training speed at 64 px.

For each family, train its preset on its builtin task for about ``--minutes`` of wall-clock time, then translate
the task's held-out test images and compare with the truth:

    pix2pix   edges2digits     (paired: the truth is the digit the edge map was drawn from)
    cyclegan  digits2inverted  (unpaired training; the truth is ``gankit.data.true_translation``: inversion)

The same metrics (``gankit.metrics.paired_metrics``: L1 in [-1, 1] units, PSNR and SSIM on uint8) are computed
for the identity mapping (output = input), the trivial baseline; a family passes when its L1 is at most
``--max-ratio`` (default 0.5) times the identity's and its PSNR is higher. CycleGAN is gated with its identity
term off (see ``VARIANTS``: on an inversion task that term pulls against the mapping) and also run as preset. The training length in kimg is set
from a throughput measurement of the same configuration just before the run, so the budget is met on any
machine; the networks are the presets' except for the widths given by ``--ngf`` (half the papers' 64 by
default, so that a few CPU minutes cover several epochs).

Speed: training images/s of each preset at 64 px with the papers' widths (ngf = ndf = 64) and the preset batch
size, timed over a few steps after warm-up.

    python benchmarks/i2i_quality.py [--minutes 5] [--ngf 32] [--device cpu] [--runs /tmp/i2i-runs]

Writes docs/benchmarks.md between <!-- i2i_quality --> and <!-- /i2i_quality -->, and the translation figures
of README.md between <!-- i2i_quality:readme --> and <!-- /i2i_quality:readme --> (the README quotes this
script, never hand-typed numbers). ``--readme-only`` rewrites the README figures from the table already in
docs/benchmarks.md, without training (what the script itself wrote there last time).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import DOC, write_section  # noqa: E402

from gankit.config import DataConfig, parse_value  # noqa: E402
from gankit.data import load_dataset, true_translation  # noqa: E402
from gankit.engine import build, resolve, train  # noqa: E402
from gankit.loading import load_recipe  # noqa: E402
from gankit.metrics.paired import paired_metrics  # noqa: E402

README = Path(__file__).resolve().parent.parent / "README.md"
README_KEY = "i2i_quality:readme"

TASKS = {"pix2pix": "edges2digits", "cyclegan": "digits2inverted"}
# (preset, label, option overrides, counts towards pass/fail). The identity term (Zhu et al. 2017, sec. 5.2) asks
# G_ab to leave B-looking images unchanged, so that colours survive photo <-> painting; on an inversion task it
# works against the mapping to be learnt. The paper uses it only where colour must be kept, so the gated CycleGAN
# run turns it off; the preset's default (0.5 x cycle weight) runs too, for information.
VARIANTS = [("pix2pix", "preset", {}, True),
            ("cyclegan", "identity_weight=0", {"identity_weight": 0.0}, True),
            ("cyclegan", "preset (identity 0.5)", {}, False)]


def images_per_second(preset: str, overrides: dict, device: str, steps: int = 6, warmup: int = 3) -> float:
    """Training images/s of ``preset`` (D and G updates, as the trainer runs them): median step after warm-up."""
    cfg = resolve(preset, None, {**overrides, "device": device})
    trainer, _ = build(cfg)
    times = []
    for i in range(warmup + steps):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        start = time.perf_counter()
        trainer.train_step()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        if i >= warmup:
            times.append(time.perf_counter() - start)
    return cfg.batch_size * cfg.d_steps / statistics.median(times)


def held_out(spec: str) -> dict[str, torch.Tensor]:
    """All test-split inputs of both sides and their true translations: {'a', 'a_truth', 'b', 'b_truth'}."""
    test = load_dataset(DataConfig(spec=spec, split="test"), kinds=("paired", "unpaired"))
    if test.info.kind == "paired":
        batch = test.get_batch(torch.arange(len(test)))
        return {"a": batch["a"], "a_truth": batch["b"]}          # pix2pix learns one direction
    a = test.domain_a.get_batch(torch.arange(len(test.domain_a)))["image"]
    b = test.domain_b.get_batch(torch.arange(len(test.domain_b)))["image"]
    # digits2inverted's mapping is its own inverse, so the truth for B -> A is the same function.
    return {"a": a, "a_truth": true_translation(spec, a), "b": b, "b_truth": true_translation(spec, b)}


def score(run_dir: Path, spec: str, device: str) -> dict:
    recipe, cfg, info, nets = load_recipe(run_dir / "latest.pt", device)
    data = held_out(spec)
    out = {}
    for side, direction in (("a", "AtoB"), ("b", "BtoA")):
        if side not in data:
            continue
        translate = recipe.sampler(nets, direction=direction)
        pred = torch.cat([translate(chunk) for chunk in data[side].split(256)])
        out[direction] = {"n": len(pred), "model": paired_metrics(pred, data[f"{side}_truth"]),
                          "identity": paired_metrics(data[side], data[f"{side}_truth"])}
    return out


def run_family(preset: str, label: str, options: dict, gated: bool, args) -> dict:
    spec = TASKS[preset]
    overrides = {"data.spec": spec, "G.ngf": args.ngf, "D.ndf": args.ngf, "seed": args.seed, **options,
                 "snapshot_kimg": 1000.0, "tick_kimg": 1.0,
                 **{k: parse_value(v) for k, v in (o.split("=", 1) for o in args.overrides)}}
    kimg = args.kimg or round(max(0.1, images_per_second(preset, overrides, args.device) * args.minutes * 60 / 1000), 2)
    cfg = resolve(preset, None, {**overrides, "kimg": kimg, "device": args.device})
    start = time.perf_counter()
    run_dir = train(cfg, out=args.runs, progress=False)
    wall = time.perf_counter() - start
    result = {"preset": preset, "variant": label, "gated": gated, "data": spec, "kimg": kimg, "batch_size": cfg.batch_size, "ngf": args.ngf,
              "train_s": round(wall, 1), "run_dir": str(run_dir), "scores": score(run_dir, spec, args.device)}
    for s in result["scores"].values():
        m, i = s["model"], s["identity"]
        s["l1_ratio"] = m["l1"] / i["l1"]
        s["pass"] = s["l1_ratio"] <= args.max_ratio and m["psnr"] > i["psnr"] if gated else None
    print(json.dumps(result, indent=1), flush=True)
    return result


def report(results: list[dict], speeds: dict, args) -> str:
    machine = (f"{platform.processor() or platform.machine()} ({os.cpu_count()} cores), {torch.get_num_threads()} "
               f"torch threads, device {args.device}, torch {torch.__version__}")
    lines = [f"Command: `python benchmarks/i2i_quality.py --minutes {args.minutes} --ngf {args.ngf} "
             f"--device {args.device} --threads {args.threads}`. Machine: {machine}.", "",
             f"Quality on held-out test images after ~{args.minutes} min of training per run (networks at "
             f"ngf = ndf = {args.ngf}; everything else from the preset). Pass: L1 <= {args.max_ratio} x the "
             "identity mapping's and a higher PSNR. The CycleGAN gate runs without the identity term, which "
             "asks G_ab to leave B-like images unchanged (Zhu et al. 2017 sec. 5.2, meant to keep colours) and so "
             "pulls against an inversion; the preset's 0.5 runs too, for information.", "",
             "| family | variant | task | direction | kimg | train s | test images | L1 model / identity | "
             "PSNR dB model / identity | SSIM model / identity | pass |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in results:
        for direction, s in r["scores"].items():
            m, i = s["model"], s["identity"]
            verdict = "(not gated)" if s["pass"] is None else "yes" if s["pass"] else "**no**"
            lines.append(f"| {r['preset']} | {r['variant']} | {r['data']} | {direction} | {r['kimg']} | "
                         f"{r['train_s']} | {s['n']} | {m['l1']:.3f} / {i['l1']:.3f} | "
                         f"{m['psnr']:.1f} / {i['psnr']:.1f} | {m['ssim']:.3f} / {i['ssim']:.3f} | {verdict} |")
    lines += ["", f"Training speed at 64 px, the papers' widths (ngf = ndf = 64), preset batch size, "
              f"device {args.device}:", "", "| family | images/s |", "| --- | --- |"]
    lines += [f"| {k} | {v:.1f} |" for k, v in speeds.items()]
    return "\n".join(lines)


def doc_rows(doc: Path = DOC) -> tuple[str, list[dict]]:
    """The date, command and quality rows this script last wrote into docs/benchmarks.md."""
    text = doc.read_text()
    match = re.search(r"<!-- i2i_quality -->(.*?)<!-- /i2i_quality -->", text, re.S)
    if not match:
        raise SystemExit(f"{doc} has no i2i_quality section: run this script without --readme-only first.")
    section = match.group(1)
    date = re.search(r"_(\d{4}-\d{2}-\d{2})_", section).group(1)
    command = re.search(r"Command: `([^`]*)`", section).group(1)
    rows = []
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 11 and cells[0] in TASKS:
            split = lambda s: [float(x) for x in s.split(" / ")]  # noqa: E731  "model / identity"
            rows.append({"preset": cells[0], "variant": cells[1], "data": cells[2], "direction": cells[3],
                         "kimg": float(cells[4]), "train_s": float(cells[5]), "n": int(cells[6]),
                         "l1": split(cells[7])[0], "psnr": split(cells[8])[0], "ssim": split(cells[9])[0]})
    return f"{date}, `{command}`", rows


def readme_block(source: str, rows: list[dict]) -> str:
    """The README's translation figures, from this script's rows (one sentence per gated run)."""
    lines = [f"Figures written by `benchmarks/i2i_quality.py` (docs/benchmarks.md, {source}), on held-out test "
             "images after a few CPU minutes of training at ngf = ndf = 32:"]
    for r in rows:
        if r["variant"].startswith("preset (identity"):
            continue
        truth = "against the true mapping (inversion)" if r["preset"] == "cyclegan" else "against the targets"
        lines.append(f"- {r['preset']} ({r['variant']}) on `{r['data']}` {r['direction']}, {r['kimg']:g} kimg: "
                     f"L1 {r['l1']:.3f}, PSNR {r['psnr']:.1f} dB, SSIM {r['ssim']:.3f} {truth}, {r['n']} images.")
    ident = [r for r in rows if r["variant"].startswith("preset (identity")]
    if ident:
        lines.append(f"- cyclegan with the preset's identity weight (the paper's 0.5) on `{ident[0]['data']}`: "
                     f"PSNR {ident[0]['psnr']:.1f} dB: the identity term pulls against an inversion.")
    return "\n".join(lines)


def write_readme(source: str, rows: list[dict], readme: Path = README) -> None:
    text = readme.read_text()
    pattern = re.compile(rf"<!-- {re.escape(README_KEY)} -->.*?<!-- /{re.escape(README_KEY)} -->", re.S)
    if not pattern.search(text):
        raise SystemExit(f"{readme} has no <!-- {README_KEY} --> section to fill.")
    block = f"<!-- {README_KEY} -->\n{readme_block(source, rows)}\n<!-- /{README_KEY} -->"
    readme.write_text(pattern.sub(lambda _: block, text))


def result_rows(results: list[dict]) -> list[dict]:
    return [{"preset": r["preset"], "variant": r["variant"], "data": r["data"], "direction": d, "kimg": r["kimg"],
             "train_s": r["train_s"], "n": s["n"], **{k: s["model"][k] for k in ("l1", "psnr", "ssim")}}
            for r in results for d, s in r["scores"].items()]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--minutes", type=float, default=5.0, help="training budget per family")
    p.add_argument("--ngf", type=int, default=32, help="generator and discriminator width (papers: 64)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-ratio", type=float, default=0.5)
    p.add_argument("--runs", default="/tmp/gankit-i2i-runs", help="where the training runs are written")
    p.add_argument("--families", default="pix2pix,cyclegan")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch's default)")
    p.add_argument("--kimg", type=float, default=0.0, help="train this long instead of --minutes (0 = from minutes)")
    p.add_argument("--no-speed", action="store_true", help="skip the 64 px speed measurement")
    p.add_argument("--set", dest="overrides", action="append", default=[], help="extra config override key=value")
    p.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    p.add_argument("--readme-only", action="store_true",
                   help="rewrite README.md's figures from docs/benchmarks.md's table (no training)")
    args = p.parse_args()
    if args.readme_only:
        write_readme(*doc_rows())
        return 0
    if args.threads:
        torch.set_num_threads(args.threads)
    families = [f for f in args.families.split(",") if f]
    variants = [v for v in VARIANTS if v[0] in families]
    speeds = {} if args.no_speed else {f: images_per_second(f, {"data.spec": TASKS[f], "data.resolution": 64, "G.ngf": 64, "D.ndf": 64},
                                   args.device, steps=3, warmup=2) for f in families}
    print("images/s at 64 px:", speeds, flush=True)
    results = [run_family(*v, args) for v in variants]
    text = report(results, speeds, args)
    print(text)
    if not args.no_write:
        write_section("i2i_quality", "Image-to-image translation quality (pix2pix, CycleGAN)", text)
        write_readme(f"{time.strftime('%Y-%m-%d')}, `{text.splitlines()[0].split('`')[1]}`", result_rows(results))
    return 0 if all(s["pass"] for r in results if r["gated"] for s in r["scores"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
