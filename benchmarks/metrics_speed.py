"""Metrics speed: gankit's FID pipeline against torch-fidelity's ``calculate_metrics`` on the same images.

Both sides run torch-fidelity's Inception module with the same weights file on the same uint8 images
(N generated + N reference, 32x32 noise resized to 299 inside the network), with the same batch size, in one
process: gankit once before and once after torch-fidelity (the faster of the two is reported, so warm-up and
machine noise do not favour gankit). Also timed: gankit's feature extraction alone (images/s, statistics
included), the FID from statistics, and the 2048-d trace of the matrix square root (target < 2 s on a CPU).

Offline the Inception weights are random (written in the real file's layout): speeds are real, FID values are
meaningless. Pass --weights for the real file.

Features are compared with torch-fidelity's own extraction path (``create_feature_extractor`` +
``get_featuresdict_from_dataset``) on the first --compare-n images, and on a GPU also with float32 CPU features;
differences are ‖a − b‖ / ‖b‖. gankit extracts in IEEE float32 (``exact_float32``); torch-fidelity keeps
PyTorch's default, which lets cuDNN convolutions use TF32 on Ampere and later GPUs.

    python benchmarks/metrics_speed.py [--n 10000] [--device auto|cpu|cuda] [--batch 100] [--threads T]
                                       [--weights PATH] [--eigvals] [--repeat R] [--extract-n M]

On a CPU, 10k + 10k Inception passes take about an hour per side: --repeat defaults to 1 there (2 on a GPU)
and the extraction-only timing uses --extract-n images (default: all on a GPU, 1000 on a CPU).

Writes the section between <!-- metrics_speed --> markers of docs/benchmarks.md (one block per device).
"""
from __future__ import annotations

import argparse
import os
import platform
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import DOC, write_section  # noqa: E402

from gankit.metrics import (FeatureStats, evaluate, exact_float32, trace_sqrt_product,  # noqa: E402
                            write_random_inception_weights)
from gankit.metrics.base import resolve_device  # noqa: E402
from gankit.metrics.inception import InceptionExtractor  # noqa: E402
from gankit.metrics.sources import TensorSource, extract  # noqa: E402

KEY = "metrics_speed"


