"""The Inception extractor: weights lookup and checks, the real file's layout, and parity with torch-fidelity.

Offline and weight-free: random weights are written in the real file's layout and loaded through the same code
path as the real file. Tests that need the real weights skip unless GANKIT_INCEPTION_WEIGHTS points to them.
Inception at 299 px is slow on a CPU, so every forward pass here sees 4 small images.
"""
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from torch_fidelity.interpolate_compat_tensorflow import interpolate_bilinear_2d_like_tensorflow1x
from torch_fidelity.metric_fid import fid_features_to_statistics, fid_statistics_to_metric
from torch_fidelity.metric_isc import isc_features_to_metric
from torch_fidelity.metric_kid import kid_features_to_metric
from torch_fidelity.metric_prc import prc_features_to_metric

from gankit.errors import CheckpointError, DataError
from gankit.metrics import evaluate, find_inception_weights, write_random_inception_weights
from gankit.metrics.inception import (ENV_WEIGHTS, SHA256_PREFIX, WEIGHTS_FILENAME, InceptionExtractor,
                                      MissingWeightsError)

REAL_WEIGHTS = os.environ.get(ENV_WEIGHTS)


@pytest.fixture(scope="module")
def random_weights(tmp_path_factory) -> Path:
    return write_random_inception_weights(tmp_path_factory.mktemp("inception") / WEIGHTS_FILENAME, seed=0)


@pytest.fixture(scope="module")
def extractor(random_weights) -> InceptionExtractor:
    return InceptionExtractor(random_weights, device="cpu", verify=False, download=False, batch_size=4)


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return torch.randint(0, 256, (8, 3, 24, 24), generator=g, dtype=torch.uint8)   # 4 "generated" + 4 "real"


@pytest.fixture(scope="module")
def features(extractor, images) -> dict[str, torch.Tensor]:
    return extractor(images)


def test_random_weights_have_the_real_files_layout(random_weights):
    state = torch.load(random_weights, weights_only=True)
    assert len(state) == 472
    assert state["fc.weight"].shape == (1008, 2048) and state["fc.bias"].shape == (1008,)
    assert state["Conv2d_1a_3x3.conv.weight"].shape == (32, 3, 3, 3)
    assert not any(k.endswith("num_batches_tracked") for k in state)


def test_features_shapes_protocol_and_unverified_flag(extractor, features):
    assert features["features"].shape == (8, 2048) and features["logits"].shape == (8, 1008)
    assert features["features"].dtype == torch.float32 and torch.isfinite(features["features"]).all()
    assert features["features"].std() > 1e-3            # random weights still give non-degenerate features
    proto = extractor.protocol()
    assert proto["weights_verified"] is False and len(proto["weights_sha256"]) == 64
    assert not proto["weights_sha256"].startswith(SHA256_PREFIX)
    assert "TF1 bilinear" in proto["resize"] and proto["normalisation"] == "(x-128)/128"


