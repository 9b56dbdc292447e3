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
from pathlib import Path

import torch

from spiking.models.cnn import CNNArch
from spiking.models.build import build_cnn, build_spiking_cnn, preset_for, transfer_weights_any
from spiking.models.conversion import activation_scales, normalize_weights
from spiking.artifacts.checkpoint import input_meta, snn_name
from spiking.data.preprocess.prepare import split_fingerprint
from spiking.training.loop import History, train
from spiking.training.objectives import CNNObjective, SpikeCountObjective

NORMALIZE_ROWS = 1000  # training rows used to measure activation percentiles


def _save(run_dir: Path, name: str, model: torch.nn.Module, meta: dict, hist: History) -> None:
    torch.save({"state_dict": model.state_dict(), **meta, "train_seconds": hist.train_seconds,
                "best_epoch": hist.best_epoch}, run_dir / f"{name}.pt")
    (run_dir / f"history_{name}.json").write_text(json.dumps(hist.to_dict(), indent=2) + "\n")


def _split_sha(prep) -> str:
    """The split's fingerprint; a train subset (or a search trial's train/val-only data) carries the
    whole split's in ``split_info["split_sha256"]``."""
    return prep.split_info.get("split_sha256") or split_fingerprint(prep)




def train_cnn(prep, cfg, run_dir: str | Path, epoch_callback=None) -> tuple[torch.nn.Module, History]:
    """Train CNN_PT (preset ``cfg.cnn.preset``, dependent sizes from ``cfg.cnn.arch_seed``) on the
    laid-out images ``prep.X`` (1-D ``CNN1d`` or 2-D ``CNN2d`` by the layout).

    Args:
        prep: ``spiking.data.preprocess.prepare.Prepared``; cfg: ``spiking.specs.run.RunConfig``.
    """
    run_dir = Path(run_dir)
    C = len(prep.class_names)
    arch = preset_for(cfg.cnn.preset, prep.input_shape, seed=cfg.cnn.arch_seed)
    torch.manual_seed(cfg.cnn.train.seed)
    model = build_cnn(prep.input_shape, arch, C)
    hist = train(model, CNNObjective(), prep.X["train"], prep.y["train"], prep.X["val"], prep.y["val"],
                 cfg.cnn.train, checkpoint_path=run_dir / "cnn.best.pt", desc="CNN", epoch_callback=epoch_callback)
    _save(run_dir, "cnn", model, {"kind": "cnn", "arch": arch.as_dict(), **input_meta(prep), "n_classes": C,
                                  "split_sha256": _split_sha(prep)}, hist)
    (run_dir / "cnn.best.pt").unlink(missing_ok=True)
    return model, hist




def build_snn(shape, arch: CNNArch, n_classes: int, scfg, encoding: str = "direct") -> torch.nn.Module:
    """A ``SpikingCNN1d`` (``shape`` = ``(L,)`` or an int L) or ``SpikingCNN2d`` (``(H, W)``) for
    ``SNNConfig`` ``scfg`` (output = n_classes x population neurons) with input ``encoding``."""
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    return build_spiking_cnn(shape, arch, n_classes * scfg.population, neuron=scfg.neuron, beta=scfg.beta,
                             num_steps=scfg.num_steps, encoding=encoding,
                             delta_threshold=scfg.delta_threshold if len(shape) == 1 else None)


def train_snn(prep, cfg, run_dir: str | Path, cnn: torch.nn.Module | None = None, epoch_callback=None,
              encoding: str = "direct"):
    """Train the spiking CNN with input ``encoding``: weight transfer from ``cnn`` (mode ``transfer``)
    or from scratch. Saves ``<snn_name(encoding)>.pt`` and its history in ``run_dir``.

    Raises:
        ValueError: transfer mode without a CNN, population coding with transfer, unknown encoding.
    """
    run_dir = Path(run_dir)
    s = cfg.snn
    name = snn_name(encoding)
    C = len(prep.class_names)
    if s.mode not in ("transfer", "scratch"):
        raise ValueError(f"SNN mode must be 'transfer' or 'scratch', got {s.mode!r}")
    if s.mode == "transfer":
        if cnn is None:
            raise ValueError("SNN mode 'transfer' needs a trained CNN (train the CNN first)")
        if s.population != 1:
            raise ValueError("population coding changes the output layer, so it cannot take the CNN's weights; "
                             "use --snn-mode scratch")
    arch = preset_for(cfg.cnn.preset, prep.input_shape, seed=cfg.cnn.arch_seed)
    torch.manual_seed(s.train.seed)
    model = build_snn(prep.input_shape, arch, C, s, encoding)
    copied, scales = [], None
    if s.mode == "transfer":
        copied = transfer_weights_any(cnn, model)
        if s.normalize:
            scales = activation_scales(cnn, prep.X["train"][:NORMALIZE_ROWS], s.percentile)
            normalize_weights(model, scales)
    objective = SpikeCountObjective(C, loss=s.resolved_loss(), population=s.population)
    hist = train(model, objective, prep.X["train"], prep.y["train"], prep.X["val"], prep.y["val"], s.train,
                 checkpoint_path=run_dir / f"{name}.best.pt", desc=f"SNN {encoding}",
                 epoch_callback=epoch_callback)
    meta = {"kind": "snn", "arch": arch.as_dict(), **input_meta(prep), "n_classes": C, "population": s.population,
            "neuron": s.neuron, "beta": s.beta, "num_steps": s.num_steps, "loss": s.resolved_loss(),
            "mode": s.mode, "encoding": encoding, "delta_threshold": s.delta_threshold, "transferred": copied,
            "split_sha256": _split_sha(prep),
            "normalization": {"scales": scales, "percentile": s.percentile} if scales else None}
    _save(run_dir, name, model, meta, hist)
    (run_dir / f"{name}.best.pt").unlink(missing_ok=True)
    return model, hist








