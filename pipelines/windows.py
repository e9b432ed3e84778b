"""Windows, masks, delays and clip aggregation, shared by the audio and video pipelines.

An *item* is one step of a sequence: a sample for audio, a frame (or frame-feature
vector) for video. A sequence ``[time, ...]`` is cut into windows of ``window`` items
that start every ``hop`` items:

* windows start at ``0, hop, 2 * hop, ...`` and stop after the first window that
  reaches the end of the sequence, so no window is entirely padding;
* with ``pad_end=True`` the last (or only) window is padded with ``pad_value`` and the
  padded items are ``False`` in the mask; a sequence shorter than ``window`` gives one
  padded window, an empty sequence gives none;
* with ``pad_end=False`` only full windows are kept (``tf.signal.frame`` semantics).

``frame_windows`` and ``window_targets`` accept NumPy arrays (and return NumPy) or
TensorFlow tensors (and return tensors; graph mode and unknown length work, so they can
be used inside ``tf.data.Dataset.map``). The TF version is built on ``tf.signal.frame``.

Window order used everywhere here (``windows_for_clips``, ``stateful_layout``): clip 0's
windows in time order, then clip 1's, and so on.

``clip_index`` has one meaning and dtype in pipelines: int64, the index of a window's
clip in the collection the caller passed (``clips`` for ``windows_for_clips`` and
``stateful_layout``; ``source.examples`` for ``audio_dataset``, ``video_dataset`` and the
frame cache, whatever ``indices`` chose), so it can index that collection's labels.

>>> import numpy as np
>>> windows, mask = frame_windows(np.arange(5), window=3, hop=2)
>>> windows.tolist(), mask.tolist()
([[0, 1, 2], [2, 3, 4]], [[True, True, True], [True, True, True]])
"""

from __future__ import annotations

import numbers
import sys

import numpy as np

from pipelines.stateful import StatefulLayout, stateful_layout  # noqa: F401  (re-exported)
from seqapps.errors import invalid_argument

__all__ = [
    "StatefulLayout",
    "aggregate_clip_predictions",
    "aggregate_clip_regression",
    "frame_windows",
    "n_windows",
    "stateful_layout",
    "window_targets",
    "windows_for_clips",
]


# --------------------------------------------------------------------------- checks


def _check_positive_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value <= 0:
        raise invalid_argument(name, value, "a positive integer")
    return int(value)


def check_window_arguments(*, window_frames, hop_frames, batch_size, target) -> None:
    """Validate the arguments every windowed video dataset takes (decoding and cache).

    >>> check_window_arguments(window_frames=16, hop_frames=8, batch_size=4, target="label")
    """
    for name, value in (("window_frames", window_frames), ("hop_frames", hop_frames),
                        ("batch_size", batch_size)):
        _check_positive_int(name, value)
    if target not in ("label", "clip_targets", "frame"):
        raise invalid_argument("target", target, 'one of ("label", "clip_targets", "frame")')


def _check_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise invalid_argument(name, value, "an integer")
    return int(value)


def _tf_windows():
    """seqapps.layers.windows, the one implementation (TensorFlow, imported on first use
    so that modules importing this one at start-up stay light)."""
    from seqapps.layers import windows

    return windows


def _is_tf_tensor(value) -> bool:
    # A tensor can only exist once TensorFlow is imported, so the NumPy path never pays
    # for importing it (decoder worker processes stay light).
    if "tensorflow" not in sys.modules:
        return False
    import tensorflow as tf

    return tf.is_tensor(value)


def _check_sequence(name: str, sequence):
    if _is_tf_tensor(sequence):
        if sequence.shape.rank == 0:
            raise invalid_argument(name, sequence, "a tensor of rank >= 1 ([time, ...])")
        return sequence
    array = np.asarray(sequence)
    if array.ndim == 0:
        raise invalid_argument(name, sequence, "an array of rank >= 1 ([time, ...])")
    return array


# --------------------------------------------------------------------------- counting


