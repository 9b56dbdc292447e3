"""Spatial layouts in the pipeline: ``--layout`` on the command line, the fitted layout saved with
every network and reapplied at evaluation, layouts in the experiment configs, and the
``layout_ablation`` experiment, on a small stratified subset of the real TCGA data."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from spiking.cli.main import main
from spiking.data.layout import make_layout
from spiking.data.layout.state import identity_state, layout_from_state, layout_state, same_layout

FAST = ["--top-k", "5", "--cnn-epochs", "15", "--snn-epochs", "2", "--num-steps", "5", "--batch-size", "32",
        "--patience", "0", "--device", "cpu", "--no-progress", "--seed", "3"]
LAYOUT_NAMES = ("identity", "square", "random", "correlation_1d", "embedding_2d")


# --------------------------------------------------------------------------- layout state
@pytest.mark.parametrize("name", LAYOUT_NAMES)
def test_layout_state_round_trip_places_features_identically(name):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 30)).astype(np.float32)
    kw = {"seed": 4} if name in ("random", "embedding_2d") else {}
    fitted = make_layout(name, **kw).fit(X)
    state = json.loads(json.dumps(layout_state(fitted)))  # JSON-safe
    again = layout_from_state(state)
    assert type(again) is type(fitted) and again.get_params() == fitted.get_params()
    np.testing.assert_array_equal(again.positions_, fitted.positions_)
    np.testing.assert_array_equal(again.transform(X), fitted.transform(X))
    np.testing.assert_array_equal(again.inverse_transform(again.transform(X)), X)


def test_damaged_layout_state_is_refused():
    state = layout_state(make_layout("random", seed=1).fit(np.eye(6, dtype=np.float32)))
    for bad in ({**state, "positions": state["positions"][:-1] + [state["positions"][0]]},  # duplicate
                {**state, "positions": [p + 100 for p in state["positions"]]},            # outside
                {**state, "name": "spiral"}, {"name": "random"}):
        with pytest.raises(ValueError):
            layout_from_state(bad)
    assert same_layout(identity_state(6), layout_state(make_layout("identity").fit(np.eye(6, dtype=np.float32))))
    assert not same_layout(identity_state(6), state)


# --------------------------------------------------------------------------- runs with a layout
@pytest.fixture(scope="module")
def runs(tcga_subset, tmp_path_factory):
    """Two runs on the same shards and split: ``rand`` (1-D random permutation, seed 1) and ``sq``
    (the square 2-D image, direct input only)."""
    root = tmp_path_factory.mktemp("layout_runs")
    shards, runs_dir = root / "shards", root / "runs"
    base = ["--shards", str(shards), "--runs-dir", str(runs_dir), *FAST]
    assert main(["run", "--matrix", str(tcga_subset["matrix"]), "--labels", str(tcga_subset["labels"]),
                 "--run-name", "rand", "--layout", "random", "--layout-seed", "1", "--encodings", "direct",
                 *base]) == 0
    assert main(["run", "--matrix", str(tcga_subset["matrix"]), "--labels", str(tcga_subset["labels"]),
                 "--run-name", "sq", "--layout", "square", *base]) == 0
    load = lambda n: json.loads((runs_dir / n / "results.json").read_text())  # noqa: E731
    return {"root": root, "shards": shards, "runs": runs_dir, "base": base, "rand": load("rand"), "sq": load("sq")}


def _by_name(results):
    return {m["name"]: m for m in results["models"]}


def test_runs_record_their_layout_in_every_network(runs):
    for run, name, shape_len in (("rand", "random", 1), ("sq", "square", 2)):
        d = runs["runs"] / run
        saved = json.loads((d / "layout.json").read_text())
        assert saved["name"] == name and len(saved["shape"]) == shape_len
        assert json.loads((d / "config.json").read_text())["data"]["layout"] == name
        for f in ("cnn.pt", "snn.pt"):
            meta = torch.load(d / f, weights_only=False)
            assert same_layout(meta["layout"], saved) and meta["input_shape"] == saved["shape"]
        by = _by_name(runs[run])
        assert by["cnn"]["layout"] == {"name": name, "input_shape": saved["shape"]}
    sq = _by_name(runs["sq"])
    assert set(sq) == {"cnn", "snn", "logreg", "linear_svm", "random_forest"}  # 2-D: the direct-input SNN only
    side = runs["sq"]["dataset"]["n_features"]
    assert sq["cnn"]["layout"]["input_shape"][0] ** 2 >= side > (sq["cnn"]["layout"]["input_shape"][0] - 1) ** 2


def test_2d_networks_learn_the_real_subset(runs):
    by = _by_name(runs["sq"])
    for name in ("cnn", "snn"):
        assert by[name]["test"]["balanced_accuracy"] > 0.2 + 0.3, (name, by[name]["test"])
    eff = by["snn"]["efficiency"]
    assert eff["synops"] > 0 and eff["macs"] == by["cnn"]["efficiency"]["layers"][0]["ops"]
    assert {n["layer"] for n in eff["neurons"]} == {"lif1", "lif2", "lif3", "lif_out"}


def test_logistic_regression_baseline_does_not_depend_on_the_layout(runs):
    assert _by_name(runs["rand"])["logreg"]["test"] == _by_name(runs["sq"])["logreg"]["test"]


def test_evaluation_applies_the_layout_saved_with_the_network(runs, capsys):
    """The run's own layout.json is replaced by another permutation: the networks' scores stay the
    same (each feeds its saved layout); then the CNN's saved layout is replaced: its score changes."""
    src = runs["runs"] / "rand"
    d = runs["runs"] / "rand_copy"
    shutil.copytree(src, d)
    other = layout_from_state(json.loads((d / "layout.json").read_text()))
    perm = np.random.default_rng(7).permutation(len(other.positions_))
    swapped = {**layout_state(other), "positions": [int(p) for p in other.positions_[perm]]}
    (d / "layout.json").write_text(json.dumps(swapped))
    assert main(["evaluate", "--runs-dir", str(runs["runs"]), "--run-name", "rand_copy"]) == 0
    again = _by_name(json.loads((d / "results.json").read_text()))
    before = _by_name(runs["rand"])
    for name in ("cnn", "snn"):
        assert again[name]["test"] == before[name]["test"], name

    # Direct check: the evaluated predictions are those of the network on its own layout's images.
    from spiking.artifacts.checkpoint import load_model, network_inputs, network_layout
    from spiking.data.ingest import load_dataset
    from spiking.data.preprocess.prepare import load_prepared

    prep = load_prepared(load_dataset(runs["shards"]), d)
    model, meta = load_model(d / "cnn.pt")
    X = network_layout(meta).transform(prep.features("test"))
    np.testing.assert_array_equal(X, network_inputs(meta, prep, "test"))
    with torch.no_grad():
        pred = model(torch.as_tensor(X)).argmax(1).numpy()
    cm = np.zeros_like(np.asarray(before["cnn"]["test"]["confusion_matrix"]))
    np.add.at(cm, (prep.y["test"], pred), 1)
    assert cm.tolist() == before["cnn"]["test"]["confusion_matrix"]

    ckpt = torch.load(d / "cnn.pt", weights_only=False)
    ckpt["layout"] = swapped
    torch.save(ckpt, d / "cnn.pt")
    assert main(["evaluate", "--runs-dir", str(runs["runs"]), "--run-name", "rand_copy"]) == 0
    tampered = _by_name(json.loads((d / "results.json").read_text()))
    assert tampered["cnn"]["test"] != before["cnn"]["test"]
    assert tampered["snn"]["test"] == before["snn"]["test"]


