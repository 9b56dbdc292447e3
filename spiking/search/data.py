"""The data of a search: the experiment's split of the Parquet shards, and a stratified train subset.

Torch-free, shared by the PyTorch experiments (:mod:`spiking.search.runner`), the NengoDL one
(:mod:`spiking.search.snn_k`) and the architecture search (:mod:`spiking.search.evolution`).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ..preprocess.prepare import split_fingerprint


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


def load_data(exp, shards: str, budget, seed: int):
    """``(prep_full, prep_used, dataset_info)`` of experiment ``exp``'s ``[data]`` split of ``shards``;
    prep_used has the budget's train-row limit applied (``budget.max_train_rows``)."""
    return load_split(shards, exp.data, budget.max_train_rows, seed)


def load_split(shards: str, data: dict, max_train_rows: int | None, seed: int):
    """``(prep_full, prep_used, dataset_info)``: the shards prepared with ``data`` (keys ``top_k``,
    ``fractions``, ``seed``, ``log2``, ``zscore`` and optionally ``layout``, ``layout_shape``,
    ``layout_seed``), the train part cut to ``max_train_rows`` (the layout is fitted on the whole
    train part, before the cut)."""
    from ..ingest import load_dataset
    from ..preprocess.prepare import prepare

    ds = load_dataset(shards)
    d = data
    shape = d.get("layout_shape")
    prep = prepare(ds, top_k=int(d["top_k"]), fractions=tuple(d["fractions"]), seed=int(d["seed"]),
                   log2=bool(d["log2"]), zscore=str(d["zscore"]), layout=str(d.get("layout", "identity")),
                   layout_shape=tuple(shape) if shape else None, layout_seed=int(d.get("layout_seed", 0)))
    used = subset_train(prep, max_train_rows, seed)
    from ..evaluation.results import dataset_block

    return prep, used, dataset_block(ds.manifest, prep, shards)


def flat_samples(x: np.ndarray) -> np.ndarray:
    """Samples as C-contiguous float32 ``(N, L)``: the prepared arrays are ``(N, 1, L)``, the Keras
    networks and NengoDL take one flat vector per sample."""
    return np.ascontiguousarray(np.asarray(x, dtype=np.float32).reshape(len(x), -1))
