"""Tests of pipelines/windows.py against hand-computed windows and tf.signal.frame."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from pipelines.windows import (
    aggregate_clip_predictions,
    aggregate_clip_regression,
    frame_windows,
    n_windows,
    stateful_layout,
    window_targets,
    windows_for_clips,
)
from seqapps.errors import ConfigError

T, F = True, False


def reference_windows(sequence, length, shift, pad_value=0):
    """Plain-loop reference for pad_end=True: start every `shift` while inside the
    sequence, stop after the first window that reaches the end."""
    windows, masks = [], []
    start = 0
    while start < len(sequence):
        window = [sequence[i] if i < len(sequence) else pad_value
                  for i in range(start, start + length)]
        windows.append(window)
        masks.append([i < len(sequence) for i in range(start, start + length)])
        if start + length >= len(sequence):
            break
        start += shift
    return windows, masks


# --------------------------------------------------------------------------- frame_windows


def test_frame_windows_hand_computed_padded_last_window():
    windows, mask = frame_windows(np.array([1, 2, 3, 4, 5]), window=4, hop=2)
    np.testing.assert_array_equal(windows, [[1, 2, 3, 4], [3, 4, 5, 0]])
    np.testing.assert_array_equal(mask, [[T, T, T, T], [T, T, T, F]])
    assert mask.dtype == bool


def test_frame_windows_keeps_trailing_axes_and_pad_value():
    x = np.array([[1.0, -1.0], [2.0, -2.0], [3.0, -3.0]], dtype=np.float32)
    windows, mask = frame_windows(x, window=2, hop=2, pad_value=9)
    assert windows.dtype == np.float32
    np.testing.assert_array_equal(windows, [[[1, -1], [2, -2]], [[3, -3], [9, 9]]])
    np.testing.assert_array_equal(mask, [[T, T], [T, F]])


def test_frame_windows_exact_fit_has_no_padding_window():
    windows, mask = frame_windows(np.arange(6), window=3, hop=3)
    np.testing.assert_array_equal(windows, [[0, 1, 2], [3, 4, 5]])
    assert mask.all()


def test_frame_windows_short_sequence_gives_one_padded_window():
    windows, mask = frame_windows(np.array([7, 8]), window=4, hop=1, pad_value=-1)
    np.testing.assert_array_equal(windows, [[7, 8, -1, -1]])
    np.testing.assert_array_equal(mask, [[T, T, F, F]])


def test_frame_windows_empty_sequence_gives_zero_windows():
    windows, mask = frame_windows(np.zeros((0, 3), np.float32), window=4, hop=2)
    assert windows.shape == (0, 4, 3) and mask.shape == (0, 4)


def test_frame_windows_without_pad_end_keeps_full_windows_only():
    windows, mask = frame_windows(np.array([1, 2, 3, 4, 5]), window=4, hop=2, pad_end=False)
    np.testing.assert_array_equal(windows, [[1, 2, 3, 4]])
    assert mask.all()
    windows, mask = frame_windows(np.array([1, 2]), window=4, hop=2, pad_end=False)
    assert windows.shape == (0, 4) and mask.shape == (0, 4)


def test_frame_windows_shift_larger_than_length():
    windows, mask = frame_windows(np.arange(7), window=2, hop=3)
    np.testing.assert_array_equal(windows, [[0, 1], [3, 4], [6, 0]])
    np.testing.assert_array_equal(mask, [[T, T], [T, T], [T, F]])


@pytest.mark.parametrize("n_items", [0, 1, 3, 4, 5, 9, 10, 17])
@pytest.mark.parametrize("length,shift", [(4, 2), (4, 1), (3, 3), (2, 5), (1, 1), (5, 4)])
def test_frame_windows_matches_loop_reference_and_tf_signal_frame(n_items, length, shift):
    x = np.arange(1, n_items + 1)
    windows, mask = frame_windows(x, window=length, hop=shift, pad_value=-7)
    ref_windows, ref_mask = reference_windows(x.tolist(), length, shift, pad_value=-7)
    np.testing.assert_array_equal(windows.reshape(-1, length), np.reshape(ref_windows, (-1, length)))
    np.testing.assert_array_equal(mask.reshape(-1, length), np.reshape(ref_mask, (-1, length)))
    assert len(windows) == n_windows(n_items, window=length, hop=shift)

    full, _ = frame_windows(x, window=length, hop=shift, pad_end=False)
    expected = tf.signal.frame(x, length, shift, pad_end=False).numpy()
    np.testing.assert_array_equal(full.reshape(-1, length), expected.reshape(-1, length))


CASES = [(n, L, S, pe) for n in (0, 1, 3, 5, 8) for L, S in ((4, 2), (2, 5), (3, 1))
         for pe in (True, False)]


@pytest.mark.parametrize("n_items,length,shift,pad_end", CASES)
def test_frame_windows_tf_eager_and_graph_match_numpy(n_items, length, shift, pad_end):
    x = (np.arange(n_items * 2, dtype=np.float32).reshape(n_items, 2) + 1)
    expected_windows, expected_mask = frame_windows(x, window=length, hop=shift,
                                                    pad_end=pad_end, pad_value=-1)
    eager_windows, eager_mask = frame_windows(tf.constant(x), window=length, hop=shift,
                                              pad_end=pad_end, pad_value=-1)
    assert tf.is_tensor(eager_windows)
    np.testing.assert_array_equal(eager_windows.numpy(), expected_windows)
    np.testing.assert_array_equal(eager_mask.numpy(), expected_mask)


def test_frame_windows_tf_function_unknown_length_and_tf_data_map():
    @tf.function(input_signature=[tf.TensorSpec([None, 2], tf.float32)])
    def frame(sequence):
        return frame_windows(sequence, window=3, hop=2)

    lengths = [0, 1, 4, 7]
    sequences = [np.arange(n * 2, dtype=np.float32).reshape(n, 2) + 1 for n in lengths]
    dataset = tf.data.Dataset.from_generator(
        lambda: iter(sequences), output_signature=tf.TensorSpec([None, 2], tf.float32))
    dataset = dataset.map(lambda s: frame_windows(s, window=3, hop=2))
    for sequence, (data_windows, data_mask) in zip(sequences, dataset, strict=True):
        expected_windows, expected_mask = frame_windows(sequence, window=3, hop=2)
        graph_windows, graph_mask = frame(tf.constant(sequence))
        for windows, mask in ((graph_windows, graph_mask), (data_windows, data_mask)):
            np.testing.assert_array_equal(windows.numpy(), expected_windows)
            np.testing.assert_array_equal(mask.numpy(), expected_mask)
    # The graph keeps the window length static, the count dynamic.
    spec = frame.get_concrete_function().structured_outputs[0].shape
    assert spec.as_list() == [None, 3, 2]


@pytest.mark.parametrize("kwargs,message", [
    ({"window": 0, "hop": 1}, "`window` must be a positive integer. Received: window=0"),
    ({"window": 2, "hop": -1}, "`hop` must be a positive integer. Received: hop=-1"),
    ({"window": 2.0, "hop": 1}, "Received: window=2.0"),
    ({"window": True, "hop": 1}, "Received: window=True"),
])
def test_frame_windows_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        frame_windows(np.arange(4), **kwargs)
    with pytest.raises(ConfigError, match="`"):
        frame_windows(tf.range(4), **kwargs)


def test_frame_windows_rejects_scalar_sequence():
    with pytest.raises(ConfigError, match="`sequence` must be an array of rank >= 1"):
        frame_windows(np.float32(3.0), window=2, hop=1)
    with pytest.raises(ConfigError, match="`sequence` must be a tensor of rank >= 1"):
        frame_windows(tf.constant(3.0), window=2, hop=1)


def test_n_windows_rejects_negative_count():
    with pytest.raises(ConfigError, match="`n_items` must be a non-negative integer"):
        n_windows(-1, window=2, hop=1)


# --------------------------------------------------------------------------- window_targets


def test_window_targets_delay_one_hand_computed():
    targets, mask = window_targets(np.array([10.0, 11, 12, 13, 14]), window=3, hop=2, delay=1)
    np.testing.assert_array_equal(targets, [[11, 12, 13], [13, 14, 0]])
    # item 4 would need y(5): masked; items 0..3 are real
    np.testing.assert_array_equal(mask, [[T, T, T], [T, T, F]])


def test_window_targets_delay_two_keeps_frame_window_boundaries():
    y = np.array([10.0, 11, 12, 13, 14])
    targets, mask = window_targets(y, window=2, hop=2, delay=2)
    np.testing.assert_array_equal(targets, [[12, 13], [14, 0], [0, 0]])
    np.testing.assert_array_equal(mask, [[T, T], [T, F], [F, F]])
    windows, _ = frame_windows(y, window=2, hop=2)
    assert windows.shape == targets.shape


def test_window_targets_negative_delay_masks_the_start():
    targets, mask = window_targets(np.array([[1.0, -1], [2, -2], [3, -3]]),
                                   window=2, hop=1, delay=-1)
    np.testing.assert_array_equal(targets, [[[0, 0], [1, -1]], [[1, -1], [2, -2]]])
    np.testing.assert_array_equal(mask, [[F, T], [T, T]])


def test_window_targets_zero_delay_equals_frame_windows():
    y = np.random.default_rng(0).normal(size=(11, 3)).astype(np.float32)
    targets, mask = window_targets(y, window=4, hop=3)
    windows, frame_mask = frame_windows(y, window=4, hop=3)
    np.testing.assert_array_equal(targets, windows)
    np.testing.assert_array_equal(mask, frame_mask)


@pytest.mark.parametrize("delay", [0, 1, 3, 12, -2])
def test_window_targets_convention_every_unmasked_item_is_y_of_n_plus_d(delay):
    y = np.arange(100, 111, dtype=np.float32)  # y(n) = 100 + n, 11 items
    targets, mask = window_targets(y, window=4, hop=3, delay=delay)
    for w in range(len(targets)):
        for j in range(4):
            n = 3 * w + j
            inside = n < len(y) and 0 <= n + delay < len(y)
            assert mask[w, j] == inside
            assert targets[w, j] == (100 + n + delay if inside else 0)


@pytest.mark.parametrize("delay", [-1, 0, 2, 6])
def test_window_targets_tf_graph_matches_numpy(delay):
    @tf.function(input_signature=[tf.TensorSpec([None, 2], tf.float32)])
    def window(y):
        return window_targets(y, window=3, hop=2, delay=delay)

    for n in (0, 1, 5, 8):
        y = np.arange(n * 2, dtype=np.float32).reshape(n, 2) + 1
        expected_targets, expected_mask = window_targets(y, window=3, hop=2, delay=delay)
        targets, mask = window(tf.constant(y))
        np.testing.assert_array_equal(targets.numpy(), expected_targets)
        np.testing.assert_array_equal(mask.numpy(), expected_mask)


def test_window_targets_rejects_bad_delay():
    with pytest.raises(ConfigError, match=r"`delay` must be an integer. Received: delay=0.5"):
        window_targets(np.arange(4.0), window=2, hop=1, delay=0.5)


# --------------------------------------------------------------------------- clips


def test_windows_for_clips_hand_computed():
    clips = [np.array([1, 2, 3]), np.array([], dtype=np.int64), np.array([10, 11, 12, 13, 14])]
    out = windows_for_clips(clips, ["a", "b", "c"], window=2, hop=2)
    np.testing.assert_array_equal(out["windows"], [[1, 2], [3, 0], [10, 11], [12, 13], [14, 0]])
    np.testing.assert_array_equal(out["mask"], [[T, T], [T, F], [T, T], [T, T], [T, F]])
    np.testing.assert_array_equal(out["clip_index"], [0, 0, 2, 2, 2])
    assert out["clip_index"].dtype == np.int64  # one dtype of clip_index in pipelines (issue 15)
    np.testing.assert_array_equal(out["window_index_in_clip"], [0, 1, 0, 1, 2])
    np.testing.assert_array_equal(out["is_first_window"], [T, F, T, F, F])
    np.testing.assert_array_equal(out["is_last_window"], [F, T, F, F, T])
    np.testing.assert_array_equal(out["n_windows_per_clip"], [2, 0, 3])
    np.testing.assert_array_equal(out["labels"], ["a", "a", "c", "c", "c"])


def test_windows_for_clips_never_cross_clip_boundaries():
    rng = np.random.default_rng(3)
    lengths = rng.integers(0, 30, size=12)
    # item t of clip c holds 1000 * (c + 1) + t, so each value names its clip and time
    clips = [1000 * (c + 1) + np.arange(n) for c, n in enumerate(lengths)]
    out = windows_for_clips(clips, window=5, hop=3)
    for window, mask, clip, k in zip(out["windows"], out["mask"], out["clip_index"],
                                     out["window_index_in_clip"], strict=True):
        real = window[mask]
        assert (real // 1000 == clip + 1).all()
        np.testing.assert_array_equal(real % 1000, 3 * k + np.arange(len(real)))
        assert (window[~mask] == 0).all()
    expected_counts = [n_windows(int(n), window=5, hop=3) for n in lengths]
    np.testing.assert_array_equal(out["n_windows_per_clip"], expected_counts)


def test_windows_for_clips_with_per_item_targets_and_delay():
    clips = [np.zeros((3, 2)), np.zeros((2, 2))]
    targets = [np.array([1.0, 2, 3]), np.array([5.0, 6])]
    out = windows_for_clips(clips, window=2, hop=2, per_item_targets=targets, delay=1)
    np.testing.assert_array_equal(out["targets"], [[2, 3], [0, 0], [6, 0]])
    np.testing.assert_array_equal(out["target_mask"], [[T, T], [F, F], [T, F]])


def test_windows_for_clips_rejects_mismatches():
    with pytest.raises(ConfigError, match=r"`clips\[1\]` must be an array \[time, \.\.\.\] "
                                          r"with trailing shape \(2,\)"):
        windows_for_clips([np.zeros((3, 2)), np.zeros((3, 4))], window=2, hop=1)
    with pytest.raises(ConfigError, match="`labels` must be one label per clip"):
        windows_for_clips([np.zeros(3), np.zeros(3)], [0], window=2, hop=1)
    with pytest.raises(ConfigError, match=r"`per_item_targets\[0\]` must be one target per item"):
        windows_for_clips([np.zeros(3)], window=2, hop=1, per_item_targets=[np.zeros(2)])


# --------------------------------------------------------------------------- aggregation


def test_aggregate_mean_and_vote_differ_where_they_should():
    p = np.array([[0.6, 0.4], [0.6, 0.4], [0.0, 1.0],    # clip 0: vote 0, mean 1
                  [0.2, 0.8]])                           # clip 1
    mean = aggregate_clip_predictions(p, [0, 0, 0, 1])
    np.testing.assert_allclose(mean, [[0.4, 0.6], [0.2, 0.8]], rtol=1e-6)
    vote = aggregate_clip_predictions(p, [0, 0, 0, 1], method="vote")
    np.testing.assert_array_equal(vote, [[1, 0], [0, 1]])


def test_aggregate_vote_tie_goes_to_highest_mean_probability():
    p = np.array([[0.51, 0.49, 0.0], [0.1, 0.9, 0.0], [0.0, 0.3, 0.7], [0.0, 0.45, 0.55]])
    # votes: class 0 once, 1 once, 2 twice -> class 2
    np.testing.assert_array_equal(
        aggregate_clip_predictions(p, [0, 0, 0, 0], method="vote"), [[0, 0, 1]])
    # first two windows only: one vote each for 0 and 1; mean 0.305 vs 0.695 -> class 1
    np.testing.assert_array_equal(
        aggregate_clip_predictions(p[:2], [0, 0], method="vote"), [[0, 1, 0]])


def test_aggregate_clip_without_windows_is_nan():
    out = aggregate_clip_predictions(np.array([[1.0, 0.0]]), [1], n_clips=3, method="vote")
    assert np.isnan(out[0]).all() and np.isnan(out[2]).all()
    np.testing.assert_array_equal(out[1], [1, 0])


def test_aggregate_clip_regression_means():
    values = np.array([[1.0, 10], [3, 30], [5, 50]])
    np.testing.assert_allclose(aggregate_clip_regression(values, [1, 0, 1]),
                               [[3, 30], [3, 30]])
    np.testing.assert_allclose(aggregate_clip_regression([2.0, 4.0, 9.0], [0, 0, 1]), [3, 9])


def test_aggregate_rejects_bad_arguments():
    p = np.full((3, 2), 0.5)
    with pytest.raises(ConfigError, match='`method` must be one of "mean", "vote". '
                                          "Received: method='max'"):
        aggregate_clip_predictions(p, [0, 0, 1], method="max")
    with pytest.raises(ConfigError, match=r"`clip_index` must be a 1-D array with one entry "
                                          r"per window \(3\)"):
        aggregate_clip_predictions(p, [0, 1])
    with pytest.raises(ConfigError, match="`clip_index` must be non-negative integers"):
        aggregate_clip_predictions(p, [0, -1, 1])
    with pytest.raises(ConfigError, match="`n_clips` must be greater than every clip_index"):
        aggregate_clip_predictions(p, [0, 1, 2], n_clips=2)
    with pytest.raises(ConfigError, match="`window_predictions` must be a 2-D array"):
        aggregate_clip_predictions(np.ones(3), [0, 0, 0])


# --------------------------------------------------------------------------- stateful


def test_stateful_layout_hand_computed():
    layout = stateful_layout([4, 0, 1, 1], batch_size=3)
    # offsets [0, 4, 4, 5]; clip 0 -> stream 0, clip 2 -> stream 1, clip 3 -> stream 2
    np.testing.assert_array_equal(layout.window_index,
                                  [[0, 4, 5], [1, -1, -1], [2, -1, -1], [3, -1, -1]])
    np.testing.assert_array_equal(layout.reset, [[T, T, T], [F, F, F], [F, F, F], [F, F, F]])
    np.testing.assert_array_equal(layout.valid, [[T, T, T], [T, F, F], [T, F, F], [T, F, F]])
    np.testing.assert_array_equal(layout.stream_of_clip, [0, -1, 1, 2])
    assert layout.n_steps == 4


def test_stateful_layout_clips_follow_each_other_in_a_stream():
    layout = stateful_layout([3, 1, 2], batch_size=2)
    # clip 0 alone in stream 0; clips 1 then 2 in stream 1 (3 windows each)
    np.testing.assert_array_equal(layout.window_index, [[0, 3], [1, 4], [2, 5]])
    np.testing.assert_array_equal(layout.clip_index, [[0, 1], [0, 2], [0, 2]])
    np.testing.assert_array_equal(layout.reset, [[T, T], [F, T], [F, F]])
    batches = layout.batches()
    assert len(batches) == 3
    np.testing.assert_array_equal(batches[1]["window_index"], [1, 4])
    gathered = layout.gather(np.array([10, 11, 12, 13, 14, 15]))
    np.testing.assert_array_equal(gathered, [[10, 13], [11, 14], [12, 15]])


@pytest.mark.parametrize("seed", range(8))
def test_stateful_layout_invariants_on_random_clips(seed):
    rng = np.random.default_rng(seed)
    counts = rng.integers(0, 9, size=rng.integers(1, 20))
    batch_size = int(rng.integers(1, 6))
    layout = stateful_layout(counts.tolist(), batch_size=batch_size)
    out = windows_for_clips([np.arange(n) for n in counts], window=1, hop=1)
    # every window exactly once
    used = layout.window_index[layout.valid]
    np.testing.assert_array_equal(np.sort(used), np.arange(counts.sum()))
    # the layout's clip_index means what windows_for_clips' does, in the same dtype
    np.testing.assert_array_equal(layout.clip_index[layout.valid], out["clip_index"][used])
    assert layout.clip_index.dtype == out["clip_index"].dtype == np.int64
    for stream in range(batch_size):
        column = layout.window_index[:, stream]
        valid = layout.valid[:, stream]
        # padding only at the end of a stream
        assert not np.any(valid[1:] & ~valid[:-1])
        for step, window in enumerate(column[valid]):
            starts_clip = out["is_first_window"][window]
            assert layout.reset[step, stream] == starts_clip
            if not starts_clip:  # continues the previous row's clip with the next window
                assert column[step - 1] == window - 1
    # LPT keeps the longest stream within one clip length of the shortest
    lengths = layout.valid.sum(axis=0)
    assert lengths.max() - lengths.min() <= max(counts.max(), 0)
    padded = layout.gather(np.ones((counts.sum(), 2)), pad_value=-1)
    assert padded.shape == (layout.n_steps, batch_size, 2)
    assert (padded[~layout.valid] == -1).all() and (padded[layout.valid] == 1).all()


def test_stateful_layout_rejects_bad_arguments():
    with pytest.raises(ConfigError, match="`batch_size` must be a positive integer. "
                                          "Received: batch_size=0"):
        stateful_layout([1, 2], batch_size=0)
    with pytest.raises(ConfigError, match="`n_windows_per_clip` must be a list of "
                                          "non-negative integers"):
        stateful_layout([1, -2], batch_size=2)


def test_packed_clips_give_the_windows_of_each_clip_in_turn():
    import tensorflow as tf

    from pipelines.windows import frame_windows, windows_of_packed_clips

    rng = np.random.default_rng(2)
    for length, shift in [(4, 2), (5, 5), (3, 7), (6, 1)]:
        lengths = rng.integers(0, 15, size=6)
        lengths[2] = 0
        clips = [rng.standard_normal((n, 2)).astype("float32") for n in lengths]
        flat = np.concatenate(clips)
        windows, mask, clip_of_window = windows_of_packed_clips(
            tf.constant(flat), tf.constant(lengths), window=length, hop=shift)
        expected = [frame_windows(c, window=length, hop=shift) for c in clips]
        np.testing.assert_array_equal(windows.numpy(), np.concatenate([w for w, _ in expected]))
        np.testing.assert_array_equal(mask.numpy(), np.concatenate([m for _, m in expected]))
        np.testing.assert_array_equal(clip_of_window.numpy(),
                                      np.repeat(np.arange(6), [len(w) for w, _ in expected]))
