"""pix2pix and CycleGAN through the real trainer: snapshots, checkpoints, and an exact resume (pool included)."""
import shutil

import numpy as np
import torch
from PIL import Image

from gankit.checkpoint import load_checkpoint
from gankit.loading import load_recipe
from gankit.engine import resolve
from gankit.engine import train

def last_samples(run_dir):
    return max(run_dir.glob("samples-*.png"), key=lambda p: p.stat().st_mtime_ns)


TINY = {"G.ngf": 4, "D.ndf": 4, "batch_size": 2, "tick_kimg": 0.002, "snapshot_n": 3, "device": "cpu"}


def test_cyclegan_resume_equals_uninterrupted_run(tmp_path):
    # 6 steps of 2 images, pool of 3: the pool is full after the second step and draws from its generator after;
    # the learning rate decays over the second half. Resuming from the step-3 checkpoint must give the same bits.
    cfg = resolve("cyclegan", None, {**TINY, "G.n_blocks": 1, "pool_size": 3, "kimg": 0.012, "snapshot_kimg": 0.006})
    full = train(cfg, out=tmp_path / "runs", progress=False)
    mid = next(p for p in full.glob("ckpt-*.pt") if load_checkpoint(p)["nimg"] == 6)  # names are the trainer's
    other = tmp_path / "resumed"
    other.mkdir()
    shutil.copy(mid, other / mid.name)
    resumed = train(cfg, resume=other / mid.name, progress=False)
    a, b = load_checkpoint(full / "latest.pt"), load_checkpoint(resumed / "latest.pt")
    assert a["nimg"] == b["nimg"] == 12
    assert int(a["nets"]["pool_b._extra_state"]["count"]) == 3
    for key, value in a["nets"].items():
        other_value = b["nets"][key]
        if isinstance(value, dict):  # an image pool's extra state
            assert all(torch.equal(value[k], other_value[k]) for k in value), key
        else:
            assert torch.equal(value, other_value), key
    # Snapshot grid: 6 rows (A, A->B, A->B->A, B, B->A, B->A->B) of 3 images of 32 px, 2 px padding.
    grid = np.asarray(Image.open(last_samples(full)))
    assert grid.shape[:2] == (6 * 34 + 2, 3 * 34 + 2)


def test_pix2pix_trains_and_translates_from_its_checkpoint(tmp_path):
    cfg = resolve("pix2pix", None, {**TINY, "kimg": 0.006, "snapshot_kimg": 0.006})
    run = train(cfg, out=tmp_path / "runs", progress=False)
    grid = np.asarray(Image.open(last_samples(run)))
    assert grid.shape[:2] == (3 * 34 + 2, 3 * 34 + 2)  # input / output / target rows of 3
    recipe, cfg2, info, nets = load_recipe(run / "latest.pt")
    assert cfg2.recipe == "pix2pix" and info.kind == "paired"
    out = recipe.sampler(nets)(torch.zeros(2, info.channels, 32, 32))
    assert out.shape == (2, info.channels_b or info.channels, 32, 32) and out.abs().max() <= 1
