"""Text GANs against maximum likelihood at one CPU budget (issue 12; Caccia et al. 2020's comparison, small).

For each dataset (``--data oracle-small,words``):

1. ``text-mle`` trains for ``--mle-kimg`` + ``--adv-kimg`` thousand sequences (the MLE baseline); its snapshot at
   ``--mle-kimg`` is the pre-trained generator of the GANs.
2. ``seqgan`` and ``relgan`` start from that snapshot (``--init-from``, pretrain_kimg = 0; SeqGAN pre-trains D
   for ``--d-pre-kimg`` inside its budget) and train for ``--adv-kimg`` more: the same number of real sequences
   as the MLE baseline in all. SeqGAN's roll-outs: ``--rollouts`` per prefix, every prefix of the sequence.
3. ``text-wgan-gp`` trains from scratch for the whole budget (``--mle-kimg`` + ``--adv-kimg``; no pre-training
   in the paper).

Every run is the preset's config with only these lengths (and the seed) changed, on one CPU thread. Each final
model is scored by ``gankit.metrics.text.evaluate_text`` (``--n`` samples at its default temperature, BLEU
against the held-out split, novelty against the training split), and its temperature curve over ``--temps``.
The data itself is the reference row: n fresh oracle samples (the true model), or n training sequences of
file data (novelty 0 by construction), scored exactly as the models' samples.

    python benchmarks/text_families.py [--data oracle-small,words] [--mle-kimg 20] [--adv-kimg 8] [--n 500]

Writes docs/benchmarks.md sections "text_<data>".
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from _report import write_section  # noqa: E402

COLUMNS = ("oracle_nll", "nll_test", "bleu2", "bleu4", "self_bleu2", "self_bleu4", "ngram_jsd2", "novelty", "unique",
           "distinct2")


class _DataSampler:
    """The held-out data as a 'model': the reference row of the table."""
    default_temperature = 1.0
    log_probs_available = False

    def __init__(self, tokens, vocab):
        self.tokens, self.vocab = tokens, vocab

    def draw_tokens(self, n, seed, temperature=None):
        return self.tokens[:n]

    def token_lists(self, tokens):
        return self.vocab.token_lists(tokens)


def train_run(preset: str, data: str, out: str, overrides: dict) -> tuple[Path, float]:
    import gankit
    cfg = gankit.resolve(preset, overrides={"data.spec": data, "keep_snapshots": True, **overrides})
    start = time.perf_counter()
    run = gankit.train(cfg, out=out, progress=False)
    return run, time.perf_counter() - start


def score(run: Path, n: int, temps: list[float]) -> dict:
    from gankit.loading import load_recipe
    from gankit.samplers import EvalRequest
    recipe, cfg, _, nets = load_recipe(run / "latest.pt")
    sampler = recipe.samplers(nets)["default"]
    names = ["oracle_nll"] if recipe.info.extras.get("oracle") else []
    names += (["nll_test"] if sampler.log_probs_available else []) + ["bleu", "self_bleu", "ngram_jsd", "novelty",
                                                                       "distinct", "temperature_curve"]
    card = sampler.evaluate(EvalRequest(metrics=names, data=cfg.data, n=n, seed=2024,
                                        options={"temperatures": temps}))
    return card


def data_row(data: str, n: int) -> dict:
    """The data scored as a model, with the models' protocol (n 'samples' against the same held-out
    references): n fresh draws from the oracle (the true model), or n training sequences for file data (whose
    novelty is then 0 by construction)."""
    import torch
    from gankit.config import DataConfig
    from gankit.data import load_dataset
    from gankit.data.text import Vocabulary, oracle_from_info
    from gankit.metrics.text import evaluate_text
    test = load_dataset(DataConfig(spec=data, split="test"), ("sequence",))
    train = load_dataset(DataConfig(spec=data), ("sequence",))
    vocab = Vocabulary.from_info(test.info)
    oracle = oracle_from_info(train.info)
    if oracle is not None:
        rows = oracle.sample(n, torch.Generator().manual_seed(99))
    else:
        pick = torch.randperm(len(train), generator=torch.Generator().manual_seed(99))[:n]
        rows = train.tensors["tokens"][pick]
    names = ("oracle_nll," if oracle else "") + "bleu,self_bleu,ngram_jsd,novelty,distinct"
    return evaluate_text(names, _DataSampler(rows, vocab), vocab.token_lists(test.tensors["tokens"]),
                         vocab.token_lists(train.tensors["tokens"]), n=n,
                         oracle=oracle.nll if oracle else None)["metrics"]


def fmt(v) -> str:
    return "-" if v is None else (f"{v:.3f}" if isinstance(v, float) else str(v))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="oracle-small,words")
    ap.add_argument("--mle-kimg", type=float, default=20.0)
    ap.add_argument("--adv-kimg", type=float, default=8.0)
    ap.add_argument("--d-pre-kimg", type=float, default=2.0)
    ap.add_argument("--rollouts", type=int, default=8)
    ap.add_argument("--n", type=int, default=500)
    ap.add_argument("--temps", default="0.5,0.7,0.85,1.0,1.2,1.5")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None, help="where runs go (default: a temporary folder)")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    import torch
    torch.set_num_threads(1)
    temps = [float(t) for t in args.temps.split(",")]
    out = args.out or tempfile.mkdtemp(prefix="gankit-text-")
    total = args.mle_kimg + args.adv_kimg
    for data in args.data.split(","):
        results, walls, curves = {}, {}, {}
        common = {"seed": args.seed, "tick_kimg": 1.0}
        mle_run, walls["text-mle"] = train_run("text-mle", data, out, {**common, "kimg": total,
                                                                       "snapshot_kimg": args.mle_kimg})
        pre = sorted(mle_run.glob("ckpt-*.pt"))[0]                     # the snapshot at --mle-kimg
        runs = {"text-mle": mle_run}
        runs["seqgan"], walls["seqgan"] = train_run("seqgan", data, out, {
            **common, "kimg": args.adv_kimg, "snapshot_kimg": args.adv_kimg, "init_from": str(pre),
            "opts.pretrain_kimg": 0.0, "opts.d_pretrain_kimg": args.d_pre_kimg, "opts.rollouts": args.rollouts})
        runs["relgan"], walls["relgan"] = train_run("relgan", data, out, {
            **common, "kimg": args.adv_kimg, "snapshot_kimg": args.adv_kimg, "init_from": str(pre),
            "opts.pretrain_kimg": 0.0})
        runs["text-wgan-gp"], walls["text-wgan-gp"] = train_run("text-wgan-gp", data, out, {
            **common, "kimg": total, "snapshot_kimg": total})
        for name, run in runs.items():
            card = score(run, args.n, temps)
            results[name] = card["metrics"]
            curves[name] = card["metrics"].get("curve", [])
            print(name, json.dumps({k: results[name].get(k) for k in COLUMNS}), flush=True)
        ref = data_row(data, args.n)
        lines = [f"Command: `python benchmarks/text_families.py --data {data} --mle-kimg {args.mle_kimg} "
                 f"--adv-kimg {args.adv_kimg} --d-pre-kimg {args.d_pre_kimg} --rollouts {args.rollouts} "
                 f"--n {args.n}` on {platform.node() or 'this machine'} ({os.cpu_count()} cores, shared with "
                 f"other engineers' jobs: load average ~{os.getloadavg()[0]:.0f}, so wall times are inflated "
                 f"and only roughly comparable), torch {torch.__version__}, one thread, seed {args.seed}.",
                 "",
                 f"Budget: {total:g} kimg of real sequences per family (batch 64). text-mle: all of it by MLE; "
                 f"seqgan and relgan: {args.mle_kimg:g} kimg of the same MLE run (its snapshot, `--init-from`) "
                 f"then {args.adv_kimg:g} kimg adversarial (SeqGAN: {args.d_pre_kimg:g} kimg D pre-training, "
                 f"then 1 G step with {args.rollouts} roll-outs per prefix and 3 D steps per step); "
                 f"text-wgan-gp: all of it from scratch (10 critic batches per G step). Scores: {args.n} "
                 "samples at each model's default temperature (1; text-wgan-gp: argmax), BLEU against the "
                 "held-out split (SeqGAN form, nltk method1), novelty against the training split.",
                 "",
                 "| model | wall s | " + " | ".join(COLUMNS) + " |",
                 "|---|---|" + "---|" * len(COLUMNS),
                 "| data (oracle samples / training sequences) | - | "
                 + " | ".join(fmt(ref.get(k)) for k in COLUMNS) + " |"]
        for name in runs:
            lines.append(f"| {name} | {walls[name]:.0f} | " + " | ".join(fmt(results[name].get(k)) for k in COLUMNS)
                         + " |")
        lines += ["", "Temperature curves (quality: oracle NLL / BLEU-4; diversity: NLL_test / self-BLEU-4; lower "
                  "NLL is better, lower self-BLEU is more diverse):", "",
                  "| model | T | oracle_nll | bleu4 | nll_test | self_bleu4 |", "|---|---|---|---|---|---|"]
        for name, curve in curves.items():
            for point in curve:
                lines.append(f"| {name} | {point['temperature']:g} | {fmt(point.get('oracle_nll'))} | "
                             f"{fmt(point.get('bleu4'))} | {fmt(point.get('nll_test'))} | "
                             f"{fmt(point.get('self_bleu4'))} |")
        body = "\n".join(lines)
        print(body, flush=True)
        if not args.no_write:
            write_section(f"text_{data}", f"Text families on {data} (issue 12)", body)


if __name__ == "__main__":
    main()
