# spiking: make help lists the targets.
PYTHON ?= python3.11
VENV   ?= .venv
PY     := $(VENV)/bin/python
DATA   ?= ../shared/data/tcga-mirna
RUN    ?= demo
STAMP  := $(VENV)/.installed
# The Keras/NengoDL environment (make install-nengo): the package with its `nengo` extra
# (tensorflow 2.12.1, nengo 3.2.0, nengo-dl 3.6.0, numpy 1.24), as in the Dockerfile's `nengo` target.
NENGO_VENV  ?= .venv-nengo
NENGO_STAMP := $(NENGO_VENV)/.installed
# Ray Tune without ray.train v2 (which needs pydantic 2, excluded there by tensorflow 2.12's pins).
NENGO_ENV   := RAY_TRAIN_V2_ENABLED=0 TF_CPP_MIN_LOG_LEVEL=2

.DEFAULT_GOAL := help
EXP    ?= cnn_search
BUDGET ?= smoke
# Extra `spiking tune` options, e.g. ARGS=--resume or ARGS=--overwrite.
ARGS   ?=

# ---- Kubernetes (make deploy, make submit K8S=1): every object lives in this namespace.
NAMESPACE := spiking
# metadata.name of the RayCluster in raycluster.yaml (its head Service is $(CLUSTER)-head-svc).
CLUSTER   := spiking
# The bucket k8s/minio-bucket-job.yaml creates; a pod cannot reach this machine's folders,
# so on the cluster the searches and their shards live in object storage.
BUCKET    ?= spiking
ifeq ($(K8S),1)
STORAGE ?= s3://$(BUCKET)/tune
SHARDS  ?= s3://$(BUCKET)/shards/tcga-mirna-rpm
endif
# GPU fraction per trial on the cluster (the experiment files ask for none: they were made on CPUs).
GPUS_PER_TRIAL ?= 0.25
# The RayJob's name: one per experiment (e.g. spiking-snn-pt1); pass RAYJOB=... to run one again.
RAYJOB ?= spiking-$(subst _,-,$(EXP))
# Renders and checks the manifests (k8s/rayjob.yaml, raycluster.yaml): any python3, no venv needed.
K8S_MANIFESTS := python3 scripts/k8s_manifests.py
# The image: IMAGE and TAG default to the two halves of the one value in raycluster.yaml (its `&image` anchor).
IMAGE_PARTS := $(shell $(K8S_MANIFESTS) image-ref --split)
IMAGE  ?= $(word 1,$(IMAGE_PARTS))
TAG    ?= $(word 2,$(IMAGE_PARTS))
PLATFORM ?= linux/amd64
VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)
# Experiments that run in the Keras/NengoDL environment (environment = "nengo" in their file).
NENGO_EXPERIMENTS := $(basename $(notdir $(shell grep -l '^environment *= *"nengo"' spiking/search/experiments/*.toml)))
IS_NENGO  = $(filter $(EXP),$(NENGO_EXPERIMENTS))
EXP_VENV  = $(if $(IS_NENGO),$(NENGO_VENV),$(VENV))
EXP_STAMP = $(if $(IS_NENGO),$(NENGO_STAMP),$(STAMP))
EXP_ENV   = $(if $(IS_NENGO),$(NENGO_ENV) )
# A value as one shell word ('...'): the script checks what it may hold.
quote = '$(subst ','\'',$(1))'
# The RayJob's values for the script (each --opt=VALUE: ARGS may start with --).
RAYJOB_OPTS = --name=$(call quote,$(RAYJOB)) --image=$(call quote,$(IMAGE):$(TAG)) --exp=$(call quote,$(EXP)) \
	--budget=$(call quote,$(BUDGET)) --storage=$(call quote,$(STORAGE)) --shards=$(call quote,$(SHARDS)) \
	--gpus=$(call quote,$(GPUS_PER_TRIAL)) --args=$(call quote,$(ARGS))
# The script's subcommand $(1) piped to kubectl (the verb follows): it checks the values first, and also as
# make expands the recipe (--check, in $(shell)), so that a refused value stops make, make -n included.
k8s_kubectl = $(call refuse,$(shell $(K8S_MANIFESTS) $(1) --check 2>&1))$(K8S_MANIFESTS) $(1) --kubectl
refuse = $(if $(1),$(error $(1)))

STORAGE ?= runs/tune
SHARDS ?= data/shards/tcga-mirna-rpm
# Local paths are made absolute: a Ray job runs in a copy of the repository.
uri = $(if $(findstring ://,$(1)),$(1),$(abspath $(1)))
TUNE_ARGS = $(EXP) --budget $(BUDGET) --storage $(call uri,$(STORAGE)) --shards $(call uri,$(SHARDS))$(if $(ARGS), $(ARGS))
RAY_PORT ?= 6379
# What workers need of the repository when a job is shipped to a Ray cluster.
RUNTIME_ENV := {"working_dir": ".", "excludes": [".venv", ".venv-nengo", "data", "runs", ".git"]}

.PHONY: help install install-nengo demo benchmark benchmark-qcfs test tune nas submit image push deploy dashboard logs ray-up ray-down clean

help: ## list the targets
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

# (VENV=.venv-nengo, e.g. for make ray-up: that environment's own recipe below makes it.)
ifneq ($(VENV),$(NENGO_VENV))
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	# torch first, pinned: the CPU wheel. An unpinned request pulls a multi-GB CUDA build.
	$(PY) -m pip install torch==2.13.0
	$(PY) -m pip install -e '.[torch,test]'
	touch $(STAMP)
endif

install: $(STAMP) ## make .venv and install the package with its test extras

$(NENGO_STAMP): pyproject.toml
	$(PYTHON) -m venv $(NENGO_VENV)
	$(NENGO_VENV)/bin/python -m pip install --upgrade pip
	# The package without torch: its `nengo` extra pins the TensorFlow 2.12 stack (numpy 1.24).
	$(NENGO_VENV)/bin/python -m pip install -e '.[nengo,test-core]'
	touch $(NENGO_STAMP)

install-nengo: $(NENGO_STAMP) ## make .venv-nengo: the package with TensorFlow 2.12.1, Nengo 3.2.0, NengoDL 3.6.0 (no torch)

demo: $(STAMP) ## install if needed, then run the main job on the shared TCGA miRNA data
	$(VENV)/bin/spiking run --data-dir $(DATA) --run-name $(RUN)

# The headline tables (README): every model of `make demo` plus the classic baselines, 5 seeds, on the
# top-10 task and on all 28 cohorts with a complete panel. Hours on 2 CPU cores (benchmarks/README.md).
BENCH_SEEDS ?= 0,1,2,3,4
benchmark: $(STAMP) ## the README's headline tables: make demo's models x 5 seeds, top-10 task and 28-cohort task
	$(VENV)/bin/spiking run --data-dir $(DATA) --run-name bench-top10 --seeds $(BENCH_SEEDS) --top-k 10 --no-progress
	$(VENV)/bin/spiking run --data-dir $(DATA) --run-name bench-all --seeds $(BENCH_SEEDS) --top-k 0 --no-progress

# QCFS conversion (README): a CNN trained with QCFS activations, converted into integrate-and-fire
# neurons, run for 4 steps and fine-tuned (at most 10 epochs), 5 seeds on both tasks; then the same CNNs converted
# with no fine-tuning at 1, 2, 4 and 8 steps (benchmarks/qcfs_steps.py; writes nothing in the runs).
QCFS_ARGS := --cnn-activation qcfs --qcfs-levels 4 --snn-mode convert --finetune --num-steps 4 --encodings direct \
	--cnn-epochs 100 --no-progress
benchmark-qcfs: $(STAMP) ## QCFS CNN -> converted SNN (4 steps) x 5 seeds on both tasks, then 1-8 steps
	$(VENV)/bin/spiking run --data-dir $(DATA) --run-name qcfs-top10 --seeds $(BENCH_SEEDS) --top-k 10 $(QCFS_ARGS)
	$(VENV)/bin/spiking run --data-dir $(DATA) --run-name qcfs-all --seeds $(BENCH_SEEDS) --top-k 0 $(QCFS_ARGS)
	$(PY) benchmarks/qcfs_steps.py runs/qcfs-top10 --steps 1,2,4,8
	$(PY) benchmarks/qcfs_steps.py runs/qcfs-all --steps 1,2,4,8

# pytest's exit code 5 (no tests collected) counts as success; both suites run even if the first fails.
# -p no:nengo: nengo registers a pytest plugin (for its own test suite) that pytest 9 refuses.
pytest_rc = rc=$$?; if [ $$rc -eq 5 ]; then echo "no tests collected"; rc=0; fi
test: $(STAMP) $(NENGO_STAMP) ## lint (ruff), then both test suites: torch (.venv) and Keras/NengoDL (.venv-nengo, tests/nengo)
	$(VENV)/bin/ruff check spiking tests benchmarks scripts
	$(PY) -m pytest -q tests --ignore=tests/nengo -m "not nengo"; $(pytest_rc); rc_torch=$$rc; \
	$(NENGO_ENV) $(NENGO_VENV)/bin/python -m pytest -q -p no:nengo tests/nengo -m nengo; $(pytest_rc); \
	if [ $$rc_torch -ne 0 ]; then exit $$rc_torch; fi; exit $$rc

tune: $(EXP_STAMP) ## run a Ray Tune experiment locally: make tune EXP=cnn_search BUDGET=smoke (EXP=snn_k: in .venv-nengo)
	$(EXP_ENV)$(EXP_VENV)/bin/spiking tune $(TUNE_ARGS)

# The grammar-based architecture search (CNN_K): NAS_BUDGET smoke|small|paper, NAS_NAME its folder in STORAGE,
# NAS_GRAMMAR a grammar file or shipped name (fast_denser_1d_relu: ReLU only, so that snn_k has neurons to spike).
NAS_BUDGET  ?= smoke
NAS_NAME    ?= nas
NAS_GRAMMAR ?= fast_denser_1d_relu
nas: $(NENGO_STAMP) ## grammar-based architecture search of CNN_K (Fast-DENSER ES, in .venv-nengo): make nas NAS_BUDGET=small
	$(NENGO_ENV) $(NENGO_VENV)/bin/spiking nas --budget $(NAS_BUDGET) --grammar $(NAS_GRAMMAR) --require-relu --name $(NAS_NAME) --storage $(call uri,$(STORAGE)) \
		--shards $(call uri,$(SHARDS))$(if $(ARGS), $(ARGS))

submit: $(if $(filter 1,$(K8S)),,$(EXP_STAMP)) ## run EXP as a Ray job: RAY_ADDRESS's cluster, else local; K8S=1: a RayJob on the Kubernetes cluster
ifeq ($(K8S),1)
	$(call k8s_kubectl,rayjob $(RAYJOB_OPTS)) create
	@echo "RayJob $(RAYJOB) created: make logs EXP=$(EXP) follows it, make dashboard shows it on http://127.0.0.1:8265"
else ifdef RAY_ADDRESS
	$(EXP_VENV)/bin/ray job submit --address $(RAY_ADDRESS) --runtime-env-json '$(RUNTIME_ENV)' -- \
		python -m spiking.cli.main tune $(TUNE_ARGS)
else
	$(EXP_ENV)$(EXP_VENV)/bin/spiking tune $(TUNE_ARGS)
endif

image: ## docker build the training image IMAGE:TAG and the NengoDL image IMAGE:TAG-nengo
	DOCKER_BUILDKIT=1 docker build --platform $(PLATFORM) --build-arg VERSION=$(VERSION) --target train -t $(IMAGE):$(TAG) .
	DOCKER_BUILDKIT=1 docker build --platform $(PLATFORM) --target nengo -t $(IMAGE):$(TAG)-nengo .

push: ## docker push both images (build them first with make image)
	docker push $(IMAGE):$(TAG)
	docker push $(IMAGE):$(TAG)-nengo

deploy: ## kubectl apply -k k8s/ (namespace, secret, MinIO, bucket), then raycluster.yaml with IMAGE:TAG
	@test -f k8s/secret.yaml || { echo "k8s/secret.yaml is missing: cp k8s/secret.template.yaml k8s/secret.yaml, then fill in its values" >&2; exit 1; }
	@if grep -q CHANGE-ME k8s/secret.yaml; then echo "k8s/secret.yaml still holds CHANGE-ME placeholders" >&2; exit 1; fi
	kubectl apply -k k8s/
	$(call k8s_kubectl,raycluster --image=$(call quote,$(IMAGE):$(TAG))) apply

dashboard: ## forward the cluster's Ray dashboard to http://127.0.0.1:8265 (Ctrl-C ends it)
	kubectl port-forward -n $(NAMESPACE) --address 127.0.0.1 svc/$(CLUSTER)-head-svc 8265:8265

logs: ## follow RayJob RAYJOB's log (its submitter pod; default the one of EXP); HEAD=1: the Ray head pod's
ifeq ($(HEAD),1)
	kubectl logs -n $(NAMESPACE) -f --tail=200 -c ray-head -l ray.io/cluster=$(CLUSTER),ray.io/node-type=head
else
	kubectl logs -n $(NAMESPACE) -f --tail=-1 -l job-name=$(RAYJOB)
endif

ray-up: $(STAMP) ## start a local Ray head node (dashboard on 127.0.0.1:8265) for development
	# The venv first on PATH: a submitted job's entrypoint `python` is then this environment's.
	# Ray >= 2.59 protects local clusters with a token (~/.ray/auth_token); clients need RAY_AUTH_MODE=token.
	# VENV=.venv-nengo: a node for snn_k / spiking nas jobs (with that environment's variables).
	$(if $(filter $(NENGO_VENV),$(VENV)),$(NENGO_ENV) )PATH=$(abspath $(VENV))/bin:$$PATH RAY_AUTH_MODE=token $(VENV)/bin/ray start --head --port=$(RAY_PORT) \
		--dashboard-host=127.0.0.1 --dashboard-port=8265
	@echo "export RAY_ADDRESS=http://127.0.0.1:8265 RAY_AUTH_MODE=token   # then: make submit EXP=..."

ray-down: ## stop the local Ray node started by ray-up
	$(VENV)/bin/ray stop

clean: ## remove runs, ingested shards and caches (keeps .venv and .venv-nengo)
	rm -rf runs data .pytest_cache .hypothesis
	find . -name __pycache__ -prune -exec rm -rf {} +
