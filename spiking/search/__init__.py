"""Hyperparameter and architecture searches with Ray Tune: named experiments, storage, the trial trainable.

* :func:`list_experiments` / :func:`load_experiment`: the registry of
  ``spiking/search/experiments/*.toml`` (``cnn_search``, ``cnn_pt1``, ``cnn_pt2``,
  ``snn_pt1``, ``snn_pt2``, ``snn_mse_pt1``, ``snn_mse_pt2``).
* :func:`run_experiment`: run one at budget ``smoke|small|paper`` on a local folder
  or ``s3://`` storage, then export the best (and for SNNs the trade-off)
  configuration and its test-split results.
* :func:`add_tune_parser`: the ``spiking tune`` sub-command.
"""

from .cli import add_tune_parser, cmd_tune
from .registry import ExperimentError, list_experiments, load_experiment, validate_space
from .runner import SearchError, run_experiment
from .storage import StorageError, open_storage, resolve_storage

__all__ = ["run_experiment", "list_experiments", "load_experiment", "validate_space", "add_tune_parser",
           "cmd_tune", "ExperimentError", "SearchError", "StorageError", "open_storage", "resolve_storage"]
