# Two commands matter: `make demo` and `make test`. Both create .venv when it is missing.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench-camvid clean

$(PY):
	$(PYTHON) -m venv $(VENV)

# torch/torchvision are pinned in pyproject.toml; on this machine they come from the local wheel cache.
$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	rm -rf runs/demo
	$(VENV)/bin/pixelwise pipeline --data synthetic --output runs/demo --crop 96 128 \
		--pretrain-epochs 4 --mixmatch-epochs 2 --label-ae-epochs 3 --train-epochs 12
	@echo "demo report: runs/demo/report/report.html (metrics.json, confusion.png, examples/, colorizations/)"

test: $(STAMP)
	$(PY) -m pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks

bench-camvid: $(STAMP)
	$(PY) benchmarks/camvid_fcn.py

clean:
	rm -rf runs .pytest_cache
