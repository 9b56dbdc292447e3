"""Training: seeds, device choice, objectives and the early-stopping loop (PyTorch), and the
Keras training of grammar-search phenotypes (:mod:`spiking.training.keras_fit`).

Names are loaded on first use (PEP 562), so ``spiking.training.keras_fit`` imports without torch.
"""

from importlib import import_module

_LAZY = {
    "History": ".loop", "TrainConfig": ".settings", "predict": ".loop", "train": ".loop",
    "CNNObjective": ".objectives", "SpikeCountObjective": ".objectives",
    "resolve_device": ".reproducibility", "seed_everything": ".reproducibility",
}
__all__ = sorted(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
