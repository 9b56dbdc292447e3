"""The Ray Tune function trainable: one trial = one network trained by ``spiking.training.train``.

Details: docs/modules.md, section ``spiking.search.trainable``.
"""

from __future__ import annotations

import os
import tempfile
import time

import numpy as np
import torch

from spiking.artifacts.checkpoint import read_checkpoint, save_network
from spiking.models.build import build_cnn, derive_for, preset_for
from spiking.models.cnn import CNNArch
from spiking.search.registry import CNN_SEARCH_PARAMS
from spiking.specs.names import DELTA_THRESHOLD
from spiking.specs.train import TrainConfig
from spiking.training.jobs import build_network
from spiking.training.loop import train

CHECKPOINT_FILE = "checkpoint.pt"
#: Fault injection for testing recovery: when this variable is set (to N) in the driver's environment, every
#: trial raises once right after reporting epoch N; Ray then retries it (``max_failures``) from that checkpoint.
FAIL_AT_EPOCH_VAR = "SPIKING_TUNE_FAIL_AT_EPOCH"


def trial_arch(config: dict, payload: dict) -> CNNArch:
    """Architecture of a trial: searched (dependent sizes drawn with ``arch_seed``), preset, or the source CNN's."""
    shape, how = _input_shape(payload), payload["arch"]
    if how == "search":
        return derive_for(shape, **{k: int(config[k]) for k in CNN_SEARCH_PARAMS}, rng=int(config["arch_seed"]))
    if how == "preset":
        return preset_for(config["preset"], shape, seed=int(config.get("arch_seed", 0)))
    return CNNArch.from_dict(payload["transfer"]["arch"])


def _input_shape(payload: dict) -> tuple[int, ...]:
    return tuple(payload.get("input_shape") or (payload["L"],))


def build_trial_model(config: dict, payload: dict):
    """``(model, objective, meta)`` of one trial config, through the training path's
    :func:`spiking.training.jobs.build_network` (meta: the saved-network metadata, with the input
    shape and fitted layout of the experiment's data)."""
    C, shape = payload["n_classes"], _input_shape(payload)
    arch = trial_arch(config, payload)
    inputs = {"L": payload["L"], "input_shape": list(shape), "layout": payload.get("layout")}
    common = dict(seed=payload["seed"], inputs=inputs, split_sha256=payload.get("split_sha256"))
    if payload["kind"] == "cnn":
        return build_network(shape, arch, C, **common)
    snn = {"neuron": config["neuron"], "beta": float(config["beta"]), "num_steps": int(config["num_steps"]),
           "population": int(config.get("population", 1)), "loss": payload["loss"], "mode": payload["mode"],
           "encoding": config.get("encoding", "direct"),
           "delta_threshold": float(config.get("delta_threshold", payload.get("delta_threshold", DELTA_THRESHOLD)))}
    t = payload.get("transfer")
    cnn = None
    if payload["mode"] == "transfer":
        cnn = build_cnn(shape, arch, C)
        cnn.load_state_dict(t["state_dict"])
    return build_network(shape, arch, C, snn=snn, source_cnn=cnn, scales=(t or {}).get("scales") or None,
                         percentile=(t or {}).get("percentile"), weights_source=(t or {}).get("source"), **common)


def train_trial(config: dict, payload: dict) -> None:
    """Ray Tune function trainable (wrap with ``tune.with_parameters(train_trial, payload=...)``)."""
    import ray
    from ray import tune

    node_id = ray.get_runtime_context().get_node_id()
    torch.set_num_threads(max(1, int(payload.get("cpus_per_trial", 1))))
    use_cuda = bool(payload.get("gpus_per_trial")) and torch.cuda.is_available()
    device = "cuda" if use_cuda else "cpu"
    # The object store hands out read-only arrays; torch wants writable ones.
    Xtr, ytr = np.array(payload["X_train"]), np.array(payload["y_train"])
    Xva, yva = np.array(payload["X_val"]), np.array(payload["y_val"])

    model, objective, meta = build_trial_model(config, payload)
    start_epoch, history, seconds, opt_state = 0, [], 0.0, None
    ckpt = tune.get_checkpoint()
    if ckpt is not None:
        with ckpt.as_directory() as d:
            saved = read_checkpoint(os.path.join(d, CHECKPOINT_FILE))
        model.load_state_dict(saved["state_dict"])
        start_epoch, history = int(saved["epoch"]), list(saved["history"])
        seconds, opt_state = float(saved["train_seconds"]), saved["optimizer"]
    max_epochs = int(payload["epochs"])
    if start_epoch >= max_epochs:
        return

    tcfg = TrainConfig(epochs=max_epochs - start_epoch, batch_size=int(config.get("batch_size", payload["batch_size"])),
                       lr=float(config.get("lr", payload["lr"])), patience=int(payload["patience"]),
                       seed=int(payload["seed"]) + start_epoch, device=device, progress=False)
    fail_at = int(payload.get("fail_at_epoch") or 0)
    clock = {"seconds": seconds}

    def on_epoch(rec: dict, net: torch.nn.Module, optimizer: torch.optim.Optimizer) -> None:
        epoch = start_epoch + int(rec["epoch"]) + 1
        clock["seconds"] += float(rec["seconds"])
        row = {"epoch": epoch, "loss": float(rec["loss"]), "val_balanced_accuracy": float(rec["val_balanced_accuracy"]),
               "seconds": float(rec["seconds"])}
        history.append(row)
        metrics = {"val_balanced_accuracy": row["val_balanced_accuracy"], "loss": row["loss"], "epoch": epoch,
                   "epoch_seconds": row["seconds"], "train_seconds": clock["seconds"], "arch": meta["arch"],
                   "resumed_from_epoch": start_epoch, "node_id": node_id}
        with tempfile.TemporaryDirectory(prefix="spiking-ckpt-") as d:
            save_network(os.path.join(d, CHECKPOINT_FILE), net, meta, on_cpu=True, optimizer=optimizer.state_dict(),
                         epoch=epoch, config=dict(config), val_balanced_accuracy=row["val_balanced_accuracy"],
                         train_seconds=clock["seconds"], best_epoch=epoch - 1, history=list(history),
                         saved_at=time.time())
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(d))
        if fail_at and start_epoch < fail_at == epoch:
            raise RuntimeError(f"injected failure after epoch {epoch} ({FAIL_AT_EPOCH_VAR})")

    train(model, objective, Xtr, ytr, Xva, yva, tcfg, epoch_callback=on_epoch, optimizer_state=opt_state)
