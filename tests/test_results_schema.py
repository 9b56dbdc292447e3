"""results.json has one owner (spiking.artifacts.results): the typed schema round-trips every producer's
file byte for byte, the writer and the reader refuse what the report refused, naming the key."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest

from spiking.artifacts import ArtifactError
from spiking.artifacts.results import (
    Efficiency,
    ModelResult,
    Results,
    SNNInfo,
    TestMetrics,
    check_results,
    read_results,
    write_results,
)
from spiking.evaluation.metrics import classification_metrics
from spiking.specs.energy import CONVENTION

CLASSES = ["BRCA", "LUAD", "KIRC"]
L = 60


def _metrics(seed: int) -> dict:
    rng = np.random.default_rng(seed)
    return classification_metrics(rng.integers(0, 3, 30), rng.integers(0, 3, 30), CLASSES)


def _efficiencies() -> tuple[dict, dict]:
    """Real efficiency blocks (count_operations) of a tiny CNN and its spiking twin."""
    import torch

    from spiking.models.build import build_cnn, build_spiking_cnn, preset_for
    from spiking.models.operations import count_operations

    torch.manual_seed(0)
    arch = preset_for("cnn_pt2", (L,))
    X = np.random.default_rng(0).random((4, 1, L), dtype=np.float32)
    cnn = count_operations(build_cnn((L,), arch, 3), X)
    snn = count_operations(build_spiking_cnn((L,), arch, 3, neuron="leaky", beta=0.9, num_steps=4), X)
    snn["energy_ratio_vs_cnn"] = snn["energy_pj"] / cnn["energy_pj"]
    return cnn, snn


def _base(models: list[dict]) -> dict:
    """dataset and split as spiking.artifacts.results.dataset_block and prepare() write them."""
    return {"dataset": {"source": [{"file": "x.tsv", "sha256": "ab" * 32}], "shards": "/data/shards",
                        "units": "RPM", "n_samples": 90, "n_features": L, "classes": CLASSES},
            "split": {"sizes": {"train": 60, "val": 10, "test": 20}, "seed": 42, "fractions": [0.7, 0.1, 0.2],
                      "grouped_by": None, "method": "sklearn StratifiedGroupKFold",
                      "test_class_counts": {"BRCA": 7, "LUAD": 7, "KIRC": 6}},
            "models": models}


def _torch_entry(name: str, eff: dict, snn: bool, seed: int) -> dict:
    """A model entry in evaluate_network's key order."""
    e = {"name": name, "test": _metrics(seed), "parameters": 1234, "train_seconds": 3.5,
         "inference_ms_per_sample": 0.02, "best_epoch": 4, "architecture": {"w1": 12, "h1": 4},
         "layout": {"name": "identity", "input_shape": [L]}}
    if snn:
        e["snn"] = {"neuron": "leaky", "beta": 0.9, "num_steps": 4, "population": 1, "loss": "ce_count",
                    "mode": "transfer", "encoding": "delta", "delta_threshold": 0.05}
        e["mean_spikes_per_sample"] = {"lif1": 12.5, "lif_out": 0.0}
    e["efficiency"] = eff
    if snn:
        e["warnings"] = ["the output layer never spiked on the test split"]
    return e


def _logreg() -> dict:
    return {"name": "logreg", "test": _metrics(9), "parameters": 183, "train_seconds": 0.12,
            "inference_ms_per_sample": 0.001}


def _run_doc() -> dict:
    cnn, snn = _efficiencies()
    doc = _base([_torch_entry("cnn", cnn, False, 1), _torch_entry("snn_delta", snn, True, 2), _logreg()])
    doc["run"] = {"name": "a", "config": {"data": {"shards": "/data/shards", "layout": "identity"}, "cnn": {}}}
    return doc


