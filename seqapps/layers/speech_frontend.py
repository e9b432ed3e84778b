"""A speech frontend in one layer: augment, place, spectral features, deltas, CMVN.

``SpeechFrontend`` chains, inside the graph,

    waveform [batch, samples] (+ sample mask)
      -> training-only waveform augmentations (identity at inference)
      -> placement: "none" | "trim" (mask narrowed to the speech, as librosa.effects.trim)
                    | "centre" (speech moved to the middle of the window, all valid)
      -> spectral layer (LogMelSpectrogram or MFCC)
      -> optional Deltas
      -> optional per-utterance mean/variance normalisation (CMVN)
    features [batch, frames, F] (+ frame mask from compute_mask)

so a model exported with it still takes raw audio. ``CentreSpeech`` is the placement
step on its own.

>>> import numpy as np
>>> from seqapps.layers.audio_frontends import MFCC
>>> frontend = SpeechFrontend(spectral=MFCC(sample_rate=8000, n_mels=32, n_mfcc=13),
...                           deltas=2, normalization="utterance")
>>> frontend(np.zeros((2, 8000), "float32")).shape
TensorShape([2, 51, 39])
"""

from __future__ import annotations

import keras
import tensorflow as tf

from seqapps.errors import invalid_argument
from seqapps.layers.audio_frontends import UtteranceNormalization
from seqapps.layers.augmentation import shift_samples
from seqapps.layers.deltas import Deltas
from seqapps.layers.trim_silence import TrimSilence

__all__ = ["CentreSpeech", "SpeechFrontend"]

PLACEMENTS = ("none", "trim", "centre")
NORMALIZATIONS = ("none", "utterance")


@keras.saving.register_keras_serializable(package="seqapps")
class CentreSpeech(keras.layers.Layer):
    """Move the non-silent span of each waveform to the middle of the window.

    The span is ``TrimSilence(top_db=top_db)``'s (librosa.effects.trim); the waveform is
    shifted (zero-filled) so that the span's centre falls on sample ``samples // 2``.
    ``compute_mask`` returns all True: the silence around the word is part of what the
    model sees, at the same place for every clip (a short file padded to the window and
    a full-length recording alike). A silent clip is not moved.

    Example:
    >>> import numpy as np
    >>> wave = np.zeros((1, 16000), "float32"); wave[0, 1000:3000] = 1.0
    >>> out = np.asarray(CentreSpeech(top_db=20)(wave))
    >>> first, last = np.flatnonzero(out[0])[[0, -1]]
    >>> bool(abs((first + last) / 2 - 8000) < 128)  # centred to within one trim hop
    True
    """

    def __init__(self, *, top_db: float = 40.0, frame_length: int = 512, hop_length: int = 128, **kwargs):
        super().__init__(**kwargs)
        self.top_db = float(top_db)
        self.frame_length = int(frame_length)
        self.hop_length = int(hop_length)
        self.supports_masking = True
        self.trim = TrimSilence(top_db=top_db, frame_length=frame_length, hop_length=hop_length)

    def build(self, input_shape):
        self.trim.build(input_shape)
        self.built = True

    def shift(self, inputs, mask=None):
        """Samples to shift each example by, [batch] int32."""
        keep = tf.cast(self.trim.compute_mask(inputs, mask), tf.int32)
        samples = tf.shape(inputs)[1]
        start = tf.argmax(keep, axis=1, output_type=tf.int32)
        end = samples - tf.argmax(tf.reverse(keep, [1]), axis=1, output_type=tf.int32)
        shift = samples // 2 - (start + end) // 2
        return tf.where(tf.reduce_any(keep > 0, axis=1), shift, 0)

    def call(self, inputs, mask=None):
        inputs = tf.convert_to_tensor(inputs, tf.float32)
        if mask is not None:
            inputs = inputs * tf.cast(mask, inputs.dtype)
        return shift_samples(inputs, self.shift(inputs, mask))

    def compute_mask(self, inputs, mask=None):
        return None if mask is None else keras.ops.ones_like(mask, dtype="bool")

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        return {**super().get_config(), "top_db": self.top_db, "frame_length": self.frame_length,
                "hop_length": self.hop_length}


