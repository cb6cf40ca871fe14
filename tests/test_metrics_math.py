"""Metric math against closed forms (metrics-protocol sec. 3.4) and against torch-fidelity's own functions.

Small feature dimensions keep this file fast; the Inception path is tested in test_metrics_inception.py.
"""
import math

import numpy as np
import pytest
import torch
from torch_fidelity.metric_fid import fid_statistics_to_metric
from torch_fidelity.metric_isc import isc_features_to_metric
from torch_fidelity.metric_kid import kid_features_to_metric
from torch_fidelity.metric_prc import prc_features_to_metric

from gankit.errors import ConfigError
from gankit.metrics import (FeatureStats, fid_bootstrap, fid_from_stats, frechet_distance, inception_score,
                            kernel_inception_distance, knn_radii, mode_metrics, paired_metrics,
                            precision_recall_density_coverage, toy_metrics, trace_sqrt_product)
from gankit.metrics.kid import mmd2_unbiased, polynomial_kernel


def random_cov(d, rank, seed):
    a = np.random.RandomState(seed).randn(rank, d)
    return a.T @ a / rank


# ---- FID -----------------------------------------------------------------------------------------------------

def test_fid_t1_equal_covariances_unit_mean_shift():
    d = 2048
    assert frechet_distance(np.zeros(d), np.eye(d), np.ones(d), np.eye(d)) == pytest.approx(2048.0, rel=1e-12)


def test_fid_t2_diagonal_closed_form():
    s1, s2 = np.diag([1.0, 2, 3, 4]), np.diag([4.0, 3, 2, 1])
    mu1 = np.array([1.0, 0, 0, 0])
    expected = 1 + sum((math.sqrt(a) - math.sqrt(b)) ** 2 for a, b in zip([1, 2, 3, 4], [4, 3, 2, 1]))
    assert expected == pytest.approx(3.2020410288672876, rel=1e-15)
    for method in ("auto", "symmetric", "eigvals"):
        assert frechet_distance(mu1, s1, np.zeros(4), s2, method) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("c,expected", [(0.5, 1.0), (2.0, 4.0)])
def test_fid_t3_scaled_covariance(c, expected):
    s1 = np.array([[2.0, 1], [1, 2]])
    assert frechet_distance(np.zeros(2), s1, np.zeros(2), c * c * s1) == pytest.approx(expected, rel=1e-12)


def test_fid_t4_non_commuting():
    s1, s2 = np.array([[2.0, 1], [1, 2]]), np.diag([1.0, 4])
    m = s1 @ s2
    exact = 2 + np.trace(s1 + s2) - 2 * math.sqrt(np.trace(m) + 2 * math.sqrt(np.linalg.det(m)))
    assert exact == pytest.approx(2.7712204476543416, rel=1e-14)
    for method in ("symmetric", "eigvals"):
        assert frechet_distance(np.zeros(2), s1, np.ones(2), s2, method) == pytest.approx(exact, rel=1e-12)


def test_fid_t5_sample_statistics_use_unbiased_covariance():
    rs = np.random.RandomState(0)
    x = rs.randn(5000, 64)
    y = 1.1 * rs.randn(5000, 64) + 0.05
    sx, sy = FeatureStats(), FeatureStats()
    for chunk in np.array_split(x, 7):
        sx.append(torch.from_numpy(chunk))
    sy.append(torch.from_numpy(y))
    fid = frechet_distance(sx.mean(), sx.cov(), sy.mean(), sy.cov())
    assert fid == pytest.approx(1.3123752746, abs=1e-9)  # 1/N covariance would give 1.3121522986


@pytest.mark.parametrize("n,d", [(3, 16), (16, 16), (40, 16), (500, 64)])
def test_fid_matches_torch_fidelity(n, d):
    rs = np.random.RandomState(n)
    x, y = rs.randn(n, d), rs.randn(n, d) * 0.9 + 0.3
    s1 = {"mu": x.mean(0), "sigma": np.cov(x, rowvar=False)}
    s2 = {"mu": y.mean(0), "sigma": np.cov(y, rowvar=False)}
    ref = fid_statistics_to_metric(s1, s2, verbose=False)["frechet_inception_distance"]
    ours = frechet_distance(s1["mu"], s1["sigma"], s2["mu"], s2["sigma"])
    # Rank-deficient covariances (n <= d): the null-space eigenvalues are +-1e-16 rounding whose square roots
    # (~1e-8 each) differ between any two eigen-solvers; full rank agrees to rounding.
    assert ours == pytest.approx(ref, rel=1e-7 if n <= d else 1e-10)


