"""Forward and backward recursions of the plain recurrent layer, with BPTT written out.

    a(n) = x(n) W_x + s(n-1) W_s + b,   s(n) = phi(a(n))

Forward: the input projection x W_x + b of the whole sequence is one matrix product
before the loop; the loop carries only s(n-1) @ W_s and phi.

Backward (backpropagation through time along the unfolded axis): with G(n) the total
gradient reaching s(n),

    dA(n)   = G(n) * phi'(a(n))                       (elementwise)
    G(n-1) = dS(n-1) + dA(n) W_s^T

so each step costs one product with W_s transposed. The weight gradients are then single
large products over all steps: dW_x = sum_n x(n)^T dA(n), dW_s = sum_n s(n-1)^T dA(n),
db = sum_n dA(n), dx(n) = dA(n) W_x^T.

Masked steps hold the state, s(n) = s(n-1), so their gradient passes straight through.
Truncated BPTT with k cuts G every k steps (BPTT(k, k) of Williams and Peng): the
gradient of an output never reaches an input more than k steps before it.

Everything here is time-major ([time, batch, units]) because the loop indexes time.

>>> import tensorflow as tf
>>> x = tf.ones([3, 1, 1])           # time-major: 3 steps, batch 1, 1 feature
>>> states = recurrence(x, tf.ones([1, 1]), tf.constant([[0.5]]), tf.zeros([1]),
...                     tf.zeros([1, 1]), activation="linear")
>>> [round(float(v), 3) for v in tf.reshape(states, [-1])]   # IIR: s(n) = x(n) + 0.5 s(n-1)
[1.0, 1.5, 1.75]
"""

from __future__ import annotations

from collections.abc import Callable

import keras
import tensorflow as tf

# phi'(a) written in terms of s = phi(a) for the activations where that is exact, so the
# backward pass needs no stored pre-activations.
_DERIVATIVE_FROM_OUTPUT: dict[Callable, Callable] = {
    keras.activations.tanh: lambda s: 1.0 - tf.square(s),
    keras.activations.sigmoid: lambda s: s * (1.0 - s),
    keras.activations.relu: lambda s: tf.cast(s > 0, s.dtype),
    keras.activations.linear: lambda s: tf.ones_like(s),
}


def resolve_activation(activation) -> Callable:
    """The Keras activation function for a name, callable or None (linear)."""
    if activation is None:
        return keras.activations.linear
    return keras.activations.get(activation)


def activation_derivative(phi: Callable, pre_activation: tf.Tensor, states: tf.Tensor) -> tf.Tensor:
    """phi'(a) for all steps at once: from s for common activations, else by autodiff.

    Autodiff of sum(phi(a)) gives the elementwise derivative because phi acts
    elementwise; it runs once, vectorised over time, not inside the loop.
    """
    if phi in _DERIVATIVE_FROM_OUTPUT:
        return _DERIVATIVE_FROM_OUTPUT[phi](states)
    with tf.GradientTape() as tape:
        tape.watch(pre_activation)
        y = tf.reduce_sum(phi(pre_activation))
    return tape.gradient(y, pre_activation)


def _forward_loop(projected, recurrent_kernel, initial_state, mask, phi):
    """s(n) for n = 1..T; projected [T, B, U] = x W_x + b; mask [T, B, 1] bool or None."""
    steps = tf.shape(projected)[0]
    states = tf.TensorArray(projected.dtype, size=steps, element_shape=initial_state.shape)

    def body(n, state, states):
        new_state = phi(projected[n] + tf.matmul(state, recurrent_kernel))
        if mask is not None:
            new_state = tf.where(mask[n], new_state, state)
        return n + 1, new_state, states.write(n, new_state)

    _, _, states = tf.while_loop(
        lambda n, *_: n < steps, body, (0, initial_state, states), parallel_iterations=1
    )
    return states.stack()


