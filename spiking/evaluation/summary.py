"""Figures over repeats (seeds or cross-validation folds): mean, sd, min and max per model and
metric, and every network paired against the best classic baseline on the same splits.

Paired comparison: per repeat the difference network - baseline of one metric (same split, same
test rows), then the mean difference with a 95% percentile-bootstrap interval over repeats
(scipy.stats.bootstrap, 10,000 resamples of the repeats, seeded) and the exact two-sided Wilcoxon
signed-rank p-value (scipy.stats.wilcoxon). The bootstrap gives an interval in the metric's own
units with no normality assumption; with 5 repeats it is narrow (it under-covers), and the
Wilcoxon test cannot go below p = 0.0625, so both are printed and neither alone decides. Folds of
one cross-validation share training rows, so their differences are not independent (Nadeau &
Bengio 2003): the interval is then descriptive. Details: docs/evaluation.md.
"""

from __future__ import annotations

import math
import warnings

import numpy as np

from spiking.evaluation.baseline import is_baseline
from spiking.evaluation.metrics import EvaluationError

#: Metrics summarised per model: name -> (block of the model entry or None, key).
METRICS = {
    "accuracy": ("test", "accuracy"),
    "balanced_accuracy": ("test", "balanced_accuracy"),
    "macro_f1": ("test", "macro_f1"),
    "energy_pj": ("efficiency", "energy_pj"),
    "energy_ratio_vs_cnn": ("efficiency", "energy_ratio_vs_cnn"),
    "train_seconds": (None, "train_seconds"),
}
#: Metrics a network is paired on against the best classic baseline.
PAIRED_METRICS = ("balanced_accuracy", "macro_f1")
#: What picks the best classic baseline: its mean validation balanced accuracy over the repeats (the
#: score of its chosen setting), never a test score; ties go to the first in table order.
CONFIDENCE = 0.95
N_RESAMPLES = 10_000
BOOTSTRAP_SEED = 0


def validation_score(entry: dict) -> float | None:
    """A baseline entry's validation balanced accuracy (its chosen setting's, the best of its grid);
    None when it has no ``baseline`` block with scores (files written before baselines were tuned)."""
    b = entry.get("baseline")
    scores = b.get("val_balanced_accuracy") if isinstance(b, dict) else None
    vals = [float(v) for v in scores.values() if isinstance(v, (int, float)) and not isinstance(v, bool)] \
        if isinstance(scores, dict) else []
    return max(vals) if vals else None


def best_baseline(entries_by_name: dict) -> tuple[str | None, str]:
    """``(name, how)`` of the best classic baseline among ``{name: {repeat: entry}}``: the highest mean
    validation balanced accuracy, over the baselines present in the most repeats."""
    if not entries_by_name:
        return None, ""
    most = max(len(e) for e in entries_by_name.values())
    scored = {}
    for name, entries in entries_by_name.items():
        vals = [validation_score(m) for m in entries.values()]
        if len(entries) == most and vals and None not in vals:
            scored[name] = float(np.mean(vals))
    if scored:
        name = max(scored, key=scored.get)  # the first of equal scores
        return name, f"highest mean validation balanced accuracy ({100 * scored[name]:.2f}%); test scores not used"
    return None, "no baseline has validation scores"


def metric_value(entry: dict, metric: str) -> float | None:
    """``metric`` (a key of :data:`METRICS`) of a results.json model entry; None when absent."""
    block, key = METRICS[metric]
    d = entry.get(block) if block else entry
    v = d.get(key) if isinstance(d, dict) else None
    return None if v is None else float(v)


def describe(values) -> dict:
    """``{"n", "mean", "sd", "min", "max", "values"}`` of finite numbers; ``sd`` is the sample
    standard deviation (ddof=1), None for fewer than 2 values; all None for none.

    Raises:
        EvaluationError: a value that is not a finite number."""
    if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
        raise EvaluationError(f"describe needs a list of numbers, got {values!r}")
    vals = list(values)
    if not all(isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool) for v in vals):
        raise EvaluationError(f"describe needs numbers, got {vals[:5]!r}")
    vals = [float(v) for v in vals]
    if any(not math.isfinite(v) for v in vals):
        raise EvaluationError(f"cannot summarise non-finite values {vals}")
    if not vals:
        return {"n": 0, "mean": None, "sd": None, "min": None, "max": None, "values": []}
    a = np.asarray(vals)
    return {"n": len(vals), "mean": float(a.mean()), "sd": float(a.std(ddof=1)) if len(vals) > 1 else None,
            "min": float(a.min()), "max": float(a.max()), "values": vals}


