"""Figures over repeats: the summary statistics on known inputs, cross-validation folds (group
integrity, stratification, messages), the classic baselines' tuning, and ``spiking run --cv`` /
``--seeds`` end to end on a small stratified subset of the real data."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from spiking.artifacts import ArtifactError
from spiking.artifacts.summary import read_summary, write_summary
from spiking.data import DataError
from spiking.data.preprocess.split import auto_folds, check_folds, kfold_split
from spiking.evaluation.summary import describe, paired_difference, summarize


# --------------------------------------------------------------------------- statistics on known inputs
def test_describe_gives_mean_sample_sd_and_range():
    s = describe([0.90, 0.92, 0.94])
    assert s["n"] == 3 and s["mean"] == pytest.approx(0.92) and s["sd"] == pytest.approx(0.02)  # ddof=1
    assert (s["min"], s["max"]) == (0.90, 0.94)
    assert describe([0.5])["sd"] is None and describe([])["mean"] is None
    with pytest.raises(Exception, match="non-finite"):
        describe([0.5, float("nan")])


def test_paired_difference_known_values():
    a, b = [0.95, 0.96, 0.97, 0.98, 0.99], [0.90, 0.90, 0.90, 0.90, 0.90]
    p = paired_difference(a, b)
    assert p["n"] == 5 and p["mean_difference"] == pytest.approx(0.07)
    assert p["differences"] == pytest.approx([0.05, 0.06, 0.07, 0.08, 0.09])
    # the percentile interval of a mean lies between the smallest and largest difference, around the mean
    assert 0.05 <= p["ci_low"] < 0.07 < p["ci_high"] <= 0.09
    assert p["wilcoxon_p"] == pytest.approx(0.0625)  # exact two-sided: all 5 differences of one sign
    assert paired_difference(a, b) == p  # seeded: the same inputs give the same interval
    worse = paired_difference(b, a)
    assert worse["mean_difference"] == pytest.approx(-0.07) and worse["ci_high"] < 0


def test_paired_difference_edge_cases():
    same = paired_difference([0.9, 0.8], [0.9, 0.8])
    assert same["mean_difference"] == 0 and (same["ci_low"], same["ci_high"]) == (0, 0) and same["wilcoxon_p"] == 1
    one = paired_difference([0.9], [0.8])
    assert one["ci_low"] is None and one["wilcoxon_p"] is None and one["mean_difference"] == pytest.approx(0.1)
    with pytest.raises(Exception, match="equal-length"):
        paired_difference([0.9, 0.8], [0.9])


def _entry(name, bal, energy=None, baseline=False):
    e = {"name": name, "test": {"accuracy": bal, "balanced_accuracy": bal, "macro_f1": bal - 0.01},
         "parameters": 10, "train_seconds": 1.0}
    if energy is not None:
        e["efficiency"] = {"energy_pj": energy}
    if baseline:  # its validation score: the test score minus a point, so the two orders agree here
        e["baseline"] = {"method": name, "val_balanced_accuracy": {"C=1": bal - 0.01, "C=10": bal - 0.02}}
    return e


def _results(models, classes=("A", "B")):
    return {"dataset": {"classes": list(classes), "n_features": 4}, "models": models}


@pytest.mark.parametrize("n, kind, floor, few", [(2, "seeds", "0.5", True), (3, "cv", "0.25", True),
                                                  (5, "seeds", "0.0625", False), (10, "seeds x cv", "0.00195", False)])
def test_the_paired_caveats_follow_the_number_of_repeats(n, kind, floor, few):
    from spiking.artifacts.summary import paired_caveats

    text = paired_caveats({"protocol": {"kind": kind}, "paired": [{"n": n}, {"n": n}]})
    assert f"With {n} pairs" in text and f"cannot fall below {floor}" in text
    assert ("too few repeats" in text) == few
    assert ("not independent" in text) == ("cv" in kind)
    assert paired_caveats({"protocol": {"kind": kind}, "paired": []}) == ""


def test_summarize_picks_the_best_baseline_and_pairs_on_the_same_repeats():
    reps = [{"name": f"seed_{i}", "seed": i, "fold": None} for i in range(3)]
    cnn, lr, svm = [0.90, 0.92, 0.94], [0.95, 0.95, 0.95], [0.96, 0.97, 0.98]
    results = [_results([_entry("cnn", cnn[i], 100.0 + i), _entry("logreg", lr[i], baseline=True),
                         _entry("linear_svm", svm[i], baseline=True)]) for i in range(3)]
    results[2]["models"].append(_entry("snn", 0.5, 10.0))  # a network of one repeat only
    s = summarize(reps, results)
    by = {m["name"]: m for m in s["models"]}
    assert [m["name"] for m in s["models"]] == ["cnn", "logreg", "linear_svm", "snn"]
    assert by["cnn"]["kind"] == "network" and by["logreg"]["kind"] == "baseline"
    assert by["cnn"]["stats"]["balanced_accuracy"]["mean"] == pytest.approx(0.92)
    assert by["cnn"]["stats"]["energy_pj"]["mean"] == pytest.approx(101.0)
    assert "energy_pj" not in by["logreg"]["stats"]
    assert s["best_baseline"]["name"] == "linear_svm"  # higher mean validation balanced accuracy than logreg
    assert "test scores not used" in s["best_baseline"]["by"]
    # the choice is made on validation: a baseline best on test but worse on validation is not chosen
    for r in results:
        r["models"][1]["test"]["balanced_accuracy"] = 0.999
    assert summarize(reps, results)["best_baseline"]["name"] == "linear_svm"
    pairs = {(p["model"], p["metric"]): p for p in s["paired"]}
    assert set(pairs) == {("cnn", "balanced_accuracy"), ("cnn", "macro_f1"), ("snn", "balanced_accuracy"),
                          ("snn", "macro_f1")}
    c = pairs[("cnn", "balanced_accuracy")]
    assert c["against"] == "linear_svm" and c["n"] == 3
    assert c["differences"] == pytest.approx([-0.06, -0.05, -0.04])
    assert pairs[("snn", "balanced_accuracy")]["repeats"] == ["seed_2"]  # paired only where both exist
    with pytest.raises(Exception, match="one task"):
        summarize(reps[:2], [results[0], _results(results[1]["models"], classes=("A", "C"))])


def test_summary_file_round_trip_and_checks(tmp_path):
    reps = [{"name": f"seed_{i}", "seed": i, "fold": None} for i in range(2)]
    s = {"protocol": {"kind": "seeds", "seeds": [0, 1], "folds": None},
         **summarize(reps, [_results([_entry("cnn", 0.9), _entry("logreg", 0.95, baseline=True)]),
                            _results([_entry("cnn", 0.8), _entry("logreg", 0.96, baseline=True)])])}
    path = write_summary(s, tmp_path / "summary.json")
    assert read_summary(path) == json.loads(json.dumps(s))
    for breakage, words in ((lambda d: d["models"][0]["stats"]["balanced_accuracy"].update(mean=float("nan")), "finite"),
                            (lambda d: d["paired"][0].update(ci_low=1.0, ci_high=0.0), "ci_low above"),
                            (lambda d: d["paired"][0].update(against="nobody"), "names no model"),
                            (lambda d: d["repeats"][0].update(name="../x"), "plain folder name"),
                            (lambda d: d["protocol"].update(kind="bootstrap"), "protocol.kind")):
        bad = json.loads(path.read_text())
        breakage(bad)
        (tmp_path / "bad.json").write_text(json.dumps(bad))
        with pytest.raises(ArtifactError, match=words):
            read_summary(tmp_path / "bad.json")


# --------------------------------------------------------------------------- folds
def _grouped_labels(rng, sizes):
    """Labels with 1-3 rows per patient group; returns (y, groups)."""
    y, groups = [], []
    g = 0
    for c, n in enumerate(sizes):
        left = n
        while left:
            k = min(left, int(rng.integers(1, 4)))
            y += [c] * k
            groups += [f"p{g}"] * k
            g += 1
            left -= k
    perm = rng.permutation(len(y))
    return np.asarray(y)[perm], np.asarray(groups)[perm]


def test_kfold_parts_keep_patients_together_and_each_row_is_tested_once():
    y, groups = _grouped_labels(np.random.default_rng(0), [120, 80, 40])
    tested = []
    for k in range(5):
        s = kfold_split(y, groups, n_folds=5, fold=k, val_fraction=0.125, seed=7)
        parts = [set(s.train), set(s.val), set(s.test)]
        assert sum(map(len, parts)) == len(y) and not (parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2])
        owners = [set(groups[list(p)]) for p in parts]
        assert not (owners[0] & owners[1] or owners[0] & owners[2] or owners[1] & owners[2])  # no patient straddles
        for c, n in zip(range(3), (120, 80, 40)):  # stratified: each class about a fifth in every test fold
            assert np.sum(y[s.test] == c) == pytest.approx(n / 5, abs=max(3, n * 0.06))
            assert np.sum(y[s.val] == c) >= 1
        tested += list(s.test)
        assert (s.n_folds, s.fold) == (5, k)
    assert sorted(tested) == list(range(len(y)))
    again = kfold_split(y, groups, n_folds=5, fold=2, val_fraction=0.125, seed=7)
    assert np.array_equal(again.test, kfold_split(y, groups, n_folds=5, fold=2, val_fraction=0.125, seed=7).test)


def test_a_class_with_few_patients_does_not_inflate_the_validation_part():
    # 4 patients x 15 aliquots in one class: 3 folds fit; the validation share stays about 1/8 of the rest
    y = np.array([0] * 120 + [1] * 120 + [2] * 60)
    groups = np.array([f"a{i}" for i in range(240)] + [f"p{i // 15}" for i in range(60)])
    for k in range(3):
        s = kfold_split(y, groups, n_folds=3, fold=k, val_fraction=0.125, seed=0)
        assert {0, 1, 2} <= set(y[s.val]) and {0, 1, 2} <= set(y[s.train])
        big = np.isin(y, [0, 1])
        rest = np.sum(big[s.train]) + np.sum(big[s.val])
        assert np.sum(big[s.val]) == pytest.approx(rest / 8, rel=0.25), (k, len(s.train), len(s.val))


def test_folds_name_the_class_that_is_too_small():
    y = np.array([0] * 40 + [1] * 40 + [2] * 4)
    with pytest.raises(DataError, match=r"'PRAD' has 4.*--cv 3"):
        check_folds(y, None, 5, class_names=["BRCA", "KIRC", "PRAD"])
    assert auto_folds(y, None, ["BRCA", "KIRC", "PRAD"]) == 3  # --cv alone on a small data set
    groups = np.array([f"s{i}" for i in range(80)] + ["pA", "pA", "pB", "pB"])  # 4 samples, 2 patients
    with pytest.raises(DataError, match=r"patients.*'PRAD' has 2"):
        kfold_split(y, groups, n_folds=3, fold=0, class_names=["BRCA", "KIRC", "PRAD"])
    with pytest.raises(DataError, match="fold must be"):
        kfold_split(y, None, n_folds=3, fold=3)


def test_small_classes_give_folds_or_a_message_naming_the_class_never_a_traceback():
    # 24 samples of single-sample patients (9/8/7): the validation carve once asked scikit-learn for
    # more folds than any class had rows, and a later fold crashed
    y = np.array([0] * 9 + [1] * 8 + [2] * 7)
    for k in range(5):
        s = kfold_split(y, None, n_folds=5, fold=k, val_fraction=0.125, seed=42)
        assert set(y[s.val]) == {0, 1, 2} and set(y[s.train]) == {0, 1, 2}
    # 3 patients of class C (enough for 2 folds by count): a fold leaves C out of a part. The repeats
    # check every fold before training, and the message names the class
    y = np.array([0] * 39 + [1] * 27 + [2] * 3)
    groups = np.array([f"a{i % 26}" for i in range(39)] + [f"b{i % 18}" for i in range(27)] + ["c0", "c1", "c2"])
    with pytest.raises(DataError, match=r"\['C'\] have no sample in the (validation|train) part"):
        for k in range(2):
            kfold_split(y, groups, n_folds=2, fold=k, val_fraction=0.125, seed=42, class_names=["A", "B", "C"])


def test_a_held_out_split_names_the_class_too_small_for_it():
    from spiking.data.preprocess.split import stratified_split

    with pytest.raises(DataError, match=r"'KIRC', has 2 rows.*needs at least 8"):
        stratified_split(np.array([0] * 30 + [1] * 2), None, class_names=["BRCA", "KIRC"])


def test_seeds_refuse_a_number_too_long_to_read():
    from spiking.cli.repeats import RepeatError, parse_seeds

    with pytest.raises(RepeatError, match=r"outside \[0, 4294967295\]"):
        parse_seeds("9" * 5000)
    assert parse_seeds("0007,1") == (7, 1)


# --------------------------------------------------------------------------- baselines
def test_baselines_are_tuned_on_validation_only():
    from types import SimpleNamespace

    from spiking.evaluation.baseline import BASELINES, GRIDS, evaluate_baselines

    rng = np.random.default_rng(0)
    X = {p: rng.normal(size=(n, 1, 12)).astype(np.float32) for p, n in (("train", 90), ("val", 30), ("test", 30))}
    y = {p: (X[p][:, 0, 0] + 0.3 * rng.normal(size=len(X[p])) > 0).astype(np.int64) for p in X}
    prep = SimpleNamespace(X=X, y=y, class_names=["a", "b"], features=lambda p: X[p].reshape(len(X[p]), -1))
    entries = evaluate_baselines(prep, seed=0)
    assert [e["name"] for e in entries] == list(BASELINES)
    for e in entries:
        b = e["baseline"]
        scores = b["val_balanced_accuracy"]
        assert len(scores) == np.prod([len(v) for v in GRIDS[e["name"]].values()])
        chosen = ", ".join(f"{k}={v}" for k, v in b["chosen"].items())
        assert scores[chosen] == max(scores.values())
    shuffled = dict(y, test=rng.permutation(y["test"]))  # test labels play no part in the choice
    again = evaluate_baselines(SimpleNamespace(**{**vars(prep), "y": shuffled}), seed=0)
    assert [e["baseline"]["chosen"] for e in again] == [e["baseline"]["chosen"] for e in entries]


def test_a_baseline_refuses_a_train_part_with_one_class():
    from spiking.evaluation.baseline import tune_baseline
    from spiking.evaluation.metrics import EvaluationError

    X = np.zeros((6, 3))
    with pytest.raises(EvaluationError, match="at least 2 classes in the train part, got 1"):
        tune_baseline("logreg", X, np.zeros(6, dtype=int), X, np.array([0, 1, 0, 1, 0, 1]))


# --------------------------------------------------------------------------- end to end
#: --matrix/--labels of the subset the shards fixture ingested (a run compares them with its shards).
SOURCES: list[str] = []
FAST = ["--cnn-epochs", "4", "--snn-epochs", "1", "--num-steps", "3", "--batch-size", "32", "--patience", "0",
        "--device", "cpu", "--no-progress", "--encodings", "direct"]


@pytest.fixture(scope="module")
def shards(tcga_subset, tmp_path_factory):
    from spiking.cli.main import main

    root = tmp_path_factory.mktemp("repeats")
    assert main(["ingest", "--matrix", str(tcga_subset["matrix"]), "--labels", str(tcga_subset["labels"]),
                 "--out", str(root / "shards")]) == 0
    SOURCES[:] = ["--matrix", str(tcga_subset["matrix"]), "--labels", str(tcga_subset["labels"])]
    return root


def test_cv_end_to_end(shards, capsys):
    from spiking.cli.main import main

    runs = shards / "runs"
    assert main(["run", "--shards", str(shards / "shards"), "--runs-dir", str(runs), "--run-name", "cv", *SOURCES,
                 "--cv", "3", "--top-k", "5", *FAST]) == 0
    out = capsys.readouterr().out
    assert "Paired against the best classic baseline" in out
    s = read_summary(runs / "cv" / "summary.json")
    assert s["protocol"] == {"kind": "cv", "seeds": [42], "folds": 3}
    assert [r["name"] for r in s["repeats"]] == ["fold_0", "fold_1", "fold_2"]
    from spiking.data.ingest import load_dataset

    ds = load_dataset(shards / "shards")
    patient = dict(zip(map(str, ds.ids), map(str, ds.groups)))
    tested = []
    for k in range(3):
        split = json.loads((runs / "cv" / f"fold_{k}" / "split.json").read_text())
        assert split["cv"] == {"folds": 3, "fold": k}
        ids = split["ids"]
        tested += ids["test"]
        owners = {p: {patient[i] for i in ids[p]} for p in ids}
        assert not (owners["train"] & owners["test"] or owners["val"] & owners["test"] or owners["train"] & owners["val"])
        r = json.loads((runs / "cv" / f"fold_{k}" / "results.json").read_text())
        assert r["split"]["sizes"]["test"] == len(ids["test"])
    assert sorted(tested) == sorted(map(str, ds.ids)) and len(tested) == len(set(tested))  # each row tested once
    by = {m["name"]: m for m in s["models"]}
    assert {"cnn", "snn", "logreg", "linear_svm", "random_forest"} <= set(by)
    for m in by.values():
        ba = m["stats"]["balanced_accuracy"]
        assert ba["n"] == 3 and ba["min"] <= ba["mean"] <= ba["max"] and len(ba["values"]) == 3
        assert ba["mean"] == pytest.approx(np.mean(ba["values"])) and ba["sd"] == pytest.approx(np.std(ba["values"], ddof=1))
    best = s["best_baseline"]["name"]
    folds = [{m["name"]: m for m in json.loads((runs / "cv" / f"fold_{k}" / "results.json").read_text())["models"]}
             for k in range(3)]
    val = {b: np.mean([max(f[b]["baseline"]["val_balanced_accuracy"].values()) for f in folds])
           for b in by if by[b]["kind"] == "baseline"}
    assert val[best] == max(val.values())  # chosen on validation, not on test
    pair = next(p for p in s["paired"] if p["model"] == "cnn" and p["metric"] == "balanced_accuracy")
    assert pair["mean_difference"] == pytest.approx(by["cnn"]["stats"]["balanced_accuracy"]["mean"]
                                                    - by[best]["stats"]["balanced_accuracy"]["mean"])
    data = s["config"]["data"]  # the shared settings: no per-repeat seed, and CV's validation share, not fractions
    assert "seed" not in data and "fractions" not in data and data["cv"] == 3
    assert data["validation_fraction_of_training_folds"] == pytest.approx(0.1 / 0.8)
    assert "seed" not in s["config"]["cnn"]["train"] and "seed" not in s["config"]["snn"]["train"]
    assert "With 3 pairs the exact two-sided Wilcoxon p cannot fall below 0.25" in out and "not independent" in out
    assert main(["summarize", str(runs / "cv")]) == 0  # recomputed from the folds' results.json: the same
    assert read_summary(runs / "cv" / "summary.json") == s
    assert main(["summarize", str(runs / "cv" / "fold_0")]) == 2 and "not a repeated run" in capsys.readouterr().err
    page = (runs / "cv" / "report" / "report.md").read_text()
    assert "Paired against the best classic baseline" in page and "repeat_scores.png" in page
    assert "report ../fold_0/report/report.html" in page and str(runs / "cv" / "fold_0") not in page  # movable
    for png in ("repeat_scores.png", "repeat_energy_accuracy.png"):
        assert png in page and (runs / "cv" / "report" / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_seeds_end_to_end_and_refusals(shards, capsys):
    from spiking.cli.main import main

    runs = shards / "runs"
    assert main(["run", "--shards", str(shards / "shards"), "--runs-dir", str(runs), "--run-name", "seeds", *SOURCES,
                 "--seeds", "3,4", "--top-k", "3", *FAST]) == 0
    s = read_summary(runs / "seeds" / "summary.json")
    assert s["protocol"]["kind"] == "seeds" and [r["seed"] for r in s["repeats"]] == [3, 4]
    assert "seed" not in s["config"]["data"] and s["config"]["data"]["fractions"] == [0.7, 0.1, 0.2]
    assert "too few repeats" in capsys.readouterr().out
    splits = [json.loads((runs / "seeds" / f"seed_{i}" / "split.json").read_text()) for i in (3, 4)]
    assert [sp["seed"] for sp in splits] == [3, 4] and splits[0]["ids"]["test"] != splits[1]["ids"]["test"]
    cfgs = [json.loads((runs / "seeds" / f"seed_{i}" / "config.json").read_text()) for i in (3, 4)]
    assert [c["cnn"]["train"]["seed"] for c in cfgs] == [3, 4]
    capsys.readouterr()
    for bad, words in ((["--seeds", "1,1"], "repeats a seed"), (["--seeds", "x"], "not an integer"),
                       (["--seeds", "0,-1"], "'-1' is not an integer >= 0"),
                       (["--seeds", f"0,{2**32}"], "outside [0, 4294967295]")):
        code = main(["run", "--shards", str(shards / "shards"), "--runs-dir", str(runs), "--run-name", "bad", *SOURCES,
                     "--top-k", "5", *FAST, *bad])
        err = capsys.readouterr().err
        assert code == 2 and words in err and len(err.strip().splitlines()) == 1, err
    assert not (runs / "bad").exists()
    # summarize refuses what does not belong: a repeat's results.json copied from another seed, an edited
    # protocol, a percentage where a fraction belongs; and says what a missing folder is
    import shutil

    work = runs / "tampered"
    shutil.copytree(runs / "seeds", work)
    shutil.copy(work / "seed_3" / "results.json", work / "seed_4" / "results.json")
    assert main(["summarize", str(work)]) == 2 and "not the run of repeat seed_4" in capsys.readouterr().err
    shutil.copy(runs / "seeds" / "seed_4" / "results.json", work / "seed_4" / "results.json")
    doc = json.loads((work / "summary.json").read_text())
    doc["protocol"] = {"kind": "cv", "seeds": [7], "folds": 9}
    (work / "summary.json").write_text(json.dumps(doc))
    assert main(["summarize", str(work)]) == 2 and "does not match its repeats" in capsys.readouterr().err
    shutil.copy(runs / "seeds" / "summary.json", work / "summary.json")
    res = json.loads((work / "seed_4" / "results.json").read_text())
    res["models"][0]["test"]["balanced_accuracy"] = 7.5
    (work / "seed_4" / "results.json").write_text(json.dumps(res))
    assert main(["summarize", str(work)]) == 2 and "must be <= 1" in capsys.readouterr().err
    assert main(["summarize", str(runs / "nowhere")]) == 2 and "is not a folder" in capsys.readouterr().err
    # a single run in the folder of a repeated one leaves none of the repeats behind (the report would show them)
    assert main(["run", "--shards", str(shards / "shards"), "--runs-dir", str(runs), "--run-name", "seeds", *SOURCES,
                 "--top-k", "3", *FAST]) == 0
    assert not (runs / "seeds" / "summary.json").exists() and not list((runs / "seeds").glob("seed_*"))
    assert "Repeated run" not in (runs / "seeds" / "report" / "report.md").read_text()


def test_cv_names_the_class_too_small_for_the_folds(tcga_subset, tmp_path, capsys):
    from spiking.cli.main import main

    labels = pd.read_csv(tcga_subset["labels"], dtype=str, keep_default_na=False)
    prim = labels[labels.sample_type == "01"]
    keep = pd.concat([g.head(4 if c == "PRAD" else 30) for c, g in prim.groupby("cohort")])  # ~150 samples
    keep.to_csv(tmp_path / "labels.csv", index=False)
    common = ["run", "--matrix", str(tcga_subset["matrix"]), "--labels", str(tmp_path / "labels.csv"),
              "--shards", str(tmp_path / "shards"), "--runs-dir", str(tmp_path / "runs"), "--top-k", "5", *FAST]
    assert main([*common, "--run-name", "k5", "--cv", "5"]) == 2
    err = capsys.readouterr().err
    assert "'PRAD' has 4" in err and "--cv 3" in err
    assert not (tmp_path / "runs" / "k5" / "fold_0").exists()  # refused before any training
    assert main([*common, "--run-name", "auto", "--cv"]) == 0  # --cv alone: 3 folds fit the small class
    s = read_summary(tmp_path / "runs" / "auto" / "summary.json")
    assert s["protocol"]["folds"] == 3 and len(s["repeats"]) == 3
    assert math.isfinite(s["models"][0]["stats"]["balanced_accuracy"]["mean"])
