"""Stratified train/validation/test splits, grouped so one patient never sits in two parts: one
held-out split (:func:`stratified_split`) or the folds of a cross-validation (:func:`kfold_split`)."""

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
    #: Cross-validation: the number of folds and the one held out as ``test`` (None: a held-out split).
    n_folds: int | None = None
    fold: int | None = None

    def sizes(self) -> dict[str, int]:
        """Rows per part: ``{"train": n, "val": n, "test": n}``."""
        return {"train": len(self.train), "val": len(self.val), "test": len(self.test)}


def _one_fold(y, groups, idx, fraction, seed):
    """Split ``idx`` into (rest, held) with ``held`` about ``fraction`` of it (one fold of
    ``round(1/fraction)`` folds)."""
    n_splits = max(2, int(round(1.0 / fraction)))
    cv = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    rest, held = next(cv.split(np.zeros(len(idx)), y[idx], groups[idx]))
    return np.sort(idx[rest]), np.sort(idx[held])


def _next_seed(seed: int) -> int:
    """The seed of the second split step: ``seed + 1``, wrapping at 2**32 (scikit-learn's limit)."""
    return (int(seed) + 1) % 2**32


def _carve_validation(y, groups, idx, fraction, seed):
    """``(train, val)`` of the rows ``idx``: val is one fold of ``round(1/fraction)`` stratified,
    grouped folds, the first that holds every class (a class with fewer groups than folds is
    missing from some). Only when none does are fewer, larger folds tried; when even 2 folds leave
    a class out of a part, the 2-fold split is returned and :func:`_check_parts` names the class."""
    classes = np.unique(y[idx])
    n_splits = max(2, int(round(1.0 / fraction)))
    fallback = None
    while n_splits >= 2:
        cv = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
        try:  # scikit-learn refuses more folds than the largest class has rows
            folds = list(cv.split(np.zeros(len(idx)), y[idx], groups[idx]))
        except ValueError:
            n_splits -= 1
            continue
        for rest, held in folds:
            if np.array_equal(np.unique(y[idx[held]]), classes) and np.array_equal(np.unique(y[idx[rest]]), classes):
                return np.sort(idx[rest]), np.sort(idx[held])
        fallback = folds[0]
        n_splits -= 1
    if fallback is None:  # not even 2 folds: every class has a single row here
        return np.sort(idx), np.sort(idx[:0])
    rest, held = fallback
    return np.sort(idx[rest]), np.sort(idx[held])  # a class then lacks a part: _check_parts names it


def _check_parts(y, train, val, test, class_names=None) -> None:
    classes = np.unique(y)
    for name, part in (("train", train), ("validation", val), ("test", test)):
        absent = np.setdiff1d(classes, y[part])
        if absent.size:
            named = [class_names[int(c)] if class_names is not None else c.item() for c in absent]
            raise DataError(f"class(es) {named} have no sample in the {name} part: their samples share too few "
                            "groups (patients) to fill every part; check the group column (that it names patients, "
                            "not cohorts), or leave the class out (e.g. --top-k)")


