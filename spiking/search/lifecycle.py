"""The lifecycle every Ray Tune driver shares (``runner``, ``snn_k``, ``ablation``): parsed experiment
-> folder in the storage -> resume/overwrite check -> resources -> data -> ``experiment.json`` ->
fit -> export. Each driver adds only what is its own (weights, payload, trainable, export)."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from spiking.artifacts import storage as st
from spiking.search.tuner import EXPERIMENT_FILE, SearchError, has_experiment_state, saved_experiment


def as_experiment(exp):
    """``exp`` itself when parsed (an Experiment or AblationExperiment), else the registered
    experiment of that name (:func:`spiking.search.registry.load_experiment`)."""
    if isinstance(exp, str):
        from spiking.search.registry import load_experiment

        return load_experiment(exp)
    return exp


@dataclass
class SearchRun:
    """One run of a parsed experiment in its folder ``<storage>/<experiment name>``.

    Attributes: ``exp`` (the parsed experiment), ``budget`` (its Budget/AblationBudget), ``fs``/``root``
    (the storage, :func:`spiking.artifacts.storage.open_storage`), ``path``/``uri`` (the folder),
    ``seed``, ``resume``, ``overwrite``, ``saved`` (the folder's experiment.json when resuming).
    """

    exp: Any
    budget: Any
    fs: Any
    root: str
    path: str
    seed: int
    resume: bool
    overwrite: bool
    saved: dict | None = None
    started: float = field(default_factory=time.perf_counter)

    @classmethod
    def open(cls, exp, *, kinds: tuple[str, ...], budget: str, storage: str | None, seed: int, resume: bool,
             overwrite: bool, what: str = "a search", driver: str = "") -> "SearchRun":
        """Check the experiment's kind, open its folder and check it against ``resume``/``overwrite``.

        Raises:
            SearchError: a kind this driver does not run (``driver`` names the right one); resuming a
                folder without Tune state or experiment.json, or started with another budget or seed;
                a folder that already holds an experiment (``what``), without ``overwrite``.
            ExperimentError: an unknown budget; StorageError: the storage cannot be opened.
        """
        exp = as_experiment(exp)
        if exp.kind not in kinds:
            raise SearchError(f"experiment {exp.name!r} (kind {exp.kind!r}) is not run here{driver}")
        b = exp.budget(budget)
        fs, root = st.open_storage(storage)
        run = cls(exp=exp, budget=b, fs=fs, root=root, path=st.join(fs, root, exp.name), seed=seed, resume=resume,
                  overwrite=overwrite)
        if resume:
            run.saved = saved_experiment(fs, run.path, b.name, seed)
        elif has_experiment_state(fs, run.path) and not overwrite:
            raise SearchError(f"experiment folder {run.uri} already holds {what}; use --resume "
                              "(resume=True) to continue it, --overwrite (overwrite=True) to start over, "
                              "or another --storage")
        return run

    @property
    def uri(self) -> str:
        return st.to_uri(self.fs, self.path)

    @property
    def storage_uri(self) -> str:
        return st.to_uri(self.fs, self.root)

    def resources(self, cpus_per_trial: float | None, max_concurrent: int | None) -> tuple[float, int]:
        """``(cpus per trial, trials at once)``: the arguments, else the file's resources and the budget's.

        Raises:
            SearchError: cpus <= 0 or max_concurrent < 1.
        """
        cpus = float(cpus_per_trial if cpus_per_trial is not None else self.exp.resources["cpus_per_trial"])
        maxc = int(max_concurrent if max_concurrent is not None else self.budget.max_concurrent)
        if cpus <= 0 or maxc < 1:
            raise SearchError(f"cpus_per_trial must be > 0 and max_concurrent >= 1, got {cpus}, {maxc}")
        return cpus, maxc

    def load_data(self, shards: str, data=None):
        """``(prep_full, prep, dataset_info, split_sha256)`` of ``data`` (default the experiment's
        ``[data]``), the train part cut to the budget's ``max_train_rows``
        (:func:`spiking.search.data.load_split`)."""
        from spiking.data.preprocess.prepare import split_fingerprint
        from spiking.search.data import load_split

        prep_full, prep, info = load_split(shards, self.exp.data if data is None else data,
                                           self.budget.max_train_rows, self.seed)
        return prep_full, prep, info, split_fingerprint(prep_full)

    def meta(self, shards: str, cpus: float, maxc: int, **extra) -> dict:
        """The fields of experiment.json every driver writes, then ``extra`` (the driver's own)."""
        return {"experiment": self.exp.name, **({"kind": extra.pop("kind")} if "kind" in extra else {}),
                "description": self.exp.description, "budget": self.budget.as_dict(), "seed": self.seed,
                "storage": self.storage_uri, "path": self.uri, "shards": str(shards), "cpus_per_trial": cpus,
                "max_concurrent": maxc, **extra, "spec": self.exp.as_dict()}

    def start(self, meta: dict) -> None:
        """A new run: delete the old folder (``overwrite``; only now that every check has passed)
        and write ``experiment.json`` (its one writer); a resumed run keeps its folder."""
        if self.resume:
            return
        if self.overwrite and st.exists(self.fs, self.path):
            self.fs.delete_dir(self.path)
        st.write_text(self.fs, st.join(self.fs, self.path, EXPERIMENT_FILE),
                      json.dumps(meta, indent=2, default=str) + "\n")

    def finish(self, out: dict, *, storage: bool = True) -> dict:
        """What a driver returns: experiment, budget, (storage,) path, ``out``, seconds."""
        head = {"experiment": self.exp.name, "budget": self.budget.name}
        if storage:
            head["storage"] = self.storage_uri
        return {**head, "path": self.uri, **out, "seconds": time.perf_counter() - self.started}


__all__ = ["SearchRun", "as_experiment"]
