"""The engine's contract, piece by piece: phases as data (lazy correction and gain, windows, progress), recipe-owned
optimisers (any number, parameter groups, owned learning rates), networks that grow (optimiser rebuilt, resume
mid-growth exact), EMA options, --init-from, strategies (fp16 + GradScaler, gradient accumulation), open data
kinds and their options, sampling options and output formats, and sampler-kind dispatch.

A small recipe registered only for these tests (``contract-toy``) exercises what the built-in families do not.
"""
from __future__ import annotations

import dataclasses
import math

import pytest
import torch
from torch import nn

import gankit
from gankit.artefacts import Scatter
from gankit.checkpoint import load_checkpoint
from gankit.config import OptConfig
from gankit.data import kinds as data_kinds, register_kind
from gankit.engine import EMA, build, resolve, train
from gankit.engine.configure import apply_override, data_options_for
from gankit.errors import ConfigError
from gankit.optim import BASE_LR, OptimizerSpec, ParamGroup
from gankit.recipes import Recipe, recipes
from gankit.recipes.base import Phase, StepContext
from gankit.samplers import NoiseSampler, output_formats, sample_options, write_samples

TOY = "contract-toy"


@dataclasses.dataclass
class ToyOptions:
    grow_at_kimg: float = 0.0     # 0 = never: at this kimg G gains a layer (a ProGAN-like stage)
    pre_kimg: float = 0.0         # G-only pre-training until this kimg (SRGAN-like), then D and G
    lazy_every: int = 1           # a lazy D phase (loss = sum of D's weights) every this many steps
    third_optimizer: bool = False  # an "E" optimiser (an encoder, say) with two parameter groups
    deterministic: bool = False    # losses without noise (for the accumulation test)


class ToyRecipe(Recipe):
    """G: x -> x (a stack of linear layers), D: x -> score; vector data."""
    Options = ToyOptions
    data_kinds = ("vector",)

    def __init__(self, nets, opts, info):
        super().__init__(nets, opts, info)
        self.stage = 0
        self.seen: list[tuple[str, int, float]] = []    # (phase, step, progress) of every loss call

    @classmethod
    def from_config(cls, cfg, info):
        opts = cls.parse_options(cfg.opts)
        nets = {"G": nn.Sequential(nn.Linear(info.dim, info.dim)), "D": nn.Linear(info.dim, 1)}
        if opts.third_optimizer:
            nets["E"] = nn.Sequential(nn.Linear(info.dim, 4), nn.Linear(4, info.dim))
        recipe = cls(nets, opts, info)
        recipe.d_steps = cfg.d_steps
        return recipe

    def optimizers(self):
        specs = super().optimizers()
        if self.opts.third_optimizer:
            E = self.nets["E"]
            specs["E"] = OptimizerSpec(("E",), groups=[ParamGroup(list(E[0].parameters()), 1.0, "first"),
                                                       ParamGroup(list(E[1].parameters()), 0.01, "second")],
                                       schedule=lambda p: 0.5, default=OptConfig(name="sgd", lr=0.1))
        return specs

    def phases(self):
        if self.opts.pre_kimg:
            return [Phase("G_pre", self.g_pre_loss, "G", stop_kimg=self.opts.pre_kimg),
                    Phase("D", self.d_loss, "D", start_kimg=self.opts.pre_kimg),
                    Phase("G", self.g_loss, "G", batch="last", start_kimg=self.opts.pre_kimg)]
        phases = super().phases()
        if self.opts.lazy_every > 1:
            phases.insert(1, Phase("D_reg", self.reg_loss, "D", every=self.opts.lazy_every, batch="last"))
        if self.opts.third_optimizer:
            phases.append(Phase("E", self.e_loss, "E", batch="last"))
        return phases

    def _noise(self, x, ctx):
        return x if self.opts.deterministic else x + 0.1 * ctx.randn(len(x), x.shape[1], device=x.device)

    def d_loss(self, batch, ctx):
        self.seen.append(("D", ctx.step, ctx.progress))
        x = batch["x"]
        with torch.no_grad():
            fake = self.nets["G"](self._noise(x, ctx))
        return {"loss": (self.nets["D"](x) - 1).pow(2).mean() + self.nets["D"](fake).pow(2).mean()}

    def g_loss(self, batch, ctx):
        self.seen.append(("G", ctx.step, ctx.progress))
        fake = self.nets["G"](self._noise(batch["x"], ctx))
        return {"loss": (self.nets["D"](fake) - 1).pow(2).mean()}

    def g_pre_loss(self, batch, ctx):
        self.seen.append(("G_pre", ctx.step, ctx.progress))
        return {"loss": (self.nets["G"](batch["x"]) - batch["x"]).pow(2).mean()}

    def reg_loss(self, batch, ctx):
        self.seen.append(("D_reg", ctx.step, ctx.progress))
        return {"loss": sum(p.sum() for p in self.nets["D"].parameters())}

    def e_loss(self, batch, ctx):
        return {"loss": self.nets["E"](batch["x"]).pow(2).mean()}

    def grow(self, ctx):
        if self.opts.grow_at_kimg and self.stage == 0 and ctx.kimg >= self.opts.grow_at_kimg:
            self._add_stage()
            return {"G"}
        return set()

    def _add_stage(self):
        dim = self.info.dim
        layer = nn.Linear(dim, dim).to(next(self.nets["G"].parameters()).device)
        nn.init.eye_(layer.weight)
        nn.init.zeros_(layer.bias)
        self.plain("G").append(layer)
        self.stage = 1

    def structure_state(self):
        return {"stage": self.stage}

    def load_structure_state(self, state):
        if state.get("stage", 0) > self.stage:
            self._add_stage()

    def fixed_inputs(self, n, seed, dataset):
        return {"x": torch.randn(n, self.info.dim, generator=torch.Generator().manual_seed(seed))}

    @torch.no_grad()
    def snapshot(self, fixed, nets):
        return [Scatter(nets["G"](fixed["x"].to(next(nets["G"].parameters()).device)).cpu())]

    def samplers(self, nets=None):
        return {"default": NoiseSampler((nets or self.nets)["G"], "points")}


