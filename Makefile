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
	$(VENV)/bin/pixelwise train --data synthetic --arch fcn8s --backbone resnet18 --epochs 6 \
		--crop 96 128 --output runs/demo
	$(VENV)/bin/pixelwise eval --checkpoint runs/demo --data synthetic --output runs/demo/eval
	@echo "demo report: runs/demo/eval/report.html (metrics.json, confusion.png, examples/)"

test: $(STAMP)
	$(PY) -m pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks

bench-camvid: $(STAMP)
	$(PY) benchmarks/camvid_fcn.py

clean:
	rm -rf runs .pytest_cache
