"""CUDA paths: skipped without a GPU (CI has none); run on the lent GPU machine by benchmarks/gpu_check.sh."""
import pytest
import torch

from gankit.checkpoint import load_checkpoint
from gankit.engine import resolve
from gankit.engine import train

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")

TINY = {"data.spec": "digits", "data.resolution": 32, "batch_size": 32, "tick_kimg": 0.256, "snapshot_kimg": 0.512,
        "snapshot_n": 16, "device": "cuda"}


@pytest.mark.parametrize("preset,extra", [("dcgan", {"ema_kimg": 0.1}), ("wgan-gp", {"amp": "bf16"}),
                                          ("hinge", {"amp": "bf16"}), ("pix2pix", {"data.spec": "edges2digits"}),
                                          ("cyclegan", {"data.spec": "digits2inverted"})])
def test_cuda_training_runs_and_checkpoints_load_on_cpu(tmp_path, preset, extra):
    run = train(resolve(preset, overrides={**TINY, **extra, "kimg": 0.512}), out=tmp_path, progress=False)
    ckpt = load_checkpoint(run / "latest.pt")           # mapped to the CPU
    tensors = [t for t in _leaves(ckpt["nets"]) if isinstance(t, torch.Tensor)]   # CycleGAN nests its pools
    assert tensors and all(t.device.type == "cpu" for t in tensors)
    assert "cuda" in ckpt["rng"]


def _leaves(tree):
    if isinstance(tree, dict):
        for v in tree.values():
            yield from _leaves(v)
    elif isinstance(tree, (list, tuple)):
        for v in tree:
            yield from _leaves(v)
    else:
        yield tree


def test_cuda_resume_matches_uninterrupted_run(tmp_path):
    # cuDNN kernels may be non-deterministic; determinism is requested for this check.
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    over = {**TINY, "seed": 3}
    full = train(resolve("dcgan", overrides={**over, "kimg": 0.512}), out=tmp_path / "a", progress=False)
    half = train(resolve("dcgan", overrides={**over, "kimg": 0.256}), out=tmp_path / "b", progress=False)
    train(resolve("dcgan", overrides={**over, "kimg": 0.512}), resume=half, progress=False, resume_overrides={"kimg"})
    a, b = load_checkpoint(full), load_checkpoint(half)
    worst = max((a["nets"][k].float() - b["nets"][k].float()).abs().max().item() for k in a["nets"])
    assert a["nimg"] == b["nimg"] and worst < 1e-5, worst