def _tune_doc() -> dict:
    _, snn = _efficiencies()
    best = {"experiment": "snn_pt2", "role": "best", "budget": "smoke", "trial_id": "t1", "config": {"num_steps": 4},
            "arch": {"w1": 12}, "val_balanced_accuracy": 0.8, "epoch": 3, "checkpoint": "/c", "model": "/m"}
    models = []
    for role in ("best", "tradeoff"):
        e = _torch_entry(f"snn_pt2:{role}", snn, True, 3)
        e["search"] = {"trial_id": "t1", "config": {"num_steps": 4}, "val_balanced_accuracy": 0.8, "epoch": 3}
        models.append(e)
    doc = _base(models + [_logreg()])
    doc["search"] = {"experiment": "snn_pt2", "budget": {"name": "smoke"}, "weights": {"source": "/w"},
                     "n_trials": 2, "n_errors": 0, "n_stopped_early": 1, "best": best, "tradeoff": None}
    doc["run"] = {"name": "snn_pt2", "config": {"experiment": "snn_pt2", "budget": "smoke", "seed": 42}}
    return doc


def _snn_k_doc(old: bool = False) -> dict:
    steps = "n_steps" if old else "num_steps"
    cfg = {"neuron": "RegularSpiking", "synapse": 0.005, steps: 60, "scale_firing_rates": 300.0}
    cnn = {"name": "cnn_k", "test": _metrics(4), "parameters": 500, "inference_ms_per_sample": 0.1,
           "source": "nas/best_model.keras", "train_seconds": None,
           "efficiency": {"macs": 5000, "synops": 0, "energy_pj": 23000.0, "convention": CONVENTION}}
    snn = {"name": "snn_k:best", "test": _metrics(5), "parameters": 500, "train_seconds": 0.0,
           "inference_ms_per_sample": 3.0, "snn": {"framework": "nengo-dl", **cfg},
           "firing_rates_hz": {"conv_1": 121.0}, "mean_firing_rate_hz": 121.0,
           "efficiency": {"macs": 100, "synops": 2.0e5, "energy_pj": 1.8e5, "mac_layers": ["conv_1"],
                          "synops_per_layer": {"conv_2": 2.0e5}, "spikes_per_inference": {"conv_1": 40.0},
                          steps: 60, "encoding": "direct", "energy_ratio_vs_cnn": 7.8, "convention": CONVENTION},
           "conversion_notes": ["conv_1: Conv1D -> RegularSpiking"],
           "search": {"trial_id": "k1", "config": cfg, "val_balanced_accuracy": 0.9}}
    doc = _base([cnn, snn, _logreg()])
    doc["search"] = {"experiment": "snn_k", "n_trials": 3, "n_errors": 0, "n_stopped_early": 0,
                     "best": {"trial_id": "k1", "config": cfg}, "tradeoff": {"trial_id": "k0", "config": cfg}}
    doc["run"] = {"name": "snn_k", "config": {"experiment": "snn_k", "budget": "smoke", "seed": 42}}
    return doc


def _nas_doc() -> dict:
    best = {"id": "g2_1", "generation": 2, "fitness": 0.9, "val_balanced_accuracy": 0.9, "epochs": 5}
    cnn = {"name": "cnn_k", "test": _metrics(6), "parameters": 3000, "train_seconds": 7.5,
           "inference_ms_per_sample": 0.05, "best_epoch": 5, "architecture": "conv(8,5) | dense(3)",
           "efficiency": {"macs": 9000, "synops": 0, "energy_pj": 41400.0, "convention": CONVENTION},
           "search": best}
    doc = _base([cnn, _logreg()])
    doc["search"] = {"kind": "nas", "method": "Fast-DENSER (1+lambda) ES", "budget": "smoke",
                     "settings": {"generations": 3}, "n_individuals": 7, "n_failed": 1, "best": best,
                     "front": [best], "path": "/nas", "split_sha256": "cd" * 32}
    doc["run"] = {"name": "nas", "config": {"nas": "nas", "seed": 42}}
    return doc


