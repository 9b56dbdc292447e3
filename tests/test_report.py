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
from spiking.report.figures import normalize_confusion, pareto_front, pick_neurons, spike_raster, spread_neurons
from spiking.report.render import PNG_MAGIC
from spiking.report.tables import summary_table

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


@pytest.fixture(scope="module")
def run_2d(tcga_subset, tmp_path_factory) -> Path:
    """The same tiny run on the 2-D square layout (file order zero-padded to a square image)."""
    root = tmp_path_factory.mktemp("report2d")
    fast = FAST[:FAST.index("--encodings")] + ["--encodings", "direct", "--layout", "square"]
    fast[fast.index("--cnn-epochs") + 1] = "1"
    args = ["run", "--matrix", str(tcga_subset["matrix"]), "--labels", str(tcga_subset["labels"]),
            "--shards", str(root / "shards"), "--runs-dir", str(root / "runs"), "--run-name", "r2", *fast]
    assert main(args) == 0
    return root / "runs" / "r2"


LAYOUT_PNGS = ("layout_feature_map.png", "layout_sample.png", "layout_class_means.png")


def _section(md: str, title: str) -> str:
    """The text of the report.md section whose heading starts with ``title`` (up to the next heading)."""
    m = re.search(rf"^## \d+\. {re.escape(title)}.*?(?=^## |\Z)", md, flags=re.M | re.S)
    assert m, f"no section {title!r} in report.md"
    return m.group(0)


def _feature_map_rows(path: Path) -> list[dict]:
    import csv

    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


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
            "confusion_logreg.png", "raster_snn.png", "membrane_snn.png", "rates_snn.png",
            *LAYOUT_PNGS} <= set(images)
    # ...each image referenced exists and is a PNG, and nothing had to be skipped
    for ref in images:
        assert _is_png(out / ref), ref
    assert "Note:" not in md
    # sections in the agreed order
    heads = re.findall(r"^## \d+\. (.+)$", md, flags=re.M)
    assert [h.split(" ")[0] for h in heads] == ["Class", "Spatial", "Training", "Confusion", "Spiking", "Summary"]


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
    # the layout is still named, and its feature map drawn from layout.json + split.json; the images need data
    sec = _section(md, "Spatial layout")
    assert "Layout: identity" in sec and "> Note: No sample or class-mean images" in sec and "shards" in sec
    assert "layout_feature_map.png" in sec and "layout_sample.png" not in sec and "layout_class_means.png" not in sec


# --------------------------------------------------------------------------- the spatial layout section
def _check_layout_section(run: Path, out: Path) -> tuple[str, dict]:
    """The layout section of the report in ``out``: heading, the three PNGs (existing, referenced from
    report.md), the feature-map CSV with one row per feature; returns (section text, layout.json)."""
    md = (out / "report.md").read_text()
    sec = _section(md, "Spatial layout")
    images = _md_images(sec)
    assert list(images) == list(LAYOUT_PNGS)
    for name in LAYOUT_PNGS:
        assert _is_png(out / name), name
    assert "Note:" not in sec
    state = json.loads((run / "layout.json").read_text())
    names = json.loads((run / "split.json").read_text())["feature_names"]
    rows = _feature_map_rows(out / "layout_feature_map.csv")
    assert len(rows) == len(names) == state["n_features"]
    assert sorted(int(r["feature_index"]) for r in rows) == list(range(len(names)))
    assert all(r["feature_name"] == names[int(r["feature_index"])] for r in rows)
    assert "layout_feature_map.csv" in sec
    # the sample shown is the first test sample, named with its id and true class
    split = json.loads((run / "split.json").read_text())
    assert split["ids"]["test"][0] in sec and "true class" in sec
    assert "[0, 1]" in sec and "training part" in sec
    return sec, state


def test_layout_section_of_an_identity_run(run_dir, tmp_path):
    build_report(run_dir, tmp_path / "out")
    sec, state = _check_layout_section(run_dir, tmp_path / "out")
    assert state["name"] == "identity"
    assert "Layout: identity, the features in file order on a 1-D strip" in sec
    assert f"1-D strip of {state['n_features']} positions" in sec
    # the section sits between the class frequencies and the training curves
    heads = re.findall(r"^## \d+\. (.+)$", (tmp_path / "out" / "report.md").read_text(), flags=re.M)
    i = heads.index("Spatial layout")
    assert heads[i - 1].startswith("Class frequencies") and heads[i + 1] == "Training curves"


