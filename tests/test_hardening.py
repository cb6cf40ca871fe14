"""Issue 17: validation before the first step, Ctrl-C that keeps the work, weights files read as data, balanced
conditional evaluation, and tests that fail when a formula is wrong (each records the break it catches).

Formula tests compute the expected value independently of the code under test (by hand, from the weights
file, or with a second trainer) rather than comparing gankit with itself.
"""
from __future__ import annotations

import copy
import hashlib
import inspect
import os
import signal
import stat

import pytest
import torch
from torch import nn

from gankit.checkpoint import REQUIRED_KEYS, TRAINING_STATE_KEYS, load_checkpoint, save_checkpoint
from gankit.config import OptConfig
from gankit.engine import EMA, build, resolve, train
from gankit.engine.interrupt import StopOnSignal
from gankit.engine.rundir import merge_resume_config
from gankit.engine.step import Trainer
from gankit.errors import CheckpointError, ConfigError, TrainingInterrupted
from gankit.io import atomic_write_text, current_umask
from gankit.losses import gradient_penalty
from gankit.metrics.sources import GeneratorSource
from gankit.optim import OptimizerSpec, build_optimizer
from gankit.presets import PRESETS
from gankit.recipes import recipes
from gankit.recipes.base import StepContext
from gankit.samplers import NoiseSampler, balanced_labels

TINY = {"data.spec": "digits", "data.resolution": 32, "batch_size": 8, "G.ngf": 8, "D.ndf": 8,
        "tick_kimg": 0.032, "snapshot_kimg": 0.064, "snapshot_n": 4, "kimg": 0.064}   # 8 steps
TOY = {"data.spec": "grid25", "batch_size": 16, "G.hidden": 16, "D.hidden": 16, "kimg": 0.064,
       "tick_kimg": 0.032, "snapshot_kimg": 0.064, "snapshot_n": 16}


@pytest.fixture(scope="module")
def short_run(tmp_path_factory):
    """A finished 8-step dcgan run to resume from."""
    return train(resolve("dcgan", overrides=TINY), out=tmp_path_factory.mktemp("runs"), progress=False)


def _run_dirs(out):
    return sorted(p.name for p in out.iterdir()) if out.exists() else []


def _count_steps(monkeypatch) -> list:
    calls = []
    original = Trainer.train_step

    def counting(self, *a, **k):
        calls.append(self.step)
        return original(self, *a, **k)
    monkeypatch.setattr(Trainer, "train_step", counting)
    return calls


# ---- validation before training, fresh and resumed ------------------------------------------------------------

@pytest.mark.parametrize("key,value", [("tick_kimg", 0.0004), ("snapshot_kimg", 0.0009), ("metrics_kimg", 0.0001),
                                       ("kimg", 0.0004)])
def test_intervals_under_one_image_are_refused(key, value):
    with pytest.raises(ConfigError, match=f"{key}=.*less than one image"):
        resolve("dcgan", overrides={key: value})


def test_resumed_runs_are_validated_before_the_first_step(short_run, monkeypatch):
    saved = load_checkpoint(short_run)
    calls = _count_steps(monkeypatch)
    bad = resolve("dcgan", overrides={**TINY, "kimg": 0.128})
    bad.tick_kimg = 0.0001                       # as the CLI's resume path builds it: no resolve(), so train() checks
    with pytest.raises(ConfigError, match="tick_kimg"):
        train(bad, resume=short_run, progress=False, resume_overrides={"tick_kimg", "kimg"})
    assert calls == [] and load_checkpoint(short_run)["nimg"] == saved["nimg"]


@pytest.mark.parametrize("key,value,pattern", [
    ("opt.G.betas", [1.5, 0.9], r"opt\.G\.betas\[0\] must be in \[0, 1\)"),
    ("opt.D.betas", [0.5], r"opt\.D\.betas must be two numbers"),
    ("opt.D.eps", -1.0, r"opt\.D\.eps must be >= 0"),
    ("opt.G.weight_decay", -0.1, r"opt\.G\.weight_decay"),
    ("opt.G.lr", 0.0, r"opt\.G\.lr must be positive"),
    ("metrics_n", 0, "metrics_n"),
])
def test_optimiser_and_schedule_values_out_of_range_name_the_key(key, value, pattern):
    with pytest.raises(ConfigError, match=pattern):
        resolve("dcgan", overrides={key: value})


