"""Training (PyTorch): seeds, device choice, objectives, the early-stopping loop, the run's jobs.

Names are loaded on first use (PEP 562): importing the package does not import torch.
"""

from importlib import import_module

from spiking.errors import SpikingError


class TrainingError(SpikingError):
    """A training setting that cannot be used (a user error)."""


_LAZY = {
    "History": ".loop", "predict": ".loop", "train": ".loop",
    "CNNObjective": ".objectives", "SpikeCountObjective": ".objectives",
    "resolve_device": ".reproducibility", "seed_everything": ".reproducibility",
}
__all__ = sorted(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
