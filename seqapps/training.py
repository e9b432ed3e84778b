"""Fit wiring: callbacks for runs that resume, stop early, and never lose a good model.

A run folder holds:
  backup/            AtomicBackupAndRestore: a killed run resumes here
  best.keras         the best model so far by validation loss, written atomically
  history.csv        one row per epoch (kept across resumes), rewritten atomically
  logs/              TensorBoard (append-only event files; see README, "Training on several GPUs and several machines")

Under a tf.distribute strategy (model built and compiled in ``strategy.scope()``) only
the chief writes into the run folder; other workers write to a temporary folder that is
removed (seqapps.distribute.worker_run_dir) and resume from the chief's backup/.

>>> import numpy as np, tempfile
>>> from seqapps.tasks import SequenceClassifier
>>> model = SequenceClassifier(num_classes=2, input_shape=(None, 3), units=4)
>>> model.compile()
>>> data = ({"features": np.zeros((4, 5, 3), "float32")}, np.array([0, 1, 0, 1]))
>>> history = fit(model, data, data, run_dir=tempfile.mkdtemp(), epochs=1, verbose=0)
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from pathlib import Path

import keras
import numpy as np

from seqapps import distribute
from seqapps.atomic import atomic_path, write_json, write_text
from seqapps.errors import SeqappsError, invalid_argument


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


class AtomicCSVLogger(keras.callbacks.Callback):
    """One row per epoch in a CSV file, rewritten atomically at every epoch end.

    Keras' CSVLogger appends to an open file, so a run killed mid-write can leave a
    half row that a later reader trips over; this one writes the whole (small) file to a
    temporary name and renames it. Rows of earlier (resumed) runs are kept; the columns
    are those of the first row ("epoch" then the sorted log keys), a missing value is nan.
    """

    def __init__(self, path: str | os.PathLike):
        super().__init__()
        self.path = Path(path)

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        rows = []
        if self.path.exists():
            rows = [r for r in csv.reader(io.StringIO(self.path.read_text(encoding="utf-8"))) if r]
        header = rows[0] if rows else ["epoch", *sorted(logs)]
        values = {"epoch": epoch, **{k: float(v) for k, v in logs.items()}}
        rows = (rows or [header]) + [[str(values.get(name, "nan")) for name in header]]
        out = io.StringIO()
        csv.writer(out, lineterminator="\n").writerows(rows)
        write_text(self.path, out.getvalue())


class AtomicBackupAndRestore(keras.callbacks.BackupAndRestore):
    """BackupAndRestore whose backup is never half written, and readable by other workers.

    Keras writes ``latest.weights.h5`` and then ``training_metadata.json`` in place, so a
    kill during the write leaves a truncated file that stops the next run. Here each
    epoch's weights go to a new file ``epoch-NNNNN.weights.h5`` (temporary name, then
    rename) and the metadata naming it is then replaced atomically: the metadata is the
    commit point, so a backup is always a consistent (weights, epoch) pair. A non-finite
    loss is never backed up (the run resumes from the last good epoch).

    Args:
        backup_dir: where this worker writes its backup (removed when training ends).
        restore_dir: where to resume from (default `backup_dir`); in a multi-worker run
            every worker restores from the chief's backup so they all resume at the same
            epoch with the same weights.
    """

    def __init__(self, backup_dir: str | os.PathLike, *, restore_dir: str | os.PathLike | None = None,
                 delete_checkpoint: bool = True):
        super().__init__(str(backup_dir), delete_checkpoint=delete_checkpoint)
        self.restore_dir = Path(restore_dir or backup_dir)

    def on_train_begin(self, logs=None):
        metadata_path = self.restore_dir / "training_metadata.json"
        if not metadata_path.exists():
            return
        metadata = json.loads(metadata_path.read_text(encoding="utf-8"))
        weights = self.restore_dir / metadata.get("weights", "latest.weights.h5")
        if not weights.exists():
            return
        if self.model.optimizer is not None and not self.model.optimizer.built:
            self.model.optimizer.build(self.model.trainable_variables)
        self.model.load_weights(weights)
        self.model._initial_epoch = int(metadata["epoch"])

    def on_epoch_end(self, epoch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not np.isfinite(loss):
            return
        super().on_epoch_end(epoch, logs)

    def _save_model(self):
        folder = Path(self.backup_dir)
        folder.mkdir(parents=True, exist_ok=True)
        name = f"epoch-{self._current_epoch:05d}.weights.h5"
        # Keras picks the format from the ".weights.h5" ending, so keep it on the temporary.
        tmp = folder / f".tmp-{os.getpid()}-{name}"
        try:
            self.model.save_weights(str(tmp), overwrite=True)
            os.replace(tmp, folder / name)
        finally:
            tmp.unlink(missing_ok=True)
        write_json(folder / "training_metadata.json",
                   {"epoch": self._current_epoch, "batch": self._last_batch_seen, "weights": name})
        for old in folder.glob("epoch-*.weights.h5"):
            if old.name != name:
                old.unlink(missing_ok=True)


def default_callbacks(run_dir: str | os.PathLike, *, patience: int = 8, monitor: str = "val_loss",
                      restore_dir: str | os.PathLike | None = None):
    """The callbacks `fit` uses; exposed so users can add their own beside them.

    `restore_dir`: the run folder to resume from when it is not `run_dir` (a non-chief
    worker writes to a temporary folder but resumes from the chief's backup).
    """
    run_dir = Path(run_dir)
    restore_dir = Path(restore_dir) if restore_dir is not None else run_dir
    return [
        StopOnNonFiniteLoss(),
        AtomicBackupAndRestore(run_dir / "backup", restore_dir=restore_dir / "backup"),
        AtomicBestCheckpoint(run_dir / "best.keras", monitor=monitor),
        keras.callbacks.EarlyStopping(monitor=monitor, patience=patience, restore_best_weights=True),
        AtomicCSVLogger(run_dir / "history.csv"),
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
    finished epoch (AtomicBackupAndRestore). A NaN or infinite loss raises
    TrainingDiverged naming the epoch and batch; best.keras keeps the last good model.

    Under a tf.distribute strategy, build and compile `model` in ``strategy.scope()``
    first; the batches of `train_data` are global batches, split across replicas. Only
    the chief writes to `run_dir`; other workers write to a temporary folder that is
    removed. In a multi-worker run a dead peer raises ``distribute.WorkerLost``.

    Args:
        train_data, val_data: tf.data datasets (or (x, y) tuples) of (inputs, targets).
        run_dir: the run folder (created).
        epochs: the total number of epochs of the run (not the remaining ones).
        patience: epochs without validation improvement before early stopping.
        class_weight: {class_id: weight}, e.g. from `balanced_class_weight`.
    """
    run_dir = Path(run_dir)
    strategy = model.distribute_strategy
    if distribute.is_chief(strategy):
        run_dir.mkdir(parents=True, exist_ok=True)
    if getattr(model, "_distribute_strategy", None) is not None:  # built in a strategy's scope
        distribute.prepare_for_strategy(model)
    kwargs = {}
    if isinstance(train_data, tuple):
        kwargs = {"x": train_data[0], "y": train_data[1]}
    else:
        kwargs = {"x": train_data}
    with distribute.worker_run_dir(run_dir, strategy) as write_dir:
        # Extra callbacks first: what they add to the logs (e.g. a schedule's learning_rate)
        # then reaches history.csv and the checkpoints.
        callbacks = list(extra_callbacks or []) + default_callbacks(write_dir, patience=patience, restore_dir=run_dir)
        try:
            history = model.fit(
                **kwargs,
                validation_data=val_data,
                epochs=epochs,
                callbacks=callbacks,
                class_weight=class_weight,
                # tf.data pipelines shuffle themselves (seeded); arrays are shuffled here.
                shuffle="y" in kwargs,
                verbose=verbose,
            )
        except Exception as error:
            message = distribute.peer_failure_message(error, strategy)
            if message is None:
                raise
            raise distribute.WorkerLost(message) from error
    guard = next(c for c in callbacks if isinstance(c, StopOnNonFiniteLoss))
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


@keras.saving.register_keras_serializable(package="seqapps")
class SparseSmoothedCrossentropy(keras.losses.Loss):
    """Cross-entropy of probabilities against integer labels smoothed by `label_smoothing`.

    The target of label y is ``(1 - label_smoothing) * one_hot(y) + label_smoothing / classes``,
    as ``keras.losses.CategoricalCrossentropy(label_smoothing=...)`` on one-hot labels
    (Keras' sparse cross-entropy has no smoothing).

    >>> loss = SparseSmoothedCrossentropy(label_smoothing=0.1)
    >>> round(float(loss(np.array([0]), np.array([[0.9, 0.1]]))), 4)
    0.2152
    """

    def __init__(self, *, label_smoothing: float = 0.1, name: str = "sparse_smoothed_crossentropy", **kwargs):
        super().__init__(name=name, **kwargs)
        if not 0 <= label_smoothing < 1:
            raise invalid_argument("label_smoothing", label_smoothing, "in [0, 1)")
        self.label_smoothing = float(label_smoothing)

    def call(self, y_true, y_pred):
        classes = keras.ops.shape(y_pred)[-1]
        labels = keras.ops.one_hot(keras.ops.cast(keras.ops.reshape(y_true, [-1]), "int32"), classes)
        return keras.losses.categorical_crossentropy(labels, y_pred, label_smoothing=self.label_smoothing)

    def get_config(self):
        return {**super().get_config(), "label_smoothing": self.label_smoothing}


def learning_rate_callback(schedule: str | None, *, learning_rate: float, epochs: int, warmup_epochs: int = 0,
                           patience: int = 8) -> keras.callbacks.Callback | None:
    """The keras callback of a learning-rate `schedule` (None: constant rate).

    "cosine": linear warm-up over `warmup_epochs` to `learning_rate`, then cosine decay
    to 0 at `epochs` (per epoch, from the epoch index, so a resumed run continues it);
    "plateau": ``ReduceLROnPlateau`` halving the rate after ``max(1, patience // 2)``
    epochs without a better validation loss.

    >>> callback = learning_rate_callback("cosine", learning_rate=1.0, epochs=5, warmup_epochs=1)
    >>> [round(callback.schedule(e, 0.0), 3) for e in range(5)]
    [1.0, 1.0, 0.854, 0.5, 0.146]
    """
    if schedule is None:
        return None
    if schedule == "plateau":
        return keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=max(1, patience // 2),
                                                 min_lr=learning_rate / 100)
    if schedule != "cosine":
        raise invalid_argument("training.lr_schedule", schedule, "None, 'cosine' or 'plateau'")
    if isinstance(warmup_epochs, bool) or not isinstance(warmup_epochs, int) or not 0 <= warmup_epochs < epochs:
        raise invalid_argument("training.warmup_epochs", warmup_epochs, f"an integer in [0, epochs={epochs})")

    def rate(epoch, _current):
        if epoch < warmup_epochs:
            return learning_rate * (epoch + 1) / warmup_epochs
        progress = (epoch - warmup_epochs) / max(1, epochs - warmup_epochs)
        return learning_rate * 0.5 * (1.0 + math.cos(math.pi * progress))

    return keras.callbacks.LearningRateScheduler(rate)
