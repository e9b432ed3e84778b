"""Delta (and delta-delta) features over time, as ``librosa.feature.delta``.

``Deltas(order=2)`` maps ``[batch, frames, features]`` to
``[batch, frames, features * 3]``: the features, their first and their second
time derivative, each estimated by a Savitzky-Golay filter of ``width`` frames
(``scipy.signal.savgol_filter(x, width, polyorder=k, deriv=k, mode="interp")``, which
is what librosa computes). In "interp" mode the edge frames take the derivative of the
polynomial fitted to the first (last) ``width`` frames; a degree-k polynomial's k-th
derivative is constant, so the edge frames repeat the first (last) full-window value.
Sequences shorter than ``width`` frames (which librosa refuses) are edge-padded.

>>> import numpy as np
>>> x = np.arange(20, dtype="float32").reshape(1, 20, 1)  # a ramp: slope 1
>>> y = np.asarray(Deltas(order=1, width=5)(x))
>>> y.shape, bool(np.allclose(y[0, :, 1], 1.0))
((1, 20, 2), True)
"""

from __future__ import annotations

import keras
import numpy as np
import scipy.signal
import tensorflow as tf

from seqapps.errors import invalid_argument

__all__ = ["Deltas"]


@keras.saving.register_keras_serializable(package="seqapps")
class Deltas(keras.layers.Layer):
    """Append time derivatives of order 1..``order`` to the features.

    Args:
        order: 1 (features + deltas) or 2 (+ delta-deltas).
        width: odd filter width in frames, at least 3 (librosa's default 9).

    The mask passes through; deltas near the end of a padded clip see the padding.

    Example:
    >>> Deltas(order=2)(np.zeros((2, 30, 13), "float32")).shape
    TensorShape([2, 30, 39])
    """

    def __init__(self, *, order: int = 2, width: int = 9, **kwargs):
        super().__init__(**kwargs)
        if order not in (1, 2) or isinstance(order, bool):
            raise invalid_argument("order", order, "1 or 2")
        if isinstance(width, bool) or not isinstance(width, (int, np.integer)) or width < 3 or width % 2 == 0:
            raise invalid_argument("width", width, "an odd integer >= 3")
        self.order = int(order)
        self.width = int(width)
        self.supports_masking = True
        # Correlation kernels [width, 1, 1], one per order, flipped from savgol's
        # convolution coefficients (tf "conv" is a correlation).
        self._kernels = [
            tf.constant(scipy.signal.savgol_coeffs(self.width, k, deriv=k, use="conv")[::-1].copy()
                        .reshape(self.width, 1, 1), tf.float32)
            for k in range(1, self.order + 1)
        ]

    def _derivative(self, x, kernel):
        # x [batch, frames, features] -> same shape; one filter shared by all features.
        batch, frames, features = tf.shape(x)[0], tf.shape(x)[1], tf.shape(x)[2]
        half = self.width // 2
        padded = tf.concat([tf.repeat(x[:, :1], half, axis=1), x, tf.repeat(x[:, -1:], half, axis=1)], axis=1)
        columns = tf.reshape(tf.transpose(padded, [0, 2, 1]), [-1, frames + 2 * half, 1])
        out = tf.nn.conv1d(columns, kernel, stride=1, padding="VALID")  # [batch * F, frames, 1]
        out = tf.transpose(tf.reshape(out, [batch, features, frames]), [0, 2, 1])
        # "interp" edges: repeat the first / last full-window value (when there is one).
        low = tf.minimum(half, frames - 1)
        high = tf.maximum(frames - 1 - half, low)
        index = tf.clip_by_value(tf.range(frames), low, high)
        return tf.gather(out, index, axis=1)

    def call(self, inputs, mask=None):
        x = tf.convert_to_tensor(inputs, tf.float32)
        return tf.concat([x] + [self._derivative(x, k) for k in self._kernels], axis=-1)

    def compute_mask(self, inputs, mask=None):
        return mask

    def compute_output_shape(self, input_shape):
        features = None if input_shape[-1] is None else input_shape[-1] * (self.order + 1)
        return (*input_shape[:-1], features)

    def get_config(self):
        return {**super().get_config(), "order": self.order, "width": self.width}
