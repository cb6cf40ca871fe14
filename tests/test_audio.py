"""Sound (issue 13): signal code, audio data, WaveGAN / SpecGAN networks and recipes, sampling, resume.

Each formula test names the deliberate break it was checked against in docs/notes (issue-13.md).
"""
from __future__ import annotations


import numpy as np
import pytest
import torch

from gankit import audio as dsp
from gankit.config import DataConfig
from gankit.data import load_dataset
from gankit.errors import ConfigError
from gankit.nets.wavegan import WaveGANDiscriminator, WaveGANGenerator, phase_shuffle

RATE = 16000


def _tone(freq: float, rate: int, n: int) -> np.ndarray:
    return 0.5 * np.sin(2 * np.pi * freq * np.arange(n) / rate)


# ---- phase shuffle ---------------------------------------------------------------------------------------------

def test_phase_shuffle_shifts_by_k_with_reflection():
    x = torch.arange(10.0).view(1, 1, 10).repeat(3, 2, 1)                       # [3, 2, 10]
    out = phase_shuffle(x, 2, shifts=torch.tensor([2, -2, 0]))
    # out[t] = x[t - k], reflected without repeating the edge: x[-1] = x[1], x[-2] = x[2], x[10] = x[8].
    assert out[0, 0].tolist() == [2, 1, 0, 1, 2, 3, 4, 5, 6, 7]
    assert out[1, 0].tolist() == [2, 3, 4, 5, 6, 7, 8, 9, 8, 7]
    assert torch.equal(out[2], x[2])
    assert torch.equal(out[:, 0], out[:, 1])                                     # one shift for all channels


def test_phase_shuffle_random_shifts_are_bounded_and_independent_per_example():
    torch.manual_seed(0)
    n, T = 2, 64
    x = torch.randn(400, 3, T)
    out = phase_shuffle(x, n)
    padded = torch.nn.functional.pad(x, (n, n), mode="reflect")
    found = []
    for i in range(len(x)):
        ks = [k for k in range(-n, n + 1) if torch.equal(out[i], padded[i, :, n - k:n - k + T])]
        assert len(ks) == 1, f"example {i} is not a reflected shift of at most {n}"
        found.append(ks[0])
    counts = np.bincount(np.array(found) + n, minlength=2 * n + 1)
    # Uniform over the 2n + 1 shifts (each ~80 of 400; a chi-square at 4 degrees of freedom, p ~ 0.001 cut-off).
    chi2 = ((counts - 80) ** 2 / 80).sum()
    assert counts.min() > 0 and chi2 < 18.5, counts


def test_phase_shuffle_is_only_on_while_training():
    D = WaveGANDiscriminator(1, 1024, model_size=4)
    x = torch.randn(4, 1, 1024)
    D.eval()
    assert torch.equal(D(x), D(x))
    D.train()
    torch.manual_seed(0)
    a = D(x)
    torch.manual_seed(1)
    assert not torch.equal(a, D(x))


# ---- spectrograms, mel, Griffin-Lim -----------------------------------------------------------------------------

@pytest.mark.parametrize("freq", [300.0, 440.0, 1234.0])
def test_griffin_lim_recovers_the_frequency_of_a_tone(freq):
    """From the magnitude alone (random start phases), 32 fast-GL iterations give back a tone within 3 Hz,
    a tenth of the STFT's 31 Hz bin spacing, and a magnitude within 15% (spectral convergence)."""
    x = torch.from_numpy(_tone(freq, RATE, 8192))
    mag = dsp.stft_magnitude(x, 512, 128)
    y = dsp.griffin_lim(mag, 512, 128, len(x), iters=32, generator=torch.Generator().manual_seed(0))
    assert abs(dsp.dominant_frequency(y, RATE) - freq) < 3.0
    conv = (dsp.stft_magnitude(y, 512, 128) - mag).norm() / mag.norm()
    assert conv < 0.15, float(conv)
    # Momentum (Perraudin et al. 2013) converges faster than plain Griffin-Lim at the same iteration count.
    plain = dsp.griffin_lim(mag, 512, 128, len(x), iters=32, momentum=0.0, generator=torch.Generator().manual_seed(0))
    assert conv < (dsp.stft_magnitude(plain, 512, 128) - mag).norm() / mag.norm()


