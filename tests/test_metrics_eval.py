"""evaluate(), image sources, reference statistics (npz, cache), evaluation cards and the metrics CLI.

A tiny deterministic extractor stands in for Inception so every path runs in milliseconds; the CLI tests use
an untrained gankit classifier, which is a registered extractor.
"""
import json
import math

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from gankit.errors import ConfigError, DataError
from gankit.images import to_uint8
from gankit.metrics import (Extractor, compare_cards, compute_reference_file, evaluate, frechet_distance,
                            kernel_inception_distance, load_stats, precision_recall_density_coverage)
from gankit.metrics.classifier import SmallCNN, save_classifier


class TinyExtractor(Extractor):
    """uint8 -> 6 summary statistics per image, and 10 'class' logits from a fixed projection."""

    name = "tiny"
    outputs = ("features", "logits")

    def __init__(self, tag="v1"):
        self.tag, self.seen = tag, []
        self.proj = torch.randn(6, 10, generator=torch.Generator().manual_seed(0))

    def __call__(self, img):
        assert img.dtype == torch.uint8
        self.seen.append(img.clone())
        x = img.float() / 255
        feats = torch.cat([x.mean((2, 3)), x.std((2, 3)), x.amax((2, 3)), (x * x).mean((2, 3))], 1)[:, :6]
        feats = torch.cat([feats, torch.zeros(len(x), max(0, 6 - feats.shape[1]))], 1)
        return {"features": feats, "logits": 5 * feats @ self.proj}

    def identity(self):
        return {"extractor": "tiny", "weights_sha256": self.tag}

    def protocol(self):
        return {**self.identity(), "resize": "none"}


def images(n, seed, shift=0.0):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(n, 3, 8, 8, generator=g) * 1.6 - 0.8 + shift).clamp(-1, 1)     # float in [-1, 1]


def run(metric_names, gen, ref=None, tiny=None, **kw):
    tiny = tiny or TinyExtractor()
    return evaluate(metric_names, gen, ref, extractor="tiny", extractors={"tiny": tiny}, device="cpu", **kw)


def test_generator_is_called_in_seeded_batches_and_quantised_before_extraction():
    calls = []

    def gen(n, seed):
        calls.append((n, seed))
        return images(n, seed)

    tiny = TinyExtractor()
    result = run("fid", gen, images(30, 99), tiny=tiny, n_gen=25, batch_size=10, seed=5)
    assert calls == [(10, 5), (10, 6), (5, 7)]
    expected = torch.cat([to_uint8(images(10, 5)), to_uint8(images(10, 6)), to_uint8(images(5, 7))])
    assert torch.equal(torch.cat(tiny.seen[:3]), expected)         # exactly what a PNG of the output holds
    p = result["protocol"]
    assert p["generated"] == {"kind": "generator", "n": 25, "base_seed": 5, "batch_size": 10,
                              "seeding": "gen(batch_n, base_seed + batch_index)"}
    assert p["n_gen"] == 25 and p["n_ref"] == 30 and p["statistics_dtype"] == "float64"
    assert set(p["versions"]) >= {"gankit", "torch", "torch_fidelity"} and p["wall_time_s"] >= 0
    assert result["metric_protocols"]["fid"]["extractor"] == {"extractor": "tiny", "weights_sha256": "v1"}


def test_float_uint8_and_folder_inputs_give_the_same_numbers(tmp_path):
    from PIL import Image
    gen_f, ref_f = images(40, 1), images(50, 2, shift=0.2)
    gen_u8 = to_uint8(gen_f)
    for i, img in enumerate(gen_u8):
        Image.fromarray(img.permute(1, 2, 0).numpy()).save(tmp_path / f"{i:03d}.png")
    a = run("fid,kid,pr", gen_f, ref_f, kid_subsets=5, kid_subset_size=20)["metrics"]
    b = run("fid,kid,pr", gen_u8, ref_f, kid_subsets=5, kid_subset_size=20)["metrics"]
    c = run("fid,kid,pr", str(tmp_path), ref_f, kid_subsets=5, kid_subset_size=20)
    assert a == b == c["metrics"]
    assert c["protocol"]["generated"]["kind"] == "folder" and c["protocol"]["generated"]["n"] == 40


