"""Registry of named search experiments: one TOML file each in ``spiking/search/experiments/``.

Details: docs/modules.md, section ``spiking.search.registry``.
"""

from __future__ import annotations

import copy
import itertools
import math
import random
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from typing import TYPE_CHECKING, Any

from spiking.errors import SpikingError
from spiking.specs.names import MAX_SEED, NENGO_NEURONS, PRESET_NAMES, check_num_steps, is_int, is_real
from spiking.specs.run import CNNConfig, DataConfig, SNNConfig, from_table, to_table
from spiking.specs.train import TrainConfig

# The torch models (CNN_PT and its snnTorch version) are imported inside the functions that check
# cnn/snn configs, so that this module also imports in the Keras/NengoDL environment (no torch).
if TYPE_CHECKING:
    from spiking.models.cnn import CNNArch

BUDGETS = ("smoke", "small", "paper")
KINDS = ("cnn", "snn", "snn_k")
ENVIRONMENTS = ("torch", "nengo")
#: NengoDL spiking neuron types an snn_k trial may use (the keys of
#: ``spiking.keras.conversion.NEURON_TYPES``; a test in tests/nengo checks they agree).
#: Parameters of the CNN_PT search space (their bounds: ``spiking.models.cnn.SEARCH_SPACE``).
ARCHS = ("search", "preset", "transfer")
SCHEDULERS = ("asha", "fifo")
ALGORITHMS = ("optuna-tpe", "none")
METRIC = "val_balanced_accuracy"
CNN_SEARCH_PARAMS = ("w1", "wd1", "h1", "w2", "w3")
#: Keys a trial config may hold, by kind (searched or fixed).
CONFIG_KEYS = {
    "cnn": {"w1", "wd1", "h1", "w2", "w3", "preset", "arch_seed", "lr", "batch_size"},
    "snn": {"neuron", "beta", "lr", "num_steps", "population", "preset", "arch_seed", "batch_size"},
    "snn_k": {"neuron", "synapse", "num_steps", "scale_firing_rates"},
}
_TOP_KEYS = {"description", "kind", "environment", "arch", "train", "metric", "scheduler", "search", "resources", "space",
             "exclude", "fixed", "budgets", "snn", "data"}
_BUDGET_KEYS = {"trials", "epochs", "grace_period", "reduction_factor", "max_concurrent", "n_startup_trials",
                "max_train_rows", "batch_size", "space", "max_eval_rows"}
#: Keys of a search file's ``[snn]`` and ``[train]`` tables: fields of the run specs
#: (:mod:`spiking.specs.run`), which own their defaults and checks; ``[snn] weights`` is the search's own.
SNN_TABLE_KEYS = ("mode", "loss", "normalize", "percentile")
TRAIN_TABLE_KEYS = ("lr", "batch_size", "patience")
#: A search trial stops early only through the scheduler (ASHA), so the file's default patience is 0.
SEARCH_TRAIN = TrainConfig(patience=0)


class ExperimentError(SpikingError):
    """An experiment file that is malformed, or a space that can produce an invalid network."""


@dataclass(frozen=True)
class Budget:
    """How much of an experiment to run: number of trials, maximum epochs per trial, and overrides."""

    name: str
    trials: int
    epochs: int
    grace_period: int
    reduction_factor: float
    max_concurrent: int
    n_startup_trials: int
    max_train_rows: int | None
    batch_size: int  # mini-batch size (the file's [train] batch_size unless the budget overrides it)
    space: dict  # the effective space (file space with this budget's narrowing applied)
    max_eval_rows: int | None = None  # snn_k: validation rows each trial simulates (None = all)

    def as_dict(self) -> dict:
        return {"name": self.name, "trials": self.trials, "epochs": self.epochs, "grace_period": self.grace_period,
                "reduction_factor": self.reduction_factor, "max_concurrent": self.max_concurrent,
                "n_startup_trials": self.n_startup_trials, "max_train_rows": self.max_train_rows,
                "batch_size": self.batch_size, "space": copy.deepcopy(self.space),
                "max_eval_rows": self.max_eval_rows}


