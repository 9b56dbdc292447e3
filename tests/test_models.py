"""Tests for spiking.models: CNN_PT sizes, CNN1d, SpikingCNN1d and helpers."""

from __future__ import annotations

import copy
import random

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from snntorch.functional import acc as snn_acc
from snntorch.functional import ce_count_loss

from spiking.models import (
    NEURONS,
    PRESETS,
    ArchitectureError,
    CNN1d,
    CNNArch,
    SpikingCNN1d,
    class_scores,
    count_parameters,
    derive_architecture,
    preset,
    stage_lengths,
    transfer_weights,
)

CONV_FC_PARAMS = [
    f"{layer}.{kind}" for layer in ("conv1", "conv2", "conv3", "fc") for kind in ("weight", "bias")
]

# A small architecture for fast SNN tests: L=128 -> s = (28, 8, 3).
SMALL_L = 128
SMALL = CNNArch(w1=4, wd1=17, h1=4, w2=6, wd2=5, h2=3, w3=5, wd3=3, h3=2)


def _manual_lengths(L, a):
    s1 = (L - a.wd1 + 1) // a.h1
    s2 = (s1 - a.wd2 + 1) // a.h2
    s3 = (s2 - a.wd3 + 1) // a.h3
    return s1, s2, s3


# --------------------------------------------------------------------------- sizes

searched = dict(
    L=st.integers(64, 20000),
    w1=st.integers(2, 256),
    wd1=st.integers(4, 64),
    h1=st.integers(4, 64),
    w2=st.integers(2, 256),
    w3=st.integers(2, 256),
    seed=st.integers(0, 2**32 - 1),
)


@settings(max_examples=400, deadline=None)
@given(**searched)
def test_derive_architecture_always_valid(L, w1, wd1, h1, w2, w3, seed):
    a = derive_architecture(L, w1=w1, wd1=wd1, h1=h1, w2=w2, w3=w3, rng=seed)
    s1, s2, s3 = stage_lengths(L, a)
    assert (s1, s2, s3) == _manual_lengths(L, a)
    assert min(s1, s2, s3) >= 1
    # searched values kept; wd1/h1 only shrink, and only when needed
    assert (a.w1, a.w2, a.w3) == (w1, w2, w3)
    assert 1 <= a.h1 <= h1 and 2 <= a.wd1 <= wd1
    if (L - wd1 + 1) // h1 >= 5:
        assert (a.wd1, a.h1) == (wd1, h1)
    else:
        assert s1 >= 5
    # the dependent-size rule
    assert 2 <= a.h2 <= s1 and 2 <= a.wd2 <= s1
    assert s2 >= 2
    if s2 == 2:
        assert (a.wd3, a.h3) == (2, 1)
    else:
        assert 2 <= a.wd3 <= s2
        assert a.h3 == 1 or 2 <= a.h3 <= a.wd3
    # deterministic for a seed, and a Random gives the same stream
    assert derive_architecture(L, w1=w1, wd1=wd1, h1=h1, w2=w2, w3=w3, rng=seed) == a
    assert derive_architecture(
        L, w1=w1, wd1=wd1, h1=h1, w2=w2, w3=w3, rng=random.Random(seed)
    ) == a


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    L=st.integers(64, 400),
    w=st.integers(2, 6),
    wd1=st.integers(4, 64),
    h1=st.integers(4, 64),
    seed=st.integers(0, 1000),
)
def test_derived_architecture_builds_cnn(L, w, wd1, h1, seed):
    a = derive_architecture(L, w1=w, wd1=wd1, h1=h1, w2=w, w3=w, rng=seed)
    net = CNN1d(L, a, n_classes=3)
    assert net.flat_features == a.w3 * stage_lengths(L, a)[2]
    out = net(torch.rand(2, 1, L))
    assert out.shape == (2, 3) and torch.isfinite(out).all()


