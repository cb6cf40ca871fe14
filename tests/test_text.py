"""Text generation (issue 12): the sequence data kind, the text families through the contract, and every formula
against a closed form or a reference implementation.

Pinned here: BLEU and self-BLEU equal nltk's sentence BLEU (method1) on fixed strings; the n-gram JSD on a hand
example; REINFORCE with Monte-Carlo roll-outs is unbiased on a two-token toy (exact gradient by enumeration);
Gumbel-max draws follow the softmax (chi-squared) and Gumbel-softmax becomes one-hot as the temperature goes to
0; the mean NLL of an enumerable oracle's samples converges to its exact entropy; the WGAN-GP penalty on
softmax inputs equals (||w|| - 1)^2 for a linear critic and its interpolates stay on the simplex; mode collapse
shows in self-BLEU, distinct-n, uniqueness and JSD.
"""
from __future__ import annotations

import math
import random

import pytest
import torch
from torch import nn

from gankit.checkpoint import save_checkpoint
from gankit.config import DataConfig
from gankit.data import load_dataset
from gankit.data.text import OracleLSTM, Vocabulary
from gankit.engine import build, resolve
from gankit.errors import ConfigError, DataError
from gankit.loading import load_recipe, load_sampler
from gankit.metrics.text import (BleuReference, bleu, distinct_n, evaluate_text, ngram_jsd, self_bleu,
                                 sentence_bleu)
from gankit.nets.text import (LSTMLanguageModel, TransformerLanguageModel, categorical_from_uniform, generate,
                              gumbel_softmax, sequence_log_probs)
from gankit.recipes.text import inverse_temperature, mc_rewards, policy_gradient_loss

nltk_bleu = pytest.importorskip("nltk.translate.bleu_score")


# ---- BLEU, self-BLEU, JSD, diversity -------------------------------------------------------------------------

def _random_sentences(rng: random.Random, k: int, alphabet: str = "abcd", max_len: int = 9) -> list[list[str]]:
    return [[rng.choice(alphabet) for _ in range(rng.randint(0, max_len))] for _ in range(k)]


def test_bleu_equals_nltk_sentence_bleu_method1():
    rng = random.Random(0)
    refs = _random_sentences(rng, 25)
    hyps = _random_sentences(rng, 40) + [[], ["a"], ["z", "z"], ["a", "b"], list("abcdabcdabcd")]
    smooth = nltk_bleu.SmoothingFunction().method1
    ref = BleuReference(refs, 5)
    for n in (2, 3, 4, 5):
        weights = tuple(1.0 / n for _ in range(n))
        for h in hyps:
            expected = nltk_bleu.sentence_bleu(refs, h, weights, smoothing_function=smooth)
            assert sentence_bleu(h, ref, n) == pytest.approx(expected, rel=1e-12, abs=1e-15), (n, h)
        mean = sum(nltk_bleu.sentence_bleu(refs, h, weights, smoothing_function=smooth) for h in hyps) / len(hyps)
        assert bleu(hyps, refs, (n,))[n] == pytest.approx(mean, rel=1e-12)


def test_self_bleu_equals_nltk_leave_one_out_with_duplicates():
    rng = random.Random(1)
    samples = _random_sentences(rng, 14, "abc", 7) + [list("abca"), list("abca"), list("abca"), list("cc")]
    smooth = nltk_bleu.SmoothingFunction().method1
    got = self_bleu(samples, (2, 3, 4))
    for n in (2, 3, 4):
        weights = tuple(1.0 / n for _ in range(n))
        expected = sum(nltk_bleu.sentence_bleu(samples[:i] + samples[i + 1:], s, weights, smoothing_function=smooth)
                       for i, s in enumerate(samples)) / len(samples)
        assert got[n] == pytest.approx(expected, rel=1e-12)


