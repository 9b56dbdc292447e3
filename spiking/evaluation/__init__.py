"""Evaluation: metrics on the held-out test split, the logistic-regression baseline, results.json."""

from .baseline import fit_logistic_regression
from .metrics import classification_metrics
from .results import format_table, write_results

__all__ = ["fit_logistic_regression", "classification_metrics", "format_table", "write_results"]
