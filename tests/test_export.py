"""``gankit export``: ONNX (checked with onnxruntime), TorchScript (loaded without gankit) and the safetensors
model folder that ``gankit.load_generator`` reads, for noise, conditional and translation models through the
sampler contract (``Sampler.export_spec``)."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from gankit.checkpoint import save_checkpoint
from gankit.cli import cli
from gankit.config import to_dict
from gankit.data.base import DataInfo
from gankit.engine import resolve
from gankit.errors import CheckpointError, ConfigError
from gankit.export import export, export_formats
from gankit.loading import load_generator, load_recipe, load_sampler
from gankit.recipes import recipes
from gankit.samplers import Sampler

onnxruntime = pytest.importorskip("onnxruntime")


def _perturbed(state: dict, scale: float = 0.05) -> dict:
    gen = torch.Generator().manual_seed(7)
    return {k: (v + scale * torch.randn(v.shape, generator=gen)) if v.is_floating_point() else v.clone()
            for k, v in state.items()}


def make_ckpt(tmp_path, preset: str, info: DataInfo, overrides: dict, ema: bool = True):
    """A checkpoint with batch-norm statistics moved off their start (so eval mode matters) and, with ``ema``,
    EMA generators that differ from the trained ones (so the export must pick the EMA copy)."""
    torch.manual_seed(0)
    cfg = resolve(preset, None, overrides)
    recipe = recipes.get(cfg.recipe).from_config(cfg, info)
    with torch.no_grad():
        recipe.train()
        for name in recipe.generator_names:
            G = recipe.nets[name]
            if hasattr(G, "z_dim"):
                label = torch.arange(8) % info.num_classes if getattr(G, "num_classes", 0) else None
                G(torch.randn(8, G.z_dim), label)
            else:
                channels = info.channels_b if name == "G_ba" else info.channels     # CycleGAN's b -> a
                G(torch.randn(4, channels, info.resolution, info.resolution))
    ema_state = {n: _perturbed(recipe.nets[n].state_dict()) for n in recipe.generator_names} if ema else None
    path = tmp_path / f"{preset}.pt"
    save_checkpoint({"config": to_dict(cfg), "data_info": info.to_dict(), "nimg": 1000, "step": 10,
                     "nets": recipe.state_dict(), "ema": ema_state}, path)
    return path


IMAGE = DataInfo(name="toy", kind="image", size=16, channels=1, resolution=28, num_classes=3)
PAIRED = DataInfo(name="toy", kind="paired", size=4, channels=1, resolution=32, channels_b=3)


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("export")
    small = {"G.ngf": 4, "D.ndf": 4}
    return {"cgan": make_ckpt(tmp, "cgan", IMAGE, small),
            "dcgan": make_ckpt(tmp, "dcgan", IMAGE, small),
            "pix2pix": make_ckpt(tmp, "pix2pix", PAIRED, small),
            "cyclegan": make_ckpt(tmp, "cyclegan", PAIRED, {**small, "G.n_blocks": 1, "identity_weight": 0.0})}


def test_onnx_conditional_generator_equals_pytorch_with_a_dynamic_batch(ckpts, tmp_path):
    out = tmp_path / "G.onnx"
    result = export(ckpts["cgan"], "onnx", out)
    assert result.dynamic_batch and [c["batch"] for c in result.checked] == [1, 3, 5]
    meta = json.loads((tmp_path / "G.onnx.json").read_text())
    assert set(meta["inputs"]) == {"z", "label"} and "int64" in meta["inputs"]["label"]
    # An independent check: onnxruntime on new inputs against the EMA generator loaded by gankit.
    G = load_generator(ckpts["cgan"])
    session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["z", "label"]
    z = torch.randn(7, G.z_dim, generator=torch.Generator().manual_seed(3))
    label = torch.tensor([0, 1, 2, 2, 1, 0, 1])
    theirs = session.run(None, {"z": z.numpy(), "label": label.numpy()})[0]
    with torch.no_grad():
        ours = G(z, label).numpy()
        trained = load_generator(ckpts["cgan"], ema=False)(z, label).numpy()
    np.testing.assert_allclose(theirs, ours, atol=1e-4, rtol=1e-3)
    assert np.abs(theirs - trained).max() > 1e-3          # the EMA copy was exported, not the trained G
    other = session.run(None, {"z": z.numpy(), "label": ((label + 1) % 3).numpy()})[0]
    assert np.abs(other - theirs).max() > 1e-4            # the label input is live, not a traced constant


def test_onnx_translator_equals_pytorch(ckpts, tmp_path):
    out = tmp_path / "T.onnx"
    result = export(ckpts["pix2pix"], "onnx", out)
    assert result.checked and all(c["max_abs_diff"] < 1e-4 for c in result.checked)
    session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    x = torch.rand(2, 1, 32, 32, generator=torch.Generator().manual_seed(5)) * 2 - 1
    net = load_sampler(ckpts["pix2pix"]).net
    with torch.no_grad():
        np.testing.assert_allclose(session.run(None, {"image": x.numpy()})[0], net(x).numpy(), atol=1e-4, rtol=1e-3)
    assert session.get_outputs()[0].shape[1] == 3


def test_torchscript_loads_without_gankit(ckpts, tmp_path):
    out = tmp_path / "G.ts"
    export(ckpts["dcgan"], "torchscript", out)
    G = load_generator(ckpts["dcgan"])
    z = torch.randn(4, G.z_dim, generator=torch.Generator().manual_seed(11))
    with torch.no_grad():
        expected = G(z, None)
    torch.save({"z": z, "expected": expected}, tmp_path / "io.pt")
    code = (f"import sys, torch; sys.path = [p for p in sys.path if 'wt-' not in p and p not in ('', '.')]\n"
            f"m = torch.jit.load({str(out)!r}); d = torch.load({str(tmp_path / 'io.pt')!r})\n"
            f"assert 'gankit' not in sys.modules\n"
            f"print(float((m(d['z']) - d['expected']).abs().max()))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path,
                         env={"PATH": "/usr/bin:/bin"}, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    assert float(res.stdout.strip()) < 1e-5


@pytest.mark.parametrize("name", ["dcgan", "cgan", "pix2pix", "cyclegan"])
def test_safetensors_model_folder_is_what_load_generator_reads(ckpts, tmp_path, name):
    folder = tmp_path / f"{name}-model"
    export(ckpts[name], "safetensors", folder)
    assert sorted(p.name for p in folder.iterdir()) == ["gankit.json", "model.safetensors"]
    meta = json.loads((folder / "gankit.json").read_text())
    assert meta["format"] == "gankit-model" and meta["ema_merged"]
    _, _, _, nets = load_recipe(ckpts[name])
    _, _, _, nets2 = load_recipe(folder)
    assert set(nets) == set(nets2)
    for net_name in nets:                                  # every sampling network, EMA copies included
        a, b = nets[net_name].state_dict(), nets2[net_name].state_dict()
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    G = load_generator(folder)
    assert not G.training and not any(p.requires_grad for p in G.parameters())
    # and a model folder exports again (it is a checkpoint for every command)
    assert export_formats(load_sampler(folder))[-1] == "safetensors"


def test_model_folder_drives_the_cli(ckpts, tmp_path):
    folder = tmp_path / "m"
    runner = CliRunner()
    res = runner.invoke(cli, ["export", "--ckpt", str(ckpts["dcgan"]), "--format", "safetensors", "--out",
                              str(folder)])
    assert res.exit_code == 0, res.output
    res = runner.invoke(cli, ["info", str(folder)])
    assert res.exit_code == 0 and "export   onnx, torchscript, safetensors" in res.output, res.output
    res = runner.invoke(cli, ["sample", "--ckpt", str(folder), "--n", "4", "--out", str(tmp_path / "s.npy")])
    assert res.exit_code == 0, res.output
    drawn = np.load(tmp_path / "s.npy")
    expected = load_sampler(ckpts["dcgan"]).draw(n=4, seed=0).numpy()
    np.testing.assert_array_equal(drawn, expected)


def test_export_refuses_what_it_cannot_do(ckpts, tmp_path):
    (tmp_path / "taken.onnx").write_text("mine")
    with pytest.raises(ConfigError, match="never overwrites"):
        export(ckpts["dcgan"], "onnx", tmp_path / "taken.onnx")
    with pytest.raises(ConfigError, match="ends in .onnx"):
        export(ckpts["dcgan"], "onnx", tmp_path / "G.bin")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("mine")
    with pytest.raises(ConfigError, match="not an empty folder"):
        export(ckpts["dcgan"], "safetensors", tmp_path / "full")
    with pytest.raises(ConfigError, match="choose one of"):
        export(ckpts["dcgan"], "tflite", tmp_path / "G.tflite")
    (tmp_path / "fake").mkdir()
    (tmp_path / "fake" / "gankit.json").write_text('{"format": "something-else"}')
    with pytest.raises(CheckpointError, match="not a gankit model folder"):
        load_generator(tmp_path / "fake")


def test_a_sampler_kind_without_a_traceable_network_exports_safetensors_only(ckpts, tmp_path, monkeypatch):
    from gankit.samplers import NoiseSampler
    monkeypatch.setattr(NoiseSampler, "export_spec", Sampler.export_spec)
    assert export_formats(load_sampler(ckpts["dcgan"])) == ["safetensors"]
    with pytest.raises(ConfigError, match="--format safetensors"):
        export(ckpts["dcgan"], "torchscript", tmp_path / "G.ts")


# ---- restoration models: the upscaler (LR -> SR) and the inpainter (image, hole mask -> composited) -------------

SUPERRES = DataInfo(name="toy", kind="superres", size=4, channels=3, resolution=32, extras={"scale": 4})
INPAINT = DataInfo(name="toy", kind="image", size=4, channels=3, resolution=32)


def _restoration_ckpt(tmp_path, preset: str, info: DataInfo, overrides: dict):
    torch.manual_seed(0)
    cfg = resolve(preset, None, overrides)
    recipe = recipes.get(cfg.recipe).from_config(cfg, info)
    path = tmp_path / f"{preset}.pt"
    save_checkpoint({"config": to_dict(cfg), "data_info": info.to_dict(), "nimg": 1000, "step": 10,
                     "nets": _perturbed(recipe.state_dict()), "ema": None}, path)
    return path


def test_onnx_upscaler_and_torchscript_inpainter_equal_their_samplers(tmp_path):
    sr_ckpt = _restoration_ckpt(tmp_path, "srresnet", SUPERRES, {"G.nf": 8, "G.n_blocks": 1})
    result = export(sr_ckpt, "onnx", tmp_path / "SR.onnx")
    assert result.checked and all(c["max_abs_diff"] < 1e-4 for c in result.checked)
    session = onnxruntime.InferenceSession(str(tmp_path / "SR.onnx"), providers=["CPUExecutionProvider"])
    lr = torch.rand(3, 3, 8, 8, generator=torch.Generator().manual_seed(1)) * 2 - 1
    sr = session.run(None, {"lr": lr.numpy()})[0]
    assert sr.shape == (3, 3, 32, 32)
    np.testing.assert_allclose(sr, load_sampler(sr_ckpt)(lr).numpy(), atol=1e-4, rtol=1e-3)

    ip_ckpt = _restoration_ckpt(tmp_path, "inpaint", INPAINT, {"G.nf": 8, "D.nf": 8})
    export(ip_ckpt, "torchscript", tmp_path / "IP.ts")
    module = torch.jit.load(str(tmp_path / "IP.ts"))
    gen = torch.Generator().manual_seed(2)
    image = torch.rand(2, 3, 32, 32, generator=gen) * 2 - 1
    mask = torch.zeros(2, 1, 32, 32)
    mask[:, :, 8:24, 8:24] = 1
    with torch.no_grad():
        completed = module(image, mask)
    expected = load_sampler(ip_ckpt)(image, mask.bool())
    torch.testing.assert_close(completed, expected, atol=1e-5, rtol=1e-4)
    known = mask.expand_as(image) == 0
    assert torch.equal(completed[known], image[known])          # known pixels bit-exact in the exported file
    assert (completed[~known] - image[~known]).abs().max() > 1e-3  # the hole is the network's
