"""The client side of an export: load BASE_DIR/NAME[/VERSION] and call its signatures.

Needs only TensorFlow (not Keras or seqapps' layers): it runs what TF Serving runs.

>>> import tempfile
>>> import numpy as np
>>> from seqapps.export import export_model
>>> from seqapps.tasks import SequenceClassifier
>>> base = tempfile.mkdtemp()
>>> model = SequenceClassifier(num_classes=2, class_names=["no", "yes"],
...                            input_shape=(None, 3), units=4)
>>> _ = export_model(model, base_dir=base, name="toy", preprocessing={}, warmup_examples=0)
>>> exported = load_exported(f"{base}/toy")
>>> exported(np.zeros((1, 5, 3), "float32"))["labels"].shape
(1,)
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np
import tensorflow as tf

from seqapps.errors import ConfigError

__all__ = ["ExportedModel", "latest_version", "load_exported"]

SIGNATURE_RAW = "serving_default"
SIGNATURE_FEATURES = "features"
SIGNATURE_STREAM = "stream"


def integer_versions(folder: str | os.PathLike) -> list[int]:
    """The integer version folders under BASE_DIR/NAME, sorted (TF Serving's layout)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted(int(p.name) for p in folder.iterdir() if p.is_dir() and p.name.isdigit())


def latest_version(model_dir: str | os.PathLike) -> int | None:
    """The highest integer version under BASE_DIR/NAME (what TF Serving serves), or None."""
    versions = integer_versions(model_dir)
    return versions[-1] if versions else None


class ExportedModel:
    """A loaded export: call it with raw input, or use `features` / `stream`.

    Attributes:
        path: the version folder.
        preprocessing: assets/preprocessing.json (decoding settings, windowing).
        labels: class names (classification) or None.
        raw_input_name: "waveform", "frames" or "features".
        state_shape: (num_layers, units) of the stream state.
    """

    def __init__(self, path: Path):
        self.path = path
        self._loaded = _quiet_load(path)
        self.signatures = dict(self._loaded.signatures)
        assets = path / "assets"
        self.preprocessing = json.loads((assets / "preprocessing.json").read_text())
        self.model_card = json.loads((assets / "model_card.json").read_text())
        labels = assets / "labels.txt"
        self.labels = labels.read_text(encoding="utf-8").splitlines() if labels.is_file() else None
        self.raw_input_name = self.preprocessing["serving"]["raw_input"]
        shape = self.model_card["stream_state_shape"]  # null: the model cannot stream
        self.state_shape = None if shape is None else tuple(shape)

    def _run(self, signature: str, **inputs) -> dict[str, np.ndarray]:
        function = self.signatures[signature]
        specs = function.structured_input_signature[1]
        tensors = {key: np.asarray(value, specs[key].dtype.as_numpy_dtype) for key, value in inputs.items()}
        return {key: _to_numpy(value) for key, value in function(**tensors).items()}

    def __call__(self, raw) -> dict[str, np.ndarray]:
        """serving_default on raw input [batch, samples] or [batch, time, h, w, 3]."""
        return self._run(SIGNATURE_RAW, **{self.raw_input_name: raw})

    def features(self, features, mask=None) -> dict[str, np.ndarray]:
        features = np.asarray(features, np.float32)
        if mask is None:
            mask = np.ones(features.shape[:2], bool)
        return self._run(SIGNATURE_FEATURES, features=features, mask=mask)

    def initial_state(self, batch: int) -> np.ndarray:
        return np.zeros((batch, *self.state_shape), np.float32)

    def stream(self, features, state=None, reset=None) -> dict[str, np.ndarray]:
        if SIGNATURE_STREAM not in self.signatures:
            raise ConfigError("this export has no stream signature (a bidirectional model cannot stream)")
        features = np.asarray(features, np.float32)
        batch = features.shape[0]
        if state is None:
            state = self.initial_state(batch)
            reset = np.ones(batch, bool) if reset is None else reset
        if reset is None:
            reset = np.zeros(batch, bool)
        return self._run(SIGNATURE_STREAM, features=features, state=state, reset=reset)


def _quiet_load(path: Path):
    """tf.saved_model.load without the warning that the (training-only) custom BPTT
    gradient was not saved: serving never asks for a gradient."""
    logger = logging.getLogger("absl")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        return tf.saved_model.load(str(path))
    finally:
        logger.setLevel(level)


def _to_numpy(value):
    array = value.numpy()
    if array.dtype == object:  # tf.string -> str
        return np.vectorize(lambda b: b.decode("utf-8"), otypes=[object])(array)
    return array


def load_exported(path: str | os.PathLike) -> ExportedModel:
    """Load BASE_DIR/NAME/VERSION, or BASE_DIR/NAME (its latest version)."""
    path = Path(path)
    if not (path / "saved_model.pb").is_file():
        latest = latest_version(path)
        if latest is None:
            raise ConfigError(f"{path}: neither a SavedModel nor a folder of integer versions")
        path = path / str(latest)
    return ExportedModel(path)
