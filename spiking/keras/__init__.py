"""The Keras/NengoDL pipeline: grammar-search phenotypes as Keras models, their fitting, and the NengoDL conversion (TensorFlow only: no torch here)."""

from spiking.errors import SpikingError


class KerasError(SpikingError):
    """A Keras model, phenotype or NengoDL setting that cannot be used (a user error)."""
