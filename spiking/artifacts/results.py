"""``results.json``: its schema (typed blocks), its one writer and its one reader, and the printed table.

:class:`Results` holds ``dataset``, ``split`` and ``models`` (every producer) plus ``search`` (``spiking
tune``, ``spiking tune snn_k``, ``spiking nas``), ``ablation`` (``spiking tune layout_ablation``) and
``run`` (all but old files). Every block keeps the keys it was read or built with, in their order,
unknown ones in ``extra``: ``to_dict`` gives back the same JSON. :func:`write_results` writes it,
:func:`read_results` reads and checks it (an :class:`ArtifactError` naming the file and the key).
Legacy keys still read: ``n_steps`` (NengoDL's name in snn_k folders before the ``num_steps`` rename).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar

from spiking.artifacts import ArtifactError

#: Keys every model entry has when written (a read file may lack ``parameters``/``train_seconds``).
REQUIRED_MODEL_KEYS = ("name", "test", "parameters", "train_seconds")


# --------------------------------------------------------------------------- checking JSON values
def is_num(v: Any) -> bool:
    """A JSON number (int or float, not a boolean)."""
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def describe(v: Any) -> str:
    """``v`` in words for an error message: ``the number 3``, ``a list``, ``null``..."""
    if is_num(v):
        return f"the number {v!r}"
    if isinstance(v, str):
        return f"the string {v[:40]!r}" + ("..." if len(v) > 40 else "")
    return {dict: "an object", list: "a list", bool: f"the boolean {str(v).lower()}",
            type(None): "null"}.get(type(v), type(v).__name__)


class JsonShape:
    """Checks the structure of one JSON file; every failure raises ``error`` (ArtifactError unless
    told) naming the file (``path``) and the field."""

    def __init__(self, path: Any, error: type[Exception] = ArtifactError):
        self.path, self.error = path, error

    def fail(self, where: str, what: str):
        """Raise ``error("<path>: <where> <what>")``."""
        raise self.error(f"{self.path}: {where} {what}" if where else f"{self.path}: {what}")

    def obj(self, v: Any, where: str, optional: bool = True) -> dict:
        """``v`` as a dict (``{}`` for an optional null/absent value)."""
        if v is None and optional:
            return {}
        if not isinstance(v, dict):
            self.fail(where, f"must be a JSON object, not {describe(v)}" if where else
                      f"must hold a JSON object, not {describe(v)}")
        return v

    def arr(self, v: Any, where: str, optional: bool = True) -> list:
        """``v`` as a list (``[]`` for an optional null/absent value)."""
        if v is None and optional:
            return []
        if not isinstance(v, list):
            self.fail(where, f"must be a list, not {describe(v)}")
        return v

    def num(self, d: dict, key: str, where: str, minimum: float | None = None, maximum: float | None = None) -> None:
        """``d[key]`` is absent, null or a number (>= ``minimum``, <= ``maximum``)."""
        v = d.get(key)
        if v is None:
            return
        w = f"{where}.{key}" if where else key
        if not is_num(v):
            self.fail(w, f"must be a number, not {describe(v)}")
        if minimum is not None and not v >= minimum:  # NaN fails too
            self.fail(w, f"must be >= {minimum:g}, not {v!r}")
        if maximum is not None and not v <= maximum:
            self.fail(w, f"must be <= {maximum:g}, not {v!r}")

    def text(self, d: dict, key: str, where: str) -> None:
        """``d[key]`` is absent, null or a string."""
        v = d.get(key)
        if v is not None and not isinstance(v, str):
            self.fail(f"{where}.{key}" if where else key, f"must be a string, not {describe(v)}")


def _check_matrix(c: JsonShape, cm: Any, where: str, n: int) -> None:
    ok = (isinstance(cm, list) and len(cm) == n
          and all(isinstance(r, list) and len(r) == n and all(is_num(v) and v >= 0 for v in r) for r in cm))
    if not ok:
        got = describe(cm) if not isinstance(cm, list) else f"a list of {len(cm)} rows"
        c.fail(where, f"must be a {n} x {n} matrix of counts (a row and a column per class of dataset.classes), "
                      f"not {got}" + (" with other lengths or values" if isinstance(cm, list) and len(cm) == n else ""))


def check_results(doc: Any, source: Any) -> dict:
    """Check a results.json document (the parsed JSON); return it. ``source`` names the file in the messages.

    Raises:
        ArtifactError: ``"<source>: <key> must be ..."`` for the first field of the wrong kind or range.
    """
    c = JsonShape(source)
    if not isinstance(doc, dict) or not isinstance(doc.get("models"), list) or not doc["models"]:
        raise ArtifactError(f"{source} holds no model results (a 'models' list is expected)")
    d = c.obj(doc.get("dataset"), "dataset")
    classes = d.get("classes")
    if not isinstance(classes, list) or not classes:
        raise ArtifactError(f"{source} lacks dataset.classes")
    if not all(isinstance(x, str) or is_num(x) for x in classes):
        c.fail("dataset.classes", "must be a list of class names")
    c.num(d, "n_features", "dataset", minimum=1)
    c.text(d, "shards", "dataset")
    split = c.obj(doc.get("split"), "split")
    c.obj(split.get("sizes"), "split.sizes")
    counts = c.obj(split.get("test_class_counts"), "split.test_class_counts")
    for k in counts:
        c.num(counts, k, "split.test_class_counts", minimum=0)
    search = c.obj(doc.get("search"), "search")
    for k in ("best", "tradeoff"):
        c.obj(search.get(k), f"search.{k}")
    c.obj(doc.get("run"), "run")
    for i, m in enumerate(doc["models"]):
        if not isinstance(m, dict) or "name" not in m or "test" not in m:
            raise ArtifactError(f"{source}: a model entry lacks 'name' or 'test'")
        if not isinstance(m["name"], str) or not m["name"]:
            c.fail(f"models[{i}].name", f"must be a non-empty string, not {describe(m['name'])}")
        w = f"models[{i}] ({m['name']})"
        t = c.obj(m["test"], f"{w}.test", optional=False)
        for k in ("accuracy", "balanced_accuracy", "macro_f1"):
            c.num(t, k, f"{w}.test", minimum=0, maximum=1)  # fractions, not percentages
        if t.get("confusion_matrix") is not None:
            _check_matrix(c, t["confusion_matrix"], f"{w}.test.confusion_matrix", len(classes))
        c.num(m, "parameters", w, minimum=0)
        c.num(m, "train_seconds", w, minimum=0)
        eff = c.obj(m.get("efficiency"), f"{w}.efficiency")
        for k in ("energy_pj", "macs", "synops", "input_spikes", "energy_ratio_vs_cnn"):
            c.num(eff, k, f"{w}.efficiency", minimum=0)
        c.num(eff, "num_steps", f"{w}.efficiency", minimum=1)
        c.text(eff, "encoding", f"{w}.efficiency")
        c.text(eff, "convention", f"{w}.efficiency")
        for j, n in enumerate(c.arr(eff.get("neurons"), f"{w}.efficiency.neurons")):
            wn = f"{w}.efficiency.neurons[{j}]"
            n = c.obj(n, wn, optional=False)
            for k in ("layer", "firing_rate"):
                if n.get(k) is None:
                    c.fail(wn, f"lacks '{k}'")
            c.num(n, "firing_rate", wn, minimum=0)
        c.num(eff, "n_steps", f"{w}.efficiency", minimum=1)
        s = c.obj(m.get("snn"), f"{w}.snn")
        c.num(s, "num_steps", f"{w}.snn", minimum=1)
        c.num(s, "n_steps", f"{w}.snn", minimum=1)
        c.num(s, "scale_firing_rates", f"{w}.snn", minimum=0)
        c.num(s, "synapse", f"{w}.snn", minimum=0)
        c.text(s, "framework", f"{w}.snn")
        c.text(s, "neuron", f"{w}.snn")
        hz = c.obj(m.get("firing_rates_hz"), f"{w}.firing_rates_hz")
        for k in hz:
            c.num(hz, k, f"{w}.firing_rates_hz", minimum=0)
        c.num(m, "mean_firing_rate_hz", w, minimum=0)
        for j, n in enumerate(c.arr(m.get("conversion_notes"), f"{w}.conversion_notes")):
            if not isinstance(n, str):
                c.fail(f"{w}.conversion_notes[{j}]", f"must be a string, not {describe(n)}")
        c.num(s, "population", f"{w}.snn", minimum=1)
        c.num(s, "delta_threshold", f"{w}.snn", minimum=0)
        c.text(s, "encoding", f"{w}.snn")
        b = c.obj(m.get("baseline"), f"{w}.baseline")
        c.text(b, "method", f"{w}.baseline")
        c.obj(b.get("chosen"), f"{w}.baseline.chosen")
        c.obj(b.get("grid"), f"{w}.baseline.grid")
        scores = c.obj(b.get("val_balanced_accuracy"), f"{w}.baseline.val_balanced_accuracy")
        for k in scores:
            c.num(scores, k, f"{w}.baseline.val_balanced_accuracy", minimum=0)
        spikes = c.obj(m.get("mean_spikes_per_sample"), f"{w}.mean_spikes_per_sample")
        for k in spikes:
            c.num(spikes, k, f"{w}.mean_spikes_per_sample", minimum=0)
    return doc


# --------------------------------------------------------------------------- the typed schema
def _plain(v: Any) -> Any:
    """``v`` as fresh JSON values (blocks through ``to_dict``)."""
    if isinstance(v, Block):
        return v.to_dict()
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    return v


@dataclass(kw_only=True)
class Block:
    """One JSON object of results.json. ``extra``: its keys the schema does not name (kept, in order);
    ``key_order``: the keys it was read with (None for a block built in code: then its fields in
    declaration order, those that are None left out unless in ``ALWAYS``, then ``extra``)."""

    extra: dict[str, Any] = field(default_factory=dict)
    key_order: tuple[str, ...] | None = field(default=None, repr=False, compare=False)
    #: Fields written even when None (a block built in code).
    ALWAYS: ClassVar[tuple[str, ...]] = ()
    #: Fields holding nested blocks: name -> (block class, a list of them?).
    NESTED: ClassVar[dict[str, tuple[type, bool]]] = {}

    @classmethod
    def names(cls) -> list[str]:
        """The schema's keys of this block, in declaration order."""
        return [f.name for f in fields(cls) if f.name not in ("extra", "key_order")]

    @classmethod
    def from_dict(cls, d: dict):
        """The block of JSON object ``d`` (its nested blocks typed too; values not checked: see
        :func:`check_results`). Raises ArtifactError when ``d`` is not an object."""
        if not isinstance(d, dict):
            raise ArtifactError(f"a results.json {cls.__name__} block must be a JSON object, not {describe(d)}")
        names = cls.names()
        kw = {}
        for k in names:
            if k not in d:
                continue
            v = d[k]
            sub = cls.NESTED.get(k)
            if sub is not None and v is not None:
                v = [sub[0].from_dict(x) for x in v] if sub[1] else sub[0].from_dict(v)
            kw[k] = v
        return cls(**kw, extra={k: v for k, v in d.items() if k not in names}, key_order=tuple(d))

    def to_dict(self) -> dict:
        """The JSON object: the keys read (or built), in their order, then any set since."""
        names = self.names()
        if self.key_order is not None:
            order = list(self.key_order)
        else:
            order = [k for k in names if k in self.ALWAYS or getattr(self, k) is not None] + list(self.extra)
        out: dict[str, Any] = {}
        for k in order:
            if k in names:
                out[k] = _plain(getattr(self, k))
            elif k in self.extra:
                out[k] = _plain(self.extra[k])
        for k in names:
            if k not in out and getattr(self, k) is not None:
                out[k] = _plain(getattr(self, k))
        for k, v in self.extra.items():
            if k not in out:
                out[k] = _plain(v)
        return out