def test_optimiser_defaults_torch_refuses_become_config_errors():
    spec = OptimizerSpec(("G",))
    nets = nn.ModuleDict({"G": nn.Linear(2, 2)})
    with pytest.raises(ConfigError, match=r"optimizer 'G': adam refuses .*betas=\[0.5, 1.5\]"):
        build_optimizer(spec, OptConfig(betas=(0.5, 1.5)), nets, where="optimizer 'G'")


def test_network_arguments_that_cannot_build_name_the_argument():
    cfg = resolve("dcgan", overrides={**TINY, "G.ngf": -4})
    with pytest.raises(ConfigError, match=r"G \(dcgan\): cannot build the network with ngf=-4"):
        build(cfg, torch.device("cpu"))


def test_network_arguments_that_build_but_cannot_run_fail_before_training_and_leave_no_run(tmp_path):
    cfg = resolve("dcgan", overrides={**TINY, "D.ndf": 0})          # builds; the first forward fails in torch
    with pytest.raises(ConfigError, match=r"first training step failed.*D = dcgan \{'ndf': 0\}") as err:
        train(cfg, out=tmp_path, progress=False)
    assert isinstance(err.value.__cause__, RuntimeError)
    assert _run_dirs(tmp_path) == []                                 # the run made for it is gone


def test_metric_prerequisites_are_checked_before_the_first_step(tmp_path, monkeypatch, short_run):
    from gankit.metrics.inception import ENV_WEIGHTS, MissingWeightsError
    monkeypatch.setenv(ENV_WEIGHTS, str(tmp_path / "no-such-weights.pth"))
    calls = _count_steps(monkeypatch)
    with pytest.raises(MissingWeightsError, match="does not exist"):
        train(resolve("dcgan", overrides={**TINY, "metrics": ["fid"]}), out=tmp_path / "a", progress=False)
    assert calls == [] and _run_dirs(tmp_path / "a") == []
    # Enough samples for each metric (k-NN radii need k + 1 points; IS one per split), before any weights load.
    with pytest.raises(ConfigError, match=r"'pr' needs at least 4 generated samples.*has 3"):
        train(resolve("dcgan", overrides={**TINY, "metrics": ["pr"], "metrics_n": 3}), out=tmp_path / "b",
              progress=False)
    with pytest.raises(ConfigError, match=r"'is' needs at least 10"):
        train(resolve("dcgan", overrides={**TINY, "metrics": ["is"], "metrics_n": 9}), out=tmp_path / "b",
              progress=False)
    assert calls == []
    # The same on a resumed run that adds metrics: nothing trained, the checkpoint as it was.
    cfg = resolve("dcgan", overrides={**TINY, "kimg": 0.128, "metrics": ["fid"]})
    with pytest.raises(MissingWeightsError):
        train(cfg, resume=short_run, progress=False, resume_overrides={"kimg", "metrics"})
    assert calls == [] and load_checkpoint(short_run)["step"] == 8


def test_resume_with_another_preset_or_recipe_is_refused(short_run, capsys):
    saved = load_checkpoint(short_run)
    from gankit.config import from_dict
    base = from_dict(saved["config"])
    for key, value in (("preset", "wgan-gp"), ("recipe", "pix2pix")):
        other = copy.deepcopy(base)
        setattr(other, key, value)
        with pytest.raises(ConfigError, match=f"Cannot resume with {key} '{value}'.*--init-from"):
            merge_resume_config(base, other, set())
    from gankit.cli import main
    with pytest.raises(SystemExit) as exit_:
        main(["train", "--resume", str(short_run), "--preset", "wgan-gp", "--quiet"])
    assert exit_.value.code == 2
    assert "trained with preset 'dcgan', not 'wgan-gp'" in " ".join(capsys.readouterr().err.split())


