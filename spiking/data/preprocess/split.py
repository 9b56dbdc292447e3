"""Stratified train/validation/test split, grouped so one patient never sits in two parts."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.model_selection import StratifiedGroupKFold
from spiking.data import DataError


@dataclass(frozen=True)
class Split:
    """Row indices of the three parts (each an int64 array, disjoint, sorted)."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    seed: int

    def sizes(self) -> dict[str, int]:
        """Rows per part: ``{"train": n, "val": n, "test": n}``."""
        return {"train": len(self.train), "val": len(self.val), "test": len(self.test)}


def _one_fold(y, groups, idx, fraction, seed):
    """Split ``idx`` into (rest, held) with ``held`` about ``fraction`` of it."""
    n_splits = max(2, int(round(1.0 / fraction)))
    cv = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    rest, held = next(cv.split(np.zeros(len(idx)), y[idx], groups[idx]))
    return np.sort(idx[rest]), np.sort(idx[held])


def stratified_split(
    y: np.ndarray,
    groups: np.ndarray | None = None,
    fractions: tuple[float, float, float] = (0.7, 0.1, 0.2),
    seed: int = 42,
) -> Split:
    """Split rows into train/validation/test, stratified by class and grouped.

    Uses scikit-learn's ``StratifiedGroupKFold``: the test part is one fold of
    ``round(1/test)`` folds, the validation part one fold of the rest, so the
    fractions are met approximately (exactly when they are 1/integer) and every
    class keeps its proportion. Rows sharing a group (for TCGA: the patient, so
    two aliquots of one tumour) always land in the same part: no leakage.

    Args:
        y: labels, shape (n,).
        groups: group id per row, shape (n,), or None (each row its own group).
        fractions: (train, validation, test), positive, summing to 1.
        seed: random seed; the same seed gives the same split.

    Raises:
        ValueError: bad fractions, or a class with fewer rows than folds needed.
    """
    y = np.asarray(y)
    fr = np.asarray(fractions, dtype=float)
    if fr.shape != (3,) or np.any(fr <= 0) or abs(fr.sum() - 1.0) > 1e-6:
        raise DataError(f"fractions must be 3 positive numbers summing to 1, got {fractions}")
    groups = np.arange(len(y)) if groups is None else np.asarray(groups)
    _, counts = np.unique(y, return_counts=True)
    need = max(int(round(1 / fr[2])), int(round((fr[0] + fr[1]) / fr[1])))
    if counts.min() < need:
        raise DataError(
            f"the smallest class has {counts.min()} rows; a {fractions} split needs at least {need} per class"
        )
    all_idx = np.arange(len(y))
    rest, test = _one_fold(y, groups, all_idx, fr[2], seed)
    train, val = _one_fold(y, groups, rest, fr[1] / (fr[0] + fr[1]), seed + 1)
    classes = np.unique(y)
    for name, part in (("train", train), ("validation", val), ("test", test)):
        absent = np.setdiff1d(classes, y[part])
        if absent.size:
            raise DataError(f"class(es) {absent.tolist()} have no sample in the {name} part: their samples share "
                             "too few groups (check the group column, e.g. that it names patients, not cohorts)")
    return Split(train=train, val=val, test=test, seed=seed)
