"""Fit wiring: callbacks for runs that resume, stop early, and never lose a good model.

A run folder holds:
  backup/            keras.callbacks.BackupAndRestore: a killed run resumes here
  best.keras         the best model so far by validation loss, written atomically
  history.csv        one row per epoch (appended across resumes)
  logs/              TensorBoard

>>> import numpy as np, tempfile
>>> from seqapps.tasks import SequenceClassifier
>>> model = SequenceClassifier(num_classes=2, input_shape=(None, 3), units=4)
>>> model.compile()
>>> data = ({"features": np.zeros((4, 5, 3), "float32")}, np.array([0, 1, 0, 1]))
>>> history = fit(model, data, data, run_dir=tempfile.mkdtemp(), epochs=1, verbose=0)
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import keras
import numpy as np

from seqapps.atomic import atomic_path
from seqapps.errors import SeqappsError


class TrainingDiverged(SeqappsError):
    """The loss became NaN or infinite; the last good model was kept."""


class AtomicBestCheckpoint(keras.callbacks.Callback):
    """Save the model with the best `monitor` value, atomically (temp file, rename)."""

    def __init__(self, path: str | os.PathLike, *, monitor: str = "val_loss"):
        super().__init__()
        self.path = Path(path)
        self.monitor = monitor
        self.best = math.inf

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor, (logs or {}).get("loss"))
        if value is None or not np.isfinite(value) or value >= self.best:
            return
        self.best = float(value)
        with atomic_path(self.path) as tmp:
            self.model.save(tmp)


class StopOnNonFiniteLoss(keras.callbacks.Callback):
    """Stop at the first NaN/inf batch loss and remember where it happened."""

    def __init__(self):
        super().__init__()
        self.where = None
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not np.isfinite(float(loss)):
            self.where = (self._epoch + 1, batch + 1, float(loss))
            self.model.stop_training = True


def default_callbacks(run_dir: str | os.PathLike, *, patience: int = 8, monitor: str = "val_loss"):
    """The callbacks `fit` uses; exposed so users can add their own beside them."""
    run_dir = Path(run_dir)
    return [
        StopOnNonFiniteLoss(),
        keras.callbacks.BackupAndRestore(str(run_dir / "backup"), delete_checkpoint=True),
        AtomicBestCheckpoint(run_dir / "best.keras", monitor=monitor),
        keras.callbacks.EarlyStopping(monitor=monitor, patience=patience, restore_best_weights=True),
        keras.callbacks.CSVLogger(str(run_dir / "history.csv"), append=True),
        keras.callbacks.TensorBoard(str(run_dir / "logs"), write_graph=False, profile_batch=0),
    ]


def fit(
    model: keras.Model,
    train_data,
    val_data,
    *,
    run_dir: str | os.PathLike,
    epochs: int,
    patience: int = 8,
    class_weight: dict | None = None,
    extra_callbacks: list | None = None,
    verbose: int | str = "auto",
) -> keras.callbacks.History:
    """model.fit with resumable, fail-safe callbacks; returns the History.

    Running the same call again after the process was killed resumes from the last
    finished epoch (BackupAndRestore). A NaN or infinite loss raises TrainingDiverged
    naming the epoch and batch; best.keras keeps the last good model.

    Args:
        train_data, val_data: tf.data datasets (or (x, y) tuples) of (inputs, targets).
        run_dir: the run folder (created).
        epochs: the total number of epochs of the run (not the remaining ones).
        patience: epochs without validation improvement before early stopping.
        class_weight: {class_id: weight}, e.g. from `balanced_class_weight`.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    callbacks = default_callbacks(run_dir, patience=patience) + list(extra_callbacks or [])
    kwargs = {}
    if isinstance(train_data, tuple):
        kwargs = {"x": train_data[0], "y": train_data[1]}
    else:
        kwargs = {"x": train_data}
    history = model.fit(
        **kwargs,
        validation_data=val_data,
        epochs=epochs,
        callbacks=callbacks,
        class_weight=class_weight,
        verbose=verbose,
    )
    guard = callbacks[0]
    if guard.where is not None:
        epoch, batch, loss = guard.where
        raise TrainingDiverged(
            f"training stopped: the loss became {loss} at epoch {epoch}, batch {batch}. "
            f"The last good model is {run_dir / 'best.keras'}. Try a lower learning rate, "
            "gradient clipping (clipnorm) or input normalisation."
        )
    return history


def balanced_class_weight(labels: np.ndarray, num_classes: int) -> dict[int, float]:
    """{class: weight} inversely proportional to class frequency (scikit-learn's "balanced").

    Classes absent from `labels` get weight 1.0.

    >>> balanced_class_weight(np.array([0, 0, 0, 1]), 2)
    {0: 0.6666666666666666, 1: 2.0}
    """
    from sklearn.utils.class_weight import compute_class_weight

    present = np.unique(labels)
    weights = compute_class_weight("balanced", classes=present, y=labels)
    result = {c: 1.0 for c in range(num_classes)}
    result.update({int(c): float(w) for c, w in zip(present, weights, strict=True)})
    return result
