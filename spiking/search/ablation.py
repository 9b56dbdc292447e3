"""The layout ablation: does the spatial arrangement of the features help the CNN and its spiking version?

Details: docs/modules.md, section ``spiking.search.ablation``.
"""

from __future__ import annotations

import json
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from spiking.artifacts import storage as st
from spiking.search.lifecycle import SearchRun
from spiking.search.registry import ABLATION_KIND as KIND  # noqa: F401  (re-exported)
from spiking.search.registry import AblationBudget, AblationExperiment, parse_ablation  # noqa: F401  (re-exported)
from spiking.search.tuner import (
    SearchError,
    ray_init,
    trial_dirname,
)


# --------------------------------------------------------------------------- checks before any trial
def image_shape(layout: str, n_features: int, layout_shape=None) -> tuple[int, ...]:
    """The image shape layout ``layout`` gives ``n_features`` features, without fitting it."""
    import math

    side = math.isqrt(n_features - 1) + 1
    if layout == "square":
        return (side, side)
    if layout == "embedding_2d":
        return tuple(layout_shape) if layout_shape else (side, side)
    return (n_features,)


def check_networks(exp: AblationExperiment, b: AblationBudget, n_features: int, n_classes: int) -> dict:
    """``{layout: arch dict}``: the CNN_PT preset adapted to every layout's image, and the LIF
    network's settings checked, before any trial starts.

    Raises:
        SearchError: a layout whose image the preset cannot fit, an image with fewer pixels than
            features, or LIF settings the model refuses.
    """
    from spiking.models.build import build_spiking_cnn, preset_for

    out = {}
    for layout in b.layouts:
        shape = image_shape(layout, n_features, exp.data.layout_shape)
        if int(np.prod(shape)) < n_features:
            raise SearchError(f"[data] layout_shape {list(shape)} has fewer pixels than the {n_features} features")
        try:
            arch = preset_for(exp.cnn.preset, shape, seed=int(exp.cnn.arch_seed))
            build_spiking_cnn(shape, arch, n_classes, neuron=exp.snn.neuron, beta=float(exp.snn.beta),
                              num_steps=int(exp.snn.num_steps))
        except ValueError as e:
            raise SearchError(f"layout {layout} ({'x'.join(map(str, shape))}): {e}") from None
        out[layout] = {"input_shape": list(shape), "arch": arch.as_dict()}
    return out


# --------------------------------------------------------------------------- the trial
def run_config_for(exp: AblationExperiment, b: AblationBudget, layout: str, seed: int, device: str = "cpu"):
    """The ``spiking.specs.run.RunConfig`` of one (layout, seed) trial: the experiment's CNN and LIF
    settings, training seeded with ``seed``, the layout's seed = ``seed`` (so ``random`` is another
    permutation per seed and its spread includes the permutation's)."""
    from spiking.specs.run import RunConfig

    data = replace(exp.data, layout=layout, layout_seed=int(seed),
                   layout_shape=exp.data.layout_shape if layout == "embedding_2d" else None)
    per_trial = {"batch_size": b.batch_size, "seed": int(seed), "device": device, "progress": False}
    cnn = replace(exp.cnn, train=replace(exp.cnn.train, epochs=b.cnn_epochs, **per_trial))
    snn = replace(exp.snn, mode="transfer", encodings=("direct",), population=1,
                  train=replace(exp.snn.train, epochs=b.snn_epochs, **per_trial))
    cfg = RunConfig(data=data, cnn=cnn, snn=snn)
    cfg.validate()
    return cfg


