"""Read and check what a run or an experiment folder holds, for the report.

Details: docs/modules.md, section ``spiking.report.inputs``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from spiking.artifacts import ArtifactError
from spiking.artifacts.results import JsonShape, describe, read_results
from spiking.artifacts.results import is_num as is_num  # re-exported: spiking.report.build uses it
from spiking.data.ingest.shards import locate_shards
from spiking.errors import SpikingError


class ReportError(SpikingError):
    """The target cannot be reported on (not a run or experiment folder, results missing or
    unreadable). The CLI prints it as one line and exits with code 2."""


# --------------------------------------------------------------------------- inputs
def _read_json(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text())
    except ValueError as e:  # JSONDecodeError, and UnicodeDecodeError for a binary file
        raise ReportError(f"{path} is not valid JSON ({what}): {e}") from None


#: The kinds of folder a report accepts and the files that make one (for the error message).
KINDS = ("a run folder (config.json + results.json)",
         "an experiment folder (experiment.json + results.json + trials.json)",
         "an architecture-search folder (nas.json + generations.json + results.json)",
         "a repeated run's folder (summary.json)")


def detect_kind(root: Path) -> str:
    """``"run"``, ``"experiment"``, ``"nas"`` or ``"repeats"``; raises ReportError with what is missing."""
    if not root.exists():
        raise ReportError(f"{root} does not exist")
    if not root.is_dir():
        raise ReportError(f"{root} is not a folder (expected a run folder, an experiment folder or an "
                          "architecture-search folder)")
    if (root / "nas.json").is_file():
        missing = [f for f in ("generations.json", "results.json") if not (root / f).is_file()]
        if missing:
            raise ReportError(f"architecture-search folder {root} has no {' or '.join(missing)}: the search has not "
                              "finished (run `spiking nas` to the end, or with --resume)")
        return "nas"
    if (root / "experiment.json").is_file():
        missing = [f for f in ("results.json", "trials.json") if not (root / f).is_file()]
        if missing:
            raise ReportError(f"experiment folder {root} has no {' or '.join(missing)}: the search has not "
                              "finished (run `spiking tune` to the end, or with --resume)")
        return "experiment"
    if (root / "summary.json").is_file():
        return "repeats"
    if (root / "config.json").is_file():
        if not (root / "results.json").is_file():
            raise ReportError(f"run folder {root} has no results.json: evaluate it first "
                              f"(`spiking evaluate --runs-dir {root.parent} --run-name {root.name}`)")
        return "run"
    raise ReportError(f"{root} is neither {KINDS[0]}, nor {KINDS[1]}, nor {KINDS[2]}, nor {KINDS[3]}")


class _Shape(JsonShape):
    """Checks the structure of one JSON file; every failure is a ReportError naming the file and the field."""

    def __init__(self, path: Path):
        super().__init__(path, ReportError)


def _read_results(path: Path) -> dict:
    """The checked ``results.json`` (:func:`spiking.artifacts.results.read_results`) as a plain dict."""
    try:
        return read_results(path).to_dict()
    except ArtifactError as e:
        raise ReportError(str(e)) from None


def _check_config(cfg: Any, path: Path) -> dict:
    c = _Shape(path)
    cfg = c.obj(cfg, "", optional=False)
    data = c.obj(cfg.get("data"), "data")
    c.text(data, "shards", "data")
    c.text(data, "layout", "data")
    c.obj(cfg.get("cnn"), "cnn")
    return cfg


def _check_experiment(exp: Any, path: Path) -> dict:
    c = _Shape(path)
    exp = c.obj(exp, "", optional=False)
    c.text(exp, "shards", "")
    c.text(exp, "split_sha256", "")
    c.obj(exp.get("budget"), "budget")
    spec = c.obj(exp.get("spec"), "spec")
    c.obj(spec.get("data"), "spec.data")
    return exp


def _check_trials(trials: Any, path: Path) -> list:
    c = _Shape(path)
    if not isinstance(trials, list):
        raise ReportError(f"{path} is not a list of trials")
    for i, t in enumerate(trials):
        w = f"trials[{i}]"
        t = c.obj(t, w, optional=False)
        c.num(t, "best_val_balanced_accuracy", w)
        cfg = c.obj(t.get("config"), f"{w}.config")
        c.num(cfg, "num_steps", f"{w}.config", minimum=0)
        c.num(cfg, "n_steps", f"{w}.config", minimum=0)
        eff = c.obj(t.get("efficiency"), f"{w}.efficiency")
        c.num(eff, "energy_pj", f"{w}.efficiency", minimum=0)
        val = c.obj(t.get("val"), f"{w}.val")  # the snn_k trials' validation block
        for k in ("val_accuracy", "mean_firing_rate_hz", "energy_pj", "synops"):
            c.num(val, k, f"{w}.val", minimum=0)
    return trials


def _check_nas(nas: Any, path: Path) -> dict:
    c = _Shape(path)
    nas = c.obj(nas, "", optional=False)
    for k in ("name", "budget", "grammar_file", "shards", "split_sha256"):
        c.text(nas, k, "")
    s = c.obj(nas.get("settings"), "settings")
    for k in ("generations", "offspring"):
        c.num(s, k, "settings", minimum=0)
    for k in ("time_budget_s", "max_params", "max_epochs"):
        c.num(s, k, "settings", minimum=0)
    for j, o in enumerate(c.arr(s.get("objectives"), "settings.objectives")):
        if not isinstance(o, str):
            c.fail(f"settings.objectives[{j}]", f"must be a string, not {describe(o)}")
    c.obj(nas.get("rates"), "rates")
    return nas


def _check_rows(rows: Any, path: Path, what: str = "rows") -> list:
    """``generations.json`` / ``front.json``: a list of individuals' rows."""
    c = _Shape(path)
    if not isinstance(rows, list):
        raise ReportError(f"{path} is not a list of individuals' {what}")
    for i, r in enumerate(rows):
        w = f"[{i}]"
        r = c.obj(r, w, optional=False)
        if not isinstance(r.get("id"), str) or not r["id"]:
            c.fail(f"{w}.id", f"must be a non-empty string, not {describe(r.get('id'))}")
        c.num(r, "generation", w, minimum=0)
        for k in ("parameters", "macs", "epochs", "seconds"):
            c.num(r, k, w, minimum=0)
        for k in ("fitness", "val_accuracy", "val_balanced_accuracy"):
            c.num(r, k, w)
        for k in ("parent", "phenotype", "stopped_by", "error"):
            c.text(r, k, w)
        for j, m in enumerate(c.arr(r.get("mutations"), f"{w}.mutations")):
            if not isinstance(m, str):
                c.fail(f"{w}.mutations[{j}]", f"must be a string, not {describe(m)}")
    return rows


