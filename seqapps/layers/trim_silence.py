"""``TrimSilence``: leading and trailing silence removed by mask, as ``librosa.effects.trim``.

The waveform keeps its length; only the sample mask narrows to the non-silent span, so
shapes stay static and batches rectangular. Built from keras.ops alone, so the mask is
also computed while a functional model is built. Registered as "seqapps>TrimSilence"
(the name .keras files hold; it lived in seqapps.layers.audio_frontends before, which
still imports it).
"""

from __future__ import annotations

import math

import keras
import numpy as np
import tensorflow as tf

from seqapps.errors import invalid_argument

__all__ = ["TrimSilence"]


@keras.saving.register_keras_serializable(package="seqapps")
class TrimSilence(keras.layers.Layer):
    """Leading/trailing silence removal by mask, as ``librosa.effects.trim``.

    Input ``[batch, samples]`` (optional bool mask); the output is the waveform with
    masked samples zeroed and ``compute_mask`` returns the narrowed sample mask: only
    ``[start, end)`` stays valid, where start/end are librosa's (frame RMS with
    ``frame_length``/``hop_length``, centred, in dB relative to the utterance's loudest
    frame; frames above ``-top_db`` are sound). Shapes do not change, so batches stay
    rectangular; downstream layers see fewer valid frames. A clip that is silent
    throughout gets an all-False mask, as librosa returns an empty signal.

    Example:
    >>> trim = TrimSilence(top_db=60)
    >>> wave = np.concatenate([np.zeros(4096), np.ones(4096), np.zeros(4096)])[None]
    >>> mask = trim.compute_mask(wave.astype("float32"))
    >>> int(np.argmax(mask[0])), int(np.sum(mask))
    (3584, 5632)
    """

    def __init__(
        self,
        *,
        top_db: float = 60.0,
        frame_length: int = 2048,
        hop_length: int = 512,
        amin: float = 1e-5,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.top_db = float(top_db)
        for name, value in (("frame_length", frame_length), ("hop_length", hop_length)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
                raise invalid_argument(name, value, "a positive integer")
        self.frame_length, self.hop_length = int(frame_length), int(hop_length)
        if amin <= 0:
            raise invalid_argument("amin", amin, "positive")
        self.amin = float(amin)
        self.supports_masking = True

    def call(self, inputs, mask=None):
        inputs = tf.convert_to_tensor(inputs, tf.float32)
        return inputs * tf.cast(self.compute_mask(inputs, mask), inputs.dtype)

    def compute_mask(self, inputs, mask=None):
        # keras.ops only, so that the mask is also computed while a functional model is
        # built (lengths unknown).
        ops = keras.ops
        inputs = ops.cast(inputs, "float32")
        if mask is not None:
            inputs = inputs * ops.cast(mask, "float32")
        half = self.frame_length // 2
        squares = ops.pad(ops.square(inputs), [[0, 0], [half, half]])[:, :, None]
        kernel = ops.ones((self.frame_length, 1, 1), "float32") / self.frame_length
        # frame energy (librosa.feature.rms, centred, zero padded) as a strided box filter
        power = ops.conv(squares, kernel, strides=self.hop_length, padding="valid")[:, :, 0]
        rms = ops.sqrt(ops.maximum(power, 0.0))  # [batch, frames]
        # amplitude_to_db(rms, ref=np.max): 20 log10(max(amin, rms) / max(amin, peak))
        peak = ops.maximum(ops.max(rms, axis=1, keepdims=True), self.amin)
        db = 20.0 * (ops.log(ops.maximum(rms, self.amin)) - ops.log(peak)) / math.log(10.0)
        loud = ops.cast(db > -self.top_db, "int32")
        # frames from the first loud one to the last loud one, inclusive
        after_first = ops.cumsum(loud, axis=1) > 0
        before_last = ops.flip(ops.cumsum(ops.flip(loud, axis=1), axis=1), axis=1) > 0
        span = ops.logical_and(after_first, before_last)
        # sample n belongs to frame n // hop: librosa's [first * hop, (last + 1) * hop)
        positions = ops.cumsum(ops.ones_like(inputs[0], dtype="int32")) - 1
        keep = ops.take(span, positions // self.hop_length, axis=1)
        if mask is not None:
            keep = ops.logical_and(keep, ops.cast(mask, "bool"))
        return keep

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update(
            top_db=self.top_db,
            frame_length=self.frame_length,
            hop_length=self.hop_length,
            amin=self.amin,
        )
        return config
