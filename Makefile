# rag-model: `make demo` runs the whole job end to end; `make test` runs every test tier.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: install demo test test-unit check-extras test-docs docs lint fmt clean

$(VENV)/.installed: pyproject.toml requirements-lock.txt
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check pip==26.3
	# torch first, exactly this spec: it is a local CPU wheel; anything else pulls CUDA wheels
	$(PY) -m pip install -q torch==2.13.0
	# the full dev environment: every extra's pins (requirements-lock.txt is rag-model[dev])
	$(PY) -m pip install -q -r requirements-lock.txt
	$(PY) -m pip install -q --no-deps --no-build-isolation -e .
	touch $@

install: $(VENV)/.installed

demo: install
	bash scripts/demo.sh

test: install
	$(PY) -m pytest $(PYTEST_ARGS)

test-unit: install
	$(PY) -m pytest -m "not integration and not slow" $(PYTEST_ARGS)

# the core and each extra installed alone into a fresh venv, each with its smoke test
# (scripts/extras_smoke.py); needs no .venv, only python3 and pip's cache
check-extras:
	bash scripts/check_extras.sh

test-docs: install
	$(PY) -m pytest -m docs tests/docs $(PYTEST_ARGS)

# docs/cli.md from the click commands and MLproject (a test fails when it is stale)
docs: install
	$(PY) -m experiments.cli_docs

lint: install
	$(PY) -m ruff check rag_model serving evaluation experiments rag_spark tests bench

fmt: install
	$(PY) -m ruff format rag_model serving evaluation experiments rag_spark tests bench

clean:
	rm -rf .rag-model mlflow.db mlruns .pytest_cache
