"""Run configuration: every setting of a main-job run, saved as ``config.json`` in the run folder.

The same dataclasses hold the settings of the TOML experiments and the layout ablation
(:func:`from_table`), so each default and each check is written once (in ``check``).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from spiking.specs import SpecError
from spiking.specs.names import (  # noqa: F401  (MAX_NUM_STEPS re-exported)
    BETA,
    CNN_ACTIVATIONS,
    DEFAULT_SHARDS,
    DELTA_THRESHOLD,
    ENCODINGS,
    MAX_FOLDS,
    MAX_LEVELS,
    MAX_NUM_STEPS,
    MAX_SEED,
    MIN_FOLDS,
    MIN_LEVELS,
    MIN_SIDE_2D,
    NEURONS,
    NUM_STEPS,
    PRESET_NAMES,
    QCFS_LEVELS,
    QCFS_PERCENTILE,
    SNN_LOSSES,
    SNN_MODES,
    ZSCORE_MODES,
    check_beta,
    check_encoding,
    check_num_steps,
    is_int,
    is_real,
)
from spiking.specs.train import TrainConfig

#: Fields held as tuples in the specs and as lists in JSON/TOML.
_TUPLE_FIELDS = ("fractions", "encodings", "layout_shape")


def from_table(spec, table: Any, where: str, *, keys: Iterable[str] | None = None,
               train_keys: Iterable[str] = ()):
    """A copy of ``spec`` (a spec instance: its values are the defaults) with the values of a
    TOML/JSON table; lists become tuples. ``keys``: the spec fields the table may set (default: all
    but ``train``); ``train_keys``: fields of ``spec.train`` the table holds flat (the ablation's
    ``[cnn] lr``). Values are not checked here: call the result's ``check``.

    Raises:
        SpecError: the table is not a table, or has a key outside ``keys`` and ``train_keys``
            (``where`` names it, e.g. ``"[data] "``).
    """
    keys = [f.name for f in fields(spec) if f.name != "train"] if keys is None else list(keys)
    train_keys = list(train_keys)
    if not isinstance(table, Mapping):
        raise SpecError(f"{where.strip()} must be a table, got {table!r}")
    unknown = set(table) - set(keys) - set(train_keys)
    if unknown:
        raise SpecError(f"{where}unknown keys {sorted(unknown)}; allowed: {sorted(set(keys) | set(train_keys))}")
    own = {k: (tuple(v) if k in _TUPLE_FIELDS and isinstance(v, list) else v) for k, v in table.items() if k in keys}
    out = replace(spec, **own)
    flat = {k: table[k] for k in train_keys if k in table}
    if flat:
        out = replace(out, train=replace(spec.train, **flat))
    return out


def to_table(spec, keys: Iterable[str], train_keys: Iterable[str] = ()) -> dict:
    """The inverse of :func:`from_table`: ``{key: value}`` in ``keys`` order (tuples as lists)."""
    out = {k: (list(v) if isinstance(v, tuple) else v) for k, v in ((k, getattr(spec, k)) for k in keys)}
    out.update({k: getattr(spec.train, k) for k in train_keys})
    return out


def _run_checks(spec, checks: dict[str, tuple[Callable[[Any], bool], str]], where: str,
                only: Iterable[str] | None) -> None:
    for name in (checks if only is None else only):
        if name not in checks:
            continue
        ok, rule = checks[name]
        v = getattr(spec, name)
        if not ok(v):
            raise SpecError(f"{where}{name} {rule}, got {v!r}")


def _layout_shape_ok(v) -> bool:
    return v is None or (isinstance(v, (tuple, list)) and len(v) == 2 and all(is_int(x, 1) for x in v))


def _fractions_ok(v) -> bool:
    return (isinstance(v, (tuple, list)) and len(v) == 3 and all(is_real(x) and 0 < x < 1 for x in v)
            and abs(sum(v) - 1) <= 1e-6)


@dataclass
class DataConfig:
    """Which shards, which classes, how to split and scale.

    shards: folder (or URI) of the Parquet shards written by ``spiking ingest``;
    top_k: keep the k most frequent classes (0 = all); fractions: train/val/test;
    seed: split seed; log2: apply log2(x+1); zscore: ``feature|sample|none``;
    layout: spatial layout of the scaled profile (``spiking.data.layout``: ``identity`` (file order,
    1-D, the study's), ``square`` (file order padded to a square image, the study's 2-D option),
    ``random`` (a fixed permutation, the control), ``correlation_1d``, ``embedding_2d``), fitted
    on the training part only; layout_shape: ``(H, W)`` image of ``embedding_2d`` (None = the
    smallest square); layout_seed: seed of ``random`` and ``embedding_2d``; cv: folds of a stratified,
    grouped cross-validation (0 = one held-out split by ``fractions``; >= 2: the test part is fold
    ``fold`` and ``fractions`` only sets the validation share of the other folds).
    """

    shards: str = DEFAULT_SHARDS
    top_k: int = 10
    fractions: tuple[float, float, float] = (0.7, 0.1, 0.2)
    seed: int = 42
    log2: bool = True
    zscore: str = "feature"
    layout: str = "identity"
    layout_shape: tuple[int, int] | None = None
    layout_seed: int = 0
    cv: int = 0
    fold: int = 0

    #: Fields of an experiment file's ``[data]`` table (the shards are given at run time).
    TABLE_KEYS = ("top_k", "fractions", "seed", "log2", "zscore", "layout", "layout_shape", "layout_seed")
    CHECKS = {
        "top_k": (lambda v: is_int(v, 0), "must be an integer >= 0 (0 keeps all classes)"),
        "fractions": (_fractions_ok, "must be three numbers in (0, 1) summing to 1 (train, val, test)"),
        "seed": (lambda v: is_int(v, 0, MAX_SEED), f"must be an integer in [0, {MAX_SEED}]"),
        "log2": (lambda v: isinstance(v, bool), "must be true or false"),
        "zscore": (lambda v: v in ZSCORE_MODES, f"must be one of {', '.join(ZSCORE_MODES)}"),
        "layout_shape": (_layout_shape_ok, "must be [H, W] with positive integers"),
        "layout_seed": (lambda v: is_int(v, 0, MAX_SEED), f"must be an integer in [0, {MAX_SEED}]"),
        "cv": (lambda v: v == 0 or is_int(v, MIN_FOLDS, MAX_FOLDS),
               f"(cross-validation folds) must be 0 (a held-out split) or an integer in [{MIN_FOLDS}, {MAX_FOLDS}]"),
        "fold": (lambda v: is_int(v, 0, MAX_FOLDS - 1), "must be an integer >= 0, below the number of folds"),
    }

    def check(self, where: str = "", *, check_layout: bool = True) -> None:
        """Raise SpecError naming the first invalid setting (prefixed by ``where``); with
        ``check_layout`` the layout name with its shape and seed (:func:`spiking.data.layout.state.layout_options`)
        and the 2-D CNN's smallest image side (:data:`MIN_SIDE_2D`)."""
        _run_checks(self, self.CHECKS, where, None)
        if self.fold and self.fold >= max(self.cv, 1):
            raise SpecError(f"{where}fold {self.fold} does not exist: " + (f"{self.cv}-fold cross-validation has folds "
                            f"0 to {self.cv - 1}" if self.cv else "fold needs cv >= 2"))
        if not check_layout:
            return
        from spiking.data.layout.state import layout_options

        try:
            layout_options(self.layout, shape=self.layout_shape, seed=self.layout_seed)
        except ValueError as e:
            raise SpecError(f"{where}{e}") from None
        if self.layout_shape is not None and min(self.layout_shape) < MIN_SIDE_2D:
            raise SpecError(f"{where}image shape {self.layout_shape[0]}x{self.layout_shape[1]}: the 2-D CNN needs "
                            f"both sides >= {MIN_SIDE_2D}")

    def split_kwargs(self) -> dict:
        """Keywords of :func:`spiking.data.preprocess.prepare.prepare` for the split (held-out or fold)."""
        return {"fractions": tuple(self.fractions), "seed": int(self.seed), "cv": int(self.cv), "fold": int(self.fold)}

    def layout_kwargs(self) -> dict:
        """Keywords of :func:`spiking.data.preprocess.prepare.prepare` for the layout."""
        return {"layout": self.layout, "layout_shape": self.layout_shape, "layout_seed": self.layout_seed}

    @property
    def is_2d(self) -> bool:
        """True when the layout makes 2-D images (the networks are then CNN2d / SpikingCNN2d)."""
        from spiking.data.layout.state import LAYOUTS_2D

        return self.layout in LAYOUTS_2D