def read_manifest(shards: str) -> dict:
    if "://" in shards:
        import pyarrow.fs as pafs

        fs, base = pafs.FileSystem.from_uri(shards)
        with fs.open_input_stream(base.rstrip("/") + "/manifest.json") as fh:
            return json.loads(fh.read().decode("utf-8"))
    return json.loads((Path(shards) / "manifest.json").read_text())


class ReportInputs:
    """Everything read from the target folder (lazily for the data)."""

    def __init__(self, root: Path, kind: str, source: str | None = None):
        self.root, self.kind = root, kind
        self.source = source or str(root)  # what the report calls the folder (the URI of a copied-down one)
        self.results = _read_results(root / "results.json")
        self.classes: list[str] = [str(c) for c in self.results["dataset"]["classes"]]
        self.config = self.experiment = self.trials = self.nas = self.rows = None
        self.front: list | None = None
        if kind == "run":
            self.config = _check_config(_read_json(root / "config.json", "run settings"), root / "config.json")
        elif kind == "nas":
            self.nas = _check_nas(_read_json(root / "nas.json", "search settings"), root / "nas.json")
            self.rows = _check_rows(_read_json(root / "generations.json", "generations"), root / "generations.json")
            if (root / "front.json").is_file():
                self.front = _check_rows(_read_json(root / "front.json", "Pareto front"), root / "front.json",
                                         "rows (the Pareto front)")
        else:
            self.experiment = _check_experiment(_read_json(root / "experiment.json", "experiment"),
                                                root / "experiment.json")
            self.trials = _check_trials(_read_json(root / "trials.json", "trials"), root / "trials.json")
        if kind == "run":
            named = (self.config.get("data") or {}).get("shards") or self.results["dataset"].get("shards")
        elif kind == "nas":
            named = self.nas.get("shards") or self.results["dataset"].get("shards")
        else:
            named = (self.experiment or {}).get("shards") or self.results["dataset"].get("shards")
        self.shards_named = named
        self.shards = locate_shards(named, root)
        self._prep = None
        self._prep_error: str | None = None
        self._ckpts: dict[Path, dict | None] = {}

    @property
    def converted(self) -> bool:
        """An experiment whose spiking networks are converted, not trained (``spiking tune snn_k``:
        NengoDL conversions of a Keras CNN, no ``.pt`` file, no training history)."""
        if self.kind != "experiment":
            return False
        spec = (self.experiment or {}).get("spec") or {}
        return spec.get("kind") == "snn_k" or any(
            isinstance(m.get("snn"), dict) and m["snn"].get("framework") == "nengo-dl" for m in self.results["models"])

    def model_file(self, entry: dict) -> Path:
        """The saved network of a results.json model entry."""
        name = str(entry["name"])
        if isinstance(entry.get("ablation"), dict) and entry["ablation"].get("file"):  # spiking tune layout_ablation
            return self.root / str(entry["ablation"]["file"])
        if self.kind == "experiment":
            role = name.rsplit(":", 1)[-1]
            return self.root / f"{role}_model.pt"
        return self.root / f"{name}.pt"

    def checkpoint(self, path: Path) -> dict | None:
        if path not in self._ckpts:
            from spiking.artifacts.checkpoint import read_checkpoint

            try:
                self._ckpts[path] = read_checkpoint(path) if path.is_file() else None
            except Exception:  # an unreadable checkpoint is reported as missing
                self._ckpts[path] = None
        return self._ckpts[path]

    def prepared(self):
        """The run's prepared data (saved split and scaling re-applied), or None with ``prep_error`` set."""
        if self._prep is not None or self._prep_error is not None:
            return self._prep
        if self.shards is None:
            self._prep_error = f"the shards ({self.shards_named}) are not there any more"
            return None
        try:
            from spiking.data.ingest import load_dataset

            ds = load_dataset(self.shards)
            if self.kind == "run":
                from spiking.data.preprocess.prepare import load_prepared

                if not (self.root / "split.json").is_file() or not (self.root / "preprocessor.joblib").is_file():
                    self._prep_error = "the run's split.json / preprocessor.joblib are missing"
                    return None
                self._prep = load_prepared(ds, self.root)
            else:
                from spiking.data.preprocess.prepare import prepare, split_fingerprint

                d = ((self.experiment or {}).get("spec") or {}).get("data")
                if not d:
                    self._prep_error = "experiment.json does not record the data settings"
                    return None
                prep = prepare(ds, top_k=int(d["top_k"]), fractions=tuple(d["fractions"]), seed=int(d["seed"]),
                               log2=bool(d["log2"]), zscore=str(d["zscore"]))
                want = (self.experiment or {}).get("split_sha256")
                if want and split_fingerprint(prep) != want:
                    self._prep_error = "re-preparing the data gave another split than the experiment's"
                    return None
                self._prep = prep
        except (OSError, ValueError, KeyError, TypeError) as e:
            self._prep_error = f"the data could not be re-prepared: {e}"
        return self._prep

    @property
    def prep_error(self) -> str | None:
        return self._prep_error

    def saved_layout(self) -> tuple[dict | None, list[str] | None, str | None]:
        """``(state, feature_names, error)`` of a run folder, read from its saved files only (no shards).

        ``state``: the fitted layout as saved in ``layout.json`` (:mod:`spiking.data.layout.state`); a run
        saved before layouts existed (no ``layout.json``) has the identity layout over its features.
        ``feature_names``: the features in file order, from ``split.json``. Whatever cannot be read is
        None, and ``error`` says why (the first problem met).
        """
        names = error = None
        try:
            split = json.loads((self.root / "split.json").read_text())
            got = split.get("feature_names") if isinstance(split, dict) else None
            if isinstance(got, list) and got and all(isinstance(n, str) for n in got):
                names = got
            else:
                error = "split.json lists no feature names"
        except FileNotFoundError:
            error = "the run's split.json is missing"
        except (OSError, ValueError) as e:
            error = f"split.json could not be read ({e})"
        path = self.root / "layout.json"
        if path.is_file():
            try:
                state = json.loads(path.read_text())
            except (OSError, ValueError) as e:
                return None, names, f"layout.json could not be read ({e})"
            if not isinstance(state, dict) or not isinstance(state.get("name"), str):
                return None, names, "layout.json does not describe a layout"
            return state, names, error
        from spiking.data.layout.state import identity_state

        n = len(names) if names else self.results["dataset"].get("n_features")
        if not n:
            return None, names, error or "the number of features is not recorded"
        return identity_state(int(n)), names, error
