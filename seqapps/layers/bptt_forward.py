"""The recursion for inference: the forward pass alone, batch-major, all steps written out.

Same mathematics as seqapps.layers.bptt (no custom gradient: training steps use
bptt.recurrence or the compiled kernels, whose backward passes are explicit and faster).

>>> import tensorflow as tf
>>> _, final = forward_only(tf.ones([1, 3, 1]), tf.ones([1, 1]), tf.constant([[0.5]]),
...                         tf.zeros([1]), tf.zeros([1, 1]), activation="linear")
>>> round(float(final[0, 0]), 3)                  # 1 + 0.5 (1 + 0.5 * 1)
1.75
"""

from __future__ import annotations

import tensorflow as tf

from seqapps.layers import bptt
from seqapps.layers.bptt import resolve_activation


def forward_only(inputs, kernel, recurrent_kernel, bias, initial_state, *, activation="tanh",
                 return_sequences=False):
    """The recursion for inference: batch-major, all steps written out, no custom gradient.

    For a known, short length (at most bptt.full_unroll_max() steps) and no mask. The input
    projection is done in blocks of bptt.projection_block() steps, which run in parallel with
    the recursion; nothing is transposed. Differentiating through it works (plain
    autodiff of the written-out steps), but training steps use `recurrence` or the
    compiled kernels, whose backward passes are explicit and faster.

    Args:
        inputs: [batch, time, features], batch-major, time known.
        kernel, recurrent_kernel, bias, initial_state: W_x, W_s, b, s(0).
        activation: phi.
        return_sequences: also stack the states [batch, time, units].

    Returns:
        (states or None, final state).
    """
    phi = resolve_activation(activation)
    steps, features, units = inputs.shape[1], tf.shape(inputs)[-1], kernel.shape[-1]
    if steps == 1:  # a stream's one-frame step: no reshapes (their cost is most of it)
        state = phi(tf.nn.bias_add(tf.matmul(inputs[:, 0], kernel), bias) + tf.matmul(initial_state, recurrent_kernel))
        return (state[:, tf.newaxis] if return_sequences else None), state
    state, outputs = initial_state, []
    block_steps = bptt.projection_block()
    for start in range(0, steps, block_steps):
        stop = min(steps, start + block_steps)
        block = tf.reshape(inputs[:, start:stop], [-1, features])
        projected = tf.nn.bias_add(tf.matmul(block, kernel), bias)
        for step_input in tf.unstack(tf.reshape(projected, [-1, stop - start, units]), axis=1):
            state = phi(step_input + tf.matmul(state, recurrent_kernel))
            outputs.append(state)
    states = tf.stack(outputs, axis=1) if return_sequences else None
    return states, state
