"""Evaluate a run once on its held-out test split: CNN, SNN and the logistic-regression baseline."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from ..training.jobs import load_model
from ..training.loop import predict
from ..training.objectives import CNNObjective, SpikeCountObjective
from .baseline import fit_logistic_regression
from .metrics import classification_metrics


def _timed_predict(model, objective, X) -> tuple[np.ndarray, float, dict | None]:
    """Predictions (n,), milliseconds per sample, and for a spiking network the mean spikes
    per sample per LIF layer (summed over steps and neurons), all from one pass over ``X``."""
    totals: dict[str, float] = {}
    handle = None
    if hasattr(model, "record_spikes"):
        model.record_spikes = True

        def add_counts(module, inputs, output):
            for name, counts in module.last_spike_counts.items():
                totals[name] = totals.get(name, 0.0) + float(counts.sum())

        handle = model.register_forward_hook(add_counts)
    try:
        t0 = time.perf_counter()
        pred = predict(model, objective, X, batch_size=256)
        ms = 1000 * (time.perf_counter() - t0) / max(len(X), 1)
    finally:
        if handle is not None:
            handle.remove()
            model.record_spikes = False
    spikes = {name: v / len(X) for name, v in totals.items()} if handle is not None else None
    return pred, ms, spikes


def evaluate_network(path: str | Path, prep) -> dict:
    """Test metrics of a saved network (``cnn.pt`` or ``snn.pt``) in the results.json model-entry form."""
    model, meta = load_model(path)
    if meta["kind"] == "cnn":
        objective = CNNObjective()
    else:
        objective = SpikeCountObjective(meta["n_classes"], loss=meta["loss"], population=meta["population"])
    pred, ms, spikes = _timed_predict(model, objective, prep.X["test"])
    entry = {
        "name": meta["kind"],
        "test": classification_metrics(prep.y["test"], pred, prep.class_names),
        "parameters": int(sum(p.numel() for p in model.parameters())),
        "train_seconds": float(meta["train_seconds"]),
        "inference_ms_per_sample": ms,
        "best_epoch": int(meta["best_epoch"]),
        "architecture": meta["arch"],
    }
    if meta["kind"] == "snn":
        entry["snn"] = {k: meta[k] for k in ("neuron", "beta", "num_steps", "population", "loss", "mode")}
        entry["mean_spikes_per_sample"] = spikes
    return entry


def evaluate_logreg(prep, seed: int = 42) -> dict:
    """Fit the logistic-regression baseline on train (same preprocessing) and score it on test."""
    flat = {p: x.reshape(len(x), -1) for p, x in prep.X.items()}
    t0 = time.perf_counter()
    clf = fit_logistic_regression(flat["train"], prep.y["train"], seed=seed)
    train_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    pred = clf.predict(flat["test"])
    ms = 1000 * (time.perf_counter() - t0) / len(pred)
    return {"name": "logreg", "test": classification_metrics(prep.y["test"], pred, prep.class_names),
            "parameters": int(clf.coef_.size + clf.intercept_.size), "train_seconds": train_s,
            "inference_ms_per_sample": ms}


def evaluate_run(run_dir: str | Path, prep, dataset_info: dict, seed: int = 42) -> dict:
    """Results of every network saved in ``run_dir`` plus the baseline, in the results.json schema."""
    run_dir = Path(run_dir)
    models = [evaluate_network(run_dir / f"{k}.pt", prep) for k in ("cnn", "snn") if (run_dir / f"{k}.pt").exists()]
    models.append(evaluate_logreg(prep, seed=seed))
    counts = {c: int(np.sum(prep.y["test"] == i)) for i, c in enumerate(prep.class_names)}
    return {"dataset": dataset_info, "split": {**prep.split_info, "test_class_counts": counts}, "models": models}