def test_resume_reads_a_config_file_as_changes(short_run, tmp_path, capsys):
    from gankit.cli import main
    (tmp_path / "more.yaml").write_text("batch_size: 4\n")
    with pytest.raises(SystemExit) as exit_:
        main(["train", "--resume", str(short_run), "--config", str(tmp_path / "more.yaml"), "--quiet"])
    assert exit_.value.code == 2
    assert "Cannot change 'batch_size' when resuming" in " ".join(capsys.readouterr().err.split())


def test_a_statistics_file_without_features_fails_before_any_image_is_generated(tmp_path):
    import numpy as np
    from gankit.metrics import evaluate
    from gankit.metrics.base import Extractor

    class Flat(Extractor):
        name, outputs = "flat", ("features",)

        def __call__(self, img):
            return {"features": img.float().flatten(1)[:, :4]}

        def identity(self):
            return {"extractor": "flat"}

        def protocol(self):
            return self.identity()
    np.savez(tmp_path / "ref.npz", mu=np.zeros(4), sigma=np.eye(4), n=np.array(100))   # mean and covariance only
    calls = []

    def gen(n, seed):
        calls.append(n)
        return torch.zeros(n, 1, 4, 4)
    with pytest.warns(UserWarning, match="no protocol"), \
            pytest.raises(ConfigError, match="holds only mean and covariance"):
        evaluate("pr", gen, str(tmp_path / "ref.npz"), n_gen=64, extractors={"inception": Flat()})
    assert calls == []


# ---- Ctrl-C ------------------------------------------------------------------------------------------------------

def _signal_at(monkeypatch, step: int, sig=signal.SIGINT) -> None:
    """Deliver ``sig`` to this process as step ``step`` begins (the handler runs inside that step)."""
    original = Trainer.train_step

    def train_step(self, *a, **k):
        if self.step == step:
            os.kill(os.getpid(), sig)
        return original(self, *a, **k)
    monkeypatch.setattr(Trainer, "train_step", train_step)


def _assert_same_state(a: dict, b: dict) -> None:
    assert (a["nimg"], a["step"]) == (b["nimg"], b["step"])
    for key in a["nets"]:
        assert torch.equal(a["nets"][key], b["nets"][key]), key
    for name in a.get("ema") or {}:
        for key in a["ema"][name]:
            assert torch.equal(a["ema"][name][key], b["ema"][name][key]), key
    for role in a["opt"]:
        for idx, state in a["opt"][role]["state"].items():
            for k, v in state.items():
                assert torch.equal(torch.as_tensor(v), torch.as_tensor(b["opt"][role]["state"][idx][k])), (role, k)
    assert torch.equal(a["rng"]["torch"], b["rng"]["torch"]) and a["stream"] == b["stream"]


def test_ctrl_c_finishes_the_step_saves_it_and_resuming_continues_exactly(tmp_path, monkeypatch):
    over = {**TINY, "ema_kimg": 0.05}
    full = train(resolve("dcgan", overrides=over), out=tmp_path / "a", progress=False)
    handler_before = signal.getsignal(signal.SIGINT)
    _signal_at(monkeypatch, 3)
    with pytest.raises(TrainingInterrupted, match=r"SIGINT.*step 4.*--resume") as err:
        train(resolve("dcgan", overrides=over), out=tmp_path / "b", progress=False)
    monkeypatch.undo()
    assert signal.getsignal(signal.SIGINT) is handler_before          # the handlers are put back
    run = err.value.run_dir
    interrupted = load_checkpoint(err.value.checkpoint)
    assert interrupted["step"] == 4 and interrupted["nimg"] == 4 * 8  # step 3 completed, nothing after it
    assert "Interrupted (SIGINT)" in (run / "log.txt").read_text()
    resumed = train(resolve("dcgan", overrides=over), resume=run, progress=False)
    _assert_same_state(load_checkpoint(full), load_checkpoint(resumed))


def test_sigterm_stops_the_same_way_and_the_cli_exits_130(tmp_path, monkeypatch, capsys):
    from gankit.cli import main
    _signal_at(monkeypatch, 1, signal.SIGTERM)
    with pytest.raises(SystemExit) as exit_:
        main(["train", "--preset", "dcgan", "--out", str(tmp_path), "--quiet",
              *[a for k, v in TINY.items() for a in ("--set", f"{k}={v}")]])
    assert exit_.value.code == 130
    err = capsys.readouterr().err
    assert "Interrupted (SIGTERM)" in err and "gankit train --resume" in err
    assert load_checkpoint(next(tmp_path.iterdir()))["step"] == 2


