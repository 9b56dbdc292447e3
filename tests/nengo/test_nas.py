"""The grammar-based architecture search (`spiking nas`) and the snn_k experiment, end to end on a small
stratified subset of the real TCGA data (tests/conftest.py), with a local Ray of 2 CPUs."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from spiking.data.ingest import SHARED_TCGA, ingest
from spiking.search.evolution import FAIL_IDS_VAR, NASError, NASSettings, has_relu, run_nas
from spiking.specs.phenotype import parse_phenotype

# Small and quick: 2 generations, lambda 2, a few seconds of training per individual.
SETTINGS = dict(generations=2, offspring=2, time_budget_s=6.0, max_params=300_000, seed=7)


@pytest.fixture(scope="module")
def shards(tcga_subset, tmp_path_factory):
    out = tmp_path_factory.mktemp("nas") / "shards"
    ingest(tcga_subset["matrix"], tcga_subset["labels"], out, **SHARED_TCGA)
    return str(out)


@pytest.fixture(scope="module")
def nas(shards, tmp_path_factory):
    """One search in-process; individual g1_i1's training is made to fail."""
    store = tmp_path_factory.mktemp("store")
    os.environ[FAIL_IDS_VAR] = "g1_i1"  # read in the Ray workers, which inherit the driver's environment
    try:
        out = run_nas(shards=shards, storage=str(store), name="nas", ray_num_cpus=2, log=lambda *a: None,
                      grammar_path="fast_denser_1d_relu",
                      settings=NASSettings(**SETTINGS, objectives=("accuracy", "parameters"), require_relu=True))
    finally:
        del os.environ[FAIL_IDS_VAR]
    return {"store": store, "folder": store / "nas", "out": out, "shards": shards}


def test_search_completes_with_rows_models_and_test_scores(nas):
    folder, out = nas["folder"], nas["out"]
    rows = out["rows"]
    assert [r["generation"] for r in rows] == [0, 0, 0, 1, 1]  # lambda + 1 random, then lambda offspring
    meta = json.loads((folder / "nas.json").read_text())
    L, C = meta["L"], len(meta["class_names"])
    for r in rows:
        assert has_relu(r["phenotype"])  # require_relu: every network has something to spike
        ph = parse_phenotype(r["phenotype"])
        assert r["parameters"] == ph.count_parameters(L, C) <= SETTINGS["max_params"]
        assert 0.0 <= r["fitness"] <= 1.0 and r["seconds"] > 0
        if r["generation"] == 1:
            assert r["parent"] is not None and r["mutations"]
    ok = [r for r in rows if not r["error"]]
    assert all(r["epochs"] >= 1 and (folder / "individuals" / f"{r['id']}.keras").is_file() for r in ok)
    # the failed individual is unfit, with its reason, and the search went on
    failed = {r["id"]: r for r in rows if r["error"]}
    assert set(failed) == {"g1_i1"} and failed["g1_i1"]["fitness"] == 0.0
    assert "failure injected" in failed["g1_i1"]["error"]
    # the parent is the fittest individual (ties: fewer parameters)
    best = out["best"]
    assert best["fitness"] == max(r["fitness"] for r in rows)
    assert best["fitness"] > 1 / C  # better than chance on validation
    # per-generation output
    with open(folder / "generations.csv") as fh:
        table = list(csv.DictReader(fh))
    assert [t["id"] for t in table] == [r["id"] for r in rows]
    assert {"phenotype", "fitness", "parameters", "epochs", "seconds"} <= set(table[0])
    assert json.loads((folder / "best.json").read_text())["id"] == best["id"]
    state = json.loads((folder / "state.json").read_text())
    assert state["done"] and state["next_generation"] == 2 and state["parent"] == best["id"]
    # accuracy/size front: no member dominated by another individual
    front = json.loads((folder / "front.json").read_text())
    for f in front:
        assert not any(r["fitness"] >= f["fitness"] and r["parameters"] <= f["parameters"]
                       and (r["fitness"], -r["parameters"]) != (f["fitness"], -f["parameters"]) for r in ok)
    # the best network scored once on the test split beside the baseline
    res = json.loads((folder / "results.json").read_text())
    names = [m["name"] for m in res["models"]]
    assert names == ["cnn_k", "logreg"]
    cnn = res["models"][0]
    assert cnn["architecture"] == best["phenotype"] and cnn["parameters"] == best["parameters"]
    assert cnn["test"]["balanced_accuracy"] > 1 / C + 0.2
    assert cnn["efficiency"]["energy_pj"] == pytest.approx(best["macs"] * 4.6)
    assert res["search"]["n_failed"] == 1 and res["search"]["split_sha256"] == meta["split_sha256"]


