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


def environment() -> dict:
    """What a rerun with the same seed must match to give identical figures: the machine
    (``platform.machine()``, processor, ``os.cpu_count()``), torch's intra-op thread count
    (``torch.get_num_threads()``; set it with ``OMP_NUM_THREADS``), whether a CUDA GPU is visible,
    and the versions of Python, torch, snnTorch, NumPy and scikit-learn."""
    import platform

    import sklearn

    try:
        from importlib.metadata import version

        snn = version("snntorch")
    except Exception:  # not installed as a distribution
        snn = None
    return {"machine": platform.machine(), "processor": platform.processor() or None, "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(), "cuda": torch.cuda.is_available(),
            "python": platform.python_version(), "torch": torch.__version__, "snntorch": snn,
            "numpy": np.__version__, "sklearn": sklearn.__version__}
