"""The presets' values for vector data (2-D toys): picked for vector data only, under the user's overrides, and
a short run with them covers ring8's modes where the untrained generator covers almost none."""
import pytest
import torch

import gankit
from gankit.config import TrainConfig
from gankit.engine import resolve
from gankit.data.toys import ring_centers
from gankit.metrics.toy import toy_metrics
from gankit.presets import PRESETS

NOISE_PRESETS = [name for name, p in PRESETS.items() if p["recipe"] == "gan"]


@pytest.mark.parametrize("preset", NOISE_PRESETS)
def test_every_noise_preset_has_toy_values_for_vector_data_only(preset):
    toy = resolve(preset, overrides={"data.spec": "grid25"})
    image = resolve(preset)  # the default data, digits, is image data
    assert toy.opts["z_dim"] == 2                                   # the papers' 2-D latent
    assert image.opts.get("z_dim", 100) == PRESETS[preset]["opts"].get("z_dim", 100)  # untouched for images
    assert toy.kimg >= 50 * image.kimg                              # toys need far more (cheap) steps
    assert toy.snapshot_kimg > 100 * image.snapshot_kimg            # ... and only a handful of snapshots
    assert toy.kimg / toy.snapshot_kimg <= 8
    assert image.kimg == PRESETS[preset]["kimg"] and image.batch_size == PRESETS[preset]["batch_size"]
    # The preset's own values that the toy values do not mention stay (loss, optimiser kind, critic norm).
    assert toy.opts["loss"] == image.opts["loss"] and toy.opt["G"].name == image.opt["G"].name
    assert toy.D.vector_kwargs.get("norm") == image.D.vector_kwargs.get("norm")


def test_wgan_gp_toy_values_and_image_values():
    toy = resolve("wgan-gp", overrides={"data.spec": "grid25"})
    image = resolve("wgan-gp")
    # Gulrajani et al. 2017, gan_toy.py: lambda 0.1 on the toys, 10 on images; 5 critic steps in both.
    assert (toy.opts["gp_weight"], image.opts["gp_weight"]) == (0.1, 10.0)
    assert toy.d_steps == image.d_steps == 5
    assert toy.G.vector_kwargs == {"norm": "none"} and image.G.vector_kwargs == {}
    assert toy.D.vector_kwargs == image.D.vector_kwargs == {"norm": "none"}
    assert tuple(image.opt["G"].betas) == (0.0, 0.9) and image.opt["G"].lr == 1e-4
    assert toy.ema_kimg > 0 and image.ema_kimg == TrainConfig().ema_kimg


def test_user_values_beat_the_toy_values():
    cfg = resolve("gan", overrides={"data.spec": "ring8", "opts.z_dim": 3, "batch_size": 32, "G.vector_kwargs.norm": "batch",
                                    "opt.G.lr": 1e-4, "kimg": 5})
    assert (cfg.opts["z_dim"], cfg.batch_size, cfg.G.vector_kwargs["norm"], cfg.opt["G"].lr, cfg.kimg) == \
        (3, 32, "batch", 1e-4, 5.0)
    assert cfg.opts["r1_gamma"] == resolve("gan", overrides={"data.spec": "ring8"}).opts["r1_gamma"] > 0


def test_short_gan_run_covers_ring8(tmp_path):
    """1200 steps of the gan preset's toy values (6% of its default length) find all 8 modes, evenly."""
    cfg = resolve("gan", overrides={"data.spec": "ring8", "kimg": 153.6, "snapshot_kimg": 153.6, "tick_kimg": 153.6,
                                    "snapshot_n": 16, "keep_snapshots": False})
    centers, std = ring_centers(8, 2.0), 0.02
    from gankit.engine import build
    trainer, _ = build(cfg, torch.device("cpu"))
    before = toy_metrics(gankit.sample(trainer.recipe.nets["G"], 2500, seed=1), centers, std)
    run_dir = gankit.train(cfg, out=tmp_path, progress=False)
    after = toy_metrics(gankit.sample(gankit.load_generator(run_dir / "latest.pt"), 2500, seed=1), centers, std)
    assert before["modes"] <= 2 and before["high_quality"] < 0.01, before
    assert after["modes"] == 8, after  # measured here: 8 modes, high-quality 0.69, reverse KL 0.005
    assert after["high_quality"] > 0.4 and after["reverse_kl"] < 0.1, after
