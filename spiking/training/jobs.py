"""Train the CNN and the spiking CNN of a run and save them in its folder.

Files written in ``run_dir``: ``cnn.pt`` and one spiking network per input
encoding, ``snn.pt`` (direct current) / ``snn_rate.pt`` / ``snn_latency.pt`` /
``snn_delta.pt`` (best-epoch weights plus everything needed to rebuild the
network), and ``history_<name>.json`` beside each (per-epoch loss and
validation balanced accuracy). Every saved network holds ``input_shape`` (``[L]`` or ``[H, W]``)
and ``layout`` (the fitted spatial layout, ``spiking.data.layout.state``), so evaluation lays out
the features exactly as in training.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch
from sklearn.metrics import balanced_accuracy_score

from spiking.artifacts.checkpoint import input_meta, network_meta, save_network, snn_name
from spiking.data.preprocess.prepare import split_fingerprint
from spiking.models.build import build_cnn, build_spiking_cnn, preset_for, transfer_weights_any
from spiking.models.cnn import CNNArch
from spiking.models.conversion import activation_scales, normalize_weights
from spiking.models.qcfs import calibrate_thresholds, qcfs_layers, qcfs_thresholds
from spiking.specs.names import SNN_MODES
from spiking.training import TrainingError
from spiking.training.loop import History, predict, train
from spiking.training.objectives import CNNObjective, objective_for
from spiking.training.reproducibility import resolve_device

NORMALIZE_ROWS = 1000  # training rows used to measure activation percentiles (and to calibrate QCFS thresholds)
#: Membrane potential at t = 0 of a network converted from a QCFS CNN, in thresholds (the "shift", Bu et al. 2022).
CONVERT_INIT_MEM = 0.5


def _save(run_dir: Path, name: str, model: torch.nn.Module, meta: dict, hist: History) -> None:
    save_network(run_dir / f"{name}.pt", model, meta, train_seconds=hist.train_seconds, best_epoch=hist.best_epoch)
    (run_dir / f"history_{name}.json").write_text(json.dumps(hist.to_dict(), indent=2) + "\n")


def _split_sha(prep) -> str:
    """The split's fingerprint; a train subset (or a search trial's train/val-only data) carries the
    whole split's in ``split_info["split_sha256"]``."""
    return prep.split_info.get("split_sha256") or split_fingerprint(prep)




def snn_settings(scfg, encoding: str = "direct") -> dict:
    """The spiking network's settings of ``SNNConfig`` ``scfg`` for input ``encoding`` (the ``snn``
    argument of :func:`build_network`)."""
    convert = scfg.mode == "convert"
    return {"neuron": scfg.neuron, "beta": scfg.beta, "num_steps": scfg.num_steps, "population": scfg.population,
            "loss": scfg.resolved_loss(), "mode": scfg.mode, "encoding": encoding,
            "delta_threshold": scfg.delta_threshold, "init_mem": CONVERT_INIT_MEM if convert else 0.0,
            "readout": "integrated" if convert else "count"}


def build_network(input_shape, arch: CNNArch, n_classes: int, *, seed: int, snn: dict | None = None,
                  source_cnn: torch.nn.Module | None = None, scales: list[float] | None = None,
                  percentile: float | None = None, inputs: dict | None = None, split_sha256: str | None = None,
                  weights_source: str | None = None, activation: str = "relu", levels: int | None = None):
    """The network to train, its objective and its saved metadata: the one build of every PyTorch
    training (``spiking train``/``run`` and the Ray Tune trials).

    A CNN_PT (``CNN1d``/``CNN2d`` by ``input_shape``) when ``snn`` is None; else its spiking version
    (:func:`snn_settings` keys), initialised with ``torch.manual_seed(seed)``, with the weights of
    ``source_cnn`` transferred and, given ``scales``, the data-based normalisation applied
    (:mod:`spiking.models.conversion`: Diehl 2015, Rueckauer 2017; for ``snn["mode"] = "convert"`` the
    scales are the source CNN's QCFS thresholds, Bu et al. 2022). ``activation``/``levels``: the CNN's
    (``relu`` or ``qcfs``).

    Returns:
        ``(model, objective, meta)``; meta as :func:`spiking.artifacts.checkpoint.network_meta`.
    """
    shape = (input_shape,) if isinstance(input_shape, int) else tuple(input_shape)
    inputs = inputs if inputs is not None else {"L": int(shape[-1]) if len(shape) == 1 else None,
                                                 "input_shape": list(shape), "layout": None}
    torch.manual_seed(seed)
    if snn is None:
        extra = {"activation": activation, "levels": levels} if activation != "relu" else {}
        model = build_cnn(shape, arch, n_classes, **extra)
        return model, CNNObjective(), network_meta("cnn", arch, inputs, n_classes, split_sha256=split_sha256, **extra)
    extra = {"init_mem": snn["init_mem"]} if snn.get("init_mem") else {}
    model = build_spiking_cnn(shape, arch, n_classes * snn["population"], neuron=snn["neuron"], beta=snn["beta"],
                              num_steps=snn["num_steps"], encoding=snn["encoding"],
                              delta_threshold=snn["delta_threshold"] if len(shape) == 1 else None, **extra)
    copied = transfer_weights_any(source_cnn, model) if source_cnn is not None else []
    if scales:
        normalize_weights(model, scales)
    meta = network_meta("snn", arch, inputs, n_classes, snn=snn, transferred=copied, scales=scales,
                        percentile=percentile, split_sha256=split_sha256, weights_source=weights_source)
    return model, objective_for(meta), meta


