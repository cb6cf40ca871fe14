"""gankit: Generative Adversarial Networks of every major family, in PyTorch.

Python API::

    import gankit
    cfg = gankit.resolve("wgan-gp", overrides={"data.spec": "grid25", "kimg": 20})
    run_dir = gankit.train(cfg)
    G = gankit.load_generator(run_dir / "latest.pt")
    images = gankit.sample(G, 16, seed=0)      # [16, C, H, W] in [-1, 1]

The names are imported on first use (PEP 562), so ``import gankit.cli`` (what ``gankit --help`` runs) does not
load torch.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .version import __version__

# public name -> module that defines it
_API = {"TrainConfig": "gankit.config", "resolve": "gankit.engine", "train": "gankit.engine",
        "load_generator": "gankit.loading", "load_sampler": "gankit.loading", "sample": "gankit.sample",
        "export": "gankit.export", "write_report": "gankit.report"}

__all__ = [*_API, "__version__"]

if TYPE_CHECKING:
    from .config import TrainConfig
    from .engine import resolve, train
    from .export import export
    from .loading import load_generator, load_sampler
    from .report import write_report
    from .sample import sample


def __getattr__(name: str) -> Any:
    if name in _API:
        value = getattr(importlib.import_module(_API[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'gankit' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_API))
