"""Feature scaling fitted on the training split only, as a scikit-learn Pipeline.

Steps (the study's preprocessing, made leak-free):
1. optional ``log2(x + 1)`` (default on for RPM / counts);
2. z-score, per feature (default; ``StandardScaler``) or per sample (the study's
   alternative: each profile centred and scaled by its own mean and std);
3. min-max to [0, 1] per feature (``MinMaxScaler``), values outside the training
   range clipped to [0, 1] so spike encodings stay valid.
The fitted pipeline is saved with the model (``joblib``) and reapplied at evaluation.
"""

from __future__ import annotations

import numpy as np
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, MinMaxScaler, StandardScaler
from spiking.data import DataError

ZSCORE_MODES = ("feature", "sample", "none")


def log2p1(x: np.ndarray) -> np.ndarray:
    """``log2(x + 1)``; input must be >= 0 (RPM or read counts)."""
    if np.nanmin(x) < 0:
        raise DataError("log2(x+1) needs non-negative values (RPM or counts); pass log2=False for other units")
    return np.log2(x + 1.0)


def sample_zscore(x: np.ndarray) -> np.ndarray:
    """Z-score each row (sample) by its own mean and standard deviation."""
    mu = x.mean(axis=1, keepdims=True)
    sd = x.std(axis=1, keepdims=True)
    return (x - mu) / np.where(sd > 0, sd, 1.0)


def make_preprocessor(log2: bool = True, zscore: str = "feature") -> Pipeline:
    """Build the unfitted pipeline; ``fit`` it on the training rows only.

    Args:
        log2: apply ``log2(x+1)`` first.
        zscore: ``"feature"`` (per miRNA, fitted on train), ``"sample"`` (per profile) or ``"none"``.

    Returns:
        A scikit-learn ``Pipeline`` mapping (n, L) float arrays to (n, L) float32 in [0, 1].

    Raises:
        ValueError: unknown ``zscore`` mode.
    """
    if zscore not in ZSCORE_MODES:
        raise DataError(f"zscore must be one of {ZSCORE_MODES}, got {zscore!r}")
    steps = []
    if log2:
        steps.append(("log2p1", FunctionTransformer(log2p1, feature_names_out="one-to-one")))
    if zscore == "feature":
        steps.append(("zscore", StandardScaler()))
    elif zscore == "sample":
        steps.append(("zscore", FunctionTransformer(sample_zscore, feature_names_out="one-to-one")))
    steps.append(("minmax", MinMaxScaler(feature_range=(0.0, 1.0), clip=True)))
    steps.append(("float32", FunctionTransformer(np.float32, feature_names_out="one-to-one")))
    return Pipeline(steps)
