"""One PyTorch training path: the run's jobs and the Ray Tune trials build, transfer, normalise
and describe their networks through ``spiking.training.jobs.build_network``."""

from __future__ import annotations

import torch

from spiking.artifacts.checkpoint import load_model, model_from_checkpoint, save_network
from spiking.models.build import build_cnn, preset_for
from spiking.search.trainable import build_trial_model
from spiking.training.jobs import build_network

L, C = 300, 3


def _payload(**kw) -> dict:
    return {"kind": "snn", "n_classes": C, "L": L, "input_shape": [L], "layout": None, "arch": "preset", "seed": 5,
            "loss": "ce", "mode": "scratch", "transfer": None, "split_sha256": "abc", **kw}


def _snn(**kw) -> dict:
    return {"neuron": "leaky", "beta": 1.0, "num_steps": 4, "population": 1, "loss": "ce", "mode": "scratch",
            "encoding": "direct", "delta_threshold": 0.1, **kw}


def test_a_trial_network_is_the_runs_network_for_the_same_settings():
    config = {"preset": "cnn_pt2", "arch_seed": 0, "neuron": "leaky", "beta": 1.0, "num_steps": 4}
    model, _, meta = build_trial_model(config, _payload())
    arch = preset_for("cnn_pt2", (L,), seed=0)
    ref, _, ref_meta = build_network((L,), arch, C, seed=5, snn=_snn(),
                                     inputs={"L": L, "input_shape": [L], "layout": None}, split_sha256="abc")
    assert meta == ref_meta
    for (k, a), (_, b) in zip(model.state_dict().items(), ref.state_dict().items()):
        assert torch.equal(a, b), k


def test_the_delta_threshold_reaches_a_trial_network_and_its_metadata():
    config = {"preset": "cnn_pt2", "arch_seed": 0, "neuron": "leaky", "beta": 1.0, "num_steps": 4,
              "encoding": "delta", "delta_threshold": 0.3}
    model, _, meta = build_trial_model(config, _payload())
    assert model.delta_threshold == 0.3 and meta["delta_threshold"] == 0.3 and meta["encoding"] == "delta"
    assert model_from_checkpoint({"state_dict": model.state_dict(), **meta}).delta_threshold == 0.3


def test_weight_transfer_and_normalisation_are_recorded_and_applied(tmp_path):
    arch = preset_for("cnn_pt2", (L,), seed=0)
    cnn = build_cnn((L,), arch, C)
    scales = [2.0, 1.0, 1.0, 1.0]
    t = {"state_dict": cnn.state_dict(), "arch": arch.as_dict(), "scales": scales, "percentile": 99.9, "source": "x"}
    config = {"preset": "cnn_pt2", "arch_seed": 0, "neuron": "leaky", "beta": 1.0, "num_steps": 4}
    model, _, meta = build_trial_model(config, _payload(mode="transfer", transfer=t, arch="transfer"))
    assert meta["transferred"] and meta["normalization"] == {"scales": scales, "percentile": 99.9}
    assert meta["weights_source"] == "x"
    # conv1 is scaled by lam_0 / lam_1 = 1 / 2 (Diehl 2015)
    assert torch.allclose(model.conv1.weight, cnn.conv1.weight / 2)
    path = save_network(tmp_path / "snn.pt", model, meta, train_seconds=1.0, best_epoch=0)
    loaded, saved = load_model(path)
    assert saved["normalization"] == meta["normalization"] and saved["train_seconds"] == 1.0
    assert torch.equal(loaded.conv1.weight, model.conv1.weight)
