"""Keras phenotype CNN -> spiking network with NengoDL, its simulation, synaptic operations and figure.

Details: docs/modules.md, section ``spiking.keras.conversion``.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping

import nengo
import nengo_dl
import numpy as np
import tensorflow as tf

from spiking.keras import KerasError
from spiking.specs.energy import CONVENTION, E_AC_PJ, E_MAC_PJ

__all__ = [
    "DT",
    "NEURON_TYPES",
    "Conversion",
    "SimResult",
    "SynOps",
    "convert",
    "count_synops",
    "inference_model",
    "plot_layer_activity",
    "simulate",
]

#: Simulation time step, seconds (Nengo's default).
DT = 0.001

#: Spiking neuron types that replace the ReLU rate neurons: name -> factory of a fresh instance.
#: All four build and run with Nengo 3.2 + NengoDL 3.6. Only SpikingRectifiedLinear,
#: RegularSpiking and PoissonSpiking (wrapping ``RectifiedLinear``) have the ReLU rate curve, so
#: a converted ReLU network keeps its accuracy (given enough steps / firing-rate scaling); LIF has
#: a different, nonlinear rate curve (threshold, saturation at 1/tau_ref) and would need the
#: network to be retrained for it (e.g. with NengoDL's SoftLIFRate) to classify well.
NEURON_TYPES: dict[str, Callable[[], nengo.neurons.NeuronType]] = {
    "SpikingRectifiedLinear": lambda: nengo.SpikingRectifiedLinear(),
    "LIF": lambda: nengo.LIF(),
    "RegularSpiking": lambda: nengo.RegularSpiking(nengo.RectifiedLinear()),
    "PoissonSpiking": lambda: nengo.PoissonSpiking(nengo.RectifiedLinear()),
}

_WEIGHT_LAYERS = (tf.keras.layers.Conv1D, tf.keras.layers.Dense)
_POOL_LAYERS = (tf.keras.layers.MaxPooling1D, tf.keras.layers.AveragePooling1D)
_IDENTITY_LAYERS = (tf.keras.layers.Dropout, tf.keras.layers.BatchNormalization, tf.keras.layers.Flatten,
                    tf.keras.layers.InputLayer)


# --------------------------------------------------------------------------------------------- model


def _chain(model: tf.keras.Model) -> list[tf.keras.layers.Layer]:
    """The model's layers if they form a single chain (input first), else ``ValueError``."""
    if isinstance(model, tf.keras.Sequential) and model.inputs:
        model = tf.keras.Model(model.inputs, model.outputs)  # functional view, with its InputLayer
    layers = list(model.layers)
    if not layers or not isinstance(layers[0], tf.keras.layers.InputLayer) or len(model.inputs) != 1 \
            or len(model.outputs) != 1:
        raise KerasError("expected a functional model with one input and one output")
    for prev, layer in zip(layers, layers[1:]):
        node = layer.inbound_nodes[0]
        ins = tf.nest.flatten(node.input_tensors)
        if len(layer.inbound_nodes) != 1 or len(ins) != 1 or ins[0]._keras_history.layer is not prev:
            raise KerasError(f"layer {layer.name!r} does not simply follow {prev.name!r}: the model is not a chain")
    return layers


def inference_model(model: tf.keras.Model, *, max_to_avg_pool: bool = True) -> tf.keras.Model:
    """The inference-time copy of a chain model that :func:`convert` hands to NengoDL.

    Dropout layers are removed (identity at inference), and with ``max_to_avg_pool`` every
    ``MaxPooling1D`` becomes an ``AveragePooling1D`` of the same pool size, stride and padding.
    All other layers are copied with their weights, names and activation functions. In rate
    mode the converted Nengo network computes exactly this model.

    Args:
        model: a functional Keras model whose layers form one chain (as
            :func:`spiking.keras.phenotype.build_keras_model` builds).

    Returns:
        A new (uncompiled) ``tf.keras.Model``; ``model`` is not changed.

    Raises:
        ValueError: the model is not a single chain of layers.
    """
    layers = _chain(model)
    inp = tf.keras.Input(batch_shape=layers[0].input_shape[0] if isinstance(layers[0].input_shape, list)
                         else layers[0].input_shape, name=layers[0].name)
    x = inp
    for layer in layers[1:]:
        if isinstance(layer, tf.keras.layers.Dropout):
            continue
        if isinstance(layer, tf.keras.layers.MaxPooling1D) and max_to_avg_pool:
            new = tf.keras.layers.AveragePooling1D(layer.pool_size, strides=layer.strides, padding=layer.padding,
                                                   data_format=layer.data_format, name=layer.name)
        else:
            new = layer.__class__.from_config(layer.get_config())
            if hasattr(layer, "activation"):
                new.activation = layer.activation  # keep e.g. tf.nn.relu (the config would give keras' relu)
        x = new(x)
        new.set_weights(layer.get_weights())
    return tf.keras.Model(inp, x, name=f"{model.name}_inference")


