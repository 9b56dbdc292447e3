# spiking: make help lists the targets.
PYTHON ?= python3.11
VENV   ?= .venv
PY     := $(VENV)/bin/python
DATA   ?= ../shared/data/tcga-mirna
RUN    ?= demo
STAMP  := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help install demo test clean

help: ## list the targets
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	# torch first, pinned: the CPU wheel. An unpinned request pulls a multi-GB CUDA build.
	$(PY) -m pip install torch==2.13.0
	$(PY) -m pip install -e '.[test]'
	touch $(STAMP)

install: $(STAMP) ## make .venv and install the package with its test extras

demo: $(STAMP) ## install if needed, then run the main job on the shared TCGA miRNA data
	$(VENV)/bin/spiking run --data-dir $(DATA) --run-name $(RUN)

test: $(STAMP) ## run the test suite (exit code 5, no tests collected, counts as success)
	$(PY) -m pytest -q tests; rc=$$?; if [ $$rc -eq 5 ]; then echo "no tests collected"; exit 0; fi; exit $$rc

clean: ## remove runs, ingested shards and caches (keeps .venv)
	rm -rf runs data .pytest_cache .hypothesis
	find . -name __pycache__ -prune -exec rm -rf {} +
