"""pix2pix and CycleGAN recipes: each loss term against hand-computed values, the image pool, the schedule."""
import io
import math
import warnings

import pytest
import torch
from torch import nn

from gankit.engine import resolve
from gankit.data.base import DataInfo, MemoryDataset
from gankit.errors import ConfigError
from gankit.recipes import recipes
from gankit.recipes.base import StepContext
from gankit.recipes.cyclegan import CycleGAN, CycleGANOptions
from gankit.recipes.image_pool import ImagePool
from gankit.recipes.pix2pix import Pix2Pix, Pix2PixOptions
from gankit.recipes.translation import adversarial_loss, linear_decay

SMALL = {"G.ngf": 4, "D.ndf": 4}


def info(kind="paired", ca=1, cb=0, res=32):
    return DataInfo(name="toy", kind=kind, size=8, channels=ca, resolution=res, channels_b=cb)


def build(preset, data_info, **overrides):
    cfg = resolve(preset, None, {**SMALL, **overrides})
    return recipes.get(cfg.recipe).from_config(cfg, data_info)


class Affine(nn.Module):
    """y = scale * x + shift with learnable scalars: a tiny translator whose outputs are known in closed form."""

    def __init__(self, scale: float, shift: float):
        super().__init__()
        self.scale, self.shift = nn.Parameter(torch.tensor(scale)), nn.Parameter(torch.tensor(shift))

    def forward(self, x):
        return self.scale * x + self.shift


class ConstPatch(nn.Module):
    """A patch 'discriminator' that outputs the constant ``value`` on a 3 x 3 map and records its inputs."""

    def __init__(self, value: float):
        super().__init__()
        self.value = nn.Parameter(torch.tensor(value))
        self.seen = []

    def forward(self, x):
        self.seen.append(x.detach().clone())
        return self.value.expand(x.shape[0], 1, 3, 3)


# ---- adversarial losses and schedule ------------------------------------------------------------------------

def test_adversarial_loss_values():
    logits = torch.tensor([-2.0, 0.0, 1.5]).view(3, 1, 1, 1)
    sig = torch.sigmoid(logits)
    # vanilla (Isola et al. eq. 1): -log D for real, -log(1 - D) for fake.
    assert torch.allclose(adversarial_loss(logits, True, "vanilla"), -torch.log(sig).mean())
    assert torch.allclose(adversarial_loss(logits, False, "vanilla"), -torch.log(1 - sig).mean())
    # least squares (Mao et al. 2017, a=0, b=c=1).
    assert torch.allclose(adversarial_loss(logits, True, "lsgan"), ((logits - 1) ** 2).mean())
    assert torch.allclose(adversarial_loss(logits, False, "lsgan"), (logits ** 2).mean())
    with pytest.raises(ConfigError, match="vanilla, lsgan"):
        adversarial_loss(logits, True, "hinge")


def test_lr_schedule_constant_then_linear_to_zero():
    r = build("cyclegan", info("unpaired"))
    assert [r.lr_multiplier(p) for p in (0.0, 0.25, 0.5, 0.75, 1.0)] == [1.0, 1.0, 1.0, 0.5, 0.0]
    assert r.lr_multiplier(0.9) == pytest.approx(0.2)
    p2p = build("pix2pix", info())
    assert [p2p.lr_multiplier(p) for p in (0.0, 0.5, 0.75, 1.0)] == [1.0, 1.0, 1.0, 1.0]  # paper: constant
    assert linear_decay(0.75, 0.5) == 0.5 and linear_decay(0.8, 0.6) == pytest.approx(0.5)


# ---- image pool ---------------------------------------------------------------------------------------------

def _imgs(values):
    return torch.tensor(values, dtype=torch.float32).view(-1, 1, 1, 1)


def test_pool_returns_and_stores_new_images_while_filling():
    pool = ImagePool(size=4, seed=0)
    rng_before = pool.generator.get_state()
    out = pool.query(_imgs([1, 2, 3]))
    assert out.flatten().tolist() == [1, 2, 3] and pool.count == 3
    out = pool.query(_imgs([4]))
    assert out.flatten().tolist() == [4] and pool.count == 4
    assert pool.images.flatten().tolist() == [1, 2, 3, 4]
    assert torch.equal(pool.generator.get_state(), rng_before)  # no random draw while filling
    assert ImagePool(size=0).query(_imgs([7, 8])).flatten().tolist() == [7, 8]  # size 0: no history


