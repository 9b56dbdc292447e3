"""Ingest a matrix + label table into Parquet shards with a manifest, and load them back.

Details: docs/modules.md, section ``spiking.data.ingest.shards``.
"""

from __future__ import annotations

import hashlib
import json
import os
import posixpath
import shutil
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from spiking.data.ingest.errors import IngestError
from spiking.data.ingest.missing import POLICIES, apply_missing_policy
from spiking.data.ingest.readers import apply_filters, parse_filter, read_labels, read_matrix

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "GDC_LABEL_SHEET",
    "SHARED_TCGA",
    "Dataset",
    "ingest",
    "load_dataset",
]

FORMAT = "spiking-ingest"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
_EXAMPLES = 5

#: Preset for ``../shared/data/tcga-mirna`` (tcga_mirnaseq_rpm.csv.gz +
#: tcga_mirnaseq_labels.csv): primary tumours only, class = cohort, group = patient.
SHARED_TCGA = dict(
    id_column="row_id",
    label_column="cohort",
    group_column="patient",
    filters=("sample_type==01",),
    units="RPM",
)

#: Preset for a GDC miRNA label sheet (e.g. ``tcga_mir_label.csv``): join on
#: ``file_id``, class = project id, group = case; paediatric TARGET-* projects
#: are removed by a filter (they are interleaved, so never by position).
GDC_LABEL_SHEET = dict(
    id_column="file_id",
    label_column="cases_0_project_project_id",
    group_column="case_id",
    filters=("cases_0_project_project_id!~^TARGET-",),
    units="RPM",
)


# --------------------------------------------------------------------------- #
# helpers
# --------------------------------------------------------------------------- #
def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _source(path: Path) -> dict:
    return {"path": str(path.resolve()), "sha256": _sha256(path), "size_bytes": path.stat().st_size}


def _examples(values: Iterable[str]) -> list[str]:
    return sorted(str(v) for v in values)[:_EXAMPLES]


def _id_set_report(ids: list[str]) -> dict:
    return {"count": len(ids), "examples": _examples(ids)}


def _version() -> str:
    try:
        from spiking import __version__

        return str(__version__)
    except Exception:  # pragma: no cover - package always importable here
        return "unknown"


def _check_out_dir(out: Path, overwrite: bool) -> None:
    if not (out.exists() or out.is_symlink()):
        return
    if not overwrite:
        raise IngestError(f"{out}: output directory already exists (use --overwrite, or overwrite=True in Python, to replace it)")
    if not out.is_dir() or out.is_symlink():
        raise IngestError(f"{out}: exists and is not a directory; refusing to overwrite it")
    if any(out.iterdir()) and not (out / MANIFEST).is_file():
        raise IngestError(
            f"{out}: exists and is not an ingested dataset (no {MANIFEST}); refusing to overwrite it"
        )


