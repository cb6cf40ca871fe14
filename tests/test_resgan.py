"""SNGAN / SAGAN / BigGAN: spectral norm, conditional batch norm, self-attention, hierarchical z, orthogonal
regularisation, truncation with resampling, BigGAN-deep, and the presets through the engine."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from scipy.stats import truncnorm
from torch import nn

from gankit.engine import build, resolve
from gankit.errors import ConfigError
from gankit.nets import discriminators, generators
from gankit.nets.resgan import ConditionalBatchNorm2d, SelfAttention, orthogonal_penalty
from gankit.recipes.biggan import TruncatedNoiseSampler, truncated_latents, truncated_normal


def _sn_sigma(module: nn.Module) -> float:
    """Largest singular value of the weight the module really uses (W / sigma_hat), as a matrix [out, -1]."""
    w = module.weight.detach()
    return float(torch.linalg.matrix_norm(w.reshape(w.shape[0], -1), ord=2))


def test_spectral_norm_gives_unit_largest_singular_value():
    torch.manual_seed(0)
    D = discriminators.get("sngan")(in_channels=1, resolution=32, num_classes=3, ch=4)
    x, y = torch.randn(4, 1, 32, 32), torch.tensor([0, 1, 2, 0])
    for _ in range(5):                      # one power iteration per training-mode forward
        D(x, y)
    layers = [m for m in D.modules() if isinstance(m, (nn.Conv2d, nn.Linear, nn.Embedding))]
    assert len(layers) >= 10
    for m in layers:
        assert hasattr(m, "parametrizations"), f"{m} is not spectrally normalised"
        sn = m.parametrizations.weight[0]
        with torch.no_grad():               # more power iterations (close top singular values converge slowly)
            sn._power_method(sn._reshape_weight_to_matrix(m.parametrizations.weight.original), 200)
        assert _sn_sigma(m) == pytest.approx(1.0, abs=0.005)
    # Without spectral norm (SNGAN's G) the same layers are far from 1: the test can tell.
    G = generators.get("sngan")(z_dim=8, out_channels=1, resolution=32, ch=4)
    sigmas = [_sn_sigma(m) for m in G.modules() if isinstance(m, nn.Conv2d)]
    assert max(abs(s - 1) for s in sigmas) > 0.1


def test_categorical_conditional_batch_norm_uses_the_class_embedding():
    torch.manual_seed(0)
    cbn = ConditionalBatchNorm2d(3, num_classes=4)
    with torch.no_grad():
        cbn.gain.weight.copy_(torch.arange(12.).view(4, 3) / 10)
        cbn.bias.weight.copy_(-torch.arange(12.).view(4, 3))
    x, y = torch.randn(5, 3, 2, 2) * 3 + 1, torch.tensor([0, 1, 2, 3, 1])
    mean, var = x.mean(dim=(0, 2, 3), keepdim=True), x.var(dim=(0, 2, 3), unbiased=False, keepdim=True)
    x_hat = (x - mean) / torch.sqrt(var + 1e-5)
    expected = (1 + cbn.gain.weight[y])[:, :, None, None] * x_hat + cbn.bias.weight[y][:, :, None, None]
    torch.testing.assert_close(cbn(x, y), expected, rtol=1e-5, atol=1e-5)


def test_linear_conditional_batch_norm_maps_the_condition_vector():
    torch.manual_seed(0)
    cbn = ConditionalBatchNorm2d(3, cond_dim=2)
    x, c = torch.randn(4, 3, 2, 2), torch.randn(4, 2)
    x_hat = F.batch_norm(x, None, None, training=True, eps=1e-5)
    gain, bias = c @ cbn.gain.weight.t(), c @ cbn.bias.weight.t()
    torch.testing.assert_close(cbn(x, c), (1 + gain)[:, :, None, None] * x_hat + bias[:, :, None, None])


def test_generator_shared_embedding_changes_only_its_class():
    torch.manual_seed(0)
    G = generators.get("biggan")(z_dim=8, out_channels=1, resolution=32, num_classes=3, ch=4, attention=0).eval()
    z, y = torch.randn(3, 8), torch.tensor([0, 1, 2])
    with torch.no_grad():
        before = G(z, y)
        G.shared.weight[1] += 1.0
        after = G(z, y)
    assert torch.equal(before[0], after[0]) and torch.equal(before[2], after[2])
    assert not torch.allclose(before[1], after[1])


def test_self_attention_is_the_identity_at_gamma_zero_and_matches_its_formula():
    torch.manual_seed(0)
    attn = SelfAttention(16, spectral_norm=False)
    x = torch.randn(2, 16, 4, 6)
    assert attn.gamma.item() == 0.0                       # Zhang et al. 2019: gamma initialised as 0
    assert torch.equal(attn(x), x)
    with torch.no_grad():
        attn.gamma.fill_(0.7)
    # The formula written out per query position j: o_j = W_v sum_i softmax_i(f_j . g_i) h_i (keys pooled 2x2).
    f = attn.theta(x).flatten(2)                                         # [N, 2, 24]
    g = F.max_pool2d(attn.phi(x), 2).flatten(2)                          # [N, 2, 6]
    h = F.max_pool2d(attn.g(x), 2).flatten(2)                            # [N, 8, 6]
    out = torch.empty(2, 8, 24)
    for j in range(24):
        weights = torch.softmax(torch.einsum("nc,nci->ni", f[:, :, j], g), dim=1)   # over keys i
        out[:, :, j] = torch.einsum("ni,nci->nc", weights, h)
    expected = x + 0.7 * attn.o(out.reshape(2, 8, 4, 6))
    torch.testing.assert_close(attn(x), expected, rtol=1e-5, atol=1e-5)


def test_attention_networks_start_as_their_plain_counterparts():
    """gamma = 0 everywhere: SAGAN's D scores like the same D without the attention block."""
    torch.manual_seed(0)
    with_attn = discriminators.get("sagan")(in_channels=1, resolution=32, ch=4, spectral_norm=False).eval()
    torch.manual_seed(0)
    plain = discriminators.get("sagan")(in_channels=1, resolution=32, ch=4, spectral_norm=False, attention=0).eval()
    plain.load_state_dict({k: v for k, v in with_attn.state_dict().items() if not k.startswith("attn.")})
    x = torch.randn(3, 1, 32, 32)
    torch.testing.assert_close(with_attn(x), plain(x))
    with pytest.raises(ConfigError, match="valid: 8, 16 "):
        discriminators.get("sagan")(in_channels=1, resolution=32, attention=64)