def test_pool_half_new_half_history_with_uniform_replacement():
    size, n = 5, 4000
    pool = ImagePool(size=size, seed=123)
    pool.query(_imgs(range(size)))                       # full with 0..4
    model = list(range(size))                            # what the pool must hold
    returned_new, slots = 0, [0] * size
    for v in range(size, size + n):
        out = float(pool.query(_imgs([v])))
        if out == v:
            returned_new += 1                            # pool unchanged
        else:
            idx = model.index(out)                       # an image that was stored ...
            model[idx] = v                               # ... and the new one took its place
            slots[idx] += 1
        assert pool.images.flatten().tolist() == model
    frac = returned_new / n
    assert abs(frac - 0.5) < 0.04                        # binomial sd 0.008: 5 sd
    expected = (n - returned_new) / size
    assert all(abs(s - expected) < 0.2 * expected for s in slots)  # uniform choice of the stored image


def test_pool_state_round_trip_through_weights_only_load_and_resume_reproducibility():
    r = build("cyclegan", info("unpaired"), pool_size=3)
    r.pool_b.query(torch.randn(5, 1, 32, 32))            # full, and two random draws made
    buf = io.BytesIO()
    torch.save(r.state_dict(), buf)
    buf.seek(0)
    state = torch.load(buf, weights_only=True)
    assert "pool_b._extra_state" in state and "pool_a._extra_state" in state
    r2 = build("cyclegan", info("unpaired"), pool_size=3, seed=99)  # different pool seeds before loading
    r2.load_state_dict(state)
    assert r2.pool_b.count == 3 and torch.equal(r2.pool_b.images, r.pool_b.images)
    assert r2.pool_a.count == 0
    new = torch.randn(20, 1, 32, 32)
    assert torch.equal(r.pool_b.query(new), r2.pool_b.query(new))   # same draws after the "resume"
    assert torch.equal(r.pool_b.images, r2.pool_b.images)


# ---- pix2pix ------------------------------------------------------------------------------------------------

def _pix2pix(l1_weight=100.0, gan_loss="vanilla", d_value=0.0):
    nets = {"G": Affine(0.5, 0.2), "D": ConstPatch(d_value)}
    return Pix2Pix(nets, Pix2PixOptions(gan_loss=gan_loss, l1_weight=l1_weight), info(ca=1, cb=1))


@pytest.mark.parametrize("l1_weight", [100.0, 7.0])
def test_pix2pix_g_loss_is_adversarial_plus_weighted_l1(l1_weight):
    torch.manual_seed(0)
    a, b = torch.rand(2, 1, 4, 4) * 2 - 1, torch.rand(2, 1, 4, 4) * 2 - 1
    r = _pix2pix(l1_weight, d_value=0.3)
    out = r.g_loss({"a": a, "b": b}, StepContext())
    l1 = (0.5 * a + 0.2 - b).abs().mean()
    adv = math.log(1 + math.exp(-0.3))                   # -log sigmoid(0.3): G wants D to say "real"
    assert out["l1"].item() == pytest.approx(l1.item(), rel=1e-6)
    assert out["loss"].item() == pytest.approx(adv + l1_weight * l1.item(), rel=1e-5)
    # D sees the input and the output side by side: [a, G(a)].
    assert torch.allclose(r.nets["D"].seen[-1], torch.cat([a, 0.5 * a + 0.2], 1))


def test_pix2pix_d_loss_is_halved_and_conditioned_on_the_input():
    a, b = torch.rand(2, 1, 4, 4), torch.rand(2, 1, 4, 4)
    r = _pix2pix(d_value=0.3)
    out = r.d_loss({"a": a, "b": b}, StepContext())
    real, fake = math.log(1 + math.exp(-0.3)), math.log(1 + math.exp(0.3))
    assert out["loss"].item() == pytest.approx(0.5 * (real + fake), rel=1e-6)
    real_in, fake_in = r.nets["D"].seen
    assert torch.equal(real_in, torch.cat([a, b], 1)) and torch.allclose(fake_in, torch.cat([a, 0.5 * a + 0.2], 1))
    r = _pix2pix(gan_loss="lsgan", d_value=0.3)
    assert r.d_loss({"a": a, "b": b}, StepContext())["loss"].item() == pytest.approx(0.5 * (0.7 ** 2 + 0.3 ** 2), rel=1e-6)


# ---- CycleGAN -----------------------------------------------------------------------------------------------

def _cyclegan(identity_weight=0.5, ca=1, cb=1, d_value=0.0, pool_size=0):
    nets = {"G_ab": Affine(0.5, 0.0), "G_ba": Affine(1.0, 0.1), "D_a": ConstPatch(d_value), "D_b": ConstPatch(d_value)}
    opts = CycleGANOptions(identity_weight=identity_weight, pool_size=pool_size)
    return CycleGAN(nets, opts, info("unpaired", ca, cb))


