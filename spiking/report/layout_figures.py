"""Figures of a fitted spatial layout: where each gene sits, what one sample's
image looks like, and the mean image of each class.

Details: docs/modules.md, section ``spiking.report.layout_figures``.
"""
from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from sklearn.utils.validation import check_is_fitted

from spiking.report.inputs import ReportError

__all__ = ["plot_feature_map", "plot_sample_image", "plot_class_mean_images",
           "feature_map_table"]

DPI = 140
CMAP = "viridis"
PAD_COLOUR = "#e0e0e0"
LABEL_WRAP_1D = 10   # columns of a labelled, wrapped 1-D strip
MAX_LABEL_CHARS = 10


# --------------------------------------------------------------------------- helpers
def _figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _png_path(path, what: str) -> Path:
    """``Path(path)``, or ``ValueError`` when its suffix is not ``.png``."""
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ReportError(f"{path}: {what} is written as PNG; give a .png path")
    return path


def _feature_names(feature_names, n: int) -> list[str]:
    """``feature_names`` as a list of ``n`` strings.

    Raises ``ValueError`` for None or a wrong length, ``TypeError`` for a single
    string, a non-iterable or non-string entries.
    """
    if feature_names is None:
        raise ReportError("feature_names is required: one name per feature, "
                         f"{n} for this layout; got None")
    if isinstance(feature_names, (str, bytes)):
        raise TypeError("feature_names must be an iterable of names, got a single "
                        f"{type(feature_names).__name__}: {feature_names[:40]!r}")
    try:
        names = list(feature_names)
    except TypeError:
        raise TypeError("feature_names must be an iterable of strings, got "
                        f"{type(feature_names).__name__}") from None
    bad = [i for i, v in enumerate(names) if not isinstance(v, str)]
    if bad:
        raise TypeError(f"feature_names must be strings; entry {bad[0]} is "
                        f"{names[bad[0]]!r} ({type(names[bad[0]]).__name__})")
    if len(names) != n:
        raise ReportError(f"feature_names has {len(names)} entries, but the layout "
                         f"was fitted with {n} features")
    return names


def _save(fig: Figure, path: Path) -> Path:
    path = _png_path(path, "the figure")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", dpi=DPI)
    return path


def _cmap(name: str = CMAP):
    import matplotlib
    return matplotlib.colormaps[name].with_extremes(bad=PAD_COLOUR)


def _fitted_map(layout) -> np.ndarray:
    check_is_fitted(layout, "feature_map_")
    fmap = np.asarray(layout.feature_map_)
    if fmap.ndim not in (1, 2):
        raise ReportError(f"feature_map_ must be 1-D or 2-D, got shape {fmap.shape}")
    return fmap


def _n_features(layout, fmap: np.ndarray) -> int:
    n = getattr(layout, "n_features_in_", None)
    return int(n) if n is not None else int((fmap >= 0).sum())


def _wrap(a: np.ndarray, width: int) -> np.ndarray:
    """1-D array (L,) -> (ceil(L/width), width), tail padded with NaN (or -1 for ints)."""
    L = a.shape[0]
    rows = max(1, math.ceil(L / width))
    fill = -1 if np.issubdtype(a.dtype, np.integer) else np.nan
    out = np.full(rows * width, fill, dtype=a.dtype)
    out[:L] = a
    return out.reshape(rows, width)


def _short(name) -> str:
    s = str(name)
    return s if len(s) <= MAX_LABEL_CHARS else s[:MAX_LABEL_CHARS - 1] + "\u2026"


def _finish(fig: Figure, path, return_figure: bool):
    p = _save(fig, Path(path))
    return (p, fig) if return_figure else p


