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
import sys
import types
from typing import TYPE_CHECKING, Any

from .version import __version__

# public name -> module that defines it
_API = {"TrainConfig": "gankit.config", "resolve": "gankit.engine", "train": "gankit.engine",
        "load_generator": "gankit.loading", "load_sampler": "gankit.loading", "sample": "gankit.sample",
        "write_report": "gankit.report"}

__all__ = [*_API, "__version__"]

if TYPE_CHECKING:
    from .config import TrainConfig
    from .engine import resolve, train
    from .loading import load_generator, load_sampler
    from .report import write_report
    from .sample import sample


class _Package(types.ModuleType):
    """``gankit`` itself: API names load on first use. ``gankit.sample`` is also a submodule; importing it must
    not replace the function of that name (as the eager imports never did)."""

    def __getattr__(self, name: str) -> Any:
        if name in _API:
            value = getattr(importlib.import_module(_API[name]), name)
            super().__setattr__(name, value)
            return value
        raise AttributeError(f"module 'gankit' has no attribute {name!r}")

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _API and isinstance(value, types.ModuleType):
            # The import system binds a submodule to its package; the API function of that name wins
            # (the submodule stays reachable in sys.modules and through ``from gankit.sample import ...``).
            return
        super().__setattr__(name, value)

    def __dir__(self) -> list[str]:
        return sorted(set(self.__dict__) | set(_API))


sys.modules[__name__].__class__ = _Package