def _ablation_doc() -> dict:
    cnn, snn = _efficiencies()
    models = []
    for role, eff in (("cnn", cnn), ("snn", snn)):
        e = _torch_entry(f"identity_seed0:{role}", eff, role == "snn", 7)
        e["ablation"] = {"layout": "identity", "seed": 0, "role": role, "file": f"networks/identity_seed0/{role}.pt"}
        models.append(e)
    doc = _base(models + [_logreg()])
    doc["split"]["split_sha256"] = "ef" * 32  # a train subset keeps its split's fingerprint
    doc["ablation"] = {"experiment": "layout_ablation", "budget": {"name": "smoke"}, "layouts": ["identity"],
                       "seeds": [0], "rows": [{"layout": "identity"}], "sd": "sample standard deviation (ddof=1)",
                       "train_rows": 60, "n_trials": 1, "n_errors": 0, "networks": None}
    doc["run"] = {"name": "layout_ablation", "config": {"experiment": "layout_ablation", "budget": "smoke", "seed": 0}}
    return doc


PRODUCERS = {"run": _run_doc, "tune": _tune_doc, "snn_k": _snn_k_doc, "snn_k_old": lambda: _snn_k_doc(old=True),
             "nas": _nas_doc, "ablation": _ablation_doc}


def _old_bytes(doc: dict) -> bytes:
    """What the writer wrote before it took typed results."""
    return (json.dumps(doc, indent=2, sort_keys=False) + "\n").encode()


def _build(doc: dict) -> Results:
    """The producers' typed constructor, as each producer calls it."""
    blocks = {k: doc[k] for k in ("search", "ablation", "run") if k in doc}
    return Results.build(doc["dataset"], doc["split"], doc["models"], **blocks)


@pytest.mark.parametrize("kind", sorted(PRODUCERS))
def test_each_producers_file_round_trips_byte_for_byte(kind, tmp_path):
    doc = PRODUCERS[kind]()
    first = write_results(_build(copy.deepcopy(doc)), tmp_path / "a.json")
    assert first.read_bytes() == _old_bytes(doc)  # same keys, order and values as before
    back = read_results(first)
    assert isinstance(back.models[0], ModelResult) and isinstance(back.models[0].test, TestMetrics)
    assert back.to_dict() == doc and list(back.to_dict()) == list(doc)
    assert write_results(back, tmp_path / "b.json").read_bytes() == first.read_bytes()
    assert write_results(doc, tmp_path / "c.json").read_bytes() == first.read_bytes()  # a plain dict too


def test_typed_fields_hold_what_the_producers_wrote(tmp_path):
    r = read_results(write_results(_build(_run_doc()), tmp_path / "r.json"))
    assert r.dataset.classes == CLASSES and r.split.sizes == {"train": 60, "val": 10, "test": 20}
    cnn, snn, logreg = r.models
    assert isinstance(snn.snn, SNNInfo) and snn.snn.encoding == "delta" and snn.snn.delta_threshold == 0.05
    assert isinstance(snn.efficiency, Efficiency) and snn.efficiency.num_steps == 4 and snn.efficiency.synops > 0
    assert cnn.snn is None and cnn.efficiency.encoding is None and cnn.efficiency.macs > 0
    assert logreg.efficiency is None and "efficiency" not in logreg.to_dict()
    assert r.run.name == "a" and r.search is None and "search" not in r.to_dict()
    old = read_results(write_results(_build(_snn_k_doc(old=True)), tmp_path / "o.json"))
    assert old.models[1].snn.n_steps == 60 and old.models[1].snn.num_steps is None
    assert old.models[0].train_seconds is None and old.models[0].to_dict()["train_seconds"] is None  # kept as null


def test_typed_results_built_in_code_write_the_schema_order(tmp_path):
    m = ModelResult(name="logreg", test=TestMetrics(accuracy=0.5, balanced_accuracy=0.5, macro_f1=0.5),
                    parameters=10, train_seconds=None)
    r = Results.build(_base([])["dataset"], _base([])["split"], [])
    r.models.append(m)
    r.run = None
    doc = json.loads(write_results(r, tmp_path / "r.json").read_text())
    assert list(doc) == ["dataset", "split", "models"]
    assert doc["models"] == [{"name": "logreg", "test": {"accuracy": 0.5, "balanced_accuracy": 0.5, "macro_f1": 0.5},
                              "parameters": 10, "train_seconds": None}]


