# spiking: make help lists the targets.
PYTHON ?= python3.11
VENV   ?= .venv
PY     := $(VENV)/bin/python
DATA   ?= ../shared/data/tcga-mirna
RUN    ?= demo
STAMP  := $(VENV)/.installed

.DEFAULT_GOAL := help
EXP    ?= cnn_search
BUDGET ?= smoke
STORAGE ?= runs/tune
SHARDS ?= data/shards/tcga-mirna-rpm
# Local paths are made absolute: a Ray job runs in a copy of the repository.
uri = $(if $(findstring ://,$(1)),$(1),$(abspath $(1)))
TUNE_ARGS = $(EXP) --budget $(BUDGET) --storage $(call uri,$(STORAGE)) --shards $(call uri,$(SHARDS))
RAY_PORT ?= 6379
# What workers need of the repository when a job is shipped to a Ray cluster.
RUNTIME_ENV := {"working_dir": ".", "excludes": [".venv", ".venv-nengo", "data", "runs", ".git"]}

.PHONY: help install demo test tune submit ray-up ray-down clean

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

tune: $(STAMP) ## run a Ray Tune experiment locally: make tune EXP=cnn_search BUDGET=smoke
	$(VENV)/bin/spiking tune $(TUNE_ARGS)

submit: $(STAMP) ## run EXP as a Ray job on the cluster at RAY_ADDRESS, or on an embedded local Ray without it
ifdef RAY_ADDRESS
	$(VENV)/bin/ray job submit --address $(RAY_ADDRESS) --runtime-env-json '$(RUNTIME_ENV)' -- \
		python -m spiking.cli.main tune $(TUNE_ARGS)
else
	$(VENV)/bin/spiking tune $(TUNE_ARGS)
endif

ray-up: $(STAMP) ## start a local Ray head node (dashboard on 127.0.0.1:8265) for development
	# The venv first on PATH: a submitted job's entrypoint `python` is then this environment's.
	# Ray >= 2.59 protects local clusters with a token (~/.ray/auth_token); clients need RAY_AUTH_MODE=token.
	PATH=$(abspath $(VENV))/bin:$$PATH RAY_AUTH_MODE=token $(VENV)/bin/ray start --head --port=$(RAY_PORT) \
		--dashboard-host=127.0.0.1 --dashboard-port=8265
	@echo "export RAY_ADDRESS=http://127.0.0.1:8265 RAY_AUTH_MODE=token   # then: make submit EXP=..."

ray-down: ## stop the local Ray node started by ray-up
	$(VENV)/bin/ray stop

clean: ## remove runs, ingested shards and caches (keeps .venv)
	rm -rf runs data .pytest_cache .hypothesis
	find . -name __pycache__ -prune -exec rm -rf {} +