@keras.saving.register_keras_serializable(package="seqapps")
class SpeechFrontend(keras.layers.Layer):
    """Waveform in, normalised speech features out; see the module docstring.

    Args:
        spectral: ``LogMelSpectrogram`` or ``MFCC`` layer (or its serialized config).
        augmentations: training-only layers on the waveform (``seqapps.layers.augmentation``),
            applied in order; each is the identity at inference.
        placement: ``"none"``, ``"trim"`` (only the speech frames are valid) or
            ``"centre"`` (the speech moved to the window's middle, every frame valid).
        deltas: 0, 1 or 2: append that many orders of ``Deltas(width=delta_width)``.
        delta_width: odd width in frames of the delta filter.
        normalization: ``"none"`` or ``"utterance"`` (``UtteranceNormalization`` over the
            valid frames of each window).
        top_db: the silence threshold of "trim" and "centre", in dB below the peak.
        tempo: an optional training-only ``TempoPerturbation`` of the spectral frames
            (before deltas and CMVN), with the frame mask moved along.

    Input ``[batch, samples]`` with optional bool ``mask`` ``[batch, samples]``; output
    ``[batch, frames, F]``; ``compute_mask`` gives the frame mask.
    """

    def __init__(self, *, spectral, augmentations=(), placement: str = "none", deltas: int = 0,
                 delta_width: int = 9, normalization: str = "none", top_db: float = 40.0, tempo=None, **kwargs):
        super().__init__(**kwargs)
        if isinstance(spectral, dict):
            spectral = keras.saving.deserialize_keras_object(spectral)
        if placement not in PLACEMENTS:
            raise invalid_argument("placement", placement, "one of " + ", ".join(map(repr, PLACEMENTS)))
        if normalization not in NORMALIZATIONS:
            raise invalid_argument("normalization", normalization,
                                   "one of " + ", ".join(map(repr, NORMALIZATIONS)))
        if deltas not in (0, 1, 2) or isinstance(deltas, bool):
            raise invalid_argument("deltas", deltas, "0, 1 or 2")
        self.spectral = spectral
        self.augmentations = [keras.saving.deserialize_keras_object(a) if isinstance(a, dict) else a
                              for a in augmentations]
        self.tempo = keras.saving.deserialize_keras_object(tempo) if isinstance(tempo, dict) else tempo
        self.placement = placement
        self.deltas = int(deltas)
        self.delta_width = int(delta_width)
        self.normalization = normalization
        self.top_db = float(top_db)
        self.supports_masking = True
        self.trim = TrimSilence(top_db=top_db, frame_length=512, hop_length=128) if placement == "trim" else None
        self.centre = CentreSpeech(top_db=top_db) if placement == "centre" else None
        self.delta_layer = Deltas(order=self.deltas, width=self.delta_width) if self.deltas else None
        self.cmvn = UtteranceNormalization() if normalization == "utterance" else None

    def _placed(self, inputs, mask, training):
        x = tf.convert_to_tensor(inputs, tf.float32)
        if training:
            for layer in self.augmentations:
                x = layer(x, mask=mask, training=True)
        if self.trim is not None:
            mask = self.trim.compute_mask(x, mask)
            x = x * tf.cast(mask, x.dtype)
        elif self.centre is not None:
            x, mask = self.centre(x, mask=mask), tf.ones_like(x, tf.bool)
        return x, mask

    def features_and_mask(self, inputs, mask=None, training=None):
        """(features [batch, frames, F], frame mask [batch, frames] or None) from one pass,
        so that in training the mask follows the augmented waveform ("trim" after a shift)."""
        x, sample_mask = self._placed(inputs, mask, training)
        features = self.spectral(x, mask=sample_mask)
        frame_mask = None if sample_mask is None else self.spectral.compute_mask(x, sample_mask)
        if self.tempo is not None and training:
            features, frame_mask = self.tempo.stretch(features, frame_mask, training=True)
        if self.delta_layer is not None:
            features = self.delta_layer(features)
        if self.cmvn is not None:
            features = self.cmvn(features, mask=frame_mask)
        return features, frame_mask

    def call(self, inputs, mask=None, training=None):
        return self.features_and_mask(inputs, mask, training=training)[0]

    def compute_mask(self, inputs, mask=None):
        if mask is None and self.trim is None:
            return None
        x, sample_mask = self._placed(inputs, mask, training=False)
        return self.spectral.compute_mask(x, sample_mask)

    def build(self, input_shape):
        self.spectral.build(input_shape)
        self.built = True

    def compute_output_shape(self, input_shape):
        batch, frames, features = self.spectral.compute_output_shape(input_shape)
        return (batch, frames, features * (self.deltas + 1))

    def get_config(self):
        return {
            **super().get_config(),
            "spectral": keras.saving.serialize_keras_object(self.spectral),
            "augmentations": [keras.saving.serialize_keras_object(a) for a in self.augmentations],
            "placement": self.placement,
            "deltas": self.deltas,
            "delta_width": self.delta_width,
            "normalization": self.normalization,
            "top_db": self.top_db,
            "tempo": None if self.tempo is None else keras.saving.serialize_keras_object(self.tempo),
        }
