# syntax=docker/dockerfile:1
#
# Images of the project (`make image` builds both, tagged from IMAGE and TAG):
#
#   target `train` (the default, last stage): the training image of the Ray cluster's
#       head and GPU workers (raycluster.yaml): Ray 2.60.0 on Python 3.11, the package
#       installed from its wheel, torch 2.13.0 as PyPI's default Linux wheel, which is the
#       CUDA build (never torchvision). Runs as the Ray images' user `ray` (uid 1000,
#       group `users`, gid 100).
#         docker build --target train -t IMAGE:TAG .
#   target `nengo`: the package with its `nengo` extra (TensorFlow 2.12.1 / Keras / Nengo
#       3.2.0 / NengoDL 3.6.0 / numpy 1.24 / Ray 2.60 on Python 3.11: these versions only work
#       together), as `make install-nengo` builds locally; runs `spiking nas` and the `snn_k`
#       experiment. CPU only (TensorFlow 2.12 wheels use the GPU only with a system CUDA
#       11.8/cuDNN 8.6).
#         docker build --target nengo -t IMAGE:TAG-nengo .
#
# Base images are pinned by exact tag, not by digest: no registry is reachable from the
# machine this was written on, so no digest could be checked, and an unchecked one would
# only risk breaking the build. Add `@sha256:...` after `docker pull` if you need it.
# RUN --mount needs BuildKit (Docker >= 23 uses it by default; `make image` sets
# DOCKER_BUILDKIT=1 for older engines).

ARG RAY_IMAGE=rayproject/ray:2.60.0-py311-gpu
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

# ---------------------------------------------------------------- builder
# Builds the package's wheel (pure Python, so any Python 3.11 builds it). Only the wheel
# leaves this stage, and setuptools (fetched by pip's build isolation) stays behind.
FROM ${PYTHON_IMAGE} AS builder
WORKDIR /src
COPY pyproject.toml README.md ./
COPY spiking ./spiking
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

# ---------------------------------------------------------------- nengo
FROM ${PYTHON_IMAGE} AS nengo
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/venv/bin:$PATH
ARG VERSION=0.1.0
# One layer: the virtual environment, the package's wheel (bind-mounted from the builder) with
# its pinned `nengo` extra, and the unprivileged user (uid 1000 in the existing group `users`,
# gid 100, as in the training image). Ray Tune runs there without ray.train v2 (pydantic 2 is
# excluded by tensorflow 2.12's typing-extensions pin).
ENV RAY_TRAIN_V2_ENABLED=0 \
    TF_CPP_MIN_LOG_LEVEL=2
RUN --mount=type=bind,from=builder,source=/wheels,target=/tmp/wheels \
    python -m venv /opt/venv \
    && pip install --no-cache-dir "/tmp/wheels/spiking-${VERSION}-py3-none-any.whl[nengo]" \
    && python -c "import numpy, tensorflow, nengo, nengo_dl, spiking.search.evolution; assert numpy.__version__ < '1.25', numpy.__version__" \
    && ! pip show --quiet torch 2>/dev/null \
    && useradd --uid 1000 --gid 100 --create-home --shell /bin/bash nengo
USER 1000:100
WORKDIR /home/nengo
CMD ["spiking", "nas", "--help"]

# ---------------------------------------------------------------- train (default)
FROM ${RAY_IMAGE} AS train
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="spiking" \
      org.opencontainers.image.description="CNNs and spiking CNNs on gene-expression profiles: Ray Tune training image (CUDA)" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.version="${VERSION}"
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
USER 1000:100
WORKDIR /home/ray
# The wheel is bind-mounted from the builder, so no layer keeps it. torch==2.13.0 is
# named explicitly (the package pins it too): on Linux, PyPI's default wheel is the CUDA
# build. The checks fail the build if a CPU-only torch or torchvision slipped in.
RUN --mount=type=bind,from=builder,source=/wheels,target=/tmp/wheels \
    pip install --no-cache-dir torch==2.13.0 "/tmp/wheels/spiking-${VERSION}-py3-none-any.whl[torch]" \
    && python -c "import torch, spiking, ray; assert torch.__version__.startswith('2.13.0') and torch.version.cuda, torch.__version__; assert ray.__version__ == '2.60.0', ray.__version__" \
    && ! pip show --quiet torchvision 2>/dev/null \
    && spiking --help > /dev/null
