"""CNN_PT: the 1-D convolutional network of the original study, and its sizes.

Details: docs/modules.md, section ``spiking.models.cnn``.
"""

from __future__ import annotations

import operator
import random
from dataclasses import asdict, dataclass, fields
from typing import Any, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from spiking.errors import SpikingError
from spiking.models import ModelError
from spiking.models.qcfs import QCFS
from spiking.specs.names import CNN_ACTIVATIONS, QCFS_LEVELS

__all__ = [
    "ArchitectureError",
    "CNNArch",
    "CNN1d",
    "PRESETS",
    "PRESET_L",
    "SEARCH_SPACE",
    "MIN_S1",
    "stage_lengths",
    "derive_architecture",
    "preset",
]

#: Input length (number of miRNAs) the published presets were found for.
PRESET_L = 1881

#: The study's CNN search space (inclusive integer ranges).
SEARCH_SPACE: dict[str, tuple[int, int]] = {
    "w1": (2, 256),
    "w2": (2, 256),
    "w3": (2, 256),
    "wd1": (4, 64),
    "h1": (4, 64),
}

#: Smallest first-stage length for which the dependent-size rule can succeed
#: (wd2 = h2 = 2 gives s2 = floor((s1 - 1) / 2) >= 2 only when s1 >= 5).
MIN_S1 = 5


class ArchitectureError(SpikingError):
    """An architecture whose stages cannot all keep a length >= 1, or invalid sizes."""


_FIELDS = ("w1", "wd1", "h1", "w2", "wd2", "h2", "w3", "wd3", "h3")


def as_int(name: str, value: Any) -> int:
    if isinstance(value, bool):
        raise ArchitectureError(f"{name} must be an integer, got {value!r}")
    try:
        return operator.index(value)
    except TypeError:
        raise ArchitectureError(f"{name} must be an integer, got {value!r}") from None


@dataclass(frozen=True)
class CNNArch:
    """Sizes of the three conv/pool stages.

    ``w`` = conv output channels, ``wd`` = conv kernel width, ``h`` = max-pool
    size (= stride). All must be integers >= 1; whether they fit a given input
    length is checked by :func:`stage_lengths`.
    """

    w1: int
    wd1: int
    h1: int
    w2: int
    wd2: int
    h2: int
    w3: int
    wd3: int
    h3: int

    def __post_init__(self) -> None:
        for f in fields(self):
            v = as_int(f.name, getattr(self, f.name))
            if v < 1:
                raise ArchitectureError(f"{f.name} must be >= 1, got {v}")
            object.__setattr__(self, f.name, v)  # normalise numpy ints to int

    def as_dict(self) -> dict[str, int]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "CNNArch":
        keys = set(d)
        missing = [k for k in _FIELDS if k not in keys]
        unknown = sorted(keys - set(_FIELDS))
        if missing or unknown:
            raise ArchitectureError(
                f"CNNArch.from_dict: missing keys {missing}, unknown keys {unknown}; "
                f"expected exactly {list(_FIELDS)}"
            )
        return cls(**{k: d[k] for k in _FIELDS})


def coerce_arch(arch: CNNArch | Mapping[str, Any]) -> CNNArch:
    if isinstance(arch, CNNArch):
        return arch
    if isinstance(arch, Mapping):
        return CNNArch.from_dict(arch)
    raise TypeError(f"arch must be a CNNArch or a mapping, got {type(arch).__name__}")


def stage_lengths(L: int, arch: CNNArch | Mapping[str, Any]) -> tuple[int, int, int]:
    """Lengths after each [Conv1d(wd_i) -> MaxPool1d(h_i, stride h_i)] stage.

    ``s_i = floor((s_{i-1} - wd_i + 1) / h_i)`` with ``s_0 = L``. Raises
    :class:`ArchitectureError` naming the stage, the kernel or pool size and the
    input length when a stage would have length < 1.
    """
    arch = coerce_arch(arch)
    L = as_int("L", L)
    if L < 1:
        raise ArchitectureError(f"input length L must be >= 1, got {L}")
    lengths = []
    n = L
    for i in (1, 2, 3):
        wd = getattr(arch, f"wd{i}")
        h = getattr(arch, f"h{i}")
        conv = n - wd + 1
        if conv < 1:
            raise ArchitectureError(
                f"stage {i}: conv kernel wd{i}={wd} is longer than its input "
                f"length {n} (L={L})"
            )
        if conv < h:
            raise ArchitectureError(
                f"stage {i}: max-pool size h{i}={h} is larger than its input "
                f"length {conv} after the conv (stage input length {n}, L={L})"
            )
        n = conv // h
        lengths.append(n)
    return (lengths[0], lengths[1], lengths[2])


