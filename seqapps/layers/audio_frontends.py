"""Audio frontends as Keras layers: raw waveform in, features out, all in the graph.

Everything here is built from ``tf.signal`` ops and constants computed once with librosa
(the mel filterbank, the analysis window), so a model exported for serving takes raw
audio and computes exactly what training computed.

Layers (all registered under the "seqapps" package, dynamic batch and length):

- ``LogMelSpectrogram``: ``[batch, samples] -> [batch, frames, n_mels]``, matches
  ``librosa.power_to_db(librosa.feature.melspectrogram(...), ref=1.0)``.
- ``MFCC``: ``[batch, samples] -> [batch, frames, n_mfcc]``, matches
  ``librosa.feature.mfcc(...)`` (DCT type 2, "ortho", optional lifter).

``TrimSilence`` (seqapps.layers.trim_silence), ``UtteranceNormalization``
(seqapps.layers.normalization), ``SpecAugment`` (seqapps.layers.spec_augment) and
``WaveAugment`` (seqapps.layers.augmentation) lived here once and are still importable
from this module.

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
from seqapps.layers.running_ops import matmul_last_axis

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

    @property
    def hop_samples(self) -> int:
        """Samples between frames (``hop_length``, or librosa's default ``win_length // 4``)."""
        return self._hop

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
        return self.mel_of_frames(frames)

    def mel_of_frames(self, frames):
        """Mel power (or magnitude) of frames of the padded signal: [..., n_fft] -> [..., n_mels].

        The step after framing, public so that a stream (seqapps.layers.streaming) that
        frames the signal itself computes exactly what ``call`` computes.
        """
        spectrum = tf.signal.rfft(frames * self._window_constant)
        power = tf.math.square(tf.math.real(spectrum)) + tf.math.square(tf.math.imag(spectrum))
        if self.power == 1.0:
            power = tf.math.sqrt(power)
        return matmul_last_axis(power, self._mel_constant)

    @property
    def floors_by_peak(self) -> bool:
        """Whether features depend on the utterance's loudest frame (the top_db floor)."""
        return getattr(self, "top_db", None) is not None and getattr(self, "log", "db") == "db"

    def frame_peak_db(self, mel):
        """The loudest mel bin of each frame in dB, [batch, frames, n_mels] -> [batch, frames]:
        the utterance's peak (the top_db reference) is the maximum of these."""
        return tf.reduce_max(self._db(mel), axis=-1)

    def _db(self, mel):
        return 10.0 * tf.math.log(tf.maximum(mel, self.amin)) / math.log(10.0)

    def _to_db(self, mel, peak_db=None):
        # librosa.power_to_db(S, ref=1.0, amin, top_db); the top_db floor is taken per
        # utterance, as librosa would do when called on one clip at a time, unless a
        # reference `peak_db` [batch, frames] is given (a stream's running peak).
        db = self._db(mel)
        if self.top_db is not None:
            if peak_db is None:
                peak = tf.reduce_max(db, axis=[1, 2], keepdims=True)
            else:
                peak = tf.cast(peak_db, db.dtype)[..., tf.newaxis]
            db = tf.maximum(db, peak - self.top_db)
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
        return self.features_of_mel(self._mel(inputs, mask))

    def features_of_mel(self, mel, *, peak_db=None):
        """Features of mel frames [batch, frames, n_mels]; `peak_db` [batch, frames] replaces
        the utterance's peak as the top_db reference (None: the peak of `mel` itself)."""
        if self.log == "db":
            return self._to_db(mel, peak_db)
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
        return self.features_of_mel(self._mel(inputs, mask))

    def features_of_mel(self, mel, *, peak_db=None):
        """MFCCs of mel frames [batch, frames, n_mels]; `peak_db` as in LogMelSpectrogram."""
        db = self._to_db(mel, peak_db)
        coefficients = tf.signal.dct(db, type=2, norm="ortho")[..., : self.n_mfcc]
        return coefficients * self._lifter_constant

    def get_config(self):
        config = super().get_config()
        config.update(n_mfcc=self.n_mfcc, lifter=self.lifter, amin=self.amin, top_db=self.top_db)
        return config


# Moved to modules of their own; imported here so that older code and .keras files that
# name this module keep working (they are registered under "seqapps>Name" either way).
from seqapps.layers.augmentation import WaveAugment  # noqa: E402
from seqapps.layers.normalization import UtteranceNormalization  # noqa: E402
from seqapps.layers.spec_augment import SpecAugment  # noqa: E402
from seqapps.layers.trim_silence import TrimSilence  # noqa: E402
