"""Data-based weight normalisation for CNN -> SNN weight transfer.

Details: docs/modules.md, section ``spiking.models.conversion``.
"""

from __future__ import annotations

import numpy as np
import torch

from spiking.models import ModelError
from spiking.models.cnn import CNN1d
from spiking.models.snn import SpikingCNN1d

LAYERS = ("conv1", "conv2", "conv3", "fc")


@torch.no_grad()
def activation_scales(cnn: CNN1d, X: np.ndarray | torch.Tensor, percentile: float = 99.9,
                      batch_size: int = 512) -> list[float]:
    """Percentile of the positive activations of each CNN stage on ``X``.

    Args:
        cnn: a trained ``CNN1d``.
        X: inputs (n, 1, L) float32, training rows only (a few hundred suffice).
        percentile: in (0, 100]; 100 gives the maximum (Diehl 2015).

    Returns:
        ``[lam_conv1, lam_conv2, lam_conv3, lam_fc]``, each > 0 (1.0 where a stage is all zero).

    Raises:
        ValueError: percentile outside (0, 100] or empty ``X``.
    """
    if not 0 < percentile <= 100:
        raise ModelError(f"percentile must be in (0, 100], got {percentile}")
    if len(X) == 0:
        raise ModelError("activation_scales needs at least one sample")
    cnn.eval()
    acts: list[list[torch.Tensor]] = [[], [], [], []]
    for start in range(0, len(X), batch_size):
        x = torch.as_tensor(X[start:start + batch_size])
        act1, act2, act3 = cnn.activations()  # the CNN's own (ReLU or QCFS)
        a1 = act1(cnn.pool1(cnn.conv1(x)))
        a2 = act2(cnn.pool2(cnn.conv2(a1)))
        a3 = act3(cnn.pool3(cnn.conv3(a2)))
        a4 = cnn.fc(a3.flatten(1))
        for i, a in enumerate((a1, a2, a3, a4)):
            acts[i].append(a[a > 0].flatten())
    scales = []
    for parts in acts:
        pos = torch.cat(parts).double().numpy()
        scales.append(float(np.percentile(pos, percentile)) if pos.size else 1.0)
    return scales


@torch.no_grad()
def normalize_weights(snn: SpikingCNN1d, scales: list[float]) -> None:
    """Rescale the spiking network's conv/linear layers in place by ``scales`` (see module doc).

    Raises:
        ValueError: not four positive scales.
    """
    if len(scales) != len(LAYERS) or min(scales) <= 0:
        raise ModelError(f"need {len(LAYERS)} positive scales, got {scales}")
    prev = 1.0
    for name, lam in zip(LAYERS, scales):
        layer = getattr(snn, name)
        layer.weight.mul_(prev / lam)
        if layer.bias is not None:
            layer.bias.div_(lam)
        prev = lam
