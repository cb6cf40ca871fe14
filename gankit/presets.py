"""Presets: one readable table, name -> config values, each citing where the values come from.

A preset is a partial ``TrainConfig`` as a nested dict; ``config.resolve`` lays it over the defaults. Every
preset trains on image data (convolutional networks) and on vector data (MLPs), chosen from the data.
"""
from __future__ import annotations

from .errors import ConfigError

# DCGAN networks and optimiser (Radford et al. 2016, sec. 4): N(0, 0.02) init, Adam lr 2e-4, beta1 0.5.
_DCGAN_NETS = {
    "G": {"image": "dcgan", "vector": "mlp", "init": "normal02"},
    "D": {"image": "dcgan", "vector": "mlp", "init": "normal02"},
}
_ADAM_DCGAN = {"name": "adam", "lr": 2e-4, "betas": [0.5, 0.999]}

# ---- Values for vector data (the 2-D toys ring8 / grid25), applied by config.resolve under the user's --set.
# What the papers share: a 2-D latent and ReLU MLPs (Gulrajani et al. 2017, gan_toy.py; Lin et al. 2018, PacGAN,
# sec. 5.1 and their code; Srivastava et al. 2017, VEEGAN). The rest was tuned here (benchmarks/toy_modes.py,
# docs/benchmarks.md) so that a run takes a few CPU minutes; the papers train for 100k-400k steps.
_TOY_LENGTH = {
    "kimg": 2560.0,                          # 20,000 steps of 128 (tuned here; ~2-4 min on one CPU thread)
    "tick_kimg": 64.0, "snapshot_kimg": 640.0,  # 40 stats lines, 4 snapshots + the last
    "snapshot_n": 1000,                      # points in the snapshot scatter plot
}
_TOY_G = {"init": "he", "vector_kwargs": {"norm": "none"}}  # see _TOY_NS
_TOY_NS = {
    # Non-saturating family (gan, dcgan, lsgan, cgan). Tuned here on grid25 (1 seed, 2500 EMA samples):
    # - z_dim 2 as in the papers (z_dim 8: 17-21 of 25 modes after 5k steps where 2 gave 24-25).
    # - No batch norm in G: with it the blobs stayed smeared into lines between modes (high-quality share 0.79
    #   after 20k steps, the same when sampling with batch statistics), without it 0.91; He init (He et al.
    #   2015, as in gan_toy.py) so the un-normalised ReLU stack starts with unit-scale outputs.
    # - R1 0.1 (Mescheder et al. 2018; gankit's lazy default, every 16 D steps): without it 20-23 of 25 modes.
    # - Adam lr 5e-4 (G) / 1e-3 (D), DCGAN betas: 2.5x / 5x the image values; G at 2e-4 found 11-15 modes.
    # - EMA of G, half-life 10 kimg (80 steps): the raw G oscillates (high-quality 0.3-0.8), its average does not.
    "opts": {"z_dim": 2, "r1_gamma": 0.1},
    "G": _TOY_G,
    "opt": {"G": {"lr": 5e-4}, "D": {"lr": 1e-3}},
    "batch_size": 128, "ema_kimg": 10.0, **_TOY_LENGTH,
}
_TOY_WGAN_GP = {
    # Gulrajani et al. 2017, gan_toy.py: 2-D latent, lambda 0.1 ("smaller lambda makes things faster for toy
    # tasks"), Adam betas (0.5, 0.9), 5 critic steps. Tuned here: lr 5e-4 (their 1e-4 had 0.15 high-quality
    # after 4000 G steps), batch 64 (their 256) to afford 12,000 G steps, G without batch norm as above, EMA.
    "opts": {"z_dim": 2, "gp_weight": 0.1},
    "G": _TOY_G,
    "opt": {"G": {"lr": 5e-4, "betas": [0.5, 0.9]}, "D": {"lr": 5e-4, "betas": [0.5, 0.9]}},
    **_TOY_LENGTH, "batch_size": 64, "kimg": 3840.0, "snapshot_kimg": 960.0, "ema_kimg": 20.0,
}
_TOY_WGAN = {
    # Weight clipping cannot fit modes this narrow (Gulrajani et al. 2017, fig. 1: the clipped critic misses
    # the toys' higher moments); 2-D latent and a run of a few minutes so the comparison can be made. RMSprop
    # at 4x the paper's 5e-5 (one run here: 20-22 of 25 modes, high-quality share 0.06 after 10k G steps).
    "opts": {"z_dim": 2},
    "G": _TOY_G,
    "opt": {"G": {"lr": 2e-4}, "D": {"lr": 2e-4}},
    **_TOY_LENGTH, "batch_size": 64, "kimg": 3200.0, "snapshot_kimg": 800.0, "ema_kimg": 20.0,
}
_TOY_HINGE = {
    # As _TOY_NS without R1 (spectral norm already constrains D); the preset's betas (0, 0.9) stay.
    # One run here: 25 of 25 modes on grid25, high-quality share 0.84 after 20k steps.
    "opts": {"z_dim": 2},
    "G": _TOY_G,
    "opt": {"G": {"lr": 5e-4}, "D": {"lr": 1e-3}},
    "batch_size": 128, "ema_kimg": 10.0, **_TOY_LENGTH,
}