def n_windows(n_items: int, *, window: int, hop: int, pad_end: bool = True) -> int:
    """Number of windows ``frame_windows`` makes from ``n_items`` items.

    With ``pad_end``: 0 for an empty sequence, else windows start every ``hop`` items
    while they start inside the sequence and until one reaches its end, i.e.
    ``min(ceil(n / hop), 1 + ceil(max(n - window, 0) / hop))``. Without: the
    number of full windows, ``max(0, 1 + (n - window) // hop)``.

    >>> n_windows(10, window=4, hop=2), n_windows(10, window=4, hop=2, pad_end=False)
    (4, 4)
    >>> n_windows(3, window=4, hop=1), n_windows(0, window=4, hop=1)
    (1, 0)
    """
    window = _check_positive_int("window", window)
    hop = _check_positive_int("hop", hop)
    n_items = _check_int("n_items", n_items)
    if n_items < 0:
        raise invalid_argument("n_items", n_items, "a non-negative integer")
    return _count_np(n_items, window, hop, pad_end)


def _count_np(n: int, window: int, hop: int, pad_end: bool) -> int:
    return int(_tf_windows().count_windows(n, window=window, hop=hop, pad_end=pad_end))


def _count_tf(n, window: int, hop: int, pad_end: bool):
    return _tf_windows().count_windows(n, window=window, hop=hop, pad_end=pad_end)


# --------------------------------------------------------------------------- windows


def frame_windows(sequence, *, window: int, hop: int, pad_end: bool = True, pad_value=0):
    """Cut a sequence into windows of ``window`` items every ``hop`` items.

    Args:
        sequence: ``[time, ...]`` NumPy array or TF tensor (time may be unknown).
        window: items per window (positive int).
        hop: items between window starts (positive int).
        pad_end: pad and keep the last, partial window (see the module docstring).
        pad_value: value of padded items.

    Returns:
        ``(windows, mask)``: ``windows`` ``[n_windows, window, ...]`` of the input dtype,
        ``mask`` bool ``[n_windows, window]``, ``True`` on real items. NumPy in, NumPy
        out; tensor in, tensors out.

    >>> import numpy as np
    >>> windows, mask = frame_windows(np.arange(1, 6), window=4, hop=2)
    >>> windows.tolist()
    [[1, 2, 3, 4], [3, 4, 5, 0]]
    >>> mask.tolist()
    [[True, True, True, True], [True, True, True, False]]
    """
    window = _check_positive_int("window", window)
    hop = _check_positive_int("hop", hop)
    sequence = _check_sequence("sequence", sequence)
    if _is_tf_tensor(sequence):
        return _frame_tf(sequence, window, hop, bool(pad_end), pad_value)
    return _frame_np(sequence, window, hop, bool(pad_end), pad_value)


def _frame_np(sequence: np.ndarray, window: int, hop: int, pad_end: bool, pad_value):
    windows, mask = _frame_tf(sequence, window, hop, pad_end, pad_value)
    return windows.numpy(), mask.numpy()


def _frame_tf(sequence, window: int, hop: int, pad_end: bool, pad_value):
    return _tf_windows().frame(sequence, window=window, hop=hop, pad_end=pad_end, pad_value=pad_value)


