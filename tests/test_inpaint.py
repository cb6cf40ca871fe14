"""Inpainting: every mask kind covers the requested area, known pixels stay bit-exact (sampler and CLI), the hole
metrics and baselines by hand, the objective's terms, step masks, and the preset through train / eval / inpaint."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from gankit.cli import cli
from gankit.data.masks import MASK_KINDS, load_mask, make_mask, mask_batch
from gankit.engine import build, resolve
from gankit.errors import ConfigError, DataError
from gankit.metrics.restoration import biharmonic_fill, hole_errors, mean_fill
from gankit.nets import discriminators, generators
from gankit.recipes.base import StepContext

TINY = ["G.nf=4", "D.nf=4", "D.n_layers=3", "batch_size=4", "tick_kimg=0.008", "snapshot_kimg=1", "data.split=test",
        "data.resolution=32", "device=cpu"]


@pytest.mark.parametrize("kind", MASK_KINDS)
@pytest.mark.parametrize("fraction", [0.1, 0.3, 0.55])
def test_each_mask_kind_covers_the_requested_fraction(kind, fraction):
    for h, w in ((64, 64), (48, 80)):
        masks = mask_batch(kind, 4, h, w, fraction, seed=7)
        assert masks.shape == (4, 1, h, w) and masks.dtype == torch.bool
        covered = masks.float().mean(dim=(1, 2, 3))
        assert torch.all((covered - fraction).abs() <= 0.015), (kind, h, w, covered)
    if kind != "centre":                                             # random kinds: seeded, and vary with the seed
        assert torch.equal(mask_batch(kind, 2, 32, 32, fraction, seed=1), mask_batch(kind, 2, 32, 32, fraction, seed=1))
        assert not torch.equal(mask_batch(kind, 2, 32, 32, fraction, seed=1), mask_batch(kind, 2, 32, 32, fraction, seed=2))


def test_mask_shapes_and_errors(tmp_path):
    centre = make_mask("centre", 10, 10, 0.36, np.random.default_rng(0))
    assert centre[2:8, 2:8].all() and centre.sum() == 36                  # the centred 6x6 square
    free = make_mask("free", 64, 64, 0.3, np.random.default_rng(0))
    assert not free[:, :].all(axis=1).any() or free.sum() < 64 * 64       # strokes, not a full band
    with pytest.raises(DataError, match="centre, rect, free"):
        make_mask("circle", 8, 8, 0.2, np.random.default_rng(0))
    with pytest.raises(DataError, match=r"\(0, 1\)"):
        make_mask("rect", 8, 8, 1.5, np.random.default_rng(0))
    arr = np.zeros((6, 5), np.uint8)
    arr[1:3, 2:4] = 255
    Image.fromarray(arr).save(tmp_path / "m.png")
    m = load_mask(tmp_path / "m.png", (6, 5))
    assert m.shape == (1, 1, 6, 5) and m.sum() == 4 and m[0, 0, 1, 2]
    with pytest.raises(DataError, match="but its image is"):
        load_mask(tmp_path / "m.png", (5, 5))


def test_hole_metrics_and_baselines_by_hand():
    real = torch.full((1, 1, 4, 4), 100, dtype=torch.uint8)
    real[0, 0, 0, 0] = 40
    mask = torch.zeros(1, 1, 4, 4, dtype=torch.bool)
    mask[0, 0, 1:3, 1:3] = True                                        # 4 hole pixels
    pred = real.clone()
    pred[0, 0, 1, 1], pred[0, 0, 2, 2] = 110, 80                        # errors 10 and 20 in the hole
    pred[0, 0, 3, 3] = 0                                                # outside the hole: ignored
    l1, psnr = hole_errors(pred, real, mask)
    assert abs(float(l1) - (10 + 20) / 4 / 255) < 1e-12
    assert abs(float(psnr) - 10 * np.log10(255 ** 2 / ((100 + 400) / 4))) < 1e-9
    filled = mean_fill(real, mask)                                       # known: 11 x 100 and one 40
    assert torch.all(filled[mask] == round((11 * 100 + 40) / 12)) and torch.equal(filled[~mask], real[~mask])
    # Biharmonic fill of a smooth ramp is nearly exact; the mean colour is not.
    ramp = torch.linspace(0, 255, 16).round().to(torch.uint8).view(1, 1, 1, 16).expand(1, 3, 16, 16).contiguous()
    hole = torch.zeros(1, 1, 16, 16, dtype=torch.bool)
    hole[..., 5:11, 5:11] = True
    assert hole_errors(biharmonic_fill(ramp, hole), ramp, hole)[0] < 0.01 < hole_errors(mean_fill(ramp, hole), ramp, hole)[0]
    assert torch.equal(biharmonic_fill(ramp, hole)[~hole.expand_as(ramp)], ramp[~hole.expand_as(ramp)])


@pytest.mark.parametrize("conv", ["plain", "gated"])
def test_inpainter_keeps_known_pixels_bit_exact(conv):
    from gankit.recipes.inpaint import Inpainter, InpaintOptions, InpaintRecipe
    from gankit.data.base import DataInfo
    torch.manual_seed(0)
    G = generators.get("completion")(3, 3, nf=4, conv=conv)
    D = discriminators.get("sn_patchgan")(4, nf=4, n_layers=3)
    recipe = InpaintRecipe({"G": G, "D": D}, InpaintOptions(), DataInfo("x", "image", 1, channels=3, resolution=32))
    images = torch.rand(3, 3, 30, 37) * 2 - 1                            # not multiples of 4: padded, cropped back
    masks = mask_batch("free", 3, 30, 37, 0.3, seed=0)
    out = Inpainter(recipe, recipe.nets)(images, masks)
    keep = ~masks.expand_as(images)
    assert out.shape == images.shape and torch.equal(out[keep], images[keep])
    assert not torch.equal(out[~keep], images[~keep])


def test_objective_terms_and_step_masks():
    trainer, _ = build(resolve("inpaint", overrides=[*TINY, "mask=rect", "mask_fraction=0.4", "adv_weight=0"]))
    recipe = trainer.recipe
    batch = next(trainer.stream)
    ctx = StepContext(step=3)
    m = recipe.step_masks(batch["image"], ctx)
    assert torch.equal(m, recipe.step_masks(batch["image"], ctx))                  # D and G of a step share them
    assert not torch.equal(m, recipe.step_masks(batch["image"], StepContext(step=4)))
    assert abs(float(m.mean()) - 0.4) < 0.02
    out = recipe.g_loss(batch, ctx)
    raw = recipe.nets["G"](batch["image"] * (1 - m), m)
    err = (raw - batch["image"]).abs()
    torch.testing.assert_close(out["l1_hole"], (err * m).mean())
    torch.testing.assert_close(out["loss"], (err * m).mean() + (err * (1 - m)).mean())   # adv_weight 0, 1 : 1
    with pytest.raises(ConfigError, match="centre, rect, free"):
        build(resolve("inpaint", overrides=[*TINY, "mask=blob"]))
    with pytest.raises(ConfigError, match="inpainter"):
        build(resolve("inpaint", overrides=[*TINY, "G.image=srresnet"]))


def test_inpaint_preset_trains_evaluates_against_baselines_and_the_cli_composites(tmp_path):
    runner = CliRunner()
    args = ["train", "--preset", "inpaint", "--out", str(tmp_path / "runs")]
    for s in [*TINY, "kimg=0.016"]:
        args += ["--set", s]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = runner.invoke(cli, args, catch_exceptions=False)
    assert res.exit_code == 0, res.output
    run = next((tmp_path / "runs").glob("*-inpaint-*"))
    res = runner.invoke(cli, ["eval", "--ckpt", str(run), "--n", "4", "--device", "cpu"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    for key in ("hole_l1", "hole_psnr", "meanfill_hole_l1", "biharmonic_hole_psnr"):
        assert key in res.output

    src = tmp_path / "in"
    src.mkdir()
    rng = np.random.default_rng(1)
    photo = rng.integers(0, 256, (22, 29, 3), dtype=np.uint8)
    Image.fromarray(photo).save(src / "p.png")
    hole = np.zeros((22, 29), np.uint8)
    hole[5:12, 8:20] = 255
    Image.fromarray(hole).save(src / "p_mask.png")                       # mask file next to the image
    res = runner.invoke(cli, ["inpaint", "--ckpt", str(run), "--input", str(src), "--out", str(tmp_path / "o1")])
    assert res.exit_code == 0, res.output
    out = np.asarray(Image.open(tmp_path / "o1" / "p.png"))
    assert sorted(p.name for p in (tmp_path / "o1").iterdir()) == ["p.png"]
    assert np.array_equal(out[hole == 0], photo[hole == 0])             # known pixels: the file's own bytes
    res = runner.invoke(cli, ["inpaint", "--ckpt", str(run), "--input", str(src / "p.png"), "--mask-kind", "centre",
                              "--mask-fraction", "0.2", "--out", str(tmp_path / "o2")])
    assert res.exit_code == 0, res.output
    centre = mask_batch("centre", 1, 22, 29, 0.2)[0, 0].numpy()
    assert np.array_equal(np.asarray(Image.open(tmp_path / "o2" / "p.png"))[~centre], photo[~centre])
    res = runner.invoke(cli, ["inpaint", "--ckpt", str(run), "--input", str(src), "--out", str(tmp_path / "o1")])
    assert isinstance(res.exception, ConfigError) and "never overwrites" in str(res.exception)
    (src / "p_mask.png").unlink()
    res = runner.invoke(cli, ["inpaint", "--ckpt", str(run), "--input", str(src), "--out", str(tmp_path / "o3")])
    assert isinstance(res.exception, DataError) and "--mask-kind" in str(res.exception)