def test_a_second_signal_aborts_at_once():
    with StopOnSignal(message=False) as stop:
        os.kill(os.getpid(), signal.SIGINT)
        assert stop.requested == "SIGINT"
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)


# ---- weights files and checkpoints are data ----------------------------------------------------------------

def test_inception_weights_are_read_as_data_whatever_their_hash(tmp_path, monkeypatch):
    """Even a file whose hash matches the expected prefix is loaded with weights_only=True: pickled code in it
    never runs (the 8 hex digits say which weights these are; anyone can name a file so)."""
    import gankit.metrics.inception as inception
    marker = tmp_path / "code-ran"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))
    path = tmp_path / inception.WEIGHTS_FILENAME
    torch.save({"fc.weight": torch.zeros(2), "evil": Payload()}, path)
    monkeypatch.setattr(inception, "SHA256_PREFIX", hashlib.sha256(path.read_bytes()).hexdigest()[:8])
    with pytest.raises(CheckpointError, match="pickled Python objects"):
        inception.InceptionExtractor(path, device="cpu", verify=True, download=False)
    assert not marker.exists()
    # A truncated weights file says so.
    good = tmp_path / "w.pth"
    torch.save({"x": torch.zeros(1000)}, good)
    (tmp_path / "cut.pth").write_bytes(good.read_bytes()[:700])
    with pytest.raises(CheckpointError, match="is truncated"):
        inception.load_weights_file(tmp_path / "cut.pth")