@dataclass
class CNNConfig:
    """CNN_PT preset (``cnn_pt1|cnn_pt2``) and the seed of its dependent sizes, plus training.

    activation: ``relu`` (the study's) or ``qcfs`` (quantisation-clip-floor-shift, Bu et al. ICLR 2022,
    ``spiking.models.qcfs``: the CNN that ``--snn-mode convert`` turns into a spiking network with no
    training); levels: the QCFS quantisation levels (the converted network's natural num_steps);
    qcfs_percentile: each QCFS threshold starts at this percentile of its layer's positive input on
    the first training rows (``spiking.models.qcfs.calibrate_thresholds``), then is learnt.
    """

    preset: str = "cnn_pt2"
    arch_seed: int = 0
    activation: str = "relu"
    levels: int = QCFS_LEVELS
    qcfs_percentile: float = QCFS_PERCENTILE
    train: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=60, batch_size=64, lr=1e-3, patience=15))

    CHECKS = {
        "preset": (lambda v: v in PRESET_NAMES, f"must be one of {', '.join(PRESET_NAMES)} (unknown CNN preset)"),
        "arch_seed": (lambda v: is_int(v, 0, MAX_SEED), f"must be an integer in [0, {MAX_SEED}]"),
        "activation": (lambda v: v in CNN_ACTIVATIONS, f"must be one of {', '.join(CNN_ACTIVATIONS)}"),
        "levels": (lambda v: is_int(v, MIN_LEVELS, MAX_LEVELS),
                   f"(QCFS quantisation levels) must be an integer in [{MIN_LEVELS}, {MAX_LEVELS}]"),
        "qcfs_percentile": (lambda v: is_real(v) and 0 < v <= 100, "must be a number in (0, 100]"),
    }

    def check(self, where: str = "", *, train_where: str | None = None) -> None:
        """Raise SpecError naming the first invalid setting (its training settings included)."""
        _run_checks(self, self.CHECKS, where, None)
        self.train.check(where if train_where is None else train_where)


