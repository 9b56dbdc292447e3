"""Keras phenotype network -> NengoDL spiking network (spiking.keras.conversion)."""

from __future__ import annotations

import nengo
import nengo_dl
import numpy as np
import pytest
import tensorflow as tf

from spiking.evaluation.metrics import classification_metrics
from spiking.keras.conversion import NEURON_TYPES, convert, count_synops, inference_model, plot_layer_activity, simulate
from spiking.keras.phenotype import build_keras_model
from spiking.specs.energy import E_AC_PJ, E_MAC_PJ
from spiking.specs.phenotype import parse_phenotype

LEARN = "learning:adam lr:0.001 beta1:0.9 beta2:0.999 decay:0.0 early_stop:3 batch_size:16"

#: Not trained: same-padded pools (TensorFlow fallback), a sigmoid (rate) conv, a linear conv,
#: batch-norm after it, relu/sigmoid fc layers and dropout between them.
MIXED = ("layer:conv num-filters:4 filter-shape:5 stride:3 padding:same act:relu bias:True "
         "layer:pool-max kernel-size:3 stride:2 padding:same "
         "layer:conv num-filters:4 filter-shape:3 stride:1 padding:same act:sigmoid bias:False "
         "layer:pool-avg kernel-size:3 stride:2 padding:same "
         "layer:conv num-filters:4 filter-shape:3 stride:2 padding:valid act:linear bias:True "
         "layer:batch-norm layer:fc num-units:16 act:relu bias:True layer:dropout rate:0.5 "
         f"layer:fc num-units:8 act:sigmoid bias:True {LEARN}")


def _keras_logits(model, x2d):
    return model.predict(x2d[:, :, None], verbose=0)


@pytest.fixture(scope="module")
def mixed_model(prepared):
    model = build_keras_model(parse_phenotype(MIXED), prepared["L"], 5, seed=1)
    bn = model.get_layer("batch_norm_5")  # non-trivial batch-norm statistics
    gamma, beta, mean, var = bn.get_weights()
    bn.set_weights([gamma * 1.5, beta + 0.1, mean + 0.2, var * 2.0])
    return model


