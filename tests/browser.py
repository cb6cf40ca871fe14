"""Headless Chromium for the report tests (Debian's ``chromium`` + ``chromium-driver``, driven by selenium).

``make test`` installs the browser when it is missing (``make browser``). Under ``CI=true`` a missing browser
fails the test that needs it; elsewhere that test is skipped with the command that installs it.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

INSTALL_HINT = "apt-get install -y chromium chromium-driver (or `make browser`) and pip install selenium"


def _find(*names: str) -> str | None:
    for name in names:
        found = shutil.which(name)
        if found:
            return found
    return None


def chromium():
    """A headless Chromium WebDriver that records the console; skip (fail under CI=true) when unavailable."""
    binary = os.environ.get("GANKIT_CHROMIUM") or _find("chromium", "chromium-browser", "google-chrome")
    driver_path = os.environ.get("GANKIT_CHROMEDRIVER") or _find("chromedriver")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        webdriver = None
    missing = [what for what, ok in (("chromium", binary), ("chromedriver", driver_path),
                                     ("selenium", webdriver)) if not ok]
    if missing:
        message = f"headless browser test needs {', '.join(missing)}: {INSTALL_HINT}"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(message + " (required under CI=true)")
        pytest.skip(message)
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1280,2200", "--hide-scrollbars", "--disable-extensions",
                "--disable-background-networking"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(driver_path), options=options)


# What the page reports of itself once its script ran: every picture decoded, every plot a drawn canvas,
# every audio clip's metadata read.
PAGE_STATE = """
return {
  ready: document.body.getAttribute('data-report-ready'),
  images: [...document.images].map(i => ({name: i.alt, ok: i.complete && i.naturalWidth > 0})),
  plots: [...document.querySelectorAll('.plot')].map(p => {
    const c = p.querySelector('canvas');
    return {id: p.id, rendered: p.getAttribute('data-rendered'), width: c ? c.width : 0, height: c ? c.height : 0};
  }),
  audio: [...document.querySelectorAll('audio')].map(a => ({ready: a.readyState, error: a.error && a.error.code})),
  external: [...document.querySelectorAll('[src],[href]')].map(e => e.getAttribute('src') || e.getAttribute('href'))
            .filter(u => /^(https?:)?\\/\\//.test(u)),
};
"""


def open_page(driver, path: Path, screenshot: Path | None = None) -> dict:
    """Load ``path``; returns the page state plus the console messages of level SEVERE (errors)."""
    import time
    driver.get(Path(path).resolve().as_uri())
    deadline = time.time() + 10
    state = driver.execute_script(PAGE_STATE)
    while time.time() < deadline and (state["ready"] != "1" or any(a["ready"] < 1 and a["error"] is None
                                                                   for a in state["audio"])):
        time.sleep(0.1)
        state = driver.execute_script(PAGE_STATE)
    state["console_errors"] = [e for e in driver.get_log("browser") if e.get("level") == "SEVERE"]
    if screenshot is not None:
        driver.save_screenshot(str(screenshot))
    return state
