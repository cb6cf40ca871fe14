"""Audio families end to end (issue 13): presets train and round-trip, resume is bit-exact, `gankit sample`
writes wavs and spectrogram grids, espeak-ng data, voice conversion with `gankit convert` and MCD, sound metrics.

The espeak-ng tests skip without it, but `make test` installs it (CI runs as root), so they run in CI. The
synthesised sets are tiny (data.limit / data.utterances) and cached under one data root for the session.
"""
from __future__ import annotations

import shutil
import warnings

import numpy as np
import pytest
import torch

from gankit import audio as dsp
from gankit.checkpoint import save_checkpoint
from gankit.cli import main
from gankit.config import DataConfig
from gankit.data import load_dataset
from gankit.engine import build, resolve, train
from gankit.errors import ConfigError
from gankit.loading import load_recipe, load_sampler
from gankit.presets import PRESETS
from gankit.samplers import EvalRequest

from test_train import _assert_same_state, _weights

TINY_WAVE = {"data.spec": "tones", "data.limit": 64, "data.clip_samples": 1024, "batch_size": 8, "seed": 1,
             "G.model_size": 4, "D.model_size": 4, "snapshot_n": 4, "tick_kimg": 0.064, "snapshot_kimg": 0.128}
TINY = {
    "wavegan": TINY_WAVE,
    "specgan": {**TINY_WAVE, "data.clip_samples": 4096, "data.spec_bins": 64, "griffin_lim_iters": 4},
}
needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None,
                                  reason="espeak-ng is not installed (make test installs it: apt-get install espeak-ng)")


def _has_world() -> bool:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import pysptk  # noqa: F401
            import pyworld  # noqa: F401
        return True
    except ImportError:
        return False


needs_world = pytest.mark.skipif(not _has_world(), reason="pyworld / pysptk not installed (pip install gankit[audio])")


@pytest.fixture(scope="session")
def data_root(tmp_path_factory):
    return tmp_path_factory.mktemp("audio-data")


AUDIO_PRESETS = [name for name, p in PRESETS.items() if p["recipe"] in ("wavegan", "specgan")]


@pytest.mark.parametrize("preset", AUDIO_PRESETS)
def test_audio_presets_train_and_round_trip(preset, tmp_path):
    cfg = resolve(preset, overrides=TINY[PRESETS[preset]["recipe"]])
    trainer, dataset = build(cfg, torch.device("cpu"))
    recipe = trainer.recipe
    before = [p.detach().clone() for p in recipe.parameters()]
    for _ in range(2):
        trainer.train_step()
    stats = trainer.take_tick_stats()
    assert all(np.isfinite(v) for v in stats.values()) and "D/gp" in stats
    assert any(not torch.equal(a, b) for a, b in zip(before, recipe.parameters()))
    save_checkpoint(trainer.state_dict(dataset.info), tmp_path / "c.pt")
    fixed = recipe.fixed_inputs(4, 0, dataset)
    recipe.eval()
    clips = recipe.snapshot(fixed, recipe.nets)[0].clips
    loaded, _, info, nets = load_recipe(tmp_path / "c.pt", ema=False)
    assert torch.equal(clips, loaded.snapshot(fixed, nets)[0].clips)
    assert clips.shape == (4, 1, info.extras["clip_samples"]) and clips.abs().max() <= 1


def test_wavegan_resume_is_bit_exact(tmp_path):
    """2N kimg in one run equals N then resume to 2N (phase shuffle draws from the checkpointed RNG)."""
    over = {**TINY_WAVE, "d_steps": 2, "ema_kimg": 0.05}
    full = train(resolve("wavegan", overrides={**over, "kimg": 0.128}), out=tmp_path / "a", progress=False)
    half = train(resolve("wavegan", overrides={**over, "kimg": 0.064}), out=tmp_path / "b", progress=False)
    resumed = train(resolve("wavegan", overrides={**over, "kimg": 0.128}), resume=half, progress=False,
                    resume_overrides={"kimg"})
    _assert_same_state(_weights(full), _weights(resumed))
    names = {p.name for p in full.iterdir()}
    assert {"samples-000000.wav", "samples-000000.png"} <= names        # snapshot: clips and their spectrograms


