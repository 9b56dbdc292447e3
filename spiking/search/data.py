"""The data of a search: the experiment's split of the shards, its train part cut to the budget."""

from __future__ import annotations

from spiking.data.splits import subset_train


def load_data(exp, shards: str, budget, seed: int):
    """``(prep_full, prep_used, dataset_info)`` of experiment ``exp``'s ``[data]`` split of ``shards``;
    prep_used has the budget's train-row limit applied (``budget.max_train_rows``)."""
    return load_split(shards, exp.data, budget.max_train_rows, seed)


def load_split(shards: str, data: dict, max_train_rows: int | None, seed: int):
    """``(prep_full, prep_used, dataset_info)``: the shards prepared with ``data`` (keys ``top_k``,
    ``fractions``, ``seed``, ``log2``, ``zscore`` and optionally ``layout``, ``layout_shape``,
    ``layout_seed``), the train part cut to ``max_train_rows`` (the layout is fitted on the whole
    train part, before the cut)."""
    from spiking.data.ingest import load_dataset
    from spiking.data.preprocess.prepare import prepare

    ds = load_dataset(shards)
    d = data
    shape = d.get("layout_shape")
    prep = prepare(ds, top_k=int(d["top_k"]), fractions=tuple(d["fractions"]), seed=int(d["seed"]),
                   log2=bool(d["log2"]), zscore=str(d["zscore"]), layout=str(d.get("layout", "identity")),
                   layout_shape=tuple(shape) if shape else None, layout_seed=int(d.get("layout_seed", 0)))
    used = subset_train(prep, max_train_rows, seed)
    from spiking.artifacts.results import dataset_block

    return prep, used, dataset_block(ds.manifest, prep, shards)