@pytest.fixture(autouse=True)
def toy_recipe():
    recipes.register(TOY)(ToyRecipe)
    yield
    recipes._items.pop(TOY)


def _cfg(**over):
    base = {"recipe": TOY, "data.spec": "grid25", "batch_size": 8, "kimg": 0.064, "tick_kimg": 0.016,
            "snapshot_kimg": 0.032, "snapshot_n": 8, "opt.G.name": "sgd", "opt.D.name": "sgd", "opt.G.lr": 0.01,
            "opt.D.lr": 0.01}
    return resolve(overrides={**base, **over})


# ---- phases -----------------------------------------------------------------------------------------------

def test_lazy_phase_corrects_its_optimiser_and_scales_its_loss():
    every = 4
    trainer, _ = build(_cfg(**{"lazy_every": every, "opt.D.name": "adam", "opt.D.lr": 1e-3,
                               "opt.D.betas": [0.5, 0.99]}), torch.device("cpu"))
    c = every / (every + 1)                                   # Karras et al. 2020, appendix B
    d_group = trainer.optimizers["D"].param_groups[0]
    assert d_group["lr"] == pytest.approx(1e-3 * c) and d_group["betas"] == pytest.approx((0.5 ** c, 0.99 ** c))
    assert trainer.optimizers["G"].param_groups[0]["lr"] == pytest.approx(0.01)   # G has no lazy phase

    # Gain: with SGD the lazy phase moves D's weights by lr * c * every * grad; its loss is sum(w) (grad 1).
    trainer, _ = build(_cfg(lazy_every=every), torch.device("cpu"))
    D = trainer.recipe.nets["D"]
    w0 = D.weight.detach().clone()
    trainer.recipe.d_loss = lambda batch, ctx: {"loss": 0.0 * sum(p.sum() for p in D.parameters())}
    trainer.phases = trainer.recipe.phases()                  # phases bound to the patched D loss
    trainer.train_step()                                      # step 0: the lazy phase runs
    assert torch.allclose(D.weight, w0 - 0.01 * c * every, atol=1e-7)
    for _ in range(every):
        trainer.train_step()
    ran = [s for p, s, _ in trainer.recipe.seen if p == "D_reg"]
    assert ran == [0, every]                                  # every 4th step only


