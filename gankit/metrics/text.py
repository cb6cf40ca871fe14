"""Text metrics and their evaluation card: oracle NLL, NLL of held-out text, BLEU (SeqGAN's form), self-BLEU,
n-gram Jensen-Shannon divergence, novelty, distinct-n, and the quality-diversity curve over temperatures.

Quality and diversity are both needed (Caccia et al. 2020, "Language GANs Falling Short"): a model that repeats
one good sentence has a high BLEU and a perfect oracle NLL, and only self-BLEU, distinct-n, the n-gram JSD and
the NLL of held-out text under the model show the collapse.

BLEU in SeqGAN's / Texygen's form (Yu et al. 2017, sec. 5.2; Zhu et al. 2018, Texygen): for every generated
sequence, ``nltk.translate.bleu_score.sentence_bleu(references=the whole held-out set, hypothesis,
weights=(1/n,)*n, smoothing_function=SmoothingFunction().method1)``, averaged. nltk compares the hypothesis
with every reference for every sample (O(N_gen x N_ref)); ``BleuReference`` precomputes, for each n-gram, its
largest count in any reference and the sorted reference lengths, which is all sentence BLEU reads, so the same
number costs O(N_gen x L). ``tests/test_text.py`` checks it equal to nltk's. Self-BLEU (Texygen): each
generated sequence against all the other generated ones, computed the same way with leave-one-out maxima.

Numbers change with the smoothing method, the tokenisation and the reference set: the card records them, and
the nltk version (which only the slow check uses).
"""
from __future__ import annotations

import bisect
import math
import time
from collections import Counter
from typing import Any, Callable, Iterable, Sequence

import torch

from ..errors import ConfigError
from .base import MetricSpec, metrics
from .evaluate import CARD_FORMAT, CARD_VERSION

BLEU_EPSILON = 0.1                 # nltk SmoothingFunction().method1's epsilon (its default, Texygen's setting)
DEFAULT_BLEU_N = (2, 3, 4, 5)
DEFAULT_TEMPERATURES = (0.5, 0.7, 0.85, 1.0, 1.2, 1.5)

Tokens = Sequence[Any]


def ngrams(tokens: Tokens, n: int) -> list[tuple]:
    return [tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1)]


# ---- BLEU --------------------------------------------------------------------------------------------------

class BleuReference:
    """What nltk's sentence BLEU reads of a reference set, precomputed once: for every order n <= ``max_n``,
    the largest count of each n-gram in any one reference (nltk's ``max_counts``), and the reference lengths
    (for the closest reference length of the brevity penalty)."""

    def __init__(self, references: Iterable[Tokens], max_n: int = 5):
        refs = [list(r) for r in references]
        if not refs:
            raise ConfigError("BLEU needs at least one reference sequence.")
        self.max_n = max_n
        self.max_counts: list[dict[tuple, int]] = [{}]
        for n in range(1, max_n + 1):
            best: dict[tuple, int] = {}
            for r in refs:
                for g, c in Counter(ngrams(r, n)).items():
                    if c > best.get(g, 0):
                        best[g] = c
            self.max_counts.append(best)
        self.lengths = sorted({len(r) for r in refs})
        self.size = len(refs)

    def closest_length(self, hyp_len: int) -> int:
        """nltk's closest_ref_length: the reference length nearest to ``hyp_len``, the shorter one on ties."""
        i = bisect.bisect_left(self.lengths, hyp_len)
        candidates = self.lengths[max(0, i - 1):i + 1]
        return min(candidates, key=lambda r: (abs(r - hyp_len), r))

    def clipped(self, hyp: Tokens, n: int) -> tuple[int, int]:
        counts = Counter(ngrams(hyp, n))
        best = self.max_counts[n]
        return sum(min(c, best.get(g, 0)) for g, c in counts.items()), max(1, sum(counts.values()))


def bleu_from_counts(matches: Sequence[int], totals: Sequence[int], hyp_len: int, ref_len: int,
                     epsilon: float = BLEU_EPSILON) -> float:
    """Sentence BLEU-N from clipped n-gram matches and totals for n = 1..N, as nltk computes it with uniform
    weights and smoothing method1 (Papineni et al. 2002; Chen & Cherry 2014, method 1):
    BP = 1 if hyp_len > ref_len, 0 if hyp_len = 0, else exp(1 - ref_len / hyp_len);
    p_n = matches / totals, or epsilon / totals where matches = 0; 0 when no unigram matches at all;
    BLEU = BP exp(sum_n (1/N) log p_n)."""
    if matches[0] == 0:
        return 0.0
    n_max = len(matches)
    if hyp_len > ref_len:
        bp = 1.0
    elif hyp_len == 0:
        bp = 0.0
    else:
        bp = math.exp(1 - ref_len / hyp_len)
    weight = 1.0 / n_max
    logs = (weight * math.log(m / t if m else (m + epsilon) / t) for m, t in zip(matches, totals))
    return bp * math.exp(math.fsum(logs))


