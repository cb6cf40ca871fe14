"""StyleGAN2 (issue 9): network shapes, the paper's formulas (demodulation, equalised lr, path length, style
mixing, truncation), the recipe's phases and lazy correction, bit-exact resume with ADA's p and the path-length
mean, and the model-using commands (sample --truncation, interpolate in W, mix, project)."""
from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F

from gankit.checkpoint import load_checkpoint
from gankit.engine import build, resolve, train
from gankit.errors import ConfigError
from gankit.loading import load_sampler
from gankit.nets import discriminators, generators
from gankit.nets.stylegan2 import EqualConv2d, EqualLinear, modulated_conv2d, style_groups
from gankit.recipes.stylegan2 import mixing_cutoff, parse_styles, path_length_penalty, r1_gamma_heuristic

from helpers import run_cli

SMALL = {"channel_base": 64, "channel_max": 8}
TINY = {"data.spec": "digits", "data.resolution": 16, "batch_size": 8, "z_dim": 16,
        "G.channel_base": 64, "G.channel_max": 8, "D.channel_base": 64, "D.channel_max": 8,
        "G.mapping_layers": 2, "tick_kimg": 0.032, "snapshot_kimg": 0.064, "snapshot_n": 4,
        "conditional": False}   # digits have labels: conditional=auto would make these tests conditional


def _g(res=16, channels=1, **kw):
    torch.manual_seed(0)
    return generators.get("stylegan2")(z_dim=8, out_channels=channels, resolution=res, **{**SMALL, **kw})


# ---- networks ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("res", [8, 16, 32, 64, 128, 256])
@pytest.mark.parametrize("channels", [1, 3])
def test_shapes_at_each_resolution(res, channels):
    G = _g(res, channels, channel_base=16, channel_max=4, mapping_layers=1)
    D = discriminators.get("stylegan2")(in_channels=channels, resolution=res, channel_base=16, channel_max=4)
    assert G.num_ws == 2 * int(math.log2(res)) - 2                                  # 14 at 256 px (config F)
    img, ws = G(torch.randn(2, 8), return_ws=True)
    assert img.shape == (2, channels, res, res) and ws.shape == (2, G.num_ws, 8)
    assert D(img).shape == (2,)


def test_resolution_and_width_choices_fail_loudly():
    with pytest.raises(ConfigError, match="Valid resolutions: 8, 16, 32"):
        _g(28)
    with pytest.raises(ConfigError, match="out_activation"):
        _g(16, out_activation="relu")
    cfg = resolve("stylegan2", overrides={**TINY, "data.resolution": 28})
    with pytest.raises(ConfigError, match="resolution 28"):
        build(cfg, torch.device("cpu"))
    with pytest.raises(ConfigError, match="G.init=default"):
        build(resolve("stylegan2", overrides={**TINY, "G.init": "normal02"}), torch.device("cpu"))


def test_width_schedule():
    G = _g(32, channel_base=512, channel_max=64)
    widths = [b.conv1.weight.shape[0] for b in G.synthesis.blocks]
    assert widths == [64, 64, 32, 16]                    # min(512 / r, 64) at r = 4, 8, 16, 32


def test_resampling_filters_match_their_definitions():
    """upfirdn2d up=2: insert zeros, pad (2, 1), convolve with outer(k, k) / sum x 4; down=2: pad 1, convolve,
    keep every second pixel. A constant image stays constant (the filters are normalised) away from borders."""
    from gankit.nets.stylegan2 import _depthwise, downsample2d, make_filter, upsample2d
    f = make_filter()
    torch.testing.assert_close(f, torch.tensor([1., 3, 3, 1])[:, None] * torch.tensor([1., 3, 3, 1]) / 64)
    x = torch.randn(2, 3, 5, 5)
    zeros = torch.zeros(2, 3, 10, 10)
    zeros[:, :, ::2, ::2] = x
    torch.testing.assert_close(upsample2d(x, f), _depthwise(zeros, f, (2, 1, 2, 1), gain=4.0))
    ones = torch.ones(1, 1, 8, 8)
    torch.testing.assert_close(upsample2d(ones, f)[..., 2:-2, 2:-2], torch.ones(1, 1, 12, 12))
    torch.testing.assert_close(downsample2d(ones, f)[..., 1:-1, 1:-1], torch.ones(1, 1, 2, 2))
    assert downsample2d(torch.randn(1, 1, 8, 8), f).shape == (1, 1, 4, 4)


