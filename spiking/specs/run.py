"""Run configuration: every setting of a main-job run, saved as ``config.json`` in the run folder."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from spiking.specs import SpecError
from spiking.specs.names import MAX_NUM_STEPS  # noqa: F401  (re-exported)
from spiking.specs.train import TrainConfig


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
    smallest square); layout_seed: seed of ``random`` and ``embedding_2d``.
    """

    shards: str = "data/shards/tcga-mirna-rpm"
    top_k: int = 10
    fractions: tuple[float, float, float] = (0.7, 0.1, 0.2)
    seed: int = 42
    log2: bool = True
    zscore: str = "feature"
    layout: str = "identity"
    layout_shape: tuple[int, int] | None = None
    layout_seed: int = 0

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
    """CNN_PT preset (``cnn_pt1|cnn_pt2``) and the seed of its dependent sizes, plus training."""

    preset: str = "cnn_pt2"
    arch_seed: int = 0
    train: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=60, batch_size=64, lr=1e-3, patience=15))


@dataclass
class SNNConfig:
    """Spiking CNN settings (snnTorch).

    mode: ``transfer`` (weights from the trained CNN, cross-entropy count loss) or
    ``scratch`` (random init, MSE count loss); neuron: ``leaky|lapicque|rleaky|synaptic``;
    beta: membrane decay per step; num_steps: time steps per sample;
    population: output neurons per class (scratch mode); loss: ``ce|mse`` (None = by mode);
    normalize: after weight transfer, rescale layers by the CNN's activation percentile
    (``spiking.models.conversion``, Diehl 2015 / Rueckauer 2017); percentile: which one;
    encodings: input encodings, one SNN trained per encoding (``direct|rate|latency|delta``,
    ``spiking.models.encoding``); delta_threshold: input change that makes a delta event.
    """

    mode: str = "transfer"
    neuron: str = "leaky"
    beta: float = 1.0
    num_steps: int = 10
    population: int = 1
    loss: str | None = None
    normalize: bool = True
    percentile: float = 99.9
    encodings: tuple[str, ...] = ("direct", "rate", "latency", "delta")
    delta_threshold: float = 0.1
    train: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=10, batch_size=64, lr=3e-4, patience=5))

    def resolved_loss(self) -> str:
        """``ce`` for weight transfer, ``mse`` from scratch, unless ``loss`` says otherwise."""
        return self.loss or ("ce" if self.mode == "transfer" else "mse")




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
            ValueError: naming the first invalid setting.
        """
        import math

        from spiking.specs.names import NEURONS

        d, s = self.data, self.snn
        if d.top_k < 0:
            raise SpecError(f"--top-k must be >= 0 (0 keeps all classes), got {d.top_k}")
        if d.zscore not in ("feature", "sample", "none"):
            raise SpecError(f"zscore must be feature, sample or none, got {d.zscore!r}")
        from spiking.data.layout.state import layout_options

        layout_options(d.layout, shape=d.layout_shape, seed=d.layout_seed)  # name, seed range, shape, pixel bound
        from spiking.specs.names import MIN_SIDE_2D

        if d.layout_shape is not None and min(d.layout_shape) < MIN_SIDE_2D:
            raise SpecError(f"image shape {d.layout_shape[0]}x{d.layout_shape[1]}: the 2-D CNN needs both sides "
                             f">= {MIN_SIDE_2D}")
        if d.is_2d and set(s.encodings) != {"direct"}:
            raise SpecError(f"the {d.layout} layout makes 2-D images, whose spiking network (SpikingCNN2d) takes "
                             f"only the direct input encoding; got encodings {list(s.encodings)} "
                             "(pass --encodings direct)")
        for name, t in (("CNN", self.cnn.train), ("SNN", s.train)):
            if t.epochs < 1:
                raise SpecError(f"{name} epochs must be >= 1, got {t.epochs}")
            if t.batch_size < 1:
                raise SpecError(f"batch size must be >= 1, got {t.batch_size}")
            if not (math.isfinite(t.lr) and t.lr > 0):
                raise SpecError(f"{name} learning rate must be a positive finite number, got {t.lr}")
            if t.patience < 0:
                raise SpecError(f"patience must be >= 0, got {t.patience}")
        if self.cnn.preset not in ("cnn_pt1", "cnn_pt2"):
            raise SpecError(f"unknown CNN preset {self.cnn.preset!r} (cnn_pt1, cnn_pt2)")
        if s.mode not in ("transfer", "scratch"):
            raise SpecError(f"SNN mode must be transfer or scratch, got {s.mode!r}")
        if s.neuron not in NEURONS:
            raise SpecError(f"unknown neuron {s.neuron!r}; valid: {NEURONS}")
        if not (0.0 <= s.beta <= 1.0):
            raise SpecError(f"beta (membrane decay per step) must be in [0, 1], got {s.beta}")
        if s.neuron == "lapicque" and s.beta >= 1.0:
            raise SpecError("the Lapicque neuron needs beta < 1 (snnTorch derives C = 1/ln(1/beta)); pass --beta 0.9")
        if not 1 <= s.num_steps <= MAX_NUM_STEPS:
            raise SpecError(f"num_steps must be in [1, {MAX_NUM_STEPS}], got {s.num_steps} (the spikes of every step "
                             "are held in memory at once)")
        if s.population < 1:
            raise SpecError(f"population (output neurons per class) must be >= 1, got {s.population}")
        if s.mode == "transfer" and s.population != 1:
            raise SpecError("population coding changes the output layer, so it cannot take the CNN's weights; "
                             "use --snn-mode scratch")
        if s.loss not in (None, "ce", "mse"):
            raise SpecError(f"SNN loss must be ce or mse, got {s.loss!r}")
        from spiking.specs.names import DELTA_THRESHOLD, check_encoding

        if not s.encodings:
            raise SpecError("give at least one SNN input encoding")
        if len(set(s.encodings)) != len(s.encodings):
            raise SpecError(f"SNN encodings repeat: {list(s.encodings)}")
        for enc in s.encodings:
            # the delta threshold only matters (and is only checked) when a delta network is trained
            check_encoding(enc, s.delta_threshold if enc == "delta" else DELTA_THRESHOLD)
        if not 0 < s.percentile <= 100:
            raise SpecError(f"percentile must be in (0, 100], got {s.percentile}")

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
