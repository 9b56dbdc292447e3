"""Searches with Ray Tune (spiking.search): registry, spaces, storage, and smoke runs on a real-data subset.

The Ray tests share one local Ray (2 CPUs, no dashboard) and one storage folder:
``cnn_search`` and ``cnn_pt2`` at smoke budget, then ``snn_pt2`` transferring
from the finished ``cnn_pt2`` in the same storage. The kill-and-resume test runs
``spiking tune`` as separate driver processes, each with its own embedded Ray
(own ``RAY_TMPDIR``), so killing one never touches the test's Ray.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna
import pytest
import torch

from spiking.artifacts.checkpoint import load_model
from spiking.artifacts.storage import StorageError, open_storage
from spiking.data.ingest import SHARED_TCGA, ingest
from spiking.models import CNN1d, derive_architecture, preset, stage_lengths
from spiking.search import (
    ExperimentError,
    SearchError,
    add_tune_parser,
    list_experiments,
    load_experiment,
    run_experiment,
    validate_space,
)
from spiking.search.registry import (
    CNN_SEARCH_PARAMS,
    clean_config,
    parse_experiment,
    sample_configs,
    suggest_config,
)
from spiking.search.trainable import CHECKPOINT_FILE

EXPECTED = {"cnn_search", "cnn_pt1", "cnn_pt2", "snn_pt1", "snn_pt2", "snn_mse_pt1", "snn_mse_pt2", "snn_k",
            "layout_ablation"}


# --------------------------------------------------------------------------- registry and spaces
def test_unknown_experiment_lists_the_valid_names():
    with pytest.raises(ValueError) as e:
        load_experiment("cnn_pt3")
    msg = str(e.value)
    assert "cnn_pt3" in msg and all(name in msg for name in EXPECTED)


def test_every_registry_file_loads_with_its_budgets():
    assert set(list_experiments()) == EXPECTED
    for name in list_experiments():
        exp = load_experiment(name)
        if exp.kind == "layout_ablation":  # a grid, not a search: tests/test_layout_pipeline.py runs it
            assert not exp.weight_transfer and exp.environment == "torch"
            continue
        assert exp.metric == "val_balanced_accuracy" and exp.mode == "max"
        if exp.kind == "snn_k":  # tests/nengo/test_nas.py runs it; here only its file
            assert exp.environment == "nengo" and exp.weight_transfer and exp.weights == "nas"
            assert all(exp.budget(b).epochs == 1 for b in ("smoke", "small", "paper"))
            assert validate_space(exp, "paper", 1046, 10) == 4 * 5 * 5 * 6  # every combination checked
            continue
        assert exp.environment == "torch"
        smoke, paper = exp.budget("smoke"), exp.budget("paper")
        assert paper.epochs == (50 if exp.kind == "cnn" else 30)
        assert 2 <= smoke.epochs <= 4 and smoke.trials <= 6 and smoke.max_train_rows
        arch = preset(exp.weights, 1046) if exp.weight_transfer else None
        for b in ("smoke", "small", "paper"):
            assert validate_space(exp, b, 1046, 10, n=50, transfer_arch=arch) >= 1
        with pytest.raises(ExperimentError, match="no budget 'huge'"):
            exp.budget("huge")


@pytest.mark.parametrize("L", [1046, 40])
def test_cnn_search_space_never_yields_an_invalid_architecture(L):
    exp = load_experiment("cnn_search")
    for budget in ("smoke", "paper"):
        configs = sample_configs(exp, budget, n=1500, seed=L)
        seeds = set()
        for c in configs:
            arch = derive_architecture(L, **{k: c[k] for k in CNN_SEARCH_PARAMS}, rng=c["arch_seed"])
            assert min(stage_lengths(L, arch)) >= 1
            seeds.add(c["arch_seed"])
        assert len(seeds) == len(configs)  # a different dependent-size seed per trial
    # The corners of the space (all low, all high) are among the checked configs.
    lows = {k: v["low"] for k, v in exp.space.items()}
    assert any(all(c[k] == v for k, v in lows.items()) for c in sample_configs(exp, "paper", n=0))
    assert validate_space(exp, "paper", L, 10, n=500) == 502
    # The same sampling code through real Optuna (what the search uses) stays inside the space.
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0), direction="maximize")
    for _ in range(100):
        t = study.ask()
        c = suggest_config(t, space=exp.space, exclude=exp.exclude, fixed=exp.fixed, seed=1, searched_arch=True)
        stage_lengths(L, derive_architecture(L, **{k: c[k] for k in CNN_SEARCH_PARAMS}, rng=c["arch_seed"]))
        study.tell(t, 0.5)


def test_snn_space_avoids_lapicque_with_beta_one():
    exp = load_experiment("snn_pt2")
    configs = sample_configs(exp, "paper")
    assert len(configs) == 7 * 4 * 5 * 3 - 4 * 5  # all combinations but Lapicque x beta 1.0
    assert not [c for c in configs if c["neuron"] == "lapicque" and c["beta"] == 1.0]
    assert {c["beta"] for c in configs if c["neuron"] == "leaky"} >= {1.0}
    # Through Optuna: the excluded value is never drawn; the plain name `beta` is always in the config.
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0), direction="maximize")
    seen = set()
    for _ in range(300):
        t = study.ask()
        c = suggest_config(t, space=exp.space, exclude=exp.exclude, fixed=exp.fixed, seed=0, searched_arch=False)
        assert not (c["neuron"] == "lapicque" and c["beta"] == 1.0)
        seen.add((c["neuron"], c["beta"]))
        assert set(clean_config(c)) == {"neuron", "beta", "lr", "num_steps", "population"}
        study.tell(t, 0.5)
    assert ("lapicque", 0.95) in seen and ("leaky", 1.0) in seen


def test_snn_k_file_is_checked_like_the_others():
    raw = load_experiment("snn_k").raw
    bad = json.loads(json.dumps(raw))
    bad["space"]["neuron"]["values"].append("Izhikevich")
    with pytest.raises(ExperimentError, match="neuron must be one of"):
        validate_space(parse_experiment("x", bad), "paper", 1046, 10)
    bad = json.loads(json.dumps(raw))
    bad["space"]["num_steps"]["values"] = [0, 10]
    with pytest.raises(ExperimentError, match="num_steps"):
        validate_space(parse_experiment("x", bad), "paper", 1046, 10)
    bad = json.loads(json.dumps(raw))
    del bad["environment"]  # a NengoDL experiment cannot run in the torch environment
    with pytest.raises(ExperimentError, match="environment = 'nengo'"):
        parse_experiment("x", bad)
    bad = json.loads(json.dumps(raw))
    bad["scheduler"]["type"] = "asha"  # nothing is trained: no epochs to stop at
    with pytest.raises(ExperimentError, match="fifo"):
        parse_experiment("x", bad)


def test_nengo_commands_refuse_the_torch_environment_clearly(capsys):
    from spiking.cli.main import main

    assert main(["tune", "snn_k", "--shards", "/nonexistent"]) == 2
    err = capsys.readouterr().err
    assert "experiment snn_k needs tensorflow" in err and "make install-nengo" in err
    assert main(["nas", "--shards", "/nonexistent"]) == 2
    assert ".venv-nengo/bin/spiking" in capsys.readouterr().err


def test_malformed_experiment_files_are_refused():
    raw = load_experiment("cnn_search").raw
    bad = json.loads(json.dumps(raw))
    bad["budgets"]["smoke"]["space"] = {"w1": {"high": 512}}  # wider than the file's space
    with pytest.raises(ExperimentError, match="must lie inside"):
        parse_experiment("x", bad)
    bad = json.loads(json.dumps(raw))
    bad["space"]["wd1"]["high"] = 100  # outside the study's CNN_PT space
    with pytest.raises(ExperimentError, match="search space"):
        parse_experiment("x", bad)
    bad = json.loads(json.dumps(load_experiment("snn_pt2").raw))
    bad["fixed"]["population"] = 25  # weight transfer cannot take a population-coded output
    with pytest.raises(ExperimentError, match="population"):
        validate_space(parse_experiment("x", bad), "smoke", 1046, 5, transfer_arch=preset("cnn_pt2", 1046))
    bad = json.loads(json.dumps(load_experiment("snn_pt2").raw))
    del bad["exclude"]  # then Lapicque with beta = 1.0 can be drawn, which the model refuses
    with pytest.raises(ExperimentError, match="lapicque"):
        validate_space(parse_experiment("x", bad), "smoke", 1046, 5, transfer_arch=preset("cnn_pt2", 1046))


# --------------------------------------------------------------------------- storage
def test_storage_refuses_a_file_where_a_folder_should_be(tmp_path):
    f = tmp_path / "taken"
    f.write_text("x")
    with pytest.raises(StorageError, match="is a file"):
        open_storage(str(f))
    with pytest.raises(StorageError, match="not writable"):
        open_storage(str(f / "tune"))
    fs, path = open_storage(str(tmp_path / "new" / "tune"))
    assert Path(path).is_dir() and list(Path(path).iterdir()) == []  # probe written and removed


@pytest.fixture
def moto_s3(monkeypatch):
    """A local S3 (moto server) with bucket ``spiking-test``; S3 settings in the environment as a user would set them."""
    import boto3
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        _, port = server.get_host_and_port()
        endpoint = f"http://127.0.0.1:{port}"
        for k, v in {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_REGION": "us-east-1",
                     "SPIKING_S3_ENDPOINT": endpoint}.items():
            monkeypatch.setenv(k, v)
        monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
        s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
        s3.create_bucket(Bucket="spiking-test")
        yield s3
    finally:
        server.stop()


def test_storage_on_s3_through_environment_settings(moto_s3):
    fs, path = open_storage("s3://spiking-test/runs/tune")
    assert path == "spiking-test/runs/tune" and fs.type_name == "s3"
    assert moto_s3.list_objects_v2(Bucket="spiking-test", Prefix="runs/tune/.spiking-probe")["KeyCount"] == 0
    with pytest.raises(StorageError, match="not writable"):
        open_storage("s3://no-such-bucket/x")


# --------------------------------------------------------------------------- trainable pieces
def test_optimizer_state_is_captured_and_restored():
    from spiking.specs.train import TrainConfig
    from spiking.training import CNNObjective, train

    g = torch.Generator().manual_seed(0)
    X = torch.rand(24, 1, 64, generator=g).numpy()
    y = (torch.arange(24) % 3).numpy()
    arch = preset("cnn_pt2", 64, seed=0)
    cfg = TrainConfig(epochs=2, batch_size=8, lr=1e-3, patience=0, seed=0, device="cpu", progress=False)
    torch.manual_seed(0)
    model = CNN1d(64, arch, 3)
    states = []
    train(model, CNNObjective(), X, y, X, y, cfg, epoch_callback=lambda rec, m, opt: states.append(opt.state_dict()))
    state = states[-1]
    assert all(int(s["step"]) == 6 for s in state["state"].values())
    cfg.epochs = 1
    after = []
    train(model, CNNObjective(), X, y, X, y, cfg, optimizer_state=state,
          epoch_callback=lambda rec, m, opt: after.append(opt.state_dict()))
    assert all(int(s["step"]) == 9 for s in after[-1]["state"].values())  # Adam continued, not restarted


# --------------------------------------------------------------------------- smoke runs with Ray
@pytest.fixture(scope="module")
def shards(tcga_subset, tmp_path_factory):
    out = tmp_path_factory.mktemp("search") / "shards"
    ingest(tcga_subset["matrix"], tcga_subset["labels"], out, **SHARED_TCGA)
    return str(out)


@pytest.fixture(scope="module")
def local_ray():
    import ray

    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def searched(local_ray, shards, tmp_path_factory):
    store = tmp_path_factory.mktemp("tune")
    kw = dict(shards=shards, budget="smoke", storage=str(store), verbose=0, seed=42)
    # One trial at a time: the seeded TPE then sees every finished trial before the next suggestion and the
    # ASHA rungs fill in a fixed order, so the outcome does not depend on timing (and it is faster on 2 cores).
    out = {"cnn_search": run_experiment("cnn_search", **kw, max_concurrent=1)}
    out.update({name: run_experiment(name, **kw) for name in ("cnn_pt2", "snn_pt2")})  # snn_pt2: 2 at a time
    return {"storage": store, "kw": kw, **out}


def _trial_dirs(exp_dir: Path) -> list[Path]:
    return sorted(p for p in exp_dir.iterdir() if p.is_dir() and p.name.startswith("trial_"))


def test_cnn_search_smoke_asha_and_checkpoints(searched):
    out = searched["cnn_search"]
    exp = load_experiment("cnn_search")
    b = exp.budget("smoke")
    trials = out["trials"]
    assert len(trials) == b.trials and not [t for t in trials if t["error"]]
    assert any(t["epochs"] < b.epochs for t in trials), "ASHA stopped no trial early"
    assert any(t["epochs"] == b.epochs for t in trials)
    exp_dir = searched["storage"] / "cnn_search"
    dirs = _trial_dirs(exp_dir)
    assert len(dirs) == b.trials
    for d in dirs:
        ckpts = sorted(d.glob("checkpoint_*/" + CHECKPOINT_FILE))
        assert ckpts, f"no checkpoint in {d}"
        state = torch.load(ckpts[-1], map_location="cpu", weights_only=False)
        assert {"state_dict", "optimizer", "epoch", "arch"} <= set(state) and state["optimizer"]["state"]
    # Each trial's derived architecture is recorded and can be rebuilt from its config.
    L = out["results"]["dataset"]["n_features"]
    for t in trials:
        c = t["config"]
        rebuilt = derive_architecture(L, **{k: c[k] for k in CNN_SEARCH_PARAMS}, rng=c["arch_seed"])
        assert t["arch"] == rebuilt.as_dict()
    best = json.loads((exp_dir / "best_config.json").read_text())
    assert best["val_balanced_accuracy"] == max(t["best_val_balanced_accuracy"] for t in trials)
    model, meta = load_model(exp_dir / "best_model.pt")
    assert meta["arch"] == best["arch"] and isinstance(model, CNN1d)
    names = [m["name"] for m in out["results"]["models"]]
    assert names == ["cnn_search:best", "logreg"]


def test_snn_transfer_smoke_from_finished_cnn_experiment(searched):
    out = searched["snn_pt2"]
    exp_dir = searched["storage"] / "snn_pt2"
    r = json.loads((exp_dir / "results.json").read_text())
    names = [m["name"] for m in r["models"]]
    assert names == ["snn_pt2:best", "snn_pt2:tradeoff", "logreg"]
    s = r["search"]
    assert "cnn_pt2" in s["weights"]["source"] and s["weights"]["split_verified"]
    assert s["n_trials"] == load_experiment("snn_pt2").budget("smoke").trials and s["n_errors"] == 0
    cnn_best = json.loads((searched["storage"] / "cnn_pt2" / "best_config.json").read_text())
    assert s["weights"]["arch"] == cnn_best["arch"]  # the SNN took the CNN's architecture
    best, trade = s["best"], s["tradeoff"]
    assert trade["config"]["num_steps"] <= best["config"]["num_steps"]
    assert trade["val_balanced_accuracy"] >= best["val_balanced_accuracy"] - 0.01
    assert (exp_dir / "tradeoff_config.json").exists() and (exp_dir / "results.txt").exists()
    n_test = r["split"]["sizes"]["test"]
    for m in r["models"][:2]:
        assert sum(map(sum, m["test"]["confusion_matrix"])) == n_test
        assert m["snn"]["mode"] == "transfer" and m["snn"]["loss"] == "ce"
        assert not (m["snn"]["neuron"] == "lapicque" and m["snn"]["beta"] == 1.0)
    for d in _trial_dirs(exp_dir):
        assert list(d.glob("checkpoint_*/" + CHECKPOINT_FILE))
    assert out["table"].splitlines()[2].startswith("snn_pt2:best")
    # energy per inference of every trial (validation rows) and of the exported networks (test, vs the source CNN)
    trials = json.loads((exp_dir / "trials.json").read_text())
    for t in trials:
        eff = t["efficiency"]
        assert eff["split"] == "val" and eff["num_steps"] == t["config"]["num_steps"]
        assert eff["energy_pj"] == pytest.approx(4.6 * eff["macs"] + 0.9 * eff["synops"]) and eff["energy_pj"] > 0
    cnn_macs = 4.6 * json.loads((searched["storage"] / "cnn_pt2" / "results.json").read_text()
                                )["models"][0]["efficiency"]["macs"]
    for m in r["models"][:2]:
        assert m["efficiency"]["energy_ratio_vs_cnn"] == pytest.approx(m["efficiency"]["energy_pj"] / cnn_macs)


def test_report_of_a_real_snn_experiment(searched, tmp_path):
    from spiking.report import build_report

    exp_dir = searched["storage"] / "snn_pt2"
    html = Path(build_report(exp_dir, tmp_path / "rep"))
    md = (tmp_path / "rep" / "report.md").read_text()
    pngs = sorted((tmp_path / "rep").glob("*.png"))
    assert html.exists() and pngs
    for png in pngs:
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.name in md
    assert "Pareto" in md and "num_steps" in md and "4.6 pJ" in md
    assert md.count("snn_pt2:") >= 2  # best and trade-off rows of the summary table


def test_resume_restores_a_finished_search_without_new_trials(searched):
    exp_dir = searched["storage"] / "cnn_search"
    before = json.loads((exp_dir / "best_config.json").read_text())
    out = run_experiment("cnn_search", **searched["kw"], resume=True)  # Tuner.restore, searcher state included
    assert len(out["trials"]) == load_experiment("cnn_search").budget("smoke").trials
    assert len(_trial_dirs(exp_dir)) == len(out["trials"])
    after = json.loads((exp_dir / "best_config.json").read_text())
    assert (after["trial_id"], after["config"], after["val_balanced_accuracy"]) == \
        (before["trial_id"], before["config"], before["val_balanced_accuracy"])


def test_failed_trial_resumes_from_its_checkpoint(searched, monkeypatch, tmp_path):
    from spiking.search.trainable import FAIL_AT_EPOCH_VAR

    monkeypatch.setenv(FAIL_AT_EPOCH_VAR, "2")
    kw = {**searched["kw"], "storage": str(tmp_path)}
    out = run_experiment("cnn_pt2", **kw, max_failures=1)
    b = load_experiment("cnn_pt2").budget("smoke")
    (trial,) = out["trials"]
    assert trial["error"] is None and trial["epochs"] == b.epochs
    (d,) = _trial_dirs(tmp_path / "cnn_pt2")
    rows = [line.split(",") for line in (d / "progress.csv").read_text().splitlines()]
    col = {name: i for i, name in enumerate(rows[0])}
    assert [int(r[col["epoch"]]) for r in rows[1:]] == list(range(1, b.epochs + 1))  # no epoch repeated
    assert [int(r[col["resumed_from_epoch"]]) for r in rows[1:]] == [0, 0] + [2] * (b.epochs - 2)
    last = torch.load(sorted(d.glob("checkpoint_*/" + CHECKPOINT_FILE))[-1], map_location="cpu", weights_only=False)
    steps_per_epoch = -(-out["results"]["search"]["train_rows"] // b.batch_size)
    assert last["epoch"] == b.epochs
    # Adam's step count continued across the restart: the optimiser state was restored, not restarted.
    assert {int(s["step"]) for s in last["optimizer"]["state"].values()} == {steps_per_epoch * b.epochs}


def test_experiment_on_s3_storage(searched, moto_s3):
    out = run_experiment("cnn_pt2", **{**searched["kw"], "storage": "s3://spiking-test/tune"})
    assert out["path"] == "s3://spiking-test/tune/cnn_pt2"
    keys = {o["Key"] for o in moto_s3.list_objects_v2(Bucket="spiking-test", Prefix="tune/cnn_pt2/")["Contents"]}
    for name in ("experiment.json", "results.json", "results.txt", "best_config.json", "best_model.pt", "tuner.pkl"):
        assert f"tune/cnn_pt2/{name}" in keys
    assert any(k.endswith("/" + CHECKPOINT_FILE) and "/trial_" in k for k in keys)  # trial checkpoints in S3
    best = json.loads(moto_s3.get_object(Bucket="spiking-test", Key="tune/cnn_pt2/best_config.json")["Body"].read())
    assert best["checkpoint"].startswith("s3://spiking-test/tune/cnn_pt2/trial_")

    # snn_pt2 on the same S3 storage, its weights taken (by name) from the cnn_pt2 experiment stored there.
    snn = run_experiment("snn_pt2", **{**searched["kw"], "storage": "s3://spiking-test/tune"})
    assert snn["path"] == "s3://spiking-test/tune/snn_pt2"
    keys = _s3_keys(moto_s3, "spiking-test", "tune/")
    source_key = "tune/cnn_pt2/best_model.pt"
    source_uri = f"s3://spiking-test/{source_key}"
    assert source_key in keys  # the transferred-weights source is in the bucket
    for name in ("experiment.json", "results.json", "results.txt", "trials.json", "best_config.json",
                 "best_model.pt", "tradeoff_config.json", "tradeoff_model.pt", "tuner.pkl"):
        assert f"tune/snn_pt2/{name}" in keys, name
    # Every SNN trial checkpointed into S3 (not into a local folder).
    ckpt_keys = sorted(k for k in keys if k.startswith("tune/snn_pt2/trial_") and k.endswith("/" + CHECKPOINT_FILE))
    assert {k.split("/")[2] for k in ckpt_keys} == {f"trial_{t['trial_id']}" for t in snn["trials"]}
    assert len(snn["trials"]) == load_experiment("snn_pt2").budget("smoke").trials
    assert not Path("spiking-test").exists() and not Path("s3:").exists()  # nothing went to a local folder

    def s3_json(key: str) -> dict:
        return json.loads(moto_s3.get_object(Bucket="spiking-test", Key=key)["Body"].read())

    # The SNN experiment's records name the S3 source, and it is the CNN that was exported there.
    meta = s3_json("tune/snn_pt2/experiment.json")
    w = meta["weights"]
    assert source_uri in w["source"] and w["split_verified"]
    assert w["arch"] == best["arch"] and w["source_val_balanced_accuracy"] == best["val_balanced_accuracy"]
    assert s3_json("tune/snn_pt2/results.json")["search"]["weights"]["source"] == w["source"]
    snn_best = s3_json("tune/snn_pt2/best_config.json")
    assert snn_best["checkpoint"].startswith("s3://spiking-test/tune/snn_pt2/trial_")
    assert snn_best["arch"] == best["arch"]
    # A trial checkpoint read back from S3 holds the transferred network and where its weights came from.
    state = torch.load(io.BytesIO(moto_s3.get_object(Bucket="spiking-test", Key=ckpt_keys[0])["Body"].read()),
                       map_location="cpu", weights_only=False)
    assert state["kind"] == "snn" and state["mode"] == "transfer" and state["transferred"]
    assert state["weights_source"] == w["source"] and state["arch"] == best["arch"]


def _s3_keys(s3, bucket: str, prefix: str) -> set[str]:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return {o["Key"] for page in pages for o in page.get("Contents", [])}


def test_weight_source_from_another_split_is_refused(searched, shards):
    from spiking.search.data import load_split
    from spiking.search.runner import load_transfer, locate_weights, split_fingerprint

    exp = load_experiment("snn_pt2")
    prep, used, _ = load_split(shards, exp.data, exp.budget("smoke").max_train_rows, 42)
    fs, root = open_storage(str(searched["storage"]))
    located = locate_weights("cnn_pt2", fs, root)
    assert load_transfer(exp, located, used, split_fingerprint(prep))["split_verified"]
    with pytest.raises(SearchError, match="different split"):
        load_transfer(exp, located, used, "0" * 64)


def test_existing_experiment_needs_resume_or_overwrite(searched):
    with pytest.raises(SearchError, match="already holds a search"):
        run_experiment("cnn_pt2", **searched["kw"])
    with pytest.raises(SearchError, match="same budget"):
        run_experiment("cnn_pt2", **{**searched["kw"], "budget": "small"}, resume=True)
    # --overwrite deletes the old search only after every other check passed
    with pytest.raises(SearchError, match="cpus_per_trial"):
        run_experiment("cnn_pt2", **searched["kw"], overwrite=True, cpus_per_trial=0)
    assert (searched["storage"] / "cnn_pt2" / "best_model.pt").exists()
    # a resumed SNN search keeps its weight source
    other = str(searched["storage"] / "cnn_search" / "best_model.pt")
    with pytest.raises(SearchError, match="was started with weights"):
        run_experiment("snn_pt2", **searched["kw"], resume=True, weights=other)


# --------------------------------------------------------------------------- a killed driver, resumed
_MARK = "SPIKING_TEST_KILLED_DRIVER"  # set in the environment of the driver and so of every process of its Ray


def _spiking_cli() -> list[str]:
    exe = Path(sys.executable).with_name("spiking")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "spiking.cli.main"]


def _trial_statuses(exp_dir: Path) -> dict | None:
    """Trial id -> status in the newest Tune experiment snapshot (what a resume reads); None if none (yet)."""
    files = sorted(exp_dir.glob("experiment_state-*.json"))  # timestamped names: the last is the newest
    if not files:
        return None
    try:
        data = json.loads(files[-1].read_text())
        return {t["trial_id"]: t["status"] for t in (json.loads(s) for s, _ in data["trial_data"])}
    except (OSError, ValueError, KeyError, TypeError):  # caught while Tune was writing it
        return None


def _marked_processes(value: str) -> list[int]:
    """Processes whose environment holds ``_MARK=value``: a driver of this test and its Ray (workers included)."""
    token = f"{_MARK}={value}".encode()
    pids = []
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                if token in (p / "environ").read_bytes().split(b"\0"):
                    pids.append(int(p.name))
            except OSError:  # gone, or not ours
                pass
    return pids


def _end_marked_processes(value: str, grace: float) -> list[int]:
    """Wait up to ``grace`` s for the marked processes to exit, SIGKILL the rest; returns those still alive then."""
    deadline = time.monotonic() + grace
    while (left := _marked_processes(value)) and time.monotonic() < deadline:
        time.sleep(0.2)
    for pid in left:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + 5
    while _marked_processes(value) and time.monotonic() < deadline:
        time.sleep(0.1)
    return left


def _trial_files(d: Path) -> dict:
    return {str(f.relative_to(d)): (f.stat().st_size, f.stat().st_mtime_ns) for f in sorted(d.rglob("*")) if f.is_file()}


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="finds the killed driver's Ray processes in /proc")
def test_killed_driver_resumes_without_rerunning_finished_trials(shards, tmp_path):
    """``spiking tune`` SIGKILLed (driver and its Ray) after a trial finished, then ``--resume``d to completion."""
    store, exp_dir = tmp_path / "store", tmp_path / "store" / "cnn_search"
    b = load_experiment("cnn_search").budget("smoke")
    # A short RAY_TMPDIR of its own: the driver starts its own Ray (never the test's: no RAY_ADDRESS, and no
    # ray_current_cluster file there) and Ray's socket paths stay short.
    ray_tmp = tempfile.mkdtemp(prefix="spk-ray-")
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env.update(RAY_TMPDIR=ray_tmp, **{_MARK: ray_tmp})
    base = [*_spiking_cli(), "tune", "cnn_search", "--budget", "smoke", "--storage", str(store), "--shards", shards,
            "--ray-cpus", "2", "--quiet"]
    log = tmp_path / "driver.log"
    driver = None
    try:
        # One trial at a time: when the first trial has finished, the other five have still to run.
        with open(log, "w") as fh:
            driver = subprocess.Popen([*base, "--max-concurrent", "1"], env=env, stdout=fh, stderr=subprocess.STDOUT,
                                      start_new_session=True)
        deadline = time.monotonic() + 300
        while True:
            statuses = _trial_statuses(exp_dir) or {}
            if "TERMINATED" in statuses.values():
                break
            assert driver.poll() is None, f"the driver exited ({driver.returncode}) before a trial finished:\n" \
                                          f"{log.read_text()[-3000:]}"
            assert time.monotonic() < deadline, f"no trial finished in 300 s:\n{log.read_text()[-3000:]}"
            time.sleep(0.05)
        os.killpg(driver.pid, signal.SIGKILL)  # the driver and the Ray processes it started (its process group)
        driver.wait(timeout=30)
        assert driver.returncode == -signal.SIGKILL
        # Ray's workers run in sessions of their own: they notice their raylet is gone and exit; end any that don't.
        _end_marked_processes(ray_tmp, grace=10)
        assert not _marked_processes(ray_tmp), "processes of the killed driver's Ray are still running"

        killed = _trial_statuses(exp_dir) or {}  # what the resume starts from
        finished = {t for t, s in killed.items() if s == "TERMINATED"}
        assert finished and len(finished) < b.trials, f"kill came too late to test a resume: {killed}"
        assert not (exp_dir / "results.json").exists()
        before = {t: _trial_files(exp_dir / f"trial_{t}") for t in finished}
        rows = {t: [json.loads(line) for line in (exp_dir / f"trial_{t}" / "result.json").read_text().splitlines()]
                for t in finished}
        assert all(rows.values())

        with open(log, "w") as fh:
            resumed = subprocess.run([*base, "--resume"], env=env, stdout=fh, stderr=subprocess.STDOUT, timeout=400,
                                     start_new_session=True)
        out = log.read_text()
        assert resumed.returncode == 0, out[-3000:]
        assert f"cnn_search (smoke): {b.trials} trials" in out and " 0 errors" in out

        final = _trial_statuses(exp_dir)
        assert len(final) == b.trials and set(final.values()) == {"TERMINATED"}, final
        assert finished <= set(final)  # the finished trials were kept, not replaced by new ones
        trials = {t["trial_id"]: t for t in json.loads((exp_dir / "trials.json").read_text())}
        assert set(trials) == set(final) and not [t for t in trials.values() if t["error"] or not t["epochs"]]
        for t in finished:
            # Not run again: no new result row, no new or rewritten checkpoint, no file of the trial touched.
            assert _trial_files(exp_dir / f"trial_{t}") == before[t], f"trial {t} was run again"
            assert trials[t]["epochs"] == rows[t][-1]["epoch"]
            assert trials[t]["best_val_balanced_accuracy"] == max(r["val_balanced_accuracy"] for r in rows[t])
        for name in ("results.json", "best_config.json", "best_model.pt", "results.txt"):
            assert (exp_dir / name).is_file(), name
        r = json.loads((exp_dir / "results.json").read_text())
        assert r["search"]["n_trials"] == b.trials and r["search"]["best"]["trial_id"] in final
        assert json.loads((exp_dir / "best_config.json").read_text())["trial_id"] == r["search"]["best"]["trial_id"]
    finally:
        if driver is not None and driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
            driver.wait(timeout=30)
        _end_marked_processes(ray_tmp, grace=10)
        shutil.rmtree(ray_tmp, ignore_errors=True)


# --------------------------------------------------------------------------- stops before any trial
def test_missing_weight_source_stops_before_any_trial(shards, tmp_path):
    store = tmp_path / "empty"
    with pytest.raises(SearchError) as e:
        run_experiment("snn_pt2", shards=shards, storage=str(store), ray_num_cpus=2, verbose=0)
    assert "cnn_pt2" in str(e.value) and "spiking tune cnn_pt2" in str(e.value)
    assert not (store / "snn_pt2").exists()
    with pytest.raises(SearchError, match="not found"):
        run_experiment("snn_pt2", shards=shards, storage=str(store), weights=str(tmp_path / "nope.pt"),
                       ray_num_cpus=2, verbose=0)
    with pytest.raises(SearchError, match="does not transfer weights"):
        run_experiment("cnn_pt2", shards=shards, storage=str(store), weights="cnn_pt1", ray_num_cpus=2)


def test_unwritable_storage_stops_before_any_trial(shards, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(StorageError, match="not writable"):
        run_experiment("cnn_pt2", shards=shards, storage=str(blocker / "tune"), ray_num_cpus=2, verbose=0)


def test_tune_subcommand_parses_and_reports_errors(shards, tmp_path):
    parser = argparse.ArgumentParser(prog="spiking")
    add_tune_parser(parser.add_subparsers(dest="command", required=True))
    a = parser.parse_args(["tune", "snn_pt2", "--budget", "smoke", "--storage", str(tmp_path), "--shards", shards,
                           "--cpus-per-trial", "1", "--max-concurrent", "2", "--ray-cpus", "2"])
    assert (a.experiment, a.budget, a.cpus_per_trial, a.max_concurrent, a.resume) == ("snn_pt2", "smoke", 1.0, 2, False)
    with pytest.raises(SearchError, match="cnn_pt2"):
        a.func(a)
    with pytest.raises(SystemExit):
        parser.parse_args(["tune", "no_such_experiment"])