def test_ngram_jsd_hand_example_and_bounds():
    same = [list("abab")]
    assert ngram_jsd(same, same, 1) == pytest.approx(0.0)
    assert ngram_jsd([list("aaaa")], [list("bbbb")], 2) == pytest.approx(1.0)     # disjoint supports: 1 bit
    # P = (a: 3/4, b: 1/4), Q = (a: 1/4, b: 3/4): JSD = 1 - H2(1/4)... computed directly
    p, q = [0.75, 0.25], [0.25, 0.75]
    m = [0.5, 0.5]
    expected = 0.5 * sum(pi * math.log2(pi / mi) for pi, mi in zip(p, m)) + \
        0.5 * sum(qi * math.log2(qi / mi) for qi, mi in zip(q, m))
    assert ngram_jsd([list("aaab")], [list("abbb")], 1) == pytest.approx(expected, rel=1e-12)
    assert distinct_n([list("abab")], 2) == pytest.approx(2 / 3)


class _FixedSampler:
    """A stand-in text sampler that returns given token ids (for the metric card)."""
    default_temperature = 1.0
    log_probs_available = False

    def __init__(self, rows: torch.Tensor, vocab: Vocabulary):
        self.rows, self.vocab = rows, vocab

    def draw_tokens(self, n: int, seed: int, temperature: float | None = None) -> torch.Tensor:
        return self.rows[:n]

    def token_lists(self, tokens: torch.Tensor) -> list[list[str]]:
        return self.vocab.token_lists(tokens)


def test_mode_collapse_shows_in_self_bleu_distinct_unique_and_jsd():
    vocab = Vocabulary([str(i) for i in range(30)], pad=-1, separator=" ")
    g = torch.Generator().manual_seed(0)
    data = torch.randint(0, 30, (300, 8), generator=g)
    reference = vocab.token_lists(data[:150])
    diverse = _FixedSampler(data[150:], vocab)
    collapsed = _FixedSampler(data[:1].repeat(150, 1), vocab)     # one training sentence, repeated
    names = "bleu,self_bleu,ngram_jsd,novelty,distinct"
    good = evaluate_text(names, diverse, reference, vocab.token_lists(data[:150]), n=150)["metrics"]
    bad = evaluate_text(names, collapsed, reference, vocab.token_lists(data[:150]), n=150)["metrics"]
    assert bad["self_bleu4"] == pytest.approx(1.0) and good["self_bleu4"] < 0.5
    assert bad["unique"] == pytest.approx(1 / 150) and good["unique"] == 1.0
    assert bad["distinct2"] < 0.01 < 0.3 < good["distinct2"]
    assert bad["ngram_jsd2"] > good["ngram_jsd2"] + 0.3
    assert bad["novelty"] == 0.0 and good["novelty"] == 1.0
    assert bad["bleu4"] == pytest.approx(1.0)        # a copied sentence has perfect BLEU: quality alone misleads


# ---- estimators and relaxations ------------------------------------------------------------------------------

def test_reinforce_with_mc_rollouts_is_unbiased_on_a_two_token_toy():
    """V = 2, L = 2: E[R] = sum over the 4 sequences of p(y) R(y) is exact, so is its gradient (autograd); the
    SeqGAN estimator (roll-out Q values, policy-gradient loss) must match it on average."""
    torch.manual_seed(0)
    lm = LSTMLanguageModel(vocab_size=2, seq_len=2, emb_dim=3, hidden=4)
    with torch.no_grad():             # weights large enough that p(y1) and p(y2 | y1) differ clearly
        for p in lm.parameters():
            p.normal_(0, 1.5, generator=torch.Generator().manual_seed(1))
    table = torch.tensor([[1.0, -2.0], [0.5, 3.0]])                      # R(y1, y2)
    reward = lambda y: table[y[:, 0], y[:, 1]]                         # noqa: E731
    every = torch.tensor([[0, 0], [0, 1], [1, 0], [1, 1]])
    params = list(lm.parameters())
    exact = torch.autograd.grad((sequence_log_probs(lm, every).sum(1).exp() * reward(every)).sum(), params)
    exact = torch.cat([g.flatten() for g in exact])

    g = torch.Generator().manual_seed(1)
    rand = lambda r, c: torch.rand(r, c, generator=g)                   # noqa: E731
    estimates = []
    for _ in range(40):
        with torch.no_grad():
            tokens = generate(lm, rand(100, 2))
            q = mc_rewards(lm, tokens, reward, rollouts=2, rand=rand)
        loss = policy_gradient_loss(sequence_log_probs(lm, tokens), q)
        grads = torch.autograd.grad(loss, params)
        estimates.append(-torch.cat([x.flatten() for x in grads]))       # the loss is -E[R]
    est = torch.stack(estimates)                                        # [40, P], each the mean of 100 samples
    mean, se = est.mean(0), est.std(0) / math.sqrt(len(est))
    z = (mean - exact).abs() / (se + 1e-4)
    assert exact.abs().max() > 0.05
    assert z.max() < 4.5, (z.max(), mean[:6], exact[:6])


