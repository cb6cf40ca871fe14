"""The README's report screenshot: a short toy run with metrics, its report opened in headless Chromium.

    python benchmarks/report_screenshot.py [--run RUN_DIR] [--out docs/images/report.png]

Without --run it trains `gankit train --preset gan --data ring8 --kimg 320 --set metrics=[toy]
--set metrics_kimg=32 --set snapshot_kimg=32 --set tick_kimg=4` into a temporary folder (a few minutes on a
CPU). Needs chromium + chromedriver (`make browser`) and selenium.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

TRAIN = ["train", "--preset", "gan", "--data", "ring8", "--kimg", "320", "--set", "metrics=[toy]",
         "--set", "metrics_kimg=32", "--set", "snapshot_kimg=32", "--set", "tick_kimg=4", "--quiet"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", type=Path, default=None)
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "images" / "report.png")
    args = ap.parse_args()
    from browser import chromium, open_page
    from gankit.report import write_report
    with tempfile.TemporaryDirectory() as tmp:
        run = args.run
        if run is None:
            subprocess.run([sys.executable, "-m", "gankit", *TRAIN, "--out", tmp], check=True, cwd=ROOT)
            run = next(Path(tmp).iterdir())
        page = write_report([run], Path(tmp) / "report.html")
        driver = chromium()
        try:
            state = open_page(driver, page)
            assert not state["console_errors"], state["console_errors"]
            driver.set_window_size(1280, 1250)
            driver.save_screenshot(str(args.out))
        finally:
            driver.quit()
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
