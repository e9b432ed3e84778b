"""Publishing for TF Serving: versioned, atomic SavedModels with the model's own signatures.

``export_model`` writes ``BASE_DIR/NAME/VERSION/`` (the layout TF Serving watches):

    saved_model.pb, variables/      the graph and the weights
    assets/labels.txt               class names, one a line (classification)
    assets/preprocessing.json       decoding settings + the in-graph window settings
    assets/model_card.json          task, signatures, data summary, metrics
    assets.extra/tf_serving_warmup_requests   PredictionLog records, replayed at load

The signatures (serving_default on raw input, features, stream) and the model's
description are the model's own (``SequenceModel.signatures`` / ``describe``, see
seqapps.serving); this module only publishes them.
TF Serving keeps no state: a stream client sends back the state it received (zeros and
reset=true to start a stream, reset=false to continue one).

A version is built in a hidden folder beside the versions (same file system) whose name
is not an integer (``seqapps.atomic.temporary_path``: ``.tmp-PID-RANDOM-export``), so TF
Serving ignores it, then renamed into place (``atomic.publish_new_dir``): a server never
sees half a version, and an existing version is never overwritten. Builds left by killed
exports are removed by the next export (``atomic.remove_stale_temporaries``). Clients load a
version with ``load_exported`` (seqapps.exported, re-exported here).

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
import os
import re
import shutil
from collections.abc import Mapping
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

# TEMP_PREFIX: the start of a build folder's name (tests look for leftovers with it).
from seqapps.atomic import TEMP_PREFIX, publish_new_dir, remove_stale_temporaries, temporary_path  # noqa: F401
from seqapps.errors import ConfigError, invalid_argument
from seqapps.exported import ExportedModel, latest_version, load_exported
from seqapps.serving import SIGNATURE_BUILDERS, preprocessing_kind, window_settings

__all__ = [
    "ExportedModel",
    "VersionExistsError",
    "export_model",
    "latest_version",
    "load_exported",
    "next_version",
]

# Served by every model; "stream_raw" too where the frontend streams (seqapps.serving).
SIGNATURES = tuple(name for name in SIGNATURE_BUILDERS if name != "stream_raw")
WARMUP_FILE = "tf_serving_warmup_requests"
# A version is built as seqapps.atomic's temporary ".tmp-PID-RANDOM-export" beside the versions.
BUILD_NAME = "export"


class VersionExistsError(ConfigError, FileExistsError):
    """The requested version folder already exists (versions are never overwritten)."""


# --------------------------------------------------------------------------- versions


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


def _publish(temp: Path, target: Path, *, explicit: bool) -> Path:
    """Publish temp as version folder `target`; if another exporter took that version
    first, take the next (automatic versions) or fail (explicit ones)."""
    while True:
        try:
            publish_new_dir(temp, target)
            return target
        except FileExistsError as err:
            if explicit:
                raise VersionExistsError(f"{target} already exists; versions are never overwritten") from err
            target = target.parent / str(next_version(target.parent))


# --------------------------------------------------------------------------- assets


def _write_warmup(path: Path, signatures: Mapping, *, name: str, count: int) -> None:
    """TF Serving's warmup file: a TFRecord of PredictionLog(PredictRequest), `count`
    requests per signature (batch sizes 1, 2, ...)."""
    from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2

    rng = np.random.default_rng(0)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tf.io.TFRecordWriter(str(path)) as writer:
        for signature_name, signature in signatures.items():
            for i in range(count):
                request = predict_pb2.PredictRequest(
                    model_spec=model_pb2.ModelSpec(name=name, signature_name=signature_name)
                )
                for key, value in signature.examples(i + 1, rng).items():
                    request.inputs[key].CopyFrom(tf.make_tensor_proto(value))
                log = prediction_log_pb2.PredictionLog(
                    predict_log=prediction_log_pb2.PredictLog(request=request)
                )
                writer.write(log.SerializeToString())


def _signature_summary(functions: Mapping) -> dict:
    def describe(specs):
        return {
            s.name: {"dtype": s.dtype.name, "shape": [-1 if d is None else d for d in s.shape.as_list()]}
            for s in specs
        }

    return {
        name: {
            "inputs": describe(function.structured_input_signature[0]),
            "outputs": describe(tf.TensorSpec(t.shape, t.dtype, name=key)
                                for key, t in function.structured_outputs.items()),
        }
        for name, function in functions.items()
    }


def _model_card(description: Mapping, functions: Mapping, *, name: str, version: int,
                preprocessing: dict, model_card: Mapping | None) -> dict:
    card = {
        "name": name,
        "version": version,
        **{key: description[key] for key in ("task", "kind", "model_class", "labels", "targets",
                                             "architecture")},
        "preprocessing": preprocessing,
        "signatures": _signature_summary(functions),
        "stream_state_shape": description["state_shape"],
        "stream_raw": description.get("stream_raw"),  # the raw stream's state layout, or None
        "exported_with": {"tensorflow": tf.__version__, "keras": keras.__version__},
    }
    card.update(dict(model_card or {}))
    return card


def _json(value) -> str:
    return json.dumps(value, indent=2, default=_builtin) + "\n"


def _builtin(value):
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


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
        model: a seqapps SequenceClassifier or SequenceRegressor (anything with
            ``signatures()`` and ``describe()``).
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
    name = _check_name(name)
    if version is not None and (
        isinstance(version, bool) or not isinstance(version, (int, np.integer)) or version < 1
    ):
        raise invalid_argument("version", version, "an integer >= 1")
    if isinstance(warmup_examples, bool) or not isinstance(warmup_examples, int) or warmup_examples < 0:
        raise invalid_argument("warmup_examples", warmup_examples, "a non-negative integer")
    if not (callable(getattr(model, "signatures", None)) and callable(getattr(model, "describe", None))):
        raise invalid_argument("model", type(model).__name__, "a seqapps SequenceClassifier or SequenceRegressor")
    preprocessing = dict(preprocessing or {})
    model_kind = model.describe()["kind"]
    preprocessing["kind"] = preprocessing_kind(preprocessing, model_kind)
    if preprocessing["kind"] != model_kind:
        raise invalid_argument("preprocessing['kind']", preprocessing["kind"],
                               f"{model_kind!r}, the kind of input the model takes")
    window, hop = window_settings(preprocessing) or (None, None)
    signatures = model.signatures(window=window, hop=hop)
    description = model.describe(window=window, hop=hop)

    model_dir = Path(base_dir) / name
    model_dir.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(model_dir, BUILD_NAME)  # the builds of killed exports
    chosen = int(version) if version is not None else next_version(model_dir)
    target = model_dir / str(chosen)
    if target.exists():
        raise VersionExistsError(f"{target} already exists; versions are never overwritten "
                                 f"(leave out the version to write {next_version(model_dir)})")

    # Same folder as the versions, so the final rename stays on one file system; the
    # name is hidden and not an integer, so TF Serving never loads it.
    temp = temporary_path(model_dir / BUILD_NAME)
    try:
        # Not keras.export.ExportArchive: it also attaches every endpoint to the saved
        # object, so each graph is serialised twice (2x saved_model.pb, 3x write time).
        # Only the variables are tracked, so the SavedModel loads without Keras or seqapps.
        module = tf.Module()
        # Random-number state of training-only augmentation (keras SeedGenerator) is left
        # out: inference never draws, so the served graph neither reads nor needs it.
        module.model_variables = [v for v in model.variables if not v.path.endswith("seed_generator_state")]
        functions = {key: signature.function.get_concrete_function() for key, signature in signatures.items()}
        # The custom BPTT gradient is for training; serving needs only the forward graph.
        tf.saved_model.save(module, str(temp), signatures=functions,
                            options=tf.saved_model.SaveOptions(experimental_custom_gradients=False))
        serving_preprocessing = {**preprocessing, "serving": {"raw_input": description["raw_input"],
                                                               "windowing": description["windowing"]}}
        card = _model_card(description, functions, name=name, version=chosen,
                           preprocessing=serving_preprocessing, model_card=model_card)
        files = {"preprocessing.json": _json(serving_preprocessing), "model_card.json": _json(card)}
        if description["labels"] is not None:
            files["labels.txt"] = "".join(f"{label}\n" for label in description["labels"])
        (temp / "assets").mkdir(exist_ok=True)
        for filename, text in files.items():
            (temp / "assets" / filename).write_text(text, encoding="utf-8")
        if warmup_examples:
            _write_warmup(temp / "assets.extra" / WARMUP_FILE, signatures, name=name, count=warmup_examples)
        return _publish(temp, target, explicit=version is not None)
    finally:
        if temp.exists():
            shutil.rmtree(temp, ignore_errors=True)


def __getattr__(name: str):
    # export_run publishes a run folder: it lives with the run folders (seqapps.runs.export)
    # and is imported on first use, since that module imports this one.
    if name == "export_run":
        from seqapps.runs.export import export_run

        return export_run
    raise AttributeError(f"module 'seqapps.export' has no attribute {name!r}")