def test_gumbel_argmax_follows_the_softmax_chi_squared_and_soft_samples_become_one_hot():
    stats = pytest.importorskip("scipy.stats")
    logits = torch.tensor([1.5, 0.0, -1.0, 0.7, 0.2])
    probs = torch.softmax(logits.double(), 0)
    n = 20000
    u = torch.rand(n, 5, generator=torch.Generator().manual_seed(0))
    soft, hard = gumbel_softmax(logits.expand(n, 5), u, beta=1.0)
    observed = torch.bincount(hard, minlength=5).double()
    chi2, p = stats.chisquare(observed.numpy(), (probs * n).numpy())
    assert p > 1e-3, (chi2, observed, probs * n)
    assert torch.allclose(soft.sum(-1), torch.ones(n))
    # as the temperature 1 / beta goes to 0 the relaxed sample becomes the one-hot of the hard draw
    tops = []
    for beta in (1.0, 10.0, 1000.0):
        soft_b, hard_b = gumbel_softmax(logits.expand(n, 5), u, beta=beta)
        assert torch.equal(hard_b, hard)
        tops.append(soft_b.max(-1).values.mean().item())
    assert tops[0] < tops[1] < tops[2] and tops[2] > 0.999
    assert torch.equal(soft_b.argmax(-1), hard)
    assert inverse_temperature("exp", 100.0, 0.0) == 1.0 and inverse_temperature("exp", 100.0, 1.0) == 100.0
    assert inverse_temperature("exp", 100.0, 0.5) == pytest.approx(10.0)


def test_inverse_cdf_sampling_matches_the_tempered_softmax():
    stats = pytest.importorskip("scipy.stats")
    logits = torch.tensor([[2.0, 0.0, -1.0, 1.0]])
    n = 20000
    u = torch.rand(n, generator=torch.Generator().manual_seed(3))
    for t in (0.5, 1.0, 2.0):
        draws = categorical_from_uniform(logits.expand(n, 4), u, t)
        expected = torch.softmax(logits[0].double() / t, 0) * n
        _, p = stats.chisquare(torch.bincount(draws, minlength=4).double().numpy(), expected.numpy())
        assert p > 1e-3, t
    assert torch.all(categorical_from_uniform(logits.expand(n, 4), u, 0.0) == 0)   # T = 0: argmax


def test_oracle_sample_nll_converges_to_its_enumerated_entropy():
    oracle = OracleLSTM(vocab=3, length=4, hidden=8, emb=8, seed=5)
    grid = torch.cartesian_prod(*[torch.arange(3)] * 4)                  # all 81 sequences [81, 4]
    nll = oracle.nll(grid).double()
    p = torch.exp(-nll)
    assert p.sum().item() == pytest.approx(1.0, abs=1e-5)
    entropy = float((p * nll).sum())
    samples = oracle.sample(20000, torch.Generator().manual_seed(0))
    values = oracle.nll(samples).double()
    se = float(values.std()) / math.sqrt(len(values))
    assert abs(float(values.mean()) - entropy) < 4 * se, (float(values.mean()), entropy, se)
    assert entropy > 0.5          # not a degenerate oracle


# ---- WGAN-GP on softmax vectors ------------------------------------------------------------------------------

