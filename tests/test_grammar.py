"""Fast-DENSER grammar, genotype (mutation, validity, reproducibility) and the PyTorch phenotype builder.

Fast (< 60 s on 2 cores): small seeded loops, batch-2 forward passes, one tiny training run.
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import spiking.search
from spiking.models.phenotype_torch import (
    build_torch_model,
    load_keras_weights,
    read_weights_npz,
    same_padding,
    torch_parameter_count,
)
from spiking.search.genotype import (
    GenotypeError,
    Individual,
    MutationRates,
    Structure,
    mutate,
    pareto_front,
    random_individual,
)
from spiking.search.grammar import DEFAULT_GRAMMAR, DerivationError, Grammar, GrammarError, Parameter
from spiking.specs.phenotype import PhenotypeError, parse_phenotype

torch.set_num_threads(1)

GRAMMAR = Grammar.default()
N_CLASSES = 10
MAX_PARAMS = 2_000_000
LEARN = "learning:adam lr:0.01 beta1:0.9 beta2:0.999 decay:0.0 early_stop:5 batch_size:16"


# ---------------------------------------------------------------------------------- grammar file
def test_default_grammar_parses_with_the_blocks():
    assert GRAMMAR.source == DEFAULT_GRAMMAR
    for sym in ("features", "classification", "learning", "<features>"):
        assert GRAMMAR.has_symbol(sym)
    path = Path(spiking.search.__file__).parent / "grammars" / DEFAULT_GRAMMAR
    assert Grammar.from_file(path).productions == GRAMMAR.productions


def test_default_grammar_ranges_are_the_studys():
    params = {(sym, it.name): (it.type, it.low, it.high)
              for sym, alts in GRAMMAR.productions.items() for alt in alts for it in alt
              if isinstance(it, Parameter)}
    assert params[("convolution", "num-filters")] == ("int", 2, 256)
    assert params[("convolution", "filter-shape")] == ("int", 4, 64)
    assert params[("convolution", "stride")] == ("int", 2, 5)
    assert params[("pooling", "kernel-size")] == ("int", 4, 64)
    assert params[("pooling", "stride")] == ("int", 1, 3)
    assert params[("dropout", "rate")] == ("float", 0.0, 0.7)
    assert params[("fully-connected", "num-units")] == ("int", 128, 2048)
    assert params[("adam", "beta2")][2] < 1.0
    assert params[("early-stop", "early_stop")] == ("int", 5, 20)
    assert params[("batch-size", "batch_size")] == ("int", 50, 500)
    assert len(GRAMMAR.productions["features"]) == 4 and len(GRAMMAR.productions["classification"]) == 2
    assert len(GRAMMAR.productions["learning"]) == 3


BROKEN = [
    # (grammar text, line of the error, fragment of the message)
    ("<a> ::= <b>\n<b> ::= y:1\n<c> y:2\n", 3, "missing '::='"),
    ("<a> ::= x:1\n<b> ::= y:1 ::= z:1\n", 2, "exactly one '::='"),
    ("# comment\n\n<a b> ::= x:1\n", 3, "bad non-terminal"),
    ("<a> ::= x:1\nb ::= y:1\n", 2, "left-hand side"),
    ("<a> ::= x:1\n<b> ::= <1x>\n", 2, "bad non-terminal"),
    ("<a> ::= x:1\n<b> ::= y:1 | <zz>\n", 2, "<zz>"),
    ("<a> ::= x:1\n<b> ::= y:1 | | z:1\n", 2, "empty alternative"),
    ("<a> ::= x:1\n<b> ::= y:1 |\n", 2, "empty alternative"),
    ("<a> ::= x:1\n<b> ::=   # nothing\n", 2, "empty alternative"),
    ("<a> ::= x:1\n\n<b> ::= [n,int,1,2]\n", 3, "5 fields"),
    ("<a> ::= x:1\n<b> ::= [n,double,1,1,2]\n", 2, "unknown type"),
    ("<a> ::= x:1\n<b> ::= [n,int,1,5,2]\n", 2, "min 5 > max 2"),
    ("<a> ::= x:1\n<b> ::= [n,int,0,1,2]\n", 2, "count"),
    ("<a> ::= x:1\n<b> ::= [n,float,1,a,2]\n", 2, "not a number"),
    ("<a> ::= x:1\n<b> ::= [n,int,1,1.5,2]\n", 2, "not an integer"),
    ("<a> ::= x:1\n<b> ::= [n,float,1,0,inf]\n", 2, "not finite"),
    ("<a> ::= x:1\n<b> ::= y:1\n<a> ::= z:1\n", 3, "duplicate production for <a> (first defined at line 1)"),
    ("<a> ::= x:1\n<b> ::= <a\n", 2, "unbalanced '<'"),
    ("<a> ::= x:1\n<b> ::= [n,int,1,1,2\n", 2, "unbalanced '['"),
    ("<a> ::= x:1\n<b> ::= y:1]\n", 2, "unbalanced ']'"),
    ("<a> ::= x:1\n<b> ::= y:1 >\n", 2, "unbalanced '>'"),
    ("<a> ::= x:1\n<b ::= y:1\n", 2, "unbalanced"),
    ("<a> ::= x:1\n<b> ::= conv\n", 2, "not key:value"),
    ("<a> ::= x:1\n<b> ::= <c> y:1\n<c> ::= <b>\n", 2, "can never terminate"),
    ("<a> ::= <a> x:1\n", 1, "can never terminate"),
]


@pytest.mark.parametrize("text,line,fragment", BROKEN)
def test_malformed_grammar_names_the_line(text, line, fragment):
    with pytest.raises(GrammarError) as exc:
        Grammar.from_text(text)
    msg = str(exc.value)
    assert msg.startswith(f"<string>, line {line}: "), msg
    assert fragment in msg
    assert exc.value.line == line and isinstance(exc.value, ValueError)


def test_grammar_error_names_the_file(tmp_path):
    path = tmp_path / "bad.grammar"
    path.write_text("<a> ::= x:1\n# c\n<b> ::= [n,int,1,1]\n")
    with pytest.raises(GrammarError, match=r"bad\.grammar, line 3: "):
        Grammar.from_file(path)
    with pytest.raises(GrammarError, match="no productions"):
        Grammar.from_text("# only a comment\n\n")


def test_recursive_grammar_terminates_and_unknown_symbol():
    g = Grammar.from_text("<list> ::= item:x | item:x <list> | item:y <list> <list>  # recursive\n")
    rng = random.Random(0)
    for _ in range(50):
        d = g.initialise("list", rng, max_depth=6)
        assert set(g.decode("list", d).split()) <= {"item:x", "item:y"}
    with pytest.raises(GrammarError, match="unknown non-terminal <nope>"):
        g.initialise("nope", rng)


# ---------------------------------------------------------------------------------- derivations
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1))
def test_decoded_derivations_parse(seed):
    rng = random.Random(seed)
    feats = [GRAMMAR.initialise("features", rng) for _ in range(3)]
    cls = [GRAMMAR.initialise("classification", rng) for _ in range(2)]
    learn = GRAMMAR.initialise("learning", rng)
    text = " ".join([GRAMMAR.decode("features", d) for d in feats] + [GRAMMAR.decode("classification", d)
                                                                       for d in cls] + [GRAMMAR.decode("learning", learn)])
    ph = parse_phenotype(text)
    assert len(ph.layers) == 5 and ph.learning.batch_size in range(50, 501)
    assert all(layer.kind in ("conv", "pool-max", "pool-avg", "dropout", "batch-norm") for layer in ph.layers[:3])
    assert all(layer.kind in ("fc", "dropout") for layer in ph.layers[3:])
    # JSON round trip and DSGE mutation keep it a valid derivation of the same symbol
    assert json.loads(json.dumps(learn)) == learn
    mutated = GRAMMAR.mutate_derivation("learning", learn, rng)
    parse_phenotype(GRAMMAR.decode("learning", mutated))
    assert mutated is not learn


def test_mutate_derivation_changes_one_site_within_bounds():
    g = Grammar.from_text("<s> ::= k:a [p,int,1,0,1] [q,float,1,0.5,0.6] <t>\n<t> ::= t:x | t:y | t:z\n")
    rng = random.Random(3)
    d = g.initialise("s", rng)
    for _ in range(100):
        m = g.mutate_derivation("s", d, rng)
        changed = [m["children"][0] != d["children"][0], m["children"][1] != d["children"][1],
                   m["children"][2]["alt"] != d["children"][2]["alt"]]
        assert sum(changed) == 1  # exactly one site, and it changes
        assert 0 <= m["children"][0][0] <= 1 and 0.5 <= m["children"][1][0] < 0.6
        assert isinstance(m["children"][0][0], int) and isinstance(m["children"][1][0], float)
        d = m


def test_decode_rejects_foreign_derivations():
    rng = random.Random(0)
    d = GRAMMAR.initialise("features", rng)
    with pytest.raises(DerivationError):
        GRAMMAR.decode("classification", d)
    bad = json.loads(json.dumps(d))
    bad["alt"] = 99
    with pytest.raises(DerivationError):
        GRAMMAR.decode("features", bad)
    conv = {"symbol": "features", "alt": 0, "children": [GRAMMAR.initialise("convolution", rng)]}
    conv["children"][0]["children"][0] = [9999]  # num-filters outside [2, 256]
    with pytest.raises(DerivationError, match="num-filters"):
        GRAMMAR.decode("features", conv)


# ---------------------------------------------------------------------------------- genotypes
def _check_builds(ind: Individual, L: int) -> None:
    ph = parse_phenotype(ind.phenotype(GRAMMAR))
    n = ph.check(L, N_CLASSES, MAX_PARAMS)
    model = build_torch_model(ph, L, N_CLASSES).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 1, L))
    assert out.shape == (2, N_CLASSES) and torch.isfinite(out).all()
    assert torch_parameter_count(model) == n == ph.count_parameters(L, N_CLASSES)


@pytest.mark.parametrize("L", [1046, 200, 30])
def test_random_and_mutated_individuals_are_valid_and_build(L):
    structure, rates = Structure(), MutationRates()
    for seed in range(6):
        rng = random.Random(seed)
        ind = random_individual(GRAMMAR, structure, rng, L, N_CLASSES, MAX_PARAMS, id=f"{seed}-0")
        assert ind.parent is None and not ind.train_longer
        for name, lo, _ in structure.blocks:
            assert lo <= len(ind.blocks[name]) <= structure.initial_max(name)
        _check_builds(ind, L)
        for k in range(1, 6):
            child = mutate(ind, GRAMMAR, structure, rates, rng, L, N_CLASSES, MAX_PARAMS, id=f"{seed}-{k}")
            assert child.parent == ind.id and child.id == f"{seed}-{k}"
            for name, lo, hi in structure.blocks:
                assert lo <= len(child.blocks[name]) <= hi
            _check_builds(child, L)
            assert Individual.from_json(child.to_json()) == child
            ind = child


def test_same_seed_same_individuals():
    def lineage(seed):
        rng = random.Random(seed)
        ind = random_individual(GRAMMAR, Structure(), rng, 200, N_CLASSES, MAX_PARAMS, id="a")
        out = [ind.to_json()]
        for k in range(5):
            ind = mutate(ind, GRAMMAR, Structure(), MutationRates(), rng, 200, N_CLASSES, MAX_PARAMS, id=f"c{k}")
            out.append(ind.to_json())
        return out

    assert lineage(7) == lineage(7)
    assert lineage(7) != lineage(8)


def test_random_individual_raises_when_nothing_fits():
    with pytest.raises(GenotypeError, match="no valid individual"):
        random_individual(GRAMMAR, Structure(), random.Random(0), 100, N_CLASSES, max_params=5, id="x",
                          max_tries=5)


def _rates(**on) -> MutationRates:
    base = dict(add_layer=0, reuse_layer=0, remove_layer=0, dsge_layer=0, macro_layer=0, train_longer=0)
    return MutationRates(**{**base, **on})


# The operator tests put no limit on the parameters, so that the operator forced to 1 always has a valid
# outcome (a duplicated 2048-unit fc layer can exceed any fixed limit); the fallback has its own test.
def _parent(seed: int, structure: Structure = Structure(), L: int = 1046) -> Individual:
    return random_individual(GRAMMAR, structure, random.Random(seed), L, N_CLASSES, None, id="p")


def _child(parent, rates, seed, structure=Structure(), L=1046):
    return mutate(parent, GRAMMAR, structure, rates, random.Random(seed), L, N_CLASSES, None, id="c")


@pytest.mark.parametrize("seed", range(4))
def test_add_layer_inserts_one_fresh_layer(seed):
    parent = _parent(seed)
    child = _child(parent, _rates(add_layer=1), seed)
    assert not child.train_longer and child.learning == parent.learning
    for name in ("features", "classification"):
        assert len(child.blocks[name]) == len(parent.blocks[name]) + 1
        (rec,) = [m for m in child.mutations if m.startswith(f"add_layer:{name}@")]
        pos = int(rec.split("@")[1])
        rest = child.blocks[name][:pos] + child.blocks[name][pos + 1:]
        assert rest == parent.blocks[name]


@pytest.mark.parametrize("seed", range(4))
def test_reuse_layer_duplicates_an_existing_layer(seed):
    parent = _parent(seed)
    child = _child(parent, _rates(reuse_layer=1), seed)
    assert not child.train_longer and child.learning == parent.learning
    for name in ("features", "classification"):
        new, old = child.blocks[name], parent.blocks[name]
        assert len(new) == len(old) + 1
        (rec,) = [m for m in child.mutations if m.startswith(f"reuse_layer:{name}@")]
        pos, src = map(int, rec.split("@")[1].split("<-"))
        assert new[pos] == new[src] and new[pos] in old
        assert new[:pos] + new[pos + 1:] == old


@pytest.mark.parametrize("seed", range(4))
def test_remove_layer_removes_one(seed):
    big = Structure(blocks=(("features", 3, 30), ("classification", 2, 10)),
                    init_max={"features": 3, "classification": 2})
    parent = _parent(seed, big)
    child = _child(parent, _rates(remove_layer=1), seed)
    assert not child.train_longer and child.learning == parent.learning
    for name in ("features", "classification"):
        assert len(child.blocks[name]) == len(parent.blocks[name]) - 1
        (rec,) = [m for m in child.mutations if m.startswith(f"remove_layer:{name}@")]
        pos = int(rec.split("@")[1])
        assert child.blocks[name] == parent.blocks[name][:pos] + parent.blocks[name][pos + 1:]


def test_add_and_remove_respect_the_limits():
    tight = Structure(blocks=(("features", 2, 2), ("classification", 1, 1)),
                      init_max={"features": 2, "classification": 1})
    for seed in range(3):
        parent = _parent(seed, tight)
        for rates in (_rates(add_layer=1), _rates(reuse_layer=1), _rates(remove_layer=1)):
            child = _child(parent, rates, seed, tight)
            assert child.blocks == parent.blocks and child.mutations == [] and not child.train_longer


def test_train_longer_keeps_the_genotype():
    parent = _parent(0)
    child = _child(parent, _rates(train_longer=1, add_layer=1, macro_layer=1), 0)
    assert child.train_longer and child.mutations == ["train_longer"] and child.parent == "p"
    assert child.blocks == parent.blocks and child.learning == parent.learning
    assert child.blocks is not parent.blocks


@pytest.mark.parametrize("seed", range(4))
def test_macro_layer_changes_only_learning(seed):
    parent = _parent(seed)
    child = _child(parent, _rates(macro_layer=1), seed)
    assert child.blocks == parent.blocks and child.mutations == ["macro_layer:learning"]
    assert child.learning != parent.learning and not child.train_longer


def test_dsge_layer_mutates_every_layer_and_keeps_counts():
    parent = _parent(1)
    child = _child(parent, _rates(dsge_layer=1), 1)
    assert child.learning == parent.learning and not child.train_longer
    for name in ("features", "classification"):
        assert len(child.blocks[name]) == len(parent.blocks[name])
        assert {m for m in child.mutations if m.startswith(f"dsge_layer:{name}")} == {
            f"dsge_layer:{name}@{i}" for i in range(len(parent.blocks[name]))}


def test_mutation_falls_back_to_train_longer_and_rejects_invalid_parents():
    # Only fc layers can be added, and any fc layer (>= 128 units on 1046 inputs) exceeds 20k parameters.
    g = Grammar.from_text(
        "<classification> ::= layer:fc [num-units,int,1,128,256] act:relu bias:True\n"
        "<learning> ::= learning:adam [lr,float,1,0.001,0.01] beta1:0.9 beta2:0.999 decay:0.0 "
        "early_stop:5 batch_size:16\n")
    one = Structure(blocks=(("classification", 0, 1),), init_max={"classification": 0})
    parent = random_individual(g, one, random.Random(0), 1046, N_CLASSES, 20_000, id="p")
    assert parent.blocks == {"classification": []}
    child = mutate(parent, g, one, _rates(add_layer=1), random.Random(0), 1046, N_CLASSES, 20_000, id="c",
                   max_tries=20)
    assert child.train_longer and child.mutations == ["train_longer:fallback"]
    assert child.blocks == parent.blocks and child.learning == parent.learning and child.parent == "p"
    with pytest.raises(GenotypeError, match="not valid"):
        mutate(parent, g, one, _rates(add_layer=1), random.Random(0), 1046, N_CLASSES, 100, id="c")


def test_structure_and_rates_are_validated():
    with pytest.raises(GenotypeError):
        MutationRates(add_layer=1.5)
    with pytest.raises(GenotypeError):
        Structure(init_max={"features": 40})
    with pytest.raises(GenotypeError):
        Structure(blocks=(("features", 3, 2),), init_max={})
    with pytest.raises(GenotypeError, match="no production"):
        random_individual(GRAMMAR, Structure(blocks=(("nope", 1, 2),), init_max={}), random.Random(0),
                          100, 2, None, id="x")


def test_pareto_front():
    rows = [
        {"id": "a", "fitness": 0.90, "parameters": 1000},
        {"id": "b", "fitness": 0.80, "parameters": 500},
        {"id": "c", "fitness": 0.85, "parameters": 1200},  # dominated by a
        {"id": "d", "fitness": 0.95, "parameters": 5000},
        {"id": "e", "fitness": 0.80, "parameters": 600},   # dominated by b
        {"id": "f", "fitness": 0.95, "parameters": 5000},  # equal to d: kept
        {"id": "g", "fitness": 0.70, "parameters": 100},
        {"id": "h", "fitness": float("nan"), "parameters": 10},  # failed: ignored
        {"id": "i", "fitness": 0.90, "parameters": 1000},  # equal to a: kept
        {"id": "j", "fitness": 0.95, "parameters": 6000},  # dominated by d
    ]
    assert [r["id"] for r in pareto_front(rows)] == ["g", "b", "a", "i", "d", "f"]
    assert pareto_front([]) == []


# ---------------------------------------------------------------------------------- torch builder
def _net(layers: str, L: int, n_classes: int = 2):
    return build_torch_model(f"{layers} {LEARN}", L, n_classes).eval()


def test_same_padding_rule():
    assert same_padding(5, 2, 2) == (0, 1)
    assert same_padding(5, 4, 2) == (1, 2)
    assert same_padding(5, 3, 1) == (1, 1)
    assert same_padding(7, 2, 3) == (0, 1)
    assert same_padding(6, 1, 2) == (0, 0)


def _body_until(model, n_modules, x):
    with torch.no_grad():
        for m in list(model.body)[:n_modules]:
            x = m(x)
    return x


def test_tf_same_pooling_on_a_hand_computed_example():
    x = torch.tensor([[[1.0, 2.0, 3.0, 4.0, 5.0]]])
    mx = _net("layer:pool-max kernel-size:2 stride:2 padding:same", 5)
    av = _net("layer:pool-avg kernel-size:2 stride:2 padding:same", 5)
    # pad_total = 1, all on the right: windows [1,2] [3,4] [5,pad]
    assert _body_until(mx, 1, x).flatten().tolist() == [2.0, 4.0, 5.0]
    assert _body_until(av, 1, x).flatten().tolist() == [1.5, 3.5, 5.0]   # pad cell not counted
    assert _body_until(mx, 1, -x).flatten().tolist() == [-1.0, -3.0, -5.0]  # pad never wins (not 0)
    valid = _net("layer:pool-avg kernel-size:2 stride:2 padding:valid", 5)
    assert _body_until(valid, 1, x).flatten().tolist() == [1.5, 3.5]
    # kernel 4, stride 1, length 5: pad_total 3 -> left 1, right 2
    av4 = _net("layer:pool-avg kernel-size:4 stride:1 padding:same", 5)
    assert _body_until(av4, 1, x).flatten().tolist() == pytest.approx([2.0, 2.5, 3.5, 4.0, 4.5])


def test_tf_same_conv_stride_2_on_a_hand_computed_example():
    net = _net("layer:conv num-filters:1 filter-shape:4 stride:2 padding:same act:linear bias:False", 5)
    conv = net.body[0].conv
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([[[1.0, 10.0, 100.0, 1000.0]]]))
    x = torch.tensor([[[1.0, 2.0, 3.0, 4.0, 5.0]]])
    # pad_total = (3-1)*2 + 4 - 5 = 3 -> left 1, right 2: [0 1 2 3 4 5 0 0], windows at 0, 2, 4
    assert _body_until(net, 1, x).flatten().tolist() == [3210.0, 5432.0, 54.0]
    assert net(torch.zeros(3, 1, 5)).shape == (3, 2)


def test_flatten_is_keras_channels_last_and_bn_counts():
    net = _net("layer:conv num-filters:2 filter-shape:1 stride:1 padding:valid act:linear bias:False", 3)
    with torch.no_grad():
        net.body[0].conv.weight.copy_(torch.tensor([[[1.0]], [[-1.0]]]))
    x = torch.tensor([[[1.0, 2.0, 3.0]]])
    flat = _body_until(net, 3, x)  # conv, act, flatten
    assert flat.flatten().tolist() == [1.0, -1.0, 2.0, -2.0, 3.0, -3.0]
    ph = ("layer:conv num-filters:8 filter-shape:5 stride:2 padding:same act:relu bias:True layer:batch-norm "
          "layer:pool-avg kernel-size:4 stride:3 padding:valid layer:dropout rate:0.2 "
          "layer:fc num-units:16 act:sigmoid bias:False layer:dropout rate:0.5")
    net = _net(ph, 50, 3)
    bn = [m for m in net.modules() if isinstance(m, torch.nn.BatchNorm1d)][0]
    assert bn.eps == 1e-3 and bn.momentum == pytest.approx(0.01)
    assert torch_parameter_count(net) == parse_phenotype(f"{ph} {LEARN}").count_parameters(50, 3)
    with pytest.raises(PhenotypeError):
        _net("layer:pool-max kernel-size:64 stride:1 padding:valid", 30)


def test_phenotype_network_trains_with_the_training_loop():
    from spiking.training.loop import TrainConfig, predict, train
    from spiking.training.objectives import CNNObjective

    L, n = 32, 160
    rs = np.random.default_rng(0)
    y = np.arange(n) % 2
    pos = np.where(y == 0, 8, 24)
    grid = np.arange(L)
    X = (np.exp(-0.5 * ((grid[None, :] - pos[:, None]) / 2.0) ** 2) + 0.3 * rs.standard_normal((n, L)))
    X = X.astype(np.float32)[:, None, :]
    y = y.astype(np.int64)
    torch.manual_seed(0)
    net = build_torch_model(
        "layer:conv num-filters:4 filter-shape:4 stride:2 padding:same act:relu bias:True "
        "layer:pool-max kernel-size:4 stride:2 padding:same layer:batch-norm "
        f"layer:fc num-units:16 act:relu bias:True {LEARN}", L, 2)
    obj = CNNObjective()
    before = float((predict(net, obj, X) == y).mean())
    hist = train(net, obj, X[:120], y[:120], X[120:], y[120:],
                 TrainConfig(epochs=8, batch_size=16, lr=1e-2, patience=0, seed=0, device="cpu", progress=False))
    acc = float((predict(net, obj, X[:120]) == y[:120]).mean())
    assert acc > 0.9, (before, acc, hist.epochs)
    assert hist.best_val_balanced_accuracy > 0.9


# ------------------------------------------------------------------- Keras weights into the torch net
KERAS_XFER = ("layer:conv num-filters:3 filter-shape:4 stride:2 padding:same act:relu bias:True layer:batch-norm "
              "layer:pool-max kernel-size:2 stride:2 padding:valid "
              "layer:conv num-filters:2 filter-shape:3 stride:1 padding:valid act:sigmoid bias:False "
              "layer:dropout rate:0.3 layer:fc num-units:5 act:relu bias:False "
              "layer:fc num-units:4 act:linear bias:True")


def _as_keras_weights(net) -> list[np.ndarray]:
    """``net``'s weights in the layout of ``keras_model.get_weights()`` (the inverse transposes)."""
    out = []
    for m in net.body:
        if hasattr(m, "conv"):
            out += [m.conv.weight.detach().numpy().transpose(2, 1, 0)]
            out += [m.conv.bias.detach().numpy()] if m.conv.bias is not None else []
        elif isinstance(m, torch.nn.BatchNorm1d):
            out += [t.detach().numpy() for t in (m.weight, m.bias, m.running_mean, m.running_var)]
        elif isinstance(m, torch.nn.Linear):
            out += [m.weight.detach().numpy().T]
            out += [m.bias.detach().numpy()] if m.bias is not None else []
    return [np.array(w) for w in out]


