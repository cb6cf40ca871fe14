"""LPIPS for super-resolution and inpainting evaluation: torchmetrics' LPIPS-VGG with a torchvision-layout VGG16
backbone given by path (random weights in the real layout here), loaded by the projector's code; refused with a
message, before anything is evaluated or trained, when the weights are absent."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from gankit.engine import build, resolve
from gankit.errors import ConfigError
from gankit.metrics.restoration import evaluate_inpaint, evaluate_superres, lpips_network, lpips_pairs


@pytest.fixture(scope="module")
def vgg16_file(tmp_path_factory):
    from torchvision.models.vgg import cfgs, make_layers
    torch.manual_seed(0)
    features = make_layers(cfgs["D"])                                       # torchvision vgg16's .features
    path = tmp_path_factory.mktemp("w") / "vgg16.pth"
    torch.save({f"features.{k}": v for k, v in features.state_dict().items()}, path)
    return str(path)


@pytest.fixture(scope="module")
def hr_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("hr")
    rng = np.random.default_rng(0)
    for i in range(2):
        Image.fromarray(rng.integers(0, 256, (48, 48, 3), dtype=np.uint8)).save(folder / f"p{i}.png")
    return folder


def test_lpips_pairs_is_the_network_at_native_size(vgg16_file):
    net = lpips_network(vgg16_file)
    g = torch.Generator().manual_seed(1)
    a = torch.randint(0, 256, (3, 3, 32, 32), generator=g, dtype=torch.uint8)
    b = torch.randint(0, 256, (3, 3, 32, 32), generator=g, dtype=torch.uint8)
    got = lpips_pairs(net, a, b)
    assert got.shape == (3,) and torch.all(got > 0)
    assert torch.allclose(lpips_pairs(net, a, a), torch.zeros(3, dtype=torch.float64), atol=1e-6)
    # The network on [-1, 1] images at their own 32 px (no resize), with the file's backbone (loaded by the
    # projector's LPIPSDistance code: torchvision keys features.N.* -> LPIPS slices).
    ref = net(a.float() / 127.5 - 1, b.float() / 127.5 - 1).reshape(-1)
    torch.testing.assert_close(got.float(), ref)
    state = torch.load(vgg16_file, weights_only=True)
    torch.testing.assert_close(dict(net.net.slice1.named_children())["0"].weight, state["features.0.weight"])
    torch.testing.assert_close(dict(net.net.slice5.named_children())["28"].weight, state["features.28.weight"])
    assert lpips_network(vgg16_file) is net                                   # loaded once per file
    gray = lpips_pairs(net, a[:, :1], b[:, :1])                               # gray repeated to RGB
    torch.testing.assert_close(gray, lpips_pairs(net, a[:, :1].repeat(1, 3, 1, 1), b[:, :1].repeat(1, 3, 1, 1)))


def test_lpips_in_the_sr_and_inpainting_cards_and_refused_without_weights(vgg16_file, hr_folder):
    data = resolve("srresnet", overrides=[f"data.spec={hr_folder}", "data.resolution=32", "crops=3", "scale=2",
                                          "device=cpu"]).data
    calls = []

    def upscale(lr):                                                           # the bicubic-like torch upsampler
        calls.append(len(lr))
        return F.interpolate(lr, scale_factor=2, mode="bicubic", align_corners=False).clamp(-1, 1)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")                                        # no test split in the folder
        card = evaluate_superres(upscale, data, "psnr_y,lpips", lpips_weights=vgg16_file)
        m = card["metrics"]
        assert {"psnr_y", "lpips", "bicubic_lpips"} <= set(m) and m["lpips"] > 0 and m["bicubic_lpips"] > 0
        with pytest.raises(ConfigError, match="lpips_weights=PATH"):
            evaluate_superres(upscale, data, "psnr_y,lpips")
        n_calls = len(calls)
        with pytest.raises(ConfigError, match="lpips_weights=PATH"):
            evaluate_superres(upscale, data, "lpips", lpips_weights="")
        assert len(calls) == n_calls                                           # refused before evaluating
        with pytest.raises(ConfigError, match="lpips_weights: .*does not exist"):
            evaluate_superres(upscale, data, "lpips", lpips_weights=str(hr_folder / "none.pth"))
        torch.save({"conv.weight": torch.zeros(1)}, hr_folder / "wrong.pth")
        with pytest.raises(ConfigError, match="lpips_weights: .*not a torchvision vgg16 state dict"):
            evaluate_superres(upscale, data, "lpips", lpips_weights=str(hr_folder / "wrong.pth"))
        assert len(calls) == n_calls

        def fill_grey(images, masks):
            return torch.where(masks.expand_as(images), torch.zeros_like(images), images)

        img_data = resolve("inpaint", overrides=[f"data.spec={hr_folder}", "data.resolution=32", "device=cpu"]).data
        card = evaluate_inpaint(fill_grey, img_data, "centre", 0.25, "hole_l1,lpips", lpips_weights=vgg16_file)
        m = card["metrics"]
        assert {"hole_l1", "lpips", "meanfill_lpips", "biharmonic_lpips"} <= set(m)
        assert m["lpips"] > 0 and np.isfinite(m["biharmonic_lpips"])


def test_a_run_asking_for_lpips_needs_the_weights_before_training(vgg16_file, hr_folder):
    over = [f"data.spec={hr_folder}", "data.resolution=32", "crops=3", "scale=2", "device=cpu", "G.nf=4",
            "G.n_blocks=1", "metrics=[lpips]"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ConfigError, match="lpips_weights=PATH"):
            build(resolve("srresnet", overrides=over))
        trainer, _ = build(resolve("srresnet", overrides=[*over, f"lpips_weights={vgg16_file}"]))
        assert trainer.recipe.opts.lpips_weights == vgg16_file
        with pytest.raises(ConfigError, match="lpips_weights=PATH"):
            build(resolve("inpaint", overrides=[f"data.spec={hr_folder}", "data.resolution=32", "device=cpu",
                                                "G.nf=4", "D.nf=4", "D.n_layers=3", "metrics=[lpips]"]))
