"""Settings and descriptions: every setting defined, defaulted and validated once; vocabularies; the energy convention; phenotypes."""

from spiking.errors import SpikingError


class SpecError(SpikingError):
    """A setting outside its domain: the message names the setting (a user error)."""