@dataclass(kw_only=True)
class DatasetInfo(Block):
    """``dataset``: the source files (with sha256, from the shards' manifest), the shards as named,
    the units, the samples over all parts, the features and the class names (cohort codes)."""

    source: Any = None
    shards: str | None = None
    units: Any = None
    n_samples: int | None = None
    n_features: int | None = None
    classes: list[str] = field(default_factory=list)
    ALWAYS: ClassVar[tuple[str, ...]] = ("source", "shards", "units", "n_samples", "n_features", "classes")


@dataclass(kw_only=True)
class SplitInfo(Block):
    """``split``: rows per part (``sizes``: ``{"train", "val", "test"}``), seed, fractions, the group
    column (or None), the method, and the test rows per class (``test_class_counts``); other keys of
    ``Prepared.split_info`` (``split_sha256`` of a train subset) in ``extra``."""

    sizes: dict[str, int] | None = None
    seed: int | None = None
    fractions: list[float] | None = None
    grouped_by: str | None = None
    method: str | None = None
    test_class_counts: dict[str, int] | None = None


@dataclass(kw_only=True)
class TestMetrics(Block):
    """``test`` of a model entry (:func:`spiking.evaluation.metrics.classification_metrics`): fractions
    in [0, 1], recall per class, and the confusion matrix (rows true, columns predicted, counts)."""

    __test__ = False  # not a pytest test class
    accuracy: float | None = None
    balanced_accuracy: float | None = None
    macro_f1: float | None = None
    per_class_recall: dict[str, float] | None = None
    confusion_matrix: list[list[int]] | None = None