def stratified_split(
    y: np.ndarray,
    groups: np.ndarray | None = None,
    fractions: tuple[float, float, float] = (0.7, 0.1, 0.2),
    seed: int = 42,
    class_names=None,
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
        class_names: names of the class indices in ``y``, for the messages.

    Raises:
        ValueError: bad fractions, or a class with fewer rows than folds needed (named).
    """
    y = np.asarray(y)
    fr = np.asarray(fractions, dtype=float)
    if fr.shape != (3,) or np.any(fr <= 0) or abs(fr.sum() - 1.0) > 1e-6:
        raise DataError(f"fractions must be 3 positive numbers summing to 1, got {fractions}")
    groups = np.arange(len(y)) if groups is None else np.asarray(groups)
    labels, counts = np.unique(y, return_counts=True)
    need = max(int(round(1 / fr[2])), int(round((fr[0] + fr[1]) / fr[1])))
    if counts.min() < need:
        c = labels[int(np.argmin(counts))]
        named = class_names[int(c)] if class_names is not None else c.item()
        raise DataError(f"the smallest class, {named!r}, has {counts.min()} rows; a {tuple(fractions)} split needs at "
                        f"least {need} per class (leave the class out, e.g. with --top-k)")
    all_idx = np.arange(len(y))
    rest, test = _one_fold(y, groups, all_idx, fr[2], seed)
    train, val = _one_fold(y, groups, rest, fr[1] / (fr[0] + fr[1]), _next_seed(seed))
    _check_parts(y, train, val, test, class_names)
    return Split(train=train, val=val, test=test, seed=seed)


#: Folds of ``--cv`` given without a number, and the fewest a cross-validation may have.
DEFAULT_FOLDS = 5
MIN_FOLDS = 2
#: The most folds ``--cv`` accepts (more folds than this leave too few test samples per fold to score).
MAX_FOLDS = 20


def groups_per_class(y: np.ndarray, groups: np.ndarray | None, class_names=None) -> dict:
    """``{class: number of distinct groups}`` (rows when ``groups`` is None); keys are
    ``class_names[c]`` when given, else the labels themselves."""
    y = np.asarray(y)
    out = {}
    for c in np.unique(y):
        rows = y == c
        n = int(rows.sum()) if groups is None else len(np.unique(np.asarray(groups)[rows]))
        if class_names is not None and isinstance(c, (int, np.integer)) and 0 <= c < len(class_names):
            out[class_names[int(c)]] = n
        else:
            out[c.item() if hasattr(c, "item") else c] = n
    return out


def check_folds(y: np.ndarray, groups: np.ndarray | None, n_folds: int, class_names=None) -> None:
    """Refuse a ``n_folds``-fold cross-validation that some class cannot fill.

    Every class needs a sample (of a distinct group: a patient) in every test fold, and two in the
    training folds (one for training, one for validation), so at least ``n_folds + 1`` groups.

    Raises:
        DataError: naming the classes that have fewer, their counts, and the largest ``--cv`` that fits.
    """
    counts = groups_per_class(y, groups, class_names)
    need = n_folds + 1
    short = {c: n for c, n in counts.items() if n < need}
    if short:
        unit = "samples" if groups is None else "patients (groups)"
        fits = min(counts.values()) - 1
        hint = (f"use --cv {fits} or fewer, or leave the class out (e.g. --top-k)" if fits >= MIN_FOLDS else
                "leave the class out (e.g. --top-k) or use a held-out split")
        listed = ", ".join(f"{c!r} has {n}" for c, n in sorted(short.items(), key=lambda kv: kv[1]))
        raise DataError(f"{n_folds}-fold cross-validation needs at least {need} {unit} per class "
                        f"(one per test fold, two for training and validation); {listed}: {hint}")


def auto_folds(y: np.ndarray, groups: np.ndarray | None, class_names=None) -> int:
    """Folds of ``--cv`` without a number: :data:`DEFAULT_FOLDS`, or fewer when the smallest class
    has too few groups for it (a ~150-sample data set with a 4-patient class gets 3 folds).

    Raises:
        DataError: naming the classes that cannot fill even :data:`MIN_FOLDS` folds."""
    counts = groups_per_class(y, groups, class_names)
    if not counts:
        raise DataError("no samples to cross-validate")
    fewest = min(counts.values())
    k = max(MIN_FOLDS, min(DEFAULT_FOLDS, fewest - 1))
    check_folds(y, groups, k, class_names)
    return k


def kfold_split(
    y: np.ndarray,
    groups: np.ndarray | None = None,
    n_folds: int = DEFAULT_FOLDS,
    fold: int = 0,
    val_fraction: float = 0.125,
    seed: int = 42,
    class_names=None,
) -> Split:
    """Fold ``fold`` of a stratified, group-aware ``n_folds``-fold cross-validation.

    scikit-learn's ``StratifiedGroupKFold(n_folds, shuffle=True, random_state=seed)`` deals the
    groups (patients) into folds, keeping each class's proportion; fold ``fold`` is the test part,
    so over ``fold = 0..n_folds-1`` every row is tested exactly once. The validation part (for
    early stopping) is carved from the remaining training folds only: one fold of
    ``round(1/val_fraction)``, stratified and grouped the same way (seed ``seed + 1``), the first
    that holds every class (a class with few patients is missing from some folds). A group never straddles two parts.

    Args:
        y: labels (n,); groups: group id per row (n,) or None (each row its own group).
        n_folds: folds, >= 2; fold: the test fold, in [0, n_folds).
        val_fraction: share of the training folds used for validation, in (0, 1).
        seed: the same seed gives the same folds; class_names: names for the messages.

    Raises:
        DataError: bad n_folds/fold/val_fraction, or a class with too few groups (:func:`check_folds`).
    """
    y = np.asarray(y)
    if isinstance(n_folds, bool) or not (isinstance(n_folds, (int, np.integer)) and MIN_FOLDS <= n_folds <= MAX_FOLDS):
        raise DataError(f"cross-validation needs an integer number of folds in [{MIN_FOLDS}, {MAX_FOLDS}], got {n_folds!r}")
    if isinstance(fold, bool) or not (isinstance(fold, (int, np.integer)) and 0 <= fold < n_folds):
        raise DataError(f"fold must be an integer in [0, {n_folds}), got {fold!r}")
    if not 0 < val_fraction < 1:
        raise DataError(f"val_fraction must be in (0, 1), got {val_fraction!r}")
    groups = np.arange(len(y)) if groups is None else np.asarray(groups)
    check_folds(y, groups, n_folds, class_names)
    cv = StratifiedGroupKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    rest, test = list(cv.split(np.zeros(len(y)), y, groups))[fold]
    rest, test = np.sort(rest), np.sort(test)
    train, val = _carve_validation(y, groups, rest, val_fraction, _next_seed(seed))
    _check_parts(y, train, val, test, class_names)
    return Split(train=train, val=val, test=test, seed=seed, n_folds=int(n_folds), fold=int(fold))