@dataclass
class SNNConfig:
    """Spiking CNN settings (snnTorch).

    mode: ``transfer`` (weights from the trained CNN, cross-entropy count loss), ``scratch``
    (random init, MSE count loss) or ``convert`` (a QCFS CNN's weights and thresholds into
    integrate-and-fire neurons, no training: Bu et al. ICLR 2022, ``spiking.models.qcfs``); neuron: ``leaky|lapicque|rleaky|synaptic``;
    beta: membrane decay per step; num_steps: time steps per sample;
    population: output neurons per class (scratch mode); loss: ``ce|mse`` (None = by mode);
    normalize: after weight transfer, rescale layers by the CNN's activation percentile
    (``spiking.models.conversion``, Diehl 2015 / Rueckauer 2017); percentile: which one;
    encodings: input encodings, one SNN trained per encoding (``direct|rate|latency|delta``,
    ``spiking.models.encoding``); delta_threshold: input change that makes a delta event;
    finetune: after a conversion (mode ``convert``), train the converted network with surrogate
    gradients for ``train.epochs`` (hybrid conversion, Rathi et al. ICLR 2020), keeping the converted
    weights when no epoch beats them on validation.
    """

    mode: str = "transfer"
    neuron: str = "leaky"
    beta: float = BETA
    num_steps: int = NUM_STEPS
    population: int = 1
    loss: str | None = None
    normalize: bool = True
    percentile: float = 99.9
    encodings: tuple[str, ...] = ENCODINGS
    delta_threshold: float = DELTA_THRESHOLD
    finetune: bool = False
    train: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=10, batch_size=64, lr=3e-4, patience=5))

    CHECKS = {
        "mode": (lambda v: v in SNN_MODES, f"must be one of {', '.join(SNN_MODES)}"),
        "neuron": (lambda v: v in NEURONS, f"must be one of {', '.join(NEURONS)} (unknown neuron)"),
        "population": (lambda v: is_int(v, 1), "(output neurons per class) must be an integer >= 1"),
        "loss": (lambda v: v is None or v in SNN_LOSSES, "must be ce or mse"),
        "normalize": (lambda v: isinstance(v, bool), "must be true or false"),
        "finetune": (lambda v: isinstance(v, bool), "must be true or false"),
        "percentile": (lambda v: is_real(v) and 0 < v <= 100, "must be a number in (0, 100]"),
    }

    def check(self, where: str = "", *, only: Iterable[str] | None = None, train_where: str | None = None) -> None:
        """Raise SpecError naming the first invalid setting (prefixed by ``where``). ``only``: check
        just these fields (an experiment file sets some, its trials the others); else all of them,
        the training settings and the rules between them (population coding only from scratch,
        at least one distinct encoding, the delta threshold of a delta encoding)."""
        names = [f.name for f in fields(self)] if only is None else list(only)
        _run_checks(self, self.CHECKS, where, names)
        if "neuron" in names or "beta" in names:
            check_beta(self.beta, self.neuron, what=f"{where}beta")
        if "num_steps" in names:
            check_num_steps(self.num_steps, what=f"{where}num_steps")
        if only is not None:
            return
        if self.mode in ("transfer", "convert") and self.population != 1:
            raise SpecError("population coding changes the output layer, so it cannot take the CNN's weights; "
                            "use --snn-mode scratch")
        if self.mode == "convert" and (self.neuron != "leaky" or self.beta != 1.0):
            raise SpecError(f"{where}mode convert makes integrate-and-fire neurons (QCFS conversion, Bu et al. 2022): "
                            f"it needs neuron leaky with beta 1.0, got neuron {self.neuron} with beta {self.beta}")
        if self.finetune and self.mode != "convert":
            raise SpecError(f"{where}finetune is for mode convert (modes transfer and scratch always train)")
        if not self.encodings:
            raise SpecError("give at least one SNN input encoding")
        if len(set(self.encodings)) != len(self.encodings):
            raise SpecError(f"SNN encodings repeat: {list(self.encodings)}")
        for enc in self.encodings:
            # every spiking CNN checks its delta threshold (the models' check_encoding), whichever its encoding
            check_encoding(enc, self.delta_threshold)
        self.train.check(where if train_where is None else train_where)

    def resolved_loss(self) -> str:
        """``ce`` for weight transfer (and conversion, which trains nothing), ``mse`` from scratch,
        unless ``loss`` says otherwise."""
        return self.loss or ("mse" if self.mode == "scratch" else "ce")




