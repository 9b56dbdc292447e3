"""Networks: CNN_PT (1-D CNN of the original study), its snnTorch spiking version, spike
encodings, and the networks built from grammar-search phenotypes (PyTorch and Keras).

The names below are loaded on first use (PEP 562) so that the package imports in both
environments: torch code only in the torch environment (``.venv``), TensorFlow code only in
the Keras/NengoDL one (``.venv-nengo``).
"""

from importlib import import_module

from spiking.errors import SpikingError


class ModelError(SpikingError):
    """A network setting or input the models refuse (a user error)."""


_LAZY = {
    "MIN_S1": ".cnn", "PRESET_L": ".cnn", "PRESETS": ".cnn", "SEARCH_SPACE": ".cnn", "CNN1d": ".cnn",
    "ArchitectureError": ".cnn", "CNNArch": ".cnn", "count_parameters": ".cnn", "derive_architecture": ".cnn",
    "preset": ".cnn", "stage_lengths": ".cnn",
    "NEURONS": ".snn", "SpikingCNN1d": ".snn", "class_scores": ".snn", "transfer_weights": ".snn",
    "activation_scales": ".conversion", "normalize_weights": ".conversion",
    "CNN2d": ".cnn2d", "stage_shapes": ".cnn2d", "derive_architecture_2d": ".cnn2d", "preset_2d": ".cnn2d",
    "SpikingCNN2d": ".snn2d", "transfer_weights_2d": ".snn2d",
}
__all__ = sorted(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
