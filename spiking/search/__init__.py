"""Searches with Ray Tune and the grammar-based architecture search.

Details: docs/modules.md, section ``spiking.search``.
"""

from importlib import import_module

_LAZY = {
    "add_tune_parser": ".cli", "cmd_tune": ".cli",
    "ExperimentError": ".registry", "list_experiments": ".registry", "load_experiment": ".registry",
    "validate_space": ".registry",
    "SearchError": ".runner", "run_experiment": ".runner",
}
__all__ = sorted(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