def _record_conditions(G: nn.Module) -> list[torch.Tensor]:
    seen: list[torch.Tensor] = []
    for block in G.blocks:
        block.register_forward_hook(lambda m, args, out: seen.append(args[1].detach().clone()))
    return seen


def test_hierarchical_z_chunks_reach_their_blocks():
    torch.manual_seed(0)
    G = generators.get("biggan")(z_dim=12, out_channels=1, resolution=32, num_classes=2, ch=4, shared_dim=5).eval()
    assert G.num_chunks == 4 and G.chunk == 3          # 3 blocks at 32 px + the input
    seen = _record_conditions(G)
    z, y = torch.randn(2, 12), torch.tensor([0, 1])
    with torch.no_grad():
        G(z, y)
    shared = G.shared(y)
    for b, cond in enumerate(seen):                      # block b: [shared(y), z chunk b+1]
        torch.testing.assert_close(cond, torch.cat([shared, z[:, 3 * (b + 1):3 * (b + 2)]], dim=1))
    # The first chunk goes to the linear layer only: changing it leaves every block's condition as it was.
    seen.clear()
    z2 = z.clone()
    z2[:, :3] += 1
    with torch.no_grad():
        G(z2, y)
    first = seen[:3]
    assert all(torch.equal(a, b) for a, b in zip(first, [torch.cat([shared, z[:, 3 * (b + 1):3 * (b + 2)]], 1)
                                                          for b in range(3)]))
    with pytest.raises(ConfigError, match="multiple of 4"):
        generators.get("biggan")(z_dim=10, out_channels=1, resolution=32)


def test_biggan_deep_feeds_z_whole_to_every_block():
    torch.manual_seed(0)
    G = generators.get("biggan")(z_dim=6, out_channels=3, resolution=32, num_classes=2, ch=4, shared_dim=3,
                                 deep=True, hierarchical=False).eval()
    assert len(G.blocks) == 6                            # two bottleneck blocks per resolution
    seen = _record_conditions(G)
    z, y = torch.randn(2, 6), torch.tensor([1, 0])
    with torch.no_grad():
        out = G(z, y)
    assert out.shape == (2, 3, 32, 32)
    for cond in seen:
        torch.testing.assert_close(cond, torch.cat([G.shared(y), z], dim=1))
    with pytest.raises(ConfigError, match="does not split z"):
        generators.get("biggan")(z_dim=8, out_channels=1, resolution=32, deep=True, hierarchical=True)


