"""Searches with Ray Tune and the grammar-based architecture search.

* :func:`list_experiments` / :func:`load_experiment`: the registry of
  ``spiking/search/experiments/*.toml`` (``cnn_search``, ``cnn_pt1``, ``cnn_pt2``,
  ``snn_pt1``, ``snn_pt2``, ``snn_mse_pt1``, ``snn_mse_pt2``, ``snn_k``).
* :func:`run_experiment`: run one at budget ``smoke|small|paper`` on a local folder
  or ``s3://`` storage, then export the best (and for SNNs the trade-off)
  configuration and its test-split results.
* :func:`add_tune_parser`: the ``spiking tune`` sub-command.
* :mod:`.grammar`, :mod:`.genotype`, :mod:`.phenotype`, :mod:`.evolution`: the Fast-DENSER-style
  architecture search behind ``spiking nas``.

Names are loaded on first use (PEP 562): the torch experiments' runner needs torch, the
``snn_k`` experiment and ``spiking nas`` TensorFlow; both environments import this package.
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
