"""The data of a search: the experiment's split of the shards, its train part cut to the budget."""

from __future__ import annotations

from spiking.data.splits import subset_train


def load_split(shards: str, data, max_train_rows: int | None, seed: int):
    """``(prep_full, prep_used, dataset_info)``: the shards prepared with ``data`` (a
    :class:`~spiking.specs.run.DataConfig`, or a table of its fields such as a NAS state's ``data``),
    the train part cut to ``max_train_rows`` (the layout is fitted on the whole train part, before the cut).

    Raises:
        SpecError: a table with an unknown key; DataError: the shards cannot be read or prepared.
    """
    from spiking.data.ingest import load_dataset
    from spiking.data.preprocess.prepare import prepare
    from spiking.specs.run import DataConfig, from_table

    d = data if isinstance(data, DataConfig) else from_table(DataConfig(), data, "data ", keys=DataConfig.TABLE_KEYS)
    ds = load_dataset(shards)
    prep = prepare(ds, top_k=int(d.top_k), log2=bool(d.log2), zscore=str(d.zscore), **d.split_kwargs(),
                   **d.layout_kwargs())
    used = subset_train(prep, max_train_rows, seed)
    from spiking.artifacts.results import dataset_block

    return prep, used, dataset_block(ds.manifest, prep, shards)
