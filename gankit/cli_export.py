"""``gankit export``: a trained model as ONNX, TorchScript or a safetensors model folder.

    gankit export --ckpt runs/00003-dcgan-digits --format onnx --out G.onnx
    gankit export --ckpt runs/00003-dcgan-digits --format torchscript --out G.ts
    gankit export --ckpt runs/00003-dcgan-digits --format safetensors --out dcgan-digits/

No torch at import (``gankit --help`` stays fast).
"""
from __future__ import annotations

import click


@click.command("export")
@click.option("--ckpt", required=True, help="Checkpoint file, run directory (its latest.pt) or model folder.")
@click.option("--format", "fmt", required=True, type=click.Choice(["onnx", "torchscript", "safetensors"]),
              help="onnx / torchscript: the sampler's network (checked against PyTorch); safetensors: a model "
                   "folder for gankit.load_generator (every family).")
@click.option("--out", required=True, help="FILE.onnx, FILE.ts (or .pt) or a new FOLDER for safetensors.")
@click.option("--no-ema", is_flag=True, help="Export the trained generator instead of its EMA copy.")
@click.option("--sampler", default="default", show_default=True, help="Which of the recipe's samplers to export.")
@click.option("--no-check", is_flag=True, help="Skip comparing the exported model's outputs with PyTorch's.")
def export(ckpt, fmt, out, no_ema, sampler, no_check):
    """Export a trained generator / translator for other tools (ONNX, TorchScript, safetensors)."""
    from .export import export as run_export
    result = run_export(ckpt, fmt, out, ema=not no_ema, sampler=sampler, check=not no_check)
    click.echo(f"Wrote {result.path} ({result.format})")
    if result.dynamic_batch is not None:
        click.echo(f"  batch size: {'dynamic' if result.dynamic_batch else 'fixed'}")
    for c in result.checked:
        click.echo(f"  batch {c['batch']}: max |exported - PyTorch| = {c['max_abs_diff']:.3g}")
    for note in result.notes:
        click.echo(f"  note: {note}")
    if result.format != "safetensors":
        click.echo(f"  inputs and outputs: {result.path.name}.json")


COMMANDS = [export]