# --------------------------------------------------------------------------------------------- convert


@dataclass
class Conversion:
    """A converted network.

    Attributes:
        converter: the ``nengo_dl.Converter`` (``.net`` is the Nengo network).
        keras_model: the Keras model that was converted (:func:`inference_model` of the source:
            dropout removed, max-pool -> average-pool when ``max_to_avg_pool``); in rate mode the
            Nengo network reproduces its outputs.
        source_model: the model passed to :func:`convert`.
        input_node: the ``nengo.Node`` the input is fed to (size ``L``).
        output_probe: the ``nengo.Probe`` on the logits (size ``n_classes``), unfiltered.
        neuron: the neuron type name (a key of :data:`NEURON_TYPES`) or ``None`` (rate mode).
        scale_firing_rates: the firing-rate scale applied to every ReLU layer.
        synapse: synaptic filter time constant (s) on every connection out of neurons, or ``None``.
        neuron_layers: Keras layer name -> ``nengo.ensemble.Neurons`` of every ReLU layer (the
            ones whose activity :func:`simulate` measures), in network order.
        spiking: layer name -> whether that layer's neurons spike (False in rate mode).
        layer_modes: Keras layer name -> how it was converted: ``"neurons"`` (ReLU),
            ``"rate-neurons"`` (sigmoid), ``"native"`` (transform/node), ``"fallback"``
            (TensorFlow ``TensorNode``), ``"removed"`` (dropout).
        notes: human-readable lines, one per layer, saying how it was converted.
    """

    converter: nengo_dl.Converter
    keras_model: tf.keras.Model
    source_model: tf.keras.Model
    input_node: nengo.Node
    output_probe: nengo.Probe
    neuron: str | None
    scale_firing_rates: float
    synapse: float | None
    neuron_layers: dict
    spiking: dict
    layer_modes: dict
    notes: list = field(default_factory=list)

    @property
    def net(self) -> nengo.Network:
        """The converted Nengo network."""
        return self.converter.net

    @property
    def n_classes(self) -> int:
        """Number of outputs (logits)."""
        return int(self.output_probe.size_in)


def _act_name(layer) -> str:
    act = getattr(layer, "activation", None)
    if act is None or act is tf.keras.activations.linear:
        return "linear"
    return getattr(act, "__name__", str(act))


def _geometry(layer) -> str:
    if isinstance(layer, tf.keras.layers.Conv1D):
        return (f"Conv1D {layer.filters} filters, kernel {layer.kernel_size[0]}, stride {layer.strides[0]}, "
                f"padding {layer.padding}")
    if isinstance(layer, tf.keras.layers.Dense):
        return f"Dense {layer.units} units"
    if isinstance(layer, _POOL_LAYERS):
        kind = "max" if isinstance(layer, tf.keras.layers.MaxPooling1D) else "average"
        return f"{kind}-pool, kernel {layer.pool_size[0]}, stride {layer.strides[0]}, padding {layer.padding}"
    return type(layer).__name__