def test_phase_windows_and_progress_reach_the_losses(tmp_path):
    cfg = _cfg(pre_kimg=0.032, kimg=0.064)
    trainer, _ = build(cfg, torch.device("cpu"))
    while trainer.nimg < trainer.total_nimg:
        trainer.train_step()
    seen = trainer.recipe.seen
    pre = [s for p, s, _ in seen if p == "G_pre"]
    adv = [s for p, s, _ in seen if p in ("D", "G")]
    assert pre == [0, 1, 2, 3] and min(adv) == 4             # 32 images of G-only pre-training at batch 8
    assert [p for p, s, _ in seen if s == 4] == ["D", "G"]
    progress = [pr for p, s, pr in seen if p == "D"]
    assert progress == pytest.approx([(8 * (s + 1)) / 64 for p, s, _ in seen if p == "D"])
    assert all(0 < pr <= 1 for _, _, pr in seen)


def test_d_steps_zero_trains_the_generator_alone():
    trainer, _ = build(dataclasses.replace(_cfg(), d_steps=0), torch.device("cpu"))
    d0 = {k: v.clone() for k, v in trainer.recipe.nets["D"].state_dict().items()}
    g0 = trainer.recipe.nets["G"][0].weight.detach().clone()
    trainer.train_step()
    assert all(torch.equal(v, trainer.recipe.nets["D"].state_dict()[k]) for k, v in d0.items())
    assert not torch.equal(g0, trainer.recipe.nets["G"][0].weight)
    assert trainer.nimg == 8 and [p for p, _, _ in trainer.recipe.seen] == ["G"]   # its batch still counts


# ---- optimisers -------------------------------------------------------------------------------------------

def test_any_number_of_optimisers_with_groups_and_owned_learning_rates():
    trainer, _ = build(_cfg(third_optimizer=True), torch.device("cpu"))
    assert set(trainer.optimizers) == {"G", "D", "E"}
    E = trainer.optimizers["E"]
    assert type(E) is torch.optim.SGD                          # the spec's default hyper-parameters
    foreign = nn.Parameter(torch.zeros(1))
    E.add_param_group({"params": [foreign], "lr": 0.123})      # a group gankit did not build
    trainer.set_lr()
    assert [g["lr"] for g in E.param_groups] == pytest.approx([0.1 * 0.5, 0.001 * 0.5, 0.123])
    assert [g[BASE_LR] for g in E.param_groups[:2]] == pytest.approx([0.1, 0.001])
    trainer.lr_scale = 0.5                                     # a rollback halves every owned group
    trainer.set_lr()
    assert [g["lr"] for g in E.param_groups] == pytest.approx([0.025, 0.00025, 0.123])
    trainer.train_step()
    assert "E/loss" in trainer.take_tick_stats()
    # cfg.opt.E overrides the default; an optimiser the recipe does not declare is refused.
    trainer, _ = build(_cfg(third_optimizer=True, **{"opt.E.lr": 0.2, "opt.E.name": "sgd"}), torch.device("cpu"))
    assert trainer.optimizers["E"].param_groups[1][BASE_LR] == pytest.approx(0.002)
    with pytest.raises(ConfigError, match="no optimiser named 'X'"):
        build(_cfg(**{"opt.X.lr": 0.1}), torch.device("cpu"))


