"""Shared tests over every preset and every registered recipe, on image data and (where the family allows it)
vector data: two CPU steps give finite losses and move both players' parameters, and a checkpoint round trip
gives identical pictures."""
import pytest
import torch

from gankit.checkpoint import save_checkpoint
from gankit.loading import load_recipe
from gankit.engine import resolve
from gankit.presets import PRESETS
from gankit.recipes import recipes
from gankit.engine import build


def _small(preset: str, kind: str) -> dict:
    cfg = resolve(preset)
    over = {"batch_size": 4, "snapshot_n": 4, "seed": 1}
    if kind == "vector":
        over["data.spec"] = "grid25"
    elif cfg.recipe == "gan":
        over.update({"data.spec": "digits", "data.resolution": 28 if preset == "cgan" else 32})
    else:
        over["data.resolution"] = 32
    for role, width in (("G", "ngf"), ("D", "ndf")):
        arch = getattr(cfg, role).image if kind == "image" else None
        if arch in ("dcgan", "unet", "resnet", "patchgan"):
            over[f"{role}.{width}"] = 8
        elif arch == "stylegan2":
            over.update({f"{role}.channel_base": 128, f"{role}.channel_max": 16})
    return over


CASES = [(name, kind) for name in PRESETS for kind in ("image", "vector")
         if kind in recipes.get(PRESETS[name]["recipe"]).data_kinds
         or (kind == "image" and recipes.get(PRESETS[name]["recipe"]).data_kinds[0] in ("paired", "unpaired"))]


def test_every_recipe_is_covered_by_a_preset():
    assert set(recipes.names()) <= {p["recipe"] for p in PRESETS.values()}


@pytest.mark.parametrize("preset,kind", CASES)
def test_two_steps_move_parameters_and_checkpoint_round_trips(preset, kind, tmp_path):
    cfg = resolve(preset, overrides=_small(preset, kind))
    trainer, dataset = build(cfg, torch.device("cpu"))
    recipe = trainer.recipe
    before_g = [p.detach().clone() for p in recipe.generator_params()]
    before_d = [p.detach().clone() for p in recipe.discriminator_params()]
    for _ in range(2):
        trainer.train_step()
    stats = trainer.take_tick_stats()
    assert stats and all(torch.isfinite(torch.tensor(v)) for v in stats.values()), stats
    assert "D/loss" in stats and "G/loss" in stats
    assert trainer.check_finite() is None
    moved = lambda before, now: any(not torch.equal(a, b) for a, b in zip(before, now))
    assert moved(before_g, recipe.generator_params()), "generator parameters did not move"
    assert moved(before_d, recipe.discriminator_params()), "discriminator parameters did not move"

    path = tmp_path / "ckpt.pt"
    save_checkpoint(trainer.state_dict(dataset.info), path)
    fixed = recipe.fixed_inputs(4, 0, dataset)
    recipe.eval()
    with torch.no_grad():
        before = recipe.snapshot(fixed, recipe.nets)[0]
    loaded, _, _, nets = load_recipe(path, ema=False)
    with torch.no_grad():
        after = loaded.snapshot(fixed, nets)[0]
    key = "points" if hasattr(before, "points") else "images"
    assert torch.equal(getattr(before, key), getattr(after, key))
    if kind == "image":
        assert getattr(before, key).min() >= -1 and getattr(before, key).max() <= 1
