"""Typed config: presets, overrides, loud failures, JSON round trip."""
import json

import pytest

from gankit.config import TrainConfig, from_dict, to_dict
from gankit.engine import resolve
from gankit.errors import ConfigError
from gankit.presets import PRESETS


@pytest.mark.parametrize("name", list(PRESETS))
def test_every_preset_resolves_and_round_trips_through_json(name):
    cfg = resolve(name)
    assert cfg.preset == name
    again = from_dict(json.loads(json.dumps(to_dict(cfg))))
    assert to_dict(again) == to_dict(cfg)


def test_paper_values_of_the_classic_presets():
    wgan = resolve("wgan")
    assert (wgan.opts["loss"], wgan.opts["clip"], wgan.d_steps) == ("wasserstein", 0.01, 5)
    assert (wgan.opt["D"].name, wgan.opt["D"].lr) == ("rmsprop", 5e-5)
    gp = resolve("wgan-gp")
    assert (gp.opts["gp_weight"], gp.d_steps, gp.opt["D"].lr, tuple(gp.opt["D"].betas)) == (10.0, 5, 1e-4, (0.0, 0.9))
    assert gp.D.image_kwargs["norm"] == "none"          # no batch norm in the critic
    dc = resolve("dcgan")
    assert (dc.opt["G"].lr, dc.opt["G"].betas[0], dc.G.init) == (2e-4, 0.5, "normal02")


def test_overrides_route_to_sections_recipe_options_and_network_arguments():
    cfg = resolve("dcgan", overrides=["batch_size=128", "opt.G.lr=1e-4", "loss=hinge", "G.ngf=32",
                                      "data.resolution=64", "metrics=fid,kid", "opt.G.betas=[0.0, 0.9]"])
    assert cfg.batch_size == 128 and cfg.opt["G"].lr == 1e-4 and cfg.opts["loss"] == "hinge"
    assert cfg.G.image_kwargs["ngf"] == 32 and cfg.data.resolution == 64
    assert cfg.metrics == ["fid", "kid"] and tuple(cfg.opt["G"].betas) == (0.0, 0.9)
    assert cfg.D.image_kwargs == {}                      # G.ngf does not leak into D


def test_vector_network_arguments_go_to_the_vector_slot():
    cfg = resolve("wgan-gp", overrides={"G.hidden": 64})
    assert cfg.G.vector_kwargs["hidden"] == 64 and "hidden" not in cfg.G.image_kwargs


@pytest.mark.parametrize("override,pattern", [
    ({"batchsize": 3}, r"Unknown config key 'batchsize'.*batch_size"),
    ({"batch_size": "big"}, r"batch_size must be int"),
    ({"opt.G.lrr": 1.0}, r"unknown key 'lrr'.*lr"),
    ({"loss": "wasserstien"}, r"Unknown adversarial loss 'wasserstien'.*Did you mean 'wasserstein'"),
    ({"G.ngff": 3}, r"Unknown network argument G.ngff.*ngf"),
    ({"opt.G.name": "adamw2"}, r"Unknown optimizer 'adamw2'.*adam"),
    ({"on_nonfinite": "ignore"}, r"on_nonfinite must be one of stop, rollback"),
    ({"kimg": -1}, r"kimg must be positive"),
    ({"G.init": "glorot"}, r"Unknown initialisation 'glorot'.*xavier"),
    ({"use_amp": True}, r"Unknown config key"),
    ({"G.image": "dcgann"}, r"Unknown generator network 'dcgann'.*Did you mean 'dcgan'"),
])
def test_bad_overrides_fail_loudly_with_choices(override, pattern):
    with pytest.raises(ConfigError, match=pattern):
        resolve("dcgan", overrides=override)


def test_unknown_preset_names_the_valid_ones():
    with pytest.raises(ConfigError, match=r"Unknown preset 'wgan_gp'.*Did you mean 'wgan-gp'.*Valid presets"):
        resolve("wgan_gp")


def test_config_file_then_overrides(tmp_path):
    f = tmp_path / "cfg.yaml"
    f.write_text("batch_size: 32\nopt:\n  G:\n    lr: 0.001\nopts:\n  loss: lsgan\nG:\n  image_kwargs:\n    ngf: 24\n")
    cfg = resolve("dcgan", str(f), ["batch_size=16"])
    assert cfg.batch_size == 16 and cfg.opt["G"].lr == 0.001 and cfg.opts["loss"] == "lsgan"
    assert cfg.G.image_kwargs["ngf"] == 24
    bad = tmp_path / "bad.yaml"
    bad.write_text("batch_sise: 3\n")
    with pytest.raises(ConfigError, match="batch_sise"):
        resolve("dcgan", str(bad))
    with pytest.raises(ConfigError, match="does not exist"):
        resolve("dcgan", str(tmp_path / "nope.yaml"))


def test_defaults_are_a_valid_config():
    assert from_dict(to_dict(TrainConfig())) == TrainConfig()


def test_metric_names_are_checked_against_the_family():
    assert resolve("dcgan", overrides={"metrics": "fid,kid@classifier:clf.pt"}).metrics == ["fid", "kid@classifier:clf.pt"]
    assert resolve("pix2pix", overrides={"metrics": "psnr,l1"}).metrics == ["psnr", "l1"]
    with pytest.raises(ConfigError, match="score image-to-image translators"):
        resolve("dcgan", overrides={"metrics": "psnr"})
    with pytest.raises(ConfigError, match=r"Unknown metric.*fdi"):
        resolve("dcgan", overrides={"metrics": "fdi"})


def test_network_argument_taken_by_both_networks_goes_to_the_one_the_data_uses():
    toy = resolve("gan", overrides={"data.spec": "grid25", "G.norm": "batch"})
    assert toy.G.vector_kwargs["norm"] == "batch" and "norm" not in toy.G.image_kwargs
    image = resolve("dcgan", overrides={"G.norm": "none"})
    assert image.G.image_kwargs["norm"] == "none" and "norm" not in image.G.vector_kwargs
