"""`gankit --help` and `gankit presets` start without torch (the start-up time is measured in
benchmarks/startup.py, not timed here); the command modules stay light; lazily built commands still work."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

PROBE = """
import sys
import gankit.cli
try:
    gankit.cli.main({argv!r})
except SystemExit:
    pass
heavy = sorted(m for m in ("torch", "torchvision", "numpy", "scipy", "matplotlib", "PIL", "torch_fidelity")
               if m in sys.modules)
print("HEAVY=" + ",".join(heavy))
"""


def _heavy_modules_after(argv: list[str]) -> tuple[list[str], str]:
    res = subprocess.run([sys.executable, "-c", PROBE.format(argv=argv)], capture_output=True, text=True,
                         cwd=ROOT, timeout=120, env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)})
    assert res.returncode == 0, res.stderr[-2000:]
    line = [ln for ln in res.stdout.splitlines() if ln.startswith("HEAVY=")][-1]
    return [m for m in line[len("HEAVY="):].split(",") if m], res.stdout


@pytest.mark.parametrize("argv", [["--help"], ["presets"], ["report", "--help"], ["export", "--help"]])
def test_light_commands_do_not_import_torch(argv):
    heavy, out = _heavy_modules_after(argv)
    assert "torch" not in heavy, f"`gankit {' '.join(argv)}` imported {heavy}"
    assert "numpy" not in heavy and "matplotlib" not in heavy, heavy


def test_help_lists_every_command_including_the_lazy_ones():
    _, out = _heavy_modules_after(["--help"])
    from gankit.cli import COMMAND_MODULES
    import importlib
    names = {"train", "sample", "interpolate", "presets", "info"}
    for module in COMMAND_MODULES:
        names |= {c.name for c in importlib.import_module(module).COMMANDS}
    for name in names:
        assert f"\n  {name} " in out, f"{name} missing from --help"


def test_sample_is_built_with_the_families_options():
    from click.testing import CliRunner

    from gankit.cli import cli
    res = CliRunner().invoke(cli, ["sample", "--help"])
    assert res.exit_code == 0 and "--label" in res.output and "--truncation" in res.output


def test_the_lazy_package_keeps_its_api_after_submodule_imports():
    import gankit
    import gankit.loading  # noqa: F401
    import gankit.sample  # noqa: F401  binds the submodule to the package: the function must win
    from gankit.sample import latents_for_seeds  # noqa: F401
    # What the import system does when it first loads a submodule: setattr(package, name, submodule).
    setattr(gankit, "sample", sys.modules["gankit.sample"])
    assert callable(gankit.sample) and gankit.sample.__name__ == "sample", gankit.sample
    assert gankit.load_generator.__module__ == "gankit.loading" and callable(gankit.train)
    assert "sample" in dir(gankit) and sys.modules["gankit.sample"].__name__ == "gankit.sample"