@pytest.mark.parametrize("extra, words", [
    (["--layout", "square", "--encodings", "rate"], "direct input encoding"),
    (["--layout", "square", "--image-shape", "40x40"], "only for the embedding_2d"),
    (["--layout", "embedding_2d", "--image-shape", "20x20"], "fewer than the"),
    (["--layout", "embedding_2d", "--image-shape", "1x2000"], "both sides"),
    (["--layout", "embedding_2d", "--image-shape", "2000x2001"], "pixels"),
    (["--layout", "random", "--layout-seed=-1"], "layout_seed"),
    (["--layout", "embedding_2d", "--layout-seed", str(2**32)], "layout_seed"),
])
def test_bad_layout_settings_stop_before_any_work(runs, capsys, extra, words):
    code = main(["train", "--run-name", "bad", *runs["base"], *extra])
    assert code == 2 and words in capsys.readouterr().err
    assert not (runs["runs"] / "bad").exists()


def test_bad_settings_leave_an_existing_run_untouched(runs, capsys):
    victim = runs["runs"] / "victim"
    shutil.copytree(runs["runs"] / "rand", victim)
    before = sorted(p.name for p in victim.iterdir())
    for bad in (["--layout", "random", "--layout-seed=-1"], ["--layout", "embedding_2d", "--image-shape", "1x2000"]):
        assert main(["train", "--run-name", "victim", *runs["base"], *bad]) == 2
    assert sorted(p.name for p in victim.iterdir()) == before
    # an SNN retrained on a run (config.json gone) must use the run's layout, not another one
    (victim / "config.json").unlink()
    code = main(["train", "--model", "snn", "--run-name", "victim", *runs["base"], "--layout", "square",
                 "--encodings", "direct"])
    assert code == 2 and "--layout random" in capsys.readouterr().err


