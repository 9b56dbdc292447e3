"""``spiking report``: figures and tables of a run or a search experiment, as report.md and a
self-contained report.html (PNGs embedded), built from the saved files without retraining.

``build_report(target, out_dir=None)`` is the entry point (see :mod:`spiking.report.build`);
the figures are in :mod:`spiking.report.figures`, the Markdown/HTML writers in
:mod:`spiking.report.render`.
"""

from spiking.report.build import ReportError, build_report

__all__ = ["build_report", "ReportError"]