# --------------------------------------------------------------------------- #
# ingest
# --------------------------------------------------------------------------- #
def ingest(
    matrix_path: str | os.PathLike,
    labels_path: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    id_column: str,
    label_column: str,
    matrix_id_column: str | None = None,
    group_column: str | None = None,
    filters: Iterable[str] | str = (),
    features_in_rows: bool = False,
    missing: str = "drop-cohorts",
    shard_rows: int = 1000,
    units: str = "RPM",
    overwrite: bool = False,
) -> dict:
    """Join an expression matrix to a label table by sample id and write Parquet shards.

    Steps: read the labels (all text) -> apply ``filters`` -> read the matrix ->
    inner join BY SAMPLE ID (never by position) -> drop rows whose label is
    empty -> sort rows by sample id (so any input row order gives identical
    shards) -> apply the missing-value policy -> write ``part-00000.parquet``,
    ... (at most ``shard_rows`` rows each) and ``manifest.json``.

    Atomic: everything is validated and computed before anything is created;
    the dataset is then written into a temporary sibling directory of
    ``out_dir`` which is renamed into place with :func:`os.replace` at the end.
    On any error nothing is left at ``out_dir`` and the temporary directory is
    removed (with ``overwrite=True`` the previous dataset survives a failure).

    Parameters
    ----------
    matrix_path : str or os.PathLike
        Expression matrix, see :func:`~spiking.data.ingest.readers.read_matrix`
        (CSV/TSV, optionally gzipped). Values in ``units`` (e.g. RPM).
    labels_path : str or os.PathLike
        Label table, see :func:`~spiking.data.ingest.readers.read_labels`.
    out_dir : str or os.PathLike
        Dataset folder to create (its parent is created if needed).
    id_column : str
        Id column of the label table.
    label_column : str
        Class-label column of the label table.
    matrix_id_column : str, optional
        Id column of the matrix (default: its first column). With
        ``features_in_rows`` it names the feature-name column instead.
    group_column : str, optional
        Grouping column of the label table (e.g. patient / case id), written
        as the ``group`` shard column.
    filters : iterable of str
        Label-table filters (``COL==V``, ``COL!=V``, ``COL=~RE``, ``COL!~RE``),
        applied in order before the join.
    features_in_rows : bool
        Matrix has one row per feature (transposed layout).
    missing : str
        Missing-value policy: ``"drop-cohorts"``, ``"drop-features"`` or ``"error"``.
    shard_rows : int
        Maximum rows per Parquet file (>= 1).
    units : str
        Units of the matrix values, recorded in the manifest (not converted).
    overwrite : bool
        Replace an existing dataset at ``out_dir`` (it must contain a
        manifest.json or be empty).

    Returns
    -------
    dict
        The manifest (also written to ``out_dir/manifest.json``), with keys
        ``format``, ``format_version``, ``created``, ``spiking_version``,
        ``units``, ``dtype``, ``n_samples``, ``n_features``, ``n_classes``,
        ``feature_names``, ``class_counts``, ``columns``, ``sources``,
        ``id_column``, ``label_column``, ``group_column``, ``matrix_id_column``,
        ``features_in_rows``, ``filters``, ``join``, ``empty_labels``,
        ``missing``, ``shard_rows``, ``shards``.

    Raises
    ------
    IngestError
        ``out_dir`` exists and not ``overwrite``; invalid option; any reader
        or filter error; no sample id shared by matrix and labels (message
        names both files and shows example ids of each); no sample or no
        feature left; NaN under ``missing="error"``; a value too large for
        float32.
    """
    # ---- validate options (nothing read or created yet) -------------------
    out = Path(out_dir)
    _check_out_dir(out, overwrite)
    if missing not in POLICIES:
        raise IngestError(f"unknown missing-value policy {missing!r}; choose one of {list(POLICIES)}")
    if isinstance(shard_rows, bool) or not isinstance(shard_rows, (int, np.integer)) or shard_rows < 1:
        raise IngestError(f"shard_rows must be a positive integer, got {shard_rows!r}")
    if isinstance(filters, str):
        filters = (filters,)
    parsed_filters = [parse_filter(f) for f in filters]  # syntax only; columns checked below
    m_path, l_path = Path(matrix_path), Path(labels_path)

    # ---- labels + filters ---------------------------------------------------
    labels_all = read_labels(l_path, id_column=id_column, label_column=label_column, group_column=group_column)
    labels, filter_report = apply_filters(labels_all, parsed_filters)

    # ---- matrix + join by id -----------------------------------------------
    X = read_matrix(m_path, id_column=matrix_id_column, features_in_rows=features_in_rows)
    m_ids = X.index
    in_labels = m_ids.isin(labels.index)
    if not in_labels.any():
        why = ""
        if len(labels) < len(labels_all) and m_ids.isin(labels_all.index).any():
            why = " (the matrix ids that are in the label table were all removed by the filters)"
        raise IngestError(
            f"no sample ids in common between matrix {m_path} ({len(m_ids)} ids, e.g. "
            f"{_examples(m_ids)}) and labels {l_path} column {id_column!r} "
            f"({len(labels)} ids after filters, e.g. {_examples(labels.index)}){why}"
        )
    in_all_labels = m_ids.isin(labels_all.index)
    only_matrix = list(m_ids[~in_all_labels])
    filtered_out = list(m_ids[in_all_labels & ~in_labels])
    only_labels = list(labels.index[~labels.index.isin(m_ids)])

    X = X.loc[in_labels]
    ids = np.asarray([str(i) for i in X.index], dtype=str)
    order = np.argsort(ids, kind="stable")
    X = X.iloc[order]
    lab = labels.loc[X.index]
    y = lab[label_column].astype(str)

    # ---- empty labels -------------------------------------------------------
    empty = (y.str.strip() == "").to_numpy()
    empty_ids = [str(i) for i in X.index[empty]]
    if empty.any():
        X, y, lab = X.loc[~empty], y.loc[~empty], lab.loc[~empty]
    if len(X) == 0:
        raise IngestError(
            f"no samples left: all {len(empty_ids)} matched rows of {l_path} have an empty "
            f"label in column {label_column!r}"
        )

    # ---- missing values -----------------------------------------------------
    X, y, missing_report = apply_missing_policy(X, y, missing)
    if X.shape[0] == 0 or X.shape[1] == 0:
        raise IngestError(
            f"missing policy {missing!r} left {X.shape[0]} samples x {X.shape[1]} features "
            f"from {m_path}; nothing to write"
        )
    groups = lab.loc[X.index, group_column].astype(str) if group_column is not None else None

    values = X.to_numpy(dtype=np.float64)
    with np.errstate(over="ignore"):
        values32 = values.astype(np.float32)
    overflow = ~np.isfinite(values32)
    if overflow.any():
        i, j = (int(a[0]) for a in np.nonzero(overflow))
        raise IngestError(
            f"{m_path}: value {values[i, j]} for sample id {str(X.index[i])!r}, column "
            f"{str(X.columns[j])!r} does not fit in float32"
        )
    values32 = np.ascontiguousarray(values32)
    n, L = values32.shape
    sample_ids = [str(i) for i in X.index]
    label_list = [str(v) for v in y]
    group_list = None if groups is None else [str(v) for v in groups]
    feature_names = [str(c) for c in X.columns]

    # ---- manifest (everything except shards), sources hashed ----------------
    class_counts = {str(k): int(v) for k, v in sorted(pd.Series(label_list).value_counts().items())}
    fields = [pa.field("sample_id", pa.string()), pa.field("label", pa.string())]
    if group_list is not None:
        fields.append(pa.field("group", pa.string()))
    fields.append(pa.field("features", pa.list_(pa.float32(), L)))
    schema = pa.schema(fields)
    manifest: dict = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "spiking_version": _version(),
        "units": units,
        "dtype": "float32",
        "n_samples": int(n),
        "n_features": int(L),
        "n_classes": len(class_counts),
        "feature_names": feature_names,
        "class_counts": class_counts,
        "columns": [f.name for f in fields],
        "sources": {"matrix": _source(m_path), "labels": _source(l_path)},
        "id_column": id_column,
        "label_column": label_column,
        "group_column": group_column,
        "matrix_id_column": matrix_id_column,
        "features_in_rows": bool(features_in_rows),
        "filters": filter_report,
        "join": {
            "how": "inner join on sample id",
            "n_matrix_ids": int(len(m_ids)),
            "n_label_ids": int(len(labels_all)),
            "n_label_ids_after_filters": int(len(labels)),
            "n_joined": int(in_labels.sum()),
            "only_in_matrix": _id_set_report(only_matrix),
            "removed_by_filters": _id_set_report(filtered_out),
            "only_in_labels": _id_set_report(only_labels),
        },
        "empty_labels": _id_set_report(empty_ids),
        "missing": missing_report,
        "shard_rows": int(shard_rows),
        "shards": [],
    }

    # ---- write atomically ---------------------------------------------------
    parent = out.parent
    parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=parent))
    tmp.chmod(0o755)  # mkdtemp makes it private; the dataset is meant to be shared
    try:
        for k, start in enumerate(range(0, n, shard_rows)):
            stop = min(start + shard_rows, n)
            flat = pa.array(values32[start:stop].reshape(-1), type=pa.float32())
            cols = [pa.array(sample_ids[start:stop], pa.string()), pa.array(label_list[start:stop], pa.string())]
            if group_list is not None:
                cols.append(pa.array(group_list[start:stop], pa.string()))
            cols.append(pa.FixedSizeListArray.from_arrays(flat, L))
            table = pa.Table.from_arrays(cols, schema=schema)
            name = f"part-{k:05d}.parquet"
            pq.write_table(table, tmp / name)
            manifest["shards"].append({"file": name, "rows": int(stop - start)})
        with open(tmp / MANIFEST, "w", encoding="utf-8") as fh:
            json.dump(manifest, fh, indent=2, allow_nan=False)
            fh.write("\n")
        _replace_dir(tmp, out, overwrite)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return manifest


