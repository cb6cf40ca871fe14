"""The command line: a thin front over the Python API.

A user's mistake (unknown preset, bad override, missing data, unreadable checkpoint) prints one paragraph
naming the problem and the valid choices and exits with code 2, never a traceback.
"""
from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import click

from .errors import ConfigError, GankitError, TrainingDiverged


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(package_name="gankit")
def cli() -> None:
    """gankit: train, evaluate and use Generative Adversarial Networks."""


# ---- train -------------------------------------------------------------------------------------------------

@cli.command()
@click.option("--preset", default="dcgan", show_default=True, help="Family preset (see `gankit presets`).")
@click.option("--data", "data", default=None, help="Builtin name (digits, ring8, grid25, mnist, ...) or a path.")
@click.option("--data-b", default=None, help="Second folder for two-folder paired/unpaired data.")
@click.option("--data-root", default=None, help="Where builtins look for their files (default $GANKIT_DATA or ./data).")
@click.option("--download", is_flag=True, default=None, help="Let builtins (mnist, cifar10, ...) download their files.")
@click.option("--resolution", type=int, default=None, help="Resize images to this side.")
@click.option("--direction", type=click.Choice(["AtoB", "BtoA"]), default=None, help="Translation direction.")
@click.option("--config", "config_file", default=None, type=click.Path(), help="YAML/JSON file of config values.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a config value (repeatable).")
@click.option("--kimg", type=float, default=None, help="Training length in thousands of real images (may be fractional).")
@click.option("--batch", type=int, default=None, help="Batch size per process (under DDP the global batch is "
                                                     "this x the number of processes).")
@click.option("--seed", type=int, default=None, help="Random seed.")
@click.option("--device", default=None, help="auto | cpu | cuda | cuda:N")
@click.option("--out", default="runs", show_default=True, help="Folder that holds the numbered run directories.")
@click.option("--resume", default=None, help="Run directory or checkpoint to continue (the same run).")
@click.option("--init-from", default=None, help="Start a NEW run from another run's weights (networks whose names "
                                                "and shapes match), e.g. SRResNet -> SRGAN or fine-tuning.")
@click.option("--gpus", type=int, default=None, help="Train on N GPUs of this machine with DDP (launches torchrun).")
@click.option("--tensorboard", is_flag=True, default=None, help="Also log losses and sample grids for TensorBoard.")
@click.option("--dry-run", is_flag=True, help="Print the resolved config and exit.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def train(preset, data, data_b, data_root, download, resolution, direction, config_file, overrides, kimg, batch,
          seed, device, out, resume, init_from, gpus, tensorboard, dry_run, quiet):
    """Train a GAN; writes runs/NNNNN-<preset>-<data>/ with samples, checkpoints and logs.

    Under torchrun (``torchrun --nproc_per_node=N -m gankit train ...``, or ``--gpus N``) every process trains
    its slice of each batch with DDP and rank 0 writes the run."""
    from .config import to_dict
    from .engine import resolve, train as run_training
    if gpus is not None:
        from .engine.distributed import launch_torchrun
        if gpus < 1:
            raise ConfigError(f"--gpus must be at least 1, got {gpus}.")
        sys.exit(launch_torchrun(gpus, sys.argv[1:]))
    if resume is not None and init_from is not None:
        raise ConfigError("--resume continues a run; --init-from starts a new run from another run's weights. "
                          "Give one of them.")
    flag_overrides = {"data.spec": data, "data.spec_b": data_b, "data.root": data_root, "data.download": download,
                      "data.resolution": resolution, "data.direction": direction, "kimg": kimg,
                      "batch_size": batch, "seed": seed, "device": device, "tensorboard": tensorboard,
                      "init_from": init_from}
    flag_overrides = {k: v for k, v in flag_overrides.items() if v is not None}
    from .config import split_override
    set_pairs = [split_override(o) for o in overrides]
    all_overrides = {**flag_overrides, **dict(set_pairs)}
    if resume is not None:
        from .checkpoint import load_checkpoint
        from .config import from_dict
        from .engine.configure import apply_override
        saved = load_checkpoint(resume)
        cfg_dict = saved["config"]
        for k, v in all_overrides.items():
            cfg_dict = apply_override(cfg_dict, k, v)
        cfg = from_dict(cfg_dict)
    else:
        cfg = resolve(preset, config_file, all_overrides)
    if dry_run:
        click.echo(json.dumps(to_dict(cfg), indent=2))
        return
    run_dir = run_training(cfg, out=out, resume=resume, progress=not quiet, resume_overrides=set(all_overrides))
    latest = sorted(run_dir.glob("samples-*.*"))     # whatever the family's snapshot writes (.png, .txt, ...)
    click.echo(f"Run directory: {run_dir}")
    if latest:
        click.echo(f"Latest samples: {latest[-1]}")
    click.echo(f"Checkpoint:     {run_dir / 'latest.pt'}")


