"""CNN_PT 2-D: the study's CNN_PT applied to images, and its sizes.

Details: docs/modules.md, section ``spiking.models.cnn2d``.
"""

from __future__ import annotations

import random
from typing import Any, Mapping

import torch
from torch import nn

from spiking.models import ModelError
from spiking.models.cnn import (
    MIN_S1,
    PRESETS,
    ArchitectureError,
    CNN1d,
    CNNArch,
    as_int,
    coerce_arch,
    derive_architecture,
    stage_lengths,
)
from spiking.specs.names import MIN_SIDE_2D

__all__ = [
    "MIN_SIDE_2D",
    "CNN2d",
    "stage_shapes",
    "derive_architecture_2d",
    "preset_2d",
    "add_cnn2d_layers",
]

if MIN_SIDE_2D != MIN_S1 + 1:  # ``wd1 = 2, h1 = 1`` gives first-stage side ``min(H, W) - 1 >= MIN_S1``
    raise ImportError(f"spiking.specs.names.MIN_SIDE_2D ({MIN_SIDE_2D}) must be MIN_S1 + 1 ({MIN_S1 + 1})")


def stage_shapes(
    H: int, W: int, arch: CNNArch | Mapping[str, Any]
) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int]]:
    """Spatial shapes ``((h1, w1), (h2, w2), (h3, w3))`` after each conv/pool stage.

    Per axis ``s_i = floor((s_{i-1} - wd_i + 1) / h_i)`` (see
    :func:`~spiking.models.cnn.stage_lengths`). Raises :class:`ArchitectureError`
    naming the axis (height/width), the stage and the offending size when any
    stage side would drop below 1.
    """
    arch = coerce_arch(arch)
    per_axis = []
    for axis, n in (("height", H), ("width", W)):
        try:
            per_axis.append(stage_lengths(n, arch))
        except ArchitectureError as e:
            raise ArchitectureError(f"image {H}x{W}, {axis} axis: {e}") from None
    hs, ws = per_axis
    return ((hs[0], ws[0]), (hs[1], ws[1]), (hs[2], ws[2]))


def derive_architecture_2d(
    H: int,
    W: int,
    *,
    w1: int,
    wd1: int,
    h1: int,
    w2: int,
    w3: int,
    rng: int | random.Random,
) -> CNNArch:
    """Complete ``w1, wd1, h1, w2, w3`` for an ``H x W`` image with the study's rule.

    The rule of :func:`~spiking.models.cnn.derive_architecture` (including its
    documented shrinking of ``h1`` then ``wd1`` when they do not fit) is applied
    to the smaller side ``min(H, W)``; the result is then valid on both axes
    (checked with :func:`stage_shapes`). ``rng``: int seed (deterministic) or a
    ``random.Random`` that is advanced.

    Raises :class:`ArchitectureError` when a value lies outside the search space
    or when ``min(H, W) < MIN_SIDE_2D`` (= 6).
    """
    H, W = as_int("H", H), as_int("W", W)
    side = min(H, W)
    if side < MIN_SIDE_2D:
        raise ArchitectureError(
            f"image {H}x{W} is too small: the dependent-size rule needs a first-stage "
            f"side >= {MIN_S1}, which requires min(H, W) >= {MIN_SIDE_2D}"
        )
    arch = derive_architecture(side, w1=w1, wd1=wd1, h1=h1, w2=w2, w3=w3, rng=rng)
    stage_shapes(H, W, arch)  # cannot fail (monotone in the side); cheap safety net
    return arch


