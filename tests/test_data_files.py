"""Data from files: image folders, .npz/.csv, pix2pix and CycleGAN layouts, lazy storage and resumable streams."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import gankit.data.storage as storage
from gankit.config import DataConfig
from gankit.data import BatchStream, load_dataset
from gankit.data.imagefiles import DataWarning
from gankit.errors import DataError
from gankit.images import from_uint8


def save(path: Path, array: np.ndarray) -> Path:
    """Write uint8 [H, W] or [H, W, 3] as an image file (format from the extension)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array.astype(np.uint8)).save(path)
    return path


def flat(value: int, h: int = 8, w: int = 8, rgb: bool = False) -> np.ndarray:
    return np.full((h, w, 3) if rgb else (h, w), value, dtype=np.uint8)


def all_items(ds) -> dict[str, torch.Tensor]:
    return ds.get_batch(torch.arange(len(ds))) if hasattr(ds, "get_batch") else \
        {k: torch.stack([ds[i][k] for i in range(len(ds))]) for k in ds[0]}


def corrupt_files(folder: Path) -> None:
    """One file that is not an image at all and one PNG whose header reads but whose data is cut short."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "notes.png").write_bytes(b"this is not an image")
    save(folder / "whole.png", np.random.default_rng(0).integers(0, 255, (32, 32), dtype=np.uint8))
    data = (folder / "whole.png").read_bytes()
    (folder / "whole.png").unlink()
    (folder / "cut.png").write_bytes(data[: len(data) // 2])


# ---- image folders -----------------------------------------------------------------------------------------

def test_folder_with_class_subfolders_and_corrupt_files(tmp_path):
    for i in range(3):
        save(tmp_path / "cat" / f"{i}.png", flat(10 * i, rgb=True))
        save(tmp_path / "dog" / "deeper" / f"{i}.jpg", flat(200, rgb=True))
    corrupt_files(tmp_path / "dog")
    with pytest.warns(DataWarning, match="Skipped 2 .*cut.png"):
        ds = load_dataset(DataConfig(spec=str(tmp_path)))
    info, items = ds.info, all_items(ds)
    assert info.kind == "image" and info.size == 6 and info.extras["skipped_files"] == 2
    assert info.class_names == ["cat", "dog"] and info.num_classes == 2 and info.channels == 3
    assert items["image"].shape == (6, 3, 8, 8)
    assert items["label"].tolist() == [0, 0, 0, 1, 1, 1]                       # sorted paths: cat/0..2, dog/...
    # uint8 -> [-1, 1] through the one conversion: the PNGs are exact.
    assert torch.equal(items["image"][:3, 0, 0, 0], from_uint8(torch.tensor([0, 10, 20], dtype=torch.uint8)))
    unlabelled = load_dataset(DataConfig(spec=str(tmp_path), labels=False))
    assert "label" not in all_items(unlabelled) and unlabelled.info.num_classes == 0


def test_folder_resize_crops_the_centre_and_converts_channels(tmp_path):
    wide = np.zeros((20, 60, 3), dtype=np.uint8)
    wide[:, :15] = (255, 0, 0)
    wide[:, 15:45] = (0, 255, 0)                                             # the centre 20x20 is green
    wide[:, 45:] = (0, 0, 255)
    save(tmp_path / "wide.png", wide)
    save(tmp_path / "gray.png", flat(128, 30, 30))
    with pytest.warns(DataWarning, match=r"different sizes.*resized to 20x20"):
        assert load_dataset(DataConfig(spec=str(tmp_path))).info.resolution == 20   # native: smallest side
    ds = load_dataset(DataConfig(spec=str(tmp_path), resolution=10))
    img = all_items(ds)["image"]                                              # gray.png, wide.png
    assert ds.info.channels == 3 and img.shape == (2, 3, 10, 10)              # one colour file -> RGB
    assert torch.equal(img[1], from_uint8(torch.tensor([0, 255, 0], dtype=torch.uint8)).view(3, 1, 1).expand(3, 10, 10))
    assert torch.equal(img[0], torch.full((3, 10, 10), from_uint8(torch.tensor(128, dtype=torch.uint8)).item()))
    gray = load_dataset(DataConfig(spec=str(tmp_path), resolution=10, channels=1))
    g = all_items(gray)["image"]
    assert g.shape == (2, 1, 10, 10)
    assert torch.equal(g[1], torch.full((1, 10, 10), from_uint8(torch.tensor(150, dtype=torch.uint8)).item()))
    # 150 = round(0.587 * 255): ITU-R 601-2 luma of pure green


def test_empty_and_unreadable_folders_are_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="No readable image.*png, jpg"):
        load_dataset(DataConfig(spec=str(tmp_path / "empty")))
    corrupt_files(tmp_path / "bad")
    with pytest.raises(DataError, match=r"No readable image.*2 file"), pytest.warns(DataWarning):
        load_dataset(DataConfig(spec=str(tmp_path / "bad")))


def test_loose_files_next_to_class_folders_and_split_subfolders(tmp_path):
    save(tmp_path / "a" / "0.png", flat(1))
    save(tmp_path / "b" / "0.png", flat(2))
    save(tmp_path / "loose.png", flat(3))
    with pytest.raises(DataError, match="loose.png.*labels=false"):
        load_dataset(DataConfig(spec=str(tmp_path)))
    assert load_dataset(DataConfig(spec=str(tmp_path), labels=False)).info.size == 3
    split_root = tmp_path / "split"
    save(split_root / "train" / "0.png", flat(1))
    save(split_root / "train" / "1.png", flat(1))
    save(split_root / "test" / "0.png", flat(2))
    assert load_dataset(DataConfig(spec=str(split_root))).info.size == 2
    test = load_dataset(DataConfig(spec=str(split_root), split="test"))
    assert test.info.size == 1 and test.info.num_classes == 0


# ---- arrays ------------------------------------------------------------------------------------------------

def test_npz_images_in_every_layout(tmp_path):
    rng = np.random.default_rng(0)
    u8 = rng.integers(0, 256, (5, 6, 6, 3), dtype=np.uint8)                  # NHWC uint8
    np.savez(tmp_path / "nhwc.npz", images=u8, labels=np.array([0, 1, 2, 1, 0]))
    np.savez(tmp_path / "nchw.npz", x=u8.transpose(0, 3, 1, 2).astype(np.float32) / 255)   # NCHW in [0, 1]
    np.savez(tmp_path / "gray.npz", u8[..., 0].astype(np.float32) / 127.5 - 1)              # [N, H, W] in [-1, 1]
    expected = from_uint8(torch.from_numpy(u8).permute(0, 3, 1, 2))
    a = load_dataset(DataConfig(spec=str(tmp_path / "nhwc.npz")))
    assert a.info.kind == "image" and a.info.num_classes == 3 and a.info.resolution == 6
    assert torch.equal(all_items(a)["image"], expected) and all_items(a)["label"].tolist() == [0, 1, 2, 1, 0]
    b = all_items(load_dataset(DataConfig(spec=str(tmp_path / "nchw.npz"))))["image"]
    assert (b - expected).abs().max() <= 1 / 127.5                           # within one uint8 step
    c = load_dataset(DataConfig(spec=str(tmp_path / "gray.npz"), resolution=3))
    assert c.info.channels == 1 and all_items(c)["image"].shape == (5, 1, 3, 3)
    np.savez(tmp_path / "hot.npz", images=np.full((2, 4, 4, 3), 2.0, dtype=np.float32))
    with pytest.raises(DataError, match=r"\[0, 1\] or \[-1, 1\]"):
        load_dataset(DataConfig(spec=str(tmp_path / "hot.npz")))


def test_npz_and_csv_vectors(tmp_path):
    x = np.arange(12, dtype=np.float64).reshape(6, 2)
    np.savez(tmp_path / "v.npz", x=x, y=np.array([0, 0, 1, 1, 2, 2]))
    ds = load_dataset(DataConfig(spec=str(tmp_path / "v.npz")), ("image", "vector"))
    assert ds.info.kind == "vector" and ds.info.dim == 2 and ds.info.num_classes == 3
    assert torch.equal(all_items(ds)["x"], torch.from_numpy(x).float())
    with pytest.raises(DataError, match="vector data.*image"):
        load_dataset(DataConfig(spec=str(tmp_path / "v.npz")), ("image",))
    (tmp_path / "t.csv").write_text("height,weight,class\n1.5,60,b\n1.7,70,a\n1.9,80,b\n")
    t = load_dataset(DataConfig(spec=str(tmp_path / "t.csv")))
    assert t.info.class_names == ["a", "b"] and t.info.extras["columns"] == ["height", "weight"]
    items = all_items(t)
    assert torch.allclose(items["x"], torch.tensor([[1.5, 60], [1.7, 70], [1.9, 80]]))
    assert items["label"].tolist() == [1, 0, 1]
    (tmp_path / "plain.csv").write_text("0.5,1\n2,3\n")
    assert all_items(load_dataset(DataConfig(spec=str(tmp_path / "plain.csv"))))["x"].shape == (2, 2)
    (tmp_path / "bad.csv").write_text("a,b\n1,oops\n")
    with pytest.raises(DataError, match="line 2.*'oops'"):
        load_dataset(DataConfig(spec=str(tmp_path / "bad.csv")))


# ---- paired ------------------------------------------------------------------------------------------------

def test_pix2pix_side_by_side_folder_and_direction(tmp_path):
    for i in range(3):
        pair = np.concatenate([flat(10 + i, 8, 8), flat(200 + i, 8, 8)], axis=1)   # A | B, 8x16
        save(tmp_path / "facades" / "train" / f"{i}.png", pair)
    save(tmp_path / "facades" / "val" / "0.png", np.concatenate([flat(1), flat(2)], axis=1))
    spec = str(tmp_path / "facades")
    ds = load_dataset(DataConfig(spec=spec), ("paired",))
    items = all_items(ds)
    assert ds.info.kind == "paired" and ds.info.size == 3 and ds.info.resolution == 8
    assert torch.equal(items["a"][:, 0, 0, 0], from_uint8(torch.tensor([10, 11, 12], dtype=torch.uint8)))
    assert torch.equal(items["b"][:, 0, 0, 0], from_uint8(torch.tensor([200, 201, 202], dtype=torch.uint8)))
    rev = all_items(load_dataset(DataConfig(spec=spec, direction="BtoA"), ("paired",)))
    assert torch.equal(rev["a"], items["b"]) and torch.equal(rev["b"], items["a"])
    test = load_dataset(DataConfig(spec=spec, split="test"), ("paired",))    # no test/: val/ is used
    assert test.info.size == 1
    as_images = load_dataset(DataConfig(spec=spec), ("image", "vector"))    # same folder, the gan recipe's view
    assert as_images.info.kind == "image" and all_items(as_images)["image"].shape == (3, 1, 8, 8)


def test_two_folder_pairs_match_by_name_and_resize(tmp_path):
    for i in range(3):
        save(tmp_path / "A" / f"{i}.png", flat(10 * i, 8, 8))
        save(tmp_path / "B" / f"{i}.bmp", flat(100 + 10 * i, 16, 16, rgb=True))  # other size, format, channels
    ds = load_dataset(DataConfig(spec=str(tmp_path / "A"), spec_b=str(tmp_path / "B")), ("paired",))
    items = all_items(ds)
    assert ds.info.resolution == 8 and ds.info.channels == 1 and ds.info.channels_b == 3
    assert items["a"].shape == (3, 1, 8, 8) and items["b"].shape == (3, 3, 8, 8)
    a_vals = ((items["a"][:, 0, 0, 0] + 1) * 127.5).round()
    b_vals = ((items["b"][:, 0, 0, 0] + 1) * 127.5).round()
    assert torch.equal(b_vals - a_vals, torch.full((3,), 100.0))               # partners, not shuffled
    save(tmp_path / "A" / "lonely.png", flat(0))
    save(tmp_path / "B" / "single.png", flat(0))
    with pytest.raises(DataError, match=r"no partner.*lonely.*no partner.*single"):
        load_dataset(DataConfig(spec=str(tmp_path / "A"), spec_b=str(tmp_path / "B")), ("paired",))


# ---- unpaired ----------------------------------------------------------------------------------------------

def test_unpaired_two_folders_of_different_sizes(tmp_path):
    for i in range(3):
        save(tmp_path / "A" / f"a{i}.png", flat(i))
    for i in range(5):
        save(tmp_path / "B" / f"b{i}.png", flat(100 + i))
    cfg = DataConfig(spec=str(tmp_path / "A"), spec_b=str(tmp_path / "B"))
    ds = load_dataset(cfg, ("unpaired", "paired"))                           # names need not match
    assert ds.info.kind == "unpaired" and ds.info.size == 5
    assert (ds.info.extras["size_a"], ds.info.extras["size_b"]) == (3, 5)
    items = all_items(ds)
    a_vals = ((items["a"][:, 0, 0, 0] + 1) * 127.5).round().long().tolist()
    b_vals = ((items["b"][:, 0, 0, 0] + 1) * 127.5).round().long().tolist()
    assert a_vals == [0, 1, 2, 0, 1]                                           # a[i mod Na]
    assert sorted(b_vals) == [100, 101, 102, 103, 104]                         # each b once per epoch
    again = all_items(load_dataset(cfg, ("unpaired",)))
    assert torch.equal(again["b"], items["b"])                                 # the permutation is seeded
    with pytest.raises(DataError, match="no partner"):
        load_dataset(cfg, ("paired",))


def test_cyclegan_layout_and_split(tmp_path):
    for split, base in (("train", 0), ("test", 50)):
        for i in range(2):
            save(tmp_path / f"{split}A" / f"{i}.png", flat(base + i, rgb=True))
            save(tmp_path / f"{split}B" / f"{i}.png", flat(base + 100 + i, rgb=True))
        save(tmp_path / f"{split}B" / "extra.png", flat(base + 102, rgb=True))
    for split, base in (("train", 0), ("test", 50)):
        ds = load_dataset(DataConfig(spec=str(tmp_path), split=split), ("unpaired", "paired"))
        items = all_items(ds)
        assert ds.info.size == 3 and ds.info.channels == 3 and ds.info.extras["layout"] == "cyclegan"
        a = set(((items["a"][:, 0, 0, 0] + 1) * 127.5).round().long().tolist())
        b = set(((items["b"][:, 0, 0, 0] + 1) * 127.5).round().long().tolist())
        assert a == {base, base + 1} and b == {base + 100, base + 101, base + 102}
    with pytest.raises(DataError, match="unpaired data.*paired data"):
        load_dataset(DataConfig(spec=str(tmp_path)), ("paired",))


# ---- lazy storage and resumable streams --------------------------------------------------------------------

def make_folder(root: Path, n: int = 23) -> Path:
    rng = np.random.default_rng(1)
    for i in range(n):
        save(root / ("x" if i % 2 else "y") / f"{i:02d}.png", rng.integers(0, 256, (6, 6, 3), dtype=np.uint8))
    return root


def test_lazy_and_memory_storage_give_identical_items(tmp_path, monkeypatch):
    folder = make_folder(tmp_path / "imgs")
    cfg = DataConfig(spec=str(folder), xflip=True)
    memory = load_dataset(cfg)
    monkeypatch.setattr(storage, "MEMORY_LIMIT_BYTES", 0)
    lazy = load_dataset(cfg)
    assert hasattr(memory, "get_batch") and not hasattr(lazy, "get_batch")
    assert memory.base.info.extras["storage"] == "memory" and lazy.base.info.extras["storage"] == "lazy"
    assert lazy.info.size == memory.info.size == 46
    for i in (0, 5, 23, 40):
        m, z = memory[i], lazy[i]
        assert torch.equal(m["image"], z["image"]) and torch.equal(m["label"], z["label"])
    assert torch.equal(memory[30]["image"], memory[7]["image"].flip(-1))


@pytest.mark.parametrize("lazy,num_workers", [(False, 0), (True, 0), (True, 1)])
def test_batch_stream_resume_equals_uninterrupted(tmp_path, monkeypatch, lazy, num_workers):
    folder = make_folder(tmp_path / "imgs")
    if lazy:
        monkeypatch.setattr(storage, "MEMORY_LIMIT_BYTES", 0)
    ds = load_dataset(DataConfig(spec=str(folder), xflip=True))
    stream = BatchStream(ds, batch_size=7, seed=5, num_workers=num_workers)
    uninterrupted = [next(stream) for _ in range(10)]                          # 70 items: crosses epochs
    assert stream.state_dict()["batches_done"] == 10
    resumed = BatchStream(ds, batch_size=7, seed=5, num_workers=num_workers)
    resumed.load_state_dict({"batches_done": 4})
    for expected in uninterrupted[4:]:
        got = next(resumed)
        assert torch.equal(got["image"], expected["image"]) and torch.equal(got["label"], expected["label"])
    assert not torch.equal(uninterrupted[0]["image"], uninterrupted[3]["image"])


def test_lazy_unpaired_and_paired_streams_match_memory(tmp_path, monkeypatch):
    for i in range(4):
        save(tmp_path / "A" / f"{i}.png", flat(i * 20, rgb=True))
        save(tmp_path / "B" / f"{i}.png", flat(255 - i * 20, rgb=True))
    save(tmp_path / "B" / "9.png", flat(7, rgb=True))
    for kinds in (("unpaired",), ("paired",)):
        spec_b = tmp_path / "B"
        if kinds == ("paired",):
            (spec_b / "9.png").unlink(missing_ok=True)
        cfg = DataConfig(spec=str(tmp_path / "A"), spec_b=str(spec_b), xflip=True)
        memory = load_dataset(cfg, kinds)
        monkeypatch.setattr(storage, "MEMORY_LIMIT_BYTES", 0)
        lazy = load_dataset(cfg, kinds)
        monkeypatch.undo()
        assert not hasattr(lazy, "get_batch") and hasattr(memory, "get_batch")
        s_mem, s_lazy = BatchStream(memory, 3, seed=1), BatchStream(lazy, 3, seed=1)
        for _ in range(5):
            m, z = next(s_mem), next(s_lazy)
            assert torch.equal(m["a"], z["a"]) and torch.equal(m["b"], z["b"])


def test_celeba_reads_the_partition_file(tmp_path):
    images = tmp_path / "celeba" / "img_align_celeba"
    rng = np.random.default_rng(2)
    for i in range(1, 6):
        save(images / f"{i:06d}.jpg", rng.integers(0, 256, (22, 18, 3), dtype=np.uint8))   # 178x218 in miniature
    (tmp_path / "celeba" / "list_eval_partition.txt").write_text(
        "000001.jpg 0\n000002.jpg 0\n000003.jpg 1\n000004.jpg 2\n000005.jpg 0\n")
    train = load_dataset(DataConfig(spec="celeba", root=str(tmp_path), resolution=8))
    test = load_dataset(DataConfig(spec="celeba", root=str(tmp_path), resolution=8, split="test"))
    assert (train.info.size, test.info.size) == (3, 1) and train.info.channels == 3
    assert all_items(train)["image"].shape == (3, 3, 8, 8)


def test_unreadable_partner_drops_the_pair_and_bad_second_folder(tmp_path):
    for i in range(3):
        save(tmp_path / "A" / f"{i}.png", flat(i))
        save(tmp_path / "B" / f"{i}.png", flat(100 + i))
    (tmp_path / "B" / "1.png").write_bytes(b"garbage")
    with pytest.warns(DataWarning, match="Skipped 1.*1.png"):
        ds = load_dataset(DataConfig(spec=str(tmp_path / "A"), spec_b=str(tmp_path / "B")), ("paired",))
    assert ds.info.size == 2 and ds.info.extras["skipped_files"] == 1          # the pair 1.png is dropped
    items = all_items(ds)
    a_vals = ((items["a"][:, 0, 0, 0] + 1) * 127.5).round().long().tolist()
    b_vals = ((items["b"][:, 0, 0, 0] + 1) * 127.5).round().long().tolist()
    assert (a_vals, b_vals) == ([0, 2], [100, 102])
    with pytest.raises(DataError, match="does not exist"):
        load_dataset(DataConfig(spec=str(tmp_path / "A"), spec_b=str(tmp_path / "nope")), ("unpaired",))
