"""The logistic-regression baseline, fitted on the same split and preprocessing as the networks."""

from __future__ import annotations

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
