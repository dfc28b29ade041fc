# Backbone Arena: `make run` (the embedded default training), `make test` (the suite), `make gpu` (the prepared
# GPU run, benchmarks/gpu_run.py).
# Both create the virtual environment .venv on first use and refresh it when requirements change.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: run test lint app dashboard gpu

# pip prints each package and a progress bar: the first install downloads PyTorch and the rest (several GB).
# The project itself is installed editable (pip install -e .): its packages import from this checkout, and the
# arena-* console scripts land in $(VENV)/bin.
$(VENV)/.installed: requirements.txt requirements-dev.txt pyproject.toml
	@echo "Setting up $(VENV): installing requirements-dev.txt and the project (first time: several minutes, about 7 GB on disk)"
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --disable-pip-version-check -r requirements-dev.txt -e .
	touch $@
	@echo "$(VENV) is ready; 'source $(VENV)/bin/activate' puts its python, the arena-* commands, streamlit and torchrun on your PATH"

run: $(VENV)/.installed
	$(PY) trainers/finetune.py

test: $(VENV)/.installed
	$(PY) -m pytest -q

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .

app: $(VENV)/.installed
	$(VENV)/bin/arena-app

dashboard: $(VENV)/.installed
	$(VENV)/bin/arena-dashboard

# On the GPU machine (no .venv there, nothing can be installed: its own python3 and the checkout on PYTHONPATH),
# after the transfers `benchmarks/gpu_run.py --dry-run` lists.
gpu:
	PYTHONPATH=. $(PYTHON) benchmarks/gpu_run.py
