"""The Ray Tune function trainable: one trial = one network trained by ``spiking.training.train``.

The prepared arrays (and, for weight transfer, the source CNN's weights and
activation scales) reach each trial through ``tune.with_parameters`` (Ray's object
store: put once, shared by the trials of a node). After every epoch the trial calls
``tune.report`` with ``val_balanced_accuracy``, ``loss``, ``epoch`` (1-based,
epochs completed; the scheduler's time attribute), the derived architecture,
``node_id`` (the Ray node that ran the epoch; a retried trial may move to another
node), and a checkpoint directory holding ``checkpoint.pt``:

    {"state_dict", "optimizer", "epoch", "arch", "kind", "L", "n_classes",
     "population", "neuron", "beta", "num_steps", "loss", "mode", "config",
     "val_balanced_accuracy", "train_seconds", "best_epoch", "history", ...}

which ``spiking.artifacts.checkpoint.load_model`` and
``spiking.evaluation.evaluate.evaluate_network`` read directly (``best_epoch`` is
that checkpoint's own epoch, 0-based). A restarted trial (``Tuner.restore`` or a
retried failure) resumes from ``tune.get_checkpoint()``: weights, Adam state, epoch
count, history and training seconds are restored; the data order of the remaining
epochs is seeded with ``seed + epoch`` (deterministic, but not the order an
uninterrupted run would have used).

Recovery can be exercised with ``SPIKING_TUNE_FAIL_AT_EPOCH=N`` (see
``FAIL_AT_EPOCH_VAR``): each trial fails once after epoch N and resumes from its checkpoint.
"""

from __future__ import annotations

import os
import tempfile
import time

import numpy as np
import torch

from spiking.models.build import build_cnn, build_spiking_cnn, derive_for, preset_for, transfer_weights_any
from spiking.models.cnn import CNNArch
from spiking.models.conversion import normalize_weights
from spiking.training.loop import TrainConfig, train
from spiking.training.objectives import CNNObjective, SpikeCountObjective
from spiking.search.registry import CNN_SEARCH_PARAMS

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
    """``(model, objective, meta)`` for one trial config; meta is the ``load_model`` metadata
    (with the input shape and the fitted layout of the experiment's data)."""
    L, C, shape = payload["L"], payload["n_classes"], _input_shape(payload)
    arch = trial_arch(config, payload)
    torch.manual_seed(payload["seed"])
    meta = {"kind": payload["kind"], "arch": arch.as_dict(), "L": L, "input_shape": list(shape),
            "layout": payload.get("layout"), "n_classes": C}
    if payload["kind"] == "cnn":
        return build_cnn(shape, arch, C), CNNObjective(), meta
    pop = int(config.get("population", 1))
    encoding = config.get("encoding", "direct")
    model = build_spiking_cnn(shape, arch, C * pop, neuron=config["neuron"], beta=float(config["beta"]),
                              num_steps=int(config["num_steps"]), encoding=encoding)
    meta.update(population=pop, neuron=config["neuron"], beta=float(config["beta"]),
                num_steps=int(config["num_steps"]), loss=payload["loss"], mode=payload["mode"], encoding=encoding,
                transferred=[])
    t = payload.get("transfer")
    if payload["mode"] == "transfer":
        cnn = build_cnn(shape, arch, C)
        cnn.load_state_dict(t["state_dict"])
        meta["transferred"] = transfer_weights_any(cnn, model)
        if t.get("scales"):
            normalize_weights(model, t["scales"])
            meta["normalization"] = {"scales": t["scales"], "percentile": t.get("percentile")}
        meta["weights_source"] = t.get("source")
    return model, SpikeCountObjective(C, loss=payload["loss"], population=pop), meta


def _cpu(state: dict) -> dict:
    return {k: (v.detach().cpu().clone() if torch.is_tensor(v) else v) for k, v in state.items()}


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
            saved = torch.load(os.path.join(d, CHECKPOINT_FILE), map_location="cpu", weights_only=False)
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
        state = {"state_dict": _cpu(net.state_dict()), "optimizer": optimizer.state_dict(), "epoch": epoch,
                 **meta, "config": dict(config), "val_balanced_accuracy": row["val_balanced_accuracy"],
                 "train_seconds": clock["seconds"], "best_epoch": epoch - 1, "history": list(history),
                 "split_sha256": payload.get("split_sha256"), "saved_at": time.time()}
        metrics = {"val_balanced_accuracy": row["val_balanced_accuracy"], "loss": row["loss"], "epoch": epoch,
                   "epoch_seconds": row["seconds"], "train_seconds": clock["seconds"], "arch": meta["arch"],
                   "resumed_from_epoch": start_epoch, "node_id": node_id}
        with tempfile.TemporaryDirectory(prefix="spiking-ckpt-") as d:
            torch.save(state, os.path.join(d, CHECKPOINT_FILE))
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(d))
        if fail_at and start_epoch < fail_at == epoch:
            raise RuntimeError(f"injected failure after epoch {epoch} ({FAIL_AT_EPOCH_VAR})")

    train(model, objective, Xtr, ytr, Xva, yva, tcfg, epoch_callback=on_epoch, optimizer_state=opt_state)
