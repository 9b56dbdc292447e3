"""Errors raised by :mod:`spiking.data.ingest`."""

from __future__ import annotations

from spiking.errors import SpikingError


class IngestError(SpikingError):
    """A matrix, label table, filter or ingest option is unusable.

    The message always names the offending file (when there is one) and the
    row id / column / value at fault, so the user can fix the input without
    reading a traceback. Subclasses :class:`ValueError`, so callers that only
    catch ``ValueError`` still see it.
    """
