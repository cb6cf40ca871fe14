"""Known-truth class consistency on the Ising data: does a sample's *physics* match the phase it was asked for?

The ``ising`` builtin's labels are the phase (0: T below the critical temperature, 1: above). The ruler is the
nearest-neighbour energy per spin (gankit.metrics.physics), not a trained classifier:

1. Real data: the energy threshold that best separates the classes on the train split (4000 images), its
   agreement on the test split (1000), next to Onsager's e_c = -sqrt(2) and the best |m| threshold (|m| is the
   order parameter, but ordered configurations with domain walls have small |m|). At 64 px and, since GANs here
   train at 32 px, at 32 px (bilinear resize, then thresholded back to spins: a coarse-grained lattice).
2. ``--presets cgan[,biggan]``: each trains on ``ising`` at 32 px for ``--kimg`` thousand real images, one torch
   thread; ``--class-n`` samples per class are drawn with their label and scored with the 32 px threshold
   fitted on real train images (class consistency = share whose energy phase is the asked class).

    python benchmarks/ising_phase.py [--presets cgan] [--kimg 2] [--batch 32] [--class-n 500] [--no-write]

Writes docs/benchmarks.md between <!-- ising_phase --> markers (``--key`` for another section).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import write_section  # noqa: E402

from gankit.config import DataConfig  # noqa: E402
from gankit.data import load_dataset  # noqa: E402
from gankit.metrics import physics as P  # noqa: E402

RESOLUTION = 32


def split(name: str, resolution: int):
    ds = load_dataset(DataConfig(spec="ising", split=name, resolution=resolution), kinds=("image",))
    return ds.tensors["image"], ds.tensors["label"]


def real_rows(resolution: int) -> tuple[list[str], float]:
    (train_img, train_y), (test_img, test_y) = split("train", resolution), split("test", resolution)
    train_s, test_s = P.to_spins(train_img), P.to_spins(test_img)
    e_train, e_test = P.energy_per_spin(train_s), P.energy_per_spin(test_s)
    m_train, m_test = P.magnetisation(train_s), P.magnetisation(test_s)
    e_thr, _ = P.best_threshold(e_train, train_y, low_is_class0=True)
    m_thr, _ = P.best_threshold(m_train, train_y, low_is_class0=False)
    rows = []
    for ruler, pred in ((f"energy < {e_thr:.3f} (fitted on train)", P.phase_from_energy(e_test, e_thr)),
                        (f"energy < -sqrt(2) = {P.CRITICAL_ENERGY:.3f} (Onsager)",
                         P.phase_from_energy(e_test, P.CRITICAL_ENERGY)),
                        (f"abs(m) >= {m_thr:.3f} (fitted on train)", P.phase_from_magnetisation(m_test, m_thr))):
        hit = pred == test_y
        rows.append(f"| {resolution} | {ruler} | {hit.float().mean():.3f} | {hit[test_y == 0].float().mean():.3f} | "
                    f"{hit[test_y == 1].float().mean():.3f} |")
    return rows, e_thr


def gan_row(preset: str, args, threshold: float, out: Path) -> str:
    from gankit.engine import resolve, train
    from gankit.loading import load_sampler
    over = {"data.spec": "ising", "data.resolution": RESOLUTION, "kimg": args.kimg, "batch_size": args.batch,
            "snapshot_kimg": args.kimg, "tick_kimg": max(args.kimg / 4, 0.1), "snapshot_n": 16, "seed": 0,
            "device": "cpu"}
    if preset == "cgan":
        over.update({"G.ngf": args.ngf, "D.ndf": args.ngf})
    else:
        over.update({"G.ch": args.ch, "D.ch": args.ch})
    start = time.perf_counter()
    run_dir = train(resolve(preset, overrides=over), out=out, progress=False)
    seconds = time.perf_counter() - start
    sampler = load_sampler(run_dir / "latest.pt")
    images = torch.cat([sampler.draw(args.class_n, seed=c, label=c) for c in (0, 1)])      # [2n, 1, 32, 32]
    asked = torch.arange(2).repeat_interleave(args.class_n)
    r = P.phase_agreement(images, asked, threshold)
    return (f"| {preset} | {args.kimg:g} | {seconds:.0f} | {r['agreement']:.3f} | {r['class_0']:.3f} | "
            f"{r['class_1']:.3f} | {r['energy_0']:.3f} / {r['energy_1']:.3f} |")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--presets", default="", help="comma-separated conditional presets to train (e.g. cgan,biggan)")
    p.add_argument("--kimg", type=float, default=2.0)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--ngf", type=int, default=16)
    p.add_argument("--ch", type=int, default=8)
    p.add_argument("--class-n", type=int, default=500)
    p.add_argument("--out", default=None)
    p.add_argument("--no-write", action="store_true")
    p.add_argument("--key", default="ising_phase", help="section of docs/benchmarks.md to write")
    args = p.parse_args()
    torch.set_num_threads(1)
    real = ["| px | phase ruler | agreement (test split) | class 0 (below T_c) | class 1 (above T_c) |",
            "|---|---|---|---|---|"]
    thresholds = {}
    for resolution in (64, RESOLUTION):
        rows, thresholds[resolution] = real_rows(resolution)
        real += rows
    print("\n".join(real), flush=True)
    gan = []
    if args.presets:
        out = Path(args.out or tempfile.mkdtemp(prefix="gankit-ising-"))
        gan = ["| preset | kimg | s | phase agreement | class 0 | class 1 | mean energy class 0 / 1 |",
               "|---|---|---|---|---|---|---|"]
        for preset in args.presets.split(","):
            gan.append(gan_row(preset, args, thresholds[RESOLUTION], out))
            print(gan[-1], flush=True)
    command = "python benchmarks/ising_phase.py " + " ".join(sys.argv[1:])
    body = (f"`{command}` — 2-core CPU shared with other engineers' jobs, one torch thread.\n\n"
            "Known-truth class consistency on the `ising` builtin (labels = phase, T below / above "
            "T_c = 2.269): the ruler is the energy per spin of the configuration (periodic nearest-neighbour "
            "bonds), with the threshold fitted on the real train split; |m| shown for comparison (domain walls "
            "make ordered configurations look disordered to |m|).\n\n" + "\n".join(real))
    if gan:
        body += (f"\n\nConditional GANs trained on `ising` at {RESOLUTION} px, scored on {args.class_n} samples per "
                 f"class with the {RESOLUTION} px fitted threshold ({thresholds[RESOLUTION]:.3f}); "
                 "chance is 0.5, a G ignoring its label scores 0.5 whatever it draws.\n\n" + "\n".join(gan))
    if not args.no_write:
        write_section(args.key, "Ising: phase agreement through the energy per spin (known truth)", body)


if __name__ == "__main__":
    main()
