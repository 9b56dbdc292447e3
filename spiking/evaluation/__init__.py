"""Evaluation: metrics on the held-out test split, the logistic-regression baseline, results.json."""

from spiking.artifacts.results import format_table, write_results
from spiking.evaluation.baseline import fit_logistic_regression
from spiking.evaluation.metrics import classification_metrics

__all__ = ["fit_logistic_regression", "classification_metrics", "format_table", "write_results"]