def test_rate_mode_reproduces_the_keras_model_with_max_pool_as_average(trained, prepared):
    model, x, y = trained["model"], prepared["x"]["test"], prepared["y"]["test"]
    conv = convert(model, neuron=None, synapse=None)
    res = simulate(conv, x, num_steps=1, minibatch_size=32)
    assert res.logits.shape == (len(x), 1, 5) and res.predictions.shape == (len(x),)
    # the network converted is the Keras model with max-pool replaced by average-pool (and no dropout)
    inf = inference_model(model)
    assert isinstance(inf.get_layer("pool_max_1"), tf.keras.layers.AveragePooling1D)
    assert "dropout_3" not in [layer.name for layer in inf.layers]
    want = _keras_logits(inf, x)
    np.testing.assert_allclose(res.logits[:, 0], want, rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(res.predictions, want.argmax(axis=1))
    # ... which differs from the source model's outputs: the notes must say so
    assert not np.allclose(want, _keras_logits(model, x), atol=1e-4)
    note = next(n for n in conv.notes if n.startswith("pool_max_1"))
    assert "AVERAGE POOLING" in note and "native" in note
    assert any(n.startswith("batch_norm_2") and "folded" in n for n in conv.notes)
    assert any(n.startswith("dropout_3") and "removed" in n for n in conv.notes)
    assert conv.layer_modes == {"conv_0": "neurons", "pool_max_1": "native", "batch_norm_2": "native",
                                "dropout_3": "removed", "flatten": "native", "fc_4": "neurons", "logits": "native"}
    # still a good classifier
    assert classification_metrics(y, res.predictions, prepared["classes"])["balanced_accuracy"] > 0.6


def test_rate_mode_with_fallback_pools_sigmoid_and_linear_layers(mixed_model, prepared):
    x = prepared["x"]["test"][:24]
    conv = convert(mixed_model, neuron=None, synapse=None)
    res = simulate(conv, x, num_steps=1, minibatch_size=12)
    want = _keras_logits(conv.keras_model, x)
    np.testing.assert_allclose(res.logits[:, 0], want, rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(res.predictions, want.argmax(axis=1))
    assert conv.layer_modes == {
        "conv_0": "neurons", "pool_max_1": "fallback", "conv_2": "rate-neurons", "pool_avg_3": "fallback",
        "conv_4": "native", "batch_norm_5": "native", "flatten": "native", "fc_6": "neurons",
        "dropout_7": "removed", "fc_8": "rate-neurons", "logits": "native"}
    notes = {n.split(":")[0]: n for n in conv.notes}
    assert "AVERAGE POOLING" in notes["pool_max_1"] and "fallback" in notes["pool_max_1"]
    assert "fallback" in notes["pool_avg_3"] and "same padding" in notes["pool_avg_3"]
    assert "Sigmoid RATE neurons" in notes["conv_2"] and "Sigmoid RATE neurons" in notes["fc_8"]
    assert "passthrough" in notes["conv_4"]
    assert list(conv.neuron_layers) == ["conv_0", "fc_6"]


def test_without_max_pool_the_conversion_equals_the_source_model(prepared):
    ph = parse_phenotype("layer:conv num-filters:3 filter-shape:6 stride:2 padding:same act:relu bias:True "
                         "layer:pool-avg kernel-size:2 stride:2 padding:valid layer:batch-norm "
                         f"layer:fc num-units:12 act:relu bias:False {LEARN}")
    model = build_keras_model(ph, prepared["L"], 5, seed=3)
    x = prepared["x"]["test"][:16]
    res = simulate(convert(model, neuron=None, scale_firing_rates=7.0), x, num_steps=1, minibatch_size=16)
    want = _keras_logits(model, x)  # scaling firing rates keeps ReLU outputs
    np.testing.assert_allclose(res.logits[:, 0], want, rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(res.predictions, want.argmax(axis=1))


def test_spiking_network_classifies_real_data(trained, prepared):
    x, y = prepared["x"]["test"], prepared["y"]["test"]
    conv = convert(trained["model"], neuron="SpikingRectifiedLinear", scale_firing_rates=200, synapse=0.005)
    assert conv.spiking == {"conv_0": True, "fc_4": True}
    # NengoDL's own firing-rate scaling: amplitude 1/scale
    assert conv.neuron_layers["conv_0"].ensemble.neuron_type.amplitude == pytest.approx(1 / 200)
    res = simulate(conv, x, num_steps=60, minibatch_size=30)
    assert res.logits.shape == (len(x), 60, 5) and res.readout_steps == 10
    np.testing.assert_array_equal(res.predictions, res.logits[:, -10:].mean(axis=1).argmax(axis=1))
    m = classification_metrics(y, res.predictions, prepared["classes"])
    assert m["balanced_accuracy"] > 0.6  # chance 0.2


def test_spike_counts_follow_the_scaled_rates(trained, prepared):
    """Spike counts of the first layer (constant input from step 0) equal the expected counts
    rate * time of the scaled ReLU within one spike (the random initial voltage); firing rates
    grow with the scale: at scale 1 the network hardly spikes."""
    model, x = trained["model"], prepared["x"]["test"][:20]
    num_steps = 50
    spk = {}
    for scale in (1, 300):
        conv = convert(model, neuron="SpikingRectifiedLinear", scale_firing_rates=scale, synapse=0.005)
        spk[scale] = simulate(conv, x, num_steps=num_steps, minibatch_size=20, probe_layers=True)
    rate = simulate(convert(model, neuron=None, scale_firing_rates=300), x, num_steps=num_steps, minibatch_size=20,
                    probe_layers=True)
    diff = np.abs(spk[300].spikes_per_neuron["conv_0"] - rate.spikes_per_neuron["conv_0"])
    assert diff.max() <= 1.0 + 1e-3
    # expected count = activation x scale x time: check against Keras' own activations
    act = tf.keras.Model(model.input, model.get_layer("conv_0").output)(x[:, :, None]).numpy()
    expected = act.reshape(len(x), -1).mean(axis=0) * 300 * num_steps * 1e-3
    np.testing.assert_allclose(rate.spikes_per_neuron["conv_0"], expected, rtol=1e-3, atol=1e-3)
    for name in ("conv_0", "fc_4"):
        lo, hi = spk[1].firing_rates_hz[name], spk[300].firing_rates_hz[name]
        assert hi > 20 * lo and hi > 5.0
        assert spk[300].spikes_per_inference[name] == pytest.approx(spk[300].spikes_per_neuron[name].sum())
    assert spk[1].firing_rates_hz["conv_0"] < 1.0  # < 1 Hz: hardly any spikes in 50 ms
    # spike counts are whole numbers per sample, so the means are multiples of 1/20
    counts = spk[300].spikes_per_neuron["conv_0"] * len(x)
    np.testing.assert_allclose(counts, np.round(counts), atol=1e-3)


def test_every_neuron_type_runs_and_the_fallback_gets_the_synapse(mixed_model, prepared):
    x = prepared["x"]["test"][:4]
    for name in NEURON_TYPES:
        conv = convert(mixed_model, neuron=name, scale_firing_rates=50, synapse=0.01)
        res = simulate(conv, x, num_steps=10, minibatch_size=4, probe_layers=True)
        assert conv.spiking == {"conv_0": True, "fc_6": True}, name
        assert np.isfinite(res.logits).all() and res.spikes_per_inference["conv_0"] > 0, name
        into_fallback = [c for c in conv.net.all_connections
                         if isinstance(c.pre_obj, nengo.ensemble.Neurons) and isinstance(c.post_obj, nengo_dl.TensorNode)]
        assert into_fallback and all(c.synapse == nengo.Lowpass(0.01) for c in into_fallback)
    # the probes added for one simulation are gone afterwards
    n_probes = len(conv.net.all_probes)
    simulate(conv, x, num_steps=2, minibatch_size=4)
    assert len(conv.net.all_probes) == n_probes == 1
    with pytest.raises(KeyError):
        convert(mixed_model, neuron="Izhikevich")
    with pytest.raises(ValueError):
        convert(mixed_model, scale_firing_rates=0)
    with pytest.raises(ValueError):
        simulate(conv, x[:, :-1], num_steps=2)
    with pytest.raises(ValueError):
        simulate(conv, x, num_steps=0)


# ----------------------------------------------------------------------------------------- synops


def _hand_model(ph_layers: str):
    return build_keras_model(parse_phenotype(f"{ph_layers} {LEARN}"), 8, 2, seed=0)


def test_synops_match_a_hand_count():
    # L=8 -> conv_0 (2 filters, kernel 3, valid): 6 positions x 2 channels = 12 neurons, MACs 6*2*3*1 = 36
    # -> pool_max_1 (kernel 2, stride 1, valid): 5 positions; window j covers conv positions {j, j+1}
    # -> conv_2 (4 filters, kernel 2, stride 2, valid): 2 outputs; o0 <- pool {0, 1}, o1 <- pool {2, 3}
    #    (pool 4 reaches nothing). conv_0 position p reaches conv_2 outputs:
    #    p0 {o0}, p1 {o0}, p2 {o0, o1}, p3 {o1}, p4 {o1}, p5 {} -> fan-out x 4 filters = 4 4 8 4 4 0
    # -> flatten (8) -> fc_3 (3 units): fan-out 3 per conv_2 neuron -> logits (2): fan-out 2 per fc_3 neuron
    model = _hand_model("layer:conv num-filters:2 filter-shape:3 stride:1 padding:valid act:relu bias:True "
                        "layer:pool-max kernel-size:2 stride:1 padding:valid "
                        "layer:conv num-filters:4 filter-shape:2 stride:2 padding:valid act:relu bias:True "
                        "layer:fc num-units:3 act:relu bias:True")
    spikes = {"conv_0": np.arange(12.0), "conv_2": np.full(8, 2.0), "fc_3": np.array([1.0, 2.0, 3.0])}
    ops = count_synops(model, spikes)
    # conv_0 neuron index = position*2 + channel: position p has spikes 2p + 2p+1 = 4p + 1
    want_conv0 = 1 * 4 + 5 * 4 + 9 * 8 + 13 * 4 + 17 * 4 + 21 * 0
    assert want_conv0 == 216
    assert ops.synops_per_layer == {"conv_0": 216.0, "conv_2": 16 * 3.0, "fc_3": 6 * 2.0}
    assert ops.synops == 276.0
    assert ops.macs == 36 and ops.mac_layers == ["conv_0"]
    assert ops.energy_pj == pytest.approx(36 * E_MAC_PJ + 276 * E_AC_PJ) == pytest.approx(414.0)
    np.testing.assert_array_equal(ops.fan_out["conv_0"], np.repeat([4, 4, 8, 4, 4, 0], 2))
    # a scalar total uses the mean fan-out (approximation)
    approx = count_synops(model, {"conv_0": 24.0})
    assert approx.synops == pytest.approx(24.0 * np.mean(np.repeat([4, 4, 8, 4, 4, 0], 2)))
    # a layer left out is not spiking: it feeds real values, so the next weight layer costs MACs
    # (conv_2 still receives conv_0's spikes: 2 x (4+4+8+4+4+0) synops; fc_3: 8*3 MACs, logits: 3*2 MACs)
    real = count_synops(model, {"conv_0": np.ones(12)})
    assert real.mac_layers == ["conv_0", "fc_3", "logits"] and real.macs == 36 + 8 * 3 + 3 * 2
    assert real.synops == 48.0


def test_synops_same_padding_with_stride():
    # conv_0 as above (6 positions, 2 channels) -> conv_1 (1 filter, kernel 3, stride 2, same): 3 outputs,
    # padding 1 in total, all on the right: o0 <- {0,1,2}, o1 <- {2,3,4}, o2 <- {4,5,pad}
    # fan-out per position: 1 1 2 1 2 1; conv_1 (3 neurons) -> flatten -> logits (2)
    model = _hand_model("layer:conv num-filters:2 filter-shape:3 stride:1 padding:valid act:relu bias:True "
                        "layer:conv num-filters:1 filter-shape:3 stride:2 padding:same act:relu bias:True")
    ops = count_synops(model, {"conv_0": np.ones(12), "conv_1": np.ones(3)})
    np.testing.assert_array_equal(ops.fan_out["conv_0"], np.repeat([1, 1, 2, 1, 2, 1], 2))
    assert ops.synops_per_layer == {"conv_0": 16.0, "conv_1": 6.0}
    with pytest.raises(ValueError):
        count_synops(model, {"conv_0": np.ones(11)})
    with pytest.raises(ValueError):
        count_synops(model, {"flatten": 3.0})


@pytest.mark.parametrize("layers", [
    "layer:conv num-filters:32 filter-shape:8 stride:2 padding:valid act:relu bias:True "
    "layer:pool-max kernel-size:4 stride:2 padding:valid layer:batch-norm layer:dropout rate:0.3 "
    "layer:fc num-units:256 act:relu bias:True",
    "layer:pool-avg kernel-size:3 stride:2 padding:same "
    "layer:conv num-filters:5 filter-shape:4 stride:3 padding:same act:linear bias:False",
    "",
])
def test_without_spikes_the_cost_is_the_phenotype_macs(layers):
    ph = parse_phenotype(f"{layers} {LEARN}")
    model = build_keras_model(ph, 120, 4, seed=0)
    assert count_synops(model, {}).macs == ph.count_macs(120, 4)


def test_synops_of_a_simulation(trained, prepared):
    conv = convert(trained["model"], neuron="SpikingRectifiedLinear", scale_firing_rates=100, synapse=0.005)
    res = simulate(conv, prepared["x"]["test"][:10], num_steps=20, minibatch_size=10, probe_layers=True)
    ops = count_synops(conv, res.spiking_spikes_per_neuron())
    # first layer on the input: 260 positions x 8 filters x kernel 8 x 1 channel
    assert ops.mac_layers == ["conv_0"] and ops.macs == 260 * 8 * 8
    # fc_4 spikes each reach the 5 logits; conv_0 spikes each reach the 32 fc units (all are pooled)
    assert ops.synops_per_layer["fc_4"] == pytest.approx(5 * res.spikes_per_inference["fc_4"])
    assert ops.synops_per_layer["conv_0"] == pytest.approx(32 * res.spikes_per_inference["conv_0"])


def test_plot_layer_activity_writes_a_png(trained, prepared, tmp_path):
    path = plot_layer_activity(trained["model"], prepared["x"]["test"][0], scales=(1, 300), num_steps=30,
                               path=tmp_path / "fig" / "activity.png")
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
    with pytest.raises(ValueError):
        plot_layer_activity(trained["model"], prepared["x"]["test"][:2], num_steps=5, path=tmp_path / "x.png")


def test_a_simulation_is_repeatable_and_its_seed_matters(trained, prepared):
    """NengoDL draws initial states with TensorFlow's and numpy's global generators: simulate seeds them."""
    x = prepared["x"]["test"][:20]
    conv = convert(trained["model"], neuron="RegularSpiking", scale_firing_rates=30, synapse=None)
    a = simulate(conv, x, num_steps=8, minibatch_size=10, probe_layers=True)
    np.random.rand(5)  # whatever ran in between
    b = simulate(conv, x, num_steps=8, minibatch_size=10, probe_layers=True)
    np.testing.assert_array_equal(a.logits, b.logits)
    assert a.spikes_per_inference == b.spikes_per_inference
    c = simulate(conv, x, num_steps=8, minibatch_size=10, probe_layers=True, seed=1)
    assert not np.array_equal(a.logits, c.logits)  # other initial voltages, other spike times
