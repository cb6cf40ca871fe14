"""Text generation: maximum likelihood and three GAN routes around non-differentiable tokens.

    text-mle      an autoregressive language model (LSTM or Transformer) trained by maximum likelihood: the
                  baseline and the pre-training phase of the GANs
    text-wgan-gp  Gulrajani et al. 2017, sec. 5: a 1-D CNN generator emits a softmax vector per position; the
                  critic compares one-hot real sequences with those vectors; gradient penalty
    seqgan        Yu et al. 2017: MLE pre-training of G and D, then REINFORCE with Monte-Carlo roll-outs
                  (Q(y_1..t) = mean D score of roll-outs completed from the prefix) and a CNN discriminator
    relgan        Nie et al. 2019: MLE pre-training, then the Gumbel-softmax relaxation with an inverse
                  temperature growing over training (beta_max ** progress), relativistic standard loss, and the
                  multiple-representation CNN discriminator (an LSTM generator here, not relational memory)

All four sample through the ``text`` sampler kind (``gankit sample --out samples.txt --temperature T``), write
text snapshots (``samples-<kimg>.txt``) and evaluate through ``gankit.metrics.text`` (oracle NLL, NLL of
held-out data where the model has likelihoods, BLEU, self-BLEU, n-gram JSD, novelty, distinct-n and the
temperature curve). Pre-training is a phase with ``stop_kimg``; the adversarial phases start at its end
(``start_kimg``), or pre-train separately with text-mle and ``--init-from`` it with ``pretrain_kimg=0``.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..artefacts import Artefact
from ..config import DataConfig, OptConfig
from ..data.base import DataInfo
from ..data.text import Vocabulary, encode_lines, oracle_from_info
from ..errors import ConfigError
from ..io import atomic_write_text
from ..losses import gradient_penalty
from ..nets import build_net
from ..nets.text import (categorical_from_uniform, generate, generate_gumbel, sequence_log_probs)
from ..optim import OptimizerSpec
from ..samplers import EvalRequest, Sampler, output_formats, register_sample_option, sampler_kinds
from .base import Phase, Recipe, StepContext, recipes

register_sample_option("temperature", float, "Text models: sample from softmax(logits / T); 0 = argmax (greedy). "
                       "Default: the family's (1 for language models, 0 = argmax for text-wgan-gp).")


# ---- what a snapshot shows and `gankit sample --out x.txt` writes ------------------------------------------

@dataclass
class TextSamples(Artefact):
    """Generated sequences, one per line (``<stem>.txt``), decoded with the data's vocabulary."""
    lines: list[str]
    header: str = ""
    name: str = "samples"
    suffix: str = ".txt"

    def write(self, stem: Path, log: Any, nimg: int) -> Path:
        path = stem.with_name(stem.name + self.suffix)
        atomic_write_text(path, "".join(line + "\n" for line in self.lines))
        return path


@output_formats.register("text:.txt")
def _write_text(samples: torch.Tensor, path: Path, sampler: Sampler, **_: Any) -> None:
    atomic_write_text(path, "".join(line + "\n" for line in sampler.decode(samples)))


# ---- the sampler -------------------------------------------------------------------------------------------