def test_derive_architecture_shrinks_h1_then_wd1():
    a = derive_architecture(64, w1=2, wd1=64, h1=64, w2=2, w3=2, rng=0)
    assert (a.h1, a.wd1) == (1, 60)  # h1 first down to 1, then wd1 until s1 = 5
    assert stage_lengths(64, a)[0] == 5
    b = derive_architecture(100, w1=2, wd1=40, h1=20, w2=2, w3=2, rng=0)
    assert (b.wd1, b.h1) == (40, 12)  # floor(61/12) = 5, floor(61/13) = 4
    # short inputs work as long as any architecture can satisfy the rule
    c = derive_architecture(6, w1=2, wd1=4, h1=4, w2=2, w3=2, rng=0)
    assert stage_lengths(6, c) == (5, 2, 1)


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(w1=1, wd1=10, h1=4, w2=8, w3=8),
        dict(w1=8, wd1=3, h1=4, w2=8, w3=8),
        dict(w1=8, wd1=10, h1=65, w2=8, w3=8),
        dict(w1=8, wd1=10, h1=4, w2=257, w3=8),
    ],
)
def test_derive_architecture_rejects_values_outside_space(kwargs):
    with pytest.raises(ArchitectureError, match="outside the search space"):
        derive_architecture(1046, rng=0, **kwargs)


def test_derive_architecture_rejects_too_short_L():
    with pytest.raises(ArchitectureError, match="L=5"):
        derive_architecture(5, w1=2, wd1=4, h1=4, w2=2, w3=2, rng=0)


def test_stage_lengths_messages():
    # L=1046, wd1=60, h1=24 -> s1 = 41; a kernel of 60 does not fit stage 2
    a = CNNArch(w1=2, wd1=60, h1=24, w2=2, wd2=60, h2=2, w3=2, wd3=2, h3=1)
    with pytest.raises(ArchitectureError) as e:
        stage_lengths(1046, a)
    msg = str(e.value)
    assert "stage 2" in msg and "wd2=60" in msg and "41" in msg and "L=1046" in msg
    # pool larger than what is left after the conv
    b = CNNArch(w1=2, wd1=35, h1=25, w2=2, wd2=2, h2=2, w3=2, wd3=2, h3=30)
    with pytest.raises(ArchitectureError, match=r"stage 3: max-pool size h3=30"):
        stage_lengths(1046, b)
    with pytest.raises(ArchitectureError, match="stage 1"):
        stage_lengths(30, b)


def test_invalid_combination_fails_at_construction():
    # the published CNN_PT_1 dependent sizes do not fit L=1046: s1 = 124,
    # conv2 leaves 24 < h2 = 58
    for cls, args in ((CNN1d, (10,)), (SpikingCNN1d, (10,))):
        with pytest.raises(ArchitectureError) as e:
            cls(1046, PRESETS["cnn_pt1"], *args)
        msg = str(e.value)
        assert "stage 2" in msg and "124" in msg and "h2=58" in msg


def test_archdict_roundtrip_and_validation():
    a = PRESETS["cnn_pt2"]
    assert CNNArch.from_dict(a.as_dict()) == a
    assert list(a.as_dict()) == ["w1", "wd1", "h1", "w2", "wd2", "h2", "w3", "wd3", "h3"]
    with pytest.raises(ArchitectureError, match="unknown"):
        CNNArch.from_dict({**a.as_dict(), "w4": 3})
    with pytest.raises(ArchitectureError, match="missing"):
        CNNArch.from_dict({k: v for k, v in a.as_dict().items() if k != "h3"})
    with pytest.raises(ArchitectureError):
        CNNArch(**{**a.as_dict(), "wd2": 0})


# --------------------------------------------------------------------------- presets

PUBLISHED = {
    "cnn_pt1": dict(w1=142, wd1=51, h1=8, w2=226, w3=220, params=3_350_772),
    "cnn_pt2": dict(w1=12, wd1=35, h1=12, w2=85, w3=229, params=80_736),
}


@pytest.mark.parametrize("name", sorted(PUBLISHED))
@pytest.mark.parametrize("L", [1046, 1881])
def test_presets(name, L):
    pub = PUBLISHED[name]
    a = preset(name, L, seed=0)
    assert {k: getattr(a, k) for k in ("w1", "wd1", "h1", "w2", "w3")} == {
        k: pub[k] for k in ("w1", "wd1", "h1", "w2", "w3")
    }
    assert min(stage_lengths(L, a)) >= 1
    assert preset(name, L, seed=0) == a
    assert preset(name, L, seed=123) == preset(name, L, seed=123)
    b = preset(name, L, seed=0, keep_published=False)
    assert min(stage_lengths(L, b)) >= 1
    assert b == preset(name, L, seed=0, keep_published=False)
    if L == 1881:
        # the published architecture is the one for the length it was found for,
        # and reproduces the published parameter count
        assert a == PRESETS[name]
        assert count_parameters(CNN1d(L, a, 10)) == pub["params"]