def ablation_trial(config: dict, payload: dict) -> None:
    """Ray Tune function trainable of one (layout, seed): fit the layout on the training rows, train
    the CNN, transfer to the LIF network and fine-tune it; report the validation figures with a
    checkpoint holding ``cnn.pt``, ``snn.pt`` and their histories (the run-folder format)."""
    import torch
    from ray import tune

    from spiking.data.layout.state import fit_layout
    from spiking.data.preprocess.prepare import Prepared, lay_out
    from spiking.training.jobs import train_cnn, train_snn

    torch.set_num_threads(max(1, int(payload["cpus_per_trial"])))
    layout, seed = str(config["layout"]), int(config["seed"])
    exp, b = payload["experiment"], payload["budget"]
    cfg = run_config_for(exp, b, layout, seed)
    flat = {"train": np.array(payload["X_train"]), "val": np.array(payload["X_val"])}
    t0 = time.perf_counter()
    fitted = None if layout == "identity" else fit_layout(layout, flat["train"], shape=cfg.data.layout_shape,
                                                          seed=cfg.data.layout_seed)
    fit_s = time.perf_counter() - t0
    X = lay_out(flat, fitted)
    prep = Prepared(X=X, y={"train": np.array(payload["y_train"]), "val": np.array(payload["y_val"])},
                    ids={"train": np.array(payload["ids_train"]), "val": np.array(payload["ids_val"])},
                    class_names=list(payload["class_names"]), feature_names=list(payload["feature_names"]),
                    preprocessor=None, split_info={"split_sha256": payload["split_sha256"]}, layout=fitted)
    with tempfile.TemporaryDirectory(prefix="spiking-ablation-") as d:
        cnn, hc = train_cnn(prep, cfg, d)
        _, hs = train_snn(prep, cfg, d, cnn=cnn, encoding="direct")
        metrics = {"val_balanced_accuracy": hs.best_val_balanced_accuracy,
                   "cnn_val_balanced_accuracy": hc.best_val_balanced_accuracy,
                   "snn_val_balanced_accuracy": hs.best_val_balanced_accuracy,
                   "cnn_epochs": len(hc.epochs), "snn_epochs": len(hs.epochs),
                   "cnn_train_seconds": hc.train_seconds, "snn_train_seconds": hs.train_seconds,
                   "layout_fit_seconds": fit_s, "input_shape": "x".join(map(str, prep.input_shape))}
        tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(d))


# --------------------------------------------------------------------------- the driver
def run_ablation(exp, *, shards: str, budget: str = "smoke", storage: str | None = None, resume: bool = False,
                 overwrite: bool = False, cpus_per_trial: float | None = None, max_concurrent: int | None = None,
                 ray_num_cpus: int | None = None, verbose: int = 1, max_failures: int = 1, seed: int = 42) -> dict:
    """Run the ``layout_ablation`` experiment ``name`` and export its results (see the module doc).

    Args:
        shards: Parquet shards written by ``spiking ingest`` (local path or URI).
        budget: ``smoke`` | ``small`` | ``paper`` (epochs, train rows, seeds and layouts).
        storage: local folder or ``s3://bucket/prefix`` (default ``runs/tune``).
        resume: continue an interrupted ablation (``Tuner.restore``; finished trials are kept).
        overwrite: delete an existing ablation folder and start over.
        cpus_per_trial, max_concurrent: override the file's resources.
        seed: seeds the train-row subset (the split is the ``[data]`` seed's; training and layouts
            use the budget's seeds).

    Returns:
        ``{"experiment", "budget", "path", "results", "table", "markdown", "trials", "seconds"}``.

    Raises:
        ValueError (``SearchError``, ``StorageError``, ``ExperimentError``): anything that stops the
        ablation before a trial starts, or every trial failing.
    """
    run = SearchRun.open(exp, kinds=(KIND,), budget=budget, storage=storage, seed=seed, resume=resume,
                         overwrite=overwrite, what="an ablation", driver=": it is not a layout ablation")
    exp, b, fs, root, exp_dir = run.exp, run.budget, run.fs, run.root, run.path
    cpus, maxc = run.resources(cpus_per_trial, max_concurrent)
    prep_full, prep, dataset_info, split_sha = run.load_data(
        shards, replace(exp.data, layout="identity", layout_shape=None))
    archs = check_networks(exp, b, prep.n_features, len(prep.class_names))
    meta = run.meta(shards, cpus, maxc, kind=KIND, split_sha256=split_sha, train_rows=int(len(prep.y["train"])),
                    networks=archs)
    run.start(meta)

    payload = {"X_train": prep.features("train"), "y_train": prep.y["train"], "ids_train": prep.ids["train"],
               "X_val": prep.features("val"), "y_val": prep.y["val"], "ids_val": prep.ids["val"],
               "class_names": list(prep.class_names), "feature_names": list(prep.feature_names),
               "split_sha256": split_sha, "experiment": exp, "budget": b, "cpus_per_trial": cpus}
    started = ray_init(ray_num_cpus)
    try:
        from ray import tune

        trainable = tune.with_resources(tune.with_parameters(ablation_trial, payload=payload), {"cpu": cpus})
        custom_fs = None if st.is_local(fs) else fs
        if resume:
            tuner = tune.Tuner.restore(exp_dir, trainable=trainable, resume_errored=True, storage_filesystem=custom_fs)
        else:
            tuner = tune.Tuner(
                trainable,
                param_space={"layout": tune.grid_search(list(b.layouts)), "seed": tune.grid_search(list(b.seeds))},
                tune_config=tune.TuneConfig(max_concurrent_trials=maxc, trial_dirname_creator=trial_dirname,
                                            trial_name_creator=trial_dirname, reuse_actors=False),
                run_config=tune.RunConfig(name=exp.name, storage_path=root, storage_filesystem=custom_fs,
                                          verbose=verbose,
                                          failure_config=tune.FailureConfig(max_failures=max_failures)))
        grid = tuner.fit()
    finally:
        if started:
            import ray

            ray.shutdown()
    # prep: the networks' training rows (the budget's subset); the baseline is fitted on the same rows
    out = export_ablation(exp, b, grid, fs=fs, exp_dir=exp_dir, prep=prep, dataset_info=dataset_info,
                          meta=meta, seed=seed, verbose=verbose)
    return run.finish(out, storage=False)


