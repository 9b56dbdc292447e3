"""The lifecycle the Ray Tune drivers share (spiking.search.lifecycle): parsed experiment -> folder
-> resume/overwrite check -> resources -> experiment.json (one writer)."""

from __future__ import annotations

import ast
import copy
import json
from pathlib import Path

import pytest

import spiking
from spiking.search.lifecycle import SearchRun, as_experiment
from spiking.search.registry import load_experiment, parse_experiment
from spiking.search.tuner import EXPERIMENT_FILE, SearchError

SEARCH = Path(spiking.__file__).resolve().parent / "search"


def _renamed(name: str, new: str):
    raw = copy.deepcopy(load_experiment(name).raw)
    return parse_experiment(new, raw)


def test_a_parsed_experiment_is_run_as_given_not_reloaded_by_name():
    exp = _renamed("cnn_pt2", "not_registered")
    assert as_experiment(exp) is exp
    assert as_experiment("cnn_pt2").name == "cnn_pt2"


def test_a_driver_refuses_a_kind_it_does_not_run_and_names_the_right_one(tmp_path):
    with pytest.raises(SearchError, match="not a layout ablation"):
        SearchRun.open("cnn_pt2", kinds=("layout_ablation",), budget="smoke", storage=str(tmp_path), seed=1,
                       resume=False, overwrite=False, driver=": it is not a layout ablation")


def test_new_run_writes_experiment_json_and_a_second_start_needs_overwrite(tmp_path):
    exp = _renamed("cnn_pt2", "mine")
    run = SearchRun.open(exp, kinds=("cnn",), budget="smoke", storage=str(tmp_path), seed=7, resume=False,
                         overwrite=False)
    cpus, maxc = run.resources(None, None)
    assert (cpus, maxc) == (float(exp.resources["cpus_per_trial"]), exp.budget("smoke").max_concurrent)
    with pytest.raises(SearchError, match="cpus_per_trial must be > 0"):
        run.resources(0, None)
    meta = run.meta("shards/x", cpus, maxc, split_sha256="ab", train_rows=3)
    assert list(meta)[:9] == ["experiment", "description", "budget", "seed", "storage", "path", "shards",
                              "cpus_per_trial", "max_concurrent"]
    assert list(meta)[-1] == "spec" and meta["spec"] == exp.as_dict() and meta["seed"] == 7
    (tmp_path / "mine" / "stale.txt").parent.mkdir()
    (tmp_path / "mine" / "stale.txt").write_text("old")
    run.start(meta)
    saved = json.loads((tmp_path / "mine" / EXPERIMENT_FILE).read_text())
    assert saved["experiment"] == "mine" and saved["train_rows"] == 3
    assert (tmp_path / "mine" / "stale.txt").exists()  # no overwrite asked: nothing deleted
    with pytest.raises(SearchError, match="already holds a search"):
        SearchRun.open(exp, kinds=("cnn",), budget="smoke", storage=str(tmp_path), seed=7, resume=False,
                       overwrite=False)
    again = SearchRun.open(exp, kinds=("cnn",), budget="smoke", storage=str(tmp_path), seed=7, resume=False,
                           overwrite=True)
    assert (tmp_path / "mine" / "stale.txt").exists()  # deleted only at start, after every check
    again.start(meta)
    assert not (tmp_path / "mine" / "stale.txt").exists()
    out = again.finish({"x": 1})
    assert out["experiment"] == "mine" and out["budget"] == "smoke" and out["x"] == 1 and out["seconds"] >= 0


def test_resuming_a_folder_without_tune_state_is_refused(tmp_path):
    with pytest.raises(SearchError, match="nothing to resume"):
        SearchRun.open("cnn_pt2", kinds=("cnn",), budget="smoke", storage=str(tmp_path), seed=1, resume=True,
                       overwrite=False)


def test_only_the_lifecycle_writes_experiment_json():
    """One writer of experiment.json: no driver writes EXPERIMENT_FILE itself."""
    writers = []
    for path in SEARCH.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Call) and getattr(node.func, "attr", "") in ("write_text", "write_bytes")
                    and "EXPERIMENT_FILE" in ast.unparse(node)):
                writers.append(path.name)
    assert writers == ["lifecycle.py"]