def test_cyclegan_cycle_and_identity_terms_equal_hand_computed_l1():
    torch.manual_seed(0)
    a, b = torch.rand(3, 1, 4, 4) * 2 - 1, torch.rand(3, 1, 4, 4) * 2 - 1
    out = _cyclegan(d_value=0.0).g_loss({"a": a, "b": b}, StepContext())
    # G_ab(x) = x / 2, G_ba(x) = x + 0.1:
    cycle_a = (0.5 * a + 0.1 - a).abs().mean()           # |G_ba(G_ab(a)) - a|
    cycle_b = (0.5 * (b + 0.1) - b).abs().mean()         # |G_ab(G_ba(b)) - b|
    idt_b = (0.5 * b - b).abs().mean()                   # |G_ab(b) - b|
    idt_a = torch.tensor(0.1)                            # |G_ba(a) - a|
    for key, value in (("cycle_a", cycle_a), ("cycle_b", cycle_b), ("idt_a", idt_a), ("idt_b", idt_b)):
        assert out[key].item() == pytest.approx(value.item(), rel=1e-5), key
    adv = 2 * (0 - 1) ** 2                               # least squares, D = 0 everywhere, two generators
    expected = adv + 10 * (cycle_a + cycle_b) + 0.5 * 10 * (idt_a + idt_b)
    assert out["loss"].item() == pytest.approx(expected.item(), rel=1e-5)
    no_idt = _cyclegan(identity_weight=0.0).g_loss({"a": a, "b": b}, StepContext())
    assert "idt_a" not in no_idt
    assert no_idt["loss"].item() == pytest.approx((adv + 10 * (cycle_a + cycle_b)).item(), rel=1e-5)


def test_cyclegan_identity_disabled_with_a_warning_when_channels_differ():
    with pytest.warns(UserWarning, match="identity loss disabled"):
        r = build("cyclegan", info("unpaired", ca=1, cb=3))
    assert not r.use_identity
    out = r.g_loss({"a": torch.rand(2, 1, 32, 32) * 2 - 1, "b": torch.rand(2, 3, 32, 32) * 2 - 1}, StepContext())
    assert "idt_a" not in out and torch.isfinite(out["loss"])


def test_cyclegan_d_loss_halved_per_discriminator():
    a, b = torch.rand(2, 1, 4, 4), torch.rand(2, 1, 4, 4)
    out = _cyclegan(d_value=0.25).d_loss({"a": a, "b": b}, StepContext())
    per_d = 0.5 * ((0.25 - 1) ** 2 + 0.25 ** 2)
    assert out["d_a"].item() == pytest.approx(per_d) and out["d_b"].item() == pytest.approx(per_d)
    assert out["loss"].item() == pytest.approx(2 * per_d)


def test_cyclegan_d_sees_pooled_fakes():
    r = _cyclegan(pool_size=2)
    a, b = torch.rand(2, 1, 4, 4), torch.rand(2, 1, 4, 4)
    r.d_loss({"a": a, "b": b}, StepContext())
    assert torch.allclose(r.pool_b.images, 0.5 * a) and torch.allclose(r.pool_a.images, b + 0.1)
    real_b, fake_b = r.nets["D_b"].seen
    assert torch.equal(real_b, b) and torch.allclose(fake_b, 0.5 * a)


# ---- both: real networks at 32 px ---------------------------------------------------------------------------

@pytest.mark.parametrize("preset,kind,ca,cb", [("pix2pix", "paired", 1, 3), ("pix2pix", "paired", 3, 3),
                                               ("cyclegan", "unpaired", 1, 1), ("cyclegan", "unpaired", 3, 1)])
def test_losses_finite_and_gradients_reach_only_the_phase_nets(preset, kind, ca, cb):
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = build(preset, info(kind, ca, cb), **({"G.n_blocks": 1} if preset == "cyclegan" else {}))
    batch = {"a": torch.rand(2, ca, 32, 32) * 2 - 1, "b": torch.rand(2, cb, 32, 32) * 2 - 1}
    specs = r.optimizers()
    assert [p.name for p in r.phases()] == ["D", "G"]
    for phase in r.phases():                    # as the engine's step runs them: the phase's nets train
        names = phase.nets or specs[phase.optimizer].nets
        others = [n for n in r.nets if n not in names]
        for n, net in r.nets.items():
            net.requires_grad_(n in names)
        r.zero_grad(set_to_none=True)
        out = phase.loss(batch, StepContext())
        assert all(torch.isfinite(v) for v in out.values()), out
        out["loss"].backward()
        assert all(p.grad is not None for n in names for p in r.nets[n].parameters())
        assert all(p.grad is None for n in others for p in r.nets[n].parameters())


