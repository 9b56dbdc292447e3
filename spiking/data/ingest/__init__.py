"""Ingest: expression matrix + label table -> Parquet shards with a manifest.

Typical use::

    from spiking.data.ingest import ingest, load_dataset, SHARED_TCGA
    ingest("../shared/data/tcga-mirna/tcga_mirnaseq_rpm.csv.gz",
           "../shared/data/tcga-mirna/tcga_mirnaseq_labels.csv",
           "data/tcga", **SHARED_TCGA)
    ds = load_dataset("data/tcga")   # ds.X float32 (n, L), ds.y, ds.ids, ds.groups

Samples are always joined to labels by id, never by position. Lower-level
pieces: :mod:`spiking.data.ingest.readers` (read_matrix, read_labels, parse_filter,
apply_filters) and :mod:`spiking.data.ingest.missing` (apply_missing_policy).
"""

from spiking.data.ingest.errors import IngestError
from spiking.data.ingest.missing import apply_missing_policy
from spiking.data.ingest.readers import apply_filters, parse_filter, read_labels, read_matrix
from spiking.data.ingest.shards import GDC_LABEL_SHEET, SHARED_TCGA, Dataset, ingest, load_dataset, locate_shards

__all__ = [
    "GDC_LABEL_SHEET",
    "SHARED_TCGA",
    "Dataset",
    "IngestError",
    "apply_filters",
    "apply_missing_policy",
    "ingest",
    "load_dataset",
    "locate_shards",
    "parse_filter",
    "read_labels",
    "read_matrix",
]