# ---- sample / interpolate ----------------------------------------------------------------------------------

def parse_seeds(text: str) -> list[int]:
    """'0-63' -> 0..63; '1,5,9' -> [1, 5, 9]; mixtures like '0-3,10' work too."""
    seeds: list[int] = []
    try:
        for part in text.split(","):
            part = part.strip()
            if "-" in part[1:]:
                lo, hi = part.split("-", 1) if not part.startswith("-") else (None, None)
                lo_i, hi_i = int(lo), int(hi)
                if hi_i < lo_i:
                    raise ValueError
                seeds.extend(range(lo_i, hi_i + 1))
            elif part:
                seeds.append(int(part))
    except (ValueError, TypeError):
        raise ConfigError(f"Cannot read seeds {text!r}: use a range like 0-63, a list like 1,5,9, or both.") from None
    if not seeds:
        raise ConfigError("No seeds given: use a range like 0-63 or a list like 1,5,9.")
    return seeds


def _sampler(ckpt: str, device: str, command: str, ema: bool = True):
    from .engine import resolve_device
    from .loading import load_sampler
    sampler = load_sampler(ckpt, resolve_device(device), ema=ema)
    sampler.require(command)
    return sampler


def _sample_options(f):
    """The flags every registered sampler kind may take (``--label``, families' ``--truncation``...)."""
    from .samplers import sample_options
    for name, opt in reversed(sample_options.items()):
        f = click.option("--" + name.replace("_", "-"), name, type=opt.type, default=None, help=opt.help)(f)
    return f


def _sampling_commands() -> list[click.Command]:
    """`sample` and `interpolate`, made after the families registered their sampling options."""
    @click.command()
    @click.option("--ckpt", required=True, help="Checkpoint file or run directory.")
    @click.option("--n", type=int, default=None, help="Number of samples (seeded by --seed).")
    @click.option("--seeds", default=None, help="One sample per seed: 0-63 or 1,5,9.")
    @click.option("--seed", type=int, default=0, show_default=True)
    @click.option("--out", default="samples.png", show_default=True,
                  help="FILE.png (grid or scatter), DIR (one PNG each) or FILE.npy; families add their formats.")
    @click.option("--nrow", type=int, default=None, help="Images per grid row.")
    @click.option("--no-ema", is_flag=True, help="Use the trained generator instead of its EMA copy.")
    @click.option("--device", default="auto", show_default=True)
    @_sample_options
    def sample(ckpt, n, seeds, seed, out, nrow, no_ema, device, **options):
        """Draw samples from a checkpoint."""
        from .samplers import write_samples
        if (n is None) == (seeds is None):
            raise ConfigError("Give exactly one of --n N or --seeds 0-63.")
        seed_list = parse_seeds(seeds) if seeds is not None else None
        sampler = _sampler(ckpt, device, "sample", ema=not no_ema)
        options = sampler.check_options(options)
        out_path = Path(out)
        if out_path.exists() and out_path.is_file():
            raise ConfigError(f"{out} already exists; gankit never overwrites results. Choose another --out.")
        samples = sampler.draw(n=n, seed=seed, seeds=seed_list, **options)
        names = [f"seed{s:05d}.png" for s in seed_list] if seed_list else [f"{i:06d}.png" for i in range(len(samples))]
        write_samples(sampler, samples, out_path, names, nrow)
        click.echo(f"Wrote {len(samples)} samples to {out_path}")


    @click.command()
    @click.option("--ckpt", required=True, help="Checkpoint file or run directory.")
    @click.option("--seeds", required=True, help="Two seeds: A,B")
    @click.option("--steps", type=int, default=8, show_default=True)
    @click.option("--mode", type=click.Choice(["slerp", "linear"]), default="slerp", show_default=True)
    @click.option("--out", required=True, help="FILE.png (one row) or FILE.gif (animation).")
    @click.option("--device", default="auto", show_default=True)
    @_sample_options
    def interpolate(ckpt, seeds, steps, mode, out, device, **options):
        """Walk the latent space between two seeds."""
        from .sample import save_gif, save_grid
        pair = parse_seeds(seeds)
        if len(pair) != 2:
            raise ConfigError(f"--seeds needs exactly two seeds, like 3,7; got {seeds!r}.")
        out_path = Path(out)
        if out_path.suffix not in (".png", ".gif"):
            raise ConfigError(f"--out must end in .png or .gif, got {out!r}.")
        if out_path.exists():
            raise ConfigError(f"{out} already exists; gankit never overwrites results. Choose another --out.")
        sampler = _sampler(ckpt, device, "interpolate")
        options = sampler.check_options(options)
        frames = sampler.interpolate(pair[0], pair[1], steps=steps, mode=mode, **options)
        (save_gif(frames, out_path) if out_path.suffix == ".gif" else save_grid(frames, out_path, nrow=steps))
        click.echo(f"Wrote {steps} interpolation steps to {out_path}")

    return [sample, interpolate]