def convert(model: tf.keras.Model, *, neuron: str | None = "SpikingRectifiedLinear", scale_firing_rates: float = 1.0,
            synapse: float | None = None, max_to_avg_pool: bool = True) -> Conversion:
    """Convert a trained Keras chain model (e.g. a phenotype network) to a Nengo network.

    Uses ``nengo_dl.Converter(allow_fallback=True, inference_only=True)`` on
    :func:`inference_model` of ``model``; ReLU activations become ``neuron`` neurons (via
    ``swap_activations`` on ``nengo.RectifiedLinear``), sigmoid ones stay ``nengo.Sigmoid`` rate
    neurons, linear ones passthrough nodes (see the module docstring for every layer kind).

    Args:
        model: the Keras model (input ``(L, 1)`` or ``(L,)``, output logits).
        neuron: a key of :data:`NEURON_TYPES`, or ``None`` for rate mode (ReLUs stay
            ``nengo.RectifiedLinear``; with ``synapse=None`` and one step the network then
            computes exactly the Keras model's outputs).
        scale_firing_rates: factor ``s > 0`` on the input of every ReLU layer, with the output
            amplitude divided by ``s`` (Rueckauer et al. 2017; NengoDL ``scale_firing_rates``).
            Not applied to sigmoid layers (their rate curve is not linear, scaling would change
            the output).
        synapse: lowpass time constant (seconds) on every connection leaving neurons (NengoDL
            ``synapse``), ``None`` for none; it smooths spike trains at the cost of a delay.
        max_to_avg_pool: replace max pooling by average pooling (a spiking network cannot take
            a max of spike trains natively); with ``False`` max-pools fall back to TensorFlow.

    Returns:
        A :class:`Conversion`; its ``notes`` say how each layer was converted.

    Raises:
        KeyError: an unknown ``neuron`` name.
        ValueError: ``scale_firing_rates <= 0``, or the model is not a chain.
    """
    if neuron is not None and neuron not in NEURON_TYPES:
        raise KeyError(f"unknown neuron type {neuron!r}; known: {', '.join(NEURON_TYPES)} (or None for rate mode)")
    scale = float(scale_firing_rates)
    if not scale > 0:
        raise KerasError(f"scale_firing_rates must be > 0, got {scale_firing_rates}")
    source_layers = _chain(model)
    inf = inference_model(model, max_to_avg_pool=max_to_avg_pool)
    relu_layers = [layer for layer in inf.layers if _act_name(layer) == "relu"]
    swap = {nengo.RectifiedLinear(): NEURON_TYPES[neuron]()} if neuron is not None and relu_layers else None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        converter = nengo_dl.Converter(
            inf, allow_fallback=True, inference_only=True, max_to_avg_pool=max_to_avg_pool,
            swap_activations=swap, scale_firing_rates={layer: scale for layer in relu_layers},
            synapse=synapse)
    with converter.net:
        # No state is carried between runs: every sample starts from the initial state.
        nengo_dl.configure_settings(stateful=False)
    # NengoDL leaves the connection from neurons into a fallback TensorNode unfiltered; give it
    # the synapse native connections get, so the TensorFlow layer sees filtered spike trains.
    if synapse is not None:
        for conn in converter.net.all_connections:
            if isinstance(conn.pre_obj, nengo.ensemble.Neurons) and isinstance(conn.post_obj, nengo_dl.TensorNode) \
                    and conn.synapse is None:
                conn.synapse = synapse

    neuron_desc = "RectifiedLinear rate neurons (rate mode)" if neuron is None else f"{neuron} spiking neurons"
    inf_by_name = {layer.name: layer for layer in inf.layers}
    notes, modes, neuron_layers, spiking = [], {}, {}, {}
    for src in source_layers[1:]:
        name = src.name
        if name not in inf_by_name:
            modes[name] = "removed"
            notes.append(f"{name}: Dropout (rate {src.rate}) removed - identity at inference (NengoDL has no "
                         f"Dropout converter; it would fall back to a TensorFlow TensorNode)")
            continue
        layer = inf_by_name[name]
        obj = converter.layers[layer]
        # Flatten returns its input's object (a fallback node upstream is not the flatten's doing)
        fallback = isinstance(obj, nengo_dl.TensorNode) and not isinstance(layer, tf.keras.layers.Flatten)
        if isinstance(src, tf.keras.layers.MaxPooling1D) and max_to_avg_pool:
            line = f"{name}: {_geometry(src)} REPLACED BY AVERAGE POOLING (max_to_avg_pool=True; outputs differ " \
                   f"from the Keras model's) -> "
        else:
            line = f"{name}: {_geometry(src)} -> "
        if fallback:
            modes[name] = "fallback"
            why = (" (same padding: TensorFlow excludes padded cells from the average, a convolution cannot)"
                   if isinstance(layer, tf.keras.layers.AveragePooling1D) and layer.padding == "same" else
                   " (max pooling has no native Nengo form)" if isinstance(layer, tf.keras.layers.MaxPooling1D)
                   else "")
            line += f"TensorFlow fallback TensorNode{why}: computed by TensorFlow, not neurons (non-spiking; " \
                    f"runs only in the NengoDL simulator)"
        elif isinstance(layer, _WEIGHT_LAYERS):
            kind = "nengo.Convolution transform" if isinstance(layer, tf.keras.layers.Conv1D) else "dense transform"
            act = _act_name(layer)
            if isinstance(obj, nengo.ensemble.Neurons) and act == "relu":
                modes[name] = "neurons"
                neuron_layers[name] = obj
                spiking[name] = bool(obj.ensemble.neuron_type.spiking)
                line += (f"native {kind}; relu -> {neuron_desc} ({obj.size_in} neurons, "
                         f"firing rates x{scale:g}, amplitude {obj.ensemble.neuron_type.amplitude:g})")
            elif isinstance(obj, nengo.ensemble.Neurons):
                modes[name] = "rate-neurons"
                line += (f"native {kind}; {act} -> {type(obj.ensemble.neuron_type).__name__} RATE neurons "
                         f"(not spiking, no firing-rate scaling; real-valued output)")
            else:
                modes[name] = "native"
                line += f"native {kind}; linear -> passthrough nengo.Node (real-valued output)"
        elif isinstance(layer, tf.keras.layers.BatchNormalization):
            modes[name] = "native"
            line += "folded into a fixed per-channel scale + bias (inference_only=True: moving mean/variance)"
        elif isinstance(layer, tf.keras.layers.Flatten):
            modes[name] = "native"
            line += "no-op (Nengo signals are flat vectors)"
        elif isinstance(layer, tf.keras.layers.AveragePooling1D):
            modes[name] = "native"
            line += "native nengo.Convolution transform with weights 1/kernel"
        else:
            modes[name] = "native"
            line += f"native ({type(obj).__name__})"
        notes.append(line)
    expected = ("Falling back to TensorNode", "falling back to a TensorNode", "Converting sequential model")
    for w in caught:
        msg = str(w.message)
        if not any(e in msg for e in expected):
            notes.append(f"NengoDL warning: {msg}")
    return Conversion(converter=converter, keras_model=inf, source_model=model,
                      input_node=converter.inputs[inf.input], output_probe=converter.outputs[inf.output],
                      neuron=neuron, scale_firing_rates=scale, synapse=synapse, neuron_layers=neuron_layers,
                      spiking=spiking, layer_modes=modes, notes=notes)


