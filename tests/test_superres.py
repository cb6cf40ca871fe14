"""Super-resolution: sub-pixel shapes, the degradation pipeline (PIL bicubic exactly, MATLAB imresize against a
direct evaluation of its formula), the relativistic loss, the Y-channel PSNR by hand, tiling, VGG-19 loading in
torchvision's layout, config routing, and srresnet -> srgan (--init-from) -> esrgan training through the CLI."""
from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner
from PIL import Image

from gankit.cli import cli
from gankit.config import DataConfig
from gankit.data import load_dataset
from gankit.data.restoration import (degrade, matlab_bicubic, parse_degradation, pil_bicubic)
from gankit.engine import build, resolve
from gankit.errors import ConfigError, DataError
from gankit.images import to_uint8
from gankit.metrics.restoration import high_frequency_share, psnr_y, rgb_to_y, ssim_y
from gankit.nets import generators
from gankit.nets.superres import SubPixelUpsample
from gankit.recipes.superres import relativistic_d_loss, relativistic_g_loss, tiled

TINY_SR = ["G.nf=4", "G.n_blocks=1", "batch_size=4", "tick_kimg=0.008", "snapshot_kimg=1", "data.split=test",
           "data.resolution=32", "device=cpu"]


# ---- networks ---------------------------------------------------------------------------------------------------

def test_sub_pixel_convolution_arranges_channels_as_shi_et_al():
    """PixelShuffle(2): channel c*4 + 2i + j of LR pixel (y, x) lands at HR pixel (2y + i, 2x + j) of channel c."""
    up = SubPixelUpsample(3)
    feat = torch.randn(2, 12, 5, 7)
    out = up[1](feat)                                                  # the shuffle alone
    assert out.shape == (2, 3, 10, 14)
    for c, i, j in ((0, 0, 0), (1, 0, 1), (2, 1, 0), (1, 1, 1)):
        assert torch.equal(out[:, c, i::2, j::2], feat[:, c * 4 + 2 * i + j])
    assert up(torch.randn(2, 3, 5, 7)).shape == (2, 3, 10, 14)


@pytest.mark.parametrize("arch", ["srresnet", "rrdb"])
@pytest.mark.parametrize("scale", [2, 4, 8])
def test_upscalers_multiply_both_sides_by_the_scale(arch, scale):
    kwargs = {"nf": 4, "n_blocks": 1} | ({"gc": 4} if arch == "rrdb" else {})
    G = generators.get(arch)(in_channels=1, out_channels=1, scale=scale, **kwargs).eval()
    with torch.no_grad():
        out = G(torch.rand(2, 1, 5, 9) * 2 - 1)
    assert out.shape == (2, 1, 5 * scale, 9 * scale) and out.abs().max() <= 1
    with pytest.raises(ConfigError, match="2, 4, 8"):
        generators.get(arch)(in_channels=1, out_channels=1, scale=3)


def test_global_skip_starts_as_bicubic():
    G = generators.get("srresnet")(3, 3, 4, nf=4, n_blocks=1, global_skip=True).eval()
    x = torch.rand(1, 3, 6, 6) * 1.6 - 0.8
    with torch.no_grad():
        expected = F.interpolate(x, scale_factor=4, mode="bicubic", align_corners=False).clamp(-1, 1)
        assert torch.allclose(G(x), expected, atol=1e-6)


# ---- degradation ------------------------------------------------------------------------------------------------

def test_default_degradation_equals_pil_bicubic(tmp_path):
    ds = load_dataset(DataConfig(spec="photo-crops", split="test", resolution=32, options={"scale": 4}), ("superres",))
    assert ds.info.kind == "superres" and ds.info.extras["scale"] == 4 and ds.info.extras["degrade"] == "bicubic"
    hr, lr = ds.tensors["b"][:6], ds.tensors["a"][:6]                                  # uint8
    assert lr.shape[-2:] == (8, 8)
    for h, l in zip(hr, lr):
        pil = Image.fromarray(h.permute(1, 2, 0).numpy()).resize((8, 8), Image.BICUBIC)
        assert np.array_equal(np.asarray(pil), l.permute(1, 2, 0).numpy())
    # A folder of large images: random crops at native scale, degraded the same way (here x2).
    rng = np.random.default_rng(0)
    for k in range(2):
        Image.fromarray(rng.integers(0, 256, (40 + k, 50, 3), dtype=np.uint8)).save(tmp_path / f"{k}.png")
    ds = load_dataset(DataConfig(spec=str(tmp_path), resolution=16, options={"scale": 2, "crops": 5}), ("superres",))
    assert len(ds) == 5 and ds.tensors["a"].shape == (5, 3, 8, 8)
    for h, l in zip(ds.tensors["b"], ds.tensors["a"]):
        assert np.array_equal(pil_bicubic(h.permute(1, 2, 0).numpy(), 2), l.permute(1, 2, 0).numpy())


