"""Training: seeds, device choice, objectives and the early-stopping loop."""

from .loop import History, TrainConfig, predict, train
from .objectives import CNNObjective, SpikeCountObjective
from .reproducibility import resolve_device, seed_everything

__all__ = ["History", "TrainConfig", "predict", "train", "CNNObjective", "SpikeCountObjective",
           "resolve_device", "seed_everything"]
