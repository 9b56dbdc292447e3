"""QCFS conversion (Bu et al. 2022): the activation's levels and gradients, threshold calibration,
the conversion's equality with the CNN at the trained step count, the integrated readout, the
settings' refusals, and ``spiking run --cnn-activation qcfs --snn-mode convert`` end to end on a
small stratified subset of the real data."""

from __future__ import annotations

import json

import numpy as np
import pytest
import snntorch
import torch

from spiking.models import ModelError
from spiking.models.cnn import CNN1d, preset
from spiking.models.qcfs import QCFS, calibrate_thresholds, qcfs_layers
from spiking.specs import SpecError
from spiking.specs.run import RunConfig
from spiking.training.jobs import build_network, snn_settings
from spiking.training.objectives import SpikeCountObjective, integrated_current


# --------------------------------------------------------------------------- the activation
@pytest.mark.parametrize("levels", [1, 2, 4, 8])
def test_qcfs_takes_levels_plus_one_values_between_0_and_lambda(levels):
    q = QCFS(levels, threshold=2.0)
    x = torch.linspace(-3, 5, 4001)
    y = q(x).detach()
    allowed = torch.arange(levels + 1) * 2.0 / levels
    assert torch.allclose(torch.unique(y), allowed)  # every level is reached, no other value
    assert float(y.min()) == 0.0 and float(y.max()) == 2.0  # clipped at 0 and lambda
    # floor(x L / lambda + 1/2): the shift rounds to the nearest level (here lambda / L * k +- a bit)
    step = 2.0 / levels
    for k in range(levels + 1):
        for eps in (-0.49, 0.49):
            got = float(q(torch.tensor(k * step + eps * step)).detach())
            assert got == pytest.approx(k * step), (k, eps, got)


def test_qcfs_gradients_pass_straight_through_inside_the_clip():
    q = QCFS(4, threshold=1.0)
    x = torch.tensor([-2.0, -0.5, 0.1, 0.3, 0.6, 0.9, 3.0], requires_grad=True)
    q(x).sum().backward()
    # d/dx of lambda * clip(z / L, 0, 1), z = x L / lambda + 1/2, the floor treated as identity
    assert x.grad.tolist() == [0.0, 0.0, 1.0, 1.0, 1.0, 1.0, 0.0]
    assert q.threshold.grad is not None and float(q.threshold.grad) != 0.0  # lambda learns


@pytest.mark.parametrize("bad", [{"levels": 0}, {"levels": 257}, {"levels": 2.5}, {"levels": True},
                                 {"threshold": 0.0}, {"threshold": -1.0}])
def test_qcfs_refuses_bad_settings(bad):
    with pytest.raises(ModelError, match="levels|threshold"):
        QCFS(**bad)


def test_calibration_sets_each_threshold_to_the_percentile_of_its_positive_input():
    torch.manual_seed(0)
    L = 120
    cnn = CNN1d(L, preset("cnn_pt2", L), 3, activation="qcfs", levels=4)
    X = torch.rand(40, 1, L)
    lams = calibrate_thresholds(cnn, X, percentile=99.0)
    assert lams == [float(q.threshold.detach()) for q in qcfs_layers(cnn)]
    with torch.no_grad():
        pre1 = cnn.pool1(cnn.conv1(X))
        pre2 = cnn.pool2(cnn.conv2(cnn.act1(pre1)))  # layer 2 sees layer 1 with its calibrated threshold
    for lam, pre in ((lams[0], pre1), (lams[1], pre2)):
        pos = pre.flatten()[pre.flatten() > 0].double().numpy()
        assert lam == pytest.approx(float(np.percentile(pos, 99.0)), rel=1e-5)
    with pytest.raises(ModelError, match="no QCFS"):
        calibrate_thresholds(CNN1d(L, preset("cnn_pt2", L), 3), X)
    with pytest.raises(ModelError, match="percentile"):
        calibrate_thresholds(cnn, X, percentile=0)


# --------------------------------------------------------------------------- the conversion
def _converted(levels=4, steps=4, seed=0):
    torch.manual_seed(seed)
    L = 150
    arch = preset("cnn_pt2", L)
    cnn = CNN1d(L, arch, 4, activation="qcfs", levels=levels)
    X = torch.rand(32, 1, L)
    calibrate_thresholds(cnn, X)
    cfg = RunConfig()
    cfg.cnn.activation, cfg.snn.mode, cfg.snn.num_steps = "qcfs", "convert", steps
    cfg.validate()
    lams = [float(q.threshold.detach()) for q in qcfs_layers(cnn)]
    snn, objective, meta = build_network(L, arch, 4, seed=0, snn=snn_settings(cfg.snn), source_cnn=cnn,
                                         scales=lams + [1.0])
    return cnn.eval(), snn.eval(), objective, meta, X, lams