def test_metric_values_equal_the_functions_on_the_same_features():
    gen_f, ref_f = images(60, 3), images(70, 4, shift=0.1)
    tiny = TinyExtractor()
    gen_feat, ref_feat = tiny(to_uint8(gen_f))["features"], tiny(to_uint8(ref_f))["features"]
    m = run("fid,kid,pr,dc", gen_f, ref_f, kid_subsets=4, kid_subset_size=30)["metrics"]
    g64, r64 = gen_feat.double().numpy(), ref_feat.double().numpy()
    assert m["fid"] == pytest.approx(frechet_distance(g64.mean(0), np.cov(g64, rowvar=False),
                                                      r64.mean(0), np.cov(r64, rowvar=False)), rel=1e-9)
    kid = kernel_inception_distance(gen_feat, ref_feat, subsets=4, subset_size=30, seed=2020)
    assert (m["kid"], m["kid_std"]) == (pytest.approx(kid["kid"]), pytest.approx(kid["kid_std"]))
    prdc = precision_recall_density_coverage(ref_feat, gen_feat, pr_k=3, dc_k=5)
    assert {k: m[k] for k in prdc} == pytest.approx(prdc)


def test_same_metric_on_two_extractors_keeps_both_numbers():
    gen, ref = images(30, 1), images(40, 2)
    other = TinyExtractor(tag="v2")
    other.proj = other.proj * 3
    result = evaluate("is,is@other", gen, ref, extractor="tiny", extractors={"tiny": TinyExtractor(), "other": other},
                      device="cpu", is_splits=2)
    m = result["metrics"]
    assert set(m) == {"is", "is_std", "is@other", "is_std@other"} and m["is"] != m["is@other"]
    assert result["metric_protocols"]["is@other"]["extractor"]["weights_sha256"] == "v2"
    rows = {r["name"]: r for r in compare_cards(result, result)}
    assert rows["is_std@other"]["comparable"]


def test_bootstrap_interval_and_options_are_recorded():
    result = run("fid", images(80, 5), images(90, 6), fid_bootstrap=20, rng_seed=3)
    m = result["metrics"]
    assert m["fid_ci_low"] <= m["fid_ci_high"] and m["fid_boot_std"] > 0
    assert result["metric_protocols"]["fid"]["params"]["bootstrap"] == 20
    with pytest.raises(ConfigError, match="Valid options"):
        run("fid", images(8, 5), images(8, 6), kid_subset=3)


def test_metric_names_and_extractor_requirements():
    from gankit.metrics import metric_names
    assert {"fid", "kid", "is", "pr", "dc", "modes", "toy"} <= set(metric_names())
    with pytest.raises(ConfigError, match="Valid choices"):
        run("fdi", images(8, 0), images(8, 1))
    with pytest.raises(ConfigError, match="classifier"):
        evaluate("modes", images(8, 0), extractor="inception")
    with pytest.raises(ConfigError, match="reference"):
        run("fid", images(8, 0))
    assert run("is", images(20, 0), is_splits=2)["metrics"]["is"] >= 1.0     # IS needs no reference


def test_reference_from_data_spec_is_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("GANKIT_CACHE", str(tmp_path / "cache"))
    from gankit.config import DataConfig
    from gankit.data import load_dataset
    test_digits = load_dataset(DataConfig(spec="digits", split="test"), kinds=("image",))
    gen = test_digits.tensors["image"][:100]                               # uint8 [100, 1, 32, 32]
    first = run("fid,kid", gen, "digits", n_ref=300, kid_subsets=3, kid_subset_size=50)
    cached = list((tmp_path / "cache" / "refstats").glob("*.npz"))
    assert len(cached) == 1
    ref_desc = first["metric_protocols"]["fid"]["reference"]
    assert ref_desc["spec"] == "digits" and ref_desc["n"] == 300 and ref_desc["resolution"] == 32

    def no_loading(*a, **k):
        raise AssertionError("the cache should have been used")
    monkeypatch.setattr("gankit.metrics.reference.load_reference_dataset", no_loading)
    second = run("fid,kid", gen, "digits", n_ref=300, kid_subsets=3, kid_subset_size=50)
    assert second["metrics"] == first["metrics"]
    # A different subset size is a different reference: computed afresh (here: the loader refuses).
    with pytest.raises(AssertionError, match="cache"):
        run("fid", gen, "digits", n_ref=200)


