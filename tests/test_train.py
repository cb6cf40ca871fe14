"""The training engine: exact resume, run directories, checkpoints, non-finite handling, EMA."""
import json
import math
import pickle

import pytest
import torch

import gankit
from gankit.checkpoint import load_checkpoint, save_checkpoint
from gankit.engine import resolve
from gankit.errors import CheckpointError, ConfigError, TrainingDiverged
from gankit.engine import EMA, train

TINY_IMAGE = {"data.spec": "digits", "data.resolution": 32, "batch_size": 16, "G.ngf": 16, "D.ndf": 16,
              "tick_kimg": 0.256, "snapshot_kimg": 0.512, "snapshot_n": 16}


def _weights(run_dir, name="latest.pt"):
    return load_checkpoint(run_dir / name)


def _assert_same_state(a: dict, b: dict):
    assert a["nimg"] == b["nimg"] and a["step"] == b["step"]
    for key in a["nets"]:
        assert torch.equal(a["nets"][key], b["nets"][key]), key
    for name in (a["ema"] or {}):
        for key in a["ema"][name]:
            assert torch.equal(a["ema"][name][key], b["ema"][name][key]), key
    for role in ("G", "D"):
        sa, sb = a["opt"][role]["state"], b["opt"][role]["state"]
        for idx in sa:
            for k in sa[idx]:
                assert torch.equal(torch.as_tensor(sa[idx][k]), torch.as_tensor(sb[idx][k])), (role, idx, k)
    assert torch.equal(a["rng"]["torch"], b["rng"]["torch"])


@pytest.mark.parametrize("preset,extra", [
    ("dcgan", {"ema_kimg": 0.1}),
    ("wgan-gp", {"data.spec": "grid25", "batch_size": 32}),
])
def test_resume_is_bit_exact(tmp_path, preset, extra):
    """Training 2N in one go equals training N then resuming to 2N, weight for weight (CPU)."""
    over = {**TINY_IMAGE, **extra}
    if extra.get("data.spec") == "grid25":
        over = {k: v for k, v in over.items() if not k.startswith(("G.", "D.", "data.res"))}
    full = train(resolve(preset, overrides={**over, "kimg": 0.512}), out=tmp_path / "a", progress=False)
    half = train(resolve(preset, overrides={**over, "kimg": 0.256}), out=tmp_path / "b", progress=False)
    resumed = train(resolve(preset, overrides={**over, "kimg": 0.512}), resume=half, progress=False,
                    resume_overrides={"kimg"})
    assert resumed == half
    _assert_same_state(_weights(full), _weights(resumed))


def test_run_directory_layout_and_never_overwritten(tmp_path):
    cfg = resolve("dcgan", overrides={**TINY_IMAGE, "kimg": 0.512})
    r1 = train(cfg, out=tmp_path, progress=False)
    r2 = train(cfg, out=tmp_path, progress=False)
    assert r1 != r2 and r1.name.startswith("00000-dcgan-digits") and r2.name.startswith("00001-")
    names = {p.name for p in r1.iterdir()}
    assert {"config.json", "log.txt", "stats.jsonl", "latest.pt"} <= names
    assert any(n.startswith("samples-") and n.endswith(".png") for n in names)
    assert any(n.startswith("ckpt-") and n.endswith(".pt") for n in names)
    records = [json.loads(line) for line in (r1 / "stats.jsonl").read_text().splitlines()]
    assert len(records) == 2 and records[-1]["kimg"] == pytest.approx(0.512)
    for key in ("kimg", "img_per_s", "D/loss", "G/loss", "D/grad_norm", "G/grad_norm"):
        assert key in records[0]
    saved = json.loads((r1 / "config.json").read_text())
    assert saved["batch_size"] == 16 and saved["preset"] == "dcgan"


def test_checkpoint_is_data_only_and_pickled_code_is_refused(tmp_path):
    run = train(resolve("dcgan", overrides={**TINY_IMAGE, "kimg": 0.256}), out=tmp_path, progress=False)
    ckpt = torch.load(run / "latest.pt", weights_only=True)   # must not raise
    assert ckpt["format"] == "gankit" and ckpt["version"] == 2
    evil = tmp_path / "evil.pt"
    torch.save({"format": "gankit", "module": torch.nn.Linear(2, 2)}, evil)  # pickles a module class
    with pytest.raises(CheckpointError, match="pickled"):
        load_checkpoint(evil)
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="Cannot read"):
        load_checkpoint(junk)
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.pt")