PRESETS: dict[str, dict] = {
    "gan": {
        "description": "Goodfellow et al. 2014: the original minimax game with MLP generator and discriminator "
                       "(non-saturating G loss by default; --set loss=minimax for the saturating one).",
        "recipe": "gan",
        "opts": {"loss": "nonsaturating"},
        "G": {"image": "mlp_image", "vector": "mlp"},
        "D": {"image": "mlp_image", "vector": "mlp"},
        "opt": {"G": _ADAM_DCGAN, "D": _ADAM_DCGAN},
        "batch_size": 64, "kimg": 20.0,
        "per_kind": {"vector": _TOY_NS},
    },
    "dcgan": {
        "description": "Radford et al. 2016: strided transposed convolutions, batch norm, ReLU in G, LeakyReLU(0.2) "
                       "in D, N(0, 0.02) init, Adam 2e-4 beta1 0.5.",
        "recipe": "gan",
        "opts": {"loss": "nonsaturating"},
        **_DCGAN_NETS,
        "opt": {"G": _ADAM_DCGAN, "D": _ADAM_DCGAN},
        "batch_size": 64, "kimg": 20.0,
        "per_kind": {"vector": _TOY_NS},
    },
    "wgan": {
        "description": "Arjovsky et al. 2017 (Algorithm 1): critic without sigmoid, weights clipped to [-0.01, 0.01], "
                       "RMSprop 5e-5, 5 critic steps per generator step.",
        "recipe": "gan",
        "opts": {"loss": "wasserstein", "clip": 0.01},
        **_DCGAN_NETS,
        "opt": {"G": {"name": "rmsprop", "lr": 5e-5}, "D": {"name": "rmsprop", "lr": 5e-5}},
        "d_steps": 5, "batch_size": 64, "kimg": 40.0,
        "per_kind": {"vector": _TOY_WGAN},
    },
    "wgan-gp": {
        "description": "Gulrajani et al. 2017 (Algorithm 1): gradient penalty 10 on interpolates with alpha ~ U[0, 1], "
                       "no batch norm in the critic, Adam 1e-4 betas (0, 0.9), 5 critic steps.",
        "recipe": "gan",
        "opts": {"loss": "wasserstein", "gp_weight": 10.0},
        "G": {"image": "dcgan", "vector": "mlp", "init": "default"},
        "D": {"image": "dcgan", "vector": "mlp", "init": "default",
              "image_kwargs": {"norm": "none"}, "vector_kwargs": {"norm": "none"}},
        "opt": {"G": {"name": "adam", "lr": 1e-4, "betas": [0.0, 0.9]},
        "D": {"name": "adam", "lr": 1e-4, "betas": [0.0, 0.9]}},
        "d_steps": 5, "batch_size": 64, "kimg": 40.0,
        "per_kind": {"vector": _TOY_WGAN_GP},
    },
    "lsgan": {
        "description": "Mao et al. 2017: least-squares loss with targets a=0, b=c=1 on DCGAN networks.",
        "recipe": "gan",
        "opts": {"loss": "lsgan"},
        **_DCGAN_NETS,
        "opt": {"G": _ADAM_DCGAN, "D": _ADAM_DCGAN},
        "batch_size": 64, "kimg": 20.0,
        "per_kind": {"vector": _TOY_NS},
    },
    "hinge": {
        "description": "Lim & Ye 2017 / Miyato et al. 2018: hinge loss, spectral norm in D, Adam 2e-4 betas (0, 0.9), "
                       "TTUR (D lr 4e-4).",
        "recipe": "gan",
        "opts": {"loss": "hinge"},
        "G": {"image": "dcgan", "vector": "mlp", "init": "normal02"},
        "D": {"image": "dcgan", "vector": "mlp", "init": "normal02",
              "image_kwargs": {"norm": "spectral"}, "vector_kwargs": {"norm": "spectral"}},
        "opt": {"G": {"name": "adam", "lr": 1e-4, "betas": [0.0, 0.9]},
        "D": {"name": "adam", "lr": 4e-4, "betas": [0.0, 0.9]}},
        "batch_size": 64, "kimg": 20.0,
        "per_kind": {"vector": _TOY_HINGE},
    },
    "cgan": {
        "description": "Mirza & Osindero 2014: class-conditional DCGAN; the label embedding joins z in G and the input "
                       "of D (--set D.conditioning=projection for the projection D of Miyato & Koyama 2018).",
        "recipe": "gan",
        "opts": {"loss": "nonsaturating", "conditional": True},
        **_DCGAN_NETS,
        "opt": {"G": _ADAM_DCGAN, "D": _ADAM_DCGAN},
        "batch_size": 64, "kimg": 20.0,
        "per_kind": {"vector": _TOY_NS},
    },
    # Image-to-image translation. batch_size 16 instead of the papers' 1 (CycleGAN) / 1-10 (pix2pix): many times
    # the images/s on a CPU or GPU for small images, and batch norm (pix2pix) then normalises over a real batch
    # rather than one image; --set batch_size=1 restores the papers' setting. EMA off (the papers use none).
    "pix2pix": {
        "description": "Isola et al. 2017: U-Net generator with skips and dropout, PatchGAN on (input, output) with a "
                       "70x70 receptive field at 256 px (scaled to the image size), cGAN + 100 x L1, batch norm, "
                       "N(0, 0.02) init, Adam 2e-4 betas (0.5, 0.999). Paired data (a -> b).",
        "recipe": "pix2pix",
        "opts": {"gan_loss": "vanilla", "l1_weight": 100.0},
        "data": {"spec": "edges2digits"},
        "G": {"image": "unet", "vector": "", "init": "normal02", "image_kwargs": {"norm": "batch"}},
        "D": {"image": "patchgan", "vector": "", "init": "normal02", "image_kwargs": {"norm": "batch"}},
        "opt": {"G": _ADAM_DCGAN, "D": _ADAM_DCGAN},
        "batch_size": 16, "kimg": 40.0, "ema_kimg": 0.0, "snapshot_n": 8,
    },
    "cyclegan": {
        "description": "Zhu et al. 2017: two ResNet generators (reflection padding, instance norm, 6 blocks up to "
                       "128 px, 9 above), two PatchGANs, least-squares loss, cycle weight 10, identity 0.5 x cycle, "
                       "history pool of 50, Adam 2e-4 betas (0.5, 0.999), lr constant then linearly to 0 over the "
                       "second half. Unpaired data (a <-> b).",
        "recipe": "cyclegan",
        "opts": {"gan_loss": "lsgan", "cycle_weight": 10.0, "identity_weight": 0.5, "pool_size": 50,
                 "lr_decay_start": 0.5},
        "data": {"spec": "digits2inverted"},
        "G": {"image": "resnet", "vector": "", "init": "normal02", "image_kwargs": {"norm": "instance"}},
        "D": {"image": "patchgan", "vector": "", "init": "normal02", "image_kwargs": {"norm": "instance"}},
        "opt": {"G": _ADAM_DCGAN, "D": _ADAM_DCGAN},
        "batch_size": 16, "kimg": 40.0, "ema_kimg": 0.0, "snapshot_n": 8,
    },
    # ---- Text (gankit/recipes/text.py). Data: the SeqGAN oracle at CPU size (oracle-small: vocabulary 200,
    # length 12, 5k sequences); `--data oracle` is the paper's task (5000 / 20 / 10k), `--data words` or a .txt
    # file real text. Lengths (kimg = thousands of sequences) are CPU-sized (docs/benchmarks.md "text"); the
    # papers' are given beside them. EMA off (none of the papers uses one).
    "text-mle": {
        "description": "Maximum-likelihood language model (the baseline of Caccia et al. 2020): SeqGAN's LSTM "
                       "(embedding and hidden 32) by teacher forcing, Adam 1e-2 as SeqGAN pre-trains "
                       "(--set G.image=transformer for a causal Transformer). Sequence data; sample with "
                       "--temperature.",
        "recipe": "text-mle",
        "data": {"spec": "oracle-small"},
        "G": {"image": "lstm", "vector": "", "image_kwargs": {"emb_dim": 32, "hidden": 32}},
        "D": {"image": "", "vector": ""},
        "opt": {"G": {"name": "adam", "lr": 1e-2, "betas": [0.9, 0.999]}},
        # SeqGAN pre-trains 120 epochs of its 10k corpus (1200 kimg); 10 epochs of oracle-small here.
        "batch_size": 64, "kimg": 50.0, "tick_kimg": 2.0, "snapshot_kimg": 10.0, "snapshot_n": 32,
        "ema_kimg": 0.0,
    },
    "text-wgan-gp": {
        "description": "Gulrajani et al. 2017 sec. 5 language model: 1-D residual CNN generator (5 blocks) emitting "
                       "a softmax per position, critic on one-hot real vs softmax fake, gradient penalty 10, "
                       "10 critic steps, Adam 1e-4 betas (0.5, 0.9); samples are the per-position argmax.",
        "recipe": "text-wgan-gp",
        "opts": {"z_dim": 128, "gp_weight": 10.0},
        "data": {"spec": "oracle-small"},
        # Paper: dim 512 (CPU: 64), batch 64, 200k generator iterations; here 1000 (10 critic batches each).
        "G": {"image": "cnn_softmax", "vector": "", "image_kwargs": {"dim": 64}},
        "D": {"image": "cnn_critic", "vector": "", "image_kwargs": {"dim": 64}},
        "opt": {"G": {"name": "adam", "lr": 1e-4, "betas": [0.5, 0.9]},
                "D": {"name": "adam", "lr": 1e-4, "betas": [0.5, 0.9]}},
        "d_steps": 10, "batch_size": 64, "kimg": 640.0, "tick_kimg": 16.0, "snapshot_kimg": 128.0,
        "snapshot_n": 32, "ema_kimg": 0.0,
    },
    "seqgan": {
        "description": "Yu et al. 2017: LSTM generator (32/32), MLE pre-training, CNN discriminator with highway, "
                       "then REINFORCE with 16 Monte-Carlo roll-outs per prefix; Adam 1e-2 (G, pre-training and "
                       "adversarial), 1e-4 (D).",
        "recipe": "seqgan",
        "opts": {"pretrain_kimg": 50.0, "d_pretrain_kimg": 10.0, "rollouts": 16},
        "data": {"spec": "oracle-small"},
        "G": {"image": "lstm", "vector": "", "image_kwargs": {"emb_dim": 32, "hidden": 32}},
        "D": {"image": "text_cnn", "vector": "", "image_kwargs": {"emb_dim": 64}},
        "opt": {"G_mle": {"name": "adam", "lr": 1e-2, "betas": [0.9, 0.999]},
                "G": {"name": "adam", "lr": 1e-2, "betas": [0.9, 0.999]},
                "D": {"name": "adam", "lr": 1e-4, "betas": [0.9, 0.999]}},
        # SeqGAN: 200 adversarial epochs of 1 G step + 5 x 3 D epochs; here 3 D batches per G step and 25 kimg
        # of adversarial training (~100 G steps) after 50 + 10 kimg of pre-training.
        "d_steps": 3, "batch_size": 64, "kimg": 85.0, "tick_kimg": 2.0, "snapshot_kimg": 10.0, "snapshot_n": 32,
        "ema_kimg": 0.0,
    },
    "relgan": {
        "description": "Nie et al. 2019: MLE pre-training (Adam 1e-2), then Gumbel-softmax with inverse temperature "
                       "beta_max ** progress (beta_max 100), relativistic standard loss, multiple-representation "
                       "CNN discriminator, Adam 1e-4; an LSTM generator instead of relational memory.",
        "recipe": "relgan",
        "opts": {"pretrain_kimg": 50.0, "beta_max": 100.0, "beta_schedule": "exp"},
        "data": {"spec": "oracle-small"},
        "G": {"image": "lstm", "vector": "", "image_kwargs": {"emb_dim": 32, "hidden": 32}},
        "D": {"image": "relgan_cnn", "vector": "", "image_kwargs": {"num_rep": 16, "emb_dim": 32}},
        "opt": {"G_mle": {"name": "adam", "lr": 1e-2, "betas": [0.9, 0.999]},
                "G": {"name": "adam", "lr": 1e-4, "betas": [0.9, 0.999]},
                "D": {"name": "adam", "lr": 1e-4, "betas": [0.9, 0.999]}},
        # RelGAN: 150 pre-training epochs, 3000-5000 adversarial steps of batch 64; here 50 kimg + ~550 steps.
        "d_steps": 1, "batch_size": 64, "kimg": 120.0, "tick_kimg": 2.0, "snapshot_kimg": 10.0,
        "snapshot_n": 32, "ema_kimg": 0.0,
    },
}


def get_preset(name: str) -> dict:
    if name not in PRESETS:
        import difflib
        close = difflib.get_close_matches(name, PRESETS, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ConfigError(f"Unknown preset {name!r}.{hint} Valid presets: {', '.join(PRESETS)}.")
    return {k: v for k, v in PRESETS[name].items()}


def preset_names() -> list[str]:
    return list(PRESETS)
