"""Spatial layouts: place the features of an expression matrix on a 1-D strip
or a 2-D grid so that correlated genes end up next to each other.

Details: docs/modules.md, section ``spiking.data.layout.transforms``.
"""
from __future__ import annotations

import math
import numbers

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted
from spiking.data import DataError

__all__ = [
    "IdentityLayout",
    "SquareLayout",
    "RandomLayout",
    "Correlation1DLayout",
    "Embedding2DLayout",
    "standardized_feature_vectors",
    "MAX_PIXELS",
]

# Upper bound on H * W for an explicit ``Embedding2DLayout(shape=...)``. Every
# image batch is a float32 (n, H*W) array (16 MB per sample at this bound), and
# the pixel assignment builds (H*W, 2) float64 pixel centres plus per-band cost
# matrices, so an unbounded shape (a typo such as (20000, 20000)) would try to
# allocate many GB before failing. 4 M pixels (a 2000 x 2000 grid) is far above
# any grid needed for ~20,000 genes.
MAX_PIXELS = 4_000_000


def _is_int(v):
    """True for a Python/numpy integer that is not a bool."""
    return isinstance(v, (numbers.Integral, np.integer)) and not isinstance(v, (bool, np.bool_))


def _check_seed(seed):
    """Return ``seed`` as an int; ``ValueError`` unless it is an integer >= 0."""
    if not _is_int(seed) or int(seed) < 0:
        raise DataError(
            f"seed must be a non-negative int (numpy integers accepted), got {seed!r} "
            f"of type {type(seed).__name__}; a fixed seed keeps the layout reproducible")
    return int(seed)


def _column_names(X):
    """Column names of a DataFrame-like ``X`` as an object array, or None.

    Follows scikit-learn: names are used only if every column name is a
    string; a mix of string and non-string names raises ``TypeError``.
    """
    cols = getattr(X, "columns", None)
    if cols is None or not hasattr(X, "iloc"):
        return None
    names = np.asarray(cols, dtype=object)
    is_str = np.array([isinstance(c, str) for c in names], dtype=bool)
    if names.size and is_str.all():
        return names
    if is_str.any():
        raise TypeError(
            "feature names are only supported if all DataFrame column names are "
            f"strings; got a mix, e.g. {[c for c in names if not isinstance(c, str)][:3]!r}")
    return None