def test_sample_writes_wavs_a_grid_and_refuses_to_overwrite(tmp_path, capsys):
    run = train(resolve("wavegan", overrides={**TINY_WAVE, "kimg": 0.016}), out=tmp_path, progress=False)
    main(["sample", "--ckpt", str(run), "--n", "3", "--out", str(tmp_path / "clips")])
    files = sorted((tmp_path / "clips").iterdir())
    assert [f.name for f in files] == ["000000.wav", "000001.wav", "000002.wav"]
    wave, rate = dsp.read_wav(files[0])
    assert rate == 16000 and len(wave) == 1024 and np.abs(wave).max() <= 1
    sampler = load_sampler(run)
    assert np.allclose(wave, sampler.draw(n=3, seed=0)[0, 0].numpy(), atol=1 / 32767)   # 16-bit PCM of the sample
    main(["sample", "--ckpt", str(run), "--seeds", "1-4", "--out", str(tmp_path / "grid.png")])
    assert (tmp_path / "grid.png").stat().st_size > 0
    with pytest.raises(SystemExit) as e:
        main(["sample", "--ckpt", str(run), "--n", "3", "--out", str(tmp_path / "clips")])
    assert e.value.code == 2 and "never overwrites" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="image models"):
        sampler.interpolate(0, 1, 4, "slerp")


def test_a_recipe_on_the_wrong_kind_of_data_names_the_audio_builtins():
    with pytest.raises(Exception, match="tones"):
        build(resolve("wavegan", overrides={"data.spec": "digits"}), torch.device("cpu"))


# ---- espeak-ng -----------------------------------------------------------------------------------------------

@needs_espeak
def test_spoken_digits_are_synthesised_balanced_and_cached(data_root):
    cfg = DataConfig(spec="spoken-digits", root=str(data_root), options={"limit": 20})
    ds = load_dataset(cfg, ("audio",))
    assert ds.tensors["audio"].shape == (20, 1, 16384)
    assert torch.bincount(ds.tensors["label"]).tolist() == [2] * 10
    assert ds.info.class_names[7] == "seven"
    level = dsp.rms_db(ds.tensors["audio"])
    assert (level > -40).all()                                                   # speech, not silence
    test = load_dataset(DataConfig(spec="spoken-digits", root=str(data_root), split="test",
                                   options={"limit": 10}), ("audio",))
    assert set(test.info.extras["voices"]).isdisjoint(ds.info.extras["voices"])   # held-out speakers
    again = load_dataset(cfg, ("audio",))                                          # from the cache
    assert torch.equal(again.tensors["audio"], ds.tensors["audio"])


def test_missing_espeak_says_how_to_install(monkeypatch):
    from gankit.data import audio as audio_data
    from gankit.errors import DataError
    monkeypatch.setattr(audio_data.shutil, "which", lambda name: None)
    with pytest.raises(DataError, match="apt-get install espeak-ng"):
        audio_data.espeak_binary()


# ---- voice conversion ------------------------------------------------------------------------------------------

def test_mcd_formula_and_dtw():
    from gankit.data.voice import dtw_path, mel_cepstral_distortion
    rng = np.random.default_rng(0)
    x = rng.normal(size=(30, 8))
    assert mel_cepstral_distortion(x, x) == 0.0
    y = x.copy()
    y[:, 0] += 5.0                                                               # energy c0 is left out
    y[:, 3] += 0.5
    expected = 10 / np.log(10) * np.sqrt(2 * 0.5 ** 2)
    assert abs(mel_cepstral_distortion(x, y) - expected) < 1e-9
    slow = np.repeat(x, 2, axis=0)                                              # the same utterance, half speed
    assert mel_cepstral_distortion(x, slow) < 1e-12
    ia, ib = dtw_path(x, slow)
    assert ia[0] == 0 and ib[0] == 0 and ia[-1] == 29 and ib[-1] == 59 and np.all(np.diff(ia) >= 0)