class _LinearCritic(nn.Module):
    """D(x) = <w, x> + b over [N, L, V]: its input gradient is w everywhere, so the penalty is (||w|| - 1)^2."""

    def __init__(self, length: int, vocab: int):
        super().__init__()
        self.w = nn.Parameter(torch.randn(length, vocab, generator=torch.Generator().manual_seed(0)))
        self.b = nn.Parameter(torch.tensor(0.3))
        self.seen: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor, label=None) -> torch.Tensor:
        self.seen.append(x.detach())
        return (x * self.w).sum((1, 2)) + self.b


def _tiny(preset: str, **extra) -> dict:
    over = {"data.spec": "oracle-small", "data.vocab_size": 11, "data.length": 6, "data.size": 64,
            "batch_size": 8, "snapshot_n": 4, "seed": 1}
    over.update(extra)
    return over


def test_wgan_gp_penalty_on_softmax_inputs():
    cfg = resolve("text-wgan-gp", overrides=_tiny("text-wgan-gp", **{"G.dim": 8, "D.dim": 8}))
    trainer, ds = build(cfg, torch.device("cpu"))
    recipe = trainer.recipe
    critic = _LinearCritic(6, 11)
    recipe.nets["D"] = critic
    batch = ds.get_batch(torch.arange(8))
    out = recipe.d_loss(batch, trainer.context("D"))
    w_norm = critic.w.detach().norm().item()
    assert out["D/gp"].item() == pytest.approx((w_norm - 1) ** 2, rel=1e-5)
    real_x, fake_x, x_hat = critic.seen[0], critic.seen[1], critic.seen[2]
    assert torch.equal(real_x.sum(-1), torch.ones(8, 6)) and set(real_x.unique().tolist()) == {0.0, 1.0}
    assert torch.allclose(fake_x.sum(-1), torch.ones(8, 6)) and (fake_x > 0).all()     # softmax vectors
    assert torch.allclose(x_hat.sum(-1), torch.ones(8, 6)) and (x_hat >= 0).all()     # on the simplex
    wasserstein = (fake_x * critic.w).sum((1, 2)).mean() - (real_x * critic.w).sum((1, 2)).mean()
    assert out["loss"].item() == pytest.approx(wasserstein.item() + 10 * (w_norm - 1) ** 2, rel=1e-5)


# ---- data ------------------------------------------------------------------------------------------------------

def test_text_file_chars_words_padding_split_and_errors(tmp_path):
    lines = [f"line {i} {'x' * (i % 5)}" for i in range(40)] + ["a much longer line than the others"]
    f = tmp_path / "corpus.txt"
    f.write_text("\n".join(lines) + "\n\n")
    train = load_dataset(DataConfig(spec=str(f)), ("sequence",))
    test = load_dataset(DataConfig(spec=str(f), split="test"), ("sequence",))
    vocab = Vocabulary.from_info(train.info)
    assert vocab.tokens[0] == "<pad>" and train.info.kind == "sequence"
    assert len(train) + len(test) == len(lines) and len(test) == 4
    decoded = set(vocab.decode(train.tensors["tokens"])) | set(Vocabulary.from_info(test.info).decode(
        test.tensors["tokens"]))
    assert decoded == set(lines)                                          # round trip, nothing lost
    assert train.info.dim == test.info.dim == max(map(len, lines)) + 1
    assert not set(vocab.decode(train.tensors["tokens"])) & set(vocab.decode(test.tensors["tokens"]))
    cropped = load_dataset(DataConfig(spec=str(f), options={"length": 4}), ("sequence",))
    assert cropped.tensors["tokens"].shape[1] == 4
    words = load_dataset(DataConfig(spec=str(tmp_path), options={"tokens": "word", "vocab_size": 8}),
                         ("sequence",))
    wv = Vocabulary.from_info(words.info)
    assert wv.tokens[:2] == ["<pad>", "<unk>"] and len(wv) == 8 and wv.separator == " "
    assert "line" in wv.tokens
    with pytest.raises(DataError, match="tokens must be one of char, word"):
        load_dataset(DataConfig(spec=str(f), options={"tokens": "bytes"}), ("sequence",))
    (tmp_path / "one.txt").write_text("only\n")
    with pytest.raises(DataError, match="at least 2"):
        load_dataset(DataConfig(spec=str(tmp_path / "one.txt")), ("sequence",))
    with pytest.raises(DataError, match="sequence data"):
        load_dataset(DataConfig(spec=str(f)), ("image",))