def test_batch_size_independence_and_grayscale(extractor, images, features):
    extractor.batch_size = 1
    try:
        one_by_one = extractor(images[:3])
    finally:
        extractor.batch_size = 4
    torch.testing.assert_close(one_by_one["features"], features["features"][:3], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(one_by_one["logits"], features["logits"][:3], rtol=1e-4, atol=1e-4)
    gray = images[:1, :1]
    torch.testing.assert_close(extractor(gray)["features"], extractor(gray.repeat(1, 3, 1, 1))["features"])
    with pytest.raises(DataError):
        extractor(images.float())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_features_and_statistics_match_cpu(random_weights, images, features):
    gpu = InceptionExtractor(random_weights, device="cuda", verify=False, download=False, batch_size=4)
    callers_conv = torch.backends.cudnn.conv.fp32_precision
    out = gpu(images)
    assert torch.backends.cudnn.conv.fp32_precision == callers_conv
    assert out["features"].is_cuda
    # Extraction runs in IEEE float32 (no TF32), so the GPU's features are the CPU's to float32 rounding; the
    # issue asks for 1e-4 relative (torch-fidelity's own GPU test allows 1e-3 absolute).
    gpu_feat, cpu_feat = out["features"].cpu().double(), features["features"].double()
    assert float((gpu_feat - cpu_feat).norm() / cpu_feat.norm()) < 1e-4
    with pytest.warns(UserWarning, match="rank-deficient"):
        on_gpu = evaluate("fid,kid,pr", images[:4], images[4:], extractors={"inception": gpu}, device="cuda",
                          kid_subsets=2, kid_subset_size=4)
    assert on_gpu["protocol"]["device"].startswith("cuda") and np.isfinite(on_gpu["metrics"]["fid"])


def test_folded_batch_norms_and_channels_last_compute_the_same_function(tmp_path, images):
    # Non-trivial batch-norm statistics, so that folding them has something to get wrong.
    state = torch.load(write_random_inception_weights(tmp_path / "w.pth", seed=1), weights_only=True)
    g = torch.Generator().manual_seed(1)
    for key, t in state.items():
        if key.endswith(("running_var", "bn.weight")):
            state[key] = t * (0.5 + torch.rand(t.shape, generator=g))
        elif key.endswith("running_mean"):
            state[key] = 0.1 * torch.randn(t.shape, generator=g)
    torch.save(state, tmp_path / "w.pth")
    plain = InceptionExtractor(tmp_path / "w.pth", device="cpu", verify=False, download=False, fold_bn=False,
                               channels_last=False)
    fast = InceptionExtractor(tmp_path / "w.pth", device="cpu", verify=False, download=False)
    assert plain.bn_folded == 0 and fast.bn_folded == 94 and fast.protocol()["channels_last"]
    assert fast.identity() == plain.identity()          # numbers from either are comparable
    ref, out = plain(images[:3]), fast(images[:3])
    for name in ("features", "logits"):
        rel = float((out[name].double() - ref[name].double()).norm() / ref[name].double().norm())
        assert rel < 1e-5, (name, rel)


def test_exact_float32_switches_tf32_off_and_restores_the_callers_setting():
    from gankit.metrics import exact_float32
    conv, matmul = torch.backends.cudnn.conv, torch.backends.cuda.matmul
    before = (conv.fp32_precision, matmul.fp32_precision)
    try:
        conv.fp32_precision, matmul.fp32_precision = "tf32", "tf32"
        with exact_float32():
            assert (conv.fp32_precision, matmul.fp32_precision) == ("ieee", "ieee")
        assert (conv.fp32_precision, matmul.fp32_precision) == ("tf32", "tf32")
        with pytest.raises(ValueError), exact_float32():   # restored on errors too
            raise ValueError
        assert (conv.fp32_precision, matmul.fp32_precision) == ("tf32", "tf32")
    finally:
        conv.fp32_precision, matmul.fp32_precision = before


def test_tf1_resize_convention_of_the_dependency():
    # TF1 / torch-fidelity sample at src = dst * in / out (no half-pixel centres): [0, 10] -> [0, 5, 10, 10].
    x = torch.tensor([[[[0.0, 10.0]]]])
    out = interpolate_bilinear_2d_like_tensorflow1x(x, size=(1, 4), align_corners=False)
    assert out.flatten().tolist() == [0.0, 5.0, 10.0, 10.0]


def test_evaluate_numbers_equal_torch_fidelity_functions(extractor, images, features):
    gen_img, real_img = images[:4], images[4:]
    with pytest.warns(UserWarning, match="rank-deficient"):          # 4 samples of 2048-d features
        result = evaluate("fid,kid,is,pr", gen_img, real_img, extractor="inception",
                          extractors={"inception": extractor}, kid_subsets=3, kid_subset_size=4, is_splits=2,
                          cache=False, device="cpu")
    gen_f, real_f = features["features"][:4].double(), features["features"][4:].double()
    # torch-fidelity's FID solves a 2048 x 2048 eigen-problem (minutes on a busy CPU). FID is invariant under
    # an orthonormal change of basis, and both covariances and the mean difference live in the span of the 8
    # feature vectors, so its FID on coordinates in that span is the 2048-d FID exactly.
    basis, _ = torch.linalg.qr(torch.cat([gen_f, real_f]).T)             # [2048, 8] orthonormal columns
    tf_fid = fid_statistics_to_metric(fid_features_to_statistics(gen_f @ basis),
                                      fid_features_to_statistics(real_f @ basis), verbose=False)
    tf_kid = kid_features_to_metric(gen_f, real_f, kid_subsets=3, kid_subset_size=4, rng_seed=2020, verbose=False)
    tf_is = isc_features_to_metric(features["logits"][:4], splits=2, shuffle=True, rng_seed=2020)
    tf_pr = prc_features_to_metric(gen_f, real_f, prc_neighborhood=3, prc_batch_size=10000, save_cpu_ram=False,
                                   verbose=False)
    m = result["metrics"]
    assert m["fid"] == pytest.approx(tf_fid["frechet_inception_distance"], rel=1e-7)
    assert m["kid"] == pytest.approx(tf_kid["kernel_inception_distance_mean"], rel=1e-6)
    assert m["kid_std"] == pytest.approx(tf_kid["kernel_inception_distance_std"], rel=1e-5)
    assert m["is"] == pytest.approx(tf_is["inception_score_mean"], rel=1e-5)
    assert (m["precision"], m["recall"]) == (pytest.approx(tf_pr["precision"]), pytest.approx(tf_pr["recall"]))
    proto = result["metric_protocols"]["fid"]
    assert proto["extractor"]["weights_verified"] is False and proto["n_gen"] == 4 and proto["n_ref"] == 4


def test_default_verification_rejects_other_weights(random_weights):
    with pytest.raises(CheckpointError, match=SHA256_PREFIX):
        InceptionExtractor(random_weights, device="cpu", verify=True, download=False)


def test_unverified_weights_must_be_plain_data(tmp_path):
    bad = tmp_path / "bad.pth"
    torch.save({"x": Path("not-a-tensor")}, bad)     # a pickled object: refused by weights_only loading
    with pytest.raises(CheckpointError, match="pickled Python objects"):
        InceptionExtractor(bad, device="cpu", verify=False, download=False)


def test_weights_search_order_and_offline_message(tmp_path, monkeypatch, random_weights):
    monkeypatch.delenv(ENV_WEIGHTS, raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    with pytest.raises(MissingWeightsError) as err:
        find_inception_weights(download=False)
    message = str(err.value)
    hub_file = tmp_path / "torch_home" / "hub" / "checkpoints" / WEIGHTS_FILENAME
    assert str(hub_file) in message and ENV_WEIGHTS in message and "--inception-weights" in message
    # 3. the torch hub cache
    hub_file.parent.mkdir(parents=True)
    hub_file.symlink_to(random_weights)
    assert find_inception_weights(download=False) == hub_file
    # 2. the environment variable wins over the cache
    monkeypatch.setenv(ENV_WEIGHTS, str(random_weights))
    assert find_inception_weights(download=False) == random_weights
    # 1. an explicit path wins over both, and must exist
    with pytest.raises(MissingWeightsError, match="does not exist"):
        find_inception_weights(tmp_path / "missing.pth", download=False)


@pytest.mark.skipif(not REAL_WEIGHTS, reason=f"set {ENV_WEIGHTS} to the real weights file to run")
def test_real_weights_verify_and_match_torch_fidelity(images):
    from torch_fidelity.utils import create_feature_extractor
    ours = InceptionExtractor(REAL_WEIGHTS, device="cpu", download=False)
    assert ours.weights_verified and ours.protocol()["weights_sha256"].startswith(SHA256_PREFIX)
    theirs = create_feature_extractor("inception-v3-compat", ["2048", "logits_unbiased"], cuda=False,
                                      feature_extractor_weights_path=REAL_WEIGHTS, verbose=False)
    f_theirs, l_theirs = theirs(images[:2])
    out = ours(images[:2])
    # Folded batch norms and NHWC change the float32 rounding only.
    for ours_t, theirs_t in ((out["features"], f_theirs), (out["logits"], l_theirs)):
        assert float((ours_t.double() - theirs_t.double()).norm() / theirs_t.double().norm()) < 1e-5
        torch.testing.assert_close(ours_t, theirs_t, rtol=1e-4, atol=1e-4)
    assert np.all(np.isfinite(out["features"].numpy()))