def _replace_dir(tmp: Path, out: Path, overwrite: bool) -> None:
    """Move ``tmp`` to ``out``; with ``overwrite`` an existing dataset is swapped out."""
    if not (out.exists() or out.is_symlink()):
        os.replace(tmp, out)
        return
    _check_out_dir(out, overwrite)  # re-check: it may have appeared meanwhile
    old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
    os.rmdir(old)
    os.replace(out, old)
    try:
        os.replace(tmp, out)
    except BaseException:
        os.replace(old, out)
        raise
    shutil.rmtree(old, ignore_errors=True)


# --------------------------------------------------------------------------- #
# load
# --------------------------------------------------------------------------- #
@dataclass(eq=False)
class Dataset:
    """An ingested dataset in memory.

    Attributes
    ----------
    X : numpy.ndarray, float32, shape (n_samples, n_features)
        Values in ``manifest["units"]`` (e.g. RPM), rows sorted by sample id.
    y : numpy.ndarray of str, shape (n_samples,)
        Class labels.
    ids : numpy.ndarray of str, shape (n_samples,)
        Sample ids (unique, sorted).
    groups : numpy.ndarray of str, shape (n_samples,), or None
        Group keys (e.g. patient ids) if ingested with a group column.
    feature_names : list of str, length n_features
    manifest : dict
        The dataset's manifest.json.
    """

    X: np.ndarray
    y: np.ndarray
    ids: np.ndarray
    groups: np.ndarray | None
    feature_names: list[str]
    manifest: dict = field(repr=False)

    def __len__(self) -> int:
        return int(self.X.shape[0])

    def __repr__(self) -> str:
        return (
            f"Dataset(n_samples={self.X.shape[0]}, n_features={self.X.shape[1]}, "
            f"n_classes={len(np.unique(self.y))}, groups={'yes' if self.groups is not None else 'no'})"
        )