@dataclass
class RunConfig:
    """All settings of one run: ``config.json`` holds those of the run's last training command
    (each network's own settings are saved in its .pt file and listed per model in results.json)."""

    data: DataConfig = field(default_factory=DataConfig)
    cnn: CNNConfig = field(default_factory=CNNConfig)
    snn: SNNConfig = field(default_factory=SNNConfig)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["snn"]["loss"] = self.snn.resolved_loss()
        return d

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    def validate(self) -> None:
        """Check every setting before any work starts.

        Raises:
            SpecError: naming the first invalid setting.
        """
        d, s = self.data, self.snn
        d.check()
        if d.is_2d and set(s.encodings) != {"direct"}:
            raise SpecError(f"the {d.layout} layout makes 2-D images, whose spiking network (SpikingCNN2d) takes "
                            f"only the direct input encoding; got encodings {list(s.encodings)} "
                            "(pass --encodings direct)")
        self.cnn.check("CNN ")
        s.check("SNN ")
        if d.is_2d and self.cnn.activation == "qcfs":
            raise SpecError(f"the {d.layout} layout makes 2-D images; the QCFS activation is built for the 1-D CNN "
                            "only (use a 1-D layout or --cnn-activation relu)")
        if s.mode == "convert" and self.cnn.activation != "qcfs":
            raise SpecError("--snn-mode convert turns a QCFS-trained CNN into a spiking network; "
                            "train the CNN with --cnn-activation qcfs")

    @classmethod
    def from_dict(cls, d: dict) -> "RunConfig":
        def build(kind, values):
            kw = {}
            for f in fields(kind):
                if f.name not in values:
                    continue
                v = values[f.name]
                if f.name == "train":
                    v = TrainConfig(**v)
                elif f.name in ("fractions", "encodings") or (f.name == "layout_shape" and v is not None):
                    v = tuple(v)
                kw[f.name] = v
            return kind(**kw)

        return cls(data=build(DataConfig, d.get("data", {})), cnn=build(CNNConfig, d.get("cnn", {})),
                   snn=build(SNNConfig, d.get("snn", {})))

    @classmethod
    def load(cls, path: str | Path) -> "RunConfig":
        return cls.from_dict(json.loads(Path(path).read_text()))