def test_reference_npz_round_trip_and_checks(tmp_path):
    gen_f, ref_f = images(40, 7), images(60, 8, shift=0.1)
    tiny = TinyExtractor()
    with_feats = compute_reference_file(ref_f, tmp_path / "ref.npz", tiny, keep_features=True)
    moments_only = compute_reference_file(ref_f, tmp_path / "ref_mom.npz", tiny)
    with np.load(with_feats) as f:
        assert {"mu", "sigma", "n", "features", "protocol"} <= set(f.files)
        assert f["sigma"].dtype == np.float64 and int(f["n"]) == 60
        assert json.loads(str(f["protocol"]))["extractor"] == tiny.identity()
    direct = run("fid,kid", gen_f, ref_f, kid_subsets=3, kid_subset_size=30)["metrics"]
    via_file = run("fid,kid", gen_f, str(with_feats), kid_subsets=3, kid_subset_size=30)
    assert via_file["metrics"] == pytest.approx(direct, rel=1e-6)
    assert via_file["protocol"]["reference"]["kind"] == "stats file"
    with pytest.raises(ConfigError, match="--features"):
        run("kid", gen_f, str(moments_only))
    with pytest.raises(ConfigError, match="different extractor"):
        run("fid", gen_f, str(moments_only), tiny=TinyExtractor(tag="v2"))
    # pytorch-fid's layout (mu, sigma only) loads, with a warning that nothing can be checked.
    np.savez(tmp_path / "pytorch_fid.npz", mu=np.zeros(6), sigma=np.eye(6))
    with pytest.warns(UserWarning, match="no protocol"):
        stats, protocol = load_stats(tmp_path / "pytorch_fid.npz")
    assert protocol == {} and stats.dim == 6


def test_toy_metric_through_evaluate():
    from gankit.config import DataConfig
    from gankit.data import load_dataset
    ring = load_dataset(DataConfig(spec="ring8"), kinds=("vector",))
    centers = torch.tensor(ring.info.extras["centers"])

    def collapsed(n, seed):                      # every sample on mode 0 or 1, exactly at the centre
        return centers[torch.arange(n) % 2]

    m = evaluate("toy", collapsed, "ring8", n_gen=100, batch_size=30)["metrics"]
    assert m["toy_modes"] == 2 and m["toy_high_quality"] == 1.0
    assert m["toy_reverse_kl"] == pytest.approx(math.log(4))
    with pytest.raises(ConfigError, match="separately"):
        evaluate("toy,fid", collapsed, "ring8")


def test_compare_flags_protocol_differences():
    a = run("fid,kid", images(40, 1), images(60, 2), kid_subsets=3, kid_subset_size=20)
    b = run("fid,kid", images(40, 3), images(60, 2), kid_subsets=3, kid_subset_size=20)
    rows = {r["name"]: r for r in compare_cards(a, b)}
    assert rows["fid"]["comparable"] and rows["kid_std"]["comparable"]
    c = run("fid,kid", images(50, 3), images(60, 2), kid_subsets=3, kid_subset_size=20)      # other N
    d = run("fid", images(40, 3), images(60, 2), tiny=TinyExtractor(tag="v2"))               # other weights
    rows_c = {r["name"]: r for r in compare_cards(a, c)}
    assert not rows_c["fid"]["comparable"] and any("n_gen" in s for s in rows_c["fid"]["differences"])
    rows_d = {r["name"]: r for r in compare_cards(a, d)}
    assert not rows_d["fid"]["comparable"] and any("weights_sha256" in s for s in rows_d["fid"]["differences"])
    assert not rows_d["kid"]["comparable"]                               # only in one card


