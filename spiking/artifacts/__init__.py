"""Saved files: networks (checkpoints), results.json, and local or s3:// storage."""

from spiking.errors import SpikingError


class ArtifactError(SpikingError):
    """A saved file (network, results.json) that cannot be read or written as asked (a user error)."""
