"""Class-conditional ProGAN: the one-hot label joins z in G (official code), a projection term in D, growth and
per-class sampling unchanged."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from gankit.engine import build, resolve
from gankit.errors import ConfigError
from gankit.nets import discriminators, generators
from gankit.nets.progan import pixel_norm


def test_generator_latent_is_the_pixel_normed_z_and_one_hot_label():
    torch.manual_seed(0)
    G = generators.get("progan")(z_dim=6, out_channels=1, resolution=8, fmap_base=32, fmap_max=8, num_classes=3)
    z, y = torch.randn(4, 6), torch.tensor([0, 2, 1, 2])
    expected = pixel_norm(torch.cat([z, F.one_hot(y, 3).float()], dim=1))           # [4, 9], normalised together
    torch.testing.assert_close(G.latent(z, y), expected)
    assert G.dense.weight.shape[1] == 9
    same_z = z[:1].expand(3, 6)
    out = G(same_z, torch.arange(3))
    assert not torch.allclose(out[0], out[1]) and not torch.allclose(out[1], out[2])  # the label steers G
    with pytest.raises(ConfigError):
        G(z)                                                                          # a label is required
    plain = generators.get("progan")(z_dim=6, out_channels=1, resolution=8, fmap_base=32, fmap_max=8)
    torch.testing.assert_close(plain.latent(z, y), pixel_norm(z))                    # unconditional ignores it


def test_discriminator_adds_the_projection_of_its_last_hidden_layer():
    torch.manual_seed(0)
    D = discriminators.get("progan")(in_channels=1, resolution=8, fmap_base=32, fmap_max=8, num_classes=3)
    D.grow_to(1)
    D.set_alpha(0.5)
    x, y = torch.randn(4, 1, 8, 8), torch.tensor([0, 2, 1, 1])
    phi = D.features(x)                                                               # [4, head_width]
    expected = D.blocks[0][2](phi).reshape(4) + (D.embed.weight[y] * phi).sum(dim=1)  # psi(phi) + <V_y, phi>
    torch.testing.assert_close(D(x, y), expected)
    with torch.no_grad():
        D.embed.weight.zero_()
    score = D(x, y)
    torch.testing.assert_close(score, D(x, torch.tensor([1, 1, 0, 2])))              # zero V: label-blind


def test_conditional_progan_trains_across_a_growth_step_and_samples_each_class():
    over = {"data.spec": "digits", "data.resolution": 8, "batch_size": 8, "opts.z_dim": 8, "opts.conditional": True,
            "G.fmap_base": 32, "G.fmap_max": 8, "D.fmap_base": 32, "D.fmap_max": 8,
            "stable_kimg": 0.016, "fade_kimg": 0.016, "kimg": 0.04, "ema_kimg": 0.01, "seed": 0}
    trainer, _ = build(resolve("progan", overrides=over), torch.device("cpu"))
    recipe = trainer.recipe
    assert recipe.plain("G").num_classes == 10 and recipe.plain("D").embed is not None
    for _ in range(3):                                    # 2 steps x 8 images at 4x4, then the fade to 8x8
        trainer.train_step()
    assert recipe.stage == 1 and trainer.check_finite() is None
    G = recipe.plain("G").eval()
    z = torch.randn(2, 8)
    with torch.no_grad():
        a, b = G(z, torch.tensor([3, 3])), G(z, torch.tensor([7, 7]))
    assert a.shape == (2, 1, 8, 8) and not torch.allclose(a, b)
    with pytest.raises(ConfigError, match="class labels"):
        build(resolve("progan", overrides={**over, "data.labels": False}), torch.device("cpu"))
