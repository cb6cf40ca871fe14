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
# CTGAN's optimisers (Xu et al. 2019, appendix; the authors' code): Adam lr 2e-4, betas (0.5, 0.9), decay 1e-6.
_ADAM_CTGAN = {"name": "adam", "lr": 2e-4, "betas": [0.5, 0.9], "weight_decay": 1e-6}
_ADAM_WGAN_AUDIO = {"name": "adam", "lr": 1e-4, "betas": [0.5, 0.9]}   # Donahue et al. 2019, table 4
_ADAM_STYLEGAN2 = {"name": "adam", "lr": 0.002, "betas": [0.0, 0.99], "eps": 1e-8}  # Karras et al. 2020, config F

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
    # ---- Class-conditional ResNet GANs and progressive growing (issue 10). The papers' runs are 100k+ steps at
    # batch 64-2048 on GPUs; the lengths here (kimg) are CPU-sized, ``--set kimg=...`` restores a real run.
    # MNIST (28 px) is trained at 32 px (data.resolution): the networks are the papers' 32 px (CIFAR) ones.
    "sngan": {
        "description": "Miyato et al. 2018 / Miyato & Koyama 2018: ResNet G with class-conditional batch norm, ResNet "
                       "D with spectral norm and the projection term, hinge loss, 5 D steps, Adam 2e-4 betas (0, 0.9).",
        "recipe": "gan",
        "opts": {"loss": "hinge", "conditional": True, "z_dim": 128},
        "G": {"image": "sngan", "vector": "mlp", "init": "xavier"},      # Glorot init (their chainer code)
        "D": {"image": "sngan", "vector": "mlp", "init": "xavier", "vector_kwargs": {"norm": "spectral"}},
        "opt": {"G": {"name": "adam", "lr": 2e-4, "betas": [0.0, 0.9]},
                "D": {"name": "adam", "lr": 2e-4, "betas": [0.0, 0.9]}},
        "d_steps": 5, "batch_size": 64, "kimg": 20.0, "data": {"resolution": 32},
        "per_kind": {"vector": {**_TOY_HINGE, "opts": {"z_dim": 2, "conditional": False}}},
    },
    "sagan": {
        "description": "Zhang et al. 2019: SNGAN's networks with self-attention (feature side 16 at 32 px, "
                       "G.attention / D.attention), spectral norm in G and D, hinge loss, TTUR (G 1e-4, D 4e-4), "
                       "1 D step, Adam betas (0, 0.9).",
        "recipe": "gan",
        "opts": {"loss": "hinge", "conditional": True, "z_dim": 128},
        "G": {"image": "sagan", "vector": "mlp", "init": "orthogonal"},  # SAGAN's code: orthogonal init
        "D": {"image": "sagan", "vector": "mlp", "init": "orthogonal", "vector_kwargs": {"norm": "spectral"}},
        "opt": {"G": {"name": "adam", "lr": 1e-4, "betas": [0.0, 0.9]},
                "D": {"name": "adam", "lr": 4e-4, "betas": [0.0, 0.9]}},
        "d_steps": 1, "batch_size": 64, "kimg": 20.0, "data": {"resolution": 32},
        "per_kind": {"vector": {**_TOY_HINGE, "opts": {"z_dim": 2, "conditional": False}}},
    },
    "biggan": {
        "description": "Brock et al. 2019: shared class embedding, hierarchical z into conditional batch norm, "
                       "self-attention, spectral norm in G and D, orthogonal init and regularisation (beta 1e-4), hinge "
                       "loss, 2 D steps, Adam G 5e-5 / D 2e-4 betas (0, 0.999), EMA of G after a start delay; "
                       "--set G.deep=true G.hierarchical=false D.deep=true for BigGAN-deep, grad_accum=N for larger batches, "
                       "`gankit sample --truncation T` for the truncation trick.",
        "recipe": "biggan",
        "opts": {"loss": "hinge", "conditional": True, "z_dim": 128, "ortho_beta": 1e-4},  # 128 = 4 chunks of 32
        "G": {"image": "biggan", "vector": "", "init": "orthogonal"},
        "D": {"image": "biggan", "vector": "", "init": "orthogonal"},
        "opt": {"G": {"name": "adam", "lr": 5e-5, "betas": [0.0, 0.999], "eps": 1e-6},
                "D": {"name": "adam", "lr": 2e-4, "betas": [0.0, 0.999], "eps": 1e-6}},
        # BigGAN-PyTorch: EMA decay 0.9999 per step, started after 20k iterations; scaled to the CPU length.
        "d_steps": 2, "batch_size": 64, "kimg": 20.0, "ema_kimg": 1.0, "ema_start_kimg": 5.0,
        "data": {"resolution": 32},
    },
    "progan": {
        "description": "Karras et al. 2018: progressive growing from 4x4 with fade-in (stable_kimg / fade_kimg per "
                       "phase; 600 in the official code, 800 in the paper), equalised learning rate, pixel norm, "
                       "minibatch stddev, WGAN-GP (10) with drift 0.001, Adam 1e-3 betas (0, 0.99), EMA of G; "
                       "--set opts.conditional=true: one-hot label joined to z (official code), projection D.",
        "recipe": "progan",
        "opts": {"loss": "wasserstein", "gp_weight": 10.0, "drift": 0.001, "z_dim": 128,
                 "stable_kimg": 4.0, "fade_kimg": 4.0},               # 7 phases to 32 px = 28 kimg (CPU scale)
        "G": {"image": "progan", "vector": "", "init": "default",   # equalised lr: N(0, 1) weights, run-time scale
              "image_kwargs": {"fmap_base": 1024, "fmap_max": 128}},
        "D": {"image": "progan", "vector": "", "init": "default", "image_kwargs": {"fmap_base": 1024, "fmap_max": 128}},
        "opt": {"G": {"name": "adam", "lr": 1e-3, "betas": [0.0, 0.99], "eps": 1e-8},
                "D": {"name": "adam", "lr": 1e-3, "betas": [0.0, 0.99], "eps": 1e-8}},
        "batch_size": 32, "kimg": 32.0, "ema_kimg": 10.0, "data": {"resolution": 32},   # G smoothing 10 kimg (official)
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
                       "second half. Unpaired data (a <-> b). The identity term keeps colours (photo <-> painting) "
                       "and pulls against an inversion: on the builtin digits2inverted use --set identity_weight=0 "
                       "(with the paper's 0.5 it fails the task; docs/benchmarks.md).",
        "recipe": "cyclegan",
        "opts": {"gan_loss": "lsgan", "cycle_weight": 10.0, "identity_weight": 0.5, "pool_size": 50,
                 "lr_decay_start": 0.5},
        "data": {"spec": "digits2inverted"},
        "G": {"image": "resnet", "vector": "", "init": "normal02", "image_kwargs": {"norm": "instance"}},
        "D": {"image": "patchgan", "vector": "", "init": "normal02", "image_kwargs": {"norm": "instance"}},
        "opt": {"G": _ADAM_DCGAN, "D": _ADAM_DCGAN},
        "batch_size": 16, "kimg": 40.0, "ema_kimg": 0.0, "snapshot_n": 8,
    },
    "ctgan": {
        "description": "Xu et al. 2019: conditional tabular GAN: mode-specific normalisation (variational "
                       "Gaussian mixtures, 10 modes), conditional vector with training-by-sampling, Gumbel-softmax "
                       "(tau 0.2), residual G (256, 256), D (256, 256) with dropout 0.5 on packs of 10 rows, "
                       "WGAN-GP (lambda 10), Adam 2e-4 betas (0.5, 0.9) weight decay 1e-6, batch 500. Tables.",
        "recipe": "ctgan",
        "opts": {"loss": "wasserstein", "gp_weight": 10.0, "pac": 10, "z_dim": 128, "tau": 0.2},
        "data": {"spec": "penguins"},
        "G": {"image": "", "vector": "ctgan"},
        "D": {"image": "", "vector": "ctgan"},
        "opt": {"G": _ADAM_CTGAN, "D": _ADAM_CTGAN},
        # CTGAN trains 300 epochs of max(1, N // 500) steps: on the penguins' 275 training rows that is 300 steps
        # of 500 = 150 kimg. Measured here (docs/benchmarks.md): small tables do better with more, smaller steps
        # (--batch 100 --kimg 200: TSTR forest accuracy 0.81 vs 0.42 after 200 steps of 500).
        "batch_size": 500, "kimg": 150.0, "tick_kimg": 10.0, "snapshot_kimg": 50.0, "snapshot_n": 100,
    },
    "ctgan-dp": {
        "description": "CTGAN with a differentially private discriminator (DP-SGD through Opacus, Abadi et al. "
                       "2016): epsilon 3, delta 1e-5 by default, per-row clipping 1.0, Poisson sampling; no "
                       "packing (pac 1: one row = one clipped gradient) and the non-saturating loss instead of "
                       "WGAN-GP (a gradient penalty conflicts with per-sample gradients). Tables.",
        "recipe": "ctgan",
        "opts": {"loss": "nonsaturating", "gp_weight": 0.0, "pac": 1, "z_dim": 128, "tau": 0.2},
        "data": {"spec": "penguins"},
        "G": {"image": "", "vector": "ctgan"},
        "D": {"image": "", "vector": "ctgan"},
        "opt": {"G": _ADAM_CTGAN, "D": _ADAM_CTGAN},
        # Batch 64 of ~275 rows: sampling rate 0.23 (DP-SGD needs batch < rows); 50 kimg = 782 D steps.
        "batch_size": 64, "kimg": 50.0, "tick_kimg": 5.0, "snapshot_kimg": 25.0, "snapshot_n": 100,
        "strategy": {"privacy": {"epsilon": 3.0, "delta": 1e-5, "max_grad_norm": 1.0}},
    },
    # ---- Sound (Donahue et al. 2019, "Adversarial Audio Synthesis", sec. 5 and appendix table 4): WGAN-GP with
    # lambda 10, 5 critic steps per G step, Adam 1e-4 betas (0.5, 0.9), batch 64, z of 100, model size d = 64,
    # 16384-sample clips at 16 kHz, no EMA. For a CPU-sized model: --set G.model_size=16 --set D.model_size=16.
    "wavegan": {
        "description": "Donahue et al. 2019: raw-waveform GAN, 1-D transposed convolutions (kernel 25, stride 4) "
                       "to 16384 samples at 16 kHz, phase shuffle n=2 in D, WGAN-GP (lambda 10, 5 D steps), Adam 1e-4 "
                       "betas (0.5, 0.9). Audio data (spoken-digits, tones, a folder of .wav).",
        "recipe": "wavegan",
        "opts": {"loss": "wasserstein", "gp_weight": 10.0, "z_dim": 100},
        "data": {"spec": "spoken-digits"},
        "G": {"image": "wavegan", "vector": "", "image_kwargs": {"model_size": 64}},
        "D": {"image": "wavegan", "vector": "", "image_kwargs": {"model_size": 64, "phase_shuffle": 2}},
        "opt": {"G": _ADAM_WGAN_AUDIO, "D": _ADAM_WGAN_AUDIO},
        "d_steps": 5, "batch_size": 64, "kimg": 500.0, "ema_kimg": 0.0, "snapshot_n": 16,
        "tick_kimg": 5.0, "snapshot_kimg": 50.0,
    },
    "specgan": {
        "description": "Donahue et al. 2019: DCGAN-like 2-D GAN (5x5 kernels, stride 2) on 128x128 log-magnitude "
                       "spectrograms normalised per frequency (clipped at 3 std), WGAN-GP as WaveGAN; sound by 16 "
                       "Griffin-Lim iterations. Audio data, used as spectrograms.",
        "recipe": "specgan",
        "opts": {"loss": "wasserstein", "gp_weight": 10.0, "z_dim": 100, "griffin_lim_iters": 16},
        "data": {"spec": "spoken-digits"},
        "G": {"image": "specgan", "vector": "", "image_kwargs": {"model_size": 64}},
        "D": {"image": "specgan", "vector": "", "image_kwargs": {"model_size": 64}},
        "opt": {"G": _ADAM_WGAN_AUDIO, "D": _ADAM_WGAN_AUDIO},
        "d_steps": 5, "batch_size": 64, "kimg": 500.0, "ema_kimg": 0.0, "snapshot_n": 16,
        "tick_kimg": 5.0, "snapshot_kimg": 50.0,
    },
    # Voice conversion (Kaneko & Kameoka 2018 sec. 4.1; Kaneko et al. 2019 sec. 4.1): Adam G 2e-4 / D 1e-4,
    # beta1 0.5, batch 1, lambda_cyc 10, lambda_id 5 for the first 10^4 iterations, 128-frame segments.
    "cyclegan-vc": {
        "description": "Kaneko & Kameoka 2018: non-parallel voice conversion on WORLD mel-cepstra, 1-D gated CNN "
                       "generators, 2-D gated PatchGAN discriminators, least squares, cycle 10, identity 5 (first "
                       "10k iterations), log-F0 transform, WORLD vocoder. Voice data (digit-voices).",
        "recipe": "cyclegan-vc",
        "opts": {"two_step": False, "cycle_weight": 10.0, "identity_weight": 5.0, "identity_kimg": 10.0},
        "data": {"spec": "digit-voices"},
        "G": {"image": "cyclegan_vc", "vector": ""},
        "D": {"image": "vc_patch", "vector": ""},
        "opt": {"G": {"name": "adam", "lr": 2e-4, "betas": [0.5, 0.999]},
                "D": {"name": "adam", "lr": 1e-4, "betas": [0.5, 0.999]}},
        "batch_size": 1, "kimg": 200.0, "ema_kimg": 0.0, "snapshot_n": 4, "tick_kimg": 1.0, "snapshot_kimg": 20.0,
    },
    "cyclegan-vc2": {
        "description": "Kaneko et al. 2019: CycleGAN-VC2, the 2-1-2D gated generator, PatchGAN discriminators and "
                       "the two-step adversarial loss (extra discriminators on cycled features); otherwise as "
                       "cyclegan-vc.",
        "recipe": "cyclegan-vc",
        "opts": {"two_step": True, "cycle_weight": 10.0, "identity_weight": 5.0, "identity_kimg": 10.0},
        "data": {"spec": "digit-voices"},
        "G": {"image": "cyclegan_vc2", "vector": ""},
        "D": {"image": "vc_patch", "vector": ""},
        "opt": {"G": {"name": "adam", "lr": 2e-4, "betas": [0.5, 0.999]},
                "D": {"name": "adam", "lr": 1e-4, "betas": [0.5, 0.999]}},
        "batch_size": 1, "kimg": 200.0, "ema_kimg": 0.0, "snapshot_n": 4, "tick_kimg": 1.0, "snapshot_kimg": 20.0,
    },
    # StyleGAN2 (Karras et al. 2020, config F; NVlabs stylegan2-ada-pytorch train.py cfg "stylegan2"): Adam lr
    # 0.002, betas (0, 0.99), eps 1e-8 (before the lazy correction the engine applies), batch 32, G EMA half-life
    # 10 kimg, z = w = 512, 8 mapping layers at lr x 0.01, widths min(32768 / r, 512). r1_gamma: ADA's heuristic
    # 0.0002 R^2 / batch unless set (the paper used 10 at 1024 px). The paper trains 25,000 kimg; 1000 here as a
    # starting point. On a CPU use small widths, e.g. --set G.channel_base=2048 --set G.channel_max=128 (same
    # for D) --set z_dim=128 at 32 px (docs/benchmarks.md).
    "stylegan2": {
        "description": "Karras et al. 2020 (StyleGAN2 config F): mapping network, modulated/demodulated convs, noise "
                       "inputs, skip G, residual D with minibatch std, non-saturating loss, lazy R1 (gamma "
                       "0.0002 R^2/batch unless set) and path length (2, every 4), style mixing 0.9, EMA 10 kimg, "
                       "Adam 0.002 betas (0, 0.99). Pure PyTorch; 8 to 1024 px, 1 or 3 channels.",
        "recipe": "stylegan2",
        "opts": {"z_dim": 512, "style_mixing": 0.9, "pl_weight": 2.0, "r1_interval": 16, "pl_interval": 4},
        "G": {"image": "stylegan2", "vector": "", "init": "default"},
        "D": {"image": "stylegan2", "vector": "", "init": "default"},
        "opt": {"G": _ADAM_STYLEGAN2, "D": _ADAM_STYLEGAN2},
        "batch_size": 32, "kimg": 1000.0, "ema_kimg": 10.0, "ema_rampup": 0.0,
        "tick_kimg": 4.0, "snapshot_kimg": 50.0,
    },
    # StyleGAN2-ADA (Karras et al. 2020, "Training GANs with Limited Data"; train.py --aug=ada): the 'bgc'
    # pipeline, target r_t = 0.6, p adjusted every 4 steps so that it can move 0 -> 1 in 500 kimg; EMA ramp-up
    # 0.05 (train.py cfg auto: half-life <= 5% of the images seen), the rest as stylegan2.
    "stylegan2-ada": {
        "description": "Karras et al. 2020 (StyleGAN2-ADA): StyleGAN2 with adaptive discriminator augmentation "
                       "(geometric + colour, p adapted towards r_t = E[sign D(real)] = 0.6, 500 kimg from 0 to 1), "
                       "EMA ramp-up 0.05; for small datasets.",
        "recipe": "stylegan2",
        "opts": {"z_dim": 512, "style_mixing": 0.9, "pl_weight": 2.0, "r1_interval": 16, "pl_interval": 4,
                 "augment": "ada", "ada_target": 0.6, "ada_kimg": 500.0, "ada_interval": 4},
        "G": {"image": "stylegan2", "vector": "", "init": "default"},
        "D": {"image": "stylegan2", "vector": "", "init": "default"},
        "opt": {"G": _ADAM_STYLEGAN2, "D": _ADAM_STYLEGAN2},
        "batch_size": 32, "kimg": 1000.0, "ema_kimg": 10.0, "ema_rampup": 0.05,
        "tick_kimg": 4.0, "snapshot_kimg": 50.0,
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

# ---- Image restoration (issue 11). Super-resolution trains on superres data: HR crops of the training photos
# (photo-crops; chelsea, coffee and flower held out) degraded by PIL's bicubic at x4 (--set scale=2|4|8). Values
# from the papers; the run lengths (kimg) are CPU-sized, far below the papers' 10^5-10^6 updates of 16 crops.
_SR_ADAM = {"name": "adam", "lr": 1e-4, "betas": [0.9, 0.999]}   # Ledig et al. 2017 sec. 3.2; Wang et al. 2018 sec. 4.1
PRESETS.update({
    "srresnet": {
        "description": "Ledig et al. 2017: SRResNet (16 residual blocks with batch norm, PReLU, sub-pixel x2 stages), "
                       "MSE pixel loss, 96 px HR crops, batch 16, Adam 1e-4 betas (0.9, 0.999). The PSNR-oriented "
                       "model, and the initialisation of srgan (--init-from). Superres data, x4 by default.",
        "recipe": "srresnet",
        "opts": {"pixel_loss": "mse"},
        "data": {"spec": "photo-crops", "resolution": 96},
        "G": {"image": "srresnet", "vector": "", "init": "default"},
        "D": {"image": "", "vector": ""},
        "opt": {"G": _SR_ADAM},
        "batch_size": 16, "kimg": 100.0, "ema_kimg": 0.0, "snapshot_n": 8, "snapshot_kimg": 20.0,
    },
    "srgan": {
        "description": "Ledig et al. 2017: SRResNet generator + VGG-style discriminator (8 convs, batch norm, "
                       "LeakyReLU 0.2, dense 1024), VGG-19 relu5_4 content loss (features / 12.75; pixel MSE when "
                       "no --set vgg_weights=PATH is given) + 1e-3 adversarial, Adam 1e-4 then 1e-5 for the second "
                       "half; the first 20 kimg pre-train G on MSE (or --init-from an srresnet run with "
                       "--set pretrain_kimg=0).",
        "recipe": "srgan",
        "opts": {"content": "vgg", "adv_weight": 1e-3, "pretrain_kimg": 20.0, "lr_step": 0.6},
        "data": {"spec": "photo-crops", "resolution": 96},
        "G": {"image": "srresnet", "vector": "", "init": "default"},
        "D": {"image": "vgg_d", "vector": "", "init": "default"},
        "opt": {"G": _SR_ADAM, "D": _SR_ADAM},
        "batch_size": 16, "kimg": 100.0, "ema_kimg": 0.0, "snapshot_n": 8, "snapshot_kimg": 20.0,
    },
    "esrgan": {
        "description": "Wang et al. 2018: RRDB generator (23 blocks, growth 32, residual scaling 0.2, no batch "
                       "norm), VGG-style discriminator, relativistic average GAN (5e-3) + L1 (1e-2) + VGG-19 conv5_4 "
                       "perceptual loss before activation (dropped without --set vgg_weights=PATH), 128 px HR crops, "
                       "Adam 1e-4; the first 20 kimg pre-train G on L1 (the PSNR-oriented RRDB net).",
        "recipe": "esrgan",
        "opts": {"adv_weight": 5e-3, "l1_weight": 1e-2, "perceptual_weight": 1.0, "pretrain_kimg": 20.0,
                 "lr_step": 0.6},
        "data": {"spec": "photo-crops", "resolution": 128},
        "G": {"image": "rrdb", "vector": "", "init": "default"},
        "D": {"image": "vgg_d", "vector": "", "init": "default"},
        "opt": {"G": _SR_ADAM, "D": _SR_ADAM},
        "batch_size": 16, "kimg": 100.0, "ema_kimg": 0.0, "snapshot_n": 8, "snapshot_kimg": 20.0,
    },
    "inpaint": {
        "description": "Iizuka et al. 2017's completion network (dilated convolutions 2-16, batch norm) with Yu et "
                       "al. 2019's SN-PatchGAN on (image, mask), hinge loss, L1 : GAN = 1 : 1, free-form stroke "
                       "holes of 25% (--set mask=centre|rect|free, mask_fraction=...; NAME_mask.png files beside the "
                       "images are used when present), known pixels composited "
                       "back, Adam 1e-4 betas (0.5, 0.999) (Yu et al.'s code), 64 px photo crops.",
        "recipe": "inpaint",
        "opts": {"mask": "auto", "mask_fraction": 0.25, "gan_loss": "hinge", "adv_weight": 1.0},
        "data": {"spec": "photo-crops", "resolution": 64},
        "G": {"image": "completion", "vector": "", "init": "default", "image_kwargs": {"nf": 64}},
        "D": {"image": "sn_patchgan", "vector": "", "init": "default", "image_kwargs": {"nf": 64, "n_layers": 4}},
        "opt": {"G": {"name": "adam", "lr": 1e-4, "betas": [0.5, 0.999]},
                "D": {"name": "adam", "lr": 1e-4, "betas": [0.5, 0.999]}},
        "batch_size": 16, "kimg": 40.0, "ema_kimg": 0.0, "snapshot_n": 8, "snapshot_kimg": 10.0,
    },
    "inpaint-glcic": {
        "description": "Iizuka et al. 2017 (globally and locally consistent completion): the completion network with "
                       "a global discriminator on the image and a local one on a half-side crop centred on the hole, "
                       "concatenated into one score (sec. 3.2), cross-entropy GAN loss, squared error on the hole "
                       "(eq. 1) + 0.0004 adversarial (eq. 5), 64 px photo crops; Adam 1e-4 instead of their Adadelta.",
        "recipe": "inpaint",
        "opts": {"mask": "auto", "mask_fraction": 0.25, "gan_loss": "vanilla", "adv_weight": 0.0004,
                 "recon": "mse", "hole_weight": 1.0, "valid_weight": 0.0},
        "data": {"spec": "photo-crops", "resolution": 64},
        "G": {"image": "completion", "vector": "", "init": "default", "image_kwargs": {"nf": 64}},
        "D": {"image": "global_local", "vector": "", "init": "default", "image_kwargs": {"nf": 64, "fc": 1024}},
        "opt": {"G": {"name": "adam", "lr": 1e-4, "betas": [0.5, 0.999]},
                "D": {"name": "adam", "lr": 1e-4, "betas": [0.5, 0.999]}},
        "batch_size": 16, "kimg": 40.0, "ema_kimg": 0.0, "snapshot_n": 8, "snapshot_kimg": 10.0,
    },
})


def get_preset(name: str) -> dict:
    if name not in PRESETS:
        import difflib
        close = difflib.get_close_matches(name, PRESETS, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ConfigError(f"Unknown preset {name!r}.{hint} Valid presets: {', '.join(PRESETS)}.")
    return {k: v for k, v in PRESETS[name].items()}


def preset_names() -> list[str]:
    return list(PRESETS)
