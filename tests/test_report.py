"""``spiking report``: figures, Markdown and self-contained HTML from a saved run or experiment."""

from __future__ import annotations

import base64
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from spiking.cli.main import main
from spiking.report import ReportError, build_report
from spiking.report.build import summary_table
from spiking.report.figures import normalize_confusion, pareto_front, pick_neurons, spike_raster, spread_neurons
from spiking.report.render import PNG_MAGIC

FAST = ["--top-k", "5", "--cnn-epochs", "2", "--snn-epochs", "1", "--num-steps", "4", "--batch-size", "32",
        "--patience", "0", "--device", "cpu", "--no-progress", "--seed", "3", "--encodings", "direct,delta"]
CONVENTION = ("45 nm CMOS, 32-bit float (Horowitz, ISSCC 2014): MAC 4.6 pJ, AC 0.9 pJ; "
              "memory traffic is not counted")


@pytest.fixture(scope="module")
def run_dir(tcga_subset, tmp_path_factory) -> Path:
    """A real (tiny) run made by `spiking run`: 5 classes, 2 CNN epochs, 1 SNN epoch, 4 steps."""
    root = tmp_path_factory.mktemp("report")
    args = ["run", "--matrix", str(tcga_subset["matrix"]), "--labels", str(tcga_subset["labels"]),
            "--shards", str(root / "shards"), "--runs-dir", str(root / "runs"), "--run-name", "r", *FAST]
    assert main(args) == 0
    return root / "runs" / "r"


def _md_images(md: str) -> list[str]:
    return re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)


def _summary_rows(md: str) -> list[list[str]]:
    """Body rows of the table in the Summary section of report.md."""
    sec = md.split("Summary (the study's Table II", 1)[1]
    rows = [line for line in sec.splitlines() if line.startswith("|")]
    return [[c.strip() for c in r.strip("|").split("|")] for r in rows[2:]]  # skip header and ---


def _is_png(path: Path) -> bool:
    return path.read_bytes()[:8] == PNG_MAGIC


# --------------------------------------------------------------------------- a real run
def test_spiking_run_writes_its_report(run_dir):
    assert (run_dir / "report" / "report.html").is_file()
    assert (run_dir / "report" / "report.md").is_file()


def test_report_renders_from_saved_run_without_retraining(run_dir, tmp_path):
    def refuse(*a, **k):
        raise AssertionError("the report must not train anything")

    with pytest.MonkeyPatch.context() as mp:
        import spiking.training.jobs as jobs
        import spiking.training.loop as loop

        mp.setattr(loop, "train", refuse)
        mp.setattr(jobs, "train", refuse)
        mp.setattr(jobs, "train_cnn", refuse)
        mp.setattr(jobs, "train_snn", refuse)
        page = build_report(run_dir, tmp_path / "out")
    out = tmp_path / "out"
    assert page == out / "report.html" and page.is_file()
    md = (out / "report.md").read_text()
    images = _md_images(md)
    # every figure of a full run is there (one confusion matrix per model, the SNN's activity)...
    assert {"class_frequencies.png", "training_curves.png", "confusion_cnn.png", "confusion_snn.png",
            "confusion_logreg.png", "raster_snn.png", "membrane_snn.png", "rates_snn.png"} <= set(images)
    # ...each image referenced exists and is a PNG, and nothing had to be skipped
    for ref in images:
        assert _is_png(out / ref), ref
    assert "Note:" not in md
    # sections in the agreed order
    heads = re.findall(r"^## \d+\. (.+)$", md, flags=re.M)
    assert [h.split(" ")[0] for h in heads] == ["Class", "Training", "Confusion", "Spiking", "Summary"]


def test_relative_paths_from_the_command_line(run_dir, monkeypatch):
    """`spiking report runs/r --out rel/out` from the runs' parent folder: the figures land in rel/out
    and report.md refers to them relative to itself (a relative out dir was once prefixed twice)."""
    monkeypatch.chdir(run_dir.parent.parent)
    assert main(["report", "runs/r", "--out", "rel/out"]) == 0
    out = run_dir.parent.parent / "rel" / "out"
    images = _md_images((out / "report.md").read_text())
    assert images and all(not Path(ref).is_absolute() and _is_png(out / ref) for ref in images)
    assert any(ref.startswith("raster_snn_delta") for ref in images)


def test_html_is_self_contained(run_dir):
    page = (run_dir / "report" / "report.html").read_text()
    srcs = re.findall(r'<img src="([^"]+)"', page)
    md_images = _md_images((run_dir / "report" / "report.md").read_text())
    assert len(srcs) == len(md_images) > 0
    for s in srcs:
        assert s.startswith("data:image/png;base64,")
        assert base64.b64decode(s.split(",", 1)[1])[:8] == PNG_MAGIC
    assert not re.search(r"(href|src)=\"(?!data:)", page)  # no other file referenced
    assert "<script" not in page and "<link" not in page


