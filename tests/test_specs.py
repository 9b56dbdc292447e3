"""One owner per setting: the command line, the TOML experiments and the layout ablation fill the
same typed specs (spiking.specs.run), with one set of defaults and one set of checks."""

from __future__ import annotations

import copy
import inspect
import re
from dataclasses import replace
from pathlib import Path

import pytest

from spiking.cli.main import _run_config, build_parser
from spiking.models.snn import SpikingCNN1d
from spiking.models.snn2d import SpikingCNN2d
from spiking.search.registry import (
    ExperimentError,
    check_snn_k_config,
    list_experiments,
    load_experiment,
    parse_ablation,
    parse_experiment,
)
from spiking.specs import SpecError
from spiking.specs.names import DEFAULT_SHARDS, MAX_NUM_STEPS, check_num_steps
from spiking.specs.run import CNNConfig, DataConfig, RunConfig, SNNConfig, from_table, to_table

ROOT = Path(__file__).resolve().parents[1]


def _ablation_raw() -> dict:
    return copy.deepcopy(load_experiment("layout_ablation").raw)


def test_the_spiking_networks_default_to_the_run_settings():
    """beta was 1.0 in the run settings and 0.9 in the models: now one default."""
    s = SNNConfig()
    for model in (SpikingCNN1d, SpikingCNN2d):
        params = inspect.signature(model).parameters
        assert params["beta"].default == s.beta
        assert params["num_steps"].default == s.num_steps


def test_an_ablation_file_without_cnn_and_snn_tables_takes_the_run_defaults():
    raw = _ablation_raw()
    del raw["cnn"], raw["snn"]
    exp = parse_ablation("a", raw)
    c, s = CNNConfig(), SNNConfig()
    assert (exp.cnn.preset, exp.cnn.arch_seed, exp.cnn.train.lr, exp.cnn.train.patience) == \
           (c.preset, c.arch_seed, c.train.lr, c.train.patience)
    assert (exp.snn.neuron, exp.snn.beta, exp.snn.num_steps, exp.snn.train.lr, exp.snn.train.patience,
            exp.snn.percentile) == (s.neuron, s.beta, s.num_steps, s.train.lr, s.train.patience, s.percentile)


def test_the_command_line_defaults_are_the_spec_defaults():
    a = build_parser().parse_args(["train", "--shards", "x"])
    cfg = _run_config(a, "x")
    want = RunConfig()
    want.data.shards = "x"
    assert cfg.to_dict() == want.to_dict()


def test_the_makefile_shards_default_is_the_specs_one():
    m = re.search(r"^SHARDS \?= (\S+)$", (ROOT / "Makefile").read_text(), re.M)
    assert m and m.group(1) == DEFAULT_SHARDS == DataConfig().shards


@pytest.mark.parametrize("bad", [0, -3, 2.5, True, MAX_NUM_STEPS + 1])
def test_num_steps_is_checked_once_for_every_surface(bad):
    with pytest.raises(SpecError, match="num_steps"):
        check_num_steps(bad)
    with pytest.raises(SpecError, match="SNN num_steps"):
        RunConfig(snn=replace(SNNConfig(), num_steps=bad)).validate()
    raw = _ablation_raw()
    raw["snn"]["num_steps"] = bad
    with pytest.raises(ExperimentError, match=r"\[snn\] num_steps"):
        parse_ablation("a", raw)
    with pytest.raises(ExperimentError, match="num_steps"):
        check_snn_k_config({"neuron": "LIF", "num_steps": bad, "scale_firing_rates": 1.0, "synapse": 0.0})


def test_the_models_take_any_number_of_steps_the_run_settings_bound_it():
    assert check_num_steps(MAX_NUM_STEPS + 1, bounded=False) == MAX_NUM_STEPS + 1
    with pytest.raises(SpecError, match="integer"):
        check_num_steps(3.0, bounded=False)


