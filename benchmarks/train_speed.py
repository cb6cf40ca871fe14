"""Training speed: gankit's DCGAN step against a plain PyTorch loop of the same networks, batch and optimiser.

Both sides use identical DCGAN modules (gankit's nets are plain nn.Modules, built with the same seed), the same
non-saturating loss, Adam(2e-4, (0.5, 0.999)) and the same batch from memory. The plain loop is the PyTorch
DCGAN example's step (D on real and fake.detach(), then G through D on the same fake). They run interleaved
in one process, in rounds, so machine noise hits both alike; the ratio of medians is reported.

    python benchmarks/train_speed.py [--device cpu|cuda] [--resolution 32] [--batch 64] [--rounds 5]

Writes a section of docs/benchmarks.md between <!-- train_speed:DEVICE --> markers.
"""
from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import write_section  # noqa: E402

from gankit.engine import resolve  # noqa: E402
from gankit.data.base import BatchStream, DataInfo, MemoryDataset  # noqa: E402
from gankit.engine import build  # noqa: E402


def make_data(n: int, res: int, channels: int) -> MemoryDataset:
    g = torch.Generator().manual_seed(0)
    img = torch.rand(n, channels, res, res, generator=g) * 2 - 1
    return MemoryDataset({"image": img}, DataInfo(name="bench", kind="image", size=n, channels=channels,
                                                  resolution=res))


def gankit_trainer(args, device):
    cfg = resolve("dcgan", overrides={"batch_size": args.batch, "data.resolution": args.resolution,
                                      "device": str(device), "amp": "bf16" if args.amp else "off"})
    trainer, _ = build(cfg, device, dataset=make_data(4096, args.resolution, args.channels))
    return trainer


class PlainLoop:
    """The PyTorch DCGAN example's training step, on the same modules."""

    def __init__(self, trainer, device, batch: int, amp: bool):
        import copy
        self.G = copy.deepcopy(trainer.recipe.nets["G"]).to(device)
        self.D = copy.deepcopy(trainer.recipe.nets["D"]).to(device)
        self.opt_g = torch.optim.Adam(self.G.parameters(), lr=2e-4, betas=(0.5, 0.999))
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=2e-4, betas=(0.5, 0.999))
        self.stream = BatchStream(trainer.stream.dataset, batch, seed=1, device=device)
        self.z_dim, self.device, self.amp = self.G.z_dim, device, amp

    def step(self) -> None:
        real = next(self.stream)["image"]
        n = real.shape[0]
        ones, zeros = torch.ones(n, device=self.device), torch.zeros(n, device=self.device)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp):
            # (1) Update D: maximize log(D(x)) + log(1 - D(G(z)))
            self.D.zero_grad()
            err_real = F.binary_cross_entropy_with_logits(self.D(real), ones)
            fake = self.G(torch.randn(n, self.z_dim, device=self.device))
            err_fake = F.binary_cross_entropy_with_logits(self.D(fake.detach()), zeros)
        (err_real + err_fake).backward()
        self.opt_d.step()
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp):
            # (2) Update G: maximize log(D(G(z)))
            self.G.zero_grad()
            err_g = F.binary_cross_entropy_with_logits(self.D(fake), ones)
        err_g.backward()
        self.opt_g.step()


def timed(fn, steps: int, device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(steps):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--resolution", type=int, default=32)
    ap.add_argument("--channels", type=int, default=1)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--steps", type=int, default=0, help="steps per round (0 = 20 on CPU, 200 on GPU)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--amp", action="store_true", help="bfloat16 autocast on both sides (CUDA)")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch's default)")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    steps = args.steps or (200 if device.type == "cuda" else 20)
    trainer = gankit_trainer(args, device)
    plain = PlainLoop(trainer, device, args.batch, args.amp)
    ours_step = lambda: trainer.train_step(measure_grad_norm=False)  # as in the loop between ticks
    for fn in (ours_step, plain.step):  # warm-up (allocator, cuDNN autotune)
        timed(fn, 3, device)
    ours, theirs = [], []
    for _ in range(args.rounds):
        ours.append(args.batch * steps / timed(ours_step, steps, device))
        theirs.append(args.batch * steps / timed(plain.step, steps, device))
    med_ours, med_plain = statistics.median(ours), statistics.median(theirs)
    ratio = med_ours / med_plain
    card = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine()
    lines = [
        f"DCGAN {args.channels}x{args.resolution}x{args.resolution}, batch {args.batch}, "
        f"{args.rounds} interleaved rounds of {steps} steps, device {device.type} ({card}), "
        f"torch {torch.__version__}, threads {torch.get_num_threads()}{', bf16 autocast' if args.amp else ''}",
        "",
        "| loop | images/s (median) | per round |",
        "|---|---|---|",
        f"| gankit train_step | {med_ours:.0f} | {', '.join(f'{v:.0f}' for v in ours)} |",
        f"| plain PyTorch loop | {med_plain:.0f} | {', '.join(f'{v:.0f}' for v in theirs)} |",
        "",
        f"**ratio gankit / plain = {ratio:.3f}** (target >= 1.0)",
    ]
    text = "\n".join(lines)
    print(text)
    if not args.no_write:
        shape = ("" if (args.resolution, args.channels, args.batch) == (32, 1, 64)
                 else f", {args.channels}x{args.resolution}px batch {args.batch}")
        write_section(f"train_speed:{device.type}{':amp' if args.amp else ''}"
                      f"{f':{args.channels}x{args.resolution}:{args.batch}' if shape else ''}",
                      f"Training speed ({device.type}{', AMP' if args.amp else ''}{shape})",
                      text + f"\n\nCommand: `python benchmarks/train_speed.py {' '.join(sys.argv[1:])}`. "
                             "gankit draws fresh latents for the G phase (one extra no-grad G forward) and skips "
                             "D's weight gradients there; the plain loop reuses the D phase's fakes.")


if __name__ == "__main__":
    main()