def test_preset_seeds_vary_and_unknown_name():
    archs = {preset("cnn_pt2", 1046, seed=s) for s in range(10)}
    assert len(archs) > 1
    with pytest.raises(ValueError, match="cnn_pt1.*cnn_pt2"):
        preset("cnn_pt3", 1046)


# --------------------------------------------------------------------------- CNN / SNN

def test_cnn_forward_and_input_check():
    net = CNN1d(SMALL_L, SMALL, n_classes=4)
    assert net.lengths == (28, 8, 3) and net.flat_features == 15
    assert [n for n, _ in net.named_children()] == [
        "conv1", "pool1", "conv2", "pool2", "conv3", "pool3", "fc"
    ]
    assert net(torch.rand(3, 1, SMALL_L)).shape == (3, 4)
    with pytest.raises(ValueError, match=r"\(B, 1, 128\)"):
        net(torch.rand(3, SMALL_L))


def test_weight_transfer_copies_every_parameter():
    torch.manual_seed(0)
    cnn = CNN1d(SMALL_L, SMALL, 4)
    snn = SpikingCNN1d(SMALL_L, SMALL, 4, neuron="rleaky")
    names = transfer_weights(cnn, snn)
    assert sorted(names) == sorted(CONV_FC_PARAMS)
    assert sorted(n for n, _ in cnn.named_parameters()) == sorted(CONV_FC_PARAMS)
    snn_params = dict(snn.named_parameters())
    for name, p in cnn.named_parameters():
        assert torch.equal(snn_params[name], p), name
    # conv/fc state_dict keys match
    conv_fc_keys = {k for k in snn.state_dict() if k.split(".")[0] in ("conv1", "conv2", "conv3", "fc")}
    assert conv_fc_keys == set(cnn.state_dict())


def test_weight_transfer_mismatch_raises_and_copies_nothing():
    cnn = CNN1d(SMALL_L, SMALL, 4)
    snn = SpikingCNN1d(SMALL_L, SMALL, 4 * 5)  # population-coded output
    before = snn.conv1.weight.detach().clone()
    with pytest.raises(ValueError, match="fc.weight"):
        transfer_weights(cnn, snn)
    assert torch.equal(snn.conv1.weight, before)


@pytest.mark.parametrize("neuron", NEURONS)
def test_snn_forward_shapes(neuron):
    snn = SpikingCNN1d(SMALL_L, SMALL, 6, neuron=neuron, num_steps=7, beta=0.8)
    spk, mem = snn(torch.rand(5, 1, SMALL_L))
    assert spk.shape == (7, 5, 6) and mem.shape == (7, 5, 6)
    assert set(spk.unique().tolist()) <= {0.0, 1.0}
    assert [n for n, _ in snn.named_children()][:7] == [
        "conv1", "pool1", "conv2", "pool2", "conv3", "pool3", "fc"
    ]


@pytest.mark.parametrize("neuron", NEURONS)
def test_snn_transferred_long_run_is_finite(neuron):
    torch.manual_seed(1)
    cnn = CNN1d(SMALL_L, SMALL, 3)
    snn = SpikingCNN1d(SMALL_L, SMALL, 3, neuron=neuron, num_steps=300, beta=1.0 if neuron != "lapicque" else 0.95)
    transfer_weights(cnn, snn)
    snn.record_spikes = True
    spk, mem = snn(torch.rand(4, 1, SMALL_L) * 5)
    assert torch.isfinite(spk).all() and torch.isfinite(mem).all()
    assert snn.last_spike_counts["lif1"].sum() > 0


@pytest.mark.parametrize("num_steps", [1, 25])
def test_conv1_called_once_per_forward(num_steps):
    snn = SpikingCNN1d(SMALL_L, SMALL, 3, num_steps=num_steps)
    calls = {"conv1": 0, "pool1": 0}
    for name in calls:
        getattr(snn, name).register_forward_hook(
            lambda m, i, o, name=name: calls.__setitem__(name, calls[name] + 1)
        )
    snn(torch.rand(2, 1, SMALL_L))
    snn(torch.rand(3, 1, SMALL_L))
    assert calls == {"conv1": 2, "pool1": 2}


