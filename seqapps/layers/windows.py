"""Windows of sequences in TensorFlow: the one place that counts, pads and cuts them.

An *item* is one step of a sequence (a sample, a frame, a feature frame). A sequence of
``n`` items is cut into windows of ``window`` items that start every ``hop`` items:

* with ``pad_end=True`` windows start at ``0, hop, 2 * hop, ...`` while they start inside
  the sequence and until one reaches its end; the last one is padded with ``pad_value``
  and its padded items are ``False`` in the mask; no window is entirely padding, and an
  empty sequence gives none;
* with ``pad_end=False`` only full windows are kept (``tf.signal.frame`` semantics).

Training pipelines (``pipelines.windows``), clip prediction
(``SequenceModel.predict_clip``) and the exported ``serving_default`` all cut windows
here, so they agree item for item. Every function works in graph mode and with unknown
lengths.

>>> import tensorflow as tf
>>> windows, mask = frame(tf.range(5), window=3, hop=2)
>>> windows.numpy().tolist(), mask.numpy().tolist()
([[0, 1, 2], [2, 3, 4]], [[True, True, True], [True, True, True]])
"""

from __future__ import annotations

import numbers

import tensorflow as tf

from seqapps.errors import invalid_argument

__all__ = ["count_windows", "frame", "frame_clips", "frame_packed"]


