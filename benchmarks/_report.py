"""Shared helper: write one benchmark's results into its own section of docs/benchmarks.md."""
from __future__ import annotations

import re
import time
from pathlib import Path

DOC = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"
HEADER = ("# Benchmarks\n\nWritten by the scripts in `benchmarks/` (not part of `make test`). Speeds are ratios "
          "measured side by side in one run; the machine, date and command are given with each result.\n")


def write_section(key: str, title: str, body: str) -> None:
    """Replace (or append) the section between <!-- KEY --> and <!-- /KEY --> in docs/benchmarks.md."""
    text = DOC.read_text() if DOC.exists() else HEADER
    stamp = time.strftime("%Y-%m-%d")
    block = f"<!-- {key} -->\n## {title}\n\n_{stamp}_\n\n{body.strip()}\n<!-- /{key} -->"
    pattern = re.compile(rf"<!-- {re.escape(key)} -->.*?<!-- /{re.escape(key)} -->", re.S)
    text = pattern.sub(lambda _: block, text) if pattern.search(text) else text.rstrip() + "\n\n" + block + "\n"
    DOC.parent.mkdir(parents=True, exist_ok=True)
    DOC.write_text(text)