# --------------------------------------------------------------------------------------------- simulate


@dataclass
class SimResult:
    """Outputs and activity of a simulation (:func:`simulate`).

    Attributes:
        logits: float32 ``(N, num_steps, n_classes)``, the output node's value at every step.
        predictions: int64 ``(N,)``, argmax of the logits averaged over the last ``readout_steps`` steps.
        readout_steps: number of final steps averaged for ``predictions``.
        num_steps: time steps simulated per sample; ``dt``: step in seconds.
        firing_rates_hz: ReLU layer name -> mean firing rate (Hz) over its neurons, steps and
            samples (empty unless ``probe_layers``). In rate mode, the rate neurons' rate.
        spikes_per_inference: layer name -> spikes of the whole layer per sample (summed over
            neurons and steps, mean over samples). In rate mode: the expected count ``rate*dt*num_steps``.
        spikes_per_neuron: layer name -> float ``(n_neurons,)``, spikes of each neuron per sample
            (mean over samples), neurons in the layer's flattened channels-last order (position*C + channel).
        spiking: layer name -> whether the layer's neurons spike.
    """

    logits: np.ndarray
    predictions: np.ndarray
    readout_steps: int
    num_steps: int
    dt: float = DT
    firing_rates_hz: dict = field(default_factory=dict)
    spikes_per_inference: dict = field(default_factory=dict)
    spikes_per_neuron: dict = field(default_factory=dict)
    spiking: dict = field(default_factory=dict)

    def spiking_spikes_per_neuron(self) -> dict:
        """``spikes_per_neuron`` of the layers whose neurons spike (the input of :func:`count_synops`)."""
        return {k: v for k, v in self.spikes_per_neuron.items() if self.spiking.get(k)}


