"""Sequence data: token sequences from text files and word lists, and the SeqGAN oracle.

Kind ``sequence``: items ``{'tokens': int64 [L]}``, every sequence padded (or cropped) to the same length L.
The vocabulary travels in ``DataInfo.extras`` (so in every checkpoint's ``data_info``) and is what samplers
decode with:

    extras = {"vocab": [token strings, id order], "pad": 0 or -1 (no padding), "separator": "" (characters) or
              " " (words), "tokens": "char" | "word" | "oracle", "length": L, "oracle": {...} (oracle only),
              }

Padding: id 0 is ``<pad>`` for file data; a sequence ends at its first pad and every later position is a pad,
so a model of fixed-length sequences learns where lines end (an end-of-sequence token that repeats). The
oracle has no pad: every sequence has exactly L tokens, as in SeqGAN.

Sources (all offline):
    a ``.txt`` file (one sequence per line) or a folder of ``.txt`` files     character or word tokens
    builtin ``oracle``        SeqGAN's synthetic task (Yu et al. 2017, sec. 5): a randomly initialised LSTM
                              (every parameter ~ N(0, 1)) generates the corpus, so the true NLL of any sequence
                              is known. Paper sizes: vocabulary 5,000, length 20, 10,000 sequences.
    builtin ``oracle-small``  the same with vocabulary 200, length 12, 5,000 sequences (CPU runs)
    builtin ``words``         English words from the ``english-words`` package (web2 list), character tokens

Splits: ``data.split=test`` is held-out data for metrics (BLEU references, NLL of held-out text): for files a
fixed 10% of the lines (seeded permutation, seed 0); for the oracle a separate draw of size / 10 sequences.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, fields
from functools import lru_cache
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn

from ..config import dataclass_from_dict
from ..errors import DataError
from .base import DataInfo, MemoryDataset, register_kind
from .catalog import PathFormat, builtin, path_formats

PAD = "<pad>"
UNK = "<unk>"
TOKENISERS = ("char", "word")
HELD_OUT_SHARE = 0.1
MAX_AUTO_LENGTH = 64


@dataclass
class SequenceOptions:
    """Options of the ``sequence`` kind (``--set data.length=20``)."""
    tokens: str = "char"          # file data: char | word (words split on whitespace)
    length: int = 0               # pad / crop every sequence to this many tokens (0 = longest line, at most 64;
                                  # oracle: its own length, 20 for ``oracle``)
    vocab_size: int = 0           # word tokens: keep the most frequent (rest -> <unk>); oracle: its vocabulary
                                  # (0 = all words / the builtin's own)
    size: int = 0                 # use at most this many training sequences (seeded subset; oracle: how many it
                                  # generates) (0 = all / the builtin's own)
    oracle_seed: int = 0          # oracle: seed of its random weights and of its corpus

    def __post_init__(self) -> None:
        if self.tokens not in TOKENISERS:
            raise DataError(f"data.tokens must be one of {', '.join(TOKENISERS)}, got {self.tokens!r}.")
        for name in ("length", "vocab_size", "size"):
            if getattr(self, name) < 0:
                raise DataError(f"data.{name} must be >= 0, got {getattr(self, name)}.")


SEQUENCE = register_kind("sequence", "{'tokens': int64 [L]} (vocabulary in info.extras['vocab'])",
                         options=SequenceOptions)


def sequence_options(cfg: Any) -> SequenceOptions:
    names = {f.name for f in fields(SequenceOptions)}
    mine = {k: v for k, v in (cfg.options or {}).items() if k in names}
    return dataclass_from_dict(SequenceOptions, mine, "data options of kind 'sequence'")


# ---- vocabulary ------------------------------------------------------------------------------------------------

@dataclass
class Vocabulary:
    """Token strings by id; ``pad`` is the id of <pad> (-1: none), ``separator`` joins tokens into text."""
    tokens: list[str]
    pad: int = 0
    separator: str = ""

    @classmethod
    def from_info(cls, info: DataInfo) -> "Vocabulary":
        e = info.extras
        if "vocab" not in e:
            raise DataError(f"{info.name!r} has no vocabulary: it is not sequence data.")
        return cls(list(e["vocab"]), int(e.get("pad", -1)), str(e.get("separator", "")))

    def __len__(self) -> int:
        return len(self.tokens)

    def split(self, ids: Sequence[int]) -> list[int]:
        """The sequence up to (not including) its first pad."""
        ids = [int(i) for i in ids]
        if self.pad >= 0 and self.pad in ids:
            ids = ids[:ids.index(self.pad)]
        return ids

    def token_lists(self, batch: torch.Tensor) -> list[list[str]]:
        """[N, L] ids -> N lists of token strings (each cut at its first pad)."""
        return [[self.tokens[i] for i in self.split(row)] for row in batch.tolist()]

    def decode(self, batch: torch.Tensor) -> list[str]:
        """[N, L] ids -> N strings."""
        return [self.separator.join(t) for t in self.token_lists(batch)]


def tokenise(line: str, tokens: str) -> list[str]:
    return list(line) if tokens == "char" else line.split()


def encode_lines(lines: list[list[str]], index: dict[str, int], length: int, pad: int, unk: int | None
                 ) -> torch.Tensor:
    """Token lists -> [N, length] int64, cropped, padded with ``pad``; unknown tokens -> ``unk``."""
    out = torch.full((len(lines), length), pad, dtype=torch.long)
    for i, toks in enumerate(lines):
        ids = [index.get(t, unk) for t in toks[:length]]
        if None in ids:
            raise DataError(f"token {toks[ids.index(None)]!r} is not in the vocabulary.")
        out[i, :len(ids)] = torch.tensor(ids, dtype=torch.long)
    return out


def dataset_from_lines(lines: list[str], name: str, opts: SequenceOptions, split: str,
                       extras: dict | None = None) -> MemoryDataset:
    """A sequence dataset from raw lines: the held-out split, the vocabulary (from the training lines: word
    tokens beyond ``vocab_size`` become <unk>), padding to a common length, a seeded subset of ``size``."""
    lines = [ln.rstrip("\n\r") for ln in lines]
    lines = [ln for ln in lines if ln.strip()]
    if len(lines) < 2:
        raise DataError(f"{name!r} holds {len(lines)} non-empty line(s); sequence data needs at least 2 "
                        "(one sequence per line).")
    perm = torch.randperm(len(lines), generator=torch.Generator().manual_seed(0)).tolist()
    n_test = max(1, int(round(len(lines) * HELD_OUT_SHARE)))
    test_ids, train_ids = perm[:n_test], perm[n_test:]
    chosen_ids = sorted(test_ids if split == "test" else train_ids)
    if split == "train" and opts.size and opts.size < len(chosen_ids):
        pick = torch.randperm(len(chosen_ids), generator=torch.Generator().manual_seed(1))[:opts.size].sort().values
        chosen_ids = [chosen_ids[i] for i in pick.tolist()]
    if opts.tokens == "char":
        # The character set of the whole file (a closed alphabet: nothing of the held-out text is learnt from it).
        vocab = [PAD] + sorted(set("".join(lines)))
        longest = max(map(len, lines))
    else:
        # Words: the training lines' vocabulary, the most frequent ``vocab_size`` - 2 when capped; <unk> for the
        # rest and for words only the held-out lines have.
        train_lines = [tokenise(lines[i], opts.tokens) for i in sorted(train_ids)]
        test_lines = [tokenise(lines[i], opts.tokens) for i in sorted(test_ids)]
        counts = Counter(t for toks in train_lines for t in toks if t not in (PAD, UNK))
        ranked = [t for t, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]
        if opts.vocab_size:
            ranked = ranked[:max(opts.vocab_size - 2, 1)]
        known = set(ranked)
        unseen = any(t not in known for toks in train_lines + test_lines for t in toks)
        vocab = [PAD] + ([UNK] if unseen else []) + sorted(ranked)
        longest = max(len(t) for t in train_lines + test_lines)
    index = {t: i for i, t in enumerate(vocab)}
    unk = index.get(UNK)
    chosen = [tokenise(lines[i], opts.tokens) for i in chosen_ids]
    length = opts.length or min(MAX_AUTO_LENGTH, longest + 1)     # +1: room for the end pad
    tokens = encode_lines(chosen, index, length, pad=0, unk=unk)
    info = DataInfo(name=name, kind="sequence", size=len(tokens), dim=length, extras={
        "vocab": vocab, "pad": 0, "separator": "" if opts.tokens == "char" else " ", "tokens": opts.tokens,
        "length": length, "split": split,
        "shape_text": f"length {length}, {len(vocab)} {opts.tokens} tokens",
        **(extras or {})})
    return MemoryDataset({"tokens": tokens}, info)


# ---- files and folders -------------------------------------------------------------------------------------

def _text_files(spec: str) -> list[Path]:
    p = Path(spec)
    if p.is_file():
        return [p] if p.suffix == ".txt" else []
    if p.is_dir():
        return sorted(q for q in p.rglob("*.txt") if q.is_file())
    return []


def _has_text(spec: str) -> bool:
    p = Path(spec)
    if p.is_file():
        return p.suffix == ".txt"
    return p.is_dir() and next((q for q in p.rglob("*.txt") if q.is_file()), None) is not None


def load_text_files(cfg: Any, kind: str = "sequence") -> MemoryDataset:
    files = _text_files(cfg.spec)
    if not files:
        raise DataError(f"{cfg.spec!r} is neither a .txt file nor a folder of .txt files.")
    lines: list[str] = []
    for f in files:
        try:
            lines.extend(f.read_text(encoding="utf-8").splitlines())
        except UnicodeDecodeError as e:
            raise DataError(f"{str(f)!r} is not UTF-8 text: {e}") from None
    return dataset_from_lines(lines, cfg.spec, sequence_options(cfg), cfg.split)


path_formats.register("text")(PathFormat(
    about="a .txt file or a folder of .txt files (one sequence per line; data.tokens=char|word)",
    matches=lambda cfg: not cfg.spec_b and _has_text(cfg.spec),
    provides=lambda cfg: ("sequence",),
    load=load_text_files))


# ---- the word list -----------------------------------------------------------------------------------------

WORD_LIST = "web2"
WORD_MAX_LETTERS = 12


@lru_cache(maxsize=1)
def english_words() -> tuple[str, ...]:
    """Lower-case alphabetic words of 2-12 letters from the ``english-words`` package's web2 list, sorted."""
    try:
        from english_words import get_english_words_set
    except ImportError:
        raise DataError("The 'words' builtin needs the english-words package: pip install english-words "
                        "(or pip install 'gankit[text]').") from None
    words = get_english_words_set([WORD_LIST], lower=True)
    return tuple(sorted(w for w in words if w.isascii() and w.isalpha() and 2 <= len(w) <= WORD_MAX_LETTERS))


