"""Fast-DENSER genotypes (the outer level): blocks of layer derivations, mutation, Pareto front.

Details: docs/modules.md, section ``spiking.search.genotype``.
"""

from __future__ import annotations

import copy
import json
import math
import random
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Iterable, Mapping

from spiking.errors import SpikingError
from spiking.search.grammar import DerivationError, Grammar
from spiking.specs.phenotype import Phenotype, PhenotypeError, parse_phenotype

__all__ = [
    "GenotypeError",
    "Structure",
    "MutationRates",
    "Individual",
    "random_individual",
    "mutate",
    "check_individual",
    "pareto_front",
]


class GenotypeError(SpikingError):
    """No valid individual could be drawn, an invalid parent, or a malformed structure,
    mutation rates or serialised individual."""


@dataclass(frozen=True)
class Structure:
    """The outer structure of a network.

    Attributes:
        blocks: ``(name, min_layers, max_layers)`` per layer block, in network order; ``name``
            is the grammar non-terminal each layer derives from.
        init_max: most layers an initial individual gets per block (counts are drawn uniformly
            in ``[min_layers, init_max]``); defaults to ``max_layers`` for blocks not listed.
        macro: the non-terminal of the macro (learning) block, derived once per network.

    Raises:
        GenotypeError: ``min_layers < 0``, ``max_layers < max(min_layers, 1)``, ``init_max``
            outside ``[min_layers, max_layers]`` or naming an unknown block, duplicate names.
    """

    blocks: tuple[tuple[str, int, int], ...] = (("features", 1, 30), ("classification", 1, 10))
    init_max: Mapping[str, int] = field(default_factory=lambda: {"features": 3, "classification": 2})
    macro: str = "learning"

    def __post_init__(self) -> None:
        names = [b[0] for b in self.blocks]
        if len(set(names)) != len(names) or self.macro in names:
            raise GenotypeError(f"block names must be distinct (and differ from the macro block): {names}")
        for name, lo, hi in self.blocks:
            if lo < 0 or hi < max(lo, 1):
                raise GenotypeError(f"block {name}: need 0 <= min <= max and max >= 1, got {lo}, {hi}")
        for name, m in self.init_max.items():
            if name not in names:
                raise GenotypeError(f"init_max names an unknown block {name!r}")
            lo, hi = self.limits(name)
            if not lo <= m <= hi:
                raise GenotypeError(f"init_max[{name!r}] = {m} outside [{lo}, {hi}]")

    @property
    def block_names(self) -> tuple[str, ...]:
        """The layer blocks' names, in network order."""
        return tuple(b[0] for b in self.blocks)

    def limits(self, name: str) -> tuple[int, int]:
        """``(min_layers, max_layers)`` of block ``name``. Raises KeyError for unknown blocks."""
        for n, lo, hi in self.blocks:
            if n == name:
                return lo, hi
        raise KeyError(name)

    def initial_max(self, name: str) -> int:
        """Most layers an initial individual gets in block ``name``."""
        return self.init_max.get(name, self.limits(name)[1])