def backward_recursion(d_states, derivative, recurrent_kernel, mask=None, keep_carry=None,
                       *, record_state_gradients: bool = False):
    """The BPTT recursion from step T down to 1.

    Args:
        d_states: [T, B, U], dLoss/ds(n) from outside the recursion (outputs, final state).
        derivative: [T, B, U], phi'(a(n)), already zero on masked steps.
        recurrent_kernel: W_s [U, U].
        mask: [T, B, 1] float or None. keep_carry: [T] float or None, 0 where truncated
            BPTT cuts the path from step n to s(n-1).
        record_state_gradients: also return G(n) = dLoss/ds(n) (total, through the
            recursion) for every step: what seqapps.diagnostics plots.

    Returns:
        (dA [T, B, U], dLoss/ds(0) [B, U]) and, when recorded, G [T, B, U].
    """
    steps = tf.shape(d_states)[0]
    transposed = tf.transpose(recurrent_kernel)
    d_pre = tf.TensorArray(d_states.dtype, size=steps, element_shape=d_states.shape[1:])
    totals = tf.TensorArray(d_states.dtype, size=steps if record_state_gradients else 0,
                            element_shape=d_states.shape[1:])

    def body(n, carry, d_pre, totals):
        total = d_states[n] + carry
        d_a = total * derivative[n]
        new_carry = tf.matmul(d_a, transposed)
        if mask is not None:
            new_carry += (1.0 - mask[n]) * total
        if keep_carry is not None:
            new_carry *= keep_carry[n]
        if record_state_gradients:
            totals = totals.write(n, total)
        return n - 1, new_carry, d_pre.write(n, d_a), totals

    _, d_initial, d_pre, totals = tf.while_loop(
        lambda n, *_: n >= 0,
        body,
        (steps - 1, tf.zeros_like(d_states[0]), d_pre, totals),
        parallel_iterations=1,
    )
    if record_state_gradients:
        return d_pre.stack(), d_initial, totals.stack()
    return d_pre.stack(), d_initial


def recurrence(
    inputs: tf.Tensor,
    kernel: tf.Tensor,
    recurrent_kernel: tf.Tensor,
    bias: tf.Tensor,
    initial_state: tf.Tensor,
    *,
    activation="tanh",
    mask: tf.Tensor | None = None,
    truncate_bptt: int | None = None,
) -> tf.Tensor:
    """All states s(1..T) of the recursion, with an explicit BPTT gradient.

    Args:
        inputs: [time, batch, features], time-major.
        kernel: W_x [features, units]. recurrent_kernel: W_s [units, units].
        bias: b [units] (zeros when the layer has no bias).
        initial_state: s(0) [batch, units].
        activation: phi, any elementwise Keras activation.
        mask: [time, batch] bool; masked steps hold the state.
        truncate_bptt: None, or k: the state's gradient is cut every k steps.

    Returns:
        states [time, batch, units]; the final state is states[-1].
    """
    phi = resolve_activation(activation)
    mask3 = None if mask is None else tf.expand_dims(tf.cast(mask, tf.bool), -1)

    @tf.custom_gradient
    def _recurrence(inputs, kernel, recurrent_kernel, bias, initial_state):
        projected = tf.einsum("tbf,fu->tbu", inputs, kernel) + bias
        states = _forward_loop(projected, recurrent_kernel, initial_state, mask3, phi)

        def grad(d_states):
            previous = tf.concat([initial_state[tf.newaxis], states[:-1]], axis=0)
            pre_activation = None
            if phi not in _DERIVATIVE_FROM_OUTPUT:
                pre_activation = projected + tf.einsum("tbu,uv->tbv", previous, recurrent_kernel)
            derivative = activation_derivative(phi, pre_activation, states)
            mask_float = None
            if mask3 is not None:
                mask_float = tf.cast(mask3, derivative.dtype)
                derivative *= mask_float
            keep_carry = None
            if truncate_bptt is not None:
                step = tf.range(tf.shape(states)[0])
                # Cut the path from step n back to s(n-1) at every window start but the
                # first: s(0) belongs to the first window and keeps its gradient.
                keep = tf.logical_or(step % truncate_bptt != 0, step == 0)
                keep_carry = tf.cast(keep, derivative.dtype)
            d_pre, d_initial = backward_recursion(
                d_states, derivative, recurrent_kernel, mask_float, keep_carry
            )
            d_inputs = tf.einsum("tbu,fu->tbf", d_pre, kernel)
            d_kernel = tf.einsum("tbf,tbu->fu", inputs, d_pre)
            d_recurrent = tf.einsum("tbu,tbv->uv", previous, d_pre)
            d_bias = tf.reduce_sum(d_pre, axis=[0, 1])
            return d_inputs, d_kernel, d_recurrent, d_bias, d_initial

        return states, grad

    return _recurrence(inputs, kernel, recurrent_kernel, bias, initial_state)
