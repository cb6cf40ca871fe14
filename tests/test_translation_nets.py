"""Translation networks: U-Net depth and skips, PatchGAN receptive field, ResNet block rule, resolution checks."""
import pytest
import torch
from torch import nn

from gankit.errors import ConfigError
from gankit.nets import discriminators, generators, make_net
from gankit.nets.patchgan import (TRANSLATION_RESOLUTIONS, PatchGANDiscriminator, auto_patch_layers,
                                  receptive_field_formula)
from gankit.nets.resnet import ResnetGenerator
from gankit.nets.unet import UNetGenerator, unet_depth


def test_registered_with_kinds():
    assert generators.get("unet").kind == "translator"
    assert generators.get("resnet").kind == "translator"
    assert discriminators.get("patchgan").kind == "patch"


# ---- U-Net --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("resolution", TRANSLATION_RESOLUTIONS)
def test_unet_skip_shapes_at_each_depth(resolution):
    ngf = 2
    G = UNetGenerator(in_channels=3, out_channels=1, resolution=resolution, ngf=ngf)
    depth = {32: 5, 64: 6, 128: 7, 256: 8}[resolution]  # log2(resolution): a 1 x 1 bottleneck
    assert G.num_downs == depth and G.size_multiple == resolution
    x = torch.randn(2, 3, resolution, resolution)
    skips = G.encode(x)
    assert len(skips) == depth
    for i, s in enumerate(skips):
        side = resolution // 2 ** (i + 1)
        assert s.shape == (2, ngf * min(2 ** i, 8), side, side), i
    assert skips[-1].shape[-1] == 1
    # Decoder layer j (j > 0) reads its input concatenated with the skip of its level: twice the channels.
    for j, layer in enumerate(G.up):
        conv = next(m for m in layer if isinstance(m, nn.ConvTranspose2d))
        level = depth - 1 - j
        assert conv.in_channels == G.channels[level] * (1 if j == 0 else 2)
    y = G(x)
    assert y.shape == (2, 1, resolution, resolution)
    assert y.abs().max() <= 1


def test_unet_paper_channels_at_256():
    # Isola et al. 2017, appendix 6.1.1: encoder C64-C128-C256-C512-C512-C512-C512-C512.
    G = UNetGenerator(3, 3, 256)
    assert G.channels == [64, 128, 256, 512, 512, 512, 512, 512]
    # Decoder CD512-CD1024-CD1024-C1024-C1024-C512-C256-C128 (input channels after concatenation).
    in_ch = [next(m for m in l if isinstance(m, nn.ConvTranspose2d)).in_channels for l in G.up]
    assert in_ch == [512, 1024, 1024, 1024, 1024, 512, 256, 128]
    # The authors' code reports "[Network G] Total number of parameters : 54.414 M" for unet_256.
    assert round(sum(p.numel() for p in G.parameters()) / 1e6, 3) == 54.414


def test_unet_dropout_only_in_innermost_decoder_layers_and_only_in_training():
    G = UNetGenerator(1, 1, 64, ngf=4)
    has_dropout = [any(isinstance(m, nn.Dropout) for m in layer) for layer in G.up]
    assert has_dropout == [True, True, True, False, False, False]
    assert all(m.p == 0.5 for m in G.modules() if isinstance(m, nn.Dropout))
    x = torch.randn(4, 1, 64, 64)
    G.train()
    torch.manual_seed(0)
    a = G(x)
    torch.manual_seed(1)
    b = G(x)
    assert not torch.allclose(a, b)  # dropout is the noise (paper sec. 3.1)
    G.eval()
    assert torch.equal(G(x), G(x))


def test_unet_takes_any_multiple_of_its_size_at_inference():
    G = UNetGenerator(1, 3, 32, ngf=2).eval()
    assert G(torch.randn(1, 1, 64, 96)).shape == (1, 3, 64, 96)
    with pytest.raises(ValueError, match="multiples of 32"):
        G(torch.randn(1, 1, 48, 32))


@pytest.mark.parametrize("bad", [16, 48, 100, 512])
def test_invalid_resolution_names_valid_ones(bad):
    for make in (lambda: UNetGenerator(3, 3, bad), lambda: ResnetGenerator(3, 3, bad),
                 lambda: PatchGANDiscriminator(6, bad)):
        with pytest.raises(ConfigError, match="32, 64, 128, 256"):
            make()
    with pytest.raises(ConfigError):
        unet_depth(bad)


def test_bad_norm_names_choices():
    with pytest.raises(ConfigError, match="batch, instance, none"):
        UNetGenerator(3, 3, 32, norm="layer")


# ---- PatchGAN -----------------------------------------------------------------------------------------------

