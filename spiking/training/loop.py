"""The training loop shared by the CNN and the spiking CNN.

Adam, mini-batches, one validation pass per epoch, early stopping on validation
balanced accuracy (scikit-learn ``balanced_accuracy_score``), the best epoch's
weights checkpointed and restored at the end. Only the train and validation
splits are seen here; the test split is never passed in.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import balanced_accuracy_score
from torch.utils.data import DataLoader, TensorDataset
from tqdm.auto import tqdm

from spiking.specs.train import TrainConfig  # noqa: F401  (re-exported; torch-free for spiking.specs.run)
from spiking.training.reproducibility import resolve_device, seed_everything


@dataclass
class History:
    """Per-epoch record: ``epochs`` is a list of ``{epoch, loss, val_balanced_accuracy, seconds}``."""

    epochs: list[dict] = field(default_factory=list)
    best_epoch: int = -1
    best_val_balanced_accuracy: float = -1.0
    train_seconds: float = 0.0
    stopped_early: bool = False

    def to_dict(self) -> dict:
        return asdict(self)


def predict(model: torch.nn.Module, objective, X: np.ndarray, *, batch_size: int = 256,
            device: torch.device | str = "cpu") -> np.ndarray:
    """Class indices (n,) for inputs ``X`` of shape (n, 1, L) float32, in eval mode, no gradients."""
    device = torch.device(device)
    model.eval()
    out = []
    with torch.no_grad():
        for start in range(0, len(X), batch_size):
            xb = torch.as_tensor(X[start:start + batch_size], device=device)
            out.append(objective.predict(model, xb).cpu().numpy())
    return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)


def _save_atomic(obj, path: Path) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def train(model: torch.nn.Module, objective, X_train: np.ndarray, y_train: np.ndarray,
          X_val: np.ndarray, y_val: np.ndarray, cfg: TrainConfig,
          checkpoint_path: str | Path | None = None, desc: str = "train",
          epoch_callback=None, optimizer_state: dict | None = None) -> History:
    """Train ``model`` in place and leave it holding the best epoch's weights.

    Args:
        model: a ``torch.nn.Module`` understood by ``objective``.
        objective: ``CNNObjective`` or ``SpikeCountObjective`` (loss and decision rule).
        X_train, X_val: float32 arrays (n, 1, L); y_train, y_val: int64 class indices (n,).
        cfg: ``TrainConfig``.
        checkpoint_path: where the best epoch's ``state_dict`` is written (atomically), or None.
        desc: label of the progress bar.
        epoch_callback: optional ``f(epoch_record: dict, model, optimizer)`` called after each
            epoch (Ray Tune reports and checkpoints from here).
        optimizer_state: an Adam ``state_dict`` to continue from (a resumed trial).

    Returns:
        ``History``; ``best_epoch`` is 0-based.
    """
    gen = seed_everything(cfg.seed)
    device = resolve_device(cfg.device)
    model.to(device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    if optimizer_state is not None:
        opt.load_state_dict(optimizer_state)
    loader = DataLoader(TensorDataset(torch.as_tensor(X_train), torch.as_tensor(y_train)),
                        batch_size=cfg.batch_size, shuffle=True, generator=gen)
    hist = History()
    best_state = None
    since_best = 0
    start = time.perf_counter()
    bar = tqdm(range(cfg.epochs), desc=desc, disable=not cfg.progress, leave=True)
    for epoch in bar:
        t0 = time.perf_counter()
        model.train()
        total, n = 0.0, 0
        for xb, yb in loader:
            xb, yb = xb.to(device), yb.to(device)
            opt.zero_grad(set_to_none=True)
            loss = objective.loss(model, xb, yb)
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(yb)
            n += len(yb)
        val_pred = predict(model, objective, X_val, device=device)
        val_bacc = float(balanced_accuracy_score(y_val, val_pred))
        rec = {"epoch": epoch, "loss": total / max(n, 1), "val_balanced_accuracy": val_bacc,
               "seconds": time.perf_counter() - t0}
        hist.epochs.append(rec)
        if val_bacc > hist.best_val_balanced_accuracy:
            hist.best_val_balanced_accuracy, hist.best_epoch = val_bacc, epoch
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            since_best = 0
            if checkpoint_path is not None:
                _save_atomic({"state_dict": best_state, "epoch": epoch, "val_balanced_accuracy": val_bacc},
                             Path(checkpoint_path))
        else:
            since_best += 1
        bar.set_postfix(loss=f"{rec['loss']:.4f}", val_bacc=f"{val_bacc:.4f}", best=f"{hist.best_val_balanced_accuracy:.4f}")
        if epoch_callback is not None:
            epoch_callback(rec, model, opt)
        if cfg.patience and since_best >= cfg.patience:
            hist.stopped_early = True
            break
    bar.close()
    hist.train_seconds = time.perf_counter() - start
    if best_state is not None:
        model.load_state_dict(best_state)
    return hist