def test_checkpoints_missing_entries_or_cut_short_get_clear_messages(short_run, tmp_path):
    ckpt = load_checkpoint(short_run)
    no_opt = {k: v for k, v in ckpt.items() if k not in ("opt", "format", "version", "gankit_version")}
    save_checkpoint(no_opt, tmp_path / "no_opt.pt")
    assert "nets" in load_checkpoint(tmp_path / "no_opt.pt")              # fine for sampling
    with pytest.raises(CheckpointError, match=r"lacks 'opt', which resuming its run needs"):
        load_checkpoint(tmp_path / "no_opt.pt", require=REQUIRED_KEYS + TRAINING_STATE_KEYS)
    with pytest.raises(CheckpointError, match=r"lacks 'opt'"):
        train(resolve("dcgan", overrides={**TINY, "kimg": 0.128}), resume=tmp_path / "no_opt.pt",
              progress=False, resume_overrides={"kimg"})
    save_checkpoint({k: v for k, v in no_opt.items() if k != "nets"}, tmp_path / "no_nets.pt")
    from gankit.loading import load_recipe
    with pytest.raises(CheckpointError, match=r"lacks 'nets', which using its networks needs"):
        load_recipe(tmp_path / "no_nets.pt")
    # Networks that do not fit the config they were saved with: named keys, no RuntimeError.
    nets = dict(ckpt["nets"])
    dropped = next(k for k in nets if k.startswith("nets.G."))
    del nets[dropped]
    save_checkpoint({**no_opt, "nets": nets}, tmp_path / "odd.pt")
    with pytest.raises(CheckpointError, match=f"do not fit.*{dropped.split('.')[-1]}"):
        load_recipe(tmp_path / "odd.pt")
    # Cut short, or empty.
    data = (short_run / "latest.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"is truncated \("):
        load_checkpoint(tmp_path / "cut.pt")
    (tmp_path / "empty.pt").write_bytes(b"")
    with pytest.raises(CheckpointError, match="is empty"):
        load_checkpoint(tmp_path / "empty.pt")


def test_files_gankit_writes_get_the_users_umask(tmp_path):
    old = os.umask(0o027)
    try:
        assert current_umask() == 0o027
        atomic_write_text(tmp_path / "a.json", "{}")
        save_checkpoint({"config": {}, "data_info": {}, "nets": {}}, tmp_path / "c.pt")
        assert stat.S_IMODE((tmp_path / "a.json").stat().st_mode) == 0o640
        assert stat.S_IMODE((tmp_path / "c.pt").stat().st_mode) == 0o640
        os.umask(0o002)
        atomic_write_text(tmp_path / "b.json", "{}")
        assert stat.S_IMODE((tmp_path / "b.json").stat().st_mode) == 0o664
        (tmp_path / "a.json").chmod(0o600)                 # a file replaced keeps its own mode
        atomic_write_text(tmp_path / "a.json", "[]")
        assert stat.S_IMODE((tmp_path / "a.json").stat().st_mode) == 0o600
    finally:
        os.umask(old)


# ---- conditional evaluation is balanced -----------------------------------------------------------------------

class LabelRecorder(nn.Module):
    """A 'conditional generator' that records the labels it is asked for; outputs images [n, 1, 2, 2] or points."""

    def __init__(self, num_classes: int = 10, points: bool = False):
        super().__init__()
        self.z_dim, self.num_classes, self.points = 3, num_classes, points
        self.w = nn.Parameter(torch.zeros(()))
        self.seen: list[torch.Tensor] = []

    def forward(self, z, label):
        self.seen.append(label.cpu())
        out = torch.zeros(len(z), 2) if self.points else torch.zeros(len(z), 1, 2, 2)
        return out + self.w


@pytest.mark.parametrize("n", [10_000, 10_003])
def test_evaluation_labels_are_balanced_over_the_whole_evaluation(n):
    G = LabelRecorder()
    source = GeneratorSource(NoiseSampler(G), n, seed=0, batch_size=64)
    for i in range(source.n_batches):
        source.batch(i)
    counts = torch.bincount(torch.cat(G.seen), minlength=10)
    assert counts.sum() == n and counts.max() - counts.min() <= 1, counts.tolist()   # was 1094 vs 938
    # Sharded over 3 ranks (batches i % 3 == r): together the same labels.
    G.seen.clear()
    for rank in range(3):
        for _ in source.shard_batches(rank, 3):
            pass
    assert torch.equal(torch.bincount(torch.cat(G.seen), minlength=10), counts)
    assert torch.equal(balanced_labels(10, 5, start=8), torch.tensor([8, 9, 0, 1, 2]))


def test_vector_evaluation_labels_are_balanced_too():
    from gankit.metrics import evaluate
    G = LabelRecorder(num_classes=7, points=True)
    evaluate("toy", NoiseSampler(G, "points"), {"centers": [[0.0, 0.0]], "std": 0.1}, n_gen=1000, batch_size=64)
    counts = torch.bincount(torch.cat(G.seen), minlength=7)
    assert counts.sum() == 1000 and counts.max() - counts.min() <= 1, counts.tolist()


# ---- formulas: each test computes the expected value independently ---------------------------------------------

def test_gradient_penalty_is_taken_at_the_interpolates():
    """Critic 0.5 ||x||^2 has gradient x, so the penalty depends on where it is taken."""
    real = torch.tensor([[3.0, 0.0], [0.0, 2.0], [1.0, 1.0]])
    fake = torch.tensor([[0.0, 0.0], [0.0, -2.0], [-1.0, 3.0]])
    alpha = torch.tensor([0.5, 0.25, 1.0])
    x_hat = alpha[:, None] * real + (1 - alpha[:, None]) * fake               # by hand
    expected = ((x_hat.norm(dim=1) - 1) ** 2).mean()
    at_real = ((real.norm(dim=1) - 1) ** 2).mean()
    gp = gradient_penalty(lambda x: 0.5 * (x ** 2).sum(1), real, fake, alpha=alpha)
    assert gp.item() == pytest.approx(expected.item(), rel=1e-6)
    assert abs(expected - at_real) > 0.5


def test_wgan_gp_recipe_penalises_its_interpolates():
    """The GAN recipe's D/gp equals the penalty recomputed by hand at alpha real + (1 - alpha) fake, with the
    same noise (the recipe draws z, then alpha)."""
    trainer, _ = build(resolve("wgan-gp", overrides=TOY), torch.device("cpu"))
    recipe, batch = trainer.recipe, next(trainer.stream)
    real = batch["x"]
    torch.manual_seed(5)
    out = recipe.d_loss(batch, StepContext())
    torch.manual_seed(5)
    z = torch.randn(len(real), recipe.opts.z_dim)
    with torch.no_grad():
        fake = recipe.nets["G"](z, None)
    D = recipe.nets["D"]
    D(real, None), D(fake, None)                          # the scores the recipe takes in between (no RNG)
    alpha = torch.rand(len(real))[:, None]
    x_hat = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
    (grad,) = torch.autograd.grad(D(x_hat, None).sum(), x_hat)
    expected = ((grad.norm(dim=1) - 1) ** 2).mean()
    assert out["D/gp"].item() == pytest.approx(expected.item(), rel=1e-5)


def _two_trainers(preset: str, over: dict):
    cfg = resolve(preset, overrides=over)
    a, _ = build(cfg, torch.device("cpu"))
    b, _ = build(cfg, torch.device("cpu"))
    return a, b


def _r1_by_hand(D, real):
    x = real.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(D(x, None).sum(), x, create_graph=True)
    return grad.flatten(1).pow(2).sum(1).mean()          # E ||grad_x D(x)||^2 (Mescheder et al. 2018, eq. 9)


R1_OVER = {**TOY, "r1_gamma": 2.0, "r1_interval": 4, "opt.D.name": "sgd", "opt.D.lr": 0.05, "opt.D.momentum": 0.0}


def test_r1_lazy_phase_update_is_interval_times_half_gamma_with_the_corrected_rate():
    """StyleGAN2's Dreg step, through the real trainer with SGD: theta moves by -lr c N (gamma / 2) grad R1,
    c = N / (N + 1) (Karras et al. 2020, appendix B)."""
    a, b = _two_trainers("gan", {**R1_OVER, "r1_phase": True})
    a.phases = [p for p in a.phases if p.name == "D_r1"]
    batch = next(b.stream)                                # the batch a's phase draws (same seed, same stream)
    D_b = b.recipe.nets["D"]
    before = [p.detach().clone() for p in a.recipe.nets["D"].parameters()]
    a.train_step()
    loss = 4 * 0.5 * 2.0 * _r1_by_hand(D_b, batch["x"])
    params = list(D_b.parameters())
    grads = [torch.zeros_like(p) if g is None else g           # D's last bias does not reach grad_x D
             for p, g in zip(params, torch.autograd.grad(loss, params, allow_unused=True))]
    lr = 0.05 * 4 / 5
    for p0, p1, g in zip(before, a.recipe.nets["D"].parameters(), grads):
        assert torch.allclose(p1 - p0, -lr * g, rtol=1e-4, atol=1e-7)


def test_r1_fused_update_adds_interval_times_half_gamma():
    """The default fused R1: on steps divisible by the interval, the D update is that of adv + N (gamma/2) R1."""
    a, b = _two_trainers("gan", R1_OVER)
    a.phases = [p for p in a.phases if p.name == "D"]
    batch = next(b.stream)
    before = [p.detach().clone() for p in a.recipe.nets["D"].parameters()]
    torch.manual_seed(3)
    a.train_step()
    recipe_b = b.recipe
    D_b = recipe_b.nets["D"]
    torch.manual_seed(3)
    z = torch.randn(len(batch["x"]), recipe_b.opts.z_dim)
    with torch.no_grad():
        fake = recipe_b.nets["G"](z, None)
    adv = recipe_b.adv.d(D_b(batch["x"], None), D_b(fake, None))
    loss = adv + 4 * 0.5 * 2.0 * _r1_by_hand(D_b, batch["x"])
    grads = torch.autograd.grad(loss, list(D_b.parameters()))
    for p0, p1, g in zip(before, a.recipe.nets["D"].parameters(), grads):
        assert torch.allclose(p1 - p0, -0.05 * g, rtol=1e-4, atol=1e-7)


def test_weight_clipping_holds_after_every_critic_step():
    trainer, _ = build(resolve("wgan", overrides={**TOY, "opt.D.lr": 0.5}), torch.device("cpu"))
    clip = trainer.recipe.opts.clip
    assert clip == 0.01                                   # Arjovsky et al. 2017
    for _ in range(2):
        trainer.train_step()
        weights = torch.cat([p.detach().flatten() for p in trainer.recipe.nets["D"].parameters()])
        assert weights.abs().max() <= clip
        assert (weights.abs() == clip).float().mean() > 0.5     # at lr 0.5 most weights sit on the bound


def test_inception_score_reads_logits_without_the_bias(tmp_path):
    """IS uses pool3 @ W^T (torch-fidelity's 'logits_unbiased'); computed here from the weights file itself."""
    from gankit.metrics import metrics, write_random_inception_weights
    from gankit.metrics.inception import InceptionExtractor
    path = write_random_inception_weights(tmp_path / "w.pth", seed=1)
    state = torch.load(path, weights_only=True)
    ext = InceptionExtractor(path, device="cpu", verify=False, download=False)
    out = ext(torch.randint(0, 256, (2, 3, 16, 16), generator=torch.Generator().manual_seed(0), dtype=torch.uint8))
    W, bias = state["fc.weight"].double(), state["fc.bias"].double()
    by_hand = out["features"].double() @ W.T                                  # [2, 1008]
    assert torch.allclose(out["logits"].double(), by_hand, rtol=1e-4, atol=1e-3)
    assert (out["logits"].double() - (by_hand + bias)).abs().max() > 0.05
    assert metrics.get("is").output == "logits"


def test_ema_averages_parameters_and_copies_buffers():
    net = nn.ModuleDict({"G": nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2))})
    ema = EMA(net, ("G",), half_life_kimg=0.1)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(1.0)
    net["G"].train()
    net["G"](torch.randn(16, 2) * 3 + 5)                   # moves running_mean / var, num_batches_tracked
    ema.update(net, batch=100, nimg=100)                   # beta = 0.5
    src, avg = net["G"], ema.nets["G"]
    for b_src, b_avg in zip(src.buffers(), avg.buffers()):
        assert torch.equal(b_src, b_avg)                   # copied, not averaged
    p_src, p_avg = next(iter(src.parameters())), next(iter(avg.parameters()))
    assert torch.allclose(p_avg, p_src - 0.5)              # halfway from the old weights (p - 1) to p


