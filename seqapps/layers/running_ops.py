"""Running statistics along time (and a cheap product) as loop-free TF ops, for streaming steps.

A ``tf.while_loop``'s fixed cost per call dominates a 10 ms chunk, and ``tf.cumsum`` along
time is slow on CPU, so these use masked maxima and average pooling instead.

>>> import tensorflow as tf
>>> running_max(tf.constant([[1.0, 3.0, 2.0, 5.0]])).numpy().tolist()
[[1.0, 3.0, 3.0, 5.0]]
>>> window_sums(tf.constant([[[1.0], [2.0], [3.0], [4.0]]]), 2).numpy()[..., 0].tolist()
[[3.0, 5.0, 7.0]]
"""

from __future__ import annotations

import contextlib

import tensorflow as tf

__all__ = ["matmul_last_axis", "running_max", "window_sums"]


def matmul_last_axis(values, matrix):
    """``values [..., k] @ matrix [k, n]`` as one 2-D product over all leading axes:
    on CPU a broadcast batched matmul costs several times more for a stream's few frames,
    and ``tf.tensordot`` adds a transpose and shape gathers."""
    if values.shape.rank == 2:  # already one product (a stream's one-frame step)
        return tf.linalg.matmul(values, matrix)
    flat = tf.linalg.matmul(tf.reshape(values, [-1, values.shape[-1]]), matrix)
    return tf.reshape(flat, tf.concat([tf.shape(values)[:-1], tf.shape(matrix)[-1:]], 0))


def window_sums(values, width: int):
    """Sums of `width` consecutive steps of [batch, time, channels] ending at each step
    from the `width`-th: [batch, time - width + 1, channels]. An average pool, several
    times faster on CPU than a cumulative sum along time (a plain sum when the time axis
    is statically `width` long: one window, as a stream's one-frame step has)."""
    if values.shape[1] == width:
        return tf.reduce_sum(values, axis=1, keepdims=True)
    return tf.nn.avg_pool1d(values, ksize=width, strides=1, padding="VALID") * float(width)


def running_max(values, *, block: int = 32):
    """Running maximum along axis 1 of [batch, n], without a loop (a loop's fixed cost
    dominates a 10 ms chunk): the maximum within blocks of `block` items, then across
    the blocks before, each a masked maximum over a small triangle."""
    n = tf.shape(values)[1]
    lowest = tf.cast(values.dtype.min, values.dtype)
    blocks = (n + block - 1) // block
    padded = tf.pad(values, [[0, 0], [0, blocks * block - n]], constant_values=lowest)
    grouped = tf.reshape(padded, [tf.shape(values)[0], blocks, block])
    inside = tf.range(block)[:, tf.newaxis] >= tf.range(block)[tf.newaxis, :]  # [to, from]
    within = tf.reduce_max(tf.where(inside, grouped[:, :, tf.newaxis, :], lowest), axis=-1)
    before = tf.range(blocks)[:, tf.newaxis] > tf.range(blocks)[tf.newaxis, :]
    earlier = tf.reduce_max(tf.where(before, within[:, tf.newaxis, :, -1], lowest), axis=-1)  # [batch, blocks]
    result = tf.maximum(within, earlier[:, :, tf.newaxis])
    return tf.reshape(result, [tf.shape(values)[0], blocks * block])[:, :n]


@contextlib.contextmanager
def functional_conds():
    """Trace ``tf.cond`` as If ops the runtime keeps, not lowered to Switch/Merge.

    A lowered cond sends a dead tensor through every node of the branch not taken. The
    streaming step's general branch has about 250 nodes, and the live one-frame step
    paid for them on every call (about 15% of it on this CPU: benchmarks/streaming.py).
    The attribute lives in the graph, so a SavedModel keeps it for TF Serving. TF's
    switch is internal (control_flow_util_v2); where it is gone, conds trace as usual.

    >>> with functional_conds():
    ...     f = tf.function(lambda x: tf.cond(x > 0, lambda: x, lambda: -x)).get_concrete_function(
    ...         tf.TensorSpec([], tf.float32))
    >>> [op.node_def.attr["_lower_using_switch_merge"].b for op in f.graph.get_operations() if op.type.endswith("If")]
    [False]
    """
    try:
        from tensorflow.python.ops import control_flow_util_v2 as flow
    except ImportError:  # pragma: no cover - a TensorFlow without the switch
        yield
        return
    before = getattr(flow, "_DISABLE_LOWER_USING_SWITCH_MERGE", False)
    flow._DISABLE_LOWER_USING_SWITCH_MERGE = True
    try:
        yield
    finally:
        flow._DISABLE_LOWER_USING_SWITCH_MERGE = before