def test_load_keras_weights_round_trip_and_errors(tmp_path):
    L, n_classes = 60, 4
    torch.manual_seed(0)
    src = build_torch_model(f"{KERAS_XFER} {LEARN}", L, n_classes, init="torch").eval()
    with torch.no_grad():  # BN not the identity
        bn = src.body[2]
        bn.running_mean.uniform_(-1, 1), bn.running_var.uniform_(0.5, 2), bn.weight.uniform_(0.5, 2)
        bn.bias.uniform_(-1, 1)
    weights = _as_keras_weights(src)
    # conv_0 kernel+bias, batch_norm_1 x4, conv_3 kernel, fc_5 kernel, fc_6 kernel+bias, logits kernel+bias
    assert [w.shape for w in weights][:3] == [(4, 1, 3), (3,), (3,)] and len(weights) == 12
    np.savez(tmp_path / "w.npz", *weights)
    loaded = read_weights_npz(tmp_path / "w.npz")
    assert all(np.array_equal(a, b) for a, b in zip(loaded, weights)) and len(loaded) == len(weights)
    dst = build_torch_model(f"{KERAS_XFER} {LEARN}", L, n_classes).eval()
    assert load_keras_weights(dst, loaded) is dst
    x = torch.rand(5, 1, L)
    with torch.no_grad():
        assert torch.equal(src(x), dst(x))
    for k, v in src.state_dict().items():
        if "num_batches" not in k:
            assert torch.equal(v, dst.state_dict()[k]), k
    # errors name the Keras layer, and leave the model unchanged
    fresh = build_torch_model(f"{KERAS_XFER} {LEARN}", L, n_classes).eval()
    before = {k: v.clone() for k, v in fresh.state_dict().items()}
    bad = list(weights)
    bad[6] = bad[6][:2]  # conv_3 kernel (3, 3, 2) -> (2, 3, 2)
    with pytest.raises(ValueError, match=r"'conv_3' kernel .*\(3, 3, 2\)"):
        load_keras_weights(fresh, bad)
    with pytest.raises(ValueError, match=r"'batch_norm_1' moving_variance"):
        load_keras_weights(fresh, weights[:5] + [np.ones(4, np.float32)] + weights[6:])
    with pytest.raises(ValueError, match=r"too few .*'logits' bias"):
        load_keras_weights(fresh, weights[:-1])
    with pytest.raises(ValueError, match=r"too many"):
        load_keras_weights(fresh, weights + [np.zeros(4, np.float32)])
    with pytest.raises(ValueError, match=r"'conv_3' kernel .*one missing or extra"):
        load_keras_weights(fresh, weights[:6] + weights[7:])  # conv_3 kernel dropped
    with pytest.raises(TypeError):
        load_keras_weights(torch.nn.Linear(2, 2), weights)
    assert all(torch.equal(v, before[k]) for k, v in fresh.state_dict().items())
    np.savez(tmp_path / "named.npz", kernel=weights[0])
    with pytest.raises(ValueError, match="arr_0"):
        read_weights_npz(tmp_path / "named.npz")


