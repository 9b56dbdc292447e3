"""Test-split metrics (scikit-learn): accuracy, balanced accuracy, macro-F1, per-class recall, confusion matrix."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import accuracy_score, balanced_accuracy_score, confusion_matrix, f1_score, recall_score

from spiking.errors import SpikingError


class EvaluationError(SpikingError):
    """Labels or predictions that cannot be scored (a user error)."""


def classification_metrics(y_true: np.ndarray, y_pred: np.ndarray, class_names: list[str]) -> dict:
    """Metrics of predicted class indices against true ones.

    Args:
        y_true, y_pred: int class indices, shape (n,), in ``range(len(class_names))``.
        class_names: label of each index (TCGA cohort codes).

    Returns:
        ``{"accuracy", "balanced_accuracy", "macro_f1"}`` as fractions in [0, 1],
        ``"per_class_recall"`` ({class: recall}) and ``"confusion_matrix"``
        (rows = true class, columns = predicted, counts, ordered as ``class_names``).

    Raises:
        ValueError: empty input or mismatched lengths.
    """
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if len(y_true) == 0 or len(y_true) != len(y_pred):
        raise EvaluationError(f"need equal, non-empty label arrays, got {len(y_true)} and {len(y_pred)}")
    labels = list(range(len(class_names)))
    recall = recall_score(y_true, y_pred, labels=labels, average=None, zero_division=0)
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "balanced_accuracy": float(balanced_accuracy_score(y_true, y_pred)),
        "macro_f1": float(f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0)),
        "per_class_recall": {c: float(r) for c, r in zip(class_names, recall)},
        "confusion_matrix": confusion_matrix(y_true, y_pred, labels=labels).tolist(),
    }
