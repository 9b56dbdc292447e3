"""Data-based weight normalisation after weight transfer."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from spiking.models import CNN1d, SpikingCNN1d, activation_scales, normalize_weights, preset, transfer_weights


def _pair(L=128, seed=0):
    torch.manual_seed(seed)
    arch = preset("cnn_pt2", L, seed=0)
    cnn = CNN1d(L, arch, 4)
    snn = SpikingCNN1d(L, arch, 4, beta=1.0, num_steps=50)
    transfer_weights(cnn, snn)
    X = np.random.default_rng(seed).random((64, 1, L)).astype(np.float32)
    return cnn, snn, X, arch


def _as_cnn(snn, L, arch):
    """A CNN holding the spiking network's (rescaled) weights: its activations are the SNN's input currents."""
    c = CNN1d(L, arch, 4)
    c.load_state_dict({k: v for k, v in snn.state_dict().items() if k in c.state_dict()})
    return c


def test_normalised_activations_have_unit_percentile_and_same_decisions():
    cnn, snn, X, arch = _pair()
    scales = activation_scales(cnn, X, percentile=99.0)
    assert len(scales) == 4 and all(s > 0 for s in scales)
    normalize_weights(snn, scales)
    rescaled = _as_cnn(snn, 128, arch)
    after = activation_scales(rescaled, X, percentile=99.0)
    assert np.allclose(after, 1.0, rtol=1e-4)
    with torch.no_grad():
        x = torch.as_tensor(X)
        # ReLU networks are positively homogeneous: rescaling keeps every decision.
        assert torch.equal(cnn(x).argmax(1), rescaled(x).argmax(1))


def test_scales_reject_bad_arguments():
    cnn, snn, X, _ = _pair()
    with pytest.raises(ValueError):
        activation_scales(cnn, X, percentile=0)
    with pytest.raises(ValueError):
        activation_scales(cnn, X[:0])
    with pytest.raises(ValueError):
        normalize_weights(snn, [1.0, 2.0])