# ---- CLI -----------------------------------------------------------------------------------------------------

@pytest.fixture()
def clf_path(tmp_path):
    torch.manual_seed(0)
    return save_classifier(tmp_path / "clf.pt", SmallCNN(1, 10, 32, width=8, feature_dim=16).eval())


def invoke(args):
    from gankit.cli_metrics import COMMANDS
    import click
    group = click.Group("gankit", commands={c.name: c for c in COMMANDS})
    return CliRunner().invoke(group, args, catch_exceptions=True)


def test_cli_ref_fid_eval_compare(tmp_path, clf_path, monkeypatch):
    from PIL import Image
    monkeypatch.setenv("GANKIT_CACHE", str(tmp_path / "cache"))
    ext = f"classifier:{clf_path}"
    r = invoke(["ref", "--data", "digits", "--out", str(tmp_path / "a.npz"), "--features", "--extractor", ext,
                "--device", "cpu"])
    assert r.exit_code == 0, r.output
    r = invoke(["ref", "--data", "digits", "--split", "test", "--out", str(tmp_path / "b.npz"), "--extractor", ext,
                "--device", "cpu"])
    assert r.exit_code == 0, r.output
    same = invoke(["fid", str(tmp_path / "a.npz"), str(tmp_path / "a.npz")])
    assert same.exit_code == 0 and abs(float(same.output)) < 1e-6
    other = invoke(["fid", str(tmp_path / "a.npz"), str(tmp_path / "b.npz")])
    assert float(other.output) > 0
    folder = tmp_path / "gen"
    folder.mkdir()
    for i, img in enumerate(to_uint8(images(30, 0))[:, :1]):
        Image.fromarray(img[0].numpy()).resize((32, 32)).save(folder / f"{i}.png")
    card = tmp_path / "card.json"
    r = invoke(["eval", "--images", str(folder), "--ref", str(tmp_path / "a.npz"), "--metrics", "fid,kid,pr",
                "--extractor", ext, "--out", str(card), "--device", "cpu"])
    assert r.exit_code == 0, r.output
    assert "fid" in r.output and "kid_std" in r.output
    saved = json.loads(card.read_text())
    assert saved["metric_protocols"]["kid"]["n_ref"] == 1437
    r = invoke(["compare", str(card), str(card)])
    assert r.exit_code == 0 and "NO" not in r.output
    r = invoke(["eval", "--ref", "digits", "--metrics", "fid"])
    assert r.exit_code == 2 and "--ckpt" in r.output
    r = invoke(["eval", "--images", str(folder), "--ref", "digits", "--metrics", "fid", "--extractor",
                "classifier:" + str(tmp_path / "missing.pt")])
    assert r.exit_code != 0 and "does not exist" in str(r.exception)


def test_cli_eval_from_checkpoint(tmp_path, clf_path, monkeypatch):
    ckpt = tmp_path / "latest.pt"
    ckpt.write_bytes(b"stand-in checkpoint")
    asked = {}

    from types import SimpleNamespace

    from gankit.config import DataConfig
    from gankit.samplers import NoiseSampler

    class Fake(NoiseSampler):
        def __call__(self, n, seed):
            return images(n, seed)[:, :1].repeat(1, 1, 4, 4)      # [n, 1, 32, 32]

    def load_recipe(path, device="cpu"):
        asked["path"], asked["device"] = path, str(device)
        recipe = SimpleNamespace(samplers=lambda nets: {"default": Fake(None)})
        return recipe, SimpleNamespace(data=DataConfig(spec="digits")), None, None
    import importlib
    monkeypatch.setattr(importlib.import_module("gankit.loading"), "load_recipe", load_recipe)
    card = tmp_path / "ckpt.json"
    r = invoke(["eval", "--ckpt", str(ckpt), "--ref", "digits", "--metrics", "is,fid", "--n", "40",
                "--extractor", f"classifier:{clf_path}", "--device", "cpu", "--out", str(card), "--no-cache"])
    assert r.exit_code == 0, r.output
    saved = json.loads(card.read_text())
    assert asked == {"path": str(ckpt), "device": "cpu"}
    assert saved["protocol"]["generated"]["checkpoint_sha256"] and saved["protocol"]["n_gen"] == 40


