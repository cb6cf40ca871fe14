"""Exporting a trained model for other tools: ONNX, TorchScript, and a safetensors model folder.

    export("runs/00003-dcgan-digits", "onnx", "G.onnx")                 # checked against PyTorch by onnxruntime
    export("runs/00003-dcgan-digits", "torchscript", "G.ts")            # torch.jit.load without gankit
    export("runs/00003-dcgan-digits", "safetensors", "dcgan-digits/")   # gankit.load_generator("dcgan-digits/")

What is exported comes from the sampler contract, never from the family: ``Sampler.export_spec(batch)`` names
the module and example inputs (a noise sampler: z [and label] -> images; a translator: image -> image; later
kinds add theirs). A kind without one still exports as a model folder, which every family has: the sampling
networks' tensors in ``model.safetensors`` plus ``gankit.json`` (config, data info, structure), no optimiser
state and no pickled code.

ONNX goes through ``torch.onnx.export(..., dynamo=True)`` (the torch.export-based exporter; needs ``onnx`` and
``onnxscript``) with a dynamic batch dimension; if the exporter refuses it, the batch is fixed to the example's
and the result says so. The export is then checked with onnxruntime: outputs equal PyTorch's to float tolerance
on a few inputs (every batch size tried where it is dynamic). Next to an ONNX or TorchScript file,
``<file>.json`` describes the inputs and outputs.
"""
from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .errors import CheckpointError, ConfigError
from .io import atomic_write_text
from .loading import MODEL_FORMAT, MODEL_META, MODEL_VERSION, MODEL_WEIGHTS, load_recipe, read_model
from .version import __version__

FORMATS = ("onnx", "torchscript", "safetensors")
SUFFIXES = {"onnx": (".onnx",), "torchscript": (".pt", ".ts", ".torchscript")}
# Float tolerance of the equality checks (float32 convolutions reordered by another runtime).
ATOL, RTOL = 1e-4, 1e-3


@dataclass
class ExportResult:
    format: str
    path: Path
    dynamic_batch: bool | None = None          # None: not applicable (safetensors)
    checked: list[dict] = field(default_factory=list)   # [{"batch": n, "max_abs_diff": x}]
    notes: list[str] = field(default_factory=list)


def export_formats(sampler: Any) -> list[str]:
    """The formats ``sampler``'s model exports to (``gankit info``)."""
    return (["onnx", "torchscript"] if sampler.export_spec(1) is not None else []) + ["safetensors"]


def _check_out(fmt: str, out: Path) -> None:
    if fmt not in FORMATS:
        raise ConfigError(f"Unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}.")
    if fmt == "safetensors":
        if out.exists() and (not out.is_dir() or any(out.iterdir())):
            raise ConfigError(f"{out} exists and is not an empty folder; a model folder is written into a new "
                              f"folder (gankit never overwrites your files).")
        return
    if out.suffix.lower() not in SUFFIXES[fmt]:
        raise ConfigError(f"--out {str(out)!r}: a {fmt} file ends in {' or '.join(SUFFIXES[fmt])}.")
    for path in (out, out.with_name(out.name + ".json")):
        if path.exists():
            raise ConfigError(f"{path} already exists; gankit never overwrites results. Choose another --out.")


