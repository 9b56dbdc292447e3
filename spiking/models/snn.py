"""SNN_PT: the spiking (snnTorch 1.0.0) version of CNN_PT.

Details: docs/modules.md, section ``spiking.models.snn``.
"""

from __future__ import annotations

from typing import Any, Mapping

import snntorch
import torch
from snntorch import SpikingNeuron, surrogate
from torch import nn

from spiking.models import ModelError
from spiking.models.cnn import CNN1d, CNNArch, add_cnn_layers, coerce_arch, stage_lengths
from spiking.models.encoding import encode
from spiking.models.qcfs import QCFS
from spiking.specs.names import BETA, DELTA_THRESHOLD, NEURONS, NUM_STEPS, check_beta, check_encoding, check_num_steps

__all__ = ["NEURONS", "SpikingCNN1d", "class_scores", "transfer_weights"]


LIF_NAMES = ("lif1", "lif2", "lif3", "lif_out")
_STATE_ATTRS = ("mem", "spk", "syn")


def make_neuron(
    neuron: str, *, beta: float, alpha: float, spike_grad, linear_features: int | None
) -> nn.Module:
    """One LIF layer. ``linear_features`` is given only for the output layer."""
    if neuron == "leaky":
        return snntorch.Leaky(beta=beta, spike_grad=spike_grad)
    if neuron == "lapicque":
        # With beta only, snnTorch sets R = 1, C = 1 / ln(1/beta): the input is
        # scaled by ln(1/beta) (~0.105 for beta = 0.9) and the membrane decays
        # by 1 - ln(1/beta) (~beta).
        return snntorch.Lapicque(beta=beta, spike_grad=spike_grad)
    if neuron == "synaptic":
        return snntorch.Synaptic(alpha=alpha, beta=beta, spike_grad=spike_grad)
    if neuron == "rleaky":
        if linear_features is None:
            # Conv feature maps (B, C, len): all_to_all=True would need a Conv2d
            # recurrence (4-D input) or a Linear over the last dim only, so use
            # the elementwise recurrence: one learnable scalar V (init 1.0, the
            # snnTorch default) multiplying each neuron's own previous spike.
            return snntorch.RLeaky(
                beta=beta, V=1.0, all_to_all=False, learn_recurrent=True,
                spike_grad=spike_grad,
            )
        # Output layer: dense recurrent nn.Linear(n_outputs, n_outputs).
        return snntorch.RLeaky(
            beta=beta, all_to_all=True, linear_features=linear_features,
            spike_grad=spike_grad,
        )
    raise ModelError(f"unknown neuron {neuron!r}; valid: {NEURONS}")


