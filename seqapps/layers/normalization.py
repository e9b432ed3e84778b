"""Per-feature standardisation whose statistics come from valid (unmasked) frames only.

keras.layers.Normalization.adapt counts padded frames as data; with padded windows that
would drag the mean towards the padding value, so this layer adapts on valid frames.

>>> import numpy as np
>>> norm = FeatureNormalization()
>>> norm.adapt([(np.array([[[1.0], [3.0]]], "float32"), None)])
>>> [float(v) for v in norm.mean.numpy()], [float(v) for v in norm.variance.numpy()]
([2.0], [1.0])
"""

from __future__ import annotations

from collections.abc import Iterable

import keras
import numpy as np
import tensorflow as tf


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