def sentence_bleu(hyp: Tokens, ref: BleuReference, n: int, epsilon: float = BLEU_EPSILON) -> float:
    """nltk's ``sentence_bleu(references, hyp, (1/n,)*n, SmoothingFunction(epsilon).method1)``, fast."""
    if n > ref.max_n:
        raise ValueError(f"this BleuReference holds n-grams up to {ref.max_n}, BLEU-{n} was asked")
    pairs = [ref.clipped(hyp, k) for k in range(1, n + 1)]
    return bleu_from_counts([m for m, _ in pairs], [t for _, t in pairs], len(hyp), ref.closest_length(len(hyp)),
                            epsilon)


def bleu(hyps: Sequence[Tokens], references: Sequence[Tokens] | BleuReference, orders: Sequence[int] = DEFAULT_BLEU_N,
         epsilon: float = BLEU_EPSILON) -> dict[int, float]:
    """Mean sentence BLEU-n of ``hyps`` against the whole reference set, for each n in ``orders``."""
    ref = references if isinstance(references, BleuReference) else BleuReference(references, max(orders))
    return {n: sum(sentence_bleu(h, ref, n, epsilon) for h in hyps) / max(len(hyps), 1) for n in orders}


def self_bleu(samples: Sequence[Tokens], orders: Sequence[int] = DEFAULT_BLEU_N, epsilon: float = BLEU_EPSILON
              ) -> dict[int, float]:
    """Mean sentence BLEU-n of each sample against all the other samples (Zhu et al. 2018, Texygen), for each n.

    Leave-one-out, exactly: per n-gram the largest count, how many samples reach it and the second largest,
    so the maximum over the others is the second largest where this sample is the only one at the top; the
    lengths of the others are a multiset minus this sample's own."""
    samples = [list(s) for s in samples]
    if len(samples) < 2:
        raise ConfigError("self-BLEU needs at least 2 samples.")
    max_n = max(orders)
    counts = [[Counter(ngrams(s, n)) for n in range(max_n + 1)] for s in samples]
    top: list[dict[tuple, list[int]]] = [{}]       # n-gram -> [largest, how many reach it, second largest]
    for n in range(1, max_n + 1):
        table: dict[tuple, list[int]] = {}
        for c in counts:
            for g, k in c[n].items():
                t = table.setdefault(g, [0, 0, 0])
                if k > t[0]:
                    t[0], t[1], t[2] = k, 1, t[0]
                elif k == t[0]:
                    t[1] += 1
                elif k > t[2]:
                    t[2] = k
        top.append(table)
    length_counts = Counter(len(s) for s in samples)
    lengths = sorted(length_counts)
    out = {n: 0.0 for n in orders}
    for i, s in enumerate(samples):
        own = len(s)
        others = [r for r in lengths if r != own or length_counts[r] > 1]
        j = bisect.bisect_left(others, own)
        ref_len = min(others[max(0, j - 1):j + 1], key=lambda r: (abs(r - own), r))
        matches, totals = [], []
        for n in range(1, max_n + 1):
            m = 0
            for g, k in counts[i][n].items():
                best, at_best, second = top[n][g]
                others_max = second if (k == best and at_best == 1) else best
                m += min(k, others_max)
            matches.append(m)
            totals.append(max(1, sum(counts[i][n].values())))
        for n in orders:
            out[n] += bleu_from_counts(matches[:n], totals[:n], own, ref_len, epsilon)
    return {n: v / len(samples) for n, v in out.items()}


# ---- distribution and diversity measures ------------------------------------------------------------------

def ngram_jsd(gen: Sequence[Tokens], ref: Sequence[Tokens], n: int) -> float:
    """Jensen-Shannon divergence (bits, in [0, 1]) between the n-gram frequency distributions of two sets:
    JSD = 1/2 KL(P || M) + 1/2 KL(Q || M), M = (P + Q) / 2."""
    p, q = Counter(g for s in gen for g in ngrams(s, n)), Counter(g for s in ref for g in ngrams(s, n))
    sp, sq = sum(p.values()), sum(q.values())
    if not sp or not sq:
        return float("nan")
    total = 0.0
    for g in p.keys() | q.keys():
        pg, qg = p.get(g, 0) / sp, q.get(g, 0) / sq
        m = 0.5 * (pg + qg)
        if pg:
            total += 0.5 * pg * math.log2(pg / m)
        if qg:
            total += 0.5 * qg * math.log2(qg / m)
    return total