def _matlab_reference(img: np.ndarray, scale: int) -> np.ndarray:
    """imresize(img, 1/scale, 'bicubic') straight from its definition, one output pixel at a time: Keys' kernel
    (a = -0.5) stretched by scale (antialiasing), centres u = x * scale + 0.5 (1 - scale), mirrored borders."""
    def cubic(t):
        t = abs(t)
        return 1.5 * t ** 3 - 2.5 * t ** 2 + 1 if t <= 1 else (-0.5 * t ** 3 + 2.5 * t ** 2 - 4 * t + 2 if t <= 2 else 0)

    def resize_1d(v: np.ndarray) -> np.ndarray:
        n = len(v)
        out = []
        for x in range(1, n // scale + 1):
            u = x * scale + 0.5 * (1 - scale)
            taps = range(math.floor(u - 2 * scale), math.ceil(u + 2 * scale) + 1)
            w = np.array([cubic((u - k) / scale) / scale for k in taps])
            idx = [k - 1 for k in taps]
            idx = [(-i - 1) if i < 0 else (2 * n - i - 1 if i >= n else i) for i in idx]
            out.append((w * v[idx]).sum() / w.sum())
        return np.array(out)
    rows = np.stack([resize_1d(img[:, c].astype(np.float64)) for c in range(img.shape[1])], 1)
    return np.clip(np.round(np.stack([resize_1d(r) for r in rows])), 0, 255).astype(np.uint8)


def test_matlab_imresize_matches_its_definition():
    img = np.random.default_rng(1).integers(0, 256, (12, 16), dtype=np.uint8)
    for scale in (2, 4):
        assert np.array_equal(matlab_bicubic(img, scale), _matlab_reference(img, scale))
    assert np.array_equal(matlab_bicubic(np.full((8, 8), 77, np.uint8), 4), np.full((2, 2), 77, np.uint8))


def test_degradation_pipeline_steps_and_errors():
    how = parse_degradation("jpeg:70+noise:4+matlab+blur:1.5")           # applied in Real-ESRGAN's order anyway
    assert how.text() == "blur:1.5+matlab+noise:4+jpeg:70"
    hr = np.random.default_rng(2).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    a = degrade(hr, 4, how, np.random.default_rng(5))
    b = degrade(hr, 4, how, np.random.default_rng(5))
    assert a.shape == (8, 8, 3) and np.array_equal(a, b)                  # seeded noise: reproducible
    assert not np.array_equal(a, degrade(hr, 4, parse_degradation("matlab"), None))
    for bad, why in (("bicubic+matlab", "two resizes"), ("blur:2", "no resize"), ("sharpen+bicubic", "unknown step"),
                     ("bicubic+jpeg:0", "quality")):
        with pytest.raises(DataError, match=why):
            parse_degradation(bad)


def test_short_keys_route_to_the_superres_options_and_are_checked_early():
    cfg = resolve("srresnet", overrides=["scale=2", "degrade=blur:1+bicubic", "data.resolution=32"])
    assert cfg.data.options == {"scale": 2, "degrade": "blur:1+bicubic"}
    with pytest.raises(ConfigError, match="data option 'mask_fraction'|Unknown config key"):
        resolve("srresnet", overrides=["data.mask_fraction=0.3"])
    with pytest.raises(DataError, match="scale must be one of 2, 4, 8"):
        build(resolve("srresnet", overrides=[*TINY_SR, "scale=3"]))
    with pytest.raises(DataError, match="not a multiple of scale 8"):
        build(resolve("srresnet", overrides=[*TINY_SR, "scale=8", "data.resolution=36"]))


def test_lr_hr_folders_give_aligned_crops(tmp_path):
    rng = np.random.default_rng(3)
    (tmp_path / "hr").mkdir(), (tmp_path / "lr").mkdir()
    for name in ("a", "b"):
        hr = rng.integers(0, 256, (48, 64), dtype=np.uint8)
        Image.fromarray(hr).save(tmp_path / "hr" / f"{name}.png")
        Image.fromarray(hr[1::4, 2::4]).save(tmp_path / "lr" / f"{name}.png")     # a decimation: LR known exactly
    ds = load_dataset(DataConfig(spec=str(tmp_path / "hr"), spec_b=str(tmp_path / "lr"), resolution=16,
                                 options={"crops": 6}), ("superres",))
    assert ds.tensors["a"].shape == (6, 1, 4, 4) and ds.tensors["b"].shape == (6, 1, 16, 16)
    assert torch.equal(ds.tensors["b"][:, :, 1::4, 2::4], ds.tensors["a"])
    Image.fromarray(np.zeros((10, 10), np.uint8)).save(tmp_path / "lr" / "a.png")
    with pytest.raises(DataError, match="not 1/4"):
        load_dataset(DataConfig(spec=str(tmp_path / "hr"), spec_b=str(tmp_path / "lr"), resolution=16), ("superres",))


# ---- losses and metrics -------------------------------------------------------------------------------------------

def test_relativistic_average_losses_match_the_formula():
    torch.manual_seed(0)
    real, fake = torch.randn(6), torch.randn(6) + 0.5
    sig, log = torch.sigmoid, torch.log
    d_ra_real = sig(real - fake.mean())                                 # D_Ra(x_r, x_f)
    d_ra_fake = sig(fake - real.mean())                                 # D_Ra(x_f, x_r)
    d_expected = 0.5 * (-log(d_ra_real).mean() - log(1 - d_ra_fake).mean())
    g_expected = 0.5 * (-log(1 - d_ra_real).mean() - log(d_ra_fake).mean())
    torch.testing.assert_close(relativistic_d_loss(real, fake), d_expected)
    torch.testing.assert_close(relativistic_g_loss(real, fake), g_expected)
    # The gradient reaches D through both the real and the averaged fake logits.
    r, f = real.clone().requires_grad_(), fake.clone().requires_grad_()
    relativistic_d_loss(r, f).backward()
    assert r.grad.abs().sum() > 0 and f.grad.abs().sum() > 0


def test_y_channel_psnr_equals_a_hand_computation():
    assert torch.allclose(rgb_to_y(torch.tensor([255.0, 255, 255]).double().view(1, 3, 1, 1)), torch.tensor(235.0).double())
    assert torch.allclose(rgb_to_y(torch.zeros(1, 3, 1, 1)), torch.tensor(16.0))  # black -> 16, white -> 235
    rng = np.random.default_rng(4)
    a = rng.integers(0, 256, (2, 3, 12, 10), dtype=np.uint8)
    b = np.clip(a.astype(int) + rng.integers(-20, 21, a.shape), 0, 255).astype(np.uint8)
    expected = []
    for x, y in zip(a.astype(np.float64), b.astype(np.float64)):
        yx = 16 + (65.481 * x[0] + 128.553 * x[1] + 24.966 * x[2]) / 255
        yy = 16 + (65.481 * y[0] + 128.553 * y[1] + 24.966 * y[2]) / 255
        mse = ((yx[2:-2, 2:-2] - yy[2:-2, 2:-2]) ** 2).mean()             # border 2 cropped
        expected.append(10 * math.log10(255 ** 2 / mse))
    got = psnr_y(torch.from_numpy(a), torch.from_numpy(b), border=2)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-12)
    assert abs(float(psnr_y(torch.from_numpy(a), torch.from_numpy(b), border=0)[0]) - expected[0]) > 1e-6


