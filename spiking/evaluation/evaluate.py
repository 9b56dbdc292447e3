"""Evaluate a run once on its held-out test split: CNN, SNNs (one per input encoding) and the
classic baselines, with operations and energy per inference (:mod:`.operations`)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from spiking.artifacts.checkpoint import load_model, network_inputs, snn_name
from spiking.artifacts.results import Results
from spiking.data.preprocess.prepare import split_fingerprint
from spiking.evaluation.baseline import evaluate_baselines, evaluate_logreg, fit_logistic_regression  # noqa: F401  (re-exported)
from spiking.evaluation.metrics import EvaluationError, classification_metrics
from spiking.models.encoding import ENCODINGS
from spiking.models.operations import count_operations
from spiking.training.loop import predict
from spiking.training.objectives import objective_for

#: Samples per forward pass when scoring; the operation count uses the same, so a rate-coded
#: network sees the same input spikes in both passes.
EVAL_BATCH = 256
#: Seed of the input spikes of stochastic encodings at evaluation.
EVAL_SEED = 0


def _timed_predict(model, objective, X) -> tuple[np.ndarray, float, dict | None]:
    """Predictions (n,), milliseconds per sample, and for a spiking network the mean spikes
    per sample per LIF layer (summed over steps and neurons), all from one pass over ``X``
    (input spikes of stochastic encodings drawn with ``EVAL_SEED``)."""
    totals: dict[str, float] = {}
    handle = None
    if hasattr(model, "record_spikes"):
        model.record_spikes = True

        def add_counts(module, inputs, output):
            for name, counts in module.last_spike_counts.items():
                totals[name] = totals.get(name, 0.0) + float(counts.sum())

        handle = model.register_forward_hook(add_counts)
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(EVAL_SEED)
            t0 = time.perf_counter()
            pred = predict(model, objective, X, batch_size=EVAL_BATCH)
            ms = 1000 * (time.perf_counter() - t0) / max(len(X), 1)
    finally:
        if handle is not None:
            handle.remove()
            model.record_spikes = False
    spikes = {name: v / len(X) for name, v in totals.items()} if handle is not None else None
    return pred, ms, spikes


def evaluate_network(path: str | Path, prep) -> dict:
    """Test metrics, operations and energy of a saved network (``cnn.pt``, ``snn*.pt``, a search's
    ``best_model.pt``) in the results.json model-entry form; ``name`` is the file stem.

    The network is fed the test rows laid out with the layout saved in its own file
    (:func:`spiking.artifacts.checkpoint.network_inputs`), whatever layout ``prep`` was made with; the
    entry's ``layout`` names it and its image shape. The ``efficiency`` block is
    :func:`spiking.models.operations.count_operations` on the test split
    (``energy_ratio_vs_cnn`` is filled in by :func:`evaluate_run`)."""
    model, meta = load_model(path)
    n_classes, L = len(prep.class_names), prep.n_features
    if meta.get("n_classes") != n_classes or meta.get("L") != L:
        raise EvaluationError(f"{path}: network for {meta.get('n_classes')} classes x {meta.get('L')} features, but this "
                         f"data has {n_classes} classes x {L} features; it does not belong here")
    split_sha = prep.split_info.get("split_sha256") or split_fingerprint(prep)  # a train subset keeps the split's
    if meta.get("split_sha256") and meta["split_sha256"] != split_sha:
        raise EvaluationError(f"{path} was trained on another split than this one (its training rows may be in this "
                         "test split); retrain it here or evaluate it in its own run")
    if "layout" not in meta and prep.layout is not None:
        raise EvaluationError(f"{path} carries no saved layout (made before layouts existed, or altered), but this run "
                         f"lays its features out with {prep.layout_state()['name']}; its inputs cannot be known. "
                         "Retrain it in this run")
    objective = objective_for(meta)
    X = network_inputs(meta, prep, "test")
    pred, ms, spikes = _timed_predict(model, objective, X)
    entry = {
        "name": Path(path).stem,
        "test": classification_metrics(prep.y["test"], pred, prep.class_names),
        "parameters": int(sum(p.numel() for p in model.parameters())),
        "train_seconds": float(meta["train_seconds"]),
        "inference_ms_per_sample": ms,
        "best_epoch": int(meta["best_epoch"]),
        "architecture": meta["arch"],
        "layout": {"name": (meta.get("layout") or {}).get("name", "identity"),
                   "input_shape": list(meta.get("input_shape") or [meta["L"]])},
    }
    if meta["kind"] == "cnn" and meta.get("activation", "relu") != "relu":
        entry["activation"] = {"name": meta["activation"], "levels": meta.get("levels")}
    if meta["kind"] == "snn":
        entry["snn"] = {k: meta[k] for k in ("neuron", "beta", "num_steps", "population", "loss", "mode")}
        if meta.get("mode") == "convert":  # fine-tuned when a training epoch was kept (-1: as converted)
            entry["snn"].update(init_mem=meta.get("init_mem"), readout=meta.get("readout"),
                                finetuned=int(meta["best_epoch"]) >= 0)
        entry["snn"]["encoding"] = meta.get("encoding", "direct")
        if entry["snn"]["encoding"] == "delta":
            entry["snn"]["delta_threshold"] = meta.get("delta_threshold")
        entry["mean_spikes_per_sample"] = spikes
    entry["efficiency"] = count_operations(model, X, batch_size=EVAL_BATCH, seed=EVAL_SEED)
    if meta["kind"] == "snn" and spikes and spikes.get("lif_out", 0) == 0:
        entry["warnings"] = ["the output layer never spiked on the test split: its predictions come from membrane "
                             "potentials only, and its low energy is that of a silent network"]
    return entry


def add_energy_ratios(models: list[dict], reference: dict | None = None) -> None:
    """Set ``efficiency.energy_ratio_vs_cnn`` (SNN energy / CNN energy per inference) of every spiking
    entry in ``models``, against ``reference`` (a CNN's efficiency block) or else the first CNN entry
    (one without ``snn``); no CNN, no ratio."""
    if reference is None:
        cnn = next((m for m in models if "snn" not in m and m.get("efficiency")), None)
        reference = cnn["efficiency"] if cnn else None
    for m in models:
        eff = m.get("efficiency")
        if eff is None:
            continue
        if reference is not None and "snn" in m and reference["energy_pj"] > 0:
            eff["energy_ratio_vs_cnn"] = eff["energy_pj"] / reference["energy_pj"]


def network_files(run_dir: str | Path) -> list[Path]:
    """The saved networks of a run, in table order: ``cnn.pt``, ``snn.pt``, then ``snn_<encoding>.pt``
    in the order of :data:`spiking.models.encoding.ENCODINGS`."""
    run_dir = Path(run_dir)
    names = ["cnn"] + [snn_name(e) for e in ENCODINGS]
    return [run_dir / f"{n}.pt" for n in names if (run_dir / f"{n}.pt").exists()]


def evaluate_run(run_dir: str | Path, prep, dataset_info: dict, seed: int = 42) -> Results:
    """Results of every network saved in ``run_dir`` plus the classic baselines (:data:`~spiking.evaluation.baseline.BASELINES`) (``dataset``, ``split``, ``models``
    of :class:`spiking.artifacts.results.Results`; the caller adds ``run``)."""
    run_dir = Path(run_dir)
    models = []
    for f in network_files(run_dir):
        entry = evaluate_network(f, prep)
        if "snn" in entry:
            want = snn_name(entry["snn"]["encoding"])
            if f.stem != want:
                raise EvaluationError(f"{f} holds a {entry['snn']['encoding']}-input network, which belongs in {want}.pt")
        models.append(entry)
    add_energy_ratios(models)
    models += evaluate_baselines(prep, seed=seed)
    counts = {c: int(np.sum(prep.y["test"] == i)) for i, c in enumerate(prep.class_names)}
    return Results.build(dataset_info, {**prep.split_info, "test_class_counts": counts}, models)
