"""``gankit report``: the HTML report of one run, or several runs compared.

    gankit report runs/00003-dcgan-digits                      # -> runs/00003-dcgan-digits/report.html
    gankit report runs/00003-... runs/00004-... --out cmp.html # curves overlaid, final samples side by side

No torch at import (``gankit --help`` stays fast); the report itself reads only the run's files.
"""
from __future__ import annotations

from pathlib import Path

import click

from .errors import ConfigError


@click.command("report")
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path())
@click.option("--out", default=None, type=click.Path(dir_okay=False),
              help="HTML file to write (default: RUN_DIR/report.html for one run, compare.html for several).")
@click.option("--max-frames", type=int, default=None, help="Snapshots shown per artefact series (size budget, 24).")
@click.option("--max-points", type=int, default=None, help="Ticks shown per curve (size budget, 1500).")
def report(run_dirs, out, max_frames, max_points):
    """Write a self-contained HTML report of a run (or compare runs): curves, samples over time, metrics,
    evaluation cards, events. Opens offline; training refreshes RUN_DIR/report.html at every snapshot."""
    from .report import REPORT_NAME, Budget, is_report, write_report
    budget = Budget()
    for name, value in (("max_frames", max_frames), ("max_points", max_points)):
        if value is not None:
            if value < 1:
                raise ConfigError(f"--{name.replace('_', '-')} must be at least 1, got {value}.")
            setattr(budget, name, value)
    if out is None:
        out_path = Path(run_dirs[0]) / REPORT_NAME if len(run_dirs) == 1 else Path("compare.html")
    else:
        out_path = Path(out)
    if out_path.suffix.lower() not in (".html", ".htm"):
        raise ConfigError(f"--out {str(out_path)!r}: a report is an .html file.")
    if out_path.exists() and not is_report(out_path):
        raise ConfigError(f"{out_path} exists and is not a gankit report; gankit never overwrites your files. "
                          f"Choose another --out.")
    path = write_report(list(run_dirs), out_path, budget)
    click.echo(f"Wrote {path} ({path.stat().st_size / 1024:.0f} KiB)")


COMMANDS = [report]
