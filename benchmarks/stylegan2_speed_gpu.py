"""StyleGAN2 training speed in s/kimg at given resolutions, for the published reference: 13 s/kimg at 128 px on
one V100 (NVlabs stylegan2-ada-pytorch README, "Expected training time", --cfg=auto; batch 32 at 128 px, fp16
in the 4 highest-resolution layers there). gankit's ``stylegan2`` preset (config F widths unless --channel-base)
on random images kept on the device, batch 32, lazy R1 / path-length phases included: the timed steps are a
multiple of 16 so each lazy phase runs its share.

    python benchmarks/stylegan2_speed_gpu.py --resolutions 64,128 [--amp] [--steps 32] [--smoke]

Writes docs/benchmarks.md between <!-- stylegan2_speed_gpu --> markers (not with --smoke / --no-write).
"""
from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import write_section  # noqa: E402

from gankit.data.base import DataInfo, MemoryDataset  # noqa: E402
from gankit.engine import build, resolve  # noqa: E402

TINY = {"G.channel_base": 256, "G.channel_max": 16, "D.channel_base": 256, "D.channel_max": 16, "z_dim": 32,
        "G.mapping_layers": 2}
PUBLISHED_128_V100 = 13.0      # s/kimg (NVlabs stylegan2-ada-pytorch README)


def s_per_kimg(res: int, args, device: torch.device) -> tuple[float, int]:
    g = torch.Generator().manual_seed(0)
    img = torch.rand(4 * args.batch, 3, res, res, generator=g) * 2 - 1
    data = MemoryDataset({"image": img}, DataInfo(name="bench", kind="image", size=len(img), channels=3,
                                                  resolution=res))
    over = {"batch_size": args.batch, "data.resolution": res, "device": str(device),
            "amp": "bf16" if args.amp else "off", **(TINY if args.smoke else {})}
    trainer, _ = build(resolve("stylegan2", overrides=over), device, dataset=data)
    for _ in range(2):
        trainer.train_step(measure_grad_norm=False)
    if device.type == "cuda":
        torch.cuda.synchronize()
    start, nimg = time.perf_counter(), trainer.nimg
    for _ in range(args.steps):
        trainer.train_step(measure_grad_norm=False)
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    params = sum(p.numel() for p in trainer.recipe.nets["G"].parameters())
    return seconds / ((trainer.nimg - nimg) / 1000), params


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--resolutions", default="64,128")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--steps", type=int, default=32, help="timed steps (a multiple of 16: lazy phases included)")
    ap.add_argument("--amp", action="store_true", help="bf16 autocast")
    ap.add_argument("--smoke", action="store_true", help="tiny widths, 32 px, batch 4, 2 steps; nothing written")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    if args.smoke:
        args.resolutions, args.batch, args.steps, args.no_write = "32", 4, 2, True
    device = torch.device(args.device)
    card = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.machine()
    lines = [f"gankit `stylegan2` preset{' (tiny widths: smoke)' if args.smoke else ''}, batch {args.batch}, "
             f"{args.steps} timed steps after 2, {'bf16 autocast' if args.amp else 'float32'}, device "
             f"{device.type} ({card}), torch {torch.__version__}", "",
             "| resolution | G parameters | s/kimg | published (one V100, 128 px, NVlabs) |", "|---|---|---|---|"]
    for res in (int(r) for r in args.resolutions.split(",")):
        spk, params = s_per_kimg(res, args, device)
        lines.append(f"| {res} | {params / 1e6:.2f} M | {spk:.2f} | {PUBLISHED_128_V100 if res == 128 else '-'} |")
        print(lines[-1], flush=True)
    text = "\n".join(lines)
    print(text)
    if not args.no_write:
        write_section(f"stylegan2_speed_gpu{':amp' if args.amp else ''}",
                      f"StyleGAN2 training speed, s/kimg ({device.type}{', bf16' if args.amp else ''})",
                      text + f"\n\nCommand: `python benchmarks/stylegan2_speed_gpu.py {' '.join(sys.argv[1:])}`. "
                             "The published number is NVlabs' network at --cfg=auto on another card: a reference "
                             "point, not a side-by-side ratio.")


if __name__ == "__main__":
    main()
