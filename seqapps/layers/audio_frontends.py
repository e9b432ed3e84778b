"""Audio frontends as Keras layers: raw waveform in, features out, all in the graph.

Everything here is built from ``tf.signal`` ops and constants computed once with librosa
(the mel filterbank, the analysis window), so a model exported for serving takes raw
audio and computes exactly what training computed.

Layers (all registered under the "seqapps" package, dynamic batch and length):

- ``LogMelSpectrogram``: ``[batch, samples] -> [batch, frames, n_mels]``, matches
  ``librosa.power_to_db(librosa.feature.melspectrogram(...), ref=1.0)``.
- ``MFCC``: ``[batch, samples] -> [batch, frames, n_mfcc]``, matches
  ``librosa.feature.mfcc(...)`` (DCT type 2, "ortho", optional lifter).
- ``TrimSilence``: keeps the waveform, narrows the sample mask to the non-silent span
  (as ``librosa.effects.trim``); trimming by mask keeps shapes static and batchable.
- ``UtteranceNormalization``: per-utterance mean/variance normalisation over time,
  mask-aware.
- ``SpecAugment`` and ``WaveAugment``: training-only augmentation, identity at inference.

Masks: the spectral layers accept an optional boolean sample mask ``[batch, samples]``
(True = real audio, False = padding). Padding is zeroed before the STFT and
``compute_mask`` returns the frame mask ``[batch, frames]``: a frame is valid when the
sample at its centre is valid.

>>> import numpy as np
>>> layer = LogMelSpectrogram(sample_rate=16000, n_fft=512, hop_length=160, n_mels=40)
>>> layer(np.zeros((2, 16000), "float32")).shape
TensorShape([2, 101, 40])
"""

from __future__ import annotations

import math

import keras
import librosa
import numpy as np
import tensorflow as tf

from seqapps.errors import invalid_argument

__all__ = [
    "LogMelSpectrogram",
    "MFCC",
    "TrimSilence",
    "UtteranceNormalization",
    "SpecAugment",
    "WaveAugment",
]


def _positive_int(name, value, *, allow_none=False):
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise invalid_argument(name, value, "a positive integer")
    return int(value)


def _choice(name, value, options):
    if value not in options:
        raise invalid_argument(name, value, "one of " + ", ".join(repr(o) for o in options))
    return value


def _symbolic(*tensors) -> bool:
    # While a functional model is being built, masks are placeholders; the real mask is
    # computed again from real tensors when the model runs.
    return any(isinstance(t, keras.KerasTensor) for t in tensors)


def _sample_mask_as_float(inputs, mask):
    if mask is None:
        return None
    return tf.cast(mask, inputs.dtype)