@pytest.mark.parametrize("table,match", [
    ({"top_k": -1}, r"\[data\] top_k must be an integer >= 0"),
    ({"fractions": [0.5, 0.5, 0.5]}, r"\[data\] fractions must be three numbers"),
    ({"zscore": "rank"}, r"\[data\] zscore must be one of feature, sample, none"),
    ({"log2": "yes"}, r"\[data\] log2 must be true or false"),
    ({"layout_shape": [40]}, r"\[data\] layout_shape must be \[H, W\]"),
    ({"colour": 1}, r"\[data\] unknown keys \['colour'\]"),
])
def test_a_bad_data_table_is_refused_by_the_data_spec(table, match):
    exp = copy.deepcopy(load_experiment("cnn_search").raw)
    exp["data"] = table
    with pytest.raises(ExperimentError, match=match):
        parse_experiment("x", exp)
    raw = _ablation_raw()
    raw["data"] = table
    with pytest.raises(ExperimentError, match=match):
        parse_ablation("a", raw)
    if "colour" not in table:  # the same check, without the table prefix, from the command line's run settings
        value = {k: (tuple(v) if isinstance(v, list) else v) for k, v in table.items()}
        with pytest.raises(SpecError, match=match.replace(r"\[data\] ", "")):
            RunConfig(data=replace(DataConfig(), **value)).validate()


def test_a_bad_train_table_is_refused_by_the_train_spec():
    exp = copy.deepcopy(load_experiment("cnn_search").raw)
    for table, match in (({"lr": 0}, r"\[train\] learning rate lr"), ({"patience": -1}, r"\[train\] patience"),
                         ({"epochs": 3}, r"\[train\] unknown keys \['epochs'\]")):
        exp["train"] = table
        with pytest.raises(ExperimentError, match=match):
            parse_experiment("x", exp)


def test_tables_round_trip_through_the_specs():
    d = from_table(DataConfig(), {"top_k": 5, "fractions": [0.6, 0.2, 0.2], "layout_shape": [40, 40]}, "[data] ",
                   keys=DataConfig.TABLE_KEYS)
    assert d.fractions == (0.6, 0.2, 0.2) and d.layout_shape == (40, 40) and d.seed == DataConfig().seed
    t = to_table(d, DataConfig.TABLE_KEYS)
    assert t["fractions"] == [0.6, 0.2, 0.2] and list(t) == list(DataConfig.TABLE_KEYS)
    assert from_table(DataConfig(), t, "", keys=DataConfig.TABLE_KEYS) == d
    with pytest.raises(SpecError, match="must be a table"):
        from_table(DataConfig(), [1, 2], "[data] ")


@pytest.mark.parametrize("name", list_experiments())
def test_experiment_json_keeps_its_format(name):
    """experiment.json (resume compares it) holds plain tables, in the file's order, as before the specs."""
    exp = load_experiment(name)
    d = exp.as_dict()
    assert list(d["data"]) == list(DataConfig.TABLE_KEYS)
    if exp.kind == "layout_ablation":
        assert list(d["cnn"]) == ["preset", "arch_seed", "lr", "batch_size", "patience"]
        assert list(d["snn"]) == ["neuron", "beta", "num_steps", "lr", "patience", "normalize", "percentile"]
        return
    assert list(d["train"]) == ["lr", "batch_size", "patience"]
    if exp.kind != "cnn":
        assert list(d["snn"]) == ["mode", "loss", "weights", "normalize", "percentile"]
        assert d["snn"]["weights"] == exp.raw["snn"].get("weights")


@pytest.mark.parametrize("threshold", [0.0, -0.1, 1.5, float("nan")])
def test_a_bad_delta_threshold_is_refused_before_training_whatever_the_encodings(threshold):
    """The spiking CNN checks its threshold for every encoding: the run settings must refuse it first
    (it once passed with --encodings direct and failed after the CNN had trained)."""
    with pytest.raises(SpecError, match="delta threshold"):
        RunConfig(snn=replace(SNNConfig(), encodings=("direct",), delta_threshold=threshold)).validate()
    with pytest.raises(ValueError, match="delta threshold"):
        SpikingCNN1d(64, {"w1": 1, "wd1": 2, "h1": 1, "w2": 1, "wd2": 2, "h2": 1, "w3": 1, "wd3": 2, "h3": 1}, 3,
                     delta_threshold=threshold)
