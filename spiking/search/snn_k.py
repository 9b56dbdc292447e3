"""The ``snn_k`` experiment: tune the NengoDL conversion of the grammar-searched Keras CNN (CNN_K).

Details: docs/modules.md, section ``spiking.search.snn_k``.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from spiking.artifacts import storage as st
from spiking.data.splits import flat_samples
from spiking.search.frameworks import prepare_nengo_process
from spiking.search.lifecycle import SearchRun
from spiking.search.registry import METRIC, validate_space
from spiking.search.tuner import SearchError, fit_trials, pick_best, pick_tradeoff, public_trial

SOURCE_MODEL = "best_model.keras"
from spiking.search.tuner import EXPERIMENT_FILE  # noqa: E402,F401  (re-exported)

#: Samples per NengoDL simulator minibatch.
MINIBATCH = 50


def locate_keras_weights(source: str, fs, root: str) -> tuple:
    """``(filesystem, path, label, split_sha256 or None)`` of the Keras network named by ``source``:
    a ``spiking nas`` run name (``<storage>/<name>/best_model.keras``), or the URI/path of a
    ``.keras`` file or of a folder holding ``best_model.keras``. The split fingerprint comes from
    the ``nas.json`` beside it.

    Raises:
        SearchError: nothing usable there, with what was looked for.
    """
    if "/" not in source and "://" not in source and not source.endswith(".keras"):
        folder = st.join(fs, root, source)
        path = st.join(fs, folder, SOURCE_MODEL)
        if not st.is_file(fs, path):
            raise SearchError(f"weight source {source!r}: no finished `spiking nas --name {source}` run in storage "
                              f"{st.to_uri(fs, root)} ({st.to_uri(fs, path)} not found). Run `spiking nas` with the "
                              f"same --storage first (make nas), or pass --weights with the URI of a .keras file")
        sfs = fs
    else:
        try:
            sfs, path = st.resolve_storage(source)
        except st.StorageError as e:
            raise SearchError(f"weight source {source!r}: {e}") from None
        import pyarrow.fs as pafs

        info = sfs.get_file_info(path)
        if info.type == pafs.FileType.Directory:
            path = st.join(sfs, path, SOURCE_MODEL)
            if not st.is_file(sfs, path):
                raise SearchError(f"weight source {source!r} is a folder without {SOURCE_MODEL}")
        elif info.type != pafs.FileType.File:
            raise SearchError(f"weight source {source!r} not found")
        folder = path.rsplit("/", 1)[0] if not st.is_local(sfs) else os.path.dirname(path)
    nas_json = st.join(sfs, folder, "nas.json")
    sha = None
    if st.is_file(sfs, nas_json):
        try:
            sha = json.loads(st.read_text(sfs, nas_json)).get("split_sha256")
        except ValueError as e:
            raise SearchError(f"{st.to_uri(sfs, nas_json)} beside the weight source is damaged ({e})") from None
        if path.endswith("/" + SOURCE_MODEL) and not st.is_file(sfs, st.join(sfs, folder, "results.json")):
            raise SearchError(f"the search at {st.to_uri(sfs, folder)} has not finished (no results.json): its "
                              f"{SOURCE_MODEL} is only the best network so far; finish it with `spiking nas --resume`")
    return sfs, path, st.to_uri(sfs, path), sha


def source_train_seconds(fs, model_path: str) -> float | None:
    """Training seconds of CNN_K as its search recorded them (``results.json`` beside the model), if any."""
    folder = model_path.rsplit("/", 1)[0] if not st.is_local(fs) else os.path.dirname(model_path)
    res = st.join(fs, folder, "results.json")
    if not st.is_file(fs, res):
        return None
    from spiking.artifacts.results import read_results

    cnn = next((m for m in read_results(res, fs=fs).models if m.name == "cnn_k"), None)
    return None if cnn is None else cnn.train_seconds


def eval_rows(y: np.ndarray, max_rows: int | None, seed: int) -> np.ndarray:
    """Indices of the validation rows each trial simulates: all of them, or a stratified, seeded
    subset of ``max_rows`` (every cohort in proportion; the split's own row order is grouped by
    cohort, so its first rows would miss some cohorts), in ascending order."""
    n = len(y)
    if not max_rows or max_rows >= n:
        return np.arange(n)
    from sklearn.model_selection import train_test_split

    try:
        keep, _ = train_test_split(np.arange(n), train_size=max_rows, stratify=y, random_state=seed)
    except ValueError:  # a cohort too small to stratify
        keep = np.random.default_rng(seed).choice(n, size=max_rows, replace=False)
    return np.sort(keep)


def _load_model(model_bytes: bytes):
    from spiking.keras.fit import load_keras

    with tempfile.TemporaryDirectory(prefix="spiking-snnk-") as tmp:
        p = Path(tmp) / SOURCE_MODEL
        p.write_bytes(model_bytes)
        return load_keras(p)


def score_conversion(model, config: dict, X: np.ndarray, y: np.ndarray, class_names: list[str], *,
                     L: int, n_classes: int, phenotype: str | None = None) -> dict:
    """Convert ``model`` with ``config`` (neuron, synapse, num_steps, scale_firing_rates), simulate it on
    ``X`` (n, L) in [0, 1] and return the metrics (:func:`spiking.evaluation.metrics.classification_metrics`)
    with ``predictions``, ``firing_rates`` (Hz per spiking layer), ``mean_firing_rate_hz``, ``efficiency``
    (SynOps, MACs, energy in pJ under the 45 nm convention) and the conversion ``notes``."""
    from spiking.evaluation.metrics import classification_metrics
    from spiking.keras.conversion import convert, count_synops, simulate

    synapse = float(config["synapse"]) or None
    conv = convert(model, neuron=config["neuron"], scale_firing_rates=float(config["scale_firing_rates"]),
                   synapse=synapse, max_to_avg_pool=True)
    t0 = time.perf_counter()
    sim = simulate(conv, X, num_steps=int(config["num_steps"]), minibatch_size=MINIBATCH, probe_layers=True)
    ms = 1000 * (time.perf_counter() - t0) / max(len(X), 1)
    m = classification_metrics(y, sim.predictions, class_names)
    rates = {k: float(v) for k, v in sim.firing_rates_hz.items()}
    syn = count_synops(conv.keras_model, sim.spiking_spikes_per_neuron())
    eff = {"macs": int(syn.macs), "synops": float(syn.synops), "energy_pj": float(syn.energy_pj),
           "mac_layers": list(syn.mac_layers), "synops_per_layer": {k: float(v) for k, v in syn.synops_per_layer.items()},
           "spikes_per_inference": {k: float(v) for k, v in sim.spikes_per_inference.items()},
           "num_steps": int(config["num_steps"]),
           # the profile is presented as a constant input current at every step (NengoDL's Node)
           "encoding": "direct"}
    return {"metrics": m, "predictions": sim.predictions, "firing_rates": rates,
            "mean_firing_rate_hz": float(np.mean(list(rates.values()))) if rates else 0.0,
            "efficiency": eff, "notes": list(conv.notes), "inference_ms_per_sample": ms}


def snn_k_trial(config: dict, payload: dict) -> None:
    """Ray Tune function trainable: one conversion setting scored on validation rows (one report)."""
    prepare_nengo_process()
    from ray import tune

    from spiking.keras.fit import limit_tf_threads

    limit_tf_threads(1)
    model = _load_model(payload["model_bytes"])
    out = score_conversion(model, config, payload["X_val"], payload["y_val"], payload["class_names"],
                           L=payload["L"], n_classes=payload["n_classes"])
    m, eff = out["metrics"], out["efficiency"]
    tune.report({METRIC: m["balanced_accuracy"], "val_accuracy": m["accuracy"], "epoch": 1,
                 "mean_firing_rate_hz": out["mean_firing_rate_hz"], "energy_pj": eff["energy_pj"],
                 "synops": eff["synops"], "rows": int(len(payload["y_val"]))})


def run_snn_k(exp="snn_k", *, shards: str, budget: str = "smoke", storage: str | None = None,
              resume: bool = False, overwrite: bool = False, weights: str | None = None, seed: int = 42,
              cpus_per_trial: float | None = None, max_concurrent: int | None = None,
              ray_num_cpus: int | None = None, verbose: int = 1, max_failures: int = 1) -> dict:
    """Run the ``snn_k`` experiment (module doc) and export its results.

    Arguments as :func:`spiking.search.runner.run_experiment`; ``weights`` is a ``spiking nas`` run
    name in the same storage or the URI of a ``.keras`` file (default: the file's, ``nas``).

    Returns:
        ``{"experiment", "budget", "storage", "path", "best", "tradeoff", "results", "table", "trials", "seconds"}``.

    Raises:
        SearchError, StorageError, ExperimentError (ValueErrors): anything that stops the
        experiment before a trial starts, with the reason.
    """
    prepare_nengo_process()

    run = SearchRun.open(exp, kinds=("snn_k",), budget=budget, storage=storage, seed=seed, resume=resume,
                         overwrite=overwrite, driver=": it is not a NengoDL conversion")
    exp, b, fs, root, exp_dir, exp_uri = run.exp, run.budget, run.fs, run.root, run.path, run.uri
    sfs, spath, label, src_sha = locate_keras_weights(weights or exp.weights, fs, root)

    prep_full, prep, dataset_info, split_sha = run.load_data(shards)
    if src_sha is not None and src_sha != split_sha:
        raise SearchError(f"weight source {label} was trained on a different split than this experiment's (its "
                          "test samples may have been training samples of CNN_K); use the same [data] settings "
                          "and shards")
    L, C = prep.n_features, len(prep.class_names)
    model_bytes = st.read_bytes(sfs, spath)
    try:
        model = _load_model(model_bytes)
    except Exception as e:
        raise SearchError(f"weight source {label}: cannot read it as a saved Keras network: {e}") from None
    if tuple(model.input_shape[1:]) != (L, 1) or int(model.output_shape[-1]) != C:
        raise SearchError(f"weight source {label} takes input {model.input_shape[1:]} with {model.output_shape[-1]} "
                          f"classes; this data has L={L}, {C} classes")
    if not any(getattr(getattr(layer, "activation", None), "__name__", "") == "relu" for layer in model.layers):
        raise SearchError(f"weight source {label} has no ReLU layer, so its conversion would have nothing to spike "
                          "(linear layers pass real values, sigmoid layers stay rate neurons); search CNN_K with "
                          "`spiking nas --grammar fast_denser_1d_relu` (make nas)")
    from spiking.keras.conversion import inference_model

    try:  # what every trial does first: refuse a network NengoDL cannot take before any trial starts
        inference_model(model)
    except Exception as e:
        raise SearchError(f"weight source {label} cannot be converted: {type(e).__name__}: {e}") from None
    if src_sha is None:
        print(f"warning: weight source {label} has no nas.json beside it: whether it was trained on this split "
              "cannot be checked (its test samples may have been its training samples)")
    n_checked = validate_space(exp, b, L, C, seed=seed)
    cpus, maxc = run.resources(cpus_per_trial, max_concurrent)
    val_rows = eval_rows(prep.y["val"], b.max_eval_rows, seed)
    n_val = len(val_rows)
    meta = run.meta(shards, cpus, maxc, configs_checked=n_checked, split_sha256=split_sha,
                    val_rows_per_trial=int(n_val),
                    weights={"source": label, "split_verified": src_sha is not None,
                             "sha256": hashlib.sha256(model_bytes).hexdigest()})
    if resume:
        saved = run.saved
        for what, before, now in (("budget", saved.get("budget", {}).get("name"), b.name),
                                  ("seed", saved.get("seed"), seed),
                                  ("split", saved.get("split_sha256"), split_sha),
                                  ("weights", (saved.get("weights") or {}).get("sha256"), meta["weights"]["sha256"])):
            if before != now:
                raise SearchError(f"{exp_uri} was started with another {what} ({before} vs now {now}); resume it with "
                                  "the same budget, seed, shards and --weights, or start over with --overwrite")
        res_path = st.join(fs, exp_dir, "results.json")
        if st.is_file(fs, res_path):  # finished: the test split is not scored again
            from spiking.artifacts.results import format_table, read_results

            results = read_results(res_path, fs=fs).to_dict()
            print(f"{exp_uri} is finished: nothing to resume; its saved results")
            return run.finish({"results": results, "table": format_table(results["models"]),
                               "best": results["search"]["best"], "tradeoff": results["search"]["tradeoff"],
                               "trials": json.loads(st.read_text(fs, st.join(fs, exp_dir, "trials.json")))})
    run.start(meta)

    def make_trainable():
        from ray import tune

        payload = {"model_bytes": model_bytes, "X_val": flat_samples(prep.X["val"][val_rows]),
                   "y_val": prep.y["val"][val_rows], "class_names": list(prep.class_names), "L": L, "n_classes": C}
        return tune.with_resources(tune.with_parameters(snn_k_trial, payload=payload), {"cpu": cpus})

    trials = fit_trials(exp, b, make_trainable, fs=fs, root=root, seed=seed, max_concurrent=maxc, resume=resume,
                        verbose=verbose, max_failures=max_failures, ray_num_cpus=ray_num_cpus)
    for t in trials:
        last = (t["_result"].metrics or {})
        t["val"] = {k: last.get(k) for k in ("val_accuracy", "mean_firing_rate_hz", "energy_pj", "synops", "rows")}
    out = _export(exp, b, trials, fs=fs, exp_dir=exp_dir, model=model, prep=prep, dataset_info=dataset_info,
                  seed=seed, meta=meta, source_label=label, source_seconds=source_train_seconds(sfs, spath))
    return run.finish(out)


def _export(exp, b, trials, *, fs, exp_dir, model, prep, dataset_info, seed, meta, source_label,
            source_seconds) -> dict:
    from spiking.artifacts.results import Results, format_table, write_results
    from spiking.evaluation.baseline import evaluate_logreg
    from spiking.evaluation.metrics import classification_metrics
    from spiking.keras.conversion import plot_layer_activity
    from spiking.specs.energy import CONVENTION, E_MAC_PJ

    best = pick_best(trials)
    tradeoff = pick_tradeoff(trials, best, steps_key="num_steps")
    L, C = prep.n_features, len(prep.class_names)
    X, y, names = flat_samples(prep.X["test"]), prep.y["test"], list(prep.class_names)
    t = time.perf_counter()
    logits = model.predict(X[..., None], batch_size=256, verbose=0)
    ms = 1000 * (time.perf_counter() - t) / len(X)
    from spiking.keras.conversion import keras_macs

    macs = keras_macs(model)
    cnn = {"name": "cnn_k", "test": classification_metrics(y, np.argmax(logits, axis=1), names),
           "parameters": int(model.count_params()), "inference_ms_per_sample": ms, "source": source_label,
           # the search's training time (None if the model came without its search's results.json)
           "train_seconds": source_seconds,
           "efficiency": {"macs": macs, "synops": 0, "energy_pj": macs * E_MAC_PJ, "convention": CONVENTION}}
    models, exported = [cnn], {}
    for role, trial in (("best", best), ("tradeoff", tradeoff)):
        cfg = trial["config"]
        out = score_conversion(model, cfg, X, y, names, L=L, n_classes=C)
        eff = dict(out["efficiency"])
        eff["energy_ratio_vs_cnn"] = eff["energy_pj"] / cnn["efficiency"]["energy_pj"] if macs else None
        eff["convention"] = CONVENTION
        doc = {"experiment": exp.name, "role": role, "budget": b.name, "trial_id": trial["trial_id"], "config": cfg,
               "val_balanced_accuracy": trial["best_val_balanced_accuracy"], "source": source_label,
               "notes": out["notes"]}
        if role == "tradeoff":
            doc["rule"] = "fewest num_steps with validation balanced accuracy >= best - 1 pp"
        st.write_text(fs, st.join(fs, exp_dir, f"{role}_config.json"), json.dumps(doc, indent=2, default=str) + "\n")
        exported[role] = doc
        models.append({"name": f"{exp.name}:{role}", "test": out["metrics"], "parameters": cnn["parameters"],
                       "train_seconds": 0.0,  # converted, not trained
                       "inference_ms_per_sample": out["inference_ms_per_sample"],
                       "snn": {"framework": "nengo-dl", **cfg}, "firing_rates_hz": out["firing_rates"],
                       "mean_firing_rate_hz": out["mean_firing_rate_hz"], "efficiency": eff,
                       "conversion_notes": out["notes"],
                       "search": {"trial_id": trial["trial_id"], "config": cfg,
                                  "val_balanced_accuracy": trial["best_val_balanced_accuracy"]}})
    models.append(evaluate_logreg(prep, seed=seed))
    counts = {c: int(np.sum(y == i)) for i, c in enumerate(names)}
    public = [public_trial(t) for t in trials]
    typed = Results.build(dataset_info, {**prep.split_info, "test_class_counts": counts}, models,
                          search={**meta, "n_trials": len(trials), "n_errors": sum(t["error"] is not None for t in trials),
                                  "n_stopped_early": 0, "best": exported["best"], "tradeoff": exported["tradeoff"]},
                          run={"name": exp.name, "config": {"experiment": exp.name, "budget": b.name, "seed": seed}})
    results = typed.to_dict()
    with tempfile.TemporaryDirectory(prefix="spiking-snnk-") as tmp:
        local = write_results(typed, Path(tmp) / "results.json")
        st.write_bytes(fs, st.join(fs, exp_dir, "results.json"), local.read_bytes())
        png = Path(tmp) / "activity.png"
        scale = float(best["config"]["scale_firing_rates"])
        cfg = best["config"]
        plot_layer_activity(model, X[0], scales=(1.0, scale if scale > 1 else 300.0), num_steps=int(cfg["num_steps"]),
                            neuron=cfg["neuron"], synapse=float(cfg["synapse"]) or None, class_names=names, path=png)
        st.write_bytes(fs, st.join(fs, exp_dir, "activity.png"), png.read_bytes())
    table = format_table(models)
    st.write_text(fs, st.join(fs, exp_dir, "results.txt"), table + "\n")
    st.write_text(fs, st.join(fs, exp_dir, "trials.json"), json.dumps(public, indent=2, default=str) + "\n")
    return {"results": results, "table": table, "best": exported["best"], "tradeoff": exported["tradeoff"],
            "trials": public}




def cmd_snn_k(a, exp=None) -> int:
    """``spiking tune snn_k`` (called by :func:`spiking.search.cli.cmd_tune`); returns the exit code."""
    if a.gpus_per_trial:
        print("note: snn_k trials run NengoDL on CPU here; --gpus-per-trial is ignored")
    out = run_snn_k(exp or a.experiment, shards=a.shards, budget=a.budget, storage=a.storage, resume=a.resume,
                    overwrite=a.overwrite, weights=a.weights, seed=a.seed, cpus_per_trial=a.cpus_per_trial,
                    max_concurrent=a.max_concurrent, ray_num_cpus=a.ray_cpus, verbose=0 if a.quiet else 1)
    s = out["results"]["search"]
    print(f"\n{out['experiment']} ({out['budget']}): {s['n_trials']} trials, {s['n_errors']} errors; "
          f"CNN_K from {s['weights']['source']}")
    for role in ("best", "tradeoff"):
        d = out[role]
        print(f"{role}: validation balanced accuracy {d['val_balanced_accuracy']:.4f}, config {d['config']}")
    for note in out["best"]["notes"]:
        print(f"  conversion: {note}")
    print(f"\nTest split ({out['results']['split']['sizes']['test']} samples, touched once):")
    print(out["table"])
    print(f"\nresults: {out['path']} (results.json, best_config.json, activity.png); {out['seconds']:.1f} s")
    return 0


__all__ = ["run_snn_k", "score_conversion", "locate_keras_weights", "snn_k_trial", "cmd_snn_k"]