def _make_rng(rng: int | random.Random) -> random.Random:
    if isinstance(rng, random.Random):
        return rng
    if isinstance(rng, bool) or not isinstance(rng, int):
        try:
            rng = operator.index(rng)
        except TypeError:
            raise TypeError(
                f"rng must be an int seed or a random.Random, got {type(rng).__name__}"
            ) from None
    return random.Random(rng)


def derive_architecture(
    L: int,
    *,
    w1: int,
    wd1: int,
    h1: int,
    w2: int,
    w3: int,
    rng: int | random.Random,
) -> CNNArch:
    """Complete ``w1, wd1, h1, w2, w3`` with the study's dependent-size rule.

    With ``s1 = floor((L - wd1 + 1) / h1)``:

    * draw ``h2, wd2`` uniformly in ``[2, s1]`` until
      ``s2 = floor((s1 - wd2 + 1) / h2) >= 2``;
    * if ``s2 == 2``: ``h3 = 1, wd3 = 2``; else ``wd3`` uniform in ``[2, s2]``,
      ``h3`` uniform in ``[2, wd3]``, and ``h3 = 1`` when ``s2 == wd3`` or
      ``s2 - wd3 < h3``.

    The rule needs ``s1 >= 5``. **Adjustment (not in the study):** when ``wd1``
    and ``h1`` are too large for ``L`` (``s1 < 5``), ``h1`` is decreased one at
    a time (not below 1), then ``wd1`` (not below 2), until ``s1 >= 5``; the
    returned architecture carries the adjusted values, so callers can compare
    with what they asked for. For ``L >= 64`` and any values in the search
    space (``w`` in [2, 256], ``wd1``, ``h1`` in [4, 64]) a valid architecture is
    always returned. Smaller ``L`` works as long as ``L >= 6``
    (``wd1 = 2, h1 = 1`` then gives ``s1 >= 5``).

    ``rng`` is an int seed (a fresh ``random.Random(seed)``; the result is then
    deterministic) or a ``random.Random`` that is advanced.

    Raises :class:`ArchitectureError` when a value lies outside the search
    space or when ``L < 6`` (no architecture can satisfy the rule).
    """
    L = as_int("L", L)
    given = {"w1": w1, "wd1": wd1, "h1": h1, "w2": w2, "w3": w3}
    vals = {}
    for name, v in given.items():
        v = as_int(name, v)
        lo, hi = SEARCH_SPACE[name]
        if not lo <= v <= hi:
            raise ArchitectureError(f"{name}={v} is outside the search space [{lo}, {hi}]")
        vals[name] = v
    min_L = 2 + MIN_S1 - 1  # wd1 = 2, h1 = 1
    if L < min_L:
        raise ArchitectureError(
            f"L={L} is too short: the dependent-size rule needs a first-stage "
            f"length >= {MIN_S1}, which requires L >= {min_L}"
        )
    r = _make_rng(rng)

    wd1, h1 = vals["wd1"], vals["h1"]

    def _s1() -> int:
        return (L - wd1 + 1) // h1

    while _s1() < MIN_S1 and h1 > 1:
        h1 -= 1
    while _s1() < MIN_S1 and wd1 > 2:
        wd1 -= 1
    s1 = _s1()
    assert s1 >= MIN_S1  # guaranteed by L >= min_L

    # Rejection sampling as in the study; the acceptance probability is at
    # least 1/16 (s1 = 5) and about 1/4 for large s1, so this ends quickly.
    while True:
        h2 = r.randint(2, s1)
        wd2 = r.randint(2, s1)
        s2 = (s1 - wd2 + 1) // h2
        if s2 >= 2:
            break

    if s2 == 2:
        h3, wd3 = 1, 2
    else:
        wd3 = r.randint(2, s2)
        h3 = r.randint(2, wd3)
        if s2 == wd3 or s2 - wd3 < h3:
            h3 = 1

    arch = CNNArch(
        w1=vals["w1"], wd1=wd1, h1=h1,
        w2=vals["w2"], wd2=wd2, h2=h2,
        w3=vals["w3"], wd3=wd3, h3=h3,
    )
    stage_lengths(L, arch)  # cannot fail by construction; cheap safety net
    return arch


#: Published CNN_PT presets (found for L = 1881, see reference-results.md).
PRESETS: dict[str, CNNArch] = {
    "cnn_pt1": CNNArch(w1=142, wd1=51, h1=8, w2=226, wd2=101, h2=58, w3=220, wd3=2, h3=1),
    "cnn_pt2": CNNArch(w1=12, wd1=35, h1=12, w2=85, wd2=38, h2=56, w3=229, wd3=2, h3=1),
}