def test_unknown_keys_are_kept_in_place(tmp_path):
    doc = _run_doc()
    doc = {"note": "by hand", **doc, "extra_block": {"x": [1, 2]}}
    doc["models"][0] = {"first": 1, **doc["models"][0], "custom": {"a": 1}}
    doc["models"][0]["test"]["top5"] = 0.99
    doc["models"][1]["efficiency"]["note"] = "hand-counted"
    p = tmp_path / "results.json"
    p.write_text(json.dumps(doc, indent=2) + "\n")
    r = read_results(p)
    assert r.extra == {"note": "by hand", "extra_block": {"x": [1, 2]}}
    assert r.models[0].extra == {"first": 1, "custom": {"a": 1}} and r.models[0].test.extra == {"top5": 0.99}
    assert json.dumps(r.to_dict(), indent=2) + "\n" == p.read_text()


def test_to_dict_is_a_copy():
    r = Results.parse(_run_doc())
    d = r.to_dict()
    d["models"][0]["test"]["confusion_matrix"][0][0] = -5
    d["dataset"]["classes"].append("X")
    again = r.to_dict()
    assert again["models"][0]["test"]["confusion_matrix"][0][0] >= 0 and again["dataset"]["classes"] == CLASSES


def _set(keys, value):
    def edit(doc):
        for k in keys[:-1]:
            doc = doc[k]
        doc[keys[-1]] = value
    return edit


def _pop(keys):
    def edit(doc):
        for k in keys[:-1]:
            doc = doc[k]
        doc.pop(keys[-1])
    return edit


