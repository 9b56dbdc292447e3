"""Train the CNN and the spiking CNN of a run and save them in its folder.

Files written in ``run_dir``: ``cnn.pt`` and one spiking network per input
encoding, ``snn.pt`` (direct current) / ``snn_rate.pt`` / ``snn_latency.pt`` /
``snn_delta.pt`` (best-epoch weights plus everything needed to rebuild the
network), and ``history_<name>.json`` beside each (per-epoch loss and
validation balanced accuracy).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from ..models.cnn import CNN1d, CNNArch, preset
from ..models.conversion import activation_scales, normalize_weights
from ..models.encoding import DELTA_THRESHOLD
from ..models.snn import SpikingCNN1d, transfer_weights
from ..preprocess.prepare import split_fingerprint
from .loop import History, train
from .objectives import CNNObjective, SpikeCountObjective

NORMALIZE_ROWS = 1000  # training rows used to measure activation percentiles


def _save(run_dir: Path, name: str, model: torch.nn.Module, meta: dict, hist: History) -> None:
    torch.save({"state_dict": model.state_dict(), **meta, "train_seconds": hist.train_seconds,
                "best_epoch": hist.best_epoch}, run_dir / f"{name}.pt")
    (run_dir / f"history_{name}.json").write_text(json.dumps(hist.to_dict(), indent=2) + "\n")


def train_cnn(prep, cfg, run_dir: str | Path, epoch_callback=None) -> tuple[CNN1d, History]:
    """Train CNN_PT (preset ``cfg.cnn.preset``, dependent sizes from ``cfg.cnn.arch_seed``).

    Args:
        prep: ``spiking.preprocess.prepare.Prepared``; cfg: ``spiking.config.RunConfig``.
    """
    run_dir = Path(run_dir)
    L, C = prep.n_features, len(prep.class_names)
    arch = preset(cfg.cnn.preset, L, seed=cfg.cnn.arch_seed)
    torch.manual_seed(cfg.cnn.train.seed)
    model = CNN1d(L, arch, C)
    hist = train(model, CNNObjective(), prep.X["train"], prep.y["train"], prep.X["val"], prep.y["val"],
                 cfg.cnn.train, checkpoint_path=run_dir / "cnn.best.pt", desc="CNN", epoch_callback=epoch_callback)
    _save(run_dir, "cnn", model, {"kind": "cnn", "arch": arch.as_dict(), "L": L, "n_classes": C,
                                  "split_sha256": split_fingerprint(prep)}, hist)
    (run_dir / "cnn.best.pt").unlink(missing_ok=True)
    return model, hist


def snn_name(encoding: str) -> str:
    """File stem of the run's spiking network for ``encoding``: ``snn`` (direct current) or ``snn_<encoding>``."""
    return "snn" if encoding == "direct" else f"snn_{encoding}"


def build_snn(L: int, arch: CNNArch, n_classes: int, scfg, encoding: str = "direct") -> SpikingCNN1d:
    """A ``SpikingCNN1d`` for ``SNNConfig`` ``scfg`` (output = n_classes x population neurons) with input ``encoding``."""
    return SpikingCNN1d(L, arch, n_classes * scfg.population, neuron=scfg.neuron, beta=scfg.beta,
                        num_steps=scfg.num_steps, encoding=encoding, delta_threshold=scfg.delta_threshold)