def test_layout_section_of_a_2d_run(run_2d):
    out = run_2d / "report"  # written by `spiking run` itself
    sec, state = _check_layout_section(run_2d, out)
    assert state["name"] == "square" and len(state["shape"]) == 2
    H, W = state["shape"]
    assert H == W and H * W >= state["n_features"] > (H - 1) * (H - 1)
    assert "Layout: square, the features in file order, zero-padded to a square image" in sec
    assert f"{H}x{W} image" in sec and sec.count(f"({H}x{W})") >= 3  # the sentence and every caption
    if H * W > state["n_features"]:
        assert f"{H * W - state['n_features']} padding positions" in sec and "padding pixels" in sec
    rows = _feature_map_rows(out / "layout_feature_map.csv")
    assert set(rows[0]) == {"row", "col", "feature_index", "feature_name"}
    assert all(0 <= int(r["row"]) < H and 0 <= int(r["col"]) < W for r in rows)
    # the CSV is the saved layout: feature i at flat position positions[i]
    assert {int(r["feature_index"]): int(r["row"]) * W + int(r["col"]) for r in rows} == dict(
        enumerate(state["positions"]))


def test_layout_section_when_the_data_cannot_be_prepared(run_2d, tmp_path, monkeypatch):
    from spiking.report.inputs import ReportInputs

    def fail(self):
        self._prep_error = "the data could not be re-prepared: simulated failure"
        return None

    monkeypatch.setattr(ReportInputs, "prepared", fail)
    build_report(run_2d, tmp_path / "out")
    md = (tmp_path / "out" / "report.md").read_text()
    sec = _section(md, "Spatial layout")
    H, W = json.loads((run_2d / "layout.json").read_text())["shape"]
    assert "Layout: square" in sec and f"{H}x{W}" in sec
    assert "> Note: No sample or class-mean images: the data could not be re-prepared: simulated failure" in sec
    assert "layout_sample.png" not in md and "layout_class_means.png" not in md
    assert (tmp_path / "out" / "report.html").is_file()


def test_layout_section_of_a_run_saved_before_layouts(run_dir, tmp_path):
    """A run folder without layout.json has the identity layout, and the report says so."""
    copy = tmp_path / "old"
    shutil.copytree(run_dir, copy, ignore=shutil.ignore_patterns("report", "layout.json"))
    _edit_json(copy / "config.json", lambda c: [c["data"].pop(k, None) for k in
                                                ("layout", "layout_shape", "layout_seed")])
    build_report(copy, tmp_path / "out")
    sec, _ = _check_layout_section(run_dir, tmp_path / "out")  # the same identity layout as the original run
    assert "Layout: identity" in sec and "no layout.json" in sec


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
    # file:// goes through the same storage code path as s3:// (spiking.artifacts.storage)
    d = _fake_experiment(tmp_path, energies=True)
    where = build_report(f"file://{d}")
    assert isinstance(where, str) and where.endswith("report.html")
    assert (d / "report" / "report.html").is_file() and _is_png(d / "report" / "tradeoff_energy.png")


# --------------------------------------------------------------------------- regressions
def _fake_run(root: Path) -> Path:
    """A run folder (config.json + results.json) whose files are the fake experiment's results."""
    exp = _fake_experiment(root / "src", energies=False)
    d = root / "run"
    d.mkdir()
    shutil.copy(exp / "results.json", d / "results.json")
    (d / "config.json").write_text(json.dumps({"data": {"shards": str(root / "no-shards")}}))
    return d


def _edit_json(path: Path, edit) -> None:
    doc = json.loads(path.read_text())
    edit(doc)
    path.write_text(json.dumps(doc))


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