def test_log_f0_transform_maps_the_source_statistics_onto_the_target():
    from gankit.data.voice import convert_f0, log_f0_stats
    rng = np.random.default_rng(0)
    f0 = np.exp(rng.normal(np.log(110), 0.1, size=500))
    f0[::7] = 0                                                                  # unvoiced frames stay unvoiced
    out = convert_f0(f0, log_f0_stats([f0]), (np.log(220.0), 0.2))
    assert np.all(out[f0 == 0] == 0)
    mean, std = log_f0_stats([out])
    assert abs(mean - np.log(220.0)) < 1e-9 and abs(std - 0.2) < 1e-9


def test_voice_networks_keep_the_shape():
    from gankit.nets.cyclegan_vc import Gated212Generator, GatedCNN1dGenerator, GatedPatchDiscriminator
    x = torch.randn(2, 24, 32)
    for G in (GatedCNN1dGenerator(24, 24, width=0.05), Gated212Generator(24, 24, width=0.05)):
        assert G(x).shape == x.shape
        with pytest.raises(ConfigError, match="multiple of 4"):
            G(torch.randn(1, 24, 30))
    assert GatedPatchDiscriminator(24, width=0.05)(x).shape == (2, 1, 6, 4)


@needs_espeak
@needs_world
@pytest.mark.parametrize("preset", ["cyclegan-vc2"])
def test_voice_conversion_trains_converts_and_scores_mcd(preset, data_root, tmp_path, capsys):
    over = {"data.spec": "digit-voices", "data.root": str(data_root), "data.utterances": 2, "data.frames": 32, "data.vc_rate": 8000,
            "data.mcep_dim": 16, "G.width": 0.0625, "D.width": 0.0625, "batch_size": 4, "kimg": 0.008,
            "tick_kimg": 0.004, "snapshot_kimg": 0.008}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run = train(resolve(preset, overrides=over), out=tmp_path, progress=False)
        assert (run / "converted-000000.wav").exists() and (run / "features-000000.png").exists()
        ckpt = run / "latest.pt"
        recipe, cfg, info, _ = load_recipe(ckpt)
        assert set(recipe.nets) == {"G_ab", "G_ba", "D_a", "D_b", "D2_a", "D2_b"}    # VC2: two-step discriminators
        source = next(p for p in (data_root / "digit-voices").rglob("en-us-m3*.wav") if ".world" not in p.name)
        main(["convert", "--ckpt", str(run), "--input", str(source), "--out", str(tmp_path / "conv.wav")])
        wave, rate = dsp.read_wav(tmp_path / "conv.wav")
        assert rate == 8000 and len(wave) > 1000 and np.abs(wave).max() <= 1
        result = load_sampler(ckpt).evaluate(EvalRequest(data=cfg.data))
    values = result["metrics"]
    assert values["mcd_before"] > 3 and np.isfinite(values["mcd"]) and values["mcd_stats_only"] < values["mcd_before"]
    with pytest.raises(SystemExit) as e:
        main(["convert", "--ckpt", str(run), "--input", str(source), "--out", str(tmp_path / "conv.wav")])
    assert e.value.code == 2
    with pytest.raises(SystemExit):
        main(["sample", "--ckpt", str(run), "--n", "2", "--out", str(tmp_path / "x")])
    assert "convert` instead" in capsys.readouterr().err


# ---- metrics -------------------------------------------------------------------------------------------------

