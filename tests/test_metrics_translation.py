"""Translation metrics: evaluate_translation on pix2pix / CycleGAN, the training-time path, and `gankit eval`.

Translators with a known answer stand in for trained networks: an oracle that returns each test input's exact
target (PSNR inf, L1 0), the identity (its error against the target is computed here by hand from the stored
uint8 images), and exact colour inversion for digits2inverted's true mapping.
"""
import json
import math
import types
import warnings

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from gankit.loading import load_recipe
from gankit.cli import main
from gankit.config import DataConfig
from gankit.engine import resolve
from gankit.data import load_dataset
from gankit.errors import ConfigError
from gankit.images import from_uint8
from gankit.metrics import Extractor, evaluate, evaluate_translation, paired_metrics
from gankit.engine import build, train
from gankit.engine.distributed import World
from gankit.engine.loop import _evaluate
from helpers import run_cli

SMALL = {"G.ngf": 8, "D.ndf": 8, "data.resolution": 32, "batch_size": 4, "device": "cpu"}


class TinyExtractor(Extractor):
    """uint8 -> 4 summary statistics per image (stands in for Inception: milliseconds, offline)."""

    name = "tiny"

    def __call__(self, img):
        assert img.dtype == torch.uint8                      # translations are quantised before extraction
        x = img.float().mean(1) / 255                        # [N, H, W]
        return {"features": torch.stack([x.mean((1, 2)), x.std((1, 2)), (x > 0.5).float().mean((1, 2)),
                                         (x * x).mean((1, 2))], 1)}

    def identity(self):
        return {"extractor": "tiny"}

    def protocol(self):
        return self.identity()


class Identity(nn.Module):
    def __init__(self):
        super().__init__()
        self.anchor = nn.Parameter(torch.zeros(()))   # the sampler reads the device from a parameter

    def forward(self, x):
        return x


class Invert(Identity):
    def forward(self, x):
        return -x                                     # uint8 u -> 255 - u exactly (gankit.data.translation.invert)


class Oracle(Identity):
    """Returns the stored target of each input, found by exact content (the test inputs are all distinct)."""

    def __init__(self, inputs, targets):
        super().__init__()
        self.inputs, self.targets = inputs.flatten(1), targets

    def forward(self, x):
        match = (x.flatten(1)[:, None] == self.inputs[None]).all(-1)       # [B, N]
        assert (match.sum(1) == 1).all()
        return self.targets[match.float().argmax(1)]


@pytest.fixture(scope="module")
def pix2pix():
    trainer, _ = build(resolve("pix2pix", None, SMALL))
    return trainer.recipe, trainer.cfg


@pytest.fixture(scope="module")
def cyclegan():
    trainer, _ = build(resolve("cyclegan", None, {**SMALL, "G.n_blocks": 1}))
    return trainer.recipe, trainer.cfg


@pytest.fixture(scope="module")
def edges_test():
    ds = load_dataset(DataConfig(spec="edges2digits", split="test"), kinds=("paired",))
    return ds.tensors["a"], ds.tensors["b"]                                  # uint8 [360, 1, 32, 32] each


@pytest.fixture(scope="module")
def inverted_test():
    ds = load_dataset(DataConfig(spec="digits2inverted", split="test"), kinds=("unpaired",))
    return ds.domain_a.tensors["image"], ds.domain_b.tensors["image"]         # uint8, disjoint digits


def by_hand(pred_u8, target_u8):
    """PSNR (mean over images of 10 log10(255^2 / MSE)) and L1 in [-1, 1] units, from uint8 arrays."""
    diff = pred_u8.double() - target_u8.double()
    mse = (diff ** 2).flatten(1).mean(1).numpy()
    with np.errstate(divide="ignore"):
        psnr = float(np.mean(10 * np.log10(255.0 ** 2 / mse)))
    return psnr, float(diff.abs().mean() / 127.5)


# ---- paired data -----------------------------------------------------------------------------------------------