def test_local_target_with_storage_uri_out_is_uploaded(tmp_path, monkeypatch, capsys):
    """`--out s3://...` of a local target once wrote into a local folder literally named `s3:/...`;
    file:// goes through the same upload code (spiking.artifacts.storage) as s3://."""
    d = _fake_experiment(tmp_path / "exp", energies=True)
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    dest = tmp_path / "bucket" / "x"
    where = build_report(d, f"file://{dest}")
    assert isinstance(where, str) and where == str(dest / "report.html")
    md = (dest / "report.md").read_text()
    assert "tradeoff_energy.png" in _md_images(md) and _is_png(dest / "tradeoff_energy.png")
    assert list(cwd.iterdir()) == [] and not (d / "report").exists()  # nothing written locally
    # a second upload over it: the old report's stale figure goes, a file of the user's stays
    (dest / "mine.png").write_bytes(PNG_MAGIC + b"mine")
    _edit_json(d / "trials.json", lambda ts: [t.pop("efficiency", None) for t in ts])
    assert main(["report", str(d), "--out", f"file://{dest}"]) == 0
    assert not (dest / "tradeoff_energy.png").exists() and (dest / "mine.png").read_bytes() == PNG_MAGIC + b"mine"
    assert list(cwd.iterdir()) == []
    capsys.readouterr()
    # a scheme storage does not know is refused, not made a local folder
    assert main(["report", str(d), "--out", "gs://bucket/x"]) == 2
    assert "--out gs://bucket/x" in _one_line_error(capsys) and list(cwd.iterdir()) == []


def test_rebuilding_a_report_keeps_other_files_of_the_folder(tmp_path, monkeypatch, capsys):
    d = _fake_experiment(tmp_path, energies=True)
    out = tmp_path / "out"
    build_report(d, out)
    assert (out / "tradeoff_energy.png").is_file()
    (out / "mine.png").write_bytes(PNG_MAGIC + b"mine")  # the user's own figure beside the report
    (out / "notes.txt").write_text("mine")
    _edit_json(d / "trials.json", lambda ts: [t.pop("efficiency", None) for t in ts])
    build_report(d, out)
    md = (out / "report.md").read_text()
    assert "tradeoff_energy.png" not in md and not (out / "tradeoff_energy.png").exists()  # stale figure removed
    assert (out / "mine.png").read_bytes() == PNG_MAGIC + b"mine" and (out / "notes.txt").read_text() == "mine"
    assert {p.name for p in out.glob("*.png")} == set(_md_images(md)) | {"mine.png"}
    # --out "" is an error, not the working directory
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    assert main(["report", str(d), "--out", ""]) == 2
    assert "--out is empty" in _one_line_error(capsys) and list(cwd.iterdir()) == []
    with pytest.raises(ReportError):
        build_report(d, "")


