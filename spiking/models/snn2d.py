"""Spiking CNN_PT for images: the snnTorch version of :class:`~spiking.models.cnn2d.CNN2d`.

Details: docs/modules.md, section ``spiking.models.snn2d``.
"""

from __future__ import annotations

import math
import numbers
from typing import Any, Mapping

import numpy as np
import torch
from snntorch import SpikingNeuron, surrogate
from torch import nn

from spiking.models import ModelError
from spiking.models.cnn import CNNArch, coerce_arch
from spiking.models.cnn2d import CNN2d, add_cnn2d_layers, stage_shapes
from spiking.models.snn import (
    LIF_NAMES,
    NEURONS,
    SpikingCNN1d,
    check_neuron_settings,
    clear_neuron_states,
    make_neuron,
    run_neuron,
    transfer_weights,
)
from spiking.specs.names import BETA, NUM_STEPS, check_num_steps

__all__ = ["SpikingCNN2d", "transfer_weights_2d"]


def _check_num_steps_and_slope(num_steps, slope) -> None:
    """Refuse what ``check_neuron_settings`` would silently coerce.

    ``check_neuron_settings`` applies ``int(num_steps)`` (2.5 -> 2) and does not
    look at ``slope``. Raises ValueError naming ``num_steps`` / ``slope``.
    """
    check_num_steps(num_steps, bounded=False)
    if isinstance(slope, (bool, np.bool_)) or not isinstance(slope, (numbers.Real, np.floating, np.integer)):
        raise ModelError(f"slope must be a finite number > 0, got {slope!r} ({type(slope).__name__})")
    if not math.isfinite(float(slope)) or float(slope) <= 0:
        raise ModelError(f"slope must be a finite number > 0, got {slope!r}")


