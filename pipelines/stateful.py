"""Windows laid out in streams for stateful training and streaming evaluation.

The window order is that of ``pipelines.windows.windows_for_clips``: clip 0's windows in
time order, then clip 1's, and so on.

>>> layout = stateful_layout([2, 1], batch_size=2)
>>> layout.window_index.tolist(), layout.reset.tolist()
([[0, 2], [1, -1]], [[True, True], [False, False]])
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass

import numpy as np

from seqapps.errors import invalid_argument

__all__ = ["StatefulLayout", "stateful_layout"]


@dataclass(frozen=True)
class StatefulLayout:
    """Windows arranged in ``batch_size`` streams for stateful training / streaming.

    Row ``r`` of step ``t + 1`` continues row ``r`` of step ``t``: the clips assigned to
    stream ``r`` are laid end to end along the steps.

    Attributes:
        window_index: int64 ``[n_steps, batch_size]``, global window index (the order of
            ``windows_for_clips``), -1 on padding rows.
        clip_index: int64 ``[n_steps, batch_size]``, the row's clip as its index in the
            clips (as ``windows_for_clips``'s ``clip_index``), -1 on padding rows.
        reset: bool ``[n_steps, batch_size]``, True where a row starts a new clip (reset
            the recurrent state before it).
        valid: bool ``[n_steps, batch_size]``, False on padding rows after a stream ran
            out (mask their loss; their state is never used again).
        stream_of_clip: int64 ``[n_clips]``, the stream each clip went to (-1 for clips
            with no window).
    """

    window_index: np.ndarray
    clip_index: np.ndarray
    reset: np.ndarray
    valid: np.ndarray
    stream_of_clip: np.ndarray

    @property
    def n_steps(self) -> int:
        return int(self.window_index.shape[0])

    def batches(self):
        """The layout as a list of batches: one dict of ``[batch_size]`` rows per step."""
        return [
            {"window_index": self.window_index[t], "clip_index": self.clip_index[t],
             "reset": self.reset[t], "valid": self.valid[t]}
            for t in range(self.n_steps)
        ]

    def gather(self, per_window, pad_value=0) -> np.ndarray:
        """Index a per-window array ``[n_windows, ...]`` -> ``[n_steps, batch_size, ...]``,
        with ``pad_value`` on padding rows."""
        per_window = np.asarray(per_window)
        out = per_window[np.maximum(self.window_index, 0)]
        out[~self.valid] = pad_value
        return out


def stateful_layout(n_windows_per_clip, *, batch_size: int) -> StatefulLayout:
    """Lay clips end to end in ``batch_size`` streams so state can carry across batches.

    Clips go, longest first, to the stream with the fewest windows so far (ties: the
    lowest stream), which keeps stream lengths balanced (LPT scheduling); within a stream
    the clips keep their original order. Clips with no windows are left out.

    Args:
        n_windows_per_clip: windows per clip (non-negative ints), in the order of
            ``windows_for_clips`` (its ``n_windows_per_clip`` output fits).
        batch_size: number of streams (positive int).

    Returns:
        ``StatefulLayout``; ``n_steps`` is the longest stream.

    >>> layout = stateful_layout([3, 1, 2], batch_size=2)
    >>> layout.window_index.tolist()
    [[0, 3], [1, 4], [2, 5]]
    >>> layout.reset.tolist()
    [[True, True], [False, True], [False, False]]
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) or batch_size <= 0:
        raise invalid_argument("batch_size", batch_size, "a positive integer")
    counts = np.asarray(n_windows_per_clip)
    if counts.ndim != 1 or (counts.size and (not np.issubdtype(counts.dtype, np.integer)
                                             or counts.min() < 0)):
        raise invalid_argument("n_windows_per_clip", n_windows_per_clip,
                               "a list of non-negative integers")
    counts = counts.astype(np.int64)
    offsets = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)

    stream_of_clip = np.full(len(counts), -1, np.int64)
    stream_length = np.zeros(batch_size, np.int64)
    for clip in sorted(np.flatnonzero(counts), key=lambda c: (-counts[c], c)):
        stream = int(np.argmin(stream_length))  # argmin takes the lowest index on ties
        stream_of_clip[clip] = stream
        stream_length[stream] += counts[clip]

    n_steps = int(stream_length.max()) if len(counts) else 0
    window_index = np.full((n_steps, batch_size), -1, np.int64)
    clip_index = np.full((n_steps, batch_size), -1, np.int64)
    reset = np.zeros((n_steps, batch_size), bool)
    for stream in range(batch_size):
        step = 0
        for clip in np.flatnonzero(stream_of_clip == stream):
            n = counts[clip]
            window_index[step:step + n, stream] = offsets[clip] + np.arange(n)
            clip_index[step:step + n, stream] = clip
            reset[step, stream] = True
            step += n
    return StatefulLayout(window_index=window_index, clip_index=clip_index, reset=reset,
                          valid=window_index >= 0, stream_of_clip=stream_of_clip)
