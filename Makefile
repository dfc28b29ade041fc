# Backbone Arena: `make run` (the embedded default training), `make test` (the suite), `make gpu` (the prepared
# GPU run, benchmarks/gpu_run.py).
# Both create the virtual environment .venv on first use and refresh it when requirements change.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: run test lint app dashboard gpu

# pip prints each package and a progress bar: the first install downloads PyTorch and the rest (several GB).
$(VENV)/.installed: requirements.txt requirements-dev.txt
	@echo "Setting up $(VENV): installing requirements-dev.txt (first time: several minutes, about 7 GB on disk)"
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --disable-pip-version-check -r requirements-dev.txt
	touch $@
	@echo "$(VENV) is ready; 'source $(VENV)/bin/activate' puts its python, streamlit and torchrun on your PATH"

run: $(VENV)/.installed
	$(PY) trainers/finetune.py

test: $(VENV)/.installed
	$(PY) -m pytest -q

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .

app: $(VENV)/.installed
	$(PY) apps/gradio_app.py

dashboard: $(VENV)/.installed
	$(VENV)/bin/streamlit run apps/dashboard.py

# On the GPU machine (no .venv there: its own python3), after the transfers `benchmarks/gpu_run.py --dry-run` lists.
gpu:
	$(PYTHON) benchmarks/gpu_run.py
