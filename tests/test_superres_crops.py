"""Super-resolution from a folder of large images: training batches are fresh random crops (redraw, default),
each degraded on the fly, a pure function of (data seed, batch number); xflip keeps that; redraw=false keeps
the fixed bank."""
from __future__ import annotations

import dataclasses

import numpy as np
import torch
from PIL import Image

from gankit.data import load_dataset
from gankit.data.base import BatchStream
from gankit.data.restoration import pil_bicubic
from gankit.engine import resolve
from gankit.images import to_uint8


def _cfg(folder, *extra):
    return resolve("srresnet", overrides=[f"data.spec={folder}", "data.resolution=16", "crops=3", "scale=2",
                                          "device=cpu", *extra]).data


def test_crops_are_redrawn_per_batch_deterministically(tmp_path):
    rng = np.random.default_rng(0)
    photos = [rng.integers(0, 256, (40, 44, 3), dtype=np.uint8) for _ in range(2)]
    for i, p in enumerate(photos):
        Image.fromarray(p).save(tmp_path / f"p{i}.png")
    ds = load_dataset(_cfg(tmp_path), kinds=("superres",))
    assert hasattr(ds, "draw") and len(ds) == 3                               # the bank stays for eval / len
    stream = BatchStream(ds, 4, seed=5)
    b0, b1 = next(stream), next(stream)
    assert not torch.equal(b0["b"], b1["b"])                                  # fresh crops every batch
    again = BatchStream(ds, 4, seed=5)
    torch.testing.assert_close(next(again)["b"], b0["b"])                     # same seed, same crops
    resumed = BatchStream(ds, 4, seed=5)
    resumed.load_state_dict({"batches_done": 1})
    torch.testing.assert_close(next(resumed)["a"], b1["a"])                   # resume is exact
    assert not torch.equal(next(BatchStream(ds, 4, seed=6))["b"], b0["b"])
    for lr, hr in zip(to_uint8(b1["a"]), to_uint8(b1["b"])):
        hr_np = hr.permute(1, 2, 0).numpy()
        assert np.array_equal(lr.permute(1, 2, 0).numpy(), pil_bicubic(hr_np, 2))   # degraded on the fly
        assert any(np.array_equal(p[y:y + 16, x:x + 16], hr_np)                     # a crop of a photo
                   for p in photos for y in range(25) for x in range(29))
    # xflip: each drawn item is the un-mirrored draw or its mirror, from the same generator.
    flipped = load_dataset(dataclasses.replace(_cfg(tmp_path), xflip=True), kinds=("superres",))
    plain = flipped.base.draw(8, torch.Generator().manual_seed(3))["b"]
    mirrored = flipped.draw(8, torch.Generator().manual_seed(3))["b"]
    same = [torch.equal(m, p) for m, p in zip(mirrored, plain)]
    assert all(s or torch.equal(m, p.flip(-1)) for s, m, p in zip(same, mirrored, plain)) and not all(same)
    assert not hasattr(load_dataset(_cfg(tmp_path, "redraw=false"), kinds=("superres",)), "draw")
