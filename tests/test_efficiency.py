"""Operation counts, energy and input encodings, checked against hand counts on tiny networks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from spiking.evaluation.evaluate import add_energy_ratios
from spiking.models.cnn import CNN1d, CNNArch
from spiking.models.encoding import DELTA_THRESHOLD, ENCODINGS, LATENCY_THRESHOLD, encode
from spiking.models.operations import count_operations
from spiking.models.snn import SpikingCNN1d
from spiking.specs.energy import CONVENTION, E_AC_PJ, E_MAC_PJ, energy_pj

# L = 20: s1 = (20 - 3 + 1) // 2 = 9, s2 = (9 - 2 + 1) // 2 = 4, s3 = 4 - 2 + 1 = 3.
TINY = CNNArch(w1=2, wd1=3, h1=2, w2=2, wd2=2, h2=2, w3=2, wd3=2, h3=1)
L, N_OUT = 20, 3


def _set_weights(model: torch.nn.Module, value: float) -> None:
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.fill_(0.0 if name.endswith("bias") else value)


def _conv_fanout(in_len: int, k: int, out_ch: int) -> np.ndarray:
    """Fan-out of each input position of a stride-1 conv without padding (hand formula)."""
    out_len = in_len - k + 1
    p = np.arange(in_len)
    return out_ch * (np.minimum(p, out_len - 1) - np.maximum(0, p - k + 1) + 1)


# ---------------------------------------------------------------------------- hand counts
def test_all_firing_network_matches_hand_count():
    """All weights 1, biases 0, input 1, beta 1: every LIF neuron fires at every step, so each
    spiking layer's SynOps equal its dense count, which we can write down by hand."""
    T = 2
    snn = SpikingCNN1d(L, TINY, N_OUT, beta=1.0, num_steps=T)
    _set_weights(snn, 1.0)
    eff = count_operations(snn, torch.ones(4, 1, L))
    rows = {r["layer"]: r for r in eff["layers"]}
    # conv1: 2 out channels x 18 out positions x (1 in channel x kernel 3), computed once (direct input)
    assert rows["conv1"]["kind"] == "MAC" and rows["conv1"]["ops"] == 2 * 18 * 3
    # conv2: 2 x (9 - 2 + 1) x 2 x 2 per step; conv3: 2 x (4 - 2 + 1) x 2 x 2; fc: 6 inputs x 3 outputs
    assert rows["conv2"]["kind"] == "AC" and rows["conv2"]["ops"] == T * 2 * 8 * 2 * 2
    assert rows["conv3"]["ops"] == T * 2 * 3 * 2 * 2
    assert rows["fc"]["ops"] == T * 6 * 3
    for name in ("conv2", "conv3", "fc"):
        assert rows[name]["dense_ops"] == rows[name]["ops"]  # everything fired
    assert eff["macs"] == 108 and eff["synops"] == 128 + 48 + 36
    assert eff["energy_pj"] == pytest.approx(108 * 4.6 + 212 * 0.9)
    rates = {n["layer"]: n["firing_rate"] for n in eff["neurons"]}
    assert rates == {"lif1": 1.0, "lif2": 1.0, "lif3": 1.0, "lif_out": 1.0}
    assert eff["convention"] == CONVENTION and "memory traffic" in CONVENTION


def test_partial_firing_matches_fanout_formula():
    """Random weights and inputs: SynOps of each layer = sum over its input spikes of the fan-out
    computed by hand from the spike trains (edges of the feature map have smaller fan-out)."""
    torch.manual_seed(1)
    T = 3
    snn = SpikingCNN1d(L, TINY, N_OUT, beta=0.9, num_steps=T)
    with torch.no_grad():
        for p in snn.parameters():
            p.uniform_(-0.3, 1.0)
    x = torch.rand(5, 1, L)
    tr = snn.trace(x)
    s1, s2, _ = snn.lengths
    spk1 = tr["lif1"]["spikes"].reshape(T, 5, 2, s1).numpy()
    spk2 = tr["lif2"]["spikes"].reshape(T, 5, 2, s2).numpy()
    spk3 = tr["lif3"]["spikes"].numpy()
    assert 0 < spk1.mean() < 1 and spk2.sum() > 0  # the check is not trivial
    want = {
        "conv2": (spk1 * _conv_fanout(s1, 2, 2)).sum() / 5,
        "conv3": (spk2 * _conv_fanout(s2, 2, 2)).sum() / 5,
        "fc": spk3.sum() * N_OUT / 5,
    }
    eff = count_operations(snn, x, batch_size=2)  # batches of 2, 2, 1: per-sample mean over all
    rows = {r["layer"]: r for r in eff["layers"]}
    for name, v in want.items():
        assert rows[name]["ops"] == pytest.approx(v, rel=1e-12), name
    spikes = {n["layer"]: n["spikes"] for n in eff["neurons"]}
    assert spikes["lif1"] == pytest.approx(spk1.sum() / 5)


