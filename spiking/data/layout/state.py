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

from spiking.data.layout import LAYOUTS, make_layout
from spiking.data.layout.transforms import MAX_PIXELS
from spiking.data import DataError

#: Layouts whose images are 2-D ``(n, 1, H, W)``; the others give ``(n, 1, L)``.
LAYOUTS_2D = ("square", "embedding_2d")
#: Largest layout seed: numpy's ``default_rng`` takes any, scikit-learn's ``random_state`` at most 2**32 - 1.
MAX_SEED = 2**32 - 1


def layout_options(name: str, *, shape=None, seed: int = 0) -> dict:
    """Constructor keywords of layout ``name`` from the run settings ``shape`` ((H, W) or None)
    and ``seed``: ``random`` and ``embedding_2d`` take the seed, only ``embedding_2d`` a shape.

    Raises:
        ValueError: unknown layout, a seed outside [0, 2**32 - 1], a shape for a layout that has none
            to choose, or a shape that is not two positive ints with at most ``MAX_PIXELS`` pixels.
    """
    if not isinstance(name, str) or name not in LAYOUTS:
        raise DataError(f"unknown layout {name!r}; valid: {', '.join(sorted(LAYOUTS))}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= int(seed) <= MAX_SEED:
        raise DataError(f"layout seed must be an integer in [0, {MAX_SEED}] (numpy's and scikit-learn's seed "
                         f"range), got {seed!r}")
    kw: dict = {}
    if name in ("random", "embedding_2d"):
        kw["seed"] = int(seed)
    if shape is not None:
        if name != "embedding_2d":
            raise DataError(f"an image shape is chosen only for the embedding_2d layout, not {name!r} "
                             "(square uses the smallest square, the 1-D layouts one strip)")
        shape = tuple(shape)
        if len(shape) != 2 or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= 1
                                      for v in shape):
            raise DataError(f"image shape must be two positive integers (H, W), got {shape!r}")
        if int(shape[0]) * int(shape[1]) > MAX_PIXELS:
            raise DataError(f"image shape {shape[0]}x{shape[1]} has more than {MAX_PIXELS:,} pixels "
                             "(spiking.data.layout.transforms.MAX_PIXELS)")
        kw["shape"] = (int(shape[0]), int(shape[1]))
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
        ValueError: ``layout`` is not one of :data:`spiking.data.layout.LAYOUTS`, or not fitted.
    """
    name = next((k for k, cls in LAYOUTS.items() if type(layout) is cls), None)
    if name is None:
        raise DataError(f"not a spiking layout: {type(layout).__name__}")
    if not hasattr(layout, "positions_"):
        raise DataError(f"the {name} layout is not fitted")
    return {"name": name, "params": {k: _json_value(v) for k, v in layout.get_params().items()},
            "shape": [int(s) for s in layout.shape_], "positions": [int(p) for p in layout.positions_],
            "n_features": int(layout.n_features_in_)}


def layout_from_state(state: dict):
    """The fitted layout described by ``state`` (from :func:`layout_state`).

    Raises:
        ValueError: not a dict, unknown name or parameters, non-integer positions, an image over
            ``MAX_PIXELS`` pixels, positions that are not an injection into the shape, or a
            ``n_features`` that is not the number of positions.
    """
    if not isinstance(state, dict):
        raise DataError(f"not a saved layout: {type(state).__name__}, not a JSON object")
    try:
        name, params = state["name"], dict(state.get("params") or {})
        raw_shape, raw_pos = list(state["shape"]), list(state["positions"])
    except (KeyError, TypeError, ValueError) as e:
        raise DataError(f"not a saved layout ({type(e).__name__}: {e})") from None
    ints = lambda xs: all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in xs)  # noqa: E731
    if not ints(raw_shape) or not ints(raw_pos):
        raise DataError(f"saved {name} layout is damaged: its shape and positions must be integers")
    shape = tuple(int(v) for v in raw_shape)
    if not 1 <= len(shape) <= 2 or min(shape) < 1 or int(np.prod(shape)) > MAX_PIXELS:
        raise DataError(f"saved {name} layout is damaged: image shape {list(shape)} (1 or 2 positive sizes, at most "
                         f"{MAX_PIXELS:,} pixels)")
    if name == "embedding_2d" and params.get("shape") is not None:
        params["shape"] = tuple(params["shape"])
    try:
        layout = make_layout(name, **params)
    except TypeError as e:
        raise DataError(f"saved {name} layout has unknown parameters ({e})") from None
    positions = np.asarray(raw_pos, dtype=np.int64)
    size, n = int(np.prod(shape)), len(positions)
    if n < 1 or positions.min() < 0 or positions.max() >= size or len(np.unique(positions)) != n:
        raise DataError(f"saved {name} layout is damaged: {n} positions do not map one-to-one into {list(shape)}")
    if state.get("n_features", n) != n:
        raise DataError(f"saved {name} layout is damaged: n_features {state.get('n_features')!r} but {n} positions")
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
