"""Data in: ingest (matrix + labels -> Parquet shards), preprocessing (classes, split, scaling) and spatial layouts."""

from spiking.errors import SpikingError


class DataError(SpikingError):
    """A profile matrix, split, scaling or layout setting that cannot be used (a user error)."""