def test_orthogonal_penalty_is_the_off_diagonal_form():
    # Orthogonal rows of norms 2 and 3: zero here, while the full ||W W^T - I||^2 would penalise the norms.
    w = torch.tensor([[2.0, 0.0, 0.0], [0.0, 3.0, 0.0]])
    assert orthogonal_penalty(w).item() == 0.0
    assert ((w @ w.t() - torch.eye(2)) ** 2).sum().item() == pytest.approx(9 + 64)
    torch.manual_seed(0)
    conv = torch.randn(4, 2, 3, 3)
    rows = conv.reshape(4, -1)
    expected = sum(float(rows[i] @ rows[j]) ** 2 for i in range(4) for j in range(4) if i != j)
    assert orthogonal_penalty(conv).item() == pytest.approx(expected, rel=1e-5)


def test_biggan_g_loss_adds_beta_times_the_penalty_without_the_shared_embedding():
    over = {"data.spec": "digits", "G.ch": 4, "D.ch": 4, "batch_size": 4, "opts.z_dim": 8, "G.shared_dim": 4}
    trainer, _ = build(resolve("biggan", overrides=over), torch.device("cpu"))
    recipe = trainer.recipe
    G = recipe.nets["G"]
    expected = sum(orthogonal_penalty(p) for n, p in G.named_parameters() if p.dim() >= 2 and not n.startswith("shared"))
    torch.testing.assert_close(recipe.orthogonal_regularisation(), expected)
    batch = {"image": torch.rand(4, 1, 32, 32) * 2 - 1, "label": torch.tensor([0, 1, 2, 3])}
    from gankit.recipes.base import StepContext
    torch.manual_seed(3)
    with_reg = recipe.g_loss(batch, StepContext())
    torch.manual_seed(3)
    recipe.opts.ortho_beta = 0.0
    without = recipe.g_loss(batch, StepContext())
    torch.testing.assert_close(with_reg["loss"] - without["loss"], 1e-4 * with_reg["G/ortho"])


def test_truncation_resamples_and_never_exceeds_the_threshold():
    z = truncated_normal((20000, 8), 0.5, torch.Generator().manual_seed(0))
    assert z.abs().max() <= 0.5
    assert (z.abs() == 0.5).sum() == 0                   # resampled, not clamped onto the bound
    # The truncated normal's moments (scipy): a clamp or a rescale would give other ones.
    assert z.abs().mean().item() == pytest.approx(truncnorm(0, 0.5).mean(), abs=0.005)
    assert z.std().item() == pytest.approx(truncnorm(-0.5, 0.5).std(), abs=0.005)
    # One latent per seed, whatever else is asked for.
    a = truncated_latents(None, 8, 1.0, seeds=[3, 5])
    b = truncated_latents(None, 8, 1.0, seeds=[5])
    assert torch.equal(a[1], b[0])
    with pytest.raises(ConfigError, match="> 0"):
        truncated_normal((2,), 0.0)


def test_truncated_sampler_feeds_bounded_latents_and_is_plain_without_truncation():
    torch.manual_seed(0)
    G = generators.get("biggan")(z_dim=8, out_channels=1, resolution=32, num_classes=2, ch=4, attention=0)
    seen = []
    G.register_forward_pre_hook(lambda m, args: seen.append(args[0].clone()))
    sampler = TruncatedNoiseSampler(G)
    out = sampler.draw(n=6, seed=1, truncation=0.3)
    assert out.shape == (6, 1, 32, 32) and seen[-1].abs().max() <= 0.3
    from gankit.samplers import NoiseSampler
    torch.testing.assert_close(sampler.draw(n=4, seed=2), NoiseSampler(G).draw(n=4, seed=2))
    assert sampler.check_options({"truncation": 0.5}) == {"truncation": 0.5}
    with pytest.raises(ConfigError, match="does not apply"):
        NoiseSampler(G).check_options({"truncation": 0.5})


def test_biggan_cli_train_sample_with_truncation_and_eval_flags(tmp_path, capsys):
    from gankit.cli import main
    from helpers import run_cli
    main(["train", "--preset", "biggan", "--data", "digits", "--kimg", "0.016", "--batch", "4", "--set", "G.ch=4",
          "--set", "D.ch=4", "--set", "G.shared_dim=4", "--set", "opts.z_dim=8", "--set", "snapshot_n=10",
          "--set", "ema_start_kimg=0.008", "--set", "ema_kimg=0.004", "--out", str(tmp_path), "--quiet"])
    run = next(tmp_path.iterdir())
    main(["sample", "--ckpt", str(run), "--n", "10", "--truncation", "0.4", "--label", "2",
          "--out", str(tmp_path / "t.npy")])
    import numpy as np
    samples = np.load(tmp_path / "t.npy")
    assert samples.shape == (10, 1, 32, 32) and np.abs(samples).max() <= 1
    code, _, err = run_cli(["eval", "--ckpt", str(run), "--metrics", "truncation_curve", "--truncations", "1,x"],
                           capsys)
    assert code == 2 and "--truncations takes comma-separated numbers" in err