# ---- presets / info ----------------------------------------------------------------------------------------

@cli.command()
def presets():
    """List the presets."""
    from .presets import PRESETS
    width = max(map(len, PRESETS)) + 2
    for name, p in PRESETS.items():
        lines = textwrap.wrap(p.get("description", ""), 100 - width) or [""]
        click.echo(f"{name:<{width}}{lines[0]}")
        for line in lines[1:]:
            click.echo(" " * width + line)


@cli.command()
@click.argument("ckpt")
@click.option("--json", "as_json", is_flag=True, help="Print everything as JSON.")
def info(ckpt, as_json):
    """Describe a checkpoint: family, data, progress, networks and config."""
    from .checkpoint import load_checkpoint
    c = load_checkpoint(ckpt)
    cfg, data_info = c["config"], c["data_info"]
    n_params = {}
    for key, tensor in c["nets"].items():  # parameter counts per network (buffers left out)
        if key.startswith("nets.") and not key.endswith(("running_mean", "running_var", "num_batches_tracked")):
            n_params[key.split(".")[1]] = n_params.get(key.split(".")[1], 0) + tensor.numel()
    summary = {"preset": cfg.get("preset"), "recipe": cfg["recipe"], "kimg": c["nimg"] / 1000, "step": c["step"],
               "data": {k: data_info[k] for k in ("name", "kind", "size", "channels", "resolution", "dim",
                                                  "num_classes")},
               "parameters": n_params, "ema": bool(c.get("ema")), "best": c.get("best"),
               "gankit_version": c.get("gankit_version")}
    if as_json:
        click.echo(json.dumps({**summary, "config": cfg}, indent=2))
        return
    click.echo(f"family   {summary['preset'] or '-'} (recipe {summary['recipe']})")
    click.echo(f"progress {summary['kimg']:.3f} kimg, {summary['step']} steps")
    d = summary["data"]
    from .data.base import DataInfo
    shape = DataInfo(**data_info).shape_text()
    click.echo(f"data     {d['name']} ({d['kind']}, {shape}, {d['size']} items, {d['num_classes']} classes)")
    click.echo("networks " + ", ".join(f"{k}: {v:,} parameters" for k, v in n_params.items())
               + (" (+ EMA generator)" if summary["ema"] else ""))
    if summary["best"]:
        click.echo(f"best     {summary['best']}")
    click.echo("config   " + json.dumps({k: cfg[k] for k in ("opts", "batch_size", "d_steps", "ema_kimg", "seed")}))


# Modules that add commands: subsystems and families (a family with its own command, e.g. `mix` or `upscale`,
# is a module with a COMMANDS list and its name here). Imported here, so no recipe imports the CLI.
COMMAND_MODULES = ("gankit.cli_metrics", "gankit.cli_translate")


def _attach_commands() -> None:
    import importlib

    import gankit.recipes  # noqa: F401  the families register their sampler kinds and sampling options
    for command in _sampling_commands():
        cli.add_command(command)
    for module in COMMAND_MODULES:
        for command in importlib.import_module(module).COMMANDS:
            cli.add_command(command)


_attach_commands()


def main(argv: list[str] | None = None) -> None:
    try:
        rv = cli.main(args=argv, prog_name="gankit", standalone_mode=False)
    except click.exceptions.UsageError as e:
        e.show()
        sys.exit(2)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(130)
    except TrainingDiverged as e:
        click.echo(f"Error: {e}", err=True)
        sys.exit(1)
    except GankitError as e:
        click.echo("Error: " + "\n".join(textwrap.wrap(str(e), 110)), err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        click.echo("Interrupted; the last checkpoint (latest.pt) is intact.", err=True)
        sys.exit(130)
    if isinstance(rv, int) and rv:
        sys.exit(rv)