def test_a_grammar_that_grows_faster_than_it_ends_stays_bounded():
    """<f> ::= <f> <f> <f> | x would reach 3**32 nodes before the depth limit: the expansion budget stops it."""
    from spiking.search.grammar import MAX_EXPANSIONS

    g = Grammar.from_text("<features> ::= <features> <features> <features> | layer:batch-norm\n"
                          "<classification> ::= layer:dropout [rate,float,1,0,0.5]\n"
                          "<learning> ::= learning:adam [lr,float,1,0.001,0.01]\n")
    sizes = []
    for seed in range(30):
        d = g.initialise("features", random.Random(seed))
        sizes.append(len(g.decode("features", d).split()))
    assert max(sizes) <= 3 * MAX_EXPANSIONS and max(sizes) > 1  # it does recurse, within the budget


@pytest.mark.parametrize("learning,fragment", [
    ("learning:adam lr:nan beta1:0.9 beta2:0.99 decay:0", "lr must be a finite number"),
    ("learning:adam lr:inf beta1:0.9 beta2:0.99 decay:0", "lr must be a finite number"),
    ("learning:adam lr:0.01 beta1:0.9 beta2:1.0 decay:0", "beta2 must be in [0, 1)"),
    ("learning:rmsprop lr:0.01 rho:7 decay:0", "rho must be in [0, 1)"),
    ("learning:gradient-descent lr:0.01 momentum:5 decay:0 nesterov:True", "momentum must be in [0, 1]"),
    ("learning:gradient-descent lr:0.01 momentum:0.9 decay:-1 nesterov:True", "decay must be a finite number"),
])
def test_optimiser_values_outside_their_domain_are_refused(learning, fragment):
    from spiking.specs.phenotype import PhenotypeError, parse_phenotype

    with pytest.raises(PhenotypeError, match=re.escape(fragment)):
        parse_phenotype(f"layer:batch-norm {learning} early_stop:5 batch_size:50")
