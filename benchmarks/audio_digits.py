"""WaveGAN vs SpecGAN on the espeak-ng spoken digits at the same CPU budget, with a real-data floor, and voice
conversion MCD before / after (issue 13). Writes the "audio" section of docs/benchmarks.md.

    python benchmarks/audio_digits.py [--kimg 16] [--root data] [--part all|classifier|wavegan|specgan|vc]

CPU-sized setting (stated in the results): 8 kHz, 4096-sample clips (0.51 s, centre-cropped), model size d = 16,
batch 32, WGAN-GP with the paper's other values; the same kimg for both families. Metrics from a spectrogram
classifier trained here on the train split (its test accuracy is reported): classifier score (IS analogue),
FID on its features against the train split, classes covered, silence and clipping rates; the real-data floor is
the held-out test split scored the same way. Each part is one process of a few minutes (torch threads = 1).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

OPTS = {"rate": 8000, "clip_samples": 4096, "spec_bins": 64}
WORK = Path("/tmp/gankit-audio-bench")


def data_cfg(root: str, split: str = "train"):
    from gankit.config import DataConfig
    return DataConfig(spec="spoken-digits", root=root, split=split, options=dict(OPTS))


def part_classifier(root: str) -> dict:
    from gankit.data import load_dataset
    from gankit.metrics.audio import AudioClassifier, _audio_input_params, logmel_pictures, real_data_scores
    from gankit.metrics.classifier import save_classifier, train_classifier
    train_ds, test_ds = (load_dataset(data_cfg(root, s), ("audio",)) for s in ("train", "test"))
    x, y = train_ds.tensors["audio"], train_ds.tensors["label"]
    xt, yt = test_ds.tensors["audio"], test_ds.tensors["label"]
    model, report = train_classifier(logmel_pictures(x, OPTS["rate"]), y, test_images=logmel_pictures(xt, OPTS["rate"]),
                                     test_labels=yt, epochs=30, batch_size=64, width=16, feature_dim=64, max_shift=1)
    path = save_classifier(WORK / "clf.pt", model, report, class_names=train_ds.info.class_names,
                           data={"spec": "spoken-digits", "input": {"kind": "audio", **_audio_input_params(train_ds.info)}})
    floor = real_data_scores(xt, x, AudioClassifier(str(path)))
    return {"classifier": {k: report[k] for k in ("test_accuracy", "train_images", "test_images", "steps")},
            "floor": floor}


def part_gan(preset: str, root: str, kimg: float) -> dict:
    from gankit.engine import resolve, train
    from gankit.loading import load_sampler
    from gankit.samplers import EvalRequest
    over = {"data.spec": "spoken-digits", "data.root": root, **{f"data.{k}": v for k, v in OPTS.items()},
            "G.model_size": 16, "D.model_size": 16, "batch_size": 32, "kimg": kimg, "tick_kimg": kimg / 8,
            "snapshot_kimg": kimg, "seed": 0}
    cfg = resolve(preset, overrides=over)
    start = time.perf_counter()
    run = train(cfg, out=WORK / "runs", progress=False)
    seconds = time.perf_counter() - start
    sampler = load_sampler(run)
    result = sampler.evaluate(EvalRequest(metrics=["is", "fid", "modes", "silence", "clipping"], data=cfg.data,
                                          n=480, extractor=f"classifier:{WORK / 'clf.pt'}"))
    stats = [json.loads(line) for line in (run / "stats.jsonl").read_text().splitlines()]
    return {"run": str(run), "train_seconds": round(seconds, 1), "steps": stats[-1]["step"],
            "metrics": result["metrics"]}


def part_vc(root: str, kimg: float, presets: tuple[str, ...]) -> dict:
    from gankit.engine import resolve, train
    from gankit.loading import load_sampler
    from gankit.samplers import EvalRequest
    out = {}
    for preset in presets:
        over = {"data.root": root, "data.utterances": 24, "data.frames": 64, "data.mcep_dim": 24,
                "G.width": 0.125, "D.width": 0.125, "batch_size": 8, "kimg": kimg, "tick_kimg": kimg / 4,
                "snapshot_kimg": kimg, "identity_kimg": kimg / 2, "seed": 0}
        cfg = resolve(preset, overrides=over)
        start = time.perf_counter()
        run = train(cfg, out=WORK / "runs", progress=False)
        seconds = time.perf_counter() - start
        result = load_sampler(run).evaluate(EvalRequest(data=cfg.data))
        out[preset] = {"run": str(run), "train_seconds": round(seconds, 1), **result["metrics"],
                       "utterances": result["protocol"]["utterances"]}
    return out


def report() -> None:
    from _report import write_section
    r = {p.stem: json.loads(p.read_text()) for p in WORK.glob("*.json")}
    lines = ["Command: `python benchmarks/audio_digits.py` (each part one process, `torch.set_num_threads(1)`), on a "
             "2-core CPU shared with other engineers' jobs (load average ~10 during the runs: wall times are "
             "inflated and only comparable within this table).", ""]
    if "classifier" in r:
        c = r["classifier"]["classifier"]
        lines += [f"Setting: espeak-ng spoken digits (720 train / 240 test clips, disjoint voices), 8 kHz, 4096-sample "
                  f"clips; WaveGAN / SpecGAN with d = 16, batch 32, WGAN-GP (lambda 10, 5 D steps, Adam 1e-4 "
                  f"(0.5, 0.9)), the same kimg for both. Classifier: SmallCNN on 32x32 log-mel pictures, "
                  f"{c['steps']} steps, test accuracy {c['test_accuracy']:.3f} on the held-out voices.", "",
                  "| model | kimg | G steps | train s | score (IS analogue) | FID (classifier features) | classes hit | "
                  "silence | clipping |", "|---|---|---|---|---|---|---|---|---|"]
        f = r["classifier"]["floor"]
        lines.append(f"| real test split (floor) | - | - | - | {f['is']:.2f} | {f['fid']:.2f} | {f['modes']} | "
                     f"{f['silence']:.3f} | {f['clipping']:.4f} |")
    for name in ("wavegan", "specgan"):
        if name in r:
            g, m = r[name], r[name]["metrics"]
            lines.append(f"| {name} | {r[name].get('kimg', '')} | {g['steps']} | {g['train_seconds']} | {m['is']:.2f} | "
                         f"{m['fid']:.2f} | {m['modes']} | {m['silence']:.3f} | {m['clipping']:.4f} |")
    gans = [r[n] for n in ("wavegan", "specgan") if n in r]
    if gans and "classifier" in r and max(g["metrics"]["is"] for g in gans) < 0.5 * r["classifier"]["floor"]["is"]:
        lines += ["", f"Reading: after {max(g['steps'] for g in gans)} generator steps neither family has learned "
                  "speech (scores near 1, FID far above the floor; SpecGAN's untrained G outputs the mean "
                  "log-magnitude, which is quiet, hence its silence rate). A meaningful comparison needs thousands of "
                  "G steps (the paper trains about 200k iterations on a GPU); none was available here."]
    vc = {k: v for name, part in r.items() if name.startswith("vc") for k, v in part.items()}
    if vc:
        lines += ["", "Voice conversion (digit-voices: A = en-us+m3 pitch 35, B = en-us+f2 pitch 70; 24 non-parallel "
                  "training utterances per speaker, parallel test utterances; 24 mel-cepstra, 64-frame segments, "
                  "width 1/8, batch 8). MCD in dB after DTW, c1..c23, converted in feature space. The two models ran at "
                  "different kimg (VC2 is about 3x slower per image here and had to fit one 5-minute process), so "
                  "the rows are not a VC1-vs-VC2 comparison:", "",
                  "| model | kimg | train s | MCD before (A vs B) | per-coefficient mean/std mapping (no network) | "
                  "MCD after (G_ab(A) vs B) | test utterances |",
                  "|---|---|---|---|---|---|---|"]
        for name, v in sorted(vc.items()):
            lines.append(f"| {name} | {v.get('kimg', '')} | {v['train_seconds']} | {v['mcd_before']:.2f} | "
                         f"{v.get('mcd_stats_only', float('nan')):.2f} | {v['mcd']:.2f} +- {v['mcd_std']:.2f} | "
                         f"{v['utterances']} |")
    write_section("audio", "Audio: WaveGAN vs SpecGAN on spoken digits; voice conversion MCD", "\n".join(lines))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--part", default="all", choices=["all", "classifier", "wavegan", "specgan", "vc", "report"])
    ap.add_argument("--kimg", type=float, default=16.0)
    ap.add_argument("--vc-kimg", type=float, default=2.0)
    ap.add_argument("--root", default=str(WORK / "data"))
    ap.add_argument("--vc-preset", default="cyclegan-vc,cyclegan-vc2", help="voice presets of the vc part")
    args = ap.parse_args()
    torch.set_num_threads(1)
    warnings.simplefilter("ignore")
    WORK.mkdir(parents=True, exist_ok=True)
    parts = ["classifier", "wavegan", "specgan", "vc"] if args.part == "all" else [args.part]
    for part in parts:
        if part == "report":
            break
        if part == "classifier":
            result = part_classifier(args.root)
        elif part == "vc":
            result = part_vc(args.root, args.vc_kimg, tuple(args.vc_preset.split(",")))
            for v in result.values():
                v["kimg"] = args.vc_kimg
        else:
            result = {**part_gan(part, args.root, args.kimg), "kimg": args.kimg}
        name = part if part != "vc" else "vc_" + args.vc_preset.replace(",", "_")
        (WORK / f"{name}.json").write_text(json.dumps(result, indent=2))
        print(part, json.dumps(result)[:400], flush=True)
    report()


if __name__ == "__main__":
    main()