def test_from_config_checks_data_kind_and_network_kind():
    with pytest.raises(ConfigError, match="paired"):
        build("pix2pix", info("unpaired"))
    with pytest.raises(ConfigError, match="image"):
        build("cyclegan", info("image"))
    with pytest.raises(ConfigError, match="not a translator network.*resnet, unet"):
        cfg = resolve("pix2pix", None, {"G.image": "dcgan"})
        Pix2Pix.from_config(cfg, info())
    with pytest.raises(ConfigError, match="32, 64, 128, 256"):
        build("pix2pix", info(res=48))
    r = build("cyclegan", info("paired", 3, 3), **{"G.n_blocks": 1})  # paired data trains a CycleGAN too
    assert isinstance(r, CycleGAN) and r.nets["G_ab"].n_blocks == 1


def test_direction_handling():
    p = build("pix2pix", info())
    assert p.translator_name() == "G" and p.translator_name("AtoB") == "G"
    with pytest.raises(ConfigError, match="trained AtoB"):
        p.translator_name("BtoA")
    p = build("pix2pix", info(), **{"data.direction": "BtoA"})
    assert p.trained_direction == "BtoA" and p.translator_name("BtoA") == "G"
    with pytest.raises(ConfigError):
        p.translator_name("AtoB")
    c = build("cyclegan", info("unpaired"), **{"G.n_blocks": 1})
    assert (c.translator_name("AtoB"), c.translator_name("BtoA")) == ("G_ab", "G_ba")
    c = build("cyclegan", info("unpaired"), **{"G.n_blocks": 1, "data.direction": "BtoA"})
    assert (c.translator_name("BtoA"), c.translator_name("AtoB")) == ("G_ab", "G_ba")
    with pytest.raises(ConfigError, match="AtoB, BtoA"):
        c.translator_name("sideways")


def test_fixed_inputs_snapshot_rows_and_sampler():
    torch.manual_seed(0)
    a, b = torch.rand(10, 1, 32, 32) * 2 - 1, torch.rand(10, 3, 32, 32) * 2 - 1
    data = MemoryDataset({"a": a, "b": b}, info(ca=1, cb=3))
    p = build("pix2pix", data.info)
    fixed = p.fixed_inputs(4, seed=5, dataset=data)
    assert torch.equal(fixed["a"], p.fixed_inputs(4, seed=5, dataset=data)["a"])  # same seed, same items
    idx = [int((a - x).abs().flatten(1).sum(1).argmin()) for x in fixed["a"]]
    assert torch.equal(fixed["b"], b[idx])              # pairs kept together
    p.train()
    shot = p.snapshot(fixed, p.nets)[0]
    shot = {"nrow": shot.nrow, "grid": shot.images}
    assert shot["nrow"] == 4 and shot["grid"].shape == (12, 3, 32, 32)   # input / output / target rows
    assert torch.equal(shot["grid"][:4], fixed["a"].expand(-1, 3, -1, -1))  # gray input shown as RGB
    assert torch.equal(shot["grid"][8:], fixed["b"])
    assert p.nets["G"].training                         # mode restored
    translate = p.sampler()
    out = translate(fixed["a"])
    assert out.shape == (4, 3, 32, 32) and torch.equal(out, shot["grid"][4:8]) and p.nets["G"].training

    c = build("cyclegan", info("unpaired", 1, 1), **{"G.n_blocks": 1})
    fixed = {"a": a[:3], "b": b[:3, :1]}
    shot = c.snapshot(fixed, c.nets)[0]
    shot = {"nrow": shot.nrow, "grid": shot.images}
    assert shot["nrow"] == 3 and shot["grid"].shape == (18, 1, 32, 32)   # A, A->B, A->B->A, B, B->A, B->A->B
    with torch.no_grad():
        c.eval()
        fake_b = c.nets["G_ab"](fixed["a"])
        assert torch.allclose(shot["grid"][3:6], fake_b) and torch.allclose(shot["grid"][6:9], c.nets["G_ba"](fake_b))
        assert torch.allclose(shot["grid"][12:15], c.nets["G_ba"](fixed["b"]))
    assert torch.allclose(c.sampler(direction="BtoA")(fixed["b"]), shot["grid"][12:15])