@sampler_kinds.register("text")
class TextSampler(Sampler):
    """Token sequences from a text recipe's generator: ``draw`` gives ids [N, L] (``--out x.txt`` decodes them,
    ``x.npy`` keeps the ids); every sequence's noise comes from its seed, so samples are reproducible."""

    kind = "text"
    commands = ("sample",)
    options = ("temperature",)
    output = "text"

    def __init__(self, recipe: "TextRecipe", nets: nn.ModuleDict):
        self.recipe, self.nets = recipe, nets
        self.vocab = Vocabulary.from_info(recipe.info)
        self.length = recipe.info.dim
        self.default_temperature = recipe.opts.temperature
        self.log_probs_available = recipe.has_likelihood

    @property
    def device(self) -> torch.device:
        return next(self.nets["G"].parameters()).device

    @torch.no_grad()
    def draw_tokens(self, n: int, seed: int, temperature: float | None = None) -> torch.Tensor:
        t = self.default_temperature if temperature is None else float(temperature)
        if t < 0:
            raise ConfigError(f"--temperature must be >= 0 (0 = argmax), got {t}.")
        noise = self.recipe.noise(n, torch.Generator().manual_seed(seed))
        out = []
        for start in range(0, n, 512):
            part = {k: v[start:start + 512].to(self.device) for k, v in noise.items()}
            out.append(self.recipe.generate_tokens(self.nets, part, t).cpu())
        return torch.cat(out) if out else torch.zeros(0, self.length, dtype=torch.long)

    def __call__(self, n: int, seed: int) -> torch.Tensor:
        return self.draw_tokens(n, seed)

    def draw(self, n: int | None = None, seed: int = 0, seeds: Sequence[int] | None = None,
             temperature: float | None = None) -> torch.Tensor:
        if seeds is not None:
            return torch.cat([self.draw_tokens(1, s, temperature) for s in seeds])
        return self.draw_tokens(n, seed, temperature)

    def token_lists(self, tokens: torch.Tensor) -> list[list[str]]:
        return self.vocab.token_lists(tokens)

    def decode(self, tokens: torch.Tensor) -> list[str]:
        return self.vocab.decode(tokens)

    @torch.no_grad()
    def log_probs(self, tokens: torch.Tensor, temperature: float | None = None) -> torch.Tensor:
        """log p_T(y_t | y_<t) [N, L] under the model at temperature T (NaN at T = 0, where it is degenerate)."""
        if not self.log_probs_available:
            raise ConfigError(f"{self.recipe.name!r} models have no likelihood (nll_test does not apply).")
        t = self.default_temperature if temperature is None else float(temperature)
        if t == 0:
            return torch.full(tokens.shape, float("nan"))
        out = [sequence_log_probs(self.nets["G"], tokens[i:i + 512].to(self.device), t).cpu()
               for i in range(0, len(tokens), 512)]
        return torch.cat(out)

    @classmethod
    def check_metrics(cls, names: Sequence[str]) -> None:
        from ..metrics.text import TEXT_METRICS
        wrong = [m for m in names if str(m).partition("@")[0] not in TEXT_METRICS]
        if wrong:
            raise ConfigError(f"Metrics {wrong} do not apply to text models; text metrics: {', '.join(TEXT_METRICS)}.")

    def evaluate(self, r: EvalRequest) -> dict[str, Any]:
        from ..metrics.text import DEFAULT_TEMPERATURES, evaluate_text
        if r.direction or r.ref_b:
            raise ConfigError("--direction and --ref-b apply to translation (pix2pix / CycleGAN) checkpoints.")
        data = r.data if r.data is not None else DataConfig(spec=self.recipe.info.name)
        spec = r.ref or data.spec
        ref_split = r.split or "test"
        options = tuple(sorted((data.options or {}).items()))
        root = r.root or data.root
        reference = _load_tokens(spec, ref_split, options, root)
        if r.n_ref:
            reference = (reference[0][:r.n_ref], reference[1])
        ref_lists = reference[1].token_lists(reference[0])
        # Held-out sequences in the model's vocabulary (for nll_test); ones with unknown tokens are left out.
        ref_tokens, dropped = self._in_model_vocab(ref_lists)
        names = r.metrics
        if isinstance(names, (list, tuple)):
            names = [str(m) for m in names]
        wanted = names.split(",") if isinstance(names, str) else names
        train = None
        if spec == data.spec and (wanted is None or "novelty" in wanted):    # the training set, for novelty
            train_tokens, train_vocab = _load_tokens(spec, "train", options, root)
            train = train_vocab.token_lists(train_tokens)
        oracle = oracle_from_info(self.recipe.info)
        opts = dict(r.options or {})
        temperature, temperatures = opts.pop("temperature", None), opts.pop("temperatures", None)
        n_self = opts.pop("n_self", None)
        if opts:
            raise ConfigError(f"unknown text evaluation options {sorted(opts)}; valid: temperature, temperatures, "
                              "n_self.")
        return evaluate_text(names, self, ref_lists, train, n=r.n or 1000, seed=r.seed, temperature=temperature,
                             temperatures=temperatures or DEFAULT_TEMPERATURES, n_self=n_self,
                             oracle=(lambda tok: oracle.nll(tok.cpu())) if oracle is not None else None,
                             reference_tokens=ref_tokens,
                             protocol={"reference": {"data": spec, "split": ref_split, "sequences": len(ref_lists),
                                                     "left_out_of_nll_test": dropped},
                                       "training_set": {"data": spec, "sequences": len(train)} if train else None,
                                       "oracle": self.recipe.info.extras.get("oracle"),
                                       "family": self.recipe.name})

    def _in_model_vocab(self, lists: list[list[str]]) -> tuple[torch.Tensor | None, int]:
        index = {t: i for i, t in enumerate(self.vocab.tokens)}
        unk = index.get("<unk>")
        kept = [toks for toks in lists if all(t in index or unk is not None for t in toks)]
        if not kept:
            return None, len(lists)
        pad = self.vocab.pad if self.vocab.pad >= 0 else 0
        return encode_lines(kept, index, self.length, pad, unk), len(lists) - len(kept)