def test_first_layer_spike_counts_equal_the_qcfs_output_at_the_trained_step_count():
    for levels in (2, 4, 8):
        cnn, snn, _, meta, X, lams = _converted(levels=levels, steps=levels)
        assert meta["init_mem"] == 0.5 and meta["readout"] == "integrated" and meta["mode"] == "convert"
        with torch.no_grad():
            counts = snn.trace(X)["lif1"]["spikes"].sum(0)  # (B, w1, s1) spikes in T steps
            qcfs = cnn.act1(cnn.pool1(cnn.conv1(X))).flatten(1)  # channel-major, as the trace
        # an IF neuron with threshold lambda, v0 = lambda/2 and constant input fires QCFS(x) T / lambda times
        assert torch.equal(counts, torch.round(qcfs * levels / lams[0]))
        assert float(counts.max()) <= levels


def test_integrated_readout_recovers_the_summed_input_current():
    torch.manual_seed(1)
    cur = torch.randn(6, 5, 3) * 1.5  # (T, B, n) input currents of integrate-and-fire output neurons
    lif = snntorch.Leaky(beta=1.0, threshold=1.0, reset_mechanism="subtract")
    mem = torch.zeros(5, 3)
    spks, mems = [], []
    for t in range(6):
        spk, mem = lif(cur[t], mem)
        spks.append(spk)
        mems.append(mem)
    spk, mem = torch.stack(spks), torch.stack(mems)
    assert spk.sum() > 0  # some neurons fired, so the resets matter
    assert torch.allclose(integrated_current(spk, mem), cur.sum(0), atol=1e-5)
    obj = SpikeCountObjective(3, readout="integrated")
    assert torch.equal(obj.scores(spk, mem).argmax(1), cur.sum(0).argmax(1))
    with pytest.raises(ValueError, match="readout"):
        SpikeCountObjective(3, readout="votes")


def test_checkpoints_of_a_qcfs_cnn_and_a_converted_snn_rebuild_the_same_networks(tmp_path):
    from spiking.artifacts.checkpoint import load_model, network_meta, save_network

    cnn, snn, objective, meta, X, _ = _converted()
    cmeta = network_meta("cnn", cnn.arch, {"L": cnn.L, "input_shape": [cnn.L], "layout": None}, 4,
                         activation="qcfs", levels=4)
    save_network(tmp_path / "cnn.pt", cnn, cmeta, train_seconds=0.0, best_epoch=0)
    save_network(tmp_path / "snn.pt", snn, meta, train_seconds=0.0, best_epoch=0)
    cnn2, m2 = load_model(tmp_path / "cnn.pt")
    snn2, m3 = load_model(tmp_path / "snn.pt")
    assert m2["activation"] == "qcfs" and m2["levels"] == 4 and len(qcfs_layers(cnn2)) == 3
    with torch.no_grad():
        assert torch.equal(cnn2(X), cnn(X))
        assert torch.equal(objective.predict(snn2, X), objective.predict(snn, X))
    assert snn2.init_mem == 0.5 and m3["readout"] == "integrated"


# --------------------------------------------------------------------------- settings
@pytest.mark.parametrize("change, words", [
    ({"snn.mode": "convert"}, "--cnn-activation qcfs"),
    ({"snn.mode": "convert", "cnn.activation": "qcfs", "snn.neuron": "synaptic"}, "integrate-and-fire"),
    ({"snn.mode": "convert", "cnn.activation": "qcfs", "snn.beta": 0.9}, "beta 1.0"),
    ({"snn.mode": "convert", "cnn.activation": "qcfs", "snn.population": 2}, "population"),
    ({"cnn.activation": "qcfs", "data.layout": "square", "snn.encodings": ("direct",)}, "QCFS"),
    ({"cnn.activation": "gelu"}, "activation"),
    ({"cnn.activation": "qcfs", "cnn.levels": 0}, "levels"),
    ({"cnn.activation": "qcfs", "cnn.qcfs_percentile": 0.0}, "qcfs_percentile"),
    ({"snn.mode": "distill"}, "transfer, scratch, convert"),
])
def test_settings_refuse_a_conversion_that_cannot_work(change, words):
    cfg = RunConfig()
    for key, value in change.items():
        part, name = key.split(".")
        setattr(getattr(cfg, part), name, value)
    with pytest.raises(SpecError, match=words):
        cfg.validate()