def test_cli_classifier_train_writes_a_data_only_checkpoint(tmp_path):
    out = tmp_path / "digits_clf.pt"
    r = invoke(["classifier", "train", "--data", "digits", "--out", str(out), "--epochs", "3", "--width", "8",
                "--device", "cpu"])
    assert r.exit_code == 0, r.output
    ckpt = torch.load(out, weights_only=True)
    assert ckpt["format"] == "gankit-classifier" and ckpt["config"]["resolution"] == 32
    assert ckpt["report"]["test_set"] == "test split" and ckpt["report"]["test_images"] == 360
    assert ckpt["report"]["test_accuracy"] > 0.8          # 10 classes: chance is 0.1
    with pytest.raises(DataError):
        from gankit.metrics.classifier import train_classifier
        train_classifier(torch.zeros(4, 1, 8, 8), torch.zeros(3))


def test_extractors_dict_is_filled_for_reuse(clf_path):
    cache = {}
    gen = to_uint8(images(20, 0))[:, :1]
    first = evaluate("is", gen, extractor=f"classifier:{clf_path}", extractors=cache, device="cpu", is_splits=2)
    assert list(cache) == [f"classifier:{clf_path}"]
    built = cache[f"classifier:{clf_path}"]
    second = evaluate("is", gen, extractor=f"classifier:{clf_path}", extractors=cache, device="cpu", is_splits=2)
    assert cache[f"classifier:{clf_path}"] is built and first["metrics"] == second["metrics"]
    assert first["metric_protocols"]["is"]["extractor"]["resolution"] == 32       # 8x8 input resized to 32


# ---- sharded over several processes (the trainer under DDP) ---------------------------------------------------

class ThreadShard:
    """The ``Shard`` protocol for ranks that are threads of this process: all_gather through a barrier."""

    def __init__(self, rank, world_size, board, barrier):
        self.rank, self.world_size, self.board, self.barrier = rank, world_size, board, barrier

    def all_gather(self, obj):
        self.barrier.wait()
        self.board[self.rank] = obj
        self.barrier.wait()
        out = list(self.board)
        self.barrier.wait()            # nobody overwrites the board before everyone has read it
        return out


