"""From loaded shards to model-ready arrays: top-k classes, split, scaling fitted on train, then the
spatial layout (``spiking.data.layout``) fitted on train."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import joblib
import numpy as np
from sklearn.pipeline import Pipeline

from spiking.data.preprocess.classes import top_k_classes
from spiking.data.preprocess.scaling import make_preprocessor
from spiking.data.preprocess.split import kfold_split, stratified_split
from spiking.data import DataError


@dataclass
class Prepared:
    """Model-ready data of one run.

    ``X[part]``: float32 images (n_part, 1, *input_shape) in [0, 1], the scaled features placed
    by ``layout`` (``(n, 1, L)`` for a 1-D layout, ``(n, 1, H, W)`` for a 2-D one, padding 0);
    ``y[part]``: int64 class indices (n_part,); ``ids[part]``: sample ids; parts are ``train``,
    ``val``, ``test``. ``class_names``: label of each class index; ``feature_names``: the
    features (genes) in file order; ``preprocessor``: the fitted scaling pipeline; ``layout``:
    the fitted layout (None = identity, file order). :meth:`features` gives the scaled
    features back, ``(n_part, n_features)``, whatever the layout.
    """

    X: dict
    y: dict
    ids: dict
    class_names: list[str]
    feature_names: list[str]
    preprocessor: Pipeline
    split_info: dict
    layout: object = field(default=None)

    @property
    def n_features(self) -> int:
        """Number of features (genes), whatever the layout's image size."""
        return len(self.feature_names)

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Image shape without batch/channel axes: ``(L,)`` or ``(H, W)``."""
        return tuple(int(s) for s in self.X["train"].shape[2:])

    def features(self, part: str) -> np.ndarray:
        """Scaled features of ``part`` in file order, float32 ``(n_part, n_features)`` (the layout's
        exact inverse): the input of the baselines and of re-laying-out for another network."""
        x = self.X[part]
        if self.layout is None:
            return np.ascontiguousarray(x.reshape(len(x), -1))
        return self.layout.inverse_transform(x)

    def layout_state(self) -> dict:
        """JSON-safe state of the fitted layout (``spiking.data.layout.state``), identity when None."""
        from spiking.data.layout.state import identity_state, layout_state

        return identity_state(self.n_features) if self.layout is None else layout_state(self.layout)


def split_digest(classes, features, ids: dict) -> str:
    h = hashlib.sha256()
    h.update(json.dumps({"classes": list(classes), "features": list(features)}).encode())
    for part in ("train", "val", "test"):
        h.update(part.encode())
        h.update("\n".join(map(str, ids[part])).encode())
    return h.hexdigest()


def split_fingerprint(prep: "Prepared") -> str:
    """sha256 of the split (sample ids per part, class names, features): equal only for the same split.

    Saved with every network, so that a network is never scored on a test split whose rows it
    may have trained on."""
    return split_digest(prep.class_names, prep.feature_names, prep.ids)


def task_labels(dataset, top_k: int = 10):
    """The rows and labels of the task: ``(keep, y, groups, classes)`` with ``keep`` a boolean mask
    over the dataset's rows (the ``top_k`` most frequent classes; 0 = all), ``y`` int64 class
    indices of the kept rows, ``groups`` their group ids (a sample without one is its own group;
    None when the dataset has no group column) and ``classes`` the class names in index order."""
    classes = top_k_classes(dataset.y, top_k)
    keep = np.isin(dataset.y, classes)
    groups = dataset.groups[keep] if dataset.groups is not None else None
    if groups is not None:
        # An empty group (patient unknown) must not merge all such samples into one group.
        groups = np.where(groups == "", np.char.add("sample:", dataset.ids[keep].astype(str)), groups)
    index = {c: i for i, c in enumerate(classes)}
    y = np.array([index[v] for v in dataset.y[keep]], dtype=np.int64)
    return keep, y, groups, classes


def prepare(dataset, *, top_k: int = 10, fractions=(0.7, 0.1, 0.2), seed: int = 42,
            log2: bool = True, zscore: str = "feature", layout: str = "identity", layout_shape=None,
            layout_seed: int = 0, cv: int = 0, fold: int = 0) -> Prepared:
    """Select classes, split by class and group, fit scaling on the training part only, then fit
    the spatial layout on the scaled training part only and lay out every part.

    Args:
        dataset: ``spiking.data.ingest.Dataset`` (X (n, L) float32, y, ids, groups).
        top_k, fractions, seed, log2, zscore, layout, layout_shape, layout_seed, cv, fold: see
            ``spiking.specs.run.DataConfig``. ``cv`` >= 2: the test part is fold ``fold`` of a
            ``cv``-fold cross-validation (:func:`~spiking.data.preprocess.split.kfold_split`), the
            validation part ``fractions[1] / (fractions[0] + fractions[1])`` of the other folds.

    Raises:
        DataError: too few classes or samples for the split or folds (naming the class); an invalid
            layout setting.
    """
    from spiking.data.layout.state import layout_options

    layout_options(layout, shape=layout_shape, seed=layout_seed)  # settings checked before any work
    keep, y, groups, classes = task_labels(dataset, top_k)
    X, ids = dataset.X[keep], dataset.ids[keep]
    if cv:
        split = kfold_split(y, groups, n_folds=cv, fold=fold, val_fraction=fractions[1] / (fractions[0] + fractions[1]),
                            seed=seed, class_names=classes)
        method = (f"sklearn StratifiedGroupKFold: test = fold {fold} of {cv}, validation = one fold of the other "
                  "folds")
    else:
        split = stratified_split(y, groups, fractions=fractions, seed=seed, class_names=classes)
        method = "sklearn StratifiedGroupKFold (test fold, then validation fold of the rest)"
    pre = make_preprocessor(log2=log2, zscore=zscore).fit(X[split.train])
    parts = {"train": split.train, "val": split.val, "test": split.test}
    Xs = {p: pre.transform(X[i]).astype(np.float32) for p, i in parts.items()}
    fitted = None
    if layout != "identity":
        from spiking.data.layout.state import fit_layout

        fitted = fit_layout(layout, Xs["train"], shape=layout_shape, seed=layout_seed)
    Xs = lay_out(Xs, fitted)
    info = {"sizes": split.sizes(), "seed": seed, "fractions": list(fractions),
            "grouped_by": (getattr(dataset, "manifest", None) or {}).get("group_column", "group") if groups is not None else None,
            "method": method}
    if cv:
        info["cv"] = {"folds": int(cv), "fold": int(fold)}
    return Prepared(X=Xs, y={p: y[i] for p, i in parts.items()}, ids={p: ids[i] for p, i in parts.items()},
                    class_names=classes, feature_names=list(dataset.feature_names), preprocessor=pre,
                    split_info=info, layout=fitted)


def lay_out(flat: dict, layout) -> dict:
    """Every part of ``flat`` (``(n, n_features)`` float32) as images ``(n, 1, ...)`` through the fitted
    ``layout``; ``None`` (identity) keeps the file order as one strip ``(n, 1, n_features)``."""
    if layout is None:
        return {p: x[:, None, :] for p, x in flat.items()}
    return {p: layout.transform(x) for p, x in flat.items()}


def save_prepared(prep: Prepared, run_dir: str | Path) -> None:
    """Write ``split.json`` (sample ids per part, class names), ``preprocessor.joblib`` and
    ``layout.json`` (the fitted layout, :func:`spiking.data.layout.state.layout_state`)."""
    run_dir = Path(run_dir)
    split = {"class_names": prep.class_names, "feature_names": prep.feature_names, **prep.split_info,
             "ids": {p: [str(i) for i in v] for p, v in prep.ids.items()}}
    (run_dir / "split.json").write_text(json.dumps(split) + "\n")
    joblib.dump(prep.preprocessor, run_dir / "preprocessor.joblib")
    (run_dir / "layout.json").write_text(json.dumps(prep.layout_state()) + "\n")


def load_prepared(dataset, run_dir: str | Path) -> Prepared:
    """Rebuild a run's arrays from the shards by sample id, with the saved split, fitted scaling
    and fitted layout (``layout.json``; a run saved before layouts existed is laid out in file order).

    Raises:
        ValueError: a saved sample id is missing from the shards, the features differ, or the
            saved layout does not fit them.
    """
    run_dir = Path(run_dir)
    split = json.loads((run_dir / "split.json").read_text())
    pre = joblib.load(run_dir / "preprocessor.joblib")
    if list(dataset.feature_names) != split["feature_names"]:
        raise DataError(f"the shards' features differ from those the run {run_dir} was trained on")
    pos = {str(s): i for i, s in enumerate(dataset.ids)}
    index = {c: i for i, c in enumerate(split["class_names"])}
    X, y, ids = {}, {}, {}
    for part, part_ids in split["ids"].items():
        missing = [s for s in part_ids if s not in pos]
        if missing:
            raise DataError(f"{len(missing)} {part} sample ids of run {run_dir} are not in the shards, e.g. {missing[:3]}")
        rows = np.array([pos[s] for s in part_ids], dtype=np.int64)
        X[part] = pre.transform(dataset.X[rows]).astype(np.float32)
        y[part] = np.array([index[v] for v in dataset.y[rows]], dtype=np.int64)
        ids[part] = np.asarray(part_ids)
    fitted = None
    if (run_dir / "layout.json").exists():
        from spiking.data.layout.state import layout_from_state

        path = run_dir / "layout.json"
        try:
            state = json.loads(path.read_text())
            layout = layout_from_state(state)
        except ValueError as e:  # JSONDecodeError too
            raise DataError(f"{path}: not a usable saved layout ({e})") from None
        if layout.n_features_in_ != len(split["feature_names"]):
            raise DataError(f"{path} places {layout.n_features_in_} features, but the run has "
                             f"{len(split['feature_names'])}")
        fitted = None if state.get("name") == "identity" else layout
    X = lay_out(X, fitted)
    info = {k: split[k] for k in ("sizes", "seed", "fractions", "grouped_by", "method", "cv") if k in split}
    return Prepared(X=X, y=y, ids=ids, class_names=split["class_names"], feature_names=split["feature_names"],
                    preprocessor=pre, split_info=info, layout=fitted)