def run_neuron(
    lif: nn.Module, kind: str, cur: torch.Tensor, num_steps: int, static: bool,
    keep_mem: bool = False, init_mem: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Run one neuron layer over time.

    ``cur`` is ``(num_steps, B, ...)`` or, when ``static``, ``(B, ...)`` used at
    every step. Returns spikes ``(num_steps, B, ...)`` and, if ``keep_mem``,
    the membrane potentials likewise. ``init_mem``: membrane potential at t = 0, in units of the
    threshold (0.5 for a QCFS-converted network, Bu et al. 2022).
    """
    shape = cur.shape if static else cur.shape[1:]
    mem = cur.new_full(shape, float(init_mem)) if init_mem else cur.new_zeros(shape)
    spk = cur.new_zeros(shape) if kind == "rleaky" else None
    syn = cur.new_zeros(shape) if kind == "synaptic" else None
    spks, mems = [], []
    for t in range(num_steps):
        inp = cur if static else cur[t]
        if kind == "rleaky":
            spk, mem = lif(inp, spk, mem)
            out = spk = spk.to(cur.dtype)
        elif kind == "synaptic":
            out, syn, mem = lif(inp, syn, mem)
        else:
            out, mem = lif(inp, mem)
        # snnTorch's surrogates return float32 spikes whatever the input dtype;
        # keep the model's dtype (no copy in the float32 case).
        out = out.to(cur.dtype)
        spks.append(out)
        if keep_mem:
            mems.append(mem)
    return torch.stack(spks), (torch.stack(mems) if keep_mem else None)


def check_neuron_settings(neuron: str, n_outputs, num_steps, beta, alpha) -> tuple[int, int, float, float]:
    """Check and coerce the settings shared by the spiking CNNs (1-D and 2-D).

    Returns ``(n_outputs, num_steps, beta, alpha)`` as int, int, float, float.

    Raises:
        ValueError: ``n_outputs`` or ``num_steps`` < 1; ``beta`` outside [0, 1] or NaN; Lapicque
            with beta not in (0, 1) (snnTorch: C = 1/ln(1/beta) is infinite at beta = 1 and 0 at
            beta = 0); a synaptic neuron's ``alpha`` outside [0, 1].
    """
    n_outputs = int(n_outputs)
    if n_outputs < 1:
        raise ModelError(f"n_outputs must be >= 1, got {n_outputs}")
    num_steps = check_num_steps(num_steps, bounded=False)
    beta = check_beta(beta, neuron)
    alpha = float(alpha)
    if neuron == "synaptic" and not 0.0 <= alpha <= 1.0:
        raise ModelError(f"alpha must be in [0, 1], got {alpha}")
    return n_outputs, num_steps, beta, alpha


def clear_neuron_states(net: nn.Module) -> None:
    """Drop the states snnTorch keeps on the neuron modules (``LIF_NAMES``) of a spiking CNN after a forward
    (they reference the autograd graph: memory, and deepcopy would fail)."""
    for name in LIF_NAMES:
        lif = getattr(net, name)
        buffers = dict(lif.named_buffers(recurse=False))
        for attr in _STATE_ATTRS:
            if attr in buffers:  # assigning a tensor to a buffer's name replaces the buffer (nn.Module)
                t = buffers[attr]
                setattr(lif, attr, torch.zeros(0, device=t.device, dtype=t.dtype))
        if "reset" in lif.__dict__:
            lif.reset = None


class SpikingCNN1d(nn.Module):
    """Spiking CNN_PT (snnTorch): input as direct current at every step, or as input spikes.

    ``forward(x)`` with ``x`` of shape ``(B, 1, L)`` (values in [0, 1])
    returns ``(spk_out, mem_out)``, each ``(num_steps, B, n_outputs)``.
    ``n_outputs`` is ``n_classes`` or, with population coding,
    ``n_classes * pop`` (see :func:`class_scores`). ``encoding`` is one of
    :data:`spiking.models.encoding.ENCODINGS`; ``delta_threshold`` is used by
    the delta encoding. ``init_mem`` is every hidden neuron's membrane potential at t = 0 (in thresholds; 0.5 for a
    network converted from a QCFS CNN, :mod:`spiking.models.qcfs`).

    Set ``record_spikes = True`` to get, after each forward,
    ``last_spike_counts = {"lif1": (B,), "lif2": ..., "lif3": ..., "lif_out": ...}``
    (total spikes per sample, summed over steps and neurons; detached), plus
    ``"input"`` (input spikes per sample; absent for direct current).
    ``layer_neurons`` gives the number of neurons per LIF layer.
    :meth:`trace` returns the spikes and membrane potentials of every layer.

    Raises:
        ValueError: unknown neuron or encoding, ``num_steps < 1``, beta outside
            [0, 1] (Lapicque: (0, 1)), alpha outside [0, 1], ``n_outputs < 1``.
    """

    def __init__(
        self,
        L: int,
        arch: CNNArch | Mapping[str, Any],
        n_outputs: int,
        *,
        neuron: str = "leaky",
        beta: float = BETA,
        num_steps: int = NUM_STEPS,
        alpha: float = 0.8,
        slope: float = 25.0,
        encoding: str = "direct",
        delta_threshold: float = DELTA_THRESHOLD,
        init_mem: float = 0.0,
    ):
        super().__init__()
        if neuron not in NEURONS:
            raise ModelError(f"unknown neuron {neuron!r}; valid: {NEURONS}")
        check_encoding(encoding, delta_threshold)
        arch = coerce_arch(arch)
        n_outputs, num_steps, beta, alpha = check_neuron_settings(neuron, n_outputs, num_steps, beta, alpha)

        self.lengths = stage_lengths(L, arch)
        self.L = int(L)
        self.arch = arch
        self.n_outputs = n_outputs
        self.neuron = neuron
        self.beta = beta
        self.alpha = alpha
        self.num_steps = num_steps
        self.slope = float(slope)
        self.encoding = encoding
        self.delta_threshold = float(delta_threshold)
        if not 0.0 <= float(init_mem) < 1.0:
            raise ModelError(f"init_mem (initial membrane potential / threshold) must be in [0, 1), got {init_mem!r}")
        self.init_mem = float(init_mem)

        add_cnn_layers(self, arch, self.lengths, n_outputs)

        spike_grad = surrogate.fast_sigmoid(slope=self.slope)
        for name in LIF_NAMES:
            lif = make_neuron(
                neuron, beta=beta, alpha=alpha, spike_grad=spike_grad,
                linear_features=n_outputs if name == "lif_out" else None,
            )
            # snnTorch appends every neuron to a global class list (used only
            # for init_hidden=True); drop ours so discarded models can be freed.
            try:
                SpikingNeuron.instances.remove(lif)
            except ValueError:
                pass
            setattr(self, name, lif)

        s1, s2, s3 = self.lengths
        self.layer_neurons: dict[str, int] = {
            "lif1": arch.w1 * s1,
            "lif2": arch.w2 * s2,
            "lif3": arch.w3 * s3,
            "lif_out": n_outputs,
        }
        self.record_spikes: bool = False
        self.last_spike_counts: dict[str, torch.Tensor] | None = None

    def _layers(self, x: torch.Tensor, keep: bool) -> dict[str, tuple[torch.Tensor, torch.Tensor | None]]:
        """Spikes (and membranes when ``keep``) of every layer: ``{name: (spk, mem)}``,
        LIF layers ``(T, B, C, len)`` / ``(T, B, n_outputs)``, ``"input"`` ``(T, B, 1, L)``
        for spike encodings."""
        if x.dim() != 3 or x.size(1) != 1 or x.size(2) != self.L:
            raise ModelError(f"expected input of shape (B, 1, {self.L}), got {tuple(x.shape)}")
        T, B, kind, v0 = self.num_steps, x.size(0), self.neuron, self.init_mem
        out: dict[str, tuple[torch.Tensor, torch.Tensor | None]] = {}
        try:
            if self.encoding == "direct":
                # Time-independent: computed once per batch.
                cur1 = self.pool1(self.conv1(x))                  # (B, w1, s1)
                out["lif1"] = run_neuron(self.lif1, kind, cur1, T, static=True, keep_mem=keep, init_mem=v0)
            else:
                spk_in = encode(x, self.encoding, T, delta_threshold=self.delta_threshold)  # (T, B, 1, L)
                out["input"] = (spk_in, None)
                cur1 = self.pool1(self.conv1(spk_in.flatten(0, 1)))                    # (T*B, w1, s1)
                out["lif1"] = run_neuron(self.lif1, kind, cur1.unflatten(0, (T, B)), T, static=False,
                                          keep_mem=keep, init_mem=v0)
            cur2 = self.pool2(self.conv2(out["lif1"][0].flatten(0, 1)))      # (T*B, w2, s2)
            out["lif2"] = run_neuron(self.lif2, kind, cur2.unflatten(0, (T, B)), T, static=False, keep_mem=keep,
                                     init_mem=v0)
            cur3 = self.pool3(self.conv3(out["lif2"][0].flatten(0, 1)))      # (T*B, w3, s3)
            out["lif3"] = run_neuron(self.lif3, kind, cur3.unflatten(0, (T, B)), T, static=False, keep_mem=keep,
                                     init_mem=v0)
            cur4 = self.fc(out["lif3"][0].flatten(2))                       # (T, B, n_outputs)
            out["lif_out"] = run_neuron(self.lif_out, kind, cur4, T, static=False, keep_mem=True)
        finally:
            clear_neuron_states(self)
        return out

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self._layers(x, keep=False)
        spk_out, mem_out = out["lif_out"]
        if self.record_spikes:
            with torch.no_grad():
                counts = {name: spk.detach().abs().flatten(2).sum(dim=(0, 2)) for name, (spk, _) in out.items()}
                self.last_spike_counts = {k: counts[k] for k in ("lif1", "lif2", "lif3", "lif_out")}
                if "input" in counts:
                    self.last_spike_counts["input"] = counts["input"]
        else:
            self.last_spike_counts = None
        return spk_out, mem_out

    @torch.no_grad()
    def trace(self, x: torch.Tensor) -> dict[str, dict[str, torch.Tensor]]:
        """Spikes and membrane potentials of every layer for inputs ``x`` ``(B, 1, L)``.

        Returns ``{"lif1" | "lif2" | "lif3" | "lif_out": {"spikes": (T, B, n), "mem": (T, B, n)}}``
        with ``n`` the layer's neurons (channels x positions, channel-major), and for spike
        encodings ``"input": {"spikes": (T, B, L)}`` (delta events are -1/+1). Detached tensors.
        """
        out = self._layers(x, keep=True)
        res: dict[str, dict[str, torch.Tensor]] = {}
        for name, (spk, mem) in out.items():
            entry = {"spikes": spk.detach().flatten(2)}
            if mem is not None:
                entry["mem"] = mem.detach().flatten(2)
            res[name] = entry
        return res

    def extra_repr(self) -> str:
        return (
            f"L={self.L}, stage_lengths={self.lengths}, neuron={self.neuron!r}, "
            f"beta={self.beta}, num_steps={self.num_steps}, slope={self.slope}, encoding={self.encoding!r}"
            + (f", init_mem={self.init_mem}" if self.init_mem else "")
            + (f", alpha={self.alpha}" if self.neuron == "synaptic" else "")
        )


def class_scores(spk_out: torch.Tensor, n_classes: int) -> torch.Tensor:
    """Spike counts per class, ``(B, n_classes)``, from ``spk_out`` ``(T, B, n_outputs)``.

    Summed over time; with population coding (``n_outputs = n_classes * pop``)
    class ``c`` is the sum of outputs ``[c*pop, (c+1)*pop)`` — the contiguous
    grouping of snntorch.functional's ``population_code`` (``ce_count_loss``,
    ``mse_count_loss``, ``accuracy_rate``). Differentiable.
    """
    if spk_out.dim() != 3:
        raise ModelError(f"spk_out must be (num_steps, B, n_outputs), got {tuple(spk_out.shape)}")
    n_classes = int(n_classes)
    n_out = spk_out.size(2)
    if n_classes < 1 or n_out % n_classes:
        raise ModelError(f"n_outputs={n_out} is not a multiple of n_classes={n_classes}")
    counts = spk_out.sum(0)
    return counts.view(counts.size(0), n_classes, n_out // n_classes).sum(-1)


def transfer_weights(cnn: CNN1d, snn: SpikingCNN1d) -> list[str]:
    """Copy every conv/linear weight and bias of ``cnn`` into ``snn``.

    Returns the parameter names copied (all of the CNN's parameters but the thresholds of its QCFS
    activations, which become the spiking layers' scales: ``spiking.training.jobs``). All
    shapes are checked before anything is copied; a missing parameter or a
    shape mismatch (e.g. a population-coded output layer) raises ValueError
    naming the parameter.
    """
    thresholds = {f"{n}.threshold" for n, m in cnn.named_modules() if isinstance(m, QCFS)}
    src = {n: p for n, p in cnn.named_parameters() if n not in thresholds}
    dst = dict(snn.named_parameters())
    for name, p in src.items():
        if name not in dst:
            raise ModelError(f"parameter {name!r} of the CNN has no counterpart in the SNN")
        if dst[name].shape != p.shape:
            raise ModelError(
                f"shape mismatch for {name!r}: CNN {tuple(p.shape)} vs SNN {tuple(dst[name].shape)}"
            )
    with torch.no_grad():
        for name, p in src.items():
            dst[name].copy_(p)
    return list(src)