def on_threads(world_size, fn):
    """[fn(shard) for each rank], the ranks running at once as threads."""
    import threading
    board, barrier = [None] * world_size, threading.Barrier(world_size, timeout=60)
    results, errors = [None] * world_size, []

    def body(rank):
        try:
            results[rank] = fn(ThreadShard(rank, world_size, board, barrier))
        except BaseException as e:      # noqa: BLE001
            errors.append(e)
            barrier.abort()
    threads = [threading.Thread(target=body, args=(r,)) for r in range(world_size)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return results


def test_sharded_statistics_equal_one_process():
    from gankit.metrics.sources import GeneratorSource, extract
    wants = {"tiny": {"features": (True, True), "logits": (True, False)}}

    def stats(shard, n, batch_size):
        source = GeneratorSource(images, n, seed=3, batch_size=batch_size)
        return extract(source, {"tiny": TinyExtractor()}, wants, shard=shard)["tiny"]

    # 7 batches over 2 ranks (4 + 3, the short one last); 2 batches over 3 ranks (rank 2 extracts nothing);
    # 5 rows <= 6 dimensions (the exact low-rank factor FID uses then).
    for world_size, n, batch_size in ((2, 65, 10), (3, 15, 8), (2, 5, 2)):
        one = stats(None, n, batch_size)
        for got in on_threads(world_size, lambda s: stats(s, n, batch_size)):
            assert got["features"].n == got["logits"].n == n
            assert torch.equal(got["features"].features(), one["features"].features())   # global order
            for out in ("features", "logits"):
                assert np.allclose(got[out].mean(), one[out].mean(), rtol=1e-12, atol=0)
                assert np.allclose(got[out].cov(), one[out].cov(), rtol=1e-12, atol=1e-15)
            f1, f2 = got["logits"].factor(), one["logits"].factor()
            assert (f1 is None) == (f2 is None) and (f1 is None or torch.equal(f1, f2))


def test_sharded_evaluate_equals_one_process_and_splits_the_work():
    calls = []

    def gen(n, seed):
        calls.append(seed)
        return images(n, seed)

    ref = images(50, 8, shift=0.1)
    kw = dict(n_gen=45, batch_size=10, seed=5, kid_subsets=4, kid_subset_size=20, is_splits=2)
    one = run("fid,kid,pr,is", gen, ref, **kw)
    calls.clear()
    cards = on_threads(2, lambda shard: run("fid,kid,pr,is", gen, ref, shard=shard, **kw))
    # Rank 0 also makes batch 0 for shape(): it keeps it, so every seed is drawn once.
    assert sorted(calls) == [5, 6, 7, 8, 9]
    for card in cards:
        m = card["metrics"]
        assert m["fid"] == pytest.approx(one["metrics"]["fid"], rel=1e-10)
        assert {k: v for k, v in m.items() if k != "fid"} == {k: v for k, v in one["metrics"].items() if k != "fid"}
        assert card["metric_protocols"] == one["metric_protocols"]      # comparable with a 1-process card
        assert card["protocol"]["sharding"] == {"world_size": 2, "batches": "i % world_size == rank"}


def _sharded_gloo_eval(rank, world_size, ref):
    import gankit.metrics.reference as reference
    from gankit.engine.distributed import init_world
    world = init_world("cpu")

    def gen(n, seed):
        return images(n, seed)[:, :1].repeat_interleave(4, 2).repeat_interleave(4, 3)     # [n, 1, 32, 32]

    kw = dict(n_gen=50, batch_size=16, n_ref=120, kid_subsets=3, kid_subset_size=40)
    one = run("fid,kid", gen, ref, cache=False, **kw)
    saved, save_stats = [], reference.save_stats
    reference.save_stats = lambda *a, **k: (saved.append(rank), save_stats(*a, **k))[1]
    rows = []
    for _ in range(2):                                             # the second finds the cache rank 0 wrote
        tiny = TinyExtractor()
        card = run("fid,kid", gen, ref, tiny=tiny, shard=world.metrics_shard(), **kw)
        rows.append(sum(len(x) for x in tiny.seen))
    return {"one": one["metrics"], "sharded": card["metrics"], "saved": saved, "rows": rows}


def test_sharded_evaluate_on_two_gloo_processes(tmp_path, monkeypatch):
    from PIL import Image
    from dist_harness import run_world
    monkeypatch.setenv("GANKIT_CACHE", str(tmp_path / "cache"))
    folder = tmp_path / "ref"                       # a data spec (cached), loaded without sklearn's slow import
    folder.mkdir()
    for i, img in enumerate(to_uint8(images(120, 8, shift=0.1))[:, 0].repeat_interleave(4, 1).repeat_interleave(4, 2)):
        Image.fromarray(img.numpy()).save(folder / f"{i:03d}.png")
    r0, r1 = run_world(_sharded_gloo_eval, 2, tmp_path, str(folder))
    for r in (r0, r1):
        assert r["sharded"]["fid"] == pytest.approx(r["one"]["fid"], rel=1e-10)
        assert (r["sharded"]["kid"], r["sharded"]["kid_std"]) == (r["one"]["kid"], r["one"]["kid_std"])
    assert r0["sharded"] == r1["sharded"]
    assert r0["saved"] == [0] and r1["saved"] == []                # the cache file has one writer
    assert len(list((tmp_path / "cache" / "refstats").glob("*.npz"))) == 1
    # 50 generated in batches of 16: batches 0, 2 (32 rows) and 1, 3 (18); 120 reference: 64 and 56 rows.
    assert r0["rows"] == [32 + 64, 32] and r1["rows"] == [18 + 56, 18]