@dataclass(frozen=True)
class Experiment:
    """A parsed, checked experiment file. ``raw`` keeps the file's content as read."""

    name: str
    description: str
    kind: str
    arch: str
    train: TrainConfig  # lr, batch_size, patience ([train]); epochs come from the budget
    data: DataConfig
    snn: SNNConfig  # mode, loss, normalize, percentile ([snn]); neuron, beta, num_steps are the trials'
    fixed: dict
    metric: str
    mode: str
    scheduler: dict
    search: dict
    resources: dict
    space: dict
    exclude: list
    budgets: dict = field(repr=False)
    source: str = ""
    raw: dict = field(default_factory=dict, repr=False)
    environment: str = "torch"
    weights: str | None = None  # [snn] weights: the default weight source of a weight-transfer SNN

    def budget(self, name: str) -> Budget:
        """The named budget (``smoke|small|paper``); unknown name -> ExperimentError listing the valid ones."""
        if name not in self.budgets:
            raise ExperimentError(f"experiment {self.name!r} has no budget {name!r}; valid: {sorted(self.budgets)}")
        return self.budgets[name]

    @property
    def weight_transfer(self) -> bool:
        return self.kind in ("snn", "snn_k") and self.snn.mode == "transfer"

    def loss(self) -> str:
        """The SNN loss (``ce`` for transfer, ``mse`` from scratch unless the file says otherwise)."""
        return self.snn.resolved_loss()

    def snn_table(self) -> dict:
        """The ``[snn]`` table as experiment.json holds it: mode, loss, weights, normalize, percentile."""
        t = to_table(self.snn, SNN_TABLE_KEYS)
        return {"mode": t["mode"], "loss": t["loss"], "weights": self.weights, "normalize": t["normalize"],
                "percentile": t["percentile"]}

    def as_dict(self) -> dict:
        return {"name": self.name, "description": self.description, "kind": self.kind,
                "environment": self.environment, "arch": self.arch,
                "train": to_table(self.train, TRAIN_TABLE_KEYS), "data": to_table(self.data, DataConfig.TABLE_KEYS),
                "snn": self.snn_table() if self.kind != "cnn" else None,
                "fixed": self.fixed, "metric": self.metric, "mode": self.mode, "scheduler": self.scheduler,
                "search": self.search, "resources": self.resources, "space": self.space,
                "exclude": self.exclude, "source": self.source}


# --------------------------------------------------------------------------- files
def _experiment_dir():
    return resources.files("spiking.search") / "experiments"


def list_experiments() -> list[str]:
    """Names of the registered experiments (the ``*.toml`` files), sorted."""
    return sorted(p.name[:-5] for p in _experiment_dir().iterdir() if p.name.endswith(".toml"))


