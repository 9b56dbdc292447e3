"""spiking: gene-expression profiles as images, CNNs and their spiking conversions.

The sub-packages form layers (:data:`LAYERS`, bottom first); a module imports only from its own
package or from a lower layer (``tests/test_architecture.py`` checks it). The README's
"Architecture" section explains each layer.
"""

__version__ = "0.1.0"

#: The package's layers, bottom first. Packages that share a layer never import each other.
LAYERS = (
    ("spiking.errors",),
    ("spiking.data",),
    ("spiking.specs",),
    ("spiking.models", "spiking.keras"),
    ("spiking.artifacts",),
    ("spiking.training",),
    ("spiking.evaluation",),
    ("spiking.report",),
    ("spiking.search",),
    ("spiking.cli",),
)