def test_trace_sqrt_symmetric_and_eigvals_agree_and_rank_deficient_falls_back():
    full1, full2 = random_cov(32, 200, 1), random_cov(32, 300, 2)
    a = trace_sqrt_product(full1, full2, "symmetric")
    b = trace_sqrt_product(full1, full2, "eigvals")
    assert a == pytest.approx(b, rel=1e-11)
    low1, low2 = random_cov(32, 10, 3), random_cov(32, 12, 4)   # both rank-deficient: no Cholesky
    assert trace_sqrt_product(low1, low2) == pytest.approx(trace_sqrt_product(low1, low2, "eigvals"), rel=1e-12)
    with pytest.raises(ConfigError):
        trace_sqrt_product(low1, low2, "symmetric")
    # One full-rank side is enough for the symmetric route (eig(S1 S2) = eig(S2 S1)). The 22 zero eigenvalues
    # come out as +-1e-16 rounding whose square roots (~1e-8 each) differ between the two routes.
    assert trace_sqrt_product(low1, full2) == pytest.approx(trace_sqrt_product(low1, full2, "eigvals"), rel=1e-7)


@pytest.mark.parametrize("n_gen,n_ref", [(5, 9), (7, 300), (300, 6), (300, 400)])
def test_fid_from_stats_low_rank_route_equals_general_route(n_gen, n_ref):
    # N <= D keeps the features and uses the exact N x N problem; N > D uses the covariances.
    g = torch.Generator().manual_seed(n_gen)
    x = torch.randn(n_gen, 24, generator=g, dtype=torch.float64)
    y = torch.randn(n_ref, 24, generator=g, dtype=torch.float64) * 1.3 + 0.2
    gen, ref = FeatureStats(), FeatureStats()
    for chunk in x.split(4):
        gen.append(chunk)
    ref.append(y)
    assert (gen.factor() is not None) == (n_gen <= 24) and (ref.factor() is not None) == (n_ref <= 24)
    expected = frechet_distance(x.mean(0).numpy(), np.cov(x.numpy(), rowvar=False),
                                y.mean(0).numpy(), np.cov(y.numpy(), rowvar=False), method="eigvals")
    assert fid_from_stats(gen, ref) == pytest.approx(expected, rel=1e-7)


def test_fid_identical_statistics_is_zero_and_mismatch_raises():
    s = random_cov(20, 100, 5)
    assert abs(frechet_distance(np.ones(20), s, np.ones(20), s)) < 1e-10
    with pytest.raises(ConfigError):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(4), np.eye(4))


@pytest.mark.parametrize("merge_rows", [1, 60, 1024])   # merged per batch, in blocks, or all at once
def test_streaming_statistics_match_numpy_for_any_chunking(monkeypatch, merge_rows):
    monkeypatch.setattr(FeatureStats, "MERGE_ROWS", merge_rows)
    rs = np.random.RandomState(1)
    x = rs.randn(301, 9) * 3 + 1e4   # large offset: naive E[xx] - mu mu would lose digits
    st = FeatureStats(keep_features=True)
    start = 0
    for size in (1, 7, 50, 243):
        st.append(torch.from_numpy(x[start:start + size]))
        start += size
    assert st.n == 301
    np.testing.assert_allclose(st.mean(), x.mean(0), rtol=1e-14)
    np.testing.assert_allclose(st.cov(), np.cov(x, rowvar=False), rtol=1e-9, atol=1e-12)
    np.testing.assert_array_equal(st.features().numpy(), x.astype(np.float32))


def test_fid_warns_when_fewer_samples_than_dimensions():
    from gankit.metrics import metrics, EvalOptions
    gen, ref = FeatureStats(), FeatureStats()
    gen.append(torch.randn(10, 16, generator=torch.Generator().manual_seed(0)))
    ref.append(torch.randn(40, 16, generator=torch.Generator().manual_seed(1)))
    with pytest.warns(UserWarning, match="rank-deficient"):
        metrics.get("fid").compute(gen, ref, EvalOptions())


