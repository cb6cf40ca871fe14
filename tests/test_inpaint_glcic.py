"""Inpainting, second pass: Iizuka et al. 2017's global + local discriminators (shapes, the local crop centred on
the hole, a training step), the squared-error reconstruction, and training on mask files beside the images."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from gankit.data import load_dataset
from gankit.engine import build, resolve
from gankit.errors import ConfigError, DataError
from gankit.metrics.restoration import evaluate_inpaint
from gankit.nets.inpaint import GlobalLocalDiscriminator, local_box
from gankit.recipes.base import StepContext

TINY = ["G.nf=4", "batch_size=4", "data.resolution=32", "device=cpu", "tick_kimg=0.008", "snapshot_kimg=1"]
GLCIC = [*TINY, "D.nf=4", "D.fc=8", "data.split=test"]


def _hole(n, h, w, top, left, mh, mw):
    m = torch.zeros(n, 1, h, w)
    m[:, :, top:top + mh, left:left + mw] = 1
    return m


def test_local_box_is_centred_on_the_hole_and_kept_inside():
    # A 6x10 hole at rows 20..25, cols 30..39 of a 64x64 image: centre (23, 35); a 32-px crop starts at (7, 19).
    assert local_box(_hole(1, 64, 64, 20, 30, 6, 10), 32).tolist() == [[7, 19]]
    # Near the top-left corner the crop is moved inside the image; with no hole it is the centre crop.
    assert local_box(_hole(1, 64, 64, 0, 1, 4, 4), 32).tolist() == [[0, 0]]
    assert local_box(_hole(1, 64, 64, 58, 60, 6, 4), 32).tolist() == [[32, 32]]
    assert local_box(torch.zeros(1, 1, 64, 48), 16).tolist() == [[24, 16]]
    # Two separate strokes: the centre of their joint bounding box (rows 4..27, cols 10..49 -> centre (16, 30)).
    m = _hole(1, 64, 64, 4, 10, 2, 2) + _hole(1, 64, 64, 26, 48, 2, 2)
    assert local_box(m, 16).tolist() == [[8, 22]]


def test_global_local_shapes_and_the_local_branch_sees_the_crop():
    torch.manual_seed(0)
    D = GlobalLocalDiscriminator(in_channels=4, resolution=64, nf=4, fc=8)
    convs = lambda seq: [m for m in seq if isinstance(m, torch.nn.Conv2d)]  # noqa: E731
    assert len(convs(D.global_convs)) == 4 and len(convs(D.local_convs)) == 3      # 64 -> 4x4, 32 -> 4x4
    assert convs(D.global_convs)[0].in_channels == 3                              # the paper's D: image only
    assert D.head.in_features == 16                                               # global fc ++ local fc
    x = torch.rand(3, 4, 64, 64) * 2 - 1
    x[:, 3:] = _hole(3, 64, 64, 40, 8, 12, 12)                                    # centre (46, 14) -> crop (30, 0)
    assert D(x).shape == (3,)
    seen = {}
    D.local_convs.register_forward_hook(lambda mod, inp, out: seen.update(local=inp[0]))
    D.eval()(x)
    torch.testing.assert_close(seen["local"], x[:, :3, 30:62, 0:32])
    # Pixels outside both the crop change only the global branch; inside the crop the local one too.
    y = x.clone()
    y[:, :3, 0:10, 40:64] = 0.7
    D(y)
    torch.testing.assert_close(seen["local"], x[:, :3, 30:62, 0:32])
    with_mask = GlobalLocalDiscriminator(in_channels=4, resolution=32, nf=4, fc=8, see_mask=True)
    assert convs(with_mask.local_convs)[0].in_channels == 4
    with pytest.raises(ConfigError, match="power of two"):
        GlobalLocalDiscriminator(in_channels=4, resolution=48)


def test_glcic_preset_training_step_reaches_both_branches_with_the_squared_error():
    trainer, _ = build(resolve("inpaint-glcic", overrides=[*GLCIC, "mask=centre"]))
    recipe = trainer.recipe
    G, D = recipe.nets["G"], recipe.nets["D"]
    assert type(D).__name__ == "GlobalLocalDiscriminator" and recipe.opts.recon == "mse"
    batch = next(trainer.stream)
    ctx = StepContext(step=0)
    d_out = recipe.d_loss(batch, ctx)
    d_out["loss"].backward()
    for part in (D.global_convs, D.local_convs, D.head):
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in part.parameters())
    D.zero_grad()
    out = recipe.g_loss(batch, ctx)
    m = recipe.step_masks(batch["image"], ctx)
    raw = G(batch["image"] * (1 - m), m)
    sq = (raw - batch["image"]).square()
    torch.testing.assert_close(out["mse_hole"], (sq * m).mean())                  # eq. 1, squared error
    fake = torch.where(m.bool(), raw, batch["image"])
    adv = torch.nn.functional.binary_cross_entropy_with_logits(D(torch.cat([fake, m], 1)), torch.ones(4))
    torch.testing.assert_close(out["loss"], (sq * m).mean() + 0.0004 * adv, rtol=1e-4, atol=1e-6)
    out["loss"].backward()
    assert all(p.grad is not None for p in G.parameters())
    with pytest.raises(ConfigError, match="l1, mse"):
        build(resolve("inpaint-glcic", overrides=[*GLCIC, "recon=l2"]))


def _masked_folder(root, n=5, side=40):
    root.mkdir()
    rng = np.random.default_rng(0)
    holes = []
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (side, side, 3), dtype=np.uint8)).save(root / f"im{i}.png")
        hole = np.zeros((side, side), np.uint8)
        hole[4 * i:4 * i + 10, 2:30 - 2 * i] = 255
        Image.fromarray(hole).save(root / f"im{i}_mask.png")
        holes.append(hole > 127)
    return holes


def test_training_uses_mask_files_beside_the_images(tmp_path):
    folder = tmp_path / "photos"
    holes = _masked_folder(folder, side=32)
    over = [*TINY, "D.nf=4", "D.n_layers=3", f"data.spec={folder}", "data.xflip=false"]
    trainer, _ = build(resolve("inpaint", overrides=over))
    recipe = trainer.recipe
    assert trainer.recipe.info.kind == "masked_image" and recipe.mask_kind == "files"   # auto -> files
    ds = load_dataset(resolve("inpaint", overrides=over).data, kinds=("masked_image", "image"))
    assert len(ds) == 5                                                           # mask files are not images
    batch = ds.get_batch(torch.arange(5))
    assert batch["mask"].dtype == torch.bool
    for i in range(5):
        assert np.array_equal(batch["mask"][i, 0].numpy(), holes[i])
    # The step's masks are the batch's own, at every step.
    for step in (0, 7):
        torch.testing.assert_close(recipe.step_masks(batch["image"], StepContext(step=step), batch["mask"]),
                                   batch["mask"].float())
    out = recipe.g_loss(batch, StepContext(step=0))
    m = batch["mask"].float()
    raw = recipe.nets["G"](batch["image"] * (1 - m), m)
    torch.testing.assert_close(out["l1_hole"], ((raw - batch["image"]).abs() * m).mean())
    # xflip mirrors the mask with its image.
    flipped = load_dataset(resolve("inpaint", overrides=[*over[:-1], "data.xflip=true"]).data,
                           kinds=("masked_image", "image"))
    fb = flipped.get_batch(torch.tensor([5]))
    assert np.array_equal(fb["mask"][0, 0].numpy(), holes[0][:, ::-1])
    # Evaluation on the same files' masks; generated masks on request.
    with pytest.warns(UserWarning, match="no test split"):
        card = evaluate_inpaint(recipe.samplers()["default"], resolve("inpaint", overrides=over).data, "files", 0.25,
                                n=5, baselines=False)
    assert card["protocol"]["masks"]["fraction"] == pytest.approx(float(np.mean(holes)))
    trainer2, _ = build(resolve("inpaint", overrides=[*over, "mask=centre"]))
    assert trainer2.recipe.mask_kind == "centre"


def test_mask_file_errors(tmp_path):
    with pytest.raises(ConfigError, match="mask=files needs mask files"):
        build(resolve("inpaint", overrides=[*TINY, "D.nf=4", "D.n_layers=3", "data.split=test", "mask=files"]))
    folder = tmp_path / "photos"
    _masked_folder(folder, n=2, side=32)
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(folder / "lonely.png")
    with pytest.raises(DataError, match="lonely.png"):
        build(resolve("inpaint", overrides=[*TINY, "D.nf=4", "D.n_layers=3", f"data.spec={folder}"]))


def test_coarse_to_fine_generator_and_its_two_reconstruction_terms():
    trainer, _ = build(resolve("inpaint", overrides=[*TINY, "D.nf=4", "D.n_layers=3", "data.split=test",
                                                     "G.image=coarse_fine", "mask=centre", "adv_weight=0"]))
    recipe = trainer.recipe
    G = recipe.nets["G"]
    batch = next(trainer.stream)
    ctx = StepContext(step=0)
    m = recipe.step_masks(batch["image"], ctx)
    holed = batch["image"] * (1 - m)
    coarse, fine = G.stages(holed, m)
    assert coarse.shape == fine.shape == batch["image"].shape
    torch.testing.assert_close(G(holed, m), fine)
    torch.testing.assert_close(fine, G.fine(coarse * m + holed * (1 - m), m))      # refines the pasted coarse
    out = recipe.g_loss(batch, ctx)
    terms = lambda y: ((y - batch["image"]).abs() * m).mean() + ((y - batch["image"]).abs() * (1 - m)).mean()  # noqa: E731
    torch.testing.assert_close(out["loss"], terms(fine) + terms(coarse))
    out["loss"].backward()
    assert all(p.grad is not None for p in G.coarse.parameters())
    done = recipe.samplers()["default"](batch["image"], m.bool())
    assert torch.equal(done[~m.bool().expand_as(done)], batch["image"][~m.bool().expand_as(done)])