def test_paired_metrics_of_oracle_identity_and_real_translator(pix2pix, edges_test):
    recipe, cfg = pix2pix
    a, b = edges_test
    oracle = nn.ModuleDict({"G": Oracle(from_uint8(a), from_uint8(b))})
    perfect = evaluate_translation(recipe, oracle, cfg.data, "psnr,ssim,l1", device="cpu")
    assert perfect["metrics"]["l1"] == 0 and perfect["metrics"]["psnr"] == math.inf
    assert perfect["metrics"]["ssim"] == pytest.approx(1.0, abs=1e-9)

    # Identity: the edge map itself against the digit; 360 inputs in batches of 64 (last one 40).
    ident = evaluate_translation(recipe, nn.ModuleDict({"G": Identity()}), cfg.data, ["l1", "psnr", "ssim"],
                                 device="cpu", batch_size=64)
    psnr, l1 = by_hand(a, b)
    assert ident["metrics"]["l1"] == pytest.approx(l1, rel=1e-12) and ident["metrics"]["psnr"] == pytest.approx(psnr)
    assert ident["metrics"]["ssim"] == pytest.approx(paired_metrics(from_uint8(a), from_uint8(b))["ssim"], rel=1e-9)
    p = ident["protocol"]
    assert p["data"]["split"] == "test" and p["data"]["held_out"] and p["n_gen"] == 360
    assert p["generated"]["direction"] == "AtoB" and p["paired_against"] == "dataset pairs"
    assert "to_uint8" in p["quantisation"] and ident["metric_protocols"]["l1"]["n_gen"] == 360

    # First n inputs only.
    first = evaluate_translation(recipe, nn.ModuleDict({"G": Identity()}), cfg.data, "l1", n=50, device="cpu")
    assert set(first["metrics"]) == {"l1"} and first["metrics"]["l1"] == pytest.approx(by_hand(a[:50], b[:50])[1])

    # The real (untrained) U-Net: batched numbers equal paired_metrics over the whole set at once.
    nets = nn.ModuleDict(dict(recipe.nets.items()))
    real = evaluate_translation(recipe, nets, cfg.data, "psnr,ssim,l1", device="cpu", batch_size=100)
    whole = paired_metrics(recipe.sampler(nets)(from_uint8(a)), from_uint8(b))
    for k in ("psnr", "ssim", "l1"):
        assert real["metrics"][k] == pytest.approx(whole[k], rel=1e-9)
    with pytest.raises(ConfigError, match="BtoA"):
        evaluate_translation(recipe, nets, cfg.data, "l1", direction="BtoA", device="cpu")


# ---- unpaired data with a known true mapping --------------------------------------------------------------------

def test_unpaired_truth_metrics_image_metrics_and_direction(cyclegan, inverted_test):
    recipe, cfg = cyclegan
    dom_a, dom_b = inverted_test
    tiny = TinyExtractor()
    kw = dict(device="cpu", extractor="tiny", extractors={"tiny": tiny}, kid_subsets=5, kid_subset_size=50)
    exact = nn.ModuleDict({"G_ab": Invert(), "G_ba": Invert()})
    good = evaluate_translation(recipe, exact, cfg.data, "fid,kid", **kw)
    m = good["metrics"]
    assert m["truth_l1"] == 0 and m["truth_psnr"] == math.inf and m["truth_ssim"] == pytest.approx(1.0, abs=1e-9)
    assert {"fid", "kid", "kid_std"} <= set(m) and "l1" not in m
    # The same FID as evaluate() on the quantised translations against the target domain's test images.
    direct = evaluate("fid", 255 - dom_a, dom_b, extractor="tiny", extractors={"tiny": tiny}, device="cpu")
    assert m["fid"] == pytest.approx(direct["metrics"]["fid"], rel=1e-9)
    assert good["protocol"]["n_gen"] == len(dom_a) and good["protocol"]["n_ref"] == len(dom_b)

    ident = evaluate_translation(recipe, nn.ModuleDict({"G_ab": Identity(), "G_ba": Identity()}), cfg.data,
                                 "l1", **kw)
    # identity vs truth 255 - u: |u - (255 - u)| = |2u - 255|
    assert ident["metrics"]["truth_l1"] == pytest.approx(float((2 * dom_a.double() - 255).abs().mean() / 127.5))
    assert set(ident["metrics"]) == {"truth_psnr", "truth_ssim", "truth_l1"}
    wrong_domain = evaluate_translation(recipe, nn.ModuleDict({"G_ab": Identity(), "G_ba": Identity()}), cfg.data,
                                        "fid", **kw)
    assert wrong_domain["metrics"]["fid"] > 10 * m["fid"]                     # un-inverted digits are far from B

    # BtoA runs G_ba on domain B's test images: only G_ba is exact here.
    mixed = nn.ModuleDict({"G_ab": Identity(), "G_ba": Invert()})
    back = evaluate_translation(recipe, mixed, cfg.data, "l1", direction="BtoA", **kw)
    assert back["metrics"]["truth_l1"] == 0 and back["protocol"]["generated"]["network"] == "G_ba"
    assert back["protocol"]["n_gen"] == len(dom_b)
    assert evaluate_translation(recipe, mixed, cfg.data, "l1", **kw)["metrics"]["truth_l1"] > 0.5