def test_ssim_y_agrees_with_scikit_image():
    from skimage.metrics import structural_similarity
    rng = np.random.default_rng(5)
    a = rng.integers(0, 256, (1, 3, 40, 40), dtype=np.uint8)
    b = np.clip(a.astype(int) + rng.integers(-30, 31, a.shape), 0, 255).astype(np.uint8)
    ya, yb = [rgb_to_y(torch.from_numpy(x).double())[0, 0, 4:-4, 4:-4].numpy() for x in (a, b)]
    ref = structural_similarity(ya, yb, data_range=255, gaussian_weights=True, sigma=1.5, use_sample_covariance=False)
    assert abs(float(ssim_y(torch.from_numpy(a), torch.from_numpy(b), border=4)[0]) - ref) < 2e-3


def test_high_frequency_share_ranks_sharp_above_blurred():
    sharp = torch.from_numpy(np.random.default_rng(6).integers(0, 256, (1, 1, 32, 32), dtype=np.uint8))
    blurred = to_uint8(F.avg_pool2d(sharp.float() / 127.5 - 1, 3, 1, 1))
    assert float(high_frequency_share(sharp)) > 2 * float(high_frequency_share(blurred))
    assert float(high_frequency_share(torch.full((1, 1, 8, 8), 9, dtype=torch.uint8))) == 0.0