def test_growing_network_rebuilds_its_optimiser_and_resumes_mid_growth_exactly(tmp_path):
    over = {"grow_at_kimg": 0.024, "opt.G.name": "adam", "opt.G.lr": 1e-3, "kimg": 0.064, "ema_kimg": 0.01}
    full = train(_cfg(**over), out=tmp_path / "a", progress=False)
    half = train(_cfg(**{**over, "kimg": 0.032}), out=tmp_path / "b", progress=False)   # stops after growing
    assert load_checkpoint(half)["structure"] == {"stage": 1}
    resumed = train(_cfg(**over), resume=half, progress=False, resume_overrides={"kimg"})
    a, b = load_checkpoint(full), load_checkpoint(resumed)
    assert a["structure"] == b["structure"] == {"stage": 1}
    assert "nets.G.1.weight" in a["nets"]
    for key in a["nets"]:
        assert torch.equal(a["nets"][key], b["nets"][key]), key
    assert set(a["ema"]["G"]) == {"0.weight", "0.bias", "1.weight", "1.bias"}    # the EMA copy grew too
    for key in a["ema"]["G"]:
        assert torch.equal(a["ema"]["G"][key], b["ema"]["G"][key]), key
    # Adam was reset at the growth (ProGAN's reference code): its step count restarted there.
    steps = {int(v["step"]) for v in a["opt"]["G"]["state"].values()}
    assert steps == {(64 - 24) // 8}, steps
    G = gankit.load_generator(full)
    assert len(G) == 2                                         # a checkpoint after growth loads with its shapes


# ---- EMA ---------------------------------------------------------------------------------------------------

def test_ema_start_delay_and_rampup():
    nets = nn.ModuleDict({"G": nn.Linear(1, 1, bias=False)})
    ema = EMA(nets, ("G",), half_life_kimg=1.0, rampup=0.05, start_kimg=2.0)
    assert ema.beta(batch=100, nimg=1999) == 0.0               # BigGAN: copies G until the start
    assert ema.beta(batch=100, nimg=2000) == pytest.approx(0.5 ** (100 / 100))   # min(1000, 0.05 * 2000)
    assert ema.beta(batch=100, nimg=100_000) == pytest.approx(0.5 ** 0.1)
    with torch.no_grad():
        nets["G"].weight.fill_(3.0)
    ema.update(nets, 100, 500)
    assert ema.nets["G"].weight.item() == 3.0                  # before the start: an exact copy


# ---- --init-from --------------------------------------------------------------------------------------------

def test_init_from_loads_matching_names_and_shapes(tmp_path):
    tiny = {"data.spec": "digits", "data.resolution": 32, "batch_size": 8, "G.ngf": 8, "D.ndf": 8, "kimg": 0.032,
            "tick_kimg": 0.032, "snapshot_kimg": 0.032, "snapshot_n": 4}
    source = train(resolve("dcgan", overrides=tiny), out=tmp_path, progress=False)
    src = load_checkpoint(source)["nets"]
    cfg = resolve("dcgan", overrides={**tiny, "D.ndf": 16, "init_from": str(source)})   # D differs in shape
    trainer, _ = build(cfg, torch.device("cpu"))
    mine = trainer.recipe.state_dict()
    g_keys = [k for k in src if k.startswith("nets.G.")]
    assert g_keys and all(torch.equal(mine[k], src[k]) for k in g_keys)
    assert mine["nets.D.blocks.0.weight"].shape != src["nets.D.blocks.0.weight"].shape   # D kept its own init
    from gankit.loading import init_weights_from
    report = init_weights_from(trainer.recipe, source)
    assert "nets.D.blocks.0.weight" in report["skipped"] and set(g_keys) <= set(report["loaded"])
    assert trainer.nimg == 0 and trainer.step == 0             # a new run, not a resume
    run = train(cfg, out=tmp_path / "new", progress=False)
    assert load_checkpoint(run)["config"]["init_from"] == str(source)


def test_init_from_without_any_match_is_refused(tmp_path):
    source = train(_cfg(), out=tmp_path, progress=False)       # the toy's G / D on 2-D vectors
    cfg = resolve("dcgan", overrides={"data.spec": "digits", "data.resolution": 32, "G.ngf": 8, "D.ndf": 8,
                                      "init_from": str(source)})
    with pytest.raises(Exception, match="no network tensor matches"):
        build(cfg, torch.device("cpu"))


# ---- strategies ---------------------------------------------------------------------------------------------

def test_fp16_with_grad_scaler_logs_its_scale_and_resumes(tmp_path):
    over = {"amp": "fp16", "opt.G.name": "adam", "opt.D.name": "adam"}
    full = train(_cfg(**over), out=tmp_path / "a", progress=False)
    half = train(_cfg(**{**over, "kimg": 0.032}), out=tmp_path / "b", progress=False)
    resumed = train(_cfg(**over), resume=half, progress=False, resume_overrides={"kimg"})
    a, b = load_checkpoint(full), load_checkpoint(resumed)
    assert set(a["amp"]["scalers"]) == {"G", "D"}              # one scaler per optimiser, checkpointed
    assert a["amp"]["scalers"]["D"]["scale"] == b["amp"]["scalers"]["D"]["scale"]
    for key in a["nets"]:
        assert torch.equal(a["nets"][key], b["nets"][key]), key
    import json
    record = json.loads((full / "stats.jsonl").read_text().splitlines()[0])
    assert record["amp/scale_D"] > 1 and math.isfinite(record["D/loss"])


def test_gradient_accumulation_equals_the_full_batch():
    states = []
    for accum in (1, 4):
        trainer, _ = build(_cfg(grad_accum=accum, deterministic=True, batch_size=16), torch.device("cpu"))
        trainer.train_step()
        states.append({k: v.clone() for k, v in trainer.recipe.state_dict().items()})
    for k in states[0]:
        assert torch.allclose(states[0][k], states[1][k], atol=1e-6), k
    with pytest.raises(ConfigError, match="multiple of grad_accum"):
        _cfg(grad_accum=3)


def test_strategies_that_both_own_the_step_cannot_combine():
    from gankit.engine.strategies import Strategies, Strategy

    class A(Strategy):
        name, owns_step = "a", True

    class B(Strategy):
        name, owns_step = "b", True
    with pytest.raises(ConfigError, match="cannot be combined"):
        Strategies([A(), B()])


# ---- data kinds, sampling options, output formats, sampler kinds --------------------------------------------

def test_a_new_data_kind_registers_with_its_options():
    @dataclasses.dataclass
    class SeqOptions:
        max_len: int = 32
        discrete: bool = True
    register_kind("contract-seq", "{'tokens': int64 [T]}", SeqOptions)
    try:
        d = apply_override({"recipe": "gan", "data": {}}, "data.max_len", 64)
        assert d["data"]["options"] == {"max_len": 64}
        from gankit.config import DataConfig
        assert data_options_for("contract-seq", DataConfig(options={"max_len": 64})) == SeqOptions(64, True)
        with pytest.raises(ConfigError, match="data-kind options: .*max_len"):
            apply_override({"recipe": "gan", "data": {}}, "data.max_lenn", 64)
    finally:
        data_kinds._items.pop("contract-seq")


def test_sampling_options_and_output_formats_are_registries(tmp_path):
    from gankit.cli import _sampling_commands
    from gankit.samplers import register_sample_option
    register_sample_option("contract_temperature", float, "softmax temperature")
    try:
        sample_cmd = _sampling_commands()[0]
        assert "--contract-temperature" in [o for p in sample_cmd.params for o in p.opts]
        sampler = NoiseSampler(nn.Linear(2, 2), "points")
        with pytest.raises(ConfigError, match="--contract-temperature does not apply.*--label"):
            sampler.check_options({"contract_temperature": 0.7})
    finally:
        sample_options._items.pop("contract_temperature")
    with pytest.raises(ConfigError, match="points samples can be written as .npy, .png"):
        write_samples(sampler, torch.zeros(3, 2), tmp_path / "x.wav", [], None)
    assert "image:.png" in output_formats and "*:.npy" in output_formats


def test_commands_dispatch_on_the_sampler_kind():
    sampler = NoiseSampler(nn.Linear(2, 2))
    sampler.require("sample")
    with pytest.raises(ConfigError, match="`gankit translate` drives translate models.*gankit sample"):
        sampler.require("translate")
    ctx = StepContext(nimg=250, total_nimg=1000)
    assert ctx.progress == 0.25 and ctx.kimg == 0.25


# ---- the GAN family's R1, fused and as a lazy phase ----------------------------------------------------------

def test_gan_r1_fused_weight_and_lazy_phase():
    from gankit.losses import r1_penalty
    over = {"data.spec": "grid25", "batch_size": 16, "G.hidden": 16, "D.hidden": 16, "r1_interval": 4}
    plain, _ = build(resolve("gan", overrides={**over, "r1_gamma": 0.0}), torch.device("cpu"))
    fused, _ = build(resolve("gan", overrides={**over, "r1_gamma": 2.0}), torch.device("cpu"))
    fused.recipe.load_state_dict(plain.recipe.state_dict())
    batch = next(plain.stream)
    D = fused.recipe.nets["D"]
    r1 = r1_penalty(lambda x: D(x, None), batch["x"]).item()
    for step, weight in ((0, 0.5 * 2.0 * 4), (1, 0.0)):          # gamma/2 x interval, on every 4th step only
        torch.manual_seed(0)
        base = plain.recipe.d_loss(batch, StepContext(step=step))["loss"].item()
        torch.manual_seed(0)
        with_r1 = fused.recipe.d_loss(batch, StepContext(step=step))["loss"].item()
        assert with_r1 - base == pytest.approx(weight * r1, rel=1e-5, abs=1e-7), step
    phased, _ = build(resolve("gan", overrides={**over, "r1_gamma": 2.0, "r1_phase": True}), torch.device("cpu"))
    assert [(p.name, p.every) for p in phased.phases] == [("D", 1), ("D_r1", 4), ("G", 1)]
    assert phased.optimizers["D"].param_groups[0]["lr"] == pytest.approx(
        phased.cfg.opt["D"].lr * 4 / 5)                              # the lazy correction of D's optimiser
    phased.recipe.load_state_dict(plain.recipe.state_dict())
    out = phased.recipe.r1_loss(batch, StepContext())
    assert out["loss"].item() == pytest.approx(0.5 * 2.0 * r1, rel=1e-5)   # the engine multiplies by 4


# ---- checkpoints of the first layout ------------------------------------------------------------------------

def test_version_1_checkpoints_are_migrated(tmp_path):
    from gankit.checkpoint import migrate
    run = train(_cfg(**{"opt.G.name": "adam", "opt.D.name": "adam"}), out=tmp_path, progress=False)
    ckpt = torch.load(run / "latest.pt", weights_only=True)
    cfg = dict(ckpt["config"])
    opt = cfg.pop("opt")
    old = {**ckpt, "version": 1, "config": {**cfg, "g_opt": opt["G"], "d_opt": opt["D"], "amp": False}}
    torch.save(old, tmp_path / "v1.pt")
    loaded = load_checkpoint(tmp_path / "v1.pt")
    assert loaded["version"] == 2 and loaded["config"]["opt"] == opt and loaded["config"]["amp"] == "off"
    assert migrate({**old, "config": {**old["config"], "amp": True}})["config"]["amp"] == "bf16"
    resumed = train(_cfg(kimg=0.08), resume=tmp_path / "v1.pt", progress=False, resume_overrides={"kimg"})
    assert load_checkpoint(resumed)["nimg"] == 80


def test_data_options_must_fit_the_data():
    @dataclasses.dataclass
    class RowOptions:
        discrete: bool = True
    register_kind("contract-rows", "{'row': float [D]}", RowOptions)
    try:
        with pytest.raises(ConfigError, match="does not apply to this data .*vector"):
            resolve("gan", overrides={"data.spec": "grid25", "data.discrete": False})   # grid25 is vector data
    finally:
        data_kinds._items.pop("contract-rows")
