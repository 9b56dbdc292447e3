"""Readers for expression matrices and label tables, and label-table filters.

Details: docs/modules.md, section ``spiking.data.ingest.readers``.
"""

from __future__ import annotations

import bz2
import csv
import gzip
import io
import lzma
import os
import re
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from spiking.data.ingest.errors import IngestError

__all__ = [
    "Filter",
    "apply_filters",
    "parse_filter",
    "read_labels",
    "read_matrix",
]

_TAB_SUFFIXES = {".tsv", ".txt", ".tab"}
_COMPRESSION_SUFFIXES = {".gz", ".gzip", ".bz2", ".xz"}
_MAX_LISTED = 20  # columns listed in "unknown column" messages
_MAX_EXAMPLES = 5  # ids listed in "duplicate id" messages


# --------------------------------------------------------------------------- #
# helpers
# --------------------------------------------------------------------------- #
def _fmt_list(items: Sequence[str], limit: int = _MAX_LISTED) -> str:
    shown = ", ".join(repr(str(x)) for x in items[:limit])
    if len(items) > limit:
        shown += f", ... ({len(items)} in all)"
    return shown


def _check_file(path: str | os.PathLike) -> Path:
    p = Path(path)
    if not p.exists():
        raise IngestError(f"{p}: file not found")
    if not p.is_file():
        raise IngestError(f"{p}: not a regular file")
    return p


def _compression(p: Path) -> str:
    with open(p, "rb") as fh:
        magic = fh.read(2)
    return "gzip" if magic == b"\x1f\x8b" else "infer"


def _open_text(p: Path, compression: str):
    if compression == "gzip":
        return io.TextIOWrapper(gzip.open(p, "rb"), encoding="utf-8-sig", newline="")
    suffix = p.suffix.lower()
    if suffix == ".bz2":
        return io.TextIOWrapper(bz2.open(p, "rb"), encoding="utf-8-sig", newline="")
    if suffix == ".xz":
        return io.TextIOWrapper(lzma.open(p, "rb"), encoding="utf-8-sig", newline="")
    return open(p, encoding="utf-8-sig", newline="")


def _sniff(p: Path) -> tuple[str, str, list[str]]:
    """Return ``(delimiter, compression, header_fields)``; raise if empty."""
    compression = _compression(p)
    try:
        with _open_text(p, compression) as fh:
            first = ""
            for line in fh:
                if line.strip():
                    first = line.rstrip("\r\n")
                    break
    except (OSError, EOFError, UnicodeDecodeError, zlib.error) as exc:
        raise IngestError(f"{p}: cannot read the file ({exc})") from exc
    if not first:
        raise IngestError(f"{p}: file is empty (no header line, no data rows)")

    name = p.name.lower()
    stem_suffix = Path(name).suffix
    if stem_suffix in _COMPRESSION_SUFFIXES:
        stem_suffix = Path(Path(name).stem).suffix
    preferred = "\t" if stem_suffix in _TAB_SUFFIXES else ","
    other = "," if preferred == "\t" else "\t"
    sep = other if (preferred not in first and other in first) else preferred

    header = [h.strip() for h in next(csv.reader([first], delimiter=sep))]
    return sep, compression, header