def _as_2d(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    if x.ndim == 3 and 1 in x.shape[1:]:
        x = x.reshape(x.shape[0], -1)
    if x.ndim != 2:
        raise KerasError(f"x must have shape (N, L), (N, 1, L) or (N, L, 1), got {x.shape}")
    return x


def _run(conversion: Conversion, x2d: np.ndarray, num_steps: int, minibatch_size: int, probe_layers: bool,
         keep_steps: bool, seed: int):
    """Simulate; returns logits (N, num_steps, C) and, per ReLU layer, spike counts per sample and neuron
    (N, n_neurons) or, with keep_steps, per step (N, num_steps, n_neurons)."""
    n = x2d.shape[0]
    if x2d.shape[1] != conversion.input_node.size_out:
        raise KerasError(f"x has {x2d.shape[1]} features, the network takes {conversion.input_node.size_out}")
    mb = max(1, min(int(minibatch_size), n))
    n_pad = -n % mb
    xs = np.concatenate([x2d, np.zeros((n_pad, x2d.shape[1]), np.float32)]) if n_pad else x2d
    net = conversion.net
    probes = {}
    if probe_layers:
        with net:
            probes = {name: nengo.Probe(obj, synapse=None) for name, obj in conversion.neuron_layers.items()}
    amplitudes = {name: float(obj.ensemble.neuron_type.amplitude) for name, obj in conversion.neuron_layers.items()}
    logits, counts = [], {name: [] for name in probes}
    try:
        # NengoDL draws initial neuron states (and Poisson spikes) with TensorFlow's and numpy's global
        # generators as well as the simulator seed: seeding all three makes a simulation repeatable.
        tf.random.set_seed(seed)
        np.random.seed(seed)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="No GPU support detected")
            sim = nengo_dl.Simulator(net, minibatch_size=mb, dt=DT, seed=seed, progress_bar=False)
        with sim:
            for start in range(0, len(xs), mb):
                batch = np.repeat(xs[start:start + mb, None, :], num_steps, axis=1)
                out = sim.predict_on_batch({conversion.input_node: batch}, n_steps=num_steps)  # NengoDL's name
                logits.append(np.asarray(out[conversion.output_probe], np.float32))
                for name, probe in probes.items():
                    # output is amplitude/dt per spike (rate neurons: amplitude * rate)
                    c = np.asarray(out[probe], np.float64) * (DT / amplitudes[name])
                    counts[name].append(c if keep_steps else c.sum(axis=1))
    finally:
        for p in probes.values():
            net.probes.remove(p)
    logits = np.concatenate(logits)[:n]
    return logits, {name: np.concatenate(v)[:n] for name, v in counts.items()}


def simulate(conversion: Conversion, x: np.ndarray, *, num_steps: int, minibatch_size: int = 32,
             probe_layers: bool = False, readout_steps: int = 10, seed: int = 0) -> SimResult:
    """Run the converted network on samples, each presented for ``num_steps`` steps of 1 ms.

    Each sample ``x[i]`` is tiled over time (input ``(N, num_steps, L)``) and simulated from the
    initial state (``nengo_dl.Simulator``, ``progress_bar=False``). The prediction is the argmax
    of the logits averaged over the last ``min(readout_steps, num_steps)`` steps: averaging a few
    steps smooths the spike noise left after the synapse (the NengoDL example reads only the
    last step, ``readout_steps=1``).

    Args:
        conversion: from :func:`convert`.
        x: float ``(N, L)`` (or ``(N, 1, L)`` / ``(N, L, 1)``), scaled as in training ([0, 1]).
        num_steps: time steps per sample (>= 1).
        minibatch_size: samples simulated together; ``N`` is padded to a multiple of it internally.
        probe_layers: also measure the activity of every ReLU layer (firing rates, spike counts).
            Memory per minibatch: ``minibatch_size * num_steps * n_neurons`` floats.
        readout_steps: number of final steps averaged for the prediction (>= 1).
        seed: simulator seed (initial membrane voltages of the spiking neurons, Poisson spikes); also
            seeds TensorFlow's and numpy's global generators, which NengoDL uses too, so that the
            same call gives the same result.

    Returns:
        :class:`SimResult`.

    Raises:
        ValueError: bad shapes (wrong ``L``), ``num_steps < 1`` or ``readout_steps < 1``.
    """
    if num_steps < 1 or readout_steps < 1:
        raise KerasError(f"num_steps and readout_steps must be >= 1, got {num_steps}, {readout_steps}")
    x2d = _as_2d(x)
    logits, counts = _run(conversion, x2d, int(num_steps), minibatch_size, probe_layers, False, seed)
    k = min(int(readout_steps), int(num_steps))
    preds = logits[:, -k:, :].mean(axis=1).argmax(axis=1).astype(np.int64)
    res = SimResult(logits=logits, predictions=preds, readout_steps=k, num_steps=int(num_steps),
                    spiking=dict(conversion.spiking))
    for name, c in counts.items():  # c: (N, n_neurons) spikes per sample and neuron
        per_neuron = c.mean(axis=0)
        res.spikes_per_neuron[name] = per_neuron
        res.spikes_per_inference[name] = float(per_neuron.sum())
        res.firing_rates_hz[name] = float(per_neuron.mean() / (num_steps * DT))
    return res


