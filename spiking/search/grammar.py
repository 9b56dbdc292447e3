"""Fast-DENSER grammars: parse a BNF file, derive, decode and mutate (the DSGE inner level).

Details: docs/modules.md, section ``spiking.search.grammar``.
"""

from __future__ import annotations

import copy
import math
import random
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Union

from spiking.errors import SpikingError

__all__ = [
    "GrammarError",
    "DerivationError",
    "Terminal",
    "NonTerminal",
    "Parameter",
    "Grammar",
    "DEFAULT_GRAMMAR",
]

#: File name of the default grammar, in the ``spiking.search.grammars`` resource folder.
DEFAULT_GRAMMAR = "fast_denser_1d.grammar"
#: Non-terminal expansions per derivation after which only the soonest-terminating alternatives are drawn.
MAX_EXPANSIONS = 2000

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*\Z")
_PARAM_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*\Z")
_INT = re.compile(r"[+-]?\d+\Z")


class GrammarError(SpikingError):
    """A malformed grammar; the message starts with ``"<file name>, line <n>: "``.

    Attributes: ``source`` (file name or ``"<string>"``), ``line`` (1-based; 0 when the
    error concerns no single line, e.g. an empty grammar or an unknown start symbol).
    """

    def __init__(self, source: str, line: int, message: str):
        self.source, self.line = source, line
        where = f"{source}, line {line}: " if line else f"{source}: "
        super().__init__(where + message)


class DerivationError(SpikingError):
    """A derivation (genotype tree) that does not fit the grammar: wrong symbol, alternative
    index out of range, wrong number of children, or a parameter value of the wrong type,
    count or outside its bounds."""


@dataclass(frozen=True)
class Terminal:
    """A ``key:value`` terminal, copied to the phenotype."""

    text: str


@dataclass(frozen=True)
class NonTerminal:
    """A reference ``<name>`` to another production."""

    name: str


@dataclass(frozen=True)
class Parameter:
    """A ``[name,type,count,min,max]`` parameter: ``count`` values of ``type`` (``"int"`` or
    ``"float"``) in ``[low, high]`` (ints, inclusive) or ``[low, high)`` (floats)."""

    name: str
    type: str
    count: int
    low: Union[int, float]
    high: Union[int, float]

    def draw(self, rng: random.Random) -> list:
        """``count`` fresh values drawn uniformly with ``rng``."""
        return [self.draw_one(rng) for _ in range(self.count)]

    def draw_one(self, rng: random.Random) -> Union[int, float]:
        """One value: ``rng.randint(low, high)`` for ints, ``low + (high - low) * rng.random()``
        for floats (kept below ``high`` when ``high > low``, so e.g. Adam's betas stay < 1)."""
        if self.type == "int":
            return rng.randint(self.low, self.high)
        v = self.low + (self.high - self.low) * rng.random()
        if v >= self.high and self.high > self.low:  # rounding up to the bound
            v = self.low
        return float(v)

    def check(self, values: Any) -> None:
        """Raise :class:`DerivationError` unless ``values`` is a list of ``count`` in-bounds values."""
        if not isinstance(values, list) or len(values) != self.count:
            raise DerivationError(f"parameter {self.name}: expected a list of {self.count} value(s), got {values!r}")
        for v in values:
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise DerivationError(f"parameter {self.name}: {v!r} is not a number")
            if self.type == "int" and not isinstance(v, int):
                raise DerivationError(f"parameter {self.name}: {v!r} is not an int")
            if not (self.low <= v <= self.high) or (isinstance(v, float) and not math.isfinite(v)):
                raise DerivationError(f"parameter {self.name}: {v!r} outside [{self.low}, {self.high}]")

    def render(self, values: list) -> str:
        """``name:value`` (``name:v1,v2`` for several values); floats written with ``repr``."""
        return f"{self.name}:" + ",".join(repr(float(v)) if self.type == "float" else str(int(v)) for v in values)


Item = Union[Terminal, NonTerminal, Parameter]


def _strip_comment(line: str) -> str:
    i = line.find("#")
    return line if i < 0 else line[:i]