def test_a_2d_cnn_refuses_qcfs():
    from spiking.models.build import build_cnn

    with pytest.raises(ModelError, match="ReLU"):
        build_cnn((12, 12), {"w1": 4, "wd1": 3, "h1": 2, "w2": 4, "wd2": 2, "h2": 2, "w3": 4, "wd3": 2, "h3": 1}, 3,
                  activation="qcfs")


def test_a_search_experiment_refuses_mode_convert():
    import tomllib
    from importlib.resources import files

    from spiking.search.registry import ExperimentError, parse_experiment

    raw = tomllib.loads(files("spiking.search.experiments").joinpath("snn_mse_pt2.toml").read_text())
    parse_experiment("snn_mse_pt2", raw)  # the file as it is parses
    raw["snn"] = {"mode": "convert"}
    with pytest.raises(ExperimentError, match="mode = 'convert' trains nothing"):
        parse_experiment("snn_mse_pt2", raw)


# --------------------------------------------------------------------------- end to end
def test_run_converts_a_qcfs_cnn_with_no_snn_training(tcga_subset, tmp_path, capsys):
    from spiking.cli.main import main

    src = ["--matrix", str(tcga_subset["matrix"]), "--labels", str(tcga_subset["labels"])]
    assert main(["ingest", *src, "--out", str(tmp_path / "shards")]) == 0
    assert main(["run", "--shards", str(tmp_path / "shards"), "--runs-dir", str(tmp_path / "runs"), "--run-name", "q",
                 *src, "--top-k", "5", "--cnn-activation", "qcfs", "--qcfs-levels", "4", "--snn-mode", "convert",
                 "--num-steps", "4", "--encodings", "direct", "--cnn-epochs", "30", "--cnn-lr", "3e-3",
                 "--batch-size", "32", "--device", "cpu", "--no-progress"]) == 0
    run = tmp_path / "runs" / "q"
    hist = json.loads((run / "history_snn.json").read_text())
    assert len(hist["epochs"]) == 1 and hist["train_seconds"] == 0.0  # converted, not trained
    results = {m["name"]: m for m in json.loads((run / "results.json").read_text())["models"]}
    snn, cnn = results["snn"], results["cnn"]
    assert snn["snn"]["mode"] == "convert" and snn["snn"]["readout"] == "integrated" and snn["snn"]["num_steps"] == 4
    assert snn["snn"]["finetuned"] is False and "QCFS conversion, no training" in (run / "report" / "report.md").read_text()
    ckpt = torch.load(run / "cnn.pt", weights_only=False)
    assert ckpt["activation"] == "qcfs" and ckpt["levels"] == 4
    # converted at its trained step count, the SNN loses at most 5 points to its CNN on 60 test samples
    # (the 5-seed figures on the whole data are in the README)
    ba = lambda m: m["test"]["balanced_accuracy"]  # noqa: E731
    assert ba(cnn) > 0.8 and ba(snn) >= ba(cnn) - 0.05, (ba(cnn), ba(snn))
    assert snn["efficiency"]["energy_ratio_vs_cnn"] < 1.0
    # fine-tuning the conversion (hybrid conversion): the converted network's record comes first, and
    # the weights kept are the converted ones unless an epoch beats them on validation
    converted = torch.load(run / "snn.pt", weights_only=False)["state_dict"]
    assert main(["train", "--shards", str(tmp_path / "shards"), "--runs-dir", str(tmp_path / "runs"), "--run-name", "q",
                 "--model", "snn", "--top-k", "5", "--cnn-activation", "qcfs", "--snn-mode", "convert", "--finetune",
                 "--num-steps", "4", "--encodings", "direct", "--snn-epochs", "2", "--patience", "0",
                 "--batch-size", "32", "--device", "cpu", "--no-progress"]) == 0
    hist = json.loads((run / "history_snn.json").read_text())
    assert [r["epoch"] for r in hist["epochs"]] == [-1, 0, 1] and hist["epochs"][0]["loss"] is None
    tuned = torch.load(run / "snn.pt", weights_only=False)["state_dict"]
    same = all(torch.equal(tuned[k], converted[k]) for k in converted)
    improved = max(r["val_balanced_accuracy"] for r in hist["epochs"][1:]) > hist["epochs"][0]["val_balanced_accuracy"]
    assert same != improved and (hist["best_epoch"] == -1) == same
