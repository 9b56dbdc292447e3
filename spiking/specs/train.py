"""Training settings of the PyTorch loop (:mod:`spiking.training.loop`), torch-free so that the
run configuration (:mod:`spiking.specs.run`) and the command line import in both environments."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class TrainConfig:
    """Optimiser and stopping settings.

    epochs: maximum epochs; batch_size: samples per step; lr: Adam learning rate;
    patience: epochs without a better validation balanced accuracy before stopping
    (0 = never stop early); seed: seeds shuffling and initialisation;
    device: ``auto|cpu|cuda``; progress: show a tqdm bar.
    """

    epochs: int = 30
    batch_size: int = 64
    lr: float = 1e-3
    patience: int = 8
    seed: int = 42
    device: str = "auto"
    progress: bool = True
