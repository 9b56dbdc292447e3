"""End to end on a small stratified subset of the real TCGA data, through the command line."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from spiking.cli.main import main

FAST = ["--top-k", "5", "--cnn-epochs", "15", "--snn-epochs", "3", "--num-steps", "5", "--batch-size", "32",
        "--patience", "0", "--device", "cpu", "--no-progress", "--seed", "3", "--encodings", "direct,rate"]


@pytest.fixture(scope="module")
def run(tcga_subset, tmp_path_factory):
    root = tmp_path_factory.mktemp("e2e")
    args = ["run", "--matrix", str(tcga_subset["matrix"]), "--labels", str(tcga_subset["labels"]),
            "--shards", str(root / "shards"), "--runs-dir", str(root / "runs"), "--run-name", "a", *FAST]
    assert main(args) == 0
    return {"root": root, "args": args, "results": json.loads((root / "runs" / "a" / "results.json").read_text())}


def test_results_schema_and_well_above_chance(run, tcga_subset):
    r = run["results"]
    assert r["dataset"]["classes"] == sorted(tcga_subset["classes"])
    assert r["dataset"]["n_samples"] == 5 * tcga_subset["n_per_class"]  # other sample types filtered out
    assert r["dataset"]["n_features"] == 1046
    sizes = r["split"]["sizes"]
    assert sum(sizes.values()) == 300 and sizes["test"] == pytest.approx(60, abs=5)
    by_name = {m["name"]: m for m in r["models"]}
    assert set(by_name) == {"cnn", "snn", "snn_rate", "logreg", "linear_svm", "random_forest"}
    chance = 1 / 5
    for name in ("cnn", "snn", "logreg"):
        t = by_name[name]["test"]
        assert t["balanced_accuracy"] > chance + 0.4, (name, t)
        assert 0 <= t["macro_f1"] <= 1 and by_name[name]["parameters"] > 0
        assert sum(map(sum, t["confusion_matrix"])) == sizes["test"]
    spikes = by_name["snn"]["mean_spikes_per_sample"]
    assert set(spikes) == {"lif1", "lif2", "lif3", "lif_out"} and all(v >= 0 for v in spikes.values())
    assert by_name["snn"]["parameters"] == by_name["cnn"]["parameters"]  # weight transfer: same layers


def test_results_carry_operations_and_energy(run):
    by_name = {m["name"]: m for m in run["results"]["models"]}
    cnn, snn, rate = (by_name[k]["efficiency"] for k in ("cnn", "snn", "snn_rate"))
    assert "efficiency" not in by_name["logreg"]
    assert cnn["synops"] == 0 and cnn["macs"] == sum(r["ops"] for r in cnn["layers"]) > 0
    assert snn["encoding"] == "direct" and rate["encoding"] == "rate"
    assert snn["macs"] == cnn["layers"][0]["ops"]  # direct current: only conv1 multiplies, once
    assert rate["macs"] == 0 and rate["input_spikes"] > 0
    for eff in (snn, rate):
        assert eff["num_steps"] == 5 and 0 < eff["synops"] <= eff["dense_ops"]
        assert eff["energy_pj"] == pytest.approx(4.6 * eff["macs"] + 0.9 * eff["synops"])
        assert eff["energy_ratio_vs_cnn"] == pytest.approx(eff["energy_pj"] / cnn["energy_pj"])
        assert {n["layer"] for n in eff["neurons"]} == {"lif1", "lif2", "lif3", "lif_out"}
        assert all(0 <= n["firing_rate"] <= 1 for n in eff["neurons"])
    # the spike counts of the scoring pass and of the counting pass agree (same seeded input spikes)
    spikes = by_name["snn_rate"]["mean_spikes_per_sample"]
    assert {n["layer"]: n["spikes"] for n in rate["neurons"]} == pytest.approx(
        {k: v for k, v in spikes.items() if k != "input"})
    assert spikes["input"] == pytest.approx(rate["input_spikes"])


def test_same_seed_same_metrics(run):
    """Same seed, same machine, same thread count: identical weights, predictions and figures."""
    import torch

    args = [a if a != "a" else "b" for a in run["args"]]
    assert main(args) == 0
    again = json.loads((run["root"] / "runs" / "b" / "results.json").read_text())
    for m1, m2 in zip(run["results"]["models"], again["models"], strict=True):
        assert m1["name"] == m2["name"]
        assert m1["test"] == m2["test"]
        assert (m1.get("efficiency") or {}).get("synops") == (m2.get("efficiency") or {}).get("synops")
    assert again["run"]["environment"]["torch_threads"] == torch.get_num_threads()
    for net in ("cnn", "snn", "snn_rate"):  # the rate network draws random input spikes while training
        w1, w2 = (torch.load(run["root"] / "runs" / r / f"{net}.pt", weights_only=False)["state_dict"] for r in "ab")
        assert w1.keys() == w2.keys() and all(torch.equal(w1[k], w2[k]) for k in w1), net


def test_evaluate_reapplies_saved_split_and_scaling(run):
    out = run["root"] / "runs" / "a" / "results.json"
    out.unlink()
    assert main(["evaluate", "--runs-dir", str(run["root"] / "runs"), "--run-name", "a"]) == 0
    again = json.loads(out.read_text())
    for m1, m2 in zip(run["results"]["models"], again["models"]):
        assert m1["test"] == m2["test"]


def test_train_snn_alone_needs_a_cnn(run, capsys):
    code = main(["train", "--model", "snn", "--shards", str(run["root"] / "shards"),
                 "--runs-dir", str(run["root"] / "runs"), "--run-name", "fresh", *FAST])
    assert code == 2 and "cnn.pt" in capsys.readouterr().err


def test_invalid_settings_stop_before_any_work(run, capsys):
    root = run["root"]
    for bad, words in ((["--num-steps", "0"], "num_steps"), (["--beta", "1.5"], "beta"),
                       (["--snn-epochs", "0"], "epochs"), (["--snn-mode", "transfer", "--population", "5"], "population"),
                       (["--neuron", "lapicque", "--beta", "1.0"], "Lapicque"),
                       (["--num-steps", "100000"], "num_steps"),
                       (["--encodings", "delta", "--delta-threshold", "0"], "threshold")):
        code = main(["train", "--shards", str(root / "shards"), "--runs-dir", str(root / "runs"),
                     "--run-name", "bad", *FAST, *bad])
        assert code == 2 and words in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:  # argparse's own check
        main(["train", "--shards", str(root / "shards"), "--runs-dir", str(root / "runs"), "--run-name", "bad",
              *FAST, "--encodings", " , "])
    assert e.value.code == 2 and "no encoding given" in capsys.readouterr().err
    assert not (root / "runs" / "bad").exists()


def test_snn_only_training_refuses_other_data_settings(run, capsys):
    args = ["train", "--model", "snn", "--shards", str(run["root"] / "shards"),
            "--runs-dir", str(run["root"] / "runs"), "--run-name", "a", *FAST]
    args[args.index("--top-k") + 1] = "3"
    assert main(args) == 2 and "other data settings" in capsys.readouterr().err


def _copy_run(run, name: str) -> Path:
    src = run["root"] / "runs" / "a"
    dst = run["root"] / "runs" / name
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("report"))
    return dst


def _evaluate(run, name: str) -> int:
    return main(["evaluate", "--runs-dir", str(run["root"] / "runs"), "--run-name", name])


def test_snn_only_training_keeps_the_cnn_architecture_and_config_on_failure(run, capsys):
    d = _copy_run(run, "arch")
    before = (d / "config.json").read_text()
    args = ["train", "--model", "snn", "--shards", str(run["root"] / "shards"), "--runs-dir", str(d.parent),
            "--run-name", "arch", *FAST, "--arch-seed", "7"]
    assert main(args) == 2
    assert "pass --arch-seed 0" in capsys.readouterr().err  # the run's CNN used the default seed
    assert (d / "config.json").read_text() == before  # a refused command does not rewrite the settings


def test_retraining_an_snn_removes_stale_results_and_records_every_network(run):
    d = _copy_run(run, "retrain")
    (d / "report").mkdir()
    args = ["train", "--model", "snn", "--shards", str(run["root"] / "shards"), "--runs-dir", str(d.parent),
            "--run-name", "retrain", *FAST]
    args[args.index("--encodings") + 1] = "latency"
    assert main(args) == 0
    assert not (d / "results.json").exists() and not (d / "report").exists()  # stale: networks changed
    cfg = json.loads((d / "config.json").read_text())
    assert cfg["snn"]["encodings"] == ["direct", "rate", "latency"]  # all the run's SNNs, not only the last
    assert _evaluate(run, "retrain") == 0
    names = [m["name"] for m in json.loads((d / "results.json").read_text())["models"]]
    assert names == ["cnn", "snn", "snn_rate", "snn_latency", "logreg", "linear_svm", "random_forest"]


def test_evaluate_refuses_networks_that_do_not_belong_to_the_run(run, capsys):
    import torch

    d = _copy_run(run, "foreign")
    ckpt = torch.load(d / "snn_rate.pt", weights_only=False)
    ckpt["split_sha256"] = "0" * 64  # trained on another split: its training rows may be in this test split
    torch.save(ckpt, d / "snn_rate.pt")
    assert _evaluate(run, "foreign") == 2
    assert "another split" in capsys.readouterr().err

    d = _copy_run(run, "misnamed")
    shutil.copy(d / "snn.pt", d / "snn_latency.pt")  # a direct-input network under the latency name
    assert _evaluate(run, "misnamed") == 2
    assert "belongs in snn.pt" in capsys.readouterr().err

    d = _copy_run(run, "corrupt")
    (d / "snn_rate.pt").write_bytes(b"garbage")
    assert _evaluate(run, "corrupt") == 2
    err = capsys.readouterr().err
    assert "snn_rate.pt" in err and "Traceback" not in err


def test_cli_reports_bad_input_without_traceback(tmp_path, capsys):
    bad = tmp_path / "m.csv"
    bad.write_text("row_id,f1\ns1,abc\n")
    labels = tmp_path / "l.csv"
    labels.write_text("row_id,cohort,sample_type,patient\ns1,A,01,p1\n")
    code = main(["ingest", "--matrix", str(bad), "--labels", str(labels), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and "abc" in err and "s1" in err
    assert not (tmp_path / "o").exists()


def test_run_refuses_shards_made_with_other_settings(run, capsys):
    args = list(run["args"]) + ["--missing", "drop-features"]
    assert main(args) == 2
    assert "missing-value policy" in capsys.readouterr().err
