"""QCFS: the quantisation-clip-floor-shift activation, and the spiking network it converts into.

Bu, Fang, Ding, Dai, Yu & Huang, "Optimal ANN-SNN conversion for high-accuracy and ultra-low-latency
spiking neural networks", ICLR 2022. A CNN trained with QCFS in place of ReLU is converted by copying
its weights into integrate-and-fire neurons (``snntorch.Leaky`` with beta = 1, reset by subtraction)
whose threshold is the layer's learnt ``lambda`` and whose membrane starts at half the threshold (the
"shift"). With a constant input current, such a neuron fires ``clip(floor(T I / lambda + 1/2), 0, T)``
times in ``T`` steps: the QCFS output times ``T / lambda`` when ``T`` equals the trained levels, so
the converted network needs no fine-tuning and few steps.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from spiking.models import ModelError
from spiking.specs.names import MAX_LEVELS, MIN_LEVELS

__all__ = ["QCFS", "MIN_LEVELS", "MAX_LEVELS", "calibrate_thresholds", "qcfs_layers", "qcfs_thresholds"]


class QCFS(nn.Module):
    """``y = lambda * clip(floor(x L / lambda + 1/2) / L, 0, 1)`` with a learnable threshold ``lambda``.

    Input and output: any shape, float. The floor passes gradients straight through (straight-through
    estimator, as in Bu et al. 2022), so ``lambda`` and the layer below both learn.

    Args:
        levels: quantisation levels L (integer in [1, 256]): the output takes L + 1 values
            ``0, lambda/L, ..., lambda``.
        threshold: initial ``lambda`` (> 0); :func:`calibrate_thresholds` sets it from data.

    Raises:
        ModelError: levels or threshold out of range.
    """

    def __init__(self, levels: int = 4, threshold: float = 1.0):
        super().__init__()
        if isinstance(levels, bool) or not isinstance(levels, int) or not MIN_LEVELS <= levels <= MAX_LEVELS:
            raise ModelError(f"QCFS levels must be an integer in [{MIN_LEVELS}, {MAX_LEVELS}], got {levels!r}")
        if not float(threshold) > 0:
            raise ModelError(f"QCFS threshold must be > 0, got {threshold!r}")
        self.levels = levels
        self.threshold = nn.Parameter(torch.tensor(float(threshold)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lam = self.threshold.abs().clamp_min(1e-6)  # a gradient step must not flip the sign or reach 0
        z = x * (self.levels / lam) + 0.5
        q = z + (torch.floor(z) - z).detach()
        return torch.clamp(q / self.levels, 0.0, 1.0) * lam

    def extra_repr(self) -> str:
        return f"levels={self.levels}, threshold={float(self.threshold.detach()):.4g}"


def qcfs_layers(model: nn.Module) -> list[QCFS]:
    """The QCFS activations of ``model`` in definition order (empty for a ReLU network)."""
    return [m for m in model.modules() if isinstance(m, QCFS)]


def qcfs_thresholds(model: nn.Module) -> list[float]:
    """The learnt thresholds ``lambda`` of ``model``'s QCFS activations, in order (the spiking layers'
    scales after conversion; ``|lambda|``, as :class:`QCFS` uses it)."""
    return [float(q.threshold.detach().abs()) for q in qcfs_layers(model)]


@torch.no_grad()
def calibrate_thresholds(model: nn.Module, X: torch.Tensor, percentile: float = 99.9) -> list[float]:
    """Set every QCFS threshold of ``model`` to the ``percentile`` of its positive input on ``X``
    (training rows only), layer by layer, so training starts where the data-based normalisation of
    Rueckauer et al. 2017 would put a ReLU network's thresholds.

    Args:
        model: a network with :class:`QCFS` activations; X: inputs ``(n, 1, L)`` float, n >= 1.
        percentile: in (0, 100].

    Returns:
        The thresholds set, one per QCFS layer in order.

    Raises:
        ModelError: no QCFS layer, empty ``X`` or percentile out of range.
    """
    layers = qcfs_layers(model)
    if not layers:
        raise ModelError("the network has no QCFS activation to calibrate")
    if len(X) == 0:
        raise ModelError("calibrate_thresholds needs at least one sample")
    if not 0 < percentile <= 100:
        raise ModelError(f"percentile must be in (0, 100], got {percentile}")
    out = []
    for layer in layers:  # in order: each calibration changes what the next layer sees
        seen: list[torch.Tensor] = []
        hook = layer.register_forward_hook(lambda m, inp, _out: seen.append(inp[0].detach().flatten()))
        was = model.training
        model.eval()
        try:
            model(torch.as_tensor(X))
        finally:
            hook.remove()
            model.train(was)
        pos = torch.cat(seen)
        pos = pos[pos > 0].double().cpu().numpy()
        lam = float(np.percentile(pos, percentile)) if pos.size else 1.0
        layer.threshold.fill_(max(lam, 1e-3))
        out.append(float(layer.threshold.detach()))
    return out
