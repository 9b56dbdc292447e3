"""Losses and decision rules per model kind: what one training step optimises and how a class is read out.

* ``CNNObjective``: cross-entropy on logits; class = argmax logit.
* ``SpikeCountObjective``: for the snnTorch network, the output spike trains
  (num_steps, B, n_outputs) are scored with snnTorch's count losses
  (``snntorch.functional.ce_count_loss`` for weight transfer, ``mse_count_loss``
  with target firing rates for training from scratch, optionally population
  coded); class = most output spikes (population groups summed), ties broken by
  the summed output membrane potential; or, for a network converted from a QCFS CNN
  (``readout="integrated"``), class = largest input current integrated by the output layer.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from snntorch import functional as SF

from spiking.specs.names import SNN_LOSSES
from spiking.training import TrainingError

#: Decision rules of a spiking network's output layer.
READOUTS = ("count", "integrated")


def integrated_current(spk: torch.Tensor, mem: torch.Tensor) -> torch.Tensor:
    """Input current summed over time by integrate-and-fire output neurons (beta = 1, threshold 1,
    reset by subtraction, membrane 0 at t = 0), recovered from their spikes and membrane
    ``(num_steps, B, n)``: ``(B, n)``.

    snnTorch's ``Leaky`` subtracts a spike's threshold at the next step, so the last membrane still
    holds the last step's spike: sum of inputs = spikes before the last step + last membrane. This
    is the logit sum a converted network's non-spiking output layer reads (Bu et al., ICLR 2022).
    """
    return spk[:-1].sum(0) + mem[-1]


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
        readout: ``"count"`` (spike counts, ties broken by the membrane) or ``"integrated"``
            (:func:`integrated_current`: what a QCFS conversion reads, Bu et al. 2022; its loss is the
            cross-entropy of the integrated current divided by num_steps, the CNN's logit scale).

    Raises:
        ValueError: unknown loss or readout, population < 1, an integrated readout with a loss
            other than ``ce`` or with population coding.
    """

    def __init__(self, n_classes: int, loss: str = "ce", population: int = 1,
                 correct_rate: float = 0.8, incorrect_rate: float = 0.2, readout: str = "count"):
        if readout not in READOUTS:
            raise TrainingError(f"SNN readout must be one of {READOUTS}, got {readout!r}")
        self.readout = readout
        if loss not in SNN_LOSSES:
            raise TrainingError(f"SNN loss must be one of {SNN_LOSSES}, got {loss!r}")
        if population < 1:
            raise TrainingError(f"population must be >= 1, got {population}")
        if readout == "integrated" and (loss != "ce" or population != 1):
            raise TrainingError(f"the integrated readout trains with loss ce and population 1, got loss {loss!r}, "
                                f"population {population}")
        self.n_classes = n_classes
        self.population = population
        pop = dict(population_code=population > 1, num_classes=n_classes if population > 1 else False)
        if loss == "ce":
            self._loss = SF.ce_count_loss(**pop)
        else:
            self._loss = SF.mse_count_loss(correct_rate=correct_rate, incorrect_rate=incorrect_rate, **pop)

    def loss(self, model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Count loss of the output spikes (num_steps, B, C*population) against ``y`` (B,), or for the
        integrated readout the cross-entropy of the integrated current / num_steps (B, C)."""
        spk, mem = model(x)
        if self.readout == "integrated":
            return F.cross_entropy(integrated_current(spk, mem) / spk.size(0), y)
        return self._loss(spk, y)

    def scores(self, spk: torch.Tensor, mem: torch.Tensor) -> torch.Tensor:
        """Per-class score (B, C): spike count per class plus a tie-breaker below one spike, or the
        integrated current (``readout="integrated"``)."""
        from spiking.models.snn import class_scores

        if self.readout == "integrated":
            return class_scores(integrated_current(spk, mem).unsqueeze(0), self.n_classes)
        counts = class_scores(spk, self.n_classes)
        tie = torch.sigmoid(class_scores(mem, self.n_classes) / self.population)
        return counts + 0.5 * tie

    @torch.no_grad()
    def predict(self, model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
        """Class indices (B,)."""
        spk, mem = model(x)
        return self.scores(spk, mem).argmax(dim=1)


def objective_for(meta: dict):
    """The loss and decision rule of a saved network (``spiking.artifacts.checkpoint.network_meta``):
    :class:`CNNObjective` for ``kind = "cnn"``, else :class:`SpikeCountObjective` with the network's
    loss, population and readout (a network saved before readouts existed: spike counts)."""
    if meta["kind"] == "cnn":
        return CNNObjective()
    return SpikeCountObjective(int(meta["n_classes"]), loss=meta.get("loss") or "ce",
                               population=int(meta.get("population") or 1), readout=meta.get("readout") or "count")