def test_patchgan_receptive_field_formula():
    # rf <- rf * stride + (k - stride), walked back from one output unit: 70 x 70 at n_layers = 3 (paper).
    assert [receptive_field_formula(n) for n in (1, 2, 3, 4)] == [16, 34, 70, 142]
    assert PatchGANDiscriminator(6, 256, ndf=4).receptive_field() == 70
    for n in (1, 2, 3):
        assert PatchGANDiscriminator(6, 256, ndf=4, n_layers=n).receptive_field() == receptive_field_formula(n)


def test_patchgan_auto_layers_keep_patch_fraction():
    assert {r: auto_patch_layers(r) for r in TRANSLATION_RESOLUTIONS} == {32: 1, 64: 1, 128: 2, 256: 3}
    for r in (64, 128, 256):  # about 28 % of the side, and the paper's 30 x 30 map
        D = PatchGANDiscriminator(2, r, ndf=4)
        assert 0.25 <= D.receptive_field() / r <= 0.28
        assert D(torch.randn(1, 2, r, r)).shape == (1, 1, 30, 30)
    assert PatchGANDiscriminator(2, 32, ndf=4)(torch.randn(3, 2, 32, 32)).shape == (3, 1, 14, 14)


@pytest.mark.parametrize("n_layers", [1, 2, 3])
def test_patchgan_empirical_receptive_field(n_layers):
    """The set of input pixels that reach one output unit is a square of side rf(n_layers)."""
    torch.manual_seed(0)
    D = PatchGANDiscriminator(1, 128, ndf=4, n_layers=n_layers, norm="batch").eval()  # eval: no batch coupling
    x = torch.randn(1, 1, 128, 128, requires_grad=True)
    out = D(x)                                                 # [1, 1, h, w]
    h, w = out.shape[-2:]
    out[0, 0, h // 2, w // 2].backward()
    rows = x.grad[0, 0].abs().sum(1).nonzero()
    cols = x.grad[0, 0].abs().sum(0).nonzero()
    assert int(rows.max() - rows.min() + 1) == receptive_field_formula(n_layers)
    assert int(cols.max() - cols.min() + 1) == receptive_field_formula(n_layers)


def test_patchgan_first_layer_has_no_norm():
    D = PatchGANDiscriminator(6, 256, ndf=4, norm="instance")
    assert isinstance(D.main[0], nn.Conv2d) and isinstance(D.main[1], nn.LeakyReLU)
    assert sum(isinstance(m, nn.InstanceNorm2d) for m in D.modules()) == 3  # layers 2, 3 and the stride-1 one


# ---- ResNet -------------------------------------------------------------------------------------------------

def test_resnet_block_count_rule():
    # Zhu et al. 2017, appendix 7.2: 6 blocks for 128 x 128 and below, 9 for 256 x 256.
    counts = {r: ResnetGenerator(1, 1, r, ngf=2).n_blocks for r in TRANSLATION_RESOLUTIONS}
    assert counts == {32: 6, 64: 6, 128: 6, 256: 9}
    G = ResnetGenerator(1, 1, 256, ngf=2)
    from gankit.nets.resnet import ResnetBlock
    assert sum(isinstance(m, ResnetBlock) for m in G.modules()) == 9
    assert ResnetGenerator(1, 1, 64, ngf=2, n_blocks=3).n_blocks == 3


def test_resnet_shapes_mixed_channels_and_reflection_padding():
    G = ResnetGenerator(in_channels=1, out_channels=3, resolution=32, ngf=4)
    y = G(torch.randn(2, 1, 32, 32))
    assert y.shape == (2, 3, 32, 32) and y.abs().max() <= 1
    # Every stride-1 convolution is padded by a ReflectionPad2d in front of it, none by zeros.
    stride1 = [m for m in G.modules() if isinstance(m, nn.Conv2d) and m.stride == (1, 1)]
    assert len(stride1) == 2 + 2 * 6 and all(m.padding == (0, 0) for m in stride1)
    assert sum(isinstance(m, nn.ReflectionPad2d) for m in G.modules()) == len(stride1)
    assert G(torch.randn(1, 1, 36, 44)).shape == (1, 3, 36, 44)  # any multiple of 4 at inference


def test_make_net_injects_interface_and_rejects_hand_set_interface():
    G = make_net("G", "unet", {"ngf": 2}, {"in_channels": 1, "out_channels": 3, "resolution": 32}, "G")
    assert G(torch.randn(1, 1, 32, 32)).shape == (1, 3, 32, 32)
    with pytest.raises(ConfigError, match="come from the data"):
        make_net("D", "patchgan", {"resolution": 64}, {"in_channels": 4, "resolution": 32}, "D")