def test_summary_table_has_one_row_per_model(run_dir):
    results = json.loads((run_dir / "results.json").read_text())
    rows = _summary_rows((run_dir / "report" / "report.md").read_text())
    names = [m["name"] for m in results["models"]]
    assert "logreg" in names and len(rows) == len(names)
    for row, m in zip(rows, results["models"]):
        assert row[0].split(" ")[0] == m["name"]
        assert row[1] == f"{100 * m['test']['accuracy']:.2f}"
        assert row[4] == f"{m['parameters']:,}"
    assert rows[names.index("logreg")][7] == "-"  # the baseline has no energy estimate


def test_report_without_shards_skips_what_needs_data(run_dir, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(run_dir, copy, ignore=shutil.ignore_patterns("report"))
    cfg = json.loads((copy / "config.json").read_text())
    cfg["data"]["shards"] = str(tmp_path / "gone")
    (copy / "config.json").write_text(json.dumps(cfg))
    res = json.loads((copy / "results.json").read_text())
    res["dataset"]["shards"] = str(tmp_path / "gone")
    (copy / "results.json").write_text(json.dumps(res))
    build_report(copy)
    md = (copy / "report" / "report.md").read_text()
    assert "class_frequencies.png" not in md and "raster_snn.png" not in md
    assert "shards" in md and "Note:" in md
    assert "confusion_snn.png" in md and "rates_snn.png" in md  # still drawn from the saved files


# --------------------------------------------------------------------------- pure helpers
def test_confusion_rows_sum_to_one():
    cm = [[8, 2, 0], [1, 1, 2], [0, 0, 0]]  # rows = true class, columns = predicted
    n = normalize_confusion(cm)
    assert n.shape == (3, 3)
    np.testing.assert_allclose(n.sum(axis=1), [1.0, 1.0, 0.0])  # a class without samples stays zero
    np.testing.assert_allclose(n[0], [0.8, 0.2, 0.0])  # normalised per row, not per column
    with pytest.raises(ValueError):
        normalize_confusion([[1, 2, 3]])
    with pytest.raises(ValueError):
        normalize_confusion([[1, -1], [0, 1]])


def test_pareto_front_minimises_cost_and_maximises_accuracy():
    pts = [(5, 0.80), (10, 0.90), (10, 0.85), (20, 0.90), (50, 0.95), (75, 0.94), (5, 0.70), (3, 0.60)]
    #       front      front       dominated   dominated   front       dominated   dominated  front
    assert pareto_front(pts) == [7, 0, 1, 4]
    assert pareto_front([(1, 0.5), (1, 0.5)]) == [0, 1]  # identical points both kept
    assert pareto_front([(1, float("nan")), (2, 0.3)]) == [1]
    assert pareto_front([]) == []


def test_neuron_choice_for_raster_and_traces():
    spikes = np.array([[1, 0, 1, 0, 0], [1, 0, 1, 1, 0], [1, 0, 0, 0, 0]])  # (T=3, n=5): counts 3,0,2,1,0
    mem = np.array([[0.0, 0.9, 0.0, 0.0, 0.2]] * 3)
    assert pick_neurons(spikes, 3, mem).tolist() == [0, 2, 3]
    assert pick_neurons(spikes, 5, mem).tolist() == [0, 2, 3, 1, 4]  # silent ones by peak potential
    assert spread_neurons(spikes, 2, mem).tolist() == [0, 3]  # most and least active that spiked


def test_raster_draws_delta_encoded_input(tmp_path):
    rng = np.random.default_rng(0)
    trace = {"input": {"spikes": rng.choice([-1.0, 0.0, 1.0], size=(6, 1, 40))},
             "lif1": {"spikes": (rng.random((6, 1, 300)) < 0.2).astype(float), "mem": rng.random((6, 1, 300))}}
    p = spike_raster(trace, tmp_path / "r.png", max_neurons=200)
    assert _is_png(p)


# --------------------------------------------------------------------------- experiments
def _metrics(n_classes: int, rng) -> dict:
    cm = rng.integers(0, 5, size=(n_classes, n_classes)) + np.diag([20] * n_classes)
    return {"accuracy": 0.9, "balanced_accuracy": 0.89, "macro_f1": 0.88, "confusion_matrix": cm.tolist()}


def _fake_experiment(root: Path, *, energies: bool) -> Path:
    classes = ["A", "B", "C"]
    rng = np.random.default_rng(1)
    d = root / "snn_pt2"
    d.mkdir(parents=True)
    eff = {"convention": CONVENTION, "encoding": "direct", "num_steps": 10, "layers": [], "neurons": [
        {"layer": "lif1", "neurons": 100, "spikes": 50.0, "firing_rate": 0.05},
        {"layer": "lif_out", "neurons": 3, "spikes": 6.0, "firing_rate": 0.2}],
        "input_spikes": None, "macs": 3.0e5, "synops": 1.2e6, "dense_ops": 4e6, "energy_pj": 2.46e6,
        "energy_ratio_vs_cnn": 0.42}
    models = [{"name": "snn_pt2:best", "test": _metrics(3, rng), "parameters": 1000, "train_seconds": 12.0,
               "snn": {"neuron": "leaky", "beta": 0.9, "num_steps": 10, "population": 1}, "efficiency": eff},
              {"name": "snn_pt2:tradeoff", "test": _metrics(3, rng), "parameters": 1000, "train_seconds": 8.0,
               "snn": {"neuron": "leaky", "beta": 0.9, "num_steps": 5, "population": 1}},  # old entry: no efficiency
              {"name": "logreg", "test": _metrics(3, rng), "parameters": 30, "train_seconds": 0.1}]
    steps = [5, 5, 10, 20, 50, 75]
    accs = [0.80, 0.70, 0.90, 0.88, 0.95, 0.93]
    trials = [{"trial_id": f"t{i}", "config": {"num_steps": s, "beta": 0.9}, "best_val_balanced_accuracy": a}
              for i, (s, a) in enumerate(zip(steps, accs))]
    if energies:
        for t, s in zip(trials, steps):
            t["efficiency"] = {"energy_pj": 2.0e5 * s}
    trials.append({"trial_id": "t_err", "config": {"num_steps": 10}, "best_val_balanced_accuracy": None})
    results = {"dataset": {"classes": classes, "shards": str(root / "no-shards"), "n_samples": 90, "n_features": 50},
               "split": {"sizes": {"train": 60, "val": 10, "test": 20}, "seed": 42}, "models": models,
               "search": {"n_trials": 7, "best": {"trial_id": "t4"}, "tradeoff": {"trial_id": "t2"}}}
    (d / "results.json").write_text(json.dumps(results))
    (d / "trials.json").write_text(json.dumps(trials))
    (d / "experiment.json").write_text(json.dumps({"experiment": "snn_pt2", "shards": str(root / "no-shards"),
                                                   "budget": {"name": "smoke"}, "seed": 42}))
    return d


def test_fake_experiment_renders_with_pareto_figures(tmp_path):
    d = _fake_experiment(tmp_path, energies=True)
    page = build_report(d)
    out = d / "report"
    md = (out / "report.md").read_text()
    images = _md_images(md)
    assert {"tradeoff_num_steps.png", "tradeoff_energy.png", "confusion_snn_pt2_best.png",
            "rates_snn_pt2_best.png"} <= set(images)
    for ref in images:
        assert _is_png(out / ref), ref
    assert CONVENTION in md and "Pareto" in md
    assert "best_model.pt is missing" in md  # no network file: noted, not fatal
    assert "data:image/png;base64," in page.read_text()
    rows = _summary_rows(md)
    assert [r[0].split(" ")[0] for r in rows] == ["snn_pt2:best", "snn_pt2:tradeoff", "logreg"]
    assert rows[0][6] == "1.2M SynOps + 300k MACs" and rows[0][8] == "0.42"
    assert rows[1][6] == rows[1][7] == "-"  # entry without efficiency


def test_fake_experiment_without_energy_plots_num_steps_only(tmp_path):
    d = _fake_experiment(tmp_path, energies=False)
    build_report(d, tmp_path / "out")
    md = (tmp_path / "out" / "report.md").read_text()
    assert "tradeoff_num_steps.png" in md and "tradeoff_energy.png" not in md
    assert "Energy per inference was not recorded" in md


def test_summary_table_energy_unit_is_named():
    res = {"models": [{"name": "cnn", "test": {"accuracy": 1, "balanced_accuracy": 1, "macro_f1": 1},
                       "parameters": 5, "train_seconds": 1.0,
                       "efficiency": {"macs": 2.0e6, "synops": 0.0, "energy_pj": 9.2e6, "encoding": None,
                                      "energy_ratio_vs_cnn": 1.0}}]}
    t = summary_table(res)
    assert t.header[7] == "energy / inference (µJ)" and t.rows[0][7] == "9.2" and t.rows[0][6] == "2M MACs"


# --------------------------------------------------------------------------- bad input
def test_bad_targets_exit_2_with_one_line(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["report", str(tmp_path / "empty")]) == 2
    err = capsys.readouterr().err.strip()
    assert "neither a run folder" in err and len(err.splitlines()) == 1

    run = tmp_path / "unevaluated"
    run.mkdir()
    (run / "config.json").write_text("{}")
    assert main(["report", str(run)]) == 2
    assert "results.json" in capsys.readouterr().err

    assert main(["report", str(tmp_path / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err
    with pytest.raises(ReportError):
        build_report(tmp_path / "empty")


def test_storage_uri_target_is_copied_down_and_the_report_uploaded(tmp_path):
    # file:// goes through the same storage code path as s3:// (spiking.search.storage)
    d = _fake_experiment(tmp_path, energies=True)
    where = build_report(f"file://{d}")
    assert isinstance(where, str) and where.endswith("report.html")
    assert (d / "report" / "report.html").is_file() and _is_png(d / "report" / "tradeoff_energy.png")