def distinct_n(samples: Sequence[Tokens], n: int) -> float:
    """Distinct-n (Li et al. 2016): different n-grams / all n-grams over the whole sample set."""
    grams = [g for s in samples for g in ngrams(s, n)]
    return len(set(grams)) / len(grams) if grams else 0.0


def novelty(samples: Sequence[Tokens], train: set[tuple]) -> float:
    """Share of samples that are not a sequence of the training set."""
    return sum(tuple(s) not in train for s in samples) / max(len(samples), 1)


def unique_share(samples: Sequence[Tokens]) -> float:
    """Different samples / samples (1 / N when one sequence is repeated)."""
    return len({tuple(s) for s in samples}) / max(len(samples), 1)


# ---- the metrics as registered names -----------------------------------------------------------------------

TEXT = "text"                       # MetricSpec.output of metrics computed by ``evaluate_text``


def _by_evaluate_text(*_: Any) -> dict:
    raise ConfigError("text metrics are computed by gankit.metrics.text.evaluate_text (a text model's sampler).")


_SPECS = {
    "oracle_nll": dict(values=("oracle_nll", "oracle_nll_seq"), higher_is_better=False,
                       description="Mean NLL of the samples under the oracle (nats per token; _seq: per sequence)"),
    "nll_test": dict(values=("nll_test", "nll_test_seq"), higher_is_better=False,
                     description="Mean NLL of held-out data under the model at the sampling temperature"),
    "bleu": dict(values=tuple(f"bleu{n}" for n in (4, 2, 3, 5)), higher_is_better=True,
                 description="SeqGAN BLEU: each sample against the whole held-out set (nltk method1), averaged"),
    "self_bleu": dict(values=tuple(f"self_bleu{n}" for n in (4, 2, 3, 5)), higher_is_better=False,
                      description="Texygen self-BLEU: each sample against the other samples (diversity)"),
    "ngram_jsd": dict(values=tuple(f"ngram_jsd{n}" for n in (2, 1, 3, 4)), higher_is_better=False,
                      description="Jensen-Shannon divergence (bits) of n-gram frequencies, samples vs held-out"),
    "novelty": dict(values=("novelty", "unique"), higher_is_better=True,
                    description="Share of samples not in the training set (and share of different samples)"),
    "distinct": dict(values=tuple(f"distinct{n}" for n in (2, 1, 3, 4)), higher_is_better=True,
                     description="Distinct-n: different n-grams / all n-grams of the samples"),
    "temperature_curve": dict(values=(), higher_is_better=True,
                              description="Quality (oracle NLL, BLEU) against diversity (NLL_test, self-BLEU) "
                                          "over sampling temperatures (Caccia et al. 2020)"),
}
for _name, _kw in _SPECS.items():
    metrics.register(_name)(MetricSpec(name=_name, output=TEXT, needs_ref=_name != "oracle_nll", keep_gen=False,
                                       keep_ref=False, compute=_by_evaluate_text, needs_moments=False, **_kw))
TEXT_METRICS = tuple(_SPECS)
DEFAULT_TEXT_METRICS = ("oracle_nll", "nll_test", "bleu", "self_bleu", "ngram_jsd", "novelty", "distinct")


# ---- evaluation ----------------------------------------------------------------------------------------------

