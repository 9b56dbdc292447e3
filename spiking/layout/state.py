"""A fitted layout as plain data, so it travels with the networks trained on it.

Every saved network (``cnn.pt``, ``snn*.pt``, a search trial's ``checkpoint.pt``) and every
run folder (``layout.json``) holds :func:`layout_state` of the layout its inputs were made
with; :func:`layout_from_state` rebuilds it, fitted, without the training data, so that
evaluation places the features exactly as in training.

The state is JSON-safe: ``{"name", "params", "shape", "positions", "n_features"}`` with
``positions[i]`` the flat position of feature ``i`` (row-major for 2-D) and ``shape`` the
image shape without batch/channel axes, ``[L]`` or ``[H, W]``.
"""

from __future__ import annotations

import numpy as np

from . import LAYOUTS, make_layout

#: Layouts whose images are 2-D ``(n, 1, H, W)``; the others give ``(n, 1, L)``.
LAYOUTS_2D = ("square", "embedding_2d")


def layout_options(name: str, *, shape=None, seed: int = 0) -> dict:
    """Constructor keywords of layout ``name`` from the run settings ``shape`` ((H, W) or None)
    and ``seed``: ``random`` and ``embedding_2d`` take the seed, only ``embedding_2d`` a shape.

    Raises:
        ValueError: unknown layout, or a shape for a layout that has none to choose.
    """
    if name not in LAYOUTS:
        raise ValueError(f"unknown layout {name!r}; valid: {', '.join(sorted(LAYOUTS))}")
    kw: dict = {}
    if name in ("random", "embedding_2d"):
        kw["seed"] = seed
    if shape is not None:
        if name != "embedding_2d":
            raise ValueError(f"an image shape is chosen only for the embedding_2d layout, not {name!r} "
                             "(square uses the smallest square, the 1-D layouts one strip)")
        kw["shape"] = tuple(shape)
    return kw


def fit_layout(name: str, X_train: np.ndarray, *, shape=None, seed: int = 0):
    """Fit layout ``name`` on the training rows ``X_train`` (n, n_features) only; returns it fitted.

    Raises:
        ValueError: see :func:`layout_options` and the layout's ``fit``.
    """
    return make_layout(name, **layout_options(name, shape=shape, seed=seed)).fit(X_train)


def _json_value(v):
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.floating,)):
        return float(v)
    if isinstance(v, tuple):
        return [_json_value(x) for x in v]
    return v


def layout_state(layout) -> dict:
    """JSON-safe description of a fitted layout (see the module doc).

    Raises:
        ValueError: ``layout`` is not one of :data:`spiking.layout.LAYOUTS`, or not fitted.
    """
    name = next((k for k, cls in LAYOUTS.items() if type(layout) is cls), None)
    if name is None:
        raise ValueError(f"not a spiking layout: {type(layout).__name__}")
    if not hasattr(layout, "positions_"):
        raise ValueError(f"the {name} layout is not fitted")
    return {"name": name, "params": {k: _json_value(v) for k, v in layout.get_params().items()},
            "shape": [int(s) for s in layout.shape_], "positions": [int(p) for p in layout.positions_],
            "n_features": int(layout.n_features_in_)}


def layout_from_state(state: dict):
    """The fitted layout described by ``state`` (from :func:`layout_state`).

    Raises:
        ValueError: unknown name, or positions that are not an injection into the shape.
    """
    try:
        name, params = state["name"], dict(state.get("params") or {})
        shape = tuple(int(s) for s in state["shape"])
        positions = np.asarray(state["positions"], dtype=np.int64)
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f"not a saved layout ({type(e).__name__}: {e})") from None
    if name == "embedding_2d" and params.get("shape") is not None:
        params["shape"] = tuple(params["shape"])
    layout = make_layout(name, **params)
    size = int(np.prod(shape)) if shape else 0
    n = len(positions)
    if (not shape or len(shape) > 2 or n < 1 or positions.ndim != 1 or positions.min() < 0
            or positions.max() >= size or len(np.unique(positions)) != n):
        raise ValueError(f"saved {name} layout is damaged: {n} positions do not map one-to-one into {shape}")
    fmap = np.full(size, -1, dtype=np.int64)
    fmap[positions] = np.arange(n)
    layout.positions_, layout.shape_ = positions, shape
    layout.feature_map_ = fmap.reshape(shape)
    layout.n_features_in_ = n
    return layout


def identity_state(n_features: int) -> dict:
    """The state of the identity layout (file order, 1-D) over ``n_features`` features: what a
    network saved before layouts existed was trained on."""
    return {"name": "identity", "params": {}, "shape": [int(n_features)],
            "positions": list(range(int(n_features))), "n_features": int(n_features)}


def same_layout(a: dict, b: dict) -> bool:
    """True when two layout states place every feature at the same position of the same shape."""
    return list(a["shape"]) == list(b["shape"]) and list(a["positions"]) == list(b["positions"])