def _sd(values: list[float]) -> float | None:
    return float(np.std(values, ddof=1)) if len(values) > 1 else None


def summarize(networks: list[dict], layouts: tuple[str, ...]) -> list[dict]:
    """Per layout (in ``layouts`` order): CNN and SNN test balanced accuracy mean / sd over the seeds,
    macro-F1 mean, and the SNN's SynOps, MACs and energy per inference (means; SynOps sd)."""
    rows = []
    for layout in layouts:
        row = {"layout": layout}
        for role in ("cnn", "snn"):
            es = [n for n in networks if n["layout"] == layout and n["role"] == role]
            if not es:
                row[role] = None
                continue
            bal = [e["entry"]["test"]["balanced_accuracy"] for e in es]
            eff = [e["entry"]["efficiency"] for e in es]
            row[role] = {"n": len(es), "seeds": [e["seed"] for e in es],
                         "balanced_accuracy_mean": float(np.mean(bal)), "balanced_accuracy_sd": _sd(bal),
                         "balanced_accuracies": bal,
                         "macro_f1_mean": float(np.mean([e["entry"]["test"]["macro_f1"] for e in es])),
                         "synops_mean": float(np.mean([f["synops"] for f in eff])),
                         "synops_sd": _sd([f["synops"] for f in eff]),
                         "macs_mean": float(np.mean([f["macs"] for f in eff])),
                         "energy_pj_mean": float(np.mean([f["energy_pj"] for f in eff])),
                         "parameters": int(es[0]["entry"]["parameters"]),
                         "input_shape": es[0]["entry"]["layout"]["input_shape"]}
            if role == "snn":
                ratios = [f.get("energy_ratio_vs_cnn") for f in eff if f.get("energy_ratio_vs_cnn") is not None]
                row[role]["energy_ratio_vs_cnn_mean"] = float(np.mean(ratios)) if ratios else None
        rows.append(row)
    return rows










