"""Running statistics along time as loop-free TF ops, for streaming steps.

A ``tf.while_loop``'s fixed cost per call dominates a 10 ms chunk, and ``tf.cumsum`` along
time is slow on CPU, so these use masked maxima and average pooling instead.

>>> import tensorflow as tf
>>> running_max(tf.constant([[1.0, 3.0, 2.0, 5.0]])).numpy().tolist()
[[1.0, 3.0, 3.0, 5.0]]
>>> window_sums(tf.constant([[[1.0], [2.0], [3.0], [4.0]]]), 2).numpy()[..., 0].tolist()
[[3.0, 5.0, 7.0]]
"""

from __future__ import annotations

import tensorflow as tf

__all__ = ["running_max", "window_sums"]


def window_sums(values, width: int):
    """Sums of `width` consecutive steps of [batch, time, channels] ending at each step
    from the `width`-th: [batch, time - width + 1, channels]. An average pool, several
    times faster on CPU than a cumulative sum along time."""
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
