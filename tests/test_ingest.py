"""Tests for spiking.data.ingest: readers, filters, missing policies, shards, presets.

Real data is read from ../shared/data relative to the repository (read-only, never
copied into the repo); subsets are written to tmp_path when a file is needed.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import tempfile
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import spiking
from spiking.data.ingest import (
    GDC_LABEL_SHEET,
    SHARED_TCGA,
    Dataset,
    IngestError,
    apply_filters,
    apply_missing_policy,
    ingest,
    load_dataset,
    parse_filter,
    read_labels,
    read_matrix,
)
from spiking.data.ingest import shards as shards_mod

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
TCGA = SHARED / "tcga-mirna"
RPM = TCGA / "tcga_mirnaseq_rpm.csv.gz"
TCGA_LABELS = TCGA / "tcga_mirnaseq_labels.csv"
ALL_COHORTS = TCGA / "mirnas_in_all_cohorts.csv"
GDC_LABELS = SHARED / "gdc-course-labels" / "tcga_mir_label.csv"


# --------------------------------------------------------------------------- #
# helpers and fixtures
# --------------------------------------------------------------------------- #
def write_csv(df: pd.DataFrame, path: Path, *, sep: str = ",", index: bool = True) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(path, sep=sep, index=index)
    return path


def make_toy(n: int = 23, n_features: int = 6, seed: int = 0, nan_class: str | None = None):
    """Synthetic matrix (samples x features) and label table keyed by id."""
    rng = np.random.default_rng(seed)
    ids = [f"S{i:03d}" for i in range(n)]
    feats = [f"g{j}" for j in range(n_features)]
    X = pd.DataFrame(rng.gamma(2.0, 50.0, size=(n, n_features)), index=pd.Index(ids, name="sample"), columns=feats)
    classes = np.array(["A", "B", "C"])[np.arange(n) % 3]
    labels = pd.DataFrame(
        {
            "sample": ids,
            "cohort": classes,
            "patient": [f"P{i // 2:03d}" for i in range(n)],
            "sample_type": ["01" if i % 5 else "11" for i in range(n)],
        }
    )
    if nan_class is not None:
        X.loc[classes == nan_class, feats[-1]] = np.nan
    return X, labels


@pytest.fixture
def toy(tmp_path):
    """A good toy matrix + labels on disk, plus an empty parent for out_dir."""
    X, labels = make_toy()
    m = write_csv(X, tmp_path / "in" / "m.csv")
    lab = write_csv(labels, tmp_path / "in" / "labels.csv", index=False)
    parent = tmp_path / "out"
    parent.mkdir()
    kw = dict(id_column="sample", label_column="cohort", group_column="patient")
    return dict(X=X, labels=labels, m=m, lab=lab, parent=parent, out=parent / "ds", kw=kw, dir=tmp_path / "in")


@pytest.fixture(scope="session")
def real_rpm() -> pd.DataFrame:
    return read_matrix(RPM)


@pytest.fixture(scope="session")
def real_labels() -> pd.DataFrame:
    return read_labels(TCGA_LABELS, id_column="row_id", label_column="cohort", group_column="patient")


@pytest.fixture(scope="session")
def gdc_labels() -> pd.DataFrame:
    return read_labels(GDC_LABELS, **{k: GDC_LABEL_SHEET[k] for k in ("id_column", "label_column", "group_column")})


def shard_bytes(out: Path) -> list[bytes]:
    return [p.read_bytes() for p in sorted(out.glob("part-*.parquet"))]


def assert_same_dataset(a: Dataset, b: Dataset) -> None:
    assert a.X.dtype == np.float32 and b.X.dtype == np.float32
    assert a.X.tobytes() == b.X.tobytes()
    assert a.X.shape == b.X.shape
    assert np.array_equal(a.y, b.y) and np.array_equal(a.ids, b.ids)
    if a.groups is None:
        assert b.groups is None
    else:
        assert np.array_equal(a.groups, b.groups)
    assert a.feature_names == b.feature_names


# --------------------------------------------------------------------------- #
# 1. join by id: row order and interleaved excluded projects do not matter
# --------------------------------------------------------------------------- #
def test_gdc_label_sheet_join_shuffled_matrix(tmp_path, gdc_labels):
    lab_col, grp_col = GDC_LABEL_SHEET["label_column"], GDC_LABEL_SHEET["group_column"]
    projects = sorted(gdc_labels[lab_col].unique())
    code = {p: float(i) for i, p in enumerate(projects)}
    is_target = gdc_labels[lab_col].str.startswith("TARGET-")
    # the excluded projects really are interleaved, not a block at the top
    target_pos = np.flatnonzero(is_target.to_numpy())
    assert target_pos[0] == 0 and target_pos[-1] > 9000 and np.any(np.diff(target_pos) > 1)

    rng = np.random.default_rng(1)
    non_target = gdc_labels.index[~is_target.to_numpy()]
    missing_from_matrix = sorted(rng.choice(non_target, size=7, replace=False))
    ids = [i for i in gdc_labels.index if i not in set(missing_from_matrix)]
    extra = ["00000000-extra-0001", "00000000-extra-0002", "zzzzzzzz-extra-0003"]
    proj = gdc_labels[lab_col].reindex(ids)
    X = pd.DataFrame(
        {
            "project_code": [code[p] for p in proj] + [-1.0] * len(extra),
            "noise": rng.random(len(ids) + len(extra)),
            "mir_a": rng.gamma(2.0, 100.0, len(ids) + len(extra)),
        },
        index=pd.Index(ids + extra, name="file_id"),
    )
    sorted_m = write_csv(X.sort_index(), tmp_path / "sorted.csv")
    shuffled_m = write_csv(X.sample(frac=1.0, random_state=3), tmp_path / "shuffled.csv")
    raw = pd.read_csv(GDC_LABELS, dtype=str, keep_default_na=False)
    shuffled_l = write_csv(raw.sample(frac=1.0, random_state=4), tmp_path / "labels_shuffled.csv", index=False)

    m1 = ingest(sorted_m, GDC_LABELS, tmp_path / "a", **GDC_LABEL_SHEET, shard_rows=4000)
    m2 = ingest(shuffled_m, shuffled_l, tmp_path / "b", **GDC_LABEL_SHEET, shard_rows=4000)
    a, b = load_dataset(tmp_path / "a"), load_dataset(tmp_path / "b")
    assert_same_dataset(a, b)
    assert shard_bytes(tmp_path / "a") == shard_bytes(tmp_path / "b")

    n_expected = int((~is_target).sum()) - 7
    assert len(a) == n_expected == m1["n_samples"] == m2["n_samples"]
    assert not any(y.startswith("TARGET-") for y in a.y)
    # every label and group is the one of its own id in the label sheet
    assert np.array_equal(a.y, gdc_labels.loc[a.ids, lab_col].to_numpy(dtype=str))
    assert np.array_equal(a.groups, gdc_labels.loc[a.ids, grp_col].to_numpy(dtype=str))
    # and every row of X is the matrix row of that id (project code encoded in column 0)
    assert np.array_equal(a.X[:, 0], np.array([code[y] for y in a.y], dtype=np.float32))
    assert np.array_equal(a.X, X.loc[a.ids].to_numpy(dtype=np.float32))
    assert list(a.ids) == sorted(a.ids)
    assert m1["filters"][0]["rows_dropped"] == int(is_target.sum()) == 579
    assert m1["join"]["only_in_matrix"]["count"] == 3
    assert m1["join"]["only_in_matrix"]["examples"] == sorted(extra)
    assert m1["join"]["only_in_labels"]["count"] == 7
    assert m1["join"]["removed_by_filters"]["count"] == 579


def test_tcga_subset_join_shuffled(tmp_path, real_rpm, real_labels):
    rng = np.random.default_rng(7)
    pick = np.sort(rng.choice(len(real_rpm), size=300, replace=False))
    sub = real_rpm.iloc[pick]
    sorted_m = write_csv(sub.sort_index(), tmp_path / "rpm_sorted.csv")
    shuffled_m = write_csv(sub.sample(frac=1.0, random_state=2), tmp_path / "rpm_shuffled.csv")
    raw = pd.read_csv(TCGA_LABELS, dtype=str, keep_default_na=False)
    shuffled_l = write_csv(raw.sample(frac=1.0, random_state=5), tmp_path / "labels_shuffled.csv", index=False)

    kw = {**SHARED_TCGA, "missing": "drop-features"}
    m1 = ingest(sorted_m, TCGA_LABELS, tmp_path / "a", **kw)
    ingest(shuffled_m, shuffled_l, tmp_path / "b", **kw)
    a, b = load_dataset(tmp_path / "a"), load_dataset(tmp_path / "b")
    assert_same_dataset(a, b)
    assert shard_bytes(tmp_path / "a") == shard_bytes(tmp_path / "b")

    st_ = real_labels.loc[sub.index, "sample_type"]
    assert len(a) == int((st_ == "01").sum()) == m1["n_samples"]
    assert set(real_labels.loc[a.ids, "sample_type"]) == {"01"}
    assert np.array_equal(a.y, real_labels.loc[a.ids, "cohort"].to_numpy(dtype=str))
    assert np.array_equal(a.groups, real_labels.loc[a.ids, "patient"].to_numpy(dtype=str))
    assert np.array_equal(a.X, real_rpm.loc[a.ids, a.feature_names].to_numpy(dtype=np.float32))
    assert m1["join"]["only_in_labels"]["count"] == 9619 - len(a)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(1, 30))
def test_row_order_never_matters(seed, n):
    X, labels = make_toy(n=n, n_features=3, seed=seed % 1000)
    rng = np.random.default_rng(seed)
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        write_csv(X, d / "m1.csv")
        write_csv(X.iloc[rng.permutation(n)], d / "m2.csv")
        write_csv(labels, d / "l1.csv", index=False)
        write_csv(labels.iloc[rng.permutation(n)], d / "l2.csv", index=False)
        kw = dict(id_column="sample", label_column="cohort", group_column="patient", shard_rows=4)
        ingest(d / "m1.csv", d / "l1.csv", d / "a", **kw)
        ingest(d / "m2.csv", d / "l2.csv", d / "b", **kw)
        a, b = load_dataset(d / "a"), load_dataset(d / "b")
        assert_same_dataset(a, b)
        assert np.array_equal(a.y, labels.set_index("sample").loc[a.ids, "cohort"].to_numpy(dtype=str))


# --------------------------------------------------------------------------- #
# 2. bad inputs: a clear message and nothing written
# --------------------------------------------------------------------------- #
def _bad_cell(t):
    X = t["X"].astype(object)
    X.loc["S003", "g2"] = "abc"
    write_csv(X, t["m"])
    return {}, ["m.csv", "'S003'", "'g2'", "'abc'", "non-numeric"]


def _dup_matrix_ids(t):
    X = pd.concat([t["X"], t["X"].iloc[[2]]])
    write_csv(X, t["m"])
    return {}, ["m.csv", "duplicate sample ids", "'S002'"]


def _dup_feature_names(t):
    X = t["X"].copy()
    X.columns = ["g0", "g1", "g1", "g3", "g4", "g5"]
    write_csv(X, t["m"])
    return {}, ["m.csv", "duplicate feature names", "'g1'"]


def _dup_label_ids(t):
    lab = pd.concat([t["labels"], t["labels"].iloc[[5]]])
    write_csv(lab, t["lab"], index=False)
    return {}, ["labels.csv", "duplicate ids", "'S005'"]


def _empty_matrix(t):
    t["m"].write_bytes(b"")
    return {}, ["m.csv", "empty"]


def _empty_gz_matrix(t):
    p = t["dir"] / "m.csv.gz"
    with gzip.open(p, "wb"):
        pass
    return {"matrix_path": p}, ["m.csv.gz", "empty"]


def _header_only_matrix(t):
    t["m"].write_text("sample,g0,g1\n")
    return {}, ["m.csv", "no data rows"]


def _empty_labels(t):
    t["lab"].write_text("")
    return {}, ["labels.csv", "empty"]


def _zero_overlap(t):
    X = t["X"].copy()
    X.index = [f"X{i:03d}" for i in range(len(X))]
    write_csv(X, t["m"])
    return {}, ["no sample ids in common", "m.csv", "labels.csv", "'X000'", "'S000'"]


def _zero_overlap_after_filter(t):
    return {"filters": ("cohort==nothing",)}, ["no sample ids in common", "removed by the filters"]


def _unknown_id_column(t):
    return {"id_column": "nope"}, ["labels.csv", "id column 'nope'", "available columns", "'sample'"]


def _unknown_label_column(t):
    return {"label_column": "nope"}, ["labels.csv", "label column 'nope'", "'cohort'"]


def _unknown_group_column(t):
    return {"group_column": "nope"}, ["labels.csv", "group column 'nope'", "'patient'"]


def _unknown_matrix_id_column(t):
    return {"matrix_id_column": "nope"}, ["m.csv", "id column 'nope'", "available columns", "'g0'"]


def _unknown_filter_column(t):
    return {"filters": ("nope==01",)}, ["unknown column 'nope'", "available columns", "'sample_type'"]


def _malformed_filter(t):
    return {"filters": ("cohort=A",)}, ["malformed filter", "cohort=A"]


def _bad_regex_filter(t):
    return {"filters": ("cohort=~(",)}, ["malformed filter", "invalid regex"]


def _nan_under_error(t):
    X = t["X"].copy()
    X.loc["S004", "g3"] = np.nan
    write_csv(X, t["m"])
    return {"missing": "error"}, ["NaN", "'S004'", "'g3'"]


def _unknown_policy(t):
    return {"missing": "impute"}, ["unknown missing-value policy", "impute"]


def _bad_shard_rows(t):
    return {"shard_rows": 0}, ["shard_rows"]


def _all_labels_empty(t):
    lab = t["labels"].copy()
    lab["cohort"] = ""
    write_csv(lab, t["lab"], index=False)
    return {}, ["empty label", "'cohort'"]


BAD_CASES = {
    "non_numeric_cell": _bad_cell,
    "duplicate_matrix_ids": _dup_matrix_ids,
    "duplicate_feature_names": _dup_feature_names,
    "duplicate_label_ids": _dup_label_ids,
    "empty_matrix": _empty_matrix,
    "empty_gz_matrix": _empty_gz_matrix,
    "header_only_matrix": _header_only_matrix,
    "empty_labels": _empty_labels,
    "zero_overlap": _zero_overlap,
    "zero_overlap_after_filter": _zero_overlap_after_filter,
    "unknown_id_column": _unknown_id_column,
    "unknown_label_column": _unknown_label_column,
    "unknown_group_column": _unknown_group_column,
    "unknown_matrix_id_column": _unknown_matrix_id_column,
    "unknown_filter_column": _unknown_filter_column,
    "malformed_filter": _malformed_filter,
    "bad_regex_filter": _bad_regex_filter,
    "nan_under_error_policy": _nan_under_error,
    "unknown_policy": _unknown_policy,
    "bad_shard_rows": _bad_shard_rows,
    "all_labels_empty": _all_labels_empty,
}


@pytest.mark.parametrize("case", list(BAD_CASES))
def test_bad_input_message_and_nothing_written(toy, case):
    overrides, fragments = BAD_CASES[case](toy)
    args = dict(matrix_path=toy["m"], labels_path=toy["lab"], out_dir=toy["out"])
    kw = dict(toy["kw"])
    for k in list(overrides):
        if k in args:
            args[k] = overrides.pop(k)
    kw.update(overrides)
    with pytest.raises(IngestError) as err:
        ingest(args["matrix_path"], args["labels_path"], args["out_dir"], **kw)
    msg = str(err.value)
    for frag in fragments:
        assert frag in msg, f"{frag!r} not in {msg!r}"
    assert not toy["out"].exists()
    assert list(toy["parent"].iterdir()) == []  # no temp dirs either
    # a not-yet-existing parent folder is not created either
    fresh = toy["parent"].parent / "fresh_parent" / "ds"
    with pytest.raises(IngestError):
        ingest(args["matrix_path"], args["labels_path"], fresh, **kw)
    assert not fresh.parent.exists()


def test_out_dir_exists(toy):
    toy["out"].mkdir()
    (toy["out"] / "keep.txt").write_text("mine")
    with pytest.raises(IngestError, match="already exists"):
        ingest(toy["m"], toy["lab"], toy["out"], **toy["kw"])
    assert sorted(p.name for p in toy["parent"].iterdir()) == ["ds"]
    assert [p.name for p in toy["out"].iterdir()] == ["keep.txt"]
    # overwrite refuses a folder that is not an ingested dataset
    with pytest.raises(IngestError, match="not an ingested dataset"):
        ingest(toy["m"], toy["lab"], toy["out"], overwrite=True, **toy["kw"])
    assert (toy["out"] / "keep.txt").read_text() == "mine"


def test_overwrite_replaces_dataset_and_survives_failure(toy, monkeypatch):
    ingest(toy["m"], toy["lab"], toy["out"], **toy["kw"], filters=("sample_type==01",))
    first = load_dataset(toy["out"])
    ingest(toy["m"], toy["lab"], toy["out"], **toy["kw"], overwrite=True)
    second = load_dataset(toy["out"])
    assert len(second) == 23 and len(first) < 23

    calls = {"n": 0}
    real_write = shards_mod.pq.write_table

    def failing_write(table, where, **kw):
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError("disk full (simulated)")
        return real_write(table, where, **kw)

    monkeypatch.setattr(shards_mod.pq, "write_table", failing_write)
    with pytest.raises(OSError, match="simulated"):
        ingest(toy["m"], toy["lab"], toy["out"], **toy["kw"], shard_rows=5, overwrite=True)
    assert calls["n"] == 2
    assert [p.name for p in toy["parent"].iterdir()] == ["ds"]  # temp dir removed
    assert_same_dataset(load_dataset(toy["out"]), second)  # old dataset intact

    other = toy["parent"] / "fresh"
    calls["n"] = 0
    with pytest.raises(OSError, match="simulated"):
        ingest(toy["m"], toy["lab"], other, **toy["kw"], shard_rows=5)
    assert not other.exists()
    assert [p.name for p in toy["parent"].iterdir()] == ["ds"]


def test_read_matrix_messages(tmp_path):
    p = tmp_path / "m.csv"
    p.write_text("id,a,b\nS1,1,2\nS2,3,\nS3,inf,1\n")
    with pytest.raises(IngestError, match=r"infinite value .*'S3'.*'a'"):
        read_matrix(p)
    p.write_text("id,a,b\nS1,1,2\n,3,4\n")
    with pytest.raises(IngestError, match="empty sample id"):
        read_matrix(p)
    p.write_text("id,a,b\nS1,1,2\n")
    with pytest.raises(IngestError, match=r"id column 'x' not found; available columns: 'id', 'a', 'b'"):
        read_matrix(p, id_column="x")
    with pytest.raises(IngestError, match="file not found"):
        read_matrix(tmp_path / "nope.csv")
    p.write_text("id,a,b\nS1,True,2\n")
    with pytest.raises(IngestError, match=r"non-numeric value 'True' for sample id 'S1', column 'a'"):
        read_matrix(p)
    # features in rows: the bad cell is reported with its sample id and feature
    p.write_text("feature,S1,S2\nmir-1,1,2\nmir-2,3,oops\n")
    with pytest.raises(IngestError, match=r"'oops' for sample id 'S2', column \(feature\) 'mir-2'"):
        read_matrix(p, features_in_rows=True)
    p.write_text("feature,S1,S1\nmir-1,1,2\n")
    with pytest.raises(IngestError, match=r"duplicate sample ids .*'S1'"):
        read_matrix(p, features_in_rows=True)


# --------------------------------------------------------------------------- #
# 3. missing-value policies on the real shared data
# --------------------------------------------------------------------------- #
def test_missing_policies_on_real_rpm(real_rpm, real_labels):
    assert real_rpm.shape == (10893, 1071)
    assert real_rpm.index.name == "sample_id" and real_rpm.to_numpy().dtype == np.float64
    all_cohorts = set(real_labels["cohort"])
    assert len(all_cohorts) == 33

    tumour, report = apply_filters(real_labels, ["sample_type==01"])
    assert report[0]["rows_dropped"] == 10893 - 9619 and len(tumour) == 9619
    X = real_rpm.loc[tumour.index]
    y = tumour["cohort"]
    assert y.nunique() == 31  # LAML (all 03) and GBM (all 11) have no primary tumours

    Xc, yc, rep = apply_missing_policy(X, y, "drop-cohorts")
    assert Xc.shape == (8617, 1046) and not Xc.isna().any().any()
    assert rep["n_core_features"] == 1046
    assert {c["label"] for c in rep["classes_dropped"]} == {"COAD", "OV", "READ"}
    assert all_cohorts - set(yc) == {"COAD", "LAML", "OV", "READ", "GBM"}
    assert yc.nunique() == 28 and rep["features_dropped"]["count"] == 25
    assert rep["samples_dropped"]["count"] == 0

    # without the tumour filter the same policy drops exactly the four 705-panel cohorts
    Xa, ya, rep_all = apply_missing_policy(real_rpm, real_labels.loc[real_rpm.index, "cohort"])
    assert {c["label"] for c in rep_all["classes_dropped"]} == {"COAD", "LAML", "OV", "READ"}
    assert Xa.shape == (9693, 1046) and ya.nunique() == 29
    assert list(Xa.columns) == list(Xc.columns)

    Xf, yf, rep_f = apply_missing_policy(X, y, "drop-features")
    shared = pd.read_csv(ALL_COHORTS)["mirna"].tolist()
    assert Xf.shape == (9619, 680) and yf.nunique() == 31
    assert list(Xf.columns) == shared
    assert rep_f["classes_dropped"] == [] and rep_f["features_dropped"]["count"] == 391

    with pytest.raises(IngestError, match="NaN"):
        apply_missing_policy(X, y, "error")


def test_shared_tcga_preset_end_to_end(tmp_path):
    out = tmp_path / "tcga"
    m = ingest(RPM, TCGA_LABELS, out, **SHARED_TCGA)
    assert (m["n_samples"], m["n_features"], m["n_classes"]) == (8617, 1046, 28)
    assert sum(m["class_counts"].values()) == 8617
    assert not {"COAD", "LAML", "OV", "READ", "GBM"} & set(m["class_counts"])
    assert m["sources"]["matrix"]["sha256"] == hashlib.sha256(RPM.read_bytes()).hexdigest()
    assert m["sources"]["labels"]["size_bytes"] == TCGA_LABELS.stat().st_size
    assert [s["rows"] for s in m["shards"]] == [1000] * 8 + [617]
    ds = load_dataset(out)
    assert ds.X.shape == (8617, 1046) and ds.X.dtype == np.float32
    assert np.isfinite(ds.X).all()
    # RPM rows sum to about 1e6 (over all 1,046 kept miRNAs, most of the mass)
    assert 0.9e6 < float(np.median(ds.X.sum(axis=1, dtype=np.float64))) <= 1.0001e6


def test_missing_policy_core_features_synthetic():
    # class C lacks f3 entirely (panel); f4 is only measured in class A (minority of samples)
    ids = [f"s{i}" for i in range(9)]
    y = pd.Series(list("AAABBBCCC"), index=ids)
    X = pd.DataFrame(np.arange(45, dtype=float).reshape(9, 5), index=ids, columns=[f"f{j}" for j in range(5)])
    X.loc[y == "C", "f3"] = np.nan
    X.loc[y != "A", "f4"] = np.nan
    X.loc["s4", "f0"] = np.nan  # a sporadic NaN in a kept class

    Xc, yc, rep = apply_missing_policy(X, y, "drop-cohorts")
    assert [c["label"] for c in rep["classes_dropped"]] == ["C"]
    assert rep["classes_dropped"][0]["examples"] == ["f3"]
    assert rep["n_core_features"] == 4
    assert list(Xc.columns) == ["f1", "f2", "f3"]  # f4 (not core) and f0 (sporadic NaN) dropped
    assert list(yc) == list("AAABBB")
    assert rep["features_dropped"]["names"] == ["f0", "f4"]

    Xf, yf, rep_f = apply_missing_policy(X, y, "drop-features")
    assert list(Xf.columns) == ["f1", "f2"] and len(yf) == 9
    with pytest.raises(IngestError, match="unknown missing-value policy"):
        apply_missing_policy(X, y, "mean")
    with pytest.raises(IngestError, match="same index"):
        apply_missing_policy(X, y.iloc[::-1])


# --------------------------------------------------------------------------- #
# 4. shards, manifest, transposed input, round trip
# --------------------------------------------------------------------------- #
def test_shards_manifest_and_round_trip(toy):
    m = ingest(toy["m"], toy["lab"], toy["out"], **toy["kw"], shard_rows=5, units="RPM")
    out = toy["out"]
    files = sorted(p.name for p in out.iterdir())
    assert files == ["manifest.json"] + [f"part-{k:05d}.parquet" for k in range(5)]
    rows = [pq.read_metadata(out / f"part-{k:05d}.parquet").num_rows for k in range(5)]
    assert rows == [5, 5, 5, 5, 3]
    assert m["shards"] == [{"file": f"part-{k:05d}.parquet", "rows": r} for k, r in enumerate(rows)]
    schema = pq.read_schema(out / "part-00000.parquet")
    assert schema.names == ["sample_id", "label", "group", "features"]
    assert schema.field("sample_id").type == pa.string() and schema.field("group").type == pa.string()
    assert schema.field("features").type == pa.list_(pa.float32(), 6)

    on_disk = json.loads((out / "manifest.json").read_text())
    assert on_disk == m
    for key in (
        "format_version", "feature_names", "n_features", "n_samples", "units", "class_counts", "sources",
        "id_column", "label_column", "group_column", "filters", "missing", "join", "shards", "created",
        "spiking_version",
    ):
        assert key in m, key
    assert m["n_samples"] == 23 and sum(m["class_counts"].values()) == 23
    assert m["class_counts"] == toy["labels"]["cohort"].value_counts().sort_index().to_dict()
    assert m["n_features"] == 6 and m["feature_names"] == [f"g{j}" for j in range(6)]
    assert m["units"] == "RPM" and m["spiking_version"] == spiking.__version__
    assert (m["id_column"], m["label_column"], m["group_column"]) == ("sample", "cohort", "patient")
    assert datetime.fromisoformat(m["created"].replace("Z", "+00:00")).tzinfo is not None
    for role, path in (("matrix", toy["m"]), ("labels", toy["lab"])):
        src = m["sources"][role]
        assert src["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
        assert src["size_bytes"] == path.stat().st_size and Path(src["path"]).is_absolute()
        assert Path(src["path"]) == path.resolve()
    assert m["missing"]["policy"] == "drop-cohorts" and m["missing"]["n_features_after"] == 6

    ds = load_dataset(out)
    assert ds.X.dtype == np.float32 and ds.X.shape == (23, 6)
    expected = toy["X"].loc[ds.ids].to_numpy(dtype=np.float32)
    assert np.array_equal(ds.X, expected)
    lab = toy["labels"].set_index("sample")
    assert np.array_equal(ds.y, lab.loc[ds.ids, "cohort"].to_numpy(dtype=str))
    assert np.array_equal(ds.groups, lab.loc[ds.ids, "patient"].to_numpy(dtype=str))
    assert ds.ids.dtype.kind == "U" and list(ds.ids) == sorted(toy["X"].index)
    assert ds.manifest == m
    # URI form of the same folder reads the same data
    assert_same_dataset(load_dataset(out.as_uri()), ds)

    # features in rows: a transposed copy gives the same dataset
    t = toy["X"].T
    t.index.name = "feature"
    tp = write_csv(t, toy["dir"] / "m_t.csv")
    m_t = ingest(tp, toy["lab"], toy["parent"] / "t", **toy["kw"], shard_rows=5, features_in_rows=True)
    assert_same_dataset(load_dataset(toy["parent"] / "t"), ds)
    assert shard_bytes(toy["parent"] / "t") == shard_bytes(out)
    assert m_t["features_in_rows"] is True


def test_no_group_column_and_filters_report(toy):
    kw = dict(id_column="sample", label_column="cohort")
    m = ingest(toy["m"], toy["lab"], toy["out"], **kw, filters=("sample_type==01", "cohort!~^C$"))
    ds = load_dataset(toy["out"])
    assert ds.groups is None
    assert pq.read_schema(toy["out"] / "part-00000.parquet").names == ["sample_id", "label", "features"]
    lab = toy["labels"]
    keep = (lab["sample_type"] == "01") & (lab["cohort"] != "C")
    assert sorted(ds.ids) == sorted(lab.loc[keep, "sample"])
    assert [f["rows_dropped"] for f in m["filters"]] == [
        int((lab["sample_type"] != "01").sum()),
        int(((lab["sample_type"] == "01") & (lab["cohort"] == "C")).sum()),
    ]
    assert m["join"]["removed_by_filters"]["count"] == int((~keep).sum())


def test_load_dataset_errors(tmp_path, toy):
    empty = tmp_path / "empty_ds"
    empty.mkdir()
    with pytest.raises(IngestError, match="no manifest.json"):
        load_dataset(empty)
    with pytest.raises(IngestError, match="not found"):
        load_dataset(tmp_path / "nowhere")
    ingest(toy["m"], toy["lab"], toy["out"], **toy["kw"], shard_rows=10)
    (toy["out"] / "part-00001.parquet").unlink()
    with pytest.raises(IngestError, match="part-00001.parquet.*missing"):
        load_dataset(toy["out"])


def test_empty_labels_dropped_and_reported(toy):
    lab = toy["labels"].copy()
    lab.loc[[1, 4], "cohort"] = ""
    write_csv(lab, toy["lab"], index=False)
    m = ingest(toy["m"], toy["lab"], toy["out"], **toy["kw"])
    assert m["n_samples"] == 21 and m["empty_labels"] == {"count": 2, "examples": ["S001", "S004"]}
    assert "" not in set(load_dataset(toy["out"]).y)


# --------------------------------------------------------------------------- #
# 5. formats: gzip, TSV, tab sniffing, labels as text
# --------------------------------------------------------------------------- #
def test_gzip_and_tsv_read_like_csv(toy):
    X, d = toy["X"], toy["dir"]
    base = read_matrix(toy["m"])
    assert list(base.index) == list(X.index) and list(base.columns) == list(X.columns)
    assert np.array_equal(base.to_numpy(), X.to_numpy())

    variants = {
        "m.csv.gz": dict(sep=",", gz=True),
        "m.tsv": dict(sep="\t", gz=False),
        "m.tsv.gz": dict(sep="\t", gz=True),
        "m.txt": dict(sep="\t", gz=False),
        "tabs_named.csv": dict(sep="\t", gz=False),  # sniffed
        "gzip_without_suffix.csv": dict(sep=",", gz=True),  # magic bytes
    }
    for name, v in variants.items():
        text = X.to_csv(sep=v["sep"]).encode()
        (d / name).write_bytes(gzip.compress(text) if v["gz"] else text)
        got = read_matrix(d / name)
        pd.testing.assert_frame_equal(got, base, obj=name)

    lab_tsv = d / "labels.tsv.gz"
    lab_tsv.write_bytes(gzip.compress(toy["labels"].to_csv(sep="\t", index=False).encode()))
    kw = toy["kw"]
    pd.testing.assert_frame_equal(read_labels(lab_tsv, **kw), read_labels(toy["lab"], **kw))

    ingest(toy["m"], toy["lab"], toy["parent"] / "csv", **kw)
    ingest(d / "m.tsv.gz", lab_tsv, toy["parent"] / "tsv", **kw)
    assert_same_dataset(load_dataset(toy["parent"] / "csv"), load_dataset(toy["parent"] / "tsv"))


def test_read_labels_keeps_text(tmp_path):
    p = tmp_path / "l.csv"
    p.write_text("id,cohort,sample_type,note\n a1 ,BRCA,01,NA\na2,LUAD,11,\na3,NA,06,x\n")
    lab = read_labels(p, id_column="id", label_column="cohort")
    assert list(lab.index) == ["a1", "a2", "a3"] and lab.index.name == "sample_id"
    assert list(lab["sample_type"]) == ["01", "11", "06"]
    assert list(lab["note"]) == ["NA", "", "x"] and list(lab["cohort"]) == ["BRCA", "LUAD", "NA"]
    with pytest.raises(IngestError, match=r"label column 'nope' not found; available columns: 'id', 'cohort'"):
        read_labels(p, id_column="id", label_column="nope")
    p.write_text("id,cohort\na1,X\na2,Y\na1,Z\n")
    with pytest.raises(IngestError, match=r"duplicate ids in column 'id': 'a1' \(2x\)"):
        read_labels(p, id_column="id", label_column="cohort")


def test_filters():
    lab = pd.DataFrame({"p": ["TCGA-BRCA", "TARGET-AML", "TCGA-LUAD", "TARGET-NBL", "TCGA-OV"],
                        "t": ["01", "01", "11", "01", "1"]})
    kept, rep = apply_filters(lab, ["p!~^TARGET-"])
    assert list(kept["p"]) == ["TCGA-BRCA", "TCGA-LUAD", "TCGA-OV"] and rep[0]["rows_dropped"] == 2
    kept, rep = apply_filters(lab, ["p=~LUAD|OV", "t!=11"])
    assert list(kept["p"]) == ["TCGA-OV"] and [r["rows_dropped"] for r in rep] == [3, 1]
    kept, _ = apply_filters(lab, "t == 01")  # a single string, spaces around the operator
    assert list(kept.index) == [0, 1, 3]  # "1" is not "01"
    f = parse_filter("cohort=~a==b")
    assert (f.column, f.op, f.value) == ("cohort", "=~", "a==b")
    for bad in ("cohort=A", "==A", "cohort", "cohort===A", "cohort=~[", "=~x"):
        with pytest.raises(IngestError, match="malformed filter"):
            parse_filter(bad)
    with pytest.raises(IngestError, match=r"unknown column 'q'; available columns: 'p', 't'"):
        apply_filters(lab, ["q==1"])


def test_read_full_rpm_is_fast():
    import time

    t0 = time.perf_counter()
    X = read_matrix(RPM)
    elapsed = time.perf_counter() - t0
    assert X.shape == (10893, 1071)
    assert elapsed < 15.0, f"reading the RPM matrix took {elapsed:.1f} s (expected about 1 s)"


def test_trailing_delimiters_do_not_shift_columns(tmp_path):
    """Rows with one field more than the header (trailing commas) keep names on their columns."""
    p = tmp_path / "labels.csv"
    p.write_text("row_id,barcode,cohort,sample_type,patient\nS1,S1,AAA,01,P1,\nS2,S2,BBB,01,P2,\n")
    lab = read_labels(p, id_column="row_id", label_column="cohort", group_column="patient")
    assert lab.loc["S1", "cohort"] == "AAA" and lab.loc["S2", "patient"] == "P2"


def test_corrupt_gzip_stream_is_an_ingest_error(tmp_path, toy):
    good = tmp_path / "m.csv.gz"
    with gzip.open(good, "wt") as fh:
        fh.write(Path(toy["m"]).read_text())
    raw = bytearray(good.read_bytes())
    for i in range(20, len(raw) - 10, 7):
        raw[i] ^= 0xFF  # damage the deflate stream, keep the gzip header
    good.write_bytes(bytes(raw))
    with pytest.raises(IngestError):
        ingest(good, toy["lab"], toy["out"], **toy["kw"])
    assert not toy["out"].exists() and list(toy["parent"].iterdir()) == []