def _resolve(path: str | os.PathLike) -> tuple[pafs.FileSystem, str]:
    s = os.fspath(path)
    if "://" in s:
        try:
            fs, base = pafs.FileSystem.from_uri(s)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OSError) as exc:
            raise IngestError(f"{s}: cannot open dataset URI ({exc})") from exc
        return fs, base.rstrip("/")
    return pafs.LocalFileSystem(), os.path.abspath(s)


def locate_shards(shards: str | None, base: str | os.PathLike) -> str | None:
    """Where the shards a run recorded (``config.json`` ``data.shards``) are now, or None.

    A URI is returned as is. A relative path is tried from the working directory, then
    from ``base`` (a run or experiment folder) and each of its parents, so a run made in
    the repository root (which records ``data/shards/...``) is found from anywhere.
    """
    if not shards:
        return None
    if "://" in str(shards):
        return str(shards)
    p = Path(shards)
    base = Path(base)
    cands = [p] if p.is_absolute() else [p, *[d / p for d in (base, *base.resolve().parents)]]
    for c in cands:
        if (c / "manifest.json").is_file():
            return str(c)
    return None


def load_dataset(path: str | os.PathLike) -> Dataset:
    """Load a dataset written by :func:`ingest`.

    Parameters
    ----------
    path : str or os.PathLike
        The dataset folder: a local path, or a URI understood by
        :meth:`pyarrow.fs.FileSystem.from_uri` (``file:///...``,
        ``s3://bucket/prefix``, ``gs://...``, ``hdfs://...``).

    Returns
    -------
    Dataset
        ``X`` float32 (n_samples, n_features), ``y``/``ids``/``groups`` str
        arrays (n_samples,), rows in shard order (= sorted by sample id).

    Raises
    ------
    IngestError
        Folder or ``manifest.json`` missing, manifest unreadable or of an
        unknown format, a listed shard missing, or shard contents inconsistent
        with the manifest (row counts, feature width, columns).
    """
    fs, base = _resolve(path)
    info = fs.get_file_info(base)
    if info.type == pafs.FileType.NotFound:
        raise IngestError(f"{path}: dataset folder not found (write shards with `spiking ingest ... --out {path}`, "
                          "or run `make demo` for the shared TCGA data)")
    mpath = posixpath.join(base, MANIFEST) if "://" in os.fspath(path) else os.path.join(base, MANIFEST)
    try:
        with fs.open_input_stream(mpath) as fh:
            manifest = json.loads(fh.read().decode("utf-8"))
    except FileNotFoundError as exc:
        raise IngestError(
            f"{path}: no {MANIFEST} found; this is not a dataset written by spiking.data.ingest.ingest "
            f"(or the ingest did not finish)"
        ) from exc
    except (OSError, ValueError) as exc:
        raise IngestError(f"{mpath}: cannot read the manifest ({exc})") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise IngestError(f"{mpath}: not a {FORMAT} manifest")
    if int(manifest.get("format_version", -1)) > FORMAT_VERSION:
        raise IngestError(
            f"{mpath}: format_version {manifest.get('format_version')} is newer than this code "
            f"supports ({FORMAT_VERSION})"
        )

    feature_names = [str(f) for f in manifest["feature_names"]]
    L = len(feature_names)
    tables = []
    for shard in manifest["shards"]:
        spath = posixpath.join(base, shard["file"]) if "://" in os.fspath(path) else os.path.join(base, shard["file"])
        try:
            t = pq.read_table(spath, filesystem=fs)
        except FileNotFoundError as exc:
            raise IngestError(f"{spath}: shard listed in {MANIFEST} is missing") from exc
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OSError) as exc:  # empty or damaged file
            raise IngestError(f"{spath}: not a readable Parquet shard ({exc}); ingest the data again") from None
        if t.num_rows != int(shard["rows"]):
            raise IngestError(f"{spath}: {t.num_rows} rows, manifest says {shard['rows']}")
        tables.append(t)
    if not tables:
        raise IngestError(f"{mpath}: lists no shards")
    table = pa.concat_tables(tables)
    for col in ("sample_id", "label", "features"):
        if col not in table.column_names:
            raise IngestError(f"{path}: shards lack the column {col!r}")
    ftype = table.schema.field("features").type
    if not pa.types.is_fixed_size_list(ftype) or ftype.list_size != L or ftype.value_type != pa.float32():
        raise IngestError(f"{path}: features column is {ftype}, expected fixed_size_list<float32>[{L}]")
    n = table.num_rows
    if n != int(manifest["n_samples"]):
        raise IngestError(f"{path}: {n} rows in the shards, manifest says {manifest['n_samples']}")

    feats = table.column("features").combine_chunks()
    X = feats.flatten().to_numpy(zero_copy_only=False).astype(np.float32, copy=False).reshape(n, L)

    def strings(name: str) -> np.ndarray:
        return np.asarray(table.column(name).to_pylist(), dtype=str)

    groups = strings("group") if "group" in table.column_names else None
    return Dataset(
        X=X,
        y=strings("label"),
        ids=strings("sample_id"),
        groups=groups,
        feature_names=feature_names,
        manifest=manifest,
    )
