"""The command line, run as a user would: in a subprocess for exit codes, in-process for speed elsewhere."""
import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from gankit.cli import main, parse_seeds
from helpers import run_cli

TINY = ["--data", "digits", "--kimg", "0.256", "--batch", "16", "--set", "G.ngf=16", "--set", "D.ndf=16",
        "--set", "tick_kimg=0.128", "--set", "snapshot_n=16", "--quiet"]


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    main(["train", "--preset", "dcgan", *TINY, "--out", str(out), "--set", "ema_kimg=0.05"])
    return next(out.iterdir())


def test_module_entry_point_and_bad_preset_exit_code_2():
    proc = subprocess.run([sys.executable, "-m", "gankit", "train", "--preset", "nope", "--dry-run"],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert "Unknown preset 'nope'" in proc.stderr and "wgan-gp" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("args,pattern", [
    (["train", "--set", "batchsize=3", "--dry-run"], "Unknown config key 'batchsize'"),
    (["train", "--set", "batch_size", "--dry-run"], "must look like key=value"),
    (["train", "--set", "lr=abc", "--dry-run"], "Unknown config key 'lr'"),
    (["train", "--data", "/no/such/folder", "--kimg", "0.1", "--quiet"], "no/such/folder"),
    (["train", "--data", "nosuchbuiltin", "--kimg", "0.1", "--quiet"], "digits"),
    (["train", "--set", "data.resolution=48", "--kimg", "0.1", "--quiet"], "48"),
    (["sample", "--ckpt", "/no/such.pt", "--n", "4"], "does not exist"),
    (["sample", "--ckpt", "x.pt"], "exactly one of --n"),
])
def test_user_mistakes_exit_2_with_a_message(args, pattern, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, err = run_cli(args, capsys)
    assert code == 2, (out, err)
    assert pattern in err and "Traceback" not in err


def test_dry_run_prints_resolved_config(capsys):
    code, out, _ = run_cli(["train", "--preset", "wgan-gp", "--data", "digits", "--set", "d_steps=3", "--dry-run"],
                           capsys)
    assert code == 0
    cfg = json.loads(out)
    assert cfg["preset"] == "wgan-gp" and cfg["data"]["spec"] == "digits" and cfg["opts"]["gp_weight"] == 10.0
    assert cfg["d_steps"] == 3


def test_presets_lists_every_preset(capsys):
    from gankit.presets import PRESETS
    code, out, _ = run_cli(["presets"], capsys)
    assert code == 0
    for name in PRESETS:
        assert any(line.startswith(name + " ") for line in out.splitlines())


def test_train_writes_run_and_sample_outputs(trained_run, capsys, tmp_path):
    assert (trained_run / "latest.pt").is_file()
    grid = tmp_path / "grid.png"
    code, out, err = run_cli(["sample", "--ckpt", str(trained_run / "latest.pt"), "--seeds", "0-15",
                              "--out", str(grid)], capsys)
    assert code == 0, err
    img = np.asarray(Image.open(grid))
    assert img.ndim == 3 and img.shape[0] > 4 * 32
    # Refuses to overwrite.
    code, _, err = run_cli(["sample", "--ckpt", str(trained_run), "--n", "4", "--out", str(grid)], capsys)
    assert code == 2 and "never overwrites" in err
    npy = tmp_path / "x.npy"
    assert run_cli(["sample", "--ckpt", str(trained_run), "--n", "5", "--out", str(npy)], capsys)[0] == 0
    arr = np.load(npy)
    assert arr.shape == (5, 1, 32, 32) and arr.min() >= -1 and arr.max() <= 1
    folder = tmp_path / "pngs"
    assert run_cli(["sample", "--ckpt", str(trained_run), "--seeds", "3,4", "--out", str(folder)], capsys)[0] == 0
    assert sorted(p.name for p in folder.iterdir()) == ["seed00003.png", "seed00004.png"]


def test_interpolate_png_and_gif(trained_run, capsys, tmp_path):
    for suffix in (".png", ".gif"):
        out = tmp_path / f"walk{suffix}"
        code, _, err = run_cli(["interpolate", "--ckpt", str(trained_run), "--seeds", "1,2", "--steps", "5",
                                "--out", str(out)], capsys)
        assert code == 0, err and out.is_file()
    gif = Image.open(tmp_path / "walk.gif")
    assert gif.n_frames == 5 + 3     # ping-pong loop
    code, _, err = run_cli(["interpolate", "--ckpt", str(trained_run), "--seeds", "1", "--out",
                            str(tmp_path / "w2.png")], capsys)
    assert code == 2 and "exactly two seeds" in err


def test_info(trained_run, capsys):
    code, out, _ = run_cli(["info", str(trained_run / "latest.pt")], capsys)
    assert code == 0 and "dcgan" in out and "0.256 kimg" in out and "parameters" in out
    code, out, _ = run_cli(["info", "--json", str(trained_run)], capsys)
    assert json.loads(out)["config"]["batch_size"] == 16


def test_resume_extends_a_run(trained_run, capsys, tmp_path):
    import shutil
    run = tmp_path / "copy"
    shutil.copytree(trained_run, run)
    code, out, err = run_cli(["train", "--resume", str(run), "--kimg", "0.384", "--quiet"], capsys)
    assert code == 0, err
    from gankit.checkpoint import load_checkpoint
    assert load_checkpoint(run)["nimg"] == 384


def test_parse_seeds():
    assert parse_seeds("0-3,10") == [0, 1, 2, 3, 10]
    with pytest.raises(Exception, match="Cannot read seeds"):
        parse_seeds("a-b")
