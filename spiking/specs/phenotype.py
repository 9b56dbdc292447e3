"""Phenotypes of the grammar-based architecture search: parse, size-check, count.

Details: docs/modules.md, section ``spiking.specs.phenotype``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from spiking.errors import SpikingError

__all__ = [
    "PhenotypeError",
    "LayerSpec",
    "LearningSpec",
    "Phenotype",
    "parse_phenotype",
    "LAYER_PARAMS",
    "OPTIMISER_PARAMS",
    "ACTIVATIONS",
]


class PhenotypeError(SpikingError):
    """A phenotype string that cannot be parsed, or a network that does not fit the input length."""


#: Parameters each layer kind must have, with their types.
LAYER_PARAMS: dict[str, dict[str, type]] = {
    "conv": {"num-filters": int, "filter-shape": int, "stride": int, "padding": str, "act": str, "bias": bool},
    "pool-max": {"kernel-size": int, "stride": int, "padding": str},
    "pool-avg": {"kernel-size": int, "stride": int, "padding": str},
    "dropout": {"rate": float},
    "batch-norm": {},
    "fc": {"num-units": int, "act": str, "bias": bool},
}
#: Parameters of each optimiser of the learning block (besides ``batch_size``, ``early_stop``).
OPTIMISER_PARAMS: dict[str, dict[str, type]] = {
    "gradient-descent": {"lr": float, "momentum": float, "decay": float, "nesterov": bool},
    "rmsprop": {"lr": float, "rho": float, "decay": float},
    "adam": {"lr": float, "beta1": float, "beta2": float, "decay": float},
}
LEARNING_COMMON: dict[str, type] = {"batch_size": int, "early_stop": int}
ACTIVATIONS = ("linear", "relu", "sigmoid")
PADDINGS = ("same", "valid")
FEATURE_KINDS = ("conv", "pool-max", "pool-avg", "batch-norm")


def _convert(key: str, raw: str, kind: type) -> Any:
    try:
        if kind is bool:
            if raw not in ("True", "False"):
                raise ValueError
            return raw == "True"
        if kind is int:
            return int(raw)
        if kind is float:
            return float(raw)
        return raw
    except ValueError:
        raise PhenotypeError(f"{key}:{raw}: expected {kind.__name__}") from None


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return repr(value)
    return str(value)


@dataclass(frozen=True)
class LayerSpec:
    """One layer: ``kind`` (a key of :data:`LAYER_PARAMS`) and its parameters."""

    kind: str
    params: dict[str, Any] = field(default_factory=dict)

    def to_string(self) -> str:
        return " ".join([f"layer:{self.kind}"] + [f"{k}:{_fmt(v)}" for k, v in self.params.items()])


@dataclass(frozen=True)
class LearningSpec:
    """The learning block: ``optimiser`` (a key of :data:`OPTIMISER_PARAMS`), its parameters,
    ``batch_size`` (samples) and ``early_stop`` (epochs without validation improvement)."""

    optimiser: str
    params: dict[str, Any]
    batch_size: int
    early_stop: int

    def to_string(self) -> str:
        parts = [f"learning:{self.optimiser}"] + [f"{k}:{_fmt(v)}" for k, v in self.params.items()]
        return " ".join(parts + [f"early_stop:{self.early_stop}", f"batch_size:{self.batch_size}"])


@dataclass(frozen=True)
class Phenotype:
    """A parsed phenotype: the layers in order and the learning block."""

    layers: tuple[LayerSpec, ...]
    learning: LearningSpec

    def to_string(self) -> str:
        return " ".join([layer.to_string() for layer in self.layers] + [self.learning.to_string()])

    def flatten_index(self) -> int:
        """Index of the first ``fc`` layer (where the network flattens); ``len(layers)`` if none."""
        for i, layer in enumerate(self.layers):
            if layer.kind == "fc":
                return i
        return len(self.layers)

    def shapes(self, L: int) -> list[tuple[int, ...]]:
        """Output shape of every layer for input length ``L``: ``(length, channels)`` before
        the flatten, ``(units,)`` after it. Raises :class:`PhenotypeError` where a length drops below 1."""
        if int(L) < 1:
            raise PhenotypeError(f"input length must be >= 1, got {L}")
        n, c = int(L), 1
        flat: int | None = None
        out: list[tuple[int, ...]] = []
        for i, layer in enumerate(self.layers):
            p = layer.params
            if flat is None and layer.kind == "fc":
                flat = n * c
            if flat is not None:
                if layer.kind in FEATURE_KINDS:
                    raise PhenotypeError(f"layer {i} ({layer.kind}) comes after a fully connected layer")
                if layer.kind == "fc":
                    flat = p["num-units"]
                out.append((flat,))
                continue
            if layer.kind == "conv" or layer.kind.startswith("pool"):
                k = p["filter-shape"] if layer.kind == "conv" else p["kernel-size"]
                s = p["stride"]
                if p["padding"] == "valid":
                    if n < k:
                        raise PhenotypeError(
                            f"layer {i} ({layer.kind}, kernel {k}, valid padding) gets length {n} < {k} for L={L}")
                    n = (n - k) // s + 1
                else:
                    n = math.ceil(n / s)
                if layer.kind == "conv":
                    c = p["num-filters"]
            out.append((n, c))
        return out

    def flat_size(self, L: int) -> int:
        """Length of the vector the output layer receives."""
        shapes = self.shapes(L)
        return math.prod(shapes[-1]) if shapes else int(L)

    def count_parameters(self, L: int, n_classes: int) -> int:
        """Number of weights, Keras ``count_params()`` convention (batch-norm: 4 per channel)."""
        shapes = self.shapes(L)
        total, prev = 0, (int(L), 1)
        for layer, shape in zip(self.layers, shapes):
            p = layer.params
            if layer.kind == "conv":
                total += p["filter-shape"] * prev[-1] * p["num-filters"] + (p["num-filters"] if p["bias"] else 0)
            elif layer.kind == "batch-norm":
                total += 4 * prev[-1]
            elif layer.kind == "fc":
                total += math.prod(prev) * p["num-units"] + (p["num-units"] if p["bias"] else 0)
            prev = shape
        return total + math.prod(prev) * n_classes + n_classes

    def count_macs(self, L: int, n_classes: int) -> int:
        """Multiply-accumulates of one inference through the conv and fully connected layers
        (pooling, batch-norm and activations not counted, as in :mod:`spiking.specs.energy`)."""
        shapes = self.shapes(L)
        total, prev = 0, (int(L), 1)
        for layer, shape in zip(self.layers, shapes):
            p = layer.params
            if layer.kind == "conv":
                total += shape[0] * p["num-filters"] * p["filter-shape"] * prev[-1]
            elif layer.kind == "fc":
                total += math.prod(prev) * p["num-units"]
            prev = shape
        return total + math.prod(prev) * n_classes

    def check(self, L: int, n_classes: int, max_params: int | None = None) -> int:
        """Raise :class:`PhenotypeError` unless the network fits input length ``L`` (and, if
        given, has at most ``max_params`` parameters); returns the parameter count."""
        n = self.count_parameters(L, n_classes)
        if max_params is not None and n > max_params:
            raise PhenotypeError(f"{n:,} parameters exceed the limit of {max_params:,}")
        return n


def parse_phenotype(text: str) -> Phenotype:
    """Parse a phenotype string (format in the module docstring).

    Raises :class:`PhenotypeError` naming the token for unknown layer kinds, optimisers
    or parameters, missing or mistyped parameters, values out of their domain, or a
    missing learning block.
    """
    tokens = text.split()
    groups: list[tuple[str, str, list[tuple[str, str]]]] = []
    for tok in tokens:
        key, sep, value = tok.partition(":")
        if not sep or not key or not value:
            raise PhenotypeError(f"token {tok!r} is not key:value")
        if key in ("layer", "learning"):
            groups.append((key, value, []))
        elif not groups:
            raise PhenotypeError(f"token {tok!r} comes before any layer:/learning:")
        else:
            groups[-1][2].append((key, value))
    layers: list[LayerSpec] = []
    learning: LearningSpec | None = None
    for head, name, items in groups:
        seen = dict(items)
        if len(seen) != len(items):
            raise PhenotypeError(f"{head}:{name} repeats a parameter")
        if head == "layer":
            if learning is not None:
                raise PhenotypeError(f"layer:{name} comes after the learning block")
            if name not in LAYER_PARAMS:
                raise PhenotypeError(f"unknown layer kind {name!r}; known: {', '.join(LAYER_PARAMS)}")
            spec = LAYER_PARAMS[name]
            extra = set(seen) - set(spec)
            missing = [k for k in spec if k not in seen]
            if extra or missing:
                raise PhenotypeError(f"layer:{name}: unknown {sorted(extra)} / missing {missing}")
            params = {k: _convert(k, seen[k], t) for k, t in spec.items()}
            _check_layer(name, params)
            layers.append(LayerSpec(name, params))
        else:
            if learning is not None:
                raise PhenotypeError("more than one learning block")
            if name not in OPTIMISER_PARAMS:
                raise PhenotypeError(f"unknown optimiser {name!r}; known: {', '.join(OPTIMISER_PARAMS)}")
            spec = {**OPTIMISER_PARAMS[name], **LEARNING_COMMON}
            extra = set(seen) - set(spec)
            missing = [k for k in spec if k not in seen]
            if extra or missing:
                raise PhenotypeError(f"learning:{name}: unknown {sorted(extra)} / missing {missing}")
            values = {k: _convert(k, seen[k], t) for k, t in spec.items()}
            bs, es = values.pop("batch_size"), values.pop("early_stop")
            if bs < 1 or es < 1:
                raise PhenotypeError(f"learning:{name}: batch_size and early_stop must be >= 1")
            _check_learning(name, values)
            learning = LearningSpec(name, values, bs, es)
    if learning is None:
        raise PhenotypeError("the phenotype has no learning block (learning:...)")
    return Phenotype(tuple(layers), learning)


#: Domains of the optimiser parameters: (low, high, high included). lr: step size; momentum: SGD
#: (Keras accepts [0, 1]); beta1/beta2 (Adam) and rho (RMSprop) are decay rates of moving averages,
#: which must stay below 1; decay: the old Keras learning-rate decay, lr / (1 + decay * step).
_LEARNING_DOMAINS = {"momentum": (0.0, 1.0, True), "beta1": (0.0, 1.0, False), "beta2": (0.0, 1.0, False),
                     "rho": (0.0, 1.0, False)}


def _check_learning(name: str, values: dict[str, Any]) -> None:
    lr, decay = values["lr"], values.get("decay", 0.0)
    if not (math.isfinite(lr) and lr > 0):
        raise PhenotypeError(f"learning:{name} lr must be a finite number > 0, got {lr}")
    if not (math.isfinite(decay) and decay >= 0):
        raise PhenotypeError(f"learning:{name} decay must be a finite number >= 0, got {decay}")
    for key, (lo, hi, closed) in _LEARNING_DOMAINS.items():
        if key in values:
            v = values[key]
            if not (math.isfinite(v) and lo <= v and (v <= hi if closed else v < hi)):
                raise PhenotypeError(f"learning:{name} {key} must be in [{lo:g}, {hi:g}{']' if closed else ')'}, "
                                     f"got {v}")


def _check_layer(kind: str, p: dict[str, Any]) -> None:
    for key in ("num-filters", "filter-shape", "kernel-size", "stride", "num-units"):
        if key in p and p[key] < 1:
            raise PhenotypeError(f"layer:{kind} {key} must be >= 1, got {p[key]}")
    if "padding" in p and p["padding"] not in PADDINGS:
        raise PhenotypeError(f"layer:{kind} padding must be one of {PADDINGS}, got {p['padding']!r}")
    if "act" in p and p["act"] not in ACTIVATIONS:
        raise PhenotypeError(f"layer:{kind} act must be one of {ACTIVATIONS}, got {p['act']!r}")
    if kind == "dropout" and not 0.0 <= p["rate"] < 1.0:
        raise PhenotypeError(f"layer:dropout rate must be in [0, 1), got {p['rate']}")
