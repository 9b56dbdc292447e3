"""Classic baselines (scikit-learn), fitted on the same split and preprocessing as the networks:
logistic regression, a linear SVM and a random forest, each tuned on the validation part only."""

from __future__ import annotations

import itertools
import time
import warnings

import numpy as np
from sklearn.ensemble import RandomForestClassifier
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score
from sklearn.svm import LinearSVC

from spiking.evaluation.metrics import EvaluationError, classification_metrics

#: The classic baselines of a run, in table order.
BASELINES = ("logreg", "linear_svm", "random_forest")

#: The grid each baseline is tuned over (validation balanced accuracy; ties go to the first).
#: The inputs are z-scored then min-max scaled to [0, 1], so useful ``C`` values are around 1.
GRIDS = {
    "logreg": {"C": (0.3, 1.0, 3.0, 10.0)},
    "linear_svm": {"C": (0.03, 0.1, 0.3, 1.0)},
    "random_forest": {"max_features": ("sqrt", 0.1)},
}

#: Trees of the random forest.
N_TREES = 500

#: What each baseline is, for tables and the report.
DESCRIPTIONS = {
    "logreg": "multinomial L2 logistic regression (lbfgs)",
    "linear_svm": "linear SVM (one-vs-rest, squared hinge, LinearSVC)",
    "random_forest": "random forest (500 trees)",
}


def is_baseline(entry: dict) -> bool:
    """True for a results.json model entry of a classic baseline (a ``baseline`` block, or the
    name ``logreg`` of files written before baselines were tuned)."""
    if not isinstance(entry, dict):
        return False
    if "baseline" in entry:
        return isinstance(entry["baseline"], dict) and bool(entry["baseline"])
    return entry.get("name") in BASELINES and "snn" not in entry and "efficiency" not in entry


def make_baseline(name: str, params: dict, seed: int = 42):
    """An unfitted scikit-learn classifier ``name`` of :data:`BASELINES` with ``params``.

    Raises:
        EvaluationError: an unknown name.
    """
    if name == "logreg":
        return LogisticRegression(max_iter=3000, random_state=seed, **params)
    if name == "linear_svm":
        return LinearSVC(max_iter=10000, random_state=seed, **params)
    if name == "random_forest":
        return RandomForestClassifier(n_estimators=N_TREES, n_jobs=-1, random_state=seed, **params)
    raise EvaluationError(f"unknown baseline {name!r}; choose from {', '.join(BASELINES)}")


def fit_logistic_regression(X_train: np.ndarray, y_train: np.ndarray, seed: int = 42, C: float = 1.0):
    """Multinomial L2 logistic regression (scikit-learn, lbfgs) fitted on ``X_train`` (n, L), ``y_train`` (n,)."""
    return make_baseline("logreg", {"C": C}, seed).fit(X_train, y_train)


def _n_parameters(clf) -> int:
    if hasattr(clf, "coef_"):
        return int(clf.coef_.size + np.size(clf.intercept_))
    return int(sum(t.tree_.node_count for t in clf.estimators_))  # a forest: its tree nodes


def tune_baseline(name: str, X_train, y_train, X_val, y_val, seed: int = 42):
    """Fit ``name`` on train for every setting of its grid (:data:`GRIDS`), score each on
    validation (balanced accuracy) and keep the best, fitted on train only.

    Returns ``(classifier, chosen params, {setting text: validation balanced accuracy})``.
    Raises EvaluationError for an unknown name, an empty part or a train part with one class."""
    if len(y_train) == 0 or len(y_val) == 0:
        raise EvaluationError("a baseline needs non-empty train and validation parts")
    if len(np.unique(y_train)) < 2:
        raise EvaluationError(f"a baseline needs at least 2 classes in the train part, got {len(np.unique(y_train))}")
    grid = GRIDS.get(name)
    if grid is None:
        raise EvaluationError(f"unknown baseline {name!r}; choose from {', '.join(BASELINES)}")
    keys = list(grid)
    best, scores = None, {}
    for values in itertools.product(*(grid[k] for k in keys)):
        params = dict(zip(keys, values))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)  # the grid's weak ends may not converge
            clf = make_baseline(name, params, seed).fit(X_train, y_train)
        score = float(balanced_accuracy_score(y_val, clf.predict(X_val)))
        scores[", ".join(f"{k}={v}" for k, v in params.items())] = score
        if best is None or score > best[2]:
            best = (clf, params, score)
    return best[0], best[1], scores


def evaluate_baseline(prep, name: str = "logreg", seed: int = 42) -> dict:
    """Tune baseline ``name`` on ``prep``'s validation part, score it once on test: a results.json
    model entry (``baseline``: method, grid, chosen setting, validation scores).

    It sees the scaled features in file order (``prep.features``), so it is the same model
    whatever spatial layout the networks use. ``train_seconds`` covers the whole grid."""
    flat = {p: prep.features(p) for p in ("train", "val", "test")}
    t0 = time.perf_counter()
    clf, params, scores = tune_baseline(name, flat["train"], prep.y["train"], flat["val"], prep.y["val"], seed)
    train_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    pred = clf.predict(flat["test"])
    ms = 1000 * (time.perf_counter() - t0) / len(pred)
    return {"name": name, "test": classification_metrics(prep.y["test"], pred, prep.class_names),
            "parameters": _n_parameters(clf), "train_seconds": train_s, "inference_ms_per_sample": ms,
            "baseline": {"method": DESCRIPTIONS[name], "tuned_on": "validation balanced accuracy",
                         "grid": {k: list(v) for k, v in GRIDS[name].items()}, "chosen": params,
                         "val_balanced_accuracy": scores}}


def evaluate_baselines(prep, seed: int = 42, names=BASELINES) -> list[dict]:
    """:func:`evaluate_baseline` for each of ``names`` (default all of :data:`BASELINES`)."""
    return [evaluate_baseline(prep, n, seed) for n in names]


def evaluate_logreg(prep, seed: int = 42) -> dict:
    """The logistic-regression entry alone (:func:`evaluate_baseline`): the searches' baseline."""
    return evaluate_baseline(prep, "logreg", seed)