class UInt8Images(torch.utils.data.Dataset):
    """torch-fidelity's input: a Dataset of uint8 [3, H, W] tensors."""

    def __init__(self, images: torch.Tensor):
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.images[i]


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(fn, device):
    sync(device)
    start = time.perf_counter()
    out = fn()
    sync(device)
    return out, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=10_000, help="generated and reference images (each)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--resolution", type=int, default=32)
    parser.add_argument("--weights", default=None, help="real Inception weights (default: random, offline)")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch's default)")
    parser.add_argument("--eigvals", action="store_true", help="also time the general eigvals trace (slow on CPU)")
    parser.add_argument("--no-write", action="store_true", help="print only; do not touch docs/benchmarks.md")
    parser.add_argument("--repeat", type=int, default=0, help="gankit end-to-end runs (0: 2 on a GPU, 1 on a CPU)")
    parser.add_argument("--extract-n", type=int, default=0, help="images for the extraction-only timing "
                        "(0: all on a GPU, 1000 on a CPU)")
    parser.add_argument("--compare-n", type=int, default=1000, help="images whose features are compared")
    parser.add_argument("--variants", action="store_true", help="also time the extractor without each speed-up")
    args = parser.parse_args()

    if args.threads:
        torch.set_num_threads(args.threads)   # on a shared machine, fewer threads avoid oversubscription
    device = resolve_device(args.device)
    on_gpu = device.type == "cuda"
    repeat = args.repeat or (2 if on_gpu else 1)
    extract_n = min(args.n, args.extract_n or (args.n if on_gpu else 1000))
    compare_n = min(args.n, args.compare_n)
    load_before = os.getloadavg()[0]
    tmp = tempfile.TemporaryDirectory()
    weights = args.weights or str(write_random_inception_weights(Path(tmp.name) / "random-inception.pth"))
    weights_note = ("real weights" if args.weights
                    else "RANDOM Inception weights (offline): speeds only, FID values meaningless")
    print(f"device {device}, N = {args.n} generated + {args.n} reference, batch {args.batch}; {weights_note}")

    g = torch.Generator().manual_seed(0)
    shape = (args.n, 3, args.resolution, args.resolution)
    gen_img = torch.randint(0, 256, shape, generator=g, dtype=torch.uint8)
    ref_img = (gen_img.float() * 0.8 + 20).to(torch.uint8)         # a related but different set

    ext = InceptionExtractor(weights, device=device, verify=False, download=False, batch_size=args.batch)
    ext(gen_img[:args.batch])                                          # warm-up (cuDNN, allocator)

    # ---- gankit: extraction (with float64 statistics), then statistics alone ---------------------------------
    wants = {"inception": {"features": (True, True)}}
    kept, t_extract = timed(lambda: extract(TensorSource(gen_img[:extract_n], batch_size=args.batch),
                                            {"inception": ext}, wants)["inception"]["features"], device)
    feats = kept.features().to(device)                                   # [extract_n, 2048] float32

    # The statistics step at N features: the extracted ones, tiled to N rows with a little noise (full rank).
    g_stats = torch.Generator().manual_seed(1)
    stat_feats = (feats.cpu()[torch.arange(args.n) % len(feats)]
                  + 0.01 * torch.randn(args.n, feats.shape[1], generator=g_stats)).to(device)
    stat_rows = statistics_rows(stat_feats, args.batch, device)

    def gankit_fid():
        return evaluate("fid", gen_img, ref_img, extractor="inception", extractors={"inception": ext},
                        batch_size=args.batch, device=device, cache=False)["metrics"]["fid"]

    t_gankit_runs = []
    fid_g1, t = timed(gankit_fid, device)
    t_gankit_runs.append(t)

    # ---- features against torch-fidelity's own extraction path (and the CPU's float32 on a GPU) ---------------
    import torch_fidelity
    from torch_fidelity.utils import create_feature_extractor, get_featuresdict_from_dataset

    def rel_diff(a: torch.Tensor, b: torch.Tensor) -> float:
        a, b = a.detach().cpu().double(), b.detach().cpu().double()
        return float((a - b).norm() / b.norm())

    cmp_img = gen_img[:compare_n]
    ours = ext(cmp_img)["features"]
    tf_ext = create_feature_extractor("inception-v3-compat", ["2048"], cuda=on_gpu,
                                      feature_extractor_weights_path=weights)
    theirs = get_featuresdict_from_dataset(UInt8Images(cmp_img), tf_ext, args.batch, on_gpu, not on_gpu,
                                           False)["2048"]
    feature_rows = [(f"features vs torch-fidelity's extraction path, same device ({compare_n} images)",
                     f"{rel_diff(ours, theirs):.1e}", "‖a − b‖ / ‖b‖")]
    if on_gpu:
        cpu_n = min(compare_n, 200)
        cpu_ext = InceptionExtractor(weights, device="cpu", verify=False, download=False, batch_size=args.batch)
        cpu_feat = cpu_ext(cmp_img[:cpu_n])["features"]
        feature_rows += [
            (f"gankit GPU features vs float32 CPU features ({cpu_n} images)", f"{rel_diff(ours[:cpu_n], cpu_feat):.1e}",
             "gankit extracts in IEEE float32 (target < 1e-4)"),
            (f"torch-fidelity GPU features vs float32 CPU features ({cpu_n} images)",
             f"{rel_diff(theirs[:cpu_n], cpu_feat):.1e}", "PyTorch's default: cuDNN convolutions may use TF32"),
        ]
        del cpu_ext
    del tf_ext

    # ---- what each inference speed-up of the extractor buys (--variants) ---------------------------------------
    variant_rows = []
    if args.variants:
        var_img = gen_img[:extract_n]
        plain = dict(fold_bn=False, channels_last=False, cudnn_benchmark=False)
        ours = dict(fold_bn=True, channels_last=not on_gpu, cudnn_benchmark=True)
        variants = [("torch-fidelity's module as is", plain),
                    ("+ batch norms folded", {**plain, "fold_bn": True})]
        variants += ([("+ cuDNN autotuner (gankit's GPU default)", {**plain, "fold_bn": True, "cudnn_benchmark": True}),
                      ("+ cuDNN autotuner + channels_last", {**ours, "channels_last": True}),
                      ("gankit's GPU default at twice the batch", {**ours, "batch_size": 2 * args.batch})]
                     if on_gpu else [("+ channels_last (gankit's CPU default)", ours)])
        for label, kwargs in variants:
            kwargs = {"batch_size": args.batch, **kwargs}
            var = InceptionExtractor(weights, device=device, verify=False, download=False, **kwargs)
            var(var_img[:kwargs["batch_size"]])
            var(var_img[:extract_n % kwargs["batch_size"] or 1])   # autotune the last batch's shape too
            t_var = timed(lambda: var(var_img), device)[1]
            variant_rows.append((f"extraction variant: {label} ({extract_n} images)",
                                 f"{extract_n / t_var:.1f} images/s", "IEEE float32"))
            del var

    # ---- torch-fidelity: the same images, weights, batch size ------------------------------------------------

    def tf_fid():
        return torch_fidelity.calculate_metrics(
            input1=UInt8Images(gen_img), input2=UInt8Images(ref_img), fid=True, cuda=device.type == "cuda",
            batch_size=args.batch, feature_extractor_weights_path=weights, cache=False, verbose=False,
            save_cpu_ram=device.type != "cuda")["frechet_inception_distance"]

    fid_tf, t_tf = timed(tf_fid, device)
    t_tf_ieee = None
    if on_gpu:   # the same arithmetic as gankit: torch-fidelity with TF32 off
        with exact_float32():
            t_tf_ieee = timed(tf_fid, device)[1]
    for _ in range(repeat - 1):
        t_gankit_runs.append(timed(gankit_fid, device)[1])
    t_gankit = min(t_gankit_runs)

    # ---- the 2048-d trace on the CPU --------------------------------------------------------------------------
    rs = np.random.RandomState(0)
    a, b = rs.randn(4096, 2048), rs.randn(4096, 2048) * 1.1 + 0.1
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    t_sym = statistics.median(timed(lambda: trace_sqrt_product(s1, s2, "symmetric"), torch.device("cpu"))[1]
                              for _ in range(3))
    t_eig = timed(lambda: trace_sqrt_product(s1, s2, "eigvals"), torch.device("cpu"))[1] if args.eigvals else None
    t_sym_dev = None
    if device.type == "cuda":
        trace_sqrt_product(s1, s2, "symmetric", device)                  # warm-up (cuSOLVER handles)
        t_sym_dev = timed(lambda: trace_sqrt_product(s1, s2, "symmetric", device), device)[1]

    rel = abs(fid_g1 - fid_tf) / max(abs(fid_tf), 1e-12)
    if args.n <= 2048:
        regime = ("N <= 2048: the covariances are rank-deficient; gankit's exact low-rank route solves an N x N "
                  "problem where torch-fidelity solves a general 2048 x 2048 eigenproblem, so the end-to-end ratio "
                  "is mostly that difference. Such N is for tracking training, not for paper numbers.")
    else:
        regime = ("N > 2048: both solve a 2048-d problem (gankit: Cholesky + symmetric eigvalsh; torch-fidelity: "
                  "general eigvals); the end-to-end ratio is mostly feature-extraction throughput.")
    name = (torch.cuda.get_device_name(device) if device.type == "cuda"
            else f"CPU ({platform.processor() or platform.machine()}, torch threads: {torch.get_num_threads()})")
    rows = [
        (f"Inception features, gankit (uint8 -> pool3 + logits, streamed float64 statistics; {extract_n} images)",
         f"{t_extract:.2f} s", f"{extract_n / t_extract:.1f} images/s"),
        *stat_rows,
        *feature_rows,
        ("FID end to end, gankit `evaluate` (2N images)", f"{t_gankit:.2f} s",
         "runs: " + ", ".join(f"{t:.2f} s" for t in t_gankit_runs)),
        ("FID end to end, torch-fidelity `calculate_metrics` (2N images)", f"{t_tf:.2f} s", ""),
        ("speed ratio torch-fidelity / gankit, end to end", f"{t_tf / t_gankit:.2f}x",
         "torch-fidelity with PyTorch's default TF32 convolutions" if on_gpu else ""),
        *([("FID end to end, torch-fidelity with TF32 off (gankit's arithmetic)", f"{t_tf_ieee:.2f} s",
            f"ratio torch-fidelity / gankit {t_tf_ieee / t_gankit:.2f}x")] if t_tf_ieee is not None else []),
        *variant_rows,
        ("FID relative difference, gankit vs torch-fidelity", f"{rel:.1e}", f"FID {fid_g1:.6g} vs {fid_tf:.6g}"),
        ("2048-d trace sqrt, symmetric (Cholesky + eigvalsh), CPU", f"{t_sym:.2f} s", "target < 2 s"),
    ]
    if t_eig is not None:
        rows.append(("2048-d trace sqrt, general eigvals (torch-fidelity's form), CPU", f"{t_eig:.2f} s", ""))
    if t_sym_dev is not None:
        rows.append(("2048-d trace sqrt, symmetric, GPU", f"{t_sym_dev * 1000:.0f} ms", ""))
    table = "| quantity | value | note |\n|---|---|---|\n" + "\n".join(f"| {a} | {b} | {c} |" for a, b, c in rows)
    block = (f"### {name}\n\nN = {args.n} generated + {args.n} reference images ({args.resolution}x{args.resolution} "
             f"uint8 noise, resized to 299 by the network), batch {args.batch}, {weights_note}; "
             f"torch {torch.__version__}, torch-fidelity {torch_fidelity.__version__}. Command: "
             f"`python benchmarks/metrics_speed.py --n {args.n} --device {args.device} --batch {args.batch}"
             f"{f' --threads {args.threads}' if args.threads else ''}"
             f"{f' --repeat {args.repeat}' if args.repeat else ''}"
             f"{f' --extract-n {args.extract_n}' if args.extract_n else ''}"
             f"{f' --compare-n {args.compare_n}' if args.compare_n != 1000 else ''}"
             f"{' --variants' if args.variants else ''}"
             f"{' --eigvals' if args.eigvals else ''}`. CPU cores: {os.cpu_count()}, load average during the "
             f"run {load_before:.1f} -> {os.getloadavg()[0]:.1f} (other processes inflate CPU timings).\n\n"
             f"{regime}\n\n"
             f"{table}\n")
    print(block)
    if not args.no_write:
        write_section(KEY, "Metrics speed (benchmarks/metrics_speed.py)", merge_blocks(block, name))
        print(f"updated {DOC}")