# ---- the D phase leaves the generators alone, for every recipe ---------------------------------------------------

WIDTH_ARGS = ("ngf", "ndf", "hidden", "width", "channels", "base_channels", "fmaps")


def _tiny_overrides(preset: str) -> dict:
    """A small config of ``preset``: batch 4, 32 px, networks' width arguments at 8, then the recipe's own
    ``test_overrides`` (a family whose networks or data need other values declares them there)."""
    from gankit.nets import networks, slot_for
    from gankit.data import data_kinds
    cfg = resolve(preset)
    over = {"batch_size": 4, "snapshot_n": 4, "data.resolution": 32, "seed": 1}
    kinds = data_kinds(cfg.data) or ["image"]
    for role in ("G", "D"):
        arch = getattr(getattr(cfg, role), slot_for(kinds[0]))
        if arch:
            params = inspect.signature(networks[role].get(arch).__init__).parameters
            over.update({f"{role}.{a}": 8 for a in WIDTH_ARGS if a in params
                         and isinstance(params[a].default, int) and params[a].default > 8})
            # A network's own small instance (nets/layers.py ``small_kwargs``), as tests/test_presets_shared.py.
            over.update({f"{role}.{k}": v for k, v in getattr(networks[role].get(arch), "small_kwargs", {}).items()})
    return {**over, **recipes.get(cfg.recipe).test_overrides}