def test_logmel_pictures_and_audio_classifier_metrics(tmp_path):
    from gankit.metrics.audio import AudioClassifier, audio_scores, check_audio_metrics, logmel_pictures
    from gankit.metrics.classifier import save_classifier, train_classifier
    ds = load_dataset(DataConfig(spec="tones", options={"limit": 256, "clip_samples": 4096}), ("audio",))
    pictures = logmel_pictures(ds.tensors["audio"], 16000)
    assert pictures.shape == (256, 1, 32, 32) and pictures.min() >= -1 and pictures.max() <= 1
    # Higher pitch, higher mel band: the loudest band of pure tones rises with the label (pitches ascend).
    pure = [i for i, h in enumerate(ds.info.extras["harmonics"]) if h == 1]
    band = pictures[pure, 0].mean(-1).argmax(-1)
    label = ds.tensors["label"][pure]
    assert all(band[label == a].float().mean() < band[label == b].float().mean() for a, b in [(0, 4), (4, 7)])
    model, report = train_classifier(pictures, ds.tensors["label"], epochs=6, batch_size=64, width=8,
                                     feature_dim=32, max_shift=0)
    path = save_classifier(tmp_path / "clf.pt", model, report, data={"input": {"kind": "audio", "rate": 16000,
                                                                                "clip_samples": 4096}})
    clf = AudioClassifier(str(path))
    real = ds.tensors["audio"]
    scores = audio_scores(real[:128], real[128:], ["is", "fid", "modes"], clf)
    noise = audio_scores(torch.rand(128, 1, 4096) * 2 - 1, real[128:], ["is", "fid", "modes"], clf)
    print(scores, noise)
    assert scores["is"] > 1.5 > 1.1 > noise["is"] and scores["fid"] < noise["fid"] / 2 and scores["modes"] >= 6
    silent = audio_scores(torch.zeros(8, 1, 4096), None, [], None)
    assert silent["silence"] == 1.0 and silent["clipping"] == 0.0
    with pytest.raises(ConfigError, match="do not apply to sound"):
        check_audio_metrics(["kid"])


@needs_world
def test_two_speaker_folders_pair_by_name_and_measure_f0(tmp_path):
    """--data A/ --data-b B/: WORLD finds each speaker's F0 (tones at 150 and 300 Hz: log ratio log 2), and files of
    the same name are the parallel test pairs."""
    rate = 8000
    t = np.arange(int(0.4 * rate)) / rate
    for side, f0 in (("A", 150.0), ("B", 300.0)):
        for name, depth in (("one.wav", 0.02), ("two.wav", 0.04)):
            wave = 0.3 * sum(np.sin(2 * np.pi * k * f0 * t * (1 + depth * np.sin(2 * np.pi * 3 * t))) / k
                             for k in range(1, 4))
            dsp.write_wav(tmp_path / side / name, wave, rate)
    cfg = DataConfig(spec=str(tmp_path / "A"), spec_b=str(tmp_path / "B"),
                     options={"vc_rate": rate, "frames": 16, "mcep_dim": 12})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = load_dataset(cfg, ("voice",))
    x = ds.info.extras
    assert abs((x["lf0_mean_b"] - x["lf0_mean_a"]) - np.log(2.0)) < 0.05
    assert abs(x["lf0_mean_a"] - np.log(150.0)) < 0.05
    assert [(a["name"], b["name"]) for a, b in ds.parallel] == [("one.wav", "one.wav"), ("two.wav", "two.wav")]
    assert ds.get_batch(torch.arange(4))["a"].shape == (4, 12, 16)


def test_classifier_metrics_without_a_sound_classifier_are_refused_before_the_first_step(tmp_path):
    cfg = resolve("wavegan", overrides={**TINY_WAVE, "kimg": 0.016, "metrics": ["fid"], "metrics_kimg": 0.008})
    with pytest.raises(ConfigError, match="classifier:PATH"):
        train(cfg, out=tmp_path, progress=False)
    assert not list(tmp_path.glob("*/latest.pt"))          # refused before any step: no run was trained