#: Every check the report's reader made (spiking.report.inputs before the move), with the key named.
MALFORMED = [
    (lambda d: d.clear(), "a 'models' list"),
    (_set(["models"], []), "a 'models' list"),
    (_set(["models"], {"cnn": {}}), "a 'models' list"),
    (_pop(["dataset"]), "dataset.classes"),
    (_set(["dataset"], [1]), "dataset must be a JSON object"),
    (_set(["dataset", "classes"], []), "dataset.classes"),
    (_set(["dataset", "classes"], [["A"]]), "dataset.classes must be a list of class names"),
    (_set(["dataset", "n_features"], 0), "dataset.n_features must be >= 1"),
    (_set(["dataset", "n_features"], "60"), "dataset.n_features must be a number"),
    (_set(["dataset", "shards"], 3), "dataset.shards must be a string"),
    (_set(["split"], "70/10/20"), "split must be a JSON object"),
    (_set(["split", "sizes"], [60, 10, 20]), "split.sizes must be a JSON object"),
    (_set(["split", "test_class_counts"], [7, 7, 6]), "split.test_class_counts must be"),
    (_set(["split", "test_class_counts", "BRCA"], -1), "split.test_class_counts.BRCA must be >= 0"),
    (_set(["search"], "done"), "search must be a JSON object"),
    (_set(["search"], {"best": "t1"}), "search.best must be a JSON object"),
    (_set(["search"], {"tradeoff": 3}), "search.tradeoff must be a JSON object"),
    (_set(["run"], "a"), "run must be a JSON object"),
    (_set(["models", 0], "cnn"), "a model entry lacks 'name' or 'test'"),
    (_pop(["models", 0, "test"]), "a model entry lacks 'name' or 'test'"),
    (_set(["models", 0, "name"], ""), "models[0].name must be a non-empty string"),
    (_set(["models", 0, "name"], 3), "models[0].name must be a non-empty string"),
    (_set(["models", 0, "test"], None), "models[0] (cnn).test must be a JSON object"),
    (_set(["models", 0, "test", "accuracy"], "high"), "models[0] (cnn).test.accuracy must be a number"),
    (_set(["models", 0, "test", "balanced_accuracy"], True), "test.balanced_accuracy must be a number"),
    (_set(["models", 0, "test", "macro_f1"], [0.5]), "test.macro_f1 must be a number"),
    (_set(["models", 0, "test", "confusion_matrix"], "x"), "test.confusion_matrix must be a 3 x 3 matrix"),
    (_set(["models", 0, "test", "confusion_matrix"], [[1, 2], [3, 4]]), "test.confusion_matrix must be a 3 x 3"),
    (_set(["models", 0, "test", "confusion_matrix"], [[1, 2, 3]] * 2 + [[1, -2, 3]]), "other lengths or values"),
    (_set(["models", 0, "parameters"], -1), "models[0] (cnn).parameters must be >= 0"),
    (_set(["models", 0, "train_seconds"], float("nan")), "models[0] (cnn).train_seconds must be >= 0"),
    (_set(["models", 0, "efficiency"], 5), "models[0] (cnn).efficiency must be a JSON object"),
    (_set(["models", 1, "efficiency", "energy_pj"], "abc"), "models[1] (snn_delta).efficiency.energy_pj must be a"),
    (_set(["models", 1, "efficiency", "macs"], -1), "efficiency.macs must be >= 0"),
    (_set(["models", 1, "efficiency", "synops"], "1k"), "efficiency.synops must be a number"),
    (_set(["models", 1, "efficiency", "input_spikes"], -0.5), "efficiency.input_spikes must be >= 0"),
    (_set(["models", 1, "efficiency", "energy_ratio_vs_cnn"], -1), "efficiency.energy_ratio_vs_cnn must be >= 0"),
    (_set(["models", 1, "efficiency", "num_steps"], 0), "efficiency.num_steps must be >= 1"),
    (_set(["models", 1, "efficiency", "n_steps"], 0), "efficiency.n_steps must be >= 1"),
    (_set(["models", 1, "efficiency", "encoding"], 1), "efficiency.encoding must be a string"),
    (_set(["models", 1, "efficiency", "convention"], {}), "efficiency.convention must be a string"),
    (_set(["models", 1, "efficiency", "neurons"], {"lif1": 0.1}), "efficiency.neurons must be a list"),
    (_set(["models", 1, "efficiency", "neurons", 0], 0.1), "efficiency.neurons[0] must be a JSON object"),
    (lambda d: d["models"][1]["efficiency"]["neurons"][0].pop("firing_rate"), "neurons[0] lacks 'firing_rate'"),
    (lambda d: d["models"][1]["efficiency"]["neurons"][0].pop("layer"), "neurons[0] lacks 'layer'"),
    (_set(["models", 1, "efficiency", "neurons", 0, "firing_rate"], -0.1), "neurons[0].firing_rate must be >= 0"),
    (_set(["models", 1, "snn"], "leaky"), "models[1] (snn_delta).snn must be a JSON object"),
    (_set(["models", 1, "snn", "num_steps"], 0), "snn.num_steps must be >= 1"),
    (_set(["models", 1, "snn", "n_steps"], "60"), "snn.n_steps must be a number"),
    (_set(["models", 1, "snn", "scale_firing_rates"], -1), "snn.scale_firing_rates must be >= 0"),
    (_set(["models", 1, "snn", "synapse"], "5 ms"), "snn.synapse must be a number"),
    (_set(["models", 1, "snn", "framework"], 1), "snn.framework must be a string"),
    (_set(["models", 1, "snn", "neuron"], 1), "snn.neuron must be a string"),
    (_set(["models", 1, "snn", "population"], 0), "snn.population must be >= 1"),
    (_set(["models", 1, "snn", "delta_threshold"], -0.1), "snn.delta_threshold must be >= 0"),
    (_set(["models", 1, "snn", "encoding"], 2), "snn.encoding must be a string"),
    (_set(["models", 1, "firing_rates_hz"], [1.0]), "models[1] (snn_delta).firing_rates_hz must be a JSON object"),
    (_set(["models", 1, "firing_rates_hz"], {"conv_1": -1}), "firing_rates_hz.conv_1 must be >= 0"),
    (_set(["models", 1, "mean_firing_rate_hz"], "fast"), "mean_firing_rate_hz must be a number"),
    (_set(["models", 1, "conversion_notes"], "note"), "conversion_notes must be a list"),
    (_set(["models", 1, "conversion_notes"], ["ok", 3]), "conversion_notes[1] must be a string"),
    (_set(["models", 1, "mean_spikes_per_sample"], 3), "mean_spikes_per_sample must be a JSON object"),
    (_set(["models", 1, "mean_spikes_per_sample", "lif1"], -1), "mean_spikes_per_sample.lif1 must be >= 0"),
]