RECIPE_PRESETS = {name: next((p for p, v in PRESETS.items() if v.get("recipe") == name), None)
                  for name in recipes.names()}


@pytest.mark.parametrize("recipe_name", sorted(RECIPE_PRESETS))
def test_discriminator_phases_leave_every_generator_parameter_and_its_optimiser_state(recipe_name):
    preset = RECIPE_PRESETS[recipe_name]
    assert preset is not None, f"recipe {recipe_name!r} has no preset (tests build recipes through their presets)"
    trainer, _ = build(resolve(preset, overrides=_tiny_overrides(preset)), torch.device("cpu"))
    recipe = trainer.recipe
    trainer.train_step()                                  # every optimiser has state now (Adam moments, step)
    d_ids = {id(p) for p in recipe.discriminator_params()}
    if not d_ids:
        pytest.skip(f"recipe {recipe_name!r} has no discriminator (discriminator_names: {recipe.discriminator_names})")
    holds_d = lambda name: any(id(p) in d_ids for g in trainer.optimizers[name].param_groups  # noqa: E731
                               for p in g["params"])
    d_phases = [p for p in trainer.phases if holds_d(p.optimizer)]
    assert d_phases, f"recipe {recipe_name!r} has discriminators but no phase whose optimiser trains them"
    for phase in d_phases:
        trainer.phases = [phase]
        trainer.step = 0                                  # step 0: lazy phases are due
        trainer.nimg = max(trainer.nimg, int(phase.start_kimg * 1000))   # inside the phase's window
        others = [n for n in trainer.optimizers if n != phase.optimizer]   # the generators' optimisers
        gen_before = [p.detach().clone() for p in recipe.generator_params()]
        opt_before = {n: copy.deepcopy(trainer.optimizers[n].state_dict()) for n in others}
        d_params = [p for p in recipe.discriminator_params()]
        d_before = [p.detach().clone() for p in d_params]
        trainer.train_step()
        assert any(not torch.equal(a, b) for a, b in zip(d_before, d_params)), f"{phase.name} did not update D"
        for a, b in zip(gen_before, recipe.generator_params()):
            assert torch.equal(a, b), f"phase {phase.name!r} changed a generator parameter"
        for name in others:
            after = trainer.optimizers[name].state_dict()
            assert after["state"].keys() == opt_before[name]["state"].keys(), (phase.name, name)
            for idx, st in opt_before[name]["state"].items():
                for k, v in st.items():
                    assert torch.equal(torch.as_tensor(v), torch.as_tensor(after["state"][idx][k])), \
                        (phase.name, name, k)