@dataclass(frozen=True)
class MutationRates:
    """Probabilities (each in [0, 1]) of Fast-DENSER's mutation operators; defaults are the study's.

    add_layer, reuse_layer, remove_layer: per block and offspring; dsge_layer: per layer;
    macro_layer: of mutating the learning block; train_longer: of an offspring that only
    continues training the parent's weights.

    Raises:
        GenotypeError: a rate outside [0, 1].
    """

    add_layer: float = 0.25
    reuse_layer: float = 0.15
    remove_layer: float = 0.25
    dsge_layer: float = 0.15
    macro_layer: float = 0.3
    train_longer: float = 0.2

    def __post_init__(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            if not 0.0 <= v <= 1.0:
                raise GenotypeError(f"mutation rate {f.name} must be in [0, 1], got {v}")


@dataclass
class Individual:
    """One network genotype.

    Attributes:
        id: identifier (unique within a search).
        blocks: block name -> list of layer derivations (one per layer), in network order.
        learning: derivation of the macro (learning) block.
        parent: id of the parent (None for initial individuals).
        mutations: operators applied to obtain it from the parent, e.g. ``"add_layer:features@2"``,
            ``"reuse_layer:features@3<-0"`` (copy of layer 0 inserted at 3), ``"remove_layer:
            classification@1"``, ``"dsge_layer:features@0"``, ``"macro_layer:learning"``,
            ``"train_longer"``, ``"train_longer:fallback"`` (no valid mutation found).
        train_longer: True when the offspring only continues training of the parent's weights.
    """

    id: str
    blocks: dict[str, list[dict]]
    learning: dict
    parent: str | None = None
    mutations: list[str] = field(default_factory=list)
    train_longer: bool = False

    def to_dict(self) -> dict:
        """A JSON-serialisable dict of all fields (a deep copy)."""
        return copy.deepcopy(asdict(self))

    def to_json(self) -> str:
        """The individual as a JSON string (:meth:`from_json` reads it back, equal)."""
        return json.dumps(self.to_dict(), sort_keys=False)

    @classmethod
    def from_json(cls, data: str | Mapping[str, Any]) -> "Individual":
        """Read an individual from a JSON string or an already decoded dict.

        Raises:
            GenotypeError: missing or unexpected keys, or wrongly typed fields.
        """
        d = json.loads(data) if isinstance(data, str) else copy.deepcopy(dict(data))
        names = {f.name for f in fields(cls)}
        if set(d) - names or {"id", "blocks", "learning"} - set(d):
            raise GenotypeError(f"an individual needs keys {sorted(names)}, got {sorted(d)}")
        if not isinstance(d["blocks"], dict) or not all(isinstance(v, list) for v in d["blocks"].values()):
            raise GenotypeError("blocks must map block names to lists of derivations")
        ind = cls(**d)
        ind.mutations = list(ind.mutations)
        return ind

    def phenotype(self, grammar: Grammar) -> str:
        """The phenotype string: decoded layers block by block (in ``blocks`` order, i.e. the
        structure's), then the learning block, joined by spaces.

        Raises:
            DerivationError: a derivation does not fit ``grammar``.
        """
        parts = [grammar.decode(name, d) for name, layers in self.blocks.items() for d in layers]
        macro = self.learning.get("symbol", "learning") if isinstance(self.learning, dict) else "learning"
        parts.append(grammar.decode(macro, self.learning))
        return " ".join(parts)

    def layer_counts(self) -> dict[str, int]:
        """Number of layers per block."""
        return {k: len(v) for k, v in self.blocks.items()}


def check_individual(ind: Individual, grammar: Grammar, L: int, n_classes: int,
                     max_params: int | None) -> Phenotype:
    """Parse ``ind``'s phenotype and check it fits input length ``L`` with at most ``max_params``
    parameters (None: no limit); returns the parsed :class:`Phenotype`.

    Raises:
        PhenotypeError: unparsable phenotype, a length below 1, or too many parameters.
        DerivationError: a derivation does not fit ``grammar``.
    """
    ph = parse_phenotype(ind.phenotype(grammar))
    ph.check(L, n_classes, max_params)
    return ph


def _is_valid(ind: Individual, grammar: Grammar, L: int, n_classes: int, max_params: int | None) -> str | None:
    try:
        check_individual(ind, grammar, L, n_classes, max_params)
    except (PhenotypeError, DerivationError) as e:
        return str(e)
    return None


def _check_structure(grammar: Grammar, structure: Structure) -> None:
    for name in (*structure.block_names, structure.macro):
        if not grammar.has_symbol(name):
            raise GenotypeError(f"the grammar {grammar.source} has no production for block <{name}>")


def random_individual(grammar: Grammar, structure: Structure, rng: random.Random, L: int, n_classes: int,
                      max_params: int | None, id: str, max_tries: int = 100) -> Individual:
    """A random valid individual (Fast-DENSER initialisation).

    Each try draws, for every block, a layer count uniformly in ``[min_layers, init_max]``
    and that many derivations (:meth:`Grammar.initialise`), then the learning block; the
    first try whose phenotype is valid (parses, fits ``L``, at most ``max_params``
    parameters with ``n_classes`` outputs) is returned.

    Raises:
        GenotypeError: no valid individual in ``max_tries`` tries (the last reason is given),
            or a block without production in ``grammar``.
    """
    _check_structure(grammar, structure)
    reason = "max_tries < 1"
    for _ in range(max_tries):
        blocks = {}
        for name, lo, _hi in structure.blocks:
            n = rng.randint(lo, structure.initial_max(name))
            blocks[name] = [grammar.initialise(name, rng) for _ in range(n)]
        ind = Individual(id=id, blocks=blocks, learning=grammar.initialise(structure.macro, rng))
        reason = _is_valid(ind, grammar, L, n_classes, max_params)
        if reason is None:
            return ind
    raise GenotypeError(f"no valid individual for L={L}, n_classes={n_classes}, max_params={max_params} "
                        f"in {max_tries} tries; last: {reason}")


def _train_longer_copy(parent: Individual, id: str, tag: str) -> Individual:
    return Individual(id=id, blocks=copy.deepcopy(parent.blocks), learning=copy.deepcopy(parent.learning),
                      parent=parent.id, mutations=[tag], train_longer=True)


def _mutate_once(parent: Individual, grammar: Grammar, structure: Structure, rates: MutationRates,
                 rng: random.Random, id: str) -> Individual:
    blocks: dict[str, list[dict]] = {}
    applied: list[str] = []
    for name, lo, hi in structure.blocks:
        layers = copy.deepcopy(parent.blocks.get(name, []))
        if rng.random() < rates.add_layer and len(layers) < hi:
            pos = rng.randint(0, len(layers))
            layers.insert(pos, grammar.initialise(name, rng))
            applied.append(f"add_layer:{name}@{pos}")
        if rng.random() < rates.reuse_layer and 0 < len(layers) < hi:
            src = rng.randrange(len(layers))
            pos = rng.randint(0, len(layers))
            layers.insert(pos, copy.deepcopy(layers[src]))
            applied.append(f"reuse_layer:{name}@{pos}<-{src if src < pos else src + 1}")
        if rng.random() < rates.remove_layer and len(layers) > lo:
            pos = rng.randrange(len(layers))
            del layers[pos]
            applied.append(f"remove_layer:{name}@{pos}")
        for i in range(len(layers)):
            if rng.random() < rates.dsge_layer:
                layers[i] = grammar.mutate_derivation(name, layers[i], rng)
                applied.append(f"dsge_layer:{name}@{i}")
        blocks[name] = layers
    learning = copy.deepcopy(parent.learning)
    if rng.random() < rates.macro_layer:
        learning = grammar.mutate_derivation(structure.macro, learning, rng)
        applied.append(f"macro_layer:{structure.macro}")
    return Individual(id=id, blocks=blocks, learning=learning, parent=parent.id, mutations=applied)


def mutate(parent: Individual, grammar: Grammar, structure: Structure, rates: MutationRates,
           rng: random.Random, L: int, n_classes: int, max_params: int | None, id: str,
           max_tries: int = 100) -> Individual:
    """A valid offspring of ``parent`` by Fast-DENSER's mutation (module docstring).

    With probability ``rates.train_longer`` the offspring is a copy flagged ``train_longer``
    (mutations ``["train_longer"]``). Otherwise, per block in structure order: add a fresh
    layer at a random position (probability ``add_layer``, if below the block's maximum);
    copy a random layer of the block to a random position (``reuse_layer``, if below the
    maximum; the record names the copied layer's index after the insertion); remove a random
    layer (``remove_layer``, if above the minimum); then each layer gets a DSGE mutation
    (:meth:`Grammar.mutate_derivation`) with probability ``dsge_layer``. Finally the learning
    block gets a DSGE mutation with probability ``macro_layer``. An offspring may come out
    unchanged (all draws missed), as in Fast-DENSER.

    An invalid offspring is discarded and the whole mutation drawn again (same ``rng``), up
    to ``max_tries`` times; then a train-longer copy of the parent is returned, recorded as
    ``"train_longer:fallback"``.

    Returns:
        a new :class:`Individual` with ``id``, ``parent=parent.id``; ``parent`` is not modified.

    Raises:
        GenotypeError: ``parent`` itself is not valid for ``L``, ``n_classes``, ``max_params``
            (so even the fallback would not be), or a block without production in ``grammar``.
    """
    _check_structure(grammar, structure)
    reason = _is_valid(parent, grammar, L, n_classes, max_params)
    if reason is not None:
        raise GenotypeError(f"parent {parent.id} is not valid: {reason}")
    if rng.random() < rates.train_longer:
        return _train_longer_copy(parent, id, "train_longer")
    for _ in range(max_tries):
        child = _mutate_once(parent, grammar, structure, rates, rng, id)
        if _is_valid(child, grammar, L, n_classes, max_params) is None:
            return child
    return _train_longer_copy(parent, id, "train_longer:fallback")


def pareto_front(rows: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The non-dominated rows for (``fitness``: higher is better, ``parameters``: lower is better).

    A row dominates another when it is at least as good on both and better on one; rows equal
    on both are all kept. Rows whose fitness is None or NaN (failed evaluations) are ignored.

    Returns:
        the non-dominated rows themselves (not copies), sorted by ``parameters`` ascending,
        then ``fitness`` descending.

    Raises:
        KeyError: a row without ``fitness`` or ``parameters``.
    """
    items = [r for r in rows if r["fitness"] is not None and not (isinstance(r["fitness"], float)
                                                                  and math.isnan(r["fitness"]))]
    items.sort(key=lambda r: (r["parameters"], -r["fitness"]))
    front: list[Mapping[str, Any]] = []
    best = -math.inf
    # Sorted by parameters (fitness descending within ties): a row is non-dominated iff its
    # fitness beats every row with fewer parameters, or ties the front row with equal parameters.
    for r in items:
        if r["fitness"] > best:
            front.append(r)
            best = r["fitness"]
        elif front and r["fitness"] == front[-1]["fitness"] and r["parameters"] == front[-1]["parameters"]:
            front.append(r)
    return front
