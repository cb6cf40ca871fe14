"""gankit.augment (issue 9): DiffAugment and ADA, for every image family.

Invariants of the issue: p = 0 is the identity; every op is differentiable with respect to its input (checked
against finite differences); the adaptation moves p up when D over-fits (r_t above the target) and down
otherwise, at the paper's speed (0 -> 1 in 500 kimg); p is in the checkpoint and logged; the gan recipe uses it.
"""
from __future__ import annotations

import math

import pytest
import torch

from gankit.augment import (AdaptiveAugment, AugmentOptions, DiffAugment, ada_transform, diff_color, diff_cutout,
                            diff_translation, make_augment)
from gankit.engine import build, resolve
from gankit.errors import ConfigError
from gankit.recipes.base import StepContext


def seeded(seed: int, dtype=torch.float32):
    """Draw functions that give the same numbers at every call (so an op is a fixed function of its input)."""
    def make(fn):
        def draw(n, *shape):
            g = torch.Generator().manual_seed(seed + n * 7 + sum(shape))
            return fn(n, *shape, generator=g).to(dtype)
        return draw
    return make(torch.rand), make(torch.randn)


@pytest.mark.parametrize("channels", [1, 3])
def test_ada_with_p_zero_is_the_identity(channels):
    x = torch.rand(6, channels, 16, 16) * 2 - 1
    aug = AdaptiveAugment(p=0.0)
    assert torch.equal(aug(x), x)                                           # exactly
    rand, randn = seeded(0)
    assert torch.equal(ada_transform(x, 0.0, rand, randn), x)


@pytest.mark.parametrize("channels", [1, 3])
def test_ada_with_p_one_changes_every_image(channels):
    x = torch.rand(32, channels, 16, 16) * 2 - 1
    y = AdaptiveAugment(p=1.0)(x)
    assert ((y - x).flatten(1).abs().max(1).values > 1e-3).all()


def test_ada_flip_and_quarter_turn_only_are_exact_permutations():
    """With every other strength zero, p = 1: each image is x, its mirror, or a quarter turn of one: pixel
    values are permuted exactly (the geometric matrices are applied in the right coordinates)."""
    x = torch.rand(64, 1, 8, 8)
    rand, randn = seeded(3)
    y = ada_transform(x, 1.0, rand, randn, xint_max=0, scale_std=0, rotate_max=0, aniso_std=0, xfrac_std=0,
                      brightness_std=0, contrast_std=0, hue_max=0, saturation_std=0)
    # lumaflip still acts at p = 1 for some images: undo it by comparing |value - mean| sets via sorting.
    for xi, yi in zip(x, y):
        candidates = []
        for flip in (False, True):
            base = xi.flip(-1) if flip else xi
            candidates += [torch.rot90(base, k, dims=(-2, -1)) for k in range(4)]
        assert any(torch.allclose(yi, c, atol=1e-5) or torch.allclose(yi, -c, atol=1e-5) for c in candidates)


def _gradcheck(fn, shape):
    x = (torch.rand(*shape, dtype=torch.float64) * 2 - 1).requires_grad_(True)
    assert torch.autograd.gradcheck(fn, (x,), eps=1e-6, atol=1e-4)


@pytest.mark.parametrize("channels", [1, 3])
def test_every_ada_op_is_differentiable_in_its_input(channels):
    rand, randn = seeded(1, torch.float64)
    _gradcheck(lambda x: ada_transform(x, 0.8, rand, randn), (2, channels, 5, 5))


@pytest.mark.parametrize("op", [diff_color, diff_translation, diff_cutout])
def test_every_diffaugment_op_is_differentiable_in_its_input(op):
    rand, _ = seeded(2, torch.float64)
    _gradcheck(lambda x: op(x, rand), (3, 3, 8, 8))


def test_diffaugment_ops_do_what_they_say():
    x = torch.rand(50, 3, 16, 16) + 0.5                                     # no zeros in the image
    rand, _ = seeded(4)
    t = diff_translation(x, rand)
    for xi, ti in zip(x, t):                                                # a shift of at most 2 px, zero-filled
        zero_rows = (ti.abs().sum(dim=(0, 2)) == 0).sum().item()
        zero_cols = (ti.abs().sum(dim=(0, 1)) == 0).sum().item()
        assert zero_rows <= 2 and zero_cols <= 2
        kept = ti[ti != 0]
        assert kept.numel() > 0 and torch.isin(kept, xi).all()
    c = diff_cutout(x, rand)
    holes = (c == 0).all(dim=1).flatten(1).sum(1)                           # pixels zeroed per image
    assert holes.max().item() == 64 and holes.min().item() >= 16            # an 8x8 square, maybe clipped
    y = diff_color(torch.zeros(4, 3, 2, 2), rand)
    assert y.abs().max() <= 0.5 + 1e-6                                       # brightness in [-0.5, 0.5]
    assert torch.allclose(y, y[:, :1, :1, :1].expand_as(y))                 # a grey image stays uniform