def test_cnn_macs_are_dense_hand_count():
    cnn = CNN1d(L, TINY, N_OUT)
    eff = count_operations(cnn, torch.rand(3, 1, L))
    rows = {r["layer"]: r for r in eff["layers"]}
    assert {r["kind"] for r in eff["layers"]} == {"MAC"}
    assert rows["conv1"]["ops"] == 2 * 18 * 1 * 3
    assert rows["conv2"]["ops"] == 2 * 8 * 2 * 2
    assert rows["conv3"]["ops"] == 2 * 3 * 2 * 2
    assert rows["fc"]["ops"] == 6 * 3
    assert eff["macs"] == 108 + 64 + 24 + 18 and eff["synops"] == 0
    assert eff["energy_pj"] == pytest.approx(eff["macs"] * E_MAC_PJ)
    assert eff["neurons"] == [] and eff["encoding"] is None
    assert all(r["nonzero_ops"] <= r["ops"] for r in eff["layers"])


def test_silent_network_has_zero_synaptic_operations():
    snn = SpikingCNN1d(L, TINY, N_OUT, num_steps=4)
    _set_weights(snn, -1.0)  # negative currents: no neuron reaches threshold
    eff = count_operations(snn, torch.rand(6, 1, L))
    assert eff["synops"] == 0
    assert all(n["spikes"] == 0 and n["firing_rate"] == 0 for n in eff["neurons"])
    assert eff["macs"] == 108  # the direct-current first layer still multiplies
    assert eff["energy_pj"] == pytest.approx(108 * E_MAC_PJ)
    # with a spike encoding, zero biases and an all-zero input nothing happens at all
    rate = SpikingCNN1d(L, TINY, N_OUT, num_steps=4, encoding="rate")
    _set_weights(rate, 1.0)
    eff = count_operations(rate, torch.zeros(3, 1, L))
    assert eff["macs"] == 0 and eff["synops"] == 0 and eff["energy_pj"] == 0 and eff["input_spikes"] == 0
    assert eff["dense_ops"] > 0


def test_spike_encoded_first_layer_counts_accumulates():
    T = 4
    snn = SpikingCNN1d(L, TINY, N_OUT, num_steps=T, encoding="latency")
    x = torch.rand(2, 1, L)
    eff = count_operations(snn, x)
    conv1 = next(r for r in eff["layers"] if r["layer"] == "conv1")
    spikes = encode(x, "latency", T).numpy()[:, :, 0, :]  # (T, B, L)
    assert conv1["kind"] == "AC" and eff["macs"] == 0
    assert conv1["ops"] == pytest.approx((spikes * _conv_fanout(L, 3, 2)).sum() / 2)
    assert eff["input_spikes"] == pytest.approx(spikes.sum() / 2)
    assert conv1["dense_ops"] == T * 2 * 18 * 3


def test_rate_coded_counts_are_reproducible_with_a_seed():
    snn = SpikingCNN1d(L, TINY, N_OUT, num_steps=5, encoding="rate")
    x = torch.rand(8, 1, L)
    a = count_operations(snn, x, seed=3)
    b = count_operations(snn, x, seed=3)
    assert a == b
    assert count_operations(snn, x, seed=4)["input_spikes"] != a["input_spikes"]


def test_energy_convention_and_ratio():
    assert (E_MAC_PJ, E_AC_PJ) == (4.6, 0.9)
    assert energy_pj(10, 100) == pytest.approx(10 * 4.6 + 100 * 0.9)
    with pytest.raises(ValueError):
        energy_pj(-1, 0)
    models = [{"name": "cnn", "efficiency": {"energy_pj": 200.0, "energy_ratio_vs_cnn": None}},
              {"name": "snn", "snn": {}, "efficiency": {"energy_pj": 50.0, "energy_ratio_vs_cnn": None}},
              {"name": "logreg"}]
    add_energy_ratios(models)
    assert models[1]["efficiency"]["energy_ratio_vs_cnn"] == 0.25
    assert models[0]["efficiency"]["energy_ratio_vs_cnn"] is None


def test_count_rejects_bad_input():
    snn = SpikingCNN1d(L, TINY, N_OUT)
    with pytest.raises(ValueError, match="shape"):
        count_operations(snn, np.zeros((0, 1, L), dtype=np.float32))
    with pytest.raises(ValueError, match="batch_size"):
        count_operations(snn, np.zeros((2, 1, L), dtype=np.float32), batch_size=0)


# ---------------------------------------------------------------------------- encodings
@pytest.mark.parametrize("encoding", ["rate", "latency", "delta"])
def test_spike_encodings_shape_and_values(encoding):
    x = torch.rand(7, 1, 33)
    s = encode(x, encoding, 6)
    assert s.shape == (6, 7, 1, 33)  # (time, batch, channel, features)
    allowed = {-1.0, 0.0, 1.0} if encoding == "delta" else {0.0, 1.0}
    assert set(torch.unique(s).tolist()) <= allowed
    assert encode(x, "direct", 6) is x


