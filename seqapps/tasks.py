"""Ready-made recurrent models: frontend -> normalisation -> Recurrent x N -> head.

As KerasHub's tasks (backbone + preprocessor + head), a task is one Keras model with
compile defaults, saved and loaded as .keras. The frontend turns raw input (waveforms,
frames) into feature frames inside the graph, so the same model serves raw input.

Inputs are a dict:
  {"inputs": raw [batch, ...], "mask": [batch, samples|frames] bool (optional)}  raw input
  {"features": [batch, time, features], "mask": [batch, time] (optional)}       precomputed
or a plain tensor (raw input, no mask).

>>> import numpy as np
>>> model = SequenceClassifier(num_classes=3, input_shape=(None, 8), units=16)
>>> model.compile()
>>> model.predict({"features": np.zeros((2, 5, 8), "float32")}, verbose=0).shape
(2, 3)
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from seqapps import recurrent_stack, serving
from seqapps.errors import ConfigError, invalid_argument
from seqapps.heads import ClassificationHead, RegressionHead
from seqapps.layers import windows as windowing
from seqapps.layers.normalization import FeatureNormalization


class SequenceModel(keras.Model):
    """Shared body of SequenceClassifier and SequenceRegressor (not used directly)."""

    def __init__(
        self,
        *,
        input_shape,
        frontend: keras.layers.Layer | dict | None = None,
        units: int = 128,
        num_layers: int = 1,
        activation: str = "tanh",
        recurrent_initializer="orthogonal",
        dropout: float = 0.1,
        truncate_bptt: int | None = None,
        normalize_preactivation: bool = False,
        pooling: str = "mean",
        hidden_units: int = 0,
        augmentation: keras.layers.Layer | dict | None = None,
        recurrent_layer=None,
        bidirectional: bool = False,
        merge_mode: str = "concat",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.recurrent_layer = recurrent_stack.resolve_factory(recurrent_layer)
        if not isinstance(num_layers, int) or num_layers < 1:
            raise invalid_argument("num_layers", num_layers, "an integer >= 1")
        if isinstance(frontend, dict):
            frontend = keras.saving.deserialize_keras_object(frontend)
        self.frontend = frontend
        if isinstance(augmentation, dict):
            augmentation = keras.saving.deserialize_keras_object(augmentation)
        # Training-only feature augmentation after normalisation (e.g. SpecAugment); it
        # must be the identity at inference, so serving and streaming never see it.
        self.augmentation = augmentation
        self.raw_input_shape = tuple(input_shape)
        self.units = units
        self.num_layers = num_layers
        self.activation = activation
        self.recurrent_initializer = recurrent_initializer
        self.dropout = dropout
        self.truncate_bptt = truncate_bptt
        if not isinstance(normalize_preactivation, bool):
            raise invalid_argument("normalize_preactivation", normalize_preactivation, "True or False")
        self.normalize_preactivation = normalize_preactivation
        self.pooling = pooling
        self.hidden_units = hidden_units
        self.normalization = FeatureNormalization(name="normalization")
        stack = dict(num_layers=num_layers, activation=activation, recurrent_initializer=recurrent_initializer,
                     options=self._recurrent_options())
        self.recurrent_layers = recurrent_stack.make_layers(self.recurrent_layer, units, **stack)
        self.between = [keras.layers.Dropout(dropout) for _ in range(num_layers)] if dropout else []
        recurrent_stack.check_bidirectional(bidirectional, merge_mode)
        self.bidirectional, self.merge_mode = bidirectional, merge_mode
        # The same factory reads each level backwards too (seqapps.recurrent_stack).
        self.backward_layers = recurrent_stack.make_layers(
            self.recurrent_layer, units, backward=True, **stack) if bidirectional else []
        self.head = self._make_head()

    # The model is built at construction from `input_shape`, so a loaded .keras file finds
    # every weight in place whatever input structure (raw or features) it was fitted on.
    def _build_all(self):
        shape = (None, *self.raw_input_shape)
        if self.frontend is not None:
            if not self.frontend.built:
                self.frontend.build(shape)
            shape = self.frontend.compute_output_shape(shape)
        if len(shape) != 3 or shape[-1] is None:
            raise invalid_argument(
                "input_shape", self.raw_input_shape,
                "a shape whose features (after the frontend) are [time, features] with features known",
            )
        self.feature_size = int(shape[-1])
        self.normalization.build((None, None, self.feature_size))
        width = self.feature_size
        for i, layer in enumerate(self.recurrent_layers):
            layer.build((None, None, width))
            if self.bidirectional:
                self.backward_layers[i].build((None, None, width))
            width = self.layer_width
        self.head.build((None, None, width))
        self.built = True

    def _make_head(self):
        raise TypeError(
            "SequenceModel is the shared body of SequenceClassifier and SequenceRegressor; "
            "build one of those"
        )

    # ------------------------------------------------------------------ inputs
    def features_and_mask(self, inputs, training=None):
        """Feature frames [batch, time, F] and frame mask [batch, time] (or None)."""
        if isinstance(inputs, dict):
            mask = inputs.get("mask")
            if "features" in inputs:
                return tf.convert_to_tensor(inputs["features"]), mask
            raw = inputs["inputs"]
        else:
            raw, mask = inputs, None
        if self.frontend is None:
            return tf.convert_to_tensor(raw), mask
        if hasattr(self.frontend, "features_and_mask"):
            # e.g. SpeechFrontend: its placement and CMVN need the sample mask, it may make
            # a frame mask where none was given ("trim"), and in training the mask must
            # follow the augmented waveform: both come from one pass.
            return self.frontend.features_and_mask(raw, mask, training=training)
        features = self.frontend(raw, training=training)
        if mask is not None:
            mask = self.frontend.compute_mask(raw, mask)
        return features, mask

    def recurrent_states(self, features, mask=None, *, initial_states=None, training=None):
        """States of every layer: list of [batch, time, units], layer by layer."""
        x = self.normalization(features)
        if self.augmentation is not None and training:
            x = self.augmentation(x, training=training)
        all_states = []
        for i, layer in enumerate(self.recurrent_layers):
            if self.between:
                x = self.between[i](x, training=training)
            initial = None if initial_states is None else initial_states[i]
            forward = layer(x, mask=mask, initial_state=initial, training=training)
            if self.bidirectional:
                backward = self.backward_layers[i](x, mask=mask, training=training)
                forward = recurrent_stack.merge(forward, backward, self.merge_mode)
            x = forward
            all_states.append(x)
        return all_states

    def _recurrent_options(self) -> dict:
        # Recurrent-only options only when set, so keras' own RNN layers work as factories.
        options = {} if self.truncate_bptt is None else {"truncate_bptt": self.truncate_bptt}
        if self.normalize_preactivation:
            options["normalize_preactivation"] = True
        return options

    @property
    def layer_width(self) -> int:
        """Width of each layer's output: units, or 2 * units for concatenated directions."""
        return recurrent_stack.layer_width(self.units, bidirectional=self.bidirectional, merge_mode=self.merge_mode)

    @property
    def can_stream(self) -> bool:
        """False for a bidirectional model: its backward direction needs the whole future."""
        return not self.bidirectional

    def call(self, inputs, training=None):
        features, mask = self.features_and_mask(inputs, training=training)
        states = self.recurrent_states(features, mask, training=training)[-1]
        return self.head(states, mask=mask, training=training)

    def stream(self, features, states, reset=None):
        """One chunk of streaming inference with the state carried by the caller.

        Args:
            features: [batch, time, F] feature frames of this chunk.
            states: [batch, num_layers, units], the states returned for the previous
                chunk (zeros at the start).
            reset: optional [batch] bool; rows set start a new stream from s(0) = 0.

        Returns:
            (per-step outputs [batch, time, outputs], new states [batch, num_layers,
            units]). The per-step output is the head applied to the state at that step
            (what the model would predict if the sequence ended there); chunked calls
            give the same results as one call on the whole sequence.
        """
        if not self.can_stream:
            raise ConfigError(
                "a bidirectional model cannot stream: its backward direction reads the sequence from "
                "its end. Use the whole-clip signatures, or train with bidirectional=False to stream"
            )
        states = tf.cast(states, self.compute_dtype)
        if reset is not None:
            keep = 1.0 - tf.cast(reset, states.dtype)[:, tf.newaxis, tf.newaxis]
            states = states * keep
        initial = [states[:, i] for i in range(self.num_layers)]
        outputs = self.recurrent_states(features, initial_states=initial, training=False)
        new_states = tf.stack([o[:, -1] for o in outputs], axis=1)
        return self.head.per_step(outputs[-1]), new_states

    # ------------------------------------------------------------------ clips, serving
    @property
    def input_kind(self) -> str:
        """"audio" (waveforms [samples]), "video" (frames [time, h, w, c]) or "features"."""
        if self.frontend is None:
            return "features"
        rank = len(self.raw_input_shape)
        return "audio" if rank == 1 else "video" if rank == 4 else "features"

    def predict_clip(self, inputs, *, window: int | None = None, hop: int | None = None,
                     return_windows: bool = False):
        """One prediction per clip, from clips of any length: what serving_default,
        `seqapps predict` and `seqapps evaluate` answer.

        The clips are cut into windows as in training (``seqapps.layers.windows.frame_clips``:
        padded tail masked, at least one window), each window is predicted and the window
        predictions are averaged per clip. Video frame features are computed over the
        whole clip first and then windowed, as the training cache does (FrameMotion needs
        the frame before each window). Per-step models (pooling="none") and window=None
        run the whole clip in one pass.

        Args:
            inputs: raw clips ``[batch, time, ...]`` (waveforms ``[batch, samples]``, frames
                uint8 ``[batch, time, h, w, c]``) or ``{"features": [batch, time, F]}``.
            window, hop: window and hop in items of the clips (samples, frames).
            return_windows: also return the window predictions ``[batch, windows, ...]``.

        Returns:
            float32 ``[batch, ...]`` (and the window predictions).

        >>> import numpy as np
        >>> model = SequenceRegressor(input_shape=(None, 2), units=3)
        >>> model.predict_clip(np.zeros((1, 7, 2), "float32"), window=4, hop=2).shape
        TensorShape([1, 1])
        """
        given_features = isinstance(inputs, dict)
        clips = tf.convert_to_tensor(inputs["features"] if given_features else inputs)
        if window is None or self.pooling == "none":
            # Per-step outputs belong to steps of the whole clip; averaging windows would
            # mix different steps.
            values = tf.cast(self({"features" if given_features else "inputs": clips}, training=False), tf.float32)
            return (values, values[:, tf.newaxis]) if return_windows else values
        if not given_features and self.input_kind == "video":
            clips, given_features = self.frontend(clips, training=False), True
        windows, mask, count = windowing.frame_clips(clips, window=window, hop=hop)
        values = self({"features" if given_features else "inputs": windows, "mask": mask}, training=False)
        values = tf.cast(values, tf.float32)
        values = tf.reshape(values, tf.concat([[-1, count], tf.shape(values)[1:]], axis=0))
        clip_values = tf.reduce_mean(values, axis=1)
        return (clip_values, values) if return_windows else clip_values

    def signatures(self, *, window: int | None = None, hop: int | None = None,
                   builders=None) -> dict:
        """The serving signatures {name: seqapps.serving.Signature} (see seqapps.serving);
        `window`/`hop` (samples or frames) drive the windowing of serving_default."""
        return serving.signatures(self, window=window, hop=hop, builders=builders)

    def describe(self, *, window: int | None = None, hop: int | None = None) -> dict:
        """Task, input kind, labels or targets, architecture, stream state shape, raw
        input name and serving windowing, as JSON-ready values (the model card)."""
        return serving.describe(self, window=window, hop=hop)

    # ------------------------------------------------------------------ fitting
    def adapt(self, dataset, *, steps: int | None = None) -> None:
        """Set the feature normalisation from (inputs, ...) batches of a dataset."""
        def batches():
            for i, element in enumerate(dataset):
                if steps is not None and i >= steps:
                    break
                inputs = element[0] if isinstance(element, tuple) else element
                features, mask = self.features_and_mask(inputs, training=False)
                yield features.numpy(), None if mask is None else np.asarray(mask)

        self.normalization.adapt(batches())

    def compile_from_config(self, config):
        """Restore the compile arguments saved in a .keras file (compile is overridden)."""
        self.compile(**keras.saving.deserialize_keras_object(config))
        if self.built:
            self.optimizer.build(self.trainable_variables)

    def get_config(self):
        return {
            **super().get_config(),
            "input_shape": list(self.raw_input_shape),
            "frontend": None
            if self.frontend is None
            else keras.saving.serialize_keras_object(self.frontend),
            "units": self.units,
            "num_layers": self.num_layers,
            "activation": self.activation,
            "recurrent_initializer": self.recurrent_initializer,
            "dropout": self.dropout,
            "truncate_bptt": self.truncate_bptt,
            "normalize_preactivation": self.normalize_preactivation,
            "pooling": self.pooling,
            "hidden_units": self.hidden_units,
            "augmentation": None
            if self.augmentation is None
            else keras.saving.serialize_keras_object(self.augmentation),
            **recurrent_stack.factory_config(self.recurrent_layer),
            "bidirectional": self.bidirectional,
            "merge_mode": self.merge_mode,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)


