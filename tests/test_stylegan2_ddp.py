"""StyleGAN2 under DDP: W ranks x batch B make the same update as one process x batch W B.

Everything random in a step goes through the StepContext (latents, the style-mixing cutoff, the per-layer noise
inputs, the path-length probe, ADA's draws), the path-length mean is taken over the global batch, the R1
heuristic uses the global batch, and minibatch-std groups are runs of consecutive rows. Noise strengths are set
non-zero first (they start at 0, when the noise inputs would not matter).
"""
import pytest
import torch

from dist_harness import run_world
from gankit.errors import ConfigError
from gankit.data.base import DataInfo
from gankit.engine import build, resolve
from gankit.engine.distributed import init_world, unwrap
from gankit.recipes.base import StepContext
from gankit.recipes.stylegan2 import StyleGAN2, StyleGAN2Options, r1_gamma_heuristic

TINY = {"data.spec": "digits", "data.resolution": 16, "z_dim": 16, "conditional": False,
        "G.channel_base": 64, "G.channel_max": 8, "D.channel_base": 64, "D.channel_max": 8,
        "G.mapping_layers": 2, "tick_kimg": 1.0, "snapshot_kimg": 1.0, "ema_kimg": 0.0,
        # ADA on (p 0.5, adapting every step, fast) so its draws and its all-reduce are part of the check
        "augment": "ada", "ada_p": 0.5, "ada_interval": 1, "ada_kimg": 0.1}


def _noisy(G):
    """Noise strengths 0.3 (identical on every rank): the noise inputs then change the images."""
    with torch.no_grad():
        for name, p in unwrap(G).named_parameters():
            if name.endswith("noise_strength"):
                p.fill_(0.3)


def _params(trainer):
    return {f"{n}.{k}": v.detach().clone() for n, net in trainer.recipe.nets.items()
            for k, v in unwrap(net).named_parameters()}


def _extra_state(trainer):
    r = trainer.recipe
    return {"pl_mean": r.pl_mean.clone(), "p": getattr(r.augment, "p", torch.zeros(())).clone()}


def _steps(rank, world_size, batch, steps):
    world = init_world("cpu")
    trainer, _ = build(resolve("stylegan2", overrides={**TINY, "batch_size": batch}), torch.device("cpu"),
                       world=world)
    _noisy(trainer.recipe.nets["G"])
    start = _params(trainer)
    after = []
    for _ in range(steps):
        trainer.train_step()
        after.append((_params(trainer), _extra_state(trainer)))
    return start, after, trainer.recipe.r1_gamma_for(world.world_size)


def test_two_ranks_x_batch_4_equal_one_process_x_batch_8(tmp_path):
    """Step 0 runs D, D_r1, G and G_pl (every phase); step 1 runs D and G with ADA's p adapted from the
    all-reduced sign sums."""
    (s0, after0, g0), (s1, after1, g1) = run_world(_steps, 2, tmp_path, 4, 2)
    trainer, _ = build(resolve("stylegan2", overrides={**TINY, "batch_size": 8}), torch.device("cpu"))
    _noisy(trainer.recipe.nets["G"])
    single_start = _params(trainer)
    single = []
    for _ in range(2):
        trainer.train_step()
        single.append((_params(trainer), _extra_state(trainer)))
    assert g0 == g1 == pytest.approx(trainer.recipe.r1_gamma) == pytest.approx(r1_gamma_heuristic(16, 8))
    for k in single_start:
        assert torch.equal(s0[k], s1[k]) and torch.equal(s0[k], single_start[k]), k
    # Step 1 compares looser: Adam with beta1 = 0 divides a gradient by its own running size, so where the
    # gradient nearly cancels (D's output bias) float-summation order (1e-7) shows as 1e-4 in the update.
    for step, atol in ((0, 1e-5), (1, 1e-3)):
        (a0, e0), (a1, e1), (one, one_extra) = after0[step], after1[step], single[step]
        for k in one:
            assert torch.equal(a0[k], a1[k]), (step, k)                            # the ranks agree
            torch.testing.assert_close(a0[k], one[k], rtol=1e-4, atol=atol, msg=f"step {step}: {k}")
        for k in one_extra:                                                        # pl_mean, ADA's p
            assert torch.equal(e0[k], e1[k]), (step, k)
            torch.testing.assert_close(e0[k], one_extra[k], rtol=1e-5, atol=1e-6, msg=f"step {step}: {k}")
    assert single[1][1]["p"] != 0.5 and single[0][1]["pl_mean"] != 0                # p adapted, pl ran
    assert any(not torch.equal(single[0][0][k], single_start[k]) for k in single_start if "noise_strength" in k)


# ---- the same property in one process: losses are a function of (batch, ctx draws) only ------------------------

def _tiny_recipe():
    trainer, _ = build(resolve("stylegan2", overrides={**TINY, "batch_size": 8, "augment": "none"}),
                             torch.device("cpu"))
    _noisy(trainer.recipe.nets["G"])
    return trainer.recipe


def _batch(n=8):
    torch.manual_seed(123)
    return {"image": torch.rand(n, 1, 16, 16) * 2 - 1, "label": torch.arange(n) % 10}