def test_rate_coding_mean_firing_equals_input():
    torch.manual_seed(0)
    x = torch.linspace(0, 1, 41).view(1, 1, 41)
    s = encode(x, "rate", 20000)
    assert torch.allclose(s.mean(0), x, atol=0.015)  # binomial sd <= 0.0036 at 20,000 steps


def test_latency_coding_one_spike_earlier_when_larger():
    T = 11
    x = torch.tensor([[[0.0, 0.005, 0.2, 0.5, 0.8, 1.0]]])
    s = encode(x, "latency", T)[:, 0, 0]  # (T, features)
    counts = s.sum(0)
    assert counts.tolist() == [0, 0, 1, 1, 1, 1]  # below LATENCY_THRESHOLD: silent
    assert 0.005 < LATENCY_THRESHOLD
    times = s.argmax(0)[2:].tolist()
    assert times == [round((1 - v) * (T - 1)) for v in (0.2, 0.5, 0.8, 1.0)] and times == sorted(times, reverse=True)


def test_delta_coding_events_only_where_value_changes():
    T, L_ = 4, 12
    x = torch.tensor([[[0.5, 0.5, 0.5, 0.9, 0.9, 0.3, 0.35, 0.35, 0.35, 0.35, 0.0, 0.05]]])
    s = encode(x, "delta", T)[:, 0, 0]  # (T, L)
    total = s.sum(0)
    # rises of >= 0.1: feature 0 (from 0), 3; falls: 5, 10; changes below threshold: none
    assert total.tolist() == [1, 0, 0, 1, 0, -1, 0, 0, 0, 0, -1, 0]
    steps = {i: int(s[:, i].abs().argmax()) for i in (0, 3, 5, 10)}
    assert steps == {i: i * T // L_ for i in steps}  # the sweep reaches feature i at step i*T/L
    assert (s.abs().sum(0) <= 1).all()
    assert encode(torch.full((1, 1, 9), 0.05), "delta", 3).abs().sum() == 0  # flat and below threshold: silent
    assert DELTA_THRESHOLD == 0.1


def test_encoding_errors():
    x = torch.rand(2, 1, 5)
    with pytest.raises(ValueError, match="unknown encoding"):
        encode(x, "poisson", 3)
    with pytest.raises(ValueError, match="threshold"):
        encode(x, "delta", 3, delta_threshold=0)
    with pytest.raises(ValueError, match="num_steps"):
        encode(x, "rate", 0)
    with pytest.raises(ValueError, match="unknown encoding"):
        SpikingCNN1d(L, TINY, N_OUT, encoding="phase")


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_snn_runs_and_traces_every_encoding(encoding):
    T = 3
    snn = SpikingCNN1d(L, TINY, N_OUT, num_steps=T, encoding=encoding)
    x = torch.rand(4, 1, L)
    torch.manual_seed(0)
    spk, mem = snn(x)
    assert spk.shape == mem.shape == (T, 4, N_OUT)
    torch.manual_seed(0)
    tr = snn.trace(x)
    assert torch.equal(tr["lif_out"]["spikes"], spk)  # same input spikes under the same seed
    for name in ("lif1", "lif2", "lif3", "lif_out"):
        assert tr[name]["spikes"].shape == tr[name]["mem"].shape == (T, 4, snn.layer_neurons[name])
    assert ("input" in tr) == (encoding != "direct")
    if encoding != "direct":
        assert tr["input"]["spikes"].shape == (T, 4, L)


def test_spike_encodings_refuse_inputs_outside_unit_range():
    for bad in (torch.tensor([[[0.2, 1.5]]]), torch.tensor([[[-0.1, 0.5]]]), torch.tensor([[[float("nan"), 0.5]]])):
        for enc in ("rate", "latency", "delta"):
            with pytest.raises(ValueError, match=r"\[0, 1\]"):
                encode(bad, enc, 3)
        assert encode(bad, "direct", 3) is bad  # a current may be anything
    for steps in (2.7, True, 0):
        with pytest.raises(ValueError, match="num_steps"):
            encode(torch.rand(1, 1, 4), "rate", steps)
    with pytest.raises(ValueError, match="L >= 1"):
        encode(torch.rand(1, 1, 0), "delta", 3)


def test_count_operations_follows_the_model_dtype_and_refuses_nan():
    snn = SpikingCNN1d(L, TINY, N_OUT, num_steps=2).double()
    _set_weights(snn, 1.0)
    eff = count_operations(snn, np.ones((2, 1, L), dtype=np.float32))
    assert eff["synops"] == 128 + 48 + 36  # same hand count as in float32
    x = torch.rand(2, 1, L)
    x[0, 0, 3] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        count_operations(SpikingCNN1d(L, TINY, N_OUT), x)