# ---- user folders: no truth, no test split --------------------------------------------------------------------

def write_cyclegan_folder(root, splits):
    rng = np.random.default_rng(0)
    for split in splits:
        for side in "AB":
            (root / f"{split}{side}").mkdir(parents=True)
            for i in range(5):
                Image.fromarray(rng.integers(0, 256, (32, 32), dtype=np.uint8)).save(root / f"{split}{side}/{i}.png")
    return root


def test_wrong_metric_for_the_data_and_split_fallback(cyclegan, pix2pix, tmp_path):
    recipe, cfg = cyclegan
    nets = nn.ModuleDict({"G_ab": Identity(), "G_ba": Identity()})
    held = DataConfig(spec=str(write_cyclegan_folder(tmp_path / "held", ("train", "test"))))
    with pytest.raises(ConfigError, match=r"psnr compare each output .* no known true mapping.* fid, .*kid"):
        evaluate_translation(recipe, nets, held, "fid,psnr", device="cpu")
    with pytest.raises(ConfigError, match="2-D samples"):
        evaluate_translation(pix2pix[0], nn.ModuleDict({"G": Identity()}), pix2pix[1].data, "toy", device="cpu")
    with pytest.raises(ConfigError, match="evaluate_translation"):
        evaluate("psnr", torch.zeros(4, 1, 8, 8), torch.zeros(4, 1, 8, 8))
    tiny = {"tiny": TinyExtractor()}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = evaluate_translation(recipe, nets, held, "fid", device="cpu", extractor="tiny", extractors=tiny)
    assert not [w for w in caught if "split" in str(w.message)]          # a held-out split: no warning
    assert out["protocol"]["data"]["held_out"] and out["protocol"]["n_gen"] == 5

    only_train = DataConfig(spec=str(write_cyclegan_folder(tmp_path / "train_only", ("train",))))
    with pytest.warns(UserWarning, match="no test split"):
        out = evaluate_translation(recipe, nets, only_train, "fid", device="cpu", extractor="tiny", extractors=tiny)
    assert out["protocol"]["data"]["split"] == "train" and not out["protocol"]["data"]["held_out"]


# ---- training-time metrics --------------------------------------------------------------------------------------

