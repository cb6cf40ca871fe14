"""Small helpers shared by test files (pytest puts this folder on sys.path)."""
from gankit.cli import main


def run_cli(args, capsys):
    """Run the CLI in-process like a user would; returns (exit code, stdout, stderr with wrapping undone)."""
    try:
        main(args)
        code = 0
    except SystemExit as e:
        code = e.code or 0
    out = capsys.readouterr()
    return code, out.out, " ".join(out.err.split())
