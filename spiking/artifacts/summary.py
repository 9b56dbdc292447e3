"""``summary.json`` of repeated runs (``spiking run --seeds`` / ``--cv``): its one writer, its one
reader and the printed tables. The figures are computed by :func:`spiking.evaluation.summary.summarize`.

Layout: ``protocol`` (``kind``: seeds | cv | seeds x cv, ``seeds``, ``folds``), ``repeats`` (``name, seed,
fold``; each repeat's run is the folder ``<name>/`` beside summary.json), ``config`` (the settings
shared by the repeats), ``dataset``, ``models`` (``name, kind, repeats, stats``: metric ->
``n, mean, sd, min, max, values``), ``best_baseline`` (``name, by``), ``paired`` (``model, against,
metric, repeats, n, mean_difference, ci_low, ci_high, confidence, wilcoxon_p, differences``) and
``statistics`` (the methods in words).
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from spiking.artifacts import ArtifactError
from spiking.artifacts.results import JsonShape, describe, is_num

SUMMARY_FILE = "summary.json"
PROTOCOLS = ("seeds", "cv", "seeds x cv")
STAT_KEYS = ("n", "mean", "sd", "min", "max")
PAIR_KEYS = ("mean_difference", "ci_low", "ci_high", "wilcoxon_p")


def _whole(v: Any) -> bool:
    """A JSON number with no fractional part (not a boolean, not inf/NaN)."""
    return is_num(v) and math.isfinite(v) and v == int(v)


def check_summary(doc: Any, source: Any) -> dict:
    """Check a summary.json document; return it.

    Raises:
        ArtifactError: ``"<source>: <key> must be ..."`` for the first field of the wrong kind or range.
    """
    c = JsonShape(source)
    doc = c.obj(doc, "", optional=False)
    p = c.obj(doc.get("protocol"), "protocol", optional=False)
    if not isinstance(p.get("kind"), str) or p["kind"] not in PROTOCOLS:
        c.fail("protocol.kind", f"must be one of {', '.join(PROTOCOLS)}, not {describe(p.get('kind'))}")
    seeds = c.arr(p.get("seeds"), "protocol.seeds", optional=False)
    if not seeds or not all(_whole(x) and x >= 0 for x in seeds):
        c.fail("protocol.seeds", "must be a non-empty list of seeds (integers >= 0)")
    folds = p.get("folds")
    if folds is not None and not (_whole(folds) and folds >= 2):
        c.fail("protocol.folds", f"must be null or an integer >= 2, not {describe(folds)}")
    if (folds is None) != (p["kind"] == "seeds"):
        c.fail("protocol", f"kind {p['kind']!r} does not match folds {folds!r}")
    c.obj(doc.get("dataset"), "dataset")
    c.obj(doc.get("statistics"), "statistics")
    reps = c.arr(doc.get("repeats"), "repeats", optional=False)
    if not reps:
        c.fail("repeats", "must list at least one repeat")
    names = set()
    for i, r in enumerate(reps):
        r = c.obj(r, f"repeats[{i}]", optional=False)
        n = r.get("name")
        if not isinstance(n, str) or not n or "/" in n or "\\" in n or n in (".", ".."):
            c.fail(f"repeats[{i}].name", f"must be a plain folder name, not {describe(n)}")
        if n in names:
            c.fail(f"repeats[{i}].name", f"repeats {n!r}")
        names.add(n)
        if len(n) > 200 or any(ord(ch) < 32 for ch in n):
            c.fail(f"repeats[{i}].name", "must be a plain folder name (at most 200 characters, no control characters)")
        c.num(r, "seed", f"repeats[{i}]", minimum=0)
        c.num(r, "fold", f"repeats[{i}]", minimum=0)
    models = c.arr(doc.get("models"), "models", optional=False)
    if not models:
        c.fail("models", "must list at least one model")
    seen = set()
    for i, m in enumerate(models):
        m = c.obj(m, f"models[{i}]", optional=False)
        if not isinstance(m.get("name"), str) or not m["name"]:
            c.fail(f"models[{i}].name", f"must be a non-empty string, not {describe(m.get('name'))}")
        if m["name"] in seen:
            c.fail(f"models[{i}].name", f"repeats {m['name']!r}")
        seen.add(m["name"])
        if not isinstance(m.get("kind"), str) or m["kind"] not in ("network", "baseline"):
            c.fail(f"models[{i}].kind", f"must be network or baseline, not {describe(m.get('kind'))}")
        reps_of = c.arr(m.get("repeats"), f"models[{i}].repeats")
        if not all(isinstance(x, str) and x in names for x in reps_of):
            c.fail(f"models[{i}].repeats", "must list names of the summary's repeats")
        for metric, s in c.obj(m.get("stats"), f"models[{i}].stats").items():
            w = f"models[{i}] ({m['name']}).stats.{metric}"
            s = c.obj(s, w, optional=False)
            for k in STAT_KEYS:
                v = s.get(k)
                if v is not None and not (is_num(v) and math.isfinite(v)):
                    c.fail(f"{w}.{k}", f"must be a finite number or null, not {describe(v)}")
            vals = c.arr(s.get("values"), f"{w}.values")
            if not all(is_num(v) and math.isfinite(v) for v in vals):
                c.fail(f"{w}.values", "must be a list of finite numbers")
            if s.get("n") is not None and not (_whole(s["n"]) and s["n"] == len(vals)):
                c.fail(f"{w}.n", f"is {s['n']!r}, but values holds {len(vals)}")
            if vals and s.get("mean") is None:
                c.fail(f"{w}.mean", "is missing while values are given")
            if vals and s.get("min") is not None and s.get("max") is not None and s["min"] > s["max"]:
                c.fail(w, "has min above max")
            c.num(s, "sd", w, minimum=0)
    kinds = {m["name"]: m["kind"] for m in models}
    best = c.obj(doc.get("best_baseline"), "best_baseline")
    if best:
        if not isinstance(best.get("name"), str) or kinds.get(best["name"]) != "baseline":
            c.fail("best_baseline.name", f"names no baseline of the summary: {describe(best.get('name'))}")
        c.text(best, "by", "best_baseline")
    for i, pr in enumerate(c.arr(doc.get("paired"), "paired")):
        w = f"paired[{i}]"
        pr = c.obj(pr, w, optional=False)
        for k in ("model", "against"):
            if not isinstance(pr.get(k), str) or pr[k] not in seen:
                c.fail(f"{w}.{k}", f"names no model of the summary: {describe(pr.get(k))}")
        if not isinstance(pr.get("metric"), str) or not pr["metric"]:
            c.fail(f"{w}.metric", f"must name a metric, not {describe(pr.get('metric'))}")
        for k in PAIR_KEYS:
            v = pr.get(k)
            if v is not None and not (is_num(v) and math.isfinite(v)):
                c.fail(f"{w}.{k}", f"must be a finite number or null, not {describe(v)}")
        if pr.get("mean_difference") is None:
            c.fail(f"{w}.mean_difference", "is missing")
        if not (_whole(pr.get("n")) and pr["n"] >= 1):
            c.fail(f"{w}.n", f"must be an integer >= 1, not {describe(pr.get('n'))}")
        if (pr.get("ci_low") is None) != (pr.get("ci_high") is None):
            c.fail(w, "has only one end of its interval")
        if pr.get("ci_low") is not None and pr["ci_low"] > pr["ci_high"]:
            c.fail(w, "has ci_low above ci_high")
        if pr.get("wilcoxon_p") is not None and not 0 <= pr["wilcoxon_p"] <= 1:
            c.fail(f"{w}.wilcoxon_p", f"must be in [0, 1], not {pr['wilcoxon_p']!r}")
        diffs = c.arr(pr.get("differences"), f"{w}.differences")
        if not all(is_num(v) and math.isfinite(v) for v in diffs) or (diffs and len(diffs) != pr["n"]):
            c.fail(f"{w}.differences", f"must be {pr['n']} finite numbers")
    return doc


def write_summary(summary: dict, path: str | Path) -> Path:
    """Check (:func:`check_summary`) and write ``summary`` to ``path`` as indented JSON, atomically."""
    path = Path(path)
    check_summary(summary, path)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(summary, indent=2) + "\n")
    os.replace(tmp, path)
    return path


def read_summary(path: str | Path) -> dict:
    """The checked summary.json at ``path``.

    Raises:
        ArtifactError: not valid JSON, or a field of the wrong kind (naming the file and the key).
        OSError: the file cannot be read.
    """
    try:
        doc = json.loads(Path(path).read_text())
    except (ValueError, RecursionError) as e:  # JSONDecodeError, UnicodeDecodeError, absurd nesting
        raise ArtifactError(f"{path} is not valid JSON (summary): {type(e).__name__}: {str(e)[:200]}") from None
    return check_summary(doc, path)


# --------------------------------------------------------------------------- printed tables
def _pct(s: dict | None) -> str:
    if not s or s.get("mean") is None:
        return "-"
    sd = s.get("sd")
    return f"{100 * s['mean']:.2f} ± {100 * sd:.2f}" if sd is not None else f"{100 * s['mean']:.2f}"


def _num(s: dict | None, scale: float = 1.0, fmt: str = ".2f") -> str:
    if not s or s.get("mean") is None:
        return "-"
    sd = s.get("sd")
    return f"{s['mean'] * scale:{fmt}}" + (f" ± {sd * scale:{fmt}}" if sd is not None else "")


def summary_rows(summary: dict) -> list[list[str]]:
    """One row per model: name (best baseline marked), repeats, accuracy, balanced accuracy and
    macro-F1 (percent, mean ± sd), balanced-accuracy range (min-max), energy per inference (uJ),
    energy ratio vs the CNN, training seconds."""
    best = (summary.get("best_baseline") or {}).get("name")
    rows = []
    for m in summary["models"]:
        s = m.get("stats") or {}
        ba = s.get("balanced_accuracy") or {}
        name = m["name"] + (" (best baseline)" if m["name"] == best else " (baseline)" if m["kind"] == "baseline" else "")
        rng = f"{100 * ba['min']:.2f}-{100 * ba['max']:.2f}" if ba.get("min") is not None else "-"
        rows.append([name, str(ba.get("n", len(m.get("repeats") or []))), _pct(s.get("accuracy")), _pct(ba), _pct(s.get("macro_f1")),
                     rng, _num(s.get("energy_pj"), 1e-6, ".3f"), _num(s.get("energy_ratio_vs_cnn")),
                     _num(s.get("train_seconds"), 1.0, ".1f")])
    return rows


SUMMARY_HEADER = ["model", "n", "accuracy %", "bal. acc. %", "macro-F1 %", "bal. acc. min-max", "energy uJ",
                  "x CNN", "train s"]
PAIRED_HEADER = ["network", "vs", "metric", "n", "mean diff. (points)", "95% bootstrap CI", "Wilcoxon p"]


def paired_rows(summary: dict) -> list[list[str]]:
    """One row per paired comparison: network, baseline, metric, pairs, mean difference and its
    interval in percentage points, Wilcoxon p."""
    rows = []
    for p in summary.get("paired") or []:
        ci = (f"[{100 * p['ci_low']:+.2f}, {100 * p['ci_high']:+.2f}]" if p.get("ci_low") is not None else "-")
        rows.append([p["model"], p["against"], p["metric"], str(p["n"]), f"{100 * p['mean_difference']:+.2f}", ci,
                     f"{p['wilcoxon_p']:.3g}" if p.get("wilcoxon_p") is not None else "-"])
    return rows


def _text_table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)]
    line = lambda cells: "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))  # noqa: E731
    out = [line(header), "-" * len(line(header))]
    return "\n".join(out + [line(r) for r in rows])


def format_summary(summary: dict) -> str:
    """The summary table and the paired comparisons as plain text (for the terminal)."""
    p = summary["protocol"]
    seeds = ", ".join(map(str, p.get("seeds") or []))
    what = {"seeds": f"seeds {seeds}", "cv": f"{p.get('folds')}-fold cross-validation, seed {seeds}",
            "seeds x cv": f"{p.get('folds')}-fold cross-validation x seeds {seeds}"}[p["kind"]]
    n = len(summary["repeats"])
    text = [f"Test figures over {n} repeat{'s' if n != 1 else ''} ({what}): mean ± sd (sample sd), each split's "
            "test part scored once", _text_table(SUMMARY_HEADER, summary_rows(summary))]
    if summary.get("paired"):
        text += ["", f"Paired against the best classic baseline ({summary['best_baseline']['name']}, "
                     f"{summary['best_baseline']['by']}), same splits:",
                 _text_table(PAIRED_HEADER, paired_rows(summary)), paired_caveats(summary)]
    return "\n".join(text)


def paired_caveats(summary: dict) -> str:
    """What the paired statistics of ``summary`` can and cannot show with its number of repeats: the
    smallest two-sided exact Wilcoxon p that n pairs allow (2 / 2^n: all n differences of one sign), the
    bootstrap interval's weakness with few values, and the dependence of cross-validation folds."""
    ns = [int(p["n"]) for p in summary.get("paired") or [] if p.get("n")]
    if not ns:
        return ""
    n = min(ns)
    if n == 1:
        return "With 1 pair there is no spread: no interval or test is possible (use at least 5 repeats)."
    text = f"With {n} pairs the exact two-sided Wilcoxon p cannot fall below {2.0 ** (1 - n):.3g}"
    if n < 5:
        text += (f", and a percentile-bootstrap interval of {n} differences is little more than their range: "
                 "too few repeats to tell a difference from noise (use at least 5).")
    else:
        text += "; a percentile-bootstrap interval of so few differences is too narrow (it under-covers)."
    if "cv" in str(summary["protocol"].get("kind")):
        text += " Folds of one cross-validation share training rows, so their differences are not independent."
    return text
