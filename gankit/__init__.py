"""gankit: Generative Adversarial Networks of every major family, in PyTorch.

Python API::

    import gankit
    cfg = gankit.resolve("wgan-gp", overrides={"data.spec": "grid25", "kimg": 20})
    run_dir = gankit.train(cfg)
    G = gankit.load_generator(run_dir / "latest.pt")
    images = gankit.sample(G, 16, seed=0)      # [16, C, H, W] in [-1, 1]
"""
from .version import __version__
from .config import TrainConfig
from .engine import resolve, train
from .loading import load_generator, load_sampler
from .sample import sample

__all__ = ["TrainConfig", "resolve", "train", "load_generator", "load_sampler", "sample", "__version__"]