# --------------------------------------------------------------------------------------------- synops


@dataclass
class SynOps:
    """Operations and energy of one inference (energy convention of :mod:`spiking.specs.energy`).

    Attributes:
        macs: multiply-accumulates of the weight layers that receive real-valued (non-spike)
            input: the first layer on the input, and any layer after a linear or rate layer.
        mac_layers: names of those layers.
        synops: synaptic operations (accumulates): spikes x fan-out, summed over spiking layers.
        synops_per_layer: spiking layer name -> its spikes x their fan-out.
        fan_out: spiking layer name -> float ``(n_neurons,)`` synapses each neuron reaches.
        energy_pj: ``macs * E_MAC_PJ + synops * E_AC_PJ`` (picojoules).
        convention: :data:`spiking.specs.energy.CONVENTION`.
    """

    macs: int
    mac_layers: list
    synops: float
    synops_per_layer: dict
    fan_out: dict
    energy_pj: float
    convention: str = CONVENTION


def _window_matrix(n_in: int, k: int, s: int, padding: str) -> np.ndarray:
    """Boolean (n_in, n_out): input position i lies in the window of output o (TensorFlow 1-D geometry)."""
    if padding == "valid":
        n_out, left = (n_in - k) // s + 1, 0
    else:
        n_out = math.ceil(n_in / s)
        left = max((n_out - 1) * s + k - n_in, 0) // 2
    start = np.arange(n_out) * s - left
    i = np.arange(n_in)[:, None]
    return (i >= start[None, :]) & (i < start[None, :] + k)


