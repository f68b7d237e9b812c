# The two README commands: `make demo` (the main job on a synthetic dataset) and `make test`.
# Both create the virtual environment first when it is missing or out of date.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
DEMO_DIR ?= runs/demo

.PHONY: venv demo test browser clean-demo

venv: $(VENV)/.installed

$(VENV)/.installed: requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -qq -r requirements.txt "setuptools>=68"
	$(PY) -m pip install -qq --no-deps --no-build-isolation -e .
	touch $@

# Headless Chromium for the dashboard test (Debian package; needs root or sudo).
browser:
	@command -v chromium >/dev/null 2>&1 || bash scripts/install_browser.sh

demo: venv
	bash scripts/demo.sh $(PY) $(DEMO_DIR)

test: venv browser
	$(PY) -m pytest tests