@dataclass(kw_only=True)
class Efficiency(Block):
    """``efficiency`` of a model entry: operations and energy per inference (mean per sample).

    PyTorch networks (:func:`spiking.models.operations.count_operations`): every key but the NengoDL
    ones; Keras CNN_K: ``macs, synops, energy_pj, convention``; NengoDL conversions: ``macs, synops,
    energy_pj, mac_layers, synops_per_layer, spikes_per_inference, num_steps, encoding,
    energy_ratio_vs_cnn, convention``. ``n_steps``: the old name of ``num_steps`` (snn_k folders)."""

    convention: str | None = None
    encoding: str | None = None
    num_steps: int | None = None
    n_steps: int | None = None
    layers: list[dict] | None = None
    neurons: list[dict] | None = None
    input_spikes: float | None = None
    macs: float | None = None
    synops: float | None = None
    dense_ops: float | None = None
    energy_pj: float | None = None
    energy_ratio_vs_cnn: float | None = None
    mac_layers: list[str] | None = None
    synops_per_layer: dict[str, float] | None = None
    spikes_per_inference: dict[str, float] | None = None


@dataclass(kw_only=True)
class SNNInfo(Block):
    """``snn`` of a spiking model entry. snnTorch: ``neuron, beta, num_steps, population, loss, mode,
    encoding`` (+ ``delta_threshold`` for delta input); NengoDL (``framework: "nengo-dl"``): the
    conversion setting (``neuron, synapse, num_steps, scale_firing_rates``); ``n_steps``: old name."""

    framework: str | None = None
    neuron: str | None = None
    beta: float | None = None
    num_steps: int | None = None
    n_steps: int | None = None
    population: int | None = None
    loss: str | None = None
    mode: str | None = None
    encoding: str | None = None
    delta_threshold: float | None = None
    scale_firing_rates: float | None = None
    synapse: float | None = None


