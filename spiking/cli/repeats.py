"""Repeated runs: ``spiking run --seeds 0,1,2,3,4`` and ``spiking run --cv K``.

Each repeat is a whole run (its own split or fold, CNN, SNNs, baselines, results.json and report)
in ``<run folder>/<repeat>/``; ``summary.json`` beside them holds the figures over repeats
(:func:`spiking.evaluation.summary.summarize`, written by :func:`spiking.artifacts.summary.write_summary`).
"""

from __future__ import annotations

import copy
import re
import shutil
from pathlib import Path
from typing import Callable

from spiking.errors import SpikingError
from spiking.specs.names import DEFAULT_FOLDS, MAX_FOLDS, MAX_SEED, MIN_FOLDS

#: How many repeats one command may plan (seeds x folds).
MAX_REPEATS = 100
#: Folder names of repeats, and the files of a repeated run's folder (removed when it starts afresh).
REPEAT_GLOBS = ("seed_*", "fold_*", "summary.json", "report")
#: What a repeat's folder is called: only folders named so are removed by the ``seed_*``/``fold_*`` patterns.
REPEAT_DIR = re.compile(r"(seed_[0-9]+(_fold_[0-9]+)?|fold_[0-9]+)")
_DIGITS = re.compile(r"[0-9]+")


class RepeatError(SpikingError):
    """Seeds or folds that cannot be planned (a user error)."""


def parse_seeds(text: str) -> tuple[int, ...]:
    """``"0,1,2"`` -> ``(0, 1, 2)``: distinct integers in [0, MAX_SEED].

    Raises:
        RepeatError: an empty list, a non-integer, a repeated seed or one out of range."""
    parts = [p.strip() for p in str(text).split(",") if p.strip()]
    if not parts:
        raise RepeatError(f"--seeds needs a comma-separated list of seeds, e.g. 0,1,2,3,4; got {text!r}")
    if len(parts) != len(str(text).split(",")):
        raise RepeatError(f"--seeds has an empty item: {text!r} (give e.g. 0,1,2,3,4)")
    seeds = []
    for p in parts:
        if not _DIGITS.fullmatch(p):
            raise RepeatError(f"--seeds: {p!r} is not an integer >= 0 (give e.g. 0,1,2,3,4)")
        if len(p.lstrip("0")) > len(str(MAX_SEED)):  # also spares int() a 4,300-digit string
            raise RepeatError(f"--seeds: {p[:20]}... is outside [0, {MAX_SEED}]")
        s = int(p)
        if not 0 <= s <= MAX_SEED:
            raise RepeatError(f"--seeds: {s} is outside [0, {MAX_SEED}]")
        seeds.append(s)
    if len(set(seeds)) != len(seeds):
        raise RepeatError(f"--seeds repeats a seed: {text!r}")
    if len(seeds) > MAX_REPEATS:
        raise RepeatError(f"--seeds: {len(seeds)} seeds, at most {MAX_REPEATS}")
    return tuple(seeds)


def parse_cv(text: str) -> int | str:
    """``--cv`` value: an integer number of folds in [MIN_FOLDS, MAX_FOLDS], or ``"auto"``
    (``--cv`` alone: :func:`spiking.data.preprocess.split.auto_folds`)."""
    if str(text).strip().lower() == "auto":
        return "auto"
    if not _DIGITS.fullmatch(str(text).strip()):
        raise RepeatError(f"--cv takes a number of folds (e.g. --cv 5) or nothing, got {text!r}")
    k = int(text)
    if not MIN_FOLDS <= k <= MAX_FOLDS:
        raise RepeatError(f"--cv {k}: the number of folds must be in [{MIN_FOLDS}, {MAX_FOLDS}]")
    return k


def plan(seeds: tuple[int, ...], folds: int | None) -> list[dict]:
    """The repeats ``[{"name", "seed", "fold"}]``: one per seed (``seed_<s>``), one per fold
    (``fold_<k>``), or every seed x fold (``seed_<s>_fold_<k>``)."""
    if folds is None:
        return [{"name": f"seed_{s}", "seed": s, "fold": None} for s in seeds]
    if len(seeds) == 1:
        return [{"name": f"fold_{k}", "seed": seeds[0], "fold": k} for k in range(folds)]
    reps = [{"name": f"seed_{s}_fold_{k}", "seed": s, "fold": k} for s in seeds for k in range(folds)]
    if len(reps) > MAX_REPEATS:
        raise RepeatError(f"{len(seeds)} seeds x {folds} folds = {len(reps)} runs, at most {MAX_REPEATS}")
    return reps


