"""Spatial layouts that turn expression profiles into 1-D strips or 2-D images
placing correlated genes next to each other (see ``spiking.data.layout.transforms``).

``LAYOUTS`` maps a name to a layout class; ``make_layout(name, **kw)`` builds one;
``spiking.data.layout.state`` saves a fitted layout with the networks trained on it.
"""
from spiking.data.layout.transforms import (
    Correlation1DLayout,
    Embedding2DLayout,
    IdentityLayout,
    RandomLayout,
    SquareLayout,
    standardized_feature_vectors,
)
from spiking.data import DataError

LAYOUTS = {
    "identity": IdentityLayout,
    "square": SquareLayout,
    "random": RandomLayout,
    "correlation_1d": Correlation1DLayout,
    "embedding_2d": Embedding2DLayout,
}


def make_layout(name, **kw):
    """Instantiate the layout registered as ``name`` with keyword args ``kw``.

    Raises ``ValueError`` listing the valid names for an unknown ``name``.
    """
    try:
        cls = LAYOUTS[name]
    except (KeyError, TypeError):
        raise DataError(
            f"unknown layout {name!r}; valid: {', '.join(sorted(LAYOUTS))}") from None
    return cls(**kw)


__all__ = ["LAYOUTS", "make_layout", "IdentityLayout", "SquareLayout", "RandomLayout",
           "Correlation1DLayout", "Embedding2DLayout", "standardized_feature_vectors"]