def test_fid_bootstrap_resample_formula_and_spread():
    rs = np.random.RandomState(0)
    d, n = 4, 400
    ref = rs.randn(20000, d)
    ref_mu, ref_sigma = ref.mean(0), np.cov(ref, rowvar=False)
    gen = torch.from_numpy(rs.randn(n, d) * 1.2 + 0.2)
    # The weighted-count formula equals the FID of the explicitly resampled rows (same RNG draw).
    g = torch.Generator().manual_seed(7)
    counts = torch.multinomial(torch.full((n,), 1.0 / n, dtype=torch.float64), n, replacement=True, generator=g)
    rows = gen.numpy()[counts.numpy()]
    explicit = frechet_distance(rows.mean(0), np.cov(rows, rowvar=False), ref_mu, ref_sigma)
    two = fid_bootstrap(gen, ref_mu, ref_sigma, n_boot=2, seed=7, ci=1.0)   # ci=1: min and max of the two
    assert explicit in (pytest.approx(two["fid_ci_low"], rel=1e-12), pytest.approx(two["fid_ci_high"], rel=1e-12))
    # The bootstrap spread estimates the real sampling spread of FID over independent generated sets.
    boot = fid_bootstrap(gen, ref_mu, ref_sigma, n_boot=300, seed=1)
    draws = [frechet_distance(s.mean(0), np.cov(s, rowvar=False), ref_mu, ref_sigma)
             for s in (rs.randn(n, d) * 1.2 + 0.2 for _ in range(300))]
    assert 0.6 < boot["fid_boot_std"] / np.std(draws) < 1.6
    point = frechet_distance(gen.numpy().mean(0), np.cov(gen.numpy(), rowvar=False), ref_mu, ref_sigma)
    assert boot["fid_ci_low"] < point < boot["fid_ci_high"]
    # Fewer samples than dimensions: the low-rank route gives the same resample values as the covariance route.
    small = gen[:3]
    g = torch.Generator().manual_seed(5)
    counts = torch.multinomial(torch.full((3,), 1.0 / 3, dtype=torch.float64), 3, replacement=True, generator=g)
    rows = small.numpy()[counts.numpy()]
    explicit = frechet_distance(rows.mean(0), np.cov(rows, rowvar=False), ref_mu, ref_sigma, method="eigvals")
    two = fid_bootstrap(small, ref_mu, ref_sigma, n_boot=2, seed=5, ci=1.0)
    assert explicit in (pytest.approx(two["fid_ci_low"], rel=1e-7), pytest.approx(two["fid_ci_high"], rel=1e-7))


# ---- KID -----------------------------------------------------------------------------------------------------

def test_kid_closed_form_9_5():
    x, y = torch.tensor([[0.0], [1.0]]), torch.tensor([[1.0], [2.0]])
    assert mmd2_unbiased(polynomial_kernel(x, x), polynomial_kernel(x, y), polynomial_kernel(y, y)) == 9.5
    out = kernel_inception_distance(x, y, subsets=3, subset_size=2)
    assert out["kid"] == pytest.approx(9.5) and out["kid_std"] == pytest.approx(0.0, abs=1e-12)


def test_kid_matches_torch_fidelity_same_seed_same_subsets():
    g = torch.Generator().manual_seed(0)
    gen = torch.randn(60, 8, generator=g, dtype=torch.float64)
    real = torch.randn(70, 8, generator=g, dtype=torch.float64) * 1.1 + 0.1
    ref = kid_features_to_metric(gen, real, kid_subsets=20, kid_subset_size=25, rng_seed=2020, verbose=False)
    ours = kernel_inception_distance(gen, real, subsets=20, subset_size=25, seed=2020)
    assert ours["kid"] == pytest.approx(ref["kernel_inception_distance_mean"], rel=1e-10)
    assert ours["kid_std"] == pytest.approx(ref["kernel_inception_distance_std"], rel=1e-8)
    other_seed = kernel_inception_distance(gen, real, subsets=20, subset_size=25, seed=1)
    assert other_seed["kid"] != ours["kid"]


