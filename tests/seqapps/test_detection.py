"""seqapps.layers.detection: RecognizeCommands semantics, against hand-computed sequences."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from seqapps.layers.detection import (
    DETECTION_INITIAL_VALUES,
    DetectionSettings,
    Recognizer,
    detect_in_graph,
    detection_state_spec,
)

A, B = [1.0, 0.0], [0.0, 1.0]


def _events(recognizer, scores, times_ms):
    events = recognizer.update(np.array(scores), np.array(times_ms, float)) + recognizer.finish()
    return [(e.label, e.start, e.end, e.score) for e in events]


def test_averaging_window_minimum_count_and_background():
    # window 30 ms (4 results of 10 ms), minimum 2 results, threshold 0.6:
    #  t=0  one result: undecided; t=10 silence 1.0 fires (background, not reported)
    #  t=20 silence 2/3: same label, nothing; t=30 tie 0.5/0.5: below threshold
    #  t=40 yes 3/4 fires; t=50 yes 1.0, t=60 yes 3/4: the event goes on; t=70 tie: it ends
    recognizer = Recognizer(["_silence_", "yes"], average_window_ms=30, threshold=0.6, suppression_ms=0,
                            minimum_count=2, background=["_silence_"])
    scores = [A, A, B, B, B, B, A, A]
    assert _events(recognizer, scores, np.arange(8) * 10) == [("yes", 0.04, 0.06, 1.0)]
    recognizer.reset()
    top, score, decided = recognizer.averages(np.array(scores), np.arange(8) * 10.0)
    np.testing.assert_array_equal(decided, [False] + [True] * 7)
    np.testing.assert_allclose(score, [0, 1, 2 / 3, 0.5, 0.75, 1.0, 0.75, 0.5])
    np.testing.assert_array_equal(top, [0, 0, 0, 0, 1, 1, 1, 0])  # ties go to the first class


def test_suppression_and_no_refire_of_the_same_label():
    # window 10 ms: 2 results, and a quarter window (2.5 ms) needs both; suppression 25 ms.
    #  t=10 a fires; t=20 tie: a's event ends; t=30 b=1.0 but 20 ms after a: suppressed;
    #  t=50 a=1.0 but a fired last: nothing; t=70 b=1.0, 60 ms after a: fires
    recognizer = Recognizer(["a", "b"], average_window_ms=10, threshold=0.6, suppression_ms=25, minimum_count=1)
    scores = [A, A, B, B, A, A, B, B]
    assert _events(recognizer, scores, np.arange(8) * 10) == [("a", 0.01, 0.01, 1.0), ("b", 0.07, 0.07, 1.0)]


def _wandering_posteriors(rng, shape):
    """Softmax of slow sine waves (one phase per class) plus noise: classes take turns."""
    steps, classes = shape[-2], shape[-1]
    phase = np.arange(classes) * 2 * np.pi / classes
    logits = 4 * np.sin(2 * np.pi * np.arange(steps)[:, None] / 170.0 + phase) + rng.standard_normal(shape)
    scores = np.exp(logits - logits.max(-1, keepdims=True))
    return scores / scores.sum(-1, keepdims=True)


def test_chunks_give_the_same_events_as_one_call():
    scores = _wandering_posteriors(np.random.default_rng(0), (3000, 4))
    times = np.arange(3000) * 10.0
    settings = dict(average_window_ms=200, threshold=0.6, suppression_ms=300, minimum_count=3, background=["n"])
    whole = _events(Recognizer(["n", "x", "y", "z"], **settings), scores, times)
    assert len(whole) > 5
    chunked, recognizer, position = [], Recognizer(["n", "x", "y", "z"], **settings), 0
    for size in [1, 7, 300, 1, 1000, 1691]:
        chunked += recognizer.update(scores[position:position + size], times[position:position + size])
        position += size
    chunked += recognizer.finish()
    assert [(e.label, e.start, e.end) for e in chunked] == [event[:3] for event in whole]
    np.testing.assert_allclose([e.score for e in chunked], [event[3] for event in whole], rtol=1e-12)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="threshold"):
        DetectionSettings(threshold=2.0)
    with pytest.raises(ValueError, match="background"):
        Recognizer(["a"], background=["b"])
    recognizer = Recognizer(["a", "b"])
    with pytest.raises(ValueError, match="scores.shape"):
        recognizer.update(np.zeros((3, 3)), np.arange(3.0))
    recognizer.update(np.zeros((2, 2)), [10.0, 20.0])
    with pytest.raises(ValueError, match="times_ms"):
        recognizer.update(np.zeros((1, 2)), [5.0])


def _graph_run(scores, sizes, *, settings, frame_ms, background=()):
    batch, _, classes = scores.shape
    specs = detection_state_spec(settings, frame_ms=frame_ms, num_classes=classes)
    state = {name: tf.fill([batch, *spec.shape[1:]], tf.cast(DETECTION_INITIAL_VALUES[name], spec.dtype))
             for name, spec in specs.items()}
    detected, position = [], 0
    for size in sizes:
        chunk = tf.constant(scores[:, position:position + size], tf.float32)
        outputs, state = detect_in_graph(chunk, tf.ones(chunk.shape[:2], tf.bool), state, settings=settings,
                                         frame_ms=frame_ms, background=background)
        detected.append(outputs["detected"].numpy())
        position += size
    return np.concatenate(detected, axis=1)


def test_graph_ops_on_the_hand_computed_sequence():
    settings = DetectionSettings(average_window_ms=10, threshold=0.6, suppression_ms=25, minimum_count=1)
    scores = np.array([[A, A, B, B, A, A, B, B]])
    for sizes in ([8], [1] * 8, [3, 0, 5]):
        detected = _graph_run(scores, sizes, settings=settings, frame_ms=10.0)
        np.testing.assert_array_equal(np.flatnonzero(detected[0]), [1, 7])


def test_graph_ops_equal_the_recognizer():
    scores = _wandering_posteriors(np.random.default_rng(1), (2, 1500, 3))
    settings = DetectionSettings(average_window_ms=100, threshold=0.55, suppression_ms=150, minimum_count=4)
    detected = _graph_run(scores, [1, 2, 97, 400, 1000], settings=settings, frame_ms=10.0, background=[0])
    for row in range(2):
        recognizer = Recognizer(["bg", "x", "y"], background=["bg"], average_window_ms=100, threshold=0.55,
                                suppression_ms=150, minimum_count=4)
        events = recognizer.update(scores[row], np.arange(1500) * 10.0) + recognizer.finish()
        assert len(events) > 3
        np.testing.assert_allclose(np.flatnonzero(detected[row]) * 0.01, [e.start for e in events])
