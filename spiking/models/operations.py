"""Operations, spikes and energy per inference of a CNN or a spiking CNN.

Details: docs/modules.md, section ``spiking.models.operations``.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from neurobench.blocks.layer import STATELESS_LAYERS
from neurobench.hooks.layer import LayerHook
from neurobench.metrics.utils.layers import single_layer_MACs

from spiking.models import ModelError
from spiking.models.snn import SpikingCNN1d
from spiking.models.snn2d import SpikingCNN2d
from spiking.specs.energy import CONVENTION, E_AC_PJ, E_MAC_PJ

__all__ = ["count_operations", "connection_layers", "LIF_LAYERS"]

LIF_LAYERS = ("lif1", "lif2", "lif3", "lif_out")


def connection_layers(model: torch.nn.Module) -> list[tuple[str, torch.nn.Module]]:
    """``(name, module)`` of every layer NeuroBench counts (Linear, Conv1d/2d/3d), in definition order."""
    return [(n, m) for n, m in model.named_modules() if isinstance(m, STATELESS_LAYERS)]


def _layer_kind(model: torch.nn.Module, name: str) -> str:
    if not isinstance(model, (SpikingCNN1d, SpikingCNN2d)):
        return "MAC"
    return "MAC" if (name == "conv1" and model.encoding == "direct") else "AC"


def count_operations(model: torch.nn.Module, X: np.ndarray | torch.Tensor, *, batch_size: int = 256,
                     seed: int | None = None) -> dict:
    """Per-inference operations, spikes and energy of ``model`` on profiles ``X`` ``(n, 1, L)`` or
    images ``(n, 1, H, W)``.

    Args:
        model: a ``CNN1d``/``CNN2d`` or ``SpikingCNN1d``/``SpikingCNN2d`` (put in eval mode here).
        X: inputs, float, ``(n, 1, L)`` or ``(n, 1, H, W)``, ``n >= 1``, finite (cast to the model's dtype).
        batch_size: samples per forward pass.
        seed: seeds torch's generator (in a forked RNG state) for stochastic encodings.

    Returns:
        The ``efficiency`` block of results.json, every count a mean per sample (one inference)::

            {"convention", "encoding" (None for a CNN), "num_steps" (None for a CNN),
             "layers": [{"layer", "kind": "MAC"|"AC", "ops", "nonzero_ops", "dense_ops", "energy_pj"}],
             "neurons": [{"layer", "neurons", "spikes", "firing_rate"}]   (SNN; spikes per neuron per step),
             "input_spikes" (spike encodings; else None),
             "macs", "synops", "dense_ops", "energy_pj", "energy_ratio_vs_cnn": None}

        ``dense_ops`` is the dense equivalent (every input non-zero at every step of every layer).
    Raises:
        ValueError: X empty, not 3-D/4-D or not finite, batch_size < 1 (and, from the encoding, spike-encoded
            inputs outside [0, 1]).
    """
    param = next(model.parameters())
    X = torch.as_tensor(np.asarray(X, dtype=np.float32)).to(param.dtype)
    if X.dim() not in (3, 4) or len(X) == 0:
        raise ModelError(f"expected inputs of shape (n, 1, L) or (n, 1, H, W) with n >= 1, got {tuple(X.shape)}")
    if not torch.isfinite(X).all():
        raise ModelError("inputs contain NaN or infinite values; operation counts would be meaningless")
    if batch_size < 1:
        raise ModelError(f"batch_size must be >= 1, got {batch_size}")
    model.eval()
    device = param.device
    layers = connection_layers(model)
    # float64 copies: the counts are integers summed over many outputs; float32 would round them.
    counters = {name: copy.deepcopy(m).double().cpu() for name, m in layers}
    ops = {name: 0.0 for name, _ in layers}
    nonzero = {name: 0.0 for name, _ in layers}
    dense = {name: 0.0 for name, _ in layers}
    is_snn = isinstance(model, (SpikingCNN1d, SpikingCNN2d))
    spikes: dict[str, float] = {}
    kinds = {name: _layer_kind(model, name) for name, _ in layers}

    old_record = getattr(model, "record_spikes", None)
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        if seed is not None:
            torch.manual_seed(seed)
        if is_snn:
            model.record_spikes = True
        try:
            for start in range(0, len(X), batch_size):
                xb = X[start:start + batch_size].to(device)
                hooks = [LayerHook(m) for _, m in layers]
                try:
                    model(xb)
                finally:
                    for h in hooks:
                        h.close()
                for (name, _), h in zip(layers, hooks):
                    for inp in h.inputs:
                        t = (inp[0] if isinstance(inp, tuple) else inp).detach().double().cpu()
                        nz, _ = single_layer_MACs(t, counters[name])
                        tot, _ = single_layer_MACs(t, counters[name], total=True)
                        nonzero[name] += nz
                        dense[name] += tot
                        ops[name] += tot if kinds[name] == "MAC" else nz
                    h.reset()
                if is_snn:
                    for k, v in model.last_spike_counts.items():
                        spikes[k] = spikes.get(k, 0.0) + float(v.sum())
        finally:
            if is_snn:
                model.record_spikes = old_record

    n = len(X)
    rows = []
    for name, _ in layers:
        per = E_MAC_PJ if kinds[name] == "MAC" else E_AC_PJ
        rows.append({"layer": name, "kind": kinds[name], "ops": ops[name] / n, "nonzero_ops": nonzero[name] / n,
                     "dense_ops": dense[name] / n, "energy_pj": ops[name] / n * per})
    neurons = []
    if is_snn:
        T = model.num_steps
        for name in LIF_LAYERS:
            count = model.layer_neurons[name]
            s = spikes.get(name, 0.0) / n
            neurons.append({"layer": name, "neurons": int(count), "spikes": s, "firing_rate": s / (count * T)})
    macs = sum(r["ops"] for r in rows if r["kind"] == "MAC")
    synops = sum(r["ops"] for r in rows if r["kind"] == "AC")
    return {
        "convention": CONVENTION,
        "encoding": model.encoding if is_snn else None,
        "num_steps": model.num_steps if is_snn else None,
        "layers": rows,
        "neurons": neurons,
        "input_spikes": (spikes["input"] / n) if "input" in spikes else None,
        "macs": macs,
        "synops": synops,
        "dense_ops": sum(r["dense_ops"] for r in rows),
        "energy_pj": sum(r["energy_pj"] for r in rows),
        "energy_ratio_vs_cnn": None,
    }
