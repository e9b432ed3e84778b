"""The recursion with a(n) normalised over units (layer normalisation), explicit BPTT.

    a(n) = x(n) W_x + s(n-1) W_s + b
    z(n) = gamma * (a(n) - mean(a(n))) / sqrt(var(a(n)) + epsilon) + beta
    s(n) = phi(z(n))

(Ba, Kiros and Hinton 2016, "Layer normalization", section 3.2: normalising the
recurrent pre-activation keeps its scale fixed whatever the size of W_s, a remedy
against exploding and vanishing gradients through time.)

Backward, with G(n) the total gradient reaching s(n), x̂(n) the normalised a(n) and
r(n) = 1 / sqrt(var(a(n)) + epsilon):

    dz(n) = G(n) * phi'(z(n))
    dx̂(n) = dz(n) * gamma
    dA(n) = r(n) * (dx̂ - mean(dx̂) - x̂ * mean(dx̂ * x̂))       (over units)
    G(n-1) = dS(n-1) + dA(n) W_s^T

so each step is still one product with W_s^T plus elementwise work; the weight
gradients (and dgamma = sum dz * x̂, dbeta = sum dz) are single products after the loop.

>>> import tensorflow as tf
>>> states = normalized_recurrence(
...     tf.ones([2, 1, 3]), tf.eye(3), tf.zeros([3, 3]), tf.zeros([3]), tf.zeros([1, 3]),
...     tf.ones([3]), tf.zeros([3]), activation="linear")
>>> [round(float(v), 3) for v in states[0, 0]]     # (1, 1, 1) has no spread: all zeros
[0.0, 0.0, 0.0]
"""

from __future__ import annotations

from collections.abc import Callable

import tensorflow as tf

from seqapps.layers.bptt import _project, _scan, activation_derivative, resolve_activation


def normalized_recurrence(
    inputs: tf.Tensor,
    kernel: tf.Tensor,
    recurrent_kernel: tf.Tensor,
    bias: tf.Tensor,
    initial_state: tf.Tensor,
    gamma: tf.Tensor,
    beta: tf.Tensor,
    *,
    activation="tanh",
    mask: tf.Tensor | None = None,
    truncate_bptt: int | None = None,
    epsilon: float = 1e-3,
    on_state_gradients: Callable[[tf.Tensor], None] | None = None,
) -> tf.Tensor:
    """All states s(1..T) with a(n) layer-normalised; time-major like bptt.recurrence.

    Args:
        inputs: [time, batch, features]. kernel, recurrent_kernel, bias, initial_state:
            as in seqapps.layers.bptt.recurrence.
        gamma, beta: [units] scale and offset of the normalised a(n).
        activation, mask, truncate_bptt: as in bptt.recurrence.
        epsilon: added to the variance.
        on_state_gradients: the recording hook of bptt.recurrence: called in the
            backward pass with G(n) = dLoss/ds(n) [time, batch, units].

    Returns:
        states [time, batch, units].
    """
    phi = resolve_activation(activation)
    mask_bool = None if mask is None else tf.expand_dims(tf.cast(mask, tf.bool), -1)

    @tf.custom_gradient
    def _recurrence(inputs, kernel, recurrent_kernel, bias, initial_state, gamma, beta):
        projected = _project(inputs, kernel, bias)
        sequences = [projected] if mask_bool is None else [projected, mask_bool]

        def forward(state, slices):
            a = slices[0] + tf.matmul(state, recurrent_kernel)
            mean, variance = tf.nn.moments(a, axes=[-1], keepdims=True)
            inverse_std = tf.math.rsqrt(variance + epsilon)
            normalized = (a - mean) * inverse_std
            new_state = phi(gamma * normalized + beta)
            if mask_bool is not None:
                new_state = tf.where(slices[1], new_state, state)
            # Per-step outputs share the state's shape: inverse_std is broadcast.
            return new_state, (new_state, normalized, inverse_std + tf.zeros_like(a))

        _, (states, normalized, inverse_std) = _scan(forward, sequences, initial_state, outputs=3)

        def grad(d_states):
            dtype = d_states.dtype
            steps = tf.shape(states)[0]
            keep = tf.ones([steps], dtype)
            if truncate_bptt is not None:
                step = tf.range(steps)
                keep = tf.cast(tf.logical_or(step % truncate_bptt != 0, step == 0), dtype)
            mask_float = (tf.ones_like(states[..., :1]) if mask_bool is None
                          else tf.cast(mask_bool, dtype))
            backward_sequences = [d_states, states, normalized, inverse_std, mask_float,
                                  keep[:, tf.newaxis, tf.newaxis]]
            transposed = tf.transpose(recurrent_kernel)

            def backward(carry, slices):
                d_state, state, x_hat, r, m, keep_n = slices
                total = d_state + carry
                z = gamma * x_hat + beta
                d_z = total * activation_derivative(phi, z, state) * m
                d_x_hat = d_z * gamma
                d_a = r * (d_x_hat - tf.reduce_mean(d_x_hat, -1, keepdims=True)
                           - x_hat * tf.reduce_mean(d_x_hat * x_hat, -1, keepdims=True))
                new_carry = (tf.matmul(d_a, transposed) + (1.0 - m) * total) * keep_n
                return new_carry, (d_a, d_z, total)

            d_initial, (d_pre, d_z, totals) = _scan(
                backward, backward_sequences, tf.zeros_like(initial_state), outputs=3, reverse=True
            )
            if on_state_gradients is not None:
                on_state_gradients(totals)
            previous = tf.concat([initial_state[tf.newaxis], states[:-1]], axis=0)
            return (
                tf.einsum("tbu,fu->tbf", d_pre, kernel),
                tf.einsum("tbf,tbu->fu", inputs, d_pre),
                tf.einsum("tbu,tbv->uv", previous, d_pre),
                tf.reduce_sum(d_pre, axis=[0, 1]),
                d_initial,
                tf.reduce_sum(d_z * normalized, axis=[0, 1]),
                tf.reduce_sum(d_z, axis=[0, 1]),
            )

        return states, grad

    return _recurrence(inputs, kernel, recurrent_kernel, bias, initial_state, gamma, beta)