def check_window_and_hop(window, hop) -> tuple[int, int]:
    """Both positive Python integers, or a clear error naming the argument."""
    for name, value in (("window", window), ("hop", hop)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value <= 0:
            raise invalid_argument(name, value, "a positive integer")
    return int(window), int(hop)


def count_windows(n, *, window: int, hop: int, pad_end: bool = True):
    """Number of windows of a sequence of ``n`` items (int or int tensor, any shape).

    With ``pad_end``: 0 for ``n = 0``, else ``min(ceil(n / hop), 1 + ceil(max(n - window,
    0) / hop))``. Without: the number of full windows, ``max(0, 1 + (n - window) // hop)``.

    >>> [int(count_windows(n, window=4, hop=2)) for n in (0, 3, 10)]
    [0, 1, 4]
    >>> int(count_windows(10, window=4, hop=2, pad_end=False))
    4
    """
    window, hop = check_window_and_hop(window, hop)
    n = tf.convert_to_tensor(n)
    if not pad_end:
        return tf.where(n >= window, 1 + (n - window) // hop, tf.zeros_like(n))
    reach_end = 1 + (tf.maximum(n - window, 0) + hop - 1) // hop
    start_inside = (n + hop - 1) // hop
    return tf.minimum(start_inside, reach_end)


def _cut(sequence, count, *, window: int, hop: int, axis: int, pad_value):
    """The first ``count`` windows along ``axis`` (padding the end as needed) and the mask
    [count, window] of real items."""
    n = tf.shape(sequence)[axis]
    needed = tf.where(count > 0, (count - 1) * hop + window, 0)
    pad = tf.maximum(needed - n, 0)
    rank = sequence.shape.rank
    if rank is None:  # unknown rank: build the paddings and the slice in the graph
        rank = tf.rank(sequence)
        paddings = tf.tensor_scatter_nd_update(tf.zeros([rank, 2], pad.dtype), [[axis, 1]], tf.reshape(pad, [1]))
        size = tf.tensor_scatter_nd_update(-tf.ones([rank], tf.int32), [[axis]], tf.reshape(needed, [1]))
        begin = tf.zeros([rank], tf.int32)
    else:
        paddings = [[0, 0]] * axis + [[0, pad]] + [[0, 0]] * (rank - axis - 1)
        size = [-1] * axis + [needed] + [-1] * (rank - axis - 1)
        begin = [0] * rank
    padded = tf.pad(sequence, paddings, constant_values=tf.cast(pad_value, sequence.dtype))
    # Items past the last window (possible when window < hop) are not framed.
    padded = tf.slice(padded, begin, size)
    windows = tf.signal.frame(padded, window, hop, pad_end=False, axis=axis)
    positions = tf.range(count)[:, tf.newaxis] * hop + tf.range(window)[tf.newaxis, :]
    return windows, positions < n


def frame(sequence, *, window: int, hop: int, pad_end: bool = True, pad_value=0):
    """Cut ``sequence [time, ...]`` into ``windows [count, window, ...]`` and ``mask
    bool [count, window]`` (``True`` on real items).

    >>> windows, mask = frame(tf.range(1, 6), window=4, hop=2)
    >>> windows.numpy().tolist(), mask.numpy().tolist()
    ([[1, 2, 3, 4], [3, 4, 5, 0]], [[True, True, True, True], [True, True, True, False]])
    """
    window, hop = check_window_and_hop(window, hop)
    sequence = tf.convert_to_tensor(sequence)
    if sequence.shape.rank == 0:
        raise invalid_argument("sequence", sequence, "a tensor of rank >= 1 ([time, ...])")
    count = count_windows(tf.shape(sequence)[0], window=window, hop=hop, pad_end=pad_end)
    windows, mask = _cut(sequence, count, window=window, hop=hop, axis=0, pad_value=pad_value)
    if sequence.shape.rank is not None:  # dynamic padding hides the static trailing shape
        windows.set_shape([None, window, *sequence.shape[1:]])
    return windows, mask


def frame_clips(clips, *, window: int, hop: int):
    """Windows of a batch of equally long clips, for clip prediction and serving.

    Args:
        clips: ``[batch, time, ...]`` (time may be unknown, even 0).
        window, hop: items per window and between window starts.

    Returns:
        ``(windows [batch * count, window, ...], mask bool [batch * count, window],
        count)``: clip 0's windows first; ``count`` (scalar int32) is at least 1, so an
        empty clip gives one fully masked window and every clip gets a prediction.

    >>> windows, mask, count = frame_clips(tf.reshape(tf.range(10), [2, 5]), window=3, hop=2)
    >>> windows.numpy().tolist(), int(count)
    ([[0, 1, 2], [2, 3, 4], [5, 6, 7], [7, 8, 9]], 2)
    """
    window, hop = check_window_and_hop(window, hop)
    clips = tf.convert_to_tensor(clips)
    count = tf.maximum(count_windows(tf.shape(clips)[1], window=window, hop=hop), 1)
    windows, mask = _cut(clips, count, window=window, hop=hop, axis=1, pad_value=0)
    windows = tf.reshape(windows, tf.concat([[-1, window], tf.shape(clips)[2:]], axis=0))
    windows.set_shape([None, window, *clips.shape[2:]])
    return windows, tf.tile(mask, [tf.shape(clips)[0], 1]), count


def frame_packed(flat, lengths, *, window: int, hop: int, pad_value=0):
    """Windows of many clips packed end to end, in one vectorised computation.

    The same windows as ``frame(clip, window=window, hop=hop)`` for each clip in turn,
    without a per-clip loop or padding every clip to the longest.

    Args:
        flat: ``[total, ...]`` the clips' items concatenated (e.g. RaggedTensor.flat_values).
        lengths: ``[clips]`` items per clip (sum = total).

    Returns:
        ``(windows [n_windows, window, ...], mask bool [n_windows, window],
        clip_of_window int32 [n_windows])``, an index into ``lengths``.

    >>> w, m, c = frame_packed(tf.range(5), tf.constant([3, 2]), window=2, hop=2)
    >>> w.numpy().tolist(), c.numpy().tolist()
    ([[0, 1], [2, 0], [3, 4]], [0, 0, 1])
    """
    window, hop = check_window_and_hop(window, hop)
    flat = tf.convert_to_tensor(flat)
    lengths = tf.cast(lengths, tf.int32)
    counts = count_windows(lengths, window=window, hop=hop)
    starts = tf.cumsum(lengths, exclusive=True)
    clip_of_window = tf.repeat(tf.range(tf.size(lengths)), counts)
    first_window = tf.cumsum(counts, exclusive=True)
    index_in_clip = tf.range(tf.reduce_sum(counts)) - tf.gather(first_window, clip_of_window)
    positions = (index_in_clip * hop)[:, tf.newaxis] + tf.range(window)[tf.newaxis, :]
    clip_lengths = tf.gather(lengths, clip_of_window)[:, tf.newaxis]
    mask = positions < clip_lengths
    gather_at = tf.gather(starts, clip_of_window)[:, tf.newaxis] + tf.minimum(positions, clip_lengths - 1)
    values = tf.gather(flat, gather_at)
    expanded = tf.reshape(mask, tf.concat([tf.shape(mask), tf.ones([tf.rank(values) - 2], tf.int32)], 0))
    windows = tf.where(expanded, values, tf.cast(pad_value, values.dtype))
    return windows, mask, clip_of_window