def window_targets(per_item_targets, *, window: int, hop: int, delay: int = 0,
                   pad_end: bool = True):
    """Window per-item regression targets with a delay ``d``: item n's target is y(n + d).

    The windows have the same boundaries as ``frame_windows`` on a sequence of the same
    length (boundaries depend only on the number of items, not on the delay). Items whose
    ``n + d`` falls outside ``[0, time)`` (the last ``d`` items for ``d > 0``, the first
    ``-d`` for ``d < 0``) and padded items are ``False`` in the mask and hold 0.

    Args:
        per_item_targets: ``[time]`` or ``[time, n_targets]`` (NumPy or TF tensor).
        window, hop, pad_end: as in ``frame_windows``.
        delay: integer d (may be negative: target from the past).

    Returns:
        ``(targets [n_windows, window, ...], mask bool [n_windows, window])``.

    >>> import numpy as np
    >>> targets, mask = window_targets(np.array([10., 11., 12., 13., 14.]),
    ...                                window=3, hop=2, delay=1)
    >>> targets.tolist()
    [[11.0, 12.0, 13.0], [13.0, 14.0, 0.0]]
    >>> mask.tolist()
    [[True, True, True], [True, True, False]]
    """
    window = _check_positive_int("window", window)
    hop = _check_positive_int("hop", hop)
    delay = _check_int("delay", delay)
    targets = _check_sequence("per_item_targets", per_item_targets)
    if _is_tf_tensor(targets):
        import tensorflow as tf

        n_items = tf.shape(targets)[0]
        index = tf.range(n_items) + delay
        valid = (index >= 0) & (index < n_items)
        shifted = tf.gather(targets, tf.clip_by_value(index, 0, tf.maximum(n_items - 1, 0)))
        zero = tf.zeros_like(shifted)
        shape = tf.concat([[n_items], tf.ones([tf.rank(targets) - 1], tf.int32)], axis=0)
        shifted = tf.where(tf.reshape(valid, shape), shifted, zero)
        windows, _ = _frame_tf(shifted, window, hop, pad_end, 0)
        valid_windows, _ = _frame_tf(valid, window, hop, pad_end, False)
        return windows, valid_windows
    n_items = targets.shape[0]
    index = np.arange(n_items) + delay
    valid = (index >= 0) & (index < n_items)
    shifted = np.zeros_like(targets)
    shifted[valid] = targets[index[valid]]
    windows, _ = _frame_np(shifted, window, hop, pad_end, 0)
    valid_windows, _ = _frame_np(valid, window, hop, pad_end, False)
    return windows, valid_windows


def windows_of_packed_clips(flat, lengths, *, window: int, hop: int, pad_value=0):
    """Windows of many clips packed end to end, in one vectorised TF computation.

    The same windows as ``frame_windows(clip, window=window, hop=hop)`` for each clip
    in turn (pad_end=True), without a per-clip loop or padding every clip to the longest:
    tf.data pipelines call it once per group of clips instead of once per clip.

    Args:
        flat: [total, ...] the clips' items concatenated (e.g. RaggedTensor.flat_values).
        lengths: [clips] items per clip (sum = total).
        window, hop: items per window and between window starts.

    Returns:
        (windows [n_windows, window, ...], mask [n_windows, window] bool,
        clip_of_window [n_windows] int32 index into ``lengths``).

    >>> import tensorflow as tf
    >>> w, m, c = windows_of_packed_clips(tf.range(5), tf.constant([3, 2]), window=2, hop=2)
    >>> w.numpy().tolist(), c.numpy().tolist()
    ([[0, 1], [2, 0], [3, 4]], [0, 0, 1])
    """
    window = _check_positive_int("window", window)
    hop = _check_positive_int("hop", hop)
    return _tf_windows().frame_packed(flat, lengths, window=window, hop=hop, pad_value=pad_value)