@pytest.mark.parametrize("damage, words", [
    ("null", "not a JSON object"), ('{"name": "random", "params": {"bogus": 1}, "shape": [3], "positions": [0, 1, 2]}',
                                    "unknown parameters"),
    ('{"name": "square", "shape": [100000, 100000], "positions": [0]}', "pixels"),
    ('{"name": "identity", "shape": [3], "positions": [0.5, 1, 2]}', "integers"),
    ("{oops", "layout.json"),
])
def test_damaged_layout_json_is_a_clear_error(runs, capsys, damage, words):
    d = runs["runs"] / "damaged"
    shutil.rmtree(d, ignore_errors=True)
    shutil.copytree(runs["runs"] / "rand", d)
    (d / "layout.json").write_text(damage)
    assert main(["evaluate", "--runs-dir", str(runs["runs"]), "--run-name", "damaged"]) == 2
    err = capsys.readouterr().err
    assert words in err and "layout.json" in err and "Traceback" not in err


@pytest.mark.parametrize("change, words", [("string", "damaged"), ("drop", "carries no saved layout")])
def test_network_without_a_usable_layout_is_refused(runs, capsys, change, words):
    d = runs["runs"] / f"net_{change}"
    shutil.copytree(runs["runs"] / "rand", d)
    ckpt = torch.load(d / "cnn.pt", weights_only=False)
    if change == "drop":
        del ckpt["layout"]  # scored on file order, it would lose half its accuracy silently
    else:
        ckpt["layout"] = "random"
    torch.save(ckpt, d / "cnn.pt")
    assert main(["evaluate", "--runs-dir", str(runs["runs"]), "--run-name", d.name]) == 2
    assert words in capsys.readouterr().err


@pytest.mark.parametrize("command", ["ingest", "run"])
def test_old_ingest_layout_option_gets_a_hint(tmp_path, capsys, command):
    code = main([command, "--matrix", "m.csv", "--labels", "l.csv", "--out", str(tmp_path / "o"),
                 "--layout", "gdc"])
    assert code == 2 and "--format gdc" in capsys.readouterr().err


@pytest.mark.parametrize("text", ["4", "0x5", "ax3", "3x3x3"])
def test_image_shape_must_be_h_by_w(runs, capsys, text):
    with pytest.raises(SystemExit) as e:
        main(["train", "--run-name", "bad", *runs["base"], "--layout", "embedding_2d", "--image-shape", text])
    assert e.value.code == 2 and "image shape" in capsys.readouterr().err


def test_snn_retraining_keeps_the_runs_layout(runs, capsys):
    """``--model snn`` on a 2-D run needs the same layout settings (they are data settings)."""
    code = main(["train", "--model", "snn", "--run-name", "sq", *runs["base"], "--layout", "random"])
    assert code == 2 and "layout" in capsys.readouterr().err