@lru_cache(maxsize=4)
def _load_tokens(spec: str, split: str, options: tuple, root: str) -> tuple[torch.Tensor, Vocabulary]:
    """A split of sequence data (cached: evaluations during training reuse it)."""
    from ..data import load_dataset
    ds = load_dataset(DataConfig(spec=spec, split=split, options=dict(options), root=root), ("sequence",))
    return ds.tensors["tokens"], Vocabulary.from_info(ds.info)


# ---- the shared recipe --------------------------------------------------------------------------------------

@dataclass
class TextMLEOptions:
    temperature: float = 1.0      # the sampler's default temperature (snapshots, sample, eval)

    def __post_init__(self) -> None:
        if self.temperature < 0:
            raise ConfigError(f"temperature must be >= 0, got {self.temperature}.")


class TextRecipe(Recipe):
    """What every text family shares: networks from the data's vocabulary size and length, noise drawn from a
    torch.Generator for sampling (``noise``), the text sampler and text snapshots."""

    Options = TextMLEOptions
    data_kinds = ("sequence",)
    sampler_kind = "text"
    name = "text"
    has_likelihood = True            # an autoregressive G: log p(y) is exact (nll_test applies)
    needs_discriminator = True

    def __init__(self, nets: dict[str, nn.Module], opts: Any, info: DataInfo):
        super().__init__(nets, opts, info)
        self.vocab_size, self.length = len(info.extras["vocab"]), info.dim

    @classmethod
    def from_config(cls, cfg: Any, info: DataInfo) -> "TextRecipe":
        opts = cls.parse_options(cfg.opts)
        if "vocab" not in info.extras:
            raise ConfigError(f"{cls.name} trains on sequence data with a vocabulary; {info.name!r} has none.")
        iface = {"vocab_size": len(info.extras["vocab"]), "seq_len": info.dim}
        nets = {"G": build_net("G", cfg.G, info.kind, {**iface, **cls.g_interface(opts)})}
        if cls.has_likelihood and not getattr(nets["G"], "lm", False):
            raise ConfigError(f"{cls.name}: G.image={cfg.G.image!r} is not a language model; use lstm or transformer.")
        if cls.needs_discriminator:
            nets["D"] = build_net("D", cfg.D, info.kind, iface)
        recipe = cls(nets, opts, info)
        recipe.d_steps = cfg.d_steps
        return recipe

    @classmethod
    def g_interface(cls, opts: Any) -> dict:
        return {}

    def pretraining_optimizers(self) -> dict[str, OptimizerSpec]:
        """The GANs' optimisers: ``G_mle`` (G in MLE pre-training, its own Adam state and rate: SeqGAN and
        RelGAN pre-train at 1e-2), ``G`` (adversarial) and ``D``."""
        return {"G_mle": OptimizerSpec(("G",), schedule=None, default=OptConfig(lr=1e-2, betas=(0.9, 0.999))),
                "G": OptimizerSpec(("G",), schedule=self.lr_multiplier),
                "D": OptimizerSpec(("D",), schedule=self.lr_multiplier)}

    # ---- objective pieces -----------------------------------------------------------------------------------
    def mle_loss(self, batch: dict[str, torch.Tensor], ctx: StepContext) -> dict[str, torch.Tensor]:
        """Maximum likelihood: mean over tokens of -log p(y_t | y_<t) (teacher forcing), in nats."""
        tokens = batch["tokens"]                                              # [N, L]
        logits = self.nets["G"](tokens)                                       # [N, L, V]
        nll = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tokens.reshape(-1))
        return {"loss": nll, "G/nll": nll.detach()}

    # ---- sampling -------------------------------------------------------------------------------------------
    def noise(self, n: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
        """One uniform per token (ancestral sampling by the inverse CDF)."""
        return {"u": torch.rand(n, self.length, generator=generator)}

    def generate_tokens(self, nets: nn.ModuleDict, noise: dict[str, torch.Tensor], temperature: float
                        ) -> torch.Tensor:
        return generate(nets["G"], noise["u"], temperature)

    def fixed_inputs(self, n: int, seed: int, dataset: Any) -> dict[str, torch.Tensor]:
        return self.noise(n, torch.Generator().manual_seed(seed))

    @torch.no_grad()
    def snapshot(self, fixed: dict[str, torch.Tensor], nets: nn.ModuleDict) -> list:
        sampler = TextSampler(self, nets)
        device = sampler.device
        tokens = self.generate_tokens(nets, {k: v.to(device) for k, v in fixed.items()}, sampler.default_temperature)
        return [TextSamples(sampler.decode(tokens.cpu()))]

    def samplers(self, nets: nn.ModuleDict | None = None) -> dict[str, Any]:
        return {"default": TextSampler(self, nets if nets is not None else self.nets)}


@recipes.register("text-mle")
class TextMLE(TextRecipe):
    """A language model trained by maximum likelihood (teacher forcing): the baseline of Caccia et al. 2020,
    whose temperature sweep traces the quality-diversity curve the GANs are compared with."""
    Options = TextMLEOptions
    name = "text-mle"
    discriminator_names = ()
    needs_discriminator = False

    def optimizers(self) -> dict[str, OptimizerSpec]:
        return {"G": OptimizerSpec(("G",), schedule=self.lr_multiplier)}

    def phases(self) -> list[Phase]:
        return [Phase("G", self.mle_loss, "G")]


# ---- WGAN-GP on softmax outputs ------------------------------------------------------------------------------

@dataclass
class TextWGANGPOptions:
    z_dim: int = 128              # gan_language.py: 128
    gp_weight: float = 10.0       # Gulrajani et al. 2017: lambda = 10
    temperature: float = 0.0      # decoding: 0 = argmax of each position's softmax, as the paper samples

    def __post_init__(self) -> None:
        if self.z_dim < 1 or self.gp_weight < 0 or self.temperature < 0:
            raise ConfigError(f"z_dim >= 1, gp_weight >= 0 and temperature >= 0 are needed, got {self.z_dim}, "
                              f"{self.gp_weight}, {self.temperature}.")


@recipes.register("text-wgan-gp")
class TextWGANGP(TextRecipe):
    """Gulrajani et al. 2017, sec. 5 (character language model): G(z) [N, L, V] softmax vectors, the critic
    reads one-hot real sequences and those vectors; L_D = E D(fake) - E D(real) + lambda E (||grad D(x_hat)||
    - 1)^2 on interpolates x_hat between one-hot and softmax inputs (eq. 3); L_G = -E D(G(z)). Its samples are
    the per-position argmax (or, with a temperature, independent per-position draws): there is no likelihood."""
    Options = TextWGANGPOptions
    name = "text-wgan-gp"
    has_likelihood = False

    @classmethod
    def g_interface(cls, opts: TextWGANGPOptions) -> dict:
        return {"z_dim": opts.z_dim}

    def _fake(self, n: int, ctx: StepContext, device: torch.device) -> torch.Tensor:
        return self.nets["G"](ctx.randn(n, self.opts.z_dim, device=device))             # [N, L, V]

    def d_loss(self, batch: dict[str, torch.Tensor], ctx: StepContext) -> dict[str, torch.Tensor]:
        real = F.one_hot(batch["tokens"], self.vocab_size).float()                         # [N, L, V]
        with torch.no_grad():
            fake = self._fake(len(real), ctx, real.device)
        D = self.nets["D"]
        real_score, fake_score = D(real), D(fake)
        wasserstein = fake_score.mean() - real_score.mean()
        gp = gradient_penalty(D, real, fake, alpha=ctx.rand(len(real), device=real.device))
        return {"loss": wasserstein + self.opts.gp_weight * gp, "D/wasserstein": -wasserstein.detach(),
                "D/gp": gp.detach()}

    def g_loss(self, batch: dict[str, torch.Tensor], ctx: StepContext) -> dict[str, torch.Tensor]:
        loss = -self.nets["D"](self._fake(len(batch["tokens"]), ctx, batch["tokens"].device)).mean()
        return {"loss": loss}

    def noise(self, n: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
        z = torch.randn(n, self.opts.z_dim, generator=generator)
        return {"z": z, "u": torch.rand(n, self.length, generator=generator)}

    def generate_tokens(self, nets: nn.ModuleDict, noise: dict[str, torch.Tensor], temperature: float
                        ) -> torch.Tensor:
        return categorical_from_uniform(nets["G"].logits(noise["z"]), noise["u"], temperature)


# ---- SeqGAN: REINFORCE with Monte-Carlo roll-outs ------------------------------------------------------------

def mc_rewards(lm: nn.Module, tokens: torch.Tensor, reward: Callable[[torch.Tensor], torch.Tensor], rollouts: int,
               rand: Callable[[int, int], torch.Tensor], temperature: float = 1.0) -> torch.Tensor:
    """SeqGAN's action values (Yu et al. 2017, eq. 4): Q(y_1..t) = (1/R) sum_r reward(y_1..t ++ roll-out_r) for
    t < L, each roll-out completed by ancestral sampling from ``lm`` (the roll-out policy G_beta = G_theta),
    and Q(y_1..L) = reward(y_1..L). Each roll-out starts from the LM's state after the prefix (one pass along
    the sequence, L (L - 1) / 2 decoding steps of N R rows in all). ``rand(rows, cols)`` gives uniforms.
    tokens [N, L] -> Q [N, L]."""
    n, length = tokens.shape
    q = torch.empty(n, length, device=tokens.device)
    logits, state = lm.step(None, None, n=n)
    for t in range(1, length):
        logits, state = lm.step(tokens[:, t - 1], state)              # logits of y_{t+1} given y_1..t
        cur_logits, cur_state = logits.repeat_interleave(rollouts, 0), lm.repeat_state(state, rollouts)
        u = rand(n * rollouts, length - t)
        seq = [tokens[:, :t].repeat_interleave(rollouts, 0)]
        for k in range(length - t):
            tok = categorical_from_uniform(cur_logits, u[:, k], temperature)
            seq.append(tok.unsqueeze(1))
            if k < length - t - 1:
                cur_logits, cur_state = lm.step(tok, cur_state)
        q[:, t - 1] = reward(torch.cat(seq, 1)).view(n, rollouts).mean(1)
    q[:, length - 1] = reward(tokens)
    return q


def policy_gradient_loss(log_probs: torch.Tensor, q: torch.Tensor, baseline: torch.Tensor | None = None
                         ) -> torch.Tensor:
    """REINFORCE (Williams 1992) as SeqGAN's eq. 6: -(1/N) sum_n sum_t log G(y_t | y_<t) (Q_t - b_t), whose
    gradient is an unbiased estimate of -grad E[R] (``b`` must not depend on the sampled token: default 0).
    log_probs, q: [N, L]."""
    advantage = (q if baseline is None else q - baseline).detach()
    return -(log_probs * advantage).sum(1).mean()


@dataclass
class SeqGANOptions:
    pretrain_kimg: float = 50.0     # G by MLE first (SeqGAN: 120 epochs of the 10k oracle corpus = 1200 kimg)
    d_pretrain_kimg: float = 10.0   # then D on real vs G's samples (SeqGAN: 50 x 3 epochs)
    rollouts: int = 16              # Monte-Carlo roll-outs per prefix (SeqGAN: 16)
    baseline: bool = False          # subtract the batch mean of Q per position (not in SeqGAN; lowers variance)
    temperature: float = 1.0        # sampling temperature (training roll-outs and the sampler)

    def __post_init__(self) -> None:
        if self.pretrain_kimg < 0 or self.d_pretrain_kimg < 0 or self.rollouts < 1 or self.temperature <= 0:
            raise ConfigError("seqgan needs pretrain_kimg >= 0, d_pretrain_kimg >= 0, rollouts >= 1 and "
                              f"temperature > 0; got {self.pretrain_kimg}, {self.d_pretrain_kimg}, "
                              f"{self.rollouts}, {self.temperature}.")


@recipes.register("seqgan")
class SeqGAN(TextRecipe):
    """Yu et al. 2017 (Algorithm 1): pre-train G by MLE, pre-train D on real vs generated, then alternate one
    policy-gradient step of G (rewards: D's probability of "real" for roll-outs from every prefix) with
    ``d_steps`` D steps (binary cross-entropy, real vs fresh samples)."""
    Options = SeqGANOptions
    name = "seqgan"

    def optimizers(self) -> dict[str, OptimizerSpec]:
        return self.pretraining_optimizers()

    def phases(self) -> list[Phase]:
        g_end = self.opts.pretrain_kimg
        adv = g_end + self.opts.d_pretrain_kimg
        return [Phase("G_mle", self.mle_loss, "G_mle", stop_kimg=g_end),
                Phase("D_pre", self.d_loss, "D", start_kimg=g_end, stop_kimg=adv),
                Phase("G", self.g_loss, "G", start_kimg=adv, batch="last"),
                Phase("D", self.d_loss, "D", repeat=self.d_steps, start_kimg=adv)]

    def _sample(self, n: int, ctx: StepContext, device: torch.device) -> torch.Tensor:
        return generate(self.nets["G"], ctx.rand(n, self.length, device=device), self.opts.temperature)

    def d_loss(self, batch: dict[str, torch.Tensor], ctx: StepContext) -> dict[str, torch.Tensor]:
        real = batch["tokens"]
        with torch.no_grad():
            fake = self._sample(len(real), ctx, real.device)
        D = self.nets["D"]
        real_score, fake_score = D(real), D(fake)
        loss = F.softplus(-real_score).mean() + F.softplus(fake_score).mean()   # BCE: real -> 1, fake -> 0
        return {"loss": loss, "D/real": torch.sigmoid(real_score).mean().detach(),
                "D/fake": torch.sigmoid(fake_score).mean().detach()}

    def g_loss(self, batch: dict[str, torch.Tensor], ctx: StepContext) -> dict[str, torch.Tensor]:
        G, D = self.nets["G"], self.nets["D"]
        n, device = len(batch["tokens"]), batch["tokens"].device
        was_training = D.training
        D.eval()                  # rewards without dropout (SeqGAN feeds dropout_keep_prob = 1.0 to score roll-outs)
        try:
            with torch.no_grad():
                tokens = self._sample(n, ctx, device)
                q = mc_rewards(G, tokens, lambda x: torch.sigmoid(D(x)), self.opts.rollouts,
                               lambda rows, cols: ctx.rand(rows, cols, device=device), self.opts.temperature)
        finally:
            D.train(was_training)
        log_probs = sequence_log_probs(G, tokens, self.opts.temperature)         # [N, L], with gradients
        baseline = q.mean(0, keepdim=True) if self.opts.baseline else None
        loss = policy_gradient_loss(log_probs, q, baseline)
        return {"loss": loss, "G/reward": q[:, -1].mean(), "G/nll_samples": -log_probs.detach().mean()}


# ---- RelGAN: Gumbel-softmax with a growing inverse temperature ---------------------------------------------

BETA_SCHEDULES = ("exp", "linear", "constant")


@dataclass
class RelGANOptions:
    pretrain_kimg: float = 50.0     # G by MLE first (RelGAN: 150 epochs on the synthetic data)
    beta_max: float = 100.0         # largest inverse temperature (RelGAN: 100 or 1000)
    beta_schedule: str = "exp"      # exp: beta_max ** p (RelGAN's best); linear: 1 + (beta_max - 1) p; constant
    temperature: float = 1.0        # the sampler's temperature (RelGAN samples at 1: argmax(o + g))

    def __post_init__(self) -> None:
        if self.beta_schedule not in BETA_SCHEDULES:
            raise ConfigError(f"beta_schedule must be one of {', '.join(BETA_SCHEDULES)}, got {self.beta_schedule!r}.")
        if self.beta_max < 1 or self.pretrain_kimg < 0 or self.temperature < 0:
            raise ConfigError(f"relgan needs beta_max >= 1, pretrain_kimg >= 0, temperature >= 0; got "
                              f"{self.beta_max}, {self.pretrain_kimg}, {self.temperature}.")


def inverse_temperature(schedule: str, beta_max: float, progress: float) -> float:
    """RelGAN's beta_n at adversarial progress p = n / N in [0, 1] (Nie et al. 2019, sec. 2.4)."""
    p = min(max(progress, 0.0), 1.0)
    if schedule == "exp":
        return beta_max ** p
    if schedule == "linear":
        return 1.0 + (beta_max - 1.0) * p
    return beta_max


@recipes.register("relgan")
class RelGAN(TextRecipe):
    """Nie et al. 2019: after MLE pre-training, G's soft one-hots y_hat = softmax(beta (o + g)) go to D, which
    embeds them S ways and scores each; relativistic standard loss (Jolicoeur-Martineau 2019), as RelGAN uses:
    L_D = E softplus(-(D(x) - D(G))), L_G = E softplus(-(D(G) - D(x))), averaged over the S representations."""
    Options = RelGANOptions
    name = "relgan"

    def optimizers(self) -> dict[str, OptimizerSpec]:
        return self.pretraining_optimizers()

    def phases(self) -> list[Phase]:
        start = self.opts.pretrain_kimg
        return [Phase("G_mle", self.mle_loss, "G_mle", stop_kimg=start),
                Phase("D", self.d_loss, "D", repeat=self.d_steps, start_kimg=start),
                Phase("G", self.g_loss, "G", start_kimg=start, batch="last")]

    def beta(self, ctx: StepContext) -> float:
        start = self.opts.pretrain_kimg
        span = max(ctx.total_nimg / 1000 - start, 1e-9)
        return inverse_temperature(self.opts.beta_schedule, self.opts.beta_max, (ctx.kimg - start) / span)

    def _soft_fake(self, n: int, ctx: StepContext, device: torch.device) -> torch.Tensor:
        soft, _ = generate_gumbel(self.nets["G"], ctx.rand(n, self.length, self.vocab_size, device=device),
                                  self.beta(ctx))
        return soft                                                              # [N, L, V]

    def d_loss(self, batch: dict[str, torch.Tensor], ctx: StepContext) -> dict[str, torch.Tensor]:
        real = F.one_hot(batch["tokens"], self.vocab_size).float()
        with torch.no_grad():
            fake = self._soft_fake(len(real), ctx, real.device)
        D = self.nets["D"]
        real_score, fake_score = D(real), D(fake)                                # [N, S] each
        loss = F.softplus(-(real_score - fake_score)).mean()
        return {"loss": loss, "D/gap": (real_score - fake_score).mean().detach()}

    def g_loss(self, batch: dict[str, torch.Tensor], ctx: StepContext) -> dict[str, torch.Tensor]:
        real = F.one_hot(batch["tokens"], self.vocab_size).float()
        D = self.nets["D"]
        loss = F.softplus(-(D(self._soft_fake(len(real), ctx, real.device)) - D(real))).mean()
        return {"loss": loss, "G/beta": torch.tensor(self.beta(ctx))}

