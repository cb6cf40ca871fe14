"""The engine under torchrun, on 2 CPU processes joined by gloo (tests/dist_harness.py).

Rank r trains on the r-th slice of the global batch (data and noise), DDP averages the gradients, so one step of
2 processes x batch B equals one step of 1 process x batch 2B for networks without batch norm; both ranks start
from identical weights; only rank 0 writes the run; resume under torchrun is exact.
"""
import json

import pytest
import torch

from dist_harness import run_world
from gankit.checkpoint import load_checkpoint
from gankit.engine import build, resolve, train
from gankit.engine.distributed import init_world, unwrap

# WGAN-GP on the 2-D toy: MLPs without batch norm (the preset's toy values), a gradient penalty (double backward
# through DDP), 5 D steps per G step.
def _toy(batch: int, **extra):
    return resolve("wgan-gp", overrides={"data.spec": "grid25", "kimg": 1.0, "tick_kimg": 0.064,
                                         "snapshot_kimg": 0.128, "snapshot_n": 16, "ema_kimg": 0.0,
                                         "batch_size": batch, "G.hidden": 32, "D.hidden": 32, **extra})


def _state(trainer):
    return {f"{n}.{k}": v.detach().clone() for n, net in trainer.recipe.nets.items()
            for k, v in unwrap(net).state_dict().items()}


def _one_step(rank, world_size, batch):
    world = init_world("cpu")
    assert (world.rank, world.world_size) == (rank, world_size)
    trainer, _ = build(_toy(batch), torch.device("cpu"), world=world)
    start = _state(trainer)
    trainer.train_step()
    stats = trainer.take_tick_stats()
    return start, _state(trainer), trainer.nimg, stats


def test_two_ranks_x_batch_b_equal_one_process_x_batch_2b(tmp_path):
    (start0, after0, nimg0, _), (start1, after1, nimg1, _) = run_world(_one_step, 2, tmp_path, 16)
    for k in start0:                                   # identical weights on both ranks, before and after
        assert torch.equal(start0[k], start1[k]) and torch.equal(after0[k], after1[k]), k
    trainer, _ = build(_toy(32), torch.device("cpu"))
    single_start = _state(trainer)
    trainer.train_step()
    single = _state(trainer)
    assert nimg0 == nimg1 == trainer.nimg == 5 * 32    # kimg counts the global batch
    for k in single:
        assert torch.equal(single_start[k], start0[k]), k
        assert torch.allclose(after0[k], single[k], rtol=1e-4, atol=1e-6), (k, (after0[k] - single[k]).abs().max())
    moved = [k for k in single if not torch.equal(single[k], single_start[k])]
    assert moved, "one step should move the parameters"


def _runs(rank, world_size, out):
    # One step draws 5 D batches x 32 = 160 images; ticks every step.
    full = train(_toy(16, kimg=0.48, tick_kimg=0.16), out=f"{out}/full", progress=False)
    half = train(_toy(16, kimg=0.32, tick_kimg=0.16), out=f"{out}/half", progress=False)
    resumed = train(_toy(16, kimg=0.48, tick_kimg=0.16), resume=half, progress=False, resume_overrides={"kimg"})
    return str(full), str(resumed)


def test_train_resume_and_files_under_two_ranks(tmp_path):
    (full0, res0), (full1, res1) = run_world(_runs, 2, tmp_path, str(tmp_path))
    assert full0 == full1 and res0 == res1              # one run directory, named by rank 0 for both
    runs = list((tmp_path / "full").iterdir())
    assert len(runs) == 1
    records = [json.loads(x) for x in (runs[0] / "stats.jsonl").read_text().splitlines()]
    assert [r["kimg"] for r in records] == [0.16, 0.32, 0.48]   # written once, not once per rank
    assert "D/gp" in records[0] and "D/grad_norm" in records[0]
    a, b = load_checkpoint(full0), load_checkpoint(res0)
    assert a["nimg"] == b["nimg"] == 480
    for key in a["nets"]:
        assert ".module." not in key                   # checkpoints never hold the DDP wrappers
        assert torch.equal(a["nets"][key], b["nets"][key]), key
    for name in a["opt"]:
        for idx, st in a["opt"][name]["state"].items():
            for k, v in st.items():
                assert torch.equal(torch.as_tensor(v), torch.as_tensor(b["opt"][name]["state"][idx][k])), (name, k)
    # The 2-rank checkpoint loads and samples in one process.
    import gankit
    assert gankit.sample(gankit.load_generator(full0), 4, seed=0).shape == (4, 2)
    log = (runs[0] / "log.txt").read_text()
    assert "ranks=2" in log and log.count("started at") == 1


@pytest.mark.parametrize("world_size", [2])
def test_lazy_r1_phase_syncs_under_ddp(tmp_path, world_size):
    """The R1-only phase does not reach D's last bias; the engine's zero term makes DDP all-reduce anyway."""
    results = run_world(_r1_step, world_size, tmp_path)
    for k in results[0]:
        assert torch.equal(results[0][k], results[1][k]), k


def _r1_step(rank, world_size):
    world = init_world("cpu")
    cfg = resolve("gan", overrides={"data.spec": "grid25", "batch_size": 16, "r1_gamma": 1.0, "r1_phase": True,
                                    "r1_interval": 1, "G.hidden": 32, "D.hidden": 32, "D.norm": "none"})
    trainer, _ = build(cfg, torch.device("cpu"), world=world)
    for _ in range(2):
        trainer.train_step()
    return _state(trainer)