@dataclass(kw_only=True)
class ModelResult(Block):
    """One entry of ``models``: a network or the baseline scored once on the test split.

    Every entry: ``name, test, parameters, train_seconds`` (None: unknown, a CNN_K without its
    search's results), mostly ``inference_ms_per_sample``. PyTorch networks (evaluate_network):
    ``best_epoch, architecture`` (dict), ``layout`` (``{"name", "input_shape"}``), ``efficiency``, and
    for an SNN ``snn, mean_spikes_per_sample`` (LIF layer -> spikes), maybe ``warnings``. Keras CNN_K:
    ``source`` (snn_k) or ``best_epoch, architecture`` (phenotype text; nas). NengoDL conversions:
    ``snn, firing_rates_hz, mean_firing_rate_hz, conversion_notes``. Searches add ``search`` (the
    trial or individual), the layout ablation ``ablation`` (``layout, seed, role, file``). Classic
    baselines (:mod:`spiking.evaluation.baseline`): ``baseline`` (``method, tuned_on, grid, chosen,
    val_balanced_accuracy``)."""

    name: str
    test: TestMetrics
    parameters: int | None = None
    train_seconds: float | None = None
    inference_ms_per_sample: float | None = None
    best_epoch: int | None = None
    architecture: Any = None
    layout: dict | None = None
    source: Any = None
    snn: SNNInfo | None = None
    mean_spikes_per_sample: dict[str, float] | None = None
    firing_rates_hz: dict[str, float] | None = None
    mean_firing_rate_hz: float | None = None
    efficiency: Efficiency | None = None
    conversion_notes: list[str] | None = None
    warnings: list[str] | None = None
    search: dict | None = None
    ablation: dict | None = None
    baseline: dict | None = None
    ALWAYS: ClassVar[tuple[str, ...]] = ("name", "test", "parameters", "train_seconds")
    NESTED: ClassVar[dict[str, tuple[type, bool]]] = {"test": (TestMetrics, False), "snn": (SNNInfo, False),
                                                      "efficiency": (Efficiency, False)}


