"""Conditional evaluation with known truths: samplers that return real digits of the asked class (or of the next
class) give class consistency near the classifier's accuracy (or near 0), intra-class FID 0 when each class
returns exactly its reference images, and a truncation curve that follows a known noise level."""
from __future__ import annotations

import pytest
import torch

from gankit.config import DataConfig
from gankit.data import load_dataset
from gankit.errors import ConfigError
from gankit.metrics import evaluate, save_classifier, train_classifier
from gankit.metrics.conditional import class_consistency
from gankit.nets import generators
from gankit.samplers import EvalRequest, NoiseSampler


def _digits(split: str, resolution: int = 32):
    ds = load_dataset(DataConfig(spec="digits", split=split, resolution=resolution), kinds=("image",))
    items = ds.get_batch(torch.arange(len(ds)))
    return ds, items["image"], items["label"]


@pytest.fixture(scope="module")
def clf_path(tmp_path_factory):
    _, images, labels = _digits("train", 8)
    _, test_images, test_labels = _digits("test", 8)
    model, report = train_classifier(images, labels, test_images=test_images, test_labels=test_labels, epochs=5,
                                     batch_size=64, width=16, feature_dim=32, max_shift=0, seed=0)
    assert report["test_accuracy"] > 0.85
    return str(save_classifier(tmp_path_factory.mktemp("clf") / "clf.pt", model, report))


class RealDigits:
    """A stand-in for a conditional sampler: real test digits of class (label + shift) % 10, seeded; with
    ``truncation`` t, Gaussian noise of std t / 2 is added (a model whose fidelity falls as t grows)."""

    options = ("label", "truncation")

    def __init__(self, shift: int = 0, exact: bool = False):
        _, self.images, self.labels = _digits("test")
        self.num_classes, self.shift, self.exact = 10, shift, exact
        self.G = None

    def draw(self, n=None, seed=0, seeds=None, label=None, truncation=None):
        if label is None:                                  # cycle through the classes, as NoiseSampler does
            return torch.cat([self.draw(1, seed * 1000 + i, label=i % 10, truncation=truncation) for i in range(n)])
        pool = self.images[self.labels == (label + self.shift) % 10]
        if self.exact:                                     # the whole class, in order (n must equal its size)
            return pool[:n]
        g = torch.Generator().manual_seed(seed)
        out = pool[torch.randint(len(pool), (n,), generator=g)]
        if truncation is not None:
            out = (out + truncation / 2 * torch.randn(out.shape, generator=g)).clamp(-1, 1)
        return out

    def __call__(self, n, seed):
        return self.draw(n, seed)


def test_class_consistency_formula():
    asked = torch.tensor([0, 0, 1, 1, 1, 2])
    predicted = torch.tensor([0, 1, 1, 1, 0, 2])
    out = class_consistency(predicted, asked, 3)
    assert out["per_class"] == [0.5, pytest.approx(2 / 3), 1.0]
    assert out["class_consistency"] == pytest.approx((0.5 + 2 / 3 + 1) / 3)
    assert out["class_consistency_min"] == 0.5
    with pytest.raises(ConfigError, match="class 2"):
        class_consistency(predicted[:5], asked[:5], 3)


def test_class_consistency_knows_right_from_shifted_classes(clf_path):
    right = evaluate(f"class_consistency@classifier:{clf_path}", RealDigits(), class_n=40)
    shifted = evaluate(f"class_consistency@classifier:{clf_path}", RealDigits(shift=1), class_n=40)
    assert right["metrics"]["class_consistency"] > 0.85
    assert shifted["metrics"]["class_consistency"] < 0.1
    proto = right["metric_protocols"]["class_consistency"]
    assert len(proto["per_class"]) == 10 and proto["n_per_class"] == 40
    assert right["metrics"]["class_consistency_min"] <= right["metrics"]["class_consistency"]


def test_intra_fid_is_zero_for_the_reference_itself_and_large_for_wrong_classes(clf_path):
    ref, _, labels = _digits("test")
    counts = torch.bincount(labels, minlength=10)
    sampler = RealDigits(exact=True)
    exact = evaluate(f"intra_fid@classifier:{clf_path}", sampler, ref, class_n=int(counts.min()), n_ref=int(counts.min()))
    assert abs(exact["metrics"]["intra_fid"]) < 1e-6                 # each class against its own images
    shifted = evaluate(f"intra_fid@classifier:{clf_path}", RealDigits(shift=1), ref, class_n=30)
    right = evaluate(f"intra_fid@classifier:{clf_path}", RealDigits(), ref, class_n=30)
    assert shifted["metrics"]["intra_fid"] > 5 * right["metrics"]["intra_fid"]
    assert len(right["metric_protocols"]["intra_fid"]["per_class"]) == 10


def test_truncation_curve_follows_the_fidelity_of_each_setting(clf_path):
    ref, _, _ = _digits("test")
    card = evaluate(f"truncation_curve@classifier:{clf_path},fid@classifier:{clf_path}", RealDigits(), ref,
                    n_gen=200, truncations=(2.0, 1.0, 0.25), pr_k=3)
    curve = card["metric_protocols"]["truncation_curve"]["curve"]
    assert [p["truncation"] for p in curve] == [None, 2.0, 1.0, 0.25]
    fids = [p["fid"] for p in curve[1:]]
    assert fids[0] > fids[1] > fids[2]                     # less noise, lower FID
    assert card["metrics"]["trunc_0.25_fid"] == fids[2]
    assert card["metrics"]["truncation_best_fid"] == min(p["fid"] for p in curve)
    assert card["metrics"]["fid"] == pytest.approx(curve[0]["fid"])   # the plain metric shares the card


def test_per_class_metrics_through_the_sampler_seam_and_refusals(clf_path):
    torch.manual_seed(0)
    G = generators.get("dcgan")(z_dim=4, out_channels=1, resolution=32, num_classes=10, ngf=4)
    sampler = NoiseSampler(G)
    card = sampler.evaluate(EvalRequest(metrics=[f"class_consistency@classifier:{clf_path}"],
                                        options={"class_n": 3}))
    assert 0.0 <= card["metrics"]["class_consistency"] <= 1.0
    with pytest.raises(ConfigError, match="truncation trick"):
        sampler.evaluate(EvalRequest(metrics=[f"truncation_curve@classifier:{clf_path}"], ref="digits"))
    plain = NoiseSampler(generators.get("dcgan")(z_dim=4, out_channels=1, resolution=32, ngf=4))
    with pytest.raises(ConfigError, match="class-conditional"):
        evaluate(f"class_consistency@classifier:{clf_path}", plain)
    with pytest.raises(ConfigError, match="classifier"):
        evaluate("class_consistency", RealDigits())
