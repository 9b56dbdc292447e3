"""Input encodings of the spiking CNN: how a static profile becomes input over ``num_steps`` steps.

Details: docs/modules.md, section ``spiking.models.encoding``.
"""

from __future__ import annotations

import torch
from snntorch import spikegen

from spiking.models import ModelError
from spiking.specs.names import DELTA_THRESHOLD, ENCODINGS, check_encoding, check_num_steps

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
    num_steps = check_num_steps(num_steps, bounded=False)
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