def test_existing_search_needs_resume_or_overwrite(nas):
    with pytest.raises(NASError, match="--resume"):
        run_nas(shards=nas["shards"], storage=str(nas["store"]), name="nas", settings=NASSettings(**SETTINGS))
    # a resume with other settings or another grammar is refused before anything runs
    with pytest.raises(NASError, match="grammar"):
        run_nas(shards=nas["shards"], storage=str(nas["store"]), name="nas", resume=True,
                settings=NASSettings(**SETTINGS, objectives=("accuracy", "parameters"), require_relu=True))
    other = NASSettings(**{**SETTINGS, "offspring": 3}, objectives=("accuracy", "parameters"), require_relu=True)
    with pytest.raises(NASError, match="settings"):
        run_nas(shards=nas["shards"], storage=str(nas["store"]), name="nas", settings=other, resume=True)


def test_malformed_grammar_stops_the_search_with_its_line(nas, tmp_path):
    bad = tmp_path / "bad.grammar"
    bad.write_text("<features> ::= layer:batch-norm\n<classification> layer:dropout [rate,float,1,0,0.5]\n")
    with pytest.raises(ValueError, match=r"line 2"):
        run_nas(shards=nas["shards"], storage=str(tmp_path / "s"), settings=NASSettings(**SETTINGS),
                grammar_path=str(bad))


def _spiking_cli() -> list[str]:
    exe = Path(sys.executable).with_name("spiking")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "spiking.cli.main"]


