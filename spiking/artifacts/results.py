"""``results.json`` and the printed summary table.

Schema (shared by ``spiking run`` and later experiments)::

    {"dataset": {"source", "n_samples", "n_features", "classes"},
     "split": {"sizes": {"train", "val", "test"}, "seed", ...},
     "models": [{"name", "test": {"accuracy", "balanced_accuracy", "macro_f1", ...},
                 "parameters", "train_seconds", ...}, ...]}
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from spiking.artifacts import ArtifactError

REQUIRED_MODEL_KEYS = ("name", "test", "parameters", "train_seconds")


def dataset_block(manifest: dict, prep, shards: str) -> dict:
    """The ``dataset`` block of results.json: source files (with sha256), shards, units, sizes, classes.

    Args:
        manifest: the shards' ``manifest.json`` (``Dataset.manifest``); prep: the run's ``Prepared`` data.
    """
    return {"source": manifest.get("sources"), "shards": str(shards), "units": manifest.get("units"),
            "n_samples": int(sum(len(v) for v in prep.ids.values())), "n_features": prep.n_features,
            "classes": prep.class_names}


def write_results(results: dict, path: str | Path) -> Path:
    """Validate the schema and write ``results`` as indented JSON, atomically.

    Raises:
        ValueError: a required key is missing.
    """
    for key in ("dataset", "split", "models"):
        if key not in results:
            raise ArtifactError(f"results lack {key!r}")
    for m in results["models"]:
        missing = [k for k in REQUIRED_MODEL_KEYS if k not in m]
        if missing:
            raise ArtifactError(f"model entry {m.get('name')!r} lacks {missing}")
    path = Path(path)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(results, indent=2, sort_keys=False) + "\n")
    os.replace(tmp, path)
    return path


def _count(n: float) -> str:
    """3 significant figures with k/M/G: 3,892 -> '3.89k'."""
    for div, unit in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= div:
            return f"{n / div:.3g}{unit}"
    return f"{n:.3g}"


def _ops_text(eff: dict | None) -> str:
    if not eff:
        return "-"
    if eff.get("encoding") is None:
        return f"{_count(eff['macs'])} MAC"
    text = f"{_count(eff['synops'])} SynOp"
    return text + (f"+{_count(eff['macs'])} MAC" if eff["macs"] else "")


def _energy_text(eff: dict | None) -> str:
    return f"{eff['energy_pj'] / 1e6:.3f}" if eff else "-"


def format_table(models: list[dict]) -> str:
    """A plain-text table: one row per model with test accuracy, balanced accuracy, macro-F1
    (percent), parameters, training seconds, inference ms/sample, operations per inference
    (MACs for a CNN; synaptic operations plus first-layer MACs for an SNN), energy per inference
    (microjoules) and the SNN/CNN energy ratio; the energy convention is printed below."""
    head = (f"{'model':<15} {'accuracy':>9} {'bal.acc':>9} {'macro-F1':>9} {'params':>10} {'train s':>9} "
            f"{'ms/sample':>10} {'ops/inference':>24} {'energy uJ':>10} {'x CNN':>6}")
    lines = [head, "-" * len(head)]
    convention = None
    for m in models:
        t = m["test"]
        ms = m.get("inference_ms_per_sample")
        eff = m.get("efficiency")
        if eff:
            convention = eff.get("convention")
        ratio = eff.get("energy_ratio_vs_cnn") if eff else None
        ts = m["train_seconds"]
        lines.append(
            f"{m['name']:<15} {100 * t['accuracy']:>8.2f}% {100 * t['balanced_accuracy']:>8.2f}% "
            f"{100 * t['macro_f1']:>8.2f}% {m['parameters']:>10,} {(f'{ts:.1f}' if ts is not None else '-'):>9} "
            f"{(f'{ms:.3f}' if ms is not None else '-'):>10} {_ops_text(eff):>24} "
            f"{_energy_text(eff):>10} "
            f"{(f'{ratio:.2f}' if ratio is not None else '-'):>6}"
        )
    if convention:
        lines.append(f"energy: {convention}")
    return "\n".join(lines)