def test_demodulation_gives_unit_variance_outputs():
    """Paper sec. 2.2, eq. 3: for inputs of unit variance, w''_ijk = w'_ijk / sqrt(sum w'^2) gives outputs of
    unit variance, whatever the weights and styles."""
    torch.manual_seed(0)
    weight = torch.randn(16, 32, 3, 3) * 3.7
    styles = torch.rand(4, 32) * 5 + 0.1
    x = torch.randn(4, 32, 40, 40)
    y = modulated_conv2d(x, weight, styles, demodulate=True, padding=1)[:, :, 1:-1, 1:-1]   # away from padding
    std = y.std(dim=(0, 2, 3))                                                               # per output channel
    torch.testing.assert_close(std, torch.ones(16), atol=0.04, rtol=0)
    y_plain = modulated_conv2d(x, weight, styles, demodulate=False, padding=1)
    assert y_plain.std() > 5                                                                # what demod undoes
    # The batched form equals the paper's per-sample weights w''.
    w2 = weight[None] * styles[:, None, :, None, None]
    w2 = w2 / w2.square().sum(dim=(2, 3, 4), keepdim=True).add(1e-8).sqrt()
    per_sample = torch.cat([F.conv2d(x[i:i + 1], w2[i], padding=1) for i in range(4)])
    torch.testing.assert_close(modulated_conv2d(x, weight, styles, padding=1), per_sample, atol=1e-4, rtol=1e-4)


def test_equalised_learning_rate_scales():
    """Karras et al. 2018 sec. 4.1: stored weights N(0, 1) / lr_mul, run-time gain lr_mul / sqrt(fan_in), so the
    effective weight has std 1 / sqrt(fan_in) and a gradient step on the stored weight moves it lr_mul^2 / fan_in
    times as much as the same step on a plain weight would."""
    torch.manual_seed(0)
    fc = EqualLinear(256, 128, lr_mul=0.01, bias_init=0.5)
    assert fc.weight_gain == pytest.approx(0.01 / 16) and fc.bias_gain == 0.01
    assert fc.weight.std().item() == pytest.approx(100, rel=0.05)
    assert (fc.weight * fc.weight_gain).std().item() == pytest.approx(1 / 16, rel=0.05)
    x = torch.randn(5, 256)
    torch.testing.assert_close(fc(x), x @ (fc.weight * fc.weight_gain).T + fc.bias * 0.01)
    conv = EqualConv2d(8, 4, 3)
    assert conv.weight_gain == pytest.approx(1 / math.sqrt(8 * 9))
    G = _g()
    assert all(layer.weight_gain == pytest.approx(0.01 / math.sqrt(layer.weight.shape[1]))
               for layer in G.mapping.layers)                           # config F: 0.01 inside the layers
    assert G.synthesis.blocks[1].conv1.affine.bias.detach().eq(1).all()  # styles start at 1 (bias_init)


def test_path_length_penalty_matches_its_formula_on_a_linear_generator():
    """g(ws) = A vec(ws): J^T y = A^T y exactly, so ||J^T y|| (NVlabs: sqrt of the mean over layers of the sum
    over w_dim) and (length - a)^2 with a <- a + decay (mean length - a) are known in closed form."""
    torch.manual_seed(0)
    n, layers, w_dim, shape = 3, 4, 5, (2, 3, 3)
    A = torch.randn(layers * w_dim, math.prod(shape))
    ws = torch.randn(n, layers, w_dim, requires_grad=True)
    img = (ws.flatten(1) @ A).reshape(n, *shape)
    y = torch.randn(n, *shape)
    pl_mean = torch.tensor(0.7)
    penalty, lengths, new_mean = path_length_penalty(img, ws, y, pl_mean, decay=0.01)
    jt_y = (y.flatten(1) @ A.T).reshape(n, layers, w_dim)                 # A^T y per sample
    expected = jt_y.square().sum(2).mean(1).sqrt()
    torch.testing.assert_close(lengths, expected)
    expected_mean = 0.7 + 0.01 * (expected.mean() - 0.7)
    torch.testing.assert_close(new_mean, expected_mean)
    torch.testing.assert_close(penalty, (expected - expected_mean) ** 2)
    # A linear g has a constant Jacobian: the penalty does not depend on ws (and has no graph back to it).
    assert not penalty.requires_grad