@pytest.mark.parametrize("neuron", NEURONS)
def test_zero_network_never_spikes(neuron):
    snn = SpikingCNN1d(SMALL_L, SMALL, 3, neuron=neuron, num_steps=20, beta=0.9)
    with torch.no_grad():
        for p in snn.parameters():
            p.zero_()
    snn.record_spikes = True
    for x in (torch.zeros(2, 1, SMALL_L), torch.rand(2, 1, SMALL_L)):
        spk, mem = snn(x)
        assert spk.sum() == 0 and mem.abs().sum() == 0
        assert set(snn.last_spike_counts) == {"lif1", "lif2", "lif3", "lif_out"}
        for counts in snn.last_spike_counts.values():
            assert counts.shape == (2,) and counts.sum() == 0


@pytest.mark.parametrize("neuron", NEURONS)
def test_gradients_reach_conv1(neuron):
    torch.manual_seed(2)
    snn = SpikingCNN1d(SMALL_L, SMALL, 3, neuron=neuron, num_steps=5, beta=0.9)
    spk, _ = snn(torch.rand(4, 1, SMALL_L))
    loss = torch.nn.functional.cross_entropy(class_scores(spk, 3), torch.tensor([0, 1, 2, 0]))
    loss.backward()
    g = snn.conv1.weight.grad
    assert g is not None and torch.isfinite(g).all() and g.abs().sum() > 0


def test_surrogate_is_fast_sigmoid_with_slope():
    snn = SpikingCNN1d(SMALL_L, SMALL, 3, slope=7.0)
    for name in ("lif1", "lif2", "lif3", "lif_out"):
        u = torch.tensor([0.3, -0.2], requires_grad=True)
        out = getattr(snn, name).spike_grad(u)
        out.sum().backward()
        assert out.tolist() == [1.0, 0.0]
        expected = 1.0 / (7.0 * u.detach().abs() + 1.0) ** 2
        assert torch.allclose(u.grad, expected)


def _reference_step_loop(snn: SpikingCNN1d, x: torch.Tensor):
    """The snnTorch-tutorial step-by-step loop (everything recomputed per step)."""
    kind = snn.neuron
    lifs = [snn.lif1, snn.lif2, snn.lif3, snn.lif_out]
    stages = [(snn.conv1, snn.pool1), (snn.conv2, snn.pool2), (snn.conv3, snn.pool3)]
    states = [None] * 4
    spk_rec, mem_rec = [], []
    for _ in range(snn.num_steps):
        h = x
        for i, lif in enumerate(lifs):
            cur = stages[i][1](stages[i][0](h)) if i < 3 else snn.fc(h.flatten(1))
            if states[i] is None:  # zero states at the first step
                states[i] = {"mem": torch.zeros_like(cur), "spk": torch.zeros_like(cur),
                             "syn": torch.zeros_like(cur)}
            st_ = states[i]
            if kind == "rleaky":
                h, st_["mem"] = lif(cur, st_["spk"], st_["mem"])
            elif kind == "synaptic":
                h, st_["syn"], st_["mem"] = lif(cur, st_["syn"], st_["mem"])
            else:
                h, st_["mem"] = lif(cur, st_["mem"])
            h = h.to(x.dtype)  # snnTorch spikes are float32
            st_["spk"] = h
        spk_rec.append(h)
        mem_rec.append(states[3]["mem"])
    return torch.stack(spk_rec), torch.stack(mem_rec)


@pytest.mark.parametrize("neuron", NEURONS)
def test_layerwise_schedule_matches_step_loop(neuron):
    torch.manual_seed(3)
    snn = SpikingCNN1d(SMALL_L, SMALL, 4, neuron=neuron, num_steps=12, beta=0.85).double()
    with torch.no_grad():
        for p in snn.parameters():
            if p.dim() > 0:  # make all layers spike (lapicque scales inputs by ln(1/beta))
                p.mul_(12.0 if neuron == "lapicque" else 3.0)
    x = torch.rand(3, 1, SMALL_L, dtype=torch.float64)
    spk, mem = snn(x)
    ref_spk, ref_mem = _reference_step_loop(snn, x)
    assert ref_spk.sum() > 0 and spk.dtype == torch.float64
    assert torch.equal(spk, ref_spk)
    assert torch.allclose(mem, ref_mem, atol=1e-10)


