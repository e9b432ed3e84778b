"""Training-only waveform augmentation layers: the identity at inference and in exports.

Each layer takes ``[batch, samples]`` float32 waveforms and an optional bool sample mask
``[batch, samples]`` (True = real audio). In training (``training=True``) it draws its
random values per example from a ``keras.random.SeedGenerator``; otherwise it returns
its input untouched, so no random op is ever traced into a served graph. The mask passes
through unchanged: samples moved past the valid region are dropped, valid samples that
receive nothing are zeros.

- ``RandomGain``: a gain uniform in ``[-max_db, +max_db]`` dB.
- ``TimeShift``: a shift uniform in ``{-max_shift..max_shift}`` samples, zero-filled
  (``fill="zeros"``) or circular (``fill="roll"``, as ``np.roll``).
- ``SpeedPerturbation``: resampling by a factor uniform in ``[min_factor, max_factor]``
  (``sox speed``: duration divided and pitch multiplied by the factor).
- ``BackgroundNoise``: a random segment of recorded noise (Speech Commands'
  ``_background_noise_``) mixed in at an SNR uniform in ``[min_snr_db, max_snr_db]``.
- ``TempoPerturbation`` (on feature frames, not waveforms): tempo without pitch change.

>>> import numpy as np
>>> x = np.ones((2, 100), "float32")
>>> bool(np.all(np.asarray(TimeShift(max_shift=10)(x)) == x))  # inference: identity
True
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from seqapps.errors import invalid_argument

__all__ = ["RandomGain", "TimeShift", "SpeedPerturbation", "BackgroundNoise", "TempoPerturbation", "shift_samples"]


def _non_negative(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) or value < 0:
        raise invalid_argument(name, value, "a non-negative number")
    return float(value)


def _valid(inputs, mask):
    return tf.ones_like(inputs) if mask is None else tf.cast(mask, inputs.dtype)


def shift_samples(inputs, shift, *, fill: str = "zeros"):
    """``out[b, t] = inputs[b, t - shift[b]]``: [batch, samples] by per-example ``shift`` [batch].

    ``fill="zeros"`` fills what comes from outside with 0; ``"roll"`` wraps round as
    ``np.roll(x, shift)``.

    >>> np.asarray(shift_samples(tf.constant([[1., 2., 3., 4.]]), tf.constant([1]))).tolist()
    [[0.0, 1.0, 2.0, 3.0]]
    """
    samples = tf.shape(inputs)[1]
    source = tf.range(samples)[tf.newaxis, :] - tf.cast(shift, tf.int32)[:, tf.newaxis]
    if fill == "roll":
        return tf.gather(inputs, tf.math.floormod(source, samples), batch_dims=1)
    inside = (source >= 0) & (source < samples)
    gathered = tf.gather(inputs, tf.clip_by_value(source, 0, samples - 1), batch_dims=1)
    return tf.where(inside, gathered, tf.zeros_like(gathered))


class _WaveAugmentation(keras.layers.Layer):
    """Shared plumbing: seed, masking, shapes; subclasses implement ``augment``."""

    def __init__(self, *, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.seed = seed
        self.supports_masking = True
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, inputs, mask=None, training=None):
        if not training:
            return inputs
        inputs = tf.convert_to_tensor(inputs, tf.float32)
        return self.augment(inputs, _valid(inputs, mask)) * _valid(inputs, mask)

    def _uniform(self, batch, low, high):
        return keras.random.uniform((batch,), low, high, seed=self.seed_generator)

    def compute_mask(self, inputs, mask=None):
        return mask

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        return {**super().get_config(), "seed": self.seed}


@keras.saving.register_keras_serializable(package="seqapps")
class RandomGain(_WaveAugmentation):
    """Random gain in ``[-max_db, +max_db]`` dB per example; identity at inference.

    Example:
    >>> x = np.ones((3, 10), "float32")
    >>> y = np.asarray(RandomGain(max_db=6.0, seed=1)(x, training=True))
    >>> bool(np.all(np.abs(20 * np.log10(y[:, 0])) <= 6.0))
    True
    """

    def __init__(self, *, max_db: float = 6.0, **kwargs):
        super().__init__(**kwargs)
        self.max_db = _non_negative("max_db", max_db)

    def augment(self, inputs, valid):
        gain_db = self._uniform(tf.shape(inputs)[0], -self.max_db, self.max_db)
        return inputs * tf.pow(10.0, gain_db / 20.0)[:, tf.newaxis]

    def get_config(self):
        return {**super().get_config(), "max_db": self.max_db}


@keras.saving.register_keras_serializable(package="seqapps")
class TimeShift(_WaveAugmentation):
    """Random time shift of up to ``max_shift`` samples either way; identity at inference.

    ``fill="zeros"``: what is shifted in is silence; ``"roll"``: circular, as ``np.roll``.

    Example:
    >>> x = np.arange(8, dtype="float32")[None]
    >>> y = np.asarray(TimeShift(max_shift=3, fill="roll", seed=0)(x, training=True))
    >>> any(np.array_equal(y[0], np.roll(x[0], k)) for k in range(-3, 4))
    True
    """

    def __init__(self, *, max_shift: int = 1600, fill: str = "zeros", **kwargs):
        super().__init__(**kwargs)
        if isinstance(max_shift, bool) or not isinstance(max_shift, (int, np.integer)) or max_shift < 0:
            raise invalid_argument("max_shift", max_shift, "a non-negative integer")
        if fill not in ("zeros", "roll"):
            raise invalid_argument("fill", fill, "'zeros' or 'roll'")
        self.max_shift = int(max_shift)
        self.fill = fill

    def augment(self, inputs, valid):
        draw = self._uniform(tf.shape(inputs)[0], 0.0, 1.0)
        shift = tf.cast(tf.floor(draw * (2 * self.max_shift + 1)), tf.int32) - self.max_shift
        return shift_samples(inputs, shift, fill=self.fill)

    def get_config(self):
        return {**super().get_config(), "max_shift": self.max_shift, "fill": self.fill}


@keras.saving.register_keras_serializable(package="seqapps")
class SpeedPerturbation(_WaveAugmentation):
    """Resample by a random factor (speed and pitch together, as ``sox speed``).

    ``out[t] = x[t * factor]`` (linear interpolation; 0 past the end of the valid
    samples), with ``factor`` uniform in ``[min_factor, max_factor]`` per example: a
    factor of 1.1 plays 10 % faster and 10 % higher. The length stays the same, so a
    faster clip ends in silence and a slower one loses its end.

    Example:
    >>> x = np.sin(np.arange(800) * 0.1).astype("float32")[None]
    >>> y = SpeedPerturbation(min_factor=2.0, max_factor=2.0)(x, training=True)
    >>> bool(np.allclose(np.asarray(y)[0, :400], x[0, ::2], atol=1e-4))
    True
    """

    def __init__(self, *, min_factor: float = 0.9, max_factor: float = 1.1, **kwargs):
        super().__init__(**kwargs)
        if not 0 < min_factor <= max_factor:
            raise invalid_argument("min_factor", min_factor, f"positive and at most max_factor={max_factor}")
        self.min_factor = float(min_factor)
        self.max_factor = float(max_factor)

    def augment(self, inputs, valid):
        batch, samples = tf.shape(inputs)[0], tf.shape(inputs)[1]
        factor = self._uniform(batch, self.min_factor, self.max_factor)
        length = tf.reduce_sum(valid, axis=1)  # resample only the valid samples
        position = tf.cast(tf.range(samples), tf.float32)[tf.newaxis, :] * factor[:, tf.newaxis]
        left = tf.floor(position)
        fraction = position - left
        left = tf.cast(left, tf.int32)
        last = tf.maximum(tf.cast(length, tf.int32) - 1, 0)[:, tf.newaxis]
        a = tf.gather(inputs, tf.minimum(left, last), batch_dims=1)
        b = tf.gather(inputs, tf.minimum(left + 1, last), batch_dims=1)
        inside = position <= tf.cast(last, tf.float32)
        return tf.where(inside, a + fraction * (b - a), 0.0)

    def get_config(self):
        return {**super().get_config(), "min_factor": self.min_factor, "max_factor": self.max_factor}


@keras.saving.register_keras_serializable(package="seqapps")
class BackgroundNoise(_WaveAugmentation):
    """Mix in recorded background noise at a random SNR; identity at inference.

    ``noise``: the noise recordings decoded once at the model's sample rate, as one
    1-D array (clips concatenated, e.g. by ``seqapps.runs.data.load_noise``). It is held
    as a constant, neither a weight nor part of the config, so it never reaches a saved
    model or an export; a model loaded from a file has no noise and is the identity
    until ``noise`` is given again (``set_noise``). In training, with probability
    ``probability`` per example, a random segment (wrapping round a short recording) is
    scaled so that ``10 log10(P_signal / P_noise)`` over the valid samples is uniform in
    ``[min_snr_db, max_snr_db]`` and added.

    Example:
    >>> noise = np.random.default_rng(0).normal(size=5000).astype("float32")
    >>> layer = BackgroundNoise(noise=noise, min_snr_db=10.0, max_snr_db=10.0, seed=0)
    >>> x = np.ones((1, 1000), "float32")
    >>> added = np.asarray(layer(x, training=True)) - x
    >>> round(float(10 * np.log10(1.0 / np.mean(added ** 2))), 3)
    10.0
    """

    def __init__(self, *, noise=None, min_snr_db: float = 0.0, max_snr_db: float = 20.0,
                 probability: float = 0.8, **kwargs):
        super().__init__(**kwargs)
        if min_snr_db > max_snr_db:
            raise invalid_argument("min_snr_db", min_snr_db, f"at most max_snr_db={max_snr_db}")
        if not 0 <= probability <= 1:
            raise invalid_argument("probability", probability, "in [0, 1]")
        self.min_snr_db = float(min_snr_db)
        self.max_snr_db = float(max_snr_db)
        self.probability = float(probability)
        self.set_noise(noise)

    def set_noise(self, noise) -> None:
        """Hold ``noise`` (1-D samples, or None for none) for mixing."""
        if noise is None:
            self._noise = None
            return
        noise = np.asarray(noise, np.float32).reshape(-1)
        if noise.size == 0 or not np.any(noise):
            raise invalid_argument("noise", f"array of {noise.size} samples", "non-empty and not all zeros")
        self._noise = tf.constant(noise)

    def augment(self, inputs, valid):
        if self._noise is None:
            return inputs
        batch, samples = tf.shape(inputs)[0], tf.shape(inputs)[1]
        size = tf.shape(self._noise)[0]
        start = tf.cast(self._uniform(batch, 0.0, 1.0) * tf.cast(size, tf.float32), tf.int32)
        index = tf.math.floormod(start[:, tf.newaxis] + tf.range(samples)[tf.newaxis, :], size)
        segment = tf.gather(self._noise, index) * valid
        count = tf.maximum(tf.reduce_sum(valid, axis=1), 1.0)
        signal_power = tf.reduce_sum(tf.square(inputs * valid), axis=1) / count
        noise_power = tf.maximum(tf.reduce_sum(tf.square(segment), axis=1) / count, 1e-12)
        snr_db = self._uniform(batch, self.min_snr_db, self.max_snr_db)
        scale = tf.sqrt(signal_power / noise_power * tf.pow(10.0, -snr_db / 10.0))
        apply = tf.cast(self._uniform(batch, 0.0, 1.0) < self.probability, inputs.dtype)
        return inputs + (apply * scale)[:, tf.newaxis] * segment

    def get_config(self):
        return {**super().get_config(), "min_snr_db": self.min_snr_db, "max_snr_db": self.max_snr_db,
                "probability": self.probability}


@keras.saving.register_keras_serializable(package="seqapps")
class TempoPerturbation(keras.layers.Layer):
    """Tempo without pitch: feature frames resampled in time; identity at inference.

    Input ``[batch, frames, features]`` (e.g. log-mels; optional bool frame mask). In
    training ``out[t] = x[t * factor]`` along time (linear interpolation between frames),
    ``factor`` uniform in ``[min_factor, max_factor]`` per example: 1.1 is 10 % faster at
    the same pitch, because each frame's spectrum is kept. ``stretch`` also returns the
    moved mask (frames past the valid end become invalid).

    Example:
    >>> x = np.arange(10, dtype="float32").reshape(1, 10, 1)
    >>> y, _ = TempoPerturbation(min_factor=0.5, max_factor=0.5).stretch(x, None, training=True)
    >>> np.asarray(y)[0, :4, 0].tolist()
    [0.0, 0.5, 1.0, 1.5]
    """

    def __init__(self, *, min_factor: float = 0.9, max_factor: float = 1.1, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        if not 0 < min_factor <= max_factor:
            raise invalid_argument("min_factor", min_factor, f"positive and at most max_factor={max_factor}")
        self.min_factor = float(min_factor)
        self.max_factor = float(max_factor)
        self.seed = seed
        self.supports_masking = True
        self.seed_generator = keras.random.SeedGenerator(seed)

    def stretch(self, inputs, mask=None, training=None):
        """(stretched features, stretched mask) in training, else (inputs, mask)."""
        if not training:
            return inputs, mask
        inputs = tf.convert_to_tensor(inputs, tf.float32)
        batch, frames = tf.shape(inputs)[0], tf.shape(inputs)[1]
        factor = keras.random.uniform((batch,), self.min_factor, self.max_factor, seed=self.seed_generator)
        valid = tf.ones([batch, frames], tf.bool) if mask is None else tf.cast(mask, tf.bool)
        length = tf.reduce_sum(tf.cast(valid, tf.int32), axis=1)
        last = tf.maximum(length - 1, 0)[:, tf.newaxis]
        position = tf.cast(tf.range(frames), tf.float32)[tf.newaxis, :] * factor[:, tf.newaxis]
        left = tf.cast(tf.floor(position), tf.int32)
        fraction = (position - tf.floor(position))[:, :, tf.newaxis]
        a = tf.gather(inputs, tf.minimum(left, last), batch_dims=1)
        b = tf.gather(inputs, tf.minimum(left + 1, last), batch_dims=1)
        inside = position <= tf.cast(last, tf.float32)
        out = tf.where(inside[:, :, tf.newaxis], a + fraction * (b - a), 0.0)
        return out, (None if mask is None else inside)

    def call(self, inputs, mask=None, training=None):
        return self.stretch(inputs, mask, training=training)[0]

    def compute_mask(self, inputs, mask=None):
        return mask

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        return {**super().get_config(), "min_factor": self.min_factor, "max_factor": self.max_factor,
                "seed": self.seed}