@pytest.mark.parametrize("loss_name", ["d_loss", "g_loss"])
def test_losses_split_over_fake_ranks_average_to_the_full_batch_loss(loss_name):
    """Rank r of 2 (a StepContext saying so, same RNG state) on rows [4 r, 4 r + 4): the mean of the two losses is
    the loss of the 8 rows. Fails if any draw bypasses ctx (G's own torch.randn noise, a per-rank mixing cutoff)."""
    recipe = _tiny_recipe()
    batch = _batch()
    loss = getattr(recipe, loss_name)
    torch.manual_seed(7)
    full = loss(batch, StepContext(step=1))["loss"]
    halves = []
    for rank in range(2):
        torch.manual_seed(7)
        part = {k: v[4 * rank:4 * rank + 4] for k, v in batch.items()}
        halves.append(loss(part, StepContext(step=1, rank=rank, world_size=2))["loss"])
    torch.testing.assert_close((halves[0] + halves[1]) / 2, full, rtol=1e-5, atol=1e-6)


def test_training_images_use_the_ctx_noise_inputs():
    """G with explicit noise= is deterministic; each layer's noise input changes the image; without noise= a
    training-mode G still draws its own (sampling keeps its seeded behaviour)."""
    recipe = _tiny_recipe()
    G = recipe.nets["G"]
    assert G.noise_shapes == [(1, 4, 4), (1, 8, 8), (1, 8, 8), (1, 16, 16), (1, 16, 16)]
    z = torch.randn(3, 16)
    noise = [torch.randn(3, *s) for s in G.noise_shapes]
    a, b = G(z, noise=noise), G(z, noise=[n.clone() for n in noise])
    assert torch.equal(a, b)
    for i in range(len(noise)):
        other = [n.clone() for n in noise]
        other[i] = torch.randn_like(other[i])
        assert not torch.allclose(G(z, noise=other), a), i
    assert not torch.allclose(G(z), G(z))                                   # random mode draws fresh noise
    with pytest.raises(ValueError, match="expected 5 tensors"):
        G(z, noise=noise[:2])


# ---- conditioning follows the data; R1 heuristic on the global batch ---------------------------------------------

def test_conditional_auto_follows_the_data_labels(tmp_path):
    labelled, _ = build(resolve("stylegan2", overrides={**TINY, "batch_size": 4, "conditional": "auto"}),
                        torch.device("cpu"))
    assert labelled.recipe.num_classes == 10
    assert unwrap(labelled.recipe.nets["G"]).num_classes == 10 and unwrap(labelled.recipe.nets["D"]).num_classes == 10
    off, _ = build(resolve("stylegan2", overrides={**TINY, "batch_size": 4, "conditional": False}),
                   torch.device("cpu"))
    assert off.recipe.num_classes == 0 and unwrap(off.recipe.nets["G"]).num_classes == 0
    # auto is the preset default (no conditional override at all)
    over = {k: v for k, v in TINY.items() if k != "conditional"}
    default, _ = build(resolve("stylegan2-ada", overrides={**over, "batch_size": 4}), torch.device("cpu"))
    assert default.recipe.num_classes == 10

    # An unlabelled folder of images: auto trains unconditionally, conditional=true is refused naming the choices.
    from PIL import Image
    folder = tmp_path / "faces"
    folder.mkdir()
    for i in range(8):
        Image.fromarray((torch.rand(16, 16) * 255).byte().numpy(), mode="L").save(folder / f"{i}.png")
    over = {**over, "data.spec": str(folder), "batch_size": 4}
    unlabelled, _ = build(resolve("stylegan2", overrides=over), torch.device("cpu"))
    assert unlabelled.recipe.num_classes == 0 and unwrap(unlabelled.recipe.nets["G"]).num_classes == 0
    unlabelled.train_step()
    with pytest.raises(ConfigError, match="needs class labels.*auto or false"):
        build(resolve("stylegan2", overrides={**over, "conditional": True}), torch.device("cpu"))
    with pytest.raises(ConfigError, match="auto, true or false"):
        StyleGAN2Options(conditional="yes")


def test_r1_gamma_heuristic_uses_the_global_batch():
    recipe = _tiny_recipe()
    assert recipe.r1_gamma_for(1) == pytest.approx(0.0002 * 16 ** 2 / 8)
    assert recipe.r1_gamma_for(4) == pytest.approx(0.0002 * 16 ** 2 / 32)      # batch 8 per rank x 4 ranks
    batch = _batch()
    torch.manual_seed(0)
    one = recipe.r1_loss(batch, StepContext())
    torch.manual_seed(0)
    four = recipe.r1_loss(batch, StepContext(rank=0, world_size=4))
    torch.testing.assert_close(four["loss"], one["loss"] / 4)
    fixed = StyleGAN2.from_config(resolve("stylegan2", overrides={**TINY, "batch_size": 8, "r1_gamma": 3.0}),
                                  DataInfo(kind="image", name="d", size=100, channels=1, resolution=16, num_classes=10))
    assert fixed.r1_gamma_for(1) == fixed.r1_gamma_for(8) == 3.0
