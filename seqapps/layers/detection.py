"""Keyword / sound-event detection from per-frame posteriors, as TF's ``RecognizeCommands``.

The semantics are those of tensorflow/examples/speech_commands/recognize_commands.py:

1. every result (the class scores of one frame, with its time) joins a window that keeps
   the results of the last ``average_window_ms`` (inclusive: results at ``t - window`` stay);
2. while the window holds fewer than ``minimum_count`` results, or spans less than a quarter
   of ``average_window_ms``, nothing is decided (score 0);
3. otherwise the scores are averaged over the window; the top class fires a detection when
   its average exceeds ``threshold``, it differs from the class that fired last, and more
   than ``suppression_ms`` passed since that firing (always, when the last firing was a
   background class or there was none).

Background classes (``background``, e.g. "_silence_") fire internally, as TF's "_silence_"
does, but are never reported. Beyond TF, a reported event also gets an ``end``: the last
frame at which the averaged top class was still this class above the threshold, and its
``score`` is the highest average over [start, end]; ``start`` is the firing time.

``Recognizer`` is the NumPy implementation (chunk by chunk, any increasing times);
``detect_in_graph`` the same rule as TF ops for uniformly spaced frames, with its state in
tensors, for a streaming signature.

>>> import numpy as np
>>> recognizer = Recognizer(["_silence_", "yes"], average_window_ms=30, threshold=0.6,
...                         suppression_ms=0, minimum_count=2, background=["_silence_"])
>>> scores = np.array([[1, 0], [1, 0], [0, 1], [0, 1], [0, 1], [0, 1], [1, 0], [1, 0]], float)
>>> events = recognizer.update(scores, np.arange(8) * 10.0) + recognizer.finish()
>>> [(e.label, e.start, e.end, e.score) for e in events]
[('yes', 0.04, 0.06, 1.0)]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import tensorflow as tf

from seqapps.errors import invalid_argument
from seqapps.layers.running_ops import window_sums

__all__ = ["DetectionSettings", "Event", "Recognizer", "detect_in_graph", "detection_state_spec"]


@dataclass(frozen=True)
class DetectionSettings:
    """RecognizeCommands' parameters (defaults of TF's test_streaming_accuracy.py)."""

    average_window_ms: float = 500.0
    threshold: float = 0.7
    suppression_ms: float = 500.0
    minimum_count: int = 4

    def __post_init__(self):
        if not self.average_window_ms > 0:
            raise invalid_argument("average_window_ms", self.average_window_ms, "a positive number")
        if not 0 <= self.threshold <= 1:
            raise invalid_argument("threshold", self.threshold, "a number in [0, 1]")
        if not self.suppression_ms >= 0:
            raise invalid_argument("suppression_ms", self.suppression_ms, "a non-negative number")
        if isinstance(self.minimum_count, bool) or not isinstance(self.minimum_count, (int, np.integer)) \
                or self.minimum_count < 1:
            raise invalid_argument("minimum_count", self.minimum_count, "a positive integer")


@dataclass
class Event:
    """One detection: times in seconds; `score` the highest averaged score."""

    label: str
    start: float
    end: float
    score: float

    def as_dict(self) -> dict:
        return asdict(self)


class Recognizer:
    """RecognizeCommands over chunks of per-frame scores (see the module docstring).

    Args:
        labels: class names, in the order of the scores.
        average_window_ms, threshold, suppression_ms, minimum_count: DetectionSettings.
        background: labels never reported (they still fire and reset suppression).

    ``update(scores [frames, classes], times_ms [frames])`` returns the events that
    ended within these frames; ``finish()`` the one still open at the end of the stream.
    Event times are in seconds.
    """

    def __init__(self, labels: Sequence[str], *, average_window_ms: float = 500.0, threshold: float = 0.7,
                 suppression_ms: float = 500.0, minimum_count: int = 4, background: Sequence[str] = ()):
        self.labels = [str(label) for label in labels]
        if len(self.labels) < 1:
            raise invalid_argument("labels", labels, "a non-empty list of class names")
        unknown = [b for b in background if b not in self.labels]
        if unknown:
            raise invalid_argument("background", list(background), f"labels among {self.labels}")
        self.settings = DetectionSettings(average_window_ms, threshold, suppression_ms, minimum_count)
        self.background = {self.labels.index(b) for b in background}
        self.reset()

    def reset(self) -> None:
        """Forget the stream: an empty window, no previous firing."""
        self._times = np.zeros(0)
        self._scores = np.zeros((0, len(self.labels)))
        self._previous = None  # class id of the last firing (None: TF's initial "_silence_")
        self._previous_time = -np.inf
        self._open = None  # [label id, start ms, end ms, best score] of the event being extended

    def averages(self, scores, times_ms):
        """(top class [frames], its average score [frames], decided [frames]) of each frame,
        after appending them to the window; does not fire anything."""
        scores = np.asarray(scores, np.float64)
        times_ms = np.asarray(times_ms, np.float64)
        if scores.ndim != 2 or scores.shape[1] != len(self.labels):
            raise invalid_argument("scores.shape", scores.shape, f"[frames, {len(self.labels)}]")
        if times_ms.shape != scores.shape[:1]:
            raise invalid_argument("times_ms.shape", times_ms.shape, f"[{scores.shape[0]}]")
        times = np.concatenate([self._times, times_ms])
        if np.any(np.diff(times) < 0):
            raise invalid_argument("times_ms", times_ms.tolist()[:5], "increasing, after the previous results")
        history = len(self._times)
        all_scores = np.concatenate([self._scores, scores])
        window = self.settings.average_window_ms
        # Window of result i: results j with times[j] >= times[i] - window (TF prunes while
        # time_limit > earliest), up to i.
        first = np.searchsorted(times, times - window, side="left")
        totals = np.concatenate([np.zeros((1, all_scores.shape[1])), np.cumsum(all_scores, axis=0)])
        count = np.arange(1, len(times) + 1) - first
        mean = (totals[1:] - totals[first]) / count[:, None]
        decided = (count >= self.settings.minimum_count) & (times - times[first] >= window / 4)
        top = np.argmax(mean, axis=1)  # ties: the lowest index, as TF's stable sort
        top_score = mean[np.arange(len(top)), top]
        # keep what the next chunk's windows can still reach
        keep = np.searchsorted(times, times[-1] - window, side="left") if len(times) else 0
        self._times, self._scores = times[keep:], all_scores[keep:]
        new = slice(history, None)
        return top[new], np.where(decided, top_score, 0.0)[new], decided[new]

    def update(self, scores, times_ms) -> list[Event]:
        """Process frames; return the events that ended in them (see class docstring)."""
        times_ms = np.asarray(times_ms, np.float64)
        top, score, decided = self.averages(scores, times_ms)
        finished = []
        threshold, suppression = self.settings.threshold, self.settings.suppression_ms
        for i in range(len(top)):
            label = int(top[i])
            above = decided[i] and score[i] > threshold
            if self._open is not None:
                if above and label == self._open[0]:
                    self._open[2] = times_ms[i]
                    self._open[3] = max(self._open[3], score[i])
                else:
                    finished.append(self._close())
            if not above or label == self._previous:
                continue
            since = np.inf if self._previous is None or self._previous in self.background \
                else times_ms[i] - self._previous_time
            if since > suppression:
                self._previous, self._previous_time = label, times_ms[i]
                if label not in self.background:
                    self._open = [label, times_ms[i], times_ms[i], score[i]]
        return finished

    def finish(self) -> list[Event]:
        """The event still open at the end of the stream (if any)."""
        return [self._close()] if self._open is not None else []

    def _close(self) -> Event:
        label, start, end, score = self._open
        self._open = None
        return Event(self.labels[label], float(start) / 1000.0, float(end) / 1000.0, float(score))


# --------------------------------------------------------------------------- graph


def _window_frames(settings: DetectionSettings, frame_ms: float) -> int:
    """Results in a full window of uniformly spaced frames (both ends included)."""
    return int(np.floor(settings.average_window_ms / frame_ms + 1e-9)) + 1


def detection_state_spec(settings: DetectionSettings, *, frame_ms: float, num_classes: int) -> dict:
    """Name -> TensorSpec of the state ``detect_in_graph`` carries."""
    window = _window_frames(settings, frame_ms)
    return {
        "detect_history": tf.TensorSpec([None, window - 1, num_classes], tf.float32, name="detect_history"),
        "detect_frames": tf.TensorSpec([None], tf.int64, name="detect_frames"),
        "detect_label": tf.TensorSpec([None], tf.int32, name="detect_label"),
        "detect_time_ms": tf.TensorSpec([None], tf.float32, name="detect_time_ms"),
    }


DETECTION_INITIAL_VALUES = {"detect_history": 0, "detect_frames": 0, "detect_label": -1, "detect_time_ms": 0}


def detect_in_graph(scores, frame_mask, state: dict, *, settings: DetectionSettings, frame_ms: float,
                    background: Sequence[int] = ()):
    """RecognizeCommands as TF ops, for frames every `frame_ms` milliseconds.

    Args:
        scores: [batch, frames, classes] per-frame posteriors.
        frame_mask: [batch, frames] bool; a row's valid frames come first (as a stream's).
        state: ``detection_state_spec`` tensors (``DETECTION_INITIAL_VALUES`` to start).
        background: class ids that fire but are not reported.

    Returns:
        ({"detected": bool [b, f], "detected_label": int32 [b, f], "detected_score": [b, f]},
        new state). ``detected`` marks the frames where a reported class fired.
    """
    scores = tf.cast(scores, tf.float32)
    window = _window_frames(settings, frame_ms)
    history, seen = state["detect_history"], state["detect_frames"]
    valid_count = tf.reduce_sum(tf.cast(frame_mask, tf.int64), axis=1)
    combined = tf.concat([history, scores], axis=1)  # [b, window - 1 + f, c]
    frames = tf.shape(scores)[1]
    sums = window_sums(combined, window)  # the window ending at each new frame
    position = seen[:, tf.newaxis] + tf.range(1, tf.cast(frames, tf.int64) + 1, dtype=tf.int64)[tf.newaxis]
    count = tf.minimum(position, window)  # frames before the stream's start were never results
    # results before the stream start are zeros in history: they add nothing to the sums
    mean = sums / tf.cast(count, tf.float32)[..., tf.newaxis]
    decided = (count >= settings.minimum_count) & (
        tf.cast(count - 1, tf.float32) * frame_ms >= settings.average_window_ms / 4)
    top = tf.argmax(mean, axis=-1, output_type=tf.int32)
    top_score = tf.reduce_max(mean, axis=-1)
    above = decided & (top_score > settings.threshold) & frame_mask
    times = tf.cast(position - 1, tf.float32) * frame_ms
    background_ids = tf.constant(list(background) or [-2], tf.int32)  # -2: matches no class
    is_background = tf.reduce_any(top[..., tf.newaxis] == background_ids, axis=-1)

    def step(carry, inputs):
        previous, previous_time, _ = carry
        fires_above, label, time = inputs
        free = (previous < 0) | tf.reduce_any(previous[:, tf.newaxis] == background_ids, axis=-1)
        since_ok = free | (time - previous_time > settings.suppression_ms)
        fire = fires_above & (label != previous) & since_ok
        return tf.where(fire, label, previous), tf.where(fire, time, previous_time), fire

    # One extra step that never fires, so the loop has a last carry even for no frames.
    time_major = [tf.pad(tf.transpose(t, [1, 0]), [[0, 1], [0, 0]]) for t in (above, top, times)]
    initial = (state["detect_label"], state["detect_time_ms"], tf.zeros_like(valid_count, tf.bool))
    labels, label_times, fired = tf.scan(step, time_major, initializer=initial)
    label, label_time, fired = labels[-1], label_times[-1], fired[:-1]
    fired = tf.transpose(fired, [1, 0])
    new_history = tf.gather(combined, valid_count[:, tf.newaxis] + tf.range(window - 1, dtype=tf.int64),
                            axis=1, batch_dims=1)
    outputs = {
        "detected": fired & ~is_background,
        "detected_label": top,
        "detected_score": tf.where(decided, top_score, 0.0),
    }
    new_state = {"detect_history": new_history, "detect_frames": seen + valid_count,
                 "detect_label": label, "detect_time_ms": label_time}
    return outputs, new_state