@builtin("words", "sequence", "English words (english-words package, web2 list, 2-12 letters), character tokens")
def load_words(cfg: Any) -> MemoryDataset:
    opts = sequence_options(cfg)
    if opts.tokens != "char":
        raise DataError("The 'words' builtin is one word per sequence: use data.tokens=char.")
    return dataset_from_lines(list(english_words()), "words", opts, cfg.split,
                              extras={"source": f"english-words {WORD_LIST}, 2-{WORD_MAX_LETTERS} letters"})


# ---- the SeqGAN oracle ---------------------------------------------------------------------------------------

class OracleLSTM(nn.Module):
    """SeqGAN's oracle (Yu et al. 2017, sec. 5 "Training Setting"; their target_lstm.py): an LSTM language model
    with embedding and hidden size 32 whose every parameter is drawn from N(0, 1), so its samples are the data
    and ``nll`` is the exact negative log-likelihood of any sequence. The first input is a start token
    (embedding row ``vocab``, SeqGAN feeds token 0 instead)."""

    def __init__(self, vocab: int, length: int, hidden: int = 32, emb: int = 32, seed: int = 0):
        super().__init__()
        self.vocab, self.length = vocab, length
        self.embed = nn.Embedding(vocab + 1, emb)
        self.lstm = nn.LSTM(emb, hidden, batch_first=True)
        self.out = nn.Linear(hidden, vocab)
        g = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g))
        self.requires_grad_(False)

    def logits(self, tokens: torch.Tensor) -> torch.Tensor:
        """[N, L] -> next-token logits [N, L, V] under teacher forcing (position t sees tokens < t)."""
        bos = torch.full_like(tokens[:, :1], self.vocab)
        h, _ = self.lstm(self.embed(torch.cat([bos, tokens[:, :-1]], 1)))
        return self.out(h)

    @torch.no_grad()
    def nll(self, tokens: torch.Tensor) -> torch.Tensor:
        """-log p(sequence) per sequence, in nats: [N, L] -> [N]."""
        logp = torch.log_softmax(self.logits(tokens), -1)
        return -logp.gather(-1, tokens.unsqueeze(-1)).squeeze(-1).sum(1)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator, batch: int = 2000) -> torch.Tensor:
        """n sequences [n, L] drawn from the oracle (ancestral sampling), reproducible from ``generator``."""
        out = []
        for start in range(0, n, batch):
            m = min(batch, n - start)
            tok = torch.full((m, 1), self.vocab, dtype=torch.long)
            state, seq = None, []
            for _ in range(self.length):
                h, state = self.lstm(self.embed(tok), state)
                tok = inverse_cdf_sample(torch.softmax(self.out(h[:, -1]), -1),
                                         torch.rand(m, generator=generator)).unsqueeze(1)
                seq.append(tok)
            out.append(torch.cat(seq, 1))
        return torch.cat(out)