def test_a_failing_report_leaves_the_previous_one_intact(tmp_path, monkeypatch):
    d = _fake_experiment(tmp_path, energies=True)
    out = tmp_path / "out"
    build_report(d, out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    siblings = sorted(p.name for p in tmp_path.iterdir())
    import spiking.report.figures as fg

    def boom(*a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(fg, "accuracy_tradeoff", boom)  # fails after the confusion matrices are drawn
    with pytest.raises(RuntimeError, match="disk full"):
        build_report(d, out)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    for ref in _md_images(before["report.md"].decode()):
        assert _is_png(out / ref)
    assert sorted(p.name for p in tmp_path.iterdir()) == siblings  # no temporary folder left behind
    with pytest.raises(RuntimeError):
        build_report(d, tmp_path / "fresh")
    assert sorted(p.name for p in tmp_path.iterdir()) == siblings  # not even an empty output folder


def _set(keys, value):
    def edit(doc):
        for k in keys[:-1]:
            doc = doc[k]
        doc[keys[-1]] = value
    return edit


@pytest.mark.parametrize("name, edit, field", [
    ("results.json", lambda r: r["models"][0]["efficiency"]["neurons"][0].pop("firing_rate"), "firing_rate"),
    ("results.json", _set(["models", 0, "test", "confusion_matrix"], "x"), "confusion_matrix"),
    ("results.json", _set(["models", 0, "test", "confusion_matrix"], [[1, 2], [3, 4]]), "confusion_matrix"),
    ("results.json", _set(["models", 0, "efficiency", "energy_pj"], "abc"), "energy_pj"),
    ("results.json", _set(["models", 0, "efficiency", "neurons"], {"lif1": 0.1}), "neurons"),
    ("results.json", _set(["models", 1, "snn"], "leaky"), "snn"),
    ("results.json", _set(["split", "sizes"], [60, 10, 20]), "split.sizes"),
    ("trials.json", _set([0, "efficiency"], {"energy_pj": "abc"}), "energy_pj"),
    ("trials.json", lambda ts: ts.append("oops"), "trials[7]"),
    ("trials.json", _set([0, "config"], [5]), "config"),
    ("experiment.json", _set(["budget"], "smoke"), "budget"),
])
def test_malformed_experiment_files_are_one_line_errors(tmp_path, capsys, name, edit, field):
    d = _fake_experiment(tmp_path, energies=True)
    _edit_json(d / name, edit)
    assert main(["report", str(d), "--out", str(tmp_path / "out")]) == 2
    err = _one_line_error(capsys)
    assert f"{d / name}:" in err and field in err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("config", [[1, 2], {"data": "shards"}, {"data": {"shards": 3}}])
def test_malformed_run_config_is_a_one_line_error(tmp_path, capsys, config):
    d = _fake_run(tmp_path)
    assert main(["report", str(d)]) == 0  # the run itself reports fine
    capsys.readouterr()
    (d / "config.json").write_text(json.dumps(config))
    assert main(["report", str(d)]) == 2
    assert f"{d / 'config.json'}:" in _one_line_error(capsys)


def test_energy_plot_draws_zero_energy_trials_and_keeps_the_legend_off_the_points(tmp_path, monkeypatch):
    import spiking.report.figures as fg

    figs = []
    save = fg._save
    monkeypatch.setattr(fg, "_save", lambda fig, path: (figs.append(fig), save(fig, path))[1])
    fg.accuracy_tradeoff([0.0, 10.0, 1.0e4], [0.7, 0.8, 0.9], tmp_path / "e.png", xlabel="energy (pJ)",
                         title="3 trials")
    ax = figs[0].axes[0]
    assert ax.get_xscale() == "linear"  # on a log axis the 0 pJ trial, a Pareto point, vanished
    lo, hi = ax.get_xlim()
    assert lo <= 0.0 and hi >= 1.0e4
    figs[0].canvas.draw()
    legend, box = ax.get_legend().get_window_extent(), ax.get_window_extent()
    assert legend.x0 >= box.x1  # outside the axes: it covers no trial
    fg.accuracy_tradeoff([1.0, 10.0, 1.0e4], [0.7, 0.8, 0.9], tmp_path / "f.png", xlabel="x", title="t")
    assert figs[1].axes[0].get_xscale() == "log"  # all positive, wide range: still log


def _entry(name: str, snn: dict | None = None, eff: dict | None = None) -> dict:
    m = {"name": name, "test": {"accuracy": 0.5, "balanced_accuracy": 0.5, "macro_f1": 0.5}}
    if snn is not None:
        m["snn"] = {"neuron": "leaky", "beta": 0.9, "num_steps": 8, "population": 1, **snn}
    if eff is not None:
        m["efficiency"] = eff
    return m


def test_summary_table_without_energy_and_with_encoding_in_the_snn_block():
    res = {"models": [_entry("snn_delta", {"encoding": "delta", "delta_threshold": 0.05}),
                      _entry("snn_delta_old", {"encoding": "delta"}),
                      _entry("snn", {"encoding": "direct"}),
                      _entry("snn_eff", {"delta_threshold": 0.2}, {"encoding": "delta", "synops": 10.0}),
                      _entry("logreg")]}
    t = summary_table(res)
    assert t.header[7] == "energy / inference"  # no "(pJ)" over a column of "-"
    assert all(r[7] == "-" for r in t.rows)
    desc = [r[0] for r in t.rows]
    assert "delta input" in desc[0] and "delta threshold 0.05" in desc[0]
    assert "delta input" in desc[1] and "threshold" not in desc[1]  # old results.json: no threshold recorded
    assert "direct input" in desc[2] and "threshold" not in desc[2]
    assert "delta input" in desc[3] and "delta threshold 0.2" in desc[3]
    res["models"][3]["efficiency"]["energy_pj"] = 5.0
    assert summary_table(res).header[7] == "energy / inference (pJ)"


def test_report_dot_and_out_file_messages(tmp_path, monkeypatch, capsys):
    run = tmp_path / "myrun"
    run.mkdir()
    (run / "config.json").write_text("{}")
    monkeypatch.chdir(run)
    assert main(["report", "."]) == 2
    here = Path.cwd()
    assert f"--runs-dir {here.parent} --run-name {here.name}`" in _one_line_error(capsys)

    d = _fake_experiment(tmp_path, energies=False)
    taken = tmp_path / "taken"
    taken.write_text("x")
    assert main(["report", str(d), "--out", str(taken)]) == 2
    err = _one_line_error(capsys)
    assert f"--out {taken} is a file" in err and "Errno" not in err and err.count(str(taken)) == 1, err
    assert main(["report", str(d), "--out", str(taken / "sub")]) == 2
    err = _one_line_error(capsys)
    assert f"{taken} is a file" in err and "Errno" not in err, err
    assert taken.read_text() == "x"


# --------------------------------------------------------------------------- snn_k (NengoDL conversion) and nas folders
SNNK_NOTES = ["dropout_0: Dropout (rate 0.1) removed - identity at inference",
              "flatten: Flatten -> no-op (Nengo signals are flat vectors)"]


def _tiny_png(path: Path) -> Path:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(1, 1), dpi=20)
    FigureCanvasAgg(fig)
    fig.add_subplot().plot([0, 1], [1, 0])
    fig.savefig(path, format="png")
    return path


def _fake_snn_k(root: Path, *, activity: bool = True) -> Path:
    """An snn_k experiment folder as `spiking tune snn_k` writes it: no .pt, activity.png, nengo-dl entries."""
    classes = ["A", "B", "C"]
    rng = np.random.default_rng(2)
    d = root / "snn_k"
    d.mkdir(parents=True)
    keras = str(root / "nas" / "best_model.keras")

    def snn(role: str, num_steps: int, scale: float, synapse: float, rates: dict) -> dict:
        notes = SNNK_NOTES + [f"conv_1: Conv1D 4 filters -> RegularSpiking spiking neurons (firing rates x{scale:g})"]
        return {"name": f"snn_k:{role}", "test": _metrics(3, rng), "parameters": 500, "train_seconds": 0.0,
                "snn": {"framework": "nengo-dl", "neuron": "RegularSpiking", "synapse": synapse, "num_steps": num_steps,
                        "scale_firing_rates": scale},
                "firing_rates_hz": rates, "mean_firing_rate_hz": float(np.mean(list(rates.values()))),
                "efficiency": {"macs": 1000, "synops": 2.0e5, "energy_pj": 1.9e5, "num_steps": num_steps,
                               "encoding": "direct", "energy_ratio_vs_cnn": 0.8, "convention": CONVENTION},
                "conversion_notes": notes,
                "search": {"trial_id": "k1" if role == "best" else "k0", "config": {}}}

    models = [{"name": "cnn_k", "test": _metrics(3, rng), "parameters": 500, "train_seconds": 12.0, "source": keras,
               "efficiency": {"macs": 5.0e4, "synops": 0, "energy_pj": 2.3e5, "convention": CONVENTION}},
              snn("best", 60, 300, 0.005, {"conv_1": 121.0, "conv_2": 34.0}),
              snn("tradeoff", 10, 1000, 0.0, {"conv_1": 404.0, "conv_2": 145.0}),
              {"name": "logreg", "test": _metrics(3, rng), "parameters": 30, "train_seconds": 0.1}]
    steps, accs = [10, 60, 120, 30, 90], [0.95, 0.97, 0.96, 0.40, 0.20]
    trials = [{"trial_id": f"k{i}", "config": {"neuron": "RegularSpiking", "synapse": 0.005, "num_steps": s,
                                               "scale_firing_rates": 300},
               "error": None, "best_val_balanced_accuracy": a,
               "val": {"val_accuracy": a, "mean_firing_rate_hz": 80.0, "energy_pj": 3.0e3 * s, "synops": 3.0e3 * s,
                       "rows": 30}}
              for i, (s, a) in enumerate(zip(steps, accs))]
    best_cfg = {"neuron": "RegularSpiking", "synapse": 0.005, "num_steps": 60, "scale_firing_rates": 300}
    results = {"dataset": {"classes": classes, "shards": str(root / "no-shards"), "n_samples": 90, "n_features": 50},
               "split": {"sizes": {"train": 60, "val": 10, "test": 20}, "seed": 42}, "models": models,
               "search": {"n_trials": 5, "n_errors": 0, "n_stopped_early": 0,
                          "best": {"trial_id": "k1", "config": best_cfg, "notes": SNNK_NOTES},
                          "tradeoff": {"trial_id": "k0", "config": {**best_cfg, "num_steps": 10}}}}
    (d / "results.json").write_text(json.dumps(results))
    (d / "trials.json").write_text(json.dumps(trials))
    (d / "experiment.json").write_text(json.dumps({
        "experiment": "snn_k", "shards": str(root / "no-shards"), "budget": {"name": "small"}, "seed": 42,
        "weights": {"source": keras, "split_verified": True},
        "spec": {"name": "snn_k", "kind": "snn_k", "data": {"top_k": 3, "fractions": [0.7, 0.1, 0.2], "seed": 42,
                                                            "log2": True, "zscore": "feature"}}}))
    (d / "best_config.json").write_text(json.dumps({"role": "best", "trial_id": "k1", "config": best_cfg}))
    if activity:
        _tiny_png(d / "activity.png")
    return d


def test_snn_k_report_shows_the_conversion_not_missing_networks(tmp_path):
    d = _fake_snn_k(tmp_path)
    out = tmp_path / "out"
    page = build_report(d, out)
    md = (out / "report.md").read_text()
    images = _md_images(md)
    assert {"activity.png", "rates_snn_k_best.png", "rates_snn_k_tradeoff.png", "tradeoff_num_steps.png",
            "tradeoff_energy.png", "confusion_cnn_k.png", "confusion_snn_k_best.png"} <= set(images)
    for ref in images:
        assert _is_png(out / ref), ref
    assert (out / "activity.png").read_bytes() == (d / "activity.png").read_bytes()  # copied, not redrawn
    # none of the notes meant for PyTorch experiments
    for wrong in (".pt", "no history", "no firing rates", "Not applicable", "Energy per inference was not recorded",
                  "beta None", "None steps"):
        assert wrong not in md, wrong
    notes = re.findall(r"^> Note: (.*)$", md, flags=re.M)
    assert len(notes) == 1 and "shards" in notes[0]  # only the class frequencies, skipped: no shards here
    assert md.count("Nothing was trained") == 1 and "spiking report " + str(tmp_path / "nas") in md
    heads = [h.split(" ")[0] for h in re.findall(r"^## \d+\. (.+)$", md, flags=re.M)]
    assert heads == ["Class", "Training", "Confusion", "Spiking", "Conversion", "Accuracy", "Summary"]
    # the conversion notes as a list: the shared ones once, the scale-specific ones per network
    assert md.count(f"- {SNNK_NOTES[0]}") == 1
    assert "- conv_1: Conv1D 4 filters -> RegularSpiking spiking neurons (firing rates x300)" in md
    assert "<ul><li>" in page.read_text()
    assert "(trials.json val.energy_pj)" in md and "against its num_steps" in md
    rows = _summary_rows(md)
    assert [r[0].split(" ")[0] for r in rows] == ["cnn_k", "snn_k:best", "snn_k:tradeoff", "logreg"]
    assert "NengoDL conversion: RegularSpiking, 60 steps, synapse 0.005 s, firing rates x300" in rows[1][0]
    assert "no synapse filter" in rows[2][0]
    assert rows[1][5] == "0 (converted)" and rows[0][5] == "12.0"
    assert rows[1][6] == "200k SynOps + 1k MACs"


def test_snn_k_folders_written_before_the_num_steps_rename_still_report(tmp_path):
    d = _fake_snn_k(tmp_path)
    for f in d.glob("*.json"):  # NengoDL's name, as snn_k folders recorded it before
        f.write_text(f.read_text().replace('"num_steps"', '"n_steps"'))
    build_report(d, tmp_path / "out")
    md = (tmp_path / "out" / "report.md").read_text()
    assert "tradeoff_num_steps.png" in _md_images(md)
    rows = _summary_rows(md)
    assert "NengoDL conversion: RegularSpiking, 60 steps, synapse 0.005 s" in rows[1][0]
    assert "None steps" not in md and "? steps" not in md


def test_snn_k_firing_rates_are_drawn_in_hz(tmp_path, monkeypatch):
    import spiking.report.figures as fg

    calls = []
    real = fg.firing_rates
    monkeypatch.setattr(fg, "firing_rates",
                        lambda rates, path, **k: (calls.append((rates, k)), real(rates, path, **k))[1])
    build_report(_fake_snn_k(tmp_path), tmp_path / "out")
    assert [c[0] for c in calls] == [{"conv_1": 121.0, "conv_2": 34.0}, {"conv_1": 404.0, "conv_2": 145.0}]
    assert all(c[1]["ylabel"] == "firing rate (Hz)" for c in calls)


def test_snn_k_without_activity_png_and_from_storage(tmp_path):
    d = _fake_snn_k(tmp_path / "a", activity=False)
    build_report(d, tmp_path / "out")
    md = (tmp_path / "out" / "report.md").read_text()
    assert "activity.png is not in the experiment folder" in md and "activity.png" not in _md_images(md)
    assert "rates_snn_k_best.png" in _md_images(md)
    # a copied-down storage target brings activity.png along
    d2 = _fake_snn_k(tmp_path / "b")
    build_report(f"file://{d2}")
    assert "activity.png" in _md_images((d2 / "report" / "report.md").read_text())
    assert _is_png(d2 / "report" / "activity.png")


def _nas_row(rid: str, gen: int, parent: str | None, fitness: float, params: int, *, mutations=(),
             train_longer: bool = False, error: str | None = None) -> dict:
    return {"id": rid, "generation": gen, "parent": parent, "mutations": list(mutations), "train_longer": train_longer,
            "phenotype": f"layer:conv num-filters:{params // 100} act:relu learning:adam lr:0.001",
            "parameters": params, "macs": 3 * params, "fitness": fitness, "val_accuracy": fitness,
            "val_balanced_accuracy": fitness - 0.01, "epochs": 5, "seconds": 2.5,
            "stopped_by": "error" if error else "early_stop", "error": error}


def _fake_nas(root: Path, *, shards: Path | None = None) -> Path:
    """An architecture-search folder as `spiking nas` writes it (2 generations after the initial one, lambda 2)."""
    classes = ["A", "B", "C"]
    rng = np.random.default_rng(3)
    d = root / "nas"
    d.mkdir(parents=True)
    rows = [_nas_row("g0_i0", 0, None, 0.80, 2000), _nas_row("g0_i1", 0, None, 0.60, 90000),
            _nas_row("g0_i2", 0, None, 0.0, 5000, error="RuntimeError: boom"),
            _nas_row("g1_i0", 1, "g0_i0", 0.85, 2000, mutations=["train_longer"], train_longer=True),
            _nas_row("g1_i1", 1, "g0_i0", 0.70, 1200, mutations=["add_layer:features@0"]),
            _nas_row("g2_i0", 2, "g1_i0", 0.90, 3000, mutations=["dsge_layer:features@1", "macro_layer:learning"]),
            _nas_row("g2_i1", 2, "g1_i0", 0.83, 800, mutations=["remove_layer:features@0"])]
    best = rows[5]
    settings = {"generations": 3, "offspring": 2, "time_budget_s": 20.0, "max_params": 2000000, "max_epochs": 1000,
                "objectives": ["accuracy", "parameters"], "seed": 42}
    named = str(shards) if shards else str(root / "no-shards")
    (d / "nas.json").write_text(json.dumps({
        "name": "nas", "budget": "smoke", "settings": settings, "grammar": "<features> ::= ...",
        "grammar_file": "fast_denser_1d_relu.grammar", "rates": {"add_layer": 0.25, "train_longer": 0.2},
        "split_sha256": "ab" * 32, "class_names": classes, "shards": named}))
    (d / "generations.json").write_text(json.dumps(rows))
    (d / "best.json").write_text(json.dumps(best))
    front = [rows[6], rows[4], rows[5]]  # 800 / 1200 / 3000 parameters
    (d / "front.json").write_text(json.dumps(front))
    (d / "state.json").write_text(json.dumps({"next_generation": 3, "parent": best["id"], "rng_state": [3, [1], None]}))
    models = [{"name": "cnn_k", "test": _metrics(3, rng), "parameters": 3000, "train_seconds": 7.5,
               "architecture": best["phenotype"],
               "efficiency": {"macs": 9000, "synops": 0, "energy_pj": 41400.0, "convention": CONVENTION},
               "search": {"id": best["id"], "generation": 2, "fitness": 0.9}},
              {"name": "logreg", "test": _metrics(3, rng), "parameters": 30, "train_seconds": 0.1}]
    (d / "results.json").write_text(json.dumps({
        "dataset": {"classes": classes, "shards": named, "n_samples": 90, "n_features": 50},
        "split": {"sizes": {"train": 60, "val": 10, "test": 20}, "seed": 42,
                  "test_class_counts": {"A": 7, "B": 7, "C": 6}},
        "models": models,
        "search": {"kind": "nas", "method": "Fast-DENSER (1+lambda) ES", "budget": "smoke", "settings": settings,
                   "n_individuals": len(rows), "n_failed": 1, "best": best, "front": front}}))
    (d / "best_model.keras").write_bytes(b"not read by the report")
    return d


def test_nas_report_has_its_settings_generations_front_and_results(tmp_path):
    shards = tmp_path / "shards"
    shards.mkdir()
    (shards / "manifest.json").write_text(json.dumps({"class_counts": {"A": 40, "B": 30, "C": 20, "D": 10}}))
    d = _fake_nas(tmp_path, shards=shards)
    page = main(["report", str(d), "--out", str(tmp_path / "out")])
    assert page == 0
    out = tmp_path / "out"
    md = (out / "report.md").read_text()
    images = _md_images(md)
    assert {"class_frequencies.png", "nas_generations.png", "nas_accuracy_parameters.png", "confusion_cnn_k.png",
            "confusion_logreg.png"} <= set(images)
    for ref in images:
        assert _is_png(out / ref), ref
    assert md.startswith("# Architecture search report: nas")
    heads = [h.split(" ")[0] for h in re.findall(r"^## \d+\. (.+)$", md, flags=re.M)]
    assert heads == ["Class", "Search", "Search", "Best", "Individuals", "Confusion", "Summary"]
    for setting in ("| generations | 3 |", "| lambda (offspring per generation) | 2 |",
                    "| time budget per individual (s) | 20 |", "| objectives | accuracy, parameters |",
                    "| grammar | fast_denser_1d_relu.grammar |"):
        assert setting in md, setting
    assert "layer:conv num-filters:30 act:relu learning:adam lr:0.001" in md  # the best phenotype
    table = md.split("## 5. Individuals", 1)[1].split("## 6.", 1)[0]
    body = [r for r in table.splitlines() if r.startswith("| g")]
    assert len(body) == 7 and body[5].startswith("| g2_i0 (best) | 2 | g1_i0 | dsge_layer:features@1; "
                                                 "macro_layer:learning | 3,000 | 90.00 | 5 | 2.5 |")
    assert "RuntimeError: boom" in body[2]
    assert "Pareto front (front.json" in md and "1 failed individuals are left out" in md
    rows = _summary_rows(md)
    assert [r[0] for r in rows] == ["cnn_k (Keras)", "logreg (baseline)"] and rows[0][6] == "9k MACs"
    assert "Note:" not in md and ".pt" not in md


def test_nas_figures_get_the_parent_line_and_the_front(tmp_path, monkeypatch):
    import spiking.report.figures as fg

    seen = {}
    for name in ("nas_generations", "nas_accuracy_parameters"):
        real = getattr(fg, name)
        monkeypatch.setattr(fg, name, lambda *a, _real=real, _name=name, **k: (seen.__setitem__(_name, (a, k)),
                                                                              _real(*a, **k))[1])
    d = _fake_nas(tmp_path)
    build_report(d, tmp_path / "out")
    (gens, fit, _), k = seen["nas_generations"]
    # parent after generation 0: g0_i0 (0.80), after 1: g1_i0 (0.85), after the last: the best (0.90)
    assert k["parent_line"] == [(0, 0.80), (1, 0.85), (2, 0.90)]
    assert k["failed"] == [False, False, True, False, False, False, False] and k["best"] == 5
    (params, fit, _), k = seen["nas_accuracy_parameters"]
    assert len(params) == 6 and 5000.0 not in params  # the failed individual is left out
    assert sorted(params[i] for i in k["front"]) == [800.0, 1200.0, 3000.0]
    md = (tmp_path / "out" / "report.md").read_text()
    assert "Class frequencies" in md and "the shards" in md and "Note:" in md  # no shards: skipped with a note


def test_nas_and_unknown_folders_are_one_line_errors(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.json").write_text("{}")
    assert main(["report", str(tmp_path / "empty")]) == 2
    err = _one_line_error(capsys)
    for files in ("config.json + results.json", "experiment.json + results.json + trials.json",
                  "nas.json + generations.json + results.json"):
        assert files in err, err
    d = _fake_nas(tmp_path)
    (d / "results.json").unlink()
    assert main(["report", str(d)]) == 2
    assert "has no results.json" in _one_line_error(capsys)
    d2 = _fake_nas(tmp_path / "x")
    _edit_json(d2 / "generations.json", _set([1, "parameters"], "many"))
    assert main(["report", str(d2), "--out", str(tmp_path / "out2")]) == 2
    err = _one_line_error(capsys)
    assert f"{d2 / 'generations.json'}:" in err and "[1].parameters" in err
    assert not (tmp_path / "out2").exists()