def test_killed_search_resumes_after_its_last_generation(shards, tmp_path):
    """`spiking nas` SIGKILLed (with its Ray) once generation 0 is saved, then --resume'd to the end."""
    store = tmp_path / "store"
    folder = store / "nas"
    args = [*_spiking_cli(), "nas", "--generations", "2", "--lambda", "2", "--time-budget", "6",
            "--max-params", "300000", "--seed", "11", "--storage", str(store), "--shards", shards,
            "--ray-cpus", "2"]
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", FAIL_IDS_VAR)}
    env["RAY_TMPDIR"] = tempfile.mkdtemp(prefix="spk-nas-")
    log = tmp_path / "driver.log"
    with open(log, "w") as fh:
        driver = subprocess.Popen(args, env=env, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        while True:
            state = folder / "state.json"
            if state.is_file():
                try:
                    if json.loads(state.read_text())["next_generation"] >= 1:
                        break
                except ValueError:  # caught mid-write
                    pass
            assert driver.poll() is None, f"driver exited early ({driver.returncode}):\n{log.read_text()[-3000:]}"
            assert time.monotonic() < deadline, f"generation 0 not saved in 300 s:\n{log.read_text()[-3000:]}"
            time.sleep(0.05)
        os.killpg(driver.pid, signal.SIGKILL)
        driver.wait(timeout=30)
    finally:
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
    assert driver.returncode == -signal.SIGKILL
    assert not (folder / "results.json").exists()
    gen0 = {p.name: p.read_bytes() for p in (folder / "individuals").glob("g0_*.json")}
    assert len(gen0) == 3
    done = subprocess.run([*args, "--resume"], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "resuming" in done.stdout and "generation 1:" in done.stdout
    assert "generation 0:" not in done.stdout  # generation 0 was not run again
    rows = json.loads((folder / "generations.json").read_text())
    assert [r["generation"] for r in rows] == [0, 0, 0, 1, 1]
    assert {p.name: p.read_bytes() for p in (folder / "individuals").glob("g0_*.json")} == gen0
    assert (folder / "results.json").is_file()


# --------------------------------------------------------------------------- snn_k on the search's CNN_K
@pytest.fixture(scope="module")
def snn_k(nas):
    from spiking.search.snn_k import run_snn_k

    return run_snn_k("snn_k", shards=nas["shards"], budget="smoke", storage=str(nas["store"]), verbose=0,
                     ray_num_cpus=2, seed=3)


def test_snn_k_tunes_the_conversion_of_the_searched_cnn(nas, snn_k):
    folder = nas["store"] / "snn_k"
    trials = json.loads((folder / "trials.json").read_text())
    assert len(trials) == 4 and all(t["error"] is None for t in trials)
    for t in trials:
        assert t["config"]["num_steps"] in (10, 30) and t["config"]["neuron"] == "SpikingRectifiedLinear"
    best = json.loads((folder / "best_config.json").read_text())
    assert best["val_balanced_accuracy"] == max(t["best_val_balanced_accuracy"] for t in trials)
    trade = json.loads((folder / "tradeoff_config.json").read_text())
    assert trade["config"]["num_steps"] <= best["config"]["num_steps"]
    assert trade["val_balanced_accuracy"] >= best["val_balanced_accuracy"] - 0.01 - 1e-9
    assert any("average" in n.lower() for n in best["notes"]) or not any(
        "pool-max" in r for r in [nas["out"]["best"]["phenotype"]])  # max-pool replacement is reported
    res = json.loads((folder / "results.json").read_text())
    names = [m["name"] for m in res["models"]]
    assert names == ["cnn_k", "snn_k:best", "snn_k:tradeoff", "logreg"]
    cnn, snn = res["models"][0], res["models"][1]
    # the Keras network here is the one the search exported
    nas_res = json.loads((nas["folder"] / "results.json").read_text())
    assert cnn["test"]["balanced_accuracy"] == pytest.approx(nas_res["models"][0]["test"]["balanced_accuracy"])
    eff = snn["efficiency"]
    assert eff["energy_pj"] == pytest.approx(eff["macs"] * 4.6 + eff["synops"] * 0.9)
    assert eff["energy_ratio_vs_cnn"] == pytest.approx(eff["energy_pj"] / cnn["efficiency"]["energy_pj"])
    assert snn["mean_firing_rate_hz"] > 0 and res["search"]["weights"]["split_verified"]
    assert (folder / "activity.png").stat().st_size > 10_000


def test_snn_k_refuses_weights_from_another_split(nas, snn_k, tmp_path):
    from spiking.search.snn_k import SearchError, run_snn_k

    meta = json.loads((nas["folder"] / "nas.json").read_text())
    fake = tmp_path / "other"
    fake.mkdir()
    (fake / "best_model.keras").write_bytes((nas["folder"] / "best_model.keras").read_bytes())
    (fake / "nas.json").write_text(json.dumps({**meta, "split_sha256": "0" * 64}))
    (fake / "results.json").write_text("{}")  # a finished search
    with pytest.raises(SearchError, match="different split"):
        run_snn_k("snn_k", shards=nas["shards"], storage=str(tmp_path / "s"), weights=str(fake), verbose=0)
    (fake / "results.json").unlink()
    with pytest.raises(SearchError, match="has not finished"):
        run_snn_k("snn_k", shards=nas["shards"], storage=str(tmp_path / "s1"), weights=str(fake), verbose=0)
    with pytest.raises(SearchError, match="no finished `spiking nas"):
        run_snn_k("snn_k", shards=nas["shards"], storage=str(tmp_path / "s2"), weights="missing_run", verbose=0)


def test_every_mutation_builds_in_keras_with_the_phenotype_parameter_count():
    """Random individuals and chains of mutations, under both shipped grammars, build Keras networks for L."""
    import random

    from spiking.keras.phenotype import build_keras_model
    from spiking.search.evolution import read_grammar
    from spiking.search.genotype import MutationRates, Structure, mutate, random_individual
    from spiking.search.grammar import Grammar

    built = 0
    for name in ("fast_denser_1d", "fast_denser_1d_relu"):
        grammar = Grammar.from_text(*read_grammar(name))
        rng = random.Random(name)
        for L in (1046, 61):
            ind = random_individual(grammar, Structure(), rng, L, 10, 500_000, id="r")
            for k in range(4):
                ind = mutate(ind, grammar, Structure(), MutationRates(), rng, L, 10, 500_000, id=f"m{k}")
                phen = ind.phenotype(grammar)
                model = build_keras_model(phen, L, 10)
                assert model.count_params() == parse_phenotype(phen).count_parameters(L, 10) <= 500_000
                assert model.output_shape == (None, 10)
                built += 1
    assert built == 16


def test_nengo_neuron_names_of_the_registry_are_the_converters():
    from spiking.keras.conversion import NEURON_TYPES
    from spiking.search.registry import load_experiment
    from spiking.specs.names import NENGO_NEURONS

    assert set(NENGO_NEURONS) == set(NEURON_TYPES)
    assert set(load_experiment("snn_k").space["neuron"]["values"]) <= set(NEURON_TYPES)


def test_resume_of_a_finished_search_does_not_score_the_test_split_again(nas):
    before = (nas["folder"] / "results.json").read_bytes()
    out = run_nas(shards=nas["shards"], storage=str(nas["store"]), name="nas", resume=True, log=lambda *a: None,
                  grammar_path="fast_denser_1d_relu",
                  settings=NASSettings(**SETTINGS, objectives=("accuracy", "parameters"), require_relu=True))
    assert (nas["folder"] / "results.json").read_bytes() == before
    assert out["best"]["id"] == nas["out"]["best"]["id"] and "cnn_k" in out["table"]


def test_snn_k_validation_rows_are_a_stratified_subset():
    import numpy as np

    from spiking.search.snn_k import eval_rows

    y = np.repeat(np.arange(5), [60, 10, 40, 20, 70])  # grouped by class, as the split orders them
    rows = eval_rows(y, 40, seed=0)
    assert len(rows) == 40 == len(set(rows.tolist())) and np.all(np.diff(rows) > 0)
    counts = np.bincount(y[rows], minlength=5)
    assert np.all(np.abs(counts - 40 * np.bincount(y) / len(y)) <= 1)  # every class, in proportion
    assert np.array_equal(eval_rows(y, None, 0), np.arange(200)) and np.array_equal(eval_rows(y, 500, 0), np.arange(200))


# --------------------------------------------------------------------------- bad input (found by trying to break it)
@pytest.mark.parametrize("name", [".", "..", "../x", "/tmp/x", "a/b", ""])
def test_a_search_name_cannot_leave_or_delete_the_storage(nas, name, tmp_path):
    keep = tmp_path / "store" / "other_experiment"
    keep.mkdir(parents=True)
    (keep / "results.json").write_text("{}")
    with pytest.raises(NASError, match="plain folder name"):
        run_nas(shards=nas["shards"], storage=str(tmp_path / "store"), name=name, overwrite=True,
                settings=NASSettings(**SETTINGS))
    assert (keep / "results.json").read_text() == "{}"


def test_require_relu_with_a_grammar_without_relu_stops(nas, tmp_path):
    from spiking.search.evolution import read_grammar

    text, _ = read_grammar("fast_denser_1d")
    no_relu = tmp_path / "no_relu.grammar"
    no_relu.write_text(text.replace("<activation> ::= act:linear | act:relu | act:sigmoid",
                                    "<activation> ::= act:linear | act:sigmoid"))
    with pytest.raises(NASError, match="no network with a ReLU layer"):
        run_nas(shards=nas["shards"], storage=str(tmp_path / "s"), grammar_path=str(no_relu), ray_num_cpus=2,
                settings=NASSettings(**SETTINGS, require_relu=True), log=lambda *a: None)


def test_settings_out_of_range_are_refused_by_the_command_line(nas, capsys):
    from spiking.cli.main import main

    base = ["nas", "--shards", nas["shards"], "--storage", str(nas["store"]), "--name", "never"]
    for extra, fragment in ((["--generations", "0"], "generations and offspring must be >= 1"),
                            (["--lambda", "0"], "generations and offspring must be >= 1"),
                            (["--time-budget", "0"], "time budget"),
                            (["--max-train-rows", "1"], "max_train_rows must be >= 2"),
                            (["--seed", "-1"], "seed must be >= 0"),
                            (["--cpus-per-individual", "4", "--ray-cpus", "2"], "asks for 4 CPUs")):
        assert main(base + extra) == 2, extra
        assert fragment in capsys.readouterr().err, extra
    assert not (nas["store"] / "never" / "state.json").exists()  # refused before anything ran


def test_snn_k_resume_with_other_weights_is_refused_and_a_finished_one_is_not_rescored(nas, snn_k, tmp_path):
    from spiking.search.snn_k import SearchError, run_snn_k

    folder = nas["store"] / "snn_k"
    before = (folder / "results.json").read_bytes()
    out = run_snn_k("snn_k", shards=nas["shards"], budget="smoke", storage=str(nas["store"]), resume=True, verbose=0,
                    ray_num_cpus=2, seed=3)
    assert (folder / "results.json").read_bytes() == before and "snn_k:best" in out["table"]
    other = tmp_path / "other.keras"
    other.write_bytes((nas["folder"] / "individuals" / "g0_i0.keras").read_bytes())
    with pytest.raises(SearchError, match="another weights"):
        run_snn_k("snn_k", shards=nas["shards"], budget="smoke", storage=str(nas["store"]), resume=True,
                  weights=str(other), verbose=0, seed=3)
    with pytest.raises(SearchError, match="another budget"):
        run_snn_k("snn_k", shards=nas["shards"], budget="paper", storage=str(nas["store"]), resume=True,
                  verbose=0, seed=3)