@dataclass(kw_only=True)
class RunInfo(Block):
    """``run``: the run's (or experiment's) name and its settings (``config.json`` of a run; for a
    search ``{"experiment"|"nas", "budget", "seed"}``); ``environment``: what a same-seed rerun must
    match to give the same figures (:func:`spiking.training.reproducibility.environment`)."""

    name: str | None = None
    config: dict | None = None
    environment: dict | None = None


@dataclass(kw_only=True)
class Results(Block):
    """The whole results.json. ``search``: ``spiking tune`` (the experiment's metadata, ``n_trials,
    n_errors, n_stopped_early, best, tradeoff``: the exported configs), ``spiking nas`` (``kind, method,
    budget, settings, n_individuals, n_failed, best, front, path, split_sha256``); ``ablation``: the
    layout ablation's summary (``experiment, budget, layouts, seeds, rows, sd, train_rows, n_trials,
    n_errors, networks``)."""

    dataset: DatasetInfo
    split: SplitInfo | None = None
    models: list[ModelResult] = field(default_factory=list)
    search: dict | None = None
    ablation: dict | None = None
    run: RunInfo | None = None
    ALWAYS: ClassVar[tuple[str, ...]] = ("dataset", "split", "models")
    NESTED: ClassVar[dict[str, tuple[type, bool]]] = {"dataset": (DatasetInfo, False), "split": (SplitInfo, False),
                                                      "models": (ModelResult, True), "run": (RunInfo, False)}

    @classmethod
    def build(cls, dataset: dict, split: dict, models: list[dict], *, search: dict | None = None,
              ablation: dict | None = None, run: dict | None = None) -> Results:
        """The typed results of a producer's plain blocks (``run``: ``{"name", "config"}``), each model
        entry's keys kept in their order. Values are checked when written (:func:`write_results`)."""
        return cls(dataset=DatasetInfo.from_dict(dataset), split=SplitInfo.from_dict(split),
                   models=[ModelResult.from_dict(m) for m in models], search=search, ablation=ablation,
                   run=None if run is None else RunInfo.from_dict(run))

    @classmethod
    def parse(cls, doc: Any, source: Any = "results") -> Results:
        """:func:`check_results`, then the typed document. Raises ArtifactError naming ``source``."""
        return cls.from_dict(check_results(doc, source))


# --------------------------------------------------------------------------- the writer and the reader
def write_results(results: Results | dict, path: str | Path) -> Path:
    """Check ``results`` (:func:`check_results`; every model entry with ``REQUIRED_MODEL_KEYS``) and
    write it to the local ``path`` as indented JSON, atomically; the one writer of results.json.

    Raises:
        ArtifactError: a required key is missing, or a value of the wrong kind or range.
    """
    doc = results.to_dict() if isinstance(results, Block) else results
    for key in ("dataset", "split", "models"):
        if not isinstance(doc, dict) or key not in doc:
            raise ArtifactError(f"results lack {key!r}")
    for m in doc["models"]:
        missing = [k for k in REQUIRED_MODEL_KEYS if not isinstance(m, dict) or k not in m]
        if missing:
            raise ArtifactError(f"model entry {m.get('name') if isinstance(m, dict) else m!r} lacks {missing}")
    path = Path(path)
    check_results(doc, path)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(doc, indent=2, sort_keys=False) + "\n")
    os.replace(tmp, path)
    return path