# ---- tiling -------------------------------------------------------------------------------------------------------

def test_tiled_upscaling_equals_the_whole_image_away_from_seams():
    torch.manual_seed(0)
    G = generators.get("srresnet")(3, 3, 2, nf=4, n_blocks=1).eval()   # receptive radius about 9 LR pixels
    x = torch.rand(1, 3, 40, 52) * 2 - 1
    with torch.no_grad():
        whole = G(x)
        wide = tiled(G, x, 2, tile=16, overlap=12)                        # context covers the receptive field
        narrow = tiled(G, x, 2, tile=20, overlap=2)
    assert wide.shape == whole.shape == (1, 3, 80, 104)
    torch.testing.assert_close(wide, whole, atol=1e-5, rtol=0)
    # Narrow context: exact where the receptive field stays inside the tile's context, close on the seams.
    far = torch.zeros(40, 52, dtype=torch.bool)
    far[0:11, 0:11] = True                                               # >= 9 px from the seams at 20 and 40
    far_hr = far.repeat_interleave(2, 0).repeat_interleave(2, 1)
    torch.testing.assert_close(narrow[..., far_hr], whole[..., far_hr], atol=1e-5, rtol=0)
    assert (narrow - whole).abs().mean() < 0.05 and not torch.allclose(narrow, whole, atol=1e-5)


# ---- VGG-19 -------------------------------------------------------------------------------------------------------

def _torchvision_vgg19_features():
    from torchvision.models.vgg import cfgs, make_layers
    torch.manual_seed(0)
    return make_layers(cfgs["E"])