@keras.saving.register_keras_serializable(package="seqapps")
class SequenceClassifier(SequenceModel):
    """Recurrent sequence classifier: probabilities [batch, num_classes].

    Args:
        num_classes: number of classes.
        class_names: optional names, kept with the model (used by export and predict).
        multi_label: sigmoid per class instead of softmax.
        input_shape: one raw example without the batch axis, e.g. (16000,) for
            one-second 16 kHz waveforms, (None, 64, 64, 3) for video frames, or
            (None, F) for precomputed features (frontend=None).
        frontend: a Keras layer from raw input to [batch, time, F] (e.g.
            seqapps.layers.LogMelSpectrogram), or None.
        units, num_layers, activation, recurrent_initializer, truncate_bptt: the
            Recurrent stack.
        dropout: dropout before each Recurrent layer in training.
        pooling, hidden_units: the head (see seqapps.heads).
        augmentation: an optional training-only layer on the normalised features, e.g.
            seqapps.layers.SpecAugment (identity at inference).
        recurrent_layer: what builds each recurrent layer (default
            seqapps.layers.Recurrent): a class or callable taking
            (units, *, activation, recurrent_initializer, return_sequences, name, and
            truncate_bptt when set), e.g. keras.layers.GRU or functools.partial(
            Recurrent, implementation="graph"). Saving needs a registered class.
        bidirectional: add a second layer per level from the same factory, reading the
            sequence backwards (go_backwards=True, outputs reversed back so step t meets
            step t); such a model cannot stream (`can_stream` is False, no stream signature).
        merge_mode: "concat" (layer width 2 * units) or "sum" of the two directions.

    Example:
    >>> import numpy as np
    >>> model = SequenceClassifier(num_classes=2, input_shape=(None, 4), units=8)
    >>> model.compile()
    >>> history = model.fit({"features": np.zeros((4, 6, 4), "float32")},
    ...                     np.array([0, 1, 0, 1]), epochs=1, verbose=0)
    """

    task = "classify"

    def __init__(self, *, num_classes: int, class_names=None, multi_label: bool = False, **kwargs):
        if class_names is not None and len(class_names) != num_classes:
            raise invalid_argument(
                "class_names", list(class_names), f"a list of num_classes={num_classes} names"
            )
        self.num_classes = num_classes
        self.class_names = None if class_names is None else [str(c) for c in class_names]
        self.multi_label = multi_label
        super().__init__(**kwargs)
        self._build_all()

    def _make_head(self):
        return ClassificationHead(
            self.num_classes,
            multi_label=self.multi_label,
            pooling=self.pooling,
            hidden_units=self.hidden_units,
            name="head",
        )

    def compile(self, optimizer=None, loss=None, metrics=None, **kwargs):
        """Compile defaults: Adam(1e-3) with gradient clipping by norm 1.0, cross-entropy."""
        if optimizer is None:
            optimizer = keras.optimizers.Adam(learning_rate=1e-3, clipnorm=1.0)
        if loss is None:
            loss = "binary_crossentropy" if self.multi_label else "sparse_categorical_crossentropy"
        if metrics is None:
            metrics = ["binary_accuracy" if self.multi_label else "sparse_categorical_accuracy"]
        super().compile(optimizer=optimizer, loss=loss, metrics=metrics, **kwargs)

    def get_config(self):
        return {
            **super().get_config(),
            "num_classes": self.num_classes,
            "class_names": self.class_names,
            "multi_label": self.multi_label,
        }