def export(ckpt: str | Path, fmt: str, out: str | Path, ema: bool = True, sampler: str = "default",
           check: bool = True) -> ExportResult:
    """Export checkpoint / run directory / model folder ``ckpt`` as ``fmt`` to ``out`` (see the module doc)."""
    out = Path(out)
    _check_out(fmt, out)
    if fmt == "safetensors":
        return save_model_folder(ckpt, out, ema=ema)
    recipe, cfg, _, nets = load_recipe(ckpt, "cpu", ema)
    samplers = recipe.samplers(nets)
    if sampler not in samplers:
        raise CheckpointError(f"This model has no sampler {sampler!r}; it has {', '.join(samplers)}.")
    spec = samplers[sampler].export_spec(2)
    if spec is None:
        raise ConfigError(f"A {samplers[sampler].kind!r} model has no single network to export as {fmt}; export it "
                          f"with --format safetensors (a model folder gankit.load_generator reads).")
    spec.module.eval()
    result = _export_onnx(spec, out, check) if fmt == "onnx" else _export_torchscript(spec, out, check)
    meta = {"format": fmt, "gankit_version": __version__, "preset": cfg.preset, "recipe": cfg.recipe,
            "inputs": {n: spec.describe.get(n, "") for n in spec.input_names},
            "output": {spec.output_name: spec.describe.get(spec.output_name, "")},
            "dynamic_batch": result.dynamic_batch, "checked": result.checked, "notes": result.notes}
    atomic_write_text(out.with_name(out.name + ".json"), json.dumps(meta, indent=2) + "\n")
    return result


def _probe_inputs(spec: Any, batches: tuple[int, ...]) -> list[tuple[torch.Tensor, ...]]:
    """Fresh inputs like the example ones at other batch sizes (labels cycle through the example's range)."""
    out = []
    for b in batches:
        gen = torch.Generator().manual_seed(1000 + b)
        probe = []
        for x in spec.inputs:
            if x.dtype.is_floating_point:
                probe.append(torch.randn((b, *x.shape[1:]), generator=gen, dtype=x.dtype).clamp(-3, 3)
                             if x.dim() == 2 else torch.rand((b, *x.shape[1:]), generator=gen) * 2 - 1)
            else:
                high = int(x.max()) + 1
                probe.append(torch.randint(0, max(high, 1), (b, *x.shape[1:]), generator=gen, dtype=x.dtype))
        out.append(tuple(probe))
    return out


def _close(ours: torch.Tensor, theirs: Any) -> float:
    theirs = torch.as_tensor(theirs)
    if ours.shape != theirs.shape:
        raise CheckpointError(f"Exported model gives shape {tuple(theirs.shape)}, PyTorch {tuple(ours.shape)}.")
    diff = float((ours - theirs).abs().max()) if ours.numel() else 0.0
    if not torch.allclose(ours, theirs.to(ours.dtype), atol=ATOL, rtol=RTOL):
        raise CheckpointError(f"Exported model differs from PyTorch by up to {diff:.3g} (tolerance {ATOL} + "
                              f"{RTOL} x |value|); not written as a good export.")
    return diff


def _export_onnx(spec: Any, out: Path, check: bool) -> ExportResult:
    try:
        import onnx  # noqa: F401  the exporter writes with it
        import onnxscript  # noqa: F401
    except ImportError:
        raise ConfigError("ONNX export needs onnx and onnxscript (and onnxruntime to check it): "
                          "pip install 'gankit[export]'.") from None
    import tempfile
    notes = []
    dynamic = spec.dynamic_batch
    # Exported into a temporary folder under the final name, checked, then moved: a failed check leaves nothing.
    with tempfile.TemporaryDirectory(prefix=".gankit-export-", dir=out.parent if out.parent.exists() else None) as d:
        tmp = Path(d) / out.name

        def run(dynamic_shapes: Any) -> None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                torch.onnx.export(spec.module, spec.inputs, str(tmp), input_names=list(spec.input_names),
                                  output_names=[spec.output_name], dynamo=True, verbose=False,
                                  external_data=False, dynamic_shapes=dynamic_shapes)
        if dynamic:
            batch = torch.export.Dim("batch", min=1)
            try:
                run(tuple({0: batch} for _ in spec.inputs))
            except Exception as e:  # noqa: BLE001  the exporter's refusals come as many error types
                dynamic = False
                notes.append(f"batch size fixed to {len(spec.inputs[0])}: the exporter could not make it dynamic "
                             f"({type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''})")
        if not dynamic:
            run(None)
        checked = _check_onnx(spec, tmp, dynamic) if check else []
        out.parent.mkdir(parents=True, exist_ok=True)
        import shutil
        shutil.move(str(tmp), str(out))
    return ExportResult("onnx", out, dynamic, checked, notes)


