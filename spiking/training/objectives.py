"""Losses and decision rules per model kind: what one training step optimises and how a class is read out.

* ``CNNObjective``: cross-entropy on logits; class = argmax logit.
* ``SpikeCountObjective``: for the snnTorch network, the output spike trains
  (num_steps, B, n_outputs) are scored with snnTorch's count losses
  (``snntorch.functional.ce_count_loss`` for weight transfer, ``mse_count_loss``
  with target firing rates for training from scratch, optionally population
  coded); class = most output spikes (population groups summed), ties broken by
  the summed output membrane potential.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from snntorch import functional as SF

from spiking.specs.names import SNN_LOSSES
from spiking.training import TrainingError


class CNNObjective:
    """Cross-entropy loss and argmax decision for a network returning logits (B, C)."""

    def loss(self, model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Mean cross-entropy of ``model(x)`` (B, C) against class indices ``y`` (B,)."""
        return F.cross_entropy(model(x), y)

    @torch.no_grad()
    def predict(self, model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
        """Class indices (B,)."""
        return model(x).argmax(dim=1)


class SpikeCountObjective:
    """Spike-count loss and decision for ``SpikingCNN1d``.

    Args:
        n_classes: number of classes C.
        loss: ``"ce"`` (cross-entropy on spike counts, snnTorch ``ce_count_loss``)
            or ``"mse"`` (``mse_count_loss``: the correct class should fire at
            ``correct_rate`` of the steps, the others at ``incorrect_rate``).
        population: output neurons per class (1 = no population coding).
        correct_rate, incorrect_rate: target firing rates for ``"mse"`` (spikes per step).

    Raises:
        ValueError: unknown loss or population < 1.
    """

    def __init__(self, n_classes: int, loss: str = "ce", population: int = 1,
                 correct_rate: float = 0.8, incorrect_rate: float = 0.2):
        if loss not in SNN_LOSSES:
            raise TrainingError(f"SNN loss must be one of {SNN_LOSSES}, got {loss!r}")
        if population < 1:
            raise TrainingError(f"population must be >= 1, got {population}")
        self.n_classes = n_classes
        self.population = population
        pop = dict(population_code=population > 1, num_classes=n_classes if population > 1 else False)
        if loss == "ce":
            self._loss = SF.ce_count_loss(**pop)
        else:
            self._loss = SF.mse_count_loss(correct_rate=correct_rate, incorrect_rate=incorrect_rate, **pop)

    def loss(self, model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Count loss of the output spikes (num_steps, B, C*population) against ``y`` (B,)."""
        spk, _ = model(x)
        return self._loss(spk, y)

    def scores(self, spk: torch.Tensor, mem: torch.Tensor) -> torch.Tensor:
        """Per-class score (B, C): spike count per class plus a tie-breaker below one spike."""
        from spiking.models.snn import class_scores

        counts = class_scores(spk, self.n_classes)
        tie = torch.sigmoid(class_scores(mem, self.n_classes) / self.population)
        return counts + 0.5 * tie

    @torch.no_grad()
    def predict(self, model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
        """Class indices (B,)."""
        spk, mem = model(x)
        return self.scores(spk, mem).argmax(dim=1)
