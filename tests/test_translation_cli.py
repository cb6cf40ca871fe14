"""``gankit translate``: padding and cropping, directions, file names, never overwriting silently."""
import numpy as np
import torch
from click.testing import CliRunner
from PIL import Image

from gankit.checkpoint import save_checkpoint
from gankit.cli_translate import load_image, translate, translate_image
from gankit.images import pad_to_multiple
from gankit.config import to_dict
from gankit.engine import resolve
from gankit.data.base import DataInfo
from gankit.errors import ConfigError
from gankit.images import to_uint8
from gankit.recipes import recipes


def make_ckpt(tmp_path, preset, ca, cb, direction="AtoB"):
    torch.manual_seed(0)
    overrides = {"G.ngf": 4, "D.ndf": 4, "data.direction": direction}
    if preset == "cyclegan":
        overrides.update({"G.n_blocks": 1, "identity_weight": 0.0})
    cfg = resolve(preset, None, overrides)
    info = DataInfo(name="toy", kind="paired", size=4, channels=ca, resolution=32, channels_b=cb)
    recipe = recipes.get(cfg.recipe).from_config(cfg, info)
    with torch.no_grad():  # move batch-norm statistics off their initial values, so eval mode matters
        recipe.train()
        for name in recipe.generator_names:
            recipe.nets[name](torch.randn(4, {"G": ca, "G_ab": ca, "G_ba": cb}[name], 32, 32))
    path = tmp_path / f"{preset}.pt"
    save_checkpoint({"config": to_dict(cfg), "data_info": info.to_dict(), "nimg": 0, "step": 0,
                     "nets": recipe.state_dict(), "ema": None}, path)
    return path, recipe.eval()


def write_png(path, arr):
    Image.fromarray(arr).save(path)
    return path


def test_pad_to_multiple_reflects_then_replicates():
    x = torch.arange(12.0).view(1, 1, 3, 4)
    y = pad_to_multiple(x, 4)                              # 3 x 4 -> 4 x 4: one reflected row
    assert y.shape == (1, 1, 4, 4) and torch.equal(y[..., 3, :], x[..., 1, :]) and torch.equal(y[..., :3, :], x)
    z = pad_to_multiple(x, 8)                              # 3 -> 8 rows: too far to reflect, replicate edges
    assert z.shape == (1, 1, 8, 8) and torch.equal(z[..., 7, :4], x[..., 2, :]) and torch.equal(z[..., 0, 7], x[..., 0, 3])
    assert torch.equal(pad_to_multiple(x, 1), x)


def test_translate_image_crops_back_and_matches_the_network_on_exact_sizes():
    from gankit.nets.unet import UNetGenerator
    net = UNetGenerator(1, 3, 32, ngf=2).eval()
    x = torch.rand(1, 1, 64, 32) * 2 - 1
    with torch.no_grad():
        assert torch.equal(translate_image(net, x, 32), net(x))
        odd = x[..., :45, :30]
        out = translate_image(net, odd, 32)
        assert out.shape == (1, 3, 45, 30)
        assert torch.equal(out, net(pad_to_multiple(odd, 32))[..., :45, :30])


def test_cyclegan_directions_file_names_and_sizes(tmp_path):
    ckpt, recipe = make_ckpt(tmp_path, "cyclegan", 1, 3)
    inp = tmp_path / "in"
    inp.mkdir()
    rng = np.random.default_rng(0)
    write_png(inp / "b1.png", rng.integers(0, 256, (30, 45, 3), dtype=np.uint8))
    write_png(inp / "b2.png", rng.integers(0, 256, (10, 12, 3), dtype=np.uint8))   # smaller than the multiple
    (inp / "notes.txt").write_text("not an image")
    res = CliRunner().invoke(translate, ["--ckpt", str(ckpt), "--input", str(inp), "--out", str(tmp_path / "o"),
                                         "--direction", "BtoA", "--device", "cpu"])
    assert res.exit_code == 0, res.output + repr(res.exception)
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == ["b1.png", "b2.png"]
    got = np.asarray(Image.open(tmp_path / "o" / "b1.png"))
    assert got.shape == (30, 45)                                         # B (RGB) -> A (gray), same size
    expected = translate_image(recipe.nets["G_ba"], load_image(inp / "b1.png", 3), 4)
    assert np.array_equal(got, to_uint8(expected)[0, 0].numpy())          # BtoA used G_ba
    assert np.asarray(Image.open(tmp_path / "o" / "b2.png")).shape == (10, 12)
    # AtoB (the trained direction, also the default) uses G_ab and reads grayscale.
    res = CliRunner().invoke(translate, ["--ckpt", str(ckpt), "--input", str(inp / "b1.png"),
                                         "--out", str(tmp_path / "o2"), "--device", "cpu"])
    assert res.exit_code == 0, repr(res.exception)
    got = np.asarray(Image.open(tmp_path / "o2" / "b1.png"))
    expected = translate_image(recipe.nets["G_ab"], load_image(inp / "b1.png", 1), 4)
    assert got.shape == (30, 45, 3) and np.array_equal(got, to_uint8(expected)[0].permute(1, 2, 0).numpy())


def test_never_overwrites_without_saying_so(tmp_path):
    ckpt, _ = make_ckpt(tmp_path, "pix2pix", 3, 3)
    src = write_png(tmp_path / "x.png", np.zeros((32, 32, 3), np.uint8))
    out = tmp_path / "out"
    out.mkdir()
    (out / "x.png").write_bytes(b"keep me")
    args = ["--ckpt", str(ckpt), "--input", str(src), "--out", str(out), "--device", "cpu"]
    res = CliRunner().invoke(translate, args)
    assert isinstance(res.exception, ConfigError) and "--overwrite" in str(res.exception)
    assert (out / "x.png").read_bytes() == b"keep me"
    res = CliRunner().invoke(translate, args + ["--overwrite"])
    assert res.exit_code == 0 and "replaced 1 existing file" in res.output
    assert np.asarray(Image.open(out / "x.png")).shape == (32, 32, 3)


def test_pix2pix_translates_only_its_trained_direction(tmp_path):
    ckpt, _ = make_ckpt(tmp_path, "pix2pix", 1, 1, direction="BtoA")
    src = write_png(tmp_path / "e.png", np.zeros((32, 32), np.uint8))
    base = ["--ckpt", str(ckpt), "--input", str(src), "--device", "cpu"]
    res = CliRunner().invoke(translate, base + ["--out", str(tmp_path / "o"), "--direction", "AtoB"])
    assert isinstance(res.exception, ConfigError) and "trained BtoA" in str(res.exception)
    res = CliRunner().invoke(translate, base + ["--out", str(tmp_path / "o"), "--direction", "BtoA"])
    assert res.exit_code == 0 and (tmp_path / "o" / "e.png").exists()


def test_bad_inputs_name_the_problem(tmp_path):
    from gankit.errors import DataError
    ckpt, _ = make_ckpt(tmp_path, "pix2pix", 1, 1)
    empty = tmp_path / "empty"
    empty.mkdir()
    for path in (empty, tmp_path / "missing.png"):
        res = CliRunner().invoke(translate, ["--ckpt", str(ckpt), "--input", str(path), "--out", str(tmp_path / "o")])
        assert isinstance(res.exception, DataError), res.exception