def test_kid_shrinks_subsets_with_warning_and_identical_sets_are_negative():
    x = torch.randn(100, 8, generator=torch.Generator().manual_seed(2))
    with pytest.warns(UserWarning, match="shrunk"):
        out = kernel_inception_distance(x, x, subsets=5, subset_size=1000)
    assert out["kid_subset_size_used"] == 100
    # Same finite set: the cross term keeps its diagonal, so the unbiased estimate is below 0.
    assert out["kid"] < 0
    with pytest.raises(ConfigError):
        kernel_inception_distance(x[:1], x, subsets=1, subset_size=10)


# ---- IS ------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("splits,shuffle", [(1, True), (1, False), (10, False)])
def test_inception_score_closed_forms(splits, shuffle):
    # Ten equally likely, perfectly confident classes: KL(p(y|x) || p(y)) = log 10 for every image -> IS = 10.
    # With 10 splits this needs every slice to hold all ten classes: true for contiguous, unshuffled slices.
    logits = torch.zeros(100, 1008)
    logits[torch.arange(100), torch.arange(100) % 10] = 50.0
    out = inception_score(logits, splits=splits, shuffle=shuffle)
    assert out["is"] == pytest.approx(10.0, rel=1e-9) and out["is_std"] == pytest.approx(0.0, abs=1e-9)
    flat = inception_score(torch.zeros(100, 1008), splits=splits, shuffle=shuffle)
    assert flat["is"] == pytest.approx(1.0, abs=1e-12)


