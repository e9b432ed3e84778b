"""SpecAugment (Park et al. 2019): time and frequency masking of feature frames in
training; the identity at inference, so no random op reaches an export.

>>> import numpy as np
>>> aug = SpecAugment(time_masks=2, time_mask_width=5)
>>> x = np.ones((2, 20, 8), "float32")
>>> bool(np.all(np.asarray(aug(x, training=False)) == x))
True
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from seqapps.errors import invalid_argument

__all__ = ["SpecAugment"]


def _random_bands(batch, size, count, max_width, seed_generator):
    """Union of ``count`` random bands [start, start + width) per example -> bool [batch, size].

    width ~ U{0..max_width}, start ~ U{0..size - width}: the SpecAugment recipe.
    """
    size_f = tf.cast(size, tf.float32)
    width = tf.floor(
        keras.random.uniform((batch, count, 1), 0.0, 1.0, seed=seed_generator) * (max_width + 1)
    )
    width = tf.minimum(width, size_f)
    start = tf.floor(keras.random.uniform((batch, count, 1), 0.0, 1.0, seed=seed_generator) * (size_f - width + 1))
    position = tf.cast(tf.range(size), tf.float32)[tf.newaxis, tf.newaxis, :]
    inside = (position >= start) & (position < start + width)
    return tf.reduce_any(inside, axis=1)


@keras.saving.register_keras_serializable(package="seqapps")
class SpecAugment(keras.layers.Layer):
    """SpecAugment time and frequency masking; identity at inference.

    Input ``[batch, frames, features]`` (e.g. log-mels); in training, ``freq_masks``
    bands of up to ``freq_mask_width`` features and ``time_masks`` bands of up to
    ``time_mask_width`` frames per example are set to ``mask_value`` (0 suits
    normalised features). The mask passes through unchanged.

    Example:
    >>> aug = SpecAugment(freq_masks=1, freq_mask_width=4, time_masks=1, time_mask_width=5)
    >>> x = np.ones((2, 20, 8), "float32")
    >>> bool(np.all(np.asarray(aug(x, training=False)) == x))
    True
    """

    def __init__(
        self,
        *,
        freq_masks: int = 2,
        freq_mask_width: int = 8,
        time_masks: int = 2,
        time_mask_width: int = 10,
        mask_value: float = 0.0,
        seed: int | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        for name, value in (
            ("freq_masks", freq_masks),
            ("freq_mask_width", freq_mask_width),
            ("time_masks", time_masks),
            ("time_mask_width", time_mask_width),
        ):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
                raise invalid_argument(name, value, "a non-negative integer")
        self.freq_masks = int(freq_masks)
        self.freq_mask_width = int(freq_mask_width)
        self.time_masks = int(time_masks)
        self.time_mask_width = int(time_mask_width)
        self.mask_value = float(mask_value)
        self.seed = seed
        self.supports_masking = True
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, inputs, training=None):
        if not training:
            return inputs
        inputs = tf.convert_to_tensor(inputs)
        shape = tf.shape(inputs)
        batch, frames, features = shape[0], shape[1], shape[2]
        hide = tf.zeros([batch, frames, features], tf.bool)
        if self.time_masks and self.time_mask_width:
            time = _random_bands(batch, frames, self.time_masks, self.time_mask_width, self.seed_generator)
            hide = hide | time[:, :, tf.newaxis]
        if self.freq_masks and self.freq_mask_width:
            freq = _random_bands(batch, features, self.freq_masks, self.freq_mask_width, self.seed_generator)
            hide = hide | freq[:, tf.newaxis, :]
        return tf.where(hide, tf.cast(self.mask_value, inputs.dtype), inputs)

    def compute_mask(self, inputs, mask=None):
        return mask

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update(
            freq_masks=self.freq_masks,
            freq_mask_width=self.freq_mask_width,
            time_masks=self.time_masks,
            time_mask_width=self.time_mask_width,
            mask_value=self.mask_value,
            seed=self.seed,
        )
        return config
