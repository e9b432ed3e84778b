"""Raw streaming of a model whose frontend is a ``SpeechFrontend`` (running CMVN).

``SpeechRawStream`` is ``AudioRawStream`` (seqapps.layers.streaming) on the frontend's
spectral layer (LogMelSpectrogram or MFCC). Its training-only augmentations are the
identity at inference and are skipped. What cannot stream is refused: "trim" and
"centre" placement need the whole clip (the speech span is found from the loudest
part), deltas need future frames (a centred filter ``delta_width // 2`` frames ahead).

Per-utterance CMVN (``normalization="utterance"``: mean and variance per feature over
the clip) becomes a causal running statistic: frame t is normalised with the mean and
variance of one of

    "cumulative"  every frame 0..t since the stream started (the default);
    "ema"         an exponential moving average with a time constant of the training
                  window (decay ``1 - 1 / frames``), bias-corrected as Adam does.

The state holds the statistic after the last frame: ``cmvn_count`` float32 [batch]
(frames so far), ``cmvn_mean`` and ``cmvn_variance`` float32 [batch, F] (the mean and
variance, not sums of x and x^2: those lose a quiet start's variance to float32
cancellation). ``y = (x - mean) / sqrt(var + epsilon)`` as ``UtteranceNormalization``. At the end of a clip streamed from its start the cumulative
statistic is the clip's own; benchmarks/streaming_cmvn.py measures both choices against
``predict_clip``.

>>> import numpy as np
>>> from seqapps.layers import LogMelSpectrogram, SpeechFrontend
>>> from seqapps.tasks import SequenceClassifier
>>> frontend = SpeechFrontend(spectral=LogMelSpectrogram(n_mels=8), normalization="utterance")
>>> model = SequenceClassifier(num_classes=2, input_shape=(16000,), units=4, frontend=frontend)
>>> stream = SpeechRawStream(model, window_frames=None)
>>> result = stream.step(np.zeros((1, 1600), "float32"), stream.initial_state(1))
>>> result["cmvn_mean"].shape, int(result["cmvn_count"][0])
(TensorShape([1, 8]), 9)
"""

from __future__ import annotations

import tensorflow as tf

from seqapps.errors import invalid_argument
from seqapps.layers.streaming import AudioRawStream

__all__ = ["CMVN_STATISTICS", "SpeechRawStream"]

CMVN_STATISTICS = ("cumulative", "ema")


