"""Networks: plain ``nn.Module``s, one file per family, registered by name.

Every constructor takes typed, defaulted, commented arguments. Arguments that come from the data are the
*interface* arguments, passed by the recipe through ``make_net`` (never by the user):

    z_dim          latent size of a noise-driven generator
    out_channels   image channels a generator emits (images)   | out_dim  vector size (vectors)
    in_channels    image channels a discriminator / translator reads | in_dim vector size (vectors)
    resolution     square image side in pixels
    length         samples of a 1-D signal (audio clips: WaveGAN)
    num_classes    > 0 for class-conditional networks (0 = unconditional)
    scale          upscaling factor of a super-resolution network (kind "upscaler": LR [N, C, h, w] -> [N, C, s h, s w])
    vocab_size     tokens of the vocabulary, seq_len  tokens per sequence (sequence data: gankit/nets/text.py)

A network that cannot make a requested resolution raises ``ConfigError`` naming the valid ones.

Every registered class declares ``kind`` ("image" | "vector" | "translator" | "patch"; "audio" and "voice" for
sound, which the shared tests skip and tests/test_audio*.py cover) and ``test_interface``
(a dict of small interface arguments): the shared tests in ``tests/test_nets.py`` build and check every
registered network from these, so a new network is tested the moment it is registered.

Generator convention: ``G(z [N, z_dim], label [N] or None) -> [N, C, H, W] in [-1, 1]`` (tanh output) or
``[N, out_dim]`` for vectors; generators expose ``z_dim``. Discriminator convention:
``D(x, label or None) -> [N]`` raw scores (no sigmoid; losses apply their own link). Translators map
``[N, C_in, H, W] -> [N, C_out, H, W]`` in [-1, 1]; patch discriminators return ``[N, 1, h, w]``.
"""
from .base import (SLOTS, build_net, check_kwargs, check_net_config, discriminators, generators, init_weights, inits,
                   kwargs_slot, make_net, networks, slot_for, unwrap)

# Importing a family file registers its networks. A new family = a new file + its name here.
from . import ctgan, dcgan, inpaint, mlp, patchgan, progan, resgan, resnet, stylegan2, superres, text, unet  # noqa: E402,F401
from . import cyclegan_vc, wavegan  # noqa: E402,F401  audio: WaveGAN (1-D), SpecGAN (2-D), CycleGAN-VC

__all__ = ["generators", "discriminators", "networks", "inits", "check_kwargs", "make_net", "init_weights",
           "build_net", "slot_for", "SLOTS", "kwargs_slot", "check_net_config", "unwrap"]