def train_snn(prep, cfg, run_dir: str | Path, cnn: CNN1d | None = None, epoch_callback=None,
              encoding: str = "direct"):
    """Train the spiking CNN with input ``encoding``: weight transfer from ``cnn`` (mode ``transfer``)
    or from scratch. Saves ``<snn_name(encoding)>.pt`` and its history in ``run_dir``.

    Raises:
        ValueError: transfer mode without a CNN, population coding with transfer, unknown encoding.
    """
    run_dir = Path(run_dir)
    s = cfg.snn
    name = snn_name(encoding)
    L, C = prep.n_features, len(prep.class_names)
    if s.mode not in ("transfer", "scratch"):
        raise ValueError(f"SNN mode must be 'transfer' or 'scratch', got {s.mode!r}")
    if s.mode == "transfer":
        if cnn is None:
            raise ValueError("SNN mode 'transfer' needs a trained CNN (train the CNN first)")
        if s.population != 1:
            raise ValueError("population coding changes the output layer, so it cannot take the CNN's weights; "
                             "use --snn-mode scratch")
    arch = preset(cfg.cnn.preset, L, seed=cfg.cnn.arch_seed)
    torch.manual_seed(s.train.seed)
    model = build_snn(L, arch, C, s, encoding)
    copied, scales = [], None
    if s.mode == "transfer":
        copied = transfer_weights(cnn, model)
        if s.normalize:
            scales = activation_scales(cnn, prep.X["train"][:NORMALIZE_ROWS], s.percentile)
            normalize_weights(model, scales)
    objective = SpikeCountObjective(C, loss=s.resolved_loss(), population=s.population)
    hist = train(model, objective, prep.X["train"], prep.y["train"], prep.X["val"], prep.y["val"], s.train,
                 checkpoint_path=run_dir / f"{name}.best.pt", desc=f"SNN {encoding}",
                 epoch_callback=epoch_callback)
    meta = {"kind": "snn", "arch": arch.as_dict(), "L": L, "n_classes": C, "population": s.population,
            "neuron": s.neuron, "beta": s.beta, "num_steps": s.num_steps, "loss": s.resolved_loss(),
            "mode": s.mode, "encoding": encoding, "delta_threshold": s.delta_threshold, "transferred": copied,
            "split_sha256": split_fingerprint(prep),
            "normalization": {"scales": scales, "percentile": s.percentile} if scales else None}
    _save(run_dir, name, model, meta, hist)
    (run_dir / f"{name}.best.pt").unlink(missing_ok=True)
    return model, hist


def model_from_checkpoint(ckpt: dict):
    """Rebuild the network described by a saved checkpoint dict (``cnn.pt``/``snn*.pt`` contents or a
    search trial's ``checkpoint.pt``), weights loaded, in eval mode.

    Raises:
        KeyError: the dict lacks ``kind``, ``arch``, ``L``, ``n_classes`` or ``state_dict``.
    """
    arch = CNNArch.from_dict(ckpt["arch"])
    if ckpt["kind"] == "cnn":
        model = CNN1d(ckpt["L"], arch, ckpt["n_classes"])
    else:
        model = SpikingCNN1d(ckpt["L"], arch, ckpt["n_classes"] * ckpt["population"], neuron=ckpt["neuron"],
                             beta=ckpt["beta"], num_steps=ckpt["num_steps"],
                             encoding=ckpt.get("encoding", "direct"),
                             delta_threshold=ckpt.get("delta_threshold", DELTA_THRESHOLD))
    model.load_state_dict(ckpt["state_dict"])
    model.eval()
    return model


def load_model(path: str | Path, device: str = "cpu"):
    """Rebuild a saved network from ``cnn.pt`` or ``snn*.pt``; returns ``(model, meta)``.

    Raises:
        ValueError: the file cannot be read as a saved network (message names the file).
        OSError: the file cannot be opened.
    """
    try:
        ckpt = torch.load(path, map_location=device, weights_only=False)
    except OSError:
        raise
    except Exception as e:  # truncated zip, pickle garbage, empty file...
        raise ValueError(f"{path}: not a saved network ({type(e).__name__}: {e})") from None
    if not isinstance(ckpt, dict) or ckpt.get("kind") not in ("cnn", "snn"):
        raise ValueError(f"{path}: not a saved network (no 'kind' cnn/snn in it)")
    try:
        return model_from_checkpoint(ckpt), ckpt
    except (KeyError, TypeError, ValueError, RuntimeError) as e:
        raise ValueError(f"{path}: cannot rebuild the network ({type(e).__name__}: {e})") from None
