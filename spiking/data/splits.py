"""A stratified subset of a split's train part, and samples as flat vectors (torch-free)."""

from __future__ import annotations

import dataclasses

import numpy as np

from spiking.data.preprocess.prepare import split_fingerprint


def subset_train(prep, max_rows: int | None, seed: int):
    """``prep`` with its train part cut to ``max_rows`` rows (stratified, seeded); val and test untouched."""
    n = len(prep.y["train"])
    if not max_rows or max_rows >= n:
        return prep
    from sklearn.model_selection import train_test_split

    idx = np.arange(n)
    try:
        keep, _ = train_test_split(idx, train_size=max_rows, stratify=prep.y["train"], random_state=seed)
    except ValueError:  # a class too small to stratify
        keep = np.random.default_rng(seed).choice(n, size=max_rows, replace=False)
    keep = np.sort(keep)
    X, y, ids = dict(prep.X), dict(prep.y), dict(prep.ids)
    X["train"], y["train"], ids["train"] = prep.X["train"][keep], prep.y["train"][keep], prep.ids["train"][keep]
    # the split is unchanged (train rows only dropped): networks keep the full split's fingerprint
    info = {**prep.split_info, "train_rows_used": int(max_rows), "split_sha256": split_fingerprint(prep)}
    return dataclasses.replace(prep, X=X, y=y, ids=ids, split_info=info)






def flat_samples(x: np.ndarray) -> np.ndarray:
    """Samples as C-contiguous float32 ``(N, L)``: the prepared arrays are ``(N, 1, L)``, the Keras
    networks and NengoDL take one flat vector per sample."""
    return np.ascontiguousarray(np.asarray(x, dtype=np.float32).reshape(len(x), -1))