def test_word_list_builtin_and_oracle_sizes():
    pytest.importorskip("english_words")
    words = load_dataset(DataConfig(spec="words", options={"size": 300}), ("sequence",))
    assert len(words) == 300 and words.info.extras["separator"] == ""
    text = Vocabulary.from_info(words.info).decode(words.tensors["tokens"])
    assert all(w.isalpha() and w.islower() for w in text)
    small = load_dataset(DataConfig(spec="oracle-small", options={"size": 50, "vocab_size": 9, "length": 5}),
                         ("sequence",))
    assert small.tensors["tokens"].shape == (50, 5) and int(small.tensors["tokens"].max()) < 9
    assert small.info.extras["pad"] == -1 and small.info.extras["oracle"]["vocab"] == 9


def test_data_option_typos_are_refused_before_training():
    with pytest.raises(ConfigError, match="does not apply"):
        resolve("text-mle", overrides={"data.spec": "oracle-small", "data.options": {"lenght": 3}})


# ---- the families through the contract -----------------------------------------------------------------------

FAMILIES = {
    "text-mle": {},
    "text-wgan-gp": {"G.dim": 8, "D.dim": 8, "d_steps": 2},
    "seqgan": {"pretrain_kimg": 0.008, "d_pretrain_kimg": 0.008, "rollouts": 2, "D.emb_dim": 8},
    "relgan": {"pretrain_kimg": 0.008, "D.num_rep": 2, "D.emb_dim": 8},
}


@pytest.mark.parametrize("preset", list(FAMILIES))
def test_family_trains_moves_its_players_and_round_trips_through_a_checkpoint(preset, tmp_path):
    cfg = resolve(preset, overrides=_tiny(preset, **FAMILIES[preset]))
    trainer, ds = build(cfg, torch.device("cpu"))
    recipe = trainer.recipe
    before = {name: [p.detach().clone() for p in net.parameters()] for name, net in recipe.nets.items()}
    keys = set()
    for _ in range(5):
        trainer.train_step()
        keys |= set(trainer.take_tick_stats())
    for name, net in recipe.nets.items():
        assert any(not torch.equal(a, b) for a, b in zip(before[name], net.parameters())), f"{name} did not move"
    assert "G/loss" in keys
    if "D" in recipe.nets:
        assert "D/loss" in keys or "D_pre/loss" in keys
    path = tmp_path / "ckpt.pt"
    save_checkpoint(trainer.state_dict(ds.info), path)
    fixed = recipe.fixed_inputs(4, 0, ds)
    recipe.eval()
    lines = recipe.snapshot(fixed, recipe.nets)[0].lines
    loaded, _, info, nets = load_recipe(path, ema=False)
    assert info.extras["vocab"] == ds.info.extras["vocab"]                 # the vocabulary is in the checkpoint
    assert loaded.snapshot(fixed, nets)[0].lines == lines
    written = recipe.snapshot(fixed, recipe.nets)[0].write(tmp_path / "samples-000000", None, 0)
    assert written.suffix == ".txt" and written.read_text().splitlines() == lines


def test_seqgan_phases_follow_the_pretraining_windows():
    cfg = resolve("seqgan", overrides=_tiny("seqgan", **{**FAMILIES["seqgan"], "pretrain_kimg": 0.016,
                                                           "d_pretrain_kimg": 0.008}))
    trainer, _ = build(cfg, torch.device("cpu"))
    seen = []
    for _ in range(4):
        trainer.train_step()
        seen.append(sorted(k for k in trainer.take_tick_stats() if k.endswith("/loss")))
    assert seen[0] == seen[1] == ["G_mle/loss"]                           # 16 sequences of MLE (2 steps)
    assert seen[2] == ["D_pre/loss"]                                      # then 8 of D pre-training
    assert seen[3] == ["D/loss", "G/loss"]                                # then the adversarial game


