"""``gankit convert``: voice conversion with a trained CycleGAN-VC model.

    gankit convert --ckpt runs/00004-cyclegan-vc2-digit-voices --input voice.wav --out converted.wav
    gankit convert --ckpt ... --input voices/ --out converted/ [--direction BtoA]

The input is a sound file (or a folder of them) of the source speaker at any sample rate; it is resampled to
the model's rate, analysed with WORLD, converted and resynthesised (see ``recipes/cyclegan_vc.py``). Outputs
are 16-bit WAV at the model's rate. Existing files are never replaced unless ``--overwrite`` is given.
No torch import at module level: ``gankit --help`` stays fast.
"""
from __future__ import annotations

from pathlib import Path

import click

from .errors import ConfigError, DataError

SOUND_SUFFIXES = (".wav", ".flac", ".ogg")


def list_sounds(path: str | Path) -> list[Path]:
    path = Path(path)
    if path.is_file():
        if path.suffix.lower() not in SOUND_SUFFIXES:
            raise DataError(f"{str(path)!r} is not a sound file gankit reads ({', '.join(SOUND_SUFFIXES)}).")
        return [path]
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in SOUND_SUFFIXES)
        if not files:
            raise DataError(f"No sound files ({', '.join(SOUND_SUFFIXES)}) in folder {str(path)!r}.")
        return files
    raise DataError(f"Input {str(path)!r} does not exist; pass a .wav file or a folder of them.")


@click.command("convert")
@click.option("--ckpt", required=True, help="Checkpoint file or run directory of a voice-conversion model.")
@click.option("--input", "input_path", required=True, help="A sound file of the source speaker, or a folder.")
@click.option("--out", required=True, help="Output .wav file (for one input) or folder (same file names, .wav).")
@click.option("--direction", type=click.Choice(["AtoB", "BtoA"]), default="AtoB", show_default=True,
              help="Speaker A -> B (the data's first speaker to its second) or back.")
@click.option("--overwrite", is_flag=True, help="Replace output files that exist (and say so).")
@click.option("--device", default="auto", show_default=True)
def convert(ckpt, input_path, out, direction, overwrite, device):
    """Convert speech to the other speaker's voice with a trained CycleGAN-VC model."""
    from .audio import read_wav, write_wav
    from .engine import resolve_device
    from .loading import load_sampler

    files = list_sounds(input_path)
    out_path = Path(out)
    if len(files) == 1 and out_path.suffix:
        if out_path.suffix.lower() != ".wav":
            raise ConfigError(f"--out {out!r}: converted speech is written as .wav.")
        targets = [out_path]
    else:
        if out_path.suffix:
            raise ConfigError(f"--out {out!r}: {len(files)} inputs need an output folder, not a file name.")
        targets = [out_path / (f.stem + ".wav") for f in files]
    existing = [t for t in targets if t.exists()]
    if existing and not overwrite:
        raise ConfigError(f"{len(existing)} output file(s) already exist (e.g. {existing[0]}); choose another --out or "
                          "pass --overwrite to replace them.")
    sampler = load_sampler(ckpt, resolve_device(device))
    sampler.require("convert")                      # another kind of model: says which command drives it
    converter = sampler.for_direction(direction)
    click.echo(f"converting {len(files)} file(s) {direction} at {converter.rate} Hz -> {out_path}")
    for src, dst in zip(files, targets):
        wave, rate = read_wav(src)
        write_wav(dst, converter.convert(wave, rate), converter.rate)
    if existing:
        click.echo(f"replaced {len(existing)} existing file(s) (--overwrite)")


COMMANDS = [convert]