def test_inception_score_matches_torch_fidelity_and_population_std():
    logits = torch.randn(103, 50, generator=torch.Generator().manual_seed(3)) * 3
    ref = isc_features_to_metric(logits, splits=10, shuffle=True, rng_seed=2020)
    ours = inception_score(logits, splits=10, shuffle=True, seed=2020)
    assert ours["is"] == pytest.approx(ref["inception_score_mean"], rel=1e-12)
    assert ours["is_std"] == pytest.approx(ref["inception_score_std"], rel=1e-10)
    # Unshuffled slices of class-sorted data collapse: each split sees one class.
    sorted_logits = torch.zeros(100, 10)
    sorted_logits[torch.arange(100), torch.arange(100) // 10] = 50.0
    assert inception_score(sorted_logits, 10, shuffle=False)["is"] == pytest.approx(1.0, abs=1e-9)
    assert inception_score(sorted_logits, 10, shuffle=True)["is"] > 3


# ---- precision / recall / density / coverage -----------------------------------------------------------------

REAL_1D = torch.arange(10, dtype=torch.float64)[:, None]
FAKE_1D = torch.tensor([0.5, 1.5, 2.5, 3.5, 20, 21, 22, 23], dtype=torch.float64)[:, None]


@pytest.mark.parametrize("batch", [3, 4096])
def test_prdc_closed_forms(batch):
    out = precision_recall_density_coverage(REAL_1D, FAKE_1D, pr_k=3, dc_k=3, batch=batch)
    assert out["precision"] == pytest.approx(0.5) and out["recall"] == pytest.approx(0.7)
    assert out["density"] == pytest.approx(16 / 24) and out["coverage"] == pytest.approx(0.6)


def test_prdc_all_identical_points_le_versus_strict():
    same = torch.full((40, 64), 3.7, dtype=torch.float64) + torch.tensor([1e-3] * 64)   # large-magnitude rows
    out = precision_recall_density_coverage(same, same.clone(), pr_k=3, dc_k=3, batch=16)
    assert (out["precision"], out["recall"]) == (1.0, 1.0)     # <= : radius 0 still contains distance 0
    assert (out["density"], out["coverage"]) == (0.0, 0.0)     # <  : nothing is strictly inside radius 0


def _prdc_bruteforce(real, fake, k_pr, k_dc):
    """Independent numpy version of clovaai/generative-evaluation-prdc + Kynkaanniemi's <= convention."""
    d_rr = np.sqrt(((real[:, None] - real[None]) ** 2).sum(-1))
    d_ff = np.sqrt(((fake[:, None] - fake[None]) ** 2).sum(-1))
    d_rf = np.sqrt(((real[:, None] - fake[None]) ** 2).sum(-1))     # [N, M]
    r_pr = np.partition(d_rr, k_pr, axis=1)[:, k_pr]
    f_pr = np.partition(d_ff, k_pr, axis=1)[:, k_pr]
    r_dc = np.partition(d_rr, k_dc, axis=1)[:, k_dc]
    return {"precision": (d_rf <= r_pr[:, None]).any(0).mean(), "recall": (d_rf <= f_pr[None, :]).any(1).mean(),
            "density": (d_rf < r_dc[:, None]).sum() / (k_dc * fake.shape[0]),
            "coverage": (d_rf.min(1) < r_dc).mean()}


def test_prdc_blocked_equals_bruteforce_and_torch_fidelity():
    g = torch.Generator().manual_seed(4)
    real = torch.randn(150, 12, generator=g, dtype=torch.float64)
    fake = torch.randn(130, 12, generator=g, dtype=torch.float64) * 1.2 + 0.3
    out = precision_recall_density_coverage(real, fake, pr_k=3, dc_k=5, batch=37)
    ref = _prdc_bruteforce(real.numpy(), fake.numpy(), 3, 5)
    for key in ref:
        assert out[key] == pytest.approx(ref[key], abs=1e-12), key
    tf = prc_features_to_metric(fake, real, prc_neighborhood=3, prc_batch_size=50, save_cpu_ram=True, verbose=False)
    assert out["precision"] == pytest.approx(tf["precision"]) and out["recall"] == pytest.approx(tf["recall"])


def test_knn_radii_exclude_self_and_match_across_blocks():
    x = torch.tensor([[0.0], [1.0], [3.0], [6.0], [10.0]])
    assert knn_radii(x, 1, batch=2).tolist() == [1.0, 1.0, 2.0, 3.0, 4.0]
    assert knn_radii(x, 2, batch=2).tolist() == [3.0, 2.0, 3.0, 4.0, 7.0]
    both = knn_radii(x, (1, 2), batch=3)
    assert both[1].tolist() == [1.0, 1.0, 2.0, 3.0, 4.0] and both[2].tolist() == [3.0, 2.0, 3.0, 4.0, 7.0]


# ---- mode metrics, toys, paired --------------------------------------------------------------------------------

def test_mode_metrics_uniform_and_collapsed():
    k = 1000
    uniform = torch.nn.functional.one_hot(torch.arange(2 * k) % k, k).float()
    out = mode_metrics(uniform)
    assert out["modes"] == 1000 and out["modes_kl"] == pytest.approx(0.0, abs=1e-12)
    collapsed = torch.nn.functional.one_hot(torch.zeros(50, dtype=torch.long), k).float()
    out = mode_metrics(collapsed)
    assert out["modes"] == 1 and out["modes_kl"] == pytest.approx(math.log(1000))
    half = torch.nn.functional.one_hot(torch.arange(100) % 2, k).float()   # two modes, equally often
    assert mode_metrics(half)["modes_kl"] == pytest.approx(math.log(500))


def test_toy_metrics_closed_form():
    angles = torch.arange(8) * 2 * math.pi / 8
    centers = torch.stack([2 * angles.cos(), 2 * angles.sin()], 1)          # ring8, radius 2
    std = 0.02
    samples = torch.cat([centers[[0, 0, 3, 5]] + torch.tensor([2.9 * std, 0.0]),   # inside 3 std
                         centers[[6]] + torch.tensor([3.1 * std, 0.0]),            # just outside
                         torch.tensor([[0.0, 0.0]])])                              # far from every mode
    out = toy_metrics(samples, centers, std)
    assert out["modes"] == 3
    assert out["high_quality"] == pytest.approx(4 / 6)
    q = np.array([2, 1, 1]) / 4
    assert out["reverse_kl"] == pytest.approx(float((q * np.log(q * 8)).sum()))
    assert toy_metrics(torch.zeros(5, 2), centers, std)["reverse_kl"] == float("inf")


def test_paired_metrics_known_offsets():
    from gankit.images import from_uint8
    target_u8 = torch.randint(10, 240, (2, 3, 16, 16), generator=torch.Generator().manual_seed(0)).to(torch.uint8)
    target = from_uint8(target_u8)
    pred = from_uint8(target_u8 + 2)                                 # exactly +2 grey levels everywhere
    out = paired_metrics(pred, target)
    assert out["psnr"] == pytest.approx(10 * math.log10(255 ** 2 / 4), rel=1e-6)   # torchmetrics: float32 range
    assert out["l1"] == pytest.approx(2 / 127.5, rel=1e-6)
    assert paired_metrics(target, target)["ssim"] == pytest.approx(1.0)
    assert 0 < out["ssim"] < 1