def feature_map_table(layout, feature_names: Iterable[str]) -> list[dict]:
    """Rows of the feature-map CSV, one per feature (padding omitted), in
    position order: ``row, col, feature_index, feature_name`` for a 2-D layout,
    ``position, feature_index, feature_name`` for a 1-D one.

    ``feature_names``: any iterable of strings (read once with ``list``).

    Raises:
        NotFittedError: layout not fitted.
        ValueError: ``feature_names`` is None, or its length differs from the
            number of features the layout was fitted on.
        TypeError: ``feature_names`` is a single string, not iterable, or has
            non-string entries.
    """
    fmap = _fitted_map(layout)
    names = _feature_names(feature_names, _n_features(layout, fmap))
    rows = []
    for idx in np.ndindex(fmap.shape):
        f = int(fmap[idx])
        if f < 0:
            continue
        if fmap.ndim == 2:
            rows.append({"row": idx[0], "col": idx[1], "feature_index": f,
                         "feature_name": names[f]})
        else:
            rows.append({"position": idx[0], "feature_index": f, "feature_name": names[f]})
    return rows


# --------------------------------------------------------------------------- figures
def plot_feature_map(layout, feature_names: Iterable[str], path, *, max_labels: int = 400,
                     return_figure: bool = False):
    """Which gene sits where on a fitted layout.

    Args:
        layout: fitted layout; ``feature_map_`` shape ``(L,)`` or ``(H, W)``.
        feature_names: ``n_features_in_`` names, index = feature index; any
            iterable of strings (a generator is read once).
        path: PNG to write. A CSV ``<path without suffix>.csv`` is written next
            to it, one row per feature: ``row, col, feature_index, feature_name``
            (2-D) or ``position, feature_index, feature_name`` (1-D).
        max_labels: a map with at most this many positions (``H*W`` or ``L``)
            is drawn as a grid with every cell labelled by its feature name;
            a larger one as a heat map of the feature index, with a note
            pointing to the CSV. A 1-D map is drawn as a strip wrapped into rows
            (``LABEL_WRAP_1D`` columns when labelled, ``ceil(sqrt(L))`` otherwise);
            position = row * width + column.
        return_figure: return ``(path, Figure)`` instead of ``path``.

    Returns:
        the PNG's Path (or ``(Path, Figure)``).

    Raises:
        NotFittedError: layout not fitted.
        ValueError: ``path`` does not end in ``.png`` (checked before anything
            is written); ``feature_names`` is None or
            ``len(feature_names) != n_features_in_``.
        TypeError: ``feature_names`` is a single string, not iterable, or has
            non-string entries.
    """
    path = _png_path(path, "the feature map (with its table beside it as .csv)")
    fmap = _fitted_map(layout)
    names = _feature_names(feature_names, _n_features(layout, fmap))
    table = feature_map_table(layout, names)
    csv_path = path.with_suffix(".csv")
    csv_path.parent.mkdir(parents=True, exist_ok=True)
    with open(csv_path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(table[0]) if table else
                           (["row", "col"] if fmap.ndim == 2 else ["position"])
                           + ["feature_index", "feature_name"])
        w.writeheader()
        w.writerows(table)

    size = int(fmap.size)
    labelled = size <= max_labels
    if fmap.ndim == 1:
        width = min(size, LABEL_WRAP_1D) if labelled else max(1, math.isqrt(size - 1) + 1)
        grid = _wrap(fmap, max(1, width))
        kind = f"1-D strip of {size} positions, wrapped {grid.shape[1]} per row"
    else:
        grid = fmap
        kind = f"2-D grid {fmap.shape[0]} x {fmap.shape[1]}"
    H, W = grid.shape
    shown = np.ma.masked_less(grid.astype(float), 0)
    title = f"{type(layout).__name__}: feature map ({kind})"

    if labelled:
        cell = 0.75
        fig = _figure(max(4.0, min(16.0, W * cell + 1)), max(2.0, min(16.0, H * cell * 0.6 + 1)))
        ax = fig.add_subplot()
        ax.imshow(np.ma.masked_less(grid, 0) * 0 + 1, cmap=_cmap("Pastel1"), vmin=0, vmax=8,
                  aspect="auto", interpolation="nearest")
        fs = max(3.0, min(8.0, 90.0 / max(W, 1)))
        for (r, c), f in np.ndenumerate(grid):
            if f >= 0:
                ax.text(c, r, _short(names[int(f)]), ha="center", va="center", fontsize=fs)
        ax.set_xticks(np.arange(W))
        ax.set_yticks(np.arange(H))
        ax.tick_params(labelsize=6)
        ax.set_xticks(np.arange(-0.5, W, 1), minor=True)
        ax.set_yticks(np.arange(-0.5, H, 1), minor=True)
        ax.grid(which="minor", color="white", linewidth=1)
        ax.tick_params(which="minor", length=0)
    else:
        fig = _figure(7.5, 6.5 if fmap.ndim == 2 else 6.0)
        ax = fig.add_subplot()
        im = ax.imshow(shown, cmap=_cmap(), aspect="auto", interpolation="nearest")
        fig.colorbar(im, ax=ax, label="feature index")
        ax.text(0.5, -0.08, f"{size} positions: too large to label "
                f"(max_labels={max_labels}); feature names per position in {csv_path.name}",
                transform=ax.transAxes, ha="center", va="top", fontsize=8)
    ax.set_xlabel("column")
    ax.set_ylabel("row")
    ax.set_title(title, fontsize=9)
    return _finish(fig, path, return_figure)