def windows_for_clips(clips, labels=None, *, window: int, hop: int, pad_end: bool = True,
                      pad_value=0, per_item_targets=None, delay: int = 0) -> dict:
    """Windows from many clips, never crossing a clip boundary (NumPy).

    Args:
        clips: list of ``[time_i, ...]`` arrays with the same trailing shape and dtype.
        labels: optional per-clip labels ``[n_clips, ...]`` (class ids or targets).
        window, hop, pad_end, pad_value: as in ``frame_windows``.
        per_item_targets: optional list of ``[time_i, ...]`` per-item targets, windowed
            with ``window_targets`` (same ``delay`` for all clips).
        delay: see ``window_targets``.

    Returns:
        dict of arrays, one row per window (clip 0's windows first):
        ``windows [n, window, ...]``, ``mask bool [n, window]``, ``clip_index int64 [n]``
        (the index in ``clips`` of the window's clip), ``window_index_in_clip int32 [n]``,
        ``is_first_window bool [n]``, ``is_last_window bool [n]``, ``n_windows_per_clip int32 [n_clips]``; plus
        ``labels [n, ...]`` when ``labels`` is given and ``targets [n, window, ...]``,
        ``target_mask bool [n, window]`` when ``per_item_targets`` is given. A clip too
        short for any window (empty, or shorter than ``window`` without ``pad_end``)
        contributes no row.

    >>> import numpy as np
    >>> out = windows_for_clips([np.arange(3), np.arange(10, 15)], [0, 1], window=2, hop=2)
    >>> out["windows"].tolist(), out["clip_index"].tolist()
    ([[0, 1], [2, 0], [10, 11], [12, 13], [14, 0]], [0, 0, 1, 1, 1])
    """
    window = _check_positive_int("window", window)
    hop = _check_positive_int("hop", hop)
    clips = [np.asarray(clip) for clip in clips]
    for i, clip in enumerate(clips):
        if clip.ndim == 0 or clip.shape[1:] != clips[0].shape[1:]:
            raise invalid_argument(
                f"clips[{i}]", f"<array of shape {clip.shape}>",
                f"an array [time, ...] with trailing shape {clips[0].shape[1:]} like clips[0]",
            )
    if labels is not None:
        labels = np.asarray(labels)
        if labels.ndim == 0 or labels.shape[0] != len(clips):
            raise invalid_argument("labels", f"<{labels.shape[0] if labels.ndim else 0} "
                                   "labels>", f"one label per clip ({len(clips)})")
    if per_item_targets is not None and len(per_item_targets) != len(clips):
        raise invalid_argument("per_item_targets", f"<{len(per_item_targets)} arrays>",
                               f"one array per clip ({len(clips)})")

    trailing = clips[0].shape[1:] if clips else ()
    dtype = clips[0].dtype if clips else np.float32
    windows, masks, targets, target_masks, counts = [], [], [], [], []
    for i, clip in enumerate(clips):
        w, m = _frame_np(clip, window, hop, pad_end, pad_value)
        windows.append(w)
        masks.append(m)
        counts.append(len(w))
        if per_item_targets is not None:
            item_targets = np.asarray(per_item_targets[i])
            if item_targets.shape[:1] != clip.shape[:1]:
                raise invalid_argument(f"per_item_targets[{i}]",
                                       f"<array of shape {item_targets.shape}>",
                                       f"one target per item of clips[{i}] ({len(clip)})")
            t, tm = window_targets(item_targets, window=window, hop=hop, delay=delay,
                                   pad_end=pad_end)
            targets.append(t)
            target_masks.append(tm)

    counts = np.asarray(counts, dtype=np.int32)
    clip_index = np.repeat(np.arange(len(clips), dtype=np.int64), counts)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int32)
    window_index_in_clip = (np.arange(len(clip_index)) - starts[clip_index]).astype(np.int32)
    out = {
        "windows": (np.concatenate(windows) if windows
                    else np.zeros((0, window, *trailing), dtype)),
        "mask": np.concatenate(masks) if masks else np.zeros((0, window), bool),
        "clip_index": clip_index,
        "window_index_in_clip": window_index_in_clip,
        "is_first_window": window_index_in_clip == 0,
        "is_last_window": window_index_in_clip == counts[clip_index] - 1,
        "n_windows_per_clip": counts,
    }
    if labels is not None:
        out["labels"] = labels[clip_index]
    if per_item_targets is not None:
        out["targets"] = np.concatenate(targets) if targets else np.zeros((0, window))
        out["target_mask"] = (np.concatenate(target_masks) if target_masks
                              else np.zeros((0, window), bool))
    return out


# --------------------------------------------------------------------------- aggregation


def _check_clip_index(clip_index, n_rows: int, n_clips):
    clip_index = np.asarray(clip_index)
    if clip_index.ndim != 1 or clip_index.shape[0] != n_rows:
        raise invalid_argument("clip_index", f"<array of shape {clip_index.shape}>",
                               f"a 1-D array with one entry per window ({n_rows})")
    if clip_index.size and (not np.issubdtype(clip_index.dtype, np.integer)
                            or clip_index.min() < 0):
        raise invalid_argument("clip_index", f"<array, min {clip_index.min()}>",
                               "non-negative integers")
    if n_clips is None:
        n_clips = int(clip_index.max()) + 1 if clip_index.size else 0
    n_clips = _check_int("n_clips", n_clips)
    if n_clips < 0 or (clip_index.size and clip_index.max() >= n_clips):
        raise invalid_argument("n_clips", n_clips, "greater than every clip_index")
    return clip_index.astype(np.int64), n_clips


