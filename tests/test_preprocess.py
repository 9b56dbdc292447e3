"""Class selection, the grouped stratified split and leak-free scaling."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from spiking.data.preprocess import make_preprocessor, stratified_split, top_k_classes
from spiking.data.preprocess.prepare import load_prepared, prepare, save_prepared


def test_top_k_most_frequent_with_alphabetic_ties():
    y = np.array(["A"] * 5 + ["B"] * 3 + ["C"] * 3 + ["D"] * 1)
    assert top_k_classes(y, 2) == ["A", "B"]  # B and C tie at 3: B comes first
    assert top_k_classes(y, 0) == ["A", "B", "C", "D"]
    with pytest.raises(ValueError):
        top_k_classes(np.array(["A", "A"]), 1)


def _labels(n_per=40, k=4):
    return np.repeat(np.arange(k), n_per)


def test_split_disjoint_complete_stratified_and_reproducible():
    y = _labels()
    s = stratified_split(y, seed=3)
    parts = [s.train, s.val, s.test]
    assert sum(len(p) for p in parts) == len(y)
    assert len(np.unique(np.concatenate(parts))) == len(y)
    for part, frac in zip(parts, (0.7, 0.1, 0.2)):
        counts = np.bincount(y[part], minlength=4)
        assert np.all(np.abs(counts - frac * 40) <= 2), counts
    s2 = stratified_split(y, seed=3)
    assert all(np.array_equal(a, b) for a, b in zip(parts, [s2.train, s2.val, s2.test]))
    s3 = stratified_split(y, seed=4)
    assert not np.array_equal(s.test, s3.test)


def test_split_keeps_groups_together():
    y = _labels()
    groups = np.arange(len(y)) // 2  # pairs of aliquots of one patient
    s = stratified_split(y, groups, seed=0)
    where = {}
    for name, part in (("train", s.train), ("val", s.val), ("test", s.test)):
        for g in groups[part]:
            where.setdefault(g, set()).add(name)
    assert all(len(v) == 1 for v in where.values())


def test_split_rejects_bad_fractions_and_tiny_classes():
    with pytest.raises(ValueError, match="fractions"):
        stratified_split(_labels(), fractions=(0.5, 0.5, 0.5))
    with pytest.raises(ValueError, match="smallest class"):
        stratified_split(np.array([0] * 40 + [1] * 3))


def test_scaling_fitted_on_train_only_and_clipped():
    rng = np.random.default_rng(0)
    train = rng.gamma(2.0, 100.0, size=(50, 8))
    test = train * 10  # far outside the training range
    pre = make_preprocessor().fit(train)
    out_train, out_test = pre.transform(train), pre.transform(test)
    assert out_train.dtype == np.float32 and out_train.min() >= 0 and out_train.max() <= 1
    assert np.isclose(out_train.min(axis=0), 0).all() and np.isclose(out_train.max(axis=0), 1).all()
    assert out_test.min() >= 0 and out_test.max() <= 1 and out_test.mean() > 0.9
    refit = make_preprocessor().fit(np.vstack([train, test]))
    assert not np.allclose(refit.transform(train), out_train)


def test_sample_zscore_option_and_log2_guard():
    x = np.array([[1.0, 2.0, 3.0], [10.0, 20.0, 30.0]])
    out = make_preprocessor(log2=False, zscore="sample").fit_transform(x)
    assert np.allclose(out[0], out[1])  # same profile shape, different scale
    with pytest.raises(ValueError, match="non-negative"):
        make_preprocessor(log2=True).fit(-x)
    with pytest.raises(ValueError, match="zscore"):
        make_preprocessor(zscore="gene")


def _dataset(n_per=30, k=3, L=16, seed=0):
    rng = np.random.default_rng(seed)
    y = np.repeat([f"C{i}" for i in range(k)], n_per)
    X = rng.gamma(2.0, 50.0, size=(len(y), L)).astype(np.float32)
    ids = np.array([f"s{i:04d}" for i in range(len(y))])
    return SimpleNamespace(X=X, y=y, ids=ids, groups=None, feature_names=[f"f{i}" for i in range(L)])


def test_prepare_fits_scaling_on_train_rows_and_reloads_by_id(tmp_path):
    ds = _dataset()
    prep = prepare(ds, top_k=0, seed=1)
    train_rows = np.isin(ds.ids, prep.ids["train"])
    ref = make_preprocessor().fit(ds.X[train_rows])
    assert np.allclose(prep.preprocessor["minmax"].data_min_, ref["minmax"].data_min_)
    assert prep.X["test"].shape == (len(prep.ids["test"]), 1, 16)
    save_prepared(prep, tmp_path)
    # Reload against the same data in another row order: joined by id, same arrays.
    order = np.random.default_rng(5).permutation(len(ds.ids))
    shuffled = SimpleNamespace(X=ds.X[order], y=ds.y[order], ids=ds.ids[order], groups=None,
                               feature_names=ds.feature_names)
    again = load_prepared(shuffled, tmp_path)
    for part in ("train", "val", "test"):
        assert np.array_equal(again.X[part], prep.X[part])
        assert np.array_equal(again.y[part], prep.y[part])


def test_split_refuses_a_class_missing_from_a_part():
    y = np.array([0] * 40 + [1] * 40)
    groups = np.array(["g0"] * 40 + [f"p{i}" for i in range(40)])  # class 0 is one group
    with pytest.raises(ValueError, match="no sample"):
        stratified_split(y, groups)
