# readyml: quickstart is `make demo` then `make test` on a fresh clone.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
# Every extra that tests exercise; torch is pinned to 2.13.0 in pyproject.toml. Ray is not
# in `all` (about 300 MB more, and a cluster runtime most installs never start); the tests
# of `serve --engine ray` and `batch-predict --engine ray` need it.
EXTRAS ?= all,dev,ray

.PHONY: venv demo test lint format bench bench-peers check clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[$(EXTRAS)]"
	touch $(STAMP)

venv: $(STAMP)

demo: venv
	$(VENV)/bin/readyml demo --dir readyml-demo

test: venv
	$(PY) -m pytest -q

lint: venv
	$(VENV)/bin/ruff format --check src tests benchmarks
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/mypy

format: venv
	$(VENV)/bin/ruff format src tests benchmarks
	$(VENV)/bin/ruff check --fix src tests benchmarks

bench: venv
	$(PY) benchmarks/run.py

# Peer model servers (MLServer, BentoML) in their own environments under .cache/peers/;
# downloads packages on first use, so never part of CI.
bench-peers: venv
	$(PY) benchmarks/peers_serve.py

check: lint test

clean:
	rm -rf $(VENV) readyml-demo .pytest_cache .mypy_cache .ruff_cache