def train_cnn(prep, cfg, run_dir: str | Path, epoch_callback=None) -> tuple[torch.nn.Module, History]:
    """Train CNN_PT (preset ``cfg.cnn.preset``, dependent sizes from ``cfg.cnn.arch_seed``) on the
    laid-out images ``prep.X`` (1-D ``CNN1d`` or 2-D ``CNN2d`` by the layout); saves ``cnn.pt``. With
    ``cfg.cnn.activation = "qcfs"`` the QCFS thresholds start at the ``cfg.cnn.qcfs_percentile`` of their
    input on the first training rows (:func:`spiking.models.qcfs.calibrate_thresholds`) and are then learnt.

    Args:
        prep: ``spiking.data.preprocess.prepare.Prepared``; cfg: ``spiking.specs.run.RunConfig``.
    """
    run_dir = Path(run_dir)
    C = len(prep.class_names)
    arch = preset_for(cfg.cnn.preset, prep.input_shape, seed=cfg.cnn.arch_seed)
    model, objective, meta = build_network(prep.input_shape, arch, C, seed=cfg.cnn.train.seed,
                                           inputs=input_meta(prep), split_sha256=_split_sha(prep),
                                           activation=cfg.cnn.activation, levels=cfg.cnn.levels)
    if qcfs_layers(model):
        calibrate_thresholds(model, torch.as_tensor(prep.X["train"][:NORMALIZE_ROWS]), cfg.cnn.qcfs_percentile)
    hist = train(model, objective, prep.X["train"], prep.y["train"], prep.X["val"], prep.y["val"],
                 cfg.cnn.train, checkpoint_path=run_dir / "cnn.best.pt", desc="CNN", epoch_callback=epoch_callback)
    _save(run_dir, "cnn", model, meta, hist)
    (run_dir / "cnn.best.pt").unlink(missing_ok=True)
    return model, hist