def test_style_mixing_switches_styles_at_the_chosen_layer():
    G = _g(16)
    G.eval()
    z, z2 = torch.randn(2, 8), torch.randn(2, 8)
    with torch.no_grad():
        w1, w2 = G.map(z)[:, 0], G.map(z2)[:, 0]
        for cutoff in range(1, G.num_ws):
            _, ws = G(z, z_mix=z2, mix_cutoff=torch.tensor(cutoff), return_ws=True)
            torch.testing.assert_close(ws[:, :cutoff], w1[:, None].expand(-1, cutoff, -1))
            torch.testing.assert_close(ws[:, cutoff:], w2[:, None].expand(-1, G.num_ws - cutoff, -1))
        plain = G(z, noise_mode="const")
        no_mix = G(z, z_mix=z2, mix_cutoff=torch.tensor(G.num_ws), noise_mode="const")
        torch.testing.assert_close(plain, no_mix)
        assert not torch.allclose(G(z, z_mix=z2, mix_cutoff=torch.tensor(1), noise_mode="const"), plain)


def test_mixing_cutoff_distribution():
    """Probability 0.9 of mixing; the cutoff uniform over layers 1 .. num_ws - 1 (NVlabs loss.py)."""
    torch.manual_seed(0)
    cut = torch.stack([mixing_cutoff(u, 8, 0.9) for u in torch.rand(6000, 2)])
    assert (cut == 8).float().mean().item() == pytest.approx(0.1, abs=0.015)
    counts = torch.bincount(cut[cut < 8], minlength=8)[1:]
    assert counts.min() > 0 and (counts.float() / counts.sum() - 1 / 7).abs().max() < 0.02
    assert cut.min() >= 1


def test_w_average_is_tracked_in_training_only():
    G = _g()
    z = torch.randn(64, 8)
    G.train()
    w = G.mapping(z)
    torch.testing.assert_close(G.w_avg, w.detach().mean(0) * (1 - 0.995))    # lerp from 0 with beta 0.995
    before = G.w_avg.clone()
    G.eval()
    G.mapping(z)
    assert torch.equal(G.w_avg, before)


def test_truncation_psi_one_is_identity_and_zero_gives_the_average_image():
    G = _g(16)
    with torch.no_grad():
        G.mapping.w_avg.normal_()                                            # a non-trivial average
    from gankit.recipes.stylegan2 import StyleSampler
    s = StyleSampler(G)
    plain = s.draw(seeds=[0, 1, 2])
    torch.testing.assert_close(s.draw(seeds=[0, 1, 2], truncation=1.0), plain)
    zero = s.draw(seeds=[0, 1, 2, 3], truncation=0.0)
    avg_image = s.images_from_ws(G.w_avg[None, None].expand(1, G.num_ws, -1))
    for img in zero:                                                         # every seed: the same image
        torch.testing.assert_close(img, avg_image[0])
    half = s.ws_for(torch.randn(3, 8), None, 0.5)
    full = s.ws_for(torch.randn(3, 8), None, 1.0)
    assert half.shape == full.shape
    with pytest.raises(ConfigError, match="psi"):
        s.draw(seeds=[0], truncation=1.5)


def test_style_groups_and_parse():
    assert style_groups(14) == {"coarse": (0, 4), "middle": (4, 8), "fine": (8, 14)}   # 256 px
    assert parse_styles("2-5", 8) == (2, 6)
    with pytest.raises(ConfigError, match="coarse, middle, fine"):
        parse_styles("big", 8)
    with pytest.raises(ConfigError, match="layers 0..7"):
        parse_styles("3-9", 8)


# ---- recipe --------------------------------------------------------------------------------------------------

def test_phases_gamma_heuristic_and_lazy_correction():
    trainer, _ = build(resolve("stylegan2", overrides=TINY), torch.device("cpu"))
    r = trainer.recipe
    assert [(p.name, p.every, p.batch) for p in trainer.phases] == \
        [("D", 1, "new"), ("D_r1", 16, "last"), ("G", 1, "last"), ("G_pl", 4, "last")]
    assert r.r1_gamma == pytest.approx(r1_gamma_heuristic(16, 8)) == pytest.approx(0.0002 * 256 / 8)
    d, g = trainer.optimizers["D"].param_groups[0], trainer.optimizers["G"].param_groups[0]
    assert d["lr"] == pytest.approx(0.002 * 16 / 17) and d["betas"][1] == pytest.approx(0.99 ** (16 / 17))
    assert g["lr"] == pytest.approx(0.002 * 4 / 5) and g["betas"][1] == pytest.approx(0.99 ** (4 / 5))
    assert d["betas"][0] == 0
    fixed, _ = build(resolve("stylegan2", overrides={**TINY, "r1_gamma": 3.0}), torch.device("cpu"))
    assert fixed.recipe.r1_gamma == 3.0


