"""The logistic-regression baseline, fitted on the same split and preprocessing as the networks."""

from __future__ import annotations

import time

import numpy as np
from sklearn.linear_model import LogisticRegression


def fit_logistic_regression(X_train: np.ndarray, y_train: np.ndarray, seed: int = 42) -> LogisticRegression:
    """Multinomial L2 logistic regression (scikit-learn, lbfgs, C=1).

    Args:
        X_train: preprocessed features (n, L), the networks' input flattened.
        y_train: class indices (n,).
        seed: random_state.
    """
    clf = LogisticRegression(max_iter=3000, random_state=seed)
    return clf.fit(X_train, y_train)


def evaluate_logreg(prep, seed: int = 42) -> dict:
    """Fit the logistic-regression baseline on train (same preprocessing) and score it on test.

    It sees the scaled features in file order (``prep.features``), so it is the same model
    whatever spatial layout the networks use."""
    flat = {p: prep.features(p) for p in ("train", "test")}
    from spiking.evaluation.metrics import classification_metrics

    t0 = time.perf_counter()
    clf = fit_logistic_regression(flat["train"], prep.y["train"], seed=seed)
    train_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    pred = clf.predict(flat["test"])
    ms = 1000 * (time.perf_counter() - t0) / len(pred)
    return {"name": "logreg", "test": classification_metrics(prep.y["test"], pred, prep.class_names),
            "parameters": int(clf.coef_.size + clf.intercept_.size), "train_seconds": train_s,
            "inference_ms_per_sample": ms}