# --------------------------------------------------------------------------- experiment configs
def test_experiment_data_layout_is_checked():
    from spiking.search.registry import ExperimentError, load_experiment, parse_experiment, validate_space

    raw = load_experiment("cnn_search").raw
    for data, words in (({"layout": "spiral"}, "unknown layout"),
                        ({"layout": "square", "layout_shape": [40, 40]}, "only for the embedding_2d"),
                        ({"layout": "embedding_2d", "layout_shape": [40]}, "layout_shape"),
                        ({"layout": "random", "layout_seed": 1.5}, "layout_seed"),
                        ({"top_k": True}, "top_k"), ({"fractions": [0.5, 0.5]}, "fractions"),
                        ({"fractions": [0.7, 0.2, 0.2]}, "fractions"), ({"log2": "yes"}, "log2"),
                        ({"seed": -1}, "seed"), ({"zscore": "gene"}, "zscore")):
        with pytest.raises(ExperimentError, match=words):
            parse_experiment("x", {**raw, "data": data})
    exp = parse_experiment("x", {**raw, "data": {"layout": "embedding_2d", "layout_shape": [33, 40]}})
    assert validate_space(exp, "paper", (33, 40), 10, n=200) >= 200  # every 2-D architecture valid
    with pytest.raises(ExperimentError, match="only layout = 'identity'"):
        parse_experiment("y", {**load_experiment("snn_k").raw, "data": {"layout": "square"}})


def test_trial_networks_follow_the_layout_of_the_experiment():
    from spiking.models.cnn2d import CNN2d
    from spiking.models.snn2d import SpikingCNN2d
    from spiking.search.trainable import build_trial_model

    state = layout_state(make_layout("square").fit(np.random.default_rng(0).random((20, 50), dtype=np.float32)))
    payload = {"L": 50, "input_shape": [8, 8], "layout": state, "n_classes": 3, "kind": "cnn", "arch": "preset",
               "seed": 0}
    cnn, _, meta = build_trial_model({"preset": "cnn_pt2"}, payload)
    assert isinstance(cnn, CNN2d) and meta["input_shape"] == [8, 8] and meta["layout"] == state
    transfer = {"state_dict": cnn.state_dict(), "arch": meta["arch"], "scales": None}
    snn, _, smeta = build_trial_model({"neuron": "leaky", "beta": 1.0, "num_steps": 4},
                                      {**payload, "kind": "snn", "arch": "transfer", "mode": "transfer",
                                       "loss": "ce", "transfer": transfer})
    assert isinstance(snn, SpikingCNN2d) and len(smeta["transferred"]) == 8
    assert torch.equal(snn.conv1.weight, cnn.conv1.weight)


# --------------------------------------------------------------------------- the ablation
def test_ablation_file_is_checked():
    from spiking.search.ablation import parse_ablation
    from spiking.search.registry import ExperimentError, load_experiment

    exp = load_experiment("layout_ablation")
    assert exp.kind == "layout_ablation" and set(exp.budget("small").layouts) == set(LAYOUT_NAMES)
    assert all(len(exp.budget(b).seeds) >= 3 for b in ("small", "paper"))
    raw = exp.raw
    for change, words in (({"layouts": ["identity", "spiral"]}, "layouts"), ({"seeds": []}, "seeds"),
                          ({"seeds": [0, 0]}, "seeds"), ({"data": {"layout": "square"}}, "leave"),
                          ({"snn": {"neuron": "izhikevich"}}, "neuron"), ({"extra": 1}, "unknown keys"),
                          ({"budgets": {"smoke": raw["budgets"]["smoke"]}}, "budgets"),
                          ({"cnn": 5}, "table"), ({"layouts": [["identity"]]}, "layouts"),
                          ({"seeds": [2**40]}, "seeds"), ({"snn": {"beta": [1]}}, "beta"),
                          ({"snn": {"normalize": "yes"}}, "normalize"), ({"cnn": {"arch_seed": -1}}, "arch_seed"),
                          ({"resources": {"cpus_per_trial": "1"}}, "resources"),
                          ({"data": {"layout_shape": [2000, 2001]}}, "pixels"),
                          ({"data": {"layout_seed": 1}}, "layout_seed")):
        with pytest.raises(ExperimentError, match=words):
            parse_ablation("x", {**raw, **change})


@pytest.fixture(scope="module")
def ablation(runs, tmp_path_factory):
    from spiking.search.ablation import run_ablation

    storage = tmp_path_factory.mktemp("ablation_storage")
    out = run_ablation("layout_ablation", shards=str(runs["shards"]), budget="smoke", storage=str(storage),
                       ray_num_cpus=2, verbose=0)
    return {"out": out, "dir": storage / "layout_ablation"}