def read_results(path: str | Path, fs=None) -> Results:
    """The checked results.json at ``path`` (local, or on the pyarrow filesystem ``fs``).

    Raises:
        ArtifactError: not valid JSON, or a field of the wrong kind (the message names the file and key).
        OSError: the file cannot be read.
    """
    if fs is not None:
        from spiking.artifacts import storage as st

        source = st.to_uri(fs, str(path))
    else:
        source = path
    try:
        text = st.read_text(fs, str(path)) if fs is not None else Path(path).read_text()
        doc = json.loads(text)
    except ValueError as e:  # JSONDecodeError, and UnicodeDecodeError for a binary file
        raise ArtifactError(f"{source} is not valid JSON (results): {e}") from None
    return Results.parse(doc, source)


def dataset_block(manifest: dict, prep, shards: str) -> dict:
    """The ``dataset`` block of results.json: source files (with sha256), shards, units, sizes, classes.

    Args:
        manifest: the shards' ``manifest.json`` (``Dataset.manifest``); prep: the run's ``Prepared`` data.
    """
    return {"source": manifest.get("sources"), "shards": str(shards), "units": manifest.get("units"),
            "n_samples": int(sum(len(v) for v in prep.ids.values())), "n_features": prep.n_features,
            "classes": prep.class_names}


def _count(n: float) -> str:
    """3 significant figures with k/M/G: 3,892 -> '3.89k'."""
    for div, unit in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= div:
            return f"{n / div:.3g}{unit}"
    return f"{n:.3g}"


def _ops_text(eff: dict | None) -> str:
    if not eff:
        return "-"
    if eff.get("encoding") is None:
        return f"{_count(eff['macs'])} MAC"
    text = f"{_count(eff['synops'])} SynOp"
    return text + (f"+{_count(eff['macs'])} MAC" if eff["macs"] else "")


def _energy_text(eff: dict | None) -> str:
    return f"{eff['energy_pj'] / 1e6:.3f}" if eff else "-"


def format_table(models: list[dict]) -> str:
    """A plain-text table: one row per model with test accuracy, balanced accuracy, macro-F1
    (percent), parameters, training seconds, inference ms/sample, operations per inference
    (MACs for a CNN; synaptic operations plus first-layer MACs for an SNN), energy per inference
    (microjoules) and the SNN/CNN energy ratio; the energy convention is printed below."""
    head = (f"{'model':<15} {'accuracy':>9} {'bal.acc':>9} {'macro-F1':>9} {'params':>10} {'train s':>9} "
            f"{'ms/sample':>10} {'ops/inference':>24} {'energy uJ':>10} {'x CNN':>6}")
    lines = [head, "-" * len(head)]
    convention = None
    for m in models:
        t = m["test"]
        ms = m.get("inference_ms_per_sample")
        eff = m.get("efficiency")
        if eff:
            convention = eff.get("convention")
        ratio = eff.get("energy_ratio_vs_cnn") if eff else None
        ts = m["train_seconds"]
        lines.append(
            f"{m['name']:<15} {100 * t['accuracy']:>8.2f}% {100 * t['balanced_accuracy']:>8.2f}% "
            f"{100 * t['macro_f1']:>8.2f}% {m['parameters']:>10,} {(f'{ts:.1f}' if ts is not None else '-'):>9} "
            f"{(f'{ms:.3f}' if ms is not None else '-'):>10} {_ops_text(eff):>24} "
            f"{_energy_text(eff):>10} "
            f"{(f'{ratio:.2f}' if ratio is not None else '-'):>6}"
        )
    if convention:
        lines.append(f"energy: {convention}")
    return "\n".join(lines)