def _duplicates(values: Iterable[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for v in values:
        counts[v] = counts.get(v, 0) + 1
    return {k: n for k, n in counts.items() if n > 1}


def _fmt_dups(dups: dict[str, int]) -> str:
    items = list(dups.items())
    shown = ", ".join(f"{k!r} ({n}x)" for k, n in items[:_MAX_EXAMPLES])
    if len(items) > _MAX_EXAMPLES:
        shown += f", ... ({len(items)} duplicated values in all)"
    return shown


def _read_csv(p: Path, sep: str, compression: str, header: list[str], **kw) -> pd.DataFrame:
    try:
        return pd.read_csv(
            p,
            sep=sep,
            compression=compression,
            header=0,
            names=header,
            engine="c",
            encoding="utf-8-sig",
            low_memory=False,
            # Never let pandas turn the first column into the index when data rows carry
            # one field more than the header (trailing delimiters): that would shift every
            # column against its name.
            index_col=False,
            **kw,
        )
    except pd.errors.EmptyDataError as exc:
        raise IngestError(f"{p}: file is empty (no header line, no data rows)") from exc
    except (pd.errors.ParserError, UnicodeDecodeError, OSError, EOFError, zlib.error) as exc:
        raise IngestError(f"{p}: cannot parse the file: {exc}") from exc


def _clean_ids(raw: pd.Series, p: Path, what: str) -> list[str]:
    """Strip ids, reject missing/empty ones (message gives the data row number)."""
    missing = raw.isna().to_numpy()
    ids = [("" if m else str(v).strip()) for v, m in zip(raw.tolist(), missing)]
    empty = [i for i, v in enumerate(ids) if v == ""]
    if empty:
        rows = ", ".join(str(i + 1) for i in empty[:_MAX_EXAMPLES])
        raise IngestError(
            f"{p}: {len(empty)} data row(s) have an empty {what} "
            f"(data row number(s), 1-based, header excluded: {rows})"
        )
    return ids


# --------------------------------------------------------------------------- #
# matrices
# --------------------------------------------------------------------------- #
def read_matrix(
    path: str | os.PathLike,
    *,
    id_column: str | None = None,
    features_in_rows: bool = False,
) -> pd.DataFrame:
    """Read an expression matrix (CSV/TSV, optionally gzipped) into a frame.

    Two layouts are accepted:

    * ``features_in_rows=False`` (default): one row per sample. ``id_column``
      names the column holding the sample ids (default: the first column,
      whatever its header, including an empty R-style header); every other
      column is a feature.
    * ``features_in_rows=True``: one row per feature. The first column (or
      ``id_column`` if given) holds the feature names; every other column
      header is a sample id. The table is transposed on return.

    Empty cells (and pandas' default NA tokens such as ``NA``/``nan``) become
    NaN. Integer columns (e.g. raw read counts) are converted to float.

    Parameters
    ----------
    path : str or os.PathLike
        Local file; ``.tsv``/``.txt``/``.tab`` or a tab-only header means
        tab-separated, otherwise comma-separated; gzip detected by magic bytes.
    id_column : str, optional
        Name of the sample-id column (or of the feature-name column when
        ``features_in_rows``). Default: the first column.
    features_in_rows : bool
        See above.

    Returns
    -------
    pandas.DataFrame, shape (n_samples, n_features)
        Index: sample ids (``str``, index name ``"sample_id"``), in file order.
        Columns: feature names (``str``), in file order.
        Values: ``float64`` in the file's units (e.g. RPM), NaN for empty cells.

    Raises
    ------
    IngestError
        File missing or empty; header but no data rows; no feature columns;
        unknown ``id_column`` (available columns are listed); empty or
        duplicate sample ids (some are named); duplicate or empty feature
        names; a non-numeric cell (message gives the file, sample id, column
        and bad value); an infinite value; a row that cannot be parsed.
    """
    p = _check_file(path)
    sep, compression, header = _sniff(p)

    key = header[0] if id_column is None else str(id_column).strip()
    if key not in header:
        role = "feature-name" if features_in_rows else "id"
        raise IngestError(
            f"{p}: {role} column {key!r} not found; available columns: {_fmt_list(header)}"
        )
    key_pos = header.index(key) if id_column is not None else 0
    others = [h for i, h in enumerate(header) if i != key_pos]
    col_what = "sample ids (column headers)" if features_in_rows else "feature names"
    if not others:
        raise IngestError(f"{p}: no {col_what} besides the column {key!r}")
    empty_pos = [i for i, h in enumerate(header) if i != key_pos and h == ""]
    if empty_pos:
        raise IngestError(
            f"{p}: empty column header(s) at 1-based position(s) "
            f"{', '.join(str(i + 1) for i in empty_pos[:_MAX_EXAMPLES])} (expected {col_what})"
        )
    dups = _duplicates(header)
    if dups:
        raise IngestError(f"{p}: duplicate {col_what} in the header: {_fmt_dups(dups)}")

    # Unique placeholder for an empty key header so pandas does not rename it.
    names = list(header)
    if names[key_pos] == "":
        names[key_pos] = "\x00id"
        key = names[key_pos]
    df = _read_csv(p, sep, compression, names, dtype={key: str})
    if len(df) == 0:
        raise IngestError(f"{p}: header but no data rows")

    row_what = "feature name" if features_in_rows else "sample id"
    keys = _clean_ids(df[key], p, row_what)
    dups = _duplicates(keys)
    if dups:
        what = "feature names" if features_in_rows else "sample ids"
        raise IngestError(f"{p}: duplicate {what} in column {header[key_pos]!r}: {_fmt_dups(dups)}")
    data = df.drop(columns=[key])
    data.index = pd.Index(keys)

    def where(row: str, col: str) -> str:
        # (sample id, column) in the caller's terms
        if features_in_rows:
            return f"sample id {col!r}, column (feature) {row!r}"
        return f"sample id {row!r}, column {col!r}"

    # Non-numeric cells: only columns pandas could not parse as numbers.
    bad_cols = [
        c
        for c, dt in data.dtypes.items()
        if pd.api.types.is_bool_dtype(dt) or not pd.api.types.is_numeric_dtype(dt)
    ]
    n_bad_total, first_bad = 0, None
    for c in bad_cols:
        col = data[c]
        if pd.api.types.is_bool_dtype(col):
            bad = col.notna().to_numpy()
        else:
            conv = pd.to_numeric(col, errors="coerce")
            bad = (conv.isna() & col.notna()).to_numpy()
            if not bad.any():
                data[c] = conv.astype(np.float64)
                continue
        n_bad_total += int(bad.sum())
        if first_bad is None:
            i = int(np.flatnonzero(bad)[0])
            first_bad = (data.index[i], c, col.iloc[i])
    if first_bad is not None:
        row, col, val = first_bad
        more = f" ({n_bad_total - 1} more non-numeric cell(s))" if n_bad_total > 1 else ""
        raise IngestError(f"{p}: non-numeric value {str(val)!r} for {where(row, col)}{more}")

    values = data.to_numpy(dtype=np.float64)
    inf = np.isinf(values)
    if inf.any():
        i, j = (int(a[0]) for a in np.nonzero(inf))
        raise IngestError(
            f"{p}: infinite value {values[i, j]} for {where(data.index[i], data.columns[j])} "
            f"({int(inf.sum())} infinite cell(s))"
        )

    row_ids = [str(x) for x in data.index]
    col_ids = [str(c) for c in data.columns]
    if features_in_rows:
        values = np.ascontiguousarray(values.T)
        row_ids, col_ids = col_ids, row_ids
    return pd.DataFrame(
        values,
        index=pd.Index(row_ids, name="sample_id"),
        columns=pd.Index(col_ids),
        copy=False,
    )


# --------------------------------------------------------------------------- #
# labels
# --------------------------------------------------------------------------- #
def read_labels(
    path: str | os.PathLike,
    *,
    id_column: str,
    label_column: str,
    group_column: str | None = None,
) -> pd.DataFrame:
    """Read a label table (CSV/TSV, optionally gzipped) with every column as text.

    No value is converted: ``"01"`` stays ``"01"``, ``"NA"`` stays ``"NA"`` and
    an empty cell is the empty string ``""`` (never NaN).

    Parameters
    ----------
    path : str or os.PathLike
        Local file; delimiter and compression detected as for :func:`read_matrix`.
    id_column : str
        Column with the sample ids that match the matrix ids.
    label_column : str
        Column with the class label (only checked for existence here).
    group_column : str, optional
        Column with a grouping key such as a patient id (checked for existence).

    Returns
    -------
    pandas.DataFrame, shape (n_rows, n_columns)
        All columns of the file (``id_column`` included) as ``str``; index =
        the stripped ids (``str``, index name ``"sample_id"``), file order.

    Raises
    ------
    IngestError
        File missing or empty; header but no data rows; duplicate column
        names; unknown id/label/group column (available columns are listed);
        empty or duplicate ids (some are named).
    """
    p = _check_file(path)
    sep, compression, header = _sniff(p)
    dups = _duplicates(header)
    if dups:
        raise IngestError(f"{p}: duplicate column names in the header: {_fmt_dups(dups)}")
    for role, col in (("id", id_column), ("label", label_column), ("group", group_column)):
        if col is None and role == "group":
            continue
        if col is None or str(col).strip() not in header:
            raise IngestError(
                f"{p}: {role} column {col!r} not found; available columns: {_fmt_list(header)}"
            )
    id_column = str(id_column).strip()
    df = _read_csv(p, sep, compression, header, dtype=str, keep_default_na=False, na_filter=False)
    if len(df) == 0:
        raise IngestError(f"{p}: header but no data rows")
    ids = _clean_ids(df[id_column], p, f"id (column {id_column!r})")
    dups = _duplicates(ids)
    if dups:
        raise IngestError(f"{p}: duplicate ids in column {id_column!r}: {_fmt_dups(dups)}")
    df.index = pd.Index(ids, name="sample_id")
    return df


# --------------------------------------------------------------------------- #
# filters
# --------------------------------------------------------------------------- #
_OPS = ("==", "!=", "=~", "!~")
_FILTER_RE = re.compile(r"^\s*(?P<col>[^=!~]*?)\s*(?P<op>==|!=|=~|!~)(?P<val>.*)$", re.S)


@dataclass(frozen=True)
class Filter:
    """A parsed row filter on a label table (see :func:`parse_filter`)."""

    column: str
    op: str
    value: str
    expr: str

    def mask(self, labels: pd.DataFrame) -> np.ndarray:
        """Boolean array, shape (n_rows,): True for the rows this filter KEEPS.

        Raises IngestError if :attr:`column` is not a column of ``labels``.
        """
        if self.column not in labels.columns:
            raise IngestError(
                f"filter {self.expr!r}: unknown column {self.column!r}; available "
                f"columns: {_fmt_list([str(c) for c in labels.columns])}"
            )
        vals = labels[self.column].fillna("").astype(str)
        if self.op == "==":
            keep = vals == self.value
        elif self.op == "!=":
            keep = vals != self.value
        else:
            rx = re.compile(self.value)
            matched = np.fromiter((rx.search(v) is not None for v in vals), dtype=bool, count=len(vals))
            keep = matched if self.op == "=~" else ~matched
        return np.asarray(keep, dtype=bool)


def parse_filter(expr: str | Filter, columns: Sequence[str] | None = None) -> Filter:
    """Parse one filter expression.

    Syntax (whitespace around the column and the value is ignored):

    * ``COL==VALUE`` keep rows whose ``COL`` equals ``VALUE`` (text comparison)
    * ``COL!=VALUE`` keep rows whose ``COL`` differs from ``VALUE``
    * ``COL=~REGEX`` keep rows whose ``COL`` matches ``REGEX`` (``re.search``)
    * ``COL!~REGEX`` drop rows whose ``COL`` matches ``REGEX`` (``re.search``)

    Parameters
    ----------
    expr : str or Filter
        The expression (a :class:`Filter` is returned unchanged, after the
        column check).
    columns : sequence of str, optional
        If given, the column must be one of these.

    Returns
    -------
    Filter

    Raises
    ------
    IngestError
        Not a string; no operator; empty column name; single ``=``; invalid
        regular expression; column not in ``columns``.
    """
    if isinstance(expr, Filter):
        flt = expr
    else:
        if not isinstance(expr, str):
            raise IngestError(f"filter {expr!r}: expected a string like 'COL==VALUE'")
        m = _FILTER_RE.match(expr)
        if m is None or not m.group("col"):
            raise IngestError(
                f"malformed filter {expr!r}: expected COL==VALUE, COL!=VALUE, "
                f"COL=~REGEX or COL!~REGEX"
            )
        col, op, val = m.group("col").strip(), m.group("op"), m.group("val").strip()
        if op in ("==", "!=") and val.startswith("="):
            raise IngestError(f"malformed filter {expr!r}: operator {op + '='!r} is not supported")
        if op in ("=~", "!~"):
            try:
                re.compile(val)
            except re.error as exc:
                raise IngestError(f"malformed filter {expr!r}: invalid regex {val!r} ({exc})") from exc
        flt = Filter(column=col, op=op, value=val, expr=expr)
    if columns is not None and flt.column not in columns:
        raise IngestError(
            f"filter {flt.expr!r}: unknown column {flt.column!r}; available columns: "
            f"{_fmt_list([str(c) for c in columns])}"
        )
    return flt


def apply_filters(
    labels: pd.DataFrame, filters: Iterable[str | Filter] | str
) -> tuple[pd.DataFrame, list[dict]]:
    """Apply filters in order to a label table.

    Parameters
    ----------
    labels : pandas.DataFrame, shape (n_rows, n_columns)
        Typically from :func:`read_labels` (text columns).
    filters : iterable of str or Filter, or a single str
        Expressions as accepted by :func:`parse_filter`; all are parsed and
        checked against the columns before any is applied.

    Returns
    -------
    kept : pandas.DataFrame, shape (n_kept, n_columns)
        The rows every filter keeps, original order.
    report : list of dict
        One entry per filter: ``expr``, ``column``, ``op``, ``value``,
        ``rows_before``, ``rows_dropped``, ``rows_after``.

    Raises
    ------
    IngestError
        Malformed expression or unknown column.
    """
    if isinstance(filters, (str, Filter)):
        filters = [filters]
    parsed = [parse_filter(f, columns=list(labels.columns)) for f in filters]
    kept = labels
    report = []
    for flt in parsed:
        before = len(kept)
        kept = kept.loc[flt.mask(kept)]
        report.append(
            {
                "expr": flt.expr,
                "column": flt.column,
                "op": flt.op,
                "value": flt.value,
                "rows_before": int(before),
                "rows_dropped": int(before - len(kept)),
                "rows_after": int(len(kept)),
            }
        )
    return kept, report
