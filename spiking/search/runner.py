"""Run a registered search experiment with Ray Tune and export its results.

Details: docs/modules.md, section ``spiking.search.runner``.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
from pathlib import Path

import numpy as np
import torch

from spiking.artifacts import storage as st
from spiking.artifacts.checkpoint import read_checkpoint
from spiking.data.splits import subset_train  # noqa: F401  (re-exported)
from spiking.search.lifecycle import SearchRun
from spiking.search.registry import (
    METRIC,
    Budget,
    Experiment,
    ExperimentError,
    list_experiments,
    load_experiment,
    validate_space,
)
from spiking.search.trainable import CHECKPOINT_FILE, FAIL_AT_EPOCH_VAR, train_trial
from spiking.search.tuner import (  # noqa: F401  (re-exported)
    TRADEOFF_TOLERANCE,
    SearchError,
    build_tuner,
    fit_trials,
    has_experiment_state,
    pick_best,
    pick_tradeoff,
    public_trial,
    saved_experiment,
)

BEST_MODEL = "best_model.pt"
TRADEOFF_MODEL = "tradeoff_model.pt"
#: Validation rows on which each trial's energy per inference is estimated.
EFFICIENCY_ROWS = 256
NORMALIZE_ROWS = 1000
from spiking.data.preprocess.prepare import split_digest, split_fingerprint  # noqa: E402  (re-exported)
from spiking.search.tuner import EXPERIMENT_FILE  # noqa: E402,F401  (re-exported)


# --------------------------------------------------------------------------- data
def _sibling_split_fingerprint(fs, path: str) -> str | None:
    """Fingerprint of the ``split.json`` next to a main-job ``cnn.pt`` (``spiking run``/``train``), if any."""
    parent = os.path.dirname(path) if st.is_local(fs) else path.rsplit("/", 1)[0]
    sp = st.join(fs, parent, "split.json")
    if not st.is_file(fs, sp):
        return None
    d = json.loads(st.read_text(fs, sp))
    return split_digest(d["class_names"], d["feature_names"], d["ids"])


# --------------------------------------------------------------------------- weights
def locate_weights(source: str, fs, root: str) -> tuple:
    """``(filesystem, path, label)`` of the CNN weights named by ``source``.

    ``source`` is the name of a registered CNN experiment (its ``best_model.pt`` in
    the same storage) or a URI/path of a ``.pt`` file (``best_model.pt``, a main-job
    ``cnn.pt``) or of a folder holding ``best_model.pt`` or ``checkpoint.pt`` (a Tune
    checkpoint directory).

    Raises:
        SearchError: nothing usable there, with what was looked for.
    """
    if source in list_experiments():
        path = st.join(fs, root, source, BEST_MODEL)
        if not st.is_file(fs, path):
            raise SearchError(
                f"weight source {source!r}: no finished {source} experiment in storage {st.to_uri(fs, root)} "
                f"({st.to_uri(fs, path)} not found). Run `spiking tune {source}` with the same --storage first, "
                f"or pass --weights with the URI of a CNN checkpoint")
        return fs, path, f"experiment {source} ({st.to_uri(fs, path)})"
    try:
        sfs, path = st.resolve_storage(source)
    except st.StorageError as e:
        raise SearchError(f"weight source {source!r}: {e}") from None
    try:
        info = sfs.get_file_info(path)
    except Exception as e:
        raise SearchError(f"weight source {source!r} is not reachable: {e}") from None
    import pyarrow.fs as pafs

    if info.type == pafs.FileType.File:
        return sfs, path, st.to_uri(sfs, path)
    if info.type == pafs.FileType.Directory:
        for name in (BEST_MODEL, CHECKPOINT_FILE):
            p = st.join(sfs, path, name)
            if st.is_file(sfs, p):
                return sfs, p, st.to_uri(sfs, p)
        raise SearchError(f"weight source {source!r} is a folder without {BEST_MODEL} or {CHECKPOINT_FILE}")
    raise SearchError(f"weight source {source!r} not found (neither a registered experiment, "
                      f"valid names: {', '.join(list_experiments())}, nor an existing file or folder)")


def load_transfer(exp: Experiment, located: tuple, prep, split_sha: str) -> dict:
    """Read the source CNN, check it fits the data, and compute the normalisation scales (driver side)."""
    from spiking.models.build import build_cnn
    from spiking.models.cnn import CNNArch
    from spiking.models.conversion import activation_scales

    sfs, path, label = located
    try:
        ckpt = read_checkpoint(io.BytesIO(st.read_bytes(sfs, path)))
    except Exception as e:
        raise SearchError(f"weight source {label}: cannot read it as a saved network: {e}") from None
    if not isinstance(ckpt, dict) or ckpt.get("kind") != "cnn" or "state_dict" not in ckpt or "arch" not in ckpt:
        raise SearchError(f"weight source {label} is not a saved CNN (kind={ckpt.get('kind') if isinstance(ckpt, dict) else None!r})")
    L, C = prep.n_features, len(prep.class_names)
    if ckpt.get("L") != L or ckpt.get("n_classes") != C:
        raise SearchError(f"weight source {label} was trained for L={ckpt.get('L')}, {ckpt.get('n_classes')} classes; "
                          f"this data has L={L}, {C} classes")
    from spiking.data.layout.state import identity_state, same_layout

    src_layout = ckpt.get("layout") or identity_state(L)
    if not same_layout(src_layout, prep.layout_state()):
        raise SearchError(f"weight source {label} was trained on the {src_layout.get('name')} layout "
                          f"({'x'.join(map(str, src_layout.get('shape', [])))}), this experiment lays the features out "
                          f"with {prep.layout_state()['name']} ({'x'.join(map(str, prep.input_shape))}); its weights "
                          "would see other genes at every position. Use the same [data] layout settings")
    src_sha = ckpt.get("split_sha256") or _sibling_split_fingerprint(sfs, path)
    if src_sha is not None and src_sha != split_sha:
        raise SearchError(f"weight source {label} was trained on a different split than this experiment's "
                          "(its test samples may have been training samples of the CNN); use the same [data] "
                          "settings and shards")
    arch = CNNArch.from_dict(ckpt["arch"])
    cnn = build_cnn(prep.input_shape, arch, C)
    cnn.load_state_dict(ckpt["state_dict"])
    scales = None
    if exp.snn.normalize:
        scales = activation_scales(cnn, prep.X["train"][:NORMALIZE_ROWS], float(exp.snn.percentile))
    return {"state_dict": {k: v.detach().cpu() for k, v in cnn.state_dict().items()}, "arch": arch.as_dict(),
            "scales": scales, "percentile": float(exp.snn.percentile), "source": label,
            "split_verified": src_sha is not None,
            "source_val_balanced_accuracy": ckpt.get("val_balanced_accuracy")}


# --------------------------------------------------------------------------- results
def _load_best_checkpoint(trial: dict) -> tuple[dict, str]:
    r = trial["_result"]
    ckpt = r.get_best_checkpoint(METRIC, "max") or r.checkpoint
    if ckpt is None:
        raise SearchError(f"trial {trial['trial_id']} kept no checkpoint")
    with ckpt.as_directory() as d:
        state = read_checkpoint(os.path.join(d, CHECKPOINT_FILE))
    return state, st.to_uri(ckpt.filesystem, ckpt.path)


def trial_efficiency(trials: list[dict], prep, max_rows: int = EFFICIENCY_ROWS) -> None:
    """Add ``efficiency`` (energy per inference in pJ, MACs, SynOps, num_steps, encoding) to every
    trial with a checkpoint, counted on the first ``max_rows`` validation rows
    (:func:`spiking.models.operations.count_operations`; the test split is not touched)."""
    from spiking.artifacts.checkpoint import model_from_checkpoint
    from spiking.models.operations import count_operations

    X = prep.X["val"][:max_rows]
    for t in trials:
        if t["best_val_balanced_accuracy"] is None:
            continue
        try:
            state, _ = _load_best_checkpoint(t)
        except SearchError:
            continue
        eff = count_operations(model_from_checkpoint(state), X, seed=0)
        t["efficiency"] = {k: eff[k] for k in ("energy_pj", "macs", "synops", "dense_ops", "num_steps", "encoding")}
        t["efficiency"].update(rows=int(len(X)), split="val", convention=eff["convention"])


def export_and_evaluate(exp: Experiment, b: Budget, trials: list[dict], *, fs, root: str, prep, dataset_info: dict,
                        seed: int, meta: dict, transfer: dict | None = None) -> dict:
    """Write best/trade-off configs and networks, score them once on test, write results.json and results.txt.

    Every trial's energy per inference is estimated on validation rows (:func:`trial_efficiency`,
    written to trials.json); the exported networks' ``efficiency`` is counted on test, and for a
    weight-transfer SNN search the energy ratio is taken against the source CNN."""
    from spiking.artifacts.results import Results, format_table, write_results
    from spiking.evaluation.evaluate import add_energy_ratios, evaluate_logreg, evaluate_network
    from spiking.models.operations import count_operations

    exp_dir = st.join(fs, root, exp.name)
    trial_efficiency(trials, prep)
    best = pick_best(trials)
    picks = [("best", best)]
    tradeoff = None
    if exp.kind == "snn":
        tradeoff = pick_tradeoff(trials, best)
        picks.append(("tradeoff", tradeoff))
    models, exported = [], {}
    with tempfile.TemporaryDirectory(prefix="spiking-search-") as tmp:
        for role, trial in picks:
            state, ckpt_uri = _load_best_checkpoint(trial)
            state.pop("optimizer", None)
            fname = BEST_MODEL if role == "best" else TRADEOFF_MODEL
            local = Path(tmp) / fname
            torch.save(state, local)
            st.write_bytes(fs, st.join(fs, exp_dir, fname), local.read_bytes())
            cfg_doc = {"experiment": exp.name, "role": role, "budget": b.name, "trial_id": trial["trial_id"],
                       "config": trial["config"], "arch": state["arch"],
                       "val_balanced_accuracy": float(state["val_balanced_accuracy"]), "epoch": int(state["epoch"]),
                       "checkpoint": ckpt_uri, "model": st.to_uri(fs, st.join(fs, exp_dir, fname))}
            if exp.kind == "snn":
                cfg_doc["snn"] = {k: state[k] for k in ("neuron", "beta", "num_steps", "population", "loss", "mode")}
            if role == "tradeoff":
                cfg_doc["rule"] = (f"fewest num_steps with validation balanced accuracy >= best - "
                                   f"{100 * TRADEOFF_TOLERANCE:g} pp")
            st.write_text(fs, st.join(fs, exp_dir, f"{role}_config.json"), json.dumps(cfg_doc, indent=2) + "\n")
            exported[role] = cfg_doc
            entry = evaluate_network(local, prep)
            entry["name"] = f"{exp.name}:{role}"
            entry["search"] = {k: cfg_doc[k] for k in ("trial_id", "config", "val_balanced_accuracy", "epoch")}
            models.append(entry)
        reference = None
        if transfer is not None:
            from spiking.models.build import build_cnn
            from spiking.models.cnn import CNNArch

            cnn = build_cnn(prep.input_shape, CNNArch.from_dict(transfer["arch"]), len(prep.class_names))
            cnn.load_state_dict(transfer["state_dict"])
            reference = count_operations(cnn, prep.X["test"])
        add_energy_ratios(models, reference=reference)
        models.append(evaluate_logreg(prep, seed=seed))
        counts = {c: int(np.sum(prep.y["test"] == i)) for i, c in enumerate(prep.class_names)}
        public = [public_trial(t) for t in trials]
        typed = Results.build(dataset_info, {**prep.split_info, "test_class_counts": counts}, models,
                              search={**meta, "n_trials": len(trials), "n_errors": sum(t["error"] is not None for t in trials),
                                      "n_stopped_early": sum(t["stopped_early"] for t in trials),
                                      "best": exported["best"], "tradeoff": exported.get("tradeoff")},
                              run={"name": exp.name, "config": {"experiment": exp.name, "budget": b.name, "seed": seed}})
        local = write_results(typed, Path(tmp) / "results.json")
        results = typed.to_dict()
        st.write_bytes(fs, st.join(fs, exp_dir, "results.json"), local.read_bytes())
    table = format_table(models)
    st.write_text(fs, st.join(fs, exp_dir, "results.txt"), table + "\n")
    st.write_text(fs, st.join(fs, exp_dir, "trials.json"), json.dumps(public, indent=2, default=str) + "\n")
    return {"results": results, "table": table, "best": exported["best"], "tradeoff": exported.get("tradeoff"),
            "trials": public}


# --------------------------------------------------------------------------- entry point
def run_experiment(exp, *, shards: str, budget: str = "smoke", storage: str | None = None, resume: bool = False,
                   cpus_per_trial: float | None = None, max_concurrent: int | None = None, seed: int = 42,
                   gpus_per_trial: float | None = None,
                   weights: str | None = None, overwrite: bool = False, ray_num_cpus: int | None = None,
                   verbose: int = 1, max_failures: int = 1) -> dict:
    """Run a cnn or snn experiment and export its results.

    Args:
        exp: the parsed experiment (:func:`spiking.search.registry.load_experiment` or
            ``parse_experiment``), or the name of a registered one.
        shards: Parquet shards written by ``spiking ingest`` (local path or URI).
        budget: ``smoke`` (minutes on 2 CPU cores), ``small`` or ``paper`` (the study's epochs).
        storage: local folder or ``s3://bucket/prefix`` (default ``runs/tune``); the
            experiment folder is ``<storage>/<name>``.
        resume: continue an interrupted experiment in that folder (``Tuner.restore``,
            errored trials resumed from their last checkpoint).
        cpus_per_trial, max_concurrent, gpus_per_trial: override the experiment file's resources
            (a GPU fraction is used only where Ray sees a GPU; else trials run on CPU).
        seed: seeds the search algorithm, the per-trial architecture seeds, training and the train-row subset.
        weights: weight source of a weight-transfer SNN: a CNN experiment name (its best
            checkpoint in the same storage) or a URI; default: the one in the file.
        overwrite: delete an existing experiment folder and start over.
        ray_num_cpus: CPUs of an embedded Ray started here (when Ray is not running and
            ``RAY_ADDRESS`` is unset); None = all.
        verbose: Ray Tune verbosity (0 = silent).
        max_failures: retries of a failing trial (each resumes from its last checkpoint).

    Returns:
        ``{"experiment", "budget", "storage", "path", "best", "tradeoff", "results", "table", "trials", "seconds"}``.

    Raises:
        ValueError (``SearchError``, ``StorageError``, ``ExperimentError``): anything that
        stops the experiment before a trial starts, with a message saying why.
    """
    run = SearchRun.open(exp, kinds=("cnn", "snn"), budget=budget, storage=storage, seed=seed, resume=resume,
                         overwrite=overwrite, driver=": a layout ablation runs with spiking.search.ablation.run_ablation, "
                         "an snn_k conversion with spiking.search.snn_k.run_snn_k (`spiking tune` picks the driver)")
    exp, b, fs, root = run.exp, run.budget, run.fs, run.root
    if weights is not None and not exp.weight_transfer:
        raise SearchError(f"experiment {exp.name!r} does not transfer weights; --weights is only for "
                          f"{[n for n in list_experiments() if load_experiment(n).weight_transfer]}")

    source = weights or (exp.weights if exp.weight_transfer else None)
    located = locate_weights(source, fs, root) if source else None
    cpus, maxc = run.resources(cpus_per_trial, max_concurrent)
    prep_full, prep, dataset_info, split_sha = run.load_data(shards)
    L, C = prep.n_features, len(prep.class_names)
    transfer = load_transfer(exp, located, prep, split_sha) if located else None
    from spiking.models.cnn import CNNArch

    n_checked = validate_space(exp, b, prep.input_shape, C, seed=seed,
                               transfer_arch=CNNArch.from_dict(transfer["arch"]) if transfer else None)

    meta = run.meta(shards, cpus, maxc, configs_checked=n_checked, split_sha256=split_sha,
                    train_rows=int(len(prep.y["train"])),
                    weights=None if transfer is None else {k: transfer[k] for k in
                                                           ("source", "arch", "scales", "split_verified",
                                                            "source_val_balanced_accuracy")})
    if resume:
        before = (run.saved.get("weights") or {}).get("source")
        now = (meta["weights"] or {}).get("source")
        if before != now:
            raise SearchError(f"{run.uri} was started with weights from {before}, not {now}; resume it with "
                              f"--weights {before}")
    run.start(meta)

    # Tune warns at every forced experiment snapshot (one per num_to_keep checkpoints); short epochs make that noise.
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")

    def make_trainable():  # once Ray is up: the GPU request depends on what the cluster has
        import ray
        from ray import tune

        gpus = float(gpus_per_trial if gpus_per_trial is not None else exp.resources["gpus_per_trial"])
        if gpus and not ray.cluster_resources().get("GPU"):
            gpus = 0.0  # no GPU in this Ray cluster: run on CPU instead of waiting forever
        meta["gpus_per_trial"] = gpus
        payload = {"X_train": prep.X["train"], "y_train": prep.y["train"], "X_val": prep.X["val"],
                   "y_val": prep.y["val"], "L": L, "input_shape": list(prep.input_shape),
                   "layout": prep.layout_state(), "n_classes": C, "kind": exp.kind, "arch": exp.arch,
                   "loss": exp.loss() if exp.kind == "snn" else None,
                   "mode": exp.snn.mode if exp.kind == "snn" else None, "transfer": transfer,
                   "epochs": b.epochs, "seed": seed, "lr": exp.train.lr, "batch_size": b.batch_size,
                   "patience": exp.train.patience, "cpus_per_trial": cpus, "gpus_per_trial": gpus,
                   "split_sha256": split_sha, "fail_at_epoch": int(os.environ.get(FAIL_AT_EPOCH_VAR) or 0)}
        return tune.with_resources(tune.with_parameters(train_trial, payload=payload), {"cpu": cpus, "gpu": gpus})

    trials = fit_trials(exp, b, make_trainable, fs=fs, root=root, seed=seed, max_concurrent=maxc, resume=resume,
                        verbose=verbose, max_failures=max_failures, ray_num_cpus=ray_num_cpus,
                        build=build_tuner)  # this module's name: benchmarks patch runner.build_tuner
    out = export_and_evaluate(exp, b, trials, fs=fs, root=root, prep=prep, dataset_info=dataset_info, seed=seed,
                              meta=meta, transfer=transfer)
    return run.finish(out)


__all__ = ["run_experiment", "SearchError", "ExperimentError", "locate_weights", "pick_best", "pick_tradeoff",
           "split_fingerprint", "subset_train"]
