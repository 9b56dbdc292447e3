"""CNN_PT and its spiking version for an input shape: 1-D ``(L,)`` or 2-D ``(H, W)``.

The training, search and evaluation code builds every network through these functions, so a
layout (``spiking.data.layout``) that gives 2-D images gets :class:`~spiking.models.cnn2d.CNN2d` /
:class:`~spiking.models.snn2d.SpikingCNN2d` and a 1-D strip gets
:class:`~spiking.models.cnn.CNN1d` / :class:`~spiking.models.snn.SpikingCNN1d`.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from torch import nn

from spiking.models import ModelError
from spiking.models.cnn import CNN1d, CNNArch, derive_architecture, preset, stage_lengths
from spiking.models.cnn2d import CNN2d, derive_architecture_2d, preset_2d, stage_shapes
from spiking.models.snn import SpikingCNN1d, transfer_weights
from spiking.models.snn2d import SpikingCNN2d, transfer_weights_2d
from spiking.specs.names import QCFS_LEVELS

__all__ = ["input_shape_of", "preset_for", "derive_for", "check_arch", "build_cnn", "build_spiking_cnn",
           "transfer_weights_any", "SPIKING_TYPES", "CNN_TYPES"]

CNN_TYPES = (CNN1d, CNN2d)
SPIKING_TYPES = (SpikingCNN1d, SpikingCNN2d)


def input_shape_of(shape: Sequence[int]) -> tuple[int, ...]:
    """``shape`` as a tuple of one (L) or two (H, W) positive ints.

    Raises:
        ValueError: any other length or a value < 1.
    """
    try:
        out = tuple(int(s) for s in shape)
    except (TypeError, ValueError):
        raise ModelError(f"input shape must be (L,) or (H, W), got {shape!r}") from None
    if len(out) not in (1, 2) or min(out) < 1:
        raise ModelError(f"input shape must be (L,) or (H, W) of positive sizes, got {shape!r}")
    return out


def preset_for(name: str, shape: Sequence[int], seed: int = 0) -> CNNArch:
    """A CNN_PT preset for the input shape: :func:`~spiking.models.cnn.preset` (1-D) or
    :func:`~spiking.models.cnn2d.preset_2d` (2-D).

    Raises:
        ValueError: unknown preset; ArchitectureError (a ValueError) when it cannot fit.
    """
    shape = input_shape_of(shape)
    return preset(name, shape[0], seed=seed) if len(shape) == 1 else preset_2d(name, *shape, seed=seed)


def derive_for(shape: Sequence[int], *, rng, **sizes: int) -> CNNArch:
    """Searched ``w1, wd1, h1, w2, w3`` completed with the study's dependent-size rule for the
    input shape (:func:`~spiking.models.cnn.derive_architecture` or its 2-D version)."""
    shape = input_shape_of(shape)
    if len(shape) == 1:
        return derive_architecture(shape[0], rng=rng, **sizes)
    return derive_architecture_2d(*shape, rng=rng, **sizes)


def check_arch(shape: Sequence[int], arch: CNNArch | Mapping[str, Any]) -> None:
    """Raise ArchitectureError when ``arch`` does not fit the input shape (every stage >= 1)."""
    shape = input_shape_of(shape)
    if len(shape) == 1:
        stage_lengths(shape[0], arch)
    else:
        stage_shapes(*shape, arch)


def build_cnn(shape: Sequence[int], arch: CNNArch | Mapping[str, Any], n_classes: int, *,
              activation: str = "relu", levels: int = QCFS_LEVELS) -> nn.Module:
    """``CNN1d(L, ...)`` or ``CNN2d(H, W, ...)``: input ``(B, 1, *shape)``, logits ``(B, n_classes)``.
    ``activation``: ``relu`` or ``qcfs`` with ``levels`` (:mod:`spiking.models.qcfs`, 1-D only).

    Raises:
        ValueError: ``qcfs`` for a 2-D input, and the models' own checks.
    """
    shape = input_shape_of(shape)
    if len(shape) == 1:
        return CNN1d(shape[0], arch, n_classes, activation=activation, levels=levels)
    if activation != "relu":
        raise ModelError(f"the 2-D CNN (CNN2d) has ReLU activations only, not {activation!r}")
    return CNN2d(*shape, arch, n_classes)


def build_spiking_cnn(shape: Sequence[int], arch: CNNArch | Mapping[str, Any], n_outputs: int, *,
                      encoding: str = "direct", delta_threshold: float | None = None, **neuron) -> nn.Module:
    """``SpikingCNN1d`` or ``SpikingCNN2d`` (direct input only) for the input shape; ``neuron``:
    ``neuron``, ``beta``, ``num_steps`` (and ``alpha``, ``slope``, and ``init_mem`` for 1-D).

    Raises:
        ValueError: a 2-D input with an encoding other than ``direct`` or a nonzero ``init_mem``, and
            the models' own checks.
    """
    shape = input_shape_of(shape)
    if len(shape) == 1:
        kw = dict(neuron)
        if delta_threshold is not None:
            kw["delta_threshold"] = delta_threshold
        return SpikingCNN1d(shape[0], arch, n_outputs, encoding=encoding, **kw)
    if encoding != "direct":
        raise ModelError(f"2-D layouts take only the direct input encoding (SpikingCNN2d), not {encoding!r}")
    if neuron.pop("init_mem", 0.0):
        raise ModelError("SpikingCNN2d starts every membrane at 0 (no QCFS conversion for 2-D layouts)")
    return SpikingCNN2d(*shape, arch, n_outputs, encoding=encoding, **neuron)


def transfer_weights_any(cnn: nn.Module, snn: nn.Module) -> list[str]:
    """Copy a trained CNN's weights into the spiking network of the same shape and architecture
    (:func:`~spiking.models.snn.transfer_weights` or its 2-D version); returns the names copied.

    Raises:
        ValueError: mixed 1-D/2-D networks, or shapes that do not line up.
    """
    if isinstance(cnn, CNN2d) or isinstance(snn, SpikingCNN2d):
        return transfer_weights_2d(cnn, snn)
    return transfer_weights(cnn, snn)