def test_atomic_save_keeps_old_file_when_writing_fails(tmp_path, monkeypatch):
    path = tmp_path / "latest.pt"
    save_checkpoint({"nimg": 1}, path)
    def boom(*a, **k):
        raise RuntimeError("disk full")
    monkeypatch.setattr(torch, "save", boom)
    with pytest.raises(RuntimeError):
        save_checkpoint({"nimg": 2}, path)
    assert load_checkpoint(path)["nimg"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["latest.pt"]   # no temporary file left behind


def test_checkpoint_round_trip_gives_identical_samples(tmp_path):
    run = train(resolve("dcgan", overrides={**TINY_IMAGE, "kimg": 0.256, "ema_kimg": 0.05}), out=tmp_path,
                progress=False)
    G1 = gankit.load_generator(run / "latest.pt")
    G2 = gankit.load_generator(run)
    a, b = gankit.sample(G1, 8, seed=3), gankit.sample(G2, 8, seed=3)
    assert a.shape == (8, 1, 32, 32) and torch.equal(a, b)
    assert a.min() >= -1 and a.max() <= 1
    assert not torch.equal(a, gankit.sample(G1, 8, seed=4))
    # Samples do not depend on the batch they are drawn in (eval mode, per-seed latents).
    from gankit.sample import sample
    assert torch.allclose(sample(G1, seeds=[5, 6])[1], sample(G1, seeds=[6])[0], atol=1e-6)


def test_nonfinite_loss_stops_with_step_and_checkpoint(tmp_path):
    cfg = resolve("dcgan", overrides={**TINY_IMAGE, "kimg": 0.512, "opt.G.lr": 1e30, "opt.D.lr": 1e30,
                                      "opt.G.name": "sgd", "opt.D.name": "sgd"})
    with pytest.raises(TrainingDiverged, match=r"step \d+.*latest\.pt"):
        train(cfg, out=tmp_path, progress=False)


def test_nonfinite_rollback_lowers_learning_rate(tmp_path):
    cfg = resolve("dcgan", overrides={**TINY_IMAGE, "kimg": 0.256, "opt.G.lr": 1e30, "opt.D.lr": 1e30,
                                      "opt.G.name": "sgd", "opt.D.name": "sgd", "on_nonfinite": "rollback"})
    # Each rollback halves the rates; from 1e30 that never becomes finite, so the run must give up eventually.
    with pytest.raises(TrainingDiverged):
        train(cfg, out=tmp_path, progress=False)
    log = next(tmp_path.iterdir()) / "log.txt"
    assert "rolled back" in log.read_text()


def test_ema_half_life_and_update():
    net = torch.nn.ModuleDict({"G": torch.nn.Linear(1, 1, bias=False)})
    torch.nn.init.zeros_(net["G"].weight)
    ema = EMA(net, ("G",), half_life_kimg=1.0)
    # After exactly one half-life of images, an EMA tracking a constant target covers half the distance.
    assert ema.beta(batch=100, nimg=0) ** 10 == pytest.approx(0.5)
    with torch.no_grad():
        net["G"].weight.fill_(1.0)
    for i in range(10):
        ema.update(net, batch=100, nimg=100 * (i + 1))
    assert ema.nets["G"].weight.item() == pytest.approx(0.5)
    ramp = EMA(net, ("G",), half_life_kimg=10.0, rampup=0.05)
    assert ramp.beta(batch=64, nimg=1000) == pytest.approx(0.5 ** (64 / 50))   # min(10000, 0.05 * 1000)


def test_resume_refuses_to_change_architecture(tmp_path):
    run = train(resolve("dcgan", overrides={**TINY_IMAGE, "kimg": 0.256}), out=tmp_path, progress=False)
    cfg = resolve("dcgan", overrides={**TINY_IMAGE, "kimg": 0.512, "batch_size": 8})
    with pytest.raises(ConfigError, match="batch_size"):
        train(cfg, resume=run, progress=False, resume_overrides={"batch_size", "kimg"})


def test_tensorboard_logs_losses_and_images(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    run = train(resolve("dcgan", overrides={**TINY_IMAGE, "kimg": 0.512, "tensorboard": True}), out=tmp_path,
                progress=False)
    acc = EventAccumulator(str(run / "tensorboard"))
    acc.Reload()
    assert "D/loss" in acc.Tags()["scalars"] and "G/loss" in acc.Tags()["scalars"]
    assert "samples" in acc.Tags()["images"]


def test_vector_run_writes_scatter_snapshot(tmp_path):
    run = train(resolve("gan", overrides={"data.spec": "ring8", "kimg": 0.256, "batch_size": 64,
                                          "tick_kimg": 0.128, "snapshot_kimg": 0.256}), out=tmp_path, progress=False)
    from PIL import Image
    pngs = sorted(run.glob("samples-*.png"))
    assert pngs and Image.open(pngs[-1]).size[0] > 200
    G = gankit.load_generator(run)
    assert gankit.sample(G, 10, seed=0).shape == (10, 2)


def test_training_time_metrics_append_and_record_best(tmp_path):
    run = train(resolve("gan", overrides={"data.spec": "grid25", "kimg": 0.512, "batch_size": 64, "tick_kimg": 0.256,
                                          "snapshot_kimg": 0.512, "metrics": ["toy"], "metrics_kimg": 0.256,
                                          "metrics_n": 500}), out=tmp_path, progress=False)
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["kimg"] for r in records] == [0.256, 0.512]
    assert {"toy_modes", "toy_high_quality", "toy_reverse_kl"} <= set(records[0])
    best = json.loads((run / "best.json").read_text())
    assert best["metric"] == "toy_modes" and best["value"] == max(r["toy_modes"] for r in records)
    assert load_checkpoint(run)["best"] == best


def test_tick_stats_means_and_first_nonfinite_step_across_folds(monkeypatch):
    from gankit.runlog import TickStats
    monkeypatch.setattr(TickStats, "FOLD", 3)               # force several folds within one tick
    tick = TickStats()
    for step in range(8):
        loss = float("nan") if step in (5, 7) else float(step)
        tick.add("D", step, {"loss": torch.tensor(loss), "D/real": torch.tensor(2.0 * step)})
        extra = {"G/grad_norm": torch.tensor(1.0)} if step == 7 else {}   # a key logged on some steps only
        tick.add("G", step, {"loss": torch.tensor(-1.0), **extra})
    assert tick.first_nonfinite_step() == 5
    stats = tick.take()
    assert stats["D/real"] == pytest.approx(2.0 * 3.5) and stats["G/loss"] == -1.0 and stats["G/grad_norm"] == 1.0
    assert math.isnan(stats["D/loss"])
    assert tick.first_nonfinite_step() is None and tick.take() == {}