def test_language_models_share_the_decoding_interface():
    torch.manual_seed(0)
    for lm in (LSTMLanguageModel(7, 5, 8, 8), TransformerLanguageModel(7, 5, 16, 2, 1)):
        lm.eval()
        u = torch.rand(6, 5, generator=torch.Generator().manual_seed(0))
        tokens = generate(lm, u)
        assert tokens.shape == (6, 5) and tokens.max() < 7
        # incremental decoding sees what teacher forcing sees: step logits == forward logits
        logits, state, steps = None, None, []
        prev = None
        for t in range(5):
            logits, state = lm.step(prev, state, n=6)
            steps.append(logits)
            prev = tokens[:, t]
        assert torch.allclose(torch.stack(steps, 1), lm(tokens), atol=1e-5)
        assert torch.equal(generate(lm, u, prefix=tokens[:, :3])[:, :3], tokens[:, :3])


def _cli(args: list[str]) -> int:
    from gankit.cli import main
    try:
        main(args)
    except SystemExit as e:
        return int(e.code or 0)
    return 0


def test_sampler_temperature_seeds_outputs_and_cli(tmp_path):
    out = tmp_path / "runs"
    assert _cli(["train", "--preset", "text-mle", "--data", "oracle-small", "--kimg", "0.064", "--batch", "16",
              "--set", "data.size=64", "--set", "data.vocab_size=11", "--set", "data.length=6", "--out", str(out),
              "--set", "metrics=oracle_nll,bleu", "--set", "metrics_n=40", "--quiet"]) == 0
    run = next(out.iterdir())
    assert list(run.glob("samples-*.txt"))
    import json
    record = json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])     # training-time text metrics
    assert record["oracle_nll"] > 0 and 0 <= record["bleu4"] <= 1
    assert json.loads((run / "best.json").read_text())["metric"] == "oracle_nll"
    sampler = load_sampler(run)
    a, b = sampler.draw(n=20, seed=3, temperature=0.7), sampler.draw(n=20, seed=3, temperature=0.7)
    assert torch.equal(a, b)
    greedy = sampler.draw(seeds=[1, 2, 3], temperature=0.0)
    assert (greedy == greedy[0]).all()                                    # argmax: the same sequence for every seed
    assert torch.equal(sampler.draw(seeds=[5], temperature=0.7), sampler.draw(n=1, seed=5, temperature=0.7))
    lp = sampler.log_probs(a, 0.5)
    logits = sampler.nets["G"](a) / 0.5
    assert torch.allclose(lp, torch.log_softmax(logits, -1).gather(-1, a.unsqueeze(-1)).squeeze(-1), atol=1e-6)

    txt = tmp_path / "s.txt"
    assert _cli(["sample", "--ckpt", str(run), "--n", "7", "--out", str(txt), "--temperature", "0.5"]) == 0
    lines = txt.read_text().splitlines()
    assert len(lines) == 7 and all(all(t.isdigit() for t in ln.split()) for ln in lines)
    assert _cli(["sample", "--ckpt", str(run), "--n", "7", "--out", str(txt)]) == 2          # never overwrite
    assert _cli(["sample", "--ckpt", str(run), "--n", "2", "--out", str(tmp_path / "x.txt"), "--label", "1"]) == 2
    assert _cli(["sample", "--ckpt", str(run), "--n", "2", "--out", str(tmp_path / "x.png")]) == 2   # not a text format
    assert _cli(["sample", "--ckpt", str(run), "--n", "3", "--out", str(tmp_path / "ids.npy")]) == 0   # token ids
    card_path = tmp_path / "card.json"
    assert _cli(["eval", "--ckpt", str(run), "--n", "30", "--out", str(card_path)]) == 0
    card = json.loads(card_path.read_text())
    for key in ("oracle_nll", "nll_test", "bleu4", "self_bleu4", "ngram_jsd2", "novelty", "distinct2"):
        assert key in card["metrics"], key
    assert card["metric_protocols"]["bleu"]["smoothing"].startswith("nltk SmoothingFunction().method1")
    with pytest.raises(ConfigError, match="do not apply to text models"):
        resolve("text-mle", overrides={"metrics": "fid"})
    with pytest.raises(ConfigError, match="other kinds of model"):
        resolve("dcgan", overrides={"metrics": "bleu"})