def evaluate_text(metric_names: str | Iterable[str] | None, sampler: Any, reference: Sequence[Tokens],
                  train: Sequence[Tokens] | None = None, *, n: int = 1000, seed: int = 0,
                  temperature: float | None = None, temperatures: Sequence[float] = DEFAULT_TEMPERATURES,
                  bleu_orders: Sequence[int] = DEFAULT_BLEU_N, n_self: int | None = None,
                  oracle: Callable[[torch.Tensor], torch.Tensor] | None = None,
                  reference_tokens: torch.Tensor | None = None, protocol: dict | None = None) -> dict[str, Any]:
    """The text evaluation card of ``sampler`` (``draw_tokens(n, seed, temperature) -> [n, L]``,
    ``token_lists(tokens) -> lists``, ``log_probs(tokens, temperature) -> [n, L]`` or None, ``length``).

    reference: held-out token lists (BLEU references, JSD's data distribution); reference_tokens: the same as an
    [N, L] tensor, for the NLL of held-out data under the model; train: the training sequences (novelty);
    oracle: tokens [N, L] -> -log p per sequence [N] under the true model (oracle data only).
    """
    start = time.perf_counter()
    if metric_names is None:
        names = list(DEFAULT_TEXT_METRICS)
    elif isinstance(metric_names, str):
        names = [m for m in metric_names.split(",") if m]
    else:
        names = list(metric_names)
    wrong = [m for m in names if m not in TEXT_METRICS]
    if wrong:
        raise ConfigError(f"Metrics {wrong} do not apply to text models; text metrics: {', '.join(TEXT_METRICS)}.")
    if oracle is None and "oracle_nll" in names:
        if metric_names is None:
            names.remove("oracle_nll")
        else:
            raise ConfigError("oracle_nll needs oracle data (--data oracle or oracle-small); this model's data has "
                              "no known true distribution.")
    if "novelty" in names and train is None:
        if metric_names is None:
            names.remove("novelty")
        else:
            raise ConfigError("novelty needs the training set (evaluate against the run's own data).")
    if "nll_test" in names and (sampler.log_probs_available is False or reference_tokens is None):
        if metric_names is None:
            names.remove("nll_test")
        else:
            raise ConfigError("nll_test needs a model with likelihoods (text-mle, seqgan, relgan) and held-out data.")
    temp = sampler.default_temperature if temperature is None else float(temperature)
    values: dict[str, Any] = {}
    per_metric: dict[str, Any] = {}
    bleu_ref = BleuReference(reference, max(bleu_orders)) if {"bleu", "temperature_curve"} & set(names) else None
    train_set = {tuple(s) for s in train} if train is not None else None

    def score(t: float, which: Sequence[str]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        tokens = sampler.draw_tokens(n, seed, t)                             # [n, L]
        lists = sampler.token_lists(tokens)
        if "oracle_nll" in which and oracle is not None:
            seq = oracle(tokens).double()                                    # [n] nats per sequence
            out["oracle_nll_seq"] = float(seq.mean())
            out["oracle_nll"] = float(seq.mean() / tokens.shape[1])
        if "nll_test" in which and reference_tokens is not None:
            logp = sampler.log_probs(reference_tokens, t).double()           # [N_ref, L]
            out["nll_test_seq"] = float(-logp.sum(1).mean())
            out["nll_test"] = float(-logp.mean())
        if "bleu" in which:
            out.update({f"bleu{k}": v for k, v in bleu(lists, bleu_ref, bleu_orders).items()})
        if "self_bleu" in which:
            subset = lists[:n_self] if n_self else lists
            out.update({f"self_bleu{k}": v for k, v in self_bleu(subset, bleu_orders).items()})
        if "ngram_jsd" in which:
            out.update({f"ngram_jsd{k}": ngram_jsd(lists, reference, k) for k in (1, 2, 3, 4)})
        if "novelty" in which and train_set is not None:
            out["novelty"] = novelty(lists, train_set)
            out["unique"] = unique_share(lists)
        if "distinct" in which:
            out.update({f"distinct{k}": distinct_n(lists, k) for k in (1, 2, 3, 4)})
        return out

    values.update(score(temp, names))
    if "temperature_curve" in names:
        which = [m for m in ("oracle_nll", "nll_test", "bleu", "self_bleu") if m != "oracle_nll" or oracle]
        if not sampler.log_probs_available:
            which.remove("nll_test")
        values["curve"] = [{"temperature": t, **score(t, which)} for t in temperatures]
        per_metric["temperature_curve"] = {"temperatures": list(temperatures), "metrics": which}
    try:
        import nltk  # recorded only: the fast form reproduces its numbers (tests/test_text.py)
        nltk_version = nltk.__version__
    except ImportError:
        nltk_version = "not installed (gankit's fast form, tested equal to nltk 3.10)"
    per_metric.update({
        "bleu": {"form": "SeqGAN/Texygen: nltk sentence_bleu of each sample against the whole reference set, "
                         "uniform weights 1/n, averaged", "smoothing": f"nltk SmoothingFunction().method1, "
                                                                   f"epsilon {BLEU_EPSILON}",
                 "orders": list(bleu_orders), "nltk_version": nltk_version,
                 "implementation": "gankit.metrics.text (max reference n-gram counts, equal to nltk)"},
        "self_bleu": {"form": "Texygen: each sample against all other samples", "n": min(n, n_self or n)},
        "ngram_jsd": {"units": "bits", "orders": [1, 2, 3, 4], "against": "held-out data"},
        "oracle_nll": {"units": "nats per token (oracle_nll) and per sequence (oracle_nll_seq)"},
        "nll_test": {"units": "nats per token and per sequence, pads included, model at the sampling temperature"},
    })
    return {"format": CARD_FORMAT, "version": CARD_VERSION, "metrics": values,
            "metric_protocols": {m: per_metric.get(m, {}) for m in names},
            "protocol": {"n_gen": n, "n_ref": len(reference), "seed": seed, "temperature": temp,
                         "device": str(getattr(sampler, "device", "cpu")), "wall_time_s": round(time.perf_counter() - start, 2),
                         "tokens": "the model's vocabulary; sequences cut at the first pad",
                         "generated": {}, **(protocol or {})}}