def protocol(seeds: tuple[int, ...], folds: int | None, many_seeds: bool) -> dict:
    """The summary's ``protocol`` block."""
    kind = "seeds" if folds is None else ("seeds x cv" if many_seeds else "cv")
    return {"kind": kind, "seeds": list(seeds), "folds": folds}


def repeat_config(cfg, rep: dict, folds: int | None):
    """A copy of the run settings ``cfg`` for repeat ``rep``: its seed for the split and both
    networks' training, and its fold."""
    c = copy.deepcopy(cfg)
    c.data.seed = rep["seed"]
    c.data.cv, c.data.fold = (folds, rep["fold"]) if folds is not None else (0, 0)
    c.cnn.train.seed = c.snn.train.seed = rep["seed"]
    c.validate()
    return c


def resolve_folds(cv, cfg) -> int | None:
    """The number of folds: None without ``--cv``, ``cv`` itself, or for ``"auto"`` the folds the
    task's smallest class allows (it reads the shards).

    Raises:
        DataError: naming the classes with too few patients for the folds."""
    if not cv:
        return None
    from spiking.data.ingest import load_dataset
    from spiking.data.preprocess.prepare import task_labels
    from spiking.data.preprocess.split import auto_folds, check_folds

    _, y, groups, classes = task_labels(load_dataset(cfg.data.shards), cfg.data.top_k)
    if cv == "auto":
        k = auto_folds(y, groups, classes)
        if k != DEFAULT_FOLDS:
            print(f"--cv: {k} folds (the smallest class has too few patients for {DEFAULT_FOLDS})")
        return k
    check_folds(y, groups, cv, classes)  # every class named before any training
    return cv


def check_splits(cfg, reps: list[dict], folds: int | None) -> None:
    """Make every repeat's split now, as its ``prepare`` will (held-out split of its seed, or its
    fold), so that a class some part would lack is named before any training.

    Raises:
        DataError: naming the class and the part it would lack."""
    from spiking.data.ingest import load_dataset
    from spiking.data.preprocess.prepare import task_labels
    from spiking.data.preprocess.split import kfold_split, stratified_split

    _, y, groups, classes = task_labels(load_dataset(cfg.data.shards), cfg.data.top_k)
    f = cfg.data.fractions
    for r in reps:
        if folds is None:
            stratified_split(y, groups, fractions=f, seed=r["seed"], class_names=classes)
        else:
            kfold_split(y, groups, n_folds=folds, fold=r["fold"], val_fraction=f[1] / (f[0] + f[1]),
                        seed=r["seed"], class_names=classes)


def remove_matching(root: Path, patterns) -> None:
    """Remove what matches ``patterns`` (globs) in the folder ``root``. ``seed_*`` and ``fold_*`` match
    only repeat folders (``seed_3``, ``fold_0``, ``seed_3_fold_0``), never a user's ``seed_list.csv``;
    a symbolic link is removed itself, never what it points to."""
    for pattern in patterns:
        for f in root.glob(pattern):
            if pattern in ("seed_*", "fold_*") and not (f.is_dir() and REPEAT_DIR.fullmatch(f.name)):
                continue
            if f.is_symlink() or not f.is_dir():
                f.unlink(missing_ok=True)
            else:
                shutil.rmtree(f)


def clear(root: Path, run_files=()) -> None:
    """Remove the files of an earlier run (``run_files``: its glob patterns) or repeated run in ``root``
    (its repeats, summary, report)."""
    remove_matching(root, (*run_files, *REPEAT_GLOBS))


def summarize_folder(root: Path, protocol_: dict, reps: list[dict], config: dict) -> dict:
    """Read every repeat's results.json under ``root``, summarise them
    (:func:`spiking.evaluation.summary.summarize`), write ``root/summary.json`` and print its tables."""
    from spiking.artifacts.results import read_results
    from spiking.artifacts.summary import SUMMARY_FILE, format_summary, write_summary
    from spiking.evaluation.summary import summarize

    results = []
    for r in reps:
        path = root / r["name"] / "results.json"
        if not path.is_file():
            raise RepeatError(f"repeat {r['name']} has no results.json ({path}); evaluate it first")
        doc = read_results(path).to_dict()
        split = doc.get("split") or {}
        fold = (split.get("cv") or {}).get("fold")
        if split.get("seed") != r["seed"] or fold != r.get("fold"):
            raise RepeatError(f"{path} is not the run of repeat {r['name']}: its split has seed {split.get('seed')}"
                              + (f" and fold {fold}" if fold is not None else "") + f", the repeat seed {r['seed']}"
                              + (f" and fold {r['fold']}" if r.get("fold") is not None else "")
                              + " (rerun the repeat, or `spiking run` the whole repeated run)")
        results.append(doc)
    summary = {"protocol": protocol_, **summarize(reps, results), "config": config}
    write_summary(summary, root / SUMMARY_FILE)
    print("\n" + format_summary(summary))
    print(f"\nsummary: {root / SUMMARY_FILE}")
    return summary


