"""BigGAN-deep's discriminator (Brock et al. 2019, appendix B): bottleneck down-blocks, two per stage, a stem conv;
and BigGAN-deep G + D through the engine."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from gankit.engine import build, resolve
from gankit.errors import ConfigError
from gankit.nets import discriminators
from gankit.nets.resgan import D_PLAN, DEEP_D_PLAN, DeepDBlock


@pytest.mark.parametrize("resolution", [32, 64])
def test_deep_discriminator_shapes_two_blocks_per_stage(resolution):
    torch.manual_seed(0)
    ch = 4
    D = discriminators.get("biggan")(in_channels=1, resolution=resolution, num_classes=3, ch=ch, deep=True)
    c_in, c_out, down = DEEP_D_PLAN[resolution]
    assert len(D.blocks) == 2 * len(c_out)
    assert D.stem.weight.shape == (c_in[0] * ch, 1, 3, 3)
    x, y = torch.randn(2, 1, resolution, resolution), torch.tensor([0, 2])
    h, sides = D.stem(x), []
    for i, block in enumerate(D.blocks):
        stage, first = divmod(i, 2)[0], i % 2 == 0
        assert block.downsample == (down[stage] and first)              # only a stage's first block halves the side
        assert block.conv4.out_channels == c_out[stage] * ch
        assert block.conv1.out_channels == c_out[stage] * ch // 4       # bottleneck: C_out / 4
        h = block(h)
        sides.append(h.shape[-1])
    assert h.shape[1:] == (c_out[-1] * ch, 8 if resolution == 32 else 4, 8 if resolution == 32 else 4)
    assert D.attn_after == sides.index(16) + 1                          # attention closes the 16 px stage
    assert D(x, y).shape == (2,)
    plain = discriminators.get("biggan")(in_channels=1, resolution=resolution, num_classes=3, ch=ch)
    assert plain.stem is None and len(plain.blocks) == len(D_PLAN[resolution][1])     # one block per stage


def test_deep_d_block_matches_its_formula_and_grows_the_skip_by_concatenation():
    torch.manual_seed(0)
    block = DeepDBlock(8, 16, downsample=True, spectral_norm=False)
    with torch.no_grad():                      # unit-scale weights: default init leaves h nearly constant per map,
        for m in block.modules():              # so ReLU and pooling would commute and their order go unchecked
            if isinstance(m, torch.nn.Conv2d):
                m.weight.normal_()
    x = torch.randn(2, 8, 8, 8)
    conv = lambda m, h: F.conv2d(h, m.weight, m.bias, padding=m.padding)   # noqa: E731
    h = conv(block.conv1, F.relu(x))                                       # [2, 4, 8, 8]
    h = conv(block.conv3, F.relu(conv(block.conv2, F.relu(h))))
    h = conv(block.conv4, F.avg_pool2d(F.relu(h), 2))                      # ReLU before the pooling
    pooled = F.avg_pool2d(x, 2)
    skip = torch.cat([pooled, conv(block.skip, pooled)], dim=1)            # the first 8 channels are x itself
    torch.testing.assert_close(block(x), h + skip)
    assert block.skip.out_channels == 8
    with torch.no_grad():
        block.conv4.weight.zero_()
        block.conv4.bias.zero_()
    torch.testing.assert_close(block(x)[:, :8], pooled)                    # identity skip on the kept channels
    same = DeepDBlock(8, 8, downsample=False, spectral_norm=False)
    assert same.skip is None
    with torch.no_grad():
        same.conv4.weight.zero_()
        same.conv4.bias.zero_()
    torch.testing.assert_close(same(x), x)
    with pytest.raises(ConfigError, match="keep or widen"):
        DeepDBlock(16, 8, downsample=False)


def test_deep_d_has_spectral_norm_on_every_weight():
    D = discriminators.get("biggan")(in_channels=1, resolution=32, num_classes=2, ch=4, deep=True)
    convs = [m for m in D.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear, torch.nn.Embedding))]
    assert convs and all(hasattr(m, "parametrizations") for m in convs)


def test_biggan_deep_g_and_d_train_steps_through_the_engine():
    over = {"data.spec": "digits", "G.ch": 4, "D.ch": 4, "batch_size": 4, "opts.z_dim": 8, "G.shared_dim": 4,
            "G.deep": True, "G.hierarchical": False, "D.deep": True, "seed": 0}
    trainer, _ = build(resolve("biggan", overrides=over), torch.device("cpu"))
    G, D = trainer.recipe.nets["G"], trainer.recipe.nets["D"]
    assert G.deep and D.deep and D.stem is not None
    before = {k: v.detach().clone() for k, v in D.state_dict().items()}
    g_before = {k: v.detach().clone() for k, v in G.state_dict().items()}
    for _ in range(2):
        trainer.train_step()
    assert trainer.check_finite() is None
    assert any(not torch.equal(before[k], v) for k, v in D.state_dict().items() if k.startswith("stem"))
    assert any(not torch.equal(g_before[k], v) for k, v in G.state_dict().items() if "blocks.5" in k)
