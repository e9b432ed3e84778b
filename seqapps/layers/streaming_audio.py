"""The raw streaming step of audio models: waveform chunks of any length in.

``AudioRawStream`` frames the samples itself (the state keeps the last ``n_fft - 1``),
then runs the frontend's mel and log steps, the recurrence and the head; its layout and
guarantees are in seqapps.layers.streaming's module doc. A chunk that completes one frame
in every row (10 ms chunks of a 10 ms hop, the live case) runs a step traced with a
static frame count of 1: the recurrence is one written-out step and the window a sum.

>>> import numpy as np
>>> from seqapps.layers import LogMelSpectrogram
>>> from seqapps.tasks import SequenceClassifier
>>> model = SequenceClassifier(num_classes=2, input_shape=(16000,), units=4,
...                            frontend=LogMelSpectrogram(n_mels=8))
>>> stream = AudioRawStream(model, window_frames=None)
>>> int(stream.frames_completed(16000))   # the last frames need the end padding
99
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from seqapps.errors import invalid_argument
from seqapps.layers.running_ops import running_max
from seqapps.layers.streaming import _RawStream

__all__ = ["AudioRawStream"]


class AudioRawStream(_RawStream):
    """Streaming step of a model with a LogMelSpectrogram / MFCC frontend (see module doc)."""

    input_name = "waveform"

    def __init__(self, model, **options):
        super().__init__(model, **options)
        frontend = self.frontend
        if frontend.center and frontend.pad_mode != "constant":
            # Reflection at the start needs samples n_fft // 2 ahead; not supported.
            raise invalid_argument(
                "model.frontend.pad_mode", frontend.pad_mode, "'constant' for streaming (or center=False)"
            )
        if frontend.n_fft < 2:
            raise invalid_argument("model.frontend.n_fft", frontend.n_fft, "at least 2 for streaming")
        self.n_fft = frontend.n_fft
        self.hop = frontend.hop_samples
        self.half = frontend.n_fft // 2 if frontend.center else 0
        self.sample_rate = frontend.sample_rate
        self.floor_db = float(10.0 * np.log10(frontend.amin)) if frontend.floors_by_peak else None

    @property
    def frame_ms(self) -> float:
        return 1000.0 * self.hop / self.sample_rate

    def _training_window(self):
        samples = self.model.raw_input_shape[0] if self.model.raw_input_shape else None
        return None if samples is None else int(self.frontend.compute_output_shape((None, samples))[1])

    def _normalise(self, features, valid, done, state, new_state, *, single=False):
        return features  # SpeechRawStream: running CMVN (its statistic into new_state)

    @property
    def flush_samples(self) -> int:
        """Zeros to send after the last chunk to get the frames of the end padding."""
        return self.half

    def input_spec(self):
        return tf.TensorSpec([None, None], tf.float32, name="waveform")

    def _frontend_state_spec(self):
        specs = {
            "pending_samples": tf.TensorSpec([None, self.n_fft - 1], tf.float32, name="pending_samples"),
            "samples_seen": tf.TensorSpec([None], tf.int64, name="samples_seen"),
        }
        if self.floor_db is not None:
            specs["peak_db"] = tf.TensorSpec([None], tf.float32, name="peak_db")
        return specs

    def _initial_value(self, name):
        # The lowest dB the frontend produces: the running max of nothing.
        return self.floor_db if name == "peak_db" else 0

    def _describe_frontend(self):
        return {
            "kind": "audio",
            "sample_rate": self.sample_rate,
            "hop_samples": self.hop,
            "frame_seconds": self.hop / self.sample_rate,
            "lookahead_samples": self.n_fft - self.half - 1,
            "flush_samples": self.flush_samples,
            "normalisation": "running peak for the top_db floor" if self.floor_db is not None else "fixed",
            "window_frames": self.window_frames,
        }

    def frames_completed(self, samples):
        """Frames the stream has emitted after `samples` samples (NumPy or TF int64)."""
        padded = samples + self.half
        if isinstance(padded, (int, np.integer, np.ndarray)):
            return np.maximum((padded - self.n_fft) // self.hop + 1, 0)
        return tf.maximum(tf.math.floordiv(padded - self.n_fft, self.hop) + 1, 0)

    @staticmethod
    def _aligned_start(offset):
        """Where every row's first new frame starts in `signal` (rows aligned; 0 for no rows)."""
        return tf.reduce_max(tf.concat([offset, tf.zeros([1], tf.int64)], 0))

    def _frames_aligned(self, signal, offset, count):
        # Every row's first new frame at the same place (rows started together): one slice
        # and tf.signal.frame, several times faster than gathering every frame's samples.
        start = self._aligned_start(offset)
        length = tf.maximum(count - 1, 0) * self.hop + self.n_fft
        frames = tf.signal.frame(signal[:, start:start + length], self.n_fft, self.hop, pad_end=False)
        return frames[:, :count]

    def _frames_gathered(self, signal, offset, count, valid):
        starts = offset[:, tf.newaxis] + tf.range(count, dtype=tf.int64)[tf.newaxis] * self.hop
        starts = tf.where(valid, starts, 0)  # a row completing fewer frames reads dummy ones
        positions = starts[:, :, tf.newaxis] + tf.range(self.n_fft, dtype=tf.int64)
        return tf.gather(signal, positions, axis=1, batch_dims=1)

    def _step(self, waveform, state, reset):
        state = self._reset(state, reset)
        seen = state["samples_seen"]
        chunk = tf.cast(tf.shape(waveform)[1], tf.int64)
        signal = tf.concat([state["pending_samples"], waveform], axis=1)  # signal[0] = padded[seen + half - n_fft + 1]
        first = self.frames_completed(seen)
        done = self.frames_completed(seen + chunk) - first  # [batch]
        offset = first * self.hop - (seen + self.half - (self.n_fft - 1))  # row's first frame in `signal`
        aligned = tf.reduce_all(offset == offset[:1])
        # The live case, every row completing one frame at the same place (chunks of one
        # hop): the same steps traced with a static frame count of 1, so the recurrence is
        # one step written out and the window a sum (no loops, no gathers). Same numbers.
        outputs, new_state, valid, index = tf.cond(
            tf.logical_and(aligned, tf.reduce_all(done == 1)),
            lambda: self._frames_to_outputs(signal, offset, aligned, done, first, state, single=True),
            lambda: self._frames_to_outputs(signal, offset, aligned, done, first, state, single=False),
        )
        keep = tf.shape(signal)[1] - (self.n_fft - 1)
        centre = index * self.hop + (0 if self.frontend.center else self.n_fft // 2)
        return {
            **outputs,
            "frame_mask": valid,
            "frame_index": index,
            "frame_times": tf.cast(tf.cast(centre, tf.float64) / self.sample_rate, tf.float32),
            "pending_samples": signal[:, keep:],
            "samples_seen": seen + chunk,
            **new_state,
        }

    def _frames_to_outputs(self, signal, offset, aligned, done, first, state, *, single):
        """(outputs, new state, frame mask, frame index) of the frames this chunk completes."""
        if single:
            # [batch, n_fft]: the frontend's steps and the products run on 2-D tensors, so
            # no reshapes around them (the per-op cost is most of a 10 ms chunk's time).
            start = self._aligned_start(offset)
            frames = signal[:, start:start + self.n_fft]
            count = tf.constant(1, tf.int64)
            valid = tf.ones_like(done[:, tf.newaxis], tf.bool)
        else:
            count = tf.reduce_max(tf.concat([done, [0]], 0))
            valid = tf.range(count, dtype=tf.int64)[tf.newaxis] < done[:, tf.newaxis]
            frames = tf.cond(
                aligned,
                lambda: self._frames_aligned(signal, offset, count),
                lambda: self._frames_gathered(signal, offset, count, valid),
            )  # [batch, count, n_fft]
        index = first[:, tf.newaxis] + tf.range(count, dtype=tf.int64)[tf.newaxis]
        mel = self.frontend.mel_of_frames(frames)
        new_state = {}
        if single and self.floor_db is not None:  # mel [batch, n_mels]
            running = tf.maximum(state["peak_db"], self.frontend.frame_peak_db(mel))  # [batch]
            features = self.frontend.features_of_mel(mel, peak_db=running)
            new_state["peak_db"] = running
        elif self.floor_db is not None:
            frame_peak = tf.where(valid, self.frontend.frame_peak_db(mel), self.floor_db)
            running = tf.maximum(state["peak_db"][:, tf.newaxis], running_max(frame_peak))
            features = self.frontend.features_of_mel(mel, peak_db=running)
            new_state["peak_db"] = tf.maximum(state["peak_db"], tf.reduce_max(frame_peak, axis=1))
        else:
            features = self.frontend.features_of_mel(mel)
        features = self._normalise(features, valid, done, state, new_state, single=single)
        if single:
            features = features[:, tf.newaxis]  # [batch, 1, F] for the recurrence
        outputs, recurrent = self._recur(features, state, done, first, single=single)
        new_state.update(recurrent)
        new_state.update(self._detect(outputs, valid, state))
        return outputs, new_state, valid, index