def paired_difference(a, b, *, confidence: float = CONFIDENCE, n_resamples: int = N_RESAMPLES,
                      seed: int = BOOTSTRAP_SEED) -> dict:
    """Paired comparison of ``a`` and ``b`` (equal-length sequences, one value per repeat, same order).

    Returns ``{"n", "mean_difference", "ci_low", "ci_high", "confidence", "wilcoxon_p", "differences"}``
    with ``mean_difference`` = mean(a - b); the interval is the percentile bootstrap of that mean
    (``scipy.stats.bootstrap``, ``n_resamples`` resamples of the pairs, seeded: the same inputs give
    the same interval), None for fewer than 2 pairs; ``wilcoxon_p`` the two-sided Wilcoxon
    signed-rank p-value (``scipy.stats.wilcoxon``; 1.0 when every difference is 0, None for fewer than 2).

    Raises:
        EvaluationError: unequal lengths, no pairs, or a non-finite value.
    """
    from scipy import stats

    if not 0 < confidence < 1 or int(n_resamples) < 1:
        raise EvaluationError(f"confidence must be in (0, 1) and n_resamples >= 1, got {confidence!r}, {n_resamples!r}")
    try:
        a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    except (TypeError, ValueError):
        raise EvaluationError("a paired comparison needs numbers") from None
    if a.shape != b.shape or a.ndim != 1 or len(a) == 0:
        raise EvaluationError(f"a paired comparison needs two equal-length, non-empty lists, got {a.shape} and {b.shape}")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise EvaluationError("a paired comparison needs finite values")
    d = a - b
    if not np.isfinite(d).all():
        raise EvaluationError("a paired comparison's differences overflow")
    out = {"n": int(len(d)), "mean_difference": float(d.mean()), "ci_low": None, "ci_high": None,
           "confidence": confidence, "wilcoxon_p": None, "differences": d.tolist()}
    if len(d) < 2:
        return out
    if np.allclose(d, d[0], rtol=0, atol=1e-15):  # no spread: every resample has the same mean
        out["ci_low"] = out["ci_high"] = float(d[0])
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # scipy warns about few distinct values; the interval is still defined
            res = stats.bootstrap((d,), np.mean, n_resamples=n_resamples, confidence_level=confidence,
                                  method="percentile", rng=np.random.default_rng(seed))
        out["ci_low"], out["ci_high"] = float(res.confidence_interval.low), float(res.confidence_interval.high)
    if np.all(d == 0):
        out["wilcoxon_p"] = 1.0
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out["wilcoxon_p"] = float(stats.wilcoxon(d, zero_method="wilcox", alternative="two-sided").pvalue)
    return out


def summarize(repeats: list[dict], results: list[dict]) -> dict:
    """The summary of ``results`` (results.json documents, one per repeat, in the order of ``repeats``:
    ``{"name", "seed", "fold"}`` each).

    Returns ``{"repeats", "dataset", "models", "best_baseline", "paired", "statistics"}``:
    ``models`` one entry per model name (first-seen order) with ``kind`` (network/baseline),
    ``stats`` (:func:`describe` of each of :data:`METRICS` it has) and ``repeats`` (the names it
    appears in); ``best_baseline`` the baseline of :func:`best_baseline` (chosen on validation); ``paired``
    each network against it on :data:`PAIRED_METRICS` (:func:`paired_difference`, over the repeats
    both appear in).

    Raises:
        EvaluationError: no repeats, lengths that differ, or repeats of different tasks (classes or
            features).
    """
    names = [r.get("name") for r in repeats] if isinstance(repeats, list) else []
    if len(set(names)) != len(names):
        raise EvaluationError(f"repeat names must be distinct, got {names}")
    if not repeats or len(repeats) != len(results):
        raise EvaluationError(f"need one results document per repeat, got {len(repeats)} repeats and "
                              f"{len(results)} results")
    if not all(isinstance(r, dict) and isinstance(r.get("dataset"), dict) and isinstance(r.get("models"), list)
               for r in results):
        raise EvaluationError("every results document needs a 'dataset' object and a 'models' list")
    first = results[0]["dataset"]
    for rep, r in zip(repeats, results):
        d = r["dataset"]
        if list(d.get("classes") or []) != list(first.get("classes") or []) or d.get("n_features") != first.get("n_features"):
            raise EvaluationError(f"repeat {rep['name']} has other classes or features than {repeats[0]['name']}: "
                                  "repeats must be of one task")
    by_name: dict[str, dict] = {}
    for rep, r in zip(repeats, results):
        own = [m["name"] for m in r["models"]]
        if len(set(own)) != len(own):
            raise EvaluationError(f"repeat {rep['name']} has two models of one name: {sorted(own)}")
        for m in r["models"]:
            e = by_name.setdefault(m["name"], {"name": m["name"], "kind": "baseline" if is_baseline(m) else "network",
                                               "entries": {}})
            e["entries"][rep["name"]] = m
    models = []
    for e in by_name.values():
        stats = {}
        for metric in METRICS:
            vals = [metric_value(m, metric) for m in e["entries"].values()]
            vals = [v for v in vals if v is not None]
            if vals:
                stats[metric] = describe(vals)
        models.append({"name": e["name"], "kind": e["kind"], "repeats": list(e["entries"]), "stats": stats})
    best_name, how = best_baseline({n: e["entries"] for n, e in by_name.items() if e["kind"] == "baseline"})
    paired = []
    if best_name is not None:
        base = by_name[best_name]["entries"]
        for m in models:
            if m["kind"] != "network":
                continue
            mine = by_name[m["name"]]["entries"]
            shared = [rep["name"] for rep in repeats if rep["name"] in mine and rep["name"] in base]
            for metric in PAIRED_METRICS:
                a = [metric_value(mine[n], metric) for n in shared]
                b = [metric_value(base[n], metric) for n in shared]
                if not shared or None in a or None in b:
                    continue
                paired.append({"model": m["name"], "against": best_name, "metric": metric, "repeats": shared,
                               **paired_difference(a, b)})
    return {"repeats": [dict(r) for r in repeats],
            "dataset": {k: first.get(k) for k in ("shards", "units", "n_samples", "n_features", "classes")},
            "models": models,
            "best_baseline": None if best_name is None else {"name": best_name, "by": how},
            "paired": paired,
            "statistics": {"sd": "sample standard deviation (ddof=1) over repeats",
                           "interval": f"{int(100 * CONFIDENCE)}% percentile bootstrap of the mean paired difference "
                                       f"(scipy.stats.bootstrap, {N_RESAMPLES} resamples, seed {BOOTSTRAP_SEED})",
                           "test": "two-sided Wilcoxon signed-rank test of the paired differences (scipy.stats.wilcoxon)"}}
