"""gankit: Generative Adversarial Networks of every major family, in PyTorch.

Python API::

    import gankit
    cfg = gankit.resolve("wgan-gp", overrides={"data.spec": "grid25", "kimg": 20})
    run_dir = gankit.train(cfg)
    G = gankit.load_generator(run_dir / "latest.pt")
    images = gankit.sample(G, 16, seed=0)      # [16, C, H, W] in [-1, 1]
"""
__version__ = "0.1.0"

from .checkpoint import load_generator  # noqa: E402
from .config import TrainConfig, resolve  # noqa: E402
from .sample import sample  # noqa: E402
from .train import train  # noqa: E402

__all__ = ["TrainConfig", "resolve", "train", "load_generator", "sample", "__version__"]