def test_states_reset_between_forwards_and_deepcopy():
    torch.manual_seed(4)
    snn = SpikingCNN1d(SMALL_L, SMALL, 3, neuron="synaptic", num_steps=6)
    x = torch.rand(2, 1, SMALL_L) * 3
    spk1, mem1 = snn(x)
    (spk1.sum() + mem1.sum()).backward()
    clone = copy.deepcopy(snn)  # fails if graph-attached states stay on the modules
    snn(torch.rand(5, 1, SMALL_L))  # another batch size in between
    spk2, mem2 = snn(x)
    assert torch.equal(spk1, spk2) and torch.equal(mem1, mem2)
    spk3, mem3 = clone(x)
    assert torch.equal(spk1, spk3) and torch.equal(mem1, mem3)


def test_spike_recording():
    torch.manual_seed(5)
    snn = SpikingCNN1d(SMALL_L, SMALL, 6, num_steps=8)
    assert snn.record_spikes is False
    assert snn.layer_neurons == {"lif1": 4 * 28, "lif2": 6 * 8, "lif3": 5 * 3, "lif_out": 6}
    x = torch.rand(3, 1, SMALL_L) * 4
    snn(x)
    assert snn.last_spike_counts is None
    snn.record_spikes = True
    spk, _ = snn(x)
    counts = snn.last_spike_counts
    assert torch.equal(counts["lif_out"], spk.sum(dim=(0, 2)))
    assert counts["lif1"].shape == (3,) and counts["lif1"].sum() > 0
    for name, c in counts.items():
        assert not c.requires_grad
        assert (c <= snn.num_steps * snn.layer_neurons[name]).all()


def test_invalid_neuron_and_parameters():
    with pytest.raises(ValueError, match="leaky.*lapicque.*rleaky.*synaptic"):
        SpikingCNN1d(SMALL_L, SMALL, 3, neuron="izhikevich")
    with pytest.raises(ValueError, match="Lapicque"):
        SpikingCNN1d(SMALL_L, SMALL, 3, neuron="lapicque", beta=1.0)
    with pytest.raises(ValueError, match="Lapicque"):  # the default beta (1.0, integrate-and-fire) does not suit it
        SpikingCNN1d(SMALL_L, SMALL, 3, neuron="lapicque")
    with pytest.raises(ValueError, match="num_steps"):
        SpikingCNN1d(SMALL_L, SMALL, 3, num_steps=0)


def test_parameter_counts_match_cnn():
    cnn = CNN1d(SMALL_L, SMALL, 3)
    n = count_parameters(cnn)
    for neuron in ("leaky", "lapicque", "synaptic"):
        assert count_parameters(SpikingCNN1d(SMALL_L, SMALL, 3, neuron=neuron, beta=0.9)) == n
    # RLeaky: a scalar V per conv stage + a dense recurrent Linear(3, 3) at the output
    assert count_parameters(SpikingCNN1d(SMALL_L, SMALL, 3, neuron="rleaky")) == n + 3 + 3 * 3 + 3


# --------------------------------------------------------------------------- class scores

def test_class_scores_population_groups():
    T, B, n_classes, pop = 4, 2, 3, 5
    spk = torch.zeros(T, B, n_classes * pop)
    spk[:, 0, 0:5] = 1.0        # sample 0: class 0 group fully active -> 20
    spk[0, 0, 5] = 1.0          # one spike in class 1's group
    spk[:, 1, 14] = 1.0         # sample 1: last neuron of class 2 -> 4
    spk[1, 1, 4] = 1.0          # last neuron of class 0 -> 1
    scores = class_scores(spk, n_classes)
    assert scores.tolist() == [[20.0, 1.0, 0.0], [1.0, 0.0, 4.0]]
    # same convention as snntorch.functional (population_code=True)
    torch.manual_seed(6)
    rnd = (torch.rand(T, B, n_classes * pop) > 0.5).float()
    assert torch.equal(class_scores(rnd, n_classes), snn_acc._population_code(rnd, n_classes, n_classes * pop))
    targets = torch.tensor([1, 2])
    ours = torch.nn.functional.cross_entropy(class_scores(rnd, n_classes), targets)
    theirs = ce_count_loss(population_code=True, num_classes=n_classes)(rnd, targets)
    assert torch.allclose(ours, theirs)
    # without population coding: plain counts over time
    assert torch.equal(class_scores(rnd, n_classes * pop), rnd.sum(0))
    with pytest.raises(ValueError, match="multiple"):
        class_scores(rnd, 4)
