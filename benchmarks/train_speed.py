"""Training speed: gankit's DCGAN step against a plain PyTorch loop of the same networks, batch and optimiser.

Both sides use identical DCGAN modules (gankit's nets are plain nn.Modules, built with the same seed), the same
non-saturating loss, Adam(2e-4, (0.5, 0.999)) and the same batch from memory. The plain loop is the PyTorch
DCGAN example's step (D on real and fake.detach(), then G through D on the same fake). They run interleaved
in one process, in rounds, so machine noise hits both alike; the ratio of medians is reported.

    python benchmarks/train_speed.py [--device cpu|cuda] [--resolution 32] [--batch 64] [--rounds 5]
                                     [--loops plain,gankit,gankit-reuse,...] [--smoke]

Loops (--loops): see LOOPS; each runs its own copy of the same initial networks. Writes a section of
docs/benchmarks.md between <!-- train_speed:DEVICE... --> markers (--key to choose).
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


def gankit_trainer(args, device, amp: bool = False, world=None, **opts):
    over = {"batch_size": args.batch, "data.resolution": args.resolution, "device": str(device),
            "amp": "bf16" if amp else "off", **{f"opts.{k}": v for k, v in opts.items()}}
    if args.width:
        over.update({"G.ngf": args.width, "D.ndf": args.width})
    cfg = resolve("dcgan", overrides=over)
    torch.manual_seed(0)
    trainer, _ = build(cfg, device, dataset=make_data(max(4 * args.batch, 256), args.resolution, args.channels),
                       world=world)
    return trainer


class PlainLoop:
    """The PyTorch DCGAN example's training step, on the same modules; ``amp`` adds bf16 autocast and
    ``channels_last`` the NHWC layout (what a user tuning the loop by hand would write)."""

    def __init__(self, trainer, device, batch: int, amp: bool, channels_last: bool = False):
        import copy
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        self.G = copy.deepcopy(trainer.recipe.nets["G"]).to(device, memory_format=fmt)
        self.D = copy.deepcopy(trainer.recipe.nets["D"]).to(device, memory_format=fmt)
        self.opt_g = torch.optim.Adam(self.G.parameters(), lr=2e-4, betas=(0.5, 0.999))
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=2e-4, betas=(0.5, 0.999))
        self.stream = BatchStream(trainer.stream.dataset, batch, seed=1, device=device)
        self.z_dim, self.device, self.amp, self.fmt = self.G.z_dim, device, amp, fmt

    def step(self) -> None:
        real = next(self.stream)["image"].contiguous(memory_format=self.fmt)
        n = real.shape[0]
        ones, zeros = torch.ones(n, device=self.device), torch.zeros(n, device=self.device)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp):
            # (1) Update D: maximize log(D(x)) + log(1 - D(G(z)))
            self.D.zero_grad()
            err_real = F.binary_cross_entropy_with_logits(self.D(real).float(), ones)
            fake = self.G(torch.randn(n, self.z_dim, device=self.device))
            err_fake = F.binary_cross_entropy_with_logits(self.D(fake.detach()).float(), zeros)
        (err_real + err_fake).backward()
        self.opt_d.step()
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp):
            # (2) Update G: maximize log(D(G(z)))
            self.G.zero_grad()
            err_g = F.binary_cross_entropy_with_logits(self.D(fake).float(), ones)
        err_g.backward()
        self.opt_g.step()


def ddp_world_of_one(device):
    """A process group of one rank, and a World that takes the DDP path anyway (World.enabled is False at world
    size 1, so gankit normally skips DDP there): what DDP costs before any communication."""
    import os
    import torch.distributed as dist
    from gankit.engine.distributed import World

    class OneRankDDP(World):
        enabled = True     # the DDP strategy's test: wrap even at one rank

    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", "29517")
    backend = "nccl" if device.type == "cuda" else "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend, rank=0, world_size=1)
    return OneRankDDP(0, 1, 0, backend)


# name -> (what it is, how to make its step)
LOOPS = {
    "plain": ("plain PyTorch loop, fp32 (the DCGAN example)",
              lambda a, d, ref: PlainLoop(ref, d, a.batch, amp=False).step),
    "plain-bf16-cl": ("plain loop, bf16 autocast + channels_last",
                      lambda a, d, ref: PlainLoop(ref, d, a.batch, amp=True, channels_last=True).step),
    "gankit": ("gankit, defaults (fresh latents for G: one G forward more)",
               lambda a, d, ref: _gankit_step(gankit_trainer(a, d))),
    "gankit-reuse": ("gankit, reuse_fakes=true (the plain loop's algorithm)",
                     lambda a, d, ref: _gankit_step(gankit_trainer(a, d, reuse_fakes=True))),
    "gankit-best": ("gankit, reuse_fakes=true + amp=bf16",
                    lambda a, d, ref: _gankit_step(gankit_trainer(a, d, amp=True, reuse_fakes=True))),
    "gankit-ddp1": ("gankit, defaults, through DDP at world size 1",
                    lambda a, d, ref: _gankit_step(gankit_trainer(a, d, world=ddp_world_of_one(d)))),
}
DEFAULT_LOOPS = {"cpu": "plain,gankit,gankit-reuse",
                 "cuda": "plain,plain-bf16-cl,gankit,gankit-reuse,gankit-best"}


def _gankit_step(trainer):
    return lambda: trainer.train_step(measure_grad_norm=False)   # as in the loop between ticks


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
    ap.add_argument("--width", type=int, default=0, help="ngf = ndf (0 = the preset's 64)")
    ap.add_argument("--steps", type=int, default=0, help="steps per round (0 = 20 on CPU, 200 on GPU)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--amp", action="store_true", help="bf16 autocast on the plain loop and gankit (old layout)")
    ap.add_argument("--loops", default="", help=f"comma list of {', '.join(LOOPS)} (default per device: "
                                                f"{DEFAULT_LOOPS})")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch's default)")
    ap.add_argument("--key", default="", help="docs/benchmarks.md section key suffix (default from the shape)")
    ap.add_argument("--note", default="", help="a sentence added to the report (e.g. the machine's load)")
    ap.add_argument("--smoke", action="store_true", help="tiny sizes, 1 round of 2 steps, nothing written")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    if args.smoke:
        args.resolution, args.batch, args.width, args.steps, args.rounds, args.no_write = 32, 4, 8, 2, 1, True
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    steps = args.steps or (200 if device.type == "cuda" else 20)
    names = (args.loops or DEFAULT_LOOPS.get(device.type, DEFAULT_LOOPS["cpu"])).split(",")
    unknown = [n for n in names if n not in LOOPS]
    if unknown:
        ap.error(f"unknown loops {unknown}; choose from {', '.join(LOOPS)}")
    if args.amp:   # the old two-loop AMP comparison: both sides in bf16
        LOOPS["plain"] = ("plain PyTorch loop, bf16 autocast",
                          lambda a, d, ref: PlainLoop(ref, d, a.batch, amp=True).step)
        LOOPS["gankit"] = ("gankit, amp=bf16", lambda a, d, ref: _gankit_step(gankit_trainer(a, d, amp=True)))
    ref = gankit_trainer(args, device)          # the networks every plain loop copies
    fns = {n: LOOPS[n][1](args, device, ref) for n in names}
    for fn in fns.values():                     # warm-up (allocator, cuDNN autotune)
        timed(fn, 3, device)
    rates: dict[str, list[float]] = {n: [] for n in names}
    for _ in range(args.rounds):                # interleaved: machine noise hits every loop alike
        for n, fn in fns.items():
            rates[n].append(args.batch * steps / timed(fn, steps, device))
    med = {n: statistics.median(v) for n, v in rates.items()}
    card = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine()
    lines = [
        f"DCGAN {args.channels}x{args.resolution}x{args.resolution}, batch {args.batch}"
        f"{f', ngf = ndf = {args.width}' if args.width else ''}, {args.rounds} interleaved rounds of {steps} "
        f"steps, device {device.type} ({card}), torch {torch.__version__}, threads {torch.get_num_threads()}"
        f"{', bf16 autocast' if args.amp else ''}",
        "",
        "| loop | images/s (median) | per round |" + "".join(f" / {b} |" for b in ("plain", "plain-bf16-cl") if b in med),
        "|---|---|---|" + "---|" * sum(b in med for b in ("plain", "plain-bf16-cl")),
    ]
    for n in names:
        cells = "".join(f" {med[n] / med[b]:.3f} |" for b in ("plain", "plain-bf16-cl") if b in med)
        lines.append(f"| `{n}`: {LOOPS[n][0]} | {med[n]:.0f} | {', '.join(f'{v:.0f}' for v in rates[n])} |{cells}")
    if "plain" in med:
        lines += ["", "Wins per round against `plain`: " + ", ".join(
            f"`{n}` {sum(a > b for a, b in zip(rates[n], rates['plain']))}/{args.rounds}" for n in names if n != "plain")]
    if "gankit-ddp1" in med and "gankit" in med:
        lines += ["", f"**DDP path at world size 1 / single process = {med['gankit-ddp1'] / med['gankit']:.3f}** "
                      f"(the overhead of issue 5's DDP before any communication between GPUs)"]
    text = "\n".join(lines)
    print(text)
    if not args.no_write:
        shape = ("" if (args.resolution, args.channels, args.batch) == (32, 1, 64)
                 else f", {args.channels}x{args.resolution}px batch {args.batch}")
        key = args.key or (f"train_speed:{device.type}{':amp' if args.amp else ''}"
                           f"{f':{args.channels}x{args.resolution}:{args.batch}' if shape else ''}")
        write_section(key, f"Training speed ({device.type}{', AMP' if args.amp else ''}{shape})",
                      text + f"\n\nCommand: `python benchmarks/train_speed.py {' '.join(sys.argv[1:])}`. "
                             "The plain loop is the PyTorch DCGAN example's step: it reuses the D phase's fakes "
                             "for G. gankit's default draws fresh latents for the G phase (one more G forward) "
                             "and skips D's weight gradients there; `reuse_fakes=true` is the plain loop's "
                             "algorithm (docs/architecture.md, speed options)."
                             + (f" {args.note}" if args.note else ""))


if __name__ == "__main__":
    main()
