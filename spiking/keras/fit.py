"""Keras training of grammar-search phenotype networks under a time budget (Fast-DENSER style).

Fast-DENSER (Assuncao et al., EuroGP 2019) trains every candidate for a fixed time budget
with early stopping on the validation accuracy, and may later "train longer" a promising
one. :func:`fit_keras` does one such training; continuing = :func:`save_keras`, later
:func:`load_keras` and :func:`fit_keras` again (the optimiser state, including its step count
and so the ``decay`` schedule, continues).

This module imports TensorFlow (environment ``.venv-nengo``) and never torch.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import tensorflow as tf
from sklearn.metrics import balanced_accuracy_score

from spiking.keras import KerasError
from spiking.specs.phenotype import LearningSpec

__all__ = ["FitResult", "fit_keras", "save_keras", "load_keras", "as_keras_input"]


@dataclass
class FitResult:
    """Outcome of :func:`fit_keras`.

    Attributes:
        epochs: epochs run (the last one may be partial when the time budget stopped it).
        seconds: wall-clock seconds of the call.
        history: per epoch: ``loss``, ``accuracy`` (training, Keras' running values),
            ``val_loss``, ``val_accuracy``, ``val_balanced_accuracy`` (fractions in [0, 1]).
        best_val_accuracy: the highest ``val_accuracy``; the model holds that epoch's weights.
        best_epoch: 0-based index of that epoch in ``history`` (the first one on ties).
        stopped_by: ``"early_stop"`` (``learning.early_stop`` epochs without improvement),
            ``"time"`` (budget exhausted) or ``"max_epochs"``.
    """

    epochs: int
    seconds: float
    history: dict = field(default_factory=dict)
    best_val_accuracy: float = 0.0
    best_epoch: int = 0
    stopped_by: str = "max_epochs"


def as_keras_input(x: np.ndarray) -> np.ndarray:
    """Samples as the phenotype networks take them: float32 ``(N, L, 1)``.

    Accepts ``(N, L)``, ``(N, 1, L)`` (:class:`spiking.data.preprocess.prepare.Prepared` arrays) or
    ``(N, L, 1)``. Raises ``ValueError`` for any other shape.
    """
    x = np.asarray(x, dtype=np.float32)
    if x.ndim == 2:
        return x[:, :, None]
    if x.ndim == 3 and x.shape[1] == 1:
        return x.reshape(x.shape[0], x.shape[2], 1)
    if x.ndim == 3 and x.shape[2] == 1:
        return x
    raise KerasError(f"expected samples of shape (N, L), (N, 1, L) or (N, L, 1), got {x.shape}")


class _ValidationMetrics(tf.keras.callbacks.Callback):
    """Adds val_loss / val_accuracy / val_balanced_accuracy to the epoch logs and keeps the best weights."""

    def __init__(self, x_val, y_val, batch_size):
        super().__init__()
        self.x_val, self.y_val, self.batch_size = x_val, y_val, batch_size
        self.loss = tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        self.best, self.best_epoch, self.best_weights = -np.inf, 0, None

    def on_epoch_end(self, epoch, logs=None):
        logits = self.model.predict(self.x_val, batch_size=self.batch_size, verbose=0)
        pred = logits.argmax(axis=1)
        acc = float((pred == self.y_val).mean())
        logs["val_loss"] = float(self.loss(self.y_val, logits))
        logs["val_accuracy"] = acc
        logs["val_balanced_accuracy"] = float(balanced_accuracy_score(self.y_val, pred))
        if acc > self.best:  # strictly better, as Keras' EarlyStopping
            self.best, self.best_epoch, self.best_weights = acc, epoch, self.model.get_weights()


class _TimeBudget(tf.keras.callbacks.Callback):
    """Stops training once ``budget_s`` seconds have passed since ``start`` (checked after every batch)."""

    def __init__(self, start: float, budget_s: float):
        super().__init__()
        self.start, self.budget_s, self.fired = start, budget_s, False

    def _check(self):
        if time.monotonic() - self.start >= self.budget_s:
            self.fired = True
            self.model.stop_training = True

    def on_train_batch_end(self, batch, logs=None):
        self._check()

    def on_epoch_end(self, epoch, logs=None):
        self._check()


def fit_keras(model: tf.keras.Model, learning: LearningSpec, x_train, y_train, x_val, y_val, *,
              time_budget_s: float, max_epochs: int = 1000, seed: int) -> FitResult:
    """Train a compiled phenotype network with early stopping and a wall-clock budget.

    Keras ``fit`` with batch size ``learning.batch_size`` and shuffled batches;
    ``EarlyStopping(monitor="val_accuracy", patience=learning.early_stop,
    restore_best_weights=True)``; a callback that stops as soon as ``time_budget_s`` is
    exhausted, checked after every batch (so at most one batch plus one validation pass
    overruns). Whatever stopped training, the model ends with the weights of its best
    validation-accuracy epoch (Keras 2.12 restores them only on an early stop; this does it
    in all three cases). Seeded with ``tf.keras.utils.set_random_seed(seed)`` (Python, NumPy
    and TensorFlow generators: shuffling, dropout), so a run is reproducible with the same
    thread settings (bitwise determinism across machines would also need
    ``tf.config.experimental.enable_op_determinism()``).

    Args:
        model: compiled with :func:`spiking.keras.phenotype.compile_model`, outputs logits.
        learning: the phenotype's learning block (batch size, early-stop patience).
        x_train, x_val: float ``(N, L)`` in [0, 1] (or ``(N, 1, L)`` / ``(N, L, 1)``).
        y_train, y_val: int class indices ``(N,)``.
        time_budget_s: seconds of training allowed (> 0).
        max_epochs: upper bound on epochs.
        seed: random seed.

    Returns:
        :class:`FitResult`.

    Raises:
        ValueError: empty or mismatched arrays, a non-positive budget or ``max_epochs < 1``,
            or an uncompiled model.
    """
    start = time.monotonic()
    xt, xv = as_keras_input(x_train), as_keras_input(x_val)
    yt, yv = np.asarray(y_train, np.int64), np.asarray(y_val, np.int64)
    if len(xt) == 0 or len(xv) == 0 or len(xt) != len(yt) or len(xv) != len(yv):
        raise KerasError(f"need non-empty, matching arrays: x_train {xt.shape}, y_train {yt.shape}, "
                         f"x_val {xv.shape}, y_val {yv.shape}")
    if not time_budget_s > 0 or max_epochs < 1:
        raise KerasError(f"time_budget_s must be > 0 and max_epochs >= 1, got {time_budget_s}, {max_epochs}")
    if model.optimizer is None or getattr(model, "compiled_loss", None) is None:
        raise KerasError("the model is not compiled (use spiking.keras.phenotype.compile_model)")
    tf.keras.utils.set_random_seed(int(seed))
    val = _ValidationMetrics(xv, yv, max(learning.batch_size, 256))
    budget = _TimeBudget(start, float(time_budget_s))
    early = tf.keras.callbacks.EarlyStopping(monitor="val_accuracy", mode="max", patience=learning.early_stop,
                                             restore_best_weights=True)
    hist = model.fit(xt, yt, batch_size=learning.batch_size, epochs=int(max_epochs), shuffle=True, verbose=0,
                     callbacks=[val, budget, early])
    if val.best_weights is not None:
        model.set_weights(val.best_weights)
    keys = ("loss", "accuracy", "val_loss", "val_accuracy", "val_balanced_accuracy")
    history = {k: [float(v) for v in hist.history.get(k, [])] for k in keys}
    epochs = len(history["val_accuracy"])
    stopped_by = "time" if budget.fired else ("early_stop" if early.stopped_epoch > 0 else "max_epochs")
    return FitResult(epochs=epochs, seconds=time.monotonic() - start, history=history,
                     best_val_accuracy=float(val.best) if epochs else 0.0, best_epoch=int(val.best_epoch),
                     stopped_by=stopped_by)


def save_keras(model: tf.keras.Model, path) -> Path:
    """Save a model: architecture, weights (incl. batch-norm moving statistics), compile
    configuration and optimiser state (its variables and step count, so a ``decay`` schedule
    continues), so :func:`load_keras` + :func:`fit_keras` continues the training.

    Format: the Keras v3 ``.keras`` zip archive (TF 2.12's recommended format; keeps the
    optimiser state), or legacy HDF5 for ``.h5``. Activations are stored by name, so a
    ``tf.nn.relu`` comes back as ``tf.keras.activations.relu`` (same function for Keras and
    for the NengoDL converter, which maps both to ``nengo.RectifiedLinear``).

    Returns:
        The path written (parent folders are created).

    Raises:
        ValueError: a path ending neither in ``.keras`` nor ``.h5``.
    """
    path = Path(path)
    if path.suffix not in (".keras", ".h5"):
        raise KerasError(f"save to a .keras (recommended) or .h5 file, got {path}")
    path.parent.mkdir(parents=True, exist_ok=True)
    model.save(path)
    return path


def load_keras(path) -> tf.keras.Model:
    """Load a model saved by :func:`save_keras` (compiled, with its optimiser state, when it
    was compiled at saving).

    Raises:
        FileNotFoundError: no such file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no saved model at {path}")
    return tf.keras.models.load_model(path)


# --------------------------------------------------------------------------- one individual (Ray task)
def limit_tf_threads(n: int) -> None:
    """Use ``n`` intra-op threads and one inter-op thread in this process (a no-op once TF runs)."""
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(max(1, n))
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:  # already initialised in this (reused) worker
        pass