def inverse_cdf_sample(probs: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """One draw per row of categorical ``probs`` [..., V] from uniforms ``u`` [...] in [0, 1): the first index
    whose cumulative probability exceeds u (u scaled by the row's total, so unnormalised rows work too)."""
    cdf = probs.cumsum(-1)                                                     # [..., V]
    idx = (cdf < (u * cdf[..., -1]).unsqueeze(-1)).sum(-1)                     # [...]
    return idx.clamp_max(probs.shape[-1] - 1)


ORACLE_SIZES = {"oracle": dict(vocab=5000, length=20, size=10000),      # Yu et al. 2017, sec. 5
                "oracle-small": dict(vocab=200, length=12, size=5000)}  # CPU runs
ORACLE_HIDDEN = 32


def oracle_from_info(info: DataInfo) -> OracleLSTM | None:
    """The oracle that made an ``oracle`` dataset (rebuilt from the sizes and seed in ``info.extras``), or None."""
    o = info.extras.get("oracle")
    if not o:
        return None
    return OracleLSTM(o["vocab"], o["length"], o["hidden"], o["hidden"], o["seed"])


def _oracle_factory(name: str):
    sizes = ORACLE_SIZES[name]

    def load(cfg: Any) -> MemoryDataset:
        opts = sequence_options(cfg)
        vocab = opts.vocab_size or sizes["vocab"]
        length = opts.length or sizes["length"]
        size = opts.size or sizes["size"]
        if vocab < 2 or length < 1:
            raise DataError(f"the oracle needs vocab_size >= 2 and length >= 1, got {vocab} and {length}.")
        oracle = OracleLSTM(vocab, length, ORACLE_HIDDEN, ORACLE_HIDDEN, opts.oracle_seed)
        # Training and held-out corpora: two independent draws (seeds 1 and 2 after the weights' seed).
        test = cfg.split == "test"
        g = torch.Generator().manual_seed(opts.oracle_seed * 1000 + (2 if test else 1))
        tokens = oracle.sample(max(1, size // 10) if test else size, g)
        extras = {"vocab": [str(i) for i in range(vocab)], "pad": -1, "separator": " ", "tokens": "oracle",
                  "length": length, "split": cfg.split,
                  "oracle": {"vocab": vocab, "length": length, "hidden": ORACLE_HIDDEN, "seed": opts.oracle_seed},
                  "shape_text": f"length {length}, {vocab} oracle tokens"}
        return MemoryDataset({"tokens": tokens}, DataInfo(name=name, kind="sequence", size=len(tokens), dim=length,
                                                          extras=extras))
    return load


builtin("oracle", "sequence", "SeqGAN's oracle LSTM corpus (vocabulary 5000, length 20, 10k sequences; exact NLL)"
        )(_oracle_factory("oracle"))
builtin("oracle-small", "sequence", "the SeqGAN oracle at CPU size (vocabulary 200, length 12, 5k sequences)"
        )(_oracle_factory("oracle-small"))