class SpikingCNN2d(nn.Module):
    """Spiking CNN_PT for images (snnTorch), input as direct current at every step.

    ``forward(x)`` with ``x`` of shape ``(B, 1, H, W)`` (values in [0, 1]) returns
    ``(spk_out, mem_out)``, each ``(num_steps, B, n_outputs)`` — the same as
    ``SpikingCNN1d``, so :class:`~spiking.training.objectives.SpikeCountObjective`
    and :func:`~spiking.models.snn.class_scores` work unchanged. ``n_outputs`` is
    ``n_classes`` or ``n_classes * pop`` with population coding.

    ``record_spikes``/``last_spike_counts``, ``layer_neurons`` and :meth:`trace`
    behave as in ``SpikingCNN1d`` (neurons = channels x height x width, channel-major).

    Raises:
        ValueError: unknown neuron, an encoding other than ``"direct"``,
            ``num_steps`` not an integer (Python or numpy int; floats such as
            2.5 or 3.0 and bools are refused) or ``< 1``, ``slope`` (surrogate
            gradient steepness) not a finite real number > 0 (bools refused),
            beta outside [0, 1] (Lapicque: (0, 1)), alpha outside [0, 1],
            ``n_outputs < 1``.
        ArchitectureError: the architecture does not fit ``H x W``.
    """

    def __init__(
        self,
        H: int,
        W: int,
        arch: CNNArch | Mapping[str, Any],
        n_outputs: int,
        *,
        neuron: str = "leaky",
        beta: float = BETA,
        num_steps: int = NUM_STEPS,
        alpha: float = 0.8,
        slope: float = 25.0,
        encoding: str = "direct",
    ):
        super().__init__()
        if neuron not in NEURONS:
            raise ModelError(f"unknown neuron {neuron!r}; valid: {NEURONS}")
        if encoding != "direct":
            raise ModelError(f"SpikingCNN2d supports only encoding='direct', got {encoding!r}")
        _check_num_steps_and_slope(num_steps, slope)
        arch = coerce_arch(arch)
        n_outputs, num_steps, beta, alpha = check_neuron_settings(neuron, n_outputs, num_steps, beta, alpha)

        self.shapes = stage_shapes(H, W, arch)
        self.H, self.W = int(H), int(W)
        self.arch = arch
        self.n_outputs = n_outputs
        self.neuron = neuron
        self.beta = beta
        self.alpha = alpha
        self.num_steps = num_steps
        self.slope = float(slope)
        self.encoding = encoding

        add_cnn2d_layers(self, arch, self.shapes, n_outputs)

        spike_grad = surrogate.fast_sigmoid(slope=self.slope)
        for name in LIF_NAMES:
            lif = make_neuron(
                neuron, beta=beta, alpha=alpha, spike_grad=spike_grad,
                linear_features=n_outputs if name == "lif_out" else None,
            )
            try:  # see SpikingCNN1d: let discarded models be garbage collected
                SpikingNeuron.instances.remove(lif)
            except ValueError:
                pass
            setattr(self, name, lif)

        (a1, b1), (a2, b2), (a3, b3) = self.shapes
        self.layer_neurons: dict[str, int] = {
            "lif1": arch.w1 * a1 * b1,
            "lif2": arch.w2 * a2 * b2,
            "lif3": arch.w3 * a3 * b3,
            "lif_out": n_outputs,
        }
        self.record_spikes: bool = False
        self.last_spike_counts: dict[str, torch.Tensor] | None = None

    # Identical state handling to the 1-D network (it only uses the lif* names).

    def _layers(self, x: torch.Tensor, keep: bool) -> dict[str, tuple[torch.Tensor, torch.Tensor | None]]:
        """``{name: (spk, mem)}``: LIF layers ``(T, B, C, h, w)`` / ``(T, B, n_outputs)``."""
        if x.dim() != 4 or x.size(1) != 1 or x.size(2) != self.H or x.size(3) != self.W:
            raise ModelError(f"expected input of shape (B, 1, {self.H}, {self.W}), got {tuple(x.shape)}")
        T, B, kind = self.num_steps, x.size(0), self.neuron
        out: dict[str, tuple[torch.Tensor, torch.Tensor | None]] = {}
        try:
            cur1 = self.pool1(self.conv1(x))                                  # (B, w1, h1, w1')
            out["lif1"] = run_neuron(self.lif1, kind, cur1, T, static=True, keep_mem=keep)
            cur2 = self.pool2(self.conv2(out["lif1"][0].flatten(0, 1)))      # (T*B, w2, ., .)
            out["lif2"] = run_neuron(self.lif2, kind, cur2.unflatten(0, (T, B)), T, static=False, keep_mem=keep)
            cur3 = self.pool3(self.conv3(out["lif2"][0].flatten(0, 1)))      # (T*B, w3, ., .)
            out["lif3"] = run_neuron(self.lif3, kind, cur3.unflatten(0, (T, B)), T, static=False, keep_mem=keep)
            cur4 = self.fc(out["lif3"][0].flatten(2))                       # (T, B, n_outputs)
            out["lif_out"] = run_neuron(self.lif_out, kind, cur4, T, static=False, keep_mem=True)
        finally:
            clear_neuron_states(self)
        return out

    # The 1-D network's forward (spike counts per layer when record_spikes) and trace() work on
    # the {name: (spk, mem)} dict of _layers unchanged: x (B, 1, H, W) -> (spk_out, mem_out), each
    # (num_steps, B, n_outputs); trace's n = channels x height x width (channel-major).
    forward = SpikingCNN1d.forward
    trace = SpikingCNN1d.trace

    def extra_repr(self) -> str:
        return (
            f"H={self.H}, W={self.W}, stage_shapes={self.shapes}, neuron={self.neuron!r}, "
            f"beta={self.beta}, num_steps={self.num_steps}, slope={self.slope}, encoding='direct'"
            + (f", alpha={self.alpha}" if self.neuron == "synaptic" else "")
        )


def transfer_weights_2d(cnn: CNN2d, snn: SpikingCNN2d) -> list[str]:
    """Copy every conv/linear weight and bias of ``cnn`` into ``snn`` (2-D version of
    :func:`~spiking.models.snn.transfer_weights`).

    Returns the parameter names copied. All shapes are checked before anything is
    copied; a missing parameter or a shape mismatch (different image size or
    architecture, population-coded output) raises ValueError naming the parameter.
    """
    if not isinstance(cnn, CNN2d) or not isinstance(snn, SpikingCNN2d):
        raise ModelError(f"transfer_weights_2d(cnn, snn) needs a CNN2d and a SpikingCNN2d, got "
                         f"{type(cnn).__name__} and {type(snn).__name__}")
    if (cnn.H, cnn.W) != (snn.H, snn.W) or cnn.arch != snn.arch:
        raise ModelError(f"the CNN was built for {cnn.H}x{cnn.W} images with {cnn.arch}, the SNN for "
                         f"{snn.H}x{snn.W} with {snn.arch}: its weights would not mean the same there")
    return transfer_weights(cnn, snn)  # the same name-by-name check and copy as the 1-D networks
