# Entry points. See README.md.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
CONFIG ?= default
DATASET ?= data/synthetic.nc
RESULTS ?= results/$(CONFIG)
NEURONS ?=
PYTEST_ARGS ?=

.PHONY: env test test-slow book lab data benchmark browser-deps clean

$(VENV)/.installed: requirements.lock pyproject.toml .jupyter/overrides.json
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet "pip<25"
	$(PY) -m pip install --quiet -r requirements.lock
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	mkdir -p $(VENV)/share/jupyter/lab/settings
	cp .jupyter/overrides.json $(VENV)/share/jupyter/lab/settings/overrides.json
	touch $@

env: $(VENV)/.installed

test: env
	$(PY) -m pytest -m "not slow" $(PYTEST_ARGS)

test-slow: env
	$(PY) -m pytest -m slow $(PYTEST_ARGS)

data: env
	$(PY) -m mbutils data synthetic --out data/synthetic.nc $(if $(NEURONS),--neurons $(NEURONS))

book: env
	$(PY) -m mbutils book --config $(CONFIG) --dataset $(DATASET) --results $(RESULTS) --book book

# JupyterLab on the book's notebooks: each .py opens as a notebook (jupytext), with this
# environment's kernel; widgets render progress bars.
lab: env
	$(VENV)/bin/jupyter lab --ServerApp.root_dir=mbutils/notebooks

benchmark: env
	$(PY) benchmarks/run_all.py

# Headless Chromium for the book's browser check (Debian packages; needs root).
browser-deps:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null)

clean:
	rm -rf book results
