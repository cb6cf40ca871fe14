"""gankit: Generative Adversarial Networks of every major family, in PyTorch."""
__version__ = "0.1.0"
