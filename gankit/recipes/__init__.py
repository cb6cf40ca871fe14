"""Recipes: one file per GAN family, registered by name (see ``base.py`` for the contract)."""
from .base import Recipe, recipes  # noqa: F401

# Importing a family file registers it. A new family = a new file + its name here.
from . import gan, pix2pix, cyclegan, ctgan, biggan, progan, inpaint, superres, stylegan2, text  # noqa: E402,F401
from . import cyclegan_vc, wavegan  # noqa: E402,F401  audio: WaveGAN, SpecGAN, CycleGAN-VC(2)
