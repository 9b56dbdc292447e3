"""The training loop: early stopping, best-epoch checkpoint, seeds, device choice."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from spiking.models import CNN1d, SpikingCNN1d, preset
from spiking.specs.train import TrainConfig
from spiking.training import CNNObjective, SpikeCountObjective, predict, resolve_device, train


def _toy(n=120, L=64, k=3, seed=0):
    """Classes differ by where a bump sits along the profile: learnable by a CNN."""
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(k), n // k)
    X = rng.random((len(y), 1, L)).astype(np.float32) * 0.3
    for i, c in enumerate(y):
        X[i, 0, 10 + 15 * c: 20 + 15 * c] += 0.7
    return X, y.astype(np.int64)


def test_device_choice():
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    if torch.cuda.is_available():
        assert resolve_device("cuda").type == "cuda"
    else:
        with pytest.raises(ValueError, match="no CUDA"):
            resolve_device("cuda")
    with pytest.raises(ValueError):
        resolve_device("tpu")


def test_cnn_learns_and_checkpoints_best_epoch(tmp_path):
    X, y = _toy()
    arch = preset("cnn_pt2", 64, seed=0)
    model = CNN1d(64, arch, 3)
    cfg = TrainConfig(epochs=15, batch_size=16, lr=3e-3, patience=0, seed=0, device="cpu", progress=False)
    hist = train(model, CNNObjective(), X, y, X, y, cfg, checkpoint_path=tmp_path / "best.pt")
    assert hist.best_val_balanced_accuracy > 0.9
    ckpt = torch.load(tmp_path / "best.pt", weights_only=False)
    assert ckpt["epoch"] == hist.best_epoch
    # The model ends holding the best epoch's weights.
    for k, v in model.state_dict().items():
        assert torch.equal(v, ckpt["state_dict"][k])
    assert len(hist.epochs) == 15 and not hist.stopped_early


def test_early_stopping_when_validation_stalls():
    X, y = _toy()
    model = CNN1d(64, preset("cnn_pt2", 64, seed=0), 3)
    cfg = TrainConfig(epochs=20, lr=0.0, patience=2, seed=0, device="cpu", progress=False)
    hist = train(model, CNNObjective(), X, y, X, y, cfg)
    assert hist.stopped_early and len(hist.epochs) == 3 and hist.best_epoch == 0


def test_same_seed_same_weights_and_predictions():
    X, y = _toy()
    arch = preset("cnn_pt2", 64, seed=0)
    outs = []
    for _ in range(2):
        torch.manual_seed(1)
        m = SpikingCNN1d(64, arch, 3, num_steps=4)
        cfg = TrainConfig(epochs=2, batch_size=16, lr=1e-3, patience=0, seed=7, device="cpu", progress=False)
        h = train(m, SpikeCountObjective(3), X, y, X, y, cfg)
        outs.append((h.epochs[-1]["loss"], predict(m, SpikeCountObjective(3), X)))
    assert outs[0][0] == outs[1][0]
    assert np.array_equal(outs[0][1], outs[1][1])


def test_spike_count_objective_population_and_errors():
    obj = SpikeCountObjective(2, loss="mse", population=3)
    spk = torch.zeros(5, 1, 6)
    spk[:, 0, 3:6] = 1.0  # class 1's group fires
    assert obj.scores(spk, torch.zeros_like(spk)).argmax(1).item() == 1
    with pytest.raises(ValueError):
        SpikeCountObjective(2, loss="hinge")
    with pytest.raises(ValueError):
        SpikeCountObjective(2, population=0)