# ---- README numbers come from a script ---------------------------------------------------------------------------

def test_readme_translation_figures_are_the_benchmark_scripts():
    """README.md's translation figures are what benchmarks/i2i_quality.py wrote (``--readme-only`` regenerates
    them from its table in docs/benchmarks.md): no hand-typed numbers."""
    import importlib.util
    from pathlib import Path
    root = Path(__file__).resolve().parent.parent
    spec = importlib.util.spec_from_file_location("i2i_quality", root / "benchmarks" / "i2i_quality.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    source, rows = module.doc_rows()
    assert {(r["preset"], r["direction"]) for r in rows} >= {("pix2pix", "AtoB"), ("cyclegan", "AtoB")}
    assert module.readme_block(source, rows) in (root / "README.md").read_text()


# ---- Ctrl-C under torchrun (2 gloo ranks) ------------------------------------------------------------------------

def _interrupted_rank(rank, world_size, out):
    """Rank 1 alone gets SIGINT as step 1 begins; every rank must stop after that same step."""
    original = Trainer.train_step

    def train_step(self, *a, **k):
        if self.step == 1 and rank == 1:
            os.kill(os.getpid(), signal.SIGINT)
        return original(self, *a, **k)
    Trainer.train_step = train_step
    cfg = resolve("wgan-gp", overrides={**TOY, "batch_size": 8, "kimg": 0.48, "ema_kimg": 0.0})
    try:
        train(cfg, out=out, progress=False)
    except TrainingInterrupted as e:
        return str(e.checkpoint), "SIGINT" in str(e)
    return None, False


def test_ctrl_c_on_one_rank_stops_every_rank_after_the_same_step(tmp_path):
    from dist_harness import run_world
    (ckpt0, sig0), (ckpt1, sig1) = run_world(_interrupted_rank, 2, tmp_path, str(tmp_path / "runs"))
    assert ckpt0 == ckpt1 is not None and not sig0 and sig1       # rank 0 stopped on rank 1's signal
    state = load_checkpoint(ckpt0)
    # The flag of step 1 is reduced without a host sync and read after step 2 (interrupt.py), so every rank
    # stops after 3 steps: 3 steps x 5 D batches x 8 x 2 ranks.
    assert state["step"] == 3 and state["nimg"] == 3 * 5 * 8 * 2