def count_synops(model, spikes_per_neuron: Mapping[str, np.ndarray | float]) -> SynOps:
    """Synaptic operations and energy per inference of a converted chain network.

    For each spiking layer, its spikes x their fan-out: the number of neurons (synapses) of the
    next weight layer each of its neurons reaches through the linear operations in between,
    which are folded into that layer's weights (pooling = a convolution with the pool window,
    batch-norm = per-channel scale, dropout = identity, flatten = reindexing). Fan-out of a
    neuron at position ``i`` (any channel) into a Conv1D with ``F`` filters:
    ``F x |{outputs whose window (after the pooling windows) contains i}|``, exact TensorFlow 1-D
    geometry (stride, valid/same padding with the extra pad on the right); into a Dense layer
    with ``U`` units: ``U`` (0 for a neuron no pooling window covers). Weight layers whose input
    is real-valued (the network input, or a linear / sigmoid-rate layer's output) instead cost
    their MACs, as :meth:`spiking.specs.phenotype.Phenotype.count_macs` counts them (conv:
    ``n_out x F x K x C_in``, dense: ``n_in x U``). Biases, neuron updates and memory traffic
    are not counted (:data:`spiking.specs.energy.CONVENTION`).

    Approximations: a max-pool kept as max (``max_to_avg_pool=False``) is counted by its window
    connectivity like an average pool (a max of spike trains is not a linear fold), and a
    fallback (TensorFlow) pooling node likewise as if folded into the next layer's weights.

    Args:
        model: the Keras chain model (source or converted one, e.g. ``Conversion.keras_model``),
            or a :class:`Conversion`.
        spikes_per_neuron: spiking layer name -> spikes per inference of each neuron (float
            ``(n_neurons,)`` in channels-last order, e.g. ``SimResult.spiking_spikes_per_neuron()``)
            or a scalar total for the layer; a scalar is multiplied by the layer's MEAN fan-out
            (exact only if spikes are spread evenly: an approximation).
            Layers not named are treated as non-spiking (real-valued output).

    Returns:
        :class:`SynOps`.

    Raises:
        ValueError: a name that is not a Conv1D/Dense layer of the model, an array of the wrong
            size, negative counts, or a model that is not a chain.
    """
    if isinstance(model, Conversion):
        model = model.keras_model
    layers = _chain(model)
    names = {layer.name: layer for layer in layers}
    for name in spikes_per_neuron:
        if name not in names or not isinstance(names[name], _WEIGHT_LAYERS):
            raise KerasError(f"{name!r} is not a Conv1D/Dense layer of the model")
    macs, mac_layers, per_layer, fan_outs = 0, [], {}, {}
    src = None  # (name, reach) while the current tensor carries (linearly transformed) spikes
    flat = False
    for layer in layers[1:]:
        in_shape = tuple(layer.input_shape[1:])
        if isinstance(layer, _WEIGHT_LAYERS):
            if isinstance(layer, tf.keras.layers.Conv1D):
                k, s = layer.kernel_size[0], layer.strides[0]
                n_out = layer.output_shape[1]
                layer_macs = n_out * layer.filters * k * in_shape[-1]
            else:
                layer_macs = int(np.prod(in_shape)) * layer.units
            if src is None:
                macs += int(layer_macs)
                mac_layers.append(layer.name)
            else:
                name, reach = src
                if isinstance(layer, tf.keras.layers.Conv1D):
                    conv = _window_matrix(in_shape[0], k, s, layer.padding)
                    n_reach = (reach.astype(np.int64) @ conv.astype(np.int64) > 0).sum(axis=1)
                    fan_pos = n_reach * layer.filters  # per source position
                else:
                    fan_pos = reach.any(axis=1).astype(np.int64) * layer.units
                src_layer = names[name]
                channels = src_layer.output_shape[-1] if isinstance(src_layer, tf.keras.layers.Conv1D) else 1
                fan = np.repeat(fan_pos.astype(np.float64), channels)  # neuron index = position*C + channel
                spikes = spikes_per_neuron[name]
                if np.ndim(spikes) == 0:
                    total = float(spikes)
                    if total < 0:
                        raise KerasError(f"{name}: negative spike count {total}")
                    ops = total * float(fan.mean())
                else:
                    spikes = np.asarray(spikes, np.float64).ravel()
                    if spikes.size != fan.size:
                        raise KerasError(f"{name}: {spikes.size} spike counts for {fan.size} neurons")
                    if (spikes < 0).any():
                        raise KerasError(f"{name}: negative spike counts")
                    ops = float(spikes @ fan)
                per_layer[name] = ops
                fan_outs[name] = fan
            if layer.name in spikes_per_neuron:
                if isinstance(layer, tf.keras.layers.Conv1D):
                    src, flat = (layer.name, np.eye(layer.output_shape[1], dtype=bool)), False
                else:
                    src, flat = (layer.name, np.eye(layer.units, dtype=bool)), True
            else:
                src = None
        elif isinstance(layer, _POOL_LAYERS):
            if src is not None:
                pool = _window_matrix(in_shape[0], layer.pool_size[0], layer.strides[0], layer.padding)
                src = (src[0], (src[1].astype(np.int64) @ pool.astype(np.int64)) > 0)
        elif isinstance(layer, tf.keras.layers.Flatten):
            if src is not None and not flat:
                # every flattened element of a reached position connects onward: keep "reaches anything"
                src, flat = (src[0], src[1].any(axis=1, keepdims=True)), True
        elif not isinstance(layer, _IDENTITY_LAYERS):
            raise KerasError(f"count_synops does not handle layer {layer.name!r} ({type(layer).__name__})")
    synops = float(sum(per_layer.values()))
    return SynOps(macs=macs, mac_layers=mac_layers, synops=synops, synops_per_layer=per_layer, fan_out=fan_outs,
                  energy_pj=macs * E_MAC_PJ + synops * E_AC_PJ)


# --------------------------------------------------------------------------------------------- figure