def _clip_means(values: np.ndarray, clip_index: np.ndarray, n_clips: int) -> np.ndarray:
    sums = np.zeros((n_clips, *values.shape[1:]), np.float64)
    np.add.at(sums, clip_index, values)
    counts = np.bincount(clip_index, minlength=n_clips).reshape(
        (n_clips,) + (1,) * (values.ndim - 1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return sums / counts  # clips without windows: NaN (0 / 0)


def aggregate_clip_predictions(window_predictions, clip_index, *, method: str = "mean",
                               n_clips: int | None = None) -> np.ndarray:
    """Combine per-window class probabilities into one row per clip.

    Args:
        window_predictions: ``[n_windows, n_classes]`` probabilities.
        clip_index: ``[n_windows]`` clip of each window.
        method: ``"mean"``: mean probability over the clip's windows; ``"vote"``: one-hot
            row of the class most windows predict (argmax); a tie goes to the tied class
            with the highest mean probability.
        n_clips: number of clips (default ``max(clip_index) + 1``); a clip with no
            window gets a row of NaN.

    Returns:
        float32 ``[n_clips, n_classes]``.

    >>> import numpy as np
    >>> p = np.array([[0.9, 0.1], [0.4, 0.6], [0.3, 0.7]])
    >>> print(aggregate_clip_predictions(p, [0, 0, 1]))
    [[0.65 0.35]
     [0.3  0.7 ]]
    >>> aggregate_clip_predictions(p, [0, 0, 1], method="vote").tolist()  # clip 0: a tie
    [[1.0, 0.0], [0.0, 1.0]]
    """
    predictions = np.asarray(window_predictions, dtype=np.float64)
    if predictions.ndim != 2:
        raise invalid_argument("window_predictions", f"<array of shape {predictions.shape}>",
                               "a 2-D array [n_windows, n_classes]")
    if method not in ("mean", "vote"):
        raise invalid_argument("method", method, 'one of "mean", "vote"')
    clip_index, n_clips = _check_clip_index(clip_index, predictions.shape[0], n_clips)
    means = _clip_means(predictions, clip_index, n_clips)
    if method == "mean":
        return means.astype(np.float32)
    n_classes = predictions.shape[1]
    votes = np.zeros((n_clips, n_classes))
    np.add.at(votes, (clip_index, predictions.argmax(axis=1)), 1)
    # Among the classes with the most votes, the highest mean probability wins.
    tied = votes == votes.max(axis=1, keepdims=True)
    winner = np.where(tied, means, -np.inf).argmax(axis=1)
    out = np.eye(n_classes, dtype=np.float32)[winner]
    out[np.isnan(means).all(axis=1)] = np.nan
    return out


def aggregate_clip_regression(values, clip_index, *, n_clips: int | None = None) -> np.ndarray:
    """Mean of per-window values per clip.

    Args:
        values: ``[n_windows, ...]`` (e.g. ``[n_windows]`` or ``[n_windows, n_targets]``).
        clip_index: ``[n_windows]``.
        n_clips: as in ``aggregate_clip_predictions`` (empty clips give NaN).

    Returns:
        float32 ``[n_clips, ...]``.

    >>> aggregate_clip_regression([1.0, 3.0, 10.0], [0, 0, 1]).tolist()
    [2.0, 10.0]
    """
    values = np.asarray(values, dtype=np.float64)
    if values.ndim == 0:
        raise invalid_argument("values", values, "an array [n_windows, ...]")
    clip_index, n_clips = _check_clip_index(clip_index, values.shape[0], n_clips)
    return _clip_means(values, clip_index, n_clips).astype(np.float32)
