"""2-D CNN_PT (images) and its spiking version: shapes, sizes rule, errors, transfer, training."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from spiking.models.cnn import ArchitectureError, CNNArch
from spiking.models.cnn2d import MIN_SIDE_2D, CNN2d, derive_architecture_2d, preset_2d, stage_shapes
from spiking.models.snn import class_scores
from spiking.models.snn2d import SpikingCNN2d, transfer_weights_2d
from spiking.specs.train import TrainConfig
from spiking.training import CNNObjective, SpikeCountObjective, train

torch.set_num_threads(1)

SIZES = [(33, 33), (32, 33), (12, 80), (6, 6), (7, 40)]


def _small(H, W, seed=0):
    return derive_architecture_2d(H, W, w1=3, wd1=4, h1=4, w2=4, w3=5, rng=seed)


@pytest.mark.parametrize("H,W", SIZES)
def test_cnn2d_and_snn2d_shapes(H, W):
    arch = _small(H, W)
    x = torch.rand(2, 1, H, W)
    cnn = CNN2d(H, W, arch, 3)
    assert cnn(x).shape == (2, 3)
    # stage_shapes matches the tensors after each stage
    a = x
    for i, (conv, pool) in enumerate(((cnn.conv1, cnn.pool1), (cnn.conv2, cnn.pool2), (cnn.conv3, cnn.pool3))):
        a = pool(F.relu(conv(a)))
        assert tuple(a.shape[2:]) == cnn.shapes[i]
    assert cnn.shapes == stage_shapes(H, W, arch)
    snn = SpikingCNN2d(H, W, arch, 3, num_steps=4)
    spk, mem = snn(x)
    assert spk.shape == mem.shape == (4, 2, 3)
    assert class_scores(spk, 3).shape == (2, 3)


@pytest.mark.parametrize("name", ["cnn_pt1", "cnn_pt2"])
def test_presets_on_square_layout_of_1046(name):
    # L = 1046 miRNAs padded into a 33 x 33 image (1089 pixels).
    arch = preset_2d(name, 33, 33, seed=1)
    assert arch == preset_2d(name, 33, 33, seed=1)  # deterministic
    assert (arch.w1, arch.w2, arch.w3) == {"cnn_pt1": (142, 226, 220), "cnn_pt2": (12, 85, 229)}[name]
    x = torch.rand(1, 1, 33, 33)
    assert CNN2d(33, 33, arch, 10)(x).shape == (1, 10)
    for neuron in ("leaky", "lapicque", "rleaky"):
        spk, mem = SpikingCNN2d(33, 33, arch, 10, neuron=neuron, num_steps=2, beta=0.9)(x)
        assert spk.shape == mem.shape == (2, 1, 10)


def test_preset_keeps_fitting_first_stage_on_large_image():
    arch = preset_2d("cnn_pt2", 102, 102, seed=0)
    assert (arch.wd1, arch.h1) == (35, 12)  # (102-35+1)//12 = 5 >= 5: kept
    assert stage_shapes(102, 102, arch)[0] == (5, 5)


def test_too_small_images_raise():
    with pytest.raises(ArchitectureError, match=r"min\(H, W\) >= 6"):
        derive_architecture_2d(5, 40, w1=2, wd1=4, h1=4, w2=2, w3=2, rng=0)
    with pytest.raises(ArchitectureError, match="too small"):
        preset_2d("cnn_pt1", 40, 4)
    arch = CNNArch(w1=2, wd1=5, h1=2, w2=2, wd2=2, h2=1, w3=2, wd3=2, h3=1)
    with pytest.raises(ArchitectureError, match="width axis: stage 1"):
        stage_shapes(20, 4, arch)
    with pytest.raises(ArchitectureError, match="height axis"):
        CNN2d(3, 20, arch, 2)
    with pytest.raises(ArchitectureError):
        SpikingCNN2d(3, 20, arch, 2)


def test_derive_2d_always_valid_from_minimum():
    rng = random.Random(0)
    for H in range(MIN_SIDE_2D, 40):
        for _ in range(15):
            W = rng.randint(MIN_SIDE_2D, 120)
            arch = derive_architecture_2d(
                H, W, w1=2, wd1=rng.randint(4, 64), h1=rng.randint(4, 64), w2=2, w3=2, rng=rng
            )
            shapes = stage_shapes(H, W, arch)
            assert min(min(s) for s in shapes) >= 1


def test_snn2d_errors():
    arch = _small(12, 12)
    with pytest.raises(ValueError, match="direct"):
        SpikingCNN2d(12, 12, arch, 2, encoding="rate")
    with pytest.raises(ValueError, match="neuron"):
        SpikingCNN2d(12, 12, arch, 2, neuron="izhikevich")
    with pytest.raises(ValueError, match="expected input"):
        SpikingCNN2d(12, 12, arch, 2)(torch.rand(1, 1, 12, 13))
    with pytest.raises(ValueError, match="expected input"):
        CNN2d(12, 12, arch, 2)(torch.rand(1, 12, 12))


def test_weight_transfer_and_records():
    arch = _small(16, 20)
    torch.manual_seed(0)
    cnn = CNN2d(16, 20, arch, 2)
    snn = SpikingCNN2d(16, 20, arch, 2, num_steps=3)
    assert not torch.equal(snn.conv1.weight, cnn.conv1.weight)
    names = transfer_weights_2d(cnn, snn)
    assert "conv1.weight" in names and "fc.bias" in names
    for n, p in cnn.named_parameters():
        assert torch.equal(dict(snn.named_parameters())[n], p)
    with pytest.raises(ValueError, match="shape mismatch"):
        transfer_weights_2d(cnn, SpikingCNN2d(16, 20, arch, 4))
    snn.record_spikes = True
    x = torch.rand(2, 1, 16, 20)
    snn(x)
    assert set(snn.last_spike_counts) == {"lif1", "lif2", "lif3", "lif_out"}
    tr = snn.trace(x)
    assert tr["lif1"]["spikes"].shape == (3, 2, snn.layer_neurons["lif1"])


def _halves(n=64, H=12, W=12, seed=0):
    """Class 0: bright top half; class 1: bright bottom half (plus noise)."""
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(2), n // 2)
    X = rng.random((n, 1, H, W)).astype(np.float32) * 0.3
    X[y == 0, :, : H // 2] += 0.7
    X[y == 1, :, H // 2:] += 0.7
    return X, y.astype(np.int64)


def test_cnn2d_trains_on_halves():
    X, y = _halves(n=96, H=16, W=16)
    torch.manual_seed(0)
    model = CNN2d(16, 16, derive_architecture_2d(16, 16, w1=8, wd1=4, h1=4, w2=8, w3=8, rng=0), 2)
    cfg = TrainConfig(epochs=15, batch_size=16, lr=3e-3, patience=0, seed=0, device="cpu", progress=False)
    hist = train(model, CNNObjective(), X, y, X, y, cfg)
    assert hist.best_val_balanced_accuracy > 0.9


def test_snn2d_trains_with_spike_count_objective():
    # Smoke: the existing objective/loop accept the 2-D spiking model.
    X, y = _halves(n=32)
    model = SpikingCNN2d(12, 12, _small(12, 12), 2, num_steps=3)
    cfg = TrainConfig(epochs=1, batch_size=16, lr=1e-3, patience=0, seed=0, device="cpu", progress=False)
    hist = train(model, SpikeCountObjective(2), X, y, X, y, cfg)
    assert len(hist.epochs) == 1 and np.isfinite(hist.epochs[0]["loss"])


def test_transfer_refuses_a_cnn_for_another_image_size():
    """9x9 and 8x8 end in the same 1x1 stage, so every parameter shape matches: the sizes must be compared."""
    a = CNNArch(w1=2, wd1=2, h1=1, w2=2, wd2=2, h2=2, w3=2, wd3=2, h3=1)
    with pytest.raises(ValueError, match="9x9"):
        transfer_weights_2d(CNN2d(9, 9, a, 3), SpikingCNN2d(8, 8, a, 3))
    with pytest.raises(ValueError, match="needs a CNN2d and a SpikingCNN2d"):
        transfer_weights_2d(SpikingCNN2d(8, 8, a, 3), CNN2d(8, 8, a, 3))


@pytest.mark.parametrize("num_steps", [2.5, 3.0, True, "4", None, np.float32(2)], ids=repr)
def test_snn2d_refuses_non_integer_num_steps(num_steps):
    with pytest.raises(ValueError, match="num_steps must be an integer"):
        SpikingCNN2d(12, 12, _small(12, 12), 2, num_steps=num_steps)


@pytest.mark.parametrize("slope", [0, 0.0, -1.0, float("nan"), float("inf"), True, "25", None], ids=repr)
def test_snn2d_refuses_bad_slope(slope):
    with pytest.raises(ValueError, match="slope must be a finite number > 0"):
        SpikingCNN2d(12, 12, _small(12, 12), 2, slope=slope)


def test_snn2d_accepts_numpy_integer_steps_and_int_slope():
    snn = SpikingCNN2d(12, 12, _small(12, 12), 2, num_steps=np.int64(3), slope=np.int64(5))
    assert snn.num_steps == 3 and type(snn.num_steps) is int and snn.slope == 5.0
    with pytest.raises(ValueError, match="num_steps must be an integer >= 1"):
        SpikingCNN2d(12, 12, _small(12, 12), 2, num_steps=0)