def _image_of(layout, X: np.ndarray) -> np.ndarray:
    """transform(X) -> (n, *shape_) float array with padding set to NaN."""
    fmap = _fitted_map(layout)
    imgs = np.asarray(layout.transform(X), dtype=float)[:, 0]
    imgs[:, fmap < 0] = np.nan
    return imgs


def plot_sample_image(layout, x_row, path, *, title: str | None = None,
                      return_figure: bool = False):
    """One sample's image: ``layout.transform(x_row[None])``.

    Args:
        layout: fitted layout.
        x_row: one profile, shape ``(n_features_in_,)`` (a ``(1, n)`` row is
            accepted too), preprocessed like the layout's training data.
        path: PNG to write.
        title: figure title (default: layout name).
        return_figure: return ``(path, Figure)`` instead of ``path``.

    1-D layouts are drawn as a colour strip over a line plot of value vs
    position; 2-D layouts with ``imshow`` and a colour bar. Padding is grey.

    Raises:
        NotFittedError: layout not fitted.
        ValueError: ``path`` does not end in ``.png`` (checked before anything
            is written); ``x_row`` is not one row of ``n_features_in_`` values.
    """
    path = _png_path(path, "the sample image")
    fmap = _fitted_map(layout)
    x = np.asarray(x_row, dtype=float)
    if x.ndim == 2 and x.shape[0] == 1:
        x = x[0]
    n = _n_features(layout, fmap)
    if x.ndim != 1 or x.shape[0] != n:
        raise ReportError(f"x_row must have shape ({n},), got {np.asarray(x_row).shape}")
    img = _image_of(layout, x[None, :])[0]
    title = title or f"{type(layout).__name__}: sample image"
    if fmap.ndim == 1:
        fig = _figure(8.0, 3.2)
        ax0, ax1 = fig.subplots(2, 1, sharex=True, height_ratios=[1, 3])
        im = ax0.imshow(np.ma.masked_invalid(img)[None, :], cmap=_cmap(), aspect="auto",
                        interpolation="nearest", extent=(-0.5, img.size - 0.5, 0.5, -0.5))
        ax0.set_yticks([])
        fig.colorbar(im, ax=[ax0, ax1], label="value")
        ax1.plot(np.arange(img.size), img, lw=0.8)
        ax1.set_xlabel("position")
        ax1.set_ylabel("value")
        ax0.set_title(title, fontsize=9)
    else:
        fig = _figure(6.0, 5.0)
        ax = fig.add_subplot()
        im = ax.imshow(np.ma.masked_invalid(img), cmap=_cmap(), interpolation="nearest")
        fig.colorbar(im, ax=ax, label="value")
        ax.set_xlabel("column")
        ax.set_ylabel("row")
        ax.set_title(title, fontsize=9)
    return _finish(fig, path, return_figure)


def _class_codes(y: np.ndarray, class_names):
    """-> (codes (n,), names list). Integer y indexes class_names; other labels
    are matched to class_names by value; class_names=None uses np.unique(y)."""
    if class_names is None:
        names, codes = np.unique(y, return_inverse=True)
        return codes, [str(c) for c in names]
    names = list(class_names)
    if len(names) == 0:
        raise ReportError("class_names is empty")
    if np.issubdtype(y.dtype, np.integer):
        if y.size and (y.min() < 0 or y.max() >= len(names)):
            raise ReportError(f"integer labels must lie in [0, {len(names)}) to index "
                             f"class_names, got range [{y.min()}, {y.max()}]")
        return y.astype(np.int64), [str(c) for c in names]
    lookup = {str(c): i for i, c in enumerate(names)}
    unknown = sorted({str(v) for v in y} - set(lookup))
    if unknown:
        raise ReportError(f"labels not in class_names: {unknown[:5]}")
    return np.array([lookup[str(v)] for v in y], dtype=np.int64), [str(c) for c in names]