def plot_layer_activity(model: tf.keras.Model, x_one_sample: np.ndarray, *, scales=(1, 300), num_steps: int = 100,
                        path, neuron: str = "SpikingRectifiedLinear", synapse: float | None = 0.005,
                        class_names: list[str] | None = None,
                        n_show: int = 30, seed: int = 0) -> Path:
    """The study's figure: one sample's spiking activity of every neuron layer, per firing-rate scale.

    One column per scale in ``scales``, one row per ReLU layer plus a last row with the logits
    over time. Each layer panel is a spike raster of the ``n_show`` neurons that spike most at
    the largest scale (the same neurons in every column), titled with the layer's mean firing
    rate (Hz) over all its neurons. At scale 1 a converted network hardly spikes (its ReLU
    activations of order 1 give about 1 spike per second); scaling the firing rates
    (Rueckauer et al. 2017) makes it spike while keeping the expected output.

    Args:
        model: trained Keras chain model (see :func:`convert`).
        x_one_sample: float ``(L,)`` (or ``(1, L)``, ``(L, 1)``, ``(1, 1, L)``), one scaled sample.
        scales: firing-rate scales, one column each.
        num_steps: time steps (1 ms) simulated.
        path: PNG file to write (parent folders are created).
        neuron, synapse: as in :func:`convert`.
        class_names: legend of the logits (TCGA cohorts); default ``class 0..``.
        n_show: neurons shown per layer.
        seed: simulator seed.

    Returns:
        The path written.

    Raises:
        ValueError: not exactly one sample of the model's input size, an empty ``scales``, or a
            model without ReLU layers.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # Agg canvas: no display, no pyplot state
    from matplotlib.figure import Figure

    x = np.asarray(x_one_sample, np.float32).reshape(1, -1)
    n_in = int(np.prod(model.input_shape[1:]))
    if x.shape[1] != n_in:
        raise KerasError(f"expected one sample of {n_in} features, got an array of shape {np.shape(x_one_sample)}")
    scales = list(scales)
    if not scales:
        raise KerasError("scales is empty")
    runs = []
    for s in scales:
        conv = convert(model, neuron=neuron, scale_firing_rates=s, synapse=synapse)
        if not conv.neuron_layers:
            raise KerasError("the model has no ReLU layer: nothing spikes")
        logits, counts = _run(conv, x, int(num_steps), 1, True, True, seed)
        runs.append((s, conv, logits[0], {k: v[0] for k, v in counts.items()}))  # (num_steps, n_neurons)
    layer_names = list(runs[0][1].neuron_layers)
    ref = runs[int(np.argmax(scales))][3]
    shown = {}
    for name in layer_names:
        total = ref[name].sum(axis=0)
        shown[name] = np.sort(np.argsort(-total, kind="stable")[:n_show])
    fig = Figure(figsize=(5.0 * len(scales), 2.2 * (len(layer_names) + 1)), constrained_layout=True)
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(layer_names) + 1, len(scales), squeeze=False)
    t = (np.arange(num_steps) + 1) * DT * 1000.0  # ms
    for col, (s, conv, logits, counts) in enumerate(runs):
        for row, name in enumerate(layer_names):
            ax = axes[row][col]
            c = counts[name]
            rate = c.sum() / (c.shape[1] * num_steps * DT)
            events = [t[c[:, j] > 0.5] for j in shown[name]]
            ax.eventplot(events, colors="k", linelengths=0.8, linewidths=0.8)
            ax.set_xlim(0, num_steps * DT * 1000.0)
            ax.set_ylim(-0.5, len(shown[name]) - 0.5)
            ax.set_ylabel("neuron")
            ax.set_title(f"{name} - scale {s:g}: mean {rate:.2f} Hz ({c.shape[1]} neurons, "
                         f"{int(round(c.sum()))} spikes)", fontsize=9)
        ax = axes[-1][col]
        ax.plot(t, logits)
        if col == 0:
            labels = list(class_names) if class_names else [f"class {j}" for j in range(logits.shape[1])]
            ax.legend(labels, fontsize=7, ncol=2)
        ax.set_xlabel("time (ms)")
        ax.set_ylabel("logits")
        ax.set_title(f"output - scale {s:g} ({conv.neuron}, synapse {synapse})", fontsize=9)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100, format="png")
    return path


def keras_macs(model) -> int:
    """MACs of one inference through the Conv1D and Dense layers of a Keras model (input (L, 1))."""
    import tensorflow as tf

    total = 0
    for layer in model.layers:
        if isinstance(layer, tf.keras.layers.Conv1D):
            out_len, filters = layer.output_shape[1], layer.output_shape[2]
            total += int(out_len) * int(filters) * int(layer.kernel_size[0]) * int(layer.input_shape[-1])
        elif isinstance(layer, tf.keras.layers.Dense):
            total += int(np.prod(layer.input_shape[1:])) * int(layer.units)
    return total