def export_ablation(exp: AblationExperiment, b: AblationBudget, grid, *, fs, exp_dir: str, prep, dataset_info: dict,
                    meta: dict, seed: int, verbose: int = 1) -> dict:
    """Copy every trial's networks to ``networks/``, score each once on test, write the results
    (see the module doc); ``prep`` holds the rows the networks were trained on (the logistic
    regression is fitted on the same). Prints a line per scored trial when ``verbose``.
    Raises SearchError when no trial finished."""
    from spiking.artifacts.results import Results, format_table, write_results
    from spiking.evaluation.evaluate import add_energy_ratios, evaluate_logreg, evaluate_network

    networks, trials = [], []
    with tempfile.TemporaryDirectory(prefix="spiking-ablation-export-") as tmp:
        for r in grid:
            cfg = {"layout": r.config["layout"], "seed": int(r.config["seed"])}
            rec = {**cfg, "error": str(r.error) if r.error else None, **{k: v for k, v in (r.metrics or {}).items()
                   if k in ("cnn_val_balanced_accuracy", "snn_val_balanced_accuracy", "cnn_epochs", "snn_epochs",
                            "cnn_train_seconds", "snn_train_seconds", "layout_fit_seconds", "input_shape")}}
            trials.append(rec)
            if r.checkpoint is None:
                continue
            folder = f"{cfg['layout']}_seed{cfg['seed']}"
            local = Path(tmp) / folder
            with r.checkpoint.as_directory() as d:
                local.mkdir()
                for f in sorted(Path(d).iterdir()):
                    if f.is_file():
                        (local / f.name).write_bytes(f.read_bytes())
            for f in sorted(local.iterdir()):
                st.write_bytes(fs, st.join(fs, exp_dir, "networks", folder, f.name), f.read_bytes())
            pair = []
            for role in ("cnn", "snn"):
                entry = evaluate_network(local / f"{role}.pt", prep)
                entry["name"] = f"{folder}:{role}"
                entry["ablation"] = {**cfg, "role": role, "file": f"networks/{folder}/{role}.pt"}
                pair.append(entry)
                networks.append({**cfg, "role": role, "entry": entry})
            add_energy_ratios(pair)
            if verbose:
                print(f"scored {folder} on the test split ({len(networks) // 2} of {len(grid)} trials): balanced "
                      f"accuracy CNN {pair[0]['test']['balanced_accuracy']:.4f}, SNN "
                      f"{pair[1]['test']['balanced_accuracy']:.4f}", flush=True)
        if not networks:
            errors = [t["error"] for t in trials if t["error"]]
            raise SearchError("no ablation trial finished" + (f"; first error:\n{errors[0]}" if errors else ""))
        baseline = evaluate_logreg(prep, seed=seed)
        rows = summarize(networks, b.layouts)
        counts = {c: int(np.sum(prep.y["test"] == i)) for i, c in enumerate(prep.class_names)}
        models = [n["entry"] for n in networks] + [baseline]
        typed = Results.build(dataset_info, {**prep.split_info, "test_class_counts": counts}, models,
                              ablation={"experiment": exp.name, "budget": b.as_dict(), "layouts": list(b.layouts),
                                        "seeds": list(b.seeds), "rows": rows, "sd": "sample standard deviation (ddof=1)",
                                        "train_rows": int(len(prep.y["train"])),
                                        "n_trials": len(trials), "n_errors": sum(t["error"] is not None for t in trials),
                                        "networks": meta.get("networks")},
                              run={"name": exp.name, "config": {"experiment": exp.name, "budget": b.name, "seed": seed}})
        path = write_results(typed, Path(tmp) / "results.json")
        results = typed.to_dict()
        st.write_bytes(fs, st.join(fs, exp_dir, "results.json"), path.read_bytes())
        from spiking.report.ablation import markdown_table, write_figures

        md = markdown_table(rows, baseline)
        st.write_text(fs, st.join(fs, exp_dir, "table.md"), md + "\n")
        table = format_table(models)
        st.write_text(fs, st.join(fs, exp_dir, "results.txt"), table + "\n")
        st.write_text(fs, st.join(fs, exp_dir, "trials.json"), json.dumps(trials, indent=2, default=str) + "\n")
        figs = Path(tmp) / "figures"
        written = write_figures(rows, networks, prep, figs)
        for f in written:
            rel = f.relative_to(Path(tmp)).as_posix()
            st.write_bytes(fs, st.join(fs, exp_dir, rel), f.read_bytes())
    return {"results": results, "table": table, "markdown": md, "trials": trials,
            "figures": [f.relative_to(Path(tmp)).as_posix() for f in written]}


__all__ = ["AblationExperiment", "AblationBudget", "parse_ablation", "run_ablation", "summarize",
           "check_networks", "image_shape", "run_config_for", "ablation_trial", "export_ablation", "KIND"]

