"""Ingest: expression matrix + label table -> Parquet shards with a manifest.

Details: docs/modules.md, section ``spiking.data.ingest``.
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