def test_dominant_frequency_of_a_known_tone():
    assert abs(dsp.dominant_frequency(_tone(523.25, RATE, 16384), RATE) - 523.25) < 0.2


def test_mel_scale_and_filters():
    assert abs(float(dsp.hz_to_mel(1000.0)) - 1000.0) < 0.1                       # HTK: 1000 Hz = 1000 mel
    assert abs(float(dsp.mel_to_hz(dsp.hz_to_mel(3210.0))) - 3210.0) < 1e-6
    fb = dsp.mel_filterbank(20, 1024, RATE)                                        # [20, 513]
    assert fb.shape == (20, 513) and float(fb.max()) <= 1.0 + 1e-6
    centres = dsp.mel_to_hz(np.linspace(0, dsp.hz_to_mel(RATE / 2), 22))[1:-1]
    peaks = fb.argmax(1).numpy() * RATE / 1024
    assert np.all(np.abs(peaks - centres) <= RATE / 1024)                         # each filter peaks at its centre


def test_resample_keeps_frequency_and_length():
    x = _tone(440.0, 22050, 22050)
    y = dsp.resample(x, 22050, RATE)
    assert len(y) == RATE                                                          # 22050 * 320 / 441
    assert abs(dsp.dominant_frequency(y[2000:-2000], RATE) - 440.0) < 0.3


def test_fit_length_crops_centre_and_pads_end():
    x = np.arange(10.0)
    assert dsp.fit_length(x, 4).tolist() == [3, 4, 5, 6]
    assert dsp.fit_length(x, 12).tolist() == list(range(10)) + [0, 0]


def test_silence_and_clipping_rates():
    clips = torch.zeros(4, 1, 100)
    clips[0] = 0.5
    clips[1, 0, :10] = 1.0
    assert dsp.silence_rate(clips) == 0.5                                          # clips 2, 3 silent
    assert dsp.clipping_rate(clips) == 10 / 400


# ---- data ----------------------------------------------------------------------------------------------------

def test_sound_folder_resamples_exactly_and_labels_from_subfolders(tmp_path):
    for label, freq in (("low", 440.0), ("high", 880.0)):
        for i in range(2):
            dsp.write_wav(tmp_path / label / f"{i}.wav", _tone(freq, 22050, 11025), 22050)
    cfg = DataConfig(spec=str(tmp_path), options={"rate": RATE, "clip_samples": 4096})
    ds = load_dataset(cfg, ("audio",))
    assert ds.info.kind == "audio" and ds.info.class_names == ["high", "low"]
    assert ds.tensors["audio"].shape == (4, 1, 4096)
    for clip, label in zip(ds.tensors["audio"], ds.tensors["label"]):
        expected = 880.0 if label == 0 else 440.0
        assert abs(dsp.dominant_frequency(clip[0], RATE) - expected) < 1.0
    assert ds.info.extras["source_rates"] == [22050]


def test_tones_builtin_pitch_is_the_label():
    ds = load_dataset(DataConfig(spec="tones", options={"limit": 16, "clip_samples": 4096}), ("audio",))
    pitches = ds.info.extras["pitches"]
    for clip, label, h in zip(ds.tensors["audio"], ds.tensors["label"], ds.info.extras["harmonics"]):
        assert clip.abs().max() <= 1
        if h == 1:       # pure tone: its spectral peak is the fundamental
            assert abs(dsp.dominant_frequency(clip[0], RATE) - pitches[int(label)]) < 2.0


