"""Training settings of the PyTorch loop (:mod:`spiking.training.loop`), torch-free so that the
run configuration (:mod:`spiking.specs.run`) and the command line import in both environments."""

from __future__ import annotations

from dataclasses import dataclass

from spiking.specs import SpecError
from spiking.specs.names import DEVICES, MAX_SEED, is_int, is_real

#: The largest batch accepted (far above any data set here; beyond it the data loader fails).
MAX_BATCH_SIZE = 1_000_000


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

    def check(self, where: str = "") -> None:
        """Raise SpecError naming the first setting outside its domain, prefixed by ``where``
        (e.g. ``"CNN "`` or ``"[train] "``): integers epochs >= 1, batch_size in [1, MAX_BATCH_SIZE], patience >= 0,
        seed in [0, 2**32 - 1]; lr a finite number in (0, 1)."""
        if not is_int(self.epochs, 1):
            raise SpecError(f"{where}epochs must be an integer >= 1, got {self.epochs!r}")
        if not is_int(self.batch_size, 1, MAX_BATCH_SIZE):
            raise SpecError(f"{where}batch_size must be an integer in [1, {MAX_BATCH_SIZE:,}], got {self.batch_size!r}")
        if not (is_real(self.lr) and 0 < self.lr < 1):
            raise SpecError(f"{where}learning rate lr must be a finite number in (0, 1), got {self.lr!r}")
        if not is_int(self.patience, 0):
            raise SpecError(f"{where}patience must be an integer >= 0 (0 = never stop early), got {self.patience!r}")
        if self.device not in DEVICES:
            raise SpecError(f"{where}device must be one of {', '.join(DEVICES)}, got {self.device!r}")
        if not is_int(self.seed, 0, MAX_SEED):
            raise SpecError(f"{where}seed must be an integer in [0, {MAX_SEED}], got {self.seed!r}")