def plot_class_mean_images(layout, X, y, class_names: Sequence[str] | None, path, *,
                           return_figure: bool = False):
    """Mean image of each class on one shared colour scale.

    Args:
        layout: fitted layout.
        X: ``(n_samples, n_features_in_)`` profiles.
        y: ``(n_samples,)`` labels: integers indexing ``class_names``, or values
            equal to entries of ``class_names``; ``class_names=None`` uses the
            sorted distinct labels.
        class_names: one name per class (panel order).
        path: PNG to write.
        return_figure: return ``(path, Figure)`` instead of ``path``.

    2-D layouts: a grid of ``imshow`` panels (up to 4 per row), one per class;
    1-D layouts: one strip row per class. A class without samples gets an
    empty panel marked "no samples".

    Raises:
        NotFittedError: layout not fitted.
        ValueError: ``path`` does not end in ``.png`` (checked before anything
            is written); ``len(X) != len(y)``, wrong number of features, or
            labels that do not match ``class_names``.
    """
    path = _png_path(path, "the class-mean figure")
    fmap = _fitted_map(layout)
    X = np.asarray(X, dtype=float)
    y = np.asarray(y).ravel()
    if X.ndim != 2:
        raise ReportError(f"X must be 2-D (n_samples, n_features), got shape {X.shape}")
    if X.shape[0] != y.shape[0]:
        raise ReportError(f"X has {X.shape[0]} samples but y has {y.shape[0]} labels")
    codes, names = _class_codes(y, class_names)
    imgs = _image_of(layout, X)
    k = len(names)
    means = np.full((k,) + fmap.shape, np.nan)
    counts = np.bincount(codes, minlength=k)
    for c in range(k):
        if counts[c]:
            means[c] = imgs[codes == c].mean(axis=0)
    finite = means[np.isfinite(means)]
    vmin, vmax = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    if vmax <= vmin:
        vmax = vmin + 1e-9
    cmap = _cmap()
    title = f"{type(layout).__name__}: class-mean images (shared colour scale)"
    if fmap.ndim == 1:
        fig = _figure(8.0, max(2.0, 0.55 * k + 1.0))
        axes = np.atleast_1d(fig.subplots(k, 1, sharex=True, squeeze=False)[:, 0])
        for c, ax in enumerate(axes):
            im = ax.imshow(np.ma.masked_invalid(means[c])[None, :], cmap=cmap, vmin=vmin,
                           vmax=vmax, aspect="auto", interpolation="nearest")
            ax.set_yticks([0])
            ax.set_yticklabels([f"{names[c]} (n={counts[c]})"], fontsize=7)
            if not counts[c]:
                ax.text(0.5, 0.5, "no samples", transform=ax.transAxes, ha="center",
                        va="center", fontsize=7)
        axes[-1].set_xlabel("position")
    else:
        ncols = min(k, 4)
        nrows = math.ceil(k / ncols)
        fig = _figure(3.0 * ncols + 1.0, 2.8 * nrows + 0.6)
        axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
        for c, ax in enumerate(axes):
            if c >= k:
                ax.set_axis_off()
                continue
            im = ax.imshow(np.ma.masked_invalid(means[c]), cmap=cmap, vmin=vmin, vmax=vmax,
                           interpolation="nearest")
            ax.set_title(f"{names[c]} (n={counts[c]})", fontsize=8)
            ax.set_xticks([])
            ax.set_yticks([])
            if not counts[c]:
                ax.text(0.5, 0.5, "no samples", transform=ax.transAxes, ha="center",
                        va="center", fontsize=7)
    fig.colorbar(im, ax=list(axes[:k]), label="mean value")
    fig.suptitle(title, fontsize=9)
    return _finish(fig, path, return_figure)