@pytest.mark.parametrize("edit, message", MALFORMED, ids=[m for _, m in MALFORMED])
def test_malformed_results_are_refused_naming_the_file_and_key(edit, message, tmp_path):
    doc = _run_doc()
    edit(doc)
    p = tmp_path / "results.json"
    p.write_text(json.dumps(doc))
    with pytest.raises(ArtifactError, match="^" + str(p).replace("\\", "\\\\")) as e:
        read_results(p)
    assert message in str(e.value)
    with pytest.raises(ArtifactError):  # the writer refuses it too
        write_results(doc, tmp_path / "w.json")
    assert not (tmp_path / "w.json").exists()


def test_the_old_reader_tolerances_stay(tmp_path):
    """What the report accepted: nulls for optional blocks and numbers, no split, missing counts."""
    doc = _run_doc()
    doc["split"] = None
    doc["search"] = None
    doc["models"][0]["efficiency"] = None
    doc["models"][0]["parameters"] = None
    doc["models"][1].pop("train_seconds")
    doc["models"][2]["test"] = {}
    doc["dataset"]["classes"] = [0, 1, 2]
    p = tmp_path / "results.json"
    p.write_text(json.dumps(doc))
    assert read_results(p).to_dict() == doc
    check_results(doc, "here")


def test_not_json_and_binary_files_are_one_line_errors(tmp_path):
    p = tmp_path / "results.json"
    p.write_text("{not json")
    with pytest.raises(ArtifactError, match=r"results.json is not valid JSON \(results\)"):
        read_results(p)
    p.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ArtifactError, match="is not valid JSON"):
        read_results(p)


def test_results_on_a_filesystem_read_through_it(tmp_path):
    from spiking.artifacts import storage as st

    fs, root = st.resolve_storage(f"file://{tmp_path}")
    write_results(_build(_nas_doc()), tmp_path / "results.json")
    r = read_results(st.join(fs, root, "results.json"), fs=fs)
    assert r.to_dict() == _nas_doc()
    (tmp_path / "results.json").write_text("[]")
    with pytest.raises(ArtifactError, match="holds no model results"):
        read_results(st.join(fs, root, "results.json"), fs=fs)


@pytest.mark.parametrize("edit, message", [
    (_pop(["dataset"]), "results lack 'dataset'"),
    (_pop(["split"]), "results lack 'split'"),
    (_pop(["models"]), "results lack 'models'"),
    (_pop(["models", 2, "parameters"]), "model entry 'logreg' lacks ['parameters']"),
    (lambda d: [d["models"][0].pop(k) for k in ("parameters", "train_seconds")],
     "model entry 'cnn' lacks ['parameters', 'train_seconds']"),
])
def test_the_writer_requires_what_every_producer_writes(edit, message, tmp_path):
    doc = _run_doc()
    edit(doc)
    with pytest.raises(ArtifactError) as e:
        write_results(doc, tmp_path / "results.json")
    assert str(e.value) == message and not (tmp_path / "results.json").exists()


def test_the_report_reads_through_read_results(tmp_path, monkeypatch):
    """spiking.report.inputs has no results checks of its own; its errors are the reader's, as ReportError."""
    import spiking.report.inputs as inputs
    from spiking.report import ReportError

    assert not hasattr(inputs, "_check_results")
    d = tmp_path / "run"
    d.mkdir()
    (d / "config.json").write_text(json.dumps({"data": {"shards": str(tmp_path / "none")}}))
    doc = _run_doc()
    doc["models"][1]["efficiency"]["energy_pj"] = "abc"
    (d / "results.json").write_text(json.dumps(doc))
    with pytest.raises(ReportError, match=r"models\[1\] \(snn_delta\).efficiency.energy_pj must be a number"):
        inputs.ReportInputs(d, "run")
    calls = []
    real = inputs.read_results
    monkeypatch.setattr(inputs, "read_results", lambda p: (calls.append(Path(p)), real(p))[1])
    (d / "results.json").write_text(json.dumps(_run_doc()))
    got = inputs.ReportInputs(d, "run")
    assert calls == [d / "results.json"] and got.results == _run_doc() and got.classes == CLASSES
