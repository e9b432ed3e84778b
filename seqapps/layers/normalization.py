"""Per-feature standardisation whose statistics come from valid (unmasked) frames only.

keras.layers.Normalization.adapt counts padded frames as data; with padded windows that
would drag the mean towards the padding value, so this layer adapts on valid frames.

>>> import numpy as np
>>> norm = FeatureNormalization()
>>> norm.adapt([(np.array([[[1.0], [3.0]]], "float32"), None)])
>>> [float(v) for v in norm.mean.numpy()], [float(v) for v in norm.variance.numpy()]
([2.0], [1.0])

``UtteranceNormalization`` standardises each utterance by its own statistics instead
(per-utterance CMVN), so it needs no adapt.
"""

from __future__ import annotations

from collections.abc import Iterable

import keras
import numpy as np
import tensorflow as tf

from seqapps.errors import invalid_argument


@keras.saving.register_keras_serializable(package="seqapps")
class FeatureNormalization(keras.layers.Layer):
    """(x - mean) / sqrt(variance + epsilon) per feature, statistics from `adapt`.

    Input and output [batch, time, features]; the mask passes through. Before `adapt`
    the layer is the identity (mean 0, variance 1).

    Args:
        epsilon: added to the variance, so constant features do not divide by zero.
    """

    def __init__(self, epsilon: float = 1e-6, **kwargs):
        super().__init__(**kwargs)
        self.epsilon = epsilon
        self.supports_masking = True

    def build(self, input_shape):
        features = input_shape[-1]
        self.mean = self.add_weight(name="mean", shape=(features,), initializer="zeros", trainable=False)
        self.variance = self.add_weight(name="variance", shape=(features,), initializer="ones", trainable=False)
        self.built = True

    def adapt(self, batches: Iterable) -> None:
        """Set mean and variance from (features [batch, time, F], mask [batch, time] | None) pairs."""
        total = total_sq = None
        count = 0.0
        for features, mask in batches:
            features = np.asarray(features, np.float64)
            flat = features.reshape(-1, features.shape[-1])
            if mask is not None:
                flat = flat[np.asarray(mask, bool).reshape(-1)]
            if total is None:
                total = np.zeros(flat.shape[-1])
                total_sq = np.zeros(flat.shape[-1])
                if not self.built:
                    self.build(features.shape)
            total += flat.sum(0)
            total_sq += (flat**2).sum(0)
            count += flat.shape[0]
        if not count:
            raise ValueError("`batches` must hold at least one valid frame. Received: no valid frames")
        mean = total / count
        self.mean.assign(mean.astype("float32"))
        self.variance.assign(np.maximum(total_sq / count - mean**2, 0.0).astype("float32"))

    def call(self, inputs):
        inputs = tf.cast(inputs, self.compute_dtype)
        mean = tf.cast(self.mean, self.compute_dtype)
        scale = tf.math.rsqrt(tf.cast(self.variance, self.compute_dtype) + self.epsilon)
        return (inputs - mean) * scale

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "epsilon": self.epsilon}


@keras.saving.register_keras_serializable(package="seqapps")
class UtteranceNormalization(keras.layers.Layer):
    """Per-utterance mean/variance normalisation over time, mask-aware.

    Input ``[batch, time, features]`` (statistics per feature) or ``[batch, time]``
    (statistics over the whole utterance), optional bool mask ``[batch, time]``.
    Statistics use only valid steps; padded steps come out as 0; the mask passes through.
    ``y = (x - mean) / sqrt(var + epsilon)`` (``center``/``scale`` switch either part off).

    Example:
    >>> norm = UtteranceNormalization()
    >>> out = norm(np.array([[[1.0], [3.0]]], "float32"))
    >>> np.round(np.asarray(out)[0, :, 0], 3).tolist()
    [-1.0, 1.0]
    """

    def __init__(self, *, epsilon: float = 1e-6, center: bool = True, scale: bool = True, **kwargs):
        super().__init__(**kwargs)
        if epsilon < 0:
            raise invalid_argument("epsilon", epsilon, "non-negative")
        self.epsilon = float(epsilon)
        self.center = bool(center)
        self.scale = bool(scale)
        self.supports_masking = True

    def call(self, inputs, mask=None):
        inputs = tf.convert_to_tensor(inputs)
        rank = inputs.shape.rank
        if rank not in (2, 3):
            raise invalid_argument("inputs.shape", tuple(inputs.shape), "[batch, time] or [batch, time, features]")
        axes = [1]  # time
        if mask is None:
            weights = tf.ones_like(inputs[:, :, :1] if rank == 3 else inputs)
        else:
            weights = tf.cast(mask, inputs.dtype)
            if rank == 3:
                weights = weights[:, :, tf.newaxis]
        count = tf.maximum(tf.reduce_sum(weights, axis=axes, keepdims=True), 1.0)
        mean = tf.reduce_sum(inputs * weights, axis=axes, keepdims=True) / count
        outputs = inputs - mean if self.center else inputs
        if self.scale:
            variance = tf.reduce_sum(tf.square(inputs - mean) * weights, axis=axes, keepdims=True) / count
            outputs = outputs * tf.math.rsqrt(variance + self.epsilon)
        return outputs * weights

    def compute_mask(self, inputs, mask=None):
        return mask

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update(epsilon=self.epsilon, center=self.center, scale=self.scale)
        return config
