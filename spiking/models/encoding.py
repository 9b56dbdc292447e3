"""Input encodings of the spiking CNN: how a static profile becomes input over ``num_steps`` steps.

A profile ``x`` of shape ``(B, 1, L)`` with values in [0, 1] (the output of
:mod:`spiking.data.preprocess.scaling`) is presented to the first convolution as:

``direct``
    direct current (the study's choice): the static vector itself at every
    step. The first layer then receives real values, so its operations are
    multiply-accumulates (MACs); :class:`~spiking.models.snn.SpikingCNN1d`
    computes it once per sample because it does not change over time.
``rate``
    rate coding: at every step each feature fires with probability equal to
    its value (Bernoulli), :func:`snntorch.spikegen.rate`. Over many steps the
    mean firing of a feature equals its value.
``latency``
    latency (time-to-first-spike) coding: one spike per feature, earlier for
    larger values, at step ``round((1 - x) * (num_steps - 1))``; features below
    ``LATENCY_THRESHOLD`` never fire. :func:`snntorch.spikegen.latency` with
    ``linear=True, normalize=True, clip=True``.
``delta``
    delta (send-on-delta) coding along an ordered sweep, the style of
    event-based sensors: the profile is read feature by feature in its layout
    order, and an ON event (+1) is emitted where the value rises by at least
    ``threshold`` over the previous feature, an OFF event (-1) where it falls by
    at least ``threshold`` (:func:`snntorch.spikegen.delta` with
    ``off_spike=True`` over the feature axis; the sweep starts from 0). The
    sweep covers the ``L`` features in ``num_steps`` equal steps, so feature
    ``i`` can only fire at step ``floor(i * num_steps / L)``: at most one event
    per feature, at its own position. Unchanging stretches produce no events.

Every spike encoding returns a tensor of shape ``(num_steps, B, 1, L)`` (time,
batch, channel, features) with values in {0, 1} ({-1, 0, 1} for delta);
``direct`` returns ``x`` unchanged, ``(B, 1, L)``.
"""

from __future__ import annotations

import torch
from snntorch import spikegen

from spiking.models import ModelError
from spiking.specs.names import DELTA_THRESHOLD, ENCODINGS, check_encoding

__all__ = ["ENCODINGS", "DELTA_THRESHOLD", "LATENCY_THRESHOLD", "encode", "check_encoding"]

#: Inputs below this value emit no latency spike (snnTorch's default ``threshold``).
LATENCY_THRESHOLD = 0.01


def _delta_sweep(x: torch.Tensor, num_steps: int, threshold: float) -> torch.Tensor:
    B, C, L = x.shape
    # snnTorch's delta works along dim 0 ("time"): put the sweep (feature) axis first.
    events = spikegen.delta(x.permute(2, 0, 1), threshold=threshold, padding=False, off_spike=True)
    events = events.permute(1, 2, 0)                                        # (B, C, L)
    step_of = (torch.arange(L, device=x.device) * num_steps) // L           # (L,)
    onehot = (step_of.unsqueeze(0) == torch.arange(num_steps, device=x.device).unsqueeze(1))  # (T, L)
    return events.unsqueeze(0) * onehot.to(x.dtype).view(num_steps, 1, 1, L)


def encode(x: torch.Tensor, encoding: str, num_steps: int, *, delta_threshold: float = DELTA_THRESHOLD
           ) -> torch.Tensor:
    """Encode profiles ``x`` ``(B, 1, L)`` in [0, 1] for ``num_steps`` steps (see the module docstring).

    Returns:
        ``x`` itself for ``direct``; otherwise spikes ``(num_steps, B, 1, L)`` in x's dtype.
        Rate coding draws from torch's global generator (seed it for reproducible spikes).
    Raises:
        ValueError: unknown encoding, ``num_steps`` not an integer >= 1, a bad delta threshold, x not
            ``(B, 1, L)``, or (spike encodings) x not floating point or outside [0, 1] / NaN.
    """
    check_encoding(encoding, delta_threshold)
    if x.dim() != 3 or x.size(-1) < 1:
        raise ModelError(f"expected profiles of shape (B, 1, L) with L >= 1, got {tuple(x.shape)}")
    if isinstance(num_steps, bool) or int(num_steps) != num_steps or num_steps < 1:
        raise ModelError(f"num_steps must be an integer >= 1, got {num_steps!r}")
    num_steps = int(num_steps)
    if encoding == "direct":
        return x
    if not x.is_floating_point():
        raise ModelError(f"spike encodings need floating-point profiles, got {x.dtype}")
    if x.numel() and not (torch.isfinite(x).all() and x.min() >= 0 and x.max() <= 1):
        raise ModelError(f"{encoding} coding needs profiles scaled to [0, 1] without NaN (the output of "
                         f"spiking.data.preprocess.scaling); got values in [{float(x.min())}, {float(x.max())}]")
    if encoding == "rate":
        return spikegen.rate(x, num_steps=num_steps).to(x.dtype)
    if encoding == "latency":
        if num_steps == 1:  # snnTorch normalises by num_steps - 1: every feature above threshold fires at step 0
            return (x >= LATENCY_THRESHOLD).to(x.dtype).unsqueeze(0)
        return spikegen.latency(x, num_steps=num_steps, threshold=LATENCY_THRESHOLD, linear=True,
                                normalize=True, clip=True).to(x.dtype)
    return _delta_sweep(x, num_steps, float(delta_threshold))
