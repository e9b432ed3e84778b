"""Export for TF Serving: versioned, atomic SavedModels with raw-input and streaming signatures.

``export_model`` writes ``BASE_DIR/NAME/VERSION/`` (the layout TF Serving watches):

    saved_model.pb, variables/      the graph and the weights
    assets/labels.txt               class names, one a line (classification)
    assets/preprocessing.json       decoding settings + the in-graph window settings
    assets/model_card.json          task, signatures, data summary, metrics
    assets.extra/tf_serving_warmup_requests   PredictionLog records, replayed at load

Signatures (all float32 unless said otherwise; ``b`` = batch, ``t`` = time):

    serving_default  raw input: audio "waveform" [b, samples]; video "frames" uint8
                     [b, t, h, w, 3]; models without a frontend "features" [b, t, F].
                     Inputs longer than the training window are cut into windows in the
                     graph (window/hop of preprocessing.json, padded tail masked) and the
                     window predictions averaged per clip, so any length >= 1 works.
    features         "features" [b, t, F] + "mask" bool [b, t]: one pass of the model.
    stream           "features" [b, t, F], "state" [b, layers, units], "reset" bool [b]
                     -> per-step outputs [b, t, ...] and the new "state". TF Serving keeps
                     no state: the client sends back the state it received (zeros and
                     reset=true to start a stream, reset=false to continue one).

Outputs: classification "probabilities", "class_ids" (int64), "labels" (string);
regression "predictions".

A version is built in a hidden folder beside the versions (same file system) whose name
is not an integer, so TF Serving ignores it, then renamed into place: a server never
sees half a version, and an existing version is never overwritten.

>>> import tempfile
>>> from seqapps.tasks import SequenceClassifier
>>> model = SequenceClassifier(num_classes=2, input_shape=(None, 3), units=4)
>>> path = export_model(model, base_dir=tempfile.mkdtemp(), name="toy",
...                     preprocessing={"kind": "features"}, warmup_examples=0)
>>> path.name
'1'
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import tempfile
import uuid
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from seqapps.atomic import process_alive
from seqapps.errors import ConfigError, invalid_argument

__all__ = [
    "ExportedModel",
    "VersionExistsError",
    "export_model",
    "export_run",
    "latest_version",
    "load_exported",
    "next_version",
    "window_settings",
]

SIGNATURE_RAW = "serving_default"
SIGNATURE_FEATURES = "features"
SIGNATURE_STREAM = "stream"
SIGNATURES = (SIGNATURE_RAW, SIGNATURE_FEATURES, SIGNATURE_STREAM)
# Name of the raw input of serving_default, by preprocessing kind.
RAW_INPUT_NAMES = {"audio": "waveform", "video": "frames", "features": "features"}
# Window (items) and hop keys of the preprocessing config, by kind.
WINDOW_KEYS = {
    "audio": ("window_samples", "hop_samples"),
    "video": ("window_frames", "hop_frames"),
    "features": ("window_frames", "hop_frames"),
}
WARMUP_FILE = "tf_serving_warmup_requests"
# Temporary build folders start with this; TF Serving only loads integer folder names.
TEMP_PREFIX = ".export-tmp-"


class VersionExistsError(ConfigError, FileExistsError):
    """The requested version folder already exists (versions are never overwritten)."""


# --------------------------------------------------------------------------- settings


def _kind(preprocessing: Mapping) -> str:
    kind = preprocessing.get("kind", "features")
    if kind not in RAW_INPUT_NAMES:
        raise invalid_argument("preprocessing['kind']", kind, f"one of {tuple(RAW_INPUT_NAMES)}")
    return kind


def window_settings(preprocessing: Mapping) -> tuple[int, int] | None:
    """(window, hop) in raw items (samples or frames) for serving_default, or None.

    >>> window_settings({"kind": "audio", "window_samples": 16000, "hop_samples": 8000})
    (16000, 8000)
    >>> window_settings({"kind": "features"}) is None
    True
    """
    window_key, hop_key = WINDOW_KEYS[_kind(preprocessing)]
    window = preprocessing.get(window_key)
    if window is None:
        return None
    hop = preprocessing.get(hop_key, window)
    for key, value in ((window_key, window), (hop_key, hop)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
            raise invalid_argument(f"preprocessing['{key}']", value, "a positive integer")
    return int(window), int(hop)


def _is_classifier(model) -> bool:
    return hasattr(model, "num_classes")


def _label_names(model) -> list[str]:
    names = getattr(model, "class_names", None)
    return list(names) if names else [str(i) for i in range(model.num_classes)]


# --------------------------------------------------------------------------- graph


def _count_windows(n, window: int, hop: int):
    """Windows of pipelines.windows.frame_windows(pad_end=True): they start every `hop`
    items while they start inside the input and until one reaches its end; at least one
    (an empty input gives one fully masked window)."""
    import tensorflow as tf

    reach_end = 1 + (tf.maximum(n - window, 0) + hop - 1) // hop
    start_inside = (n + hop - 1) // hop
    return tf.maximum(tf.minimum(start_inside, reach_end), 1)


def _window_raw(raw, window: int, hop: int):
    """[b, n, ...] -> windows [b * count, window, ...], mask [b * count, window], count."""
    import tensorflow as tf

    n = tf.shape(raw)[1]
    count = _count_windows(n, window, hop)
    needed = (count - 1) * hop + window  # >= n by construction of count
    rank = raw.shape.rank
    paddings = [[0, 0], [0, needed - n]] + [[0, 0]] * (rank - 2)
    padded = tf.pad(raw, paddings)
    windows = tf.signal.frame(padded, window, hop, pad_end=False, axis=1)  # [b, count, window, ...]
    flat_shape = tf.concat([[-1, window], tf.shape(raw)[2:]], axis=0)
    windows = tf.reshape(windows, flat_shape)
    windows.set_shape([None, window, *raw.shape[2:]])
    positions = tf.range(count)[:, tf.newaxis] * hop + tf.range(window)[tf.newaxis, :]
    mask = tf.tile(positions < n, [tf.shape(raw)[0], 1])
    return windows, mask, count


def _raw_spec(model, kind: str):
    import tensorflow as tf

    name = RAW_INPUT_NAMES[kind]
    if kind == "audio":
        return tf.TensorSpec([None, None], tf.float32, name=name)
    if kind == "video":
        shape = tuple(model.raw_input_shape)
        height, width = (shape[1], shape[2]) if len(shape) == 4 else (None, None)
        channels = shape[-1] if len(shape) == 4 else 3
        return tf.TensorSpec([None, None, height, width, channels], tf.uint8, name=name)
    return tf.TensorSpec([None, None, model.feature_size], tf.float32, name=name)


class ServingModule:
    """The three signatures of a SequenceClassifier / SequenceRegressor as tf.functions.

    Only the model's variables are tracked (as keras.export does), so the SavedModel
    holds a plain TF graph and loads without Keras or seqapps.
    """

    def __init__(self, model, preprocessing: Mapping):
        import tensorflow as tf

        self.model = model
        self.kind = _kind(preprocessing)
        self.windows = window_settings(preprocessing)
        self.classifier = _is_classifier(model)
        if self.classifier:
            self.labels = tf.constant(_label_names(model))
        # Only the variables are tracked; the functions are saved as signatures only
        # (attached to the module they would be saved twice).
        self.module = tf.Module()
        # Random-number state of training-only augmentation (keras SeedGenerator) is left
        # out: inference never draws, so the served graph neither reads nor needs it.
        self.module.model_variables = [v for v in model.variables if not v.path.endswith("seed_generator_state")]
        f = model.feature_size
        raw_spec = _raw_spec(model, self.kind)
        features = tf.TensorSpec([None, None, f], tf.float32, name="features")
        self.serve_raw = tf.function(self._serve_raw, input_signature=[raw_spec], autograph=False)
        self.serve_features = tf.function(
            self._serve_features,
            input_signature=[features, tf.TensorSpec([None, None], tf.bool, name="mask")],
            autograph=False,
        )
        # A bidirectional model cannot stream (its backward direction needs the future):
        # it is exported without the stream signature (model_card "stream_state_shape": null).
        self.can_stream = getattr(model, "can_stream", True)
        self.serve_stream = None if not self.can_stream else tf.function(
            self._serve_stream,
            input_signature=[
                features,
                tf.TensorSpec([None, model.num_layers, model.units], tf.float32, name="state"),
                tf.TensorSpec([None], tf.bool, name="reset"),
            ],
            autograph=False,
        )
        self.raw_input_name = raw_spec.name

    # ------------------------------------------------------------ outputs
    def _outputs(self, values):
        import tensorflow as tf

        values = tf.cast(values, tf.float32)
        if not self.classifier:
            return {"predictions": values}
        class_ids = tf.argmax(values, axis=-1, output_type=tf.int64)
        return {
            "probabilities": values,
            "class_ids": class_ids,
            "labels": tf.gather(self.labels, class_ids),
        }

    def _predict(self, inputs, mask):
        return self.model({"inputs": inputs, "mask": mask}, training=False)

    # ------------------------------------------------------------ signatures
    def _serve_raw(self, raw):
        import tensorflow as tf

        per_step = getattr(self.model, "pooling", "mean") == "none"
        if self.windows is None or per_step:
            # Per-step models give one output per frame of the whole clip (the recurrence
            # runs over any length); window averaging would mix different steps.
            return self._outputs(self.model({"inputs": raw}, training=False))
        window, hop = self.windows
        if self.kind == "video" and self.model.frontend is not None:
            # As in training (pipelines.frame_cache): frame features over the whole clip,
            # then windows of features; FrameMotion needs the frame before each window.
            features = self.model.frontend(raw, training=False)
            windows, mask, count = _window_raw(features, window, hop)
            values = self.model({"features": windows, "mask": mask}, training=False)
        else:
            windows, mask, count = _window_raw(raw, window, hop)
            values = self._predict(windows, mask)
        values = tf.cast(values, tf.float32)
        values = tf.reshape(values, tf.concat([[-1, count], tf.shape(values)[1:]], axis=0))
        return self._outputs(tf.reduce_mean(values, axis=1))

    def _serve_features(self, features, mask):
        return self._outputs(self.model({"features": features, "mask": mask}, training=False))

    def _serve_stream(self, features, state, reset):
        outputs, new_state = self.model.stream(features, state, reset)
        result = self._outputs(outputs)
        result["state"] = new_state
        return result

    def signatures(self) -> dict:
        signatures = {
            SIGNATURE_RAW: self.serve_raw.get_concrete_function(),
            SIGNATURE_FEATURES: self.serve_features.get_concrete_function(),
        }
        if self.can_stream:
            signatures[SIGNATURE_STREAM] = self.serve_stream.get_concrete_function()
        return signatures


# --------------------------------------------------------------------------- versions


def _integer_versions(folder: Path) -> list[int]:
    if not folder.is_dir():
        return []
    return sorted(int(p.name) for p in folder.iterdir() if p.is_dir() and p.name.isdigit())


def latest_version(model_dir: str | os.PathLike) -> int | None:
    """The highest integer version under BASE_DIR/NAME (what TF Serving serves), or None."""
    versions = _integer_versions(Path(model_dir))
    return versions[-1] if versions else None


def next_version(model_dir: str | os.PathLike) -> int:
    """1 + the highest existing version (1 for a new model name).

    >>> import tempfile
    >>> next_version(tempfile.mkdtemp())
    1
    """
    latest = latest_version(model_dir)
    return 1 if latest is None else latest + 1


def _check_name(name) -> str:
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name):
        raise invalid_argument("name", name, "a folder name of letters, digits, '_', '.', '-'")
    return name


def _remove_stale_temps(model_dir: Path) -> None:
    """Drop build folders left by killed exports (their process is gone)."""
    for path in model_dir.glob(f"{TEMP_PREFIX}*"):
        match = re.match(rf"{re.escape(TEMP_PREFIX)}(\d+)-", path.name)
        if match and not process_alive(int(match.group(1))):
            shutil.rmtree(path, ignore_errors=True)


def _fsync_tree(folder: Path) -> None:
    """Flush every file and folder to disk, so the rename publishes complete files."""
    for root, _, files in os.walk(folder):
        for name in files:
            with open(os.path.join(root, name), "rb") as handle:
                os.fsync(handle.fileno())
        descriptor = os.open(root, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)


# --------------------------------------------------------------------------- assets


def _example_inputs(module: ServingModule, signature: str, batch: int, rng) -> dict[str, np.ndarray]:
    """Small valid inputs of one signature (for warmup requests and tests)."""
    model = module.model
    steps = 4
    features = rng.standard_normal((batch, steps, model.feature_size)).astype(np.float32)
    if signature == SIGNATURE_FEATURES:
        return {"features": features, "mask": np.ones((batch, steps), bool)}
    if signature == SIGNATURE_STREAM:
        return {
            "features": features,
            "state": np.zeros((batch, model.num_layers, model.units), np.float32),
            "reset": np.ones((batch,), bool),
        }
    spec = module.serve_raw.input_signature[0]
    if module.kind == "audio":
        samples = module.windows[0] if module.windows else 16000
        raw = (0.1 * rng.standard_normal((batch, samples))).astype(np.float32)
    elif module.kind == "video":
        shape = [d if d is not None else 32 for d in spec.shape.as_list()[2:]]
        frames = module.windows[0] if module.windows else steps
        raw = rng.integers(0, 256, (batch, frames, *shape), dtype=np.uint8)
    else:
        raw = features
    return {spec.name: raw}


def _write_warmup(path: Path, module: ServingModule, *, name: str, count: int) -> None:
    """TF Serving's warmup file: a TFRecord of PredictionLog(PredictRequest), `count`
    requests per signature (batch sizes 1, 2, ...)."""
    import tensorflow as tf
    from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2

    rng = np.random.default_rng(0)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tf.io.TFRecordWriter(str(path)) as writer:
        for signature in module.signatures():
            for i in range(count):
                request = predict_pb2.PredictRequest(
                    model_spec=model_pb2.ModelSpec(name=name, signature_name=signature)
                )
                for key, value in _example_inputs(module, signature, i + 1, rng).items():
                    request.inputs[key].CopyFrom(tf.make_tensor_proto(value))
                log = prediction_log_pb2.PredictionLog(
                    predict_log=prediction_log_pb2.PredictLog(request=request)
                )
                writer.write(log.SerializeToString())


def _signature_summary(module: ServingModule) -> dict:
    import tensorflow as tf

    def describe(specs):
        return {
            s.name: {"dtype": s.dtype.name, "shape": [-1 if d is None else d for d in s.shape.as_list()]}
            for s in specs
        }

    summary = {}
    for signature, function in module.signatures().items():
        summary[signature] = {
            "inputs": describe(function.structured_input_signature[0]),
            "outputs": describe(
                tf.TensorSpec(t.shape, t.dtype, name=key)
                for key, t in function.structured_outputs.items()
            ),
        }
    return summary


def _serving_preprocessing(module: ServingModule, preprocessing: Mapping) -> dict:
    serving = {
        "raw_input": module.raw_input_name,
        "windowing": None,
    }
    if module.windows is not None and getattr(module.model, "pooling", "mean") != "none":
        window, hop = module.windows
        serving["windowing"] = {
            "window": window,
            "hop": hop,
            "unit": "samples" if module.kind == "audio" else "frames",
            "pad_end": True,
            "aggregation": "mean",
        }
    return {**dict(preprocessing), "serving": serving}


def _model_card(module: ServingModule, *, name: str, version: int, preprocessing: dict,
                model_card: Mapping | None) -> dict:
    import keras
    import tensorflow as tf

    model = module.model
    card = {
        "name": name,
        "version": version,
        "task": "classify" if module.classifier else "regress",
        "kind": module.kind,
        "model_class": type(model).__name__,
        "labels": _label_names(model) if module.classifier else None,
        "targets": getattr(model, "target_names", None),
        "architecture": {
            "frontend": None if model.frontend is None else type(model.frontend).__name__,
            "feature_size": model.feature_size,
            "num_layers": model.num_layers,
            "units": model.units,
            "pooling": getattr(model, "pooling", None),
            "parameters": int(model.count_params()),
        },
        "preprocessing": preprocessing,
        "signatures": _signature_summary(module),
        "stream_state_shape": [model.num_layers, model.units] if module.can_stream else None,
        "exported_with": {"tensorflow": tf.__version__, "keras": keras.__version__},
    }
    card.update(dict(model_card or {}))
    return card


def _staged_assets(folder: Path, files: Mapping[str, str]) -> list:
    import tensorflow as tf

    assets = []
    for filename, text in files.items():
        path = folder / filename
        path.write_text(text, encoding="utf-8")
        assets.append(tf.saved_model.Asset(str(path)))
    return assets


# --------------------------------------------------------------------------- export


def export_model(
    model,
    *,
    base_dir: str | os.PathLike,
    name: str,
    preprocessing: Mapping,
    version: int | None = None,
    model_card: Mapping | None = None,
    warmup_examples: int = 3,
) -> Path:
    """Write `model` as the SavedModel BASE_DIR/NAME/VERSION for TF Serving.

    Args:
        model: a seqapps SequenceClassifier or SequenceRegressor.
        base_dir: TF Serving's base folder (e.g. "saved_models").
        name: the model name (the folder under base_dir, the name in REST URLs).
        preprocessing: the run's decoding settings, e.g. {"kind": "audio",
            "sample_rate": 16000, "window_samples": 16000, "hop_samples": 8000}; its
            window/hop drive the in-graph windowing of serving_default.
        version: an integer >= 1; default the next one. An existing version is an error.
        model_card: extra entries of assets/model_card.json (data summary, metrics).
        warmup_examples: warmup requests per signature (0: no warmup file).

    Returns:
        The version folder.

    Example:
    >>> import tempfile
    >>> from seqapps.tasks import SequenceRegressor
    >>> base = tempfile.mkdtemp()
    >>> model = SequenceRegressor(input_shape=(None, 2), units=3)
    >>> [export_model(model, base_dir=base, name="r", preprocessing={}, warmup_examples=0).name
    ...  for _ in range(2)]
    ['1', '2']
    """
    import tensorflow as tf

    name = _check_name(name)
    if version is not None and (
        isinstance(version, bool) or not isinstance(version, (int, np.integer)) or version < 1
    ):
        raise invalid_argument("version", version, "an integer >= 1")
    if isinstance(warmup_examples, bool) or not isinstance(warmup_examples, int) or warmup_examples < 0:
        raise invalid_argument("warmup_examples", warmup_examples, "a non-negative integer")
    for attribute in ("stream", "feature_size", "num_layers", "units"):
        if not hasattr(model, attribute):
            raise invalid_argument("model", type(model).__name__, "a seqapps SequenceClassifier or SequenceRegressor")
    preprocessing = dict(preprocessing or {})
    preprocessing.setdefault("kind", "features" if model.frontend is None else "audio")
    module = ServingModule(model, preprocessing)

    model_dir = Path(base_dir) / name
    model_dir.mkdir(parents=True, exist_ok=True)
    _remove_stale_temps(model_dir)
    chosen = int(version) if version is not None else next_version(model_dir)
    target = model_dir / str(chosen)
    if target.exists():
        raise VersionExistsError(f"{target} already exists; versions are never overwritten "
                                 f"(leave out the version to write {next_version(model_dir)})")

    # Same folder as the versions, so the final rename stays on one file system.
    temp = model_dir / f"{TEMP_PREFIX}{os.getpid()}-{uuid.uuid4().hex[:8]}"
    staging = Path(tempfile.mkdtemp(prefix="seqapps-assets-"))
    temp.mkdir()
    try:
        serving_preprocessing = _serving_preprocessing(module, preprocessing)
        card = _model_card(module, name=name, version=chosen, preprocessing=serving_preprocessing,
                           model_card=model_card)
        files = {
            "preprocessing.json": json.dumps(serving_preprocessing, indent=2, default=_builtin) + "\n",
            "model_card.json": json.dumps(card, indent=2, default=_builtin) + "\n",
        }
        if module.classifier:
            files["labels.txt"] = "".join(f"{label}\n" for label in _label_names(model))
        module.module.assets = _staged_assets(staging, files)
        tf.saved_model.save(
            module.module,
            str(temp),
            signatures=module.signatures(),
            # The custom BPTT gradient is for training; serving needs only the forward graph.
            options=tf.saved_model.SaveOptions(experimental_custom_gradients=False),
        )
        if warmup_examples:
            _write_warmup(temp / "assets.extra" / WARMUP_FILE, module, name=name, count=warmup_examples)
        _fsync_tree(temp)
        return _publish(temp, target, explicit=version is not None)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        if temp.exists():
            shutil.rmtree(temp, ignore_errors=True)


def _publish(temp: Path, target: Path, *, explicit: bool) -> Path:
    """Rename temp -> target; if another exporter took the version first, take the next
    (automatic versions) or fail (explicit ones). rename refuses a non-empty target."""
    while True:
        try:
            if target.exists():
                raise FileExistsError(target)
            os.rename(temp, target)
            break
        except OSError as err:
            if not target.exists():
                raise
            if explicit:
                raise VersionExistsError(f"{target} already exists; versions are never overwritten") from err
            target = target.parent / str(next_version(target.parent))
    descriptor = os.open(target.parent, os.O_RDONLY)
    try:
        os.fsync(descriptor)  # make the rename itself durable
    finally:
        os.close(descriptor)
    return target


def _builtin(value):
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def export_run(
    run_dir: str | os.PathLike,
    *,
    base_dir: str | os.PathLike = "saved_models",
    name: str,
    version: int | None = None,
    warmup_examples: int = 3,
) -> Path:
    """Export the model of a `seqapps train` run folder (model.keras, config.json,
    labels.json, metrics.json) to BASE_DIR/NAME/VERSION.

    Example (shell): ``seqapps export runs/kws --name kws`` calls
    ``export_run("runs/kws", name="kws")`` and prints the returned folder.
    """
    import keras

    import seqapps.tasks  # noqa: F401  (registers the classes model.keras names)

    run_dir = Path(run_dir)
    model_path = run_dir / "model.keras"
    if not model_path.is_file():
        raise ConfigError(f"{run_dir}: no model.keras (is this a `seqapps train` run folder?)")
    config = _read_json(run_dir / "config.json", required=True)
    if not isinstance(config, dict):
        raise ConfigError(f"{run_dir / 'config.json'}: expected a JSON object")
    model = keras.models.load_model(model_path, compile=False)
    labels = _read_json(run_dir / "labels.json", required=False)
    if labels is not None and _is_classifier(model):
        if len(labels) != model.num_classes:
            raise ConfigError(f"{run_dir / 'labels.json'}: {len(labels)} labels for a model of "
                              f"{model.num_classes} classes")
        model.class_names = [str(label) for label in labels]
    preprocessing = dict(config.get("preprocessing") or {})
    preprocessing.setdefault("kind", config.get("kind", "features"))
    card = {
        "run": str(run_dir.resolve()),
        "data": config.get("data"),
        "training_config": {key: value for key, value in config.items() if key != "preprocessing"},
        "metrics": _read_json(run_dir / "metrics.json", required=False),
    }
    return export_model(model, base_dir=base_dir, name=name, preprocessing=preprocessing,
                        version=version, model_card=card, warmup_examples=warmup_examples)


def _read_json(path: Path, *, required: bool):
    if not path.is_file():
        if required:
            raise ConfigError(f"{path} is missing")
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ConfigError(f"{path}: not valid JSON ({err})") from err


# --------------------------------------------------------------------------- loading


class ExportedModel:
    """A loaded export: call it with raw input, or use `features` / `stream`.

    Needs only TensorFlow (not Keras or seqapps' layers): what TF Serving runs.

    Attributes:
        path: the version folder.
        preprocessing: assets/preprocessing.json (decoding settings, windowing).
        labels: class names (classification) or None.
        raw_input_name: "waveform", "frames" or "features".
        state_shape: (num_layers, units) of the stream state.
    """

    def __init__(self, path: Path):
        import tensorflow as tf

        self.path = path
        self._loaded = _quiet_load(tf, path)
        self.signatures = dict(self._loaded.signatures)
        assets = path / "assets"
        self.preprocessing = json.loads((assets / "preprocessing.json").read_text())
        self.model_card = json.loads((assets / "model_card.json").read_text())
        labels = assets / "labels.txt"
        self.labels = labels.read_text(encoding="utf-8").splitlines() if labels.is_file() else None
        self.raw_input_name = self.preprocessing["serving"]["raw_input"]
        shape = self.model_card["stream_state_shape"]
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


def _quiet_load(tf, path: Path):
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
    """Load BASE_DIR/NAME/VERSION, or BASE_DIR/NAME (its latest version).

    Example:
    >>> import tempfile
    >>> from seqapps.tasks import SequenceClassifier
    >>> base = tempfile.mkdtemp()
    >>> model = SequenceClassifier(num_classes=2, class_names=["no", "yes"],
    ...                            input_shape=(None, 3), units=4)
    >>> _ = export_model(model, base_dir=base, name="toy", preprocessing={}, warmup_examples=0)
    >>> exported = load_exported(f"{base}/toy")
    >>> exported(np.zeros((1, 5, 3), "float32"))["labels"].shape
    (1,)
    """
    path = Path(path)
    if not (path / "saved_model.pb").is_file():
        latest = latest_version(path)
        if latest is None:
            raise ConfigError(f"{path}: neither a SavedModel nor a folder of integer versions")
        path = path / str(latest)
    return ExportedModel(path)
