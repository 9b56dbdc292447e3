"""Seeds and device choice, so the same seed gives the same metrics."""

from __future__ import annotations

import os
import random

import numpy as np
import torch

from spiking.training import TrainingError

DEVICES = ("auto", "cpu", "cuda")


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch (CPU and CUDA) and ask torch for deterministic kernels.

    Returns a ``torch.Generator`` seeded with ``seed`` for data shuffling.
    """
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    gen = torch.Generator()
    gen.manual_seed(seed)
    return gen


def resolve_device(name: str = "auto") -> torch.device:
    """Map ``auto|cpu|cuda`` to a ``torch.device``.

    ``auto`` picks CUDA when a GPU is visible, else CPU.

    Raises:
        ValueError: unknown name, or ``cuda`` asked for where no GPU is visible.
    """
    if name not in DEVICES:
        raise TrainingError(f"device must be one of {DEVICES}, got {name!r}")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise TrainingError("--device cuda was asked for, but torch sees no CUDA GPU (use --device auto or cpu)")
    return torch.device(name)