class SpeechRawStream(AudioRawStream):
    """Streaming step of a model with a streamable ``SpeechFrontend`` (module doc).

    Args:
        model: a SequenceClassifier / SequenceRegressor whose frontend is a SpeechFrontend.
        cmvn: "cumulative" or "ema" (used only with ``normalization="utterance"``).
        **options: as ``raw_stream`` (detection, background, window_frames="auto").
    """

    def __init__(self, model, *, cmvn: str = "cumulative", **options):
        speech = model.frontend
        if speech.placement != "none":
            raise invalid_argument(
                "model.frontend.placement", speech.placement,
                "'none' for streaming (trim and centre find the speech span from the whole clip)")
        if speech.deltas:
            raise invalid_argument(
                "model.frontend.deltas", speech.deltas,
                f"0 for streaming (deltas need {speech.delta_width // 2} future frames)")
        if cmvn not in CMVN_STATISTICS:
            raise invalid_argument("cmvn", cmvn, "one of " + ", ".join(map(repr, CMVN_STATISTICS)))
        self.spectral = speech.spectral  # what AudioRawStream streams
        self.cmvn = speech.cmvn  # UtteranceNormalization or None
        self.statistic = cmvn
        options.setdefault("window_frames", "auto")  # raw_stream's default
        super().__init__(model, **options)
        self.cmvn_frames = self._training_window() or 1 + self.sample_rate // self.hop

    @property
    def decay(self) -> float:
        """How much of the average each frame keeps: 1 (cumulative) or 1 - 1 / frames."""
        return 1.0 if self.statistic == "cumulative" else 1.0 - 1.0 / self.cmvn_frames

    def _frontend_state_spec(self):
        specs = super()._frontend_state_spec()
        if self.cmvn is not None:
            width = int(self.frontend.compute_output_shape((None, self.n_fft))[-1])
            specs["cmvn_count"] = tf.TensorSpec([None], tf.float32, name="cmvn_count")
            for name in ("cmvn_mean", "cmvn_variance"):
                specs[name] = tf.TensorSpec([None, width], tf.float32, name=name)
        return specs

    def _describe_frontend(self):
        description = super()._describe_frontend()
        if self.cmvn is not None:
            kind = ("cumulative mean/variance since the stream started" if self.statistic == "cumulative" else
                    f"bias-corrected exponential moving average over {self.cmvn_frames} frames")
            description["normalisation"] += f"; per-utterance CMVN as a running statistic: {kind}"
            description["cmvn"] = {"statistic": self.statistic, "decay": self.decay, "epsilon": self.cmvn.epsilon}
        return description

    def _normalise(self, features, valid, done, state, new_state, *, single=False):
        if self.cmvn is None:
            return features
        if single:
            return self._normalise_one_frame(features, state, new_state)
        x = tf.cast(features, tf.float32)
        frames = tf.shape(x)[1]
        steps = tf.range(frames)
        beta = self.decay
        old_count, old_mean, old_variance = state["cmvn_count"], state["cmvn_mean"], state["cmvn_variance"]
        # Sums of deviations from a shift c near the mean (the running mean, or a fresh
        # stream's first frame), not of x and x^2: E[x^2] - E[x]^2 of dB values in float32
        # loses the variance of a quiet start to cancellation.
        fresh = (old_count == 0)[:, tf.newaxis]
        shift = tf.where(fresh, tf.concat([x, old_mean[:, tf.newaxis]], axis=1)[:, 0], old_mean)
        old_weight = self._weight(old_count)[:, tf.newaxis]
        old_first = old_weight * (old_mean - shift)  # old frames' sum of (x - c), weighted
        old_second = old_weight * (old_variance + tf.square(old_mean - shift))
        d = (x - shift[:, tf.newaxis]) * tf.cast(valid, tf.float32)[..., tf.newaxis]
        if beta == 1.0:  # cumulative: memory linear in the chunk's frames
            first = old_first[:, tf.newaxis] + tf.cumsum(d, axis=1)
            second = old_second[:, tf.newaxis] + tf.cumsum(d * d, axis=1)
        else:
            # weights[i, j] = beta^(i - j) for j <= i: the decayed running sums inside the
            # chunk as one matmul (no loop: a loop's fixed cost dominates a 10 ms chunk);
            # [frames, frames] per call, so chunks of minutes want the cumulative statistic.
            lag = tf.cast(steps[:, tf.newaxis] - steps[tf.newaxis, :], tf.float32)  # [to, from]
            weights = tf.where(lag >= 0, tf.pow(beta, tf.maximum(lag, 0.0)), 0.0)
            carried = tf.pow(beta, tf.cast(steps + 1, tf.float32))[tf.newaxis, :, tf.newaxis]
            first = carried * old_first[:, tf.newaxis] + (1.0 - beta) * tf.linalg.matmul(weights, d)
            second = carried * old_second[:, tf.newaxis] + (1.0 - beta) * tf.linalg.matmul(weights, d * d)
        count = old_count[:, tf.newaxis] + tf.cast(steps + 1, tf.float32)  # [batch, frames]
        weight = self._weight(count)[..., tf.newaxis]
        offset = first / weight
        mean = shift[:, tf.newaxis] + offset
        variance = tf.maximum(second / weight - tf.square(offset), 0.0)
        normalised = (x - mean) * tf.math.rsqrt(variance + self.cmvn.epsilon)
        for name, old, running in (("cmvn_count", old_count, count), ("cmvn_mean", old_mean, mean),
                                   ("cmvn_variance", old_variance, variance)):
            # the value after each row's last completed frame (a row completing none keeps its own)
            with_old = tf.concat([old[:, tf.newaxis], running], axis=1)
            new_state[name] = tf.gather(with_old, done, axis=1, batch_dims=1)
        return normalised

    def _normalise_one_frame(self, features, state, new_state):
        """The same statistic after one more frame x [batch, F] (every row completed one), as a
        weighted Welford update: the chunk loop's few ops instead of its running sums.
        With W the total weight before and W' = beta W + w after (w = 1 cumulative,
        1 - beta EMA): mean' = mean + w / W' (x - mean), and
        var' = (beta W (var + (mean - mean')^2) + w (x - mean')^2) / W'."""
        x = tf.cast(features, tf.float32)  # [batch, F]
        beta = self.decay
        count, mean, variance = state["cmvn_count"], state["cmvn_mean"], state["cmvn_variance"]
        kept = (beta * self._weight(count))[:, tf.newaxis]  # the old frames' weight now
        gain = 1.0 if beta == 1.0 else 1.0 - beta
        total = kept + gain
        new_mean = mean + (gain / total) * (x - mean)
        new_variance = (kept * (variance + tf.square(mean - new_mean)) + gain * tf.square(x - new_mean)) / total
        new_state.update(cmvn_count=count + 1.0, cmvn_mean=new_mean, cmvn_variance=new_variance)
        return (x - new_mean) * tf.math.rsqrt(new_variance + self.cmvn.epsilon)

    def _weight(self, count):
        """The total weight of `count` frames: the count, or 1 - beta^count (the EMA's
        bias correction, as Adam's)."""
        return count if self.decay == 1.0 else 1.0 - tf.pow(self.decay, count)