class Grammar:
    """A parsed Fast-DENSER grammar (format in the module docstring).

    Build with :meth:`from_file`, :meth:`from_text` or :meth:`default`. ``productions`` maps
    each non-terminal name (without brackets) to its alternatives, each a tuple of
    :class:`Terminal` / :class:`NonTerminal` / :class:`Parameter` items; ``lines`` gives the
    1-based line of each production; ``source`` the file name (or ``"<string>"``).

    Raises:
        GrammarError: on any malformation (see :meth:`from_text`).
    """

    def __init__(self, productions: dict[str, list[tuple[Item, ...]]], lines: dict[str, int], source: str):
        self.productions = productions
        self.lines = lines
        self.source = source
        self._height = self._check_references_and_termination()

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_file(cls, path: str | Path) -> "Grammar":
        """Parse the grammar file at ``path`` (UTF-8); error messages name ``str(path)``.

        Raises:
            GrammarError: malformed grammar. OSError: unreadable file.
        """
        path = Path(path)
        return cls.from_text(path.read_text(encoding="utf-8"), name=str(path))

    @classmethod
    def default(cls) -> "Grammar":
        """The packaged default grammar ``spiking/search/grammars/fast_denser_1d.grammar``
        (read through ``importlib.resources``)."""
        res = resources.files("spiking.search").joinpath("grammars").joinpath(DEFAULT_GRAMMAR)
        return cls.from_text(res.read_text(encoding="utf-8"), name=DEFAULT_GRAMMAR)

    @classmethod
    def from_text(cls, text: str, name: str = "<string>") -> "Grammar":
        """Parse grammar ``text``; ``name`` prefixes error messages.

        Raises:
            GrammarError: at the offending 1-based line for: a line without ``::=`` (or with
                more than one); a left-hand side that is not one ``<name>``; a bad non-terminal
                name; an unbalanced ``<``/``>`` or ``[``/``]``; an empty alternative (``a | | b``,
                a leading/trailing ``|``, an empty right-hand side); a malformed parameter (not
                5 comma-separated fields, type not ``int``/``float``, non-numeric or non-finite
                bounds, non-integer bounds of an ``int`` parameter, ``min > max``, ``count``
                not an integer ``>= 1``); a terminal that is not ``key:value``; a duplicate
                production; a referenced non-terminal without production (at the first line
                referencing it); a non-terminal that can never terminate (at its production).
                An empty grammar raises with line 0.
        """
        productions: dict[str, list[tuple[Item, ...]]] = {}
        lines: dict[str, int] = {}
        for lineno, raw in enumerate(text.splitlines(), start=1):
            line = _strip_comment(raw).strip()
            if not line:
                continue

            def fail(msg: str, _n: int = lineno) -> GrammarError:
                return GrammarError(name, _n, msg)

            if line.count("::=") != 1:
                raise fail("expected exactly one '::=' (production '<symbol> ::= alt | alt')"
                           if "::=" in line else "missing '::=' (production '<symbol> ::= alt | alt')")
            lhs, rhs = (s.strip() for s in line.split("::="))
            symbol = cls._parse_lhs(lhs, fail)
            if symbol in productions:
                raise fail(f"duplicate production for <{symbol}> (first defined at line {lines[symbol]})")
            productions[symbol] = cls._parse_rhs(rhs, fail)
            lines[symbol] = lineno
        if not productions:
            raise GrammarError(name, 0, "the grammar has no productions")
        return cls(productions, lines, name)

    @staticmethod
    def _parse_lhs(lhs: str, fail) -> str:
        if not lhs:
            raise fail("missing non-terminal before '::='")
        if lhs.count("<") != lhs.count(">") or (lhs.startswith("<") != lhs.endswith(">")):
            raise fail(f"unbalanced '<' / '>' in {lhs!r}")
        if not (lhs.startswith("<") and lhs.endswith(">")) or lhs.count("<") != 1:
            raise fail(f"the left-hand side must be one non-terminal '<name>', got {lhs!r}")
        sym = lhs[1:-1]
        if not _NAME.match(sym):
            raise fail(f"bad non-terminal name <{sym}> (letters, digits, '_' and '-'; starts with a letter or '_')")
        return sym

    @classmethod
    def _parse_rhs(cls, rhs: str, fail) -> list[tuple[Item, ...]]:
        alternatives: list[tuple[Item, ...]] = []
        current: list[Item] = []
        i, n = 0, len(rhs)

        def close_alt() -> None:
            if not current:
                raise fail("empty alternative (nothing between '::=' / '|' and '|' / end of line)")
            alternatives.append(tuple(current))
            current.clear()

        while i < n:
            c = rhs[i]
            if c.isspace():
                i += 1
            elif c == "|":
                close_alt()
                i += 1
            elif c == "<":
                j = rhs.find(">", i + 1)
                nxt = rhs.find("<", i + 1)
                if j < 0 or (0 <= nxt < j):
                    raise fail(f"unbalanced '<' at {rhs[i:i + 20]!r}")
                sym = rhs[i + 1:j]
                if not _NAME.match(sym):
                    raise fail(f"bad non-terminal name <{sym}> (letters, digits, '_' and '-'; "
                               "starts with a letter or '_')")
                current.append(NonTerminal(sym))
                i = j + 1
            elif c == "[":
                j = rhs.find("]", i + 1)
                nxt = rhs.find("[", i + 1)
                if j < 0 or (0 <= nxt < j):
                    raise fail(f"unbalanced '[' at {rhs[i:i + 30]!r}")
                current.append(cls._parse_param(rhs[i + 1:j], fail))
                i = j + 1
            elif c in ">]":
                raise fail(f"unbalanced {c!r}: no matching {'<' if c == '>' else '['} before it")
            else:
                j = i
                while j < n and not rhs[j].isspace() and rhs[j] not in "|<>[]":
                    j += 1
                tok = rhs[i:j]
                if j < n and rhs[j] in ">]":
                    raise fail(f"unbalanced {rhs[j]!r} after {tok!r}: no matching "
                               f"{'<' if rhs[j] == '>' else '['} before it")
                if j < n and rhs[j] in "<[":
                    raise fail(f"terminal {tok!r} runs into {rhs[j]!r} (separate tokens with spaces)")
                key, sep, value = tok.partition(":")
                if not sep or not key or not value:
                    raise fail(f"terminal {tok!r} is not key:value")
                current.append(Terminal(tok))
                i = j
        close_alt()
        return alternatives

    @staticmethod
    def _parse_param(body: str, fail) -> Parameter:
        fields = [f.strip() for f in body.split(",")]
        if len(fields) != 5:
            raise fail(f"parameter [{body}] must have 5 fields [name,type,count,min,max], got {len(fields)}")
        pname, ptype, pcount, plow, phigh = fields
        if not _PARAM_NAME.match(pname):
            raise fail(f"parameter [{body}]: bad name {pname!r}")
        if ptype not in ("int", "float"):
            raise fail(f"parameter [{body}]: unknown type {ptype!r} (int or float)")
        if not _INT.match(pcount) or int(pcount) < 1:
            raise fail(f"parameter [{body}]: count must be an integer >= 1, got {pcount!r}")
        bounds: list[Union[int, float]] = []
        for b in (plow, phigh):
            if ptype == "int":
                if not _INT.match(b):
                    raise fail(f"parameter [{body}]: bound {b!r} is not an integer")
                bounds.append(int(b))
            else:
                try:
                    v = float(b)
                except ValueError:
                    raise fail(f"parameter [{body}]: bound {b!r} is not a number") from None
                if not math.isfinite(v):
                    raise fail(f"parameter [{body}]: bound {b!r} is not finite")
                bounds.append(v)
        if bounds[0] > bounds[1]:
            raise fail(f"parameter [{body}]: min {plow} > max {phigh}")
        return Parameter(pname, ptype, int(pcount), bounds[0], bounds[1])

    def _check_references_and_termination(self) -> dict[str, int]:
        """Undefined references and never-terminating symbols; returns each symbol's minimal
        derivation height (1 = an alternative without non-terminals)."""
        for sym, alts in self.productions.items():
            for alt in alts:
                for it in alt:
                    if isinstance(it, NonTerminal) and it.name not in self.productions:
                        raise GrammarError(self.source, self.lines[sym],
                                           f"<{it.name}> (used by <{sym}>) has no production")
        height: dict[str, int] = {}
        changed = True
        while changed:
            changed = False
            for sym, alts in self.productions.items():
                best = height.get(sym)
                for alt in alts:
                    kids = [it.name for it in alt if isinstance(it, NonTerminal)]
                    if all(k in height for k in kids):
                        h = 1 + max((height[k] for k in kids), default=0)
                        if best is None or h < best:
                            best = h
                if best is not None and height.get(sym) != best:
                    height[sym] = best
                    changed = True
        stuck = sorted((self.lines[s], s) for s in self.productions if s not in height)
        if stuck:
            line, sym = stuck[0]
            raise GrammarError(self.source, line,
                               f"<{sym}> can never terminate (every alternative recurses into symbols "
                               f"that never terminate: {', '.join('<' + s + '>' for _, s in stuck)})")
        return height

    # ------------------------------------------------------------------ helpers
    def __repr__(self) -> str:
        return f"Grammar({self.source!r}, {len(self.productions)} productions)"

    def _symbol(self, symbol: str) -> str:
        s = symbol[1:-1] if symbol.startswith("<") and symbol.endswith(">") else symbol
        if s not in self.productions:
            raise GrammarError(self.source, 0, f"unknown non-terminal <{s}>")
        return s

    def has_symbol(self, symbol: str) -> bool:
        """Whether ``symbol`` (``"name"`` or ``"<name>"``) has a production."""
        s = symbol[1:-1] if symbol.startswith("<") and symbol.endswith(">") else symbol
        return s in self.productions

    def _alt_height(self, alt: tuple[Item, ...]) -> int:
        return 1 + max((self._height[it.name] for it in alt if isinstance(it, NonTerminal)), default=0)

    # ------------------------------------------------------------------ derivation (DSGE)
    def initialise(self, symbol: str, rng: random.Random, max_depth: int = 32) -> dict:
        """A random derivation of ``symbol`` (``"features"`` or ``"<features>"``).

        Alternatives are chosen uniformly and parameters drawn uniformly (see
        :meth:`Parameter.draw_one`), depth first, left to right, all from ``rng`` (so the same
        seed gives the same derivation). Below depth ``max_depth`` only the alternatives that
        terminate soonest are allowed, so recursive grammars always terminate.

        Returns:
            the derivation tree (module docstring), JSON-serialisable.

        Raises:
            GrammarError: unknown ``symbol``.
        """
        self._expansions = 0
        return self._derive(self._symbol(symbol), rng, 0, max_depth)

    def _derive(self, sym: str, rng: random.Random, depth: int, max_depth: int) -> dict:
        alts = self.productions[sym]
        choices = list(range(len(alts)))
        # Past max_depth, or once MAX_EXPANSIONS non-terminals were expanded in this derivation (a
        # grammar like <a> ::= <a> <a> <a> | x grows exponentially before its depth limit), only the
        # alternatives that terminate soonest are allowed.
        self._expansions = getattr(self, "_expansions", 0) + 1
        if depth >= max_depth or self._expansions > MAX_EXPANSIONS:
            best = min(self._alt_height(a) for a in alts)
            choices = [i for i in choices if self._alt_height(alts[i]) == best]
        alt = choices[rng.randrange(len(choices))] if len(choices) > 1 else choices[0]
        children: list = []
        for it in alts[alt]:
            if isinstance(it, NonTerminal):
                children.append(self._derive(it.name, rng, depth + 1, max_depth))
            elif isinstance(it, Parameter):
                children.append(it.draw(rng))
        return {"symbol": sym, "alt": alt, "children": children}

    def _check_node(self, sym: str, node: Any) -> tuple[Item, ...]:
        if not isinstance(node, dict) or set(node) != {"symbol", "alt", "children"}:
            raise DerivationError(f"<{sym}>: a derivation node must be a dict with keys symbol, alt, children; "
                                  f"got {node!r}")
        if node["symbol"] != sym:
            raise DerivationError(f"expected a derivation of <{sym}>, got one of <{node['symbol']}>")
        alts = self.productions[sym]
        alt = node["alt"]
        if isinstance(alt, bool) or not isinstance(alt, int) or not 0 <= alt < len(alts):
            raise DerivationError(f"<{sym}>: alternative {alt!r} out of range 0..{len(alts) - 1}")
        items = alts[alt]
        n_kids = sum(not isinstance(it, Terminal) for it in items)
        if not isinstance(node["children"], list) or len(node["children"]) != n_kids:
            raise DerivationError(f"<{sym}> alternative {alt}: expected {n_kids} children, got {node['children']!r}")
        return items

    def decode(self, symbol: str, derivation: dict) -> str:
        """The phenotype fragment of ``derivation``: terminals and ``name:value`` parameters in
        grammar order, joined by single spaces (e.g. ``"layer:pool-max kernel-size:4 stride:2
        padding:valid"``).

        Raises:
            GrammarError: unknown ``symbol``.
            DerivationError: ``derivation`` does not fit the grammar (validated throughout).
        """
        out: list[str] = []
        self._decode(self._symbol(symbol), derivation, out)
        return " ".join(out)

    def _decode(self, sym: str, node: Any, out: list[str]) -> None:
        items = self._check_node(sym, node)
        kids = iter(node["children"])
        for it in items:
            if isinstance(it, Terminal):
                out.append(it.text)
            elif isinstance(it, NonTerminal):
                self._decode(it.name, next(kids), out)
            else:
                values = next(kids)
                it.check(values)
                out.append(it.render(values))

    def validate(self, symbol: str, derivation: dict) -> None:
        """Raise :class:`DerivationError` unless ``derivation`` is a derivation of ``symbol``."""
        self.decode(symbol, derivation)

    def _sites(self, sym: str, node: dict, path: tuple, depth: int, out: list) -> None:
        alts = self.productions[sym]
        if len(alts) > 1:
            out.append(("choice", path, sym, depth))
        kid = 0
        for it in alts[node["alt"]]:
            if isinstance(it, Terminal):
                continue
            if isinstance(it, NonTerminal):
                self._sites(it.name, node["children"][kid], path + (kid,), depth + 1, out)
            elif it.low != it.high:
                for v in range(it.count):
                    out.append(("param", path + (kid,), it, v))
            kid += 1

    def mutate_derivation(self, symbol: str, derivation: dict, rng: random.Random, max_depth: int = 32) -> dict:
        """A DSGE mutation of ``derivation``; returns a new tree (the input is not modified).

        The mutable sites are every expanded non-terminal with more than one alternative
        (grammatical site) and every value of every parameter whose bounds differ (parameter
        site). One site is chosen uniformly with ``rng``:

        * grammatical: another alternative is chosen uniformly and the part below it is derived
          afresh (:meth:`initialise`);
        * parameter: the value is redrawn within its bounds: an int uniformly among the other
          values of ``[min, max]`` (so it changes), a float uniformly in ``[min, max)``.

        So a mutation changes the derivation, except where there is no mutable site (the copy
        is returned unchanged) or a float redraw repeats its value (probability ~0).

        Raises:
            GrammarError: unknown ``symbol``. DerivationError: ``derivation`` does not fit.
        """
        self._expansions = 0
        sym = self._symbol(symbol)
        self.validate(sym, derivation)
        tree = copy.deepcopy(derivation)
        sites: list = []
        self._sites(sym, tree, (), 0, sites)
        if not sites:
            return tree
        kind, path, a, b = sites[rng.randrange(len(sites))]
        parent, node = None, tree
        for k in path:
            parent, node = node, node["children"][k]
        if kind == "choice":
            alts = self.productions[a]
            other = [i for i in range(len(alts)) if i != node["alt"]]
            alt = other[rng.randrange(len(other))]
            fresh = {"symbol": a, "alt": alt, "children": []}
            for it in alts[alt]:
                if isinstance(it, NonTerminal):
                    fresh["children"].append(self._derive(it.name, rng, b + 1, max_depth))
                elif isinstance(it, Parameter):
                    fresh["children"].append(it.draw(rng))
            if parent is None:
                return fresh
            parent["children"][path[-1]] = fresh
        else:  # node is the parameter's value list
            old = node[b]
            if a.type == "int":  # uniform over the other values, so the mutation changes something
                v = rng.randint(a.low, a.high - 1)
                node[b] = v + 1 if v >= old else v
            else:
                node[b] = a.draw_one(rng)
        return tree
