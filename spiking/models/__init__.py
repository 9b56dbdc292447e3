"""CNN_PT (1-D CNN of the original study) and its snnTorch spiking version."""

from .cnn import (
    MIN_S1,
    PRESET_L,
    PRESETS,
    SEARCH_SPACE,
    CNN1d,
    ArchitectureError,
    CNNArch,
    count_parameters,
    derive_architecture,
    preset,
    stage_lengths,
)
from .snn import NEURONS, SpikingCNN1d, class_scores, transfer_weights
from .conversion import activation_scales, normalize_weights

__all__ = [
    "activation_scales",
    "normalize_weights",
    "ArchitectureError",
    "CNNArch",
    "CNN1d",
    "MIN_S1",
    "NEURONS",
    "PRESETS",
    "PRESET_L",
    "SEARCH_SPACE",
    "SpikingCNN1d",
    "class_scores",
    "count_parameters",
    "derive_architecture",
    "preset",
    "stage_lengths",
    "transfer_weights",
]