def _validate_X(X, name="X", allow_empty=False):
    """Return ``X`` as a finite 2-D float32 array or raise ``ValueError``.

    With ``allow_empty`` a ``(0, n_features)`` array is accepted.
    """
    try:
        X = np.asarray(X, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{name} must be a numeric array: {exc}") from exc
    if X.ndim != 2:
        raise DataError(
            f"{name} must be 2-D (n_samples, n_features); got shape {X.shape}")
    if (X.shape[0] < 1 and not allow_empty) or X.shape[1] < 1:
        raise DataError(
            f"{name} must have at least 1 sample and 1 feature; got shape {X.shape}")
    if not np.isfinite(X).all():
        bad = int((~np.isfinite(X)).sum())
        raise DataError(
            f"{name} contains {bad} non-finite value(s) (NaN or inf); "
            "impute or drop them before the layout")
    return X


def standardized_feature_vectors(X):
    """Feature vectors with zero mean and unit norm over the samples.

    Parameters
    ----------
    X : array (n_samples, n_features), finite.

    Returns
    -------
    F : float32 array (n_features, n_samples). Row ``i`` is column ``i`` of
        ``X`` centred and scaled to unit Euclidean norm, so ``F @ F.T`` is the
        Pearson correlation matrix and ``1 - F @ F.T`` the correlation
        distance (scipy's ``metric="correlation"``). Constant features get a
        zero row (correlation 0, distance 1 to every other feature).
    """
    X = np.asarray(X, dtype=np.float32)
    Xc = X - X.mean(axis=0, dtype=np.float64).astype(np.float32)
    norms = np.sqrt(np.einsum("ij,ij->j", Xc, Xc, dtype=np.float64))
    scale = np.zeros_like(norms)
    ok = norms > 1e-12 * max(1.0, float(norms.max(initial=0.0)))
    scale[ok] = 1.0 / norms[ok]
    return np.ascontiguousarray((Xc * scale.astype(np.float32)).T)


class _BaseLayout(TransformerMixin, BaseEstimator):
    """Shared machinery: subclasses implement ``_layout(X) -> (positions, shape)``."""

    def _layout(self, X):  # pragma: no cover - abstract
        raise NotImplementedError

    def fit(self, X, y=None):
        """Learn the feature placement from ``X`` (n_samples, n_features) only.

        ``y`` is ignored. Returns ``self``. A pandas DataFrame with string
        column names sets ``feature_names_in_``; any other input removes it.

        Raises:
            ValueError: non-2-D, empty (0 samples or 0 features) or non-finite
                input, or invalid layout parameters (see the subclass).
            TypeError: a DataFrame mixing string and non-string column names.
        """
        names = _column_names(X)
        X = _validate_X(X)
        n = X.shape[1]
        positions, shape = self._layout(X)
        positions = np.asarray(positions, dtype=np.int64)
        size = int(np.prod(shape))
        if positions.shape != (n,) or len(np.unique(positions)) != n \
                or positions.min() < 0 or positions.max() >= size:
            raise RuntimeError("internal error: layout is not an injection")
        fmap = np.full(size, -1, dtype=np.int64)
        fmap[positions] = np.arange(n)
        self.positions_ = positions
        self.shape_ = tuple(int(s) for s in shape)
        self.feature_map_ = fmap.reshape(self.shape_)
        self.n_features_in_ = n
        if names is not None:
            self.feature_names_in_ = names
        elif hasattr(self, "feature_names_in_"):
            del self.feature_names_in_
        return self

    def _check_names(self, X, name="X"):
        """Refuse a DataFrame whose columns are not the fitted ones in the fitted order."""
        fitted = getattr(self, "feature_names_in_", None)
        got = _column_names(X)
        if fitted is None or got is None:
            return  # positional (as scikit-learn, which only warns here)
        if len(got) == len(fitted) and (got == fitted).all():
            return
        if len(got) == len(fitted) and set(got) == set(fitted):
            i = int(np.flatnonzero(got != fitted)[0])
            raise DataError(
                f"{name} has the fitted columns in another order: column {i} is "
                f"{got[i]!r} but was {fitted[i]!r} in fit; reorder with "
                f"X[layout.feature_names_in_] (scikit-learn refuses another order too)")
        fitted_set, got_set = set(fitted), set(got)
        unseen = [c for c in got if c not in fitted_set]
        missing = [c for c in fitted if c not in got_set]
        raise DataError(
            f"{name} columns differ from those seen in fit: first mismatch "
            + (f"{unseen[0]!r} (not seen in fit)" if unseen else f"{missing[0]!r} (missing)")
            + f"; unseen: {unseen[:5]}{'...' if len(unseen) > 5 else ''}, "
            f"missing: {missing[:5]}{'...' if len(missing) > 5 else ''}")

    def _check_width(self, X, name="X"):
        if X.shape[1] != self.n_features_in_:
            raise DataError(
                f"{name} has {X.shape[1]} features, but {type(self).__name__} "
                f"was fitted with {self.n_features_in_} features")

    def transform(self, X):
        """Place the features of ``X`` (n, n_features) on the fitted layout.

        Returns float32 ``(n, 1, *shape_)``; padding positions are 0. ``n == 0``
        is allowed and gives an empty ``(0, 1, *shape_)`` array.

        Raises:
            NotFittedError: before ``fit``.
            ValueError: non-2-D input, a wrong number of features, non-finite
                values, or (after a DataFrame ``fit``) a DataFrame with other
                columns or the same columns in another order.
            TypeError: a DataFrame mixing string and non-string column names.
        """
        check_is_fitted(self, "positions_")
        self._check_names(X)
        X = _validate_X(X, allow_empty=True)
        self._check_width(X)
        out = np.zeros((X.shape[0], int(np.prod(self.shape_))), dtype=np.float32)
        out[:, self.positions_] = X
        return out.reshape((X.shape[0], 1) + self.shape_)

    def inverse_transform(self, images):
        """Read the features back from images ``(n, 1, *shape_)`` (or
        ``(n, *shape_)``); returns float32 ``(n, n_features)``.

        Exact inverse of ``transform`` on the features' positions; ``n == 0``
        gives ``(0, n_features)``. Raises ``NotFittedError`` before ``fit`` and
        ``ValueError`` for a wrong shape.
        """
        check_is_fitted(self, "positions_")
        images = np.asarray(images, dtype=np.float32)
        size = int(np.prod(self.shape_))
        if images.ndim < 1 or images.shape[1:] not in ((1,) + self.shape_, self.shape_):
            raise DataError(
                f"images must have shape (n, 1, {', '.join(map(str, self.shape_))})"
                f"; got {images.shape}")
        return np.ascontiguousarray(images.reshape(images.shape[0], size)[:, self.positions_])


class IdentityLayout(_BaseLayout):
    """Features in file order on a 1-D strip: ``shape_ == (n_features,)``.

    The trivial baseline; images are ``(n, 1, n_features)``.
    """

    def _layout(self, X):
        n = X.shape[1]
        return np.arange(n), (n,)


class SquareLayout(_BaseLayout):
    """Features in file order, row-major, on the smallest square grid.

    ``H = W = ceil(sqrt(n_features))``; the last ``H*W - n_features`` pixels
    are zero padding (``feature_map_ == -1``). Images are ``(n, 1, H, W)``.
    """

    def _layout(self, X):
        n = X.shape[1]
        side = math.isqrt(n - 1) + 1
        return np.arange(n), (side, side)


class RandomLayout(_BaseLayout):
    """A fixed random permutation of the features on a 1-D strip (control).

    Parameters
    ----------
    seed : int, default 0
        Seed of ``numpy.random.default_rng``; the same seed and number of
        features give the same permutation. Must be a non-negative int or
        numpy integer: ``fit`` raises ``ValueError`` for anything else
        (float, str, bool, None, negative).
    """

    def __init__(self, seed=0):
        self.seed = seed

    def _layout(self, X):
        seed = _check_seed(self.seed)
        n = X.shape[1]
        perm = np.random.default_rng(seed).permutation(n)  # feature at position
        positions = np.empty(n, dtype=np.int64)
        positions[perm] = np.arange(n)
        return positions, (n,)


def _leaf_order_from_children(children, n):
    """Left-to-right leaf order of a binary merge tree in sklearn's
    ``children_`` format (node ``n + i`` merges ``children[i]``)."""
    if n == 1:
        return np.zeros(1, dtype=np.int64)
    order = []
    stack = [n + len(children) - 1]
    while stack:
        node = stack.pop()
        if node < n:
            order.append(node)
        else:
            a, b = children[node - n]
            stack.append(b)
            stack.append(a)
    return np.asarray(order, dtype=np.int64)


class Correlation1DLayout(_BaseLayout):
    """Features ordered on a 1-D strip by the leaf order of a hierarchical
    clustering, so neighbouring positions hold correlated features.

    Source: the dendrogram leaf order (``scipy.cluster.hierarchy.linkage`` +
    ``leaves_list``), as used for heat-map seriation (Eisen et al., PNAS 1998;
    optimal leaf ordering: Bar-Joseph et al., Bioinformatics 2001).

    Two regimes, chosen by ``n_features``:

    * ``n_features <= max_exact`` (default 4000): exact correlation distance
      ``1 - r`` from standardised columns (one float32 matrix product,
      condensed with ``squareform(..., checks=False)``) and
      ``linkage(method=method)``; ``optimal_ordering=True`` only when
      ``n_features <= max_optimal_ordering`` (default 1000; measured 4.8 s
      for 1,500 features on this machine, and it grows faster than n^2).
    * larger inputs: a dense condensed matrix for 20,000 features is 200 M
      distances (1.6 GB float64) and scipy 'average' takes minutes, and
      ``fastcluster`` is not installed. Instead the unit-norm standardised
      feature vectors (for which squared Euclidean distance is ``2 (1 - r)``)
      are projected by PCA to ``n_components`` (default 50) dimensions and
      clustered with Ward linkage restricted to a k-nearest-neighbour graph
      (``sklearn.cluster.ward_tree`` with
      ``kneighbors_graph(n_neighbors)``), which is memory-light (sparse) and
      took ~9 s for 20,000 points on 2 cores. ``method``/``metric`` are not
      used in this regime. The approximation: distances are correlation
      distances in the leading principal subspace, and merges are restricted
      to kNN-adjacent clusters (sklearn joins disconnected components).

    Parameters
    ----------
    method : str, default "average"
        scipy linkage method for the exact regime.
    metric : {"correlation"}, default "correlation"
        Only the Pearson correlation distance is supported.
    max_exact, max_optimal_ordering, n_components, n_neighbors, seed :
        regime thresholds and approximation settings (see above).

    ``shape_ == (n_features,)``; images are ``(n, 1, n_features)``.

    Fitted attribute ``regime_``: ``"exact"`` or ``"pca-knn-ward"``, set by
    every ``fit`` (1 or 2 features are ordered trivially, which is exact).
    """

    def __init__(self, method="average", metric="correlation", max_exact=4000,
                 max_optimal_ordering=1000, n_components=50, n_neighbors=10,
                 seed=0):
        self.method = method
        self.metric = metric
        self.max_exact = max_exact
        self.max_optimal_ordering = max_optimal_ordering
        self.n_components = n_components
        self.n_neighbors = n_neighbors
        self.seed = seed

    def _layout(self, X):
        from scipy.cluster.hierarchy import leaves_list, linkage
        from scipy.spatial.distance import squareform

        if self.metric != "correlation":
            raise DataError(
                f"metric={self.metric!r} is not supported; use 'correlation'")
        n = X.shape[1]
        if n <= 2:
            order = np.arange(n)
            regime = "exact"
        else:
            F = standardized_feature_vectors(X)
            if n <= self.max_exact:
                D = 1.0 - F @ F.T
                np.clip(D, 0.0, 2.0, out=D)
                np.fill_diagonal(D, 0.0)
                D = (D + D.T) * 0.5
                cond = squareform(D, checks=False).astype(np.float64)
                Z = linkage(cond, method=self.method,
                            optimal_ordering=n <= self.max_optimal_ordering)
                order = leaves_list(Z)
                regime = "exact"
            else:
                from sklearn.cluster import ward_tree
                from sklearn.decomposition import PCA
                from sklearn.neighbors import kneighbors_graph

                k = int(min(self.n_components, F.shape[1], n - 1))
                P = PCA(n_components=k, svd_solver="randomized",
                        random_state=self.seed).fit_transform(F) if k >= 1 else F
                G = kneighbors_graph(P, min(self.n_neighbors, n - 1),
                                     include_self=False)
                import warnings
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", UserWarning)
                    children = ward_tree(P, connectivity=G)[0]
                order = _leaf_order_from_children(children, n)
                regime = "pca-knn-ward"
        positions = np.empty(n, dtype=np.int64)
        positions[np.asarray(order)] = np.arange(n)
        self.regime_ = regime
        return positions, (n,)


def _assign_to_pixels(coords, shape, max_dense=4_000_000):
    """Injective assignment of points to pixels minimising squared distance.

    ``coords`` (n, 2) are (row, col) in grid units, ``shape`` (H, W) with
    ``H*W >= n``. Returns flat pixel indices (n,).

    If ``n * H * W <= max_dense`` this is the exact optimum via
    ``scipy.optimize.linear_sum_assignment`` on the dense cost. Otherwise
    (a dense 20,000 x 20,000 cost is 3.2 GB) the grid is cut into horizontal
    bands of about 1,500 pixels; points are sorted by row coordinate and each
    band receives a share of points proportional to its pixels (rank-based,
    so every band fits), then the optimal assignment is solved within each
    band. Exact within bands, approximate across them.
    """
    from scipy.optimize import linear_sum_assignment

    H, W = shape
    n = coords.shape[0]
    rr, cc = np.divmod(np.arange(H * W), W)
    pix = np.stack([rr, cc], axis=1).astype(np.float64)
    if n * H * W <= max_dense:
        cost = ((coords[:, None, :] - pix[None, :, :]) ** 2).sum(-1)
        rows, cols = linear_sum_assignment(cost)
        out = np.empty(n, dtype=np.int64)
        out[rows] = cols
        return out
    rows_per_band = max(1, 1500 // W)
    order = np.lexsort((coords[:, 1], coords[:, 0]))
    out = np.empty(n, dtype=np.int64)
    total = H * W
    start_pt = 0
    for r0 in range(0, H, rows_per_band):
        r1 = min(H, r0 + rows_per_band)
        end_pt = int(round(n * (r1 * W) / total))
        pts = order[start_pt:end_pt]
        start_pt = end_pt
        if len(pts) == 0:
            continue
        bpix = np.arange(r0 * W, r1 * W)
        cost = ((coords[pts][:, None, :] - pix[bpix][None, :, :]) ** 2).sum(-1)
        ri, ci = linear_sum_assignment(cost)
        out[pts[ri]] = bpix[ci]
    return out


class Embedding2DLayout(_BaseLayout):
    """DeepInsight-style 2-D layout (Sharma et al., Sci. Rep. 9:11399, 2019).

    Each feature is a point: its standardised (zero-mean, unit-norm) vector
    over the training samples. The points are embedded in 2-D (``"pca"``:
    first two principal components; ``"tsne"``: ``sklearn.manifold.TSNE``,
    intended for small inputs), min-max scaled to the ``H x W`` grid, then
    assigned to UNIQUE pixels by minimum total squared distance between the
    embedded point and the pixel centre (``scipy.optimize.linear_sum_assignment``;
    DeepInsight instead lets features share pixels and averages them, which
    would not be invertible). For large inputs the assignment is solved in
    horizontal bands of ~1,500 pixels (see ``_assign_to_pixels``). Unused
    pixels are 0.

    Parameters
    ----------
    shape : (H, W) or None
        Grid shape: a pair of positive ints (Python or numpy integers; bools,
        floats, strings are refused); default the smallest square holding
        all features. ``fit`` raises ``ValueError`` naming ``shape`` for
        anything else, for ``H * W < n_features`` and for
        ``H * W > MAX_PIXELS``.
    method : {"pca", "tsne"}, default "pca"
    seed : int, default 0
        Random state for the randomized PCA / TSNE; a non-negative int or
        numpy integer, else ``fit`` raises ``ValueError``.

    Images are ``(n, 1, H, W)``. Fitted attribute ``embedding_``: the
    ``(n_features, 2)`` embedding before scaling to the grid (zeros when
    there is nothing to embed), set by every ``fit``.
    """

    def __init__(self, shape=None, method="pca", seed=0):
        self.shape = shape
        self.method = method
        self.seed = seed

    def _check_shape(self):
        """``self.shape`` as ``(H, W)`` ints, or None; ``ValueError`` naming shape."""
        shape = self.shape
        if shape is None:
            return None
        if isinstance(shape, (str, bytes)) or not hasattr(shape, "__len__") \
                or not hasattr(shape, "__iter__"):
            raise DataError(
                f"shape must be None or a pair (H, W) of positive ints, got {shape!r}")
        if len(shape) != 2:
            raise DataError(
                f"shape must be a pair (H, W) of positive ints, got {len(shape)} "
                f"element(s): {tuple(shape)!r}")
        H, W = shape
        if not (_is_int(H) and _is_int(W)) or H < 1 or W < 1:
            raise DataError(
                f"shape must be a pair (H, W) of positive ints (no floats, bools or "
                f"strings), got {tuple(shape)!r}")
        H, W = int(H), int(W)
        if H * W > MAX_PIXELS:
            raise DataError(
                f"shape={(H, W)} has {H * W} pixels, more than MAX_PIXELS={MAX_PIXELS} "
                "(each image would take H*W*4 bytes); use a smaller grid")
        return H, W

    def _layout(self, X):
        n = X.shape[1]
        shape = self._check_shape()
        seed = _check_seed(self.seed)
        if shape is None:
            side = math.isqrt(n - 1) + 1
            H, W = side, side
        else:
            H, W = shape
            if H * W < n:
                raise DataError(
                    f"shape={(H, W)} has {H * W} pixels, fewer than "
                    f"the {n} features; use at least {math.isqrt(n - 1) + 1}^2")
        if self.method not in ("pca", "tsne"):
            raise DataError(f"method={self.method!r}; valid: 'pca', 'tsne'")
        F = standardized_feature_vectors(X)
        emb = np.zeros((n, 2))
        # All feature vectors identical (e.g. every column constant): nothing to embed, and t-SNE's
        # PCA initialisation would divide by a zero spread (scikit-learn then crashes the process).
        varies = bool(F.size) and float(np.ptp(F, axis=0).max()) > 1e-12
        if n >= 3 and F.shape[1] >= 2 and varies:
            if self.method == "pca":
                from sklearn.decomposition import PCA
                k = min(2, F.shape[1], n)
                emb[:, :k] = PCA(n_components=k, svd_solver="randomized",
                                 random_state=seed).fit_transform(F)
            else:
                from sklearn.manifold import TSNE
                emb = TSNE(n_components=2, perplexity=max(1.0, min(30.0, (n - 1) / 3)),
                           init="pca", random_state=seed,
                           metric="cosine").fit_transform(F).astype(np.float64)
        elif n == 2:
            emb[1] = 1.0
        # emb[:, 0] -> columns, emb[:, 1] -> rows
        coords = np.empty((n, 2))
        for j, (axis, size) in enumerate(((1, H), (0, W))):
            v = emb[:, axis]
            lo, hi = v.min(), v.max()
            coords[:, j] = (v - lo) / (hi - lo) * (size - 1) if hi > lo else (size - 1) / 2
        self.embedding_ = emb
        return _assign_to_pixels(coords, (H, W)), (H, W)