def preset_2d(name: str, H: int, W: int, seed: int = 0) -> CNNArch:
    """A published CNN_PT preset (``cnn_pt1``, ``cnn_pt2``) adapted to an ``H x W`` image.

    ``w1, wd1, h1, w2, w3`` are the published values; ``wd1``/``h1`` shrink (``h1``
    first, down to 1, then ``wd1``, down to 2) when the smaller image side is too
    short for them, and ``wd2, h2, wd3, h3`` are redrawn with
    :func:`derive_architecture_2d` seeded with ``seed`` (deterministic for
    ``(name, H, W, seed)``). The published dependent sizes are never kept: they
    were found for a 1-D length of 1881, not for images.

    Raises ValueError for an unknown name and :class:`ArchitectureError` when
    ``min(H, W) < MIN_SIDE_2D`` (= 6).
    """
    if name not in PRESETS:
        raise ModelError(f"unknown preset {name!r}; valid names: {sorted(PRESETS)}")
    pub = PRESETS[name]
    return derive_architecture_2d(
        H, W, w1=pub.w1, wd1=pub.wd1, h1=pub.h1, w2=pub.w2, w3=pub.w3, rng=seed
    )


def add_cnn2d_layers(
    module: nn.Module, arch: CNNArch, shapes: tuple[tuple[int, int], ...], n_outputs: int
) -> None:
    """Attach ``conv1, pool1, conv2, pool2, conv3, pool3, fc`` (2-D) and ``flat_features``.

    Same names as :func:`~spiking.models.cnn.add_cnn_layers`, shared by
    :class:`CNN2d` and ``SpikingCNN2d`` so their parameters line up for weight transfer.
    """
    module.conv1 = nn.Conv2d(1, arch.w1, arch.wd1)
    module.pool1 = nn.MaxPool2d(arch.h1, arch.h1)
    module.conv2 = nn.Conv2d(arch.w1, arch.w2, arch.wd2)
    module.pool2 = nn.MaxPool2d(arch.h2, arch.h2)
    module.conv3 = nn.Conv2d(arch.w2, arch.w3, arch.wd3)
    module.pool3 = nn.MaxPool2d(arch.h3, arch.h3)
    h3, w3 = shapes[2]
    module.flat_features = arch.w3 * h3 * w3
    module.fc = nn.Linear(module.flat_features, n_outputs)


class CNN2d(nn.Module):
    """CNN_PT for images: three [Conv2d -> ReLU -> MaxPool2d] stages and a linear classifier.

    Input ``(B, 1, H, W)`` float, output logits ``(B, n_classes)``. Attributes
    mirror :class:`~spiking.models.cnn.CNN1d`: ``conv1 .. pool3, fc,
    flat_features, arch, n_classes``, with ``shapes`` (per-stage ``(h, w)``, from
    :func:`stage_shapes`) in place of ``lengths``. Because the layer names match,
    :func:`spiking.models.conversion.activation_scales` also works on it.

    Raises :class:`ArchitectureError` (architecture does not fit the image) and
    ValueError (``n_classes < 1``; wrong input shape in ``forward``).
    """

    def __init__(self, H: int, W: int, arch: CNNArch | Mapping[str, Any], n_classes: int):
        super().__init__()
        arch = coerce_arch(arch)
        n_classes = as_int("n_classes", n_classes)
        if n_classes < 1:
            raise ModelError(f"n_classes must be >= 1, got {n_classes}")
        self.shapes = stage_shapes(H, W, arch)
        self.H, self.W = int(H), int(W)
        self.arch = arch
        self.n_classes = n_classes
        add_cnn2d_layers(self, arch, self.shapes, n_classes)

    def check_input(self, x: torch.Tensor) -> None:
        if x.dim() != 4 or x.size(1) != 1 or x.size(2) != self.H or x.size(3) != self.W:
            raise ModelError(
                f"expected input of shape (B, 1, {self.H}, {self.W}), got {tuple(x.shape)}"
            )

    # Same stages as the 1-D network: (B, 1, H, W) -> (B, n_classes) logits.
    forward = CNN1d.forward
    activations = CNN1d.activations  # ReLU: QCFS is 1-D only

    def extra_repr(self) -> str:
        return f"H={self.H}, W={self.W}, stage_shapes={self.shapes}, flat_features={self.flat_features}"