def preset(name: str, L: int, seed: int = 0, *, keep_published: bool = True) -> CNNArch:
    """A published preset adapted to input length ``L``.

    ``w1, wd1, h1, w2, w3`` are the published values (``wd1``/``h1`` only shrink
    if ``L`` is too short for them, see :func:`derive_architecture`); ``wd2, h2,
    wd3, h3`` are regenerated with :func:`derive_architecture` seeded with
    ``seed``, so the result is deterministic for ``(name, L, seed)``.

    When ``keep_published`` is true (default) and ``L`` equals the length the
    presets were found for (:data:`PRESET_L` = 1881), the published architecture
    is returned unchanged (the seed is then not used).
    """
    if name not in PRESETS:
        raise ModelError(f"unknown preset {name!r}; valid names: {sorted(PRESETS)}")
    pub = PRESETS[name]
    L = as_int("L", L)
    if keep_published and L == PRESET_L:
        return pub
    return derive_architecture(
        L, w1=pub.w1, wd1=pub.wd1, h1=pub.h1, w2=pub.w2, w3=pub.w3, rng=seed
    )


def add_cnn_layers(module: nn.Module, arch: CNNArch, lengths: tuple[int, int, int], n_outputs: int) -> None:
    """Attach CNN_PT's layers to ``module``: ``conv1, pool1, conv2, pool2, conv3, pool3, fc``
    (Conv1d without padding, stride 1; MaxPool1d with stride = size) and ``flat_features``.

    Shared by ``CNN1d`` and the spiking version so their parameters line up for weight transfer.
    """
    module.conv1 = nn.Conv1d(1, arch.w1, arch.wd1)
    module.pool1 = nn.MaxPool1d(arch.h1, arch.h1)
    module.conv2 = nn.Conv1d(arch.w1, arch.w2, arch.wd2)
    module.pool2 = nn.MaxPool1d(arch.h2, arch.h2)
    module.conv3 = nn.Conv1d(arch.w2, arch.w3, arch.wd3)
    module.pool3 = nn.MaxPool1d(arch.h3, arch.h3)
    module.flat_features = arch.w3 * lengths[2]
    module.fc = nn.Linear(module.flat_features, n_outputs)


class CNN1d(nn.Module):
    """CNN_PT: three [Conv1d -> ReLU -> MaxPool1d] stages and a linear classifier.

    Input ``(B, 1, L)`` float, output logits ``(B, n_classes)``. The architecture
    is validated with :func:`stage_lengths` at construction. With ``activation="qcfs"`` each stage
    is [Conv1d -> MaxPool1d -> QCFS(levels)] instead (:mod:`spiking.models.qcfs`, Bu et al. 2022),
    the same function as Conv1d -> QCFS -> MaxPool1d (QCFS is non-decreasing) in the order of the
    spiking network it converts into (pooled input currents, then the neurons).

    Raises:
        ModelError: ``n_classes < 1``, unknown activation, levels out of range; ArchitectureError.
    """

    def __init__(self, L: int, arch: CNNArch | Mapping[str, Any], n_classes: int, *,
                 activation: str = "relu", levels: int = QCFS_LEVELS):
        super().__init__()
        arch = coerce_arch(arch)
        n_classes = as_int("n_classes", n_classes)
        if n_classes < 1:
            raise ModelError(f"n_classes must be >= 1, got {n_classes}")
        if activation not in CNN_ACTIVATIONS:
            raise ModelError(f"activation must be one of {CNN_ACTIVATIONS}, got {activation!r}")
        self.lengths = stage_lengths(L, arch)
        self.L = int(L)
        self.arch = arch
        self.n_classes = n_classes
        self.activation = activation
        self.levels = int(levels)
        add_cnn_layers(self, arch, self.lengths, n_classes)
        if activation == "qcfs":
            self.act1, self.act2, self.act3 = QCFS(levels), QCFS(levels), QCFS(levels)

    def check_input(self, x: torch.Tensor) -> None:
        if x.dim() != 3 or x.size(1) != 1 or x.size(2) != self.L:
            raise ModelError(
                f"expected input of shape (B, 1, {self.L}), got {tuple(x.shape)}"
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        # activation after pooling: for ReLU the same numbers as before it (max-pooling and ReLU commute)
        act1, act2, act3 = self.activations()
        x = act1(self.pool1(self.conv1(x)))
        x = act2(self.pool2(self.conv2(x)))
        x = act3(self.pool3(self.conv3(x)))
        return self.fc(torch.flatten(x, 1))

    def activations(self) -> tuple:
        """The three stages' activations: the QCFS modules ``act1..act3`` when the network has them,
        else ``F.relu``."""
        return tuple(getattr(self, f"act{i}", F.relu) for i in (1, 2, 3))

    def extra_repr(self) -> str:
        return (f"L={self.L}, stage_lengths={self.lengths}, flat_features={self.flat_features}"
                + (f", activation='qcfs', levels={self.levels}" if self.activation == "qcfs" else ""))


def count_parameters(module: nn.Module) -> int:
    """Number of parameters (trainable or not) of a module."""
    return sum(p.numel() for p in module.parameters())


__all__.append("count_parameters")