def train_snn(prep, cfg, run_dir: str | Path, cnn: torch.nn.Module | None = None, epoch_callback=None,
              encoding: str = "direct"):
    """Train the spiking CNN with input ``encoding``: weight transfer from ``cnn`` (mode ``transfer``),
    from scratch, or convert a QCFS-trained ``cnn`` with no training (mode ``convert``: its weights,
    each layer's threshold its QCFS ``lambda``, membranes starting at half the threshold, the output
    layer read as integrated current; Bu et al. ICLR 2022; with ``finetune`` then trained). Saves
    ``<snn_name(encoding)>.pt`` and its history in ``run_dir`` (a conversion's first record is the
    converted network's, epoch -1; without fine-tuning it is the only one, and 0 s of training).

    Raises:
        ValueError: transfer or convert mode without a CNN (convert: without QCFS activations),
            population coding with transfer, unknown encoding.
    """
    run_dir = Path(run_dir)
    s = cfg.snn
    name = snn_name(encoding)
    C = len(prep.class_names)
    if s.mode not in SNN_MODES:
        raise TrainingError(f"SNN mode must be one of {SNN_MODES}, got {s.mode!r}")
    if s.mode in ("transfer", "convert"):
        if cnn is None:
            raise TrainingError(f"SNN mode {s.mode!r} needs a trained CNN (train the CNN first)")
        if s.population != 1:
            raise TrainingError("population coding changes the output layer, so it cannot take the CNN's weights; "
                             "use --snn-mode scratch")
    arch = preset_for(cfg.cnn.preset, prep.input_shape, seed=cfg.cnn.arch_seed)
    if s.mode == "convert":
        return _convert(prep, cfg, run_dir, cnn, encoding)
    transfer = s.mode == "transfer"
    scales = activation_scales(cnn, prep.X["train"][:NORMALIZE_ROWS], s.percentile) if transfer and s.normalize \
        else None
    model, objective, meta = build_network(prep.input_shape, arch, C, seed=s.train.seed,
                                           snn=snn_settings(s, encoding), source_cnn=cnn if transfer else None,
                                           scales=scales, percentile=s.percentile, inputs=input_meta(prep),
                                           split_sha256=_split_sha(prep))
    hist = train(model, objective, prep.X["train"], prep.y["train"], prep.X["val"], prep.y["val"], s.train,
                 checkpoint_path=run_dir / f"{name}.best.pt", desc=f"SNN {encoding}",
                 epoch_callback=epoch_callback)
    _save(run_dir, name, model, meta, hist)
    (run_dir / f"{name}.best.pt").unlink(missing_ok=True)
    return model, hist


def converted_network(cnn: torch.nn.Module, prep, snn: dict, *, seed: int, split_sha256: str | None = None):
    """A QCFS CNN converted into its spiking network with no training: the CNN's weights, normalised by
    its thresholds (``[lambda1, lambda2, lambda3, 1]``: the output layer keeps the CNN's logit scale;
    Bu et al. 2022). ``snn``: :func:`snn_settings` of mode ``convert``. Returns ``(model, objective, meta)``
    as :func:`build_network`.

    Raises:
        ValueError: the CNN has no QCFS activations (it was not trained with ``--cnn-activation qcfs``).
    """
    lams = qcfs_thresholds(cnn)
    if len(lams) != 3:
        raise TrainingError("SNN mode 'convert' needs a CNN trained with QCFS activations (--cnn-activation qcfs); "
                            f"this one has {len(lams)} QCFS layers")
    return build_network(prep.input_shape, cnn.arch, len(prep.class_names), seed=seed, snn=snn, source_cnn=cnn,
                         scales=lams + [1.0], inputs=input_meta(prep), split_sha256=split_sha256)


def _convert(prep, cfg, run_dir: Path, cnn: torch.nn.Module, encoding: str):
    """Mode ``convert`` of :func:`train_snn`: :func:`converted_network`. With ``cfg.snn.finetune``,
    then trained by :func:`spiking.training.loop.train` (surrogate gradients, cross-entropy of the
    integrated current; Rathi et al. 2020); the converted weights are kept when no epoch beats their
    validation balanced accuracy."""
    s = cfg.snn
    name = snn_name(encoding)
    model, objective, meta = converted_network(cnn, prep, snn_settings(s, encoding), seed=s.train.seed,
                                               split_sha256=_split_sha(prep))
    start = time.perf_counter()
    device = resolve_device(s.train.device)
    model.to(device)
    val_bacc = float(balanced_accuracy_score(prep.y["val"], predict(model, objective, prep.X["val"], device=device)))
    converted = {"epoch": -1, "loss": None, "val_balanced_accuracy": val_bacc, "seconds": time.perf_counter() - start}
    if not s.finetune:
        model.cpu()
        hist = History(epochs=[converted], best_epoch=-1, best_val_balanced_accuracy=val_bacc, train_seconds=0.0)
        _save(Path(run_dir), name, model, meta, hist)
        return model, hist
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    hist = train(model, objective, prep.X["train"], prep.y["train"], prep.X["val"], prep.y["val"], s.train,
                 checkpoint_path=Path(run_dir) / f"{name}.best.pt", desc=f"SNN {encoding} (fine-tuning)")
    (Path(run_dir) / f"{name}.best.pt").unlink(missing_ok=True)
    hist.epochs.insert(0, converted)
    if hist.best_val_balanced_accuracy <= val_bacc:  # fine-tuning did not help on validation
        model.load_state_dict(state)
        hist.best_epoch, hist.best_val_balanced_accuracy = -1, val_bacc
    model.cpu()
    _save(Path(run_dir), name, model, meta, hist)
    return model, hist