def resummarize(root: Path) -> dict:
    """Recompute ``root/summary.json`` from its repeats' results.json (after ``spiking evaluate`` on a
    repeat, or with newer statistics), keeping its protocol, repeats and settings.

    Raises:
        RepeatError: no summary.json in ``root``; ArtifactError: a damaged summary.json or results.json."""
    from spiking.artifacts.summary import SUMMARY_FILE, read_summary

    if not root.is_dir():
        raise RepeatError(f"{root} is not a folder (give the folder of a repeated run, e.g. runs/<name>)")
    if not (root / SUMMARY_FILE).is_file():
        partial = sorted(d.name for d in root.iterdir() if d.is_dir() and REPEAT_DIR.fullmatch(d.name))
        raise RepeatError(f"{root} holds no {SUMMARY_FILE}: it is not a repeated run (spiking run --seeds/--cv)"
                          + (f"; it has repeat folders {partial[:3]}{'...' if len(partial) > 3 else ''}, so a "
                             "repeated run stopped before its summary: run it again" if partial else ""))
    old = read_summary(root / SUMMARY_FILE)
    reps = [{"name": r["name"], "seed": r.get("seed"), "fold": r.get("fold")} for r in old["repeats"]]
    p = old["protocol"]
    try:
        expected = plan(tuple(p.get("seeds") or ()), p.get("folds"))
    except (RepeatError, TypeError):
        expected = None
    if expected != reps or protocol(tuple(p.get("seeds") or ()), p.get("folds"),
                                    len(p.get("seeds") or ()) > 1)["kind"] != p.get("kind"):
        raise RepeatError(f"{root / SUMMARY_FILE}: its protocol {p} does not match its repeats "
                          f"{[r['name'] for r in reps]} (an edited or damaged summary.json; rerun `spiking run`)")
    return summarize_folder(root, old["protocol"], reps, old.get("config") or {})


def run_repeats(cfg, root: Path, seeds: tuple[int, ...], cv, run_one: Callable[[object, Path], object],
                run_files=()) -> dict:
    """Run every repeat with ``run_one(repeat settings, repeat folder)`` (which writes its results.json), then write
    ``root/summary.json`` and print its tables; returns the summary. ``cv``: None/0, a number of
    folds or ``"auto"``; ``run_files``: patterns of a single run's files, removed from ``root`` first.

    Raises:
        RepeatError / DataError: seeds or folds that do not fit the data (before any training)."""
    folds = resolve_folds(cv, cfg)
    reps = plan(seeds, folds)
    configs = [repeat_config(cfg, r, folds) for r in reps]  # every repeat's settings checked first
    check_splits(cfg, reps, folds)  # and every repeat's split
    root.mkdir(parents=True, exist_ok=True)
    clear(root, run_files)
    for i, (rep, c) in enumerate(zip(reps, configs)):
        print(f"\n=== repeat {i + 1}/{len(reps)}: {rep['name']} (seed {rep['seed']}"
              + (f", test fold {rep['fold']} of {folds}" if folds else "") + ") ===")
        run_one(c, root / rep["name"])
    return summarize_folder(root, protocol(seeds, folds, len(seeds) > 1), reps, shared_config(cfg, folds))


def shared_config(cfg, folds: int | None) -> dict:
    """The settings the repeats share (``summary.json`` ``config``): ``cfg`` without what each repeat sets
    itself (the seeds of the split and of training: ``protocol.seeds``; the fold) and, for cross-validation,
    with the validation share of the training folds in place of the train/val/test fractions."""
    config = cfg.to_dict()
    data = config["data"]
    for key in ("fold", "seed"):
        data.pop(key, None)
    for part in ("cnn", "snn"):
        config[part]["train"].pop("seed", None)
    data["cv"] = folds or 0
    if folds:
        f = data.pop("fractions")
        data["validation_fraction_of_training_folds"] = f[1] / (f[0] + f[1])
    return config