def test_spectrogram_kind_is_normalised_per_frequency_and_inverts():
    from gankit.data.audio import denormalise_spectrogram, log_spectrogram, spec_params
    cfg = DataConfig(spec="tones", options={"limit": 32, "clip_samples": 4096, "spec_bins": 64})
    audio = load_dataset(cfg, ("audio",))
    spec = load_dataset(cfg, ("spectrogram",))
    img = spec.tensors["image"]
    assert img.shape == (32, 1, 64, 64) and img.min() >= -1 and img.max() <= 1
    mean, std = torch.tensor(spec.info.extras["spec_mean"]), torch.tensor(spec.info.extras["spec_std"])
    n_fft, hop, bins = spec_params(spec.info)
    assert (n_fft, hop, bins) == (128, 64, 64)
    logmag = log_spectrogram(audio.tensors["audio"], n_fft, hop, bins)
    inside = ((logmag - mean[:, None]) / std[:, None]).abs() < 3                   # not clipped
    back = denormalise_spectrogram(img, mean, std)
    assert torch.allclose(back[inside], logmag[inside], atol=1e-4)
    with pytest.raises(ConfigError, match="spec_bins"):
        load_dataset(DataConfig(spec="tones", options={"clip_samples": 4096, "spec_bins": 32}), ("spectrogram",))


# ---- networks ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("length", [1024, 4096])
def test_wavegan_clips_have_the_configured_length_and_range(length):
    G = WaveGANGenerator(16, 1, length, model_size=4)
    out = G(torch.randn(3, 16) * 10)
    assert out.shape == (3, 1, length) and out.abs().max() <= 1
    assert WaveGANDiscriminator(1, length, model_size=4)(out).shape == (3,)


def test_wavegan_at_the_paper_size_is_the_paper_layout():
    G = WaveGANGenerator(100, 1, 16384)            # d = 64: dense 100 -> 16 x 1024, then 1024-512-256-128-64-1
    D = WaveGANDiscriminator(1, 16384)
    assert G.dense.out_features == 16 * 1024
    convs = [m for m in G.ups if isinstance(m, torch.nn.ConvTranspose1d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size[0], c.stride[0]) for c in convs] == \
        [(1024, 512, 25, 4), (512, 256, 25, 4), (256, 128, 25, 4), (128, 64, 25, 4), (64, 1, 25, 4)]
    assert D.fc.in_features == 256 * 64
    shuffles = [m for m in D.downs if m.__class__.__name__ == "PhaseShuffle"]
    assert len(shuffles) == 4 and all(m.n == 2 for m in shuffles)


def test_wavegan_refuses_lengths_it_cannot_make():
    with pytest.raises(ConfigError, match="valid values: 64, 256, 1024, 4096, 16384"):
        WaveGANGenerator(8, 1, 5000)


def test_specgan_decode_turns_real_spectrograms_back_into_the_clips():
    """The sampler's path (de-normalise with the training moments, exp, Griffin-Lim) applied to real normalised
    spectrograms restores each tone's level (within 2 dB) and pitch (within a quarter of the STFT's bin spacing:
    n_fft = 128 at 16 kHz, 125 Hz bins)."""
    from gankit.engine import resolve
    from gankit.recipes import recipes
    cfg = DataConfig(spec="tones", options={"limit": 16, "clip_samples": 4096, "spec_bins": 64})
    spec, audio = load_dataset(cfg, ("spectrogram",)), load_dataset(cfg, ("audio",))
    recipe = recipes.get("specgan").from_config(resolve("specgan", overrides={"G.model_size": 4,
                                                                              "D.model_size": 4}), spec.info)
    waves = recipe.decode(spec.tensors["image"])
    assert waves.shape == audio.tensors["audio"].shape
    assert (dsp.rms_db(waves) - dsp.rms_db(audio.tensors["audio"])).abs().max() < 2.0
    pitches = spec.info.extras["pitches"]
    for wave, label, h in zip(waves, spec.tensors["label"], spec.info.extras["harmonics"]):
        if h == 1:
            assert abs(dsp.dominant_frequency(wave[0, 256:-256], RATE) - pitches[int(label)]) < RATE / 128 / 4
