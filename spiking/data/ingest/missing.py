"""Policies for missing (NaN) values in an expression matrix.

Missing values in multi-cohort miRNA data are structural: a cohort profiled on a
smaller panel has whole columns empty. The policies here remove them explicitly
(never impute) and report exactly what was removed and why.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from spiking.data.ingest.errors import IngestError

__all__ = ["POLICIES", "apply_missing_policy"]

POLICIES = ("drop-cohorts", "drop-features", "error")
_EXAMPLES = 5


def _names(values) -> list[str]:
    return [str(v) for v in values]


def apply_missing_policy(
    X: pd.DataFrame, y: pd.Series, policy: str = "drop-cohorts"
) -> tuple[pd.DataFrame, pd.Series, dict]:
    """Remove NaN from a samples x features matrix according to ``policy``.

    Policies
    --------
    ``"drop-cohorts"`` (default)
        1. *Core* features are those observed (non-NaN) in at least half of the
           samples (``2 * n_observed >= n_samples``).
        2. Every class in which some core feature is missing for ALL of its
           samples (its panel lacks that feature) is dropped entirely.
        3. Features that still contain any NaN are dropped.
        4. Samples that still contain any NaN are dropped (none remain after
           step 3; kept for safety).
    ``"drop-features"``
        Keep every class and sample; drop every feature with any NaN.
    ``"error"``
        Raise :class:`IngestError` if there is any NaN; otherwise unchanged.

    Parameters
    ----------
    X : pandas.DataFrame, shape (n_samples, n_features)
        Values (any units), NaN = not measured.
    y : pandas.Series, shape (n_samples,)
        Class label per sample; index must equal ``X.index`` (same order).
    policy : str
        One of :data:`POLICIES`.

    Returns
    -------
    X_out : pandas.DataFrame, shape (n_kept_samples, n_kept_features)
        No NaN. Row and column order preserved.
    y_out : pandas.Series, shape (n_kept_samples,)
    report : dict
        JSON-serialisable: ``policy``, ``n_samples_before/after``,
        ``n_features_before/after``, ``n_classes_before/after``, and for the
        drop policies ``classes_dropped`` (list of ``{label, n_samples,
        reason, missing_core_features, examples}``), ``features_dropped``
        (``{count, names, reason}``), ``samples_dropped`` (``{count,
        examples, reason}``); ``drop-cohorts`` also gives ``n_core_features``.

    Raises
    ------
    IngestError
        Unknown policy; ``y`` not aligned with ``X``; labels with NaN; any NaN
        under ``policy="error"`` (message gives the count and an example
        sample id / feature).
    """
    if policy not in POLICIES:
        raise IngestError(f"unknown missing-value policy {policy!r}; choose one of {list(POLICIES)}")
    if len(y) != len(X) or not y.index.equals(X.index):
        raise IngestError("labels y must have the same index (same ids, same order) as matrix X")
    if y.isna().any():
        raise IngestError(f"labels y contain {int(y.isna().sum())} missing value(s)")

    n0, f0 = X.shape
    nan = np.isnan(X.to_numpy(dtype=np.float64, copy=False))
    report: dict = {
        "policy": policy,
        "n_samples_before": int(n0),
        "n_features_before": int(f0),
        "n_classes_before": int(y.nunique()),
        "n_nan_cells_before": int(nan.sum()),
    }

    if policy == "error":
        if nan.any():
            i, j = (int(a[0]) for a in np.nonzero(nan))
            raise IngestError(
                f"missing policy 'error': {int(nan.sum())} NaN cell(s) in "
                f"{int(nan.any(axis=0).sum())} feature(s) and {int(nan.any(axis=1).sum())} "
                f"sample(s), e.g. sample id {str(X.index[i])!r}, feature {str(X.columns[j])!r}; "
                f"use policy 'drop-cohorts' or 'drop-features'"
            )
        report.update(
            n_samples_after=int(n0), n_features_after=int(f0), n_classes_after=report["n_classes_before"]
        )
        return X, y, report

    classes_dropped: list[dict] = []
    keep_rows = np.ones(n0, dtype=bool)
    if policy == "drop-cohorts" and n0 > 0:
        observed = ~nan
        core = 2 * observed.sum(axis=0) >= n0  # (n_features,)
        report["n_core_features"] = int(core.sum())
        codes, uniques = pd.factorize(y, sort=True)
        # per class: is each feature observed in at least one sample?
        seen = np.stack([observed[codes == k].any(axis=0) for k in range(len(uniques))])
        lacking = (~seen) & core[None, :]  # (n_classes, n_features)
        for k, label in enumerate(uniques):
            if lacking[k].any():
                missing_names = _names(X.columns[lacking[k]])
                classes_dropped.append(
                    {
                        "label": str(label),
                        "n_samples": int((codes == k).sum()),
                        "reason": "core feature(s) missing in all samples of the class "
                        "(class profiled on a smaller panel)",
                        "missing_core_features": len(missing_names),
                        "examples": missing_names[:_EXAMPLES],
                    }
                )
                keep_rows &= codes != k

    # features with any NaN among the kept rows
    nan_kept = nan[keep_rows]
    feat_bad = nan_kept.any(axis=0)
    keep_cols = ~feat_bad
    # samples with any NaN among the kept features (none for drop-features)
    samp_bad = np.zeros(n0, dtype=bool)
    samp_bad[keep_rows] = nan_kept[:, keep_cols].any(axis=1)
    dropped_samples = _names(X.index[samp_bad])
    keep_rows &= ~samp_bad

    X_out = X.loc[keep_rows, keep_cols]
    y_out = y.loc[keep_rows]
    dropped_features = _names(X.columns[feat_bad])
    report.update(
        classes_dropped=classes_dropped,
        features_dropped={
            "count": len(dropped_features),
            "names": dropped_features,
            "reason": "feature has NaN in at least one remaining sample",
        },
        samples_dropped={
            "count": len(dropped_samples),
            "examples": dropped_samples[:_EXAMPLES],
            "reason": "sample still has NaN after the feature step",
        },
        n_samples_after=int(X_out.shape[0]),
        n_features_after=int(X_out.shape[1]),
        n_classes_after=int(y_out.nunique()),
    )
    return X_out, y_out, report