@keras.saving.register_keras_serializable(package="seqapps")
class SequenceRegressor(SequenceModel):
    """Recurrent sequence regressor: values [batch, num_targets] (or per step).

    Args are those of SequenceClassifier but `num_targets` and `target_names` instead
    of classes; pooling="none" gives per-step predictions [batch, time, num_targets].

    Example:
    >>> import numpy as np
    >>> model = SequenceRegressor(num_targets=1, input_shape=(None, 3), units=8)
    >>> model.compile()
    >>> model.predict({"features": np.zeros((2, 5, 3), "float32")}, verbose=0).shape
    (2, 1)
    """

    task = "regress"

    def __init__(self, *, num_targets: int = 1, target_names=None, **kwargs):
        if target_names is not None and len(target_names) != num_targets:
            raise invalid_argument(
                "target_names", list(target_names), f"a list of num_targets={num_targets} names"
            )
        self.num_targets = num_targets
        self.target_names = None if target_names is None else [str(t) for t in target_names]
        super().__init__(**kwargs)
        self._build_all()

    def _make_head(self):
        return RegressionHead(
            self.num_targets, pooling=self.pooling, hidden_units=self.hidden_units, name="head"
        )

    def compile(self, optimizer=None, loss=None, metrics=None, **kwargs):
        """Compile defaults: Adam(1e-3) with gradient clipping by norm 1.0, MSE, MAE."""
        if optimizer is None:
            optimizer = keras.optimizers.Adam(learning_rate=1e-3, clipnorm=1.0)
        super().compile(
            optimizer=optimizer, loss=loss or "mse", metrics=metrics or ["mae"], **kwargs
        )

    def get_config(self):
        return {
            **super().get_config(),
            "num_targets": self.num_targets,
            "target_names": self.target_names,
        }
