"""Networks for token sequences: autoregressive language models (LSTM, Transformer), the WGAN-GP language
generator and critic (1-D convolutions on softmax vectors), and CNN discriminators (SeqGAN, RelGAN).

Interface arguments (from the data, passed by the recipe): ``vocab_size`` V and ``seq_len`` L; ``z_dim`` for the
noise-driven WGAN-GP generator. ``kind = "sequence"`` (tests/test_text.py builds every one of them).

Language models (``lm = True``) share one interface, used by every text recipe:
    forward(tokens [N, L]) -> next-token logits [N, L, V] under teacher forcing (position t sees tokens < t;
                              the first input is a start token, embedding row V)
    step(prev [N] or None (start), state) -> (logits [N, V], state)        one step of incremental decoding
    repeat_state(state, r) -> the state of every row repeated r times (row i -> rows i r .. i r + r - 1)
Discriminators read probability vectors ``x [N, L, V]`` (one-hot real data, softmax / Gumbel-softmax fakes) or
token ids ``[N, L]`` (one-hot internally), and return raw scores ``[N]`` (RelGAN's: ``[N, S]``, one per
representation).
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from .base import discriminators, generators

_SEQ_IFACE = {"vocab_size": 7, "seq_len": 6}


def as_probabilities(x: torch.Tensor, vocab_size: int) -> torch.Tensor:
    """Token ids [N, L] -> one-hot float [N, L, V]; probability vectors [N, L, V] pass through."""
    if x.dtype in (torch.long, torch.int32, torch.int64):
        return F.one_hot(x, vocab_size).float()
    return x


# ---- language models ---------------------------------------------------------------------------------------

@generators.register("lstm")
class LSTMLanguageModel(nn.Module):
    """Embedding -> LSTM -> linear to V logits: SeqGAN's generator (Yu et al. 2017, sec. 4: emb and hidden 32 on
    the oracle) and the maximum-likelihood baseline. Caccia et al. 2020 use an LSTM LM too."""
    kind = "sequence"
    lm = True
    test_interface = _SEQ_IFACE

    def __init__(self, vocab_size: int, seq_len: int,
                 emb_dim: int = 32,        # token embedding size (SeqGAN: 32)
                 hidden: int = 32,         # LSTM hidden size (SeqGAN: 32)
                 layers: int = 1,          # stacked LSTM layers
                 dropout: float = 0.0):    # between layers and before the output layer
        super().__init__()
        self.vocab_size, self.seq_len = vocab_size, seq_len
        self.embed = nn.Embedding(vocab_size + 1, emb_dim)       # row V: the start token
        self.lstm = nn.LSTM(emb_dim, hidden, layers, batch_first=True, dropout=dropout if layers > 1 else 0.0)
        self.drop = nn.Dropout(dropout)
        self.out = nn.Linear(hidden, vocab_size)

    def _inputs(self, tokens: torch.Tensor) -> torch.Tensor:
        bos = torch.full_like(tokens[:, :1], self.vocab_size)
        return torch.cat([bos, tokens[:, :-1]], 1)                # [N, L]: start, y_1 .. y_{L-1}

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        h, _ = self.lstm(self.embed(self._inputs(tokens)))        # [N, L, H]
        return self.out(self.drop(h))                             # [N, L, V]

    def step(self, prev: torch.Tensor | None, state: Any, n: int | None = None) -> tuple[torch.Tensor, Any]:
        if prev is None:
            prev = torch.full((n,), self.vocab_size, dtype=torch.long, device=self.out.weight.device)
        h, state = self.lstm(self.embed(prev).unsqueeze(1), state)   # [N, 1, H]
        return self.out(self.drop(h[:, 0])), state                   # [N, V]

    @staticmethod
    def repeat_state(state: Any, r: int) -> Any:
        h, c = state                                              # [layers, N, H] each
        return h.repeat_interleave(r, 1), c.repeat_interleave(r, 1)


@generators.register("transformer")
class TransformerLanguageModel(nn.Module):
    """A causal Transformer decoder (Vaswani et al. 2017; pre-norm as in GPT-2): token + learned position
    embeddings, ``layers`` blocks of masked self-attention and MLP, linear to V logits. Incremental decoding
    recomputes the prefix (sequences here are short)."""
    kind = "sequence"
    lm = True
    test_interface = _SEQ_IFACE

    def __init__(self, vocab_size: int, seq_len: int,
                 dim: int = 64,            # model width
                 heads: int = 4,           # attention heads (dim must be a multiple)
                 layers: int = 2,          # decoder blocks
                 dropout: float = 0.0):
        super().__init__()
        if dim % heads:
            raise ConfigError(f"transformer: dim ({dim}) must be a multiple of heads ({heads}).")
        self.vocab_size, self.seq_len = vocab_size, seq_len
        self.embed = nn.Embedding(vocab_size + 1, dim)           # row V: the start token
        self.pos = nn.Parameter(torch.zeros(seq_len, dim))
        nn.init.normal_(self.pos, 0.0, 0.02)
        block = nn.TransformerEncoderLayer(dim, heads, 4 * dim, dropout, activation="gelu", batch_first=True,
                                           norm_first=True)
        self.blocks = nn.TransformerEncoder(block, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)
        self.out = nn.Linear(dim, vocab_size)

    def _run(self, inputs: torch.Tensor) -> torch.Tensor:
        t = inputs.shape[1]
        mask = torch.triu(torch.full((t, t), float("-inf"), device=inputs.device), 1)   # [t, t] causal
        h = self.blocks(self.embed(inputs) + self.pos[:t], mask=mask, is_causal=True)
        return self.out(self.norm(h))                             # [N, t, V]

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        bos = torch.full_like(tokens[:, :1], self.vocab_size)
        return self._run(torch.cat([bos, tokens[:, :-1]], 1))

    def step(self, prev: torch.Tensor | None, state: Any, n: int | None = None) -> tuple[torch.Tensor, Any]:
        if prev is None:
            state = torch.full((n, 1), self.vocab_size, dtype=torch.long, device=self.out.weight.device)
        else:
            state = torch.cat([state, prev.unsqueeze(1)], 1)      # [N, t]: the prefix so far
        return self._run(state)[:, -1], state

    @staticmethod
    def repeat_state(state: torch.Tensor, r: int) -> torch.Tensor:
        return state.repeat_interleave(r, 0)


# ---- WGAN-GP language model (Gulrajani et al. 2017, sec. 5 and appendix; their gan_language.py) -----------

class _ResBlock1d(nn.Module):
    """ReLU -> conv1d(k5) -> ReLU -> conv1d(k5), added to the input scaled by 0.3 (gan_language.py)."""

    def __init__(self, dim: int):
        super().__init__()
        self.conv1 = nn.Conv1d(dim, dim, 5, padding=2)
        self.conv2 = nn.Conv1d(dim, dim, 5, padding=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + 0.3 * self.conv2(F.relu(self.conv1(F.relu(x))))


@generators.register("cnn_softmax")
class ConvSoftmaxGenerator(nn.Module):
    """z [N, z_dim] -> linear -> [N, dim, L] -> 5 residual blocks of 1-D convolutions -> conv1x1 to V ->
    softmax over the vocabulary at every position: [N, L, V] probability vectors (not tokens: the critic reads
    them directly, which is how the WGAN-GP language model avoids sampling). Paper: dim 512, L 32, z 128."""
    kind = "sequence"
    lm = False
    test_interface = {"vocab_size": 7, "seq_len": 6, "z_dim": 8}

    def __init__(self, vocab_size: int, seq_len: int, z_dim: int,
                 dim: int = 64,            # channels (paper: 512)
                 blocks: int = 5):         # residual blocks (paper: 5)
        super().__init__()
        self.vocab_size, self.seq_len, self.z_dim, self.dim = vocab_size, seq_len, z_dim, dim
        self.fc = nn.Linear(z_dim, dim * seq_len)
        self.blocks = nn.Sequential(*[_ResBlock1d(dim) for _ in range(blocks)])
        self.out = nn.Conv1d(dim, vocab_size, 1)

    def logits(self, z: torch.Tensor) -> torch.Tensor:
        h = self.fc(z).view(-1, self.dim, self.seq_len)            # [N, dim, L]
        return self.out(self.blocks(h)).transpose(1, 2)           # [N, L, V]

    def forward(self, z: torch.Tensor, label: Any = None) -> torch.Tensor:
        return torch.softmax(self.logits(z), -1)                  # [N, L, V]


@discriminators.register("cnn_critic")
class ConvCritic(nn.Module):
    """x [N, L, V] -> conv1x1 to dim -> 5 residual blocks -> linear to one score [N] (gan_language.py; no
    normalisation, as the gradient penalty asks)."""
    kind = "sequence"
    test_interface = _SEQ_IFACE

    def __init__(self, vocab_size: int, seq_len: int, dim: int = 64, blocks: int = 5):
        super().__init__()
        self.vocab_size = vocab_size
        self.inp = nn.Conv1d(vocab_size, dim, 1)
        self.blocks = nn.Sequential(*[_ResBlock1d(dim) for _ in range(blocks)])
        self.fc = nn.Linear(dim * seq_len, 1)

    def forward(self, x: torch.Tensor, label: Any = None) -> torch.Tensor:
        x = as_probabilities(x, self.vocab_size).transpose(1, 2)  # [N, V, L]
        return self.fc(self.blocks(self.inp(x)).flatten(1)).squeeze(1)


# ---- CNN discriminators (Kim 2014 text CNN; SeqGAN, RelGAN) ---------------------------------------------------

class _Highway(nn.Module):
    """y = t * relu(W x) + (1 - t) * x with t = sigmoid(W_t x) (Srivastava et al. 2015; SeqGAN's D)."""

    def __init__(self, dim: int):
        super().__init__()
        self.h, self.t = nn.Linear(dim, dim), nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = torch.sigmoid(self.t(x))
        return t * F.relu(self.h(x)) + (1 - t) * x


def _filters(seq_len: int, sizes: tuple, counts: tuple) -> list[tuple[int, int]]:
    if len(sizes) != len(counts):
        raise ConfigError(f"filter_sizes {sizes} and num_filters {counts} must be equally long.")
    kept = [(int(s), int(c)) for s, c in zip(sizes, counts) if s <= seq_len]
    if not kept:
        raise ConfigError(f"no filter size in {sizes} fits sequences of length {seq_len}.")
    return kept


@discriminators.register("text_cnn")
class TextCNN(nn.Module):
    """SeqGAN's discriminator (Yu et al. 2017, sec. 4 and appendix): embed the one-hot (or soft) tokens
    [N, L, V] @ E [V, emb], convolve with windows of several widths over the whole embedding, ReLU, max over
    time, highway, dropout, linear to one logit [N]. Paper sizes: windows 1-10, 15, 20 with 100-200 filters;
    the defaults are CPU-sized."""
    kind = "sequence"
    test_interface = _SEQ_IFACE

    def __init__(self, vocab_size: int, seq_len: int,
                 emb_dim: int = 64,
                 filter_sizes: tuple = (2, 3, 4, 5),
                 num_filters: tuple = (32, 32, 32, 32),
                 dropout: float = 0.25):   # SeqGAN keeps 0.75
        super().__init__()
        self.vocab_size = vocab_size
        self.embed = nn.Linear(vocab_size, emb_dim, bias=False)  # one-hot @ E: works for soft inputs too
        fs = _filters(seq_len, tuple(filter_sizes), tuple(num_filters))
        # A window of s tokens over the whole embedding: SeqGAN's conv2d with an (s, emb) kernel on one channel
        # is a conv1d with emb input channels.
        self.convs = nn.ModuleList(nn.Conv1d(emb_dim, c, s) for s, c in fs)
        total = sum(c for _, c in fs)
        self.highway = _Highway(total)
        self.drop = nn.Dropout(dropout)
        self.fc = nn.Linear(total, 1)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        e = self.embed(as_probabilities(x, self.vocab_size)).transpose(1, 2)   # [N, emb, L]
        pooled = [F.relu(conv(e)).amax(2) for conv in self.convs]             # each [N, c]
        return self.drop(self.highway(torch.cat(pooled, 1)))                  # [N, total]

    def forward(self, x: torch.Tensor, label: Any = None) -> torch.Tensor:
        return self.fc(self.features(x)).squeeze(1)


@discriminators.register("relgan_cnn")
class RelGANDiscriminator(nn.Module):
    """RelGAN's multiple-representation discriminator (Nie et al. 2019, sec. 2.3): S embedding matrices turn the
    one-hot / Gumbel-softmax input [N, L, V] into S representations [N, S, L, emb]; one shared CNN (windows
    2-5, ReLU, max over time, highway, dropout, linear) scores each, giving [N, S] scores (the loss averages
    over representations). Paper: S = 64, emb 64, 300 filters per window; defaults are CPU-sized."""
    kind = "sequence"
    test_interface = _SEQ_IFACE

    def __init__(self, vocab_size: int, seq_len: int,
                 num_rep: int = 16,        # S representations (paper: 64)
                 emb_dim: int = 32,        # per representation (paper: 64)
                 filter_sizes: tuple = (2, 3, 4, 5),
                 num_filters: tuple = (32, 32, 32, 32),
                 dropout: float = 0.25):
        super().__init__()
        self.vocab_size, self.num_rep, self.emb_dim = vocab_size, num_rep, emb_dim
        self.embed = nn.Linear(vocab_size, num_rep * emb_dim, bias=False)
        fs = _filters(seq_len, tuple(filter_sizes), tuple(num_filters))
        self.convs = nn.ModuleList(nn.Conv1d(emb_dim, c, s) for s, c in fs)   # (s, emb) windows, as TextCNN
        total = sum(c for _, c in fs)
        self.highway = _Highway(total)
        self.drop = nn.Dropout(dropout)
        self.fc = nn.Linear(total, 1)

    def forward(self, x: torch.Tensor, label: Any = None) -> torch.Tensor:
        x = as_probabilities(x, self.vocab_size)
        n, length, _ = x.shape
        e = self.embed(x).view(n, length, self.num_rep, self.emb_dim)            # [N, L, S, emb]
        e = e.permute(0, 2, 3, 1).reshape(n * self.num_rep, self.emb_dim, length)  # [N S, emb, L]
        pooled = [F.relu(conv(e)).amax(2) for conv in self.convs]
        h = self.drop(self.highway(torch.cat(pooled, 1)))
        return self.fc(h).view(n, self.num_rep)                                  # [N, S]


# ---- decoding with a language model ------------------------------------------------------------------------

def scale_logits(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """logits / T (T > 0); T = 0 is handled by the callers as argmax."""
    return logits / temperature


def categorical_from_uniform(logits: torch.Tensor, u: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """One token per row of ``logits`` [..., V] from uniforms ``u`` [...] by the inverse CDF of
    softmax(logits / T); T = 0 takes the argmax (greedy decoding)."""
    if temperature == 0:
        return logits.argmax(-1)
    probs = torch.softmax(scale_logits(logits.float(), temperature), -1)
    cdf = probs.cumsum(-1)
    return (cdf < (u * cdf[..., -1]).unsqueeze(-1)).sum(-1).clamp_max(logits.shape[-1] - 1)


def generate(lm: nn.Module, u: torch.Tensor, temperature: float = 1.0,
             prefix: torch.Tensor | None = None) -> torch.Tensor:
    """Ancestral sampling of ``u.shape[0]`` sequences [N, L] with one uniform per token (``u`` [N, L]), so
    every draw is reproducible from its noise (and rank-sliced under DDP). ``prefix`` [N, t]: keep those
    tokens and sample the rest (the Monte-Carlo roll-outs of SeqGAN)."""
    n, length = u.shape
    out, state, prev = [], None, None
    for t in range(length):
        logits, state = lm.step(prev, state, n=n)
        if prefix is not None and t < prefix.shape[1]:
            prev = prefix[:, t]
        else:
            prev = categorical_from_uniform(logits, u[:, t], temperature)
        out.append(prev)
    return torch.stack(out, 1)


def gumbel_softmax(logits: torch.Tensor, u: torch.Tensor, beta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The Gumbel-softmax relaxation (Jang et al. 2017; Maddison et al. 2017) as RelGAN uses it (Nie et al.
    2019, eq. 3-4): g = -log(-log u) with u ~ U(0, 1), y_hat = softmax(beta (o + g)) and the hard token
    argmax(o + g), which is an exact draw from softmax(o) (the Gumbel-max trick). ``beta`` is the inverse
    temperature: as it grows, y_hat tends to the one-hot of the hard token. Returns (y_hat [..., V], token [...]).
    """
    tiny = torch.finfo(logits.dtype).tiny
    g = -torch.log(-torch.log(u.clamp(tiny, 1.0 - 1e-7)))                   # standard Gumbel noise
    perturbed = logits + g
    return torch.softmax(beta * perturbed, -1), perturbed.argmax(-1)


def generate_gumbel(lm: nn.Module, u: torch.Tensor, beta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """RelGAN's generator pass: at each step the soft one-hot y_hat_t = softmax(beta (o_t + g_t)) goes to the
    discriminator (gradients flow through it), and the hard token argmax(o_t + g_t) is fed back as the next
    input (RelGAN's code feeds the embedding of the hard token). ``u`` [N, L, V] uniforms.
    Returns (soft one-hots [N, L, V], tokens [N, L])."""
    n, length, _ = u.shape
    soft, hard, state, prev = [], [], None, None
    for t in range(length):
        logits, state = lm.step(prev, state, n=n)
        y_hat, prev = gumbel_softmax(logits, u[:, t], beta)
        soft.append(y_hat)
        hard.append(prev)
    return torch.stack(soft, 1), torch.stack(hard, 1)


def sequence_log_probs(lm: nn.Module, tokens: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """log p_T(y_t | y_<t) per position [N, L] under the temperature-scaled model softmax(logits / T)."""
    logits = scale_logits(lm(tokens), temperature)
    return torch.log_softmax(logits, -1).gather(-1, tokens.unsqueeze(-1)).squeeze(-1)


__all__ = ["LSTMLanguageModel", "TransformerLanguageModel", "ConvSoftmaxGenerator", "ConvCritic", "TextCNN",
           "RelGANDiscriminator", "generate", "generate_gumbel", "gumbel_softmax", "sequence_log_probs",
           "categorical_from_uniform", "as_probabilities"]