def statistics_rows(feats: torch.Tensor, batch: int, device: torch.device) -> list[tuple[str, str, str]]:
    """Time FID's statistics step on features [N, D]: gankit's streaming float64 mean/covariance (fed in batches,
    on ``device``) against torch-fidelity's ``fid_features_to_statistics`` (numpy, float64)."""
    from torch_fidelity.metric_fid import fid_features_to_statistics

    def gankit_stats():
        st = FeatureStats()
        for chunk in feats.split(batch):
            st.append(chunk)
        return st.mean(), st.cov()

    gankit_stats()                                                        # warm-up (BLAS / cuBLAS handles)
    (_, sigma_g), t_stats = timed(gankit_stats, device)
    tf_stats, t_tf_stats = timed(lambda: fid_features_to_statistics(feats.cpu()), device)
    stats_rel = float(np.abs(sigma_g - tf_stats["sigma"]).max() / np.abs(tf_stats["sigma"]).max())
    n = len(feats)
    return [(f"FID statistics of {n} features: gankit streaming float64 mean/cov (batches of {batch})",
             f"{t_stats:.3f} s", f"on {device.type}"),
            (f"FID statistics of {n} features: torch-fidelity np.mean/np.cov", f"{t_tf_stats:.3f} s",
             f"max rel. covariance difference {stats_rel:.1e}")]


def merge_blocks(block: str, name: str) -> str:
    """Keep the other devices' blocks of the section, replace this device's."""
    text = DOC.read_text() if DOC.exists() else ""
    m = re.search(rf"<!-- {KEY} -->\n## [^\n]*\n\n_[^\n]*_\n\n(.*?)<!-- /{KEY} -->", text, re.S)
    blocks = re.split(r"(?m)^(?=### )", m.group(1)) if m else []
    kept = [b.strip() for b in blocks if b.strip().startswith("### ") and not b.startswith(f"### {name}\n")]
    intro = ("gankit's `evaluate` and torch-fidelity's `calculate_metrics` run torch-fidelity's Inception module "
             "with the same weights on the same images. gankit folds its batch norms, uses NHWC on the CPU and "
             "keeps IEEE float32 on the GPU (torch-fidelity leaves PyTorch's TF32 convolutions on), and adds "
             "float64 streaming statistics and its trace route.")
    return "\n\n".join([intro, *kept, block.strip()]) + "\n"


if __name__ == "__main__":
    main()
