# Entry points. See README.md.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
CONFIG ?= default
DATASET ?= data/synthetic.nc
RESULTS ?= results/$(CONFIG)
NEURONS ?=
PYTEST_ARGS ?=

.PHONY: env test test-slow book data benchmark browser-deps clean

$(VENV)/.installed: requirements.lock pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet "pip<25"
	$(PY) -m pip install --quiet -r requirements.lock
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $@

env: $(VENV)/.installed

test: env
	$(PY) -m pytest -m "not slow" $(PYTEST_ARGS)

test-slow: env
	$(PY) -m pytest -m slow $(PYTEST_ARGS)

data: env
	$(PY) -m mbutils data synthetic --out data/synthetic.nc $(if $(NEURONS),--neurons $(NEURONS))

book: env
	$(PY) -m mbutils book --config configs/$(CONFIG).yml --dataset $(DATASET) --results $(RESULTS)

benchmark: env
	$(PY) benchmarks/run_all.py

# Headless Chromium for the book's browser check (Debian packages; needs root).
browser-deps:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null)

clean:
	rm -rf book/_build book/generated results