def test_vgg19_features_load_torchvision_layout_and_refuse_others(tmp_path):
    from gankit.nets.vgg import LAYERS, VGG19Features
    tv = _torchvision_vgg19_features().eval()
    state = {f"features.{k}": v for k, v in tv.state_dict().items()}
    state["classifier.0.weight"] = torch.zeros(2, 2)                    # a full state dict also has these
    path = tmp_path / "vgg19.pth"
    torch.save(state, path)
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    norm = ((x + 1) / 2 - torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)) / torch.tensor(
        [0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    for layer in ("relu5_4", "conv5_4", "relu2_2"):
        net = VGG19Features.from_file(path, layer)
        with torch.no_grad():
            torch.testing.assert_close(net(x), tv[:LAYERS[layer] + 1](norm))
    assert LAYERS["conv5_4"] == 34 and LAYERS["relu5_4"] == 35
    torch.save({"features.0.weight": torch.zeros(3, 3)}, tmp_path / "bad.pth")
    with pytest.raises(ConfigError, match="torchvision's layout"):
        VGG19Features.from_file(tmp_path / "bad.pth")
    with pytest.raises(ConfigError, match="does not exist"):
        VGG19Features.from_file(tmp_path / "missing.pth")


def test_srgan_uses_the_vgg_content_loss_when_given_weights_and_falls_back_without(tmp_path):
    tv = _torchvision_vgg19_features()
    torch.save({f"features.{k}": v for k, v in tv.state_dict().items()}, tmp_path / "vgg.pth")
    over = [*TINY_SR, "D.nf=4", "D.dense=8", "pretrain_kimg=0"]
    trainer, _ = build(resolve("srgan", overrides=[*over, f"vgg_weights={tmp_path / 'vgg.pth'}", "vgg_layer=relu2_2"]))
    recipe = trainer.recipe
    batch = next(trainer.stream)
    sr = recipe.nets["G"](batch["a"])
    vgg = recipe.feature_net(sr.device)
    s = recipe.opts.vgg_scale
    torch.testing.assert_close(recipe.content_loss(sr, batch["b"]), F.mse_loss(vgg(sr) * s, vgg(batch["b"]) * s))
    assert all(k.startswith(("nets.G.", "nets.D.")) for k in recipe.state_dict())   # the VGG is not checkpointed
    with pytest.warns(UserWarning, match="falls back to the pixel MSE"):
        trainer, _ = build(resolve("srgan", overrides=over))
    torch.testing.assert_close(trainer.recipe.content_loss(sr, batch["b"]), F.mse_loss(sr, batch["b"]))
    with pytest.raises(ConfigError, match="does not exist"):
        build(resolve("srgan", overrides=[*over, "vgg_weights=/no/such/vgg.pth"]))


# ---- end to end ---------------------------------------------------------------------------------------------------

def _train(runner, tmp_path, preset, *sets):
    args = ["train", "--preset", preset, "--out", str(tmp_path / "runs")]
    for s in sets:
        args += ["--set", s]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = runner.invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return sorted((tmp_path / "runs").glob(f"*-{preset}-*"))[-1]


def test_srresnet_then_srgan_from_it_then_esrgan_with_pretraining_and_the_upscale_command(tmp_path):
    import json
    runner = CliRunner()
    srres = _train(runner, tmp_path, "srresnet", *TINY_SR, "kimg=0.016")
    srgan = _train(runner, tmp_path, "srgan", *TINY_SR, "D.nf=4", "D.dense=8", "kimg=0.016", "pretrain_kimg=0",
                   f"init_from={srres / 'latest.pt'}")
    # --init-from: srgan's G starts from srresnet's trained G (same network, same shapes).
    from gankit.checkpoint import load_checkpoint
    from gankit.loading import init_weights_from
    assert json.loads((srgan / "config.json").read_text())["init_from"].endswith("latest.pt")
    fresh, _ = build(resolve("srgan", overrides=[*TINY_SR, "D.nf=4", "D.dense=8", "pretrain_kimg=0"]))
    report = init_weights_from(fresh.recipe, srres / "latest.pt")
    assert report["loaded"] and all(k.startswith("nets.G.") for k in report["loaded"])
    assert report["missing"] and all(k.startswith("nets.D.") for k in report["missing"])
    torch.testing.assert_close(fresh.recipe.state_dict()["nets.G.tail.weight"],
                               load_checkpoint(srres / "latest.pt")["nets"]["nets.G.tail.weight"])
    esr = _train(runner, tmp_path, "esrgan", *TINY_SR, "G.gc=4", "D.nf=4", "D.dense=8", "kimg=0.016",
                 "pretrain_kimg=0.008")
    stats = [json.loads(line) for line in (esr / "stats.jsonl").read_text().splitlines()]
    assert "G_pre/loss" in stats[0] and "D/loss" not in stats[0]       # pixel pre-training first ...
    assert "D/loss" in stats[-1] and "G_pre/loss" not in stats[-1]     # ... then the adversarial phases

    # gankit upscale: any size, names kept, tiled, never overwriting.
    src = tmp_path / "lr"
    src.mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (13, 21, 3), dtype=np.uint8)).save(src / "one.png")
    Image.fromarray(rng.integers(0, 256, (9, 8, 3), dtype=np.uint8)).save(src / "two.jpg")
    out = tmp_path / "up"
    result = runner.invoke(cli, ["upscale", "--ckpt", str(srgan), "--input", str(src), "--out", str(out),
                                 "--tile", "8", "--overlap", "4", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert Image.open(out / "one.png").size == (84, 52) and Image.open(out / "two.jpg").size == (32, 36)
    before = (out / "one.png").read_bytes()
    result = runner.invoke(cli, ["upscale", "--ckpt", str(srgan), "--input", str(src), "--out", str(out)])
    assert isinstance(result.exception, ConfigError) and "never overwrites" in str(result.exception)
    assert (out / "one.png").read_bytes() == before
    result = runner.invoke(cli, ["translate", "--ckpt", str(srres), "--input", str(src), "--out", str(tmp_path / "t")])
    assert isinstance(result.exception, ConfigError) and "gankit upscale" in str(result.exception)

    # Evaluation on the held-out split, with the bicubic baseline in the same table.
    result = runner.invoke(cli, ["eval", "--ckpt", str(srres), "--n", "8", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    for key in ("psnr_y", "ssim_y", "hf_ratio", "bicubic_psnr_y", "bicubic_ssim_y", "bicubic_hf_ratio"):
        assert key in result.output