@pytest.mark.parametrize("name, results, best_key, best_value", [
    ("psnr", [{"psnr": 10.0}, {"psnr": 12.0}, {"psnr": 11.0}], "psnr", 12.0),
    ("ssim", [{"ssim": 0.5}, {"ssim": 0.4}, {"ssim": 0.45}], "ssim", 0.5),
    ("l1", [{"l1": 0.5}, {"l1": 0.3}, {"l1": 0.4}], "l1", 0.3),
    ("l1", [{"truth_l1": 0.5, "fid": 1.0}, {"truth_l1": 0.6, "fid": 0.5}], "truth_l1", 0.5),
    ("fid", [{"fid": 30.0, "kid": 0.1}, {"fid": 20.0, "kid": 0.2}, {"fid": 25.0, "kid": 0.0}], "fid", 20.0),
    ("kid", [{"kid": 0.3, "kid_std": 0.0}, {"kid": 0.1, "kid_std": 0.9}], "kid", 0.1),
    ("dc", [{"density": 0.9, "coverage": 0.1}, {"density": 0.5, "coverage": 0.9}], "density", 0.9),
])
def test_best_follows_each_metrics_direction(name, results, best_key, best_value, monkeypatch, tmp_path):
    calls = []

    def scripted(*args, **kw):
        calls.append(kw)
        return {"metrics": results[len(calls) - 1]}
    sampler = types.SimpleNamespace(evaluate=lambda request: scripted(**vars(request)))
    cfg = types.SimpleNamespace(metrics=[name], metrics_n=10, extractor="auto", data=None, seed=0)
    trainer = types.SimpleNamespace(recipe=types.SimpleNamespace(samplers=lambda nets: {"default": sampler}),
                                    sampling_nets=lambda: nn.ModuleDict(), rank=0, world=World(),
                                    cfg=cfg, device="cpu", extractors={}, best=None, nimg=0)
    log = types.SimpleNamespace(metrics=lambda record: None)
    for step in range(len(results)):
        trainer.nimg = 1000 * step
        _evaluate(trainer, tmp_path, log)
    assert trainer.best["metric"] == best_key and trainer.best["value"] == best_value
    assert json.loads((tmp_path / "best.json").read_text()) == trainer.best
    assert calls[0]["n"] == 10 and calls[0]["extractors"] is trainer.extractors


@pytest.fixture(scope="module")
def pix2pix_run(tmp_path_factory):
    cfg = resolve("pix2pix", None, {"G.ngf": 4, "D.ndf": 4, "batch_size": 2, "tick_kimg": 0.002, "snapshot_n": 3,
                                    "device": "cpu", "kimg": 0.008, "snapshot_kimg": 0.008, "metrics": ["l1", "psnr"],
                                    "metrics_kimg": 0.004, "metrics_n": 1000})
    return train(cfg, out=tmp_path_factory.mktemp("runs"), progress=False)


def test_training_writes_translation_metrics_and_best(pix2pix_run):
    records = [json.loads(line) for line in (pix2pix_run / "metrics.jsonl").read_text().splitlines()]
    assert [r["kimg"] for r in records] == [0.004, 0.008]
    assert all(set(r) == {"kimg", "l1", "psnr"} for r in records)
    assert records[0]["l1"] != records[1]["l1"]                # so "best" has a direction to get right
    # metrics_n (1000) caps the 360 test inputs: l1 equals a fresh evaluation of the final translator on all.
    recipe, cfg, _, nets = load_recipe(pix2pix_run / "latest.pt")
    final = evaluate_translation(recipe, nets, cfg.data, "l1", device="cpu")
    assert final["protocol"]["n_gen"] == 360 and final["metrics"]["l1"] == pytest.approx(records[-1]["l1"])
    best = json.loads((pix2pix_run / "best.json").read_text())
    assert best["metric"] == "l1" and best["value"] == min(r["l1"] for r in records)


# ---- gankit eval --------------------------------------------------------------------------------------------------

def test_cli_eval_on_a_translation_checkpoint(pix2pix_run, tmp_path, capsys):
    card = tmp_path / "card.json"
    code, out, err = run_cli(["eval", "--ckpt", str(pix2pix_run / "latest.pt"), "--device", "cpu", "--n", "40",
                              "--out", str(card)], capsys)
    assert code == 0, err
    assert all(name in out for name in ("psnr", "ssim", "l1")) and "split test" in out
    saved = json.loads(card.read_text())
    assert set(saved["metrics"]) == {"psnr", "ssim", "l1"} and saved["protocol"]["n_gen"] == 40
    assert saved["protocol"]["generated"]["checkpoint_sha256"] and saved["protocol"]["data"]["spec"] == "edges2digits"

    folder = write_cyclegan_folder(tmp_path / "unpaired", ("train", "test"))
    code, out, err = run_cli(["eval", "--ckpt", str(pix2pix_run / "latest.pt"), "--device", "cpu",
                              "--ref", str(folder), "--metrics", "psnr"], capsys)
    assert code == 2 and "no known true mapping" in err and "fid" in err
    code, out, err = run_cli(["eval", "--ckpt", str(pix2pix_run / "latest.pt"), "--direction", "BtoA"], capsys)
    assert code == 2 and "BtoA" in err