def _check_onnx(spec: Any, path: Path, dynamic: bool) -> list[dict]:
    try:
        import onnxruntime as ort
    except ImportError:
        raise ConfigError("Checking the ONNX export needs onnxruntime: pip install 'gankit[export]' "
                          "(or --no-check).") from None
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    batches = (1, 3, 5) if dynamic else (len(spec.inputs[0]),) * 2
    checked = []
    with torch.no_grad():
        for inputs in _probe_inputs(spec, batches):
            ours = spec.module(*inputs)
            theirs = session.run(None, {n: x.numpy() for n, x in zip(spec.input_names, inputs)})[0]
            checked.append({"batch": len(inputs[0]), "max_abs_diff": _close(ours, theirs)})
    return checked


def _export_torchscript(spec: Any, out: Path, check: bool) -> ExportResult:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # torch.jit is deprecated in favour of torch.export; still loadable
        with torch.no_grad():
            traced = torch.jit.trace(spec.module, spec.inputs, check_trace=False)
        tmp = out.with_name(f".{out.name}.tmp")
        try:
            torch.jit.save(traced, str(tmp))
            checked = []
            if check:
                loaded = torch.jit.load(str(tmp))
                with torch.no_grad():
                    for inputs in _probe_inputs(spec, (1, 3, 5)):
                        checked.append({"batch": len(inputs[0]),
                                        "max_abs_diff": _close(spec.module(*inputs), loaded(*inputs))})
            tmp.replace(out)
        finally:
            tmp.unlink(missing_ok=True)
    return ExportResult("torchscript", out, True, checked,
                        ["traced: control flow that depends on values is fixed to the example's path"])


def save_model_folder(ckpt: str | Path, out: str | Path, ema: bool = True) -> ExportResult:
    """``out/model.safetensors`` (the recipe's tensors with the EMA generators in place of the trained ones)
    + ``out/gankit.json``. ``gankit.load_generator(out)`` / ``load_sampler(out)`` read it."""
    try:
        from safetensors.torch import save_file
    except ImportError:
        raise ConfigError("safetensors export needs safetensors: pip install 'gankit[export]'.") from None
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ConfigError(f"{out} exists and is not an empty folder; gankit never overwrites your files.")
    source = read_model(ckpt)
    recipe, _, _, nets = load_recipe(ckpt, "cpu", ema)
    state: dict[str, torch.Tensor] = {}
    left_out = []                                      # non-tensor training state (an image pool): not needed to sample
    for key, value in recipe.state_dict().items():
        if isinstance(value, torch.Tensor):
            state[key] = value
        else:
            left_out.append(key)
    for name, net in nets.items():                     # the sampling nets (EMA copies) replace the trained ones
        for key, value in net.state_dict().items():
            state[f"nets.{name}.{key}"] = value
    state = {k: v.detach().cpu().contiguous().clone() for k, v in state.items()}
    meta = {"format": MODEL_FORMAT, "version": MODEL_VERSION, "gankit_version": __version__,
            "config": source["config"], "data_info": source["data_info"], "structure": source.get("structure"),
            "nimg": source.get("nimg"), "step": source.get("step"), "best": source.get("best"),
            "ema_merged": bool(ema and source.get("ema")) or bool(source.get("ema_merged")),
            "networks": {name: sum(p.numel() for p in net.parameters()) for name, net in nets.items()},
            "left_out": left_out}
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.mkdir(parents=True, exist_ok=False)
    try:
        save_file(state, str(tmp / MODEL_WEIGHTS), metadata={"format": MODEL_FORMAT})
        (tmp / MODEL_META).write_text(json.dumps(meta, indent=2, default=str) + "\n", encoding="utf-8")
        if out.exists():
            out.rmdir()                                  # empty (checked above)
        tmp.replace(out)
    finally:
        if tmp.exists():
            for p in tmp.iterdir():
                p.unlink()
            tmp.rmdir()
    return ExportResult("safetensors", out, None, [], [f"{len(state)} tensors, networks {', '.join(nets.keys())}"])