def test_resume_is_bit_exact_with_ada_p_and_path_length_mean(tmp_path):
    """2N steps in one run == N, then resume to 2N: every weight, the EMA, both Adams, ADA's p and its sums, and
    the path-length mean (ada_kimg small and p starting at 0.5, so that p moves in a short run)."""
    over = {**TINY, "ada_kimg": 0.2, "ada_interval": 2, "ada_p": 0.5, "r1_interval": 3, "pl_interval": 2, "ema_kimg": 0.05}
    full = train(resolve("stylegan2-ada", overrides={**over, "kimg": 0.096}), out=tmp_path / "a", progress=False)
    half = train(resolve("stylegan2-ada", overrides={**over, "kimg": 0.048}), out=tmp_path / "b", progress=False)
    half_p = load_checkpoint(half / "latest.pt")["nets"]["augment.p"]           # before resume rewrites latest.pt
    resumed = train(resolve("stylegan2-ada", overrides={**over, "kimg": 0.096}), resume=half, progress=False,
                    resume_overrides={"kimg"})
    a, b = load_checkpoint(full / "latest.pt"), load_checkpoint(resumed / "latest.pt")
    assert a["nimg"] == b["nimg"] == 96 and a["step"] == b["step"] == 12
    for key in a["nets"]:
        assert torch.equal(a["nets"][key], b["nets"][key]), key
    for key in a["ema"]["G"]:
        assert torch.equal(a["ema"]["G"][key], b["ema"]["G"][key]), key
    for role in ("G", "D"):
        for idx, state in a["opt"][role]["state"].items():
            for k, v in state.items():
                assert torch.equal(torch.as_tensor(v), torch.as_tensor(b["opt"][role]["state"][idx][k]))
    assert a["nets"]["augment.p"] != 0.5, "p should have moved in this run"
    assert a["nets"]["pl_mean"] > 0
    assert half_p != 0.5 and not torch.equal(half_p, a["nets"]["augment.p"])    # p moved in both halves
    stats = [json.loads(line) for line in (full / "stats.jsonl").read_text().splitlines()]
    assert all("aug/p" in s and "G/pl_mean" in s for s in stats)             # p logged per tick


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("sg2")
    return train(resolve("stylegan2", overrides={**TINY, "kimg": 0.032, "ema_kimg": 0.01}), out=out,
                 progress=False)


def test_cli_sample_truncation_interpolate_mix_project(tiny_run, tmp_path, capsys):
    code, out, err = run_cli(["sample", "--ckpt", str(tiny_run), "--seeds", "0-3", "--truncation", "0",
                              "--out", str(tmp_path / "t0.npy")], capsys)
    assert code == 0, err
    import numpy as np
    t0 = np.load(tmp_path / "t0.npy")
    assert t0.shape == (4, 1, 16, 16) and np.allclose(t0, t0[:1], atol=1e-6)    # psi = 0: one image
    code, _, err = run_cli(["interpolate", "--ckpt", str(tiny_run), "--seeds", "1,2", "--mode", "linear",
                            "--steps", "4", "--out", str(tmp_path / "i.png")], capsys)
    assert code == 0, err
    code, out, err = run_cli(["mix", "--ckpt", str(tiny_run), "--rows", "1,2", "--cols", "3,4,5", "--styles",
                              "0-1", "--out", str(tmp_path / "mix.png")], capsys)
    assert code == 0, err
    from PIL import Image
    assert Image.open(tmp_path / "mix.png").size == (4 * 16 + 5 * 2, 3 * 16 + 4 * 2)   # (1+3) x (1+2) cells
    code, _, err = run_cli(["mix", "--ckpt", str(tiny_run), "--rows", "1", "--cols", "2", "--styles", "huge",
                            "--out", str(tmp_path / "bad.png")], capsys)
    assert code == 2 and "coarse, middle, fine" in err
    code, out, err = run_cli(["project", "--ckpt", str(tiny_run), "--target", str(tmp_path / "i.png"),
                              "--steps", "3", "--out", str(tmp_path / "proj")], capsys)
    assert code == 0, err
    assert {p.name for p in (tmp_path / "proj").iterdir()} == {"projected_w.npz", "proj.png", "target.png",
                                                               "losses.json"}
    code, _, err = run_cli(["project", "--ckpt", str(tiny_run), "--target", str(tmp_path / "i.png"),
                            "--steps", "3", "--out", str(tmp_path / "proj")], capsys)
    assert code == 2 and "never overwrites" in err