class _MelBase(keras.layers.Layer):
    """Shared STFT + mel filterbank; subclasses choose the log and what follows."""

    def __init__(
        self,
        *,
        sample_rate: int = 16000,
        n_fft: int = 512,
        hop_length: int | None = 160,
        win_length: int | None = None,
        window: str = "hann",
        center: bool = True,
        pad_mode: str = "constant",
        power: float = 2.0,
        n_mels: int = 64,
        fmin: float = 0.0,
        fmax: float | None = None,
        htk: bool = False,
        norm: str | None = "slaney",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.sample_rate = _positive_int("sample_rate", sample_rate)
        self.n_fft = _positive_int("n_fft", n_fft)
        self.win_length = _positive_int("win_length", win_length, allow_none=True)
        self.hop_length = _positive_int("hop_length", hop_length, allow_none=True)
        if self.win_length is not None and self.win_length > self.n_fft:
            raise invalid_argument("win_length", win_length, f"at most n_fft={n_fft}")
        self.window = window
        self.center = bool(center)
        self.pad_mode = _choice("pad_mode", pad_mode, ("constant", "reflect"))
        if power not in (1.0, 2.0):
            raise invalid_argument("power", power, "1.0 (magnitude) or 2.0 (power)")
        self.power = float(power)
        self.n_mels = _positive_int("n_mels", n_mels)
        self.fmin = float(fmin)
        self.fmax = None if fmax is None else float(fmax)
        if self.fmax is not None and not self.fmin < self.fmax <= self.sample_rate / 2:
            raise invalid_argument("fmax", fmax, f"in (fmin, sample_rate/2] = ({fmin}, {sample_rate / 2}]")
        self.htk = bool(htk)
        self.norm = _choice("norm", norm, ("slaney", None))
        self.supports_masking = True
        # Constants, not weights: fixed by the arguments, so nothing to train or save.
        self._window_constant = tf.constant(self._analysis_window(), tf.float32)
        mel = librosa.filters.mel(
            sr=self.sample_rate,
            n_fft=self.n_fft,
            n_mels=self.n_mels,
            fmin=self.fmin,
            fmax=self.fmax,
            htk=self.htk,
            norm=self.norm,
            dtype=np.float32,
        )
        empty = int(np.sum(~np.any(mel > 0, axis=1)))
        if empty:
            # A filter narrower than one FFT bin (too many mels for the band) sees nothing.
            raise invalid_argument(
                "n_mels", n_mels,
                f"small enough that no mel filter is empty ({empty} of {n_mels} are, for "
                f"sample_rate={sample_rate}, n_fft={n_fft}, fmin={fmin}, fmax={fmax}); use fewer "
                "mels, a larger n_fft or a wider band",
            )
        self._mel_constant = tf.constant(mel.T, tf.float32)  # [n_fft // 2 + 1, n_mels]

    # librosa's defaults when hop/win are None
    @property
    def _win(self) -> int:
        return self.win_length or self.n_fft

    @property
    def _hop(self) -> int:
        return self.hop_length or self._win // 4

    def _analysis_window(self) -> np.ndarray:
        # The same window librosa.stft uses: periodic (fftbins=True), centred in n_fft.
        window = librosa.filters.get_window(self.window, self._win, fftbins=True)
        return librosa.util.pad_center(window, size=self.n_fft).astype(np.float32)

    def _num_frames(self, samples):
        if samples is None:
            return None
        padded = samples + 2 * (self.n_fft // 2) if self.center else samples
        return max(0, 1 + (padded - self.n_fft) // self._hop)

    def _mel(self, inputs, mask):
        """[batch, samples] -> mel power (or magnitude) [batch, frames, n_mels]."""
        inputs = tf.convert_to_tensor(inputs, tf.float32)
        sample_mask = _sample_mask_as_float(inputs, mask)
        if sample_mask is not None:
            inputs = inputs * sample_mask
        if self.center:
            # librosa pads n_fft // 2 on both sides before framing; tf.signal.stft would
            # pad only at the end, so frames would not line up.
            half = self.n_fft // 2
            inputs = tf.pad(inputs, [[0, 0], [half, half]], mode=self.pad_mode.upper())
        frames = tf.signal.frame(inputs, self.n_fft, self._hop, pad_end=False)
        spectrum = tf.signal.rfft(frames * self._window_constant)
        power = tf.math.square(tf.math.real(spectrum)) + tf.math.square(tf.math.imag(spectrum))
        if self.power == 1.0:
            power = tf.math.sqrt(power)
        return tf.linalg.matmul(power, self._mel_constant)

    def _to_db(self, mel, amin, top_db):
        # librosa.power_to_db(S, ref=1.0, amin, top_db); the top_db floor is taken per
        # utterance, as librosa would do when called on one clip at a time.
        db = 10.0 * tf.math.log(tf.maximum(mel, amin)) / math.log(10.0)
        if top_db is not None:
            peak = tf.reduce_max(db, axis=[1, 2], keepdims=True)
            db = tf.maximum(db, peak - top_db)
        return db

    def compute_mask(self, inputs, mask=None):
        """Frame mask [batch, frames]: a frame is valid when its centre sample is valid.

        With ``center=True`` the last frame may be centred just past the tensor's end;
        it takes the last sample's validity, so an all-True sample mask gives an all-True
        frame mask (as ``mask=None`` does). A clip padded inside a batch therefore has
        ``ceil(length / hop)`` valid frames where librosa on the clip alone returns
        ``1 + length // hop`` frames: the extra frame is centred on padding.
        """
        if mask is None:
            return None
        # keras.ops only, so that the mask is also computed symbolically while a
        # functional model is built (slicing works for unknown lengths).
        mask = keras.ops.cast(mask, "bool")
        if self.center:
            # Frame t is centred on sample t * hop; 1 + samples // hop frames. Appending
            # the last column makes the count come out right and lets a frame centred
            # just past the end take the last sample's validity.
            extended = keras.ops.concatenate([mask, mask[:, -1:]], axis=1)
            return extended[:, :: self._hop]
        half = self.n_fft // 2
        stop = -(self.n_fft - half - 1) or None  # frame t fits when t * hop + n_fft <= samples
        return mask[:, half:stop : self._hop]

    def _output_channels(self) -> int:
        return self.n_mels

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self._num_frames(input_shape[1]), self._output_channels())

    def get_config(self):
        config = super().get_config()
        config.update(
            sample_rate=self.sample_rate,
            n_fft=self.n_fft,
            hop_length=self.hop_length,
            win_length=self.win_length,
            window=self.window,
            center=self.center,
            pad_mode=self.pad_mode,
            power=self.power,
            n_mels=self.n_mels,
            fmin=self.fmin,
            fmax=self.fmax,
            htk=self.htk,
            norm=self.norm,
        )
        return config


@keras.saving.register_keras_serializable(package="seqapps")
class LogMelSpectrogram(_MelBase):
    """Log-mel spectrogram of a waveform, as librosa computes it.

    Input ``[batch, samples]`` float32 (optional bool ``mask`` ``[batch, samples]``);
    output ``[batch, frames, n_mels]`` with ``frames = 1 + samples // hop_length`` when
    ``center=True`` (else ``1 + (samples - n_fft) // hop_length``).

    The STFT/mel arguments are librosa's (``librosa.feature.melspectrogram``); defaults
    suit 16 kHz speech (n_fft=512, hop 10 ms, 64 mels) rather than librosa's music
    defaults. ``log``:

    - ``"db"``: ``librosa.power_to_db(S, ref=1.0, amin=amin, top_db=top_db)``, the
      ``top_db`` floor taken per utterance;
    - ``"natural"``: ``log(max(S, log_floor))``;
    - ``None``: the mel spectrogram itself.

    With ``center=True`` and ``pad_mode="reflect"`` the signal must be longer than
    ``n_fft // 2`` samples; inside a padded batch the reflection happens at the tensor's
    end, not at each clip's own end (frames past a clip's end are masked anyway).

    Example:
    >>> layer = LogMelSpectrogram(sample_rate=16000, n_mels=40)
    >>> layer(np.zeros((1, 8000), "float32")).shape
    TensorShape([1, 51, 40])
    """

    def __init__(
        self,
        *,
        log: str | None = "db",
        amin: float = 1e-10,
        top_db: float | None = 80.0,
        log_floor: float = 1e-6,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.log = _choice("log", log, ("db", "natural", None))
        if amin <= 0:
            raise invalid_argument("amin", amin, "positive")
        if top_db is not None and top_db < 0:
            raise invalid_argument("top_db", top_db, "non-negative or None")
        if log_floor <= 0:
            raise invalid_argument("log_floor", log_floor, "positive")
        self.amin = float(amin)
        self.top_db = None if top_db is None else float(top_db)
        self.log_floor = float(log_floor)

    def call(self, inputs, mask=None):
        mel = self._mel(inputs, mask)
        if self.log == "db":
            return self._to_db(mel, self.amin, self.top_db)
        if self.log == "natural":
            return tf.math.log(tf.maximum(mel, self.log_floor))
        return mel

    def get_config(self):
        config = super().get_config()
        config.update(log=self.log, amin=self.amin, top_db=self.top_db, log_floor=self.log_floor)
        return config


@keras.saving.register_keras_serializable(package="seqapps")
class MFCC(_MelBase):
    """MFCCs of a waveform, as ``librosa.feature.mfcc``.

    Input ``[batch, samples]`` (optional bool mask), output ``[batch, frames, n_mfcc]``:
    the dB mel spectrogram (``power_to_db(ref=1.0, amin, top_db)``), a type-2 "ortho"
    DCT over mels, the first ``n_mfcc`` coefficients, then the optional sinusoidal
    ``lifter`` (``1 + lifter / 2 * sin(pi * (n + 1) / lifter)``).

    Example:
    >>> layer = MFCC(sample_rate=16000, n_mfcc=13)
    >>> layer(np.zeros((2, 16000), "float32")).shape
    TensorShape([2, 101, 13])
    """

    def __init__(
        self,
        *,
        n_mfcc: int = 20,
        lifter: float = 0.0,
        amin: float = 1e-10,
        top_db: float | None = 80.0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.n_mfcc = _positive_int("n_mfcc", n_mfcc)
        if self.n_mfcc > self.n_mels:
            raise invalid_argument("n_mfcc", n_mfcc, f"at most n_mels={self.n_mels}")
        if lifter < 0:
            raise invalid_argument("lifter", lifter, "non-negative")
        if amin <= 0:
            raise invalid_argument("amin", amin, "positive")
        self.lifter = float(lifter)
        self.amin = float(amin)
        self.top_db = None if top_db is None else float(top_db)
        n = np.arange(1, self.n_mfcc + 1, dtype=np.float64)
        lift = 1 + (self.lifter / 2) * np.sin(np.pi * n / self.lifter) if self.lifter > 0 else np.ones_like(n)
        self._lifter_constant = tf.constant(lift, tf.float32)

    def _output_channels(self) -> int:
        return self.n_mfcc

    def call(self, inputs, mask=None):
        db = self._to_db(self._mel(inputs, mask), self.amin, self.top_db)
        coefficients = tf.signal.dct(db, type=2, norm="ortho")[..., : self.n_mfcc]
        return coefficients * self._lifter_constant

    def get_config(self):
        config = super().get_config()
        config.update(n_mfcc=self.n_mfcc, lifter=self.lifter, amin=self.amin, top_db=self.top_db)
        return config


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
    (3072, 6144)
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
        self.frame_length = _positive_int("frame_length", frame_length)
        self.hop_length = _positive_int("hop_length", hop_length)
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


@keras.saving.register_keras_serializable(package="seqapps")
class WaveAugment(keras.layers.Layer):
    """Waveform augmentation: random gain, additive noise, small time shift; identity at inference.

    Input ``[batch, samples]`` (optional bool mask). In training, per example:
    gain uniform in ``[-gain_db, +gain_db]`` dB; white noise at an SNR uniform in
    ``[min_snr_db, max_snr_db]`` relative to the example's (valid-sample) RMS
    (``add_noise=False`` turns it off); a shift of up to ``max_shift`` samples either way,
    zero-filled. The mask is unchanged, so samples shifted past the valid region are
    dropped and valid samples shifted in from padding are zeros.

    Example:
    >>> aug = WaveAugment(gain_db=6.0, max_shift=100)
    >>> x = np.random.default_rng(0).normal(size=(2, 1000)).astype("float32")
    >>> bool(np.all(np.asarray(aug(x)) == x))  # training=False by default
    True
    """

    def __init__(
        self,
        *,
        gain_db: float = 6.0,
        add_noise: bool = True,
        min_snr_db: float = 20.0,
        max_snr_db: float = 40.0,
        max_shift: int = 800,
        seed: int | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if gain_db < 0:
            raise invalid_argument("gain_db", gain_db, "non-negative")
        if min_snr_db > max_snr_db:
            raise invalid_argument("min_snr_db", min_snr_db, f"at most max_snr_db={max_snr_db}")
        if isinstance(max_shift, bool) or not isinstance(max_shift, (int, np.integer)) or max_shift < 0:
            raise invalid_argument("max_shift", max_shift, "a non-negative integer")
        self.gain_db = float(gain_db)
        self.add_noise = bool(add_noise)
        self.min_snr_db = float(min_snr_db)
        self.max_snr_db = float(max_snr_db)
        self.max_shift = int(max_shift)
        self.seed = seed
        self.supports_masking = True
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, inputs, mask=None, training=None):
        if not training:
            return inputs
        inputs = tf.convert_to_tensor(inputs, tf.float32)
        shape = tf.shape(inputs)
        batch, samples = shape[0], shape[1]
        valid = tf.ones_like(inputs) if mask is None else tf.cast(mask, inputs.dtype)
        outputs = inputs
        if self.max_shift:
            shift = tf.cast(
                tf.floor(
                    keras.random.uniform((batch, 1), 0.0, 1.0, seed=self.seed_generator)
                    * (2 * self.max_shift + 1)
                ),
                tf.int32,
            ) - self.max_shift
            source = tf.range(samples)[tf.newaxis, :] - shift  # output[t] = input[t - shift]
            inside = (source >= 0) & (source < samples)
            gathered = tf.gather(outputs, tf.clip_by_value(source, 0, samples - 1), batch_dims=1)
            outputs = tf.where(inside, gathered, 0.0)
        if self.gain_db:
            gain_db = keras.random.uniform((batch, 1), -self.gain_db, self.gain_db, seed=self.seed_generator)
            outputs = outputs * tf.pow(10.0, gain_db / 20.0)
        if self.add_noise:
            count = tf.maximum(tf.reduce_sum(valid, axis=1, keepdims=True), 1.0)
            rms = tf.sqrt(tf.reduce_sum(tf.square(outputs * valid), axis=1, keepdims=True) / count)
            snr = keras.random.uniform((batch, 1), self.min_snr_db, self.max_snr_db, seed=self.seed_generator)
            noise = keras.random.normal((batch, samples), seed=self.seed_generator)
            outputs = outputs + noise * rms * tf.pow(10.0, -snr / 20.0)
        return outputs * valid

    def compute_mask(self, inputs, mask=None):
        return mask

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update(
            gain_db=self.gain_db,
            add_noise=self.add_noise,
            min_snr_db=self.min_snr_db,
            max_snr_db=self.max_snr_db,
            max_shift=self.max_shift,
            seed=self.seed,
        )
        return config