def test_ablation_scores_every_layout_and_seed_once(ablation, runs):
    res = ablation["out"]["results"]
    ab = res["ablation"]
    seeds = ab["seeds"]
    assert ab["layouts"] == list(LAYOUT_NAMES[:1]) + ["random", "correlation_1d", "square", "embedding_2d"]
    assert ab["n_trials"] == len(ab["layouts"]) * len(seeds) and ab["n_errors"] == 0
    nets = [m for m in res["models"] if "ablation" in m]
    assert len(nets) == 2 * ab["n_trials"]
    for row in ab["rows"]:
        for role in ("cnn", "snn"):
            mine = [m["test"]["balanced_accuracy"] for m in nets
                    if m["ablation"]["layout"] == row["layout"] and m["ablation"]["role"] == role]
            assert len(mine) == len(seeds) == row[role]["n"]
            assert row[role]["balanced_accuracy_mean"] == pytest.approx(np.mean(mine))
            assert row[role]["balanced_accuracy_sd"] == pytest.approx(np.std(mine, ddof=1))
        assert row["snn"]["synops_mean"] > 0 and row["cnn"]["synops_mean"] == 0
        shape = row["cnn"]["input_shape"]
        assert len(shape) == (2 if row["layout"] in ("square", "embedding_2d") else 1)
    # every network holds its own layout and the experiment's split
    exp_json = json.loads((ablation["dir"] / "experiment.json").read_text())
    for m in nets:
        meta = torch.load(ablation["dir"] / m["ablation"]["file"], weights_only=False)
        assert meta["layout"]["name"] == m["ablation"]["layout"] == m["layout"]["name"]
        assert meta["split_sha256"] == exp_json["split_sha256"]
    # random: another permutation per seed (layout seed = training seed)
    perms = {json.dumps(torch.load(ablation["dir"] / m["ablation"]["file"], weights_only=False)["layout"]["positions"])
             for m in nets if m["ablation"]["layout"] == "random"}
    assert len(perms) == len(seeds)
    # one baseline for every layout (it sees the features in file order)
    assert [m["name"] for m in res["models"]].count("logreg") == 1


def test_ablation_writes_its_table_and_figures(ablation):
    d = ablation["dir"]
    table = (d / "table.md").read_text().strip().splitlines()
    assert len(table) == 2 + 5 + 1 and table[-1].startswith("| logistic regression")
    assert all(f"| {name} |" in "\n".join(table) for name in LAYOUT_NAMES)
    assert (d / "figures" / "accuracy.png").stat().st_size > 0
    assert json.loads((d / "results.json").read_text())["ablation"]["train_rows"] == \
        json.loads((d / "experiment.json").read_text())["train_rows"]
    for name in LAYOUT_NAMES:
        for suffix in ("feature_map.png", "feature_map.csv", "sample.png", "class_means.png"):
            assert (d / "figures" / f"{name}_{suffix}").stat().st_size > 0
    assert len(json.loads((d / "trials.json").read_text())) == 10


def test_ablation_refuses_an_existing_folder_and_other_experiments(ablation, runs):
    from spiking.search.ablation import run_ablation
    from spiking.search.runner import SearchError, run_experiment

    with pytest.raises(SearchError, match="already holds"):
        run_ablation("layout_ablation", shards=str(runs["shards"]), storage=str(ablation["dir"].parent))
    with pytest.raises(SearchError, match="not a layout ablation"):
        run_ablation("cnn_pt1", shards=str(runs["shards"]), storage=str(ablation["dir"].parent))
    with pytest.raises(SearchError, match="layout ablation"):
        run_experiment("layout_ablation", shards=str(runs["shards"]), storage=str(ablation["dir"].parent))


def test_ablation_report_shows_the_table_and_the_layouts(ablation, tmp_path):
    out = tmp_path / "report"
    assert main(["report", str(ablation["dir"]), "--out", str(out)]) == 0
    md = (out / "report.md").read_text()
    section = md.split("## 2. Layout ablation", 1)[1].split("\n## ", 1)[0]
    table = (ablation["dir"] / "table.md").read_text().strip().splitlines()
    for line in table[2:]:  # the same rows as table.md
        assert line.split(" | ")[3] in section
    assert "(Keras)" not in md and "square_seed0:cnn (CNN_PT, square 33x33)" in md
    for name in ("accuracy.png", *(f"{n}_{s}" for n in LAYOUT_NAMES for s in ("feature_map.png", "sample.png",
                                                                                "class_means.png"))):
        assert f"(ablation_{name})" in section and (out / f"ablation_{name}").stat().st_size > 0
