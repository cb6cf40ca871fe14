"""Super-resolution and inpainting quality after fixed CPU budgets (in kimg), against the classic baselines.

Super-resolution at x4, held-out data, the Set5/Set14 protocol (Y channel of BT.601, 4-pixel border cropped):
    photos         photo-crops at 48 px HR (12 px LR): train crops of astronaut, rocket, retina, hubble_deep_field,
                   immunohistochemistry, motorcycle, china; test tiles of chelsea, coffee, flower (never seen)
    microstructures  cahn-hilliard at 64 px HR (16 px LR), gray: train simulations 0-15, test 16-17
  srresnet (MSE), then srgan started from it (--init-from, pretrain_kimg=0), and esrgan with its own L1
  pre-training phase; every table has the bicubic baseline. No VGG-19 weights exist on this machine, so srgan runs
  its documented fallback (pixel-MSE content = the paper's SRGAN-MSE) and esrgan without its perceptual term.

Inpainting: the inpaint preset on photo-crops at 48 px with free-form holes of 25 %, evaluated on the held-out
tiles with seeded masks (free and centre) against mean-colour fill and scikit-image's biharmonic fill.

    python benchmarks/restoration_quality.py [--runs /tmp/restoration-runs] [--scale-kimg 1.0] [--only sr|inpaint]

Writes docs/benchmarks.md between <!-- restoration_quality --> and <!-- /restoration_quality -->.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import write_section  # noqa: E402

from gankit.data.restoration import HELD_OUT_PHOTOS  # noqa: E402
from gankit.engine import resolve, train  # noqa: E402
from gankit.loading import load_sampler  # noqa: E402
from gankit.samplers import EvalRequest  # noqa: E402

SR_SMALL = {"G.nf": 32, "G.n_blocks": 4, "G.global_skip": True, "D.nf": 16, "D.dense": 128, "batch_size": 16, "tick_kimg": 0.5,
            "snapshot_kimg": 100.0, "keep_snapshots": False, "device": "cpu"}
RRDB_SMALL = {"G.nf": 32, "G.gc": 16, "G.n_blocks": 2}
DATASETS = {"photos": {"data.spec": "photo-crops", "data.resolution": 48},
            "microstructures": {"data.spec": "cahn-hilliard", "data.resolution": 64}}
INPAINT_SMALL = {"data.spec": "photo-crops", "data.resolution": 48, "G.nf": 16, "D.nf": 16, "batch_size": 16,
                 "tick_kimg": 0.5, "snapshot_kimg": 100.0, "keep_snapshots": False, "device": "cpu"}


def run(preset: str, overrides: dict, runs: Path) -> tuple[Path, float]:
    cfg = resolve(preset, overrides=overrides)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run_dir = train(cfg, out=runs, progress=False)
    return run_dir, time.perf_counter() - start


def evaluate(run_dir: Path, **options) -> dict:
    sampler = load_sampler(run_dir / "latest.pt")
    from gankit.config import from_dict
    cfg = from_dict(json.loads((run_dir / "config.json").read_text()))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return sampler.evaluate(EvalRequest(data=cfg.data, n=256, batch_size=32, device="cpu", options=options))


def sr_benchmark(runs: Path, k: float) -> tuple[str, dict]:
    rows, results, whole_rows = [], {}, []
    budgets = {"photos": (4.0 * k, 2.0 * k, 3.0 * k, 2.0 * k), "microstructures": (2.0 * k, 1.0 * k, 2.0 * k, 1.0 * k)}
    for name, data in DATASETS.items():
        pre_kimg, gan_kimg, esr_pre, esr_gan = budgets[name]
        base = {**SR_SMALL, **data}
        g_only = {k: v for k, v in base.items() if not k.startswith("D.")}
        srres, t1 = run("srresnet", {**g_only, "kimg": pre_kimg}, runs)
        srgan, t2 = run("srgan", {**base, "kimg": gan_kimg, "pretrain_kimg": 0.0, "init_from": str(srres / "latest.pt")},
                        runs)
        esr, t3 = run("esrgan", {**base, **RRDB_SMALL, "kimg": esr_pre + esr_gan, "pretrain_kimg": esr_pre}, runs)
        for label, rd, budget, wall in (("srresnet", srres, f"{pre_kimg:g} kimg", t1),
                                        ("srgan (from srresnet)", srgan, f"+{gan_kimg:g} kimg", t2),
                                        ("esrgan", esr, f"{esr_pre:g} kimg L1 + {esr_gan:g} kimg GAN", t3)):
            card = evaluate(rd)
            m = card["metrics"]
            results[f"{name}/{label}"] = m
            if label == "srresnet":
                rows.append(f"| {name} | bicubic | - | {m['bicubic_psnr_y']:.2f} | {m['bicubic_ssim_y']:.4f} | "
                            f"{m['bicubic_hf_ratio']:.3f} | - |")
            rows.append(f"| {name} | {label} | {budget} | {m['psnr_y']:.2f} | {m['ssim_y']:.4f} | "
                        f"{m['hf_ratio']:.3f} | {wall:.0f} |")
            if name == "photos":
                whole = whole_photos(rd)
                results[f"whole/{label}"] = whole
                if label == "srresnet":
                    whole_rows.append(whole_row("bicubic (PIL, the baseline)", whole, "bicubic_"))
                    whole_rows.append(whole_row("torch bicubic (= the global skip alone)", whole, "torch_bicubic_"))
                whole_rows.append(whole_row(label, whole, ""))
            n_test = card["protocol"]["n_gen"]
        results[f"{name}/n_test"] = n_test
    table = ("| data | model | budget | PSNR-Y (dB) | SSIM-Y | HF ratio | wall s |\n|---|---|---|---|---|---|---|\n"
             + "\n".join(rows))
    whole_table = ("| model | " + " | ".join(f"{p} PSNR-Y / SSIM-Y / HF" for p in HELD_OUT_PHOTOS) + " |\n|---|"
                   + "---|" * len(HELD_OUT_PHOTOS) + "\n" + "\n".join(whole_rows))
    return table + "\n\nWhole held-out photographs (the Set5/Set14 protocol: each photo cropped to a multiple of 4, "\
        "LR by PIL bicubic, upscaled in tiles of 64 LR px with 16 px context):\n\n" + whole_table, results


def whole_photos(run_dir: Path) -> dict:
    """PSNR-Y / SSIM-Y / HF ratio of each whole held-out photo, for the model and the bicubic baseline."""
    from gankit.data.restoration import photographs, pil_bicubic
    from gankit.images import from_uint8, to_uint8
    from gankit.metrics.restoration import bicubic_upscale, high_frequency_share, psnr_y, ssim_y
    sampler = load_sampler(run_dir / "latest.pt")
    s = sampler.scale
    out = {}
    for name, im in photographs(HELD_OUT_PHOTOS).items():
        hr = torch.from_numpy(im[: im.shape[0] // s * s, : im.shape[1] // s * s].copy()).permute(2, 0, 1)[None]
        lr = torch.from_numpy(pil_bicubic(hr[0].permute(1, 2, 0).numpy(), s)).permute(2, 0, 1)[None].contiguous()
        sr = to_uint8(sampler.upscale(from_uint8(lr), tile=64, overlap=16))
        bic = bicubic_upscale(lr, s)
        # What the global skip adds before any training: torch's bicubic (a = -0.75; PIL's is a = -0.5).
        torch_bic = to_uint8(torch.nn.functional.interpolate(from_uint8(lr), scale_factor=s, mode="bicubic",
                                                             align_corners=False).clamp(-1, 1))
        hf_hr = float(high_frequency_share(hr)[0])
        for prefix, img in (("", sr), ("bicubic_", bic), ("torch_bicubic_", torch_bic)):
            out[prefix + name] = (float(psnr_y(img, hr, s)[0]), float(ssim_y(img, hr, s)[0]),
                                  float(high_frequency_share(img)[0]) / hf_hr)
    return out


def whole_row(label: str, whole: dict, prefix: str) -> str:
    cells = [f"{whole[prefix + p][0]:.2f} / {whole[prefix + p][1]:.3f} / {whole[prefix + p][2]:.2f}" for p in HELD_OUT_PHOTOS]
    return f"| {label} | " + " | ".join(cells) + " |"


def inpaint_benchmark(runs: Path, k: float) -> tuple[str, dict]:
    rd, wall = run("inpaint", {**INPAINT_SMALL, "kimg": 3.0 * k}, runs)
    rows, results = [], {}
    for mask in ("free", "centre"):
        card = evaluate(rd, mask=mask, mask_fraction=0.25)
        m = card["metrics"]
        results[mask] = m
        for label, prefix in (("mean-colour fill", "meanfill_"), ("biharmonic (scikit-image)", "biharmonic_"),
                              (f"inpaint preset, {3.0 * k:g} kimg", "")):
            rows.append(f"| {mask} 25 % | {label} | {m[prefix + 'hole_l1']:.4f} | {m[prefix + 'hole_psnr']:.2f} |")
        results[f"{mask}/known_pixels_exact"] = card["protocol"]["known_pixels_exact"]
        results[f"{mask}/n_test"] = card["protocol"]["n_gen"]
    table = ("| holes | method | hole L1 (0..1) | hole PSNR (dB) |\n|---|---|---|---|\n" + "\n".join(rows))
    results["wall_s"] = wall
    return table, results


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", default="/tmp/restoration-runs")
    ap.add_argument("--scale-kimg", type=float, default=1.0, help="multiply every budget (0.1 for a smoke run)")
    ap.add_argument("--only", choices=["sr", "inpaint"], default=None)
    ap.add_argument("--no-report", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(1)
    runs = Path(args.runs)
    runs.mkdir(parents=True, exist_ok=True)
    cmd = "python benchmarks/restoration_quality.py" + (f" --scale-kimg {args.scale_kimg:g}" if args.scale_kimg != 1 else "")
    machine = (f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores shared with other engineers' jobs "
               f"(load average {os.getloadavg()[0]:.1f} at the start), torch {torch.__version__}, 1 thread")
    parts, all_results = [], {}
    if args.only in (None, "sr"):
        table, res = sr_benchmark(runs, args.scale_kimg)
        all_results["sr"] = res
        parts.append("### Super-resolution x4 (held-out data, Y channel, 4-px border cropped)\n\n" + table + "\n\n"
                     f"Test sets: photos = the first {res['photos/n_test']} 48-px tiles of the held-out chelsea, "
                     f"coffee, flower; microstructures = the first {res['microstructures/n_test']} images of "
                     "Cahn-Hilliard simulations 16-17. Networks at CPU widths: srresnet nf 32 with 4 residual blocks "
                     "(paper: 64, 16), rrdb nf 32 growth 16 with 2 RRDBs (paper: 64, 32, 23), vgg_d nf 16 dense 128 "
                     "(paper 64, 1024); batch 16. HF ratio = share of spectral power above 1/4 cycle/pixel, output / "
                     "HR truth (1 = as much fine detail as the truth). No VGG-19 weights here: srgan = SRGAN-MSE "
                     "(pixel content loss), esrgan without its perceptual term.")
    if args.only in (None, "inpaint"):
        table, res = inpaint_benchmark(runs, args.scale_kimg)
        all_results["inpaint"] = res
        parts.append("### Inpainting, holes of 25 % (held-out photo tiles, 48 px)\n\n" + table + "\n\n"
                     f"{res['free/n_test']} test tiles, one seeded mask each (the same for every method). Known pixels "
                     f"of the model's outputs equal the inputs bit for bit: {res['free/known_pixels_exact']} (free), "
                     f"{res['centre/known_pixels_exact']} (centre). Model: completion nf 16 (paper 64), sn_patchgan "
                     f"nf 16 with 4 layers, trained on free-form holes only; {res['wall_s']:.0f} s of training.")
    body = (f"Command: `{cmd}`. Machine: {machine}. Budgets are in kimg (thousands of training crops); wall times "
            "are under contention and only indicative.\n\n" + "\n\n".join(parts))
    print(body)
    (runs / "results.json").write_text(json.dumps(all_results, indent=2))
    if not args.no_report:
        write_section("restoration_quality", "Image restoration: super-resolution and inpainting vs baselines", body)


if __name__ == "__main__":
    main()