def load_experiment(name: str) -> Experiment:
    """Read and check the experiment file ``experiments/<name>.toml`` (a ``kind = "layout_ablation"``
    file gives a :class:`spiking.search.ablation.AblationExperiment`).

    Raises:
        ValueError: unknown name (the message lists the valid names).
        ExperimentError: the file is malformed (a ValueError).
    """
    names = list_experiments()
    if name not in names:
        raise ExperimentError(f"unknown experiment {name!r}; valid experiments: {', '.join(names)}")
    res = _experiment_dir() / f"{name}.toml"
    try:
        raw = tomllib.loads(res.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as e:
        raise ExperimentError(f"{res}: not valid TOML: {e}") from None
    if raw.get("kind") == "layout_ablation":  # a grid of layouts x seeds, not a search (spiking.search.ablation)
        return parse_ablation(name, raw, source=str(res))
    return parse_experiment(name, raw, source=str(res))


def parse_experiment(name: str, raw: dict, source: str = "") -> Experiment:
    """Check the content of one experiment file and fill in the defaults.

    Raises:
        ExperimentError: naming the file and what is wrong (a value of the wrong type included).
    """
    return guarded_parse(_parse_experiment, name, raw, source)


def guarded_parse(parse, name: str, raw: dict, source: str = ""):
    """``parse(name, raw, source)``, with a value of the wrong type anywhere in the file (a table
    where a number belongs, a list where a name does...) reported as an ExperimentError naming the
    file rather than a TypeError traceback."""
    if not isinstance(raw, dict):
        raise ExperimentError(f"{source or name}: an experiment file is a TOML table, got {type(raw).__name__}")
    try:
        return parse(name, raw, source)
    except SpikingError:
        raise
    except (TypeError, ValueError, AttributeError, OverflowError, KeyError) as e:
        raise ExperimentError(f"{source or name}: a value has the wrong type or is missing "
                              f"({type(e).__name__}: {e})") from None


def _parse_experiment(name: str, raw: dict, source: str = "") -> Experiment:
    where = source or name

    def fail(msg: str):
        raise ExperimentError(f"{where}: {msg}")

    unknown = set(raw) - _TOP_KEYS
    if unknown:
        fail(f"unknown keys {sorted(unknown)}; allowed: {sorted(_TOP_KEYS)}")
    kind, arch = raw.get("kind"), raw.get("arch")
    if kind not in KINDS:
        fail(f"kind must be one of {KINDS}, got {kind!r}")
    environment = raw.get("environment", "torch")
    if environment not in ENVIRONMENTS:
        fail(f"environment must be one of {ENVIRONMENTS}, got {environment!r}")
    if (kind == "snn_k") != (environment == "nengo"):
        fail("kind = 'snn_k' (the Keras/NengoDL conversion) goes with environment = 'nengo', and only it")
    if arch not in ARCHS:
        fail(f"arch must be one of {ARCHS}, got {arch!r}")
    train = spec_table(SEARCH_TRAIN, raw.get("train", {}), "[train] ", fail, lambda t: t.check("[train] "),
                       keys=TRAIN_TABLE_KEYS)
    data = check_data(raw.get("data", {}), fail)
    if data.layout != "identity" and environment == "nengo":
        fail("[data] layout: the Keras/NengoDL pipeline (grammar-search CNN_K) takes the profile in file order; "
             "only layout = 'identity' here")
    snn_raw = raw.get("snn", {})
    if not isinstance(snn_raw, dict):
        fail(f"[snn] must be a table, got {snn_raw!r}")
    weights = snn_raw.get("weights")
    if weights is not None and not isinstance(weights, str):
        fail(f"[snn] weights must be an experiment name or a URI, got {weights!r}")
    snn = spec_table(SNNConfig(), {k: v for k, v in snn_raw.items() if k != "weights"}, "[snn] ", fail,
                     lambda t: t.check("[snn] ", only=SNN_TABLE_KEYS), keys=SNN_TABLE_KEYS)
    fixed = dict(raw.get("fixed", {}))
    metric = raw.get("metric", {})
    if metric.get("name", METRIC) != METRIC or metric.get("mode", "max") != "max":
        fail(f"[metric] must be name = {METRIC!r}, mode = 'max' (the only metric the trainable reports)")
    sched = {"type": "asha", "grace_period": 1, "reduction_factor": 3, **raw.get("scheduler", {})}
    if sched["type"] not in SCHEDULERS:
        fail(f"[scheduler] type must be one of {SCHEDULERS}, got {sched['type']!r}")
    search = {"algorithm": "optuna-tpe", "n_startup_trials": 10, **raw.get("search", {})}
    if search["algorithm"] not in ALGORITHMS:
        fail(f"[search] algorithm must be one of {ALGORITHMS}, got {search['algorithm']!r}")
    res = {"cpus_per_trial": 1, "gpus_per_trial": 0.0, "max_concurrent": 1, **raw.get("resources", {})}
    if not (res["cpus_per_trial"] > 0 and 0 <= res["gpus_per_trial"] <= 8 and res["max_concurrent"] >= 1):
        fail(f"[resources] need cpus_per_trial > 0, 0 <= gpus_per_trial, max_concurrent >= 1; got {res}")
    space = {k: _check_param(k, v, fail) for k, v in raw.get("space", {}).items()}
    exclude = [dict(r) for r in raw.get("exclude", [])]

    # What is trained, and from what.
    allowed = CONFIG_KEYS[kind]
    for k in list(space) + list(fixed):
        if k not in allowed:
            fail(f"parameter {k!r} is not understood by a {kind} trial; allowed: {sorted(allowed)}")
    both = set(space) & set(fixed)
    if both:
        fail(f"parameters {sorted(both)} are both searched and fixed")
    if arch == "search":
        if kind != "cnn":
            fail("arch = 'search' is for kind = 'cnn'")
        missing = [p for p in CNN_SEARCH_PARAMS if p not in space]
        if missing:
            fail(f"arch = 'search' needs {list(CNN_SEARCH_PARAMS)} in [space], missing {missing}")
    if arch == "preset":
        if fixed.get("preset") not in PRESET_NAMES:
            fail(f"arch = 'preset' needs [fixed] preset in {sorted(PRESET_NAMES)}, got {fixed.get('preset')!r}")
    if kind == "snn_k":
        if arch != "transfer" or snn.mode != "transfer" or not weights:
            fail("kind = 'snn_k' converts a trained Keras CNN: arch = 'transfer' and [snn] weights = "
                 "'<spiking nas run name>' or the URI of a saved Keras model")
        if sched["type"] != "fifo":
            fail("kind = 'snn_k' has no epochs to stop early at: [scheduler] type = 'fifo'")
    elif kind == "snn":
        if snn.mode == "convert":
            fail("[snn] mode = 'convert' trains nothing, so there is nothing to search; convert a QCFS CNN with "
                 "`spiking run --cnn-activation qcfs --snn-mode convert`")
        if (arch == "transfer") != (snn.mode == "transfer"):
            fail("arch = 'transfer' goes with [snn] mode = 'transfer' (and only with it)")
        if snn.mode == "transfer" and not weights:
            fail("[snn] mode = 'transfer' needs a default weight source: weights = '<cnn experiment>'")
    elif arch == "transfer":
        fail("arch = 'transfer' is for kind = 'snn' or 'snn_k'")
    if search["algorithm"] == "none" and space:
        fail("[search] algorithm = 'none' cannot explore a [space]; use 'optuna-tpe'")
    if search["algorithm"] != "none" and not space:
        fail(f"[search] algorithm = {search['algorithm']!r} needs a [space]")
    for i, rule in enumerate(exclude):
        if len(rule) < 2:
            fail(f"[[exclude]] #{i + 1} must name at least two parameters, got {rule}")
        for k, vals in rule.items():
            if k not in space or space[k]["type"] != "choice":
                fail(f"[[exclude]] #{i + 1}: {k!r} is not a choice parameter of [space]")
            if not isinstance(vals, list) or any(v not in space[k]["values"] for v in vals):
                fail(f"[[exclude]] #{i + 1}: {k} = {vals!r} must be a list of values of [space].{k}")

    budgets = {}
    for bname, b in budget_tables(raw, _BUDGET_KEYS, fail):
        trials, epochs = b.get("trials"), b.get("epochs")
        if not (is_int(trials, 1) and is_int(epochs, 1)):
            fail(f"[budgets.{bname}] needs integers trials >= 1 and epochs >= 1")
        for k, low in (("grace_period", 1), ("max_concurrent", 1), ("n_startup_trials", 0), ("batch_size", 1)):
            if k in b and not is_int(b[k], low):
                fail(f"[budgets.{bname}] {k} must be an integer >= {low}, got {b[k]!r}")
        if "reduction_factor" in b and (isinstance(b["reduction_factor"], bool)
                                        or not isinstance(b["reduction_factor"], (int, float))):
            fail(f"[budgets.{bname}] reduction_factor must be a number > 1, got {b['reduction_factor']!r}")
        if not space and trials != 1:
            fail(f"[budgets.{bname}] an experiment without a [space] runs exactly one trial, got trials = {trials}")
        grace = int(b.get("grace_period", sched.get("grace_period", 1)))
        grace = min(grace, epochs)
        rf = float(b.get("reduction_factor", sched.get("reduction_factor", 3)))
        if grace < 1 or rf <= 1:
            fail(f"[budgets.{bname}] needs grace_period >= 1 and reduction_factor > 1")
        maxc = int(b.get("max_concurrent", res["max_concurrent"]))
        mtr = b.get("max_train_rows")
        if mtr is not None and (not isinstance(mtr, int) or mtr < 2):
            fail(f"[budgets.{bname}] max_train_rows must be an integer >= 2")
        mer = b.get("max_eval_rows")
        if mer is not None and (not isinstance(mer, int) or mer < 2):
            fail(f"[budgets.{bname}] max_eval_rows must be an integer >= 2")
        bs = b.get("batch_size", train.batch_size)
        if not isinstance(bs, int) or bs < 1:
            fail(f"[budgets.{bname}] batch_size must be an integer >= 1")
        eff = copy.deepcopy(space)
        for k, over in b.get("space", {}).items():
            if k not in space:
                fail(f"[budgets.{bname}] space narrows {k!r}, which is not in [space]")
            eff[k] = _narrow(k, space[k], over, lambda m, bn=bname: fail(f"[budgets.{bn}] {m}"))
        budgets[bname] = Budget(bname, trials, epochs, grace, rf, maxc,
                                int(b.get("n_startup_trials", search["n_startup_trials"])), mtr, bs, eff, mer)

    return Experiment(name=name, description=str(raw.get("description", "")), kind=kind, arch=arch, train=train,
                      data=data, snn=snn, fixed=fixed, metric=METRIC, mode="max", scheduler=sched, search=search,
                      resources=res, space=space, exclude=exclude, budgets=budgets, source=source, raw=raw,
                      environment=environment, weights=weights)


def budget_tables(raw: dict, keys: set, fail) -> list[tuple[str, dict]]:
    """``[(name, table)]`` of the file's ``[budgets.smoke|small|paper]``, each checked for unknown keys
    (``keys`` allowed); ``fail(msg)`` raises."""
    raw_b = raw.get("budgets", {})
    if not isinstance(raw_b, dict) or set(raw_b) != set(BUDGETS):
        fail(f"[budgets] must define exactly {list(BUDGETS)}, got {sorted(raw_b) if isinstance(raw_b, dict) else raw_b!r}")
    out = []
    for bname in BUDGETS:
        b = raw_b[bname]
        if not isinstance(b, dict):
            fail(f"[budgets.{bname}] must be a table, got {b!r}")
        if set(b) - keys:
            fail(f"[budgets.{bname}] unknown keys {sorted(set(b) - keys)}")
        out.append((bname, b))
    return out


def spec_table(spec, table, where: str, fail, check, *, keys=None, train_keys=()):
    """``spec`` with a file table's values (:func:`spiking.specs.run.from_table`), then
    ``check(result)`` (the spec's own checks); every SpecError goes to ``fail`` (which names the file)."""
    from spiking.specs import SpecError

    try:
        out = from_table(spec, table, where, keys=keys, train_keys=train_keys)
        check(out)
    except SpecError as e:
        fail(str(e))
    return out


def check_data(given: dict, fail, *, check_layout: bool = True) -> DataConfig:
    """The ``[data]`` table as a :class:`~spiking.specs.run.DataConfig` (its defaults and checks;
    ``check_layout``: also the layout name with its shape and seed). ``fail(msg)`` raises."""
    from spiking.specs import SpecError

    if not isinstance(given, dict):
        fail(f"[data] must be a table, got {given!r}")
    try:
        data = from_table(DataConfig(), given, "[data] ", keys=DataConfig.TABLE_KEYS)
        data.check("[data] ", check_layout=check_layout)
    except SpecError as e:
        fail(str(e))
    return data


def _check_param(name: str, spec: Any, fail) -> dict:
    if not isinstance(spec, dict) or spec.get("type") not in ("int", "float", "choice"):
        fail(f"[space].{name} must be a table with type = 'int' | 'float' | 'choice', got {spec!r}")
    t = spec["type"]
    if t == "choice":
        vals = spec.get("values")
        if not isinstance(vals, list) or not vals or len(set(map(repr, vals))) != len(vals):
            fail(f"[space].{name} needs a non-empty list of distinct values")
        if set(spec) - {"type", "values"}:
            fail(f"[space].{name}: unknown keys {sorted(set(spec) - {'type', 'values'})}")
        return {"type": t, "values": list(vals)}
    if set(spec) - {"type", "low", "high", "log"}:
        fail(f"[space].{name}: unknown keys {sorted(set(spec) - {'type', 'low', 'high', 'log'})}")
    lo, hi = spec.get("low"), spec.get("high")
    num = int if t == "int" else (int, float)
    if not (isinstance(lo, num) and isinstance(hi, num)) or isinstance(lo, bool) or lo > hi:
        fail(f"[space].{name} needs numbers low <= high of type {t}, got low={lo!r}, high={hi!r}")
    log = bool(spec.get("log", False))
    if log and lo <= 0:
        fail(f"[space].{name}: log = true needs low > 0")
    if name in CNN_SEARCH_PARAMS:
        from spiking.models.cnn import SEARCH_SPACE

        slo, shi = SEARCH_SPACE[name]
        if lo < slo or hi > shi:
            fail(f"[space].{name} = [{lo}, {hi}] leaves the CNN_PT search space [{slo}, {shi}]")
    return {"type": t, "low": lo, "high": hi, "log": log}


def _narrow(name: str, base: dict, over: dict, fail) -> dict:
    new = {**base, **over}
    if new.get("type") != base["type"]:
        fail(f"space.{name} cannot change the type of the parameter")
    if base["type"] == "choice":
        if not new["values"] or any(v not in base["values"] for v in new["values"]):
            fail(f"space.{name} values {new['values']} must be a non-empty subset of {base['values']}")
    elif not base["low"] <= new["low"] <= new["high"] <= base["high"]:
        fail(f"space.{name} = [{new['low']}, {new['high']}] must lie inside [{base['low']}, {base['high']}]")
    return new


# --------------------------------------------------------------------------- sampling
def arch_seed_for(seed: int, number: int) -> int:
    """The per-trial seed of the dependent layer sizes: run seed and trial number."""
    return (int(seed) * 1_000_003 + int(number)) % (2**31 - 1)


def suggest_config(trial, *, space: dict, exclude: list, fixed: dict, seed: int, searched_arch: bool) -> dict:
    """Define-by-run sampling of one trial config (Optuna's ``trial.suggest_*`` interface).

    ``trial`` is an ``optuna.Trial`` (through Ray's ``OptunaSearch``) or a
    :class:`RandomTrial`. Returns the full trial config: fixed values, sampled
    values under their plain names, and ``arch_seed`` for a searched CNN.
    Excluded combinations are never produced (see the module doc).
    """
    config: dict = {}
    for name, spec in space.items():
        if spec["type"] == "choice":
            banned, fired = [], []
            for rule in exclude:
                if name in rule and all(k in config and config[k] in v for k, v in rule.items() if k != name):
                    banned.extend(rule[name])
                    fired.append(rule)
            values = [v for v in spec["values"] if v not in banned]
            if not values:
                raise ExperimentError(f"[[exclude]] removes every value of {name!r} given {config}")
            if len(values) == len(spec["values"]):
                config[name] = trial.suggest_categorical(name, values)
            else:
                given = "_".join(sorted({f"{k}-{config[k]}" for rule in fired for k in rule if k != name}))
                config[name] = trial.suggest_categorical(f"{name}__{given}", values)
        elif spec["type"] == "int":
            config[name] = trial.suggest_int(name, spec["low"], spec["high"], log=spec["log"])
        else:
            config[name] = trial.suggest_float(name, spec["low"], spec["high"], log=spec["log"])
    out = {**fixed, **config}
    if searched_arch:
        out["arch_seed"] = arch_seed_for(seed, trial.number)
    return out


def clean_config(config: dict) -> dict:
    """A trial config without the search algorithm's internal names (``beta__neuron-lapicque``)."""
    return {k: v for k, v in config.items() if "__" not in k}


class RandomTrial:
    """A stand-in for ``optuna.Trial`` drawing uniformly at random (used to check a space)."""

    def __init__(self, rng: random.Random, number: int = 0, pick: str | None = None):
        self.rng, self.number, self.pick = rng, number, pick

    def suggest_categorical(self, name, choices):
        return self.rng.choice(list(choices))

    def suggest_int(self, name, low, high, log=False):
        if self.pick == "low":
            return low
        if self.pick == "high":
            return high
        if log:
            return min(high, max(low, int(round(math.exp(self.rng.uniform(math.log(low), math.log(high)))))))
        return self.rng.randint(low, high)

    def suggest_float(self, name, low, high, log=False):
        if log:
            return math.exp(self.rng.uniform(math.log(low), math.log(high)))
        return self.rng.uniform(low, high)


class _FixedTrial:
    """Replays one point of an enumerated all-choice space."""

    def __init__(self, point: dict, number: int = 0):
        self.point, self.number = point, number

    def suggest_categorical(self, name, choices):
        v = self.point[name.split("__")[0]]
        if v not in choices:
            raise _Excluded
        return v


class _Excluded(Exception):
    pass


# --------------------------------------------------------------------------- checks
def _shape(L) -> tuple[int, ...]:
    return (int(L),) if isinstance(L, int) else tuple(int(v) for v in L)


def trial_architecture(exp: Experiment, config: dict, L, transfer_arch: CNNArch | None = None) -> CNNArch:
    """The network architecture of one trial config for input length ``L`` (an int) or input
    shape ``(L,)`` / ``(H, W)`` (a 2-D layout)."""
    from spiking.models.build import derive_for, preset_for

    if exp.arch == "search":
        return derive_for(_shape(L), **{k: config[k] for k in CNN_SEARCH_PARAMS}, rng=config["arch_seed"])
    if exp.arch == "preset":
        return preset_for(config["preset"], _shape(L), seed=int(config.get("arch_seed", 0)))
    if transfer_arch is None:
        raise ExperimentError("weight transfer needs the architecture of the source CNN")
    return transfer_arch


def check_config(exp: Experiment, config: dict, L, n_classes: int,
                 transfer_arch: CNNArch | None = None) -> CNNArch:
    """Raise if ``config`` gives a network the models refuse; return its architecture.

    ``L``: input length or input shape (see :func:`trial_architecture`). The CNN architecture is
    derived and its stage sizes checked; for an SNN the neuron settings are checked by building
    a tiny ``SpikingCNN1d`` (the model's own checks, e.g. Lapicque with beta = 1).
    """
    if exp.kind == "snn_k":
        return check_snn_k_config(config)
    from spiking.models.build import check_arch
    from spiking.models.cnn import CNNArch
    from spiking.models.snn import SpikingCNN1d

    arch = trial_architecture(exp, config, L, transfer_arch)
    check_arch(_shape(L), arch)
    if exp.kind == "snn":
        pop = int(config.get("population", 1))
        if exp.weight_transfer and pop != 1:
            raise ExperimentError("population coding changes the output layer: it cannot take the CNN's weights")
        tiny = CNNArch(w1=1, wd1=2, h1=1, w2=1, wd2=2, h2=1, w3=1, wd3=2, h3=1)
        SpikingCNN1d(8, tiny, n_classes * pop, neuron=config["neuron"], beta=config["beta"],
                     num_steps=int(config["num_steps"]))
        if float(config["lr"]) <= 0:
            raise ExperimentError(f"lr must be > 0, got {config['lr']}")
    return arch


def check_snn_k_config(config: dict) -> None:
    """Raise ExperimentError unless an snn_k config is one NengoDL can simulate: a known spiking
    neuron type (:data:`NENGO_NEURONS`), integer ``num_steps`` >= 1, ``scale_firing_rates`` > 0 and
    ``synapse`` >= 0 (seconds; 0 = no synaptic filter)."""
    if config.get("neuron") not in NENGO_NEURONS:
        raise ExperimentError(f"neuron must be one of {NENGO_NEURONS}, got {config.get('neuron')!r}")
    try:
        check_num_steps(config.get("num_steps"))
    except ValueError as e:
        raise ExperimentError(str(e)) from None
    if not float(config.get("scale_firing_rates", 0)) > 0:
        raise ExperimentError(f"scale_firing_rates must be > 0, got {config.get('scale_firing_rates')!r}")
    if not float(config.get("synapse", -1)) >= 0:
        raise ExperimentError(f"synapse must be >= 0 s (0 = none), got {config.get('synapse')!r}")
    return None


def sample_configs(exp: Experiment, budget: str | Budget, n: int = 300, seed: int = 0) -> list[dict]:
    """Configs the space can produce: all of them when the space is all-choice and small
    (<= 5,000 points), else the corners of the int ranges plus ``n`` random draws."""
    b = exp.budget(budget) if isinstance(budget, str) else budget
    kw = dict(space=b.space, exclude=exp.exclude, fixed=exp.fixed, seed=seed, searched_arch=exp.arch == "search")
    if not b.space:
        return [dict(exp.fixed)]
    if all(s["type"] == "choice" for s in b.space.values()):
        total = math.prod(len(s["values"]) for s in b.space.values())
        if total <= 5000:
            out = []
            for i, combo in enumerate(itertools.product(*(s["values"] for s in b.space.values()))):
                try:
                    out.append(suggest_config(_FixedTrial(dict(zip(b.space, combo)), i), **kw))
                except _Excluded:
                    pass
            return out
    rng = random.Random(seed)
    out = [suggest_config(RandomTrial(rng, i, pick), **kw) for i, pick in enumerate(("low", "high"))]
    out += [suggest_config(RandomTrial(rng, i + 2), **kw) for i in range(n)]
    return out


def validate_space(exp: Experiment, budget: str | Budget, L, n_classes: int, *, n: int = 300, seed: int = 0,
                   transfer_arch: CNNArch | None = None) -> int:
    """Check that no config of the space gives an invalid network for input length (or shape) ``L``.

    Returns the number of configs checked. Raises ExperimentError naming the first
    few offending configs and why.
    """
    configs = sample_configs(exp, budget, n=n, seed=seed)
    bad = []
    for c in configs:
        try:
            check_config(exp, c, L, n_classes, transfer_arch)
        except ValueError as e:  # ArchitectureError and ExperimentError are ValueErrors
            bad.append(f"{c}: {e}")
    if bad:
        raise ExperimentError(f"experiment {exp.name!r}: {len(bad)} of {len(configs)} configs checked give an invalid "
                              f"network for input {'x'.join(map(str, _shape(L)))}, e.g.\n  " + "\n  ".join(bad[:3]))
    return len(configs)


# --------------------------------------------------------------------------- layout ablation files
ABLATION_KIND = "layout_ablation"


#: Keys of the ablation's ``[cnn]`` and ``[snn]`` tables: fields of :class:`~spiking.specs.run.CNNConfig` /
#: :class:`~spiking.specs.run.SNNConfig` (which own the defaults and checks) and, flat, of their ``train``.
ABLATION_CNN_KEYS, ABLATION_CNN_TRAIN_KEYS = ("preset", "arch_seed"), ("lr", "batch_size", "patience")
ABLATION_SNN_KEYS, ABLATION_SNN_TRAIN_KEYS = ("neuron", "beta", "num_steps", "normalize", "percentile"), ("lr", "patience")


_ABLATION_BUDGET_KEYS = {"cnn_epochs", "snn_epochs", "max_train_rows", "batch_size", "seeds", "layouts", "max_concurrent"}


_ABLATION_TOP_KEYS = {"description", "kind", "layouts", "seeds", "data", "cnn", "snn", "resources", "budgets"}


@dataclass(frozen=True)
class AblationBudget:
    """How much of the ablation to run: epochs per network, train rows, batch size, seeds, layouts."""

    name: str
    cnn_epochs: int
    snn_epochs: int
    max_train_rows: int | None
    batch_size: int
    seeds: tuple[int, ...]
    layouts: tuple[str, ...]
    max_concurrent: int

    def as_dict(self) -> dict:
        return {"name": self.name, "cnn_epochs": self.cnn_epochs, "snn_epochs": self.snn_epochs,
                "max_train_rows": self.max_train_rows, "batch_size": self.batch_size, "seeds": list(self.seeds),
                "layouts": list(self.layouts), "max_concurrent": self.max_concurrent}


@dataclass(frozen=True)
class AblationExperiment:
    """A parsed, checked ``kind = "layout_ablation"`` file (see the module doc)."""

    name: str
    description: str
    data: DataConfig
    cnn: CNNConfig  # epochs, seed and device of its train are set per trial (budget, seed)
    snn: SNNConfig  # transfer mode, direct input; likewise
    resources: dict
    budgets: dict = field(repr=False)
    source: str = ""
    raw: dict = field(default_factory=dict, repr=False)
    kind: str = ABLATION_KIND
    environment: str = "torch"
    weight_transfer: bool = False  # no weights from another experiment (each trial trains its own CNN)

    def budget(self, name: str) -> AblationBudget:
        if name not in self.budgets:
            raise ExperimentError(f"experiment {self.name!r} has no budget {name!r}; valid: {sorted(self.budgets)}")
        return self.budgets[name]

    def as_dict(self) -> dict:
        snn = to_table(self.snn, ABLATION_SNN_KEYS, ABLATION_SNN_TRAIN_KEYS)
        snn = {k: snn[k] for k in ("neuron", "beta", "num_steps", "lr", "patience", "normalize", "percentile")}
        return {"name": self.name, "kind": self.kind, "description": self.description,
                "data": to_table(self.data, DataConfig.TABLE_KEYS),
                "cnn": to_table(self.cnn, ABLATION_CNN_KEYS, ABLATION_CNN_TRAIN_KEYS), "snn": snn,
                "resources": self.resources, "source": self.source}


def parse_ablation(name: str, raw: dict, source: str = "") -> AblationExperiment:
    """Check a ``layout_ablation`` file and fill in the defaults.

    Raises:
        ExperimentError: unknown keys, unknown layouts, fewer than one seed, invalid settings or a value
            of the wrong type, naming the file.
    """
    return guarded_parse(_parse_ablation, name, raw, source)


def _parse_ablation(name: str, raw: dict, source: str = "") -> AblationExperiment:
    from spiking.data.layout import LAYOUTS
    from spiking.data.layout.state import layout_options

    where = source or name

    def fail(msg: str):
        raise ExperimentError(f"{where}: {msg}")

    if set(raw) - _ABLATION_TOP_KEYS:
        fail(f"unknown keys {sorted(set(raw) - _ABLATION_TOP_KEYS)}; allowed: {sorted(_ABLATION_TOP_KEYS)}")

    def layouts_of(v, what):
        if (not isinstance(v, list) or not v or not all(isinstance(x, str) and x in LAYOUTS for x in v)
                or len(set(v)) != len(v)):
            fail(f"{what} must be a non-empty list of distinct layouts from {sorted(LAYOUTS)}, got {v!r}")
        return tuple(v)

    def seeds_of(v, what):
        if (not isinstance(v, list) or not v or not all(is_int(x, 0) and x <= MAX_SEED for x in v)
                or len(set(v)) != len(v)):
            fail(f"{what} must be a non-empty list of distinct integers in [0, {MAX_SEED}], got {v!r}")
        return tuple(v)

    for sec in ("data", "cnn", "snn", "resources", "budgets"):
        if sec in raw and not isinstance(raw[sec], dict):
            fail(f"[{sec}] must be a table, got {raw[sec]!r}")

    layouts = layouts_of(raw.get("layouts"), "layouts")
    seeds = seeds_of(raw.get("seeds"), "seeds")
    data = check_data(raw.get("data", {}), fail, check_layout=False)  # layout_shape: the embedding_2d image
    if data.layout != "identity" or "layout_seed" in raw.get("data", {}):
        fail("[data] layout / layout_seed: the ablation compares the layouts of `layouts`, each trial's seed is its "
             "layout seed; leave them unset")
    if data.layout_shape is not None:
        try:
            layout_options("embedding_2d", shape=data.layout_shape)
        except ValueError as e:
            fail(f"[data] layout_shape: {e}")
    cnn = spec_table(CNNConfig(), raw.get("cnn", {}), "[cnn] ", fail, lambda c: c.check("[cnn] "),
                     keys=ABLATION_CNN_KEYS, train_keys=ABLATION_CNN_TRAIN_KEYS)
    snn = spec_table(SNNConfig(encodings=("direct",)), raw.get("snn", {}), "[snn] ", fail,
                     lambda c: c.check("[snn] "), keys=ABLATION_SNN_KEYS, train_keys=ABLATION_SNN_TRAIN_KEYS)
    res = {"cpus_per_trial": 1, "max_concurrent": 1, **raw.get("resources", {})}
    if (set(res) - {"cpus_per_trial", "max_concurrent"} or not is_real(res["cpus_per_trial"])
            or not res["cpus_per_trial"] > 0 or not is_int(res["max_concurrent"], 1)):
        fail(f"[resources] takes cpus_per_trial > 0 and max_concurrent >= 1, got {res}")

    budgets = {}
    for bname, b in budget_tables(raw, _ABLATION_BUDGET_KEYS, fail):
        ints = {k: b.get(k) for k in ("cnn_epochs", "snn_epochs")}
        if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in ints.values()):
            fail(f"[budgets.{bname}] needs integers cnn_epochs >= 1 and snn_epochs >= 1, got {ints}")
        mtr = b.get("max_train_rows")
        if mtr is not None and (isinstance(mtr, bool) or not isinstance(mtr, int) or mtr < 2):
            fail(f"[budgets.{bname}] max_train_rows must be an integer >= 2")
        bs = b.get("batch_size", cnn.train.batch_size)
        if isinstance(bs, bool) or not isinstance(bs, int) or bs < 1:
            fail(f"[budgets.{bname}] batch_size must be an integer >= 1")
        bseeds = seeds_of(b["seeds"], f"[budgets.{bname}] seeds") if "seeds" in b else seeds
        blayouts = layouts_of(b["layouts"], f"[budgets.{bname}] layouts") if "layouts" in b else layouts
        if data.layout_shape is not None and "embedding_2d" not in blayouts:
            fail(f"[data] layout_shape is the embedding_2d image, but [budgets.{bname}] runs no embedding_2d")
        maxc = b.get("max_concurrent", res["max_concurrent"])
        if isinstance(maxc, bool) or not isinstance(maxc, int) or maxc < 1:
            fail(f"[budgets.{bname}] max_concurrent must be an integer >= 1")
        budgets[bname] = AblationBudget(bname, ints["cnn_epochs"], ints["snn_epochs"], mtr, bs, bseeds, blayouts, maxc)
    return AblationExperiment(name=name, description=str(raw.get("description", "")), data=data, cnn=cnn, snn=snn,
                              resources=res, budgets=budgets, source=source, raw=raw)