def test_adaptation_direction_and_speed():
    """p += sign(r_t - target) * N / (500 kimg): up while D is sure of the reals, down otherwise, 0 -> 1 in
    500 kimg of images (Karras et al. 2020, sec. 3)."""
    batch, interval = 64, 4
    aug = AdaptiveAugment(target=0.6, speed_kimg=500, interval=interval)
    over_fit = torch.ones(batch)                                           # sign(D(real)) = +1: r_t = 1 > 0.6
    step = 0
    nimg_to_one = None
    while nimg_to_one is None and step < 10000:
        aug.observe(over_fit, StepContext(step=step))
        step += 1
        if aug.p >= 1:
            nimg_to_one = (step - 1) // interval * interval * batch        # images counted at the last update
    assert nimg_to_one == pytest.approx(500_000, rel=0.002)
    # After k adjustments p = k * 256 / 500000 exactly (float32): check one point on the way.
    aug2 = AdaptiveAugment(target=0.6, speed_kimg=500, interval=interval)
    for s in range(4 * 10 + 1):
        aug2.observe(over_fit, StepContext(step=s))
    assert aug2.p.item() == pytest.approx(10 * batch * interval / 500_000, rel=1e-5)
    assert aug2.rt.item() == 1.0
    # Below the target (r_t = 0.5 < 0.6), p falls, and not below 0. The adjustment at step s uses the
    # observations of steps s - 4 .. s - 1.
    down = AdaptiveAugment(target=0.6, speed_kimg=500, interval=interval, p=0.01)
    unsure = torch.tensor([1.0, 1.0, 1.0, -1.0] * 16)                        # r_t = 0.5
    for s in range(4 * 3 + 1):
        down.observe(unsure, StepContext(step=s))
    assert down.p.item() == pytest.approx(0.01 - 3 * batch * interval / 500_000, rel=1e-4)
    assert down.rt.item() == 0.5
    for s in range(4 * 3 + 1, 4 * 40 + 1):
        down.observe(-torch.ones(batch), StepContext(step=s))
    assert down.p.item() == 0.0


def test_adaptation_happens_once_per_step_and_speed_zero_keeps_p():
    aug = AdaptiveAugment(target=0.0, speed_kimg=1.0, interval=1, p=0.5)
    ctx = StepContext(step=1)
    aug.observe(torch.ones(10), StepContext(step=0))
    aug.observe(torch.ones(10), ctx)                                        # adjusts (10 images: +0.01)
    aug.observe(torch.ones(10), ctx)                                        # same step (d_steps > 1): no second
    assert aug.p.item() == pytest.approx(0.51)
    fixed = AdaptiveAugment(speed_kimg=0.0, interval=1, p=0.3)
    for s in range(5):
        fixed.observe(torch.ones(10), StepContext(step=s))
    assert fixed.p.item() == pytest.approx(0.3)


def test_options_fail_loudly():
    with pytest.raises(ConfigError, match="none, diffaug, ada"):
        AugmentOptions(augment="mixup")
    with pytest.raises(ConfigError, match="Valid ops: color, translation, cutout"):
        AugmentOptions(augment_policy="color,blur")
    with pytest.raises(ConfigError, match=r"\[0, 1\]"):
        AugmentOptions(ada_p=2.0)
    assert isinstance(make_augment(AugmentOptions(augment="diffaug")), DiffAugment)


def _gan(overrides):
    cfg = resolve("dcgan", overrides={"data.spec": "digits", "data.resolution": 32, "batch_size": 8, "G.ngf": 8,
                                      "D.ndf": 8, **overrides})
    return build(cfg, torch.device("cpu"))[0]


@pytest.mark.parametrize("mode", ["diffaug", "ada"])
def test_gan_recipe_trains_with_augmentation_and_keeps_p_in_its_state(mode):
    trainer = _gan({"augment": mode, "ada_p": 0.4, "ada_kimg": 0.1, "ada_interval": 1})
    for _ in range(3):
        trainer.train_step()
    stats = trainer.take_tick_stats()
    assert all(math.isfinite(v) for v in stats.values())
    if mode == "ada":
        assert "aug/p" in stats and "augment.p" in trainer.recipe.state_dict()
        assert trainer.recipe.augment.p.item() != 0.4      # adapted (ada_kimg tiny)
    # D sees augmented images, real and generated: the augmentation sits in front of D.
    recipe = trainer.recipe
    seen = []
    hook = recipe.nets["D"].register_forward_pre_hook(lambda m, args: seen.append(args[0].detach().clone()))
    batch = next(trainer.stream)
    recipe.d_loss(batch, StepContext(step=5))
    hook.remove()
    assert len(seen) == 2 and not torch.allclose(seen[0], batch["image"])


def test_no_augmentation_leaves_the_gan_recipe_as_it_was():
    trainer = _gan({})
    assert trainer.recipe.augment.state_dict() == {} and "aug/p" not in trainer.recipe.d_loss(
        next(trainer.stream), StepContext())


def test_augment_refused_on_vector_data():
    with pytest.raises(ConfigError, match="vector data"):
        build(resolve("gan", overrides={"data.spec": "grid25", "augment": "diffaug"}), torch.device("cpu"))