def test_mix_grid_cells_take_the_column_styles(tiny_run):
    s = load_sampler(tiny_run)
    grid = s.mix([1, 2], [3], styles="0-" + str(s.G.num_ws - 1))      # every style from the column seed
    # Layout: [blank, col3], [row1, cell(1,3)], [row2, cell(2,3)]: with all styles taken, cells = column image.
    torch.testing.assert_close(grid[3], grid[1])
    torch.testing.assert_close(grid[5], grid[1])
    none_taken = s.mix([1], [3], styles="0-0")
    assert not torch.allclose(none_taken[3], none_taken[1])


def test_projection_recovers_a_generated_image(tiny_run):
    """Projecting G's own image (pixel loss): the distance falls well below where it started."""
    s = load_sampler(tiny_run)
    target = s.draw(seeds=[7])
    result = s.project(target, steps=60, seed=0)
    assert result.ws.shape == (1, s.G.num_ws, s.G.w_dim)
    assert result.losses[-1] < 0.5 * result.losses[0]


def test_lpips_projection_with_random_vgg_weights_in_the_real_layout(tiny_run, tmp_path):
    from torchvision.models.vgg import cfgs, make_layers

    from gankit.projector import LPIPSDistance
    torch.manual_seed(0)
    features = make_layers(cfgs["D"])                                       # torchvision vgg16's .features
    torch.save({f"features.{k}": v for k, v in features.state_dict().items()}, tmp_path / "vgg16.pth")
    dist = LPIPSDistance(tmp_path / "vgg16.pth")
    torch.testing.assert_close(getattr(dist.lpips.net.slice3, "10").weight, features[10].weight)  # by index
    x = torch.rand(2, 1, 16, 16) * 2 - 1
    assert dist(x, x).abs().max() < 1e-6 and (dist(x, -x) > 0).all()
    s = load_sampler(tiny_run)
    result = s.project(s.draw(seeds=[3]), steps=2, vgg_weights=str(tmp_path / "vgg16.pth"))
    assert result.distance_name == "lpips-vgg16" and math.isfinite(result.losses[-1])
    torch.save({"conv.weight": torch.zeros(1)}, tmp_path / "wrong.pth")
    with pytest.raises(ConfigError, match="vgg16 state dict"):
        LPIPSDistance(tmp_path / "wrong.pth")


def test_conditional_stylegan2_trains_and_samples_per_class(tmp_path):
    cfg = resolve("stylegan2", overrides={**TINY, "conditional": True})
    trainer, dataset = build(cfg, torch.device("cpu"))
    trainer.train_step()
    G = trainer.recipe.nets["G"]
    assert G.num_classes == 10 and trainer.recipe.nets["D"].num_classes == 10
    stats = trainer.take_tick_stats()
    assert all(math.isfinite(v) for v in stats.values())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_matches_cpu_and_trains():
    G = _g(16).eval()
    D = discriminators.get("stylegan2")(in_channels=1, resolution=16, **SMALL).eval()
    z = torch.randn(4, 8)
    with torch.no_grad():
        ref = G(z, noise_mode="const")
        torch.testing.assert_close(G.cuda()(z.cuda(), noise_mode="const").cpu(), ref, atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(D.cuda()(ref.cuda()).cpu(), D.cpu()(ref), atol=1e-4, rtol=1e-4)
    trainer, _ = build(resolve("stylegan2-ada", overrides={**TINY, "device": "cuda"}), torch.device("cuda"))
    for _ in range(2):
        trainer.train_step()
    assert all(math.isfinite(v) for v in trainer.take_tick_stats().values())
    assert trainer.recipe.augment.p.device.type == "cuda"
