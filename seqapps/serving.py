"""The serving signatures and self-description of a task model.

``SequenceModel.signatures()`` and ``SequenceModel.describe()`` are built here (as
``keras.Model.export`` is built in ``keras.export``); ``seqapps.export`` only publishes
what they return. Signatures (``b`` = batch, ``t`` = time, float32 unless said):

    serving_default  raw input: audio "waveform" [b, samples]; video "frames" uint8
                     [b, t, h, w, 3]; models without a frontend "features" [b, t, F].
                     One prediction per clip: ``SequenceModel.predict_clip``.
    features         "features" [b, t, F] + "mask" bool [b, t]: one pass of the model.
    stream           "features" [b, t, F], "state" [b, layers, units], "reset" bool [b]
                     -> per-step outputs [b, t, ...] and the new "state".
    stream_raw       raw chunks of any length: audio "waveform" [b, samples] (video "frames"
                     uint8 [b, t, h, w, 3]), "reset" bool [b] and the state tensors of
                     describe()["stream_raw"] -> per-frame outputs, "frame_mask",
                     "frame_index", "frame_times" and the new state (seqapps.layers.streaming);
                     only for models whose frontend streams.

Outputs: classification "probabilities", "class_ids" (int64), "labels" (string);
regression "predictions".

Adding a signature: write a builder ``(model, *, window, hop) -> Signature | None``
(None when it does not apply to that model) and add it to ``SIGNATURE_BUILDERS``, or
pass ``builders=`` to ``SequenceModel.signatures``. A builder uses ``outputs(model, values)``
for the standard outputs and gives warm-up inputs through ``Signature.examples``.

>>> from seqapps.tasks import SequenceRegressor
>>> model = SequenceRegressor(input_shape=(None, 3), units=2)
>>> sorted(model.signatures(window=4, hop=2))
['features', 'serving_default', 'stream']
>>> model.describe()["state_shape"]
[1, 2]
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from seqapps.errors import invalid_argument

__all__ = [
    "RAW_INPUT_NAMES",
    "SIGNATURE_BUILDERS",
    "WINDOW_KEYS",
    "Signature",
    "describe",
    "features_signature",
    "label_names",
    "outputs",
    "preprocessing_kind",
    "raw_signature",
    "signatures",
    "stream_signature",
    "window_settings",
]

# Name of the raw input of serving_default, by input kind.
RAW_INPUT_NAMES = {"audio": "waveform", "video": "frames", "features": "features"}
# Window (items) and hop keys of a run's preprocessing config, by kind.
WINDOW_KEYS = {
    "audio": ("window_samples", "hop_samples"),
    "video": ("window_frames", "hop_frames"),
    "features": ("window_frames", "hop_frames"),
}
# Length of the examples given for warm-up requests: steps of features, and raw
# samples or frames when no window is set.
_EXAMPLE_STEPS = 4
_EXAMPLE_SAMPLES = 16000
_EXAMPLE_SIDE = 32


# --------------------------------------------------------------------------- settings


def preprocessing_kind(preprocessing: Mapping, default: str = "features") -> str:
    """The input kind a preprocessing config names ("audio", "video", "features").

    >>> preprocessing_kind({"kind": "audio"}), preprocessing_kind({})
    ('audio', 'features')
    """
    kind = preprocessing.get("kind", default)
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
    window_key, hop_key = WINDOW_KEYS[preprocessing_kind(preprocessing)]
    window = preprocessing.get(window_key)
    if window is None:
        return None
    hop = preprocessing.get(hop_key, window)
    for key, value in ((window_key, window), (hop_key, hop)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
            raise invalid_argument(f"preprocessing['{key}']", value, "a positive integer")
    return int(window), int(hop)


# --------------------------------------------------------------------------- signatures


@dataclass(frozen=True)
class Signature:
    """One serving endpoint.

    Attributes:
        function: a ``tf.function`` with an input signature (its TensorSpec names are
            the request's input names) returning a dict of named tensors.
        examples: ``examples(batch, rng) -> {input name: array}``, small valid inputs
            (TF Serving's warm-up requests, tests).
    """

    function: Callable
    examples: Callable[[int, np.random.Generator], dict]

    @property
    def input_specs(self) -> list:
        return list(self.function.input_signature)


def label_names(model) -> list[str]:
    """Class names of a classifier ("0", "1", ... when it has none)."""
    return list(model.class_names) if model.class_names else [str(i) for i in range(model.num_classes)]


def outputs(model, values) -> dict:
    """The named outputs of every signature: classification "probabilities", "class_ids"
    (int64) and "labels" (string); regression "predictions"."""
    values = tf.cast(values, tf.float32)
    if model.task != "classify":
        return {"predictions": values}
    class_ids = tf.argmax(values, axis=-1, output_type=tf.int64)
    return {"probabilities": values, "class_ids": class_ids,
            "labels": tf.gather(tf.constant(label_names(model)), class_ids)}


def _function(body, specs) -> Callable:
    return tf.function(body, input_signature=list(specs), autograph=False)


def _features(model, batch: int, rng) -> np.ndarray:
    return rng.standard_normal((batch, _EXAMPLE_STEPS, model.feature_size)).astype(np.float32)


def raw_spec(model) -> tf.TensorSpec:
    """The raw input of serving_default (what the model's frontend takes)."""
    kind = model.input_kind
    name = RAW_INPUT_NAMES[kind]
    if kind == "audio":
        return tf.TensorSpec([None, None], tf.float32, name=name)
    if kind == "video":
        _, height, width, channels = tuple(model.raw_input_shape)
        return tf.TensorSpec([None, None, height, width, channels], tf.uint8, name=name)
    return tf.TensorSpec([None, None, model.feature_size], tf.float32, name=name)


def raw_signature(model, *, window=None, hop=None) -> Signature:
    """serving_default: raw clips of any length >= 1 -> one prediction per clip."""
    spec = raw_spec(model)

    def serve(raw):
        return outputs(model, model.predict_clip(raw, window=window, hop=hop))

    def examples(batch, rng):
        features = _features(model, batch, rng)  # drawn first, as the other signatures do
        if model.input_kind == "audio":
            raw = (0.1 * rng.standard_normal((batch, window or _EXAMPLE_SAMPLES))).astype(np.float32)
        elif model.input_kind == "video":
            shape = [d if d is not None else _EXAMPLE_SIDE for d in spec.shape.as_list()[2:]]
            raw = rng.integers(0, 256, (batch, window or _EXAMPLE_STEPS, *shape), dtype=np.uint8)
        else:
            raw = features
        return {spec.name: raw}

    return Signature(_function(serve, [spec]), examples)


def features_signature(model, **_) -> Signature:
    """features: feature frames and their mask -> one pass of the model."""
    specs = [tf.TensorSpec([None, None, model.feature_size], tf.float32, name="features"),
             tf.TensorSpec([None, None], tf.bool, name="mask")]

    def serve(features, mask):
        return outputs(model, model({"features": features, "mask": mask}, training=False))

    def examples(batch, rng):
        return {"features": _features(model, batch, rng), "mask": np.ones((batch, _EXAMPLE_STEPS), bool)}

    return Signature(_function(serve, specs), examples)


def stream_signature(model, **_) -> Signature | None:
    """stream: one chunk of feature frames with the state the client carries (None for a
    model that cannot stream: a bidirectional one needs the future)."""
    state_shape = model.describe()["state_shape"]
    if state_shape is None:
        return None
    specs = [tf.TensorSpec([None, None, model.feature_size], tf.float32, name="features"),
             tf.TensorSpec([None, *state_shape], tf.float32, name="state"),
             tf.TensorSpec([None], tf.bool, name="reset")]

    def serve(features, state, reset):
        per_step, new_state = model.stream(features, state, reset)
        return {**outputs(model, per_step), "state": new_state}

    def examples(batch, rng):
        return {"features": _features(model, batch, rng),
                "state": np.zeros((batch, *state_shape), np.float32),
                "reset": np.ones((batch,), bool)}

    return Signature(_function(serve, specs), examples)


def _raw_stream(model):
    """The model's raw streaming step (seqapps.layers.streaming), or None when its
    frontend cannot stream (no frontend, reflect padding, a layer it does not know)."""
    from seqapps.errors import ConfigError
    from seqapps.layers.streaming import raw_stream

    if model.frontend is None:
        return None
    try:
        return raw_stream(model)
    except ConfigError:
        return None


def stream_raw_signature(model, **_) -> Signature | None:
    """stream_raw: raw waveform (or frame) chunks of any length with the complete state
    (seqapps.layers.streaming) -> per-frame outputs, frame times and the new state."""
    stream = _raw_stream(model)
    if stream is None:
        return None
    step = stream.function.function

    def serve(*inputs):
        result = dict(step(*inputs))
        return {**result, **outputs(model, result[stream.output_name])}

    def examples(batch, rng):
        return stream.example_inputs(batch, seed=int(rng.integers(2**31)))

    return Signature(_function(serve, stream.input_signature().values()), examples)


# The signatures every task model serves, in the order of the warm-up file.
SIGNATURE_BUILDERS: dict[str, Callable] = {
    "serving_default": raw_signature,
    "features": features_signature,
    "stream": stream_signature,
    "stream_raw": stream_raw_signature,
}


def signatures(model, *, window=None, hop=None, builders=None) -> dict[str, Signature]:
    """{name: Signature} of `model` (see the module docstring)."""
    out = {}
    for name, builder in (SIGNATURE_BUILDERS if builders is None else builders).items():
        signature = builder(model, window=window, hop=hop)
        if signature is not None:
            out[name] = signature
    return out


def describe(model, *, window=None, hop=None) -> dict:
    """What a client needs to know about `model` (the model card's core)."""
    labels = label_names(model) if model.task == "classify" else None
    frontend = model.frontend
    windowing = None
    if window is not None and model.pooling != "none":
        windowing = {"window": window, "hop": hop,
                     "unit": "samples" if model.input_kind == "audio" else "frames",
                     "pad_end": True, "aggregation": "mean"}
    return {
        "task": model.task,
        "kind": model.input_kind,
        "model_class": type(model).__name__,
        "labels": labels,
        "targets": getattr(model, "target_names", None),
        "architecture": {
            "frontend": None if frontend is None else type(frontend).__name__,
            "feature_size": model.feature_size,
            "num_layers": model.num_layers,
            "units": model.units,
            "pooling": model.pooling,
            "parameters": int(model.count_params()),
        },
        "state_shape": [model.num_layers, model.units] if getattr(model, "can_stream", True) else None,
        "raw_input": RAW_INPUT_NAMES[model.input_kind],
        "windowing": windowing,
        # the state layout of stream_raw (names, shapes, dtypes, start values), or None
        "stream_raw": None if (stream := _raw_stream(model)) is None else stream.describe(),
    }
