"""ProGAN: the fade-in (generator and discriminator), the kimg schedule, equalised lr, pixel norm, minibatch
stddev, the WGAN-GP + drift loss, optimiser reset at each stage, and resume in the middle of a fade, bit for bit."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from gankit.checkpoint import load_checkpoint
from gankit.engine import build, resolve, train
from gankit.nets import discriminators, generators
from gankit.nets.progan import EqualizedConv2d, minibatch_stddev, pixel_norm
from gankit.recipes.base import StepContext
from gankit.recipes.progan import fade_images, schedule


def _nets(resolution=16):
    torch.manual_seed(0)
    G = generators.get("progan")(z_dim=8, out_channels=1, resolution=resolution, fmap_base=64, fmap_max=16)
    D = discriminators.get("progan")(in_channels=1, resolution=resolution, fmap_base=64, fmap_max=16)
    return G, D


def test_generator_fade_in_interpolates_exactly_between_old_and_new_outputs():
    G, _ = _nets()
    z = torch.randn(3, 8)
    with torch.no_grad():
        old_native = G(z, native=True)                           # stage 0: [3, 1, 4, 4]
        assert old_native.shape[-1] == 4 and G(z).shape[-1] == 16
        G.grow()
        for alpha in (0.0, 0.3, 1.0):
            G.set_alpha(alpha)
            feats = G.features(z)
            new = torch.tanh(G.to_rgb[1](feats[1]))
            old = F.interpolate(torch.tanh(G.to_rgb[0](feats[0])), scale_factor=2, mode="nearest")
            torch.testing.assert_close(G(z, native=True), (1 - alpha) * old + alpha * new, rtol=0, atol=1e-6)
        G.set_alpha(0.0)                                         # the moment of growing: nothing changes
        assert torch.equal(G(z, native=True), F.interpolate(old_native, scale_factor=2, mode="nearest"))
        assert torch.equal(G(z), F.interpolate(old_native, scale_factor=4, mode="nearest"))


def test_discriminator_fade_in_interpolates_and_starts_where_the_old_one_was():
    _, D = _nets()
    x = torch.rand(4, 1, 16, 16) * 2 - 1
    with torch.no_grad():
        before = D(x)                                            # stage 0 reads x pooled to 4x4
        D.grow()
        D.set_alpha(0.0)
        torch.testing.assert_close(D(x), before, rtol=0, atol=1e-6)
        D.set_alpha(0.25)
        x8 = F.avg_pool2d(x, 2)
        h_new = D._block(1, F.leaky_relu(D.from_rgb[1](x8), 0.2))
        h_old = F.leaky_relu(D.from_rgb[0](F.avg_pool2d(x8, 2)), 0.2)
        h = 0.75 * h_old + 0.25 * h_new
        conv, dense, out = D.blocks[0]
        expected = out(F.leaky_relu(dense(F.leaky_relu(conv(minibatch_stddev(h, 4)), 0.2).flatten(1)), 0.2))
        torch.testing.assert_close(D(x), expected.reshape(4), rtol=1e-5, atol=1e-6)
        # Pooling undoes G's nearest up-sampling: D sees the same at 8 px and at 16 px.
        torch.testing.assert_close(D(F.interpolate(x8, scale_factor=2, mode="nearest")), D(x8))


def test_real_images_fade_like_the_generator():
    x = torch.rand(2, 1, 16, 16)
    x8 = F.avg_pool2d(x, 2)
    low = F.interpolate(F.avg_pool2d(x8, 2), scale_factor=2, mode="nearest")
    torch.testing.assert_close(fade_images(x, 8, 1, 0.4), 0.6 * low + 0.4 * x8)
    assert torch.equal(fade_images(x, 8, 1, 1.0), x8)
    assert torch.equal(fade_images(x, 4, 0, 1.0), F.avg_pool2d(x, 4))


def test_schedule_alternates_stable_and_fade_phases():
    # stable 4x4 for 10 kimg, then per stage 5 kimg fading and 10 stable; 3 stages to 32 px.
    S, Fd = 10.0, 5.0
    assert schedule(0.0, S, Fd, 3) == (0, 1.0)
    assert schedule(9.99, S, Fd, 3) == (0, 1.0)
    assert schedule(10.0, S, Fd, 3) == (1, 0.0)
    assert schedule(12.0, S, Fd, 3) == (1, pytest.approx(0.4))
    assert schedule(15.0, S, Fd, 3) == (1, 1.0)
    assert schedule(24.99, S, Fd, 3) == (1, 1.0)
    assert schedule(26.0, S, Fd, 3) == (2, pytest.approx(0.2))
    assert schedule(41.0, S, Fd, 3) == (3, pytest.approx(0.2))
    assert schedule(1000.0, S, Fd, 3) == (3, 1.0)


def test_equalised_lr_pixel_norm_and_minibatch_stddev():
    torch.manual_seed(0)
    conv = EqualizedConv2d(32, 16, 3)
    assert conv.weight.std().item() == pytest.approx(1.0, abs=0.05)          # N(0, 1) stored weights
    assert conv.scale == pytest.approx(math.sqrt(2) / math.sqrt(32 * 9))      # He's constant at run time
    x = torch.randn(2, 5, 3, 3) * 7
    assert torch.allclose(pixel_norm(x).square().mean(dim=1), torch.ones(2, 3, 3), atol=1e-5)
    # Minibatch stddev, groups of 4 over 8 samples: sample n belongs to group n % 2.
    h = torch.randn(8, 3, 2, 2)
    out = minibatch_stddev(h, 4)
    assert out.shape == (8, 4, 2, 2) and torch.equal(out[:, :3], h)
    for m in range(2):
        group = h[m::2]                                                       # samples m, m + 2, m + 4, m + 6
        std = (group.var(dim=0, unbiased=False) + 1e-8).sqrt().mean()
        assert torch.allclose(out[m::2, 3], std.expand(4, 2, 2), atol=1e-6)
    assert minibatch_stddev(h[:3], 4)[:, 3].max() < 1e-3                      # 3 samples: gcd 1, groups of one


def _cfg(**over):
    base = {"data.spec": "digits", "data.resolution": 8, "batch_size": 8, "opts.z_dim": 8,
            "G.fmap_base": 32, "G.fmap_max": 8, "D.fmap_base": 32, "D.fmap_max": 8,
            "stable_kimg": 0.024, "fade_kimg": 0.024, "kimg": 0.064, "ema_kimg": 0.01,
            "tick_kimg": 0.016, "snapshot_kimg": 1.0, "snapshot_n": 4, "seed": 3}
    return resolve("progan", overrides={**base, **over})


def test_wgan_gp_with_drift_and_stage_growth_resets_adam():
    trainer, _ = build(_cfg(), torch.device("cpu"))
    recipe = trainer.recipe
    batch = {"image": torch.rand(8, 1, 8, 8) * 2 - 1}
    torch.manual_seed(5)
    out = recipe.d_loss(batch, StepContext())
    expected = out["D/wgan"] + 10.0 * out["D/gp"] + 0.001 * out["D/drift"]
    torch.testing.assert_close(out["loss"].detach(), expected)
    torch.manual_seed(5)
    recipe.opts.drift = 0.0
    torch.testing.assert_close(out["loss"] - recipe.d_loss(batch, StepContext())["loss"], 0.001 * out["D/drift"])
    recipe.opts.drift = 0.001
    for _ in range(3):                                    # 3 steps x 8 images: the fade starts at the next one
        trainer.train_step()
    assert recipe.stage == 0
    adam_before = trainer.optimizers["G"]
    trainer.train_step()
    assert recipe.stage == 1 and recipe.plain("G").alpha.item() == 0.0
    assert trainer.optimizers["G"] is not adam_before and trainer.optimizers["D"] is not adam_before
    steps = {int(s["step"]) for s in trainer.optimizers["G"].state_dict()["state"].values()}
    assert steps == {1}                                   # fresh Adam state at the new resolution


def test_resume_in_the_middle_of_a_fade_is_bit_exact(tmp_path):
    full = train(_cfg(), out=tmp_path / "a", progress=False)
    half = train(_cfg(kimg=0.040), out=tmp_path / "b", progress=False)     # 5 steps: 2 into the fade
    mid = load_checkpoint(half)
    assert mid["structure"] == {"stage": 1}
    assert 0.0 < float(mid["nets"]["nets.G.alpha"]) < 1.0                    # stopped mid-fade
    resumed = train(_cfg(), resume=half, progress=False, resume_overrides={"kimg"})
    a, b = load_checkpoint(full), load_checkpoint(resumed)
    assert a["structure"] == b["structure"] == {"stage": 1}
    assert float(a["nets"]["nets.G.alpha"]) == 1.0
    for key in a["nets"]:
        assert torch.equal(a["nets"][key], b["nets"][key]), key
    for key in a["ema"]["G"]:
        assert torch.equal(a["ema"]["G"][key], b["ema"]["G"][key]), key
    for name in ("G", "D"):
        for (ka, va), (kb, vb) in zip(a["opt"][name]["state"].items(), b["opt"][name]["state"].items()):
            assert all(torch.equal(va[k], vb[k]) for k in va), (name, ka)
